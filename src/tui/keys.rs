//! The key map: which key does what. Pure data, configurable from the `[keys]` table of the
//! config file (`join = ["enter", "l"]`), and the one place that knows how a key is written
//! (`"ctrl-c"`, `"space"`, `"?"`).
//!
//! Never looks at the terminal: it maps crossterm's plain `KeyEvent` values, which tests build
//! by hand.

use std::collections::BTreeMap;
use std::fmt;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

/// What a key can ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Action {
    Up,
    Down,
    Join,
    Leave,
    /// Push-to-talk: hold (or toggle, where the terminal cannot report key release).
    Talk,
    Mute,
    Deafen,
    /// Push-to-talk → voice activity → open mic → push-to-talk.
    CycleTalkMode,
    /// Open the chat input line (keys type until Esc).
    Chat,
    /// Scroll the chat towards older / newer messages.
    ChatOlder,
    ChatNewer,
    /// Select the next person in the peers panel (for the volume keys).
    PeerNext,
    /// The selected peer louder / quieter (0–200 %), or muted for you alone.
    VolumeUp,
    VolumeDown,
    PeerMute,
    /// Capture processing stages on / off.
    EchoCancellation,
    NoiseSuppression,
    /// The noise suppression's level: strong / high.
    NoiseLevel,
    GainControl,
    VoiceDetection,
    Help,
    Quit,
}

impl Action {
    pub const ALL: [Action; 22] = [
        Action::Up,
        Action::Down,
        Action::Join,
        Action::Leave,
        Action::Talk,
        Action::Mute,
        Action::Deafen,
        Action::CycleTalkMode,
        Action::Chat,
        Action::ChatOlder,
        Action::ChatNewer,
        Action::PeerNext,
        Action::VolumeUp,
        Action::VolumeDown,
        Action::PeerMute,
        Action::EchoCancellation,
        Action::NoiseSuppression,
        Action::NoiseLevel,
        Action::GainControl,
        Action::VoiceDetection,
        Action::Help,
        Action::Quit,
    ];

    /// The name used in the `[keys]` table of the config file.
    pub fn config_name(self) -> &'static str {
        match self {
            Action::Up => "up",
            Action::Down => "down",
            Action::Join => "join",
            Action::Leave => "leave",
            Action::Talk => "talk",
            Action::Mute => "mute",
            Action::Deafen => "deafen",
            Action::CycleTalkMode => "talk_mode",
            Action::Chat => "chat",
            Action::ChatOlder => "chat_older",
            Action::ChatNewer => "chat_newer",
            Action::PeerNext => "peer_next",
            Action::VolumeUp => "volume_up",
            Action::VolumeDown => "volume_down",
            Action::PeerMute => "peer_mute",
            Action::EchoCancellation => "echo_cancellation",
            Action::NoiseSuppression => "noise_suppression",
            Action::NoiseLevel => "noise_level",
            Action::GainControl => "gain_control",
            Action::VoiceDetection => "voice_detection",
            Action::Help => "help",
            Action::Quit => "quit",
        }
    }

    /// What the help overlay says it does.
    pub fn description(self) -> &'static str {
        match self {
            Action::Up => "select the channel above",
            Action::Down => "select the channel below",
            Action::Join => "join the selected channel (switches if in one)",
            Action::Leave => "leave the voice channel",
            Action::Talk => "push-to-talk (hold, or toggle where the terminal can't tell)",
            Action::Mute => "mute / unmute the microphone",
            Action::Deafen => "deafen / undeafen (hear nobody, be heard by nobody)",
            Action::CycleTalkMode => "talk mode: push-to-talk → voice activity → open mic",
            Action::Chat => "write in the selected channel's chat (Enter sends, Esc leaves)",
            Action::ChatOlder => "scroll the chat back (loads older messages)",
            Action::ChatNewer => "scroll the chat forward",
            Action::PeerNext => "select the next person in the peers panel",
            Action::VolumeUp => "the selected person louder (up to 200 %)",
            Action::VolumeDown => "the selected person quieter (down to 0 %)",
            Action::PeerMute => "mute / unmute the selected person, for you alone",
            Action::EchoCancellation => "echo cancellation on / off (speakers, not a headset)",
            Action::NoiseSuppression => "noise suppression on / off",
            Action::NoiseLevel => "noise suppression strong / high (high: 10 ms less delay)",
            Action::GainControl => "automatic gain on / off (quiet voices up, loud ones down)",
            Action::VoiceDetection => {
                "voice activity from speech detection / from the level threshold"
            }
            Action::Help => "show / hide this help",
            Action::Quit => "quit",
        }
    }

    fn from_config_name(name: &str) -> Option<Action> {
        Action::ALL.into_iter().find(|a| a.config_name() == name)
    }

    fn default_keys(self) -> &'static [&'static str] {
        match self {
            Action::Up => &["up", "k"],
            Action::Down => &["down", "j"],
            Action::Join => &["enter"],
            Action::Leave => &["x"],
            Action::Talk => &["space"],
            Action::Mute => &["m"],
            Action::Deafen => &["d"],
            Action::CycleTalkMode => &["t"],
            Action::Chat => &["c", "/"],
            Action::ChatOlder => &["pageup"],
            Action::ChatNewer => &["pagedown"],
            Action::PeerNext => &["tab"],
            Action::VolumeUp => &["+", "="],
            Action::VolumeDown => &["-"],
            Action::PeerMute => &["M"],
            Action::EchoCancellation => &["E"],
            Action::NoiseSuppression => &["N"],
            Action::NoiseLevel => &["L"],
            Action::GainControl => &["G"],
            Action::VoiceDetection => &["V"],
            Action::Help => &["?"],
            Action::Quit => &["q"],
        }
    }
}

