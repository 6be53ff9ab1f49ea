//! `cromulent demo`: everything in one process on embedded defaults — the signaling server on a
//! free loopback port (channels General, Gaming, Echo), an echo bot sitting in Echo, and the
//! terminal client connected to them. Join Echo, talk, and hear yourself a second later. The
//! server also serves the web client: its URL is printed before the screen opens and shown in
//! the intro, so a browser on this machine can join the same channels.
//!
//! Must never listen beyond loopback or connect elsewhere: the server binds 127.0.0.1 and
//! `--server` is refused.

use std::time::Duration;

use clap::Args;
use tokio::sync::{mpsc, oneshot};

use super::app::{self, Intro};
use super::config::{Settings, TuiArgs, is_loopback_url};
use super::{EXIT_FAILED, EXIT_USAGE, process_env, run_with_logging};
use crate::audio::processing::Processing;
use crate::audio::{FrameSize, SinkSpec, SourceSpec, echo_pair};
use crate::engine::{
    self, ChannelRef, EngineCommand, EngineConfig, EngineEvent, EngineHandle, IcePolicy,
    StartError, TalkMode,
};
use crate::signaling::Credentials;

/// The echo bot's name and channel.
pub const ECHO_BOT: &str = "echo-bot";
pub const ECHO_CHANNEL: &str = "Echo";

/// Options of `cromulent demo`.
#[derive(Args, Debug, Clone)]
pub struct DemoArgs {
    #[command(flatten)]
    pub tui: TuiArgs,
    /// How late the echo bot plays back what it hears, in milliseconds.
    #[arg(long, default_value_t = 1000, value_name = "MS")]
    pub echo_delay_ms: u64,
}

/// Returns the exit status.
pub fn main(args: DemoArgs) -> i32 {
    if args.tui.server.is_some() {
        eprintln!(
            "cromulent demo: the demo runs its own server; to connect elsewhere run `cromulent --server URL`"
        );
        return EXIT_USAGE;
    }
    if args.tui.list_devices {
        return super::list_devices();
    }
    // Bound before anything else so the client's settings can name it.
    let listener = match std::net::TcpListener::bind("127.0.0.1:0") {
        Ok(l) => l,
        Err(e) => {
            eprintln!("cromulent demo: cannot listen on 127.0.0.1: {e}");
            return EXIT_FAILED;
        }
    };
    let addr = match listener.local_addr() {
        Ok(addr) => addr,
        Err(e) => {
            eprintln!("cromulent demo: {e}");
            return EXIT_FAILED;
        }
    };
    let url = format!("ws://{addr}");
    let web = format!("http://{addr}/");
    println!("cromulent demo: the web client is at {web} (open it in a browser on this machine)");
    // A fresh machine may have no $USER: the demo still needs a name.
    let env = |name: &str| process_env(name).or_else(|| (name == "USER").then(|| "you".to_owned()));
    let settings = match Settings::load(&args.tui, Some(url.clone()), &env) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("cromulent demo: {e}");
            return EXIT_USAGE;
        }
    };
    let delay = Duration::from_millis(args.echo_delay_ms);
    run_with_logging(settings, move |settings| async move {
        listener.set_nonblocking(true)?;
        let listener = tokio::net::TcpListener::from_std(listener)?;
        let (stop_server, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(cromulent_server::run(
            listener,
            cromulent_server::config::Config::default(),
            async {
                let _ = stopped.await;
            },
        ));
        tracing::info!(%url, "demo server listening");
        let bot = spawn_echo_bot(&url, delay)?;
        let intro = Intro {
            text: format!(
                "Web client: {web} · Demo: the echo bot is in {ECHO_CHANNEL}. Select it, press {}, talk ({}), and hear yourself {:.1} s later. {} for help.",
                settings.keys.label(super::keys::Action::Join),
                settings.keys.label(super::keys::Action::Talk),
                delay.as_secs_f32(),
                settings.keys.label(super::keys::Action::Help),
            ),
            ticks: 240,
        };
        let result = app::run(settings, Some(intro)).await;
        bot.send(EngineCommand::Shutdown);
        tokio::time::sleep(Duration::from_millis(100)).await;
        let _ = stop_server.send(());
        let _ = tokio::time::timeout(Duration::from_secs(2), server).await;
        result
    })
}

/// Start the echo bot: an engine named [`ECHO_BOT`] in [`ECHO_CHANNEL`] whose microphone is
/// what it heard `delay` ago. Voice-activity mode, so it only "talks" (and shows as talking)
/// while it has something to give back. Its events go to the log.
pub fn spawn_echo_bot(server_url: &str, delay: Duration) -> Result<EngineHandle, StartError> {
    let (source, sink) = echo_pair(delay);
    let config = EngineConfig {
        server_url: server_url.to_owned(),
        credentials: Credentials {
            name: ECHO_BOT.into(),
            token: None,
        },
        talk_mode: TalkMode::VoiceActivity,
        ice_policy: IcePolicy::All,
        // Descriptive only: the echo pair is passed in.
        audio_in: SourceSpec::Silence,
        audio_out: SinkSpec::Null,
        loopback_only: is_loopback_url(server_url),
        frame: FrameSize::default(),
        // It sends back exactly what it heard.
        processing: Processing::NONE,
        ice_refresh: true,
    };
    let (handle, events) = engine::spawn_with_audio(config, Box::new(source), Box::new(sink))?;
    handle.send(EngineCommand::Join(ChannelRef(ECHO_CHANNEL.into())));
    tokio::spawn(log_bot_events(events));
    Ok(handle)
}

async fn log_bot_events(mut events: mpsc::UnboundedReceiver<EngineEvent>) {
    while let Some(ev) = events.recv().await {
        match ev {
            EngineEvent::Mic { .. } | EngineEvent::Stats(_) => {}
            EngineEvent::Stopped => break,
            ev => tracing::debug!(bot = ECHO_BOT, ?ev, "echo bot"),
        }
    }
}
