//! A real coturn (`turnserver` from Debian's `coturn` package) for tests: foreground, loopback
//! only, on free ports (never a fixed 3478), shared-secret (`use-auth-secret`) auth, and
//! killed — by child handle and by pidfile — with its temp dir removed when dropped.
//!
//! ```ignore
//! let turn = Coturn::builder().max_allocate_lifetime(5).start();
//! let relayed = coturn::allocate(turn.addr(), &username, &password).await?;
//! ```
//!
//! A machine without `turnserver` fails the test with a message saying what to install; it
//! never passes silently. Extra command-line options (short lifetimes for refresh tests, ...)
//! go through [`CoturnBuilder::arg`]. The server is started only with `--allow-loopback-peers`
//! because every peer in these tests is on 127.0.0.1: never copy that flag to production.

use std::fs::{self, File};
use std::io::ErrorKind;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, UdpSocket};
use std::ops::{Range, RangeInclusive};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

const BINARY: &str = "turnserver";
pub const REALM: &str = "test.local";
/// coturn is ready in ~300 ms on the development machine; leave room for a loaded CI runner.
const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// A fresh set of ports is tried this many times (a port may be taken between check and use).
const START_ATTEMPTS: usize = 3;
/// Below Linux's default ephemeral range (32768–60999), so sockets bound to port 0 — by these
/// tests or by anyone else — do not land on coturn's ports.
const PORT_POOL: Range<u16> = 20_000..32_000;
/// Bound on one whole allocation attempt in [`allocate`].
pub const ALLOCATE_TIMEOUT: Duration = Duration::from_secs(5);

/// Options for a test coturn; [`CoturnBuilder::start`] runs it.
#[derive(Debug, Clone)]
pub struct CoturnBuilder {
    secret: String,
    relay_ports: u16,
    extra_args: Vec<String>,
}

/// A running coturn. Dropping it kills the process and removes its directory.
#[derive(Debug)]
pub struct Coturn {
    child: Child,
    dir: PathBuf,
    port: u16,
    relay_ports: RangeInclusive<u16>,
    secret: String,
}

impl Default for CoturnBuilder {
    fn default() -> Self {
        Self {
            secret: format!("test-secret-{:016x}", rand::random::<u64>()),
            relay_ports: 64,
            extra_args: Vec::new(),
        }
    }
}

impl CoturnBuilder {
    /// The `static-auth-secret`; random unless set.
    pub fn secret(mut self, secret: impl Into<String>) -> Self {
        self.secret = secret.into();
        self
    }

    /// How many relay ports coturn may use. Each allocation holds one, and coturn 4.6.1 frees
    /// it a second or two after the allocation is released, not at once.
    pub fn relay_ports(mut self, count: u16) -> Self {
        self.relay_ports = count.max(2);
        self
    }

    /// One more command-line option, e.g. `"--stale-nonce=5"`.
    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.extra_args.push(arg.into());
        self
    }

    pub fn max_allocate_lifetime(self, secs: u32) -> Self {
        self.arg(format!("--max-allocate-lifetime={secs}"))
    }

    pub fn permission_lifetime(self, secs: u32) -> Self {
        self.arg(format!("--permission-lifetime={secs}"))
    }

    pub fn channel_lifetime(self, secs: u32) -> Self {
        self.arg(format!("--channel-lifetime={secs}"))
    }

    /// Start coturn and wait until it answers STUN on its own port. Blocks (up to ~30 s in the
    /// worst case); from async code use [`CoturnBuilder::start_async`]. Panics, with coturn's
    /// log, when it cannot be started: this is test code.
    pub fn start(self) -> Coturn {
        let binary = find_binary().unwrap_or_else(|| {
            panic!(
                "`{BINARY}` is not on PATH: the TURN tests need a real coturn. \
                 Install it with `apt-get install coturn` (CI does)."
            )
        });
        let mut failures = Vec::new();
        for _ in 0..START_ATTEMPTS {
            match self.try_start(&binary) {
                Ok(coturn) => return coturn,
                Err(why) => failures.push(why),
            }
        }
        panic!(
            "coturn did not start in {START_ATTEMPTS} attempts:\n{}",
            failures.join("\n---\n")
        );
    }

    /// [`CoturnBuilder::start`] on a blocking thread, for use inside a tokio runtime.
    pub async fn start_async(self) -> Coturn {
        match tokio::task::spawn_blocking(move || self.start()).await {
            Ok(coturn) => coturn,
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    }

    fn try_start(&self, binary: &Path) -> Result<Coturn, String> {
        let port = free_listening_port().ok_or("no free listening port found")?;
        let relay_ports =
            free_relay_range(self.relay_ports, port).ok_or("no free relay port range found")?;
        let dir = make_temp_dir().map_err(|e| format!("cannot make a temp dir: {e}"))?;
        let child = match self.spawn(binary, &dir, port, &relay_ports) {
            Ok(child) => child,
            Err(e) => {
                let _ = fs::remove_dir_all(&dir);
                return Err(format!("cannot run {}: {e}", binary.display()));
            }
        };
        let mut coturn = Coturn {
            child,
            dir,
            port,
            relay_ports,
            secret: self.secret.clone(),
        };
        // On failure `coturn` is dropped here, which kills the process and cleans up.
        coturn.wait_ready()?;
        Ok(coturn)
    }

    fn spawn(
        &self,
        binary: &Path,
        dir: &Path,
        port: u16,
        relay: &RangeInclusive<u16>,
    ) -> std::io::Result<Child> {
        let log = File::create(dir.join("log"))?;
        Command::new(binary)
            .args(base_args(dir, port, relay, &self.secret))
            .args(&self.extra_args)
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
    }
}

