//! Deterministic simulation: several client [`Session`]s and the server's [`Hub`], both the
//! real pure cores, in one process, under random operation sequences — connects, disconnects
//! and resumes, joins, switches, leaves, duplicate joins of one user from two devices, flag
//! changes, time passing (resume grace expiring, call timers and credential renewals, each
//! session ticked only when it asks to be, as the engine does). The simulation plays the parts
//! that are I/O in the product: the signaling task (hello, the resume token, losing the
//! connection), the server's connection task (routing client messages to the hub, answering
//! `refresh_ice`), and every peer connection (an offer makes a local offer, a remote offer an
//! answer; both ends then report `connected`). Messages travel in one FIFO queue, so a run is
//! a pure function of its operations.
//!
//! After every step, once every queue is empty, it checks:
//! - one seat per user, and the one session the hub seated is the one client that thinks it
//!   is seated, in that channel;
//! - every connected client's presence view equals the hub's snapshot;
//! - calls exist exactly between seated clients of the same channel (one each way), and each
//!   is connected;
//! - every offer was made by the smaller user id of its pair;
//! - no join is left unanswered: the status line says where we sit or why not.
//!
//! proptest shrinks a failing sequence to a minimal one and prints it (and saves its seed
//! under `proptest-regressions/`). More cases: `PROPTEST_CASES=5000 cargo test --test
//! session_sim`.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::{Duration, Instant};

use cromulent::engine::peer_link::{LinkCommand, LinkResult, PeerKey};
use cromulent::engine::session::{Effect, Input, Now, Session, SessionConfig};
use cromulent::engine::{CallState, ChannelRef, EngineCommand, IcePolicy, TalkMode, VoiceStatus};
use cromulent::rtc::{CandidateKind, PeerEvent, PeerState};
use cromulent::signaling::SignalingEvent;
use cromulent_protocol::{
    ChannelId, ChannelInfo, ClientMsg, Heartbeat, IceConfig, IceServer, ServerMsg, Signal, UserId,
};
use cromulent_server::auth::Identity;
use cromulent_server::config::ChannelConfig;
use cromulent_server::hub::{self, Attach, ConnId, Hub, VoiceFlags};
use proptest::prelude::*;

/// The clients: user ids, `ann` twice (two devices of one user, so the join guard is tried).
const CLIENTS: &[&str] = &["ann", "bob", "cat", "ann", "dan"];
const CHANNELS: &[&str] = &["General", "Gaming", "Echo"];
const RESUME_GRACE: Duration = Duration::from_secs(5);
/// Steps one operation may take before the run counts as a livelock.
const MAX_STEPS: usize = 20_000;

#[derive(Debug, Clone)]
enum Op {
    /// The client's signaling task connects (presenting its resume token, if it has one).
    Connect(usize),
    /// Its connection drops (the server sees it end, the client sees it lost).
    Disconnect(usize),
    Join(usize, usize),
    Leave(usize),
    Mute(usize, bool),
    Talk(usize, bool),
    /// Time passes (ms): the hub forgets sessions past their grace, clients' timers run.
    Wait(u64),
}

fn op() -> impl Strategy<Value = Op> {
    let client = 0..CLIENTS.len();
    prop_oneof![
        3 => client.clone().prop_map(Op::Connect),
        2 => client.clone().prop_map(Op::Disconnect),
        5 => (client.clone(), 0..CHANNELS.len()).prop_map(|(c, ch)| Op::Join(c, ch)),
        1 => client.clone().prop_map(Op::Leave),
        1 => (client.clone(), any::<bool>()).prop_map(|(c, on)| Op::Mute(c, on)),
        1 => (client, any::<bool>()).prop_map(|(c, on)| Op::Talk(c, on)),
        2 => (0u64..8_000).prop_map(Op::Wait),
    ]
}

/// A fake peer connection: what it has been told.
#[derive(Debug, Default)]
struct FakeLink {
    offers: u32,
}

