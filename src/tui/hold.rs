//! Hold-to-talk in terminals that report no key release (tmux, SSH, most terminals): a held
//! key is seen by its auto-repeat. A press starts talking; repeats arriving at the keyboard's
//! repeat rate mean the key is held; when they stop for longer than the learned interval plus
//! a margin, the key was let go and talking stops. A press with no repeat after it (a tap)
//! toggles instead: talking goes on until the next tap. The repeat delay and interval are
//! learned from the repeats as they arrive.
//!
//! Pure: every input carries its time, [`RepeatHold::deadline`] says when to look again. Must
//! never read a clock.

use std::time::{Duration, Instant};

/// Before any repeat was seen: how long to wait for the first one (keyboards start repeating
/// after 250–660 ms). Waiting long costs nothing: until it is decided, a press talks either way.
const FIRST_REPEAT_WAIT: Duration = Duration::from_millis(1000);
/// Before the interval is learned, the gap after which repeats count as stopped.
const REPEAT_WAIT: Duration = Duration::from_millis(200);
/// Added to the learned interval (twice) before a gap means release: tmux and SSH deliver
/// repeats with jitter. Talking therefore ends ~2 intervals + 100 ms after the key is let go.
const MARGIN: Duration = Duration::from_millis(100);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Idle,
    /// Pressed, no repeat yet: a tap or the start of a hold.
    Pressed {
        at: Instant,
    },
    /// Repeats are arriving: held.
    Holding {
        last: Instant,
    },
    /// Tapped: talking until the next tap.
    Latched,
    /// The tap that ends a latch, maybe held: its repeats are ignored until they stop.
    Unlatching {
        last: Instant,
        repeated: bool,
    },
}

/// See the module docs.
#[derive(Debug, Clone)]
pub struct RepeatHold {
    state: State,
    /// The keyboard's initial repeat delay and repeat interval, once seen.
    delay: Option<Duration>,
    interval: Option<Duration>,
}

impl Default for RepeatHold {
    fn default() -> Self {
        Self::new()
    }
}

impl RepeatHold {
    pub fn new() -> Self {
        Self {
            state: State::Idle,
            delay: None,
            interval: None,
        }
    }

    /// The keyboard's repeat delay and interval as learned so far (for the help screen).
    pub fn learned(&self) -> (Option<Duration>, Option<Duration>) {
        (self.delay, self.interval)
    }

    /// The talk key arrived (a press or an auto-repeat: the terminal cannot tell them apart).
    /// Returns whether to start (`true`) or stop (`false`) talking, if that changes.
    pub fn press(&mut self, now: Instant) -> Option<bool> {
        match self.state {
            State::Idle => {
                self.state = State::Pressed { at: now };
                Some(true)
            }
            State::Pressed { at } => {
                self.delay = Some(learn(self.delay, now - at));
                self.state = State::Holding { last: now };
                None
            }
            State::Holding { last } => {
                self.interval = Some(learn(self.interval, now - last));
                self.state = State::Holding { last: now };
                None
            }
            State::Latched => {
                self.state = State::Unlatching {
                    last: now,
                    repeated: false,
                };
                Some(false)
            }
            State::Unlatching { .. } => {
                self.state = State::Unlatching {
                    last: now,
                    repeated: true,
                };
                None
            }
        }
    }

    /// Time passed: a tap is decided, or a hold ends. Returns `Some(false)` when talking stops.
    pub fn tick(&mut self, now: Instant) -> Option<bool> {
        if self.deadline().is_none_or(|d| now < d) {
            return None;
        }
        match self.state {
            State::Pressed { .. } => {
                self.state = State::Latched;
                None
            }
            State::Holding { .. } => {
                self.state = State::Idle;
                Some(false)
            }
            State::Unlatching { .. } => {
                self.state = State::Idle;
                None
            }
            State::Idle | State::Latched => None,
        }
    }

    /// When [`RepeatHold::tick`] may next decide something.
    pub fn deadline(&self) -> Option<Instant> {
        match self.state {
            State::Pressed { at } => Some(at + self.first_repeat_wait()),
            State::Holding { last } => Some(last + self.repeat_wait()),
            State::Unlatching { last, repeated } => Some(
                last + if repeated {
                    self.repeat_wait()
                } else {
                    self.first_repeat_wait()
                },
            ),
            State::Idle | State::Latched => None,
        }
    }

    /// The terminal lost focus (its key-up will never come): stop talking.
    pub fn focus_lost(&mut self) -> Option<bool> {
        let talking = self.talking();
        self.state = State::Idle;
        talking.then_some(false)
    }

    /// Whether this makes us talk now.
    pub fn talking(&self) -> bool {
        matches!(
            self.state,
            State::Pressed { .. } | State::Holding { .. } | State::Latched
        )
    }

    /// Whether talking now is a tap's latch (for the screen: "tap again to stop").
    pub fn latched(&self) -> bool {
        self.state == State::Latched
    }

    fn first_repeat_wait(&self) -> Duration {
        self.delay.map_or(FIRST_REPEAT_WAIT, |d| {
            (d + d / 2 + MARGIN).min(FIRST_REPEAT_WAIT)
        })
    }

    fn repeat_wait(&self) -> Duration {
        self.interval.map_or(REPEAT_WAIT, |i| i * 2 + MARGIN)
    }
}

