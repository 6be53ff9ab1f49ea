//! The engine's peer connections: creating and replacing them, routing signaling to them,
//! reporting their states, renewing their TURN credentials, collecting their statistics.
//! Part of the engine task (`impl Engine`); the rules themselves are in `calls`.

use std::time::Duration;

use cromulent_protocol::{ClientMsg, IceConfig, Signal};
use tokio::sync::oneshot;

use super::{Engine, has_turn, unix_now};
use crate::engine::calls::{CallAction, CallState};
use crate::engine::error::{DisconnectReason, EngineError, NoRoute};
use crate::engine::peer_link::{self, LinkCommand, LinkHandle, LinkResult, PeerKey};
use crate::engine::status::StatusEvent;
use crate::engine::{EngineEvent, IcePolicy, PeerReport};
use crate::rtc::{self, CandidateInit, CandidateKind, PeerConfig, PeerEvent};

/// One peer connection as the engine holds it.
pub(super) struct Link {
    generation: u64,
    handle: LinkHandle,
    candidate: Option<CandidateKind>,
    /// The ICE servers (credentials) this connection was built with: see `ice_epoch`.
    ice_epoch: u64,
    /// The offerer's `connection` number of the offers we answered (answering side).
    remote_connection: Option<u64>,
    /// Local candidates wait here until this connection's first offer or answer is sent:
    /// candidates that overtook the description would reach the peer's previous connection.
    held: Option<Vec<CandidateInit>>,
    /// A relay candidate was gathered (our TURN allocation worked).
    relay_gathered: bool,
    /// Gathering finished.
    gathered: bool,
}

impl Engine {
    pub(super) fn on_remote_signal(&mut self, from: String, signal: Signal) {
        let Some(link) = self.links.get_mut(&from) else {
            tracing::debug!(%from, "signal from someone we have no call with; dropped");
            return;
        };
        let cmd = match signal {
            Signal::Offer { sdp, connection } if !self.calls.we_offer(&from) => {
                let replaced = link.remote_connection.is_some_and(|c| c != connection);
                link.remote_connection = Some(connection);
                if replaced {
                    // The offerer built a new connection: build ours anew to match.
                    let actions = self.calls.new_connection(&from, std::time::Instant::now());
                    self.apply(actions);
                    if let Some(link) = self.links.get_mut(&from) {
                        link.remote_connection = Some(connection);
                    }
                }
                LinkCommand::RemoteOffer(sdp)
            }
            Signal::Offer { .. } => {
                tracing::warn!(%from, "unexpected offer from a peer we offer to; ignored");
                return;
            }
            Signal::Answer { sdp, connection } => {
                if connection != link.generation {
                    tracing::debug!(%from, connection, "answer to a replaced connection; dropped");
                    return;
                }
                self.calls.answered(&from);
                LinkCommand::RemoteAnswer(sdp)
            }
            Signal::Candidate {
                candidate,
                sdp_mid,
                sdp_mline_index,
                username_fragment,
            } => LinkCommand::RemoteCandidate(CandidateInit {
                candidate,
                sdp_mid,
                sdp_mline_index,
                username_fragment,
            }),
            Signal::Renew => {
                if self.calls.we_offer(&from) {
                    let actions = self.calls.new_connection(&from, std::time::Instant::now());
                    self.apply(actions);
                }
                return;
            }
        };
        if let Some(link) = self.links.get(&from) {
            link.handle.send(cmd);
        }
    }

    /// New ICE servers (renewed TURN credentials) while in a call: every connection that
    /// relays through TURN on our side is rebuilt with them before the old ones expire.
    pub(super) fn on_fresh_ice(&mut self, ice: IceConfig) {
        self.set_ice(ice);
        let relayed: Vec<String> = self
            .links
            .iter()
            .filter(|(_, l)| l.candidate == Some(CandidateKind::Relay))
            .map(|(u, _)| u.clone())
            .collect();
        for user in relayed {
            if self.calls.we_offer(&user) {
                let actions = self.calls.new_connection(&user, std::time::Instant::now());
                self.apply(actions);
            } else {
                self.send(ClientMsg::Signal {
                    to: user,
                    signal: Signal::Renew,
                });
            }
        }
    }

    pub(super) fn set_ice(&mut self, ice: IceConfig) {
        if ice != self.ice {
            self.ice_epoch += 1;
        }
        self.ice = ice;
        self.ice_received = unix_now();
    }

