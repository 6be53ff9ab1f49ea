//! A call across two instances of one cluster (issue 21): a real Redis, two `cromulent server`
//! processes sharing it, alice's `cromulent headless` on one and bob's on the other. Seats,
//! presence and the call's signals all cross Redis; the audio itself goes peer to peer, and is
//! checked by its frequency: each hears the other's tone, not its own. (Two instances on two
//! Redis servers, i.e. no shared state, fail this test: alice never finds bob.)
//!
//! And the failover: alice's instance is killed (`kill -9`) mid-call, she reconnects through
//! the same front address to the survivor, whose Redis still holds her old seat until the dead
//! instance's lease lapses; she waits for it, rejoins, and the two hear each other again.

mod support;

use std::time::Duration;

use cromulent::audio::analysis::dominant_frequency;
use support::{
    Client, Failover, LONG, Redis, Server, TempDir, ToneCaller, assert_hears_the_others, read_wav,
    tail, tone_call,
};

#[test]
fn two_users_on_two_instances_hear_each_others_tone() {
    let _alone = support::one_call_at_a_time();
    let redis = Redis::start();
    let one = Server::cluster_instance(&redis, "one");
    let two = Server::cluster_instance(&redis, "two");
    let callers = [
        ToneCaller {
            name: "alice",
            url: one.url(),
            hz: 440.0,
            frame_ms: "20",
        },
        ToneCaller {
            name: "bob",
            url: two.url(),
            hz: 660.0,
            frame_ms: "20",
        },
    ];
    let heard = tone_call(&callers);
    for (me, other) in [(0, 1), (1, 0)] {
        assert_hears_the_others(&callers, me, &heard[me], 0.8);
        let f = dominant_frequency(&heard[me], 48_000).expect("a dominant frequency");
        let (name, hz) = (callers[me].name, callers[other].hz);
        assert!((f - hz).abs() <= 5.0, "{name} hears {f} Hz, not {hz} Hz");
    }
}

/// A short lease, so that the dead instance's seats are released within 5 s; long enough that
/// alice's reconnect (first retry after 250 ms) meets her old seat still held.
const LEASE_MS: u64 = 4_000;
const RENEW_MS: u64 = 1_000;

/// Without the engine's wait for the old seat (`engine::rejoin`), alice's rejoin is refused
/// `already_in_channel` for good and she stays `disconnected`: this test then fails waiting
/// for her `connected`.
#[test]
fn a_user_whose_instance_is_killed_rejoins_on_the_survivor_once_the_old_seat_is_released() {
    let _alone = support::one_call_at_a_time();
    let dir = TempDir::new("cluster-rejoin");
    let config = dir.path("server.toml");
    std::fs::write(
        &config,
        format!("[cluster]\nlease_ms = {LEASE_MS}\nrenew_ms = {RENEW_MS}\n"),
    )
    .expect("write the short-lease config");
    let config = config.to_str().expect("a UTF-8 temp path");
    let redis = Redis::start();
    let one = Server::cluster_instance_with(&redis, "one", &["--config", config]);
    let two = Server::cluster_instance_with(&redis, "two", &["--config", config]);
    // Alice through a front that prefers instance one, as a proxy would hand her to it;
    // bob straight to instance two.
    let front = Failover::start(&[one.addr, two.addr]);
    let callers = [
        ToneCaller {
            name: "alice",
            url: front.ws_url(),
            hz: 440.0,
            frame_ms: "20",
        },
        ToneCaller {
            name: "bob",
            url: two.url(),
            hz: 660.0,
            frame_ms: "20",
        },
    ];
    let wav = |name: &str| dir.path(&format!("{name}.wav"));
    let mut clients: Vec<Client> = callers.iter().map(|c| c.client(&wav(c.name))).collect();
    clients[0].wait_audio("bob", LONG);
    clients[1].wait_audio("alice", LONG);

    let marks: Vec<usize> = clients.iter_mut().map(Client::mark).collect();
    one.kill();
    let alice = &mut clients[0];
    alice.wait_after(marks[0], "state disconnected", LONG, |e| {
        e.kind() == "state" && e.str("state") == "disconnected"
    });
    let bound = Duration::from_millis(LEASE_MS + RENEW_MS);
    let back = alice.wait_after(marks[0], "state connected again", bound + LONG, |e| {
        e.kind() == "state" && e.str("state") == "connected"
    });
    assert_eq!(back.str("channel"), "General");
    // She met her old seat on the survivor and said so in our words, and was never told the
    // join was refused for good.
    let since: Vec<_> = alice.seen[marks[0]..].to_vec();
    let notice = since
        .iter()
        .find(|e| e.kind() == "error" && e.str("reason") == "seat_still_held")
        .unwrap_or_else(|| panic!("no seat_still_held notice: the old seat was released before the rejoin; events: {since:#?}"));
    assert!(
        notice
            .str("message")
            .contains("the seat of the lost connection is still held"),
        "{}",
        notice.str("message")
    );
    assert!(
        !since.iter().any(|e| e.kind() == "error"
            && ["already_in_channel", "already_in_voice"].contains(&e.str("reason"))),
        "a final refusal was shown: {since:#?}"
    );
    // The call is back, both ways, and each hears the other's tone.
    clients[0].wait_after(marks[0], "audio from bob again", LONG, |e| {
        e.kind() == "audio" && e.str("from") == "bob"
    });
    clients[1].wait_after(marks[1], "audio from alice again", LONG, |e| {
        e.kind() == "audio" && e.str("from") == "alice"
    });
    std::thread::sleep(Duration::from_secs(2));
    for c in &mut clients {
        assert!(
            c.terminate().success(),
            "{} exits 0: {}",
            c.name,
            c.stderr()
        );
    }
    for (me, other) in [(0, 1), (1, 0)] {
        let samples = read_wav(&wav(callers[me].name));
        let heard = tail(&samples, 1.0);
        assert_hears_the_others(&callers, me, heard, 0.8);
        let f = dominant_frequency(heard, 48_000).expect("a dominant frequency");
        let (name, hz) = (callers[me].name, callers[other].hz);
        assert!(
            (f - hz).abs() <= 5.0,
            "{name} hears {f} Hz, not {hz} Hz after the failover"
        );
    }
}