/// One key as written in the config file: a code plus Ctrl/Alt. Shift is part of the
/// character (`"K"`, `"?"`), never a modifier, because terminals disagree on reporting it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Key {
    pub code: KeyCode,
    pub ctrl: bool,
    pub alt: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error(
        "unknown key {0:?}: use a character (\"m\", \"?\"), a name (space, enter, esc, tab, backspace, up, down, left, right, home, end, pageup, pagedown, delete, insert, f1…f12), optionally with ctrl- or alt-"
    )]
    Unknown(String),
    #[error("unknown action {0:?} in [keys]: use one of {1}")]
    UnknownAction(String, String),
    #[error("key {key} is bound to both {first} and {second}")]
    Conflict {
        key: String,
        first: &'static str,
        second: &'static str,
    },
    #[error("no key left for {0}: give it at least one")]
    Unbound(&'static str),
}

impl Key {
    /// Parse `"ctrl-c"`, `"space"`, `"?"`, `"F5"`, `"alt-enter"`.
    pub fn parse(text: &str) -> Result<Key, KeyError> {
        let unknown = || KeyError::Unknown(text.to_owned());
        let mut rest = text.trim();
        let (mut ctrl, mut alt) = (false, false);
        loop {
            let lower = rest.to_ascii_lowercase();
            if rest.len() > 5 && (lower.starts_with("ctrl-") || lower.starts_with("ctrl+")) {
                ctrl = true;
                rest = &rest[5..];
            } else if rest.len() > 4 && (lower.starts_with("alt-") || lower.starts_with("alt+")) {
                alt = true;
                rest = &rest[4..];
            } else {
                break;
            }
        }
        let mut chars = rest.chars();
        let code = match (chars.next(), chars.next()) {
            (Some(c), None) => KeyCode::Char(if ctrl { c.to_ascii_lowercase() } else { c }),
            (None, _) => return Err(unknown()),
            _ => named_key(&rest.to_ascii_lowercase()).ok_or_else(unknown)?,
        };
        Ok(Key { code, ctrl, alt })
    }

    /// The key a terminal event is, with Shift folded into the character.
    pub fn of(event: &KeyEvent) -> Key {
        let ctrl = event.modifiers.contains(KeyModifiers::CONTROL);
        let code = match event.code {
            // Ctrl+letter arrives lower- or upper-case depending on the terminal.
            KeyCode::Char(c) if ctrl => KeyCode::Char(c.to_ascii_lowercase()),
            code => code,
        };
        Key {
            code,
            ctrl,
            alt: event.modifiers.contains(KeyModifiers::ALT),
        }
    }
}

