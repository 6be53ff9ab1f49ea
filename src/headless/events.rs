//! Engine events as JSON lines: the stdout contract of `cromulent headless` (documented in the
//! README). One object per line, each with an `"event"` field. Pure: event in, line out.
//! Must never print: the caller writes the line. A field the README documents is never renamed
//! or dropped without the README changing too.

use serde_json::{Value, json};

use cromulent_protocol::ChatMessage;

use crate::audio::DeviceChange;
use crate::engine::{EngineEvent, PeerReport, VoiceStatus};

/// The JSON line for an event, or `None` for events headless does not print (mic meter).
pub fn to_json(
    event: &EngineEvent,
    channel_names: &dyn Fn(u32) -> Option<String>,
) -> Option<Value> {
    Some(match event {
        EngineEvent::ServerConnected {
            user,
            resumed,
            channels,
        } => json!({
            "event": "server",
            "state": "connected",
            "user": user,
            "resumed": resumed,
            "channels": channels.iter().map(|c| json!({
                "id": c.id,
                "name": c.name,
                "members": c.members.iter().map(|m| &m.user).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
        }),
        EngineEvent::Presence(changes) => {
            // One line per change keeps consumers simple; a switch prints its leave first.
            let lines: Vec<Value> = changes
                .iter()
                .map(|c| {
                    json!({
                        "event": "presence",
                        "op": c.op,
                        "channel": channel_names(c.channel),
                        "channel_id": c.channel,
                        "user": c.member.user,
                        "name": c.member.name,
                        "muted": c.member.muted,
                        "deafened": c.member.deafened,
                        "talking": c.member.talking,
                    })
                })
                .collect();
            return Some(Value::Array(lines));
        }
        EngineEvent::Status {
            status,
            channel_name,
        } => {
            let reason = match status {
                VoiceStatus::Disconnected { reason, .. } => Some(reason.to_string()),
                _ => None,
            };
            json!({
                "event": "state",
                "state": status.name(),
                "channel": channel_name,
                "channel_id": status.channel(),
                "reason": reason,
            })
        }
        EngineEvent::Error { error, channel } => json!({
            "event": "error",
            "reason": error.reason(),
            "message": error.to_string(),
            "channel_id": channel,
        }),
        EngineEvent::Fatal { reason, message } => json!({
            "event": "error",
            "reason": reason,
            "message": message,
            "fatal": true,
        }),
        EngineEvent::Peer {
            user,
            state,
            candidate,
        } => json!({
            "event": "peer",
            "user": user,
            "state": state.name(),
            "candidate": candidate,
        }),
        EngineEvent::Audio { from, ms } => json!({
            "event": "audio",
            "from": from,
            "ms": ms,
        }),
        EngineEvent::Stats(peers) => json!({
            "event": "stats",
            "peers": peers.iter().map(peer_stats).collect::<Vec<_>>(),
        }),
        EngineEvent::Processing { stages, echo, cost } => json!({
            "event": "processing",
            "echo": stages.echo,
            "noise": stages.noise,
            "noise_level": stages.noise_level.name(),
            "gain": stages.gain,
            "voice": stages.voice,
            "erle_db": echo.erle_db,
            "echo_delay_ms": echo.delay_ms,
            // Percent of a core, to 0.01.
            "cpu_percent": cost.percent_of_a_core().map(|p| (p * 100.0).round() / 100.0),
        }),
        EngineEvent::Device { role, change } => match change {
            DeviceChange::Now(device) => json!({
                "event": "device",
                "kind": role.name(),
                "state": "moved",
                "device": device,
            }),
            DeviceChange::Lost => json!({
                "event": "device",
                "kind": role.name(),
                "state": "lost",
                "device": null,
            }),
        },
        EngineEvent::Message(m) => {
            let mut line = chat_message(m, channel_names);
            line["event"] = json!("message");
            line
        }
        EngineEvent::History {
            channel,
            messages,
            more,
        } => json!({
            "event": "history",
            "channel": channel_names(*channel),
            "channel_id": channel,
            "messages": messages.iter().map(|m| chat_message(m, channel_names)).collect::<Vec<_>>(),
            "more": more,
        }),
        EngineEvent::Mic { .. } | EngineEvent::Stopped => return None,
    })
}

/// A chat message's fields (the text as it came: JSON escapes every control character).
fn chat_message(m: &ChatMessage, channel_names: &dyn Fn(u32) -> Option<String>) -> Value {
    json!({
        "id": m.id,
        "channel": channel_names(m.channel),
        "channel_id": m.channel,
        "user": m.user,
        "name": m.name,
        "time": m.time,
        "text": m.text,
    })
}

fn peer_stats(p: &PeerReport) -> Value {
    json!({
        "user": p.user,
        "state": p.state.name(),
        "candidate": p.candidate,
        "packets_received": p.packets_received,
        "bytes_received": p.bytes_received,
        "packets_sent": p.packets_sent,
        "bytes_sent": p.bytes_sent,
        "packets_lost": p.packets_lost,
        "loss": p.loss,
        "jitter_ms": p.jitter_ms,
        "rtt_ms": p.rtt_ms,
        "concealed": p.concealed,
        "buffer_frames": p.buffer_frames,
        "speaking": p.speaking,
    })
}

/// A headless run's own failures (the engine's are [`crate::engine::EngineError`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunError {
    /// A `wait` did not come true in time.
    WaitTimeout,
    /// A script line could not be read.
    BadScript,
}

impl RunError {
    /// The wire reason of its `error` event.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::WaitTimeout => "wait_timeout",
            Self::BadScript => "bad_script",
        }
    }
}

