//! TURN over a stream: `turn:…?transport=tcp` and `turns:` (TLS) URLs (RFC 8656 §3.1).
//!
//! The TURN client (`turn::client::Client`) speaks to its server through any `Conn`. Over UDP
//! every datagram is one STUN message or one ChannelData message; over TCP or TLS the same
//! messages are sent back to back, each ChannelData message padded to a multiple of four
//! bytes (RFC 8656 §12.5). [`StreamConn`] is that `Conn`: it frames what the client sends and
//! splits what the server sends into whole messages again. The allocation itself still relays
//! UDP to the peer, as browsers do; RFC 6062 TCP allocations are not needed.
//!
//! TLS verifies the server's certificate against the system's roots (`rustls-native-certs`,
//! which honours `SSL_CERT_FILE` and `SSL_CERT_DIR` for a private CA) or, if the application
//! gave one with [`set_tls_config`], against its own trust; the URL's host is the server name
//! (SNI).
//!
//! Added to webrtc-ice 0.17.2 by Cromulent Voice (see VENDORED.md).

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::net::TcpStream;
use tokio::sync::Mutex;
use util::Conn;

use crate::url::{ProtoType, SchemeType, Url};

/// How a relay candidate reaches its TURN server, in the order browsers prefer them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelayTransport {
    Udp,
    Tcp,
    Tls,
}

impl RelayTransport {
    /// The transport a TURN URL asks for; `None` for what no TURN client speaks (DTLS).
    pub fn of(url: &Url) -> Option<Self> {
        match (url.scheme, url.proto) {
            (SchemeType::Turn, ProtoType::Udp) => Some(Self::Udp),
            (SchemeType::Turn, ProtoType::Tcp) => Some(Self::Tcp),
            (SchemeType::Turns, ProtoType::Tcp) => Some(Self::Tls),
            _ => None,
        }
    }

    /// The candidate's local preference (RFC 8445 §5.1.2.1): UDP above TCP above TLS, so a
    /// network that lets UDP through never relays over a stream (libwebrtc ranks them the same
    /// way). Every relay candidate has type preference 0, so this alone orders them.
    pub fn local_preference(self) -> u16 {
        match self {
            Self::Udp => 65535,
            Self::Tcp => 49151,
            Self::Tls => 32767,
        }
    }

    /// A relay candidate's priority (RFC 8445 §5.1.2.1) for `component`.
    pub fn priority(self, component: u16) -> u32 {
        (1 << 8) * u32::from(self.local_preference()) + (256 - u32::from(component.min(256)))
    }
}

/// Why a stream to a TURN server could not be used.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    #[error("connecting to {addr}: {source}")]
    Connect {
        addr: String,
        source: std::io::Error,
    },
    #[error("{0:?} is not a TLS server name")]
    ServerName(String),
    #[error("TLS handshake with {host}: {source}")]
    Tls {
        host: String,
        source: std::io::Error,
    },
    #[error("the TURN server sent a message that is neither STUN nor ChannelData (first byte {0:#04x})")]
    Framing(u8),
    #[error("the TURN server closed the connection")]
    Closed,
}

/// Length of the message whose first four bytes are `header`, and the bytes it takes on the
/// stream (ChannelData is padded to four); an error for anything else, after which the stream
/// cannot be resynchronised.
pub fn frame_len(header: [u8; 4]) -> Result<(usize, usize), StreamError> {
    let length = usize::from(u16::from_be_bytes([header[2], header[3]]));
    match header[0] >> 6 {
        // STUN: a 20-byte header; its length is always a multiple of four.
        0b00 => Ok((20 + length, 20 + length)),
        // ChannelData: channel numbers 0x4000–0x7FFF.
        0b01 => Ok((4 + length, (4 + length + 3) & !3)),
        _ => Err(StreamError::Framing(header[0])),
    }
}

/// What goes on the stream for one message the client sends: itself, padded to four if it
/// is ChannelData.
fn framed(message: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    let pad = (4 - message.len() % 4) % 4;
    if pad == 0 || message.first().is_none_or(|b| b >> 6 != 0b01) {
        std::borrow::Cow::Borrowed(message)
    } else {
        let mut out = Vec::with_capacity(message.len() + pad);
        out.extend_from_slice(message);
        out.resize(message.len() + pad, 0);
        std::borrow::Cow::Owned(out)
    }
}

/// Takes the first whole message (without its padding) out of `pending`, if there is one.
fn take_frame(pending: &mut Vec<u8>) -> Result<Option<Vec<u8>>, StreamError> {
    let Some(header) = pending.get(..4) else {
        return Ok(None);
    };
    let (len, wire) = frame_len([header[0], header[1], header[2], header[3]])?;
    if pending.len() < wire {
        return Ok(None);
    }
    let mut message: Vec<u8> = pending.drain(..wire).collect();
    message.truncate(len);
    Ok(Some(message))
}

