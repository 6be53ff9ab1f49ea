//! One port, two faces: every accepted connection starts here. Its first request head is read
//! (bounded in size, within the connection's `hello` deadline) and decides what it is:
//! - a WebSocket upgrade goes on to the signaling handshake, with the bytes read so far
//!   replayed in front of the socket ([`Prefixed`]), so tungstenite sees the request whole;
//! - anything else is plain HTTP: the web client's files ([`crate::web`]), request after
//!   request on one connection (keep-alive), each head within the deadline again, until the
//!   client closes, asks to, sends something we will not serve, or the server stops.
//!
//! Must never read a request body (nothing here takes one: a request that announces one gets
//! 413 and the connection closes) and never wait without a deadline.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::broadcast;
use tokio::time::{Instant, timeout, timeout_at};

use crate::web;

/// Largest request head read (browsers send well under 2 KiB).
const MAX_HEAD: usize = 8 * 1024;
/// Headers parsed per request; more is `431`.
const MAX_HEADERS: usize = 48;
/// Requests served on one connection before it is closed (a page needs about ten).
const MAX_REQUESTS: usize = 100;
/// Deadline for writing one response.
const WRITE_DEADLINE: Duration = Duration::from_secs(10);

/// What the first request on a connection turned out to be.
pub enum Arrival {
    /// A WebSocket upgrade: hand this stream (the request still unread in front) to the
    /// WebSocket handshake, which (with `hello`) must be done by the deadline given: the
    /// connection's own, or for an upgrade after plain requests, one counted from its head.
    WebSocket(Prefixed<TcpStream>, Instant),
    /// Plain HTTP, served and finished; or a connection that ended or misbehaved.
    Done,
}

/// Read the first request head; serve HTTP until the connection is done, or return the stream
/// of a WebSocket upgrade. Each request head must be complete by `deadline` (the first) or
/// within `idle` of the previous answer.
pub async fn arrive(
    mut stream: TcpStream,
    deadline: Instant,
    idle: Duration,
    shutdown: &mut broadcast::Receiver<()>,
) -> Arrival {
    let mut buf = Vec::with_capacity(1024);
    let mut deadline = deadline;
    for _ in 0..MAX_REQUESTS {
        let head = tokio::select! {
            head = timeout_at(deadline, read_head(&mut stream, &mut buf)) => head,
            _ = shutdown.recv() => return Arrival::Done,
        };
        let (len, head) = match head {
            Ok(Ok(Some(parsed))) => parsed,
            // Closed between requests, or before sending one.
            Ok(Ok(None)) => return Arrival::Done,
            Ok(Err(HeadError::Io)) => return Arrival::Done,
            Ok(Err(HeadError::TooLarge)) => {
                let _ = answer(
                    &mut stream,
                    &web::plain(431, b"request head too large\n"),
                    false,
                )
                .await;
                return Arrival::Done;
            }
            Ok(Err(HeadError::Malformed)) => {
                let _ = answer(&mut stream, &web::plain(400, b"malformed request\n"), false).await;
                return Arrival::Done;
            }
            Err(_) => {
                if !buf.is_empty() {
                    let _ =
                        answer(&mut stream, &web::plain(408, b"request too slow\n"), false).await;
                }
                return Arrival::Done;
            }
        };
        if head.upgrade_websocket {
            return Arrival::WebSocket(Prefixed::new(buf, stream), deadline.max(Instant::now()));
        }
        let response = if head.has_body {
            web::plain(413, b"requests with a body are not served here\n")
        } else {
            web::respond(&web::Request {
                method: &head.method,
                target: &head.target,
                host: head.host.as_deref(),
                if_none_match: head.if_none_match.as_deref(),
            })
        };
        let keep_alive = head.keep_alive && !head.has_body;
        tracing::debug!(method = %head.method, target = %head.target, status = response.status, "http");
        if answer(&mut stream, &response, keep_alive).await.is_err() || !keep_alive {
            return Arrival::Done;
        }
        // Anything pipelined after this head is the start of the next one.
        buf.drain(..len);
        deadline = Instant::now() + idle;
    }
    Arrival::Done
}

async fn answer(
    stream: &mut TcpStream,
    response: &web::Response,
    keep_alive: bool,
) -> io::Result<()> {
    let write = async {
        stream
            .write_all(response.head(keep_alive).as_bytes())
            .await?;
        stream.write_all(response.body).await?;
        stream.flush().await
    };
    match timeout(WRITE_DEADLINE, write).await {
        Ok(result) => result,
        Err(_) => Err(io::ErrorKind::TimedOut.into()),
    }
}

/// What the front door needs of a request head.
#[derive(Debug, Default, PartialEq, Eq)]
struct Head {
    method: String,
    target: String,
    host: Option<String>,
    if_none_match: Option<String>,
    upgrade_websocket: bool,
    keep_alive: bool,
    has_body: bool,
}

#[derive(Debug, PartialEq, Eq)]
enum HeadError {
    Io,
    TooLarge,
    Malformed,
}

