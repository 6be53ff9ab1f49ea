//! The coturn provider against a real coturn: what `IceProvider` hands out is accepted by a
//! real TURN allocation; a wrong secret and expired credentials are refused (each refusal
//! test first proves, on the same server, that good credentials work).
//!
//! Needs `turnserver` (Debian package `coturn`); without it these tests fail, saying so.

use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use cromulent_protocol::{IceConfig, IceServer};
use cromulent_server::config::{TurnConfig, TurnProvider};
use cromulent_server::turn::{IceProvider, coturn};
use cromulent_test_support::coturn::{Coturn, allocate};

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

fn coturn_config(turn: &Coturn, secret: &str) -> TurnConfig {
    TurnConfig {
        provider: TurnProvider::Coturn,
        secret: secret.to_owned(),
        urls: vec![turn.turn_url()],
        stun_urls: vec![turn.stun_url()],
        ..TurnConfig::default()
    }
}

/// The UDP address in a `turn:HOST:PORT[?...]` URL.
fn turn_addr(url: &str) -> SocketAddr {
    let rest = url.strip_prefix("turn:").expect("a turn: URL");
    let hostport = rest.split('?').next().unwrap_or(rest);
    hostport.parse().expect("turn URL with an IP:port")
}

fn relay_server(ice: &IceConfig) -> (&IceServer, &str, &str) {
    let server = &ice.servers[0];
    let username = server.username.as_deref().expect("TURN username");
    let credential = server.credential.as_deref().expect("TURN credential");
    (server, username, credential)
}

/// Allocation with credentials made right now with the server's secret.
async fn assert_good_credentials_work(turn: &Coturn, user: &str) {
    let creds = coturn::credentials(turn.secret(), user, 3600, unix_now());
    let relayed = allocate(turn.addr(), &creds.username, &creds.credential).await;
    assert!(relayed.is_ok(), "control allocation failed: {relayed:?}");
}

#[tokio::test]
async fn provider_credentials_are_accepted_by_real_coturn() {
    let turn = Coturn::builder().start_async().await;
    let before = unix_now();
    let ice = IceProvider::new(coturn_config(&turn, turn.secret()))
        .ice_for("alice")
        .await;

    assert_eq!(ice.servers.len(), 2, "TURN then STUN: {ice:?}");
    assert_eq!(ice.servers[1].urls, [turn.stun_url()]);
    let (server, username, credential) = relay_server(&ice);
    assert_eq!(server.urls, [turn.turn_url()]);
    let expires_at = ice.expires_at.expect("coturn credentials expire");
    assert!((before + 3600..=unix_now() + 3600).contains(&expires_at));
    assert_eq!(username, format!("{expires_at}:alice"));

    let relayed = allocate(turn_addr(&server.urls[0]), username, credential)
        .await
        .unwrap_or_else(|e| panic!("real coturn refused our credentials: {e}"));
    assert!(relayed.ip().is_loopback(), "{relayed}");
    assert!(
        turn.relay_ports().contains(&relayed.port()),
        "relayed {relayed} outside {:?}",
        turn.relay_ports()
    );
}

#[tokio::test]
async fn credentials_made_with_a_wrong_secret_are_refused() {
    let turn = Coturn::builder().start_async().await;
    assert_good_credentials_work(&turn, "alice").await;

    let ice = IceProvider::new(coturn_config(&turn, "not-the-secret"))
        .ice_for("alice")
        .await;
    let (server, username, credential) = relay_server(&ice);
    let refused = allocate(turn_addr(&server.urls[0]), username, credential).await;
    let why = refused.expect_err("coturn accepted credentials made with a wrong secret");
    assert!(
        why.to_string().contains("401"),
        "expected 401 Unauthorized, got: {why}"
    );
}

#[tokio::test]
async fn expired_credentials_are_refused() {
    let turn = Coturn::builder().start_async().await;
    assert_good_credentials_work(&turn, "alice").await;

    // Made two hours ago with a one-hour lifetime: expired an hour ago.
    let stale = coturn::credentials(turn.secret(), "alice", 3600, unix_now() - 7200);
    let refused = allocate(turn.addr(), &stale.username, &stale.credential).await;
    let why = refused.expect_err("coturn accepted expired credentials");
    assert!(
        why.to_string().contains("401"),
        "expected 401 Unauthorized, got: {why}"
    );
}

/// coturn answers 400 to raw usernames with spaces, quotes, backslashes or tabs; display
/// names have them, so the provider encodes the user id. Every one of these must work.
#[tokio::test]
async fn user_ids_coturn_would_reject_raw_are_accepted() {
    let turn = Coturn::builder().start_async().await;
    let provider = IceProvider::new(coturn_config(&turn, turn.secret()));
    let users = [
        "Bob Smith",
        "o'brien \"q\" back\\slash\ttab",
        "bob:the:builder",
        "zoë 🎧 日本",
        "50%",
    ];
    for user in users {
        let ice = provider.ice_for(user).await;
        let (server, username, credential) = relay_server(&ice);
        let relayed = allocate(turn_addr(&server.urls[0]), username, credential).await;
        assert!(
            relayed.is_ok(),
            "user {user:?} as {username:?}: {relayed:?}"
        );
    }
}

#[tokio::test]
async fn harness_kills_coturn_and_cleans_up_on_drop() {
    let turn = Coturn::builder().start_async().await;
    let (pid, dir, addr) = (turn.pid(), turn.dir().to_owned(), turn.addr());
    assert!(Path::new(&format!("/proc/{pid}")).exists());
    assert!(dir.join("pid").exists(), "coturn wrote its pidfile");
    drop(turn);
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists(),
        "coturn {pid} still running"
    );
    assert!(!dir.exists(), "{} not removed", dir.display());
    assert!(UdpSocket::bind(addr).is_ok(), "{addr} still bound");
}
