//! The hub's cluster rules, driven directly with the inputs the cluster edge would report:
//! no Redis, no tasks, no sleeps.

use std::time::Instant;

use cromulent_protocol::{IceConfig, Member, PresenceOp, ServerMsg, Signal};

use super::super::tests::{error_reason, hub};
use crate::cluster::wire::{
    Event, Forward, Input, NameOutcome, Op, Seat, SeatChange, SeatOutcome, Snapshot,
};
use crate::hub::{Effect, Hub};

const NODE: &str = "here-1";
const OTHER: &str = "there-2";

fn clustered() -> Hub {
    let mut h = hub().in_cluster(NODE.into());
    assert!(
        h.cluster_input(
            Input::Snapshot(Snapshot {
                seq: 0,
                seats: Vec::new()
            }),
            Instant::now()
        )
        .is_empty()
    );
    // After a snapshot the instance says which names it holds: none yet.
    assert_eq!(h.take_cluster_ops(), [Op::Names { names: Vec::new() }]);
    h
}

/// `hello` as `user` on `conn`: nobody is welcomed before the name check across instances,
/// which is asked for; the skeletons it checks.
fn ask_name(h: &mut Hub, conn: u64, user: &str, now: Instant) -> Vec<String> {
    assert!(
        super::super::tests::attach(h, conn, user, now).is_empty(),
        "nobody is welcomed before the name check"
    );
    match h.take_cluster_ops().as_slice() {
        [
            Op::Name {
                conn: Some(c),
                user: u,
                skeletons,
            },
        ] if *c == conn && u == user => skeletons.clone(),
        other => panic!("expected one name check, got {other:?}"),
    }
}

/// The name check's answer for `conn`.
fn named(
    h: &mut Hub,
    conn: u64,
    user: &str,
    skeletons: Vec<String>,
    outcome: NameOutcome,
) -> Vec<Effect> {
    let input = Input::Named {
        conn,
        user: user.into(),
        skeletons,
        outcome,
    };
    h.cluster_input(input, Instant::now())
}

/// A new session for `user` on `conn`, whose name the cluster found free: its welcome.
fn attach(h: &mut Hub, conn: u64, user: &str, now: Instant) -> Vec<Effect> {
    let skeletons = ask_name(h, conn, user, now);
    named(h, conn, user, skeletons, NameOutcome::Free)
}

fn member(user: &str) -> Member {
    Member {
        user: user.into(),
        name: user.into(),
        muted: false,
        deafened: false,
        talking: false,
        instance: 0,
    }
}

fn change(op: PresenceOp, channel: u32, user: &str, node: &str, session: u64) -> SeatChange {
    SeatChange {
        op,
        channel,
        member: member(user),
        node: node.into(),
        session,
        why: None,
    }
}

fn event(seq: u64, changes: Vec<SeatChange>) -> Input {
    Input::Event(Event { seq, changes })
}

/// `join` on `conn`: it shows nothing yet and asks the guard for exactly one seat; that
/// request's session.
fn ask_seat(h: &mut Hub, conn: u64, channel: u32) -> u64 {
    let fx = h.join(conn, channel, IceConfig::default());
    assert!(
        fx.is_empty(),
        "a join is only a question to the guard: {fx:?}"
    );
    match h.take_cluster_ops().as_slice() {
        [Op::Seat { session, .. }] => *session,
        other => panic!("expected one seat request, got {other:?}"),
    }
}

/// The (op, user) of every presence broadcast among `fx`, in order.
fn broadcasts(fx: &[Effect]) -> Vec<(PresenceOp, String)> {
    fx.iter()
        .flat_map(|e| match e {
            Effect::Broadcast(ServerMsg::Presence { changes }) => changes
                .iter()
                .map(|c| (c.op, c.member.user.clone()))
                .collect(),
            _ => Vec::new(),
        })
        .collect()
}

