//! How the receiver adapts during a session, pure: its jitter buffer's target depth sampled
//! over time, and the mouth-to-ear delay of each session's first clicks against its last.
//! Must never read a clock: every time comes in with the samples.

use std::time::Duration;

use super::analysis::Event;

/// The receiver's jitter buffer at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DepthSample {
    /// Since the call connected.
    pub at: Duration,
    /// Target depth, frames.
    pub target: usize,
    /// Frames buffered (cursor to newest packet).
    pub depth: usize,
}

/// Target depth over the sessions' time lines: for each `bucket` of time since connecting, the
/// mean and the largest target of the samples that fell in it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TargetRow {
    pub from: Duration,
    pub mean: f64,
    pub max: usize,
    pub samples: usize,
}

pub fn target_over_time<'a>(
    sessions: impl IntoIterator<Item = &'a [DepthSample]>,
    bucket: Duration,
) -> Vec<TargetRow> {
    let mut sums: Vec<(usize, usize, usize)> = Vec::new(); // (sum, max, count)
    let width = bucket.as_secs_f64().max(1e-3);
    for samples in sessions {
        for s in samples {
            let i = (s.at.as_secs_f64() / width) as usize;
            if sums.len() <= i {
                sums.resize(i + 1, (0, 0, 0));
            }
            let row = &mut sums[i];
            row.0 += s.target;
            row.1 = row.1.max(s.target);
            row.2 += 1;
        }
    }
    sums.iter()
        .enumerate()
        .filter(|(_, r)| r.2 > 0)
        .map(|(i, &(sum, max, count))| TargetRow {
            from: bucket * i as u32,
            mean: sum as f64 / count as f64,
            max,
            samples: count,
        })
        .collect()
}

/// The delays of the first and of the last third of each session's clicks, pooled over
/// sessions: does latency grow (the buffer deepening) or shrink (trimming) as a call goes on?
pub fn early_and_late<'a>(sessions: impl IntoIterator<Item = &'a [Event]>) -> (Vec<f64>, Vec<f64>) {
    let (mut early, mut late) = (Vec::new(), Vec::new());
    for events in sessions {
        let third = events.len() / 3;
        early.extend(events[..third].iter().map(|e| e.delay_ms));
        late.extend(events[events.len() - third..].iter().map(|e| e.delay_ms));
    }
    (early, late)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: u64, target: usize) -> DepthSample {
        DepthSample {
            at: Duration::from_millis(ms),
            target,
            depth: target,
        }
    }

    fn event(delay_ms: f64) -> Event {
        Event {
            delay_ms,
            codec_ms: 6.5,
            transport_ms: delay_ms - 26.5,
        }
    }

    #[test]
    fn targets_are_averaged_per_bucket_across_sessions() {
        let a = [at(100, 1), at(600, 2), at(1200, 3)];
        let b = [at(300, 3), at(2500, 2)];
        let rows = target_over_time([&a[..], &b[..]], Duration::from_secs(1));
        assert_eq!(rows.len(), 3, "the empty buckets are left out: {rows:?}");
        assert_eq!((rows[0].mean, rows[0].max, rows[0].samples), (2.0, 3, 3));
        assert_eq!(rows[1].from, Duration::from_secs(1));
        assert_eq!((rows[1].mean, rows[2].mean), (3.0, 2.0));
    }

    #[test]
    fn first_and_last_thirds_of_each_session() {
        let a: Vec<Event> = [40.0, 41.0, 50.0, 50.0, 60.0, 61.0].map(event).to_vec();
        let b: Vec<Event> = [30.0, 31.0, 32.0].map(event).to_vec();
        let (early, late) = early_and_late([&a[..], &b[..]]);
        assert_eq!(early, vec![40.0, 41.0, 30.0]);
        assert_eq!(late, vec![60.0, 61.0, 32.0]);
        let (early, late) = early_and_late([&a[..1]]);
        assert!(early.is_empty() && late.is_empty());
    }
}
