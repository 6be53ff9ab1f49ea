//! What both binaries that can run the server share: the `--listen`/`--config` options, turning
//! them (and the environment) into a [`Config`], and waiting for SIGINT/SIGTERM.
//! Must never bind or serve before the configuration validates: [`serve`] checks first.

use std::net::SocketAddr;
use std::path::PathBuf;

use crate::config::{Config, ConfigError};

/// Where the server listens and which settings it uses.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct ServerArgs {
    /// Address to listen on (overrides server.listen). Port 0 picks a free port.
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// TOML configuration file (see config.example.toml).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

impl ServerArgs {
    /// The embedded defaults, then the file, then the environment, then `--listen`.
    pub fn load(&self) -> Result<Config, ConfigError> {
        let mut config = match &self.config {
            Some(path) => Config::from_file(path)?,
            None => Config::default(),
        };
        config.apply_env(|k| std::env::var(k).ok())?;
        if let Some(addr) = self.listen {
            config.server.listen = addr;
        }
        Ok(config)
    }
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
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

/// Validate, bind and serve until SIGINT/SIGTERM.
pub async fn serve(config: Config) -> anyhow::Result<()> {
    config.validate()?;
    let listener = tokio::net::TcpListener::bind(config.server.listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", config.server.listen))?;
    crate::run(listener, config, shutdown_signal()).await?;
    Ok(())
}
