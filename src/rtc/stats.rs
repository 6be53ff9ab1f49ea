//! [`PeerStats`]: what one peer's figures mean and how they are gathered, from webrtc's stats
//! report (outbound counters, RTT and remote loss from RTCP) and the adapter's own receive
//! counters ([`ReceiverStats`], RFC 3550 as written, because webrtc 0.17.2 reports neither
//! loss nor jitter for received streams: `InboundRTPStats` has no such fields,
//! `webrtc-0.17.2/src/stats/mod.rs:556-560`).
//!
//! Must never compute RTP statistics itself (that is `crate::rtp`) or block the caller beyond
//! webrtc's own stats call.

use std::sync::Mutex as StdMutex;

use serde::Serialize;
use webrtc::peer_connection::RTCPeerConnection;
use webrtc::stats::StatsReportType;

use super::CandidateKind;
use super::events::candidate_kind;
use crate::rtp::ReceiverStats;

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
}

/// Collects the statistics of `pc`, our receive counters `inbound` included. Cheap enough for
/// once a second.
pub(super) async fn collect(
    pc: &RTCPeerConnection,
    inbound: &StdMutex<ReceiverStats>,
) -> PeerStats {
    let mut out = PeerStats::default();
    {
        // Invariant: the lock is only held for plain field updates, so it is never poisoned
        // by a panic inside it; recover the data anyway rather than panic here.
        let inbound = inbound.lock().unwrap_or_else(|e| e.into_inner());
        out.packets_received = inbound.packets_received();
        out.bytes_received = inbound.payload_bytes();
        out.packets_lost = inbound.packets_lost();
        out.jitter_ms = inbound.jitter_ms();
    }
    for report in pc.get_stats().await.reports.into_values() {
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
    let ice = pc.dtls_transport();
    if let Some(pair) = ice.ice_transport().get_selected_candidate_pair().await {
        out.selected_candidate_type = candidate_kind(pair.local.typ);
    }
    out
}
