//! Stops cpal's capture thread from spinning on a microphone that delivers nothing.
//!
//! Through ALSA's PulseAudio plugin (the `default` device on a desktop), a source that
//! produces no audio (a pipe source nobody writes to, a suspended or stalled source) leaves
//! the plugin's poll descriptor readable while nothing can be read, and cpal 0.18's ALSA
//! worker polls it again at once: one core at 100 % for as long as the stream is open
//! (measured in `BENCHMARKS.md`, "Capture-thread spin"). Neither end can be fixed here, so
//! the microphone watches its own capture thread: when a window passes in which the device
//! delivered nothing while that thread kept a core busy, the stream is closed and opened
//! again later, with a growing pause, until a stream delivers. A device that is merely slow
//! to start waits in `poll` and costs nothing, so it is left alone.
//!
//! [`SpinGuard`] is the decision, pure: time, the callback count and the thread's CPU time
//! come in as arguments. [`thread_cpu`] and [`capture_threads`] read them on Linux.

use std::time::{Duration, Instant};

/// How long the guard looks at a stream before it judges it.
pub const WINDOW: Duration = Duration::from_millis(200);
/// The share of a core the capture thread may burn in a window without delivering. A thread
/// that waits properly uses none; one that spins takes a whole core (or what the scheduler
/// leaves it on a busy machine).
pub const SPINNING: f64 = 0.2;
/// The first pause before a closed stream is opened again; it doubles per failed attempt.
pub const FIRST_RETRY: Duration = Duration::from_secs(1);
/// The longest pause: a microphone that comes back is heard within this long, and a source
/// that never does costs about one window of spinning per pause (2 % of a core).
pub const MAX_RETRY: Duration = Duration::from_secs(10);

/// What to do with the stream after a look at it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// It delivers, or it waits without burning a core, or the window is not over.
    Keep,
    /// It spins without delivering: close it and open it again after this long.
    Close { retry_in: Duration },
}

/// One window of observation.
#[derive(Debug, Clone, Copy)]
struct Window {
    start: Instant,
    callbacks: u64,
    cpu: Duration,
}

/// Judges one capture stream after another (see the module docs).
#[derive(Debug, Clone)]
pub struct SpinGuard {
    window: Option<Window>,
    retry: Duration,
}

impl Default for SpinGuard {
    fn default() -> Self {
        Self::new()
    }
}

impl SpinGuard {
    pub fn new() -> Self {
        Self {
            window: None,
            retry: FIRST_RETRY,
        }
    }

    /// Whether a look at `now` would judge a window (so the caller reads the thread's CPU
    /// time only then, a few times a second).
    pub fn due(&self, now: Instant) -> bool {
        self.window
            .is_none_or(|w| now.saturating_duration_since(w.start) >= WINDOW)
    }

    /// A look at the stream at `now`: its callbacks so far and its capture thread's CPU time
    /// so far (both only ever grow while the stream lives).
    pub fn check(&mut self, now: Instant, callbacks: u64, cpu: Duration) -> Verdict {
        let Some(w) = self.window else {
            self.window = Some(Window {
                start: now,
                callbacks,
                cpu,
            });
            return Verdict::Keep;
        };
        let span = now.saturating_duration_since(w.start);
        if span < WINDOW {
            return Verdict::Keep;
        }
        self.window = Some(Window {
            start: now,
            callbacks,
            cpu,
        });
        if callbacks != w.callbacks {
            // It delivers: whatever went before, the next failure starts the pauses over.
            self.retry = FIRST_RETRY;
            return Verdict::Keep;
        }
        let busy = cpu.saturating_sub(w.cpu).as_secs_f64() / span.as_secs_f64();
        if busy < SPINNING {
            return Verdict::Keep;
        }
        let retry_in = self.retry;
        self.retry = (self.retry * 2).min(MAX_RETRY);
        // The next stream gets a fresh first window.
        self.window = None;
        Verdict::Close { retry_in }
    }

    /// A new stream replaces the closed one: judge it from scratch (the pause keeps growing
    /// until a stream delivers).
    pub fn reopened(&mut self) {
        self.window = None;
    }
}

/// Ids of this process's threads named `name` (cpal names its capture thread
/// `cpal_alsa_in`). Empty where `/proc` is not there.
pub fn capture_threads(name: &str) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|tid| {
            std::fs::read_to_string(format!("/proc/self/task/{tid}/comm"))
                .is_ok_and(|c| c.trim_end() == name)
        })
        .collect()
}

/// CPU time (user + system) a thread of this process has used, from
/// `/proc/self/task/TID/stat`; `None` once the thread is gone or where `/proc` is not there.
pub fn thread_cpu(tid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")).ok()?;
    cpu_from_stat(&stat)
}

