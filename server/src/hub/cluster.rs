//! The hub's rules in cluster mode (`[cluster]`): the same promises as one instance, with the
//! seats held in Redis. Still pure: requests become [`Op`]s for the cluster edge, and what
//! the edge reports ([`Input`]) becomes messages for clients.
//!
//! The hub keeps a replica of every seat of the cluster, changed only by the events in their
//! one global order (`seq`), and answers from it: the welcome's snapshot, `joined`'s peers,
//! who may be signalled. A client is told it sits (`joined`) when the event that seated it
//! arrives, so its peers are exactly the replica at that point and every later change
//! follows; every instance broadcasts every event in the same order. A missed event (a gap
//! in `seq`) asks for a snapshot; until it comes, later events wait.

use std::collections::{BTreeMap, HashMap, HashSet};

use cromulent_protocol::{
    ChannelId, ChannelInfo, ChatMessage, ErrorReason, IceConfig, LeftReason, Member, MessageId,
    PresenceChange, PresenceOp, ServerMsg, Signal, UserId,
};

use super::{
    Attach, ConnId, Effect, Hub, SessionId, VoiceFlags, error, not_in_voice, peer_not_found,
};
use crate::cluster::wire::{
    Chat, Claim, Event, Forward, Input, NameOutcome, NodeId, Op, Parked, Seat, SeatChange,
    SeatOutcome, Snapshot, Why,
};

/// Every seat of the cluster, as of event `seq`.
#[derive(Debug)]
pub(super) struct Replica {
    /// This instance's node: seats of its sessions are the ones it tells about.
    node: NodeId,
    /// `None` until the first snapshot.
    seq: Option<u64>,
    seats: HashMap<UserId, Seat>,
    /// Each channel's members in the order they sat down.
    order: BTreeMap<(ChannelId, u64), UserId>,
    /// Events that arrived ahead of `seq + 1`, until the gap is filled or a snapshot comes.
    early: BTreeMap<u64, Event>,
    /// A snapshot has been asked for.
    resyncing: bool,
    /// The ICE servers each session asked to join with, for its `joined`.
    ice: HashMap<SessionId, IceConfig>,
    /// Connections whose resume token is being claimed, not welcomed yet.
    pending: HashMap<ConnId, Attach>,
    /// Sessions that asked to leave, until their leave arrives (or a snapshot shows it).
    leaving: HashSet<SessionId>,
    /// What to ask of the cluster edge, in order, until the caller takes it
    /// ([`Hub::take_cluster_ops`]).
    outbox: Vec<Op>,
}

impl Replica {
    pub(super) fn new(node: NodeId) -> Self {
        Self {
            node,
            seq: None,
            seats: HashMap::new(),
            order: BTreeMap::new(),
            early: BTreeMap::new(),
            resyncing: false,
            ice: HashMap::new(),
            pending: HashMap::new(),
            leaving: HashSet::new(),
            outbox: Vec::new(),
        }
    }

    /// A connection ended before its claim was answered.
    pub(super) fn forget_pending(&mut self, conn: ConnId) {
        self.pending.remove(&conn);
    }

    fn insert(&mut self, seat: Seat) {
        self.remove(&seat.member.user.clone());
        self.order
            .insert((seat.channel, seat.seq), seat.member.user.clone());
        self.seats.insert(seat.member.user.clone(), seat);
    }

    fn remove(&mut self, user: &str) -> Option<Seat> {
        let seat = self.seats.remove(user)?;
        self.order.remove(&(seat.channel, seat.seq));
        Some(seat)
    }

    fn members(&self, channel: ChannelId) -> impl Iterator<Item = &Seat> {
        self.order
            .range((channel, 0)..=(channel, u64::MAX))
            .filter_map(|(_, user)| self.seats.get(user))
    }
}

impl Hub {
    /// Whether connection `conn` said `hello` and waits for Redis (a resume claim or the name
    /// check) before it is welcomed: what it asks meanwhile must wait too.
    pub fn is_pending(&self, conn: ConnId) -> bool {
        self.cluster
            .as_ref()
            .is_some_and(|r| r.pending.contains_key(&conn))
    }

    /// Run as node `node` of a cluster: seats live in Redis, through the cluster edge.
    pub fn in_cluster(mut self, node: NodeId) -> Self {
        self.cluster = Some(Replica::new(node));
        self
    }

