//! The web client's face of the server: its files, embedded in the binary at build time from
//! `server/web/` (plain HTML, CSS and JavaScript modules: no build step, no CDN, nothing
//! fetched at run time), and the answer to each plain HTTP request. [`crate::front_door`] reads
//! requests off the socket and writes these answers back; WebSocket upgrades never come here.
//!
//! Pure: a parsed request head in, a response out. Must never put a byte of the request into a
//! response header unchecked (the `Host` reaches the CSP only when it is a plain host name or
//! address), and must never serve anything but the embedded files.

use std::fmt::Write as _;

/// One embedded file.
pub struct Asset {
    /// The URL path it is served at.
    pub path: &'static str,
    pub content_type: &'static str,
    pub body: &'static [u8],
}

macro_rules! asset {
    ($path:literal, $type:expr) => {
        Asset {
            path: $path,
            content_type: $type,
            body: include_bytes!(concat!("../web", $path)),
        }
    };
}

const HTML: &str = "text/html; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const SVG: &str = "image/svg+xml";

/// Every file of the web client (a test checks this list against `server/web/`).
pub const ASSETS: &[Asset] = &[
    asset!("/index.html", HTML),
    asset!("/style.css", CSS),
    asset!("/favicon.svg", SVG),
    asset!("/js/main.js", JS),
    asset!("/js/signaling.js", JS),
    asset!("/js/room.js", JS),
    asset!("/js/bar.js", JS),
    asset!("/js/talk.js", JS),
    asset!("/js/view.js", JS),
    asset!("/js/chat.js", JS),
    asset!("/js/rejoin.js", JS),
];

/// What [`respond`] needs of a request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Request<'a> {
    pub method: &'a str,
    /// The request target as sent (query string included).
    pub target: &'a str,
    pub host: Option<&'a str>,
    pub if_none_match: Option<&'a str>,
}

/// An HTTP response: status, headers and body (empty for `HEAD` and `304`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: &'static [u8],
    /// The announced length: the body's, or for `HEAD` the one a `GET` would get.
    pub content_length: usize,
}

impl Response {
    /// The status line and headers, with `Content-Length` (none on a `304`) and `Connection`.
    pub fn head(&self, keep_alive: bool) -> String {
        let mut out = format!("HTTP/1.1 {} {}\r\n", self.status, reason(self.status));
        for (name, value) in &self.headers {
            let _ = write!(out, "{name}: {value}\r\n");
        }
        if self.status != 304 {
            let _ = write!(out, "Content-Length: {}\r\n", self.content_length);
        }
        let connection = if keep_alive { "keep-alive" } else { "close" };
        let _ = write!(out, "Connection: {connection}\r\n\r\n");
        out
    }
}

/// The answer to one plain HTTP request.
pub fn respond(req: &Request<'_>) -> Response {
    let head_only = match req.method {
        "GET" => false,
        "HEAD" => true,
        _ => {
            let mut r = plain(405, b"only GET and HEAD are served here\n");
            r.headers.push(("Allow", "GET, HEAD".to_owned()));
            return r;
        }
    };
    let path = req.target.split(['?', '#']).next().unwrap_or("");
    let path = if path == "/" { "/index.html" } else { path };
    let Some(asset) = ASSETS.iter().find(|a| a.path == path) else {
        return plain(404, b"not found\n");
    };
    let etag = etag(asset.body);
    let mut headers = security_headers(req.host);
    headers.push(("Content-Type", asset.content_type.to_owned()));
    // Names are not fingerprinted, so every use revalidates; an unchanged file costs a 304.
    headers.push(("Cache-Control", "no-cache".to_owned()));
    headers.push(("ETag", etag.clone()));
    if req
        .if_none_match
        .is_some_and(|tags| tags.split(',').any(|t| t.trim() == etag || t.trim() == "*"))
    {
        return Response {
            status: 304,
            headers,
            body: b"",
            content_length: 0,
        };
    }
    Response {
        status: 200,
        headers,
        body: if head_only { b"" } else { asset.body },
        content_length: asset.body.len(),
    }
}

/// A short plain-text answer (errors), with the same security headers.
pub fn plain(status: u16, body: &'static [u8]) -> Response {
    let mut headers = security_headers(None);
    headers.push(("Content-Type", "text/plain; charset=utf-8".to_owned()));
    headers.push(("Cache-Control", "no-store".to_owned()));
    Response {
        status,
        headers,
        body,
        content_length: body.len(),
    }
}

/// Headers on every answer. The CSP allows the page's own files and its own WebSocket only:
/// no inline script or style, no other origin, no framing.
fn security_headers(host: Option<&str>) -> Vec<(&'static str, String)> {
    // `'self'` covers ws:/wss: to the same host in CSP 3; the explicit sources are for
    // browsers that predate it, and only for a Host that is a plain name or address.
    let sockets = match host.filter(|h| safe_host(h)) {
        Some(h) => format!(" ws://{h} wss://{h}"),
        None => String::new(),
    };
    vec![
        (
            "Content-Security-Policy",
            format!(
                "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                 media-src 'self' blob: mediastream:; connect-src 'self'{sockets}; \
                 base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
            ),
        ),
        ("X-Content-Type-Options", "nosniff".to_owned()),
        ("Referrer-Policy", "no-referrer".to_owned()),
        ("X-Frame-Options", "DENY".to_owned()),
        ("Cross-Origin-Opener-Policy", "same-origin".to_owned()),
        ("Cross-Origin-Resource-Policy", "same-origin".to_owned()),
        (
            "Permissions-Policy",
            "microphone=(self), camera=(), geolocation=()".to_owned(),
        ),
    ]
}

