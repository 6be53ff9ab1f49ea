//! Client cost: a signaling server and `users` real `cromulent headless` processes in one
//! voice channel (a full mesh), each playing its own tone with push-to-talk. One client is
//! observed: CPU (from `/proc/PID/stat`), RSS, and per-peer bandwidth (its `stats` event byte
//! counters; and, when run in a private network namespace, every byte on loopback) in three
//! windows:
//!
//! - **all talking**: everyone holds the talk key — the normal cost of a call;
//! - **only the observed client talking**: it encodes and sends, and decodes nobody — if it
//!   encoded once per peer this would grow with the number of peers;
//! - **silent**: nobody talks (push-to-talk released) — what an idle call costs.
//!
//! With `perf_probes`, uprobes on libopus count the observed client's `opus_encode_float` and
//! `opus_decode_float` calls during the all-talking window (the script sets the probes up).
//!
//! The processes it starts must never outlive it: clients and server are killed on drop.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::Value;

use crate::procfs::{self, CpuMark};

#[derive(Debug, Clone)]
pub struct Options {
    /// The `cromulent` binary.
    pub binary: PathBuf,
    pub users: usize,
    /// Length of each measured window.
    pub window: Duration,
    /// Settling time before each window.
    pub settle: Duration,
    pub perf_probes: bool,
    /// Loopback carries only this benchmark's traffic (a private network namespace), so its
    /// byte counters can be divided among the peer streams.
    pub private_loopback: bool,
    /// The observed client captures and plays through its sound devices
    /// (`--audio-in device --audio-out device`) instead of a tone and no speaker; run it
    /// under a sound server (`bench/device-cost.sh` starts a private PulseAudio).
    pub observed_devices: bool,
    /// Every client's `--frame-ms` (5, 10 or 20; `None`: the client's default, 20).
    pub frame_ms: Option<u32>,
}

/// Figures of one window.
#[derive(Debug, Clone, Default)]
pub struct Window {
    /// Observed client, percent of one core.
    pub cpu_percent: f64,
    /// Mean over all clients, percent of one core.
    pub cpu_percent_all: f64,
    pub rss_kib: u64,
    /// Observed client's RTP payload per peer, kbit/s, sent and received (means over peers).
    pub payload_kbps_sent: f64,
    pub payload_kbps_received: f64,
    /// Everything on loopback (IP headers, RTCP, STUN, signaling) per directed peer stream,
    /// kbit/s — only in a private network namespace.
    pub wire_kbps_per_stream: Option<f64>,
    /// libopus calls by the observed client per second: (encode, decode).
    pub codec_calls_per_sec: Option<(f64, f64)>,
    /// Observed client's threads by name, percent of one core, busiest first.
    pub threads: Vec<(String, f64)>,
}

#[derive(Debug, Clone)]
pub struct Report {
    pub users: usize,
    pub all_talking: Window,
    pub one_talking: Window,
    pub silent: Window,
    pub hwm_kib: u64,
}

struct Client {
    child: Child,
    stdin: ChildStdin,
    events: mpsc::Receiver<Value>,
    connected: BTreeSet<String>,
}

impl Client {
    /// A client in General with push-to-talk, on `audio` (`--audio-in …` and so on).
    fn spawn(binary: &Path, url: &str, user: &str, audio: &[String]) -> anyhow::Result<Self> {
        let mut child = Command::new(binary)
            .args([
                "headless", "--server", url, "--user", user, "--join", "General", "--talk", "ptt",
                "--script", "-",
            ])
            .args(audio)
            .env("RUST_LOG", "error")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("start {}", binary.display()))?;
        // Invariant: both were requested as pipes just above.
        let stdin = child.stdin.take().expect("piped stdin");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, events) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str::<Value>(&line)
                    && tx.send(v).is_err()
                {
                    break;
                }
            }
        });
        Ok(Self {
            child,
            stdin,
            events,
            connected: BTreeSet::new(),
        })
    }

    fn command(&mut self, line: &str) -> anyhow::Result<()> {
        writeln!(self.stdin, "{line}")?;
        self.stdin.flush()?;
        Ok(())
    }

    /// Take in the events so far (peer states); return a stats event if one came.
    fn pump(&mut self, wait: Duration) -> Option<Value> {
        let deadline = Instant::now() + wait;
        let mut stats = None;
        while let Ok(v) = self
            .events
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            match v["event"].as_str() {
                Some("peer") => {
                    let user = v["user"].as_str().unwrap_or_default().to_owned();
                    if v["state"] == "connected" {
                        self.connected.insert(user);
                    } else {
                        self.connected.remove(&user);
                    }
                }
                Some("stats") => stats = Some(v),
                _ => {}
            }
            if stats.is_some() {
                break;
            }
        }
        stats
    }

    /// Per peer: (bytes_sent, bytes_received).
    fn byte_counters(&mut self) -> anyhow::Result<BTreeMap<String, (u64, u64)>> {
        self.command("stats")?;
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Some(v) = self.pump(Duration::from_millis(200)) {
                let peers = v["peers"].as_array().cloned().unwrap_or_default();
                return Ok(peers
                    .iter()
                    .map(|p| {
                        (
                            p["user"].as_str().unwrap_or_default().to_owned(),
                            (
                                p["bytes_sent"].as_u64().unwrap_or(0),
                                p["bytes_received"].as_u64().unwrap_or(0),
                            ),
                        )
                    })
                    .collect());
            }
        }
        bail!("no stats event in 5 s")
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn run(opts: &Options) -> anyhow::Result<Report> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let _server = Server(
        Command::new(&opts.binary)
            .args(["server", "--listen", &format!("127.0.0.1:{port}")])
            .env("RUST_LOG", "warn")
            .env("CROMULENT_CHAT_DB", ":memory:")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("start the server")?,
    );
    let url = format!("ws://127.0.0.1:{port}");
    wait_listening(port)?;
    let audio = |i: usize| -> Vec<String> {
        let mut args = if i == 0 && opts.observed_devices {
            ["--audio-in", "device", "--audio-out", "device"]
                .map(String::from)
                .to_vec()
        } else {
            vec!["--audio-in".into(), format!("tone:{}", 300 + 60 * i)]
        };
        if let Some(ms) = opts.frame_ms {
            args.extend(["--frame-ms".into(), ms.to_string()]);
        }
        args
    };
    let mut clients = (0..opts.users)
        .map(|i| Client::spawn(&opts.binary, &url, &format!("u{i}"), &audio(i)))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while clients.iter().any(|c| c.connected.len() + 1 < opts.users) {
        if Instant::now() > deadline {
            let counts: Vec<_> = clients.iter().map(|c| c.connected.len()).collect();
            bail!("mesh not connected in 60 s (connected peers per client: {counts:?})");
        }
        for c in &mut clients {
            c.pump(Duration::from_millis(20));
        }
    }
    for c in &mut clients {
        c.command("talk on")?;
    }
    let all_talking = measure(&mut clients, opts, true)?;
    for c in clients.iter_mut().skip(1) {
        c.command("talk off")?;
    }
    let one_talking = measure(&mut clients, opts, false)?;
    clients[0].command("talk off")?;
    let silent = measure(&mut clients, opts, false)?;
    let hwm_kib = procfs::memory(clients[0].pid()).map_or(0, |m| m.hwm_kib);
    Ok(Report {
        users: opts.users,
        all_talking,
        one_talking,
        silent,
        hwm_kib,
    })
}

