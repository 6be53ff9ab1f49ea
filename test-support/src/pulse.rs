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

/// A room around the daemon's devices: what the speaker `spk` plays comes back into the
/// microphone's FIFO `delay` later, at `gain`, with a short reverb tail (a laptop's speakers
/// and microphone). Read from `spk.monitor` with `parec`, in real time on the daemon's clock;
/// the microphone gets silence until the recording starts. Runs until `stop` (or 40 s).
pub fn acoustic_loop(
    fifo: PathBuf,
    delay: Duration,
    gain: f32,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<()> {
    use std::io::Read;
    std::thread::spawn(move || {
        use std::os::unix::fs::OpenOptionsExt;
        // Never blocks: when nobody records from the microphone the daemon stops reading the
        // FIFO, and the room's sound is dropped (each write is one block, below PIPE_BUF,
        // so it goes in whole or not at all).
        let mut mic = std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&fifo)
            .expect("open the FIFO");
        let mut parec = KillOnDrop::spawn(
            Command::new("parec")
                .args([
                    "-d",
                    "spk.monitor",
                    "--format=float32le",
                    "--rate=48000",
                    "--channels=1",
                    "--latency-msec=10",
                ])
                .stdout(Stdio::piped())
                .stderr(Stdio::null()),
            "parec",
        );
        let mut played = parec.stdout.take().expect("parec's output");
        // The room's impulse response: the direct path, then reflections every ~3.3 ms
        // fading by 0.6 each (as `cromulent::audio::analysis::room_taps`, which this crate
        // cannot depend on).
        let first = (delay.as_secs_f32() * RATE) as usize;
        let taps: Vec<(usize, f32)> = (0..12)
            .map(|k| (first + k * 157, gain * 0.6f32.powi(k as i32)))
            .collect();
        let span = taps.last().map_or(0, |t| t.0) + 1;
        let mut history = vec![0.0f32; span];
        let mut at = 0usize;
        let start = Instant::now();
        let mut block = [0u8; 480 * 4];
        while !stop.load(Ordering::Relaxed) && start.elapsed() < FEED_LIMIT {
            if played.read_exact(&mut block).is_err() {
                return;
            }
            let mut out = Vec::with_capacity(block.len());
            for sample in block.chunks_exact(4) {
                let x = f32::from_le_bytes(sample.try_into().unwrap());
                history[at % span] = x;
                let y: f32 = taps
                    .iter()
                    .filter(|&&(t, _)| t <= at)
                    .map(|&(t, g)| g * history[(at - t) % span])
                    .sum();
                out.extend_from_slice(&y.to_le_bytes());
                at += 1;
            }
            match mic.write(&out) {
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(_) => return,
                Ok(_) => {}
            }
        }
    })
}
