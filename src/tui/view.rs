//! Draws a [`Model`]; changes nothing, decides nothing, reads no clock.
//! It must never mutate the model or send the engine anything: it gets `&Model` and a frame.
//!
//! ```text
//!  Cromulent Voice · alice @ ws://127.0.0.1:4000 · connected   ? help · q quit   ← title
//! ┌ Channels ──────────┐┌ Peers — General ──────────────────────────┐
//! │▸ General (2)       ││ Peer   State      Path          RTT  Loss │
//! │    ◉ alice (you)   ││ bob    connected  direct (host) 1 ms 0.0% │
//! │      bob [muted]   │└───────────────────────────────────────────┘
//! │  Gaming [2 new]    │┌ Chat — General ───────────────────────────┐
//! │                    ││ 12:01 bob: can you hear me?               │
//! │                    ││ > loud and clear█                         │
//! └────────────────────┘└───────────────────────────────────────────┘
//!  notice (errors, hints; fades after a few seconds)
//!  ● General │ push-to-talk (toggle) │ ○ mic off │ MUTED │ mic ▮▮▮▯▯▯ -30 dB   ← status line
//!  mic: default (48000 Hz, 1 ch, f32) │ no speaker — … (see docs/TUI.md#sound) ← devices
//! ```

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Cell, Clear, Paragraph, Row, Table, Wrap};

use super::chat;
use super::keys::Action;
use super::model::{Device, Model, NoticeLevel, PeerView, PttStyle, ServerLink};
use super::update::mode_words;
use crate::engine::{CallState, TalkMode, VoiceStatus};
use crate::rtc::CandidateKind;

const GREEN: Style = Style::new().fg(Color::Green);
const YELLOW: Style = Style::new().fg(Color::Yellow);
const RED: Style = Style::new().fg(Color::Red);
const DIM: Style = Style::new().fg(Color::DarkGray);
const BOLD: Style = Style::new().add_modifier(Modifier::BOLD);

/// The status line's dot.
pub const DOT: &str = "●";

pub fn view(model: &Model, frame: &mut Frame) {
    let [title, main, notice, status, footer] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(3),
        Constraint::Length(1),
        Constraint::Length(1),
        Constraint::Length(1),
    ])
    .areas(frame.area());
    frame.render_widget(Paragraph::new(title_line(model)), title);
    let [channels, right] =
        Layout::horizontal([Constraint::Percentage(35), Constraint::Percentage(65)]).areas(main);
    // The peers panel as tall as its table (a header and a row per peer), the chat below.
    let peer_rows = u16::try_from(model.peer_members().len()).unwrap_or(u16::MAX);
    let peers_height = peer_rows.saturating_add(4).clamp(4, 10);
    let [peers, chat] =
        Layout::vertical([Constraint::Length(peers_height), Constraint::Min(4)]).areas(right);
    draw_channels(model, frame, channels);
    draw_peers(model, frame, peers);
    draw_chat(model, frame, chat);
    frame.render_widget(Paragraph::new(notice_line(model)), notice);
    frame.render_widget(Paragraph::new(status_line(model)), status);
    frame.render_widget(Paragraph::new(footer_line(model)), footer);
    if model.help {
        draw_help(model, frame);
    }
    if model.ascii {
        for cell in frame.buffer_mut().content.iter_mut() {
            let mut chars = cell.symbol().chars();
            if let (Some(c), None) = (chars.next(), chars.next())
                && let Some(a) = ascii_glyph(c)
            {
                cell.set_char(a);
            }
        }
    }
    if model.no_color {
        // NO_COLOR: the same screen with every colour taken out; the words and the bold and
        // reverse marks carry every state.
        for cell in frame.buffer_mut().content.iter_mut() {
            cell.fg = Color::Reset;
            cell.bg = Color::Reset;
        }
    }
}

