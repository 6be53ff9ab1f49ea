//! The device side of [`super`]: a PulseAudio stream ([`super::pulse`]) when a server is
//! there and the name asks for none of ALSA's; otherwise the device found by name (cpal),
//! the microphone on our own ALSA capture thread ([`super::capture`]), the speaker as a cpal
//! stream whose callback reads its ring. And listing what exists.
//!
//! The data callbacks it builds must never lock, allocate or log: they convert, move samples
//! through the ring and count in atomics. Only the error callbacks log, and rarely.

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use cpal::traits::{DeviceTrait, HostTrait, StreamTrait};
use cpal::{
    BufferSize, FromSample, SampleFormat, SizedSample, StreamConfig, SupportedBufferSize,
    SupportedStreamConfig,
};

use super::capture::{self, AlsaCapture, Granted, Trouble};
use super::pulse::{self, Job, PulseError, PulseStream};
use super::{
    CaptureReader, CaptureWriter, DelayGauge, DeviceChange, DeviceError, DeviceInfo, Direction,
    Moves, PlaybackReader, RING_SAMPLES, Route, SpeakerQueue, Wake, WakeSlot, ring, route,
};
use crate::audio::frame::{FrameSize, SAMPLE_RATE};
use crate::audio::{AudioSink, AudioSource, CaptureGaps, SinkError};

/// A microphone, as a 48 kHz mono [`AudioSource`]. It is read on our own ALSA capture
/// thread ([`super::capture`]), not cpal's, which spins through ALSA's PulseAudio plugin.
pub struct DeviceSource {
    info: DeviceInfo,
    reader: CaptureReader,
    /// Set when the stream failed (e.g. the device was unplugged).
    failed: Arc<AtomicBool>,
    /// Where the device went (PulseAudio), and whether that was told.
    changes: Changes,
    /// Times the device's buffer overflowed (the capture thread was late).
    overruns: Arc<AtomicU64>,
    /// From capture to the capture thread, as the device reports it.
    delay: Arc<DelayGauge>,
    /// The engine's wake, called by the capture thread once a frame is complete.
    wake: Arc<WakeSlot>,
    /// Dropping it stops the thread and closes the device.
    _stream: Capture,
}

/// A device's moves as the engine has been told them.
#[derive(Debug, Default)]
struct Changes {
    moves: Arc<Moves>,
    seen: u64,
    lost_told: bool,
}

impl Changes {
    /// What changed since the last call: a move (and `info` follows it), or the loss.
    fn take(&mut self, info: &mut DeviceInfo, failed: &AtomicBool) -> Option<DeviceChange> {
        if let Some(device) = self.moves.since(&mut self.seen) {
            info.name = format!("pulse:{device}");
            return Some(DeviceChange::Now(info.to_string()));
        }
        if failed.load(Ordering::Relaxed) && !self.lost_told {
            self.lost_told = true;
            return Some(DeviceChange::Lost);
        }
        None
    }
}

/// A PulseAudio stream for `job`, its moves followed.
fn open_pulse_stream(
    name: Option<&str>,
    job: Job,
    delay: &Arc<DelayGauge>,
    failed: &Arc<AtomicBool>,
) -> Result<(PulseStream, pulse::Opened, Changes), PulseError> {
    let changes = Changes::default();
    let (stream, opened) = PulseStream::open(
        name,
        job,
        delay.clone(),
        failed.clone(),
        changes.moves.clone(),
    )?;
    Ok((stream, opened, changes))
}

/// The thread that feeds a microphone's ring (held to be dropped: that stops it).
#[allow(dead_code)]
enum Capture {
    Alsa(AlsaCapture),
    Pulse(PulseStream),
}

/// What feeds a speaker from its ring (held to be dropped: that stops it).
#[allow(dead_code)]
enum Playback {
    Cpal(cpal::Stream),
    Pulse(PulseStream),
}

/// A speaker, as a 48 kHz mono [`AudioSink`].
pub struct DeviceSink {
    ring: ring::Producer,
    info: DeviceInfo,
    failed: Arc<AtomicBool>,
    changes: Changes,
    /// From the callback to playback, as the device reports it.
    delay: Arc<DelayGauge>,
    /// Samples dropped because the device was not taking them.
    overflow: u64,
    /// Times the device found the ring dry while playing (counted in its callback).
    underruns: Arc<AtomicU64>,
    /// 48 kHz samples the device's last callback took (set in its callback).
    callback: Arc<AtomicUsize>,
    /// Ring position before which the device drops what waits (queued silence cut).
    cut: Arc<AtomicUsize>,
    /// Where the silence written last began (ring position), while only silence followed.
    silence_from: Option<usize>,
    /// The engine's wake, called by the device when the ring is about to run dry.
    wake: Arc<WakeSlot>,
    /// What the device played (its callback's account): the echo canceller's reference.
    played: ring::Consumer,
    _stream: Playback,
}

