//! Measuring recorded audio: dominant frequency, RMS, and how much of the power sits at a given
//! tone or in a band. Used by unit tests and by the headless client's self-checks ("the far end
//! heard 440 Hz and 660 Hz but not 880 Hz").
//!
//! Offline only: these functions allocate and run FFTs; never call them per frame. All take the
//! samples and their sample rate, so they work on any WAV (see [`super::read_wav_mono`]).
//!
//! Resolution: frequency measurements resolve about `1 / duration` Hz (1 Hz for one second),
//! and [`dominant_frequency`] interpolates between FFT bins, giving ≈ ±0.1 Hz on a clean
//! one-second tone — well inside the ±2 Hz the end-to-end tests need.

use super::fft::fft_in_place;

/// Root-mean-square amplitude (1.0 for a full-scale square wave, 0.707 for a full-scale sine).
/// 0 for no samples.
pub fn rms(samples: &[f32]) -> f32 {
    if samples.is_empty() {
        return 0.0;
    }
    (mean_square(samples) as f32).sqrt()
}

/// The strongest frequency in `samples`, in Hz, or `None` for silence or fewer than 64 samples.
///
/// Hann window, zero-padded FFT, then Gaussian (log-parabolic) interpolation around the peak
/// bin. The search starts above the two lowest bins so a DC offset is never "dominant".
pub fn dominant_frequency(samples: &[f32], sample_rate: u32) -> Option<f32> {
    if samples.len() < 64 {
        return None;
    }
    let power = power_spectrum(samples);
    let bins = power.len(); // half the padded FFT length, + 1
    let (peak, &peak_power) = power[2..bins - 1]
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .map(|(i, p)| (i + 2, p))?;
    if peak_power <= 0.0 {
        return None;
    }
    // Power is |X|², so ln(power)/2 = ln|X|; the factor cancels in the ratio below.
    let (a, b, c) = (power[peak - 1], peak_power, power[peak + 1]);
    let offset = if a > 0.0 && c > 0.0 {
        let (la, lb, lc) = (a.ln(), b.ln(), c.ln());
        let denom = la - 2.0 * lb + lc;
        if denom.abs() > f64::EPSILON {
            0.5 * (la - lc) / denom
        } else {
            0.0
        }
    } else {
        0.0
    };
    let fft_len = 2 * (bins - 1);
    Some(((peak as f64 + offset) * f64::from(sample_rate) / fft_len as f64) as f32)
}

