//! What a peer connection is built from: ICE servers, relay-only and loopback modes, ICE
//! liveness timers. Plain data, filled in by the engine from the server's `IceConfig`.
//!
//! Must never hold a webrtc type: `api.rs` translates this into webrtc's configuration.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// One ICE server as the signaling server hands it out (same shape as the wire protocol's).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IceServerSpec {
    /// `stun:`, `turn:` (UDP, or TCP with `?transport=tcp`) and `turns:` (TLS) URLs. TCP and
    /// TLS come from our patched webrtc-ice (`vendor/webrtc-ice/VENDORED.md`); their relay
    /// candidates rank below UDP's.
    pub urls: Vec<String>,
    /// TURN username (`"<unix_expiry>:<user>"` with coturn's `use-auth-secret`).
    pub username: Option<String>,
    /// TURN password (`base64(HMAC-SHA1(secret, username))` with `use-auth-secret`).
    pub credential: Option<String>,
}

/// ICE liveness timers. webrtc's defaults (5 s / +25 s / 2 s) are too slow for a voice UI.
///
/// The keepalive (RFC 7675 consent checks, sent whether or not media flows) is all a silent
/// call (push-to-talk released, muted, DTX) sends besides RTCP: per interval, both agents'
/// checks plus the controlled agent's triggered check, three requests and three responses,
/// ~700 bytes on the wire (measured with tcpdump, BENCHMARKS.md). Every 4 s that and the RTCP
/// reports stay under 1 kbit/s per peer each way (1 s cost 3.9 kbit/s). Each side then hears
/// from the other at least every ~4 s, so `disconnected` sits 2 s above that: a frozen peer is
/// noticed 6–10 s after it stops (the agent looks once per keepalive interval).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IceTimeouts {
    /// No traffic at all from the remote for this long: state `Disconnected`.
    pub disconnected: Duration,
    /// Further silence after `disconnected` before `Failed` (the agent adds the two:
    /// `webrtc-ice-0.17.2/src/agent/agent_internal.rs:459-467`).
    pub failed: Duration,
    /// Interval of STUN consent checks on the selected pair; these keep a silent (muted,
    /// push-to-talk) call alive, so it must be well below `disconnected`.
    pub keepalive: Duration,
}

impl Default for IceTimeouts {
    fn default() -> Self {
        Self {
            disconnected: Duration::from_secs(6),
            failed: Duration::from_secs(7),
            keepalive: Duration::from_secs(4),
        }
    }
}

/// Everything needed to build one peer connection.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeerConfig {
    /// STUN/TURN servers. Fixed for the life of the peer: webrtc 0.17.2 builds its ICE agent
    /// once and ignores later `set_configuration` calls (see NOTES.md), so new TURN
    /// credentials need a new [`Peer`](super::Peer).
    pub ice_servers: Vec<IceServerSpec>,
    /// Gather and use relay candidates only (privacy mode, and the way to test TURN).
    pub relay_only: bool,
    /// Test mode: gather on 127.0.0.1 only (loopback included, every other address filtered
    /// out), so tests never touch a real interface.
    pub loopback: bool,
    /// ICE liveness timers.
    pub timeouts: IceTimeouts,
}
