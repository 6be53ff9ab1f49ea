//! The web client in a real browser (issue 17): Chromium (Debian's `chromium`, over
//! WebDriver) opens the page the server serves, joins a voice channel with `cromulent
//! headless` users and they hear each other, checked by the audio's frequency on both sides:
//! in both offer roles, three-way, relay-only through a real coturn. The VoiceBar in each
//! state, push-to-talk from key events, and the page on a phone-sized screen. A cluster
//! instance killed under the page: it waits for its old seat and sits again on the survivor.
//!
//! Each test runs alone in a network namespace of its own with only loopback
//! ([`netns::isolated`]): the browser gathers candidates on every interface and nothing may
//! leave this machine; isolated runs take turns (a browser and two engines already fill two
//! cores).

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use cromulent::audio::analysis::{dominant_frequency, rms, tone_share};
use cromulent_test_support::browser::{self, Browser, Options};
use cromulent_test_support::netns::{self, isolated};
use serde_json::{Value, json};
use support::coturn::Coturn;
use support::{Client, Failover, LONG, Server, TempDir, ToneCaller, free_port, read_wav, tail};

const SHORT: Duration = Duration::from_secs(10);

/// The browser's fake microphone: a `freq` Hz tone (looped).
fn tone_wav(dir: &TempDir, freq: f32) -> PathBuf {
    let path = dir.path(&format!("tone-{freq}.wav"));
    browser::tone_wav(&path, f64::from(freq)).unwrap();
    path
}

fn browser_with_tone(dir: &TempDir, freq: f32) -> Browser {
    let options = Options {
        microphone_wav: Some(tone_wav(dir, freq)),
        ..Options::default()
    };
    Browser::launch(&options).expect("launch chromium")
}

/// With `CROMULENT_SCREENSHOTS=DIR`, save the window as `DIR/NAME` (the pictures in docs/).
fn screenshot(browser: &Browser, name: &str) {
    if let Some(dir) = std::env::var_os("CROMULENT_SCREENSHOTS") {
        browser.screenshot(&Path::new(&dir).join(name)).unwrap();
    }
}

fn page_url(server: &Server) -> String {
    format!("http://{}/", server.addr)
}

/// Open the page, sign in as `name` (open mode) and wait for the welcome.
fn sign_in(browser: &Browser, server: &Server, name: &str) {
    sign_in_at(browser, &page_url(server), name);
}

/// As [`sign_in`], with the page opened at `url` (e.g. through a front).
fn sign_in_at(browser: &Browser, url: &str, name: &str) {
    browser.goto(url).unwrap();
    // The page offers the last name used in this browser; this user types their own.
    browser.clear("#name").unwrap();
    browser.type_into("#name", name).unwrap();
    browser.click("#connect").unwrap();
    let me = browser.wait_for("document.body.dataset.self", SHORT);
    assert_eq!(me, Some(json!(name)), "welcomed as {name}");
}

/// Choose a talk mode through the page's own control.
fn talk_mode(browser: &Browser, mode: &str) {
    browser
        .execute(
            "const s = document.querySelector('#talk-mode'); s.value = arguments[0];
             s.dispatchEvent(new Event('change', {bubbles: true}));",
            &[json!(mode)],
        )
        .unwrap();
}

fn join(browser: &Browser, channel: u32) {
    browser
        .click(&format!(
            "li.channel[data-channel-id=\"{channel}\"] button.join"
        ))
        .unwrap();
}

fn voicebar(browser: &Browser) -> (String, String, String) {
    let v = browser
        .execute(
            "const b = document.querySelector('#voicebar');
             return [b.dataset.state || '', b.dataset.reason || '',
                     document.querySelector('#voicebar-text').textContent];",
            &[],
        )
        .unwrap();
    let s = |i: usize| v[i].as_str().unwrap_or("").to_owned();
    (s(0), s(1), s(2))
}

fn wait_voicebar(browser: &Browser, state: &str, limit: Duration) -> (String, String, String) {
    let js = format!("document.querySelector('#voicebar').dataset.state === '{state}'");
    let found = browser.wait_for(&js, limit).is_some();
    let bar = voicebar(browser);
    assert!(found, "voicebar {state} within {limit:?}, is {bar:?}");
    bar
}

fn wait_peer_connected(browser: &Browser, user: &str, limit: Duration) {
    let js = format!(
        "document.querySelector('li.peer[data-user=\"{user}\"][data-state=\"connected\"]')"
    );
    assert!(
        browser.wait_for(&js, limit).is_some(),
        "the page shows {user} connected"
    );
}

/// `secs` of what the page plays for `peer`, as the page hears it (its `<audio>` element's
/// stream through WebAudio), at 48 kHz.
fn heard_by_browser(browser: &Browser, peer: &str, secs: f32) -> Vec<f32> {
    let got = browser
        .execute_async(
            "const [peer, secs, done] = arguments;
             const el = document.querySelector(`#remote-audio audio[data-peer=\"${peer}\"]`);
             if (!el || !el.srcObject) { done({error: 'no audio element for ' + peer}); return; }
             const ctx = new AudioContext({sampleRate: 48000});
             ctx.resume();
             const src = ctx.createMediaStreamSource(el.srcObject);
             const proc = ctx.createScriptProcessor(4096, 1, 1);
             const out = []; let n = 0; const want = secs * ctx.sampleRate;
             proc.onaudioprocess = (e) => {
               if (n >= want) return;
               const d = e.inputBuffer.getChannelData(0);
               for (let i = 0; i < d.length; i++) out.push(d[i]);
               n += d.length;
               if (n >= want) { proc.disconnect(); src.disconnect(); ctx.close();
                                done({samples: out}); }
             };
             src.connect(proc); proc.connect(ctx.destination);",
            &[json!(peer), json!(secs)],
        )
        .expect("capture the page's audio");
    assert!(got["error"].is_null(), "{got}");
    got["samples"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap_or(0.0) as f32)
        .collect()
}

