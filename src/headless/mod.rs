//! `cromulent headless`: the engine without a terminal or sound card, driven by a script,
//! writing JSON-lines events to stdout (logs go to stderr). How users script test runs and
//! bots, and how our own tests prove that audio flows. The contract is in the README.
//!
//! Exit status: 0 on a clean run, 1 when a `wait` times out or a fatal error occurs, 2 on bad
//! usage (including a script that does not parse).

pub mod events;
pub mod script;
pub mod world;

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use tokio::io::AsyncBufReadExt;
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep_until};

use crate::audio::processing::Processing;
use crate::audio::{FrameSize, SinkSpec, SourceSpec};
use crate::ctl::{self, ControlSocket, Incoming, Request, Status};
use crate::engine::{
    self, ChannelRef, EngineCommand, EngineConfig, EngineEvent, EngineHandle, IcePolicy, TalkMode,
    TalkState,
};
use crate::hooks::launch::Launcher;
use crate::hooks::{HookConfig, Hooks};
use crate::signaling::Credentials;

use events::RunError;
use script::{Command, WaitFor};
use world::World;

/// Options of `cromulent headless`.
#[derive(Args, Debug, Clone)]
pub struct HeadlessArgs {
    /// Server URL: ws://HOST:PORT or wss://HOST[:PORT].
    #[arg(long)]
    pub server: String,
    /// Your display name (the identity in open mode).
    #[arg(long)]
    pub user: String,
    /// Token for a server in token mode.
    #[arg(long)]
    pub token: Option<String>,
    /// Join this voice channel at start: a name (case-insensitive) or an id.
    #[arg(long)]
    pub join: Option<String>,
    /// What to send: tone:HZ, wav:PATH, silence, or device[:NAME] (a microphone).
    #[arg(long, default_value = "silence", value_parser = parse_source)]
    pub audio_in: SourceSpec,
    /// Where what you hear goes: wav:PATH (a recording), null, or device[:NAME] (a speaker).
    #[arg(long, default_value = "null", value_parser = parse_sink)]
    pub audio_out: SinkSpec,
    /// open (mic live unless muted) or ptt (live only after `talk on`).
    #[arg(long, default_value = "open", value_parser = parse_talk)]
    pub talk: TalkMode,
    /// ICE candidates to use: all, or relay (through TURN only).
    #[arg(long, default_value = "all")]
    pub ice_policy: IcePolicy,
    /// Also trust the CA certificates in this PEM file for wss:// and turns: (a private CA;
    /// the system's roots are trusted anyway).
    #[arg(long, env = "CROMULENT_CA_FILE", value_name = "FILE")]
    pub ca_file: Option<PathBuf>,
    /// Audio frame length in ms: 20; 10 for less delay at twice the packets; 5 for the
    /// low-delay mode (CELT only: no in-band FEC, four times the packets). Peers may use any
    /// frame length (and browsers any Opus packet length): each is heard on its own.
    #[arg(long, value_name = "MS", default_value = "20")]
    pub frame_ms: FrameSize,
    /// Capture processing: all, none, or stages from echo, noise, gain, voice (comma
    /// separated; noise:high for the lighter noise suppression, 10 ms less delay than the
    /// default strong). Default: all on a device microphone, none on tone/wav/silence.
    #[arg(long, value_name = "STAGES")]
    pub processing: Option<Processing>,
    /// Run this many seconds, then leave and exit 0.
    #[arg(long = "for", value_name = "SECONDS", value_parser = script::seconds)]
    pub for_secs: Option<Duration>,
    /// Commands, one per line, from FILE or - (stdin).
    #[arg(long, value_name = "FILE|-")]
    pub script: Option<PathBuf>,
    /// The control socket for `cromulent ctl`: a path, or `off`. Default:
    /// $XDG_RUNTIME_DIR/cromulent/ctl-PID.sock.
    #[arg(long, value_name = "PATH|off")]
    pub ctl: Option<PathBuf>,
    /// Run COMMAND (with sh -c) on an event: joined, left, message, mentioned, disconnected,
    /// reconnected; the event as JSON on stdin and in CROMULENT_* variables. Repeatable.
    #[arg(long, value_name = "KIND=COMMAND")]
    pub hook: Vec<String>,
}

fn parse_source(s: &str) -> Result<SourceSpec, String> {
    SourceSpec::parse(s).map_err(|e| e.to_string())
}

fn parse_sink(s: &str) -> Result<SinkSpec, String> {
    SinkSpec::parse(s).map_err(|e| e.to_string())
}

