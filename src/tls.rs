//! Whom the client trusts over TLS — the `wss://` signaling connection and `turns:` TURN
//! servers alike: the system's roots (`rustls-native-certs`, which also reads
//! `SSL_CERT_FILE` / `SSL_CERT_DIR`), plus the certificates of a private CA named with
//! `--ca-file` (or `ca_file` in the config file).
//!
//! One configuration for the whole process, set by [`trust`] before anything connects (the
//! ICE agent builds its TURN connections deep inside webrtc, out of reach of any argument).

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

static CONFIG: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("CA file {path}: {message}")]
    CaFile { path: PathBuf, message: String },
    #[error("CA file {0}: no certificate in it (PEM `BEGIN CERTIFICATE` blocks expected)")]
    NoCertificate(PathBuf),
    #[error("the TLS trust was already set")]
    AlreadySet,
}

/// Trusts the system's roots and those in `ca_file`, for every TLS connection from now on.
/// Call once, at start.
pub fn trust(ca_file: Option<&Path>) -> Result<(), TlsError> {
    let extra = match ca_file {
        Some(path) => read_certificates(path)?,
        None => Vec::new(),
    };
    let config = build(extra);
    CONFIG
        .set(Arc::clone(&config))
        .map_err(|_| TlsError::AlreadySet)?;
    if !webrtc::ice::turn_stream::set_tls_config(config) {
        return Err(TlsError::AlreadySet);
    }
    Ok(())
}

/// The configuration set by [`trust`] (the system's roots alone if it was never called).
pub fn client_config() -> Arc<rustls::ClientConfig> {
    Arc::clone(CONFIG.get_or_init(|| build(Vec::new())))
}

/// Every certificate of the PEM file at `path`.
pub fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bad = |message: String| TlsError::CaFile {
        path: path.to_owned(),
        message,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| bad(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(e.to_string()))?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate(path.to_owned()));
    }
    Ok(certs)
}

fn build(extra: Vec<CertificateDer<'static>>) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    let found = rustls_native_certs::load_native_certs();
    for error in &found.errors {
        tracing::warn!(%error, "reading the system's certificates");
    }
    let (system, unusable) = roots.add_parsable_certificates(found.certs);
    let (added, rejected) = roots.add_parsable_certificates(extra);
    tracing::debug!(system, unusable, added, rejected, "TLS roots");
    let provider = rustls::crypto::CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| Arc::new(rustls::crypto::ring::default_provider()));
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("ring supports TLS 1.2 and 1.3")
        .with_root_certificates(roots)
        .with_no_client_auth();
    Arc::new(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ca_file_is_read_and_bad_ones_are_refused_with_the_reason() {
        let dir = std::env::temp_dir().join(format!("cromulent-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let good = dir.join("ca.pem");
        std::fs::write(&good, cert.pem()).unwrap();
        assert_eq!(read_certificates(&good).unwrap().len(), 1);

        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        assert!(matches!(
            read_certificates(&empty),
            Err(TlsError::NoCertificate(_))
        ));
        let missing = dir.join("missing.pem");
        let err = read_certificates(&missing).unwrap_err();
        assert!(err.to_string().contains("missing.pem"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