struct Client {
    user: UserId,
    session: Session,
    /// The signaling task's connection, while connected.
    conn: Option<ConnId>,
    /// The resume token of the last welcome (the signaling task keeps it).
    resume: Option<String>,
    links: BTreeMap<PeerKey, FakeLink>,
    /// The user's last word was `leave` (and no join since).
    left: bool,
}

/// Something on its way.
#[derive(Debug)]
enum Delivery {
    ToHub(usize, ClientMsg),
    ToClient(usize, Input),
}

struct Sim {
    hub: Hub,
    clients: Vec<Client>,
    queue: VecDeque<Delivery>,
    start: Instant,
    elapsed: Duration,
    next_conn: ConnId,
    next_token: u64,
    ice: IceConfig,
    /// How often credentials were renewed, and a peer asked for a new connection.
    refreshes: u32,
    renews: u32,
}

impl Sim {
    fn new() -> Self {
        let channels: Vec<ChannelConfig> = CHANNELS
            .iter()
            .zip(1..)
            .map(|(name, id)| ChannelConfig {
                id,
                name: (*name).into(),
            })
            .collect();
        let heartbeat = Heartbeat {
            ping_interval_ms: 15_000,
            timeout_ms: 45_000,
        };
        let start = Instant::now();
        let clients = CLIENTS
            .iter()
            .map(|user| Client {
                user: (*user).into(),
                session: Session::new(
                    SessionConfig {
                        name: (*user).into(),
                        talk_mode: TalkMode::PushToTalk,
                        ice_policy: IcePolicy::All,
                        loopback_only: true,
                        ice_refresh: true,
                    },
                    Now {
                        at: start,
                        unix_secs: 1_000_000,
                    },
                ),
                conn: None,
                resume: None,
                links: BTreeMap::new(),
                left: false,
            })
            .collect();
        Self {
            hub: Hub::new(&channels, RESUME_GRACE, heartbeat),
            clients,
            queue: VecDeque::new(),
            start,
            elapsed: Duration::ZERO,
            next_conn: 1,
            next_token: 1,
            refreshes: 0,
            renews: 0,
            // Short-lived TURN credentials, so renewals (and the rebuilding of relayed
            // connections they cause) happen during a run.
            ice: IceConfig {
                servers: vec![IceServer {
                    urls: vec!["turn:127.0.0.1:3478".into()],
                    username: Some("u".into()),
                    credential: Some("p".into()),
                }],
                expires_at: Some(1_000_000 + 60),
            },
        }
    }

    fn now(&self) -> Now {
        Now {
            at: self.start + self.elapsed,
            unix_secs: 1_000_000 + self.elapsed.as_secs(),
        }
    }

    fn run(&mut self, op: &Op) -> Result<(), String> {
        match *op {
            Op::Connect(i) => {
                if self.clients[i].conn.is_none() {
                    self.connect(i);
                }
            }
            Op::Disconnect(i) => {
                if let Some(conn) = self.clients[i].conn.take() {
                    let fx = self.hub.detach(conn, self.now().at);
                    self.hub_effects(fx);
                    self.lost(i);
                }
            }
            Op::Join(i, ch) => {
                self.clients[i].left = false;
                self.command(i, EngineCommand::Join(ChannelRef(CHANNELS[ch].into())));
            }
            Op::Leave(i) => {
                self.clients[i].left = true;
                self.command(i, EngineCommand::Leave);
            }
            Op::Mute(i, on) => self.command(i, EngineCommand::Mute(on)),
            Op::Talk(i, on) => self.command(i, EngineCommand::Talk(on)),
            Op::Wait(ms) => self.wait(Duration::from_millis(ms))?,
        }
        self.settle()?;
        self.check()
    }

