//! What the benchmarks read from `/proc`: a process's resident memory and CPU time, and the
//! loopback interface's byte counters. Parsing is pure (tested on sample text); reading is a
//! thin wrapper.

use std::time::Instant;

/// Clock ticks per second of `utime`/`stime` in `/proc/PID/stat`. Linux exposes these in
/// USER_HZ, which is 100 on every architecture it supports for this ABI.
pub const USER_HZ: f64 = 100.0;

/// Resident and peak resident memory of a process, KiB (`VmRSS`, `VmHWM`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Memory {
    pub rss_kib: u64,
    pub hwm_kib: u64,
}

/// Parse `/proc/PID/status` text.
pub fn parse_status(text: &str) -> Option<Memory> {
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|v| v.parse().ok())
    };
    Some(Memory {
        rss_kib: field("VmRSS:")?,
        hwm_kib: field("VmHWM:")?,
    })
}

/// Memory of `pid` now.
pub fn memory(pid: u32) -> Option<Memory> {
    parse_status(&std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?)
}

/// `utime + stime` in clock ticks from `/proc/PID/stat` text. The command name (field 2) is
/// in parentheses and may hold spaces, so fields are counted after its closing parenthesis.
pub fn parse_stat_ticks(text: &str) -> Option<u64> {
    let after = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // After ")": state is field 3, so utime (14) and stime (15) are at 11 and 12.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// CPU time used so far by `pid` (all its threads), in ticks of [`USER_HZ`].
pub fn cpu_ticks(pid: u32) -> Option<u64> {
    parse_stat_ticks(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// CPU time used so far by each thread of `pid`: (thread id, thread name, ticks of
/// [`USER_HZ`]).
pub fn thread_ticks(pid: u32) -> Vec<(u32, String, u64)> {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|tid| {
            let base = format!("/proc/{pid}/task/{tid}");
            let name = std::fs::read_to_string(format!("{base}/comm")).ok()?;
            let ticks = parse_stat_ticks(&std::fs::read_to_string(format!("{base}/stat")).ok()?)?;
            Some((tid, name.trim_end().to_owned(), ticks))
        })
        .collect()
}

/// Per thread name, percent of one core between two [`thread_ticks`] readings `secs` apart
/// (threads of one name summed; threads that did not live through both left out), busiest
/// first.
pub fn thread_percent(
    before: &[(u32, String, u64)],
    after: &[(u32, String, u64)],
    secs: f64,
) -> Vec<(String, f64)> {
    let mut by_name: Vec<(String, f64)> = Vec::new();
    for (tid, name, t1) in after {
        let Some((_, _, t0)) = before.iter().find(|(t, _, _)| t == tid) else {
            continue;
        };
        let pct = 100.0 * t1.saturating_sub(*t0) as f64 / USER_HZ / secs.max(1e-9);
        match by_name.iter_mut().find(|(n, _)| n == name) {
            Some((_, p)) => *p += pct,
            None => by_name.push((name.clone(), pct)),
        }
    }
    by_name.sort_by(|a, b| b.1.total_cmp(&a.1));
    by_name
}

/// A CPU-time reading of one process, to compute its load over a window.
#[derive(Debug, Clone, Copy)]
pub struct CpuMark {
    ticks: u64,
    at: Instant,
}

impl CpuMark {
    pub fn now(pid: u32) -> Option<Self> {
        Some(Self {
            ticks: cpu_ticks(pid)?,
            at: Instant::now(),
        })
    }

    /// Percent of one core used by `pid` since this mark.
    pub fn percent_since(&self, pid: u32) -> Option<f64> {
        let later = Self::now(pid)?;
        Some(percent_between(self, &later))
    }
}

/// Percent of one core between two marks of the same process.
pub fn percent_between(a: &CpuMark, b: &CpuMark) -> f64 {
    let secs = b.at.duration_since(a.at).as_secs_f64().max(1e-9);
    let cpu = b.ticks.saturating_sub(a.ticks) as f64 / USER_HZ;
    100.0 * cpu / secs
}

/// Bytes received and sent on interface `name`, from `/proc/net/dev` text.
pub fn parse_net_dev(text: &str, name: &str) -> Option<(u64, u64)> {
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with(&format!("{name}:")))?;
    let fields: Vec<&str> = line.split(':').nth(1)?.split_whitespace().collect();
    Some((fields.first()?.parse().ok()?, fields.get(8)?.parse().ok()?))
}

/// Bytes received and sent on loopback in this network namespace.
pub fn loopback_bytes() -> Option<(u64, u64)> {
    parse_net_dev(&std::fs::read_to_string("/proc/net/dev").ok()?, "lo")
}

/// Kernel memory held by TCP sockets, KiB (`TCP: ... mem PAGES` in `/proc/net/sockstat`,
/// assuming 4 KiB pages). Socket buffers are kernel memory and never show in a process's RSS.
pub fn parse_sockstat_tcp_mem_kib(text: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("TCP:"))?;
    let mut words = line.split_whitespace();
    while let Some(w) = words.next() {
        if w == "mem" {
            return words.next()?.parse::<u64>().ok().map(|pages| pages * 4);
        }
    }
    None
}

