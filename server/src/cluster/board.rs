//! The cluster's shared board in Redis: its keys, and the Lua scripts that change it, each
//! one atomic step that also publishes the event it causes (so the events' order is the
//! order of the changes). The only module that speaks to Redis besides the subscription in
//! [`super::edge`].
//!
//! Layout, under the configured prefix `P`:
//! - `P:seats`: hash, user → [`Seat`] (JSON); `P:seq`: the last event's number;
//! - `P:nodes`: set of nodes that may hold seats; `P:alive:NODE`: a node's lease (a key with
//!   a time to live, renewed); `P:held:NODE`: set of users whose seat NODE holds;
//!   `P:names:NODE`: hash, confusable skeleton → user, of the names NODE's sessions hold;
//! - `P:chat:next`: the last chat message id; `P:chat:log:CHANNEL`: the channel's history, a
//!   stream whose entry ids are `<message id>-0` (trimmed to the chat retention settings on
//!   every post); `P:resume:TOKEN`: a detached session ([`Parked`]), until its grace window
//!   ends or someone claims it;
//! - pub/sub `P:presence`: every [`super::wire::Event`], in order; `P:node:NODE`: signals
//!   for NODE; `P:chat`: every chat message, as `<id> <Chat JSON>`.
//!
//! It must never decide a seat rule of its own beyond the scripts: the hub decides what to
//! ask, the scripts check and write in one step.

use std::sync::LazyLock;
use std::time::Duration;

use cromulent_protocol::{ChannelId, ChatMessage, Member, MessageId};
use redis::aio::ConnectionManager;
use redis::{RedisResult, Script};

use super::wire::{
    Chat, Inbox, NameOutcome, NodeId, Parked, SeatOutcome, SessionId, Snapshot, Why,
};
use crate::chat_store::Retention;
use crate::config::ClusterConfig;

static SEAT: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/seat.lua")));
static UNSEAT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        include_str!("lua/held.lua"),
        include_str!("lua/unseat.lua")
    ))
});
static UPDATE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        include_str!("lua/held.lua"),
        include_str!("lua/update.lua")
    ))
});
static SAY: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/say.lua")));
static NAME: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/name.lua")));
static UNNAME: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/unname.lua")));
static IMPORT: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/import.lua")));
static HISTORY: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/history.lua")));
static REAP: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/reap.lua")));
static SNAPSHOT: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/snapshot.lua")));

/// How long one Redis request may take before it counts as failed: a hung Redis must not
/// hold the cluster edge (and so every join) for long.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);

/// The names of this cluster's keys and channels, as seen from one node.
#[derive(Debug, Clone)]
pub struct Keys {
    prefix: String,
    pub node: NodeId,
    seats: String,
    seq: String,
    nodes: String,
    alive: String,
    held: String,
    names: String,
    /// The pub/sub channel of presence events.
    pub presence: String,
    /// The pub/sub channel of signals for this node.
    pub inbox: String,
    chat_next: String,
    /// The pub/sub channel of chat messages.
    pub chat: String,
}

impl Keys {
    pub fn new(prefix: &str, node: &str) -> Self {
        Self {
            prefix: prefix.to_owned(),
            node: node.to_owned(),
            seats: format!("{prefix}:seats"),
            seq: format!("{prefix}:seq"),
            nodes: format!("{prefix}:nodes"),
            alive: format!("{prefix}:alive:{node}"),
            held: format!("{prefix}:held:{node}"),
            names: format!("{prefix}:names:{node}"),
            presence: format!("{prefix}:presence"),
            inbox: Self::inbox_of(prefix, node),
            chat_next: format!("{prefix}:chat:next"),
            chat: format!("{prefix}:chat"),
        }
    }

    fn inbox_of(prefix: &str, node: &str) -> String {
        format!("{prefix}:node:{node}")
    }