fn named_key(name: &str) -> Option<KeyCode> {
    Some(match name {
        "space" => KeyCode::Char(' '),
        "enter" | "return" => KeyCode::Enter,
        "esc" | "escape" => KeyCode::Esc,
        "tab" => KeyCode::Tab,
        "backspace" => KeyCode::Backspace,
        "up" => KeyCode::Up,
        "down" => KeyCode::Down,
        "left" => KeyCode::Left,
        "right" => KeyCode::Right,
        "home" => KeyCode::Home,
        "end" => KeyCode::End,
        "pageup" => KeyCode::PageUp,
        "pagedown" => KeyCode::PageDown,
        "delete" | "del" => KeyCode::Delete,
        "insert" | "ins" => KeyCode::Insert,
        _ => {
            let n: u8 = name.strip_prefix('f')?.parse().ok()?;
            if !(1..=12).contains(&n) {
                return None;
            }
            KeyCode::F(n)
        }
    })
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.ctrl {
            f.write_str("ctrl-")?;
        }
        if self.alt {
            f.write_str("alt-")?;
        }
        match self.code {
            KeyCode::Char(' ') => f.write_str("space"),
            KeyCode::Char(c) => write!(f, "{c}"),
            KeyCode::Enter => f.write_str("enter"),
            KeyCode::Esc => f.write_str("esc"),
            KeyCode::Tab => f.write_str("tab"),
            KeyCode::Backspace => f.write_str("backspace"),
            KeyCode::Up => f.write_str("↑"),
            KeyCode::Down => f.write_str("↓"),
            KeyCode::Left => f.write_str("←"),
            KeyCode::Right => f.write_str("→"),
            KeyCode::Home => f.write_str("home"),
            KeyCode::End => f.write_str("end"),
            KeyCode::PageUp => f.write_str("pageup"),
            KeyCode::PageDown => f.write_str("pagedown"),
            KeyCode::Delete => f.write_str("delete"),
            KeyCode::Insert => f.write_str("insert"),
            KeyCode::F(n) => write!(f, "F{n}"),
            other => write!(f, "{other:?}"),
        }
    }
}

/// Which keys do what. Ctrl-C always quits, whatever the map says: a way out that no config
/// can take away.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyMap {
    bindings: Vec<(Key, Action)>,
}

impl Default for KeyMap {
    fn default() -> Self {
        let bindings = Action::ALL
            .into_iter()
            .flat_map(|a| {
                a.default_keys()
                    .iter()
                    // The defaults are literals tested below: they always parse.
                    .map(move |k| (Key::parse(k).expect("default key parses"), a))
            })
            .collect();
        Self { bindings }
    }
}

impl KeyMap {
    /// The defaults with some actions rebound: each entry replaces that action's keys.
    pub fn with_overrides(overrides: &BTreeMap<String, Vec<String>>) -> Result<Self, KeyError> {
        let mut map = Self::default();
        for (name, keys) in overrides {
            let action = Action::from_config_name(name).ok_or_else(|| {
                let names: Vec<_> = Action::ALL.iter().map(|a| a.config_name()).collect();
                KeyError::UnknownAction(name.clone(), names.join(", "))
            })?;
            map.bindings.retain(|(_, a)| *a != action);
            for text in keys {
                map.bindings.push((Key::parse(text)?, action));
            }
        }
        map.validate()?;
        Ok(map)
    }

    fn validate(&self) -> Result<(), KeyError> {
        for (i, (key, action)) in self.bindings.iter().enumerate() {
            if let Some((_, other)) = self.bindings[..i]
                .iter()
                .find(|(k, a)| k == key && a != action)
            {
                return Err(KeyError::Conflict {
                    key: key.to_string(),
                    first: other.config_name(),
                    second: action.config_name(),
                });
            }
        }
        for action in Action::ALL {
            if action != Action::Quit && self.keys(action).is_empty() {
                return Err(KeyError::Unbound(action.config_name()));
            }
        }
        Ok(())
    }

