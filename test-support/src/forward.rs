//! A TCP front with failover, the part of a reverse proxy a cluster test needs: one loopback
//! address that hands each new connection to the first of its backends that accepts it (what
//! `deploy/Caddyfile` does with `lb_try_duration` when an instance is down), and copies bytes
//! both ways until either side closes. A killed backend's connections therefore end, and the
//! client's reconnect lands on a survivor, through the same address.
//! Must never outlive its handle: dropping it stops its runtime, its listener and every
//! connection it carries.

use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpStream};

/// The front; runs until dropped.
pub struct Failover {
    addr: SocketAddr,
    _runtime: tokio::runtime::Runtime,
}

impl Failover {
    /// Listen on a free loopback port in front of `backends`, tried in this order.
    pub fn start(backends: &[SocketAddr]) -> Self {
        let backends = backends.to_vec();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("a runtime for the failover front");
        let listener = runtime
            .block_on(TcpListener::bind("127.0.0.1:0"))
            .expect("bind the failover front on 127.0.0.1");
        let addr = listener.local_addr().expect("the front's address");
        runtime.spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let backends = backends.clone();
                tokio::spawn(async move {
                    for backend in backends {
                        if let Ok(mut server) = TcpStream::connect(backend).await {
                            let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                            return;
                        }
                    }
                    // None accepted: the client's connection closes, as a proxy's would.
                });
            }
        });
        Self {
            addr,
            _runtime: runtime,
        }
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `ws://ADDR` for a signaling client.
    pub fn ws_url(&self) -> String {
        format!("ws://{}", self.addr)
    }
}