impl DeviceSource {
    /// Opens `name` (matched against device ids and names) or the default microphone, for
    /// an engine on 20 ms frames.
    pub fn open(name: Option<&str>) -> Result<Self, DeviceError> {
        Self::open_for(name, FrameSize::default())
    }

    /// [`DeviceSource::open`] for an engine on `frame`-long frames (the device period
    /// follows it).
    pub fn open_for(name: Option<&str>, frame: FrameSize) -> Result<Self, DeviceError> {
        let period = requested_period(SAMPLE_RATE, microphone_period_us(frame));
        let pulse = requested_period(SAMPLE_RATE, PULSE_PERIOD_US);
        let wake = Arc::new(WakeSlot::default());
        open_routed(
            Direction::Input,
            name,
            |name| Self::open_pulse(name, pulse, frame, wake.clone()),
            |name| Self::open_alsa(name, period, frame, wake.clone()),
        )
    }

    /// On PulseAudio: the server delivers 48 kHz mono, `period` frames at a time.
    fn open_pulse(
        name: Option<&str>,
        period: Option<usize>,
        frame: FrameSize,
        wake: Arc<WakeSlot>,
    ) -> Result<Self, PulseError> {
        let failed = Arc::new(AtomicBool::new(false));
        let delay = Arc::new(DelayGauge::default());
        let (producer, consumer) = ring::ring(RING_SAMPLES);
        let job = Job::Record {
            fragment: period,
            writer: Box::new(
                CaptureWriter::new(producer, SAMPLE_RATE, 1).waking(wake.clone(), frame.samples()),
            ),
        };
        let (stream, opened, changes) = open_pulse_stream(name, job, &delay, &failed)?;
        tracing::debug!(device = %opened.device, ?period, "microphone opened on PulseAudio");
        Ok(Self {
            info: pulse_info(&opened),
            reader: CaptureReader {
                ring: consumer,
                underruns: 0,
                gaps: Default::default(),
            },
            failed,
            changes,
            overruns: Arc::new(AtomicU64::new(0)),
            delay,
            wake,
            _stream: Capture::Pulse(stream),
        })
    }

    /// On ALSA: our own capture thread on the device cpal finds.
    fn open_alsa(
        name: Option<&str>,
        period: Option<usize>,
        frame: FrameSize,
        wake: Arc<WakeSlot>,
    ) -> Result<Self, DeviceError> {
        let dir = Direction::Input;
        // cpal finds the device (ids, descriptions, the default); its id is the ALSA PCM.
        let (_, label) = find(dir, name)?;
        let failed = Arc::new(AtomicBool::new(false));
        let overruns = Arc::new(AtomicU64::new(0));
        let delay = Arc::new(DelayGauge::default());
        let (producer, consumer) = ring::ring(RING_SAMPLES);
        let deliver = |g: &Granted| -> capture::Deliver {
            let delay = delay.clone();
            let mut writer = CaptureWriter::new(producer, g.rate, g.channels)
                .waking(wake.clone(), frame.samples());
            Box::new(move |samples: &[f32], d| {
                delay.record(d);
                writer.write(samples.iter().copied());
            })
        };
        let on_error: capture::OnError = {
            let (failed, overruns, name) = (failed.clone(), overruns.clone(), label.clone());
            Box::new(move |trouble| match trouble {
                Trouble::Overrun => {
                    let n = overruns.fetch_add(1, Ordering::Relaxed) + 1;
                    if n <= 3 || n.is_multiple_of(1000) {
                        tracing::warn!(device = %name, overruns = n, "microphone overrun: audio was lost");
                    }
                }
                Trouble::Suspended => {
                    tracing::info!(device = %name, "microphone suspended; resuming")
                }
                Trouble::Failed(reason) => {
                    failed.store(true, Ordering::Relaxed);
                    tracing::warn!(device = %name, %reason, "microphone failed");
                }
            })
        };
        let (stream, g) = AlsaCapture::open(&label, SAMPLE_RATE, period, deliver, on_error)
            .map_err(|reason| DeviceError::Failed {
                what: dir.what(),
                name: label.clone(),
                reason,
            })?;
        tracing::debug!(device = %label, period = g.period, rate = g.rate, channels = g.channels, format = g.format.name(), "microphone opened");
        Ok(Self {
            info: DeviceInfo {
                name: label,
                sample_rate: g.rate,
                channels: g.channels,
                format: g.format.name().into(),
            },
            reader: CaptureReader {
                ring: consumer,
                underruns: 0,
                gaps: Default::default(),
            },
            failed,
            changes: Changes::default(),
            overruns,
            delay,
            wake,
            _stream: Capture::Alsa(stream),
        })
    }

