//! Who we are in a call with, and what to do about each peer: the mesh's bookkeeping, pure.
//!
//! - One call per remote user in our channel (full mesh).
//! - Glare-free: of two peers, the one whose user id sorts first makes every offer (initial
//!   and ICE restarts); the other only answers. Both sides know both ids, so they agree.
//! - A peer that drops mid-call (`disconnected` for too long, or `failed`) is reported and
//!   retried with an ICE restart by its offerer, again and again while it stays in the
//!   channel (Cromulent only logged it).
//! - A connection whose ICE found a path but which never connects (its DTLS handshake hangs,
//!   see [`HANDSHAKE_WAIT`]) is replaced: the offerer builds a new one itself; the answerer,
//!   which may not offer, asks the offerer for one (`Signal::Renew`).
//! - A new `instance` of a user (it reconnected) means a new call.
//! - Leaving or switching closes every call.
//!
//! Each call has a generation number; events from an older generation's peer connection are
//! ignored, so a late event from a closed connection cannot disturb its successor.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use cromulent_protocol::{Member, UserId};

/// How long `disconnected` may last before the offerer restarts ICE.
pub const DISCONNECTED_GRACE: Duration = Duration::from_secs(2);
/// Least time between two restarts of one call.
pub const RESTART_INTERVAL: Duration = Duration::from_secs(3);
/// An offer unanswered this long is given up: the connection is replaced by a new one (a
/// second offer on the same connection could be answered out of order, and an answer to an
/// offer that is no longer the current one breaks the connection).
pub const ANSWER_WAIT: Duration = Duration::from_secs(10);
/// A connection whose ICE selected a pair this long ago but that is still not connected has
/// a hung DTLS handshake, and is replaced by a new one.
///
/// webrtc 0.17.2's DTLS sends the handshake's last flight only once: when the DTLS server's
/// final flight (ChangeCipherSpec + Finished, one datagram) is lost, the server is connected,
/// but the client retransmits its own last flight every second forever and the server no
/// longer answers (`dtls-0.17.2/src/handshaker.rs:230-234`: the handshake loop returns on
/// first reaching `Finished`, so `finish()`, which would retransmit, never runs; there is no
/// handshake timeout either). ICE stays connected, so nothing ever fails: one side says
/// `connected`, the other `connecting`, and neither hears the other. At 5 % loss that hit
/// one connection in ten to twenty. A healthy handshake takes well under 2 s after ICE even
/// at 5 % loss (its flights are retransmitted after 1 s).
pub const HANDSHAKE_WAIT: Duration = Duration::from_secs(5);
/// A call that has not been connected for this long counts as failed for the status line,
/// even while restarts or a replacement connection are still being tried.
pub const DOWN_LIMIT: Duration = Duration::from_secs(10);

/// A peer connection's state as the engine tracks it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallState {
    Connecting,
    Connected,
    Disconnected,
    Failed,
    Closed,
}

impl CallState {
    pub fn name(self) -> &'static str {
        match self {
            Self::Connecting => "connecting",
            Self::Connected => "connected",
            Self::Disconnected => "disconnected",
            Self::Failed => "failed",
            Self::Closed => "closed",
        }
    }
}

/// What the engine must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallAction {
    /// Create a peer connection for `user` with this generation.
    Create { user: UserId, generation: u64 },
    /// Send an offer (we are the offerer); `restart` renews ICE.
    Offer { user: UserId, restart: bool },
    /// Close and forget the peer connection of this generation.
    Close { user: UserId, generation: u64 },
    /// Tell the front end about a state change.
    Report { user: UserId, state: CallState },
    /// Ask `user` (the offerer) for a new connection (`Signal::Renew`): ours hangs.
    AskRenew { user: UserId },
}

#[derive(Debug, Clone)]
struct Call {
    instance: u64,
    generation: u64,
    state: CallState,
    since: Instant,
    last_restart: Option<Instant>,
    /// When our offer went out, until its answer came (offering side).
    offer_pending: Option<Instant>,
    /// Since when the call has not been connected (`None` while connected).
    down_since: Option<Instant>,
    /// Since when ICE has had a path while the connection is not connected (or, on the
    /// answering side, since we last asked for a new one). See [`HANDSHAKE_WAIT`].
    path_since: Option<Instant>,
}