    /// The action of a key event, if any.
    pub fn action(&self, event: &KeyEvent) -> Option<Action> {
        let key = Key::of(event);
        if key.ctrl && key.code == KeyCode::Char('c') {
            return Some(Action::Quit);
        }
        self.bindings
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, a)| *a)
    }

    /// The keys bound to `action`, in config order.
    pub fn keys(&self, action: Action) -> Vec<Key> {
        self.bindings
            .iter()
            .filter(|(_, a)| *a == action)
            .map(|(k, _)| *k)
            .collect()
    }

    /// The keys of `action` written for the screen: `"space"`, `"↑/k"`.
    pub fn label(&self, action: Action) -> String {
        let keys: Vec<String> = self.keys(action).iter().map(Key::to_string).collect();
        if keys.is_empty() {
            "unbound".into()
        } else {
            keys.join("/")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crossterm::event::KeyEventKind;

    fn press(code: KeyCode, modifiers: KeyModifiers) -> KeyEvent {
        KeyEvent::new_with_kind(code, modifiers, KeyEventKind::Press)
    }

    #[test]
    fn parses_characters_names_and_modifiers() {
        assert_eq!(Key::parse("m").unwrap().code, KeyCode::Char('m'));
        assert_eq!(Key::parse("space").unwrap().code, KeyCode::Char(' '));
        assert_eq!(Key::parse("Enter").unwrap().code, KeyCode::Enter);
        assert_eq!(Key::parse("F5").unwrap().code, KeyCode::F(5));
        let k = Key::parse("ctrl-T").unwrap();
        assert!(k.ctrl && !k.alt && k.code == KeyCode::Char('t'));
        assert!(Key::parse("alt-x").unwrap().alt);
        assert_eq!(Key::parse("-").unwrap().code, KeyCode::Char('-'));
        for bad in ["", "spacebar", "f13", "ctrl-", "hyper-x"] {
            assert!(Key::parse(bad).is_err(), "{bad:?} must not parse");
        }
    }

    #[test]
    fn default_map_finds_actions_and_folds_shift() {
        let map = KeyMap::default();
        let none = KeyModifiers::NONE;
        assert_eq!(
            map.action(&press(KeyCode::Char('j'), none)),
            Some(Action::Down)
        );
        assert_eq!(map.action(&press(KeyCode::Up, none)), Some(Action::Up));
        assert_eq!(
            map.action(&press(KeyCode::Char(' '), none)),
            Some(Action::Talk)
        );
        // `?` comes with SHIFT from some terminals and without from others.
        assert_eq!(
            map.action(&press(KeyCode::Char('?'), KeyModifiers::SHIFT)),
            Some(Action::Help)
        );
        assert_eq!(
            map.action(&press(KeyCode::Char('?'), none)),
            Some(Action::Help)
        );
        assert_eq!(map.action(&press(KeyCode::Char('z'), none)), None);
        // `m` with Ctrl is not `m`.
        assert_eq!(
            map.action(&press(KeyCode::Char('m'), KeyModifiers::CONTROL)),
            None
        );
    }

    #[test]
    fn ctrl_c_always_quits() {
        let mut o = BTreeMap::new();
        o.insert("quit".to_string(), vec!["f10".to_string()]);
        let map = KeyMap::with_overrides(&o).unwrap();
        assert_eq!(
            map.action(&press(KeyCode::Char('C'), KeyModifiers::CONTROL)),
            Some(Action::Quit)
        );
        assert_eq!(
            map.action(&press(KeyCode::Char('q'), KeyModifiers::NONE)),
            None
        );
        assert_eq!(
            map.action(&press(KeyCode::F(10), KeyModifiers::NONE)),
            Some(Action::Quit)
        );
    }

    #[test]
    fn overrides_replace_an_actions_keys_and_conflicts_are_refused() {
        let mut o = BTreeMap::new();
        o.insert("talk".to_string(), vec!["v".to_string(), "f1".to_string()]);
        let map = KeyMap::with_overrides(&o).unwrap();
        assert_eq!(map.label(Action::Talk), "v/F1");
        assert_eq!(
            map.action(&press(KeyCode::Char(' '), KeyModifiers::NONE)),
            None,
            "space no longer talks"
        );

        o.insert("mute".to_string(), vec!["v".to_string()]);
        let err = KeyMap::with_overrides(&o).unwrap_err();
        assert!(matches!(err, KeyError::Conflict { .. }), "{err}");

        let mut o = BTreeMap::new();
        o.insert("shout".to_string(), vec!["s".to_string()]);
        let err = KeyMap::with_overrides(&o).unwrap_err().to_string();
        assert!(err.contains("shout") && err.contains("talk_mode"), "{err}");

        let mut o = BTreeMap::new();
        o.insert("join".to_string(), vec![]);
        assert_eq!(
            KeyMap::with_overrides(&o).unwrap_err(),
            KeyError::Unbound("join")
        );
    }

    #[test]
    fn labels_read_well() {
        let map = KeyMap::default();
        assert_eq!(map.label(Action::Up), "↑/k");
        assert_eq!(map.label(Action::Talk), "space");
        assert_eq!(Key::parse("ctrl-alt-x").unwrap().to_string(), "ctrl-alt-x");
    }
}
