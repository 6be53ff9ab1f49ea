//! One client connection: the front door (plain HTTP is served there, see
//! [`crate::front_door`]), the WebSocket handshake and `hello` (one deadline for both, from TCP
//! accept), then a loop that reads frames (size limit, rate limit, decoding — each problem
//! answered with its own error reason; a WebSocket protocol violation with a close frame that
//! says why), forwards requests to the hub, writes the hub's messages out, pings, and drops the
//! connection when it falls silent. Every write has a deadline: a client that stops reading
//! cannot hold the task (and its seat) forever. It holds no shared state: the hub owns that,
//! and [`crate::budget`] counts connections.
//! Must never decide a hub rule (seats, presence, who may signal whom): it forwards requests and
//! writes what the hub sends.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cromulent_protocol::{
    ClientMsg, ErrorReason, IceConfig, PROTOCOL_VERSION, ServerMsg, decode_client,
};
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::sync::{broadcast, oneshot};
use tokio::time::{Instant, timeout, timeout_at};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::StatusCode;
use tokio_tungstenite::tungstenite::http::header::{HOST, ORIGIN};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::auth::{self, Identity};
use crate::budget::Permit;
use crate::config::Config;
use crate::front_door::{self, Arrival, Prefixed};
use crate::hub::{Attach, ConnId, VoiceFlags};
use crate::hub_actor::{Command, HubHandle, new_resume_token};
use crate::origin;
use crate::outbound::{OutboundRx, outbound};
use crate::rate_limit::TokenBucket;
use crate::turn::IceProvider;

type Ws = WebSocketStream<Prefixed<TcpStream>>;

/// Initial capacity of a connection's read buffer. Client messages are small (an SDP offer,
/// the largest, is a few KiB and makes the buffer grow for that frame); every idle connection
/// keeps this much resident, so it is kept small.
const READ_BUFFER: usize = 1024;

/// Most queued frames written out together (see `Session::write_batch`).
const WRITE_BATCH: usize = 64;

/// Frames are gathered up to this many bytes before tungstenite writes them to the socket
/// (a flush writes whatever is gathered). Small, because the buffer keeps its capacity for the
/// connection's lifetime; a few KiB already holds a dozen presence messages.
const WRITE_BUFFER: usize = 4096;

/// What every connection task shares (read-only).
pub struct Shared {
    pub config: Config,
    pub hub: HubHandle,
    pub ice: IceProvider,
}

/// Serve one accepted TCP connection until it ends. `permit` is its place in the
/// unauthenticated budget; after a valid `hello` it moves to the authenticated one (or the
/// client is told `server_full`).
pub async fn serve(
    stream: TcpStream,
    conn: ConnId,
    shared: Arc<Shared>,
    mut permit: Permit,
    mut shutdown: broadcast::Receiver<()>,
) {
    // One deadline from accept to `hello`: the handshake's time counts against it.
    let deadline = Instant::now() + shared.config.hello_timeout();
    // Plain HTTP (the web client's files) is served and ends here; an upgrade goes on.
    let idle = shared.config.hello_timeout();
    let (stream, deadline) =
        match Box::pin(front_door::arrive(stream, deadline, idle, &mut shutdown)).await {
            Arrival::WebSocket(stream, deadline) => (stream, deadline),
            Arrival::Done => return,
        };
    // The set-up steps are boxed: a task's future is as large as its largest state, and
    // these states would otherwise sit in every idle connection's memory for its lifetime.
    let Some(mut ws) = Box::pin(handshake(stream, &shared.config, deadline)).await else {
        return;
    };
    let identity = tokio::select! {
        id = Box::pin(hello(&mut ws, &shared, deadline)) => id,
        _ = shutdown.recv() => None,
    };
    let Some((identity, resume)) = identity else {
        return;
    };
    if let Err(refusal) = permit.authenticate() {
        tracing::warn!(conn, user = %identity.user, %refusal, "refusing connection");
        Box::pin(close_with(
            &mut ws,
            ErrorReason::ServerFull,
            &refusal.to_string(),
        ))
        .await;
        return;
    }
    let ice = match resume {
        Some(_) => Box::pin(shared.ice.ice_for(&identity.user)).await,
        None => IceConfig::default(),
    };
    let (out_tx, out_rx) = outbound(shared.config.limits.outbound_queue_bytes);
    let (kick_tx, kick_rx) = oneshot::channel();
    shared.hub.send(Command::Attach {
        attach: Box::new(Attach {
            conn,
            identity: identity.clone(),
            resume,
            new_resume_token: new_resume_token(),
            ice,
        }),
        outbound: out_tx,
        kick: kick_tx,
    });
    let _detach = DetachOnDrop {
        hub: shared.hub.clone(),
        conn,
    };
    let mut session = Session {
        ws,
        conn,
        identity,
        shared: &shared,
        bucket: TokenBucket::new(
            shared.config.limits.messages_per_second,
            shared.config.limits.burst,
            std::time::Instant::now(),
        ),
        chat_bucket: TokenBucket::new(
            shared.config.chat.messages_per_second,
            shared.config.chat.burst,
            std::time::Instant::now(),
        ),
        last_rate_error: None,
    };
    session.run(out_rx, kick_rx, &mut shutdown).await;
    drop(permit);
}

