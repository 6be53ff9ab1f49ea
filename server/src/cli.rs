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
        if config.chat.database.is_none() {
            let path = default_chat_database(self.config.as_deref(), &|k| std::env::var_os(k))
                .ok_or_else(|| {
                    ConfigError::Invalid(
                        "no place for the chat history: set chat.database (or CROMULENT_CHAT_DB), \
                         HOME or XDG_DATA_HOME"
                            .into(),
                    )
                })?;
            config.chat.database = Some(path.display().to_string());
        }
        Ok(config)
    }
}

/// The chat history's file when none is configured: beside the config file, else in the XDG
/// data directory.
pub fn default_chat_database(
    config_file: Option<&std::path::Path>,
    env: &dyn Fn(&str) -> Option<std::ffi::OsString>,
) -> Option<PathBuf> {
    const FILE: &str = "chat.sqlite3";
    if let Some(file) = config_file {
        let dir = file.parent().filter(|d| !d.as_os_str().is_empty());
        return Some(dir.map_or_else(|| PathBuf::from(FILE), |d| d.join(FILE)));
    }
    let data = env("XDG_DATA_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| env("HOME").map(|h| PathBuf::from(h).join(".local/share")))?;
    Some(data.join("cromulent").join(FILE))
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn the_chat_database_sits_beside_the_config_else_in_the_xdg_data_dir() {
        let none = |_: &str| None;
        assert_eq!(
            default_chat_database(Some(Path::new("/etc/cromulent/server.toml")), &none),
            Some(PathBuf::from("/etc/cromulent/chat.sqlite3"))
        );
        assert_eq!(
            default_chat_database(Some(Path::new("server.toml")), &none),
            Some(PathBuf::from("chat.sqlite3"))
        );
        let home = |k: &str| (k == "HOME").then(|| "/home/a".into());
        assert_eq!(
            default_chat_database(None, &home),
            Some(PathBuf::from("/home/a/.local/share/cromulent/chat.sqlite3"))
        );
        let xdg = |k: &str| match k {
            "XDG_DATA_HOME" => Some("/data".into()),
            "HOME" => Some("/home/a".into()),
            _ => None,
        };
        assert_eq!(
            default_chat_database(None, &xdg),
            Some(PathBuf::from("/data/cromulent/chat.sqlite3"))
        );
        assert_eq!(default_chat_database(None, &none), None);
    }
}