    /// Something the cluster edge reports, at `now`.
    pub fn cluster_input(&mut self, input: Input, now: std::time::Instant) -> Vec<Effect> {
        if self.cluster.is_none() {
            return Vec::new();
        }
        match input {
            Input::Event(event) => self.on_event(event),
            Input::Snapshot(snapshot) => self.on_snapshot(snapshot),
            Input::Seat {
                session,
                channel,
                outcome,
            } => self.on_seat_outcome(session, channel, outcome),
            Input::Forwarded(forward) => self.on_forwarded(forward),
            Input::Chat(chat) => self.on_chat(chat),
            Input::SayFailed { session, channel } => self.on_say_failed(session, channel),
            Input::History {
                conn,
                channel,
                page,
            } => self.on_history(conn, channel, page),
            Input::Named {
                conn,
                user,
                skeletons,
                outcome,
            } => self.on_named(conn, user, skeletons, outcome),
            Input::LeaveFailed { session } => self.on_leave_failed(session),
            Input::Claimed { conn, claim } => self.on_claimed(conn, claim, now),
            Input::Forget { session } => {
                if self
                    .sessions
                    .get(&session)
                    .is_some_and(|s| s.conn.is_none())
                {
                    self.replica_mut().ice.remove(&session);
                    self.forget(session);
                }
                Vec::new()
            }
        }
    }

    /// What the steps since the last call ask of the cluster edge (Redis), in order; to be
    /// carried out after the step's effects. Always empty for a hub without `[cluster]`.
    pub fn take_cluster_ops(&mut self) -> Vec<Op> {
        match &mut self.cluster {
            Some(r) => std::mem::take(&mut r.outbox),
            None => Vec::new(),
        }
    }

    /// Queue `op` for the cluster edge.
    fn ask(&mut self, op: Op) {
        self.replica_mut().outbox.push(op);
    }

    fn replica(&self) -> &Replica {
        // Invariant: only called in cluster mode (callers check `self.cluster`).
        self.cluster.as_ref().expect("cluster mode")
    }

    fn replica_mut(&mut self) -> &mut Replica {
        // Invariant: as for `replica`.
        self.cluster.as_mut().expect("cluster mode")
    }

    /// Ask the join guard for a seat in `channel`; `joined` follows with the event.
    pub(super) fn cluster_seat(
        &mut self,
        sid: SessionId,
        channel: ChannelId,
        ice: IceConfig,
    ) -> Vec<Effect> {
        self.replica_mut().ice.insert(sid, ice);
        self.ask(Op::Seat {
            session: sid,
            user: self.session(sid).identity.user.clone(),
            channel,
            member: self.member(sid),
        });
        Vec::new()
    }

    /// A resume on this instance while the old connection still held the seat: the seat
    /// stays, the call instance changes (announced through the cluster).
    pub(super) fn cluster_handover(
        &mut self,
        conn: ConnId,
        sid: SessionId,
        channel: ChannelId,
        ice: IceConfig,
    ) -> Vec<Effect> {
        let user = self.session(sid).identity.user.clone();
        self.replica_mut().ice.insert(sid, ice.clone());
        let joined = Effect::Send(
            conn,
            ServerMsg::Joined {
                channel,
                ice,
                peers: self.peers(channel, &user),
            },
        );
        self.ask(Op::Update {
            session: sid,
            user,
            member: self.member(sid),
            fresh: true,
        });
        vec![joined]
    }

    /// The connection ended: release the seat (the leave comes back as an event), and park
    /// the session in Redis so that any instance can resume it within the grace window.
    pub(super) fn cluster_detach(&mut self, sid: SessionId) {
        self.replica_mut().ice.remove(&sid);
        self.replica_mut().leaving.remove(&sid);
        if let Some(channel) = self.session(sid).channel {
            self.channel_mut(channel).members.retain(|&m| m != sid);
            let session = self.session_mut(sid);
            session.channel = None;
            session.last_channel = Some(channel);
            let user = session.identity.user.clone();
            self.ask(Op::Unseat {
                session: sid,
                user,
                why: Why::Disconnected,
            });
        }
        let session = self.session(sid);
        self.ask(Op::Park {
            token: session.resume_token.clone(),
            parked: Parked {
                node: self.replica().node.clone(),
                session: sid,
                channel: session.last_channel,
                member: self.member(sid),
            },
            ttl_ms: self.resume_grace.as_millis() as u64,
        });
    }

