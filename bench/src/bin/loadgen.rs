//! `loadgen`: load a running `cromulent-server` with many WebSocket clients and print what it
//! takes. See `bench/server-*.sh` for the documented runs and `BENCHMARKS.md` for figures.
//! Prints figures and must never fail on one: an error means the run itself did not work.

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Parser, Subcommand};
use cromulent_bench::loadgen::{chat, fanout, idle, joins, release, slow};

/// Server load generator for Cromulent Voice (benchmarks; not a test).
#[derive(Parser, Debug)]
#[command(about, long_about)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Open idle connections step by step; print the server's RSS per connection; stop at
    /// the target or at the first failures; hold past the heartbeat timeout; count survivors.
    Idle {
        #[arg(long)]
        server: SocketAddr,
        /// The server's process id (its /proc/PID/status is read).
        #[arg(long)]
        server_pid: u32,
        #[arg(long, default_value_t = 50_000)]
        connections: usize,
        #[arg(long, default_value_t = 5_000)]
        step: usize,
        /// Loopback source addresses (127.0.0.1, .2, …) to spread over.
        #[arg(long, default_value_t = 8)]
        sources: usize,
        /// Connections per worker process at most (each has its own open-file limit).
        #[arg(long, default_value_t = 12_500)]
        per_worker: usize,
        /// Seconds to hold everything at the end (more than the 20 s heartbeat timeout).
        #[arg(long, default_value_t = 25)]
        hold: u64,
    },
    /// Join/leave cycles at a fixed offered rate; join-reply latency percentiles.
    Joins {
        /// The server, or the instances of one cluster (comma-separated): connections go
        /// round-robin over them.
        #[arg(long, value_delimiter = ',', required = true)]
        server: Vec<SocketAddr>,
        /// The servers' process ids (comma-separated), to report their CPU use, summed.
        #[arg(long, value_delimiter = ',')]
        server_pid: Vec<u32>,
        /// Connections that only receive presence.
        #[arg(long, default_value_t = 100)]
        watchers: usize,
        /// Connections that join and leave (they receive all presence too).
        #[arg(long, default_value_t = 100)]
        joiners: usize,
        /// Offered joins per second (all joiners together).
        #[arg(long, default_value_t = 2000.0)]
        rate: f64,
        /// Measured seconds.
        #[arg(long, default_value_t = 10)]
        duration: u64,
        /// Unmeasured seconds first.
        #[arg(long, default_value_t = 2)]
        warmup: u64,
        #[arg(long, default_value_t = 4)]
        sources: usize,
        #[arg(long, default_value_t = 3)]
        channels: u32,
    },
    /// Fan-out: one actor flips its talking flag (presence) or says a line (chat); delay to
    /// every watcher.
    Fanout {
        #[arg(long, value_enum, default_value_t = fanout::Event::Presence)]
        event: fanout::Event,
        /// The server, or the instances of one cluster (comma-separated): watchers go
        /// round-robin over them, the actor connects to the first.
        #[arg(long, value_delimiter = ',', required = true)]
        server: Vec<SocketAddr>,
        #[arg(long, default_value_t = 1000)]
        watchers: usize,
        #[arg(long, default_value_t = 200)]
        events: usize,
        /// Milliseconds between two flips.
        #[arg(long, default_value_t = 50)]
        interval_ms: u64,
        #[arg(long, default_value_t = 4)]
        sources: usize,
    },
    /// Cluster mode: a user seated through instance DOOMED, a watcher on SURVIVOR; SIGKILL
    /// to DOOMED_PID; the delay until the watcher reads the user's leave.
    Release {
        #[arg(long)]
        survivor: SocketAddr,
        #[arg(long)]
        doomed: SocketAddr,
        /// The doomed instance's process id: this command kills it.
        #[arg(long)]
        doomed_pid: u32,
        /// Seconds to wait for the leave.
        #[arg(long, default_value_t = 120)]
        limit: u64,
    },
    /// Clients that stop reading under a signal flood: server RSS against the queue budget,
    /// time until each is dropped, RSS after.
    Slow {
        #[arg(long)]
        server: SocketAddr,
        #[arg(long)]
        server_pid: u32,
        #[arg(long, default_value_t = 20)]
        readers: usize,
        #[arg(long, default_value_t = 4)]
        flooders: usize,
        #[arg(long, default_value_t = 60 * 1024)]
        signal_bytes: usize,
        /// Signals per second per flooder (the server's default rate limit is 50).
        #[arg(long, default_value_t = 45.0)]
        rate: f64,
        /// The server's limits.outbound_queue_bytes.
        #[arg(long, default_value_t = 1024 * 1024)]
        queue_bytes: usize,
        /// Seconds to wait for every reader to be dropped.
        #[arg(long, default_value_t = 60)]
        limit: u64,
    },
    /// Fill a chat history file with MESSAGES lines in channel 1 (no server running on it).
    ChatSeed {
        #[arg(long)]
        db: std::path::PathBuf,
        #[arg(long, default_value_t = 1_000_000)]
        messages: u64,
    },
    /// History pages at random points of channel 1, one at a time: delay per page.
    History {
        #[arg(long)]
        server: SocketAddr,
        #[arg(long, default_value_t = 1_000)]
        pages: usize,
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// The largest message id in the history.
        #[arg(long)]
        newest: u64,
    },
    /// Clients saying lines at RATE per second each for DURATION seconds.
    Chatters {
        #[arg(long)]
        server: SocketAddr,
        #[arg(long, default_value_t = 100)]
        clients: usize,
        /// Lines per second per client (the server's default limit is 50 messages/s).
        #[arg(long, default_value_t = 45.0)]
        rate: f64,
        #[arg(long, default_value_t = 14)]
        duration: u64,
        #[arg(long, default_value_t = 4)]
        sources: usize,
    },
    /// Internal: one worker process of `idle` (commands on stdin).
    #[command(hide = true)]
    IdleWorker {
        #[arg(long)]
        server: SocketAddr,
        #[arg(long)]
        sources: usize,
        #[arg(long)]
        prefix: String,
    },
}

