//! The frame decoder on random input: it never panics, every refusal has a reason and a
//! bounded message, and whatever it accepts survives a round trip. Runs a bounded number of
//! cases in CI; a longer run: `PROPTEST_CASES=200000 cargo test -p cromulent-protocol --test
//! decode_fuzz --release`.

use cromulent_protocol::{CLIENT_TYPES, MAX_ERROR_MESSAGE_BYTES, decode_client};
use proptest::prelude::*;
use serde_json::{Map, Value};

/// Any JSON value, a few levels deep.
fn json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u32>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        ".{0,40}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(field_name(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Field names the protocol uses, and others.
fn field_name() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "type",
            "protocol",
            "name",
            "token",
            "resume",
            "channel",
            "muted",
            "deafened",
            "talking",
            "to",
            "signal",
            "kind",
            "sdp",
            "connection",
            "candidate",
            "sdp_mid",
            "sdp_mline_index",
            "username_fragment",
        ])
        .prop_map(str::to_owned),
        ".{0,12}",
    ]
}

/// An object whose `type` is (mostly) a real client type, with random fields.
fn message_like() -> impl Strategy<Value = String> {
    let kind = prop_oneof![
        prop::sample::select(CLIENT_TYPES.to_vec()).prop_map(str::to_owned),
        ".{0,12}",
    ];
    (
        kind,
        prop::collection::btree_map(field_name(), json(), 0..6),
    )
        .prop_map(|(kind, fields)| {
            let mut m: Map<String, Value> = fields.into_iter().collect();
            m.insert("type".into(), Value::String(kind));
            Value::Object(m).to_string()
        })
}

fn check(text: &str) {
    match decode_client(text) {
        Ok(msg) => {
            let again = decode_client(&msg.to_json()).expect("an accepted message re-decodes");
            assert_eq!(again, msg);
        }
        Err(e) => {
            assert!(!e.message.is_empty(), "{text:?}");
            assert!(
                e.message.len() <= MAX_ERROR_MESSAGE_BYTES,
                "{}",
                e.message.len()
            );
        }
    }
}

/// `PROPTEST_CASES` from the environment (for a longer run), else `default`.
fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(2000)))]

    #[test]
    fn arbitrary_text_never_panics(text in ".{0,200}") {
        check(&text);
    }

    #[test]
    fn arbitrary_json_never_panics(value in json()) {
        check(&value.to_string());
    }

    #[test]
    fn message_shaped_json_never_panics(text in message_like()) {
        check(&text);
    }
}
