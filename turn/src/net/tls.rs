//! TURNS: loads the PEM certificate chain and key into a rustls acceptor (ring provider,
//! TLS 1.2 and 1.3). Errors name the file, so a bad path is reported before binding.
//!
//! Certificates are renewed under a running server (Let's Encrypt every 60 days, often by
//! the HTTPS server that shares the port): at most once every [`RECHECK`] a new connection
//! looks at the files' modification times and, if they changed, loads them again. A
//! renewal caught half-written fails to load and the previous certificate stays in use.

use super::ServeError;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::crypto::ring;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// How often the certificate files are looked at for a renewal.
const RECHECK: Duration = Duration::from_secs(60);

/// The TURNS certificate, reloaded when its files change.
#[derive(Debug)]
pub(super) struct Certificates {
    cert: PathBuf,
    key: PathBuf,
    recheck: Duration,
    loaded: Mutex<Loaded>,
}

#[derive(Debug)]
struct Loaded {
    config: Arc<ServerConfig>,
    modified: (Option<SystemTime>, Option<SystemTime>),
    checked: Instant,
}

impl Certificates {
    /// Loads the files now: a server with a bad certificate does not start.
    pub(super) fn load(cert: &Path, key: &Path) -> Result<Arc<Certificates>, ServeError> {
        Certificates::load_rechecking(cert, key, RECHECK)
    }

    fn load_rechecking(cert: &Path, key: &Path, recheck: Duration) -> Result<Arc<Certificates>, ServeError> {
        let modified = modified(cert, key);
        let config = server_config(cert, key)?;
        let loaded = Mutex::new(Loaded { config, modified, checked: Instant::now() });
        Ok(Arc::new(Certificates { cert: cert.to_owned(), key: key.to_owned(), recheck, loaded }))
    }

    /// The acceptor for a new connection, with the renewed certificate if there is one.
    pub(super) fn acceptor(&self) -> TlsAcceptor {
        let mut loaded = self.loaded.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if loaded.checked.elapsed() >= self.recheck {
            loaded.checked = Instant::now();
            let now = modified(&self.cert, &self.key);
            if now != loaded.modified {
                match server_config(&self.cert, &self.key) {
                    Ok(config) => {
                        tracing::info!(cert = %self.cert.display(), "TURNS certificate reloaded");
                        loaded.config = config;
                        loaded.modified = now;
                    }
                    // Kept as changed-but-unread: the next check tries again.
                    Err(error) => {
                        tracing::warn!(%error, "TURNS certificate changed but does not load; keeping the old one")
                    }
                }
            }
        }
        TlsAcceptor::from(loaded.config.clone())
    }
}

fn modified(cert: &Path, key: &Path) -> (Option<SystemTime>, Option<SystemTime>) {
    let time = |path: &Path| std::fs::metadata(path).and_then(|m| m.modified()).ok();
    (time(cert), time(key))
}

fn server_config(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, ServeError> {
    let err = |path: &Path, message: String| ServeError::Tls { path: path.display().to_string(), message };
    let certs = CertificateDer::pem_file_iter(cert)
        .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
        .map_err(|e| err(cert, e.to_string()))?;
    if certs.is_empty() {
        return Err(err(cert, "no certificate in the file".into()));
    }
    let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| err(key, e.to_string()))?;
    let mut config = ServerConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| err(cert, e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key_der)
        .map_err(|e| err(key, e.to_string()))?;
    // A client that asks for a STUN protocol gets it confirmed (RFC 7443); one that asks
    // for nothing gets nothing, as browsers' `turns:` do.
    config.alpn_protocols = super::tls_share::STUN_ALPN.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;
    use tokio_rustls::TlsConnector;
    use tokio_rustls::rustls::pki_types::ServerName;
    use tokio_rustls::rustls::{ClientConfig, RootCertStore};

    /// Writes a certificate for `name` (a CA may not be its own leaf in webpki, hence the
    /// extensions) with the openssl CLI.
    fn make_certificate(cert: &Path, key: &Path, name: &str) {
        let status = Command::new("openssl")
            .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "1"])
            .args(["-subj", &format!("/CN={name}"), "-addext", &format!("subjectAltName=DNS:{name}")])
            .args(["-addext", "basicConstraints=critical,CA:FALSE"])
            .arg("-keyout")
            .arg(key)
            .arg("-out")
            .arg(cert)
            .stderr(std::process::Stdio::null())
            .status()
            .expect("the openssl CLI makes the test certificates");
        assert!(status.success());
    }

    /// Whether a client trusting only `trusted` completes a handshake with `acceptor`.
    async fn handshake_trusting(acceptor: TlsAcceptor, trusted: &Path, name: &str) -> bool {
        let mut roots = RootCertStore::empty();
        roots.add(CertificateDer::from_pem_file(trusted).unwrap()).unwrap();
        let config = ClientConfig::builder_with_provider(Arc::new(ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let (client_end, server_end) = tokio::io::duplex(64 * 1024);
        let server = tokio::spawn(async move { acceptor.accept(server_end).await.is_ok() });
        let name = ServerName::try_from(name.to_owned()).unwrap();
        let client = TlsConnector::from(Arc::new(config)).connect(name, client_end).await;
        // The client's end stays open until the server has finished its side too.
        let server = server.await.unwrap();
        client.is_ok() && server
    }

    #[tokio::test]
    async fn a_renewed_certificate_is_served_to_new_connections() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
        make_certificate(&cert, &key, "old.test");
        let old = dir.path().join("old.pem");
        std::fs::copy(&cert, &old).unwrap();
        let certificates = Certificates::load_rechecking(&cert, &key, Duration::ZERO).unwrap();
        assert!(handshake_trusting(certificates.acceptor(), &old, "old.test").await);

        // A renewal caught half-written does not load: the old certificate stays.
        std::thread::sleep(Duration::from_millis(20));
        std::fs::write(&cert, "-----BEGIN CERTIFICATE-----\n").unwrap();
        assert!(handshake_trusting(certificates.acceptor(), &old, "old.test").await);

        // The renewal in place: new connections get it.
        std::thread::sleep(Duration::from_millis(20));
        make_certificate(&cert, &key, "new.test");
        let acceptor = certificates.acceptor();
        assert!(handshake_trusting(acceptor.clone(), &cert, "new.test").await);
        assert!(!handshake_trusting(acceptor, &old, "old.test").await);
    }
}
