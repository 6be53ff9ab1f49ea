//! Where outgoing audio comes from when it is not (or not only) a microphone: test tones,
//! silence, and WAV clips — plus the `--source` spec that names one.
//!
//! These sources own no clock: the engine pulls one frame every 20 ms of *its* time, so a
//! source can never run ahead or fall behind. A microphone has a clock of its own and says so
//! through [`AudioSource::samples_ready`]. `next_frame` must not block, allocate or fail;
//! anything that can fail (opening a file) happens once, up front.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use super::device::{DeviceError, DeviceSource};
use super::frame::{FrameSize, SAMPLE_RATE};
use super::resample::resample_periodic;
use super::spec::{SpecError, split_kind};
use super::wav::{WavReadError, read_wav_mono};

/// Something that produces 48 kHz mono samples on demand.
pub trait AudioSource {
    /// Fills all of `out` with the next `out.len()` samples (normally one
    /// [`super::FRAME_SAMPLES`] frame). Never blocks, never fails.
    fn next_frame(&mut self, out: &mut [f32]);

    /// Samples captured and waiting, for a source with a clock of its own (a microphone):
    /// the engine takes every whole frame of them as soon as it is complete. `None` (the
    /// default): no clock, the engine pulls on its frame clock.
    fn samples_ready(&mut self) -> Option<usize> {
        None
    }

    /// The device changed since the last call (a microphone that moved or was lost).
    fn device_change(&mut self) -> Option<super::device::DeviceChange> {
        None
    }

    /// For a source with a clock of its own: call `wake` (from its thread) as soon as a
    /// whole frame waits, so the engine need not poll for it.
    fn set_wake(&mut self, _wake: super::device::Wake) {}

    /// For a source with a clock of its own: where what the engine read since the last call
    /// left the device's time ([`CaptureGaps`]). None for a source without a clock.
    fn take_gaps(&mut self) -> CaptureGaps {
        CaptureGaps::default()
    }
}

/// Where a microphone's frames, read back to back, left the device's time: samples it
/// captured that the engine never got (a backlog cut: the engine fell behind) and samples
/// the engine got that it never captured (a frame read before it was complete, padded with
/// silence). The echo canceller's reference is moved by as much, so the two keep time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CaptureGaps {
    pub dropped: usize,
    pub padded: usize,
}

impl<S: AudioSource + ?Sized> AudioSource for Box<S> {
    fn next_frame(&mut self, out: &mut [f32]) {
        (**self).next_frame(out);
    }
    fn samples_ready(&mut self) -> Option<usize> {
        (**self).samples_ready()
    }
    fn device_change(&mut self) -> Option<super::device::DeviceChange> {
        (**self).device_change()
    }
    fn set_wake(&mut self, wake: super::device::Wake) {
        (**self).set_wake(wake);
    }
    fn take_gaps(&mut self) -> CaptureGaps {
        (**self).take_gaps()
    }
}

/// Digital silence.
#[derive(Debug, Clone, Copy, Default)]
pub struct Silence;

impl AudioSource for Silence {
    fn next_frame(&mut self, out: &mut [f32]) {
        out.fill(0.0);
    }
}

/// A sine wave whose phase carries over between frames (no click at frame boundaries).
#[derive(Debug, Clone)]
pub struct Tone {
    /// Phase advance per sample, in cycles.
    step: f64,
    /// Peak amplitude.
    amplitude: f32,
    /// Current phase in cycles, kept in `[0, 1)` so precision never degrades over long runs.
    phase: f64,
}

impl Tone {
    /// Amplitude used by `tone:HZ` specs: −12 dBFS peak, loud but far from clipping.
    pub const DEFAULT_AMPLITUDE: f32 = 0.25;

    /// A sine of `hz` (meaningful for `0 < hz < 24000`) with peak `amplitude`.
    pub fn new(hz: f32, amplitude: f32) -> Self {
        Self {
            step: f64::from(hz) / f64::from(SAMPLE_RATE),
            amplitude,
            phase: 0.0,
        }
    }
}