    pub fn info(&self) -> &DeviceInfo {
        &self.info
    }

    /// Whether the device reported an error since it opened (e.g. unplugged).
    pub fn failed(&self) -> bool {
        self.failed.load(Ordering::Relaxed)
    }

    /// Captured 48 kHz samples waiting for the engine (proof the device delivers).
    pub fn buffered(&self) -> usize {
        self.reader.ring.len()
    }
}

impl AudioSource for DeviceSource {
    fn next_frame(&mut self, out: &mut [f32]) {
        self.reader.read(out);
    }

    fn samples_ready(&mut self) -> Option<usize> {
        Some(self.reader.ready())
    }

    fn device_change(&mut self) -> Option<DeviceChange> {
        self.changes.take(&mut self.info, &self.failed)
    }

    fn set_wake(&mut self, wake: Wake) {
        self.wake.set(wake);
    }

    fn take_gaps(&mut self) -> CaptureGaps {
        self.reader.take_gaps()
    }
}

impl Drop for DeviceSource {
    fn drop(&mut self) {
        let overruns = self.overruns.load(Ordering::Relaxed);
        tracing::debug!(device = %self.info, underruns = self.reader.underruns, overruns, failed = self.failed(), device_delay = %self.delay, "microphone closed");
    }
}

impl DeviceSink {
    /// Opens `name` (matched against device ids and names) or the default speaker, for an
    /// engine on 20 ms frames.
    pub fn open(name: Option<&str>) -> Result<Self, DeviceError> {
        Self::open_for(name, FrameSize::default())
    }

    /// [`DeviceSink::open`] for an engine on `frame`-long frames (the device period follows
    /// it: [`speaker_period_us`]).
    pub fn open_for(name: Option<&str>, frame: FrameSize) -> Result<Self, DeviceError> {
        let period_us = speaker_period_us(frame);
        open_routed(
            Direction::Output,
            name,
            |name| Self::open_pulse(name, PULSE_PERIOD_US),
            |name| Self::open_alsa(name, period_us),
        )
    }

    /// On PulseAudio: the server asks for a speaker period at a time and holds two
    /// (its device's buffer included), as ALSA's plugin would with our period.
    fn open_pulse(name: Option<&str>, period_us: u32) -> Result<Self, PulseError> {
        let failed = Arc::new(AtomicBool::new(false));
        let delay = Arc::new(DelayGauge::default());
        let (producer, consumer) = ring::ring(RING_SAMPLES);
        let (tap, played) = ring::ring(RING_SAMPLES);
        let reader = PlaybackReader::new(consumer, tap, SAMPLE_RATE, 1);
        let shared = SinkShared::of(&reader, played);
        let request = requested_period(SAMPLE_RATE, period_us);
        let job = Job::Playback {
            request,
            target: request.map(|r| r * SPEAKER_PULSE_PERIODS),
            reader,
        };
        let (stream, opened, changes) = open_pulse_stream(name, job, &delay, &failed)?;
        tracing::debug!(device = %opened.device, ?request, "speaker opened on PulseAudio");
        Ok(Self::new(
            producer,
            pulse_info(&opened),
            failed,
            changes,
            delay,
            shared,
            Playback::Pulse(stream),
        ))
    }

    /// On ALSA, through cpal.
    fn open_alsa(name: Option<&str>, period_us: u32) -> Result<Self, DeviceError> {
        let dir = Direction::Output;
        let (device, label) = find(dir, name)?;
        let config = choose_config(&device, dir, &label)?;
        let failed = Arc::new(AtomicBool::new(false));
        let delay = Arc::new(DelayGauge::default());
        let open = |buffer_size| {
            let (producer, consumer) = ring::ring(RING_SAMPLES);
            let (tap, played) = ring::ring(RING_SAMPLES);
            let reader =
                PlaybackReader::new(consumer, tap, config.sample_rate(), config.channels());
            let shared = SinkShared::of(&reader, played);
            let on_error = error_callback(dir, &label, failed.clone());
            let stream_config = StreamConfig {
                buffer_size,
                ..config.config()
            };
            let stream = match config.sample_format() {
                SampleFormat::F32 => {
                    output::<f32>(&device, stream_config, reader, delay.clone(), on_error)
                }
                SampleFormat::F64 => {
                    output::<f64>(&device, stream_config, reader, delay.clone(), on_error)
                }
                SampleFormat::I8 => {
                    output::<i8>(&device, stream_config, reader, delay.clone(), on_error)
                }
                SampleFormat::I16 => {
                    output::<i16>(&device, stream_config, reader, delay.clone(), on_error)
                }
                SampleFormat::I32 => {
                    output::<i32>(&device, stream_config, reader, delay.clone(), on_error)
                }
                SampleFormat::U8 => {
                    output::<u8>(&device, stream_config, reader, delay.clone(), on_error)
                }
                SampleFormat::U16 => {
                    output::<u16>(&device, stream_config, reader, delay.clone(), on_error)
                }
                other => return Err(unsupported(dir, &label, other)),
            };
            Ok((start(stream, dir, &label)?, (producer, shared)))
        };
        let (stream, (producer, shared)) = open_with_period(&config, dir, period_us, &label, open)?;
        Ok(Self::new(
            producer,
            info(&label, &config),
            failed,
            Changes::default(),
            delay,
            shared,
            Playback::Cpal(stream),
        ))
    }

