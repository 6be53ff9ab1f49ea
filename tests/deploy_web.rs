//! What we ship is what we test (issue 17, deployment): the front on port 443 of
//! `deploy/docker-compose.yml` — `deploy/nginx/sni-router.sh` (nginx routing TLS by name) and
//! `deploy/Caddyfile` (HTTPS for the web client) — run with Debian's nginx and Caddy in front of
//! the real `cromulent server` and a real coturn, and does what docs/DEPLOY.md says:
//! - the page over HTTPS and its WebSocket through both proxies, with the `Host` the browser
//!   sent (port included) reaching the server, so the page's `Origin` is accepted and another
//!   site's is refused;
//! - the TURN URLs of the compose file handed out, UDP first;
//! - TURN over TLS on the router's port for the TURN name, switched on by itself once Caddy has
//!   that name's certificate (the router starts first here, as on a first boot), and an
//!   allocation over it with the credentials the server handed out; TURN over TCP as well.
//!
//! A test on one machine changes only where things listen and where certificates come from:
//! - Caddy: a global options block of the test's own ([`caddy_globals`]) before the shipped
//!   file: loopback and free ports, no admin endpoint, its storage in a temp dir, and
//!   certificates from Caddy's internal CA (`local_certs`) instead of Let's Encrypt;
//! - sni-router: free ports and temp paths through the environment variables the compose file
//!   also sets, and Debian's nginx with its stream module (libnginx-mod-stream);
//! - DNS: the clients connect to 127.0.0.1 and ask for the names (SNI, `Host`), as a browser
//!   does after looking them up.
//!
//! Nothing leaves the machine: every process listens on 127.0.0.1 only, and Caddy's internal
//! CA needs no network. A machine without `caddy` or `nginx` fails the main test; it never
//! passes it silently (scripts/setup installs both).

mod support;

use std::fs::File;
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use cromulent_test_support::process::{KillOnDrop, find_binary, poll_until, wait_exit};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use support::coturn::Coturn;
use support::{Server, TempDir, free_port};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_tungstenite::tungstenite;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use webrtc::stun::agent::TransactionId;
use webrtc::stun::attributes::{ATTR_NONCE, ATTR_REALM, ATTR_USERNAME};
use webrtc::stun::error_code::{CODE_UNAUTHORIZED, ErrorCodeAttribute};
use webrtc::stun::fingerprint::FINGERPRINT;
use webrtc::stun::integrity::MessageIntegrity;
use webrtc::stun::message::{
    CLASS_ERROR_RESPONSE, CLASS_REQUEST, CLASS_SUCCESS_RESPONSE, Getter, METHOD_ALLOCATE, Message,
    MessageType, Setter,
};
use webrtc::stun::textattrs::TextAttribute;
use webrtc::turn::proto::PROTO_UDP;
use webrtc::turn::proto::relayaddr::RelayedAddress;
use webrtc::turn::proto::reqtrans::RequestedTransport;

const DEPLOY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy");
const WEB_HOST: &str = "voice.example.org";
const TURN_HOST: &str = "turn.example.org";
/// What the compose file hands out in production (defaults, `TURN_HOST` as above).
const PRODUCTION_TURN_URLS: &str = "turn:turn.example.org:3478,\
     turn:turn.example.org:3478?transport=tcp,\
     turns:turn.example.org:443?transport=tcp";
/// Bound on every network step.
const STEP: Duration = Duration::from_secs(5);
/// Bound on a proxy's start, or on its noticing a certificate.
const READY: Duration = Duration::from_secs(20);
/// The router looks at the TURN certificate this often here (60 s in production).
const REFRESH_SECS: &str = "1";

/// A Debian binary the test needs, or a failure that says how to get it.
fn binary(name: &str, package: &str) -> PathBuf {
    find_binary(name)
        .or_else(|| Some(Path::new("/usr/sbin").join(name)).filter(|p| p.is_file()))
        .unwrap_or_else(|| {
            panic!("`{name}` is not installed: apt-get install {package} (scripts/setup does)")
        })
}

