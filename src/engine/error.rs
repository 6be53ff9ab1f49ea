//! What can go wrong, as the engine tells its front ends: [`EngineError`] for `error` events,
//! [`DisconnectReason`] for a disconnected status. Each is a typed enum; its wire reason
//! ([`EngineError::reason`]) and its words (`Display`) are defined here and nowhere else, so
//! the headless JSON lines and the TUI read the same thing.
//!
//! Must never be built from, or matched against, strings: a front end matches the variant.

use std::fmt;
use std::time::Duration;

use cromulent_protocol::{ChannelId, ErrorReason, UserId};

use super::IcePolicy;

/// Something went wrong that the user should know (the `error` event).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EngineError {
    /// The server refused a request; `message` is the server's.
    Server {
        reason: ErrorReason,
        message: String,
    },
    /// The user named a channel that does not exist (checked before asking the server).
    NoSuchChannel(String),
    /// The signaling connection dropped; the engine is reconnecting.
    SignalingLost(SignalingLoss),
    /// The server sent a frame we could not read.
    BadFrame(String),
    /// A step of a peer connection failed; the call goes on (or fails, as its state shows).
    Peer(PeerFailure),
    /// Capturing, encoding or playing audio failed.
    Audio(String),
    /// Finishing the audio output at shutdown failed.
    AudioOutput(String),
    /// Rejoining after a lost connection, the server says we are seated already: the lost
    /// connection's seat, not yet released. The engine keeps asking (`engine::rejoin`). This
    /// replaces the server's own words ("leave it there first"), which ask the user to do
    /// something they cannot.
    SeatStillHeld(SeatStillHeld),
}

impl EngineError {
    /// The wire reason of the headless `error` event (README, "Headless mode").
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Server { reason, .. } => reason.as_str(),
            Self::NoSuchChannel(_) => ErrorReason::NotFound.as_str(),
            Self::SignalingLost(_) => "signaling_lost",
            Self::BadFrame(_) => "bad_frame",
            Self::Peer(_) => "peer",
            Self::Audio(_) => "audio",
            Self::AudioOutput(_) => "audio_output",
            Self::SeatStillHeld(_) => "seat_still_held",
        }
    }
}

/// The event's `message`: what the user reads.
impl fmt::Display for EngineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Server { message, .. }
            | Self::BadFrame(message)
            | Self::Audio(message)
            | Self::AudioOutput(message) => f.write_str(message),
            Self::NoSuchChannel(name) => write!(f, "no voice channel named {name:?}"),
            Self::SignalingLost(loss) => loss.fmt(f),
            Self::Peer(failure) => failure.fmt(f),
            Self::SeatStillHeld(wait) => wait.fmt(f),
        }
    }
}

/// A rejoin waiting for the lost connection's seat to be released.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeatStillHeld {
    pub channel: ChannelId,
    /// The channel's name, if presence knows it.
    pub name: Option<String>,
    /// How long the engine keeps asking before the refusal is final.
    pub patience: Duration,
}

impl fmt::Display for SeatStillHeld {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.name {
            Some(name) => write!(f, "rejoining {name} (channel {})", self.channel)?,
            None => write!(f, "rejoining channel {}", self.channel)?,
        }
        write!(
            f,
            ": the seat of the lost connection is still held; asking again until the server \
             releases it (giving up after {} s)",
            self.patience.as_secs()
        )
    }
}

/// The signaling connection dropped: why, and when the next attempt is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignalingLoss {
    /// The signaling task's words (e.g. `connection refused`).
    pub reason: String,
    pub retry_in: Duration,
}

impl fmt::Display for SignalingLoss {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}; retrying in {} ms",
            self.reason,
            self.retry_in.as_millis()
        )
    }
}

/// Which side a peer-connection failure is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// Our own WebRTC stack failed.
    Local,
    /// The peer sent something we could not use (a bad description or candidate).
    Remote,
}

/// A peer-connection step that failed, with the side it failed on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerFailure {
    pub user: UserId,
    pub side: Side,
    /// What failed, in words (the link's error with its source).
    pub message: String,
}

impl fmt::Display for PeerFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// Why the voice connection is disconnected (the `state` event's `reason`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DisconnectReason {
    /// The server refused the join.
    JoinRefused {
        reason: ErrorReason,
        message: String,
    },
    /// The signaling connection dropped; `0` is the signaling task's words.
    SignalingLost(String),
    /// The server refused us for good (the engine stops); `message` is the server's.
    Refused {
        reason: ErrorReason,
        message: String,
    },
    /// Every peer's connection failed.
    NoRoute(NoRoute),
}

/// The status line's words (and the headless `state` event's `reason`).
impl fmt::Display for DisconnectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::JoinRefused { reason, message } => match reason {
                ErrorReason::AlreadyInChannel => {
                    f.write_str("already in this channel from another session")
                }
                ErrorReason::AlreadyInVoice => write!(f, "already in voice elsewhere: {message}"),
                ErrorReason::NotFound => f.write_str("no such channel"),
                _ => f.write_str(message),
            },
            Self::SignalingLost(reason) => f.write_str(reason),
            Self::Refused { message, .. } => f.write_str(message),
            Self::NoRoute(why) => why.fmt(f),
        }
    }
}

