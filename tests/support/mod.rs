//! End-to-end harness of the client: the real server and real `cromulent headless` processes
//! on loopback. Every wait is bounded; every process is killed when its handle drops (also on
//! panic). The generic harnesses (coturn, PulseAudio, temp dirs, ports, processes) are the
//! workspace's one copy in `cromulent-test-support`, re-exported here; what is left in this
//! file needs the `cromulent` binary or library.
// Each test file uses part of this module, and of what it re-exports.
#![allow(dead_code, unused_imports)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub use cromulent_test_support::forward::Failover;
use cromulent_test_support::process::{KillOnDrop, poll_until, signal, wait_exit};
pub use cromulent_test_support::process::{TempDir, free_port};
pub use cromulent_test_support::redis::Redis;
use cromulent_test_support::ws::cluster_ready;
pub use cromulent_test_support::{coturn, pulse};
use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_cromulent");

/// Held by a test whose check is the audio's content over a time window, so that the calls
/// of one test binary do not run at once: each debug-build call then has the machine's cores
/// to itself, as a real call would, instead of sharing them with the other tests' calls
/// (which, on two cores, starved them into gaps). A test that failed does not poison it.
pub fn one_call_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static CALLS: Mutex<()> = Mutex::new(());
    CALLS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// `cromulent server` as a child process.
pub struct Server {
    child: KillOnDrop,
    pub addr: SocketAddr,
}

impl Server {
    /// Start on a free port.
    pub fn start() -> Self {
        Self::start_with(free_port(), &[], &[])
    }

    /// Start on `port` with extra arguments and environment.
    pub fn start_with(port: u16, args: &[&str], env: &[(&str, &str)]) -> Self {
        Self::start_listening(&format!("127.0.0.1:{port}"), args, env)
    }

    /// Start listening on `listen` (e.g. `0.0.0.0:PORT` inside a test's own namespace); `addr`
    /// is its loopback address.
    pub fn start_listening(listen: &str, args: &[&str], env: &[(&str, &str)]) -> Self {
        let port = listen.rsplit(':').next().unwrap();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let mut cmd = Command::new(BIN);
        cmd.arg("server")
            .args(["--listen", listen])
            // Chat history in memory: test servers run side by side (a test that wants a
            // file passes CROMULENT_CHAT_DB in `env`).
            .env("CROMULENT_CHAT_DB", ":memory:")
            .args(args)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = KillOnDrop::spawn(&mut cmd, "cromulent server");
        assert!(
            poll_until(Duration::from_secs(10), || {
                std::net::TcpStream::connect(addr).is_ok()
            }),
            "server did not come up on {addr}"
        );
        Self { child, addr }
    }

    /// Start instance `name` of the cluster sharing `redis` (cluster mode by environment:
    /// `CROMULENT_REDIS_URL`, `CROMULENT_INSTANCE_ID`) on a free port, and wait until it
    /// seats users through Redis.
    pub fn cluster_instance(redis: &Redis, name: &str) -> Self {
        Self::cluster_instance_with(redis, name, &[])
    }

    /// As [`Server::cluster_instance`], with extra arguments (e.g. `--config` for a short
    /// lease).
    pub fn cluster_instance_with(redis: &Redis, name: &str, args: &[&str]) -> Self {
        let url = redis.url();
        let env = [
            ("CROMULENT_REDIS_URL", url.as_str()),
            ("CROMULENT_INSTANCE_ID", name),
        ];
        let server = Self::start_with(free_port(), args, &env);
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime for the readiness probe")
            .block_on(cluster_ready(&server.url(), name));
        server
    }

    pub fn url(&self) -> String {
        format!("ws://{}", self.addr)
    }

    /// SIGKILL: no goodbye to anyone.
    pub fn kill(mut self) {
        self.child.kill();
    }
}

/// One line of a client's stdout and when it arrived.
#[derive(Debug, Clone)]
pub struct Event {
    pub at: Instant,
    pub json: Value,
}

impl Event {
    pub fn kind(&self) -> &str {
        self.json["event"].as_str().unwrap_or("")
    }

    pub fn str(&self, field: &str) -> &str {
        self.json[field].as_str().unwrap_or("")
    }
}

/// A running `cromulent headless`.
pub struct Client {
    pub name: String,
    child: KillOnDrop,
    lines: Receiver<Event>,
    /// Everything seen so far.
    pub seen: Vec<Event>,
    stderr: Arc<Mutex<String>>,
    stdin: Option<std::process::ChildStdin>,
}

impl Client {
    /// Start `cromulent headless --server URL --user NAME ARGS...`.
    pub fn start(url: &str, name: &str, args: &[&str]) -> Self {
        Self::start_env(url, name, args, &[])
    }

