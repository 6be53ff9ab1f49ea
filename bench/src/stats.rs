//! Summaries of measured samples: count, min, percentiles, max. Pure; the benchmarks print
//! these and `BENCHMARKS.md` quotes them.
//! Must never read a clock or print: callers measure and print.

use std::fmt;
use std::time::Duration;

/// A sorted set of samples (milliseconds) with nearest-rank percentiles.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Summary {
    sorted: Vec<f64>,
}

impl Summary {
    /// Summarise samples given in milliseconds. NaNs are dropped.
    pub fn of_ms(mut samples: Vec<f64>) -> Self {
        samples.retain(|v| !v.is_nan());
        samples.sort_by(f64::total_cmp);
        Self { sorted: samples }
    }

    /// Summarise durations.
    pub fn of_durations(samples: &[Duration]) -> Self {
        Self::of_ms(samples.iter().map(|d| d.as_secs_f64() * 1000.0).collect())
    }

    pub fn count(&self) -> usize {
        self.sorted.len()
    }

    /// Nearest-rank percentile (`p` in 0..=100): the smallest sample with at least `p` % of
    /// the samples at or below it. `None` without samples.
    pub fn percentile(&self, p: f64) -> Option<f64> {
        if self.sorted.is_empty() {
            return None;
        }
        let n = self.sorted.len();
        let rank = ((p / 100.0) * n as f64).ceil() as usize;
        Some(self.sorted[rank.clamp(1, n) - 1])
    }

    pub fn min(&self) -> Option<f64> {
        self.sorted.first().copied()
    }

    pub fn max(&self) -> Option<f64> {
        self.sorted.last().copied()
    }

    pub fn mean(&self) -> Option<f64> {
        (!self.sorted.is_empty()).then(|| self.sorted.iter().sum::<f64>() / self.count() as f64)
    }
}

impl fmt::Display for Summary {
    /// `n 200  min 1.2  p50 3.4  p95 5.6  p99 7.8  max 9.0 ms`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (Some(min), Some(max)) = (self.min(), self.max()) else {
            return write!(f, "n 0");
        };
        let p = |q| self.percentile(q).unwrap_or(f64::NAN);
        write!(
            f,
            "n {}  min {min:.2}  p50 {:.2}  p95 {:.2}  p99 {:.2}  max {max:.2} ms",
            self.count(),
            p(50.0),
            p(95.0),
            p(99.0),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let s = Summary::of_ms((1..=100).map(f64::from).collect());
        assert_eq!(s.percentile(50.0), Some(50.0));
        assert_eq!(s.percentile(99.0), Some(99.0));
        assert_eq!(s.percentile(100.0), Some(100.0));
        assert_eq!(s.percentile(0.0), Some(1.0));
        assert_eq!(s.mean(), Some(50.5));
    }

    #[test]
    fn small_and_empty_sets() {
        let s = Summary::of_ms(vec![3.0, 1.0, f64::NAN, 2.0]);
        assert_eq!(s.count(), 3);
        assert_eq!(s.percentile(50.0), Some(2.0));
        assert_eq!(s.percentile(99.0), Some(3.0));
        assert_eq!(Summary::default().percentile(50.0), None);
        assert_eq!(Summary::default().to_string(), "n 0");
    }
}
