//! Reading WAV files of any common layout into mono `f32` samples at the file's own rate.
//!
//! Used by [`super::WavSource`] (which then resamples to 48 kHz) and by [`super::analysis`]
//! (which measures at whatever rate the file has). Reads the whole file at once: this is for
//! short clips and test recordings, so it refuses files longer than [`MAX_WAV_SECONDS`] rather
//! than eat memory. Never used on the per-frame path.

use std::path::{Path, PathBuf};

/// Longest file accepted (10 minutes, ~115 MB as 48 kHz `f32`).
pub const MAX_WAV_SECONDS: u32 = 600;

/// Sample rates outside this range are refused as almost certainly a corrupt header.
const RATE_RANGE: std::ops::RangeInclusive<u32> = 4_000..=768_000;

/// A decoded clip: mono samples in `[-1, 1]` and their sample rate.
#[derive(Debug, Clone, PartialEq)]
pub struct WavAudio {
    /// Mono samples (channels averaged).
    pub samples: Vec<f32>,
    /// Samples per second of `samples`.
    pub sample_rate: u32,
}

/// Why a WAV file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum WavReadError {
    /// Opening or decoding failed (missing file, not a WAV, truncated data).
    #[error("cannot read WAV file {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// What hound reported.
        #[source]
        source: hound::Error,
    },
    /// A valid header with a layout we do not handle.
    #[error("WAV file {path} has an unsupported format: {detail}")]
    Unsupported {
        /// The file.
        path: PathBuf,
        /// What is wrong, in words.
        detail: String,
    },
    /// More than [`MAX_WAV_SECONDS`] of audio.
    #[error("WAV file {path} is {seconds} s long; the limit is {MAX_WAV_SECONDS} s")]
    TooLong {
        /// The file.
        path: PathBuf,
        /// Its length, rounded down.
        seconds: u32,
    },
}

/// Reads `path`: 8/16/24/32-bit integer or 32-bit float PCM, any channel count (averaged to
/// mono), any rate in 4 kHz..=768 kHz. Integers are scaled by `2^(bits-1)`, so full scale maps
/// to `[-1, 1)`.
pub fn read_wav_mono(path: &Path) -> Result<WavAudio, WavReadError> {
    let read_err = |source| WavReadError::Read {
        path: path.to_path_buf(),
        source,
    };
    let unsupported = |detail: String| WavReadError::Unsupported {
        path: path.to_path_buf(),
        detail,
    };
    let mut reader = hound::WavReader::open(path).map_err(read_err)?;
    let spec = reader.spec();
    if spec.channels == 0 {
        return Err(unsupported("zero channels".into()));
    }
    if !RATE_RANGE.contains(&spec.sample_rate) {
        return Err(unsupported(format!("sample rate {} Hz", spec.sample_rate)));
    }
    let seconds = reader.duration() / spec.sample_rate;
    if seconds > MAX_WAV_SECONDS {
        return Err(WavReadError::TooLong {
            path: path.to_path_buf(),
            seconds,
        });
    }
    let interleaved: Vec<f32> = match (spec.sample_format, spec.bits_per_sample) {
        (hound::SampleFormat::Float, 32) => reader
            .samples::<f32>()
            .collect::<Result<_, _>>()
            .map_err(read_err)?,
        (hound::SampleFormat::Int, bits @ (8 | 16 | 24 | 32)) => {
            let scale = 1.0 / f64::from(1u32 << (bits - 1));
            reader
                .samples::<i32>()
                .map(|s| s.map(|s| (f64::from(s) * scale) as f32))
                .collect::<Result<_, _>>()
                .map_err(read_err)?
        }
        (format, bits) => return Err(unsupported(format!("{bits}-bit {format:?} samples"))),
    };
    Ok(WavAudio {
        samples: downmix(&interleaved, usize::from(spec.channels)),
        sample_rate: spec.sample_rate,
    })
}

/// Averages interleaved channels into one. A trailing partial frame is ignored.
fn downmix(interleaved: &[f32], channels: usize) -> Vec<f32> {
    if channels == 1 {
        return interleaved.to_vec();
    }
    let gain = 1.0 / channels as f32;
    interleaved
        .chunks_exact(channels)
        .map(|frame| frame.iter().sum::<f32>() * gain)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::test_util::temp_path;

    fn write(path: &Path, spec: hound::WavSpec, samples: &[i32]) {
        let mut w = hound::WavWriter::create(path, spec).unwrap();
        for &s in samples {
            w.write_sample(s).unwrap();
        }
        w.finalize().unwrap();
    }

    fn int_spec(channels: u16, bits: u16) -> hound::WavSpec {
        hound::WavSpec {
            channels,
            sample_rate: 22_050,
            bits_per_sample: bits,
            sample_format: hound::SampleFormat::Int,
        }
    }

    #[test]
    fn scales_each_integer_depth_to_unit_range() {
        for bits in [8u16, 16, 24, 32] {
            let path = temp_path(&format!("depth{bits}.wav"));
            let half = 1i32 << (bits - 2); // +0.5 of full scale
            write(&path, int_spec(1, bits), &[half, -half, 0]);
            let audio = read_wav_mono(&path).unwrap();
            assert_eq!(audio.sample_rate, 22_050);
            assert_eq!(audio.samples, vec![0.5, -0.5, 0.0], "{bits}-bit");
        }
    }

    #[test]
    fn averages_stereo_and_reads_float() {
        let path = temp_path("stereo.wav");
        write(&path, int_spec(2, 16), &[16384, 0, -16384, -16384]);
        assert_eq!(read_wav_mono(&path).unwrap().samples, vec![0.25, -0.5]);

        let path = temp_path("float.wav");
        let spec = hound::WavSpec {
            sample_format: hound::SampleFormat::Float,
            bits_per_sample: 32,
            ..int_spec(1, 32)
        };
        let mut w = hound::WavWriter::create(&path, spec).unwrap();
        w.write_sample(0.75f32).unwrap();
        w.finalize().unwrap();
        assert_eq!(read_wav_mono(&path).unwrap().samples, vec![0.75]);
    }

    #[test]
    fn missing_and_garbage_files_are_read_errors() {
        let missing = temp_path("does-not-exist.wav");
        let err = read_wav_mono(&missing).unwrap_err();
        assert!(matches!(err, WavReadError::Read { .. }), "{err}");
        assert!(err.to_string().contains("does-not-exist.wav"));

        let garbage = temp_path("garbage.wav");
        std::fs::write(&garbage, b"definitely not RIFF").unwrap();
        assert!(matches!(
            read_wav_mono(&garbage),
            Err(WavReadError::Read { .. })
        ));
    }
}