    fn new(
        ring: ring::Producer,
        info: DeviceInfo,
        failed: Arc<AtomicBool>,
        changes: Changes,
        delay: Arc<DelayGauge>,
        shared: SinkShared,
        stream: Playback,
    ) -> Self {
        Self {
            ring,
            info,
            failed,
            changes,
            delay,
            overflow: 0,
            underruns: shared.underruns,
            callback: shared.callback,
            cut: shared.cut,
            silence_from: None,
            wake: shared.wake,
            played: shared.played,
            _stream: stream,
        }
    }

    pub fn info(&self) -> &DeviceInfo {
        &self.info
    }

    /// Whether the device reported an error since it opened (e.g. unplugged).
    pub fn failed(&self) -> bool {
        self.failed.load(Ordering::Relaxed)
    }

    /// 48 kHz samples written but not yet taken by the device.
    pub fn buffered(&self) -> usize {
        self.ring.len()
    }
}

impl AudioSink for DeviceSink {
    fn write_frame(&mut self, frame: &[f32]) -> Result<(), SinkError> {
        if frame.iter().any(|&x| x != 0.0) {
            self.silence_from = None;
        } else if self.silence_from.is_none() {
            self.silence_from = Some(self.ring.written());
        }
        // A full ring means the device stopped taking audio; dropping keeps the engine's
        // clock (and everyone else's audio) going.
        let pushed = self.ring.push_slice(frame);
        self.overflow += (frame.len() - pushed) as u64;
        Ok(())
    }

    fn finish(&mut self) -> Result<(), SinkError> {
        Ok(())
    }

    fn queue(&mut self) -> Option<SpeakerQueue> {
        Some(SpeakerQueue {
            queued: self.ring.len(),
            callback: self.callback.load(Ordering::Relaxed),
        })
    }

    fn cut_silence(&mut self, keep: usize) -> usize {
        let Some(from) = self.silence_from else {
            return 0;
        };
        let written = self.ring.written();
        let silent = written.wrapping_sub(from);
        // Only when nothing but silence waits (the end of the last talk spurt may still).
        let queued = self.ring.len();
        if silent <= keep || silent < queued {
            return 0;
        }
        // The device drops what waits before this; what it took already is gone anyway.
        self.cut
            .store(written.wrapping_sub(keep), Ordering::Release);
        queued.saturating_sub(keep)
    }

    fn set_wake(&mut self, wake: Wake) {
        self.wake.set(wake);
    }

    fn device_change(&mut self) -> Option<DeviceChange> {
        self.changes.take(&mut self.info, &self.failed)
    }

    fn take_played(&mut self, to: &mut dyn FnMut(&[f32])) -> bool {
        let mut chunk = [0.0; 480];
        loop {
            let n = self.played.pop_slice(&mut chunk);
            if n == 0 {
                return true;
            }
            to(&chunk[..n]);
        }
    }
}

/// What a speaker's sink shares with its device's end ([`PlaybackReader`]).
struct SinkShared {
    underruns: Arc<AtomicU64>,
    callback: Arc<AtomicUsize>,
    cut: Arc<AtomicUsize>,
    wake: Arc<WakeSlot>,
    played: ring::Consumer,
}

impl SinkShared {
    /// `played`: the reading end of the ring the reader tells what it played into.
    fn of(reader: &PlaybackReader, played: ring::Consumer) -> Self {
        Self {
            underruns: reader.underruns.clone(),
            callback: reader.callback.clone(),
            cut: reader.cut.clone(),
            wake: reader.wake.clone(),
            played,
        }
    }
}

