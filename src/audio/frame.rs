//! The one audio format inside the client: 48 kHz mono `f32`, 20 ms frames (or 10 or 5 ms:
//! [`FrameSize`]).
//!
//! Everything between capture and playback (sources, codec, jitter buffer, mixer, sinks) agrees
//! on this format so no stage converts or reallocates per frame. Samples are nominally in
//! `[-1.0, 1.0]`; only the mixer's output is *guaranteed* to stay inside that range.
//! This module holds constants and a fixed-size frame type; it must never grow logic.

use std::time::Duration;

/// Sample rate of every signal inside the client, and the RTP clock rate of Opus (RFC 7587).
pub const SAMPLE_RATE: u32 = 48_000;

/// Length of the default frame (and the largest): the engine pulls and sends audio in 20 ms
/// steps unless told 10 or 5 ms ([`FrameSize`]).
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

/// The engine's frame length: what this client captures, encodes and plays per step. 20 ms
/// (the default, [`FRAME_MS`]); 10 ms halves the time a sound waits for its frame to fill at
/// the cost of twice the packets; 5 ms is the low-delay mode (issue 22: CELT only, no in-band
/// FEC, four times the packets — see `codec::EncoderConfig::for_frame`). A [`Frame`] buffer
/// holds any of them; a shorter frame uses its start.
///
/// Peers may send other lengths (any Opus packet duration, `codec::PacketDuration`): this is
/// only our own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FrameSize {
    Ms5,
    Ms10,
    #[default]
    Ms20,
}

impl FrameSize {
    pub const fn ms(self) -> u32 {
        match self {
            FrameSize::Ms5 => 5,
            FrameSize::Ms10 => 10,
            FrameSize::Ms20 => 20,
        }
    }

    /// Samples in one mono frame at [`SAMPLE_RATE`].
    pub const fn samples(self) -> usize {
        (SAMPLE_RATE / 1000 * self.ms()) as usize
    }

    pub const fn duration(self) -> Duration {
        Duration::from_millis(self.ms() as u64)
    }

    /// The frame size whose packets hold `samples` samples, if it is one of ours.
    pub fn of_samples(samples: usize) -> Option<Self> {
        [FrameSize::Ms5, FrameSize::Ms10, FrameSize::Ms20]
            .into_iter()
            .find(|f| f.samples() == samples)
    }
}

impl std::str::FromStr for FrameSize {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().trim_end_matches("ms") {
            "5" => Ok(FrameSize::Ms5),
            "10" => Ok(FrameSize::Ms10),
            "20" => Ok(FrameSize::Ms20),
            _ => Err(format!(
                "unsupported frame size {s:?}: use 5, 10 or 20 (ms)"
            )),
        }
    }
}

impl std::fmt::Display for FrameSize {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ms", self.ms())
    }
}

// The constants above must describe the same thing.
const _: () = assert!(FRAME_SAMPLES == (SAMPLE_RATE * FRAME_MS / 1000) as usize);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_sizes_parse_and_count_their_samples() {
        assert_eq!("5".parse(), Ok(FrameSize::Ms5));
        assert_eq!("5ms".parse(), Ok(FrameSize::Ms5));
        assert_eq!("10".parse(), Ok(FrameSize::Ms10));
        assert_eq!("20ms".parse(), Ok(FrameSize::Ms20));
        assert!("15".parse::<FrameSize>().is_err());
        assert!("2.5".parse::<FrameSize>().is_err());
        assert_eq!(FrameSize::Ms5.samples(), 240);
        assert_eq!(FrameSize::Ms5.duration(), Duration::from_millis(5));
        assert_eq!(FrameSize::of_samples(240), Some(FrameSize::Ms5));
        assert_eq!(FrameSize::Ms10.samples(), 480);
        assert_eq!(FrameSize::Ms20.samples(), FRAME_SAMPLES);
        assert_eq!(FrameSize::Ms20.duration(), FRAME_DURATION);
        assert_eq!(FrameSize::of_samples(480), Some(FrameSize::Ms10));
        assert_eq!(FrameSize::of_samples(2880), None);
    }

    #[test]
    fn frame_duration_matches_sample_count() {
        let from_samples = Duration::from_secs_f64(FRAME_SAMPLES as f64 / f64::from(SAMPLE_RATE));
        assert_eq!(from_samples, FRAME_DURATION);
    }
}
