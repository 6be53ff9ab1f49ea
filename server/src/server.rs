//! The accept loop and graceful shutdown (mini-redis style): a broadcast tells every
//! connection to stop; the run ends when all of them have finished (or a deadline passes).
//! [`Budgets`] cap connections: before `hello` and after, in total and per source address.
//! Must never do handshake work before a budget admits a connection: a refused one is closed at
//! once, so a flood costs an accept.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use cromulent_protocol::Heartbeat;
use tokio::net::TcpListener;
use tokio::sync::{broadcast, mpsc};

use crate::budget::Budgets;
use crate::chat_store::{self, Store};
use crate::cluster;
use crate::config::Config;
use crate::connection::{self, Shared};
use crate::hub::Hub;
use crate::hub_actor;
use crate::turn::IceProvider;

/// How long connections get to say goodbye on shutdown.
const DRAIN_DEADLINE: Duration = Duration::from_secs(3);

/// Serve on `listener` until `shutdown` completes, then close every connection cleanly.
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let addr = listener.local_addr()?;
    let heartbeat = Heartbeat {
        ping_interval_ms: config.heartbeat.ping_interval_ms,
        timeout_ms: config.heartbeat.timeout_ms,
    };
    let mut hub = Hub::new(&config.channels, config.resume_grace(), heartbeat);
    // Cluster mode only with `[cluster]`: otherwise no Redis client exists at all. The chat
    // history is then Redis's too (every instance reads the same), and no file is opened.
    let (link, edge, store) = match &config.cluster {
        Some(cluster) => {
            if let crate::chat_store::Location::File(path) = config.chat.location() {
                tracing::info!(
                    file = %path.display(),
                    "cluster mode: the chat history is kept in Redis, not in chat.database"
                );
                // A former single server's history goes into the cluster's before any new
                // message could be numbered above it.
                if path.exists() {
                    cluster::edge::import_history(cluster, config.chat.retention(), &path).await;
                }
            }
            let (node, link, edge) = cluster::edge::start(cluster, config.chat.retention())
                .map_err(std::io::Error::other)?;
            hub = hub.in_cluster(node).with_chat(1, config.chat.max_chars);
            (Some(link), Some(edge), None)
        }
        None => {
            let (next_message, store) =
                Store::open(&config.chat.location(), config.chat.retention())
                    .and_then(|store| Ok((store.next_id()?, store)))
                    .map_err(std::io::Error::other)?;
            hub = hub.with_chat(next_message, config.chat.max_chars);
            (
                None,
                None,
                Some(chat_store::spawn(store, hub_actor::unix_ms)?),
            )
        }
    };
    let (store, store_thread) = store.unzip();
    let expire_every = (config.resume_grace() / 4).max(Duration::from_millis(50));
    let shared = Arc::new(Shared {
        hub: hub_actor::spawn(hub, expire_every, store, link),
        ice: IceProvider::new(config.turn.clone()),
        config,
    });
    let budgets = Budgets::new(shared.config.budget_limits());
    let (stop_tx, _) = broadcast::channel::<()>(1);
    let (done_tx, mut done_rx) = mpsc::channel::<()>(1);
    tracing::info!(%addr, "cromulent-server listening on {addr}");

    tokio::pin!(shutdown);
    let mut next_conn = 0u64;
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // e.g. EMFILE: back off briefly instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        next_conn += 1;
        let conn = next_conn;
        let shared = shared.clone();
        let done = done_tx.clone();
        let permit = match budgets.admit(peer.ip()) {
            Ok(permit) => permit,
            Err(refusal) => {
                // Closed at once, before any handshake work: a flood costs us an accept.
                tracing::debug!(%peer, %refusal, "not admitting connection");
                drop(stream);
                continue;
            }
        };
        let stop = stop_tx.subscribe();
        tokio::spawn(async move {
            tracing::debug!(conn, %peer, "connection accepted");
            connection::serve(stream, conn, shared, permit, stop).await;
            drop(done);
        });
    }

    tracing::info!("shutting down: closing connections");
    drop(listener);
    let _ = stop_tx.send(());
    drop(done_tx);
    drop(shared);
    if tokio::time::timeout(DRAIN_DEADLINE, done_rx.recv())
        .await
        .is_err()
    {
        tracing::warn!("some connections did not close in time");
    }
    // The hub lets go of the cluster link once every connection has ended; the edge then
    // carries out what is queued (the leaves) and releases this instance's seats.
    if let Some(edge) = edge {
        edge.stop(DRAIN_DEADLINE).await;
    }
    // The hub lets go of the chat store once every connection has ended; the store then
    // writes what is queued and ends. Wait for it (bounded), so a restart finds every message.
    if let Some(store_thread) = store_thread {
        let flushed = tokio::time::timeout(
            DRAIN_DEADLINE,
            tokio::task::spawn_blocking(move || store_thread.join()),
        )
        .await;
        if flushed.is_err() {
            tracing::warn!("the chat store did not finish in time; the last messages may be lost");
        }
    }
    tracing::info!("shut down");
    Ok(())
}
