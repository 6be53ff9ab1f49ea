//! The wire protocol between `cromulent` (client) and `cromulent-server`: the one definition
//! both sides compile against. JSON objects in WebSocket text frames, tagged by `"type"`.
//!
//! One enum per direction ([`ClientMsg`], [`ServerMsg`]); every field is documented in
//! `docs/PROTOCOL.md`, which must change whenever this file does. This crate owns no I/O.
#![forbid(unsafe_code)]

mod decode;

pub use decode::{CLIENT_TYPES, DecodeError, decode_client};

use serde::{Deserialize, Serialize};

/// Version exchanged in `hello`/`welcome`. Bumped on any incompatible change.
pub const PROTOCOL_VERSION: u32 = 1;

/// Voice channels are numbered by the server's configuration.
pub type ChannelId = u32;

/// A user's identity: the display name in `open` mode, the token's subject in `token` mode.
/// It is also the address used to relay signaling to a peer (one user sits in at most one
/// voice channel, so it is unambiguous within a channel).
pub type UserId = String;

/// A chat message's id: assigned by the server, increasing in the order messages were
/// accepted (across all channels), never reused.
pub type MessageId = u64;

/// Client → server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientMsg {
    /// First message on every connection; nothing else is accepted before it.
    Hello {
        /// Must equal the server's [`PROTOCOL_VERSION`].
        protocol: u32,
        /// Display name; required in `open` mode, ignored in `token` mode unless the token
        /// carries no name.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
        /// Signed token; required in `token` mode.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        token: Option<String>,
        /// Resume token of a previous session, to take its seat back after a reconnect.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        resume: Option<String>,
    },
    /// Join a voice channel (leaving the current one first if this connection is in one).
    Join { channel: ChannelId },
    /// Leave the current voice channel.
    Leave,
    /// This user's voice flags, shown to everyone through presence.
    VoiceState {
        muted: bool,
        deafened: bool,
        talking: bool,
    },
    /// WebRTC signaling for exactly one peer in the sender's voice channel.
    Signal { to: UserId, signal: Signal },
    /// Ask for fresh ICE servers (TURN credentials) before the current ones expire.
    RefreshIce,
    /// Are you there? The server answers `pong` with the same `id` at once. For clients that
    /// cannot see WebSocket pings (browsers) to notice a silent server.
    Ping {
        #[serde(default)]
        id: u64,
    },
    /// Post `text` to `channel`'s chat. Answered by the `message` itself (every client that
    /// follows the channel gets it, the sender too), or an error.
    Say { channel: ChannelId, text: String },
    /// Follow `channel`'s chat live besides the channel this connection sits in (the one on
    /// screen); `null` follows none. One channel at a time: a new `watch` replaces the last.
    Watch { channel: Option<ChannelId> },
    /// A page of `channel`'s history: the newest `limit` messages (default and at most 100)
    /// older than `before` (default: the newest). Answered by `history`.
    History {
        channel: ChannelId,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        before: Option<MessageId>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        limit: Option<u32>,
    },
}

