//! The client's session rules, pure (sans-IO): which channel we want and sit in, joining
//! before and after a reconnect or a resume, the calls of the mesh and their peer connections
//! (which connection an answer or a candidate belongs to, when one is replaced, when TURN
//! credentials are renewed), the flags the server shows, the status line and its reasons.
//!
//! It owns no socket, task or clock. The engine (`engine::run`) feeds it [`Input`]s, each
//! with the time ([`Now`]), and carries out the [`Effect`]s it returns, in order: messages to
//! the server, events to the front end, peer connections to create, command or close. Every
//! rule is therefore tested here in fake time (`session/tests.rs`), and several sessions can
//! run against the server's hub in one process (`tests/session_sim.rs`).
//!
//! The mesh's own bookkeeping (who offers, generations, restarts, replacements) is
//! [`Calls`]'; this file applies its actions to the connections it knows.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use cromulent_protocol::{
    ChannelId, ChannelInfo, ClientMsg, ErrorReason, IceConfig, Member, PresenceChange, PresenceOp,
    ServerMsg, Signal, UserId,
};

use super::calls::{CallAction, CallState, Calls};
use super::error::{DisconnectReason, EngineError, NoRoute, SeatStillHeld, SignalingLoss};
use super::peer_link::{LinkCommand, LinkResult, PeerKey};
use super::presence;
use super::rejoin::{Refusal, SEAT_PATIENCE, SeatWait};
use super::status::{StatusEvent, VoiceStatus};
use super::talk::{TalkMode, TalkState};
use super::{ChannelRef, EngineCommand, EngineEvent, IcePolicy};
use crate::rtc::{self, CandidateInit, CandidateKind, PeerConfig, PeerEvent, PeerState};
use crate::signaling::SignalingEvent;

#[cfg(test)]
mod tests;

/// The time an input happened: the monotonic clock for every timer, and unix seconds for
/// the server's credential expiry times.
#[derive(Debug, Clone, Copy)]
pub struct Now {
    pub at: Instant,
    pub unix_secs: u64,
}

impl Now {
    /// The real clocks (the engine's edge; tests make their own).
    pub fn system() -> Self {
        Self {
            at: Instant::now(),
            unix_secs: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
        }
    }

    /// `d` later.
    pub fn after(self, d: Duration) -> Self {
        Self {
            at: self.at + d,
            unix_secs: self.unix_secs + d.as_secs(),
        }
    }
}

/// What the session is configured with.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// The name we log in with: our user id until the server's welcome names it.
    pub name: UserId,
    pub talk_mode: TalkMode,
    pub ice_policy: IcePolicy,
    /// Gather ICE candidates on loopback only ([`super::EngineConfig::loopback_only`]).
    pub loopback_only: bool,
    /// Renew TURN credentials before they expire ([`super::EngineConfig::ice_refresh`]).
    pub ice_refresh: bool,
}

/// Something that happened, for the session to decide on.
#[derive(Debug)]
pub enum Input {
    /// The front end's command. `SetVoiceActivity` and `Stats` are the engine's (audio and
    /// statistics); the session ignores them.
    Command(EngineCommand),
    /// The signaling connection: a server message, or the connection's fate.
    Signaling(SignalingEvent),
    /// A peer connection's event. Audio packets go straight to the media pipeline (the engine
    /// checks [`Session::is_current`]); a `RemoteAudio` given here is ignored.
    Peer(PeerKey, PeerEvent),
    /// A peer connection's answer to a [`LinkCommand`].
    Link(PeerKey, LinkResult),
    /// Whether the last captured frame opened the mic (its `talking` flag).
    MicLive(bool),
    /// The first audio from `user` since their call started has just played.
    FirstAudio(UserId),
    /// Time passed (the engine's housekeeping tick): call timers, credential renewal.
    Tick,
}

/// What the engine must do, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Send to the server.
    Send(ClientMsg),
    /// Tell the front end.
    Emit(EngineEvent),
    /// Build a peer connection (and the peer's audio decoder) for `key`.
    CreateLink { key: PeerKey, config: PeerConfig },
    /// Give the connection `key` a command.
    Link { key: PeerKey, cmd: LinkCommand },
    /// Close the connection `key` and drop the peer's audio.
    CloseLink(PeerKey),
    /// End the engine (after a `Shutdown` command or a fatal refusal).
    Stop,
}

