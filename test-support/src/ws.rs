//! The real signaling server, run in-process on 127.0.0.1:0 ([`TestServer`]), and real
//! WebSocket clients that speak the protocol ([`Client`]). Every wait is bounded by [`WAIT`]
//! unless a test names its own.

use std::net::SocketAddr;
use std::time::Duration;

use cromulent_protocol::{ClientMsg, ErrorReason, PROTOCOL_VERSION, ServerMsg, decode_server};
use cromulent_server::config::Config;
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// How long any single expected message may take.
pub const WAIT: Duration = Duration::from_secs(5);

pub struct TestServer {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

impl TestServer {
    pub async fn start(config: Config) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(cromulent_server::run(listener, config, async {
            let _ = stopped.await;
        }));
        Self {
            addr,
            stop: Some(stop),
            task: Some(task),
        }
    }

    pub async fn default() -> Self {
        Self::start(Config::default()).await
    }

    pub fn url(&self) -> String {
        format!("ws://{}", self.addr)
    }

    /// Shut down and wait for the run to finish.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            tokio::time::timeout(WAIT, task)
                .await
                .expect("server shut down in time")
                .unwrap()
                .unwrap();
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// How often [`cluster_ready`] asks again while an instance still takes its lease.
const READY_POLL: Duration = Duration::from_millis(100);

/// Wait (at most [`WAIT`]) until the cluster instance at `url` seats users through Redis: a
/// probe `probe-NAME` joins channel 3 (again while the instance still takes its lease, which
/// it answers `cluster_unavailable`) and leaves. Tests that look at presence leave the
/// `probe-` users out: an instance may tell of a probe's leave a moment after another has.
pub async fn cluster_ready(url: &str, name: &str) {
    let mut probe = Client::connect(url, &format!("probe-{name}")).await;
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        probe.send(&ClientMsg::Join { channel: 3 }).await;
        match probe.expect_joined().await {
            ServerMsg::Joined { .. } => break,
            ServerMsg::Error {
                reason: ErrorReason::ClusterUnavailable,
                ..
            } if tokio::time::Instant::now() < deadline => tokio::time::sleep(READY_POLL).await,
            other => panic!("instance {name} not ready: {other:?}"),
        }
    }
    probe.send(&ClientMsg::Leave).await;
    probe
        .recv_until(|m| matches!(m, ServerMsg::Left { .. }))
        .await;
}

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

pub struct Client {
    pub ws: Ws,
    pub welcome: Option<ServerMsg>,
}

