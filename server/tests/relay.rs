//! Signaling relay: exactly one addressee in the sender's channel, `from` stamped by the
//! server; never broadcast (Cromulent leaked every peer's addresses to the room).

use std::time::Duration;

use cromulent_protocol::{ClientMsg, ErrorReason, ServerMsg, Signal};
use cromulent_test_support::ws::{Client, TestServer};

async fn seated(url: &str, name: &str, channel: Option<u32>) -> Client {
    let mut c = Client::connect(url, name).await;
    if let Some(channel) = channel {
        c.send(&ClientMsg::Join { channel }).await;
        assert!(matches!(c.expect_joined().await, ServerMsg::Joined { .. }));
    }
    c
}

fn is_signal(m: &ServerMsg) -> bool {
    matches!(m, ServerMsg::Signal { .. })
}

#[tokio::test]
async fn offer_answer_candidate_reach_only_the_addressee() {
    let server = TestServer::default().await;
    let url = server.url();
    let mut alice = seated(&url, "alice", Some(1)).await;
    let mut bob = seated(&url, "bob", Some(1)).await;
    let mut eve = seated(&url, "eve", Some(1)).await;
    let mut carol = seated(&url, "carol", Some(2)).await;
    let mut dave = seated(&url, "dave", None).await;

    let candidate = Signal::Candidate {
        candidate: "candidate:1 1 udp 2130706431 127.0.0.1 50000 typ host".into(),
        sdp_mid: Some("0".into()),
        sdp_mline_index: Some(0),
        username_fragment: None,
    };
    for signal in [
        Signal::Offer {
            sdp: "v=0 offer".into(),
            connection: 1,
        },
        candidate,
        Signal::Renew,
    ] {
        alice
            .send(&ClientMsg::Signal {
                to: "bob".into(),
                signal: signal.clone(),
            })
            .await;
        let m = bob.recv_until(is_signal).await;
        assert_eq!(
            m,
            ServerMsg::Signal {
                from: "alice".into(),
                signal
            }
        );
    }
    bob.send(&ClientMsg::Signal {
        to: "alice".into(),
        signal: Signal::Answer {
            sdp: "v=0 answer".into(),
            connection: 1,
        },
    })
    .await;
    assert!(
        matches!(alice.recv_until(is_signal).await, ServerMsg::Signal { from, .. } if from == "bob")
    );

    // Nobody else got any of it: everything they received in a window, not just the first
    // message (their own presence traffic comes first).
    for other in [&mut eve, &mut carol, &mut dave] {
        let got = other.drain_for(Duration::from_millis(500)).await;
        assert!(!got.iter().any(is_signal), "leaked: {got:?}");
    }
    server.stop().await;
}

#[tokio::test]
async fn signals_outside_the_channel_are_refused() {
    let server = TestServer::default().await;
    let url = server.url();
    let mut alice = seated(&url, "alice", Some(1)).await;
    let mut carol = seated(&url, "carol", Some(2)).await;
    let mut dave = seated(&url, "dave", None).await;
    let offer = Signal::Offer {
        sdp: "v=0".into(),
        connection: 1,
    };

    alice
        .send(&ClientMsg::Signal {
            to: "carol".into(),
            signal: offer.clone(),
        })
        .await;
    alice.expect_error(ErrorReason::PeerNotFound).await;
    alice
        .send(&ClientMsg::Signal {
            to: "nobody".into(),
            signal: offer.clone(),
        })
        .await;
    alice.expect_error(ErrorReason::PeerNotFound).await;
    alice
        .send(&ClientMsg::Signal {
            to: "alice".into(),
            signal: offer.clone(),
        })
        .await;
    alice.expect_error(ErrorReason::PeerNotFound).await;
    dave.send(&ClientMsg::Signal {
        to: "alice".into(),
        signal: offer,
    })
    .await;
    dave.expect_error(ErrorReason::NotInVoice).await;
    for other in [&mut carol, &mut dave] {
        let got = other.drain_for(Duration::from_millis(500)).await;
        assert!(!got.iter().any(is_signal), "leaked: {got:?}");
    }
    server.stop().await;
}
