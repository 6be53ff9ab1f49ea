//! Speech through the real call path, for a speech-quality score (issue 19): a clip of speech
//! is the sender's microphone, two real engines call each other (relay-only through a loopback
//! coturn, behind the impairment relay when asked — loss, delay, jitter), and what the
//! receiver's speaker gets from the moment the clip starts is kept. `bench/speech-quality.sh`
//! scores the pairs with wideband PESQ (ITU-T P.862.2, PyPI `pesq`, after time alignment).
//!
//! Like every benchmark here it reports what it measured and must never assert a score.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cromulent::audio::processing::Processing;
use cromulent::audio::{AudioSink, AudioSource, SinkError};
use cromulent::engine::{self, ChannelRef, EngineCommand, PeerReport};

use crate::impair::{self, Impairment};
use crate::probe::{self, RelayOver, Rig};

#[derive(Debug, Clone)]
pub struct Options {
    /// The speech, 48 kHz mono.
    pub clip: Arc<Vec<f32>>,
    /// Loss, delay and jitter on each engine's upload (`None`: relayed, unimpaired).
    pub impair: Option<Impairment>,
    /// Seed of the impairment's draws.
    pub seed: u64,
    /// From the call connecting to the clip (FEC, RTCP and the jitter estimate settle).
    pub settle: Duration,
    /// The sender's capture processing.
    pub processing: Processing,
    /// The echo case: the sender sits in a room with the far end's voice on its speaker.
    pub room: Option<RoomOptions>,
    /// A noise in the sender's room from the moment its engine starts (looped; the clip is
    /// mixed over it): a fan that was on before the call, as a room's noise is.
    pub ambient: Option<Arc<Vec<f32>>>,
}

/// The echo case (issue 19): the receiver ("ear") talks too — `far`, looped, from the start —
/// and the sender ("mouth") plays it on a speaker its microphone hears through a room (`delay`,
/// `gain`, a short reverb tail). The sender's own speech (the clip) starts `near_after` in,
/// so the call is far-end single talk first, then double talk. What the ear records is what
/// the sender sent: the echo (ERLE) and the near-end speech during double talk (PESQ).
#[derive(Debug, Clone)]
pub struct RoomOptions {
    pub far: Arc<Vec<f32>>,
    pub delay: Duration,
    pub gain: f32,
    pub near_after: Duration,
}

/// One run: what the receiver played from the clip's start on (48 kHz mono), and the
/// receiver's view of the call.
#[derive(Debug, Clone)]
pub struct Run {
    pub heard: Vec<f32>,
    pub receiver: Option<PeerReport>,
    pub impaired: Option<impair::Counts>,
    /// The sender's bytes sent while the clip played, per second of clip (bit/s ÷ 8).
    pub sent_bytes_per_s: Option<f64>,
    /// The echo case: the echo's power in the sender's microphone, per 20 ms from the clip's
    /// start (the far end's voice back through the room).
    pub echo_power: Vec<f64>,
}

/// The clip, once, when armed (after `skip` samples of silence, or looped); silence before
/// and after.
struct ClipSource {
    clip: Arc<Vec<f32>>,
    at: usize,
    skip: usize,
    looped: bool,
    armed: Arc<AtomicBool>,
}

impl ClipSource {
    fn once(clip: Arc<Vec<f32>>, armed: Arc<AtomicBool>) -> Self {
        Self {
            clip,
            at: 0,
            skip: 0,
            looped: false,
            armed,
        }
    }
}

/// A microphone in a room with a steady noise: `inner`, with `noise` (looped) mixed in from
/// the first frame on, armed or not.
struct AmbientMic {
    inner: Box<dyn AudioSource + Send>,
    noise: Arc<Vec<f32>>,
    at: usize,
}

impl AudioSource for AmbientMic {
    fn next_frame(&mut self, out: &mut [f32]) {
        self.inner.next_frame(out);
        for s in out.iter_mut() {
            *s += self.noise[self.at];
            self.at = (self.at + 1) % self.noise.len();
        }
    }
}

impl AudioSource for ClipSource {
    fn next_frame(&mut self, out: &mut [f32]) {
        out.fill(0.0);
        if !self.armed.load(Ordering::Relaxed) {
            return;
        }
        let mut out = out;
        if self.skip > 0 {
            let k = self.skip.min(out.len());
            self.skip -= k;
            out = &mut out[k..];
        }
        while !out.is_empty() {
            if self.at == self.clip.len() {
                if !self.looped {
                    return;
                }
                self.at = 0;
            }
            let n = (self.clip.len() - self.at).min(out.len());
            out[..n].copy_from_slice(&self.clip[self.at..self.at + n]);
            self.at += n;
            out = &mut out[n..];
        }
    }
}

