//! The terminal client's screen, drawn into ratatui's `TestBackend` from models built the way
//! the app builds them (engine events through `update`), checked by text *and* colour.

use cromulent::engine::{
    CallState, DisconnectReason, EngineError, EngineEvent, PeerReport, SignalingLoss, TalkMode,
    VoiceStatus,
};
use cromulent::rtc::CandidateKind;
use cromulent::tui::keys::KeyMap;
use cromulent::tui::model::{Device, Model, PttStyle};
use cromulent::tui::update::{Msg, update};
use cromulent::tui::view::{METER_CELLS, meter_cells, view};
use cromulent_protocol::{ChannelInfo, ErrorReason, Member, PresenceChange, PresenceOp};
use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::buffer::Buffer;
use ratatui::style::{Color, Modifier};

const W: u16 = 120;
const H: u16 = 30;
/// Rows from the bottom: status line, then devices.
const STATUS_ROW: u16 = H - 2;
const FOOTER_ROW: u16 = H - 1;

fn member(user: &str) -> Member {
    Member {
        user: user.into(),
        name: user.into(),
        muted: false,
        deafened: false,
        talking: false,
        instance: 1,
    }
}

fn channel(id: u32, name: &str) -> ChannelInfo {
    ChannelInfo {
        id,
        name: name.into(),
        members: Vec::new(),
    }
}

fn send(m: &mut Model, ev: EngineEvent) {
    update(m, Msg::Engine(ev));
}

/// alice, connected to a server with General/Gaming/Echo, nobody in voice yet.
fn model(ptt: PttStyle) -> Model {
    let mut m = Model::new(
        "ws://127.0.0.1:4000".into(),
        "alice".into(),
        TalkMode::PushToTalk,
        ptt,
        KeyMap::default(),
    );
    m.input = Device::Ready("default (48000 Hz, 1 ch, f32)".into());
    m.output = Device::Ready("default (48000 Hz, 2 ch, f32 → 48 kHz mono)".into());
    send(
        &mut m,
        EngineEvent::ServerConnected {
            user: "alice".into(),
            resumed: false,
            channels: vec![
                channel(1, "General"),
                channel(2, "Gaming"),
                channel(3, "Echo"),
            ],
        },
    );
    m
}

fn status(m: &mut Model, status: VoiceStatus) {
    send(
        m,
        EngineEvent::Status {
            status,
            channel_name: Some("General".into()),
        },
    );
}

/// General holds alice (us), bob (muted, talking) and carol (deafened).
fn populated(m: &mut Model) {
    let mut bob = member("bob");
    bob.muted = true;
    bob.talking = true;
    let mut carol = member("carol");
    carol.deafened = true;
    let join = |member| PresenceChange {
        op: PresenceOp::Join,
        channel: 1,
        member,
    };
    send(
        m,
        EngineEvent::Presence(vec![join(member("alice")), join(bob), join(carol)]),
    );
}

fn render(m: &Model) -> Buffer {
    let mut t = Terminal::new(TestBackend::new(W, H)).unwrap();
    t.draw(|f| view(m, f)).unwrap();
    t.backend().buffer().clone()
}

fn row(buf: &Buffer, y: u16) -> String {
    (0..W).map(|x| buf[(x, y)].symbol()).collect()
}

/// Where `text` starts on screen (first match, top to bottom).
fn find(buf: &Buffer, text: &str) -> Option<(u16, u16)> {
    (0..H).find_map(|y| {
        let r = row(buf, y);
        r.find(text)
            .map(|byte| (r[..byte].chars().count() as u16, y))
    })
}

fn at(buf: &Buffer, text: &str) -> (u16, u16) {
    find(buf, text).unwrap_or_else(|| panic!("{text:?} not on screen:\n{}", screen(buf)))
}

fn screen(buf: &Buffer) -> String {
    (0..H).map(|y| row(buf, y) + "\n").collect()
}

fn fg(buf: &Buffer, pos: (u16, u16)) -> Color {
    buf[pos].fg
}

#[test]
fn status_line_is_empty_outside_voice() {
    let buf = render(&model(PttStyle::Repeat));
    let line = row(&buf, STATUS_ROW);
    assert!(!line.contains('●'), "{line}");
    assert!(!line.contains("Connecting") && !line.contains("Disconnected"));
    assert!(line.contains("push-to-talk (hold or tap): space"), "{line}");
    assert!(line.contains("○ mic off"), "{line}");
}

#[test]
fn status_line_connecting_is_yellow() {
    let mut m = model(PttStyle::Repeat);
    status(&mut m, VoiceStatus::Connecting { channel: 1 });
    let buf = render(&m);
    let dot = at(&buf, "● Connecting…");
    assert_eq!(dot.1, STATUS_ROW);
    assert_eq!(fg(&buf, dot), Color::Yellow);
    assert_eq!(fg(&buf, (dot.0 + 2, dot.1)), Color::Yellow, "the words too");
    assert!(row(&buf, STATUS_ROW).contains("Connecting… General"));
}

