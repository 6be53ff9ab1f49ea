//! The wire format pinned down: every message round-trips, the JSON shape is the documented one,
//! each way a frame can be malformed gets its own reason with a bounded message, and
//! `docs/PROTOCOL.md` names every type and error reason. Plain unit tests: they must never open
//! a socket, and the shape checks compare with literal JSON, never with what the types produce.

use super::*;
use decode::CLIENT_TYPES;

fn sample_member() -> Member {
    Member {
        user: "alice".into(),
        name: "Alice".into(),
        muted: true,
        deafened: false,
        talking: false,
        instance: 3,
    }
}

fn every_client_msg() -> Vec<ClientMsg> {
    vec![
        ClientMsg::Hello {
            protocol: PROTOCOL_VERSION,
            name: Some("alice".into()),
            token: None,
            resume: Some("r".into()),
        },
        ClientMsg::Join { channel: 2 },
        ClientMsg::Leave,
        ClientMsg::VoiceState {
            muted: true,
            deafened: false,
            talking: true,
        },
        ClientMsg::Signal {
            to: "bob".into(),
            signal: Signal::Candidate {
                candidate: "candidate:1 1 udp 1 127.0.0.1 5000 typ host".into(),
                sdp_mid: Some("0".into()),
                sdp_mline_index: Some(0),
                username_fragment: None,
            },
        },
        ClientMsg::Signal {
            to: "bob".into(),
            signal: Signal::Offer {
                sdp: "v=0".into(),
                connection: 1,
            },
        },
        ClientMsg::RefreshIce,
        ClientMsg::Ping { id: 7 },
    ]
}

#[test]
fn every_client_message_round_trips_and_its_type_is_known() {
    for msg in every_client_msg() {
        let text = msg.to_json();
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        let kind = value["type"].as_str().unwrap();
        assert!(
            CLIENT_TYPES.contains(&kind),
            "{kind} missing from CLIENT_TYPES"
        );
        assert_eq!(decode_client(&text), Ok(msg));
    }
}

#[test]
fn every_server_message_round_trips() {
    let ice = IceConfig {
        servers: vec![IceServer {
            urls: vec!["turn:127.0.0.1:3478".into()],
            username: Some("1700000000:alice".into()),
            credential: Some("c".into()),
        }],
        expires_at: Some(1_700_000_000),
    };
    let msgs = vec![
        ServerMsg::Welcome {
            protocol: PROTOCOL_VERSION,
            user: UserInfo {
                id: "alice".into(),
                name: "alice".into(),
            },
            session: SessionInfo {
                resume_token: "t".into(),
                resume_grace_ms: 30_000,
            },
            resumed: false,
            heartbeat: Heartbeat {
                ping_interval_ms: 5000,
                timeout_ms: 20_000,
            },
            channels: vec![ChannelInfo {
                id: 1,
                name: "General".into(),
                members: vec![sample_member()],
            }],
        },
        ServerMsg::Presence {
            changes: vec![PresenceChange {
                op: PresenceOp::Leave,
                channel: 1,
                member: sample_member(),
            }],
        },
        ServerMsg::Joined {
            channel: 1,
            ice: ice.clone(),
            peers: vec![sample_member()],
        },
        ServerMsg::Left {
            channel: 1,
            reason: LeftReason::Switched,
        },
        ServerMsg::IceServers { ice },
        ServerMsg::Signal {
            from: "bob".into(),
            signal: Signal::Answer {
                sdp: "v=0".into(),
                connection: 1,
            },
        },
        ServerMsg::Error {
            reason: ErrorReason::AlreadyInVoice,
            message: "m".into(),
            channel: Some(2),
        },
    ];
    for msg in msgs {
        assert_eq!(decode_server(&msg.to_json()).unwrap(), msg);
    }
}