/// A smoothed estimate of a keyboard timing: the first sample as it is, then 3/4 old, 1/4 new.
/// Samples beyond a second are a pause, not a repeat, and are ignored.
fn learn(old: Option<Duration>, sample: Duration) -> Duration {
    let sample = sample.min(FIRST_REPEAT_WAIT);
    match old {
        None => sample,
        Some(old) => (old * 3 + sample) / 4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    /// Presses at these offsets (ms) from `t0`, returning what each said.
    fn presses(h: &mut RepeatHold, t0: Instant, at: &[u64]) -> Vec<Option<bool>> {
        at.iter().map(|&ms| h.press(t0 + MS * ms as u32)).collect()
    }

    /// Repeats every `every` ms from `from` to `to` (ms), the first at `from`.
    fn repeats(from: u64, to: u64, every: u64) -> Vec<u64> {
        (from..=to).step_by(every as usize).collect()
    }

    #[test]
    fn a_tap_toggles_talking_on_and_the_next_tap_off() {
        let t0 = Instant::now();
        let mut h = RepeatHold::new();
        assert_eq!(h.press(t0), Some(true));
        assert_eq!(h.tick(t0 + MS * 999), None, "still deciding, talking");
        assert!(h.talking());
        assert_eq!(h.tick(t0 + MS * 1000), None, "a tap: stays on");
        assert!(h.latched() && h.talking());
        assert_eq!(h.deadline(), None);
        assert_eq!(h.press(t0 + MS * 3000), Some(false), "the next tap stops");
        assert_eq!(h.tick(t0 + MS * 4000), None);
        assert!(!h.talking());
        assert_eq!(
            h.press(t0 + MS * 5000),
            Some(true),
            "and a third starts again"
        );
    }

    #[test]
    fn a_held_key_talks_while_its_repeats_arrive_and_stops_when_they_do() {
        let t0 = Instant::now();
        let mut h = RepeatHold::new();
        // 500 ms initial delay, then every 33 ms until 2000 ms.
        let mut at = vec![0];
        at.extend(repeats(500, 2000, 33));
        let said = presses(&mut h, t0, &at);
        assert_eq!(said[0], Some(true));
        assert!(said[1..].iter().all(Option::is_none));
        let last = *at.last().unwrap();
        // Across the whole hold it talked; ticks in between change nothing.
        assert!(h.talking());
        assert_eq!(
            h.tick(t0 + MS * (last as u32 + 60)),
            None,
            "a late repeat is no release"
        );
        // Released: once the learned interval (33 ms) twice plus the margin passes.
        let wake = h.deadline().unwrap();
        assert!(
            wake <= t0 + MS * (last as u32 + 33 * 2 + 1) + MARGIN,
            "{wake:?}"
        );
        assert_eq!(h.tick(wake), Some(false));
        assert!(!h.talking());
    }

    #[test]
    fn a_hold_across_the_initial_delay_is_not_taken_for_a_tap() {
        // A slow keyboard: 900 ms before the first repeat, within the first wait.
        let t0 = Instant::now();
        let mut h = RepeatHold::new();
        assert_eq!(h.press(t0), Some(true));
        assert_eq!(h.tick(t0 + MS * 899), None);
        assert_eq!(h.press(t0 + MS * 900), None);
        assert!(h.talking() && !h.latched());
        assert_eq!(h.press(t0 + MS * 940), None);
        assert_eq!(h.tick(t0 + MS * 2000), Some(false));
        // Learned: the next tap is decided sooner (1.5 × 900 + margin, capped at 1 s).
        h.press(t0 + MS * 3000);
        assert_eq!(h.deadline(), Some(t0 + MS * 4000));
    }

    #[test]
    fn jittery_repeats_are_still_one_hold() {
        let t0 = Instant::now();
        let mut h = RepeatHold::new();
        h.press(t0);
        // Repeats every 30 ms give or take 20 (tmux over a slow link).
        let mut t = 400u64;
        for i in 0..40u64 {
            t += 30 + [0, 20, 5, 15][(i % 4) as usize] - 10;
            assert_eq!(h.tick(t0 + MS * (t as u32 - 1)), None, "at {t}");
            assert_eq!(h.press(t0 + MS * t as u32), None);
        }
        assert!(h.talking());
    }

    #[test]
    fn the_tap_that_ends_a_latch_may_be_held_without_starting_again() {
        let t0 = Instant::now();
        let mut h = RepeatHold::new();
        h.press(t0);
        h.tick(t0 + MS * 1000);
        assert!(h.latched());
        assert_eq!(h.press(t0 + MS * 2000), Some(false));
        // Held: its repeats do not turn talking back on.
        for ms in repeats(2500, 3000, 30) {
            assert_eq!(h.press(t0 + MS * ms as u32), None);
            assert!(!h.talking());
        }
        assert_eq!(h.tick(t0 + MS * 4000), None);
        assert_eq!(
            h.press(t0 + MS * 5000),
            Some(true),
            "a new press starts again"
        );
    }

    #[test]
    fn losing_focus_stops_a_hold_or_a_latch() {
        let t0 = Instant::now();
        let mut h = RepeatHold::new();
        h.press(t0);
        assert_eq!(h.focus_lost(), Some(false));
        assert!(!h.talking());
        assert_eq!(h.focus_lost(), None, "nothing to stop");
        h.press(t0 + MS * 100);
        h.tick(t0 + MS * 1100);
        assert_eq!(h.focus_lost(), Some(false), "a latch too");
    }
}
