//! Turning a client's text frame into a [`ClientMsg`], telling apart the ways it can be wrong
//! so the server can answer each with its own reason.

use crate::{ClientMsg, ErrorReason};

/// Every `type` a client may send in this protocol version.
pub const CLIENT_TYPES: &[&str] = &[
    "hello",
    "join",
    "leave",
    "voice_state",
    "signal",
    "refresh_ice",
];

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
    if !CLIENT_TYPES.contains(&kind.as_str()) {
        return Err(DecodeError {
            reason: ErrorReason::UnknownType,
            message: format!("unknown message type `{}`", truncate(&kind, 64)),
        });
    }
    serde_json::from_value(value).map_err(|e| invalid(&format!("bad `{kind}` message: {e}")))
}

fn invalid(message: &str) -> DecodeError {
    DecodeError {
        reason: ErrorReason::InvalidMessage,
        message: message.to_owned(),
    }
}

fn truncate(s: &str, max_chars: usize) -> String {
    s.chars().take(max_chars).collect()
}
