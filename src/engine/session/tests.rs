//! The session's rules, one by one, in fake time: inputs in, effects out.

use std::time::{Duration, Instant};

use cromulent_protocol::{
    ChannelId, ChannelInfo, ClientMsg, ErrorReason, Heartbeat, IceConfig, IceServer, LeftReason,
    Member, PresenceChange, PresenceOp, ServerMsg, SessionInfo, Signal, UserInfo,
};

use super::{Effect, Input, LinkView, Now, Session, SessionConfig, ice_refresh_due};
use crate::engine::calls::{
    ANSWER_WAIT, CallState, DISCONNECTED_GRACE, DOWN_LIMIT, RESTART_INTERVAL,
};
use crate::engine::error::{DisconnectReason, EngineError, NoRoute};
use crate::engine::peer_link::{LinkCommand, LinkResult, PeerKey};
use crate::engine::presence::fixtures;
use crate::engine::rejoin::{SEAT_PATIENCE, SEAT_RETRY};
use crate::engine::status::VoiceStatus;
use crate::engine::talk::TalkMode;
use crate::engine::{ChannelRef, EngineCommand, EngineEvent, IcePolicy};
use crate::rtc::{CandidateInit, CandidateKind, PeerEvent, PeerState};
use crate::signaling::SignalingEvent;

const GENERAL: ChannelId = 1;
const GAMING: ChannelId = 2;

/// One session in fake time.
struct Client {
    session: Session,
    now: Now,
}

fn member(user: &str, instance: u64) -> Member {
    Member {
        instance,
        ..fixtures::member(user)
    }
}

fn channels(members_of_general: &[Member]) -> Vec<ChannelInfo> {
    let mut general = fixtures::channel(GENERAL, "General");
    general.members = members_of_general.to_vec();
    vec![general, fixtures::channel(GAMING, "Gaming")]
}

fn turn_ice(expires_at: u64, password: &str) -> IceConfig {
    IceConfig {
        servers: vec![IceServer {
            urls: vec!["turn:127.0.0.1:3478".into()],
            username: Some("u".into()),
            credential: Some(password.into()),
        }],
        expires_at: Some(expires_at),
    }
}

fn candidate(kind: &str) -> CandidateInit {
    CandidateInit {
        candidate: format!("candidate:1 1 udp 1 127.0.0.1 40000 typ {kind}"),
        sdp_mid: Some("0".into()),
        sdp_mline_index: Some(0),
        username_fragment: Some("uf".into()),
    }
}

fn key(user: &str, generation: u64) -> PeerKey {
    PeerKey {
        user: user.into(),
        generation,
    }
}

impl Client {
    fn new(name: &str) -> Self {
        Self::with(name, true)
    }

    fn with(name: &str, ice_refresh: bool) -> Self {
        let now = Now {
            at: Instant::now(),
            unix_secs: 1_000_000,
        };
        let config = SessionConfig {
            name: name.into(),
            talk_mode: TalkMode::Open,
            ice_policy: IcePolicy::All,
            loopback_only: true,
            ice_refresh,
        };
        Self {
            session: Session::new(config, now),
            now,
        }
    }

    fn input(&mut self, input: Input) -> Vec<Effect> {
        self.session.handle(input, self.now)
    }

    fn advance(&mut self, d: Duration) -> Vec<Effect> {
        self.now = self.now.after(d);
        self.input(Input::Tick)
    }

    fn server(&mut self, msg: ServerMsg) -> Vec<Effect> {
        self.input(Input::Signaling(SignalingEvent::Message(msg)))
    }

    fn command(&mut self, cmd: EngineCommand) -> Vec<Effect> {
        self.input(Input::Command(cmd))
    }

    fn welcome(&mut self, resumed: bool, general: &[Member]) -> Vec<Effect> {
        let me = self.session.config.name.clone();
        self.server(ServerMsg::Welcome {
            protocol: 1,
            user: UserInfo {
                id: me.clone(),
                name: me,
            },
            session: SessionInfo {
                resume_token: "token".into(),
                resume_grace_ms: 30_000,
            },
            resumed,
            heartbeat: Heartbeat {
                ping_interval_ms: 15_000,
                timeout_ms: 45_000,
            },
            channels: channels(general),
        })
    }

    fn joined(&mut self, channel: ChannelId, ice: IceConfig, peers: &[Member]) -> Vec<Effect> {
        self.server(ServerMsg::Joined {
            channel,
            ice,
            peers: peers.to_vec(),
        })
    }

    fn signal(&mut self, from: &str, signal: Signal) -> Vec<Effect> {
        self.server(ServerMsg::Signal {
            from: from.into(),
            signal,
        })
    }

    fn peer(&mut self, key: PeerKey, ev: PeerEvent) -> Vec<Effect> {
        self.input(Input::Peer(key, ev))
    }

    fn lost(&mut self) -> Vec<Effect> {
        self.input(Input::Signaling(SignalingEvent::Lost {
            reason: "connection reset".into(),
            retry_in: Duration::from_secs(1),
        }))
    }

    /// Welcomed, joined General with `peers` there; returns the effects of the join.
    fn in_general(&mut self, ice: IceConfig, peers: &[Member]) -> Vec<Effect> {
        self.welcome(false, peers);
        self.command(EngineCommand::Join(ChannelRef("general".into())));
        self.joined(GENERAL, ice, peers)
    }

    /// Our offer to `user` (connection 1) is answered and the connection is up.
    fn call_up(&mut self, user: &str) {
        self.signal(
            user,
            Signal::Answer {
                sdp: "a".into(),
                connection: 1,
            },
        );
        self.peer(key(user, 1), PeerEvent::State(PeerState::Connected));
    }

    fn links(&self) -> Vec<LinkView> {
        self.session.links().collect()
    }
}

fn sent(effects: &[Effect]) -> Vec<&ClientMsg> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Send(m) => Some(m),
            _ => None,
        })
        .collect()
}

fn created(effects: &[Effect]) -> Vec<&PeerKey> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::CreateLink { key, .. } => Some(key),
            _ => None,
        })
        .collect()
}

