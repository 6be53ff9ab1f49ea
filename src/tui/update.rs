//! The TUI's state machine: `update(&mut Model, Msg) -> Vec<Cmd>`. Keys become actions, actions
//! become engine commands, engine events become screen state. Pure: no I/O, no clock (time
//! arrives as `Msg::Tick`), so every rule here is a unit test below.
//!
//! Key rules:
//! - only presses act; repeats move the cursor but never toggle anything; releases matter only
//!   to push-to-talk in hold style;
//! - push-to-talk: hold style talks from press to release; repeat style (no release events)
//!   talks while the key's auto-repeats arrive and toggles on a tap ([`super::hold`]), and
//!   muting drops a tap's latch so unmuting never opens the mic;
//! - the talk rules themselves (mute wins, deafen closes the mic) are the engine's
//!   [`crate::engine::TalkState`], mirrored here so the screen agrees with the engine;
//! - while the chat input line is open every key types (the talk key too) — only Enter
//!   (send), Esc (leave the line), Backspace, ctrl-u (clear), ctrl-c (quit, as always) and
//!   the chat's scroll keys do anything else;
//!   opening it releases a held talk key;
//! - the chat shows the selected channel: moving the selection follows it live and loads it.

use std::time::{Duration, Instant};

use cromulent_protocol::PresenceOp;
use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

use super::chat::ChatRequest;
use super::keys::Action;
use super::model::{Device, Model, Notice, NoticeLevel, PttStyle, ServerLink};
use crate::audio::DeviceChange;
use crate::audio::processing::{NoiseLevel, Stage};
use crate::engine::{
    CallState, ChannelRef, DeviceRole, EngineCommand, EngineError, EngineEvent, MAX_VOLUME_PERCENT,
    TalkMode, VoiceStatus, presence,
};

/// How often the app sends `Msg::Tick`.
pub const TICK: Duration = Duration::from_millis(250);
/// How often peer stats are asked for while in voice.
pub const STATS_EVERY: Duration = Duration::from_secs(1);
/// How many ticks a notice stays (5 s).
pub const NOTICE_TICKS: u32 = 20;

#[derive(Debug)]
pub enum Msg {
    /// A key, and when it arrived.
    Key(KeyEvent, Instant),
    Engine(EngineEvent),
    Tick(Instant),
    /// The talk key's hold may have ended (`RepeatHold::deadline` passed).
    HoldTimer(Instant),
    /// The terminal lost focus: a held push-to-talk key will never report its release.
    FocusLost,
    /// A request from `cromulent ctl` (the app answers `status` itself).
    Control(crate::ctl::Request),
}

#[derive(Debug)]
pub enum Cmd {
    Engine(EngineCommand),
    /// Remember `model.volumes` on disk.
    SaveVolumes,
    /// Leave the loop (after telling the engine to shut down).
    Quit,
}

pub fn update(model: &mut Model, msg: Msg) -> Vec<Cmd> {
    match msg {
        Msg::Key(key, at) => on_key(model, key, at),
        Msg::Engine(ev) => on_engine(model, ev),
        Msg::Tick(now) => {
            let mut cmds = hold_timer(model, now);
            cmds.extend(on_tick(model, now));
            cmds
        }
        Msg::HoldTimer(now) => hold_timer(model, now),
        Msg::FocusLost => {
            model.hold.focus_lost();
            release_ptt(model)
        }
        Msg::Control(request) => on_control(model, request),
    }
}

/// `cromulent ctl`: what a key would do, with the value asked for.
fn on_control(model: &mut Model, request: crate::ctl::Request) -> Vec<Cmd> {
    use crate::ctl::Request;
    match request {
        Request::Talk(switch) => {
            let on = switch.apply(model.talk.talk());
            set_talk(model, on)
        }
        Request::Mute(switch) => {
            let muted = switch.apply(model.talk.muted());
            model.talk.set_muted(muted);
            vec![Cmd::Engine(EngineCommand::Mute(muted))]
        }
        Request::Deafen(switch) => {
            let deafened = switch.apply(model.talk.deafened());
            model.talk.set_deafened(deafened);
            vec![Cmd::Engine(EngineCommand::Deafen(deafened))]
        }
        Request::Join(channel) => vec![Cmd::Engine(EngineCommand::Join(ChannelRef(channel)))],
        Request::Leave => vec![Cmd::Engine(EngineCommand::Leave)],
        Request::Say(text) => vec![Cmd::Engine(EngineCommand::Say {
            channel: None,
            text,
        })],
        Request::Status { .. } | Request::Events => Vec::new(),
    }
}

// --- keys -------------------------------------------------------------------------------

fn on_key(model: &mut Model, key: KeyEvent, at: Instant) -> Vec<Cmd> {
    let action = model.keys.action(&key);
    if model.chat.input.is_some() {
        return on_typing(model, key, action);
    }
    if model.help && key.kind == KeyEventKind::Press && action != Some(Action::Quit) {
        // Any key closes the help; it does nothing else.
        model.help = false;
        return Vec::new();
    }
    let Some(action) = action else {
        return Vec::new();
    };
    match key.kind {
        KeyEventKind::Press => on_action(model, action, at),
        KeyEventKind::Repeat => match action {
            Action::Up | Action::Down => on_action(model, action, at),
            _ => Vec::new(),
        },
        KeyEventKind::Release => match action {
            Action::Talk if model.ptt == PttStyle::Hold => release_ptt(model),
            _ => Vec::new(),
        },
    }
}

/// A key while the chat input line is open.
fn on_typing(model: &mut Model, key: KeyEvent, action: Option<Action>) -> Vec<Cmd> {
    if key.kind == KeyEventKind::Release {
        return Vec::new();
    }
    let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
    match key.code {
        KeyCode::Esc => model.chat.stop_typing(),
        // ctrl-c always quits (docs/TUI.md), typing or not.
        KeyCode::Char('c') if ctrl => {
            model.quitting = true;
            return vec![Cmd::Quit];
        }
        KeyCode::Char('u') if ctrl => {
            if let Some(text) = &mut model.chat.input {
                text.clear();
            }
        }
        KeyCode::Enter => return send_line(model),
        KeyCode::Backspace => model.chat.backspace(),
        KeyCode::Char(c) if !ctrl && !key.modifiers.contains(KeyModifiers::ALT) => {
            model.chat.type_char(c);
        }
        _ => match action {
            Some(Action::ChatOlder) => return chat_older(model),
            Some(Action::ChatNewer) => model.chat.scroll_down(),
            _ => {}
        },
    }
    Vec::new()
}

