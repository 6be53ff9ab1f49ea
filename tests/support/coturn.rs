//! A real coturn (`turnserver` from Debian's `coturn` package) for the end-to-end tests,
//! adapted from `server/tests/support/coturn.rs`: foreground, never on a fixed port of the
//! shared machine, shared-secret (`use-auth-secret`) auth, killed — by child handle and by
//! pidfile — with its temp dir removed when dropped.
//!
//! Three ways to run it:
//! - **loopback** (default): on 127.0.0.1 with free ports, configured on the command line only
//!   (`-n`), with `--allow-loopback-peers` because every peer is on 127.0.0.1 — never copy that
//!   flag to production;
//! - **rendered config** ([`CoturnBuilder::rendered_config`]): the config file the deployment
//!   ships, rendered by the test for the ports the harness picked; the harness then adds only
//!   `--listening-ip`/`--relay-ip` 127.0.0.1 and test-local pidfile/userdb paths, and the test
//!   names any further allowance with [`CoturnBuilder::arg`];
//! - **in a network namespace** ([`CoturnBuilder::netns`]): on an address inside a namespace
//!   the test made (`ip netns exec`), on the standard ports (the namespace is the test's own).
//!
//! A machine without `turnserver` fails the test with a message saying what to install; it
//! never passes silently.
#![allow(dead_code)]

use std::fs::{self, File};
use std::io::ErrorKind;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, UdpSocket};
use std::ops::{Range, RangeInclusive};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use webrtc::turn::client::{Client, ClientConfig};
use webrtc::util::Conn;

const BINARY: &str = "turnserver";
pub const REALM: &str = "test.local";
/// coturn is ready in ~300 ms on the development machine; leave room for a loaded CI runner.
const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// A fresh set of ports is tried this many times (a port may be taken between check and use).
const START_ATTEMPTS: usize = 3;
/// Below Linux's default ephemeral range (32768–60999), so sockets bound to port 0 — by these
/// tests or by anyone else — do not land on coturn's ports.
const PORT_POOL: Range<u16> = 20_000..32_000;
/// In a namespace of the test's own nothing else listens: the standard ports are free.
const NETNS_PORT: u16 = 3478;
const NETNS_RELAY_START: u16 = 49_152;
/// Bound on one TURN transaction sequence (allocate, create permission) in [`Allocation`].
pub const ALLOCATE_TIMEOUT: Duration = Duration::from_secs(5);

/// The ports one coturn uses: where it listens (UDP and TCP) and where it relays from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ports {
    pub listening: u16,
    pub relay: RangeInclusive<u16>,
}

/// Renders a config file for the given ports and directory; returns its path or why not.
type RenderConfig = Arc<dyn Fn(&Ports, &Path) -> Result<PathBuf, String> + Send + Sync>;

/// Options for a test coturn; [`CoturnBuilder::start`] runs it.
#[derive(Clone)]
pub struct CoturnBuilder {
    secret: String,
    relay_ports: u16,
    extra_args: Vec<String>,
    ip: Ipv4Addr,
    netns: Option<String>,
    config: Option<RenderConfig>,
}

/// A running coturn. Dropping it kills the process and removes its directory.
#[derive(Debug)]
pub struct Coturn {
    child: Child,
    dir: PathBuf,
    ip: Ipv4Addr,
    ports: Ports,
    secret: String,
    netns: Option<String>,
}

impl Default for CoturnBuilder {
    fn default() -> Self {
        Self {
            secret: format!("test-secret-{:016x}", rand::random::<u64>()),
            relay_ports: 64,
            extra_args: Vec::new(),
            ip: Ipv4Addr::LOCALHOST,
            netns: None,
            config: None,
        }
    }
}

impl CoturnBuilder {
    /// The `static-auth-secret`; random unless set. With [`CoturnBuilder::rendered_config`]
    /// the config file holds the secret: set the same one here so [`Coturn::secret`] is true.
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

    /// Run inside network namespace `name` (made by the test), listening and relaying on
    /// `ip`, an address of that namespace. Needs root, like the namespace itself.
    pub fn netns(mut self, name: impl Into<String>, ip: Ipv4Addr) -> Self {
        self.netns = Some(name.into());
        self.ip = ip;
        self
    }

    /// Configure coturn from a file (`-c`) instead of the command line: `render` writes it,
    /// into the given directory, for the ports the harness picked. The harness adds only
    /// `--listening-ip`/`--relay-ip` (this harness's address), `--pidfile` and `--userdb` (in
    /// its temp dir) and the [`CoturnBuilder::arg`]s: everything else comes from the file.
    pub fn rendered_config(
        mut self,
        render: impl Fn(&Ports, &Path) -> Result<PathBuf, String> + Send + Sync + 'static,
    ) -> Self {
        self.config = Some(Arc::new(render));
        self
    }

