//! A peer that drops mid-call is noticed, reported, and brought back with an ICE restart
//! (Cromulent only logged it and kept saying "connected").

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use support::{Client, LONG, Server};

fn signal(pid: u32, sig: &str) {
    assert!(
        Command::new("kill")
            .args([sig, &pid.to_string()])
            .status()
            .unwrap()
            .success()
    );
}

/// Resumes a stopped process even if the test fails half-way.
struct Continue(u32);

impl Drop for Continue {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-CONT", &self.0.to_string()])
            .status();
    }
}

#[test]
fn a_frozen_peer_is_reported_failed_and_restarted_when_it_returns() {
    let server = Server::start();
    // alice sorts first, so alice makes the offers, including the restart.
    let mut alice = Client::start(
        &server.url(),
        "alice",
        &["--join", "General", "--audio-in", "tone:440"],
    );
    let mut bob = Client::start(
        &server.url(),
        "bob",
        &["--join", "General", "--audio-in", "tone:660"],
    );
    alice.wait_audio("bob", LONG);
    bob.wait_audio("alice", LONG);
    let mark = alice.mark();

    // Freeze bob: no packets, no answers (its signaling socket stays open, so the server
    // keeps it seated: this is a path failure, not a leave).
    let frozen = Continue(bob.pid());
    signal(bob.pid(), "-STOP");
    let started = Instant::now();
    alice.wait_after(mark, "peer bob disconnected", LONG, |e| {
        e.kind() == "peer" && e.str("user") == "bob" && e.str("state") == "disconnected"
    });
    alice.wait_after(mark, "peer bob failed", Duration::from_secs(30), |e| {
        e.kind() == "peer" && e.str("user") == "bob" && e.str("state") == "failed"
    });
    let failed_after = started.elapsed();
    // webrtc declares failure after its disconnected + failed timeouts (3 s + 7 s); allow for a
    // loaded machine.
    assert!(
        failed_after < Duration::from_secs(30),
        "failure noticed in {failed_after:?}"
    );
    // With bob as the only peer, the status line says so.
    alice.wait_after(mark, "state disconnected", LONG, |e| {
        e.kind() == "state"
            && e.str("state") == "disconnected"
            && e.str("reason").contains("no route")
    });

    // Bob comes back: alice's restart offer (queued at the server) gets through.
    drop(frozen);
    let back = alice.mark();
    alice.wait_after(back, "peer bob connected again", LONG, |e| {
        e.kind() == "peer" && e.str("user") == "bob" && e.str("state") == "connected"
    });
    alice.wait_after(back, "state connected again", LONG, |e| {
        e.kind() == "state" && e.str("state") == "connected"
    });
    assert!(alice.terminate().success());
    assert!(bob.terminate().success());
}
