//! TLS for every SMTP connection of mxguard, server and client side, with rustls (ring).
//!
//! - [`server_config`] loads the configured PEM certificate and key, or creates a self-signed
//!   certificate once and keeps it in the state directory so restarts present the same one.
//! - [`opportunistic_client_config`] is for relaying: STARTTLS to the downstream server encrypts
//!   but does not verify, like Postfix's `smtp_tls_security_level = may` (an unverifiable
//!   certificate must never make mail fall back to plaintext or bounce).
//! - [`Stream`] is a connection that is plaintext now and may be TLS later (STARTTLS).
//!
//! This crate must never turn verification off for anything but the opportunistic relay client.

mod stream;

pub use stream::Stream;

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};

pub use futures_rustls::{TlsAcceptor, TlsConnector};

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Reads a PEM certificate chain and private key.
pub fn load_pem(cert: &Path, key: &Path) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), String> {
    let cert_bytes = std::fs::read(cert).map_err(|e| format!("{}: {e}", cert.display()))?;
    let key_bytes = std::fs::read(key).map_err(|e| format!("{}: {e}", key.display()))?;
    let certs: Vec<_> = rustls_pemfile::certs(&mut &cert_bytes[..])
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{}: {e}", cert.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no certificate in file", cert.display()));
    }
    let key = rustls_pemfile::private_key(&mut &key_bytes[..])
        .map_err(|e| format!("{}: {e}", key.display()))?
        .ok_or_else(|| format!("{}: no private key in file", key.display()))?;
    Ok((certs, key))
}

/// How long a generated self-signed certificate is valid: 397 days, the longest a public CA may
/// issue (CA/Browser Forum), so scanners see an ordinary validity period.
pub const SELF_SIGNED_DAYS: i64 = 397;
/// A generated certificate older than this is made anew at start-up, before it expires.
pub const SELF_SIGNED_RENEW_DAYS: u64 = 365;

/// What [`ensure_self_signed`] found and did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SelfSigned {
    /// The pair there loads and is not due for renewal: kept.
    Kept,
    /// There was none: made.
    Made,
    /// Written more than [`SELF_SIGNED_RENEW_DAYS`] ago: made anew.
    Renewed,
    /// There but unreadable (why): made anew. A power cut before the first write reached the
    /// disk leaves an empty file; the gateway would otherwise never start again.
    Replaced(String),
}

/// Creates `cert` and `key` (PEM, self-signed for `hostname`, valid from yesterday for
/// [`SELF_SIGNED_DAYS`]) unless both exist, load, and the certificate file was written less than
/// [`SELF_SIGNED_RENEW_DAYS`] ago. Each file is written beside, synced and renamed into place (the
/// directory synced too), so a crash leaves the old pair or the new one, never a torn file. Only
/// for the files the gateway generates itself: an administrator's own certificate is never touched.
pub fn ensure_self_signed(cert: &Path, key: &Path, hostname: &str) -> Result<SelfSigned, String> {
    let age = std::fs::metadata(cert).and_then(|m| m.modified()).ok().and_then(|t| t.elapsed().ok());
    let outcome = if !cert.exists() && !key.exists() {
        SelfSigned::Made
    } else if age.is_some_and(|a| a.as_secs() >= SELF_SIGNED_RENEW_DAYS * 86_400) {
        SelfSigned::Renewed
    } else {
        match load_pem(cert, key) {
            Ok(_) => return Ok(SelfSigned::Kept),
            Err(e) => SelfSigned::Replaced(e),
        }
    };
    let mut params = rcgen::CertificateParams::new(vec![hostname.to_string(), "localhost".to_string()])
        .map_err(|e| format!("generating a self-signed certificate: {e}"))?;
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::days(1);
    params.not_after = now + time::Duration::days(SELF_SIGNED_DAYS - 1);
    let key_pair = rcgen::KeyPair::generate().map_err(|e| format!("generating a key: {e}"))?;
    let made = params.self_signed(&key_pair).map_err(|e| format!("generating a self-signed certificate: {e}"))?;
    let ck = rcgen::CertifiedKey { cert: made, key_pair };
    write_durably(key, ck.key_pair.serialize_pem().as_bytes(), 0o600)?;
    write_durably(cert, ck.cert.pem().as_bytes(), 0o644)?;
    Ok(outcome)
}

/// `data` into `path` whole or not at all: a file beside it, synced, renamed over it, and the
/// directory synced so that the rename itself survives a power cut.
fn write_durably(path: &Path, data: &[u8], mode: u32) -> Result<(), String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let err = |e: std::io::Error| format!("{}: {e}", path.display());
    let tmp = path.with_extension("new");
    let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(mode).open(&tmp).map_err(err)?;
    f.write_all(data).and_then(|_| f.sync_all()).map_err(err)?;
    std::fs::rename(&tmp, path).map_err(err)?;
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(|e| format!("{}: {e}", dir.display()))
}