    /// Time passes as the engine lets it: each session is ticked exactly when it asked to be
    /// (`Session::next_wake`), and everything that follows is delivered before time goes on.
    fn wait(&mut self, d: Duration) -> Result<(), String> {
        let end = self.start + self.elapsed + d;
        for _ in 0..MAX_STEPS {
            let next = self
                .clients
                .iter()
                .filter_map(|c| c.session.next_wake())
                .filter(|&t| t <= end)
                .min();
            let Some(at) = next else {
                self.elapsed = end - self.start;
                self.hub.expire(self.now().at);
                return Ok(());
            };
            self.elapsed = self.elapsed.max(at - self.start);
            self.hub.expire(self.now().at);
            for i in 0..self.clients.len() {
                if self.clients[i].session.next_wake().is_some_and(|t| t <= at) {
                    self.queue.push_back(Delivery::ToClient(i, Input::Tick));
                }
            }
            self.settle()?;
        }
        Err("timers keep firing without time passing (livelock)".into())
    }

    fn connect(&mut self, i: usize) {
        let conn = self.next_conn;
        self.next_conn += 1;
        self.next_token += 1;
        let client = &mut self.clients[i];
        client.conn = Some(conn);
        let attach = Attach {
            conn,
            identity: Identity {
                user: client.user.clone(),
                name: client.user.clone(),
            },
            resume: client.resume.clone(),
            new_resume_token: format!("token-{}", self.next_token),
            ice: self.ice.clone(),
        };
        let fx = self.hub.attach(attach, self.now().at);
        self.hub_effects(fx);
    }

    /// The client's signaling task lost its connection.
    fn lost(&mut self, i: usize) {
        self.clients[i].conn = None;
        self.queue.push_back(Delivery::ToClient(
            i,
            Input::Signaling(SignalingEvent::Lost {
                reason: "connection dropped".into(),
                retry_in: Duration::from_secs(1),
            }),
        ));
    }

    fn command(&mut self, i: usize, cmd: EngineCommand) {
        self.queue
            .push_back(Delivery::ToClient(i, Input::Command(cmd)));
    }

    fn client_of(&self, conn: ConnId) -> Option<usize> {
        self.clients.iter().position(|c| c.conn == Some(conn))
    }

    fn hub_effects(&mut self, fx: Vec<hub::Effect>) {
        for effect in fx {
            match effect {
                hub::Effect::Send(conn, msg) => {
                    if let Some(i) = self.client_of(conn) {
                        self.deliver(i, msg);
                    }
                }
                hub::Effect::SendMany(conns, msg) => {
                    for conn in conns {
                        if let Some(i) = self.client_of(conn) {
                            self.deliver(i, msg.clone());
                        }
                    }
                }
                // The simulated clients do not chat; there is no history store here.
                hub::Effect::Store(_) | hub::Effect::Page { .. } => {}
                hub::Effect::Broadcast(msg) => {
                    for i in 0..self.clients.len() {
                        if self.clients[i].conn.is_some() {
                            self.deliver(i, msg.clone());
                        }
                    }
                }
                hub::Effect::Close(conn, _reason) => {
                    if let Some(i) = self.client_of(conn) {
                        let fx = self.hub.detach(conn, self.now().at);
                        self.lost(i);
                        self.hub_effects(fx);
                    }
                }
            }
        }
    }

    fn deliver(&mut self, i: usize, msg: ServerMsg) {
        if let ServerMsg::Welcome { session, .. } = &msg {
            // The signaling task keeps the token for its next connect.
            self.clients[i].resume = Some(session.resume_token.clone());
        }
        self.queue.push_back(Delivery::ToClient(
            i,
            Input::Signaling(SignalingEvent::Message(msg)),
        ));
    }

