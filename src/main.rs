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
    /// Drive a running client (the terminal client or `cromulent headless`) from outside: talk
    /// press|release|toggle, mute, deafen, join CHANNEL, leave, say TEXT, status [--json],
    /// events.
    Ctl(cromulent::ctl::client::CtlArgs),
    /// Print a shell completion script: `cromulent completions bash >
    /// ~/.local/share/bash-completion/completions/cromulent` (zsh: a file `_cromulent` on
    /// $fpath; fish: ~/.config/fish/completions/cromulent.fish).
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (`cromulent manpage | man -l -`), or with --dir write it and one per
    /// subcommand (cromulent.1, cromulent-headless.1, …) into DIR.
    Manpage {
        #[arg(long, value_name = "DIR")]
        dir: Option<std::path::PathBuf>,
    },
}

/// `cromulent completions SHELL`: generated from the command line's own definition.
fn completions(shell: clap_complete::Shell) -> i32 {
    let mut cmd = <Cli as clap::CommandFactory>::command();
    clap_complete::generate(shell, &mut cmd, "cromulent", &mut std::io::stdout());
    0
}

/// `cromulent manpage [--dir DIR]`: generated from the command line's own definition.
fn manpage(dir: Option<&std::path::Path>) -> i32 {
    let cmd = <Cli as clap::CommandFactory>::command().name("cromulent");
    let result = match dir {
        Some(dir) => std::fs::create_dir_all(dir).and_then(|()| clap_mangen::generate_to(cmd, dir)),
        None => clap_mangen::Man::new(cmd).render(&mut std::io::stdout()),
    };
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("cromulent manpage: {e}");
            1
        }
    }
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
        Some(Cmd::Completions { shell }) => std::process::exit(completions(shell)),
        Some(Cmd::Manpage { dir }) => std::process::exit(manpage(dir.as_deref())),
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