fn closed(effects: &[Effect]) -> Vec<&PeerKey> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::CloseLink(key) => Some(key),
            _ => None,
        })
        .collect()
}

fn commands(effects: &[Effect]) -> Vec<(&PeerKey, &LinkCommand)> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Link { key, cmd } => Some((key, cmd)),
            _ => None,
        })
        .collect()
}

fn statuses(effects: &[Effect]) -> Vec<&VoiceStatus> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Emit(EngineEvent::Status { status, .. }) => Some(status),
            _ => None,
        })
        .collect()
}

fn errors(effects: &[Effect]) -> Vec<&EngineError> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Emit(EngineEvent::Error { error, .. }) => Some(error),
            _ => None,
        })
        .collect()
}

fn join_msg(channel: ChannelId) -> ClientMsg {
    ClientMsg::Join { channel }
}

// --- joining ---------------------------------------------------------------------------------

#[test]
fn a_join_before_the_welcome_is_sent_once_welcomed() {
    let mut c = Client::new("ann");
    let early = c.command(EngineCommand::Join(ChannelRef("Gaming".into())));
    assert!(sent(&early).is_empty(), "nothing before the welcome");
    let out = c.welcome(false, &[]);
    assert!(sent(&out).contains(&&join_msg(GAMING)));
    assert_eq!(
        statuses(&out).last(),
        Some(&&VoiceStatus::Connecting { channel: GAMING })
    );
}

#[test]
fn a_channel_is_named_case_insensitively_or_by_id_and_an_unknown_one_is_refused_here() {
    let mut c = Client::new("ann");
    c.welcome(false, &[]);
    let by_name = c.command(EngineCommand::Join(ChannelRef(" GENERAL ".into())));
    assert_eq!(sent(&by_name), vec![&join_msg(GENERAL)]);
    let by_id = c.command(EngineCommand::Join(ChannelRef("2".into())));
    assert_eq!(sent(&by_id), vec![&join_msg(GAMING)]);
    let unknown = c.command(EngineCommand::Join(ChannelRef("Lounge".into())));
    assert!(sent(&unknown).is_empty());
    assert_eq!(
        errors(&unknown),
        vec![&EngineError::NoSuchChannel("Lounge".into())]
    );
}

#[test]
fn after_losing_the_server_the_wanted_channel_is_joined_again() {
    let mut c = Client::new("ann");
    c.in_general(IceConfig::default(), &[member("bob", 1)]);
    assert_eq!(c.links().len(), 1);
    let lost = c.lost();
    assert_eq!(
        closed(&lost),
        vec![&key("bob", 1)],
        "calls end with the server"
    );
    assert!(matches!(
        statuses(&lost).last(),
        Some(VoiceStatus::Disconnected {
            reason: DisconnectReason::SignalingLost(_),
            ..
        })
    ));
    assert_eq!(c.session.current(), None);
    let back = c.welcome(false, &[]);
    assert!(sent(&back).contains(&&join_msg(GENERAL)));
    assert_eq!(
        statuses(&back).last(),
        Some(&&VoiceStatus::Connecting { channel: GENERAL })
    );
}

#[test]
fn a_resumed_session_waits_for_its_seat_instead_of_joining() {
    let mut c = Client::new("ann");
    c.in_general(IceConfig::default(), &[]);
    c.lost();
    let back = c.welcome(true, &[]);
    assert!(
        !sent(&back)
            .iter()
            .any(|m| matches!(m, ClientMsg::Join { .. }))
    );
    assert_eq!(
        statuses(&back).last(),
        Some(&&VoiceStatus::Connecting { channel: GENERAL })
    );
    let seated = c.joined(GENERAL, IceConfig::default(), &[]);
    assert_eq!(
        statuses(&seated).last(),
        Some(&&VoiceStatus::Connected { channel: GENERAL })
    );
}

#[test]
fn a_channel_chosen_while_away_is_asked_for_even_when_resumed() {
    // Found by tests/session_sim.rs: the join went to a dead connection, the resumed session
    // had no seat to get back, and the status stayed `connecting` for good.
    let mut c = Client::new("ann");
    c.welcome(false, &[]);
    c.lost();
    c.command(EngineCommand::Join(ChannelRef("General".into())));
    let back = c.welcome(true, &[]);
    assert_eq!(sent(&back).last(), Some(&&join_msg(GENERAL)));
    // Seated in General when lost, Gaming chosen meanwhile: Gaming is asked for.
    let mut c = Client::new("ann");
    c.in_general(IceConfig::default(), &[]);
    c.lost();
    c.command(EngineCommand::Join(ChannelRef("Gaming".into())));
    let back = c.welcome(true, &[]);
    assert_eq!(sent(&back).last(), Some(&&join_msg(GAMING)));
}

#[test]
fn a_seat_no_longer_wanted_is_given_back() {
    // Found by tests/session_sim.rs: left while the connection was down, then the resume gave
    // the seat back, and the client sat there against the user's word.
    let mut c = Client::new("ann");
    c.in_general(IceConfig::default(), &[member("bob", 1)]);
    c.lost();
    c.command(EngineCommand::Leave);
    c.welcome(true, &[]);
    let seated = c.joined(GENERAL, IceConfig::default(), &[member("bob", 1)]);
    assert_eq!(sent(&seated), vec![&ClientMsg::Leave]);
    assert!(created(&seated).is_empty() && statuses(&seated).is_empty());
    assert_eq!(c.session.current(), None);
    // The same for a leave before the join was answered.
    let mut c = Client::new("ann");
    c.welcome(false, &[]);
    c.command(EngineCommand::Join(ChannelRef("General".into())));
    c.command(EngineCommand::Leave);
    let seated = c.joined(GENERAL, IceConfig::default(), &[]);
    assert_eq!(sent(&seated), vec![&ClientMsg::Leave]);
    assert_eq!(c.session.current(), None);
}

