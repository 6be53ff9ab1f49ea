//! What the capture processing costs in the call: the CPU time the engine's thread spends in
//! it, per second of microphone audio it processes.
//!
//! CPU time, not wall time: the thread is now and then descheduled in the middle of a call
//! into the chain, and a wall clock counts the time it waited as the chain's (on the device
//! path, 4.10 and 4.25 % of a core by a wall clock against 3.54 and 3.67 % by this one in the
//! same two calls, before the chain's floor noise; BENCHMARKS.md, issue 19).

use std::time::Duration;

use crate::audio::SAMPLE_RATE;

/// The chain's CPU time so far, and the microphone audio it processed in it.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ChainCost {
    cpu: Duration,
    samples: u64,
}

impl ChainCost {
    /// `cpu` spent in the chain, on `samples` of microphone audio (0 for the speaker's
    /// reference: its cost counts, its audio is the same seconds again).
    pub fn add(&mut self, cpu: Duration, samples: usize) {
        self.cpu += cpu;
        self.samples += samples as u64;
    }

    /// The share of one core the chain takes, in percent: CPU seconds per second of audio.
    /// None before any microphone audio.
    pub fn percent_of_a_core(&self) -> Option<f64> {
        (self.samples > 0).then(|| {
            let audio_s = self.samples as f64 / f64::from(SAMPLE_RATE);
            100.0 * self.cpu.as_secs_f64() / audio_s
        })
    }
}

/// Runs `f`, adding the CPU time this thread spends in it to `cost`, with `samples` of
/// microphone audio.
pub fn timed<T>(cost: &mut ChainCost, samples: usize, f: impl FnOnce() -> T) -> T {
    let start = thread_cpu();
    let out = f();
    cost.add(thread_cpu().saturating_sub(start), samples);
    out
}

/// The calling thread's CPU time since it started.
fn thread_cpu() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    Duration::new(
        u64::try_from(t.tv_sec).unwrap_or(0),
        u32::try_from(t.tv_nsec).unwrap_or(0),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_share_of_a_core_is_cpu_time_per_second_of_audio() {
        let mut cost = ChainCost::default();
        assert_eq!(cost.percent_of_a_core(), None, "no audio yet");
        // 3 ms of CPU on 100 ms of audio, then 1 ms on the reference alone.
        cost.add(Duration::from_millis(3), SAMPLE_RATE as usize / 10);
        cost.add(Duration::from_millis(1), 0);
        let percent = cost.percent_of_a_core().unwrap();
        assert!((percent - 4.0).abs() < 1e-9, "{percent}");
    }

    #[test]
    fn work_is_counted_and_waiting_is_not() {
        let mut busy = ChainCost::default();
        let sum = timed(&mut busy, 480, || {
            (0..2_000_000u64).fold(0u64, |a, x| a.wrapping_add(std::hint::black_box(x)))
        });
        assert!(sum > 0);
        let mut waiting = ChainCost::default();
        timed(&mut waiting, 480, || {
            std::thread::sleep(Duration::from_millis(200))
        });
        assert!(busy.cpu > Duration::ZERO, "the loop took CPU time");
        // Asleep for 200 ms: a wall clock would say 200 ms; this thread used next to nothing.
        assert!(waiting.cpu < Duration::from_millis(50), "{:?}", waiting.cpu);
    }
}
