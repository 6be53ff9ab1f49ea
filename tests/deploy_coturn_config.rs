//! What we ship is what we test (issue 5, deployment): the coturn config is rendered by the
//! very script the container's entrypoint runs (`deploy/coturn/render-config.sh` over
//! `deploy/coturn/turnserver.conf`), the real coturn runs with it, and credentials handed out
//! by the real `cromulent server` allocate on it; peers in denied ranges are refused.
//!
//! A test on one machine has to add a few things to the shipped config, all of them here:
//! - listen and relay on 127.0.0.1, pidfile and user db in a temp dir (the coturn harness);
//! - [`SINGLE_MACHINE_ALLOWANCES`]: loopback peers, because the one peer this test can reach
//!   is on 127.0.0.1, which the shipped config denies.
//!
//! No packet leaves the machine: coturn relays from 127.0.0.1, which Linux never routes
//! anywhere but loopback, and a refused CreatePermission sends nothing to the peer at all.

mod support;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use cromulent_test_support::netns;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use support::coturn::{Allocation, Coturn, Ports};
use support::{Server, TempDir, free_port};
use tokio_tungstenite::tungstenite::Message;

const RENDER: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/deploy/coturn/render-config.sh"
);
const TEMPLATE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/coturn/turnserver.conf");
const ENTRYPOINT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/coturn/entrypoint.sh");
const REALM: &str = "turn.example.org";

/// The only coturn options this test adds to the rendered config (besides the harness's
/// address and file locations). `allowed-peer-ip` takes precedence over `denied-peer-ip`;
/// `allow-loopback-peers` lifts coturn's own loopback ban.
const SINGLE_MACHINE_ALLOWANCES: [&str; 2] =
    ["--allow-loopback-peers", "--allowed-peer-ip=127.0.0.1"];

/// One address from each range the shipped config denies, and the `denied-peer-ip` range
/// coturn must name when it refuses it (`None`: refused before the list by coturn's own
/// checks: 0.0.0.0/8 always, and everything from 224.0.0.0 up with `no-multicast-peers`;
/// the list covers them too, for other coturn versions). IPv4 only: the test's relay is IPv4,
/// and coturn answers an IPv6 peer on it with an address-family error before any ACL.
///
/// Naming the range matters: coturn checks the list from the last entry to the first, so an
/// IPv6 entry that wrongly matched IPv4 addresses (as `::-::1` does in coturn 4.6.1) would be
/// named instead, and an address caught by it proves nothing about its own range.
const DENIED_PEERS: [(Ipv4Addr, Option<&str>); 14] = [
    (Ipv4Addr::new(0, 0, 0, 1), None),
    (Ipv4Addr::new(10, 0, 0, 1), Some("10.0.0.0-10.255.255.255")),
    (
        Ipv4Addr::new(100, 64, 0, 1),
        Some("100.64.0.0-100.127.255.255"),
    ),
    // Cloud metadata services live here.
    (
        Ipv4Addr::new(169, 254, 169, 254),
        Some("169.254.0.0-169.254.255.255"),
    ),
    (
        Ipv4Addr::new(172, 31, 255, 1),
        Some("172.16.0.0-172.31.255.255"),
    ),
    (Ipv4Addr::new(192, 0, 0, 1), Some("192.0.0.0-192.0.0.255")),
    (Ipv4Addr::new(192, 0, 2, 1), Some("192.0.2.0-192.0.2.255")),
    (
        Ipv4Addr::new(192, 88, 99, 1),
        Some("192.88.99.0-192.88.99.255"),
    ),
    (
        Ipv4Addr::new(192, 168, 1, 1),
        Some("192.168.0.0-192.168.255.255"),
    ),
    (
        Ipv4Addr::new(198, 19, 0, 1),
        Some("198.18.0.0-198.19.255.255"),
    ),
    (
        Ipv4Addr::new(198, 51, 100, 1),
        Some("198.51.100.0-198.51.100.255"),
    ),
    (
        Ipv4Addr::new(203, 0, 113, 1),
        Some("203.0.113.0-203.0.113.255"),
    ),
    (Ipv4Addr::new(224, 0, 0, 1), None),
    (Ipv4Addr::new(240, 0, 0, 1), None),
];

