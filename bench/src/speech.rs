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

use cromulent::audio::{AudioSink, AudioSource, SinkError};
use cromulent::engine::{self, ChannelRef, EngineCommand, PeerReport};

use crate::impair::{self, Impairment};
use crate::probe::{self, Rig};

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
}

/// One run: what the receiver played from the clip's start on (48 kHz mono), and the
/// receiver's view of the call.
#[derive(Debug, Clone)]
pub struct Run {
    pub heard: Vec<f32>,
    pub receiver: Option<PeerReport>,
    pub impaired: Option<impair::Counts>,
}

/// The clip, once, when armed; silence before and after.
struct ClipSource {
    clip: Arc<Vec<f32>>,
    at: usize,
    armed: Arc<AtomicBool>,
}

impl AudioSource for ClipSource {
    fn next_frame(&mut self, out: &mut [f32]) {
        out.fill(0.0);
        if !self.armed.load(Ordering::Relaxed) {
            return;
        }
        let end = (self.at + out.len()).min(self.clip.len());
        let n = end.saturating_sub(self.at);
        out[..n].copy_from_slice(&self.clip[self.at..end]);
        self.at = end;
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
    let rig = Rig::start(true, opts.impair, opts.seed, None).await?;
    let armed = Arc::new(AtomicBool::new(false));
    let heard: Arc<Mutex<Vec<f32>>> = Arc::default();
    let mouth_rt = rig.runtimes().mouth().enter();
    let (tx, mut tx_events) = engine::spawn_with_audio(
        probe::engine_config(&rig.url, "mouth", rig.policy),
        Box::new(ClipSource {
            clip: opts.clip.clone(),
            at: 0,
            armed: armed.clone(),
        }),
        Box::new(cromulent::audio::NullSink::default()),
    )?;
    drop(mouth_rt);
    let ear_rt = rig.runtimes().ear().enter();
    let (rx, mut rx_events) = engine::spawn_with_audio(
        probe::engine_config(&rig.url, "ear", rig.policy),
        Box::new(cromulent::audio::Silence),
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
    armed.store(true, Ordering::Relaxed);
    // The clip, and a second for the path's delay and the jitter buffer to drain.
    let clip = Duration::from_secs_f64(opts.clip.len() as f64 / 48_000.0);
    tokio::time::sleep(clip + Duration::from_secs(1)).await;
    let receiver = probe::stats(&rx, &mut rx_events, "mouth").await;
    armed.store(false, Ordering::Relaxed);
    probe::shutdown(&tx, &mut tx_events).await;
    probe::shutdown(&rx, &mut rx_events).await;
    let impaired = rig.stop().await;
    let heard = std::mem::take(&mut *heard.lock().unwrap_or_else(|e| e.into_inner()));
    Ok(Run {
        heard,
        receiver,
        impaired,
    })
}

/// The clip through Opus alone, as the engine configures it (20 ms frames, in-band FEC, DTX),
/// no network: each packet lost with probability `loss` (seeded), a lost frame rebuilt from
/// the next packet's FEC when that one arrived, else concealed. The reference point for the
/// call's figures.
pub fn opus_alone(clip: &[f32], loss: f64, seed: u64) -> anyhow::Result<Vec<f32>> {
    use cromulent::audio::{Decoder, Encoder, FRAME_SAMPLES, is_dtx_packet};
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut encoder = Encoder::new()?;
    let packets: Vec<Option<Vec<u8>>> = clip
        .chunks(FRAME_SAMPLES)
        .map(|chunk| {
            let mut frame = [0.0f32; FRAME_SAMPLES];
            frame[..chunk.len()].copy_from_slice(chunk);
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
