//! The terminal client in a real terminal: the real `cromulent` binary inside tmux (a private
//! tmux server, 120×40), against the real server, with a real headless peer. Keys go in with
//! `send-keys`, the screen comes back with `capture-pane` (with colours), polled with bounds.
//! Checks: join → green status with the channel name; a second user appears live; push-to-talk
//! toggles on a tap and holds by key repeat (tmux reports no key release), mute wins; leave; quit; the terminal is sane after.

mod support;

use std::time::Duration;

use cromulent_test_support::tmux::Tmux;
use support::{BIN, Client, Server, TempDir, ctl};

const WAIT: Duration = cromulent_test_support::tmux::WAIT;

/// The status line (second line from the bottom of the client's screen).
fn status_line(screen: &str) -> String {
    let lines: Vec<&str> = screen.lines().collect();
    lines
        .len()
        .checked_sub(2)
        .map(|i| lines[i].to_owned())
        .unwrap_or_default()
}

/// The peers panel: the right-hand part of the screen's lines.
fn peers_panel(screen: &str) -> String {
    screen
        .lines()
        .map(|l| l.chars().skip(42).collect::<String>() + "\n")
        .collect()
}

/// The channel list: the left-hand part.
fn channel_list(screen: &str) -> String {
    screen
        .lines()
        .skip(1)
        .map(|l| l.chars().take(42).collect::<String>() + "\n")
        .collect()
}

/// The SGR colour in force where `text` starts on a coloured capture.
fn colour_before(coloured: &str, text: &str) -> String {
    let at = coloured
        .find(text)
        .unwrap_or_else(|| panic!("{text:?} not in:\n{coloured}"));
    let before = &coloured[..at];
    let esc = before.rfind("\x1b[").expect("an escape sequence before");
    before[esc..].to_owned()
}

fn is_green(sgr: &str) -> bool {
    sgr.contains("38;5;2m") || sgr.contains("[32m") || sgr.contains(";32m")
}

