//! The core driven with a virtual clock: no sockets, no sleeps.

use super::*;
use crate::core::auth::rest_password;
use crate::proto::attr::decode_error_code;
use crate::proto::integrity::long_term_key;

const REALM: &str = "isoplane";
const RELAY: &str = "127.0.0.1:50000";
const UNIX_START: u64 = 1_800_000_000;

fn config() -> Config {
    Config {
        auth_secrets: vec!["old-secret".into(), "new-secret".into()],
        static_users: vec!["dev:devpass".into()],
        max_allocations_per_user: 2,
        ..Config::default()
    }
}

struct Harness {
    core: TurnCore,
    now: Instant,
    client: ClientAddr,
    username: String,
    key: LongTermKey,
    nonce: String,
    tid: u8,
}

fn client(port: u16) -> ClientAddr {
    ClientAddr { transport: Transport::Udp, remote: SocketAddr::from(([127, 0, 0, 1], port)) }
}

impl Harness {
    fn new(config: Config) -> Harness {
        let now = Instant::now();
        Harness {
            core: TurnCore::new(&config, [7; 32], now, UNIX_START),
            now,
            client: client(40000),
            username: "dev".into(),
            key: long_term_key("dev", REALM, "devpass"),
            nonce: String::new(),
            tid: 0,
        }
    }

    fn advance(&mut self, secs: u64) {
        self.now += Duration::from_secs(secs);
        self.core.handle_timeout(self.now);
    }

    fn use_rest(&mut self, user: &str, expiry: u64, secret: &str) {
        self.username = format!("{expiry}:{user}");
        self.key = long_term_key(&self.username, REALM, &rest_password(secret, &self.username));
    }

    fn outputs(&mut self) -> Vec<Output> {
        std::iter::from_fn(|| self.core.poll_output()).collect()
    }

    fn build(&mut self, method: Method, class: Class, signed: bool, fill: impl FnOnce(&mut MessageBuilder)) -> Vec<u8> {
        self.tid += 1;
        let mut b = MessageBuilder::new(method, class, [self.tid; 12]);
        fill(&mut b);
        if signed {
            b.attr(attr::USERNAME, self.username.as_bytes());
            b.attr(attr::REALM, REALM.as_bytes());
            b.attr(attr::NONCE, self.nonce.as_bytes());
            b.integrity(&self.key);
        }
        b.fingerprint();
        b.finish()
    }

    /// Sends a request and returns the single answer's bytes (or None).
    fn send(&mut self, bytes: &[u8]) -> Option<Vec<u8>> {
        self.core.handle_client(self.now, self.client, bytes);
        let outputs = self.outputs();
        outputs.into_iter().find_map(|o| match o {
            Output::ToClient { data, .. } => Some(data),
            Output::OpenRelay(req) => {
                // The shell binds each family asked for, on port 50000 and 50002.
                let primary = SocketAddr::new(req.ip, RELAY.parse::<SocketAddr>().unwrap().port());
                let bound: Vec<SocketAddr> =
                    std::iter::once(primary).chain(req.additional_ip.map(|ip| SocketAddr::new(ip, 50002))).collect();
                self.core.complete_allocation(self.now, req.allocation, &bound);
                self.outputs().into_iter().find_map(|o| match o {
                    Output::ToClient { data, .. } => Some(data),
                    _ => None,
                })
            }
            _ => None,
        })
    }

    /// Sends a signed request, fetching a nonce first if needed; returns the error code
    /// (0 on success) and the answer.
    fn request(&mut self, method: Method, fill: impl Fn(&mut MessageBuilder)) -> (u16, Vec<u8>) {
        for _ in 0..2 {
            let signed = !self.nonce.is_empty();
            let bytes = self.build(method, Class::Request, signed, |b| {
                fill(b);
                if !signed {
                    // Like real clients, leave room for the 401 (REALM + NONCE).
                    b.attr(attr::SOFTWARE, b"isoplane core test");
                }
            });
            let answer = self.send(&bytes).expect("an answer");
            let m = Message::parse(&answer).unwrap();
            assert_eq!(m.transaction_id, [self.tid; 12]);
            if m.class == Class::Success {
                assert!(crate::proto::integrity::verify_integrity(&m, &self.key), "success must be signed");
                return (0, answer);
            }
            let code = decode_error_code(m.get(attr::ERROR_CODE).unwrap()).unwrap().code;
            if (code == 401 && self.nonce.is_empty()) || code == 438 {
                self.nonce = String::from_utf8(m.get(attr::NONCE).unwrap().to_vec()).unwrap();
                continue;
            }
            return (code, answer);
        }
        panic!("no answer after a nonce retry");
    }

    fn allocate(&mut self) -> u16 {
        self.request(Method::Allocate, |b| {
            b.attr(attr::REQUESTED_TRANSPORT, &[UDP, 0, 0, 0]);
        })
        .0
    }

    fn create_permission(&mut self, peer: &str) -> u16 {
        let peer: SocketAddr = peer.parse().unwrap();
        self.request(Method::CreatePermission, |b| {
            b.xor_address(attr::XOR_PEER_ADDRESS, peer);
        })
        .0
    }

    fn channel_bind(&mut self, channel: u16, peer: &str) -> u16 {
        let peer: SocketAddr = peer.parse().unwrap();
        self.request(Method::ChannelBind, |b| {
            b.attr(attr::CHANNEL_NUMBER, &[(channel >> 8) as u8, channel as u8, 0, 0]);
            b.xor_address(attr::XOR_PEER_ADDRESS, peer);
        })
        .0
    }

    fn refresh(&mut self, lifetime: u32) -> u16 {
        self.request(Method::Refresh, |b| {
            b.u32(attr::LIFETIME, lifetime);
        })
        .0
    }