/// A peer connection as the session sees it (for statistics).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkView {
    pub key: PeerKey,
    pub state: CallState,
    /// The local candidate type ICE selected, if it has.
    pub candidate: Option<CandidateKind>,
}

/// One peer connection as the session tracks it.
#[derive(Debug)]
struct Link {
    generation: u64,
    candidate: Option<CandidateKind>,
    /// The ICE servers (credentials) this connection was built with: see `Session::ice_epoch`.
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

/// The client's session. See the module docs.
#[derive(Debug)]
pub struct Session {
    config: SessionConfig,
    /// Our user id, once welcomed.
    me: Option<UserId>,
    /// The presence model: channels in the server's order, members in join order.
    channels: Vec<ChannelInfo>,
    /// The channel the user wants to be in (re-joined after a reconnect).
    wanted: Option<ChannelId>,
    /// A join asked for before the server welcomed us.
    pending_join: Option<ChannelRef>,
    /// The channel the server has seated us in.
    current: Option<ChannelId>,
    /// Where we sat when the server was lost: a resumed session gets that seat back by
    /// itself, any other wanted channel must be asked for.
    seat_at_loss: Option<ChannelId>,
    /// A channel was wanted when the server was lost: the next session's join of it is a
    /// rejoin, which may find the lost connection's seat still held ([`SeatWait`]).
    lost_while_wanted: bool,
    /// The rejoin after a lost connection, while it may still be refused because of the lost
    /// connection's seat; ended by a seat, a leave or a join elsewhere.
    seat_wait: Option<SeatWait>,
    /// The last `welcome` said our session was resumed (so a `resume_expired` after it means
    /// the seat is not ours after all; after a new session's welcome the join is already sent).
    resumed: bool,
    status: VoiceStatus,
    talk: TalkState,
    /// The flags last sent to the server.
    sent_flags: Option<(bool, bool, bool)>,
    calls: Calls,
    links: BTreeMap<UserId, Link>,
    ice: IceConfig,
    /// Bumped whenever `ice` changes; webrtc-rs cannot give a live connection new ICE
    /// servers, so a connection built with an older epoch is replaced, not restarted.
    ice_epoch: u64,
    /// Unix time `ice` was received, to renew it a quarter of its lifetime early.
    ice_received: u64,
    /// When the last join was sent (for the first-audio time).
    joined_at: Option<Instant>,
    /// The call actions still to carry out: an action may lead to more (a restart that must
    /// be a new connection), queued here rather than handled by recursion.
    work: VecDeque<CallAction>,
    now: Now,
    /// When the last [`Input::Tick`] came: the call timers that ran out since still wait for
    /// one, however many other inputs came in between.
    ticked: Instant,
    out: Vec<Effect>,
}

impl Session {
    pub fn new(config: SessionConfig, now: Now) -> Self {
        Self {
            talk: TalkState::new(config.talk_mode),
            calls: Calls::new(config.name.clone()),
            config,
            me: None,
            channels: Vec::new(),
            wanted: None,
            pending_join: None,
            current: None,
            seat_at_loss: None,
            lost_while_wanted: false,
            seat_wait: None,
            resumed: false,
            status: VoiceStatus::None,
            sent_flags: None,
            links: BTreeMap::new(),
            ice: IceConfig::default(),
            ice_epoch: 0,
            ice_received: 0,
            joined_at: None,
            work: VecDeque::new(),
            ticked: now.at,
            now,
            out: Vec::new(),
        }
    }

    /// Decide on `input`, which happened at `now`; returns what to do, in order.
    pub fn handle(&mut self, input: Input, now: Now) -> Vec<Effect> {
        self.now = now;
        match input {
            Input::Command(cmd) => self.on_command(cmd),
            Input::Signaling(ev) => self.on_signaling(ev),
            Input::Peer(key, ev) => self.on_peer_event(key, ev),
            Input::Link(key, result) => self.on_link_result(key, result),
            Input::MicLive(live) => self.sync_flags(live),
            Input::FirstAudio(from) => {
                let ms = self
                    .joined_at
                    .map(|t| now.at.saturating_duration_since(t).as_millis() as u64)
                    .unwrap_or(0);
                self.emit(EngineEvent::Audio { from, ms });
            }
            Input::Tick => {
                self.ticked = now.at;
                let actions = self.calls.on_tick(now.at);
                self.apply(actions);
                self.refresh_ice_if_due();
                self.rejoin_if_due();
            }
        }
        std::mem::take(&mut self.out)
    }

