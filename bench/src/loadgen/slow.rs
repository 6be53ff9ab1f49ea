//! Clients that stop reading, under a signal flood: how much server memory they pin, how long
//! the server takes to drop them, and whether memory comes back.
//!
//! `readers` clients join channel 1 with a tiny receive buffer and then read nothing;
//! `flooders` in the same channel send `signal_bytes` offers to them round-robin at the rate
//! limit; a watcher records when each reader's `leave` arrives. The server's RSS is sampled
//! throughout ([`crate::procfs`]); the budget it is compared with is `readers` ×
//! (`queue_bytes` + 2 × `signal_bytes`) + 4 MiB: each reader's outbound queue
//! (`limits.outbound_queue_bytes`; the frame that overflows it is not queued), at most one
//! frame in tungstenite's write buffer and one being written, and a constant for the flooders'
//! and watcher's own connections.
//!
//! A reader must never read after its `joined`: one that drained its socket would free the
//! memory it is there to pin.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use anyhow::Context;
use cromulent_protocol::{ClientMsg, Signal};
use tokio::time::{sleep, timeout};

use super::client::{self, Ws};
use crate::procfs;

#[derive(Debug, Clone)]
pub struct Options {
    pub server: SocketAddr,
    pub server_pid: u32,
    pub readers: usize,
    pub flooders: usize,
    pub signal_bytes: usize,
    /// Messages per second each flooder sends (the server's rate limit).
    pub rate: f64,
    /// The server's `limits.outbound_queue_bytes`, for the budget line.
    pub queue_bytes: usize,
    /// Give up waiting for the drops after this long.
    pub limit: Duration,
}

#[derive(Debug, Clone)]
pub struct Report {
    pub baseline_kib: u64,
    pub peak_kib: u64,
    pub after_kib: u64,
    pub budget_kib: u64,
    /// Seconds from the flood's start to each reader's `leave`, sorted.
    pub dropped_after: Vec<f64>,
    pub readers: usize,
}

const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

async fn seated(server: SocketAddr, name: &str, recv_buffer: Option<u32>) -> anyhow::Result<Ws> {
    let mut ws = client::connect_with(server, LOCALHOST, name, recv_buffer).await?;
    client::send(&mut ws, &ClientMsg::Join { channel: 1 }).await?;
    loop {
        let text = client::next_text(&mut ws).await?;
        match client::kind(&text) {
            "joined" => return Ok(ws),
            "error" => anyhow::bail!("{name}: join refused: {text}"),
            _ => {}
        }
    }
}

pub async fn run(opts: &Options) -> anyhow::Result<Report> {
    let rss = || procfs::memory(opts.server_pid).map_or(0, |m| m.rss_kib);
    let baseline_kib = rss();
    let mut watcher = seated(opts.server, "watcher", None).await?;
    let mut readers = Vec::new();
    for i in 0..opts.readers {
        readers.push(seated(opts.server, &format!("reader{i}"), Some(4096)).await?);
    }
    let start = Instant::now();
    let mut floods = Vec::new();
    for f in 0..opts.flooders {
        let mut ws = seated(opts.server, &format!("flooder{f}"), None).await?;
        let (n, sdp, rate) = (opts.readers, "v".repeat(opts.signal_bytes), opts.rate);
        floods.push(tokio::spawn(async move {
            let gap = Duration::from_secs_f64(1.0 / rate);
            for k in 0usize.. {
                let signal = Signal::Offer {
                    sdp: sdp.clone(),
                    connection: 1,
                };
                let to = format!("reader{}", (k + f) % n);
                if client::send(&mut ws, &ClientMsg::Signal { to, signal })
                    .await
                    .is_err()
                {
                    return;
                }
                sleep(gap).await;
            }
        }));
    }
    let mut dropped_after = Vec::new();
    let mut peak_kib = baseline_kib;
    let deadline = start + opts.limit;
    while dropped_after.len() < opts.readers && Instant::now() < deadline {
        if let Ok(text) = timeout(Duration::from_millis(100), client::next_text(&mut watcher)).await
        {
            let text = text.context("watcher")?;
            if client::kind(&text) == "presence"
                && text.contains(r#""op":"leave""#)
                && text.contains(r#""user":"reader"#)
            {
                dropped_after.push(start.elapsed().as_secs_f64());
            }
        }
        peak_kib = peak_kib.max(rss());
    }
    for f in floods {
        f.abort();
    }
    drop(readers);
    sleep(Duration::from_secs(2)).await;
    let after_kib = rss();
    Ok(Report {
        baseline_kib,
        peak_kib,
        after_kib,
        budget_kib: (opts.readers * (opts.queue_bytes + 2 * opts.signal_bytes) / 1024 + 4096)
            as u64,
        dropped_after,
        readers: opts.readers,
    })
}
