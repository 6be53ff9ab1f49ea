//! The engine task: one `select!` loop that owns the engine's state and reacts to the front
//! end's commands, the signaling connection, the peer connections, and two clocks (the 20 ms
//! audio frame and a slower housekeeping tick). The decisions are made by the pure parts
//! (`talk`, `status`, `calls`, `media`); this file only wires them to the I/O.

use std::collections::HashMap;
use std::time::Duration;

use cromulent_protocol::{
    ChannelId, ChannelInfo, ClientMsg, ErrorReason, IceConfig, Member, PresenceChange, PresenceOp,
    ServerMsg,
};
use tokio::sync::mpsc;
use tokio::time::{Instant, MissedTickBehavior};

use super::calls::Calls;
use super::error::{DisconnectReason, EngineError, SignalingLoss};
use super::media::{Media, MediaError};
use super::pace::{self, FrameClock};
use super::peer_link::{LinkResult, PeerKey};
use super::presence;
use super::status::{StatusEvent, VoiceStatus};
use super::talk::TalkState;
use super::{ChannelRef, EngineCommand, EngineConfig, EngineEvent, MIC_EVENT_EVERY, PeerReport};
use crate::audio::{AudioSink, AudioSource, SinkError, SourceError, VoiceActivity};
use crate::rtc::{self, LocalAudioTrack, PeerEvent};
use crate::signaling::{self, SignalingEvent, SignalingHandle};

mod peers;

use peers::Link;

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
    let source = config.audio_in.open_for(config.frame)?;
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
    let media = Media::new(source, sink, config.frame)?;
    tokio::spawn(async move {
        let mut engine = Engine::new(config, media, events);
        engine.run(commands).await;
    });
    Ok(())
}

struct Engine {
    config: EngineConfig,
    events: mpsc::UnboundedSender<EngineEvent>,
    signaling: Option<SignalingHandle>,
    /// Our user id, once welcomed.
    me: Option<String>,
    /// The presence model: channels in the server's order, members in join order
    /// ([`presence`]).
    channels: Vec<ChannelInfo>,
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
    media: Media,
    /// Our voice track and its RTP clock, owned here alone: `capture_frame` writes it, peers
    /// get a [`rtc::TrackHandle`] to bind it.
    track: LocalAudioTrack,
    joined_at: Option<Instant>,
    /// Every peer's events: control on `rtc_rx`, handled as they come; audio packets on
    /// `audio_rx`, drained before a frame plays ([`rtc::PeerEvents`]).
    rtc_tx: rtc::PeerEvents<PeerKey>,
    rtc_rx: mpsc::UnboundedReceiver<(PeerKey, PeerEvent)>,
    audio_rx: mpsc::UnboundedReceiver<(PeerKey, PeerEvent)>,
    link_tx: mpsc::UnboundedSender<(PeerKey, LinkResult)>,
    link_rx: mpsc::UnboundedReceiver<(PeerKey, LinkResult)>,
    stats_tx: mpsc::UnboundedSender<Vec<PeerReport>>,
    stats_rx: mpsc::UnboundedReceiver<Vec<PeerReport>>,
    last_mic_event: Instant,
    /// Frame clocks of a source and a sink without clocks of their own.
    capture_clock: FrameClock,
    play_clock: FrameClock,
    stopping: bool,
}