    /// Deliver everything queued, and what it leads to, until nothing is left.
    fn settle(&mut self) -> Result<(), String> {
        let mut steps = 0;
        while let Some(delivery) = self.queue.pop_front() {
            steps += 1;
            if steps > MAX_STEPS {
                return Err("no quiescence: messages keep flowing (livelock)".into());
            }
            match delivery {
                Delivery::ToHub(i, msg) => self.at_hub(i, msg),
                Delivery::ToClient(i, input) => {
                    let now = self.now();
                    let effects = self.clients[i].session.handle(input, now);
                    for effect in effects {
                        self.client_effect(i, effect)?;
                    }
                }
            }
        }
        Ok(())
    }

    /// The server's connection task: a client message, to the hub.
    fn at_hub(&mut self, i: usize, msg: ClientMsg) {
        let Some(conn) = self.clients[i].conn else {
            return;
        };
        let fx = match msg {
            ClientMsg::Join { channel } => self.hub.join(conn, channel, self.ice.clone()),
            ClientMsg::Leave => self.hub.leave(conn),
            ClientMsg::VoiceState {
                muted,
                deafened,
                talking,
            } => self.hub.voice_state(
                conn,
                VoiceFlags {
                    muted,
                    deafened,
                    talking,
                },
            ),
            ClientMsg::Signal { to, signal } => {
                self.renews += u32::from(signal == Signal::Renew);
                self.hub.relay(conn, &to, signal)
            }
            ClientMsg::RefreshIce => {
                self.refreshes += 1;
                let mut ice = self.ice.clone();
                ice.expires_at = Some(self.now().unix_secs + 60);
                self.ice = ice.clone();
                vec![hub::Effect::Send(conn, ServerMsg::IceServers { ice })]
            }
            ClientMsg::Ping { id } => vec![hub::Effect::Send(conn, ServerMsg::Pong { id })],
            ClientMsg::Watch { channel } => self.hub.watch(conn, channel),
            ClientMsg::Say { channel, text } => {
                self.hub
                    .say(conn, channel, &text, self.now().unix_secs * 1000)
            }
            ClientMsg::History {
                channel,
                before,
                limit,
            } => self.hub.history(conn, channel, before, limit),
            ClientMsg::Hello { .. } => Vec::new(),
        };
        self.hub_effects(fx);
    }

    fn client_effect(&mut self, i: usize, effect: Effect) -> Result<(), String> {
        let me = self.clients[i].user.clone();
        let input = |key: &PeerKey, result| Delivery::ToClient(i, Input::Link(key.clone(), result));
        // Every fake connection finds a relayed path, then connects.
        let connected = |key: &PeerKey| {
            let relayed = PeerEvent::SelectedPair {
                local: CandidateKind::Relay,
                remote: CandidateKind::Relay,
            };
            let up = PeerEvent::State(PeerState::Connected);
            [relayed, up].map(|ev| Delivery::ToClient(i, Input::Peer(key.clone(), ev)))
        };
        match effect {
            Effect::Send(msg) => {
                if self.clients[i].conn.is_some() {
                    self.queue.push_back(Delivery::ToHub(i, msg));
                }
            }
            Effect::Emit(_) => {}
            Effect::CreateLink { key, .. } => {
                if self.clients[i]
                    .links
                    .insert(key.clone(), FakeLink::default())
                    .is_some()
                {
                    return Err(format!("{me}: connection {key:?} created twice"));
                }
            }
            Effect::Link { key, cmd } => {
                let Some(link) = self.clients[i].links.get_mut(&key) else {
                    return Err(format!(
                        "{me}: command {cmd:?} to unknown connection {key:?}"
                    ));
                };
                match cmd {
                    LinkCommand::Offer { .. } => {
                        if me.as_str() >= key.user.as_str() {
                            return Err(format!(
                                "{me} offered to {}: the larger id offered",
                                key.user
                            ));
                        }
                        link.offers += 1;
                        let sdp = format!("offer {me}->{} #{}", key.user, key.generation);
                        self.queue
                            .push_back(input(&key, LinkResult::LocalOffer(sdp)));
                    }
                    LinkCommand::RemoteOffer(sdp) => {
                        if me.as_str() <= key.user.as_str() {
                            return Err(format!("{me} was offered to by {}", key.user));
                        }
                        let answer = format!("answer to {sdp}");
                        self.queue
                            .push_back(input(&key, LinkResult::LocalAnswer(answer)));
                        self.queue.extend(connected(&key));
                    }
                    LinkCommand::RemoteAnswer(_) => self.queue.extend(connected(&key)),
                    LinkCommand::RemoteCandidate(_) => {}
                    LinkCommand::Close => {
                        return Err(format!("{me}: Close is the engine's, not the session's"));
                    }
                }
            }
            Effect::CloseLink(key) => {
                if self.clients[i].links.remove(&key).is_none() {
                    return Err(format!("{me}: closed unknown connection {key:?}"));
                }
            }
            Effect::Stop => return Err(format!("{me}: the session stopped")),
        }
        Ok(())
    }

