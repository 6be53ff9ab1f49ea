//! `web-join`: join → first audio between the web client in a real Chromium and a
//! `cromulent headless` client, on loopback, in both offer roles and both directions. See
//! `bench/web-join.sh` (runs it in a private network namespace with only loopback: the browser
//! gathers on every interface it sees).
//!
//! - *browser hears terminal*: the terminal user sits in General playing a tone; the page
//!   clicks Join and times, in the page (`performance.now()`), from the click to the first
//!   sample above -26 dBFS of the peer's decoded audio (a WebAudio analyser on the stream
//!   the page plays, polled every 2 ms); then Leave.
//! - *terminal hears browser*: the page sits in General with its (fake, tone) microphone
//!   open; a `cromulent headless` joins and reports its `audio` event's `ms` (from sending
//!   `join` to the first decoded audio, as `bench/join-to-audio.sh`).
//!
//! Offer roles come from the names: of two user ids the one that sorts first offers.
//! Prints each series' summary; a benchmark, not a test: it never asserts a target.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Parser;
use cromulent_bench::stats::Summary;
use cromulent_test_support::browser::{Browser, Options, tone_wav};
use cromulent_test_support::process::{KillOnDrop, TempDir, free_port, poll_until};
use serde_json::{Value, json};

/// Join → first audio between the web client (Chromium) and the terminal client.
#[derive(Parser, Debug)]
#[command(about, long_about)]
struct Cli {
    /// Joins per series.
    #[arg(long, default_value_t = 20)]
    runs: usize,
    /// The `cromulent` binary (default: next to this one).
    #[arg(long)]
    binary: Option<PathBuf>,
}

const TERMINAL: &str = "bob";
const WAIT: Duration = Duration::from_secs(20);

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let binary = match cli.binary {
        Some(b) => b,
        None => std::env::current_exe()?
            .parent()
            .context("binary dir")?
            .join("cromulent"),
    };
    let dir = TempDir::new("web-join");
    let wav = dir.path("tone.wav");
    tone_wav(&wav, 440.0)?;
    for (web_name, role) in [("alice", "browser offers"), ("zoe", "terminal offers")] {
        let port = free_port();
        let _server = start_server(&binary, port)?;
        let page = format!("http://127.0.0.1:{port}/");
        let url = format!("ws://127.0.0.1:{port}");

        // The page listens, the terminal user talks.
        let mut talker = spawn_headless(
            &binary,
            &url,
            &["--join", "General", "--audio-in", "tone:660"],
        )?;
        let browser = Browser::launch(&Options {
            microphone_wav: Some(wav.clone()),
            ..Options::default()
        })?;
        sign_in(&browser, &page, web_name)?;
        let mut heard = Vec::new();
        for _ in 0..cli.runs {
            match browser_join_to_audio(&browser)? {
                Some(ms) => heard.push(ms),
                None => eprintln!("# {role}: no audio within 10 s"),
            }
            leave(&browser)?;
        }
        print("browser hears terminal", role, heard);
        talker.kill().ok();
        talker.wait().ok();

        // The terminal user joins, the page talks.
        set_open_mic_and_join(&browser)?;
        let script = dir.path("script");
        std::fs::write(
            &script,
            format!("join General\nwait audio {web_name} 10\nquit\n"),
        )?;
        let mut got = Vec::new();
        for _ in 0..cli.runs {
            let out = Command::new(&binary)
                .args(["headless", "--server", &url, "--user", TERMINAL, "--script"])
                .arg(&script)
                .stderr(Stdio::null())
                .output()?;
            let ms = String::from_utf8_lossy(&out.stdout)
                .lines()
                .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                .find(|e| e["event"] == "audio")
                .and_then(|e| e["ms"].as_f64());
            match ms {
                Some(ms) => got.push(ms),
                None => eprintln!("# {role}: the terminal heard nothing within 10 s"),
            }
            std::thread::sleep(Duration::from_millis(300));
        }
        print("terminal hears browser", role, got);
    }
    Ok(())
}

