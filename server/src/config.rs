//! Server settings: TOML with a default for every key (the embedded default is a working
//! local server), then environment overrides for secrets and TURN (the names Cromulent's
//! runtime config used). Every key is shown, with a comment, in `config.example.toml`.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use cromulent_protocol::ChannelId;
use serde::Deserialize;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("invalid config file {path}: {source}")]
    Parse {
        path: String,
        source: Box<toml::de::Error>,
    },
    #[error("invalid environment variable {name}={value:?}: {why}")]
    Env {
        name: &'static str,
        value: String,
        why: String,
    },
    #[error("invalid configuration: {0}")]
    Invalid(String),
    #[error("invalid [cluster] settings: {0}")]
    Cluster(#[from] ClusterConfigError),
}

/// What can be wrong with `[cluster]`, each with a reason an operator can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClusterConfigError {
    #[error("redis_url {url:?} is not a Redis URL (redis://[:password@]host[:port][/db])")]
    RedisUrl { url: String },
    #[error("instance_id {id:?} must be 1 to 64 characters of letters, digits, '-', '_' or '.'")]
    InstanceId { id: String },
    #[error("key_prefix {prefix:?} must be 1 to 64 characters of letters, digits, '-', '_' or '.'")]
    KeyPrefix { prefix: String },
    #[error("lease_ms = {lease_ms} is outside 1000..=600000")]
    Lease { lease_ms: u64 },
    #[error(
        "renew_ms = {renew_ms} must be positive and at most a third of lease_ms = {lease_ms} \
         (a lease must survive a missed renewal)"
    )]
    Renew { renew_ms: u64, lease_ms: u64 },
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub server: ServerConfig,
    pub auth: AuthConfig,
    pub heartbeat: HeartbeatConfig,
    pub session: SessionConfig,
    pub limits: LimitsConfig,
    pub turn: TurnConfig,
    pub chat: ChatConfig,
    /// Absent (the default): one instance with its state in memory, and no Redis at all.
    pub cluster: Option<ClusterConfig>,
    pub channels: Vec<ChannelConfig>,
}

/// `[cluster]`: many instances behind one address share seats, presence and signal routing
/// through one Redis ([`crate::cluster`]). Its presence alone turns cluster mode on.
#[derive(Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterConfig {
    /// Where the shared state lives; may hold a password, so env `CROMULENT_REDIS_URL`
    /// overrides it (and turns cluster mode on).
    pub redis_url: String,
    /// This instance's name in logs and in Redis, unique in the cluster. Each start adds a
    /// random suffix, so a restarted instance never inherits the seats of its past life (those
    /// expire with its old lease). Env `CROMULENT_INSTANCE_ID`.
    pub instance_id: String,
    /// Every key and pub/sub channel starts with this, so clusters can share one Redis.
    pub key_prefix: String,
    /// An instance's seats are leases of this length, renewed every [`Self::renew_ms`]; when an
    /// instance stops renewing (killed, cut off), a survivor releases its seats and broadcasts
    /// the `leave`s at most `lease_ms + renew_ms` later.
    pub lease_ms: u64,
    /// How often an instance renews its lease and looks for expired ones.
    pub renew_ms: u64,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self {
            redis_url: "redis://127.0.0.1:6379/".into(),
            instance_id: "cromulent".into(),
            key_prefix: "cromulent".into(),
            lease_ms: 15_000,
            renew_ms: 5_000,
        }
    }
}

impl std::fmt::Debug for ClusterConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may carry a password: show where it points, not the credentials.
        let url = match self.redis_url.rsplit_once('@') {
            Some((_, host)) => format!("<credentials>@{host}"),
            None => self.redis_url.clone(),
        };
        f.debug_struct("ClusterConfig")
            .field("redis_url", &url)
            .field("instance_id", &self.instance_id)
            .field("key_prefix", &self.key_prefix)
            .field("lease_ms", &self.lease_ms)
            .field("renew_ms", &self.renew_ms)
            .finish()
    }
}

