//! Reconnect delays: exponential from 250 ms to a 5 s cap, with ±20 % jitter so a server
//! restart is not met by every client at the same instant. Pure: the jitter source is passed in.
//! Must never draw its own randomness or sleep: the caller passes the jitter in and waits.

use std::time::Duration;

const FIRST: Duration = Duration::from_millis(250);
const CAP: Duration = Duration::from_secs(5);

#[derive(Debug, Default, Clone)]
pub struct Backoff {
    attempt: u32,
}

impl Backoff {
    /// The delay before the next attempt; `jitter` in [0, 1).
    pub fn next_delay(&mut self, jitter: f64) -> Duration {
        let base = FIRST.saturating_mul(1 << self.attempt.min(8)).min(CAP);
        self.attempt = self.attempt.saturating_add(1);
        base.mul_f64(0.8 + 0.4 * jitter.clamp(0.0, 1.0))
    }

    /// A connection succeeded: start again from the shortest delay.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_to_the_cap_and_resets() {
        let mut b = Backoff::default();
        let delays: Vec<_> = (0..8).map(|_| b.next_delay(0.5)).collect();
        assert_eq!(delays[0], Duration::from_millis(250));
        assert_eq!(delays[1], Duration::from_millis(500));
        assert_eq!(delays[7], CAP);
        assert!(delays.windows(2).all(|w| w[0] <= w[1]));
        b.reset();
        assert_eq!(b.next_delay(0.5), FIRST);
    }

    #[test]
    fn jitter_stays_within_twenty_percent() {
        let mut b = Backoff::default();
        assert_eq!(b.next_delay(0.0), Duration::from_millis(200));
        let mut b = Backoff::default();
        assert!(b.next_delay(0.999) < Duration::from_millis(301));
    }
}
