//! When a started coturn counts as ready: alive, its UDP port bound by this very process
//! (coturn keeps running, retrying, when its port is taken — and the taker might answer STUN),
//! and answering a STUN binding request.
//! Must never count coturn ready on a STUN answer alone, nor wait past `READY_TIMEOUT`.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::{Coturn, READY_TIMEOUT};
use crate::procfs::{process_holds_any_socket, udp_socket_inodes};

impl Coturn {
    /// Waits up to [`READY_TIMEOUT`]; the reason, with coturn's log, when it is not ready.
    pub(super) fn wait_ready(&mut self) -> Result<(), String> {
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
