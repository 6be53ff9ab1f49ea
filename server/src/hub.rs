//! The pure core of the server: sessions, voice seats, presence, the join guard (VOIC-01),
//! channel switching, resume, and who may signal whom. It owns no sockets, tasks or clocks:
//! each method takes an event (and `Instant` where time matters) and returns the [`Effect`]s
//! to carry out, in order. Every method is one atomic step: a check and the write it guards
//! happen together, so concurrency cannot slip between them (Cromulent checked presence, then
//! tracked later, and two simultaneous joins both passed).

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use cromulent_protocol::{
    ChannelId, ChannelInfo, ChatMessage, ErrorReason, Heartbeat, IceConfig, LeftReason, Member,
    MessageId, PresenceChange, PresenceOp, ServerMsg, SessionInfo, Signal, UserId, UserInfo,
};

use crate::auth::Identity;
use crate::config::ChannelConfig;

mod cluster;
mod lookalikes;

use lookalikes::Lookalikes;

/// One WebSocket connection, numbered by the accept loop.
pub type ConnId = u64;

type SessionId = u64;

/// What the caller must do after a step.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Send to one connection.
    Send(ConnId, ServerMsg),
    /// Send to every attached connection.
    Broadcast(ServerMsg),
    /// Send `error(reason)` to the connection, then close it.
    Close(ConnId, ErrorReason),
    /// Send one message to each of these connections (a chat message's followers).
    SendMany(Vec<ConnId>, ServerMsg),
    /// Add a chat message to the history (after it went out live).
    Store(ChatMessage),
    /// Answer `conn` with a page of `channel`'s history (after every `Store` before it).
    Page {
        conn: ConnId,
        channel: ChannelId,
        before: Option<MessageId>,
        limit: u32,
    },
}

/// A user's talk flags as shown to others.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VoiceFlags {
    pub muted: bool,
    pub deafened: bool,
    pub talking: bool,
}

#[derive(Debug)]
struct Channel {
    id: ChannelId,
    name: String,
    /// Seated sessions, in join order.
    members: Vec<SessionId>,
}

#[derive(Debug)]
struct Session {
    identity: Identity,
    resume_token: String,
    /// The connection currently holding this session; `None` while detached (in grace).
    conn: Option<ConnId>,
    /// Voice channel this session sits in.
    channel: Option<ChannelId>,
    /// Channel it sat in when its connection ended, to take the seat back on resume.
    last_channel: Option<ChannelId>,
    flags: VoiceFlags,
    /// Changes each time the seat is (re)taken, so peers know to start a new call.
    instance: u64,
    detached_at: Option<Instant>,
}

/// Sessions, seats and channels. See the module docs.
#[derive(Debug)]
pub struct Hub {
    channels: Vec<Channel>,
    sessions: HashMap<SessionId, Session>,
    by_conn: HashMap<ConnId, SessionId>,
    by_resume: HashMap<String, SessionId>,
    /// The join guard's table: which session holds each user's one voice seat.
    seats: HashMap<UserId, SessionId>,
    /// Names of live sessions (attached or in grace), by confusable skeleton.
    lookalikes: Lookalikes,
    resume_grace: Duration,
    heartbeat: Heartbeat,
    next_session: SessionId,
    next_instance: u64,
    /// Chat: the channel each connection follows besides its seat, and the reverse index, so a
    /// message costs its followers, never every connection.
    watch: HashMap<ConnId, ChannelId>,
    watchers: HashMap<ChannelId, BTreeSet<ConnId>>,
    next_message: MessageId,
    max_chat_chars: usize,
    /// Cluster mode: the replica of every seat in the cluster. `None` (one instance): the
    /// rules below run on this process's memory alone, as they always have.
    cluster: Option<cluster::Replica>,
}

/// The parts of a `hello` the hub needs.
#[derive(Debug, Clone)]
pub struct Attach {
    pub conn: ConnId,
    pub identity: Identity,
    /// Resume token presented by the client, if any.
    pub resume: Option<String>,
    /// A fresh random token, used if a new session is created.
    pub new_resume_token: String,
    /// ICE servers, used if a resumed session takes a seat back.
    pub ice: IceConfig,
}

