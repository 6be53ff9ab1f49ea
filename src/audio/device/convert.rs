//! Streaming sample-rate conversion for sound devices whose rate is not 48 kHz, one sample at
//! a time, without allocating: what runs inside a device callback.
//!
//! Linear interpolation. For voice between common device rates (44.1/48 kHz) that is inaudible
//! next to Opus; going *down* from a high device rate (96 kHz) it aliases a little, which a
//! voice path tolerates. Clips use the band-limited [`crate::audio::resample_periodic`]
//! instead, off the frame path. Equal rates pass samples through bit-exact.
//!
//! Must never allocate, lock or log: both resamplers are plain state stepped per sample.

/// Capture direction: samples are pushed in at the device rate, 48 kHz samples come out.
#[derive(Debug, Clone)]
pub struct PushResampler {
    /// Input samples per output sample.
    step: f64,
    /// Position of the next output after the previous input sample, in input samples.
    pos: f64,
    prev: f32,
}

impl PushResampler {
    pub fn new(in_rate: u32, out_rate: u32) -> Self {
        Self {
            step: f64::from(in_rate.max(1)) / f64::from(out_rate.max(1)),
            pos: 1.0,
            prev: 0.0,
        }
    }

    /// Feeds one input sample; calls `emit` for each output sample it completes (0, 1 or more).
    #[inline]
    pub fn push(&mut self, x: f32, mut emit: impl FnMut(f32)) {
        while self.pos <= 1.0 {
            // This form is exact at the ends (pos 1 gives `x` itself): equal rates pass through.
            let t = self.pos as f32;
            let y = x * t + self.prev * (1.0 - t);
            emit(y);
            self.pos += self.step;
        }
        self.pos -= 1.0;
        self.prev = x;
    }
}

/// Playback direction: each output sample at the device rate pulls 48 kHz input as needed.
#[derive(Debug, Clone)]
pub struct PullResampler {
    /// Input samples per output sample.
    step: f64,
    /// Position between `a` and `b`, in input samples; `>= 1` means "advance first".
    pos: f64,
    a: f32,
    b: f32,
}

impl PullResampler {
    pub fn new(in_rate: u32, out_rate: u32) -> Self {
        Self {
            step: f64::from(in_rate.max(1)) / f64::from(out_rate.max(1)),
            pos: 2.0,
            a: 0.0,
            b: 0.0,
        }
    }

    /// How many input samples producing `outputs` more samples needs, at most.
    pub fn input_needed(&self, outputs: usize) -> usize {
        (self.pos + self.step * outputs as f64).ceil() as usize + 1
    }

    /// The next output sample; `pull` gives the next input sample.
    #[inline]
    pub fn next(&mut self, mut pull: impl FnMut() -> f32) -> f32 {
        while self.pos >= 1.0 {
            self.pos -= 1.0;
            self.a = self.b;
            self.b = pull();
        }
        let t = self.pos as f32;
        let y = self.b * t + self.a * (1.0 - t);
        self.pos += self.step;
        y
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::analysis::{dominant_frequency, rms};
    use crate::audio::test_util::sine;

    fn push_all(r: &mut PushResampler, input: &[f32]) -> Vec<f32> {
        let mut out = Vec::new();
        for &x in input {
            r.push(x, |y| out.push(y));
        }
        out
    }

    #[test]
    fn equal_rates_pass_through_exactly() {
        let input = sine(440.0, 0.5, 4800, 48_000);
        assert_eq!(
            push_all(&mut PushResampler::new(48_000, 48_000), &input),
            input
        );
        let mut pull = PullResampler::new(48_000, 48_000);
        let mut it = input.iter().copied();
        let out: Vec<f32> = (0..input.len())
            .map(|_| pull.next(|| it.next().unwrap_or(0.0)))
            .collect();
        assert_eq!(out, input);
    }

    #[test]
    fn capture_44k1_becomes_48k_at_the_same_pitch() {
        let input = sine(1000.0, 0.5, 44_100, 44_100);
        let out = push_all(&mut PushResampler::new(44_100, 48_000), &input);
        assert!(
            (out.len() as i64 - 48_000).abs() <= 1,
            "{} samples",
            out.len()
        );
        let f = dominant_frequency(&out, 48_000).unwrap();
        assert!((f - 1000.0).abs() < 1.0, "{f} Hz");
        assert!((rms(&out[100..]) - 0.5 / 2f32.sqrt()).abs() < 0.01);
    }

    #[test]
    fn capture_96k_halves_the_sample_count() {
        let input = sine(300.0, 0.5, 96_000, 96_000);
        let out = push_all(&mut PushResampler::new(96_000, 48_000), &input);
        assert!((out.len() as i64 - 48_000).abs() <= 1);
        assert!((dominant_frequency(&out, 48_000).unwrap() - 300.0).abs() < 1.0);
    }

    #[test]
    fn playback_48k_to_44k1_keeps_pitch_and_pulls_what_it_said() {
        let input = sine(500.0, 0.5, 48_000, 48_000);
        let mut pull = PullResampler::new(48_000, 44_100);
        let need = pull.input_needed(44_100);
        assert!((48_000..=48_004).contains(&need), "needs {need}");
        let mut it = input.iter().copied();
        let mut pulled = 0;
        let out: Vec<f32> = (0..44_100)
            .map(|_| {
                pull.next(|| {
                    pulled += 1;
                    it.next().unwrap_or(0.0)
                })
            })
            .collect();
        assert!(pulled <= need, "pulled {pulled} > promised {need}");
        let f = dominant_frequency(&out, 44_100).unwrap();
        assert!((f - 500.0).abs() < 1.0, "{f} Hz");
    }
}
