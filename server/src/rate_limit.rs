//! A per-connection token bucket (pure: time is an argument). Floods are dropped message by
//! message with a `rate_limited` error, so one noisy client cannot starve the others.
//! Must never read a clock.

use std::time::Instant;

#[derive(Debug, Clone)]
pub struct TokenBucket {
    rate_per_sec: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket of `burst` tokens, refilled at `rate_per_sec`.
    pub fn new(rate_per_sec: u32, burst: u32, now: Instant) -> Self {
        Self {
            rate_per_sec: f64::from(rate_per_sec),
            burst: f64::from(burst),
            tokens: f64::from(burst),
            last: now,
        }
    }

    /// Take one token; false when the bucket is empty (the message must be dropped).
    pub fn allow(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate_per_sec).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn burst_then_refill_at_rate() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(10, 5, t0);
        assert_eq!((0..8).filter(|_| b.allow(t0)).count(), 5);
        assert!(!b.allow(t0 + Duration::from_millis(50)));
        assert!(b.allow(t0 + Duration::from_millis(160)));
        // A long pause refills only up to the burst.
        let later = t0 + Duration::from_secs(60);
        assert_eq!((0..20).filter(|_| b.allow(later)).count(), 5);
    }
}