    fn peer_sends(&mut self, peer: &str, data: &[u8]) -> Option<Vec<u8>> {
        let id = *self.core.by_client.get(&self.client)?;
        self.core.handle_peer(self.now, id, peer.parse().unwrap(), data);
        self.outputs().into_iter().find_map(|o| match o {
            Output::ToClient { data, .. } => Some(data),
            _ => None,
        })
    }

    fn client_sends_indication(&mut self, peer: &str, data: &[u8]) -> Vec<Output> {
        let peer: SocketAddr = peer.parse().unwrap();
        let bytes = self.build(Method::Send, Class::Indication, false, |b| {
            b.xor_address(attr::XOR_PEER_ADDRESS, peer);
            b.attr(attr::DATA, data);
        });
        self.core.handle_client(self.now, self.client, &bytes);
        self.outputs()
    }

    fn client_sends_channel_data(&mut self, channel: u16, data: &[u8]) -> Vec<Output> {
        let mut frame = Vec::new();
        ChannelData::encode(channel, data, false, &mut frame);
        self.core.handle_client(self.now, self.client, &frame);
        self.outputs()
    }
}

fn allowing_public_test_peers() -> Config {
    // 8.8.8.8 stands for a public peer; the core never sends anything, it only decides.
    config()
}

#[test]
fn binding_answers_with_the_mapped_address() {
    let mut h = Harness::new(config());
    let bytes = h.build(Method::Binding, Class::Request, false, |_| {});
    let answer = h.send(&bytes).unwrap();
    let m = Message::parse(&answer).unwrap();
    assert_eq!(m.class, Class::Success);
    let mapped = attr::decode_xor_address(m.get(attr::XOR_MAPPED_ADDRESS).unwrap(), &m.transaction_id);
    assert_eq!(mapped, Some(h.client.remote));
}

#[test]
fn unauthenticated_allocate_gets_a_401_no_larger_than_the_request_or_the_smallest_challenge() {
    let mut h = Harness::new(config());
    // The smallest Allocate coturn's client sends (REQUESTED-TRANSPORT, LIFETIME,
    // REQUESTED-ADDRESS-FAMILY, FINGERPRINT): 52 bytes.
    let bytes = h.build(Method::Allocate, Class::Request, false, |b| {
        b.attr(attr::REQUESTED_TRANSPORT, &[UDP, 0, 0, 0]);
        b.u32(attr::LIFETIME, 777);
        b.attr(attr::REQUESTED_ADDRESS_FAMILY, &[1, 0, 0, 0]);
    });
    assert_eq!(bytes.len(), 52);
    let answer = h.send(&bytes).unwrap();
    assert!(answer.len() <= bytes.len(), "{} > {}", answer.len(), bytes.len());
    let m = Message::parse(&answer).unwrap();
    assert_eq!(decode_error_code(m.get(attr::ERROR_CODE).unwrap()).unwrap().code, 401);
    assert_eq!(m.get(attr::REALM), Some(REALM.as_bytes()));
    assert!(m.has(attr::NONCE));
    assert!(h.core.pending.is_empty() && h.core.allocations.is_empty(), "no state for unauthenticated requests");

    // A bare 28-byte Allocate (what browsers send first) gets the smallest challenge, 52
    // bytes, and still no state.
    let tiny = {
        let mut b = MessageBuilder::new(Method::Allocate, Class::Request, [1; 12]);
        b.attr(attr::REQUESTED_TRANSPORT, &[UDP, 0, 0, 0]);
        b.finish()
    };
    assert_eq!(tiny.len(), 28);
    let challenge = h.send(&tiny).unwrap();
    assert_eq!(challenge.len(), SMALLEST_CHALLENGE);
    let m = Message::parse(&challenge).unwrap();
    assert_eq!(decode_error_code(m.get(attr::ERROR_CODE).unwrap()).unwrap().code, 401);
    assert!(m.has(attr::REALM) && m.has(attr::NONCE));
    assert!(h.core.pending.is_empty() && h.core.allocations.is_empty(), "no state for unauthenticated requests");
}

#[test]
fn static_user_allocates_and_refresh_zero_deletes() {
    let mut h = Harness::new(config());
    assert_eq!(h.allocate(), 0);
    assert_eq!(h.core.allocation_count(), 1);
    assert_eq!(h.refresh(0), 0);
    assert_eq!(h.core.allocation_count(), 0);
    assert_eq!(h.refresh(600), 437, "no allocation left to refresh");
}

#[test]
fn allocate_retransmission_gets_the_same_answer_and_a_new_one_437() {
    let mut h = Harness::new(config());
    h.nonce = {
        let probe = h.build(Method::Allocate, Class::Request, false, |b| {
            b.attr(attr::REQUESTED_TRANSPORT, &[UDP, 0, 0, 0]);
            b.u32(attr::LIFETIME, 600);
            b.attr(attr::REQUESTED_ADDRESS_FAMILY, &[1, 0, 0, 0]);
        });
        let answer = h.send(&probe).unwrap();
        String::from_utf8(Message::parse(&answer).unwrap().get(attr::NONCE).unwrap().to_vec()).unwrap()
    };
    let bytes = h.build(Method::Allocate, Class::Request, true, |b| {
        b.attr(attr::REQUESTED_TRANSPORT, &[UDP, 0, 0, 0]);
    });
    let first = h.send(&bytes).unwrap();
    let again = h.send(&bytes).unwrap();
    assert_eq!(first, again);
    assert_eq!(h.allocate(), 437);
}

#[test]
fn allocation_expires_after_its_lifetime_unless_refreshed() {
    let mut h = Harness::new(config());
    assert_eq!(h.allocate(), 0);
    h.advance(590);
    assert_eq!(h.core.allocation_count(), 1);
    assert_eq!(h.refresh(300), 0, "a shorter refresh is granted as asked");
    h.advance(299);
    assert_eq!(h.core.allocation_count(), 1);
    h.advance(2);
    assert_eq!(h.core.allocation_count(), 0);
    assert!(matches!(&h.outputs()[..], [Output::CloseRelay(_)]), "the relay socket is closed");
}