    /// A resume token to claim before the connection is welcomed.
    pub(super) fn cluster_claim(&mut self, a: Attach) -> Vec<Effect> {
        let conn = a.conn;
        let token = a.resume.clone().unwrap_or_default();
        self.replica_mut().pending.insert(conn, a);
        self.ask(Op::Claim { conn, token });
        Vec::new()
    }

    /// The claim's answer: resume here (the session was this instance's), take the session
    /// over from another instance, or start a new one. With Redis unreachable a session of
    /// this instance still resumes.
    fn on_claimed(&mut self, conn: ConnId, claim: Claim, now: std::time::Instant) -> Vec<Effect> {
        let Some(a) = self.replica_mut().pending.remove(&conn) else {
            return Vec::new();
        };
        let local = a
            .resume
            .as_deref()
            .and_then(|token| self.resumable(token, &a.identity.user, now));
        let node = self.replica().node.clone();
        match (claim, local) {
            (Claim::Won(p), Some(sid)) if p.node == node && p.session == sid => self.resume(a, sid),
            (Claim::Won(p), _) if p.member.user == a.identity.user => self.take_over(a, p),
            (Claim::Unreachable, Some(sid)) => self.resume(a, sid),
            _ => self.start_session(a),
        }
    }

    /// A new session waits for the name check across instances (its names are registered
    /// in the same step when free).
    pub(super) fn cluster_check_name(&mut self, a: Attach) -> Vec<Effect> {
        let conn = a.conn;
        let user = a.identity.user.clone();
        let skeletons = super::lookalikes::skeletons(&a.identity);
        self.replica_mut().pending.insert(conn, a);
        self.ask(Op::Name {
            conn: Some(conn),
            user,
            skeletons,
        });
        Vec::new()
    }

    /// The name check's answer. With Redis unreachable the session starts on this instance's
    /// own check alone (its names are registered at the next resync).
    fn on_named(
        &mut self,
        conn: ConnId,
        user: UserId,
        skeletons: Vec<String>,
        outcome: NameOutcome,
    ) -> Vec<Effect> {
        let Some(a) = self.replica_mut().pending.remove(&conn) else {
            // The connection ended while it was checked: the names registered for it are
            // not held here (unless by another session of the same user).
            let unheld: Vec<String> = skeletons
                .into_iter()
                .filter(|s| !self.lookalikes.holds(s))
                .collect();
            if outcome == NameOutcome::Free && !unheld.is_empty() {
                self.cluster_unname(user, unheld);
            }
            return Vec::new();
        };
        match outcome {
            NameOutcome::Taken(_) => vec![Effect::Close(a.conn, ErrorReason::NameTaken)],
            NameOutcome::Free | NameOutcome::Unavailable => {
                if self.lookalikes.clash(&a.identity).is_some() {
                    return vec![Effect::Close(a.conn, ErrorReason::NameTaken)];
                }
                self.open_session(a)
            }
        }
    }

    /// No session here holds these skeletons of `user` any more.
    pub(super) fn cluster_unname(&mut self, user: UserId, skeletons: Vec<String>) {
        self.ask(Op::Unname { user, skeletons });
    }

    /// Resume a session parked by another instance (or one this instance no longer has):
    /// a new session here with its name and flags, its seat taken again; its old instance
    /// forgets it.
    fn take_over(&mut self, a: Attach, p: Parked) -> Vec<Effect> {
        let mut fx = Vec::new();
        if p.node == self.replica().node {
            self.forget(p.session);
        } else {
            self.ask(Op::Forget {
                node: p.node.clone(),
                session: p.session,
            });
        }
        // The same user's names: registered here without waiting (a resume never clashes).
        self.ask(Op::Name {
            conn: None,
            user: a.identity.user.clone(),
            skeletons: super::lookalikes::skeletons(&a.identity),
        });
        let sid = self.new_session(a.conn, a.identity, a.new_resume_token);
        self.session_mut(sid).flags = VoiceFlags {
            muted: p.member.muted,
            deafened: p.member.deafened,
            talking: p.member.talking,
        };
        fx.push(Effect::Send(a.conn, self.welcome(sid, true)));
        if let Some(channel) = p.channel.filter(|&c| self.channel(c).is_some()) {
            fx.extend(self.cluster_seat(sid, channel, a.ice));
        }
        fx
    }

