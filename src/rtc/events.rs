//! What a [`super::Peer`] reports, as plain data: connection states, selected candidate
//! types, the remote's RTP packets, each tagged with the engine's key, and the two channels
//! they travel on (control, and audio drained before a frame plays).
//!
//! Must never carry a webrtc type out of `rtc`: the conversions from webrtc's enums live here.

use std::sync::Arc;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use webrtc::ice_transport::ice_candidate_type::RTCIceCandidateType;
use webrtc::peer_connection::peer_connection_state::RTCPeerConnectionState;

use super::CandidateInit;

/// Connection state of a peer, from webrtc's peer-connection state (ICE and DTLS combined).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PeerState {
    Connecting,
    Connected,
    /// No traffic for [`IceTimeouts::disconnected`](super::IceTimeouts::disconnected); may come
    /// back to `Connected` by itself.
    Disconnected,
    /// Given up; only an ICE restart (new offer) or a new peer helps.
    Failed,
    Closed,
}

/// ICE candidate type, for the UI ("direct" vs "via relay") and for diagnostics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CandidateKind {
    Host,
    Srflx,
    Prflx,
    Relay,
}

/// What a [`Peer`](super::Peer) reports. Sent on the channels given to
/// [`Peer::new`](super::Peer::new) ([`PeerEvents`]), tagged with its key.
#[derive(Debug, Clone, PartialEq)]
pub enum PeerEvent {
    /// A local candidate to send to the remote through signaling.
    LocalCandidate(CandidateInit),
    /// Gathering of the current ICE generation is complete (no more `LocalCandidate`s until
    /// the next ICE restart).
    GatheringComplete,
    /// New peer-connection state.
    State(PeerState),
    /// ICE selected (or switched to) a candidate pair.
    SelectedPair {
        local: CandidateKind,
        remote: CandidateKind,
    },
    /// One RTP packet of the remote's audio track (Opus payload, not decoded).
    RemoteAudio {
        seq: u16,
        timestamp: u32,
        payload: Vec<u8>,
        /// When the adapter read it; for the engine's jitter buffer.
        received_at: Instant,
    },
}

/// Sends events tagged with the engine's key for this peer.
pub(super) type Emit = Arc<dyn Fn(PeerEvent) + Send + Sync>;

/// Where a [`Peer`](super::Peer)'s events go. The remote's audio packets
/// ([`PeerEvent::RemoteAudio`]) have a channel of their
/// own, which the engine drains just before it plays a frame instead of waking for each packet
/// (each carries the time it was read); everything else goes to `control`, which the engine
/// handles as it comes.
pub struct PeerEvents<K> {
    pub control: mpsc::UnboundedSender<(K, PeerEvent)>,
    pub audio: mpsc::UnboundedSender<(K, PeerEvent)>,
}

impl<K> PeerEvents<K> {
    /// Sends `ev` tagged with `key` on its channel. The engine dropping its receivers means
    /// it is shutting down: nothing to do.
    pub fn send(&self, key: K, ev: PeerEvent) {
        let channel = match ev {
            PeerEvent::RemoteAudio { .. } => &self.audio,
            _ => &self.control,
        };
        let _ = channel.send((key, ev));
    }
}

impl<K> Clone for PeerEvents<K> {
    fn clone(&self) -> Self {
        Self {
            control: self.control.clone(),
            audio: self.audio.clone(),
        }
    }
}

pub(super) fn peer_state(s: RTCPeerConnectionState) -> Option<PeerState> {
    Some(match s {
        RTCPeerConnectionState::Connecting => PeerState::Connecting,
        RTCPeerConnectionState::Connected => PeerState::Connected,
        RTCPeerConnectionState::Disconnected => PeerState::Disconnected,
        RTCPeerConnectionState::Failed => PeerState::Failed,
        RTCPeerConnectionState::Closed => PeerState::Closed,
        RTCPeerConnectionState::New | RTCPeerConnectionState::Unspecified => return None,
    })
}

pub(super) fn candidate_kind(t: RTCIceCandidateType) -> Option<CandidateKind> {
    Some(match t {
        RTCIceCandidateType::Host => CandidateKind::Host,
        RTCIceCandidateType::Srflx => CandidateKind::Srflx,
        RTCIceCandidateType::Prflx => CandidateKind::Prflx,
        RTCIceCandidateType::Relay => CandidateKind::Relay,
        RTCIceCandidateType::Unspecified => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn audio_packets_go_to_their_own_channel_and_the_rest_to_control() {
        let (control, mut control_rx) = mpsc::unbounded_channel();
        let (audio, mut audio_rx) = mpsc::unbounded_channel();
        let events = PeerEvents { control, audio };
        let packet = PeerEvent::RemoteAudio {
            seq: 7,
            timestamp: 960,
            payload: vec![1, 2, 3],
            received_at: Instant::now(),
        };
        events.send("ann", packet.clone());
        events.send("ann", PeerEvent::State(PeerState::Connected));
        assert_eq!(audio_rx.try_recv(), Ok(("ann", packet)));
        assert!(audio_rx.try_recv().is_err());
        assert_eq!(
            control_rx.try_recv(),
            Ok(("ann", PeerEvent::State(PeerState::Connected)))
        );
        assert!(control_rx.try_recv().is_err());
    }
}
