//! No ghosts, no refusal on refresh: heartbeat timeout, the application-level ping, resume
//! within and after the grace window, and a refresh while the old connection is still open.

use std::time::Duration;

use cromulent_protocol::{ClientMsg, ErrorReason, PresenceOp, ServerMsg};
use cromulent_server::config::Config;
use cromulent_test_support::ws::{Client, TestServer};

fn short_timeouts() -> Config {
    let mut c = Config::default();
    c.heartbeat.ping_interval_ms = 100;
    c.heartbeat.timeout_ms = 500;
    c.session.resume_grace_ms = 1_000;
    c
}

fn is_change(m: &ServerMsg, op: PresenceOp, user: &str) -> bool {
    matches!(m, ServerMsg::Presence { changes } if changes.iter().any(|c| c.op == op && c.member.user == user))
}

#[tokio::test]
async fn silent_connection_is_dropped_and_its_presence_removed() {
    let server = TestServer::start(short_timeouts()).await;
    let mut watcher = Client::connect(&server.url(), "watcher").await;
    let mut ghost = Client::connect(&server.url(), "ghost").await;
    ghost.send(&ClientMsg::Join { channel: 1 }).await;
    ghost.expect_joined().await;
    watcher
        .recv_until(|m| is_change(m, PresenceOp::Join, "ghost"))
        .await;

    // `ghost` now stops reading (so it never answers pings); `watcher` keeps reading.
    let started = std::time::Instant::now();
    watcher
        .recv_until(|m| is_change(m, PresenceOp::Leave, "ghost"))
        .await;
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(400),
        "dropped too early: {waited:?}"
    );

    // The reading client answered every ping and is still here, three timeouts later.
    assert!(watcher.quiet_for(Duration::from_millis(1500)).await.is_ok());
    watcher.send(&ClientMsg::Join { channel: 1 }).await;
    assert!(matches!(
        watcher.expect_joined().await,
        ServerMsg::Joined { .. }
    ));
    drop(ghost);
    server.stop().await;
}

#[tokio::test]
async fn a_ping_is_answered_with_its_id_for_clients_that_cannot_see_websocket_pings() {
    let server = TestServer::default().await;
    let mut page = Client::connect(&server.url(), "page").await;
    for id in [42, 43] {
        page.send(&ClientMsg::Ping { id }).await;
        let pong = page
            .recv_until(|m| matches!(m, ServerMsg::Pong { .. }))
            .await;
        assert_eq!(pong, ServerMsg::Pong { id });
    }
    // Without an id: 0.
    page.send_text(r#"{"type":"ping"}"#).await;
    let pong = page
        .recv_until(|m| matches!(m, ServerMsg::Pong { .. }))
        .await;
    assert_eq!(pong, ServerMsg::Pong { id: 0 });
    server.stop().await;
}

#[tokio::test]
async fn refresh_with_resume_token_takes_the_seat_back_while_old_connection_is_open() {
    let server = TestServer::default().await;
    let mut bob = Client::connect(&server.url(), "bob").await;
    let mut old = Client::connect(&server.url(), "alice").await;
    old.send(&ClientMsg::Join { channel: 1 }).await;
    old.expect_joined().await;
    bob.recv_until(|m| is_change(m, PresenceOp::Join, "alice"))
        .await;

    // Cromulent's defect: a refresh without resume was refused until the old entry timed out.
    let mut refused = Client::connect(&server.url(), "alice").await;
    refused.send(&ClientMsg::Join { channel: 1 }).await;
    refused.expect_error(ErrorReason::AlreadyInChannel).await;

    let mut new = Client::hello_with(
        &server.url(),
        Some("alice"),
        None,
        Some(&old.resume_token()),
    )
    .await;
    assert!(matches!(
        new.welcome,
        Some(ServerMsg::Welcome { resumed: true, .. })
    ));
    let j = new.expect_joined().await;
    assert!(matches!(j, ServerMsg::Joined { channel: 1, .. }), "{j:?}");
    // The old connection is told why and closed.
    old.expect_error(ErrorReason::SessionReplaced).await;
    assert!(old.closed().await);
    // Bob sees an update (new instance), never a leave.
    let m = bob
        .recv_until(|m| matches!(m, ServerMsg::Presence { .. }))
        .await;
    assert!(is_change(&m, PresenceOp::Update, "alice"), "{m:?}");
    assert!(bob.quiet_for(Duration::from_millis(300)).await.is_ok());
    server.stop().await;
}

#[tokio::test]
async fn resume_within_grace_after_the_connection_dropped() {
    let server = TestServer::start(short_timeouts()).await;
    let mut bob = Client::connect(&server.url(), "bob").await;
    let mut alice = Client::connect(&server.url(), "alice").await;
    alice.send(&ClientMsg::Join { channel: 2 }).await;
    alice.expect_joined().await;
    let token = alice.resume_token();
    drop(alice);
    // No ghost: the seat is released as soon as the connection is gone.
    bob.recv_until(|m| is_change(m, PresenceOp::Leave, "alice"))
        .await;

    let mut back = Client::hello_with(&server.url(), Some("alice"), None, Some(&token)).await;
    assert!(matches!(
        back.welcome,
        Some(ServerMsg::Welcome { resumed: true, .. })
    ));
    assert!(matches!(
        back.expect_joined().await,
        ServerMsg::Joined { channel: 2, .. }
    ));
    bob.recv_until(|m| is_change(m, PresenceOp::Join, "alice"))
        .await;
    server.stop().await;
}

#[tokio::test]
async fn resume_after_grace_is_refused() {
    let server = TestServer::start(short_timeouts()).await;
    let mut alice = Client::connect(&server.url(), "alice").await;
    alice.send(&ClientMsg::Join { channel: 2 }).await;
    alice.expect_joined().await;
    let token = alice.resume_token();
    drop(alice);
    tokio::time::sleep(Duration::from_millis(1_600)).await;

    let mut late = Client::hello_with(&server.url(), Some("alice"), None, Some(&token)).await;
    assert!(matches!(
        late.welcome,
        Some(ServerMsg::Welcome { resumed: false, .. })
    ));
    late.expect_error(ErrorReason::ResumeExpired).await;
    let Some(ServerMsg::Welcome { channels, .. }) = &late.welcome else {
        unreachable!()
    };
    assert!(
        channels.iter().all(|c| c.members.is_empty()),
        "no seat taken back"
    );
    server.stop().await;
}

#[tokio::test]
async fn shutdown_tells_clients_and_finishes() {
    let server = TestServer::default().await;
    let mut alice = Client::connect(&server.url(), "alice").await;
    server.stop().await;
    alice.expect_error(ErrorReason::ServerShutdown).await;
    assert!(alice.closed().await);
}
