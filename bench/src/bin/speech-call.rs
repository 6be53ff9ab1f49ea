//! `speech-call`: a clip of speech through the real call path (two engines, relay-only through
//! a loopback coturn, optionally behind loss/delay/jitter), what the receiver heard written to
//! a WAV file for `bench/speech-quality.sh` to score. A benchmark tool; not a test.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use cromulent_bench::impair::Impairment;
use cromulent_bench::speech::{self, Options};

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
}

fn main() -> anyhow::Result<()> {
    cromulent_bench::init_logging("error");
    let cli = Cli::parse();
    let clip = cromulent::audio::read_wav_mono(&cli.clip)?;
    if clip.sample_rate != 48_000 {
        anyhow::bail!(
            "{}: {} Hz; the clip must be 48 kHz (sox IN -r 48000 -c 1 OUT)",
            cli.clip.display(),
            clip.sample_rate
        );
    }
    let opts = Options {
        clip: Arc::new(clip.samples),
        impair: cli.impair,
        seed: cli.seed,
        settle: Duration::from_millis(cli.settle_ms),
    };
    if cli.opus_alone {
        let loss = cli.impair.map_or(0.0, |i| i.loss);
        let heard = speech::opus_alone(&opts.clip, loss, cli.seed)?;
        write_wav(&cli.out, &heard)?;
        println!(
            "RESULT speech-call: seed {} Opus alone, loss {:.1} %",
            cli.seed,
            loss * 100.0
        );
        return Ok(());
    }
    let run = tokio::runtime::Runtime::new()?.block_on(speech::run(&opts))?;
    write_wav(&cli.out, &run.heard)?;
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

/// 48 kHz mono 16-bit, as `bench/pesq_score.py` reads it.
fn write_wav(path: &std::path::Path, samples: &[f32]) -> anyhow::Result<()> {
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
