//! Microphone and speaker on ALSA (cargo feature `devices`, on by default): a
//! [`DeviceSource`] and a [`DeviceSink`] that look to the engine like any other 48 kHz mono
//! source and sink. cpal finds devices and runs the speaker; the microphone is read on our
//! own capture thread ([`capture`]), because cpal's spins through ALSA's PulseAudio plugin.
//!
//! The device runs on its own thread (the capture thread, cpal's playback callback) at its
//! own rate, format and channel count; the engine moves 20 ms frames. Between them sits a
//! lock-free SPSC [`ring`] of 48 kHz mono samples. The device threads only convert
//! (channels → mono → 48 kHz, or back), move samples through the ring and wake the engine
//! ([`Wake`]): no allocation, no locks, no I/O, no logging. The device sets the pace: the
//! microphone's thread wakes the engine as soon as a frame is complete
//! ([`super::AudioSource::samples_ready`]); the engine writes each frame for the speaker as
//! soon as its packets are here, behind a lead of two device callbacks, and the speaker's
//! thread wakes it when the ring is about to run dry ([`SpeakerQueue`]), so neither ring
//! holds more than it must and no frame waits for an engine tick. A backlog (an engine that
//! fell behind, a device that started late) is cut, and a dry speaker ring plays silence,
//! counted as an underrun. The speaker's thread also says what it played, in a second ring
//! (silence while dry in, what was cut out): that is the echo canceller's reference; and the
//! microphone's end says how much of the device's time a backlog cut or an early read took
//! or added, so the engine moves the reference by as much.
//!
//! Opening never panics and never blocks for long; with no usable device (no sound card, only
//! ALSA's `null` device, a built-without-`devices` binary) it fails with a [`DeviceError`] that
//! says so in words, and front ends carry on without sound.

// Without `devices` the capture/playback paths below are exercised only by their tests.
#![cfg_attr(not(feature = "devices"), allow(dead_code))]

#[cfg(feature = "devices")]
pub mod capture;
mod convert;
#[cfg(feature = "devices")]
pub mod pulse;
pub mod ring;

use std::fmt;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

pub use convert::{PullResampler, PushResampler};

use super::frame::{FRAME_SAMPLES, SAMPLE_RATE};

/// A device in use changed under a running stream (a source or sink of its own).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceChange {
    /// Now on this device (its [`DeviceInfo`] in words): the one in use went away, or the
    /// system's default changed, and the stream moved on without a gap in the call.
    Now(String),
    /// Gone, with no device to move to: silence from now on (the reason is in the log).
    Lost,
}

/// Where a device thread says that its stream moved: the device's name, bumped count. Written
/// on a device change only (rare), read by the engine when the count moved.
#[derive(Debug, Default)]
pub struct Moves {
    count: AtomicU64,
    device: std::sync::Mutex<String>,
}

impl Moves {
    /// The stream is now on `device` (the server's name).
    pub fn record(&self, device: String) {
        if let Ok(mut d) = self.device.lock() {
            *d = device;
        }
        self.count.fetch_add(1, Ordering::Release);
    }

    /// The device's name if it moved since `seen` (which is updated).
    pub fn since(&self, seen: &mut u64) -> Option<String> {
        let count = self.count.load(Ordering::Acquire);
        if count == *seen {
            return None;
        }
        *seen = count;
        self.device.lock().ok().map(|d| d.clone())
    }
}

/// Why a sound device is not available.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeviceError {
    #[error("this build has no sound-device support (built without the `devices` feature)")]
    NotBuilt,
    /// Nothing usable without being told which: no default, or only ALSA's null device.
    #[error("no {what}: {reason}")]
    NoDevice { what: &'static str, reason: String },
    #[error("no {what} matches {name:?}; available: {available}")]
    NotFound {
        what: &'static str,
        name: String,
        available: String,
    },
    #[error("{what} {name:?} cannot be used: {reason}")]
    Failed {
        what: &'static str,
        name: String,
        reason: String,
    },
}

impl DeviceError {
    /// Why, in a few words a person can act on, for a screen that already says which device
    /// is missing: a library's own message (ALSA's `snd_pcm_open failed …`) belongs in the
    /// log ([`Display`](fmt::Display) has it all), not on one line of a terminal.
    pub fn summary(&self) -> String {
        match self {
            DeviceError::NotBuilt => "this build has no sound support".into(),
            DeviceError::NoDevice { .. } => "no sound server or card found".into(),
            DeviceError::NotFound { name, .. } => format!("no device matches {name:?}"),
            DeviceError::Failed { name, .. } => format!("{name:?} cannot be opened (see the log)"),
        }
    }

