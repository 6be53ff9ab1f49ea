//! The probe's two audio ends. [`ClickSource`] (the mouth) emits a short tone burst every few
//! frames at a random sample offset and notes when the frame holding it was pulled;
//! [`OnsetSink`] (the ear) notes the frame write instant and sample offset of every onset in
//! what it is given. Both only record; the timing arithmetic lives in [`super::analysis`].
//!
//! Between clicks the source is digital silence, so every click is a talk spurt after Opus DTX
//! silence — the moment someone starts speaking.
//!
//! Both ends must never compute a latency: they note instants and sample offsets, nothing
//! more.

use std::f32::consts::TAU;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use cromulent::audio::{AudioSink, AudioSource, FRAME_SAMPLES, SAMPLE_RATE, SinkError};

/// Burst frequency: well inside narrowband, so any Opus mode keeps it.
const CLICK_HZ: f32 = 1000.0;
/// Background tone frequency.
const BACKGROUND_HZ: f64 = 200.0;
/// Burst length: 10 ms.
const CLICK_SAMPLES: usize = 480;
/// Burst amplitude (−6 dBFS peak).
const CLICK_AMPLITUDE: f32 = 0.5;
/// An onset is the first sample louder than this (−20 dBFS) …
pub const ONSET_THRESHOLD: f32 = 0.1;
/// … after at least this many quieter samples (50 ms), so one burst is one onset.
const REARM_SAMPLES: usize = 2400;

/// A click as emitted: when the frame holding its first sample was pulled, and where in that
/// frame it starts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Emitted {
    pub pulled: Instant,
    pub offset: usize,
}

/// An onset as heard: when the frame holding it was written, and where in that frame.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Heard {
    pub written: Instant,
    pub offset: usize,
}

/// Clicks every `period_frames` frames once armed; between them silence, or a quiet
/// background tone that keeps packets flowing (no DTX pauses).
pub struct ClickSource {
    period_frames: u32,
    /// Peak amplitude of the background tone (0: digital silence).
    background: f32,
    /// Background tone phase, cycles.
    phase: f64,
    frame: u32,
    /// Samples of the current burst already emitted, while one is playing.
    burst_pos: Option<usize>,
    armed: Arc<std::sync::atomic::AtomicBool>,
    emitted: Arc<Mutex<Vec<Emitted>>>,
    /// Every pull instant (the sender's frame clock), for the phase analysis.
    pulls: Arc<Mutex<Vec<Instant>>>,
}

impl ClickSource {
    pub fn new(
        period_frames: u32,
        armed: Arc<std::sync::atomic::AtomicBool>,
        emitted: Arc<Mutex<Vec<Emitted>>>,
        pulls: Arc<Mutex<Vec<Instant>>>,
    ) -> Self {
        Self {
            period_frames: period_frames.max(2),
            background: 0.0,
            phase: 0.0,
            frame: 0,
            burst_pos: None,
            armed,
            emitted,
            pulls,
        }
    }
}

impl ClickSource {
    /// Play a 200 Hz tone of this peak amplitude under the clicks (keep it well below
    /// [`ONSET_THRESHOLD`]).
    pub fn with_background(mut self, amplitude: f32) -> Self {
        self.background = amplitude;
        self
    }
}

impl AudioSource for ClickSource {
    fn next_frame(&mut self, out: &mut [f32]) {
        let now = Instant::now();
        lock(&self.pulls).push(now);
        for sample in out.iter_mut() {
            *sample = self.background * (std::f64::consts::TAU * self.phase).sin() as f32;
            self.phase = (self.phase + BACKGROUND_HZ / f64::from(SAMPLE_RATE)).fract();
        }
        let mut start = 0;
        if self.burst_pos.is_none()
            && self.armed.load(std::sync::atomic::Ordering::Relaxed)
            && self.frame.is_multiple_of(self.period_frames)
        {
            let offset = rand::random_range(0..out.len());
            lock(&self.emitted).push(Emitted {
                pulled: now,
                offset,
            });
            self.burst_pos = Some(0);
            start = offset;
        }
        if let Some(pos) = self.burst_pos.as_mut() {
            for sample in &mut out[start..] {
                if *pos >= CLICK_SAMPLES {
                    break;
                }
                *sample += burst_sample(*pos);
                *pos += 1;
            }
            if *pos >= CLICK_SAMPLES {
                self.burst_pos = None;
            }
        }
        self.frame = self.frame.wrapping_add(1);
    }
}