fn assert_tone(samples: &[f32], freq: f32, who: &str) {
    let f = dominant_frequency(samples, 48_000).unwrap_or(0.0);
    assert!(
        (f - freq).abs() <= 5.0,
        "{who}: dominant {f} Hz, want {freq}"
    );
    assert!(
        rms(samples) > 0.02,
        "{who}: real energy, rms {}",
        rms(samples)
    );
    assert!(
        tone_share(samples, 48_000, freq) > 0.5,
        "{who}: most power at {freq} Hz"
    );
}

/// The browser user `web_name` (microphone: 440 Hz) and `cromulent headless` user `bob`
/// (660 Hz, on `bob_frame_ms` frames) in General hear each other.
fn browser_and_terminal_talk(web_name: &str, bob_frame_ms: &str) {
    let dir = TempDir::new("web-two");
    let server = Server::start();
    let wav = dir.path("bob.wav");
    let mut bob = ToneCaller {
        name: "bob",
        url: server.url(),
        hz: 660.0,
        frame_ms: bob_frame_ms,
    }
    .client(&wav);
    bob.wait_state("connected", LONG);

    let browser = browser_with_tone(&dir, 440.0);
    sign_in(&browser, &server, web_name);
    talk_mode(&browser, "open");
    join(&browser, 1);
    wait_peer_connected(&browser, "bob", LONG);
    let bar = wait_voicebar(&browser, "connected", SHORT);
    assert!(
        bar.2.contains("General"),
        "the bar names the channel: {bar:?}"
    );
    bob.wait_peer_connected(web_name, LONG);
    bob.wait_audio(web_name, LONG);

    let heard = heard_by_browser(&browser, "bob", 1.5);
    assert_tone(tail(&heard, 1.0), 660.0, "the browser hears bob");
    std::thread::sleep(Duration::from_secs(1));
    assert!(bob.terminate().success(), "bob exits 0: {}", bob.stderr());
    let bob_heard = read_wav(&wav);
    assert_tone(tail(&bob_heard, 1.0), 440.0, "bob hears the browser");
}

#[test]
fn browser_offering_and_terminal_hear_each_other() {
    if !isolated("browser_offering_and_terminal_hear_each_other") {
        return;
    }
    // "alice" < "bob": the page makes the offers.
    browser_and_terminal_talk("alice", "20");
}

/// Issue 22's low-delay mode against a browser: Chromium receives our 5 ms CELT packets
/// (below the `minptime=10` both sides' SDP names) and we play its 20 ms ones.
#[test]
fn a_five_ms_terminal_and_the_browser_hear_each_other() {
    if !isolated("a_five_ms_terminal_and_the_browser_hear_each_other") {
        return;
    }
    browser_and_terminal_talk("alice", "5");
}

#[test]
fn terminal_offering_and_browser_hear_each_other() {
    if !isolated("terminal_offering_and_browser_hear_each_other") {
        return;
    }
    // "bob" < "zoe": our engine makes the offers, the page answers.
    browser_and_terminal_talk("zoe", "20");
}

#[test]
fn three_way_call_with_two_engines() {
    if !isolated("three_way_call_with_two_engines") {
        return;
    }
    let dir = TempDir::new("web-three");
    let server = Server::start();
    let wav_ann = dir.path("ann.wav");
    let wav_cid = dir.path("cid.wav");
    let tone_caller = |name, hz| ToneCaller {
        name,
        url: server.url(),
        hz,
        frame_ms: "20",
    };
    let mut ann = tone_caller("ann", 660.0).client(&wav_ann);
    let mut cid = tone_caller("cid", 880.0).client(&wav_cid);
    ann.wait_peer_connected("cid", LONG);
    let browser = browser_with_tone(&dir, 440.0);
    // "bea": offers to cid, answers ann.
    sign_in(&browser, &server, "bea");
    talk_mode(&browser, "open");
    // A steady tone is what noise suppression and gain control are made to remove (with them
    // on, bea's tone reaches the others ~13 dB down): off here, from the page's own settings,
    // so the mix can be read by its frequencies.
    browser.click("#settings summary").unwrap();
    for id in ["#echo-cancellation", "#noise-suppression", "#auto-gain"] {
        browser.click(id).unwrap();
    }
    join(&browser, 1);
    wait_peer_connected(&browser, "ann", LONG);
    wait_peer_connected(&browser, "cid", LONG);
    wait_voicebar(&browser, "connected", SHORT);
    ann.wait_audio("bea", LONG);
    cid.wait_audio("bea", LONG);
    assert_tone(
        tail(&heard_by_browser(&browser, "ann", 1.5), 1.0),
        660.0,
        "bea hears ann",
    );
    assert_tone(
        tail(&heard_by_browser(&browser, "cid", 1.5), 1.0),
        880.0,
        "bea hears cid",
    );
    screenshot(&browser, "web-call.png");
    std::thread::sleep(Duration::from_secs(1));
    assert!(ann.terminate().success());
    assert!(cid.terminate().success());
    for (wav, who) in [(&wav_ann, "ann"), (&wav_cid, "cid")] {
        let heard = read_wav(wav);
        let last = tail(&heard, 1.0);
        let (p440, p660, p880) = (
            tone_share(last, 48_000, 440.0),
            tone_share(last, 48_000, 660.0),
            tone_share(last, 48_000, 880.0),
        );
        assert!(
            p440 > 0.2,
            "{who} hears bea's 440 Hz in the mix: power 440 {p440:.3}, 660 {p660:.3}, 880 {p880:.3}, rms {}",
            rms(last)
        );
    }
}

