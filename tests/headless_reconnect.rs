//! Kill the server mid-call: both clients report `disconnected`; after a restart they
//! reconnect, rejoin and hear each other again without any command.

mod support;

use std::time::Duration;

use support::{Client, LONG, Server, free_port};

#[test]
fn clients_survive_a_server_restart_and_hear_each_other_again() {
    let port = free_port();
    let server = Server::start_with(port, &[], &[]);
    let url = server.url();
    let mut alice = Client::start(
        &url,
        "alice",
        &["--join", "General", "--audio-in", "tone:440"],
    );
    let mut bob = Client::start(
        &url,
        "bob",
        &["--join", "General", "--audio-in", "tone:660"],
    );
    alice.wait_audio("bob", LONG);
    bob.wait_audio("alice", LONG);

    let marks = [alice.mark(), bob.mark()];
    server.kill();
    for (c, mark) in [(&mut alice, marks[0]), (&mut bob, marks[1])] {
        let s = c.wait_after(mark, "state disconnected", LONG, |e| {
            e.kind() == "state" && e.str("state") == "disconnected"
        });
        assert!(!s.str("reason").is_empty());
    }
    let marks = [alice.mark(), bob.mark()];
    // Down for a moment (clients retry with backoff meanwhile), then back on the same port.
    std::thread::sleep(Duration::from_millis(700));
    let _server = Server::start_with(port, &[], &[]);
    for (c, other, mark) in [(&mut alice, "bob", marks[0]), (&mut bob, "alice", marks[1])] {
        c.wait_after(mark, "state connecting", LONG, |e| {
            e.kind() == "state" && e.str("state") == "connecting"
        });
        c.wait_after(mark, "state connected", LONG, |e| {
            e.kind() == "state" && e.str("state") == "connected"
        });
        let other = other.to_owned();
        c.wait_after(mark, "audio again", LONG, move |e| {
            e.kind() == "audio" && e.str("from") == other
        });
    }
    assert!(alice.terminate().success());
    assert!(bob.terminate().success());
}
