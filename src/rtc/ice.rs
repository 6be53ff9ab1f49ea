//! ICE candidates on both sides, kept apart by ICE generation (the ufrag).
//!
//! - Remote candidates ([`RemoteIce`]) that arrive before any remote description, or whose
//!   `username_fragment` names another generation than the applied one, wait in a bounded queue
//!   and are applied (or dropped as stale) when a description is applied.
//! - Local candidates ([`LocalIce`]) are stamped with our current ufrag; while a description is
//!   being created they are held, because webrtc starts gathering before the new ufrag is known.
//!
//! The bookkeeping is plain data under the peer's locks; `peer.rs` applies its decisions to
//! the connection. Must never call into the peer connection itself, or let a flood of remote
//! candidates grow without bound.

use std::sync::Mutex as StdMutex;

use serde::{Deserialize, Serialize};
use tracing::{debug, warn};
use webrtc::ice_transport::ice_candidate::{RTCIceCandidate, RTCIceCandidateInit};

use super::events::Emit;
use super::{CandidateKind, PeerEvent};

/// Remote candidates kept while waiting for their description; a flood beyond is dropped.
const MAX_PENDING_CANDIDATES: usize = 64;

/// An ICE candidate as carried by signaling (the protocol's `Signal::Candidate`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CandidateInit {
    /// `candidate:...` line without the `a=`.
    pub candidate: String,
    pub sdp_mid: Option<String>,
    pub sdp_mline_index: Option<u16>,
    /// ICE ufrag of the session the candidate belongs to. Filled in by this adapter on local
    /// candidates and used on remote ones to keep candidates of an old or a not yet applied
    /// ICE generation apart (webrtc 0.17.2 itself ignores the field).
    pub username_fragment: Option<String>,
}

impl CandidateInit {
    /// The candidate's type, read from its attribute's `typ` token (RFC 8839 section 5.1:
    /// `candidate:<foundation> <component> <transport> <priority> <address> <port> typ <type>
    /// ...`); `None` if the attribute has no known type.
    pub fn kind(&self) -> Option<CandidateKind> {
        let mut fields = self.candidate.split_ascii_whitespace().skip(6);
        if fields.next() != Some("typ") {
            return None;
        }
        match fields.next()? {
            "host" => Some(CandidateKind::Host),
            "srflx" => Some(CandidateKind::Srflx),
            "prflx" => Some(CandidateKind::Prflx),
            "relay" => Some(CandidateKind::Relay),
            _ => None,
        }
    }
}

impl From<CandidateInit> for RTCIceCandidateInit {
    fn from(cand: CandidateInit) -> Self {
        Self {
            candidate: cand.candidate,
            sdp_mid: cand.sdp_mid,
            sdp_mline_index: cand.sdp_mline_index,
            username_fragment: cand.username_fragment,
        }
    }
}

/// The remote side's ICE generation and the candidates waiting for it.
#[derive(Debug, Default)]
pub(super) struct RemoteIce {
    /// ufrag of the applied remote description; `None` before the first one.
    ufrag: Option<String>,
    /// Candidates waiting for a remote description (or for the next ICE generation).
    pending: Vec<CandidateInit>,
}

impl RemoteIce {
    /// Whether `cand` must wait for its remote description: before any remote description,
    /// and when its `username_fragment` names another ICE generation (a restart offer not yet
    /// applied, or a stale one that the next flush drops). Without a `username_fragment` it
    /// counts as the current generation.
    pub(super) fn must_wait(&self, cand: &CandidateInit) -> bool {
        match (&self.ufrag, &cand.username_fragment) {
            (None, _) => true,
            (Some(current), Some(theirs)) => current != theirs,
            (Some(_), None) => false,
        }
    }

    /// Queues a candidate that must wait; drops it (with a warning) once the queue is full.
    pub(super) fn queue(&mut self, cand: CandidateInit) {
        if self.pending.len() >= MAX_PENDING_CANDIDATES {
            warn!("too many early remote candidates; dropping one");
            return;
        }
        tracing::trace!(ufrag = ?cand.username_fragment, "queueing remote candidate");
        self.pending.push(cand);
    }

    /// Records the ufrag of the remote description `sdp` just applied and hands back the
    /// queued candidates of that generation; the rest are stale and dropped.
    pub(super) fn described(&mut self, sdp: &str) -> Vec<CandidateInit> {
        let ufrag = sdp_ice_ufrag(sdp);
        self.ufrag = ufrag.clone();
        let mut ready = Vec::new();
        for cand in std::mem::take(&mut self.pending) {
            let matches = match (&cand.username_fragment, &ufrag) {
                (Some(theirs), Some(current)) => theirs == current,
                _ => true,
            };
            if !matches {
                debug!(candidate = %cand.candidate, "dropping remote candidate of an old ICE generation");
                continue;
            }
            ready.push(cand);
        }
        ready
    }
}

/// Our side's ICE generation, shared with webrtc's candidate callback.
#[derive(Debug, Default)]
pub(super) struct LocalIce {
    /// ufrag of our current local description; stamped on outgoing candidates.
    ufrag: Option<String>,
    /// While a description is being created, candidates of the new generation are held here:
    /// webrtc starts gathering inside `create_offer(ice_restart)` and inside
    /// `set_remote_description` (answerer restart), i.e. before we know the new ufrag.
    held: Option<Vec<CandidateInit>>,
}

impl LocalIce {
    /// Records the ufrag of the local description `sdp` just applied.
    pub(super) fn described(&mut self, sdp: &str) {
        self.ufrag = sdp_ice_ufrag(sdp);
    }

    /// Holds gathered candidates from now on, until [`LocalIce::release`].
    pub(super) fn hold(&mut self) {
        if self.held.is_none() {
            self.held = Some(Vec::new());
        }
    }

