//! `client-cost`: CPU, memory and bandwidth of one `cromulent headless` client in calls of
//! several users. See `bench/client-cost.sh` (runs it in a private network namespace so the
//! loopback byte counters hold only this benchmark's traffic).
//! Prints figures and must never fail on one: an error means the run itself did not work.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use cromulent_bench::cost::{self, Options, Window};

/// Client cost benchmark for Cromulent Voice (a benchmark; not a test).
#[derive(Parser, Debug)]
#[command(about, long_about)]
struct Cli {
    /// Call sizes to measure, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "2,4,8")]
    users: Vec<usize>,
    /// Seconds per measured window.
    #[arg(long, default_value_t = 20)]
    window: u64,
    /// Seconds to settle before each window.
    #[arg(long, default_value_t = 3)]
    settle: u64,
    /// The `cromulent` binary (default: next to this one).
    #[arg(long)]
    binary: Option<PathBuf>,
    /// Count libopus calls with `perf stat` on uprobes set up beforehand.
    #[arg(long)]
    perf_probes: bool,
    /// Loopback carries only this benchmark (run in a private network namespace, as
    /// `bench/client-cost.sh` does): report wire bytes per peer from its counters.
    #[arg(long)]
    private_loopback: bool,
    /// The observed client uses its sound devices (`--audio-in device --audio-out device`);
    /// run under a sound server (`bench/device-cost.sh`).
    #[arg(long)]
    observed_devices: bool,
    /// Every client's `--frame-ms` (5, 10 or 20; default: the client's own, 20).
    #[arg(long)]
    frame_ms: Option<u32>,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let binary = match cli.binary {
        Some(b) => b,
        None => std::env::current_exe()?
            .parent()
            .context("own directory")?
            .join("cromulent"),
    };
    if !cli.private_loopback {
        println!("loopback is shared with the machine: no wire figures (see bench/client-cost.sh)");
    }
    let mut reports = Vec::new();
    for &users in &cli.users {
        let report = cost::run(&Options {
            binary: binary.clone(),
            users,
            window: Duration::from_secs(cli.window),
            settle: Duration::from_secs(cli.settle),
            perf_probes: cli.perf_probes,
            private_loopback: cli.private_loopback,
            observed_devices: cli.observed_devices,
            frame_ms: cli.frame_ms,
        })
        .with_context(|| format!("call of {users}"))?;
        print_report(&report);
        reports.push(report);
    }
    println!("\nRESULT client cost (observed client; % of one core; kbit/s per peer each way)");
    println!(
        "| users | CPU all talking | per remote peer | CPU only it talks | CPU silent | RSS MiB (peak) | payload kbit/s talking | wire kbit/s talking | wire kbit/s silent | opus encode/s, decode/s |"
    );
    for r in &reports {
        let a = &r.all_talking;
        println!(
            "| {} | {:.1} % | {:.2} % | {:.1} % | {:.1} % | {:.1} ({:.1}) | {:.1} | {} | {} | {} |",
            r.users,
            a.cpu_percent,
            a.cpu_percent / (r.users - 1).max(1) as f64,
            r.one_talking.cpu_percent,
            r.silent.cpu_percent,
            a.rss_kib as f64 / 1024.0,
            r.hwm_kib as f64 / 1024.0,
            a.payload_kbps_sent,
            fmt_opt(a.wire_kbps_per_stream),
            fmt_opt(r.silent.wire_kbps_per_stream),
            a.codec_calls_per_sec
                .map_or("-".into(), |(e, d)| format!("{e:.0} / {d:.0}")),
        );
    }
    Ok(())
}

fn fmt_opt(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{v:.2}"))
}

fn print_report(r: &cost::Report) {
    println!("call of {} users:", r.users);
    let line = |name: &str, w: &Window| {
        println!(
            "  {name:<22} CPU {:.2} % (mean of all clients {:.2} %), RSS {:.1} MiB, payload \
             sent {:.2} / received {:.2} kbit/s per peer, wire {} kbit/s per stream, opus calls/s {:?}",
            w.cpu_percent,
            w.cpu_percent_all,
            w.rss_kib as f64 / 1024.0,
            w.payload_kbps_sent,
            w.payload_kbps_received,
            fmt_opt(w.wire_kbps_per_stream),
            w.codec_calls_per_sec,
        );
        let busy: Vec<String> = w
            .threads
            .iter()
            .filter(|(_, p)| *p >= 0.5)
            .map(|(n, p)| format!("{n} {p:.1} %"))
            .collect();
        println!("  {:<22} threads: {}", "", busy.join(", "));
    };
    line("everyone talking", &r.all_talking);
    line("only observed talking", &r.one_talking);
    line("silent (PTT released)", &r.silent);
}