    /// As [`Client::start`], with extra environment variables.
    pub fn start_env(url: &str, name: &str, args: &[&str], env: &[(&str, &str)]) -> Self {
        let mut cmd = Command::new(BIN);
        cmd.arg("headless")
            .args(["--server", url, "--user", name])
            .args(args)
            .env("RUST_LOG", "warn");
        for (k, v) in env {
            cmd.env(k, v);
        }
        Self::spawn(name, cmd)
    }

    /// Run `cmd`, a `cromulent headless` for user `name` however it is started (e.g. through
    /// `ip netns exec`), and read its events; stdin, stdout and stderr are piped here.
    pub fn spawn(name: &str, mut cmd: Command) -> Self {
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = KillOnDrop::spawn(&mut cmd, "cromulent headless");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let json: Value = serde_json::from_str(&line)
                    .unwrap_or_else(|e| panic!("stdout line is not JSON ({e}): {line}"));
                assert!(json["event"].is_string(), "no event field: {line}");
                if tx
                    .send(Event {
                        at: Instant::now(),
                        json,
                    })
                    .is_err()
                {
                    break;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let err_pipe = child.stderr.take().unwrap();
        let sink = stderr.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(err_pipe).lines().map_while(Result::ok) {
                let mut s = sink.lock().unwrap();
                if s.len() < 64 * 1024 {
                    s.push_str(&line);
                    s.push('\n');
                }
            }
        });
        let stdin = child.stdin.take();
        Self {
            name: name.to_owned(),
            child,
            lines: rx,
            seen: Vec::new(),
            stderr,
            stdin,
        }
    }

    /// Send script lines on stdin (for `--script -`).
    pub fn say(&mut self, line: &str) {
        use std::io::Write;
        let stdin = self.stdin.as_mut().expect("stdin open");
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
    }

    /// Wait for an event matching `pred`, at most `limit`; panics with the history if none.
    pub fn wait_for(
        &mut self,
        what: &str,
        limit: Duration,
        pred: impl Fn(&Event) -> bool,
    ) -> Event {
        if let Some(e) = self.seen.iter().find(|e| pred(e)) {
            return e.clone();
        }
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(e) => {
                    self.seen.push(e.clone());
                    if pred(&e) {
                        return e;
                    }
                }
                Err(RecvTimeoutError::Timeout) | Err(RecvTimeoutError::Disconnected) => panic!(
                    "{}: no {what} within {limit:?}\nevents: {:#?}\nstderr: {}",
                    self.name,
                    self.seen
                        .iter()
                        .map(|e| e.json.to_string())
                        .collect::<Vec<_>>(),
                    self.stderr.lock().unwrap()
                ),
            }
        }
    }

    /// A point in this client's event history: everything received so far.
    pub fn mark(&mut self) -> usize {
        self.drain();
        self.seen.len()
    }

    /// Wait for an event after `mark` matching `pred`.
    pub fn wait_after(
        &mut self,
        mark: usize,
        what: &str,
        limit: Duration,
        pred: impl Fn(&Event) -> bool,
    ) -> Event {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(e) = self.seen[mark.min(self.seen.len())..]
                .iter()
                .find(|e| pred(e))
            {
                return e.clone();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(e) => self.seen.push(e),
                Err(_) => panic!(
                    "{}: no {what} after event #{mark} within {limit:?}\nevents: {:#?}\nstderr: {}",
                    self.name,
                    self.seen
                        .iter()
                        .map(|e| e.json.to_string())
                        .collect::<Vec<_>>(),
                    self.stderr.lock().unwrap()
                ),
            }
        }
    }

    /// Pull in whatever has arrived.
    pub fn drain(&mut self) {
        while let Ok(e) = self.lines.try_recv() {
            self.seen.push(e);
        }
    }

    pub fn wait_state(&mut self, state: &str, limit: Duration) -> Event {
        self.wait_for(&format!("state {state}"), limit, |e| {
            e.kind() == "state" && e.str("state") == state
        })
    }

    pub fn wait_peer_connected(&mut self, user: &str, limit: Duration) -> Event {
        self.wait_peer(user, "connected", limit)
    }

    /// Wait for a `peer` event saying the call with `user` is in `state`.
    pub fn wait_peer(&mut self, user: &str, state: &str, limit: Duration) -> Event {
        self.wait_for(&format!("peer {user} {state}"), limit, |e| {
            e.kind() == "peer" && e.str("user") == user && e.str("state") == state
        })
    }

    /// Whether any event seen so far matches `pred`.
    pub fn ever(&self, pred: impl Fn(&Event) -> bool) -> bool {
        self.seen.iter().any(pred)
    }

    pub fn wait_audio(&mut self, from: &str, limit: Duration) -> Event {
        let from = from.to_owned();
        self.wait_for(&format!("audio from {from}"), limit, move |e| {
            e.kind() == "audio" && e.str("from") == from
        })
    }

    /// Wait for the process to end; its exit status.
    pub fn wait_exit(&mut self, limit: Duration) -> ExitStatus {
        let Some(status) = wait_exit(&mut self.child, limit) else {
            panic!(
                "{} did not exit within {limit:?}; stderr: {}",
                self.name,
                self.stderr.lock().unwrap()
            )
        };
        // Let the reader thread deliver the last lines.
        std::thread::sleep(Duration::from_millis(50));
        self.drain();
        status
    }

    /// SIGTERM: a clean stop (leave, finish the recording).
    pub fn terminate(&mut self) -> ExitStatus {
        signal(self.child.id(), "-TERM");
        self.wait_exit(Duration::from_secs(10))
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    pub fn events(&self, kind: &str) -> Vec<Event> {
        self.seen
            .iter()
            .filter(|e| e.kind() == kind)
            .cloned()
            .collect()
    }
}

