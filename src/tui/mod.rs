//! The terminal client: `cromulent --server URL --user NAME`, and `cromulent demo`.
//!
//! Elm architecture, one concern per file:
//! - [`model`]: what the screen shows, plain data; [`chat`]: the chat pane's state and rules,
//!   and what makes a message safe to draw;
//! - [`update`]: the pure state machine, `update(&mut Model, Msg) -> Vec<Cmd>`;
//! - [`view`]: draws a model, nothing else;
//! - [`keys`]: the configurable key map; [`config`]: flags, config file, defaults;
//! - [`app`]: the I/O loop (terminal events, engine events, a tick → `update` → engine);
//! - [`terminal`]: raw mode, alternate screen, key-release reporting, panic-safe restore;
//! - [`logging`]: logs to a file, and fd 2 (ALSA's chatter) into it while the screen is ours;
//! - [`demo`]: an in-process server and echo bot, and the client connected to them.
//!
//! Never writes to the screen outside `view`, never decides anything outside `update`.

pub mod app;
pub mod chat;
pub mod config;
pub mod demo;
pub mod hold;
pub mod keys;
pub mod logging;
pub mod model;
pub mod terminal;
pub mod update;
pub mod view;
pub mod volumes;

pub use config::{Settings, TuiArgs};

/// Exit statuses.
pub const EXIT_OK: i32 = 0;
pub const EXIT_FAILED: i32 = 1;
pub const EXIT_USAGE: i32 = 2;

/// The local time zone's offset from UTC in seconds, read by [`capture_utc_offset`].
static UTC_OFFSET: std::sync::OnceLock<i32> = std::sync::OnceLock::new();

/// Read the local UTC offset (for chat times). Call first thing in `main`, while the process
/// has one thread: later the `time` crate refuses (reading the zone is not thread-safe), and
/// times are shown in UTC.
pub fn capture_utc_offset() {
    let offset = time::UtcOffset::current_local_offset().map_or(0, |o| o.whole_seconds());
    let _ = UTC_OFFSET.set(offset);
}

/// The offset [`capture_utc_offset`] read (0: UTC).
pub fn utc_offset() -> i32 {
    UTC_OFFSET.get().copied().unwrap_or(0)
}

/// The process environment, for [`Settings::load`].
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// `cromulent` with no subcommand: returns the exit status.
pub fn main(args: TuiArgs) -> i32 {
    if args.list_devices {
        return list_devices();
    }
    let settings = match Settings::load(&args, None, &process_env) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("cromulent: {e}");
            return EXIT_USAGE;
        }
    };
    run_with_logging(settings, |settings| async move {
        app::run(settings, None).await
    })
}

/// Print the sound devices (ALSA's probing chatter kept off the output).
pub fn list_devices() -> i32 {
    match logging::quiet_stderr(crate::audio::device::list_devices) {
        Ok(text) => {
            print!("{text}");
            EXIT_OK
        }
        Err(e) => {
            eprintln!("cromulent: {e}");
            EXIT_FAILED
        }
    }
}

/// Set up the log file and stderr redirect, run `body` on a fresh runtime, put stderr back and
/// report an error on the (restored) terminal.
pub fn run_with_logging<F, Fut>(settings: Settings, body: F) -> i32
where
    F: FnOnce(Settings) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    if let Err(e) = crate::tls::trust(settings.ca_file.as_deref()) {
        eprintln!("cromulent: {e}");
        return EXIT_USAGE;
    }
    let log = match logging::open(&settings.log_file) {
        Ok(f) => f,
        Err(e) => {
            eprintln!(
                "cromulent: cannot open the log file {}: {e}",
                settings.log_file.display()
            );
            return EXIT_FAILED;
        }
    };
    let log_path = settings.log_file.clone();
    match log.try_clone() {
        Ok(for_tracing) => logging::init_tracing(for_tracing),
        Err(e) => eprintln!("cromulent: logging disabled: {e}"),
    }
    if let Err(e) = logging::redirect_stderr(&log) {
        tracing::warn!(error = %e, "cannot redirect stderr; ALSA messages may reach the screen");
    }
    let result = crate::engine::client_runtime()
        .map_err(anyhow::Error::from)
        .and_then(|rt| {
            let r = rt.block_on(body(settings));
            rt.shutdown_timeout(std::time::Duration::from_secs(1));
            r
        });
    terminal::restore();
    logging::restore_stderr();
    match result {
        Ok(()) => EXIT_OK,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "terminal client failed");
            eprintln!("cromulent: {e:#}\n(log: {})", log_path.display());
            EXIT_FAILED
        }
    }
}
