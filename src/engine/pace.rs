//! When the media pipeline runs: how many frames to capture and how many to play at an
//! instant. Pure: time comes in as an argument.
//!
//! A sound device has a clock of its own and says how many frames it holds (microphone) or
//! what it has queued (speaker); it wakes the engine when it has work (a frame captured, the
//! speaker about to run dry), and the engine also wakes for each packet for a device speaker,
//! so a captured frame leaves as soon as it is complete and a decoded frame is written as
//! soon as it is here (`crate::audio::device::SpeakerQueue`). The engine still polls once a
//! frame ([`poll_interval`]): for silence, and in case a wake is missed. That is most of the
//! device path's latency: an engine on its own 20 ms clock made both ends keep 1.5 frames of
//! slack, and on a quarter-frame poll alone every frame waited up to a poll at each end.
//!
//! Ends without a clock (tones, WAV files, bots, recordings) follow a [`FrameClock`] instead:
//! one frame per frame duration of wall-clock time, as before.
//!
//! Must never read a clock or touch a device: the engine passes in `now` and the device's count.

use std::time::{Duration, Instant};

use crate::audio::FrameSize;

/// A clock that has fallen further behind than this (the process was stopped, the machine
/// stalled) drops the missed frames instead of producing them all at once.
pub const MAX_CATCH_UP: u64 = 10;

/// The engine's poll interval: one frame. It is the clock of ends without one; devices wake
/// the engine themselves, and for them the poll only keeps silence queued for the speaker
/// (`crate::audio::SpeakerQueue::idle_wanted`) and catches a wake that was missed. (It was a
/// quarter of a frame when the poll was all a device had: a complete frame waited half that
/// on average at each end, and the poll was 200 wake-ups a second at 20 ms frames, 800 at
/// 5 ms.)
pub fn poll_interval(frame: FrameSize) -> Duration {
    frame.duration()
}

/// One frame per frame length since `start`: frame `k` is due at `start + k·frame`.
#[derive(Debug, Clone)]
pub struct FrameClock {
    start: Instant,
    frame: Duration,
    /// Frames handed out (or skipped) so far.
    done: u64,
}

impl FrameClock {
    pub fn new(start: Instant, frame: FrameSize) -> Self {
        Self {
            start,
            frame: frame.duration(),
            done: 0,
        }
    }

    /// Frames due at `now` that were not handed out yet (counted as handed out by this call).
    /// After a stall longer than [`MAX_CATCH_UP`] frames only that many are due; the rest are
    /// skipped.
    pub fn due(&mut self, now: Instant) -> usize {
        let elapsed = now.saturating_duration_since(self.start);
        let total = (elapsed.as_nanos() / self.frame.as_nanos()) as u64 + 1;
        let due = total.saturating_sub(self.done);
        if due > MAX_CATCH_UP {
            self.done = total;
            return MAX_CATCH_UP as usize;
        }
        self.done = total;
        due as usize
    }
}

/// How many frames to run at `now` for one end: what its device says, or its clock.
pub fn frames_now(device: Option<usize>, clock: &mut FrameClock, now: Instant) -> usize {
    match device {
        Some(n) => n.min(MAX_CATCH_UP as usize),
        None => clock.due(now),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const F: Duration = Duration::from_millis(20);
    /// An engine woken more often than its frames (a device's wakes, packets).
    const WAKE: Duration = Duration::from_millis(5);

    fn clock(start: Instant) -> FrameClock {
        FrameClock::new(start, FrameSize::Ms20)
    }

    #[test]
    fn one_frame_at_the_start_then_one_per_frame_duration() {
        let t0 = Instant::now();
        let mut c = clock(t0);
        assert_eq!(c.due(t0), 1, "the first frame is due at once");
        assert_eq!(c.due(t0), 0, "and only once");
        assert_eq!(c.due(t0 + F / 2), 0);
        assert_eq!(c.due(t0 + F), 1);
        assert_eq!(c.due(t0 + F + WAKE), 0);
        // Polled late: the frames in between are all due, in one go.
        assert_eq!(c.due(t0 + 4 * F + F / 4), 3);
        assert_eq!(c.due(t0 + 5 * F), 1);
    }

    #[test]
    fn polling_faster_than_frames_keeps_the_rate() {
        let t0 = Instant::now();
        let mut c = clock(t0);
        let frames: usize = (0..400).map(|i| c.due(t0 + WAKE * i)).sum();
        // 400 polls of 5 ms = 2 s = 100 frames (frame 0 at t0 up to frame 99 at 1.98 s).
        assert_eq!(frames, 100);
    }

    #[test]
    fn ten_ms_frames_come_twice_as_often_and_are_polled_twice_as_often() {
        let t0 = Instant::now();
        let mut c = FrameClock::new(t0, FrameSize::Ms10);
        let wake = Duration::from_micros(2500);
        let frames: usize = (0..800).map(|i| c.due(t0 + wake * i)).sum();
        assert_eq!(frames, 200, "2 s of 10 ms frames");
        assert_eq!(poll_interval(FrameSize::Ms10), Duration::from_millis(10));
        assert_eq!(poll_interval(FrameSize::Ms5), Duration::from_millis(5));
    }

    #[test]
    fn a_long_stall_is_not_replayed_in_full() {
        let t0 = Instant::now();
        let mut c = clock(t0);
        c.due(t0);
        assert_eq!(c.due(t0 + Duration::from_secs(5)), MAX_CATCH_UP as usize);
        // Back on the rate from there.
        assert_eq!(c.due(t0 + Duration::from_secs(5) + F), 1);
    }

    #[test]
    fn a_device_end_is_taken_at_its_word_within_the_catch_up_bound() {
        let t0 = Instant::now();
        let mut c = clock(t0);
        assert_eq!(frames_now(Some(2), &mut c, t0), 2);
        assert_eq!(frames_now(Some(0), &mut c, t0 + 10 * F), 0);
        assert_eq!(frames_now(Some(1000), &mut c, t0), MAX_CATCH_UP as usize);
        assert_eq!(
            frames_now(None, &mut c, t0),
            1,
            "the clock, untouched above"
        );
    }
}
