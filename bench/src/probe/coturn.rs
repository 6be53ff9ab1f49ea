//! A loopback coturn for relayed measurements: `turnserver` in the foreground on free ports,
//! shared-secret auth, ready once it answers a STUN binding request; killed and its directory
//! removed on drop. Flags as in `docs/`/FINDINGS (`--allow-loopback-peers` is for loopback
//! benchmarks only, never production).

use std::net::{Ipv4Addr, SocketAddr, TcpListener, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// Ports are picked below Linux's ephemeral range so port-0 sockets never land on them.
const POOL: std::ops::Range<u16> = 20_000..32_000;
const RELAY_PORTS: u16 = 32;

pub struct Coturn {
    child: Child,
    dir: PathBuf,
    pub port: u16,
    pub secret: String,
}

impl Coturn {
    pub fn start() -> anyhow::Result<Self> {
        let mut last = None;
        for _ in 0..3 {
            match Self::try_start() {
                Ok(c) => return Ok(c),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| anyhow::anyhow!("coturn did not start")))
    }

    fn try_start() -> anyhow::Result<Self> {
        let port = free_port(|p| udp_free(p) && tcp_free(p)).context("no free port")?;
        let relay_start = free_port(|p| {
            p + RELAY_PORTS < POOL.end
                && !(p..p + RELAY_PORTS).contains(&port)
                && (p..p + RELAY_PORTS).all(udp_free)
        })
        .context("no free relay range")?;
        let secret = format!("bench-{:016x}", rand::random::<u64>());
        let dir = std::env::temp_dir().join(format!(
            "cromulent-bench-turn-{}-{:08x}",
            std::process::id(),
            rand::random::<u32>()
        ));
        std::fs::create_dir_all(&dir)?;
        let log = std::fs::File::create(dir.join("log"))?;
        let child = Command::new("turnserver")
            .args([
                "-n".to_owned(),
                "--listening-ip=127.0.0.1".into(),
                "--relay-ip=127.0.0.1".into(),
                format!("--listening-port={port}"),
                format!("--min-port={relay_start}"),
                format!("--max-port={}", relay_start + RELAY_PORTS - 1),
                "--use-auth-secret".into(),
                format!("--static-auth-secret={secret}"),
                "--realm=bench.local".into(),
                "--fingerprint".into(),
                "--no-tls".into(),
                "--no-dtls".into(),
                "--no-cli".into(),
                "--allow-loopback-peers".into(),
                "--no-multicast-peers".into(),
                format!("--pidfile={}", dir.join("pid").display()),
                format!("--userdb={}", dir.join("turndb").display()),
                "--log-file=stdout".into(),
                "--simple-log".into(),
            ])
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("cannot run turnserver (apt-get install coturn)")?;
        let mut coturn = Self {
            child,
            dir,
            port,
            secret,
        };
        coturn.wait_ready()?;
        Ok(coturn)
    }

    pub fn turn_url(&self) -> String {
        format!("turn:127.0.0.1:{}", self.port)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    fn wait_ready(&mut self) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(10);
        let probe = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))?;
        probe.set_read_timeout(Some(Duration::from_millis(50)))?;
        let target = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port));
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait()? {
                bail!("turnserver exited ({status})");
            }
            if stun_answers(&probe, target) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        bail!("turnserver not ready on {target} in 10 s")
    }
}

impl Drop for Coturn {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Send a STUN binding request (RFC 5389 header only) and wait briefly for a success answer
/// carrying the same transaction id.
fn stun_answers(socket: &UdpSocket, target: SocketAddr) -> bool {
    let id: [u8; 12] = rand::random();
    let mut req = vec![0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xA4, 0x42];
    req.extend_from_slice(&id);
    if socket.send_to(&req, target).is_err() {
        return false;
    }
    let mut buf = [0u8; 512];
    matches!(socket.recv_from(&mut buf), Ok((n, _)) if n >= 20 && buf[0..2] == [0x01, 0x01] && buf[8..20] == id)
}

fn free_port(ok: impl Fn(u16) -> bool) -> Option<u16> {
    (0..500).map(|_| rand::random_range(POOL)).find(|&p| ok(p))
}

fn udp_free(port: u16) -> bool {
    UdpSocket::bind((Ipv4Addr::LOCALHOST, port)).is_ok()
}

fn tcp_free(port: u16) -> bool {
    TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok()
}
