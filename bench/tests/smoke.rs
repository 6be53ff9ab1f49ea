//! The benchmark tools work end to end, at toy sizes: they reach a real server (in this
//! process, on a free loopback port), speak the protocol and produce figures. No timing is
//! asserted — that is what the benchmarks themselves are for.

use std::time::Duration;

use cromulent_bench::impair::Impairment;
use cromulent_bench::loadgen::{chat, fanout, idle, joins, slow};
use cromulent_bench::probe;
use cromulent_server::config::{ClusterConfig, Config};
use cromulent_test_support::redis::Redis;
use cromulent_test_support::ws::cluster_ready;

struct Server {
    addr: std::net::SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

async fn server() -> Server {
    server_with(Config::default()).await
}

async fn server_with(config: Config) -> Server {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(cromulent_server::run(listener, config, async {
        let _ = stopped.await;
    }));
    Server {
        addr,
        stop: Some(stop),
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_readers_are_dropped_and_measured() {
    let mut config = Config::default();
    config.limits.outbound_queue_bytes = 128 * 1024;
    config.limits.write_timeout_ms = 1_000;
    let s = server_with(config).await;
    let r = slow::run(&slow::Options {
        server: s.addr,
        server_pid: std::process::id(),
        readers: 2,
        flooders: 1,
        signal_bytes: 60 * 1024,
        rate: 45.0,
        queue_bytes: 128 * 1024,
        limit: Duration::from_secs(30),
    })
    .await
    .unwrap();
    assert_eq!(r.dropped_after.len(), 2, "{r:?}");
    assert!(r.peak_kib >= r.baseline_kib && r.budget_kib > 0, "{r:?}");
}

/// Toy-size join cycles over `servers`: every cycle completes, and presence flows.
async fn joins_complete(servers: Vec<std::net::SocketAddr>, server_pids: Vec<u32>) {
    let r = joins::run(&joins::Options {
        servers,
        server_pids,
        watchers: 3,
        joiners: 4,
        rate: 20.0,
        duration: Duration::from_secs(1),
        warmup: Duration::ZERO,
        sources: 2,
        channels: 2,
    })
    .await
    .unwrap();
    assert_eq!(r.errors, 0);
    assert!(r.latency.count() >= 10, "{r:?}");
    // Every join and leave reached all 7 connections.
    assert!(r.presence_changes_per_sec > 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joins_are_measured_and_every_cycle_completes() {
    let s = server().await;
    joins_complete(vec![s.addr], vec![std::process::id()]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fanout_reaches_every_watcher_for_every_event() {
    let s = server().await;
    for event in [fanout::Event::Presence, fanout::Event::Chat] {
        let r = fanout::run(&fanout::Options {
            event,
            servers: vec![s.addr],
            watchers: 5,
            events: 4,
            interval: Duration::from_millis(20),
            sources: 3,
        })
        .await
        .unwrap();
        assert_eq!(r.missing, 0, "{event:?}");
        assert_eq!(r.all.count(), 20, "{event:?}");
        assert_eq!(r.last.count(), 4, "{event:?}");
    }
}

/// Instance `name` of the cluster sharing `redis`, in this process, ready to seat users.
async fn cluster_instance(redis: &Redis, name: &str) -> Server {
    let config = Config {
        cluster: Some(ClusterConfig {
            redis_url: redis.url(),
            instance_id: name.into(),
            ..ClusterConfig::default()
        }),
        ..Config::default()
    };
    let s = server_with(config).await;
    cluster_ready(&format!("ws://{}", s.addr), name).await;
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joins_and_fanout_spread_over_two_cluster_instances() {
    let redis = Redis::start();
    let (a, b) = (
        cluster_instance(&redis, "a").await,
        cluster_instance(&redis, "b").await,
    );
    joins_complete(vec![a.addr, b.addr], vec![]).await;
    // Watchers on both instances: every update reaches each, half of them through Redis.
    let r = fanout::run(&fanout::Options {
        event: fanout::Event::Presence,
        servers: vec![a.addr, b.addr],
        watchers: 4,
        events: 4,
        interval: Duration::from_millis(20),
        sources: 2,
    })
    .await
    .unwrap();
    assert_eq!(r.missing, 0);
    assert_eq!(r.all.count(), 16);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_history_pages_come_from_a_seeded_file_and_chatters_chat() {
    let dir = cromulent_test_support::process::TempDir::new("smoke-chat");
    let db = dir.path("chat.sqlite3");
    chat::seed(&db, 500).unwrap();
    let mut config = Config::default();
    config.chat.database = Some(db.display().to_string());
    let s = server_with(config).await;
    let pages = chat::history(&chat::HistoryOptions {
        server: s.addr,
        pages: 5,
        limit: 50,
        newest: 500,
    })
    .await
    .unwrap();
    assert_eq!(pages.count(), 5);
    let (said, refused) = chat::chatters(&chat::ChattersOptions {
        server: s.addr,
        clients: 3,
        rate: 20.0,
        duration: Duration::from_millis(300),
        sources: 2,
    })
    .await
    .unwrap();
    assert!(said >= 3, "{said}");
    assert_eq!(refused, 0);
}

#[test]
fn idle_workers_open_connections_and_memory_is_read() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let s = rt.block_on(server());
    let r = idle::run(&idle::Options {
        server: s.addr,
        server_pid: std::process::id(),
        connections: 30,
        step: 15,
        sources: 3,
        per_worker: 20,
        hold: Duration::ZERO,
        worker_exe: env!("CARGO_BIN_EXE_loadgen").into(),
    })
    .unwrap();
    assert_eq!(r.max_connections, 30, "{r:?}");
    assert_eq!(r.survivors, 30);
    assert_eq!(r.rows.len(), 2);
    drop(s);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_probe_hears_clicks_through_two_engines() {
    let r = probe::run(&probe::Options {
        relay: false,
        relay_over: probe::RelayOver::Udp,
        impair: None,
        impair_seed: 1,
        sample_every: None,
        sessions: 1,
        clicks: 4,
        period_frames: 8,
        background: 0.0,
        settle: Duration::from_millis(200),
        engine_threads: Some(1),
    })
    .await
    .unwrap();
    let s = &r.sessions[0];
    assert!(!s.events.is_empty(), "no click heard: {s:?}");
    for e in &s.events {
        // Causality, not speed: nothing is heard before the frame and codec delay.
        assert!(e.delay_ms > 20.0, "{e:?}");
    }
}

/// The probe behind the impairment relay (needs `turnserver` from Debian's coturn): the call
/// connects through delay, jitter and loss, clicks are heard, the relay really dropped packets
/// and the receiver's jitter buffer was sampled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_probe_hears_clicks_through_an_impaired_relay() {
    let opts = probe::Options {
        relay: true,
        relay_over: probe::RelayOver::Udp,
        impair: Some(
            Impairment::new(Duration::from_millis(20), Duration::from_millis(10), 0.1).unwrap(),
        ),
        impair_seed: 5,
        sample_every: Some(Duration::from_millis(200)),
        sessions: 1,
        clicks: 6,
        period_frames: 8,
        // A continuous stream, so enough packets cross the relay for its losses to show.
        background: 0.02,
        settle: Duration::from_millis(500),
        engine_threads: Some(1),
    };
    // A lost final DTLS flight used to hang one connection in ten to twenty at this loss
    // (webrtc-rs sends it once); the engine now replaces a connection that has an ICE path
    // but has not connected 5 s later (`calls::HANDSHAKE_WAIT`). What is left is a loaded
    // machine's coturn sometimes not starting within 10 s: one more try, as
    // bench/jitter-path.sh does (a second failure is a real one).
    let r = match probe::run(&opts).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("first run failed ({e:#}); once more");
            probe::run(&opts).await.unwrap()
        }
    };
    let s = &r.sessions[0];
    assert!(!s.events.is_empty(), "no click heard: {s:?}");
    let relay = r.impaired.expect("the relay's counts");
    assert!(relay.forwarded > 50 && relay.dropped > 0, "{relay:?}");
    assert!(!s.depth_samples.is_empty(), "receiver never sampled");
    let receiver = s.receiver.as_ref().expect("receiver stats");
    assert!(receiver.jitter.received > 0, "{receiver:?}");
}
