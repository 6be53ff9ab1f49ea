//! Opus encoding of 5, 10 or 20 ms mono frames ([`FrameSize`]) and decoding of any Opus
//! packet a peer sends (2.5 to 120 ms, [`PacketDuration`]), configured for voice over lossy
//! links.
//!
//! Thin wrappers over `opus` 0.3.1 (system libopus) that fix the settings the whole client
//! agrees on and own their scratch buffers, so encoding and decoding never allocate.
//! Packets from peers are untrusted: malformed packets give an error, never a panic, and never
//! a partially written frame.

use std::time::Duration;

use super::frame::{FrameSize, SAMPLE_RATE};

/// Largest packet we produce: one Opus frame is at most 1275 bytes (RFC 6716 §3.2.1).
const MAX_PACKET: usize = 1275;

/// The duration of one received Opus packet, decided from its own TOC byte and frame count
/// (RFC 6716 §3.1–3.2): 1 to 48 frames of 2.5, 5, 10, 20, 40 or 60 ms, at most 120 ms in all,
/// so always a whole number of 2.5 ms steps. A peer (another client on another frame size, a
/// browser) may send any of them; the receive side plays each peer on its own packets' clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PacketDuration {
    /// Samples per channel at [`SAMPLE_RATE`]: a multiple of [`PacketDuration::STEP_SAMPLES`]
    /// up to [`PacketDuration::MAX_SAMPLES`].
    samples: u16,
}

impl PacketDuration {
    /// 2.5 ms, the shortest Opus frame.
    pub const STEP_SAMPLES: usize = SAMPLE_RATE as usize / 400;
    /// 120 ms, the longest Opus packet.
    pub const MAX_SAMPLES: usize = 48 * Self::STEP_SAMPLES;

    /// The duration of a packet that decodes to `samples` samples, if an Opus packet can.
    pub const fn of_samples(samples: usize) -> Option<Self> {
        if samples == 0
            || !samples.is_multiple_of(Self::STEP_SAMPLES)
            || samples > Self::MAX_SAMPLES
        {
            return None;
        }
        Some(Self {
            samples: samples as u16, // ≤ 5760, checked above
        })
    }

    /// Samples per channel at [`SAMPLE_RATE`].
    pub const fn samples(self) -> usize {
        self.samples as usize
    }

    pub const fn duration(self) -> Duration {
        // 48 samples per ms: 125/6 µs per sample, exact for multiples of 2.5 ms.
        Duration::from_micros(self.samples as u64 * 125 / 6)
    }

    /// The duration in milliseconds (2.5 is not a whole number of them).
    pub fn ms(self) -> f64 {
        self.samples as f64 * 1000.0 / f64::from(SAMPLE_RATE)
    }
}

impl From<FrameSize> for PacketDuration {
    fn from(frame: FrameSize) -> Self {
        Self {
            samples: frame.samples() as u16, // 240, 480 or 960
        }
    }
}

impl Default for PacketDuration {
    fn default() -> Self {
        FrameSize::default().into()
    }
}

impl std::fmt::Display for PacketDuration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ms", self.ms())
    }
}

/// Why encoding or decoding failed.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// libopus rejected the call (for decoding: usually a corrupt packet).
    #[error("opus: {0}")]
    Opus(#[from] opus::Error),
    /// A frame to encode that is not 5, 10 or 20 ms, a packet or output buffer that is no
    /// Opus duration, or a packet whose length does not match the buffer given for it.
    #[error("opus frame of {samples} samples per channel does not fit here")]
    WrongDuration {
        /// Samples at 48 kHz the packet (or frame) would decode to.
        samples: usize,
    },
    /// An empty packet was given where real data is required (use [`Decoder::conceal`] for
    /// a missing packet).
    #[error("empty opus packet")]
    EmptyPacket,
}

