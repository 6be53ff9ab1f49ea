//! The mouth-to-ear probe: a signaling server and two real voice engines in this one process
//! (one monotonic clock), started with [`cromulent::engine::spawn_with_audio`] so the audio
//! ends are ours — [`signal::ClickSource`] in the sender, [`signal::OnsetSink`] in the
//! receiver — and nothing else (no device buffers) sits in the path.
//!
//! The run is split into sessions, each with fresh engines whose receiver starts a different
//! fraction of a frame after the sender: the two 20 ms frame clocks then meet at phases spread
//! over the whole frame, as they would for users who start their clients at random moments,
//! instead of the one phase a single run happens to get.
//!
//! With [`Options::impair`], the engines reach the coturn through an [`ImpairRelay`] (delay,
//! jitter and loss on each client's upload, like netem on its link), and the receiver's jitter
//! buffer is sampled during each session to show how it adapts.
//!
//! Like every benchmark here it reports what it measured and must never assert a latency.

pub mod adapt;
pub mod analysis;
pub mod signal;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use cromulent::audio::{Decoder, Encoder, NullSink, Silence, SinkSpec, SourceSpec};
use cromulent::engine::{
    self, CallState, ChannelRef, EngineCommand, EngineConfig, EngineEvent, EngineHandle, IcePolicy,
    PeerReport, TalkMode,
};
use cromulent::signaling::Credentials;
use cromulent_server::config::{Config, TurnProvider};
use cromulent_test_support::coturn::Coturn;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::time::timeout;

use crate::impair::{self, ImpairRelay, Impairment};
use adapt::DepthSample;
use analysis::Event;
use signal::{ClickSource, Emitted, Heard, OnsetSink};

#[derive(Debug, Clone)]
pub struct Options {
    /// Through a loopback coturn, relay candidates only.
    pub relay: bool,
    /// How the engines reach that coturn.
    pub relay_over: RelayOver,
    /// Delay, jitter and loss on each engine's upload to the coturn (implies `relay`).
    pub impair: Option<Impairment>,
    /// Seed of the impairment's random draws.
    pub impair_seed: u64,
    /// How often the receiver's jitter buffer is sampled during a session (`None`: only at
    /// the end).
    pub sample_every: Option<Duration>,
    pub sessions: usize,
    /// Clicks per session.
    pub clicks: usize,
    /// Frames from one click to the next.
    pub period_frames: u32,
    /// Worker threads of each engine's runtime (`None`: one, as the `cromulent` binary has,
    /// `cromulent::engine::client_runtime`).
    pub engine_threads: Option<usize>,
    /// Time from the call connecting to the first click.
    pub settle: Duration,
    /// Peak amplitude of a background tone under the clicks (0: silence, so every click is a
    /// talk spurt after DTX; above 0: a continuous stream).
    pub background: f32,
}

/// One session's outcome.
#[derive(Debug, Clone)]
pub struct Session {
    pub events: Vec<Event>,
    pub missed: usize,
    /// Clicks heard sooner than frame + lookahead allow: the jitter buffer dropped the
    /// frame holding the click's start (a latency trim), so its tail was taken for the onset.
    /// Left out of `events`.
    pub clipped: usize,
    /// Receiver frame clock after the sender's, ms.
    pub phase_ms: Option<f64>,
    /// The sender's view of its peer (RTT needs the sender's reports).
    pub sender: Option<PeerReport>,
    /// The receiver's view (jitter buffer depth, concealment).
    pub receiver: Option<PeerReport>,
    /// The receiver's jitter buffer over the session, if sampled.
    pub depth_samples: Vec<DepthSample>,
}

#[derive(Debug, Clone)]
pub struct Report {
    pub sessions: Vec<Session>,
    /// Mean time to encode one 20 ms frame, µs.
    pub encode_us: f64,
    /// Mean time to decode one packet, µs.
    pub decode_us: f64,
    /// What the impairment relay did over the whole run, if there was one.
    pub impaired: Option<impair::Counts>,
}

