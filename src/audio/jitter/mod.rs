//! The per-peer jitter buffer: turns RTP packets that arrive early, late, twice, out of order or
//! not at all into exactly one playout decision per 20 ms frame.
//!
//! Pure and sans-IO: no clock, no sockets, no threads. The engine calls [`JitterBuffer::push`]
//! for each received packet with its arrival time and [`JitterBuffer::pop`] once per frame of its
//! playout clock; time only ever comes in as an argument, so every behaviour is testable with
//! simulated arrivals. It never decodes audio: it hands out payloads and says when a frame is
//! missing (and which packet holds FEC for it).
//!
//! How it works:
//! - Packets are slotted by extended sequence number (16-bit numbers unwrapped to `i64`), so
//!   reordering is undone and 65535 → 0 is seamless. A playout cursor names the next frame.
//! - **Depth** is the number of frames from the cursor to the newest packet received. Playout
//!   starts (and restarts after running dry) once the depth reaches the **target**, or once the
//!   first waiting packet has been held for the delay the jitter estimate says to absorb (in
//!   milliseconds, not rounded up to frames; see `preroll`).
//! - The target follows the measured arrival jitter: the delay to absorb is
//!   `max(3·J, largest recent |D|)` (RFC 3550 interarrival jitter `J` and its per-packet transit
//!   change `D`), and the target is `1 + ceil(delay / 20 ms)` frames, bounded by
//!   [`JitterConfig::min_depth`]..=[`JitterConfig::max_depth`]. It rises at once and falls one
//!   frame per [`JitterConfig::shrink_hold`] of calm.
//! - Latency follows the target: running dry adds a frame (the engine conceals it); a depth that
//!   stayed above the target for a whole second drops one frame, preferring a missing or DTX
//!   frame; a depth above `max_depth` (a burst after an outage) skips straight to the target.
//! - A missing frame is reported as [`Playout::Lost`] when a later packet is already here and
//!   either the buffer holds at least the target depth or no packet has arrived late in the
//!   last 2 s (otherwise the engine conceals one frame and the late packet gets another chance:
//!   on a link that only loses packets, waiting would add a frame of delay per loss); if the
//!   next packet is the one right after it, its payload comes along for FEC decoding.
//! - **Look-ahead for FEC**: while frames have been lost (their time came and went without
//!   their packet) within [`LOSS_MEMORY`], the target is at least 2 frames, so the packet after a lost one is
//!   here when the lost frame is due and its in-band FEC rebuilds it; without that, a link that
//!   loses packets but has no jitter played each packet as it came, and a loss left the buffer
//!   dry: concealed, never rebuilt. A clean link keeps its latency.
//! - A sender restart (sequence jump beyond the buffer, or 200 ms of nothing but stale packets)
//!   resyncs.

mod estimate;
mod seq;

use std::time::{Duration, Instant};

use crate::audio::codec::PacketDuration;
use crate::rtp::seq::extend;
use estimate::{DepthTarget, JitterEstimator, required_frames};
use seq::SeenWindow;

/// Slots in the ring: sequence numbers further than this ahead of the cursor trigger a resync.
/// Must exceed `max_depth` plus any reordering we want to absorb.
const CAPACITY: usize = 64;

/// Stale (late or duplicate) packets arriving without a single usable one in between, for at least
/// this long, mean the sender restarted with lower sequence numbers. Measured in arrival time, so
/// a burst of late packets released at once after an outage is not mistaken for a restart.
const RESTART_STALE_SPAN: Duration = Duration::from_millis(200);

/// The latency bound of a stream: 200 ms of 48 kHz samples, in whatever packets it comes.
const MAX_DEPTH_SAMPLES: usize = 48 * 200;

/// Length of a latency-trimming window.
const TRIM_WINDOW: Duration = Duration::from_secs(1);

/// Calm time needed before the target drops by one packet, for packets of 10 ms and longer.
const SHRINK_HOLD: Duration = Duration::from_secs(1);

