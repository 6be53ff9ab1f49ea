//! The hub's rules, driven directly: no sockets, no sleeps.
//! They must never start a task or wait on one: time is an argument, effects come back as values.

use super::*;

const GRACE: Duration = Duration::from_secs(30);

pub(super) fn hub() -> Hub {
    Hub::new(
        &crate::config::Config::default().channels,
        GRACE,
        Heartbeat {
            ping_interval_ms: 5000,
            timeout_ms: 20_000,
        },
    )
}

pub(super) fn attach(hub: &mut Hub, conn: ConnId, user: &str, now: Instant) -> Vec<Effect> {
    attach_resume(hub, conn, user, None, now)
}

fn attach_resume(
    hub: &mut Hub,
    conn: ConnId,
    user: &str,
    resume: Option<&str>,
    now: Instant,
) -> Vec<Effect> {
    hub.attach(
        Attach {
            conn,
            identity: Identity {
                user: user.into(),
                name: user.into(),
            },
            resume: resume.map(str::to_owned),
            new_resume_token: format!("token-{conn}"),
            ice: IceConfig::default(),
        },
        now,
    )
}

pub(super) fn error_reason(fx: &[Effect]) -> Option<ErrorReason> {
    fx.iter().find_map(|e| match e {
        Effect::Send(_, ServerMsg::Error { reason, .. }) => Some(*reason),
        _ => None,
    })
}

fn members(hub: &Hub, channel: ChannelId) -> Vec<String> {
    hub.snapshot()
        .into_iter()
        .find(|c| c.id == channel)
        .unwrap()
        .members
        .into_iter()
        .map(|m| m.user)
        .collect()
}

#[test]
fn join_replies_with_peers_and_broadcasts_presence() {
    let now = Instant::now();
    let mut h = hub();
    attach(&mut h, 1, "alice", now);
    attach(&mut h, 2, "bob", now);
    h.join(1, 1, IceConfig::default());
    let fx = h.join(2, 1, IceConfig::default());
    match &fx[0] {
        Effect::Send(
            2,
            ServerMsg::Joined {
                channel: 1, peers, ..
            },
        ) => {
            assert_eq!(peers.len(), 1);
            assert_eq!(peers[0].user, "alice");
        }
        other => panic!("expected joined, got {other:?}"),
    }
    assert!(
        matches!(&fx[1], Effect::Broadcast(ServerMsg::Presence { changes })
        if changes[0].op == PresenceOp::Join && changes[0].member.user == "bob")
    );
    assert_eq!(members(&h, 1), ["alice", "bob"]);
}

#[test]
fn join_guard_refuses_same_channel_from_any_connection() {
    let now = Instant::now();
    let mut h = hub();
    attach(&mut h, 1, "alice", now);
    attach(&mut h, 2, "alice", now);
    assert_eq!(error_reason(&h.join(1, 1, IceConfig::default())), None);
    assert_eq!(
        error_reason(&h.join(2, 1, IceConfig::default())),
        Some(ErrorReason::AlreadyInChannel)
    );
    assert_eq!(
        error_reason(&h.join(1, 1, IceConfig::default())),
        Some(ErrorReason::AlreadyInChannel),
        "same connection, same channel"
    );
    assert_eq!(members(&h, 1), ["alice"]);
}

#[test]
fn join_guard_names_the_other_channel() {
    let now = Instant::now();
    let mut h = hub();
    attach(&mut h, 1, "alice", now);
    attach(&mut h, 2, "alice", now);
    h.join(1, 1, IceConfig::default());
    let fx = h.join(2, 2, IceConfig::default());
    assert!(matches!(
        &fx[..],
        [Effect::Send(
            2,
            ServerMsg::Error {
                reason: ErrorReason::AlreadyInVoice,
                channel: Some(1),
                ..
            }
        )]
    ));
    assert!(members(&h, 2).is_empty());
}

#[test]
fn unknown_channel_is_not_found() {
    let mut h = hub();
    attach(&mut h, 1, "alice", Instant::now());
    assert_eq!(
        error_reason(&h.join(1, 99, IceConfig::default())),
        Some(ErrorReason::NotFound)
    );
}