/// Public addresses, most of them just outside a denied range: coturn must grant these.
const PUBLIC_PEERS: [Ipv4Addr; 10] = [
    Ipv4Addr::new(1, 0, 0, 1),
    Ipv4Addr::new(11, 0, 0, 1),
    Ipv4Addr::new(100, 128, 0, 1),
    Ipv4Addr::new(126, 255, 255, 254),
    Ipv4Addr::new(128, 0, 0, 1),
    Ipv4Addr::new(169, 255, 0, 1),
    Ipv4Addr::new(172, 32, 0, 1),
    Ipv4Addr::new(192, 169, 0, 1),
    Ipv4Addr::new(198, 20, 0, 1),
    Ipv4Addr::new(223, 255, 255, 254),
];

/// Run the render script with exactly these environment variables (plus PATH).
fn render_with(env: &[(&str, &str)], output: &Path) -> Output {
    let mut cmd = Command::new("sh");
    cmd.arg(RENDER).arg(TEMPLATE).arg(output).env_clear();
    if let Some(path) = std::env::var_os("PATH") {
        cmd.env("PATH", path);
    }
    cmd.envs(env.iter().copied());
    cmd.output().expect("run sh")
}

/// The environment a deployment sets, for these ports.
fn deployment_env(secret: &str, ports: &Ports) -> Vec<(&'static str, String)> {
    vec![
        ("TURN_SECRET", secret.to_owned()),
        ("TURN_REALM", REALM.to_owned()),
        ("TURN_LISTENING_PORT", ports.listening.to_string()),
        ("TURN_MIN_PORT", ports.relay.start().to_string()),
        ("TURN_MAX_PORT", ports.relay.end().to_string()),
    ]
}

/// A coturn on the rendered config plus `allowances`.
fn shipped_coturn(secret: &str, allowances: &[&str]) -> Coturn {
    let owned = secret.to_owned();
    let mut builder = Coturn::builder()
        .secret(secret)
        .rendered_config(move |ports, dir| {
            let file = dir.join("turnserver.conf");
            let env = deployment_env(&owned, ports);
            let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let out = render_with(&env, &file);
            if out.status.success() {
                Ok(file)
            } else {
                Err(format!(
                    "render-config.sh failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                ))
            }
        });
    for arg in allowances {
        builder = builder.arg(*arg);
    }
    builder.start()
}

fn random_secret() -> String {
    format!("{:032x}", rand::random::<u128>())
}

/// The ICE servers `cromulent server` puts in its `joined` reply to `user`, over a raw
/// WebSocket (hello, join General).
async fn ice_servers_from(server: &Server, user: &str) -> Value {
    let (mut ws, _) = tokio_tungstenite::connect_async(server.url())
        .await
        .expect("connect to the server");
    let hello = json!({"type": "hello", "protocol": 1, "name": user});
    let join = json!({"type": "join", "channel": 1});
    for msg in [hello, join] {
        ws.send(Message::text(msg.to_string())).await.expect("send");
    }
    let reply = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(frame) = ws.next().await {
            if let Ok(Message::Text(text)) = frame {
                let v: Value = serde_json::from_str(&text).expect("JSON from the server");
                if v["type"] == "joined" {
                    return v;
                }
                assert_ne!(v["type"], "error", "the server refused: {v}");
            }
        }
        panic!("the server closed the connection before `joined`");
    })
    .await
    .expect("`joined` within 10 s");
    let _ = ws.close(None).await;
    reply["ice"]["servers"].clone()
}