/// The screen's own glyphs in ASCII (`--ascii`): frames, dots, arrows, meters, the chat's
/// control pictures. Every one is one cell wide, as its stand-in.
pub fn ascii_glyph(c: char) -> Option<char> {
    Some(match c {
        '─' | '━' | '═' | '—' | '–' | '·' => '-',
        '│' | '┃' | '║' => '|',
        '\u{2500}'..='\u{257F}' => '+',
        '●' | '◉' => '*',
        '○' => 'o',
        '▸' | '→' => '>',
        '▮' | '█' => '#',
        '▯' | '…' => '.',
        '\u{2400}'..='\u{2421}' => '^',
        '\u{FFFD}' => '?',
        _ => return None,
    })
}

fn title_line(model: &Model) -> Line<'static> {
    let (state, style) = match &model.server {
        ServerLink::Connecting => ("connecting…".to_owned(), YELLOW),
        ServerLink::Connected => ("connected".to_owned(), GREEN),
        ServerLink::Lost(loss) => (format!("server unreachable: {loss}"), RED),
        ServerLink::Failed { message, .. } => (format!("refused: {message}"), RED),
    };
    Line::from(vec![
        Span::styled(" Cromulent Voice", BOLD),
        Span::raw(format!(" · {} @ {} · ", model.me, model.server_url)),
        Span::styled(state, style),
        Span::styled(
            format!(
                "   {} help · {} quit",
                model.keys.label(Action::Help),
                model.keys.label(Action::Quit)
            ),
            DIM,
        ),
    ])
}

/// The status line: voice state, talk mode, mic, mute/deafen, level meter.
pub fn status_line(model: &Model) -> Line<'static> {
    let mut spans = vec![Span::raw(" ")];
    match &model.voice {
        VoiceStatus::None => {}
        VoiceStatus::Connecting { .. } => {
            spans.push(Span::styled(format!("{DOT} Connecting…"), YELLOW));
            spans.push(Span::raw(format!(" {}", model.voice_channel_label())));
        }
        VoiceStatus::Connected { .. } => {
            spans.push(Span::styled(
                format!("{DOT} {}", model.voice_channel_label()),
                GREEN.add_modifier(Modifier::BOLD),
            ));
        }
        VoiceStatus::Disconnected { reason, .. } => {
            spans.push(Span::styled(format!("{DOT} Disconnected — {reason}"), RED));
        }
    }
    if model.voice != VoiceStatus::None {
        spans.push(sep());
    }
    let talk_key = model.keys.label(Action::Talk);
    let mode = match (model.talk.mode(), model.ptt) {
        (TalkMode::PushToTalk, PttStyle::Hold) => format!("push-to-talk: hold {talk_key}"),
        (TalkMode::PushToTalk, PttStyle::Repeat) => {
            format!("push-to-talk (hold or tap): {talk_key}")
        }
        _ => mode_words(model).to_owned(),
    };
    spans.push(Span::raw(mode));
    spans.push(sep());
    if model.mic_is_live() {
        spans.push(Span::styled(
            format!("{DOT} LIVE"),
            GREEN.add_modifier(Modifier::BOLD),
        ));
    } else {
        spans.push(Span::styled("○ mic off", DIM));
    }
    if model.talk.muted() {
        spans.push(sep());
        spans.push(Span::styled("MUTED", RED.add_modifier(Modifier::BOLD)));
    }
    if model.talk.deafened() {
        spans.push(sep());
        spans.push(Span::styled("DEAFENED", RED.add_modifier(Modifier::BOLD)));
    }
    spans.push(sep());
    match &model.input {
        Device::Ready(_) => spans.extend(meter(model.mic_dbfs, model.mic_is_live())),
        Device::Missing(_) => spans.push(Span::styled("no microphone", YELLOW)),
    }
    Line::from(spans)
}

fn sep() -> Span<'static> {
    Span::styled(" │ ", DIM)
}

/// Meter cells lit for a level: −60 dBFS and below is none, 0 dBFS is all.
pub const METER_CELLS: usize = 12;

pub fn meter_cells(dbfs: f32) -> usize {
    let fraction = ((dbfs + 60.0) / 60.0).clamp(0.0, 1.0);
    (fraction * METER_CELLS as f32).round() as usize
}