/// One caller of [`tone_call`]: a name, the URL of its server, the tone it sends (Hz).
pub struct ToneCaller<'a> {
    pub name: &'a str,
    pub url: String,
    pub hz: f32,
    /// Its `--frame-ms` (5, 10 or 20).
    pub frame_ms: &'a str,
}

impl ToneCaller<'_> {
    /// Its headless client: in General, sending its tone on its frame size, recording what it
    /// hears to the WAV file `wav`.
    pub fn client(&self, wav: &Path) -> Client {
        let out = format!("wav:{}", wav.display());
        let tone = format!("tone:{}", self.hz);
        let args = [
            "--join",
            "General",
            "--audio-in",
            &tone,
            "--audio-out",
            &out,
            "--frame-ms",
            self.frame_ms,
        ];
        Client::start(&self.url, self.name, &args)
    }
}

/// A call in General among `callers`, each sending its tone and recording what it hears;
/// once each hears every other, two seconds of call, then a clean stop (complete WAVs). The
/// last second each recorded, in the order of `callers`.
pub fn tone_call(callers: &[ToneCaller]) -> Vec<Vec<f32>> {
    let dir = TempDir::new("tone-call");
    let mut clients: Vec<Client> = callers
        .iter()
        .map(|c| c.client(&dir.path(&format!("{}.wav", c.name))))
        .collect();
    for (me, client) in clients.iter_mut().enumerate() {
        for (_, other) in callers.iter().enumerate().filter(|(i, _)| *i != me) {
            client.wait_audio(other.name, LONG);
        }
    }
    std::thread::sleep(Duration::from_secs(2));
    for c in &mut clients {
        assert!(
            c.terminate().success(),
            "{} exits 0: {}",
            c.name,
            c.stderr()
        );
    }
    callers
        .iter()
        .map(|c| tail(&read_wav(&dir.path(&format!("{}.wav", c.name))), 1.0).to_vec())
        .collect()
}

/// What `callers[me]` heard (`heard`, from [`tone_call`]) holds real energy, every other
/// caller's tone at more than `min_share` of its power, and nothing of its own tone.
pub fn assert_hears_the_others(callers: &[ToneCaller], me: usize, heard: &[f32], min_share: f32) {
    use cromulent::audio::analysis::{rms, tone_power, tone_share};
    let name = callers[me].name;
    assert!(
        rms(heard) > 0.05,
        "{name} heard something: rms {}",
        rms(heard)
    );
    for (i, c) in callers.iter().enumerate() {
        if i == me {
            let own = tone_power(heard, 48_000, c.hz);
            assert!(own < 0.01, "{name} hears itself at {} Hz: {own}", c.hz);
        } else {
            let share = tone_share(heard, 48_000, c.hz);
            assert!(
                share > min_share,
                "{name} misses {} at {} Hz: {share}",
                c.name,
                c.hz
            );
        }
    }
}

/// Samples of a recorded WAV (48 kHz mono).
pub fn read_wav(path: &Path) -> Vec<f32> {
    let audio = cromulent::audio::read_wav_mono(path).expect("readable WAV");
    assert_eq!(audio.sample_rate, 48_000);
    audio.samples
}

/// The last `secs` seconds of `samples`.
pub fn tail(samples: &[f32], secs: f32) -> &[f32] {
    let n = ((secs * 48_000.0) as usize).min(samples.len());
    &samples[samples.len() - n..]
}

pub const LONG: Duration = Duration::from_secs(20);

/// `cromulent ctl --socket SOCKET ARGS…`: exit status and stdout.
pub fn ctl(socket: &Path, args: &[&str]) -> (i32, String) {
    let mut child = KillOnDrop::spawn(
        Command::new(BIN)
            .arg("ctl")
            .arg("--socket")
            .arg(socket)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
        "cromulent ctl",
    );
    let status = wait_exit(&mut child, Duration::from_secs(10)).expect("ctl answers in time");
    let mut out = String::new();
    if let Some(mut stdout) = child.stdout.take() {
        use std::io::Read;
        let _ = stdout.read_to_string(&mut out);
    }
    (status.code().unwrap_or(-1), out.trim_end().to_owned())
}