/// The calm that lowers the target by one `frame`-long packet: [`SHRINK_HOLD`], and for
/// packets shorter than 10 ms (the 5 ms low-delay mode, 2.5 ms from other senders) a share of
/// it in proportion to 20 ms, so a target a spike raised comes down at least as fast in
/// milliseconds as with 20 ms packets. A packet per second made 5 ms packets shed a quarter
/// of that pace: after a stall on a loaded machine a 5 ms receiver held every talk spurt
/// ~70 ms for the rest of a 20 s run (`bench/device-path.sh` with `FRAME_MS=5`, p50 94 ms
/// against 22-29 in other runs). 10 and 20 ms packets keep the second (halving it for 10 ms
/// packets made a 10 ms sender into a 20 ms receiver trim and conceal audibly in
/// `tests/headless_audio.rs`); trimming keeps [`TRIM_WINDOW`] for every length.
pub fn shrink_hold(frame: PacketDuration) -> Duration {
    const REFERENCE_SAMPLES: u32 = 960;
    let samples = frame.samples() as u32;
    if samples >= REFERENCE_SAMPLES / 2 {
        return SHRINK_HOLD;
    }
    SHRINK_HOLD * samples / REFERENCE_SAMPLES
}

/// A missing packet is waited for (rather than declared lost) only while packets have been
/// arriving late within this long: on a link that loses packets but does not reorder or delay
/// them past their frame, waiting only adds a frame of delay per loss, for good.
const LATENESS_MEMORY: Duration = Duration::from_secs(2);

/// After a lost frame, the target keeps a frame of look-ahead for FEC this long (random loss of
/// 1 % or more re-arms it before it runs out).
pub const LOSS_MEMORY: Duration = Duration::from_secs(5);

/// Payloads this small are Opus DTX frames (silence): the cheapest frames to drop.
const DTX_PAYLOAD_MAX: usize = 2;

/// Tuning. [`Default`] is what the client uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JitterConfig {
    /// Smallest target depth, in frames (≥ 1).
    pub min_depth: usize,
    /// Largest target depth and latency bound, in frames (≤ 32).
    pub max_depth: usize,
    /// Calm time needed before the target drops by one frame.
    pub shrink_hold: Duration,
    /// Length of one frame (one packet) of the stream this buffer plays: the peer's packet
    /// duration, whatever our own frame size.
    pub frame: PacketDuration,
}

impl Default for JitterConfig {
    fn default() -> Self {
        Self::for_frame(PacketDuration::default())
    }
}

impl JitterConfig {
    /// What the client uses for a stream of `frame`-long packets: depth bounded at 200 ms, at
    /// least one packet, and at most half the ring (`CAPACITY / 2`, 32 packets: 160 ms of 5 ms
    /// packets, 80 ms of 2.5 ms ones — the ring was left at 64 slots so that 10 and 20 ms
    /// streams resynchronise after a gap exactly as before).
    pub fn for_frame(frame: PacketDuration) -> Self {
        Self {
            min_depth: 1,
            max_depth: (MAX_DEPTH_SAMPLES / frame.samples()).max(1),
            shrink_hold: shrink_hold(frame),
            frame,
        }
    }
}

/// What the engine should play for this frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Playout {
    /// Decode this payload.
    Packet(Vec<u8>),
    /// This frame's packet is missing (a later one has arrived). If `fec_from` is `Some`, it is
    /// the payload of the *next* packet: recover with `Decoder::decode_fec`, then decode that
    /// packet normally when it is popped next. Otherwise conceal.
    Lost {
        /// Payload of the packet right after the missing one, if already received.
        fec_from: Option<Vec<u8>>,
    },
    /// Packets are waiting but the buffer is still filling to its target depth. Conceal (or
    /// play silence if the stream had not started).
    NotReady,
    /// Nothing buffered: the stream has not started, is paused (DTX, mute), or ran dry.
    /// Conceal for a few frames after audio, then play silence.
    Empty,
}