    /// Why, without the "no microphone:" lead (for a screen that already says which).
    pub fn reason(&self) -> String {
        match self {
            DeviceError::NotBuilt => "built without sound-device support".into(),
            DeviceError::NoDevice { reason, .. } => reason.clone(),
            DeviceError::NotFound { name, .. } => format!("no device matches {name:?}"),
            DeviceError::Failed { name, reason, .. } => format!("{name}: {reason}"),
        }
    }
}

/// Which way audio goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Input,
    Output,
}

impl Direction {
    pub fn what(self) -> &'static str {
        match self {
            Direction::Input => "microphone",
            Direction::Output => "speaker",
        }
    }
}

/// Where a device name sends a stream. `pulse:NAME` and `alsa:NAME` choose a backend
/// (`pulse:` alone, `alsa:` alone: its default); a bare name or none tries PulseAudio first
/// and ALSA when there is no PulseAudio server or it has no device of that name (so ALSA's
/// own names, `null`, `hw:CARD=PCH,DEV=0`, still work unprefixed). `default` is the
/// system's default either way: the server's when there is one (ALSA's `default` is the
/// server's too, through its plugin, at twice the wake-ups).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route<'a> {
    Pulse {
        name: Option<&'a str>,
        or_alsa: bool,
    },
    Alsa(Option<&'a str>),
}

fn route(name: Option<&str>) -> Route<'_> {
    let name = name.map(str::trim).filter(|n| !n.is_empty());
    fn some(n: &str) -> Option<&str> {
        Some(n.trim()).filter(|n| !n.is_empty())
    }
    match name {
        None | Some("default") => Route::Pulse {
            name: None,
            or_alsa: true,
        },
        Some(n) => match (n.strip_prefix("pulse:"), n.strip_prefix("alsa:")) {
            (Some(rest), _) => Route::Pulse {
                name: some(rest),
                or_alsa: false,
            },
            (_, Some(rest)) => Route::Alsa(some(rest)),
            _ => Route::Pulse {
                name: Some(n),
                or_alsa: true,
            },
        },
    }
}

/// An opened device, for the screen: `default (44100 Hz, 2 ch, i16 → 48 kHz mono)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceInfo {
    pub name: String,
    pub sample_rate: u32,
    pub channels: u16,
    pub format: String,
}

impl fmt::Display for DeviceInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ({} Hz, {} ch, {}",
            self.name, self.sample_rate, self.channels, self.format
        )?;
        if self.sample_rate != SAMPLE_RATE || self.channels != 1 {
            f.write_str(" → 48 kHz mono")?;
        }
        f.write_str(")")
    }
}

/// How a device thread wakes the engine when it has work for it (a captured frame is
/// complete, the speaker is about to run dry): called on the device's thread, so it must be
/// quick and never block (the engine's is a tokio `Notify`).
pub type Wake = Arc<dyn Fn() + Send + Sync>;

/// Where a device thread finds the engine's [`Wake`], which is handed over after the device
/// opened: set once, read with one atomic load per device callback.
#[derive(Default)]
pub struct WakeSlot(OnceLock<Wake>);

impl WakeSlot {
    /// The engine's wake (a second call is ignored: one engine per device).
    pub fn set(&self, wake: Wake) {
        let _ = self.0.set(wake);
    }

    fn wake(&self) {
        if let Some(wake) = self.0.get() {
            wake();
        }
    }
}

/// A speaker's buffer as the engine sees it, and when to write to it. A talk spurt's first
/// frame goes out as soon as it arrives behind [`SpeakerQueue::lead`] of silence (the rest of
/// any queued silence is cut); each later frame is written as soon as it is here, while the
/// queue is near the lead ([`SpeakerQueue::has_room`]); when the next frame is late, the
/// engine waits for it until the device would run dry at its next callback
/// ([`SpeakerQueue::must_write`], and the device wakes it then) and conceals. So a frame
/// waits for no engine tick, only for the audio queued ahead of it: one callback and one of
/// margin for a packet that comes late.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpeakerQueue {
    /// 48 kHz samples written and not yet taken by the device.
    pub queued: usize,
    /// 48 kHz samples the device took at its last callback (0 before the first).
    pub callback: usize,
}

impl SpeakerQueue {
    /// Audio queued ahead of a talk spurt's first frame, and so ahead of every frame of a
    /// spurt on a steady link: one device callback, and one more of margin for a packet that
    /// comes late (and for the engine's wake-up).
    pub fn lead(self) -> usize {
        2 * self.callback
    }

    /// Whether the device runs dry at its next callback unless written to now (concealing
    /// if nothing is here to play).
    pub fn must_write(self) -> bool {
        self.queued < self.callback
    }

