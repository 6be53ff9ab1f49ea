//! The server under attack, one defect each (issue 16): names that look like other names, a
//! token holder choosing another display name, strict decoding and bounded errors, close frames
//! for protocol violations, resume tokens that rotate. Slow consumers and connection budgets
//! have files of their own (`slow_consumer.rs`, `budgets.rs`).

use std::time::Duration;

use cromulent_protocol::{ClientMsg, ErrorReason, PROTOCOL_VERSION, ServerMsg};
use cromulent_server::auth::{Claims, make_token};
use cromulent_server::config::{AuthMode, Config};
use cromulent_test_support::ws::{Client, TestServer};
use tokio::io::AsyncWriteExt;

/// Say hello with `name` and return the error the server closes with.
async fn refused_name(url: &str, name: &str) -> (ErrorReason, String) {
    let mut c = Client::raw(url).await;
    c.send_hello(name).await;
    let m = c.recv().await;
    let ServerMsg::Error {
        reason, message, ..
    } = m
    else {
        panic!("{name:?} was accepted: {m:?}");
    };
    assert!(c.closed().await, "{name:?}: closed after the error");
    (reason, message)
}

#[tokio::test]
async fn invisible_and_direction_changing_characters_are_refused_by_code_point() {
    let server = TestServer::default().await;
    let cases = [
        ("ali\u{200b}ce", "U+200B"),    // zero-width space
        ("ali\u{200d}ce", "U+200D"),    // zero-width joiner
        ("ali\u{2060}ce", "U+2060"),    // word joiner
        ("\u{feff}alice", "U+FEFF"),    // byte-order mark
        ("alice\u{202e}", "U+202E"),    // right-to-left override
        ("al\u{2067}ice", "U+2067"),    // right-to-left isolate
        ("ali\u{2028}ce", "U+2028"),    // line separator
        ("ali\u{00a0}ce", "U+00A0"),    // no-break space
        ("ali\u{e000}ce", "U+E000"),    // private use
        ("ali\u{0378}ce", "U+0378"),    // unassigned
        ("\u{200b}\u{200c}", "U+200B"), // nothing visible at all
    ];
    for (name, code_point) in cases {
        let (reason, message) = refused_name(&server.url(), name).await;
        assert_eq!(reason, ErrorReason::InvalidName, "{name:?}");
        assert!(
            message.contains(code_point),
            "{name:?}: the reason names {code_point}: {message}"
        );
    }
    // Plain spaces, accents and other scripts are names like any other.
    for name in ["Zoë Martin", "Đorđe", "山田", "O'Brien-Smith"] {
        let c = Client::connect(&server.url(), name).await;
        drop(c);
    }
    server.stop().await;
}

#[tokio::test]
async fn names_are_nfc_normalised() {
    let server = TestServer::default().await;
    // "Zoë" written with a combining diaeresis is the same user as the precomposed one.
    let c = Client::connect(&server.url(), "Zoe\u{0308}").await;
    let Some(ServerMsg::Welcome { user, .. }) = &c.welcome else {
        unreachable!()
    };
    assert_eq!(user.id, "Zo\u{00eb}");
    assert_eq!(user.name, "Zo\u{00eb}");
    server.stop().await;
}

#[tokio::test]
async fn a_name_that_looks_like_a_connected_user_is_taken() {
    let server = TestServer::default().await;
    let alice = Client::connect(&server.url(), "alice").await;
    // Cyrillic а, digit-for-letter and ligature look-alikes of "alice".
    for fake in ["\u{0430}lice", "aIice", "ａｌｉｃｅ"] {
        let (reason, message) = refused_name(&server.url(), fake).await;
        assert_eq!(reason, ErrorReason::NameTaken, "{fake:?}: {message}");
    }
    // The real alice may still open a second connection (the join guard rules that); that
    // the look-alike is free once alice's sessions expire is the next test.
    let again = Client::connect(&server.url(), "alice").await;
    drop((alice, again));
    server.stop().await;
}

#[tokio::test]
async fn a_look_alike_is_refused_while_the_real_user_is_in_the_resume_grace() {
    let mut config = Config::default();
    config.session.resume_grace_ms = 400;
    let server = TestServer::start(config).await;
    let alice = Client::connect(&server.url(), "alice").await;
    drop(alice);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (reason, _) = refused_name(&server.url(), "\u{0430}lice").await;
    assert_eq!(
        reason,
        ErrorReason::NameTaken,
        "held during the grace window"
    );
    // After the grace window the session is forgotten and the name is free.
    tokio::time::sleep(Duration::from_millis(900)).await;
    let _ = Client::connect(&server.url(), "\u{0430}lice").await;
    server.stop().await;
}

const SECRET: &str = "0123456789abcdef0123456789";

fn token_config() -> Config {
    let mut config = Config::default();
    config.auth.mode = AuthMode::Token;
    config.auth.secret = SECRET.into();
    config
}

fn token(sub: &str, name: Option<&str>, client_names: bool) -> String {
    make_token(
        SECRET.as_bytes(),
        &Claims {
            sub: sub.into(),
            name: name.map(Into::into),
            client_names,
            exp: u64::MAX / 2,
        },
    )
}

