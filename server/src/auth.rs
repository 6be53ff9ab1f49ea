//! Who is connecting: `open` mode takes the display name the client chose; `token` mode
//! verifies a token signed with the server's secret (`cv1.<payload>.<signature>`, payload a
//! base64url JSON `{sub, name?, exp}`, signature HMAC-SHA256 over `cv1.<payload>`).
//! Names follow [`crate::name`]'s rules. In token mode the display name is the token's (or the
//! user id); `hello.name` counts only when the token says `client_names`.
//! Pure functions: time is an argument.
//! Must never read a clock, or look at a token's payload before its signature has checked out.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use cromulent_protocol::{ErrorReason, UserId};

use crate::config::{AuthConfig, AuthMode};
use crate::name::{NameError, check_name};

const TOKEN_PREFIX: &str = "cv1";

/// An authenticated user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// What the join guard keys on.
    pub user: UserId,
    /// What others see.
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("{0}")]
    MissingName(&'static str),
    #[error("{0}")]
    InvalidName(#[from] NameError),
    #[error("{0}")]
    InvalidToken(String),
    #[error("token expired at {0} (unix time)")]
    TokenExpired(u64),
}

impl AuthError {
    pub fn reason(&self) -> ErrorReason {
        match self {
            Self::MissingName(_) | Self::InvalidName(_) => ErrorReason::InvalidName,
            Self::InvalidToken(_) => ErrorReason::InvalidToken,
            Self::TokenExpired(_) => ErrorReason::TokenExpired,
        }
    }
}

/// What a token asserts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Claims {
    /// User id.
    pub sub: String,
    /// Display name; the user id when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The holder may choose their display name in `hello.name` (else it is ignored).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub client_names: bool,
    /// Expiry, unix seconds.
    pub exp: u64,
}

/// Decide who a `hello` is from.
pub fn identify(
    config: &AuthConfig,
    max_name_chars: usize,
    name: Option<&str>,
    token: Option<&str>,
    now_unix: u64,
) -> Result<Identity, AuthError> {
    match config.mode {
        AuthMode::Open => {
            let name = name.ok_or(AuthError::MissingName(
                "open mode: hello must carry a `name`",
            ))?;
            let name = check_name(name, max_name_chars)?;
            Ok(Identity {
                user: name.clone(),
                name,
            })
        }
        AuthMode::Token => {
            let token = token.ok_or_else(|| {
                AuthError::InvalidToken("token mode: hello must carry a `token`".into())
            })?;
            let claims = verify_token(config.secret.as_bytes(), token, now_unix)?;
            let user = check_name(&claims.sub, max_name_chars)
                .map_err(|e| AuthError::InvalidToken(format!("bad user id in token: {e}")))?;
            let chosen = name.filter(|_| claims.client_names);
            let name = match chosen.or(claims.name.as_deref()) {
                Some(n) => check_name(n, max_name_chars)?,
                None => user.clone(),
            };
            Ok(Identity { user, name })
        }
    }
}

/// Sign a token for `claims`.
pub fn make_token(secret: &[u8], claims: &Claims) -> String {
    // Invariant: Claims holds only strings and integers, which always serialize.
    let payload = B64.encode(serde_json::to_vec(claims).expect("claims serialize"));
    let signed = format!("{TOKEN_PREFIX}.{payload}");
    let sig = B64.encode(mac(secret, signed.as_bytes()).finalize().into_bytes());
    format!("{signed}.{sig}")
}

/// Check a token's signature and expiry.
pub fn verify_token(secret: &[u8], token: &str, now_unix: u64) -> Result<Claims, AuthError> {
    let bad = |why: &str| AuthError::InvalidToken(format!("invalid token: {why}"));
    let mut parts = token.trim().split('.');
    let (Some(prefix), Some(payload), Some(sig), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad("expected three dot-separated parts"));
    };
    if prefix != TOKEN_PREFIX {
        return Err(bad("unknown token version"));
    }
    let sig = B64
        .decode(sig)
        .map_err(|_| bad("signature is not base64url"))?;
    mac(secret, format!("{prefix}.{payload}").as_bytes())
        .verify_slice(&sig)
        .map_err(|_| bad("signature does not match this server's secret"))?;
    let payload = B64
        .decode(payload)
        .map_err(|_| bad("payload is not base64url"))?;
    let claims: Claims =
        serde_json::from_slice(&payload).map_err(|_| bad("payload is not valid claims"))?;
    if claims.exp <= now_unix {
        return Err(AuthError::TokenExpired(claims.exp));
    }
    Ok(claims)
}

fn mac(secret: &[u8], data: &[u8]) -> Hmac<Sha256> {
    // Invariant: HMAC accepts keys of any length.
    let mut m = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    m.update(data);
    m
}

/// The web client's sign-in link: `base` (the server's `http(s)://` web address, any fragment
/// dropped) with `#token=TOKEN`. The fragment stays in the browser: it is never sent to a
/// server, logged by a proxy or passed on as a referrer. Tokens are base64url and dots, so
/// they need no escaping there.
pub fn sign_in_link(base: &str, token: &str) -> Result<String, String> {
    let base = base.trim();
    let base = base.split('#').next().unwrap_or(base);
    let rest = base
        .strip_prefix("https://")
        .or_else(|| base.strip_prefix("http://"))
        .ok_or_else(|| format!("{base:?} is not an http:// or https:// address"))?;
    if rest.is_empty() || rest.starts_with('/') || base.chars().any(char::is_whitespace) {
        return Err(format!("{base:?} names no host"));
    }
    let slash = if rest.contains('/') { "" } else { "/" };
    Ok(format!("{base}{slash}#token={token}"))
}

