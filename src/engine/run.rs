//! The engine task: one `select!` loop around the pure [`Session`], which decides, and the
//! audio pipeline ([`Media`]), which runs each frame. It reacts to the front end's commands,
//! the signaling connection, the peer connections, and two clocks (the audio frame, and the
//! session's timers, woken when it asks), and carries out the session's [`Effect`]s:
//! messages to the server, events to the front end, peer connections (one [`peer_link`] task
//! each). It makes no decision of its own beyond routing audio packets to live connections.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, mpsc, oneshot};
use tokio::time::{Instant, MissedTickBehavior};

use super::error::EngineError;
use super::loss_feedback::LossFeedback;
use super::media::{Media, MediaError};
use super::pace::{self, FrameClock};
use super::peer_link::{self, LinkCommand, LinkHandle, LinkResult, PeerKey};
use super::session::{Effect, Input, Now, Session, SessionConfig};
use super::{DeviceRole, EngineCommand, EngineConfig, EngineEvent, MIC_EVENT_EVERY, PeerReport};
use crate::audio::processing::Processing;
use crate::audio::{AudioSink, AudioSource, SinkError, SourceError, VoiceActivity};
use crate::rtc::{self, LocalAudioTrack, PeerConfig, PeerEvent};
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
    let source = config.audio_in.open_for(config.frame)?;
    let sink = config.audio_out.open_for(config.frame)?;
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
    let media = Media::new(source, sink, config.frame, config.processing)?;
    tokio::spawn(async move {
        let mut engine = Engine::new(config, media, events);
        engine.report_processing();
        engine.run(commands).await;
    });
    Ok(())
}