/// Fraction (0..=1) of the signal's power carried by a sinusoid at exactly `hz`.
///
/// A Hann-windowed Goertzel filter estimates the amplitude `A` of the `hz` component; the result
/// is `(A²/2) / mean(x²)`. A pure tone at `hz` gives ≈ 1, a 50/50 mix of two tones ≈ 0.5 each,
/// silence 0. The window's main lobe is `±2/duration` wide, so a tone 0.5 Hz off in a
/// one-second window still reads ≈ 0.8 of its power; use [`band_presence`] when the exact
/// frequency is uncertain.
pub fn tone_power(samples: &[f32], sample_rate: u32, hz: f32) -> f32 {
    let total = mean_square(samples);
    if total <= 0.0 {
        return 0.0;
    }
    let n = samples.len();
    let omega = 2.0 * std::f64::consts::PI * f64::from(hz) / f64::from(sample_rate);
    let coeff = 2.0 * omega.cos();
    let (mut s1, mut s2, mut window_sum) = (0.0f64, 0.0f64, 0.0f64);
    for (i, &x) in samples.iter().enumerate() {
        let w = hann(i, n);
        window_sum += w;
        let s0 = f64::from(x) * w + coeff * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    let magnitude_sq = s1 * s1 + s2 * s2 - coeff * s1 * s2;
    let amplitude = 2.0 * magnitude_sq.max(0.0).sqrt() / window_sum;
    ((amplitude * amplitude / 2.0) / total).min(1.0) as f32
}

/// Fraction (0..=1) of the signal's power within `center_hz ± half_width_hz`, from a
/// Hann-windowed power spectrum. Tolerant of small frequency errors (clock drift, resampling);
/// `half_width_hz` should be at least `2 / duration` so a tone's whole main lobe fits.
pub fn band_presence(samples: &[f32], sample_rate: u32, center_hz: f32, half_width_hz: f32) -> f32 {
    if samples.len() < 2 {
        return 0.0;
    }
    let power = power_spectrum(samples);
    let total: f64 = power.iter().sum();
    if total <= 0.0 {
        return 0.0;
    }
    let hz_per_bin = f64::from(sample_rate) / (2 * (power.len() - 1)) as f64;
    let lo = f64::from(center_hz - half_width_hz).max(0.0) / hz_per_bin;
    let hi = f64::from(center_hz + half_width_hz) / hz_per_bin;
    let in_band: f64 = power
        .iter()
        .enumerate()
        .filter(|(k, _)| (lo..=hi).contains(&(*k as f64)))
        .map(|(_, p)| p)
        .sum();
    (in_band / total) as f32
}

/// Half-width of the band [`tone_share`] counts as the tone.
pub const TONE_BAND_HZ: f32 = 20.0;

/// Fraction (0..=1) of the signal's power within [`TONE_BAND_HZ`] of `hz`: "is this tone what
/// is heard". Unlike [`tone_power`] it does not care about phase, so one concealed or dropped
/// frame on a real call (a phase jump mid-window) does not hide a tone that is there, while
/// silence, noise or another tone still score low.
pub fn tone_share(samples: &[f32], sample_rate: u32, hz: f32) -> f32 {
    band_presence(samples, sample_rate, hz, TONE_BAND_HZ)
}

/// Length of the blocks [`tone_breaks`] follows a tone in: 10 ms.
const BREAK_BLOCK_SECS: f64 = 0.01;

/// Largest change of a tone's phase from one 10 ms block to the next that is still the same
/// tone: a tone 1 Hz off `hz` drifts 0.06 rad a block, a dropped, repeated or concealed piece
/// of it moves the phase by whatever its length is, modulo a period.
const BREAK_PHASE_RAD: f64 = 0.35;

/// Where a steady tone at `hz` breaks: the sample offsets at which each run of broken 10 ms
/// blocks starts. A block is broken when the tone's amplitude in it falls below half its
/// median over `samples` (a gap) or its phase moved more than [`BREAK_PHASE_RAD`] from the
/// block before (a piece dropped, repeated or concealed). Empty for an unbroken tone; pass
/// only the stretch that should be all tone (not its onset or end).
///
/// Unlike [`tone_power`] over a whole window, which a phase jump lowers by an amount that
/// depends on where the jump falls, this counts the breaks and says where they are.
pub fn tone_breaks(samples: &[f32], sample_rate: u32, hz: f32) -> Vec<usize> {
    let block = ((f64::from(sample_rate) * BREAK_BLOCK_SECS) as usize).max(1);
    let omega = 2.0 * std::f64::consts::PI * f64::from(hz) / f64::from(sample_rate);
    // The tone's complex amplitude in each block, its phase against one clock for all blocks.
    let blocks: Vec<(f64, f64)> = samples
        .chunks_exact(block)
        .enumerate()
        .map(|(b, chunk)| {
            let (re, im) = chunk
                .iter()
                .enumerate()
                .fold((0.0, 0.0), |(re, im), (i, &x)| {
                    let phase = omega * (b * block + i) as f64;
                    let x = f64::from(x);
                    (re + x * phase.cos(), im - x * phase.sin())
                });
            (2.0 * re.hypot(im) / block as f64, im.atan2(re))
        })
        .collect();
    let mut amplitudes: Vec<f64> = blocks.iter().map(|&(a, _)| a).collect();
    amplitudes.sort_by(f64::total_cmp);
    let Some(&median) = amplitudes.get(amplitudes.len() / 2) else {
        return Vec::new();
    };
    let mut breaks = Vec::new();
    let mut in_break = false;
    for (b, pair) in blocks.windows(2).enumerate() {
        let ((_, before), (amplitude, phase)) = (pair[0], pair[1]);
        let turn = (phase - before + std::f64::consts::PI).rem_euclid(std::f64::consts::TAU)
            - std::f64::consts::PI;
        let broken = amplitude < median / 2.0 || turn.abs() > BREAK_PHASE_RAD;
        if broken && !in_break {
            breaks.push((b + 1) * block);
        }
        in_break = broken;
    }
    breaks
}

fn mean_square(samples: &[f32]) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    samples
        .iter()
        .map(|&x| f64::from(x) * f64::from(x))
        .sum::<f64>()
        / samples.len() as f64
}

/// Periodic-free ("symmetric") Hann window value for sample `i` of `n`.
fn hann(i: usize, n: usize) -> f64 {
    if n < 2 {
        return 1.0;
    }
    let x = i as f64 / (n - 1) as f64;
    0.5 - 0.5 * (2.0 * std::f64::consts::PI * x).cos()
}