/// What happened to a pushed packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushOutcome {
    /// Buffered for playout.
    Accepted,
    /// Seen before; dropped.
    Duplicate,
    /// Its frame was already played, concealed or skipped; dropped.
    Late,
    /// Treated as the start of a new stream: everything buffered was discarded.
    Resynced,
}

/// Counters and gauges for the UI's connection-quality line and for tests.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct JitterStats {
    /// Distinct packets accepted for playout (resync starts included).
    pub received: u64,
    /// Packets received more than once (dropped).
    pub duplicates: u64,
    /// Packets that arrived after their frame was played, concealed or skipped (dropped).
    pub late: u64,
    /// Sequence numbers whose frame came due without the packet (concealed or skipped). A lost
    /// packet that turns up later also counts as `late`.
    pub lost: u64,
    /// [`Playout::Lost`] results handed to the engine.
    pub concealed: u64,
    /// Received packets discarded to cut latency.
    pub dropped: u64,
    /// Pops while playing that had nothing to hand out ([`Playout::Empty`] or
    /// [`Playout::NotReady`]): the buffer ran dry or waited for a late packet. Includes ends of
    /// talk spurts.
    pub underruns: u64,
    /// Stream restarts detected.
    pub resyncs: u64,
    /// Frames from the playout cursor to the newest packet.
    pub depth: usize,
    /// Current target depth in frames.
    pub target_depth: usize,
    /// The buffer's RFC 3550 interarrival jitter estimate, ms: what it sizes itself from. Not
    /// the figure the peer report shows (that one counts every packet as RFC 3550 does; this
    /// one skips discontinuities and duplicates and restarts its reference at a resync, see
    /// `estimate.rs`). Both come from `crate::rtp::jitter`.
    pub jitter_ms: f32,
}

/// One buffered packet. `ext` guards against ring aliasing.
#[derive(Debug)]
struct Slot {
    ext: i64,
    payload: Vec<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Filling up; `since` is the arrival of the first packet that came in while filling.
    Buffering {
        since: Option<Instant>,
    },
    Playing,
}

/// Cursor and sequence bookkeeping, present once the first packet arrived.
#[derive(Debug)]
struct Stream {
    /// Next frame to play (extended sequence number).
    /// Invariant: `cursor <= seen.newest() + 1`, and `seen.newest()` was accepted.
    cursor: i64,
    /// Recently seen sequence numbers; `newest()` is the highest accepted.
    seen: SeenWindow,
    /// Whether anything was played since the stream (re)started; before that, a packet older
    /// than the cursor may still move the cursor back.
    started: bool,
}

/// The jitter buffer for one remote peer. See the module docs for the algorithm.
#[derive(Debug)]
pub struct JitterBuffer {
    config: JitterConfig,
    /// Ring indexed by `ext mod CAPACITY`; holds frames in `[cursor, cursor + CAPACITY)`.
    slots: Vec<Option<Slot>>,
    stream: Option<Stream>,
    state: State,
    estimator: JitterEstimator,
    target: DepthTarget,
    /// Smallest depth seen at a pop in the current trimming window.
    window_min_depth: usize,
    /// Pops in the current trimming window.
    window_pops: u32,
    /// A trim is due: drop the next cheap frame (or any frame after one more window).
    trim_pending: bool,
    /// Consecutive pops spent waiting for a missing cursor packet; bounded by the target so a
    /// packet that never comes cannot stall playout.
    head_waits: usize,
    /// Arrival of the first of the current run of stale packets (restart detection).
    stale_since: Option<Instant>,
    /// Arrival of the last packet that came after its frame was played (lateness seen).
    last_late: Option<Instant>,
    /// When a frame was last lost (its time passed without its packet).
    last_loss: Option<Instant>,
    /// Frames the engine concealed since the buffer ran dry in the middle of a stream: their
    /// time is spent, so packets missing for them are skipped when the stream resumes.
    dry_pops: usize,
    stats: JitterStats,
}

impl Default for JitterBuffer {
    fn default() -> Self {
        Self::new(JitterConfig::default())
    }
}