#[test]
fn lifetime_is_clamped_to_the_maximum() {
    let mut h = Harness::new(config());
    let (code, answer) = h.request(Method::Allocate, |b| {
        b.attr(attr::REQUESTED_TRANSPORT, &[UDP, 0, 0, 0]);
        b.u32(attr::LIFETIME, 100_000);
    });
    assert_eq!(code, 0);
    let m = Message::parse(&answer).unwrap();
    assert_eq!(m.get(attr::LIFETIME).and_then(attr::decode_u32), Some(3600));
    let relayed = attr::decode_xor_address(m.get(attr::XOR_RELAYED_ADDRESS).unwrap(), &m.transaction_id);
    assert_eq!(relayed, Some(RELAY.parse().unwrap()));
}

#[test]
fn permission_lets_data_through_and_expires_after_five_minutes() {
    let mut h = Harness::new(allowing_public_test_peers());
    assert_eq!(h.allocate(), 0);
    assert_eq!(h.peer_sends("8.8.8.8:5000", b"x"), None, "no permission yet");
    assert_eq!(h.create_permission("8.8.8.8:1"), 0);
    let data = h.peer_sends("8.8.8.8:5000", b"hello").expect("a Data indication");
    let m = Message::parse(&data).unwrap();
    assert_eq!((m.method, m.class), (Method::Data, Class::Indication));
    assert_eq!(m.get(attr::DATA), Some(&b"hello"[..]));
    h.advance(299);
    assert!(h.peer_sends("8.8.8.8:5000", b"x").is_some());
    h.advance(2);
    assert_eq!(h.peer_sends("8.8.8.8:5000", b"x"), None, "permission expired");
    assert_eq!(h.create_permission("8.8.8.8:1"), 0, "refresh reinstalls it");
    assert!(h.peer_sends("8.8.8.8:5000", b"x").is_some());
}

#[test]
fn send_indication_needs_a_permission() {
    let mut h = Harness::new(config());
    assert_eq!(h.allocate(), 0);
    assert!(h.client_sends_indication("8.8.8.8:9", b"payload").is_empty());
    assert_eq!(h.create_permission("8.8.8.8:9"), 0);
    let out = h.client_sends_indication("8.8.8.8:9", b"payload");
    assert!(
        matches!(&out[..], [Output::ToPeer { peer, data, .. }] if *peer == "8.8.8.8:9".parse().unwrap() && data == b"payload")
    );
}

/// Moves the virtual clock without running the core's timer, as when a packet arrives
/// between an allocation's expiry and the sweep that removes it.
fn skip_the_timer(h: &mut Harness, secs: u64) {
    h.now += Duration::from_secs(secs);
}

#[test]
fn send_indication_to_an_allocation_expired_but_not_yet_swept_is_refused() {
    let mut h = Harness::new(config());
    assert_eq!(h.allocate(), 0);
    assert_eq!(h.create_permission("8.8.8.8:9"), 0);
    assert_eq!(h.refresh(60), 0);
    skip_the_timer(&mut h, 59);
    assert_eq!(h.client_sends_indication("8.8.8.8:9", b"payload").len(), 1, "still live a second before expiry");
    skip_the_timer(&mut h, 1);
    assert_eq!(h.core.allocation_count(), 1, "the timer has not removed it");
    assert!(
        h.client_sends_indication("8.8.8.8:9", b"payload").is_empty(),
        "expired: nothing is relayed though the permission lives on"
    );
    assert_eq!(h.core.metrics().refusals(Refusal::NoAllocationOrChannel), 1);
    assert_eq!(h.core.metrics().packets_to_peers, 1);
}

#[test]
fn channel_data_to_an_allocation_expired_but_not_yet_swept_is_refused() {
    let mut h = Harness::new(config());
    assert_eq!(h.allocate(), 0);
    assert_eq!(h.channel_bind(0x4000, "8.8.8.8:1000"), 0);
    assert_eq!(h.refresh(60), 0);
    skip_the_timer(&mut h, 59);
    assert_eq!(h.client_sends_channel_data(0x4000, b"up").len(), 1, "still live a second before expiry");
    skip_the_timer(&mut h, 1);
    assert_eq!(h.core.allocation_count(), 1, "the timer has not removed it");
    assert!(h.client_sends_channel_data(0x4000, b"late").is_empty(), "expired: the channel carries nothing");
    assert_eq!(h.core.metrics().refusals(Refusal::NoAllocationOrChannel), 1);
    assert_eq!(h.core.metrics().packets_to_peers, 1);
    assert_eq!(h.peer_sends("8.8.8.8:1000", b"down"), None, "nor does the peer path");
}

