//! A peer that drops mid-call is noticed, reported, and brought back with an ICE restart
//! (Cromulent only logged it and kept saying "connected").

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use support::{Client, LONG, Server, TempDir, free_port};

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
    // The server's heartbeat would drop the frozen bob after 20 s; that is a leave, not the
    // path failure under test, so it is pushed out of the way. A frozen peer is noticed by ICE
    // 6-10 s after it stops (keepalive 4 s, disconnected 6 s), and the status line follows
    // `DOWN_LIMIT` (10 s) later.
    let dir = TempDir::new("peer-drop");
    let config = dir.path("server.toml");
    std::fs::write(
        &config,
        "[heartbeat]\nping_interval_ms = 5000\ntimeout_ms = 120000\n",
    )
    .unwrap();
    let server = Server::start_with(free_port(), &["--config", config.to_str().unwrap()], &[]);
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
    // With bob as the only peer, the status line says so once the call has been down for
    // a while (restarts are still being tried meanwhile).
    // ICE's 6-10 s plus the 10 s limit, with room for a loaded machine.
    alice.wait_after(mark, "state disconnected", Duration::from_secs(30), |e| {
        e.kind() == "state"
            && e.str("state") == "disconnected"
            && e.str("reason").contains("no route")
    });
    eprintln!(
        "frozen peer on the status line after {:?}",
        started.elapsed()
    );

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
