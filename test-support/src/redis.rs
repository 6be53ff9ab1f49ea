//! A real Redis (Debian's `redis-server`) on a free loopback port, for the server's cluster
//! mode: no persistence, killed when its handle drops (also when a test panics), and
//! restartable on the same port to play an outage.
//! Must never leave a `redis-server` running or touch a Redis it did not start.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::process::{KillOnDrop, find_binary, free_port, poll_until};

/// How long `redis-server` may take to answer its first PING.
const START_WAIT: Duration = Duration::from_secs(10);

/// A running `redis-server` (or, after [`Redis::kill`], the port it had).
pub struct Redis {
    port: u16,
    child: Option<KillOnDrop>,
}

impl Redis {
    /// Start one on a free port and wait until it answers; panics with what to install when
    /// `redis-server` is missing.
    pub fn start() -> Self {
        let mut redis = Self {
            port: free_port(),
            child: None,
        };
        redis.restart();
        redis
    }

    /// `redis://127.0.0.1:PORT/`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// SIGKILL: every connection to it breaks, and (no persistence) its data is gone.
    pub fn kill(&mut self) {
        self.child = None;
    }

    /// Start it (again) on its port, empty, and wait until it answers.
    pub fn restart(&mut self) {
        let binary = find_binary("redis-server")
            .expect("redis-server not found: install Debian's redis-server (scripts/setup)");
        let mut cmd = Command::new(binary);
        cmd.args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(["--daemonize", "no", "--protected-mode", "yes"])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        self.child = Some(KillOnDrop::spawn(&mut cmd, "redis-server"));
        let port = self.port;
        assert!(
            poll_until(START_WAIT, || ping(port)),
            "redis-server on port {port} did not answer PING within {START_WAIT:?}"
        );
    }
}

/// True when a Redis on `port` answers PING.
fn ping(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    let mut reply = [0u8; 7];
    stream.write_all(b"PING\r\n").is_ok()
        && stream.read_exact(&mut reply).is_ok()
        && &reply == b"+PONG\r\n"
}