struct Engine {
    config: EngineConfig,
    events: mpsc::UnboundedSender<EngineEvent>,
    signaling: Option<SignalingHandle>,
    /// The rules: channels, calls, talk state, status ([`Session`]).
    session: Session,
    /// The live peer connections, one task each; the session says which ([`Effect`]).
    links: HashMap<PeerKey, LinkHandle>,
    media: Media,
    /// Our voice track and its RTP clock, owned here alone: `capture_frame` writes it, peers
    /// get a [`rtc::TrackHandle`] to bind it.
    track: LocalAudioTrack,
    /// Every peer's events: control on `rtc_rx`, handled as they come; audio packets on
    /// `audio_rx`, drained before a frame plays ([`rtc::PeerEvents`]).
    rtc_tx: rtc::PeerEvents<PeerKey>,
    rtc_rx: mpsc::UnboundedReceiver<(PeerKey, PeerEvent)>,
    audio_rx: mpsc::UnboundedReceiver<(PeerKey, PeerEvent)>,
    link_tx: mpsc::UnboundedSender<(PeerKey, LinkResult)>,
    link_rx: mpsc::UnboundedReceiver<(PeerKey, LinkResult)>,
    stats_tx: mpsc::UnboundedSender<Vec<PeerReport>>,
    stats_rx: mpsc::UnboundedReceiver<Vec<PeerReport>>,
    /// Our audio's loss as each peer reports it: (peer, packets sent, lost), for the encoder.
    loss_tx: mpsc::UnboundedSender<Vec<(String, u64, i64)>>,
    loss_rx: mpsc::UnboundedReceiver<Vec<(String, u64, i64)>>,
    loss_feedback: LossFeedback,
    expected_loss: u8,
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
        let (loss_tx, loss_rx) = mpsc::unbounded_channel();
        let session = Session::new(
            SessionConfig {
                name: config.credentials.name.clone(),
                talk_mode: config.talk_mode,
                ice_policy: config.ice_policy,
                loopback_only: config.loopback_only,
                ice_refresh: config.ice_refresh,
            },
            Now::system(),
        );
        Self {
            session,
            config,
            events,
            signaling: None,
            links: HashMap::new(),
            media,
            track: LocalAudioTrack::new("cromulent"),
            rtc_tx,
            rtc_rx,
            audio_rx,
            link_tx,
            link_rx,
            stats_tx,
            stats_rx,
            loss_tx,
            loss_rx,
            loss_feedback: LossFeedback::default(),
            expected_loss: super::loss_feedback::MIN_EXPECTED_LOSS,
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
        // Clockless ends follow the frame clocks, started (in `new`) before the poll, so each
        // frame is due by its poll.
        let speaker_paced = self.media.speaker_sets_pace();
        let mut poll = tokio::time::interval(pace::poll_interval(self.config.frame));
        poll.set_missed_tick_behavior(MissedTickBehavior::Delay);
        // Devices set their own pace: they wake the engine when they have work (a captured
        // frame complete, a speaker about to run dry), and a speaker's frames are written as
        // their packets arrive. The poll stays, for silence and in case a wake is missed.
        let device_wake = Arc::new(Notify::new());
        let wake = device_wake.clone();
        self.media.set_wake(Arc::new(move || wake.notify_one()));
        // How often the peers' reports of our audio's loss are read (RTCP comes every ~1 s).
        let mut loss_poll = tokio::time::interval(LOSS_POLL);
        loss_poll.set_missed_tick_behavior(MissedTickBehavior::Skip);
        // The session's timers: it says when it next needs a tick (`Session::next_wake`).
        let timer = tokio::time::sleep(Duration::ZERO);
        tokio::pin!(timer);
        let mut armed = None;
        // A talk spurt held for the jitter buffer's pre-roll starts when that ends.
        let spurt = tokio::time::sleep(Duration::ZERO);
        tokio::pin!(spurt);
        let mut spurt_armed = None;
        while !self.stopping {
            let wake = self.session.next_wake();
            if wake != armed {
                armed = wake;
                let at = wake.map_or_else(far_future, Instant::from_std);
                timer.as_mut().reset(at);
            }
            let start = if speaker_paced {
                self.media.next_start()
            } else {
                None
            };
            if start != spurt_armed {
                spurt_armed = start;
                spurt
                    .as_mut()
                    .reset(start.map_or_else(far_future, Instant::from_std));
            }
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
                Some((key, result)) = self.link_rx.recv() => {
                    self.input(Input::Link(key, result));
                }
                Some(reports) = self.stats_rx.recv() => self.emit(EngineEvent::Stats(reports)),
                _ = loss_poll.tick() => self.poll_loss(),
                Some(counts) = self.loss_rx.recv() => self.on_loss_reports(counts),
                _ = poll.tick() => self.on_media_poll().await,
                _ = device_wake.notified() => self.on_media_poll().await,
                Some((key, ev)) = self.audio_rx.recv(), if speaker_paced => {
                    self.on_peer_event(key, ev);
                    self.on_media_poll().await;
                }
                _ = &mut spurt, if spurt_armed.is_some() => {
                    spurt_armed = None;
                    self.on_media_poll().await;
                }
                _ = &mut timer, if armed.is_some() => {
                    armed = None;
                    self.input(Input::Tick);
                }
            }
        }
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.input(Input::Command(EngineCommand::Leave));
        if let Err(e) = self.media.finish() {
            self.error(EngineError::AudioOutput(e.to_string()));
        }
        self.emit(EngineEvent::Stopped);
    }

    /// Let the session decide on `input`, and carry out what it says.
    fn input(&mut self, input: Input) {
        for effect in self.session.handle(input, Now::system()) {
            self.carry_out(effect);
        }
    }

    fn carry_out(&mut self, effect: Effect) {
        match effect {
            Effect::Send(msg) => {
                if let Some(s) = &self.signaling {
                    s.send(msg);
                }
            }
            Effect::Emit(ev) => self.emit(ev),
            Effect::CreateLink { key, config } => self.create_link(key, config),
            Effect::Link { key, cmd } => {
                if let Some(link) = self.links.get(&key) {
                    link.send(cmd);
                }
            }
            Effect::CloseLink(key) => {
                if let Some(link) = self.links.remove(&key) {
                    link.send(LinkCommand::Close);
                }
                self.media.remove_peer(&key.user);
                self.loss_feedback.forget(&key.user);
            }
            Effect::Stop => self.stopping = true,
        }
    }

    fn create_link(&mut self, key: PeerKey, config: PeerConfig) {
        if let Err(e) = self.media.add_peer(&key.user) {
            self.error(EngineError::Audio(e.to_string()));
        }
        let handle = peer_link::spawn(
            key.clone(),
            config,
            self.track.handle(),
            self.rtc_tx.clone(),
            self.link_tx.clone(),
        );
        self.links.insert(key, handle);
    }

    // --- front end ----------------------------------------------------------------------

    fn on_command(&mut self, cmd: EngineCommand) {
        match cmd {
            EngineCommand::SetVoiceActivity {
                threshold_dbfs,
                hangover_frames,
            } => self
                .media
                .set_voice_activity(VoiceActivity::new(threshold_dbfs, hangover_frames)),
            EngineCommand::Stats => {
                self.collect_stats();
                self.report_processing();
            }
            EngineCommand::SetStage { stage, on } => {
                self.media
                    .set_processing(self.media.processing().with(stage, on));
                self.report_processing();
            }
            EngineCommand::SetNoiseLevel(noise_level) => {
                self.media.set_processing(Processing {
                    noise_level,
                    ..self.media.processing()
                });
                self.report_processing();
            }
            EngineCommand::SetVolume { user, percent } => self.media.set_volume(&user, percent),
            cmd => self.input(Input::Command(cmd)),
        }
    }

    fn report_processing(&mut self) {
        self.emit(EngineEvent::Processing {
            stages: self.media.processing(),
            echo: self.media.echo_stats(),
            cost: self.media.chain_cost(),
        });
    }

    fn on_signaling(&mut self, ev: SignalingEvent) {
        if let SignalingEvent::Lost { reason, retry_in } = &ev {
            tracing::info!(%reason, ?retry_in, "lost the server");
        }
        self.input(Input::Signaling(ev));
    }

    /// A peer's event: its audio goes to the media pipeline (if the connection is still the
    /// peer's current one), the rest to the session.
    fn on_peer_event(&mut self, key: PeerKey, ev: PeerEvent) {
        match ev {
            PeerEvent::RemoteAudio {
                seq,
                timestamp,
                payload,
                received_at,
            } => {
                if self.links.contains_key(&key) {
                    self.media
                        .on_packet(&key.user, seq, timestamp, payload, received_at);
                }
            }
            ev => self.input(Input::Peer(key, ev)),
        }
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
        // Take in every packet that arrived since the last poll before a frame plays. Without
        // a device speaker the engine does not wake for packets (at 8 users that is 350
        // wake-ups a second, and a packet is only used when a frame plays on the frame
        // clock); a device speaker plays each as soon as it is here. Each carries the time it
        // was read, for the jitter buffer.
        while let Ok((key, ev)) = self.audio_rx.try_recv() {
            self.on_peer_event(key, ev);
        }
        let (mic, speaker) = self.media.device_changes();
        for (role, change) in [
            (DeviceRole::Microphone, mic),
            (DeviceRole::Speaker, speaker),
        ] {
            if let Some(change) = change {
                tracing::info!(?role, ?change, "sound device changed");
                self.emit(EngineEvent::Device { role, change });
            }
        }
        if self.media.speaker_sets_pace() {
            // A speaker sets the pace (and a talk spurt starts as soon as it may).
            let played = self.media.play_device(now, self.session.talk());
            self.on_played(played);
        } else {
            for _ in 0..self.play_clock.due(now) {
                self.play_frame();
            }
        }
    }

    async fn capture_frame(&mut self) {
        let captured = match self.media.capture(self.session.talk()) {
            Ok(c) => c,
            Err(e) => {
                self.error(EngineError::Audio(e.to_string()));
                return;
            }
        };
        // Awaited on the frame path, but it does not wait on the network (see there).
        if let Err(e) = self
            .track
            .write_frame(captured.packet.as_deref(), self.config.frame.duration())
            .await
        {
            tracing::debug!(error = %e, "writing audio failed");
        }
        self.input(Input::MicLive(captured.mic_live));
        if self.last_mic_event.elapsed() >= MIC_EVENT_EVERY {
            self.last_mic_event = Instant::now();
            self.emit(EngineEvent::Mic {
                dbfs: captured.mic_dbfs,
                live: captured.mic_live,
            });
        }
    }

    fn play_frame(&mut self) {
        let played = self
            .media
            .play(std::time::Instant::now(), self.session.talk());
        self.on_played(played);
    }

    /// Reports the peers whose first audio just played, or the playback error.
    fn on_played(&mut self, played: Result<Vec<cromulent_protocol::UserId>, MediaError>) {
        match played {
            Ok(first_audio) => {
                for from in first_audio {
                    self.input(Input::FirstAudio(from));
                }
            }
            Err(e) => self.error(EngineError::Audio(e.to_string())),
        }
    }

    // --- statistics ---------------------------------------------------------------------

    /// Ask every live connection for its figures, and report them with the audio's once all
    /// have answered (or 2 s have passed), without holding up the loop.
    /// Ask every call for the loss its peer reports of our audio ([`Self::on_loss_reports`]).
    fn poll_loss(&mut self) {
        let mut pending = Vec::new();
        for view in self.session.links() {
            if let Some(link) = self.links.get(&view.key) {
                let (tx, rx) = oneshot::channel();
                link.stats(tx);
                pending.push((view.key.user, rx));
            }
        }
        if pending.is_empty() {
            return;
        }
        let out = self.loss_tx.clone();
        tokio::spawn(async move {
            let mut counts = Vec::new();
            for (user, rx) in pending {
                let Ok(Ok(rtc)) = tokio::time::timeout(Duration::from_secs(2), rx).await else {
                    continue;
                };
                if let Some(lost) = rtc.remote_packets_lost {
                    counts.push((user, rtc.packets_sent, lost));
                }
            }
            let _ = out.send(counts);
        });
    }

    /// The encoder expects the loss the peers see ([`LossFeedback`]).
    fn on_loss_reports(&mut self, counts: Vec<(String, u64, i64)>) {
        let now = std::time::Instant::now();
        let mut expected = self.loss_feedback.expected(now);
        for (user, sent, lost) in counts {
            expected = self.loss_feedback.report(&user, sent, lost, now);
        }
        if expected != self.expected_loss {
            tracing::info!(percent = expected, "encoder's expected loss");
            match self.media.set_expected_loss(expected) {
                Ok(()) => self.expected_loss = expected,
                Err(e) => self.error(EngineError::Audio(e.to_string())),
            }
        }
    }

    fn collect_stats(&mut self) {
        let mut pending = Vec::new();
        for view in self.session.links() {
            let Some(link) = self.links.get(&view.key) else {
                continue;
            };
            let (tx, rx) = oneshot::channel();
            link.stats(tx);
            let audio = self.media.peer_stats(&view.key.user);
            pending.push((view.key.user, view.state, view.candidate, audio, rx));
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

    // --- helpers ------------------------------------------------------------------------

    fn error(&self, error: EngineError) {
        self.emit(EngineEvent::Error {
            error,
            channel: None,
        });
    }

    fn emit(&self, ev: EngineEvent) {
        // The front end going away ends the engine through its command channel.
        let _ = self.events.send(ev);
    }
}

/// How often the peers' loss reports are read for the encoder.
const LOSS_POLL: Duration = Duration::from_secs(2);

/// A time no timer reaches (tokio's own "never" is 30 years or so ahead; a year is enough).
fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(365 * 24 * 3600)
}
