//! Loss and jitter of one inbound RTP stream, computed from the packets we read.
//!
//! webrtc 0.17.2 does not report either for received streams (`InboundRTPStats` has no
//! `packets_lost` or `jitter`, see `webrtc-0.17.2/src/stats/mod.rs:556-560`), so the adapter
//! keeps its own counters with the algorithms of RFC 3550 (appendix A.1 for the extended
//! sequence number and loss, A.8 for interarrival jitter). Pure: time is an argument.

use std::time::Instant;

/// Running statistics of one RTP stream. Feed every packet to [`InboundStats::on_packet`].
#[derive(Debug, Default, Clone)]
pub struct InboundStats {
    /// Extended sequence number of the first packet (`None` before any packet).
    base_seq: Option<u64>,
    /// Highest extended sequence number seen so far.
    max_ext_seq: u64,
    /// Packets counted (duplicates included, as RFC 3550 does).
    received: u64,
    /// Payload bytes counted.
    payload_bytes: u64,
    /// Interarrival jitter in RTP timestamp units, smoothed with gain 1/16.
    jitter_units: f64,
    /// Arrival time and RTP timestamp of the previous packet, for the jitter transit delta.
    last: Option<(Instant, u32)>,
}

impl InboundStats {
    /// Records one packet: its RTP sequence number, RTP timestamp, payload size and arrival.
    pub fn on_packet(&mut self, seq: u16, timestamp: u32, payload_len: usize, now: Instant) {
        let ext = self.extend(seq);
        if self.base_seq.is_none() {
            self.base_seq = Some(ext);
            self.max_ext_seq = ext;
        } else if ext > self.max_ext_seq {
            self.max_ext_seq = ext;
        }
        self.received += 1;
        self.payload_bytes += payload_len as u64;

        if let Some((prev_at, prev_ts)) = self.last {
            // D(i-1,i) = (Rj - Ri) - (Sj - Si), both in timestamp units (48 kHz for Opus).
            let arrival_units = now.saturating_duration_since(prev_at).as_secs_f64() * OPUS_CLOCK;
            let ts_units = timestamp.wrapping_sub(prev_ts) as i32 as f64;
            let d = (arrival_units - ts_units).abs();
            self.jitter_units += (d - self.jitter_units) / 16.0;
        }
        self.last = Some((now, timestamp));
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
        match self.base_seq {
            None => 0,
            Some(base) => (self.max_ext_seq - base + 1) as i64 - self.received as i64,
        }
    }

    /// Interarrival jitter in milliseconds.
    pub fn jitter_ms(&self) -> f64 {
        self.jitter_units / OPUS_CLOCK * 1000.0
    }

    /// Maps a 16-bit sequence number to the 64-bit sequence space nearest the highest one seen.
    fn extend(&self, seq: u16) -> u64 {
        if self.base_seq.is_none() {
            // Start one cycle up so that a reordered packet just before the first stays >= 0.
            return (1 << 16) | u64::from(seq);
        }
        let max = self.max_ext_seq;
        let cycle = max & !0xffff;
        let candidate = cycle | u64::from(seq);
        // Pick the candidate within half the sequence space of the highest one seen.
        if candidate + 0x8000 < max {
            candidate + 0x1_0000
        } else if candidate > max + 0x8000 && candidate >= 0x1_0000 {
            candidate - 0x1_0000
        } else {
            candidate
        }
    }
}

/// Opus RTP clock rate (RFC 7587: always 48 kHz whatever the coded bandwidth).
const OPUS_CLOCK: f64 = 48_000.0;

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn counts_gaps_as_loss_across_wraparound() {
        let t0 = Instant::now();
        let mut s = InboundStats::default();
        let mut seq: u16 = 65_530;
        for i in 0..20u32 {
            if i != 7 && i != 8 {
                s.on_packet(seq, i * 960, 10, t0 + Duration::from_millis(20 * i as u64));
            }
            seq = seq.wrapping_add(1);
        }
        assert_eq!(s.packets_received(), 18);
        assert_eq!(s.packets_lost(), 2);
    }

    #[test]
    fn jitter_is_zero_for_perfect_pacing_and_grows_with_late_packets() {
        let t0 = Instant::now();
        let mut s = InboundStats::default();
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
        let mut s = InboundStats::default();
        for seq in [10u16, 12, 11, 13] {
            s.on_packet(seq, u32::from(seq) * 960, 10, t0);
        }
        assert_eq!(s.packets_lost(), 0);
    }
}