#[test]
fn switch_is_one_presence_step_leave_then_join() {
    let now = Instant::now();
    let mut h = hub();
    attach(&mut h, 1, "alice", now);
    h.join(1, 1, IceConfig::default());
    let fx = h.join(1, 2, IceConfig::default());
    assert!(matches!(
        &fx[0],
        Effect::Send(
            1,
            ServerMsg::Left {
                channel: 1,
                reason: LeftReason::Switched
            }
        )
    ));
    assert!(matches!(
        &fx[1],
        Effect::Send(1, ServerMsg::Joined { channel: 2, .. })
    ));
    let Effect::Broadcast(ServerMsg::Presence { changes }) = &fx[2] else {
        panic!("expected one presence message, got {fx:?}");
    };
    assert_eq!(
        changes
            .iter()
            .map(|c| (c.op, c.channel))
            .collect::<Vec<_>>(),
        [(PresenceOp::Leave, 1), (PresenceOp::Join, 2)]
    );
    assert!(members(&h, 1).is_empty());
    assert_eq!(members(&h, 2), ["alice"]);
}

#[test]
fn detach_releases_the_seat_at_once() {
    let now = Instant::now();
    let mut h = hub();
    attach(&mut h, 1, "alice", now);
    h.join(1, 1, IceConfig::default());
    let fx = h.detach(1, now);
    assert!(
        matches!(&fx[..], [Effect::Broadcast(ServerMsg::Presence { changes })]
        if changes[0].op == PresenceOp::Leave)
    );
    assert!(members(&h, 1).is_empty());
    attach(&mut h, 2, "alice", now);
    assert_eq!(error_reason(&h.join(2, 1, IceConfig::default())), None);
}

#[test]
fn resume_with_live_old_connection_takes_the_seat_and_closes_the_old_one() {
    let now = Instant::now();
    let mut h = hub();
    attach(&mut h, 1, "alice", now);
    h.join(1, 1, IceConfig::default());
    let fx = attach_resume(&mut h, 2, "alice", Some("token-1"), now);
    assert!(fx.contains(&Effect::Close(1, ErrorReason::SessionReplaced)));
    assert!(
        fx.iter()
            .any(|e| matches!(e, Effect::Send(2, ServerMsg::Welcome { resumed: true, .. })))
    );
    assert!(
        fx.iter()
            .any(|e| matches!(e, Effect::Send(2, ServerMsg::Joined { channel: 1, .. })))
    );
    assert_eq!(members(&h, 1), ["alice"]);
    // The old connection's end changes nothing any more.
    assert!(h.detach(1, now).is_empty());
    assert_eq!(members(&h, 1), ["alice"]);
}

#[test]
fn resume_within_grace_takes_the_seat_back() {
    let t0 = Instant::now();
    let mut h = hub();
    attach(&mut h, 1, "alice", t0);
    h.join(1, 1, IceConfig::default());
    h.detach(1, t0);
    let fx = attach_resume(&mut h, 2, "alice", Some("token-1"), t0 + GRACE);
    assert!(
        fx.iter()
            .any(|e| matches!(e, Effect::Send(2, ServerMsg::Joined { channel: 1, .. })))
    );
    assert_eq!(members(&h, 1), ["alice"]);
}

#[test]
fn resume_after_grace_is_refused() {
    let t0 = Instant::now();
    let mut h = hub();
    attach(&mut h, 1, "alice", t0);
    h.join(1, 1, IceConfig::default());
    h.detach(1, t0);
    let later = t0 + GRACE + Duration::from_millis(1);
    let fx = attach_resume(&mut h, 2, "alice", Some("token-1"), later);
    assert!(fx.iter().any(|e| matches!(
        e,
        Effect::Send(2, ServerMsg::Welcome { resumed: false, .. })
    )));
    assert_eq!(error_reason(&fx), Some(ErrorReason::ResumeExpired));
    assert!(members(&h, 1).is_empty());
    h.expire(later);
    assert_eq!(h.session_count(), 1, "the expired session is forgotten");
}

