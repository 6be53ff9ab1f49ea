//! Time-limited TURN credentials for coturn's `use-auth-secret` scheme (the "TURN REST API"):
//! username `"<unix_expiry>:<user_id>"`, password `base64(HMAC-SHA1(secret, username))`.
//!
//! The user id is percent-encoded in the username (RFC 3986 unreserved characters kept, every
//! other byte `%XX`): coturn 4.6.1 answers `400 Bad Request` to usernames containing a space,
//! a quote, a backslash or a control character (checked with real allocations), and display
//! names have spaces. Plain ids (`alice`, `bob-2`) are unchanged, and the encoding is
//! one-to-one, so coturn's logs still tell users apart.
//!
//! Pure functions of their arguments, the current time included, so the scheme is tested
//! without a clock and checked against the real coturn in `tests/turn_coturn.rs`. This module
//! never reads the clock and never does I/O.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use cromulent_protocol::IceServer;
use hmac::{Hmac, Mac};
use sha1::Sha1;

use crate::config::TurnConfig;

/// STUN's USERNAME attribute must be under 513 bytes (RFC 8489 §14.3); coturn refuses longer.
pub const MAX_USERNAME_BYTES: usize = 512;

/// Why no coturn credentials could be made; the join then gets STUN only.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CoturnError {
    #[error("turn.secret (TURN_SECRET) is empty")]
    NoSecret,
    #[error("turn.urls (TURN_URLS) is empty")]
    NoUrls,
    #[error("turn.ttl_secs is 0: the credentials would be expired when handed out")]
    ZeroTtl,
    #[error("the TURN username would be {0} bytes, more than STUN allows ({MAX_USERNAME_BYTES})")]
    UsernameTooLong(usize),
}

/// One set of credentials, valid until `expires_at`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TurnCredentials {
    /// `"<expires_at>:<user, percent-encoded>"`: coturn reads the expiry before the `:`.
    pub username: String,
    /// `base64(HMAC-SHA1(secret, username))`.
    pub credential: String,
    /// Unix time (seconds) after which coturn refuses the credentials.
    pub expires_at: u64,
}

/// Credentials for `user`, made at `now_unix` and valid for `ttl_secs`.
pub fn credentials(secret: &str, user: &str, ttl_secs: u64, now_unix: u64) -> TurnCredentials {
    let expires_at = now_unix.saturating_add(ttl_secs);
    let username = format!("{expires_at}:{}", username_user_part(user));
    let credential = hmac_sha1_base64(secret.as_bytes(), username.as_bytes());
    TurnCredentials {
        username,
        credential,
        expires_at,
    }
}

/// The ICE server (all of `config.urls`, one credential) for `user` at `now_unix`.
pub fn ice_server(
    config: &TurnConfig,
    user: &str,
    now_unix: u64,
) -> Result<(IceServer, TurnCredentials), CoturnError> {
    check(config)?;
    let creds = credentials(&config.secret, user, config.ttl_secs, now_unix);
    if creds.username.len() > MAX_USERNAME_BYTES {
        return Err(CoturnError::UsernameTooLong(creds.username.len()));
    }
    let server = IceServer {
        urls: config.urls.clone(),
        username: Some(creds.username.clone()),
        credential: Some(creds.credential.clone()),
    };
    Ok((server, creds))
}

/// What `Config::validate` also checks, repeated here because a provider must not hand out
/// credentials that cannot work, whatever config it was built from.
fn check(config: &TurnConfig) -> Result<(), CoturnError> {
    if config.secret.is_empty() {
        Err(CoturnError::NoSecret)
    } else if config.urls.is_empty() {
        Err(CoturnError::NoUrls)
    } else if config.ttl_secs == 0 {
        Err(CoturnError::ZeroTtl)
    } else {
        Ok(())
    }
}

