//! The microphone's capture thread never spins. Through ALSA's PulseAudio plugin (a desktop's
//! `default` device) cpal's capture thread took a whole core on a source that delivers
//! nothing, and 38–80 % of one on a source whose chunks do not line up with its period; the
//! microphone now reads on its own thread (`src/audio/device/capture.rs`). Checked against a
//! private PulseAudio daemon whose microphone is a FIFO: first nobody writes to it, then a
//! 440 Hz tone is written into it in chunks of 333 frames, then of 1000.
#![cfg(all(feature = "devices", target_os = "linux"))]

mod support;

use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use cromulent::audio::analysis::{dominant_frequency, rms};
use cromulent::audio::device::capture::THREAD_NAME;
use cromulent::audio::{AudioSource, DeviceSource, FRAME_SAMPLES};
use support::TempDir;

/// A private PulseAudio daemon, killed on drop.
struct Pulse {
    child: Child,
    _dir: TempDir,
    fifo: std::path::PathBuf,
}

impl Pulse {
    /// A daemon with a null-sink speaker and a FIFO microphone as the defaults. The
    /// environment of this test process points at it (this file holds one test).
    fn start() -> Self {
        assert!(
            support::coturn::find_binary("pulseaudio").is_some(),
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

fn pactl(args: &[&str]) -> bool {
    Command::new("pactl")
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// CPU time the microphone's capture thread has used so far (`None` before it exists).
fn capture_thread_cpu() -> Option<Duration> {
    for task in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if comm.trim() != THREAD_NAME {
            continue;
        }
        let stat = std::fs::read_to_string(task.path().join("stat")).ok()?;
        let rest = &stat[stat.rfind(')')? + 1..];
        let ticks: u64 = rest
            .split_whitespace()
            .skip(11)
            .take(2)
            .map(|x| x.parse::<u64>().unwrap())
            .sum();
        return Some(Duration::from_millis(ticks * 10));
    }
    None
}

/// Reads frames as the engine does (polling every 5 ms) for `span`: the capture thread's
/// share of a core meanwhile, and the frames that held sound.
fn listen(mic: &mut DeviceSource, span: Duration) -> (f64, Vec<Vec<f32>>) {
    let mut frame = vec![0.0f32; FRAME_SAMPLES];
    let mut heard = Vec::new();
    let (t0, cpu0) = (
        Instant::now(),
        capture_thread_cpu().expect("capture thread"),
    );
    while t0.elapsed() < span {
        while mic.samples_ready().unwrap_or(0) >= FRAME_SAMPLES {
            mic.next_frame(&mut frame);
            if rms(&frame) > 0.1 {
                heard.push(frame.clone());
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let cpu = capture_thread_cpu().expect("capture thread") - cpu0;
    let share = cpu.as_secs_f64() / t0.elapsed().as_secs_f64();
    eprintln!(
        "{span:?}: capture thread {:.1} % of a core, {} frames with sound",
        share * 100.0,
        heard.len()
    );
    (share, heard)
}

/// Writes a 440 Hz tone into the FIFO in real time, `chunk` frames per write, until told to
/// stop.
fn feed_tone(
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

/// A spinning thread takes most of a core; one that waits properly, about 1 % here.
const SPINNING: f64 = 0.1;

#[test]
fn the_capture_thread_waits_on_a_starved_source_and_on_chunks_that_miss_its_period() {
    let pulse = Pulse::start();
    let mut mic = DeviceSource::open(None).expect("the default microphone opens");
    // A thread names itself as it starts.
    let deadline = Instant::now() + Duration::from_secs(5);
    while capture_thread_cpu().is_none() {
        assert!(Instant::now() < deadline, "no {THREAD_NAME} thread");
        std::thread::sleep(Duration::from_millis(10));
    }

    // Starved: the FIFO has no writer (cpal's thread: 100 % of a core).
    let (share, heard) = listen(&mut mic, Duration::from_secs(3));
    assert!(heard.is_empty());
    assert!(
        share < SPINNING,
        "capture thread at {:.0} % of a core while the microphone delivered nothing",
        share * 100.0
    );

    // The source comes to life in chunks of 333 frames, then 1000 (cpal's thread: 80 % and
    // 38 %): every frame is heard and the thread still waits.
    let stop = Arc::new(AtomicBool::new(false));
    let mut feeder = feed_tone(pulse.fifo.clone(), 333, stop.clone());
    let deadline = Instant::now() + Duration::from_secs(10);
    while listen(&mut mic, Duration::from_millis(100)).1.is_empty() {
        assert!(
            Instant::now() < deadline,
            "no tone from the microphone within 10 s of the source delivering"
        );
    }
    for chunk in [333, 1000] {
        if chunk != 333 {
            stop.store(true, Ordering::Relaxed);
            let _ = feeder.join();
            stop.store(false, Ordering::Relaxed);
            feeder = feed_tone(pulse.fifo.clone(), chunk, stop.clone());
            listen(&mut mic, Duration::from_millis(500));
        }
        let (share, heard) = listen(&mut mic, Duration::from_secs(3));
        assert!(
            share < SPINNING,
            "capture thread at {:.0} % of a core on {chunk}-frame chunks",
            share * 100.0
        );
        // 150 frames in 3 s; a few may fall on the edges of the window.
        assert!(
            heard.len() >= 140,
            "{} of ~150 frames held the tone on {chunk}-frame chunks",
            heard.len()
        );
        let hz = dominant_frequency(&heard[heard.len() / 2], 48_000).expect("a tone");
        assert!(
            (hz - 440.0).abs() < 20.0,
            "heard {hz} Hz on {chunk}-frame chunks"
        );
    }
    stop.store(true, Ordering::Relaxed);
    assert!(!mic.failed());
    drop(mic);
    let _ = feeder.join();
}
