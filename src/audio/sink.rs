//! Where incoming audio goes when it is not (or not only) a speaker: a WAV recording or
//! nowhere — plus the `--sink` spec that names one.
//!
//! [`WavSink`] is built for headless tests that get killed: it rewrites the WAV header every
//! second, so the file on disk is always a valid WAV holding at least everything up to the last
//! checkpoint, and dropping it without [`AudioSink::finish`] still leaves a complete file.
//!
//! A failed write must never panic: it comes back as a [`SinkError`] naming the file. Parsing a
//! spec never touches the file system; only [`SinkSpec::open`] creates the file.

use std::fmt;
use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use super::device::{DeviceError, DeviceSink, SpeakerQueue};
use super::frame::{FrameSize, SAMPLE_RATE};
use super::spec::{SpecError, split_kind};

/// Something that consumes 48 kHz mono frames.
pub trait AudioSink {
    /// Consumes one frame (normally [`super::FRAME_SAMPLES`] samples, any length is accepted).
    fn write_frame(&mut self, frame: &[f32]) -> Result<(), SinkError>;

    /// Completes the output. Idempotent; writes after it fail with [`SinkError::Finished`].
    fn finish(&mut self) -> Result<(), SinkError>;

    /// What is queued ahead of the device, for a sink with a clock of its own (a speaker):
    /// the engine writes frames as the queue says ([`SpeakerQueue`]), silence in pieces of any
    /// length. `None` (the default): no clock, the engine writes whole frames on its frame
    /// clock.
    fn queue(&mut self) -> Option<SpeakerQueue> {
        None
    }

    /// Drops queued silence the device has not played, all but the last `keep` samples (a
    /// talk spurt is about to be written); returns about how many that is. Nothing if
    /// anything but silence waits.
    fn cut_silence(&mut self, _keep: usize) -> usize {
        0
    }

    /// For a sink with a clock of its own: call `wake` (from its thread) when the device is
    /// about to run dry, so the engine need not poll for it.
    fn set_wake(&mut self, _wake: super::device::Wake) {}

    /// The device changed since the last call (a speaker that moved or was lost).
    fn device_change(&mut self) -> Option<super::device::DeviceChange> {
        None
    }

    /// For a speaker with a clock of its own: hands `to` what the device played since the
    /// last call, 48 kHz, in order — the silence it played while it had nothing included,
    /// queued silence that was cut not — and returns true. That, not what was written, is
    /// the echo canceller's reference: what was written plays later by however much waited
    /// ahead of it, which changes at each cut and each gap. `false` (the default): the sink
    /// plays what it is given as it is given (a file), and that is the reference.
    fn take_played(&mut self, _to: &mut dyn FnMut(&[f32])) -> bool {
        false
    }
}

impl<S: AudioSink + ?Sized> AudioSink for Box<S> {
    fn write_frame(&mut self, frame: &[f32]) -> Result<(), SinkError> {
        (**self).write_frame(frame)
    }
    fn finish(&mut self) -> Result<(), SinkError> {
        (**self).finish()
    }
    fn queue(&mut self) -> Option<SpeakerQueue> {
        (**self).queue()
    }
    fn cut_silence(&mut self, keep: usize) -> usize {
        (**self).cut_silence(keep)
    }
    fn set_wake(&mut self, wake: super::device::Wake) {
        (**self).set_wake(wake);
    }
    fn device_change(&mut self) -> Option<super::device::DeviceChange> {
        (**self).device_change()
    }
    fn take_played(&mut self, to: &mut dyn FnMut(&[f32])) -> bool {
        (**self).take_played(to)
    }
}

/// Why a sink failed.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// The output file could not be created.
    #[error("cannot create WAV file {path}")]
    Create {
        /// The file.
        path: PathBuf,
        /// What hound reported.
        #[source]
        source: hound::Error,
    },
    /// Writing, checkpointing or finalizing failed (disk full, file removed, ...).
    #[error("cannot write WAV file {path}")]
    Write {
        /// The file.
        path: PathBuf,
        /// What hound reported.
        #[source]
        source: hound::Error,
    },
    /// The speaker could not be opened.
    #[error(transparent)]
    Device(#[from] DeviceError),
    /// A frame arrived after [`AudioSink::finish`].
    #[error("WAV file {path} was already finished")]
    Finished {
        /// The file.
        path: PathBuf,
    },
}

/// Discards audio, counting frames (handy in tests and for "receive only" runs).
#[derive(Debug, Clone, Default)]
pub struct NullSink {
    /// Frames written so far.
    pub frames: u64,
}

impl AudioSink for NullSink {
    fn write_frame(&mut self, _frame: &[f32]) -> Result<(), SinkError> {
        self.frames += 1;
        Ok(())
    }
    fn finish(&mut self) -> Result<(), SinkError> {
        Ok(())
    }
}

