//! The headless script language: one command per line, `#` comments. Parsing is pure and
//! reports the line of the first mistake (bad usage, exit status 2).
//! Must never touch the engine or the file system: reading the script and running it are the
//! caller's.

use std::time::Duration;

use crate::audio::processing::{NoiseLevel, Stage, UnknownStage};
use crate::engine::MAX_VOLUME_PERCENT;

/// Default time limit of a `wait` without one.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(15);

#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// Join a voice channel by name (case-insensitive) or id.
    Join(String),
    Leave,
    Talk(bool),
    Mute(bool),
    Deafen(bool),
    Wait(WaitFor, Duration),
    Sleep(Duration),
    Stats,
    /// Post to the chat of the channel we sit in (or are joining).
    Say(String),
    /// Play a user (by name or id) at this percent of their level, 0–200.
    Volume(String, u16),
    /// Turn a capture processing stage on or off: `processing echo off`.
    Processing(Stage, bool),
    /// Set the noise stage's level: `processing noise high` (on or off stays as it is).
    NoiseLevel(NoiseLevel),
    Quit,
}

#[derive(Debug, Clone, PartialEq)]
pub enum WaitFor {
    Connected,
    Disconnected,
    /// A peer connection with this user is established.
    Peer(String),
    /// Audio from this user has been decoded.
    Audio(String),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("script line {line}: {message}")]
pub struct ScriptError {
    pub line: usize,
    pub message: String,
}

/// Parse a whole script.
pub fn parse(text: &str) -> Result<Vec<Command>, ScriptError> {
    text.lines()
        .enumerate()
        .filter_map(|(i, l)| parse_line(l).transpose().map(|r| (i + 1, r)))
        .map(|(line, r)| r.map_err(|message| ScriptError { line, message }))
        .collect()
}

/// Parse one line; `Ok(None)` for blank lines and comments.
pub fn parse_line(line: &str) -> Result<Option<Command>, String> {
    // `say` takes the rest of the line as it is: a `#` there is text, not a comment.
    let trimmed = line.trim_start();
    if let Some(text) = trimmed
        .strip_prefix("say")
        .filter(|rest| rest.is_empty() || rest.starts_with(char::is_whitespace))
    {
        let text = text.trim();
        if text.is_empty() {
            return Err("say needs the text to send".into());
        }
        return Ok(Some(Command::Say(text.to_owned())));
    }
    let line = line.split('#').next().unwrap_or("").trim();
    if line.is_empty() {
        return Ok(None);
    }
    let (verb, rest) = line
        .split_once(char::is_whitespace)
        .map(|(v, r)| (v, r.trim()))
        .unwrap_or((line, ""));
    let cmd = match verb {
        "join" if !rest.is_empty() => Command::Join(rest.to_owned()),
        "join" => return Err("join needs a channel name or id".into()),
        "leave" => no_args(rest, Command::Leave)?,
        "stats" => no_args(rest, Command::Stats)?,
        "quit" => no_args(rest, Command::Quit)?,
        "talk" => Command::Talk(on_off(rest)?),
        "mute" => Command::Mute(on_off(rest)?),
        "deafen" => Command::Deafen(on_off(rest)?),
        "sleep" => Command::Sleep(seconds(rest)?),
        "wait" => parse_wait(rest)?,
        "volume" => parse_volume(rest)?,
        "processing" => {
            let usage = || {
                format!(
                    "expected processing echo|noise|gain|voice on|off \
                     (or processing noise high|strong), got {rest:?}"
                )
            };
            let (stage, on) = rest.split_once(char::is_whitespace).ok_or_else(usage)?;
            let stage: Stage = stage.parse().map_err(|e: UnknownStage| e.to_string())?;
            match on.trim().parse::<NoiseLevel>() {
                Ok(level) if stage == Stage::Noise => Command::NoiseLevel(level),
                _ => Command::Processing(stage, on_off(on.trim())?),
            }
        }
        _ => return Err(format!("unknown command {verb:?}")),
    };
    Ok(Some(cmd))
}

fn parse_wait(rest: &str) -> Result<Command, String> {
    let (what, args) = rest
        .split_once(char::is_whitespace)
        .map(|(w, a)| (w, a.trim()))
        .unwrap_or((rest, ""));
    // A trailing number is the time limit; the rest is the argument (names may hold spaces).
    let (arg, limit) = match args.rsplit_once(char::is_whitespace) {
        Some((a, t)) if t.parse::<f64>().is_ok() => (a.trim(), Some(seconds(t)?)),
        _ if !args.is_empty() && args.parse::<f64>().is_ok() && !needs_name(what) => {
            ("", Some(seconds(args)?))
        }
        _ => (args, None),
    };
    let limit = limit.unwrap_or(DEFAULT_WAIT);
    let target = match what {
        "connected" if arg.is_empty() => WaitFor::Connected,
        "disconnected" if arg.is_empty() => WaitFor::Disconnected,
        "peer" if !arg.is_empty() => WaitFor::Peer(arg.to_owned()),
        "audio" if !arg.is_empty() => WaitFor::Audio(arg.to_owned()),
        "peer" | "audio" => return Err(format!("wait {what} needs a user name")),
        _ => {
            return Err(format!(
                "wait what? expected connected, disconnected, peer NAME or audio NAME, got {rest:?}"
            ));
        }
    };
    Ok(Command::Wait(target, limit))
}