    pub(super) fn apply(&mut self, actions: Vec<CallAction>) {
        for action in actions {
            match action {
                CallAction::Create { user, generation } => self.create_link(user, generation),
                CallAction::Offer { user, restart } => match self.links.get(&user) {
                    // An ICE restart cannot change a connection's TURN credentials: if they
                    // were renewed since it was built, build a new connection instead.
                    Some(link) if restart && link.ice_epoch != self.ice_epoch => {
                        let actions = self.calls.new_connection(&user, std::time::Instant::now());
                        self.apply(actions);
                    }
                    Some(link) => link.handle.send(LinkCommand::Offer { restart }),
                    None => {}
                },
                CallAction::Close { user, generation } => {
                    if self
                        .links
                        .get(&user)
                        .is_some_and(|l| l.generation == generation)
                    {
                        if let Some(link) = self.links.remove(&user) {
                            link.handle.send(LinkCommand::Close);
                        }
                        self.media.remove_peer(&user);
                    }
                }
                CallAction::AskRenew { user } => {
                    tracing::info!(%user, "connection hangs after ICE connected; asking for a new one");
                    self.send(ClientMsg::Signal {
                        to: user,
                        signal: Signal::Renew,
                    });
                }
                CallAction::Report { user, state } => {
                    let candidate = self.links.get(&user).and_then(|l| l.candidate);
                    self.emit(EngineEvent::Peer {
                        user,
                        state,
                        candidate: candidate.filter(|_| state == CallState::Connected),
                    });
                }
            }
        }
        self.update_status_from_calls();
    }

    pub(super) fn create_link(&mut self, user: String, generation: u64) {
        let config = PeerConfig {
            ice_servers: self
                .ice
                .servers
                .iter()
                .map(|s| rtc::IceServerSpec {
                    urls: s.urls.clone(),
                    username: s.username.clone(),
                    credential: s.credential.clone(),
                })
                .collect(),
            relay_only: self.config.ice_policy == IcePolicy::Relay,
            loopback: self.config.loopback_only,
            timeouts: rtc::IceTimeouts::default(),
        };
        if let Err(e) = self.media.add_peer(&user) {
            self.error(EngineError::Audio(e.to_string()), None);
        }
        let key = PeerKey {
            user: user.clone(),
            generation,
        };
        let handle = peer_link::spawn(
            key,
            config,
            self.track.handle(),
            self.rtc_tx.clone(),
            self.link_tx.clone(),
        );
        self.links.insert(
            user,
            Link {
                generation,
                handle,
                candidate: None,
                ice_epoch: self.ice_epoch,
                remote_connection: None,
                held: Some(Vec::new()),
                relay_gathered: false,
                gathered: false,
            },
        );
    }

    pub(super) fn is_current(&self, key: &PeerKey) -> bool {
        self.links
            .get(&key.user)
            .is_some_and(|l| l.generation == key.generation)
    }

    pub(super) fn on_peer_event(&mut self, key: PeerKey, ev: PeerEvent) {
        if !self.is_current(&key) {
            return;
        }
        match ev {
            PeerEvent::LocalCandidate(c) => {
                if c.candidate.contains(" typ relay")
                    && let Some(link) = self.links.get_mut(&key.user)
                {
                    link.relay_gathered = true;
                }
                match self.links.get_mut(&key.user).and_then(|l| l.held.as_mut()) {
                    Some(held) => held.push(c),
                    None => self.send_candidate(key.user, c),
                }
            }
            PeerEvent::State(state) => {
                let state = match state {
                    rtc::PeerState::Connecting => CallState::Connecting,
                    rtc::PeerState::Connected => CallState::Connected,
                    rtc::PeerState::Disconnected => CallState::Disconnected,
                    rtc::PeerState::Failed => CallState::Failed,
                    rtc::PeerState::Closed => CallState::Closed,
                };
                let actions = self.calls.on_state(
                    &key.user,
                    key.generation,
                    state,
                    std::time::Instant::now(),
                );
                self.apply(actions);
            }
            PeerEvent::SelectedPair { local, .. } => {
                self.calls
                    .path_found(&key.user, key.generation, std::time::Instant::now());
                let changed = self.links.get_mut(&key.user).is_some_and(|l| {
                    let changed = l.candidate != Some(local);
                    l.candidate = Some(local);
                    changed
                });
                if changed && self.calls.state(&key.user) == Some(CallState::Connected) {
                    self.emit(EngineEvent::Peer {
                        user: key.user,
                        state: CallState::Connected,
                        candidate: Some(local),
                    });
                }
            }
            PeerEvent::RemoteAudio {
                seq,
                timestamp,
                payload,
                received_at,
            } => self
                .media
                .on_packet(&key.user, seq, timestamp, payload, received_at),
            PeerEvent::GatheringComplete => {
                if let Some(link) = self.links.get_mut(&key.user) {
                    link.gathered = true;
                }
            }
        }
    }