#[test]
fn a_join_asks_the_guard_and_joined_comes_with_its_event_listing_the_replica() {
    let mut h = clustered();
    let fx = h.cluster_input(
        event(1, vec![change(PresenceOp::Join, 1, "bob", OTHER, 7)]),
        Instant::now(),
    );
    assert_eq!(broadcasts(&fx), [(PresenceOp::Join, "bob".to_owned())]);
    attach(&mut h, 1, "alice", Instant::now());
    let fx = h.join(1, 1, IceConfig::default());
    assert!(
        fx.is_empty(),
        "a join is only a question to the guard: {fx:?}"
    );
    let ops = h.take_cluster_ops();
    let [
        Op::Seat {
            session,
            user,
            channel: 1,
            ..
        },
    ] = ops.as_slice()
    else {
        panic!("{ops:?}")
    };
    assert_eq!(user, "alice");
    let fx = h.cluster_input(
        event(
            2,
            vec![change(PresenceOp::Join, 1, "alice", NODE, *session)],
        ),
        Instant::now(),
    );
    match &fx[0] {
        Effect::Send(
            1,
            ServerMsg::Joined {
                channel: 1, peers, ..
            },
        ) => {
            assert_eq!(peers, &[member("bob")]);
        }
        other => panic!("expected joined first, got {other:?}"),
    }
    assert_eq!(broadcasts(&fx), [(PresenceOp::Join, "alice".to_owned())]);
    let users: Vec<_> = h.snapshot()[0]
        .members
        .iter()
        .map(|m| m.user.clone())
        .collect();
    assert_eq!(users, ["bob", "alice"], "join order");
}

#[test]
fn a_refusal_from_the_guard_is_the_error_the_client_gets() {
    let mut h = clustered();
    attach(&mut h, 1, "alice", Instant::now());
    let session = ask_seat(&mut h, 1, 2);
    for (outcome, reason) in [
        (
            SeatOutcome::Here(2),
            cromulent_protocol::ErrorReason::AlreadyInChannel,
        ),
        (
            SeatOutcome::Taken(3),
            cromulent_protocol::ErrorReason::AlreadyInVoice,
        ),
        (
            SeatOutcome::Unavailable,
            cromulent_protocol::ErrorReason::ClusterUnavailable,
        ),
    ] {
        let fx = h.cluster_input(
            Input::Seat {
                session,
                channel: 2,
                outcome,
            },
            Instant::now(),
        );
        assert_eq!(error_reason(&fx), Some(reason), "{outcome:?}");
    }
    assert!(h.snapshot().iter().all(|c| c.members.is_empty()));
}

#[test]
fn events_apply_in_seq_order_and_a_gap_asks_for_a_snapshot() {
    let mut h = clustered();
    let fx = h.cluster_input(
        event(2, vec![change(PresenceOp::Join, 1, "bob", OTHER, 2)]),
        Instant::now(),
    );
    assert!(fx.is_empty(), "nothing shown out of order: {fx:?}");
    assert_eq!(h.take_cluster_ops(), [Op::Snapshot]);
    let fx = h.cluster_input(
        event(1, vec![change(PresenceOp::Join, 1, "ann", OTHER, 1)]),
        Instant::now(),
    );
    assert_eq!(
        broadcasts(&fx),
        [
            (PresenceOp::Join, "ann".to_owned()),
            (PresenceOp::Join, "bob".to_owned())
        ]
    );
    // A late duplicate changes nothing.
    let fx = h.cluster_input(
        event(1, vec![change(PresenceOp::Leave, 1, "ann", OTHER, 1)]),
        Instant::now(),
    );
    assert!(fx.is_empty(), "{fx:?}");
    // The snapshot asked for agrees: nothing to tell.
    let seat = |user: &str, session, seq| Seat {
        node: OTHER.into(),
        session,
        channel: 1,
        seq,
        member: member(user),
    };
    let fx = h.cluster_input(
        Input::Snapshot(Snapshot {
            seq: 2,
            seats: vec![seat("ann", 1, 1), seat("bob", 2, 2)],
        }),
        Instant::now(),
    );
    assert!(fx.is_empty(), "{fx:?}");
    // A snapshot that differs (events were lost) is told as one presence message.
    let fx = h.cluster_input(
        Input::Snapshot(Snapshot {
            seq: 9,
            seats: vec![seat("bob", 2, 2), seat("cy", 3, 8)],
        }),
        Instant::now(),
    );
    let mut told = broadcasts(&fx);
    told.sort_by_key(|(_, user)| user.clone());
    assert_eq!(
        told,
        [
            (PresenceOp::Leave, "ann".to_owned()),
            (PresenceOp::Join, "cy".to_owned())
        ]
    );
}