#[test]
fn an_expired_resume_joins_the_wanted_channel_anew() {
    let mut c = Client::new("ann");
    c.in_general(IceConfig::default(), &[]);
    c.lost();
    c.welcome(true, &[]);
    let expired = c.server(ServerMsg::Error {
        reason: ErrorReason::ResumeExpired,
        message: "too late".into(),
        channel: None,
    });
    assert_eq!(sent(&expired), vec![&join_msg(GENERAL)]);
}

/// The server's own order after a restart: `welcome` (a new session) and then
/// `resume_expired`. The welcome already asks for the seat; a second `join` would be refused
/// with `already_in_channel` and show the user "disconnected" while seated (found by the
/// hooks test: a `disconnected` hook after the `reconnected` one).
#[test]
fn a_new_session_after_a_lost_resume_joins_once() {
    let mut c = Client::new("ann");
    c.in_general(IceConfig::default(), &[]);
    c.lost();
    let welcomed = c.welcome(false, &[]);
    assert!(
        sent(&welcomed).contains(&&join_msg(GENERAL)),
        "the welcome asks for the seat"
    );
    let expired = c.server(ServerMsg::Error {
        reason: ErrorReason::ResumeExpired,
        message: "resume token unknown".into(),
        channel: None,
    });
    assert!(
        sent(&expired).is_empty(),
        "joined twice: {:?}",
        sent(&expired)
    );
}

#[test]
fn a_refused_join_is_not_retried_after_a_reconnect() {
    let mut c = Client::new("ann");
    c.welcome(false, &[]);
    c.command(EngineCommand::Join(ChannelRef("General".into())));
    let refused = c.server(ServerMsg::Error {
        reason: ErrorReason::AlreadyInVoice,
        message: "you are in voice elsewhere".into(),
        channel: Some(GENERAL),
    });
    assert!(matches!(
        statuses(&refused).last(),
        Some(VoiceStatus::Disconnected {
            reason: DisconnectReason::JoinRefused {
                reason: ErrorReason::AlreadyInVoice,
                ..
            },
            ..
        })
    ));
    c.lost();
    let back = c.welcome(false, &[]);
    assert!(
        !sent(&back)
            .iter()
            .any(|m| matches!(m, ClientMsg::Join { .. }))
    );
}

// --- rejoining while the lost connection's seat is still held ----------------------------------

/// What the server answers a join while this user's seat is held by another connection: in
/// the same channel `already_in_channel` (a killed cluster instance's seat, or a half-open
/// connection's, when we rejoin where we sat), in another `already_in_voice`.
fn seat_taken(reason: ErrorReason) -> ServerMsg {
    ServerMsg::Error {
        reason,
        message: "you are in voice channel 1 from another connection; leave it there first".into(),
        channel: Some(GENERAL),
    }
}

fn own_leave(user: &str) -> ServerMsg {
    ServerMsg::Presence {
        changes: vec![PresenceChange {
            op: PresenceOp::Leave,
            channel: GENERAL,
            member: member(user, 1),
        }],
    }
}

fn joins(effects: &[Effect]) -> usize {
    sent(effects)
        .iter()
        .filter(|m| matches!(m, ClientMsg::Join { .. }))
        .count()
}

/// In General with bob, the server lost and a new (not resumed) session welcomed: the rejoin
/// is sent. Returns the client with the rejoin on its way.
fn rejoining() -> Client {
    let mut c = Client::new("ann");
    c.in_general(IceConfig::default(), &[member("bob", 1)]);
    c.lost();
    let back = c.welcome(false, &[member("ann", 1), member("bob", 1)]);
    assert_eq!(sent(&back).last(), Some(&&join_msg(GENERAL)));
    c
}

fn assert_waiting(c: &Client, effects: &[Effect]) {
    assert!(
        !statuses(effects)
            .iter()
            .any(|s| matches!(s, VoiceStatus::Disconnected { .. })),
        "still connecting: {:?}",
        statuses(effects)
    );
    assert_eq!(
        c.session.status(),
        &VoiceStatus::Connecting { channel: GENERAL }
    );
    assert_eq!(c.session.wanted(), Some(GENERAL));
    assert_eq!(c.session.waiting_for_seat(), Some(GENERAL));
}

#[test]
fn a_rejoin_refused_for_the_lost_connection_s_seat_says_so_and_asks_again_once_it_is_released() {
    for reason in [ErrorReason::AlreadyInChannel, ErrorReason::AlreadyInVoice] {
        let mut c = rejoining();
        let refused = c.server(seat_taken(reason));
        assert_waiting(&c, &refused);
        let [EngineError::SeatStillHeld(held)] = errors(&refused)[..] else {
            panic!("not our own words, once: {:?}", errors(&refused));
        };
        assert_eq!(
            (held.channel, held.name.as_deref()),
            (GENERAL, Some("General"))
        );
        assert!(
            held.to_string()
                .contains("the seat of the lost connection is still held"),
            "{held}"
        );
        assert!(sent(&refused).is_empty(), "not asked again at once");
        // Someone else leaving is no news for us.
        assert_eq!(joins(&c.server(own_leave("bob"))), 0);
        // Our own old seat released (a survivor reaped it): asked at once.
        let released = c.server(own_leave("ann"));
        assert_eq!(sent(&released), vec![&join_msg(GENERAL)], "{reason:?}");
        let seated = c.joined(GENERAL, IceConfig::default(), &[member("bob", 1)]);
        assert_eq!(
            statuses(&seated).last(),
            Some(&&VoiceStatus::Connected { channel: GENERAL })
        );
        assert_eq!(c.session.waiting_for_seat(), None, "the wait is over");
        assert_eq!(joins(&c.advance(SEAT_RETRY)), 0);
    }
}

