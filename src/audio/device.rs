//! Microphone and speaker through cpal (cargo feature `devices`, on by default): a
//! [`DeviceSource`] and a [`DeviceSink`] that look to the engine like any other 48 kHz mono
//! source and sink.
//!
//! The device runs on cpal's callback thread at its own rate, format and channel count; the
//! engine pulls and pushes 20 ms frames on its own clock. Between them sits a lock-free SPSC
//! [`ring`] of 48 kHz mono samples. The callbacks only convert (channels → mono → 48 kHz, or
//! back) and move samples through the ring: no allocation, no locks, no I/O, no logging.
//! Clock drift between the two sides is bounded by dropping the oldest audio when a ring backs
//! up and by re-priming with silence when it runs dry.
//!
//! Opening never panics and never blocks for long; with no usable device (no sound card, only
//! ALSA's `null` device, a built-without-`devices` binary) it fails with a [`DeviceError`] that
//! says so in words, and front ends carry on without sound.

// Without `devices` the capture/playback paths below are exercised only by their tests.
#![cfg_attr(not(feature = "devices"), allow(dead_code))]

mod convert;
pub mod ring;

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

pub use convert::{PullResampler, PushResampler};

use super::frame::{FRAME_SAMPLES, SAMPLE_RATE};

/// Why a sound device is not available.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeviceError {
    #[error("this build has no sound-device support (built without the `devices` feature)")]
    NotBuilt,
    /// Nothing usable without being told which: no default, or only ALSA's null device.
    #[error("no {what}: {reason}")]
    NoDevice { what: &'static str, reason: String },
    #[error("no {what} matches {name:?}; available: {available}")]
    NotFound {
        what: &'static str,
        name: String,
        available: String,
    },
    #[error("{what} {name:?} cannot be used: {reason}")]
    Failed {
        what: &'static str,
        name: String,
        reason: String,
    },
}

impl DeviceError {
    /// Why, without the "no microphone:" lead (for a screen that already says which).
    pub fn reason(&self) -> String {
        match self {
            DeviceError::NotBuilt => "built without sound-device support".into(),
            DeviceError::NoDevice { reason, .. } => reason.clone(),
            DeviceError::NotFound { name, .. } => format!("no device matches {name:?}"),
            DeviceError::Failed { name, reason, .. } => format!("{name}: {reason}"),
        }
    }
}

/// Which way audio goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Input,
    Output,
}

impl Direction {
    pub fn what(self) -> &'static str {
        match self {
            Direction::Input => "microphone",
            Direction::Output => "speaker",
        }
    }
}

/// An opened device, for the screen: `default (44100 Hz, 2 ch, i16 → 48 kHz mono)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceInfo {
    pub name: String,
    pub sample_rate: u32,
    pub channels: u16,
    pub format: String,
}

impl fmt::Display for DeviceInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ({} Hz, {} ch, {}",
            self.name, self.sample_rate, self.channels, self.format
        )?;
        if self.sample_rate != SAMPLE_RATE || self.channels != 1 {
            f.write_str(" → 48 kHz mono")?;
        }
        f.write_str(")")
    }
}

/// Ring size each way: half a second of 48 kHz audio.
const RING_SAMPLES: usize = SAMPLE_RATE as usize / 2;
/// Capture: wait for this much before handing frames to the engine (and after running dry).
/// The ring then sits near this level when the engine pulls, so it is capture latency: one
/// frame for the pull plus half a frame for the engine's tick to wander under load.
const CAPTURE_PRIME: usize = FRAME_SAMPLES + FRAME_SAMPLES / 2;
/// Capture: more than this waiting means the engine fell behind; drop down to the prime.
const CAPTURE_MAX_BACKLOG: usize = 3 * FRAME_SAMPLES;
/// Playback: buffer this much before playing (and after an underrun); as for capture, the
/// ring sits near this level, so it is playback latency.
const PLAYBACK_PRIME: usize = FRAME_SAMPLES + FRAME_SAMPLES / 2;
/// Playback: more than this waiting is latency nobody wants (e.g. left by a device that
/// started late); drop down to the prime.
const PLAYBACK_MAX_BACKLOG: usize = 3 * FRAME_SAMPLES;

/// The engine's end of a capture ring: hands out whole 48 kHz frames, silence while priming.
struct CaptureReader {
    ring: ring::Consumer,
    primed: bool,
    /// Frames padded with silence because the device had not delivered enough.
    underruns: u64,
}