#[test]
fn channel_binding_rules() {
    let mut h = Harness::new(config());
    assert_eq!(h.allocate(), 0);
    assert_eq!(h.channel_bind(0x3FFF, "8.8.8.8:1000"), 400, "below the channel range");
    assert_eq!(h.channel_bind(0x8000, "8.8.8.8:1000"), 400, "above the channel range");
    assert_eq!(h.channel_bind(0x4000, "8.8.8.8:1000"), 0);
    assert_eq!(h.channel_bind(0x4000, "8.8.8.8:1000"), 0, "rebinding the same pair refreshes");
    assert_eq!(h.channel_bind(0x4000, "8.8.4.4:1000"), 400, "channel already bound to another peer");
    assert_eq!(h.channel_bind(0x4001, "8.8.8.8:1000"), 400, "peer already bound to another channel");
    assert_eq!(h.channel_bind(0x4001, "8.8.8.8:1001"), 0, "another port is another peer");

    // ChannelData flows both ways.
    let out = h.client_sends_channel_data(0x4000, b"up");
    assert!(matches!(&out[..], [Output::ToPeer { data, .. }] if data == b"up"));
    let down = h.peer_sends("8.8.8.8:1000", b"down").unwrap();
    assert_eq!(ChannelData::parse(&down), Some(ChannelData { channel: 0x4000, data: b"down" }));

    // Refreshing the permission keeps it alive while the channel lasts 10 minutes.
    h.advance(290);
    assert_eq!(h.create_permission("8.8.8.8:1"), 0);
    assert_eq!(h.refresh(600), 0);
    h.advance(311);
    assert!(h.client_sends_channel_data(0x4000, b"late").is_empty(), "channel expired after 10 minutes");
    // Still reserved for 5 more minutes: not rebindable to another peer.
    assert_eq!(h.channel_bind(0x4000, "8.8.4.4:1000"), 400);
    h.advance(200);
    assert_eq!(h.refresh(600), 0);
    h.advance(200);
    assert_eq!(h.channel_bind(0x4000, "8.8.4.4:1000"), 0, "free again after the cool-down");
}

#[test]
fn refused_peers_get_403_and_allow_list_overrides() {
    let mut h = Harness::new(config());
    assert_eq!(h.allocate(), 0);
    for peer in ["127.0.0.1:9", "10.0.0.1:9", "169.254.169.254:80", "[::ffff:127.0.0.1]:9", "[64:ff9b::7f00:1]:9"] {
        assert_eq!(h.create_permission(peer), 403, "{peer}");
        assert_eq!(h.channel_bind(0x4000, peer), 403, "{peer}");
    }
    assert_eq!(h.create_permission("[2a00:1450::1]:9"), 443, "IPv6 peer on an IPv4 relay");

    let mut dev = Harness::new(Config { allowed_peers: vec!["127.0.0.1/32".parse().unwrap()], ..config() });
    assert_eq!(dev.allocate(), 0);
    assert_eq!(dev.create_permission("127.0.0.1:9"), 0);
    assert_eq!(dev.create_permission("127.0.0.2:9"), 403);
}

#[test]
fn rest_credentials_with_rotation_and_expiry() {
    for secret in ["old-secret", "new-secret"] {
        let mut h = Harness::new(config());
        h.use_rest("alice", UNIX_START + 3600, secret);
        assert_eq!(h.allocate(), 0, "secret {secret}");
    }
    let mut h = Harness::new(config());
    h.use_rest("alice", UNIX_START + 3600, "unknown-secret");
    assert_eq!(h.allocate(), 401);
    let mut h = Harness::new(config());
    h.use_rest("alice", UNIX_START - 1, "new-secret");
    assert_eq!(h.allocate(), 401, "expired username");
    assert_eq!(h.core.metrics().auth_failures, 1);

    // A credential that expires while its allocation lives stops refreshing it.
    let mut h = Harness::new(config());
    h.use_rest("alice", UNIX_START + 100, "new-secret");
    assert_eq!(h.allocate(), 0);
    h.advance(101);
    assert_eq!(h.refresh(600), 401);
}

#[test]
fn stale_nonce_gets_438_then_works() {
    let mut h = Harness::new(config());
    assert_eq!(h.allocate(), 0);
    assert_eq!(h.refresh(3600), 0);
    let nonce = h.nonce.clone();
    h.advance(700);
    h.nonce = nonce.clone();
    assert_eq!(h.refresh(600), 0, "the helper retried after 438");
    assert_ne!(h.nonce, nonce);
    assert_eq!(h.core.metrics().stale_nonces, 1);
}

#[test]
fn per_user_and_total_quotas_give_486() {
    let mut h = Harness::new(config());
    for port in [1, 2] {
        h.client = client(port);
        assert_eq!(h.allocate(), 0);
    }
    h.client = client(3);
    assert_eq!(h.allocate(), 486);
    // Freeing one allocation frees quota.
    h.client = client(1);
    assert_eq!(h.refresh(0), 0);
    h.client = client(3);
    assert_eq!(h.allocate(), 0);

    let mut h = Harness::new(Config { max_allocations_total: 1, ..config() });
    assert_eq!(h.allocate(), 0);
    h.client = client(2);
    h.use_rest("bob", UNIX_START + 60, "new-secret");
    assert_eq!(h.allocate(), 486);
}

#[test]
fn bandwidth_cap_drops_excess() {
    let mut h = Harness::new(Config { bandwidth_bytes_per_sec: 1000, ..config() });
    assert_eq!(h.allocate(), 0);
    assert_eq!(h.channel_bind(0x4000, "8.8.8.8:1000"), 0);
    let big = [0u8; 600];
    assert_eq!(h.client_sends_channel_data(0x4000, &big).len(), 1);
    assert!(h.client_sends_channel_data(0x4000, &big).is_empty(), "over 1000 B/s");
    h.now += Duration::from_secs(1);
    assert_eq!(h.client_sends_channel_data(0x4000, &big).len(), 1);
    assert_eq!(h.core.metrics().refusals(Refusal::Bandwidth), 1);
}

#[test]
fn garbage_is_counted_and_ignored() {
    let mut h = Harness::new(config());
    for bytes in [&b""[..], &[0xFF; 40], &[0x00, 0x01, 0x00], &[0x40, 0x00, 0xFF, 0xFF, 1]] {
        h.core.handle_client(h.now, h.client, bytes);
    }
    assert!(h.outputs().is_empty());
    assert_eq!(h.core.metrics().refusals(Refusal::Malformed), 4);
}

#[test]
fn shutdown_closes_every_allocation() {
    let mut h = Harness::new(config());
    assert_eq!(h.allocate(), 0);
    h.core.shutdown();
    assert!(matches!(&h.outputs()[..], [Output::CloseRelay(_)]));
    assert_eq!(h.core.allocation_count(), 0);
}