/// Why no peer could be reached, as far as the engine can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoRoute {
    /// Relay-only, but the server handed out no TURN server.
    RelayOnlyWithoutTurn,
    /// Direct paths failed and there is no TURN server to fall back on.
    NoTurn,
    /// Gathering ended without a relay candidate although a TURN server was given.
    TurnRefused,
    /// Direct and relayed paths were tried and failed.
    AllPathsFailed,
}

impl NoRoute {
    /// The likeliest cause: `has_turn` is whether the ICE config names a TURN server,
    /// `turn_refused` whether a connection finished gathering without a relay candidate.
    pub fn diagnose(policy: IcePolicy, has_turn: bool, turn_refused: bool) -> Self {
        match policy {
            IcePolicy::Relay if !has_turn => Self::RelayOnlyWithoutTurn,
            _ if !has_turn => Self::NoTurn,
            _ if turn_refused => Self::TurnRefused,
            _ => Self::AllPathsFailed,
        }
    }
}

impl fmt::Display for NoRoute {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::RelayOnlyWithoutTurn => {
                "no route to peers: relay-only but the server handed out no TURN server"
            }
            Self::NoTurn => "no route to peers (no TURN server configured)",
            Self::TurnRefused => {
                "no route to peers: the TURN server refused our credentials or is unreachable"
            }
            Self::AllPathsFailed => "no route to peers (direct and relayed paths failed)",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(reason: ErrorReason) -> EngineError {
        EngineError::Server {
            reason,
            message: "m".into(),
        }
    }

    fn held(name: Option<&str>) -> SeatStillHeld {
        SeatStillHeld {
            channel: 1,
            name: name.map(str::to_owned),
            patience: Duration::from_secs(40),
        }
    }

    #[test]
    fn error_reasons_are_the_documented_wire_strings() {
        let lost = SignalingLoss {
            reason: "connection refused".into(),
            retry_in: Duration::from_millis(500),
        };
        let peer = PeerFailure {
            user: "bob".into(),
            side: Side::Remote,
            message: "bob's offer: bad".into(),
        };
        for (error, reason) in [
            (server(ErrorReason::AlreadyInChannel), "already_in_channel"),
            (server(ErrorReason::AlreadyInVoice), "already_in_voice"),
            (server(ErrorReason::InvalidToken), "invalid_token"),
            (EngineError::NoSuchChannel("x".into()), "not_found"),
            (EngineError::SignalingLost(lost), "signaling_lost"),
            (EngineError::BadFrame("x".into()), "bad_frame"),
            (EngineError::Peer(peer), "peer"),
            (EngineError::Audio("x".into()), "audio"),
            (EngineError::AudioOutput("x".into()), "audio_output"),
            (EngineError::SeatStillHeld(held(None)), "seat_still_held"),
        ] {
            assert_eq!(error.reason(), reason, "{error:?}");
        }
    }

    #[test]
    fn error_messages_keep_their_words() {
        let lost = EngineError::SignalingLost(SignalingLoss {
            reason: "connection refused".into(),
            retry_in: Duration::from_millis(500),
        });
        assert_eq!(lost.to_string(), "connection refused; retrying in 500 ms");
        assert_eq!(
            EngineError::NoSuchChannel("Nope".into()).to_string(),
            r#"no voice channel named "Nope""#
        );
        assert_eq!(server(ErrorReason::NotFound).to_string(), "m");
        assert_eq!(
            EngineError::SeatStillHeld(held(Some("General"))).to_string(),
            "rejoining General (channel 1): the seat of the lost connection is still held; \
             asking again until the server releases it (giving up after 40 s)"
        );
        assert!(
            EngineError::SeatStillHeld(held(None))
                .to_string()
                .starts_with("rejoining channel 1: ")
        );
    }

    #[test]
    fn a_refused_join_says_why_in_the_status_line() {
        let refused = |reason| DisconnectReason::JoinRefused {
            reason,
            message: "you are in Gaming".into(),
        };
        assert_eq!(
            refused(ErrorReason::AlreadyInChannel).to_string(),
            "already in this channel from another session"
        );
        assert_eq!(
            refused(ErrorReason::AlreadyInVoice).to_string(),
            "already in voice elsewhere: you are in Gaming"
        );
        assert_eq!(
            refused(ErrorReason::NotFound).to_string(),
            "no such channel"
        );
        assert_eq!(
            refused(ErrorReason::RateLimited).to_string(),
            "you are in Gaming"
        );
        assert_eq!(
            DisconnectReason::SignalingLost("connection reset".into()).to_string(),
            "connection reset"
        );
    }

    #[test]
    fn no_route_names_the_likeliest_cause() {
        use IcePolicy::{All, Relay};
        assert_eq!(
            NoRoute::diagnose(Relay, false, false),
            NoRoute::RelayOnlyWithoutTurn
        );
        assert_eq!(NoRoute::diagnose(All, false, true), NoRoute::NoTurn);
        assert_eq!(NoRoute::diagnose(Relay, true, true), NoRoute::TurnRefused);
        assert_eq!(NoRoute::diagnose(All, true, false), NoRoute::AllPathsFailed);
        assert_eq!(
            DisconnectReason::NoRoute(NoRoute::NoTurn).to_string(),
            "no route to peers (no TURN server configured)"
        );
    }
}