/// `|X_k|²` for `k = 0..=N/2` of the Hann-windowed signal zero-padded to a power of two `N`.
fn power_spectrum(samples: &[f32]) -> Vec<f64> {
    let n = samples.len();
    let fft_len = n.next_power_of_two().max(2);
    let mut re = vec![0.0; fft_len];
    let mut im = vec![0.0; fft_len];
    for (i, (slot, &x)) in re.iter_mut().zip(samples).enumerate() {
        *slot = f64::from(x) * hann(i, n);
    }
    fft_in_place(&mut re, &mut im);
    re.iter()
        .zip(&im)
        .take(fft_len / 2 + 1)
        .map(|(r, i)| r * r + i * i)
        .collect()
}

/// A small room's impulse response for echo tests and benchmarks: the direct path `delay`
/// samples late at `gain`, then eleven reflections every 157 samples (~3.3 ms) fading by 0.6
/// each. `(delay, gain)` pairs. (`cromulent-test-support`'s PulseAudio room uses the same
/// shape; that crate cannot depend on this one.)
pub fn room_taps(delay: usize, gain: f32) -> Vec<(usize, f32)> {
    (0..12)
        .map(|k| (delay + k * 157, gain * 0.6f32.powi(k as i32)))
        .collect()
}

/// What a room with `taps` ([`room_taps`]) returns at sample `i` of `played`: samples before
/// its start or past its end count as silence.
pub fn room_echo(taps: &[(usize, f32)], played: &[f32], i: usize) -> f32 {
    taps.iter()
        .filter_map(|&(t, g)| Some(g * played.get(i.checked_sub(t)?)?))
        .sum()
}

