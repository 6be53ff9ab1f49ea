//! Generic process, port and directory helpers: finding a binary on `PATH`, a free TCP port,
//! a private temp dir removed on drop, a child killed on drop, bounded polling and signals.
//! Nothing here knows about Cromulent.
//! Must never wait without a bound, or leave a child or a directory behind when its handle
//! drops.

use std::io::ErrorKind;
use std::net::TcpListener;
use std::ops::{Deref, DerefMut};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// How often the waits here look again.
const POLL: Duration = Duration::from_millis(20);

/// `name` as found on `PATH`, if it is there.
pub fn find_binary(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// A TCP port on 127.0.0.1 that was free a moment ago (for servers that must come back on the
/// same port, or that are told their port on the command line).
pub fn free_port() -> u16 {
    // A test machine without a loopback interface cannot run any of these tests.
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("bind a TCP socket on 127.0.0.1")
        .port()
}

/// A private temporary directory, `cromulent-TAG-PID-N` under the system's temp dir, removed
/// (with everything in it) on drop.
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    /// Make one; panics when the temp dir is not writable (no test can run then).
    pub fn new(tag: &str) -> Self {
        Self::try_new(tag).unwrap_or_else(|e| panic!("cannot make a temp dir for {tag}: {e}"))
    }

    /// Make one, or say why not.
    pub fn try_new(tag: &str) -> std::io::Result<Self> {
        static COUNT: AtomicU32 = AtomicU32::new(0);
        loop {
            let n = COUNT.fetch_add(1, Ordering::SeqCst);
            let dir =
                std::env::temp_dir().join(format!("cromulent-{tag}-{}-{n}", std::process::id()));
            match std::fs::create_dir(&dir) {
                // Left by an earlier process with the same pid: start afresh.
                Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                    let _ = std::fs::remove_dir_all(&dir);
                }
                Err(e) => return Err(e),
                Ok(()) => return Ok(Self(dir)),
            }
        }
    }

    /// The directory itself.
    pub fn root(&self) -> &Path {
        &self.0
    }

    /// A path inside it.
    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A child process that is killed (SIGKILL) and reaped when this handle drops, also when the
/// test panics. Derefs to the [`Child`].
#[derive(Debug)]
pub struct KillOnDrop(Child);

impl KillOnDrop {
    pub fn new(child: Child) -> Self {
        Self(child)
    }

    /// Spawn `cmd`; panics with `what` when it cannot be run.
    pub fn spawn(cmd: &mut Command, what: &str) -> Self {
        Self(cmd.spawn().unwrap_or_else(|e| panic!("spawn {what}: {e}")))
    }

    /// SIGKILL now: no goodbye to anyone.
    pub fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Deref for KillOnDrop {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl DerefMut for KillOnDrop {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Polls `done` every 20 ms until it holds (true) or `limit` has passed (false).
pub fn poll_until(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if done() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(POLL);
    }
}

/// Waits at most `limit` for `child` to exit; its status, or `None` if it is still running.
pub fn wait_exit(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let mut status = None;
    poll_until(limit, || {
        status = child.try_wait().ok().flatten();
        status.is_some()
    });
    status
}

/// Sends `signal` (e.g. `"-TERM"`, `"-KILL"`) to `pid` with `kill(1)`; whether it was sent.
pub fn signal(pid: u32, signal: &str) -> bool {
    Command::new("kill")
        .args([signal, &pid.to_string()])
        .status()
        .is_ok_and(|status| status.success())
}