fn send_line(model: &mut Model) -> Vec<Cmd> {
    let Some(channel) = model.chat.channel else {
        notice(model, NoticeLevel::Info, "No channel to write to yet.");
        return Vec::new();
    };
    match model.chat.take_line() {
        Some(text) => vec![Cmd::Engine(EngineCommand::Say {
            channel: Some(ChannelRef(channel.to_string())),
            text,
        })],
        None => Vec::new(),
    }
}

fn chat_older(model: &mut Model) -> Vec<Cmd> {
    model.chat.scroll_up().map(chat_cmds).unwrap_or_default()
}

/// The engine commands a chat request needs.
fn chat_cmds(request: ChatRequest) -> Vec<Cmd> {
    match request {
        ChatRequest::Open(channel) => vec![
            Cmd::Engine(EngineCommand::Watch(Some(channel))),
            Cmd::Engine(EngineCommand::History {
                channel,
                before: None,
            }),
        ],
        ChatRequest::Older(channel, before) => vec![Cmd::Engine(EngineCommand::History {
            channel,
            before: Some(before),
        })],
    }
}

/// Show the selected channel's chat.
fn open_selected_chat(model: &mut Model) -> Vec<Cmd> {
    match model.selected().map(|c| c.id) {
        Some(id) => model.chat.open(id).map(chat_cmds).unwrap_or_default(),
        None => Vec::new(),
    }
}

fn on_action(model: &mut Model, action: Action, at: Instant) -> Vec<Cmd> {
    match action {
        Action::Up => {
            model.cursor = model.cursor.saturating_sub(1);
            open_selected_chat(model)
        }
        Action::Down => {
            if model.cursor + 1 < model.channels.len() {
                model.cursor += 1;
            }
            open_selected_chat(model)
        }
        Action::Chat => {
            let cmds = release_ptt(model);
            model.chat.start_typing();
            cmds
        }
        Action::ChatOlder => chat_older(model),
        Action::ChatNewer => {
            model.chat.scroll_down();
            Vec::new()
        }
        Action::Join => join_selected(model),
        Action::Leave => {
            if model.voice == VoiceStatus::None {
                notice(model, NoticeLevel::Info, "Not in a voice channel.");
                return Vec::new();
            }
            vec![Cmd::Engine(EngineCommand::Leave)]
        }
        Action::Talk => press_talk(model, at),
        Action::Mute => {
            let muted = !model.talk.muted();
            model.talk.set_muted(muted);
            let mut cmds = vec![Cmd::Engine(EngineCommand::Mute(muted))];
            if muted && model.ptt == PttStyle::Repeat && model.talk.talk() {
                // A tap's talk latch would re-open the mic on unmute; drop it.
                model.hold.focus_lost();
                cmds.extend(set_talk(model, false));
            }
            cmds
        }
        Action::Deafen => {
            let deafened = !model.talk.deafened();
            model.talk.set_deafened(deafened);
            vec![Cmd::Engine(EngineCommand::Deafen(deafened))]
        }
        Action::CycleTalkMode => {
            let next = match model.talk.mode() {
                TalkMode::PushToTalk => TalkMode::VoiceActivity,
                TalkMode::VoiceActivity => TalkMode::Open,
                TalkMode::Open => TalkMode::PushToTalk,
            };
            model.talk.set_mode(next);
            let text = format!("Talk mode: {}.", mode_words(model));
            notice(model, NoticeLevel::Info, text);
            vec![Cmd::Engine(EngineCommand::SetTalkMode(next))]
        }
        Action::PeerNext => {
            let members = model.peer_members();
            let at = members
                .iter()
                .position(|m| Some(&m.user) == model.selected_peer.as_ref());
            let next = match at {
                Some(i) => members.get(i + 1).or(members.first()),
                None => members.get(1).or(members.first()),
            };
            model.selected_peer = next.map(|m| m.user.clone());
            Vec::new()
        }
        Action::VolumeUp => change_volume(model, |v| v.saturating_add(VOLUME_STEP)),
        Action::VolumeDown => change_volume(model, |v| v.saturating_sub(VOLUME_STEP)),
        Action::PeerMute => change_volume(model, |v| if v == 0 { 100 } else { 0 }),
        Action::EchoCancellation => toggle_stage(model, Stage::Echo),
        Action::NoiseSuppression => toggle_stage(model, Stage::Noise),
        Action::NoiseLevel => toggle_noise_level(model),
        Action::GainControl => toggle_stage(model, Stage::Gain),
        Action::VoiceDetection => toggle_stage(model, Stage::Voice),
        Action::Help => {
            model.help = !model.help;
            Vec::new()
        }
        Action::Quit => {
            model.quitting = true;
            vec![Cmd::Quit]
        }
    }
}

/// What one press of the volume keys changes, in percent.
pub const VOLUME_STEP: u16 = 10;

/// Turn a capture processing stage the other way. The model follows when the engine
/// reports the change ([`EngineEvent::Processing`]).
fn toggle_stage(model: &mut Model, stage: Stage) -> Vec<Cmd> {
    let on = !model.processing.get(stage);
    let what = match stage {
        Stage::Echo => "Echo cancellation",
        Stage::Noise => "Noise suppression",
        Stage::Gain => "Automatic gain",
        Stage::Voice if on => "Voice activity from speech detection",
        Stage::Voice => "Voice activity from the level threshold",
    };
    let text = match (stage, on) {
        (Stage::Voice, _) => format!("{what}."),
        (_, true) => format!("{what} on."),
        (_, false) => format!("{what} off."),
    };
    notice(model, NoticeLevel::Info, text);
    vec![Cmd::Engine(EngineCommand::SetStage { stage, on })]
}