#[test]
fn wire_shape_is_the_documented_one() {
    let text = ClientMsg::Join { channel: 7 }.to_json();
    assert_eq!(text, r#"{"type":"join","channel":7}"#);
    let text = ServerMsg::error(ErrorReason::AlreadyInChannel, "x").to_json();
    assert_eq!(
        text,
        r#"{"type":"error","reason":"already_in_channel","message":"x"}"#
    );
    let ice = IceConfig::default();
    let v: serde_json::Value = serde_json::to_value(&ice).unwrap();
    assert_eq!(v, serde_json::json!({"servers": [], "expires_at": null}));
}

#[test]
fn error_reason_names_match_serde() {
    for r in ErrorReason::ALL {
        assert_eq!(serde_json::to_value(r).unwrap(), r.as_str());
    }
}

#[test]
fn malformed_frames_get_distinct_reasons() {
    let cases = [
        ("{not json", ErrorReason::BadJson),
        ("", ErrorReason::BadJson),
        ("[1,2]", ErrorReason::InvalidMessage),
        ("42", ErrorReason::InvalidMessage),
        (r#"{"channel":1}"#, ErrorReason::InvalidMessage),
        (r#"{"type":5}"#, ErrorReason::InvalidMessage),
        (r#"{"type":"dance"}"#, ErrorReason::UnknownType),
        (r#"{"type":"join"}"#, ErrorReason::InvalidMessage),
        (
            r#"{"type":"join","channel":"one"}"#,
            ErrorReason::InvalidMessage,
        ),
        (
            r#"{"type":"join","channel":-1}"#,
            ErrorReason::InvalidMessage,
        ),
        (
            r#"{"type":"join","channel":1,"extra":true}"#,
            ErrorReason::InvalidMessage,
        ),
        (r#"{"type":"leave","extra":1}"#, ErrorReason::InvalidMessage),
        (
            r#"{"type":"refresh_ice","force":true}"#,
            ErrorReason::InvalidMessage,
        ),
        (
            r#"{"type":"signal","to":"bob","signal":{"kind":"shout"}}"#,
            ErrorReason::InvalidMessage,
        ),
        (
            r#"{"type":"voice_state","muted":"yes","deafened":false,"talking":false}"#,
            ErrorReason::InvalidMessage,
        ),
    ];
    for (text, reason) in cases {
        let err = decode_client(text).expect_err(text);
        assert_eq!(err.reason, reason, "{text}: {}", err.message);
        assert!(!err.message.is_empty());
    }
}

#[test]
fn unknown_type_message_is_bounded() {
    let long = "x".repeat(10_000);
    let err = decode_client(&format!(r#"{{"type":"{long}"}}"#)).unwrap_err();
    assert!(err.message.len() < 200);
}

#[test]
fn invalid_message_detail_is_bounded_whatever_serde_quotes() {
    let long = "k".repeat(60 * 1024);
    for text in [
        format!(r#"{{"type":"join","channel":1,"{long}":1}}"#),
        format!(r#"{{"type":"leave","{long}":1}}"#),
        format!(r#"{{"type":"signal","to":"b","signal":{{"kind":"{long}"}}}}"#),
    ] {
        let err = decode_client(&text).unwrap_err();
        assert_eq!(err.reason, ErrorReason::InvalidMessage);
        assert!(
            err.message.len() <= MAX_ERROR_MESSAGE_BYTES,
            "{}",
            err.message.len()
        );
    }
}

#[test]
fn error_messages_are_cut_at_a_character_boundary() {
    let msg = ServerMsg::error_in(ErrorReason::NotFound, "é".repeat(1000), Some(7));
    let ServerMsg::Error {
        message, channel, ..
    } = msg
    else {
        unreachable!()
    };
    assert!(message.len() <= MAX_ERROR_MESSAGE_BYTES);
    assert_eq!(channel, Some(7));
    let short = ServerMsg::error(ErrorReason::NotFound, "short");
    assert!(matches!(short, ServerMsg::Error { message, .. } if message == "short"));
}

#[test]
fn protocol_doc_names_every_type_and_error_reason() {
    let doc = include_str!("../../docs/PROTOCOL.md");
    for kind in CLIENT_TYPES {
        assert!(
            doc.contains(&format!("### `{kind}`")),
            "PROTOCOL.md lacks client type {kind}"
        );
    }
    for kind in [
        "welcome",
        "presence",
        "joined",
        "left",
        "ice_servers",
        "signal",
        "message",
        "history",
        "error",
    ] {
        assert!(
            doc.contains(&format!("### `{kind}`")),
            "PROTOCOL.md lacks server type {kind}"
        );
    }
    let reasons = doc.split("## Error reasons").nth(1).expect("error table");
    for r in ErrorReason::ALL {
        assert!(
            reasons.contains(&format!("| `{}` |", r.as_str())),
            "PROTOCOL.md lacks {r}"
        );
    }
}
