//! The TUI's settings: command-line flags over the config file over defaults.
//!
//! The file is TOML at `$XDG_CONFIG_HOME/cromulent/config.toml` (else
//! `~/.config/cromulent/config.toml`), or wherever `--config` / `CROMULENT_CONFIG` says. A
//! missing default file is fine; a missing file that was named is an error. Every key is shown
//! in `docs/TUI.md` (a test parses that example). Resolving is pure: the environment comes in as
//! a function, so tests never touch the process's.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use clap::Args;
use serde::Deserialize;

use super::keys::{KeyError, KeyMap};
use crate::audio::processing::{NoiseLevel, Processing};
use crate::audio::{FRAME_MS, FrameSize, SinkSpec, SourceSpec, VoiceActivity};
use crate::engine::{EngineConfig, IcePolicy, TalkMode};
use crate::hooks::{HookConfig, HooksFile};
use crate::signaling::Credentials;

/// Options of the terminal client (`cromulent` with no subcommand, and `cromulent demo`).
#[derive(Args, Debug, Clone, Default)]
pub struct TuiArgs {
    /// Server URL: ws://HOST:PORT or wss://HOST[:PORT]. [config: server]
    #[arg(long, value_name = "URL")]
    pub server: Option<String>,
    /// Your display name (your identity on an open server). [config: user; default: $USER]
    #[arg(long, value_name = "NAME")]
    pub user: Option<String>,
    /// Token for a server in token mode. [config: token]
    #[arg(long, env = "CROMULENT_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Config file. [default: ~/.config/cromulent/config.toml]
    #[arg(long, env = "CROMULENT_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Join this voice channel at start: a name or an id. [config: join]
    #[arg(long, value_name = "CHANNEL")]
    pub join: Option<String>,
    /// How the mic opens: ptt (push-to-talk), vad (voice activity) or open. [config:
    /// talk_mode; default: ptt]
    #[arg(long, value_name = "MODE")]
    pub talk_mode: Option<TalkMode>,
    /// ICE candidates to use: all, or relay (through TURN only). [config: ice_policy]
    #[arg(long, value_name = "POLICY")]
    pub ice_policy: Option<IcePolicy>,
    /// Also trust the CA certificates in this PEM file for wss:// and turns: (a private CA;
    /// the system's roots are trusted anyway). [config: ca_file]
    #[arg(long, env = "CROMULENT_CA_FILE", value_name = "FILE")]
    pub ca_file: Option<PathBuf>,
    /// Microphone: a name from --list-devices (pulse:NAME, alsa:NAME or bare). [config:
    /// audio.input_device]
    #[arg(long, value_name = "NAME")]
    pub input_device: Option<String>,
    /// Speaker: a name from --list-devices (pulse:NAME, alsa:NAME or bare). [config:
    /// audio.output_device]
    #[arg(long, value_name = "NAME")]
    pub output_device: Option<String>,
    /// Audio frame length in ms: 20; 10 for less delay at twice the packets; 5 for the
    /// low-delay mode (CELT only: no in-band FEC, four times the packets; for clean links).
    /// Peers may use any. [config: audio.frame_ms; default: 20]
    #[arg(long, value_name = "MS")]
    pub frame_ms: Option<FrameSize>,
    /// Print the sound devices and exit.
    #[arg(long)]
    pub list_devices: bool,
    /// Log file (logs never go to the screen). [config: log_file; default:
    /// ~/.local/state/cromulent/cromulent.log]
    #[arg(long, value_name = "FILE")]
    pub log_file: Option<PathBuf>,
    /// Draw with ASCII only (no box lines, dots or arrows), for terminals or fonts without
    /// them. [config: ascii]
    #[arg(long)]
    pub ascii: bool,
    /// The control socket for `cromulent ctl`: a path, or `off`. Default:
    /// $XDG_RUNTIME_DIR/cromulent/ctl-PID.sock.
    #[arg(long, value_name = "PATH|off")]
    pub ctl: Option<PathBuf>,
}