/// utime + stime from a `/proc/…/stat` line. Linux reports them in USER_HZ ticks, which is
/// 100 per second on every architecture's user ABI.
fn cpu_from_stat(stat: &str) -> Option<Duration> {
    // The command name (field 2) is in parentheses and may hold spaces: count from after it.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    // After the name: state is field 3, utime field 14, stime field 15.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(Duration::from_millis((utime + stime) * 10))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    /// Looks every 5 ms (as the engine polls a 20 ms-frame microphone) for `span`, with the
    /// thread using `share` of a core and the device calling back every `period` (never
    /// when `None`). Returns the first verdict that is not Keep and when it came.
    fn watch(
        guard: &mut SpinGuard,
        t0: Instant,
        span: Duration,
        share: f64,
        period: Option<Duration>,
    ) -> Option<(Duration, Verdict)> {
        let mut t = Duration::ZERO;
        while t <= span {
            let callbacks = period.map_or(0, |p| (t.as_nanos() / p.as_nanos()) as u64);
            let cpu = t.mul_f64(share);
            let v = guard.check(t0 + t, callbacks, cpu);
            if v != Verdict::Keep {
                return Some((t, v));
            }
            t += 5 * MS;
        }
        None
    }

    #[test]
    fn a_thread_that_spins_without_delivering_is_closed_after_one_window() {
        let mut g = SpinGuard::new();
        let (at, v) = watch(&mut g, Instant::now(), 2 * WINDOW, 1.0, None).expect("closed");
        assert_eq!(at, WINDOW);
        assert_eq!(
            v,
            Verdict::Close {
                retry_in: FIRST_RETRY
            }
        );
    }

    #[test]
    fn a_device_that_delivers_is_kept_however_busy_its_thread() {
        let mut g = SpinGuard::new();
        let v = watch(&mut g, Instant::now(), 10 * WINDOW, 1.0, Some(10 * MS));
        assert_eq!(v, None);
    }

    #[test]
    fn a_device_slow_to_start_that_waits_quietly_is_left_alone() {
        let mut g = SpinGuard::new();
        // Nothing delivered for 2 s, but the thread sleeps in poll.
        assert_eq!(watch(&mut g, Instant::now(), 10 * WINDOW, 0.0, None), None);
        // A thread that wakes now and then (a tenth of a core) is not spinning either.
        assert_eq!(watch(&mut g, Instant::now(), 10 * WINDOW, 0.1, None), None);
    }

    #[test]
    fn a_spinning_thread_on_a_busy_machine_still_counts() {
        // The scheduler gives it a third of a core: still far above a waiting thread.
        let mut g = SpinGuard::new();
        assert!(watch(&mut g, Instant::now(), 2 * WINDOW, 0.33, None).is_some());
    }

    #[test]
    fn the_pause_doubles_per_spinning_stream_up_to_the_limit_and_resets_on_delivery() {
        let mut g = SpinGuard::new();
        let mut pauses = Vec::new();
        for _ in 0..6 {
            g.reopened();
            let (_, v) = watch(&mut g, Instant::now(), 2 * WINDOW, 1.0, None).unwrap();
            let Verdict::Close { retry_in } = v else {
                unreachable!()
            };
            pauses.push(retry_in.as_secs());
        }
        assert_eq!(pauses, [1, 2, 4, 8, 10, 10]);
        // A stream that delivers for a window wins back the short pause.
        g.reopened();
        let t0 = Instant::now();
        assert_eq!(watch(&mut g, t0, 2 * WINDOW, 1.0, Some(10 * MS)), None);
        // The same stream stops delivering later and spins.
        let (_, v) = watch(&mut g, t0 + 3 * WINDOW, 2 * WINDOW, 1.0, None).unwrap();
        assert_eq!(
            v,
            Verdict::Close {
                retry_in: FIRST_RETRY
            }
        );
    }

    #[test]
    fn a_device_that_stops_delivering_and_spins_is_closed() {
        let mut g = SpinGuard::new();
        let t0 = Instant::now();
        assert_eq!(watch(&mut g, t0, 5 * WINDOW, 0.05, Some(10 * MS)), None);
        // Same stream, later: the callbacks stop at 50, the thread starts burning.
        let later = t0 + 5 * WINDOW + 5 * MS;
        let mut verdict = Verdict::Keep;
        for i in 0..100u32 {
            verdict = g.check(
                later + i * 5 * MS,
                50,
                Duration::from_millis(50) + i * 5 * MS,
            );
            if verdict != Verdict::Keep {
                break;
            }
        }
        assert!(matches!(verdict, Verdict::Close { .. }));
    }

    #[test]
    fn cpu_time_is_read_from_a_stat_line_whose_name_has_spaces() {
        let line = "4242 (cpal alsa) in) S 1 2 3 4 5 6 7 8 9 10 123 77 0 0 20 0 1 0 5 6 7";
        assert_eq!(cpu_from_stat(line), Some(Duration::from_millis(2000)));
        assert_eq!(cpu_from_stat("garbage"), None);
        assert_eq!(cpu_from_stat("1 (x) S 1 2"), None);
    }

    #[test]
    fn this_threads_cpu_time_is_readable_on_linux() {
        if !cfg!(target_os = "linux") {
            return;
        }
        let tid = std::fs::read_link("/proc/thread-self")
            .ok()
            .and_then(|p| p.file_name()?.to_str()?.parse::<u32>().ok())
            .expect("/proc/thread-self");
        let before = thread_cpu(tid).expect("stat readable");
        // Burn CPU until the kernel has counted some of it (a tick is 10 ms).
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut x = 0u64;
        while thread_cpu(tid).expect("still readable") == before {
            assert!(Instant::now() < deadline, "no CPU time counted in 5 s");
            for _ in 0..100_000 {
                x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(1));
            }
        }
    }
}
