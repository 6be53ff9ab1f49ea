//! Mouth-to-ear arithmetic, pure. A sample emitted at offset `k` of a frame pulled at `T` was
//! "spoken" at `T − (960 − k)/48 kHz` (the frame is complete, and handed over, at its pull;
//! with no device buffer that is the best a microphone can do). A sample heard at offset `j` of
//! a frame written at `W` is "heard" at `W + j/48 kHz` (playback starts at the write). So
//!
//! ```text
//! delay = (W − T) + 20 ms + (j − k)/48 kHz
//!       = 20 ms frame + codec shift (j − k, mod a frame: encoder lookahead + decoder delay)
//!         + transport & playout (the sender's frame tick to the receiver's frame tick that
//!           plays it: network, the wait for the receiver's next tick, whole frames held in
//!           the jitter buffer)
//! ```

use std::time::{Duration, Instant};

use super::signal::{Emitted, FRAME, Heard};

const SAMPLE_SECS: f64 = 1.0 / 48_000.0;

/// Nothing can be heard sooner than a frame plus Opus's 6.5 ms lookahead; a shorter "delay"
/// means the onset found was not the click's start (its first frame was dropped). A little
/// margin below 26.5 ms covers onset detection on a decoded, not identical, waveform.
pub const FLOOR_MS: f64 = 25.0;
const FRAME_MS: f64 = 20.0;

/// One click matched to its onset.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Event {
    /// Mouth-to-ear, ms.
    pub delay_ms: f64,
    /// Onset offset minus click offset, modulo a frame, ms (lookahead + decoder delay).
    pub codec_ms: f64,
    /// Sender frame tick to receiver frame tick, ms.
    pub transport_ms: f64,
}

impl Event {
    /// The part of `transport_ms` that is whole frames held back (jitter buffer), ms.
    pub fn held_frames(&self, phase_ms: f64) -> f64 {
        ((self.transport_ms - phase_ms) / FRAME_MS).round().max(0.0)
    }
}

/// Match every click with the first unused onset heard after it (and within `window`), and
/// compute its delay. Clicks never heard are counted in the second value.
pub fn match_events(emitted: &[Emitted], heard: &[Heard], window: Duration) -> (Vec<Event>, usize) {
    let mut events = Vec::new();
    let mut missed = 0;
    let mut next = 0;
    for e in emitted {
        let mouth = shift(e.pulled, -((FRAME - e.offset) as f64) * SAMPLE_SECS);
        let found = heard[next..].iter().enumerate().find_map(|(i, h)| {
            let ear = shift(h.written, h.offset as f64 * SAMPLE_SECS);
            let after = ear.checked_duration_since(mouth)?;
            (after <= window).then_some((i, h, after))
        });
        let Some((i, h, after)) = found else {
            missed += 1;
            continue;
        };
        next += i + 1;
        let shift_samples = (h.offset + FRAME - e.offset) % FRAME;
        let codec_ms = shift_samples as f64 * SAMPLE_SECS * 1000.0;
        let delay_ms = after.as_secs_f64() * 1000.0;
        events.push(Event {
            delay_ms,
            codec_ms,
            transport_ms: delay_ms - FRAME_MS - codec_ms,
        });
    }
    (events, missed)
}

/// The receiver's frame clock relative to the sender's, 0..20 ms: for each sender pull, the
/// time until the receiver's next write; the median over the run (both clocks tick every
/// 20 ms, so this is nearly constant within a run).
pub fn clock_phase_ms(pulls: &[Instant], writes: &[Instant]) -> Option<f64> {
    let mut phases = Vec::new();
    let mut j = 0;
    for &p in pulls {
        while j < writes.len() && writes[j] < p {
            j += 1;
        }
        if let Some(w) = writes.get(j) {
            phases.push((w.duration_since(p).as_secs_f64() * 1000.0) % FRAME_MS);
        }
    }
    if phases.is_empty() {
        return None;
    }
    phases.sort_by(f64::total_cmp);
    Some(phases[phases.len() / 2])
}

fn shift(t: Instant, secs: f64) -> Instant {
    let d = Duration::from_secs_f64(secs.abs());
    if secs >= 0.0 { t + d } else { t - d }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: f64) -> Duration {
        Duration::from_secs_f64(n / 1000.0)
    }

    #[test]
    fn delay_is_frame_plus_codec_shift_plus_transport() {
        let t0 = Instant::now() + ms(1000.0);
        // Click at offset 100 of a frame pulled at t0; heard at offset 100 + 312 of a frame
        // written 25 ms later (one frame held + 5 ms to the next receiver tick).
        let emitted = [Emitted {
            pulled: t0,
            offset: 100,
        }];
        let heard = [Heard {
            written: t0 + ms(25.0),
            offset: 412,
        }];
        let (events, missed) = match_events(&emitted, &heard, ms(500.0));
        assert_eq!(missed, 0);
        let e = events[0];
        assert!((e.codec_ms - 6.5).abs() < 1e-6, "{e:?}");
        assert!((e.transport_ms - 25.0).abs() < 1e-3, "{e:?}");
        assert!((e.delay_ms - 51.5).abs() < 1e-3, "{e:?}");
        assert_eq!(e.held_frames(5.0), 1.0);
    }

    #[test]
    fn an_onset_pushed_into_the_next_frame_by_the_codec() {
        let t0 = Instant::now() + ms(1000.0);
        // Click at offset 900: +312 samples lands at 252 of the *next* receiver frame.
        let emitted = [Emitted {
            pulled: t0,
            offset: 900,
        }];
        let heard = [Heard {
            written: t0 + ms(20.0 + 3.0),
            offset: 252,
        }];
        let (events, _) = match_events(&emitted, &heard, ms(500.0));
        let e = events[0];
        assert!((e.codec_ms - 6.5).abs() < 1e-6);
        // 3 ms after the sender's tick, one tick later because of the wrap.
        assert!((e.transport_ms - 3.0).abs() < 1e-3, "{e:?}");
        assert!((e.delay_ms - 29.5).abs() < 1e-3, "{e:?}");
    }

    #[test]
    fn unheard_clicks_are_missed_and_do_not_steal_later_onsets() {
        let t0 = Instant::now() + ms(1000.0);
        let emitted = [
            Emitted {
                pulled: t0,
                offset: 0,
            },
            Emitted {
                pulled: t0 + ms(1000.0),
                offset: 0,
            },
        ];
        let heard = [Heard {
            written: t0 + ms(1030.0),
            offset: 312,
        }];
        let (events, missed) = match_events(&emitted, &heard, ms(500.0));
        assert_eq!((events.len(), missed), (1, 1));
        assert!((events[0].delay_ms - 56.5).abs() < 1e-3);
    }

    #[test]
    fn phase_between_two_frame_clocks() {
        let t0 = Instant::now();
        let pulls: Vec<_> = (0..10).map(|i| t0 + ms(20.0 * i as f64)).collect();
        let writes: Vec<_> = (0..10).map(|i| t0 + ms(7.0 + 20.0 * i as f64)).collect();
        let phase = clock_phase_ms(&pulls, &writes).unwrap();
        assert!((phase - 7.0).abs() < 1e-3, "{phase}");
    }
}