impl Hub {
    pub fn new(channels: &[ChannelConfig], resume_grace: Duration, heartbeat: Heartbeat) -> Self {
        Self {
            channels: channels
                .iter()
                .map(|c| Channel {
                    id: c.id,
                    name: c.name.clone(),
                    members: Vec::new(),
                })
                .collect(),
            sessions: HashMap::new(),
            by_conn: HashMap::new(),
            by_resume: HashMap::new(),
            seats: HashMap::new(),
            lookalikes: Lookalikes::default(),
            resume_grace,
            heartbeat,
            next_session: 1,
            next_instance: 1,
            watch: HashMap::new(),
            watchers: HashMap::new(),
            next_message: 1,
            max_chat_chars: 2_000,
            cluster: None,
        }
    }

    /// Chat settings: the id the next message takes (one past the history's largest) and
    /// the longest message in characters.
    pub fn with_chat(mut self, next_message: MessageId, max_chars: usize) -> Self {
        self.next_message = next_message;
        self.max_chat_chars = max_chars;
        self
    }

    /// A connection said a valid `hello`: start or resume its session. A new session whose
    /// name looks like another user's (connected or resumable) is refused with `name_taken`;
    /// a resume is the same user and never clashes. A resume hands out a new resume token
    /// (the old one stops working).
    pub fn attach(&mut self, a: Attach, now: Instant) -> Vec<Effect> {
        let resumed = a
            .resume
            .as_deref()
            .and_then(|token| self.resumable(token, &a.identity.user, now));
        // In a cluster a detached session may be resumed on any instance: the token is
        // claimed in Redis (one claimant wins) before anyone is welcomed.
        if self.cluster.is_some()
            && a.resume.is_some()
            && resumed.is_none_or(|sid| self.session(sid).conn.is_none())
        {
            return self.cluster_claim(a);
        }
        match resumed {
            Some(sid) => self.resume(a, sid),
            None => self.start_session(a),
        }
    }

    /// A new session (the resume token, if any, was not honoured). In a cluster its names
    /// are checked against every instance's first.
    fn start_session(&mut self, a: Attach) -> Vec<Effect> {
        if self.lookalikes.clash(&a.identity).is_some() {
            return vec![Effect::Close(a.conn, ErrorReason::NameTaken)];
        }
        if self.cluster.is_some() {
            return self.cluster_check_name(a);
        }
        self.open_session(a)
    }

    /// A new session whose names are free.
    fn open_session(&mut self, a: Attach) -> Vec<Effect> {
        let sid = self.new_session(a.conn, a.identity, a.new_resume_token);
        let mut fx = vec![Effect::Send(a.conn, self.welcome(sid, false))];
        if a.resume.is_some() {
            fx.push(Effect::Send(
                a.conn,
                ServerMsg::error(
                    ErrorReason::ResumeExpired,
                    "resume token unknown or past its grace window; this is a new session",
                ),
            ));
        }
        fx
    }

    /// Session `sid` of this hub continues on connection `a.conn`.
    fn resume(&mut self, a: Attach, sid: SessionId) -> Vec<Effect> {
        let mut fx = Vec::new();
        let session = self.session_mut(sid);
        let old_token = std::mem::replace(&mut session.resume_token, a.new_resume_token.clone());
        let old_conn = session.conn.replace(a.conn);
        session.detached_at = None;
        self.by_resume.remove(&old_token);
        self.by_resume.insert(a.new_resume_token, sid);
        if let Some(old) = old_conn {
            self.by_conn.remove(&old);
            self.unwatch(old);
            fx.push(Effect::Close(old, ErrorReason::SessionReplaced));
        }
        self.by_conn.insert(a.conn, sid);
        fx.push(Effect::Send(a.conn, self.welcome(sid, true)));
        if self.cluster.is_some() {
            if let Some(channel) = self.session(sid).channel {
                fx.extend(self.cluster_handover(a.conn, sid, channel, a.ice));
            } else if let Some(channel) = self.session_mut(sid).last_channel.take() {
                fx.extend(self.cluster_seat(sid, channel, a.ice));
            }
        } else if let Some(channel) = self.session(sid).channel {
            // The old connection still held the seat: hand it over, as a new instance.
            let instance = self.bump_instance();
            self.session_mut(sid).instance = instance;
            fx.push(self.joined(sid, channel, a.ice));
            fx.push(self.presence(vec![(PresenceOp::Update, channel, sid)]));
        } else if let Some(channel) = self.session_mut(sid).last_channel.take() {
            let user = &self.session(sid).identity.user;
            match self.seats.get(user).map(|&holder| self.session(holder).channel) {
                None => fx.extend(self.seat(sid, channel, a.ice)),
                // Another connection of this user sat down meanwhile: say so, or the client
                // would wait for a `joined` that never comes.
                Some(current) => fx.push(error(
                    a.conn,
                    ErrorReason::AlreadyInVoice,
                    format!(
                        "your seat in voice channel {channel} was not kept: you are in voice from another connection; leave it there first"
                    ),
                    current,
                )),
            }
        }
        fx
    }

