//! The signaling connection task. See the module docs in `mod.rs`.
//!
//! Must never replay a message queued while disconnected (it is stale after a reconnect) nor
//! decide what to send: the engine does that after each `welcome`.

use std::time::Duration;

use cromulent_protocol::{ClientMsg, ErrorReason, PROTOCOL_VERSION, ServerMsg, decode_server};
use futures_util::{SinkExt, StreamExt};
use rand::Rng;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::{Instant, timeout};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::Backoff;

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// How long connecting plus the hello exchange may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// Assumed until the server's welcome says otherwise.
const DEFAULT_SILENCE_LIMIT: Duration = Duration::from_secs(20);

/// Who we say we are.
#[derive(Debug, Clone)]
pub struct Credentials {
    pub name: String,
    pub token: Option<String>,
}

/// What the task tells the engine.
#[derive(Debug, Clone, PartialEq)]
pub enum SignalingEvent {
    /// A server message; the first after each (re)connect is `welcome`.
    Message(ServerMsg),
    /// The connection was lost or could not be made; the next attempt is in `retry_in`.
    Lost { reason: String, retry_in: Duration },
    /// The server sent something that is not valid protocol; it was ignored.
    BadFrame { message: String },
    /// The server refused us for a reason retrying cannot fix; the task has stopped.
    Fatal {
        reason: ErrorReason,
        message: String,
    },
}

/// Send messages to the server through the task.
#[derive(Debug, Clone)]
pub struct SignalingHandle {
    tx: mpsc::UnboundedSender<ClientMsg>,
}

impl SignalingHandle {
    /// Queue a message. Messages queued while disconnected are dropped at the next connect:
    /// the engine re-sends what matters after each welcome.
    pub fn send(&self, msg: ClientMsg) {
        // The task ends only on a fatal error or when the engine is gone; then there is no
        // one to deliver to.
        let _ = self.tx.send(msg);
    }
}

/// Start the task. It runs until a fatal refusal or until every handle and the event
/// receiver are dropped.
pub fn spawn(
    url: String,
    credentials: Credentials,
    events: mpsc::UnboundedSender<SignalingEvent>,
) -> SignalingHandle {
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(run(url, credentials, rx, events));
    SignalingHandle { tx }
}

enum Ended {
    /// Try again after a delay.
    Retry(String),
    Fatal(ErrorReason, String),
    /// The engine is gone.
    Stop,
}

async fn run(
    url: String,
    credentials: Credentials,
    mut outgoing: mpsc::UnboundedReceiver<ClientMsg>,
    events: mpsc::UnboundedSender<SignalingEvent>,
) {
    let mut backoff = Backoff::default();
    let mut resume: Option<String> = None;
    loop {
        let ended = match connect(&url, &credentials, resume.as_deref(), &events).await {
            Ok((ws, welcome)) => {
                backoff.reset();
                let silence = silence_limit(&welcome);
                if let ServerMsg::Welcome { session, .. } = &welcome {
                    resume = Some(session.resume_token.clone());
                }
                // Whatever was queued while we were away is stale.
                while outgoing.try_recv().is_ok() {}
                if events.send(SignalingEvent::Message(welcome)).is_err() {
                    return;
                }
                session(ws, silence, &mut outgoing, &events).await
            }
            Err(ended) => ended,
        };
        match ended {
            Ended::Stop => return,
            Ended::Fatal(reason, message) => {
                let _ = events.send(SignalingEvent::Fatal { reason, message });
                return;
            }
            Ended::Retry(reason) => {
                let retry_in = backoff.next_delay(rand::rng().random());
                tracing::info!(%reason, ?retry_in, "signaling connection lost");
                if events
                    .send(SignalingEvent::Lost { reason, retry_in })
                    .is_err()
                {
                    return;
                }
                tokio::time::sleep(retry_in).await;
            }
        }
    }
}

/// Connect and exchange hello/welcome.
async fn connect(
    url: &str,
    credentials: &Credentials,
    resume: Option<&str>,
    events: &mpsc::UnboundedSender<SignalingEvent>,
) -> Result<(Ws, ServerMsg), Ended> {
    let attempt = async {
        let tls = tokio_tungstenite::Connector::Rustls(crate::tls::client_config());
        let (mut ws, _) =
            tokio_tungstenite::connect_async_tls_with_config(url, None, false, Some(tls))
                .await
                .map_err(|e| Ended::Retry(format!("server unreachable: {e}")))?;
        let hello = ClientMsg::Hello {
            protocol: PROTOCOL_VERSION,
            name: Some(credentials.name.clone()),
            token: credentials.token.clone(),
            resume: resume.map(str::to_owned),
        };
        ws.send(Message::text(hello.to_json()))
            .await
            .map_err(|e| Ended::Retry(format!("server closed the connection: {e}")))?;
        loop {
            match read(&mut ws, events).await? {
                Some(welcome @ ServerMsg::Welcome { .. }) => return Ok((ws, welcome)),
                Some(ServerMsg::Error {
                    reason, message, ..
                }) => return Err(refusal(reason, message)),
                other => tracing::debug!(?other, "ignoring message before welcome"),
            }
        }
    };
    match timeout(HANDSHAKE_TIMEOUT, attempt).await {
        Ok(result) => result,
        Err(_) => Err(Ended::Retry("server did not answer hello in time".into())),
    }
}

