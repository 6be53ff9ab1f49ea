//! [`Peer`]: one WebRTC connection to one remote participant, carrying audio both ways. It
//! owns the `RTCPeerConnection`, runs negotiation (offer, answer, ICE restart, glare), applies
//! remote candidates through the ICE bookkeeping of `ice.rs`, and registers webrtc's callbacks,
//! which only translate and forward to the engine's channels.
//!
//! Must never: decode audio, block inside a webrtc callback, hold a strong reference to the
//! peer connection from its own callbacks (that would leak it), or `unwrap` anything derived
//! from what a remote peer sent.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex as StdMutex};

use tokio::sync::Mutex;
use tracing::{info, trace, warn};
use webrtc::ice_transport::ice_candidate::RTCIceCandidate;
use webrtc::peer_connection::RTCPeerConnection;
use webrtc::peer_connection::offer_answer_options::RTCOfferOptions;
use webrtc::peer_connection::peer_connection_state::RTCPeerConnectionState;
use webrtc::peer_connection::sdp::session_description::RTCSessionDescription;
use webrtc::peer_connection::signaling_state::RTCSignalingState;
use webrtc::rtp_transceiver::rtp_codec::RTPCodecType;

use super::api::build_peer_connection;
use super::events::{Emit, candidate_kind, peer_state};
use super::ice::{LocalIce, RemoteIce, on_local_candidate};
use super::inbound::{drain_receiver_rtcp, read_remote_audio};
use super::{
    CandidateInit, PeerConfig, PeerEvent, PeerEvents, PeerStats, RtcError, TrackHandle, stats,
};
use crate::rtp::ReceiverStats;

/// One WebRTC connection to one remote participant, carrying audio both ways.
///
/// All methods take `&self`, but the engine should drive one peer from one task: offer and
/// answer handling is not meant to interleave (the adapter serialises what must be atomic).
pub struct Peer {
    pc: Arc<RTCPeerConnection>,
    emit: Emit,
    /// Remote ICE generation and the candidates that arrived before it was applied.
    remote: Mutex<RemoteIce>,
    /// Local ICE generation, shared with the candidate callback.
    local: Arc<StdMutex<LocalIce>>,
    /// Receive counters, written by the track reader task.
    inbound: Arc<StdMutex<ReceiverStats>>,
    /// Set by `close` (and checked by `Drop`): a closed peer refuses further work.
    closed: AtomicBool,
}

impl Peer {
    /// Creates the peer connection, adds `track` to it and wires webrtc's callbacks to
    /// `events`, each event tagged with `key`.
    pub async fn new<K>(
        config: &PeerConfig,
        track: &TrackHandle,
        key: K,
        events: PeerEvents<K>,
    ) -> Result<Self, RtcError>
    where
        K: Clone + Send + Sync + 'static,
    {
        let emit: Emit = Arc::new(move |ev| events.send(key.clone(), ev));
        let pc = Arc::new(build_peer_connection(config).await?);

        let peer = Self {
            pc,
            emit,
            remote: Mutex::new(RemoteIce::default()),
            local: Arc::new(StdMutex::new(LocalIce::default())),
            inbound: Arc::new(StdMutex::new(ReceiverStats::default())),
            closed: false.into(),
        };
        peer.wire_callbacks();
        peer.add_local_track(track).await?;
        Ok(peer)
    }

    /// Creates an offer, applies it locally and returns its SDP. With `ice_restart` the ICE
    /// credentials change and candidates are gathered anew (same ICE servers as at creation).
    ///
    /// Errors while a previous gathering is still running (webrtc refuses to restart then:
    /// `ErrRestartWhenGathering`); retry after `GatheringComplete`.
    pub async fn create_offer(&self, ice_restart: bool) -> Result<String, RtcError> {
        self.ensure_open()?;
        self.hold_local_candidates();
        let result = async {
            let options = RTCOfferOptions {
                ice_restart,
                ..Default::default()
            };
            let offer = self
                .pc
                .create_offer(Some(options))
                .await
                .map_err(|source| RtcError::Negotiation {
                    step: "create_offer",
                    source,
                })?;
            self.set_local(offer).await
        }
        .await;
        self.release_local_candidates();
        result
    }