#[test]
fn join_see_a_peer_talk_leave_and_quit_in_a_real_terminal() {
    let server = Server::start();
    let dir = TempDir::new("tui-tmux");
    let config = dir.path("config.toml");
    std::fs::write(&config, "# empty: defaults only\n").unwrap();
    let log = dir.path("tui.log");
    let stty = dir.path("stty.txt");
    // Devices that exist nowhere: the same screen on every machine, sound card or not (and
    // the ALSA probing, with its stderr chatter, still happens).
    let command = format!(
        "'{BIN}' --server {url} --user alice --config '{config}' --log-file '{log}' \
         --input-device no-such-mic --output-device no-such-speaker; \
         echo EXIT=$?; stty -a > '{stty}'; echo STTY-SAVED; sleep 600",
        url = server.url(),
        config = config.display(),
        log = log.display(),
        stty = stty.display(),
    );
    let tmux = Tmux::start(&command);

    // Connected, channels listed, nothing in the status line yet.
    let screen = tmux.wait("the channel list", |s| {
        s.contains("· connected") && s.contains("▸ General") && s.contains("Echo")
    });
    assert!(!status_line(&screen).contains('●'), "{screen}");
    assert!(
        status_line(&screen).contains("push-to-talk (hold or tap)"),
        "tmux reports no key release, and the screen says how the key works:\n{screen}"
    );
    assert!(
        screen.contains("no microphone — no device matches \"no-such-mic\"")
            && screen.contains("no speaker — no device matches \"no-such-speaker\""),
        "missing devices are said plainly:\n{screen}"
    );

    // Join General (selected): green status with the channel name.
    tmux.keys(&["Enter"]);
    // (The `joined` reply and the presence message listing us may arrive in either order.)
    tmux.wait("the green status and us in the list", |s| {
        status_line(s).contains("● General") && channel_list(s).contains("alice (you)")
    });
    let sgr = colour_before(&tmux.screen(true), "● General");
    assert!(is_green(&sgr), "status colour {sgr:?} is not green");

    // A second user joins: they appear in the list and as a connected peer.
    let mut bob = Client::start(&server.url(), "bob", &["--join", "General"]);
    let screen = tmux.wait("bob connected in the peers panel", |s| {
        channel_list(s).contains("bob")
            && peers_panel(s)
                .lines()
                .any(|l| l.contains("bob") && l.contains("connected") && l.contains("direct"))
    });
    assert!(channel_list(&screen).contains("General (2)"), "{screen}");
    bob.wait_peer_connected("alice", WAIT);

    // Push-to-talk toggles; the server's presence shows us talking; mute wins, and unmute
    // does not open the mic again.
    tmux.keys(&["Space"]);
    tmux.wait("the mic live and our talking mark", |s| {
        status_line(s).contains("● LIVE") && channel_list(s).contains("● alice (you)")
    });
    tmux.keys(&["m"]);
    let screen = tmux.wait("muted", |s| {
        status_line(s).contains("MUTED") && channel_list(s).contains("alice (you) [muted]")
    });
    assert!(!status_line(&screen).contains("LIVE"), "{screen}");
    tmux.keys(&["m"]);
    tmux.wait("unmuted", |s| !channel_list(s).contains("[muted]"));
    // Mic events come every 100 ms: give a wrongly re-opened mic time to show.
    std::thread::sleep(Duration::from_millis(400));
    let screen = tmux.screen(false);
    assert!(
        !status_line(&screen).contains("LIVE"),
        "unmute must not re-open the mic in push-to-talk:\n{screen}"
    );

    // Held in tmux, which reports no key release: a press, then the keyboard's repeats (sent
    // here as 41 presses 30 ms apart, an odd count, so toggling on each would end talking).
    // The mic is live while they come and closes once they stop.
    for i in 0..41 {
        tmux.keys(&["Space"]);
        if i == 30 {
            let screen = tmux.screen(false);
            assert!(status_line(&screen).contains("● LIVE"), "held:\n{screen}");
        }
        std::thread::sleep(Duration::from_millis(30));
    }
    tmux.wait("released when the repeats stop", |s| {
        !status_line(s).contains("LIVE") && !channel_list(s).contains("● alice (you)")
    });
    std::thread::sleep(Duration::from_millis(400));
    let screen = tmux.screen(false);
    assert!(
        !status_line(&screen).contains("LIVE"),
        "stays off:\n{screen}"
    );

    // Leave: the status line empties and we drop out of the list; bob stays.
    tmux.keys(&["x"]);
    let screen = tmux.wait("left", |s| {
        !status_line(s).contains('●') && channel_list(s).contains("General (1)")
    });
    assert!(!channel_list(&screen).contains("alice"), "{screen}");
    assert!(
        peers_panel(&screen).contains("Not in a voice channel"),
        "{screen}"
    );

    // Quit: exit status 0, the normal screen back, the tty cooked again.
    tmux.keys(&["q"]);
    let screen = tmux.wait("the client to exit", |s| s.contains("STTY-SAVED"));
    assert!(screen.contains("EXIT=0"), "{screen}");
    assert!(!tmux.alternate_screen_on(), "left the alternate screen");
    let modes = std::fs::read_to_string(&stty).unwrap();
    let flags: Vec<&str> = modes.split([' ', ';', '\n']).collect();
    for flag in ["icanon", "echo", "isig"] {
        assert!(
            flags.contains(&flag) && !flags.contains(&format!("-{flag}").as_str()),
            "{flag} not restored: {modes}"
        );
    }
    // The log got the client's logs; the screen never did.
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(logged.contains("terminal client started"), "{logged}");
    assert!(!screen.contains("INFO"), "{screen}");
    // ALSA prints straight to fd 2 while probing for cards (before and during the session):
    // none of it may reach the terminal.
    assert!(!screen.contains("ALSA lib"), "{screen}");
    drop(bob);
}

