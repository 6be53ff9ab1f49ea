//! The voice engine, shared by the TUI and `cromulent headless`: signaling, one WebRTC call
//! per peer (full mesh), the audio pipeline and the talk and connection state. Front ends
//! send [`EngineCommand`]s and receive [`EngineEvent`]s; they never touch sockets or WebRTC.
//!
//! - [`session`]: the client's rules as one pure state machine (channels, joins, resume, the
//!   mesh's connections, flags, status), driven with time as an argument; it uses
//! - [`talk`], [`status`], [`calls`], [`rejoin`]: smaller pure state machines, each tested on
//!   its own;
//! - [`error`]: what goes wrong, as typed enums with their wire reasons and words;
//! - [`presence`]: the channel roster, kept live from presence diffs (one copy for all front
//!   ends);
//! - [`media`]: the per-frame audio pipeline, synchronous; [`pace`]: when it runs;
//! - [`peer_link`]: one task per peer connection around [`crate::rtc`];
//! - `run`: the engine task, one `select!` loop that feeds the session its inputs and
//!   carries out its effects, and runs the media pipeline.

pub mod calls;
pub mod chain_cost;
pub mod error;
pub mod loss_feedback;
pub mod media;
pub mod pace;
pub mod peer_link;
pub mod presence;
pub mod rejoin;
mod run;
pub mod session;
pub mod status;
pub mod talk;

use std::time::Duration;

use cromulent_protocol::{
    ChannelId, ChannelInfo, ChatMessage, ErrorReason, MessageId, PresenceChange, UserId,
};
use tokio::sync::mpsc;

use crate::audio::processing::{EchoStats, NoiseLevel, Processing, Stage};
use crate::audio::{
    AudioSink, AudioSource, DeviceChange, FrameSize, JitterStats, SinkSpec, SourceSpec,
};
use crate::engine::chain_cost::ChainCost;
use crate::rtc::CandidateKind;
use crate::signaling::Credentials;

pub use calls::CallState;
pub use error::{
    DisconnectReason, EngineError, NoRoute, PeerFailure, SeatStillHeld, Side, SignalingLoss,
};
pub use run::StartError;
pub use status::VoiceStatus;
pub use talk::{TalkMode, TalkState};

/// Which ICE candidates may be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IcePolicy {
    /// Direct (host, server-reflexive) and relayed.
    All,
    /// Relayed through TURN only (hides your address from peers).
    Relay,
}

impl std::str::FromStr for IcePolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "all" => Ok(Self::All),
            "relay" => Ok(Self::Relay),
            _ => Err(format!("unknown ICE policy {s:?}: use all or relay")),
        }
    }
}

#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// `ws://HOST:PORT` or `wss://…`.
    pub server_url: String,
    pub credentials: Credentials,
    pub talk_mode: TalkMode,
    pub ice_policy: IcePolicy,
    pub audio_in: SourceSpec,
    pub audio_out: SinkSpec,
    /// Gather ICE candidates on loopback only. On when the server is on a loopback address
    /// (everyone is on this machine: the demo and the tests).
    pub loopback_only: bool,
    /// Our frame (and packet) length. Peers may use either; each is decoded on its own.
    pub frame: FrameSize,
    /// Capture processing stages to start with ([`SourceSpec::default_processing`]: all on a
    /// microphone, none on a tone or a file); [`EngineCommand::SetStage`] changes them.
    pub processing: Processing,
    /// Renew TURN credentials before they expire. Off only to show what happens without it
    /// (`cromulent headless` reads `CROMULENT_ICE_REFRESH=off` for that test).
    pub ice_refresh: bool,
}

/// A channel named by the user: a name (case-insensitive) or an id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelRef(pub String);