#[test]
fn resume_token_of_another_user_is_refused() {
    let now = Instant::now();
    let mut h = hub();
    attach(&mut h, 1, "alice", now);
    let fx = attach_resume(&mut h, 2, "mallory", Some("token-1"), now);
    assert_eq!(error_reason(&fx), Some(ErrorReason::ResumeExpired));
    assert!(!fx.iter().any(|e| matches!(e, Effect::Close(..))));
}

#[test]
fn resume_does_not_break_the_guard_if_the_user_sat_down_elsewhere() {
    let t0 = Instant::now();
    let mut h = hub();
    attach(&mut h, 1, "alice", t0);
    h.join(1, 1, IceConfig::default());
    h.detach(1, t0);
    attach(&mut h, 2, "alice", t0);
    h.join(2, 2, IceConfig::default());
    let fx = attach_resume(&mut h, 3, "alice", Some("token-1"), t0);
    assert!(members(&h, 1).is_empty());
    assert_eq!(members(&h, 2), ["alice"]);
    // The resumed connection is told why no `joined` follows, and where the seat is (found
    // by the client's session simulation: it waited for its seat for good).
    assert!(fx.iter().any(|e| matches!(
        e,
        Effect::Send(
            3,
            ServerMsg::Error {
                reason: ErrorReason::AlreadyInVoice,
                channel: Some(2),
                ..
            }
        )
    )));
}

#[test]
fn relay_goes_only_to_a_member_of_the_same_channel() {
    let now = Instant::now();
    let mut h = hub();
    for (c, u) in [(1, "alice"), (2, "bob"), (3, "carol"), (4, "dave")] {
        attach(&mut h, c, u, now);
    }
    h.join(1, 1, IceConfig::default());
    h.join(2, 1, IceConfig::default());
    h.join(3, 2, IceConfig::default());
    let offer = Signal::Offer {
        sdp: "v=0".into(),
        connection: 1,
    };
    let fx = h.relay(1, "bob", offer.clone());
    assert_eq!(
        fx,
        [Effect::Send(
            2,
            ServerMsg::Signal {
                from: "alice".into(),
                signal: offer.clone()
            }
        )]
    );
    assert_eq!(
        error_reason(&h.relay(1, "carol", offer.clone())),
        Some(ErrorReason::PeerNotFound)
    );
    assert_eq!(
        error_reason(&h.relay(1, "dave", offer.clone())),
        Some(ErrorReason::PeerNotFound)
    );
    assert_eq!(
        error_reason(&h.relay(1, "alice", offer.clone())),
        Some(ErrorReason::PeerNotFound)
    );
    assert_eq!(
        error_reason(&h.relay(4, "alice", offer)),
        Some(ErrorReason::NotInVoice)
    );
}

#[test]
fn voice_flags_are_broadcast_only_when_changed_and_seated() {
    let now = Instant::now();
    let mut h = hub();
    attach(&mut h, 1, "alice", now);
    let muted = VoiceFlags {
        muted: true,
        ..Default::default()
    };
    assert!(
        h.voice_state(1, muted).is_empty(),
        "not seated: nothing to tell"
    );
    let fx = h.join(1, 1, IceConfig::default());
    assert!(
        matches!(&fx[1], Effect::Broadcast(ServerMsg::Presence { changes }) if changes[0].member.muted)
    );
    assert!(h.voice_state(1, muted).is_empty(), "unchanged");
    let talking = VoiceFlags {
        talking: true,
        ..Default::default()
    };
    let fx = h.voice_state(1, talking);
    assert!(
        matches!(&fx[..], [Effect::Broadcast(ServerMsg::Presence { changes })]
        if changes[0].op == PresenceOp::Update && changes[0].member.talking && !changes[0].member.muted)
    );
}

#[test]
fn leave_when_not_in_voice_is_an_error() {
    let mut h = hub();
    attach(&mut h, 1, "alice", Instant::now());
    assert_eq!(error_reason(&h.leave(1)), Some(ErrorReason::NotInVoice));
}