fn parse_talk(s: &str) -> Result<TalkMode, String> {
    match s {
        "open" | "ptt" => s.parse(),
        _ => Err(format!("unknown talk mode {s:?}: use open or ptt")),
    }
}

/// Exit statuses.
pub const EXIT_OK: i32 = 0;
pub const EXIT_FAILED: i32 = 1;
pub const EXIT_USAGE: i32 = 2;

/// Where script commands come from.
enum Script {
    /// Parsed up front (a file).
    Lines(std::vec::IntoIter<Command>),
    /// Read as they come (stdin), for interactive bots.
    Stdin(mpsc::UnboundedReceiver<Result<String, String>>),
    None,
}

/// Run headless; returns the exit status.
pub async fn run(args: HeadlessArgs) -> i32 {
    if let Err(e) = crate::tls::trust(args.ca_file.as_deref()) {
        eprintln!("cromulent headless: {e}");
        return EXIT_USAGE;
    }
    let mut hooks = HookConfig::default();
    for arg in &args.hook {
        if let Err(e) = hooks.add_arg(arg) {
            eprintln!("cromulent headless: {e}");
            return EXIT_USAGE;
        }
    }
    let script = match &args.script {
        Some(p) if p.as_os_str() == "-" => Script::Stdin(stdin_lines()),
        Some(p) => match std::fs::read_to_string(p)
            .map_err(|e| e.to_string())
            .and_then(|t| script::parse(&t).map_err(|e| e.to_string()))
        {
            Ok(cmds) => Script::Lines(cmds.into_iter()),
            Err(e) => {
                eprintln!("cromulent headless: {}: {e}", p.display());
                return EXIT_USAGE;
            }
        },
        None => Script::None,
    };
    let config = EngineConfig {
        loopback_only: server_is_loopback(&args.server),
        server_url: args.server.clone(),
        credentials: Credentials {
            name: args.user.clone(),
            token: args.token.clone(),
        },
        talk_mode: args.talk,
        ice_policy: args.ice_policy,
        audio_in: args.audio_in.clone(),
        audio_out: args.audio_out.clone(),
        frame: args.frame_ms,
        processing: args
            .processing
            .unwrap_or_else(|| args.audio_in.default_processing()),
        // The one environment knob: tests/turn_refresh.rs shows a call dying without refresh.
        ice_refresh: std::env::var("CROMULENT_ICE_REFRESH").map_or(true, |v| v != "off"),
    };
    let (engine, events) = match engine::spawn(config) {
        Ok(pair) => pair,
        Err(e) => {
            eprintln!("cromulent headless: {e}");
            return EXIT_USAGE;
        }
    };
    if let Some(channel) = &args.join {
        engine.send(EngineCommand::Join(ChannelRef(channel.clone())));
    }
    // The run goes on without a socket: scripts never depend on it (the reason is logged).
    let control = ctl::open_option(args.ctl.as_deref());
    let mut runner = Runner {
        engine,
        events,
        world: World::default(),
        out: std::io::stdout(),
        deadline: args.for_secs.map(|d| Instant::now() + d),
        control,
        hooks: Hooks::new(hooks, &args.user),
        launcher: Launcher::default(),
        talk: TalkState::new(args.talk),
        status: Status::new(),
    };
    let status = runner.drive(script).await;
    runner.stop().await;
    status
}

