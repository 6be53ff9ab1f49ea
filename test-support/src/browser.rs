//! A real browser for tests: Debian's `chromium`, driven over W3C WebDriver through its
//! `chromedriver`, as a WebRTC peer (fake microphone from a WAV file, autoplay allowed,
//! loopback candidates allowed). A small blocking WebDriver client of our own: tests need a
//! dozen commands, and each is one JSON request to `chromedriver` on loopback.
//!
//! Chromium gathers ICE candidates on every interface and may query mDNS, so tests that use it
//! run inside [`crate::netns::isolated`] (a network namespace with only loopback).
//! Must never leave a browser running: [`Browser`] ends its session and kills its driver on
//! drop, also when a test panics.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::process::{KillOnDrop, TempDir, find_binary, free_port, poll_until};

/// How long one WebDriver command may take (an async script waits inside it).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// How a browser is started.
#[derive(Debug, Clone)]
pub struct Options {
    /// The microphone plays this WAV file (looped). `None`: Chromium's fake beep device.
    pub microphone_wav: Option<PathBuf>,
    /// Grant the microphone without asking (false: the page is refused, as a user who said no).
    pub grant_microphone: bool,
    /// Hide local addresses behind mDNS names, as a browser does by default for a page without
    /// microphone permission (false: plain addresses, as with permission).
    pub mdns_candidates: bool,
    /// Window size in CSS pixels.
    pub window: (u32, u32),
    /// Emulate a phone (touch, device pixel ratio 3) at `window` size.
    pub phone: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            microphone_wav: None,
            grant_microphone: true,
            mdns_candidates: false,
            window: (1280, 900),
            phone: false,
        }
    }
}

