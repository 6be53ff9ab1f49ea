//! What `cromulent ctl status` reports: kept current from the engine's events, with the
//! talk flags the front end knows. Pure.

use serde_json::{Value, json};

use crate::engine::{CallState, EngineEvent, VoiceStatus};

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Status {
    /// Our user id, once welcomed.
    pub user: Option<String>,
    /// Whether the server connection is up.
    pub online: bool,
    /// `none`, `connecting`, `connected` or `disconnected`.
    pub voice: &'static str,
    pub channel: Option<String>,
    /// Why disconnected.
    pub reason: Option<String>,
    /// Peers whose call is connected.
    pub peers_connected: usize,
    pub peers: usize,
    /// The microphone is sent now (the engine's word).
    pub live: bool,
    pub muted: bool,
    pub deafened: bool,
}

impl Status {
    pub fn new() -> Self {
        Self {
            voice: "none",
            ..Self::default()
        }
    }

    /// Follow an engine event.
    pub fn apply(&mut self, event: &EngineEvent) {
        match event {
            EngineEvent::ServerConnected { user, .. } => {
                self.user = Some(user.clone());
                self.online = true;
            }
            EngineEvent::Error {
                error: crate::engine::EngineError::SignalingLost(_),
                ..
            } => self.online = false,
            EngineEvent::Status {
                status,
                channel_name,
            } => {
                self.voice = status.name();
                self.channel = match status {
                    VoiceStatus::None => None,
                    _ => channel_name.clone(),
                };
                self.reason = match status {
                    VoiceStatus::Disconnected { reason, .. } => Some(reason.to_string()),
                    _ => None,
                };
                if matches!(status, VoiceStatus::None | VoiceStatus::Disconnected { .. }) {
                    self.peers = 0;
                    self.peers_connected = 0;
                }
            }
            EngineEvent::Stats(reports) => {
                let open: Vec<_> = reports
                    .iter()
                    .filter(|r| r.state != CallState::Closed)
                    .collect();
                self.peers = open.len();
                self.peers_connected = open
                    .iter()
                    .filter(|r| r.state == CallState::Connected)
                    .count();
            }
            EngineEvent::Mic { live, .. } => self.live = *live,
            EngineEvent::Fatal { .. } => self.online = false,
            _ => {}
        }
    }

    /// One line for a status bar, e.g. `● General 2/2 · LIVE` or `○ not in voice · muted`.
    pub fn line(&self) -> String {
        let mut parts = Vec::new();
        let channel = self.channel.clone().unwrap_or_default();
        parts.push(match self.voice {
            "connected" => format!("● {channel} {}/{}", self.peers_connected, self.peers),
            "connecting" => format!("◌ connecting {channel}"),
            "disconnected" => format!(
                "✕ disconnected — {}",
                self.reason.as_deref().unwrap_or("no reason given")
            ),
            _ if !self.online => "✕ server unreachable".to_owned(),
            _ => "○ not in voice".to_owned(),
        });
        if self.live {
            parts.push("LIVE".into());
        }
        if self.muted {
            parts.push("muted".into());
        }
        if self.deafened {
            parts.push("deafened".into());
        }
        parts.join(" · ")
    }

    pub fn json(&self) -> Value {
        json!({
            "user": self.user,
            "online": self.online,
            "voice": self.voice,
            "channel": self.channel,
            "reason": self.reason,
            "peers": self.peers,
            "peers_connected": self.peers_connected,
            "live": self.live,
            "muted": self.muted,
            "deafened": self.deafened,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{DisconnectReason, PeerReport};
    use cromulent_protocol::ErrorReason;

    fn report(user: &str, state: CallState) -> PeerReport {
        PeerReport {
            user: user.into(),
            state,
            candidate: None,
            packets_received: 0,
            bytes_received: 0,
            packets_sent: 0,
            bytes_sent: 0,
            packets_lost: 0,
            loss: 0.0,
            jitter_ms: 0.0,
            rtt_ms: None,
            concealed: 0,
            buffer_frames: 0,
            jitter: Default::default(),
            fec_recovered: 0,
            plc_frames: 0,
            speaking: false,
        }
    }

    #[test]
    fn the_line_follows_the_voice_connection() {
        let mut s = Status::new();
        assert_eq!(s.line(), "✕ server unreachable");
        s.apply(&EngineEvent::ServerConnected {
            user: "alice".into(),
            resumed: false,
            channels: Vec::new(),
        });
        assert_eq!(s.line(), "○ not in voice");
        s.apply(&EngineEvent::Status {
            status: VoiceStatus::Connected { channel: 1 },
            channel_name: Some("General".into()),
        });
        s.apply(&EngineEvent::Stats(vec![
            report("bob", CallState::Connected),
            report("carol", CallState::Connecting),
            report("dave", CallState::Closed),
        ]));
        s.apply(&EngineEvent::Mic {
            dbfs: -20.0,
            live: true,
        });
        s.muted = true;
        assert_eq!(s.line(), "● General 1/2 · LIVE · muted");
        s.apply(&EngineEvent::Status {
            status: VoiceStatus::Disconnected {
                channel: Some(1),
                reason: DisconnectReason::JoinRefused {
                    reason: ErrorReason::AlreadyInChannel,
                    message: "m".into(),
                },
            },
            channel_name: Some("General".into()),
        });
        assert!(
            s.line()
                .starts_with("✕ disconnected — already in this channel")
        );
        let j = s.json();
        assert_eq!(j["voice"], "disconnected");
        assert_eq!(j["user"], "alice");
        assert_eq!(j["peers"], 0);
    }
}