impl Drop for DeviceSink {
    fn drop(&mut self) {
        let underruns = self.underruns.load(Ordering::Relaxed);
        tracing::debug!(device = %self.info, overflow = self.overflow, underruns, failed = self.failed(), device_delay = %self.delay, "speaker closed");
    }
}

/// The playback callback for sample type `T`: the reader fills the device's buffer.
fn output<T>(
    device: &cpal::Device,
    config: StreamConfig,
    mut reader: PlaybackReader,
    delay: Arc<DelayGauge>,
    on_error: impl FnMut(cpal::Error) + Send + 'static,
) -> Result<cpal::Stream, cpal::Error>
where
    T: SizedSample + FromSample<f32>,
{
    device.build_output_stream(
        config,
        move |data: &mut [T], info: &cpal::OutputCallbackInfo| {
            let ts = info.timestamp();
            delay.record(ts.playback.duration_since(ts.callback));
            let n = data.len();
            reader.read(n, |i, y| data[i] = T::from_sample_(y));
        },
        on_error,
        None,
    )
}

/// Errors come on cpal's thread after the stream started (e.g. the device was unplugged):
/// flag and log them; the source/sink keep delivering silence. Some come in floods (ALSA's
/// PulseAudio plugin reports a burst of `snd_pcm_avail_delay` I/O errors as a stream starts
/// and then plays fine), so only the first few and then every thousandth are logged.
fn error_callback(
    dir: Direction,
    label: &str,
    failed: Arc<AtomicBool>,
) -> impl FnMut(cpal::Error) + Send + 'static {
    let name = label.to_owned();
    let mut count: u64 = 0;
    move |e| {
        failed.store(true, Ordering::Relaxed);
        count += 1;
        if count <= 3 || count.is_multiple_of(1000) {
            tracing::warn!(device = %name, error = %e, count, "{} error", dir.what());
        }
    }
}

/// The speaker's device period on ALSA. A speaker's buffer is two or three periods and every
/// sample waits in it, so it gets 5 ms (through ALSA's PulseAudio plugin, 240 frames asked
/// are granted as 160: speaker delay 15 → 6.5 ms, BENCHMARKS.md).
const SPEAKER_PERIOD_US: u32 = 5_000;

/// The speaker's period for an engine on `frame`-long frames, in µs: [`SPEAKER_PERIOD_US`],
/// or half a frame when that is shorter — 2.5 ms in the low-delay mode (5 ms frames), where
/// the speaker's two periods were the largest wait left: 10 → 5 ms of device delay, p50
/// mouth-to-ear ~26 → 17–21 ms, without underruns in the runs measured (BENCHMARKS.md,
/// "Low-delay mode").
const fn speaker_period_us(frame: FrameSize) -> u32 {
    let half_frame = microphone_period_us(frame);
    if half_frame < SPEAKER_PERIOD_US {
        half_frame
    } else {
        SPEAKER_PERIOD_US
    }
}

/// Speaker periods a PulseAudio server holds (its own device's buffer included): what
/// ALSA's plugin held with our period (3 × 3.3 ms, 10 ms), in 5 ms requests.
const SPEAKER_PULSE_PERIODS: usize = 2;

/// On PulseAudio, both directions' period whatever the frame length: 2.5 ms. The server's own
/// buffer for a stream follows it (`ADJUST_LATENCY`), so the period is latency in both
/// directions. Measured on the device rig (BENCHMARKS.md, issue 22), 2.5 ms against the
/// frame-following periods (10 ms microphone, 5 ms speaker at 20 ms frames) took 20 ms
/// frames' mouth-to-ear p50 from 44.8 to 38.9 ms and 10 ms frames' from 33 to 30 ms, with no
/// more underruns, for one more wake-up of each stream thread every 2.5 ms (+0.3–0.8 % of a
/// core). It divides every frame length (5, 10, 20 ms), so a frame still completes on a
/// period boundary. (ALSA keeps [`microphone_period_us`] and [`speaker_period_us`].)
const PULSE_PERIOD_US: u32 = 2_500;

/// A microphone's period for an engine on `frame`-long frames, in µs: half a frame (2.5 ms
/// for 5 ms frames), so a frame completes on a period boundary.
const fn microphone_period_us(frame: FrameSize) -> u32 {
    frame.ms() * 500
}

/// `period_us` at `rate`, in frames; `CROMULENT_DEVICE_PERIOD` (frames, or anything else
/// for the device's default: `None`) overrides it, for measuring devices.
fn requested_period(rate: u32, period_us: u32) -> Option<usize> {
    match std::env::var("CROMULENT_DEVICE_PERIOD") {
        Ok(v) => v.parse().ok(),
        Err(_) => usize::try_from(u64::from(rate) * u64::from(period_us) / 1_000_000).ok(),
    }
}