/// The TURN server entry (the one with credentials): (urls, username, credential).
fn turn_entry(servers: &Value) -> (Vec<String>, String, String) {
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

/// Whether coturn's log shows `line` within a second (it reaches the file a moment later).
async fn log_shows(coturn: &Coturn, line: &str) -> bool {
    for _ in 0..50 {
        if coturn.log().contains(line) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Runtime::new().expect("tokio runtime")
}

#[test]
fn the_shipped_config_relays_with_our_servers_credentials_and_refuses_denied_peers() {
    let secret = random_secret();
    let coturn = shipped_coturn(&secret, &SINGLE_MACHINE_ALLOWANCES);
    let turn_url = coturn.turn_url();
    let server = Server::start_with(
        free_port(),
        &[],
        &[
            ("TURN_PROVIDER", "coturn"),
            ("TURN_SECRET", &secret),
            ("TURN_URLS", &turn_url),
        ],
    );
    runtime().block_on(async {
        let (urls, username, credential) = turn_entry(&ice_servers_from(&server, "alice").await);
        assert_eq!(urls, std::slice::from_ref(&turn_url));
        assert!(username.ends_with(":alice"), "REST username: {username}");

        let allocation = Allocation::new(coturn.addr(), &username, &credential)
            .await
            .unwrap_or_else(|e| panic!("allocation refused: {e}\n{}", coturn.log()));
        let relayed = allocation.relayed_addr();
        assert!(
            coturn.relay_ports().contains(&relayed.port()),
            "relayed from the rendered relay range: {relayed}"
        );

        // Data really flows through the relay to an allowed peer.
        let peer = tokio::net::UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .expect("peer socket");
        let peer_addr = peer.local_addr().expect("peer addr");
        allocation
            .send_to(b"through the relay", peer_addr)
            .await
            .expect("permission for the allowed peer");
        let mut buf = [0u8; 64];
        let (n, from) = tokio::time::timeout(Duration::from_secs(5), peer.recv_from(&mut buf))
            .await
            .expect("relayed data within 5 s")
            .expect("recv");
        assert_eq!(&buf[..n], b"through the relay");
        assert_eq!(from, relayed, "the data came from the relayed address");

        // Every denied range: CreatePermission gets 403 Forbidden, from that very range.
        for (ip, range) in DENIED_PEERS {
            let to = SocketAddr::from((ip, 9));
            match allocation.send_to(b"must not pass", to).await {
                Err(e) => assert!(
                    e.to_string().contains("403"),
                    "{ip}: refused, but not with 403: {e}"
                ),
                Ok(()) => panic!("{ip} is in a denied range but coturn granted a permission"),
            }
            if let Some(range) = range {
                let line = format!("A peer IP {ip} denied in the range: {range}");
                assert!(
                    log_shows(&coturn, &line).await,
                    "coturn logs `{line}`:\n{}",
                    coturn.log()
                );
            }
        }
        allocation.close().await;

        // And credentials signed with another secret are refused.
        let forged = cromulent_server::turn::coturn::credentials(
            &random_secret(),
            "mallory",
            600,
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .expect("clock after 1970")
                .as_secs(),
        );
        match Allocation::new(coturn.addr(), &forged.username, &forged.credential).await {
            Err(e) => assert!(e.to_string().contains("401"), "refused with 401: {e}"),
            Ok(a) => {
                a.close().await;
                panic!("coturn accepted credentials signed with another secret");
            }
        }
    });
}

/// Without the test's `allowed-peer-ip`, the shipped `denied-peer-ip` list alone refuses
/// loopback peers (coturn's own loopback ban stays lifted by `--allow-loopback-peers`): the
/// allowance above is what lets the first test through, not a gap in the list.
#[test]
fn without_the_tests_allowance_the_shipped_config_refuses_loopback_peers() {
    let secret = random_secret();
    let coturn = shipped_coturn(&secret, &["--allow-loopback-peers"]);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs();
    let creds = cromulent_server::turn::coturn::credentials(&secret, "bob", 600, now);
    runtime().block_on(async {
        let allocation = Allocation::new(coturn.addr(), &creds.username, &creds.credential)
            .await
            .unwrap_or_else(|e| panic!("allocation refused: {e}\n{}", coturn.log()));
        let peer = SocketAddr::from((Ipv4Addr::LOCALHOST, 9));
        let refused = allocation.send_to(b"must not pass", peer).await;
        allocation.close().await;
        let e = refused.expect_err("127.0.0.1 is denied by the shipped config");
        assert!(e.to_string().contains("403"), "refused with 403: {e}");
        let line = "A peer IP 127.0.0.1 denied in the range: 127.0.0.0-127.255.255.255";
        assert!(
            log_shows(&coturn, line).await,
            "coturn logs `{line}`:\n{}",
            coturn.log()
        );
    });
}

fn rendered(env: &[(&str, &str)]) -> (Output, Option<String>) {
    let dir = TempDir::new("render");
    let file = dir.path("turnserver.conf");
    let out = render_with(env, &file);
    let text = std::fs::read_to_string(&file).ok();
    (out, text)
}

/// The settings docs/DEPLOY.md promises, with the values from the environment, and nothing
/// left for coturn to (not) expand.
#[test]
fn the_rendered_config_holds_the_promised_settings() {
    let secret = random_secret();
    let (out, text) = rendered(&[
        ("TURN_SECRET", &secret),
        ("TURN_REALM", REALM),
        ("TURN_EXTERNAL_IP", "198.51.100.7/10.0.0.5"),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = text.expect("config written");
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    let static_secret = format!("static-auth-secret={secret}");
    let realm = format!("realm={REALM}");
    for expected in [
        "use-auth-secret",
        static_secret.as_str(),
        realm.as_str(),
        "listening-port=3478",
        "min-port=49152",
        "max-port=50151",
        "user-quota=16",
        "total-quota=1000",
        "max-bps=64000",
        "external-ip=198.51.100.7/10.0.0.5",
        "no-multicast-peers",
        "no-cli",
        "no-tcp-relay",
        "fingerprint",
        "no-tls",
        "no-dtls",
        "denied-peer-ip=10.0.0.0-10.255.255.255",
        "denied-peer-ip=fc00::-fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
    ] {
        assert!(
            lines.contains(&expected),
            "missing `{expected}` in:\n{text}"
        );
    }
    let settings: Vec<&&str> = lines
        .iter()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    assert!(
        settings.iter().all(|l| !l.contains('$')),
        "nothing for coturn to expand"
    );
    for forbidden in [
        "allow-loopback-peers",
        "allowed-peer-ip",
        "no-auth",
        "lt-cred-mech",
    ] {
        assert!(
            !settings.iter().any(|l| l.starts_with(forbidden)),
            "`{forbidden}` must not be in the shipped config"
        );
    }
    // The compose file's relay range defaults are the script's (what the firewall opens).
    let compose = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/docker-compose.yml"
    ))
    .expect("compose file");
    for default in ["${TURN_MIN_PORT:-49152}", "${TURN_MAX_PORT:-50151}"] {
        assert!(compose.contains(default), "compose passes {default}");
    }
    // The entrypoint renders with this script and starts coturn on the result.
    let entrypoint = std::fs::read_to_string(ENTRYPOINT).expect("entrypoint");
    assert!(entrypoint.contains("render-config.sh"));
    assert!(entrypoint.contains("exec turnserver -c \"$config\""));
}

#[test]
fn tls_settings_are_rendered_only_with_a_certificate_and_key() {
    let dir = TempDir::new("render-tls");
    let cert = dir.path("cert.pem");
    let key = dir.path("key.pem");
    std::fs::write(&cert, "not checked by the script").unwrap();
    std::fs::write(&key, "not checked by the script").unwrap();
    let secret = random_secret();
    let (cert, key) = (cert.display().to_string(), key.display().to_string());
    let (out, text) = rendered(&[
        ("TURN_SECRET", &secret),
        ("TURN_REALM", REALM),
        ("TURN_TLS_CERT", &cert),
        ("TURN_TLS_KEY", &key),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = text.expect("config written");
    assert!(text.contains(&format!("\ncert={cert}\n")));
    assert!(text.contains(&format!("\npkey={key}\n")));
    assert!(text.contains("\ntls-listening-port=5349\n"));
    assert!(!text.contains("\nno-tls\n"), "TLS stays on");
}

/// Mistakes fail at render time with a message, and no config is written.
#[test]
fn bad_settings_are_refused_with_a_reason() {
    let good = random_secret();
    // (what is wrong, the environment, what the script must say)
    type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, &'a str);
    let cases: [Case; 6] = [
        (
            "no secret",
            vec![("TURN_REALM", REALM)],
            "TURN_SECRET is not set",
        ),
        (
            "short secret",
            vec![("TURN_SECRET", "short"), ("TURN_REALM", REALM)],
            "too short",
        ),
        (
            "unexpanded placeholder",
            vec![("TURN_SECRET", "${TURN_SECRET}"), ("TURN_REALM", REALM)],
            "TURN_SECRET may only hold",
        ),
        (
            "no realm",
            vec![("TURN_SECRET", &good)],
            "TURN_REALM is not set",
        ),
        (
            "listening port inside the relay range",
            vec![
                ("TURN_SECRET", &good),
                ("TURN_REALM", REALM),
                ("TURN_LISTENING_PORT", "49200"),
            ],
            "inside the relay range",
        ),
        (
            "certificate without key",
            vec![
                ("TURN_SECRET", &good),
                ("TURN_REALM", REALM),
                ("TURN_TLS_CERT", "/etc/hostname"),
            ],
            "TURN_TLS_CERT and TURN_TLS_KEY",
        ),
    ];
    for (what, env, message) in cases {
        let (out, text) = rendered(&env);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{what}: refused");
        assert!(
            stderr.contains(message),
            "{what}: says `{message}`: {stderr}"
        );
        assert!(text.is_none(), "{what}: no config written");
    }
}

/// The rendered file holds the secret: only its owner may read it.
#[test]
fn the_rendered_config_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = TempDir::new("render-mode");
    let file: PathBuf = dir.path("turnserver.conf");
    let secret = random_secret();
    let out = render_with(&[("TURN_SECRET", &secret), ("TURN_REALM", REALM)], &file);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "mode {mode:o}");
}

/// Set in the copy of this test binary that runs inside the isolated namespace.
const ISOLATED: &str = "CROMULENT_DEPLOY_TEST_ISOLATED";

/// Public peers get their permission: the deny list is not too broad (the first version of it
/// denied every IPv4 peer through coturn's `::-::1` quirk while the other tests passed). Once a
/// permission is granted the test's data goes out towards that public address, which must
/// not leave the machine: this test re-runs itself inside a network namespace of its own that
/// has nothing but loopback. Needs root, like every namespace; elsewhere it says SKIPPED.
#[test]
fn the_shipped_config_grants_public_peers() {
    if std::env::var_os(ISOLATED).is_some() {
        grant_public_peers_here();
        return;
    }
    let Some(ns) = IsolatedNetns::create() else {
        return;
    };
    let out = Command::new("ip")
        .args(["netns", "exec", &ns.0])
        .arg(std::env::current_exe().expect("test binary path"))
        .args([
            "--exact",
            "the_shipped_config_grants_public_peers",
            "--test-threads=1",
        ])
        .env(ISOLATED, "1")
        .output()
        .expect("run this test inside the namespace");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "inside the isolated namespace ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The body of [`the_shipped_config_grants_public_peers`], inside the namespace.
fn grant_public_peers_here() {
    let secret = random_secret();
    // No allowance at all: the TURN client is on loopback, but no peer is.
    let coturn = shipped_coturn(&secret, &[]);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs();
    let creds = cromulent_server::turn::coturn::credentials(&secret, "carol", 600, now);
    runtime().block_on(async {
        for ip in PUBLIC_PEERS {
            // One allocation per peer: coturn drops an allocation whose relay send fails, and
            // here every relay send fails (no route out of the namespace).
            let allocation = Allocation::new(coturn.addr(), &creds.username, &creds.credential)
                .await
                .unwrap_or_else(|e| panic!("allocation refused: {e}\n{}", coturn.log()));
            let granted = allocation
                .send_to(b"towards a public peer", SocketAddr::from((ip, 9)))
                .await;
            allocation.close().await;
            if let Err(e) = granted {
                panic!(
                    "{ip} is public but coturn refused it: {e}\n{}",
                    coturn.log()
                );
            }
        }
    });
}

/// A network namespace with only loopback, deleted (with anything running in it) on drop.
struct IsolatedNetns(String);

impl IsolatedNetns {
    /// `None` (after saying SKIPPED on the real stderr) where namespaces cannot be made.
    fn create() -> Option<Self> {
        use std::io::Write;
        static COUNT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = COUNT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        // A `netns::name`: such namespaces are removed when their test process is gone
        // (killed before its cleanup ran).
        let ns = Self(netns::name(&format!("deploy{n}")));
        let made = Command::new("ip").args(["netns", "add", &ns.0]).output();
        match made {
            Ok(out) if out.status.success() => {}
            other => {
                let why = match other {
                    Ok(out) => String::from_utf8_lossy(&out.stderr).trim().to_owned(),
                    Err(e) => format!("cannot run `ip` (iproute2): {e}"),
                };
                std::mem::forget(ns); // nothing to clean up
                let not_allowed = ["Operation not permitted", "Permission denied", "cannot run"];
                assert!(
                    not_allowed.iter().any(|s| why.contains(s)),
                    "could not create a network namespace: {why}"
                );
                assert!(
                    std::env::var_os("CROMULENT_REQUIRE_NETNS").is_none(),
                    "network namespaces required (CROMULENT_REQUIRE_NETNS) but: {why}"
                );
                let _ = writeln!(
                    std::io::stderr(),
                    "SKIPPED: the_shipped_config_grants_public_peers: cannot create a network \
                     namespace ({why}). This test needs root (CI runs it as root)."
                );
                return None;
            }
        }
        let lo = Command::new("ip")
            .args(["-n", &ns.0, "link", "set", "lo", "up"])
            .status()
            .expect("run ip");
        assert!(lo.success(), "bring up loopback in {}", ns.0);
        Some(ns)
    }
}

impl Drop for IsolatedNetns {
    fn drop(&mut self) {
        netns::delete(&self.0);
    }
}
