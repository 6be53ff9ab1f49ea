//! Microphone and speaker straight on a PulseAudio server (`src/audio/device/pulse.rs`),
//! against a private daemon whose microphone is a FIFO and whose speaker is a null sink: the
//! tone written into the microphone comes out of the device in whole frames, the tone played
//! comes out of the sink's monitor, names choose the backend; in a call, the speaker's sink
//! unloaded (a headset unplugged) and then the default changed: the client moves with it, says
//! so, and is still heard; and a server that dies leaves both devices failed, not hung.
#![cfg(all(feature = "devices", target_os = "linux"))]

mod support;

use std::io::Read;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use cromulent::audio::analysis::{dominant_frequency, rms};
use cromulent::audio::device::pulse::{MIC_THREAD, SPEAKER_THREAD};
use cromulent::audio::{
    AudioSink, AudioSource, DeviceError, DeviceSink, DeviceSource, FRAME_SAMPLES, FrameSize,
};
use cromulent_test_support::procfs::thread_cpu;
use support::pulse::{Pulse, feed_tone};

/// A thread that waits for the server's messages uses about 1 % of a core here.
const BUSY: f64 = 0.1;

/// Frames the microphone delivers in `span`, read as the engine does (polling every 5 ms),
/// and the microphone thread's share of a core meanwhile.
fn listen(mic: &mut DeviceSource, span: Duration) -> (f64, Vec<Vec<f32>>) {
    let mut frame = vec![0.0f32; FRAME_SAMPLES];
    let mut frames = Vec::new();
    let (t0, cpu0) = (Instant::now(), thread_cpu(MIC_THREAD).expect("mic thread"));
    while t0.elapsed() < span {
        while mic.samples_ready().unwrap_or(0) >= FRAME_SAMPLES {
            mic.next_frame(&mut frame);
            frames.push(frame.clone());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let cpu = thread_cpu(MIC_THREAD).expect("mic thread") - cpu0;
    (cpu.as_secs_f64() / t0.elapsed().as_secs_f64(), frames)
}

/// Records the speaker's sink (its monitor) as raw f32 from the moment it returns until
/// `stop` is set; the handle's result is the recording.
fn record_speaker(stop: Arc<AtomicBool>) -> std::thread::JoinHandle<Vec<f32>> {
    record_sink("spk", stop)
}

/// [`record_speaker`] for the sink `sink`.
fn record_sink(sink: &str, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<Vec<f32>> {
    let mut child = Command::new("parec")
        .arg(format!("--device={sink}.monitor"))
        .args([
            "--raw",
            "--format=float32le",
            "--rate=48000",
            "--channels=1",
            "--latency-msec=20",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start parec");
    let mut out = child.stdout.take().expect("parec's output");
    let killer = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(30);
            while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            // SIGINT: parec writes out what it holds and exits (SIGKILL would lose it).
            let _ = Command::new("kill")
                .args(["-INT", &child.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline && matches!(child.try_wait(), Ok(None)) {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        })
    };
    let (started_tx, started) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let mut buf = [0u8; 4096];
        while let Ok(n @ 1..) = out.read(&mut buf) {
            if bytes.is_empty() {
                let _ = started_tx.send(());
            }
            bytes.extend_from_slice(&buf[..n]);
        }
        let _ = killer.join();
        bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect()
    });
    // parec takes its time to start (2 s here): the recording is on once audio comes.
    started
        .recv_timeout(Duration::from_secs(10))
        .expect("parec records nothing");
    reader
}

/// Plays a 660 Hz tone for `span` as the engine does: every 5 ms, whole frames while the
/// speaker wants samples. Returns the speaker thread's share of a core.
fn play_tone(speaker: &mut DeviceSink, span: Duration) -> f64 {
    let mut n = 0usize;
    let (t0, cpu0) = (
        Instant::now(),
        thread_cpu(SPEAKER_THREAD).expect("speaker thread"),
    );
    while t0.elapsed() < span {
        while speaker
            .queue()
            .is_some_and(|q| q.idle_wanted(FRAME_SAMPLES) > 0)
        {
            let frame: Vec<f32> = (n..n + FRAME_SAMPLES)
                .map(|i| 0.5 * (2.0 * std::f32::consts::PI * 660.0 * i as f32 / 48_000.0).sin())
                .collect();
            speaker.write_frame(&frame).expect("write");
            n += FRAME_SAMPLES;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let cpu = thread_cpu(SPEAKER_THREAD).expect("speaker thread") - cpu0;
    cpu.as_secs_f64() / t0.elapsed().as_secs_f64()
}

#[test]
fn microphone_and_speaker_run_on_the_pulseaudio_server_itself() {
    let pulse = Pulse::start();

    // No name: the server's default microphone, on the server directly.
    let mut mic = DeviceSource::open_for(None, FrameSize::Ms20).expect("the microphone opens");
    assert_eq!(mic.info().name, "pulse:mic", "{}", mic.info());
    assert_eq!(
        (mic.info().sample_rate, mic.info().channels),
        (48_000, 1),
        "the server converts"
    );
    let stop = Arc::new(AtomicBool::new(false));
    let feeder = feed_tone(pulse.fifo.clone(), 240, stop.clone());
    let deadline = Instant::now() + Duration::from_secs(10);
    while !listen(&mut mic, Duration::from_millis(100))
        .1
        .iter()
        .any(|f| rms(f) > 0.1)
    {
        assert!(Instant::now() < deadline, "no tone from the microphone");
    }
    let (share, frames) = listen(&mut mic, Duration::from_secs(3));
    let heard: Vec<_> = frames.iter().filter(|f| rms(f) > 0.1).collect();
    assert!(
        heard.len() >= 140,
        "{} of ~150 frames held the tone ({} delivered)",
        heard.len(),
        frames.len()
    );
    let hz = dominant_frequency(heard[heard.len() / 2], 48_000).expect("a tone");
    assert!((hz - 440.0).abs() < 20.0, "heard {hz} Hz");
    assert!(
        share < BUSY,
        "{MIC_THREAD} at {:.0} % of a core",
        share * 100.0
    );

    // The speaker: the server's default sink; what is played comes out of it.
    let mut speaker = DeviceSink::open(None).expect("the speaker opens");
    assert_eq!(speaker.info().name, "pulse:spk", "{}", speaker.info());
    let rec_stop = Arc::new(AtomicBool::new(false));
    let recording = record_speaker(rec_stop.clone());
    let share = play_tone(&mut speaker, Duration::from_secs(3));
    rec_stop.store(true, Ordering::Relaxed);
    let played = recording.join().expect("recording");
    let loud: Vec<f32> = played
        .chunks(FRAME_SAMPLES)
        .filter(|f| f.len() == FRAME_SAMPLES && rms(f) > 0.2)
        .flatten()
        .copied()
        .collect();
    assert!(
        loud.len() >= 100 * FRAME_SAMPLES,
        "{} ms of the tone came out of the sink",
        loud.len() / 48
    );
    let middle = &loud[loud.len() / 2..loud.len() / 2 + 4 * FRAME_SAMPLES];
    let hz = dominant_frequency(middle, 48_000).expect("a tone");
    assert!((hz - 660.0).abs() < 20.0, "the sink played {hz} Hz");
    let level = rms(middle);
    assert!(
        (level - 0.5 / 2f32.sqrt()).abs() < 0.05,
        "played at its level: rms {level}"
    );
    assert!(
        share < BUSY,
        "{SPEAKER_THREAD} at {:.0} % of a core",
        share * 100.0
    );
    assert!(!mic.failed() && !speaker.failed());

    // `--list-devices` lists the server's devices first, defaults marked.
    let listing = cromulent::audio::device::list_devices().expect("a listing");
    assert!(listing.contains("* pulse:mic"), "{listing}");
    assert!(listing.contains("* pulse:spk"), "{listing}");
    assert!(
        !listing.contains("pulse:spk.monitor"),
        "monitors are not microphones: {listing}"
    );

    // Names: the server's own, with or without `pulse:`; ALSA's, unprefixed or with `alsa:`.
    let named = DeviceSink::open(Some("pulse:spk")).expect("pulse:spk");
    assert_eq!(named.info().name, "pulse:spk");
    drop(named);
    let bare = DeviceSink::open(Some("spk")).expect("spk, unprefixed");
    assert_eq!(
        bare.info().name,
        "pulse:spk",
        "the server's name: the server's device"
    );
    drop(bare);
    let alsa = DeviceSink::open(Some("null")).expect("ALSA's null device, unprefixed");
    assert_eq!(alsa.info().name, "null", "not a PulseAudio name: ALSA's");
    drop(alsa);
    let alsa = DeviceSink::open(Some("alsa:default")).expect("ALSA's default device");
    assert_eq!(alsa.info().name, "default");
    drop(alsa);
    match DeviceSource::open(Some("pulse:nosuch")) {
        Err(DeviceError::NotFound {
            name, available, ..
        }) => {
            assert_eq!(name, "pulse:nosuch");
            assert!(
                available.contains("pulse:mic"),
                "lists the server's: {available}"
            );
        }
        Err(other) => panic!("wrong error: {other}"),
        Ok(_) => panic!("opened a microphone that is not there"),
    }

    drop(speaker);
    headphones_unplugged_mid_call();

    // The server dies under both: they say so within a few seconds (each first looks for
    // another device, REOPEN_FOR), and closing them does not hang.
    let speaker = DeviceSink::open(None).expect("the speaker opens");
    drop(pulse);
    let deadline = Instant::now() + Duration::from_secs(5);
    while !(mic.failed() && speaker.failed()) {
        assert!(
            Instant::now() < deadline,
            "the devices did not notice the server was gone"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let closing = Instant::now();
    drop(mic);
    drop(speaker);
    assert!(closing.elapsed() < Duration::from_secs(2));
    stop.store(true, Ordering::Relaxed);
    let _ = feeder.join();
}

/// The index of the module that made sink `name` (`pactl list short modules`).
fn sink_module(name: &str) -> String {
    let out = Command::new("pactl")
        .args(["list", "short", "modules"])
        .output()
        .expect("pactl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.lines()
        .find(|l| l.contains("module-null-sink") && l.contains(&format!("sink_name={name}")))
        .and_then(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .unwrap_or_else(|| panic!("no module for sink {name}: {text}"))
}

/// A call (alice's 440 Hz tone, bob on the default speaker, `spk`); bob's sink is unloaded
/// (no rescue module on this server: the stream dies with it), then another sink is made the
/// default: bob's client moves each time, says so, and alice is heard on the new sink.
fn headphones_unplugged_mid_call() {
    assert!(support::pulse::pactl(&[
        "load-module",
        "module-null-sink",
        "sink_name=spk2"
    ]));
    let server = support::Server::start();
    let mut bob = support::Client::start(
        &server.url(),
        "bob",
        &["--join", "General", "--audio-out", "device"],
    );
    let mut alice = support::Client::start(
        &server.url(),
        "alice",
        &["--join", "General", "--audio-in", "tone:440"],
    );
    bob.wait_audio("alice", support::LONG);

    assert!(support::pulse::pactl(&[
        "unload-module",
        &sink_module("spk")
    ]));
    let moved = bob.wait_for("the speaker moved", support::LONG, |e| {
        e.kind() == "device" && e.str("kind") == "speaker"
    });
    assert_eq!(moved.str("state"), "moved", "{:?}", moved.json);
    assert!(
        moved.str("device").starts_with("pulse:spk2"),
        "{:?}",
        moved.json
    );
    std::thread::sleep(Duration::from_millis(500));
    assert_heard_on("spk2", 440.0);

    // The system's default changes: a stream on the default follows it.
    assert!(support::pulse::pactl(&[
        "load-module",
        "module-null-sink",
        "sink_name=spk3"
    ]));
    let mark = bob.mark();
    assert!(support::pulse::pactl(&["set-default-sink", "spk3"]));
    let moved = bob.wait_after(
        mark,
        "the speaker followed the default",
        support::LONG,
        |e| e.kind() == "device" && e.str("kind") == "speaker",
    );
    assert!(
        moved.str("device").starts_with("pulse:spk3"),
        "{:?}",
        moved.json
    );
    assert_heard_on("spk3", 440.0);
    // Never left the call.
    assert!(!bob.ever(|e| e.kind() == "state"
        && e.str("state") != "connected"
        && e.str("state") != "connecting"));
    assert!(bob.terminate().success());
    assert!(alice.terminate().success());
}

/// `sink` plays a tone of `hz` (its monitor, recorded for a second).
fn assert_heard_on(sink: &str, hz: f32) {
    let stop = Arc::new(AtomicBool::new(false));
    let recording = record_sink(sink, stop.clone());
    std::thread::sleep(Duration::from_secs(1));
    stop.store(true, Ordering::Relaxed);
    let played = recording.join().expect("recording");
    let tail = &played[played.len().saturating_sub(24_000)..];
    assert!(rms(tail) > 0.05, "{sink} plays: rms {}", rms(tail));
    let share = cromulent::audio::analysis::tone_share(tail, 48_000, hz);
    assert!(share > 0.8, "{sink} plays {hz} Hz: share {share}");
}
