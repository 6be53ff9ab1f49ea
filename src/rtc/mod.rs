//! WebRTC edge of the client: one [`Peer`] per remote participant, one shared
//! [`LocalAudioTrack`] for our own voice (encode once, send to every peer).
//!
//! This module is the only place that knows `webrtc` 0.17.2. The engine drives it with plain
//! data (SDP strings, [`CandidateInit`]) and receives plain data back as [`PeerEvent`]s on a
//! channel. webrtc's callbacks are registered here and do nothing but translate and forward;
//! no webrtc type crosses the module boundary, so a later move to another WebRTC stack only
//! touches this file.
//!
//! Must never: decode audio (the engine does), block inside a webrtc callback, hold a strong
//! reference to the peer connection from its own callbacks (that would leak it), or
//! `unwrap` anything derived from what a remote peer sent.

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex as StdMutex, Weak};
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tokio::sync::{Mutex, mpsc};
use tracing::{debug, info, trace, warn};
use webrtc::api::APIBuilder;
use webrtc::api::media_engine::{MIME_TYPE_OPUS, MediaEngine};
use webrtc::api::setting_engine::SettingEngine;
use webrtc::ice::mdns::MulticastDnsMode;
use webrtc::ice::network_type::NetworkType;
use webrtc::ice_transport::ice_candidate::{RTCIceCandidate, RTCIceCandidateInit};
use webrtc::ice_transport::ice_candidate_type::RTCIceCandidateType;
use webrtc::ice_transport::ice_server::RTCIceServer;
use webrtc::interceptor::registry::Registry;
use webrtc::interceptor::report::receiver::ReceiverReport;
use webrtc::interceptor::report::sender::SenderReport;
use webrtc::peer_connection::RTCPeerConnection;
use webrtc::peer_connection::configuration::RTCConfiguration;
use webrtc::peer_connection::offer_answer_options::RTCOfferOptions;
use webrtc::peer_connection::peer_connection_state::RTCPeerConnectionState;
use webrtc::peer_connection::policy::ice_transport_policy::RTCIceTransportPolicy;
use webrtc::peer_connection::sdp::session_description::RTCSessionDescription;
use webrtc::peer_connection::signaling_state::RTCSignalingState;
use webrtc::rtp_transceiver::rtp_codec::{
    RTCRtpCodecCapability, RTCRtpCodecParameters, RTPCodecType,
};
use webrtc::stats::StatsReportType;
use webrtc::track::track_local::TrackLocal;
use webrtc::track::track_local::TrackLocalWriter;
use webrtc::track::track_local::track_local_static_rtp::TrackLocalStaticRTP;
use webrtc::track::track_remote::TrackRemote;

use crate::rtp::{OPUS_CLOCK_RATE, Packetizer, ReceiverStats};

/// Opus RTP payload type we offer (the value browsers and webrtc's defaults use).
const OPUS_PAYLOAD_TYPE: u8 = 111;
/// Opus fmtp: 10 ms minimum packet time, in-band FEC on (RFC 7587 section 7).
const OPUS_FMTP: &str = "minptime=10;useinbandfec=1";
/// RTCP sender and receiver reports, each way: what libwebrtc uses for audio (webrtc's
/// default of 1 s is meant for video). Reports carry RTT and loss for the peers panel, which
/// can wait that long; at 1 s they alone cost a silent call ~2 kbit/s per peer.
const RTCP_REPORT_INTERVAL: Duration = Duration::from_secs(5);
/// Remote candidates kept while waiting for their description; a flood beyond is dropped.
const MAX_PENDING_CANDIDATES: usize = 64;

// ---------------------------------------------------------------------------------------------
// Plain-data configuration and events
// ---------------------------------------------------------------------------------------------