impl CaptureReader {
    fn read(&mut self, out: &mut [f32]) {
        let waiting = self.ring.len();
        if !self.primed {
            if waiting < CAPTURE_PRIME {
                out.fill(0.0);
                return;
            }
            self.primed = true;
        }
        if waiting > CAPTURE_MAX_BACKLOG {
            self.ring.skip(waiting - CAPTURE_PRIME);
        }
        let n = self.ring.pop_slice(out);
        if n < out.len() {
            out[n..].fill(0.0);
            self.underruns += 1;
            self.primed = false;
        }
    }
}

/// The callback's end of a capture ring: any channel count and rate in, 48 kHz mono out.
struct CaptureWriter {
    ring: ring::Producer,
    resampler: PushResampler,
    channels: usize,
    /// Converted samples waiting to be pushed (pushing in chunks keeps atomics off the
    /// per-sample path).
    pending: [f32; 256],
    len: usize,
}

impl CaptureWriter {
    fn new(ring: ring::Producer, device_rate: u32, channels: u16) -> Self {
        Self {
            ring,
            resampler: PushResampler::new(device_rate, SAMPLE_RATE),
            channels: usize::from(channels.max(1)),
            pending: [0.0; 256],
            len: 0,
        }
    }

    /// One callback's interleaved samples, already as f32.
    fn write(&mut self, interleaved: impl Iterator<Item = f32>) {
        let mut sum = 0.0;
        let mut k = 0;
        for x in interleaved {
            sum += x;
            k += 1;
            if k == self.channels {
                let mono = sum / self.channels as f32;
                (sum, k) = (0.0, 0);
                let (pending, len, ring) = (&mut self.pending, &mut self.len, &mut self.ring);
                self.resampler.push(mono, |y| {
                    pending[*len] = y;
                    *len += 1;
                    if *len == pending.len() {
                        // Full ring: the engine is not reading; newest audio is dropped.
                        ring.push_slice(&pending[..]);
                        *len = 0;
                    }
                });
            }
        }
        self.ring.push_slice(&self.pending[..self.len]);
        self.len = 0;
    }
}

/// The callback's end of a playback ring: 48 kHz mono in, any channel count and rate out.
struct PlaybackReader {
    ring: ring::Consumer,
    resampler: PullResampler,
    channels: usize,
    primed: bool,
    /// Times the ring ran dry while playing (the device then plays silence until re-primed);
    /// shared with the engine's end, which reports it.
    underruns: Arc<AtomicU64>,
}

