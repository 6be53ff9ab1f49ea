//! Text chat (issue 18) against the real server over real WebSockets: who gets a message,
//! history pages, the history in a real SQLite file across a restart (and 10,000 messages paged
//! through), the limits and their error reasons, and a database that cannot be used stopping
//! the server at start with a clear error.

use std::process::Command;
use std::time::Duration;

use cromulent_protocol::{ChatMessage, ClientMsg, ErrorReason, MessageId, ServerMsg};
use cromulent_server::chat_store::{Location, Retention, Store};
use cromulent_server::config::Config;
use cromulent_test_support::process::{KillOnDrop, TempDir, wait_exit};
use cromulent_test_support::ws::{Client, TestServer};

const QUIET: Duration = Duration::from_millis(300);

fn config_with_db(path: &std::path::Path) -> Config {
    let mut c = Config::default();
    c.chat.database = Some(path.display().to_string());
    c
}

fn say(channel: u32, text: &str) -> ClientMsg {
    ClientMsg::Say {
        channel,
        text: text.into(),
    }
}

async fn next_message(c: &mut Client) -> ChatMessage {
    match c
        .recv_until(|m| matches!(m, ServerMsg::Message { .. }))
        .await
    {
        ServerMsg::Message { message } => message,
        _ => unreachable!(),
    }
}

async fn history(
    c: &mut Client,
    channel: u32,
    before: Option<MessageId>,
    limit: Option<u32>,
) -> (Vec<ChatMessage>, bool) {
    c.send(&ClientMsg::History {
        channel,
        before,
        limit,
    })
    .await;
    match c
        .recv_until(|m| matches!(m, ServerMsg::History { .. }))
        .await
    {
        ServerMsg::History {
            channel: ch,
            messages,
            more,
        } => {
            assert_eq!(ch, channel);
            (messages, more)
        }
        _ => unreachable!(),
    }
}

fn no_message(msgs: &[ServerMsg]) -> bool {
    !msgs.iter().any(|m| matches!(m, ServerMsg::Message { .. }))
}

#[tokio::test]
async fn two_clients_chat_and_only_the_channel_s_followers_hear_it() {
    let server = TestServer::default().await;
    let mut alice = Client::connect(&server.url(), "alice").await;
    let mut bob = Client::connect(&server.url(), "bob").await;
    let mut carol = Client::connect(&server.url(), "carol").await;
    let mut dave = Client::connect(&server.url(), "dave").await;
    alice.send(&ClientMsg::Join { channel: 1 }).await;
    alice.expect_joined().await;
    bob.send(&ClientMsg::Join { channel: 1 }).await;
    bob.expect_joined().await;
    carol.send(&ClientMsg::Join { channel: 2 }).await;
    carol.expect_joined().await;
    dave.send(&ClientMsg::Watch { channel: Some(1) }).await;

    alice.send(&say(1, "can you hear me?")).await;
    let to_bob = next_message(&mut bob).await;
    let to_alice = next_message(&mut alice).await;
    let to_dave = next_message(&mut dave).await;
    assert_eq!(to_bob, to_alice);
    assert_eq!(to_bob, to_dave);
    assert_eq!(
        (
            to_bob.channel,
            to_bob.user.as_str(),
            to_bob.name.as_str(),
            to_bob.text.as_str()
        ),
        (1, "alice", "alice", "can you hear me?")
    );
    bob.send(&say(1, "loud and clear")).await;
    let reply = next_message(&mut alice).await;
    assert!(reply.id > to_bob.id && reply.time >= to_bob.time);
    assert!(
        no_message(&carol.drain_for(QUIET).await),
        "carol sits elsewhere and watches nothing"
    );

    // Everyone may read any channel's history, oldest first.
    let (page, more) = history(&mut carol, 1, None, None).await;
    assert_eq!(page, vec![to_bob.clone(), reply.clone()]);
    assert!(!more);
    server.stop().await;
}