#[test]
fn relay_only_through_coturn_on_both_sides() {
    if !isolated("relay_only_through_coturn_on_both_sides") {
        return;
    }
    let dir = TempDir::new("web-relay");
    let coturn = Coturn::builder().start();
    let url = coturn.turn_url();
    let server = Server::start_with(
        free_port(),
        &[],
        &[
            ("TURN_PROVIDER", "coturn"),
            ("TURN_SECRET", coturn.secret()),
            ("TURN_URLS", &url),
            ("TURN_TTL", "600"),
        ],
    );
    let wav = dir.path("bob.wav");
    let mut bob = Client::start(
        &server.url(),
        "bob",
        &[
            "--join",
            "General",
            "--ice-policy",
            "relay",
            "--audio-in",
            "tone:660",
            "--audio-out",
            &format!("wav:{}", wav.display()),
        ],
    );
    bob.wait_state("connected", LONG);
    let browser = browser_with_tone(&dir, 440.0);
    sign_in(&browser, &server, "alice");
    talk_mode(&browser, "open");
    browser.click("#settings summary").unwrap();
    browser.click("#relay-only").unwrap();
    join(&browser, 1);
    wait_peer_connected(&browser, "bob", LONG);
    let path = browser.wait_for(
        "document.querySelector('li.peer[data-user=\"bob\"][data-path=\"relayed\"]')",
        SHORT,
    );
    assert!(path.is_some(), "the page shows the path to bob as relayed");
    let connected = bob.wait_for("bob connected to alice", LONG, |e| {
        e.kind() == "peer" && e.str("user") == "alice" && e.str("state") == "connected"
    });
    assert_eq!(connected.str("candidate"), "relay", "bob's path");
    bob.wait_audio("alice", LONG);
    assert_tone(
        tail(&heard_by_browser(&browser, "bob", 1.5), 1.0),
        660.0,
        "alice hears bob",
    );
    std::thread::sleep(Duration::from_secs(1));
    assert!(bob.terminate().success());
    assert_tone(tail(&read_wav(&wav), 1.0), 440.0, "bob hears alice");
}

#[test]
fn the_voicebar_shows_connecting_connected_and_disconnected_with_the_reason() {
    if !isolated("the_voicebar_shows_connecting_connected_and_disconnected_with_the_reason") {
        return;
    }
    let dir = TempDir::new("web-bar");
    let port = free_port();
    let server = Server::start_with(port, &[], &[]);
    let browser = browser_with_tone(&dir, 440.0);
    sign_in(&browser, &server, "alice");
    assert_eq!(voicebar(&browser).0, "idle");
    join(&browser, 1);
    // Alone in the channel: connected at once.
    let (_, _, words) = wait_voicebar(&browser, "connected", SHORT);
    assert!(words.contains("General"), "{words}");

    // A second tab of the same user joining the same channel is refused, and says so.
    let first = browser.tab().unwrap();
    browser.new_tab().unwrap();
    sign_in(&browser, &server, "alice");
    join(&browser, 1);
    let (_, reason, words) = wait_voicebar(&browser, "disconnected", SHORT);
    assert_eq!(reason, "already_in_channel", "{words}");
    assert!(
        words.to_lowercase().contains("already"),
        "said in words: {words}"
    );
    browser.switch_to(&first).unwrap();
    assert_eq!(
        voicebar(&browser).0,
        "connected",
        "the first tab keeps its seat"
    );

    // The server dies: red, with the reason, in words.
    server.kill();
    let (_, reason, words) = wait_voicebar(&browser, "disconnected", LONG);
    assert_eq!(reason, "server_gone", "{words}");
    assert!(!words.is_empty());

    // It comes back on the same port: the page reconnects, resumes and sits again.
    let _server = Server::start_with(port, &[], &[]);
    let (_, _, words) = wait_voicebar(&browser, "connected", LONG);
    assert!(words.contains("General"), "{words}");
}

/// Cluster mode (issue 21) with its Redis gone: the join is refused `cluster_unavailable`, and
/// the bar says so in words instead of "Connecting…" for ever.
#[test]
fn a_join_the_cluster_cannot_carry_out_is_said_in_the_voicebar() {
    if !isolated("a_join_the_cluster_cannot_carry_out_is_said_in_the_voicebar") {
        return;
    }
    let dir = TempDir::new("web-cluster");
    let mut redis = support::Redis::start();
    let server = Server::cluster_instance(&redis, "one");
    let browser = browser_with_tone(&dir, 440.0);
    sign_in(&browser, &server, "alice");
    redis.kill();
    join(&browser, 1);
    let (_, reason, words) = wait_voicebar(&browser, "disconnected", SHORT);
    assert_eq!(reason, "cluster_unavailable", "{words}");
    assert!(words.contains("right now"), "said in words: {words}");
}

/// Record every state the VoiceBar shows from now on (state, reason, words), so that a test
/// can check a state that lasted a moment, and that another was never shown.
fn record_voicebar(browser: &Browser) {
    browser
        .execute(
            "const bar = document.querySelector('#voicebar');
             const text = document.querySelector('#voicebar-text');
             window.__bars = [];
             const note = () => {
               const now = [bar.dataset.state || '', bar.dataset.reason || '', text.textContent];
               const last = window.__bars[window.__bars.length - 1];
               if (!last || last.some((v, i) => v !== now[i])) window.__bars.push(now);
             };
             note();
             new MutationObserver(note).observe(bar,
               { attributes: true, childList: true, subtree: true, characterData: true });",
            &[],
        )
        .unwrap();
}

/// What [`record_voicebar`] saw so far.
fn recorded_voicebar(browser: &Browser) -> Vec<(String, String, String)> {
    let seen = browser.execute("return window.__bars;", &[]).unwrap();
    let s = |v: &Value| v.as_str().unwrap_or("").to_owned();
    seen.as_array()
        .expect("the recorded bars")
        .iter()
        .map(|b| (s(&b[0]), s(&b[1]), s(&b[2])))
        .collect()
}

/// A short lease, so that the killed instance's seats are released within 5 s; long enough
/// that the page's reconnect (first retry within 250 ms) meets its old seat still held.
const LEASE_MS: u64 = 4_000;
const RENEW_MS: u64 = 1_000;

