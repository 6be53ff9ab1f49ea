//! The Metered provider against a local HTTP server speaking Metered's format: the answer is
//! normalised (`urls` always a list), the API key goes out as the `apiKey` query parameter,
//! and every failure (HTTP error, bad JSON, silence, refused connection, oversized answer)
//! falls back to the configured STUN URLs and nothing else.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cromulent_protocol::{IceConfig, IceServer};
use cromulent_server::config::{TurnConfig, TurnProvider};
use cromulent_server::turn::IceProvider;
use cromulent_server::turn::metered::MeteredClient;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const API_PATH: &str = "/api/v1/turn/credentials";
const API_KEY: &str = "SeCrEtKeY+/=&x";
const API_KEY_ENCODED: &str = "SeCrEtKeY%2B%2F%3D%26x";
const FALLBACK_STUN: &str = "stun:fallback.test:3478";
const TIMEOUT_MS: u64 = 300;

/// What Metered documents for `GET /api/v1/turn/credentials` (one entry given as a list,
/// as some deployments and WebRTC itself allow).
const METERED_ANSWER: &str = r#"[
  {"urls": "stun:stun.relay.metered.ca:80"},
  {"urls": "turn:global.relay.metered.ca:80", "username": "u1", "credential": "p1"},
  {"urls": ["turn:global.relay.metered.ca:443", "turns:global.relay.metered.ca:443?transport=tcp"],
   "username": "u1", "credential": "p1"}
]"#;

/// How the fake Metered answers.
#[derive(Clone)]
enum Reply {
    Http {
        status: &'static str,
        body: String,
    },
    /// Reads the request and never answers.
    Silent,
}

fn ok(body: &str) -> Reply {
    Reply::Http {
        status: "200 OK",
        body: body.to_owned(),
    }
}

/// A one-route HTTP/1.1 server on 127.0.0.1; records each request line.
struct FakeMetered {
    url: String,
    requests: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeMetered {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeMetered {
    async fn start(reply: Reply) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}{API_PATH}", listener.local_addr().expect("addr"));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let task = tokio::spawn(serve(listener, reply, Arc::clone(&requests)));
        Self {
            url,
            requests,
            task,
        }
    }

    fn requests(&self) -> Vec<String> {
        self.requests.lock().expect("not poisoned").clone()
    }
}

async fn serve(listener: TcpListener, reply: Reply, requests: Arc<Mutex<Vec<String>>>) {
    while let Ok((stream, _)) = listener.accept().await {
        let (reply, requests) = (reply.clone(), Arc::clone(&requests));
        tokio::spawn(handle(stream, reply, requests));
    }
}

async fn handle(mut stream: TcpStream, reply: Reply, requests: Arc<Mutex<Vec<String>>>) {
    let head = read_head(&mut stream).await;
    let request_line = head.lines().next().unwrap_or_default().to_owned();
    requests.lock().expect("not poisoned").push(request_line);
    match reply {
        Reply::Silent => std::future::pending::<()>().await,
        Reply::Http { status, body } => {
            let response = format!(
                "HTTP/1.1 {status}\r\nContent-Type: application/json\r\n\
                 Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(response.as_bytes()).await;
            let _ = stream.shutdown().await;
        }
    }
}

/// The request head (up to the blank line), at most 16 KiB.
async fn read_head(stream: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 * 1024 {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&head).into_owned()
}

fn metered_config(api_url: &str) -> TurnConfig {
    TurnConfig {
        provider: TurnProvider::Metered,
        api_url: api_url.to_owned(),
        api_key: API_KEY.to_owned(),
        api_timeout_ms: TIMEOUT_MS,
        stun_urls: vec![FALLBACK_STUN.to_owned()],
        ..TurnConfig::default()
    }
}

fn server(urls: &[&str], creds: Option<(&str, &str)>) -> IceServer {
    IceServer {
        urls: urls.iter().map(|u| u.to_string()).collect(),
        username: creds.map(|c| c.0.to_owned()),
        credential: creds.map(|c| c.1.to_owned()),
    }
}

fn stun_only() -> IceConfig {
    IceConfig {
        servers: vec![server(&[FALLBACK_STUN], None)],
        expires_at: None,
    }
}

/// `ice_for` against a fake Metered answering `reply`, bounded well past the configured timeout.
async fn ice_with(reply: Reply) -> (IceConfig, FakeMetered) {
    let fake = FakeMetered::start(reply).await;
    let provider = IceProvider::new(metered_config(&fake.url));
    let ice = tokio::time::timeout(Duration::from_secs(10), provider.ice_for("alice"))
        .await
        .expect("ice_for must be bounded by api_timeout_ms");
    (ice, fake)
}

#[tokio::test]
async fn answer_is_normalised_and_the_api_key_is_sent() {
    let (ice, fake) = ice_with(ok(METERED_ANSWER)).await;
    let expected = IceConfig {
        servers: vec![
            server(&["stun:stun.relay.metered.ca:80"], None),
            server(&["turn:global.relay.metered.ca:80"], Some(("u1", "p1"))),
            server(
                &[
                    "turn:global.relay.metered.ca:443",
                    "turns:global.relay.metered.ca:443?transport=tcp",
                ],
                Some(("u1", "p1")),
            ),
            server(&[FALLBACK_STUN], None),
        ],
        expires_at: None,
    };
    assert_eq!(ice, expected);
    assert_eq!(
        fake.requests(),
        [format!("GET {API_PATH}?apiKey={API_KEY_ENCODED} HTTP/1.1")]
    );
}

#[tokio::test]
async fn malformed_entries_are_skipped() {
    let body = r#"[{"urls": 5}, {"urls": "turn:t.example:80"},
                   {"urls": ["turn:t.example:80"], "username": "u", "credential": "p"}]"#;
    let (ice, _fake) = ice_with(ok(body)).await;
    assert_eq!(
        ice.servers,
        [
            server(&["turn:t.example:80"], Some(("u", "p"))),
            server(&[FALLBACK_STUN], None)
        ]
    );
}