/// The oldest TLS version a server offers: 1.2 (with 1.3 preferred) or 1.3 alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MinVersion {
    Tls12,
    Tls13,
}

impl MinVersion {
    /// From the `smtp.tls_min_version` knob's value (12 or 13).
    pub fn from_knob(v: i64) -> MinVersion {
        if v >= 13 {
            MinVersion::Tls13
        } else {
            MinVersion::Tls12
        }
    }
}

/// A server configuration for STARTTLS, implicit TLS and the console. Only AEAD cipher suites
/// with forward secrecy are offered (rustls has no others).
pub fn server_config(cert: &Path, key: &Path, min: MinVersion) -> Result<Arc<rustls::ServerConfig>, String> {
    let (certs, key) = load_pem(cert, key)?;
    let versions: &[&rustls::SupportedProtocolVersion] = match min {
        MinVersion::Tls12 => rustls::DEFAULT_VERSIONS,
        MinVersion::Tls13 => &[&rustls::version::TLS13],
    };
    let cfg = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(versions)
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("{}: {e}", cert.display()))?;
    let mut cfg = cfg;
    // The server's order (rustls': TLS 1.3 suites, then ECDHE with AES-GCM and ChaCha20), not the
    // client's: every suite on offer is AEAD with forward secrecy, and scanners expect a server
    // that decides.
    cfg.ignore_client_order = true;
    Ok(Arc::new(cfg))
}

/// A client configuration that encrypts without verifying the server (see the module doc).
pub fn opportunistic_client_config() -> Arc<rustls::ClientConfig> {
    let provider = provider();
    let cfg = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAnyServer(provider)))
        .with_no_client_auth();
    Arc::new(cfg)
}

/// Accepts any certificate, but still checks the handshake signatures (so the session key is
/// really shared with whoever holds the presented key).
#[derive(Debug)]
struct AcceptAnyServer(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AcceptAnyServer {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// The server name to present in SNI for a downstream host (IP literals get a placeholder name,
/// which the opportunistic verifier ignores).
pub fn server_name(host: &str) -> ServerName<'static> {
    ServerName::try_from(host.to_string())
        .unwrap_or_else(|_| ServerName::try_from("downstream.invalid".to_string()).expect("valid DNS name"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_signed_is_created_once_and_loads() {
        let dir = std::env::temp_dir().join(format!("mxguard-tls-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (c, k) = (dir.join("c.pem"), dir.join("k.pem"));
        assert_eq!(ensure_self_signed(&c, &k, "mx.test").unwrap(), SelfSigned::Made);
        let first = std::fs::read(&c).unwrap();
        assert_eq!(ensure_self_signed(&c, &k, "mx.test").unwrap(), SelfSigned::Kept);
        assert_eq!(first, std::fs::read(&c).unwrap(), "kept across restarts");
        server_config(&c, &k, MinVersion::Tls12).unwrap();
        server_config(&c, &k, MinVersion::Tls13).unwrap();
        let _ = opportunistic_client_config();
        assert!(server_config(&k, &c, MinVersion::Tls12).is_err(), "swapped files give an error, not a panic");
        // A year on, the next start makes a new one before the old one expires.
        let old = std::time::SystemTime::now() - std::time::Duration::from_secs((SELF_SIGNED_RENEW_DAYS + 1) * 86_400);
        std::fs::File::options().write(true).open(&c).unwrap().set_modified(old).unwrap();
        assert_eq!(ensure_self_signed(&c, &k, "mx.test").unwrap(), SelfSigned::Renewed);
        assert_ne!(first, std::fs::read(&c).unwrap(), "renewed");
        server_config(&c, &k, MinVersion::Tls12).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_torn_generated_pair_is_made_anew() {
        let dir = std::env::temp_dir().join(format!("mxguard-tls-torn-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (c, k) = (dir.join("c.pem"), dir.join("k.pem"));
        ensure_self_signed(&c, &k, "mx.test").unwrap();
        let good_key = std::fs::read(&k).unwrap();
        // What a power cut before the data reached the disk leaves (ext4's delayed allocation):
        // an empty certificate; or no key at all; or a key cut short.
        let torn: [(&str, Box<dyn Fn()>); 3] = [
            ("empty certificate", Box::new(|| std::fs::write(&c, b"").unwrap())),
            ("missing key", Box::new(|| std::fs::remove_file(&k).unwrap())),
            ("key cut short", Box::new(|| std::fs::write(&k, &good_key[..good_key.len() / 2]).unwrap())),
        ];
        for (what, tear) in torn {
            tear();
            assert!(server_config(&c, &k, MinVersion::Tls12).is_err(), "{what}: torn");
            assert!(matches!(ensure_self_signed(&c, &k, "mx.test").unwrap(), SelfSigned::Replaced(_)), "{what}");
            server_config(&c, &k, MinVersion::Tls12).unwrap_or_else(|e| panic!("{what}: {e}"));
        }
        assert!(!c.with_extension("new").exists() && !k.with_extension("new").exists(), "no file left beside");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
