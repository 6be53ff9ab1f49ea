//! The microphone's capture thread, on ALSA directly.
//!
//! cpal 0.18.2's ALSA worker waits for a whole period and polls again at once when the
//! device says "readable" with less than that. Through ALSA's PulseAudio plugin (the
//! `default` device on a desktop) that state lasts: the plugin calls its descriptor ready
//! when PulseAudio holds a fragment (`pa_stream_readable_size`, which still counts the part
//! of a chunk already read), while ALSA's `avail` leaves that part out. Whenever the source's
//! chunks do not line up with the period the plugin says "ready", cpal finds less than a
//! period and polls again, until the next chunk comes: measured with a FIFO microphone fed
//! in chunks of 333 frames, cpal's capture thread used 80 % of a core while delivering
//! every frame; 1000-frame chunks (what a desktop source with timer scheduling delivers),
//! 38 %. A source that delivers nothing leaves the descriptor readable with no event at
//! all: 100 % (BENCHMARKS.md, "Capture-thread spin").
//!
//! This thread never waits for more than the device has. Every wake-up either reads all
//! that is available, whatever the amount (which also consumes the plugin's chunks to their
//! end, so its descriptor goes quiet), or, when there is nothing to read, sleeps one period
//! before it looks again. [`next_step`] is that decision, pure.

use std::io::{PipeReader, PipeWriter, Write as _};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use alsa::pcm::{Access, Format, Frames, HwParams, PCM};
use alsa::poll::{Descriptors, Flags, pollfd};
use alsa::{Direction, ValueOr};

/// The capture thread's name (what `top -H` and the benchmarks show).
pub const THREAD_NAME: &str = "cromulent-mic";

/// How long one `poll` may wait when nothing at all happens (a device that stopped without
/// saying so): the thread then looks at the stop flag and waits again.
const POLL_TIMEOUT_MS: i32 = 1000;

/// Periods in the device's buffer. A capture buffer's size adds no delay (everything is read
/// as soon as it is there); it is the room for the thread being late.
const BUFFER_PERIODS: Frames = 4;

/// What the capture thread does after a wake-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Read this many frames: everything available, even less than a period.
    Read(usize),
    /// Nothing to read although the descriptor woke us (a starved source, a spurious
    /// wake-up): wait a period before looking again, never poll again at once.
    Idle,
    /// An overrun or a suspend: recover the stream (`snd_pcm_recover`) and go on.
    Recover(i32),
    /// The device went away.
    Gone,
}

/// The decision after `poll` returned: `revents` as ALSA translates them, and `avail` (frames
/// or the errno of `snd_pcm_avail_delay`), asked only when `revents` holds an event.
pub fn next_step(revents: Flags, avail: Option<Result<Frames, i32>>) -> Step {
    if revents.intersects(Flags::HUP | Flags::NVAL) {
        return Step::Gone;
    }
    match avail {
        None => Step::Idle,
        Some(Ok(n)) if n > 0 => Step::Read(n as usize),
        Some(Ok(_)) => Step::Idle,
        Some(Err(errno)) if errno == EPIPE || errno == ESTRPIPE => Step::Recover(errno),
        Some(Err(errno)) if errno == ENODEV || errno == EBADFD => Step::Gone,
        // EAGAIN, and EIO, which ALSA's PulseAudio plugin returns until the stream has its
        // first timing information (pa_stream_get_latency): look again a period later.
        Some(Err(_)) => Step::Idle,
    }
}

const ENODEV: i32 = 19;
const EPIPE: i32 = 32;
const EBADFD: i32 = 77;
const ESTRPIPE: i32 = 86;

/// What the device granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Granted {
    pub rate: u32,
    pub channels: u16,
    pub format: SampleType,
    pub period: usize,
}

/// The sample types read from the device (converted to f32 on the capture thread).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SampleType {
    F32,
    I16,
    I32,
}

impl SampleType {
    pub fn name(self) -> &'static str {
        match self {
            SampleType::F32 => "f32",
            SampleType::I16 => "i16",
            SampleType::I32 => "i32",
        }
    }

    fn alsa(self) -> Format {
        match self {
            SampleType::F32 => Format::float(),
            SampleType::I16 => Format::s16(),
            SampleType::I32 => Format::s32(),
        }
    }
}