/// Cluster failover (issue 21) in the browser: the page reaches the cluster through one front
/// address (a TCP failover front, as the Caddyfile's `lb_try_duration`: the page, its files and
/// its WebSocket all go through it), sits in General on instance one in a call with bob
/// (`cromulent headless` on instance two), and instance one is `kill -9`ed. The page
/// reconnects through the front to instance two, whose Redis still holds its old seat until the
/// dead instance's lease lapses: its rejoin is refused `already_in_channel`. The page must
/// wait for the seat (`rejoin.js`: the bar says so, in words, and stays `connecting`), sit
/// again once it is released, and the call with bob must carry audio again both ways.
/// Without the wait the rejoin's refusal is final: the bar says `already in this channel from
/// another session` and stays disconnected, and this test fails waiting for `seat_still_held`.
#[test]
fn a_browser_whose_instance_is_killed_waits_for_its_old_seat_and_sits_again_on_the_survivor() {
    if !isolated(
        "a_browser_whose_instance_is_killed_waits_for_its_old_seat_and_sits_again_on_the_survivor",
    ) {
        return;
    }
    let dir = TempDir::new("web-failover");
    let config = dir.path("server.toml");
    std::fs::write(
        &config,
        format!("[cluster]\nlease_ms = {LEASE_MS}\nrenew_ms = {RENEW_MS}\n"),
    )
    .unwrap();
    let config = config.display().to_string();
    let redis = support::Redis::start();
    let one = Server::cluster_instance_with(&redis, "one", &["--config", &config]);
    let two = Server::cluster_instance_with(&redis, "two", &["--config", &config]);
    // The page through a front that prefers instance one; bob straight to instance two.
    let front = Failover::start(&[one.addr, two.addr]);
    let wav = dir.path("bob.wav");
    let mut bob = ToneCaller {
        name: "bob",
        url: two.url(),
        hz: 660.0,
        frame_ms: "20",
    }
    .client(&wav);
    bob.wait_state("connected", LONG);
    let browser = browser_with_tone(&dir, 440.0);
    sign_in_at(&browser, &format!("http://{}/", front.addr()), "alice");
    talk_mode(&browser, "open");
    join(&browser, 1);
    wait_peer_connected(&browser, "bob", LONG);
    wait_voicebar(&browser, "connected", SHORT);
    bob.wait_audio("alice", LONG);
    record_voicebar(&browser);

    let mark = bob.mark();
    one.kill();
    // The rejoin on instance two meets the old seat: the page waits for it, and says so.
    let bound = Duration::from_millis(LEASE_MS + RENEW_MS);
    let waiting = browser.wait_for(
        "window.__bars.some((b) => b[1] === 'seat_still_held')",
        bound + SHORT,
    );
    let bars = recorded_voicebar(&browser);
    assert!(
        waiting.is_some(),
        "the bar shows the wait for the old seat: {bars:#?}"
    );
    let (state, _, words) = bars
        .iter()
        .find(|b| b.1 == "seat_still_held")
        .expect("the waiting bar");
    assert_eq!(state, "connecting", "{bars:#?}");
    assert!(
        words.contains(
            "rejoining General: the seat of the lost connection is still held; \
             asking again until the server releases it"
        ),
        "said in words: {words}"
    );
    // Once the survivor releases the old seat, the page sits again, and instance two's
    // presence (bob's view) shows it seated in General.
    let js = "document.querySelector('#voicebar').dataset.state === 'connected'";
    let back = browser.wait_for(js, bound + LONG);
    let bars = recorded_voicebar(&browser);
    assert!(back.is_some(), "connected again: {bars:#?}");
    assert!(
        voicebar(&browser).2.contains("General"),
        "{:?}",
        voicebar(&browser)
    );
    assert!(
        !bars.iter().any(|b| b.0 == "disconnected"
            && ["already_in_channel", "already_in_voice"].contains(&b.1.as_str())),
        "a final refusal was shown: {bars:#?}"
    );
    bob.wait_after(mark, "alice seated in General again", LONG, |e| {
        e.kind() == "presence"
            && e.str("op") == "join"
            && e.str("user") == "alice"
            && e.json["channel_id"] == json!(1)
    });
    // The call is back, and carries audio both ways.
    wait_peer_connected(&browser, "bob", LONG);
    bob.wait_after(mark, "audio from alice again", LONG, |e| {
        e.kind() == "audio" && e.str("from") == "alice"
    });
    assert_tone(
        tail(&heard_by_browser(&browser, "bob", 1.5), 1.0),
        660.0,
        "alice hears bob after the failover",
    );
    std::thread::sleep(Duration::from_secs(1));
    assert!(bob.terminate().success(), "bob exits 0: {}", bob.stderr());
    assert_tone(
        tail(&read_wav(&wav), 1.0),
        440.0,
        "bob hears alice after the failover",
    );
}

