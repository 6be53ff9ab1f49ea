//! The remote's audio stream: a task per remote track reads its RTP, counts every packet in
//! the peer's [`ReceiverStats`] and forwards it as [`PeerEvent::RemoteAudio`] (stamped with the
//! time it was read); a second task drains the receiver's RTCP so that sender reports reach
//! webrtc's interceptors.
//!
//! Must never decode, reorder or drop packets (the engine's jitter buffer does), or keep a
//! strong reference to the receiver (that would keep a closed connection alive).

use std::sync::{Arc, Mutex as StdMutex, Weak};
use std::time::Instant;

use tracing::{debug, info, trace};
use webrtc::track::track_remote::TrackRemote;

use super::PeerEvent;
use super::events::Emit;
use crate::rtp::ReceiverStats;

/// Reads the remote's RTP until the track ends, forwarding packets and counting them.
pub(super) async fn read_remote_audio(
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
}

pub(super) async fn drain_receiver_rtcp(
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