#[test]
fn a_refused_join_shows_red_disconnected_with_the_reason() {
    let server = Server::start();
    let dir = TempDir::new("tui-tmux-refused");
    let config = dir.path("config.toml");
    std::fs::write(&config, "").unwrap();
    // Another session of "alice" already sits in General.
    let mut other = Client::start(&server.url(), "alice", &["--join", "General"]);
    other.wait_state("connected", WAIT);
    let command = format!(
        "'{BIN}' --server {url} --user alice --config '{config}' --log-file '{log}' \
         --input-device no-such-mic --output-device no-such-speaker; sleep 600",
        url = server.url(),
        config = config.display(),
        log = dir.path("tui.log").display(),
    );
    let tmux = Tmux::start(&command);
    tmux.wait("the channel list", |s| s.contains("▸ General"));
    tmux.keys(&["Enter"]);
    let screen = tmux.wait("the refusal", |s| {
        status_line(s).contains("● Disconnected — ")
    });
    assert!(
        status_line(&screen).contains("already in this channel from another session"),
        "{screen}"
    );
    let sgr = colour_before(&tmux.screen(true), "● Disconnected");
    assert!(
        sgr.contains("38;5;1m") || sgr.contains("[31m") || sgr.contains(";31m"),
        "status colour {sgr:?} is not red"
    );
    tmux.keys(&["q"]);
}

#[test]
fn a_panic_restores_the_terminal_and_says_what_happened() {
    let server = Server::start();
    let dir = TempDir::new("tui-tmux-panic");
    let config = dir.path("config.toml");
    std::fs::write(&config, "").unwrap();
    let stty = dir.path("stty.txt");
    let command = format!(
        "CROMULENT_TEST_PANIC=1 RUST_BACKTRACE=0 '{BIN}' --server {url} --user alice --config '{config}' \
         --log-file '{log}' --input-device no-such-mic --output-device no-such-speaker; \
         echo EXIT=$?; stty -a > '{stty}'; echo STTY-SAVED; sleep 600",
        url = server.url(),
        config = config.display(),
        log = dir.path("tui.log").display(),
        stty = stty.display(),
    );
    let tmux = Tmux::start(&command);
    let screen = tmux.wait("the client to exit", |s| s.contains("STTY-SAVED"));
    assert!(
        screen.contains("EXIT=101"),
        "a panic's exit status:\n{screen}"
    );
    assert!(
        screen.contains("panicking on purpose"),
        "the panic message is readable on the restored terminal:\n{screen}"
    );
    assert!(!screen.contains("Channels"), "no leftover UI:\n{screen}");
    assert!(!tmux.alternate_screen_on(), "left the alternate screen");
    let modes = std::fs::read_to_string(&stty).unwrap();
    let flags: Vec<&str> = modes.split([' ', ';', '\n']).collect();
    for flag in ["icanon", "echo", "isig"] {
        assert!(
            flags.contains(&flag) && !flags.contains(&format!("-{flag}").as_str()),
            "{flag} not restored after the panic: {modes}"
        );
    }
}

