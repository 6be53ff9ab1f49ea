//! Cluster mode (issue 21): instances sharing one real Redis (`redis-server` on a free
//! loopback port, killed on drop) serve one community. Presence in one order everywhere, the
//! join guard across instances, signals routed to the instance of their addressee and no
//! one else, a `kill -9`ed instance's seats released by the survivors, and a Redis outage
//! that drops no client.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use cromulent_protocol::{ClientMsg, ErrorReason, PresenceOp, ServerMsg, Signal};
use cromulent_server::config::{ClusterConfig, Config};
use cromulent_test_support::process::TempDir;
use cromulent_test_support::redis::Redis;
use cromulent_test_support::ws::{
    Client, ServerProcess, TestServer, WAIT, cluster_ready, join_all_at_once, race_outcome,
};

/// Leases short enough for a test: a killed instance's seats go within `LEASE + RENEW`.
const LEASE: Duration = Duration::from_millis(1_500);
const RENEW: Duration = Duration::from_millis(300);

/// Long enough for anything that was going to arrive to have arrived.
const QUIET: Duration = Duration::from_millis(500);

fn cluster(redis: &Redis, instance: &str) -> ClusterConfig {
    ClusterConfig {
        redis_url: redis.url(),
        instance_id: instance.into(),
        lease_ms: LEASE.as_millis() as u64,
        renew_ms: RENEW.as_millis() as u64,
        ..ClusterConfig::default()
    }
}

async fn instance(redis: &Redis, name: &str) -> TestServer {
    let config = Config {
        cluster: Some(cluster(redis, name)),
        ..Config::default()
    };
    config.validate().unwrap();
    let server = TestServer::start(config).await;
    cluster_ready(&server.url(), name).await;
    server
}

/// Instances a, b and c of one cluster, ready.
async fn three_instances(redis: &Redis) -> [TestServer; 3] {
    [
        instance(redis, "a").await,
        instance(redis, "b").await,
        instance(redis, "c").await,
    ]
}

/// Instances a, b and c, each with a client watching presence on it.
async fn three_instances_watched(redis: &Redis) -> ([TestServer; 3], Vec<Client>) {
    let servers = three_instances(redis).await;
    let mut watchers = Vec::new();
    for (i, s) in servers.iter().enumerate() {
        watchers.push(Client::connect(&s.url(), &format!("watcher{i}")).await);
    }
    (servers, watchers)
}

/// The `cromulent-server` binary as instance `name` of the cluster with leases of `lease`
/// (and its config's directory, removed on drop); not waited for.
fn instance_process(redis: &Redis, name: &str, lease: Duration) -> (TempDir, ServerProcess) {
    let dir = TempDir::new("cluster");
    let config = dir.path("server.toml");
    std::fs::write(
        &config,
        format!(
            "[cluster]\nredis_url = \"{}\"\ninstance_id = \"{name}\"\nlease_ms = {}\nrenew_ms = {}\n",
            redis.url(),
            lease.as_millis(),
            RENEW.as_millis()
        ),
    )
    .unwrap();
    let binary = std::path::Path::new(env!("CARGO_BIN_EXE_cromulent-server"));
    let process = ServerProcess::start(binary, &config);
    (dir, process)
}

async fn join(c: &mut Client, channel: u32) -> ServerMsg {
    c.send(&ClientMsg::Join { channel }).await;
    c.expect_joined().await
}

/// The presence messages among `messages`, each as (op, channel, user) lists.
/// The probes of [`cluster_ready`] are left out: an instance may tell of a probe's leave a moment
/// after another instance has.
fn presence(messages: &[ServerMsg]) -> Vec<Vec<(PresenceOp, u32, String)>> {
    messages
        .iter()
        .filter_map(|m| match m {
            ServerMsg::Presence { changes } => Some(
                changes
                    .iter()
                    .filter(|c| !c.member.user.starts_with("probe-"))
                    .map(|c| (c.op, c.channel, c.member.user.clone()))
                    .collect::<Vec<_>>(),
            ),
            _ => None,
        })
        .filter(|changes| !changes.is_empty())
        .collect()
}

/// Presence messages until `count` of them have come (bounded by `WAIT` each), then a quiet
/// window in which nothing else may come.
async fn presence_messages(c: &mut Client, count: usize) -> Vec<Vec<(PresenceOp, u32, String)>> {
    let mut seen = Vec::new();
    while seen.len() < count {
        let m = c
            .recv_until(|m| matches!(m, ServerMsg::Presence { .. }))
            .await;
        seen.extend(presence(&[m]));
    }
    let more = c.drain_for(QUIET).await;
    assert!(
        presence(&more).is_empty(),
        "more presence than expected: {more:?}"
    );
    seen
}