    /// Applies a remote offer and returns our answer's SDP. A changed remote ufrag is an ICE
    /// restart; webrtc then restarts our side as well. After an error other than `Glare` the
    /// peer is in an unknown negotiation state: close it and start over.
    pub async fn accept_offer(&self, sdp: &str) -> Result<String, RtcError> {
        self.ensure_open()?;
        if self.pc.signaling_state() == RTCSignalingState::HaveLocalOffer {
            return Err(RtcError::Glare);
        }
        let mut remote = self.remote.lock().await;
        self.hold_local_candidates();
        let result = async {
            self.apply_remote("offer", sdp, &mut remote).await?;
            let answer =
                self.pc
                    .create_answer(None)
                    .await
                    .map_err(|source| RtcError::Negotiation {
                        step: "create_answer",
                        source,
                    })?;
            self.set_local(answer).await
        }
        .await;
        self.release_local_candidates();
        result
    }

    /// Applies the remote answer to our offer.
    pub async fn accept_answer(&self, sdp: &str) -> Result<(), RtcError> {
        self.ensure_open()?;
        let mut remote = self.remote.lock().await;
        self.apply_remote("answer", sdp, &mut remote).await
    }

    /// Sets a remote description (`kind` is "offer" or "answer"), then applies the candidates
    /// that were waiting for it.
    async fn apply_remote(
        &self,
        kind: &'static str,
        sdp: &str,
        remote: &mut RemoteIce,
    ) -> Result<(), RtcError> {
        let bad = |source| RtcError::BadRemoteDescription { kind, source };
        let desc = match kind {
            "offer" => RTCSessionDescription::offer(sdp.to_owned()),
            _ => RTCSessionDescription::answer(sdp.to_owned()),
        }
        .map_err(bad)?;
        self.pc.set_remote_description(desc).await.map_err(bad)?;
        self.flush_pending(remote, sdp).await;
        Ok(())
    }

    /// Adds a remote candidate, or queues it until the remote description it belongs to has
    /// been applied: before any remote description, and when its `username_fragment` names
    /// another ICE generation (a restart offer not yet applied, or a stale one that the next
    /// flush drops). Without a `username_fragment` it counts as the current generation.
    pub async fn add_remote_candidate(&self, cand: CandidateInit) -> Result<(), RtcError> {
        self.ensure_open()?;
        let mut remote = self.remote.lock().await;
        if !remote.must_wait(&cand) {
            return self.apply_candidate(cand).await;
        }
        remote.queue(cand);
        Ok(())
    }

    /// Collects statistics. Cheap enough for once a second.
    pub async fn stats(&self) -> PeerStats {
        stats::collect(&self.pc, &self.inbound).await
    }

    /// Closes the connection: stops ICE, DTLS and the track readers; the remote sees
    /// `Disconnected` then `Failed` (webrtc sends no goodbye), so also tell it via signaling.
    /// A `State(Closed)` event follows. Idempotent.
    pub async fn close(&self) -> Result<(), RtcError> {
        if self.closed.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        self.pc
            .close()
            .await
            .map_err(|source| RtcError::Negotiation {
                step: "close",
                source,
            })
    }

    // --- internals ---------------------------------------------------------------------------

    fn ensure_open(&self) -> Result<(), RtcError> {
        if self.closed.load(Ordering::SeqCst) {
            Err(RtcError::Closed)
        } else {
            Ok(())
        }
    }

    async fn add_local_track(&self, track: &TrackHandle) -> Result<(), RtcError> {
        let sender =
            self.pc
                .add_track(track.local())
                .await
                .map_err(|source| RtcError::Negotiation {
                    step: "add_track",
                    source,
                })?;
        // RTCP for our outbound stream (receiver reports, NACKs) only reaches the
        // interceptors (stats: RTT, remote loss) if someone reads it. Ends on close.
        tokio::spawn(async move {
            while sender.read_rtcp().await.is_ok() {}
            trace!("sender RTCP reader ended");
        });
        Ok(())
    }