impl JitterBuffer {
    /// An empty buffer. `min_depth` is raised to 1 and `max_depth` clamped to
    /// `min_depth..=CAPACITY / 2` so the invariants hold for any config.
    pub fn new(config: JitterConfig) -> Self {
        let min_depth = config.min_depth.clamp(1, CAPACITY / 2);
        let max_depth = config.max_depth.clamp(min_depth, CAPACITY / 2);
        let config = JitterConfig {
            min_depth,
            max_depth,
            ..config
        };
        Self {
            config,
            slots: (0..CAPACITY).map(|_| None).collect(),
            stream: None,
            state: State::Buffering { since: None },
            estimator: JitterEstimator::default(),
            target: DepthTarget::new(min_depth, max_depth, config.shrink_hold, config.frame),
            window_min_depth: usize::MAX,
            window_pops: 0,
            trim_pending: false,
            head_waits: 0,
            stale_since: None,
            last_late: None,
            last_loss: None,
            dry_pops: 0,
            stats: JitterStats::default(),
        }
    }

    /// Takes in one received packet.
    pub fn push(
        &mut self,
        seq: u16,
        rtp_ts: u32,
        payload: Vec<u8>,
        arrival: Instant,
    ) -> PushOutcome {
        let Some(stream) = self.stream.as_mut() else {
            self.resync(i64::from(seq), rtp_ts, payload, arrival);
            return PushOutcome::Resynced;
        };
        let ext = extend(seq, stream.seen.newest());
        let reorders_start =
            !stream.started && ext < stream.cursor && stream.seen.newest() - ext < CAPACITY as i64;
        let outcome = if stream.seen.contains(ext) {
            PushOutcome::Duplicate
        } else if ext >= stream.cursor + CAPACITY as i64 {
            PushOutcome::Resynced
        } else if ext < stream.cursor && !reorders_start {
            PushOutcome::Late
        } else {
            PushOutcome::Accepted
        };
        match outcome {
            PushOutcome::Accepted => self.accept(ext, rtp_ts, payload, arrival),
            PushOutcome::Resynced => self.resync(ext, rtp_ts, payload, arrival),
            PushOutcome::Duplicate | PushOutcome::Late => {
                let since = *self.stale_since.get_or_insert(arrival);
                if arrival.saturating_duration_since(since) >= RESTART_STALE_SPAN {
                    self.resync(ext, rtp_ts, payload, arrival);
                    return PushOutcome::Resynced;
                }
                if outcome == PushOutcome::Late {
                    stream_mut(&mut self.stream).seen.insert(ext);
                    self.stats.late += 1;
                    self.last_late = Some(arrival);
                    // Late packets are exactly the evidence that more depth is needed.
                    self.observe_arrival(arrival, rtp_ts);
                } else {
                    self.stats.duplicates += 1;
                }
            }
        }
        outcome
    }

    /// Buffers a packet that belongs in `[cursor, cursor + CAPACITY)` (or just before the
    /// cursor while the stream has not started).
    fn accept(&mut self, ext: i64, rtp_ts: u32, payload: Vec<u8>, arrival: Instant) {
        let stream = stream_mut(&mut self.stream);
        if ext < stream.cursor {
            stream.cursor = ext;
        }
        stream.seen.insert(ext);
        self.slots[slot_index(ext)] = Some(Slot { ext, payload });
        if let State::Buffering { since: None } = self.state {
            self.state = State::Buffering {
                since: Some(arrival),
            };
        }
        self.stale_since = None;
        self.stats.received += 1;
        self.observe_arrival(arrival, rtp_ts);
        self.resume_after_gap(arrival);
    }