/// One ICE server as the signaling server hands it out (same shape as the wire protocol's).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IceServerSpec {
    /// `stun:` / `turn:` URLs. Only UDP TURN works in webrtc 0.17.2: `turns:` and
    /// `?transport=tcp` URLs are skipped by the ICE agent with a warning.
    pub urls: Vec<String>,
    /// TURN username (`"<unix_expiry>:<user>"` with coturn's `use-auth-secret`).
    pub username: Option<String>,
    /// TURN password (`base64(HMAC-SHA1(secret, username))` with `use-auth-secret`).
    pub credential: Option<String>,
}

/// ICE liveness timers. webrtc's defaults (5 s / +25 s / 2 s) are too slow for a voice UI.
///
/// The keepalive (RFC 7675 consent checks, sent whether or not media flows) is all a silent
/// call (push-to-talk released, muted, DTX) sends besides RTCP: per interval, both agents'
/// checks plus the controlled agent's triggered check, three requests and three responses,
/// ~700 bytes on the wire (measured with tcpdump, BENCHMARKS.md). Every 4 s that and the RTCP
/// reports stay under 1 kbit/s per peer each way (1 s cost 3.9 kbit/s). Each side then hears
/// from the other at least every ~4 s, so `disconnected` sits 2 s above that: a frozen peer is
/// noticed 6–10 s after it stops (the agent looks once per keepalive interval).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IceTimeouts {
    /// No traffic at all from the remote for this long: state `Disconnected`.
    pub disconnected: Duration,
    /// Further silence after `disconnected` before `Failed` (the agent adds the two:
    /// `webrtc-ice-0.17.2/src/agent/agent_internal.rs:459-467`).
    pub failed: Duration,
    /// Interval of STUN consent checks on the selected pair; these keep a silent (muted,
    /// push-to-talk) call alive, so it must be well below `disconnected`.
    pub keepalive: Duration,
    /// How long after ICE starts a relayed pair may be nominated when direct paths are
    /// allowed too (ignored with `relay_only`, where it is 0). The controlling agent never
    /// re-nominates, so a relay pair nominated early sticks even if a direct one succeeds a
    /// moment later; webrtc's default is 2 s.
    pub relay_acceptance_wait: Duration,
}

impl Default for IceTimeouts {
    fn default() -> Self {
        Self {
            disconnected: Duration::from_secs(6),
            failed: Duration::from_secs(7),
            keepalive: Duration::from_secs(4),
            relay_acceptance_wait: Duration::from_millis(500),
        }
    }
}

/// Everything needed to build one peer connection.
#[derive(Debug, Clone, Default)]
pub struct PeerConfig {
    /// STUN/TURN servers. Fixed for the life of the peer: webrtc 0.17.2 builds its ICE agent
    /// once and ignores later `set_configuration` calls (see NOTES.md), so new TURN
    /// credentials need a new [`Peer`].
    pub ice_servers: Vec<IceServerSpec>,
    /// Gather and use relay candidates only (privacy mode, and the way to test TURN).
    pub relay_only: bool,
    /// Test mode: gather on 127.0.0.1 only (loopback included, every other address filtered
    /// out), so tests never touch a real interface.
    pub loopback: bool,
    /// ICE liveness timers.
    pub timeouts: IceTimeouts,
}

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

/// Connection state of a peer, from webrtc's peer-connection state (ICE and DTLS combined).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PeerState {
    Connecting,
    Connected,
    /// No traffic for [`IceTimeouts::disconnected`]; may come back to `Connected` by itself.
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

/// What a [`Peer`] reports. Sent on the channels given to [`Peer::new`] ([`PeerEvents`]),
/// tagged with its key.
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
    /// The remote's audio track ended (its reader stopped).
    RemoteAudioEnded,
}