    /// Sets a local description and records its ufrag for outgoing candidates.
    async fn set_local(&self, desc: RTCSessionDescription) -> Result<String, RtcError> {
        let sdp = desc.sdp.clone();
        self.pc
            .set_local_description(desc)
            .await
            .map_err(|source| RtcError::Negotiation {
                step: "set_local_description",
                source,
            })?;
        self.lock_local().described(&sdp);
        Ok(sdp)
    }

    /// Records the applied remote description's ufrag and applies the queued candidates of
    /// that generation; the rest are stale and dropped.
    async fn flush_pending(&self, remote: &mut RemoteIce, sdp: &str) {
        for cand in remote.described(sdp) {
            if let Err(err) = self.apply_candidate(cand).await {
                // One bad candidate must not spoil the others.
                warn!(%err, "queued remote candidate rejected");
            }
        }
    }

    async fn apply_candidate(&self, cand: CandidateInit) -> Result<(), RtcError> {
        self.pc
            .add_ice_candidate(cand.into())
            .await
            .map_err(RtcError::BadRemoteCandidate)
    }

    fn lock_local(&self) -> std::sync::MutexGuard<'_, LocalIce> {
        // Invariant: only plain field updates happen under this lock (no panics inside).
        self.local.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn hold_local_candidates(&self) {
        self.lock_local().hold();
    }

    fn release_local_candidates(&self) {
        let held = self.lock_local().release();
        for cand in held {
            (self.emit)(PeerEvent::LocalCandidate(cand));
        }
    }

    /// Registers webrtc's callbacks. Each holds only the emitter, weak references and the
    /// adapter's own shared state, never the peer connection itself.
    fn wire_callbacks(&self) {
        let emit = self.emit.clone();
        let local = self.local.clone();
        self.pc
            .on_ice_candidate(Box::new(move |cand: Option<RTCIceCandidate>| {
                on_local_candidate(&emit, &local, cand);
                Box::pin(async {})
            }));

        let emit = self.emit.clone();
        self.pc
            .on_peer_connection_state_change(Box::new(move |s: RTCPeerConnectionState| {
                info!(state = %s, "peer connection state");
                if let Some(state) = peer_state(s) {
                    emit(PeerEvent::State(state));
                }
                Box::pin(async {})
            }));

        let emit = self.emit.clone();
        self.pc
            .dtls_transport()
            .ice_transport()
            .on_selected_candidate_pair_change(Box::new(move |pair| {
                info!(%pair, "selected candidate pair");
                if let (Some(local), Some(remote)) = (
                    candidate_kind(pair.local.typ),
                    candidate_kind(pair.remote.typ),
                ) {
                    emit(PeerEvent::SelectedPair { local, remote });
                }
                Box::pin(async {})
            }));

        let emit = self.emit.clone();
        let inbound = self.inbound.clone();
        self.pc
            .on_track(Box::new(move |track, receiver, _transceiver| {
                // webrtc runs this handler under a lock per connection: start the readers and
                // return at once, or a second track would wait for the first one to end.
                if track.kind() == RTPCodecType::Audio {
                    tokio::spawn(read_remote_audio(track, emit.clone(), inbound.clone()));
                    // Sender reports of the remote reach the receiver-report interceptor (and
                    // so the remote's RTT) only if this RTCP is read. Ends on close.
                    let receiver = Arc::downgrade(&receiver);
                    tokio::spawn(drain_receiver_rtcp(receiver));
                } else {
                    warn!(kind = %track.kind(), "ignoring a non-audio remote track");
                }
                Box::pin(async {})
            }));
    }
}

impl Drop for Peer {
    /// A peer connection that is never closed keeps its sockets and tasks alive. Close it in
    /// the background if the engine forgot to.
    fn drop(&mut self) {
        if !self.closed.load(Ordering::SeqCst)
            && let Ok(handle) = tokio::runtime::Handle::try_current()
        {
            let pc = self.pc.clone();
            handle.spawn(async move {
                let _ = pc.close().await;
            });
        }
    }
}