#[test]
fn tcp_client_gets_padded_channel_data() {
    let mut h = Harness::new(config());
    h.client = ClientAddr { transport: Transport::Tcp, remote: "127.0.0.1:7000".parse().unwrap() };
    assert_eq!(h.allocate(), 0);
    assert_eq!(h.channel_bind(0x4000, "8.8.8.8:1000"), 0);
    let down = h.peer_sends("8.8.8.8:1000", b"abcde").unwrap();
    assert_eq!(down.len(), 12);
    h.core.handle_client_closed(h.client);
    assert_eq!(h.core.allocation_count(), 0);
}

#[test]
fn allocate_from_a_taken_five_tuple_under_another_user_gets_437() {
    let mut h = Harness::new(config());
    assert_eq!(h.allocate(), 0);
    h.use_rest("alice", UNIX_START + 3600, "new-secret");
    assert_eq!(h.allocate(), 437);
    assert_eq!(h.refresh(600), 441, "other requests must use the allocation's username");
}

#[test]
fn cores_sharing_a_ledger_share_quotas_and_reservations() {
    let config = Config { max_allocations_per_user: 2, ..config() };
    let ledger = Arc::new(Ledger::default());
    let mut a = Harness::new(config.clone());
    a.core = TurnCore::sharded(&config, [7; 32], a.now, UNIX_START, ledger.clone(), 0);
    let mut b = Harness::new(config.clone());
    b.core = TurnCore::sharded(&config, [7; 32], b.now, UNIX_START, ledger.clone(), 1);

    // One allocation on each core: the user's third, on either, is over quota.
    assert_eq!(a.allocate(), 0);
    b.client = client(40001);
    assert_eq!(b.allocate(), 0);
    // A nonce one core gave is good at the other: answered at once, with the quota.
    a.client = client(40002);
    a.nonce = b.nonce.clone();
    let bytes = a.build(Method::Allocate, Class::Request, true, |m| {
        m.attr(attr::REQUESTED_TRANSPORT, &[UDP, 0, 0, 0]);
    });
    let answer = a.send(&bytes).expect("an answer");
    let code = decode_error_code(Message::parse(&answer).unwrap().get(attr::ERROR_CODE).unwrap()).unwrap().code;
    assert_eq!(code, 486);
    assert_eq!(ledger.total(), 2);
    a.client = client(40000);
    assert_eq!(a.refresh(0), 0);
    assert_eq!(ledger.total(), 1, "the allocation that ended is counted off everywhere");
    assert_eq!(b.refresh(0), 0);

    // A port reserved on one core is claimed through the other; IDs (and so tokens) differ.
    let (code, answer) = a.request(Method::Allocate, |m| {
        m.attr(attr::REQUESTED_TRANSPORT, &[UDP, 0, 0, 0]);
        m.attr(attr::EVEN_PORT, &[0x80]);
    });
    assert_eq!(code, 0);
    let token: ReservationToken =
        Message::parse(&answer).unwrap().get(attr::RESERVATION_TOKEN).unwrap().try_into().unwrap();
    b.client = client(40003);
    let bytes = b.build(Method::Allocate, Class::Request, true, |m| {
        m.attr(attr::REQUESTED_TRANSPORT, &[UDP, 0, 0, 0]);
        m.attr(attr::RESERVATION_TOKEN, &token);
    });
    b.core.handle_client(b.now, b.client, &bytes);
    let out = b.outputs();
    assert!(
        matches!(&out[..], [Output::OpenRelay(RelayRequest { use_reservation: Some(t), allocation, .. })]
            if *t == token && allocation.0 >> 56 == 1),
        "{out:?}"
    );
    // Claimed: when its time is up, the core that reserved it leaves the port alone.
    a.advance(31);
    assert!(!a.outputs().iter().any(|o| matches!(o, Output::DropReservation(_))));
}

#[test]
fn even_port_reservation_hands_the_next_port_to_a_token() {
    let mut h = Harness::new(Config { max_allocations_per_user: 10, ..config() });
    let (code, answer) = h.request(Method::Allocate, |b| {
        b.attr(attr::REQUESTED_TRANSPORT, &[UDP, 0, 0, 0]);
        b.attr(attr::EVEN_PORT, &[0x80]);
    });
    assert_eq!(code, 0);
    let m = Message::parse(&answer).unwrap();
    let token: ReservationToken = m.get(attr::RESERVATION_TOKEN).unwrap().try_into().unwrap();

    // A second client claims the reserved port with the token.
    h.client = client(40001);
    h.nonce.clear();
    let claim = |h: &mut Harness, with_even_port: bool| {
        let signed = !h.nonce.is_empty();
        let bytes = h.build(Method::Allocate, Class::Request, signed, |b| {
            b.attr(attr::REQUESTED_TRANSPORT, &[UDP, 0, 0, 0]);
            b.attr(attr::RESERVATION_TOKEN, &token);
            if with_even_port {
                b.attr(attr::EVEN_PORT, &[0]);
            }
            b.attr(attr::SOFTWARE, b"room for the 401 answer");
        });
        h.core.handle_client(h.now, h.client, &bytes);
        h.outputs()
    };
    let challenge = claim(&mut h, false);
    let Some(Output::ToClient { data, .. }) = challenge.first() else { panic!("401 expected") };
    h.nonce = String::from_utf8(Message::parse(data).unwrap().get(attr::NONCE).unwrap().to_vec()).unwrap();
    let bad = claim(&mut h, true);
    let Some(Output::ToClient { data, .. }) = bad.first() else { panic!("400 expected") };
    let code = decode_error_code(Message::parse(data).unwrap().get(attr::ERROR_CODE).unwrap()).unwrap().code;
    assert_eq!(code, 400, "RESERVATION-TOKEN with EVEN-PORT");
    let out = claim(&mut h, false);
    assert!(
        matches!(&out[..], [Output::OpenRelay(RelayRequest { use_reservation: Some(t), .. })] if *t == token),
        "{out:?}"
    );

    // A token is single-use and lasts 30 s.
    h.client = client(40002);
    h.nonce.clear();
    let (code, answer) = h.request(Method::Allocate, |b| {
        b.attr(attr::REQUESTED_TRANSPORT, &[UDP, 0, 0, 0]);
        b.attr(attr::EVEN_PORT, &[0x80]);
    });
    assert_eq!(code, 0);
    let second: ReservationToken =
        Message::parse(&answer).unwrap().get(attr::RESERVATION_TOKEN).unwrap().try_into().unwrap();
    assert_ne!(second, token);
    h.advance(31);
    assert!(h.outputs().contains(&Output::DropReservation(second)), "the shell is told to close the port");
    assert!(!h.core.reservations.contains_key(&second));
}

