//! The headless contract other people's scripts rely on: exit statuses, JSON lines, and bad
//! input from a server answered with an error event, never a panic.

mod support;

use std::io::Write;
use std::net::TcpListener;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use support::{BIN, Client, LONG, Server, TempDir};
use tokio_tungstenite::tungstenite::Message;

fn run(args: &[&str]) -> std::process::Output {
    std::process::Command::new(BIN)
        .arg("headless")
        .args(args)
        .output()
        .expect("run cromulent headless")
}

#[test]
fn bad_usage_exits_2_with_a_message() {
    let dir = TempDir::new("usage");
    let bad_script = dir.path("bad.txt");
    std::fs::File::create(&bad_script)
        .unwrap()
        .write_all(b"join General\nfly to the moon\n")
        .unwrap();
    let cases: Vec<(Vec<String>, &str)> = vec![
        (vec!["--user".into(), "a".into()], "--server"),
        (
            vec![
                "--server".into(),
                "ws://127.0.0.1:9".into(),
                "--user".into(),
                "a".into(),
                "--audio-in".into(),
                "tone:abc".into(),
            ],
            "tone",
        ),
        (
            vec![
                "--server".into(),
                "ws://127.0.0.1:9".into(),
                "--user".into(),
                "a".into(),
                "--talk".into(),
                "loud".into(),
            ],
            "talk",
        ),
        (
            vec![
                "--server".into(),
                "ws://127.0.0.1:9".into(),
                "--user".into(),
                "a".into(),
                "--script".into(),
                bad_script.display().to_string(),
            ],
            "line 2",
        ),
        (
            vec![
                "--server".into(),
                "ws://127.0.0.1:9".into(),
                "--user".into(),
                "a".into(),
                "--audio-in".into(),
                format!("wav:{}", dir.path("missing.wav").display()),
            ],
            "missing.wav",
        ),
    ];
    for (args, needle) in cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = run(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(needle),
            "{args:?}: stderr lacks {needle:?}: {err}"
        );
    }
}

#[test]
fn a_wait_that_times_out_exits_1_with_an_error_event() {
    let server = Server::start();
    let dir = TempDir::new("wait");
    let script = dir.path("s.txt");
    std::fs::write(
        &script,
        "join General\nwait connected 5\nwait peer nobody 0.5\n",
    )
    .unwrap();
    let mut c = Client::start(
        &server.url(),
        "alice",
        &["--script", script.to_str().unwrap()],
    );
    let status = c.wait_exit(LONG);
    assert_eq!(status.code(), Some(1));
    let err = c.wait_for("wait_timeout", LONG, |e| e.kind() == "error");
    assert_eq!(err.str("reason"), "wait_timeout");
}

#[test]
fn a_timed_run_leaves_and_exits_0() {
    let server = Server::start();
    let mut c = Client::start(&server.url(), "alice", &["--join", "Echo", "--for", "1.5"]);
    let status = c.wait_exit(LONG);
    assert!(status.success(), "{}", c.stderr());
    let states: Vec<String> = c
        .events("state")
        .iter()
        .map(|e| e.str("state").to_owned())
        .collect();
    assert_eq!(states, ["connecting", "connected", "none"]);
    assert!(c.stderr().is_empty() || !c.stderr().contains("panicked"));
}

/// A fake server: accepts one WebSocket, then does `behave`.
fn fake_server<F, Fut>(behave: F) -> (String, std::thread::JoinHandle<()>)
where
    F: FnOnce(tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()>,
{
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("ws://{}", listener.local_addr().unwrap());
    listener.set_nonblocking(true).unwrap();
    let handle = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            let (stream, _) = tokio::time::timeout(Duration::from_secs(10), listener.accept())
                .await
                .expect("client connects")
                .unwrap();
            let ws = tokio_tungstenite::accept_async(stream).await.unwrap();
            behave(ws).await;
        });
    });
    (url, handle)
}

#[test]
fn a_server_sending_garbage_gives_error_events_not_a_panic() {
    let (url, server) = fake_server(|mut ws| async move {
        let _hello = ws.next().await;
        for junk in ["{not json", "[1,2,3]", "{\"type\":\"welcome\"}", "\u{0}"] {
            ws.send(Message::text(junk)).await.unwrap();
        }
        ws.send(Message::binary(vec![0u8, 1, 2])).await.unwrap();
        tokio::time::sleep(Duration::from_millis(500)).await;
    });
    let mut c = Client::start(&url, "alice", &["--join", "General", "--for", "3"]);
    let err = c.wait_for("bad_frame error", LONG, |e| {
        e.kind() == "error" && e.str("reason") == "bad_frame"
    });
    assert!(err.str("message").contains("invalid"), "{:?}", err.json);
    let status = c.wait_exit(LONG);
    assert!(status.success(), "no panic, clean exit: {}", c.stderr());
    assert!(!c.stderr().contains("panicked"));
    server.join().unwrap();
}

#[test]
fn a_server_closing_mid_handshake_gives_an_error_event_and_a_retry() {
    let (url, server) = fake_server(|mut ws| async move {
        let _hello = ws.next().await;
        drop(ws);
    });
    let mut c = Client::start(&url, "alice", &["--join", "General", "--for", "2"]);
    let err = c.wait_for("signaling_lost error", LONG, |e| {
        e.kind() == "error" && e.str("reason") == "signaling_lost"
    });
    assert!(err.str("message").contains("retrying"), "{:?}", err.json);
    assert!(c.wait_exit(LONG).success(), "{}", c.stderr());
    assert!(!c.stderr().contains("panicked"));
    server.join().unwrap();
}

#[test]
fn an_unreachable_server_is_reported_and_retried() {
    let port = support::free_port();
    let mut c = Client::start(
        &format!("ws://127.0.0.1:{port}"),
        "alice",
        &["--join", "General", "--for", "2"],
    );
    let err = c.wait_for("signaling_lost", LONG, |e| {
        e.kind() == "error" && e.str("reason") == "signaling_lost"
    });
    assert!(err.str("message").contains("unreachable"), "{:?}", err.json);
    assert!(c.wait_exit(LONG).success());
}