/// Turn the noise suppression's level the other way (strong ↔ high); the model follows
/// when the engine reports it.
fn toggle_noise_level(model: &mut Model) -> Vec<Cmd> {
    let level = match model.processing.noise_level {
        NoiseLevel::Strong => NoiseLevel::High,
        NoiseLevel::High => NoiseLevel::Strong,
    };
    let text = match level {
        NoiseLevel::Strong => "Noise suppression strong.",
        NoiseLevel::High => "Noise suppression high: 10 ms less delay, more noise left.",
    };
    let text = if model.processing.noise {
        text.to_owned()
    } else {
        format!("{text} (It is off: N turns it on.)")
    };
    notice(model, NoticeLevel::Info, text);
    vec![Cmd::Engine(EngineCommand::SetNoiseLevel(level))]
}

/// Set the selected peer's volume to `f(current)` (kept within 0–200 %), tell the engine,
/// remember it, and say so.
fn change_volume(model: &mut Model, f: impl Fn(u16) -> u16) -> Vec<Cmd> {
    let Some(peer) = model.volume_target() else {
        notice(model, NoticeLevel::Info, "Nobody here to turn up or down.");
        return Vec::new();
    };
    let (user, name) = (peer.user.clone(), peer.name.clone());
    let percent = f(model.volume(&user)).min(MAX_VOLUME_PERCENT);
    model.selected_peer = Some(user.clone());
    if percent == 100 {
        model.volumes.remove(&user);
    } else {
        model.volumes.insert(user.clone(), percent);
    }
    let text = match percent {
        0 => format!("{name}: muted, for you alone."),
        p => format!("{name}: {p} %."),
    };
    notice(model, NoticeLevel::Info, text);
    vec![
        Cmd::Engine(EngineCommand::SetVolume { user, percent }),
        Cmd::SaveVolumes,
    ]
}

fn join_selected(model: &mut Model) -> Vec<Cmd> {
    let Some(channel) = model.selected() else {
        notice(model, NoticeLevel::Info, "No channels yet.");
        return Vec::new();
    };
    let (id, name) = (channel.id, channel.name.clone());
    if model.voice_channel() == Some(id) {
        // Also what keeps a terminal that reports Enter's release as a press from joining
        // twice (which the server would refuse as already_in_channel).
        notice(model, NoticeLevel::Info, format!("Already in {name}."));
        return Vec::new();
    }
    vec![Cmd::Engine(EngineCommand::Join(ChannelRef(id.to_string())))]
}

fn press_talk(model: &mut Model, at: Instant) -> Vec<Cmd> {
    if model.talk.mode() != TalkMode::PushToTalk {
        let text = format!(
            "The talk key is for push-to-talk; the mode is {} (press {} to change it).",
            mode_words(model),
            model.keys.label(Action::CycleTalkMode)
        );
        notice(model, NoticeLevel::Info, text);
        return Vec::new();
    }
    match model.ptt {
        PttStyle::Hold if model.talk.talk() => Vec::new(),
        PttStyle::Hold => set_talk(model, true),
        PttStyle::Repeat => match model.hold.press(at) {
            Some(on) => set_talk(model, on),
            None => Vec::new(),
        },
    }
}

/// Time passed for the talk key's hold: its repeats may have stopped.
fn hold_timer(model: &mut Model, now: Instant) -> Vec<Cmd> {
    match model.hold.tick(now) {
        Some(on) if model.talk.mode() == TalkMode::PushToTalk => set_talk(model, on),
        _ => Vec::new(),
    }
}

fn release_ptt(model: &mut Model) -> Vec<Cmd> {
    if model.talk.mode() == TalkMode::PushToTalk && model.talk.talk() {
        set_talk(model, false)
    } else {
        Vec::new()
    }
}

fn set_talk(model: &mut Model, on: bool) -> Vec<Cmd> {
    model.talk.set_talk(on);
    vec![Cmd::Engine(EngineCommand::Talk(on))]
}

/// The talk mode in words, as the status line says it.
pub fn mode_words(model: &Model) -> &'static str {
    match (model.talk.mode(), model.ptt) {
        (TalkMode::PushToTalk, PttStyle::Hold) => "push-to-talk (hold)",
        (TalkMode::PushToTalk, PttStyle::Repeat) => "push-to-talk (hold or tap)",
        (TalkMode::VoiceActivity, _) => "voice activity",
        (TalkMode::Open, _) => "open mic",
    }
}

fn notice(model: &mut Model, level: NoticeLevel, text: impl Into<String>) {
    model.notice = Some(Notice {
        text: text.into(),
        level,
        ticks_left: NOTICE_TICKS,
    });
}

// --- engine -----------------------------------------------------------------------------

