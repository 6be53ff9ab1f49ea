//! Joins per second and join-reply latency.
//!
//! `joiners` connections each run join → `joined` → leave → `left` cycles on a fixed schedule
//! (open loop: together they offer `rate` joins per second, spread evenly in time), while
//! `watchers` more connections only listen. Every join and every leave is a presence change
//! the server sends to *every* connection (joiners included: the protocol shows all channels
//! to everyone), so the server delivers `2 × rate × (watchers + joiners)` presence messages per
//! second on top of the replies — the figure is only meaningful with the number of
//! connections beside it.
//!
//! With several servers (instances of one cluster) the connections go round-robin over them,
//! and the presence of every join still reaches every connection, through Redis.
//!
//! Latency is from writing `join` to reading `joined`. A cycle that cannot start on time
//! (the previous one is still running) starts late and is counted: a non-zero count means the
//! offered rate was not met.
//! A missed slot is never made up with a burst (that would offer more than `rate`): it is
//! skipped and counted as late too.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::bail;
use cromulent_protocol::ClientMsg;
use futures_util::stream::SplitSink;
use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep_until};
use tokio_tungstenite::tungstenite::Message;

use super::client::{self, Ws};
use crate::procfs::CpuMark;
use crate::stats::Summary;

#[derive(Debug, Clone)]
pub struct Options {
    /// Connections go round-robin over these: one server, or the instances of one cluster.
    pub servers: Vec<SocketAddr>,
    /// The servers' process ids, to report their CPU use (summed).
    pub server_pids: Vec<u32>,
    /// Connections that only listen.
    pub watchers: usize,
    /// Connections that join and leave.
    pub joiners: usize,
    /// Offered joins per second, all joiners together.
    pub rate: f64,
    pub duration: Duration,
    /// Cycles before this are not measured.
    pub warmup: Duration,
    pub sources: usize,
    /// Channels the joiners spread over (ids 1..=channels).
    pub channels: u32,
}

#[derive(Debug, Clone)]
pub struct Report {
    pub connections: usize,
    pub offered_rate: f64,
    pub achieved_rate: f64,
    pub latency: Summary,
    pub late_starts: u64,
    pub errors: u64,
    pub presence_frames_per_sec: f64,
    pub presence_changes_per_sec: f64,
    /// All the servers together, percent of one core.
    pub server_cpu_percent: Option<f64>,
}

/// What every connection's reader counts.
#[derive(Default)]
struct Counters {
    presence_frames: AtomicU64,
    presence_changes: AtomicU64,
}

