//! How often a hook may run: at most `per_minute` starts of each kind in any 60 s window.
//! Events over the limit are dropped and counted; the next start says how many. Pure, in the
//! caller's time.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use super::HookKind;

const WINDOW: Duration = Duration::from_secs(60);

#[derive(Debug)]
pub struct Limiter {
    per_minute: u32,
    kinds: BTreeMap<HookKind, Window>,
}

#[derive(Debug, Default)]
struct Window {
    starts: VecDeque<Instant>,
    dropped: u32,
}

impl Limiter {
    pub fn new(per_minute: u32) -> Self {
        Self {
            per_minute,
            kinds: BTreeMap::new(),
        }
    }

    /// Whether a `kind` hook may start `now`: `Some(dropped since the last start)` if so.
    pub fn admit(&mut self, kind: HookKind, now: Instant) -> Option<u32> {
        let window = self.kinds.entry(kind).or_default();
        while window
            .starts
            .front()
            .is_some_and(|&t| now.saturating_duration_since(t) >= WINDOW)
        {
            window.starts.pop_front();
        }
        if window.starts.len() >= self.per_minute as usize {
            window.dropped = window.dropped.saturating_add(1);
            return None;
        }
        window.starts.push_back(now);
        Some(std::mem::take(&mut window.dropped))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_most_per_minute_in_any_window_and_the_dropped_are_counted() {
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let mut l = Limiter::new(3);
        assert_eq!(l.admit(HookKind::Joined, at(0)), Some(0));
        assert_eq!(l.admit(HookKind::Joined, at(1)), Some(0));
        assert_eq!(l.admit(HookKind::Joined, at(2)), Some(0));
        assert_eq!(l.admit(HookKind::Joined, at(3)), None);
        assert_eq!(l.admit(HookKind::Joined, at(59)), None);
        // Other kinds have their own budget.
        assert_eq!(l.admit(HookKind::Left, at(59)), Some(0));
        // The first start leaves the window at 60 s: one more, and it says two were dropped.
        assert_eq!(l.admit(HookKind::Joined, at(60)), Some(2));
        assert_eq!(l.admit(HookKind::Joined, at(60)), None);
        assert_eq!(l.admit(HookKind::Joined, at(62)), Some(1));
    }

    #[test]
    fn zero_per_minute_runs_nothing() {
        let mut l = Limiter::new(0);
        assert_eq!(l.admit(HookKind::Mentioned, Instant::now()), None);
    }
}
