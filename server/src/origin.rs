//! Which web pages may open a WebSocket to this server (the `Origin` check of RFC 6455 §10.2).
//! A browser sends the page's origin with every upgrade, and a page on any site can try to
//! connect; without this check a page on another site gets a normal `welcome` and acts with its
//! visitor's name. Allowed: the server's own origin (an `Origin` whose host and port are the
//! request's `Host`, so the bundled web client works behind any name or proxy that forwards
//! `Host`), and the origins listed in `server.allowed_origins`. A request without `Origin` is
//! not from a browser page (our terminal client, scripts) and is accepted as before.
//!
//! Pure: header values in, a decision out. Must never accept the opaque origin `null`
//! (sandboxed frames, `file:` pages): it names no site, so it cannot be allowed by name.

/// Whether an upgrade with these headers may proceed.
pub fn allowed(origin: Option<&str>, host: Option<&str>, extra: &[String]) -> bool {
    let Some(origin) = origin.map(str::trim) else {
        return true;
    };
    if extra.iter().any(|o| o.eq_ignore_ascii_case(origin)) {
        return true;
    }
    let Some(authority) = authority(origin) else {
        return false;
    };
    host.map(str::trim)
        .is_some_and(|host| !host.is_empty() && host.eq_ignore_ascii_case(authority))
}

/// Whether `origin` is written as a browser sends it: `http` or `https`, `://`, a host and an
/// optional port, nothing else (no path, no trailing slash). For checking the configuration.
pub fn well_formed(origin: &str) -> bool {
    let Some(authority) = authority(origin) else {
        return false;
    };
    !authority.is_empty()
        && authority
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-.:[]".contains(c))
}

/// The `host[:port]` of an `http` or `https` origin.
fn authority(origin: &str) -> Option<&str> {
    origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clients_that_are_not_browsers_send_no_origin_and_are_accepted() {
        assert!(allowed(None, Some("127.0.0.1:4000"), &[]));
        assert!(allowed(None, None, &[]));
    }

    #[test]
    fn the_server_s_own_page_is_accepted_by_its_host() {
        let host = Some("chat.example.org:4000");
        assert!(allowed(Some("http://chat.example.org:4000"), host, &[]));
        assert!(allowed(Some("https://CHAT.example.org:4000"), host, &[]));
        // Same host, another port (another site as far as browsers go): refused.
        assert!(!allowed(Some("http://chat.example.org:8080"), host, &[]));
        assert!(!allowed(Some("http://chat.example.org"), host, &[]));
    }

    #[test]
    fn other_sites_are_refused_unless_listed() {
        let host = Some("127.0.0.1:4000");
        assert!(!allowed(Some("https://evil.example"), host, &[]));
        assert!(!allowed(Some("null"), host, &[]));
        assert!(
            !allowed(Some("http://127.0.0.1:4000"), None, &[]),
            "no Host: nothing to match"
        );
        assert!(!allowed(
            Some("http://127.0.0.1:4000.evil.example"),
            host,
            &[]
        ));
        let listed = ["https://app.example.org".to_owned()];
        assert!(allowed(Some("https://app.example.org"), host, &listed));
        assert!(
            !allowed(Some("http://app.example.org"), host, &listed),
            "scheme matters"
        );
        // `null` stays refused even if someone lists it: it is not well formed.
        assert!(!well_formed("null"));
    }

    #[test]
    fn configured_origins_must_be_written_as_browsers_send_them() {
        assert!(well_formed("https://chat.example.org"));
        assert!(well_formed("http://127.0.0.1:4000"));
        assert!(well_formed("http://[::1]:4000"));
        assert!(!well_formed("chat.example.org"));
        assert!(!well_formed("https://chat.example.org/"));
        assert!(!well_formed("https://chat.example.org/app"));
        assert!(!well_formed("ftp://chat.example.org"));
        assert!(!well_formed("https://"));
    }
}