fn meter(dbfs: f32, live: bool) -> Vec<Span<'static>> {
    let lit = meter_cells(dbfs);
    let color = if dbfs > -6.0 {
        RED
    } else if dbfs > -20.0 {
        YELLOW
    } else {
        GREEN
    };
    let style = if live { color } else { DIM };
    let level = if dbfs <= -60.0 {
        "  –".to_owned()
    } else {
        format!("{:>3.0}", dbfs)
    };
    vec![
        Span::raw("mic "),
        Span::styled("▮".repeat(lit), style),
        Span::styled("▯".repeat(METER_CELLS - lit), DIM),
        Span::raw(format!(" {level} dB")),
    ]
}

fn notice_line(model: &Model) -> Line<'static> {
    match &model.notice {
        Some(n) => {
            let style = match n.level {
                NoticeLevel::Info => Style::new(),
                NoticeLevel::Error => RED,
            };
            // Notices quote servers and peers (error messages, names): data, never controls.
            Line::from(Span::styled(format!(" {}", chat::sanitize(&n.text)), style))
        }
        None => Line::default(),
    }
}

/// The sound devices in use, or which are missing and why.
pub fn footer_line(model: &Model) -> Line<'static> {
    let mut spans = vec![Span::raw(" ")];
    match (&model.input, &model.output) {
        (Device::Missing(a), Device::Missing(b)) if a == b => {
            spans.push(Span::styled(
                format!("no microphone, no speaker — {a}"),
                YELLOW,
            ));
        }
        (input, output) => {
            spans.push(match input {
                Device::Ready(text) => Span::raw(format!("mic: {text}")),
                Device::Missing(why) => Span::styled(format!("no microphone — {why}"), YELLOW),
            });
            if let Device::Ready(_) = input {
                spans.push(sep());
                spans.push(Span::raw(format!("processing: {}", model.processing)));
            }
            spans.push(sep());
            spans.push(match output {
                Device::Ready(text) => Span::raw(format!("speaker: {text}")),
                Device::Missing(why) => Span::styled(format!("no speaker — {why}"), YELLOW),
            });
        }
    }
    if [&model.input, &model.output]
        .iter()
        .any(|d| matches!(d, Device::Missing(_)))
    {
        spans.push(Span::styled(" (see docs/TUI.md#sound)", YELLOW));
    }
    Line::from(spans)
}

// --- channels ---------------------------------------------------------------------------

/// The channel list's lines, and the index of the selected channel's line.
pub fn channel_lines(model: &Model) -> (Vec<Line<'static>>, usize) {
    let mut lines = Vec::new();
    let mut selected_line = 0;
    let joined = model.voice_channel();
    for (i, channel) in model.channels.iter().enumerate() {
        let selected = i == model.cursor;
        if selected {
            selected_line = lines.len();
        }
        let marker = if selected { "▸ " } else { "  " };
        let mut name_style = if joined == Some(channel.id) {
            GREEN.add_modifier(Modifier::BOLD)
        } else {
            BOLD
        };
        if selected {
            name_style = name_style.add_modifier(Modifier::REVERSED);
        }
        let mut spans = vec![
            Span::raw(marker),
            Span::styled(channel.name.clone(), name_style),
        ];
        if !channel.members.is_empty() {
            spans.push(Span::styled(format!(" ({})", channel.members.len()), DIM));
        }
        if let Some(unread) = model.chat.unread.get(&channel.id) {
            let text = if unread.mention {
                format!(" [{} new, mentions you]", unread.count)
            } else {
                format!(" [{} new]", unread.count)
            };
            spans.push(Span::styled(text, YELLOW.add_modifier(Modifier::BOLD)));
        }
        lines.push(Line::from(spans));
        for m in &channel.members {
            let mut spans = vec![Span::raw("    ")];
            spans.push(if m.talking {
                Span::styled(format!("{DOT} "), GREEN)
            } else {
                Span::raw("  ")
            });
            spans.push(Span::raw(m.name.clone()));
            if m.user == model.me {
                spans.push(Span::styled(" (you)", DIM));
            }
            if m.muted {
                spans.push(Span::styled(" [muted]", YELLOW));
            }
            if m.deafened {
                spans.push(Span::styled(" [deafened]", RED));
            }
            lines.push(Line::from(spans));
        }
    }
    (lines, selected_line)
}

