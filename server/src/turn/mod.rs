//! ICE servers for a joining user (VOIC-02): coturn REST-API credentials ([`coturn`]),
//! Metered's HTTP API ([`metered`]), or STUN only. The configured `stun_urls` come last in
//! every answer, one ICE server each.
//!
//! Whatever goes wrong with a provider (bad config, HTTP error, timeout, bad JSON, nothing
//! usable), the answer falls back to STUN only with a warning: a join never fails here, and
//! this module never panics on what a provider sends.
//!
//! `expires_at` is the coturn credentials' expiry (clients refresh before it). Metered's answer
//! says nothing about expiry — its credentials live as long as the dashboard says — so it is
//! `None` there rather than a guess.

pub mod coturn;
pub mod metered;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cromulent_protocol::{IceConfig, IceServer};

use crate::config::{TurnConfig, TurnProvider};

/// Why the configured provider gave no TURN servers for one join.
#[derive(Debug, thiserror::Error)]
pub enum TurnError {
    #[error("coturn: {0}")]
    Coturn(#[from] coturn::CoturnError),
    #[error("metered: {0}")]
    Metered(#[from] metered::MeteredError),
    #[error("metered: {0}")]
    MeteredUnusable(String),
    #[error("the system clock is before 1970")]
    Clock,
}

/// Hands out ICE servers. Cheap to share behind an `Arc`; `ice_for` takes `&self`.
pub struct IceProvider {
    config: TurnConfig,
    backend: Backend,
}

/// The provider, set up once.
enum Backend {
    StunOnly,
    Coturn,
    Metered(metered::MeteredClient),
    /// Metered could not be set up (bad URL, no HTTP client): why, repeated on every join.
    MeteredUnusable(String),
}

/// TURN servers from a provider, and when their credentials stop working.
#[derive(Default)]
struct Relay {
    servers: Vec<IceServer>,
    expires_at: Option<u64>,
}

impl IceProvider {
    pub fn new(config: TurnConfig) -> Self {
        let backend = match config.provider {
            TurnProvider::None => Backend::StunOnly,
            TurnProvider::Coturn => Backend::Coturn,
            TurnProvider::Metered => metered_backend(&config),
        };
        Self { config, backend }
    }

    /// ICE servers for `user`, never failing: provider errors fall back to STUN only.
    pub async fn ice_for(&self, user: &str) -> IceConfig {
        let relay = self.relay_for(user).await.unwrap_or_else(|error| {
            tracing::warn!(
                provider = ?self.config.provider,
                user,
                %error,
                "TURN provider failed; handing out STUN only"
            );
            Relay::default()
        });
        let mut servers = relay.servers;
        servers.extend(stun_servers(&self.config.stun_urls));
        IceConfig {
            servers,
            expires_at: relay.expires_at,
        }
    }

    async fn relay_for(&self, user: &str) -> Result<Relay, TurnError> {
        match &self.backend {
            Backend::StunOnly => Ok(Relay::default()),
            Backend::Coturn => {
                let (server, creds) = coturn::ice_server(&self.config, user, unix_now()?)?;
                Ok(Relay {
                    servers: vec![server],
                    expires_at: Some(creds.expires_at),
                })
            }
            Backend::Metered(client) => Ok(Relay {
                servers: client.fetch().await?,
                expires_at: None,
            }),
            Backend::MeteredUnusable(why) => Err(TurnError::MeteredUnusable(why.clone())),
        }
    }
}

fn metered_backend(config: &TurnConfig) -> Backend {
    let timeout = Duration::from_millis(config.api_timeout_ms);
    match metered::MeteredClient::new(&config.api_url, &config.api_key, timeout) {
        Ok(client) => Backend::Metered(client),
        Err(error) => {
            tracing::warn!(%error, "Metered provider unusable; every join gets STUN only");
            Backend::MeteredUnusable(error.to_string())
        }
    }
}

/// One ICE server per configured STUN URL (blank entries skipped).
fn stun_servers(urls: &[String]) -> impl Iterator<Item = IceServer> + '_ {
    urls.iter()
        .map(|url| url.trim())
        .filter(|url| !url.is_empty())
        .map(|url| IceServer {
            urls: vec![url.to_owned()],
            username: None,
            credential: None,
        })
}

fn unix_now() -> Result<u64, TurnError> {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .map_err(|_| TurnError::Clock)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stun(url: &str) -> IceServer {
        IceServer {
            urls: vec![url.to_owned()],
            username: None,
            credential: None,
        }
    }

    fn config(provider: TurnProvider) -> TurnConfig {
        TurnConfig {
            provider,
            stun_urls: vec![
                "stun:s1.example:3478".into(),
                " ".into(),
                "stun:s2.example".into(),
            ],
            ..TurnConfig::default()
        }
    }

    #[tokio::test]
    async fn none_is_stun_only_one_server_per_url() {
        let ice = IceProvider::new(config(TurnProvider::None))
            .ice_for("alice")
            .await;
        assert_eq!(
            ice.servers,
            [stun("stun:s1.example:3478"), stun("stun:s2.example")]
        );
        assert_eq!(ice.expires_at, None);
    }

    #[tokio::test]
    async fn none_with_no_stun_urls_is_empty() {
        let ice = IceProvider::new(TurnConfig::default()).ice_for("a").await;
        assert_eq!(ice, IceConfig::default());
    }

    #[tokio::test]
    async fn coturn_comes_first_then_stun_with_expiry() {
        let mut c = config(TurnProvider::Coturn);
        c.secret = "s3cret".into();
        c.urls = vec!["turn:t.example:3478".into()];
        c.ttl_secs = 600;
        let before = unix_now().unwrap();
        let ice = IceProvider::new(c).ice_for("alice").await;
        let after = unix_now().unwrap();

        let expires_at = ice.expires_at.expect("coturn credentials expire");
        assert!((before + 600..=after + 600).contains(&expires_at));
        let turn = &ice.servers[0];
        assert_eq!(turn.urls, ["turn:t.example:3478"]);
        let expected = coturn::credentials("s3cret", "alice", 600, expires_at - 600);
        assert_eq!(turn.username.as_deref(), Some(expected.username.as_str()));
        assert_eq!(
            turn.credential.as_deref(),
            Some(expected.credential.as_str())
        );
        assert_eq!(
            ice.servers[1..],
            [stun("stun:s1.example:3478"), stun("stun:s2.example")]
        );
    }

    #[tokio::test]
    async fn misconfigured_coturn_falls_back_to_stun() {
        let ice = IceProvider::new(config(TurnProvider::Coturn))
            .ice_for("alice")
            .await;
        assert_eq!(
            ice,
            IceConfig {
                servers: vec![stun("stun:s1.example:3478"), stun("stun:s2.example")],
                expires_at: None,
            }
        );
    }

    #[tokio::test]
    async fn unusable_metered_url_falls_back_to_stun() {
        let mut c = config(TurnProvider::Metered);
        c.api_url = "ftp://metered.example/".into();
        let ice = IceProvider::new(c).ice_for("alice").await;
        assert_eq!(
            ice.servers,
            [stun("stun:s1.example:3478"), stun("stun:s2.example")]
        );
        assert_eq!(ice.expires_at, None);
    }
}