/// The period for `config`: [`requested_period`], clamped to what the device says it
/// supports; `Default` when it does not say. A device's default can be long (1024 frames,
/// 21 ms, through ALSA's PulseAudio plugin), and the device buffer is two or three periods:
/// latency nobody asked for.
fn period(config: &SupportedStreamConfig, period_us: u32) -> BufferSize {
    let Some(want) = requested_period(config.sample_rate(), period_us) else {
        return BufferSize::Default;
    };
    let want = u32::try_from(want).unwrap_or(u32::MAX);
    match *config.buffer_size() {
        SupportedBufferSize::Range { min, max } if min <= max && max > 0 => {
            BufferSize::Fixed(want.clamp(min.max(1), max))
        }
        _ => BufferSize::Default,
    }
}

/// Opens with an explicit period first and, when the device refuses it, with the device's
/// default, so a fussy driver costs latency rather than sound.
fn open_with_period<T>(
    config: &SupportedStreamConfig,
    dir: Direction,
    period_us: u32,
    label: &str,
    open: impl Fn(BufferSize) -> Result<(cpal::Stream, T), DeviceError>,
) -> Result<(cpal::Stream, T), DeviceError> {
    let wanted = period(config, period_us);
    let opened = match open(wanted) {
        Err(e) if wanted != BufferSize::Default => {
            tracing::debug!(device = %label, error = %e, ?wanted, "{} refused the period; using its default", dir.what());
            open(BufferSize::Default)
        }
        other => other,
    }?;
    let period = opened.0.buffer_size().ok();
    tracing::debug!(device = %label, ?wanted, ?period, "{} opened", dir.what());
    Ok(opened)
}

fn start(
    stream: Result<cpal::Stream, cpal::Error>,
    dir: Direction,
    label: &str,
) -> Result<cpal::Stream, DeviceError> {
    let fail = |e: cpal::Error| DeviceError::Failed {
        what: dir.what(),
        name: label.to_owned(),
        reason: e.to_string(),
    };
    let stream = stream.map_err(fail)?;
    // cpal 0.18: ALSA streams no longer start by themselves.
    stream.play().map_err(fail)?;
    Ok(stream)
}

fn unsupported(dir: Direction, label: &str, format: SampleFormat) -> DeviceError {
    DeviceError::Failed {
        what: dir.what(),
        name: label.to_owned(),
        reason: format!("sample format {format} is not supported"),
    }
}

/// Opens a microphone or speaker where its name sends it ([`route`]): on PulseAudio, and on
/// ALSA when the name allows it and the server is not there or has no such device.
fn open_routed<T>(
    dir: Direction,
    name: Option<&str>,
    pulse: impl FnOnce(Option<&str>) -> Result<T, PulseError>,
    alsa: impl FnOnce(Option<&str>) -> Result<T, DeviceError>,
) -> Result<T, DeviceError> {
    let (name, or_alsa) = match route(name) {
        Route::Alsa(name) => return alsa(name),
        Route::Pulse { name, or_alsa } => (name, or_alsa),
    };
    match pulse(name) {
        Err(e @ (PulseError::NoServer(_) | PulseError::NoDevice(_))) if or_alsa => {
            tracing::debug!(reason = %e, "{}: ALSA, not PulseAudio", dir.what());
            alsa(name)
        }
        opened => opened.map_err(|e| pulse_failed(dir, name, e)),
    }
}

/// A PulseAudio stream: the server converts to and from 48 kHz mono f32.
fn pulse_info(opened: &pulse::Opened) -> DeviceInfo {
    DeviceInfo {
        name: format!("pulse:{}", opened.device),
        sample_rate: SAMPLE_RATE,
        channels: 1,
        format: "f32".into(),
    }
}

/// A PulseAudio failure, for the front ends.
fn pulse_failed(dir: Direction, name: Option<&str>, e: PulseError) -> DeviceError {
    let name = format!("pulse:{}", name.unwrap_or("default"));
    match e {
        PulseError::NoServer(reason) => DeviceError::NoDevice {
            what: dir.what(),
            reason: format!("no PulseAudio server ({reason})"),
        },
        PulseError::NoDevice(_) => DeviceError::NotFound {
            what: dir.what(),
            name,
            available: pulse_names(dir),
        },
        PulseError::Failed(reason) => DeviceError::Failed {
            what: dir.what(),
            name,
            reason,
        },
    }
}

