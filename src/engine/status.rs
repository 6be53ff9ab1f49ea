//! The voice connection state the status line shows (Cromulent's VoiceBar): nothing when not
//! in voice, `connecting` once a join is sent, `connected` once it is accepted, `disconnected`
//! with a reason when the join is refused, signaling is lost, or every peer failed. A
//! reconnect goes back through `connecting`. Pure: events in, the new status out.
//! Must never read a clock or do I/O.

use cromulent_protocol::ChannelId;

use super::error::DisconnectReason;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VoiceStatus {
    /// Not in a voice channel.
    None,
    Connecting {
        channel: ChannelId,
    },
    Connected {
        channel: ChannelId,
    },
    Disconnected {
        channel: Option<ChannelId>,
        reason: DisconnectReason,
    },
}

/// What can happen to the voice connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatusEvent {
    JoinSent(ChannelId),
    JoinAccepted(ChannelId),
    JoinRefused {
        reason: DisconnectReason,
    },
    Left,
    SignalingLost {
        reason: DisconnectReason,
    },
    /// Reconnected to the server and re-joining `channel`.
    Rejoining(ChannelId),
    /// Every peer's connection has failed (and there was at least one).
    AllPeersFailed {
        reason: DisconnectReason,
    },
    /// A peer connected again after all had failed.
    PeerRecovered,
}

impl VoiceStatus {
    /// The channel this status is about, if any.
    pub fn channel(&self) -> Option<ChannelId> {
        match self {
            Self::None => None,
            Self::Connecting { channel } | Self::Connected { channel } => Some(*channel),
            Self::Disconnected { channel, .. } => *channel,
        }
    }

    /// The wire name used in headless events.
    pub fn name(&self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Connecting { .. } => "connecting",
            Self::Connected { .. } => "connected",
            Self::Disconnected { .. } => "disconnected",
        }
    }

    /// Apply an event; returns true if the status changed.
    pub fn apply(&mut self, event: StatusEvent) -> bool {
        let next = match (&*self, event) {
            (_, StatusEvent::JoinSent(channel)) => Self::Connecting { channel },
            (_, StatusEvent::JoinAccepted(channel)) => Self::Connected { channel },
            (_, StatusEvent::Rejoining(channel)) => Self::Connecting { channel },
            (_, StatusEvent::Left) => Self::None,
            (Self::None, StatusEvent::SignalingLost { .. }) => Self::None,
            (current, StatusEvent::JoinRefused { reason })
            | (current, StatusEvent::SignalingLost { reason }) => Self::Disconnected {
                channel: current.channel(),
                reason,
            },
            (Self::Connected { channel }, StatusEvent::AllPeersFailed { reason }) => {
                Self::Disconnected {
                    channel: Some(*channel),
                    reason,
                }
            }
            (
                Self::Disconnected {
                    channel: Some(channel),
                    ..
                },
                StatusEvent::PeerRecovered,
            ) => Self::Connected { channel: *channel },
            (current, _) => current.clone(),
        };
        let changed = next != *self;
        *self = next;
        changed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::error::NoRoute;
    use cromulent_protocol::ErrorReason;

    fn lost() -> StatusEvent {
        StatusEvent::SignalingLost {
            reason: DisconnectReason::SignalingLost("server unreachable".into()),
        }
    }

    #[test]
    fn join_goes_connecting_then_connected() {
        let mut s = VoiceStatus::None;
        assert!(s.apply(StatusEvent::JoinSent(1)));
        assert_eq!(s, VoiceStatus::Connecting { channel: 1 });
        assert!(s.apply(StatusEvent::JoinAccepted(1)));
        assert_eq!(s.name(), "connected");
        assert!(s.apply(StatusEvent::Left));
        assert_eq!(s, VoiceStatus::None);
    }

    #[test]
    fn refused_join_is_disconnected_with_reason() {
        let refused = DisconnectReason::JoinRefused {
            reason: ErrorReason::AlreadyInChannel,
            message: "alice is already in General".into(),
        };
        let mut s = VoiceStatus::None;
        s.apply(StatusEvent::JoinSent(2));
        s.apply(StatusEvent::JoinRefused {
            reason: refused.clone(),
        });
        assert_eq!(
            s,
            VoiceStatus::Disconnected {
                channel: Some(2),
                reason: refused
            }
        );
    }

    #[test]
    fn lost_signaling_while_in_voice_then_reconnect_goes_back_through_connecting() {
        let mut s = VoiceStatus::Connected { channel: 1 };
        s.apply(lost());
        assert_eq!(s.name(), "disconnected");
        assert_eq!(s.channel(), Some(1));
        s.apply(StatusEvent::Rejoining(1));
        assert_eq!(s, VoiceStatus::Connecting { channel: 1 });
        s.apply(StatusEvent::JoinAccepted(1));
        assert_eq!(s.name(), "connected");
    }

    #[test]
    fn lost_signaling_outside_voice_shows_nothing() {
        let mut s = VoiceStatus::None;
        assert!(!s.apply(lost()));
        assert_eq!(s, VoiceStatus::None);
    }

    #[test]
    fn all_peers_failed_disconnects_and_a_recovery_reconnects() {
        let mut s = VoiceStatus::Connected { channel: 3 };
        s.apply(StatusEvent::AllPeersFailed {
            reason: DisconnectReason::NoRoute(NoRoute::NoTurn),
        });
        assert_eq!(s.name(), "disconnected");
        assert!(s.apply(StatusEvent::PeerRecovered));
        assert_eq!(s, VoiceStatus::Connected { channel: 3 });
        // A recovery means nothing when not disconnected.
        assert!(!s.apply(StatusEvent::PeerRecovered));
    }
}