fn draw_channels(model: &Model, frame: &mut Frame, area: Rect) {
    let block = Block::bordered().title(" Channels ");
    let inner = block.inner(area);
    frame.render_widget(block, area);
    if model.channels.is_empty() {
        let text = match model.server {
            ServerLink::Connected => "The server has no voice channels.",
            _ => "Waiting for the server…",
        };
        frame.render_widget(Paragraph::new(Span::styled(text, DIM)), inner);
        return;
    }
    let (lines, selected) = channel_lines(model);
    // Keep the selected channel in view.
    let height = usize::from(inner.height.max(1));
    let scroll = (selected + 1).saturating_sub(height);
    frame.render_widget(
        Paragraph::new(lines).scroll((u16::try_from(scroll).unwrap_or(u16::MAX), 0)),
        inner,
    );
}

// --- peers ------------------------------------------------------------------------------

fn draw_peers(model: &Model, frame: &mut Frame, area: Rect) {
    let title = match model.voice_channel() {
        Some(_) => format!(" Peers — {} ", model.voice_channel_label()),
        None => " Peers ".to_owned(),
    };
    let block = Block::bordered().title(title);
    let inner = block.inner(area);
    frame.render_widget(block, area);
    if model.voice_channel().is_none() {
        let text = format!(
            "Not in a voice channel. Select one with {} / {} and press {} to join.",
            model.keys.label(Action::Up),
            model.keys.label(Action::Down),
            model.keys.label(Action::Join)
        );
        frame.render_widget(
            Paragraph::new(Span::styled(text, DIM)).wrap(Wrap { trim: true }),
            inner,
        );
        return;
    }
    let members = model.peer_members();
    if members.is_empty() {
        frame.render_widget(
            Paragraph::new(Span::styled("Nobody else is here yet.", DIM)),
            inner,
        );
        return;
    }
    let header = Row::new(["Peer", "State", "Path", "RTT", "Loss", ""]).style(BOLD);
    let target = model.volume_target().map(|m| m.user.clone());
    let rows = members.iter().map(|m| {
        let view = model.peers.get(&m.user).cloned().unwrap_or_default();
        let selected = target.as_ref() == Some(&m.user) && members.len() > 1;
        peer_row(&m.name, model.volume(&m.user), selected, &view)
    });
    let table = Table::new(
        rows,
        [
            Constraint::Min(10),
            Constraint::Length(13),
            Constraint::Length(15),
            Constraint::Length(8),
            Constraint::Length(7),
            Constraint::Length(11),
        ],
    )
    .header(header);
    frame.render_widget(table, inner);
}

/// A peer's name as the panel shows it: the volume beside it when not 100 %, marked when the
/// volume keys act on it (and there is a choice).
pub fn peer_name(name: &str, volume: u16, selected: bool) -> String {
    let mark = if selected { "▸ " } else { "" };
    let name = chat::sanitize(name);
    match volume {
        100 => format!("{mark}{name}"),
        0 => format!("{mark}{name} (off)"),
        v => format!("{mark}{name} {v}%"),
    }
}

fn peer_row(name: &str, volume: u16, selected: bool, p: &PeerView) -> Row<'static> {
    let (state, style) = match p.state {
        None => ("waiting", DIM),
        Some(CallState::Connecting) => ("connecting", YELLOW),
        Some(CallState::Connected) => ("connected", GREEN),
        Some(CallState::Disconnected) => ("disconnected", RED),
        Some(CallState::Failed) => ("failed", RED),
        Some(CallState::Closed) => ("closed", DIM),
    };
    let path = match p.candidate {
        None => "—",
        Some(CandidateKind::Host) => "direct (host)",
        Some(CandidateKind::Srflx) => "direct (srflx)",
        Some(CandidateKind::Prflx) => "direct (prflx)",
        Some(CandidateKind::Relay) => "relayed (TURN)",
    };
    let rtt = p
        .rtt_ms
        .map(|ms| format!("{ms:.0} ms"))
        .unwrap_or_else(|| "—".into());
    let loss = p
        .loss
        .map(|l| format!("{:.1}%", l * 100.0))
        .unwrap_or_else(|| "—".into());
    let speaking = if p.speaking {
        Cell::from(Span::styled(format!("{DOT} speaking"), GREEN))
    } else {
        Cell::from("")
    };
    Row::new(vec![
        Cell::from(peer_name(name, volume, selected)),
        Cell::from(Span::styled(state, style)),
        Cell::from(path),
        Cell::from(rtt),
        Cell::from(loss),
        speaking,
    ])
}