/// The server's source or sink names, for an error that lists them.
fn pulse_names(dir: Direction) -> String {
    match pulse::list() {
        Ok(l) => {
            let list = match dir {
                Direction::Input => l.sources,
                Direction::Output => l.sinks,
            };
            let names: Vec<_> = list.iter().map(|d| format!("pulse:{}", d.name)).collect();
            if names.is_empty() {
                "none".into()
            } else {
                names.join(", ")
            }
        }
        Err(e) => e.to_string(),
    }
}

fn info(label: &str, config: &SupportedStreamConfig) -> DeviceInfo {
    DeviceInfo {
        name: label.to_owned(),
        sample_rate: config.sample_rate(),
        channels: config.channels(),
        format: config.sample_format().to_string(),
    }
}

/// The id ALSA (and so cpal) gives a device: `default`, `null`, `hw:CARD=PCH,DEV=0`.
fn device_id(device: &cpal::Device) -> String {
    device
        .id()
        .map(|id| id.id().to_owned())
        .unwrap_or_else(|_| "?".into())
}

/// What to call a device on screen: its id, short and what `--input-device` takes.
fn label(device: &cpal::Device) -> String {
    device_id(device)
}

/// For `--list-devices`: the id, and the description where it says more.
fn long_label(device: &cpal::Device) -> String {
    let id = device_id(device);
    match device.description() {
        Ok(d) if d.name() != id && !d.name().is_empty() => format!("{id:<24} {}", d.name()),
        _ => id,
    }
}

fn devices(host: &cpal::Host, dir: Direction) -> Vec<cpal::Device> {
    let list = match dir {
        Direction::Input => host.input_devices().map(|d| d.collect::<Vec<_>>()),
        Direction::Output => host.output_devices().map(|d| d.collect::<Vec<_>>()),
    };
    list.unwrap_or_default()
}

/// The device to open and its label. A name matches an id or description exactly
/// (case-insensitive) first, then as a substring.
fn find(dir: Direction, name: Option<&str>) -> Result<(cpal::Device, String), DeviceError> {
    let host = cpal::default_host();
    let what = dir.what();
    let Some(name) = name.map(str::trim).filter(|n| !n.is_empty()) else {
        let default = match dir {
            Direction::Input => host.default_input_device(),
            Direction::Output => host.default_output_device(),
        };
        let Some(device) = default else {
            return Err(DeviceError::NoDevice {
                what,
                reason: "the system has no default one (no sound card?)".into(),
            });
        };
        if device_id(&device) == "null" {
            return Err(DeviceError::NoDevice {
                what,
                reason: "the default is ALSA's null device (no sound card?)".into(),
            });
        }
        let label = label(&device);
        return Ok((device, label));
    };
    let all = devices(&host, dir);
    let wanted = name.to_lowercase();
    let names = |d: &cpal::Device| {
        let id = device_id(d).to_lowercase();
        let desc = d
            .description()
            .map(|x| x.name().to_lowercase())
            .unwrap_or_default();
        (id, desc)
    };
    let exact = all.iter().position(|d| {
        let (id, desc) = names(d);
        id == wanted || desc == wanted
    });
    let partial = || {
        all.iter().position(|d| {
            let (id, desc) = names(d);
            id.contains(&wanted) || desc.contains(&wanted)
        })
    };
    match exact.or_else(partial) {
        Some(i) => {
            let device = all
                .into_iter()
                .nth(i)
                .ok_or_else(|| DeviceError::NoDevice {
                    what,
                    reason: "device list changed".into(),
                })?;
            let label = label(&device);
            Ok((device, label))
        }
        None => Err(DeviceError::NotFound {
            what,
            name: name.to_owned(),
            available: if all.is_empty() {
                "none".into()
            } else {
                all.iter().map(device_id).collect::<Vec<_>>().join(", ")
            },
        }),
    }
}

