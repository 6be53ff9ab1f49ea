//! `codec-frames`: a clip through Opus alone at 20, 10 and 5 ms frames, 5 ms both with the
//! VoIP application and with restricted low delay (issue 22's choice), optionally with random
//! packet loss; prints look-ahead, measured lag, packet modes, bitrate on the wire and the
//! codec's CPU, and writes each decoded clip for `bench/pesq_score.py`. See
//! `bench/codec-frames.sh`. Prints figures and must never fail on one.

use std::path::PathBuf;

use clap::Parser;
use cromulent::audio::{Application, EncoderConfig, FrameSize, read_wav_mono};
use cromulent_bench::codec;

/// Opus at each frame size and application (a benchmark; not a test).
#[derive(Parser, Debug)]
#[command(about, long_about)]
struct Cli {
    /// The clip: a 48 kHz mono WAV.
    #[arg(long)]
    clip: PathBuf,
    /// Packet loss, percent (each packet lost with this probability).
    #[arg(long, default_value_t = 0.0)]
    loss: f64,
    /// Seed of the loss.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Loss the encoder is told to expect, percent (the engine's least is 1).
    #[arg(long, default_value_t = 1)]
    expected_loss: u8,
    /// Bitrate of the 5 ms cases, bit/s (default: the client's, `EncoderConfig::for_frame`).
    #[arg(long)]
    bitrate_5ms: Option<i32>,
    /// Write each decoded clip here as NAME.wav (48 kHz mono 16-bit).
    #[arg(long)]
    out_dir: Option<PathBuf>,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let clip = read_wav_mono(&cli.clip)?;
    anyhow::ensure!(clip.sample_rate == 48_000, "the clip must be 48 kHz");
    let cases = [
        ("20ms-voip", FrameSize::Ms20, Application::Voip),
        ("10ms-voip", FrameSize::Ms10, Application::Voip),
        ("5ms-voip", FrameSize::Ms5, Application::Voip),
        (
            "5ms-lowdelay",
            FrameSize::Ms5,
            Application::RestrictedLowDelay,
        ),
    ];
    println!(
        "| case | look-ahead ms | measured lag ms | codec delay ms (frame + look-ahead) | SILK / hybrid / CELT packets | DTX | packets/s | payload kbit/s | wire kbit/s (IPv4) | FEC / PLC frames | encode / decode % of a core |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for (name, frame, application) in cases {
        let mut config = EncoderConfig {
            application,
            packet_loss_perc: cli.expected_loss,
            ..EncoderConfig::for_frame(frame)
        };
        if let (FrameSize::Ms5, Some(bitrate)) = (frame, cli.bitrate_5ms) {
            config.bitrate = bitrate;
        }
        let r = codec::run(&clip.samples, frame, config, cli.loss / 100.0, cli.seed)?;
        let ms = |samples: usize| samples as f64 / 48.0;
        let (enc, dec) = r.cpu_percent();
        println!(
            "| {name} | {:.1} | {:.1} | {:.1} | {} / {} / {} | {} | {:.0} | {:.1} | {:.1} | {} / {} | {:.2} / {:.2} |",
            ms(r.lookahead),
            ms(r.measured_lag),
            f64::from(frame.ms()) + ms(r.lookahead),
            r.silk,
            r.hybrid,
            r.celt,
            r.dtx,
            r.packets_per_s(),
            r.payload_kbps(),
            r.wire_kbps(),
            r.fec_frames,
            r.plc_frames,
            enc,
            dec,
        );
        if let Some(dir) = &cli.out_dir {
            cromulent_bench::write_pesq_wav(&dir.join(format!("{name}.wav")), &r.decoded)?;
        }
    }
    Ok(())
}
