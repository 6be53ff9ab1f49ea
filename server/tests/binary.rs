//! The `cromulent-server` binary: logs where it listens, takes --listen/--config and the
//! environment, and shuts down cleanly on SIGTERM and SIGINT.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use cromulent_protocol::{ClientMsg, ServerMsg};
use cromulent_test_support::ws::Client;

struct Running {
    child: Child,
    addr: String,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(args: &[&str], env: &[(&str, &str)]) -> Running {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cromulent-server"));
    cmd.args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .env("RUST_LOG", "info")
        .env("CROMULENT_CHAT_DB", ":memory:");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn server");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(rest) = line.split("listening on ").nth(1) {
                let _ = tx.send(rest.split_whitespace().next().unwrap_or("").to_owned());
            }
        }
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("server logs its address");
    Running { child, addr }
}

fn signal(r: &mut Running, sig: &str) -> std::process::ExitStatus {
    let pid = r.child.id().to_string();
    assert!(
        Command::new("kill")
            .args([sig, &pid])
            .status()
            .unwrap()
            .success()
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = r.child.try_wait().unwrap() {
            return status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "server did not exit after {sig}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listens_where_told_serves_ws_urls_and_exits_cleanly_on_sigterm() {
    let mut server = start(&["--listen", "127.0.0.1:0"], &[]);
    assert!(server.addr.starts_with("127.0.0.1:"), "{}", server.addr);
    let mut c = Client::connect(&format!("ws://{}", server.addr), "alice").await;
    let Some(ServerMsg::Welcome { channels, .. }) = &c.welcome else {
        unreachable!()
    };
    assert_eq!(channels.len(), 3, "embedded demo channels");
    let status = tokio::task::block_in_place(|| signal(&mut server, "-TERM"));
    assert!(status.success(), "clean exit: {status:?}");
    c.expect_error(cromulent_protocol::ErrorReason::ServerShutdown)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_file_and_environment_are_applied_and_sigint_stops_it() {
    let dir = std::env::temp_dir().join(format!("cromulent-cfg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("server.toml");
    std::fs::write(
        &path,
        "[server]\nlisten = \"127.0.0.1:0\"\n[[channels]]\nid = 7\nname = \"Lounge\"\n",
    )
    .unwrap();
    let mut server = start(
        &["--config", path.to_str().unwrap()],
        &[
            ("TURN_PROVIDER", "coturn"),
            ("TURN_SECRET", "envsecret"),
            ("TURN_URLS", "turn:127.0.0.1:3478"),
            ("TURN_TTL", "120"),
            ("STUN_URLS", "stun:127.0.0.1:3478"),
        ],
    );
    let mut c = Client::connect(&format!("ws://{}", server.addr), "alice").await;
    let Some(ServerMsg::Welcome { channels, .. }) = &c.welcome else {
        unreachable!()
    };
    assert_eq!(
        channels.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(),
        ["Lounge"]
    );
    c.send(&ClientMsg::Join { channel: 7 }).await;
    let ServerMsg::Joined { ice, .. } = c.expect_joined().await else {
        panic!()
    };
    let turn = ice
        .servers
        .iter()
        .find(|s| s.urls.iter().any(|u| u.starts_with("turn:")))
        .expect("turn server from env");
    assert!(turn.username.as_deref().unwrap().ends_with(":alice"));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let expires = ice.expires_at.expect("coturn credentials expire");
    assert!(
        (now + 110..=now + 130).contains(&expires),
        "TURN_TTL=120 applied: {expires} vs {now}"
    );
    assert!(
        ice.servers
            .iter()
            .any(|s| s.urls == ["stun:127.0.0.1:3478"])
    );
    let status = tokio::task::block_in_place(|| signal(&mut server, "-INT"));
    assert!(status.success(), "clean exit: {status:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_config_is_a_clear_error_not_a_crash() {
    let dir = std::env::temp_dir().join(format!("cromulent-badcfg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("bad.toml");
    std::fs::write(&path, "[server]\nlisten = 42\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_cromulent-server"))
        .args(["--config", path.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.toml") && err.contains("listen"), "{err}");
    let out = Command::new(env!("CARGO_BIN_EXE_cromulent-server"))
        .env("TURN_TTL", "forever")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("TURN_TTL"));
    let _ = std::fs::remove_dir_all(&dir);
}