/// Tell the hub when this connection ends, however it ends (even by panic).
struct DetachOnDrop {
    hub: HubHandle,
    conn: ConnId,
}

impl Drop for DetachOnDrop {
    fn drop(&mut self) {
        self.hub.send(Command::Detach { conn: self.conn });
    }
}

async fn handshake(stream: Prefixed<TcpStream>, config: &Config, deadline: Instant) -> Option<Ws> {
    let limit = config.limits.max_message_bytes;
    // tungstenite refuses frames beyond this hard cap outright; below it we read the frame and
    // answer `message_too_large` ourselves, keeping the connection.
    let hard_cap = (limit * 4).max(1 << 20);
    let ws_config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(WRITE_BUFFER)
        .max_message_size(Some(hard_cap))
        .max_frame_size(Some(hard_cap));
    let allowed = &config.server.allowed_origins;
    #[expect(
        clippy::result_large_err,
        reason = "tungstenite's handshake callback fixes the error type"
    )]
    let check_origin = |req: &Request, resp: Response| {
        let header = |name| req.headers().get(name).and_then(|v| v.to_str().ok());
        let origin = header(ORIGIN);
        if origin::allowed(origin, header(HOST), allowed) {
            return Ok(resp);
        }
        tracing::info!(
            ?origin,
            "websocket upgrade from a page of another site refused"
        );
        let mut refusal = ErrorResponse::new(Some("origin not allowed\n".into()));
        *refusal.status_mut() = StatusCode::FORBIDDEN;
        Err(refusal)
    };
    let accept =
        tokio_tungstenite::accept_hdr_async_with_config(stream, check_origin, Some(ws_config));
    match timeout_at(deadline, accept).await {
        Ok(Ok(ws)) => Some(ws),
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "websocket handshake failed");
            None
        }
        Err(_) => {
            tracing::debug!("websocket handshake timed out");
            None
        }
    }
}