impl AudioSource for Tone {
    fn next_frame(&mut self, out: &mut [f32]) {
        for sample in out {
            *sample = self.amplitude * (std::f64::consts::TAU * self.phase).sin() as f32;
            self.phase = (self.phase + self.step).fract();
        }
    }
}

/// A WAV clip, converted once at open to 48 kHz mono, played in a loop forever.
///
/// Looping (rather than ending in silence) keeps a long test call or a demo fed with signal no
/// matter how short the clip is; a clip that should end can be padded with silence in the file.
/// The clip is held in memory (see [`super::MAX_WAV_SECONDS`]).
#[derive(Debug, Clone)]
pub struct WavSource {
    /// The whole clip at 48 kHz. Invariant: non-empty (an empty file becomes one silent sample).
    samples: Vec<f32>,
    /// Index of the next sample to play. Invariant: `pos < samples.len()`.
    pos: usize,
}

impl WavSource {
    /// Reads `path` (any layout [`super::read_wav_mono`] accepts) and resamples it to 48 kHz.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, WavReadError> {
        let audio = read_wav_mono(path.as_ref())?;
        Ok(Self::from_samples(&audio.samples, audio.sample_rate))
    }

    /// A looping source from mono samples at `sample_rate` (resampled with the windowed-sinc
    /// resampler, [`super::resample_periodic`]).
    pub fn from_samples(samples: &[f32], sample_rate: u32) -> Self {
        let mut samples = resample_periodic(samples, sample_rate, SAMPLE_RATE);
        if samples.is_empty() {
            samples.push(0.0);
        }
        Self { samples, pos: 0 }
    }

    /// Length of one loop, in 48 kHz samples.
    pub fn loop_len(&self) -> usize {
        self.samples.len()
    }
}

impl AudioSource for WavSource {
    fn next_frame(&mut self, mut out: &mut [f32]) {
        while !out.is_empty() {
            let take = out.len().min(self.samples.len() - self.pos);
            let (head, rest) = out.split_at_mut(take);
            head.copy_from_slice(&self.samples[self.pos..self.pos + take]);
            self.pos = (self.pos + take) % self.samples.len();
            out = rest;
        }
    }
}

/// A source named on the command line: `tone:HZ`, `wav:PATH` or `silence`.
#[derive(Debug, Clone, PartialEq)]
pub enum SourceSpec {
    /// [`Tone`] at `hz` with [`Tone::DEFAULT_AMPLITUDE`].
    Tone {
        /// Frequency in Hz, within [`SourceSpec::TONE_HZ_RANGE`].
        hz: f32,
    },
    /// [`WavSource`] looping the file at `path`.
    Wav {
        /// The file (not checked until [`SourceSpec::open`]).
        path: PathBuf,
    },
    /// [`Silence`].
    Silence,
    /// A microphone ([`super::device::DeviceSource`]): the system default, or the device
    /// whose name matches.
    Device {
        /// `None` for the default input device.
        name: Option<String>,
    },
}

const SOURCE_FORMS: &str = "`tone:HZ`, `wav:PATH`, `silence`, `device` or `device:NAME`";