impl ClusterConfig {
    /// The checks serde cannot make.
    pub fn validate(&self) -> Result<(), ClusterConfigError> {
        let well_named = |s: &str| {
            (1..=64).contains(&s.len())
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        };
        if redis::Client::open(self.redis_url.as_str()).is_err() {
            return Err(ClusterConfigError::RedisUrl {
                url: self.redis_url.clone(),
            });
        }
        if !well_named(&self.instance_id) {
            return Err(ClusterConfigError::InstanceId {
                id: self.instance_id.clone(),
            });
        }
        if !well_named(&self.key_prefix) {
            return Err(ClusterConfigError::KeyPrefix {
                prefix: self.key_prefix.clone(),
            });
        }
        if !(1_000..=600_000).contains(&self.lease_ms) {
            return Err(ClusterConfigError::Lease {
                lease_ms: self.lease_ms,
            });
        }
        if self.renew_ms == 0 || self.renew_ms * 3 > self.lease_ms {
            return Err(ClusterConfigError::Renew {
                renew_ms: self.renew_ms,
                lease_ms: self.lease_ms,
            });
        }
        Ok(())
    }

    pub fn lease(&self) -> Duration {
        Duration::from_millis(self.lease_ms)
    }

    pub fn renew_every(&self) -> Duration {
        Duration::from_millis(self.renew_ms)
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ChatConfig {
    /// The history's SQLite file, or `:memory:` (kept for the process's life only). Unset:
    /// `chat.sqlite3` beside the config file, else in `$XDG_DATA_HOME/cromulent/` (or
    /// `~/.local/share/cromulent/`); resolved by [`crate::cli::ServerArgs::load`]. A server
    /// built from `Config::default()` in code (tests, the demo) keeps it in memory. Env
    /// `CROMULENT_CHAT_DB`.
    pub database: Option<String>,
    /// Longest message, in characters.
    pub max_chars: usize,
    /// Keep the newest this many messages per channel (0: no count limit).
    pub retention_messages: u64,
    /// Delete messages older than this many days (0: no age limit).
    pub retention_days: u64,
    /// `say`s per connection: this many a second sustained, bursts of [`Self::burst`]. Far
    /// below `limits.messages_per_second`: a line of chat goes to everyone in the channel, so
    /// one sender at the signaling rate would multiply into the whole server's traffic.
    pub messages_per_second: u32,
    pub burst: u32,
}

impl Default for ChatConfig {
    fn default() -> Self {
        Self {
            database: None,
            max_chars: 2_000,
            retention_messages: 100_000,
            retention_days: 0,
            messages_per_second: 2,
            burst: 10,
        }
    }
}

impl ChatConfig {
    /// Where the history lives, once [`crate::cli::ServerArgs::load`] has resolved the default.
    pub fn location(&self) -> crate::chat_store::Location {
        match self.database.as_deref() {
            None | Some(":memory:") => crate::chat_store::Location::Memory,
            Some(path) => crate::chat_store::Location::File(path.into()),
        }
    }

    pub fn retention(&self) -> crate::chat_store::Retention {
        crate::chat_store::Retention {
            per_channel: (self.retention_messages > 0).then_some(self.retention_messages),
            max_age: (self.retention_days > 0)
                .then(|| Duration::from_secs(self.retention_days.saturating_mul(86_400))),
        }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Address to listen on; `--listen` overrides.
    pub listen: SocketAddr,
    /// Authenticated connections (past `hello`) beyond this are refused with `server_full`.
    pub max_connections: usize,
    /// Authenticated connections from one source address beyond this are refused with
    /// `server_full`.
    pub max_connections_per_address: usize,
    /// Connections still before a valid `hello`, in total: beyond this new TCP connections
    /// are closed at once. They never count against `max_connections`.
    pub max_unauthenticated: usize,
    /// Connections before `hello` from one source address.
    pub max_unauthenticated_per_address: usize,
    /// Web pages allowed to connect besides the server's own (`https://host[:port]`, as a
    /// browser sends `Origin`); see [`crate::origin`]. Clients that send no `Origin` (not a
    /// browser) are always allowed.
    pub allowed_origins: Vec<String>,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum AuthMode {
    /// The client picks its display name, which is its identity. Local use and demos.
    Open,
    /// The client presents a token signed with `auth.secret`.
    Token,
}

#[derive(Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    pub mode: AuthMode,
    /// HMAC key for user tokens; env `CROMULENT_AUTH_SECRET` overrides.
    pub secret: String,
}

impl std::fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthConfig")
            .field("mode", &self.mode)
            .field("secret", &redact(&self.secret))
            .finish()
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct HeartbeatConfig {
    /// The server pings every connection this often.
    pub ping_interval_ms: u64,
    /// A connection that sends nothing (not even a pong) for this long is dropped and its
    /// presence removed.
    pub timeout_ms: u64,
    /// A new connection must send `hello` within this time.
    pub hello_timeout_ms: u64,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct SessionConfig {
    /// After a connection ends, its resume token is honoured this long.
    pub resume_grace_ms: u64,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// Text frames larger than this get `message_too_large` and are dropped.
    pub max_message_bytes: usize,
    /// Sustained messages per second per connection (token bucket refill rate).
    pub messages_per_second: u32,
    /// Burst size of the token bucket.
    pub burst: u32,
    /// Bytes queued towards one client before it is dropped as a slow consumer.
    pub outbound_queue_bytes: usize,
    /// A write to a client that has not completed after this long drops the connection.
    pub write_timeout_ms: u64,
    /// Longest display name, in characters.
    pub max_name_chars: usize,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum TurnProvider {
    /// STUN only (`turn.stun_urls`), no relay.
    None,
    /// Time-limited credentials for coturn's `use-auth-secret` (REST API) scheme.
    Coturn,
    /// Credentials fetched from Metered's HTTP API.
    Metered,
}

#[derive(Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct TurnConfig {
    /// env `TURN_PROVIDER`: `none`, `coturn` or `metered`.
    pub provider: TurnProvider,
    /// coturn's `static-auth-secret`; env `TURN_SECRET`.
    pub secret: String,
    /// `turn:` URLs handed to clients (coturn); env `TURN_URLS`, comma-separated.
    pub urls: Vec<String>,
    /// Lifetime of coturn credentials in seconds; env `TURN_TTL`.
    pub ttl_secs: u64,
    /// Metered API key; env `TURN_API_KEY`.
    pub api_key: String,
    /// Metered credentials endpoint; env `TURN_API_URL`.
    pub api_url: String,
    /// Time limit for the Metered request.
    pub api_timeout_ms: u64,
    /// STUN URLs always handed out (and all that is handed out when TURN fails);
    /// env `STUN_URLS`, comma-separated. Empty by default: no public host is assumed.
    pub stun_urls: Vec<String>,
}

impl std::fmt::Debug for TurnConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TurnConfig")
            .field("provider", &self.provider)
            .field("secret", &redact(&self.secret))
            .field("urls", &self.urls)
            .field("ttl_secs", &self.ttl_secs)
            .field("api_key", &redact(&self.api_key))
            .field("api_url", &self.api_url)
            .field("api_timeout_ms", &self.api_timeout_ms)
            .field("stun_urls", &self.stun_urls)
            .finish()
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ChannelConfig {
    pub id: ChannelId,
    pub name: String,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 4000)),
            max_connections: 100_000,
            max_connections_per_address: 1_024,
            max_unauthenticated: 4_096,
            max_unauthenticated_per_address: 128,
            allowed_origins: Vec::new(),
        }
    }
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            mode: AuthMode::Open,
            secret: String::new(),
        }
    }
}

