//! `cromulent-server` binary: parse the command line, set up logging, run.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use cromulent_server::auth::{self, Claims};
use cromulent_server::config::Config;

/// Cromulent Voice signaling server: voice channels, presence, the duplicate-join guard,
/// WebRTC signaling relay and TURN credentials, over WebSocket (ws://HOST:PORT).
///
/// With no arguments it listens on 127.0.0.1:4000 with open auth and the demo channels
/// General, Gaming and Echo. Environment variables override secrets and TURN settings:
/// CROMULENT_AUTH_SECRET, TURN_PROVIDER, TURN_SECRET, TURN_URLS, TURN_TTL, TURN_API_KEY,
/// TURN_API_URL, STUN_URLS. Log level: RUST_LOG (default info).
#[derive(Parser, Debug)]
#[command(version, about, long_about)]
struct Cli {
    /// Address to listen on (overrides server.listen). Port 0 picks a free port.
    #[arg(long, value_name = "ADDR")]
    listen: Option<SocketAddr>,
    /// TOML configuration file (see config.example.toml).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Cmd>,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Print a signed user token for token mode (uses auth.secret / CROMULENT_AUTH_SECRET).
    Token {
        /// User id the token is for.
        #[arg(long)]
        user: String,
        /// Display name (defaults to the user id).
        #[arg(long)]
        name: Option<String>,
        /// Lifetime: e.g. 30d, 12h, 90m, 45s.
        #[arg(long, default_value = "30d")]
        ttl: String,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let mut config = match &cli.config {
        Some(path) => Config::from_file(path)?,
        None => Config::default(),
    };
    config.apply_env(|k| std::env::var(k).ok())?;
    if let Some(addr) = cli.listen {
        config.server.listen = addr;
    }
    match cli.command {
        Some(Cmd::Token { user, name, ttl }) => print_token(&config, &user, name, &ttl),
        None => serve(config),
    }
}

fn print_token(config: &Config, user: &str, name: Option<String>, ttl: &str) -> anyhow::Result<()> {
    if config.auth.secret.len() < 16 {
        bail!("set auth.secret in the config file or CROMULENT_AUTH_SECRET (at least 16 bytes)");
    }
    let max = config.limits.max_name_chars;
    let user = auth::check_name(user, max).context("bad --user")?;
    let name = name
        .map(|n| auth::check_name(&n, max))
        .transpose()
        .context("bad --name")?;
    let ttl = auth::parse_ttl(ttl).map_err(anyhow::Error::msg)?;
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    let claims = Claims {
        sub: user,
        name,
        exp: now + ttl,
    };
    println!(
        "{}",
        auth::make_token(config.auth.secret.as_bytes(), &claims)
    );
    Ok(())
}

fn serve(config: Config) -> anyhow::Result<()> {
    config.validate()?;
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(config.server.listen)
            .await
            .with_context(|| format!("cannot listen on {}", config.server.listen))?;
        cromulent_server::run(listener, config, shutdown_signal()).await?;
        Ok(())
    })
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch SIGTERM; only Ctrl-C will stop the server");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received"),
        _ = term.recv() => tracing::info!("SIGTERM received"),
    }
}