/// The compose file's `TURN_URLS` as written (with `${...}` still in it).
fn compose_turn_urls() -> String {
    let compose =
        std::fs::read_to_string(format!("{DEPLOY}/docker-compose.yml")).expect("compose file");
    let mut lines = compose.lines();
    let first = lines
        .by_ref()
        .find_map(|l| l.trim().strip_prefix("TURN_URLS:"))
        .expect("TURN_URLS in the compose file")
        .trim();
    match first {
        // A folded block: the value is on the next line.
        ">-" | ">" => lines.next().expect("TURN_URLS value").trim().to_owned(),
        value => value.trim_matches('"').to_owned(),
    }
}

/// Compose's `${NAME}`, `${NAME:-default}` and `${NAME:?message}`, from `vars`.
fn interpolate(text: &str, vars: &[(&str, &str)]) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let end = start + rest[start..].find('}').expect("closing brace");
        let expr = &rest[start + 2..end];
        let (name, modifier) = expr.split_at(expr.find(':').unwrap_or(expr.len()));
        let value = vars
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| (*v).to_owned())
            .or_else(|| modifier.strip_prefix(":-").map(str::to_owned))
            .unwrap_or_else(|| panic!("{name} is not set and has no default"));
        out.push_str(&value);
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out
}

/// `deploy/nginx/sni-router.sh run` with Debian's nginx, in a process group of its own: nginx's
/// master (the script execs it), its workers and the script's certificate watcher. Dropping it
/// ends the whole group.
struct Router {
    child: Child,
    log: PathBuf,
}

