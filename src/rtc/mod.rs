//! WebRTC edge of the client: one [`Peer`] per remote participant, one [`LocalAudioTrack`]
//! for our own voice (encode once, send to every peer).
//!
//! This module is the only place that knows `webrtc` 0.17.2. The engine drives it with plain
//! data (SDP strings, [`CandidateInit`]) and receives plain data back as [`PeerEvent`]s on a
//! channel. webrtc's callbacks are registered here and do nothing but translate and forward;
//! no webrtc type crosses the module boundary, so a later move to another WebRTC stack only
//! touches this directory. By concern:
//!
//! - `config.rs`: [`PeerConfig`], ICE servers and timers, plain data;
//! - `api.rs`: building a peer connection (media engine, interceptors, setting engine);
//! - `peer.rs`: [`Peer`], negotiation and webrtc's callbacks;
//! - `ice.rs`: candidates of both sides, kept apart by ICE generation;
//! - `track.rs`: [`LocalAudioTrack`], our voice, packetised by `crate::rtp::Packetizer`;
//! - `inbound.rs`: reading the remote's audio track;
//! - `events.rs`, `stats.rs`, `error.rs`: what crosses the boundary ([`PeerEvent`],
//!   [`PeerStats`], [`RtcError`]).
//!
//! RTP arithmetic (sequence extension, jitter, loss, the packetizer) is not here but in
//! `crate::rtp`, which knows no webrtc.
//!
//! Must never: decode audio (the engine does), block inside a webrtc callback, or let a webrtc
//! type out of this module.

mod api;
mod config;
mod error;
mod events;
mod ice;
mod inbound;
mod peer;
mod stats;
mod track;

pub use config::{IceServerSpec, IceTimeouts, PeerConfig};
pub use error::RtcError;
pub use events::{CandidateKind, PeerEvent, PeerEvents, PeerState};
pub use ice::CandidateInit;
pub use peer::Peer;
pub use stats::PeerStats;
pub use track::{LocalAudioTrack, TrackHandle};