fn base_args(dir: &Path, port: u16, relay: &RangeInclusive<u16>, secret: &str) -> Vec<String> {
    let path = |name: &str| dir.join(name).display().to_string();
    vec![
        "-n".into(), // no config file: everything is on this command line
        "--listening-ip=127.0.0.1".into(),
        "--relay-ip=127.0.0.1".into(),
        format!("--listening-port={port}"),
        format!("--min-port={}", relay.start()),
        format!("--max-port={}", relay.end()),
        "--use-auth-secret".into(),
        format!("--static-auth-secret={secret}"),
        format!("--realm={REALM}"),
        "--fingerprint".into(),
        "--no-tls".into(),
        "--no-dtls".into(),
        "--no-cli".into(),
        "--allow-loopback-peers".into(),
        "--no-multicast-peers".into(),
        format!("--pidfile={}", path("pid")),
        format!("--userdb={}", path("turndb")),
        "--log-file=stdout".into(),
        "--simple-log".into(),
    ]
}

impl Coturn {
    pub fn builder() -> CoturnBuilder {
        CoturnBuilder::default()
    }

    /// A coturn with default options and this secret.
    pub fn start(secret: &str) -> Coturn {
        Self::builder().secret(secret).start()
    }

    /// Where it listens (UDP, and TCP on the same port).
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.port))
    }

    /// `turn:127.0.0.1:PORT` (UDP).
    pub fn turn_url(&self) -> String {
        format!("turn:{}", self.addr())
    }

    /// `stun:127.0.0.1:PORT`.
    pub fn stun_url(&self) -> String {
        format!("stun:{}", self.addr())
    }

    pub fn secret(&self) -> &str {
        &self.secret
    }

    pub fn realm(&self) -> &str {
        REALM
    }

    /// The ports coturn relays from.
    pub fn relay_ports(&self) -> RangeInclusive<u16> {
        self.relay_ports.clone()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its private directory (pidfile, user db, log); removed on drop.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Everything coturn has logged so far.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.join("log")).unwrap_or_default()
    }

    /// Ready = coturn is alive, the UDP port is bound by this very process (coturn keeps
    /// running, retrying, when its port is taken — and the taker might answer STUN), and it
    /// answers a STUN binding request.
    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + READY_TIMEOUT;
        let probe = StunProbe::new().map_err(|e| format!("cannot make a probe socket: {e}"))?;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("coturn exited ({status}):\n{}", self.log()));
            }
            if self.owns_udp_port() && probe.answered_by(self.addr()) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "coturn not ready on {} within {READY_TIMEOUT:?}:\n{}",
                    self.addr(),
                    self.log()
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn owns_udp_port(&self) -> bool {
        let inodes = udp_socket_inodes(self.port);
        !inodes.is_empty() && process_holds_any_socket(self.pid(), &inodes)
    }

    /// The pid in coturn's pidfile, if it names a live `turnserver` other than our child
    /// (coturn runs in the foreground, so normally it is the child itself).
    fn stray_pid(&self) -> Option<u32> {
        let pid: u32 = fs::read_to_string(self.dir.join("pid"))
            .ok()?
            .trim()
            .parse()
            .ok()?;
        let cmdline = fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        let is_turnserver = String::from_utf8_lossy(&cmdline).contains(BINARY);
        (pid != self.pid() && is_turnserver).then_some(pid)
    }
}

