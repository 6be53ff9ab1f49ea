//! A plain iterative radix-2 FFT for [`super::analysis`]. Offline measurement only (it allocates a
//! twiddle table per call); nothing on the per-frame path uses it.
//! It must never be called per frame.

use std::f64::consts::PI;

/// In-place forward DFT `X_k = Σ x_n e^{-2πikn/N}` of the complex signal `(re, im)`.
///
/// Invariant (checked): both slices have the same power-of-two length. Callers in this crate
/// always pad to a power of two, so a violation is a bug, not bad input.
pub(crate) fn fft_in_place(re: &mut [f64], im: &mut [f64]) {
    let n = re.len();
    assert!(
        n == im.len() && n.is_power_of_two(),
        "fft needs equal power-of-two lengths"
    );
    if n < 2 {
        return;
    }
    let bits = n.trailing_zeros();
    for i in 0..n {
        let j = i.reverse_bits() >> (usize::BITS - bits);
        if j > i {
            re.swap(i, j);
            im.swap(i, j);
        }
    }
    let twiddles: Vec<(f64, f64)> = (0..n / 2)
        .map(|k| {
            let angle = -2.0 * PI * k as f64 / n as f64;
            (angle.cos(), angle.sin())
        })
        .collect();
    let mut len = 2;
    while len <= n {
        let half = len / 2;
        let stride = n / len;
        for start in (0..n).step_by(len) {
            for j in 0..half {
                let (wr, wi) = twiddles[j * stride];
                let (a, b) = (start + j, start + j + half);
                let vr = re[b] * wr - im[b] * wi;
                let vi = re[b] * wi + im[b] * wr;
                re[b] = re[a] - vr;
                im[b] = im[a] - vi;
                re[a] += vr;
                im[a] += vi;
            }
        }
        len *= 2;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::test_util::Rng;

    #[test]
    fn matches_a_naive_dft() {
        let n = 64;
        let mut rng = Rng::new(7);
        let x: Vec<(f64, f64)> = (0..n)
            .map(|_| (rng.unit() - 0.5, rng.unit() - 0.5))
            .collect();
        let (mut re, mut im): (Vec<f64>, Vec<f64>) = x.iter().copied().unzip();
        fft_in_place(&mut re, &mut im);
        for k in 0..n {
            let (mut sr, mut si) = (0.0, 0.0);
            for (t, &(xr, xi)) in x.iter().enumerate() {
                let a = -2.0 * PI * (k * t) as f64 / n as f64;
                sr += xr * a.cos() - xi * a.sin();
                si += xr * a.sin() + xi * a.cos();
            }
            assert!(
                (re[k] - sr).abs() < 1e-9 && (im[k] - si).abs() < 1e-9,
                "bin {k}"
            );
        }
    }

    #[test]
    fn trivial_lengths_are_identity() {
        let (mut re, mut im) = (vec![3.0], vec![-1.0]);
        fft_in_place(&mut re, &mut im);
        assert_eq!((re[0], im[0]), (3.0, -1.0));
    }
}