impl Default for HeartbeatConfig {
    fn default() -> Self {
        Self {
            ping_interval_ms: 5_000,
            timeout_ms: 20_000,
            hello_timeout_ms: 10_000,
        }
    }
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            resume_grace_ms: 30_000,
        }
    }
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_message_bytes: 64 * 1024,
            messages_per_second: 50,
            burst: 100,
            outbound_queue_bytes: 1024 * 1024,
            write_timeout_ms: 10_000,
            max_name_chars: 32,
        }
    }
}

impl Default for TurnConfig {
    fn default() -> Self {
        Self {
            provider: TurnProvider::None,
            secret: String::new(),
            urls: Vec::new(),
            ttl_secs: 3600,
            api_key: String::new(),
            api_url: String::new(),
            api_timeout_ms: 3_000,
            stun_urls: Vec::new(),
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            server: ServerConfig::default(),
            auth: AuthConfig::default(),
            heartbeat: HeartbeatConfig::default(),
            session: SessionConfig::default(),
            limits: LimitsConfig::default(),
            turn: TurnConfig::default(),
            chat: ChatConfig::default(),
            cluster: None,
            channels: vec![
                ChannelConfig {
                    id: 1,
                    name: "General".into(),
                },
                ChannelConfig {
                    id: 2,
                    name: "Gaming".into(),
                },
                ChannelConfig {
                    id: 3,
                    name: "Echo".into(),
                },
            ],
        }
    }
}

