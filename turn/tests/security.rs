//! Security behaviour seen from a client on a real UDP socket: refused peer ranges,
//! credentials, quotas, amplification, malformed input, shutdown.
//!
//! The client builds messages with the crate's own codec. Refusal tests only read the
//! server's answers: no Send indication or ChannelData is ever sent towards a refused
//! address, and every socket here talks to 127.0.0.1 only.

// Test harness code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{REALM, SECRET, http_get, loopback_config, metric, start};
use isoplane_turn::core::auth::rest_password;
use isoplane_turn::proto::attr;
use isoplane_turn::proto::integrity::{long_term_key, verify_integrity};
use isoplane_turn::proto::{Class, Message, MessageBuilder, Method};
use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::net::UdpSocket;

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

/// A minimal TURN client over UDP built on the crate's codec.
struct Client {
    socket: UdpSocket,
    server: SocketAddr,
    username: String,
    key: [u8; 16],
    nonce: Vec<u8>,
    tid: u32,
}

/// An answer: 0 for success, else the error code; plus the raw bytes.
struct Answer {
    code: u16,
    bytes: Vec<u8>,
}

impl Client {
    async fn new(server: SocketAddr, username: &str, password: &str) -> Client {
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        Client {
            socket,
            server,
            username: username.into(),
            key: long_term_key(username, REALM, password),
            nonce: Vec::new(),
            tid: 0,
        }
    }

    async fn rest(server: SocketAddr, user: &str, expiry: u64, secret: &str) -> Client {
        let username = format!("{expiry}:{user}");
        let password = rest_password(secret, &username);
        Client::new(server, &username, &password).await
    }

    fn next_tid(&mut self) -> [u8; 12] {
        self.tid += 1;
        let mut tid = [0u8; 12];
        tid[..4].copy_from_slice(&self.tid.to_be_bytes());
        tid
    }

    async fn recv(&self) -> Option<Vec<u8>> {
        let mut buf = vec![0u8; 2048];
        match tokio::time::timeout(Duration::from_millis(1500), self.socket.recv(&mut buf)).await {
            Ok(Ok(n)) => Some(buf[..n].to_vec()),
            _ => None,
        }
    }

    async fn send_raw(&self, bytes: &[u8]) {
        self.socket.send_to(bytes, self.server).await.unwrap();
    }

    /// Sends a signed request (getting a nonce first) and returns the answer.
    async fn request(&mut self, method: Method, fill: impl Fn(&mut MessageBuilder)) -> Answer {
        for _ in 0..3 {
            let tid = self.next_tid();
            let mut b = MessageBuilder::new(method, Class::Request, tid);
            fill(&mut b);
            if self.nonce.is_empty() {
                b.attr(attr::SOFTWARE, b"isoplane security test client");
            } else {
                b.attr(attr::USERNAME, self.username.as_bytes());
                b.attr(attr::REALM, REALM.as_bytes());
                b.attr(attr::NONCE, &self.nonce);
                b.integrity(&self.key);
            }
            b.fingerprint();
            self.send_raw(&b.finish()).await;
            let bytes = self.recv().await.expect("the server answers");
            let m = Message::parse(&bytes).expect("a STUN answer");
            assert_eq!(m.transaction_id, tid);
            if m.class == Class::Success {
                assert!(verify_integrity(&m, &self.key));
                return Answer { code: 0, bytes };
            }
            let code = attr::decode_error_code(m.get(attr::ERROR_CODE).unwrap()).unwrap().code;
            if (code == 401 && self.nonce.is_empty()) || code == 438 {
                self.nonce = m.get(attr::NONCE).unwrap().to_vec();
                continue;
            }
            return Answer { code, bytes };
        }
        panic!("no answer after nonce retries");
    }

    async fn allocate(&mut self) -> u16 {
        self.request(Method::Allocate, |b| {
            b.attr(attr::REQUESTED_TRANSPORT, &[17, 0, 0, 0]);
        })
        .await
        .code
    }

    async fn refresh(&mut self, lifetime: u32) -> u16 {
        self.request(Method::Refresh, |b| {
            b.u32(attr::LIFETIME, lifetime);
        })
        .await
        .code
    }

    async fn create_permission(&mut self, peer: SocketAddr) -> u16 {
        self.request(Method::CreatePermission, |b| {
            b.xor_address(attr::XOR_PEER_ADDRESS, peer);
        })
        .await
        .code
    }