fn welcome_name(c: &Client) -> String {
    match &c.welcome {
        Some(ServerMsg::Welcome { user, .. }) => user.name.clone(),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn token_mode_display_name_is_the_tokens_unless_it_allows_otherwise() {
    let server = TestServer::start(token_config()).await;
    let url = server.url();
    let t = token("alice", None, false);
    let c = Client::hello_with(&url, Some("The Boss"), Some(&t), None).await;
    assert_eq!(
        welcome_name(&c),
        "alice",
        "no name in the token: the user id"
    );
    drop(c);
    let t = token("bob", Some("Bob B."), false);
    let c = Client::hello_with(&url, Some("alice"), Some(&t), None).await;
    assert_eq!(welcome_name(&c), "Bob B.", "the token's name wins");
    drop(c);
    let t = token("carol", None, true);
    let c = Client::hello_with(&url, Some("Caz"), Some(&t), None).await;
    assert_eq!(welcome_name(&c), "Caz", "the token lets carol choose");
    drop(c);
    // A chosen name follows the same rules as any other.
    let mut c = Client::raw(&url).await;
    c.send(&ClientMsg::Hello {
        protocol: PROTOCOL_VERSION,
        name: Some("Ca\u{200b}z".into()),
        token: Some(t.clone()),
        resume: None,
    })
    .await;
    c.expect_error(ErrorReason::InvalidName).await;
    server.stop().await;
}

#[tokio::test]
async fn every_message_is_decoded_strictly_and_errors_are_bounded() {
    let server = TestServer::default().await;
    let mut c = Client::connect(&server.url(), "alice").await;
    for text in [
        r#"{"type":"leave","extra":1}"#,
        r#"{"type":"refresh_ice","extra":true}"#,
    ] {
        c.send_text(text).await;
        c.expect_error(ErrorReason::InvalidMessage).await;
    }
    c.send(&ClientMsg::Join { channel: 99 }).await;
    let m = c.expect_error(ErrorReason::NotFound).await;
    assert!(
        matches!(
            m,
            ServerMsg::Error {
                channel: Some(99),
                ..
            }
        ),
        "not_found names the channel: {m:?}"
    );
    // A 60 KB unknown field name is not echoed back whole.
    let long = "k".repeat(60 * 1024);
    c.send_text(&format!(r#"{{"type":"join","channel":1,"{long}":1}}"#))
        .await;
    let m = c.expect_error(ErrorReason::InvalidMessage).await;
    let ServerMsg::Error { message, .. } = m else {
        unreachable!()
    };
    assert!(message.len() <= 512, "error of {} bytes", message.len());
    server.stop().await;
}

#[tokio::test]
async fn an_oversized_frame_ends_with_a_close_frame_and_reason() {
    let server = TestServer::default().await;
    let mut c = Client::connect(&server.url(), "alice").await;
    let huge = "x".repeat(2 * 1024 * 1024);
    let _ = futures_util::SinkExt::send(
        &mut c.ws,
        tokio_tungstenite::tungstenite::Message::text(huge),
    )
    .await;
    let frame = c.close_frame().await;
    assert_eq!(
        frame,
        Some((1009, "message_too_large".to_owned())),
        "close code 1009 (message too big) with the reason"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_framing_violation_ends_with_a_close_frame_and_reason() {
    let server = TestServer::default().await;
    let mut c = Client::connect(&server.url(), "alice").await;
    // An unmasked text frame with a reserved bit set: two violations of RFC 6455 §5.
    let raw: &[u8] = &[0b1111_0001, 0x02, b'h', b'i'];
    match c.ws.get_mut() {
        tokio_tungstenite::MaybeTlsStream::Plain(s) => s.write_all(raw).await.unwrap(),
        _ => unreachable!("plain ws:// in tests"),
    }
    let frame = c.close_frame().await;
    assert_eq!(
        frame.as_ref().map(|f| f.0),
        Some(1002),
        "close code 1002 (protocol error): {frame:?}"
    );
    server.stop().await;
}

#[tokio::test]
async fn resume_tokens_rotate_on_every_resume() {
    let server = TestServer::default().await;
    let url = server.url();
    let first = Client::connect(&url, "alice").await;
    let t1 = first.resume_token();
    drop(first);
    let second = Client::hello_with(&url, Some("alice"), None, Some(&t1)).await;
    let Some(ServerMsg::Welcome {
        resumed, session, ..
    }) = &second.welcome
    else {
        unreachable!()
    };
    assert!(resumed);
    let t2 = session.resume_token.clone();
    assert_ne!(t1, t2, "a resume hands out a new token");
    drop(second);
    // The old token no longer works; the new one does.
    let mut stale = Client::raw(&url).await;
    stale
        .send(&ClientMsg::Hello {
            protocol: PROTOCOL_VERSION,
            name: Some("alice".into()),
            token: None,
            resume: Some(t1),
        })
        .await;
    let m = stale.recv().await;
    assert!(
        matches!(m, ServerMsg::Welcome { resumed: false, .. }),
        "{m:?}"
    );
    stale.expect_error(ErrorReason::ResumeExpired).await;
    drop(stale);
    let third = Client::hello_with(&url, Some("alice"), None, Some(&t2)).await;
    assert!(matches!(
        third.welcome,
        Some(ServerMsg::Welcome { resumed: true, .. })
    ));
    server.stop().await;
}
