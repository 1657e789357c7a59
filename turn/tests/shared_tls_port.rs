//! TURNS and HTTPS on one TLS port: a browser's HTTPS connection (ALPN h2/http/1.1) is
//! passed through untouched to the HTTPS backend, which answers with its own certificate
//! and learns the client's address from a PROXY protocol v2 header; a TURN client that
//! asks for `stun.turn` gets our handshake and a STUN answer; junk and a backend that is
//! down end only their own connection. (coturn's client, which offers no ALPN as browsers'
//! `turns:` do, relays through a shared port in coturn_clients.rs.)
//!
//! Every socket is on 127.0.0.1; certificates are made by the `openssl` CLI.

// Test harness code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{loopback_config, self_signed_cert, start, with_tls};
use isoplane_turn::Config;
use isoplane_turn::proto::{Class, Message, MessageBuilder, Method, attr};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use tokio_rustls::rustls::crypto::{CryptoProvider, ring, verify_tls12_signature, verify_tls13_signature};
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use tokio_rustls::rustls::{ClientConfig, DigitallySignedStruct, ServerConfig, SignatureScheme};
use tokio_rustls::{TlsAcceptor, TlsConnector};

const BACKEND_PAGE: &str = "served by the HTTPS backend";

/// Trusts exactly one certificate: a handshake that succeeds proves who answered.
#[derive(Debug)]
struct ExactCertificate {
    expected: CertificateDer<'static>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for ExactCertificate {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, tokio_rustls::rustls::Error> {
        if end_entity.as_ref() == self.expected.as_ref() {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(tokio_rustls::rustls::Error::General("not the expected certificate".into()))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, tokio_rustls::rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, tokio_rustls::rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

/// A TLS client offering `alpn` that trusts only the certificate in `cert`.
fn client(cert: &Path, alpn: &[&[u8]]) -> TlsConnector {
    let provider = Arc::new(ring::default_provider());
    let expected = CertificateDer::from_pem_file(cert).unwrap();
    let mut config = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(ExactCertificate { expected, provider }))
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    TlsConnector::from(Arc::new(config))
}

/// An HTTPS server with its own certificate behind a PROXY protocol v2 header: it reports
/// the client address each header names and answers every request with [`BACKEND_PAGE`].
async fn https_backend(cert: &Path, key: &Path) -> (SocketAddr, mpsc::UnboundedReceiver<SocketAddr>) {
    let certs = vec![CertificateDer::from_pem_file(cert).unwrap()];
    let key = PrivateKeyDer::from_pem_file(key).unwrap();
    let mut config = ServerConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (sources, seen) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let (mut stream, _) = listener.accept().await.unwrap();
            let (acceptor, sources) = (acceptor.clone(), sources.clone());
            tokio::spawn(async move {
                let mut header = [0u8; 28];
                stream.read_exact(&mut header).await.unwrap();
                assert_eq!(&header[..12], b"\r\n\r\n\0\r\nQUIT\n", "a PROXY v2 signature first");
                assert_eq!(header[12..16], [0x21, 0x11, 0, 12], "PROXY, TCP over IPv4, 12 address bytes");
                let ip: [u8; 4] = header[16..20].try_into().unwrap();
                let port = u16::from_be_bytes([header[24], header[25]]);
                sources.send(SocketAddr::from((ip, port))).unwrap();
                let mut tls = acceptor.accept(stream).await.unwrap();
                let request = read_until_blank_line(&mut tls).await;
                assert!(request.starts_with("GET / HTTP/1.1\r\n"), "request: {request}");
                let answer = format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{BACKEND_PAGE}", BACKEND_PAGE.len());
                tls.write_all(answer.as_bytes()).await.unwrap();
                tls.shutdown().await.unwrap();
            });
        }
    });
    (address, seen)
}

async fn read_until_blank_line<S: AsyncRead + Unpin>(stream: &mut S) -> String {
    let mut text = Vec::new();
    let mut byte = [0u8; 1];
    while !text.ends_with(b"\r\n\r\n") {
        stream.read_exact(&mut byte).await.unwrap();
        text.push(byte[0]);
    }
    String::from_utf8(text).unwrap()
}

/// A browser's request: ALPN h2 and http/1.1, trusting only the backend's certificate.
/// Returns the answer and the client's own address.
async fn https_get(port: SocketAddr, backend_cert: &Path) -> (String, SocketAddr) {
    let tcp = TcpStream::connect(port).await.unwrap();
    let local = tcp.local_addr().unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    let mut tls =
        client(backend_cert, &[b"h2", b"http/1.1"]).connect(name, tcp).await.expect("the backend's handshake");
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]), "the backend chose the protocol");
    tls.write_all(b"GET / HTTP/1.1\r\nhost: localhost\r\n\r\n").await.unwrap();
    let mut answer = String::new();
    tokio::time::timeout(Duration::from_secs(5), tls.read_to_string(&mut answer)).await.unwrap().unwrap();
    (answer, local)
}

