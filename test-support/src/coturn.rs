//! A real coturn (`turnserver` from Debian's `coturn` package): foreground, never on a fixed
//! port of the shared machine, shared-secret (`use-auth-secret`) auth, killed — by child
//! handle and by pidfile — with its temp dir removed when dropped.
//!
//! ```text
//! let turn = Coturn::builder().max_allocate_lifetime(5).start_async().await;
//! let relayed = coturn::allocate(turn.addr(), &username, &password).await?;
//! ```
//!
//! Three ways to run it:
//! - **loopback** (default): on 127.0.0.1 with free ports, configured on the command line only
//!   (`-n`), with `--allow-loopback-peers` because every peer is on 127.0.0.1 — never copy that
//!   flag to production;
//! - **rendered config** ([`CoturnBuilder::rendered_config`]): the config file the deployment
//!   ships, rendered by the test for the ports the harness picked; the harness then adds only
//!   `--listening-ip`/`--relay-ip` and test-local pidfile/userdb paths, and the test names any
//!   further allowance with [`CoturnBuilder::arg`];
//! - **in a network namespace** ([`CoturnBuilder::netns`]): on an address inside a namespace
//!   the test made (`ip netns exec`), on the standard ports (the namespace is the test's own).
//!
//! A machine without `turnserver` fails the test ([`CoturnBuilder::start`] panics,
//! [`CoturnBuilder::try_start`] says so): it never passes silently.

mod allocation;
mod ports;
mod ready;

use std::fs::{self, File};
use std::net::{Ipv4Addr, SocketAddr};
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

pub use allocation::{ALLOCATE_TIMEOUT, Allocation, TurnError, allocate};

use crate::process::{TempDir, find_binary, signal};

const BINARY: &str = "turnserver";
/// The realm unless [`CoturnBuilder::realm`] sets another.
pub const REALM: &str = "test.local";
/// coturn is ready in ~300 ms on the development machine; leave room for a loaded CI runner.
const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// A fresh set of ports is tried this many times (a port may be taken between check and use).
const START_ATTEMPTS: usize = 3;

/// The ports one coturn uses: where it listens (UDP and TCP) and where it relays from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ports {
    pub listening: u16,
    pub relay: RangeInclusive<u16>,
}

/// Why a coturn could not be started.
#[derive(Debug, thiserror::Error)]
pub enum CoturnError {
    #[error(
        "`{BINARY}` is not on PATH: the TURN tests need a real coturn. \
         Install it with `apt-get install coturn` (scripts/setup does)."
    )]
    NotInstalled,
    /// Every attempt failed; each reason carries coturn's log where it ran.
    #[error("coturn did not start in {START_ATTEMPTS} attempts:\n{}", .0.join("\n---\n"))]
    DidNotStart(Vec<String>),
}

/// Renders a config file for the given ports and directory; returns its path or why not.
type RenderConfig = Arc<dyn Fn(&Ports, &Path) -> Result<PathBuf, String> + Send + Sync>;

/// Options for a test coturn; [`CoturnBuilder::start`] runs it.
#[derive(Clone)]
pub struct CoturnBuilder {
    secret: String,
    realm: String,
    relay_ports: u16,
    extra_args: Vec<String>,
    ip: Ipv4Addr,
    netns: Option<String>,
    config: Option<RenderConfig>,
    tls: Option<Tls>,
}

/// coturn's own TLS listener: certificate and key (PEM files) and the port.
#[derive(Debug, Clone)]
pub struct Tls {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub port: u16,
}

impl Tls {
    /// A self-signed certificate for `ip` (an IP address SAN: tests have no DNS), written to
    /// `dir` as `turn-cert.pem` and `turn-key.pem`, for a listener on `port`. Clients trust it
    /// as a private CA: `SSL_CERT_FILE` set to [`Tls::cert`].
    pub fn self_signed(dir: &Path, ip: std::net::IpAddr, port: u16) -> Self {
        let key = rcgen::KeyPair::generate().expect("a key pair");
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        params.subject_alt_names.push(rcgen::SanType::IpAddress(ip));
        let cert = params.self_signed(&key).expect("a self-signed certificate");
        let (cert_path, key_path) = (dir.join("turn-cert.pem"), dir.join("turn-key.pem"));
        fs::write(&cert_path, cert.pem()).expect("write the certificate");
        fs::write(&key_path, key.serialize_pem()).expect("write the key");
        Self {
            cert: cert_path,
            key: key_path,
            port,
        }
    }
}

/// A running coturn. Dropping it kills the process and removes its directory.
#[derive(Debug)]
pub struct Coturn {
    child: Child,
    ip: Ipv4Addr,
    ports: Ports,
    secret: String,
    realm: String,
    netns: Option<String>,
    tls_port: Option<u16>,
    /// Last field: removed after `Drop::drop` has killed the process that writes into it.
    dir: TempDir,
}

impl Default for CoturnBuilder {
    fn default() -> Self {
        Self {
            secret: format!("test-secret-{:016x}", rand::random::<u64>()),
            realm: REALM.to_owned(),
            relay_ports: 64,
            extra_args: Vec::new(),
            ip: Ipv4Addr::LOCALHOST,
            netns: None,
            config: None,
            tls: None,
        }
    }
}

impl CoturnBuilder {
    /// Also listen for TURN over TLS (`turns:`), with this certificate, on `tls.port` (only
    /// with the command-line config; inside a namespace any port, 443 too, is the test's own).
    pub fn tls(mut self, tls: Tls) -> Self {
        self.tls = Some(tls);
        self
    }