impl Router {
    fn start(dir: &Path, env: &[(&str, String)]) -> Self {
        let log = dir.join("router.log");
        let out = File::create(&log).expect("router log");
        let mut cmd = Command::new("sh");
        cmd.arg(format!("{DEPLOY}/nginx/sni-router.sh"))
            .arg("run")
            .env("NGINX_BIN", binary("nginx", "nginx libnginx-mod-stream"))
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("log"))
            .stderr(out)
            .process_group(0);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("run sni-router.sh");
        Self { child, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn signal_group(&self, signal: &str) {
        let _ = Command::new("kill")
            .args([signal, "--", &format!("-{}", self.child.id())])
            .stderr(Stdio::null())
            .status();
    }
}

impl Drop for Router {
    fn drop(&mut self) {
        // nginx's fast shutdown takes its workers along; SIGKILL for anything left.
        self.signal_group("-TERM");
        let _ = wait_exit(&mut self.child, Duration::from_secs(5));
        self.signal_group("-KILL");
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What the test puts before the shipped Caddyfile: loopback, free ports, a private storage,
/// certificates from Caddy's internal CA (no ACME, no network).
fn caddy_globals(http_port: u16, https_port: u16, storage: &Path) -> String {
    format!(
        "{{\n\tadmin off\n\tdefault_bind 127.0.0.1\n\thttp_port {http_port}\n\
         \thttps_port {https_port}\n\tlocal_certs\n\tskip_install_trust\n\
         \tstorage file_system {{\n\t\troot {}\n\t}}\n\
         \tservers {{\n\t\tprotocols h1 h2\n\t}}\n}}\n",
        storage.display()
    )
}

/// Caddy with the shipped Caddyfile behind [`caddy_globals`], proxying to `servers` (one, or
/// the instances of a cluster, named as the cluster compose file names them: separated by
/// spaces in `CROMULENT_SERVER`).
/// Held by a test that starts the shipped proxies. Their ports are picked free
/// ([`free_port`]) but bound only when Caddy and nginx start, so two such tests at once can
/// pick one port between them (seen in CI: Caddy's "address already in use").
fn one_proxy_set_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static PROXIES: std::sync::Mutex<()> = std::sync::Mutex::new(());
    PROXIES
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn start_caddy(dir: &Path, https_port: u16, servers: &[SocketAddr]) -> KillOnDrop {
    let storage = dir.join("caddy-data");
    let config = dir.join("Caddyfile");
    let text = format!(
        "{}import {DEPLOY}/Caddyfile\n",
        caddy_globals(free_port(), https_port, &storage)
    );
    std::fs::write(&config, text).expect("write the test's Caddyfile");
    let log = File::create(dir.join("caddy.log")).expect("caddy log");
    let mut cmd = Command::new(binary("caddy", "caddy"));
    cmd.args(["run", "--adapter", "caddyfile", "--config"])
        .arg(&config)
        .env("WEB_HOST", WEB_HOST)
        .env("TURN_HOST", TURN_HOST)
        .env("CROMULENT_SERVER", upstreams(servers))
        .env("HOME", dir)
        .env("XDG_CONFIG_HOME", dir.join("xdg-config"))
        .env("XDG_DATA_HOME", dir.join("xdg-data"))
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log"))
        .stderr(log);
    KillOnDrop::spawn(&mut cmd, "caddy")
}

/// `CROMULENT_SERVER` for `servers`: their addresses separated by spaces.
fn upstreams(servers: &[SocketAddr]) -> String {
    let each: Vec<String> = servers.iter().map(SocketAddr::to_string).collect();
    each.join(" ")
}

/// `attempt` until it succeeds, or its last failure after `limit` (plus one attempt's steps).
async fn retry<T, F: Future<Output = Result<T, String>>>(
    limit: Duration,
    mut attempt: impl FnMut() -> F,
) -> Result<T, String> {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let result = attempt().await;
        if result.is_ok() || tokio::time::Instant::now() >= deadline {
            return result;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A TLS client that trusts only `root`.
fn tls_connector(root: &Path) -> tokio_rustls::TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_file(root).expect("Caddy's root certificate"))
        .expect("add the root");
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("TLS versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

type Tls = tokio_rustls::client::TlsStream<TcpStream>;

/// TLS to 127.0.0.1:`port`, asking for `name` as a browser that looked it up would.
async fn tls(connector: &tokio_rustls::TlsConnector, port: u16, name: &str) -> Result<Tls, String> {
    let connect = async {
        let tcp = TcpStream::connect(("127.0.0.1", port))
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let name = ServerName::try_from(name.to_owned()).expect("a DNS name");
        connector
            .connect(name, tcp)
            .await
            .map_err(|e| format!("TLS: {e}"))
    };
    tokio::time::timeout(STEP, connect)
        .await
        .unwrap_or_else(|_| Err(format!("no TLS within {STEP:?}")))
}

/// `GET /` over TLS: the status line and headers, and the body.
async fn get_page(
    connector: &tokio_rustls::TlsConnector,
    port: u16,
) -> Result<(String, String), String> {
    let mut stream = tls(connector, port, WEB_HOST).await?;
    let request = format!("GET / HTTP/1.1\r\nHost: {WEB_HOST}:{port}\r\nConnection: close\r\n\r\n");
    let exchange = async {
        stream.write_all(request.as_bytes()).await?;
        let mut raw = Vec::new();
        // A peer that closes without TLS's close_notify ends the read with an error: what
        // arrived before it is the answer.
        let _ = stream.read_to_end(&mut raw).await;
        Ok::<_, std::io::Error>(raw)
    };
    let raw = tokio::time::timeout(STEP, exchange)
        .await
        .map_err(|_| "no answer within the step".to_owned())?
        .map_err(|e| format!("GET /: {e}"))?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("no HTTP answer: {text:?}"))?;
    Ok((head.to_owned(), body.to_owned()))
}

/// A WebSocket through the proxies with the page's `Origin`.
async fn websocket(
    connector: &tokio_rustls::TlsConnector,
    port: u16,
    origin: &str,
) -> Result<tokio_tungstenite::WebSocketStream<Tls>, tungstenite::Error> {
    let stream = tls(connector, port, WEB_HOST)
        .await
        .expect("TLS to the web name");
    let mut request = format!("wss://{WEB_HOST}:{port}/")
        .into_client_request()
        .expect("request");
    request
        .headers_mut()
        .insert("Origin", origin.parse().expect("header value"));
    tokio::time::timeout(STEP, tokio_tungstenite::client_async(request, stream))
        .await
        .expect("WebSocket handshake within the step")
        .map(|(ws, _)| ws)
}

type Wss = tokio_tungstenite::WebSocketStream<Tls>;

/// hello as `name`, join General: the `joined` reply.
async fn join(ws: &mut Wss, name: &str) -> Value {
    let hello = json!({"type": "hello", "protocol": 1, "name": name});
    let join = json!({"type": "join", "channel": 1});
    for msg in [hello, join] {
        ws.send(tungstenite::Message::text(msg.to_string()))
            .await
            .expect("send");
    }
    tokio::time::timeout(STEP, async {
        while let Some(frame) = ws.next().await {
            if let Ok(tungstenite::Message::Text(text)) = frame {
                let v: Value = serde_json::from_str(&text).expect("JSON from the server");
                if v["type"] == "joined" {
                    return v;
                }
                assert_ne!(v["type"], "error", "the server refused: {v}");
            }
        }
        panic!("the server closed the WebSocket before `joined`");
    })
    .await
    .expect("`joined` within the step")
}

/// One STUN request on a stream (TCP or TLS: length-framed by the STUN header), its answer.
async fn transact<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    setters: &[Box<dyn Setter>],
) -> Result<Message, String> {
    let mut request = Message::new();
    request.build(setters).map_err(|e| format!("build: {e}"))?;
    let exchange = async {
        stream.write_all(&request.raw).await?;
        let mut raw = vec![0u8; 20];
        stream.read_exact(&mut raw).await?;
        let len = usize::from(u16::from_be_bytes([raw[2], raw[3]]));
        raw.resize(20 + len, 0);
        stream.read_exact(&mut raw[20..]).await?;
        Ok::<_, std::io::Error>(raw)
    };
    let raw = tokio::time::timeout(STEP, exchange)
        .await
        .map_err(|_| "no STUN answer within the step".to_owned())?
        .map_err(|e| format!("STUN over the stream: {e}"))?;
    let mut answer = Message::new();
    answer.raw = raw;
    answer.decode().map_err(|e| format!("decode: {e}"))?;
    Ok(answer)
}

/// A TURN allocation (UDP relay) over `stream`, as a browser makes one on a `?transport=tcp`
/// or `turns:` URL: first without credentials (401 with realm and nonce), then with them.
/// The realm and the relayed address.
async fn allocate<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    username: &str,
    password: &str,
) -> Result<(String, SocketAddr), String> {
    let allocate = || Box::new(MessageType::new(METHOD_ALLOCATE, CLASS_REQUEST));
    let udp = || {
        Box::new(RequestedTransport {
            protocol: PROTO_UDP,
        })
    };
    let challenge = transact(
        stream,
        &[
            Box::new(TransactionId::new()),
            allocate(),
            udp(),
            Box::new(FINGERPRINT),
        ],
    )
    .await?;
    let mut code = ErrorCodeAttribute::default();
    code.get_from(&challenge)
        .map_err(|e| format!("no error code in the first answer: {e}"))?;
    if challenge.typ != MessageType::new(METHOD_ALLOCATE, CLASS_ERROR_RESPONSE)
        || code.code != CODE_UNAUTHORIZED
    {
        return Err(format!("expected 401, got {} {code}", challenge.typ));
    }
    let text = |attr| {
        TextAttribute::get_from_as(&challenge, attr)
            .map(|a| a.text)
            .map_err(|e| format!("no {attr} in the 401: {e}"))
    };
    let (realm, nonce) = (text(ATTR_REALM)?, text(ATTR_NONCE)?);
    let answer = transact(
        stream,
        &[
            Box::new(TransactionId::new()),
            allocate(),
            udp(),
            Box::new(TextAttribute::new(ATTR_USERNAME, username.to_owned())),
            Box::new(TextAttribute::new(ATTR_REALM, realm.clone())),
            Box::new(TextAttribute::new(ATTR_NONCE, nonce)),
            Box::new(MessageIntegrity::new_long_term_integrity(
                username.to_owned(),
                realm.clone(),
                password.to_owned(),
            )),
            Box::new(FINGERPRINT),
        ],
    )
    .await?;
    if answer.typ != MessageType::new(METHOD_ALLOCATE, CLASS_SUCCESS_RESPONSE) {
        let mut code = ErrorCodeAttribute::default();
        let _ = code.get_from(&answer);
        return Err(format!("allocation refused: {} {code}", answer.typ));
    }
    let mut relayed = RelayedAddress::default();
    relayed
        .get_from(&answer)
        .map_err(|e| format!("no relayed address: {e}"))?;
    Ok((realm, SocketAddr::new(relayed.ip, relayed.port)))
}

/// The TURN entry (the one with credentials) of a `joined`: urls, username, credential.
fn turn_entry(joined: &Value) -> (Vec<String>, String, String) {
    let servers = &joined["ice"]["servers"];
    let entry = servers
        .as_array()
        .and_then(|all| all.iter().find(|s| s["username"].is_string()))
        .unwrap_or_else(|| panic!("no TURN server with credentials in {servers}"));
    let urls = entry["urls"]
        .as_array()
        .expect("urls is a list")
        .iter()
        .map(|u| u.as_str().expect("url").to_owned())
        .collect();
    let text = |k: &str| entry[k].as_str().expect("string").to_owned();
    (urls, text("username"), text("credential"))
}

/// The port of a `turn:`/`turns:` URL for [`TURN_HOST`].
fn url_port(url: &str) -> u16 {
    let rest = url
        .split_once(&format!("{TURN_HOST}:"))
        .expect("TURN_HOST in the URL")
        .1;
    rest.split('?').next().unwrap().parse().expect("a port")
}

#[test]
fn the_web_client_and_turn_over_tls_share_port_443_through_the_shipped_proxies() {
    let _proxies = one_proxy_set_at_a_time();
    let dir = TempDir::new("deploy-web");
    let secret = format!("{:032x}", rand::random::<u128>());
    let coturn = Coturn::builder().secret(&secret).realm(TURN_HOST).start();
    let router_port = free_port();
    let caddy_port = free_port();

    // The compose file's TURN URLs: in production, and here (the router's port is 443 there).
    let written = compose_turn_urls();
    assert_eq!(
        interpolate(&written, &[("TURN_HOST", TURN_HOST)]),
        PRODUCTION_TURN_URLS,
        "the compose file hands out UDP, then TCP, then TLS on 443"
    );
    let port = coturn.port().to_string();
    let turn_urls = interpolate(
        &written,
        &[("TURN_HOST", TURN_HOST), ("TURN_LISTENING_PORT", &port)],
    )
    .replace(
        &format!("{TURN_HOST}:443"),
        &format!("{TURN_HOST}:{router_port}"),
    );
    let server = Server::start_with(
        free_port(),
        &[],
        &[
            ("TURN_PROVIDER", "coturn"),
            ("TURN_SECRET", &secret),
            ("TURN_URLS", &turn_urls),
        ],
    );

    // The router first, as on a first boot: Caddy has no certificate for TURN yet.
    let storage = dir.path("caddy-data");
    let router = Router::start(
        dir.root(),
        &[
            ("WEB_HOST", WEB_HOST.to_owned()),
            ("TURN_HOST", TURN_HOST.to_owned()),
            ("PROXY_LISTEN", format!("127.0.0.1:{router_port}")),
            ("WEB_BACKEND", format!("127.0.0.1:{caddy_port}")),
            ("TURN_BACKEND", coturn.addr().to_string()),
            ("TURN_TLS_INTERNAL", format!("127.0.0.1:{}", free_port())),
            (
                "CADDY_CERTS",
                storage.join("certificates").display().to_string(),
            ),
            ("PROXY_DIR", dir.path("router").display().to_string()),
            ("PROXY_REFRESH", REFRESH_SECS.to_owned()),
        ],
    );
    assert!(
        poll_until(READY, || std::net::TcpStream::connect((
            "127.0.0.1",
            router_port
        ))
        .is_ok()),
        "sni-router did not listen on {router_port}:\n{}",
        router.log()
    );
    assert!(
        router
            .log()
            .contains("TURN over TLS is off until Caddy has one"),
        "{}",
        router.log()
    );

    let _caddy = start_caddy(dir.root(), caddy_port, &[server.addr]);
    let root = storage.join("pki/authorities/local/root.crt");
    assert!(
        poll_until(READY, || CertificateDer::from_pem_file(&root).is_ok()),
        "Caddy made no CA:\n{}",
        std::fs::read_to_string(dir.path("caddy.log")).unwrap_or_default()
    );
    let connector = tls_connector(&root);
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    runtime.block_on(async {
        // The page over HTTPS, through the router and Caddy (Caddy may still be getting its
        // certificate: a bounded wait).
        let page = retry(READY, || get_page(&connector, router_port)).await;
        let (head, body) = page.unwrap_or_else(|e| {
            panic!(
                "no page through the proxies: {e}\nrouter:\n{}\ncaddy:\n{}",
                router.log(),
                std::fs::read_to_string(dir.path("caddy.log")).unwrap_or_default()
            )
        });
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        assert!(body.contains("<title>Cromulent Voice</title>"), "{body}");
        // The server builds its CSP from the Host it got: the browser's, port included.
        let csp = format!("wss://{WEB_HOST}:{router_port}");
        assert!(
            head.contains(&csp),
            "Host reached the server unchanged: {head}"
        );

        // The page's WebSocket: its Origin names the Host, so it is accepted.
        let origin = format!("https://{WEB_HOST}:{router_port}");
        let mut ws = websocket(&connector, router_port, &origin)
            .await
            .expect("the page's own WebSocket is accepted");
        let joined = join(&mut ws, "alice").await;
        let (urls, username, password) = turn_entry(&joined);
        let expected: Vec<&str> = turn_urls.split(',').collect();
        assert_eq!(urls, expected, "the TURN URLs are handed out in order");
        assert!(username.ends_with(":alice"), "REST username: {username}");

        // A page on another site is refused.
        match websocket(&connector, router_port, "https://elsewhere.example.net").await {
            Err(tungstenite::Error::Http(response)) => assert_eq!(response.status(), 403),
            other => panic!(
                "another site's page was not refused: {:?}",
                other.map(|_| ())
            ),
        }

        // turn:...?transport=tcp straight to coturn.
        let tcp_port = url_port(&urls[1]);
        let mut tcp = TcpStream::connect(("127.0.0.1", tcp_port))
            .await
            .expect("TCP to coturn");
        let (realm, relayed) = allocate(&mut tcp, &username, &password)
            .await
            .unwrap_or_else(|e| panic!("TURN over TCP: {e}\n{}", coturn.log()));
        assert_eq!(realm, TURN_HOST);
        assert!(coturn.relay_ports().contains(&relayed.port()), "{relayed}");

        // turns: on the router's port, once the router has picked up Caddy's certificate.
        let tls_port = url_port(&urls[2]);
        assert_eq!(tls_port, router_port);
        let turns = retry(READY, || tls(&connector, tls_port, TURN_HOST)).await;
        let mut turns = turns.unwrap_or_else(|e| {
            panic!(
                "no TURN over TLS with Caddy's certificate: {e}\n{}",
                router.log()
            )
        });
        let (realm, relayed) = allocate(&mut turns, &username, &password)
            .await
            .unwrap_or_else(|e| panic!("TURN over TLS: {e}\n{}\n{}", router.log(), coturn.log()));
        assert_eq!(realm, TURN_HOST);
        assert!(coturn.relay_ports().contains(&relayed.port()), "{relayed}");
        let _ = ws.close(None).await;
    });
    // It was switched on by a reload (the script says so just after sending it).
    assert!(
        poll_until(STEP, || router.log().contains("reloaded nginx")),
        "{}",
        router.log()
    );
    assert!(
        router
            .log()
            .contains("TURN over TLS for turn.example.org is on"),
        "{}",
        router.log()
    );
}

#[test]
fn the_router_refuses_one_name_for_the_web_and_turn() {
    let dir = TempDir::new("deploy-web-names");
    let out = Command::new("sh")
        .arg(format!("{DEPLOY}/nginx/sni-router.sh"))
        .arg("render")
        .env("WEB_HOST", "voice.example.org")
        .env("TURN_HOST", "Voice.Example.org")
        .env("PROXY_DIR", dir.path("router"))
        .output()
        .expect("run sni-router.sh");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("give TURN a name of its own"), "{stderr}");
}

/// Many instances (issue 21): two instances of one cluster behind the shipped Caddyfile, named
/// in `CROMULENT_SERVER` as deploy/docker-compose.cluster.yml names them. Two clients through
/// the one address land on different instances (fewest connections first), yet each sees the
/// other: one community. When one instance is killed exactly one of them loses its
/// connection — they were on different instances — and a newcomer through the same address is
/// served by the survivor and finds the survivor's user there.
#[test]
fn two_cluster_instances_behind_one_caddy_address_serve_one_community() {
    let _proxies = one_proxy_set_at_a_time();
    let dir = TempDir::new("deploy-cluster");
    let redis = support::Redis::start();
    let one = Server::cluster_instance(&redis, "one");
    let two = Server::cluster_instance(&redis, "two");
    let caddy_port = free_port();
    let _caddy = start_caddy(dir.root(), caddy_port, &[one.addr, two.addr]);
    let root = dir.path("caddy-data/pki/authorities/local/root.crt");
    assert!(
        poll_until(READY, || CertificateDer::from_pem_file(&root).is_ok()),
        "Caddy made no CA:\n{}",
        std::fs::read_to_string(dir.path("caddy.log")).unwrap_or_default()
    );
    let connector = tls_connector(&root);
    let origin = format!("https://{WEB_HOST}:{caddy_port}");
    let connect = || async {
        websocket(&connector, caddy_port, &origin)
            .await
            .map_err(|e| e.to_string())
    };
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    runtime.block_on(async {
        // Caddy may still be getting its certificate: a bounded wait for it.
        if let Err(e) = retry(READY, || tls(&connector, caddy_port, WEB_HOST)).await {
            panic!(
                "no TLS from Caddy: {e}\n{}",
                std::fs::read_to_string(dir.path("caddy.log")).unwrap_or_default()
            )
        }
        let mut alice = connect().await.expect("a WebSocket through Caddy");
        join(&mut alice, "alice").await;
        let mut bob = connect().await.expect("a second WebSocket through Caddy");
        let joined = join(&mut bob, "bob").await;
        assert_eq!(peers(&joined), ["alice"], "bob sees alice seated: {joined}");
        let change = next_where(&mut alice, |m| {
            m["type"] == "presence" && m["changes"][0]["member"]["user"] == "bob"
        })
        .await
        .expect("alice hears of bob");
        assert_eq!(change["changes"][0]["op"], "join", "{change}");

        one.kill();
        let mut alive = Vec::new();
        for (name, ws) in [("alice", &mut alice), ("bob", &mut bob)] {
            if answers_ping(ws).await {
                alive.push(name);
            }
        }
        let [survivor] = alive[..] else {
            panic!("exactly one client was on the killed instance; still connected: {alive:?}");
        };
        // The killed instance refuses; Caddy tries the survivor.
        let mut carol = connect().await.expect("a WebSocket after the kill");
        let joined = join(&mut carol, "carol").await;
        assert!(
            peers(&joined).contains(&survivor.to_owned()),
            "carol, on the survivor, sees {survivor}: {joined}"
        );
    });
}

/// The users among `joined`'s peers.
fn peers(joined: &Value) -> Vec<String> {
    joined["peers"]
        .as_array()
        .map(|peers| {
            peers
                .iter()
                .filter_map(|p| p["user"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// The next message matching `pred` within [`STEP`]; `None` when the connection ends first.
async fn next_where(ws: &mut Wss, pred: impl Fn(&Value) -> bool) -> Option<Value> {
    tokio::time::timeout(STEP, async {
        while let Some(Ok(frame)) = ws.next().await {
            if let tungstenite::Message::Text(text) = frame {
                let v: Value = serde_json::from_str(&text).expect("JSON from the server");
                if pred(&v) {
                    return Some(v);
                }
            }
        }
        None
    })
    .await
    .expect("an answer or the end of the connection within the step")
}

/// Whether the connection still answers a `ping` (false: it ended).
async fn answers_ping(ws: &mut Wss) -> bool {
    let ping = json!({"type": "ping", "id": 7}).to_string();
    if ws.send(tungstenite::Message::text(ping)).await.is_err() {
        return false;
    }
    next_where(ws, |m| m["type"] == "pong").await.is_some()
}
