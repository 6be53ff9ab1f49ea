//! A private PulseAudio daemon for the device tests (no sound card needed): a null-sink
//! speaker `spk` and a FIFO microphone `mic` as its defaults, and a tone written into that
//! FIFO in real time. Killed on drop.

use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::TempDir;

/// A private PulseAudio daemon, killed on drop.
pub struct Pulse {
    child: Child,
    _dir: TempDir,
    pub fifo: std::path::PathBuf,
}

impl Pulse {
    /// A daemon with a null-sink speaker and a FIFO microphone as the defaults. The
    /// environment of this test process points at it (this file holds one test).
    pub fn start() -> Self {
        assert!(
            super::coturn::find_binary("pulseaudio").is_some(),
            "pulseaudio is not installed (scripts/setup installs it)"
        );
        let dir = TempDir::new("pulse");
        let (rt, home) = (dir.path("rt"), dir.path("home"));
        std::fs::create_dir_all(&rt).unwrap();
        std::fs::create_dir_all(&home).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&rt, std::fs::Permissions::from_mode(0o700)).unwrap();
        // SAFETY: set before any other thread of this test binary reads the environment
        // (one test in this file, set at its start).
        unsafe {
            std::env::set_var("XDG_RUNTIME_DIR", &rt);
            std::env::set_var("HOME", &home);
            std::env::remove_var("PULSE_SERVER");
            std::env::remove_var("PULSE_SOURCE");
            std::env::remove_var("PULSE_SINK");
        }
        let child = Command::new("pulseaudio")
            .args([
                "--daemonize=no",
                "--exit-idle-time=-1",
                "-n",
                "--load=module-native-protocol-unix",
            ])
            .arg(format!(
                "--log-target=file:{}",
                dir.path("pulse.log").display()
            ))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start pulseaudio");
        let fifo = dir.path("mic.fifo");
        let pulse = Self {
            child,
            _dir: dir,
            fifo,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !pactl(&["info"]) {
            assert!(Instant::now() < deadline, "pulseaudio did not come up");
            std::thread::sleep(Duration::from_millis(50));
        }
        let file = format!("file={}", pulse.fifo.display());
        for args in [
            &["load-module", "module-null-sink", "sink_name=spk"][..],
            &[
                "load-module",
                "module-pipe-source",
                "source_name=mic",
                &file,
                "format=float32le",
                "rate=48000",
                "channels=1",
            ],
            &["set-default-sink", "spk"],
            &["set-default-source", "mic"],
        ] {
            assert!(pactl(args), "pactl {args:?} failed");
        }
        pulse
    }
}

impl Drop for Pulse {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn pactl(args: &[&str]) -> bool {
    Command::new("pactl")
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Writes a 440 Hz tone into the FIFO in real time, `chunk` frames per write, until told to
/// stop.
pub fn feed_tone(
    fifo: std::path::PathBuf,
    chunk: usize,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .open(&fifo)
            .expect("open the FIFO");
        let start = Instant::now();
        let mut n = 0usize;
        while !stop.load(Ordering::Relaxed) && start.elapsed() < Duration::from_secs(40) {
            let due = start + Duration::from_secs_f64(n as f64 / 48_000.0);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
            let bytes: Vec<u8> = (n..n + chunk)
                .flat_map(|i| {
                    let x = 0.3 * (2.0 * std::f32::consts::PI * 440.0 * i as f32 / 48_000.0).sin();
                    x.to_le_bytes()
                })
                .collect();
            if f.write_all(&bytes).is_err() {
                return;
            }
            n += chunk;
        }
    })
}

/// CPU time thread `name` of this process has used so far (`None` before it exists).
pub fn thread_cpu(name: &str) -> Option<Duration> {
    for task in std::fs::read_dir("/proc/self/task").ok()?.flatten() {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if comm.trim() != name {
            continue;
        }
        let stat = std::fs::read_to_string(task.path().join("stat")).ok()?;
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