#[test]
fn status_line_connected_is_green_with_the_channel_name() {
    let mut m = model(PttStyle::Repeat);
    status(&mut m, VoiceStatus::Connected { channel: 1 });
    let buf = render(&m);
    let dot = at(&buf, "● General");
    assert_eq!(dot.1, STATUS_ROW);
    assert_eq!(fg(&buf, dot), Color::Green);
    assert_eq!(fg(&buf, (dot.0 + 2, dot.1)), Color::Green);
    assert!(buf[dot].modifier.contains(Modifier::BOLD));
}

#[test]
fn status_line_disconnected_is_red_with_the_reason() {
    let mut m = model(PttStyle::Repeat);
    status(&mut m, VoiceStatus::Connecting { channel: 1 });
    status(
        &mut m,
        VoiceStatus::Disconnected {
            channel: Some(1),
            reason: DisconnectReason::JoinRefused {
                reason: ErrorReason::AlreadyInChannel,
                message: "alice is already in General".into(),
            },
        },
    );
    let buf = render(&m);
    let dot = at(
        &buf,
        "● Disconnected — already in this channel from another session",
    );
    assert_eq!(dot.1, STATUS_ROW);
    assert_eq!(fg(&buf, dot), Color::Red);
    assert_eq!(fg(&buf, (dot.0 + 20, dot.1)), Color::Red);
}

#[test]
fn ascii_draws_the_screen_with_ascii_only() {
    let mut m = model(PttStyle::Repeat);
    populated(&mut m);
    status(&mut m, VoiceStatus::Connected { channel: 1 });
    send(
        &mut m,
        EngineEvent::Message(cromulent_protocol::ChatMessage {
            id: 1,
            channel: 1,
            user: "bob".into(),
            name: "bob".into(),
            time: 0,
            text: "hello there".into(),
        }),
    );
    let fancy = render(&m);
    assert!(
        fancy.content.iter().any(|c| !c.symbol().is_ascii()),
        "the ordinary screen has box lines and dots (else this test proves nothing)"
    );
    m.ascii = true;
    let plain = render(&m);
    let odd: Vec<&str> = plain
        .content
        .iter()
        .map(|c| c.symbol())
        .filter(|s| !s.is_ascii())
        .collect();
    assert!(odd.is_empty(), "not ASCII: {odd:?}\n{}", screen(&plain));
    assert!(screen(&plain).contains("* General"), "{}", screen(&plain));
    assert!(
        screen(&plain).contains("bob: hello there"),
        "{}",
        screen(&plain)
    );
}

#[test]
fn no_color_draws_the_same_words_without_a_colour() {
    let mut m = model(PttStyle::Repeat);
    populated(&mut m);
    status(
        &mut m,
        VoiceStatus::Disconnected {
            channel: Some(1),
            reason: DisconnectReason::JoinRefused {
                reason: ErrorReason::AlreadyInChannel,
                message: "m".into(),
            },
        },
    );
    let coloured = render(&m);
    assert!(
        coloured.content.iter().any(|c| c.fg != Color::Reset),
        "the ordinary screen has colours (else this test proves nothing)"
    );
    m.no_color = true;
    let plain = render(&m);
    assert_eq!(screen(&plain), screen(&coloured), "the same text");
    assert!(
        plain
            .content
            .iter()
            .all(|c| c.fg == Color::Reset && c.bg == Color::Reset),
        "no colour anywhere"
    );
    assert!(row(&plain, STATUS_ROW).contains("● Disconnected — already in this channel"));
}

