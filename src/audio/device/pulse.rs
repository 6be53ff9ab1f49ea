//! Microphone and speaker on PulseAudio's own protocol: a PulseAudio daemon, or PipeWire's
//! pulse server, which is what a Linux desktop runs today.
//!
//! Through ALSA's PulseAudio plugin (the `default` ALSA device on a desktop) every period
//! costs two threads a wake-up each: the plugin's own PulseAudio thread (`threaded-ml`) takes
//! the server's message and wakes the stream's thread through a descriptor, which then asks
//! the plugin how much there is and hands the audio back to `threaded-ml` to send. Here one
//! thread per stream runs a PulseAudio main loop and moves the audio itself, as the server's
//! messages arrive: measured in an 8-user call (BENCHMARKS.md, "Client cost on the device
//! path"), the device threads' share of a core fell from 5.7 % to about half.
//!
//! Devices come and go under a running call: when the server moves our stream (the system's
//! default changed, or its device went away and the server rescued the stream) the move is
//! reported through [`Moves`]; when the stream dies with its device (a server without a rescue
//! policy), the thread opens a new one on the default device and reports that. Only when there
//! is none for [`REOPEN_FOR`] does the device count as failed.
//!
//! The server converts rate and channels, so the streams are 48 kHz mono f32, the engine's
//! own format, and nothing is resampled here. The thread only copies between the server's
//! buffers and the lock-free [`super::ring`]: no locks, no allocation of ours, and logging
//! only when the stream fails.

use std::cell::{Cell, RefCell};
use std::io::{PipeReader, PipeWriter, Write as _};
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use libpulse_binding as pa;
use pa::callbacks::ListResult;
use pa::context::{self, Context};
use pa::def::BufferAttr;
use pa::mainloop::api::Mainloop as _;
use pa::mainloop::events::io::FlagSet as IoFlags;
use pa::mainloop::standard::{IterateResult, Mainloop};
use pa::proplist::{Proplist, properties};
use pa::sample::{Format, Spec};
use pa::stream::{self, PeekResult, SeekMode, Stream};

use super::{CaptureWriter, DelayGauge, Moves, PlaybackReader};
use crate::audio::frame::SAMPLE_RATE;

/// The microphone's thread name (what `top -H` and the benchmarks show).
pub const MIC_THREAD: &str = "pulse-mic";
/// The speaker's thread name.
pub const SPEAKER_THREAD: &str = "pulse-speaker";

/// How long connecting to the server and opening a stream may take before we give up (a
/// local server answers in milliseconds; a hung one must not hang the client).
const OPEN_TIMEOUT: Duration = Duration::from_secs(3);

/// How long a stream whose device went away keeps trying to open on the default device.
pub const REOPEN_FOR: Duration = Duration::from_secs(3);
/// How often it tries.
const REOPEN_EVERY: Duration = Duration::from_millis(200);

/// Bytes per sample: f32 mono.
const SAMPLE_BYTES: usize = 4;

/// Why a stream did not open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PulseError {
    /// No server to talk to (none running, or not ours to reach): ALSA is next.
    NoServer(String),
    /// The server has no source or sink of that name.
    NoDevice(String),
    /// Anything else, in words.
    Failed(String),
}

impl std::fmt::Display for PulseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PulseError::NoServer(why) => write!(f, "no PulseAudio server: {why}"),
            PulseError::NoDevice(name) => write!(f, "PulseAudio has no device {name:?}"),
            PulseError::Failed(why) => f.write_str(why),
        }
    }
}

/// What a stream does with the server's audio (sizes in frames; `None`: the server's choice).
pub(super) enum Job {
    /// A microphone: everything the server delivers goes into the ring. `fragment` is how
    /// much the server gathers before it sends (frames), the capture period.
    Record {
        fragment: Option<usize>,
        writer: Box<CaptureWriter>,
    },
    /// A speaker: the server asks for `request` frames at a time and holds `target` frames
    /// in all (its own buffer included); what it asks for comes out of the ring.
    Playback {
        request: Option<usize>,
        target: Option<usize>,
        reader: PlaybackReader,
    },
}