    fn check(&self) -> Result<(), String> {
        let snapshot = self.hub.snapshot();
        // One seat per user.
        let mut seated: BTreeMap<&str, ChannelId> = BTreeMap::new();
        for ch in &snapshot {
            for m in &ch.members {
                if seated.insert(&m.user, ch.id).is_some() {
                    return Err(format!("{} holds two seats", m.user));
                }
            }
        }
        for (user, ch) in &seated {
            let believers: Vec<usize> = (0..self.clients.len())
                .filter(|&i| {
                    let c = &self.clients[i];
                    c.user == *user && c.conn.is_some() && c.session.current() == Some(*ch)
                })
                .collect();
            if believers.len() != 1 {
                return Err(format!(
                    "{user} is seated in {ch} but {} of its clients think so",
                    believers.len()
                ));
            }
        }
        for c in &self.clients {
            let Some(current) = c.session.current() else {
                if !c.links.is_empty() {
                    return Err(format!("{} is in no channel but has calls", c.user));
                }
                continue;
            };
            if c.conn.is_none() {
                return Err(format!(
                    "{} is disconnected but thinks it sits in {current}",
                    c.user
                ));
            }
            if seated.get(c.user.as_str()) != Some(&current) {
                return Err(format!(
                    "{} thinks it sits in {current}; the hub disagrees",
                    c.user
                ));
            }
        }
        // A user who left sits nowhere, even if the leave came while the connection was
        // down or before the join was answered.
        for c in self.clients.iter().filter(|c| c.conn.is_some() && c.left) {
            if let Some(current) = c.session.current() {
                return Err(format!("{} left, but sits in {current}", c.user));
            }
        }
        // Once everything is delivered a join has been answered: the status line says where
        // we sit or why we do not, never `connecting` for good. (A rejoin waiting for the lost
        // connection's seat says `connecting` until it is seated or gives up, within
        // `SEAT_PATIENCE`: its timer keeps it going.)
        for c in self.clients.iter().filter(|c| c.conn.is_some()) {
            match c.session.status() {
                VoiceStatus::Connecting { channel }
                    if c.session.waiting_for_seat() == Some(*channel)
                        && c.session.next_wake().is_some() => {}
                VoiceStatus::Connecting { channel } => {
                    return Err(format!("{} is stuck connecting to {channel}", c.user));
                }
                VoiceStatus::Connected { channel } if c.session.current() != Some(*channel) => {
                    return Err(format!(
                        "{} shows connected to {channel} but sits elsewhere",
                        c.user
                    ));
                }
                _ => {}
            }
        }
        for c in self.clients.iter().filter(|c| c.conn.is_some()) {
            if c.session.channels() != snapshot.as_slice() {
                return Err(format!(
                    "{}'s presence view differs from the hub's:\n{:?}\n{:?}",
                    c.user,
                    c.session.channels(),
                    snapshot
                ));
            }
            let expected: BTreeSet<&str> = match c.session.current() {
                Some(ch) => members(&snapshot, ch)
                    .filter(|u| *u != c.user.as_str())
                    .collect(),
                None => BTreeSet::new(),
            };
            let calls: BTreeSet<&str> = c.links.keys().map(|k| k.user.as_str()).collect();
            if calls != expected {
                return Err(format!(
                    "{} has calls with {calls:?}, but its channel holds {expected:?}",
                    c.user
                ));
            }
            let views: Vec<_> = c.session.links().collect();
            for view in &views {
                if !c.links.contains_key(&view.key) {
                    return Err(format!(
                        "{}: the session's {:?} has no connection",
                        c.user, view.key
                    ));
                }
                if view.state != CallState::Connected {
                    return Err(format!(
                        "{}'s call with {} is {:?} once all is delivered",
                        c.user, view.key.user, view.state
                    ));
                }
            }
            if views.len() != c.links.len() {
                return Err(format!("{}: connections the session forgot", c.user));
            }
        }
        Ok(())
    }
}