    // --- what the engine reads ------------------------------------------------------------

    /// Talk, mute and deafen: the audio pipeline reads them every frame.
    pub fn talk(&self) -> &TalkState {
        &self.talk
    }

    /// Our user id, once welcomed.
    pub fn me(&self) -> Option<&str> {
        self.me.as_deref()
    }

    /// The channels and who sits where, as the server's presence told us.
    pub fn channels(&self) -> &[ChannelInfo] {
        &self.channels
    }

    /// The channel the server has seated us in.
    pub fn current(&self) -> Option<ChannelId> {
        self.current
    }

    /// The channel the user wants to be in (`None` after a leave or a refused join).
    pub fn wanted(&self) -> Option<ChannelId> {
        self.wanted
    }

    /// The channel a rejoin after a lost connection waits to get back, its old seat still
    /// held (the status says `connecting` meanwhile; see [`super::rejoin`]).
    pub fn waiting_for_seat(&self) -> Option<ChannelId> {
        self.seat_wait
            .as_ref()
            .filter(|w| w.refused())
            .map(SeatWait::channel)
    }

    pub fn status(&self) -> &VoiceStatus {
        &self.status
    }

    /// When the session must next be given [`Input::Tick`]: the earliest call timer or
    /// credential renewal after the last input's time; `None` while nothing waits.
    pub fn next_wake(&self) -> Option<Instant> {
        let renewal = self
            .ice
            .expires_at
            .filter(|_| self.config.ice_refresh && self.current.is_some())
            .map(|expires_at| {
                let due = ice_refresh_at(self.ice_received, expires_at);
                let wait = due.saturating_sub(self.now.unix_secs);
                self.now.at + Duration::from_secs(wait)
            });
        // Timers are counted from the last tick, not the last input: the engine feeds the
        // session other inputs all the time (each captured frame is one), and one that lands
        // between a timer running out and its tick must not hide that timer.
        let calls = self.calls.next_deadline(self.ticked);
        let rejoin = self.seat_wait.as_ref().and_then(SeatWait::next_wake);
        calls.into_iter().chain(renewal).chain(rejoin).min()
    }

    /// Whether `key` is a live connection (not one already replaced or closed).
    pub fn is_current(&self, key: &PeerKey) -> bool {
        self.links
            .get(&key.user)
            .is_some_and(|l| l.generation == key.generation)
    }

    /// The live connections, by user.
    pub fn links(&self) -> impl Iterator<Item = LinkView> + '_ {
        self.links.iter().map(|(user, link)| LinkView {
            key: PeerKey {
                user: user.clone(),
                generation: link.generation,
            },
            state: self.calls.state(user).unwrap_or(CallState::Closed),
            candidate: link.candidate,
        })
    }

    /// Whether we make the offers to `user` (of two peers, the smaller user id).
    pub fn we_offer(&self, user: &str) -> bool {
        self.calls.we_offer(user)
    }

