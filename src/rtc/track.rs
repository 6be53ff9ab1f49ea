//! Our own voice as one Opus track ([`LocalAudioTrack`]): each frame is packetised once (RTP
//! header from `crate::rtp::Packetizer`) and written to every peer connection the track is
//! bound to; peers bind it through a [`TrackHandle`].
//!
//! Must never encode audio (the engine hands in Opus packets), keep a second RTP clock, or
//! let a peer write to the track.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use webrtc::track::track_local::track_local_static_rtp::TrackLocalStaticRTP;
use webrtc::track::track_local::{TrackLocal, TrackLocalWriter};

use super::RtcError;
use super::api::{OPUS_PAYLOAD_TYPE, opus_capability};
use crate::rtp::Packetizer;

/// Our microphone as one Opus track, shared by every [`Peer`](super::Peer): each frame is
/// packetised once and sent to every peer connection the track is bound to.
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

/// The part of [`LocalAudioTrack`] a [`Peer`](super::Peer) needs: the track to add to its
/// connection. Cloned into every peer's task; carries no RTP clock.
#[derive(Clone)]
pub struct TrackHandle {
    track: Arc<TrackLocalStaticRTP>,
}

impl TrackHandle {
    /// The track, as a peer connection adds it.
    pub(super) fn local(&self) -> Arc<dyn TrackLocal + Send + Sync> {
        self.track.clone()
    }
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

    /// A handle for [`Peer::new`](super::Peer::new) to bind this track to a peer connection.
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
    ///
    /// This is the one webrtc call on the engine's frame path, and it is awaited there: its
    /// awaits are the track's binding lock (held elsewhere only while a peer binds or unbinds)
    /// and, per peer, SRTP and a UDP `send_to` (through the TURN client's socket when relayed),
    /// which complete at once unless the socket's send buffer is full. It never waits for a
    /// reply from the network, so a slow or dead peer does not hold up a frame.
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
