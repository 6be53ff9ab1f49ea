//! `cromulent-bench`: the tools behind `BENCHMARKS.md`. Benchmarks, not tests: they print
//! figures and never assert timings; each has one command under `bench/`.
//!
//! - [`loadgen`] (binary `loadgen`): server capacity — idle connections, memory per
//!   connection, joins per second, presence fan-out;
//! - [`probe`] (binary `latency-probe`): mouth-to-ear latency through two real engines in one
//!   process, direct or through a loopback coturn, optionally behind [`impair`];
//! - [`impair`]: a UDP relay that delays (with jitter) and drops upstream datagrams — the
//!   user-space stand-in for `tc netem`, which this machine's kernel lacks;
//! - [`speech`] (binary `speech-call`): speech through a real call, recorded at the receiver,
//!   for the speech-quality score of `bench/speech-quality.sh`;
//! - [`apm`] (binary `apm-compare`): one audio processing module alone, offline — `sonora`
//!   against the C++ WebRTC module — for `bench/apm-compare.sh`;
//! - [`cost`] (binary `client-cost`): CPU, memory and bandwidth of one headless client in calls
//!   of several users;
//! - [`codec`] (binary `codec-frames`): Opus alone at each frame size and application (the
//!   low-delay mode's choice, bitrate and codec CPU);
//! - [`stats`], [`procfs`]: percentiles and what is read from `/proc`.
// No unsafe code but apm-compare's FFI to libspeexdsp (the `speex` feature, never in the product,
// which forbids it).
#![deny(unsafe_code)]

pub mod apm;
pub mod codec;
pub mod cost;
pub mod impair;
pub mod loadgen;
pub mod probe;
pub mod procfs;
pub mod speech;
pub mod stats;

/// Write `samples` as 48 kHz mono 16-bit WAV, as `bench/pesq_score.py` reads it.
pub fn write_pesq_wav(path: &std::path::Path, samples: &[f32]) -> anyhow::Result<()> {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 48_000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut wav = hound::WavWriter::create(path, spec)?;
    for s in samples {
        wav.write_sample((s.clamp(-1.0, 1.0) * 32767.0) as i16)?;
    }
    wav.finalize()?;
    Ok(())
}

/// Logs of a benchmark tool to stderr (its figures go to stdout), at `RUST_LOG` or `default`.
pub fn init_logging(default: &str) {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| default.into()),
        )
        .with_writer(std::io::stderr)
        .init();
}
