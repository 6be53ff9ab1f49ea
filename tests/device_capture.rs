//! The microphone's capture thread never spins. Through ALSA's PulseAudio plugin (a desktop's
//! `default` device) cpal's capture thread took a whole core on a source that delivers
//! nothing, and 38–80 % of one on a source whose chunks do not line up with its period; the
//! microphone now reads on its own thread (`src/audio/device/capture.rs`). Checked against a
//! private PulseAudio daemon whose microphone is a FIFO: first nobody writes to it, then a
//! 440 Hz tone is written into it in chunks of 333 frames, then of 1000.
#![cfg(all(feature = "devices", target_os = "linux"))]

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use cromulent::audio::analysis::{dominant_frequency, rms};
use cromulent::audio::device::capture::THREAD_NAME;
use cromulent::audio::{AudioSource, DeviceSource, FRAME_SAMPLES};
use cromulent_test_support::procfs::thread_cpu;
use support::pulse::{Pulse, feed_tone};

/// CPU time the microphone's capture thread has used so far (`None` before it exists).
fn capture_thread_cpu() -> Option<Duration> {
    thread_cpu(THREAD_NAME)
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

/// A spinning thread takes most of a core; one that waits properly, about 1 % here.
const SPINNING: f64 = 0.1;

#[test]
fn the_capture_thread_waits_on_a_starved_source_and_on_chunks_that_miss_its_period() {
    let pulse = Pulse::start();
    // ALSA's default device, which on a desktop is the PulseAudio plugin (a bare name or none
    // would go to the server directly: tests/device_pulse.rs).
    let mut mic = DeviceSource::open(Some("alsa:default")).expect("the default microphone opens");
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
