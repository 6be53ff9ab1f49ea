//! ICE servers as a client receives them over the wire: the `joined` reply carries coturn
//! credentials that a real coturn accepts, `refresh_ice` hands out fresh ones, and a failing
//! provider still lets the join succeed with STUN only.

use std::net::SocketAddr;

use cromulent_protocol::{ClientMsg, IceConfig, ServerMsg};
use cromulent_server::config::{Config, TurnProvider};
use cromulent_test_support::coturn::{Coturn, allocate};
use cromulent_test_support::ws::{Client, TestServer};

fn turn_creds(ice: &IceConfig) -> (SocketAddr, String, String) {
    let s = ice
        .servers
        .iter()
        .find(|s| s.urls.iter().any(|u| u.starts_with("turn:")))
        .expect("a TURN server");
    let addr = s.urls[0]
        .trim_start_matches("turn:")
        .split('?')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    (
        addr,
        s.username.clone().unwrap(),
        s.credential.clone().unwrap(),
    )
}

#[tokio::test]
async fn joined_reply_credentials_allocate_on_real_coturn_and_refresh_gives_new_ones() {
    let turn = Coturn::builder().start_async().await;
    let mut config = Config::default();
    config.turn.provider = TurnProvider::Coturn;
    config.turn.secret = turn.secret().to_owned();
    config.turn.urls = vec![turn.turn_url()];
    config.turn.ttl_secs = 60;
    let server = TestServer::start(config).await;

    let mut alice = Client::connect(&server.url(), "alice").await;
    alice.send(&ClientMsg::Join { channel: 1 }).await;
    let ServerMsg::Joined { ice, .. } = alice.expect_joined().await else {
        panic!()
    };
    let (addr, user, pass) = turn_creds(&ice);
    assert!(user.ends_with(":alice"));
    let expires = ice.expires_at.expect("expiry given");
    assert_eq!(user, format!("{expires}:alice"));
    allocate(addr, &user, &pass)
        .await
        .expect("credentials from the join reply are accepted");

    // A refresh a moment later yields credentials that expire later, and also work.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    alice.send(&ClientMsg::RefreshIce).await;
    let ServerMsg::IceServers { ice: fresh } = alice
        .recv_until(|m| matches!(m, ServerMsg::IceServers { .. }))
        .await
    else {
        unreachable!()
    };
    assert!(
        fresh.expires_at.unwrap() > expires,
        "fresh credentials expire later"
    );
    let (addr, user, pass) = turn_creds(&fresh);
    allocate(addr, &user, &pass)
        .await
        .expect("refreshed credentials are accepted");
    server.stop().await;
}

#[tokio::test]
async fn a_failing_provider_falls_back_to_stun_and_the_join_succeeds() {
    // A Metered endpoint that refuses connections (a port we bound and released).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut config = Config::default();
    config.turn.provider = TurnProvider::Metered;
    config.turn.api_url = format!("http://127.0.0.1:{port}/api/v1/turn/credentials");
    config.turn.api_key = "k".into();
    config.turn.stun_urls = vec!["stun:127.0.0.1:3478".into()];
    let server = TestServer::start(config).await;
    let mut alice = Client::connect(&server.url(), "alice").await;
    alice.send(&ClientMsg::Join { channel: 1 }).await;
    let ServerMsg::Joined { ice, .. } = alice.expect_joined().await else {
        panic!("join must succeed")
    };
    assert_eq!(ice.servers.len(), 1);
    assert_eq!(ice.servers[0].urls, ["stun:127.0.0.1:3478"]);
    assert_eq!(ice.expires_at, None);
    server.stop().await;
}