    /// The history of `channel`.
    fn chat_log(&self, channel: ChannelId) -> String {
        format!("{}:chat:log:{channel}", self.prefix)
    }
}

/// One node's handle on the board (cheap to clone: one multiplexed, reconnecting connection).
#[derive(Clone)]
pub struct Board {
    con: ConnectionManager,
    pub keys: Keys,
    lease_ms: u64,
    retention: Retention,
}

impl Board {
    /// A board whose connection is made on first use and remade after a failure; it never
    /// fails for Redis being down, its requests do.
    pub fn new(
        client: &redis::Client,
        config: &ClusterConfig,
        retention: Retention,
        node: &str,
    ) -> RedisResult<Self> {
        let settings = redis::aio::ConnectionManagerConfig::new()
            .set_response_timeout(Some(RESPONSE_TIMEOUT))
            .set_connection_timeout(Some(RESPONSE_TIMEOUT))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        Ok(Self {
            con: client.get_connection_manager_lazy(settings)?,
            keys: Keys::new(&config.key_prefix, node),
            lease_ms: config.lease_ms,
            retention,
        })
    }

    /// The join guard's step (see `lua/seat.lua`).
    pub async fn seat(
        &mut self,
        session: SessionId,
        user: &str,
        channel: ChannelId,
        member: &Member,
    ) -> RedisResult<SeatOutcome> {
        let k = &self.keys;
        let (status, n): (String, u64) = SEAT
            .key(&k.seats)
            .key(&k.seq)
            .key(&k.alive)
            .key(&k.held)
            .arg(&k.presence)
            .arg(user)
            .arg(&k.node)
            .arg(session)
            .arg(channel)
            .arg(json(member))
            .invoke_async(&mut self.con)
            .await?;
        let channel_of = || ChannelId::try_from(n).unwrap_or(channel);
        Ok(match status.as_str() {
            "seated" => SeatOutcome::Seated,
            "here" => SeatOutcome::Here(channel_of()),
            "taken" => SeatOutcome::Taken(channel_of()),
            _ => SeatOutcome::Unavailable,
        })
    }

    pub async fn unseat(&mut self, session: SessionId, user: &str, why: Why) -> RedisResult<()> {
        let k = &self.keys;
        let _seq: u64 = UNSEAT
            .key(&k.seats)
            .key(&k.seq)
            .key(&k.held)
            .arg(&k.presence)
            .arg(user)
            .arg(&k.node)
            .arg(session)
            .arg(why.as_str())
            .invoke_async(&mut self.con)
            .await?;
        Ok(())
    }

    pub async fn update(
        &mut self,
        session: SessionId,
        user: &str,
        member: &Member,
        fresh: bool,
    ) -> RedisResult<()> {
        let k = &self.keys;
        let _seq: u64 = UPDATE
            .key(&k.seats)
            .key(&k.seq)
            .arg(&k.presence)
            .arg(user)
            .arg(&k.node)
            .arg(session)
            .arg(json(member))
            .arg(if fresh { "1" } else { "0" })
            .invoke_async(&mut self.con)
            .await?;
        Ok(())
    }

    /// The name check and registration (see `lua/name.lua`).
    pub async fn name(&mut self, user: &str, skeletons: &[String]) -> RedisResult<NameOutcome> {
        let k = &self.keys;
        let (status, holder): (String, String) = NAME
            .key(&k.nodes)
            .key(&k.names)
            .arg(&k.prefix)
            .arg(user)
            .arg(skeletons)
            .invoke_async(&mut self.con)
            .await?;
        Ok(match status.as_str() {
            "free" => NameOutcome::Free,
            _ => NameOutcome::Taken(holder),
        })
    }

    /// Forget skeletons this node's sessions no longer hold (see `lua/unname.lua`).
    pub async fn unname(&mut self, user: &str, skeletons: &[String]) -> RedisResult<()> {
        let _deleted: u64 = UNNAME
            .key(&self.keys.names)
            .arg(user)
            .arg(skeletons)
            .invoke_async(&mut self.con)
            .await?;
        Ok(())
    }