    /// A connection ended. Its seat is released at once (no ghosts); the session stays
    /// resumable for the grace window.
    pub fn detach(&mut self, conn: ConnId, now: Instant) -> Vec<Effect> {
        self.unwatch(conn);
        if let Some(replica) = &mut self.cluster {
            replica.forget_pending(conn);
        }
        let Some(sid) = self.by_conn.remove(&conn) else {
            return Vec::new();
        };
        let mut fx = Vec::new();
        if self.cluster.is_some() {
            self.cluster_detach(sid);
        } else if let Some(channel) = self.session(sid).channel {
            fx.extend(self.unseat(sid));
            self.session_mut(sid).last_channel = Some(channel);
        }
        let session = self.session_mut(sid);
        session.conn = None;
        session.detached_at = Some(now);
        fx
    }

    /// Forget sessions detached for longer than the grace window.
    pub fn expire(&mut self, now: Instant) {
        let grace = self.resume_grace;
        let expired: Vec<SessionId> = self
            .sessions
            .iter()
            .filter(|(_, s)| s.detached_at.is_some_and(|t| now.duration_since(t) > grace))
            .map(|(id, _)| *id)
            .collect();
        for sid in expired {
            self.forget(sid);
        }
    }

    /// Drop a session and its resume token.
    fn forget(&mut self, sid: SessionId) {
        if let Some(s) = self.sessions.remove(&sid) {
            self.by_resume.remove(&s.resume_token);
            let freed = self.lookalikes.remove(&s.identity);
            if self.cluster.is_some() && !freed.is_empty() {
                self.cluster_unname(s.identity.user, freed);
            }
        }
    }

    /// `join`: the join guard, switching, and the reply.
    pub fn join(&mut self, conn: ConnId, channel: ChannelId, ice: IceConfig) -> Vec<Effect> {
        let Some(sid) = self.by_conn.get(&conn).copied() else {
            return Vec::new();
        };
        if self.channel(channel).is_none() {
            return vec![error(
                conn,
                ErrorReason::NotFound,
                format!("no voice channel with id {channel}"),
                Some(channel),
            )];
        }
        if self.cluster.is_some() {
            return self.cluster_seat(sid, channel, ice);
        }
        let user = &self.session(sid).identity.user;
        if let Some(&holder) = self.seats.get(user) {
            // Invariant: every seat's holder is a live session seated in a channel.
            let current = self.session(holder).channel.expect("seat holder is seated");
            if current == channel {
                return vec![error(
                    conn,
                    ErrorReason::AlreadyInChannel,
                    "you are already in this voice channel".into(),
                    Some(channel),
                )];
            }
            if holder != sid {
                return vec![error(
                    conn,
                    ErrorReason::AlreadyInVoice,
                    format!(
                        "you are in voice channel {current} from another connection; leave it there first"
                    ),
                    Some(current),
                )];
            }
            return self.switch(sid, current, channel, ice);
        }
        self.seat(sid, channel, ice)
    }

    /// `leave`.
    pub fn leave(&mut self, conn: ConnId) -> Vec<Effect> {
        let Some(sid) = self.by_conn.get(&conn).copied() else {
            return Vec::new();
        };
        if self.cluster.is_some() {
            return self.cluster_leave(conn, sid);
        }
        let Some(channel) = self.session(sid).channel else {
            return vec![not_in_voice(conn)];
        };
        let mut fx = vec![Effect::Send(
            conn,
            ServerMsg::Left {
                channel,
                reason: LeftReason::Requested,
            },
        )];
        fx.extend(self.unseat(sid));
        fx
    }