#[test]
fn a_rejoin_refused_for_the_lost_connection_s_seat_is_asked_again_on_a_timer() {
    let mut c = rejoining();
    let refused_at = c.now.at;
    let refused = c.server(seat_taken(ErrorReason::AlreadyInChannel));
    assert_waiting(&c, &refused);
    assert_eq!(c.session.next_wake(), Some(refused_at + SEAT_RETRY));
    assert_eq!(joins(&c.advance(SEAT_RETRY / 2)), 0, "not yet");
    let asked = c.advance(SEAT_RETRY / 2);
    assert_eq!(sent(&asked), vec![&join_msg(GENERAL)]);
    assert_eq!(joins(&c.advance(SEAT_RETRY)), 0, "once per refusal");
    // Refused again: no second notice, still connecting, asked again later.
    let again = c.server(seat_taken(ErrorReason::AlreadyInChannel));
    assert!(errors(&again).is_empty(), "{:?}", errors(&again));
    assert_waiting(&c, &again);
    assert_eq!(joins(&c.advance(SEAT_RETRY)), 1);
    // The same after a resume the server no longer knew (a resumed welcome, then expiry).
    let mut c = Client::new("ann");
    c.in_general(IceConfig::default(), &[]);
    c.lost();
    c.welcome(true, &[member("ann", 1)]);
    let expired = c.server(ServerMsg::Error {
        reason: ErrorReason::ResumeExpired,
        message: "resume token unknown".into(),
        channel: None,
    });
    assert_eq!(sent(&expired), vec![&join_msg(GENERAL)]);
    let refused = c.server(seat_taken(ErrorReason::AlreadyInChannel));
    assert_waiting(&c, &refused);
    assert_eq!(joins(&c.advance(SEAT_RETRY)), 1);
}

#[test]
fn a_rejoin_gives_up_when_the_seat_is_not_released_within_the_patience() {
    let mut c = rejoining();
    let first = c.now.at;
    c.server(seat_taken(ErrorReason::AlreadyInVoice));
    let mut asks = 0;
    while c.now.at < first + SEAT_PATIENCE {
        let out = c.advance(SEAT_RETRY);
        asks += joins(&out);
        if joins(&out) > 0 {
            let refused = c.server(seat_taken(ErrorReason::AlreadyInVoice));
            if c.now.at < first + SEAT_PATIENCE {
                assert_waiting(&c, &refused);
            } else {
                // The last refusal is final: the old behaviour, with the server's reason.
                assert!(matches!(
                    statuses(&refused).last(),
                    Some(VoiceStatus::Disconnected {
                        reason: DisconnectReason::JoinRefused {
                            reason: ErrorReason::AlreadyInVoice,
                            ..
                        },
                        ..
                    })
                ));
                assert!(matches!(
                    errors(&refused)[..],
                    [EngineError::Server {
                        reason: ErrorReason::AlreadyInVoice,
                        ..
                    }]
                ));
            }
        }
    }
    assert_eq!(
        asks as u32,
        SEAT_PATIENCE.as_secs() as u32 / SEAT_RETRY.as_secs() as u32
    );
    assert_eq!(c.session.wanted(), None);
    assert_eq!(c.session.next_wake(), None);
    assert_eq!(joins(&c.advance(SEAT_RETRY * 5)), 0, "asked no more");
    assert_eq!(joins(&c.server(own_leave("ann"))), 0);
}

#[test]
fn a_join_the_user_asks_for_after_a_reconnect_is_refused_at_once() {
    // Not in voice when the server was lost: the join after the reconnect is the user's.
    let mut c = Client::new("ann");
    c.welcome(false, &[]);
    c.lost();
    c.welcome(false, &[member("ann", 1)]);
    c.command(EngineCommand::Join(ChannelRef("General".into())));
    let refused = c.server(seat_taken(ErrorReason::AlreadyInVoice));
    assert!(matches!(
        statuses(&refused).last(),
        Some(VoiceStatus::Disconnected { .. })
    ));
    assert!(matches!(errors(&refused)[..], [EngineError::Server { .. }]));
    assert_eq!(c.session.wanted(), None);
    assert_eq!(c.session.next_wake(), None);
    assert_eq!(joins(&c.server(own_leave("ann"))), 0);
}

#[test]
fn a_leave_or_a_join_elsewhere_ends_the_wait_for_the_old_seat() {
    let mut c = rejoining();
    c.server(seat_taken(ErrorReason::AlreadyInChannel));
    c.command(EngineCommand::Leave);
    assert_eq!(c.session.next_wake(), None);
    assert_eq!(joins(&c.advance(SEAT_RETRY * 2)), 0);
    assert_eq!(joins(&c.server(own_leave("ann"))), 0);
    // Gaming chosen during the wait: the user's join, whose refusal is final.
    let mut c = rejoining();
    c.server(seat_taken(ErrorReason::AlreadyInChannel));
    let chosen = c.command(EngineCommand::Join(ChannelRef("Gaming".into())));
    assert_eq!(sent(&chosen), vec![&join_msg(GAMING)]);
    let refused = c.server(seat_taken(ErrorReason::AlreadyInVoice));
    assert!(matches!(
        statuses(&refused).last(),
        Some(VoiceStatus::Disconnected { .. })
    ));
    assert_eq!(c.session.wanted(), None);
    assert_eq!(joins(&c.advance(SEAT_RETRY * 2)), 0);
}

#[test]
fn a_join_the_cluster_cannot_carry_out_says_why_and_is_asked_again_after_a_reconnect() {
    let mut c = Client::new("ann");
    c.welcome(false, &[]);
    c.command(EngineCommand::Join(ChannelRef("General".into())));
    let refused = c.server(ServerMsg::Error {
        reason: ErrorReason::ClusterUnavailable,
        message: "voice is unavailable: this server cannot reach the cluster's shared state".into(),
        channel: Some(GENERAL),
    });
    let Some(VoiceStatus::Disconnected { reason, .. }) = statuses(&refused).last() else {
        panic!("no disconnected status: {:?}", statuses(&refused));
    };
    assert!(
        reason.to_string().contains("cannot reach the cluster"),
        "in words: {reason}"
    );
    c.lost();
    let back = c.welcome(false, &[]);
    assert!(
        sent(&back)
            .iter()
            .any(|m| matches!(m, ClientMsg::Join { channel } if *channel == GENERAL)),
        "asked again: {:?}",
        sent(&back)
    );
}