/// The sender's room: what its speaker plays reaches its microphone `delay` later through
/// an impulse response (the direct path at `gain`, then reflections every ~3.3 ms fading by
/// 0.6 each), added to what the sender says.
struct Room {
    /// Played samples not yet heard (pre-filled with the delay's silence).
    line: std::collections::VecDeque<f32>,
    /// The last samples that left the line (a ring; `at` counts them), for the reflections.
    tail: Vec<f32>,
    at: usize,
    taps: Vec<(usize, f32)>,
    echo_power: Vec<f64>,
}

struct RoomSpeaker(Arc<Mutex<Room>>);
struct RoomMic {
    room: Arc<Mutex<Room>>,
    voice: ClipSource,
    armed: Arc<AtomicBool>,
}

fn room(delay: Duration, gain: f32) -> Arc<Mutex<Room>> {
    let taps = cromulent::audio::analysis::room_taps(0, gain);
    let span = taps.last().map_or(1, |t| t.0 + 1);
    let delay = (delay.as_secs_f64() * 48_000.0) as usize;
    Arc::new(Mutex::new(Room {
        line: std::iter::repeat_n(0.0, delay).collect(),
        tail: vec![0.0; span],
        at: 0,
        taps,
        echo_power: Vec::new(),
    }))
}

impl AudioSink for RoomSpeaker {
    fn write_frame(&mut self, frame: &[f32]) -> Result<(), SinkError> {
        let mut room = self.0.lock().unwrap_or_else(|e| e.into_inner());
        room.line.extend(frame.iter().copied());
        Ok(())
    }

    fn finish(&mut self) -> Result<(), SinkError> {
        Ok(())
    }
}

impl AudioSource for RoomMic {
    fn next_frame(&mut self, out: &mut [f32]) {
        self.voice.next_frame(out);
        let mut room = self.room.lock().unwrap_or_else(|e| e.into_inner());
        let mut power = 0.0f64;
        for s in out.iter_mut() {
            // A speaker that fell behind the microphone plays silence meanwhile.
            let x = room.line.pop_front().unwrap_or(0.0);
            let (at, span) = (room.at, room.tail.len());
            room.tail[at % span] = x;
            room.at += 1;
            let echo: f32 = room
                .taps
                .iter()
                .map(|&(t, g)| g * room.tail[(at + span - t) % span])
                .sum();
            power += f64::from(echo).powi(2);
            *s += echo;
        }
        if self.armed.load(Ordering::Relaxed) {
            room.echo_power.push(power / out.len() as f64);
        }
    }
}

/// Keeps what it is given once armed.
struct Recorder {
    heard: Arc<Mutex<Vec<f32>>>,
    armed: Arc<AtomicBool>,
}

