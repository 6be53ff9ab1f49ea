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
