//! The demo's echo bot, end to end: the real server and the bot in this process (as
//! `cromulent demo` runs them), a real `cromulent headless` talking to it over real WebRTC.
//! A 0.6 s burst of 440 Hz must come back about a second later, once, and then silence.

mod support;

use std::time::{Duration, Instant};

use cromulent::audio::analysis::{dominant_frequency, rms};
use cromulent::engine::EngineCommand;
use cromulent::tui::demo::{ECHO_BOT, ECHO_CHANNEL, spawn_echo_bot};
use support::{Client, LONG, TempDir, read_wav, tail};

#[test]
fn the_echo_bot_plays_back_what_it_hears_a_second_later_once() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let _inside = rt.enter();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let url = format!("ws://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    rt.spawn(cromulent_server::run(
        listener,
        cromulent_server::config::Config::default(),
        async {
            let _ = stopped.await;
        },
    ));
    let bot = spawn_echo_bot(&url, Duration::from_secs(1)).expect("echo bot starts");

    let dir = TempDir::new("echo");
    let wav = dir.path("heard.wav");
    let out = format!("wav:{}", wav.display());
    let mut alice = Client::start(
        &url,
        "alice",
        &[
            "--join",
            ECHO_CHANNEL,
            "--talk",
            "ptt",
            "--audio-in",
            "tone:440",
            "--audio-out",
            &out,
            "--script",
            "-",
        ],
    );
    alice.wait_peer_connected(ECHO_BOT, LONG);
    // Let the bot's side settle, so its first decoded frame is our burst.
    std::thread::sleep(Duration::from_millis(300));

    let talked_at = Instant::now();
    alice.say("talk on");
    std::thread::sleep(Duration::from_millis(600));
    alice.say("talk off");
    let first = alice.wait_audio(ECHO_BOT, Duration::from_secs(10));
    let delay = first.at - talked_at;
    assert!(
        (Duration::from_millis(900)..Duration::from_millis(1800)).contains(&delay),
        "echo came back after {delay:?}"
    );
    eprintln!("echo delay {delay:?}");
    // The echo lasts as long as the burst; then a second and a half of nothing.
    std::thread::sleep(Duration::from_millis(2500));
    assert!(alice.terminate().success());
    bot.send(EngineCommand::Shutdown);
    let _ = stop.send(());

    let heard = read_wav(&wav);
    let frames: Vec<&[f32]> = heard.chunks(960).collect();
    let loud: Vec<usize> = (0..frames.len())
        .filter(|&i| rms(frames[i]) > 0.05)
        .collect();
    let loud_ms = loud.len() * 20;
    assert!(
        (400..=900).contains(&loud_ms),
        "the 600 ms burst came back once: {loud_ms} ms of echo"
    );
    eprintln!("echo length {loud_ms} ms");
    let echo: Vec<f32> = loud
        .iter()
        .flat_map(|&i| frames[i].iter().copied())
        .collect();
    let f = dominant_frequency(&echo, 48_000).expect("a tone in the echo");
    assert!((f - 440.0).abs() < 5.0, "echo at {f} Hz");
    // Contiguous: one echo, not repeats (the bot never hears itself).
    let span = loud.last().unwrap() - loud.first().unwrap() + 1;
    assert!(
        span <= loud.len() + 5,
        "echo frames spread over {span} frames"
    );
    assert!(rms(tail(&heard, 1.0)) < 0.005, "silence after the echo");
}
