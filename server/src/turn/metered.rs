//! ICE servers from Metered's HTTP API: `GET <api_url>?apiKey=<key>` answers a JSON array of
//! `{ "urls": "..." | ["..."], "username"?: "...", "credential"?: "..." }`.
//!
//! The answer comes from another party: it is size-capped, time-limited, and checked entry by
//! entry (malformed entries are skipped, never trusted). The API key is never logged: errors
//! are stripped of the request URL. Parsing ([`parse_servers`]) is pure and unit-tested here;
//! the HTTP path is tested against a local server in `tests/turn_metered.rs`.

use std::time::Duration;

use cromulent_protocol::IceServer;
use reqwest::{StatusCode, Url};
use serde::Deserialize;

/// Metered's answer is a handful of entries (well under 2 KiB); anything past this is not it.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// URL schemes a WebRTC ICE server may have (RFC 7064, RFC 7065).
const ICE_SCHEMES: [&str; 4] = ["stun", "stuns", "turn", "turns"];

/// Why Metered gave no usable ICE servers; the join then gets STUN only.
#[derive(Debug, thiserror::Error)]
pub enum MeteredError {
    #[error("turn.api_url is not a usable http(s) URL: {0}")]
    BadUrl(String),
    #[error("cannot set up the HTTP client: {0}")]
    Client(reqwest::Error),
    #[error("request failed: {0}")]
    Request(reqwest::Error),
    #[error("no complete answer within {0:?}")]
    Timeout(Duration),
    #[error("answered HTTP {0}")]
    Status(StatusCode),
    #[error("answer is larger than {MAX_BODY_BYTES} bytes")]
    TooLarge,
    #[error("answer is not JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("answer is not a JSON array")]
    NotArray,
    #[error("answer holds no usable ICE server")]
    Empty,
}

/// A configured Metered endpoint. Built once; its HTTP client reuses connections.
#[derive(Debug, Clone)]
pub struct MeteredClient {
    http: reqwest::Client,
    /// `api_url` with `apiKey` appended: a secret, never logged.
    url: Url,
    /// Bound on the whole exchange: connect, request, headers and body.
    timeout: Duration,
}

