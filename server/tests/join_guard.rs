//! VOIC-01: one user, one voice seat — checked and taken in one atomic step.

use cromulent_protocol::{ClientMsg, ErrorReason, PresenceOp, ServerMsg};
use cromulent_test_support::ws::{Client, TestServer, join_all_at_once, race_outcome};

#[tokio::test]
async fn second_connection_of_the_same_user_is_refused() {
    let server = TestServer::default().await;
    let mut first = Client::connect(&server.url(), "alice").await;
    first.send(&ClientMsg::Join { channel: 1 }).await;
    assert!(matches!(
        first.expect_joined().await,
        ServerMsg::Joined { channel: 1, .. }
    ));

    let mut second = Client::connect(&server.url(), "alice").await;
    second.send(&ClientMsg::Join { channel: 1 }).await;
    second.expect_error(ErrorReason::AlreadyInChannel).await;

    second.send(&ClientMsg::Join { channel: 2 }).await;
    let m = second.expect_error(ErrorReason::AlreadyInVoice).await;
    assert!(
        matches!(
            m,
            ServerMsg::Error {
                channel: Some(1),
                ..
            }
        ),
        "names the other channel: {m:?}"
    );

    // The first session is unaffected: still seated, still answered.
    first.send(&ClientMsg::Join { channel: 1 }).await;
    first.expect_error(ErrorReason::AlreadyInChannel).await;
    server.stop().await;
}

#[tokio::test]
async fn unknown_channel_is_not_found() {
    let server = TestServer::default().await;
    let mut c = Client::connect(&server.url(), "alice").await;
    c.send(&ClientMsg::Join { channel: 404 }).await;
    c.expect_error(ErrorReason::NotFound).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_simultaneous_joins_by_one_user_exactly_one_succeeds() {
    let server = TestServer::default().await;
    let mut watcher = Client::connect(&server.url(), "watcher").await;
    let mut clients = Vec::new();
    for _ in 0..50 {
        clients.push(Client::connect(&server.url(), "zed").await);
    }
    // Fire all joins at once, each from its own task and connection.
    let replies = join_all_at_once(clients, 1).await;
    assert_eq!(race_outcome(&replies), (1, 49));

    // Everyone else saw exactly one zed join.
    let m = watcher.recv().await;
    let ServerMsg::Presence { changes } = m else {
        panic!("{m:?}")
    };
    assert_eq!(changes.len(), 1);
    assert_eq!(
        (changes[0].op, changes[0].member.user.as_str()),
        (PresenceOp::Join, "zed")
    );
    assert!(
        watcher
            .quiet_for(std::time::Duration::from_millis(300))
            .await
            .is_ok()
    );
    server.stop().await;
}