/// The wait's rule itself (`js/rejoin.js`, pure), run in the page with made-up times: asked
/// again every 2 s, at once on our own leave only once refused, given up 40 s after the first
/// refusal; and the VoiceBar's words while waiting.
#[test]
fn the_rejoin_waits_for_the_old_seat_by_the_engines_rule() {
    if !isolated("the_rejoin_waits_for_the_old_seat_by_the_engines_rule") {
        return;
    }
    let dir = TempDir::new("web-rejoin-rule");
    let server = Server::start();
    let browser = browser_with_tone(&dir, 440.0);
    browser.goto(&page_url(&server)).unwrap();
    let got = browser
        .execute_async(
            "const done = arguments[0];
             Promise.all([import('/js/rejoin.js'), import('/js/bar.js')]).then(([r, bar]) => {
               const w = new r.SeatWait(1);
               const steps = [];
               steps.push(['leave before a refusal', w.onOwnLeave()]);
               steps.push(['first refusal', w.onRefused(1000)]);
               steps.push(['waiting', w.refused]);
               steps.push(['due early', w.due(2999)]);
               steps.push(['due', w.due(3000)]);
               steps.push(['due twice', w.due(3000)]);
               steps.push(['refused late', w.onRefused(40999)]);
               steps.push(['leave once refused', w.onOwnLeave()]);
               steps.push(['no timer after a leave', w.due(1e9)]);
               steps.push(['refused past patience', w.onRefused(41000)]);
               const name = 'General <b>';
               steps.push(['bar', bar.describe({ phase: 'connecting', channelName: name,
                 reason: 'seat_still_held', message: r.waitWords(name) })]);
               done({ retry: r.SEAT_RETRY_MS, patience: r.SEAT_PATIENCE_MS,
                      reasons: [...r.SEATED_ELSEWHERE].sort(), steps });
             }, (e) => done({ error: String(e) }));",
            &[],
        )
        .unwrap();
    assert!(got["error"].is_null(), "{got}");
    assert_eq!(got["retry"], json!(2000));
    assert_eq!(got["patience"], json!(40000));
    assert_eq!(
        got["reasons"],
        json!(["already_in_channel", "already_in_voice"])
    );
    let steps = got["steps"].as_array().unwrap();
    let expected = [
        ("leave before a refusal", json!(false)),
        ("first refusal", json!("first_wait")),
        ("waiting", json!(true)),
        ("due early", json!(false)),
        ("due", json!(true)),
        ("due twice", json!(false)),
        ("refused late", json!("still_waiting")),
        ("leave once refused", json!(true)),
        ("no timer after a leave", json!(false)),
        ("refused past patience", json!("give_up")),
        (
            "bar",
            json!({
                "state": "connecting",
                "reason": "seat_still_held",
                "text": "Connecting… General <b> — rejoining General <b>: the seat of the lost \
                         connection is still held; asking again until the server releases it",
            }),
        ),
    ];
    for (step, (what, want)) in steps.iter().zip(expected.iter()) {
        assert_eq!(step[0], json!(what));
        assert_eq!(&step[1], want, "{what}: {got}");
    }
    assert_eq!(steps.len(), expected.len(), "{got}");
}

#[test]
fn push_to_talk_follows_the_space_key() {
    if !isolated("push_to_talk_follows_the_space_key") {
        return;
    }
    let dir = TempDir::new("web-ptt");
    let server = Server::start();
    let mut bob = Client::start(&server.url(), "bob", &["--join", "General"]);
    bob.wait_state("connected", LONG);
    let browser = browser_with_tone(&dir, 440.0);
    sign_in(&browser, &server, "alice");
    talk_mode(&browser, "ptt");
    join(&browser, 1);
    wait_peer_connected(&browser, "bob", LONG);
    bob.wait_peer_connected("alice", LONG);
    let talking = |on: bool| {
        format!("document.querySelector('li.member[data-user=\"alice\"][data-talking=\"{on}\"]')")
    };
    assert!(browser.wait_for(&talking(false), SHORT).is_some());
    let mark = bob.mark();
    // Focus on the page body, not on a control, as a user who clicked the page.
    browser
        .execute(
            "document.activeElement && document.activeElement.blur();",
            &[],
        )
        .unwrap();
    browser.key(" ", true).unwrap();
    assert!(
        browser.wait_for(&talking(true), SHORT).is_some(),
        "held: talking"
    );
    bob.wait_after(mark, "presence says alice talks", SHORT, |e| {
        e.kind() == "presence" && e.json.to_string().contains("\"talking\":true")
    });
    browser.key(" ", false).unwrap();
    assert!(
        browser.wait_for(&talking(false), SHORT).is_some(),
        "released: not talking"
    );
}

#[test]
fn the_page_fits_a_phone_screen_and_is_served_whole_from_our_server() {
    if !isolated("the_page_fits_a_phone_screen_and_is_served_whole_from_our_server") {
        return;
    }
    let dir = TempDir::new("web-phone");
    let server = Server::start();
    let mut bob = Client::start(&server.url(), "bob", &["--join", "General"]);
    bob.wait_state("connected", LONG);
    let options = Options {
        microphone_wav: Some(tone_wav(&dir, 440.0)),
        window: (390, 844),
        phone: true,
        ..Options::default()
    };
    let browser = Browser::launch(&options).unwrap();
    sign_in(&browser, &server, "alice");
    join(&browser, 1);
    wait_peer_connected(&browser, "bob", LONG);
    let layout = browser
        .execute(
            "const vis = (s) => { const e = document.querySelector(s); if (!e) return false;
                                  const r = e.getBoundingClientRect();
                                  return r.width > 0 && r.height > 0 && r.left >= 0 &&
                                         r.right <= window.innerWidth + 1; };
             return { width: window.innerWidth,
                      scroll: document.documentElement.scrollWidth,
                      bar: vis('#voicebar'), mute: vis('#mute'), leave: vis('#leave'),
                      talk: vis('#talk'), channels: vis('#channels'),
                      resources: performance.getEntriesByType('resource').map(r => r.name) };",
            &[],
        )
        .unwrap();
    assert!(layout["width"].as_u64().unwrap() <= 400, "{layout}");
    assert!(
        layout["scroll"].as_u64() <= layout["width"].as_u64(),
        "no sideways scrolling: {layout}"
    );
    for control in ["bar", "mute", "leave", "talk", "channels"] {
        assert_eq!(
            layout[control],
            Value::Bool(true),
            "{control} on screen: {layout}"
        );
    }
    let origin = format!("http://{}/", server.addr);
    for r in layout["resources"].as_array().unwrap() {
        assert!(
            r.as_str().unwrap().starts_with(&origin),
            "every request to our own server: {r}"
        );
    }
    screenshot(&browser, "web-phone.png");
}