/// Server → client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ServerMsg {
    /// Reply to a successful `hello`: who you are, the channels and who is in them.
    Welcome {
        protocol: u32,
        user: UserInfo,
        session: SessionInfo,
        /// True when the `resume` token was honoured.
        resumed: bool,
        heartbeat: Heartbeat,
        /// Every voice channel with its current members (the presence snapshot).
        channels: Vec<ChannelInfo>,
    },
    /// Presence diff, applied in order; one message is one atomic step (a channel switch is a
    /// `leave` and a `join` in the same message).
    Presence { changes: Vec<PresenceChange> },
    /// Reply to a successful `join` (or a resumed seat): ICE servers and the peers already
    /// there.
    Joined {
        channel: ChannelId,
        ice: IceConfig,
        /// Members of the channel other than you, in join order.
        peers: Vec<Member>,
    },
    /// You are no longer in `channel`.
    Left {
        channel: ChannelId,
        reason: LeftReason,
    },
    /// Reply to `refresh_ice`.
    IceServers { ice: IceConfig },
    /// Reply to `ping`, with its `id`.
    Pong { id: u64 },
    /// Signaling from a peer in your voice channel; `from` is stamped by the server.
    Signal { from: UserId, signal: Signal },
    /// A chat message, live: to everyone seated in its channel or watching it.
    Message { message: ChatMessage },
    /// Reply to `history`: messages oldest first; `more` when older ones exist.
    History {
        channel: ChannelId,
        messages: Vec<ChatMessage>,
        more: bool,
    },
    /// Something went wrong; see [`ErrorReason`]. Fatal reasons are followed by a close.
    Error {
        reason: ErrorReason,
        /// Human-readable detail.
        message: String,
        /// The channel the error is about (e.g. the one you are already in).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        channel: Option<ChannelId>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserInfo {
    pub id: UserId,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionInfo {
    /// Present it as `hello.resume` on reconnect to take this session back.
    pub resume_token: String,
    /// How long after a disconnect the resume token stays valid.
    pub resume_grace_ms: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Heartbeat {
    /// The server sends a WebSocket ping this often.
    pub ping_interval_ms: u64,
    /// A connection silent (no frame of any kind) this long is dropped.
    pub timeout_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelInfo {
    pub id: ChannelId,
    pub name: String,
    pub members: Vec<Member>,
}

/// One chat message as stored and sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChatMessage {
    pub id: MessageId,
    pub channel: ChannelId,
    /// The author's user id and display name when it was sent.
    pub user: UserId,
    pub name: String,
    /// Server time it was accepted, Unix milliseconds.
    pub time: u64,
    /// The text: no control characters but line feeds. Data, never markup or terminal input.
    pub text: String,
}

/// One occupant of a voice channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Member {
    pub user: UserId,
    pub name: String,
    pub muted: bool,
    pub deafened: bool,
    pub talking: bool,
    /// Changes whenever a new connection takes this seat (resume): peers must then drop their
    /// old call with this user and start a new one.
    pub instance: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PresenceChange {
    pub op: PresenceOp,
    pub channel: ChannelId,
    pub member: Member,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PresenceOp {
    Join,
    Leave,
    Update,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LeftReason {
    /// You sent `leave`.
    Requested,
    /// You joined another channel.
    Switched,
}

/// ICE servers handed to a client, with when their credentials stop working.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct IceConfig {
    pub servers: Vec<IceServer>,
    /// Unix time (seconds) at which TURN credentials expire; `null` when they do not.
    #[serde(default)]
    pub expires_at: Option<u64>,
}

/// One ICE server, in the shape WebRTC's `RTCIceServer` takes. `urls` is always a list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IceServer {
    pub urls: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
}

/// The payload relayed between two peers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Signal {
    Offer {
        sdp: String,
        /// Which of the offerer's peer connections this offer belongs to. An offer with a new
        /// value replaces the whole connection (e.g. after a TURN credential refresh); the
        /// same value renegotiates it (e.g. an ICE restart).
        #[serde(default)]
        connection: u64,
    },
    Answer {
        sdp: String,
        /// The `connection` of the offer this answers; the offerer ignores answers to a
        /// connection it has already replaced.
        #[serde(default)]
        connection: u64,
    },
    Candidate {
        candidate: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sdp_mid: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sdp_mline_index: Option<u16>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        username_fragment: Option<String>,
    },
    /// From the answering side: "make a new connection with me" (its TURN credentials were
    /// renewed, and only the offering side may offer).
    Renew,
}

/// Every reason the server can give in an `error` message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorReason {
    /// The frame was not valid JSON.
    BadJson,
    /// The `type` is not one this protocol version knows.
    UnknownType,
    /// Right `type`, wrong fields (missing, extra, or of the wrong type).
    InvalidMessage,
    /// Text frame larger than the configured limit; it was dropped.
    MessageTooLarge,
    /// Binary frames are not part of the protocol.
    BinaryNotSupported,
    /// Too many messages; this one was dropped.
    RateLimited,
    /// `hello.protocol` differs from the server's. Fatal.
    UnsupportedProtocol,
    /// A message other than `hello` arrived first, or no `hello` in time. Fatal.
    NotAuthenticated,
    /// A second `hello` on the same connection.
    AlreadyAuthenticated,
    /// Missing or unacceptable display name (the message names the offending code point).
    /// Fatal.
    InvalidName,
    /// The name looks like (has the same confusable skeleton as) a user who is connected or
    /// whose session is still resumable. Fatal.
    NameTaken,
    /// Token missing, malformed or not signed by this server. Fatal.
    InvalidToken,
    /// Token past its expiry. Fatal.
    TokenExpired,
    /// The resume token is unknown or its grace window has passed; a fresh session was
    /// started instead.
    ResumeExpired,
    /// No voice channel with that id.
    NotFound,
    /// This user is already in that channel (from any connection).
    AlreadyInChannel,
    /// This user is in another voice channel from another connection; `channel` names it.
    AlreadyInVoice,
    /// The request needs you to be in a voice channel.
    NotInVoice,
    /// The addressee is not in your voice channel.
    PeerNotFound,
    /// Your session was taken over by a newer connection that presented its resume token.
    /// Fatal.
    SessionReplaced,
    /// You did not read your messages fast enough. Fatal.
    SlowConsumer,
    /// The server is full. Fatal.
    ServerFull,
    /// The server is shutting down. Fatal.
    ServerShutdown,
    /// A chat message over `chat.max_chars` characters.
    TextTooLong,
    /// A chat message that is empty (or only white space) or holds a control character (the
    /// message names it; line feeds are allowed).
    InvalidText,
    /// The chat history could not be read or written (the server's database failed; see its
    /// log).
    HistoryUnavailable,
    /// Cluster mode: this server cannot reach the cluster's shared state (or lost its lease
    /// on it), so a seat could not be taken (or was released), or a chat message was not
    /// sent; try again later.
    ClusterUnavailable,
}