#[test]
fn resume_rotates_the_token_and_the_old_one_stops_working() {
    let t0 = Instant::now();
    let mut h = hub();
    attach(&mut h, 1, "alice", t0);
    h.detach(1, t0);
    let fx = attach_resume(&mut h, 2, "alice", Some("token-1"), t0);
    let token = fx.iter().find_map(|e| match e {
        Effect::Send(
            2,
            ServerMsg::Welcome {
                session,
                resumed: true,
                ..
            },
        ) => Some(session.resume_token.clone()),
        _ => None,
    });
    assert_eq!(
        token.as_deref(),
        Some("token-2"),
        "the welcome carries the new token"
    );
    h.detach(2, t0);
    let fx = attach_resume(&mut h, 3, "alice", Some("token-1"), t0);
    assert_eq!(
        error_reason(&fx),
        Some(ErrorReason::ResumeExpired),
        "old token"
    );
    let fx = attach_resume(&mut h, 4, "alice", Some("token-2"), t0);
    assert!(
        fx.iter()
            .any(|e| matches!(e, Effect::Send(4, ServerMsg::Welcome { resumed: true, .. })))
    );
}

#[test]
fn a_look_alike_of_a_live_session_is_name_taken_until_that_session_expires() {
    let t0 = Instant::now();
    let mut h = hub();
    attach(&mut h, 1, "alice", t0);
    let fake = "\u{0430}lice";
    assert_eq!(
        attach(&mut h, 2, fake, t0),
        [Effect::Close(2, ErrorReason::NameTaken)]
    );
    assert_eq!(
        h.session_count(),
        1,
        "the refused connection made no session"
    );
    // The same user again is not a look-alike.
    assert!(!attach(&mut h, 3, "alice", t0).contains(&Effect::Close(3, ErrorReason::NameTaken)));
    // Both of alice's sessions end; in grace they still hold the name.
    h.detach(1, t0);
    h.detach(3, t0);
    assert_eq!(
        attach(&mut h, 4, fake, t0),
        [Effect::Close(4, ErrorReason::NameTaken)]
    );
    h.expire(t0 + GRACE + Duration::from_millis(1));
    assert_eq!(h.session_count(), 0);
    let fx = attach(&mut h, 5, fake, t0 + GRACE + Duration::from_millis(1));
    assert!(
        matches!(fx[0], Effect::Send(5, ServerMsg::Welcome { .. })),
        "{fx:?}"
    );
}

#[test]
fn display_names_clash_with_other_users_ids_and_names() {
    let now = Instant::now();
    let mut h = hub();
    let with = |conn, user: &str, name: &str| Attach {
        conn,
        identity: Identity {
            user: user.into(),
            name: name.into(),
        },
        resume: None,
        new_resume_token: format!("token-{conn}"),
        ice: IceConfig::default(),
    };
    h.attach(with(1, "u1", "Alice"), now);
    let fx = h.attach(with(2, "u2", "\u{0410}lice"), now);
    assert_eq!(
        fx,
        [Effect::Close(2, ErrorReason::NameTaken)],
        "display name"
    );
    let fx = h.attach(with(3, "u3", "u1"), now);
    assert_eq!(
        fx,
        [Effect::Close(3, ErrorReason::NameTaken)],
        "another's id as a name"
    );
}

// --- chat ----------------------------------------------------------------------------------

/// Who a `say` went to, and the message.
fn sent_to(fx: &[Effect]) -> (Vec<ConnId>, ChatMessage) {
    let to = fx
        .iter()
        .find_map(|e| match e {
            Effect::SendMany(to, ServerMsg::Message { message }) => {
                Some((to.clone(), message.clone()))
            }
            _ => None,
        })
        .expect("a message went out");
    let stored = fx.iter().find_map(|e| match e {
        Effect::Store(m) => Some(m.clone()),
        _ => None,
    });
    assert_eq!(
        stored.as_ref(),
        Some(&to.1),
        "what went out is what is stored"
    );
    to
}

