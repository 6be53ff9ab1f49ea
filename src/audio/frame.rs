//! The one audio format inside the client: 48 kHz mono `f32`, 20 ms frames.
//!
//! Everything between capture and playback (sources, codec, jitter buffer, mixer, sinks) agrees
//! on this format so no stage converts or reallocates per frame. Samples are nominally in
//! `[-1.0, 1.0]`; only the mixer's output is *guaranteed* to stay inside that range.
//! This module holds constants and a fixed-size frame type; it must never grow logic.

use std::time::Duration;

/// Sample rate of every signal inside the client, and the RTP clock rate of Opus (RFC 7587).
pub const SAMPLE_RATE: u32 = 48_000;

/// Length of one frame: the engine pulls and sends audio in 20 ms steps.
pub const FRAME_MS: u32 = 20;

/// Samples in one mono frame (`SAMPLE_RATE * FRAME_MS / 1000`).
pub const FRAME_SAMPLES: usize = 960;

/// [`FRAME_MS`] as a [`Duration`], for clocks and jitter arithmetic.
pub const FRAME_DURATION: Duration = Duration::from_millis(FRAME_MS as u64);

/// One 20 ms mono frame. A plain array: it lives on the stack or inside a reused buffer, so the
/// per-frame path never allocates.
pub type Frame = [f32; FRAME_SAMPLES];

/// A frame of digital silence.
pub const SILENT_FRAME: Frame = [0.0; FRAME_SAMPLES];

// The constants above must describe the same thing.
const _: () = assert!(FRAME_SAMPLES == (SAMPLE_RATE * FRAME_MS / 1000) as usize);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_duration_matches_sample_count() {
        let from_samples = Duration::from_secs_f64(FRAME_SAMPLES as f64 / f64::from(SAMPLE_RATE));
        assert_eq!(from_samples, FRAME_DURATION);
    }
}