impl Job {
    fn thread_name(&self) -> &'static str {
        match self {
            Job::Record { .. } => MIC_THREAD,
            Job::Playback { .. } => SPEAKER_THREAD,
        }
    }

    /// The device, in words (also the stream's name on the server).
    fn what(&self) -> &'static str {
        match self {
            Job::Record { .. } => "microphone",
            Job::Playback { .. } => "speaker",
        }
    }
}

/// A running stream; dropping it stops its thread and closes the stream.
pub struct PulseStream {
    stop: Arc<AtomicBool>,
    wake: PipeWriter,
    thread: Option<JoinHandle<()>>,
}

/// What [`PulseStream::open`] found.
pub struct Opened {
    /// The server's name of the source or sink the stream is on.
    pub device: String,
}

impl PulseStream {
    /// Connects to the server and opens a stream on `device` (a source or sink name; `None`:
    /// the server's default). Returns once the stream runs, or why it does not. Later moves
    /// to another device are told to `moves`; `failed` is set when the stream ended for good.
    pub(super) fn open(
        device: Option<&str>,
        job: Job,
        delay: Arc<DelayGauge>,
        failed: Arc<AtomicBool>,
        moves: Arc<Moves>,
    ) -> Result<(Self, Opened), PulseError> {
        let stop = Arc::new(AtomicBool::new(false));
        let (wake_rx, wake) =
            std::io::pipe().map_err(|e| PulseError::Failed(format!("pipe: {e}")))?;
        let (tx, rx) = mpsc::sync_channel(1);
        let device = device.map(str::to_owned);
        let name = job.thread_name();
        let thread = {
            let stop = stop.clone();
            std::thread::Builder::new()
                .name(name.into())
                .spawn(move || {
                    let mut job = job;
                    let mut link = match Link::open(device.as_deref(), &job) {
                        Ok(link) => link,
                        Err(e) => {
                            let _ = tx.send(Err(e));
                            return;
                        }
                    };
                    let _ = tx.send(Ok(link.device()));
                    let what = job.what();
                    // Until stopped: a stream that ended with its device, or that the server
                    // moved (its buffer then holds what the old device had not played: over
                    // a second, measured), is opened anew on the default device.
                    while let Some(reason) = link.run(&mut job, &stop, &wake_rx, &delay) {
                        drop(link);
                        tracing::info!(%reason, "PulseAudio {what}: opening it on the default device");
                        link = match reopen(&job, &stop) {
                            Some(link) => link,
                            None => {
                                failed.store(true, Ordering::Relaxed);
                                tracing::warn!("PulseAudio {what}: no device to move to");
                                return;
                            }
                        };
                        tracing::info!(device = %link.device(), "PulseAudio {what} moved");
                        moves.record(link.device());
                    }
                })
                .map_err(|e| PulseError::Failed(format!("cannot start a thread: {e}")))?
        };
        let mut stream = Self {
            stop,
            wake,
            thread: Some(thread),
        };
        match rx.recv_timeout(OPEN_TIMEOUT + Duration::from_secs(1)) {
            Ok(Ok(device)) => Ok((stream, Opened { device })),
            Ok(Err(e)) => Err(e),
            Err(_) => {
                stream.stop();
                Err(PulseError::Failed(
                    "the PulseAudio server did not answer".into(),
                ))
            }
        }
    }