/// Where captured audio goes, on the capture thread: interleaved f32 samples and how long
/// ago the first of them was captured. No allocation, lock or I/O may happen in it.
pub type Deliver = Box<dyn FnMut(&[f32], Duration) + Send>;
/// Trouble after the stream started (called on the capture thread, rarely).
pub type OnError = Box<dyn FnMut(Trouble) + Send>;

/// What went wrong on the capture thread.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trouble {
    /// The thread was late and the device's buffer overflowed: audio was lost, the stream
    /// goes on.
    Overrun,
    /// The system suspended the device; the stream resumes.
    Suspended,
    /// The stream ended (the device went away, or an error with no way back).
    Failed(String),
}

/// A running capture stream; dropping it stops the thread and closes the device.
pub struct AlsaCapture {
    stop: Arc<AtomicBool>,
    wake: PipeWriter,
    thread: Option<JoinHandle<()>>,
}

impl AlsaCapture {
    /// Opens PCM `name` for capture near 48 kHz, mono if it can, with a period of about
    /// `period_frames` (the device's own when it refuses that), and starts reading it on
    /// [`THREAD_NAME`], into what `deliver` makes of the granted parameters.
    pub fn open(
        name: &str,
        rate: u32,
        period_frames: Option<usize>,
        deliver: impl FnOnce(&Granted) -> Deliver,
        on_error: OnError,
    ) -> Result<(Self, Granted), String> {
        if name.contains('\0') {
            return Err("the device name holds a NUL byte".into());
        }
        let pcm = PCM::new(name, Direction::Capture, true).map_err(|e| e.to_string())?;
        let granted = match period_frames {
            Some(p) => configure(&pcm, rate, Some(p)).or_else(|e| {
                tracing::debug!(device = name, error = %e, period = p, "microphone refused the period; using its default");
                configure(&pcm, rate, None)
            }),
            None => configure(&pcm, rate, None),
        }?;
        let (wake_rx, wake) = std::io::pipe().map_err(|e| e.to_string())?;
        let stop = Arc::new(AtomicBool::new(false));
        let worker = Worker {
            pcm,
            granted,
            stop: stop.clone(),
            wake: wake_rx,
            deliver: deliver(&granted),
            on_error,
        };
        let thread = std::thread::Builder::new()
            .name(THREAD_NAME.into())
            .spawn(move || worker.run())
            .map_err(|e| e.to_string())?;
        Ok((
            Self {
                stop,
                wake,
                thread: Some(thread),
            },
            granted,
        ))
    }
}

impl Drop for AlsaCapture {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        let _ = self.wake.write_all(&[1]);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Hardware and software parameters: interleaved, f32 (else i16, else i32), the rate
/// nearest `rate`, one channel if the device has it (else its fewest), the period asked
/// for (or the device's) and [`BUFFER_PERIODS`] of them.
fn configure(pcm: &PCM, rate: u32, period: Option<usize>) -> Result<Granted, String> {
    let e = |what: &str, err: alsa::Error| format!("{what}: {err}");
    let hw = HwParams::any(pcm).map_err(|x| e("hardware parameters", x))?;
    hw.set_access(Access::RWInterleaved)
        .map_err(|x| e("interleaved access", x))?;
    let format = [SampleType::F32, SampleType::I16, SampleType::I32]
        .into_iter()
        .find(|t| hw.test_format(t.alsa()).is_ok())
        .ok_or("no f32, i16 or i32 sample format")?;
    hw.set_format(format.alsa()).map_err(|x| e("format", x))?;
    let channels = if hw.test_channels(1).is_ok() {
        1
    } else {
        hw.get_channels_min().map_err(|x| e("channels", x))?.max(1)
    };
    hw.set_channels(channels).map_err(|x| e("channels", x))?;
    let rate = hw
        .set_rate_near(rate, ValueOr::Nearest)
        .map_err(|x| e("rate", x))?;
    if let Some(p) = period {
        let p = hw
            .set_period_size_near(p as Frames, ValueOr::Nearest)
            .map_err(|x| e("period", x))?;
        hw.set_buffer_size_near(p * BUFFER_PERIODS)
            .map_err(|x| e("buffer", x))?;
    }
    pcm.hw_params(&hw)
        .map_err(|x| e("hardware parameters", x))?;
    let (_, period) = pcm.get_params().map_err(|x| e("parameters", x))?;
    let sw = pcm
        .sw_params_current()
        .map_err(|x| e("software parameters", x))?;
    sw.set_avail_min(period as Frames)
        .map_err(|x| e("avail_min", x))?;
    pcm.sw_params(&sw)
        .map_err(|x| e("software parameters", x))?;
    Ok(Granted {
        rate,
        channels: u16::try_from(channels).unwrap_or(u16::MAX),
        format,
        period: period as usize,
    })
}

/// The capture thread's state.
struct Worker {
    pcm: PCM,
    granted: Granted,
    stop: Arc<AtomicBool>,
    wake: PipeReader,
    deliver: Deliver,
    on_error: OnError,
}

impl Worker {
    fn run(mut self) {
        if let Err(e) = self.read_until_stopped() {
            (self.on_error)(Trouble::Failed(e));
        }
        let _ = self.pcm.drop();
    }