trait Stream: AsyncRead + AsyncWrite + Send + Sync + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Sync + Unpin> Stream for T {}

struct Reader {
    half: ReadHalf<Box<dyn Stream>>,
    /// Bytes read but not yet returned: a message may arrive in pieces, and a `recv_from`
    /// cancelled half-way loses nothing.
    pending: Vec<u8>,
}

/// A `Conn` carrying one TURN client's messages over one TCP or TLS connection.
pub struct StreamConn {
    reader: Mutex<Reader>,
    writer: Mutex<WriteHalf<Box<dyn Stream>>>,
    local: SocketAddr,
    server: SocketAddr,
}

impl StreamConn {
    /// Connects to the TURN server of `url` (`turn:…?transport=tcp` or `turns:`).
    pub async fn dial(url: &Url) -> Result<Self, StreamError> {
        let addr = format!("{}:{}", url.host, url.port);
        let tcp = TcpStream::connect(&addr)
            .await
            .map_err(|source| StreamError::Connect {
                addr: addr.clone(),
                source,
            })?;
        let _ = tcp.set_nodelay(true);
        let connect_err = |source| StreamError::Connect {
            addr: addr.clone(),
            source,
        };
        let local = tcp.local_addr().map_err(connect_err)?;
        let server = tcp.peer_addr().map_err(connect_err)?;
        let stream: Box<dyn Stream> = if url.scheme == SchemeType::Turns {
            let name = rustls::pki_types::ServerName::try_from(url.host.clone())
                .map_err(|_| StreamError::ServerName(url.host.clone()))?;
            let tls = tokio_rustls::TlsConnector::from(tls_config())
                .connect(name, tcp)
                .await
                .map_err(|source| StreamError::Tls {
                    host: url.host.clone(),
                    source,
                })?;
            Box::new(tls)
        } else {
            Box::new(tcp)
        };
        let (read, write) = tokio::io::split(stream);
        Ok(Self {
            reader: Mutex::new(Reader {
                half: read,
                pending: Vec::new(),
            }),
            writer: Mutex::new(write),
            local,
            server,
        })
    }
}

static TLS_CONFIG: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();

/// Sets the TLS client configuration of every `turns:` connection (an application's private
/// CA, say), before the first one. Whether it was set: `false` if one was already in use.
pub fn set_tls_config(config: Arc<rustls::ClientConfig>) -> bool {
    TLS_CONFIG.set(config).is_ok()
}

/// The TLS client configuration every `turns:` connection shares: the one given to
/// [`set_tls_config`], else the system's roots.
fn tls_config() -> Arc<rustls::ClientConfig> {
    Arc::clone(TLS_CONFIG.get_or_init(|| {
        let mut roots = rustls::RootCertStore::empty();
        let found = rustls_native_certs::load_native_certs();
        for error in &found.errors {
            log::warn!("reading the system's certificates: {error}");
        }
        let (added, ignored) = roots.add_parsable_certificates(found.certs);
        log::debug!("TURN over TLS trusts {added} certificates ({ignored} unusable)");
        let provider = rustls::crypto::CryptoProvider::get_default()
            .cloned()
            .unwrap_or_else(|| Arc::new(rustls::crypto::ring::default_provider()));
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("the crypto provider supports TLS 1.2 and 1.3")
            .with_root_certificates(roots)
            .with_no_client_auth();
        Arc::new(config)
    }))
}

fn io_error(e: impl std::fmt::Display) -> util::Error {
    util::Error::Other(e.to_string())
}

#[async_trait]
impl Conn for StreamConn {
    async fn connect(&self, _addr: SocketAddr) -> util::Result<()> {
        Err(util::Error::Other("a TURN stream is connected when dialled".into()))
    }

    async fn recv(&self, buf: &mut [u8]) -> util::Result<usize> {
        Ok(self.recv_from(buf).await?.0)
    }

    async fn recv_from(&self, buf: &mut [u8]) -> util::Result<(usize, SocketAddr)> {
        let mut reader = self.reader.lock().await;
        let reader = &mut *reader;
        loop {
            if let Some(message) = take_frame(&mut reader.pending).map_err(io_error)? {
                let n = message.len().min(buf.len());
                buf[..n].copy_from_slice(&message[..n]);
                return Ok((n, self.server));
            }
            let mut chunk = [0u8; 4096];
            let n = reader.half.read(&mut chunk).await?;
            if n == 0 {
                return Err(io_error(StreamError::Closed));
            }
            reader.pending.extend_from_slice(&chunk[..n]);
        }
    }