/// Loopback servers mean everyone is on this machine (demo, tests): gather on loopback only.
fn server_is_loopback(url: &str) -> bool {
    let rest = url.split("://").nth(1).unwrap_or(url);
    let host = rest.split(['/', '?']).next().unwrap_or("");
    let host = match host.rsplit_once(':') {
        Some((h, port)) if port.chars().all(|c| c.is_ascii_digit()) => h,
        _ => host,
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

struct Runner {
    engine: EngineHandle,
    events: mpsc::UnboundedReceiver<EngineEvent>,
    world: World,
    out: std::io::Stdout,
    /// `--for`: leave and exit 0 at this instant.
    deadline: Option<Instant>,
    /// `cromulent ctl`'s way in, if it could be opened.
    control: Option<ControlSocket>,
    /// `--hook`s, and their processes.
    hooks: Hooks,
    launcher: Launcher,
    /// The talk switches as we told the engine (the same rules as the engine's).
    talk: TalkState,
    /// What `ctl status` reports.
    status: Status,
}

/// What the script is doing right now.
enum Step {
    Next,
    Sleep(Instant),
    Wait(WaitFor, Instant),
    /// The script is over; run until `--for` (or forever without it).
    Idle,
}

impl Runner {
    async fn drive(&mut self, mut script: Script) -> i32 {
        let mut step = Step::Next;
        let mut term = signal_stream();
        loop {
            if let Step::Next = step {
                let next = match &mut script {
                    Script::Lines(cmds) => Some(Ok(cmds.next())),
                    Script::None => Some(Ok(None)),
                    // Read below, alongside the engine's events.
                    Script::Stdin(_) => None,
                };
                if let Some(next) = next {
                    match self.after_command(next, &script) {
                        Ok(s) => step = s,
                        Err(status) => return status,
                    }
                    continue;
                }
            }
            if let Step::Wait(cond, _) = &step
                && self.world.satisfied(cond)
            {
                step = Step::Next;
                continue;
            }
            let step_deadline = match &step {
                Step::Sleep(t) | Step::Wait(_, t) => Some(*t),
                _ => None,
            };
            let reading = matches!(step, Step::Next);
            tokio::select! {
                ev = self.events.recv() => {
                    let Some(ev) = ev else { return EXIT_FAILED };
                    if let EngineEvent::Fatal { .. } = ev {
                        self.print(&ev);
                        return EXIT_FAILED;
                    }
                    self.world.apply(&ev);
                    for launch in self.hooks.on_event(&ev, std::time::Instant::now()) {
                        self.launcher.start(launch);
                    }
                    self.status.apply(&ev);
                    self.print(&ev);
                }
                Some(incoming) = ctl::next_request(&mut self.control) => self.on_control(incoming),
                line = next_stdin_command(&mut script), if reading => {
                    match self.after_command(line, &script) {
                        Ok(s) => step = s,
                        Err(status) => return status,
                    }
                }
                _ = sleep_until_opt(step_deadline) => {
                    if let Step::Wait(cond, _) = &step {
                        let message = format!("timed out waiting for {}", describe(cond));
                        self.print_line(events::run_error(RunError::WaitTimeout, &message));
                        return EXIT_FAILED;
                    }
                    step = Step::Next;
                }
                _ = sleep_until_opt(self.deadline) => return EXIT_OK,
                _ = term.recv() => return EXIT_OK,
            }
        }
    }

    /// The step after reading the next command (or the end of the script); `Err` is an exit
    /// status.
    fn after_command(
        &mut self,
        next: Result<Option<Command>, String>,
        script: &Script,
    ) -> Result<Step, i32> {
        match next {
            Ok(Some(cmd)) => self.start(cmd).ok_or(EXIT_OK),
            Ok(None) if self.deadline.is_none() && !matches!(script, Script::None) => Err(EXIT_OK),
            Ok(None) => Ok(Step::Idle),
            Err(e) => {
                eprintln!("cromulent headless: {e}");
                self.print_line(events::run_error(RunError::BadScript, &e));
                Err(EXIT_USAGE)
            }
        }
    }

    /// Start a command; `None` means quit.
    fn start(&mut self, cmd: Command) -> Option<Step> {
        let send = |c| self.engine.send(c);
        match cmd {
            Command::Join(ch) => send(EngineCommand::Join(ChannelRef(ch))),
            Command::Leave => send(EngineCommand::Leave),
            Command::Talk(on) => self.set_talk(on),
            Command::Mute(on) => self.set_muted(on),
            Command::Deafen(on) => self.set_deafened(on),
            Command::Stats => send(EngineCommand::Stats),
            Command::Volume(who, percent) => {
                let user = self.world.user_id(&who).unwrap_or(&who).to_owned();
                send(EngineCommand::SetVolume { user, percent })
            }
            Command::Processing(stage, on) => send(EngineCommand::SetStage { stage, on }),
            Command::NoiseLevel(level) => send(EngineCommand::SetNoiseLevel(level)),
            Command::Say(text) => send(EngineCommand::Say {
                channel: None,
                text,
            }),
            Command::Quit => return None,
            Command::Sleep(d) => return Some(Step::Sleep(Instant::now() + d)),
            Command::Wait(cond, limit) => return Some(Step::Wait(cond, Instant::now() + limit)),
        }
        Some(Step::Next)
    }

    /// Leave, let the engine finish (the WAV file is completed), print what is left.
    async fn stop(&mut self) {
        self.engine.send(EngineCommand::Shutdown);
        let limit = Instant::now() + Duration::from_secs(5);
        loop {
            tokio::select! {
                ev = self.events.recv() => match ev {
                    Some(EngineEvent::Stopped) | None => break,
                    Some(ev) => self.print(&ev),
                },
                _ = sleep_until(limit) => break,
            }
        }
        // Give the last `leave` a moment to reach the server before the process exits.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    fn print(&mut self, ev: &EngineEvent) {
        let world = &self.world;
        for line in events::lines(ev, &|id| world.channel_name(id)) {
            let _ = writeln!(self.out, "{line}");
            if let Some(control) = &self.control {
                control.publish(&line);
            }
        }
        let _ = self.out.flush();
    }

    fn set_talk(&mut self, on: bool) {
        self.talk.set_talk(on);
        self.engine.send(EngineCommand::Talk(on));
    }

    fn set_muted(&mut self, on: bool) {
        self.talk.set_muted(on);
        self.status.muted = on;
        self.engine.send(EngineCommand::Mute(on));
    }

    fn set_deafened(&mut self, on: bool) {
        self.talk.set_deafened(on);
        self.status.deafened = on;
        self.engine.send(EngineCommand::Deafen(on));
    }

    /// A request from `cromulent ctl`: the same commands a script has.
    fn on_control(&mut self, incoming: Incoming) {
        let answer = match &incoming.request {
            Request::Talk(switch) => {
                let on = switch.apply(self.talk.talk());
                self.set_talk(on);
                "ok".to_owned()
            }
            Request::Mute(switch) => {
                let on = switch.apply(self.talk.muted());
                self.set_muted(on);
                "ok".to_owned()
            }
            Request::Deafen(switch) => {
                let on = switch.apply(self.talk.deafened());
                self.set_deafened(on);
                "ok".to_owned()
            }
            Request::Join(channel) => {
                self.engine
                    .send(EngineCommand::Join(ChannelRef(channel.clone())));
                "ok".to_owned()
            }
            Request::Leave => {
                self.engine.send(EngineCommand::Leave);
                "ok".to_owned()
            }
            Request::Say(text) => {
                self.engine.send(EngineCommand::Say {
                    channel: None,
                    text: text.clone(),
                });
                "ok".to_owned()
            }
            Request::Status { json: false } => self.status.line(),
            Request::Status { json: true } => self.status.json().to_string(),
            // Answered by the socket itself.
            Request::Events => "error: events is followed, not answered".to_owned(),
        };
        incoming.answer(answer);
    }

    fn print_line(&mut self, v: serde_json::Value) {
        let _ = writeln!(self.out, "{v}");
        let _ = self.out.flush();
    }
}

/// Read stdin on its own task so a quiet stdin never stalls the event loop.
fn stdin_lines() -> mpsc::UnboundedReceiver<Result<String, String>> {
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
        loop {
            let item = match lines.next_line().await {
                Ok(Some(line)) => Ok(line),
                Ok(None) => return,
                Err(e) => Err(format!("reading the script: {e}")),
            };
            if tx.send(item).is_err() {
                return;
            }
        }
    });
    rx
}

