//! `speech-call`: a clip of speech through the real call path (two engines, relay-only through
//! a loopback coturn, optionally behind loss/delay/jitter), what the receiver heard written to
//! a WAV file for `bench/speech-quality.sh` to score. A benchmark tool; not a test.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use cromulent::audio::analysis::speech_level_dbfs;
use cromulent::audio::processing::Processing;
use cromulent_bench::impair::Impairment;
use cromulent_bench::speech::{self, Options, RoomOptions};

/// Speech through a real call, recorded at the receiver (a benchmark; not a test).
#[derive(Parser, Debug)]
#[command(about, long_about)]
struct Cli {
    /// The speech: a 48 kHz WAV file (any width; channels are mixed to mono).
    #[arg(long)]
    clip: PathBuf,
    /// Where the receiver's audio goes (48 kHz mono, 16-bit).
    #[arg(long)]
    out: PathBuf,
    /// DELAY_MS,JITTER_MS,LOSS_PERCENT on each engine's upload, e.g. `20,10,5` or `0,0,10`.
    #[arg(long, value_name = "DELAY_MS,JITTER_MS,LOSS_PERCENT")]
    impair: Option<Impairment>,
    /// Seed of the impairment's random draws.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Milliseconds from the call connecting to the clip.
    #[arg(long, default_value_t = 2000)]
    settle_ms: u64,
    /// No call: the clip through Opus alone as the engine sets it up, each packet lost with
    /// the impairment's loss (the reference point for the call's figures).
    #[arg(long)]
    opus_alone: bool,
    /// The sender's capture processing: all, none, or a list (echo,noise,gain,voice).
    #[arg(long, default_value = "none")]
    processing: Processing,
    /// Scale the clip so its speech sits at this level (dBFS, RMS over speech).
    #[arg(long, value_name = "DBFS")]
    level: Option<f32>,
    /// Play the clip this many times back to back (gain control converging).
    #[arg(long, default_value_t = 1)]
    repeat: usize,
    /// Mix this noise (48 kHz WAV, looped) into the sender's microphone...
    #[arg(long, value_name = "WAV")]
    noise: Option<PathBuf>,
    /// ...at this speech-to-noise ratio, dB.
    #[arg(long, default_value_t = 5.0)]
    snr: f32,
    /// Send the noise alone (no speech): what a noisy silent user costs.
    #[arg(long)]
    noise_only: bool,
    /// The noise starts with the clip (and the measurement), not with the call: the room's
    /// noise and the processing's first second of it (a fan that starts) are in the figures.
    #[arg(long)]
    noise_with_clip: bool,
    /// The echo case: the receiver says this (48 kHz WAV, looped) and the sender hears it
    /// back through a room; the clip starts after `--near-after-s`.
    #[arg(long, value_name = "WAV")]
    far: Option<PathBuf>,
    /// The room's delay from speaker to microphone, ms.
    #[arg(long, default_value_t = 80)]
    room_delay_ms: u64,
    /// The room's direct-path gain (reflections follow it).
    #[arg(long, default_value_t = 0.5)]
    room_gain: f32,
    /// No call: time the capture processing alone on 60 s of the clip (with `--far` as the
    /// speaker's sound) and print its share of a core.
    #[arg(long)]
    cost: bool,
    /// Seconds of far-end single talk before the sender speaks.
    #[arg(long, default_value_t = 6.0)]
    near_after_s: f64,
}

fn read_48k(path: &std::path::Path) -> anyhow::Result<Vec<f32>> {
    let audio = cromulent::audio::read_wav_mono(path)?;
    if audio.sample_rate != 48_000 {
        anyhow::bail!(
            "{}: {} Hz; it must be 48 kHz (sox IN -r 48000 -c 1 OUT)",
            path.display(),
            audio.sample_rate
        );
    }
    Ok(audio.samples)
}

fn power(x: &[f32]) -> f64 {
    x.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / x.len().max(1) as f64
}

