//! TURN over DTLS (RFC 7350) with OpenSSL as the client: `openssl s_client -dtls1_2`
//! carries our STUN messages as application data, so the DTLS implementation on the other
//! side is not ours. A Binding, an authenticated Allocate, a permission, data to a UDP peer
//! through the relay and the peer's answer back as a Data indication. (coturn's
//! `turnutils_uclient -S` picks DTLS 1.0 for some connections at random, which we do not
//! speak: RFC 8996 retired it.)
//!
//! Everything stays on 127.0.0.1.

// Test harness code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{REALM, SECRET, loopback_config, self_signed_cert, self_signed_ecdsa_cert, start, with_tls};
use isoplane_turn::core::auth::rest_password;
use isoplane_turn::proto::integrity::long_term_key;
use isoplane_turn::proto::{Class, Message, MessageBuilder, Method, attr};
use isoplane_turn::{BoundServer, Config};
use std::io::{Read, Write};
use std::net::{SocketAddr, UdpSocket};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A DTLS 1.2 connection made by OpenSSL's command-line client, whose standard input and
/// output carry the application data.
struct OpensslDtls {
    child: Child,
    stdin: ChildStdin,
    chunks: mpsc::Receiver<Vec<u8>>,
    pending: Vec<u8>,
}

impl OpensslDtls {
    fn connect(server: SocketAddr) -> OpensslDtls {
        let mut child = Command::new("openssl")
            .args(["s_client", "-dtls1_2", "-quiet", "-connect", &server.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("the openssl CLI (apt-get install openssl)");
        let stdin = child.stdin.take().unwrap();
        let mut stdout = child.stdout.take().unwrap();
        let (sender, chunks) = mpsc::channel();
        std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            while let Ok(n @ 1..) = stdout.read(&mut buf) {
                if sender.send(buf[..n].to_vec()).is_err() {
                    return;
                }
            }
        });
        OpensslDtls { child, stdin, chunks, pending: Vec::new() }
    }

    /// Sends one message (one record: the next is sent only after an answer or a pause).
    fn send(&mut self, message: &[u8]) {
        self.stdin.write_all(message).unwrap();
        self.stdin.flush().unwrap();
    }

    /// The next whole STUN message received, within five seconds.
    fn receive(&mut self) -> Option<Vec<u8>> {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if self.pending.len() >= 20 {
                let len = 20 + usize::from(u16::from_be_bytes([self.pending[2], self.pending[3]]));
                if self.pending.len() >= len {
                    return Some(self.pending.drain(..len).collect());
                }
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            self.pending.extend(self.chunks.recv_timeout(left).ok()?);
        }
    }
}

impl Drop for OpensslDtls {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A TURN client with REST credentials over `dtls`.
struct Turn {
    dtls: OpensslDtls,
    username: String,
    key: [u8; 16],
    nonce: Vec<u8>,
    tid: u8,
}

impl Turn {
    fn request(&mut self, method: Method, fill: impl Fn(&mut MessageBuilder)) -> (u16, Vec<u8>) {
        for _ in 0..2 {
            self.tid += 1;
            let tid = [self.tid; 12];
            let mut b = MessageBuilder::new(method, Class::Request, tid);
            fill(&mut b);
            if !self.nonce.is_empty() {
                b.attr(attr::USERNAME, self.username.as_bytes());
                b.attr(attr::REALM, REALM.as_bytes());
                b.attr(attr::NONCE, &self.nonce);
                b.integrity(&self.key);
            }
            b.fingerprint();
            self.dtls.send(&b.finish());
            let answer = self.dtls.receive().expect("an answer over DTLS");
            let m = Message::parse(&answer).unwrap();
            assert_eq!(m.transaction_id, tid);
            if m.class == Class::Success {
                return (0, answer);
            }
            let code = attr::decode_error_code(m.get(attr::ERROR_CODE).unwrap()).unwrap().code;
            if code == 401 && self.nonce.is_empty() {
                self.nonce = m.get(attr::NONCE).unwrap().to_vec();
                continue;
            }
            return (code, answer);
        }
        panic!("no answer after the nonce");
    }
}

fn address(answer: &[u8], kind: u16) -> Option<SocketAddr> {
    let m = Message::parse(answer).unwrap();
    m.get(kind).and_then(|v| attr::decode_xor_address(v, &m.transaction_id))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openssl_relays_through_turn_over_dtls() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed_ecdsa_cert(dir.path());
    let config =
        Config { listen_dtls: Some("127.0.0.1:0".parse().unwrap()), ..with_tls(loopback_config(true), cert, key) };
    let server = start(config).await;
    let dtls_port = server.dtls.expect("a DTLS listener");
    tokio::task::spawn_blocking(move || {
        let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
        peer.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let expiry = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() + 600;
        let username = format!("{expiry}:dana");
        let key = long_term_key(&username, REALM, &rest_password(SECRET, &username));
        let mut turn = Turn { dtls: OpensslDtls::connect(dtls_port), username, key, nonce: Vec::new(), tid: 0 };

        let (code, answer) = turn.request(Method::Binding, |_| {});
        assert_eq!(code, 0);
        assert_eq!(address(&answer, attr::XOR_MAPPED_ADDRESS).map(|a| a.ip()), Some("127.0.0.1".parse().unwrap()));

        let (code, answer) = turn.request(Method::Allocate, |b| {
            b.attr(attr::REQUESTED_TRANSPORT, &[17, 0, 0, 0]);
        });
        assert_eq!(code, 0, "Allocate over DTLS");
        let relayed = address(&answer, attr::XOR_RELAYED_ADDRESS).expect("XOR-RELAYED-ADDRESS");
        let peer_address = peer.local_addr().unwrap();
        let (code, _) = turn.request(Method::CreatePermission, |b| {
            b.xor_address(attr::XOR_PEER_ADDRESS, peer_address);
        });
        assert_eq!(code, 0);

        // Out through the relay to the peer...
        let mut send = MessageBuilder::new(Method::Send, Class::Indication, [99; 12]);
        send.xor_address(attr::XOR_PEER_ADDRESS, peer_address);
        send.attr(attr::DATA, b"over DTLS, through the relay");
        turn.dtls.send(&send.finish());
        let mut buf = [0u8; 1500];
        let (n, from) = peer.recv_from(&mut buf).expect("the peer gets the data");
        assert_eq!((&buf[..n], from), (&b"over DTLS, through the relay"[..], relayed));

        // ...and the peer's answer back as a Data indication over DTLS.
        peer.send_to(b"and back", relayed).unwrap();
        let data = turn.dtls.receive().expect("a Data indication");
        let m = Message::parse(&data).unwrap();
        assert_eq!((m.method, m.class), (Method::Data, Class::Indication));
        assert_eq!(m.get(attr::DATA), Some(&b"and back"[..]));
        assert_eq!(address(&data, attr::XOR_PEER_ADDRESS), Some(peer_address));
    })
    .await
    .unwrap();
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_rsa_certificate_is_reported_for_dtls_before_binding() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed_cert(dir.path());
    let config =
        Config { listen_dtls: Some("127.0.0.1:0".parse().unwrap()), ..with_tls(loopback_config(true), cert, key) };
    let error = BoundServer::bind(config).await.expect_err("DTLS cannot use an RSA key").to_string();
    assert!(error.contains("key.pem") && error.contains("ECDSA"), "{error}");
}
