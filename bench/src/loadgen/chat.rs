//! Chat under load (issue 18):
//! - [`seed`]: fill a history file with many messages in one channel (through the server's own
//!   store, so the file is what a server would have written);
//! - [`history`]: one reader asking for pages at random points of that history, one at a time;
//!   the delay from the request to the page;
//! - [`chatters`]: many clients saying lines at a steady rate each, for a while (run beside
//!   `joins` to see whether busy chat moves the signaling path).

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, bail};
use cromulent_protocol::{ChatMessage, ClientMsg};
use cromulent_server::chat_store::{Location, Retention, Store};
use futures_util::{SinkExt, StreamExt};
use rand::Rng;
use tokio::time::{Instant, timeout};
use tokio_tungstenite::tungstenite::Message;

use super::client;
use crate::stats::Summary;

/// Write `count` messages into channel 1 of the history at `db` (ids 1..=count, a few
/// seconds apart, 40–120 characters each); returns the time it took.
pub fn seed(db: &Path, count: u64) -> anyhow::Result<Duration> {
    let started = std::time::Instant::now();
    let keep_all = Retention {
        per_channel: None,
        max_age: None,
    };
    let mut store = Store::open(&Location::File(db.to_owned()), keep_all)?;
    let first = store.next_id()?;
    let mut rng = rand::rng();
    let words = [
        "voice", "channel", "brb", "can", "you", "hear", "me", "now", "ok", "lag",
    ];
    let mut batch = Vec::with_capacity(10_000);
    for i in 0..count {
        let id = first + i;
        let len = rng.random_range(6..20);
        let text: Vec<&str> = (0..len)
            .map(|_| words[rng.random_range(0..words.len())])
            .collect();
        batch.push(ChatMessage {
            id,
            channel: 1,
            user: format!("user{}", id % 50),
            name: format!("User {}", id % 50),
            time: 1_700_000_000_000 + id * 3_000,
            text: text.join(" "),
        });
        if batch.len() == batch.capacity() {
            store.insert(&batch)?;
            batch.clear();
        }
    }
    store.insert(&batch)?;
    Ok(started.elapsed())
}

#[derive(Debug, Clone)]
pub struct HistoryOptions {
    pub server: SocketAddr,
    pub pages: usize,
    pub limit: u32,
    /// The largest id in the history (pages start at random points below it).
    pub newest: u64,
}

/// Page delays, in ms. One request at a time, at most 45 a second (the server's default rate
/// limit is 50 messages a second per connection).
pub async fn history(opts: &HistoryOptions) -> anyhow::Result<Summary> {
    let source = client::source_addresses(1)[0];
    let mut ws = client::connect(opts.server, source, "history-reader").await?;
    let mut rng = rand::rng();
    let mut delays = Vec::with_capacity(opts.pages);
    let mut pace = tokio::time::interval(Duration::from_secs_f64(1.0 / 45.0));
    for _ in 0..opts.pages {
        pace.tick().await;
        let before = rng.random_range(1..=opts.newest.max(1) + 1);
        let msg = ClientMsg::History {
            channel: 1,
            before: Some(before),
            limit: Some(opts.limit),
        };
        let sent = Instant::now();
        client::send(&mut ws, &msg).await?;
        loop {
            let text = timeout(Duration::from_secs(10), client::next_text(&mut ws))
                .await
                .context("no history page within 10 s")??;
            match client::kind(&text) {
                "history" => break,
                "error" => bail!("history refused: {text}"),
                _ => {}
            }
        }
        delays.push(sent.elapsed());
    }
    Ok(Summary::of_durations(&delays))
}

#[derive(Debug, Clone)]
pub struct ChattersOptions {
    pub server: SocketAddr,
    pub clients: usize,
    /// Lines per second per client.
    pub rate: f64,
    pub duration: Duration,
    pub sources: usize,
}

/// Lines said in all, and refusals (rate limit) seen.
pub async fn chatters(opts: &ChattersOptions) -> anyhow::Result<(u64, u64)> {
    if opts.rate.is_nan() || opts.rate < 0.0 {
        bail!("need a rate of 0 (connected, silent) or more");
    }
    let sources = client::source_addresses(opts.sources);
    let mut tasks = Vec::new();
    for i in 0..opts.clients {
        let ws = client::connect(opts.server, sources[i % sources.len()], &format!("chat{i}"))
            .await
            .with_context(|| format!("chatter {i}"))?;
        let (mut sink, mut stream) = ws.split();
        let refused = tokio::spawn(async move {
            let mut refused = 0u64;
            while let Some(Ok(Message::Text(text))) = stream.next().await {
                if client::kind(&text) == "error" {
                    refused += 1;
                }
            }
            refused
        });
        // Rate 0: connected for the duration and silent — the same connections (each gets
        // every presence broadcast) without the chat, to compare with.
        let every = (opts.rate > 0.0).then(|| Duration::from_secs_f64(1.0 / opts.rate));
        let duration = opts.duration;
        let channel = (i % 3) as u32 + 1;
        tasks.push(tokio::spawn(async move {
            let end = Instant::now() + duration;
            let mut said = 0u64;
            let Some(every) = every else {
                tokio::time::sleep_until(end).await;
                let _ = sink.close().await;
                return (said, refused);
            };
            let mut tick = tokio::time::interval(every);
            while Instant::now() < end {
                tick.tick().await;
                let msg = ClientMsg::Say {
                    channel,
                    text: format!(
                        "line {said} from chatter {i}: is anyone else hearing that echo?"
                    ),
                };
                if sink.send(Message::text(msg.to_json())).await.is_err() {
                    break;
                }
                said += 1;
            }
            let _ = sink.close().await;
            (said, refused)
        }));
    }
    let (mut said, mut refused) = (0, 0);
    for t in tasks {
        let (n, r) = t.await?;
        said += n;
        refused += timeout(Duration::from_secs(5), r)
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or(0);
    }
    Ok((said, refused))
}