/// Which libopus application an encoder runs: fixed at its creation (libopus cannot switch a
/// running encoder into or out of restricted low delay).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Application {
    /// `OPUS_APPLICATION_VOIP`: SILK, hybrid or CELT as the encoder sees fit, in-band FEC in
    /// SILK and hybrid; 6.5 ms look-ahead (2.5 ms of CELT plus 4 ms kept so it can switch to
    /// SILK).
    Voip,
    /// `OPUS_APPLICATION_RESTRICTED_LOWDELAY`: CELT only, 2.5 ms look-ahead, no in-band FEC.
    RestrictedLowDelay,
}

/// Encoder settings. [`Default`] is what the client sends with on 20 ms frames;
/// [`EncoderConfig::for_frame`] on any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EncoderConfig {
    /// The libopus application (SILK-capable VoIP, or CELT-only restricted low delay).
    pub application: Application,
    /// Target bitrate in bit/s. 32 kbit/s gives wideband-to-superwideband voice with room for
    /// in-band FEC.
    pub bitrate: i32,
    /// In-band forward error correction: each packet also carries a coarse copy of the previous
    /// frame, which [`Decoder::decode_fec`] uses when that frame's packet is lost. SILK and
    /// hybrid packets only: a CELT-only stream carries none whatever this says.
    pub inband_fec: bool,
    /// Discontinuous transmission: during silence the encoder emits ≤ 2-byte packets that
    /// need not be sent ([`is_dtx_packet`]).
    pub dtx: bool,
    /// Expected loss in percent; makes the encoder spend bits on FEC (0..=100).
    pub packet_loss_perc: u8,
}

impl Default for EncoderConfig {
    fn default() -> Self {
        Self {
            application: Application::Voip,
            bitrate: 32_000,
            inband_fec: true,
            dtx: true,
            packet_loss_perc: 10,
        }
    }
}

impl EncoderConfig {
    /// What the client sends with on `frame`-long frames.
    ///
    /// 10 and 20 ms: [`Application::Voip`], so speech goes out as SILK or hybrid with in-band
    /// FEC (a lost packet is rebuilt from the next one's copy).
    ///
    /// 5 ms, the low-delay mode: [`Application::RestrictedLowDelay`] at 48 kbit/s. SILK cannot
    /// code frames shorter than 10 ms, so at 5 ms libopus sends CELT in either application (every
    /// packet of a speech clip, measured); the VoIP application only keeps its 4 ms of SILK
    /// look-ahead for nothing: 6.5 ms against 2.5 ms, a codec delay of 11.5 against 7.5 ms,
    /// for the same packets, the same PESQ and the same CPU (`bench/codec-frames.sh`,
    /// BENCHMARKS.md "Low-delay mode"). 48 kbit/s rather than 32: CELT in 5 ms frames at 32
    /// kbit/s scored wideband PESQ 3.6–3.7 (20 ms hybrid: 4.3), at 48 kbit/s 3.9–4.0 — and at
    /// 200 packets a second the headers already cost ~90 kbit/s, so the payload is the smaller
    /// part of the wire (~140 kbit/s per peer each way in a call, 56 at 20 ms).
    ///
    /// The price of CELT: **no in-band FEC** (LBRR exists in SILK and hybrid packets only) — a
    /// lost 5 ms packet is always concealed, never rebuilt. At 5 % random loss speech scored
    /// PESQ 2.1–2.2 against 3.25 for 10 ms and 3.95 for 20 ms frames with FEC, though each
    /// concealed gap is a quarter as long. The mode is for clean links; the loss feedback
    /// (`engine::loss_feedback`) still sets the expected loss, which changes nothing in CELT.
    pub fn for_frame(frame: FrameSize) -> Self {
        match frame {
            FrameSize::Ms5 => Self {
                application: Application::RestrictedLowDelay,
                bitrate: 48_000,
                ..Self::default()
            },
            FrameSize::Ms10 | FrameSize::Ms20 => Self::default(),
        }
    }
}