fn main() -> anyhow::Result<()> {
    cromulent_bench::init_logging("error");
    let cli = Cli::parse();
    let mut clip = read_48k(&cli.clip)?.repeat(cli.repeat.max(1));
    if let Some(level) = cli.level {
        let gain = 10f32.powf((level - speech_level_dbfs(&clip)) / 20.0);
        clip.iter_mut().for_each(|s| *s *= gain);
    }
    let mut ambient = None;
    if let Some(noise) = &cli.noise {
        let mut noise = read_48k(noise)?;
        anyhow::ensure!(!noise.is_empty(), "the noise file holds no samples");
        // The noise's power against the speech's (over the speech, pauses left out).
        let speech = 10f64.powf(f64::from(speech_level_dbfs(&clip)) / 10.0);
        let gain = (speech / power(&noise) / 10f64.powf(f64::from(cli.snr) / 10.0)).sqrt() as f32;
        noise.iter_mut().for_each(|s| *s *= gain);
        if cli.noise_only {
            clip.fill(0.0);
        }
        if cli.noise_with_clip || cli.opus_alone {
            for (i, s) in clip.iter_mut().enumerate() {
                *s += noise[i % noise.len()];
            }
        } else {
            ambient = Some(Arc::new(noise));
        }
    }
    let room = match &cli.far {
        Some(far) => Some(RoomOptions {
            far: Arc::new(read_48k(far)?),
            delay: Duration::from_millis(cli.room_delay_ms),
            gain: cli.room_gain,
            near_after: Duration::from_secs_f64(cli.near_after_s),
        }),
        None => None,
    };
    let opts = Options {
        clip: Arc::new(clip),
        impair: cli.impair,
        seed: cli.seed,
        settle: Duration::from_millis(cli.settle_ms),
        processing: cli.processing,
        room,
        ambient,
    };
    if cli.cost {
        let far = opts
            .room
            .as_ref()
            .map_or_else(|| opts.clip.clone(), |r| r.far.clone());
        let seconds = 60;
        let took = speech::processing_cost(&opts.clip, &far, seconds, opts.processing);
        println!(
            "RESULT processing cost: {} on {seconds} s of audio in {:.0} ms = {:.2} % of a core",
            opts.processing,
            took.as_secs_f64() * 1000.0,
            took.as_secs_f64() / seconds as f64 * 100.0
        );
        return Ok(());
    }
    if cli.opus_alone {
        let loss = cli.impair.map_or(0.0, |i| i.loss);
        let heard = speech::opus_alone(&opts.clip, loss, cli.seed, opts.processing)?;
        cromulent_bench::write_pesq_wav(&cli.out, &heard)?;
        println!(
            "RESULT speech-call: seed {} Opus alone, loss {:.1} %",
            cli.seed,
            loss * 100.0
        );
        return Ok(());
    }
    let run = tokio::runtime::Runtime::new()?.block_on(speech::run(&opts))?;
    cromulent_bench::write_pesq_wav(&cli.out, &run.heard)?;
    // The last pass of the clip as heard (from its start on the sender's side).
    let pass = opts.clip.len() / cli.repeat.max(1);
    let last = run.heard.len().saturating_sub(pass + 48_000)..run.heard.len();
    println!(
        "RESULT speech-call: level heard {:.1} dBFS (speech, last pass), sent {:.2} kbit/s, mean power heard {:.1} dBFS",
        speech_level_dbfs(&run.heard[last.clone()]),
        run.sent_bytes_per_s.unwrap_or(f64::NAN) * 8.0 / 1000.0,
        10.0 * power(&run.heard[last]).max(1e-12).log10(),
    );
    if opts.room.is_some() {
        print_erle(&run, cli.near_after_s);
    }
    let r = run.receiver.as_ref();
    println!(
        "RESULT speech-call: seed {} heard {:.2} s, receiver loss {:.1} %, FEC rebuilt {}, concealed {}, impairment {:?}",
        cli.seed,
        run.heard.len() as f64 / 48_000.0,
        r.map_or(0.0, |r| r.loss) * 100.0,
        r.map_or(0, |r| r.fec_recovered),
        r.map_or(0, |r| r.plc_frames),
        run.impaired,
    );
    Ok(())
}

/// The echo return loss enhancement per second of far-end single talk: the echo's power in
/// the sender's microphone against the power of what the receiver heard from the sender
/// over the same second (loopback: the path's delay is a few tens of ms). The median over
/// the seconds from the second one on is "after convergence".
fn print_erle(run: &speech::Run, near_after_s: f64) {
    let frames_per_s = 50;
    let seconds = (near_after_s.floor() as usize).min(run.echo_power.len() / frames_per_s);
    let mut erle = Vec::new();
    for k in 0..seconds {
        let echo = run.echo_power[k * frames_per_s..(k + 1) * frames_per_s]
            .iter()
            .sum::<f64>()
            / frames_per_s as f64;
        let heard = power(
            &run.heard[(k * 48_000).min(run.heard.len())..((k + 1) * 48_000).min(run.heard.len())],
        );
        erle.push(10.0 * (echo / heard.max(1e-15)).log10());
    }
    let shown: Vec<String> = erle.iter().map(|e| format!("{e:.1}")).collect();
    let mut settled: Vec<f64> = erle.iter().skip(2).copied().collect();
    settled.sort_by(f64::total_cmp);
    let median = settled.get(settled.len() / 2).copied().unwrap_or(f64::NAN);
    println!(
        "RESULT speech-call: ERLE by second {} dB; after 2 s median {median:.1} dB",
        shown.join(" ")
    );
}