    pub(super) fn cluster_leave(&mut self, conn: ConnId, sid: SessionId) -> Vec<Effect> {
        if self.session(sid).channel.is_none() {
            return vec![not_in_voice(conn)];
        }
        self.replica_mut().leaving.insert(sid);
        self.ask(Op::Unseat {
            session: sid,
            user: self.session(sid).identity.user.clone(),
            why: Why::Requested,
        });
        Vec::new()
    }

    /// New flags: announced through the cluster when seated.
    pub(super) fn cluster_flags(&mut self, sid: SessionId) -> Vec<Effect> {
        if self.session(sid).channel.is_none() {
            return Vec::new();
        }
        self.ask(Op::Update {
            session: sid,
            user: self.session(sid).identity.user.clone(),
            member: self.member(sid),
            fresh: false,
        });
        Vec::new()
    }

    /// `signal` in cluster mode: to exactly the addressee, seated in the sender's channel on
    /// whichever instance.
    pub(super) fn cluster_relay(
        &mut self,
        conn: ConnId,
        sid: SessionId,
        to: &str,
        signal: Signal,
    ) -> Vec<Effect> {
        let from = self.session(sid);
        let Some(channel) = from.channel else {
            return vec![not_in_voice(conn)];
        };
        let r = self.replica();
        let target = r
            .seats
            .get(to)
            .filter(|t| t.channel == channel && !(t.node == r.node && t.session == sid));
        let from_user = from.identity.user.clone();
        match target {
            Some(t) if t.node != r.node => {
                self.ask(Op::Forward {
                    node: t.node.clone(),
                    forward: Forward {
                        to: to.to_owned(),
                        session: t.session,
                        from: from_user,
                        channel,
                        signal,
                    },
                });
                Vec::new()
            }
            Some(t) => match self.sessions.get(&t.session).and_then(|s| s.conn) {
                Some(target_conn) => vec![Effect::Send(
                    target_conn,
                    ServerMsg::Signal {
                        from: from_user,
                        signal,
                    },
                )],
                None => vec![peer_not_found(conn, to, channel)],
            },
            None => vec![peer_not_found(conn, to, channel)],
        }
    }

    /// A chat message goes out through the cluster: Redis numbers it, every instance
    /// (this one too) sends it to its own followers of the channel when it comes back.
    pub(super) fn cluster_say(&mut self, sid: SessionId, message: ChatMessage) -> Vec<Effect> {
        self.ask(Op::Say {
            chat: Chat {
                message,
                node: self.replica().node.clone(),
                session: sid,
            },
            floor: self.next_message,
        });
        Vec::new()
    }

    /// A page of the cluster's history, read from Redis, for `conn`.
    pub(super) fn cluster_history(
        &mut self,
        conn: ConnId,
        session: SessionId,
        channel: ChannelId,
        before: Option<MessageId>,
        limit: u32,
    ) -> Vec<Effect> {
        self.ask(Op::History {
            conn,
            session,
            channel,
            before,
            limit,
        });
        Vec::new()
    }

    /// The page read for `conn`, or why there is none.
    fn on_history(
        &self,
        conn: ConnId,
        channel: ChannelId,
        page: Option<(Vec<ChatMessage>, bool)>,
    ) -> Vec<Effect> {
        if !self.by_conn.contains_key(&conn) {
            return Vec::new();
        }
        let msg = match page {
            Some((messages, more)) => ServerMsg::History {
                channel,
                messages,
                more,
            },
            None => ServerMsg::error_in(
                ErrorReason::HistoryUnavailable,
                "the chat history cannot be read now: this server cannot reach the cluster's shared state",
                Some(channel),
            ),
        };
        vec![Effect::Send(conn, msg)]
    }

    /// A chat message of the cluster: to this instance's followers of its channel (and its
    /// sender, when posted here), then to this instance's history.
    fn on_chat(&mut self, chat: Chat) -> Vec<Effect> {
        self.next_message = self.next_message.max(chat.message.id.saturating_add(1));
        let sender = (chat.node == self.replica().node)
            .then(|| self.sessions.get(&chat.session).and_then(|s| s.conn))
            .flatten();
        self.post(chat.message, sender)
    }