/// A STUN Binding over TLS by a client that asks for `stun.turn` and trusts only the
/// TURN server's certificate: returns the reflexive address it was told.
async fn stun_binding_over_tls(port: SocketAddr, turn_cert: &Path) -> Option<SocketAddr> {
    let tcp = TcpStream::connect(port).await.unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    let mut tls = client(turn_cert, &[b"stun.turn"]).connect(name, tcp).await.expect("the TURN server's handshake");
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"stun.turn"[..]), "RFC 7443: the server confirms stun.turn");
    let tid = [7u8; 12];
    let request = MessageBuilder::new(Method::Binding, Class::Request, tid).finish();
    tls.write_all(&request).await.unwrap();
    let mut header = [0u8; 20];
    tls.read_exact(&mut header).await.unwrap();
    let mut answer = header.to_vec();
    answer.resize(20 + usize::from(u16::from_be_bytes([header[2], header[3]])), 0);
    tls.read_exact(&mut answer[20..]).await.unwrap();
    let message = Message::parse(&answer).unwrap();
    assert_eq!((message.class, message.transaction_id), (Class::Success, tid));
    message.get(attr::XOR_MAPPED_ADDRESS).and_then(|v| attr::decode_xor_address(v, &tid))
}

/// Whether the server closes a connection that sent `bytes` (within five seconds).
async fn closed_after<S: AsyncRead + AsyncWrite + Unpin>(stream: &mut S, bytes: &[u8]) -> bool {
    let _ = stream.write_all(bytes).await;
    let mut sink = [0u8; 256];
    loop {
        match tokio::time::timeout(Duration::from_secs(5), stream.read(&mut sink)).await {
            Ok(Ok(0) | Err(_)) => return true,
            Ok(Ok(_)) => {}
            Err(_) => return false,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_port_serves_https_through_to_its_backend_and_turn_itself() {
    let (turn_dir, backend_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (turn_cert, turn_key) = self_signed_cert(turn_dir.path());
    let (backend_cert, backend_key) = self_signed_cert(backend_dir.path());
    let (backend, mut proxied_sources) = https_backend(&backend_cert, &backend_key).await;
    let config = Config {
        tls_https_backend: Some(backend.to_string()),
        tls_https_proxy_protocol: true,
        ..with_tls(loopback_config(true), turn_cert.clone(), turn_key)
    };
    let server = start(config).await;
    let shared = server.tls.unwrap();

    // A browser's HTTPS: the backend's certificate, its page, and it knows who asked.
    let (answer, browser) = https_get(shared, &backend_cert).await;
    assert!(answer.ends_with(BACKEND_PAGE), "answer: {answer}");
    assert_eq!(proxied_sources.recv().await, Some(browser), "the PROXY header names the browser's address");

    // A TURN client on the same port: our certificate and a STUN answer.
    let reflexive = stun_binding_over_tls(shared, &turn_cert).await.expect("XOR-MAPPED-ADDRESS");
    assert_eq!(reflexive.ip(), browser.ip());

    // Junk that is not TLS ends its own connection; the port goes on serving both.
    let mut junk = TcpStream::connect(shared).await.unwrap();
    assert!(
        closed_after(&mut junk, b"GET / HTTP/1.1\r\nhost: x\r\n\r\n").await,
        "plain HTTP on the TLS port is closed"
    );
    let (answer, _) = https_get(shared, &backend_cert).await;
    assert!(answer.ends_with(BACKEND_PAGE));
    assert!(stun_binding_over_tls(shared, &turn_cert).await.is_some());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_that_is_down_ends_only_the_https_connection() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed_cert(dir.path());
    // A port that was free a moment ago: nothing accepts there.
    let nobody = TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap();
    let config =
        Config { tls_https_backend: Some(nobody.to_string()), ..with_tls(loopback_config(true), cert.clone(), key) };
    let server = start(config).await;
    let shared = server.tls.unwrap();
    let tcp = TcpStream::connect(shared).await.unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    let refused = client(&cert, &[b"http/1.1"]).connect(name, tcp).await;
    assert!(refused.is_err(), "no backend: the HTTPS handshake cannot finish");
    assert!(stun_binding_over_tls(shared, &cert).await.is_some(), "TURN on the port is unaffected");
    server.stop().await;
}
