//! Waiting for the lost connection's seat: after the signaling connection is lost and the new
//! session is not a resumed one, the engine joins its wanted channel again. The server may
//! refuse that join as `already_in_channel` or `already_in_voice` because the *lost*
//! connection still holds the user's seat: a `kill -9`ed cluster instance holds its seats
//! until its lease lapses, a half-open connection until the server drops it. That refusal is
//! not the user's answer, so the join is asked again — at once when presence shows our own
//! user leaving (the stale seat was released), otherwise every [`SEAT_RETRY`] — until
//! [`SEAT_PATIENCE`] has passed since the first refusal; then the refusal is final.
//!
//! Pure: the times are arguments. Must never read a clock, send anything or decide on a join
//! the user asked for (those refusals are final at once; the session does not create a
//! [`SeatWait`] for them).

use std::time::{Duration, Instant};

use cromulent_protocol::ChannelId;

/// How often a refused rejoin is asked again when no presence says the seat was released.
/// Each ask is one small message and one atomic check on the server (a Redis script in
/// cluster mode); 2 s keeps the gap after a silent release short without being chatty.
pub const SEAT_RETRY: Duration = Duration::from_secs(2);

/// How long after the first refusal a rejoin keeps asking before the refusal is final.
/// A killed cluster instance's seats are released within `lease_ms + renew_ms` (20 s with the
/// defaults, which the server's config tests hold under 30 s), counted from the kill, which is before our first
/// refusal; a single server drops a silent (half-open) connection and releases its seat after
/// 20 s by default. 40 s covers both bounds with room for a slow survivor. Longer would keep a user
/// whose seat is really held by another live connection of theirs "connecting" for nothing.
pub const SEAT_PATIENCE: Duration = Duration::from_secs(40);

/// What a refusal of the rejoin means now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The first: tell the user we are waiting for the old seat, and ask again later.
    FirstWait,
    /// Another while waiting: ask again later, say nothing new.
    StillWaiting,
    /// Past [`SEAT_PATIENCE`]: the refusal is final.
    GiveUp,
}

/// A rejoin of `channel` after a lost connection, and its wait for the old seat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeatWait {
    channel: ChannelId,
    /// When the server first refused the rejoin (`None`: not refused yet).
    refused_since: Option<Instant>,
    /// When to ask again (`None`: a join is on its way, or none refused yet).
    next_ask: Option<Instant>,
}

impl SeatWait {
    pub fn new(channel: ChannelId) -> Self {
        Self {
            channel,
            refused_since: None,
            next_ask: None,
        }
    }

    /// The channel being rejoined.
    pub fn channel(&self) -> ChannelId {
        self.channel
    }

    /// The server refused the rejoin at `now` as seated elsewhere.
    pub fn on_refused(&mut self, now: Instant) -> Refusal {
        let Some(since) = self.refused_since else {
            self.refused_since = Some(now);
            self.next_ask = Some(now + SEAT_RETRY);
            return Refusal::FirstWait;
        };
        if now.saturating_duration_since(since) >= SEAT_PATIENCE {
            self.next_ask = None;
            return Refusal::GiveUp;
        }
        self.next_ask = Some(now + SEAT_RETRY);
        Refusal::StillWaiting
    }

    /// Presence showed our own user leave a channel: whether to ask again at once (only once
    /// refused: before that, the first rejoin is still on its way).
    pub fn on_own_leave(&mut self) -> bool {
        if self.refused_since.is_none() {
            return false;
        }
        self.next_ask = None;
        true
    }

    /// Whether it is time to ask again at `now`; if so, the timer is spent until the answer.
    pub fn due(&mut self, now: Instant) -> bool {
        if self.next_ask.is_some_and(|at| at <= now) {
            self.next_ask = None;
            return true;
        }
        false
    }

    /// Whether the server has refused the rejoin at least once (we are waiting for the seat).
    pub fn refused(&self) -> bool {
        self.refused_since.is_some()
    }

    /// When to be woken for the next ask.
    pub fn next_wake(&self) -> Option<Instant> {
        self.next_ask
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_wait_and_ask_again_until_the_patience_runs_out() {
        let t0 = Instant::now();
        let mut w = SeatWait::new(3);
        assert_eq!(w.next_wake(), None, "nothing waits before a refusal");
        assert!(!w.refused());
        assert_eq!(w.on_refused(t0), Refusal::FirstWait);
        assert!(w.refused());
        assert_eq!(w.next_wake(), Some(t0 + SEAT_RETRY));
        assert!(!w.due(t0 + SEAT_RETRY - Duration::from_millis(1)));
        assert!(w.due(t0 + SEAT_RETRY));
        assert!(!w.due(t0 + SEAT_RETRY), "asked once per timer");
        assert_eq!(w.next_wake(), None, "the answer sets the next");
        let late = t0 + SEAT_PATIENCE - Duration::from_millis(1);
        assert_eq!(w.on_refused(late), Refusal::StillWaiting);
        assert_eq!(w.on_refused(t0 + SEAT_PATIENCE), Refusal::GiveUp);
        assert_eq!(w.next_wake(), None);
    }

    #[test]
    fn our_own_leave_asks_at_once_only_once_refused() {
        let t0 = Instant::now();
        let mut w = SeatWait::new(3);
        assert!(!w.on_own_leave(), "the first rejoin is still on its way");
        w.on_refused(t0);
        assert!(w.on_own_leave());
        assert_eq!(w.next_wake(), None, "asked now: no timer until the answer");
    }
}