impl Counters {
    fn saw(&self, text: &str) {
        if client::kind(text) == "presence" {
            self.presence_frames.fetch_add(1, Ordering::Relaxed);
            let changes = text.matches(r#""op":"#).count() as u64;
            self.presence_changes.fetch_add(changes, Ordering::Relaxed);
        }
    }
}

struct JoinerResult {
    latencies: Vec<Duration>,
    late: u64,
    errors: u64,
}

pub async fn run(opts: &Options) -> anyhow::Result<Report> {
    if opts.joiners == 0 || opts.rate <= 0.0 {
        bail!("need at least one joiner and a positive rate");
    }
    let per_joiner = opts.rate / opts.joiners as f64;
    if per_joiner > 24.0 {
        bail!(
            "{per_joiner:.1} joins/s per joiner is over the server's default rate limit \
             (50 messages/s = 25 join+leave cycles); add joiners"
        );
    }
    if opts.servers.is_empty() {
        bail!("need at least one server");
    }
    let server_of = |i: usize| opts.servers[i % opts.servers.len()];
    let sources = client::source_addresses(opts.sources);
    let counters = Arc::new(Counters::default());
    let mut watcher_tasks = Vec::new();
    for i in 0..opts.watchers {
        let mut ws =
            client::connect(server_of(i), sources[i % sources.len()], &format!("w{i}")).await?;
        let counters = counters.clone();
        watcher_tasks.push(tokio::spawn(async move {
            // Lean on purpose (no copy of the text): the load generator reads as many frames
            // as the server writes and shares the machine with it.
            while let Some(Ok(frame)) = ws.next().await {
                if let Message::Text(text) = frame {
                    counters.saw(&text);
                }
            }
        }));
    }
    let mut joiners = Vec::new();
    for i in 0..opts.joiners {
        let source = sources[(opts.watchers + i) % sources.len()];
        let server = server_of(opts.watchers + i);
        joiners.push(client::connect(server, source, &format!("j{i}")).await?);
    }
    let interval = Duration::from_secs_f64(1.0 / per_joiner);
    let start = Instant::now() + Duration::from_millis(500);
    let measure_from = start + opts.warmup;
    let end = measure_from + opts.duration;
    let pids = opts.server_pids.clone();
    let cpu_task = (!pids.is_empty()).then(|| {
        tokio::spawn(async move {
            sleep_until(measure_from).await;
            let marks: Vec<_> = pids.iter().map(|&pid| (pid, CpuMark::now(pid))).collect();
            sleep_until(end).await;
            marks
                .into_iter()
                .map(|(pid, mark)| mark.and_then(|m| m.percent_since(pid)))
                .sum::<Option<f64>>()
        })
    });
    let frames0 = Arc::new(AtomicU64::new(0));
    let changes0 = Arc::new(AtomicU64::new(0));
    {
        let (counters, f0, c0) = (counters.clone(), frames0.clone(), changes0.clone());
        tokio::spawn(async move {
            sleep_until(measure_from).await;
            f0.store(
                counters.presence_frames.load(Ordering::Relaxed),
                Ordering::Relaxed,
            );
            c0.store(
                counters.presence_changes.load(Ordering::Relaxed),
                Ordering::Relaxed,
            );
        });
    }
    let mut tasks = Vec::new();
    for (i, ws) in joiners.into_iter().enumerate() {
        let first = start + Duration::from_secs_f64(i as f64 / opts.rate);
        let channel = (i as u32 % opts.channels.max(1)) + 1;
        let counters = counters.clone();
        tasks.push(tokio::spawn(joiner(
            ws,
            channel,
            first,
            interval,
            measure_from,
            end,
            counters,
        )));
    }
    let mut latencies = Vec::new();
    let (mut late, mut errors) = (0, 0);
    for t in tasks {
        let r = t.await?;
        latencies.extend(r.latencies);
        late += r.late;
        errors += r.errors;
    }
    let frames = counters.presence_frames.load(Ordering::Relaxed) - frames0.load(Ordering::Relaxed);
    let changes =
        counters.presence_changes.load(Ordering::Relaxed) - changes0.load(Ordering::Relaxed);
    let server_cpu_percent = match cpu_task {
        Some(t) => t.await?,
        None => None,
    };
    for t in watcher_tasks {
        t.abort();
    }
    let secs = opts.duration.as_secs_f64();
    Ok(Report {
        connections: opts.watchers + opts.joiners,
        offered_rate: opts.rate,
        achieved_rate: latencies.len() as f64 / secs,
        latency: Summary::of_durations(&latencies),
        late_starts: late,
        errors,
        presence_frames_per_sec: frames as f64 / secs,
        presence_changes_per_sec: changes as f64 / secs,
        server_cpu_percent,
    })
}

async fn joiner(
    ws: Ws,
    channel: u32,
    first: Instant,
    interval: Duration,
    measure_from: Instant,
    end: Instant,
    counters: Arc<Counters>,
) -> JoinerResult {
    let mut r = JoinerResult {
        latencies: Vec::new(),
        late: 0,
        errors: 0,
    };
    // Read all the time (presence arrives for every join anyone makes); replies come back
    // over a channel with the instant they were read.
    let (mut sink, mut stream) = ws.split();
    let (replies_tx, mut replies) = mpsc::unbounded_channel();
    let reader = tokio::spawn(async move {
        while let Some(Ok(frame)) = stream.next().await {
            let Message::Text(text) = frame else { continue };
            counters.saw(&text);
            let kind = client::kind(&text);
            if matches!(kind, "joined" | "left" | "error") {
                let _ = replies_tx.send((kind.to_owned(), Instant::now(), text.to_string()));
            }
        }
    });
    let mut due = first;
    while due < end {
        sleep_until(due).await;
        let measured = due >= measure_from;
        if measured && Instant::now() > due + Duration::from_millis(5) {
            r.late += 1;
        }
        let sent = Instant::now();
        let cycle = async {
            send(&mut sink, &ClientMsg::Join { channel }).await?;
            let joined_at = wait_for(&mut replies, "joined").await?;
            send(&mut sink, &ClientMsg::Leave).await?;
            wait_for(&mut replies, "left").await?;
            Ok::<_, anyhow::Error>(joined_at - sent)
        }
        .await;
        match cycle {
            Ok(latency) if measured => r.latencies.push(latency),
            Ok(_) => {}
            Err(e) => {
                r.errors += 1;
                tracing::warn!(error = %e, "join cycle failed");
                if reader.is_finished() {
                    break;
                }
            }
        }
        due += interval;
        // Fell far behind: skip missed slots rather than burst (they count as late).
        let now = Instant::now();
        while due + interval < now {
            due += interval;
            if due >= measure_from {
                r.late += 1;
            }
        }
    }
    reader.abort();
    r
}

type Sink = SplitSink<Ws, Message>;

async fn send(sink: &mut Sink, msg: &ClientMsg) -> anyhow::Result<()> {
    sink.send(Message::text(msg.to_json())).await?;
    Ok(())
}

/// Wait for the reply of `kind`; an `error` reply ends the wait with that error.
async fn wait_for(
    replies: &mut mpsc::UnboundedReceiver<(String, Instant, String)>,
    kind: &str,
) -> anyhow::Result<Instant> {
    let Some((k, at, text)) = replies.recv().await else {
        bail!("connection ended");
    };
    if k != kind {
        bail!("expected {kind}, got {text}");
    }
    Ok(at)
}