#[test]
fn a_chat_line_the_cluster_cannot_carry_leaves_the_voice_status_alone() {
    let mut c = Client::new("ann");
    c.in_general(IceConfig::default(), &[member("bob", 1)]);
    let refused = c.server(ServerMsg::Error {
        reason: ErrorReason::ClusterUnavailable,
        message: "not sent: this server cannot reach the cluster's shared state".into(),
        channel: Some(GENERAL),
    });
    assert!(statuses(&refused).is_empty(), "{:?}", statuses(&refused));
    assert_eq!(c.session.current(), Some(GENERAL));
}

#[test]
fn switching_channels_ends_the_old_channel_s_calls() {
    let mut c = Client::new("ann");
    c.in_general(IceConfig::default(), &[member("bob", 1)]);
    c.command(EngineCommand::Join(ChannelRef("Gaming".into())));
    let switched = c.joined(GAMING, IceConfig::default(), &[member("cat", 2)]);
    assert_eq!(closed(&switched), vec![&key("bob", 1)]);
    assert_eq!(created(&switched), vec![&key("cat", 2)]);
    assert_eq!(c.session.current(), Some(GAMING));
}

#[test]
fn being_told_we_left_ends_the_calls_and_leaving_tells_the_server() {
    let mut c = Client::new("ann");
    c.in_general(IceConfig::default(), &[member("bob", 1)]);
    let left = c.server(ServerMsg::Left {
        channel: GENERAL,
        reason: LeftReason::Requested,
    });
    assert_eq!(closed(&left), vec![&key("bob", 1)]);
    c.command(EngineCommand::Join(ChannelRef("General".into())));
    c.joined(GENERAL, IceConfig::default(), &[member("bob", 1)]);
    let leave = c.command(EngineCommand::Leave);
    assert_eq!(sent(&leave), vec![&ClientMsg::Leave]);
    assert_eq!(closed(&leave), vec![&key("bob", 2)]);
    assert_eq!(statuses(&leave), vec![&VoiceStatus::None]);
}

#[test]
fn a_fatal_refusal_stops_the_engine_with_the_reason() {
    let mut c = Client::new("ann");
    let out = c.input(Input::Signaling(SignalingEvent::Fatal {
        reason: ErrorReason::InvalidToken,
        message: "bad token".into(),
    }));
    assert!(out.contains(&Effect::Emit(EngineEvent::Fatal {
        reason: ErrorReason::InvalidToken,
        message: "bad token".into(),
    })));
    assert_eq!(out.last(), Some(&Effect::Stop));
}

// --- flags -------------------------------------------------------------------------------------

#[test]
fn flags_go_to_the_server_only_when_they_change_and_again_after_each_welcome() {
    let mut c = Client::new("ann");
    assert!(
        sent(&c.command(EngineCommand::Mute(true))).is_empty(),
        "not yet welcomed"
    );
    let first = c.welcome(false, &[]);
    let flags = ClientMsg::VoiceState {
        muted: true,
        deafened: false,
        talking: false,
    };
    assert_eq!(sent(&first), vec![&flags]);
    assert!(sent(&c.command(EngineCommand::Mute(true))).is_empty());
    assert!(sent(&c.input(Input::MicLive(false))).is_empty());
    let unmuted = c.command(EngineCommand::Mute(false));
    assert_eq!(
        sent(&unmuted),
        vec![&ClientMsg::VoiceState {
            muted: false,
            deafened: false,
            talking: true,
        }]
    );
    assert!(sent(&c.input(Input::MicLive(true))).is_empty());
    let quiet = c.input(Input::MicLive(false));
    assert_eq!(
        sent(&quiet),
        vec![&ClientMsg::VoiceState {
            muted: false,
            deafened: false,
            talking: false,
        }]
    );
    c.lost();
    let again = c.welcome(false, &[]);
    assert_eq!(sent(&again).len(), 1, "the new session is told our flags");
}

#[test]
fn first_audio_is_timed_from_the_join() {
    let mut c = Client::new("ann");
    c.in_general(IceConfig::default(), &[member("bob", 1)]);
    c.now = c.now.after(Duration::from_millis(80));
    let out = c.input(Input::FirstAudio("bob".into()));
    assert_eq!(
        out,
        vec![Effect::Emit(EngineEvent::Audio {
            from: "bob".into(),
            ms: 80
        })]
    );
}

// --- calls and their connections ----------------------------------------------------------

#[test]
fn the_smaller_user_id_offers_and_the_other_only_answers() {
    let mut ann = Client::new("ann");
    let out = ann.in_general(IceConfig::default(), &[member("bob", 1)]);
    assert_eq!(created(&out), vec![&key("bob", 1)]);
    assert_eq!(
        commands(&out),
        vec![(&key("bob", 1), &LinkCommand::Offer { restart: false })]
    );
    let mut bob = Client::new("bob");
    let out = bob.in_general(IceConfig::default(), &[member("ann", 1)]);
    assert_eq!(created(&out), vec![&key("ann", 1)]);
    assert!(commands(&out).is_empty(), "bob waits for ann's offer");
}

#[test]
fn a_peer_joining_or_rejoining_our_channel_starts_a_new_call() {
    let mut c = Client::new("ann");
    c.in_general(IceConfig::default(), &[]);
    let join = |instance| ServerMsg::Presence {
        changes: vec![PresenceChange {
            op: PresenceOp::Join,
            channel: GENERAL,
            member: member("bob", instance),
        }],
    };
    let first = c.server(join(7));
    assert_eq!(created(&first), vec![&key("bob", 1)]);
    assert!(
        c.server(join(7))
            .iter()
            .all(|e| !matches!(e, Effect::CreateLink { .. }))
    );
    let again = c.server(join(8));
    assert_eq!(closed(&again), vec![&key("bob", 1)]);
    assert_eq!(created(&again), vec![&key("bob", 2)]);
    // Presence in another channel starts nothing.
    let elsewhere = c.server(ServerMsg::Presence {
        changes: vec![PresenceChange {
            op: PresenceOp::Join,
            channel: GAMING,
            member: member("cat", 1),
        }],
    });
    assert!(created(&elsewhere).is_empty());
    assert_eq!(c.session.channels()[1].members, vec![member("cat", 1)]);
}