#[derive(Debug)]
pub struct Calls {
    me: UserId,
    calls: BTreeMap<UserId, Call>,
    next_generation: u64,
}

impl Calls {
    pub fn new(me: UserId) -> Self {
        Self {
            me,
            calls: BTreeMap::new(),
            next_generation: 1,
        }
    }

    /// Our user id changed (a new session after a reconnect); all calls are gone by then.
    pub fn set_me(&mut self, me: UserId) {
        self.me = me;
    }

    /// Whether we make the offers to `user`.
    pub fn we_offer(&self, user: &str) -> bool {
        self.me.as_str() < user
    }

    /// The current generation of `user`'s call.
    pub fn generation(&self, user: &str) -> Option<u64> {
        self.calls.get(user).map(|c| c.generation)
    }

    pub fn state(&self, user: &str) -> Option<CallState> {
        self.calls.get(user).map(|c| c.state)
    }

    pub fn users(&self) -> impl Iterator<Item = &UserId> {
        self.calls.keys()
    }

    pub fn is_empty(&self) -> bool {
        self.calls.is_empty()
    }

    /// True when there is at least one call and every one has failed, or has not been
    /// connected for [`DOWN_LIMIT`] (restarts may still be under way).
    pub fn all_failed(&self, now: Instant) -> bool {
        !self.calls.is_empty()
            && self.calls.values().all(|c| {
                c.state == CallState::Failed
                    || c.down_since
                        .is_some_and(|t| now.duration_since(t) >= DOWN_LIMIT)
            })
    }

    /// A member is (now) in our channel: start a call, or a new one if it reconnected.
    pub fn peer_present(&mut self, member: &Member, now: Instant) -> Vec<CallAction> {
        if member.user == self.me {
            return Vec::new();
        }
        let mut actions = Vec::new();
        match self.calls.get(&member.user) {
            Some(call) if call.instance == member.instance => return actions,
            Some(call) => actions.push(CallAction::Close {
                user: member.user.clone(),
                generation: call.generation,
            }),
            None => {}
        }
        let generation = self.next_generation;
        self.next_generation += 1;
        self.calls.insert(
            member.user.clone(),
            Call {
                instance: member.instance,
                generation,
                state: CallState::Connecting,
                since: now,
                last_restart: None,
                offer_pending: None,
                down_since: Some(now),
                path_since: None,
            },
        );
        actions.push(CallAction::Create {
            user: member.user.clone(),
            generation,
        });
        actions.push(CallAction::Report {
            user: member.user.clone(),
            state: CallState::Connecting,
        });
        if self.we_offer(&member.user) {
            if let Some(call) = self.calls.get_mut(&member.user) {
                call.offer_pending = Some(now);
            }
            actions.push(CallAction::Offer {
                user: member.user.clone(),
                restart: false,
            });
        }
        actions
    }

    /// The answer to our current offer to `user` arrived.
    pub fn answered(&mut self, user: &str) {
        if let Some(call) = self.calls.get_mut(user) {
            call.offer_pending = None;
        }
    }

    /// Replace `user`'s peer connection with a new one (new generation), e.g. so it uses
    /// renewed TURN credentials, or because the offerer replaced its side. The offerer also
    /// makes the new offer.
    pub fn new_connection(&mut self, user: &str, now: Instant) -> Vec<CallAction> {
        let we_offer = self.we_offer(user);
        let generation = self.next_generation;
        let Some(call) = self.calls.get_mut(user) else {
            return Vec::new();
        };
        self.next_generation += 1;
        let old = std::mem::replace(&mut call.generation, generation);
        call.state = CallState::Connecting;
        call.since = now;
        call.last_restart = Some(now);
        call.offer_pending = we_offer.then_some(now);
        call.path_since = None;
        let mut actions = vec![
            CallAction::Close {
                user: user.to_owned(),
                generation: old,
            },
            CallAction::Create {
                user: user.to_owned(),
                generation,
            },
        ];
        if we_offer {
            actions.push(CallAction::Offer {
                user: user.to_owned(),
                restart: false,
            });
        }
        actions
    }