/// The next protocol message, or `None` for a control frame (a sign of life); garbage is
/// reported and skipped.
async fn read(
    ws: &mut Ws,
    events: &mpsc::UnboundedSender<SignalingEvent>,
) -> Result<Option<ServerMsg>, Ended> {
    loop {
        let frame = match ws.next().await {
            None => return Err(Ended::Retry("server closed the connection".into())),
            Some(Err(e)) => return Err(Ended::Retry(format!("connection to server failed: {e}"))),
            Some(Ok(frame)) => frame,
        };
        match frame {
            Message::Text(text) => match decode_server(&text) {
                Ok(msg) => return Ok(Some(msg)),
                Err(e) => {
                    let message = format!("server sent an invalid message: {e}");
                    tracing::warn!(%message);
                    if events.send(SignalingEvent::BadFrame { message }).is_err() {
                        return Err(Ended::Stop);
                    }
                }
            },
            Message::Binary(_) => {
                let message = "server sent a binary frame".to_owned();
                if events.send(SignalingEvent::BadFrame { message }).is_err() {
                    return Err(Ended::Stop);
                }
            }
            Message::Close(frame) => {
                let why = frame.map(|f| f.reason.to_string()).unwrap_or_default();
                return Err(Ended::Retry(format!("server closed the connection {why}")));
            }
            Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => return Ok(None),
        }
    }
}

/// Errors that retrying cannot fix stop the task; the rest are retried.
fn refusal(reason: ErrorReason, message: String) -> Ended {
    match reason {
        ErrorReason::InvalidToken
        | ErrorReason::TokenExpired
        | ErrorReason::InvalidName
        | ErrorReason::NameTaken
        | ErrorReason::UnsupportedProtocol
        | ErrorReason::SessionReplaced => Ended::Fatal(reason, message),
        _ => Ended::Retry(format!("server refused: {message}")),
    }
}

fn silence_limit(welcome: &ServerMsg) -> Duration {
    match welcome {
        ServerMsg::Welcome { heartbeat, .. } => Duration::from_millis(heartbeat.timeout_ms),
        _ => DEFAULT_SILENCE_LIMIT,
    }
}

/// Pass messages both ways until the connection ends.
async fn session(
    mut ws: Ws,
    silence_limit: Duration,
    outgoing: &mut mpsc::UnboundedReceiver<ClientMsg>,
    events: &mpsc::UnboundedSender<SignalingEvent>,
) -> Ended {
    let mut last_heard = Instant::now();
    let mut check = tokio::time::interval(Duration::from_millis(500));
    loop {
        tokio::select! {
            out = outgoing.recv() => {
                let Some(msg) = out else { return Ended::Stop };
                if let Err(e) = ws.send(Message::text(msg.to_json())).await {
                    return Ended::Retry(format!("connection to server failed: {e}"));
                }
            }
            msg = read(&mut ws, events) => {
                last_heard = Instant::now();
                let msg = match msg {
                    Ok(Some(m)) => m,
                    Ok(None) => continue,
                    Err(ended) => return ended,
                };
                if let ServerMsg::Error { reason, message, .. } = &msg
                    && let Ended::Fatal(..) = refusal(*reason, String::new())
                {
                    return Ended::Fatal(*reason, message.clone());
                }
                if events.send(SignalingEvent::Message(msg)).is_err() {
                    return Ended::Stop;
                }
            }
            _ = check.tick() => {
                if last_heard.elapsed() > silence_limit {
                    return Ended::Retry("server stopped answering".into());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_no_retry_can_fix_stop_the_client() {
        for reason in [
            ErrorReason::InvalidToken,
            ErrorReason::TokenExpired,
            ErrorReason::InvalidName,
            ErrorReason::NameTaken,
            ErrorReason::UnsupportedProtocol,
            ErrorReason::SessionReplaced,
        ] {
            assert!(
                matches!(refusal(reason, String::new()), Ended::Fatal(r, _) if r == reason),
                "{reason}"
            );
        }
        for reason in [ErrorReason::ServerFull, ErrorReason::SlowConsumer] {
            assert!(
                matches!(refusal(reason, String::new()), Ended::Retry(_)),
                "{reason}"
            );
        }
    }
}
