//! One port, two faces (issue 17): plain HTTP on the signaling port serves the embedded web
//! client, with its types and security headers, several requests per connection; bad requests
//! get a clear status and a closed connection; WebSocket upgrades on the same port (also after
//! plain requests on one connection) still reach the signaling protocol. Real TCP against the
//! real server.

use std::time::Duration;

use cromulent_server::config::Config;
use cromulent_server::web::ASSETS;
use cromulent_test_support::ws::{Client, TestServer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const WAIT: Duration = Duration::from_secs(5);

/// One response read off `stream`: status, lower-cased head, body (by `Content-Length`).
async fn read_response(stream: &mut TcpStream, pending: &mut Vec<u8>) -> (u16, String, Vec<u8>) {
    let read = async {
        loop {
            if let Some(end) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&pending[..end]).to_ascii_lowercase();
                let length: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length: "))
                    .map_or(0, |v| v.trim().parse().unwrap());
                let status = head[9..12].parse().unwrap();
                let body_len = if status == 304 { 0 } else { length };
                while pending.len() < end + 4 + body_len {
                    let mut chunk = [0u8; 4096];
                    let n = stream.read(&mut chunk).await.unwrap();
                    assert!(n > 0, "connection closed inside a body");
                    pending.extend_from_slice(&chunk[..n]);
                }
                let body = pending[end + 4..end + 4 + body_len].to_vec();
                pending.drain(..end + 4 + body_len);
                return (status, head, body);
            }
            let mut chunk = [0u8; 4096];
            let n = stream.read(&mut chunk).await.unwrap();
            assert!(n > 0, "connection closed before a response");
            pending.extend_from_slice(&chunk[..n]);
        }
    };
    tokio::time::timeout(WAIT, read)
        .await
        .expect("a response in time")
}

async fn closed(stream: &mut TcpStream) -> bool {
    let mut byte = [0u8; 1];
    matches!(
        tokio::time::timeout(WAIT, stream.read(&mut byte)).await,
        Ok(Ok(0)) | Ok(Err(_))
    )
}

fn get(path: &str, host: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: test\r\n\r\n")
}

#[tokio::test]
async fn the_page_and_its_files_are_served_on_the_signaling_port_over_one_connection() {
    let server = TestServer::default().await;
    let host = server.addr.to_string();
    let mut tcp = TcpStream::connect(server.addr).await.unwrap();
    let mut pending = Vec::new();

    tcp.write_all(get("/", &host).as_bytes()).await.unwrap();
    let (status, head, body) = read_response(&mut tcp, &mut pending).await;
    assert_eq!(status, 200, "{head}");
    assert!(
        head.contains("content-type: text/html; charset=utf-8"),
        "{head}"
    );
    assert!(head.contains("content-security-policy: default-src 'none'; script-src 'self';"));
    assert!(head.contains("x-content-type-options: nosniff"));
    assert!(head.contains("referrer-policy: no-referrer"));
    assert!(head.contains("connection: keep-alive"));
    assert_eq!(
        body,
        ASSETS
            .iter()
            .find(|a| a.path == "/index.html")
            .unwrap()
            .body
    );

    // Every other file on the same connection, two of them pipelined in one write.
    let requests: String = ASSETS.iter().map(|a| get(a.path, &host)).collect();
    tcp.write_all(requests.as_bytes()).await.unwrap();
    for asset in ASSETS {
        let (status, head, body) = read_response(&mut tcp, &mut pending).await;
        assert_eq!(status, 200, "{}: {head}", asset.path);
        assert!(head.contains(&format!("content-type: {}", asset.content_type)));
        assert_eq!(body, asset.body, "{}", asset.path);
    }

    // A revalidation costs a 304 without a body.
    let etag = head_value(
        &head_of(&mut tcp, &mut pending, &get("/js/main.js", &host)).await,
        "etag",
    );
    let conditional = format!(
        "GET /js/main.js HTTP/1.1\r\nHost: {host}\r\nIf-None-Match: {etag}\r\nConnection: close\r\n\r\n"
    );
    tcp.write_all(conditional.as_bytes()).await.unwrap();
    let (status, head, body) = read_response(&mut tcp, &mut pending).await;
    assert_eq!((status, body.len()), (304, 0), "{head}");
    assert!(head.contains("connection: close"));
    assert!(closed(&mut tcp).await, "closed after Connection: close");
    server.stop().await;
}

async fn head_of(tcp: &mut TcpStream, pending: &mut Vec<u8>, request: &str) -> String {
    tcp.write_all(request.as_bytes()).await.unwrap();
    read_response(tcp, pending).await.1
}

fn head_value(head: &str, name: &str) -> String {
    head.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}: ")))
        .unwrap()
        .trim()
        .to_owned()
}

#[tokio::test]
async fn bad_requests_get_a_status_and_a_closed_connection() {
    let server = TestServer::default().await;
    let cases: [(&[u8], u16); 5] = [
        (b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nno colon here\r\n\r\n", 400),
        (
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc",
            413,
        ),
        (
            b"DELETE / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            405,
        ),
        (
            b"GET /../../etc/passwd HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            404,
        ),
    ];
    for (request, expected) in cases {
        let mut tcp = TcpStream::connect(server.addr).await.unwrap();
        tcp.write_all(request).await.unwrap();
        let (status, head, _) = read_response(&mut tcp, &mut Vec::new()).await;
        assert_eq!(
            status,
            expected,
            "{}: {head}",
            String::from_utf8_lossy(request)
        );
        assert!(closed(&mut tcp).await, "{expected}: connection closed");
    }
    // A head that never ends is refused at its size limit.
    let mut tcp = TcpStream::connect(server.addr).await.unwrap();
    let mut huge = b"GET / HTTP/1.1\r\n".to_vec();
    huge.extend(std::iter::repeat_n(b'a', 9000));
    tcp.write_all(&huge).await.unwrap();
    let (status, _, _) = read_response(&mut tcp, &mut Vec::new()).await;
    assert_eq!(status, 431);
    // The server is unharmed: signaling works.
    let _alice = Client::connect(&server.url(), "alice").await;
    server.stop().await;
}

#[tokio::test]
async fn a_request_that_does_not_finish_in_time_is_answered_408_and_closed() {
    let mut config = Config::default();
    config.heartbeat.hello_timeout_ms = 300;
    let server = TestServer::start(config).await;
    let mut tcp = TcpStream::connect(server.addr).await.unwrap();
    tcp.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let (status, _, _) = read_response(&mut tcp, &mut Vec::new()).await;
    assert_eq!(status, 408);
    assert!(closed(&mut tcp).await);
    // An idle keep-alive connection is closed after the same time, without a reply.
    let mut idle = TcpStream::connect(server.addr).await.unwrap();
    idle.write_all(get("/style.css", "x").as_bytes())
        .await
        .unwrap();
    let (status, _, _) = read_response(&mut idle, &mut Vec::new()).await;
    assert_eq!(status, 200);
    assert!(closed(&mut idle).await, "idle keep-alive closed");
    server.stop().await;
}

#[tokio::test]
async fn a_websocket_upgrade_after_plain_requests_on_one_connection_reaches_signaling() {
    let server = TestServer::default().await;
    let mut tcp = TcpStream::connect(server.addr).await.unwrap();
    let mut pending = Vec::new();
    let head = head_of(&mut tcp, &mut pending, &get("/", &server.addr.to_string())).await;
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(pending.is_empty());
    let alice = Client::raw_over(&server.url(), tcp)
        .await
        .hello("alice")
        .await;
    drop(alice);
    server.stop().await;
}