/// What went wrong talking to the browser.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0} is not installed (scripts/setup installs chromium and chromium-driver)")]
    Missing(&'static str),
    #[error("chromedriver did not become ready; its output:\n{0}")]
    NotReady(String),
    #[error("webdriver {command}: {message}")]
    Command { command: String, message: String },
    #[error("webdriver connection: {0}")]
    Io(#[from] std::io::Error),
}

/// One Chromium with its own chromedriver and profile directory.
pub struct Browser {
    session: String,
    port: u16,
    driver: KillOnDrop,
    _profile: TempDir,
}

impl Browser {
    /// Start chromedriver and a headless Chromium session.
    pub fn launch(options: &Options) -> Result<Self, Error> {
        let driver_bin = find_binary("chromedriver").ok_or(Error::Missing("chromedriver"))?;
        let chromium = find_binary("chromium").ok_or(Error::Missing("chromium"))?;
        let port = free_port();
        let profile = TempDir::new("chromium");
        let log_path = profile.path("chromedriver.log");
        let log = std::fs::File::create(&log_path)?;
        let driver = KillOnDrop::spawn(
            Command::new(driver_bin)
                .arg(format!("--port={port}"))
                .stdout(log.try_clone()?)
                .stderr(log),
            "chromedriver",
        );
        let ready = poll_until(Duration::from_secs(20), || {
            request(port, "GET", "/status", None)
                .ok()
                .is_some_and(|v| v["value"]["ready"] == true)
        });
        if !ready {
            return Err(Error::NotReady(
                std::fs::read_to_string(&log_path).unwrap_or_default(),
            ));
        }
        let (w, h) = options.window;
        let mut args = vec![
            "--headless=new".to_owned(),
            "--no-sandbox".to_owned(),
            "--disable-gpu".to_owned(),
            "--disable-dev-shm-usage".to_owned(),
            "--no-first-run".to_owned(),
            "--use-fake-device-for-media-stream".to_owned(),
            "--autoplay-policy=no-user-gesture-required".to_owned(),
            "--allow-loopback-in-peer-connection".to_owned(),
            format!("--user-data-dir={}", profile.root().display()),
            format!("--window-size={w},{h}"),
        ];
        if options.grant_microphone {
            args.push("--use-fake-ui-for-media-stream".to_owned());
        } else {
            args.push("--deny-permission-prompts".to_owned());
        }
        if !options.mdns_candidates {
            args.push("--disable-features=WebRtcHideLocalIpsWithMdns".to_owned());
        }
        if let Some(wav) = &options.microphone_wav {
            args.push(format!(
                "--use-file-for-fake-audio-capture={}",
                wav.display()
            ));
        }
        let mut chrome_options = json!({ "binary": chromium, "args": args });
        if options.phone {
            chrome_options["mobileEmulation"] = json!({
                "deviceMetrics": { "width": w, "height": h, "pixelRatio": 3.0, "touch": true },
                "userAgent": "Mozilla/5.0 (Linux; Android 14; Pixel 8) Mobile",
            });
        }
        let caps = json!({ "capabilities": { "alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": chrome_options,
        }}});
        let created = request(port, "POST", "/session", Some(&caps))?;
        let session = created["value"]["sessionId"]
            .as_str()
            .ok_or_else(|| Error::Command {
                command: "new session".into(),
                message: created.to_string(),
            })?
            .to_owned();
        Ok(Self {
            session,
            port,
            driver,
            _profile: profile,
        })
    }

    fn command(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Value, Error> {
        let path = format!("/session/{}{path}", self.session);
        let reply = request(self.port, method, &path, body)?;
        if let Some(error) = reply["value"]["error"].as_str() {
            return Err(Error::Command {
                command: format!("{method} {path}"),
                message: format!("{error}: {}", reply["value"]["message"]),
            });
        }
        Ok(reply["value"].clone())
    }

    /// Run `script` at the start of every page this browser opens from now on, before the
    /// page's own scripts (Chrome DevTools `Page.addScriptToEvaluateOnNewDocument`): for a
    /// test to watch what a page does (e.g. keep its `RTCPeerConnection`s) without the page
    /// exposing anything for tests.
    pub fn on_every_page(&self, script: &str) -> Result<(), Error> {
        let body = json!({
            "cmd": "Page.addScriptToEvaluateOnNewDocument",
            "params": { "source": script },
        });
        self.command("POST", "/goog/cdp/execute", Some(&body))
            .map(drop)
    }

    /// Open `url` (waits for the page's load event).
    pub fn goto(&self, url: &str) -> Result<(), Error> {
        self.command("POST", "/url", Some(&json!({ "url": url })))
            .map(drop)
    }

    /// Run `script` (a function body; `arguments[i]` are `args`) and return its value.
    pub fn execute(&self, script: &str, args: &[Value]) -> Result<Value, Error> {
        let body = json!({ "script": script, "args": args });
        self.command("POST", "/execute/sync", Some(&body))
    }

    /// Run `script`, whose last argument is a callback to call with the result.
    pub fn execute_async(&self, script: &str, args: &[Value]) -> Result<Value, Error> {
        let body = json!({ "script": script, "args": args });
        self.command("POST", "/execute/async", Some(&body))
    }

    /// Poll the expression `js` until it is truthy (its value) or `limit` passes (`None`).
    pub fn wait_for(&self, js: &str, limit: Duration) -> Option<Value> {
        let script = format!("return ({js});");
        let start = Instant::now();
        loop {
            if let Ok(v) = self.execute(&script, &[]) {
                let truthy = !matches!(&v, Value::Null | Value::Bool(false))
                    && v != json!(0)
                    && v != json!("");
                if truthy {
                    return Some(v);
                }
            }
            if start.elapsed() >= limit {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The element matching `css` (WebDriver reference).
    fn element(&self, css: &str) -> Result<String, Error> {
        let found = self.command(
            "POST",
            "/element",
            Some(&json!({ "using": "css selector", "value": css })),
        )?;
        found
            .as_object()
            .and_then(|o| o.values().next())
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| Error::Command {
                command: format!("find {css}"),
                message: found.to_string(),
            })
    }

    /// Click the element matching `css`, as a user would (it must be visible and enabled).
    pub fn click(&self, css: &str) -> Result<(), Error> {
        let id = self.element(css)?;
        self.command("POST", &format!("/element/{id}/click"), Some(&json!({})))
            .map(drop)
    }

    /// Empty the field matching `css`.
    pub fn clear(&self, css: &str) -> Result<(), Error> {
        let id = self.element(css)?;
        self.command("POST", &format!("/element/{id}/clear"), Some(&json!({})))
            .map(drop)
    }

    /// Type `text` into the element matching `css`.
    pub fn type_into(&self, css: &str, text: &str) -> Result<(), Error> {
        let id = self.element(css)?;
        self.command(
            "POST",
            &format!("/element/{id}/value"),
            Some(&json!({ "text": text })),
        )
        .map(drop)
    }

    /// Press or release `key` (a WebDriver key value: `" "` for Space, `"\u{E007}"` Enter)
    /// on whatever has focus, as the keyboard would.
    pub fn key(&self, key: &str, down: bool) -> Result<(), Error> {
        let kind = if down { "keyDown" } else { "keyUp" };
        let actions = json!({ "actions": [{
            "type": "key", "id": "keyboard",
            "actions": [{ "type": kind, "value": key }],
        }]});
        self.command("POST", "/actions", Some(&actions)).map(drop)
    }

    /// Save a PNG screenshot of the window.
    pub fn screenshot(&self, path: &Path) -> Result<(), Error> {
        use base64::Engine as _;
        let shot = self.command("GET", "/screenshot", None)?;
        let png = base64::engine::general_purpose::STANDARD
            .decode(shot.as_str().unwrap_or(""))
            .map_err(|e| Error::Command {
                command: "screenshot".into(),
                message: e.to_string(),
            })?;
        std::fs::write(path, png)?;
        Ok(())
    }

    /// Open a new tab and switch to it; its handle.
    pub fn new_tab(&self) -> Result<String, Error> {
        let tab = self.command("POST", "/window/new", Some(&json!({ "type": "tab" })))?;
        let handle = tab["handle"].as_str().unwrap_or("").to_owned();
        self.switch_to(&handle)?;
        Ok(handle)
    }

    /// The current tab's handle.
    pub fn tab(&self) -> Result<String, Error> {
        Ok(self
            .command("GET", "/window", None)?
            .as_str()
            .unwrap_or("")
            .to_owned())
    }

    /// Make `handle` the tab that commands go to.
    pub fn switch_to(&self, handle: &str) -> Result<(), Error> {
        self.command("POST", "/window", Some(&json!({ "handle": handle })))
            .map(drop)
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Ends Chromium; then the driver goes.
        let _ = request(
            self.port,
            "DELETE",
            &format!("/session/{}", self.session),
            None,
        );
        self.driver.kill();
    }
}

/// Write a 48 kHz mono 16-bit WAV of a `freq` Hz tone at half scale, a whole number of
/// periods long so that it loops without a click: a browser's fake microphone.
pub fn tone_wav(path: &Path, freq: f64) -> std::io::Result<()> {
    let periods = (2.0 * freq).round();
    let samples = (48_000.0 / freq * periods).round() as usize;
    let mut data = Vec::with_capacity(44 + samples * 2);
    let bytes = (samples * 2) as u32;
    data.extend_from_slice(b"RIFF");
    data.extend_from_slice(&(36 + bytes).to_le_bytes());
    data.extend_from_slice(b"WAVEfmt ");
    data.extend_from_slice(&16u32.to_le_bytes());
    data.extend_from_slice(&1u16.to_le_bytes()); // PCM
    data.extend_from_slice(&1u16.to_le_bytes()); // mono
    data.extend_from_slice(&48_000u32.to_le_bytes());
    data.extend_from_slice(&96_000u32.to_le_bytes());
    data.extend_from_slice(&2u16.to_le_bytes());
    data.extend_from_slice(&16u16.to_le_bytes());
    data.extend_from_slice(b"data");
    data.extend_from_slice(&bytes.to_le_bytes());
    for i in 0..samples {
        let v = (2.0 * std::f64::consts::PI * freq * i as f64 / 48_000.0).sin() * 0.5;
        data.extend_from_slice(&((v * f64::from(i16::MAX)) as i16).to_le_bytes());
    }
    std::fs::write(path, data)
}

/// One WebDriver request over a fresh loopback connection; the reply's JSON.
fn request(port: u16, method: &str, path: &str, body: Option<&Value>) -> Result<Value, Error> {
    let body = body.map(Value::to_string).unwrap_or_default();
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(COMMAND_TIMEOUT))?;
    stream.set_write_timeout(Some(COMMAND_TIMEOUT))?;
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    // The driver may keep the connection open despite `Connection: close`: read the head, then
    // exactly the body it announces.
    let mut reply = Vec::new();
    let mut chunk = [0u8; 8192];
    let no_head = || Error::Command {
        command: format!("{method} {path}"),
        message: "reply without a head".into(),
    };
    let split = loop {
        if let Some(at) = reply.windows(4).position(|w| w == b"\r\n\r\n") {
            break at;
        }
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Err(no_head());
        }
        reply.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&reply[..split]).to_ascii_lowercase();
    let mut payload = reply[split + 4..].to_vec();
    let length = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok());
    let chunked = head.contains("transfer-encoding: chunked");
    loop {
        let done = match length {
            Some(len) => payload.len() >= len,
            None if chunked => payload.windows(5).any(|w| w == b"0\r\n\r\n"),
            None => false,
        };
        if done {
            break;
        }
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            break;
        }
        payload.extend_from_slice(&chunk[..n]);
    }
    if let Some(len) = length {
        payload.truncate(len);
    } else if chunked {
        payload = dechunk(&payload);
    }
    serde_json::from_slice(&payload).map_err(|e| Error::Command {
        command: format!("{method} {path}"),
        message: format!("reply is not JSON: {e}"),
    })
}

/// The body of a chunked transfer coding.
fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = data.windows(2).position(|w| w == b"\r\n") {
        let size = std::str::from_utf8(&data[..eol])
            .ok()
            .and_then(|s| usize::from_str_radix(s.split(';').next().unwrap_or("").trim(), 16).ok())
            .unwrap_or(0);
        data = &data[eol + 2..];
        if size == 0 || size > data.len() {
            break;
        }
        out.extend_from_slice(&data[..size]);
        data = data.get(size + 2..).unwrap_or(&[]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunked_bodies_are_joined() {
        assert_eq!(dechunk(b"3\r\nabc\r\n2;x=1\r\nde\r\n0\r\n\r\n"), b"abcde");
    }
}