    /// Whether a `frame`-long frame that is here may be written now: while the queue holds
    /// less than the lead and half a frame. Beyond that (a burst after a stall) packets wait
    /// in the jitter buffer, which trims the latency they would add.
    pub fn has_room(self, frame: usize) -> bool {
        self.queued < self.lead() + frame / 2
    }

    /// Silence to write while nobody talks, for an engine on `frame`-long frames that polls
    /// once a frame: the queue is kept a callback, a frame and [`IDLE_MARGIN`] (a late poll)
    /// ahead of the device, so it plays on without waking anyone; a talk spurt cuts it to the
    /// lead.
    pub fn idle_wanted(self, frame: usize) -> usize {
        (self.callback + frame + IDLE_MARGIN).saturating_sub(self.queued)
    }
}

/// Ring size each way: half a second of 48 kHz audio.
const RING_SAMPLES: usize = SAMPLE_RATE as usize / 2;
/// Capture: more than this waiting means the engine fell behind; drop all but the newest
/// frame.
const CAPTURE_MAX_BACKLOG: usize = 3 * FRAME_SAMPLES;
/// Playback: more than this waiting is latency nobody wants (e.g. left by a device that
/// started late); drop down to one frame.
const PLAYBACK_MAX_BACKLOG: usize = 3 * FRAME_SAMPLES;
/// Playback, while nobody talks: silence queued beyond a callback and a frame, for an engine
/// poll that comes late (5 ms).
pub const IDLE_MARGIN: usize = SAMPLE_RATE as usize / 200;

/// The engine's end of a capture ring: the engine asks how much is waiting
/// ([`CaptureReader::ready`]) and reads whole frames as soon as they are complete.
struct CaptureReader {
    ring: ring::Consumer,
    /// Frames padded with silence because they were read before the device delivered them.
    underruns: u64,
    /// Since the last [`CaptureReader::take_gaps`].
    gaps: super::CaptureGaps,
}

impl CaptureReader {
    /// Samples waiting. A backlog beyond [`CAPTURE_MAX_BACKLOG`] (the engine fell behind) is
    /// cut to the newest 20 ms first.
    fn ready(&mut self) -> usize {
        let waiting = self.ring.len();
        if waiting > CAPTURE_MAX_BACKLOG {
            self.gaps.dropped += self.ring.skip(waiting - FRAME_SAMPLES);
        }
        self.ring.len()
    }

    fn read(&mut self, out: &mut [f32]) {
        let n = self.ring.pop_slice(out);
        if n < out.len() {
            out[n..].fill(0.0);
            self.underruns += 1;
            self.gaps.padded += out.len() - n;
        }
    }

    fn take_gaps(&mut self) -> super::CaptureGaps {
        std::mem::take(&mut self.gaps)
    }
}

/// The device's own latency as cpal reports it per callback (capture → callback for a
/// microphone, callback → playback for a speaker): atomics only, written in the callback,
/// read for logs and benchmarks.
#[derive(Debug, Default)]
pub struct DelayGauge {
    sum_us: AtomicU64,
    count: AtomicU64,
    max_us: AtomicU64,
}

impl DelayGauge {
    pub fn record(&self, d: std::time::Duration) {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        self.sum_us.fetch_add(us, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
        self.max_us.fetch_max(us, Ordering::Relaxed);
    }

    /// Mean and largest delay in ms, if any callback ran.
    pub fn mean_max_ms(&self) -> Option<(f64, f64)> {
        let n = self.count.load(Ordering::Relaxed);
        (n > 0).then(|| {
            let sum = self.sum_us.load(Ordering::Relaxed) as f64;
            let max = self.max_us.load(Ordering::Relaxed) as f64;
            (sum / n as f64 / 1000.0, max / 1000.0)
        })
    }
}

impl fmt::Display for DelayGauge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.mean_max_ms() {
            Some((mean, max)) => write!(f, "mean {mean:.1} ms, max {max:.1} ms"),
            None => f.write_str("unknown"),
        }
    }
}

/// The callback's end of a capture ring: any channel count and rate in, 48 kHz mono out.
struct CaptureWriter {
    ring: ring::Producer,
    resampler: PushResampler,
    channels: usize,
    /// Converted samples waiting to be pushed (pushing in chunks keeps atomics off the
    /// per-sample path).
    pending: [f32; 256],
    len: usize,
    /// The engine, woken once a whole frame (`frame` samples) waits, so that it is encoded
    /// and sent at once rather than at the engine's next poll.
    wake: Arc<WakeSlot>,
    frame: usize,
    /// Whether the engine was woken for the frame that waits now.
    woken: bool,
}

