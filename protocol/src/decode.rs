//! Turning a client's text frame into a [`ClientMsg`], telling apart the ways it can be wrong
//! so the server can answer each with its own reason.
//! Must never echo unbounded input: quoted types and fields are cut to 64 characters and
//! serde's detail to the protocol's error-message bound, so a reply does not grow with the frame.

use crate::{ClientMsg, ErrorReason, bound_error_message};

/// Every `type` a client may send in this protocol version.
pub const CLIENT_TYPES: &[&str] = &[
    "hello",
    "join",
    "leave",
    "voice_state",
    "signal",
    "refresh_ice",
    "ping",
    "say",
    "watch",
    "history",
];

/// Types that carry nothing but `type`. serde lets a unit variant ignore extra fields, so
/// they are refused here, as every other type refuses unknown fields.
const FIELDLESS_TYPES: &[&str] = &["leave", "refresh_ice"];

/// Why a frame could not be decoded, with a reason the client can act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    pub reason: ErrorReason,
    pub message: String,
}

/// Decode one client frame: `bad_json` if it is not JSON, `invalid_message` if it is not an
/// object with a string `type`, `unknown_type` for a type this version lacks, and
/// `invalid_message` (with serde's detail) for wrong or missing fields.
pub fn decode_client(text: &str) -> Result<ClientMsg, DecodeError> {
    let value: serde_json::Value = serde_json::from_str(text).map_err(|e| DecodeError {
        reason: ErrorReason::BadJson,
        message: format!("not valid JSON: {e}"),
    })?;
    let kind = match value.get("type") {
        Some(serde_json::Value::String(kind)) => kind.clone(),
        Some(_) => return Err(invalid("field `type` must be a string")),
        None if value.is_object() => return Err(invalid("missing field `type`")),
        None => return Err(invalid("a message must be a JSON object")),
    };
    if FIELDLESS_TYPES.contains(&kind.as_str())
        && let Some(extra) = value
            .as_object()
            .and_then(|o| o.keys().find(|k| *k != "type"))
    {
        return Err(invalid(&format!(
            "bad `{kind}` message: unknown field `{}`, `{kind}` takes no fields",
            truncate(extra, 64)
        )));
    }
    if !CLIENT_TYPES.contains(&kind.as_str()) {
        return Err(DecodeError {
            reason: ErrorReason::UnknownType,
            message: format!("unknown message type `{}`", truncate(&kind, 64)),
        });
    }
    serde_json::from_value(value).map_err(|e| invalid(&format!("bad `{kind}` message: {e}")))
}

fn invalid(message: &str) -> DecodeError {
    // serde's detail quotes what it did not like (a field name can be 60 KB); the reply must
    // not grow with the input.
    DecodeError {
        reason: ErrorReason::InvalidMessage,
        message: bound_error_message(message.to_owned()),
    }
}

fn truncate(s: &str, max_chars: usize) -> String {
    s.chars().take(max_chars).collect()
}
