//! What `/proc` says about sockets and threads: a test that lives outside a process's network
//! namespace reads that process's own socket tables (`/proc/PID/net/...`), and a test that
//! measures a thread reads its CPU time. Linux only.
//! Read-only: it must never write to `/proc` or signal a process.

use std::fs;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// TCP state `LISTEN` in `/proc/net/tcp`.
const TCP_LISTEN: &str = "0A";

/// `/proc/net`'s spelling of an IPv4 socket address: the address as a little-endian hex word.
pub fn proc_net_addr(addr: SocketAddr) -> String {
    let ip = match addr.ip() {
        IpAddr::V4(ip) => u32::from_le_bytes(ip.octets()),
        IpAddr::V6(_) => unreachable!("the harnesses only use IPv4"),
    };
    format!("{ip:08X}:{:04X}", addr.port())
}

/// Rows of `pid`'s `/proc/PID/net/TABLE` (`udp`, `tcp`), split into fields, header skipped.
fn socket_rows(pid: u32, table: &str) -> Vec<Vec<String>> {
    fs::read_to_string(format!("/proc/{pid}/net/{table}"))
        .unwrap_or_default()
        .lines()
        .skip(1)
        .map(|line| line.split_whitespace().map(str::to_owned).collect())
        .collect()
}

/// Inodes of the UDP sockets bound to `addr` in `pid`'s network namespace.
pub fn udp_socket_inodes(pid: u32, addr: SocketAddr) -> Vec<String> {
    let local = proc_net_addr(addr);
    socket_rows(pid, "udp")
        .into_iter()
        .filter(|fields| fields.get(1) == Some(&local))
        .filter_map(|mut fields| (fields.len() > 9).then(|| fields.swap_remove(9)))
        .collect()
}

/// Whether `pid`'s network namespace has a TCP socket listening on `addr`.
pub fn tcp_listening(pid: u32, addr: SocketAddr) -> bool {
    let local = proc_net_addr(addr);
    socket_rows(pid, "tcp").iter().any(|fields| {
        fields.get(1) == Some(&local) && fields.get(3).map(String::as_str) == Some(TCP_LISTEN)
    })
}

/// Whether process `pid` holds an open descriptor on one of the sockets `inodes`.
pub fn process_holds_any_socket(pid: u32, inodes: &[String]) -> bool {
    let Ok(fds) = fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    fds.filter_map(Result::ok)
        .filter_map(|fd| fs::read_link(fd.path()).ok())
        .any(|target| {
            let target = target.display().to_string();
            inodes
                .iter()
                .any(|inode| target == format!("socket:[{inode}]"))
        })
}

/// CPU time thread `name` of this process has used so far (`None` before it exists).
pub fn thread_cpu(name: &str) -> Option<Duration> {
    for task in fs::read_dir("/proc/self/task").ok()?.flatten() {
        let comm = fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if comm.trim() != name {
            continue;
        }
        let stat = fs::read_to_string(task.path().join("stat")).ok()?;
        let rest = &stat[stat.rfind(')')? + 1..];
        let ticks: u64 = rest
            .split_whitespace()
            .skip(11)
            .take(2)
            .map(|x| x.parse::<u64>().unwrap_or(0))
            .sum();
        return Some(Duration::from_millis(ticks * 10));
    }
    None
}