impl CaptureWriter {
    fn new(ring: ring::Producer, device_rate: u32, channels: u16) -> Self {
        Self {
            ring,
            resampler: PushResampler::new(device_rate, SAMPLE_RATE),
            channels: usize::from(channels.max(1)),
            pending: [0.0; 256],
            len: 0,
            wake: Arc::default(),
            frame: usize::MAX,
            woken: false,
        }
    }

    /// Wakes whoever `wake` will hold once `frame` samples wait.
    fn waking(mut self, wake: Arc<WakeSlot>, frame: usize) -> Self {
        (self.wake, self.frame) = (wake, frame);
        self
    }

    /// One callback's interleaved samples, already as f32.
    fn write(&mut self, interleaved: impl Iterator<Item = f32>) {
        let mut sum = 0.0;
        let mut k = 0;
        for x in interleaved {
            sum += x;
            k += 1;
            if k == self.channels {
                let mono = sum / self.channels as f32;
                (sum, k) = (0.0, 0);
                let (pending, len, ring) = (&mut self.pending, &mut self.len, &mut self.ring);
                self.resampler.push(mono, |y| {
                    pending[*len] = y;
                    *len += 1;
                    if *len == pending.len() {
                        // Full ring: the engine is not reading; newest audio is dropped.
                        ring.push_slice(&pending[..]);
                        *len = 0;
                    }
                });
            }
        }
        self.ring.push_slice(&self.pending[..self.len]);
        self.len = 0;
        if self.ring.len() < self.frame {
            self.woken = false;
        } else if !self.woken {
            self.woken = true;
            self.wake.wake();
        }
    }
}

/// The callback's end of a playback ring: 48 kHz mono in, any channel count and rate out.
struct PlaybackReader {
    ring: ring::Consumer,
    /// What the device played, at 48 kHz and in order: every sample taken from `ring`, and
    /// silence for as long as it played silence while dry; not what was cut or skipped. The
    /// engine's end hands it to the echo canceller as its reference, so the reference keeps
    /// the speaker's time whatever the ring went through.
    played: ring::Producer,
    /// 48 kHz samples per device sample, and the part of a 48 kHz sample of silence played
    /// while dry not yet told (`played` counts whole samples).
    input_per_output: f64,
    dry_part: f64,
    resampler: PullResampler,
    channels: usize,
    /// Whether the last callback played audio (an underrun is counted once per gap).
    playing: bool,
    /// Times the ring ran dry while playing (the device then plays silence until refilled);
    /// shared with the engine's end, which reports it.
    underruns: Arc<AtomicU64>,
    /// 48 kHz samples the last callback took; shared with the engine's end, which keeps the
    /// ring that far ahead.
    callback: Arc<AtomicUsize>,
    /// Where the engine's end cut queued silence: samples before this ring position are
    /// dropped unplayed (see [`SpeakerQueue`]); and the last cut done.
    cut: Arc<AtomicUsize>,
    last_cut: usize,
    /// The engine, woken when a callback leaves less than the next one takes; and whether it
    /// was, for this shortfall.
    wake: Arc<WakeSlot>,
    woken: bool,
}

impl PlaybackReader {
    fn new(ring: ring::Consumer, played: ring::Producer, device_rate: u32, channels: u16) -> Self {
        Self {
            ring,
            played,
            input_per_output: f64::from(SAMPLE_RATE) / f64::from(device_rate.max(1)),
            dry_part: 0.0,
            resampler: PullResampler::new(SAMPLE_RATE, device_rate),
            channels: usize::from(channels.max(1)),
            playing: false,
            underruns: Arc::new(AtomicU64::new(0)),
            callback: Arc::new(AtomicUsize::new(0)),
            cut: Arc::new(AtomicUsize::new(0)),
            last_cut: 0,
            wake: Arc::default(),
            woken: false,
        }
    }

    /// Fills one callback's interleaved buffer through `put(index, sample)`.
    fn read(&mut self, samples: usize, put: impl FnMut(usize, f32)) {
        let needed = self.play(samples, put);
        // Less than the next callback takes: the engine writes (or conceals) now.
        if !self.playing || self.ring.len() >= needed {
            self.woken = false;
        } else if !self.woken {
            self.woken = true;
            self.wake.wake();
        }
    }