impl ErrorReason {
    /// Every reason, for documentation checks.
    pub const ALL: [ErrorReason; 27] = [
        Self::BadJson,
        Self::UnknownType,
        Self::InvalidMessage,
        Self::MessageTooLarge,
        Self::BinaryNotSupported,
        Self::RateLimited,
        Self::UnsupportedProtocol,
        Self::NotAuthenticated,
        Self::AlreadyAuthenticated,
        Self::InvalidName,
        Self::NameTaken,
        Self::InvalidToken,
        Self::TokenExpired,
        Self::ResumeExpired,
        Self::NotFound,
        Self::AlreadyInChannel,
        Self::AlreadyInVoice,
        Self::NotInVoice,
        Self::PeerNotFound,
        Self::SessionReplaced,
        Self::SlowConsumer,
        Self::ServerFull,
        Self::ServerShutdown,
        Self::TextTooLong,
        Self::InvalidText,
        Self::HistoryUnavailable,
        Self::ClusterUnavailable,
    ];

    /// The snake_case name used on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BadJson => "bad_json",
            Self::UnknownType => "unknown_type",
            Self::InvalidMessage => "invalid_message",
            Self::MessageTooLarge => "message_too_large",
            Self::BinaryNotSupported => "binary_not_supported",
            Self::RateLimited => "rate_limited",
            Self::UnsupportedProtocol => "unsupported_protocol",
            Self::NotAuthenticated => "not_authenticated",
            Self::AlreadyAuthenticated => "already_authenticated",
            Self::InvalidName => "invalid_name",
            Self::NameTaken => "name_taken",
            Self::InvalidToken => "invalid_token",
            Self::TokenExpired => "token_expired",
            Self::ResumeExpired => "resume_expired",
            Self::NotFound => "not_found",
            Self::AlreadyInChannel => "already_in_channel",
            Self::AlreadyInVoice => "already_in_voice",
            Self::NotInVoice => "not_in_voice",
            Self::PeerNotFound => "peer_not_found",
            Self::SessionReplaced => "session_replaced",
            Self::SlowConsumer => "slow_consumer",
            Self::ServerFull => "server_full",
            Self::ServerShutdown => "server_shutdown",
            Self::TextTooLong => "text_too_long",
            Self::InvalidText => "invalid_text",
            Self::HistoryUnavailable => "history_unavailable",
            Self::ClusterUnavailable => "cluster_unavailable",
        }
    }
}

impl std::fmt::Display for ErrorReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Longest `error.message`, in bytes: a reply never grows with what the client sent.
pub const MAX_ERROR_MESSAGE_BYTES: usize = 256;

impl ServerMsg {
    /// An `error` message without a channel.
    pub fn error(reason: ErrorReason, message: impl Into<String>) -> Self {
        Self::error_in(reason, message, None)
    }

    /// An `error` message about `channel`; the message is cut to [`MAX_ERROR_MESSAGE_BYTES`]
    /// (at a character boundary, marked with `…`).
    pub fn error_in(
        reason: ErrorReason,
        message: impl Into<String>,
        channel: Option<ChannelId>,
    ) -> Self {
        Self::Error {
            reason,
            message: bound_error_message(message.into()),
            channel,
        }
    }

    /// Serialize to the JSON text sent in a frame.
    pub fn to_json(&self) -> String {
        // Invariant: every field is a plain string, number, bool, list or map, which
        // serde_json always serializes.
        serde_json::to_string(self).expect("ServerMsg always serializes")
    }
}

impl ClientMsg {
    /// Serialize to the JSON text sent in a frame.
    pub fn to_json(&self) -> String {
        // Invariant: as for ServerMsg::to_json.
        serde_json::to_string(self).expect("ClientMsg always serializes")
    }
}

/// `text` cut to at most [`MAX_ERROR_MESSAGE_BYTES`] at a character boundary, `…` marking
/// the cut.
pub fn bound_error_message(mut text: String) -> String {
    if text.len() <= MAX_ERROR_MESSAGE_BYTES {
        return text;
    }
    let ellipsis = '…';
    let mut end = MAX_ERROR_MESSAGE_BYTES - ellipsis.len_utf8();
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    text.push(ellipsis);
    text
}

/// Parse a server frame (client side). Errors carry serde's description.
pub fn decode_server(text: &str) -> Result<ServerMsg, serde_json::Error> {
    serde_json::from_str(text)
}

#[cfg(test)]
mod tests;