    async fn channel_bind(&mut self, channel: u16, peer: SocketAddr) -> u16 {
        self.request(Method::ChannelBind, |b| {
            b.attr(attr::CHANNEL_NUMBER, &[(channel >> 8) as u8, channel as u8, 0, 0]);
            b.xor_address(attr::XOR_PEER_ADDRESS, peer);
        })
        .await
        .code
    }
}

/// Every address range the default policy must refuse, as a peer with some port.
const REFUSED_PEERS: &[&str] = &[
    "127.0.0.1:9",
    "127.255.0.1:9",
    "0.0.0.0:9",
    "10.0.0.1:9",
    "172.16.0.1:9",
    "192.168.1.1:9",
    "100.64.0.1:9",
    "169.254.169.254:80",
    "224.0.0.1:9",
    "239.255.255.250:1900",
    "240.0.0.1:9",
    "255.255.255.255:9",
    "192.0.0.1:9",
    "192.0.2.1:9",
    "198.18.0.1:9",
    "198.51.100.1:9",
    "203.0.113.1:9",
    "[::1]:9",
    "[::]:9",
    "[fc00::1]:9",
    "[fd00::1]:9",
    "[fe80::1]:9",
    "[ff02::1]:9",
    "[2001:db8::1]:9",
    "[::ffff:127.0.0.1]:9",
    "[::ffff:10.0.0.1]:9",
    "[::ffff:169.254.169.254]:80",
    "[64:ff9b::7f00:1]:9",
    "[64:ff9b::a9fe:a9fe]:80",
    "[64:ff9b:1::a00:1]:9",
    "[2002:7f00:1::1]:9",
    "[2002:a9fe:a9fe::1]:80",
    "[2001:0:4136:e378:8000:63bf:80ff:fffe]:9",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_peer_ranges_get_403_on_create_permission_and_channel_bind() {
    let server = start(loopback_config(false)).await;
    let mut client = Client::rest(server.udp, "alice", unix_now() + 3600, SECRET).await;
    assert_eq!(client.allocate().await, 0);
    for (i, peer) in REFUSED_PEERS.iter().enumerate() {
        let peer: SocketAddr = peer.parse().unwrap();
        assert_eq!(client.create_permission(peer).await, 403, "CreatePermission {peer}");
        assert_eq!(client.channel_bind(0x4000 + i as u16, peer).await, 403, "ChannelBind {peer}");
    }
    let (_, metrics) = http_get(server.http, "/metrics").await;
    assert_eq!(metric(&metrics, "turn_refusals_total{reason=\"forbidden_peer\"}"), 2 * REFUSED_PEERS.len() as u64);
    assert_eq!(metric(&metrics, "turn_relayed_packets_to_peers_total"), 0);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allow_list_admits_exactly_what_it_names() {
    let server = start(loopback_config(true)).await;
    let mut client = Client::new(server.udp, "dev", "devpass").await;
    assert_eq!(client.allocate().await, 0);
    assert_eq!(client.create_permission("127.0.0.1:9".parse().unwrap()).await, 0);
    assert_eq!(client.create_permission("127.0.0.2:9".parse().unwrap()).await, 403);
    assert_eq!(client.create_permission("[::ffff:127.0.0.1]:9".parse().unwrap()).await, 403);
    assert_eq!(client.channel_bind(0x4000, "[64:ff9b::7f00:1]:9".parse().unwrap()).await, 403);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_or_expired_credentials_get_401() {
    let server = start(loopback_config(false)).await;
    let mut wrong = Client::new(server.udp, "dev", "not-the-password").await;
    assert_eq!(wrong.allocate().await, 401);
    let mut unknown_secret = Client::rest(server.udp, "alice", unix_now() + 3600, "guessed-secret").await;
    assert_eq!(unknown_secret.allocate().await, 401);
    let mut expired = Client::rest(server.udp, "alice", unix_now() - 10, SECRET).await;
    assert_eq!(expired.allocate().await, 401);
    // The retired secret still works during rotation.
    let mut rotated = Client::rest(server.udp, "alice", unix_now() + 3600, "retired-secret").await;
    assert_eq!(rotated.allocate().await, 0);
    let (_, metrics) = http_get(server.http, "/metrics").await;
    assert_eq!(metric(&metrics, "turn_auth_failures_total"), 3);
    assert_eq!(metric(&metrics, "turn_allocations"), 1);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exceeding_the_per_user_quota_gets_486() {
    let config = isoplane_turn::Config { max_allocations_per_user: 2, ..loopback_config(false) };
    let server = start(config).await;
    let expiry = unix_now() + 3600;
    for _ in 0..2 {
        assert_eq!(Client::rest(server.udp, "alice", expiry, SECRET).await.allocate().await, 0);
    }
    assert_eq!(Client::rest(server.udp, "alice", expiry, SECRET).await.allocate().await, 486);
    // Another user is not affected.
    assert_eq!(Client::rest(server.udp, "bob", expiry, SECRET).await.allocate().await, 0);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unauthenticated_answers_are_never_larger_than_the_request_or_the_smallest_challenge() {
    let server = start(loopback_config(false)).await;
    let client = Client::new(server.udp, "dev", "devpass").await;
    let allocate = |extra: &[(u16, &[u8])], fingerprint: bool| {
        let mut b = MessageBuilder::new(Method::Allocate, Class::Request, [3; 12]);
        b.attr(attr::REQUESTED_TRANSPORT, &[17, 0, 0, 0]);
        for (kind, value) in extra {
            b.attr(*kind, value);
        }
        if fingerprint {
            b.fingerprint();
        }
        b.finish()
    };
    let requests = [
        // coturn's uclient -c first Allocate (52 bytes).
        allocate(&[(attr::LIFETIME, &[0, 0, 3, 9]), (attr::REQUESTED_ADDRESS_FAMILY, &[1, 0, 0, 0])], true),
        // with EVEN-PORT (60 bytes).
        allocate(
            &[
                (attr::LIFETIME, &[0, 0, 3, 9]),
                (attr::EVEN_PORT, &[0x80]),
                (attr::REQUESTED_ADDRESS_FAMILY, &[1, 0, 0, 0]),
            ],
            true,
        ),
        allocate(&[(attr::SOFTWARE, b"a long software name, more room for the reason phrase")], true),
        allocate(&[], false),
        allocate(&[], true),
    ];
    let mut answered = 0;
    for request in &requests {
        client.send_raw(request).await;
        if let Some(answer) = client.recv().await {
            answered += 1;
            let budget = request.len().max(isoplane_turn::core::SMALLEST_CHALLENGE);
            assert!(answer.len() <= budget, "answer {} bytes to a {}-byte request", answer.len(), request.len());
            let m = Message::parse(&answer).unwrap();
            assert_eq!(attr::decode_error_code(m.get(attr::ERROR_CODE).unwrap()).unwrap().code, 401);
            assert!(m.has(attr::NONCE) && m.has(attr::REALM));
        }
    }
    assert_eq!(answered, requests.len(), "every Allocate gets a challenge, the tiny ones the smallest");
    let (_, metrics) = http_get(server.http, "/metrics").await;
    assert_eq!(metric(&metrics, "turn_refusals_total{reason=\"amplification\"}"), 0);
    assert_eq!(metric(&metrics, "turn_allocations"), 0);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_packets_do_not_stop_the_server() {
    let server = start(loopback_config(false)).await;
    let attacker = Client::new(server.udp, "dev", "devpass").await;
    let mut garbage: Vec<Vec<u8>> = vec![
        vec![],
        vec![0],
        vec![0xFF; 100],
        vec![0x00, 0x01, 0xFF, 0xFF, 0x21, 0x12, 0xA4, 0x42],
        vec![0x40, 0x00, 0xFF, 0xFF, 1, 2, 3],
        vec![0x7F, 0xFF, 0x00, 0x00],
    ];
    // A well-formed header whose attribute claims to run past the end.
    let mut truncated = MessageBuilder::new(Method::Allocate, Class::Request, [1; 12]);
    truncated.attr(attr::USERNAME, b"abcd");
    let mut truncated = truncated.finish();
    truncated[23] = 200;
    garbage.push(truncated);
    // A valid message with a corrupted FINGERPRINT.
    let mut bad_fp = MessageBuilder::new(Method::Binding, Class::Request, [2; 12]);
    bad_fp.fingerprint();
    let mut bad_fp = bad_fp.finish();
    let last = bad_fp.len() - 1;
    bad_fp[last] ^= 0xFF;
    garbage.push(bad_fp);
    // Deterministic pseudo-random bytes.
    let mut x: u32 = 0x1234_5678;
    for len in [20usize, 21, 64, 500, 1400] {
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            })
            .collect();
        garbage.push(bytes);
    }
    for bytes in &garbage {
        attacker.send_raw(bytes).await;
    }
    // Someone else is still served: a Binding and a full allocation.
    let other = Client::new(server.udp, "dev", "devpass").await;
    let mut b = MessageBuilder::new(Method::Binding, Class::Request, [9; 12]);
    b.fingerprint();
    other.send_raw(&b.finish()).await;
    let answer = other.recv().await.expect("binding answer after garbage");
    let m = Message::parse(&answer).unwrap();
    let mapped = attr::decode_xor_address(m.get(attr::XOR_MAPPED_ADDRESS).unwrap(), &m.transaction_id);
    assert_eq!(mapped, Some(other.socket.local_addr().unwrap()));
    let mut other = other;
    assert_eq!(other.allocate().await, 0);
    let (status, metrics) = http_get(server.http, "/metrics").await;
    assert_eq!(status, 200);
    assert!(metric(&metrics, "turn_refusals_total{reason=\"malformed\"}") >= 5);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_endpoints_and_shutdown_closes_relay_sockets() {
    let server = start(loopback_config(false)).await;
    assert_eq!(http_get(server.http, "/healthz").await.0, 200);
    assert_eq!(http_get(server.http, "/readyz").await.0, 200);
    let mut client = Client::new(server.udp, "dev", "devpass").await;
    let answer = client
        .request(Method::Allocate, |b| {
            b.attr(attr::REQUESTED_TRANSPORT, &[17, 0, 0, 0]);
        })
        .await;
    assert_eq!(answer.code, 0);
    let m = Message::parse(&answer.bytes).unwrap();
    let relayed = attr::decode_xor_address(m.get(attr::XOR_RELAYED_ADDRESS).unwrap(), &m.transaction_id).unwrap();
    assert_eq!(relayed.ip().to_string(), "127.0.0.1");
    assert!(std::net::UdpSocket::bind(relayed).is_err(), "the relay port is in use while allocated");
    server.stop().await;
    assert!(std::net::UdpSocket::bind(relayed).is_ok(), "shutdown closed the relay socket");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_tls_files_are_reported_before_binding() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.pem");
    let config = common::with_tls(loopback_config(false), missing.clone(), missing.clone());
    let err = isoplane_turn::BoundServer::bind(config).await.unwrap_err().to_string();
    assert!(err.contains("missing.pem"), "{err}");
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "not a certificate").unwrap();
    let config = common::with_tls(loopback_config(false), garbage.clone(), garbage);
    let err = isoplane_turn::BoundServer::bind(config).await.unwrap_err().to_string();
    assert!(err.contains("garbage.pem"), "{err}");
}

/// The relayed address in an Allocate's success.
fn relayed_address(answer: &Answer) -> SocketAddr {
    let m = Message::parse(&answer.bytes).unwrap();
    attr::decode_xor_address(m.get(attr::XOR_RELAYED_ADDRESS).unwrap(), &m.transaction_id).unwrap()
}

/// Sixteen clients of one user on four shards: exactly the user's quota of them allocate,
/// each relays both ways, a port reserved by one client is claimed from another port (so
/// often through another shard), and `/metrics` adds every shard up and says how many
/// threads serve them.
async fn udp_shards_share_one_quota_and_the_reserved_ports_and_each_relays(spread_at_percent: u8, threads: u64) {
    let config = isoplane_turn::Config {
        udp_threads: 4,
        udp_spread_at_percent: spread_at_percent,
        max_allocations_per_user: 8,
        ..loopback_config(true)
    };
    let server = start(config).await;
    let expiry = unix_now() + 3600;
    let mut allocated = Vec::new();
    let mut refused = 0;
    for _ in 0..16 {
        let mut client = Client::rest(server.udp, "erin", expiry, SECRET).await;
        match client.allocate().await {
            0 => allocated.push(client),
            486 => refused += 1,
            other => panic!("Allocate answered {other}"),
        }
    }
    assert_eq!((allocated.len(), refused), (8, 8), "one quota for the user, whichever shard each client reached");
    let peer = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    for (i, client) in allocated.iter_mut().enumerate() {
        assert_eq!(client.channel_bind(0x4000, peer.local_addr().unwrap()).await, 0);
        relay_both_ways(client, &peer, i).await;
    }
    let (_, metrics) = http_get(server.http, "/metrics").await;
    assert_eq!(metric(&metrics, "turn_allocations"), 8, "the gauge adds up every shard");
    assert_eq!(metric(&metrics, "turn_relayed_packets_to_peers_total"), 8);
    assert_eq!(metric(&metrics, "turn_relayed_packets_to_clients_total"), 8);
    assert_eq!(metric(&metrics, "turn_refusals_total{reason=\"user_quota\"}"), 8);
    assert_eq!(metric(&metrics, "turn_udp_threads"), threads);

    for _ in 0..6 {
        let mut even = Client::rest(server.udp, "rita", expiry, SECRET).await;
        let first = even
            .request(Method::Allocate, |b| {
                b.attr(attr::REQUESTED_TRANSPORT, &[17, 0, 0, 0]);
                b.attr(attr::EVEN_PORT, &[0x80]);
            })
            .await;
        assert_eq!(first.code, 0);
        let token = Message::parse(&first.bytes).unwrap().get(attr::RESERVATION_TOKEN).unwrap().to_vec();
        let mut odd = Client::rest(server.udp, "rita", expiry, SECRET).await;
        let second = odd
            .request(Method::Allocate, |b| {
                b.attr(attr::REQUESTED_TRANSPORT, &[17, 0, 0, 0]);
                b.attr(attr::RESERVATION_TOKEN, &token);
            })
            .await;
        assert_eq!(second.code, 0, "the reserved port is claimed");
        assert_eq!(relayed_address(&second).port(), relayed_address(&first).port() + 1);
        assert_eq!(even.refresh(0).await, 0);
        assert_eq!(odd.refresh(0).await, 0);
    }
    server.stop().await;
}

/// Sends a ChannelData on channel 0x4000 to `peer` and the peer's answer back.
async fn relay_both_ways(client: &Client, peer: &UdpSocket, i: usize) {
    let payload = format!("from client {i:02}");
    let mut frame = vec![0x40, 0x00, 0, payload.len() as u8];
    frame.extend_from_slice(payload.as_bytes());
    client.send_raw(&frame).await;
    let mut buf = [0u8; 256];
    let (len, relayed) = tokio::time::timeout(Duration::from_secs(2), peer.recv_from(&mut buf)).await.unwrap().unwrap();
    assert_eq!(&buf[..len], payload.as_bytes());
    let answer = format!("back to {i:02}");
    peer.send_to(answer.as_bytes(), relayed).await.unwrap();
    let back = client.recv().await.expect("the peer's answer relayed");
    assert_eq!(&back[..4], &[0x40, 0x00, 0, answer.len() as u8]);
    assert_eq!(&back[4..], answer.as_bytes());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_shards_on_one_thread_share_one_quota_and_the_reserved_ports() {
    udp_shards_share_one_quota_and_the_reserved_ports_and_each_relays(50, 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_shards_on_a_thread_each_share_one_quota_and_the_reserved_ports() {
    udp_shards_share_one_quota_and_the_reserved_ports_and_each_relays(0, 4).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_thread_hands_shards_to_threads_of_their_own_and_they_go_on_relaying() {
    // Busy 1% of a second is enough: steady traffic moves a shard a second.
    let config = isoplane_turn::Config { udp_threads: 4, udp_spread_at_percent: 1, ..loopback_config(true) };
    let server = start(config).await;
    let peer = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut clients = Vec::new();
    for i in 0..8 {
        let mut client = Client::rest(server.udp, "sam", unix_now() + 3600, SECRET).await;
        assert_eq!(client.allocate().await, 0);
        assert_eq!(client.channel_bind(0x4000, peer.local_addr().unwrap()).await, 0);
        relay_both_ways(&client, &peer, i).await;
        clients.push(client);
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let mut round = 0;
    loop {
        let (_, metrics) = http_get(server.http, "/metrics").await;
        if metric(&metrics, "turn_udp_threads") == 4 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "threads now: {}", metric(&metrics, "turn_udp_threads"));
        for (i, client) in clients.iter().enumerate() {
            relay_both_ways(client, &peer, 10 * (round % 9) + i).await;
        }
        round += 1;
    }
    // Every allocation is served where its shard went.
    for (i, client) in clients.iter().enumerate() {
        relay_both_ways(client, &peer, i).await;
    }
    server.stop().await;
}