fn main() -> anyhow::Result<()> {
    cromulent_bench::init_logging("warn");
    let cli = Cli::parse();
    match cli.command {
        Cmd::Idle {
            server,
            server_pid,
            connections,
            step,
            sources,
            per_worker,
            hold,
        } => {
            let report = idle::run(&idle::Options {
                server,
                server_pid,
                connections,
                step,
                sources,
                per_worker,
                hold: Duration::from_secs(hold),
                worker_exe: std::env::current_exe()?,
            })?;
            let last = report.rows.last();
            println!(
                "RESULT idle: max {} connections held ({} alive after {} s), server RSS {:.1} MiB \
                 (baseline {:.1} MiB), {:.2} KiB per connection, server CPU while idle {:.2} % \
                 of one core, server open files {:?} of limit {:?}{}",
                report.max_connections,
                report.survivors,
                hold,
                last.map_or(0.0, |r| r.rss_kib as f64 / 1024.0),
                report.baseline_kib as f64 / 1024.0,
                last.map_or(0.0, |r| r.kib_per_conn),
                report.idle_cpu_percent.unwrap_or(f64::NAN),
                report.server_open_fds,
                report.server_fd_limit,
                report
                    .first_error
                    .map(|e| format!(", first failure: {e}"))
                    .unwrap_or_default(),
            );
        }
        Cmd::Joins {
            server,
            server_pid,
            watchers,
            joiners,
            rate,
            duration,
            warmup,
            sources,
            channels,
        } => {
            let instances = server.len();
            let report = runtime()?.block_on(joins::run(&joins::Options {
                servers: server,
                server_pids: server_pid,
                watchers,
                joiners,
                rate,
                duration: Duration::from_secs(duration),
                warmup: Duration::from_secs(warmup),
                sources,
                channels,
            }))?;
            println!(
                "RESULT joins: {} connections ({watchers} watchers + {joiners} joiners) over \
                 {instances} server(s), offered {:.0}/s, achieved {:.0} joins/s, join→joined {}, \
                 late starts {}, errors {}, presence {:.0} frames/s carrying {:.0} changes/s, \
                 server CPU {:.0} % of one core (all servers)",
                report.connections,
                report.offered_rate,
                report.achieved_rate,
                report.latency,
                report.late_starts,
                report.errors,
                report.presence_frames_per_sec,
                report.presence_changes_per_sec,
                report.server_cpu_percent.unwrap_or(f64::NAN),
            );
        }
        Cmd::ChatSeed { db, messages } => {
            let took = chat::seed(&db, messages)?;
            println!(
                "RESULT chat-seed: {messages} messages into {} in {:.1} s",
                db.display(),
                took.as_secs_f64()
            );
        }
        Cmd::History {
            server,
            pages,
            limit,
            newest,
        } => {
            let delays = runtime()?.block_on(chat::history(&chat::HistoryOptions {
                server,
                pages,
                limit,
                newest,
            }))?;
            println!("RESULT history: {pages} pages of {limit} from {newest} messages: {delays}");
        }
        Cmd::Chatters {
            server,
            clients,
            rate,
            duration,
            sources,
        } => {
            let (said, refused) = runtime()?.block_on(chat::chatters(&chat::ChattersOptions {
                server,
                clients,
                rate,
                duration: Duration::from_secs(duration),
                sources,
            }))?;
            println!(
                "RESULT chatters: {clients} clients said {said} lines in {duration} s ({:.0}/s), \
                 {refused} refused",
                said as f64 / duration as f64
            );
        }
        Cmd::Fanout {
            event,
            server,
            watchers,
            events,
            interval_ms,
            sources,
        } => {
            let instances = server.len();
            let report = runtime()?.block_on(fanout::run(&fanout::Options {
                event,
                servers: server,
                watchers,
                events,
                interval: Duration::from_millis(interval_ms),
                sources,
            }))?;
            println!(
                "RESULT fanout ({event:?}): {} watchers over {instances} server(s), {} events, missing {}\n  first watcher: {}\n  \
                 median watcher: {}\n  last watcher: {}\n  every delivery: {}",
                report.watchers,
                report.events,
                report.missing,
                report.first,
                report.median,
                report.last,
                report.all,
            );
        }
        Cmd::Release {
            survivor,
            doomed,
            doomed_pid,
            limit,
        } => {
            let took = runtime()?.block_on(release::run(&release::Options {
                survivor,
                doomed,
                doomed_pid,
                limit: Duration::from_secs(limit),
            }))?;
            println!(
                "RESULT release: seat of the killed instance released after {:.1} s",
                took.as_secs_f64()
            );
        }
        Cmd::Slow {
            server,
            server_pid,
            readers,
            flooders,
            signal_bytes,
            rate,
            queue_bytes,
            limit,
        } => {
            let r = runtime()?.block_on(slow::run(&slow::Options {
                server,
                server_pid,
                readers,
                flooders,
                signal_bytes,
                rate,
                queue_bytes,
                limit: Duration::from_secs(limit),
            }))?;
            let last = r.dropped_after.last().copied().unwrap_or(f64::NAN);
            println!(
                "RESULT slow: {} of {} non-reading clients dropped, the last {:.1} s after the \
                 flood began (first {:.1} s); server RSS baseline {:.1} MiB, peak {:.1} MiB \
                 (budget {:.1} MiB over the baseline: readers x (queue + 2 frames) + 4 MiB), \
                 {:.1} MiB 2 s after",
                r.dropped_after.len(),
                r.readers,
                last,
                r.dropped_after.first().copied().unwrap_or(f64::NAN),
                r.baseline_kib as f64 / 1024.0,
                r.peak_kib as f64 / 1024.0,
                r.budget_kib as f64 / 1024.0,
                r.after_kib as f64 / 1024.0,
            );
        }
        Cmd::IdleWorker {
            server,
            sources,
            prefix,
        } => runtime()?.block_on(idle::worker(server, sources, prefix))?,
    }
    Ok(())
}

fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
}