impl AudioSink for Recorder {
    fn write_frame(&mut self, frame: &[f32]) -> Result<(), SinkError> {
        if self.armed.load(Ordering::Relaxed) {
            let mut heard = self.heard.lock().unwrap_or_else(|e| e.into_inner());
            heard.extend_from_slice(frame);
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<(), SinkError> {
        Ok(())
    }
}

pub async fn run(opts: &Options) -> anyhow::Result<Run> {
    let rig = Rig::start(true, RelayOver::Udp, opts.impair, opts.seed, None).await?;
    let armed = Arc::new(AtomicBool::new(false));
    let heard: Arc<Mutex<Vec<f32>>> = Arc::default();
    let room_state = opts.room.as_ref().map(|r| room(r.delay, r.gain));
    let voice = ClipSource::once(opts.clip.clone(), armed.clone());
    let (mouth_in, mouth_out): (Box<dyn AudioSource + Send>, Box<dyn AudioSink + Send>) =
        match (&room_state, &opts.room) {
            (Some(state), Some(r)) => (
                Box::new(RoomMic {
                    room: state.clone(),
                    voice: ClipSource {
                        skip: (r.near_after.as_secs_f64() * 48_000.0) as usize,
                        ..voice
                    },
                    armed: armed.clone(),
                }),
                Box::new(RoomSpeaker(state.clone())),
            ),
            _ => (
                Box::new(voice),
                Box::new(cromulent::audio::NullSink::default()),
            ),
        };
    let mouth_in: Box<dyn AudioSource + Send> = match &opts.ambient {
        Some(noise) => Box::new(AmbientMic {
            inner: mouth_in,
            noise: noise.clone(),
            at: 0,
        }),
        None => mouth_in,
    };
    let ear_in: Box<dyn AudioSource + Send> = match &opts.room {
        Some(r) => Box::new(ClipSource {
            looped: true,
            ..ClipSource::once(r.far.clone(), armed.clone())
        }),
        None => Box::new(cromulent::audio::Silence),
    };
    let mouth_rt = rig.runtimes().mouth().enter();
    let (tx, mut tx_events) = engine::spawn_with_audio(
        engine::EngineConfig {
            processing: opts.processing,
            ..probe::engine_config(&rig.url, "mouth", rig.policy)
        },
        mouth_in,
        mouth_out,
    )?;
    drop(mouth_rt);
    let ear_rt = rig.runtimes().ear().enter();
    let (rx, mut rx_events) = engine::spawn_with_audio(
        probe::engine_config(&rig.url, "ear", rig.policy),
        ear_in,
        Box::new(Recorder {
            heard: heard.clone(),
            armed: armed.clone(),
        }),
    )?;
    drop(ear_rt);
    let general = || EngineCommand::Join(ChannelRef("General".into()));
    tx.send(general());
    rx.send(general());
    probe::wait_connected(&mut tx_events, "ear").await?;
    probe::wait_connected(&mut rx_events, "mouth").await?;
    tokio::time::sleep(opts.settle).await;
    let sent_before = probe::stats(&tx, &mut tx_events, "ear").await;
    armed.store(true, Ordering::Relaxed);
    // The clip, and a second for the path's delay and the jitter buffer to drain.
    let near_after = opts.room.as_ref().map_or(Duration::ZERO, |r| r.near_after);
    let clip = near_after + Duration::from_secs_f64(opts.clip.len() as f64 / 48_000.0);
    tokio::time::sleep(clip).await;
    let sent_after = probe::stats(&tx, &mut tx_events, "ear").await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let receiver = probe::stats(&rx, &mut rx_events, "mouth").await;
    armed.store(false, Ordering::Relaxed);
    let sent_bytes_per_s = sent_before
        .zip(sent_after)
        .map(|(a, b)| b.bytes_sent.saturating_sub(a.bytes_sent) as f64 / clip.as_secs_f64());
    probe::shutdown(&tx, &mut tx_events).await;
    probe::shutdown(&rx, &mut rx_events).await;
    let impaired = rig.stop().await;
    let heard = std::mem::take(&mut *heard.lock().unwrap_or_else(|e| e.into_inner()));
    let echo_power = room_state
        .map(|r| std::mem::take(&mut r.lock().unwrap_or_else(|e| e.into_inner()).echo_power))
        .unwrap_or_default();
    Ok(Run {
        heard,
        receiver,
        impaired,
        sent_bytes_per_s,
        echo_power,
    })
}

/// The clip through Opus alone, as the engine configures it (20 ms frames, in-band FEC, DTX),
/// no network: each packet lost with probability `loss` (seeded), a lost frame rebuilt from
/// the next packet's FEC when that one arrived, else concealed. The reference point for the
/// call's figures.
pub fn opus_alone(
    clip: &[f32],
    loss: f64,
    seed: u64,
    processing: Processing,
) -> anyhow::Result<Vec<f32>> {
    use cromulent::audio::{Decoder, Encoder, FRAME_SAMPLES, is_dtx_packet};
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut encoder = Encoder::new()?;
    let mut chain = cromulent::audio::processing::CaptureProcessor::new(processing);
    let packets: Vec<Option<Vec<u8>>> = clip
        .chunks(FRAME_SAMPLES)
        .map(|chunk| {
            let mut frame = [0.0f32; FRAME_SAMPLES];
            frame[..chunk.len()].copy_from_slice(chunk);
            chain.render(&[0.0; FRAME_SAMPLES]);
            chain.capture(&mut frame);
            let packet = encoder.encode(&frame).map(<[u8]>::to_vec);
            packet.map(|p| (!is_dtx_packet(&p) && !rng.random_bool(loss)).then_some(p))
        })
        .collect::<Result<_, _>>()?;
    let mut decoder = Decoder::new()?;
    let mut out = vec![0.0f32; packets.len() * FRAME_SAMPLES];
    for (i, frame) in out.chunks_mut(FRAME_SAMPLES).enumerate() {
        match (&packets[i], packets.get(i + 1).and_then(Option::as_ref)) {
            (Some(p), _) => decoder.decode(p, frame)?,
            (None, Some(next)) => decoder.decode_fec(next, frame)?,
            (None, None) => decoder.conceal(frame)?,
        }
    }
    Ok(out)
}

/// The capture processing alone, offline, on `seconds` of `clip` (looped) with `far` (looped)
/// as what the speaker plays, 20 ms frames as the engine runs it: the time it took. Its ratio
/// to `seconds` is the share of a core the chain costs on this machine.
pub fn processing_cost(
    clip: &[f32],
    far: &[f32],
    seconds: usize,
    processing: Processing,
) -> Duration {
    use cromulent::audio::FRAME_SAMPLES;
    let mut chain = cromulent::audio::processing::CaptureProcessor::new(processing);
    let looped = |x: &[f32], i: usize| -> [f32; FRAME_SAMPLES] {
        std::array::from_fn(|k| x[(i * FRAME_SAMPLES + k) % x.len()])
    };
    let frames = seconds * 50;
    let (mics, speakers): (Vec<_>, Vec<_>) = (0..frames)
        .map(|i| (looped(clip, i), looped(far, i)))
        .unzip();
    let started = std::time::Instant::now();
    for (mut mic, speaker) in mics.into_iter().zip(speakers) {
        chain.render(&speaker);
        std::hint::black_box(chain.capture(&mut mic));
        std::hint::black_box(&mic);
    }
    started.elapsed()
}
