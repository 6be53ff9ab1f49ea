//! Helpers shared by the audio unit tests: deterministic noise, sine generation and temporary
//! files that clean up after themselves. Test-only; never compiled into the client.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

/// `n` samples of `amplitude · sin(2π·hz·t)` at `rate`.
pub fn sine(hz: f64, amplitude: f32, n: usize, rate: u32) -> Vec<f32> {
    (0..n)
        .map(|i| {
            let t = i as f64 / f64::from(rate);
            amplitude * (2.0 * std::f64::consts::PI * hz * t).sin() as f32
        })
        .collect()
}

pub use super::rng::Rng;

/// A path in a per-process temporary folder, removed when dropped.
pub struct TempFile(PathBuf);

impl std::ops::Deref for TempFile {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl AsRef<Path> for TempFile {
    fn as_ref(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A fresh, unique path ending in `name` (the file is not created).
pub fn temp_path(name: &str) -> TempFile {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!("cromulent-audio-tests-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir is writable");
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    TempFile(dir.join(format!("{n}-{name}")))
}

/// The spoken fixture (`tests/fixtures/speech.wav`, espeak-ng), at 48 kHz, looped to `n`
/// samples and scaled so its speech sits at `speech_dbfs` (RMS over its 10 ms chunks within
/// 30 dB of the loudest).
pub fn speech(n: usize, speech_dbfs: f32) -> Vec<f32> {
    use super::AudioSource;
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/speech.wav");
    let mut source = super::WavSource::open(&path).expect("the speech fixture");
    let mut out = vec![0.0; n];
    for chunk in out.chunks_mut(super::FRAME_SAMPLES) {
        source.next_frame(chunk);
    }
    let gain = 10f32.powf((speech_dbfs - super::analysis::speech_level_dbfs(&out)) / 20.0);
    out.iter_mut().for_each(|s| *s *= gain);
    out
}