impl Options {
    /// Whether the engines go through the coturn (asked for, or implied by `impair`).
    pub fn relayed(&self) -> bool {
        self.relay || self.impair.is_some()
    }
}

/// How relayed engines reach the coturn: the URL the server hands out.
#[derive(Debug, Clone, Default)]
pub enum RelayOver {
    #[default]
    Udp,
    /// `turn:…?transport=tcp`.
    Tcp,
    /// `turns:` to coturn's TLS listener with this certificate and key (PEM); the engines
    /// trust it through `SSL_CERT_FILE`, which the caller sets to the certificate.
    Tls {
        cert: std::path::PathBuf,
        key: std::path::PathBuf,
    },
}

/// What both probes run in: a signaling server on a free loopback port; with `relayed`, a
/// loopback coturn the engines must go through (relay candidates only), behind the
/// impairment relay when there is an impairment; and a runtime for each engine.
pub(crate) struct Rig {
    pub url: String,
    pub policy: IcePolicy,
    runtimes: Runtimes,
    relay: Option<ImpairRelay>,
    turn: Option<Coturn>,
    stop: tokio::sync::oneshot::Sender<()>,
    server: tokio::task::JoinHandle<()>,
}

impl Rig {
    pub async fn start(
        relayed: bool,
        over: RelayOver,
        impair: Option<Impairment>,
        seed: u64,
        engine_threads: Option<usize>,
    ) -> anyhow::Result<Self> {
        let relayed = relayed || impair.is_some();
        let turn = if relayed {
            // The tests' coturn harness; 32 relay ports are plenty for two engines.
            let mut builder = Coturn::builder().realm("bench.local").relay_ports(32);
            if let RelayOver::Tls { cert, key } = &over {
                let port = std::net::TcpListener::bind("127.0.0.1:0")?
                    .local_addr()?
                    .port();
                builder = builder.tls(cromulent_test_support::coturn::Tls {
                    cert: cert.clone(),
                    key: key.clone(),
                    port,
                });
            }
            let start = move || builder.try_start();
            Some(tokio::task::spawn_blocking(start).await??)
        } else {
            None
        };
        let relay = match (&turn, impair) {
            (Some(t), Some(imp)) => Some(ImpairRelay::start(0, t.addr(), imp, seed).await?),
            _ => None,
        };
        let mut config = Config::default();
        if let Some(t) = &turn {
            config.turn.provider = TurnProvider::Coturn;
            config.turn.secret = t.secret().to_owned();
            // The engines learn the TURN address from the server: the relay's, when impaired.
            config.turn.urls = vec![match (&relay, &over) {
                (Some(r), _) => format!("turn:{}", r.local_addr()),
                (None, RelayOver::Udp) => t.turn_url(),
                (None, RelayOver::Tcp) => t.turn_tcp_url(),
                (None, RelayOver::Tls { .. }) => t.turns_url().expect("coturn listens for TLS"),
            }];
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("ws://{}", listener.local_addr()?);
        let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            let stopped = async {
                let _ = stop_rx.await;
            };
            if let Err(e) = cromulent_server::run(listener, config, stopped).await {
                eprintln!("the server failed: {e:#}");
            }
        });
        // Each side runs on a runtime of its own, as in two client processes (the server,
        // and this orchestration, on the caller's).
        let runtimes = Runtimes {
            mouth: Some(engine_runtime("mouth", engine_threads)?),
            ear: Some(engine_runtime("ear", engine_threads)?),
        };
        Ok(Self {
            url,
            policy: if relayed {
                IcePolicy::Relay
            } else {
                IcePolicy::All
            },
            runtimes,
            relay,
            turn,
            stop,
            server,
        })
    }

    /// The sending engine's runtime and the receiving one's.
    pub(crate) fn runtimes(&self) -> &Runtimes {
        &self.runtimes
    }

    /// Stops everything; what the impairment relay did, if there was one.
    pub async fn stop(self) -> Option<impair::Counts> {
        drop(self.runtimes);
        let _ = self.stop.send(());
        let _ = timeout(Duration::from_secs(5), self.server).await;
        let impaired = self.relay.as_ref().map(ImpairRelay::counts);
        drop(self.relay);
        drop(self.turn);
        impaired
    }
}

