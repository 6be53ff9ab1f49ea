//! Bad input never crashes anything: each case gets an error with its reason, the
//! connection (where the case is not fatal) keeps working, and other clients never notice.

use std::time::Duration;

use cromulent_protocol::{ClientMsg, ErrorReason, PROTOCOL_VERSION, PresenceOp, ServerMsg};
use cromulent_server::config::Config;
use cromulent_test_support::ws::{Client, TestServer};
use futures_util::SinkExt;
use tokio_tungstenite::tungstenite::Message;

/// The connection still works: a join is answered.
async fn still_works(c: &mut Client, channel: u32) {
    c.send(&ClientMsg::Join { channel }).await;
    let m = c.expect_joined().await;
    assert!(matches!(m, ServerMsg::Joined { .. }), "{m:?}");
}

#[tokio::test]
async fn malformed_frames_get_their_reason_and_the_connection_survives() {
    let server = TestServer::default().await;
    let mut c = Client::connect(&server.url(), "alice").await;
    let cases = [
        ("{\"type\": \"join\", ", ErrorReason::BadJson),
        ("null", ErrorReason::InvalidMessage),
        (
            r#"{"type":"teleport","to":"mars"}"#,
            ErrorReason::UnknownType,
        ),
        (
            r#"{"type":"join","channel":"general"}"#,
            ErrorReason::InvalidMessage,
        ),
        (r#"{"type":"join"}"#, ErrorReason::InvalidMessage),
        (
            r#"{"type":"signal","to":42,"signal":{"kind":"offer","sdp":"v=0"}}"#,
            ErrorReason::InvalidMessage,
        ),
        (
            r#"{"type":"voice_state","muted":1,"deafened":false,"talking":false}"#,
            ErrorReason::InvalidMessage,
        ),
        (
            r#"{"type":"hello","protocol":1,"name":"again"}"#,
            ErrorReason::AlreadyAuthenticated,
        ),
        (r#"{"type":"leave"}"#, ErrorReason::NotInVoice),
    ];
    for (text, reason) in cases {
        c.send_text(text).await;
        let m = c.expect_error(reason).await;
        let ServerMsg::Error { message, .. } = m else {
            unreachable!()
        };
        assert!(!message.is_empty(), "{text}: a readable message");
    }
    c.ws.send(Message::binary(vec![1u8, 2, 3])).await.unwrap();
    c.expect_error(ErrorReason::BinaryNotSupported).await;
    still_works(&mut c, 1).await;
    server.stop().await;
}

#[tokio::test]
async fn oversized_frame_is_refused_and_the_connection_survives() {
    let server = TestServer::default().await;
    let mut c = Client::connect(&server.url(), "alice").await;
    let big = format!(
        r#"{{"type":"join","channel":1,"pad":"{}"}}"#,
        "x".repeat(70 * 1024)
    );
    c.send_text(&big).await;
    c.expect_error(ErrorReason::MessageTooLarge).await;
    still_works(&mut c, 1).await;
    server.stop().await;
}

#[tokio::test]
async fn enormous_frame_closes_only_that_connection() {
    let server = TestServer::default().await;
    let mut other = Client::connect(&server.url(), "bob").await;
    let mut c = Client::connect(&server.url(), "alice").await;
    let huge = "x".repeat(2 * 1024 * 1024);
    let _ = c.ws.send(Message::text(huge)).await;
    assert!(
        c.closed().await,
        "beyond the hard cap the connection is closed"
    );
    still_works(&mut other, 2).await;
    server.stop().await;
}

#[tokio::test]
async fn flood_is_rate_limited_and_nobody_else_notices() {
    let mut config = Config::default();
    config.limits.messages_per_second = 20;
    config.limits.burst = 10;
    let server = TestServer::start(config).await;
    let mut calm = Client::connect(&server.url(), "calm").await;
    let mut flooder = Client::connect(&server.url(), "flood").await;
    for _ in 0..500 {
        flooder
            .send(&ClientMsg::VoiceState {
                muted: false,
                deafened: false,
                talking: false,
            })
            .await;
    }
    flooder.expect_error(ErrorReason::RateLimited).await;
    // The calm client is served as usual meanwhile.
    still_works(&mut calm, 1).await;
    // Once the flood stops, the flooder's bucket refills and it is served again.
    tokio::time::sleep(Duration::from_millis(600)).await;
    while flooder.try_recv(Duration::from_millis(50)).await.is_some() {}
    still_works(&mut flooder, 2).await;
    server.stop().await;
}

#[tokio::test]
async fn messages_before_hello_are_refused_and_closed() {
    let server = TestServer::default().await;
    let mut c = Client::raw(&server.url()).await;
    c.send(&ClientMsg::Join { channel: 1 }).await;
    c.expect_error(ErrorReason::NotAuthenticated).await;
    assert!(c.closed().await);

    let mut c = Client::raw(&server.url()).await;
    c.send_text("garbage").await;
    c.expect_error(ErrorReason::BadJson).await;
    assert!(c.closed().await);
    server.stop().await;
}

#[tokio::test]
async fn wrong_protocol_version_and_bad_names_are_refused() {
    let server = TestServer::default().await;
    let mut c = Client::raw(&server.url()).await;
    c.send(&ClientMsg::Hello {
        protocol: PROTOCOL_VERSION + 1,
        name: Some("a".into()),
        token: None,
        resume: None,
    })
    .await;
    c.expect_error(ErrorReason::UnsupportedProtocol).await;
    assert!(c.closed().await);

    for name in [None, Some(""), Some("bad\nname"), Some(&*"n".repeat(33))] {
        let mut c = Client::raw(&server.url()).await;
        c.send(&ClientMsg::Hello {
            protocol: PROTOCOL_VERSION,
            name: name.map(Into::into),
            token: None,
            resume: None,
        })
        .await;
        c.expect_error(ErrorReason::InvalidName).await;
        assert!(c.closed().await);
    }
    server.stop().await;
}

#[tokio::test]
async fn no_hello_in_time_is_closed() {
    let mut config = Config::default();
    config.heartbeat.hello_timeout_ms = 300;
    let server = TestServer::start(config).await;
    let mut c = Client::raw(&server.url()).await;
    c.expect_error(ErrorReason::NotAuthenticated).await;
    assert!(c.closed().await);
    server.stop().await;
}

#[tokio::test]
async fn connections_over_the_limit_get_server_full() {
    let mut config = Config::default();
    config.server.max_connections = 2;
    let server = TestServer::start(config).await;
    let _a = Client::connect(&server.url(), "a").await;
    let _b = Client::connect(&server.url(), "b").await;
    // The cap counts authenticated connections: the third is refused once it says hello.
    let mut c = Client::raw(&server.url()).await;
    c.send_hello("c").await;
    c.expect_error(ErrorReason::ServerFull).await;
    assert!(c.closed().await);
    server.stop().await;
}

#[tokio::test]
async fn garbage_on_one_connection_does_not_disturb_presence_for_others() {
    let server = TestServer::default().await;
    let mut watcher = Client::connect(&server.url(), "watcher").await;
    let mut bad = Client::connect(&server.url(), "bad").await;
    for junk in ["{", "[]", "\"\"", "{\"type\":null}", "\u{0}"] {
        bad.send_text(junk).await;
    }
    let mut alice = Client::connect(&server.url(), "alice").await;
    still_works(&mut alice, 3).await;
    let m = watcher.recv().await;
    assert!(
        matches!(&m, ServerMsg::Presence { changes } if changes[0].op == PresenceOp::Join && changes[0].member.user == "alice"),
        "{m:?}"
    );
    server.stop().await;
}