#[test]
fn the_demo_shows_the_url_of_its_web_client_and_serves_the_page_there() {
    let dir = TempDir::new("tui-tmux-demo");
    let config = dir.path("config.toml");
    std::fs::write(&config, "").unwrap();
    let command = format!(
        "USER=carol '{BIN}' demo --config '{config}' --log-file '{log}' \
         --input-device no-such-mic --output-device no-such-speaker; sleep 600",
        config = config.display(),
        log = dir.path("tui.log").display(),
    );
    let tmux = Tmux::start(&command);
    let screen = tmux.wait("the web client's URL", |s| {
        s.contains("Web client: http://127.0.0.1:")
    });
    let at = screen.find("http://127.0.0.1:").unwrap();
    let url: String = screen[at..]
        .chars()
        .take_while(|c| !c.is_whitespace())
        .collect();
    let addr = url
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    // What a browser would get there: the page, from the demo's own server.
    use std::io::{Read, Write};
    let mut tcp = std::net::TcpStream::connect(&addr).unwrap();
    tcp.set_read_timeout(Some(WAIT)).unwrap();
    write!(
        tcp,
        "GET / HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut reply = String::new();
    tcp.read_to_string(&mut reply).unwrap();
    assert!(reply.starts_with("HTTP/1.1 200 OK"), "{reply}");
    assert!(reply.contains("<title>Cromulent Voice</title>"), "{reply}");
    tmux.keys(&["q"]);
}

/// A server that speaks the protocol but sends what ours never would: chat text full of
/// terminal controls. What a compromised or hostile server could do to a client.
fn hostile_server(texts: Vec<String>) -> (String, std::thread::JoinHandle<()>) {
    use cromulent_protocol::{
        ChannelInfo, ChatMessage, Heartbeat, PROTOCOL_VERSION, ServerMsg, SessionInfo, UserInfo,
    };
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("ws://{}", listener.local_addr().unwrap());
    listener.set_nonblocking(true).unwrap();
    let thread = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            let accept = tokio::time::timeout(WAIT, listener.accept()).await;
            let Ok(Ok((tcp, _))) = accept else { return };
            let mut ws = tokio_tungstenite::accept_async(tcp).await.unwrap();
            let send = |m: ServerMsg| Message::text(m.to_json());
            let _hello = ws.next().await;
            ws.send(send(ServerMsg::Welcome {
                protocol: PROTOCOL_VERSION,
                user: UserInfo {
                    id: "alice".into(),
                    name: "alice".into(),
                },
                session: SessionInfo {
                    resume_token: "t".into(),
                    resume_grace_ms: 30_000,
                },
                resumed: false,
                heartbeat: Heartbeat {
                    ping_interval_ms: 5_000,
                    timeout_ms: 20_000,
                },
                channels: vec![ChannelInfo {
                    id: 1,
                    name: "General".into(),
                    members: Vec::new(),
                }],
            }))
            .await
            .unwrap();
            let messages: Vec<ChatMessage> = texts
                .into_iter()
                .enumerate()
                .map(|(i, text)| ChatMessage {
                    id: i as u64 + 1,
                    channel: 1,
                    user: "mallory".into(),
                    name: "mallory".into(),
                    time: 0,
                    text,
                })
                .collect();
            // Answer the history request with the hostile page, then also send them live.
            let deadline = tokio::time::Instant::now() + WAIT;
            while let Ok(Some(Ok(frame))) = tokio::time::timeout_at(deadline, ws.next()).await {
                if frame.to_text().unwrap_or("").contains("\"history\"") {
                    ws.send(send(ServerMsg::History {
                        channel: 1,
                        messages: messages.clone(),
                        more: false,
                    }))
                    .await
                    .unwrap();
                    break;
                }
            }
            // Hold the connection open until the client goes.
            while let Ok(Some(Ok(_))) = tokio::time::timeout_at(deadline, ws.next()).await {}
        });
    });
    (url, thread)
}

#[test]
fn hostile_chat_text_cannot_touch_the_terminal() {
    let dir = TempDir::new("tui-tmux-hostile");
    let config = dir.path("config.toml");
    std::fs::write(&config, "").unwrap();
    let (url, server) = hostile_server(vec![
        "title \u{1b}]0;pwned\u{7} set?".into(),
        "clear \u{1b}[2J\u{1b}[H done?".into(),
        "clip \u{1b}]52;c;cHduZWQ=\u{7} copied?".into(),
        "bidi abc\u{202e}fed end".into(),
        "c1 \u{9b}31m red?".into(),
        "wide 世界 👋 ok".into(),
    ]);
    // The client starts once tmux accepts clipboard writes from applications (OSC 52 would
    // then make a paste buffer) and lets them rename the pane.
    let go = dir.path("go");
    let command = format!(
        "while [ ! -e '{go}' ]; do sleep 0.05; done; \
         '{BIN}' --server {url} --user alice --config '{config}' --log-file '{log}' \
         --input-device no-such-mic --output-device no-such-speaker; sleep 600",
        go = go.display(),
        config = config.display(),
        log = dir.path("tui.log").display(),
    );
    let tmux = Tmux::start(&command);
    tmux.set_option("set-clipboard", "on");
    tmux.set_option("allow-rename", "on");
    std::fs::write(&go, "").unwrap();
    let title_before = tmux.pane_title();
    let screen = tmux.wait("the hostile page drawn", |s| s.contains("wide 世界 👋 ok"));
    // Every control is drawn as a symbol; nothing acted.
    for shown in [
        "title ␛]0;pwned␇ set?",
        "clear ␛[2J␛[H done?",
        "clip ␛]52;c;cHduZWQ=␇ copied?",
        "bidi abc\u{FFFD}fed end",
        "c1 \u{FFFD}31m red?",
    ] {
        assert!(
            screen.contains(shown),
            "{shown:?} not shown as text:\n{screen}"
        );
    }
    assert!(
        screen.contains("Channels") && screen.contains("▸ General"),
        "the screen was not cleared:\n{screen}"
    );
    assert_eq!(tmux.pane_title(), title_before, "the title is unchanged");
    assert!(tmux.buffers().is_empty(), "no clipboard write reached tmux");
    let coloured = tmux.screen(true);
    assert!(
        !coloured.contains("\u{1b}[31m") && !coloured.contains(";31m"),
        "no text turned red by a C1 CSI"
    );
    tmux.keys(&["q"]);
    drop(tmux);
    let _ = server.join();
}

