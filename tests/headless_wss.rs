//! `wss://`: the client reaches the server through a TLS-terminating proxy (how operators
//! deploy it), trusting the proxy's certificate through the standard `SSL_CERT_FILE`, or
//! `--ca-file`.

mod support;

use std::sync::Arc;
use std::time::Duration;

use support::{Client, LONG, Server, TempDir};
use tokio_rustls::rustls;

/// A TLS proxy for `localhost` on a free port, forwarding to `backend`; runs until dropped.
struct TlsProxy {
    port: u16,
    _runtime: tokio::runtime::Runtime,
}

impl TlsProxy {
    fn start(backend: std::net::SocketAddr, cert_pem_out: &std::path::Path) -> Self {
        let key = rcgen::KeyPair::generate().unwrap();
        let params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
        let cert = params.self_signed(&key).unwrap();
        std::fs::write(cert_pem_out, cert.pem()).unwrap();
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        )
        .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let port = listener.local_addr().unwrap().port();
        runtime.spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(stream).await else {
                        return;
                    };
                    let Ok(mut plain) = tokio::net::TcpStream::connect(backend).await else {
                        return;
                    };
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
                });
            }
        });
        Self {
            port,
            _runtime: runtime,
        }
    }
}

#[test]
fn the_client_connects_over_wss() {
    let server = Server::start();
    let dir = TempDir::new("wss");
    let cert = dir.path("cert.pem");
    let proxy = TlsProxy::start(server.addr, &cert);
    let url = format!("wss://localhost:{}", proxy.port);

    let mut c = support::Client::start_env(
        &url,
        "alice",
        &["--join", "General", "--for", "2"],
        &[("SSL_CERT_FILE", cert.to_str().unwrap())],
    );
    c.wait_state("connected", LONG);
    assert!(c.wait_exit(LONG).success(), "{}", c.stderr());

    // Without trusting the certificate, the connection is refused with a reason.
    let mut untrusting = Client::start_env(
        &url,
        "bob",
        &["--join", "General", "--for", "2"],
        &[("SSL_CERT_FILE", dir.path("nothing.pem").to_str().unwrap())],
    );
    let err = untrusting.wait_for("TLS failure", LONG, |e| {
        e.kind() == "error" && e.str("reason") == "signaling_lost"
    });
    assert!(!err.str("message").is_empty());
    let _ = untrusting.wait_exit(Duration::from_secs(10));

    // A private CA named on the command line instead.
    let ca = cert.to_str().unwrap();
    let mut named = Client::start(
        &url,
        "carol",
        &["--join", "General", "--for", "2", "--ca-file", ca],
    );
    named.wait_state("connected", LONG);
    assert!(named.wait_exit(LONG).success(), "{}", named.stderr());

    // A CA file that is not one: refused at once, saying which file and why.
    let bad = dir.path("bad.pem");
    std::fs::write(&bad, "not a certificate\n").unwrap();
    let mut refused = Client::start(&url, "dave", &["--ca-file", bad.to_str().unwrap()]);
    let status = refused.wait_exit(LONG);
    assert_eq!(status.code(), Some(2), "usage error: {}", refused.stderr());
    assert!(
        refused.stderr().contains("bad.pem") && refused.stderr().contains("no certificate"),
        "{}",
        refused.stderr()
    );
}