    /// [`Self::read`] without the wake: the 48 kHz samples this callback needed.
    fn play(&mut self, samples: usize, mut put: impl FnMut(usize, f32)) -> usize {
        let frames = samples / self.channels;
        let needed = self.resampler.input_needed(frames);
        self.callback.store(needed, Ordering::Relaxed);
        let cut = self.cut.load(Ordering::Acquire);
        if cut != self.last_cut {
            self.last_cut = cut;
            self.ring.skip_to(cut);
        }
        let waiting = self.ring.len();
        if waiting < needed {
            // Dry: silence rather than a partial buffer; counted once per gap.
            if self.playing {
                self.playing = false;
                self.underruns.fetch_add(1, Ordering::Relaxed);
            }
            (0..samples).for_each(|i| put(i, 0.0));
            let dry = self.dry_part + frames as f64 * self.input_per_output;
            self.dry_part = dry.fract();
            (0..dry as usize).for_each(|_| {
                self.played.push(0.0);
            });
            return needed;
        }
        self.playing = true;
        if waiting > PLAYBACK_MAX_BACKLOG {
            self.ring.skip(waiting - FRAME_SAMPLES.max(needed));
        }
        let (ring, played) = (&mut self.ring, &mut self.played);
        for f in 0..frames {
            let y = self.resampler.next(|| {
                let x = ring.pop().unwrap_or(0.0);
                // Full only if the engine stopped taking it: then the echo canceller is
                // off, or lost anyway.
                played.push(x);
                x
            });
            for c in 0..self.channels {
                put(f * self.channels + c, y);
            }
        }
        needed
    }
}

#[cfg(feature = "devices")]
mod backend;

#[cfg(feature = "devices")]
pub use backend::{DeviceSink, DeviceSource, list_devices};

#[cfg(not(feature = "devices"))]
mod absent;