/// The config file, as written.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct FileConfig {
    pub server: Option<String>,
    pub user: Option<String>,
    pub token: Option<String>,
    pub join: Option<String>,
    pub talk_mode: Option<String>,
    pub ice_policy: Option<String>,
    pub ca_file: Option<PathBuf>,
    pub log_file: Option<PathBuf>,
    pub ascii: Option<bool>,
    pub audio: AudioFile,
    pub voice_activity: VoiceActivityFile,
    pub processing: ProcessingFile,
    /// Action name → keys, e.g. `talk = ["space", "f1"]`.
    pub keys: BTreeMap<String, Vec<String>>,
    /// Event → command, e.g. `mentioned = "notify-send …"` ([`crate::hooks`]).
    pub hooks: HooksFile,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct AudioFile {
    pub input_device: Option<String>,
    pub output_device: Option<String>,
    pub frame_ms: Option<u32>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct VoiceActivityFile {
    pub threshold_dbfs: Option<f32>,
    pub hangover_ms: Option<u32>,
}

/// Capture processing stages at start (all on unless turned off here; keys toggle them).
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ProcessingFile {
    pub echo_cancellation: Option<bool>,
    pub noise_suppression: Option<bool>,
    /// `strong` (the default: a second suppressor, 10 ms more delay) or `high`.
    pub noise_suppression_level: Option<NoiseLevel>,
    pub gain_control: Option<bool>,
    pub voice_detection: Option<bool>,
}

impl ProcessingFile {
    fn resolve(&self) -> Processing {
        let on = |v: Option<bool>| v.unwrap_or(true);
        Processing {
            echo: on(self.echo_cancellation),
            noise: on(self.noise_suppression),
            gain: on(self.gain_control),
            voice: on(self.voice_detection),
            noise_level: self.noise_suppression_level.unwrap_or_default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Parse { path: String, message: String },
    #[error(
        "no server given: pass --server ws://HOST:PORT or set `server` in {0} (or try `cromulent demo`)"
    )]
    NoServer(String),
    #[error("no user name: pass --user NAME or set `user` in the config file")]
    NoUser,
    #[error("{0}")]
    Invalid(String),
    #[error("[keys]: {0}")]
    Keys(#[from] KeyError),
}

/// Everything the TUI runs with, resolved.
#[derive(Debug, Clone)]
pub struct Settings {
    pub server_url: String,
    pub user: String,
    pub token: Option<String>,
    pub join: Option<String>,
    pub talk_mode: TalkMode,
    pub ice_policy: IcePolicy,
    /// A private CA's certificates to trust besides the system's roots ([`crate::tls`]).
    pub ca_file: Option<PathBuf>,
    pub input_device: Option<String>,
    pub output_device: Option<String>,
    pub frame: FrameSize,
    pub vad_threshold_dbfs: f32,
    /// Capture processing stages at start.
    pub processing: Processing,
    pub vad_hangover_frames: u32,
    pub log_file: PathBuf,
    pub keys: KeyMap,
    /// The config file that was read, if any (for the help screen and logs).
    pub config_path: Option<PathBuf>,
    /// `NO_COLOR` is set (to anything but nothing): draw without colours (https://no-color.org).
    pub no_color: bool,
    /// Draw with ASCII only (`--ascii` or `ascii = true`).
    pub ascii: bool,
    /// `--ctl`: the control socket's path, or `off` (`None`: the default path).
    pub ctl: Option<PathBuf>,
    /// `[hooks]`: commands run on events.
    pub hooks: HookConfig,
    /// Where per-user volumes are remembered ([`super::volumes`]).
    pub volumes_file: PathBuf,
}

/// Reads the environment for resolving: `HOME`, `XDG_CONFIG_HOME`, `XDG_STATE_HOME`, `USER`,
/// `NO_COLOR`.
pub type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

/// The config file to read and whether it was named explicitly.
pub fn config_path(args: &TuiArgs, env: Env) -> (Option<PathBuf>, bool) {
    if let Some(p) = &args.config {
        return (Some(p.clone()), true);
    }
    let dir = env("XDG_CONFIG_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| env("HOME").map(|h| Path::new(&h).join(".config")));
    (dir.map(|d| d.join("cromulent").join("config.toml")), false)
}

/// Read the config file named by `args` (or the default one, if it exists).
pub fn load_file(args: &TuiArgs, env: Env) -> Result<(FileConfig, Option<PathBuf>), ConfigError> {
    let (path, explicit) = config_path(args, env);
    let Some(path) = path else {
        return Ok((FileConfig::default(), None));
    };
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok((parse_file(&text, &path.display().to_string())?, Some(path))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => {
            Ok((FileConfig::default(), None))
        }
        Err(source) => Err(ConfigError::Read {
            path: path.display().to_string(),
            source,
        }),
    }
}

pub fn parse_file(text: &str, origin: &str) -> Result<FileConfig, ConfigError> {
    toml::from_str(text).map_err(|e| ConfigError::Parse {
        path: origin.to_owned(),
        message: e.to_string(),
    })
}

/// The default log file: `$XDG_STATE_HOME/cromulent/cromulent.log`, else under
/// `~/.local/state`, else the temporary directory.
pub fn default_log_file(env: Env) -> PathBuf {
    state_dir(env).join("cromulent.log")
}

/// The client's state directory: `$XDG_STATE_HOME/cromulent`, else `~/.local/state/cromulent`,
/// else under the temporary directory. The log and the remembered volumes live there.
pub fn state_dir(env: Env) -> PathBuf {
    env("XDG_STATE_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| env("HOME").map(|h| Path::new(&h).join(".local").join("state")))
        .unwrap_or_else(std::env::temp_dir)
        .join("cromulent")
}

impl Settings {
    /// Flags over file over defaults. `server_override` is for `cromulent demo`, which runs
    /// its own server.
    pub fn resolve(
        args: &TuiArgs,
        file: FileConfig,
        config_path: Option<PathBuf>,
        server_override: Option<String>,
        env: Env,
    ) -> Result<Settings, ConfigError> {
        let server_url = server_override
            .or_else(|| args.server.clone())
            .or(file.server)
            .ok_or_else(|| {
                let where_ = config_path
                    .clone()
                    .or_else(|| config_path_default(env))
                    .map(|p| p.display().to_string())
                    .unwrap_or_else(|| "the config file".into());
                ConfigError::NoServer(where_)
            })?;
        let user = args
            .user
            .clone()
            .or(file.user)
            .or_else(|| env("USER"))
            .filter(|u| !u.trim().is_empty())
            .ok_or(ConfigError::NoUser)?;
        let talk_mode = match (args.talk_mode, file.talk_mode) {
            (Some(m), _) => m,
            (None, Some(text)) => text
                .parse()
                .map_err(|e: String| ConfigError::Invalid(format!("talk_mode: {e}")))?,
            (None, None) => TalkMode::PushToTalk,
        };
        let ice_policy = match (args.ice_policy, file.ice_policy) {
            (Some(p), _) => p,
            (None, Some(text)) => text
                .parse()
                .map_err(|e: String| ConfigError::Invalid(format!("ice_policy: {e}")))?,
            (None, None) => IcePolicy::All,
        };
        let threshold = file
            .voice_activity
            .threshold_dbfs
            .unwrap_or(VoiceActivity::DEFAULT_THRESHOLD_DBFS);
        if !(-100.0..=0.0).contains(&threshold) {
            return Err(ConfigError::Invalid(format!(
                "voice_activity.threshold_dbfs = {threshold}: use -100..=0 (speech is about -30)"
            )));
        }
        let frame = match (args.frame_ms, file.audio.frame_ms) {
            (Some(f), _) => f,
            (None, Some(ms)) => ms
                .to_string()
                .parse()
                .map_err(|e: String| ConfigError::Invalid(format!("audio.frame_ms: {e}")))?,
            (None, None) => FrameSize::default(),
        };
        let default_hangover_ms = VoiceActivity::DEFAULT_HANGOVER_FRAMES * FRAME_MS;
        let hangover_ms = file
            .voice_activity
            .hangover_ms
            .unwrap_or(default_hangover_ms);
        if hangover_ms > 5_000 {
            return Err(ConfigError::Invalid(format!(
                "voice_activity.hangover_ms = {hangover_ms}: use 0..=5000"
            )));
        }
        Ok(Settings {
            server_url,
            user,
            token: args.token.clone().or(file.token),
            join: args.join.clone().or(file.join),
            talk_mode,
            ice_policy,
            ca_file: args.ca_file.clone().or(file.ca_file),
            input_device: args.input_device.clone().or(file.audio.input_device),
            output_device: args.output_device.clone().or(file.audio.output_device),
            frame,
            vad_threshold_dbfs: threshold,
            vad_hangover_frames: hangover_ms / frame.ms(),
            processing: file.processing.resolve(),
            log_file: args
                .log_file
                .clone()
                .or(file.log_file)
                .unwrap_or_else(|| default_log_file(env)),
            keys: KeyMap::with_overrides(&file.keys)?,
            config_path,
            no_color: env("NO_COLOR").is_some_and(|v| !v.is_empty()),
            ascii: args.ascii || file.ascii.unwrap_or(false),
            ctl: args.ctl.clone(),
            volumes_file: super::volumes::file_in(&state_dir(env)),
            hooks: HookConfig::from_file(&file.hooks)
                .map_err(|e| ConfigError::Invalid(format!("[hooks]: {e}")))?,
        })
    }

    /// Read the config file and resolve.
    pub fn load(
        args: &TuiArgs,
        server_override: Option<String>,
        env: Env,
    ) -> Result<Settings, ConfigError> {
        let (file, path) = load_file(args, env)?;
        Self::resolve(args, file, path, server_override, env)
    }

    /// The engine's configuration (the audio specs describe the devices; the TUI opens them
    /// itself so it can show what it got).
    pub fn engine_config(&self) -> EngineConfig {
        EngineConfig {
            server_url: self.server_url.clone(),
            credentials: Credentials {
                name: self.user.clone(),
                token: self.token.clone(),
            },
            talk_mode: self.talk_mode,
            ice_policy: self.ice_policy,
            audio_in: SourceSpec::Device {
                name: self.input_device.clone(),
            },
            audio_out: SinkSpec::Device {
                name: self.output_device.clone(),
            },
            loopback_only: is_loopback_url(&self.server_url),
            frame: self.frame,
            processing: self.processing,
            ice_refresh: true,
        }
    }
}

fn config_path_default(env: Env) -> Option<PathBuf> {
    config_path(&TuiArgs::default(), env).0
}

/// Loopback servers mean everyone is on this machine (the demo, tests): gather ICE on
/// loopback only.
pub fn is_loopback_url(url: &str) -> bool {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tui::keys::Action;

    fn env_of(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |k| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    const ENV: &[(&str, &str)] = &[("HOME", "/home/ann"), ("USER", "ann")];

    #[test]
    fn flags_beat_the_file_which_beats_defaults() {
        let file = parse_file(
            r#"
            server = "ws://file:4000"
            user = "fileuser"
            talk_mode = "vad"
            [audio]
            input_device = "USB"
            [voice_activity]
            threshold_dbfs = -50
            hangover_ms = 400
            [keys]
            talk = ["f1"]
            "#,
            "test",
        )
        .unwrap();
        let args = TuiArgs {
            server: Some("ws://flag:1".into()),
            talk_mode: Some(TalkMode::Open),
            ..TuiArgs::default()
        };
        let env = env_of(ENV);
        let s = Settings::resolve(&args, file, None, None, &env).unwrap();
        assert_eq!(s.server_url, "ws://flag:1");
        assert_eq!(s.user, "fileuser");
        assert_eq!(s.talk_mode, TalkMode::Open);
        assert_eq!(s.input_device.as_deref(), Some("USB"));
        assert_eq!(s.output_device, None);
        assert_eq!((s.vad_threshold_dbfs, s.vad_hangover_frames), (-50.0, 20));
        assert_eq!(s.keys.label(Action::Talk), "F1");
        assert_eq!(
            s.log_file,
            PathBuf::from("/home/ann/.local/state/cromulent/cromulent.log")
        );
    }

    #[test]
    fn no_color_is_any_non_empty_value() {
        let args = TuiArgs {
            server: Some("ws://127.0.0.1:4000".into()),
            ..TuiArgs::default()
        };
        let resolve = |env: &'static [(&'static str, &'static str)]| {
            let env = env_of(env);
            Settings::resolve(&args, FileConfig::default(), None, None, &env)
                .unwrap()
                .no_color
        };
        assert!(!resolve(ENV));
        assert!(!resolve(&[("USER", "ann"), ("NO_COLOR", "")]));
        assert!(resolve(&[("USER", "ann"), ("NO_COLOR", "1")]));
    }

    #[test]
    fn defaults_and_user_from_the_environment() {
        let args = TuiArgs {
            server: Some("ws://127.0.0.1:4000".into()),
            ..TuiArgs::default()
        };
        let env = env_of(ENV);
        let s = Settings::resolve(&args, FileConfig::default(), None, None, &env).unwrap();
        assert_eq!(s.user, "ann");
        assert_eq!(s.talk_mode, TalkMode::PushToTalk);
        assert_eq!(s.ice_policy, IcePolicy::All);
        assert_eq!(
            s.vad_hangover_frames,
            VoiceActivity::DEFAULT_HANGOVER_FRAMES
        );
        assert!(s.engine_config().loopback_only);
    }

    #[test]
    fn missing_server_says_where_to_put_it() {
        let env = env_of(ENV);
        let err = Settings::resolve(&TuiArgs::default(), FileConfig::default(), None, None, &env)
            .unwrap_err()
            .to_string();
        assert!(err.contains("--server"), "{err}");
        assert!(
            err.contains("/home/ann/.config/cromulent/config.toml"),
            "{err}"
        );
        // The demo supplies its own.
        let s = Settings::resolve(
            &TuiArgs::default(),
            FileConfig::default(),
            None,
            Some("ws://127.0.0.1:9".into()),
            &env,
        )
        .unwrap();
        assert_eq!(s.server_url, "ws://127.0.0.1:9");
    }

    #[test]
    fn bad_values_are_refused_with_reasons() {
        let env = env_of(ENV);
        let args = TuiArgs {
            server: Some("ws://x".into()),
            ..TuiArgs::default()
        };
        let cases = [
            ("talk_mode = \"loud\"", "talk_mode"),
            ("ice_policy = \"some\"", "ice_policy"),
            ("[voice_activity]\nthreshold_dbfs = 10", "threshold_dbfs"),
            ("[voice_activity]\nhangover_ms = 99999", "hangover_ms"),
            ("[keys]\nmute = [\"space\"]", "bound to both"),
            ("[keys]\nmute = [\"hyper-m\"]", "unknown key"),
        ];
        for (text, expected) in cases {
            let file = parse_file(text, "t").unwrap();
            let err = Settings::resolve(&args, file, None, None, &env)
                .unwrap_err()
                .to_string();
            assert!(err.contains(expected), "{text}: {err}");
        }
        let err = parse_file("colour = \"blue\"", "cfg.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("cfg.toml") && err.contains("colour"), "{err}");
    }

    #[test]
    fn config_path_from_flag_xdg_or_home() {
        let env = env_of(ENV);
        assert_eq!(
            config_path(&TuiArgs::default(), &env),
            (
                Some(PathBuf::from("/home/ann/.config/cromulent/config.toml")),
                false
            )
        );
        let xdg = env_of(&[("XDG_CONFIG_HOME", "/x"), ("HOME", "/h")]);
        assert_eq!(
            config_path(&TuiArgs::default(), &xdg).0,
            Some(PathBuf::from("/x/cromulent/config.toml"))
        );
        let args = TuiArgs {
            config: Some("/etc/c.toml".into()),
            ..TuiArgs::default()
        };
        assert_eq!(
            config_path(&args, &env),
            (Some(PathBuf::from("/etc/c.toml")), true)
        );
    }

    #[test]
    fn an_explicit_missing_file_is_an_error_a_missing_default_is_not() {
        let env = env_of(&[("HOME", "/nonexistent-home")]);
        assert!(load_file(&TuiArgs::default(), &env).unwrap().1.is_none());
        let args = TuiArgs {
            config: Some("/nonexistent-dir/cromulent.toml".into()),
            ..TuiArgs::default()
        };
        let err = load_file(&args, &env).unwrap_err().to_string();
        assert!(err.contains("/nonexistent-dir/cromulent.toml"), "{err}");
    }

    #[test]
    fn the_low_delay_frame_size_comes_from_the_file_or_the_flag() {
        let env = env_of(ENV);
        let resolve = |file: &str, args: &TuiArgs| {
            let file = parse_file(file, "test").unwrap();
            Settings::resolve(args, file, None, None, &env).map(|s| s.frame)
        };
        let five = "server = \"ws://h:1\"\n[audio]\nframe_ms = 5\n";
        assert_eq!(resolve(five, &TuiArgs::default()).unwrap(), FrameSize::Ms5);
        let flag = TuiArgs {
            frame_ms: Some(FrameSize::Ms20),
            ..TuiArgs::default()
        };
        assert_eq!(
            resolve(five, &flag).unwrap(),
            FrameSize::Ms20,
            "the flag wins"
        );
        let odd = "server = \"ws://h:1\"\n[audio]\nframe_ms = 15\n";
        let err = resolve(odd, &TuiArgs::default()).unwrap_err().to_string();
        assert!(
            err.contains("audio.frame_ms") && err.contains("5, 10 or 20"),
            "{err}"
        );
    }

    #[test]
    fn the_documented_example_config_parses_and_resolves() {
        let doc = include_str!("../../docs/TUI.md");
        let start = doc
            .find("```toml\n")
            .expect("docs/TUI.md has a ```toml block")
            + 8;
        let len = doc[start..].find("```").expect("closed block");
        let file = parse_file(&doc[start..start + len], "docs/TUI.md").unwrap();
        assert!(file.server.is_some(), "the example shows every key");
        assert!(file.audio.input_device.is_some() && file.voice_activity.hangover_ms.is_some());
        assert!(file.audio.frame_ms.is_some());
        assert_eq!(
            file.keys.len(),
            Action::ALL.len(),
            "every action's keys are shown"
        );
        let env = env_of(ENV);
        let s = Settings::resolve(&TuiArgs::default(), file, None, None, &env).unwrap();
        assert_eq!(s.frame, FrameSize::default());
        assert_eq!(
            s.processing,
            Processing::ALL,
            "every stage on, as by default"
        );
        let off = parse_file(
            "server = \"ws://h:1\"\n[processing]\necho_cancellation = false\nvoice_detection = false\n",
            "t",
        )
        .unwrap();
        let off = Settings::resolve(&TuiArgs::default(), off, None, None, &env).unwrap();
        assert_eq!(off.processing.to_string(), "noise gain");
        assert_eq!(off.engine_config().processing, off.processing);
        for action in Action::ALL {
            assert_eq!(
                s.keys.keys(action),
                KeyMap::default().keys(action),
                "the example shows the default keys of {action:?}"
            );
        }
    }

    #[test]
    fn loopback_urls_are_recognised() {
        assert!(is_loopback_url("ws://127.0.0.1:4000"));
        assert!(is_loopback_url("ws://localhost:4000/"));
        assert!(is_loopback_url("ws://[::1]:4000"));
        assert!(!is_loopback_url("wss://voice.example.org"));
    }
}
