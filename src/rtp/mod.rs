//! RTP arithmetic, pure: the parts of RFC 3550 that both ends of a stream compute, written once.
//!
//! - [`seq`]: extending 16-bit sequence numbers that wrap at 65535 into a monotone `i64`
//!   (the cycle counting of RFC 3550 appendix A.1);
//! - [`jitter`]: the interarrival-jitter core of §6.4.1 / appendix A.8 (the transit change
//!   `D(i-1,i)` and the 1/16 smoothing);
//! - [`packetizer`]: the sending side's RTP clock (marker, sequence number, timestamp);
//! - [`receiver`]: RFC 3550 receiver statistics of one inbound stream (packets, expected minus
//!   received, jitter as the RFC computes it) for the peer report.
//!
//! Callers: the WebRTC adapter (`rtc`) counts every packet it reads with [`ReceiverStats`]; the
//! jitter buffer (`audio::jitter`) extends sequence numbers with [`seq::extend`] and sizes itself
//! from [`InterarrivalJitter`], skipping discontinuities on purpose (see its `estimate.rs`).
//!
//! Owns no I/O: no sockets, no clock (arrival times are arguments), no threads. Must never
//! depend on webrtc or on the audio pipeline, so that both can use it.

pub mod jitter;
pub mod packetizer;
pub mod receiver;
pub mod seq;

pub use jitter::InterarrivalJitter;
pub use packetizer::{Packetizer, RtpHeader};
pub use receiver::ReceiverStats;

/// RTP clock rate of Opus, the only codec we carry (RFC 7587: always 48 kHz whatever the coded
/// bandwidth). RTP timestamps count in these units.
pub const OPUS_CLOCK_RATE: u32 = 48_000;