    /// `voice_state`: remember the flags; tell everyone if they changed while seated.
    pub fn voice_state(&mut self, conn: ConnId, flags: VoiceFlags) -> Vec<Effect> {
        let Some(sid) = self.by_conn.get(&conn).copied() else {
            return Vec::new();
        };
        let session = self.session_mut(sid);
        if session.flags == flags {
            return Vec::new();
        }
        session.flags = flags;
        if self.cluster.is_some() {
            return self.cluster_flags(sid);
        }
        let session = self.session(sid);
        match session.channel {
            Some(channel) => vec![self.presence(vec![(PresenceOp::Update, channel, sid)])],
            None => Vec::new(),
        }
    }

    /// `signal`: deliver to exactly the addressee, who must sit in the sender's channel.
    pub fn relay(&mut self, conn: ConnId, to: &str, signal: Signal) -> Vec<Effect> {
        let Some(sid) = self.by_conn.get(&conn).copied() else {
            return Vec::new();
        };
        if self.cluster.is_some() {
            return self.cluster_relay(conn, sid, to, signal);
        }
        let from = self.session(sid);
        let Some(channel) = from.channel else {
            return vec![not_in_voice(conn)];
        };
        let target = self
            .seats
            .get(to)
            .copied()
            .filter(|&t| t != sid && self.session(t).channel == Some(channel));
        let Some(target_conn) = target.and_then(|t| self.session(t).conn) else {
            return vec![peer_not_found(conn, to, channel)];
        };
        vec![Effect::Send(
            target_conn,
            ServerMsg::Signal {
                from: from.identity.user.clone(),
                signal,
            },
        )]
    }

    /// The presence snapshot: every channel with its members.
    /// Follow `channel`'s chat (replacing the one followed before), or none.
    pub fn watch(&mut self, conn: ConnId, channel: Option<ChannelId>) -> Vec<Effect> {
        if !self.by_conn.contains_key(&conn) {
            return Vec::new();
        }
        if let Some(c) = channel
            && !self.channels.iter().any(|ch| ch.id == c)
        {
            return vec![not_found(conn, c)];
        }
        self.unwatch(conn);
        if let Some(c) = channel {
            self.watch.insert(conn, c);
            self.watchers.entry(c).or_default().insert(conn);
        }
        Vec::new()
    }

    fn unwatch(&mut self, conn: ConnId) {
        if let Some(c) = self.watch.remove(&conn)
            && let Some(set) = self.watchers.get_mut(&c)
        {
            set.remove(&conn);
            if set.is_empty() {
                self.watchers.remove(&c);
            }
        }
    }

    /// Post `text` to `channel` at `now_ms` (Unix ms): it goes at once to everyone seated in
    /// the channel or watching it, and to the sender; then to the history.
    pub fn say(
        &mut self,
        conn: ConnId,
        channel: ChannelId,
        text: &str,
        now_ms: u64,
    ) -> Vec<Effect> {
        let Some(&sid) = self.by_conn.get(&conn) else {
            return Vec::new();
        };
        if self.channel(channel).is_none() {
            return vec![not_found(conn, channel)];
        }
        let text = match crate::chat::check_text(text, self.max_chat_chars) {
            Ok(text) => text,
            Err(refused) => {
                return vec![error(conn, refused.reason, refused.message, Some(channel))];
            }
        };
        let identity = &self.session(sid).identity;
        let message = ChatMessage {
            id: self.next_message,
            channel,
            user: identity.user.clone(),
            name: identity.name.clone(),
            time: now_ms,
            text,
        };
        if self.cluster.is_some() {
            return self.cluster_say(sid, message);
        }
        self.next_message += 1;
        self.post(message, Some(conn))
    }

    /// Send `message` to everyone seated in its channel or watching it here, and to
    /// `sender`; then to the history.
    fn post(&self, message: ChatMessage, sender: Option<ConnId>) -> Vec<Effect> {
        let Some(ch) = self.channel(message.channel) else {
            return Vec::new();
        };
        let mut to: Vec<ConnId> = ch
            .members
            .iter()
            .filter_map(|m| self.sessions.get(m).and_then(|s| s.conn))
            .chain(
                self.watchers
                    .get(&message.channel)
                    .into_iter()
                    .flatten()
                    .copied(),
            )
            .chain(sender)
            .collect();
        to.sort_unstable();
        to.dedup();
        let live = Effect::SendMany(
            to,
            ServerMsg::Message {
                message: message.clone(),
            },
        );
        if self.cluster.is_some() {
            // Already in the cluster's history (Redis added it before it went out).
            return vec![live];
        }
        vec![live, Effect::Store(message)]
    }