#[test]
fn status_line_shows_live_mic_mute_deafen_and_a_meter() {
    let press = |c| {
        Msg::Key(
            KeyEvent::new_with_kind(KeyCode::Char(c), KeyModifiers::NONE, KeyEventKind::Press),
            std::time::Instant::now(),
        )
    };
    let mut m = model(PttStyle::Hold);
    status(&mut m, VoiceStatus::Connected { channel: 1 });
    update(&mut m, press(' '));
    send(
        &mut m,
        EngineEvent::Mic {
            dbfs: -30.0,
            live: true,
        },
    );
    let buf = render(&m);
    let line = row(&buf, STATUS_ROW);
    assert!(line.contains("push-to-talk: hold space"), "{line}");
    let live = at(&buf, "● LIVE");
    assert_eq!(fg(&buf, live), Color::Green);
    let lit = meter_cells(-30.0);
    assert_eq!(lit, METER_CELLS / 2);
    let meter = at(&buf, "mic ▮");
    let bar = &line[line.find("mic ▮").unwrap() + 4..];
    assert!(
        bar.starts_with(&"▮".repeat(lit)) && bar[lit * 3..].starts_with('▯'),
        "{bar}"
    );
    assert_eq!(
        fg(&buf, (meter.0 + 4, meter.1)),
        Color::Green,
        "lit and live"
    );
    assert!(line.contains("-30 dB"));
    assert!(!line.contains("MUTED"));

    // Mute and deafen by key; the engine then reports the mic closed.
    let press = |c| {
        Msg::Key(
            KeyEvent::new_with_kind(KeyCode::Char(c), KeyModifiers::NONE, KeyEventKind::Press),
            std::time::Instant::now(),
        )
    };
    update(&mut m, press('m'));
    let buf = render(&m);
    assert!(
        find(&buf, "● LIVE").is_none(),
        "mute closes the mic on screen at once, before the engine's next report"
    );
    update(&mut m, press('d'));
    send(
        &mut m,
        EngineEvent::Mic {
            dbfs: -30.0,
            live: false,
        },
    );
    let buf = render(&m);
    assert_eq!(fg(&buf, at(&buf, "MUTED")), Color::Red);
    assert_eq!(fg(&buf, at(&buf, "DEAFENED")), Color::Red);
    assert!(find(&buf, "● LIVE").is_none());
    let meter = at(&buf, "mic ▮");
    assert_eq!(
        fg(&buf, (meter.0 + 4, meter.1)),
        Color::DarkGray,
        "dim when not sent"
    );
}

#[test]
fn channel_list_shows_occupants_with_their_marks() {
    let mut m = model(PttStyle::Repeat);
    populated(&mut m);
    let buf = render(&m);
    at(&buf, "▸ General (3)");
    let name = at(&buf, "General (3)");
    assert!(buf[name].modifier.contains(Modifier::REVERSED), "selected");
    at(&buf, "alice (you)");
    let bob = at(&buf, "● bob [muted]");
    assert_eq!(fg(&buf, bob), Color::Green, "talking mark");
    let muted = at(&buf, "[muted]");
    assert_eq!(fg(&buf, muted), Color::Yellow);
    let deaf = at(&buf, "carol [deafened]");
    assert_eq!(fg(&buf, (deaf.0 + 6, deaf.1)), Color::Red);
    // Members are listed under their channel, in join order, before the next channel.
    let gaming = at(&buf, "  Gaming");
    assert!(at(&buf, "alice").1 < bob.1 && bob.1 < deaf.1 && deaf.1 < gaming.1);
    // The joined channel's name turns green.
    status(&mut m, VoiceStatus::Connected { channel: 1 });
    let buf = render(&m);
    assert_eq!(fg(&buf, at(&buf, "General (3)")), Color::Green);
}

#[test]
fn channel_list_follows_presence_when_someone_leaves() {
    let mut m = model(PttStyle::Repeat);
    populated(&mut m);
    send(
        &mut m,
        EngineEvent::Presence(vec![
            PresenceChange {
                op: PresenceOp::Leave,
                channel: 1,
                member: member("bob"),
            },
            PresenceChange {
                op: PresenceOp::Join,
                channel: 3,
                member: member("bob"),
            },
        ]),
    );
    let buf = render(&m);
    at(&buf, "General (2)");
    let echo = at(&buf, "Echo (1)");
    let bob = at(&buf, "bob");
    assert!(bob.1 > echo.1, "bob now under Echo");
}

#[test]
fn peers_panel_shows_state_path_rtt_loss_and_speaking() {
    let mut m = model(PttStyle::Repeat);
    populated(&mut m);
    let buf = render(&m);
    at(&buf, "Not in a voice channel.");

    status(&mut m, VoiceStatus::Connected { channel: 1 });
    send(
        &mut m,
        EngineEvent::Peer {
            user: "carol".into(),
            state: CallState::Connecting,
            candidate: None,
        },
    );
    let report = PeerReport {
        user: "bob".into(),
        state: CallState::Connected,
        candidate: Some(CandidateKind::Relay),
        packets_received: 500,
        bytes_received: 40_000,
        packets_sent: 500,
        bytes_sent: 40_000,
        packets_lost: 10,
        loss: 0.02,
        jitter_ms: 2.0,
        rtt_ms: Some(12.4),
        concealed: 0,
        buffer_frames: 3,
        jitter: Default::default(),
        fec_recovered: 0,
        plc_frames: 0,
        speaking: true,
    };
    send(&mut m, EngineEvent::Stats(vec![report]));
    let buf = render(&m);
    at(&buf, "Peers — General");
    let header = at(&buf, "Peer ");
    let bob = at(&buf, "bob ");
    let bob_row = row(&buf, bob.1);
    assert!(bob.1 > header.1 && bob.0 > 40, "in the peers panel");
    for cell in ["connected", "relayed (TURN)", "12 ms", "2.0%", "● speaking"] {
        assert!(bob_row.contains(cell), "{cell:?} missing from {bob_row:?}");
    }
    let connected = bob_row[..bob_row.find("connected").unwrap()]
        .chars()
        .count() as u16;
    let connected = (connected, bob.1);
    assert_eq!(fg(&buf, connected), Color::Green);
    let speaking = bob_row[..bob_row.find("● speaking").unwrap()]
        .chars()
        .count() as u16;
    assert_eq!(fg(&buf, (speaking, bob.1)), Color::Green);

    let carol = (0..H)
        .find(|&y| {
            let r = row(&buf, y);
            r.contains("carol") && r.contains("connecting")
        })
        .map(|y| (0, y))
        .unwrap_or_else(|| panic!("carol's peer row:\n{}", screen(&buf)));
    let carol_row = row(&buf, carol.1);
    assert!(
        carol_row.contains("connecting") && carol_row.contains('—'),
        "{carol_row}"
    );
    let pos = carol_row[..carol_row.find("connecting").unwrap()]
        .chars()
        .count() as u16;
    assert_eq!(fg(&buf, (pos, carol.1)), Color::Yellow);
    assert!(
        !screen(&buf).contains("alice      "),
        "we are not our own peer"
    );

    // Direct path, once a host pair is selected.
    send(
        &mut m,
        EngineEvent::Peer {
            user: "carol".into(),
            state: CallState::Connected,
            candidate: Some(CandidateKind::Host),
        },
    );
    assert!(screen(&render(&m)).contains("direct (host)"));
}

