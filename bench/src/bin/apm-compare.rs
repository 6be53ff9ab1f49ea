//! `apm-compare`: one case through one audio processing module offline (`sonora`, AEC3
//! configured otherwise from its own crate, the C++ WebRTC module with the `webrtc-apm`
//! feature, Speex's echo canceller with the `speex` feature), what came out written to a WAV file for `bench/apm-compare.sh` to score. A
//! benchmark tool; not a test.

use std::path::{Path, PathBuf};

use clap::Parser;
use clap::builder::TypedValueParser as _;
use cromulent_bench::apm::{self, Aec3Preset, Module, NoiseLevel, RoomSpec, Stages};

/// One case through one audio processing module, offline (a benchmark; not a test).
#[derive(Parser, Debug)]
#[command(about, long_about)]
struct Cli {
    #[arg(long, value_enum)]
    module: Module,
    /// The near-end speech: a 48 kHz WAV file.
    #[arg(long)]
    clip: PathBuf,
    /// What left the module from the near end's start on (48 kHz mono, 16-bit).
    #[arg(long)]
    out: PathBuf,
    /// Echo cancellation on.
    #[arg(long)]
    echo: bool,
    /// The high-pass filter on.
    #[arg(long)]
    high_pass: bool,
    /// Speex's residual-echo suppressor after its echo canceller (the speex modules).
    #[arg(long)]
    residual_echo: bool,
    /// The aec3-blocks module's configuration.
    #[arg(long, value_enum, default_value = "default")]
    aec3: Aec3Preset,
    /// Noise suppression at this level.
    #[arg(long, value_enum)]
    noise_level: Option<NoiseLevel>,
    /// The speaker plays this (48 kHz WAV, looped from the start)...
    #[arg(long, value_name = "WAV")]
    far: Option<PathBuf>,
    /// ...and the microphone hears it this much later, ms...
    #[arg(long, default_value_t = 80)]
    room_delay_ms: usize,
    /// ...at this direct-path gain, reflections after it (0: not at all).
    #[arg(long, default_value_t = 0.5)]
    room_gain: f32,
    /// The speaker is nonlinear: soft clipping tanh(k x) / k at this k (e.g. 2: a −3 dBFS
    /// peak comes out 2.4 dB lower, with its harmonics).
    #[arg(long, value_name = "K")]
    room_drive: Option<f32>,
    /// Seconds before the near end speaks (far-end single talk when `--far`).
    #[arg(long, default_value_t = 0.0)]
    near_after_s: f64,
    /// The module's highest internal rate, Hz: 32000 or 48000 (default: the module's own).
    #[arg(long, value_parser = clap::builder::PossibleValuesParser::new(["32000", "48000"]).map(|s| s.parse::<u32>().expect("one of the listed values")))]
    internal_rate: Option<u32>,
    /// Mix this noise (48 kHz WAV, looped) into the microphone...
    #[arg(long, value_name = "WAV")]
    noise: Option<PathBuf>,
    /// ...at this speech-to-noise ratio, dB.
    #[arg(long, default_value_t = 5.0)]
    snr: f32,
    /// The noise alone (no speech): prints how much the module took off it.
    #[arg(long)]
    noise_only: bool,
}

fn read_48k(path: &Path) -> anyhow::Result<Vec<f32>> {
    let audio = cromulent::audio::read_wav_mono(path)?;
    anyhow::ensure!(
        audio.sample_rate == 48_000,
        "{}: {} Hz; it must be 48 kHz",
        path.display(),
        audio.sample_rate
    );
    Ok(audio.samples)
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let clip = read_48k(&cli.clip)?;
    let far = cli.far.as_deref().map(read_48k).transpose()?;
    let noise = cli.noise.as_deref().map(read_48k).transpose()?;
    let room = RoomSpec {
        delay_ms: cli.room_delay_ms,
        gain: cli.room_gain,
        drive: cli.room_drive,
    };
    let scene = apm::scene(
        &clip,
        cli.near_after_s,
        far.as_deref().map(|f| (f, room)),
        noise.as_deref().map(|n| (n, cli.snr, cli.noise_only)),
    );
    let stages = Stages {
        echo: cli.echo,
        high_pass: cli.high_pass,
        noise: cli.noise_level,
        internal_rate: cli.internal_rate,
        residual_echo: cli.residual_echo,
        aec3: cli.aec3,
    };
    let mut processor = apm::processor(cli.module, stages)?;
    let outcome = apm::run(processor.as_mut(), &scene);
    let seconds = scene.mic.len() as f64 / 48_000.0;
    println!(
        "RESULT apm-compare: {:?} {stages:?}: {:.1} ms for {seconds:.1} s of audio = {:.2} % of a core",
        cli.module,
        outcome.took.as_secs_f64() * 1000.0,
        outcome.took.as_secs_f64() / seconds * 100.0
    );
    if cli.noise_only {
        let settled = 48_000..scene.mic.len();
        let cut = 10.0
            * (apm::power(&scene.mic[settled.clone()])
                / apm::power(&outcome.out[settled]).max(1e-15))
            .log10();
        println!("RESULT apm-compare: noise alone cut {cut:.1} dB (after the first second)");
    }
    if far.is_some() && cli.room_gain > 0.0 && scene.near_at >= 3 * 48_000 {
        let erle = apm::erle_by_second(&scene, &outcome.out);
        let mut settled: Vec<f64> = erle.iter().skip(2).copied().collect();
        settled.sort_by(f64::total_cmp);
        let shown: Vec<String> = erle.iter().map(|e| format!("{e:.1}")).collect();
        println!(
            "RESULT apm-compare: ERLE by second {} dB; after 2 s median {:.1} dB; the module's own: ERLE {:?} dB, delay {:?} ms",
            shown.join(" "),
            settled[settled.len() / 2],
            outcome.echo_stats.0.map(|e| (e * 10.0).round() / 10.0),
            outcome.echo_stats.1,
        );
    }
    cromulent_bench::write_pesq_wav(&cli.out, &outcome.out[scene.near_at..])
}