impl Config {
    /// Parse a TOML document (missing keys take their defaults).
    pub fn from_toml(text: &str, origin: &str) -> Result<Self, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: origin.to_owned(),
            source: Box::new(e),
        })
    }

    /// Read a TOML file.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
            path: path.display().to_string(),
            source: e,
        })?;
        Self::from_toml(&text, &path.display().to_string())
    }

    /// Apply environment overrides, read through `get` so tests need not touch the process
    /// environment.
    pub fn apply_env(&mut self, get: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        if let Some(v) = get("CROMULENT_AUTH_SECRET") {
            self.auth.secret = v;
        }
        if let Some(v) = get("CROMULENT_CHAT_DB") {
            if v.trim().is_empty() {
                return Err(ConfigError::Env {
                    name: "CROMULENT_CHAT_DB",
                    value: v,
                    why: "expected a file path or :memory:".into(),
                });
            }
            self.chat.database = Some(v);
        }
        if let Some(v) = get("CROMULENT_REDIS_URL") {
            self.cluster
                .get_or_insert_with(ClusterConfig::default)
                .redis_url = v;
        }
        if let Some(v) = get("CROMULENT_INSTANCE_ID") {
            self.cluster
                .get_or_insert_with(ClusterConfig::default)
                .instance_id = v;
        }
        if let Some(v) = get("TURN_PROVIDER") {
            self.turn.provider = match v.trim().to_ascii_lowercase().as_str() {
                "" | "none" | "stun" => TurnProvider::None,
                "coturn" => TurnProvider::Coturn,
                "metered" => TurnProvider::Metered,
                _ => {
                    return Err(ConfigError::Env {
                        name: "TURN_PROVIDER",
                        value: v,
                        why: "expected none, coturn or metered".into(),
                    });
                }
            };
        }
        if let Some(v) = get("TURN_SECRET") {
            self.turn.secret = v;
        }
        if let Some(v) = get("TURN_URLS") {
            self.turn.urls = split_list(&v);
        }
        if let Some(v) = get("TURN_TTL") {
            self.turn.ttl_secs = v.trim().parse().map_err(|_| ConfigError::Env {
                name: "TURN_TTL",
                value: v.clone(),
                why: "expected a whole number of seconds".into(),
            })?;
        }
        if let Some(v) = get("TURN_API_KEY") {
            self.turn.api_key = v;
        }
        if let Some(v) = get("TURN_API_URL") {
            self.turn.api_url = v;
        }
        if let Some(v) = get("STUN_URLS") {
            self.turn.stun_urls = split_list(&v);
        }
        Ok(())
    }

    /// Check what serde cannot: consistent values, unique channels, secrets where needed.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |m: &str| Err(ConfigError::Invalid(m.to_owned()));
        if self.auth.mode == AuthMode::Token && self.auth.secret.len() < 16 {
            return bad(
                "auth.mode = \"token\" needs auth.secret (or CROMULENT_AUTH_SECRET) of at least 16 bytes",
            );
        }
        if self.heartbeat.ping_interval_ms == 0 || self.heartbeat.timeout_ms == 0 {
            return bad("heartbeat intervals must be positive");
        }
        if self.heartbeat.ping_interval_ms >= self.heartbeat.timeout_ms {
            return bad("heartbeat.ping_interval_ms must be below heartbeat.timeout_ms");
        }
        if self.limits.messages_per_second == 0 || self.limits.burst == 0 {
            return bad("limits.messages_per_second and limits.burst must be positive");
        }
        if self.limits.max_message_bytes < 1024 {
            return bad("limits.max_message_bytes must be at least 1024");
        }
        if self.limits.outbound_queue_bytes < self.limits.max_message_bytes {
            return bad("limits.outbound_queue_bytes must be at least limits.max_message_bytes");
        }
        if self.chat.messages_per_second == 0 || self.chat.burst == 0 {
            return bad("chat.messages_per_second and chat.burst must be positive");
        }
        if self.chat.max_chars == 0 || self.chat.max_chars > 100_000 {
            return bad("chat.max_chars must be between 1 and 100000");
        }
        if self.limits.write_timeout_ms == 0 || self.limits.max_name_chars == 0 {
            return bad("limits.write_timeout_ms and limits.max_name_chars must be positive");
        }
        let s = &self.server;
        if [
            s.max_connections,
            s.max_connections_per_address,
            s.max_unauthenticated,
            s.max_unauthenticated_per_address,
        ]
        .contains(&0)
        {
            return bad("server connection limits must be positive");
        }
        if let Some(o) = s
            .allowed_origins
            .iter()
            .find(|o| !crate::origin::well_formed(o))
        {
            return Err(ConfigError::Invalid(format!(
                "server.allowed_origins: {o:?} is not an origin: write scheme://host[:port], \
                 e.g. \"https://chat.example.org\", with no path"
            )));
        }
        if let Some(cluster) = &self.cluster {
            cluster.validate()?;
        }
        if self.channels.is_empty() {
            return bad("at least one [[channels]] entry is needed");
        }
        let mut ids: Vec<_> = self.channels.iter().map(|c| c.id).collect();
        ids.sort_unstable();
        ids.dedup();
        if ids.len() != self.channels.len() {
            return bad("channel ids must be unique");
        }
        if self.channels.iter().any(|c| c.name.trim().is_empty()) {
            return bad("channel names must not be empty");
        }
        match self.turn.provider {
            TurnProvider::Coturn if self.turn.secret.is_empty() || self.turn.urls.is_empty() => {
                bad(
                    "turn.provider = \"coturn\" needs turn.secret (TURN_SECRET) and turn.urls (TURN_URLS)",
                )
            }
            TurnProvider::Metered if self.turn.api_url.is_empty() => {
                bad("turn.provider = \"metered\" needs turn.api_url (TURN_API_URL)")
            }
            _ if self.turn.ttl_secs == 0 => bad("turn.ttl_secs must be positive"),
            _ => Ok(()),
        }
    }

    pub fn ping_interval(&self) -> Duration {
        Duration::from_millis(self.heartbeat.ping_interval_ms)
    }

    pub fn heartbeat_timeout(&self) -> Duration {
        Duration::from_millis(self.heartbeat.timeout_ms)
    }

    pub fn write_timeout(&self) -> Duration {
        Duration::from_millis(self.limits.write_timeout_ms)
    }

    /// The connection budgets of [`crate::budget`].
    pub fn budget_limits(&self) -> crate::budget::Limits {
        crate::budget::Limits {
            authenticated: self.server.max_connections,
            authenticated_per_address: self.server.max_connections_per_address,
            unauthenticated: self.server.max_unauthenticated,
            unauthenticated_per_address: self.server.max_unauthenticated_per_address,
        }
    }

    pub fn hello_timeout(&self) -> Duration {
        Duration::from_millis(self.heartbeat.hello_timeout_ms)
    }

    pub fn resume_grace(&self) -> Duration {
        Duration::from_millis(self.session.resume_grace_ms)
    }
}