    /// A page of `channel`'s history for `conn` (anyone may read any channel), from the chat
    /// store (in cluster mode, from Redis).
    pub fn history(
        &mut self,
        conn: ConnId,
        channel: ChannelId,
        before: Option<MessageId>,
        limit: Option<u32>,
    ) -> Vec<Effect> {
        let Some(&session) = self.by_conn.get(&conn) else {
            return Vec::new();
        };
        if !self.channels.iter().any(|c| c.id == channel) {
            return vec![not_found(conn, channel)];
        }
        let limit = crate::chat::page_size(limit);
        if self.cluster.is_some() {
            return self.cluster_history(conn, session, channel, before, limit);
        }
        vec![Effect::Page {
            conn,
            channel,
            before,
            limit,
        }]
    }

    pub fn snapshot(&self) -> Vec<ChannelInfo> {
        if self.cluster.is_some() {
            return self.cluster_snapshot();
        }
        self.channels
            .iter()
            .map(|c| ChannelInfo {
                id: c.id,
                name: c.name.clone(),
                members: c.members.iter().map(|&s| self.member(s)).collect(),
            })
            .collect()
    }

    /// Number of sessions (attached or in grace).
    pub fn session_count(&self) -> usize {
        self.sessions.len()
    }

    fn resumable(&self, token: &str, user: &str, now: Instant) -> Option<SessionId> {
        let sid = *self.by_resume.get(token)?;
        let s = self.session(sid);
        let in_grace = match s.detached_at {
            None => true,
            Some(t) => now.duration_since(t) <= self.resume_grace,
        };
        (s.identity.user == user && in_grace).then_some(sid)
    }

    fn new_session(&mut self, conn: ConnId, identity: Identity, token: String) -> SessionId {
        let sid = self.next_session;
        self.next_session += 1;
        self.by_resume.insert(token.clone(), sid);
        self.by_conn.insert(conn, sid);
        self.lookalikes.add(&identity);
        self.sessions.insert(
            sid,
            Session {
                identity,
                resume_token: token,
                conn: Some(conn),
                channel: None,
                last_channel: None,
                flags: VoiceFlags::default(),
                instance: 0,
                detached_at: None,
            },
        );
        sid
    }

    fn welcome(&self, sid: SessionId, resumed: bool) -> ServerMsg {
        let s = self.session(sid);
        ServerMsg::Welcome {
            protocol: cromulent_protocol::PROTOCOL_VERSION,
            user: UserInfo {
                id: s.identity.user.clone(),
                name: s.identity.name.clone(),
            },
            session: SessionInfo {
                resume_token: s.resume_token.clone(),
                resume_grace_ms: self.resume_grace.as_millis() as u64,
            },
            resumed,
            heartbeat: self.heartbeat,
            channels: self.snapshot(),
        }
    }

    /// Seat an unseated session (the guard has passed).
    fn seat(&mut self, sid: SessionId, channel: ChannelId, ice: IceConfig) -> Vec<Effect> {
        let instance = self.bump_instance();
        let session = self.session_mut(sid);
        session.channel = Some(channel);
        session.instance = instance;
        let user = session.identity.user.clone();
        self.seats.insert(user, sid);
        self.channel_mut(channel).members.push(sid);
        vec![
            self.joined(sid, channel, ice),
            self.presence(vec![(PresenceOp::Join, channel, sid)]),
        ]
    }

    /// Move a seated session from one channel to another in one step: its old peers see the
    /// leave in the same presence message as the join, so no one sees it in both.
    fn switch(
        &mut self,
        sid: SessionId,
        from: ChannelId,
        to: ChannelId,
        ice: IceConfig,
    ) -> Vec<Effect> {
        // Invariant: a seated session has a connection (detach unseats).
        let conn = self.session(sid).conn.expect("seated session is attached");
        let leave_member = self.member(sid);
        self.channel_mut(from).members.retain(|&m| m != sid);
        let instance = self.bump_instance();
        let session = self.session_mut(sid);
        session.channel = Some(to);
        session.instance = instance;
        self.channel_mut(to).members.push(sid);
        let changes = vec![
            PresenceChange {
                op: PresenceOp::Leave,
                channel: from,
                member: leave_member,
            },
            PresenceChange {
                op: PresenceOp::Join,
                channel: to,
                member: self.member(sid),
            },
        ];
        vec![
            Effect::Send(
                conn,
                ServerMsg::Left {
                    channel: from,
                    reason: LeftReason::Switched,
                },
            ),
            self.joined(sid, to, ice),
            Effect::Broadcast(ServerMsg::Presence { changes }),
        ]
    }

