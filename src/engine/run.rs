//! The engine task: one `select!` loop that owns the engine's state and reacts to the front
//! end's commands, the signaling connection, the peer connections, and two clocks (the 20 ms
//! audio frame and a slower housekeeping tick). The decisions are made by the pure parts
//! (`talk`, `status`, `calls`, `media`); this file only wires them to the I/O.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use cromulent_protocol::{
    ChannelId, ChannelInfo, ClientMsg, ErrorReason, IceConfig, Member, PresenceChange, PresenceOp,
    ServerMsg, Signal,
};
use tokio::sync::{mpsc, oneshot};
use tokio::time::{Instant, MissedTickBehavior};

use super::calls::{CallAction, CallState, Calls};
use super::media::{Media, MediaError};
use super::peer_link::{self, LinkCommand, LinkHandle, LinkResult, PeerKey};
use super::status::{StatusEvent, VoiceStatus};
use super::talk::TalkState;
use super::{
    ChannelRef, EngineCommand, EngineConfig, EngineEvent, IcePolicy, MIC_EVENT_EVERY, PeerReport,
};
use crate::audio::{AudioSink, AudioSource, FRAME_DURATION, SinkError, SourceError, VoiceActivity};
use crate::rtc::{self, CandidateInit, CandidateKind, LocalAudioTrack, PeerConfig, PeerEvent};
use crate::signaling::{self, SignalingEvent, SignalingHandle};

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("audio input: {0}")]
    Source(#[from] SourceError),
    #[error("audio output: {0}")]
    Sink(#[from] SinkError),
    #[error(transparent)]
    Media(#[from] MediaError),
}

/// Open the audio ends (so a bad `--audio-in` fails before anything connects) and spawn.
pub fn start(
    config: EngineConfig,
    commands: mpsc::UnboundedReceiver<EngineCommand>,
    events: mpsc::UnboundedSender<EngineEvent>,
) -> Result<(), StartError> {
    let source = config.audio_in.open()?;
    let sink = config.audio_out.open()?;
    start_with_audio(config, source, sink, commands, events)
}

/// [`start`] with audio ends already opened.
pub fn start_with_audio(
    config: EngineConfig,
    source: Box<dyn AudioSource + Send>,
    sink: Box<dyn AudioSink + Send>,
    commands: mpsc::UnboundedReceiver<EngineCommand>,
    events: mpsc::UnboundedSender<EngineEvent>,
) -> Result<(), StartError> {
    let media = Media::new(source, sink)?;
    tokio::spawn(async move {
        let mut engine = Engine::new(config, media, events);
        engine.run(commands).await;
    });
    Ok(())
}

/// One peer connection as the engine holds it.
struct Link {
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

struct Engine {
    config: EngineConfig,
    events: mpsc::UnboundedSender<EngineEvent>,
    signaling: Option<SignalingHandle>,
    /// Our user id, once welcomed.
    me: Option<String>,
    /// The presence model: channel id → info, members in join order.
    channels: BTreeMap<ChannelId, ChannelInfo>,
    /// The channel the user wants to be in (re-joined after a reconnect).
    wanted: Option<ChannelId>,
    /// A join asked for before the server welcomed us.
    pending_join: Option<ChannelRef>,
    /// The channel the server has seated us in.
    current: Option<ChannelId>,
    status: VoiceStatus,
    talk: TalkState,
    /// The flags last sent to the server.
    sent_flags: Option<(bool, bool, bool)>,
    calls: Calls,
    links: HashMap<String, Link>,
    ice: IceConfig,
    /// Bumped whenever `ice` changes; webrtc-rs cannot give a live connection new ICE
    /// servers, so a connection built with an older epoch is replaced, not restarted.
    ice_epoch: u64,
    /// Unix time `ice` was received, to refresh it a quarter of its lifetime early.
    ice_received: u64,
    /// Renew TURN credentials before they expire. Only switched off (environment
    /// `CROMULENT_ICE_REFRESH=off`) to show what happens without it.
    ice_refresh: bool,
    media: Media,
    track: LocalAudioTrack,
    joined_at: Option<Instant>,
    rtc_tx: mpsc::UnboundedSender<(PeerKey, PeerEvent)>,
    rtc_rx: mpsc::UnboundedReceiver<(PeerKey, PeerEvent)>,
    link_tx: mpsc::UnboundedSender<(PeerKey, LinkResult)>,
    link_rx: mpsc::UnboundedReceiver<(PeerKey, LinkResult)>,
    stats_tx: mpsc::UnboundedSender<Vec<PeerReport>>,
    stats_rx: mpsc::UnboundedReceiver<Vec<PeerReport>>,
    last_mic_event: Instant,
    stopping: bool,
}

impl Engine {
    fn new(config: EngineConfig, media: Media, events: mpsc::UnboundedSender<EngineEvent>) -> Self {
        let (rtc_tx, rtc_rx) = mpsc::unbounded_channel();
        let (link_tx, link_rx) = mpsc::unbounded_channel();
        let (stats_tx, stats_rx) = mpsc::unbounded_channel();
        Self {
            talk: TalkState::new(config.talk_mode),
            calls: Calls::new(config.credentials.name.clone()),
            config,
            events,
            signaling: None,
            me: None,
            channels: BTreeMap::new(),
            wanted: None,
            pending_join: None,
            current: None,
            status: VoiceStatus::None,
            sent_flags: None,
            links: HashMap::new(),
            ice: IceConfig::default(),
            ice_epoch: 0,
            ice_received: 0,
            ice_refresh: std::env::var("CROMULENT_ICE_REFRESH").map_or(true, |v| v != "off"),
            media,
            track: LocalAudioTrack::new("cromulent"),
            joined_at: None,
            rtc_tx,
            rtc_rx,
            link_tx,
            link_rx,
            stats_tx,
            stats_rx,
            last_mic_event: Instant::now(),
            stopping: false,
        }
    }

    async fn run(&mut self, mut commands: mpsc::UnboundedReceiver<EngineCommand>) {
        let (sig_tx, mut sig_rx) = mpsc::unbounded_channel();
        self.signaling = Some(signaling::spawn(
            self.config.server_url.clone(),
            self.config.credentials.clone(),
            sig_tx,
        ));
        let mut frame = tokio::time::interval(FRAME_DURATION);
        frame.set_missed_tick_behavior(MissedTickBehavior::Burst);
        let mut housekeeping = tokio::time::interval(Duration::from_millis(250));
        while !self.stopping {
            tokio::select! {
                cmd = commands.recv() => match cmd {
                    Some(cmd) => self.on_command(cmd),
                    None => self.stopping = true,
                },
                ev = sig_rx.recv() => match ev {
                    Some(ev) => self.on_signaling(ev),
                    None => self.stopping = true,
                },
                Some((key, ev)) = self.rtc_rx.recv() => self.on_peer_event(key, ev),
                Some((key, result)) = self.link_rx.recv() => self.on_link_result(key, result),
                Some(reports) = self.stats_rx.recv() => self.emit(EngineEvent::Stats(reports)),
                _ = frame.tick() => self.on_frame().await,
                _ = housekeeping.tick() => self.on_housekeeping(),
            }
        }
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.leave();
        if let Err(e) = self.media.finish() {
            self.error("audio_output", e.to_string(), None);
        }
        self.emit(EngineEvent::Stopped);
    }

    // --- front end ----------------------------------------------------------------------

    fn on_command(&mut self, cmd: EngineCommand) {
        match cmd {
            EngineCommand::Join(target) => self.join(target),
            EngineCommand::Leave => self.leave(),
            EngineCommand::Talk(on) => {
                self.talk.set_talk(on);
                self.sync_flags(self.talk.mic_live(true));
            }
            EngineCommand::Mute(on) => {
                self.talk.set_muted(on);
                self.sync_flags(self.talk.mic_live(true));
            }
            EngineCommand::Deafen(on) => {
                self.talk.set_deafened(on);
                self.sync_flags(self.talk.mic_live(true));
            }
            EngineCommand::SetTalkMode(mode) => {
                self.talk.set_mode(mode);
                self.sync_flags(self.talk.mic_live(true));
            }
            EngineCommand::SetVoiceActivity {
                threshold_dbfs,
                hangover_frames,
            } => self
                .media
                .set_voice_activity(VoiceActivity::new(threshold_dbfs, hangover_frames)),
            EngineCommand::Stats => self.collect_stats(),
            EngineCommand::Shutdown => self.stopping = true,
        }
    }

    fn join(&mut self, target: ChannelRef) {
        if self.me.is_none() {
            // Not welcomed yet: join as soon as we are.
            self.pending_join = Some(target);
            return;
        }
        let Some(id) = self.resolve(&target) else {
            self.error(
                "not_found",
                format!("no voice channel named {:?}", target.0),
                None,
            );
            return;
        };
        self.wanted = Some(id);
        self.set_status(StatusEvent::JoinSent(id));
        self.joined_at = Some(Instant::now());
        self.send(ClientMsg::Join { channel: id });
    }

    fn leave(&mut self) {
        self.wanted = None;
        self.pending_join = None;
        if self.current.is_some() {
            self.send(ClientMsg::Leave);
        }
        self.left_channel();
        self.set_status(StatusEvent::Left);
    }

    fn resolve(&self, target: &ChannelRef) -> Option<ChannelId> {
        let wanted = target.0.trim();
        self.channels
            .values()
            .find(|c| c.name.eq_ignore_ascii_case(wanted))
            .or_else(|| {
                let id: ChannelId = wanted.parse().ok()?;
                self.channels.get(&id)
            })
            .map(|c| c.id)
    }

    // --- signaling ----------------------------------------------------------------------

    fn on_signaling(&mut self, ev: SignalingEvent) {
        match ev {
            SignalingEvent::Message(msg) => self.on_server(msg),
            SignalingEvent::Lost { reason, retry_in } => {
                tracing::info!(%reason, ?retry_in, "lost the server");
                self.error(
                    "signaling_lost",
                    format!("{reason}; retrying in {} ms", retry_in.as_millis()),
                    None,
                );
                self.left_channel();
                self.set_status(StatusEvent::SignalingLost { reason });
            }
            SignalingEvent::BadFrame { message } => self.error("bad_frame", message, None),
            SignalingEvent::Fatal { reason, message } => {
                self.left_channel();
                self.set_status(StatusEvent::SignalingLost {
                    reason: message.clone(),
                });
                self.emit(EngineEvent::Fatal { reason, message });
                self.stopping = true;
            }
        }
    }

    fn on_server(&mut self, msg: ServerMsg) {
        match msg {
            ServerMsg::Welcome {
                user,
                resumed,
                channels,
                ..
            } => self.on_welcome(user.id, resumed, channels),
            ServerMsg::Presence { changes } => self.on_presence(changes),
            ServerMsg::Joined {
                channel,
                ice,
                peers,
            } => self.on_joined(channel, ice, peers),
            ServerMsg::Left { channel, .. } => {
                if self.current == Some(channel) {
                    self.left_channel();
                }
            }
            ServerMsg::IceServers { ice } => self.on_fresh_ice(ice),
            ServerMsg::Signal { from, signal } => self.on_remote_signal(from, signal),
            ServerMsg::Error {
                reason,
                message,
                channel,
            } => self.on_server_error(reason, message, channel),
        }
    }

    fn on_welcome(&mut self, me: String, resumed: bool, channels: Vec<ChannelInfo>) {
        self.calls.set_me(me.clone());
        self.me = Some(me.clone());
        self.channels = channels.iter().map(|c| (c.id, c.clone())).collect();
        self.sent_flags = None;
        self.emit(EngineEvent::ServerConnected {
            user: me,
            resumed,
            channels,
        });
        self.sync_flags(self.talk.mic_live(true));
        if let Some(target) = self.pending_join.take() {
            self.join(target);
        } else if let Some(id) = self.wanted {
            self.set_status(StatusEvent::Rejoining(id));
            if !resumed {
                self.joined_at = Some(Instant::now());
                self.send(ClientMsg::Join { channel: id });
            }
            // When resumed, the server gives the seat back and a `joined` follows.
        }
    }

    fn on_presence(&mut self, changes: Vec<PresenceChange>) {
        let now = std::time::Instant::now();
        let mut actions = Vec::new();
        for change in &changes {
            let Some(channel) = self.channels.get_mut(&change.channel) else {
                continue;
            };
            let members = &mut channel.members;
            members.retain(|m| m.user != change.member.user);
            if change.op != PresenceOp::Leave {
                members.push(change.member.clone());
            }
            if Some(change.channel) == self.current {
                actions.extend(match change.op {
                    PresenceOp::Leave => self.calls.peer_gone(&change.member.user),
                    _ => self.calls.peer_present(&change.member, now),
                });
            }
        }
        self.emit(EngineEvent::Presence(changes));
        self.apply(actions);
    }

    fn on_joined(&mut self, channel: ChannelId, ice: IceConfig, peers: Vec<Member>) {
        if self.current.is_some_and(|c| c != channel) {
            self.left_channel();
        }
        self.current = Some(channel);
        self.wanted = Some(channel);
        self.set_ice(ice);
        if self.joined_at.is_none() {
            self.joined_at = Some(Instant::now());
        }
        self.set_status(StatusEvent::JoinAccepted(channel));
        let now = std::time::Instant::now();
        let actions: Vec<_> = peers
            .iter()
            .flat_map(|m| self.calls.peer_present(m, now))
            .collect();
        self.apply(actions);
    }

    fn on_server_error(
        &mut self,
        reason: ErrorReason,
        message: String,
        channel: Option<ChannelId>,
    ) {
        self.error(reason.as_str(), message.clone(), channel);
        match reason {
            ErrorReason::NotFound | ErrorReason::AlreadyInChannel | ErrorReason::AlreadyInVoice => {
                // The join was refused: do not keep retrying it.
                if self.current.is_none() {
                    self.wanted = None;
                }
                self.set_status(StatusEvent::JoinRefused {
                    reason: refusal_text(reason, &message),
                });
            }
            ErrorReason::ResumeExpired => {
                if let Some(id) = self.wanted {
                    self.joined_at = Some(Instant::now());
                    self.send(ClientMsg::Join { channel: id });
                }
            }
            _ => {}
        }
    }

    fn on_remote_signal(&mut self, from: String, signal: Signal) {
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
    fn on_fresh_ice(&mut self, ice: IceConfig) {
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

    fn set_ice(&mut self, ice: IceConfig) {
        if ice != self.ice {
            self.ice_epoch += 1;
        }
        self.ice = ice;
        self.ice_received = unix_now();
    }

    /// We are no longer in a channel (left, switched, lost the server): close every call.
    fn left_channel(&mut self) {
        self.current = None;
        let actions = self.calls.close_all();
        self.apply(actions);
        self.media.clear_peers();
    }

    // --- peers --------------------------------------------------------------------------

    fn apply(&mut self, actions: Vec<CallAction>) {
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

    fn create_link(&mut self, user: String, generation: u64) {
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
            self.error("audio", e.to_string(), None);
        }
        let key = PeerKey {
            user: user.clone(),
            generation,
        };
        let handle = peer_link::spawn(
            key,
            config,
            self.track.clone(),
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

    fn is_current(&self, key: &PeerKey) -> bool {
        self.links
            .get(&key.user)
            .is_some_and(|l| l.generation == key.generation)
    }

    fn on_peer_event(&mut self, key: PeerKey, ev: PeerEvent) {
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
            PeerEvent::RemoteAudioEnded => {}
        }
    }

    fn on_link_result(&mut self, key: PeerKey, result: LinkResult) {
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
            LinkResult::Error(message) => {
                tracing::warn!(user = %key.user, %message, "peer connection problem");
                self.error("peer", message, None);
            }
        }
    }

    /// The connection's description is out: its held candidates may follow.
    fn release_candidates(&mut self, user: String) {
        let held = self
            .links
            .get_mut(&user)
            .and_then(|l| l.held.take())
            .unwrap_or_default();
        for c in held {
            self.send_candidate(user.clone(), c);
        }
    }

    fn send_candidate(&self, to: String, c: CandidateInit) {
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

    fn update_status_from_calls(&mut self) {
        if self.calls.all_failed() {
            // Gathering ended without a relay candidate although a TURN server was given.
            let turn_refused = self.links.values().any(|l| l.gathered && !l.relay_gathered);
            let reason = match self.config.ice_policy {
                IcePolicy::Relay if !has_turn(&self.ice) => {
                    "no route to peers: relay-only but the server handed out no TURN server"
                }
                _ if !has_turn(&self.ice) => "no route to peers (no TURN server configured)",
                _ if turn_refused => {
                    "no route to peers: the TURN server refused our credentials or is unreachable \
                     (note: TURN over UDP only)"
                }
                _ => {
                    "no route to peers (direct and relayed paths failed; note: TURN over UDP only)"
                }
            };
            self.set_status(StatusEvent::AllPeersFailed {
                reason: reason.into(),
            });
        } else if self
            .calls
            .users()
            .any(|u| self.calls.state(u) == Some(CallState::Connected))
        {
            self.set_status(StatusEvent::PeerRecovered);
        }
    }

    fn collect_stats(&mut self) {
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
                    speaking: audio.is_some_and(|a| a.speaking),
                });
            }
            let _ = out.send(reports);
        });
    }

    // --- clocks -------------------------------------------------------------------------

    async fn on_frame(&mut self) {
        let now = std::time::Instant::now();
        let tick = match self.media.tick(now, &self.talk) {
            Ok(t) => t,
            Err(e) => {
                self.error("audio", e.to_string(), None);
                return;
            }
        };
        if let Err(e) = self
            .track
            .write_frame(tick.packet.as_deref(), FRAME_DURATION)
            .await
        {
            tracing::debug!(error = %e, "writing audio failed");
        }
        for from in tick.first_audio {
            let ms = self
                .joined_at
                .map(|t| t.elapsed().as_millis() as u64)
                .unwrap_or(0);
            self.emit(EngineEvent::Audio { from, ms });
        }
        self.sync_flags(tick.mic_live);
        if self.last_mic_event.elapsed() >= MIC_EVENT_EVERY {
            self.last_mic_event = Instant::now();
            self.emit(EngineEvent::Mic {
                dbfs: tick.mic_dbfs,
                live: tick.mic_live,
            });
        }
    }

    fn on_housekeeping(&mut self) {
        let actions = self.calls.on_tick(std::time::Instant::now());
        self.apply(actions);
        self.refresh_ice_if_due();
    }

    /// Ask for fresh TURN credentials a quarter of their lifetime before they expire.
    fn refresh_ice_if_due(&mut self) {
        let Some(expires_at) = self.ice.expires_at.filter(|_| self.ice_refresh) else {
            return;
        };
        if self.current.is_some() && ice_refresh_due(self.ice_received, expires_at, unix_now()) {
            // Until the reply arrives, don't ask again.
            self.ice.expires_at = None;
            self.send(ClientMsg::RefreshIce);
        }
    }

    // --- helpers ------------------------------------------------------------------------

    /// Tell the server our flags if they changed.
    fn sync_flags(&mut self, mic_live: bool) {
        let flags = (self.talk.muted(), self.talk.deafened(), mic_live);
        if self.sent_flags == Some(flags) || self.me.is_none() {
            return;
        }
        self.sent_flags = Some(flags);
        self.send(ClientMsg::VoiceState {
            muted: flags.0,
            deafened: flags.1,
            talking: flags.2,
        });
    }

    fn set_status(&mut self, event: StatusEvent) {
        if self.status.apply(event) {
            let channel_name = self
                .status
                .channel()
                .and_then(|id| self.channels.get(&id))
                .map(|c| c.name.clone());
            self.emit(EngineEvent::Status {
                status: self.status.clone(),
                channel_name,
            });
        }
    }

    fn send(&self, msg: ClientMsg) {
        if let Some(s) = &self.signaling {
            s.send(msg);
        }
    }

    fn error(&self, reason: &str, message: String, channel: Option<ChannelId>) {
        self.emit(EngineEvent::Error {
            reason: reason.to_owned(),
            message,
            channel,
        });
    }

    fn emit(&self, ev: EngineEvent) {
        // The front end going away ends the engine through its command channel.
        let _ = self.events.send(ev);
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Whether credentials received at `received` and expiring at `expires_at` (unix seconds)
/// should be renewed at `now`: a quarter of their lifetime early, at least 5 s and at most
/// 5 min before expiry.
fn ice_refresh_due(received: u64, expires_at: u64, now: u64) -> bool {
    let lifetime = expires_at.saturating_sub(received);
    let margin = (lifetime / 4).clamp(5, 300);
    now.saturating_add(margin) >= expires_at
}

fn has_turn(ice: &IceConfig) -> bool {
    ice.servers
        .iter()
        .any(|s| s.urls.iter().any(|u| u.starts_with("turn:")))
}

/// The status line's words for a refused join.
fn refusal_text(reason: ErrorReason, message: &str) -> String {
    match reason {
        ErrorReason::AlreadyInChannel => "already in this channel from another session".into(),
        ErrorReason::AlreadyInVoice => format!("already in voice elsewhere: {message}"),
        ErrorReason::NotFound => "no such channel".into(),
        _ => message.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::ice_refresh_due;

    #[test]
    fn credentials_are_renewed_a_quarter_of_their_lifetime_early() {
        // One hour: renewed 15 minutes early is capped at 5 minutes.
        assert!(!ice_refresh_due(0, 3600, 3299));
        assert!(ice_refresh_due(0, 3600, 3300));
        // Thirty seconds: 7 s early.
        assert!(!ice_refresh_due(100, 130, 122));
        assert!(ice_refresh_due(100, 130, 123));
        // Very short: at least 5 s early; already expired: at once.
        assert!(ice_refresh_due(0, 8, 3));
        assert!(ice_refresh_due(0, 10, 50));
    }
}
