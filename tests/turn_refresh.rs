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

mod support;

use std::time::Duration;

use cromulent::audio::analysis::{rms, tone_power};
use support::coturn::Coturn;
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

fn run(refresh: bool) -> Outcome {
    let coturn = Coturn::builder().max_allocate_lifetime(20).start();
    let url = coturn.turn_url();
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
    let dir = TempDir::new("turn-refresh");
    let wav = dir.path("bob.wav");
    let env = [("CROMULENT_ICE_REFRESH", if refresh { "on" } else { "off" })];
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
    let with = run(true);
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

    let without = run(false);
    assert!(
        !without.newcomer_heard,
        "without the refresh, stale credentials cannot allocate: this run must fail"
    );
}