    /// The leave did not happen: the session still sits, and its client is told why.
    fn on_leave_failed(&mut self, sid: SessionId) -> Vec<Effect> {
        self.replica_mut().leaving.remove(&sid);
        let Some(session) = self.sessions.get(&sid) else {
            return Vec::new();
        };
        match (session.conn, session.channel) {
            (Some(conn), Some(channel)) => vec![error(
                conn,
                ErrorReason::ClusterUnavailable,
                "not left: this server cannot reach the cluster's shared state; try again".into(),
                Some(channel),
            )],
            _ => Vec::new(),
        }
    }

    fn on_say_failed(&self, sid: SessionId, channel: ChannelId) -> Vec<Effect> {
        match self.sessions.get(&sid).and_then(|s| s.conn) {
            Some(conn) => vec![error(
                conn,
                ErrorReason::ClusterUnavailable,
                "not sent: this server cannot reach the cluster's shared state; try again".into(),
                Some(channel),
            )],
            None => Vec::new(),
        }
    }

    /// Every channel with its members, from the replica.
    pub(super) fn cluster_snapshot(&self) -> Vec<ChannelInfo> {
        let r = self.replica();
        self.channels
            .iter()
            .map(|c| ChannelInfo {
                id: c.id,
                name: c.name.clone(),
                members: r.members(c.id).map(|s| s.member.clone()).collect(),
            })
            .collect()
    }

    fn peers(&self, channel: ChannelId, user: &str) -> Vec<Member> {
        self.replica()
            .members(channel)
            .filter(|s| s.member.user != user)
            .map(|s| s.member.clone())
            .collect()
    }

    fn on_event(&mut self, event: Event) -> Vec<Effect> {
        let r = self.replica_mut();
        if r.seq.is_some_and(|seq| event.seq <= seq) {
            return Vec::new();
        }
        r.early.insert(event.seq, event);
        self.apply_ready()
    }

    /// Apply the waiting events that follow `seq` without a gap; on a gap, ask for a snapshot.
    fn apply_ready(&mut self) -> Vec<Effect> {
        let mut fx = Vec::new();
        loop {
            let r = self.replica_mut();
            let Some(seq) = r.seq else { break };
            while let Some(entry) = r.early.first_entry() {
                if *entry.key() > seq {
                    break;
                }
                entry.remove();
            }
            let Some(event) = r.early.remove(&(seq + 1)) else {
                if !r.early.is_empty() && !r.resyncing {
                    r.resyncing = true;
                    r.outbox.push(Op::Snapshot);
                }
                break;
            };
            r.seq = Some(event.seq);
            fx.extend(self.apply_event(event));
        }
        fx
    }

    fn apply_event(&mut self, event: Event) -> Vec<Effect> {
        let mut fx = Vec::new();
        for change in &event.changes {
            self.apply_to_replica(change, event.seq);
            fx.extend(self.apply_locally(change));
        }
        let changes = event
            .changes
            .into_iter()
            .map(|c| PresenceChange {
                op: c.op,
                channel: c.channel,
                member: c.member,
            })
            .collect();
        fx.push(Effect::Broadcast(ServerMsg::Presence { changes }));
        fx
    }

    fn apply_to_replica(&mut self, change: &SeatChange, seq: u64) {
        let r = self.replica_mut();
        let user = &change.member.user;
        match change.op {
            PresenceOp::Join => r.insert(Seat {
                node: change.node.clone(),
                session: change.session,
                channel: change.channel,
                seq,
                member: change.member.clone(),
            }),
            PresenceOp::Leave => {
                if r.seats.get(user).is_some_and(|s| {
                    s.node == change.node
                        && s.session == change.session
                        && s.channel == change.channel
                }) {
                    r.remove(user);
                }
            }
            PresenceOp::Update => {
                if let Some(seat) = r.seats.get_mut(user) {
                    seat.member = change.member.clone();
                }
            }
        }
    }