fn print(direction: &str, role: &str, samples: Vec<f64>) {
    let s = Summary::of_ms(samples);
    let f = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.0} ms"));
    println!(
        "join → first audio, {direction}, {role}: runs {}  min {}  p50 {}  p95 {}  max {}",
        s.count(),
        f(s.min()),
        f(s.percentile(50.0)),
        f(s.percentile(95.0)),
        f(s.max()),
    );
}

fn start_server(binary: &Path, port: u16) -> anyhow::Result<KillOnDrop> {
    let server = KillOnDrop::spawn(
        Command::new(binary)
            .args(["server", "--listen", &format!("127.0.0.1:{port}")])
            .env("CROMULENT_CHAT_DB", ":memory:")
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
        "cromulent server",
    );
    if !poll_until(Duration::from_secs(10), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    }) {
        bail!("the server did not come up");
    }
    Ok(server)
}

/// A headless client, its events read until it is connected in its channel.
fn spawn_headless(binary: &Path, url: &str, args: &[&str]) -> anyhow::Result<Child> {
    let mut child = Command::new(binary)
        .args(["headless", "--server", url, "--user", TERMINAL])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let stdout = child.stdout.take().context("stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    loop {
        let Some(line) = lines.next() else {
            bail!("the headless client ended before it was connected");
        };
        if line?.contains(r#""state":"connected""#) {
            break;
        }
    }
    // Keep reading (and dropping) its events so it never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    Ok(child)
}

fn sign_in(browser: &Browser, page: &str, name: &str) -> anyhow::Result<()> {
    browser.goto(page)?;
    browser.clear("#name")?;
    browser.type_into("#name", name)?;
    browser.click("#connect")?;
    if browser
        .wait_for("document.body.dataset.self", WAIT)
        .is_none()
    {
        bail!("the page was not welcomed");
    }
    Ok(())
}

/// Click Join; milliseconds until the terminal user's tone is heard in the page.
fn browser_join_to_audio(browser: &Browser) -> anyhow::Result<Option<f64>> {
    let ms = browser.execute_async(
        "const [peer, done] = arguments;
         const ctx = new AudioContext();
         const buf = new Float32Array(256);
         let analyser = null;
         const t0 = performance.now();
         document.querySelector('li.channel[data-channel-id=\"1\"] button.join').click();
         const poll = () => {
           const now = performance.now();
           const el = document.querySelector(`#remote-audio audio[data-peer=\"${peer}\"]`);
           if (!analyser && el && el.srcObject) {
             const src = ctx.createMediaStreamSource(el.srcObject);
             analyser = ctx.createAnalyser();
             analyser.fftSize = 256;
             src.connect(analyser);
           }
           if (analyser) {
             analyser.getFloatTimeDomainData(buf);
             let peak = 0;
             for (const v of buf) peak = Math.max(peak, Math.abs(v));
             if (peak > 0.05) { ctx.close(); done(now - t0); return; }
           }
           if (now - t0 > 10000) { ctx.close(); done(null); return; }
           setTimeout(poll, 2);
         };
         poll();",
        &[json!(TERMINAL)],
    )?;
    Ok(ms.as_f64())
}

fn leave(browser: &Browser) -> anyhow::Result<()> {
    browser.click("#leave")?;
    if browser
        .wait_for(
            "document.querySelector('#voicebar').dataset.state === 'idle' && \
             !document.querySelector('#remote-audio audio')",
            WAIT,
        )
        .is_none()
    {
        bail!("the page did not leave");
    }
    std::thread::sleep(Duration::from_millis(300));
    Ok(())
}

fn set_open_mic_and_join(browser: &Browser) -> anyhow::Result<()> {
    browser.execute(
        "const s = document.querySelector('#talk-mode'); s.value = 'open';
         s.dispatchEvent(new Event('change', {bubbles: true}));
         document.querySelector('li.channel[data-channel-id=\"1\"] button.join').click();",
        &[],
    )?;
    if browser
        .wait_for(
            "document.querySelector('#voicebar').dataset.state === 'connected' && \
             document.querySelector('#talk').getAttribute('aria-pressed') === 'true'",
            WAIT,
        )
        .is_none()
    {
        bail!("the page did not sit down with its microphone open");
    }
    Ok(())
}