// ----- address families (RFC 8656 §7.2) ---------------------------------------------

fn dual_stack_config() -> Config {
    Config { relay_ip_v6: Some("::1".parse().unwrap()), ..config() }
}

fn allocate_with(h: &mut Harness, fill: impl Fn(&mut MessageBuilder)) -> (u16, Vec<u8>) {
    h.request(Method::Allocate, |b| {
        b.attr(attr::REQUESTED_TRANSPORT, &[UDP, 0, 0, 0]);
        fill(b);
    })
}

fn relayed_addresses(answer: &[u8]) -> Vec<SocketAddr> {
    let m = Message::parse(answer).unwrap();
    m.attributes()
        .filter(|a| a.kind == attr::XOR_RELAYED_ADDRESS)
        .filter_map(|a| attr::decode_xor_address(a.value, &m.transaction_id))
        .collect()
}

fn address_errors(answer: &[u8]) -> Vec<(u8, u16)> {
    let m = Message::parse(answer).unwrap();
    m.attributes()
        .filter(|a| a.kind == attr::ADDRESS_ERROR_CODE)
        .filter_map(|a| attr::decode_address_error_code(a.value))
        .map(|(family, error)| (family, error.code))
        .collect()
}

const IPV4: [u8; 4] = [attr::FAMILY_V4, 0, 0, 0];
const IPV6: [u8; 4] = [attr::FAMILY_V6, 0, 0, 0];

#[test]
fn a_dual_allocation_gets_an_ipv4_and_an_ipv6_relayed_address() {
    let mut h = Harness::new(dual_stack_config());
    let (code, answer) = allocate_with(&mut h, |b| {
        b.attr(attr::ADDITIONAL_ADDRESS_FAMILY, &IPV6);
    });
    assert_eq!(code, 0);
    let relayed: Vec<String> = relayed_addresses(&answer).iter().map(ToString::to_string).collect();
    assert_eq!(relayed, ["127.0.0.1:50000", "[::1]:50002"]);
    assert!(address_errors(&answer).is_empty());
    // Peers of either family may be given permissions; each family's data leaves by its own socket.
    assert_eq!(h.create_permission("[2001:db8::9]:3000"), 403, "the documentation range is refused");
    let mut open = Harness::new(Config {
        allowed_peers: vec!["::1/128".parse().unwrap(), "127.0.0.1/32".parse().unwrap()],
        ..dual_stack_config()
    });
    assert_eq!(
        allocate_with(&mut open, |b| {
            b.attr(attr::ADDITIONAL_ADDRESS_FAMILY, &IPV6);
        })
        .0,
        0
    );
    assert_eq!(open.create_permission("[::1]:3000"), 0);
    assert_eq!(open.create_permission("127.0.0.1:3000"), 0);
    assert_eq!(open.channel_bind(0x4001, "[::1]:3000"), 0);
}

#[test]
fn an_ipv6_allocation_relays_only_ipv6_peers() {
    let allowed = vec!["::1/128".parse().unwrap(), "127.0.0.1/32".parse().unwrap()];
    let mut h = Harness::new(Config { allowed_peers: allowed, ..dual_stack_config() });
    let (code, answer) = allocate_with(&mut h, |b| {
        b.attr(attr::REQUESTED_ADDRESS_FAMILY, &IPV6);
    });
    assert_eq!(code, 0);
    assert_eq!(relayed_addresses(&answer), ["[::1]:50000".parse().unwrap()]);
    assert_eq!(h.create_permission("127.0.0.1:3000"), 443, "Peer Address Family Mismatch");
    assert_eq!(h.create_permission("[::1]:3000"), 0);
}

#[test]
fn families_the_server_does_not_relay_are_refused_or_reported() {
    // IPv4 only: IPv6 alone is 440; a dual request gets its IPv4 half and ADDRESS-ERROR-CODE 440.
    let mut h = Harness::new(config());
    assert_eq!(
        allocate_with(&mut h, |b| {
            b.attr(attr::REQUESTED_ADDRESS_FAMILY, &IPV6);
        })
        .0,
        440
    );
    let (code, answer) = allocate_with(&mut h, |b| {
        b.attr(attr::ADDITIONAL_ADDRESS_FAMILY, &IPV6);
    });
    assert_eq!(code, 0);
    assert_eq!(relayed_addresses(&answer), [RELAY.parse().unwrap()]);
    assert_eq!(address_errors(&answer), [(attr::FAMILY_V6, 440)]);
}

