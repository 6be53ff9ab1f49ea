//! The control socket of a running client: a Unix socket, `ctl-<pid>.sock` in
//! `$XDG_RUNTIME_DIR/cromulent/` (or `/tmp/cromulent-<uid>/`), the directory 0700 and the
//! socket 0600, removed when the client ends. Each connection sends one request line; the
//! front end answers it (`ok`, `error: …`, a status) — or, for `events`, the connection gets
//! every event line from then on. The front end owns the rules: this is only the I/O.
//! Must never block the front end: requests reach it through a channel, events go out through
//! a broadcast that drops a subscriber that falls behind.

use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{broadcast, mpsc, oneshot};

use super::request::{self, Request};

/// Longest request line.
const MAX_LINE: usize = 4096;
/// A client must send its request within this time.
const READ_DEADLINE: Duration = Duration::from_secs(5);
/// The front end must answer within this time.
const ANSWER_DEADLINE: Duration = Duration::from_secs(5);
/// Event lines kept for a slow follower before it is cut off.
const EVENT_BACKLOG: usize = 1024;

/// The directory every client's socket goes in.
pub fn socket_dir(env: &dyn Fn(&str) -> Option<String>) -> PathBuf {
    match env("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
        Some(dir) => Path::new(&dir).join("cromulent"),
        None => std::env::temp_dir().join(format!("cromulent-{}", uid())),
    }
}

fn uid() -> u32 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|u| u.parse().ok()))
        })
        .unwrap_or(0)
}

/// A request from `cromulent ctl`, waiting for the front end's answer.
pub struct Incoming {
    pub request: Request,
    reply: oneshot::Sender<String>,
}

impl Incoming {
    /// Answer with one line (`ok`, `error: …`, a status).
    pub fn answer(self, line: impl Into<String>) {
        let _ = self.reply.send(line.into());
    }
}

/// The listening socket; removed on drop.
pub struct ControlSocket {
    path: PathBuf,
    requests: mpsc::Receiver<Incoming>,
    events: broadcast::Sender<String>,
    task: tokio::task::JoinHandle<()>,
}

impl ControlSocket {
    /// Listen at `path` (its directory is made 0700; a stale socket there is replaced).
    pub fn bind(path: PathBuf) -> io::Result<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
            remove_stale(dir);
        }
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path)?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
        let (tx, requests) = mpsc::channel(16);
        let (events, _) = broadcast::channel(EVENT_BACKLOG);
        let task = tokio::spawn(accept_loop(listener, tx, events.clone()));
        Ok(Self {
            path,
            requests,
            events,
            task,
        })
    }

    /// This client's default path: `ctl-<pid>.sock` in [`socket_dir`].
    pub fn default_path(env: &dyn Fn(&str) -> Option<String>) -> PathBuf {
        socket_dir(env).join(format!("ctl-{}.sock", std::process::id()))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The next request (never resolves once every connection task has gone, which only
    /// happens at shutdown).
    pub async fn next(&mut self) -> Option<Incoming> {
        self.requests.recv().await
    }

    /// Send an event line to every `events` follower.
    pub fn publish(&self, line: &str) {
        if self.events.receiver_count() > 0 {
            let _ = self.events.send(line.to_owned());
        }
    }
}

/// The next request of an optional socket; never resolves without one (for `select!`).
pub async fn next_request(control: &mut Option<ControlSocket>) -> Option<Incoming> {
    match control {
        Some(c) => c.next().await,
        None => std::future::pending().await,
    }
}

/// Open the socket a `--ctl PATH|off` option asks for (the default path when `None`); a
/// client runs on without one, and says why on stderr-or-log.
pub fn open_option(ctl: Option<&Path>) -> Option<ControlSocket> {
    if ctl.is_some_and(|p| p.as_os_str() == "off") {
        return None;
    }
    let env = |k: &str| std::env::var(k).ok();
    let path = ctl
        .map(Path::to_owned)
        .unwrap_or_else(|| ControlSocket::default_path(&env));
    match ControlSocket::bind(path.clone()) {
        Ok(socket) => Some(socket),
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "no control socket");
            None
        }
    }
}

impl Drop for ControlSocket {
    fn drop(&mut self) {
        self.task.abort();
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Sockets of clients that are gone: nobody accepts on them (a client killed without a chance
/// to remove its own). Asked by connecting, not by process id, which another PID namespace
/// may not show.
fn remove_stale(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let ours = name
            .to_str()
            .is_some_and(|n| n.starts_with("ctl-") && n.ends_with(".sock"));
        if ours
            && std::os::unix::net::UnixStream::connect(entry.path())
                .is_err_and(|e| e.kind() == io::ErrorKind::ConnectionRefused)
        {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

async fn accept_loop(
    listener: UnixListener,
    requests: mpsc::Sender<Incoming>,
    events: broadcast::Sender<String>,
) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                // e.g. out of descriptors: back off instead of spinning.
                tracing::warn!(error = %e, "control socket: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let requests = requests.clone();
        let events = events.subscribe();
        tokio::spawn(async move {
            if let Err(e) = serve(stream, requests, events).await {
                tracing::debug!(error = %e, "control connection ended");
            }
        });
    }
}

async fn serve(
    stream: UnixStream,
    requests: mpsc::Sender<Incoming>,
    mut events: broadcast::Receiver<String>,
) -> io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read.take(MAX_LINE as u64));
    let mut line = String::new();
    let got = tokio::time::timeout(READ_DEADLINE, reader.read_line(&mut line)).await;
    if !matches!(got, Ok(Ok(n)) if n > 0) {
        return Ok(());
    }
    let request = match request::parse(&line) {
        Ok(r) => r,
        Err(e) => {
            write.write_all(format!("error: {e}\n").as_bytes()).await?;
            return Ok(());
        }
    };
    if request == Request::Events {
        loop {
            match events.recv().await {
                Ok(event) => {
                    write.write_all(event.as_bytes()).await?;
                    write.write_all(b"\n").await?;
                }
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    let msg = format!("error: {n} events were not read in time; follow again\n");
                    write.write_all(msg.as_bytes()).await?;
                    return Ok(());
                }
                Err(broadcast::error::RecvError::Closed) => return Ok(()),
            }
        }
    }
    let (reply, answer) = oneshot::channel();
    if requests.send(Incoming { request, reply }).await.is_err() {
        write.write_all(b"error: the client is stopping\n").await?;
        return Ok(());
    }
    let line = match tokio::time::timeout(ANSWER_DEADLINE, answer).await {
        Ok(Ok(line)) => line,
        _ => "error: the client did not answer".to_owned(),
    };
    write.write_all(line.as_bytes()).await?;
    write.write_all(b"\n").await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_dead_client_s_socket_is_cleared_and_a_live_one_kept() {
        let dir = std::env::temp_dir().join(format!("cromulent-ctl-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let dead = dir.join("ctl-1.sock");
        drop(std::os::unix::net::UnixListener::bind(&dead).unwrap());
        assert!(dead.exists(), "a socket file nobody listens on");
        let live = ControlSocket::bind(dir.join("ctl-2.sock")).unwrap();
        let ours = ControlSocket::bind(dir.join("ctl-3.sock")).unwrap();
        assert!(!dead.exists(), "cleared");
        assert!(live.path().exists() && ours.path().exists(), "kept");
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        drop((live, ours));
        assert!(
            std::fs::read_dir(&dir).unwrap().next().is_none(),
            "removed on drop"
        );
        std::fs::remove_dir(&dir).unwrap();
    }
}
