//! Chat from scripts (issue 18): `say TEXT` posts to the channel the client sits in, and every
//! client that follows it prints a `message` event (JSON lines), so bots can chat. Real
//! `cromulent headless` processes against the real server.

mod support;

use support::{Client, LONG, Server};

#[test]
fn two_headless_clients_chat_in_their_channel() {
    let server = Server::start();
    let mut alice = Client::start(
        &server.url(),
        "alice",
        &["--join", "General", "--script", "-"],
    );
    let mut bob = Client::start(
        &server.url(),
        "bob",
        &["--join", "General", "--script", "-"],
    );
    alice.wait_state("connected", LONG);
    bob.wait_state("connected", LONG);
    // A `#` in the text is text, not a script comment.
    alice.say("say issue #18: can you hear me? 👋");
    let got = bob.wait_for("alice's message", LONG, |e| e.kind() == "message");
    assert_eq!(got.str("user"), "alice");
    assert_eq!(got.str("channel"), "General");
    assert_eq!(got.str("text"), "issue #18: can you hear me? 👋");
    let first_id = got.json["id"].as_u64().unwrap();
    // The sender gets its own message back, with the same id.
    let echo = alice.wait_for("its own message", LONG, |e| e.kind() == "message");
    assert_eq!(echo.json["id"].as_u64(), Some(first_id));

    let mark = alice.mark();
    bob.say("say loud and clear");
    let reply = alice.wait_after(mark, "bob's reply", LONG, |e| {
        e.kind() == "message" && e.str("user") == "bob"
    });
    assert_eq!(reply.str("text"), "loud and clear");
    assert!(reply.json["id"].as_u64().unwrap() > first_id);

    // Refused text is an `error` event with the server's reason, and nothing is sent.
    alice.say("say \u{1b}]0;owned\u{7}");
    let err = alice.wait_for("the refusal", LONG, |e| e.kind() == "error");
    assert_eq!(err.str("reason"), "invalid_text");
    alice.say("quit");
    bob.say("quit");
    assert!(alice.wait_exit(LONG).success());
    assert!(bob.wait_exit(LONG).success());
}
