//! A real terminal for tests: a private tmux server (its own socket, no user config) with one
//! 120×40 session running a command. Keys go in with `send-keys`, the screen comes back with
//! `capture-pane`, waits are polled with a bound. Must never touch the user's tmux: the server
//! is private and killed on drop, with whatever runs in it.

use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// How long [`Tmux::wait`] waits for the screen.
pub const WAIT: Duration = Duration::from_secs(20);

/// A private tmux server with one 120×40 session; killed on drop (with whatever runs in it).
pub struct Tmux {
    socket: String,
}

impl Tmux {
    pub fn start(command: &str) -> Self {
        let version = Command::new("tmux").arg("-V").output();
        assert!(
            version.is_ok_and(|o| o.status.success()),
            "tmux is needed for this test: run `bash scripts/setup`"
        );
        static COUNT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = COUNT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let tmux = Tmux {
            socket: format!("cromulent-tui-test-{}-{n}", std::process::id()),
        };
        let out = tmux.run(&[
            "new-session",
            "-d",
            "-s",
            "tui",
            "-x",
            "120",
            "-y",
            "40",
            "sh",
            "-c",
            command,
        ]);
        assert!(out.status.success(), "tmux new-session: {out:?}");
        tmux
    }

    pub fn run(&self, args: &[&str]) -> Output {
        Command::new("tmux")
            // A private server, no user config, a known terminal type.
            .args(["-L", &self.socket, "-f", "/dev/null"])
            .args(args)
            .env_remove("TMUX")
            .output()
            .expect("run tmux")
    }

    pub fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "tui"];
        args.extend_from_slice(keys);
        assert!(self.run(&args).status.success());
    }

    /// The screen as text (`colours`: with SGR escape sequences).
    pub fn screen(&self, colours: bool) -> String {
        let mut args = vec!["capture-pane", "-p", "-t", "tui"];
        if colours {
            args.push("-e");
        }
        String::from_utf8_lossy(&self.run(&args).stdout).into_owned()
    }

    /// Poll until `pred` holds for the screen; panic with the screen after `WAIT`.
    pub fn wait(&self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let screen = self.screen(false);
            if pred(&screen) {
                return screen;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; the screen:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Set a server-wide option (`set -g NAME VALUE`).
    pub fn set_option(&self, name: &str, value: &str) {
        let out = self.run(&["set", "-g", name, value]);
        assert!(out.status.success(), "tmux set {name} {value}: {out:?}");
    }

    /// The pane's title (what an OSC 0/2 sequence would change).
    pub fn pane_title(&self) -> String {
        let out = self.run(&["display-message", "-p", "-t", "tui", "#{pane_title}"]);
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// The server's paste buffers (where an OSC 52 clipboard write would land).
    pub fn buffers(&self) -> String {
        let out = self.run(&["list-buffers"]);
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    pub fn alternate_screen_on(&self) -> bool {
        let out = self.run(&["display-message", "-p", "-t", "tui", "#{alternate_on}"]);
        String::from_utf8_lossy(&out.stdout).trim() == "1"
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.run(&["kill-server"]);
    }
}