    /// The `static-auth-secret`; random unless set. With [`CoturnBuilder::rendered_config`]
    /// the config file holds the secret: set the same one here so [`Coturn::secret`] is true.
    pub fn secret(mut self, secret: impl Into<String>) -> Self {
        self.secret = secret.into();
        self
    }

    /// The realm (`--realm`); [`REALM`] unless set. A rendered config names its own.
    pub fn realm(mut self, realm: impl Into<String>) -> Self {
        self.realm = realm.into();
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
    /// log, when it cannot be started: for tests.
    pub fn start(self) -> Coturn {
        self.try_start().unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`CoturnBuilder::start`] on a blocking thread, for use inside a tokio runtime.
    pub async fn start_async(self) -> Coturn {
        match tokio::task::spawn_blocking(move || self.start()).await {
            Ok(coturn) => coturn,
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    }

    /// As [`CoturnBuilder::start`], with the reason as an error instead of a panic (for the
    /// benchmarks, which report it).
    pub fn try_start(self) -> Result<Coturn, CoturnError> {
        let binary = find_binary(BINARY).ok_or(CoturnError::NotInstalled)?;
        let mut failures = Vec::new();
        for _ in 0..START_ATTEMPTS {
            match self.try_start_once(&binary) {
                Ok(coturn) => return Ok(coturn),
                Err(why) => failures.push(why),
            }
        }
        Err(CoturnError::DidNotStart(failures))
    }

    fn pick_ports(&self) -> Result<Ports, String> {
        if self.netns.is_some() {
            return Ok(ports::in_own_namespace(self.relay_ports));
        }
        let listening = ports::free_listening_port().ok_or("no free listening port found")?;
        let relay = ports::free_relay_range(self.relay_ports, listening)
            .ok_or("no free relay port range found")?;
        Ok(Ports { listening, relay })
    }

    fn try_start_once(&self, binary: &Path) -> Result<Coturn, String> {
        let ports = self.pick_ports()?;
        // On an error below `dir` is dropped, which removes it.
        let dir = TempDir::try_new("coturn").map_err(|e| format!("cannot make a temp dir: {e}"))?;
        let args = self.args(dir.root(), &ports)?;
        let child = self
            .spawn(binary, dir.root(), &args)
            .map_err(|e| format!("cannot run {}: {e}", binary.display()))?;
        let mut coturn = Coturn {
            child,
            ip: self.ip,
            ports,
            secret: self.secret.clone(),
            realm: self.realm.clone(),
            netns: self.netns.clone(),
            tls_port: self.tls.as_ref().map(|t| t.port),
            dir,
        };
        // On failure `coturn` is dropped here, which kills the process and cleans up.
        coturn.wait_ready()?;
        Ok(coturn)
    }

    /// The whole command line after the binary.
    fn args(&self, dir: &Path, ports: &Ports) -> Result<Vec<String>, String> {
        let mut args = match &self.config {
            None => self.command_line_config(ports),
            Some(render) => {
                let file = render(ports, dir)?;
                vec!["-c".into(), file.display().to_string()]
            }
        };
        args.extend(local_args(dir, self.ip));
        args.extend(self.extra_args.iter().cloned());
        Ok(args)
    }

    /// Everything on the command line (`-n`: no config file is read).
    fn command_line_config(&self, ports: &Ports) -> Vec<String> {
        let mut args = vec![
            "-n".into(),
            format!("--listening-port={}", ports.listening),
            format!("--min-port={}", ports.relay.start()),
            format!("--max-port={}", ports.relay.end()),
            "--use-auth-secret".into(),
            format!("--static-auth-secret={}", self.secret),
            format!("--realm={}", self.realm),
            "--fingerprint".into(),
            "--no-dtls".into(),
            "--no-cli".into(),
            "--no-multicast-peers".into(),
            "--log-file=stdout".into(),
            "--simple-log".into(),
        ];
        match &self.tls {
            None => args.push("--no-tls".into()),
            Some(tls) => args.extend([
                format!("--tls-listening-port={}", tls.port),
                format!("--cert={}", tls.cert.display()),
                format!("--pkey={}", tls.key.display()),
            ]),
        }
        if self.ip.is_loopback() {
            args.push("--allow-loopback-peers".into());
        }
        args
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

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.ports.listening
    }

    /// `turn:IP:PORT` (UDP).
    pub fn turn_url(&self) -> String {
        format!("turn:{}", self.addr())
    }

    /// `turn:IP:PORT?transport=tcp`: TURN over TCP on the listening port.
    pub fn turn_tcp_url(&self) -> String {
        format!("turn:{}?transport=tcp", self.addr())
    }

    /// `turns:IP:PORT?transport=tcp` on the TLS port ([`CoturnBuilder::tls`]).
    pub fn turns_url(&self) -> Option<String> {
        self.tls_port
            .map(|port| format!("turns:{}:{port}?transport=tcp", self.ip))
    }

    /// `stun:IP:PORT`.
    pub fn stun_url(&self) -> String {
        format!("stun:{}", self.addr())
    }

    pub fn secret(&self) -> &str {
        &self.secret
    }

    /// The realm it was started with on the command line (a rendered config names its own).
    pub fn realm(&self) -> &str {
        &self.realm
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
        self.dir.root()
    }

    /// Everything coturn has logged so far.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path("log")).unwrap_or_default()
    }

    /// The pid in coturn's pidfile, if it names a live `turnserver` other than our child
    /// (coturn runs in the foreground, so normally it is the child itself).
    fn stray_pid(&self) -> Option<u32> {
        let pid: u32 = fs::read_to_string(self.dir.path("pid"))
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
            signal(pid, "-KILL");
        }
        // `dir` is removed when the fields drop, after this.
    }
}
