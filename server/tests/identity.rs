//! Token mode: tokens printed by `cromulent-server token` are accepted; bad or expired ones
//! get a clear error and the connection is closed.

use std::process::Command;

use cromulent_protocol::{ClientMsg, ErrorReason, PROTOCOL_VERSION, ServerMsg};
use cromulent_server::auth::{Claims, make_token};
use cromulent_server::config::{AuthMode, Config};
use cromulent_test_support::ws::{Client, TestServer};

const SECRET: &str = "test-secret-0123456789";

fn token_config() -> Config {
    let mut c = Config::default();
    c.auth.mode = AuthMode::Token;
    c.auth.secret = SECRET.into();
    c
}

fn cli_token(user: &str, ttl: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_cromulent-server"))
        .args(["token", "--user", user, "--ttl", ttl])
        .env("CROMULENT_AUTH_SECRET", SECRET)
        .output()
        .expect("run cromulent-server token");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

async fn hello_token(url: &str, token: &str) -> Client {
    let mut c = Client::raw(url).await;
    c.send(&ClientMsg::Hello {
        protocol: PROTOCOL_VERSION,
        name: Some("ignored-if-token-names".into()),
        token: Some(token.into()),
        resume: None,
    })
    .await;
    c
}

#[tokio::test]
async fn token_from_the_cli_is_accepted_and_names_the_user() {
    let server = TestServer::start(token_config()).await;
    let token = cli_token("alice", "30d");
    let mut c = hello_token(&server.url(), &token).await;
    let m = c.recv().await;
    let ServerMsg::Welcome { user, .. } = m else {
        panic!("{m:?}")
    };
    assert_eq!(user.id, "alice");
    server.stop().await;
}

#[tokio::test]
async fn bad_and_expired_tokens_are_refused_and_closed() {
    let server = TestServer::start(token_config()).await;
    let forged = make_token(
        b"not-the-server-secret",
        &Claims {
            sub: "alice".into(),
            name: None,
            client_names: false,
            exp: u64::MAX / 2,
        },
    );
    let expired = make_token(
        SECRET.as_bytes(),
        &Claims {
            sub: "alice".into(),
            name: None,
            client_names: false,
            exp: 1,
        },
    );
    for (token, reason) in [
        (forged.as_str(), ErrorReason::InvalidToken),
        ("not-a-token", ErrorReason::InvalidToken),
        (expired.as_str(), ErrorReason::TokenExpired),
    ] {
        let mut c = hello_token(&server.url(), token).await;
        let m = c.expect_error(reason).await;
        let ServerMsg::Error { message, .. } = m else {
            unreachable!()
        };
        assert!(!message.is_empty());
        assert!(c.closed().await, "connection closed after {reason}");
    }
    // No token at all in token mode.
    let mut c = Client::raw(&server.url()).await;
    c.send(&ClientMsg::Hello {
        protocol: PROTOCOL_VERSION,
        name: Some("alice".into()),
        token: None,
        resume: None,
    })
    .await;
    c.expect_error(ErrorReason::InvalidToken).await;
    server.stop().await;
}

#[test]
fn token_command_without_a_secret_fails_clearly() {
    let out = Command::new(env!("CARGO_BIN_EXE_cromulent-server"))
        .args(["token", "--user", "alice"])
        .env_remove("CROMULENT_AUTH_SECRET")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("CROMULENT_AUTH_SECRET"));
}

#[tokio::test]
async fn token_link_carries_a_working_token_in_its_fragment() {
    let out = Command::new(env!("CARGO_BIN_EXE_cromulent-server"))
        .args([
            "token",
            "--user",
            "alice",
            "--link",
            "https://voice.example.org",
        ])
        .env("CROMULENT_AUTH_SECRET", SECRET)
        .output()
        .expect("run cromulent-server token --link");
    assert!(out.status.success(), "{out:?}");
    let link = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let token = link
        .strip_prefix("https://voice.example.org/#token=")
        .unwrap_or_else(|| panic!("{link}"));
    let server = TestServer::start(token_config()).await;
    let mut c = hello_token(&server.url(), token).await;
    let m = c.recv().await;
    let ServerMsg::Welcome { user, .. } = m else {
        panic!("{m:?}")
    };
    assert_eq!(user.id, "alice");
    server.stop().await;

    let bad = Command::new(env!("CARGO_BIN_EXE_cromulent-server"))
        .args(["token", "--user", "alice", "--link", "voice.example.org"])
        .env("CROMULENT_AUTH_SECRET", SECRET)
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("bad --link"),
        "{bad:?}"
    );
}