    /// After running dry mid-stream, a packet has arrived. If packets before it are missing
    /// and the engine already concealed frames in their time, they are lost: skip them and
    /// play on at once, instead of restarting playout a pre-roll later with the lost frame
    /// still at the cursor (a frame of delay per such loss, for good). A pause (DTX, the
    /// end of a talk spurt) leaves no gap in the sequence numbers and restarts as usual, and
    /// while packets have been arriving late the missing ones may only be late: the buffer
    /// restarts as usual, which is how it grows to absorb reordering.
    fn resume_after_gap(&mut self, now: Instant) {
        let dry = std::mem::take(&mut self.dry_pops);
        if dry == 0 || !matches!(self.state, State::Buffering { .. }) || self.lateness_seen(now) {
            return;
        }
        if self.cursor_present() {
            return; // no gap: a pause ended
        }
        for _ in 0..dry {
            if self.cursor_present() {
                break;
            }
            self.skip_cursor();
            self.note_loss(now);
        }
        // Resume at once, unless the look-ahead FEC needs is not there yet on a link whose
        // jitter does not keep one anyway: then the restart waits for it (a frame, once), and
        // the next loss finds the packet after it here. (Waiting under jitter too added a
        // frame per loss: 69 → 86 ms at 20 ± 10 ms and 5 % loss, bench/jitter-path.sh.)
        let jitter_frames = required_frames(
            self.estimator.needed_delay_ms(),
            self.config.min_depth,
            self.config.max_depth,
            self.config.frame,
        );
        let build_lookahead =
            jitter_frames < self.target.floor() && self.depth() < self.target.floor();
        if self.cursor_present() && !build_lookahead {
            self.state = State::Playing;
            self.reset_trim_window();
        }
    }

    /// Whether [`JitterBuffer::pop`] at `now` would play (start or go on with playout)
    /// rather than wait or find nothing: for an engine that plays silence while nobody talks
    /// and starts a talk spurt the moment it may. Changes nothing.
    pub fn ready(&self, now: Instant) -> bool {
        match self.state {
            State::Playing => true,
            State::Buffering { since } => self.depth() > 0 && self.may_start(since, now),
        }
    }

    /// When playout may start, while a waiting packet is held for the pre-roll: an engine that
    /// plays as soon as it may wakes then. `None` while playing, empty, or ready already by
    /// depth.
    pub fn starts_at(&self) -> Option<Instant> {
        let State::Buffering { since: Some(since) } = self.state else {
            return None;
        };
        let target = self.target.frames();
        (self.depth() > 0 && self.depth() < target).then(|| since + self.preroll(target))
    }

    /// While buffering (with something buffered): whether playout may start at `now`, the
    /// target depth reached or the first waiting packet held for the pre-roll.
    fn may_start(&self, since: Option<Instant>, now: Instant) -> bool {
        let target = self.target.frames();
        self.depth() >= target
            || since.is_some_and(|s| now.saturating_duration_since(s) >= self.preroll(target))
    }

    /// Frames [`JitterBuffer::pop`] would hand out as packets at `now`, one after another:
    /// the packets here in sequence from the cursor, once playout may go on. A caller that
    /// needs fewer may take them before their time (an engine writing to a speaker as soon as
    /// a frame is here); beyond them a pop would conceal or wait.
    pub fn frames_here(&self, now: Instant) -> usize {
        let Some(stream) = self.stream.as_ref() else {
            return 0;
        };
        if !self.ready(now) {
            return 0;
        }
        (0..self.depth())
            .take_while(|&k| self.slot(stream.cursor + k as i64).is_some())
            .count()
    }

    /// Whether playout is going on (a talk spurt), not filling up or dry.
    pub fn is_playing(&self) -> bool {
        matches!(self.state, State::Playing)
    }

    /// Decides what to play for the frame starting at `now`. Call exactly once per frame.
    pub fn pop(&mut self, now: Instant) -> Playout {
        let depth = self.depth();
        if let State::Buffering { since } = self.state {
            if depth == 0 {
                if self.dry_pops > 0 {
                    self.dry_pops += 1;
                }
                return Playout::Empty;
            }
            if !self.may_start(since, now) {
                return Playout::NotReady;
            }
            self.state = State::Playing;
            self.reset_trim_window();
        }
        if depth == 0 {
            self.stats.underruns += 1;
            self.state = State::Buffering { since: None };
            self.dry_pops = 1;
            return Playout::Empty;
        }
        let target = self.target.frames();
        if depth < target
            && self.head_waits < target
            && !self.cursor_present()
            && self.lateness_seen(now)
        {
            // The due packet may only be late (packets have been arriving late lately): with
            // less than the target depth buffered, wait a frame (the engine conceals) rather
            // than give it up. This is also how a raised target takes effect while playing.
            self.head_waits += 1;
            self.stats.underruns += 1;
            return Playout::NotReady;
        }
        self.head_waits = 0;
        self.trim_latency(depth);
        let out = self.play_cursor();
        if matches!(out, Playout::Lost { .. }) {
            self.note_loss(now);
        }
        out
    }

