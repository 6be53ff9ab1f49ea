//! `cromulent-server` binary: parse the command line, set up logging, run.
//! It must never grow server logic: serving is `cli::serve`, tokens are `auth`'s.

use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use cromulent_server::auth::{self, Claims};
use cromulent_server::cli::ServerArgs;
use cromulent_server::config::Config;
use cromulent_server::name::check_name;

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
    #[command(flatten)]
    server: ServerArgs,
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
        /// Display name (defaults to the user id). The client's `hello.name` is ignored
        /// unless --allow-client-name is given.
        #[arg(long)]
        name: Option<String>,
        /// Let the holder choose their display name when connecting (`hello.name`, checked
        /// like any name); --name is then only the default.
        #[arg(long)]
        allow_client_name: bool,
        /// Lifetime: e.g. 30d, 12h, 90m, 45s.
        #[arg(long, default_value = "30d")]
        ttl: String,
        /// Print a sign-in link for the web client instead of the bare token: the server's
        /// web address (e.g. https://voice.example.org/) with the token in the fragment,
        /// which browsers never send to a server. The page remembers it.
        #[arg(long, value_name = "URL")]
        link: Option<String>,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let config = cli.server.load()?;
    match cli.command {
        Some(Cmd::Token {
            user,
            name,
            allow_client_name,
            ttl,
            link,
        }) => print_token(
            &config,
            &user,
            name,
            allow_client_name,
            &ttl,
            link.as_deref(),
        ),
        None => serve(config),
    }
}

fn print_token(
    config: &Config,
    user: &str,
    name: Option<String>,
    client_names: bool,
    ttl: &str,
    link: Option<&str>,
) -> anyhow::Result<()> {
    if config.auth.secret.len() < 16 {
        bail!("set auth.secret in the config file or CROMULENT_AUTH_SECRET (at least 16 bytes)");
    }
    let max = config.limits.max_name_chars;
    let user = check_name(user, max).context("bad --user")?;
    let name = name
        .map(|n| check_name(&n, max))
        .transpose()
        .context("bad --name")?;
    let ttl = auth::parse_ttl(ttl).map_err(anyhow::Error::msg)?;
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    let claims = Claims {
        sub: user,
        name,
        client_names,
        exp: now + ttl,
    };
    let token = auth::make_token(config.auth.secret.as_bytes(), &claims);
    match link {
        Some(base) => println!(
            "{}",
            auth::sign_in_link(base, &token).map_err(|e| anyhow::anyhow!("bad --link: {e}"))?
        ),
        None => println!("{token}"),
    }
    Ok(())
}

fn serve(config: Config) -> anyhow::Result<()> {
    tokio::runtime::Runtime::new()?.block_on(cromulent_server::cli::serve(config))
}