#[test]
fn chat_with_a_script_user_in_a_real_terminal() {
    let server = Server::start();
    let dir = TempDir::new("tui-tmux-chat");
    let config = dir.path("config.toml");
    std::fs::write(&config, "").unwrap();
    let mut bob = Client::start(
        &server.url(),
        "bob",
        &["--join", "General", "--script", "-"],
    );
    bob.wait_state("connected", WAIT);
    bob.say("say hello alice, type back");
    bob.wait_for("its message", WAIT, |e| e.kind() == "message");
    let command = format!(
        "'{BIN}' --server {url} --user alice --config '{config}' --log-file '{log}' \
         --input-device no-such-mic --output-device no-such-speaker; sleep 600",
        url = server.url(),
        config = config.display(),
        log = dir.path("tui.log").display(),
    );
    let tmux = Tmux::start(&command);
    // History when the chat opens; alice is mentioned.
    let screen = tmux.wait("bob's message", |s| {
        s.contains("bob: hello alice, type back")
    });
    assert!(screen.contains("Chat — General"), "{screen}");
    // Into the input line: the screen says so; the talk key types a space.
    tmux.keys(&["c"]);
    tmux.wait("typing", |s| s.contains("typing: Enter sends, Esc leaves"));
    tmux.keys(&["-l", "on my way (q to quit)"]);
    tmux.wait("the typed line", |s| s.contains("> on my way (q to quit)"));
    tmux.keys(&["Enter"]);
    let got = bob.wait_for("alice's message", WAIT, |e| {
        e.kind() == "message" && e.str("user") == "alice"
    });
    assert_eq!(got.str("text"), "on my way (q to quit)");
    tmux.wait("alice's own message", |s| s.contains("alice: on my way"));
    tmux.keys(&["Escape"]);
    tmux.wait("out of the input", |s| !s.contains("typing: Enter sends"));
    tmux.keys(&["q"]);
}

#[test]
fn the_terminal_client_is_driven_through_its_control_socket() {
    let server = Server::start();
    let dir = TempDir::new("tui-tmux-ctl");
    let config = dir.path("config.toml");
    std::fs::write(&config, "").unwrap();
    let socket = dir.path("tui.sock");
    let command = format!(
        "'{BIN}' --server {url} --user alice --config '{config}' --log-file '{log}' \
         --input-device no-such-mic --output-device no-such-speaker --ctl '{socket}'; sleep 600",
        url = server.url(),
        config = config.display(),
        log = dir.path("tui.log").display(),
        socket = socket.display(),
    );
    let tmux = Tmux::start(&command);
    tmux.wait("the channel list", |s| s.contains("▸ General"));
    assert_eq!(ctl(&socket, &["status"]), (0, "○ not in voice".to_owned()));
    assert_eq!(ctl(&socket, &["join", "General"]).0, 0);
    tmux.wait("in General", |s| status_line(s).contains("● General"));
    assert_eq!(ctl(&socket, &["mute", "on"]).0, 0);
    tmux.wait("muted on screen", |s| status_line(s).contains("MUTED"));
    assert!(ctl(&socket, &["status"]).1.contains("muted"));
    assert_eq!(ctl(&socket, &["say", "hi from a hotkey"]).0, 0);
    tmux.wait("the message in the chat", |s| {
        s.contains("alice: hi from a hotkey")
    });
    tmux.keys(&["q"]);
}