#[test]
fn a_forwarded_signal_reaches_only_its_seated_addressee_from_a_seated_sender() {
    let mut h = clustered();
    attach(&mut h, 1, "alice", Instant::now());
    attach(&mut h, 2, "eve", Instant::now());
    let session = ask_seat(&mut h, 1, 1);
    h.cluster_input(
        event(
            1,
            vec![
                change(PresenceOp::Join, 1, "alice", NODE, session),
                change(PresenceOp::Join, 1, "bob", OTHER, 4),
            ],
        ),
        Instant::now(),
    );
    let forward = |to: &str, session, from: &str, channel| {
        Input::Forwarded(Forward {
            to: to.into(),
            session,
            from: from.into(),
            channel,
            signal: Signal::Renew,
        })
    };
    let wrong = [
        forward("alice", session, "bob", 2),     // not alice's channel
        forward("eve", session, "bob", 1),       // alice's session, another user's name
        forward("alice", session, "zoe", 1),     // the sender is not seated
        forward("alice", session + 1, "bob", 1), // eve's session, not seated
    ];
    for f in wrong {
        assert!(
            h.cluster_input(f.clone(), Instant::now()).is_empty(),
            "{f:?}"
        );
    }
    let fx = h.cluster_input(forward("alice", session, "bob", 1), Instant::now());
    assert_eq!(
        fx,
        [Effect::Send(
            1,
            ServerMsg::Signal {
                from: "bob".into(),
                signal: Signal::Renew
            }
        )]
    );
    // Alice's own signal to bob goes to bob's node, never to a local connection.
    assert!(h.relay(1, "bob", Signal::Renew).is_empty());
    let ops = h.take_cluster_ops();
    assert!(
        matches!(&ops[..], [Op::Forward { node, forward }] if node == OTHER && forward.session == 4),
        "{ops:?}"
    );
}

#[test]
fn a_seat_granted_after_its_connection_ended_is_given_back() {
    let mut h = clustered();
    let now = Instant::now();
    attach(&mut h, 1, "alice", now);
    let session = ask_seat(&mut h, 1, 1);
    assert!(h.detach(1, now).is_empty());
    let ops = h.take_cluster_ops();
    assert!(
        matches!(&ops[..], [Op::Park { .. }]),
        "not seated yet: nothing to release, only the session to park: {ops:?}"
    );
    h.cluster_input(
        event(1, vec![change(PresenceOp::Join, 1, "alice", NODE, session)]),
        Instant::now(),
    );
    let ops = h.take_cluster_ops();
    assert!(
        matches!(&ops[..], [Op::Unseat { session: s, .. }] if *s == session),
        "{ops:?}"
    );
}

#[test]
fn a_seat_in_a_channel_this_instance_does_not_have_is_given_back_not_a_crash() {
    let mut h = clustered();
    attach(&mut h, 1, "alice", Instant::now());
    let session = ask_seat(&mut h, 1, 1);
    h.cluster_input(
        event(
            1,
            vec![change(PresenceOp::Join, 99, "alice", NODE, session)],
        ),
        Instant::now(),
    );
    let ops = h.take_cluster_ops();
    assert!(
        matches!(&ops[..], [Op::Unseat { session: s, .. }] if *s == session),
        "{ops:?}"
    );
    assert!(h.snapshot().iter().all(|c| c.members.is_empty()));
}

#[test]
fn after_missed_events_a_snapshot_keeps_a_requested_leave_and_retakes_a_lost_seat() {
    let mut h = clustered();
    attach(&mut h, 1, "alice", Instant::now());
    attach(&mut h, 2, "bob", Instant::now());
    let alice = ask_seat(&mut h, 1, 1);
    let bob = ask_seat(&mut h, 2, 2);
    h.cluster_input(
        event(
            1,
            vec![
                change(PresenceOp::Join, 1, "alice", NODE, alice),
                change(PresenceOp::Join, 2, "bob", NODE, bob),
            ],
        ),
        Instant::now(),
    );
    assert!(h.leave(1).is_empty(), "the left comes with its event");
    h.take_cluster_ops();
    // Alice's leave and everything else was missed; Redis (restarted) holds no seat at all.
    let fx = h.cluster_input(
        Input::Snapshot(Snapshot {
            seq: 0,
            seats: Vec::new(),
        }),
        Instant::now(),
    );
    assert!(
        fx.contains(&Effect::Send(
            1,
            ServerMsg::Left {
                channel: 1,
                reason: cromulent_protocol::LeftReason::Requested
            }
        )),
        "{fx:?}"
    );
    let ops = h.take_cluster_ops();
    assert!(
        matches!(&ops[..], [Op::Names { .. }, Op::Seat { session, channel: 2, .. }] if *session == bob),
        "only bob's seat is taken again: {ops:?}"
    );
}