    /// What a change of one of this node's seats means for its session.
    fn apply_locally(&mut self, change: &SeatChange) -> Vec<Effect> {
        if change.node != self.replica().node {
            return Vec::new();
        }
        let sid = change.session;
        let attached = self
            .sessions
            .get(&sid)
            .filter(|s| s.identity.user == change.member.user)
            .map(|s| s.conn);
        match (change.op, attached) {
            // Seated for a connection that has ended meanwhile: give the seat back.
            (PresenceOp::Join, None | Some(None)) => self.give_back(sid, &change.member.user),
            (PresenceOp::Join, Some(Some(conn))) => self.seated_here(conn, sid, change),
            (PresenceOp::Leave, Some(conn)) => self.unseated_here(conn, sid, change),
            (PresenceOp::Update, Some(_)) => {
                self.session_mut(sid).instance = change.member.instance;
                Vec::new()
            }
            (PresenceOp::Leave | PresenceOp::Update, None) => Vec::new(),
        }
    }

    /// A seat this node's session must not keep: release it.
    fn give_back(&mut self, sid: SessionId, user: &str) -> Vec<Effect> {
        self.ask(Op::Unseat {
            session: sid,
            user: user.to_owned(),
            why: Why::Disconnected,
        });
        Vec::new()
    }

    fn seated_here(&mut self, conn: ConnId, sid: SessionId, change: &SeatChange) -> Vec<Effect> {
        let channel = change.channel;
        if self.channel(channel).is_none() {
            // Only a cluster whose instances disagree on the channels gets here: give it back.
            return self.give_back(sid, &change.member.user);
        }
        if let Some(old) = self.session(sid).channel {
            self.channel_mut(old).members.retain(|&m| m != sid);
        }
        let session = self.session_mut(sid);
        session.channel = Some(channel);
        session.instance = change.member.instance;
        self.channel_mut(channel).members.push(sid);
        let ice = self.replica().ice.get(&sid).cloned().unwrap_or_default();
        vec![Effect::Send(
            conn,
            ServerMsg::Joined {
                channel,
                ice,
                peers: self.peers(channel, &change.member.user),
            },
        )]
    }

    fn unseated_here(
        &mut self,
        conn: Option<ConnId>,
        sid: SessionId,
        change: &SeatChange,
    ) -> Vec<Effect> {
        let channel = change.channel;
        if self.session(sid).channel != Some(channel) {
            return Vec::new();
        }
        self.replica_mut().leaving.remove(&sid);
        self.session_mut(sid).channel = None;
        self.channel_mut(channel).members.retain(|&m| m != sid);
        let Some(conn) = conn else {
            return Vec::new();
        };
        let left = |reason| vec![Effect::Send(conn, ServerMsg::Left { channel, reason })];
        match change.why {
            Some(Why::Requested) => left(LeftReason::Requested),
            Some(Why::Switched) => left(LeftReason::Switched),
            Some(Why::Expired) => vec![seat_lost(conn, channel)],
            Some(Why::Disconnected) | None => Vec::new(),
        }
    }

    /// A snapshot replaces the replica. Clients are told the difference as one presence
    /// message; this node's sessions are brought in line: a seat the snapshot gives a session
    /// that does not know it is confirmed (or given back when its connection has ended); a
    /// seated session the snapshot has lost (Redis restarted, or this node's lease lapsed)
    /// asks for its seat again, so the shared state is rebuilt from the live instances.
    fn on_snapshot(&mut self, snapshot: Snapshot) -> Vec<Effect> {
        let r = self.replica_mut();
        let old = std::mem::take(&mut r.seats);
        r.order.clear();
        for seat in snapshot.seats {
            r.insert(seat);
        }
        r.seq = Some(snapshot.seq);
        r.resyncing = false;
        // Redis may have restarted empty or missed an `Unname`: say again which names this
        // instance's sessions hold.
        let names = self.lookalikes.all();
        self.ask(Op::Names { names });
        let mut fx = self.reconcile_local();
        let changes = self.differences(&old);
        if !changes.is_empty() {
            fx.push(Effect::Broadcast(ServerMsg::Presence { changes }));
        }
        fx.extend(self.apply_ready());
        fx
    }