#[tokio::test]
async fn http_500_falls_back_to_stun_only() {
    let reply = Reply::Http {
        status: "500 Internal Server Error",
        body: METERED_ANSWER.to_owned(),
    };
    let (ice, fake) = ice_with(reply).await;
    assert_eq!(ice, stun_only());
    assert_eq!(fake.requests().len(), 1, "the request was made");
}

#[tokio::test]
async fn invalid_api_key_answer_falls_back_to_stun_only() {
    let reply = Reply::Http {
        status: "401 Unauthorized",
        body: r#"{"error": "Invalid API Key"}"#.to_owned(),
    };
    assert_eq!(ice_with(reply).await.0, stun_only());
}

#[tokio::test]
async fn invalid_json_falls_back_to_stun_only() {
    for body in [
        "<html>oops</html>",
        "[{\"urls\": ",
        "",
        r#"{"urls": "turn:x:1"}"#,
    ] {
        assert_eq!(ice_with(ok(body)).await.0, stun_only(), "body {body:?}");
    }
}

#[tokio::test]
async fn empty_or_wholly_malformed_list_falls_back_to_stun_only() {
    for body in ["[]", r#"[{"urls": []}, {"urls": "turn:x:1"}, 3]"#] {
        assert_eq!(ice_with(ok(body)).await.0, stun_only(), "body {body:?}");
    }
}

#[tokio::test]
async fn oversized_answer_falls_back_to_stun_only() {
    let entry = r#"{"urls": "stun:stun.relay.metered.ca:80"}"#;
    let body = format!("[{}]", vec![entry; 2000].join(","));
    assert!(body.len() > cromulent_server::turn::metered::MAX_BODY_BYTES);
    assert_eq!(ice_with(ok(&body)).await.0, stun_only());
}

#[tokio::test]
async fn silent_server_times_out_and_falls_back_to_stun_only() {
    let started = Instant::now();
    let (ice, fake) = ice_with(Reply::Silent).await;
    let waited = started.elapsed();
    assert_eq!(ice, stun_only());
    assert_eq!(
        fake.requests().len(),
        1,
        "connected and asked, then no answer"
    );
    // The configured 300 ms applied, not the 3 s default (generous bounds: not a benchmark).
    assert!(waited >= Duration::from_millis(TIMEOUT_MS), "{waited:?}");
    assert!(waited < Duration::from_millis(2_500), "{waited:?}");
}

#[tokio::test]
async fn connection_refused_falls_back_to_stun_only() {
    let closed = {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        listener.local_addr().expect("addr")
    };
    let provider = IceProvider::new(metered_config(&format!("http://{closed}{API_PATH}")));
    let ice = tokio::time::timeout(Duration::from_secs(10), provider.ice_for("alice"))
        .await
        .expect("bounded");
    assert_eq!(ice, stun_only());
}

#[tokio::test]
async fn errors_never_show_the_api_key() {
    let timeout = Duration::from_millis(TIMEOUT_MS);
    let fake = FakeMetered::start(Reply::Http {
        status: "500 Internal Server Error",
        body: String::new(),
    })
    .await;
    let closed = {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        format!("http://{}{API_PATH}", listener.local_addr().expect("addr"))
    };
    for url in [fake.url.clone(), closed] {
        let client = MeteredClient::new(&url, API_KEY, timeout).expect("valid URL");
        let error = client.fetch().await.expect_err("must fail").to_string();
        assert!(
            !error.contains("SeCrEtKeY") && !error.contains("apiKey"),
            "key leaked: {error}"
        );
    }
}