    /// A member left our channel.
    pub fn peer_gone(&mut self, user: &str) -> Vec<CallAction> {
        match self.calls.remove(user) {
            Some(call) => vec![
                CallAction::Close {
                    user: user.to_owned(),
                    generation: call.generation,
                },
                CallAction::Report {
                    user: user.to_owned(),
                    state: CallState::Closed,
                },
            ],
            None => Vec::new(),
        }
    }

    /// We left the channel (or lost signaling): close everything.
    pub fn close_all(&mut self) -> Vec<CallAction> {
        let users: Vec<UserId> = self.calls.keys().cloned().collect();
        users.iter().flat_map(|u| self.peer_gone(u)).collect()
    }

    /// A peer connection reported a state.
    pub fn on_state(
        &mut self,
        user: &str,
        generation: u64,
        state: CallState,
        now: Instant,
    ) -> Vec<CallAction> {
        let we_offer = self.we_offer(user);
        let Some(call) = self.calls.get_mut(user) else {
            return Vec::new();
        };
        if call.generation != generation || call.state == state {
            return Vec::new();
        }
        call.state = state;
        call.since = now;
        if state == CallState::Connected {
            call.down_since = None;
            call.path_since = None;
        } else if call.down_since.is_none() {
            call.down_since = Some(now);
        }
        let mut actions = vec![CallAction::Report {
            user: user.to_owned(),
            state,
        }];
        if state == CallState::Failed && we_offer {
            actions.extend(restart(user, call, now));
        }
        actions
    }

    /// Time passes: restart calls stuck in `disconnected` or `failed` (offerer side).
    pub fn on_tick(&mut self, now: Instant) -> Vec<CallAction> {
        let overdue = self.waited(now, ANSWER_WAIT, |c| c.offer_pending);
        let mut actions: Vec<CallAction> = overdue
            .iter()
            .flat_map(|u| self.new_connection(u, now))
            .collect();
        actions.extend(self.replace_hung(now));
        let me = self.me.clone();
        for (user, call) in &mut self.calls {
            if me.as_str() >= user.as_str() {
                continue;
            }
            let stuck = match call.state {
                CallState::Failed => true,
                CallState::Disconnected => now.duration_since(call.since) >= DISCONNECTED_GRACE,
                _ => false,
            };
            if stuck {
                actions.extend(restart(user, call, now));
            }
        }
        actions
    }

    /// The first time after `ticked`, the last [`Calls::on_tick`], at which `on_tick` (or
    /// [`Calls::all_failed`]) would decide differently: an offer's answer wait, a hung
    /// handshake, a due restart, a call reaching [`DOWN_LIMIT`]. `None` when no timer runs.
    /// Ticking at every such time is all the calls need: deadlines up to `ticked` were acted
    /// on by that tick. (It may be in the past: a tick is then due at once.)
    pub fn next_deadline(&self, ticked: Instant) -> Option<Instant> {
        self.calls
            .iter()
            .flat_map(|(user, c)| {
                let restart = (self.we_offer(user) && c.offer_pending.is_none())
                    .then(|| {
                        let grace = match c.state {
                            CallState::Failed => Duration::ZERO,
                            CallState::Disconnected => DISCONNECTED_GRACE,
                            _ => return None,
                        };
                        let allowed = c.last_restart.map(|t| t + RESTART_INTERVAL);
                        Some((c.since + grace).max(allowed.unwrap_or(c.since)))
                    })
                    .flatten();
                [
                    c.offer_pending.map(|t| t + ANSWER_WAIT),
                    c.path_since.map(|t| t + HANDSHAKE_WAIT),
                    c.down_since.map(|t| t + DOWN_LIMIT),
                    restart,
                ]
            })
            .flatten()
            .filter(|&t| t > ticked)
            .min()
    }

    /// Users whose call has had `since(call)` set for at least `wait` at `now`.
    fn waited(
        &self,
        now: Instant,
        wait: Duration,
        since: impl Fn(&Call) -> Option<Instant>,
    ) -> Vec<UserId> {
        self.calls
            .iter()
            .filter(|(_, c)| since(c).is_some_and(|t| now.duration_since(t) >= wait))
            .map(|(u, _)| u.clone())
            .collect()
    }