/// The next command from stdin; `Ok(None)` at the end of input.
async fn next_stdin_command(script: &mut Script) -> Result<Option<Command>, String> {
    let Script::Stdin(rx) = script else {
        return std::future::pending().await;
    };
    loop {
        let Some(line) = rx.recv().await else {
            return Ok(None);
        };
        if let Some(cmd) = script::parse_line(&line?)? {
            return Ok(Some(cmd));
        }
    }
}

fn describe(cond: &WaitFor) -> String {
    match cond {
        WaitFor::Connected => "connected".into(),
        WaitFor::Disconnected => "disconnected".into(),
        WaitFor::Peer(u) => format!("peer {u}"),
        WaitFor::Audio(u) => format!("audio from {u}"),
    }
}

async fn sleep_until_opt(t: Option<Instant>) {
    match t {
        Some(t) => sleep_until(t).await,
        None => std::future::pending().await,
    }
}

/// SIGINT/SIGTERM end the run cleanly (leave, finish the recording, exit 0).
fn signal_stream() -> mpsc::UnboundedReceiver<()> {
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            return;
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        let _ = tx.send(());
    });
    rx
}

#[cfg(test)]
mod tests {
    use super::server_is_loopback;

    #[test]
    fn loopback_servers_are_recognised() {
        assert!(server_is_loopback("ws://127.0.0.1:4000"));
        assert!(server_is_loopback("ws://localhost:4000/"));
        assert!(server_is_loopback("ws://[::1]:4000"));
        assert!(!server_is_loopback("wss://voice.example.org"));
        assert!(!server_is_loopback("ws://203.0.113.1:4000"));
    }
}
