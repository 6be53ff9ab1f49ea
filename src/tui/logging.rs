//! Where the terminal client's output goes while it owns the screen: logs to a file, never to
//! the screen — and whatever C libraries print straight to file descriptor 2 (ALSA does, when
//! it probes for sound cards) into the same file, by pointing fd 2 at it until we are done.
//!
//! The fd swap uses rustix's safe `dup2_stderr` (the crate forbids `unsafe`), and keeps a
//! duplicate of the original stderr to put back.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;
use std::sync::Mutex;

/// The original stderr while it is redirected.
static SAVED_STDERR: Mutex<Option<OwnedFd>> = Mutex::new(None);

/// What the log shows unless `RUST_LOG` says otherwise.
pub const DEFAULT_FILTER: &str =
    "info,webrtc=error,webrtc_ice=error,webrtc_mdns=error,webrtc_dtls=error,webrtc_srtp=error";

/// Open (creating folders, appending) the log file.
pub fn open(path: &Path) -> io::Result<File> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    OpenOptions::new().create(true).append(true).open(path)
}

/// Send `tracing` output to `file` (no colours). Call once per process.
pub fn init_tracing(file: File) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| DEFAULT_FILTER.into());
    let _ = tracing_subscriber::fmt()
        .with_writer(Mutex::new(file))
        .with_ansi(false)
        .with_env_filter(filter)
        .try_init();
}

/// Point fd 2 at `to` until [`restore_stderr`].
pub fn redirect_stderr(to: &File) -> io::Result<()> {
    let mut saved = SAVED_STDERR.lock().unwrap_or_else(|p| p.into_inner());
    if saved.is_none() {
        *saved = Some(io::stderr().as_fd().try_clone_to_owned()?);
    }
    rustix::stdio::dup2_stderr(to)?;
    Ok(())
}

/// Put the original stderr back (idempotent; safe from a panic hook).
pub fn restore_stderr() {
    let saved = match SAVED_STDERR.try_lock() {
        Ok(mut s) => s.take(),
        Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner().take(),
        Err(std::sync::TryLockError::WouldBlock) => None,
    };
    if let Some(fd) = saved {
        let _ = rustix::stdio::dup2_stderr(&fd);
    }
}

/// Run `f` with fd 2 pointed at /dev/null (for `--list-devices`, whose ALSA probing prints
/// errors about cards that are not there).
pub fn quiet_stderr<T>(f: impl FnOnce() -> T) -> T {
    let redirected = File::options()
        .write(true)
        .open("/dev/null")
        .and_then(|null| redirect_stderr(&null))
        .is_ok();
    let out = f();
    if redirected {
        restore_stderr();
    }
    out
}
