//! One load-generator client: a WebSocket to the server from a chosen loopback source address
//! (bound before connecting, so many 127.0.0.x addresses multiply the ephemeral ports
//! available), `hello`, and cheap classification of what the server sends.
//! It must never parse a whole server message: thousands of these share one process, so only
//! the `type` tag is read ([`kind`]).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use anyhow::{Context, bail};
use cromulent_protocol::{ClientMsg, PROTOCOL_VERSION};
use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::timeout;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

pub type Ws = WebSocketStream<TcpStream>;

/// Bound on connecting, the WebSocket handshake and `welcome`, together.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// `count` loopback source addresses: 127.0.0.1, 127.0.0.2, …
pub fn source_addresses(count: usize) -> Vec<IpAddr> {
    (0..count.clamp(1, 250))
        .map(|i| IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1 + i as u8)))
        .collect()
}

/// Open a WebSocket to `server` from `source` (any port), say `hello` as `name`, and wait for
/// `welcome`. Errors name the step that failed.
pub async fn connect(server: SocketAddr, source: IpAddr, name: &str) -> anyhow::Result<Ws> {
    connect_with(server, source, name, None).await
}

/// [`connect`], with the socket's receive buffer capped at `recv_buffer` bytes when given (a
/// client that will stop reading: the server's writes block soon).
pub async fn connect_with(
    server: SocketAddr,
    source: IpAddr,
    name: &str,
    recv_buffer: Option<u32>,
) -> anyhow::Result<Ws> {
    timeout(
        HANDSHAKE_TIMEOUT,
        connect_inner(server, source, name, recv_buffer),
    )
    .await
    .context("timed out (connect, handshake or welcome)")?
}

async fn connect_inner(
    server: SocketAddr,
    source: IpAddr,
    name: &str,
    recv_buffer: Option<u32>,
) -> anyhow::Result<Ws> {
    let socket = TcpSocket::new_v4().context("socket")?;
    if let Some(bytes) = recv_buffer {
        socket
            .set_recv_buffer_size(bytes)
            .context("receive buffer")?;
    }
    socket
        .bind(SocketAddr::new(source, 0))
        .with_context(|| format!("bind {source}"))?;
    let stream = socket.connect(server).await.context("connect")?;
    stream.set_nodelay(true).context("nodelay")?;
    let request = format!("ws://{server}/")
        .into_client_request()
        .context("request")?;
    // Small buffers: thousands of these live in one process.
    let config = WebSocketConfig::default()
        .read_buffer_size(2048)
        .write_buffer_size(0);
    let (mut ws, _) = tokio_tungstenite::client_async_with_config(request, stream, Some(config))
        .await
        .context("websocket handshake")?;
    send(&mut ws, &hello(name)).await?;
    loop {
        let text = next_text(&mut ws).await.context("waiting for welcome")?;
        match kind(&text) {
            "welcome" => return Ok(ws),
            "error" => bail!("refused: {text}"),
            _ => {}
        }
    }
}

/// The `hello` of a fresh session in open mode.
pub fn hello(name: &str) -> ClientMsg {
    ClientMsg::Hello {
        protocol: PROTOCOL_VERSION,
        name: Some(name.to_owned()),
        token: None,
        resume: None,
    }
}

pub async fn send(ws: &mut Ws, msg: &ClientMsg) -> anyhow::Result<()> {
    ws.send(Message::text(msg.to_json())).await.context("send")
}

/// The next text frame; pings are answered by tungstenite while reading. An error when the
/// connection ends.
pub async fn next_text(ws: &mut Ws) -> anyhow::Result<String> {
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(t))) => return Ok(t.to_string()),
            Some(Ok(Message::Close(c))) => bail!("closed by server: {c:?}"),
            Some(Ok(_)) => {}
            Some(Err(e)) => bail!("read: {e}"),
            None => bail!("connection ended"),
        }
    }
}

/// The `type` of a server message without parsing it all: serde writes the tag first, as
/// `{"type":"NAME",…}`. Empty when the text does not start that way.
pub fn kind(text: &str) -> &str {
    text.strip_prefix(r#"{"type":""#)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;
    use cromulent_protocol::{ErrorReason, ServerMsg};

    #[test]
    fn kind_reads_the_serialized_tag() {
        let msg = ServerMsg::error(ErrorReason::NotFound, "x").to_json();
        assert_eq!(kind(&msg), "error");
        let msg = ServerMsg::Presence { changes: vec![] }.to_json();
        assert_eq!(kind(&msg), "presence");
        assert_eq!(kind("garbage"), "");
    }

    #[test]
    fn sources_are_distinct_loopback_addresses() {
        let s = source_addresses(3);
        assert_eq!(s.len(), 3);
        assert!(s.iter().all(IpAddr::is_loopback));
        assert_eq!(s[2], IpAddr::V4(Ipv4Addr::new(127, 0, 0, 3)));
    }
}
