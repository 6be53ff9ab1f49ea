//! `cromulent ctl` (issue 23): a running `cromulent headless` is driven from outside through
//! its control socket — status (a line and JSON), join, mute, the talk key pressed and
//! released, say, the event stream — with the real binaries and the real server; bob, a second
//! client, sees what alice's flags do through presence.

mod support;

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::time::Duration;

use cromulent_test_support::process::KillOnDrop;
use support::{BIN, Client, LONG, Server, TempDir, ctl};

fn presence_flag(bob: &mut Client, mark: usize, flag: &str, value: bool) {
    bob.wait_after(mark, &format!("alice {flag} = {value}"), LONG, |e| {
        e.kind() == "presence" && e.str("user") == "alice" && e.json[flag] == value
    });
}

#[test]
fn a_running_client_is_driven_through_its_control_socket() {
    let server = Server::start();
    let dir = TempDir::new("ctl");
    let socket = dir.path("alice.sock");
    let socket_arg = socket.display().to_string();
    let mut alice = Client::start(
        &server.url(),
        "alice",
        &["--talk", "ptt", "--ctl", &socket_arg, "--script", "-"],
    );
    alice.wait_for("welcome", LONG, |e| e.kind() == "server");
    let mode = std::fs::metadata(&socket).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "only its user may drive it");
    let mut bob = Client::start(&server.url(), "bob", &["--join", "General"]);
    bob.wait_state("connected", LONG);

    assert_eq!(ctl(&socket, &["status"]), (0, "○ not in voice".to_owned()));
    assert_eq!(ctl(&socket, &["join", "General"]), (0, "ok".to_owned()));
    alice.wait_state("connected", LONG);
    let (code, line) = ctl(&socket, &["status"]);
    assert!(code == 0 && line.starts_with("● General"), "{line}");
    let (_, json) = ctl(&socket, &["status", "--json"]);
    let json: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(
        (json["voice"].as_str(), json["channel"].as_str()),
        (Some("connected"), Some("General"))
    );

    // Flags: muted, then the talk key held and let go, as a desktop hotkey daemon would.
    let mark = bob.mark();
    assert_eq!(ctl(&socket, &["mute", "on"]).0, 0);
    presence_flag(&mut bob, mark, "muted", true);
    assert!(ctl(&socket, &["status"]).1.contains("muted"));
    let mark = bob.mark();
    assert_eq!(ctl(&socket, &["mute", "toggle"]).0, 0);
    presence_flag(&mut bob, mark, "muted", false);
    let mark = bob.mark();
    assert_eq!(ctl(&socket, &["talk", "press"]).0, 0);
    presence_flag(&mut bob, mark, "talking", true);
    let mark = bob.mark();
    assert_eq!(ctl(&socket, &["talk", "release"]).0, 0);
    presence_flag(&mut bob, mark, "talking", false);

    // The event stream: the lines headless prints, followed from outside.
    let mut events = KillOnDrop::spawn(
        Command::new(BIN)
            .args(["ctl", "--socket", &socket_arg, "events"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null()),
        "cromulent ctl events",
    );
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = events.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    // The follower is subscribed once it is connected; say until it hears it.
    let mut heard = None;
    for _ in 0..20 {
        assert_eq!(ctl(&socket, &["say", "hello from a hotkey #1"]).0, 0);
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(500)) {
            heard = Some(line);
            break;
        }
    }
    let heard = heard.expect("an event line");
    let mut line = heard;
    while !line.contains(r#""event":"message""#) {
        line = rx.recv_timeout(LONG).expect("the message event");
    }
    assert!(line.contains("hello from a hotkey #1"), "{line}");
    let got = bob.wait_for("alice's message", LONG, |e| e.kind() == "message");
    assert_eq!(got.str("text"), "hello from a hotkey #1");

    // Mistakes: a request it does not know is refused before anything is sent; no client at
    // a path is exit status 2 as well.
    assert_eq!(ctl(&socket, &["dance"]).0, 2);
    assert_eq!(ctl(&dir.path("nobody.sock"), &["status"]).0, 2);

    alice.say("quit");
    assert!(alice.wait_exit(LONG).success());
    assert!(!socket.exists(), "the socket goes with the client");
    events.kill();
}