/// Wait for a valid `hello`; on any problem tell the client why and close.
async fn hello(
    ws: &mut Ws,
    shared: &Shared,
    deadline: Instant,
) -> Option<(Identity, Option<String>)> {
    let config = &shared.config;
    let text = match timeout_at(deadline, first_text(ws)).await {
        Ok(Some(text)) => text,
        Ok(None) => return None,
        Err(_) => {
            close_with(ws, ErrorReason::NotAuthenticated, "no hello in time").await;
            return None;
        }
    };
    if text.len() > config.limits.max_message_bytes {
        close_with(ws, ErrorReason::MessageTooLarge, "hello too large").await;
        return None;
    }
    let (protocol, name, token, resume) = match decode_client(&text) {
        Ok(ClientMsg::Hello {
            protocol,
            name,
            token,
            resume,
        }) => (protocol, name, token, resume),
        Ok(_) => {
            close_with(ws, ErrorReason::NotAuthenticated, "send hello first").await;
            return None;
        }
        Err(e) => {
            close_with(ws, e.reason, &e.message).await;
            return None;
        }
    };
    if protocol != PROTOCOL_VERSION {
        let why = format!("server speaks protocol {PROTOCOL_VERSION}, client sent {protocol}");
        close_with(ws, ErrorReason::UnsupportedProtocol, &why).await;
        return None;
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    match auth::identify(
        &config.auth,
        config.limits.max_name_chars,
        name.as_deref(),
        token.as_deref(),
        now,
    ) {
        Ok(identity) => Some((identity, resume)),
        Err(e) => {
            close_with(ws, e.reason(), &e.to_string()).await;
            None
        }
    }
}

/// The first text frame, skipping control frames; `None` if the connection ends first.
async fn first_text(ws: &mut Ws) -> Option<String> {
    loop {
        match ws.next().await? {
            Ok(Message::Text(text)) => return Some(text.to_string()),
            Ok(Message::Binary(_)) => {
                close_with(ws, ErrorReason::BinaryNotSupported, "send hello as text").await;
                return None;
            }
            Ok(Message::Close(_)) => return None,
            Err(e) => {
                close_for_read_error(ws, e).await;
                return None;
            }
            Ok(_) => {}
        }
    }
}

/// A frame could not be read: for a WebSocket protocol violation or a frame past the hard
/// size cap, say why in an `error` and a close frame (1002, 1007 or 1009); for a broken
/// connection there is nobody to tell.
async fn close_for_read_error(ws: &mut Ws, e: tokio_tungstenite::tungstenite::Error) {
    use tokio_tungstenite::tungstenite::Error as WsError;
    let (reason, code, message) = match &e {
        WsError::Capacity(_) => (
            ErrorReason::MessageTooLarge,
            CloseCode::Size,
            format!("frame refused: {e}"),
        ),
        WsError::Protocol(_) => (
            ErrorReason::InvalidMessage,
            CloseCode::Protocol,
            format!("websocket protocol violation: {e}"),
        ),
        WsError::Utf8(_) => (
            ErrorReason::InvalidMessage,
            CloseCode::Invalid,
            "text frame is not valid UTF-8".to_owned(),
        ),
        _ => {
            tracing::debug!(error = %e, "read failed");
            return;
        }
    };
    tracing::info!(%reason, error = %e, "closing connection after a framing violation");
    close_with_code(ws, reason, &message, code).await;
}

/// Send `error(reason)`, then a close frame with the code that fits the reason; bounded in
/// time.
async fn close_with(ws: &mut Ws, reason: ErrorReason, message: &str) {
    let code = match reason {
        ErrorReason::ServerShutdown => CloseCode::Away,
        ErrorReason::ServerFull => CloseCode::Again,
        ErrorReason::MessageTooLarge => CloseCode::Size,
        _ => CloseCode::Policy,
    };
    close_with_code(ws, reason, message, code).await;
}

/// Send `error(reason)`, then a close frame with `code` and the reason's name; bounded in
/// time.
async fn close_with_code(ws: &mut Ws, reason: ErrorReason, message: &str, code: CloseCode) {
    let text = ServerMsg::error(reason, message).to_json();
    let close = CloseFrame {
        code,
        reason: reason.as_str().into(),
    };
    let goodbye = async {
        ws.send(Message::text(text)).await?;
        ws.close(Some(close)).await
    };
    let _ = timeout(Duration::from_secs(1), goodbye).await;
}

enum Flow {
    Continue,
    End,
}

struct Session<'a> {
    ws: Ws,
    conn: ConnId,
    identity: Identity,
    shared: &'a Shared,
    bucket: TokenBucket,
    /// `say`s have a budget of their own (`chat.messages_per_second`): each fans out.
    chat_bucket: TokenBucket,
    last_rate_error: Option<std::time::Instant>,
}