impl Client {
    /// A connection that has not said hello.
    pub async fn raw(url: &str) -> Self {
        let (ws, _) = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(url))
            .await
            .expect("connect in time")
            .expect("connect");
        Self { ws, welcome: None }
    }

    /// Connect and say hello with `name` (open mode); waits for the welcome.
    pub async fn connect(url: &str, name: &str) -> Self {
        Self::hello_with(url, Some(name), None, None).await
    }

    pub async fn hello_with(
        url: &str,
        name: Option<&str>,
        token: Option<&str>,
        resume: Option<&str>,
    ) -> Self {
        let mut c = Self::raw(url).await;
        c.send(&ClientMsg::Hello {
            protocol: PROTOCOL_VERSION,
            name: name.map(Into::into),
            token: token.map(Into::into),
            resume: resume.map(Into::into),
        })
        .await;
        let welcome = c.recv().await;
        assert!(
            matches!(welcome, ServerMsg::Welcome { .. }),
            "expected welcome, got {welcome:?}"
        );
        c.welcome = Some(welcome);
        c
    }

    pub fn resume_token(&self) -> String {
        match &self.welcome {
            Some(ServerMsg::Welcome { session, .. }) => session.resume_token.clone(),
            other => panic!("no welcome: {other:?}"),
        }
    }

    pub async fn send(&mut self, msg: &ClientMsg) {
        self.send_text(&msg.to_json()).await;
    }

    /// Send `voice_state` with these flags.
    pub async fn voice_state(&mut self, muted: bool, deafened: bool, talking: bool) {
        self.send(&ClientMsg::VoiceState {
            muted,
            deafened,
            talking,
        })
        .await;
    }

    pub async fn send_text(&mut self, text: &str) {
        self.ws.send(Message::text(text.to_owned())).await.unwrap();
    }

    /// The next protocol message; panics after [`WAIT`] or if the connection ends.
    pub async fn recv(&mut self) -> ServerMsg {
        match self.try_recv(WAIT).await {
            Some(m) => m,
            None => panic!("no message within {WAIT:?}"),
        }
    }

    /// The next protocol message within `wait`, or `None` (timeout or connection ended).
    pub async fn try_recv(&mut self, wait: Duration) -> Option<ServerMsg> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let frame = tokio::time::timeout_at(deadline, self.ws.next())
                .await
                .ok()??;
            match frame {
                Ok(Message::Text(t)) => {
                    return Some(
                        decode_server(&t).unwrap_or_else(|e| panic!("bad frame {t}: {e}")),
                    );
                }
                Ok(Message::Close(_)) | Err(_) => return None,
                Ok(_) => {}
            }
        }
    }

    /// Skip messages until one matches; panics after [`WAIT`].
    pub async fn recv_until(&mut self, pred: impl Fn(&ServerMsg) -> bool) -> ServerMsg {
        let deadline = tokio::time::Instant::now() + WAIT;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.try_recv(left).await {
                Some(m) if pred(&m) => return m,
                Some(m) => seen.push(m),
                None => panic!("expected message never came; saw {seen:?}"),
            }
        }
    }

    /// Skip messages until one matches within `wait`; `None` if none does (or the
    /// connection ends).
    pub async fn recv_until_within(
        &mut self,
        pred: impl Fn(&ServerMsg) -> bool,
        wait: Duration,
    ) -> Option<ServerMsg> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.try_recv(left).await {
                Some(m) if pred(&m) => return Some(m),
                Some(_) => {}
                None => return None,
            }
        }
    }

    /// The next message other than presence must be an error with `reason`.
    pub async fn expect_error(&mut self, reason: ErrorReason) -> ServerMsg {
        let m = self
            .recv_until(|m| !matches!(m, ServerMsg::Presence { .. }))
            .await;
        match &m {
            ServerMsg::Error { reason: r, .. } if *r == reason => m,
            other => panic!("expected error {reason}, got {other:?}"),
        }
    }

    /// Skip until a `joined`.
    pub async fn expect_joined(&mut self) -> ServerMsg {
        self.recv_until(|m| matches!(m, ServerMsg::Joined { .. } | ServerMsg::Error { .. }))
            .await
    }

    /// True if the server closes the connection within [`WAIT`] (messages before it skipped).
    pub async fn closed(&mut self) -> bool {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            match tokio::time::timeout_at(deadline, self.ws.next()).await {
                Err(_) => return false,
                Ok(None) | Ok(Some(Err(_))) | Ok(Some(Ok(Message::Close(_)))) => return true,
                Ok(Some(Ok(_))) => {}
            }
        }
    }

    /// Every protocol message that arrives within `wait` (the whole window is waited out).
    pub async fn drain_for(&mut self, wait: Duration) -> Vec<ServerMsg> {
        let deadline = tokio::time::Instant::now() + wait;
        let mut all = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                return all;
            }
            match self.try_recv(left).await {
                Some(m) => all.push(m),
                None => return all,
            }
        }
    }

    /// Nothing but control frames arrives for `wait`.
    pub async fn quiet_for(&mut self, wait: Duration) -> Result<(), ServerMsg> {
        match self.try_recv(wait).await {
            Some(m) => Err(m),
            None => Ok(()),
        }
    }
}

/// Send `join(channel)` on every client at once (each from its own task, released together)
/// and collect each one's reply (`joined` or an error) with the client, in the given order:
/// the duplicate-join race.
pub async fn join_all_at_once(
    clients: Vec<Client>,
    channel: cromulent_protocol::ChannelId,
) -> Vec<(ServerMsg, Client)> {
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(clients.len()));
    let tasks: Vec<_> = clients
        .into_iter()
        .map(|mut c| {
            let barrier = barrier.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                c.send(&ClientMsg::Join { channel }).await;
                (c.expect_joined().await, c)
            })
        })
        .collect();
    let mut replies = Vec::new();
    for t in tasks {
        replies.push(t.await.expect("a joining task panicked"));
    }
    replies
}

/// How a join race ended: (seated, refused with `already_in_channel`); panics on any other
/// reply.
pub fn race_outcome(replies: &[(ServerMsg, Client)]) -> (usize, usize) {
    let (mut joined, mut refused) = (0, 0);
    for (reply, _) in replies {
        match reply {
            ServerMsg::Joined { .. } => joined += 1,
            ServerMsg::Error {
                reason: ErrorReason::AlreadyInChannel,
                ..
            } => refused += 1,
            other => panic!("unexpected reply to a racing join: {other:?}"),
        }
    }
    (joined, refused)
}