    fn stop(&mut self) {
        self.stop.store(true, Ordering::Release);
        let _ = self.wake.write_all(&[1]);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for PulseStream {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A stream on the default device, tried every [`REOPEN_EVERY`] for [`REOPEN_FOR`] (the
/// server may still be choosing its new default); `None` if there is none or we are stopped.
fn reopen(job: &Job, stop: &AtomicBool) -> Option<Link> {
    let deadline = Instant::now() + REOPEN_FOR;
    while !stop.load(Ordering::Acquire) && Instant::now() < deadline {
        match Link::open(None, job) {
            Ok(link) => return Some(link),
            Err(e) => tracing::debug!(error = %e, "no default device yet"),
        }
        std::thread::sleep(REOPEN_EVERY);
    }
    None
}

/// A connection to the server, on the thread that owns it (PulseAudio's objects stay on one
/// thread). Fields drop in order: stream, context, main loop.
struct Link {
    stream: Stream,
    context: Context,
    mainloop: Mainloop,
    /// Set by the server's "stream moved" callback.
    moved: Rc<Cell<bool>>,
}

impl Link {
    fn open(device: Option<&str>, job: &Job) -> Result<Self, PulseError> {
        let (mut mainloop, mut context) = connect()?;
        let deadline = Instant::now() + OPEN_TIMEOUT;
        let spec = Spec {
            format: Format::FLOAT32NE,
            rate: SAMPLE_RATE,
            channels: 1,
        };
        let mut props =
            Proplist::new().ok_or_else(|| PulseError::Failed("no PulseAudio proplist".into()))?;
        // A call: the server's policy modules (ducking, corking music) know what this is.
        let _ = props.set_str(properties::MEDIA_ROLE, "phone");
        let bytes = |frames: Option<usize>| {
            frames
                .and_then(|f| u32::try_from(f * SAMPLE_BYTES).ok())
                .unwrap_or(u32::MAX)
        };
        let name = job.what();
        let mut stream = Stream::new_with_proplist(&mut context, name, &spec, None, &mut props)
            .ok_or_else(|| PulseError::Failed("PulseAudio refused a stream".into()))?;
        // Latency as asked: the server sets its device's buffer to match, and keeps no more
        // than that. Timing updates feed the delay gauge.
        let flags = stream::FlagSet::ADJUST_LATENCY
            | stream::FlagSet::AUTO_TIMING_UPDATE
            | stream::FlagSet::INTERPOLATE_TIMING;
        let connected = match job {
            Job::Record { fragment, .. } => {
                let attr = BufferAttr {
                    maxlength: u32::MAX,
                    tlength: u32::MAX,
                    prebuf: u32::MAX,
                    minreq: u32::MAX,
                    fragsize: bytes(*fragment),
                };
                stream.connect_record(device, Some(&attr), flags)
            }
            Job::Playback {
                request, target, ..
            } => {
                // No pre-buffering: the stream plays from the start and never stops. When
                // we are late the server plays silence and its read position runs on, so
                // what we write late is dropped rather than played late: the speaker keeps
                // its clock, and the echo canceller's reference (every sample we gave it, in
                // order) stays in time with it. With pre-buffering (the default) each late
                // write stopped the stream until it was refilled, shifting everything after
                // by the gap: echo leaked through until the canceller found the new delay.
                let attr = BufferAttr {
                    maxlength: u32::MAX,
                    tlength: bytes(*target),
                    prebuf: 0,
                    minreq: bytes(*request),
                    fragsize: u32::MAX,
                };
                stream.connect_playback(device, Some(&attr), flags, None, None)
            }
        };
        connected.map_err(|e| PulseError::Failed(format!("cannot open a {name} stream: {e}")))?;
        let moved = Rc::new(Cell::new(false));
        let flag = moved.clone();
        stream.set_moved_callback(Some(Box::new(move || flag.set(true))));
        loop {
            match stream.get_state() {
                stream::State::Ready => break,
                stream::State::Failed | stream::State::Terminated => {
                    let errno = context.errno();
                    // `pa_context_errno` is positive; the binding's `Code` conversion
                    // expects it negated.
                    let no_entity = errno.0.abs() == pa::error::Code::NoEntity as i32;
                    return Err(match device {
                        Some(d) if no_entity => PulseError::NoDevice(d.to_owned()),
                        _ => PulseError::Failed(format!(
                            "PulseAudio refused the {name} stream: {errno}"
                        )),
                    });
                }
                _ => wait(&mut mainloop, deadline)?,
            }
        }
        Ok(Self {
            stream,
            context,
            mainloop,
            moved,
        })
    }

    fn device(&self) -> String {
        self.stream
            .get_device_name()
            .map(|d| d.into_owned())
            .unwrap_or_else(|| "default".into())
    }

    /// Moves audio until told to stop (`None`), or the stream fails or is moved by the
    /// server (why). Every wake-up of the main loop (a server message, a timing update, the
    /// stop pipe) is followed by a look at the stream: whatever the server delivered is taken,
    /// whatever it asked for is written.
    fn run(
        &mut self,
        job: &mut Job,
        stop: &AtomicBool,
        wake: &PipeReader,
        delay: &DelayGauge,
    ) -> Option<String> {
        // The stop pipe wakes the loop; the flag says why.
        let _wake_event =
            self.mainloop
                .new_io_event(wake.as_raw_fd(), IoFlags::INPUT, Box::new(|_, _, _| {}));
        let what = job.what();
        let trouble = loop {
            if stop.load(Ordering::Acquire) {
                break None;
            }
            match self.mainloop.iterate(true) {
                IterateResult::Success(_) => {}
                IterateResult::Quit(_) => break Some("the main loop quit".to_owned()),
                IterateResult::Err(e) => break Some(format!("main loop: {e}")),
            }
            match self.stream.get_state() {
                stream::State::Ready => {}
                stream::State::Failed | stream::State::Terminated => {
                    break Some(format!("stream ended: {}", self.context.errno()));
                }
                _ => continue,
            }
            if self.moved.get() {
                break Some(format!("moved by the server to {}", self.device()));
            }
            let moved = match job {
                Job::Record { writer, .. } => take(&mut self.stream, writer),
                Job::Playback { reader, .. } => give(&mut self.stream, reader),
            };
            if let Err(e) = moved {
                break Some(e);
            }
            if let Ok(stream::Latency::Positive(us)) = self.stream.get_latency() {
                delay.record(Duration::from_micros(us.0));
            }
        };
        if let Some(reason) = &trouble {
            tracing::debug!(%reason, "PulseAudio {what} stream ended");
        }
        let _ = self.stream.disconnect();
        self.context.disconnect();
        trouble
    }
}

/// Everything the server delivered, into the ring.
fn take(stream: &mut Stream, writer: &mut CaptureWriter) -> Result<(), String> {
    loop {
        match stream.peek().map_err(|e| format!("reading: {e}"))? {
            PeekResult::Empty => return Ok(()),
            PeekResult::Hole(_) => {}
            PeekResult::Data(bytes) => writer.write(samples(bytes)),
        }
        stream.discard().map_err(|e| format!("reading: {e}"))?;
    }
}

/// What the server asked for, out of the ring, written straight into its buffer.
fn give(stream: &mut Stream, reader: &mut PlaybackReader) -> Result<(), String> {
    let wanted = stream
        .writable_size()
        .ok_or_else(|| "the server's buffer is unknown".to_owned())?;
    let wanted = wanted / SAMPLE_BYTES * SAMPLE_BYTES;
    if wanted == 0 {
        return Ok(());
    }
    let Some(buf) = stream
        .begin_write(Some(wanted))
        .map_err(|e| format!("writing: {e}"))?
    else {
        return Ok(());
    };
    let len = buf.len() / SAMPLE_BYTES * SAMPLE_BYTES;
    let buf = &mut buf[..len];
    reader.read(len / SAMPLE_BYTES, |i, y| {
        buf[i * SAMPLE_BYTES..(i + 1) * SAMPLE_BYTES].copy_from_slice(&y.to_ne_bytes())
    });
    stream
        .write(buf, None, 0, SeekMode::Relative)
        .map_err(|e| format!("writing: {e}"))
}

/// Native-endian f32 samples out of the server's bytes.
fn samples(bytes: &[u8]) -> impl Iterator<Item = f32> + '_ {
    bytes
        .chunks_exact(SAMPLE_BYTES)
        .map(|b| f32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
}

/// A main loop and a context connected to the server (never starting one: a client that
/// spawns a sound server behind the user's back is not ours to be).
fn connect() -> Result<(Mainloop, Context), PulseError> {
    let mut mainloop =
        Mainloop::new().ok_or_else(|| PulseError::Failed("no PulseAudio main loop".into()))?;
    let mut context = Context::new(&mainloop, "Cromulent")
        .ok_or_else(|| PulseError::Failed("no PulseAudio context".into()))?;
    context
        .connect(None, context::FlagSet::NOAUTOSPAWN, None)
        .map_err(|e| PulseError::NoServer(format!("{e}")))?;
    let deadline = Instant::now() + OPEN_TIMEOUT;
    loop {
        match context.get_state() {
            context::State::Ready => return Ok((mainloop, context)),
            context::State::Failed | context::State::Terminated => {
                return Err(PulseError::NoServer(format!("{}", context.errno())));
            }
            _ => wait(&mut mainloop, deadline)
                .map_err(|_| PulseError::NoServer("the server did not answer in time".into()))?,
        }
    }
}

/// One pass of the main loop, waiting no later than `deadline`.
fn wait(mainloop: &mut Mainloop, deadline: Instant) -> Result<(), PulseError> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err(PulseError::Failed(
            "the PulseAudio server did not answer in time".into(),
        ));
    }
    let us = u64::try_from(left.as_micros()).unwrap_or(u64::MAX);
    let fail = |e: pa::error::PAErr| PulseError::Failed(format!("PulseAudio main loop: {e}"));
    mainloop
        .prepare(Some(pa::time::MicroSeconds(us)))
        .map_err(fail)?;
    mainloop.poll().map_err(fail)?;
    mainloop.dispatch().map_err(fail)?;
    Ok(())
}

/// One source or sink, for `--list-devices`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PulseDevice {
    pub name: String,
    pub description: String,
    pub default: bool,
}

/// The server's sources and sinks (monitor sources left out: they are speakers, not
/// microphones).
pub struct Listing {
    pub sources: Vec<PulseDevice>,
    pub sinks: Vec<PulseDevice>,
}

/// What the server has, if there is a server.
pub fn list() -> Result<Listing, PulseError> {
    let (mut mainloop, context) = connect()?;
    let deadline = Instant::now() + OPEN_TIMEOUT;
    let introspect = context.introspect();
    let defaults = Rc::new(RefCell::new((String::new(), String::new())));
    let sources = Rc::new(RefCell::new(Vec::new()));
    let sinks = Rc::new(RefCell::new(Vec::new()));
    let ops = {
        let (defaults, sources, sinks) = (defaults.clone(), sources.clone(), sinks.clone());
        let server = introspect.get_server_info(move |info| {
            let name = |n: &Option<std::borrow::Cow<str>>| n.as_deref().unwrap_or("").to_owned();
            *defaults.borrow_mut() = (
                name(&info.default_source_name),
                name(&info.default_sink_name),
            );
        });
        let src = introspect.get_source_info_list(move |item| {
            if let ListResult::Item(s) = item
                && s.monitor_of_sink.is_none()
            {
                sources.borrow_mut().push(device(&s.name, &s.description));
            }
        });
        let snk = introspect.get_sink_info_list(move |item| {
            if let ListResult::Item(s) = item {
                sinks.borrow_mut().push(device(&s.name, &s.description));
            }
        });
        (server, src, snk)
    };
    let running = |s: pa::operation::State| s == pa::operation::State::Running;
    while running(ops.0.get_state()) || running(ops.1.get_state()) || running(ops.2.get_state()) {
        wait(&mut mainloop, deadline)?;
    }
    let (default_source, default_sink) = defaults.borrow().clone();
    let mark = |list: &Rc<RefCell<Vec<PulseDevice>>>, default: &str| {
        let mut list = list.borrow().clone();
        list.iter_mut().for_each(|d| d.default = d.name == default);
        list
    };
    Ok(Listing {
        sources: mark(&sources, &default_source),
        sinks: mark(&sinks, &default_sink),
    })
}

fn device(
    name: &Option<std::borrow::Cow<str>>,
    description: &Option<std::borrow::Cow<str>>,
) -> PulseDevice {
    PulseDevice {
        name: name.as_deref().unwrap_or("?").to_owned(),
        description: description.as_deref().unwrap_or("").to_owned(),
        default: false,
    }
}