    // --- the front end --------------------------------------------------------------------

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
            EngineCommand::Shutdown => self.out.push(Effect::Stop),
            // The media pipeline's, handled by the engine's I/O loop.
            EngineCommand::SetVoiceActivity { .. }
            | EngineCommand::SetStage { .. }
            | EngineCommand::SetNoiseLevel(_)
            | EngineCommand::SetVolume { .. }
            | EngineCommand::Stats => {}
            EngineCommand::Say { channel, text } => self.say(channel, text),
            EngineCommand::Watch(channel) => self.send(ClientMsg::Watch { channel }),
            EngineCommand::History { channel, before } => self.send(ClientMsg::History {
                channel,
                before,
                limit: None,
            }),
        }
    }

    /// Post to `target`'s chat, or to the channel we sit in (or are joining).
    fn say(&mut self, target: Option<ChannelRef>, text: String) {
        let channel = match &target {
            Some(t) => match self.resolve(t) {
                Some(id) => Some(id),
                None => {
                    self.emit(EngineEvent::Error {
                        error: EngineError::NoSuchChannel(t.0.clone()),
                        channel: None,
                    });
                    return;
                }
            },
            None => self.current.or(self.wanted),
        };
        let Some(channel) = channel else {
            self.emit(EngineEvent::Error {
                error: EngineError::Server {
                    reason: ErrorReason::NotInVoice,
                    message: "say to which channel? join one first, or name it".into(),
                },
                channel: None,
            });
            return;
        };
        self.send(ClientMsg::Say { channel, text });
    }

    fn join(&mut self, target: ChannelRef) {
        if self.me.is_none() {
            // Not welcomed yet: join as soon as we are.
            self.pending_join = Some(target);
            return;
        }
        let Some(id) = self.resolve(&target) else {
            self.error(EngineError::NoSuchChannel(target.0), None);
            return;
        };
        if self.seat_wait.as_ref().is_some_and(|w| w.channel() != id) {
            // The user chose another channel: that join's answer is theirs to take.
            self.seat_wait = None;
        }
        self.wanted = Some(id);
        self.set_status(StatusEvent::JoinSent(id));
        self.send_join(id);
    }

    fn send_join(&mut self, id: ChannelId) {
        self.joined_at = Some(self.now.at);
        self.send(ClientMsg::Join { channel: id });
    }

    fn leave(&mut self) {
        self.wanted = None;
        self.pending_join = None;
        self.seat_wait = None;
        self.lost_while_wanted = false;
        if self.current.is_some() {
            self.send(ClientMsg::Leave);
        }
        self.left_channel();
        self.set_status(StatusEvent::Left);
    }

    fn resolve(&self, target: &ChannelRef) -> Option<ChannelId> {
        let wanted = target.0.trim();
        // By name first (the lowest id if several match), then by id.
        self.channels
            .iter()
            .filter(|c| c.name.eq_ignore_ascii_case(wanted))
            .min_by_key(|c| c.id)
            .or_else(|| {
                let id: ChannelId = wanted.parse().ok()?;
                presence::find(&self.channels, id)
            })
            .map(|c| c.id)
    }

    // --- the server -----------------------------------------------------------------------

    fn on_signaling(&mut self, ev: SignalingEvent) {
        match ev {
            SignalingEvent::Message(msg) => self.on_server(msg),
            SignalingEvent::Lost { reason, retry_in } => {
                let loss = SignalingLoss {
                    reason: reason.clone(),
                    retry_in,
                };
                self.error(EngineError::SignalingLost(loss), None);
                if self.current.is_some() {
                    self.seat_at_loss = self.current;
                }
                if self.wanted.is_some() {
                    self.lost_while_wanted = true;
                }
                // The next session's welcome starts a new wait, if one is needed.
                self.seat_wait = None;
                self.left_channel();
                self.set_status(StatusEvent::SignalingLost {
                    reason: DisconnectReason::SignalingLost(reason),
                });
            }
            SignalingEvent::BadFrame { message } => {
                self.error(EngineError::BadFrame(message), None)
            }
            SignalingEvent::Fatal { reason, message } => {
                self.left_channel();
                self.set_status(StatusEvent::SignalingLost {
                    reason: DisconnectReason::Refused {
                        reason,
                        message: message.clone(),
                    },
                });
                self.emit(EngineEvent::Fatal { reason, message });
                self.out.push(Effect::Stop);
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
            // We never ping this way: the signaling task watches WebSocket pings.
            ServerMsg::Pong { .. } => {}
            ServerMsg::Signal { from, signal } => self.on_remote_signal(from, signal),
            ServerMsg::Error {
                reason,
                message,
                channel,
            } => self.on_server_error(reason, message, channel),
            ServerMsg::Message { message } => self.emit(EngineEvent::Message(message)),
            ServerMsg::History {
                channel,
                messages,
                more,
            } => self.emit(EngineEvent::History {
                channel,
                messages,
                more,
            }),
        }
    }

    fn on_welcome(&mut self, me: UserId, resumed: bool, channels: Vec<ChannelInfo>) {
        self.calls.set_me(me.clone());
        self.me = Some(me.clone());
        self.channels = channels.clone();
        self.sent_flags = None;
        self.resumed = resumed;
        self.emit(EngineEvent::ServerConnected {
            user: me,
            resumed,
            channels,
        });
        self.sync_flags(self.talk.mic_live(true));
        let seat_at_loss = self.seat_at_loss.take();
        let lost_while_wanted = std::mem::take(&mut self.lost_while_wanted);
        if let Some(target) = self.pending_join.take() {
            self.join(target);
        } else if let Some(id) = self.wanted {
            if lost_while_wanted {
                self.seat_wait = Some(SeatWait::new(id));
            }
            self.set_status(StatusEvent::Rejoining(id));
            // A resumed session gets the seat it had back, and a `joined` follows. A channel
            // chosen while we were away (or a seat we never had) must be asked for.
            if !resumed || seat_at_loss != Some(id) {
                self.send_join(id);
            }
        }
    }

    fn on_presence(&mut self, changes: Vec<PresenceChange>) {
        let own_leave = changes
            .iter()
            .any(|c| c.op == PresenceOp::Leave && self.me.as_ref() == Some(&c.member.user));
        let mut actions = Vec::new();
        for change in presence::apply(&mut self.channels, &changes) {
            if Some(change.channel) == self.current {
                actions.extend(match change.op {
                    PresenceOp::Leave => self.calls.peer_gone(&change.member.user),
                    _ => self.calls.peer_present(&change.member, self.now.at),
                });
            }
        }
        self.emit(EngineEvent::Presence(changes));
        self.apply(actions);
        if own_leave && self.current.is_none() {
            // A seat of ours was released: perhaps the lost connection's we are waiting for.
            let ask = self.seat_wait.as_mut().and_then(|w| {
                let ask = w.on_own_leave();
                ask.then_some(w.channel())
            });
            if let Some(id) = ask {
                self.send_join(id);
            }
        }
    }

    fn on_joined(&mut self, channel: ChannelId, ice: IceConfig, peers: Vec<Member>) {
        if self.wanted.is_none() {
            // A seat we no longer want: the user left while the connection was down (and a
            // resume gave the seat back) or before the join was answered. Give it back.
            self.send(ClientMsg::Leave);
            return;
        }
        if self.current.is_some_and(|c| c != channel) {
            self.left_channel();
        }
        self.current = Some(channel);
        self.wanted = Some(channel);
        self.seat_wait = None;
        self.set_ice(ice);
        if self.joined_at.is_none() {
            self.joined_at = Some(self.now.at);
        }
        self.set_status(StatusEvent::JoinAccepted(channel));
        let now = self.now.at;
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
        let seated_elsewhere = matches!(
            reason,
            ErrorReason::AlreadyInChannel | ErrorReason::AlreadyInVoice
        );
        if seated_elsewhere && self.current.is_none() && self.wait_for_old_seat() {
            return;
        }
        let refused = EngineError::Server {
            reason,
            message: message.clone(),
        };
        self.error(refused, channel);
        match reason {
            ErrorReason::NotFound | ErrorReason::AlreadyInChannel | ErrorReason::AlreadyInVoice => {
                // The join was refused: do not keep retrying it.
                if self.current.is_none() {
                    self.wanted = None;
                }
                self.set_status(StatusEvent::JoinRefused {
                    reason: DisconnectReason::JoinRefused { reason, message },
                });
            }
            ErrorReason::ClusterUnavailable
                if channel.is_some() && channel == self.wanted && self.current != channel =>
            {
                // Cluster mode without its shared state could not seat us now: say so in the
                // status instead of "connecting" for ever. The channel stays wanted, so the
                // join is asked again once the connection is remade.
                self.set_status(StatusEvent::JoinRefused {
                    reason: DisconnectReason::JoinRefused { reason, message },
                });
            }
            ErrorReason::ResumeExpired if self.resumed => {
                // The seat was not kept after all: ask for it anew. (After a new session's
                // welcome — the server's order — the join is on its way already.) The welcome
                // started the wait for the old seat if there was one.
                self.resumed = false;
                if let Some(id) = self.wanted {
                    self.send_join(id);
                }
            }
            _ => {}
        }
    }

    /// A rejoin after a lost connection was refused as seated elsewhere: wait for the lost
    /// connection's seat to be released (saying so the first time) and return true, or
    /// return false when there is no such rejoin or the patience has run out (the refusal is
    /// then final, as for any join).
    fn wait_for_old_seat(&mut self) -> bool {
        let Some(wait) = self.seat_wait.as_mut() else {
            return false;
        };
        let channel = wait.channel();
        match wait.on_refused(self.now.at) {
            Refusal::FirstWait => {
                let name = presence::find(&self.channels, channel).map(|c| c.name.clone());
                let held = SeatStillHeld {
                    channel,
                    name,
                    patience: SEAT_PATIENCE,
                };
                self.error(EngineError::SeatStillHeld(held), Some(channel));
                true
            }
            Refusal::StillWaiting => {
                tracing::debug!(channel, "rejoin refused again; the old seat is still held");
                true
            }
            Refusal::GiveUp => {
                self.seat_wait = None;
                false
            }
        }
    }

    /// Ask for the seat again if the wait's timer is due.
    fn rejoin_if_due(&mut self) {
        let now = self.now.at;
        let due = self
            .seat_wait
            .as_mut()
            .and_then(|w| w.due(now).then_some(w.channel()));
        if let Some(id) = due {
            self.send_join(id);
        }
    }

    /// We are no longer in a channel (left, switched, lost the server): close every call.
    fn left_channel(&mut self) {
        self.current = None;
        let actions = self.calls.close_all();
        self.apply(actions);
    }

    // --- peers' signals -------------------------------------------------------------------

    fn on_remote_signal(&mut self, from: UserId, signal: Signal) {
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
                    let actions = self.calls.new_connection(&from, self.now.at);
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
                    let actions = self.calls.new_connection(&from, self.now.at);
                    self.apply(actions);
                }
                return;
            }
        };
        self.command_link(&from, cmd);
    }

    /// New ICE servers (renewed TURN credentials) while in a call: every connection that
    /// relays through TURN on our side is rebuilt with them before the old ones expire.
    fn on_fresh_ice(&mut self, ice: IceConfig) {
        self.set_ice(ice);
        let relayed: Vec<UserId> = self
            .links
            .iter()
            .filter(|(_, l)| l.candidate == Some(CandidateKind::Relay))
            .map(|(u, _)| u.clone())
            .collect();
        for user in relayed {
            if self.calls.we_offer(&user) {
                let actions = self.calls.new_connection(&user, self.now.at);
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
        self.ice_received = self.now.unix_secs;
    }

    /// Ask for fresh TURN credentials a quarter of their lifetime before they expire.
    fn refresh_ice_if_due(&mut self) {
        let Some(expires_at) = self.ice.expires_at.filter(|_| self.config.ice_refresh) else {
            return;
        };
        if self.current.is_some()
            && ice_refresh_due(self.ice_received, expires_at, self.now.unix_secs)
        {
            // Until the reply arrives, don't ask again.
            self.ice.expires_at = None;
            self.send(ClientMsg::RefreshIce);
        }
    }

    // --- peer connections -----------------------------------------------------------------

    /// Carry out the calls' actions, and whatever they lead to, then update the status.
    fn apply(&mut self, actions: Vec<CallAction>) {
        self.work.extend(actions);
        while let Some(action) = self.work.pop_front() {
            self.act(action);
        }
        self.update_status_from_calls();
    }

    fn act(&mut self, action: CallAction) {
        match action {
            CallAction::Create { user, generation } => self.create_link(user, generation),
            CallAction::Offer { user, restart } => match self.links.get(&user) {
                // An ICE restart cannot change a connection's TURN credentials: if they were
                // renewed since it was built, build a new connection instead.
                Some(link) if restart && link.ice_epoch != self.ice_epoch => {
                    let more = self.calls.new_connection(&user, self.now.at);
                    self.work.extend(more);
                }
                Some(_) => self.command_link(&user, LinkCommand::Offer { restart }),
                None => {}
            },
            CallAction::Close { user, generation } => {
                if self
                    .links
                    .get(&user)
                    .is_some_and(|l| l.generation == generation)
                {
                    self.links.remove(&user);
                    self.out
                        .push(Effect::CloseLink(PeerKey { user, generation }));
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

    fn create_link(&mut self, user: UserId, generation: u64) {
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
        let key = PeerKey {
            user: user.clone(),
            generation,
        };
        self.out.push(Effect::CreateLink { key, config });
        self.links.insert(
            user,
            Link {
                generation,
                candidate: None,
                ice_epoch: self.ice_epoch,
                remote_connection: None,
                held: Some(Vec::new()),
                relay_gathered: false,
                gathered: false,
            },
        );
    }

    fn command_link(&mut self, user: &str, cmd: LinkCommand) {
        if let Some(link) = self.links.get(user) {
            let key = PeerKey {
                user: user.to_owned(),
                generation: link.generation,
            };
            self.out.push(Effect::Link { key, cmd });
        }
    }

    fn on_peer_event(&mut self, key: PeerKey, ev: PeerEvent) {
        if !self.is_current(&key) {
            return;
        }
        match ev {
            PeerEvent::LocalCandidate(c) => {
                let Some(link) = self.links.get_mut(&key.user) else {
                    return;
                };
                if c.kind() == Some(CandidateKind::Relay) {
                    link.relay_gathered = true;
                }
                match link.held.as_mut() {
                    Some(held) => held.push(c),
                    None => self.send_candidate(key.user, c),
                }
            }
            PeerEvent::State(state) => {
                let state = match state {
                    PeerState::Connecting => CallState::Connecting,
                    PeerState::Connected => CallState::Connected,
                    PeerState::Disconnected => CallState::Disconnected,
                    PeerState::Failed => CallState::Failed,
                    PeerState::Closed => CallState::Closed,
                };
                let actions = self
                    .calls
                    .on_state(&key.user, key.generation, state, self.now.at);
                self.apply(actions);
            }
            PeerEvent::SelectedPair { local, .. } => {
                self.calls
                    .path_found(&key.user, key.generation, self.now.at);
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
            PeerEvent::GatheringComplete => {
                if let Some(link) = self.links.get_mut(&key.user) {
                    link.gathered = true;
                }
            }
            PeerEvent::RemoteAudio { .. } => {}
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
            LinkResult::Error(error) => {
                let side = error.side();
                tracing::warn!(user = %key.user, ?side, %error, "peer connection problem");
                self.error(EngineError::Peer(error.to_failure(key.user)), None);
            }
        }
    }

    /// The connection's description is out: its held candidates may follow.
    fn release_candidates(&mut self, user: UserId) {
        let held = self
            .links
            .get_mut(&user)
            .and_then(|l| l.held.take())
            .unwrap_or_default();
        for c in held {
            self.send_candidate(user.clone(), c);
        }
    }

    fn send_candidate(&mut self, to: UserId, c: CandidateInit) {
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
        if self.calls.all_failed(self.now.at) {
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

    // --- helpers --------------------------------------------------------------------------

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
                .and_then(|id| presence::find(&self.channels, id))
                .map(|c| c.name.clone());
            self.emit(EngineEvent::Status {
                status: self.status.clone(),
                channel_name,
            });
        }
    }

    fn send(&mut self, msg: ClientMsg) {
        self.out.push(Effect::Send(msg));
    }

    fn error(&mut self, error: EngineError, channel: Option<ChannelId>) {
        self.emit(EngineEvent::Error { error, channel });
    }

    fn emit(&mut self, ev: EngineEvent) {
        self.out.push(Effect::Emit(ev));
    }
}

/// When (unix seconds) credentials received at `received` and expiring at `expires_at` are
/// to be renewed: a quarter of their lifetime early, at least 5 s and at most 5 min before
/// expiry.
fn ice_refresh_at(received: u64, expires_at: u64) -> u64 {
    let lifetime = expires_at.saturating_sub(received);
    let margin = (lifetime / 4).clamp(5, 300);
    expires_at.saturating_sub(margin)
}

/// Whether those credentials should be renewed at `now`.
fn ice_refresh_due(received: u64, expires_at: u64, now: u64) -> bool {
    now >= ice_refresh_at(received, expires_at)
}

fn has_turn(ice: &IceConfig) -> bool {
    ice.servers
        .iter()
        .any(|s| s.urls.iter().any(|u| u.starts_with("turn:")))
}