impl PlaybackReader {
    fn new(ring: ring::Consumer, device_rate: u32, channels: u16) -> Self {
        Self {
            ring,
            resampler: PullResampler::new(SAMPLE_RATE, device_rate),
            channels: usize::from(channels.max(1)),
            primed: false,
            underruns: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Fills one callback's interleaved buffer through `put(index, sample)`.
    fn read(&mut self, samples: usize, mut put: impl FnMut(usize, f32)) {
        let frames = samples / self.channels;
        let waiting = self.ring.len();
        if !self.primed && waiting >= PLAYBACK_PRIME {
            self.primed = true;
        }
        if self.primed && waiting < self.resampler.input_needed(frames) {
            self.primed = false;
            self.underruns.fetch_add(1, Ordering::Relaxed);
        }
        if !self.primed {
            (0..samples).for_each(|i| put(i, 0.0));
            return;
        }
        if waiting > PLAYBACK_MAX_BACKLOG {
            self.ring.skip(waiting - PLAYBACK_PRIME);
        }
        let ring = &mut self.ring;
        for f in 0..frames {
            let y = self.resampler.next(|| ring.pop().unwrap_or(0.0));
            for c in 0..self.channels {
                put(f * self.channels + c, y);
            }
        }
    }
}

#[cfg(feature = "devices")]
mod backend;

#[cfg(feature = "devices")]
pub use backend::{DeviceSink, DeviceSource, list_devices};

#[cfg(not(feature = "devices"))]
mod absent;

#[cfg(not(feature = "devices"))]
pub use absent::{DeviceSink, DeviceSource, list_devices};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::test_util::sine;

    #[test]
    fn capture_path_turns_stereo_44k1_into_48k_mono_frames_after_priming() {
        let (p, c) = ring::ring(RING_SAMPLES);
        let mut writer = CaptureWriter::new(p, 44_100, 2);
        let mut reader = CaptureReader {
            ring: c,
            primed: false,
            underruns: 0,
        };
        let mut frame = [1.0f32; FRAME_SAMPLES];
        reader.read(&mut frame);
        assert_eq!(frame, [0.0; FRAME_SAMPLES], "silence until primed");

        // 0.5 s of a tone on the left channel only (mono is half of it), 20 ms per callback,
        // the engine reading a frame after each.
        let left = sine(1000.0, 0.8, 22_050, 44_100);
        let mut got = Vec::new();
        for chunk in left.chunks(882) {
            writer.write(chunk.iter().flat_map(|&x| [x, 0.0]));
            reader.read(&mut frame);
            got.extend_from_slice(&frame);
        }
        let got = &got[got.len() - 15 * FRAME_SAMPLES..];
        let f = crate::audio::analysis::dominant_frequency(got, SAMPLE_RATE).unwrap();
        assert!((f - 1000.0).abs() < 2.0, "{f} Hz");
        let peak = got.iter().fold(0.0f32, |m, x| m.max(x.abs()));
        assert!((peak - 0.4).abs() < 0.01, "averaged to mono: peak {peak}");
        assert_eq!(reader.underruns, 0);
    }

    #[test]
    fn capture_backlog_is_bounded_and_running_dry_reprimes() {
        let (mut p, c) = ring::ring(RING_SAMPLES);
        let mut reader = CaptureReader {
            ring: c,
            primed: false,
            underruns: 0,
        };
        p.push_slice(&vec![0.5; 10 * FRAME_SAMPLES]);
        let mut frame = [0.0; FRAME_SAMPLES];
        reader.read(&mut frame);
        assert_eq!(
            reader.ring.len(),
            CAPTURE_PRIME - FRAME_SAMPLES,
            "latency cut"
        );
        reader.read(&mut frame);
        reader.read(&mut frame);
        assert_eq!((reader.underruns, reader.primed), (1, false));
    }

    #[test]
    fn playback_path_primes_then_plays_every_channel_and_recovers_from_underrun() {
        let (mut p, c) = ring::ring(RING_SAMPLES);
        let mut reader = PlaybackReader::new(c, SAMPLE_RATE, 2);
        let mut out = vec![9.0f32; 2 * 480];
        reader.read(out.len(), |i, y| out[i] = y);
        assert!(out.iter().all(|&x| x == 0.0), "silence while priming");

        let tone = sine(440.0, 0.5, PLAYBACK_MAX_BACKLOG, SAMPLE_RATE);
        p.push_slice(&tone);
        let mut played: Vec<f32> = Vec::new();
        for _ in 0..PLAYBACK_MAX_BACKLOG / 480 - 1 {
            reader.read(out.len(), |i, y| out[i] = y);
            assert!(
                out.chunks(2).all(|lr| lr[0] == lr[1]),
                "same on both channels"
            );
            played.extend(out.iter().step_by(2));
        }
        // Played in order, sample for sample (equal rates pass through exactly).
        assert_eq!(played, tone[..played.len()]);
        // Less than a callback's worth left: silence rather than a partial buffer.
        reader.read(out.len(), |i, y| out[i] = y);
        assert!(out.iter().all(|&x| x == 0.0));
        assert!(!reader.primed);
        assert_eq!(reader.underruns.load(Ordering::Relaxed), 1, "counted once");
        reader.read(out.len(), |i, y| out[i] = y);
        assert_eq!(
            reader.underruns.load(Ordering::Relaxed),
            1,
            "not again while priming"
        );
    }

    #[test]
    fn device_info_says_when_it_converts() {
        let mut info = DeviceInfo {
            name: "default".into(),
            sample_rate: 48_000,
            channels: 1,
            format: "f32".into(),
        };
        assert_eq!(info.to_string(), "default (48000 Hz, 1 ch, f32)");
        info.sample_rate = 44_100;
        info.channels = 2;
        assert_eq!(
            info.to_string(),
            "default (44100 Hz, 2 ch, f32 → 48 kHz mono)"
        );
    }

    #[test]
    fn device_specs_parse_and_print() {
        use crate::audio::{SinkSpec, SourceSpec};
        assert_eq!(
            SourceSpec::parse("device"),
            Ok(SourceSpec::Device { name: None })
        );
        assert_eq!(
            SourceSpec::parse("device:USB Headset"),
            Ok(SourceSpec::Device {
                name: Some("USB Headset".into())
            })
        );
        assert_eq!(
            SinkSpec::parse("device"),
            Ok(SinkSpec::Device { name: None })
        );
        assert_eq!(
            SinkSpec::parse("device:hw:CARD=PCH,DEV=0")
                .unwrap()
                .to_string(),
            "device:hw:CARD=PCH,DEV=0"
        );
        assert!(SourceSpec::parse("device:").is_err());
        assert!(SinkSpec::parse("device: ").is_err());
    }
}