/// Prefer 48 kHz, then f32, then mono; fall back to the device's default configuration.
fn choose_config(
    device: &cpal::Device,
    dir: Direction,
    label: &str,
) -> Result<SupportedStreamConfig, DeviceError> {
    let ranges: Vec<_> = match dir {
        Direction::Input => device.supported_input_configs().map(|r| r.collect()),
        Direction::Output => device.supported_output_configs().map(|r| r.collect()),
    }
    .unwrap_or_default();
    let usable = |f: SampleFormat| {
        matches!(
            f,
            SampleFormat::F32
                | SampleFormat::F64
                | SampleFormat::I8
                | SampleFormat::I16
                | SampleFormat::I32
                | SampleFormat::U8
                | SampleFormat::U16
        )
    };
    let best = ranges
        .into_iter()
        .filter(|r| usable(r.sample_format()))
        .max_by_key(|r| {
            let has_48k = (r.min_sample_rate()..=r.max_sample_rate()).contains(&SAMPLE_RATE);
            let is_f32 = r.sample_format() == SampleFormat::F32;
            (
                has_48k,
                is_f32,
                r.channels() == 1,
                std::cmp::Reverse(r.channels()),
            )
        });
    if let Some(range) = best {
        let (lo, hi) = (range.min_sample_rate(), range.max_sample_rate());
        let rate = if (lo..=hi).contains(&SAMPLE_RATE) {
            SAMPLE_RATE
        } else if (lo..=hi).contains(&44_100) {
            44_100
        } else {
            SAMPLE_RATE.clamp(lo, hi)
        };
        if let Some(config) = range.try_with_sample_rate(rate) {
            return Ok(config);
        }
    }
    let default = match dir {
        Direction::Input => device.default_input_config(),
        Direction::Output => device.default_output_config(),
    };
    default
        .ok()
        .filter(|c| usable(c.sample_format()))
        .ok_or_else(|| DeviceError::Failed {
            what: dir.what(),
            name: label.to_owned(),
            reason: "unusable (no sound card?)".into(),
        })
}

/// Every input and output device, as text for `--list-devices`: the PulseAudio server's
/// sources and sinks when there is a server, then ALSA's devices with their default
/// configurations.
pub fn list_devices() -> Result<String, DeviceError> {
    let mut out = String::new();
    match pulse::list() {
        Ok(listing) => {
            let _ = writeln!(out, "PulseAudio server (used first):");
            for (heading, list) in [
                ("microphones (--input-device)", &listing.sources),
                ("speakers (--output-device)", &listing.sinks),
            ] {
                let _ = writeln!(out, "\n{heading}:");
                if list.is_empty() {
                    let _ = writeln!(out, "  none");
                }
                for d in list {
                    let mark = if d.default { "*" } else { " " };
                    let id = format!("pulse:{}", d.name);
                    let _ = writeln!(out, "{mark} {id:<24} {}", d.description);
                }
            }
            let _ = writeln!(out);
        }
        Err(e) => {
            let _ = writeln!(out, "PulseAudio: {e}; ALSA only.\n");
        }
    }
    let host = cpal::default_host();
    let _ = writeln!(out, "ALSA (audio host: {}):", host.id().name());
    for dir in [Direction::Input, Direction::Output] {
        let default = match dir {
            Direction::Input => host.default_input_device(),
            Direction::Output => host.default_output_device(),
        }
        .map(|d| device_id(&d));
        let heading = match dir {
            Direction::Input => "microphones (--input-device)",
            Direction::Output => "speakers (--output-device)",
        };
        let _ = writeln!(out, "\n{heading}:");
        let all = devices(&host, dir);
        if all.is_empty() {
            let _ = writeln!(out, "  none");
        }
        for d in &all {
            let id = device_id(d);
            let mark = if Some(&id) == default.as_ref() {
                "*"
            } else {
                " "
            };
            let config = match dir {
                Direction::Input => d.default_input_config(),
                Direction::Output => d.default_output_config(),
            }
            .map(|c| {
                format!(
                    "{} Hz, {} ch, {}",
                    c.sample_rate(),
                    c.channels(),
                    c.sample_format()
                )
            })
            .unwrap_or_else(|e| format!("unavailable: {e}"));
            let _ = writeln!(
                out,
                "{mark} {}\n      default stream: {config}",
                long_label(d)
            );
        }
    }
    let _ = writeln!(
        out,
        "\n* = default. Pass an id or part of a name; pulse:NAME or alsa:NAME to choose the \
         backend. Without a name: the PulseAudio server's default, else ALSA's."
    );
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_periods_follow_the_frame() {
        // Half a frame for the microphone; the speaker 5 ms, or half a 5 ms frame.
        assert_eq!(microphone_period_us(FrameSize::Ms20), 10_000);
        assert_eq!(microphone_period_us(FrameSize::Ms5), 2_500);
        assert_eq!(speaker_period_us(FrameSize::Ms20), 5_000);
        assert_eq!(speaker_period_us(FrameSize::Ms10), 5_000);
        assert_eq!(speaker_period_us(FrameSize::Ms5), 2_500);
        // PulseAudio: 2.5 ms whatever the frame, dividing every frame length.
        for frame in [FrameSize::Ms5, FrameSize::Ms10, FrameSize::Ms20] {
            assert_eq!(frame.ms() * 1000 % PULSE_PERIOD_US, 0, "{frame:?}");
        }
        if std::env::var_os("CROMULENT_DEVICE_PERIOD").is_none() {
            assert_eq!(requested_period(48_000, 2_500), Some(120));
            assert_eq!(requested_period(44_100, 5_000), Some(220));
        }
    }
}