#[cfg(not(feature = "devices"))]
pub use absent::{DeviceSink, DeviceSource, list_devices};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::test_util::sine;

    #[test]
    fn the_screen_gets_a_short_reason_and_the_log_the_library_s_words() {
        let alsa = "ALSA function 'snd_pcm_open' failed with error 'No such file or directory (2)'";
        let failed = DeviceError::Failed {
            what: "microphone",
            name: "default".into(),
            reason: alsa.into(),
        };
        assert_eq!(
            failed.summary(),
            "\"default\" cannot be opened (see the log)"
        );
        assert!(failed.to_string().contains(alsa), "the log keeps it all");
        let none = DeviceError::NoDevice {
            what: "speaker",
            reason: "no PulseAudio server (Connection refused)".into(),
        };
        assert_eq!(none.summary(), "no sound server or card found");
    }

    #[test]
    fn a_device_name_chooses_pulseaudio_alsa_or_pulseaudio_then_alsa() {
        let either = |name| Route::Pulse {
            name,
            or_alsa: true,
        };
        assert_eq!(route(None), either(None));
        assert_eq!(route(Some("  ")), either(None));
        assert_eq!(route(Some("default")), either(None), "the system's default");
        assert_eq!(route(Some("spk")), either(Some("spk")));
        assert_eq!(
            route(Some("hw:CARD=PCH,DEV=0")),
            either(Some("hw:CARD=PCH,DEV=0"))
        );
        assert_eq!(
            route(Some("pulse:alsa_output.pci")),
            Route::Pulse {
                name: Some("alsa_output.pci"),
                or_alsa: false
            }
        );
        assert_eq!(
            route(Some("pulse:")),
            Route::Pulse {
                name: None,
                or_alsa: false
            }
        );
        assert_eq!(route(Some("alsa:null")), Route::Alsa(Some("null")));
        assert_eq!(route(Some("alsa: ")), Route::Alsa(None));
    }

    #[test]
    fn capture_path_turns_stereo_44k1_into_48k_mono_frames_as_soon_as_complete() {
        let (p, c) = ring::ring(RING_SAMPLES);
        let mut writer = CaptureWriter::new(p, 44_100, 2);
        let mut reader = CaptureReader {
            ring: c,
            underruns: 0,
            gaps: Default::default(),
        };
        assert_eq!(reader.ready(), 0, "nothing captured yet");

        // 0.5 s of a tone on the left channel only (mono is half of it), 10 ms per callback,
        // the engine taking every frame that is complete after each.
        let left = sine(1000.0, 0.8, 22_050, 44_100);
        let mut frame = [0.0f32; FRAME_SAMPLES];
        let mut got = Vec::new();
        let mut most_waiting = 0;
        for chunk in left.chunks(441) {
            writer.write(chunk.iter().flat_map(|&x| [x, 0.0]));
            for _ in 0..reader.ready() / FRAME_SAMPLES {
                reader.read(&mut frame);
                got.extend_from_slice(&frame);
            }
            most_waiting = most_waiting.max(reader.ring.len());
        }
        assert!(
            most_waiting < FRAME_SAMPLES,
            "a complete frame never waits: {most_waiting}"
        );
        assert_eq!(
            got.len(),
            24 * FRAME_SAMPLES,
            "every complete frame handed out"
        );
        let got = &got[got.len() - 15 * FRAME_SAMPLES..];
        let f = crate::audio::analysis::dominant_frequency(got, SAMPLE_RATE).unwrap();
        assert!((f - 1000.0).abs() < 2.0, "{f} Hz");
        let peak = got.iter().fold(0.0f32, |m, x| m.max(x.abs()));
        assert!((peak - 0.4).abs() < 0.01, "averaged to mono: peak {peak}");
        assert_eq!(reader.underruns, 0);
    }

    #[test]
    fn capture_backlog_is_cut_to_the_newest_frame_and_early_reads_are_counted() {
        let (mut p, c) = ring::ring(RING_SAMPLES);
        let mut reader = CaptureReader {
            ring: c,
            underruns: 0,
            gaps: Default::default(),
        };
        let backlog: Vec<f32> = (0..10 * FRAME_SAMPLES).map(|i| i as f32).collect();
        p.push_slice(&backlog);
        assert_eq!(reader.ready(), FRAME_SAMPLES, "latency cut");
        let mut frame = [0.0; FRAME_SAMPLES];
        reader.read(&mut frame);
        assert_eq!(
            frame[..],
            backlog[9 * FRAME_SAMPLES..],
            "the newest audio kept"
        );
        reader.read(&mut frame);
        assert_eq!(frame, [0.0; FRAME_SAMPLES]);
        assert_eq!(reader.underruns, 1);
        // What the echo canceller's reference is moved by.
        let gaps = reader.take_gaps();
        assert_eq!(
            (gaps.dropped, gaps.padded),
            (9 * FRAME_SAMPLES, FRAME_SAMPLES)
        );
        assert_eq!(reader.take_gaps(), Default::default(), "told once");
    }

    /// A playback reader on `c` for a device at `rate` with `channels`, and what it says
    /// the device played.
    fn playback_reader(
        c: ring::Consumer,
        rate: u32,
        channels: u16,
    ) -> (PlaybackReader, ring::Consumer) {
        let (tap, played) = ring::ring(RING_SAMPLES);
        (PlaybackReader::new(c, tap, rate, channels), played)
    }

    fn drain(c: &mut ring::Consumer) -> Vec<f32> {
        let mut out = vec![0.0; c.len()];
        c.pop_slice(&mut out);
        out
    }

    #[test]
    fn the_speaker_says_what_it_played_dry_silence_in_and_cut_silence_out() {
        let (mut p, c) = ring::ring(RING_SAMPLES);
        let (mut reader, mut played) = playback_reader(c, SAMPLE_RATE, 1);
        let mut out = Vec::new();
        let mut play = |reader: &mut PlaybackReader| {
            let mut buf = [9.0f32; 120];
            reader.read(120, |i, y| buf[i] = y);
            out.extend_from_slice(&buf);
        };
        // Dry before anything is written; 10 ms of silence of which a spurt cuts all but
        // 240 samples; the spurt (each sample its own value), a gap in it (dry), its end; a
        // backlog to skip.
        play(&mut reader);
        p.push_slice(&[0.0; 480]);
        let cut = p.written() - 240;
        let spurt: Vec<f32> = (1..=960).map(|i| 0.001 * i as f32).collect();
        p.push_slice(&spurt[..600]);
        reader.cut.store(cut, Ordering::Release);
        for _ in 0..8 {
            play(&mut reader);
        }
        p.push_slice(&spurt[600..]);
        for _ in 0..5 {
            play(&mut reader);
        }
        p.push_slice(&vec![0.25; 4 * FRAME_SAMPLES]);
        play(&mut reader);
        let played = drain(&mut played);
        assert!(out.contains(&0.25), "the backlog's last frame played");
        // The resampler holds one sample taken, not yet played.
        assert_eq!(played.len(), out.len() + 1, "the cut and the skip left out");
        let at = |x: &[f32], v: f32| x.iter().position(|&y| y == v);
        let mut off = 0;
        assert!(
            at(&out, spurt[800]).is_some(),
            "the spurt played to near its end"
        );
        for &v in &spurt {
            let (heard, told) = match (at(&out, v), at(&played, v)) {
                (Some(heard), Some(told)) => (heard, told),
                (None, None) => continue,
                either => panic!("{v}: (played, told) at {either:?}"),
            };
            // The one sample taken ahead of a gap is told at the gap's start.
            if told != heard {
                off += 1;
                assert!(told < heard, "{v}: told at {told}, played at {heard}");
            }
        }
        assert!(
            off <= 2,
            "one per gap (two): {off} spurt samples told elsewhere"
        );
    }

    #[test]
    fn a_speaker_at_another_rate_says_what_it_played_at_48_khz() {
        let (mut p, c) = ring::ring(RING_SAMPLES);
        let (mut reader, mut played) = playback_reader(c, 44_100, 2);
        let tone = sine(440.0, 0.5, 14_400, SAMPLE_RATE);
        let mut out = vec![0.0f32; 2 * 441];
        // 0.3 s of 10 ms callbacks, the tone written as they take it; then 0.1 s dry.
        for chunk in tone.chunks(480) {
            p.push_slice(chunk);
            reader.read(out.len(), |i, y| out[i] = y);
        }
        for _ in 0..10 {
            reader.read(out.len(), |i, y| out[i] = y);
        }
        let played = drain(&mut played);
        // Dry until a callback's worth waited; what is left is less than one (never played).
        let first = played.iter().position(|&x| x != 0.0).unwrap();
        assert!(
            first <= 481,
            "one callback dry at most (the tone starts at 0): {first}"
        );
        let taken = tone.len() - reader.ring.len() - 1;
        assert!(taken > tone.len() - 490, "{taken} taken");
        assert!(
            played[first..first + taken] == tone[1..=taken],
            "the tone, in order, as taken"
        );
        let n = played.len() as i64;
        assert!((n - 19_200).abs() <= 2, "0.4 s at 48 kHz: {n}");
        let after = &played[first + taken..];
        assert!(after.iter().all(|&x| x == 0.0), "then silence");
    }

    #[test]
    fn playback_plays_every_channel_in_order_and_counts_an_underrun_once_per_gap() {
        let (mut p, c) = ring::ring(RING_SAMPLES);
        let (mut reader, _) = playback_reader(c, SAMPLE_RATE, 2);
        let mut out = vec![9.0f32; 2 * 480];
        reader.read(out.len(), |i, y| out[i] = y);
        assert!(out.iter().all(|&x| x == 0.0), "silence before any audio");
        assert_eq!(reader.underruns.load(Ordering::Relaxed), 0, "not a gap");
        let seen = reader.callback.load(Ordering::Relaxed);
        assert!((480..=483).contains(&seen), "callback size seen: {seen}");

        let tone = sine(440.0, 0.5, PLAYBACK_MAX_BACKLOG, SAMPLE_RATE);
        p.push_slice(&tone);
        let mut played: Vec<f32> = Vec::new();
        for _ in 0..PLAYBACK_MAX_BACKLOG / 480 - 1 {
            reader.read(out.len(), |i, y| out[i] = y);
            assert!(
                out.chunks(2).all(|lr| lr[0] == lr[1]),
                "same on both channels"
            );
            played.extend(out.iter().step_by(2));
        }
        // Played in order, sample for sample (equal rates pass through exactly).
        assert_eq!(played, tone[..played.len()]);
        // Less than a callback's worth left, then nothing: silence rather than a partial
        // buffer, counted once however long the gap lasts.
        reader.read(out.len(), |i, y| out[i] = y);
        assert!(out.iter().all(|&x| x == 0.0));
        reader.read(out.len(), |i, y| out[i] = y);
        assert_eq!(reader.underruns.load(Ordering::Relaxed), 1);
        // Plays again as soon as a callback's worth is there.
        p.push_slice(&tone[..960]);
        reader.read(out.len(), |i, y| out[i] = y);
        assert!(out.iter().any(|&x| x.abs() > 0.1), "playing again");
        assert_eq!(reader.underruns.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn playback_backlog_is_cut() {
        let (mut p, c) = ring::ring(RING_SAMPLES);
        let (mut reader, _) = playback_reader(c, SAMPLE_RATE, 1);
        p.push_slice(&vec![0.5; 10 * FRAME_SAMPLES]);
        let mut out = vec![0.0f32; 480];
        reader.read(out.len(), |i, y| out[i] = y);
        let left = reader.ring.len();
        assert!(
            (FRAME_SAMPLES - 483..=FRAME_SAMPLES - 480).contains(&left),
            "cut to a frame, then one callback taken: {left} left"
        );
    }

    #[test]
    fn the_speaker_queue_says_when_a_frame_must_may_or_need_not_be_written() {
        let q = |queued| SpeakerQueue {
            queued,
            callback: 120,
        };
        // 2.5 ms callbacks: a spurt's lead is two of them.
        assert_eq!(q(0).lead(), 240);
        assert!(q(119).must_write() && !q(120).must_write());
        // A 20 ms frame that is here goes out while less than the lead and half a frame wait.
        assert!(q(719).has_room(960) && !q(720).has_room(960));
        // Silence while nobody talks: a callback, a frame (the poll) and 5 ms.
        assert_eq!(q(0).idle_wanted(960), 120 + 960 + 240);
        assert_eq!(q(1000).idle_wanted(960), 320);
        assert_eq!(q(1320).idle_wanted(960), 0);
        assert_eq!(q(0).idle_wanted(240), 600, "5 ms frames");
    }

    /// A wake that counts its calls.
    fn counting_wake() -> (Arc<WakeSlot>, Arc<AtomicU64>) {
        let (slot, count) = (Arc::new(WakeSlot::default()), Arc::new(AtomicU64::new(0)));
        let c = count.clone();
        slot.set(Arc::new(move || {
            c.fetch_add(1, Ordering::Relaxed);
        }));
        (slot, count)
    }

    #[test]
    fn the_microphone_wakes_the_engine_once_per_complete_frame() {
        let (p, mut c) = ring::ring(RING_SAMPLES);
        let (slot, woken) = counting_wake();
        let mut writer = CaptureWriter::new(p, SAMPLE_RATE, 1).waking(slot, 960);
        let period = [0.1f32; 120];
        for _ in 0..7 {
            writer.write(period.iter().copied());
        }
        assert_eq!(
            woken.load(Ordering::Relaxed),
            0,
            "840 samples: no frame yet"
        );
        writer.write(period.iter().copied());
        assert_eq!(woken.load(Ordering::Relaxed), 1, "a frame is complete");
        writer.write(period.iter().copied());
        assert_eq!(woken.load(Ordering::Relaxed), 1, "once for that frame");
        c.skip(960);
        for _ in 0..7 {
            writer.write(period.iter().copied());
        }
        assert_eq!(woken.load(Ordering::Relaxed), 2, "and again for the next");
    }

    #[test]
    fn the_speaker_drops_cut_silence_and_wakes_the_engine_before_it_runs_dry() {
        let (mut p, c) = ring::ring(RING_SAMPLES);
        let (mut reader, _) = playback_reader(c, SAMPLE_RATE, 1);
        let (slot, woken) = counting_wake();
        reader.wake = slot;
        let mut out = vec![0.0f32; 120];
        let mut play = |reader: &mut PlaybackReader| {
            reader.read(120, |i, y| out[i] = y);
            out.clone()
        };
        // 10 ms of silence queued, then a talk spurt: all but 240 samples of it are cut.
        p.push_slice(&[0.0; 480]);
        let cut = p.written() - 240;
        p.push_slice(&[0.5; 480]);
        reader.cut.store(cut, Ordering::Release);
        assert_eq!(play(&mut reader), vec![0.0; 120]);
        assert_eq!(play(&mut reader), vec![0.0; 120]);
        assert_eq!(play(&mut reader), vec![0.5; 120], "the spurt, 5 ms after");
        assert_eq!(woken.load(Ordering::Relaxed), 0, "240 left");
        play(&mut reader);
        assert_eq!(
            woken.load(Ordering::Relaxed),
            0,
            "120 left: the next callback's"
        );
        play(&mut reader);
        assert_eq!(
            woken.load(Ordering::Relaxed),
            1,
            "nothing left for the next"
        );
        play(&mut reader);
        assert_eq!(woken.load(Ordering::Relaxed), 1, "not again while dry");
        assert_eq!(reader.underruns.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn delay_gauge_keeps_mean_and_max() {
        let g = DelayGauge::default();
        assert_eq!(g.to_string(), "unknown");
        g.record(std::time::Duration::from_millis(10));
        g.record(std::time::Duration::from_millis(30));
        assert_eq!(g.mean_max_ms(), Some((20.0, 30.0)));
        assert_eq!(g.to_string(), "mean 20.0 ms, max 30.0 ms");
    }

    #[test]
    fn device_info_says_when_it_converts() {
        let mut info = DeviceInfo {
            name: "default".into(),
            sample_rate: 48_000,
            channels: 1,
            format: "f32".into(),
        };
        assert_eq!(info.to_string(), "default (48000 Hz, 1 ch, f32)");
        info.sample_rate = 44_100;
        info.channels = 2;
        assert_eq!(
            info.to_string(),
            "default (44100 Hz, 2 ch, f32 → 48 kHz mono)"
        );
    }

    #[test]
    fn device_specs_parse_and_print() {
        use crate::audio::{SinkSpec, SourceSpec};
        assert_eq!(
            SourceSpec::parse("device"),
            Ok(SourceSpec::Device { name: None })
        );
        assert_eq!(
            SourceSpec::parse("device:USB Headset"),
            Ok(SourceSpec::Device {
                name: Some("USB Headset".into())
            })
        );
        assert_eq!(
            SinkSpec::parse("device"),
            Ok(SinkSpec::Device { name: None })
        );
        assert_eq!(
            SinkSpec::parse("device:hw:CARD=PCH,DEV=0")
                .unwrap()
                .to_string(),
            "device:hw:CARD=PCH,DEV=0"
        );
        assert!(SourceSpec::parse("device:").is_err());
        assert!(SinkSpec::parse("device: ").is_err());
    }
}
