//! Max idle connections and server memory per connection.
//!
//! The parent ([`run`]) starts worker processes (this same binary, `loadgen idle-worker`) so
//! the clients' own open-file limit is spread over several processes, and asks them step by
//! step to open more connections (`open K` on their stdin; each answers one status line).
//! After each step it reads the server's RSS from `/proc/PID/status`: the growth over the
//! baseline divided by the connections held is the memory per connection. It stops at the
//! target or at the first step where connections fail (e.g. the server ran out of file
//! descriptors), then holds everything past a heartbeat timeout and counts survivors: an idle
//! connection only stays up if its pongs keep it alive.

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
use tokio::sync::Semaphore;

use super::client;
use crate::procfs::{self, CpuMark};

/// Handshakes in flight per worker: enough to open thousands per second without overflowing
/// the server's listen backlog.
const CONCURRENT_OPENS: usize = 128;

#[derive(Debug, Clone)]
pub struct Options {
    pub server: SocketAddr,
    pub server_pid: u32,
    /// Stop after this many connections.
    pub connections: usize,
    /// Connections added between two memory readings.
    pub step: usize,
    /// Loopback source addresses to spread over.
    pub sources: usize,
    /// Connections per worker process at most.
    pub per_worker: usize,
    /// How long to hold everything open at the end.
    pub hold: Duration,
    /// The `loadgen` binary, run as `loadgen idle-worker` for each worker.
    pub worker_exe: std::path::PathBuf,
}

/// One memory reading.
#[derive(Debug, Clone, Copy)]
pub struct Row {
    pub connections: usize,
    pub rss_kib: u64,
    pub kib_per_conn: f64,
    pub kernel_tcp_kib: Option<u64>,
}

#[derive(Debug, Clone)]
pub struct Report {
    pub baseline_kib: u64,
    pub rows: Vec<Row>,
    pub max_connections: usize,
    pub first_error: Option<String>,
    pub survivors: usize,
    pub idle_cpu_percent: Option<f64>,
    pub server_fd_limit: Option<(u64, u64)>,
    /// Files the server had open at the largest step.
    pub server_open_fds: Option<usize>,
}

