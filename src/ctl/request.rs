//! What `cromulent ctl` may ask a running client: one line of text per request. Pure.

use std::fmt;

/// On, off, or the other way round.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Switch {
    On,
    Off,
    Toggle,
}

impl Switch {
    /// The new value, given the current one.
    pub fn apply(self, current: bool) -> bool {
        match self {
            Switch::On => true,
            Switch::Off => false,
            Switch::Toggle => !current,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// The talk key: `press` (on), `release` (off) or `toggle`.
    Talk(Switch),
    Mute(Switch),
    Deafen(Switch),
    Join(String),
    Leave,
    /// Post to the chat of the channel the client sits in.
    Say(String),
    /// One line (for status bars), or one JSON object.
    Status {
        json: bool,
    },
    /// Follow the event stream: the JSON lines `cromulent headless` prints.
    Events,
}

/// Why a request line was not understood.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadRequest(pub String);

impl fmt::Display for BadRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

pub const USAGE: &str = "talk press|release|toggle, mute [on|off|toggle], \
    deafen [on|off|toggle], join CHANNEL, leave, say TEXT, status [--json], events";

/// Parse one request line.
pub fn parse(line: &str) -> Result<Request, BadRequest> {
    let line = line.trim_end_matches(['\r', '\n']).trim_start();
    let (verb, rest) = line
        .split_once(char::is_whitespace)
        .map(|(v, r)| (v, r.trim()))
        .unwrap_or((line.trim_end(), ""));
    let switch = |rest: &str, on: &str, off: &str| match rest {
        "" | "toggle" => Ok(Switch::Toggle),
        r if r == on => Ok(Switch::On),
        r if r == off => Ok(Switch::Off),
        r => Err(BadRequest(format!(
            "{verb} takes {on}, {off} or toggle, not {r:?}"
        ))),
    };
    match verb {
        "talk" if rest.is_empty() => Err(BadRequest("talk takes press, release or toggle".into())),
        "talk" => switch(rest, "press", "release").map(Request::Talk),
        "mute" => switch(rest, "on", "off").map(Request::Mute),
        "deafen" => switch(rest, "on", "off").map(Request::Deafen),
        "join" if rest.is_empty() => Err(BadRequest("join takes a channel name or id".into())),
        "join" => Ok(Request::Join(rest.to_owned())),
        "leave" if rest.is_empty() => Ok(Request::Leave),
        "say" if rest.is_empty() => Err(BadRequest("say takes the text to send".into())),
        // The text as it is, only the separator after `say` taken off.
        "say" => Ok(Request::Say(line[3..].trim_start().to_owned())),
        "status" => match rest {
            "" => Ok(Request::Status { json: false }),
            "--json" | "json" => Ok(Request::Status { json: true }),
            r => Err(BadRequest(format!("status takes --json, not {r:?}"))),
        },
        "events" if rest.is_empty() => Ok(Request::Events),
        "" => Err(BadRequest(format!("an empty request: use {USAGE}"))),
        v => Err(BadRequest(format!("unknown request {v:?}: use {USAGE}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_request_parses() {
        for (line, want) in [
            ("talk press", Request::Talk(Switch::On)),
            ("talk release\n", Request::Talk(Switch::Off)),
            ("talk toggle", Request::Talk(Switch::Toggle)),
            ("mute", Request::Mute(Switch::Toggle)),
            ("mute on", Request::Mute(Switch::On)),
            ("deafen off", Request::Deafen(Switch::Off)),
            ("join Gaming Room", Request::Join("Gaming Room".into())),
            ("leave", Request::Leave),
            ("say  brb, #18 ", Request::Say("brb, #18 ".into())),
            ("status", Request::Status { json: false }),
            ("status --json", Request::Status { json: true }),
            ("events\r\n", Request::Events),
        ] {
            assert_eq!(parse(line), Ok(want), "{line:?}");
        }
    }

    #[test]
    fn mistakes_say_what_is_wanted() {
        for (line, says) in [
            ("talk", "press, release or toggle"),
            ("talk on", "press, release or toggle"),
            ("mute maybe", "on, off or toggle"),
            ("join", "channel"),
            ("say", "text"),
            ("status yaml", "--json"),
            ("dance", "unknown request"),
            ("", "empty"),
        ] {
            let e = parse(line).unwrap_err();
            assert!(e.0.contains(says), "{line:?}: {e}");
        }
    }

    #[test]
    fn switches_apply_to_the_current_value() {
        assert!(Switch::On.apply(false) && !Switch::Off.apply(true));
        assert!(Switch::Toggle.apply(false) && !Switch::Toggle.apply(true));
    }
}
