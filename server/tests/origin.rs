//! The `Origin` check on WebSocket upgrades (issue 17): a page of another site is refused with
//! 403 before any protocol, the server's own page and listed origins are welcomed, clients that
//! send no `Origin` (ours) are welcomed as before. Real upgrades against the real server.

use cromulent_protocol::{ClientMsg, PROTOCOL_VERSION, ServerMsg};
use cromulent_server::config::Config;
use cromulent_test_support::ws::TestServer;
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{Error, Message};

const WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Upgrade with `origin` (if any) and say hello; `Ok` with the first reply, or the HTTP status
/// the upgrade was refused with.
async fn hello_from(url: &str, origin: Option<&str>) -> Result<ServerMsg, u16> {
    let mut request = url.into_client_request().unwrap();
    if let Some(origin) = origin {
        request
            .headers_mut()
            .insert("origin", origin.parse().unwrap());
    }
    let connect = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(request))
        .await
        .expect("the upgrade is answered in time");
    let mut ws = match connect {
        Ok((ws, _)) => ws,
        Err(Error::Http(resp)) => return Err(resp.status().as_u16()),
        Err(e) => panic!("unexpected handshake failure: {e}"),
    };
    let hello = ClientMsg::Hello {
        protocol: PROTOCOL_VERSION,
        name: Some("alice".into()),
        token: None,
        resume: None,
    };
    ws.send(Message::text(serde_json::to_string(&hello).unwrap()))
        .await
        .unwrap();
    loop {
        let msg = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("a reply in time")
            .expect("the connection stays open")
            .unwrap();
        if let Message::Text(text) = msg {
            return Ok(serde_json::from_str(&text).unwrap());
        }
    }
}

fn welcomed(reply: Result<ServerMsg, u16>) -> bool {
    matches!(reply, Ok(ServerMsg::Welcome { .. }))
}

#[tokio::test]
async fn a_page_of_another_site_is_refused_before_any_protocol() {
    let server = TestServer::default().await;
    let url = server.url();
    assert_eq!(
        hello_from(&url, Some("https://evil.example")).await,
        Err(403)
    );
    assert_eq!(hello_from(&url, Some("null")).await, Err(403));
    // The server still serves everyone else.
    assert!(welcomed(hello_from(&url, None).await));
    server.stop().await;
}

#[tokio::test]
async fn the_server_s_own_page_and_clients_without_origin_are_welcome() {
    let server = TestServer::default().await;
    let url = server.url();
    let own = url.replacen("ws://", "http://", 1);
    assert!(welcomed(
        hello_from(&url, Some(own.trim_end_matches('/'))).await
    ));
    assert!(
        welcomed(hello_from(&url, None).await),
        "our terminal client sends no Origin"
    );
    server.stop().await;
}

#[tokio::test]
async fn listed_origins_are_welcome_and_only_with_their_scheme() {
    let mut config = Config::default();
    config.server.allowed_origins = vec!["https://chat.example.org".into()];
    let server = TestServer::start(config).await;
    let url = server.url();
    assert!(welcomed(
        hello_from(&url, Some("https://chat.example.org")).await
    ));
    assert_eq!(
        hello_from(&url, Some("http://chat.example.org")).await,
        Err(403)
    );
    server.stop().await;
}

#[test]
fn a_malformed_allowed_origin_is_a_clear_configuration_error() {
    let mut config = Config::default();
    config.server.allowed_origins = vec!["https://chat.example.org/app".into()];
    let err = config.validate().unwrap_err().to_string();
    assert!(err.contains("server.allowed_origins"), "{err}");
    assert!(err.contains("https://chat.example.org/app"), "{err}");
}