/// True for packets the sender may skip: libopus documents that an encoded packet of 2 bytes or
/// less carries no audio (DTX / "no transmission") and need not be sent. The receiver then
/// conceals the gap, which libopus renders as comfort noise.
pub fn is_dtx_packet(packet: &[u8]) -> bool {
    packet.len() <= 2
}

/// A 48 kHz mono Opus encoder of 5, 10 or 20 ms frames.
pub struct Encoder {
    inner: opus::Encoder,
    /// Output scratch, reused for every packet.
    packet: [u8; MAX_PACKET],
}

impl Encoder {
    /// An encoder with [`EncoderConfig::default`].
    pub fn new() -> Result<Self, CodecError> {
        Self::with_config(EncoderConfig::default())
    }

    /// An encoder with explicit settings.
    pub fn with_config(config: EncoderConfig) -> Result<Self, CodecError> {
        let application = match config.application {
            Application::Voip => opus::Application::Voip,
            Application::RestrictedLowDelay => opus::Application::LowDelay,
        };
        let mut inner = opus::Encoder::new(SAMPLE_RATE, opus::Channels::Mono, application)?;
        inner.set_bitrate(opus::Bitrate::Bits(config.bitrate))?;
        inner.set_inband_fec(config.inband_fec)?;
        inner.set_dtx(config.dtx)?;
        inner.set_packet_loss_perc(i32::from(config.packet_loss_perc.min(100)))?;
        Ok(Self {
            inner,
            packet: [0; MAX_PACKET],
        })
    }

    /// The loss to expect, in percent: the encoder spends that share of bits on in-band FEC
    /// (none at 0; nothing in CELT-only packets). For the engine's loss feedback
    /// (`engine::loss_feedback`).
    pub fn set_expected_loss(&mut self, percent: u8) -> Result<(), CodecError> {
        Ok(self
            .inner
            .set_packet_loss_perc(i32::from(percent.min(100)))?)
    }

    /// Samples of look-ahead the encoder adds to the frame's own length (libopus
    /// `OPUS_GET_LOOKAHEAD`): the codec delay is the frame plus this.
    pub fn lookahead(&mut self) -> Result<usize, CodecError> {
        Ok(usize::try_from(self.inner.get_lookahead()?).unwrap_or(0))
    }

    /// Encodes one 5, 10 or 20 ms frame. The returned packet borrows the encoder's buffer: copy
    /// it out (e.g. into the RTP payload) before the next call. Check [`is_dtx_packet`] to
    /// skip sending.
    pub fn encode(&mut self, frame: &[f32]) -> Result<&[u8], CodecError> {
        if FrameSize::of_samples(frame.len()).is_none() {
            return Err(CodecError::WrongDuration {
                samples: frame.len(),
            });
        }
        let len = self.inner.encode_float(frame, &mut self.packet)?;
        Ok(&self.packet[..len])
    }
}

/// A 48 kHz mono Opus decoder with loss concealment and FEC recovery. One per remote peer: its
/// state follows that peer's stream.
pub struct Decoder {
    inner: opus::Decoder,
}

impl Decoder {
    /// A fresh decoder.
    pub fn new() -> Result<Self, CodecError> {
        Ok(Self {
            inner: opus::Decoder::new(SAMPLE_RATE, opus::Channels::Mono)?,
        })
    }

    /// Decodes a received packet into `out`, which must be exactly as long as the packet
    /// ([`packet_duration`]).
    pub fn decode(&mut self, packet: &[u8], out: &mut [f32]) -> Result<(), CodecError> {
        check_duration(packet, out.len())?;
        self.decode_checked(packet, out, false)
    }

    /// Packet-loss concealment: synthesizes the next `out.len()` samples (any
    /// [`PacketDuration`]) from the decoder's history (fading towards silence/comfort noise over
    /// consecutive calls). Use for a lost packet when the following packet is not available,
    /// and across DTX gaps.
    pub fn conceal(&mut self, out: &mut [f32]) -> Result<(), CodecError> {
        self.decode_checked(&[], out, false)
    }

