//! A user-space stand-in for `tc qdisc … netem delay D J loss L` on one UDP path: a relay on
//! loopback that clients use as their TURN server's address, and that forwards every datagram
//! to the real one.
//!
//! Why in user space: this machine's kernel is built without netem (`CONFIG_NET_SCH_NETEM is not
//! set`; `tc qdisc add … netem` answers "Specified qdisc kind is unknown") and no module can be
//! loaded, so network namespaces cannot impair a link here.
//!
//! - **Upstream** (client → TURN) datagrams are each delayed by `delay ± jitter`, drawn
//!   uniformly (netem's default distribution), or dropped with probability `loss`. Each is
//!   scheduled on its own, so a datagram may overtake an earlier one, as with netem.
//! - **Downstream** (TURN → client) passes unimpaired. Between two relay-only clients every media
//!   packet is therefore impaired exactly once per direction, at its sender's upload: one-way
//!   `delay D J loss L`, like netem on each client's link.
//! - One upstream socket per client address (a small UDP NAT), so the TURN server sees each
//!   client as its own 5-tuple and its answers go back to the right client.
//! - The random draws come from a seeded generator: a run is reproducible given the seed (up to
//!   which packets the clients happen to send).
//!
//! It never sends anywhere but the one upstream address and the clients that wrote to it, never
//! panics on what it receives, and stops (every task aborted) when [`ImpairRelay`] is dropped.

use std::cmp::Ordering as CmpOrdering;
use std::collections::{BinaryHeap, HashMap};
use std::net::{Ipv4Addr, SocketAddr};
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::{Instant, sleep_until};

/// Clients (source addresses) the relay will map; datagrams from further ones are dropped and
/// counted. Two engines need two; the cap keeps a stray sender from growing the table forever.
const MAX_CLIENTS: usize = 64;
/// Largest UDP payload.
const MAX_DATAGRAM: usize = 65_535;

/// What to do to each upstream datagram: netem's `delay DELAY JITTER loss LOSS`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Impairment {
    pub delay: Duration,
    /// Half-width of the uniform delay spread: delays fall in `delay ± jitter` (never below 0).
    pub jitter: Duration,
    /// Drop probability, 0..=1.
    pub loss: f64,
}

/// The fate of one datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Drop,
    /// Forward after this long.
    Delay(Duration),
}

impl Impairment {
    pub fn new(delay: Duration, jitter: Duration, loss: f64) -> anyhow::Result<Self> {
        ensure!(
            (0.0..=1.0).contains(&loss),
            "loss must be between 0 and 100 %"
        );
        Ok(Self {
            delay,
            jitter,
            loss,
        })
    }

    /// The shortest and longest delay a forwarded datagram can get.
    pub fn bounds(&self) -> (Duration, Duration) {
        (
            self.delay.saturating_sub(self.jitter),
            self.delay + self.jitter,
        )
    }

    /// Decides one datagram's fate. Always takes exactly two draws from `rng` (loss, then
    /// delay), so the delays a seed gives do not depend on which datagrams were dropped.
    pub fn decide<R: Rng + ?Sized>(&self, rng: &mut R) -> Verdict {
        let dropped = rng.random::<f64>() < self.loss;
        let (lo, hi) = self.bounds();
        let nanos = |d: Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        let delay = Duration::from_nanos(rng.random_range(nanos(lo)..=nanos(hi)));
        if dropped {
            Verdict::Drop
        } else {
            Verdict::Delay(delay)
        }
    }
}

/// `DELAY_MS,JITTER_MS,LOSS_PERCENT`, e.g. `20,10,5` for netem's `delay 20ms 10ms loss 5%`.
impl FromStr for Impairment {
    type Err = anyhow::Error;

    fn from_str(spec: &str) -> anyhow::Result<Self> {
        let fields: Vec<&str> = spec.split(',').map(str::trim).collect();
        let [delay, jitter, loss] = fields[..] else {
            bail!("expected DELAY_MS,JITTER_MS,LOSS_PERCENT (e.g. 20,10,5), got {spec:?}");
        };
        let ms = |s: &str, what: &str| -> anyhow::Result<Duration> {
            let v: f64 = s
                .parse()
                .with_context(|| format!("{what} {s:?} is not a number"))?;
            ensure!(v.is_finite() && v >= 0.0, "{what} must be ≥ 0 ms");
            Ok(Duration::from_secs_f64(v / 1000.0))
        };
        let percent: f64 = loss
            .parse()
            .with_context(|| format!("loss {loss:?} is not a number"))?;
        Self::new(ms(delay, "delay")?, ms(jitter, "jitter")?, percent / 100.0)
    }
}