pub async fn run(opts: &Options) -> anyhow::Result<Report> {
    let rig = Rig::start(
        opts.relay,
        opts.relay_over.clone(),
        opts.impair,
        opts.impair_seed,
        opts.engine_threads,
    )
    .await?;
    let (url, policy, runtimes) = (rig.url.clone(), rig.policy, rig.runtimes());
    let mut sessions = Vec::new();
    for s in 0..opts.sessions {
        // Receiver clock offsets 0, 1/n, 2/n … of a frame after the sender's.
        let offset = Duration::from_secs_f64(0.020 * s as f64 / opts.sessions.max(1) as f64);
        let session = run_session(runtimes, &url, s, policy, offset, opts)
            .await
            .with_context(|| format!("session {s}"))?;
        let phase = session.phase_ms.unwrap_or(0.0);
        let held = session
            .events
            .iter()
            .filter(|e| e.held_frames(phase) > 0.0)
            .count();
        eprintln!(
            "session {s}: {} events, {} missed, {} clipped, clock phase {:.1} ms, path {:?}, p50 {:.1} ms, \
             {held} held ≥ 1 frame, receiver jitter {:.2} ms",
            session.events.len(),
            session.missed,
            session.clipped,
            phase,
            session.receiver.as_ref().and_then(|r| r.candidate),
            crate::stats::Summary::of_ms(session.events.iter().map(|e| e.delay_ms).collect())
                .percentile(50.0)
                .unwrap_or(f64::NAN),
            session.receiver.as_ref().map_or(f64::NAN, |r| r.jitter_ms),
        );
        sessions.push(session);
    }
    let impaired = rig.stop().await;
    let (encode_us, decode_us) = codec_cost()?;
    Ok(Report {
        sessions,
        encode_us,
        decode_us,
        impaired,
    })
}

pub(crate) struct Runtimes {
    mouth: Option<tokio::runtime::Runtime>,
    ear: Option<tokio::runtime::Runtime>,
}

impl Runtimes {
    pub(crate) fn mouth(&self) -> &tokio::runtime::Runtime {
        // Invariant: only `drop` takes them out.
        self.mouth.as_ref().expect("runtime present until dropped")
    }

    pub(crate) fn ear(&self) -> &tokio::runtime::Runtime {
        self.ear.as_ref().expect("runtime present until dropped")
    }
}

impl Drop for Runtimes {
    /// Dropped inside the caller's runtime, on success or on an early error return: a plain
    /// drop of a runtime blocks there (tokio panics, hiding the error).
    fn drop(&mut self) {
        for rt in [self.mouth.take(), self.ear.take()].into_iter().flatten() {
            rt.shutdown_background();
        }
    }
}

fn engine_runtime(name: &str, threads: Option<usize>) -> std::io::Result<tokio::runtime::Runtime> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.worker_threads(threads.unwrap_or(1).max(1));
    builder
        .thread_name(format!("probe-{name}"))
        .enable_all()
        .build()
}