#[test]
fn an_answer_to_a_replaced_connection_is_dropped() {
    let mut c = Client::new("ann");
    c.in_general(IceConfig::default(), &[member("bob", 1)]);
    let stale = c.signal(
        "bob",
        Signal::Answer {
            sdp: "old".into(),
            connection: 0,
        },
    );
    assert!(commands(&stale).is_empty());
    let current = c.signal(
        "bob",
        Signal::Answer {
            sdp: "v=0".into(),
            connection: 1,
        },
    );
    assert_eq!(
        commands(&current),
        vec![(&key("bob", 1), &LinkCommand::RemoteAnswer("v=0".into()))]
    );
}

#[test]
fn the_answerer_follows_the_offerer_s_new_connection_and_echoes_its_number() {
    let mut bob = Client::new("bob");
    bob.in_general(IceConfig::default(), &[member("ann", 1)]);
    let offer = |connection| Signal::Offer {
        sdp: format!("offer {connection}"),
        connection,
    };
    let first = bob.signal("ann", offer(1));
    assert_eq!(
        commands(&first),
        vec![(&key("ann", 1), &LinkCommand::RemoteOffer("offer 1".into()))]
    );
    let answered = bob.input(Input::Link(
        key("ann", 1),
        LinkResult::LocalAnswer("a1".into()),
    ));
    assert_eq!(
        sent(&answered),
        vec![&ClientMsg::Signal {
            to: "ann".into(),
            signal: Signal::Answer {
                sdp: "a1".into(),
                connection: 1
            }
        }]
    );
    // A restart offer on the same connection goes to the same connection.
    let restart = bob.signal("ann", offer(1));
    assert_eq!(commands(&restart)[0].0, &key("ann", 1));
    // A new connection number: ours is rebuilt to match, and the offer goes to the new one.
    let replaced = bob.signal("ann", offer(5));
    assert_eq!(closed(&replaced), vec![&key("ann", 1)]);
    assert_eq!(created(&replaced), vec![&key("ann", 2)]);
    assert_eq!(
        commands(&replaced),
        vec![(&key("ann", 2), &LinkCommand::RemoteOffer("offer 5".into()))]
    );
    let answered = bob.input(Input::Link(
        key("ann", 2),
        LinkResult::LocalAnswer("a5".into()),
    ));
    assert!(matches!(
        sent(&answered)[0],
        ClientMsg::Signal {
            signal: Signal::Answer { connection: 5, .. },
            ..
        }
    ));
    // The offerer may not be offered to.
    let mut ann = Client::new("ann");
    ann.in_general(IceConfig::default(), &[member("bob", 1)]);
    assert!(commands(&ann.signal("bob", offer(1))).is_empty());
}

#[test]
fn local_candidates_wait_for_their_description_then_flow() {
    let mut c = Client::new("ann");
    c.in_general(IceConfig::default(), &[member("bob", 1)]);
    let held = c.peer(key("bob", 1), PeerEvent::LocalCandidate(candidate("host")));
    assert!(sent(&held).is_empty());
    let offer = c.input(Input::Link(
        key("bob", 1),
        LinkResult::LocalOffer("o".into()),
    ));
    let msgs = sent(&offer);
    assert!(matches!(
        msgs[0],
        ClientMsg::Signal {
            signal: Signal::Offer { connection: 1, .. },
            ..
        }
    ));
    assert!(matches!(
        msgs[1],
        ClientMsg::Signal {
            signal: Signal::Candidate { .. },
            ..
        }
    ));
    assert_eq!(msgs.len(), 2);
    let later = c.peer(key("bob", 1), PeerEvent::LocalCandidate(candidate("srflx")));
    assert_eq!(sent(&later).len(), 1);
}

#[test]
fn events_and_results_of_an_old_connection_are_ignored() {
    let mut c = Client::new("ann");
    c.in_general(IceConfig::default(), &[member("bob", 1)]);
    c.signal("bob", Signal::Renew);
    assert_eq!(c.links()[0].key, key("bob", 2));
    let old = key("bob", 1);
    assert!(!c.session.is_current(&old));
    assert!(
        c.peer(old.clone(), PeerEvent::State(PeerState::Failed))
            .is_empty()
    );
    assert!(
        c.peer(old.clone(), PeerEvent::LocalCandidate(candidate("host")))
            .is_empty()
    );
    assert!(
        c.input(Input::Link(old, LinkResult::LocalOffer("late".into())))
            .is_empty()
    );
}

#[test]
fn a_renew_request_makes_the_offerer_build_a_new_connection() {
    let mut ann = Client::new("ann");
    ann.in_general(IceConfig::default(), &[member("bob", 1)]);
    let out = ann.signal("bob", Signal::Renew);
    assert_eq!(closed(&out), vec![&key("bob", 1)]);
    assert_eq!(created(&out), vec![&key("bob", 2)]);
    assert_eq!(
        commands(&out),
        vec![(&key("bob", 2), &LinkCommand::Offer { restart: false })]
    );
    // The answerer does not obey a renew (it may not offer).
    let mut bob = Client::new("bob");
    bob.in_general(IceConfig::default(), &[member("ann", 1)]);
    assert!(bob.signal("ann", Signal::Renew).is_empty());
}

#[test]
fn a_connected_peer_is_reported_with_its_path() {
    let mut c = Client::new("ann");
    c.in_general(IceConfig::default(), &[member("bob", 1)]);
    c.peer(
        key("bob", 1),
        PeerEvent::SelectedPair {
            local: CandidateKind::Host,
            remote: CandidateKind::Host,
        },
    );
    let up = c.peer(key("bob", 1), PeerEvent::State(PeerState::Connected));
    assert!(up.contains(&Effect::Emit(EngineEvent::Peer {
        user: "bob".into(),
        state: CallState::Connected,
        candidate: Some(CandidateKind::Host),
    })));
    // A switch to a relayed path while connected is reported at once.
    let relayed = c.peer(
        key("bob", 1),
        PeerEvent::SelectedPair {
            local: CandidateKind::Relay,
            remote: CandidateKind::Host,
        },
    );
    assert_eq!(
        relayed,
        vec![Effect::Emit(EngineEvent::Peer {
            user: "bob".into(),
            state: CallState::Connected,
            candidate: Some(CandidateKind::Relay),
        })]
    );
    assert_eq!(c.links()[0].candidate, Some(CandidateKind::Relay));
}