fn wait_listening(port: u16) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            bail!("server not listening on {port} in 10 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

fn measure(clients: &mut [Client], opts: &Options, probes: bool) -> anyhow::Result<Window> {
    let settle_until = Instant::now() + opts.settle;
    while Instant::now() < settle_until {
        for c in clients.iter_mut() {
            c.pump(Duration::from_millis(10));
        }
    }
    let observed = clients[0].pid();
    let bytes0 = clients[0].byte_counters()?;
    let lo0 = opts.private_loopback.then(procfs::loopback_bytes).flatten();
    let marks: Vec<_> = clients.iter().map(|c| CpuMark::now(c.pid())).collect();
    let threads0 = procfs::thread_ticks(observed);
    let started = Instant::now();
    let perf = (probes && opts.perf_probes).then(|| count_codec_calls(observed, opts.window));
    // Keep reading events while the window runs (their pipes must not fill up).
    while started.elapsed() < opts.window {
        for c in clients.iter_mut() {
            c.pump(Duration::from_millis(10));
        }
    }
    let secs = started.elapsed().as_secs_f64();
    let threads = procfs::thread_percent(&threads0, &procfs::thread_ticks(observed), secs);
    let cpus: Vec<f64> = clients
        .iter()
        .zip(&marks)
        .filter_map(|(c, m)| m.as_ref()?.percent_since(c.pid()))
        .collect();
    let lo1 = opts.private_loopback.then(procfs::loopback_bytes).flatten();
    let bytes1 = clients[0].byte_counters()?;
    let codec_calls_per_sec = match perf {
        Some(handle) => handle
            .join()
            .ok()
            .flatten()
            .map(|(e, d)| (e as f64 / secs, d as f64 / secs)),
        None => None,
    };
    let peers = bytes1.len().max(1) as f64;
    let (mut sent, mut received) = (0u64, 0u64);
    for (user, (s1, r1)) in &bytes1 {
        let (s0, r0) = bytes0.get(user).copied().unwrap_or((0, 0));
        sent += s1.saturating_sub(s0);
        received += r1.saturating_sub(r0);
    }
    let kbps = |bytes: u64| bytes as f64 * 8.0 / 1000.0 / secs / peers;
    let streams = (clients.len() * (clients.len() - 1)).max(1) as f64;
    Ok(Window {
        cpu_percent: cpus.first().copied().unwrap_or(f64::NAN),
        cpu_percent_all: cpus.iter().sum::<f64>() / cpus.len().max(1) as f64,
        rss_kib: procfs::memory(observed).map_or(0, |m| m.rss_kib),
        payload_kbps_sent: kbps(sent),
        payload_kbps_received: kbps(received),
        wire_kbps_per_stream: lo0
            .zip(lo1)
            .map(|((_, t0), (_, t1))| (t1 - t0) as f64 * 8.0 / 1000.0 / secs / streams),
        codec_calls_per_sec,
        threads,
    })
}

/// Count libopus encode/decode calls of `pid` for `window` with `perf stat` on uprobes the
/// caller has set up (`probe_libopus:opus_encode_float`, `…:opus_decode_float`).
fn count_codec_calls(pid: u32, window: Duration) -> std::thread::JoinHandle<Option<(u64, u64)>> {
    std::thread::spawn(move || {
        let out = Command::new("perf")
            .args([
                "stat",
                "-x,",
                "-e",
                "probe_libopus:opus_encode_float",
                "-e",
                "probe_libopus:opus_decode_float",
                "-p",
                &pid.to_string(),
                "--",
                "sleep",
                &format!("{:.3}", window.as_secs_f64()),
            ])
            .output()
            .ok()?;
        let text = String::from_utf8_lossy(&out.stderr);
        let count = |name: &str| -> Option<u64> {
            text.lines()
                .find(|l| l.contains(name))?
                .split(',')
                .next()?
                .trim()
                .parse()
                .ok()
        };
        Some((count("opus_encode_float")?, count("opus_decode_float")?))
    })
}
