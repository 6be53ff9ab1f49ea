//! Fan-out delay, of presence or of chat. One actor seated in General makes events the server
//! sends to all `watchers`: with [`Event::Presence`] it flips its `talking` flag (a presence
//! `update` goes to every connection); with [`Event::Chat`] it says a line in General, which
//! every watcher follows (`watch`). For each event we take the delay from the actor writing it
//! to each watcher reading it (one clock: all clients live in this process), and report how
//! long the first, the median and the last watcher waited.
//!
//! With several servers (instances of one cluster) the watchers go round-robin over them and
//! the actor sits on the first: most deliveries then cross Redis.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, bail};
use cromulent_protocol::ClientMsg;
use tokio::time::{Instant, sleep, timeout};

use super::client;
use crate::stats::Summary;

const ACTOR: &str = "fanout-actor";

/// What the actor does and the watchers wait for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Event {
    /// A presence update (the actor's talking flag).
    Presence,
    /// A chat message in General, followed by every watcher.
    Chat,
}

#[derive(Debug, Clone)]
pub struct Options {
    pub event: Event,
    /// Watchers go round-robin over these; the actor connects to the first.
    pub servers: Vec<SocketAddr>,
    pub watchers: usize,
    pub events: usize,
    /// Time between two flips.
    pub interval: Duration,
    pub sources: usize,
}

#[derive(Debug, Clone)]
pub struct Report {
    pub watchers: usize,
    pub events: usize,
    /// Per event: delay until the first watcher had it.
    pub first: Summary,
    /// Per event: delay until half the watchers had it.
    pub median: Summary,
    /// Per event: delay until every watcher had it.
    pub last: Summary,
    /// Every single delivery.
    pub all: Summary,
    /// Deliveries that never came.
    pub missing: usize,
}

pub async fn run(opts: &Options) -> anyhow::Result<Report> {
    let Some(&first_server) = opts.servers.first() else {
        bail!("need at least one server");
    };
    let sources = client::source_addresses(opts.sources);
    let mut watchers = Vec::new();
    for i in 0..opts.watchers {
        let server = opts.servers[i % opts.servers.len()];
        let mut ws = client::connect(server, sources[i % sources.len()], &format!("fw{i}"))
            .await
            .with_context(|| format!("watcher {i}"))?;
        if opts.event == Event::Chat {
            client::send(&mut ws, &ClientMsg::Watch { channel: Some(1) }).await?;
        }
        let events = opts.events;
        let event = opts.event;
        watchers.push(tokio::spawn(async move {
            let mut seen = Vec::with_capacity(events);
            let marker = format!(r#""user":"{ACTOR}""#);
            while seen.len() < events {
                let Ok(text) = client::next_text(&mut ws).await else {
                    break;
                };
                let hit = match event {
                    Event::Presence => {
                        client::kind(&text) == "presence" && text.contains(r#""op":"update""#)
                    }
                    Event::Chat => client::kind(&text) == "message",
                };
                if hit && text.contains(&marker) {
                    seen.push(Instant::now());
                }
            }
            seen
        }));
    }
    let mut actor = client::connect(first_server, sources[0], ACTOR).await?;
    client::send(&mut actor, &ClientMsg::Join { channel: 1 }).await?;
    loop {
        let text = client::next_text(&mut actor).await?;
        match client::kind(&text) {
            "joined" => break,
            "error" => bail!("actor could not join: {text}"),
            _ => {}
        }
    }
    // Keep the actor's socket drained (it gets every presence too) while it sends.
    let (mut sink, mut stream) = futures_util::StreamExt::split(actor);
    let drain = tokio::spawn(async move {
        while let Some(Ok(_)) = futures_util::StreamExt::next(&mut stream).await {}
    });
    sleep(Duration::from_millis(500)).await;
    let mut sent = Vec::with_capacity(opts.events);
    for k in 0..opts.events {
        let msg = match opts.event {
            Event::Presence => ClientMsg::VoiceState {
                muted: false,
                deafened: false,
                talking: k % 2 == 0,
            },
            Event::Chat => ClientMsg::Say {
                channel: 1,
                text: format!("fan-out message {k}: the quick brown fox jumps over the lazy dog"),
            },
        };
        sent.push(Instant::now());
        futures_util::SinkExt::send(
            &mut sink,
            tokio_tungstenite::tungstenite::Message::text(msg.to_json()),
        )
        .await?;
        sleep(opts.interval).await;
    }
    let mut received = Vec::new();
    for w in watchers {
        // A watcher that misses an update would wait forever: bound it.
        match timeout(Duration::from_secs(10), w).await {
            Ok(Ok(seen)) => received.push(seen),
            _ => received.push(Vec::new()),
        }
    }
    drain.abort();
    Ok(summarise(&sent, &received))
}

/// Per-event first/median/last delays from send instants and each watcher's receive instants
/// (the k-th update a watcher read belongs to the k-th send: one sender, one server order).
fn summarise(sent: &[Instant], received: &[Vec<Instant>]) -> Report {
    let (mut first, mut median, mut last, mut all) = (vec![], vec![], vec![], vec![]);
    let mut missing = 0;
    for (k, &at) in sent.iter().enumerate() {
        let mut delays: Vec<f64> = received
            .iter()
            .filter_map(|seen| seen.get(k))
            .map(|&r| r.saturating_duration_since(at).as_secs_f64() * 1000.0)
            .collect();
        missing += received.len() - delays.len();
        if delays.is_empty() {
            continue;
        }
        delays.sort_by(f64::total_cmp);
        first.push(delays[0]);
        median.push(delays[delays.len() / 2]);
        last.push(delays[delays.len() - 1]);
        all.extend(delays);
    }
    Report {
        watchers: received.len(),
        events: sent.len(),
        first: Summary::of_ms(first),
        median: Summary::of_ms(median),
        last: Summary::of_ms(last),
        all: Summary::of_ms(all),
        missing,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_event_first_median_last() {
        let t0 = Instant::now();
        let ms = |n| Duration::from_millis(n);
        let sent = vec![t0, t0 + ms(100)];
        let received = vec![
            vec![t0 + ms(1), t0 + ms(102)],
            vec![t0 + ms(3), t0 + ms(104)],
            vec![t0 + ms(2)],
        ];
        let r = summarise(&sent, &received);
        assert_eq!(r.missing, 1);
        assert_eq!(r.first.min(), Some(1.0));
        assert_eq!(r.last.max(), Some(4.0));
        assert_eq!(r.median.percentile(50.0), Some(2.0));
        assert_eq!(r.all.count(), 5);
    }
}
