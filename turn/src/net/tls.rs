//! TURNS: loads the PEM certificate chain and key into a rustls acceptor (ring provider,
//! TLS 1.2 and 1.3). Errors name the file, so a bad path is reported before binding.

use super::ServeError;
use std::path::Path;
use std::sync::Arc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::crypto::ring;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

pub(super) fn acceptor(cert: &Path, key: &Path) -> Result<TlsAcceptor, ServeError> {
    let err = |path: &Path, message: String| ServeError::Tls { path: path.display().to_string(), message };
    let certs = CertificateDer::pem_file_iter(cert)
        .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
        .map_err(|e| err(cert, e.to_string()))?;
    if certs.is_empty() {
        return Err(err(cert, "no certificate in the file".into()));
    }
    let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| err(key, e.to_string()))?;
    let config = ServerConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| err(cert, e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key_der)
        .map_err(|e| err(key, e.to_string()))?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}
