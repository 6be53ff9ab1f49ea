//! The sending side's RTP clock: marker bit, sequence number and timestamp of each packet of
//! our one audio stream, one Opus frame per packet.
//!
//! The timestamp advances by every frame's duration whether the frame is sent or not (DTX,
//! push-to-talk released, muted), and the sequence number only for packets actually sent: that
//! is what Opus DTX looks like on the wire, so after a pause the receiver measures the pause in
//! RTP time and does not mistake it for network delay. The first packet after a pause (and the
//! very first) carries the marker bit (RFC 3551 §4.1: start of a talkspurt). Initial sequence
//! number and timestamp are random (RFC 3550 §5.1).
//!
//! A plain value with one owner (the engine's capture path): no locks, no I/O, no clock. Must
//! never build packets of a WebRTC library or send anything; `rtc` turns a [`RtpHeader`] into a
//! packet.

use std::time::Duration;

use super::OPUS_CLOCK_RATE;

/// Header fields of one packet to send, in RTP's terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpHeader {
    /// First packet of a talkspurt.
    pub marker: bool,
    pub sequence_number: u16,
    pub timestamp: u32,
}

/// Sequence number and timestamp of the next packet, and whether the previous frame was sent.
#[derive(Debug, Clone)]
pub struct Packetizer {
    /// Sequence number of the next packet sent.
    seq: u16,
    /// RTP timestamp of the next frame, sent or not.
    timestamp: u32,
    /// The previous frame was not sent (or there was none): the next packet gets the marker.
    paused: bool,
}

impl Default for Packetizer {
    /// Random initial sequence number and timestamp (RFC 3550 §5.1).
    fn default() -> Self {
        Self::starting_at(rand::random(), rand::random())
    }
}

impl Packetizer {
    /// A packetizer whose first packet gets `seq` and whose first frame starts at `timestamp`.
    pub fn starting_at(seq: u16, timestamp: u32) -> Self {
        Self {
            seq,
            timestamp,
            paused: true,
        }
    }

    /// One frame of `duration`: `send` says whether a packet goes out for it. Returns that
    /// packet's header, or `None` when the frame is skipped (only the clock advances).
    pub fn frame(&mut self, duration: Duration, send: bool) -> Option<RtpHeader> {
        let timestamp = self.timestamp;
        self.timestamp = self.timestamp.wrapping_add(samples(duration));
        if !send {
            self.paused = true;
            return None;
        }
        let header = RtpHeader {
            marker: self.paused,
            sequence_number: self.seq,
            timestamp,
        };
        self.seq = self.seq.wrapping_add(1);
        self.paused = false;
        Some(header)
    }
}

/// RTP timestamp units in `duration` (48 kHz: 240 for 5 ms, 480 for 10 ms, 960 for 20 ms),
/// in integers: whole microseconds of any frame length count exactly.
fn samples(duration: Duration) -> u32 {
    let units = duration.as_micros() * u128::from(OPUS_CLOCK_RATE) / 1_000_000;
    u32::try_from(units).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS10: Duration = Duration::from_millis(10);
    const MS20: Duration = Duration::from_millis(20);

    /// Sends `n` frames of `d`, returning their headers.
    fn talk(p: &mut Packetizer, n: usize, d: Duration) -> Vec<RtpHeader> {
        (0..n).map(|_| p.frame(d, true).unwrap()).collect()
    }

    #[test]
    fn marker_on_the_first_packet_and_after_every_pause_only() {
        let mut p = Packetizer::starting_at(100, 0);
        let spurt = talk(&mut p, 3, MS20);
        assert_eq!(
            spurt.iter().map(|h| h.marker).collect::<Vec<_>>(),
            [true, false, false]
        );
        assert_eq!(p.frame(MS20, false), None);
        let spurt = talk(&mut p, 2, MS20);
        assert!(spurt[0].marker && !spurt[1].marker, "{spurt:?}");
    }

    #[test]
    fn timestamps_advance_240_480_or_960_per_frame() {
        let mut p = Packetizer::starting_at(0, 1_000);
        let ts: Vec<u32> = talk(&mut p, 3, MS20).iter().map(|h| h.timestamp).collect();
        assert_eq!(ts, [1_000, 1_960, 2_920]);
        let mut p = Packetizer::starting_at(0, 1_000);
        let ts: Vec<u32> = talk(&mut p, 3, MS10).iter().map(|h| h.timestamp).collect();
        assert_eq!(ts, [1_000, 1_480, 1_960]);
        let mut p = Packetizer::starting_at(0, 1_000);
        let ms5 = Duration::from_millis(5);
        let ts: Vec<u32> = talk(&mut p, 3, ms5).iter().map(|h| h.timestamp).collect();
        assert_eq!(ts, [1_000, 1_240, 1_480]);
    }

    #[test]
    fn unsent_frames_advance_the_timestamp_but_not_the_sequence() {
        let mut p = Packetizer::starting_at(7, 0);
        let first = p.frame(MS20, true).unwrap();
        for _ in 0..50 {
            assert_eq!(p.frame(MS20, false), None); // a 1 s DTX / push-to-talk pause
        }
        let after = p.frame(MS20, true).unwrap();
        assert_eq!(after.sequence_number, first.sequence_number + 1);
        assert_eq!(after.timestamp - first.timestamp, 51 * 960);
        assert!(after.marker);
    }

    #[test]
    fn sequence_number_and_timestamp_wrap() {
        let mut p = Packetizer::starting_at(65_534, u32::MAX - 959);
        let h = talk(&mut p, 3, MS20);
        let seqs: Vec<u16> = h.iter().map(|h| h.sequence_number).collect();
        assert_eq!(seqs, [65_534, 65_535, 0]);
        assert_eq!(h[1].timestamp, 0);
        assert_eq!(h[2].timestamp, 960);
    }

    #[test]
    fn initial_values_are_random() {
        let firsts: Vec<RtpHeader> = (0..8)
            .map(|_| Packetizer::default().frame(MS20, true).unwrap())
            .collect();
        // Eight draws of 16 and 32 random bits: all equal by chance with p ≈ 2^-112 / 2^-224.
        assert!(
            firsts
                .iter()
                .any(|h| h.sequence_number != firsts[0].sequence_number)
        );
        assert!(firsts.iter().any(|h| h.timestamp != firsts[0].timestamp));
        assert!(firsts.iter().all(|h| h.marker));
    }
}
