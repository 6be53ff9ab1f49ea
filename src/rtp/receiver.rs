//! RFC 3550 receiver statistics of one inbound RTP stream, as the RFC computes them: packets
//! and payload bytes received, cumulative loss as expected minus received (appendix A.3, with
//! sequence numbers extended per A.1) and interarrival jitter over every packet (A.8).
//!
//! This is the figure the peer report shows (`PeerStats::jitter_ms`): the standard one, what an
//! RTCP receiver report would carry. The jitter buffer keeps its own estimate from the same
//! core, filtered for its purpose (see `audio/jitter/estimate.rs`).
//!
//! Must never drop or reorder packets or judge their payload: it only counts what it is shown.

use std::time::Instant;

use super::jitter::InterarrivalJitter;
use super::seq::extend;

/// Running statistics of one RTP stream. Feed every packet to [`ReceiverStats::on_packet`].
#[derive(Debug, Default, Clone)]
pub struct ReceiverStats {
    /// Extended sequence numbers of the first packet and of the highest one seen (`None`
    /// before any packet).
    seq: Option<SeqRange>,
    /// Packets counted (duplicates included, as RFC 3550 does).
    received: u64,
    /// Payload bytes counted.
    payload_bytes: u64,
    /// Interarrival jitter over every packet.
    jitter: InterarrivalJitter,
}

/// First and highest extended sequence numbers of a stream.
#[derive(Debug, Clone, Copy)]
struct SeqRange {
    base: i64,
    max: i64,
}

impl ReceiverStats {
    /// Records one packet: its RTP sequence number, RTP timestamp, payload size and arrival.
    pub fn on_packet(&mut self, seq: u16, timestamp: u32, payload_len: usize, now: Instant) {
        match self.seq.as_mut() {
            None => {
                let first = i64::from(seq);
                self.seq = Some(SeqRange {
                    base: first,
                    max: first,
                });
            }
            Some(range) => range.max = range.max.max(extend(seq, range.max)),
        }
        self.received += 1;
        self.payload_bytes += payload_len as u64;
        self.jitter.on_packet(now, timestamp);
    }

    /// Packets received so far.
    pub fn packets_received(&self) -> u64 {
        self.received
    }

    /// Payload bytes received so far.
    pub fn payload_bytes(&self) -> u64 {
        self.payload_bytes
    }

    /// Cumulative packets lost: expected minus received (negative with duplicates, like RTCP).
    pub fn packets_lost(&self) -> i64 {
        match self.seq {
            None => 0,
            Some(SeqRange { base, max }) => (max - base + 1) - self.received as i64,
        }
    }

    /// Interarrival jitter in milliseconds.
    pub fn jitter_ms(&self) -> f64 {
        self.jitter.jitter_ms()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn counts_gaps_as_loss_across_wraparound() {
        let t0 = Instant::now();
        let mut s = ReceiverStats::default();
        let mut seq: u16 = 65_530;
        for i in 0..20u32 {
            if i != 7 && i != 8 {
                s.on_packet(seq, i * 960, 10, t0 + Duration::from_millis(20 * i as u64));
            }
            seq = seq.wrapping_add(1);
        }
        assert_eq!(s.packets_received(), 18);
        assert_eq!(s.payload_bytes(), 180);
        assert_eq!(s.packets_lost(), 2);
    }

    #[test]
    fn jitter_is_zero_for_perfect_pacing_and_grows_with_late_packets() {
        let t0 = Instant::now();
        let mut s = ReceiverStats::default();
        for i in 0..50u32 {
            s.on_packet(
                i as u16,
                i * 960,
                10,
                t0 + Duration::from_millis(20 * i as u64),
            );
        }
        assert!(s.jitter_ms() < 0.01, "jitter {}", s.jitter_ms());
        for i in 50..100u32 {
            let wobble = if i % 2 == 0 { 10 } else { 0 };
            s.on_packet(
                i as u16,
                i * 960,
                10,
                t0 + Duration::from_millis(20 * i as u64 + wobble),
            );
        }
        assert!(s.jitter_ms() > 5.0, "jitter {}", s.jitter_ms());
    }

    #[test]
    fn reordered_packet_is_not_loss() {
        let t0 = Instant::now();
        let mut s = ReceiverStats::default();
        for seq in [10u16, 12, 11, 13] {
            s.on_packet(seq, u32::from(seq) * 960, 10, t0);
        }
        assert_eq!(s.packets_lost(), 0);
    }

    #[test]
    fn duplicates_count_as_received_and_make_loss_negative() {
        let t0 = Instant::now();
        let mut s = ReceiverStats::default();
        for seq in [1u16, 2, 2, 3] {
            s.on_packet(seq, u32::from(seq) * 960, 10, t0);
        }
        assert_eq!(s.packets_received(), 4);
        assert_eq!(s.packets_lost(), -1);
    }

    #[test]
    fn no_packet_no_loss() {
        assert_eq!(ReceiverStats::default().packets_lost(), 0);
        assert_eq!(ReceiverStats::default().jitter_ms(), 0.0);
    }
}
