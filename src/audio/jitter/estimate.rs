//! How deep the jitter buffer should be: the RFC 3550 interarrival-jitter estimate, and the
//! policy turning it into a target depth in frames that grows at once and shrinks slowly.
//!
//! The RFC 3550 arithmetic (`D`, the 1/16 smoothing) is `crate::rtp::jitter`; this file only
//! decides which `D` count for the buffer, and must never compute them itself.

use std::time::{Duration, Instant};

use crate::audio::codec::PacketDuration;
use crate::rtp::InterarrivalJitter;

/// Transit changes larger than this are a discontinuity (sender restart, clock jump), not
/// jitter; they are skipped so one event cannot inflate the estimate for seconds.
const DISCONTINUITY_MS: f64 = 1000.0;

/// Arrivals over which the largest transit change is remembered (2 s of frames).
const PEAK_WINDOW: usize = 100;

/// Needed delays up to this are treated as "no jitter" (scheduling noise on a clean link).
const NEEDED_DELAY_TOLERANCE_MS: f64 = 2.0;

/// Interarrival jitter per RFC 3550 §6.4.1 — the smoothed mean deviation of the difference `D`
/// in transit time between consecutively *arriving* packets, `J += (|D| − J) / 16`, in ms —
/// plus the largest `|D|` of the last [`PEAK_WINDOW`] arrivals.
///
/// It differs from the RFC's figure (the peer report's, `crate::rtp::ReceiverStats`) on
/// purpose, in what it is fed and what it keeps: `|D|` of [`DISCONTINUITY_MS`] or more is
/// skipped, the buffer does not feed it duplicates, and a resync restarts its reference
/// without a `D` — so a sender restart cannot inflate the buffer's depth for seconds.
///
/// `J` alone under-reacts to sparse spikes (one packet in ten delayed 25 ms gives `J` ≈ 5 ms),
/// so the delay the buffer must absorb is taken as `max(3·J, recent peak |D|)`: for evenly
/// spread delays `3·J` covers their range, for spikes the peak does.
///
/// Transit is measured against the RTP timestamp, so DTX gaps (timestamps and arrival times
/// jump together) do not count as jitter.
#[derive(Debug, Clone)]
pub(crate) struct JitterEstimator {
    /// RFC 3550 `J` and the previous packet, fed only the `|D|` that count.
    jitter: InterarrivalJitter,
    /// Ring of recent `|D|` values, ms.
    recent: [f32; PEAK_WINDOW],
    /// Next ring position to overwrite.
    next: usize,
}

impl Default for JitterEstimator {
    fn default() -> Self {
        Self {
            jitter: InterarrivalJitter::default(),
            recent: [0.0; PEAK_WINDOW],
            next: 0,
        }
    }
}

impl JitterEstimator {
    /// Feeds one arrival.
    pub(crate) fn update(&mut self, arrival: Instant, rtp_ts: u32) {
        let Some(d) = self.jitter.transit_change(arrival, rtp_ts) else {
            return;
        };
        if d < DISCONTINUITY_MS {
            self.jitter.smooth(d);
            self.recent[self.next] = d as f32;
            self.next = (self.next + 1) % PEAK_WINDOW;
        }
    }

    /// Forgets the previous packet (after a resync) but keeps the estimate: the network did not
    /// change just because the sender restarted.
    pub(crate) fn restart(&mut self, arrival: Instant, rtp_ts: u32) {
        self.jitter.restart(arrival, rtp_ts);
    }

    /// RFC 3550 `J`, ms.
    pub(crate) fn jitter_ms(&self) -> f64 {
        self.jitter.jitter_ms()
    }

    /// Delay the buffer should absorb, ms: `max(3·J, recent peak |D|)`.
    pub(crate) fn needed_delay_ms(&self) -> f64 {
        let peak = self.recent.iter().copied().fold(0.0f32, f32::max);
        (3.0 * self.jitter.jitter_ms()).max(f64::from(peak))
    }
}

/// Frames of depth that guarantee `needed_ms` of slack. Depth counts the frame about to play, so
/// a depth of `d` leaves between `d − 1` and `d` frames of time between a packet's nominal arrival
/// and its playout: `d = 1 + ceil(needed / frame)`. A clean link needs 1.
pub(crate) fn required_frames(
    needed_ms: f64,
    min: usize,
    max: usize,
    frame: PacketDuration,
) -> usize {
    let extra = ((needed_ms - NEEDED_DELAY_TOLERANCE_MS).max(0.0) / frame.ms()).ceil();
    // `extra` is finite and non-negative here; the cast saturates for absurd values.
    (1 + extra as usize).clamp(min, max)
}

/// The target depth in frames: jumps up as soon as the jitter requires it, steps down by one
/// frame only after the requirement stayed lower for `shrink_hold` (and again after each further
/// `shrink_hold`). Invariant: `min <= frames <= max`.
#[derive(Debug, Clone)]
pub(crate) struct DepthTarget {
    frames: usize,
    min: usize,
    max: usize,
    shrink_hold: Duration,
    frame: PacketDuration,
    /// Since when the requirement has been below `frames`.
    below_since: Option<Instant>,
    /// The least the target may be for now (`min`, or more while loss calls for look-ahead).
    floor: usize,
}