/// A TCP connection to `addr` from `local_ip` (any 127.0.0.0/8 address is loopback), with the
/// receive buffer capped at `recv_buffer` bytes when given (a client that will stop reading).
pub async fn tcp_from(
    addr: SocketAddr,
    local_ip: std::net::IpAddr,
    recv_buffer: Option<u32>,
) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    if let Some(bytes) = recv_buffer {
        socket.set_recv_buffer_size(bytes).unwrap();
    }
    socket.bind(SocketAddr::new(local_ip, 0)).unwrap();
    tokio::time::timeout(WAIT, socket.connect(addr))
        .await
        .expect("tcp connect in time")
        .expect("tcp connect")
}

impl Client {
    /// The WebSocket handshake over an existing TCP connection; no hello yet.
    pub async fn raw_over(url: &str, stream: TcpStream) -> Self {
        let (ws, _) = tokio::time::timeout(
            WAIT,
            tokio_tungstenite::client_async(url, MaybeTlsStream::Plain(stream)),
        )
        .await
        .expect("handshake in time")
        .expect("handshake");
        Self { ws, welcome: None }
    }

    /// Send an open-mode `hello` with `name`; waits for nothing.
    pub async fn send_hello(&mut self, name: &str) {
        self.send(&ClientMsg::Hello {
            protocol: PROTOCOL_VERSION,
            name: Some(name.into()),
            token: None,
            resume: None,
        })
        .await;
    }

    /// Say hello (open mode) on a connection made with [`Client::raw_over`]; waits for the
    /// welcome.
    pub async fn hello(mut self, name: &str) -> Self {
        self.send_hello(name).await;
        let welcome = self.recv().await;
        assert!(
            matches!(welcome, ServerMsg::Welcome { .. }),
            "expected welcome, got {welcome:?}"
        );
        self.welcome = Some(welcome);
        self
    }

    /// The close frame the server ends with (messages before it skipped); `None` if the
    /// connection ends without one or stays open past [`WAIT`].
    pub async fn close_frame(&mut self) -> Option<(u16, String)> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            match tokio::time::timeout_at(deadline, self.ws.next()).await {
                Ok(Some(Ok(Message::Close(Some(frame))))) => {
                    return Some((u16::from(frame.code), frame.reason.to_string()));
                }
                Err(_) | Ok(None) | Ok(Some(Err(_))) | Ok(Some(Ok(Message::Close(None)))) => {
                    return None;
                }
                Ok(Some(Ok(_))) => {}
            }
        }
    }
}

/// The `cromulent-server` binary run as a child process (for what an in-process server
/// cannot play, such as `kill -9`): started with `--config` and `--listen 127.0.0.1:0`, its
/// address read from its "listening on" log line; killed on drop.
pub struct ServerProcess {
    pub addr: SocketAddr,
    child: crate::process::KillOnDrop,
}

impl ServerProcess {
    /// Start `binary` (a test's `env!("CARGO_BIN_EXE_cromulent-server")`) with the TOML
    /// file `config`; panics when it does not say where it listens within ten seconds.
    pub fn start(binary: &std::path::Path, config: &std::path::Path) -> Self {
        use std::io::BufRead;
        let mut cmd = std::process::Command::new(binary);
        cmd.arg("--config")
            .arg(config)
            .args(["--listen", "127.0.0.1:0"])
            .env("RUST_LOG", "info")
            .env("CROMULENT_CHAT_DB", ":memory:")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null());
        let mut child = crate::process::KillOnDrop::spawn(&mut cmd, "cromulent-server");
        let stdout = child.stdout.take().expect("stdout is piped");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            // Reads to the end, so the child never blocks on a full pipe.
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                if let Some(addr) = line
                    .split("listening on ")
                    .nth(1)
                    .and_then(|rest| rest.split_whitespace().next())
                    .and_then(|a| a.parse::<SocketAddr>().ok())
                {
                    let _ = tx.send(addr);
                }
            }
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("cromulent-server logs the address it listens on");
        Self { addr, child }
    }

    pub fn url(&self) -> String {
        format!("ws://{}", self.addr)
    }

    /// SIGKILL: no goodbye to clients, Redis or anyone.
    pub fn kill(&mut self) {
        self.child.kill();
    }

    /// SIGTERM, then wait (at most ten seconds) for the exit; its status, or `None` if it is
    /// still running.
    pub fn terminate(&mut self) -> Option<std::process::ExitStatus> {
        crate::process::signal(self.child.id(), "-TERM");
        crate::process::wait_exit(&mut self.child, Duration::from_secs(10))
    }
}