/// A `Host` value that can go into a header as is: a name or address and an optional port.
fn safe_host(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 255
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-.:[]".contains(c))
}

/// A strong validator: FNV-1a of the contents (a cache key, not a security boundary).
fn etag(body: &[u8]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in body {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("\"{h:016x}\"")
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        304 => "Not Modified",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        413 => "Content Too Large",
        431 => "Request Header Fields Too Large",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(target: &str) -> Response {
        respond(&Request {
            method: "GET",
            target,
            host: Some("127.0.0.1:4000"),
            if_none_match: None,
        })
    }

    fn header<'a>(r: &'a Response, name: &str) -> Option<&'a str> {
        r.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn the_root_is_the_page_with_its_type_and_security_headers() {
        let r = get("/");
        assert_eq!(r.status, 200);
        assert_eq!(header(&r, "content-type"), Some(HTML));
        assert!(std::str::from_utf8(r.body).unwrap().contains("<html"));
        let csp = header(&r, "content-security-policy").unwrap();
        assert!(csp.contains("script-src 'self';"), "{csp}");
        assert!(!csp.contains("unsafe-inline"), "{csp}");
        assert!(
            csp.contains("ws://127.0.0.1:4000 wss://127.0.0.1:4000"),
            "{csp}"
        );
        assert_eq!(header(&r, "x-content-type-options"), Some("nosniff"));
        assert_eq!(header(&r, "referrer-policy"), Some("no-referrer"));
    }

    #[test]
    fn every_file_is_served_at_its_path_with_its_type_and_a_query_is_ignored() {
        for a in ASSETS {
            let r = get(&format!("{}?v=1", a.path));
            assert_eq!(r.status, 200, "{}", a.path);
            assert_eq!(header(&r, "content-type"), Some(a.content_type));
            assert_eq!(r.body, a.body);
        }
        assert_eq!(header(&get("/js/main.js"), "content-type"), Some(JS));
    }

    #[test]
    fn unknown_paths_and_traversal_are_not_found() {
        for target in [
            "/nope",
            "/../Cargo.toml",
            "/js/",
            "//index.html",
            "index.html",
            "",
        ] {
            assert_eq!(get(target).status, 404, "{target}");
        }
    }

    #[test]
    fn other_methods_are_refused_with_allow() {
        let r = respond(&Request {
            method: "POST",
            target: "/",
            ..Request::default()
        });
        assert_eq!(r.status, 405);
        assert_eq!(header(&r, "allow"), Some("GET, HEAD"));
    }

    #[test]
    fn head_has_no_body_and_a_matching_etag_is_not_modified() {
        let full = get("/style.css");
        let tag = header(&full, "etag").unwrap().to_owned();
        let head = respond(&Request {
            method: "HEAD",
            target: "/style.css",
            ..Request::default()
        });
        assert_eq!((head.status, head.body.len()), (200, 0));
        assert_eq!(head.content_length, full.body.len());
        assert!(
            head.head(true)
                .contains(&format!("Content-Length: {}\r\n", full.body.len()))
        );
        let again = respond(&Request {
            method: "GET",
            target: "/style.css",
            host: None,
            if_none_match: Some(&format!("\"other\", {tag}")),
        });
        assert_eq!((again.status, again.body.len()), (304, 0));
    }

    #[test]
    fn a_host_that_is_not_a_plain_name_stays_out_of_the_csp() {
        let r = respond(&Request {
            method: "GET",
            target: "/",
            host: Some("evil.example\r\nSet-Cookie: x=1"),
            if_none_match: None,
        });
        let csp = header(&r, "content-security-policy").unwrap();
        assert!(!csp.contains("evil"), "{csp}");
        assert!(csp.contains("connect-src 'self';"), "{csp}");
    }

    #[test]
    fn the_embedded_list_is_exactly_the_files_in_server_web() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("web");
        let mut on_disk = Vec::new();
        let mut dirs = vec![root.clone()];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    dirs.push(path);
                } else {
                    let rel = path.strip_prefix(&root).unwrap().to_str().unwrap();
                    on_disk.push(format!("/{rel}"));
                }
            }
        }
        on_disk.sort();
        let mut listed: Vec<String> = ASSETS.iter().map(|a| a.path.to_owned()).collect();
        listed.sort();
        assert_eq!(listed, on_disk);
    }

    #[test]
    fn the_page_weighs_at_most_100_kb_and_names_no_other_origin() {
        let total: usize = ASSETS.iter().map(|a| a.body.len()).sum();
        assert!(total <= 100 * 1024, "{total} bytes");
        for a in ASSETS {
            let text = String::from_utf8_lossy(a.body);
            for scheme in ["http://", "https://"] {
                // The SVG's XML namespace is a name, not a request.
                let hits = text
                    .matches(scheme)
                    .count()
                    .saturating_sub(text.matches("http://www.w3.org/2000/svg").count());
                assert_eq!(hits, 0, "{} names another origin", a.path);
            }
        }
    }
}