/// Sample `i` of the burst: a 1 kHz sine starting at full amplitude (a sharp onset), faded
/// out over its last quarter.
fn burst_sample(i: usize) -> f32 {
    let t = i as f32 / SAMPLE_RATE as f32;
    let fade_from = CLICK_SAMPLES * 3 / 4;
    let gain = if i < fade_from {
        1.0
    } else {
        (CLICK_SAMPLES - i) as f32 / (CLICK_SAMPLES - fade_from) as f32
    };
    // Cosine phase: the very first sample is at full amplitude.
    CLICK_AMPLITUDE * gain * (TAU * CLICK_HZ * t).cos()
}

/// Finds onsets in the received audio.
pub struct OnsetSink {
    /// Quiet samples in a row; onsets are only taken once this reaches [`REARM_SAMPLES`].
    quiet: usize,
    heard: Arc<Mutex<Vec<Heard>>>,
    /// Every write instant (the receiver's frame clock).
    writes: Arc<Mutex<Vec<Instant>>>,
}

impl OnsetSink {
    pub fn new(heard: Arc<Mutex<Vec<Heard>>>, writes: Arc<Mutex<Vec<Instant>>>) -> Self {
        Self {
            quiet: REARM_SAMPLES,
            heard,
            writes,
        }
    }
}

impl AudioSink for OnsetSink {
    fn write_frame(&mut self, frame: &[f32]) -> Result<(), SinkError> {
        let now = Instant::now();
        lock(&self.writes).push(now);
        for (offset, &s) in frame.iter().enumerate() {
            if s.abs() > ONSET_THRESHOLD {
                if self.quiet >= REARM_SAMPLES {
                    lock(&self.heard).push(Heard {
                        written: now,
                        offset,
                    });
                }
                self.quiet = 0;
            } else {
                self.quiet = self.quiet.saturating_add(1);
            }
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<(), SinkError> {
        Ok(())
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A poisoned lock only means another thread panicked mid-push; the data is still usable.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Frame length in samples, re-exported for the analysis.
pub const FRAME: usize = FRAME_SAMPLES;

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;

    #[test]
    fn a_click_is_emitted_once_per_period_and_heard_once_at_its_offset() {
        let armed = Arc::new(AtomicBool::new(true));
        let emitted = Arc::new(Mutex::new(Vec::new()));
        let mut src = ClickSource::new(5, armed, emitted.clone(), Arc::default());
        let heard = Arc::new(Mutex::new(Vec::new()));
        let mut sink = OnsetSink::new(heard.clone(), Arc::default());
        let mut frame = [0.0f32; FRAME_SAMPLES];
        for _ in 0..20 {
            src.next_frame(&mut frame);
            sink.write_frame(&frame).unwrap();
        }
        let emitted = emitted.lock().unwrap().clone();
        let heard = heard.lock().unwrap().clone();
        assert_eq!(emitted.len(), 4);
        assert_eq!(heard.len(), 4, "one onset per click");
        for (e, h) in emitted.iter().zip(&heard) {
            // Loopback without a codec: same frame, same offset.
            assert_eq!(e.offset, h.offset);
        }
    }

    #[test]
    fn nothing_until_armed() {
        let armed = Arc::new(AtomicBool::new(false));
        let emitted = Arc::new(Mutex::new(Vec::new()));
        let mut src = ClickSource::new(2, armed, emitted.clone(), Arc::default());
        let mut frame = [1.0f32; FRAME_SAMPLES];
        for _ in 0..10 {
            src.next_frame(&mut frame);
            assert!(frame.iter().all(|&s| s == 0.0));
        }
        assert!(emitted.lock().unwrap().is_empty());
    }
}
