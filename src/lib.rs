//! `cromulent`: the terminal voice client of Cromulent Voice.
//!
//! - [`engine`]: the voice engine both front ends drive (signaling, calls, audio, talk state);
//! - [`signaling`]: the WebSocket connection to `cromulent-server`;
//! - [`rtc`]: the WebRTC edge (webrtc-rs 0.17.2), the only module that knows webrtc;
//! - [`rtp`]: RTP arithmetic of RFC 3550 (sequence extension, interarrival jitter, receiver
//!   statistics), pure, shared by `rtc` and the jitter buffer;
//! - [`audio`]: sources, sinks, Opus, jitter buffer, mixer, levels, analysis;
//! - [`headless`]: `cromulent headless`, scripted runs writing JSON-lines events;
//! - [`tui`]: the terminal client (`cromulent`, `cromulent demo`);
//! - [`ctl`]: the control socket a running client listens on, and `cromulent ctl`;
//! - [`hooks`]: commands run on events (someone joined, a mention, a disconnect);
//! - [`text`]: text from the wire made safe to show;
//! - [`tls`]: whom the client trusts over TLS (`wss://` and `turns:`): the system's roots and
//!   a private CA.
//!
//! `unsafe` must never appear in this crate (forbidden crate-wide).
#![forbid(unsafe_code)]

pub mod audio;
pub mod ctl;
pub mod engine;
pub mod headless;
pub mod hooks;
pub mod rtc;
pub mod rtp;
pub mod signaling;
pub mod text;
pub mod tls;
pub mod tui;