#[test]
fn chat_history_is_read_from_the_cluster_and_a_message_is_not_stored_here() {
    use cromulent_protocol::{ChatMessage, ErrorReason};

    use crate::cluster::wire::Chat;

    let mut h = clustered();
    attach(&mut h, 1, "ann", Instant::now());
    h.take_cluster_ops();
    // A page is a question to the cluster, not to a local store.
    assert!(h.history(1, 1, Some(90), Some(500)).is_empty());
    let session = match h.take_cluster_ops().as_slice() {
        [
            Op::History {
                conn: 1,
                session,
                channel: 1,
                before: Some(90),
                limit: 100,
            },
        ] => *session,
        other => panic!("expected one history read, got {other:?}"),
    };
    let message = ChatMessage {
        id: 42,
        channel: 1,
        user: "ann".into(),
        name: "ann".into(),
        time: 7,
        text: "hi".into(),
    };
    let fx = h.cluster_input(
        Input::History {
            conn: 1,
            channel: 1,
            page: Some((vec![message.clone()], true)),
        },
        Instant::now(),
    );
    assert_eq!(
        fx,
        [Effect::Send(
            1,
            ServerMsg::History {
                channel: 1,
                messages: vec![message.clone()],
                more: true
            }
        )]
    );
    let fx = h.cluster_input(
        Input::History {
            conn: 1,
            channel: 1,
            page: None,
        },
        Instant::now(),
    );
    assert_eq!(error_reason(&fx), Some(ErrorReason::HistoryUnavailable));
    // A page for a connection gone meanwhile goes nowhere.
    h.detach(1, Instant::now());
    let gone = h.cluster_input(
        Input::History {
            conn: 1,
            channel: 1,
            page: Some((Vec::new(), false)),
        },
        Instant::now(),
    );
    assert!(gone.is_empty(), "{gone:?}");

    // A message of the cluster goes out live and is already in the cluster's history.
    let mut h = clustered();
    attach(&mut h, 1, "ann", Instant::now());
    h.watch(1, Some(1));
    let fx = h.cluster_input(
        Input::Chat(Chat {
            message,
            node: NODE.into(),
            session,
        }),
        Instant::now(),
    );
    assert!(
        matches!(fx.as_slice(), [Effect::SendMany(to, ServerMsg::Message { .. })] if to == &[1]),
        "{fx:?}"
    );
}

#[test]
fn a_name_another_instance_holds_is_refused_and_names_are_given_back_when_sessions_go() {
    use cromulent_protocol::ErrorReason;

    let mut h = clustered();
    let now = Instant::now();
    // Someone on another instance holds a look-alike: closed with name_taken, no session.
    let skeletons = ask_name(&mut h, 1, "alice", now);
    let fx = named(
        &mut h,
        1,
        "alice",
        skeletons.clone(),
        NameOutcome::Taken("аlice".into()),
    );
    assert_eq!(fx, [Effect::Close(1, ErrorReason::NameTaken)]);
    assert!(h.take_cluster_ops().is_empty());

    // A connection that ended while its name was checked: the names registered for it are
    // given back.
    let skeletons = ask_name(&mut h, 2, "bob", now);
    h.detach(2, now);
    let fx = named(&mut h, 2, "bob", skeletons.clone(), NameOutcome::Free);
    assert!(fx.is_empty(), "{fx:?}");
    assert_eq!(
        h.take_cluster_ops(),
        [Op::Unname {
            user: "bob".into(),
            skeletons
        }]
    );

    // Redis unreachable: this instance's own check decides, and a session forgotten after
    // its grace gives its names back.
    let skeletons = ask_name(&mut h, 3, "carol", now);
    let fx = named(
        &mut h,
        3,
        "carol",
        skeletons.clone(),
        NameOutcome::Unavailable,
    );
    assert!(
        matches!(fx.as_slice(), [Effect::Send(3, ServerMsg::Welcome { .. })]),
        "{fx:?}"
    );
    h.detach(3, now);
    h.take_cluster_ops();
    h.expire(now + std::time::Duration::from_secs(3600));
    assert_eq!(
        h.take_cluster_ops(),
        [Op::Unname {
            user: "carol".into(),
            skeletons
        }]
    );
}