#[test]
fn contradictory_family_requests_get_400() {
    let mut h = Harness::new(dual_stack_config());
    let both = allocate_with(&mut h, |b| {
        b.attr(attr::REQUESTED_ADDRESS_FAMILY, &IPV4);
        b.attr(attr::ADDITIONAL_ADDRESS_FAMILY, &IPV6);
    });
    assert_eq!(both.0, 400);
    assert_eq!(
        allocate_with(&mut h, |b| {
            b.attr(attr::ADDITIONAL_ADDRESS_FAMILY, &IPV4);
        })
        .0,
        400
    );
    assert_eq!(
        allocate_with(&mut h, |b| {
            b.attr(attr::REQUESTED_ADDRESS_FAMILY, &[3, 0, 0, 0]);
        })
        .0,
        400
    );
    let dual_reserving = allocate_with(&mut h, |b| {
        b.attr(attr::ADDITIONAL_ADDRESS_FAMILY, &IPV6);
        b.attr(attr::EVEN_PORT, &[0x80]);
    });
    assert_eq!(dual_reserving.0, 400);
    let token_and_family = allocate_with(&mut h, |b| {
        b.attr(attr::REQUESTED_ADDRESS_FAMILY, &IPV4);
        b.attr(attr::RESERVATION_TOKEN, &[1; 8]);
    });
    assert_eq!(token_and_family.0, 400);
    // Nothing was allocated by any of them.
    assert_eq!(h.core.allocation_count(), 0);
}

#[test]
fn a_refresh_with_a_family_ends_that_half_of_a_dual_allocation() {
    let allowed = vec!["::1/128".parse().unwrap(), "127.0.0.1/32".parse().unwrap()];
    let mut h = Harness::new(Config { allowed_peers: allowed, ..dual_stack_config() });
    assert_eq!(
        allocate_with(&mut h, |b| {
            b.attr(attr::ADDITIONAL_ADDRESS_FAMILY, &IPV6);
        })
        .0,
        0
    );
    assert_eq!(h.create_permission("[::1]:3000"), 0);
    let refresh = h.build(Method::Refresh, Class::Request, true, |b| {
        b.u32(attr::LIFETIME, 0);
        b.attr(attr::REQUESTED_ADDRESS_FAMILY, &IPV6);
    });
    h.core.handle_client(h.now, h.client, &refresh);
    let out = h.outputs();
    let answered = out.iter().find_map(|o| match o {
        Output::ToClient { data, .. } => Message::parse(data).ok().map(|m| m.class),
        _ => None,
    });
    assert_eq!(answered, Some(Class::Success));
    assert!(out.iter().any(|o| matches!(o, Output::CloseRelayFamily { family: Family::V6, .. })));
    assert!(!out.iter().any(|o| matches!(o, Output::CloseRelay(_))), "the IPv4 half goes on");
    assert_eq!(h.core.allocation_count(), 1);
    assert_eq!(h.create_permission("[::1]:3000"), 443, "no IPv6 half any more");
    assert_eq!(h.create_permission("127.0.0.1:3000"), 0);
    // A family the allocation no longer has: 443; without one, LIFETIME 0 ends it all.
    let (code, _) = h.request(Method::Refresh, |b| {
        b.u32(attr::LIFETIME, 0);
        b.attr(attr::REQUESTED_ADDRESS_FAMILY, &IPV6);
    });
    assert_eq!(code, 443);
    let (code, _) = h.request(Method::Refresh, |b| {
        b.u32(attr::LIFETIME, 0);
    });
    assert_eq!(code, 0);
    assert_eq!(h.core.allocation_count(), 0);
}

// ----- RFC 6062 TCP allocations -------------------------------------------------------

fn tcp_client(port: u16) -> ClientAddr {
    ClientAddr { transport: Transport::Tcp, remote: SocketAddr::from(([127, 0, 0, 1], port)) }
}

const TCP_TRANSPORT: [u8; 4] = [6, 0, 0, 0];

/// A TCP control connection with a TCP allocation, allowed to reach 127.0.0.1.
fn tcp_allocation() -> Harness {
    let mut h = Harness::new(Config { allowed_peers: vec!["127.0.0.1/32".parse().unwrap()], ..config() });
    h.client = tcp_client(41000);
    let (code, _) = h.request(Method::Allocate, |b| {
        b.attr(attr::REQUESTED_TRANSPORT, &TCP_TRANSPORT);
    });
    assert_eq!(code, 0);
    h
}

/// Sends a signed request on `client` and returns every output.
fn signed(h: &mut Harness, client: ClientAddr, method: Method, fill: impl FnOnce(&mut MessageBuilder)) -> Vec<Output> {
    let bytes = h.build(method, Class::Request, true, fill);
    h.core.handle_client(h.now, client, &bytes);
    h.outputs()
}

/// The answers to a client in `outputs`: (class, error code or 0, CONNECTION-ID).
fn answers(outputs: &[Output]) -> Vec<(Class, u16, Option<u32>)> {
    outputs
        .iter()
        .filter_map(|o| match o {
            Output::ToClient { data, .. } => Message::parse(data).ok().map(|m| {
                let code = m.get(attr::ERROR_CODE).and_then(decode_error_code).map_or(0, |e| e.code);
                (m.class, code, m.get(attr::CONNECTION_ID).and_then(attr::decode_u32))
            }),
            _ => None,
        })
        .collect()
}

fn connect(h: &mut Harness, peer: &str) -> Vec<Output> {
    let peer: SocketAddr = peer.parse().unwrap();
    let client = h.client;
    signed(h, client, Method::Connect, |b| {
        b.xor_address(attr::XOR_PEER_ADDRESS, peer);
    })
}

fn dialled(outputs: &[Output]) -> ConnectionId {
    outputs
        .iter()
        .find_map(|o| match o {
            Output::ConnectPeer { connection, .. } => Some(*connection),
            _ => None,
        })
        .expect("the shell is asked to dial")
}