    /// Recovers the frame *before* `next_packet` from the FEC data inside it (`out` as long
    /// as that packet). Call this for the lost frame, then [`Decoder::decode`] `next_packet`
    /// itself for the frame after. If `next_packet` carries no FEC data, libopus falls back
    /// to concealment (always, for CELT-only packets: they carry no FEC).
    pub fn decode_fec(&mut self, next_packet: &[u8], out: &mut [f32]) -> Result<(), CodecError> {
        check_duration(next_packet, out.len())?;
        self.decode_checked(next_packet, out, true)
    }

    /// Calls libopus with an output buffer of one frame (which also tells it the duration to
    /// conceal/recover) and checks it produced exactly that.
    fn decode_checked(
        &mut self,
        packet: &[u8],
        out: &mut [f32],
        fec: bool,
    ) -> Result<(), CodecError> {
        if PacketDuration::of_samples(out.len()).is_none() {
            return Err(CodecError::WrongDuration { samples: out.len() });
        }
        let samples = self.inner.decode_float(packet, out, fec)?;
        if samples != out.len() {
            out.fill(0.0);
            return Err(CodecError::WrongDuration { samples });
        }
        Ok(())
    }
}

/// The duration of a received packet, read from the packet itself (any Opus duration, 2.5 to
/// 120 ms), or an error (empty, corrupt), decided before libopus touches any decoder state.
pub fn packet_duration(packet: &[u8]) -> Result<PacketDuration, CodecError> {
    if packet.is_empty() {
        return Err(CodecError::EmptyPacket);
    }
    let samples = opus::packet::get_nb_samples(packet, SAMPLE_RATE)?;
    PacketDuration::of_samples(samples).ok_or(CodecError::WrongDuration { samples })
}