impl DepthTarget {
    pub(crate) fn new(
        min: usize,
        max: usize,
        shrink_hold: Duration,
        frame: PacketDuration,
    ) -> Self {
        Self {
            frames: min,
            min,
            max,
            shrink_hold,
            frame,
            below_since: None,
            floor: min,
        }
    }

    /// The least the target may be for now.
    pub(crate) fn floor(&self) -> usize {
        self.floor
    }

    /// The target is at least `floor` (within `min..=max`) from now on: raised at once; when
    /// the floor comes down, the target follows one step per `shrink_hold` as usual.
    pub(crate) fn set_floor(&mut self, floor: usize) {
        self.floor = floor.clamp(self.min, self.max);
        if self.frames < self.floor {
            self.frames = self.floor;
            self.below_since = None;
        }
    }

    /// Current target in frames.
    pub(crate) fn frames(&self) -> usize {
        self.frames
    }

    /// Re-evaluates the target for the delay to absorb (ms) at time `now`.
    pub(crate) fn update(&mut self, needed_ms: f64, now: Instant) {
        let required = required_frames(needed_ms, self.min, self.max, self.frame).max(self.floor);
        if required >= self.frames {
            self.frames = required;
            self.below_since = None;
            return;
        }
        match self.below_since {
            None => self.below_since = Some(now),
            Some(since) if now.saturating_duration_since(since) >= self.shrink_hold => {
                self.frames -= 1; // > required >= min, so stays >= min
                self.below_since = Some(now);
            }
            Some(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::audio::FrameSize;

    const F20: PacketDuration = PacketDuration::of_samples(960).unwrap();

    // Constant transit and the known values of `J` are tested with the RFC 3550 core in
    // `crate::rtp::jitter`; here only what the estimator adds: skipped discontinuities, the peak.

    #[test]
    fn timestamp_wrap_and_discontinuities_do_not_count() {
        let t0 = Instant::now();
        let mut est = JitterEstimator::default();
        est.update(t0, u32::MAX - 100);
        est.update(
            t0 + Duration::from_millis(20),
            (u32::MAX - 100).wrapping_add(960),
        );
        assert!(est.jitter_ms() < 1e-9);
        est.update(t0 + Duration::from_millis(40), 123_456_789); // restart: huge jump
        assert!(est.jitter_ms() < 1e-9);
    }

    #[test]
    fn required_frames_grow_with_the_delay_to_absorb() {
        assert_eq!(required_frames(0.0, 1, 10, F20), 1);
        assert_eq!(required_frames(1.5, 1, 10, F20), 1);
        assert_eq!(required_frames(5.0, 1, 10, F20), 2);
        assert_eq!(required_frames(21.0, 1, 10, F20), 2);
        assert_eq!(required_frames(25.0, 1, 10, F20), 3);
        assert_eq!(required_frames(60.0, 1, 10, F20), 4);
        assert_eq!(required_frames(500.0, 1, 10, F20), 10);
        assert_eq!(required_frames(0.0, 3, 10, F20), 3);
        // 10 ms frames: twice the frames for the same delay.
        let f10 = FrameSize::Ms10.into();
        assert_eq!(required_frames(5.0, 1, 20, f10), 2);
        assert_eq!(required_frames(25.0, 1, 20, f10), 4);
        // 5 ms and 2.5 ms packets: four and eight times the frames of 20 ms.
        assert_eq!(required_frames(25.0, 1, 40, FrameSize::Ms5.into()), 6);
        let f2_5 = PacketDuration::of_samples(120).unwrap();
        assert_eq!(required_frames(25.0, 1, 40, f2_5), 11);
    }

    #[test]
    fn sparse_spikes_are_caught_by_the_peak_and_forgotten_later() {
        let t0 = Instant::now();
        let mut est = JitterEstimator::default();
        for i in 0..200u32 {
            let delay = if i % 10 == 5 { 25 } else { 0 };
            est.update(
                t0 + Duration::from_millis(u64::from(i) * 20 + delay),
                i * 960,
            );
        }
        assert!(
            est.jitter_ms() < 8.0,
            "J alone would say {}",
            est.jitter_ms()
        );
        assert!((est.needed_delay_ms() - 25.0).abs() < 0.01);
        for i in 200..400u32 {
            est.update(t0 + Duration::from_millis(u64::from(i) * 20), i * 960);
        }
        assert!(est.needed_delay_ms() < 0.1, "{}", est.needed_delay_ms());
    }

    #[test]
    fn target_grows_at_once_and_shrinks_one_step_per_hold() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let mut target = DepthTarget::new(1, 10, Duration::from_secs(1), F20);
        target.update(60.0, at(0));
        assert_eq!(target.frames(), 4);
        target.update(0.0, at(100));
        target.update(0.0, at(1000));
        assert_eq!(target.frames(), 4, "held");
        target.update(0.0, at(1100));
        assert_eq!(target.frames(), 3);
        target.update(0.0, at(1500));
        assert_eq!(target.frames(), 3);
        target.update(0.0, at(2100));
        assert_eq!(target.frames(), 2);
        target.update(10.0, at(2200)); // requirement back at 2: the hold restarts
        target.update(0.0, at(3000));
        assert_eq!(target.frames(), 2);
        target.update(0.0, at(4000));
        assert_eq!(target.frames(), 1);
    }
}