pub fn tcp_kernel_mem_kib() -> Option<u64> {
    parse_sockstat_tcp_mem_kib(&std::fs::read_to_string("/proc/net/sockstat").ok()?)
}

/// How many files `pid` has open (entries of `/proc/PID/fd`).
pub fn open_fds(pid: u32) -> Option<usize> {
    Some(std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count())
}

/// The soft and hard limits on open files of `pid` (`Max open files` in `/proc/PID/limits`).
pub fn open_file_limits(pid: u32) -> Option<(u64, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/limits")).ok()?;
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    let nums: Vec<u64> = line
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    Some((*nums.first()?, *nums.get(1)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_memory() {
        let text = "Name:\tx\nVmHWM:\t  2048 kB\nVmRSS:\t  1024 kB\nThreads:\t3\n";
        assert_eq!(
            parse_status(text),
            Some(Memory {
                rss_kib: 1024,
                hwm_kib: 2048
            })
        );
        assert_eq!(parse_status("Name: x\n"), None);
    }

    #[test]
    fn stat_ticks_after_a_name_with_spaces() {
        let text = "42 (tokio runtime) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 3 0";
        assert_eq!(parse_stat_ticks(text), Some(300));
    }

    #[test]
    fn net_dev_loopback() {
        let text = "Inter-|   Receive |  Transmit\n face |bytes packets errs drop fifo frame compressed multicast|bytes\n    lo: 1000 10 0 0 0 0 0 0 2000 20 0 0 0 0 0 0\n  eth0: 5 1 0 0 0 0 0 0 6 1 0 0 0 0 0 0\n";
        assert_eq!(parse_net_dev(text, "lo"), Some((1000, 2000)));
        assert_eq!(parse_net_dev(text, "eth0"), Some((5, 6)));
        assert_eq!(parse_net_dev(text, "wlan0"), None);
    }

    #[test]
    fn sockstat_tcp_memory() {
        let text =
            "sockets: used 10\nTCP: inuse 5 orphan 0 tw 0 alloc 6 mem 12\nUDP: inuse 1 mem 2\n";
        assert_eq!(parse_sockstat_tcp_mem_kib(text), Some(48));
    }

    #[test]
    fn thread_shares_are_summed_per_name_and_sorted() {
        let before = [
            (1, "main".to_owned(), 100),
            (2, "worker".to_owned(), 10),
            (3, "worker".to_owned(), 20),
            (4, "gone".to_owned(), 5),
        ];
        let after = [
            (1, "main".to_owned(), 110),
            (2, "worker".to_owned(), 30),
            (3, "worker".to_owned(), 40),
            (5, "new".to_owned(), 50),
        ];
        let shares = thread_percent(&before, &after, 2.0);
        assert_eq!(
            shares,
            vec![("worker".to_owned(), 20.0), ("main".to_owned(), 5.0)]
        );
    }

    #[test]
    fn this_process_is_readable() {
        let me = std::process::id();
        assert!(memory(me).is_some_and(|m| m.rss_kib > 0));
        assert!(cpu_ticks(me).is_some());
        assert!(open_file_limits(me).is_some());
        assert!(open_fds(me).is_some_and(|n| n >= 3));
    }
}