/// Records to a 48 kHz mono 16-bit PCM WAV file.
///
/// Samples are clamped to `[-1, 1]` and scaled by 32767 (NaN is written as 0).
pub struct WavSink {
    /// `None` once finished.
    writer: Option<hound::WavWriter<BufWriter<File>>>,
    /// For error messages.
    path: PathBuf,
    /// Frames since the header was last rewritten.
    frames_since_checkpoint: u32,
}

impl WavSink {
    /// Header checkpoint interval: 50 frames = 1 s of audio at most lost on a hard kill.
    pub const CHECKPOINT_FRAMES: u32 = 50;

    /// Creates (or truncates) `path`.
    pub fn create(path: impl AsRef<Path>) -> Result<Self, SinkError> {
        let path = path.as_ref().to_path_buf();
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: SAMPLE_RATE,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        match hound::WavWriter::create(&path, spec) {
            Ok(writer) => Ok(Self {
                writer: Some(writer),
                path,
                frames_since_checkpoint: 0,
            }),
            Err(source) => Err(SinkError::Create { path, source }),
        }
    }

    /// The file being written.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn write_err(&self, source: hound::Error) -> SinkError {
        SinkError::Write {
            path: self.path.clone(),
            source,
        }
    }
}

impl AudioSink for WavSink {
    fn write_frame(&mut self, frame: &[f32]) -> Result<(), SinkError> {
        let Some(writer) = self.writer.as_mut() else {
            return Err(SinkError::Finished {
                path: self.path.clone(),
            });
        };
        let result = (|| {
            for &x in frame {
                writer.write_sample(to_i16(x))?;
            }
            self.frames_since_checkpoint += 1;
            if self.frames_since_checkpoint >= Self::CHECKPOINT_FRAMES {
                self.frames_since_checkpoint = 0;
                writer.flush()?;
            }
            Ok(())
        })();
        result.map_err(|e| self.write_err(e))
    }

    fn finish(&mut self) -> Result<(), SinkError> {
        match self.writer.take() {
            Some(writer) => writer.finalize().map_err(|e| self.write_err(e)),
            None => Ok(()),
        }
    }
}

/// Full-scale float to 16-bit PCM; saturating, NaN becomes 0.
fn to_i16(x: f32) -> i16 {
    (x.clamp(-1.0, 1.0) * 32767.0).round() as i16
}

/// A sink named on the command line: `wav:PATH` or `null`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SinkSpec {
    /// [`WavSink`] writing `path`.
    Wav {
        /// The file to create.
        path: PathBuf,
    },
    /// [`NullSink`].
    Null,
    /// A speaker ([`super::device::DeviceSink`]): the system default, or the device whose
    /// name matches.
    Device {
        /// `None` for the default output device.
        name: Option<String>,
    },
}

const SINK_FORMS: &str = "`wav:PATH`, `null`, `device` or `device:NAME`";

