//! Channels and presence: snapshot on connect, diffs to everyone, switching as one step.

use std::collections::{BTreeMap, BTreeSet};

use cromulent_protocol::{ClientMsg, PresenceOp, ServerMsg};
use cromulent_test_support::ws::{Client, TestServer};

/// What a client believes: channel -> users, built only from what the server sent.
#[derive(Default)]
struct View(BTreeMap<u32, BTreeSet<String>>);

impl View {
    fn from_welcome(m: &ServerMsg) -> Self {
        let ServerMsg::Welcome { channels, .. } = m else {
            panic!("{m:?}")
        };
        Self(
            channels
                .iter()
                .map(|c| (c.id, c.members.iter().map(|m| m.user.clone()).collect()))
                .collect(),
        )
    }

    fn apply(&mut self, m: &ServerMsg) {
        let ServerMsg::Presence { changes } = m else {
            return;
        };
        for c in changes {
            let set = self.0.entry(c.channel).or_default();
            match c.op {
                PresenceOp::Join => assert!(set.insert(c.member.user.clone()), "double join {c:?}"),
                PresenceOp::Leave => assert!(set.remove(&c.member.user), "leave of absent {c:?}"),
                PresenceOp::Update => {
                    assert!(set.contains(&c.member.user), "update of absent {c:?}")
                }
            }
        }
    }

    fn channels_of(&self, user: &str) -> Vec<u32> {
        self.0
            .iter()
            .filter(|(_, s)| s.contains(user))
            .map(|(c, _)| *c)
            .collect()
    }
}

#[tokio::test]
async fn snapshot_on_connect_lists_channels_and_occupants_with_flags() {
    let server = TestServer::default().await;
    let mut alice = Client::connect(&server.url(), "alice").await;
    alice.voice_state(true, false, false).await;
    alice.send(&ClientMsg::Join { channel: 2 }).await;
    alice.expect_joined().await;

    let bob = Client::connect(&server.url(), "bob").await;
    let Some(ServerMsg::Welcome { channels, user, .. }) = &bob.welcome else {
        unreachable!()
    };
    assert_eq!(user.id, "bob");
    let names: Vec<_> = channels.iter().map(|c| (c.id, c.name.as_str())).collect();
    assert_eq!(names, [(1, "General"), (2, "Gaming"), (3, "Echo")]);
    assert!(channels[0].members.is_empty());
    assert_eq!(channels[1].members.len(), 1);
    assert_eq!(channels[1].members[0].user, "alice");
    assert!(
        channels[1].members[0].muted,
        "flags are part of the snapshot"
    );
    server.stop().await;
}

#[tokio::test]
async fn diffs_reach_every_client_join_update_leave() {
    let server = TestServer::default().await;
    let mut watcher = Client::connect(&server.url(), "watcher").await;
    let mut alice = Client::connect(&server.url(), "alice").await;
    alice.send(&ClientMsg::Join { channel: 1 }).await;
    alice.expect_joined().await;

    let m = watcher
        .recv_until(|m| matches!(m, ServerMsg::Presence { .. }))
        .await;
    let ServerMsg::Presence { changes } = m else {
        unreachable!()
    };
    assert_eq!(
        (
            changes[0].op,
            changes[0].channel,
            changes[0].member.user.as_str()
        ),
        (PresenceOp::Join, 1, "alice")
    );

    alice.voice_state(false, true, true).await;
    let ServerMsg::Presence { changes } = watcher.recv().await else {
        panic!()
    };
    assert_eq!(changes[0].op, PresenceOp::Update);
    assert!(changes[0].member.deafened && changes[0].member.talking && !changes[0].member.muted);

    alice.send(&ClientMsg::Leave).await;
    assert!(matches!(
        alice
            .recv_until(|m| matches!(m, ServerMsg::Left { .. }))
            .await,
        ServerMsg::Left { channel: 1, .. }
    ));
    let ServerMsg::Presence { changes } = watcher.recv().await else {
        panic!()
    };
    assert_eq!((changes[0].op, changes[0].channel), (PresenceOp::Leave, 1));
    server.stop().await;
}

#[tokio::test]
async fn switching_channels_is_seen_as_leave_then_join_never_both() {
    let server = TestServer::default().await;
    let mut third = Client::connect(&server.url(), "third").await;
    let mut view = View::from_welcome(third.welcome.as_ref().unwrap());
    let mut bob = Client::connect(&server.url(), "bob").await;
    bob.send(&ClientMsg::Join { channel: 1 }).await;
    bob.expect_joined().await;
    let mut alice = Client::connect(&server.url(), "alice").await;
    alice.send(&ClientMsg::Join { channel: 1 }).await;
    alice.expect_joined().await;

    for _ in 0..5 {
        alice.send(&ClientMsg::Join { channel: 2 }).await;
        alice.send(&ClientMsg::Join { channel: 1 }).await;
    }
    // The third client applies every diff and checks alice is never in two places.
    let mut moves = 0;
    while moves < 11 {
        let m = third.recv().await;
        view.apply(&m);
        assert!(
            view.channels_of("alice").len() <= 1,
            "alice seen in two channels"
        );
        if let ServerMsg::Presence { changes } = &m
            && changes
                .iter()
                .any(|c| c.member.user == "alice" && c.op == PresenceOp::Join)
        {
            if changes.len() == 2 {
                assert_eq!(
                    changes[0].op,
                    PresenceOp::Leave,
                    "leave comes first in a switch"
                );
            }
            moves += 1;
        }
    }
    assert_eq!(view.channels_of("alice"), [1]);

    // The user left behind in channel 1 saw alice leave it (and come back).
    let m = bob.recv_until(|m| matches!(m, ServerMsg::Presence { changes } if changes.iter().any(|c| c.op == PresenceOp::Leave && c.channel == 1))).await;
    assert!(matches!(m, ServerMsg::Presence { .. }));
    // The switcher is told it left, and gets a fresh join reply each time.
    let left = alice
        .recv_until(|m| matches!(m, ServerMsg::Left { .. }))
        .await;
    assert!(matches!(
        left,
        ServerMsg::Left {
            channel: 1,
            reason: cromulent_protocol::LeftReason::Switched
        }
    ));
    server.stop().await;
}
