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

/// A small deterministic PRNG (xorshift64*), so "random" tests are reproducible.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

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
