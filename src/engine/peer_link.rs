//! One task per peer connection: it owns the [`rtc::Peer`], runs the engine's commands
//! against it one at a time (offer, answer, candidates, stats, close), and reports results.
//! The engine loop therefore never waits on a peer connection's signaling or statistics, and
//! webrtc's callback style stays here and in `rtc`. (The one webrtc call the engine makes
//! itself is writing each captured frame to its track, `rtc::LocalAudioTrack::write_frame`;
//! see there for why that does not wait on the network.)

use cromulent_protocol::UserId;
use tokio::sync::{mpsc, oneshot};

use super::error::{PeerFailure, Side};
use crate::rtc::{
    self, CandidateInit, Peer, PeerConfig, PeerEvent, PeerEvents, PeerStats, RtcError, TrackHandle,
};

/// Identifies one peer connection: a user and the call generation it belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeerKey {
    pub user: UserId,
    pub generation: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkCommand {
    /// Make an offer (we are the offerer); `restart` renews ICE.
    Offer {
        restart: bool,
    },
    /// The remote's offer: apply it and answer.
    RemoteOffer(String),
    RemoteAnswer(String),
    RemoteCandidate(CandidateInit),
    Close,
}

/// What the link task is asked: a command of the session's, or the engine's statistics.
#[derive(Debug)]
enum Request {
    Command(LinkCommand),
    Stats(oneshot::Sender<PeerStats>),
}

/// What the link task reports (WebRTC's own events arrive separately, as [`PeerEvent`]s).
#[derive(Debug)]
pub enum LinkResult {
    LocalOffer(String),
    LocalAnswer(String),
    /// Something failed; the call goes on (or fails, as its state will show).
    Error(LinkError),
}

/// A step of the link that failed, with webrtc's error attached.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("cannot create peer connection: {0}")]
    Create(#[source] RtcError),
    #[error("offer failed: {0}")]
    Offer(#[source] RtcError),
    #[error("{user}'s offer: {source}")]
    RemoteOffer {
        user: UserId,
        #[source]
        source: RtcError,
    },
    #[error("{user}'s answer: {source}")]
    RemoteAnswer {
        user: UserId,
        #[source]
        source: RtcError,
    },
}

impl LinkError {
    fn rtc(&self) -> &RtcError {
        match self {
            Self::Create(e) | Self::Offer(e) => e,
            Self::RemoteOffer { source, .. } | Self::RemoteAnswer { source, .. } => source,
        }
    }

    /// Which side failed, as [`rtc`] tells it.
    pub fn side(&self) -> Side {
        if self.rtc().is_remote() {
            Side::Remote
        } else {
            Side::Local
        }
    }

    /// The failure as the engine reports it to front ends.
    pub fn to_failure(&self, user: UserId) -> PeerFailure {
        PeerFailure {
            user,
            side: self.side(),
            message: self.to_string(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct LinkHandle {
    tx: mpsc::UnboundedSender<Request>,
}

impl LinkHandle {
    pub fn send(&self, cmd: LinkCommand) {
        // The task ends only after Close or when the peer could not be created (reported);
        // later commands have nothing left to act on.
        let _ = self.tx.send(Request::Command(cmd));
    }

    /// Ask for the connection's statistics; the reply is dropped if the task has ended.
    pub fn stats(&self, reply: oneshot::Sender<PeerStats>) {
        let _ = self.tx.send(Request::Stats(reply));
    }
}

/// Start a link task. WebRTC events go to `events`, command results to `results`.
pub fn spawn(
    key: PeerKey,
    config: PeerConfig,
    track: TrackHandle,
    events: PeerEvents<PeerKey>,
    results: mpsc::UnboundedSender<(PeerKey, LinkResult)>,
) -> LinkHandle {
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(run(key, config, track, rx, events, results));
    LinkHandle { tx }
}

async fn run(
    key: PeerKey,
    config: PeerConfig,
    track: TrackHandle,
    mut commands: mpsc::UnboundedReceiver<Request>,
    events: PeerEvents<PeerKey>,
    results: mpsc::UnboundedSender<(PeerKey, LinkResult)>,
) {
    let report = |r: LinkResult| {
        let _ = results.send((key.clone(), r));
    };
    let peer = match Peer::new(&config, &track, key.clone(), events.clone()).await {
        Ok(p) => p,
        Err(e) => {
            report(LinkResult::Error(LinkError::Create(e)));
            events.send(key.clone(), PeerEvent::State(rtc::PeerState::Failed));
            return;
        }
    };
    while let Some(request) = commands.recv().await {
        let cmd = match request {
            Request::Command(cmd) => cmd,
            Request::Stats(reply) => {
                let _ = reply.send(peer.stats().await);
                continue;
            }
        };
        match cmd {
            LinkCommand::Offer { restart } => match peer.create_offer(restart).await {
                Ok(sdp) => report(LinkResult::LocalOffer(sdp)),
                Err(e) => report(LinkResult::Error(LinkError::Offer(e))),
            },
            LinkCommand::RemoteOffer(sdp) => match peer.accept_offer(&sdp).await {
                Ok(answer) => report(LinkResult::LocalAnswer(answer)),
                Err(source) => report(LinkResult::Error(LinkError::RemoteOffer {
                    user: key.user.clone(),
                    source,
                })),
            },
            LinkCommand::RemoteAnswer(sdp) => {
                if let Err(source) = peer.accept_answer(&sdp).await {
                    report(LinkResult::Error(LinkError::RemoteAnswer {
                        user: key.user.clone(),
                        source,
                    }));
                }
            }
            LinkCommand::RemoteCandidate(c) => {
                if let Err(e) = peer.add_remote_candidate(c).await {
                    tracing::debug!(user = %key.user, error = %e, "remote candidate not applied");
                }
            }
            LinkCommand::Close => break,
        }
    }
    if let Err(e) = peer.close().await {
        tracing::debug!(user = %key.user, error = %e, "close failed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rejected_remote_description_is_the_remote_side_s_fault() {
        let remote = LinkError::RemoteOffer {
            user: "bob".into(),
            source: RtcError::BadRemoteDescription {
                kind: "offer",
                source: webrtc::Error::ErrConnectionClosed,
            },
        };
        let failure = remote.to_failure("bob".into());
        assert_eq!(failure.side, Side::Remote);
        assert!(
            failure
                .message
                .starts_with("bob's offer: the remote offer was rejected")
        );
        // Our own failure on their offer (glare) and our own offer failing are local.
        let glare = LinkError::RemoteOffer {
            user: "bob".into(),
            source: RtcError::Glare,
        };
        assert_eq!(glare.side(), Side::Local);
        assert_eq!(LinkError::Offer(RtcError::Closed).side(), Side::Local);
        assert_eq!(
            LinkError::Offer(RtcError::Closed).to_string(),
            "offer failed: the peer connection is closed"
        );
    }
}