    fn read_until_stopped(&mut self) -> Result<(), String> {
        let Worker {
            pcm,
            granted,
            stop,
            wake,
            deliver,
            on_error,
        } = self;
        let channels = usize::from(granted.channels.max(1));
        // Room for twice the device's buffer in one read; allocated once, here.
        let room = granted.period.max(1) * BUFFER_PERIODS as usize * 2;
        let mut samples = vec![0.0f32; room * channels];
        let mut reader = Reader::new(pcm, granted.format, room * channels)?;
        let idle_ms = i32::try_from(granted.period as u64 * 1000 / u64::from(granted.rate.max(1)))
            .unwrap_or(POLL_TIMEOUT_MS)
            .max(1);
        let unused = pollfd {
            fd: -1,
            events: 0,
            revents: 0,
        };
        let mut fds = vec![unused; 1 + pcm.count()];
        fds[0] = pollfd {
            fd: wake.as_raw_fd(),
            events: Flags::IN.bits(),
            revents: 0,
        };
        pcm.fill(&mut fds[1..])
            .map_err(|e| format!("poll descriptors: {e}"))?;
        pcm.start().map_err(|e| format!("start: {e}"))?;
        let rate = f64::from(granted.rate.max(1));
        let recover = |errno: i32, on_error: &mut OnError| {
            on_error(if errno == EPIPE {
                Trouble::Overrun
            } else {
                Trouble::Suspended
            });
            pcm.recover(-errno, true)
                .map_err(|e| format!("recover: {e}"))?;
            // A capture stream is not started by prepare; a resumed one may already run.
            let _ = pcm.start();
            Ok::<_, String>(())
        };
        loop {
            if stop.load(Ordering::Acquire) {
                return Ok(());
            }
            match alsa::poll::poll(&mut fds, POLL_TIMEOUT_MS) {
                Ok(0) => continue,
                Ok(_) => {}
                Err(e) if e.errno() == EINTR => continue,
                Err(e) => return Err(format!("poll: {e}")),
            }
            if fds[0].revents != 0 {
                return Ok(());
            }
            let revents = pcm
                .revents(&fds[1..])
                .map_err(|e| format!("poll events: {e}"))?;
            let avail = revents
                .intersects(Flags::IN | Flags::ERR)
                .then(|| pcm.avail_delay().map_err(|e| e.errno()));
            let delay = match avail {
                Some(Ok((_, d))) => Duration::from_secs_f64(d.max(0) as f64 / rate),
                _ => Duration::ZERO,
            };
            let step = match next_step(revents, avail.map(|r| r.map(|(a, _)| a))) {
                Step::Read(frames) => {
                    let wanted = frames.min(room) * channels;
                    match reader.read(&mut samples[..wanted], channels) {
                        Ok(0) => Step::Idle,
                        Ok(n) => {
                            deliver(&samples[..n * channels], delay);
                            continue;
                        }
                        Err(errno) => next_step(Flags::IN, Some(Err(errno))),
                    }
                }
                other => other,
            };
            match step {
                // Reads were delivered above; a read error is never `Read`.
                Step::Read(_) => {}
                // Nothing but the stop signal ends this wait.
                Step::Idle => {
                    let _ = alsa::poll::poll(&mut fds[..1], idle_ms);
                }
                Step::Recover(errno) => recover(errno, on_error)?,
                Step::Gone => return Err("the device went away".into()),
            }
        }
    }
}

const EINTR: i32 = 4;

/// Reads the device's sample type into f32; its buffer is allocated once.
enum Reader<'a> {
    F32(alsa::pcm::IO<'a, f32>),
    I16(alsa::pcm::IO<'a, i16>, Vec<i16>),
    I32(alsa::pcm::IO<'a, i32>, Vec<i32>),
}

impl<'a> Reader<'a> {
    fn new(pcm: &'a PCM, format: SampleType, samples: usize) -> Result<Self, String> {
        let e = |x: alsa::Error| format!("sample format: {x}");
        Ok(match format {
            SampleType::F32 => Reader::F32(pcm.io_f32().map_err(e)?),
            SampleType::I16 => Reader::I16(pcm.io_i16().map_err(e)?, vec![0; samples]),
            SampleType::I32 => Reader::I32(pcm.io_i32().map_err(e)?, vec![0; samples]),
        })
    }

    /// Reads up to `out.len()` samples (whole frames of `channels`): frames read, or an errno.
    fn read(&mut self, out: &mut [f32], channels: usize) -> Result<usize, i32> {
        let errno = |e: alsa::Error| e.errno();
        match self {
            Reader::F32(io) => io.readi(out).map_err(errno),
            Reader::I16(io, buf) => {
                let n = io.readi(&mut buf[..out.len()]).map_err(errno)?;
                for (y, &x) in out.iter_mut().zip(&buf[..n * channels]) {
                    *y = i16_to_f32(x);
                }
                Ok(n)
            }
            Reader::I32(io, buf) => {
                let n = io.readi(&mut buf[..out.len()]).map_err(errno)?;
                for (y, &x) in out.iter_mut().zip(&buf[..n * channels]) {
                    *y = i32_to_f32(x);
                }
                Ok(n)
            }
        }
    }
}

/// Full scale of i16 to [-1, 1).
fn i16_to_f32(x: i16) -> f32 {
    f32::from(x) / 32_768.0
}

/// Full scale of i32 to [-1, 1).
fn i32_to_f32(x: i32) -> f32 {
    (f64::from(x) / 2_147_483_648.0) as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    const EAGAIN: i32 = 11;

    #[test]
    fn integer_samples_become_full_scale_floats() {
        assert_eq!(i16_to_f32(0), 0.0);
        assert_eq!(i16_to_f32(i16::MIN), -1.0);
        assert_eq!(i16_to_f32(16_384), 0.5);
        assert!((i16_to_f32(i16::MAX) - 1.0).abs() < 1e-4);
        assert_eq!(i32_to_f32(i32::MIN), -1.0);
        assert_eq!(i32_to_f32(1 << 30), 0.5);
        assert!((i32_to_f32(i32::MAX) - 1.0).abs() < 1e-6);
    }

    #[test]
    fn anything_available_is_read_even_less_than_a_period() {
        // cpal would poll again at once here (less than its period of 320): the spin.
        assert_eq!(next_step(Flags::IN, Some(Ok(80))), Step::Read(80));
        assert_eq!(next_step(Flags::IN, Some(Ok(960))), Step::Read(960));
    }

    #[test]
    fn woken_with_nothing_to_read_waits_instead_of_polling_again() {
        // The starved PulseAudio source: readable descriptor, no event.
        assert_eq!(next_step(Flags::empty(), None), Step::Idle);
        assert_eq!(next_step(Flags::IN, Some(Ok(0))), Step::Idle);
        assert_eq!(next_step(Flags::IN, Some(Err(EAGAIN))), Step::Idle);
        // ALSA's PulseAudio plugin before the stream's first timing information.
        assert_eq!(next_step(Flags::IN, Some(Err(5))), Step::Idle);
    }

    #[test]
    fn overruns_and_suspends_are_recovered_and_a_vanished_device_ends_the_stream() {
        assert_eq!(
            next_step(Flags::ERR, Some(Err(EPIPE))),
            Step::Recover(EPIPE)
        );
        assert_eq!(
            next_step(Flags::IN, Some(Err(ESTRPIPE))),
            Step::Recover(ESTRPIPE)
        );
        assert_eq!(next_step(Flags::HUP, Some(Ok(100))), Step::Gone);
        assert_eq!(next_step(Flags::NVAL, None), Step::Gone);
        assert_eq!(next_step(Flags::IN, Some(Err(ENODEV))), Step::Gone);
        assert_eq!(next_step(Flags::IN, Some(Err(EBADFD))), Step::Gone);
    }
}
