//! ICE servers for a joining user (VOIC-02): coturn REST-API credentials, Metered's HTTP API,
//! or STUN only. Whatever goes wrong with a provider, the answer falls back to STUN only and
//! the join still succeeds.
//!
//! (Being written: see the interface below.)

use cromulent_protocol::IceConfig;

use crate::config::TurnConfig;

/// Hands out ICE servers. Cheap to clone-share behind an `Arc`.
pub struct IceProvider {
    config: TurnConfig,
}

impl IceProvider {
    pub fn new(config: TurnConfig) -> Self {
        Self { config }
    }

    /// ICE servers for `user`, never failing: provider errors fall back to STUN only.
    pub async fn ice_for(&self, _user: &str) -> IceConfig {
        IceConfig {
            servers: self
                .config
                .stun_urls
                .iter()
                .map(|u| cromulent_protocol::IceServer {
                    urls: vec![u.clone()],
                    username: None,
                    credential: None,
                })
                .collect(),
            expires_at: None,
        }
    }
}