#[test]
fn tcp_allocations_need_a_tcp_control_connection_and_have_no_channels() {
    let mut h = Harness::new(config());
    let over_udp = h.request(Method::Allocate, |b| {
        b.attr(attr::REQUESTED_TRANSPORT, &TCP_TRANSPORT);
    });
    assert_eq!(over_udp.0, 400);
    let mut h = tcp_allocation();
    assert_eq!(h.channel_bind(0x4001, "127.0.0.1:7000"), 400);
    // Connect is for TCP allocations only, and checks the peer policy.
    assert_eq!(answers(&connect(&mut h, "198.51.100.1:80")), [(Class::Error, 403, None)]);
}

#[test]
fn a_connect_is_answered_once_the_peer_accepts_or_fails() {
    let mut h = tcp_allocation();
    let first = dialled(&connect(&mut h, "127.0.0.1:7000"));
    // The same peer again while dialling: 446.
    assert_eq!(answers(&connect(&mut h, "127.0.0.1:7000")), [(Class::Error, 446, None)]);
    h.core.peer_connected(h.now, first, false);
    assert_eq!(answers(&h.outputs()), [(Class::Error, 447, None)]);
    // Dialled again, and this time it answers: the success names the connection.
    let second = dialled(&connect(&mut h, "127.0.0.1:7000"));
    h.core.peer_connected(h.now, second, true);
    assert_eq!(answers(&h.outputs()), [(Class::Success, 0, Some(second))]);
}

#[test]
fn connection_bind_joins_the_owners_new_connection_and_nobody_elses() {
    let mut h = tcp_allocation();
    let connection = dialled(&connect(&mut h, "127.0.0.1:7000"));
    h.core.peer_connected(h.now, connection, true);
    h.outputs();
    let bind = |h: &mut Harness, client: ClientAddr, id: u32| {
        signed(h, client, Method::ConnectionBind, |b| {
            b.u32(attr::CONNECTION_ID, id);
        })
    };
    // Not over the control connection itself, not an unknown ID.
    let control = h.client;
    assert_eq!(answers(&bind(&mut h, control, connection)), [(Class::Error, 400, None)]);
    assert_eq!(answers(&bind(&mut h, tcp_client(41001), connection + 7)), [(Class::Error, 400, None)]);
    // Another user with valid credentials of their own: 400.
    let (username, key) = (h.username.clone(), h.key);
    h.use_rest("mallory", UNIX_START + 3600, "new-secret");
    assert_eq!(answers(&bind(&mut h, tcp_client(41002), connection)), [(Class::Error, 400, None)]);
    (h.username, h.key) = (username, key);
    let out = bind(&mut h, tcp_client(41003), connection);
    assert_eq!(answers(&out), [(Class::Success, 0, None)]);
    assert!(out.contains(&Output::BindData { connection, client: tcp_client(41003) }));
    // Bound once: a second bind of it fails.
    assert_eq!(answers(&bind(&mut h, tcp_client(41004), connection)), [(Class::Error, 400, None)]);
    // The data connection closing ends the peer connection.
    h.core.handle_client_closed(tcp_client(41003));
    assert!(h.outputs().contains(&Output::ClosePeerConnection(connection)));
}

#[test]
fn an_unbound_peer_connection_is_closed_after_30_seconds() {
    let mut h = tcp_allocation();
    let connection = dialled(&connect(&mut h, "127.0.0.1:7000"));
    h.core.peer_connected(h.now, connection, true);
    h.outputs();
    h.advance(29);
    assert!(!h.outputs().contains(&Output::ClosePeerConnection(connection)));
    h.advance(2);
    assert!(h.outputs().contains(&Output::ClosePeerConnection(connection)));
}

#[test]
fn peers_dial_in_only_with_a_permission_and_the_client_is_told() {
    let mut h = tcp_allocation();
    let allocation = AllocationId(1);
    let peer: SocketAddr = "127.0.0.1:7100".parse().unwrap();
    assert_eq!(h.core.handle_peer_connection(h.now, allocation, peer), None, "no permission yet");
    assert_eq!(h.create_permission("127.0.0.1:1"), 0);
    let connection = h.core.handle_peer_connection(h.now, allocation, peer).expect("admitted");
    let out = h.outputs();
    let attempt = out
        .iter()
        .find_map(|o| match o {
            Output::ToClient { client, data } if *client == h.client => Message::parse(data).ok().map(|m| {
                let from = m.get(attr::XOR_PEER_ADDRESS).and_then(|v| attr::decode_xor_address(v, &m.transaction_id));
                (m.method, m.class, from, m.get(attr::CONNECTION_ID).and_then(attr::decode_u32))
            }),
            _ => None,
        })
        .expect("a ConnectionAttempt");
    assert_eq!(attempt, (Method::ConnectionAttempt, Class::Indication, Some(peer), Some(connection)));
    // The control connection closing ends the allocation and its peer connections.
    h.core.handle_client_closed(h.client);
    let out = h.outputs();
    assert!(out.contains(&Output::ClosePeerConnection(connection)));
    assert!(out.contains(&Output::CloseRelay(allocation)));
}

#[test]
fn an_allocation_holds_at_most_64_peer_connections() {
    let mut h = tcp_allocation();
    for port in 0..64 {
        let connection = dialled(&connect(&mut h, &format!("127.0.0.1:{}", 7000 + port)));
        h.core.peer_connected(h.now, connection, true);
    }
    h.outputs();
    assert_eq!(answers(&connect(&mut h, "127.0.0.1:9000")), [(Class::Error, 508, None)]);
    assert_eq!(h.create_permission("127.0.0.1:1"), 0);
    let peer: SocketAddr = "127.0.0.1:9100".parse().unwrap();
    assert_eq!(
        h.core.handle_peer_connection(h.now, AllocationId(1), peer),
        None,
        "full: a peer dialling in is refused too"
    );
    // Once their bind wait runs out, there is room again: the shell is asked to dial.
    h.advance(31);
    let out = connect(&mut h, "127.0.0.1:9000");
    assert!(out.iter().any(|o| matches!(o, Output::ConnectPeer { .. })), "{out:?}");
}