/// Statistics of one peer, from webrtc's stats report plus the adapter's own receive counters.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PeerStats {
    /// Inbound audio, counted by the adapter from the packets it read.
    pub packets_received: u64,
    pub bytes_received: u64,
    /// Outbound audio as the RTP sender counted it (payload bytes).
    pub packets_sent: u64,
    pub bytes_sent: u64,
    /// Inbound loss (RFC 3550 expected minus received).
    pub packets_lost: i64,
    /// Inbound interarrival jitter in milliseconds, RFC 3550 as written over every packet read
    /// ([`ReceiverStats`]): the one jitter figure the peer report shows.
    pub jitter_ms: f64,
    /// Loss of our outbound audio as the remote reported it in RTCP receiver reports.
    pub remote_packets_lost: Option<i64>,
    /// Round-trip time from RTCP SR/RR (needs both sides to send audio and to read RTCP);
    /// `None` until the first measurement.
    pub rtt_ms: Option<f64>,
    /// Local candidate type of the selected pair; `None` before ICE selected one.
    pub selected_candidate_type: Option<CandidateKind>,
    /// Remote candidate type of the selected pair.
    pub remote_candidate_type: Option<CandidateKind>,
}

/// Errors of this adapter. Remote input gets its own variants so the engine can tell "the
/// other side sent garbage" (log and drop the peer) from a local failure.
#[derive(Debug, thiserror::Error)]
pub enum RtcError {
    #[error("could not create the peer connection: {0}")]
    Create(#[source] webrtc::Error),
    #[error("the remote {kind} was rejected: {source}")]
    BadRemoteDescription {
        kind: &'static str,
        #[source]
        source: webrtc::Error,
    },
    #[error("the remote ICE candidate was rejected: {0}")]
    BadRemoteCandidate(#[source] webrtc::Error),
    /// A remote offer arrived while our own offer is outstanding. The engine must pick one
    /// offerer per pair deterministically (e.g. the later joiner offers) so this cannot happen.
    #[error("offer collision: we have an offer of our own outstanding")]
    Glare,
    #[error("{step} failed: {source}")]
    Negotiation {
        step: &'static str,
        #[source]
        source: webrtc::Error,
    },
    #[error("sending audio failed: {0}")]
    SendAudio(#[source] webrtc::Error),
    #[error("the peer connection is closed")]
    Closed,
}

// ---------------------------------------------------------------------------------------------
// Local audio
// ---------------------------------------------------------------------------------------------

/// Our microphone as one Opus track, shared by every [`Peer`]: each frame is packetised once
/// and sent to every peer connection the track is bound to.
///
/// We packetise ourselves (one Opus packet per RTP packet, [`Packetizer`]) rather than let
/// webrtc's sample track do it, because its timestamps only advance with what is sent: after a
/// push-to-talk pause the receiver would see a packet "right after" the last one and mistake
/// the pause for network delay.
///
/// One owner (the engine's capture path) holds this and with it the RTP clock, a plain value:
/// [`LocalAudioTrack::write_frame`] takes `&mut self`. Peers get a [`TrackHandle`], which can
/// only bind the track, not write to it.
pub struct LocalAudioTrack {
    track: Arc<TrackLocalStaticRTP>,
    packetizer: Packetizer,
}

/// The part of [`LocalAudioTrack`] a [`Peer`] needs: the track to add to its connection.
/// Cloned into every peer's task; carries no RTP clock.
#[derive(Clone)]
pub struct TrackHandle {
    track: Arc<TrackLocalStaticRTP>,
}

impl LocalAudioTrack {
    /// A new track; `stream_id` ends up in the SDP's `msid` (use the user id).
    pub fn new(stream_id: &str) -> Self {
        let track = TrackLocalStaticRTP::new(opus_capability(), "audio".into(), stream_id.into());
        Self {
            track: Arc::new(track),
            packetizer: Packetizer::default(),
        }
    }

    /// A handle for [`Peer::new`] to bind this track to a peer connection.
    pub fn handle(&self) -> TrackHandle {
        TrackHandle {
            track: self.track.clone(),
        }
    }

    /// One frame of `duration`: send `packet` to every bound peer, or (`None`) send nothing
    /// and only let the RTP clock advance.
    ///
    /// Before the first peer connection has bound the track this sends nothing. An error
    /// names a failed binding; the packet still went to all others, so log it and go on.
    pub async fn write_frame(
        &mut self,
        packet: Option<&[u8]>,
        duration: Duration,
    ) -> Result<(), RtcError> {
        let header = self.packetizer.frame(duration, packet.is_some());
        let (Some(header), Some(payload)) = (header, packet) else {
            return Ok(());
        };
        let rtp = webrtc::rtp::packet::Packet {
            header: webrtc::rtp::header::Header {
                version: 2,
                marker: header.marker,
                payload_type: OPUS_PAYLOAD_TYPE,
                sequence_number: header.sequence_number,
                timestamp: header.timestamp,
                ..Default::default()
            },
            payload: Bytes::copy_from_slice(payload),
        };
        self.track
            .write_rtp(&rtp)
            .await
            .map(|_| ())
            .map_err(RtcError::SendAudio)
    }
}

fn opus_capability() -> RTCRtpCodecCapability {
    RTCRtpCodecCapability {
        mime_type: MIME_TYPE_OPUS.to_owned(),
        clock_rate: OPUS_CLOCK_RATE,
        // RFC 7587: the SDP always says opus/48000/2, whatever is actually encoded.
        channels: 2,
        sdp_fmtp_line: OPUS_FMTP.to_owned(),
        rtcp_feedback: vec![],
    }
}

// ---------------------------------------------------------------------------------------------
// Peer
// ---------------------------------------------------------------------------------------------

/// Sends events tagged with the engine's key for this peer.
type Emit = Arc<dyn Fn(PeerEvent) + Send + Sync>;

/// Where a [`Peer`]'s events go. The remote's audio packets ([`PeerEvent::RemoteAudio`] and
/// [`PeerEvent::RemoteAudioEnded`]) have a channel of their own, which the engine drains just
/// before it plays a frame instead of waking for each packet (each carries the time it was
/// read); everything else goes to `control`, which the engine handles as it comes.
pub struct PeerEvents<K> {
    pub control: mpsc::UnboundedSender<(K, PeerEvent)>,
    pub audio: mpsc::UnboundedSender<(K, PeerEvent)>,
}

impl<K> PeerEvents<K> {
    /// Sends `ev` tagged with `key` on its channel. The engine dropping its receivers means
    /// it is shutting down: nothing to do.
    pub fn send(&self, key: K, ev: PeerEvent) {
        let channel = match ev {
            PeerEvent::RemoteAudio { .. } | PeerEvent::RemoteAudioEnded => &self.audio,
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

#[derive(Default)]
struct RemoteIce {
    /// ufrag of the applied remote description; `None` before the first one.
    ufrag: Option<String>,
    /// Candidates waiting for a remote description (or for the next ICE generation).
    pending: Vec<CandidateInit>,
}

#[derive(Default)]
struct LocalIce {
    /// ufrag of our current local description; stamped on outgoing candidates.
    ufrag: Option<String>,
    /// While a description is being created, candidates of the new generation are held here:
    /// webrtc starts gathering inside `create_offer(ice_restart)` and inside
    /// `set_remote_description` (answerer restart), i.e. before we know the new ufrag.
    held: Option<Vec<CandidateInit>>,
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
        let must_wait = match (&remote.ufrag, &cand.username_fragment) {
            (None, _) => true,
            (Some(current), Some(theirs)) => current != theirs,
            (Some(_), None) => false,
        };
        if !must_wait {
            return self.apply_candidate(cand).await;
        }
        if remote.pending.len() >= MAX_PENDING_CANDIDATES {
            warn!("too many early remote candidates; dropping one");
            return Ok(());
        }
        trace!(ufrag = ?cand.username_fragment, "queueing remote candidate");
        remote.pending.push(cand);
        Ok(())
    }

    /// Collects statistics. Cheap enough for once a second.
    pub async fn stats(&self) -> PeerStats {
        let mut out = PeerStats::default();
        {
            // Invariant: the lock is only held for plain field updates, so it is never poisoned
            // by a panic inside it; recover the data anyway rather than panic here.
            let inbound = self.inbound.lock().unwrap_or_else(|e| e.into_inner());
            out.packets_received = inbound.packets_received();
            out.bytes_received = inbound.payload_bytes();
            out.packets_lost = inbound.packets_lost();
            out.jitter_ms = inbound.jitter_ms();
        }
        for report in self.pc.get_stats().await.reports.into_values() {
            match report {
                StatsReportType::OutboundRTP(s) if s.kind == "audio" => {
                    out.packets_sent += s.packets_sent;
                    out.bytes_sent += s.bytes_sent;
                }
                StatsReportType::RemoteInboundRTP(s) if s.kind == "audio" => {
                    // The entry exists before any receiver report arrived; only trust it after.
                    if s.packets_received > 0 || s.round_trip_time_measurements > 0 {
                        out.remote_packets_lost = Some(s.packets_lost);
                    }
                    // interceptor 0.17.2 reports this in milliseconds, not seconds as W3C does
                    // (`interceptor-0.17.2/src/stats/interceptor.rs:789-812`).
                    if s.round_trip_time.is_some() {
                        out.rtt_ms = s.round_trip_time;
                    }
                }
                _ => {}
            }
        }
        let ice = self.pc.dtls_transport();
        if let Some(pair) = ice.ice_transport().get_selected_candidate_pair().await {
            out.selected_candidate_type = candidate_kind(pair.local.typ);
            out.remote_candidate_type = candidate_kind(pair.remote.typ);
        }
        out
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
        let local: Arc<dyn TrackLocal + Send + Sync> = track.track.clone();
        let sender = self
            .pc
            .add_track(local)
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
        let ufrag = sdp_ice_ufrag(&sdp);
        self.lock_local().ufrag = ufrag;
        Ok(sdp)
    }

    /// Records the applied remote description's ufrag and applies the queued candidates of
    /// that generation; the rest are stale and dropped.
    async fn flush_pending(&self, remote: &mut RemoteIce, sdp: &str) {
        let ufrag = sdp_ice_ufrag(sdp);
        remote.ufrag = ufrag.clone();
        for cand in std::mem::take(&mut remote.pending) {
            let matches = match (&cand.username_fragment, &ufrag) {
                (Some(theirs), Some(current)) => theirs == current,
                _ => true,
            };
            if !matches {
                debug!(candidate = %cand.candidate, "dropping remote candidate of an old ICE generation");
                continue;
            }
            if let Err(err) = self.apply_candidate(cand).await {
                // One bad candidate must not spoil the others.
                warn!(%err, "queued remote candidate rejected");
            }
        }
    }

    async fn apply_candidate(&self, cand: CandidateInit) -> Result<(), RtcError> {
        let init = RTCIceCandidateInit {
            candidate: cand.candidate,
            sdp_mid: cand.sdp_mid,
            sdp_mline_index: cand.sdp_mline_index,
            username_fragment: cand.username_fragment,
        };
        self.pc
            .add_ice_candidate(init)
            .await
            .map_err(RtcError::BadRemoteCandidate)
    }

    fn lock_local(&self) -> std::sync::MutexGuard<'_, LocalIce> {
        // Invariant: only plain field updates happen under this lock (no panics inside).
        self.local.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn hold_local_candidates(&self) {
        let mut local = self.lock_local();
        if local.held.is_none() {
            local.held = Some(Vec::new());
        }
    }

    fn release_local_candidates(&self) {
        let (ufrag, held) = {
            let mut local = self.lock_local();
            (local.ufrag.clone(), local.held.take().unwrap_or_default())
        };
        for mut cand in held {
            cand.username_fragment = ufrag.clone();
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

fn on_local_candidate(emit: &Emit, local: &StdMutex<LocalIce>, cand: Option<RTCIceCandidate>) {
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
    let mut out = CandidateInit {
        candidate: init.candidate,
        sdp_mid: init.sdp_mid,
        sdp_mline_index: init.sdp_mline_index,
        username_fragment: None,
    };
    // Invariant: only plain field updates happen under this lock (no panics inside).
    let mut local = local.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(held) = local.held.as_mut() {
        held.push(out);
    } else {
        out.username_fragment = local.ufrag.clone();
        drop(local);
        emit(PeerEvent::LocalCandidate(out));
    }
}

/// Reads the remote's RTP until the track ends, forwarding packets and counting them.
async fn read_remote_audio(
    track: Arc<TrackRemote>,
    emit: Emit,
    inbound: Arc<StdMutex<ReceiverStats>>,
) {
    info!(ssrc = track.ssrc(), codec = %track.codec().capability.mime_type, "remote audio track");
    loop {
        let packet = match track.read_rtp().await {
            Ok((packet, _attributes)) => packet,
            Err(err) => {
                debug!(%err, "remote audio track ended");
                break;
            }
        };
        let now = Instant::now();
        let (seq, timestamp) = (packet.header.sequence_number, packet.header.timestamp);
        inbound.lock().unwrap_or_else(|e| e.into_inner()).on_packet(
            seq,
            timestamp,
            packet.payload.len(),
            now,
        );
        emit(PeerEvent::RemoteAudio {
            seq,
            timestamp,
            payload: packet.payload.to_vec(),
            received_at: now,
        });
    }
    emit(PeerEvent::RemoteAudioEnded);
}

async fn drain_receiver_rtcp(
    receiver: Weak<webrtc::rtp_transceiver::rtp_receiver::RTCRtpReceiver>,
) {
    loop {
        let Some(receiver) = receiver.upgrade() else {
            break;
        };
        if receiver.read_rtcp().await.is_err() {
            break;
        }
    }
    trace!("receiver RTCP reader ended");
}

/// Builds a peer connection with our media engine, interceptors and setting engine.
async fn build_peer_connection(config: &PeerConfig) -> Result<RTCPeerConnection, RtcError> {
    let mut media = MediaEngine::default();
    media
        .register_codec(
            RTCRtpCodecParameters {
                capability: opus_capability(),
                payload_type: OPUS_PAYLOAD_TYPE,
                ..Default::default()
            },
            RTPCodecType::Audio,
        )
        .map_err(RtcError::Create)?;
    // webrtc's default set minus NACK (its generator and responder only serve video) and
    // minus transport-wide congestion control (TWCC): its receiver woke every 100 ms per peer
    // to build feedback that no sender here uses (webrtc-rs adds the sequence numbers only
    // with its TWCC sender, for bandwidth estimation of video). Audio's report interval.
    let mut registry = Registry::new();
    registry.add(Box::new(
        ReceiverReport::builder().with_interval(RTCP_REPORT_INTERVAL),
    ));
    registry.add(Box::new(
        SenderReport::builder().with_interval(RTCP_REPORT_INTERVAL),
    ));

    let api = APIBuilder::new()
        .with_media_engine(media)
        .with_interceptor_registry(registry)
        .with_setting_engine(setting_engine(config))
        .build();

    let rtc_config = RTCConfiguration {
        ice_servers: config
            .ice_servers
            .iter()
            .map(|s| RTCIceServer {
                urls: s.urls.clone(),
                username: s.username.clone().unwrap_or_default(),
                credential: s.credential.clone().unwrap_or_default(),
            })
            .collect(),
        ice_transport_policy: if config.relay_only {
            RTCIceTransportPolicy::Relay
        } else {
            RTCIceTransportPolicy::All
        },
        ..Default::default()
    };
    api.new_peer_connection(rtc_config)
        .await
        .map_err(RtcError::Create)
}

fn setting_engine(config: &PeerConfig) -> SettingEngine {
    let mut s = SettingEngine::default();
    let t = config.timeouts;
    s.set_ice_timeouts(Some(t.disconnected), Some(t.failed), Some(t.keepalive));
    // Acceptance waits: a pair is only nominated once the wait for the type of both its
    // candidates has passed since the agent started (webrtc-ice agent_selector.rs:69-107).
    // Defaults are srflx 0.5 s, prflx 1 s, relay 2 s. prflx must be 0: with trickle ICE the
    // controlling side usually learns the remote through its checks (prflx) before the
    // remote's candidate arrives, and would then wait 1 s. srflx 0: the usual Internet path.
    s.set_srflx_acceptance_min_wait(Some(Duration::ZERO));
    s.set_prflx_acceptance_min_wait(Some(Duration::ZERO));
    // Relay-only has nothing better to wait for (2 s -> ~30 ms to connected on loopback).
    let relay_wait = if config.relay_only {
        Duration::ZERO
    } else {
        t.relay_acceptance_wait
    };
    s.set_relay_acceptance_min_wait(Some(relay_wait));
    // No mDNS: hosts are announced by IP (a terminal client has no browser privacy story to
    // keep, and mDNS would multicast on every interface).
    s.set_ice_multicast_dns_mode(MulticastDnsMode::Disabled);
    // IPv4 UDP only: webrtc 0.17.2 does no TCP ICE, and IPv6 doubles the checks for little.
    s.set_network_types(vec![NetworkType::Udp4]);
    if config.loopback {
        s.set_include_loopback_candidate(true);
        s.set_interface_filter(Box::new(|name: &str| name == "lo"));
        s.set_ip_filter(Box::new(|ip: IpAddr| ip.is_loopback()));
    }
    s
}

fn peer_state(s: RTCPeerConnectionState) -> Option<PeerState> {
    Some(match s {
        RTCPeerConnectionState::Connecting => PeerState::Connecting,
        RTCPeerConnectionState::Connected => PeerState::Connected,
        RTCPeerConnectionState::Disconnected => PeerState::Disconnected,
        RTCPeerConnectionState::Failed => PeerState::Failed,
        RTCPeerConnectionState::Closed => PeerState::Closed,
        RTCPeerConnectionState::New | RTCPeerConnectionState::Unspecified => return None,
    })
}

fn candidate_kind(t: RTCIceCandidateType) -> Option<CandidateKind> {
    Some(match t {
        RTCIceCandidateType::Host => CandidateKind::Host,
        RTCIceCandidateType::Srflx => CandidateKind::Srflx,
        RTCIceCandidateType::Prflx => CandidateKind::Prflx,
        RTCIceCandidateType::Relay => CandidateKind::Relay,
        RTCIceCandidateType::Unspecified => return None,
    })
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

    #[test]
    fn ufrag_is_found_at_media_level() {
        let sdp = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=ice-ufrag:AbCd\r\na=ice-pwd:x\r\n";
        assert_eq!(sdp_ice_ufrag(sdp).as_deref(), Some("AbCd"));
        assert_eq!(sdp_ice_ufrag("v=0\r\n"), None);
    }

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
        events.send("ann", PeerEvent::RemoteAudioEnded);
        assert_eq!(audio_rx.try_recv(), Ok(("ann", packet)));
        assert_eq!(
            audio_rx.try_recv(),
            Ok(("ann", PeerEvent::RemoteAudioEnded))
        );
        assert!(audio_rx.try_recv().is_err());
        assert_eq!(
            control_rx.try_recv(),
            Ok(("ann", PeerEvent::State(PeerState::Connected)))
        );
        assert!(control_rx.try_recv().is_err());
    }
}