// --- chat -------------------------------------------------------------------------------

/// `HH:MM` of a Unix-ms time, `offset_secs` east of UTC.
pub fn clock(time_ms: u64, offset_secs: i32) -> String {
    let secs = (time_ms / 1000) as i64 + i64::from(offset_secs);
    let day = secs.rem_euclid(86_400);
    format!("{:02}:{:02}", day / 3600, day % 3600 / 60)
}

/// The chat's rows for `width` cells: every loaded message (sanitised, wrapped under its
/// `HH:MM name:` head), oldest first.
pub fn chat_rows(model: &Model, width: usize) -> Vec<Line<'static>> {
    let mut out = Vec::new();
    for m in &model.chat.messages {
        let head = format!(
            "{} {}: ",
            clock(m.time, model.chat.utc_offset_secs),
            chat::sanitize(&m.name)
        );
        let head_width = chat::width(&head);
        // A long name: the text starts on its own rows, indented two cells.
        let (indent, text_width) = if head_width * 2 > width {
            (2, width.saturating_sub(2))
        } else {
            (head_width, width - head_width)
        };
        let mine = m.user == model.me;
        let mention = !mine && chat::mentions(&m.text, &model.me);
        let text_style = if mention {
            YELLOW.add_modifier(Modifier::BOLD)
        } else {
            Style::new()
        };
        let name_style = if mine {
            GREEN.add_modifier(Modifier::BOLD)
        } else {
            BOLD
        };
        let rows = chat::rows(&m.text, text_width);
        let (time, name) = head.split_at(6);
        let mut first = vec![
            Span::styled(time.to_owned(), DIM),
            Span::styled(name.to_owned(), name_style),
        ];
        let mut rest = rows.into_iter();
        if indent == head_width {
            first.push(Span::styled(rest.next().unwrap_or_default(), text_style));
            out.push(Line::from(first));
        } else {
            out.push(Line::from(first));
        }
        for row in rest {
            out.push(Line::from(vec![
                Span::raw(" ".repeat(indent)),
                Span::styled(row, text_style),
            ]));
        }
    }
    out
}