/// A browser without microphone permission hides its addresses behind mDNS names
/// (`<uuid>.local` host candidates) and gathers only on its default route's interface. Here
/// the namespace has a "LAN" (a dummy interface with the default route, nothing beyond it):
/// the server listens on every address, the page is opened on loopback, the terminal user
/// connects over the LAN address. Our engine cannot resolve the mDNS name; the call must
/// still connect (the browser's checks teach our engine its address: a peer-reflexive
/// candidate, RFC 8445 §7.3.1.3), and the page, listening only, hears the terminal user and
/// says it has no microphone.
fn browser_without_microphone_hears(web_name: &str) {
    netns::add_lan("10.77.0.1/24");
    let port = free_port();
    let server = Server::start_listening(&format!("0.0.0.0:{port}"), &[], &[]);
    let mut bob = Client::start(
        &format!("ws://10.77.0.1:{port}"),
        "bob",
        &["--join", "General", "--audio-in", "tone:660"],
    );
    bob.wait_state("connected", LONG);
    let options = Options {
        grant_microphone: false,
        mdns_candidates: true,
        ..Options::default()
    };
    let browser = Browser::launch(&options).expect("launch chromium");
    sign_in(&browser, &server, web_name);
    join(&browser, 1);
    wait_peer_connected(&browser, "bob", LONG);
    bob.wait_peer_connected(web_name, LONG);
    let note = browser.wait_for("document.querySelector('#mic-note').textContent", SHORT);
    assert!(
        note.as_ref()
            .and_then(Value::as_str)
            .is_some_and(|n| n.contains("no microphone")),
        "the page says it has no microphone: {note:?}"
    );
    assert_tone(
        tail(&heard_by_browser(&browser, "bob", 1.5), 1.0),
        660.0,
        "the page without a microphone hears bob",
    );
    let local = browser
        .execute_async(
            "const done = arguments[0];
             const pc = new RTCPeerConnection();
             pc.addTransceiver('audio');
             const found = [];
             pc.onicecandidate = (e) => {
               if (e.candidate) found.push(e.candidate.candidate);
               else { pc.close(); done(found); }
             };
             pc.createOffer().then((o) => pc.setLocalDescription(o));",
            &[],
        )
        .unwrap();
    assert!(
        local.as_array().is_some_and(|c| !c.is_empty()
            && c.iter()
                .all(|c| c.as_str().unwrap_or("").contains(".local"))),
        "this browser hides its host candidates behind mDNS names (else this test proves nothing): {local}"
    );
}

#[test]
fn a_browser_without_microphone_permission_offering_connects_and_hears() {
    if !isolated("a_browser_without_microphone_permission_offering_connects_and_hears") {
        return;
    }
    browser_without_microphone_hears("alice");
}

#[test]
fn a_browser_without_microphone_permission_answering_connects_and_hears() {
    if !isolated("a_browser_without_microphone_permission_answering_connects_and_hears") {
        return;
    }
    browser_without_microphone_hears("zoe");
}

#[test]
fn a_sign_in_link_signs_the_page_in_with_its_token_and_is_remembered() {
    if !isolated("a_sign_in_link_signs_the_page_in_with_its_token_and_is_remembered") {
        return;
    }
    use cromulent_server::auth::{Claims, make_token, sign_in_link};
    const SECRET: &str = "web-test-secret-0123456789";
    let dir = TempDir::new("web-token");
    let config = dir.path("server.toml");
    std::fs::write(&config, "[auth]\nmode = \"token\"\n").unwrap();
    let config = config.display().to_string();
    let server = Server::start_with(
        free_port(),
        &["--config", &config],
        &[("CROMULENT_AUTH_SECRET", SECRET)],
    );
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3600;
    let claims = Claims {
        sub: "alice".into(),
        name: Some("Alice A.".into()),
        client_names: false,
        exp,
    };
    let token = make_token(SECRET.as_bytes(), &claims);
    let link = sign_in_link(&page_url(&server), &token).unwrap();
    let browser = browser_with_tone(&dir, 440.0);
    browser.goto(&link).unwrap();
    let me = browser.wait_for("document.body.dataset.self", SHORT);
    assert_eq!(me, Some(json!("alice")), "signed in by the link's token");
    let shown = browser
        .execute(
            "return [location.hash, getComputedStyle(document.querySelector('#signin')).display];",
            &[],
        )
        .unwrap();
    assert_eq!(shown[0], json!(""), "the token left the address bar");
    assert_eq!(shown[1], json!("none"), "no name is asked for");
    join(&browser, 1);
    wait_voicebar(&browser, "connected", SHORT);
    let member = browser.wait_for(
        "document.querySelector('li.member[data-user=\"alice\"] .who').textContent",
        SHORT,
    );
    assert_eq!(member, Some(json!("Alice A. (you)")), "the token's name");

    // Opened again later, without the link: still signed in.
    browser.new_tab().unwrap();
    browser.goto(&page_url(&server)).unwrap();
    let me = browser.wait_for("document.body.dataset.self", SHORT);
    assert_eq!(me, Some(json!("alice")), "the token was remembered");

    // A bad link: told so in words, and asked to sign in.
    browser.new_tab().unwrap();
    browser
        .goto(&sign_in_link(&page_url(&server), "cv1.bogus.token").unwrap())
        .unwrap();
    let error = browser.wait_for("document.querySelector('#signin-error').textContent", SHORT);
    assert!(
        error
            .as_ref()
            .and_then(Value::as_str)
            .is_some_and(|e| e.contains("not valid")),
        "{error:?}"
    );
}

