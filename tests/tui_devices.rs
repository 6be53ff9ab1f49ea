//! The cpal edge for real on a machine without a sound card: ALSA's `null` device accepts
//! streams (it captures silence and swallows playback as fast as it can), which exercises
//! finding a device by name, choosing a configuration, building and starting both streams,
//! and the callbacks feeding the lock-free rings.
#![cfg(feature = "devices")]

use std::time::{Duration, Instant};

use cromulent::audio::{
    AudioSink, AudioSource, DeviceError, DeviceSink, DeviceSource, FRAME_SAMPLES, Tone,
};

fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn capture_from_the_null_device_runs_the_callback_into_the_ring() {
    let mut mic = DeviceSource::open(Some("null")).expect("ALSA's null device opens");
    assert_eq!(mic.info().name, "null");
    wait_until("captured samples", || mic.buffered() >= 2 * FRAME_SAMPLES);
    let mut frame = [1.0f32; FRAME_SAMPLES];
    mic.next_frame(&mut frame);
    assert!(frame.iter().all(|&x| x == 0.0), "null captures silence");
    // The null device runs flat out; the ring stays bounded (oldest audio dropped).
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        mic.buffered() <= 48_000 / 2,
        "ring bounded: {}",
        mic.buffered()
    );
    mic.next_frame(&mut frame);
    assert!(!mic.failed());
}

#[test]
fn playback_to_the_null_device_drains_the_ring() {
    let mut speaker = DeviceSink::open(Some("null")).expect("ALSA's null device opens");
    let mut tone = Tone::new(440.0, 0.5);
    let mut frame = [0.0f32; FRAME_SAMPLES];
    for _ in 0..10 {
        tone.next_frame(&mut frame);
        speaker.write_frame(&frame).unwrap();
    }
    assert!(speaker.buffered() > 0);
    wait_until("the device to take the audio", || {
        speaker.buffered() < FRAME_SAMPLES
    });
    assert!(!speaker.failed());
}

#[test]
fn a_device_that_is_not_there_is_refused_with_the_list() {
    let err = DeviceSource::open(Some("no-such-microphone"))
        .err()
        .expect("no such device");
    assert!(matches!(err, DeviceError::NotFound { .. }), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("no microphone matches \"no-such-microphone\""),
        "{text}"
    );
    assert!(text.contains("null"), "lists what exists: {text}");
}
