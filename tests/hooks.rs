//! Hooks (issue 23): `cromulent headless --hook KIND=COMMAND` runs the command on events —
//! someone joined and left carol's channel, a message there, a mention, the server lost and
//! back — with the event as JSON on stdin and in `CROMULENT_*` variables; real binaries, a real
//! server killed and started again on its port. (The terminal client reads the same hooks
//! from `[hooks]` in its config: tests/tui_tmux.rs.)

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{Client, LONG, Server, TempDir, free_port};

/// The JSON lines a hook appended to `file`, once there are `n` of them.
fn lines(file: &Path, n: usize) -> Vec<Value> {
    let deadline = Instant::now() + LONG;
    loop {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
            .collect();
        if lines.len() >= n {
            return lines;
        }
        assert!(
            Instant::now() < deadline,
            "{}: {} of {n} lines: {text}",
            file.display(),
            lines.len()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn hooks_run_on_joins_leaves_messages_mentions_and_outages() {
    let port = free_port();
    let server = Server::start_with(port, &[], &[]);
    let dir = TempDir::new("hooks");
    let file = |kind: &str| dir.path(kind);
    // Each hook appends its stdin (one JSON line) to a file named for its event; `mentioned`
    // also records the variables.
    let mut args = vec!["--join".to_owned(), "General".to_owned()];
    for kind in ["joined", "left", "message", "disconnected", "reconnected"] {
        args.push("--hook".into());
        args.push(format!("{kind}=cat >> '{}'", file(kind).display()));
    }
    args.push("--hook".into());
    args.push(format!(
        "mentioned=cat >> '{0}'; printf '%s|%s|%s\\n' \"$CROMULENT_EVENT\" \"$CROMULENT_USER\" \
         \"$CROMULENT_TEXT\" >> '{0}.env'",
        file("mentioned").display()
    ));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut carol = Client::start(&server.url(), "carol", &args);
    carol.wait_state("connected", LONG);

    let mut bob = Client::start(
        &server.url(),
        "bob",
        &["--join", "General", "--script", "-"],
    );
    let joined = lines(&file("joined"), 1);
    assert_eq!(joined[0]["event"], "joined");
    assert_eq!(joined[0]["user"], "bob");
    assert_eq!(joined[0]["channel"], "General");
    bob.wait_state("connected", LONG);
    bob.say("say lunch anyone?");
    bob.say("say @carol can you hear me?");
    let message = lines(&file("message"), 1);
    assert_eq!(message[0]["text"], "lunch anyone?");
    let mentioned = lines(&file("mentioned"), 1);
    assert_eq!(mentioned[0]["user"], "bob");
    let env = std::fs::read_to_string(dir.path("mentioned.env")).unwrap();
    assert!(
        env.starts_with("mentioned|bob|@carol can you hear me?"),
        "the variables: {env:?}"
    );
    bob.say("leave");
    let left = lines(&file("left"), 1);
    assert_eq!(left[0]["user"], "bob");
    assert_eq!(
        lines(&file("message"), 1).len(),
        1,
        "a mention is not also a message"
    );
    bob.say("quit");
    assert!(bob.wait_exit(LONG).success());

    // The server goes away: one `disconnected`, whatever the retries; it comes back on its
    // port and carol's client rejoins: `reconnected`.
    server.kill();
    let dropped = lines(&file("disconnected"), 1);
    assert_eq!(dropped[0]["channel"], "General");
    assert!(dropped[0]["reason"].as_str().is_some_and(|r| !r.is_empty()));
    let _server = Server::start_with(port, &[], &[]);
    let back = lines(&file("reconnected"), 1);
    assert_eq!(back[0]["channel"], "General");
    let all = lines(&file("disconnected"), 1);
    assert_eq!(all.len(), 1, "one outage, one hook: {all:?}");
    assert!(carol.terminate().success());
}

#[test]
fn a_bad_hook_flag_is_a_usage_error() {
    let server = Server::start();
    let mut c = Client::start(&server.url(), "dora", &["--hook", "jumped=true"]);
    let status = c.wait_exit(LONG);
    assert_eq!(status.code(), Some(2));
    assert!(c.stderr().contains("one of joined"), "{}", c.stderr());
}