/// No media lost at call start, in both DTLS roles of our engine (answering: DTLS client;
/// offering: the browser answers `active`, so our engine is the DTLS server, the role in which
/// a browser's first packets were once seen dropped). Loopback loses nothing, so once both
/// sides stop sending, every packet the browser sent has reached our engine: the counts are
/// equal. The other way, the browser saw no gap (`packetsLost` 0 from its first packet on);
/// its count cannot be held against our engine's `packets_sent`, which also counts the frames
/// webrtc-rs discards before its SRTP session is up (`SrtpWriterFuture::write_rtp` returns
/// `Ok(0)` for them: audio from before the call existed).
fn no_packet_lost_from_the_start(web_name: &str) {
    let dir = TempDir::new("web-start");
    let server = Server::start();
    let mut bob = Client::start(
        &server.url(),
        "bob",
        &[
            "--join",
            "General",
            "--audio-in",
            "tone:660",
            "--script",
            "-",
        ],
    );
    bob.wait_state("connected", LONG);
    let browser = browser_with_tone(&dir, 440.0);
    // Keep the page's peer connections where the test can read their statistics.
    browser
        .on_every_page(
            "const Native = window.RTCPeerConnection;
             window.__pcs = [];
             window.RTCPeerConnection = function (...args) {
               const pc = new Native(...args); window.__pcs.push(pc); return pc;
             };
             window.RTCPeerConnection.prototype = Native.prototype;",
        )
        .unwrap();
    sign_in(&browser, &server, web_name);
    talk_mode(&browser, "open");
    join(&browser, 1);
    wait_peer_connected(&browser, "bob", LONG);
    bob.wait_audio(web_name, LONG);
    std::thread::sleep(Duration::from_secs(1));
    // Both stop sending; what was in flight lands.
    browser
        .execute(
            "for (const pc of window.__pcs) for (const s of pc.getSenders()) s.replaceTrack(null);",
            &[],
        )
        .unwrap();
    bob.say("mute on");
    std::thread::sleep(Duration::from_secs(1));
    let page = browser
        .execute_async(
            "const done = arguments[0];
             const pcs = window.__pcs.filter((pc) => pc.connectionState === 'connected');
             if (pcs.length !== 1) { done({error: `${pcs.length} connected`}); return; }
             pcs[0].getStats().then((r) => {
               let sent = null, got = null, lost = null;
               r.forEach((s) => {
                 if (s.type === 'outbound-rtp' && s.kind === 'audio') sent = s.packetsSent;
                 if (s.type === 'inbound-rtp' && s.kind === 'audio') {
                   got = s.packetsReceived; lost = s.packetsLost;
                 }
               });
               done({sent, got, lost});
             });",
            &[],
        )
        .unwrap();
    assert!(page["error"].is_null(), "{page}");
    let mark = bob.mark();
    bob.say("stats");
    let stats = bob.wait_after(mark, "stats", SHORT, |e| e.kind() == "stats");
    let peer = stats.json["peers"]
        .as_array()
        .and_then(|p| p.iter().find(|p| p["user"] == web_name))
        .cloned()
        .unwrap_or_else(|| panic!("bob's stats for {web_name}: {}", stats.json));
    let browser_sent = page["sent"].as_u64().unwrap();
    let browser_got = page["got"].as_u64().unwrap();
    assert!(browser_sent > 50 && browser_got > 50, "{page} {peer}");
    assert_eq!(
        peer["packets_received"].as_u64(),
        Some(browser_sent),
        "bob received every packet the browser sent: page {page}, bob {peer}"
    );
    assert_eq!(
        page["lost"],
        json!(0),
        "no gap in what bob sent: page {page}"
    );
    assert!(
        peer["packets_sent"].as_u64() >= Some(browser_got),
        "page {page}, bob {peer}"
    );
}

#[test]
fn no_packet_is_lost_from_the_start_when_our_engine_answers() {
    if !isolated("no_packet_is_lost_from_the_start_when_our_engine_answers") {
        return;
    }
    no_packet_lost_from_the_start("alice");
}

#[test]
fn no_packet_is_lost_from_the_start_when_our_engine_offers() {
    if !isolated("no_packet_is_lost_from_the_start_when_our_engine_offers") {
        return;
    }
    no_packet_lost_from_the_start("zoe");
}

#[test]
fn a_reload_takes_the_seat_back_and_closing_the_page_leaves_at_once() {
    if !isolated("a_reload_takes_the_seat_back_and_closing_the_page_leaves_at_once") {
        return;
    }
    let dir = TempDir::new("web-reload");
    let server = Server::start();
    let mut bob = Client::start(&server.url(), "bob", &["--join", "General"]);
    bob.wait_state("connected", LONG);
    let browser = browser_with_tone(&dir, 440.0);
    sign_in(&browser, &server, "alice");
    join(&browser, 1);
    wait_peer_connected(&browser, "bob", LONG);
    bob.wait_peer_connected("alice", LONG);

    // Reload: signed in again without asking, back in General, the call with bob up again.
    let mark = bob.mark();
    browser.execute("location.reload();", &[]).unwrap();
    let (_, _, words) = wait_voicebar(&browser, "connected", LONG);
    assert!(words.contains("General"), "{words}");
    assert_eq!(
        browser.wait_for("document.body.dataset.self", SHORT),
        Some(json!("alice"))
    );
    wait_peer_connected(&browser, "bob", LONG);
    bob.wait_after(mark, "alice's call again", LONG, |e| {
        e.kind() == "peer" && e.str("user") == "alice" && e.str("state") == "connected"
    });

    // Closing the page gives the seat up at once, not after the 30 s resume grace.
    let mark = bob.mark();
    browser.goto("about:blank").unwrap();
    bob.wait_after(mark, "alice leaves", Duration::from_secs(5), |e| {
        e.kind() == "presence" && e.str("op") == "leave" && e.str("user") == "alice"
    });
}