impl SinkSpec {
    /// Parses a spec; see [`SpecError`] for what is rejected and why.
    pub fn parse(spec: &str) -> Result<Self, SpecError> {
        match split_kind(spec) {
            ("", None) => Err(SpecError::Empty {
                what: "sink",
                expected: SINK_FORMS,
            }),
            ("null", None) => Ok(Self::Null),
            ("null", Some(arg)) => Err(SpecError::UnexpectedArgument {
                kind: "null",
                arg: arg.to_owned(),
            }),
            ("wav", arg) => match arg.map(str::trim) {
                Some(path) if !path.is_empty() => Ok(Self::Wav { path: path.into() }),
                _ => Err(SpecError::MissingArgument {
                    kind: "wav",
                    needs: "a file path, e.g. `wav:heard.wav`",
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
                what: "sink",
                kind: kind.to_owned(),
                expected: SINK_FORMS,
            }),
        }
    }

    /// Builds the sink (creating the file for `wav:`), for an engine on 20 ms frames.
    pub fn open(&self) -> Result<Box<dyn AudioSink + Send>, SinkError> {
        self.open_for(FrameSize::default())
    }

    /// [`SinkSpec::open`] for an engine on `frame`-long frames (a device's period follows).
    pub fn open_for(&self, frame: FrameSize) -> Result<Box<dyn AudioSink + Send>, SinkError> {
        Ok(match self {
            Self::Wav { path } => Box::new(WavSink::create(path)?),
            Self::Null => Box::new(NullSink::default()),
            Self::Device { name } => Box::new(DeviceSink::open_for(name.as_deref(), frame)?),
        })
    }
}

impl FromStr for SinkSpec {
    type Err = SpecError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for SinkSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Wav { path } => write!(f, "wav:{}", path.display()),
            Self::Null => f.write_str("null"),
            Self::Device { name: None } => f.write_str("device"),
            Self::Device { name: Some(name) } => write!(f, "device:{name}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::analysis::dominant_frequency;
    use crate::audio::frame::FRAME_SAMPLES;
    use crate::audio::source::{AudioSource, Tone};
    use crate::audio::test_util::temp_path;
    use crate::audio::wav::read_wav_mono;

    fn write_tone(sink: &mut dyn AudioSink, frames: usize) {
        let mut tone = Tone::new(440.0, 0.5);
        let mut frame = [0.0; FRAME_SAMPLES];
        for _ in 0..frames {
            tone.next_frame(&mut frame);
            sink.write_frame(&frame).unwrap();
        }
    }

    #[test]
    fn finished_file_has_the_right_format_duration_and_content() {
        let path = temp_path("out.wav");
        let mut sink = WavSink::create(&path).unwrap();
        write_tone(&mut sink, 75); // 1.5 s
        sink.finish().unwrap();
        sink.finish().unwrap(); // idempotent

        let reader = hound::WavReader::open(&path).unwrap();
        let spec = reader.spec();
        assert_eq!(
            (spec.channels, spec.sample_rate, spec.bits_per_sample),
            (1, 48_000, 16)
        );
        assert_eq!(spec.sample_format, hound::SampleFormat::Int);
        assert_eq!(reader.duration(), 75 * 960);
        let audio = read_wav_mono(&path).unwrap();
        let f = dominant_frequency(&audio.samples, audio.sample_rate).unwrap();
        assert!((f - 440.0).abs() < 1.0);
        assert!(matches!(
            sink.write_frame(&[0.0; 4]),
            Err(SinkError::Finished { .. })
        ));
    }

    #[test]
    fn dropped_without_finish_is_still_complete() {
        let path = temp_path("dropped.wav");
        {
            let mut sink = WavSink::create(&path).unwrap();
            write_tone(&mut sink, 7);
        }
        assert_eq!(hound::WavReader::open(&path).unwrap().duration(), 7 * 960);
    }

    #[test]
    fn killed_process_leaves_a_readable_file_up_to_the_last_checkpoint() {
        let path = temp_path("killed.wav");
        let mut sink = WavSink::create(&path).unwrap();
        write_tone(&mut sink, 60);
        // No destructor runs on a hard kill; forgetting the sink simulates exactly that
        // (it leaks one file handle in this test process).
        std::mem::forget(sink);
        let reader = hound::WavReader::open(&path).unwrap();
        assert_eq!(
            reader.duration(),
            50 * 960,
            "header from the 1 s checkpoint"
        );
        let audio = read_wav_mono(&path).unwrap();
        assert_eq!(audio.samples.len(), 48_000);
        assert!(audio.samples.iter().any(|&s| s.abs() > 0.4));
    }

    #[test]
    fn samples_are_clamped_and_nan_is_zero() {
        assert_eq!(to_i16(2.0), 32767);
        assert_eq!(to_i16(-2.0), -32767);
        assert_eq!(to_i16(f32::NAN), 0);
        assert_eq!(to_i16(0.5), 16384);
    }

    #[test]
    fn create_in_missing_directory_fails_with_path() {
        let err = WavSink::create("/nonexistent-dir/x.wav").err().unwrap();
        assert!(matches!(err, SinkError::Create { .. }));
        assert!(err.to_string().contains("/nonexistent-dir/x.wav"));
    }

    #[test]
    fn null_sink_counts_frames() {
        let mut sink = SinkSpec::parse("null").unwrap().open().unwrap();
        sink.write_frame(&[0.0; 960]).unwrap();
        sink.finish().unwrap();
        let mut null = NullSink::default();
        write_tone(&mut null, 3);
        assert_eq!(null.frames, 3);
    }

    #[test]
    fn parses_and_rejects_sink_specs() {
        assert_eq!(SinkSpec::parse("null"), Ok(SinkSpec::Null));
        assert_eq!(
            SinkSpec::parse("wav:out.wav"),
            Ok(SinkSpec::Wav {
                path: "out.wav".into()
            })
        );
        assert_eq!(
            SinkSpec::parse("wav:o.wav").unwrap().to_string(),
            "wav:o.wav"
        );
        let cases = [
            ("wav:", "`wav` needs a file path"),
            ("null:x", "`null` takes no argument"),
            ("speaker", "unknown sink kind `speaker`"),
            ("  ", "empty sink spec"),
        ];
        for (spec, reason) in cases {
            let err = SinkSpec::parse(spec).unwrap_err().to_string();
            assert!(err.contains(reason), "{spec:?} gave {err:?}");
        }
    }
}