fn members(snapshot: &[ChannelInfo], ch: ChannelId) -> impl Iterator<Item = &str> {
    snapshot
        .iter()
        .filter(move |c| c.id == ch)
        .flat_map(|c| c.members.iter().map(|m| m.user.as_str()))
}

proptest! {
    #[test]
    fn sessions_and_the_hub_agree_under_any_sequence(ops in prop::collection::vec(op(), 1..60)) {
        let mut sim = Sim::new();
        for (n, op) in ops.iter().enumerate() {
            if let Err(why) = sim.run(op) {
                return Err(TestCaseError::fail(format!("after step {n} ({op:?}): {why}")));
            }
        }
    }
}

/// A scripted run through the scenarios the random ones are made of, so each is known to be
/// reached: a call, a duplicate join from a second device, a resume that takes the seat back,
/// an expired resume that rejoins, a switch.
#[test]
fn a_scripted_day_keeps_the_invariants() {
    use Op::*;
    let script = [
        Connect(0),
        Connect(1),
        Join(0, 0),
        Join(1, 0),
        Connect(3),
        Join(3, 0), // ann's second device: refused, ann sits once
        Disconnect(0),
        Connect(0), // resumed: the seat comes back
        Disconnect(1),
        Wait(6_000), // bob's grace expires
        Connect(1),  // a new session: bob joins General anew
        Connect(2),
        Join(2, 0),
        Join(1, 1), // bob switches to Gaming
        Leave(0),
        Join(3, 0), // now ann's second device may sit
        Wait(11_000),
        Join(0, 1), // ann's first device tries Gaming: refused, ann sits once
        // Past the credentials' renewal time: relayed calls are rebuilt with new ones.
        Wait(8_000),
        Wait(8_000),
        Wait(8_000),
        Wait(8_000),
    ];
    let mut sim = Sim::new();
    for (n, op) in script.iter().enumerate() {
        sim.run(op)
            .unwrap_or_else(|why| panic!("after step {n} ({op:?}): {why}"));
    }
    let snapshot = sim.hub.snapshot();
    let general: BTreeSet<&str> = members(&snapshot, 1).collect();
    assert_eq!(general, BTreeSet::from(["ann", "cat"]));
    assert_eq!(members(&snapshot, 2).collect::<Vec<_>>(), vec!["bob"]);
    assert_eq!(
        sim.clients[3].session.current(),
        Some(1),
        "the second device sits"
    );
    assert_eq!(sim.clients[0].session.current(), None);
    assert_eq!(
        sim.clients[2].links.len(),
        1,
        "cat calls ann's second device"
    );
    assert!(
        sim.refreshes >= 2,
        "credentials renewed ({})",
        sim.refreshes
    );
    // cat answers ann (ann < cat): cat asks ann for a connection with the new credentials.
    assert!(sim.renews >= 1, "a new connection asked for");
    assert!(sim.clients[2].links.keys().all(|k| k.generation > 1));
}