#[tokio::test]
async fn limits_get_their_reasons_and_the_connection_stays() {
    let server = TestServer::default().await;
    let mut alice = Client::connect(&server.url(), "alice").await;
    let too_long = "x".repeat(2001);
    for (msg, reason) in [
        (say(1, "\u{1b}]0;owned\u{7}"), ErrorReason::InvalidText),
        (say(1, "\u{1b}[2J"), ErrorReason::InvalidText),
        (say(1, "\u{1b}]52;c;aGk=\u{7}"), ErrorReason::InvalidText),
        (say(1, "abc\u{202e}cba"), ErrorReason::InvalidText),
        (say(1, " \n "), ErrorReason::InvalidText),
        (say(1, &too_long), ErrorReason::TextTooLong),
        (say(9, "hi"), ErrorReason::NotFound),
        (ClientMsg::Watch { channel: Some(9) }, ErrorReason::NotFound),
        (
            ClientMsg::History {
                channel: 9,
                before: None,
                limit: None,
            },
            ErrorReason::NotFound,
        ),
    ] {
        alice.send(&msg).await;
        match alice.expect_error(reason).await {
            ServerMsg::Error { message, .. } => assert!(!message.is_empty()),
            _ => unreachable!(),
        }
    }
    // Two thousand characters exactly, wide ones included, are fine.
    let ok = "é".repeat(1999) + "👋";
    alice.send(&say(1, &ok)).await;
    assert_eq!(next_message(&mut alice).await.text, ok);
    // A field too many is the protocol's `invalid_message`.
    alice
        .send_text(r#"{"type":"say","channel":1,"text":"hi","extra":1}"#)
        .await;
    alice.expect_error(ErrorReason::InvalidMessage).await;
    server.stop().await;
}

#[tokio::test]
async fn chat_has_a_rate_of_its_own_and_every_refused_line_is_answered() {
    let mut config = Config::default();
    config.chat.messages_per_second = 1;
    config.chat.burst = 3;
    let server = TestServer::start(config).await;
    let mut alice = Client::connect(&server.url(), "alice").await;
    for i in 0..6 {
        alice.send(&say(1, &format!("line {i}"))).await;
    }
    // Within the second: the burst goes out, each of the other three is refused, by channel.
    let (mut sent, mut refused) = (Vec::new(), 0);
    while sent.len() + refused < 6 {
        match alice.recv().await {
            ServerMsg::Message { message } => sent.push(message.text),
            ServerMsg::Error {
                reason: ErrorReason::RateLimited,
                channel,
                message,
            } => {
                assert_eq!(channel, Some(1));
                assert!(message.contains("at most 1 messages a second"), "{message}");
                refused += 1;
            }
            _ => {}
        }
    }
    assert_eq!(sent, ["line 0", "line 1", "line 2"]);
    // The connection stays, and a second later a line goes again.
    alice.send(&ClientMsg::Ping { id: 7 }).await;
    alice
        .recv_until(|m| matches!(m, ServerMsg::Pong { id: 7 }))
        .await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    alice.send(&say(1, "later")).await;
    assert_eq!(next_message(&mut alice).await.text, "later");
    server.stop().await;
}

#[tokio::test]
async fn history_is_in_the_database_file_after_a_restart() {
    let dir = TempDir::new("chat-restart");
    let db = dir.path("data/chat.sqlite3");
    let server = TestServer::start(config_with_db(&db)).await;
    let mut alice = Client::connect(&server.url(), "alice").await;
    let mut sent = Vec::new();
    for i in 0..5 {
        alice.send(&say(1 + i % 2, &format!("message {i}"))).await;
        sent.push(next_message(&mut alice).await);
    }
    drop(alice);
    server.stop().await;
    assert!(db.is_file(), "one file on disk");

    let server = TestServer::start(config_with_db(&db)).await;
    let mut bob = Client::connect(&server.url(), "bob").await;
    let (general, more) = history(&mut bob, 1, None, None).await;
    let want: Vec<_> = sent.iter().filter(|m| m.channel == 1).cloned().collect();
    assert_eq!((general, more), (want, false));
    // New messages continue the ids.
    bob.send(&say(1, "after the restart")).await;
    let next = next_message(&mut bob).await;
    assert!(next.id > sent.last().unwrap().id, "{next:?}");
    server.stop().await;
}

#[tokio::test]
async fn ten_thousand_messages_page_back_to_the_first() {
    let dir = TempDir::new("chat-pages");
    let db = dir.path("chat.sqlite3");
    {
        let mut store = Store::open(&Location::File(db.clone()), Retention::default()).unwrap();
        let messages: Vec<ChatMessage> = (1..=10_000)
            .map(|id| ChatMessage {
                id,
                channel: 1,
                user: "seed".into(),
                name: "Seed".into(),
                time: id,
                text: format!("#{id}"),
            })
            .collect();
        store.insert(&messages).unwrap();
    }
    let server = TestServer::start(config_with_db(&db)).await;
    let mut c = Client::connect(&server.url(), "reader").await;
    let mut before = None;
    let mut seen: Vec<MessageId> = Vec::new();
    let mut pages = 0;
    loop {
        let (page, more) = history(&mut c, 1, before, Some(100)).await;
        pages += 1;
        assert!(page.len() <= 100);
        assert!(page.windows(2).all(|w| w[0].id < w[1].id), "oldest first");
        let mut ids: Vec<_> = page.iter().map(|m| m.id).collect();
        ids.extend(seen);
        seen = ids;
        before = page.first().map(|m| m.id);
        if !more {
            break;
        }
    }
    assert_eq!(pages, 100);
    assert_eq!(
        seen,
        (1..=10_000).collect::<Vec<_>>(),
        "every message, once, in order"
    );
    // The next message takes the next id.
    c.send(&say(1, "and one more")).await;
    assert_eq!(next_message(&mut c).await.id, 10_001);
    server.stop().await;
}

/// `cromulent-server` with `CROMULENT_CHAT_DB=db`: it must exit at start (within a bound: a
/// server that starts anyway is killed and fails the test); its stderr.
fn server_refusing(db: &str) -> String {
    let dir = TempDir::new("chat-refusing");
    let log = dir.path("stderr.log");
    let mut child = KillOnDrop::spawn(
        Command::new(env!("CARGO_BIN_EXE_cromulent-server"))
            .args(["--listen", "127.0.0.1:0"])
            .env("CROMULENT_CHAT_DB", db)
            .env("RUST_LOG", "error")
            .env("RUST_BACKTRACE", "0")
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap()),
        "cromulent-server",
    );
    // A locked file is retried for SQLite's 5 s busy timeout first.
    let status = wait_exit(&mut child, Duration::from_secs(20));
    let stderr = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        status.is_some_and(|s| !s.success()),
        "the server must refuse to start: {status:?}\n{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    stderr
}

#[tokio::test]
async fn a_database_that_cannot_be_used_stops_the_server_at_start_with_a_clear_error() {
    let dir = TempDir::new("chat-bad-db");
    // A directory where the file should be (inside the temporary directory, so the lock file
    // beside it goes with it).
    let directory = dir.path("a-directory");
    std::fs::create_dir(&directory).unwrap();
    let err = server_refusing(directory.to_str().unwrap());
    assert!(err.contains("cannot open the chat database"), "{err}");
    // Not a database.
    let junk = dir.path("junk.sqlite3");
    std::fs::write(&junk, vec![b'x'; 4096]).unwrap();
    let err = server_refusing(junk.to_str().unwrap());
    assert!(err.contains("damaged or not a database"), "{err}");
    // In use by another server (connected to, so its store is surely open).
    let shared = dir.path("shared.sqlite3");
    let first = TestServer::start(config_with_db(&shared)).await;
    drop(Client::connect(&first.url(), "someone").await);
    let path = shared.to_str().unwrap().to_owned();
    let err = tokio::task::spawn_blocking(move || server_refusing(&path))
        .await
        .unwrap();
    assert!(err.contains("another cromulent-server"), "{err}");
    first.stop().await;
}