/// `volume NAME PERCENT`: the name may hold spaces, the percent is last.
fn parse_volume(rest: &str) -> Result<Command, String> {
    let usage =
        || format!("expected volume NAME PERCENT (0 to {MAX_VOLUME_PERCENT}), got {rest:?}");
    let (name, percent) = rest.rsplit_once(char::is_whitespace).ok_or_else(usage)?;
    let percent: u16 = percent
        .trim_end_matches('%')
        .parse()
        .ok()
        .filter(|p| *p <= MAX_VOLUME_PERCENT)
        .ok_or_else(usage)?;
    Ok(Command::Volume(name.trim().to_owned(), percent))
}

fn needs_name(what: &str) -> bool {
    matches!(what, "peer" | "audio")
}

fn no_args(rest: &str, cmd: Command) -> Result<Command, String> {
    if rest.is_empty() {
        Ok(cmd)
    } else {
        Err(format!("unexpected {rest:?}"))
    }
}

fn on_off(rest: &str) -> Result<bool, String> {
    match rest {
        "on" => Ok(true),
        "off" => Ok(false),
        _ => Err(format!("expected on or off, got {rest:?}")),
    }
}

/// Seconds as a number (fractions allowed), 0 to one day.
pub fn seconds(text: &str) -> Result<Duration, String> {
    let secs: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("expected a number of seconds, got {text:?}"))?;
    if !(0.0..=86_400.0).contains(&secs) {
        return Err(format!("{secs} seconds is out of range (0 to 86400)"));
    }
    Ok(Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_command_parses() {
        let script = "\
# a test run
join General
talk off
mute on
deafen off
wait connected 5
wait disconnected
wait peer bob 2.5
wait audio Bob Smith 10
wait peer Bob Smith
sleep 0.5
stats
volume bob 50
processing echo off
processing noise high
volume Bob Smith 0%
leave
quit
";
        let cmds = parse(script).unwrap();
        assert_eq!(
            cmds,
            [
                Command::Join("General".into()),
                Command::Talk(false),
                Command::Mute(true),
                Command::Deafen(false),
                Command::Wait(WaitFor::Connected, Duration::from_secs(5)),
                Command::Wait(WaitFor::Disconnected, DEFAULT_WAIT),
                Command::Wait(WaitFor::Peer("bob".into()), Duration::from_millis(2500)),
                Command::Wait(WaitFor::Audio("Bob Smith".into()), Duration::from_secs(10)),
                Command::Wait(WaitFor::Peer("Bob Smith".into()), DEFAULT_WAIT),
                Command::Sleep(Duration::from_millis(500)),
                Command::Stats,
                Command::Volume("bob".into(), 50),
                Command::Processing(Stage::Echo, false),
                Command::NoiseLevel(NoiseLevel::High),
                Command::Volume("Bob Smith".into(), 0),
                Command::Leave,
                Command::Quit,
            ]
        );
    }

    #[test]
    fn say_takes_the_rest_of_the_line_as_it_is() {
        assert_eq!(
            parse_line("  say brb # back in 5, see #18 ").unwrap(),
            Some(Command::Say("brb # back in 5, see #18".into()))
        );
        assert_eq!(parse_line("say").unwrap_err(), "say needs the text to send");
        // A word that only starts with "say" is not `say`.
        assert!(parse_line("sayonara").is_err());
    }

    #[test]
    fn mistakes_name_their_line() {
        for (script, line) in [
            ("join General\ndance\n", 2),
            ("talk maybe", 1),
            ("\n\nsleep forever", 3),
            ("sleep -1", 1),
            ("wait", 1),
            ("wait peer", 1),
            ("wait connected bob", 1),
            ("join", 1),
            ("leave now", 1),
            ("volume bob", 1),
            ("processing loud on", 1),
            ("processing echo", 1),
            ("processing echo maybe", 1),
            ("processing echo strong", 1),
            ("processing noise loud", 1),
            ("volume bob 201", 1),
            ("volume bob loud", 1),
        ] {
            let err = parse(script).expect_err(script);
            assert_eq!(err.line, line, "{script:?}: {err}");
            assert!(err.to_string().starts_with(&format!("script line {line}:")));
        }
    }
}