#[test]
fn an_unanswered_offer_is_replaced_by_a_new_connection_after_a_while() {
    let mut c = Client::new("ann");
    c.in_general(IceConfig::default(), &[member("bob", 1)]);
    assert!(created(&c.advance(ANSWER_WAIT / 2)).is_empty());
    let out = c.advance(ANSWER_WAIT);
    assert_eq!(closed(&out), vec![&key("bob", 1)]);
    assert_eq!(created(&out), vec![&key("bob", 2)]);
}

// --- TURN credentials and failures -----------------------------------------------------------

#[test]
fn credentials_are_renewed_a_quarter_of_their_lifetime_early() {
    // One hour: renewed 15 minutes early is capped at 5 minutes.
    assert!(!ice_refresh_due(0, 3600, 3299));
    assert!(ice_refresh_due(0, 3600, 3300));
    // Thirty seconds: 7 s early.
    assert!(!ice_refresh_due(100, 130, 122));
    assert!(ice_refresh_due(100, 130, 123));
    // Very short: at least 5 s early; already expired: at once.
    assert!(ice_refresh_due(0, 8, 3));
    assert!(ice_refresh_due(0, 10, 50));
}

#[test]
fn fresh_credentials_are_asked_for_once_when_due_and_not_when_renewal_is_off() {
    let mut c = Client::new("ann");
    let expires = c.now.unix_secs + 40;
    c.in_general(turn_ice(expires, "p1"), &[]);
    assert!(sent(&c.advance(Duration::from_secs(20))).is_empty());
    let due = c.advance(Duration::from_secs(11));
    assert_eq!(sent(&due), vec![&ClientMsg::RefreshIce]);
    assert!(
        sent(&c.advance(Duration::from_secs(1))).is_empty(),
        "asked once"
    );
    // Off: never asked.
    let mut off = Client::with("ann", false);
    let expires = off.now.unix_secs + 40;
    off.in_general(turn_ice(expires, "p1"), &[]);
    assert!(sent(&off.advance(Duration::from_secs(39))).is_empty());
}

#[test]
fn fresh_credentials_rebuild_relayed_connections_and_ask_offerers_to() {
    let mut c = Client::new("bob");
    let expires = c.now.unix_secs + 3600;
    c.in_general(
        turn_ice(expires, "p1"),
        &[member("ann", 1), member("cat", 2)],
    );
    for user in ["ann", "cat"] {
        c.peer(
            key(user, if user == "ann" { 1 } else { 2 }),
            PeerEvent::SelectedPair {
                local: CandidateKind::Relay,
                remote: CandidateKind::Relay,
            },
        );
    }
    let out = c.server(ServerMsg::IceServers {
        ice: turn_ice(expires + 3600, "p2"),
    });
    // cat sorts after bob: bob offers, so bob rebuilds; ann offers, so bob asks her.
    assert_eq!(closed(&out), vec![&key("cat", 2)]);
    assert_eq!(created(&out), vec![&key("cat", 3)]);
    let Some(Effect::CreateLink { config, .. }) =
        out.iter().find(|e| matches!(e, Effect::CreateLink { .. }))
    else {
        unreachable!()
    };
    assert_eq!(config.ice_servers[0].credential.as_deref(), Some("p2"));
    assert!(sent(&out).contains(&&ClientMsg::Signal {
        to: "ann".into(),
        signal: Signal::Renew
    }));
}

#[test]
fn a_restart_after_new_credentials_is_a_new_connection() {
    let mut c = Client::new("ann");
    let expires = c.now.unix_secs + 3600;
    c.in_general(turn_ice(expires, "p1"), &[member("bob", 1)]);
    c.call_up("bob");
    // Renewed while the path was direct: the connection is kept...
    let fresh = c.server(ServerMsg::IceServers {
        ice: turn_ice(expires + 3600, "p2"),
    });
    assert!(created(&fresh).is_empty());
    // ...but when it fails, a restart could not use the new credentials: a new one is built.
    let failed = c.peer(key("bob", 1), PeerEvent::State(PeerState::Failed));
    assert_eq!(closed(&failed), vec![&key("bob", 1)]);
    assert_eq!(created(&failed), vec![&key("bob", 2)]);
    assert_eq!(
        commands(&failed),
        vec![(&key("bob", 2), &LinkCommand::Offer { restart: false })]
    );
}

#[test]
fn all_calls_down_says_why_there_is_no_route() {
    let no_route = |effects: &[Effect]| {
        statuses(effects).iter().find_map(|s| match s {
            VoiceStatus::Disconnected {
                reason: DisconnectReason::NoRoute(why),
                ..
            } => Some(*why),
            _ => None,
        })
    };
    // Answered, so that no connection is replaced on the way (`ANSWER_WAIT`).
    let answer = Signal::Answer {
        sdp: "a".into(),
        connection: 1,
    };
    // No TURN server given.
    let mut c = Client::new("ann");
    c.in_general(IceConfig::default(), &[member("bob", 1)]);
    assert_eq!(no_route(&c.advance(DOWN_LIMIT)), Some(NoRoute::NoTurn));
    // TURN given, gathering finished without a relay candidate: TURN refused us.
    let mut c = Client::new("ann");
    let expires = c.now.unix_secs + 3600;
    c.in_general(turn_ice(expires, "p"), &[member("bob", 1)]);
    c.signal("bob", answer.clone());
    c.peer(key("bob", 1), PeerEvent::LocalCandidate(candidate("host")));
    c.peer(key("bob", 1), PeerEvent::GatheringComplete);
    assert_eq!(no_route(&c.advance(DOWN_LIMIT)), Some(NoRoute::TurnRefused));
    // With a relay candidate gathered, every path simply failed.
    let mut c = Client::new("ann");
    c.in_general(turn_ice(expires, "p"), &[member("bob", 1)]);
    c.signal("bob", answer);
    c.peer(key("bob", 1), PeerEvent::LocalCandidate(candidate("relay")));
    c.peer(key("bob", 1), PeerEvent::GatheringComplete);
    let down = c.advance(DOWN_LIMIT);
    assert_eq!(no_route(&down), Some(NoRoute::AllPathsFailed));
    // A peer connecting again brings the status back.
    let up = c.peer(key("bob", 1), PeerEvent::State(PeerState::Connected));
    assert_eq!(
        statuses(&up),
        vec![&VoiceStatus::Connected { channel: GENERAL }]
    );
}