#[derive(Debug)]
pub enum EngineCommand {
    Join(ChannelRef),
    Leave,
    Talk(bool),
    Mute(bool),
    Deafen(bool),
    /// Change how the mic opens (the talk switch resets to the mode's resting state).
    SetTalkMode(TalkMode),
    /// Tune the voice-activity detector: speech at or above `threshold_dbfs` opens the mic,
    /// which stays open `hangover_frames` quiet frames (20 ms each) after the last loud one.
    SetVoiceActivity {
        threshold_dbfs: f32,
        hangover_frames: u32,
    },
    /// Play `user` at `percent` of their level (0 mutes them for us alone, up to
    /// [`MAX_VOLUME_PERCENT`]); kept for a user not in the call yet, applied when they are.
    SetVolume {
        user: UserId,
        percent: u16,
    },
    /// Turn one capture processing stage on or off (answered by [`EngineEvent::Processing`]).
    SetStage {
        stage: Stage,
        on: bool,
    },
    /// Set the noise stage's level (answered by [`EngineEvent::Processing`]; the stage keeps
    /// its on or off).
    SetNoiseLevel(NoiseLevel),
    /// Report a [`EngineEvent::Stats`].
    Stats,
    /// Post to a channel's chat: the one named, else the one we sit in (or are joining).
    Say {
        channel: Option<ChannelRef>,
        text: String,
    },
    /// Follow this channel's chat live besides the one we sit in (the one on screen); `None`
    /// follows none.
    Watch(Option<ChannelId>),
    /// Ask for a page of a channel's history, older than `before` (or the newest).
    History {
        channel: ChannelId,
        before: Option<MessageId>,
    },
    /// Leave, close everything, finish the audio output, then end the engine.
    Shutdown,
}

/// Per-peer figures for the stats event and the peers panel.
#[derive(Debug, Clone, PartialEq)]
pub struct PeerReport {
    pub user: UserId,
    pub state: CallState,
    pub candidate: Option<CandidateKind>,
    pub packets_received: u64,
    pub bytes_received: u64,
    pub packets_sent: u64,
    pub bytes_sent: u64,
    /// Inbound packets lost (RTP sequence gaps).
    pub packets_lost: i64,
    /// Fraction of inbound packets lost, 0..1.
    pub loss: f64,
    /// Inbound interarrival jitter, ms: RFC 3550 as written, over every RTP packet the adapter
    /// read (`rtc::PeerStats::jitter_ms`, computed by `crate::rtp::ReceiverStats`). This is the
    /// reported figure because it is the standard one (what an RTCP receiver report carries) and
    /// covers the whole stream, also packets the jitter buffer never sees or a buffer that was
    /// replaced. `jitter.jitter_ms` is the buffer's own sizing input from the same RFC 3550 core
    /// (`crate::rtp::jitter`), filtered on purpose; read it only to explain the buffer's depth.
    pub jitter_ms: f64,
    pub rtt_ms: Option<f64>,
    /// Frames concealed by the jitter buffer / decoder.
    pub concealed: u64,
    /// Current jitter-buffer depth in frames.
    pub buffer_frames: usize,
    /// The receive jitter buffer's counters (lost, late, underruns, target depth …), for
    /// benchmarks and diagnostics.
    pub jitter: JitterStats,
    /// Lost frames rebuilt from in-band FEC.
    pub fec_recovered: u64,
    /// Frames the decoder concealed (PLC): lost, late, or the buffer running dry.
    pub plc_frames: u64,
    /// Whether the peer's decoded audio is loud enough to count as speaking.
    pub speaking: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub enum EngineEvent {
    /// Connected (again) to the server; `channels` is the presence snapshot.
    ServerConnected {
        user: UserId,
        resumed: bool,
        channels: Vec<ChannelInfo>,
    },
    /// Presence changes, as the server sent them.
    Presence(Vec<PresenceChange>),
    /// The voice connection state changed (status line).
    Status {
        status: VoiceStatus,
        /// Name of the channel concerned, if any.
        channel_name: Option<String>,
    },
    /// Something went wrong that the user should know.
    Error {
        error: EngineError,
        /// The channel concerned, if the server named one.
        channel: Option<ChannelId>,
    },
    /// A peer connection's state changed.
    Peer {
        user: UserId,
        state: CallState,
        candidate: Option<CandidateKind>,
    },
    /// First audio decoded from a peer, `ms` after our join.
    Audio {
        from: UserId,
        ms: u64,
    },
    /// The microphone: level of the last frame and whether it is live.
    Mic {
        dbfs: f32,
        live: bool,
    },
    Stats(Vec<PeerReport>),
    /// The capture processing stages now on, the echo canceller's figures and what the
    /// stages have cost since they were set: at start, after [`EngineCommand::SetStage`] and
    /// with every [`EngineEvent::Stats`].
    Processing {
        stages: Processing,
        echo: EchoStats,
        cost: ChainCost,
    },
    /// The microphone or speaker in use changed under the call (unplugged, the system's
    /// default changed): now on another device, or lost.
    Device {
        role: DeviceRole,
        change: DeviceChange,
    },
    /// A chat message, live.
    Message(ChatMessage),
    /// A page of a channel's chat history, oldest first; `more` when older ones exist.
    History {
        channel: ChannelId,
        messages: Vec<ChatMessage>,
        more: bool,
    },
    /// The server refused us for good (e.g. bad token); the engine has stopped.
    Fatal {
        reason: ErrorReason,
        message: String,
    },
    /// The engine has finished (after `Shutdown` or a fatal error).
    Stopped,
}

/// The way in to a running engine.
#[derive(Debug, Clone)]
pub struct EngineHandle {
    tx: mpsc::UnboundedSender<EngineCommand>,
}

impl EngineHandle {
    pub fn send(&self, cmd: EngineCommand) {
        // After the engine stopped there is nothing to command.
        let _ = self.tx.send(cmd);
    }
}

/// Which sound device an [`EngineEvent::Device`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceRole {
    Microphone,
    Speaker,
}