/// What the relay did so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Upstream datagrams handed to the TURN server (after their delay).
    pub forwarded: u64,
    /// Upstream datagrams dropped by the loss draw.
    pub dropped: u64,
    /// Upstream datagrams that could not be handled (table full, send error).
    pub failed: u64,
    /// Downstream datagrams passed back to clients.
    pub returned: u64,
}

#[derive(Debug, Default)]
struct Counters {
    forwarded: AtomicU64,
    dropped: AtomicU64,
    failed: AtomicU64,
    returned: AtomicU64,
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// The running relay. Dropping it stops it.
pub struct ImpairRelay {
    addr: SocketAddr,
    counters: Arc<Counters>,
    /// Owns the client-side and scheduler tasks; dropping a `JoinSet` aborts them (the
    /// client-side task owns the per-client downstream tasks the same way).
    _tasks: JoinSet<()>,
}

impl ImpairRelay {
    /// Listens on `127.0.0.1:port` (0: any free port) and relays to `upstream`.
    pub async fn start(
        port: u16,
        upstream: SocketAddr,
        impairment: Impairment,
        seed: u64,
    ) -> std::io::Result<Self> {
        let socket = Arc::new(UdpSocket::bind((Ipv4Addr::LOCALHOST, port)).await?);
        let addr = socket.local_addr()?;
        let counters = Arc::new(Counters::default());
        let (schedule, scheduled) = mpsc::unbounded_channel();
        let mut tasks = JoinSet::new();
        tasks.spawn(send_when_due(scheduled, counters.clone()));
        tasks.spawn(
            Upstream {
                socket,
                upstream,
                impairment,
                rng: StdRng::seed_from_u64(seed),
                clients: HashMap::new(),
                downstream: JoinSet::new(),
                schedule,
                counters: counters.clone(),
            }
            .run(),
        );
        Ok(Self {
            addr,
            counters,
            _tasks: tasks,
        })
    }

    /// Where clients send (use as the TURN server's address).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn counts(&self) -> Counts {
        let c = &self.counters;
        Counts {
            forwarded: c.forwarded.load(Ordering::Relaxed),
            dropped: c.dropped.load(Ordering::Relaxed),
            failed: c.failed.load(Ordering::Relaxed),
            returned: c.returned.load(Ordering::Relaxed),
        }
    }
}

/// A datagram waiting for its delay to pass.
struct Pending {
    due: Instant,
    /// Arrival order, to break ties between equal due times.
    order: u64,
    to: Arc<UdpSocket>,
    payload: Vec<u8>,
}

impl PartialEq for Pending {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == CmpOrdering::Equal
    }
}
impl Eq for Pending {}
impl PartialOrd for Pending {
    fn partial_cmp(&self, other: &Self) -> Option<CmpOrdering> {
        Some(self.cmp(other))
    }
}
impl Ord for Pending {
    /// Reversed, so `BinaryHeap` (a max-heap) pops the earliest due first.
    fn cmp(&self, other: &Self) -> CmpOrdering {
        (other.due, other.order).cmp(&(self.due, self.order))
    }
}

/// The client-facing side: receives from clients, maps each to its upstream socket, and
/// schedules or drops each datagram. Sole owner of the client table and the generator.
struct Upstream {
    socket: Arc<UdpSocket>,
    upstream: SocketAddr,
    impairment: Impairment,
    rng: StdRng,
    clients: HashMap<SocketAddr, Arc<UdpSocket>>,
    /// One task per client, passing the TURN server's answers back; aborted with this.
    downstream: JoinSet<()>,
    schedule: mpsc::UnboundedSender<Pending>,
    counters: Arc<Counters>,
}