#[test]
fn shutdown_stops_and_other_engine_commands_are_not_the_session_s() {
    let mut c = Client::new("ann");
    assert_eq!(c.command(EngineCommand::Shutdown), vec![Effect::Stop]);
    assert!(c.command(EngineCommand::Stats).is_empty());
    assert!(
        c.command(EngineCommand::SetVoiceActivity {
            threshold_dbfs: -40.0,
            hangover_frames: 10
        })
        .is_empty()
    );
}

// --- timers ------------------------------------------------------------------------------------

#[test]
fn nothing_waits_when_idle_or_connected_without_expiring_credentials() {
    let mut c = Client::new("ann");
    assert_eq!(c.session.next_wake(), None);
    c.in_general(IceConfig::default(), &[member("bob", 1)]);
    c.call_up("bob");
    assert_eq!(c.session.next_wake(), None);
}

#[test]
fn the_wake_time_is_the_earliest_timer_and_ticking_then_acts() {
    // An unanswered offer: the down limit (status) and the answer wait, both 10 s away.
    let mut c = Client::new("ann");
    c.in_general(IceConfig::default(), &[member("bob", 1)]);
    let t0 = c.now.at;
    assert_eq!(
        c.session.next_wake(),
        Some(t0 + ANSWER_WAIT.min(DOWN_LIMIT))
    );
    // A disconnected call: its restart is due DISCONNECTED_GRACE later.
    c.call_up("bob");
    c.now = c.now.after(Duration::from_secs(1));
    c.peer(key("bob", 1), PeerEvent::State(PeerState::Disconnected));
    let wake = c.session.next_wake().expect("a restart waits");
    assert_eq!(wake, c.now.at + DISCONNECTED_GRACE);
    // Just before: nothing. At the wake time: the restart offer.
    c.now.at = wake - Duration::from_millis(1);
    assert!(commands(&c.input(Input::Tick)).is_empty());
    c.now.at = wake;
    let restart = c.input(Input::Tick);
    assert_eq!(
        commands(&restart),
        vec![(&key("bob", 1), &LinkCommand::Offer { restart: true })]
    );
    // Now the call's down limit (for the status line) comes before the restart's answer
    // wait runs out.
    let down_at = wake - DISCONNECTED_GRACE;
    assert_eq!(c.session.next_wake(), Some(down_at + DOWN_LIMIT));
    assert!(down_at + DOWN_LIMIT < wake + ANSWER_WAIT);
}

#[test]
fn a_timer_that_runs_out_just_before_another_input_still_gets_its_tick() {
    // The engine gives the session a captured frame's `MicLive` every frame. One that lands
    // between the answer wait running out and the tick for it used to hide that timer for
    // good: the unanswered offer was never replaced (seen in the frozen-peer test).
    let mut c = Client::new("ann");
    c.in_general(IceConfig::default(), &[member("bob", 1)]);
    let due = c.session.next_wake().expect("the answer wait");
    assert_eq!(due, c.now.at + ANSWER_WAIT.min(DOWN_LIMIT));
    c.now.at = due + Duration::from_millis(1);
    c.input(Input::MicLive(true));
    assert_eq!(c.session.next_wake(), Some(due), "still due: at once");
    let renewed = c.input(Input::Tick);
    assert_eq!(
        commands(&renewed),
        vec![(&key("bob", 2), &LinkCommand::Offer { restart: false })]
    );
    assert!(c.session.next_wake().is_some_and(|t| t > c.now.at));
}

#[test]
fn a_failed_restart_too_soon_after_the_last_wakes_when_it_is_allowed() {
    let mut c = Client::new("ann");
    c.in_general(IceConfig::default(), &[member("bob", 1)]);
    let answer = Signal::Answer {
        sdp: "a".into(),
        connection: 1,
    };
    c.signal("bob", answer.clone());
    c.peer(key("bob", 1), PeerEvent::State(PeerState::Failed));
    // Restarted at once; answered; failing again 1 s later is too soon to restart.
    c.signal("bob", answer);
    let restarted_at = c.now.at;
    c.now = c.now.after(Duration::from_secs(1));
    c.peer(key("bob", 1), PeerEvent::State(PeerState::Connected));
    let again = c.peer(key("bob", 1), PeerEvent::State(PeerState::Failed));
    assert!(commands(&again).is_empty());
    assert_eq!(c.session.next_wake(), Some(restarted_at + RESTART_INTERVAL));
}

#[test]
fn the_credentials_renewal_wakes_the_session_when_due() {
    let mut c = Client::new("ann");
    let expires = c.now.unix_secs + 40;
    c.in_general(turn_ice(expires, "p1"), &[]);
    // 40 s lifetime: renewed 10 s early, 30 s from now.
    let wake = c.session.next_wake().expect("a renewal waits");
    assert_eq!(wake, c.now.at + Duration::from_secs(30));
    c.now = c.now.after(Duration::from_secs(30));
    assert_eq!(sent(&c.input(Input::Tick)), vec![&ClientMsg::RefreshIce]);
    assert_eq!(
        c.session.next_wake(),
        None,
        "asked; the reply sets the next"
    );
}