impl DeviceRole {
    pub fn name(self) -> &'static str {
        match self {
            Self::Microphone => "microphone",
            Self::Speaker => "speaker",
        }
    }
}

/// The loudest a peer can be turned up: twice their level.
pub const MAX_VOLUME_PERCENT: u16 = 200;

/// How often the engine emits a `Mic` event (for meters).
pub const MIC_EVENT_EVERY: Duration = Duration::from_millis(100);

/// The runtime a client (the terminal client, `cromulent headless`) runs on: tokio's
/// multi-thread scheduler with one worker. A client's whole work is a few percent of a core
/// (BENCHMARKS.md, "Client cost"); a second worker only adds wake-ups from one worker to the
/// other as packets, timers and the engine's tasks bounce between them (8-user call on sound
/// devices: 15.2-16.0 -> 14.0 % of a core). Blocking work still has tokio's blocking pool.
/// `TOKIO_WORKER_THREADS` overrides the count, for measuring.
pub fn client_runtime() -> std::io::Result<tokio::runtime::Runtime> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if std::env::var_os("TOKIO_WORKER_THREADS").is_none() {
        builder.worker_threads(1);
    }
    builder.enable_all().build()
}

/// Start the engine on the current tokio runtime.
pub fn spawn(
    config: EngineConfig,
) -> Result<(EngineHandle, mpsc::UnboundedReceiver<EngineEvent>), run::StartError> {
    let (tx, rx) = mpsc::unbounded_channel();
    let (events_tx, events_rx) = mpsc::unbounded_channel();
    run::start(config, rx, events_tx)?;
    Ok((EngineHandle { tx }, events_rx))
}

/// Start the engine with audio ends the caller opened itself (`config.audio_in`/`audio_out`
/// are then only descriptive). For front ends that must know whether a sound device opened
/// (the TUI) or that wire a source to a sink (the demo's echo bot).
pub fn spawn_with_audio(
    config: EngineConfig,
    source: Box<dyn AudioSource + Send>,
    sink: Box<dyn AudioSink + Send>,
) -> Result<(EngineHandle, mpsc::UnboundedReceiver<EngineEvent>), run::StartError> {
    let (tx, rx) = mpsc::unbounded_channel();
    let (events_tx, events_rx) = mpsc::unbounded_channel();
    run::start_with_audio(config, source, sink, rx, events_tx)?;
    Ok((EngineHandle { tx }, events_rx))
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_client_runs_on_one_worker_with_timers_and_io() {
        let rt = super::client_runtime().unwrap();
        if std::env::var_os("TOKIO_WORKER_THREADS").is_none() {
            assert_eq!(rt.metrics().num_workers(), 1);
        }
        // Timers and sockets are enabled (the engine needs both).
        rt.block_on(async {
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        });
    }
}