    /// A frame was lost: keep a frame of look-ahead for the next one's FEC a while.
    fn note_loss(&mut self, now: Instant) {
        self.last_loss = Some(now);
        self.target.set_floor(2);
    }

    /// Current counters and gauges.
    pub fn stats(&self) -> JitterStats {
        JitterStats {
            depth: self.depth(),
            target_depth: self.target.frames(),
            jitter_ms: self.estimator.jitter_ms() as f32,
            ..self.stats
        }
    }

    /// Frames from the cursor to the newest packet (0 when nothing is waiting).
    fn depth(&self) -> usize {
        self.stream.as_ref().map_or(0, |s| {
            usize::try_from(s.seen.newest() + 1 - s.cursor).unwrap_or(0)
        })
    }

    /// How long the first packet of a talk spurt is held before playout starts (unless the
    /// target depth is reached first): the delay the jitter estimate says to absorb, not a
    /// whole frame per frame of target. Holding the first packet `d` ms gives every later
    /// packet of the spurt `d` ms of slack; rounding that up to 20 ms made every sentence
    /// start a frame later than it had to. Above a target of 2 the extra whole frames stay
    /// (they carry the target's slow shrink after a spike), and a configured `min_depth` (or the
    /// look-ahead floor after a loss) of `d` always holds `d − 1` frames, the slack that depth
    /// stands for.
    fn preroll(&self, target: usize) -> Duration {
        if target <= 1 {
            return Duration::ZERO;
        }
        let needed = Duration::from_secs_f64(self.estimator.needed_delay_ms().max(0.0) / 1000.0);
        let frames = |n: usize| self.config.frame.duration() * n as u32;
        let floor = (target - 2).max(self.target.floor() - 1);
        needed.clamp(frames(floor), frames(target - 1))
    }

    fn observe_arrival(&mut self, arrival: Instant, rtp_ts: u32) {
        let loss_seen = self
            .last_loss
            .is_some_and(|t| arrival.saturating_duration_since(t) < LOSS_MEMORY);
        if !loss_seen {
            self.target.set_floor(self.config.min_depth);
        }
        self.estimator.update(arrival, rtp_ts);
        self.target
            .update(self.estimator.needed_delay_ms(), arrival);
    }

    /// Starts a new stream at `ext` with this packet, discarding everything buffered.
    fn resync(&mut self, ext: i64, rtp_ts: u32, payload: Vec<u8>, arrival: Instant) {
        if self.stream.is_some() {
            self.stats.resyncs += 1;
        }
        self.slots.iter_mut().for_each(|s| *s = None);
        self.slots[slot_index(ext)] = Some(Slot { ext, payload });
        self.stream = Some(Stream {
            cursor: ext,
            seen: SeenWindow::new(ext),
            started: false,
        });
        self.state = State::Buffering {
            since: Some(arrival),
        };
        self.stale_since = None;
        self.trim_pending = false;
        self.stats.received += 1;
        self.estimator.restart(arrival, rtp_ts);
    }

    fn reset_trim_window(&mut self) {
        self.window_min_depth = usize::MAX;
        self.window_pops = 0;
        self.trim_pending = false;
    }

    /// Pops in one [`TRIM_WINDOW`].
    fn trim_window_pops(&self) -> u32 {
        (TRIM_WINDOW.as_micros() / self.config.frame.duration().as_micros()) as u32
    }

    /// The frame length this buffer plays.
    pub fn frame(&self) -> PacketDuration {
        self.config.frame
    }

