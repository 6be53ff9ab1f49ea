//! The terminal client's I/O loop: one `select!` over the terminal's events, the engine's
//! events and a tick, each turned into a [`Msg`] for [`update`]; its [`Cmd`]s go to the
//! engine; [`view`] redraws. Everything that decides anything lives in `update`.
//! Once the loop runs it must never change the model itself: it only carries out `update`'s
//! commands.

use std::time::Duration;

use anyhow::Context as _;
use crossterm::event::{Event, EventStream};
use futures_util::StreamExt;
use tokio::time::{Instant, MissedTickBehavior};

use super::config::Settings;
use super::model::{Device, Model, Notice, NoticeLevel, PttStyle};
use super::terminal;
use super::update::{Cmd, Msg, TICK, update};
use super::view::view;
use crate::audio::{AudioSink, AudioSource, DeviceSink, DeviceSource, NullSink, Silence};
use crate::engine::{self, ChannelRef, EngineCommand, EngineEvent};
use crate::hooks::Hooks;
use crate::hooks::launch::Launcher;

/// How long quitting waits for the engine to leave the channel and stop.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(2);

/// Set in the environment, makes the client panic right after it drew its first screen: how
/// the tests prove that a panic leaves the user's terminal usable.
pub const PANIC_FOR_TESTS: &str = "CROMULENT_TEST_PANIC";

/// A message shown at start (the demo's directions).
pub struct Intro {
    pub text: String,
    pub ticks: u32,
}

/// Run the client until the user quits. Stderr should already point at the log file.
pub async fn run(settings: Settings, intro: Option<Intro>) -> anyhow::Result<()> {
    let (source, input, sink, output) = open_audio(&settings);
    let (engine, mut events) = engine::spawn_with_audio(settings.engine_config(), source, sink)
        .context("cannot start the voice engine")?;
    engine.send(EngineCommand::SetVoiceActivity {
        threshold_dbfs: settings.vad_threshold_dbfs,
        hangover_frames: settings.vad_hangover_frames,
    });
    if let Some(channel) = &settings.join {
        engine.send(EngineCommand::Join(ChannelRef(channel.clone())));
    }

    let (mut tui, _guard, releases) = terminal::enter().context("cannot set up the terminal")?;
    let ptt = if releases {
        PttStyle::Hold
    } else {
        PttStyle::Repeat
    };
    tracing::info!(
        server = %settings.server_url,
        user = %settings.user,
        config = ?settings.config_path,
        ?ptt,
        "terminal client started"
    );
    let mut model = Model::new(
        settings.server_url.clone(),
        settings.user.clone(),
        settings.talk_mode,
        ptt,
        settings.keys.clone(),
    );
    model.input = input;
    model.output = output;
    model.chat.utc_offset_secs = super::utc_offset();
    model.no_color = settings.no_color;
    match super::volumes::load(&settings.volumes_file) {
        Ok(volumes) => model.volumes = volumes,
        Err(e) => tracing::warn!(error = %e, "remembered volumes not read"),
    }
    for (user, &percent) in &model.volumes {
        engine.send(EngineCommand::SetVolume {
            user: user.clone(),
            percent,
        });
    }
    model.ascii = settings.ascii;
    model.notice = intro.map(|i| Notice {
        text: i.text,
        level: NoticeLevel::Info,
        ticks_left: i.ticks,
    });

    if std::env::var_os(PANIC_FOR_TESTS).is_some() {
        tui.draw(|frame| view(&model, frame))?;
        panic!("{PANIC_FOR_TESTS} is set: panicking on purpose, with the screen up");
    }

    let mut control = crate::ctl::open_option(settings.ctl.as_deref());
    let mut hooks = Hooks::new(settings.hooks.clone(), &settings.user);
    let launcher = Launcher::default();
    let mut ctl_status = crate::ctl::Status::new();
    let mut keys = EventStream::new();
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let mut engine_running = true;
    let mut quit_by: Option<Instant> = None;
    loop {
        tui.draw(|frame| view(&model, frame))?;
        let msg = tokio::select! {
            ev = keys.next() => match ev {
                Some(Ok(Event::Key(key))) => Msg::Key(key, std::time::Instant::now()),
                Some(Ok(Event::FocusLost)) => Msg::FocusLost,
                // Resize and the rest: just redraw.
                Some(Ok(_)) => continue,
                Some(Err(e)) => return Err(e).context("reading the terminal"),
                None => break,
            },
            ev = events.recv(), if engine_running => match ev {
                Some(ev) => {
                    log_event(&ev);
                    for launch in hooks.on_event(&ev, std::time::Instant::now()) {
                        launcher.start(launch);
                    }
                    ctl_status.apply(&ev);
                    if let Some(control) = &control {
                        let names = |id| model.channel(id).map(|c| c.name.clone());
                        for line in crate::headless::events::lines(&ev, &names) {
                            control.publish(&line);
                        }
                    }
                    Msg::Engine(ev)
                }
                None => {
                    engine_running = false;
                    if quit_by.is_some() {
                        break;
                    }
                    continue;
                }
            },
            Some(incoming) = crate::ctl::next_request(&mut control) => {
                match &incoming.request {
                    crate::ctl::Request::Status { json } => {
                        ctl_status.muted = model.talk.muted();
                        ctl_status.deafened = model.talk.deafened();
                        let json = *json;
                        incoming.answer(if json {
                            ctl_status.json().to_string()
                        } else {
                            ctl_status.line()
                        });
                        continue;
                    }
                    request => {
                        let request = request.clone();
                        incoming.answer("ok");
                        Msg::Control(request)
                    }
                }
            }
            _ = tick.tick() => Msg::Tick(std::time::Instant::now()),
            // The talk key's hold is decided on time, not at the next tick.
            _ = sleep_until_opt(model.hold.deadline().map(Instant::from_std)) => {
                Msg::HoldTimer(std::time::Instant::now())
            }
            _ = sleep_until_opt(quit_by) => break,
        };
        for cmd in update(&mut model, msg) {
            match cmd {
                Cmd::Engine(c) => engine.send(c),
                Cmd::SaveVolumes => {
                    if let Err(e) = super::volumes::save(&settings.volumes_file, &model.volumes) {
                        tracing::warn!(error = %e, "volumes not remembered");
                    }
                }
                Cmd::Quit if quit_by.is_some() || !engine_running => {
                    return Ok(());
                }
                Cmd::Quit => {
                    engine.send(EngineCommand::Shutdown);
                    quit_by = Some(Instant::now() + SHUTDOWN_WAIT);
                }
            }
        }
    }
    engine.send(EngineCommand::Shutdown);
    Ok(())
}