impl Session<'_> {
    async fn run(
        &mut self,
        mut outbound: OutboundRx,
        mut kick: oneshot::Receiver<ErrorReason>,
        shutdown: &mut broadcast::Receiver<()>,
    ) {
        let interval = self.shared.config.ping_interval();
        let silence_limit = self.shared.config.heartbeat_timeout();
        let mut ping = tokio::time::interval_at(Instant::now() + interval, interval);
        let mut last_heard = Instant::now();
        loop {
            tokio::select! {
                // Kick first: the hub sends the reason before it drops our outbound queue.
                biased;
                reason = &mut kick => {
                    let reason = reason.unwrap_or(ErrorReason::ServerShutdown);
                    tracing::info!(conn = self.conn, user = %self.identity.user, %reason, "closing connection");
                    // Goodbyes are boxed too: they happen once, at the end.
                    Box::pin(close_with(&mut self.ws, reason, kick_message(reason))).await;
                    return;
                }
                _ = shutdown.recv() => {
                    Box::pin(close_with(&mut self.ws, ErrorReason::ServerShutdown, "server shutting down")).await;
                    return;
                }
                out = outbound.recv() => {
                    let Some(text) = out else {
                        // The hub let go of us; say why if it told us.
                        if let Ok(reason) = kick.try_recv() {
                            Box::pin(close_with(&mut self.ws, reason, kick_message(reason))).await;
                        }
                        return;
                    };
                    let (limit, who) = (self.shared.config.write_timeout(), self.conn);
                    if !written(limit, who, self.write_batch(text, &mut outbound)).await {
                        return;
                    }
                }
                frame = self.ws.next() => {
                    let message = match frame {
                        Some(Ok(m)) => m,
                        Some(Err(e)) => {
                            Box::pin(close_for_read_error(&mut self.ws, e)).await;
                            return;
                        }
                        None => return,
                    };
                    last_heard = Instant::now();
                    // Boxed for the same reason as the set-up steps: handling a request (a
                    // TURN credentials call, an error reply) is rare next to waiting.
                    if let Flow::End = Box::pin(self.on_message(message)).await {
                        return;
                    }
                }
                _ = ping.tick() => {
                    if last_heard.elapsed() >= silence_limit {
                        tracing::info!(conn = self.conn, user = %self.identity.user, "heartbeat timeout: dropping silent connection");
                        return;
                    }
                    let (limit, who) = (self.shared.config.write_timeout(), self.conn);
                    if !written(limit, who, self.ws.send(Message::Ping(Default::default()))).await {
                        return;
                    }
                }
            }
        }
    }

    /// Write `first` and whatever else the hub has already queued for us (up to
    /// [`WRITE_BATCH`] frames), then flush once: when presence is busy, many frames leave in
    /// one write instead of one system call each; when it is quiet, a lone frame leaves at
    /// once as before. Order is the queue's order.
    async fn write_batch(
        &mut self,
        first: tokio_tungstenite::tungstenite::Utf8Bytes,
        outbound: &mut OutboundRx,
    ) -> Result<(), tokio_tungstenite::tungstenite::Error> {
        self.ws.feed(Message::Text(first)).await?;
        for _ in 1..WRITE_BATCH {
            let Some(text) = outbound.try_recv() else {
                break;
            };
            self.ws.feed(Message::Text(text)).await?;
        }
        self.ws.flush().await
    }

    async fn on_message(&mut self, message: Message) -> Flow {
        match message {
            Message::Text(text) => {
                if !self.bucket.allow(std::time::Instant::now()) {
                    return self.rate_limited().await;
                }
                let max = self.shared.config.limits.max_message_bytes;
                if text.len() > max {
                    let why = format!("message of {} bytes exceeds {max}", text.len());
                    return self.error(ErrorReason::MessageTooLarge, &why).await;
                }
                match decode_client(&text) {
                    Ok(msg) => self.on_request(msg).await,
                    Err(e) => self.error(e.reason, &e.message).await,
                }
            }
            Message::Binary(_) => {
                if !self.bucket.allow(std::time::Instant::now()) {
                    return self.rate_limited().await;
                }
                self.error(
                    ErrorReason::BinaryNotSupported,
                    "binary frames are not part of the protocol",
                )
                .await
            }
            Message::Close(_) => Flow::End,
            Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => Flow::Continue,
        }
    }

    async fn on_request(&mut self, msg: ClientMsg) -> Flow {
        let conn = self.conn;
        let cmd = match msg {
            ClientMsg::Hello { .. } => {
                return self
                    .error(ErrorReason::AlreadyAuthenticated, "hello was already sent")
                    .await;
            }
            ClientMsg::Join { channel } => {
                if !self.shared.config.channels.iter().any(|c| c.id == channel) {
                    let why = format!("no voice channel with id {channel}");
                    return self
                        .send(ServerMsg::error_in(
                            ErrorReason::NotFound,
                            why,
                            Some(channel),
                        ))
                        .await;
                }
                let ice = self.shared.ice.ice_for(&self.identity.user).await;
                Command::Join { conn, channel, ice }
            }
            ClientMsg::Leave => Command::Leave { conn },
            ClientMsg::VoiceState {
                muted,
                deafened,
                talking,
            } => Command::VoiceState {
                conn,
                flags: VoiceFlags {
                    muted,
                    deafened,
                    talking,
                },
            },
            ClientMsg::Signal { to, signal } => Command::Relay { conn, to, signal },
            ClientMsg::RefreshIce => {
                let ice = self.shared.ice.ice_for(&self.identity.user).await;
                return self.send(ServerMsg::IceServers { ice }).await;
            }
            ClientMsg::Ping { id } => return self.send(ServerMsg::Pong { id }).await,
            ClientMsg::Watch { channel } => Command::Watch { conn, channel },
            ClientMsg::Say { channel, .. }
                if !self.chat_bucket.allow(std::time::Instant::now()) =>
            {
                // Every refused line is answered: the sender must know which did not go.
                let chat = &self.shared.config.chat;
                let why = format!(
                    "chat: at most {} messages a second (bursts of {}); this one was not sent",
                    chat.messages_per_second, chat.burst
                );
                let refused = ServerMsg::error_in(ErrorReason::RateLimited, why, Some(channel));
                return self.send(refused).await;
            }
            ClientMsg::Say { channel, text } => Command::Say {
                conn,
                channel,
                text,
            },
            ClientMsg::History {
                channel,
                before,
                limit,
            } => Command::History {
                conn,
                channel,
                before,
                limit,
            },
        };
        self.shared.hub.send(cmd);
        Flow::Continue
    }

    /// Drop the message; say so at most once a second so a flood cannot make us flood back.
    async fn rate_limited(&mut self) -> Flow {
        let now = std::time::Instant::now();
        if self
            .last_rate_error
            .is_some_and(|t| now.duration_since(t) < Duration::from_secs(1))
        {
            return Flow::Continue;
        }
        self.last_rate_error = Some(now);
        self.error(
            ErrorReason::RateLimited,
            "too many messages; some were dropped",
        )
        .await
    }

    async fn error(&mut self, reason: ErrorReason, message: &str) -> Flow {
        self.send(ServerMsg::error(reason, message)).await
    }

    async fn send(&mut self, msg: ServerMsg) -> Flow {
        let (limit, who) = (self.shared.config.write_timeout(), self.conn);
        if written(limit, who, self.ws.send(Message::text(msg.to_json()))).await {
            Flow::Continue
        } else {
            Flow::End
        }
    }
}

/// Run one write with the write deadline: true when it completed. A write still pending at
/// the deadline means the client stopped reading and the socket's buffers are full; nothing
/// more can reach it, so the caller ends the connection (and its seat with it).
async fn written<E>(
    limit: Duration,
    conn: ConnId,
    write: impl std::future::Future<Output = Result<(), E>>,
) -> bool {
    match timeout(limit, write).await {
        Ok(result) => result.is_ok(),
        Err(_) => {
            tracing::warn!(
                conn,
                "write deadline passed: dropping a client that does not read"
            );
            false
        }
    }
}

fn kick_message(reason: ErrorReason) -> &'static str {
    match reason {
        ErrorReason::SessionReplaced => "your session was resumed by a newer connection",
        ErrorReason::SlowConsumer => "you did not read your messages fast enough",
        ErrorReason::NameTaken => {
            "a user with a name that looks the same is connected; choose another name"
        }
        _ => "closing",
    }
}
