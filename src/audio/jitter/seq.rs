//! Duplicate detection for the jitter buffer: which recent extended sequence numbers were already
//! seen. Extending the 16-bit numbers themselves is `crate::rtp::seq::extend` (RFC 3550 A.1),
//! shared with the peer report's loss count; this file must never grow a second copy of it.

/// How many sequence numbers back from the newest one [`SeenWindow`] remembers.
pub(crate) const SEEN_WINDOW: i64 = 128;

/// The set of extended sequence numbers seen in `(newest - SEEN_WINDOW, newest]`.
#[derive(Debug, Clone)]
pub(crate) struct SeenWindow {
    /// Highest extended sequence number seen.
    newest: i64,
    /// Bit `i` set ⇔ `newest - i` was seen.
    bits: u128,
}

impl SeenWindow {
    /// A window holding only `first`.
    pub(crate) fn new(first: i64) -> Self {
        Self {
            newest: first,
            bits: 1,
        }
    }

    /// Highest sequence number seen.
    pub(crate) fn newest(&self) -> i64 {
        self.newest
    }

    /// Whether `ext` was seen. Numbers older than the window read as unseen.
    pub(crate) fn contains(&self, ext: i64) -> bool {
        let back = self.newest - ext;
        (0..SEEN_WINDOW).contains(&back) && self.bits & (1u128 << back) != 0
    }

    /// Records `ext`, sliding the window forward if it is the new newest.
    pub(crate) fn insert(&mut self, ext: i64) {
        if ext > self.newest {
            let shift = ext - self.newest;
            self.bits = if shift >= SEEN_WINDOW {
                0
            } else {
                self.bits << shift
            };
            self.newest = ext;
        }
        let back = self.newest - ext;
        if back < SEEN_WINDOW {
            self.bits |= 1u128 << back;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seen_window_tracks_recent_numbers() {
        let mut seen = SeenWindow::new(10);
        seen.insert(12);
        assert!(seen.contains(10) && seen.contains(12) && !seen.contains(11));
        seen.insert(11);
        assert!(seen.contains(11));
        assert_eq!(seen.newest(), 12);
        seen.insert(12 + SEEN_WINDOW - 1);
        assert!(
            seen.contains(12) && !seen.contains(11),
            "11 slid out of the window"
        );
        seen.insert(1000);
        assert!(!seen.contains(12 + SEEN_WINDOW - 1) && seen.contains(1000));
        seen.insert(5); // far too old: ignored, no panic
        assert!(!seen.contains(5));
    }
}