    pub(super) fn on_link_result(&mut self, key: PeerKey, result: LinkResult) {
        if !self.is_current(&key) {
            return;
        }
        match result {
            LinkResult::LocalOffer(sdp) => {
                self.send(ClientMsg::Signal {
                    to: key.user.clone(),
                    signal: Signal::Offer {
                        sdp,
                        connection: key.generation,
                    },
                });
                self.release_candidates(key.user);
            }
            LinkResult::LocalAnswer(sdp) => {
                let connection = self
                    .links
                    .get(&key.user)
                    .and_then(|l| l.remote_connection)
                    .unwrap_or(0);
                self.send(ClientMsg::Signal {
                    to: key.user.clone(),
                    signal: Signal::Answer { sdp, connection },
                });
                self.release_candidates(key.user);
            }
            LinkResult::Error(error) => {
                let side = error.side();
                tracing::warn!(user = %key.user, ?side, %error, "peer connection problem");
                self.error(EngineError::Peer(error.to_failure(key.user)), None);
            }
        }
    }

    /// The connection's description is out: its held candidates may follow.
    pub(super) fn release_candidates(&mut self, user: String) {
        let held = self
            .links
            .get_mut(&user)
            .and_then(|l| l.held.take())
            .unwrap_or_default();
        for c in held {
            self.send_candidate(user.clone(), c);
        }
    }

    pub(super) fn send_candidate(&self, to: String, c: CandidateInit) {
        self.send(ClientMsg::Signal {
            to,
            signal: Signal::Candidate {
                candidate: c.candidate,
                sdp_mid: c.sdp_mid,
                sdp_mline_index: c.sdp_mline_index,
                username_fragment: c.username_fragment,
            },
        });
    }

    pub(super) fn update_status_from_calls(&mut self) {
        if self.calls.all_failed(std::time::Instant::now()) {
            // Gathering ended without a relay candidate although a TURN server was given.
            let turn_refused = self.links.values().any(|l| l.gathered && !l.relay_gathered);
            let why = NoRoute::diagnose(self.config.ice_policy, has_turn(&self.ice), turn_refused);
            self.set_status(StatusEvent::AllPeersFailed {
                reason: DisconnectReason::NoRoute(why),
            });
        } else if self
            .calls
            .users()
            .any(|u| self.calls.state(u) == Some(CallState::Connected))
        {
            self.set_status(StatusEvent::PeerRecovered);
        }
    }

    pub(super) fn collect_stats(&mut self) {
        let mut pending = Vec::new();
        for (user, link) in &self.links {
            let (tx, rx) = oneshot::channel();
            link.handle.send(LinkCommand::Stats(tx));
            let audio = self.media.peer_stats(user);
            let state = self.calls.state(user).unwrap_or(CallState::Closed);
            pending.push((user.clone(), state, link.candidate, audio, rx));
        }
        let out = self.stats_tx.clone();
        tokio::spawn(async move {
            let mut reports = Vec::new();
            for (user, state, candidate, audio, rx) in pending {
                let rtc = tokio::time::timeout(Duration::from_secs(2), rx)
                    .await
                    .ok()
                    .and_then(Result::ok)
                    .unwrap_or_default();
                let expected = rtc.packets_received as i64 + rtc.packets_lost.max(0);
                let jitter = audio.map(|a| a.jitter).unwrap_or_default();
                let (fec_recovered, plc_frames) =
                    audio.map_or((0, 0), |a| (a.fec_recovered, a.plc_frames));
                reports.push(PeerReport {
                    user,
                    state,
                    candidate: rtc.selected_candidate_type.or(candidate),
                    packets_received: rtc.packets_received,
                    bytes_received: rtc.bytes_received,
                    packets_sent: rtc.packets_sent,
                    bytes_sent: rtc.bytes_sent,
                    packets_lost: rtc.packets_lost,
                    loss: if expected > 0 {
                        rtc.packets_lost.max(0) as f64 / expected as f64
                    } else {
                        0.0
                    },
                    jitter_ms: rtc.jitter_ms,
                    rtt_ms: rtc.rtt_ms,
                    concealed: jitter.concealed,
                    buffer_frames: jitter.depth,
                    jitter,
                    fec_recovered,
                    plc_frames,
                    speaking: audio.is_some_and(|a| a.speaking),
                });
            }
            let _ = out.send(reports);
        });
    }
}
