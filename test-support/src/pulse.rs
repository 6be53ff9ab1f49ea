//! A private PulseAudio daemon for the device tests (no sound card needed): a null-sink
//! speaker `spk` and a FIFO microphone `mic` as its defaults, and a tone written into that
//! FIFO in real time. Killed on drop.
//!
//! Must never touch the user's own sound server: the daemon gets a private runtime dir and
//! `HOME`, and `PULSE_SERVER`, `PULSE_SOURCE`, `PULSE_SINK` are cleared.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::process::{KillOnDrop, TempDir, find_binary, poll_until};

/// How long the daemon may take to answer `pactl info`.
const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// The tone [`feed_tone`] writes: 440 Hz at 0.3 full scale, 48 kHz mono float.
const TONE_HZ: f32 = 440.0;
const RATE: f32 = 48_000.0;
/// [`feed_tone`] stops by itself after this long (a test that forgot to stop it).
const FEED_LIMIT: Duration = Duration::from_secs(40);

/// A private PulseAudio daemon, killed on drop.
pub struct Pulse {
    /// First field: the daemon is killed before its directory is removed.
    _child: KillOnDrop,
    _dir: TempDir,
    /// The microphone's FIFO: what is written here is what `mic` captures.
    pub fifo: PathBuf,
}

impl Pulse {
    /// A daemon with a null-sink speaker and a FIFO microphone as the defaults. The
    /// environment of this test process points at it, so call it at the start of a test
    /// binary's one test, before any other thread reads the environment.
    pub fn start() -> Self {
        assert!(
            find_binary("pulseaudio").is_some(),
            "pulseaudio is not installed (scripts/setup installs it)"
        );
        let dir = TempDir::new("pulse");
        let (rt, home) = (dir.path("rt"), dir.path("home"));
        std::fs::create_dir_all(&rt).unwrap();
        std::fs::create_dir_all(&home).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&rt, std::fs::Permissions::from_mode(0o700)).unwrap();
        // SAFETY: set before any other thread of this test binary reads the environment
        // (one test in the file that calls this, set at its start).
        #[allow(unsafe_code)]
        unsafe {
            std::env::set_var("XDG_RUNTIME_DIR", &rt);
            std::env::set_var("HOME", &home);
            std::env::remove_var("PULSE_SERVER");
            std::env::remove_var("PULSE_SOURCE");
            std::env::remove_var("PULSE_SINK");
        }
        let child = KillOnDrop::spawn(
            Command::new("pulseaudio")
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
                .stderr(Stdio::null()),
            "pulseaudio",
        );
        let fifo = dir.path("mic.fifo");
        let pulse = Self {
            _child: child,
            _dir: dir,
            fifo,
        };
        assert!(
            poll_until(READY_TIMEOUT, || pactl(&["info"])),
            "pulseaudio did not come up"
        );
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

/// `pactl ARGS...` against the daemon the environment names; whether it succeeded.
pub fn pactl(args: &[&str]) -> bool {
    Command::new("pactl")
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Writes a 440 Hz tone into the FIFO in real time, `chunk` frames per write, until told to
/// stop (or 40 s have passed).
pub fn feed_tone(
    fifo: PathBuf,
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
        while !stop.load(Ordering::Relaxed) && start.elapsed() < FEED_LIMIT {
            let due = start + Duration::from_secs_f64(n as f64 / RATE as f64);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
            let bytes: Vec<u8> = (n..n + chunk)
                .flat_map(|i| {
                    let x = 0.3 * (2.0 * std::f32::consts::PI * TONE_HZ * i as f32 / RATE).sin();
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