#[test]
fn hooks_from_the_config_file_run_and_never_draw_on_the_screen() {
    let server = Server::start();
    let dir = TempDir::new("tui-tmux-hooks");
    let config = dir.path("config.toml");
    let joined = dir.path("joined.json");
    let mentioned = dir.path("mentioned.txt");
    std::fs::write(
        &config,
        format!(
            "[hooks]\n\
             joined = \"echo HOOK-ON-STDOUT; cat >> '{joined}'\"\n\
             mentioned = \"printf '%s: %s' \\\"$CROMULENT_USER\\\" \\\"$CROMULENT_TEXT\\\" > '{mentioned}'\"\n",
            joined = joined.display(),
            mentioned = mentioned.display(),
        ),
    )
    .unwrap();
    let command = format!(
        "'{BIN}' --server {url} --user alice --config '{config}' --log-file '{log}' \
         --input-device no-such-mic --output-device no-such-speaker --join General; sleep 600",
        url = server.url(),
        config = config.display(),
        log = dir.path("tui.log").display(),
    );
    let tmux = Tmux::start(&command);
    tmux.wait("in General", |s| status_line(s).contains("● General"));
    let mut bob = Client::start(
        &server.url(),
        "bob",
        &["--join", "General", "--script", "-"],
    );
    bob.wait_state("connected", WAIT);
    bob.say("say alice: are you there?");
    let read = |path: &std::path::Path| {
        let deadline = std::time::Instant::now() + WAIT;
        loop {
            match std::fs::read_to_string(path) {
                Ok(text) if !text.is_empty() => return text,
                _ if std::time::Instant::now() > deadline => {
                    panic!("{} never written", path.display())
                }
                _ => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    };
    let event: serde_json::Value = serde_json::from_str(read(&joined).trim()).unwrap();
    assert_eq!(
        (event["event"].as_str(), event["user"].as_str()),
        (Some("joined"), Some("bob"))
    );
    assert_eq!(read(&mentioned), "bob: alice: are you there?");
    let screen = tmux.wait("bob's message", |s| {
        s.contains("bob: alice: are you there?")
    });
    assert!(
        !screen.contains("HOOK-ON-STDOUT"),
        "a hook drew on the screen:\n{screen}"
    );
    tmux.keys(&["q"]);
}

#[test]
fn a_peer_s_volume_is_set_with_keys_shown_beside_the_name_and_remembered() {
    let server = Server::start();
    let dir = TempDir::new("tui-tmux-volume");
    let config = dir.path("config.toml");
    std::fs::write(&config, "").unwrap();
    let state = dir.path("state");
    let mut bob = Client::start(&server.url(), "bob", &["--join", "General"]);
    bob.wait_state("connected", WAIT);
    // The client twice in one pane, as alice and then as ann (same state directory): quit the
    // first, the second starts.
    let client = |user: &str| {
        format!(
            "XDG_STATE_HOME='{state}' '{BIN}' --server {url} --user {user} --config '{config}' \
             --log-file '{log}' --input-device no-such-mic --output-device no-such-speaker \
             --join General",
            state = state.display(),
            url = server.url(),
            config = config.display(),
            log = dir.path("tui.log").display(),
        )
    };
    let tmux = Tmux::start(&format!(
        "{}; {}; sleep 600",
        client("alice"),
        client("ann")
    ));
    tmux.wait("bob in the peers panel", |s| peers_panel(s).contains("bob"));
    for _ in 0..5 {
        tmux.keys(&["-"]);
    }
    tmux.wait("bob at 50 %", |s| peers_panel(s).contains("bob 50%"));
    let remembered = std::fs::read_to_string(state.join("cromulent").join("volumes.toml")).unwrap();
    assert!(remembered.contains("bob = 50"), "{remembered}");
    tmux.keys(&["q"]);
    // The next session: bob is as loud as he was left.
    tmux.wait("the second session, bob at 50 % again", |s| {
        s.contains(" ann @ ") && peers_panel(s).contains("bob 50%")
    });
    tmux.keys(&["M"]);
    tmux.wait("bob off", |s| peers_panel(s).contains("bob (off)"));
    tmux.keys(&["q"]);
}