fn split_list(v: &str) -> Vec<String> {
    v.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

fn redact(secret: &str) -> &'static str {
    if secret.is_empty() {
        "<empty>"
    } else {
        "<redacted>"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_default_is_valid_and_local() {
        let c = Config::default();
        c.validate().unwrap();
        assert_eq!(c.server.listen.to_string(), "127.0.0.1:4000");
        assert_eq!(c.auth.mode, AuthMode::Open);
        let names: Vec<_> = c.channels.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["General", "Gaming", "Echo"]);
        assert!(
            c.turn.stun_urls.is_empty(),
            "no public STUN host by default"
        );
    }

    #[test]
    fn example_config_parses_to_the_defaults_it_documents() {
        let text = include_str!("../../config.example.toml");
        let c = Config::from_toml(text, "config.example.toml").unwrap();
        // The example shows every key at its default value, except where it says otherwise.
        assert_eq!(c.server, Config::default().server);
        assert_eq!(c.heartbeat, Config::default().heartbeat);
        assert_eq!(c.limits, Config::default().limits);
        assert_eq!(c.chat, Config::default().chat);
        assert_eq!(c.channels, Config::default().channels);
    }

    #[test]
    fn partial_file_keeps_defaults_and_unknown_keys_are_refused() {
        let c = Config::from_toml(
            "[heartbeat]\ntimeout_ms = 900\nping_interval_ms = 100\n",
            "t",
        )
        .unwrap();
        assert_eq!(c.heartbeat.timeout_ms, 900);
        assert_eq!(c.limits, LimitsConfig::default());
        let err = Config::from_toml("[server]\nlisten_addr = \"x\"\n", "t").unwrap_err();
        assert!(err.to_string().contains("listen_addr"), "{err}");
    }

    #[test]
    fn environment_overrides_turn_and_secrets() {
        let env = |k: &str| {
            Some(match k {
                "TURN_PROVIDER" => "coturn".to_owned(),
                "TURN_SECRET" => "s3cret".to_owned(),
                "TURN_URLS" => "turn:a:3478, turn:b:3478?transport=udp".to_owned(),
                "TURN_TTL" => "60".to_owned(),
                "STUN_URLS" => "stun:a:3478".to_owned(),
                "CROMULENT_AUTH_SECRET" => "0123456789abcdef".to_owned(),
                _ => return None,
            })
        };
        let mut c = Config::default();
        c.apply_env(env).unwrap();
        assert_eq!(c.turn.provider, TurnProvider::Coturn);
        assert_eq!(c.turn.urls, ["turn:a:3478", "turn:b:3478?transport=udp"]);
        assert_eq!(c.turn.ttl_secs, 60);
        assert_eq!(c.turn.stun_urls, ["stun:a:3478"]);
        assert_eq!(c.auth.secret, "0123456789abcdef");
        c.validate().unwrap();
    }

    #[test]
    fn bad_environment_values_are_clear_errors() {
        let mut c = Config::default();
        let err = c
            .apply_env(|k| (k == "TURN_TTL").then(|| "soon".to_owned()))
            .unwrap_err();
        assert!(err.to_string().contains("TURN_TTL"));
        let err = c
            .apply_env(|k| (k == "TURN_PROVIDER").then(|| "twilio".to_owned()))
            .unwrap_err();
        assert!(err.to_string().contains("TURN_PROVIDER"));
    }

    #[test]
    fn inconsistent_settings_are_refused() {
        let mut c = Config::default();
        c.auth.mode = AuthMode::Token;
        assert!(c.validate().is_err(), "token mode without a secret");
        let mut c = Config::default();
        c.channels.push(ChannelConfig {
            id: 1,
            name: "Again".into(),
        });
        assert!(c.validate().is_err(), "duplicate channel id");
        let mut c = Config::default();
        c.turn.provider = TurnProvider::Coturn;
        assert!(c.validate().is_err(), "coturn without secret");
    }

    #[test]
    fn cluster_mode_is_off_unless_asked_for_and_its_defaults_hold_a_lease_under_30_s() {
        assert_eq!(Config::default().cluster, None);
        let c = Config::from_toml("[cluster]\ninstance_id = \"a\"\n", "t").unwrap();
        let cluster = c.cluster.clone().unwrap();
        assert_eq!(cluster.instance_id, "a");
        assert_eq!(cluster.redis_url, ClusterConfig::default().redis_url);
        assert!(cluster.lease() + cluster.renew_every() <= Duration::from_secs(30));
        c.validate().unwrap();
        let err = Config::from_toml("[cluster]\nredis = \"x\"\n", "t").unwrap_err();
        assert!(err.to_string().contains("redis"), "{err}");
    }

    #[test]
    fn bad_cluster_settings_are_typed_errors() {
        let check = |edit: fn(&mut ClusterConfig)| {
            let mut c = Config::default();
            let mut cluster = ClusterConfig::default();
            edit(&mut cluster);
            c.cluster = Some(cluster);
            match c.validate() {
                Err(ConfigError::Cluster(e)) => e,
                other => panic!("expected a cluster error, got {other:?}"),
            }
        };
        assert!(matches!(
            check(|c| c.redis_url = "http://x".into()),
            ClusterConfigError::RedisUrl { .. }
        ));
        assert!(matches!(
            check(|c| c.instance_id = "a b".into()),
            ClusterConfigError::InstanceId { .. }
        ));
        assert!(matches!(
            check(|c| c.key_prefix = String::new()),
            ClusterConfigError::KeyPrefix { .. }
        ));
        assert!(matches!(
            check(|c| c.lease_ms = 10),
            ClusterConfigError::Lease { .. }
        ));
        assert!(matches!(
            check(|c| c.renew_ms = c.lease_ms),
            ClusterConfigError::Renew { .. }
        ));
        assert!(matches!(
            check(|c| c.renew_ms = 0),
            ClusterConfigError::Renew { .. }
        ));
    }

    #[test]
    fn the_environment_turns_cluster_mode_on_and_the_password_is_not_printed() {
        let mut c = Config::default();
        c.apply_env(|k| match k {
            "CROMULENT_REDIS_URL" => Some("redis://:pw1234secret@10.0.0.5:6379/".into()),
            "CROMULENT_INSTANCE_ID" => Some("b".into()),
            _ => None,
        })
        .unwrap();
        let cluster = c.cluster.clone().unwrap();
        assert_eq!(cluster.instance_id, "b");
        c.validate().unwrap();
        let dbg = format!("{c:?}");
        assert!(
            !dbg.contains("pw1234secret") && dbg.contains("10.0.0.5"),
            "{dbg}"
        );
    }

    #[test]
    fn secrets_are_not_printed() {
        let mut c = Config::default();
        c.auth.secret = "hunter2hunter2hunter2".into();
        c.turn.secret = "turnsecret".into();
        let dbg = format!("{c:?}");
        assert!(!dbg.contains("hunter2") && !dbg.contains("turnsecret"));
    }
}
