//! The join guard and channel switching, as a headless user experiences them.

mod support;

use std::time::Duration;

use cromulent::audio::analysis::{rms, tone_share};
use support::{Client, LONG, Server, TempDir, read_wav, tail};

#[test]
fn duplicate_join_is_refused_and_the_first_session_is_unaffected() {
    let server = Server::start();
    let dir = TempDir::new("dup");
    let wav = dir.path("bob.wav");
    let out = format!("wav:{}", wav.display());
    let mut bob = Client::start(
        &server.url(),
        "bob",
        &["--join", "General", "--audio-out", &out],
    );
    let mut alice = Client::start(
        &server.url(),
        "alice",
        &["--join", "General", "--audio-in", "tone:440"],
    );
    bob.wait_audio("alice", LONG);

    let mut second = Client::start(
        &server.url(),
        "alice",
        &["--join", "General", "--script", "-"],
    );
    let err = second.wait_for("already_in_channel error", LONG, |e| e.kind() == "error");
    assert_eq!(err.str("reason"), "already_in_channel", "{:?}", err.json);
    let state = second.wait_state("disconnected", LONG);
    assert!(!state.str("reason").is_empty(), "a reason is given");
    second.say("quit");
    assert!(second.wait_exit(LONG).success());

    // The first alice never left: bob still hears her and saw no leave.
    std::thread::sleep(Duration::from_secs(1));
    bob.drain();
    assert!(
        !bob.seen
            .iter()
            .any(|e| e.kind() == "presence" && e.str("op") == "leave"),
        "first session disturbed"
    );
    assert!(bob.terminate().success());
    assert!(alice.terminate().success());
    let heard = read_wav(&wav);
    let share = tone_share(tail(&heard, 1.0), 48_000, 440.0);
    assert!(share > 0.8, "bob hears alice's 440 Hz: share {share}");
}

#[test]
fn switching_channels_tears_down_the_old_peers() {
    let server = Server::start();
    let dir = TempDir::new("switch");
    let wav = dir.path("bob.wav");
    let out = format!("wav:{}", wav.display());
    let mut bob = Client::start(
        &server.url(),
        "bob",
        &["--join", "General", "--audio-out", &out],
    );
    let mut carol = Client::start(&server.url(), "carol", &["--join", "Gaming"]);
    let mut alice = Client::start(
        &server.url(),
        "alice",
        &[
            "--join",
            "General",
            "--audio-in",
            "tone:440",
            "--script",
            "-",
        ],
    );
    bob.wait_audio("alice", LONG);
    alice.wait_peer_connected("bob", LONG);

    alice.say("join Gaming");
    // The old channel's peer is closed on both sides; the new one connects.
    alice.wait_for("bob closed", LONG, |e| {
        e.kind() == "peer" && e.str("user") == "bob" && e.str("state") == "closed"
    });
    bob.wait_for("alice closed", LONG, |e| {
        e.kind() == "peer" && e.str("user") == "alice" && e.str("state") == "closed"
    });
    carol.wait_audio("alice", LONG);
    let state = alice.wait_for("connected to Gaming", LONG, |e| {
        e.kind() == "state" && e.str("state") == "connected" && e.str("channel") == "Gaming"
    });
    assert_eq!(state.json["channel_id"], 2);

    // Bob no longer hears alice.
    std::thread::sleep(Duration::from_millis(1500));
    assert!(bob.terminate().success());
    let heard = read_wav(&wav);
    assert!(
        rms(tail(&heard, 1.0)) < 0.005,
        "old channel still hears the switcher"
    );
    alice.say("quit");
    assert!(alice.wait_exit(LONG).success());
    assert!(carol.terminate().success());
}