#[test]
fn a_message_goes_to_the_channel_s_seats_its_watchers_and_the_sender_only() {
    let now = Instant::now();
    let mut h = hub().with_chat(41, 2000);
    for (conn, user) in [
        (1, "alice"),
        (2, "bob"),
        (3, "carol"),
        (4, "dave"),
        (5, "erin"),
    ] {
        attach(&mut h, conn, user, now);
    }
    h.join(1, 1, IceConfig::default()); // alice sits in General
    h.join(2, 1, IceConfig::default()); // bob too
    h.join(3, 2, IceConfig::default()); // carol sits in Gaming
    assert!(h.watch(4, Some(1)).is_empty()); // dave watches General
    // erin neither sits nor watches: she can still post, and gets her own message back.
    let (to, m) = sent_to(&h.say(5, 1, "hello\r\nall", 1_000));
    assert_eq!(to, vec![1, 2, 4, 5]);
    assert_eq!(
        (m.id, m.channel, m.user.as_str(), m.time, m.text.as_str()),
        (41, 1, "erin", 1_000, "hello\nall")
    );
    // Ids keep growing across channels.
    let (to, m) = sent_to(&h.say(3, 2, "gg", 1_001));
    assert_eq!((to, m.id), (vec![3], 42));
    // dave switches his watch to Gaming: General's messages no longer reach him.
    h.watch(4, Some(2));
    assert_eq!(sent_to(&h.say(1, 1, "x", 1_002)).0, vec![1, 2]);
    assert_eq!(sent_to(&h.say(1, 2, "y", 1_003)).0, vec![1, 3, 4]);
    h.watch(4, None);
    assert_eq!(sent_to(&h.say(1, 2, "z", 1_004)).0, vec![1, 3]);
}

#[test]
fn a_connection_that_ends_stops_watching_even_when_replaced_by_a_resume() {
    let now = Instant::now();
    let mut h = hub();
    attach(&mut h, 1, "alice", now);
    attach(&mut h, 2, "bob", now);
    h.watch(2, Some(1));
    h.detach(2, now);
    assert_eq!(sent_to(&h.say(1, 1, "a", 0)).0, vec![1]);
    // bob again, watching; then his session resumed on a new connection: the old one is gone.
    attach(&mut h, 3, "bob", now);
    h.watch(3, Some(1));
    attach_resume(&mut h, 4, "bob", Some("token-3"), now);
    assert_eq!(sent_to(&h.say(1, 1, "b", 0)).0, vec![1]);
    assert!(h.watch.is_empty() && h.watchers.is_empty());
}

#[test]
fn bad_text_and_unknown_channels_get_their_reasons_and_nothing_is_sent() {
    let now = Instant::now();
    let mut h = hub().with_chat(1, 10);
    attach(&mut h, 1, "alice", now);
    for (fx, reason) in [
        (h.say(1, 1, "\u{1b}]0;x\u{7}", 0), ErrorReason::InvalidText),
        (h.say(1, 1, "   ", 0), ErrorReason::InvalidText),
        (h.say(1, 1, "0123456789a", 0), ErrorReason::TextTooLong),
        (h.say(1, 99, "hi", 0), ErrorReason::NotFound),
        (h.watch(1, Some(99)), ErrorReason::NotFound),
        (h.history(1, 99, None, None), ErrorReason::NotFound),
    ] {
        assert_eq!(error_reason(&fx), Some(reason), "{fx:?}");
        assert!(
            !fx.iter()
                .any(|e| matches!(e, Effect::SendMany(..) | Effect::Store(_))),
            "{fx:?}"
        );
    }
    // The refused ones took no id.
    assert_eq!(sent_to(&h.say(1, 1, "ok", 0)).1.id, 1);
}

#[test]
fn history_asks_the_store_for_a_bounded_page() {
    let now = Instant::now();
    let mut h = hub();
    attach(&mut h, 1, "alice", now);
    assert_eq!(
        h.history(1, 2, Some(500), Some(10_000)),
        vec![Effect::Page {
            conn: 1,
            channel: 2,
            before: Some(500),
            limit: crate::chat::MAX_PAGE,
        }]
    );
    // Not attached: nothing.
    assert!(h.history(9, 1, None, None).is_empty());
    assert!(h.say(9, 1, "hi", 0).is_empty());
}
