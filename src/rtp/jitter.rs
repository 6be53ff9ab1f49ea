//! The interarrival-jitter core of RFC 3550 (§6.4.1, appendix A.8): the change in transit
//! time between consecutively *arriving* packets,
//! `D(i-1,i) = (R_i − R_{i-1}) − (S_i − S_{i-1})`
//! (arrival times `R`, RTP timestamps `S`), and the running estimate
//! `J += (|D| − J) / 16`, both in milliseconds.
//!
//! Transit is measured against the RTP timestamp, so a DTX or push-to-talk gap (timestamps and
//! arrival times jump together) is not jitter.
//!
//! The two steps are separate methods because the two callers differ by design: the peer report
//! smooths every `|D|` (RFC 3550 as written), the jitter buffer skips discontinuities before
//! smoothing. Must never read a clock (arrival is an argument) or decide which packets count.

use std::time::Instant;

use super::OPUS_CLOCK_RATE;

/// Interarrival jitter `J` of one stream and the packet before the next `D`.
#[derive(Debug, Clone, Default)]
pub struct InterarrivalJitter {
    /// Arrival time and RTP timestamp of the previous packet.
    prev: Option<(Instant, u32)>,
    /// RFC 3550 `J`, ms.
    jitter_ms: f64,
}

impl InterarrivalJitter {
    /// RFC 3550 as written: every packet's `|D|` goes into `J`.
    pub fn on_packet(&mut self, arrival: Instant, rtp_ts: u32) {
        if let Some(d) = self.transit_change(arrival, rtp_ts) {
            self.smooth(d);
        }
    }

    /// `|D(i-1,i)|` in ms between the previous packet and this one (`None` for the first), and
    /// makes this one the previous. Does not touch `J`: pass the value to [`Self::smooth`] if it
    /// counts.
    pub fn transit_change(&mut self, arrival: Instant, rtp_ts: u32) -> Option<f64> {
        let prev = self.prev.replace((arrival, rtp_ts));
        let (prev_arrival, prev_ts) = prev?;
        let arrival_delta_ms = signed_ms(arrival, prev_arrival);
        // Wrapping difference: RTP timestamps wrap at 2^32 (every ~25 h at 48 kHz).
        let ts_delta = rtp_ts.wrapping_sub(prev_ts) as i32;
        let media_delta_ms = f64::from(ts_delta) * 1000.0 / f64::from(OPUS_CLOCK_RATE);
        Some((arrival_delta_ms - media_delta_ms).abs())
    }

    /// `J += (|D| − J) / 16`: the RFC's first-order filter, gain 1/16.
    pub fn smooth(&mut self, d_ms: f64) {
        self.jitter_ms += (d_ms - self.jitter_ms) / 16.0;
    }

    /// Forgets the previous packet and takes this one as the next reference, keeping `J` (after
    /// a sender restart: the network did not change).
    pub fn restart(&mut self, arrival: Instant, rtp_ts: u32) {
        self.prev = Some((arrival, rtp_ts));
    }

    /// RFC 3550 `J`, ms.
    pub fn jitter_ms(&self) -> f64 {
        self.jitter_ms
    }
}

/// `a − b` in ms, negative if `a` is earlier.
fn signed_ms(a: Instant, b: Instant) -> f64 {
    match a.checked_duration_since(b) {
        Some(d) => d.as_secs_f64() * 1000.0,
        None => -(b.duration_since(a).as_secs_f64() * 1000.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// 20 ms of RTP timestamp at 48 kHz.
    const TS_20MS: u32 = 960;

    fn at(t0: Instant, ms: u64) -> Instant {
        t0 + Duration::from_millis(ms)
    }

    #[test]
    fn constant_transit_is_zero_jitter_even_across_a_dtx_gap() {
        let t0 = Instant::now();
        let mut j = InterarrivalJitter::default();
        for i in 0..100u32 {
            // Frames 50..: a 1 s gap, timestamps and arrivals jump together; 30 ms transit.
            let frame = if i < 50 { i } else { i + 50 };
            j.on_packet(at(t0, u64::from(frame) * 20 + 30), 7 + frame * TS_20MS);
        }
        assert!(j.jitter_ms() < 1e-9, "{}", j.jitter_ms());
    }

    #[test]
    fn one_late_packet_gives_the_known_value() {
        let t0 = Instant::now();
        let mut j = InterarrivalJitter::default();
        j.on_packet(at(t0, 0), 0);
        j.on_packet(at(t0, 20), TS_20MS);
        // 16 ms late: D = 16, J = 16/16 = 1.
        j.on_packet(at(t0, 56), 2 * TS_20MS);
        assert!((j.jitter_ms() - 1.0).abs() < 1e-9, "{}", j.jitter_ms());
        // Back on time: D = −16, |D| = 16, J = 1 + 15/16.
        j.on_packet(at(t0, 60), 3 * TS_20MS);
        assert!((j.jitter_ms() - 1.9375).abs() < 1e-9, "{}", j.jitter_ms());
    }

    #[test]
    fn alternating_delay_converges_to_its_deviation() {
        let t0 = Instant::now();
        let mut j = InterarrivalJitter::default();
        for i in 0..400u32 {
            let delay = if i % 2 == 0 { 0 } else { 10 };
            j.on_packet(at(t0, u64::from(i) * 20 + delay), i * TS_20MS);
        }
        assert!((j.jitter_ms() - 10.0).abs() < 0.01, "{}", j.jitter_ms());
    }

    #[test]
    fn timestamp_wrap_is_not_jitter() {
        let t0 = Instant::now();
        let mut j = InterarrivalJitter::default();
        let start = u32::MAX - 100;
        j.on_packet(at(t0, 0), start);
        j.on_packet(at(t0, 20), start.wrapping_add(TS_20MS));
        j.on_packet(at(t0, 40), start.wrapping_add(2 * TS_20MS));
        assert!(j.jitter_ms() < 1e-9, "{}", j.jitter_ms());
    }

    #[test]
    fn transit_change_is_measured_in_arrival_order_even_when_reordered() {
        let t0 = Instant::now();
        let mut j = InterarrivalJitter::default();
        assert_eq!(j.transit_change(at(t0, 0), 0), None);
        // The packet sent 20 ms later arrives first, the earlier one 5 ms after it.
        let d = j.transit_change(at(t0, 20), 2 * TS_20MS).unwrap();
        assert!((d - 20.0).abs() < 1e-9, "{d}");
        let d = j.transit_change(at(t0, 25), TS_20MS).unwrap();
        assert!((d - 25.0).abs() < 1e-9, "{d}");
        assert_eq!(j.jitter_ms(), 0.0, "transit_change leaves J alone");
    }

    #[test]
    fn restart_takes_a_new_reference_and_keeps_j() {
        let t0 = Instant::now();
        let mut j = InterarrivalJitter::default();
        j.on_packet(at(t0, 0), 0);
        j.on_packet(at(t0, 36), TS_20MS);
        let before = j.jitter_ms();
        j.restart(at(t0, 40), 123_456_789);
        assert_eq!(j.jitter_ms(), before);
        j.on_packet(at(t0, 60), 123_456_789 + TS_20MS);
        assert!((j.jitter_ms() - before * 15.0 / 16.0).abs() < 1e-9);
    }
}