    /// Stops holding; returns the held candidates stamped with the current ufrag, to send.
    pub(super) fn release(&mut self) -> Vec<CandidateInit> {
        let mut held = self.held.take().unwrap_or_default();
        for cand in &mut held {
            cand.username_fragment = self.ufrag.clone();
        }
        held
    }

    /// A freshly gathered candidate: held (`None`) or stamped with the current ufrag, to send.
    fn gathered(&mut self, mut cand: CandidateInit) -> Option<CandidateInit> {
        match self.held.as_mut() {
            Some(held) => {
                held.push(cand);
                None
            }
            None => {
                cand.username_fragment = self.ufrag.clone();
                Some(cand)
            }
        }
    }
}

/// webrtc's local-candidate callback: `None` means gathering is complete.
pub(super) fn on_local_candidate(
    emit: &Emit,
    local: &StdMutex<LocalIce>,
    cand: Option<RTCIceCandidate>,
) {
    let Some(cand) = cand else {
        emit(PeerEvent::GatheringComplete);
        return;
    };
    let init = match cand.to_json() {
        Ok(init) => init,
        Err(err) => {
            warn!(%err, "could not serialise a local candidate");
            return;
        }
    };
    let out = CandidateInit {
        candidate: init.candidate,
        sdp_mid: init.sdp_mid,
        sdp_mline_index: init.sdp_mline_index,
        username_fragment: None,
    };
    // Invariant: only plain field updates happen under this lock (no panics inside).
    let ready = local
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .gathered(out);
    if let Some(cand) = ready {
        emit(PeerEvent::LocalCandidate(cand));
    }
}

/// The first `a=ice-ufrag:` of an SDP (session or media level; we bundle, so all are equal).
fn sdp_ice_ufrag(sdp: &str) -> Option<String> {
    sdp.lines()
        .find_map(|l| l.trim_end().strip_prefix("a=ice-ufrag:"))
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn candidate(line: &str) -> CandidateInit {
        CandidateInit {
            candidate: line.into(),
            sdp_mid: None,
            sdp_mline_index: None,
            username_fragment: None,
        }
    }

    #[test]
    fn a_candidate_s_type_is_its_typ_token() {
        let relay = "candidate:1 1 udp 16777215 10.0.0.9 50000 typ relay raddr 10.0.0.2 rport 4000";
        assert_eq!(candidate(relay).kind(), Some(CandidateKind::Relay));
        let host = "candidate:2 1 udp 2130706431 127.0.0.1 40000 typ host";
        assert_eq!(candidate(host).kind(), Some(CandidateKind::Host));
        let srflx = "candidate:3 1 udp 1694498815 1.2.3.4 40000 typ srflx raddr 0.0.0.0 rport 0";
        assert_eq!(candidate(srflx).kind(), Some(CandidateKind::Srflx));
        // A host candidate whose foundation or address merely contains the words is a host
        // (the old substring test would have called the first one relayed).
        let tricky = "candidate:x 1 udp 1 relay.example 40000 typ host generation 0 typ relay";
        assert_eq!(candidate(tricky).kind(), Some(CandidateKind::Host));
        assert_eq!(candidate("candidate:1 1 udp 1 h 1 typ").kind(), None);
        assert_eq!(candidate("garbage").kind(), None);
        assert_eq!(candidate("candidate:1 1 udp 1 h 1 typ weird").kind(), None);
    }

    #[test]
    fn ufrag_is_found_at_media_level() {
        let sdp = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=ice-ufrag:AbCd\r\na=ice-pwd:x\r\n";
        assert_eq!(sdp_ice_ufrag(sdp).as_deref(), Some("AbCd"));
        assert_eq!(sdp_ice_ufrag("v=0\r\n"), None);
    }

    fn cand(n: u8, ufrag: Option<&str>) -> CandidateInit {
        CandidateInit {
            candidate: format!("candidate:{n}"),
            sdp_mid: None,
            sdp_mline_index: None,
            username_fragment: ufrag.map(str::to_owned),
        }
    }

    #[test]
    fn remote_candidates_wait_for_their_generation_and_stale_ones_are_dropped() {
        let mut remote = RemoteIce::default();
        assert!(remote.must_wait(&cand(1, None)), "no description yet");
        remote.queue(cand(1, Some("one")));
        remote.queue(cand(2, Some("two")));
        remote.queue(cand(3, None));
        let ready = remote.described("a=ice-ufrag:two\r\n");
        assert_eq!(ready, [cand(2, Some("two")), cand(3, None)]);
        assert!(!remote.must_wait(&cand(4, Some("two"))));
        assert!(!remote.must_wait(&cand(4, None)));
        assert!(
            remote.must_wait(&cand(4, Some("three"))),
            "a restart not applied yet"
        );
    }

    #[test]
    fn a_flood_of_early_remote_candidates_is_bounded() {
        let mut remote = RemoteIce::default();
        for n in 0..=200u8 {
            remote.queue(cand(n, None));
        }
        assert_eq!(remote.described("").len(), MAX_PENDING_CANDIDATES);
    }

    #[test]
    fn local_candidates_are_held_while_describing_then_stamped() {
        let mut local = LocalIce::default();
        local.described("a=ice-ufrag:old\r\n");
        assert_eq!(local.gathered(cand(1, None)), Some(cand(1, Some("old"))));
        local.hold();
        assert_eq!(local.gathered(cand(2, None)), None);
        local.described("a=ice-ufrag:new\r\n");
        assert_eq!(local.release(), [cand(2, Some("new"))]);
        assert_eq!(local.gathered(cand(3, None)), Some(cand(3, Some("new"))));
        assert!(local.release().is_empty());
    }
}
