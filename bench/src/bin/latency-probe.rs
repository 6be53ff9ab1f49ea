//! `latency-probe`: mouth-to-ear latency of the headless voice path (no device buffers), two
//! engines in one process, direct or through a loopback coturn, optionally behind a relay
//! that adds delay, jitter and loss. See `bench/mouth-to-ear.sh` and `bench/jitter-path.sh`.
//! Prints figures and must never fail on one: an error means the run itself did not work.

use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use cromulent_bench::impair::Impairment;
use cromulent_bench::probe::{self, Options, RelayOver, adapt};
use cromulent_bench::stats::Summary;

/// Mouth-to-ear latency probe for Cromulent Voice (a benchmark; not a test).
///
/// The sender's audio source emits a 10 ms 1 kHz burst every few frames at a random sample
/// offset; the receiver's sink finds each onset in the decoded audio. Both record the instant
/// their frame was pulled/written, on the same monotonic clock.
#[derive(Parser, Debug)]
#[command(about, long_about)]
struct Cli {
    /// Relay candidates only, through a coturn started on free loopback ports.
    #[arg(long)]
    relay: bool,
    /// How the relayed engines reach the coturn: udp, tcp (`turn:…?transport=tcp`) or tls
    /// (`turns:`, needs --tls-cert and --tls-key, and SSL_CERT_FILE naming the certificate).
    /// Implies --relay when not udp.
    #[arg(long, default_value = "udp", value_parser = ["udp", "tcp", "tls"])]
    relay_over: String,
    /// Certificate (PEM) for coturn's TLS listener, for IP address 127.0.0.1.
    #[arg(long)]
    tls_cert: Option<std::path::PathBuf>,
    /// Its private key (PEM).
    #[arg(long)]
    tls_key: Option<std::path::PathBuf>,
    /// Impair each engine's upload to the coturn like `tc netem delay D J loss L` (which this
    /// machine's kernel lacks), through a user-space UDP relay: DELAY_MS,JITTER_MS,LOSS_PERCENT,
    /// e.g. `20,10,5`. Delays are uniform in DELAY ± JITTER (packets may reorder). Implies
    /// --relay; the receiver's jitter buffer is then sampled every 250 ms.
    #[arg(long, value_name = "DELAY_MS,JITTER_MS,LOSS_PERCENT")]
    impair: Option<Impairment>,
    /// Seed of the impairment's random draws (same seed, same delays and drops).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Sessions (fresh engine pairs, receiver clock offset by a fraction of a frame each).
    #[arg(long, default_value_t = 10)]
    sessions: usize,
    /// Clicks per session.
    #[arg(long, default_value_t = 25)]
    clicks: usize,
    /// Frames (20 ms) between clicks.
    #[arg(long, default_value_t = 8)]
    period_frames: u32,
    /// Play a quiet 200 Hz tone (peak 0.02, −34 dBFS) under the clicks, so the stream never
    /// pauses (no DTX): steady speech instead of speech onsets after silence.
    #[arg(long)]
    continuous: bool,
    /// Milliseconds from the call connecting to the first click: the jitter buffer's first
    /// estimate includes the irregular arrivals of the call's first packets.
    #[arg(long, default_value_t = 3000)]
    settle_ms: u64,
    /// Worker threads of each engine's runtime (default: one, like `cromulent`).
    #[arg(long)]
    engine_threads: Option<usize>,
}

fn main() -> anyhow::Result<()> {
    cromulent_bench::init_logging("error");
    let cli = Cli::parse();
    let relay_over = match cli.relay_over.as_str() {
        "tcp" => RelayOver::Tcp,
        "tls" => RelayOver::Tls {
            cert: cli.tls_cert.context("--relay-over tls needs --tls-cert")?,
            key: cli.tls_key.context("--relay-over tls needs --tls-key")?,
        },
        _ => RelayOver::Udp,
    };
    let opts = Options {
        relay: cli.relay || !matches!(relay_over, RelayOver::Udp),
        relay_over,
        impair: cli.impair,
        impair_seed: cli.seed,
        sample_every: cli.impair.map(|_| Duration::from_millis(250)),
        sessions: cli.sessions,
        clicks: cli.clicks,
        period_frames: cli.period_frames,
        background: if cli.continuous { 0.02 } else { 0.0 },
        settle: Duration::from_millis(cli.settle_ms),
        engine_threads: cli.engine_threads,
    };
    let report = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(probe::run(&opts))?;
    print_report(&opts, &report);
    if opts.impair.is_some() {
        print_adaptation(&opts, &report);
    }
    Ok(())
}