    /// Replace this node's names with `names` (skeleton, user), in one step.
    pub async fn set_names(&mut self, names: &[(String, String)]) -> RedisResult<()> {
        let mut pipe = redis::pipe();
        pipe.atomic().cmd("DEL").arg(&self.keys.names).ignore();
        if !names.is_empty() {
            pipe.cmd("HSET").arg(&self.keys.names).arg(names).ignore();
        }
        pipe.exec_async(&mut self.con).await
    }

    /// Publish `message` to `node`'s inbox.
    pub async fn send_to(&mut self, node: &str, message: &Inbox) -> RedisResult<()> {
        let inbox = Keys::inbox_of(&self.keys.prefix, node);
        let _receivers: u64 = redis::cmd("PUBLISH")
            .arg(inbox)
            .arg(json(message))
            .query_async(&mut self.con)
            .await?;
        Ok(())
    }

    /// Keep a detached session claimable under its resume token for `ttl_ms`.
    pub async fn park(&mut self, token: &str, parked: &Parked, ttl_ms: u64) -> RedisResult<()> {
        redis::cmd("SET")
            .arg(self.resume_key(token))
            .arg(json(parked))
            .arg("PX")
            .arg(ttl_ms.max(1))
            .exec_async(&mut self.con)
            .await
    }

    /// Take the session parked under `token`, if any: read and deleted in one step, so one
    /// claimant at most gets it. A value that does not decode counts as none.
    pub async fn claim(&mut self, token: &str) -> RedisResult<Option<Parked>> {
        let raw: Option<String> = redis::cmd("GETDEL")
            .arg(self.resume_key(token))
            .query_async(&mut self.con)
            .await?;
        Ok(raw.and_then(|s| serde_json::from_str(&s).ok()))
    }

    fn resume_key(&self, token: &str) -> String {
        format!("{}:resume:{token}", self.keys.prefix)
    }

    /// Number `chat` (at least `floor`), add it to its channel's history and publish it to
    /// every instance.
    pub async fn say(&mut self, chat: &Chat, floor: u64) -> RedisResult<u64> {
        let k = &self.keys;
        let max_age_ms = self
            .retention
            .max_age
            .map_or(0, |age| u64::try_from(age.as_millis()).unwrap_or(u64::MAX));
        SAY.key(&k.chat_next)
            .key(k.chat_log(chat.message.channel))
            .arg(&k.chat)
            .arg(json(chat))
            .arg(floor)
            .arg(json(&chat.message))
            .arg(self.retention.per_channel.unwrap_or(0))
            .arg(max_age_ms)
            .invoke_async(&mut self.con)
            .await
    }

    /// The id of the newest message in `channel`'s history (0: none).
    pub async fn newest(&mut self, channel: ChannelId) -> RedisResult<MessageId> {
        let last: Vec<(String, Vec<(String, String)>)> = redis::cmd("XREVRANGE")
            .arg(self.keys.chat_log(channel))
            .arg("+")
            .arg("-")
            .arg("COUNT")
            .arg(1)
            .query_async(&mut self.con)
            .await?;
        Ok(last
            .first()
            .and_then(|(id, _)| id.split('-').next()?.parse().ok())
            .unwrap_or(0))
    }

    /// Append `messages` (one channel's, oldest first) to the channel's history where they
    /// are newer than its newest (see `lua/import.lua`); how many were added.
    pub async fn import(
        &mut self,
        channel: ChannelId,
        messages: &[ChatMessage],
    ) -> RedisResult<u64> {
        let mut added = 0;
        for chunk in messages.chunks(500) {
            let mut call = IMPORT.key(&self.keys.chat_next);
            call.key(self.keys.chat_log(channel))
                .arg(self.retention.per_channel.unwrap_or(0));
            for m in chunk {
                call.arg(m.id).arg(json(m));
            }
            added += call.invoke_async::<u64>(&mut self.con).await?;
        }
        Ok(added)
    }