/// `user` with every byte outside RFC 3986's unreserved set (`A-Z a-z 0-9 - . _ ~`) written
/// as `%XX`: ASCII, no `:`, nothing coturn refuses.
pub fn username_user_part(user: &str) -> String {
    let mut out = String::with_capacity(user.len());
    for byte in user.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

fn hmac_sha1_base64(key: &[u8], message: &[u8]) -> String {
    // Invariant: HMAC takes keys of any length (long keys are hashed, short ones padded), so
    // `new_from_slice` cannot fail.
    let mut mac = Hmac::<Sha1>::new_from_slice(key).expect("HMAC accepts keys of any length");
    mac.update(message);
    BASE64.encode(mac.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::TurnProvider;

    const SECRET: &str = "cromulent-test-secret";
    const NOW: u64 = 1_700_000_000;

    fn config() -> TurnConfig {
        TurnConfig {
            provider: TurnProvider::Coturn,
            secret: SECRET.into(),
            urls: vec!["turn:a.example:3478".into(), "turn:b.example:3478".into()],
            ..TurnConfig::default()
        }
    }

    /// Expected values computed once, independently, with
    /// `printf %s "$USERNAME" | openssl dgst -sha1 -hmac cromulent-test-secret -binary | base64`.
    #[test]
    fn credentials_match_openssl() {
        let c = credentials(SECRET, "alice", 3600, NOW);
        assert_eq!(c.username, "1700003600:alice");
        assert_eq!(c.credential, "PUm7OrZqyn/cBArpRkmZ3z4HueI=");
        assert_eq!(c.expires_at, 1_700_003_600);

        let c = credentials(SECRET, "bob:ünïcode 'x'", 60, NOW);
        assert_eq!(c.username, "1700000060:bob%3A%C3%BCn%C3%AFcode%20%27x%27");
        assert_eq!(c.credential, "0dpkSxi+uIs63yUHWnNgYZHmAIc=");
    }

    #[test]
    fn user_part_keeps_unreserved_and_encodes_the_rest() {
        assert_eq!(username_user_part("Alice-2.b_c~"), "Alice-2.b_c~");
        assert_eq!(username_user_part(""), "");
        assert_eq!(
            username_user_part("a b:c%\"\\\t/é"),
            "a%20b%3Ac%25%22%5C%09%2F%C3%A9"
        );
        // One-to-one: a literal "%20" does not collide with a space.
        assert_ne!(username_user_part("a%20"), username_user_part("a "));
    }

    /// Same check against `openssl` run now, when it is installed (the constants above are
    /// the check that always runs).
    #[test]
    fn credentials_match_openssl_at_test_time() {
        let username = "1700003600:carol";
        let Some(expected) = openssl_hmac_sha1_base64(SECRET, username) else {
            eprintln!("openssl not available; covered by credentials_match_openssl");
            return;
        };
        assert_eq!(credentials(SECRET, "carol", 3600, NOW).credential, expected);
    }

    fn openssl_hmac_sha1_base64(secret: &str, message: &str) -> Option<String> {
        use std::io::Write;
        use std::process::{Command, Stdio};
        let script = format!("openssl dgst -sha1 -hmac '{secret}' -binary | base64");
        let mut child = Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        child.stdin.take()?.write_all(message.as_bytes()).ok()?;
        let out = child.wait_with_output().ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }

    #[test]
    fn secret_and_expiry_change_the_credential() {
        let base = credentials(SECRET, "alice", 3600, NOW);
        assert_ne!(base, credentials("other", "alice", 3600, NOW));
        assert_ne!(
            base.credential,
            credentials(SECRET, "alice", 3601, NOW).credential
        );
        assert_ne!(
            base.credential,
            credentials(SECRET, "alicf", 3600, NOW).credential
        );
    }

    #[test]
    fn expiry_saturates_instead_of_overflowing() {
        let c = credentials(SECRET, "alice", u64::MAX, NOW);
        assert_eq!(c.expires_at, u64::MAX);
        assert!(c.username.starts_with(&format!("{}:", u64::MAX)));
    }

    #[test]
    fn ice_server_carries_every_url_and_the_credentials() {
        let (server, creds) = ice_server(&config(), "alice", NOW).unwrap();
        assert_eq!(server.urls, ["turn:a.example:3478", "turn:b.example:3478"]);
        assert_eq!(server.username.as_deref(), Some("1700003600:alice"));
        assert_eq!(
            server.credential.as_deref(),
            Some("PUm7OrZqyn/cBArpRkmZ3z4HueI=")
        );
        assert_eq!(creds.expires_at, NOW + 3600);
    }

    #[test]
    fn unusable_config_is_an_error_not_a_credential() {
        let mut c = config();
        c.secret.clear();
        assert_eq!(ice_server(&c, "a", NOW).unwrap_err(), CoturnError::NoSecret);
        let mut c = config();
        c.urls.clear();
        assert_eq!(ice_server(&c, "a", NOW).unwrap_err(), CoturnError::NoUrls);
        let mut c = config();
        c.ttl_secs = 0;
        assert_eq!(ice_server(&c, "a", NOW).unwrap_err(), CoturnError::ZeroTtl);
    }

    #[test]
    fn oversized_username_is_refused() {
        let user = "x".repeat(MAX_USERNAME_BYTES);
        let err = ice_server(&config(), &user, NOW).unwrap_err();
        assert!(matches!(err, CoturnError::UsernameTooLong(n) if n > MAX_USERNAME_BYTES));
        // The limit applies to the encoded form: 200 spaces are 600 bytes.
        let spaces = " ".repeat(200);
        assert!(ice_server(&config(), &spaces, NOW).is_err());
        // The largest user that fits is accepted.
        let fits = "x".repeat(MAX_USERNAME_BYTES - "1700003600:".len());
        assert!(ice_server(&config(), &fits, NOW).is_ok());
    }
}