/// The level of the speech in `x` (48 kHz), dBFS: the RMS over its 10 ms chunks within
/// 30 dB of the loudest — pauses left out, as a speech level is measured.
pub fn speech_level_dbfs(x: &[f32]) -> f32 {
    let powers: Vec<f64> = x
        .chunks_exact(480)
        .map(|c| c.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / 480.0)
        .collect();
    let loudest = powers.iter().copied().fold(0.0, f64::max);
    let active: Vec<f64> = powers.into_iter().filter(|&p| p > loudest * 1e-3).collect();
    if active.is_empty() {
        return super::FLOOR_DBFS;
    }
    (10.0 * (active.iter().sum::<f64>() / active.len() as f64).log10()) as f32
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::test_util::{Rng, sine};

    const RATE: u32 = 48_000;

    fn mix(parts: &[(f64, f32)]) -> Vec<f32> {
        let mut out = vec![0.0; RATE as usize];
        for &(hz, amp) in parts {
            for (o, s) in out.iter_mut().zip(sine(hz, amp, RATE as usize, RATE)) {
                *o += s;
            }
        }
        out
    }

    #[test]
    fn dominant_frequency_is_precise_for_off_bin_tones() {
        for hz in [440.0, 440.7, 1234.5, 97.3, 15_000.2] {
            let f = dominant_frequency(&sine(hz, 0.3, RATE as usize, RATE), RATE).unwrap();
            assert!((f64::from(f) - hz).abs() < 0.2, "{hz} Hz measured as {f}");
        }
    }

    #[test]
    fn dominant_frequency_picks_the_louder_tone_and_ignores_dc() {
        let mut x = mix(&[(440.0, 0.2), (660.0, 0.4)]);
        x.iter_mut().for_each(|s| *s += 0.3);
        let f = dominant_frequency(&x, RATE).unwrap();
        assert!((f - 660.0).abs() < 0.5, "{f}");
    }

    #[test]
    fn dominant_frequency_of_silence_or_tiny_input_is_none() {
        assert_eq!(dominant_frequency(&[0.0; 4800], RATE), None);
        assert_eq!(dominant_frequency(&[0.5; 10], RATE), None);
    }

    #[test]
    fn distinguishes_440_660_880_mixes() {
        let chord = mix(&[(440.0, 0.3), (660.0, 0.3)]);
        assert!(tone_power(&chord, RATE, 440.0) > 0.4);
        assert!(tone_power(&chord, RATE, 660.0) > 0.4);
        assert!(tone_power(&chord, RATE, 880.0) < 1e-4);

        let other = mix(&[(440.0, 0.3), (880.0, 0.3)]);
        assert!(tone_power(&other, RATE, 660.0) < 1e-4);
        assert!(tone_power(&other, RATE, 880.0) > 0.4);

        for (hz, expected) in [(440.0, 0.4), (660.0, 0.4), (880.0, 0.0)] {
            let p = band_presence(&chord, RATE, hz, 5.0);
            assert!((p - expected).abs() < 0.11, "band {hz}: {p}");
        }
    }

    #[test]
    fn tone_power_is_a_fraction_of_total() {
        let pure = sine(1000.0, 0.5, RATE as usize, RATE);
        assert!((tone_power(&pure, RATE, 1000.0) - 1.0).abs() < 0.01);
        assert_eq!(tone_power(&[0.0; 100], RATE, 1000.0), 0.0);
        // White noise spreads its power: no single frequency holds much of it.
        let mut rng = Rng::new(3);
        let noise: Vec<f32> = (0..RATE).map(|_| (rng.unit() - 0.5) as f32).collect();
        assert!(tone_power(&noise, RATE, 1000.0) < 0.01);
        assert!(band_presence(&noise, RATE, 12_000.0, 12_000.0) > 0.99);
    }

    #[test]
    fn tone_share_survives_a_phase_jump_that_tone_power_does_not() {
        // A tone whose second half is shifted by half a period, as when a frame is dropped.
        let mut jumped = sine(440.0, 0.5, RATE as usize / 2, RATE);
        let shifted = sine(440.0, 0.5, RATE as usize / 2 + 55, RATE);
        jumped.extend_from_slice(&shifted[55..]);
        assert!(
            tone_power(&jumped, RATE, 440.0) < 0.5,
            "coherent measure collapses"
        );
        assert!(tone_share(&jumped, RATE, 440.0) > 0.95);
        assert_eq!(tone_share(&[0.0; 4800], RATE, 440.0), 0.0);
        let other = sine(660.0, 0.5, RATE as usize, RATE);
        assert!(
            tone_share(&other, RATE, 440.0) < 0.01,
            "another tone is not this one"
        );
    }

    /// Two seconds of 440 Hz in which `edit` cuts or inserts pieces.
    fn edited_tone(edit: impl Fn(&mut Vec<f32>)) -> Vec<f32> {
        let mut x = sine(440.0, 0.3, 2 * RATE as usize, RATE);
        edit(&mut x);
        x
    }

    #[test]
    fn tone_breaks_finds_each_dropped_inserted_or_silent_piece_and_where() {
        let ms = |t: usize| t * RATE as usize / 1000;
        assert_eq!(
            tone_breaks(&edited_tone(|_| {}), RATE, 440.0),
            Vec::<usize>::new()
        );
        // Slightly off frequency, as two sound cards' clocks would make it: still one tone.
        let off = sine(440.8, 0.3, 2 * RATE as usize, RATE);
        assert_eq!(tone_breaks(&off, RATE, 440.0), Vec::<usize>::new());
        // A 10 ms frame dropped at 800 ms; 10 ms of silence at 1200 ms; both (the silence
        // then comes 10 ms earlier).
        let dropped = edited_tone(|x| drop(x.drain(ms(800)..ms(810))));
        let gap = edited_tone(|x| drop(x.splice(ms(1200)..ms(1200), vec![0.0; ms(10)])));
        let both = edited_tone(|x| {
            x.splice(ms(1200)..ms(1200), vec![0.0; ms(10)]);
            x.drain(ms(800)..ms(810));
        });
        let near = |breaks: Vec<usize>, at_ms: &[usize]| {
            breaks.len() == at_ms.len()
                && breaks
                    .iter()
                    .zip(at_ms)
                    .all(|(&b, &t)| b.abs_diff(ms(t)) <= ms(10))
        };
        assert!(near(tone_breaks(&dropped, RATE, 440.0), &[800]));
        assert!(near(tone_breaks(&gap, RATE, 440.0), &[1200]));
        assert!(near(tone_breaks(&both, RATE, 440.0), &[800, 1190]));
        // A sample lost from every 20 ms frame (a decoder and a clock disagreeing): many.
        let chipped = edited_tone(|x| {
            *x = x
                .chunks(ms(20))
                .flat_map(|frame| &frame[..frame.len() - 12])
                .copied()
                .collect();
        });
        assert!(tone_breaks(&chipped, RATE, 440.0).len() > 10);
        assert_eq!(tone_breaks(&[], RATE, 440.0), Vec::<usize>::new());
    }

    #[test]
    fn rms_of_known_signals() {
        assert_eq!(rms(&[]), 0.0);
        assert!((rms(&[0.5, -0.5, 0.5, -0.5]) - 0.5).abs() < 1e-6);
        let s = sine(100.0, 1.0, RATE as usize, RATE);
        assert!((rms(&s) - std::f32::consts::FRAC_1_SQRT_2).abs() < 1e-3);
    }
}
