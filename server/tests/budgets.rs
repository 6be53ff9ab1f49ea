//! Connection budgets (issue 16, defect 4): connections that have not said `hello` have a
//! budget of their own (in total and per source address) and never hold the authenticated cap;
//! one deadline runs from TCP accept to `hello`; authenticated connections per address are
//! capped too. Source addresses are loopback aliases (127.0.0.0/8).

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use cromulent_protocol::{ClientMsg, ErrorReason, ServerMsg};
use cromulent_server::config::Config;
use cromulent_test_support::ws::{Client, TestServer, WAIT, tcp_from};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

fn ip(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, last))
}

/// True if the server closes `stream` (EOF or reset) within `wait`.
async fn closed_within(stream: &mut TcpStream, wait: Duration) -> bool {
    let mut buf = [0u8; 256];
    loop {
        match tokio::time::timeout(wait, stream.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => {}
        }
    }
}

async fn seated(url: &str, name: &str) -> Client {
    let mut c = Client::connect(url, name).await;
    c.send(&ClientMsg::Join { channel: 1 }).await;
    let m = c.expect_joined().await;
    assert!(matches!(m, ServerMsg::Joined { .. }), "{name}: {m:?}");
    c
}

#[tokio::test]
async fn half_open_connections_cannot_lock_real_users_out() {
    let mut config = Config::default();
    config.server.max_connections = 2;
    config.server.max_unauthenticated = 16;
    config.server.max_unauthenticated_per_address = 8;
    let server = TestServer::start(config).await;
    // 40 connections from one address that never start the WebSocket handshake.
    let mut flood = Vec::new();
    for _ in 0..40 {
        flood.push(tcp_from(server.addr, ip(2), None).await);
    }
    // Those past the per-address budget are closed at once; 8 are held.
    let mut closed = 0;
    for s in &mut flood {
        if closed_within(s, Duration::from_millis(200)).await {
            closed += 1;
        }
    }
    assert_eq!(closed, 32, "all but the per-address budget are closed");
    // Real users still connect and join: half-open connections hold no authenticated place.
    let _alice = seated(&server.url(), "alice").await;
    let _bob = seated(&server.url(), "bob").await;
    server.stop().await;
}

#[tokio::test]
async fn authenticated_connections_per_address_are_capped() {
    let mut config = Config::default();
    config.server.max_connections_per_address = 2;
    let server = TestServer::start(config).await;
    let url = server.url();
    let mut held = Vec::new();
    for name in ["a1", "a2"] {
        let s = tcp_from(server.addr, ip(5), None).await;
        held.push(Client::raw_over(&url, s).await.hello(name).await);
    }
    let s = tcp_from(server.addr, ip(5), None).await;
    let mut third = Client::raw_over(&url, s).await;
    third.send_hello("a3").await;
    third.expect_error(ErrorReason::ServerFull).await;
    assert!(third.closed().await);
    // Another address is not affected, and a place freed is a place again.
    let s = tcp_from(server.addr, ip(6), None).await;
    let _b = Client::raw_over(&url, s).await.hello("b1").await;
    drop(held.pop());
    let s = tcp_from(server.addr, ip(5), None).await;
    let mut retry = Client::raw_over(&url, s).await;
    let deadline = tokio::time::Instant::now() + WAIT;
    // The server notices the dropped connection asynchronously; retry until it has.
    loop {
        retry.send_hello("a3").await;
        match retry.recv().await {
            ServerMsg::Welcome { .. } => break,
            m => {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "never admitted: {m:?}"
                );
                let s = tcp_from(server.addr, ip(5), None).await;
                retry = Client::raw_over(&url, s).await;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    server.stop().await;
}

#[tokio::test]
async fn one_deadline_runs_from_accept_to_hello() {
    let mut config = Config::default();
    config.heartbeat.hello_timeout_ms = 2_000;
    let server = TestServer::start(config).await;
    let start = tokio::time::Instant::now();
    let stream = tcp_from(server.addr, ip(1), None).await;
    // A slow handshake eats into the hello deadline instead of restarting it.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let mut c = Client::raw_over(&server.url(), stream).await;
    c.expect_error(ErrorReason::NotAuthenticated).await;
    assert!(c.closed().await);
    let lived = start.elapsed();
    assert!(
        lived < Duration::from_millis(3_000),
        "closed {lived:?} after connecting: the deadline is 2 s from accept (3.5 s if the \
         handshake restarted it)"
    );
    server.stop().await;
}