impl MeteredClient {
    pub fn new(api_url: &str, api_key: &str, timeout: Duration) -> Result<Self, MeteredError> {
        let url = request_url(api_url, api_key)?;
        let http = reqwest::Client::builder()
            .user_agent(concat!("cromulent-server/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(timeout)
            .build()
            .map_err(|e| MeteredError::Client(e.without_url()))?;
        Ok(Self { http, url, timeout })
    }

    /// One request to Metered, normalised; errors for anything but a usable answer.
    pub async fn fetch(&self) -> Result<Vec<IceServer>, MeteredError> {
        let body = tokio::time::timeout(self.timeout, self.fetch_body())
            .await
            .map_err(|_| MeteredError::Timeout(self.timeout))??;
        parse_servers(&body)
    }

    async fn fetch_body(&self) -> Result<Vec<u8>, MeteredError> {
        let response = self
            .http
            .get(self.url.clone())
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(request_error)?;
        if !response.status().is_success() {
            return Err(MeteredError::Status(response.status()));
        }
        read_capped(response).await
    }
}

/// `api_url` with the `apiKey` query parameter added (form-encoded, after any query it has).
pub fn request_url(api_url: &str, api_key: &str) -> Result<Url, MeteredError> {
    let mut url = Url::parse(api_url.trim()).map_err(|e| MeteredError::BadUrl(e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(MeteredError::BadUrl(format!(
            "scheme {:?} is not http or https",
            url.scheme()
        )));
    }
    url.query_pairs_mut().append_pair("apiKey", api_key);
    Ok(url)
}

/// Reqwest errors name the URL, which holds the API key: drop it.
fn request_error(e: reqwest::Error) -> MeteredError {
    MeteredError::Request(e.without_url())
}

async fn read_capped(mut response: reqwest::Response) -> Result<Vec<u8>, MeteredError> {
    if response
        .content_length()
        .is_some_and(|n| n > MAX_BODY_BYTES as u64)
    {
        return Err(MeteredError::TooLarge);
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(request_error)? {
        if body.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(MeteredError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// One entry as Metered sends it; unknown fields are ignored (they may add some).
#[derive(Deserialize)]
struct Entry {
    urls: Urls,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    credential: Option<String>,
}

/// WebRTC's `RTCIceServer.urls` is a string or a list of strings.
#[derive(Deserialize)]
#[serde(untagged)]
enum Urls {
    One(String),
    Many(Vec<String>),
}

/// Metered's answer as ICE servers, `urls` always a list. Entries that are not usable are
/// skipped with a warning; an answer with none left is an error.
pub fn parse_servers(body: &[u8]) -> Result<Vec<IceServer>, MeteredError> {
    let answer: serde_json::Value = serde_json::from_slice(body)?;
    let entries = answer.as_array().ok_or(MeteredError::NotArray)?;
    let servers: Vec<IceServer> = entries
        .iter()
        .enumerate()
        .filter_map(|(index, entry)| match parse_entry(entry) {
            Ok(server) => Some(server),
            Err(why) => {
                tracing::warn!(index, why, "skipping malformed entry in Metered's answer");
                None
            }
        })
        .collect();
    if servers.is_empty() {
        Err(MeteredError::Empty)
    } else {
        Ok(servers)
    }
}

/// One entry, or why it is unusable.
fn parse_entry(value: &serde_json::Value) -> Result<IceServer, &'static str> {
    let entry = Entry::deserialize(value)
        .map_err(|_| "not an object with string `urls` and optional string credentials")?;
    let urls: Vec<String> = match entry.urls {
        Urls::One(url) => vec![url],
        Urls::Many(urls) => urls,
    }
    .into_iter()
    .filter(|url| is_ice_url(url))
    .collect();
    if urls.is_empty() {
        return Err("no stun:/stuns:/turn:/turns: URL");
    }
    let has_credentials = entry.username.is_some() && entry.credential.is_some();
    if urls.iter().any(|url| is_turn_url(url)) && !has_credentials {
        return Err("TURN URL without username and credential");
    }
    Ok(IceServer {
        urls,
        username: entry.username,
        credential: entry.credential,
    })
}

/// The scheme of a `scheme:rest` URL with a non-empty rest.
fn scheme(url: &str) -> Option<&str> {
    url.split_once(':')
        .filter(|(_, rest)| !rest.trim().is_empty())
        .map(|(scheme, _)| scheme)
}

fn is_ice_url(url: &str) -> bool {
    scheme(url).is_some_and(|s| ICE_SCHEMES.iter().any(|ice| s.eq_ignore_ascii_case(ice)))
}

fn is_turn_url(url: &str) -> bool {
    scheme(url).is_some_and(|s| s.eq_ignore_ascii_case("turn") || s.eq_ignore_ascii_case("turns"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(urls: &[&str], creds: Option<(&str, &str)>) -> IceServer {
        IceServer {
            urls: urls.iter().map(|u| u.to_string()).collect(),
            username: creds.map(|c| c.0.to_owned()),
            credential: creds.map(|c| c.1.to_owned()),
        }
    }

    #[test]
    fn metered_answer_is_normalised_to_url_lists() {
        let body = br#"[
            {"urls": "stun:stun.relay.metered.ca:80"},
            {"urls": "turn:global.relay.metered.ca:80", "username": "u", "credential": "p"},
            {"urls": ["turn:global.relay.metered.ca:443?transport=tcp",
                      "turns:global.relay.metered.ca:443?transport=tcp"],
             "username": "u", "credential": "p", "extra": 1}
        ]"#;
        let servers = parse_servers(body).unwrap();
        assert_eq!(
            servers,
            [
                server(&["stun:stun.relay.metered.ca:80"], None),
                server(&["turn:global.relay.metered.ca:80"], Some(("u", "p"))),
                server(
                    &[
                        "turn:global.relay.metered.ca:443?transport=tcp",
                        "turns:global.relay.metered.ca:443?transport=tcp"
                    ],
                    Some(("u", "p"))
                ),
            ]
        );
    }

    #[test]
    fn malformed_entries_are_skipped_and_good_ones_kept() {
        let body = br#"[
            42, "turn:x", null, {}, {"urls": 7}, {"urls": []}, {"urls": [1, 2]},
            {"urls": "http://example.com/"}, {"urls": "turn:"},
            {"urls": "turn:t.example:80"},
            {"urls": "turn:t.example:80", "username": "u"},
            {"urls": "turn:t.example:80", "username": 5, "credential": "p"},
            {"urls": ["ftp://nope", "stun:s.example:3478"]},
            {"urls": "TURN:T.example:80", "username": "u", "credential": "p"}
        ]"#;
        let servers = parse_servers(body).unwrap();
        assert_eq!(
            servers,
            [
                server(&["stun:s.example:3478"], None),
                server(&["TURN:T.example:80"], Some(("u", "p"))),
            ]
        );
    }

    #[test]
    fn unusable_answers_are_errors() {
        assert!(matches!(parse_servers(b"[]"), Err(MeteredError::Empty)));
        assert!(matches!(
            parse_servers(br#"[{"urls": "turn:x:1"}]"#),
            Err(MeteredError::Empty)
        ));
        assert!(matches!(
            parse_servers(br#"{"error": "Invalid API Key"}"#),
            Err(MeteredError::NotArray)
        ));
        assert!(matches!(
            parse_servers(b"<html>"),
            Err(MeteredError::Json(_))
        ));
        assert!(matches!(parse_servers(b""), Err(MeteredError::Json(_))));
        assert!(matches!(
            parse_servers(&[0xff, 0xfe, b'[']),
            Err(MeteredError::Json(_))
        ));
    }

    #[test]
    fn api_key_is_appended_form_encoded() {
        let url = request_url(
            "https://demo.metered.live/api/v1/turn/credentials",
            "k3y+/=&x y",
        )
        .unwrap();
        assert_eq!(
            url.as_str(),
            "https://demo.metered.live/api/v1/turn/credentials?apiKey=k3y%2B%2F%3D%26x+y"
        );
        let url = request_url("http://127.0.0.1:9/creds?region=europe", "k").unwrap();
        assert_eq!(
            url.as_str(),
            "http://127.0.0.1:9/creds?region=europe&apiKey=k"
        );
    }

    #[test]
    fn unusable_api_urls_are_refused() {
        for bad in ["", "not a url", "ftp://example.com/x", "file:///etc/passwd"] {
            assert!(
                matches!(request_url(bad, "k"), Err(MeteredError::BadUrl(_))),
                "{bad:?}"
            );
        }
    }
}