async fn run_session(
    runtimes: &Runtimes,
    url: &str,
    index: usize,
    policy: IcePolicy,
    receiver_offset: Duration,
    opts: &Options,
) -> anyhow::Result<Session> {
    let armed = Arc::new(AtomicBool::new(false));
    let emitted: Arc<Mutex<Vec<Emitted>>> = Arc::default();
    let pulls: Arc<Mutex<Vec<Instant>>> = Arc::default();
    let heard: Arc<Mutex<Vec<Heard>>> = Arc::default();
    let writes: Arc<Mutex<Vec<Instant>>> = Arc::default();
    let mouth = format!("mouth{index}");
    let ear = format!("ear{index}");
    let mouth_rt = runtimes.mouth().enter();
    let (tx_handle, mut tx_events) = engine::spawn_with_audio(
        engine_config(url, &mouth, policy),
        Box::new(
            ClickSource::new(
                opts.period_frames,
                armed.clone(),
                emitted.clone(),
                pulls.clone(),
            )
            .with_background(opts.background),
        ),
        Box::new(NullSink::default()),
    )?;
    drop(mouth_rt);
    tokio::time::sleep(Duration::from_millis(100) + receiver_offset).await;
    let ear_rt = runtimes.ear().enter();
    let (rx_handle, mut rx_events) = engine::spawn_with_audio(
        engine_config(url, &ear, policy),
        Box::new(Silence),
        Box::new(OnsetSink::new(heard.clone(), writes.clone())),
    )?;
    drop(ear_rt);
    let general = || EngineCommand::Join(ChannelRef("General".into()));
    tx_handle.send(general());
    rx_handle.send(general());
    wait_connected(&mut tx_events, &ear).await?;
    wait_connected(&mut rx_events, &mouth).await?;
    let mut sampler = Sampler {
        connected: Instant::now(),
        every: opts.sample_every,
        samples: Vec::new(),
    };
    // Let both sides settle (first RTCP, DTX silence, the jitter estimate after the
    // connection's first packets), then click.
    sampler
        .wait(opts.settle, &rx_handle, &mut rx_events, &mouth)
        .await;
    armed.store(true, Ordering::Relaxed);
    let clicking = Duration::from_millis(20 * u64::from(opts.period_frames) * opts.clicks as u64);
    sampler
        .wait(clicking, &rx_handle, &mut rx_events, &mouth)
        .await;
    armed.store(false, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let sender = stats(&tx_handle, &mut tx_events, &ear).await;
    let receiver = stats(&rx_handle, &mut rx_events, &mouth).await;
    shutdown(&tx_handle, &mut tx_events).await;
    shutdown(&rx_handle, &mut rx_events).await;

    let mut emitted = lock(&emitted).clone();
    emitted.truncate(opts.clicks);
    // A click is matched only within one click period (at most 500 ms): with a longer window, a
    // click whose onset was not found (lost or concealed start) takes the next click's onset,
    // and every later click in the session is then one period late.
    let period = Duration::from_millis(20 * u64::from(opts.period_frames));
    let window = period.min(Duration::from_millis(500));
    let (mut events, missed) = analysis::match_events(&emitted, &lock(&heard), window);
    let matched = events.len();
    events.retain(|e| e.delay_ms >= analysis::FLOOR_MS);
    let clipped = matched - events.len();
    let phase_ms = analysis::clock_phase_ms(&lock(&pulls), &lock(&writes));
    Ok(Session {
        events,
        missed,
        clipped,
        phase_ms,
        sender,
        receiver,
        depth_samples: sampler.samples,
    })
}

/// Samples the receiver's jitter buffer while the session waits.
struct Sampler {
    connected: Instant,
    every: Option<Duration>,
    samples: Vec<DepthSample>,
}

impl Sampler {
    /// Waits `length`, sampling the receiver's view of `peer` every `self.every` meanwhile.
    async fn wait(
        &mut self,
        length: Duration,
        handle: &EngineHandle,
        events: &mut UnboundedReceiver<EngineEvent>,
        peer: &str,
    ) {
        let until = tokio::time::Instant::now() + length;
        let Some(every) = self.every else {
            tokio::time::sleep_until(until).await;
            return;
        };
        loop {
            let next = tokio::time::Instant::now() + every;
            if next >= until {
                tokio::time::sleep_until(until).await;
                return;
            }
            tokio::time::sleep_until(next).await;
            if let Some(r) = stats(handle, events, peer).await {
                self.samples.push(DepthSample {
                    at: self.connected.elapsed(),
                    target: r.jitter.target_depth,
                    depth: r.jitter.depth,
                });
            }
        }
    }
}

pub(crate) fn engine_config(url: &str, name: &str, policy: IcePolicy) -> EngineConfig {
    EngineConfig {
        server_url: url.to_owned(),
        credentials: Credentials {
            name: name.to_owned(),
            token: None,
        },
        talk_mode: TalkMode::Open,
        ice_policy: policy,
        audio_in: SourceSpec::Silence,
        audio_out: SinkSpec::Null,
        loopback_only: true,
        frame: Default::default(),
        processing: cromulent::audio::processing::Processing::NONE,
        ice_refresh: true,
    }
}

pub(crate) async fn wait_connected(
    events: &mut UnboundedReceiver<EngineEvent>,
    peer: &str,
) -> anyhow::Result<()> {
    let wait = async {
        while let Some(ev) = events.recv().await {
            match ev {
                EngineEvent::Peer {
                    user,
                    state: CallState::Connected,
                    ..
                } if user == peer => return Ok(()),
                EngineEvent::Fatal { message, .. } => bail!("engine stopped: {message}"),
                _ => {}
            }
        }
        bail!("engine ended")
    };
    timeout(Duration::from_secs(20), wait)
        .await
        .with_context(|| format!("no connection to {peer} in 20 s"))?
}

pub(crate) async fn stats(
    handle: &EngineHandle,
    events: &mut UnboundedReceiver<EngineEvent>,
    peer: &str,
) -> Option<PeerReport> {
    handle.send(EngineCommand::Stats);
    let wait = async {
        while let Some(ev) = events.recv().await {
            if let EngineEvent::Stats(reports) = ev {
                return reports.into_iter().find(|r| r.user == peer);
            }
        }
        None
    };
    timeout(Duration::from_secs(5), wait).await.ok().flatten()
}

pub(crate) async fn shutdown(handle: &EngineHandle, events: &mut UnboundedReceiver<EngineEvent>) {
    handle.send(EngineCommand::Shutdown);
    let wait = async {
        while let Some(ev) = events.recv().await {
            if ev == EngineEvent::Stopped {
                return;
            }
        }
    };
    let _ = timeout(Duration::from_secs(5), wait).await;
}

/// Mean encode and decode time of one 20 ms frame of the click burst, µs (this machine).
fn codec_cost() -> anyhow::Result<(f64, f64)> {
    let mut source = ClickSource::new(
        2,
        Arc::new(AtomicBool::new(true)),
        Arc::default(),
        Arc::default(),
    );
    let mut encoder = Encoder::new()?;
    let mut decoder = Decoder::new()?;
    let mut frame = [0.0f32; signal::FRAME];
    let mut out = [0.0f32; signal::FRAME];
    const N: u32 = 2000;
    let (mut enc, mut dec) = (Duration::ZERO, Duration::ZERO);
    for _ in 0..N {
        cromulent::audio::AudioSource::next_frame(&mut source, &mut frame);
        let t = Instant::now();
        let packet = encoder.encode(&frame)?.to_vec();
        enc += t.elapsed();
        if cromulent::audio::is_dtx_packet(&packet) {
            let t = Instant::now();
            decoder.conceal(&mut out)?;
            dec += t.elapsed();
        } else {
            let t = Instant::now();
            decoder.decode(&packet, &mut out)?;
            dec += t.elapsed();
        }
    }
    let us = |d: Duration| d.as_secs_f64() * 1e6 / f64::from(N);
    Ok((us(enc), us(dec)))
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Poisoning only means a panic elsewhere mid-push; the samples are still fine.
    m.lock().unwrap_or_else(|e| e.into_inner())
}