/// The `error` line for a run's own failure.
pub fn run_error(error: RunError, message: &str) -> Value {
    json!({
        "event": "error",
        "reason": error.as_str(),
        "message": message,
    })
}

/// Lines to print for an event (presence may give several).
pub fn lines(event: &EngineEvent, channel_names: &dyn Fn(u32) -> Option<String>) -> Vec<String> {
    match to_json(event, channel_names) {
        Some(Value::Array(items)) => items.iter().map(Value::to_string).collect(),
        Some(v) => vec![v.to_string()],
        None => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use cromulent_protocol::ErrorReason;

    use super::*;
    use crate::engine::{DisconnectReason, EngineError, SeatStillHeld, SignalingLoss};

    fn line(event: EngineEvent) -> String {
        lines(&event, &|_| Some("General".into())).join("\n")
    }

    #[test]
    fn error_events_keep_their_documented_reasons() {
        let refused = EngineEvent::Error {
            error: EngineError::Server {
                reason: ErrorReason::AlreadyInChannel,
                message: "alice is already in General".into(),
            },
            channel: Some(1),
        };
        assert_eq!(
            line(refused),
            r#"{"channel_id":1,"event":"error","message":"alice is already in General","reason":"already_in_channel"}"#
        );
        let lost = EngineEvent::Error {
            error: EngineError::SignalingLost(SignalingLoss {
                reason: "connection refused".into(),
                retry_in: Duration::from_millis(250),
            }),
            channel: None,
        };
        assert_eq!(
            line(lost),
            r#"{"channel_id":null,"event":"error","message":"connection refused; retrying in 250 ms","reason":"signaling_lost"}"#
        );
        let held = EngineEvent::Error {
            error: EngineError::SeatStillHeld(SeatStillHeld {
                channel: 1,
                name: Some("General".into()),
                patience: Duration::from_secs(40),
            }),
            channel: Some(1),
        };
        assert_eq!(
            line(held),
            r#"{"channel_id":1,"event":"error","message":"rejoining General (channel 1): the seat of the lost connection is still held; asking again until the server releases it (giving up after 40 s)","reason":"seat_still_held"}"#
        );
        assert_eq!(
            run_error(RunError::WaitTimeout, "timed out waiting for connected").to_string(),
            r#"{"event":"error","message":"timed out waiting for connected","reason":"wait_timeout"}"#
        );
        assert_eq!(
            run_error(RunError::BadScript, "line 1: what?").to_string(),
            r#"{"event":"error","message":"line 1: what?","reason":"bad_script"}"#
        );
    }

    #[test]
    fn a_disconnected_state_carries_its_reason_in_words() {
        let refused = EngineEvent::Status {
            status: VoiceStatus::Disconnected {
                channel: Some(1),
                reason: DisconnectReason::JoinRefused {
                    reason: ErrorReason::AlreadyInChannel,
                    message: "x".into(),
                },
            },
            channel_name: Some("General".into()),
        };
        assert_eq!(
            line(refused),
            r#"{"channel":"General","channel_id":1,"event":"state","reason":"already in this channel from another session","state":"disconnected"}"#
        );
    }
}
