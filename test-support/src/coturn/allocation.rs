//! A TURN client against a test coturn: the `turn` crate's client (the one webrtc-rs uses),
//! over UDP from 127.0.0.1. Every step is bounded by [`ALLOCATE_TIMEOUT`].
//! A coturn that does not answer must never hang a test: it is an error naming the step.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use turn::client::{Client, ClientConfig};
use webrtc_util::Conn;

/// Bound on one TURN transaction sequence (allocate, create permission).
pub const ALLOCATE_TIMEOUT: Duration = Duration::from_secs(5);

/// Why an allocation or a relayed send failed. The server's refusals keep its words (e.g.
/// `allocate refused: ... 401: Unauthorized`, `... 403: Forbidden`): tests look for the code.
#[derive(Debug, thiserror::Error)]
pub enum TurnError {
    #[error("bind: {0}")]
    Bind(std::io::Error),
    #[error("client: {0}")]
    Client(turn::Error),
    #[error("listen: {0}")]
    Listen(turn::Error),
    #[error("no allocation answer within {ALLOCATE_TIMEOUT:?}")]
    AllocateTimeout,
    #[error("allocate refused: {0}")]
    AllocateRefused(turn::Error),
    #[error("relayed addr: {0}")]
    RelayedAddr(webrtc_util::Error),
    #[error("no answer within {ALLOCATE_TIMEOUT:?}")]
    SendTimeout,
    /// A send through the relay failed; for a denied peer, the CreatePermission refusal.
    #[error("{0}")]
    Send(webrtc_util::Error),
}

/// One TURN allocation, held until [`Allocation::close`].
pub struct Allocation {
    client: Client,
    relay: Box<dyn Conn + Send + Sync>,
    relayed: SocketAddr,
}

impl Allocation {
    /// Allocate on `server` with these credentials.
    pub async fn new(
        server: SocketAddr,
        username: &str,
        password: &str,
    ) -> Result<Self, TurnError> {
        let socket = tokio::net::UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .map_err(TurnError::Bind)?;
        let client = Client::new(ClientConfig {
            stun_serv_addr: String::new(),
            turn_serv_addr: server.to_string(),
            username: username.to_owned(),
            password: password.to_owned(),
            realm: String::new(), // learnt from the server's first 401
            software: String::new(),
            rto_in_ms: 0, // the crate's default
            conn: Arc::new(socket),
            vnet: None,
        })
        .await
        .map_err(TurnError::Client)?;
        client.listen().await.map_err(TurnError::Listen)?;
        let relay = match tokio::time::timeout(ALLOCATE_TIMEOUT, client.allocate()).await {
            Err(_) => Err(TurnError::AllocateTimeout),
            Ok(Err(e)) => Err(TurnError::AllocateRefused(e)),
            Ok(Ok(relay)) => Ok(relay),
        };
        let relay = match relay {
            Ok(relay) => relay,
            Err(e) => {
                let _ = tokio::time::timeout(ALLOCATE_TIMEOUT, client.close()).await;
                return Err(e);
            }
        };
        let relayed = relay.local_addr().map_err(TurnError::RelayedAddr)?;
        Ok(Self {
            client,
            relay: Box::new(relay),
            relayed,
        })
    }

    /// The relayed transport address coturn gave us.
    pub fn relayed_addr(&self) -> SocketAddr {
        self.relayed
    }

    /// Send `data` to `peer` through the relay. The first send to a peer's IP makes a
    /// CreatePermission request; coturn answers `403 Forbidden` for a denied peer, and
    /// nothing is sent to it.
    pub async fn send_to(&self, data: &[u8], peer: SocketAddr) -> Result<(), TurnError> {
        match tokio::time::timeout(ALLOCATE_TIMEOUT, self.relay.send_to(data, peer)).await {
            Err(_) => Err(TurnError::SendTimeout),
            Ok(Err(e)) => Err(TurnError::Send(e)),
            Ok(Ok(_)) => Ok(()),
        }
    }

    /// Release the allocation and stop the client.
    pub async fn close(self) {
        let _ = tokio::time::timeout(ALLOCATE_TIMEOUT, self.relay.close()).await;
        let _ = tokio::time::timeout(ALLOCATE_TIMEOUT, self.client.close()).await;
    }
}

/// One allocation with these credentials against `server`: `Ok` is the relayed address (the
/// allocation is released before returning), `Err` the reason it was refused.
pub async fn allocate(
    server: SocketAddr,
    username: &str,
    password: &str,
) -> Result<SocketAddr, TurnError> {
    let allocation = Allocation::new(server, username, password).await?;
    let relayed = allocation.relayed_addr();
    allocation.close().await;
    Ok(relayed)
}