impl Engine {
    fn new(config: EngineConfig, media: Media, events: mpsc::UnboundedSender<EngineEvent>) -> Self {
        let (frame, started) = (config.frame, std::time::Instant::now());
        let (control_tx, rtc_rx) = mpsc::unbounded_channel();
        let (audio_tx, audio_rx) = mpsc::unbounded_channel();
        let rtc_tx = rtc::PeerEvents {
            control: control_tx,
            audio: audio_tx,
        };
        let (link_tx, link_rx) = mpsc::unbounded_channel();
        let (stats_tx, stats_rx) = mpsc::unbounded_channel();
        Self {
            talk: TalkState::new(config.talk_mode),
            calls: Calls::new(config.credentials.name.clone()),
            config,
            events,
            signaling: None,
            me: None,
            channels: Vec::new(),
            wanted: None,
            pending_join: None,
            current: None,
            status: VoiceStatus::None,
            sent_flags: None,
            links: HashMap::new(),
            ice: IceConfig::default(),
            ice_epoch: 0,
            ice_received: 0,
            media,
            track: LocalAudioTrack::new("cromulent"),
            joined_at: None,
            rtc_tx,
            rtc_rx,
            audio_rx,
            link_tx,
            link_rx,
            stats_tx,
            stats_rx,
            last_mic_event: Instant::now(),
            capture_clock: FrameClock::new(started, frame),
            play_clock: FrameClock::new(started, frame),
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
        // Devices set their own pace and are polled often; clockless ends follow the frame
        // clocks, started (in `new`) before the poll, so each frame is due by its poll.
        let device_paced = self.media.frames_captured().is_some() || self.media.speaker_sets_pace();
        let mut poll = tokio::time::interval(pace::poll_interval(device_paced, self.config.frame));
        poll.set_missed_tick_behavior(MissedTickBehavior::Delay);
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
                _ = poll.tick() => self.on_media_poll().await,
                _ = housekeeping.tick() => self.on_housekeeping(),
            }
        }
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.leave();
        if let Err(e) = self.media.finish() {
            self.error(EngineError::AudioOutput(e.to_string()), None);
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
            self.error(EngineError::NoSuchChannel(target.0), None);
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

    // --- signaling ----------------------------------------------------------------------

    fn on_signaling(&mut self, ev: SignalingEvent) {
        match ev {
            SignalingEvent::Message(msg) => self.on_server(msg),
            SignalingEvent::Lost { reason, retry_in } => {
                tracing::info!(%reason, ?retry_in, "lost the server");
                let loss = SignalingLoss {
                    reason: reason.clone(),
                    retry_in,
                };
                self.error(EngineError::SignalingLost(loss), None);
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
        self.channels = channels.clone();
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
        for change in presence::apply(&mut self.channels, &changes) {
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
            ErrorReason::ResumeExpired => {
                if let Some(id) = self.wanted {
                    self.joined_at = Some(Instant::now());
                    self.send(ClientMsg::Join { channel: id });
                }
            }
            _ => {}
        }
    }

    /// We are no longer in a channel (left, switched, lost the server): close every call.
    fn left_channel(&mut self) {
        self.current = None;
        let actions = self.calls.close_all();
        self.apply(actions);
        self.media.clear_peers();
    }

    // --- clocks -------------------------------------------------------------------------

    /// Run the frames each direction needs now: capture (encode, send) what the microphone
    /// has completed, play what the speaker needs (see [`pace`]).
    async fn on_media_poll(&mut self) {
        let now = std::time::Instant::now();
        let captures = pace::frames_now(self.media.frames_captured(), &mut self.capture_clock, now);
        for _ in 0..captures {
            self.capture_frame().await;
        }
        // Take in every packet that arrived since the last poll before a frame plays. The
        // engine does not wake for packets (their channel is not in `select!`): at 8 users
        // that was 350 wake-ups a second, and a packet is only used when a frame plays.
        // Each carries the time it was read, for the jitter buffer.
        while let Ok((key, ev)) = self.audio_rx.try_recv() {
            self.on_peer_event(key, ev);
        }
        if self.media.speaker_sets_pace() {
            // A speaker sets the pace (and a talk spurt starts as soon as it may).
            let played = self.media.play_device(now, &self.talk);
            self.on_played(played);
        } else {
            for _ in 0..self.play_clock.due(now) {
                self.play_frame();
            }
        }
    }

    async fn capture_frame(&mut self) {
        let captured = match self.media.capture(&self.talk) {
            Ok(c) => c,
            Err(e) => {
                self.error(EngineError::Audio(e.to_string()), None);
                return;
            }
        };
        if let Err(e) = self
            .track
            .write_frame(captured.packet.as_deref(), self.config.frame.duration())
            .await
        {
            tracing::debug!(error = %e, "writing audio failed");
        }
        self.sync_flags(captured.mic_live);
        if self.last_mic_event.elapsed() >= MIC_EVENT_EVERY {
            self.last_mic_event = Instant::now();
            self.emit(EngineEvent::Mic {
                dbfs: captured.mic_dbfs,
                live: captured.mic_live,
            });
        }
    }

    fn play_frame(&mut self) {
        let played = self.media.play(std::time::Instant::now(), &self.talk);
        self.on_played(played);
    }

    /// Reports the peers whose first audio just played, or the playback error.
    fn on_played(&mut self, played: Result<Vec<cromulent_protocol::UserId>, MediaError>) {
        let first_audio = match played {
            Ok(f) => f,
            Err(e) => {
                self.error(EngineError::Audio(e.to_string()), None);
                return;
            }
        };
        for from in first_audio {
            let ms = self
                .joined_at
                .map(|t| t.elapsed().as_millis() as u64)
                .unwrap_or(0);
            self.emit(EngineEvent::Audio { from, ms });
        }
    }

    fn on_housekeeping(&mut self) {
        let actions = self.calls.on_tick(std::time::Instant::now());
        self.apply(actions);
        self.refresh_ice_if_due();
    }

    /// Ask for fresh TURN credentials a quarter of their lifetime before they expire.
    fn refresh_ice_if_due(&mut self) {
        let Some(expires_at) = self.ice.expires_at.filter(|_| self.config.ice_refresh) else {
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
                .and_then(|id| presence::find(&self.channels, id))
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

    fn error(&self, error: EngineError, channel: Option<ChannelId>) {
        self.emit(EngineEvent::Error { error, channel });
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