/// Parse a lifetime such as `30d`, `12h`, `90m`, `45s` or a plain number of seconds.
pub fn parse_ttl(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (num, unit) = text.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("bad lifetime {text:?}: expected e.g. 30d, 12h, 90m, 45s"))?;
    let mult = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => return Err(format!("bad lifetime unit {unit:?}: use s, m, h, d or w")),
    };
    let secs = n
        .checked_mul(mult)
        .ok_or_else(|| format!("lifetime {text:?} is too long"))?;
    if secs == 0 {
        return Err("lifetime must be positive".into());
    }
    Ok(secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sign_in_link_carries_the_token_in_its_fragment() {
        let t = "cv1.abc.def";
        assert_eq!(
            sign_in_link("https://voice.example.org", t).unwrap(),
            "https://voice.example.org/#token=cv1.abc.def"
        );
        assert_eq!(
            sign_in_link("http://127.0.0.1:4000/voice/#old", t).unwrap(),
            "http://127.0.0.1:4000/voice/#token=cv1.abc.def"
        );
        for bad in [
            "voice.example.org",
            "ftp://x/",
            "https://",
            "https:///x",
            "https://a b/",
        ] {
            assert!(sign_in_link(bad, t).is_err(), "{bad}");
        }
    }

    const SECRET: &[u8] = b"0123456789abcdef0123";

    fn token_config() -> AuthConfig {
        AuthConfig {
            mode: AuthMode::Token,
            secret: String::from_utf8(SECRET.to_vec()).unwrap(),
        }
    }

    fn claims(exp: u64) -> Claims {
        Claims {
            sub: "alice".into(),
            name: None,
            client_names: false,
            exp,
        }
    }

    #[test]
    fn token_round_trips_and_names_the_user() {
        let t = make_token(SECRET, &claims(2000));
        let id = identify(&token_config(), 32, None, Some(&t), 1000).unwrap();
        assert_eq!(id.user, "alice");
        assert_eq!(id.name, "alice");
    }

    #[test]
    fn expired_token_is_refused() {
        let t = make_token(SECRET, &claims(1000));
        let err = identify(&token_config(), 32, None, Some(&t), 1000).unwrap_err();
        assert_eq!(err, AuthError::TokenExpired(1000));
        assert_eq!(err.reason(), ErrorReason::TokenExpired);
    }

    #[test]
    fn wrong_secret_and_tampering_are_refused() {
        let t = make_token(b"another-secret-entirely", &claims(2000));
        let err = identify(&token_config(), 32, None, Some(&t), 1000).unwrap_err();
        assert_eq!(err.reason(), ErrorReason::InvalidToken);

        // Swap the payload for one claiming to be bob, keep alice's signature.
        let good = make_token(SECRET, &claims(2000));
        let bob = make_token(
            SECRET,
            &Claims {
                sub: "bob".into(),
                name: None,
                client_names: false,
                exp: 2000,
            },
        );
        let forged = format!(
            "cv1.{}.{}",
            bob.split('.').nth(1).unwrap(),
            good.split('.').nth(2).unwrap()
        );
        assert!(verify_token(SECRET, &forged, 1000).is_err());
        for junk in [
            "",
            "cv1",
            "a.b.c",
            "cv1.!!.??",
            "cv1.e30.",
            &format!("{good}.x"),
        ] {
            assert_eq!(
                identify(&token_config(), 32, None, Some(junk), 1000)
                    .unwrap_err()
                    .reason(),
                ErrorReason::InvalidToken,
                "{junk:?}"
            );
        }
    }

    #[test]
    fn token_mode_needs_a_token_and_open_mode_a_name() {
        assert!(identify(&token_config(), 32, Some("alice"), None, 0).is_err());
        let open = AuthConfig::default();
        assert!(identify(&open, 32, None, None, 0).is_err());
        let id = identify(&open, 32, Some("  Bob "), None, 0).unwrap();
        assert_eq!(id.user, "Bob");
    }

    #[test]
    fn token_mode_ignores_hello_name_unless_the_token_allows_it() {
        let with = |name: Option<&str>, client_names| Claims {
            name: name.map(Into::into),
            client_names,
            ..claims(2000)
        };
        let id = |c: &Claims, hello: Option<&str>| {
            let t = make_token(SECRET, c);
            identify(&token_config(), 32, hello, Some(&t), 1000).unwrap()
        };
        assert_eq!(id(&with(None, false), Some("Boss")).name, "alice");
        assert_eq!(id(&with(Some("Al"), false), Some("Boss")).name, "Al");
        assert_eq!(id(&with(Some("Al"), true), Some("Boss")).name, "Boss");
        assert_eq!(id(&with(Some("Al"), true), None).name, "Al");
        assert_eq!(id(&with(None, true), None).name, "alice");
    }

    #[test]
    fn names_are_checked() {
        let open = AuthConfig::default();
        for bad in ["", "a\u{7}b", "ali\u{200b}ce"] {
            let err = identify(&open, 32, Some(bad), None, 0).unwrap_err();
            assert_eq!(err.reason(), ErrorReason::InvalidName, "{bad:?}");
        }
        assert_eq!(
            identify(&open, 32, Some("Zoë"), None, 0).unwrap().name,
            "Zoë"
        );
    }

    #[test]
    fn ttl_parses_units() {
        assert_eq!(parse_ttl("30d"), Ok(30 * 86_400));
        assert_eq!(parse_ttl("12h"), Ok(43_200));
        assert_eq!(parse_ttl("90m"), Ok(5_400));
        assert_eq!(parse_ttl("45"), Ok(45));
        assert!(parse_ttl("0s").is_err());
        assert!(parse_ttl("ten").is_err());
        assert!(parse_ttl("5y").is_err());
        assert!(parse_ttl("99999999999999999999d").is_err());
    }
}
