//! The hub under random operation sequences (attach with and without resume tokens, look-alike
//! names, detach, join of real and unknown channels, switch, leave, flags, relay, expiry):
//! no panic, and after every step its invariants hold — one seat per user, seats, members and
//! sessions agree, every index points at what it says, no two users' names look alike, and a
//! client that applied every presence broadcast sees exactly the hub's snapshot.
//! Bounded in CI; a longer run: `PROPTEST_CASES=20000 cargo test -p cromulent-server --release
//! hub::proptests`.
//! Operations go through the hub's own methods only; the checks read its fields and must never
//! change them.

use std::collections::{HashMap, HashSet};

use proptest::prelude::*;

use super::*;
use crate::name::skeleton;

const USERS: &[&str] = &["alice", "\u{0430}lice", "bob", "carol", "aIice", "dave"];

#[derive(Debug, Clone)]
enum Op {
    /// A new connection says hello as `USERS[user]`, maybe presenting an earlier token.
    Attach {
        user: usize,
        resume: Option<usize>,
    },
    Detach {
        conn: usize,
    },
    Join {
        conn: usize,
        channel: ChannelId,
    },
    Leave {
        conn: usize,
    },
    Flags {
        conn: usize,
        muted: bool,
        talking: bool,
    },
    Relay {
        conn: usize,
        to: usize,
    },
    /// Follow a channel's chat (channel 0: none; 4 does not exist).
    Watch {
        conn: usize,
        channel: ChannelId,
    },
    /// Post to a channel's chat.
    Say {
        conn: usize,
        channel: ChannelId,
    },
    /// Time passes (milliseconds), then sessions past their grace are forgotten.
    Wait {
        ms: u64,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let conn = 0usize..12;
    prop_oneof![
        3 => (0..USERS.len(), prop::option::of(0usize..12))
            .prop_map(|(user, resume)| Op::Attach { user, resume }),
        2 => conn.clone().prop_map(|conn| Op::Detach { conn }),
        4 => (conn.clone(), 1u32..=4).prop_map(|(conn, channel)| Op::Join { conn, channel }),
        1 => conn.clone().prop_map(|conn| Op::Leave { conn }),
        1 => (conn.clone(), any::<bool>(), any::<bool>())
            .prop_map(|(conn, muted, talking)| Op::Flags { conn, muted, talking }),
        1 => (conn.clone(), 0..USERS.len()).prop_map(|(conn, to)| Op::Relay { conn, to }),
        1 => (conn.clone(), 0u32..=4).prop_map(|(conn, channel)| Op::Watch { conn, channel }),
        1 => (conn, 1u32..=4).prop_map(|(conn, channel)| Op::Say { conn, channel }),
        1 => (0u64..2_000).prop_map(|ms| Op::Wait { ms }),
    ]
}

/// What a client that applied every presence broadcast believes: members per channel.
type View = HashMap<ChannelId, Vec<Member>>;

fn apply_presence(view: &mut View, effects: &[Effect]) {
    for e in effects {
        let Effect::Broadcast(ServerMsg::Presence { changes }) = e else {
            continue;
        };
        for c in changes {
            let members = view.entry(c.channel).or_default();
            match c.op {
                PresenceOp::Join => members.push(c.member.clone()),
                PresenceOp::Leave => members.retain(|m| m.user != c.member.user),
                PresenceOp::Update => {
                    if let Some(m) = members.iter_mut().find(|m| m.user == c.member.user) {
                        *m = c.member.clone();
                    }
                }
            }
        }
    }
}

fn check_invariants(hub: &Hub, view: &View) -> Result<(), String> {
    // One seat per user, held by a live, attached session seated where the channel says.
    let mut seated_users = HashSet::new();
    for (sid, s) in &hub.sessions {
        if let Some(ch) = s.channel {
            if !seated_users.insert(s.identity.user.clone()) {
                return Err(format!("{} holds two seats", s.identity.user));
            }
            if hub.seats.get(&s.identity.user) != Some(sid) {
                return Err(format!("session {sid} seated but not in the seat table"));
            }
            if s.conn.is_none() {
                return Err(format!("session {sid} seated while detached"));
            }
            let members = &hub
                .channel(ch)
                .ok_or("seated in an unknown channel")?
                .members;
            if members.iter().filter(|m| **m == *sid).count() != 1 {
                return Err(format!("session {sid} not exactly once in channel {ch}"));
            }
        }
    }
    for (user, sid) in &hub.seats {
        let s = hub.sessions.get(sid).ok_or("seat of a dead session")?;
        if s.channel.is_none() || &s.identity.user != user {
            return Err(format!(
                "seat of {user} points at an unseated or foreign session"
            ));
        }
    }
    for c in &hub.channels {
        for sid in &c.members {
            if hub.sessions.get(sid).and_then(|s| s.channel) != Some(c.id) {
                return Err(format!(
                    "channel {} lists session {sid} seated elsewhere",
                    c.id
                ));
            }
        }
    }
    // Indexes.
    for (conn, sid) in &hub.by_conn {
        if hub.sessions.get(sid).and_then(|s| s.conn) != Some(*conn) {
            return Err(format!("by_conn {conn} points at a session not on it"));
        }
    }
    if hub.by_resume.len() != hub.sessions.len() {
        return Err("a session without exactly one resume token".into());
    }
    for (token, sid) in &hub.by_resume {
        if hub.sessions.get(sid).map(|s| &s.resume_token) != Some(token) {
            return Err("by_resume points at a session with another token".into());
        }
    }
    // Chat: the watch table and its reverse index agree, and hold attached connections only.
    let mut indexed = 0;
    for (channel, conns) in &hub.watchers {
        if conns.is_empty() {
            return Err(format!("an empty watcher set for channel {channel}"));
        }
        for conn in conns {
            indexed += 1;
            if hub.watch.get(conn) != Some(channel) {
                return Err(format!(
                    "watchers of {channel} list {conn}, which watches elsewhere"
                ));
            }
            if !hub.by_conn.contains_key(conn) {
                return Err(format!("connection {conn} watches after it ended"));
            }
        }
    }
    if indexed != hub.watch.len() {
        return Err("the watch table and its index differ in size".into());
    }
    // No two different users whose names look alike.
    let mut owners: HashMap<String, &str> = HashMap::new();
    for s in hub.sessions.values() {
        for name in [&s.identity.user, &s.identity.name] {
            let owner = owners.entry(skeleton(name)).or_insert(&s.identity.user);
            if *owner != s.identity.user {
                return Err(format!("{owner} and {} look alike", s.identity.user));
            }
        }
    }
    // Presence as clients see it equals the hub's.
    for c in hub.snapshot() {
        let seen = view.get(&c.id).cloned().unwrap_or_default();
        if seen != c.members {
            return Err(format!(
                "channel {}: clients see {seen:?}, hub has {:?}",
                c.id, c.members
            ));
        }
    }
    Ok(())
}

fn run(ops: &[Op]) -> Result<(), String> {
    let mut hub = Hub::new(
        &crate::config::Config::default().channels,
        Duration::from_millis(1_500),
        Heartbeat {
            ping_interval_ms: 5000,
            timeout_ms: 20_000,
        },
    );
    let mut now = Instant::now();
    let mut view = View::new();
    let mut conns: Vec<ConnId> = Vec::new();
    let mut tokens: Vec<String> = Vec::new();
    let pick = |conns: &[ConnId], i: usize| conns.get(i % conns.len().max(1)).copied();
    for (step, op) in ops.iter().enumerate() {
        let fx = match op.clone() {
            Op::Attach { user, resume } => {
                let conn = conns.len() as ConnId + 1;
                conns.push(conn);
                let resume = resume.and_then(|i| tokens.get(i % tokens.len().max(1)).cloned());
                let fx = hub.attach(
                    Attach {
                        conn,
                        identity: Identity {
                            user: USERS[user].into(),
                            name: USERS[user].into(),
                        },
                        resume,
                        new_resume_token: format!("t{step}"),
                        ice: IceConfig::default(),
                    },
                    now,
                );
                for e in &fx {
                    if let Effect::Send(_, ServerMsg::Welcome { session, .. }) = e {
                        tokens.push(session.resume_token.clone());
                    }
                }
                fx
            }
            Op::Detach { conn } => match pick(&conns, conn) {
                Some(c) => hub.detach(c, now),
                None => Vec::new(),
            },
            Op::Join { conn, channel } => match pick(&conns, conn) {
                Some(c) => hub.join(c, channel, IceConfig::default()),
                None => Vec::new(),
            },
            Op::Leave { conn } => match pick(&conns, conn) {
                Some(c) => hub.leave(c),
                None => Vec::new(),
            },
            Op::Flags {
                conn,
                muted,
                talking,
            } => match pick(&conns, conn) {
                Some(c) => hub.voice_state(
                    c,
                    VoiceFlags {
                        muted,
                        deafened: false,
                        talking,
                    },
                ),
                None => Vec::new(),
            },
            Op::Relay { conn, to } => match pick(&conns, conn) {
                Some(c) => {
                    let fx = hub.relay(c, USERS[to], Signal::Renew);
                    for e in &fx {
                        if let Effect::Broadcast(ServerMsg::Signal { .. }) = e {
                            return Err(format!("step {step}: a signal was broadcast"));
                        }
                    }
                    fx
                }
                None => Vec::new(),
            },
            Op::Watch { conn, channel } => match pick(&conns, conn) {
                Some(c) => hub.watch(c, (channel > 0).then_some(channel)),
                None => Vec::new(),
            },
            Op::Say { conn, channel } => match pick(&conns, conn) {
                Some(c) => {
                    let fx = hub.say(c, channel, "hi", 0);
                    // Exactly the seated and watching connections of the channel, and the
                    // sender, get it.
                    if let Some(Effect::SendMany(to, _)) = fx.first() {
                        let mut want: Vec<ConnId> = hub
                            .by_conn
                            .iter()
                            .filter(|(conn, sid)| {
                                **conn == c
                                    || hub.sessions[*sid].channel == Some(channel)
                                    || hub.watch.get(conn) == Some(&channel)
                            })
                            .map(|(conn, _)| *conn)
                            .collect();
                        want.sort_unstable();
                        if *to != want {
                            return Err(format!(
                                "step {step}: a message to {channel} went to {to:?}, not {want:?}"
                            ));
                        }
                    }
                    fx
                }
                None => Vec::new(),
            },
            Op::Wait { ms } => {
                now += Duration::from_millis(ms);
                hub.expire(now);
                Vec::new()
            }
        };
        // A closed connection (session replaced, name taken) is gone for the caller too:
        // its end reaches the hub as a detach, as the hub actor does.
        let mut fx = fx;
        let closed: Vec<ConnId> = fx
            .iter()
            .filter_map(|e| match e {
                Effect::Close(c, _) => Some(*c),
                _ => None,
            })
            .collect();
        for c in closed {
            fx.extend(hub.detach(c, now));
        }
        apply_presence(&mut view, &fx);
        check_invariants(&hub, &view).map_err(|e| format!("after step {step} ({op:?}): {e}"))?;
    }
    Ok(())
}

/// `PROPTEST_CASES` from the environment (for a longer run), else `default`.
fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(300)))]

    #[test]
    fn random_operations_keep_every_invariant(ops in prop::collection::vec(op(), 1..80)) {
        if let Err(e) = run(&ops) {
            return Err(TestCaseError::fail(e));
        }
    }
}