fn on_engine(model: &mut Model, ev: EngineEvent) -> Vec<Cmd> {
    match ev {
        EngineEvent::ServerConnected { user, channels, .. } => {
            let selected = model.selected().map(|c| c.id);
            model.me = user;
            model.channels = channels;
            model.server = ServerLink::Connected;
            model.cursor = selected
                .and_then(|id| model.channels.iter().position(|c| c.id == id))
                .unwrap_or(0)
                .min(model.channels.len().saturating_sub(1));
            // Follow the chat on screen again and fetch what was missed; or open the first.
            let still_there = model
                .chat
                .channel
                .is_some_and(|id| model.channels.iter().any(|c| c.id == id));
            return if still_there {
                model.chat.resync().map(chat_cmds).unwrap_or_default()
            } else {
                model.chat.channel = None;
                open_selected_chat(model)
            };
        }
        EngineEvent::Presence(changes) => {
            let current = model.voice_channel();
            for change in presence::apply(&mut model.channels, &changes) {
                if change.op == PresenceOp::Leave && current == Some(change.channel) {
                    model.peers.remove(&change.member.user);
                }
            }
        }
        EngineEvent::Status {
            status,
            channel_name,
        } => {
            if status.channel() != model.voice.channel() || status == VoiceStatus::None {
                model.peers.clear();
            }
            model.voice = status;
            model.voice_channel_name = channel_name;
        }
        EngineEvent::Processing { stages, .. } => model.processing = stages,
        EngineEvent::Device { role, change } => {
            let (slot, what) = match role {
                DeviceRole::Microphone => (&mut model.input, "Microphone"),
                DeviceRole::Speaker => (&mut model.output, "Speaker"),
            };
            let (level, text) = match change {
                DeviceChange::Now(device) => {
                    let text = format!(
                        "{what} now: {device} (the one in use went away or the default changed)."
                    );
                    *slot = Device::Ready(device);
                    (NoticeLevel::Info, text)
                }
                DeviceChange::Lost => {
                    *slot = Device::Missing("lost, and no other device to move to".into());
                    (
                        NoticeLevel::Error,
                        format!("{what} lost: no other device to move to."),
                    )
                }
            };
            notice(model, level, text);
        }
        EngineEvent::Error { error, .. } => {
            if let EngineError::SignalingLost(loss) = &error {
                model.server = ServerLink::Lost(loss.clone());
            }
            // Waiting for the lost connection's seat is the engine at work, not a failure:
            // the status line still says connecting.
            let level = match error {
                EngineError::SeatStillHeld(_) => NoticeLevel::Info,
                _ => NoticeLevel::Error,
            };
            notice(model, level, error.to_string());
        }
        EngineEvent::Peer {
            user,
            state,
            candidate,
        } => {
            if state == CallState::Closed {
                model.peers.remove(&user);
            } else {
                let peer = model.peers.entry(user).or_default();
                peer.state = Some(state);
                if candidate.is_some() {
                    peer.candidate = candidate;
                }
            }
        }
        EngineEvent::Audio { .. } => {}
        EngineEvent::Message(m) => {
            let me = model.me.clone();
            model.chat.message(m, &me);
        }
        EngineEvent::History {
            channel,
            messages,
            more,
        } => model.chat.history(channel, messages, more),
        EngineEvent::Mic { dbfs, live } => {
            model.mic_dbfs = dbfs;
            model.mic_live = live;
        }
        EngineEvent::Stats(reports) => {
            for r in reports {
                if r.state == CallState::Closed {
                    continue;
                }
                let peer = model.peers.entry(r.user).or_default();
                peer.state = Some(r.state);
                peer.candidate = r.candidate.or(peer.candidate);
                peer.rtt_ms = r.rtt_ms;
                peer.loss = Some(r.loss);
                peer.speaking = r.speaking;
            }
        }
        EngineEvent::Fatal { reason, message } => {
            model.server = ServerLink::Failed {
                reason,
                message: message.clone(),
            };
            notice(model, NoticeLevel::Error, message);
        }
        EngineEvent::Stopped => {
            if model.quitting {
                return vec![Cmd::Quit];
            }
        }
    }
    Vec::new()
}

// --- time -------------------------------------------------------------------------------

