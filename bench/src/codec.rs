//! Opus alone at each frame size and encoder application (issue 22's low-delay mode): a clip
//! through the client's own `Encoder`/`Decoder`, no network, each packet lost with a seeded
//! probability (rebuilt from the next packet's in-band FEC when it carries any, else
//! concealed). What it measures: the encoder's look-ahead and the delay of the decoded audio
//! against the input, the packets' modes (SILK, hybrid, CELT), payload and wire bitrate, DTX,
//! and the time encoding and decoding took. A benchmark: it prints, it never asserts.

use std::time::{Duration, Instant};

use cromulent::audio::{Decoder, Encoder, EncoderConfig, FrameSize, is_dtx_packet};

/// Bytes every RTP packet carries on the wire besides its Opus payload: RTP header 12, SRTP
/// authentication tag 10 (AES_CM_128_HMAC_SHA1_80), UDP 8, IPv4 20 (IPv6: 20 more).
pub const WIRE_OVERHEAD_BYTES: usize = 12 + 10 + 8 + 20;

/// One configuration's figures.
#[derive(Debug, Clone)]
pub struct Report {
    pub frame: FrameSize,
    pub config: EncoderConfig,
    /// The encoder's look-ahead (`OPUS_GET_LOOKAHEAD`), samples at 48 kHz.
    pub lookahead: usize,
    /// Where the decoded audio best matches the input (cross-correlation), samples.
    pub measured_lag: usize,
    /// Packets by mode: SILK only, hybrid, CELT only (the TOC byte, RFC 6716 §3.1).
    pub silk: usize,
    pub hybrid: usize,
    pub celt: usize,
    /// Packets the encoder made (one per frame), and how many of them were DTX (not sent).
    pub packets: usize,
    pub dtx: usize,
    /// Opus payload bytes of the packets sent.
    pub payload_bytes: usize,
    /// Seconds of audio.
    pub seconds: f64,
    pub encode_time: Duration,
    pub decode_time: Duration,
    /// Lost frames rebuilt from the next packet's FEC (SILK or hybrid), and concealed (the
    /// next packet also lost, or CELT: no FEC in it). DTX gaps are concealed too, not counted.
    pub fec_frames: usize,
    pub plc_frames: usize,
    /// The decoded clip, aligned with the input by nothing (as a receiver plays it).
    pub decoded: Vec<f32>,
}

impl Report {
    /// Packets sent per second (DTX packets are not sent).
    pub fn packets_per_s(&self) -> f64 {
        (self.packets - self.dtx) as f64 / self.seconds
    }

    /// Opus payload, kbit/s.
    pub fn payload_kbps(&self) -> f64 {
        self.payload_bytes as f64 * 8.0 / self.seconds / 1000.0
    }

    /// On the wire (RTP, SRTP tag, UDP, IPv4), kbit/s.
    pub fn wire_kbps(&self) -> f64 {
        let overhead = self.packets_per_s() * WIRE_OVERHEAD_BYTES as f64 * 8.0 / 1000.0;
        self.payload_kbps() + overhead
    }

    /// Encoding and decoding, as a share of one core while the clip plays (%).
    pub fn cpu_percent(&self) -> (f64, f64) {
        let share = |d: Duration| d.as_secs_f64() / self.seconds * 100.0;
        (share(self.encode_time), share(self.decode_time))
    }
}

/// `clip` (48 kHz mono) through Opus in `frame`-long frames with `config`, each packet lost
/// with probability `loss`, seeded.
pub fn run(
    clip: &[f32],
    frame: FrameSize,
    config: EncoderConfig,
    loss: f64,
    seed: u64,
) -> anyhow::Result<Report> {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let n = frame.samples();
    let mut encoder = Encoder::with_config(config)?;
    let lookahead = encoder.lookahead()?;
    let (mut silk, mut hybrid, mut celt, mut dtx, mut payload_bytes) = (0, 0, 0, 0, 0);
    let mut encode_time = Duration::ZERO;
    // Per frame: the packet, `None` if it was lost; DTX frames (never sent) are `Some(empty)`.
    let mut sent: Vec<Option<Vec<u8>>> = Vec::new();
    for chunk in clip.chunks(n) {
        let mut input = vec![0.0f32; n];
        input[..chunk.len()].copy_from_slice(chunk);
        let t = Instant::now();
        let packet = encoder.encode(&input)?.to_vec();
        encode_time += t.elapsed();
        if is_dtx_packet(&packet) {
            dtx += 1;
            sent.push(Some(Vec::new()));
            continue;
        }
        match packet[0] >> 3 {
            0..=11 => silk += 1,
            12..=15 => hybrid += 1,
            _ => celt += 1,
        }
        payload_bytes += packet.len();
        sent.push((!rng.random_bool(loss)).then_some(packet));
    }
    let mut decoder = Decoder::new()?;
    let mut decoded = vec![0.0f32; sent.len() * n];
    let (mut fec_frames, mut plc_frames) = (0, 0);
    let t = Instant::now();
    for (i, out) in decoded.chunks_mut(n).enumerate() {
        let next = sent.get(i + 1).and_then(Option::as_ref);
        match (&sent[i], next) {
            (Some(p), _) if p.is_empty() => decoder.conceal(out)?,
            (Some(p), _) => decoder.decode(p, out)?,
            (None, Some(next)) if next.first().is_some_and(|toc| toc >> 3 < 16) => {
                decoder.decode_fec(next, out)?;
                fec_frames += 1;
            }
            (None, _) => {
                decoder.conceal(out)?;
                plc_frames += 1;
            }
        }
    }
    let decode_time = t.elapsed();
    let measured_lag = best_lag(clip, &decoded, 2 * lookahead + 480);
    Ok(Report {
        frame,
        config,
        lookahead,
        measured_lag,
        silk,
        hybrid,
        celt,
        packets: sent.len(),
        dtx,
        payload_bytes,
        seconds: clip.len() as f64 / 48_000.0,
        encode_time,
        decode_time,
        fec_frames,
        plc_frames,
        decoded,
    })
}

/// The lag (0..max) at which `decoded` correlates best with `input`.
fn best_lag(input: &[f32], decoded: &[f32], max: usize) -> usize {
    let len = input.len().min(decoded.len()).saturating_sub(max);
    (0..max)
        .max_by(|&a, &b| {
            let c = |lag: usize| -> f64 {
                (0..len)
                    .map(|i| f64::from(input[i]) * f64::from(decoded[i + lag]))
                    .sum()
            };
            c(a).total_cmp(&c(b))
        })
        .unwrap_or(0)
}