impl Upstream {
    async fn run(mut self) {
        let mut buf = vec![0u8; MAX_DATAGRAM];
        let mut order = 0u64;
        loop {
            let (n, client) = match self.socket.recv_from(&mut buf).await {
                Ok(got) => got,
                Err(e) => {
                    // E.g. an ICMP error surfacing on the socket; the socket itself is fine.
                    tracing::debug!(error = %e, "impair relay: receive failed");
                    continue;
                }
            };
            let Some(to) = self.socket_for(client).await else {
                bump(&self.counters.failed);
                continue;
            };
            match self.impairment.decide(&mut self.rng) {
                Verdict::Drop => bump(&self.counters.dropped),
                Verdict::Delay(delay) => {
                    order += 1;
                    let pending = Pending {
                        due: Instant::now() + delay,
                        order,
                        to,
                        payload: buf[..n].to_vec(),
                    };
                    if self.schedule.send(pending).is_err() {
                        return; // The scheduler is gone: the relay is shutting down.
                    }
                }
            }
        }
    }

    /// The upstream socket of `client`, opened (with its downstream task) on first use.
    async fn socket_for(&mut self, client: SocketAddr) -> Option<Arc<UdpSocket>> {
        if let Some(s) = self.clients.get(&client) {
            return Some(s.clone());
        }
        if self.clients.len() >= MAX_CLIENTS {
            return None;
        }
        let socket = match open_upstream(self.upstream).await {
            Ok(s) => Arc::new(s),
            Err(e) => {
                tracing::warn!(error = %e, "impair relay: cannot open an upstream socket");
                return None;
            }
        };
        self.downstream.spawn(pass_back(
            socket.clone(),
            self.socket.clone(),
            client,
            self.counters.clone(),
        ));
        self.clients.insert(client, socket.clone());
        Some(socket)
    }
}

async fn open_upstream(upstream: SocketAddr) -> std::io::Result<UdpSocket> {
    let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await?;
    socket.connect(upstream).await?;
    Ok(socket)
}

/// Sends each scheduled datagram once its time has come, earliest first.
async fn send_when_due(mut scheduled: mpsc::UnboundedReceiver<Pending>, counters: Arc<Counters>) {
    let mut queue = BinaryHeap::new();
    loop {
        let next_due = queue.peek().map(|p: &Pending| p.due);
        tokio::select! {
            got = scheduled.recv() => match got {
                Some(p) => queue.push(p),
                None => return,
            },
            () = sleep_until(next_due.unwrap_or_else(Instant::now)), if next_due.is_some() => {
                let now = Instant::now();
                while queue.peek().is_some_and(|p| p.due <= now) {
                    let Some(p) = queue.pop() else { break };
                    match p.to.send(&p.payload).await {
                        Ok(_) => bump(&counters.forwarded),
                        Err(_) => bump(&counters.failed),
                    }
                }
            }
        }
    }
}