/// Open the microphone and speaker; whatever is missing is replaced by silence and said so.
fn open_audio(
    settings: &Settings,
) -> (
    Box<dyn AudioSource + Send>,
    Device,
    Box<dyn AudioSink + Send>,
    Device,
) {
    let (source, input): (Box<dyn AudioSource + Send>, _) =
        match DeviceSource::open_for(settings.input_device.as_deref(), settings.frame) {
            Ok(s) => {
                let text = s.info().to_string();
                tracing::info!(device = %text, "microphone opened");
                (Box::new(s), Device::Ready(text))
            }
            Err(e) => {
                tracing::warn!(error = %e, "running without a microphone");
                (Box::new(Silence), Device::Missing(e.summary()))
            }
        };
    let (sink, output): (Box<dyn AudioSink + Send>, _) =
        match DeviceSink::open(settings.output_device.as_deref()) {
            Ok(s) => {
                let text = s.info().to_string();
                tracing::info!(device = %text, "speaker opened");
                (Box::new(s), Device::Ready(text))
            }
            Err(e) => {
                tracing::warn!(error = %e, "running without a speaker");
                (Box::new(NullSink::default()), Device::Missing(e.summary()))
            }
        };
    (source, input, sink, output)
}

fn log_event(ev: &EngineEvent) {
    match ev {
        EngineEvent::Mic { .. } | EngineEvent::Stats(_) => {}
        EngineEvent::Error { .. } | EngineEvent::Fatal { .. } => tracing::warn!(?ev, "engine"),
        _ => tracing::info!(?ev, "engine"),
    }
}

async fn sleep_until_opt(t: Option<Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}
