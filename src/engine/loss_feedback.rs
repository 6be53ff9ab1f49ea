//! The encoder's expected loss, from what the peers report (RTCP receiver reports of our
//! audio). Opus spends bits on in-band FEC in proportion to the loss it is told to expect
//! (our encoder, the bench's speech clip, no network; wideband PESQ, BENCHMARKS.md, issue 19):
//! told 10 % on a clean link (the old fixed setting) it gave 3.25, 1 % gave 3.76 and 0 % 3.94
//! — but 0 % sends no FEC at all, and at 2 % loss 1 % gave 3.63 where 0 % gave 3.18; at 5 %
//! and 10 % loss, 5 % was the best setting measured (3.39 / 3.00 against 3.14 / 2.90 at 10 %
//! and 2.53 / 2.42 at 20 %). So: [`MIN_EXPECTED_LOSS`] on a clean link (and before any report:
//! a call starts covered), the loss rounded up, at most [`MAX_EXPECTED_LOSS`]. One encoder
//! serves every peer, so the worst peer's loss over the last [`WINDOW`] counts. Pure: time and
//! reports come in as arguments.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use cromulent_protocol::UserId;

/// The most loss the encoder is told to expect, in percent (more costs more than it saves).
pub const MAX_EXPECTED_LOSS: u8 = 5;
/// The least: some FEC always, for the loss nobody has reported yet.
pub const MIN_EXPECTED_LOSS: u8 = 1;
/// How long a measured loss keeps counting.
pub const WINDOW: Duration = Duration::from_secs(10);
/// Packets a peer must have been sent since its last report for its loss to count.
const MIN_PACKETS: u64 = 25;

#[derive(Debug, Default)]
pub struct LossFeedback {
    /// Per peer: packets sent and lost as of its last report.
    last: BTreeMap<UserId, (u64, i64)>,
    /// Loss fractions measured, newest last.
    recent: VecDeque<(Instant, f64)>,
}

impl LossFeedback {
    /// A peer's cumulative counts (our packets sent to it, and lost as it reports); returns
    /// the expected loss in percent to set now.
    pub fn report(&mut self, user: &str, sent: u64, lost: i64, now: Instant) -> u8 {
        match self.last.get(user).copied() {
            Some((sent0, lost0)) if sent >= sent0 + MIN_PACKETS => {
                let fraction = (lost - lost0).max(0) as f64 / (sent - sent0) as f64;
                self.recent.push_back((now, fraction.min(1.0)));
                self.last.insert(user.to_owned(), (sent, lost));
            }
            // Too few packets since (a quiet talker): wait for more.
            Some((sent0, _)) if sent >= sent0 => {}
            // First report, or a new connection (counters restarted).
            _ => {
                self.last.insert(user.to_owned(), (sent, lost));
            }
        }
        self.expected(now)
    }

    /// A peer left: its counts go.
    pub fn forget(&mut self, user: &str) {
        self.last.remove(user);
    }

    /// The expected loss in percent from the losses of the last [`WINDOW`].
    pub fn expected(&mut self, now: Instant) -> u8 {
        while self
            .recent
            .front()
            .is_some_and(|(t, _)| now.saturating_duration_since(*t) >= WINDOW)
        {
            self.recent.pop_front();
        }
        let worst = self.recent.iter().map(|(_, f)| *f).fold(0.0, f64::max);
        ((worst * 100.0).ceil() as u8).clamp(MIN_EXPECTED_LOSS, MAX_EXPECTED_LOSS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_links_expect_one_percent_and_loss_is_rounded_up_to_at_most_five() {
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let mut f = LossFeedback::default();
        assert_eq!(f.report("bob", 0, 0, at(0)), 1, "no measurement yet");
        assert_eq!(f.report("bob", 100, 0, at(2)), 1, "clean");
        assert_eq!(f.report("bob", 200, 2, at(4)), 2, "2 of 100");
        assert_eq!(f.report("bob", 300, 12, at(6)), 5, "10 %: at most 5");
        // The worst of the window counts, then it is forgotten.
        assert_eq!(f.report("bob", 400, 12, at(8)), 5);
        assert_eq!(
            f.report("bob", 500, 12, at(17)),
            1,
            "10 s later, clean again"
        );
    }

    #[test]
    fn the_worst_peer_counts_and_quiet_or_restarted_peers_wait() {
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let mut f = LossFeedback::default();
        f.report("bob", 0, 0, at(0));
        f.report("carol", 0, 0, at(0));
        assert_eq!(f.report("bob", 100, 0, at(2)), 1);
        assert_eq!(f.report("carol", 100, 3, at(2)), 3, "carol's 3 %");
        // Ten packets since: too few to judge.
        assert_eq!(f.report("bob", 110, 5, at(3)), 3);
        // A new connection restarts the counters: a baseline, not a loss.
        assert_eq!(f.report("carol", 10, 0, at(4)), 3);
        f.forget("carol");
        assert_eq!(f.report("carol", 50, 0, at(5)), 3, "a fresh baseline");
        assert_eq!(f.expected(at(13)), 1);
    }
}
