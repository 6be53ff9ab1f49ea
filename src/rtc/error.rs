//! The adapter's errors, one enum. Remote input (a bad description or candidate) has variants
//! of its own, so the engine can tell "the other side sent garbage" from a local failure.
//!
//! Must never turn a webrtc error into a string: the source stays attached.

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

impl RtcError {
    /// Whether the other side caused this (sent a description or candidate we rejected).
    pub fn is_remote(&self) -> bool {
        matches!(
            self,
            Self::BadRemoteDescription { .. } | Self::BadRemoteCandidate(_)
        )
    }
}
