//! Shared by the integration tests: start our server on 127.0.0.1 ephemeral ports.
//!
//! Every address here is loopback; tests never send anywhere else.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use isoplane_turn::{BoundServer, Config};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub const SECRET: &str = "test-rest-secret";
pub const REALM: &str = "isoplane";

/// A running server and how to stop it.
pub struct TestServer {
    pub udp: SocketAddr,
    pub tcp: SocketAddr,
    pub http: SocketAddr,
    pub tls: Option<SocketAddr>,
    pub dtls: Option<SocketAddr>,
    shutdown: CancellationToken,
    task: JoinHandle<()>,
}

impl TestServer {
    /// Stops the server and waits until every task has ended.
    pub async fn stop(self) {
        self.shutdown.cancel();
        self.task.await.expect("server task");
    }
}

/// A development config on loopback ephemeral ports with a REST secret and a static user.
pub fn loopback_config(allow_loopback_peers: bool) -> Config {
    Config {
        listen_udp: "127.0.0.1:0".parse().unwrap(),
        listen_tcp: Some("127.0.0.1:0".parse().unwrap()),
        listen_http: Some("127.0.0.1:0".parse().unwrap()),
        relay_ip: "127.0.0.1".parse().unwrap(),
        auth_secrets: vec!["retired-secret".into(), SECRET.into()],
        static_users: vec!["dev:devpass".into()],
        allowed_peers: if allow_loopback_peers { vec!["127.0.0.1/32".parse().unwrap()] } else { Vec::new() },
        max_allocations_per_user: 1000,
        ..Config::default()
    }
}

pub async fn start(config: Config) -> TestServer {
    let server = BoundServer::bind(config).await.expect("bind");
    let udp = server.udp_addr();
    let tcp = server.tcp_addr().expect("tcp listener");
    let http = server.http_addr().expect("http listener");
    let tls = server.tls_addr();
    let dtls = server.dtls_addr();
    let shutdown = CancellationToken::new();
    let token = shutdown.clone();
    let task = tokio::spawn(async move { server.run(token).await.expect("serve") });
    TestServer { udp, tcp, http, tls, dtls, shutdown, task }
}

/// GET over plain HTTP/1.0 on loopback; returns (status, body).
pub async fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect http");
    stream.write_all(format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").as_bytes()).await.unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).await.unwrap();
    let status = text.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    (status, body)
}

/// The value of a Prometheus sample line `name value`.
pub fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("metric {name} missing in:\n{text}"))
}

/// Writes a self-signed RSA certificate for `localhost` into `dir` with the `openssl` CLI
/// and returns (cert, key) paths.
pub fn self_signed_cert(dir: &Path) -> (PathBuf, PathBuf) {
    certificate_with(dir, &["-newkey", "rsa:2048"])
}

/// The same with an ECDSA P-256 key, as DTLS needs.
pub fn self_signed_ecdsa_cert(dir: &Path) -> (PathBuf, PathBuf) {
    certificate_with(dir, &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"])
}

fn certificate_with(dir: &Path, key_args: &[&str]) -> (PathBuf, PathBuf) {
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    let status = std::process::Command::new("openssl")
        .arg("req")
        .arg("-x509")
        .args(key_args)
        .args(["-nodes", "-days", "1", "-subj", "/CN=localhost"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .expect("the `openssl` CLI is needed to make a test certificate (apt-get install openssl)");
    assert!(status.success(), "openssl failed to make a self-signed certificate");
    (cert, key)
}

/// `config` with a TURNS listener on an ephemeral port using the given certificate.
pub fn with_tls(config: Config, cert: PathBuf, key: PathBuf) -> Config {
    Config { listen_tls: Some("127.0.0.1:0".parse().unwrap()), tls_cert: Some(cert), tls_key: Some(key), ..config }
}