    /// Keeps latency near the target. Precondition: playing with `depth >= 1`.
    fn trim_latency(&mut self, depth: usize) {
        let target = self.target.frames();
        if depth > self.config.max_depth {
            // A burst after an outage: jump to the target instead of playing stale audio.
            for _ in 0..depth - target {
                self.skip_cursor();
            }
            self.reset_trim_window();
            return;
        }
        self.window_min_depth = self.window_min_depth.min(depth);
        self.window_pops += 1;
        if self.window_pops >= self.trim_window_pops() {
            // Over-buffered for a whole window: trim at the next cheap frame; still over-buffered
            // a window later: trim now, cheap or not.
            let over = self.window_min_depth > target;
            let force = over && self.trim_pending;
            self.reset_trim_window();
            self.trim_pending = over && !force;
            if force && depth > target {
                self.skip_cursor();
                return;
            }
        }
        if self.trim_pending && depth > target && self.cursor_is_cheap() {
            self.skip_cursor();
            self.reset_trim_window();
        }
    }

    /// Whether packets have arrived after their frame within [`LATENESS_MEMORY`]: then a
    /// missing packet may only be late, and is worth a frame's wait.
    fn lateness_seen(&self, now: Instant) -> bool {
        self.last_late
            .is_some_and(|t| now.saturating_duration_since(t) < LATENESS_MEMORY)
    }

    /// Whether the packet for the cursor frame is here.
    fn cursor_present(&self) -> bool {
        self.stream
            .as_ref()
            .is_some_and(|s| self.slot(s.cursor).is_some())
    }

    /// Whether dropping the cursor frame costs nothing audible: missing or DTX silence.
    fn cursor_is_cheap(&self) -> bool {
        self.stream.as_ref().is_some_and(|s| {
            self.slot(s.cursor)
                .is_none_or(|slot| slot.payload.len() <= DTX_PAYLOAD_MAX)
        })
    }

    /// Advances past the cursor frame without playing it.
    fn skip_cursor(&mut self) {
        let Some(stream) = self.stream.as_mut() else {
            return;
        };
        let cursor = stream.cursor;
        stream.cursor += 1;
        match take_slot(&mut self.slots, cursor) {
            Some(_) => self.stats.dropped += 1,
            None => self.stats.lost += 1,
        }
    }

    /// Plays the cursor frame. Precondition: `depth >= 1`, so a packet at or after the cursor
    /// exists.
    fn play_cursor(&mut self) -> Playout {
        let Some(stream) = self.stream.as_mut() else {
            return Playout::Empty;
        };
        let cursor = stream.cursor;
        stream.cursor += 1;
        stream.started = true;
        if let Some(slot) = take_slot(&mut self.slots, cursor) {
            return Playout::Packet(slot.payload);
        }
        self.stats.lost += 1;
        self.stats.concealed += 1;
        let fec_from = self.slot(cursor + 1).map(|s| s.payload.clone());
        Playout::Lost { fec_from }
    }

    fn slot(&self, ext: i64) -> Option<&Slot> {
        self.slots[slot_index(ext)]
            .as_ref()
            .filter(|s| s.ext == ext)
    }
}

/// The stream, for paths only reached after the first packet created it.
fn stream_mut(stream: &mut Option<Stream>) -> &mut Stream {
    stream
        .as_mut()
        .expect("invariant: push creates the stream before any other path runs")
}

fn slot_index(ext: i64) -> usize {
    // rem_euclid of a positive modulus is in 0..CAPACITY, so the cast is lossless.
    ext.rem_euclid(CAPACITY as i64) as usize
}

/// Removes and returns the packet for `ext`, if that slot holds it.
fn take_slot(slots: &mut [Option<Slot>], ext: i64) -> Option<Slot> {
    let slot = &mut slots[slot_index(ext)];
    if slot.as_ref().is_some_and(|s| s.ext == ext) {
        slot.take()
    } else {
        None
    }
}

#[cfg(test)]
mod tests;