    /// Up to `limit` messages of `channel` older than `before` (or the newest), oldest first,
    /// and whether older ones remain. Messages past the age limit are left out even before
    /// the next post trims them. An entry that does not decode is skipped with a warning.
    pub async fn history(
        &mut self,
        channel: ChannelId,
        before: Option<MessageId>,
        limit: u32,
        now_ms: u64,
    ) -> RedisResult<(Vec<ChatMessage>, bool)> {
        let oldest = self.retention.max_age.map_or(0, |age| {
            let age_ms = u64::try_from(age.as_millis()).unwrap_or(u64::MAX);
            now_ms.saturating_sub(age_ms).saturating_mul(1000)
        });
        let raw: Vec<String> = HISTORY
            .key(self.keys.chat_log(channel))
            .arg(before.unwrap_or(0))
            .arg(u64::from(limit) + 1)
            .arg(oldest)
            .invoke_async(&mut self.con)
            .await?;
        let mut messages: Vec<ChatMessage> = raw
            .chunks_exact(2)
            .filter_map(|entry| {
                let decoded = entry[0].parse::<MessageId>().map_err(|e| e.to_string()).and_then(|id| {
                    serde_json::from_str::<ChatMessage>(&entry[1])
                        .map(|m| ChatMessage { id, channel, ..m })
                        .map_err(|e| e.to_string())
                });
                decoded
                    .inspect_err(|e| tracing::warn!(error = %e, "skipping a chat message in Redis that does not decode"))
                    .ok()
            })
            .collect();
        let more = messages.len() > limit as usize;
        messages.truncate(limit as usize);
        messages.reverse();
        Ok((messages, more))
    }

    /// Every seat, in one step. A seat that does not decode (written by something else) is
    /// skipped with a warning.
    pub async fn snapshot(&mut self) -> RedisResult<Snapshot> {
        let k = &self.keys;
        let (seq, raw): (u64, Vec<String>) = SNAPSHOT
            .key(&k.seats)
            .key(&k.seq)
            .invoke_async(&mut self.con)
            .await?;
        let seats = raw
            .iter()
            .filter_map(|s| match serde_json::from_str(s) {
                Ok(seat) => Some(seat),
                Err(e) => {
                    tracing::warn!(error = %e, "skipping a seat in Redis that does not decode");
                    None
                }
            })
            .collect();
        Ok(Snapshot { seq, seats })
    }

    /// Renew this node's lease, then release the seats of nodes whose lease has lapsed.
    pub async fn keep_alive(&mut self) -> RedisResult<u64> {
        let k = &self.keys;
        redis::pipe()
            .atomic()
            .cmd("SET")
            .arg(&k.alive)
            .arg(1)
            .arg("PX")
            .arg(self.lease_ms)
            .ignore()
            .cmd("SADD")
            .arg(&k.nodes)
            .arg(&k.node)
            .ignore()
            .exec_async(&mut self.con)
            .await?;
        self.reap().await
    }

    /// Give up this node's lease and release its seats now (a clean shutdown).
    pub async fn retire(&mut self) -> RedisResult<u64> {
        let _: u64 = redis::cmd("DEL")
            .arg(&self.keys.alive)
            .query_async(&mut self.con)
            .await?;
        self.reap().await
    }

    async fn reap(&mut self) -> RedisResult<u64> {
        let k = &self.keys;
        REAP.key(&k.nodes)
            .key(&k.seats)
            .key(&k.seq)
            .arg(&k.presence)
            .arg(&k.prefix)
            .invoke_async(&mut self.con)
            .await
    }
}

fn json(value: &impl serde::Serialize) -> String {
    // Invariant: these types (protocol structs of strings, numbers and bools) always encode.
    serde_json::to_string(value).expect("plain data encodes as JSON")
}
