//! Everything the screen shows, as plain data. Changed only by [`super::update`], read only by
//! [`super::view`]. No I/O, no channels, no clocks: a test builds one by hand.
//! It must never read a clock or hold a handle to the engine or the terminal: instants in it
//! come from `Msg::Tick`.

use std::collections::BTreeMap;
use std::time::Instant;

use cromulent_protocol::{ChannelId, ChannelInfo, ErrorReason, Member, UserId};

use super::chat::Chat;
use super::hold::RepeatHold;
use super::keys::KeyMap;
use crate::audio::processing::Processing;
use crate::engine::{CallState, SignalingLoss, TalkMode, TalkState, VoiceStatus, presence};
use crate::rtc::CandidateKind;

/// How the push-to-talk key behaves, decided once at start from what the terminal can report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PttStyle {
    /// The terminal reports key release (kitty keyboard protocol): talk while held.
    Hold,
    /// It does not (most terminals, SSH, tmux): a held key is seen by its auto-repeat, and a
    /// tap toggles ([`super::hold::RepeatHold`]).
    Repeat,
}

/// The signaling connection, for the title bar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerLink {
    Connecting,
    Connected,
    /// Lost; the engine is reconnecting.
    Lost(SignalingLoss),
    /// Refused for good (e.g. a bad token); the engine has stopped. `message` is the server's.
    Failed {
        reason: ErrorReason,
        message: String,
    },
}

/// A microphone or speaker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Device {
    /// In use; the text says which and how (`default, 44100 Hz → 48 kHz`).
    Ready(String),
    /// None usable: the client runs without it, and says why.
    Missing(String),
}

/// One peer of the joined channel, as the peers panel shows it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PeerView {
    pub state: Option<CallState>,
    pub candidate: Option<CandidateKind>,
    pub rtt_ms: Option<f64>,
    /// Fraction lost, 0..1, once stats arrived.
    pub loss: Option<f64>,
    /// Heard speaking (from the decoded audio level, not from the peer's intent).
    pub speaking: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoticeLevel {
    Info,
    Error,
}

/// A one-line message under the panels that goes away by itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    pub text: String,
    pub level: NoticeLevel,
    /// Ticks until it goes (time reaches the model only as ticks, so update stays pure).
    pub ticks_left: u32,
}

/// The screen's state.
#[derive(Debug, Clone)]
pub struct Model {
    pub server_url: String,
    /// Our user id: the name asked for until the server's welcome says otherwise.
    pub me: UserId,
    pub server: ServerLink,
    /// Voice channels in the server's order, members in join order (live from presence).
    pub channels: Vec<ChannelInfo>,
    /// Index into `channels` of the selected one.
    pub cursor: usize,
    /// The voice connection (status line).
    pub voice: VoiceStatus,
    /// The channel name the engine gave with the last status.
    pub voice_channel_name: Option<String>,
    /// Talk rules, mirrored from what we told the engine (same pure state machine).
    pub talk: TalkState,
    pub ptt: PttStyle,
    /// The talk key's hold, told by its repeats (`PttStyle::Repeat` only).
    pub hold: RepeatHold,
    /// Whether the engine sends our audio now (its truth, including voice activity).
    pub mic_live: bool,
    /// Level of the last captured frame.
    pub mic_dbfs: f32,
    pub input: Device,
    pub output: Device,
    /// Peers of the joined channel.
    pub peers: BTreeMap<UserId, PeerView>,
    /// When the last stats request went out.
    pub last_stats: Option<Instant>,
    pub help: bool,
    pub notice: Option<Notice>,
    pub keys: KeyMap,
    /// Quit was asked for; waiting for the engine to stop.
    pub quitting: bool,
    /// The chat pane (the selected channel's messages, the input line).
    pub chat: Chat,
    /// Volumes the user set, in percent by user id (absent: 100), as remembered on disk.
    pub volumes: BTreeMap<UserId, u16>,
    /// The person the volume keys act on (the first in the peers panel when unset or gone).
    pub selected_peer: Option<UserId>,
    /// Capture processing stages on, as the engine last reported them.
    pub processing: Processing,
    /// Draw without colours (`NO_COLOR`): every state is also in words, bold and reverse stay.
    pub no_color: bool,
    /// Draw the screen's own glyphs (frames, dots, arrows, meters) in ASCII.
    pub ascii: bool,
}

impl Model {
    pub fn new(
        server_url: String,
        me: UserId,
        talk_mode: TalkMode,
        ptt: PttStyle,
        keys: KeyMap,
    ) -> Self {
        Self {
            server_url,
            me,
            processing: Processing::NONE,
            hold: RepeatHold::new(),
            server: ServerLink::Connecting,
            channels: Vec::new(),
            cursor: 0,
            voice: VoiceStatus::None,
            voice_channel_name: None,
            talk: TalkState::new(talk_mode),
            ptt,
            mic_live: false,
            mic_dbfs: crate::audio::FLOOR_DBFS,
            input: Device::Missing("not opened".into()),
            output: Device::Missing("not opened".into()),
            peers: BTreeMap::new(),
            last_stats: None,
            help: false,
            notice: None,
            keys,
            quitting: false,
            chat: Chat::default(),
            volumes: BTreeMap::new(),
            selected_peer: None,
            no_color: false,
            ascii: false,
        }
    }

    /// Whether to show the mic as live: the engine says it sent the last frame, and nothing
    /// pressed since (mute, deafen, releasing the talk key) has closed it — the engine applies
    /// those before its next frame, its next report just hasn't arrived yet.
    pub fn mic_is_live(&self) -> bool {
        self.mic_live && self.talk.mic_live(true)
    }

    pub fn selected(&self) -> Option<&ChannelInfo> {
        self.channels.get(self.cursor)
    }

    pub fn channel(&self, id: ChannelId) -> Option<&ChannelInfo> {
        presence::find(&self.channels, id)
    }

    /// The channel we are in or joining, if any.
    pub fn voice_channel(&self) -> Option<ChannelId> {
        match &self.voice {
            VoiceStatus::Connecting { channel } | VoiceStatus::Connected { channel } => {
                Some(*channel)
            }
            _ => None,
        }
    }

    /// Name for the status line: the engine's, else ours, else the id.
    pub fn voice_channel_label(&self) -> String {
        let id = self.voice.channel();
        self.voice_channel_name
            .clone()
            .or_else(|| id.and_then(|id| self.channel(id)).map(|c| c.name.clone()))
            .or_else(|| id.map(|id| format!("channel {id}")))
            .unwrap_or_default()
    }

    /// The other members of the joined channel, in join order.
    /// The person the volume keys act on: the selected one if still here, else the first.
    pub fn volume_target(&self) -> Option<&Member> {
        let members = self.peer_members();
        members
            .iter()
            .find(|m| Some(&m.user) == self.selected_peer.as_ref())
            .or(members.first())
            .copied()
    }

    /// A user's volume in percent (100 unless the user set it).
    pub fn volume(&self, user: &str) -> u16 {
        self.volumes.get(user).copied().unwrap_or(100)
    }

    pub fn peer_members(&self) -> Vec<&Member> {
        let Some(id) = self.voice_channel() else {
            return Vec::new();
        };
        self.channel(id)
            .map(|c| c.members.iter().filter(|m| m.user != self.me).collect())
            .unwrap_or_default()
    }
}