/// Read until `buf` holds a whole request head; its length and the parsed head. `None` when
/// the peer closed before sending anything (more).
async fn read_head(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
) -> Result<Option<(usize, Head)>, HeadError> {
    loop {
        if !buf.is_empty()
            && let Some(parsed) = parse_head(buf)?
        {
            return Ok(Some(parsed));
        }
        if buf.len() >= MAX_HEAD {
            return Err(HeadError::TooLarge);
        }
        let mut chunk = [0u8; 1024];
        let room = chunk.len().min(MAX_HEAD - buf.len());
        match stream.read(&mut chunk[..room]).await {
            Ok(0) if buf.is_empty() => return Ok(None),
            Ok(0) => return Err(HeadError::Malformed),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(_) => return Err(HeadError::Io),
        }
    }
}

/// Parse a request head from the start of `buf`: `None` while incomplete.
fn parse_head(buf: &[u8]) -> Result<Option<(usize, Head)>, HeadError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let len = match req.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(HeadError::TooLarge),
        Err(_) => return Err(HeadError::Malformed),
    };
    let value = |name: &str| {
        req.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .and_then(|h| std::str::from_utf8(h.value).ok())
            .map(str::trim)
    };
    let has_token = |name: &str, token: &str| {
        req.headers
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case(name))
            .filter_map(|h| std::str::from_utf8(h.value).ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    };
    let version = req.version.unwrap_or(0);
    let keep_alive = if version >= 1 {
        !has_token("connection", "close")
    } else {
        has_token("connection", "keep-alive")
    };
    let has_body =
        value("content-length").is_some_and(|v| v != "0") || value("transfer-encoding").is_some();
    let head = Head {
        method: req.method.unwrap_or("").to_owned(),
        target: req.path.unwrap_or("").to_owned(),
        host: value("host").map(str::to_owned),
        if_none_match: value("if-none-match").map(str::to_owned),
        upgrade_websocket: has_token("upgrade", "websocket"),
        keep_alive,
        has_body,
    };
    Ok(Some((len, head)))
}

/// A stream with bytes already read from it put back in front: reads return `prefix` first,
/// then the stream's own bytes; writes go straight through. The prefix is freed once read.
pub struct Prefixed<S> {
    prefix: Option<(Vec<u8>, usize)>,
    inner: S,
}

impl<S> Prefixed<S> {
    pub fn new(prefix: Vec<u8>, inner: S) -> Self {
        let prefix = (!prefix.is_empty()).then_some((prefix, 0));
        Self { prefix, inner }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Prefixed<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if let Some((bytes, pos)) = &mut self.prefix {
            let n = out.remaining().min(bytes.len() - *pos);
            out.put_slice(&bytes[*pos..*pos + n]);
            *pos += n;
            if *pos == bytes.len() {
                self.prefix = None;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, out)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Prefixed<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Head {
        let (len, head) = parse_head(text.as_bytes()).unwrap().expect("complete");
        assert_eq!(len, text.find("\r\n\r\n").unwrap() + 4);
        head
    }

    #[test]
    fn an_upgrade_is_told_by_its_upgrade_token() {
        let head = parse(
            "GET /ws HTTP/1.1\r\nHost: a:1\r\nConnection: keep-alive, Upgrade\r\nUpgrade: WebSocket\r\n\r\n",
        );
        assert!(head.upgrade_websocket);
        let page = parse("GET / HTTP/1.1\r\nHost: a:1\r\n\r\n");
        assert!(!page.upgrade_websocket);
        assert!(page.keep_alive);
        assert_eq!((page.method.as_str(), page.target.as_str()), ("GET", "/"));
        assert_eq!(page.host.as_deref(), Some("a:1"));
    }

    #[test]
    fn keep_alive_follows_the_version_and_connection_header() {
        assert!(!parse("GET / HTTP/1.1\r\nConnection: close\r\n\r\n").keep_alive);
        assert!(!parse("GET / HTTP/1.0\r\n\r\n").keep_alive);
        assert!(parse("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").keep_alive);
    }

    #[test]
    fn a_partial_head_waits_and_garbage_is_malformed() {
        assert_eq!(parse_head(b"GET / HTTP/1.1\r\nHost: a").unwrap(), None);
        assert_eq!(
            parse_head(b"\x16\x03\x01\x02\x00"),
            Err(HeadError::Malformed)
        );
        assert_eq!(
            parse_head(b"GET / HTTP/1.1\r\nBad Header\r\n\r\n"),
            Err(HeadError::Malformed)
        );
    }

    #[test]
    fn a_body_is_noticed() {
        assert!(parse("POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\n").has_body);
        assert!(parse("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n").has_body);
        assert!(!parse("GET / HTTP/1.1\r\nContent-Length: 0\r\n\r\n").has_body);
    }

    #[test]
    fn too_many_headers_is_too_large() {
        let mut text = String::from("GET / HTTP/1.1\r\n");
        for i in 0..=MAX_HEADERS {
            text.push_str(&format!("X-{i}: y\r\n"));
        }
        text.push_str("\r\n");
        assert_eq!(parse_head(text.as_bytes()), Err(HeadError::TooLarge));
    }

    #[tokio::test]
    async fn prefixed_replays_its_prefix_then_reads_the_stream() {
        let (mut a, b) = tokio::io::duplex(64);
        a.write_all(b" world").await.unwrap();
        drop(a);
        let mut p = Prefixed::new(b"hello".to_vec(), b);
        let mut out = String::new();
        p.read_to_string(&mut out).await.unwrap();
        assert_eq!(out, "hello world");
        assert!(p.prefix.is_none(), "the prefix is freed once read");
    }
}
