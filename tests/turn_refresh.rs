//! TURN credential refresh (issue 5, proof 3). Credentials live 30 s here; coturn refreshes
//! allocations every 20 s at most (`--max-allocate-lifetime`).
//!
//! What we measured before writing this test: coturn 4.6.1 keeps an existing allocation alive
//! past its REST credentials' expiry (it reuses the session's key for refreshes), and
//! webrtc-rs refreshes TURN permissions every 120 s and channel bindings every 5 min, so
//! permission or channel lifetimes below those break every relayed call whatever the
//! credentials (we leave them at coturn's defaults). What expired credentials do break is
//! everything that needs a *new* allocation: a peer who joins later, an ICE restart after a
//! network hiccup. Cromulent never refreshed, so after one TTL such calls could not be made.
//!
//! So: alice and bob talk through the relay; after the credentials expired, carol joins,
//! relay-only. With the refresh (the client renews a quarter-lifetime early and rebuilds its
//! relayed connections with the new credentials) alice and bob keep talking and carol's calls
//! come up. Without it (`CROMULENT_ICE_REFRESH=off`) carol never hears alice: the same test
//! fails, and that run is part of the test.
//!
//! The same with the clients reaching coturn over TLS (`turns:`, issue 20): allocation
//! refreshes and the rebuild with fresh credentials run over the stream as over UDP.

mod support;

use std::time::Duration;

use cromulent::audio::analysis::{rms, tone_power};
use support::coturn::{self, Coturn};
use support::{Client, Server, TempDir, free_port, read_wav, tail};

const TTL_SECS: u64 = 30;
const PAST_EXPIRY: Duration = Duration::from_secs(TTL_SECS + 8);
const NEWCOMER_LIMIT: Duration = Duration::from_secs(15);

struct Outcome {
    /// Carol heard alice (through a relay allocated after the first credentials expired).
    newcomer_heard: bool,
    /// Share of the last 5 s of bob's recording with alice's tone.
    bob_tail_tone: f32,
    /// alice rebuilt her relayed connection to bob at least once.
    rebuilt: bool,
}

/// How the clients reach coturn.
#[derive(Clone, Copy, PartialEq)]
enum Over {
    Udp,
    /// `turns:` to coturn's TLS listener, its certificate trusted through `SSL_CERT_FILE`.
    Tls,
}

fn run(refresh: bool, over: Over) -> Outcome {
    let dir = TempDir::new("turn-refresh");
    let mut builder = Coturn::builder().max_allocate_lifetime(20);
    let ca = dir.path("turn-cert.pem");
    if over == Over::Tls {
        let tls = coturn::Tls::self_signed(dir.root(), [127, 0, 0, 1].into(), free_port());
        builder = builder.tls(tls);
    }
    let coturn = builder.start();
    let url = match over {
        Over::Udp => coturn.turn_url(),
        Over::Tls => coturn.turns_url().expect("coturn listens for TLS"),
    };
    let ttl = TTL_SECS.to_string();
    let server = Server::start_with(
        free_port(),
        &[],
        &[
            ("TURN_PROVIDER", "coturn"),
            ("TURN_SECRET", coturn.secret()),
            ("TURN_URLS", &url),
            ("TURN_TTL", &ttl),
        ],
    );
    let wav = dir.path("bob.wav");
    let ca = ca.display().to_string();
    let env = [
        ("CROMULENT_ICE_REFRESH", if refresh { "on" } else { "off" }),
        ("SSL_CERT_FILE", ca.as_str()),
    ];
    let relay = ["--join", "General", "--ice-policy", "relay"];
    let start = |name: &str, extra: &[&str]| {
        Client::start_env(&server.url(), name, &[&relay[..], extra].concat(), &env)
    };
    let mut bob = start("bob", &["--audio-out", &format!("wav:{}", wav.display())]);
    let mut alice = start("alice", &["--audio-in", "tone:440"]);
    bob.wait_audio("alice", support::LONG);
    std::thread::sleep(PAST_EXPIRY);

    let mut carol = start("carol", &["--audio-in", "tone:880"]);
    let mark = carol.mark();
    let newcomer_heard = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        carol.wait_after(mark, "audio from alice", NEWCOMER_LIMIT, |e| {
            e.kind() == "audio" && e.str("from") == "alice"
        });
    }))
    .is_ok();
    std::thread::sleep(Duration::from_secs(2));
    alice.drain();
    let rebuilt = alice
        .events("peer")
        .iter()
        .filter(|e| e.str("user") == "bob" && e.str("state") == "connected")
        .count()
        > 1;
    bob.drain();
    carol.drain();
    // The timeline, shown when the test fails.
    let t0 = bob.seen[0].at;
    for c in [&alice, &bob, &carol] {
        for e in c
            .seen
            .iter()
            .filter(|e| matches!(e.kind(), "peer" | "audio" | "state" | "error"))
        {
            eprintln!(
                "{} {:>6} ms {}",
                c.name,
                e.at.duration_since(t0).as_millis(),
                e.json
            );
        }
    }
    assert!(bob.terminate().success());
    assert!(alice.terminate().success());
    let _ = carol.terminate();
    let heard = read_wav(&wav);
    let last = tail(&heard, 5.0);
    let with_tone = last
        .chunks(48_000)
        .filter(|w| rms(w) > 0.05 && tone_power(w, 48_000, 440.0) > 0.3)
        .count();
    Outcome {
        newcomer_heard,
        bob_tail_tone: with_tone as f32 / 5.0,
        rebuilt,
    }
}

#[test]
fn after_the_credentials_expire_relayed_calls_still_work_only_with_the_refresh() {
    let with = run(true, Over::Udp);
    assert!(
        with.newcomer_heard,
        "with the refresh, a peer joining after expiry connects through the relay"
    );
    assert!(
        with.bob_tail_tone >= 0.8,
        "the original call carries on: {:.2}",
        with.bob_tail_tone
    );
    assert!(
        with.rebuilt,
        "the relayed connection was rebuilt with fresh credentials"
    );

    let without = run(false, Over::Udp);
    assert!(
        !without.newcomer_heard,
        "without the refresh, stale credentials cannot allocate: this run must fail"
    );
}

#[test]
fn over_tls_relayed_calls_outlive_their_allocations_and_credentials() {
    // Allocations of 20 s refreshed over the stream, credentials of 30 s renewed and the
    // connections rebuilt with them: what the UDP test proves, over `turns:`.
    let with = run(true, Over::Tls);
    assert!(
        with.newcomer_heard,
        "a peer joining after expiry connects through the TLS relay"
    );
    assert!(
        with.bob_tail_tone >= 0.8,
        "the original call carries on over TLS: {:.2}",
        with.bob_tail_tone
    );
    assert!(
        with.rebuilt,
        "the relayed connection was rebuilt with fresh credentials"
    );
}