    async fn send(&self, buf: &[u8]) -> util::Result<usize> {
        self.send_to(buf, self.server).await
    }

    async fn send_to(&self, buf: &[u8], target: SocketAddr) -> util::Result<usize> {
        if target != self.server {
            return Err(util::Error::Other(format!(
                "a TURN stream to {} cannot send to {target}",
                self.server
            )));
        }
        let mut writer = self.writer.lock().await;
        writer.write_all(&framed(buf)).await?;
        Ok(buf.len())
    }

    fn local_addr(&self) -> util::Result<SocketAddr> {
        Ok(self.local)
    }

    fn remote_addr(&self) -> Option<SocketAddr> {
        Some(self.server)
    }

    async fn close(&self) -> util::Result<()> {
        let mut writer = self.writer.lock().await;
        writer.shutdown().await?;
        Ok(())
    }

    fn as_any(&self) -> &(dyn std::any::Any + Send + Sync) {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stun(body_len: u16) -> Vec<u8> {
        let mut m = vec![0x00, 0x01];
        m.extend_from_slice(&body_len.to_be_bytes());
        m.extend_from_slice(&[0x21, 0x12, 0xa4, 0x42]);
        m.extend_from_slice(&[7; 12]);
        m.extend(std::iter::repeat_n(9, usize::from(body_len)));
        m
    }

    fn channel_data(len: u16) -> Vec<u8> {
        let mut m = vec![0x40, 0x01];
        m.extend_from_slice(&len.to_be_bytes());
        m.extend(std::iter::repeat_n(5, usize::from(len)));
        m
    }

    #[test]
    fn stun_and_channel_data_lengths() {
        assert_eq!(frame_len([0x01, 0x01, 0x00, 0x08]).unwrap(), (28, 28));
        assert_eq!(frame_len([0x40, 0x00, 0x00, 0x05]).unwrap(), (9, 12));
        assert_eq!(frame_len([0x7f, 0xff, 0x00, 0x04]).unwrap(), (8, 8));
        assert!(matches!(
            frame_len([0x80, 0, 0, 0]),
            Err(StreamError::Framing(0x80))
        ));
        assert!(frame_len([0xc0, 0, 0, 0]).is_err());
    }

    #[test]
    fn channel_data_is_padded_on_the_way_out_and_stun_is_not() {
        assert_eq!(framed(&channel_data(5)).len(), 12);
        assert_eq!(&framed(&channel_data(5))[9..], &[0, 0, 0]);
        assert_eq!(framed(&channel_data(8)).len(), 12);
        assert_eq!(framed(&stun(8)).len(), 28);
    }

    #[test]
    fn messages_come_out_whole_however_the_bytes_arrive() {
        let sent = [stun(8), channel_data(5), channel_data(3), stun(0)];
        let wire: Vec<u8> = sent.iter().flat_map(|m| framed(m).into_owned()).collect();
        for piece in [1, 3, 7, wire.len()] {
            let mut pending = Vec::new();
            let mut got = Vec::new();
            for chunk in wire.chunks(piece) {
                pending.extend_from_slice(chunk);
                while let Some(m) = take_frame(&mut pending).unwrap() {
                    got.push(m);
                }
            }
            assert_eq!(got, sent, "in pieces of {piece}");
            assert!(pending.is_empty());
        }
    }

    #[test]
    fn garbage_is_an_error_not_a_hang() {
        let mut pending = vec![0xff, 0, 0, 1, 2, 3];
        assert!(take_frame(&mut pending).is_err());
    }

    #[test]
    fn relays_rank_udp_over_tcp_over_tls() {
        let [udp, tcp, tls] = [RelayTransport::Udp, RelayTransport::Tcp, RelayTransport::Tls]
            .map(|t| t.priority(1));
        assert!(udp > tcp && tcp > tls, "{udp} {tcp} {tls}");
        // Still below every server-reflexive candidate (type preference 100).
        assert!(udp < 100 << 24);
    }

    #[test]
    fn urls_name_their_transport() {
        let of = |s: &str| RelayTransport::of(&Url::parse_url(s).unwrap());
        assert_eq!(of("turn:h:3478"), Some(RelayTransport::Udp));
        assert_eq!(of("turn:h:3478?transport=udp"), Some(RelayTransport::Udp));
        assert_eq!(of("turn:h:3478?transport=tcp"), Some(RelayTransport::Tcp));
        assert_eq!(of("turns:h:443"), Some(RelayTransport::Tls));
        assert_eq!(of("turns:h:443?transport=tcp"), Some(RelayTransport::Tls));
        assert_eq!(of("turns:h:443?transport=udp"), None);
        assert_eq!(of("stun:h:3478"), None);
    }
}