impl Drop for Coturn {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- coturn log ({}) ---\n{}", self.addr(), self.log());
        }
        let stray = self.stray_pid();
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(pid) = stray {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// One TURN allocation with these credentials against `server`, over UDP from 127.0.0.1,
/// using the `turn` crate's client (the one webrtc-rs uses). `Ok` is the relayed address; the
/// allocation is released before returning. `Err` holds the reason (e.g. `... 401:
/// Unauthorized`). Bounded by [`ALLOCATE_TIMEOUT`].
pub async fn allocate(
    server: SocketAddr,
    username: &str,
    password: &str,
) -> Result<SocketAddr, String> {
    use turn::client::{Client, ClientConfig};
    use webrtc_util::Conn;

    let socket = tokio::net::UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .map_err(|e| format!("bind: {e}"))?;
    let client = Client::new(ClientConfig {
        stun_serv_addr: String::new(),
        turn_serv_addr: server.to_string(),
        username: username.to_owned(),
        password: password.to_owned(),
        realm: String::new(), // learnt from the server's first 401
        software: String::new(),
        rto_in_ms: 0, // the crate's default
        conn: Arc::new(socket),
        vnet: None,
    })
    .await
    .map_err(|e| format!("client: {e}"))?;
    client.listen().await.map_err(|e| format!("listen: {e}"))?;

    let outcome = match tokio::time::timeout(ALLOCATE_TIMEOUT, client.allocate()).await {
        Err(_) => Err(format!("no allocation answer within {ALLOCATE_TIMEOUT:?}")),
        Ok(Err(e)) => Err(format!("allocate refused: {e}")),
        Ok(Ok(relay)) => {
            let relayed = relay.local_addr().map_err(|e| format!("relayed addr: {e}"));
            let _ = tokio::time::timeout(ALLOCATE_TIMEOUT, relay.close()).await;
            relayed
        }
    };
    let _ = tokio::time::timeout(ALLOCATE_TIMEOUT, client.close()).await;
    outcome
}

fn find_binary() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(BINARY))
        .find(|candidate| candidate.is_file())
}

fn make_temp_dir() -> std::io::Result<PathBuf> {
    loop {
        let dir = std::env::temp_dir().join(format!(
            "cromulent-coturn-{}-{:016x}",
            std::process::id(),
            rand::random::<u64>()
        ));
        match fs::create_dir(&dir) {
            Err(e) if e.kind() == ErrorKind::AlreadyExists => continue,
            other => return other.map(|()| dir),
        }
    }
}

fn random_port() -> u16 {
    rand::random_range(PORT_POOL)
}

fn udp_free(port: u16) -> bool {
    UdpSocket::bind((Ipv4Addr::LOCALHOST, port)).is_ok()
}

fn tcp_free(port: u16) -> bool {
    TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok()
}

/// A port free for both UDP and TCP (coturn listens on both).
fn free_listening_port() -> Option<u16> {
    (0..200)
        .map(|_| random_port())
        .find(|&port| udp_free(port) && tcp_free(port))
}

/// `count` consecutive UDP-free ports, not including `avoid`.
fn free_relay_range(count: u16, avoid: u16) -> Option<RangeInclusive<u16>> {
    (0..200).map(|_| random_port()).find_map(|start| {
        let end = start.checked_add(count - 1)?;
        let range = start..=end;
        let usable = end < PORT_POOL.end && !range.contains(&avoid) && range.clone().all(udp_free);
        usable.then_some(range)
    })
}

/// Inodes of the UDP sockets bound to 127.0.0.1:`port` (from /proc/net/udp).
fn udp_socket_inodes(port: u16) -> Vec<String> {
    let local = format!("0100007F:{port:04X}");
    let table = fs::read_to_string("/proc/net/udp").unwrap_or_default();
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            (fields.get(1) == Some(&local.as_str()))
                .then(|| fields.get(9).map(|s| s.to_string()))
                .flatten()
        })
        .collect()
}

fn process_holds_any_socket(pid: u32, inodes: &[String]) -> bool {
    let Ok(fds) = fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    fds.filter_map(Result::ok)
        .filter_map(|fd| fs::read_link(fd.path()).ok())
        .any(|target| {
            let target = target.display().to_string();
            inodes
                .iter()
                .any(|inode| target == format!("socket:[{inode}]"))
        })
}

/// A STUN Binding request sender (RFC 8489 §5–6), enough to see that a server answers.
struct StunProbe {
    socket: UdpSocket,
}

impl StunProbe {
    const MAGIC_COOKIE: [u8; 4] = [0x21, 0x12, 0xA4, 0x42];

    fn new() -> std::io::Result<Self> {
        let socket = UdpSocket::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0))?;
        socket.set_read_timeout(Some(Duration::from_millis(200)))?;
        Ok(Self { socket })
    }

    /// Sends one Binding request; true when a Binding success with our transaction id comes
    /// back within the read timeout.
    fn answered_by(&self, server: SocketAddr) -> bool {
        let transaction: [u8; 12] = rand::random();
        let mut request = vec![0x00, 0x01, 0x00, 0x00]; // Binding request, no attributes
        request.extend_from_slice(&Self::MAGIC_COOKIE);
        request.extend_from_slice(&transaction);
        if self.socket.send_to(&request, server).is_err() {
            return false;
        }
        let mut buf = [0u8; 1500];
        while let Ok((n, from)) = self.socket.recv_from(&mut buf) {
            let answer = &buf[..n];
            if from == server
                && n >= 20
                && answer[..2] == [0x01, 0x01]
                && answer[4..8] == Self::MAGIC_COOKIE
                && answer[8..20] == transaction
            {
                return true;
            }
        }
        false
    }
}
