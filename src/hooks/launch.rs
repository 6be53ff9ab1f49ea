//! Starting a hook: `sh -c COMMAND` with the event as one JSON line on stdin and as
//! `CROMULENT_EVENT`, `CROMULENT_CHANNEL`, `CROMULENT_USER`, `CROMULENT_USER_ID`,
//! `CROMULENT_TEXT`, `CROMULENT_REASON`, `CROMULENT_DROPPED` variables (text from the wire made
//! safe by [`sanitize`] there; exact, JSON-escaped, on stdin). Its stdout goes nowhere (it
//! must not draw on the terminal or mix into headless's event lines), its stderr where the
//! client's goes (the TUI's log file). A hook runs at most [`TIME_LIMIT`], then is killed; at
//! most [`MAX_RUNNING`] run at once, more are dropped and logged.
//!
//! Must never block the caller: the child is waited for on its own task.

use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::AsyncWriteExt;

use super::Launch;
use crate::text::sanitize;

/// A hook still running after this is killed.
pub const TIME_LIMIT: Duration = Duration::from_secs(10);
/// Hooks running at once, at most.
pub const MAX_RUNNING: usize = 4;

/// Starts hooks on the current tokio runtime, counting those still running.
#[derive(Debug, Clone)]
pub struct Launcher {
    running: Arc<AtomicUsize>,
    time_limit: Duration,
}

impl Default for Launcher {
    fn default() -> Self {
        Self::with_time_limit(TIME_LIMIT)
    }
}

impl Launcher {
    pub fn with_time_limit(time_limit: Duration) -> Self {
        Self {
            running: Arc::default(),
            time_limit,
        }
    }

    pub fn start(&self, launch: Launch) {
        let kind = launch.event.kind.name();
        if self.running.load(Ordering::Relaxed) >= MAX_RUNNING {
            tracing::warn!(
                hook = kind,
                "hook not run: {MAX_RUNNING} hooks still running"
            );
            return;
        }
        let json = serde_json::to_string(&launch.event).unwrap_or_default();
        let event = &launch.event;
        let safe = |v: &Option<String>| v.as_deref().map(sanitize).unwrap_or_default();
        let mut command = tokio::process::Command::new("sh");
        command
            .arg("-c")
            .arg(&launch.command)
            .env("CROMULENT_EVENT", kind)
            .env("CROMULENT_CHANNEL", safe(&event.channel))
            .env("CROMULENT_USER", safe(&event.user))
            .env("CROMULENT_USER_ID", safe(&event.user_id))
            .env("CROMULENT_TEXT", safe(&event.text))
            .env("CROMULENT_REASON", safe(&event.reason))
            .env("CROMULENT_DROPPED", launch.dropped.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        let mut child = match command.spawn() {
            Ok(child) => child,
            Err(e) => {
                tracing::warn!(hook = kind, error = %e, "hook could not start");
                return;
            }
        };
        if launch.dropped > 0 {
            tracing::info!(hook = kind, dropped = launch.dropped, "hook rate limit");
        }
        let (running, limit) = (self.running.clone(), self.time_limit);
        running.fetch_add(1, Ordering::Relaxed);
        tokio::spawn(async move {
            if let Some(mut stdin) = child.stdin.take() {
                // A hook that does not read its stdin is fine.
                let _ = stdin.write_all(format!("{json}\n").as_bytes()).await;
            }
            match tokio::time::timeout(limit, child.wait()).await {
                Ok(Ok(status)) if status.success() => tracing::debug!(hook = kind, "hook ran"),
                Ok(Ok(status)) => tracing::warn!(hook = kind, %status, "hook failed"),
                Ok(Err(e)) => tracing::warn!(hook = kind, error = %e, "hook lost"),
                Err(_) => {
                    tracing::warn!(hook = kind, "hook killed after {limit:?}");
                    let _ = child.kill().await;
                }
            }
            running.fetch_sub(1, Ordering::Relaxed);
        });
    }

    /// Hooks still running.
    pub fn running(&self) -> usize {
        self.running.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hooks::{HookEvent, HookKind};

    fn launch(command: &str, text: &str) -> Launch {
        Launch {
            command: command.to_owned(),
            event: HookEvent {
                kind: HookKind::Mentioned,
                channel: Some("General".into()),
                user: Some("bob".into()),
                user_id: Some("bob-1".into()),
                text: Some(text.into()),
                reason: None,
            },
            dropped: 2,
        }
    }

    async fn until_done(launcher: &Launcher) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while launcher.running() > 0 {
            assert!(tokio::time::Instant::now() < deadline, "hook still running");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[tokio::test]
    async fn the_event_arrives_on_stdin_and_in_variables_and_text_stays_data() {
        let dir = std::env::temp_dir().join(format!("cromulent-hook-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let out = dir.join("out");
        let launcher = Launcher::default();
        // A hostile text: a terminal escape and a shell substitution; the hook quotes it.
        let text = "hi \x1b]0;pwned\x07 $(touch nope) `touch nope2`";
        let cmd = format!(
            "cat > {0}.json; printf '%s|%s|%s|%s|%s' \"$CROMULENT_EVENT\" \"$CROMULENT_USER\" \
             \"$CROMULENT_CHANNEL\" \"$CROMULENT_TEXT\" \"$CROMULENT_DROPPED\" > {0}.env",
            out.display()
        );
        launcher.start(launch(&cmd, text));
        until_done(&launcher).await;
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("out.json")).unwrap()).unwrap();
        assert_eq!(json["event"], "mentioned");
        assert_eq!(json["text"], text, "exact on stdin");
        assert_eq!(json["user_id"], "bob-1");
        let env = std::fs::read_to_string(dir.join("out.env")).unwrap();
        assert_eq!(
            env,
            "mentioned|bob|General|hi ␛]0;pwned␇ $(touch nope) `touch nope2`|2"
        );
        assert!(!std::path::Path::new("nope").exists() && !dir.join("nope").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test]
    async fn a_hook_that_hangs_is_killed_and_a_full_house_drops_new_ones() {
        let launcher = Launcher::with_time_limit(Duration::from_millis(300));
        let started = std::time::Instant::now();
        for _ in 0..MAX_RUNNING + 2 {
            launcher.start(launch("exec sleep 30", ""));
        }
        assert_eq!(
            launcher.running(),
            MAX_RUNNING,
            "the extra ones were not started"
        );
        until_done(&launcher).await;
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "killed, not waited for"
        );
    }

    #[tokio::test]
    async fn a_command_that_cannot_run_is_only_logged() {
        let launcher = Launcher::default();
        launcher.start(launch("exit 3", ""));
        until_done(&launcher).await;
        launcher.start(launch("/nonexistent/hook", ""));
        until_done(&launcher).await;
    }
}