fn on_tick(model: &mut Model, now: Instant) -> Vec<Cmd> {
    if let Some(n) = &mut model.notice {
        n.ticks_left = n.ticks_left.saturating_sub(1);
        if n.ticks_left == 0 {
            model.notice = None;
        }
    }
    let due = model
        .last_stats
        .is_none_or(|t| now.duration_since(t) >= STATS_EVERY);
    if model.voice_channel().is_some() && due {
        model.last_stats = Some(now);
        return vec![Cmd::Engine(EngineCommand::Stats)];
    }
    Vec::new()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::presence::fixtures::{channel, member};
    use crate::engine::{PeerReport, SignalingLoss};
    use crate::rtc::CandidateKind;
    use crate::tui::keys::KeyMap;
    use crate::tui::model::PeerView;
    use cromulent_protocol::PresenceChange;
    use crossterm::event::{KeyCode, KeyModifiers};

    fn model(mode: TalkMode, ptt: PttStyle) -> Model {
        let mut m = Model::new(
            "ws://127.0.0.1:4000".into(),
            "alice".into(),
            mode,
            ptt,
            KeyMap::default(),
        );
        update(
            &mut m,
            Msg::Engine(EngineEvent::ServerConnected {
                user: "alice".into(),
                resumed: false,
                channels: vec![
                    channel(1, "General"),
                    channel(2, "Gaming"),
                    channel(3, "Echo"),
                ],
            }),
        );
        m
    }

    fn key(code: KeyCode, kind: KeyEventKind) -> Msg {
        key_at(code, kind, Instant::now())
    }

    fn key_at(code: KeyCode, kind: KeyEventKind, at: Instant) -> Msg {
        Msg::Key(KeyEvent::new_with_kind(code, KeyModifiers::NONE, kind), at)
    }

    fn press(c: char) -> Msg {
        key(KeyCode::Char(c), KeyEventKind::Press)
    }

    fn engine_cmds(cmds: Vec<Cmd>) -> Vec<String> {
        cmds.into_iter().map(|c| format!("{c:?}")).collect()
    }

    fn status(m: &mut Model, status: VoiceStatus, name: &str) {
        update(
            m,
            Msg::Engine(EngineEvent::Status {
                status,
                channel_name: Some(name.into()),
            }),
        );
    }

    #[test]
    fn arrows_and_jk_move_within_the_list_and_enter_joins_the_selection() {
        let mut m = model(TalkMode::PushToTalk, PttStyle::Repeat);
        assert!(update(&mut m, key(KeyCode::Up, KeyEventKind::Press)).is_empty());
        assert_eq!(m.cursor, 0, "clamped at the top");
        update(&mut m, press('j'));
        update(&mut m, key(KeyCode::Down, KeyEventKind::Press));
        update(&mut m, key(KeyCode::Down, KeyEventKind::Repeat));
        assert_eq!(m.cursor, 2, "clamped at the bottom, repeats move too");
        update(&mut m, press('k'));
        assert_eq!(m.selected().unwrap().name, "Gaming");
        let cmds = update(&mut m, key(KeyCode::Enter, KeyEventKind::Press));
        assert!(matches!(
            cmds.as_slice(),
            [Cmd::Engine(EngineCommand::Join(ChannelRef(id)))] if id == "2"
        ));
    }

    #[test]
    fn joining_the_channel_we_are_in_sends_nothing_but_switching_does() {
        let mut m = model(TalkMode::PushToTalk, PttStyle::Repeat);
        status(&mut m, VoiceStatus::Connecting { channel: 1 }, "General");
        assert!(update(&mut m, key(KeyCode::Enter, KeyEventKind::Press)).is_empty());
        assert!(
            m.notice
                .as_ref()
                .unwrap()
                .text
                .contains("Already in General")
        );
        status(&mut m, VoiceStatus::Connected { channel: 1 }, "General");
        assert!(update(&mut m, key(KeyCode::Enter, KeyEventKind::Press)).is_empty());
        update(&mut m, press('j'));
        let cmds = engine_cmds(update(&mut m, key(KeyCode::Enter, KeyEventKind::Press)));
        assert_eq!(cmds, [r#"Engine(Join(ChannelRef("2")))"#]);
    }

    #[test]
    fn leave_only_when_in_voice_and_the_status_clears_peers() {
        let mut m = model(TalkMode::Open, PttStyle::Repeat);
        assert!(update(&mut m, press('x')).is_empty());
        status(&mut m, VoiceStatus::Connected { channel: 1 }, "General");
        m.peers.insert("bob".into(), PeerView::default());
        assert_eq!(engine_cmds(update(&mut m, press('x'))), ["Engine(Leave)"]);
        status(&mut m, VoiceStatus::None, "");
        assert!(m.peers.is_empty());
        assert_eq!(m.voice_channel(), None);
    }

    #[test]
    fn ptt_hold_talks_from_press_to_release_and_ignores_repeats() {
        let mut m = model(TalkMode::PushToTalk, PttStyle::Hold);
        let space = |kind| key(KeyCode::Char(' '), kind);
        assert_eq!(
            engine_cmds(update(&mut m, space(KeyEventKind::Press))),
            ["Engine(Talk(true))"]
        );
        assert!(m.talk.mic_live(true));
        for _ in 0..5 {
            assert!(update(&mut m, space(KeyEventKind::Repeat)).is_empty());
            // Some terminals send repeats as presses: still held, nothing new.
            assert!(update(&mut m, space(KeyEventKind::Press)).is_empty());
        }
        assert!(m.talk.talk(), "repeats never toggle");
        assert_eq!(
            engine_cmds(update(&mut m, space(KeyEventKind::Release))),
            ["Engine(Talk(false))"]
        );
        assert!(!m.talk.mic_live(true));
        assert!(update(&mut m, space(KeyEventKind::Release)).is_empty());
    }

    #[test]
    fn ptt_where_no_release_is_reported_holds_by_repeats_and_toggles_on_a_tap() {
        let mut m = model(TalkMode::PushToTalk, PttStyle::Repeat);
        let t0 = Instant::now();
        let space = |ms: u64| {
            key_at(
                KeyCode::Char(' '),
                KeyEventKind::Press,
                t0 + Duration::from_millis(ms),
            )
        };
        // Held: a press, then the keyboard's repeats (as presses: the terminal cannot tell).
        assert_eq!(
            engine_cmds(update(&mut m, space(0))),
            ["Engine(Talk(true))"]
        );
        for ms in (500..=1500).step_by(40) {
            assert!(update(&mut m, space(ms)).is_empty(), "a repeat at {ms} ms");
        }
        assert!(m.talk.mic_live(true));
        // The repeats stop: released once the hold's deadline passes.
        let wake = m.hold.deadline().expect("a hold ends by time");
        assert!(update(&mut m, Msg::HoldTimer(wake - Duration::from_millis(1))).is_empty());
        assert_eq!(
            engine_cmds(update(&mut m, Msg::HoldTimer(wake))),
            ["Engine(Talk(false))"]
        );
        // A tap toggles on; the next tap off.
        assert_eq!(
            engine_cmds(update(&mut m, space(3000))),
            ["Engine(Talk(true))"]
        );
        update(&mut m, Msg::HoldTimer(t0 + Duration::from_millis(5000)));
        assert!(m.talk.mic_live(true), "a tap stays on");
        assert_eq!(
            engine_cmds(update(&mut m, space(6000))),
            ["Engine(Talk(false))"]
        );
        assert_eq!(mode_words(&m), "push-to-talk (hold or tap)");
    }

    #[test]
    fn releases_of_other_keys_do_nothing() {
        let mut m = model(TalkMode::PushToTalk, PttStyle::Hold);
        assert!(update(&mut m, key(KeyCode::Char('m'), KeyEventKind::Release)).is_empty());
        assert!(update(&mut m, key(KeyCode::Char('q'), KeyEventKind::Release)).is_empty());
        assert!(update(&mut m, key(KeyCode::Enter, KeyEventKind::Release)).is_empty());
        assert!(update(&mut m, key(KeyCode::Char('m'), KeyEventKind::Repeat)).is_empty());
        assert!(!m.talk.muted() && !m.quitting);
    }

    #[test]
    fn mute_wins_over_a_held_talk_key() {
        let mut m = model(TalkMode::PushToTalk, PttStyle::Hold);
        update(&mut m, key(KeyCode::Char(' '), KeyEventKind::Press));
        assert_eq!(
            engine_cmds(update(&mut m, press('m'))),
            ["Engine(Mute(true))"]
        );
        assert!(!m.talk.mic_live(true), "muted while holding the key");
        // Still holding: unmuting speaks again, because the key is down.
        update(&mut m, press('m'));
        assert!(m.talk.mic_live(true));
    }

    #[test]
    fn unmute_never_opens_the_mic_in_ptt_mode() {
        // Hold style: key up, mute, unmute → closed.
        let mut m = model(TalkMode::PushToTalk, PttStyle::Hold);
        update(&mut m, press('m'));
        update(&mut m, press('m'));
        assert!(!m.talk.mic_live(true));
        // Toggle style: toggled on, mute drops the latch, unmute stays closed.
        let mut m = model(TalkMode::PushToTalk, PttStyle::Repeat);
        update(&mut m, press(' '));
        let cmds = engine_cmds(update(&mut m, press('m')));
        assert_eq!(cmds, ["Engine(Mute(true))", "Engine(Talk(false))"]);
        update(&mut m, press('m'));
        assert!(!m.talk.mic_live(true), "unmute must not re-open the mic");
    }

    #[test]
    fn deafen_closes_the_mic_and_toggles_back() {
        let mut m = model(TalkMode::Open, PttStyle::Repeat);
        assert!(m.talk.mic_live(false));
        assert_eq!(
            engine_cmds(update(&mut m, press('d'))),
            ["Engine(Deafen(true))"]
        );
        assert!(!m.talk.mic_live(true) && !m.talk.hears());
        assert_eq!(
            engine_cmds(update(&mut m, press('d'))),
            ["Engine(Deafen(false))"]
        );
        assert!(m.talk.mic_live(false));
    }

    #[test]
    fn talk_mode_cycles_and_the_talk_key_explains_itself_outside_ptt() {
        let mut m = model(TalkMode::PushToTalk, PttStyle::Repeat);
        assert_eq!(
            engine_cmds(update(&mut m, press('t'))),
            ["Engine(SetTalkMode(VoiceActivity))"]
        );
        assert!(update(&mut m, press(' ')).is_empty());
        assert!(m.notice.as_ref().unwrap().text.contains("voice activity"));
        assert_eq!(
            engine_cmds(update(&mut m, press('t'))),
            ["Engine(SetTalkMode(Open))"]
        );
        assert!(m.talk.mic_live(false));
        update(&mut m, press('t'));
        assert_eq!(m.talk.mode(), TalkMode::PushToTalk);
        assert!(!m.talk.mic_live(true), "back to PTT: released");
    }

    #[test]
    fn losing_focus_releases_a_held_ptt_key() {
        let mut m = model(TalkMode::PushToTalk, PttStyle::Hold);
        update(&mut m, press(' '));
        assert_eq!(
            engine_cmds(update(&mut m, Msg::FocusLost)),
            ["Engine(Talk(false))"]
        );
        assert!(update(&mut m, Msg::FocusLost).is_empty());
    }

    #[test]
    fn help_opens_and_any_key_closes_it_without_acting() {
        let mut m = model(TalkMode::PushToTalk, PttStyle::Repeat);
        update(&mut m, key(KeyCode::Char('?'), KeyEventKind::Press));
        assert!(m.help);
        assert!(update(&mut m, press('m')).is_empty());
        assert!(!m.help && !m.talk.muted());
        update(&mut m, press('?'));
        assert!(matches!(update(&mut m, press('q')).as_slice(), [Cmd::Quit]));
    }

    #[test]
    fn quit_waits_for_the_engine_to_stop() {
        let mut m = model(TalkMode::Open, PttStyle::Repeat);
        assert!(matches!(update(&mut m, press('q')).as_slice(), [Cmd::Quit]));
        assert!(m.quitting);
        assert!(matches!(
            update(&mut m, Msg::Engine(EngineEvent::Stopped)).as_slice(),
            [Cmd::Quit]
        ));
    }

    #[test]
    fn presence_keeps_the_channel_list_live() {
        let mut m = model(TalkMode::Open, PttStyle::Repeat);
        status(&mut m, VoiceStatus::Connected { channel: 1 }, "General");
        let change = |op, channel, member| PresenceChange {
            op,
            channel,
            member,
        };
        update(
            &mut m,
            Msg::Engine(EngineEvent::Presence(vec![
                change(PresenceOp::Join, 1, member("alice")),
                change(PresenceOp::Join, 1, member("bob")),
            ])),
        );
        assert_eq!(m.peer_members().len(), 1, "alice is me");
        let mut muted = member("bob");
        muted.muted = true;
        muted.talking = true;
        update(
            &mut m,
            Msg::Engine(EngineEvent::Presence(vec![change(
                PresenceOp::Update,
                1,
                muted,
            )])),
        );
        let bob = &m.channel(1).unwrap().members[1];
        assert!(bob.muted && bob.talking);
        // bob switches to Gaming: leave 1 and join 2 in one message.
        m.peers.insert("bob".into(), PeerView::default());
        update(
            &mut m,
            Msg::Engine(EngineEvent::Presence(vec![
                change(PresenceOp::Leave, 1, member("bob")),
                change(PresenceOp::Join, 2, member("bob")),
            ])),
        );
        assert_eq!(m.channel(1).unwrap().members.len(), 1);
        assert_eq!(m.channel(2).unwrap().members[0].user, "bob");
        assert!(m.peers.is_empty(), "bob left our channel");
    }

    #[test]
    fn a_device_that_moved_or_was_lost_is_shown_and_said() {
        let mut m = model(TalkMode::Open, PttStyle::Repeat);
        m.output = Device::Ready("pulse:headset (48000 Hz, 1 ch, f32)".into());
        let moved = EngineEvent::Device {
            role: DeviceRole::Speaker,
            change: DeviceChange::Now("pulse:speakers (48000 Hz, 1 ch, f32)".into()),
        };
        assert!(
            update(&mut m, Msg::Engine(moved)).is_empty(),
            "the call goes on"
        );
        assert_eq!(
            m.output,
            Device::Ready("pulse:speakers (48000 Hz, 1 ch, f32)".into())
        );
        assert!(
            m.notice
                .as_ref()
                .unwrap()
                .text
                .starts_with("Speaker now: pulse:speakers")
        );
        let lost = EngineEvent::Device {
            role: DeviceRole::Microphone,
            change: DeviceChange::Lost,
        };
        update(&mut m, Msg::Engine(lost));
        assert!(matches!(m.input, Device::Missing(_)));
        assert_eq!(m.notice.as_ref().unwrap().level, NoticeLevel::Error);
    }

    #[test]
    fn processing_keys_toggle_their_stage_from_what_the_engine_reported() {
        use crate::audio::processing::{EchoStats, NoiseLevel, Processing, Stage};
        use crate::engine::chain_cost::ChainCost;
        let mut m = model(TalkMode::Open, PttStyle::Repeat);
        let report = |stages| {
            Msg::Engine(EngineEvent::Processing {
                stages,
                echo: EchoStats::default(),
                cost: ChainCost::default(),
            })
        };
        update(&mut m, report(Processing::ALL));
        assert_eq!(m.processing, Processing::ALL);
        let asks = |cmds: Vec<Cmd>| match cmds.as_slice() {
            [Cmd::Engine(EngineCommand::SetStage { stage, on })] => (*stage, *on),
            other => panic!("{other:?}"),
        };
        assert_eq!(asks(update(&mut m, press('E'))), (Stage::Echo, false));
        assert_eq!(m.notice.as_ref().unwrap().text, "Echo cancellation off.");
        assert_eq!(m.processing, Processing::ALL, "the engine's word decides");
        update(&mut m, report(Processing::ALL.with(Stage::Echo, false)));
        assert_eq!(asks(update(&mut m, press('E'))), (Stage::Echo, true));
        assert_eq!(asks(update(&mut m, press('N'))), (Stage::Noise, false));
        assert_eq!(asks(update(&mut m, press('G'))), (Stage::Gain, false));
        assert_eq!(asks(update(&mut m, press('V'))), (Stage::Voice, false));
        assert_eq!(
            m.notice.as_ref().unwrap().text,
            "Voice activity from the level threshold."
        );
        // The noise level: strong by default, L turns it to high and back.
        assert!(matches!(
            update(&mut m, press('L')).as_slice(),
            [Cmd::Engine(EngineCommand::SetNoiseLevel(NoiseLevel::High))]
        ));
        let high = Processing {
            noise_level: NoiseLevel::High,
            ..Processing::ALL
        };
        update(&mut m, report(high));
        assert!(matches!(
            update(&mut m, press('L')).as_slice(),
            [Cmd::Engine(EngineCommand::SetNoiseLevel(
                NoiseLevel::Strong
            ))]
        ));
        m.input = Device::Ready("pulse:mic".into());
        let footer = crate::tui::view::footer_line(&m).to_string();
        assert!(
            footer.contains("processing: echo noise:high gain"),
            "{footer}"
        );
        update(&mut m, report(Processing::NONE));
        m.input = Device::Ready("pulse:mic".into());
        let footer = crate::tui::view::footer_line(&m).to_string();
        assert!(footer.contains("processing: none"), "{footer}");
    }

    #[test]
    fn volume_keys_turn_the_selected_peer_up_down_and_off_and_remember_it() {
        let mut m = model(TalkMode::Open, PttStyle::Repeat);
        // Nobody here: nothing to turn.
        assert!(update(&mut m, press('+')).is_empty());
        status(&mut m, VoiceStatus::Connected { channel: 1 }, "General");
        let join = |who| PresenceChange {
            op: PresenceOp::Join,
            channel: 1,
            member: member(who),
        };
        update(
            &mut m,
            Msg::Engine(EngineEvent::Presence(vec![
                join("alice"),
                join("bob"),
                join("carol"),
            ])),
        );
        let set = |cmds: Vec<Cmd>| match cmds.as_slice() {
            [
                Cmd::Engine(EngineCommand::SetVolume { user, percent }),
                Cmd::SaveVolumes,
            ] => (user.clone(), *percent),
            other => panic!("{other:?}"),
        };
        // The first person is the target until another is selected.
        assert_eq!(set(update(&mut m, press('-'))), ("bob".into(), 90));
        update(&mut m, key(KeyCode::Tab, KeyEventKind::Press));
        assert_eq!(m.selected_peer.as_deref(), Some("carol"));
        assert_eq!(set(update(&mut m, press('='))), ("carol".into(), 110));
        for _ in 0..20 {
            update(&mut m, press('+'));
        }
        assert_eq!(m.volume("carol"), 200, "no louder than 200 %");
        assert_eq!(set(update(&mut m, press('M'))), ("carol".into(), 0));
        assert!(
            m.notice
                .as_ref()
                .unwrap()
                .text
                .contains("muted, for you alone")
        );
        assert_eq!(set(update(&mut m, press('M'))), ("carol".into(), 100));
        assert!(!m.volumes.contains_key("carol"), "100 % is not remembered");
        // Tab wraps; bob kept his 90 %.
        update(&mut m, key(KeyCode::Tab, KeyEventKind::Press));
        assert_eq!(m.selected_peer.as_deref(), Some("bob"));
        assert_eq!(m.volumes.get("bob"), Some(&90));
        for _ in 0..12 {
            update(&mut m, press('-'));
        }
        assert_eq!(m.volume("bob"), 0, "no quieter than 0 %");
    }

    #[test]
    fn peer_events_and_stats_fill_the_peers_panel() {
        let mut m = model(TalkMode::Open, PttStyle::Repeat);
        status(&mut m, VoiceStatus::Connected { channel: 1 }, "General");
        update(
            &mut m,
            Msg::Engine(EngineEvent::Peer {
                user: "bob".into(),
                state: CallState::Connected,
                candidate: Some(CandidateKind::Relay),
            }),
        );
        let report = PeerReport {
            user: "bob".into(),
            state: CallState::Connected,
            candidate: None,
            packets_received: 100,
            bytes_received: 1,
            packets_sent: 100,
            bytes_sent: 1,
            packets_lost: 2,
            loss: 0.02,
            jitter_ms: 1.0,
            rtt_ms: Some(12.5),
            concealed: 0,
            buffer_frames: 3,
            jitter: Default::default(),
            fec_recovered: 0,
            plc_frames: 0,
            speaking: true,
        };
        update(&mut m, Msg::Engine(EngineEvent::Stats(vec![report])));
        let bob = &m.peers["bob"];
        assert_eq!(bob.candidate, Some(CandidateKind::Relay), "kept");
        assert_eq!(
            (bob.rtt_ms, bob.loss, bob.speaking),
            (Some(12.5), Some(0.02), true)
        );
        update(
            &mut m,
            Msg::Engine(EngineEvent::Peer {
                user: "bob".into(),
                state: CallState::Closed,
                candidate: None,
            }),
        );
        assert!(m.peers.is_empty());
    }

    #[test]
    fn stats_are_asked_for_about_once_a_second_only_in_voice() {
        let mut m = model(TalkMode::Open, PttStyle::Repeat);
        let t0 = Instant::now();
        assert!(update(&mut m, Msg::Tick(t0)).is_empty(), "not in voice");
        status(&mut m, VoiceStatus::Connected { channel: 1 }, "General");
        assert_eq!(
            engine_cmds(update(&mut m, Msg::Tick(t0))),
            ["Engine(Stats)"]
        );
        assert!(update(&mut m, Msg::Tick(t0 + TICK)).is_empty());
        assert_eq!(
            engine_cmds(update(&mut m, Msg::Tick(t0 + STATS_EVERY))),
            ["Engine(Stats)"]
        );
    }

    #[test]
    fn errors_show_as_notices_that_expire_and_signaling_loss_marks_the_server() {
        let mut m = model(TalkMode::Open, PttStyle::Repeat);
        update(
            &mut m,
            Msg::Engine(EngineEvent::Error {
                error: EngineError::SignalingLost(SignalingLoss {
                    reason: "connection refused".into(),
                    retry_in: Duration::from_millis(500),
                }),
                channel: None,
            }),
        );
        let lost = SignalingLoss {
            reason: "connection refused".into(),
            retry_in: Duration::from_millis(500),
        };
        assert_eq!(m.server, ServerLink::Lost(lost));
        let notice = m.notice.as_ref().unwrap();
        assert_eq!(notice.level, NoticeLevel::Error);
        assert_eq!(notice.text, "connection refused; retrying in 500 ms");
        let t = Instant::now();
        for _ in 0..NOTICE_TICKS {
            update(&mut m, Msg::Tick(t));
        }
        assert!(m.notice.is_none());
        update(
            &mut m,
            Msg::Engine(EngineEvent::Mic {
                dbfs: -20.0,
                live: true,
            }),
        );
        assert!(m.mic_live && m.mic_dbfs == -20.0);
    }

    #[test]
    fn waiting_for_the_lost_connection_s_seat_is_an_information_in_the_engine_s_words() {
        let mut m = model(TalkMode::Open, PttStyle::Repeat);
        let held = crate::engine::SeatStillHeld {
            channel: 1,
            name: Some("General".into()),
            patience: Duration::from_secs(40),
        };
        let words = held.to_string();
        update(
            &mut m,
            Msg::Engine(EngineEvent::Error {
                error: EngineError::SeatStillHeld(held),
                channel: Some(1),
            }),
        );
        let notice = m.notice.as_ref().unwrap();
        assert_eq!(notice.level, NoticeLevel::Info);
        assert_eq!(notice.text, words);
        assert!(notice.text.contains("still held"), "{}", notice.text);
    }

    // --- chat ------------------------------------------------------------------------------

    fn chat_message(id: u64, channel: u32, user: &str, text: &str) -> EngineEvent {
        EngineEvent::Message(cromulent_protocol::ChatMessage {
            id,
            channel,
            user: user.into(),
            name: user.into(),
            time: 0,
            text: text.into(),
        })
    }

    #[test]
    fn the_chat_follows_the_selection_and_a_reconnect_fetches_it_again() {
        let mut m = model(TalkMode::PushToTalk, PttStyle::Hold);
        assert_eq!(m.chat.channel, Some(1), "the first channel's chat opens");
        let cmds = engine_cmds(update(&mut m, key(KeyCode::Down, KeyEventKind::Press)));
        assert_eq!(
            cmds,
            [
                "Engine(Watch(Some(2)))",
                "Engine(History { channel: 2, before: None })"
            ]
        );
        update(&mut m, Msg::Engine(chat_message(7, 1, "bob", "hi alice")));
        assert_eq!(
            m.chat.unread.get(&1).map(|u| (u.count, u.mention)),
            Some((1, true))
        );
        let again = update(
            &mut m,
            Msg::Engine(EngineEvent::ServerConnected {
                user: "alice".into(),
                resumed: true,
                channels: vec![channel(1, "General"), channel(2, "Gaming")],
            }),
        );
        assert_eq!(
            engine_cmds(again),
            [
                "Engine(Watch(Some(2)))",
                "Engine(History { channel: 2, before: None })"
            ]
        );
    }

    #[test]
    fn while_typing_every_key_types_the_talk_key_too_and_enter_sends() {
        let mut m = model(TalkMode::PushToTalk, PttStyle::Hold);
        // Holding the talk key, then opening the input: the key is let go.
        update(&mut m, key(KeyCode::Char(' '), KeyEventKind::Press));
        assert!(m.talk.talk());
        let cmds = engine_cmds(update(&mut m, press('c')));
        assert_eq!(cmds, ["Engine(Talk(false))"]);
        assert_eq!(m.chat.input.as_deref(), Some(""));
        for c in "q m d x ? j".chars() {
            assert!(update(&mut m, press(c)).is_empty(), "{c:?} types");
        }
        assert!(!m.talk.talk() && !m.talk.muted() && !m.quitting);
        assert_eq!(m.chat.input.as_deref(), Some("q m d x ? j"));
        update(&mut m, key(KeyCode::Backspace, KeyEventKind::Press));
        update(&mut m, key(KeyCode::Char('k'), KeyEventKind::Release));
        let sent = engine_cmds(update(&mut m, key(KeyCode::Enter, KeyEventKind::Press)));
        assert_eq!(
            sent,
            [r#"Engine(Say { channel: Some(ChannelRef("1")), text: "q m d x ? " })"#]
        );
        // Esc leaves the line; keys act again.
        update(&mut m, press('z'));
        update(&mut m, key(KeyCode::Esc, KeyEventKind::Press));
        assert_eq!(
            (m.chat.input.as_deref(), m.chat.draft.as_str()),
            (None, "z")
        );
        assert_eq!(
            engine_cmds(update(&mut m, press('m'))),
            ["Engine(Mute(true))"]
        );
    }

    #[test]
    fn ctrl_c_quits_even_while_typing() {
        let mut m = model(TalkMode::PushToTalk, PttStyle::Hold);
        update(&mut m, press('/'));
        let cmds = update(
            &mut m,
            Msg::Key(
                KeyEvent::new_with_kind(
                    KeyCode::Char('c'),
                    KeyModifiers::CONTROL,
                    KeyEventKind::Press,
                ),
                Instant::now(),
            ),
        );
        assert!(m.quitting && matches!(cmds.as_slice(), [Cmd::Quit]));
    }

    #[test]
    fn control_requests_act_like_their_keys_with_the_value_asked_for() {
        use crate::ctl::{Request, Switch};
        let mut m = model(TalkMode::PushToTalk, PttStyle::Repeat);
        let cmds = engine_cmds(update(&mut m, Msg::Control(Request::Talk(Switch::On))));
        assert_eq!(cmds, ["Engine(Talk(true))"]);
        assert!(m.talk.talk());
        let cmds = engine_cmds(update(&mut m, Msg::Control(Request::Mute(Switch::Toggle))));
        assert_eq!(cmds, ["Engine(Mute(true))"]);
        let cmds = engine_cmds(update(&mut m, Msg::Control(Request::Mute(Switch::On))));
        assert_eq!(cmds, ["Engine(Mute(true))"], "on stays on");
        let cmds = engine_cmds(update(&mut m, Msg::Control(Request::Talk(Switch::Off))));
        assert_eq!(cmds, ["Engine(Talk(false))"]);
        assert!(update(&mut m, Msg::Control(Request::Status { json: false })).is_empty());
    }
}