struct Worker {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Worker {
    fn spawn(index: usize, opts: &Options) -> anyhow::Result<Self> {
        let mut child = Command::new(&opts.worker_exe)
            .args([
                "idle-worker",
                "--server",
                &opts.server.to_string(),
                "--sources",
                &opts.sources.to_string(),
                "--prefix",
                &format!("idle{index}-"),
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("start a worker")?;
        // Invariant: both were requested as pipes just above.
        let stdin = child.stdin.take().expect("piped stdin");
        let stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        Ok(Self {
            child,
            stdin,
            stdout,
        })
    }

    fn ask(&mut self, line: &str) -> anyhow::Result<String> {
        writeln!(self.stdin, "{line}")?;
        self.stdin.flush()?;
        let mut answer = String::new();
        if self.stdout.read_line(&mut answer)? == 0 {
            bail!("worker ended");
        }
        Ok(answer.trim().to_owned())
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A worker's answer: `opened OK failed F live L [error TEXT]`.
#[derive(Debug, Default, PartialEq)]
struct Answer {
    opened: usize,
    failed: usize,
    live: usize,
    error: Option<String>,
}

fn parse_answer(line: &str) -> Answer {
    let mut a = Answer::default();
    let (counts, error) = match line.split_once(" error ") {
        Some((c, e)) => (c, Some(e.to_owned())),
        None => (line, None),
    };
    let words: Vec<&str> = counts.split_whitespace().collect();
    for pair in words.chunks(2) {
        if let [key, value] = pair {
            let v = value.parse().unwrap_or(0);
            match *key {
                "opened" => a.opened = v,
                "failed" => a.failed = v,
                "live" => a.live = v,
                _ => {}
            }
        }
    }
    a.error = error;
    a
}

/// Run the whole measurement, printing each reading as it is taken.
pub fn run(opts: &Options) -> anyhow::Result<Report> {
    let baseline = procfs::memory(opts.server_pid).context("server pid not readable")?;
    println!(
        "server pid {}  baseline RSS {} KiB  open-file limit {:?}",
        opts.server_pid,
        baseline.rss_kib,
        procfs::open_file_limits(opts.server_pid)
    );
    let workers_needed = opts.connections.div_ceil(opts.per_worker.max(1)).max(1);
    let mut workers = (0..workers_needed)
        .map(|i| Worker::spawn(i, opts))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let kernel0 = procfs::tcp_kernel_mem_kib();
    let mut report = Report {
        baseline_kib: baseline.rss_kib,
        rows: Vec::new(),
        max_connections: 0,
        first_error: None,
        survivors: 0,
        idle_cpu_percent: None,
        server_fd_limit: procfs::open_file_limits(opts.server_pid),
        server_open_fds: None,
    };
    let mut held = 0usize;
    println!("| connections | server RSS MiB | KiB per connection | kernel TCP MiB |");
    while held < opts.connections {
        let step = opts.step.min(opts.connections - held);
        let mut failed = 0;
        let mut live = 0;
        for (i, w) in workers.iter_mut().enumerate() {
            // Spread the step evenly; the first workers take the remainder.
            let share = step / workers_needed + usize::from(i < step % workers_needed);
            let a = parse_answer(&w.ask(&format!("open {share}"))?);
            failed += a.failed;
            live += a.live;
            if report.first_error.is_none() {
                report.first_error = a.error;
            }
        }
        held = live;
        std::thread::sleep(Duration::from_secs(1));
        let mem = procfs::memory(opts.server_pid).context("server gone")?;
        let kernel = procfs::tcp_kernel_mem_kib()
            .zip(kernel0)
            .map(|(k, k0)| k.saturating_sub(k0));
        let row = Row {
            connections: held,
            rss_kib: mem.rss_kib,
            kib_per_conn: (mem.rss_kib.saturating_sub(baseline.rss_kib)) as f64
                / held.max(1) as f64,
            kernel_tcp_kib: kernel,
        };
        println!(
            "| {} | {:.1} | {:.2} | {} |",
            row.connections,
            row.rss_kib as f64 / 1024.0,
            row.kib_per_conn,
            row.kernel_tcp_kib
                .map_or("?".into(), |k| format!("{:.1}", k as f64 / 1024.0)),
        );
        report.rows.push(row);
        report.max_connections = held;
        report.server_open_fds = procfs::open_fds(opts.server_pid);
        if failed > 0 {
            println!(
                "stopping: {failed} connections failed in this step ({})",
                report.first_error.as_deref().unwrap_or("no reason given")
            );
            break;
        }
    }
    println!(
        "holding {} connections for {} s (past the heartbeat timeout)…",
        held,
        opts.hold.as_secs()
    );
    let mark = CpuMark::now(opts.server_pid);
    std::thread::sleep(opts.hold);
    report.idle_cpu_percent = mark.and_then(|m| m.percent_since(opts.server_pid));
    let mut survivors = 0;
    for w in &mut workers {
        survivors += parse_answer(&w.ask("open 0")?).live;
    }
    report.survivors = survivors;
    Ok(report)
}

/// The worker process: opens connections on request and keeps them alive (reading, which
/// answers the server's pings) until its stdin closes.
pub async fn worker(server: SocketAddr, sources: usize, prefix: String) -> anyhow::Result<()> {
    let sources = client::source_addresses(sources);
    let live = Arc::new(AtomicUsize::new(0));
    let limit = Arc::new(Semaphore::new(CONCURRENT_OPENS));
    let mut next_id = 0usize;
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    let mut out = tokio::io::stdout();
    while let Some(line) = lines.next_line().await? {
        let Some(count) = line
            .strip_prefix("open ")
            .and_then(|n| n.trim().parse::<usize>().ok())
        else {
            break;
        };
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..count {
            let id = next_id;
            next_id += 1;
            let source = sources[id % sources.len()];
            let name = format!("{prefix}{id}");
            let live = live.clone();
            // Invariant: the semaphore is never closed.
            let permit = limit.clone().acquire_owned().await.expect("open semaphore");
            tasks.spawn(async move {
                let result = client::connect(server, source, &name).await;
                drop(permit);
                let mut ws = result.map_err(|e| format!("{e:#}"))?;
                live.fetch_add(1, Ordering::Relaxed);
                tokio::spawn(async move {
                    while client::next_text(&mut ws).await.is_ok() {}
                    live.fetch_sub(1, Ordering::Relaxed);
                });
                Ok::<(), String>(())
            });
        }
        let (mut opened, mut failed, mut error) = (0, 0, None);
        while let Some(done) = tasks.join_next().await {
            match done {
                Ok(Ok(())) => opened += 1,
                Ok(Err(e)) => {
                    failed += 1;
                    error.get_or_insert(e);
                }
                Err(e) => {
                    failed += 1;
                    error.get_or_insert(e.to_string());
                }
            }
        }
        let mut answer = format!(
            "opened {opened} failed {failed} live {}",
            live.load(Ordering::Relaxed)
        );
        if let Some(e) = error {
            answer.push_str(&format!(" error {}", e.replace('\n', " ")));
        }
        out.write_all(format!("{answer}\n").as_bytes()).await?;
        out.flush().await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worker_answers_parse() {
        assert_eq!(
            parse_answer("opened 10 failed 2 live 8 error connect: Too many open files"),
            Answer {
                opened: 10,
                failed: 2,
                live: 8,
                error: Some("connect: Too many open files".into()),
            }
        );
        assert_eq!(parse_answer("opened 0 failed 0 live 5").live, 5);
    }
}