/// Rejects packets that are not `expected` samples long.
fn check_duration(packet: &[u8], expected: usize) -> Result<(), CodecError> {
    let samples = packet_duration(packet)?.samples();
    if samples != expected {
        return Err(CodecError::WrongDuration { samples });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::analysis::{dominant_frequency, rms, tone_power};
    use crate::audio::frame::{FRAME_SAMPLES, Frame, SILENT_FRAME};
    use crate::audio::source::{AudioSource, Silence, Tone};

    fn encode_all(source: &mut dyn AudioSource, frames: usize) -> (Vec<Frame>, Vec<Vec<u8>>) {
        let mut encoder = Encoder::new().unwrap();
        let mut inputs = Vec::new();
        let mut packets = Vec::new();
        for _ in 0..frames {
            let mut frame = SILENT_FRAME;
            source.next_frame(&mut frame);
            packets.push(encoder.encode(&frame).unwrap().to_vec());
            inputs.push(frame);
        }
        (inputs, packets)
    }

    fn decode_all(packets: &[Vec<u8>]) -> Vec<f32> {
        let mut decoder = Decoder::new().unwrap();
        let mut out = Vec::new();
        for p in packets {
            let mut frame = SILENT_FRAME;
            decoder.decode(p, &mut frame).unwrap();
            out.extend_from_slice(&frame);
        }
        out
    }

    #[test]
    fn tone_survives_encode_and_decode() {
        let (_, packets) = encode_all(&mut Tone::new(440.0, 0.5), 50);
        let total: usize = packets.iter().map(Vec::len).sum();
        // ~32 kbit/s for one second = ~4000 bytes; well away from both silence and "max".
        assert!((2000..8000).contains(&total), "{total} bytes");
        assert!(packets.iter().all(|p| !is_dtx_packet(p)));

        let decoded = decode_all(&packets);
        let f = dominant_frequency(&decoded, SAMPLE_RATE).unwrap();
        assert!((f - 440.0).abs() < 2.0, "dominant {f} Hz");
        let steady = &decoded[4800..]; // skip the codec's start-up
        let level = rms(steady);
        assert!(
            (level - 0.5 * std::f32::consts::FRAC_1_SQRT_2).abs() < 0.07,
            "rms {level}"
        );
        assert!(tone_power(steady, SAMPLE_RATE, 440.0) > 0.9);
    }

    #[test]
    fn ten_ms_frames_round_trip_and_say_their_size() {
        let mut encoder = Encoder::new().unwrap();
        let mut decoder = Decoder::new().unwrap();
        let mut tone = Tone::new(1000.0, 0.5);
        let mut decoded = Vec::new();
        for _ in 0..100 {
            let mut frame = [0.0; 480];
            tone.next_frame(&mut frame);
            let packet = encoder.encode(&frame).unwrap().to_vec();
            assert_eq!(packet_duration(&packet).unwrap(), FrameSize::Ms10.into());
            let mut out = [0.0; 480];
            decoder.decode(&packet, &mut out).unwrap();
            decoded.extend_from_slice(&out);
        }
        let f = dominant_frequency(&decoded[4800..], SAMPLE_RATE).unwrap();
        assert!((f - 1000.0).abs() < 3.0, "dominant {f} Hz");
        // A 10 ms packet does not fit a 20 ms slot, and 15 ms is not a frame of ours.
        let packet = encoder.encode(&[0.1; 480]).unwrap().to_vec();
        assert!(matches!(
            decoder.decode(&packet, &mut [0.0; FRAME_SAMPLES]),
            Err(CodecError::WrongDuration { samples: 480 })
        ));
        assert!(matches!(
            encoder.encode(&[0.0; 720]),
            Err(CodecError::WrongDuration { samples: 720 })
        ));
        // Concealment fills whatever frame it is given.
        let mut gap = [1.0; 480];
        decoder.conceal(&mut gap).unwrap();
    }

    #[test]
    fn silence_becomes_dtx_packets() {
        let (_, packets) = encode_all(&mut Silence, 100);
        let dtx = packets[20..].iter().filter(|p| is_dtx_packet(p)).count();
        assert!(dtx >= 70, "only {dtx} of 80 DTX packets");
    }

    #[test]
    fn dtx_can_be_turned_off() {
        let mut encoder = Encoder::with_config(EncoderConfig {
            dtx: false,
            ..EncoderConfig::default()
        })
        .unwrap();
        let dtx = (0..100)
            .filter(|_| is_dtx_packet(encoder.encode(&SILENT_FRAME).unwrap()))
            .count();
        assert_eq!(dtx, 0);
    }

    /// 440 Hz, except frame `burst` which is 1320 Hz: concealment can only extrapolate the
    /// 440 Hz history, FEC carries the real content of the lost frame.
    struct ChangingTone {
        low: Tone,
        high: Tone,
        frame: usize,
        burst: usize,
    }

    impl AudioSource for ChangingTone {
        fn next_frame(&mut self, out: &mut [f32]) {
            if self.frame == self.burst {
                self.high.next_frame(out);
            } else {
                self.low.next_frame(out);
            }
            self.frame += 1;
        }
    }

    #[test]
    fn fec_recovers_a_lost_frame_better_than_concealment() {
        let lost = 30;
        let mut source = ChangingTone {
            low: Tone::new(440.0, 0.4),
            high: Tone::new(1320.0, 0.4),
            frame: 0,
            burst: lost,
        };
        let (_, packets) = encode_all(&mut source, 40);

        let (mut with_fec, mut with_plc) = (Decoder::new().unwrap(), Decoder::new().unwrap());
        let mut frame = SILENT_FRAME;
        for p in &packets[..lost] {
            with_fec.decode(p, &mut frame).unwrap();
            with_plc.decode(p, &mut frame).unwrap();
        }
        let mut recovered = SILENT_FRAME;
        with_fec
            .decode_fec(&packets[lost + 1], &mut recovered)
            .unwrap();
        let mut concealed = SILENT_FRAME;
        with_plc.conceal(&mut concealed).unwrap();

        // Decoded audio lags the input by the codec delay (~6.5 ms), so look at the second
        // half of the 20 ms frame, which lies wholly inside the 1320 Hz burst.
        let tail = |f: &Frame| f[FRAME_SAMPLES / 2..].to_vec();
        let fec_high = tone_power(&tail(&recovered), SAMPLE_RATE, 1320.0);
        let plc_high = tone_power(&tail(&concealed), SAMPLE_RATE, 1320.0);
        assert!(rms(&recovered) > 0.05, "FEC frame is silent");
        assert!(fec_high > 0.5, "FEC frame holds {fec_high} of 1320 Hz");
        assert!(
            plc_high < 0.2 && fec_high > plc_high + 0.3,
            "fec {fec_high} plc {plc_high}"
        );

        // Decoding continues normally after recovery.
        with_fec.decode(&packets[lost + 1], &mut frame).unwrap();
        assert!(rms(&frame) > 0.05);
    }

    #[test]
    fn concealment_continues_the_signal_then_fades() {
        let (_, packets) = encode_all(&mut Tone::new(440.0, 0.5), 25);
        let mut decoder = Decoder::new().unwrap();
        let mut frame = SILENT_FRAME;
        for p in &packets {
            decoder.decode(p, &mut frame).unwrap();
        }
        decoder.conceal(&mut frame).unwrap();
        let first = rms(&frame);
        for _ in 0..20 {
            decoder.conceal(&mut frame).unwrap();
        }
        assert!(first > 0.1, "first concealed frame rms {first}");
        assert!(
            rms(&frame) < first / 4.0,
            "no fade: {} vs {first}",
            rms(&frame)
        );
    }

    /// A tone through libopus directly, in packets of `samples` (any duration libopus encodes:
    /// 2.5 to 60 ms), as another client or a browser would send it.
    fn foreign_packets(samples: usize, count: usize) -> Vec<Vec<u8>> {
        let mut encoder =
            opus::Encoder::new(SAMPLE_RATE, opus::Channels::Mono, opus::Application::Voip).unwrap();
        let mut tone = Tone::new(880.0, 0.5);
        (0..count)
            .map(|_| {
                let mut frame = vec![0.0; samples];
                tone.next_frame(&mut frame);
                encoder.encode_vec_float(&frame, MAX_PACKET).unwrap()
            })
            .collect()
    }

    #[test]
    fn packets_of_every_opus_duration_decode_by_their_own_length() {
        for ms_x2 in [5usize, 10, 20, 40, 80, 120] {
            let samples = ms_x2 * 24; // 2.5, 5, 10, 20, 40, 60 ms
            let packets = foreign_packets(samples, 48_000 / samples);
            let mut decoder = Decoder::new().unwrap();
            let mut decoded = Vec::new();
            for p in &packets {
                let duration = packet_duration(p).unwrap();
                assert_eq!(duration.samples(), samples);
                let mut out = vec![0.0; duration.samples()];
                decoder.decode(p, &mut out).unwrap();
                decoded.extend_from_slice(&out);
            }
            let f = dominant_frequency(&decoded[4800..], SAMPLE_RATE).unwrap();
            assert!(
                (f - 880.0).abs() < 3.0,
                "{samples} samples: dominant {f} Hz"
            );
            // Concealment of a lost packet of that length, too.
            decoder.conceal(&mut vec![0.0; samples]).unwrap();
        }
    }

    #[test]
    fn a_packet_of_several_frames_is_as_long_as_all_of_them() {
        // Code 1 (RFC 6716 §3.2.3): two frames of equal size after one TOC byte.
        let one = &foreign_packets(960, 3)[2];
        let mut two = vec![one[0] | 0x01];
        two.extend_from_slice(&one[1..]);
        two.extend_from_slice(&one[1..]);
        let duration = packet_duration(&two).unwrap();
        assert_eq!(duration.samples(), 1920);
        assert_eq!(duration.duration(), std::time::Duration::from_millis(40));
        let mut out = vec![0.0; 1920];
        Decoder::new().unwrap().decode(&two, &mut out).unwrap();
    }

    #[test]
    fn packet_durations_are_opus_durations_only() {
        assert_eq!(PacketDuration::of_samples(120).unwrap().ms(), 2.5);
        assert_eq!(
            PacketDuration::of_samples(120).unwrap().duration(),
            std::time::Duration::from_micros(2500)
        );
        assert_eq!(PacketDuration::of_samples(5760).unwrap().ms(), 120.0);
        for bad in [0, 100, 121, 5880] {
            assert_eq!(PacketDuration::of_samples(bad), None, "{bad}");
        }
        assert_eq!(
            PacketDuration::from(FrameSize::Ms5),
            PacketDuration::of_samples(240).unwrap()
        );
    }

    /// The TOC byte's configuration number (RFC 6716 §3.1): 16..=31 are CELT-only.
    fn is_celt(packet: &[u8]) -> bool {
        packet[0] >> 3 >= 16
    }

    #[test]
    fn five_ms_frames_are_celt_with_the_restricted_low_delay_look_ahead() {
        let config = EncoderConfig::for_frame(FrameSize::Ms5);
        assert_eq!(config.application, Application::RestrictedLowDelay);
        assert_eq!(config.bitrate, 48_000);
        let mut low = Encoder::with_config(config).unwrap();
        let mut voip = Encoder::new().unwrap();
        // 2.5 ms against 6.5 ms: the codec delay of 5 ms frames is 7.5 ms, not 11.5.
        assert_eq!(low.lookahead().unwrap(), 120);
        assert_eq!(voip.lookahead().unwrap(), 312);
        assert_eq!(
            EncoderConfig::for_frame(FrameSize::Ms10).application,
            Application::Voip
        );

        let mut decoder = Decoder::new().unwrap();
        let mut tone = Tone::new(1000.0, 0.5);
        let mut decoded = Vec::new();
        for _ in 0..200 {
            let mut frame = [0.0; 240];
            tone.next_frame(&mut frame);
            let packet = low.encode(&frame).unwrap().to_vec();
            assert!(is_celt(&packet), "TOC {:#04x}", packet[0]);
            assert_eq!(packet_duration(&packet).unwrap(), FrameSize::Ms5.into());
            let mut out = [0.0; 240];
            decoder.decode(&packet, &mut out).unwrap();
            decoded.extend_from_slice(&out);
        }
        let f = dominant_frequency(&decoded[4800..], SAMPLE_RATE).unwrap();
        assert!((f - 1000.0).abs() < 3.0, "dominant {f} Hz");
        // Speech-band voice on 20 ms frames is SILK or hybrid (what carries FEC).
        let mut frame = SILENT_FRAME;
        Tone::new(300.0, 0.3).next_frame(&mut frame);
        assert!(!is_celt(voip.encode(&frame).unwrap()));
    }

    #[test]
    fn hostile_packets_are_errors_not_panics() {
        let mut decoder = Decoder::new().unwrap();
        let mut out = SILENT_FRAME;
        assert!(matches!(
            decoder.decode(&[], &mut out),
            Err(CodecError::EmptyPacket)
        ));
        // TOC 0x18: SILK narrowband 60 ms, code 0 (one frame): valid Opus, wrong length for us.
        let err = decoder.decode(&[0x18, 0, 0], &mut out).unwrap_err();
        assert!(
            matches!(err, CodecError::WrongDuration { samples: 2880 }),
            "{err}"
        );
        // Code-3 packet claiming 0 frames: malformed.
        assert!(decoder.decode(&[0x03, 0x00], &mut out).is_err());
        for junk in [&[0xFFu8; 7][..], &[0x78, 0xFF, 0xFF, 0xFF]] {
            let _ = decoder.decode(junk, &mut out); // must not panic
            let _ = decoder.decode_fec(junk, &mut out);
        }
        // The decoder still works afterwards.
        let (_, packets) = encode_all(&mut Tone::new(440.0, 0.5), 2);
        decoder.decode(&packets[1], &mut out).unwrap();
    }
}