/// Passes what the TURN server sends to one client's upstream socket back to that client.
async fn pass_back(
    from: Arc<UdpSocket>,
    listener: Arc<UdpSocket>,
    client: SocketAddr,
    counters: Arc<Counters>,
) {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        match from.recv(&mut buf).await {
            Ok(n) => {
                if listener.send_to(&buf[..n], client).await.is_ok() {
                    bump(&counters.returned);
                }
            }
            // A connected UDP socket reports an ICMP "port unreachable" for an earlier send
            // as a receive error; keep going.
            Err(e) => tracing::debug!(error = %e, "impair relay: upstream receive failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn netem(delay: u64, jitter: u64, loss: f64) -> Impairment {
        Impairment::new(ms(delay), ms(jitter), loss).unwrap()
    }

    fn verdicts(imp: Impairment, seed: u64, n: usize) -> Vec<Verdict> {
        let mut rng = StdRng::seed_from_u64(seed);
        (0..n).map(|_| imp.decide(&mut rng)).collect()
    }

    fn delays(v: &[Verdict]) -> Vec<Duration> {
        v.iter()
            .filter_map(|v| match v {
                Verdict::Delay(d) => Some(*d),
                Verdict::Drop => None,
            })
            .collect()
    }

    #[test]
    fn delays_are_uniform_within_delay_plus_minus_jitter() {
        let d = delays(&verdicts(netem(20, 10, 0.0), 7, 20_000));
        assert_eq!(d.len(), 20_000, "loss 0 drops nothing");
        assert!(d.iter().all(|&d| (ms(10)..=ms(30)).contains(&d)));
        // Spread over the whole range, centred on the delay: not a constant, not one end.
        let min = d.iter().min().unwrap();
        let max = d.iter().max().unwrap();
        assert!(*min < ms(11) && *max > ms(29), "{min:?}..{max:?}");
        let mean = d.iter().sum::<Duration>() / d.len() as u32;
        assert!((mean.as_secs_f64() * 1000.0 - 20.0).abs() < 0.3, "{mean:?}");
        let below = d.iter().filter(|&&x| x < ms(15)).count() as f64 / d.len() as f64;
        assert!(
            (below - 0.25).abs() < 0.02,
            "a quarter below 15 ms, got {below}"
        );
    }

    #[test]
    fn drop_fraction_matches_loss() {
        for loss in [0.05, 0.5] {
            let v = verdicts(netem(20, 10, loss), 3, 40_000);
            let dropped = v.iter().filter(|v| **v == Verdict::Drop).count() as f64 / 40_000.0;
            assert!(
                (dropped - loss).abs() < 0.01,
                "loss {loss}: dropped {dropped}"
            );
        }
        assert!(
            verdicts(netem(20, 10, 1.0), 3, 1000)
                .iter()
                .all(|v| *v == Verdict::Drop)
        );
        assert!(!verdicts(netem(20, 10, 0.0), 3, 1000).contains(&Verdict::Drop));
    }

    #[test]
    fn a_seed_reproduces_its_run_and_delays_do_not_depend_on_loss() {
        assert_eq!(
            verdicts(netem(20, 10, 0.05), 42, 500),
            verdicts(netem(20, 10, 0.05), 42, 500)
        );
        assert_ne!(
            verdicts(netem(20, 10, 0.05), 42, 500),
            verdicts(netem(20, 10, 0.05), 43, 500)
        );
        // Same draws, so the surviving packets keep the delays they had without loss.
        let lossy = verdicts(netem(20, 10, 0.3), 9, 500);
        let clean = verdicts(netem(20, 10, 0.0), 9, 500);
        for (l, c) in lossy.iter().zip(&clean) {
            if let Verdict::Delay(_) = l {
                assert_eq!(l, c);
            }
        }
    }

    #[test]
    fn jitter_larger_than_delay_never_goes_below_zero_and_zero_is_exact() {
        let d = delays(&verdicts(netem(5, 20, 0.0), 1, 5000));
        assert!(d.iter().all(|&d| d <= ms(25)));
        assert!(d.iter().any(|&d| d < ms(1)));
        assert!(
            delays(&verdicts(netem(0, 0, 0.0), 1, 100))
                .iter()
                .all(|d| d.is_zero())
        );
    }

    #[test]
    fn spec_parses_like_netem_arguments() {
        let imp: Impairment = "20,10,5".parse().unwrap();
        assert_eq!(imp, netem(20, 10, 0.05));
        let imp: Impairment = " 0.5, 0 ,100".parse().unwrap();
        assert_eq!(imp.delay, Duration::from_micros(500));
        assert_eq!(imp.loss, 1.0);
        for bad in [
            "20,10",
            "20,10,5,1",
            "a,1,1",
            "20,10,101",
            "-1,0,0",
            "20,10,-5",
            "",
        ] {
            assert!(bad.parse::<Impairment>().is_err(), "{bad:?} accepted");
        }
    }

    /// A stand-in TURN server: echoes every datagram back to its sender.
    async fn echo_server() -> (SocketAddr, tokio::task::JoinHandle<()>) {
        let s = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
        let addr = s.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let mut buf = [0u8; 1500];
            while let Ok((n, from)) = s.recv_from(&mut buf).await {
                let _ = s.send_to(&buf[..n], from).await;
            }
        });
        (addr, task)
    }

    async fn client() -> UdpSocket {
        UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap()
    }

    /// Sends `n` numbered datagrams through `relay` 5 ms apart while collecting the echoes
    /// (until all are back or `wait` after the last send); returns each echo's round trip, by
    /// number, in arrival order.
    async fn round_trips(relay: SocketAddr, n: u16, wait: Duration) -> Vec<(u16, Duration)> {
        let c = client().await;
        let sent: Vec<std::sync::OnceLock<std::time::Instant>> =
            (0..n).map(|_| std::sync::OnceLock::new()).collect();
        let send = async {
            for i in 0..n {
                let _ = sent[usize::from(i)].set(std::time::Instant::now());
                c.send_to(&i.to_be_bytes(), relay).await.unwrap();
                tokio::time::sleep(ms(5)).await;
            }
        };
        let receive = async {
            let mut got = Vec::new();
            let deadline = Instant::now() + ms(5) * u32::from(n) + wait;
            let mut buf = [0u8; 16];
            while got.len() < usize::from(n) {
                let Ok(Ok((len, _))) =
                    tokio::time::timeout_at(deadline, c.recv_from(&mut buf)).await
                else {
                    break;
                };
                assert_eq!(len, 2);
                let i = u16::from_be_bytes([buf[0], buf[1]]);
                let at = sent[usize::from(i)].get().expect("echo of a datagram sent");
                got.push((i, at.elapsed()));
            }
            got
        };
        tokio::join!(send, receive).1
    }

    #[tokio::test]
    async fn real_sockets_get_delays_within_bounds_and_replies_come_back() {
        let (turn, _server) = echo_server().await;
        let imp = netem(30, 15, 0.0);
        let relay = ImpairRelay::start(0, turn, imp, 11).await.unwrap();
        let got = round_trips(relay.local_addr(), 60, Duration::from_secs(5)).await;
        assert_eq!(got.len(), 60, "loss 0: every datagram comes back");
        // Only the upstream leg is delayed; the rest is loopback and scheduling, for which a
        // generous 100 ms is allowed (no timing is asserted tightly).
        let (lo, hi) = imp.bounds();
        for (i, rtt) in &got {
            assert!(*rtt >= lo && *rtt <= hi + ms(100), "#{i}: {rtt:?}");
        }
        let arrival_order: Vec<u16> = got.iter().map(|(i, _)| *i).collect();
        assert!(
            arrival_order.windows(2).any(|w| w[0] > w[1]),
            "30 ms of spread over 5 ms spacing reorders, as netem does"
        );
        let counts = relay.counts();
        assert_eq!(
            (counts.forwarded, counts.dropped, counts.returned),
            (60, 0, 60)
        );
    }

    #[tokio::test]
    async fn full_loss_lets_nothing_through() {
        let (turn, _server) = echo_server().await;
        let relay = ImpairRelay::start(0, turn, netem(1, 0, 1.0), 11)
            .await
            .unwrap();
        let got = round_trips(relay.local_addr(), 30, ms(300)).await;
        assert!(got.is_empty(), "{got:?}");
        assert_eq!(relay.counts().dropped, 30);
        assert_eq!(relay.counts().forwarded, 0);
    }

    #[tokio::test]
    async fn each_client_gets_its_own_upstream_socket_and_its_own_replies() {
        let (turn, _server) = echo_server().await;
        let relay = ImpairRelay::start(0, turn, netem(1, 0, 0.0), 11)
            .await
            .unwrap();
        let (a, b) = (client().await, client().await);
        let mut buf = [0u8; 16];
        for round in 0..5u8 {
            a.send_to(&[b'a', round], relay.local_addr()).await.unwrap();
            b.send_to(&[b'b', round], relay.local_addr()).await.unwrap();
            for (c, tag) in [(&a, b'a'), (&b, b'b')] {
                let (n, _) = tokio::time::timeout(Duration::from_secs(2), c.recv_from(&mut buf))
                    .await
                    .expect("reply within 2 s")
                    .unwrap();
                assert_eq!(&buf[..n], &[tag, round]);
            }
        }
    }

    #[tokio::test]
    async fn dropping_the_relay_closes_its_port() {
        let (turn, _server) = echo_server().await;
        let relay = ImpairRelay::start(0, turn, netem(1, 0, 0.0), 11)
            .await
            .unwrap();
        let addr = relay.local_addr();
        drop(relay);
        // The listening socket belongs to aborted tasks; once they are gone the port is free.
        let mut rebound = None;
        for _ in 0..100 {
            if let Ok(s) = UdpSocket::bind(addr).await {
                rebound = Some(s);
                break;
            }
            tokio::time::sleep(ms(10)).await;
        }
        assert!(rebound.is_some(), "port {addr} still held after drop");
    }
}