    /// ICE selected a candidate pair for `user`'s connection of `generation`.
    pub fn path_found(&mut self, user: &str, generation: u64, now: Instant) {
        if let Some(call) = self.calls.get_mut(user)
            && call.generation == generation
            && call.state != CallState::Connected
            && call.path_since.is_none()
        {
            call.path_since = Some(now);
        }
    }

    /// Connections still not connected [`HANDSHAKE_WAIT`] after ICE found a path: the offerer
    /// replaces its own, the answerer asks the offerer to (again every `HANDSHAKE_WAIT` while
    /// it stays so).
    fn replace_hung(&mut self, now: Instant) -> Vec<CallAction> {
        let hung = self.waited(now, HANDSHAKE_WAIT, |c| c.path_since);
        let mut actions = Vec::new();
        for user in hung {
            if self.we_offer(&user) {
                actions.extend(self.new_connection(&user, now));
            } else if let Some(call) = self.calls.get_mut(&user) {
                call.path_since = Some(now);
                actions.push(CallAction::AskRenew { user });
            }
        }
        actions
    }
}

fn restart(user: &str, call: &mut Call, now: Instant) -> Option<CallAction> {
    if call
        .last_restart
        .is_some_and(|t| now.duration_since(t) < RESTART_INTERVAL)
        || call.offer_pending.is_some()
    {
        // Too soon, or an offer is still waiting for its answer (`on_tick` replaces the
        // connection if it never comes).
        return None;
    }
    call.last_restart = Some(now);
    call.offer_pending = Some(now);
    Some(CallAction::Offer {
        user: user.to_owned(),
        restart: true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(user: &str, instance: u64) -> Member {
        Member {
            instance,
            ..crate::engine::presence::fixtures::member(user)
        }
    }

    /// Alice's calls with bob present since `t0` and her offer answered: bob's generation.
    fn alice_called_bob(t0: Instant) -> (Calls, u64) {
        let mut c = Calls::new("alice".into());
        c.peer_present(&member("bob", 1), t0);
        c.answered("bob");
        let g = c.generation("bob").unwrap();
        (c, g)
    }

    fn offers(actions: &[CallAction]) -> Vec<(String, bool)> {
        actions
            .iter()
            .filter_map(|a| match a {
                CallAction::Offer { user, restart } => Some((user.clone(), *restart)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn exactly_one_side_offers() {
        let now = Instant::now();
        let mut alice = Calls::new("alice".into());
        let mut bob = Calls::new("bob".into());
        let a = alice.peer_present(&member("bob", 1), now);
        let b = bob.peer_present(&member("alice", 1), now);
        assert_eq!(offers(&a), [("bob".to_owned(), false)]);
        assert!(offers(&b).is_empty(), "bob only answers: no glare");
    }

    #[test]
    fn ourselves_and_repeats_are_ignored_and_a_new_instance_is_a_new_call() {
        let now = Instant::now();
        let mut c = Calls::new("alice".into());
        assert!(c.peer_present(&member("alice", 1), now).is_empty());
        c.peer_present(&member("bob", 1), now);
        let g1 = c.generation("bob").unwrap();
        assert!(c.peer_present(&member("bob", 1), now).is_empty());
        let actions = c.peer_present(&member("bob", 2), now);
        assert_eq!(
            actions[0],
            CallAction::Close {
                user: "bob".into(),
                generation: g1
            }
        );
        assert!(c.generation("bob").unwrap() > g1);
        assert_eq!(offers(&actions), [("bob".to_owned(), false)]);
    }

    #[test]
    fn a_failed_peer_is_reported_and_restarted_by_the_offerer() {
        let t0 = Instant::now();
        let (mut c, g) = alice_called_bob(t0);
        c.on_state("bob", g, CallState::Connected, t0);
        let actions = c.on_state("bob", g, CallState::Failed, t0);
        assert!(actions.contains(&CallAction::Report {
            user: "bob".into(),
            state: CallState::Failed
        }));
        assert_eq!(offers(&actions), [("bob".to_owned(), true)]);
        assert!(c.all_failed(t0));
        // Not again at once, but again after the interval while it stays failed (once the
        // restart offer was answered).
        assert!(offers(&c.on_tick(t0 + Duration::from_secs(1))).is_empty());
        c.answered("bob");
        assert_eq!(
            offers(&c.on_tick(t0 + RESTART_INTERVAL)),
            [("bob".to_owned(), true)]
        );
    }

    #[test]
    fn the_answerer_reports_but_does_not_restart() {
        let t0 = Instant::now();
        let mut c = Calls::new("zoe".into());
        c.peer_present(&member("bob", 1), t0);
        let g = c.generation("bob").unwrap();
        let actions = c.on_state("bob", g, CallState::Failed, t0);
        assert!(offers(&actions).is_empty());
        assert!(offers(&c.on_tick(t0 + Duration::from_secs(60))).is_empty());
    }

    #[test]
    fn disconnected_too_long_is_restarted() {
        let t0 = Instant::now();
        let (mut c, g) = alice_called_bob(t0);
        c.on_state("bob", g, CallState::Disconnected, t0);
        assert!(offers(&c.on_tick(t0 + Duration::from_millis(500))).is_empty());
        assert_eq!(
            offers(&c.on_tick(t0 + DISCONNECTED_GRACE)),
            [("bob".to_owned(), true)]
        );
    }

    #[test]
    fn stale_generations_are_ignored() {
        let t0 = Instant::now();
        let mut c = Calls::new("alice".into());
        c.peer_present(&member("bob", 1), t0);
        let old = c.generation("bob").unwrap();
        c.peer_present(&member("bob", 2), t0);
        assert!(c.on_state("bob", old, CallState::Failed, t0).is_empty());
        assert_eq!(c.state("bob"), Some(CallState::Connecting));
    }

    #[test]
    fn a_new_connection_replaces_the_old_generation() {
        let t0 = Instant::now();
        let mut alice = Calls::new("alice".into());
        alice.peer_present(&member("bob", 1), t0);
        let g1 = alice.generation("bob").unwrap();
        let actions = alice.new_connection("bob", t0);
        let g2 = alice.generation("bob").unwrap();
        assert!(g2 > g1);
        assert_eq!(
            &actions[..2],
            [
                CallAction::Close {
                    user: "bob".into(),
                    generation: g1
                },
                CallAction::Create {
                    user: "bob".into(),
                    generation: g2
                }
            ]
        );
        assert_eq!(offers(&actions), [("bob".to_owned(), false)]);
        // The answering side replaces its connection but does not offer.
        let mut bob = Calls::new("bob".into());
        bob.peer_present(&member("alice", 1), t0);
        assert!(offers(&bob.new_connection("alice", t0)).is_empty());
        assert!(alice.new_connection("nobody", t0).is_empty());
    }

    #[test]
    fn no_second_offer_while_one_is_unanswered_and_an_unanswered_one_is_replaced() {
        let t0 = Instant::now();
        let (mut c, g1) = alice_called_bob(t0);
        c.on_state("bob", g1, CallState::Connected, t0);
        // The path fails; one restart offer goes out...
        let actions = c.on_state("bob", g1, CallState::Failed, t0);
        assert_eq!(offers(&actions), [("bob".to_owned(), true)]);
        // ...and while it is unanswered no other one, however long the failure lasts...
        let later = t0 + RESTART_INTERVAL * 2;
        assert!(offers(&c.on_tick(later)).is_empty());
        // ...until the answer is overdue: then a new connection replaces this one.
        let actions = c.on_tick(t0 + ANSWER_WAIT);
        assert!(actions.contains(&CallAction::Close {
            user: "bob".into(),
            generation: g1
        }));
        assert_eq!(offers(&actions), [("bob".to_owned(), false)]);
        assert!(c.generation("bob").unwrap() > g1);
    }

    #[test]
    fn a_call_down_too_long_counts_as_failed_even_while_being_retried() {
        let t0 = Instant::now();
        let mut c = Calls::new("alice".into());
        c.peer_present(&member("bob", 1), t0);
        let g = c.generation("bob").unwrap();
        assert!(!c.all_failed(t0 + DOWN_LIMIT / 2), "still connecting");
        c.on_state("bob", g, CallState::Connected, t0);
        c.on_state("bob", g, CallState::Disconnected, t0 + DOWN_LIMIT);
        c.on_state("bob", g, CallState::Connecting, t0 + DOWN_LIMIT * 3 / 2);
        assert!(!c.all_failed(t0 + DOWN_LIMIT * 3 / 2));
        assert!(
            c.all_failed(t0 + DOWN_LIMIT * 2),
            "down for the whole limit"
        );
        c.on_state("bob", g, CallState::Connected, t0 + DOWN_LIMIT * 2);
        assert!(!c.all_failed(t0 + DOWN_LIMIT * 2));
        // Never connected at all, for too long: failed too (no route).
        let mut d = Calls::new("alice".into());
        d.peer_present(&member("carol", 1), t0);
        assert!(d.all_failed(t0 + DOWN_LIMIT));
    }

    #[test]
    fn a_connection_that_hangs_after_ice_is_replaced_by_the_offerer() {
        let t0 = Instant::now();
        let (mut c, g1) = alice_called_bob(t0);
        c.on_state("bob", g1, CallState::Connecting, t0);
        // No path yet: that is ICE's business (it fails, then the restarts take over).
        assert!(c.on_tick(t0 + HANDSHAKE_WAIT * 2).is_empty());
        // ICE connected, DTLS never finishes: webrtc says `connecting` and nothing else.
        let t1 = t0 + HANDSHAKE_WAIT * 2;
        c.path_found("bob", g1, t1);
        assert!(c.on_tick(t1 + HANDSHAKE_WAIT / 2).is_empty());
        let actions = c.on_tick(t1 + HANDSHAKE_WAIT);
        assert!(actions.contains(&CallAction::Close {
            user: "bob".into(),
            generation: g1
        }));
        assert_eq!(offers(&actions), [("bob".to_owned(), false)]);
        let g2 = c.generation("bob").unwrap();
        assert!(g2 > g1);
        // The new connection starts without a path; a stale generation's path is ignored.
        c.answered("bob");
        c.path_found("bob", g1, t1 + HANDSHAKE_WAIT);
        assert!(c.on_tick(t1 + HANDSHAKE_WAIT * 3).is_empty());
        // A path followed by `connected` is fine, and so is a later path change.
        c.path_found("bob", g2, t1 + HANDSHAKE_WAIT * 3);
        c.on_state("bob", g2, CallState::Connected, t1 + HANDSHAKE_WAIT * 3);
        c.path_found("bob", g2, t1 + HANDSHAKE_WAIT * 4);
        assert!(c.on_tick(t1 + HANDSHAKE_WAIT * 10).is_empty());
        assert_eq!(c.generation("bob"), Some(g2));
    }

    #[test]
    fn an_answerer_whose_connection_hangs_asks_for_a_new_one() {
        let t0 = Instant::now();
        let mut c = Calls::new("zoe".into());
        c.peer_present(&member("bob", 1), t0);
        let g = c.generation("bob").unwrap();
        c.on_state("bob", g, CallState::Connecting, t0);
        c.path_found("bob", g, t0);
        assert!(c.on_tick(t0 + HANDSHAKE_WAIT / 2).is_empty());
        let ask = [CallAction::AskRenew { user: "bob".into() }];
        assert_eq!(c.on_tick(t0 + HANDSHAKE_WAIT), ask);
        // It never offers itself; it asks again only after another wait.
        assert!(c.on_tick(t0 + HANDSHAKE_WAIT * 3 / 2).is_empty());
        assert_eq!(c.on_tick(t0 + HANDSHAKE_WAIT * 2), ask);
        // The offerer's new connection (its offer replaced ours) connects: no more asking.
        let t1 = t0 + HANDSHAKE_WAIT * 2;
        c.new_connection("bob", t1);
        let g2 = c.generation("bob").unwrap();
        c.path_found("bob", g2, t1);
        c.on_state("bob", g2, CallState::Connected, t1 + HANDSHAKE_WAIT / 2);
        assert!(c.on_tick(t1 + HANDSHAKE_WAIT * 10).is_empty());
    }

    #[test]
    fn leaving_closes_every_call() {
        let t0 = Instant::now();
        let mut c = Calls::new("alice".into());
        c.peer_present(&member("bob", 1), t0);
        c.peer_present(&member("carol", 1), t0);
        let actions = c.close_all();
        let closes = actions
            .iter()
            .filter(|a| matches!(a, CallAction::Close { .. }))
            .count();
        assert_eq!(closes, 2);
        assert!(c.is_empty());
        assert!(!c.all_failed(t0), "no calls is not 'all failed'");
    }
}