#[test]
fn the_terminal_client_shows_a_browser_user_like_anyone_else() {
    if !isolated("the_terminal_client_shows_a_browser_user_like_anyone_else") {
        return;
    }
    use cromulent_test_support::tmux::Tmux;
    let dir = TempDir::new("web-tui");
    let server = Server::start();
    let config = dir.path("config.toml");
    std::fs::write(&config, "").unwrap();
    let tmux = Tmux::start(&format!(
        "'{bin}' --server {url} --user alice --config '{config}' --log-file '{log}' \
         --input-device no-such-mic --output-device no-such-speaker; sleep 600",
        bin = support::BIN,
        url = server.url(),
        config = config.display(),
        log = dir.path("tui.log").display(),
    ));
    tmux.wait("the channel list", |s| s.contains("▸ General"));
    tmux.keys(&["Enter"]);
    tmux.wait("alice in General", |s| s.contains("● General"));
    let browser = browser_with_tone(&dir, 440.0);
    sign_in(&browser, &server, "webby");
    talk_mode(&browser, "open");
    join(&browser, 1);
    wait_peer_connected(&browser, "alice", LONG);
    // In the channel list, talking, and in the peers panel, connected.
    let screen = tmux.wait("the browser user in the call", |s| {
        s.lines()
            .any(|l| l.contains("webby") && l.contains("connected"))
    });
    assert!(
        screen.lines().filter(|l| l.contains("webby")).count() >= 2,
        "webby in the channel list and the peers panel:\n{screen}"
    );
    tmux.keys(&["q"]);
}

#[test]
fn the_page_chats_with_a_terminal_user_and_shows_hostile_text_as_text() {
    if !isolated("the_page_chats_with_a_terminal_user_and_shows_hostile_text_as_text") {
        return;
    }
    let dir = TempDir::new("web-chat");
    let server = Server::start();
    let mut bob = Client::start(
        &server.url(),
        "bob",
        &["--join", "General", "--script", "-"],
    );
    bob.wait_state("connected", LONG);
    bob.say("say before you came");
    bob.wait_for("bob's first message", LONG, |e| e.kind() == "message");
    let browser = browser_with_tone(&dir, 440.0);
    sign_in(&browser, &server, "alice");
    talk_mode(&browser, "ptt");
    join(&browser, 1);
    wait_voicebar(&browser, "connected", SHORT);
    // The history is there when the chat opens.
    let texts =
        "[...document.querySelectorAll('#chat-log li.message .text')].map(e => e.textContent)";
    let first = browser.wait_for(&format!("{texts}.includes('before you came')"), SHORT);
    assert!(first.is_some(), "history shown");

    // Markup from a peer is shown as the characters it is made of, never as markup.
    let hostile = r#"<img src=x onerror="document.title='owned'"><b>bold</b> alice?"#;
    bob.say(&format!("say {hostile}"));
    let shown = browser.wait_for(&format!("{texts}.find(t => t.includes('<img'))"), SHORT);
    assert_eq!(
        shown,
        Some(json!(hostile)),
        "the text, character for character"
    );
    let dom = browser
        .execute(
            "return { imgs: document.querySelectorAll('#chat-log img, #chat-log b').length,
                      title: document.title,
                      mention: document.querySelector('#chat-log li.message:last-child').dataset.mention };",
            &[],
        )
        .unwrap();
    assert_eq!(
        dom["imgs"],
        json!(0),
        "no element made from a message: {dom}"
    );
    assert_eq!(dom["title"], json!("Cromulent Voice"));
    assert_eq!(dom["mention"], json!("true"), "alice is mentioned: {dom}");

    // The page writes: Enter sends; bob's script gets it.
    let mark = bob.mark();
    browser
        .execute("document.querySelector('#chat-input').focus();", &[])
        .unwrap();
    browser
        .type_into("#chat-input", "hi bob, space bar ok")
        .unwrap();
    browser.key("\u{E007}", true).unwrap();
    browser.key("\u{E007}", false).unwrap();
    let got = bob.wait_after(mark, "alice's message", LONG, |e| {
        e.kind() == "message" && e.str("user") == "alice"
    });
    assert_eq!(got.str("text"), "hi bob, space bar ok");
    // The space bar (the push-to-talk key) typed spaces in the field: alice never talked.
    assert!(
        !bob.ever(|e| e.kind() == "presence"
            && e.str("user") == "alice"
            && e.json["talking"] == json!(true)),
        "space in the field is text, not push-to-talk"
    );

    // Another channel's chat opened: General's new messages count as unread there.
    browser
        .click("li.channel[data-channel-id=\"2\"] button.open")
        .unwrap();
    assert!(
        browser
            .wait_for(
                "document.querySelector('#chat-title').textContent.includes('Gaming')",
                SHORT
            )
            .is_some()
    );
    bob.say("say are you there?");
    let badge = browser.wait_for(
        "document.querySelector('li.channel[data-channel-id=\"1\"] .unread').textContent",
        SHORT,
    );
    assert_eq!(badge, Some(json!("1")), "one unread in General");
    browser
        .click("li.channel[data-channel-id=\"1\"] button.open")
        .unwrap();
    assert!(
        browser
            .wait_for(&format!("{texts}.includes('are you there?')"), SHORT)
            .is_some()
    );
    assert!(
        browser
            .wait_for(
                "document.querySelector('li.channel[data-channel-id=\"1\"] .unread').hidden",
                SHORT
            )
            .is_some(),
        "read now"
    );
    screenshot(&browser, "web-chat.png");
}

#[test]
fn the_voicebar_says_no_route_when_no_peer_can_be_reached() {
    if !isolated("the_voicebar_says_no_route_when_no_peer_can_be_reached") {
        return;
    }
    let dir = TempDir::new("web-no-route");
    // No TURN server is configured, and the page allows relayed paths only: bob is
    // unreachable. After every peer has been down for 10 s the bar turns red and says why.
    let server = Server::start();
    let mut bob = Client::start(&server.url(), "bob", &["--join", "General"]);
    bob.wait_state("connected", LONG);
    let browser = browser_with_tone(&dir, 440.0);
    sign_in(&browser, &server, "alice");
    browser.click("#settings summary").unwrap();
    browser.click("#relay-only").unwrap();
    join(&browser, 1);
    wait_voicebar(&browser, "connected", SHORT);
    let (_, reason, words) = wait_voicebar(&browser, "disconnected", LONG);
    assert_eq!(reason, "no_route", "{words}");
    assert!(
        words.contains("no route to peers") && words.contains("no TURN server"),
        "{words}"
    );
}