#[test]
fn missing_devices_are_said_plainly() {
    let mut m = model(PttStyle::Repeat);
    m.input = Device::Missing("no sound server or card found".into());
    m.output = Device::Missing("no sound server or card found".into());
    let buf = render(&m);
    let footer = row(&buf, FOOTER_ROW);
    assert!(
        footer.contains(
            "no microphone, no speaker — no sound server or card found (see docs/TUI.md#sound)"
        ),
        "{footer}"
    );
    assert_eq!(
        fg(&buf, at(&buf, "no microphone, no speaker")),
        Color::Yellow
    );
    assert!(
        row(&buf, STATUS_ROW).contains("no microphone"),
        "instead of a meter"
    );

    m.output = Device::Ready("default (48000 Hz, 2 ch, f32 → 48 kHz mono)".into());
    let footer = row(&render(&m), FOOTER_ROW);
    assert!(
        footer.contains("no microphone — no sound server or card found"),
        "{footer}"
    );
    assert!(
        footer.contains("speaker: default (48000 Hz, 2 ch"),
        "{footer}"
    );
}

#[test]
fn help_overlay_lists_the_keys_and_how_talking_works_here() {
    let mut m = model(PttStyle::Repeat);
    m.help = true;
    let text = screen(&render(&m));
    for expected in [
        "Help",
        "enter",
        "join the selected channel",
        "ctrl-c",
        "quit, always",
    ] {
        assert!(text.contains(expected), "{expected:?} missing:\n{text}");
    }
    assert!(text.contains("does not report key release"), "{text}");
    assert!(text.contains("Key repeat: not seen yet"), "{text}");
    // All of it on a 30-row screen (the blank lines give way), to the last line.
    assert!(
        text.contains("L           noise suppression strong"),
        "{text}"
    );
    assert!(text.contains("[keys] table of the config file"), "{text}");
    assert!(text.contains("Press any key to close."), "{text}");
    // A hold as a keyboard sends it: a press, 500 ms, then repeats every 33 ms.
    let t0 = std::time::Instant::now();
    let at = |ms: u64| t0 + std::time::Duration::from_millis(ms);
    m.hold.press(at(0));
    for k in 0..10 {
        m.hold.press(at(500 + 33 * k));
    }
    let text = screen(&render(&m));
    assert!(
        text.contains("Key repeat learned: starts after 500 ms, then every 33 ms."),
        "{text}"
    );
    let mut m = model(PttStyle::Hold);
    m.help = true;
    assert!(screen(&render(&m)).contains("hold the talk key to talk"));
}

#[test]
fn title_shows_who_where_and_the_server_state() {
    let m = model(PttStyle::Repeat);
    let buf = render(&m);
    let title = row(&buf, 0);
    assert!(title.contains("alice @ ws://127.0.0.1:4000"), "{title}");
    assert_eq!(fg(&buf, at(&buf, "connected")), Color::Green);
    let mut m = m;
    send(
        &mut m,
        EngineEvent::Error {
            error: EngineError::SignalingLost(SignalingLoss {
                reason: "connection refused".into(),
                retry_in: std::time::Duration::from_millis(500),
            }),
            channel: None,
        },
    );
    let buf = render(&m);
    let lost = at(&buf, "server unreachable: connection refused");
    assert_eq!((lost.1, fg(&buf, lost)), (0, Color::Red));
}
