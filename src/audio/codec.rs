//! Opus encoding and decoding of 10 or 20 ms mono frames ([`FrameSize`]), configured for
//! voice over lossy links.
//!
//! Thin wrappers over `opus` 0.3.1 (system libopus) that fix the settings the whole client
//! agrees on and own their scratch buffers, so encoding and decoding never allocate.
//! Packets from peers are untrusted: malformed or wrong-length packets give an error, never a
//! panic, and never a partially written frame.

use super::frame::{FrameSize, SAMPLE_RATE};

/// Largest packet we produce: one 20 ms Opus frame is at most 1275 bytes (RFC 6716 §3.2.1).
const MAX_PACKET: usize = 1275;

/// Why encoding or decoding failed.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// libopus rejected the call (for decoding: usually a corrupt packet).
    #[error("opus: {0}")]
    Opus(#[from] opus::Error),
    /// A packet (or a frame to encode) that is not one 10 or 20 ms frame (e.g. a 60 ms packet
    /// from another client), or not the length expected here; decoding it would not fit the
    /// frame clock.
    #[error("opus frame of {samples} samples per channel; expected one 10 or 20 ms frame")]
    WrongDuration {
        /// Samples at 48 kHz the packet would decode to.
        samples: usize,
    },
    /// An empty packet was given where real data is required (use [`Decoder::conceal`] for
    /// a missing packet).
    #[error("empty opus packet")]
    EmptyPacket,
}

/// Encoder settings. [`Default`] is what the client sends with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EncoderConfig {
    /// Target bitrate in bit/s. 32 kbit/s gives wideband-to-superwideband voice with room for
    /// in-band FEC.
    pub bitrate: i32,
    /// In-band forward error correction: each packet also carries a coarse copy of the previous
    /// frame, which [`Decoder::decode_fec`] uses when that frame's packet is lost.
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
            bitrate: 32_000,
            inband_fec: true,
            dtx: true,
            packet_loss_perc: 10,
        }
    }
}

/// True for packets the sender may skip: libopus documents that an encoded packet of 2 bytes or
/// less carries no audio (DTX / "no transmission") and need not be sent. The receiver then
/// conceals the gap, which libopus renders as comfort noise.
pub fn is_dtx_packet(packet: &[u8]) -> bool {
    packet.len() <= 2
}

/// A 48 kHz mono VoIP Opus encoder.
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
        let mut inner =
            opus::Encoder::new(SAMPLE_RATE, opus::Channels::Mono, opus::Application::Voip)?;
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
    /// (none at 0). For the engine's loss feedback (`engine::loss_feedback`).
    pub fn set_expected_loss(&mut self, percent: u8) -> Result<(), CodecError> {
        Ok(self
            .inner
            .set_packet_loss_perc(i32::from(percent.min(100)))?)
    }

    /// Encodes one 10 or 20 ms frame. The returned packet borrows the encoder's buffer: copy
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
    /// ([`packet_samples`]).
    pub fn decode(&mut self, packet: &[u8], out: &mut [f32]) -> Result<(), CodecError> {
        check_duration(packet, out.len())?;
        self.decode_checked(packet, out, false)
    }

    /// Packet-loss concealment: synthesizes the next `out.len()` samples (one 10 or 20 ms
    /// frame) from the decoder's history (fading towards silence/comfort noise over
    /// consecutive calls). Use for a lost packet when the following packet is not available,
    /// and across DTX gaps.
    pub fn conceal(&mut self, out: &mut [f32]) -> Result<(), CodecError> {
        self.decode_checked(&[], out, false)
    }

    /// Recovers the frame *before* `next_packet` from the FEC data inside it (`out` as long
    /// as that packet). Call this for the lost frame, then [`Decoder::decode`] `next_packet`
    /// itself for the frame after. If `next_packet` carries no FEC data, libopus falls back
    /// to concealment.
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
        if FrameSize::of_samples(out.len()).is_none() {
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

/// The frame size of a received packet: one 10 or 20 ms frame, or an error (empty, corrupt,
/// or another duration), decided before libopus touches any decoder state.
pub fn packet_frame_size(packet: &[u8]) -> Result<FrameSize, CodecError> {
    if packet.is_empty() {
        return Err(CodecError::EmptyPacket);
    }
    let samples = opus::packet::get_nb_samples(packet, SAMPLE_RATE)?;
    FrameSize::of_samples(samples).ok_or(CodecError::WrongDuration { samples })
}

/// Rejects packets that are not one frame of `expected` samples.
fn check_duration(packet: &[u8], expected: usize) -> Result<(), CodecError> {
    let samples = packet_frame_size(packet)?.samples();
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
            assert_eq!(packet_frame_size(&packet).unwrap(), FrameSize::Ms10);
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
