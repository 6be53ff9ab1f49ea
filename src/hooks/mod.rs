//! Hooks: commands the user's config runs on events — someone joined or left your channel, a
//! message there, you were mentioned, the voice connection dropped or came back — e.g.
//! `notify-send`. The front ends (the TUI from `[hooks]` in its config, headless from `--hook
//! KIND=COMMAND`) hand every engine event to [`Hooks::on_event`]; what to run comes back as
//! [`Launch`]es, started by [`launch::start`].
//!
//! - [`trigger`]: which engine events are hook events (pure);
//! - [`limit`]: how often each hook may run (pure, in the caller's time);
//! - [`launch`]: the I/O — `sh -c COMMAND`, the event as JSON on stdin and in `CROMULENT_*`
//!   variables, a time limit, a cap on hooks running at once.
//!
//! Must never block the client: nothing here waits for a hook.

pub mod launch;
pub mod limit;
pub mod trigger;

use std::collections::BTreeMap;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::engine::EngineEvent;

pub use limit::Limiter;
pub use trigger::{HookEvent, Triggers};

/// The events a hook can be set for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HookKind {
    /// Someone joined the voice channel you are in.
    Joined,
    /// Someone left the voice channel you are in.
    Left,
    /// A message in the channel you are in (not yours, not one that mentions you).
    Message,
    /// A message (in any channel you follow) that mentions your name.
    Mentioned,
    /// The voice connection dropped (server lost, every peer failed, a refused join).
    Disconnected,
    /// Connected again after `disconnected`.
    Reconnected,
}

impl HookKind {
    pub const ALL: [HookKind; 6] = [
        Self::Joined,
        Self::Left,
        Self::Message,
        Self::Mentioned,
        Self::Disconnected,
        Self::Reconnected,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::Joined => "joined",
            Self::Left => "left",
            Self::Message => "message",
            Self::Mentioned => "mentioned",
            Self::Disconnected => "disconnected",
            Self::Reconnected => "reconnected",
        }
    }
}

impl std::str::FromStr for HookKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| {
                let names: Vec<_> = Self::ALL.iter().map(|k| k.name()).collect();
                format!("no hook event {s:?}; one of {}", names.join(", "))
            })
    }
}

/// Each hook runs at most this many times a minute unless configured.
pub const DEFAULT_PER_MINUTE: u32 = 10;

/// The `[hooks]` table of the config file.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct HooksFile {
    pub joined: Option<String>,
    pub left: Option<String>,
    pub message: Option<String>,
    pub mentioned: Option<String>,
    pub disconnected: Option<String>,
    pub reconnected: Option<String>,
    /// Runs of each hook per minute, at most (default [`DEFAULT_PER_MINUTE`]).
    pub per_minute: Option<u32>,
}

/// Which command runs for which event, and how often at most.
#[derive(Debug, Clone, PartialEq)]
pub struct HookConfig {
    pub commands: BTreeMap<HookKind, String>,
    pub per_minute: u32,
}

impl Default for HookConfig {
    fn default() -> Self {
        Self {
            commands: BTreeMap::new(),
            per_minute: DEFAULT_PER_MINUTE,
        }
    }
}

impl HookConfig {
    pub fn from_file(file: &HooksFile) -> Result<Self, String> {
        let mut config = Self::default();
        if let Some(n) = file.per_minute {
            config.per_minute = n;
        }
        let set = [
            (HookKind::Joined, &file.joined),
            (HookKind::Left, &file.left),
            (HookKind::Message, &file.message),
            (HookKind::Mentioned, &file.mentioned),
            (HookKind::Disconnected, &file.disconnected),
            (HookKind::Reconnected, &file.reconnected),
        ];
        for (kind, command) in set {
            if let Some(command) = command {
                config.add(kind, command)?;
            }
        }
        Ok(config)
    }

    /// `KIND=COMMAND`, as `cromulent headless --hook` takes it.
    pub fn add_arg(&mut self, arg: &str) -> Result<(), String> {
        let (kind, command) = arg
            .split_once('=')
            .ok_or_else(|| format!("--hook {arg:?}: expected KIND=COMMAND"))?;
        self.add(kind.trim().parse()?, command)
    }

    fn add(&mut self, kind: HookKind, command: &str) -> Result<(), String> {
        if command.trim().is_empty() {
            return Err(format!("hook {}: the command is empty", kind.name()));
        }
        if command.contains('\0') {
            return Err(format!("hook {}: the command holds a NUL", kind.name()));
        }
        self.commands.insert(kind, command.to_owned());
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.commands.is_empty()
    }
}

/// A hook to start now.
#[derive(Debug, Clone, PartialEq)]
pub struct Launch {
    pub command: String,
    pub event: HookEvent,
    /// Events of this kind dropped by the rate limit since the last launch.
    pub dropped: u32,
}

/// The hooks of one client: the trigger rules, the limit, the commands. Pure.
#[derive(Debug)]
pub struct Hooks {
    config: HookConfig,
    triggers: Triggers,
    limiter: Limiter,
}

impl Hooks {
    /// `me` is our display name (for mentions).
    pub fn new(config: HookConfig, me: &str) -> Self {
        let limiter = Limiter::new(config.per_minute);
        Self {
            config,
            triggers: Triggers::new(me),
            limiter,
        }
    }

    /// What to start for this engine event, `now`.
    pub fn on_event(&mut self, event: &EngineEvent, now: Instant) -> Vec<Launch> {
        if self.config.is_empty() {
            return Vec::new();
        }
        let mut out = Vec::new();
        for event in self.triggers.on_event(event) {
            let Some(command) = self.config.commands.get(&event.kind) else {
                continue;
            };
            if let Some(dropped) = self.limiter.admit(event.kind, now) {
                out.push(Launch {
                    command: command.clone(),
                    event,
                    dropped,
                });
            }
        }
        out
    }
}

#[cfg(test)]
mod tests;