fn draw_chat(model: &Model, frame: &mut Frame, area: Rect) {
    let name = model
        .chat
        .channel
        .and_then(|id| model.channel(id))
        .map(|c| chat::sanitize(&c.name));
    let typing = model.chat.input.is_some();
    let title = match (&name, typing) {
        (Some(n), true) => format!(" Chat — {n} · typing: Enter sends, Esc leaves "),
        (Some(n), false) => format!(" Chat — {n} "),
        (None, _) => " Chat ".to_owned(),
    };
    let block =
        Block::bordered()
            .title(title)
            .border_style(if typing { YELLOW } else { Style::new() });
    let inner = block.inner(area);
    frame.render_widget(block, area);
    if inner.height == 0 || inner.width == 0 {
        return;
    }
    let [log, input] = Layout::vertical([Constraint::Min(0), Constraint::Length(1)]).areas(inner);
    let width = usize::from(log.width);
    let rows = chat_rows(model, width);
    let height = usize::from(log.height);
    let scroll = model.chat.scroll.min(rows.len().saturating_sub(height));
    let end = rows.len() - scroll;
    let start = end.saturating_sub(height);
    let mut shown: Vec<Line> = rows[start..end].to_vec();
    if shown.is_empty() {
        let text = if model.chat.channel.is_some() {
            "No messages yet."
        } else {
            "Select a channel to see its chat."
        };
        shown.push(Line::from(Span::styled(text, DIM)));
    } else if start == 0 && model.chat.more {
        shown[0] = Line::from(Span::styled(
            format!("… older messages: {}", model.keys.label(Action::ChatOlder)),
            DIM,
        ));
    }
    // Newest at the bottom: pad above.
    let pad = height.saturating_sub(shown.len());
    let mut lines = vec![Line::raw(""); pad];
    lines.extend(shown);
    frame.render_widget(Paragraph::new(lines), log);
    let input_line = match &model.chat.input {
        Some(text) => {
            // The end of what is typed, so the cursor stays in view.
            let safe = chat::sanitize(text);
            let room = usize::from(input.width).saturating_sub(3);
            let mut tail: Vec<char> = Vec::new();
            let mut used = 0;
            for c in safe.chars().rev() {
                let w = chat::width(c.encode_utf8(&mut [0; 4]));
                if used + w > room {
                    break;
                }
                used += w;
                tail.push(c);
            }
            let tail: String = tail.into_iter().rev().collect();
            Line::from(vec![
                Span::styled("> ", YELLOW.add_modifier(Modifier::BOLD)),
                Span::raw(tail),
                Span::styled("█", YELLOW),
            ])
        }
        None => Line::from(Span::styled(
            format!(
                "{} write · {} older · {} newer",
                model.keys.label(Action::Chat),
                model.keys.label(Action::ChatOlder),
                model.keys.label(Action::ChatNewer)
            ),
            DIM,
        )),
    };
    frame.render_widget(Paragraph::new(input_line), input);
}

// --- help -------------------------------------------------------------------------------

fn draw_help(model: &Model, frame: &mut Frame) {
    let mut lines = vec![Line::default()];
    for action in Action::ALL {
        lines.push(Line::from(vec![
            Span::styled(format!("  {:<12}", model.keys.label(action)), YELLOW),
            Span::raw(action.description()),
        ]));
    }
    lines.push(Line::from(vec![
        Span::styled(format!("  {:<12}", "ctrl-c"), YELLOW),
        Span::raw("quit, always"),
    ]));
    lines.push(Line::default());
    lines.push(Line::raw(match model.ptt {
        PttStyle::Hold => "This terminal reports key release: hold the talk key to talk.",
        PttStyle::Repeat => {
            "This terminal does not report key release: hold the talk key to talk (seen by its \
             repeats), or tap it to turn talking on and off."
        }
    }));
    if model.ptt == PttStyle::Repeat {
        let ms = |d: std::time::Duration| d.as_millis();
        lines.push(Line::styled(
            match model.hold.learned() {
                (Some(delay), Some(every)) => format!(
                    "Key repeat learned: starts after {} ms, then every {} ms.",
                    ms(delay),
                    ms(every)
                ),
                (Some(delay), None) => {
                    format!("Key repeat learned: starts after {} ms.", ms(delay))
                }
                _ => "Key repeat: not seen yet (hold the talk key once to teach it).".to_owned(),
            },
            DIM,
        ));
    }
    lines.push(Line::raw(
        "Keys can be changed in the [keys] table of the config file (see docs/TUI.md).",
    ));
    lines.push(Line::default());
    lines.push(Line::styled("Press any key to close.", DIM));
    let area = frame.area();
    // Borders, plus room for the two long lines to wrap on a narrow screen; on a short
    // screen the blank lines go first.
    if lines.len() + 4 > usize::from(area.height) {
        lines.retain(|line| line.width() > 0);
    }
    let width = area.width.min(84);
    let height = area
        .height
        .min(u16::try_from(lines.len() + 4).unwrap_or(u16::MAX));
    let popup = Rect {
        x: area.x + (area.width - width) / 2,
        y: area.y + (area.height - height) / 2,
        width,
        height,
    };
    frame.render_widget(Clear, popup);
    frame.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .block(Block::bordered().title(" Help: keys ")),
        popup,
    );
}
