//! RTP sequence-number extension (RFC 3550 appendix A.1, the cycle counting): 16-bit numbers
//! that wrap at 65535 mapped onto a monotone `i64`, so 65535 → 0 continues upward and a
//! reordered packet stays just before its successors.
//!
//! Must never keep state: the caller owns the reference (its highest number so far).

/// Extends `seq` to the `i64` closest to `reference` that has the same low 16 bits, so
/// 65535 → 0 continues upward and a slightly older packet stays slightly older. Valid while
/// packets are within ±32767 of the reference; beyond that a jump reads as the opposite sign
/// (a distance of exactly 32768 reads as older), which callers treat as a restart or a stale
/// packet either way.
pub fn extend(seq: u16, reference: i64) -> i64 {
    // Truncating the reference to 16 bits is the point: only the wrapped distance matters.
    let delta = seq.wrapping_sub(reference as u16) as i16;
    reference + i64::from(delta)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrap_around_continues_upward() {
        assert_eq!(extend(0, 65_535), 65_536);
        assert_eq!(extend(5, 65_530), 65_541);
        // Many cycles up: the cycle count survives.
        assert_eq!(extend(1, 3 * 65_536 + 65_535), 4 * 65_536 + 1);
        // Following a stream across several wraps step by step.
        let mut highest = 65_000_i64;
        let mut seq = 65_000_u16;
        for _ in 0..200_000 {
            seq = seq.wrapping_add(1);
            highest = highest.max(extend(seq, highest));
        }
        assert_eq!(highest, 65_000 + 200_000);
    }

    #[test]
    fn reordered_packets_stay_older_across_the_wrap() {
        assert_eq!(extend(65_535, 65_536), 65_535);
        assert_eq!(extend(90, 100), 90);
        assert_eq!(extend(65_530, 3), -6);
        assert_eq!(extend(65_530, 65_536 + 3), 65_530);
    }

    #[test]
    fn a_duplicate_maps_to_the_same_number() {
        assert_eq!(extend(100, 100), 100);
        assert_eq!(extend(0, 65_536), 65_536);
        assert_eq!(extend(65_535, 65_535 + 10), 65_535);
    }

    #[test]
    fn half_the_sequence_space_is_the_limit() {
        assert_eq!(extend(32_767, 0), 32_767);
        assert_eq!(extend(32_768, 0), -32_768);
    }
}