    /// Start coturn and wait until it answers STUN on its own port. Blocks (up to ~30 s in the
    /// worst case); from async code use [`CoturnBuilder::start_async`]. Panics, with coturn's
    /// log, when it cannot be started: this is test code.
    pub fn start(self) -> Coturn {
        let binary = find_binary(BINARY).unwrap_or_else(|| {
            panic!(
                "`{BINARY}` is not on PATH: the TURN tests need a real coturn. \
                 Install it with `apt-get install coturn` (scripts/setup does)."
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

    fn pick_ports(&self) -> Result<Ports, String> {
        if self.netns.is_some() {
            return Ok(Ports {
                listening: NETNS_PORT,
                relay: NETNS_RELAY_START..=NETNS_RELAY_START + (self.relay_ports - 1),
            });
        }
        let listening = free_listening_port().ok_or("no free listening port found")?;
        let relay = free_relay_range(self.relay_ports, listening)
            .ok_or("no free relay port range found")?;
        Ok(Ports { listening, relay })
    }

    fn try_start(&self, binary: &Path) -> Result<Coturn, String> {
        let ports = self.pick_ports()?;
        let dir = make_temp_dir().map_err(|e| format!("cannot make a temp dir: {e}"))?;
        let args = match self.args(&dir, &ports) {
            Ok(args) => args,
            Err(e) => {
                let _ = fs::remove_dir_all(&dir);
                return Err(e);
            }
        };
        let child = match self.spawn(binary, &dir, &args) {
            Ok(child) => child,
            Err(e) => {
                let _ = fs::remove_dir_all(&dir);
                return Err(format!("cannot run {}: {e}", binary.display()));
            }
        };
        let mut coturn = Coturn {
            child,
            dir,
            ip: self.ip,
            ports,
            secret: self.secret.clone(),
            netns: self.netns.clone(),
        };
        // On failure `coturn` is dropped here, which kills the process and cleans up.
        coturn.wait_ready()?;
        Ok(coturn)
    }

    /// The whole command line after the binary.
    fn args(&self, dir: &Path, ports: &Ports) -> Result<Vec<String>, String> {
        let mut args = match &self.config {
            None => command_line_config(dir, self.ip, ports, &self.secret),
            Some(render) => {
                let file = render(ports, dir)?;
                rendered_config_args(dir, self.ip, &file)
            }
        };
        args.extend(self.extra_args.iter().cloned());
        Ok(args)
    }

    fn spawn(&self, binary: &Path, dir: &Path, args: &[String]) -> std::io::Result<Child> {
        let log = File::create(dir.join("log"))?;
        let mut cmd = match &self.netns {
            // `ip netns exec` execs the program itself: the child's pid is coturn's.
            Some(ns) => {
                let mut cmd = Command::new("ip");
                cmd.args(["netns", "exec", ns]).arg(binary);
                cmd
            }
            None => Command::new(binary),
        };
        cmd.args(args)
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
    }
}

/// Everything on the command line (`-n`: no config file is read).
fn command_line_config(dir: &Path, ip: Ipv4Addr, ports: &Ports, secret: &str) -> Vec<String> {
    let mut args = vec![
        "-n".into(),
        format!("--listening-port={}", ports.listening),
        format!("--min-port={}", ports.relay.start()),
        format!("--max-port={}", ports.relay.end()),
        "--use-auth-secret".into(),
        format!("--static-auth-secret={secret}"),
        format!("--realm={REALM}"),
        "--fingerprint".into(),
        "--no-tls".into(),
        "--no-dtls".into(),
        "--no-cli".into(),
        "--no-multicast-peers".into(),
        "--log-file=stdout".into(),
        "--simple-log".into(),
    ];
    if ip.is_loopback() {
        args.push("--allow-loopback-peers".into());
    }
    args.extend(local_args(dir, ip));
    args
}

/// A rendered config file plus what a test on one machine needs on top of it.
fn rendered_config_args(dir: &Path, ip: Ipv4Addr, file: &Path) -> Vec<String> {
    let mut args = vec!["-c".into(), file.display().to_string()];
    args.extend(local_args(dir, ip));
    args
}

/// This harness's address and files: listen and relay on `ip` only (not every interface of a
/// shared machine), pidfile and user db in the temp dir.
fn local_args(dir: &Path, ip: Ipv4Addr) -> Vec<String> {
    let path = |name: &str| dir.join(name).display().to_string();
    vec![
        format!("--listening-ip={ip}"),
        format!("--relay-ip={ip}"),
        format!("--pidfile={}", path("pid")),
        format!("--userdb={}", path("turndb")),
    ]
}

impl Coturn {
    pub fn builder() -> CoturnBuilder {
        CoturnBuilder::default()
    }

    /// A loopback coturn with default options and this secret.
    pub fn start(secret: &str) -> Coturn {
        Self::builder().secret(secret).start()
    }

    /// Where it listens (UDP, and TCP on the same port).
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from((self.ip, self.ports.listening))
    }

    /// `turn:IP:PORT` (UDP).
    pub fn turn_url(&self) -> String {
        format!("turn:{}", self.addr())
    }

    /// `stun:IP:PORT`.
    pub fn stun_url(&self) -> String {
        format!("stun:{}", self.addr())
    }

    pub fn secret(&self) -> &str {
        &self.secret
    }

    /// The ports coturn relays from.
    pub fn relay_ports(&self) -> RangeInclusive<u16> {
        self.ports.relay.clone()
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
            if self.owns_udp_port() && self.answers_stun(&probe) {
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

    fn answers_stun(&self, probe: &StunProbe) -> bool {
        match &self.netns {
            None => probe.answered_by(self.addr()),
            Some(ns) => stun_answers_in_netns(ns, self.addr()),
        }
    }

    /// Reads the socket table of coturn's own network namespace (`/proc/PID/net/udp`).
    fn owns_udp_port(&self) -> bool {
        let inodes = udp_socket_inodes(self.pid(), self.addr());
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

/// One TURN allocation over UDP from 127.0.0.1, made with the `turn` crate's client (the one
/// webrtc-rs uses). Every step is bounded by [`ALLOCATE_TIMEOUT`]; errors are reasons
/// (e.g. `... 401: Unauthorized`).
pub struct Allocation {
    client: Client,
    relay: Box<dyn Conn + Send + Sync>,
    relayed: SocketAddr,
}

impl Allocation {
    /// Allocate on `server` with these credentials.
    pub async fn new(server: SocketAddr, username: &str, password: &str) -> Result<Self, String> {
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
        let relay = match tokio::time::timeout(ALLOCATE_TIMEOUT, client.allocate()).await {
            Err(_) => Err(format!("no allocation answer within {ALLOCATE_TIMEOUT:?}")),
            Ok(Err(e)) => Err(format!("allocate refused: {e}")),
            Ok(Ok(relay)) => Ok(relay),
        };
        let relay = match relay {
            Ok(relay) => relay,
            Err(e) => {
                let _ = tokio::time::timeout(ALLOCATE_TIMEOUT, client.close()).await;
                return Err(e);
            }
        };
        let relayed = relay
            .local_addr()
            .map_err(|e| format!("relayed addr: {e}"))?;
        Ok(Self {
            client,
            relay: Box::new(relay),
            relayed,
        })
    }

    /// The relayed transport address coturn gave us.
    pub fn relayed_addr(&self) -> SocketAddr {
        self.relayed
    }

    /// Send `data` to `peer` through the relay. The first send to a peer's IP makes a
    /// CreatePermission request; coturn answers `403 Forbidden` for a denied peer, and
    /// nothing is sent to it.
    pub async fn send_to(&self, data: &[u8], peer: SocketAddr) -> Result<(), String> {
        match tokio::time::timeout(ALLOCATE_TIMEOUT, self.relay.send_to(data, peer)).await {
            Err(_) => Err(format!("no answer within {ALLOCATE_TIMEOUT:?}")),
            Ok(Err(e)) => Err(e.to_string()),
            Ok(Ok(_)) => Ok(()),
        }
    }

    /// Release the allocation and stop the client.
    pub async fn close(self) {
        let _ = tokio::time::timeout(ALLOCATE_TIMEOUT, self.relay.close()).await;
        let _ = tokio::time::timeout(ALLOCATE_TIMEOUT, self.client.close()).await;
    }
}

/// One allocation with these credentials against `server`: `Ok` is the relayed address (the
/// allocation is released before returning), `Err` the reason it was refused.
pub async fn allocate(
    server: SocketAddr,
    username: &str,
    password: &str,
) -> Result<SocketAddr, String> {
    let allocation = Allocation::new(server, username, password).await?;
    let relayed = allocation.relayed_addr();
    allocation.close().await;
    Ok(relayed)
}

pub fn find_binary(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
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

/// `/proc/net`'s spelling of an IPv4 socket address: the address as a little-endian hex word.
pub fn proc_net_addr(addr: SocketAddr) -> String {
    let ip = match addr.ip() {
        std::net::IpAddr::V4(ip) => u32::from_le_bytes(ip.octets()),
        std::net::IpAddr::V6(_) => unreachable!("the harness only uses IPv4"),
    };
    format!("{ip:08X}:{:04X}", addr.port())
}

/// Inodes of the UDP sockets bound to `addr` in `pid`'s network namespace.
fn udp_socket_inodes(pid: u32, addr: SocketAddr) -> Vec<String> {
    let local = proc_net_addr(addr);
    let table = fs::read_to_string(format!("/proc/{pid}/net/udp")).unwrap_or_default();
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

/// A STUN binding from inside namespace `ns` (the test process itself lives outside it), with
/// coturn's own client; `timeout` because it waits forever on a port nobody answers.
fn stun_answers_in_netns(ns: &str, server: SocketAddr) -> bool {
    Command::new("timeout")
        .args(["1", "ip", "netns", "exec", ns, "turnutils_stunclient", "-p"])
        .arg(server.port().to_string())
        .arg(server.ip().to_string())
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).contains("reflexive addr"))
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