/// Channel -> users, as a client builds it from a welcome and the presence after it (the
/// probes left out, as in [`presence`]).
fn view(welcome: &ServerMsg) -> BTreeMap<u32, BTreeSet<String>> {
    let ServerMsg::Welcome { channels, .. } = welcome else {
        panic!("{welcome:?}")
    };
    channels
        .iter()
        .map(|c| {
            let users = c.members.iter().map(|m| m.user.clone());
            (c.id, users.filter(|u| !u.starts_with("probe-")).collect())
        })
        .collect()
}

fn apply(view: &mut BTreeMap<u32, BTreeSet<String>>, changes: &[(PresenceOp, u32, String)]) {
    for (op, channel, user) in changes {
        let set = view.entry(*channel).or_default();
        match op {
            PresenceOp::Join => assert!(set.insert(user.clone()), "double join of {user}"),
            PresenceOp::Leave => assert!(set.remove(user), "leave of absent {user}"),
            PresenceOp::Update => assert!(set.contains(user), "update of absent {user}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_is_shared_and_seen_in_one_order_on_every_instance() {
    let redis = Redis::start();
    let (servers, mut watchers) = three_instances_watched(&redis).await;
    // Nine users, three per instance, all at once: join 1, switch to 2, go muted, leave.
    let users: Vec<_> = (0..9)
        .map(|i| {
            let url = servers[i % 3].url();
            tokio::spawn(async move {
                let mut c = Client::connect(&url, &format!("user{i}")).await;
                assert!(matches!(join(&mut c, 1).await, ServerMsg::Joined { .. }));
                assert!(matches!(
                    join(&mut c, 2).await,
                    ServerMsg::Joined { channel: 2, .. }
                ));
                c.voice_state(true, false, false).await;
                c.recv_until(|m| match m {
                    ServerMsg::Presence { changes } => changes.iter().any(|ch| {
                        ch.op == PresenceOp::Update && ch.member.user == format!("user{i}")
                    }),
                    _ => false,
                })
                .await;
                c.send(&ClientMsg::Leave).await;
                c.recv_until(|m| matches!(m, ServerMsg::Left { .. })).await;
                c
            })
        })
        .collect();
    let mut clients = Vec::new();
    for u in users {
        clients.push(u.await.unwrap());
    }
    // Each user: a join, a switch (leave and join in one message), an update, a leave.
    let mut seen = Vec::new();
    for w in &mut watchers {
        seen.push(presence_messages(w, 9 * 4).await);
    }
    assert_eq!(seen[0], seen[1], "instances a and b disagree on the order");
    assert_eq!(seen[0], seen[2], "instances a and c disagree on the order");
    let switches = seen[0].iter().filter(|m| m.len() == 2).count();
    assert_eq!(switches, 9, "every switch is one message: {:?}", seen[0]);
    // Replayed on the welcome's snapshot, it is consistent and ends with nobody seated.
    let mut v = view(watchers[0].welcome.as_ref().unwrap());
    for m in &seen[0] {
        apply(&mut v, m);
    }
    assert!(v.values().all(BTreeSet::is_empty), "{v:?}");

    // A seat with flags on one instance is in the welcome of a newcomer on another.
    let mut dora = Client::connect(&servers[0].url(), "dora").await;
    dora.voice_state(false, true, false).await;
    assert!(matches!(join(&mut dora, 2).await, ServerMsg::Joined { .. }));
    assert_eq!(
        change_of(&mut watchers[2], "dora").await,
        (PresenceOp::Join, 2, false)
    );
    let late = Client::connect(&servers[2].url(), "late").await;
    let Some(ServerMsg::Welcome { channels, .. }) = &late.welcome else {
        unreachable!()
    };
    let members: Vec<_> = channels[1]
        .members
        .iter()
        .map(|m| (m.user.as_str(), m.deafened))
        .collect();
    assert_eq!(members, [("dora", true)]);
    drop(clients);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_simultaneous_joins_of_one_user_over_three_instances_seat_exactly_one() {
    let redis = Redis::start();
    let (servers, mut watchers) = three_instances_watched(&redis).await;
    let mut clients = Vec::new();
    for i in 0..50 {
        clients.push(Client::connect(&servers[i % 3].url(), "zed").await);
    }
    let replies = join_all_at_once(clients, 1).await;
    assert_eq!(race_outcome(&replies), (1, 49));
    // Every instance's watcher saw exactly one join of zed, and nothing else.
    for w in &mut watchers {
        let seen = presence(&w.drain_for(QUIET).await);
        assert_eq!(seen, [vec![(PresenceOp::Join, 1, "zed".to_owned())]]);
    }
}

fn offer(sdp: &str) -> Signal {
    Signal::Offer {
        sdp: sdp.into(),
        connection: 1,
    }
}

/// No `signal` among what arrives within the quiet window.
async fn no_signal(c: &mut Client, who: &str) {
    let got = c.drain_for(QUIET).await;
    assert!(
        !got.iter().any(|m| matches!(m, ServerMsg::Signal { .. })),
        "{who} received a signal not meant for them: {got:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signal_reaches_its_addressee_on_another_instance_and_nobody_else() {
    let redis = Redis::start();
    let [a, b, c] = three_instances(&redis).await;
    let mut alice = Client::connect(&a.url(), "alice").await;
    let mut bob = Client::connect(&b.url(), "bob").await;
    let mut carol = Client::connect(&c.url(), "carol").await;
    let mut dave = Client::connect(&b.url(), "dave").await;
    let mut eve = Client::connect(&a.url(), "eve").await;
    for who in [&mut alice, &mut bob, &mut carol] {
        assert!(matches!(join(who, 1).await, ServerMsg::Joined { .. }));
    }
    assert!(matches!(join(&mut dave, 2).await, ServerMsg::Joined { .. }));
    // Everyone has seen every seat before the signals start.
    for who in [&mut alice, &mut bob, &mut carol, &mut dave, &mut eve] {
        who.drain_for(QUIET).await;
    }

    alice
        .send(&ClientMsg::Signal {
            to: "bob".into(),
            signal: offer("for-bob"),
        })
        .await;
    let m = bob
        .recv_until(|m| matches!(m, ServerMsg::Signal { .. }))
        .await;
    assert_eq!(
        m,
        ServerMsg::Signal {
            from: "alice".into(),
            signal: offer("for-bob")
        }
    );
    // The answer goes back the other way.
    bob.send(&ClientMsg::Signal {
        to: "alice".into(),
        signal: Signal::Answer {
            sdp: "from-bob".into(),
            connection: 1,
        },
    })
    .await;
    let m = alice
        .recv_until(|m| matches!(m, ServerMsg::Signal { .. }))
        .await;
    assert!(
        matches!(&m, ServerMsg::Signal { from, .. } if from == "bob"),
        "{m:?}"
    );
    // Someone seated in another channel, or not seated, cannot be signalled across.
    alice
        .send(&ClientMsg::Signal {
            to: "dave".into(),
            signal: offer("for-dave"),
        })
        .await;
    alice.expect_error(ErrorReason::PeerNotFound).await;
    alice
        .send(&ClientMsg::Signal {
            to: "eve".into(),
            signal: offer("for-eve"),
        })
        .await;
    alice.expect_error(ErrorReason::PeerNotFound).await;
    no_signal(&mut bob, "bob").await;
    no_signal(&mut carol, "carol").await;
    no_signal(&mut dave, "dave").await;
    no_signal(&mut eve, "eve").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_instance_has_its_seats_released_by_a_survivor_within_the_lease() {
    let redis = Redis::start();
    let survivor = instance(&redis, "survivor").await;
    let (_dir, mut doomed) = instance_process(&redis, "doomed", LEASE);
    cluster_ready(&doomed.url(), "doomed").await;
    let mut watcher = Client::connect(&survivor.url(), "watcher").await;
    let mut victim = Client::connect(&doomed.url(), "victim").await;
    assert!(matches!(
        join(&mut victim, 1).await,
        ServerMsg::Joined { .. }
    ));
    assert_eq!(
        change_of(&mut watcher, "victim").await,
        (PresenceOp::Join, 1, false)
    );
    // The seat is held across instances: the same user cannot take it on the survivor.
    let mut again = Client::connect(&survivor.url(), "victim").await;
    again.send(&ClientMsg::Join { channel: 2 }).await;
    again.expect_error(ErrorReason::AlreadyInVoice).await;
    // A name held on the doomed instance cannot be taken by a look-alike (Cyrillic а).
    let _nadia = Client::connect(&doomed.url(), "nadia").await;
    assert_eq!(
        hello(&survivor.url(), "n\u{0430}dia").await.err(),
        Some(ErrorReason::NameTaken)
    );

    let killed = Instant::now();
    tokio::task::block_in_place(|| doomed.kill());
    let bound = LEASE + RENEW;
    let leave = watcher
        .recv_until_within(
            |m| !presence(std::slice::from_ref(m)).is_empty(),
            bound + Duration::from_secs(2),
        )
        .await
        .expect("a survivor announces the killed instance's seat as left");
    assert_eq!(
        presence(&[leave]),
        [vec![(PresenceOp::Leave, 1, "victim".to_owned())]]
    );
    let took = killed.elapsed();
    assert!(
        took <= bound + Duration::from_secs(1),
        "released after {took:?}"
    );
    // The seat is free again, and so are the killed instance's names.
    assert!(matches!(
        join(&mut again, 2).await,
        ServerMsg::Joined { channel: 2, .. }
    ));
    assert!(hello(&survivor.url(), "n\u{0430}dia").await.is_ok());
}

/// Say `hello` as `name`: the welcomed client, or the error it was refused with (and closed).
async fn hello(url: &str, name: &str) -> Result<Client, ErrorReason> {
    let mut c = Client::raw(url).await;
    c.send_hello(name).await;
    match c.recv().await {
        ServerMsg::Welcome { .. } => Ok(c),
        ServerMsg::Error { reason, .. } => {
            assert!(c.closed().await, "{name:?}: closed after the error");
            Err(reason)
        }
        other => panic!("{name:?}: {other:?}"),
    }
}

/// Whether `name` is welcomed within `within`, asking every 100 ms.
async fn eventually_welcomed(url: &str, name: &str, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if hello(url, name).await.is_ok() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_sent_right_behind_hello_wait_for_the_welcome_not_get_lost() {
    let redis = Redis::start();
    let a = instance(&redis, "a").await;
    let mut watcher = Client::connect(&a.url(), "watcher").await;
    watcher.send(&ClientMsg::Watch { channel: Some(1) }).await;
    // A new session waits for the name check, a resume for its claim: the join and the chat
    // line sent meanwhile are carried out after the welcome, in order. Redis is kept busy
    // for a moment (a script spinning 300 ms), so they surely arrive before its answer.
    for (i, resume) in [None, Some("no-such-token")].into_iter().enumerate() {
        let name = format!("eager{i}");
        let busy = {
            let url = redis.url();
            tokio::task::spawn_blocking(move || {
                let mut con = redis::Client::open(url).unwrap().get_connection().unwrap();
                let spin = "local t = redis.call('TIME') local until_us = t[1] * 1e6 + t[2] + 300000 \
                            repeat t = redis.call('TIME') until t[1] * 1e6 + t[2] >= until_us return 1";
                redis::cmd("EVAL").arg(spin).arg(0).exec(&mut con).unwrap();
            })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        let mut c = Client::raw(&a.url()).await;
        c.send(&ClientMsg::Hello {
            protocol: cromulent_protocol::PROTOCOL_VERSION,
            name: Some(name.clone()),
            token: None,
            resume: resume.map(str::to_owned),
        })
        .await;
        c.send(&ClientMsg::Join { channel: 1 }).await;
        c.send(&ClientMsg::Say {
            channel: 1,
            text: format!("hi from {name}"),
        })
        .await;
        assert!(matches!(c.recv().await, ServerMsg::Welcome { .. }));
        c.expect_joined().await;
        let (_, user, text) = next_message(&mut c).await;
        assert_eq!(
            (user.as_str(), text),
            (name.as_str(), format!("hi from {name}"))
        );
        c.send(&ClientMsg::Leave).await;
        busy.await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_look_alike_name_is_refused_on_every_instance_and_free_once_its_holder_is_gone() {
    let redis = Redis::start();
    let grace = Duration::from_millis(400);
    let config = |name: &str| {
        let mut config = Config {
            cluster: Some(cluster(&redis, name)),
            ..Config::default()
        };
        config.session.resume_grace_ms = grace.as_millis() as u64;
        config
    };
    let mut servers = Vec::new();
    for name in ["a", "b", "c"] {
        let s = TestServer::start(config(name)).await;
        cluster_ready(&s.url(), name).await;
        servers.push(s);
    }
    let urls: Vec<String> = servers.iter().map(TestServer::url).collect();
    let url = |i: usize| urls[i].as_str();
    let alice = hello(url(0), "alice").await.unwrap();
    // Cyrillic а, digit-for-letter and full-width look-alikes, on the other instances.
    for (i, fake) in [(1, "\u{0430}lice"), (2, "aIice"), (1, "ａｌｉｃｅ")] {
        assert_eq!(
            hello(url(i), fake).await.err(),
            Some(ErrorReason::NameTaken),
            "{fake:?}"
        );
    }
    // The real alice may connect anywhere (the join guard rules her seats).
    let alice_on_b = hello(url(1), "alice").await.unwrap();

    // Two look-alike newcomers at once on two instances: one name, one holder.
    for round in 0..5 {
        let (real, fake) = (format!("carol{round}"), format!("\u{0441}arol{round}"));
        let (x, y) = tokio::join!(hello(url(0), &real), hello(url(2), &fake));
        assert!(
            x.is_ok() != y.is_ok(),
            "round {round}: {:?} / {:?}",
            x.as_ref().err(),
            y.as_ref().err()
        );
        for refused in [x.err(), y.err()].into_iter().flatten() {
            assert_eq!(refused, ErrorReason::NameTaken);
        }
    }

    // Once every session of alice is gone (past the resume grace) the name is free anywhere.
    drop((alice, alice_on_b));
    assert!(eventually_welcomed(url(2), "\u{0430}lice", Duration::from_secs(5)).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_outage_drops_no_client_and_the_seats_are_rebuilt_when_it_returns() {
    let mut redis = Redis::start();
    let (a, b) = (instance(&redis, "a").await, instance(&redis, "b").await);
    let mut alice = Client::connect(&a.url(), "alice").await;
    let mut bob = Client::connect(&b.url(), "bob").await;
    assert!(matches!(
        join(&mut alice, 1).await,
        ServerMsg::Joined { .. }
    ));
    assert!(matches!(join(&mut bob, 1).await, ServerMsg::Joined { .. }));

    redis.kill();
    // Still connected, still answered; a join is refused with a reason, not dropped.
    let mut carol = Client::connect(&a.url(), "carol").await;
    carol.send(&ClientMsg::Join { channel: 2 }).await;
    carol.expect_error(ErrorReason::ClusterUnavailable).await;
    // A leave that cannot reach Redis is refused too: alice still sits.
    alice.send(&ClientMsg::Leave).await;
    alice.expect_error(ErrorReason::ClusterUnavailable).await;
    for (who, c) in [("alice", &mut alice), ("bob", &mut bob)] {
        c.send(&ClientMsg::Ping { id: 7 }).await;
        let m = c.recv_until(|m| matches!(m, ServerMsg::Pong { .. })).await;
        assert_eq!(m, ServerMsg::Pong { id: 7 }, "{who}");
    }

    // Redis comes back empty: each instance seats its own users again (a new `joined`), and
    // everyone sees both seated.
    redis.restart();
    for c in [&mut alice, &mut bob] {
        let m = c
            .recv_until(|m| matches!(m, ServerMsg::Joined { .. }))
            .await;
        assert!(matches!(m, ServerMsg::Joined { channel: 1, .. }), "{m:?}");
    }
    // A newcomer sees both seated: in its welcome, or in the presence right after it (its
    // instance may apply the other instance's retake a moment later).
    let mut late = Client::connect(&b.url(), "late").await;
    let mut v = view(late.welcome.as_ref().unwrap());
    let both = BTreeSet::from(["alice".to_owned(), "bob".to_owned()]);
    let deadline = Instant::now() + WAIT;
    while v[&1] != both && Instant::now() < deadline {
        let m = late
            .recv_until(|m| matches!(m, ServerMsg::Presence { .. }))
            .await;
        apply(&mut v, &presence(&[m]).concat());
    }
    assert_eq!(v[&1], both);
    assert!(matches!(
        join(&mut carol, 2).await,
        ServerMsg::Joined { .. }
    ));
}

/// The next chat message `c` receives: (id, user, text).
async fn next_message(c: &mut Client) -> (u64, String, String) {
    match c
        .recv_until(|m| matches!(m, ServerMsg::Message { .. }))
        .await
    {
        ServerMsg::Message { message } => (message.id, message.user, message.text),
        _ => unreachable!(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_goes_live_to_the_channels_followers_on_every_instance_in_one_order() {
    let redis = Redis::start();
    let [a, b, c] = three_instances(&redis).await;
    let mut alice = Client::connect(&a.url(), "alice").await;
    let mut bob = Client::connect(&b.url(), "bob").await;
    let mut carol = Client::connect(&c.url(), "carol").await;
    assert!(matches!(
        join(&mut alice, 1).await,
        ServerMsg::Joined { .. }
    ));
    bob.send(&ClientMsg::Watch { channel: Some(1) }).await;
    carol.send(&ClientMsg::Watch { channel: Some(2) }).await;
    alice.drain_for(QUIET).await;

    let say = |text: &str| ClientMsg::Say {
        channel: 1,
        text: text.into(),
    };
    alice.send(&say("hello from a")).await;
    bob.send(&say("hello from b")).await;
    let (mut at_alice, mut at_bob) = (Vec::new(), Vec::new());
    for _ in 0..2 {
        at_alice.push(next_message(&mut alice).await);
        at_bob.push(next_message(&mut bob).await);
    }
    assert_eq!(at_alice, at_bob, "one order, one numbering");
    let texts: BTreeSet<_> = at_alice.iter().map(|(_, _, t)| t.as_str()).collect();
    assert_eq!(texts, BTreeSet::from(["hello from a", "hello from b"]));
    assert!(at_alice[0].0 < at_alice[1].0, "ids increase: {at_alice:?}");
    // Carol follows another channel: nothing reaches her.
    let got = carol.drain_for(QUIET).await;
    assert!(
        !got.iter().any(|m| matches!(m, ServerMsg::Message { .. })),
        "{got:?}"
    );
    // The history is the cluster's, numbered as it went out live.
    carol
        .send(&ClientMsg::History {
            channel: 1,
            before: None,
            limit: None,
        })
        .await;
    let history = match carol
        .recv_until(|m| matches!(m, ServerMsg::History { .. }))
        .await
    {
        ServerMsg::History { messages, .. } => messages,
        _ => unreachable!(),
    };
    let stored: Vec<_> = history
        .into_iter()
        .map(|m| (m.id, m.user, m.text))
        .collect();
    assert_eq!(stored, at_alice);
}

/// `c`'s page of `channel`'s history: (id, text) oldest first, and whether older remain.
async fn history_page(
    c: &mut Client,
    channel: u32,
    before: Option<u64>,
    limit: u32,
) -> (Vec<(u64, String)>, bool) {
    c.send(&ClientMsg::History {
        channel,
        before,
        limit: Some(limit),
    })
    .await;
    match c
        .recv_until(|m| matches!(m, ServerMsg::History { .. } | ServerMsg::Error { .. }))
        .await
    {
        ServerMsg::History { messages, more, .. } => {
            (messages.into_iter().map(|m| (m.id, m.text)).collect(), more)
        }
        other => panic!("no history page: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_chat_history_is_one_store_that_an_instance_started_later_reads_too() {
    let mut redis = Redis::start();
    let config = |name: &str| {
        let mut config = Config {
            cluster: Some(cluster(&redis, name)),
            ..Config::default()
        };
        config.chat.retention_messages = 5;
        config
    };
    let a = TestServer::start(config("a")).await;
    cluster_ready(&a.url(), "a").await;
    let mut alice = Client::connect(&a.url(), "alice").await;
    let mut said = Vec::new();
    for i in 0..7 {
        alice
            .send(&ClientMsg::Say {
                channel: 1,
                text: format!("line {i}"),
            })
            .await;
        let (id, _, text) = next_message(&mut alice).await;
        said.push((id, text));
    }
    // Said in another channel: not in channel 1's history.
    alice
        .send(&ClientMsg::Say {
            channel: 2,
            text: "elsewhere".into(),
        })
        .await;
    next_message(&mut alice).await;

    // An instance that was not running when it was said reads it, kept to the newest 5,
    // page by page.
    let b = TestServer::start(config("b")).await;
    cluster_ready(&b.url(), "b").await;
    let mut bob = Client::connect(&b.url(), "bob").await;
    let (newest, more) = history_page(&mut bob, 1, None, 3).await;
    assert_eq!(newest, said[4..7], "the newest three");
    assert!(more);
    let (older, more) = history_page(&mut bob, 1, Some(newest[0].0), 3).await;
    assert_eq!(
        older,
        said[2..4],
        "the two before them; the oldest two were trimmed"
    );
    assert!(!more);

    // A page asked for right after a say holds it.
    bob.send(&ClientMsg::Say {
        channel: 1,
        text: "and one from b".into(),
    })
    .await;
    let (page, _) = history_page(&mut bob, 1, None, 1).await;
    assert_eq!(page[0].1, "and one from b");
    let (at_alice, _) = history_page(&mut alice, 1, None, 1).await;
    assert_eq!(at_alice, page, "every instance reads the same history");

    // Without Redis the history cannot be read: said so, and nothing else is lost.
    redis.kill();
    bob.send(&ClientMsg::History {
        channel: 1,
        before: None,
        limit: None,
    })
    .await;
    bob.expect_error(ErrorReason::HistoryUnavailable).await;
    bob.send(&ClientMsg::Ping { id: 9 }).await;
    let m = bob
        .recv_until(|m| matches!(m, ServerMsg::Pong { .. }))
        .await;
    assert_eq!(m, ServerMsg::Pong { id: 9 });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_former_single_servers_history_is_carried_into_the_cluster_once() {
    use cromulent_protocol::ChatMessage;
    use cromulent_server::chat_store::{Location, Retention, Store};

    // The file a single server wrote: four messages in channel 1, one in channel 2.
    let dir = TempDir::new("import");
    let file = dir.path("chat.sqlite3");
    {
        let mut store = Store::open(&Location::File(file.clone()), Retention::default()).unwrap();
        let message = |id: u64, channel: u32| ChatMessage {
            id,
            channel,
            user: "ann".into(),
            name: "Ann".into(),
            time: 1_000 + id,
            text: format!("old {id}"),
        };
        store
            .insert(&[
                message(1, 1),
                message(2, 2),
                message(3, 1),
                message(4, 1),
                message(5, 1),
            ])
            .unwrap();
    }
    let redis = Redis::start();
    let config = || {
        let mut config = Config {
            cluster: Some(cluster(&redis, "a")),
            ..Config::default()
        };
        config.chat.database = Some(file.display().to_string());
        config.chat.retention_messages = 3;
        config
    };
    let a = TestServer::start(config()).await;
    cluster_ready(&a.url(), "a").await;
    let mut ann = Client::connect(&a.url(), "ann").await;
    let old = |ids: &[u64]| -> Vec<(u64, String)> {
        ids.iter().map(|&id| (id, format!("old {id}"))).collect()
    };
    assert_eq!(
        history_page(&mut ann, 1, None, 10).await,
        (old(&[3, 4, 5]), false)
    );
    assert_eq!(
        history_page(&mut ann, 2, None, 10).await,
        (old(&[2]), false)
    );
    // New messages are numbered above the imported ones.
    ann.send(&ClientMsg::Say {
        channel: 1,
        text: "new".into(),
    })
    .await;
    let (id, _, _) = next_message(&mut ann).await;
    assert!(id > 5, "{id}");
    drop(ann);
    a.stop().await;

    // Started again with the same file: nothing is added twice.
    let a = TestServer::start(config()).await;
    cluster_ready(&a.url(), "a").await;
    let mut ann = Client::connect(&a.url(), "ann").await;
    let mut expected = old(&[4, 5]);
    expected.push((id, "new".into()));
    assert_eq!(history_page(&mut ann, 1, None, 10).await, (expected, false));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_past_the_age_limit_is_not_served() {
    use cromulent_protocol::ChatMessage;
    use cromulent_server::chat_store::Retention;
    use cromulent_server::cluster::board::Board;
    use cromulent_server::cluster::wire::Chat;

    let redis = Redis::start();
    let client = redis::Client::open(redis.url()).unwrap();
    let day = Duration::from_secs(86_400);
    let retention = Retention {
        per_channel: None,
        max_age: Some(day),
    };
    let mut board = Board::new(&client, &cluster(&redis, "a"), retention, "a-1").unwrap();
    let chat = Chat {
        message: ChatMessage {
            id: 0,
            channel: 1,
            user: "u".into(),
            name: "U".into(),
            time: 0,
            text: "hi".into(),
        },
        node: "a-1".into(),
        session: 1,
    };
    let id = board.say(&chat, 1).await.unwrap();
    let now_ms = cromulent_server::hub_actor::unix_ms();
    let (page, _) = board.history(1, None, 10, now_ms).await.unwrap();
    assert_eq!(page.iter().map(|m| m.id).collect::<Vec<_>>(), [id]);
    let a_day_later = now_ms + day.as_millis() as u64 + 1_000;
    let (page, more) = board.history(1, None, 10, a_day_later).await.unwrap();
    assert!(page.is_empty() && !more, "{page:?}");
}

/// The next presence change about `user`: (op, channel, muted).
async fn change_of(c: &mut Client, user: &str) -> (PresenceOp, u32, bool) {
    let m = c
        .recv_until(|m| match m {
            ServerMsg::Presence { changes } => changes.iter().any(|ch| ch.member.user == user),
            _ => false,
        })
        .await;
    let ServerMsg::Presence { changes } = m else {
        unreachable!()
    };
    let ch = changes.iter().find(|ch| ch.member.user == user).unwrap();
    (ch.op, ch.channel, ch.member.muted)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_resumes_on_another_instance_within_the_grace_and_sits_again() {
    let mut redis = Redis::start();
    let (a, b) = (instance(&redis, "a").await, instance(&redis, "b").await);
    let mut on_a = Client::connect(&a.url(), "watcher-a").await;
    let mut on_b = Client::connect(&b.url(), "watcher-b").await;
    let mut alice = Client::connect(&a.url(), "alice").await;
    alice.voice_state(true, false, false).await;
    assert!(matches!(
        join(&mut alice, 1).await,
        ServerMsg::Joined { .. }
    ));
    let token = alice.resume_token();
    for w in [&mut on_a, &mut on_b] {
        assert_eq!(change_of(w, "alice").await, (PresenceOp::Join, 1, true));
    }
    drop(alice);
    for w in [&mut on_a, &mut on_b] {
        assert_eq!(change_of(w, "alice").await, (PresenceOp::Leave, 1, true));
    }

    // Back through the other instance: the same session, seated again, flags kept.
    let mut back = Client::hello_with(&b.url(), Some("alice"), None, Some(&token)).await;
    assert!(
        matches!(back.welcome, Some(ServerMsg::Welcome { resumed: true, .. })),
        "{:?}",
        back.welcome
    );
    assert!(matches!(
        back.expect_joined().await,
        ServerMsg::Joined { channel: 1, .. }
    ));
    // Everyone sees her sit again; instance a, in seeing it, has also been told (before) that
    // its session was taken over.
    for w in [&mut on_a, &mut on_b] {
        assert_eq!(change_of(w, "alice").await, (PresenceOp::Join, 1, true));
    }

    // The token was claimed once: presented again, anywhere, it starts a new session.
    let mut again = Client::hello_with(&a.url(), Some("alice"), None, Some(&token)).await;
    assert!(
        matches!(
            again.welcome,
            Some(ServerMsg::Welcome { resumed: false, .. })
        ),
        "{:?}",
        again.welcome
    );
    again.expect_error(ErrorReason::ResumeExpired).await;
    // Instance a forgot the session taken over: even with Redis gone, where a session of its
    // own would still resume, the old token resumes nothing.
    redis.kill();
    let stale = Client::hello_with(&a.url(), Some("alice"), None, Some(&token)).await;
    assert!(
        matches!(
            stale.welcome,
            Some(ServerMsg::Welcome { resumed: false, .. })
        ),
        "{:?}",
        stale.welcome
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_stopped_by_sigterm_releases_its_seats_at_once_not_at_lease_end() {
    let redis = Redis::start();
    let survivor = instance(&redis, "survivor").await;
    let long_lease = Duration::from_secs(30);
    let (_dir, mut leaving) = instance_process(&redis, "leaving", long_lease);
    cluster_ready(&leaving.url(), "leaving").await;
    let mut watcher = Client::connect(&survivor.url(), "watcher").await;
    let mut bob = Client::connect(&leaving.url(), "bob").await;
    assert!(matches!(join(&mut bob, 2).await, ServerMsg::Joined { .. }));
    assert_eq!(
        change_of(&mut watcher, "bob").await,
        (PresenceOp::Join, 2, false)
    );

    let stopped = Instant::now();
    let status = tokio::task::block_in_place(|| leaving.terminate());
    assert!(
        status.is_some_and(|s| s.success()),
        "clean exit: {status:?}"
    );
    bob.expect_error(ErrorReason::ServerShutdown).await;
    assert_eq!(
        change_of(&mut watcher, "bob").await,
        (PresenceOp::Leave, 2, false)
    );
    let took = stopped.elapsed();
    assert!(took < long_lease / 4, "released after {took:?}");
}