fn print_report(opts: &Options, report: &probe::Report) {
    let route = match (opts.relayed(), opts.impair) {
        (false, _) => "direct".to_owned(),
        (true, None) => match opts.relay_over {
            RelayOver::Udp => "relayed (coturn)".to_owned(),
            RelayOver::Tcp => "relayed (coturn, TURN over TCP)".to_owned(),
            RelayOver::Tls { .. } => "relayed (coturn, TURN over TLS)".to_owned(),
        },
        (true, Some(i)) => format!(
            "relayed (coturn), upload delay {:.0} ± {:.0} ms, loss {:.0} %",
            i.delay.as_secs_f64() * 1e3,
            i.jitter.as_secs_f64() * 1e3,
            i.loss * 100.0
        ),
    };
    let stream = if opts.background > 0.0 {
        "continuous stream"
    } else {
        "clicks after silence"
    };
    let path = format!("{route}, {stream}");
    let mut delays = Vec::new();
    let (mut codec, mut wait, mut held, mut n) = (0.0, 0.0, 0.0, 0.0);
    let mut missed = 0;
    let mut clipped = 0;
    let mut rtts = Vec::new();
    let mut depth = Vec::new();
    let mut concealed = 0;
    let mut paths = Vec::new();
    for s in &report.sessions {
        missed += s.missed;
        clipped += s.clipped;
        let phase = s.phase_ms.unwrap_or(0.0);
        for e in &s.events {
            delays.push(e.delay_ms);
            codec += e.codec_ms;
            let frames = e.held_frames(phase);
            held += frames * 20.0;
            wait += e.transport_ms - frames * 20.0;
            n += 1.0;
        }
        if let Some(r) = s.sender.as_ref().and_then(|r| r.rtt_ms) {
            rtts.push(r);
        }
        if let Some(r) = &s.receiver {
            depth.push(r.buffer_frames as f64);
            concealed += r.concealed;
            paths.push(format!("{:?}", r.candidate));
        }
    }
    paths.sort();
    paths.dedup();
    let total = Summary::of_ms(delays);
    let mean = |x: f64| if n > 0.0 { x / n } else { f64::NAN };
    let rtt = Summary::of_ms(rtts);
    println!(
        "RESULT mouth-to-ear {path}: {total}  (mean {:.2} ms, {} sessions, {missed} clicks missed, \
         {clipped} clipped by a jitter-buffer drop, receiver path {})",
        total.mean().unwrap_or(f64::NAN),
        report.sessions.len(),
        paths.join("/"),
    );
    println!("breakdown (means over all events):");
    println!("  frame (a sample waits for its 20 ms frame)     20.00 ms");
    println!(
        "  codec shift (encoder lookahead + decoder)      {:.2} ms",
        mean(codec)
    );
    println!(
        "  network + wait for the receiver's frame tick   {:.2} ms   (one-way network ≈ RTT/2 = {:.2} ms)",
        mean(wait),
        rtt.percentile(50.0).unwrap_or(f64::NAN) / 2.0
    );
    println!(
        "  jitter buffer (whole frames held)              {:.2} ms   (receiver depth at the end: {:?} frames)",
        mean(held),
        depth
    );
    println!(
        "  encode / decode of one frame                   {:.0} / {:.0} µs (inside the ticks above)",
        report.encode_us, report.decode_us
    );
    println!("  frames concealed by the receiver: {concealed}");
}

/// Loss, concealment and how the receiver's jitter buffer adapted (impaired runs).
fn print_adaptation(opts: &Options, report: &probe::Report) {
    if let Some(c) = report.impaired {
        let upstream = (c.forwarded + c.dropped).max(1);
        println!(
            "impairment relay (seed {}): {} upstream datagrams forwarded, {} dropped ({:.1} %), {} failed; {} returned downstream",
            opts.impair_seed,
            c.forwarded,
            c.dropped,
            100.0 * c.dropped as f64 / upstream as f64,
            c.failed,
            c.returned
        );
    }
    let receivers: Vec<_> = report
        .sessions
        .iter()
        .filter_map(|s| s.receiver.as_ref())
        .collect();
    let sum = |f: &dyn Fn(&cromulent::engine::PeerReport) -> u64| -> u64 {
        receivers.iter().map(|r| f(r)).sum()
    };
    println!(
        "receiver, summed over {} sessions (whole session, settle included):",
        receivers.len()
    );
    println!(
        "  RTP packets received {}, lost (RTCP view) {}",
        sum(&|r| r.packets_received),
        receivers.iter().map(|r| r.packets_lost.max(0)).sum::<i64>()
    );
    println!(
        "  jitter buffer: lost {}, late {}, underruns {}, trimmed {}, resyncs {}",
        sum(&|r| r.jitter.lost),
        sum(&|r| r.jitter.late),
        sum(&|r| r.jitter.underruns),
        sum(&|r| r.jitter.dropped),
        sum(&|r| r.jitter.resyncs)
    );
    println!(
        "  lost frames handed to the decoder {} = FEC recoveries {} + the rest concealed; decoder PLC frames in all {}",
        sum(&|r| r.jitter.concealed),
        sum(&|r| r.fec_recovered),
        sum(&|r| r.plc_frames)
    );
    let targets: Vec<usize> = receivers.iter().map(|r| r.jitter.target_depth).collect();
    println!("  target depth at the end, frames: {targets:?}");
    let (early, late) = adapt::early_and_late(report.sessions.iter().map(|s| &s.events[..]));
    let (early, late) = (Summary::of_ms(early), Summary::of_ms(late));
    println!(
        "latency over each session: first third of the clicks p50 {:.1} ms (n = {}), last third p50 {:.1} ms (n = {})",
        early.percentile(50.0).unwrap_or(f64::NAN),
        early.count(),
        late.percentile(50.0).unwrap_or(f64::NAN),
        late.count()
    );
    let rows = adapt::target_over_time(
        report.sessions.iter().map(|s| &s.depth_samples[..]),
        Duration::from_secs(1),
    );
    let clicks_from = opts.settle.as_secs_f64();
    println!(
        "target depth since connecting (mean / max over sessions, 1 s buckets; clicks from {clicks_from:.1} s):"
    );
    let line: Vec<String> = rows
        .iter()
        .map(|r| format!("{}s {:.1}/{}", r.from.as_secs(), r.mean, r.max))
        .collect();
    println!("  {}", line.join("  "));
}