/// Why a source could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error(transparent)]
    Wav(#[from] WavReadError),
    #[error(transparent)]
    Device(#[from] DeviceError),
}

impl SourceSpec {
    /// Tone frequencies accepted: audible, and below the 20 kHz Opus passband edge.
    pub const TONE_HZ_RANGE: std::ops::RangeInclusive<f64> = 1.0..=20_000.0;

    /// The capture processing a source gets unless asked otherwise: everything on a
    /// microphone (a room, a speaker beside it, a voice at any level); nothing on a tone, a
    /// file or silence, which are sent exactly as they are.
    pub fn default_processing(&self) -> super::processing::Processing {
        match self {
            SourceSpec::Device { .. } => super::processing::Processing::ALL,
            _ => super::processing::Processing::NONE,
        }
    }

    /// Parses a spec; see [`SpecError`] for what is rejected and why.
    pub fn parse(spec: &str) -> Result<Self, SpecError> {
        match split_kind(spec) {
            ("", None) => Err(SpecError::Empty {
                what: "source",
                expected: SOURCE_FORMS,
            }),
            ("silence", None) => Ok(Self::Silence),
            ("silence", Some(arg)) => Err(SpecError::UnexpectedArgument {
                kind: "silence",
                arg: arg.to_owned(),
            }),
            ("tone", arg) => parse_tone(arg.unwrap_or("").trim()),
            ("wav", arg) => match arg.map(str::trim) {
                Some(path) if !path.is_empty() => Ok(Self::Wav { path: path.into() }),
                _ => Err(SpecError::MissingArgument {
                    kind: "wav",
                    needs: "a file path, e.g. `wav:voice.wav`",
                }),
            },
            ("device", None) => Ok(Self::Device { name: None }),
            ("device", Some(name)) => match name.trim() {
                "" => Err(SpecError::MissingArgument {
                    kind: "device",
                    needs: "a device name after the colon (plain `device` is the default)",
                }),
                name => Ok(Self::Device {
                    name: Some(name.to_owned()),
                }),
            },
            (kind, _) => Err(SpecError::UnknownKind {
                what: "source",
                kind: kind.to_owned(),
                expected: SOURCE_FORMS,
            }),
        }
    }

    /// Builds the source (reading and resampling the file for `wav:`, opening the
    /// microphone for `device`) for an engine on 20 ms frames.
    pub fn open(&self) -> Result<Box<dyn AudioSource + Send>, SourceError> {
        self.open_for(FrameSize::default())
    }

    /// [`SourceSpec::open`] for an engine on `frame`-long frames (a microphone's period
    /// follows it).
    pub fn open_for(&self, frame: FrameSize) -> Result<Box<dyn AudioSource + Send>, SourceError> {
        Ok(match self {
            Self::Tone { hz } => Box::new(Tone::new(*hz, Tone::DEFAULT_AMPLITUDE)),
            Self::Wav { path } => Box::new(WavSource::open(path)?),
            Self::Silence => Box::new(Silence),
            Self::Device { name } => Box::new(DeviceSource::open_for(name.as_deref(), frame)?),
        })
    }
}

fn parse_tone(arg: &str) -> Result<SourceSpec, SpecError> {
    if arg.is_empty() {
        return Err(SpecError::MissingArgument {
            kind: "tone",
            needs: "a frequency in Hz, e.g. `tone:440`",
        });
    }
    let hz: f64 = arg.parse().map_err(|_| SpecError::NotANumber {
        value: arg.to_owned(),
    })?;
    let range = SourceSpec::TONE_HZ_RANGE;
    // `contains` is false for NaN, so "tone:NaN" lands here too.
    if !range.contains(&hz) {
        return Err(SpecError::FrequencyOutOfRange {
            hz,
            min: *range.start(),
            max: *range.end(),
        });
    }
    Ok(SourceSpec::Tone { hz: hz as f32 })
}

impl FromStr for SourceSpec {
    type Err = SpecError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for SourceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Tone { hz } => write!(f, "tone:{hz}"),
            Self::Wav { path } => write!(f, "wav:{}", path.display()),
            Self::Silence => f.write_str("silence"),
            Self::Device { name: None } => f.write_str("device"),
            Self::Device { name: Some(name) } => write!(f, "device:{name}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::analysis::{dominant_frequency, rms};
    use crate::audio::frame::FRAME_SAMPLES;
    use crate::audio::test_util::{sine, temp_path};

    fn pull(source: &mut dyn AudioSource, frames: usize) -> Vec<f32> {
        let mut out = vec![0.0; frames * FRAME_SAMPLES];
        for chunk in out.chunks_mut(FRAME_SAMPLES) {
            source.next_frame(chunk);
        }
        out
    }

    #[test]
    fn tone_is_phase_continuous_across_frames() {
        let mut framed = Tone::new(440.0, 0.5);
        let frames = pull(&mut framed, 50);
        let reference = sine(440.0, 0.5, frames.len(), SAMPLE_RATE);
        let worst = frames
            .iter()
            .zip(&reference)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(worst < 1e-4, "deviation {worst}");
        let f = dominant_frequency(&frames, SAMPLE_RATE).unwrap();
        assert!((f - 440.0).abs() < 0.5);
    }

    #[test]
    fn silence_overwrites_the_buffer() {
        let mut out = [0.7f32; 16];
        Silence.next_frame(&mut out);
        assert_eq!(out, [0.0; 16]);
    }

    #[test]
    fn wav_44k1_stereo_becomes_48k_mono_at_the_same_pitch() {
        let path = temp_path("tone44k1.wav");
        let spec = hound::WavSpec {
            channels: 2,
            sample_rate: 44_100,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut writer = hound::WavWriter::create(&path, spec).unwrap();
        // Left: 660 Hz, right: silence → mono is 660 Hz at half amplitude.
        for s in sine(660.0, 0.6, 44_100, 44_100) {
            writer.write_sample((s * 32767.0) as i16).unwrap();
            writer.write_sample(0i16).unwrap();
        }
        writer.finalize().unwrap();

        let mut source = WavSource::open(&path).unwrap();
        assert_eq!(source.loop_len(), 48_000);
        let out = pull(&mut source, 50);
        let f = dominant_frequency(&out, SAMPLE_RATE).unwrap();
        assert!((f - 660.0).abs() < 2.0, "dominant {f} Hz");
        let expected_rms = 0.3 * std::f32::consts::FRAC_1_SQRT_2;
        assert!((rms(&out) - expected_rms).abs() < 0.01, "rms {}", rms(&out));
    }

    #[test]
    fn wav_source_loops_seamlessly() {
        let clip: Vec<f32> = (0..1000).map(|i| i as f32 / 1000.0).collect();
        let mut source = WavSource::from_samples(&clip, SAMPLE_RATE);
        let out = pull(&mut source, 3); // 2880 samples: wraps twice
        for (i, &s) in out.iter().enumerate() {
            assert_eq!(s, clip[i % 1000], "sample {i}");
        }
        let mut empty = WavSource::from_samples(&[], 8_000);
        assert_eq!(pull(&mut empty, 1), vec![0.0; FRAME_SAMPLES]);
    }

    #[test]
    fn parses_good_specs() {
        assert_eq!(
            SourceSpec::parse("tone:440"),
            Ok(SourceSpec::Tone { hz: 440.0 })
        );
        assert_eq!(
            SourceSpec::parse(" tone: 440.5 "),
            Ok(SourceSpec::Tone { hz: 440.5 })
        );
        assert_eq!(SourceSpec::parse("silence"), Ok(SourceSpec::Silence));
        assert_eq!(
            "wav:/tmp/a b.wav".parse(),
            Ok(SourceSpec::Wav {
                path: "/tmp/a b.wav".into()
            })
        );
        for spec in ["tone:440", "silence", "wav:x.wav"] {
            assert_eq!(SourceSpec::parse(spec).unwrap().to_string(), spec);
        }
    }

    #[test]
    fn rejects_bad_specs_with_reasons() {
        let cases = [
            ("tone:abc", "`abc` is not a number"),
            ("tone:0", "0 Hz is out of range; expected 1..=20000 Hz"),
            ("tone:30000", "30000 Hz is out of range"),
            ("tone:-5", "out of range"),
            ("tone:NaN", "out of range"),
            ("tone:", "needs a frequency in Hz"),
            ("tone", "needs a frequency in Hz"),
            ("wav:", "`wav` needs a file path"),
            ("wav:   ", "`wav` needs a file path"),
            ("mic:default", "unknown source kind `mic`"),
            ("", "empty source spec"),
            ("silence:2", "`silence` takes no argument"),
        ];
        for (spec, reason) in cases {
            let err = SourceSpec::parse(spec).unwrap_err().to_string();
            assert!(err.contains(reason), "{spec:?} gave {err:?}");
        }
    }

    #[test]
    fn opening_specs_builds_working_sources() {
        let mut tone = SourceSpec::Tone { hz: 1000.0 }.open().unwrap();
        let out = pull(&mut tone, 10);
        assert!((dominant_frequency(&out, SAMPLE_RATE).unwrap() - 1000.0).abs() < 2.0);
        let missing = SourceSpec::parse("wav:/nonexistent/x.wav").unwrap().open();
        assert!(matches!(
            missing,
            Err(SourceError::Wav(WavReadError::Read { .. }))
        ));
    }
}
