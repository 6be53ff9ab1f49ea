//! A client that stops reading (issue 16, defect 1): it is dropped as a slow consumer within a
//! bounded time, its seat is released and its `leave` reaches everyone, the same user can sit
//! down again from a new connection, and nobody else waits meanwhile.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use cromulent_protocol::{ClientMsg, PresenceOp, ServerMsg, Signal};
use cromulent_server::config::Config;
use cromulent_test_support::ws::{Client, TestServer, tcp_from};

fn left(user: &'static str) -> impl Fn(&ServerMsg) -> bool {
    move |m| {
        matches!(m, ServerMsg::Presence { changes }
            if changes.iter().any(|c| c.op == PresenceOp::Leave && c.member.user == user))
    }
}

async fn join(c: &mut Client, channel: u32) {
    c.send(&ClientMsg::Join { channel }).await;
    let m = c.expect_joined().await;
    assert!(matches!(m, ServerMsg::Joined { .. }), "{m:?}");
}

#[tokio::test]
async fn a_client_that_stops_reading_loses_its_seat_and_everyone_hears_it_leave() {
    let mut config = Config::default();
    config.limits.outbound_queue_bytes = 256 * 1024;
    config.limits.write_timeout_ms = 1_000;
    config.limits.messages_per_second = 1_000;
    config.limits.burst = 1_000;
    let server = TestServer::start(config).await;
    let url = server.url();

    let mut watcher = Client::connect(&url, "watcher").await;
    join(&mut watcher, 1).await;
    // A tiny receive window, so the server's writes to it block soon once it stops reading.
    let stream = tcp_from(server.addr, IpAddr::V4(Ipv4Addr::LOCALHOST), Some(4096)).await;
    let mut sink = Client::raw_over(&url, stream).await.hello("sink").await;
    join(&mut sink, 1).await;
    let mut flooder = Client::connect(&url, "flooder").await;
    join(&mut flooder, 1).await;
    // From here on `sink` reads nothing.

    let flood = tokio::spawn(async move {
        let sdp = "v".repeat(60 * 1024);
        for _ in 0..400 {
            let signal = Signal::Offer {
                sdp: sdp.clone(),
                connection: 1,
            };
            flooder
                .send(&ClientMsg::Signal {
                    to: "sink".into(),
                    signal,
                })
                .await;
        }
        flooder
    });

    let deadline = Duration::from_secs(15);
    let gone = tokio::time::timeout(deadline, watcher.recv_until_within(left("sink"), deadline))
        .await
        .ok()
        .flatten();
    assert!(
        gone.is_some(),
        "the non-reading client's leave reached the watcher within {deadline:?}"
    );
    // The seat is free: the same user from a new connection sits down (no ghost).
    let mut again = Client::connect(&url, "sink").await;
    join(&mut again, 1).await;
    // And the watcher was served as usual throughout.
    join(&mut watcher, 2).await;
    let _ = tokio::time::timeout(Duration::from_secs(10), flood).await;
    drop(sink);
    server.stop().await;
}
