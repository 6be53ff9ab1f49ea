//! Mixing the decoded frames of several peers into the one frame the speaker plays.
//!
//! A plain sum followed by a stateless soft clipper: samples up to [`SOFT_CLIP_KNEE`] pass
//! through bit-exact (one talker at a normal level is never coloured), louder sums bend smoothly
//! towards ±1 and never exceed it — not even for NaN or infinite input. Deafen, per-peer volume
//! and muting are the engine's business, not the mixer's. No allocation: the caller owns `out`.

/// Magnitude below which samples are left untouched.
pub const SOFT_CLIP_KNEE: f32 = 0.75;

/// Sums `inputs` sample by sample into `out` (overwriting it), then soft-clips into `[-1, 1]`.
///
/// An input shorter than `out` contributes silence for the missing tail; a longer one is cut.
/// No inputs gives silence.
pub fn mix<I>(inputs: I, out: &mut [f32])
where
    I: IntoIterator,
    I::Item: AsRef<[f32]>,
{
    out.fill(0.0);
    for input in inputs {
        for (o, &x) in out.iter_mut().zip(input.as_ref()) {
            *o += x;
        }
    }
    out.iter_mut().for_each(|s| *s = soft_clip(*s));
}

/// Identity for `|x| ≤ SOFT_CLIP_KNEE`; above the knee a tanh curve whose slope matches at the
/// knee (no audible corner) and which approaches ±1 asymptotically. NaN maps to 0.
pub fn soft_clip(x: f32) -> f32 {
    if x.is_nan() {
        return 0.0;
    }
    let magnitude = x.abs();
    if magnitude <= SOFT_CLIP_KNEE {
        return x;
    }
    let headroom = 1.0 - SOFT_CLIP_KNEE;
    let bent = SOFT_CLIP_KNEE + headroom * ((magnitude - SOFT_CLIP_KNEE) / headroom).tanh();
    bent.min(1.0).copysign(x)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::frame::{FRAME_SAMPLES, Frame};
    use crate::audio::test_util::Rng;

    #[test]
    fn quiet_mixes_are_an_exact_sum() {
        let a = [0.1f32; 4];
        let b = [0.2f32, -0.3, 0.0, 0.25];
        let mut out = [9.0f32; 4];
        mix([&a, &b], &mut out);
        let expected: Vec<f32> = a.iter().zip(&b).map(|(x, y)| x + y).collect();
        assert_eq!(out.to_vec(), expected);
    }

    #[test]
    fn never_leaves_unit_range_even_with_many_loud_peers() {
        let mut rng = Rng::new(11);
        let peers: Vec<Frame> = (0..8)
            .map(|_| {
                let mut f = [0.0; FRAME_SAMPLES];
                f.iter_mut()
                    .for_each(|s| *s = (rng.unit() * 4.0 - 2.0) as f32);
                f
            })
            .collect();
        let mut out = [0.0; FRAME_SAMPLES];
        mix(&peers, &mut out);
        assert!(out.iter().all(|s| (-1.0..=1.0).contains(s)));
        // The limiter must not simply zero things: loud input stays loud.
        assert!(out.iter().filter(|s| s.abs() > 0.9).count() > FRAME_SAMPLES / 2);
    }

    #[test]
    fn soft_clip_is_monotonic_continuous_and_bounded() {
        let mut prev = soft_clip(-100.0);
        for i in -4000..=4000 {
            let x = i as f32 / 1000.0;
            let y = soft_clip(x);
            assert!(y >= prev, "not monotonic at {x}");
            assert!((y - prev).abs() <= 0.0011, "jump at {x}");
            assert!((-1.0..=1.0).contains(&y));
            prev = y;
        }
        assert_eq!(soft_clip(f32::INFINITY), 1.0);
        assert_eq!(soft_clip(f32::NEG_INFINITY), -1.0);
        assert_eq!(soft_clip(f32::NAN), 0.0);
        assert_eq!(soft_clip(0.5), 0.5);
    }

    #[test]
    fn short_inputs_and_no_inputs() {
        let mut out = [1.0f32; 3];
        mix([[0.5f32].as_slice()], &mut out);
        assert_eq!(out, [0.5, 0.0, 0.0]);
        mix(std::iter::empty::<&[f32]>(), &mut out);
        assert_eq!(out, [0.0; 3]);
    }
}