    /// Release a session's seat and announce it.
    fn unseat(&mut self, sid: SessionId) -> Vec<Effect> {
        let Some(channel) = self.session(sid).channel else {
            return Vec::new();
        };
        let fx = self.presence(vec![(PresenceOp::Leave, channel, sid)]);
        self.channel_mut(channel).members.retain(|&m| m != sid);
        let session = self.session_mut(sid);
        session.channel = None;
        let user = session.identity.user.clone();
        if self.seats.get(&user) == Some(&sid) {
            self.seats.remove(&user);
        }
        vec![fx]
    }

    fn joined(&self, sid: SessionId, channel: ChannelId, ice: IceConfig) -> Effect {
        // Invariant: only attached sessions are seated or switched.
        let conn = self.session(sid).conn.expect("joined session is attached");
        let peers = self
            .channel(channel)
            .map(|c| {
                c.members
                    .iter()
                    .filter(|&&m| m != sid)
                    .map(|&m| self.member(m))
                    .collect()
            })
            .unwrap_or_default();
        Effect::Send(
            conn,
            ServerMsg::Joined {
                channel,
                ice,
                peers,
            },
        )
    }

    fn presence(&self, changes: Vec<(PresenceOp, ChannelId, SessionId)>) -> Effect {
        Effect::Broadcast(ServerMsg::Presence {
            changes: changes
                .into_iter()
                .map(|(op, channel, sid)| PresenceChange {
                    op,
                    channel,
                    member: self.member(sid),
                })
                .collect(),
        })
    }

    fn member(&self, sid: SessionId) -> Member {
        let s = self.session(sid);
        Member {
            user: s.identity.user.clone(),
            name: s.identity.name.clone(),
            muted: s.flags.muted,
            deafened: s.flags.deafened,
            talking: s.flags.talking,
            instance: s.instance,
        }
    }

    fn bump_instance(&mut self) -> u64 {
        self.next_instance += 1;
        self.next_instance
    }

    fn session(&self, sid: SessionId) -> &Session {
        // Invariant: ids come from by_conn/by_resume/seats/members, which only hold live
        // sessions (expire removes a session only once it is detached and unseated).
        self.sessions.get(&sid).expect("session id is live")
    }

    fn session_mut(&mut self, sid: SessionId) -> &mut Session {
        // Invariant: as for `session`.
        self.sessions.get_mut(&sid).expect("session id is live")
    }

    fn channel(&self, id: ChannelId) -> Option<&Channel> {
        self.channels.iter().find(|c| c.id == id)
    }

    fn channel_mut(&mut self, id: ChannelId) -> &mut Channel {
        // Invariant: callers pass channel ids that `join` checked or that a session sits in.
        self.channels
            .iter_mut()
            .find(|c| c.id == id)
            .expect("channel id is configured")
    }
}

fn error(conn: ConnId, reason: ErrorReason, message: String, channel: Option<ChannelId>) -> Effect {
    Effect::Send(conn, ServerMsg::error_in(reason, message, channel))
}

fn not_found(conn: ConnId, channel: ChannelId) -> Effect {
    error(
        conn,
        ErrorReason::NotFound,
        format!("no channel with id {channel}"),
        Some(channel),
    )
}

fn peer_not_found(conn: ConnId, to: &str, channel: ChannelId) -> Effect {
    error(
        conn,
        ErrorReason::PeerNotFound,
        format!(
            "{:?} is not in your voice channel",
            to.chars().take(64).collect::<String>()
        ),
        Some(channel),
    )
}

fn not_in_voice(conn: ConnId) -> Effect {
    error(
        conn,
        ErrorReason::NotInVoice,
        "join a voice channel first".into(),
        None,
    )
}

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;
