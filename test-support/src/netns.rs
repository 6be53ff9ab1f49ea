//! Network namespaces made by tests (`ip netns`, needs root): their names, and deleting them
//! with whatever runs inside, also those a killed earlier test run left behind.
//! [`remove_stale`] must never delete a namespace without the [`PREFIX`] or one whose test
//! process is still alive.

use std::process::{Command, Stdio};

use crate::process::signal;

/// Every test namespace is named `cvtest-PID-...`, PID being the test process that made it,
/// so that [`remove_stale`] can tell which are left over.
pub const PREFIX: &str = "cvtest-";

/// A name for namespace `tag` of this test process.
pub fn name(tag: &str) -> String {
    format!("{PREFIX}{}-{tag}", std::process::id())
}

/// Kill what runs in `ns` (only ever processes a test started there), then delete it.
pub fn delete(ns: &str) {
    if let Ok(out) = Command::new("ip").args(["netns", "pids", ns]).output() {
        for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
            if let Ok(pid) = pid.parse() {
                signal(pid, "-KILL");
            }
        }
    }
    let _ = Command::new("ip")
        .args(["netns", "delete", ns])
        .stderr(Stdio::null())
        .status();
}

/// Delete the namespaces named by a test process that no longer exists (killed before its
/// cleanup ran).
pub fn remove_stale() {
    let Ok(out) = Command::new("ip").args(["netns", "list"]).output() else {
        return;
    };
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Some(name) = line.split_whitespace().next() else {
            continue;
        };
        let Some(pid) = name
            .strip_prefix(PREFIX)
            .and_then(|rest| rest.split('-').next())
        else {
            continue;
        };
        if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            delete(name);
        }
    }
}

/// Set in the environment of a test run again by [`isolated`].
const ISOLATED: &str = "CROMULENT_ISOLATED";

/// Longest an isolated test may run.
const ISOLATED_LIMIT: std::time::Duration = std::time::Duration::from_secs(240);

/// Run the calling test (`test`, its full path within the test binary, e.g.
/// `browser_hears_headless`) again, alone, in a network namespace of its own where only
/// loopback exists and is up, and a PID namespace whose first process it is: nothing it starts
/// can reach another address, and everything it starts dies with it, even when it is killed.
///
/// Isolated runs of one test binary take turns.
/// Returns `true` inside (run the test's body), `false` in the calling process after the
/// isolated run passed (return at once); panics with the run's output when it failed, or
/// when the namespaces cannot be made (root, or unprivileged user namespaces, are needed).
pub fn isolated(test: &str) -> bool {
    if std::env::var_os(ISOLATED).is_some() {
        return true;
    }
    // One at a time per test binary: what runs isolated (a browser and engines) fills the
    // machine's cores on its own. A failed run does not poison the next.
    static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _turn = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let exe = std::env::current_exe().expect("the test binary's path");
    let dir = crate::process::TempDir::new("isolated");
    let log_path = dir.path("output.log");
    let log = std::fs::File::create(&log_path).expect("create the isolated run's log");
    let mut cmd = Command::new("unshare");
    if !is_root() {
        cmd.arg("--map-root-user");
    }
    cmd.args([
        "--net",
        "--pid",
        "--fork",
        "--mount-proc",
        "--kill-child",
        "--",
    ])
    .args(["sh", "-c", r#"ip link set lo up && exec "$0" "$@""#])
    .arg(&exe)
    .args([test, "--exact", "--nocapture", "--test-threads=1"])
    .env(ISOLATED, "1")
    .stdin(Stdio::null())
    .stdout(log.try_clone().expect("log handle"))
    .stderr(log);
    let mut child = crate::process::KillOnDrop::spawn(&mut cmd, "unshare (util-linux)");
    let status = crate::process::wait_exit(&mut child, ISOLATED_LIMIT);
    let output = std::fs::read_to_string(&log_path).unwrap_or_default();
    match status {
        Some(s) if s.success() && output.contains("test result: ok. 1 passed") => false,
        Some(s) => panic!("{test} in its own network namespace: {s}\n{output}"),
        None => panic!(
            "{test} in its own network namespace: still running after {ISOLATED_LIMIT:?}\n{output}"
        ),
    }
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|euid| euid == "0"))
        })
        .unwrap_or(false)
}

/// Inside an [`isolated`] run: give the namespace a "LAN" — `lan0` with `addr` (e.g.
/// `10.77.0.1/24`) and the default route through it, one end of a veth pair whose other end
/// stays in the namespace too (this kernel has no dummy interfaces) — so a browser has an
/// interface besides loopback to gather on (without microphone permission it gathers only on
/// the default route's interface). Packets to that address are delivered locally: nothing
/// leaves the namespace.
pub fn add_lan(addr: &str) {
    for args in [
        vec![
            "link", "add", "lan0", "type", "veth", "peer", "name", "lan1",
        ],
        vec!["addr", "add", addr, "dev", "lan0"],
        vec!["link", "set", "lan1", "up"],
        vec!["link", "set", "lan0", "up"],
        vec!["route", "add", "default", "dev", "lan0"],
    ] {
        let out = Command::new("ip")
            .args(&args)
            .output()
            .expect("run ip (iproute2)");
        assert!(
            out.status.success(),
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
