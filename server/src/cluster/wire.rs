//! What travels between the hub and the cluster edge, and through Redis: seat changes in one
//! global order, snapshots, forwarded signals. Plain data (serde), no I/O: the hub's cluster
//! rules ([`crate::hub`]) read and write these, [`super::edge`] carries them.

use cromulent_protocol::{ChannelId, ChatMessage, Member, MessageId, PresenceOp, Signal, UserId};
use serde::{Deserialize, Serialize};

/// A server process in the cluster: the configured instance id plus a random suffix per
/// start, so a restarted instance never holds the seats of its previous life.
pub type NodeId = String;

/// A session of one node (the hub's own numbering).
pub type SessionId = u64;

/// Why a seat was released, as recorded in its `leave`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Why {
    /// The user sent `leave`.
    Requested,
    /// The user joined another channel (the same event holds the join).
    Switched,
    /// The user's connection ended.
    Disconnected,
    /// The seat's node stopped renewing its lease (killed, or cut off from Redis).
    Expired,
}

impl Why {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Requested => "requested",
            Self::Switched => "switched",
            Self::Disconnected => "disconnected",
            Self::Expired => "expired",
        }
    }
}

/// One presence change as the cluster records it: the change clients see, plus which
/// node's session it is about.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeatChange {
    pub op: PresenceOp,
    pub channel: ChannelId,
    pub member: Member,
    pub node: NodeId,
    pub session: SessionId,
    /// Set on leaves.
    #[serde(default)]
    pub why: Option<Why>,
}

/// One step of the cluster's presence, numbered: every node applies these in `seq` order,
/// so every client sees presence change in the same order whatever node it is on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub seq: u64,
    pub changes: Vec<SeatChange>,
}

/// One held seat, as stored in Redis.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Seat {
    pub node: NodeId,
    pub session: SessionId,
    pub channel: ChannelId,
    /// When it was taken (an event's `seq`): members are listed in this order.
    pub seq: u64,
    pub member: Member,
}

/// Every seat, as of event `seq`.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    pub seq: u64,
    pub seats: Vec<Seat>,
}

/// A signal for a user whose seat is on another node; the receiving node checks again that
/// `to` sits in `channel` on `session` before it delivers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Forward {
    pub to: UserId,
    pub session: SessionId,
    pub from: UserId,
    pub channel: ChannelId,
    pub signal: Signal,
}

/// A chat message on its way through the cluster, posted on `node` by its `session`. Its
/// `message.id` is given by Redis, so every instance numbers messages alike.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Chat {
    pub message: ChatMessage,
    pub node: NodeId,
    pub session: SessionId,
}

/// A detached session, resumable on any instance while its key lives (the grace window).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Parked {
    pub node: NodeId,
    pub session: SessionId,
    /// The channel it sat in when its connection ended, to sit there again.
    pub channel: Option<ChannelId>,
    /// Its name and flags.
    pub member: Member,
}

/// What the claim of a resume token found.
#[derive(Debug, Clone, PartialEq)]
pub enum Claim {
    /// This claimant, and no other, may resume the session.
    Won(Parked),
    /// No such token (never parked, expired, or claimed by someone else).
    Lost,
    /// Redis could not be asked.
    Unreachable,
}

/// What goes to one node's inbox.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Inbox {
    /// A signal for one of its sessions.
    Signal(Forward),
    /// One of its detached sessions was resumed elsewhere: forget it.
    Forget { session: SessionId },
}

/// What the hub asks of the cluster edge (all carried out in order).
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    /// The join guard: seat `user`'s `session` in `channel` if the user holds no seat (or
    /// switch it if this session holds one), in one atomic step.
    Seat {
        session: SessionId,
        user: UserId,
        channel: ChannelId,
        member: Member,
    },
    /// Release the seat if this session holds it.
    Unseat {
        session: SessionId,
        user: UserId,
        why: Why,
    },
    /// New flags (and, when `fresh`, a new call instance: the seat changed connection).
    Update {
        session: SessionId,
        user: UserId,
        member: Member,
        fresh: bool,
    },
    /// Deliver a signal through `node`.
    Forward { node: NodeId, forward: Forward },
    /// Read every seat: the hub missed an event.
    Snapshot,
    /// Number a chat message and send it to every instance; ids start at `floor` at least.
    Say { chat: Chat, floor: u64 },
    /// A session's connection ended: keep its resume token claimable for `ttl_ms`.
    Park {
        token: String,
        parked: Parked,
        ttl_ms: u64,
    },
    /// A connection presented a resume token: claim it (at most one claimant wins).
    Claim { conn: u64, token: String },
    /// Tell `node` that its detached session was resumed elsewhere.
    Forget { node: NodeId, session: SessionId },
    /// The name check across instances: refuse `user` when another user's session on a live
    /// instance holds one of `skeletons` (look-alike names), else register them as this
    /// node's, in one atomic step. The answer goes to connection `conn` when there is one (a
    /// resumed session registers its names without waiting for the answer).
    Name {
        conn: Option<u64>,
        user: UserId,
        skeletons: Vec<String>,
    },
    /// No session of this node holds these skeletons of `user` any more.
    Unname {
        user: UserId,
        skeletons: Vec<String>,
    },
    /// Every (skeleton, user) this node holds, replacing what Redis has for it (after a
    /// resync: Redis may have restarted empty, or missed an `Unname`).
    Names { names: Vec<(String, UserId)> },
    /// Read a page of `channel`'s history for connection `conn` (of `session`): up to `limit`
    /// messages older than `before` (or the newest).
    History {
        conn: u64,
        session: SessionId,
        channel: ChannelId,
        before: Option<MessageId>,
        limit: u32,
    },
}

/// What the name check across instances answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NameOutcome {
    /// No one else's session on a live instance has a name that looks like it: registered.
    Free,
    /// This user's session holds a look-alike name.
    Taken(UserId),
    /// Redis could not be asked.
    Unavailable,
}

/// What the join guard answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeatOutcome {
    /// Seated (or switched); the event follows.
    Seated,
    /// The user already sits in that channel.
    Here(ChannelId),
    /// The user sits in this other channel from another connection.
    Taken(ChannelId),
    /// Redis could not be asked, or this node's lease has lapsed.
    Unavailable,
}

/// What the cluster edge tells the hub.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    Event(Event),
    Snapshot(Snapshot),
    Seat {
        session: SessionId,
        channel: ChannelId,
        outcome: SeatOutcome,
    },
    Forwarded(Forward),
    /// A chat message of any instance, numbered, in the one order of all chat.
    Chat(Chat),
    /// What the claim of connection `conn`'s resume token found.
    Claimed {
        conn: u64,
        claim: Claim,
    },
    /// A detached session of this node was resumed elsewhere.
    Forget {
        session: SessionId,
    },
    /// A requested `leave` could not reach Redis: the seat is still held.
    LeaveFailed {
        session: SessionId,
    },
    /// A `say` could not reach Redis.
    SayFailed {
        session: SessionId,
        channel: ChannelId,
    },
    /// What the name check of connection `conn` found.
    Named {
        conn: u64,
        user: UserId,
        skeletons: Vec<String>,
        outcome: NameOutcome,
    },
    /// A page of `channel`'s history for connection `conn`: oldest first, and whether older
    /// messages remain; `None` when Redis could not be asked.
    History {
        conn: u64,
        channel: ChannelId,
        page: Option<(Vec<ChatMessage>, bool)>,
    },
}