    fn differences(&self, old: &HashMap<UserId, Seat>) -> Vec<PresenceChange> {
        let new = &self.replica().seats;
        let same_seat = |a: &Seat, b: &Seat| {
            (a.node.as_str(), a.session, a.channel, a.seq)
                == (b.node.as_str(), b.session, b.channel, b.seq)
        };
        let change = |op, seat: &Seat| PresenceChange {
            op,
            channel: seat.channel,
            member: seat.member.clone(),
        };
        let mut changes: Vec<PresenceChange> = old
            .iter()
            .filter(|(user, o)| !new.get(*user).is_some_and(|n| same_seat(o, n)))
            .map(|(_, o)| change(PresenceOp::Leave, o))
            .collect();
        for (user, n) in new {
            match old.get(user) {
                Some(o) if same_seat(o, n) => {
                    if o.member != n.member {
                        changes.push(change(PresenceOp::Update, n));
                    }
                }
                _ => changes.push(change(PresenceOp::Join, n)),
            }
        }
        changes
    }

    fn reconcile_local(&mut self) -> Vec<Effect> {
        let node = self.replica().node.clone();
        let mut fx = Vec::new();
        let own: Vec<SeatChange> = self
            .replica()
            .seats
            .values()
            .filter(|s| s.node == node)
            .map(|s| SeatChange {
                op: PresenceOp::Join,
                channel: s.channel,
                member: s.member.clone(),
                node: s.node.clone(),
                session: s.session,
                why: None,
            })
            .collect();
        for change in &own {
            let current = self.sessions.get(&change.session).map(|s| s.channel);
            if current != Some(Some(change.channel)) {
                fx.extend(self.apply_locally(change));
            }
        }
        let lost: Vec<(SessionId, ChannelId)> = self
            .sessions
            .iter()
            .filter_map(|(&sid, s)| s.channel.map(|c| (sid, c)))
            .filter(|&(sid, _)| !own.iter().any(|c| c.session == sid))
            .collect();
        for (sid, channel) in lost {
            self.channel_mut(channel).members.retain(|&m| m != sid);
            self.session_mut(sid).channel = None;
            if self.replica_mut().leaving.remove(&sid) {
                // It asked to leave, and its leave was among the events missed.
                if let Some(conn) = self.session(sid).conn {
                    fx.push(Effect::Send(
                        conn,
                        ServerMsg::Left {
                            channel,
                            reason: LeftReason::Requested,
                        },
                    ));
                }
                continue;
            }
            let ice = self.replica().ice.get(&sid).cloned().unwrap_or_default();
            fx.extend(self.cluster_seat(sid, channel, ice));
        }
        fx
    }

    fn on_seat_outcome(
        &mut self,
        sid: SessionId,
        channel: ChannelId,
        outcome: SeatOutcome,
    ) -> Vec<Effect> {
        let Some(conn) = self.sessions.get(&sid).and_then(|s| s.conn) else {
            return Vec::new();
        };
        match outcome {
            SeatOutcome::Seated => Vec::new(),
            SeatOutcome::Here(c) => vec![error(
                conn,
                ErrorReason::AlreadyInChannel,
                "you are already in this voice channel".into(),
                Some(c),
            )],
            SeatOutcome::Taken(c) => vec![error(
                conn,
                ErrorReason::AlreadyInVoice,
                format!(
                    "you are in voice channel {c} from another connection; leave it there first"
                ),
                Some(c),
            )],
            SeatOutcome::Unavailable => vec![error(
                conn,
                ErrorReason::ClusterUnavailable,
                "voice is unavailable: this server cannot reach the cluster's shared state; try again".into(),
                Some(channel),
            )],
        }
    }

    /// A signal from another instance: delivered only if its addressee is this session,
    /// seated in that channel, and the sender sits there too.
    fn on_forwarded(&mut self, f: Forward) -> Vec<Effect> {
        let sender_seated = self
            .replica()
            .seats
            .get(&f.from)
            .is_some_and(|s| s.channel == f.channel);
        let target = self
            .sessions
            .get(&f.session)
            .filter(|s| sender_seated && s.identity.user == f.to && s.channel == Some(f.channel));
        match target.and_then(|s| s.conn) {
            Some(conn) => vec![Effect::Send(
                conn,
                ServerMsg::Signal {
                    from: f.from,
                    signal: f.signal,
                },
            )],
            None => Vec::new(),
        }
    }
}

fn seat_lost(conn: ConnId, channel: ChannelId) -> Effect {
    error(
        conn,
        ErrorReason::ClusterUnavailable,
        "your seat was released: this server lost its hold on the cluster's shared state".into(),
        Some(channel),
    )
}

#[cfg(test)]
mod tests;
