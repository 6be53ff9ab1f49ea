//! `cromulent` binary: parse the command line, set up logging, hand over to a front end.

use clap::{Parser, Subcommand};
use cromulent::headless::{self, HeadlessArgs};
use cromulent::tui::{self, TuiArgs, demo::DemoArgs};

/// Cromulent Voice: voice chat for the terminal.
///
/// With no subcommand, opens the terminal client: `cromulent --server ws://HOST:PORT --user
/// NAME` (or settings from ~/.config/cromulent/config.toml). Try `cromulent demo` first.
#[derive(Parser, Debug)]
#[command(version, about, long_about, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Cmd>,
    #[command(flatten)]
    tui: TuiArgs,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Run without a terminal UI or sound card, driven by a script; JSON-lines events on
    /// stdout, logs on stderr.
    Headless(HeadlessArgs),
    /// Run the signaling server in this process (same options as `cromulent-server`).
    Server(cromulent_server::cli::ServerArgs),
    /// Everything on embedded defaults: a server on a free local port, an echo bot in the Echo
    /// channel (plays back what it hears a second later), and the terminal client.
    Demo(DemoArgs),
    /// Drive a running client (`cromulent headless`) from outside: talk press|release|toggle,
    /// mute, deafen, join CHANNEL, leave, say TEXT, status [--json], events.
    Ctl(cromulent::ctl::client::CtlArgs),
}

fn main() {
    // While the process has one thread: chat times in the local zone.
    tui::capture_utc_offset();
    let cli = Cli::parse();
    let _ = rustls::crypto::ring::default_provider().install_default();
    match cli.command {
        // The terminal client sets up its own logging: to a file, never the screen.
        None => std::process::exit(tui::main(cli.tui)),
        Some(Cmd::Demo(args)) => std::process::exit(tui::demo::main(args)),
        Some(Cmd::Ctl(args)) => std::process::exit(cromulent::ctl::client::main(args)),
        Some(Cmd::Server(args)) => {
            tracing_subscriber::fmt()
                .with_env_filter(
                    tracing_subscriber::EnvFilter::try_from_default_env()
                        .unwrap_or_else(|_| "info".into()),
                )
                .init();
            let result = args.load().map_err(anyhow::Error::from).and_then(|config| {
                tokio::runtime::Runtime::new()?.block_on(cromulent_server::cli::serve(config))
            });
            if let Err(e) = result {
                eprintln!("cromulent server: {e:#}");
                std::process::exit(1);
            }
        }
        Some(Cmd::Headless(args)) => {
            tracing_subscriber::fmt()
                .with_writer(std::io::stderr)
                .with_env_filter(
                    tracing_subscriber::EnvFilter::try_from_default_env()
                        .unwrap_or_else(|_| "warn,webrtc=error,webrtc_ice=error".into()),
                )
                .init();
            let runtime = match cromulent::engine::client_runtime() {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("cromulent: cannot start the runtime: {e}");
                    std::process::exit(headless::EXIT_FAILED);
                }
            };
            let status = runtime.block_on(headless::run(args));
            runtime.shutdown_timeout(std::time::Duration::from_secs(1));
            std::process::exit(status);
        }
    }
}
