//! The TURN server as a sans-IO state machine: bytes and time in, [`Output`]s out.
//!
//! The shell calls one `handle_*` method per event (a datagram or frame from a client, a
//! datagram from a peer on a relay socket, a relay socket bound, a timer), then drains
//! [`TurnCore::poll_output`]. Nothing here reads a clock, opens a socket or spawns.
//!
//! Invariants:
//! - An allocation exists only after its Allocate request authenticated, passed the
//!   quotas, and the shell bound its relay socket ([`TurnCore::complete_allocation`]).
//! - Every [`Output::OpenRelay`] is answered by exactly one `complete_allocation`, and
//!   every allocation ends with exactly one [`Output::CloseRelay`]. A port reserved for
//!   a RESERVATION-TOKEN is either claimed by one later Allocate or dropped with
//!   [`Output::DropReservation`].
//! - Unauthenticated requests leave no state behind (nonces are stateless), and over UDP
//!   their answers are never larger than they were, or not sent at all.
//! - Data reaches a peer only with a live permission for its IP, and a permission exists
//!   only for an address the peer policy allows.

/// Size of the smallest 401 challenge: header, ERROR-CODE without a reason, REALM of up to
/// 8 bytes and an 8-byte NONCE. Unauthenticated UDP requests get answers no larger than
/// themselves or this, whichever is larger: at most 52 / 28 ≈ 1.9 times a request, and
/// no state is kept for them.
pub const SMALLEST_CHALLENGE: usize = 52;

pub mod allocation;
pub mod auth;
pub mod family;
pub mod ledger;
pub mod metrics;
pub mod peer_connections;
pub mod policy;
mod tcp_allocations;

use crate::config::{Cidr, Config};
use crate::proto::attr;
use crate::proto::channel_data::{ChannelData, MAX_CHANNEL, MIN_CHANNEL};
use crate::proto::integrity::{LongTermKey, verify_fingerprint};
use crate::proto::{Class, Message, MessageBuilder, Method, TransactionId};
pub use allocation::AllocationId;
use allocation::{Admission, Allocation, Direction, TokenBucket};
use auth::{Auth, Authenticated, NonceCheck};
pub use family::Family;
use family::RelayIps;
pub use ledger::Ledger;
pub use metrics::{Metrics, Refusal};
pub use peer_connections::ConnectionId;
use peer_connections::PeerConnections;
use policy::{PeerVerdict, check_peer};
use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A map on the packet path keyed by what the relay numbers itself (allocation IDs,
/// channel numbers within the range, sockets): a fast hash. Maps keyed by addresses a
/// client chooses keep std's keyed SipHash, which resists collisions made on purpose.
pub type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// How often expired permissions and channels are swept while allocations exist.
const SWEEP_INTERVAL: Duration = Duration::from_secs(30);
const UDP: u8 = 17;
const MAX_USERNAME: usize = 513;
const MAX_REALM_OR_NONCE: usize = 763;
/// How long a port reserved by EVEN-PORT's R bit waits for its RESERVATION-TOKEN.
const RESERVATION_LIFETIME: Duration = Duration::from_secs(30);

/// The 8-byte RESERVATION-TOKEN naming a reserved relay port.
pub type ReservationToken = [u8; 8];

/// The client transport of a 5-tuple.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Transport {
    Udp = 0,
    Tcp = 1,
    /// TURNS: TLS over TCP (framing as TCP).
    Tls = 2,
    /// TURN over DTLS (RFC 7350): one message per record, as over UDP.
    Dtls = 3,
}

impl Transport {
    /// A byte stream (TCP, TLS): messages are framed, ChannelData padded to 4 bytes.
    pub fn is_stream(self) -> bool {
        matches!(self, Transport::Tcp | Transport::Tls)
    }
}

/// A client as the server sees it: transport and remote address (our local address per
/// transport is fixed, so this identifies the 5-tuple).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientAddr {
    pub transport: Transport,
    pub remote: SocketAddr,
}

/// The shell must bind a relay socket on `ip` (an even port if asked), and one on
/// `additional_ip` for a dual allocation, then call [`TurnCore::complete_allocation`] with
/// what it bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RelayRequest {
    pub allocation: AllocationId,
    pub ip: IpAddr,
    /// The second family of a dual allocation (bound on any free port of the range).
    pub additional_ip: Option<IpAddr>,
    /// An RFC 6062 TCP allocation: a TCP listener instead of a UDP socket.
    pub tcp: bool,
    pub even_port: bool,
    /// EVEN-PORT with the R bit: also bind the next port and keep it under this token.
    pub reserve_next: Option<ReservationToken>,
    /// Use the socket kept under this token instead of binding one.
    pub use_reservation: Option<ReservationToken>,
}

/// What the core asks the shell to do.
#[derive(Debug, PartialEq, Eq)]
pub enum Output {
    /// Send to a client on the transport it came from (a UDP datagram or a TCP frame).
    ToClient { client: ClientAddr, data: Vec<u8> },
    /// Send a datagram from the allocation's relay socket to a peer.
    ToPeer { allocation: AllocationId, peer: SocketAddr, data: Vec<u8> },
    /// Bind a relay socket.
    OpenRelay(RelayRequest),
    /// Close the allocation's relay sockets.
    CloseRelay(AllocationId),
    /// Close one family's relay socket of a dual allocation (the other goes on).
    CloseRelayFamily { allocation: AllocationId, family: Family },
    /// Dial `peer` over TCP from the TCP allocation's relayed address, then call
    /// [`TurnCore::peer_connected`].
    ConnectPeer { allocation: AllocationId, connection: ConnectionId, peer: SocketAddr },
    /// From now on, pipe the peer connection and the client's data connection together.
    BindData { connection: ConnectionId, client: ClientAddr },
    /// Close a peer connection (its bind wait ran out, or its allocation ended).
    ClosePeerConnection(ConnectionId),
    /// Close the socket kept under this token (its reservation expired).
    DropReservation(ReservationToken),
}

/// An authenticated Allocate waiting for its relay socket.
#[derive(Debug)]
struct Pending {
    request: Request,
    username: String,
    auth: Authenticated,
    lifetime: Duration,
    reserve_next: Option<ReservationToken>,
    /// The families asked for, and whether this server relays each.
    families: Vec<(Family, bool)>,
    /// The attribute that tells a dual allocation's client of a family it did not get: the
    /// RFC's, or the draft's when the client asked with the draft's number.
    address_error_attribute: u16,
    tcp: bool,
}

/// What a response needs to know about its request.
#[derive(Debug, Clone, Copy)]
struct Request {
    client: ClientAddr,
    method: Method,
    transaction_id: TransactionId,
    len: usize,
    fingerprint: bool,
}

/// The server state.
#[derive(Debug)]
pub struct TurnCore {
    auth: Auth,
    allowed_peers: Vec<Cidr>,
    relays: RelayIps,
    software: Option<String>,
    default_lifetime: Duration,
    max_lifetime: Duration,
    max_per_user: u32,
    max_total: u32,
    bandwidth: u64,
    start: Instant,
    unix_at_start: u64,
    allocations: FastMap<AllocationId, Allocation>,
    by_client: HashMap<ClientAddr, AllocationId>,
    pending: HashMap<AllocationId, Pending>,
    pending_by_client: HashMap<ClientAddr, AllocationId>,
    /// Quotas and reservations, shared with the server's other cores.
    ledger: Arc<Ledger>,
    /// The reservations this core made, and when each lapses (it lets their ports go).
    reservations: HashMap<ReservationToken, Instant>,
    peer_connections: PeerConnections,
    next_id: u64,
    outputs: VecDeque<Output>,
    next_timeout: Option<Instant>,
    shutting_down: bool,
    metrics: Metrics,
}

impl TurnCore {
    /// A core started at `now`, when the wall clock read `unix_now` (REST expiry needs it).
    /// `nonce_key` must be random per process (the shell draws it).
    pub fn new(config: &Config, nonce_key: [u8; 32], now: Instant, unix_now: u64) -> TurnCore {
        TurnCore::sharded(config, nonce_key, now, unix_now, Arc::new(Ledger::default()), 0)
    }

    /// One of a server's cores: each serves its own clients, all share `ledger` and
    /// `nonce_key` (a nonce one core gave is good at another), and allocation IDs (and the
    /// reservation tokens made from them) never collide because each starts in the
    /// `shard`'s own range.
    pub fn sharded(
        config: &Config,
        nonce_key: [u8; 32],
        now: Instant,
        unix_now: u64,
        ledger: Arc<Ledger>,
        shard: u8,
    ) -> TurnCore {
        let users = config.static_user_pairs().map(|(u, p)| (u.to_string(), p.to_string()));
        TurnCore {
            auth: Auth::new(&config.realm, &config.auth_secrets, users, nonce_key, config.nonce_lifetime_secs),
            allowed_peers: config.allowed_peers.clone(),
            relays: RelayIps::from_config(config),
            software: config.software.clone(),
            default_lifetime: Duration::from_secs(config.default_lifetime_secs.into()),
            max_lifetime: Duration::from_secs(config.max_lifetime_secs.into()),
            max_per_user: config.max_allocations_per_user,
            max_total: config.max_allocations_total,
            bandwidth: config.bandwidth_bytes_per_sec,
            start: now,
            unix_at_start: unix_now,
            allocations: FastMap::default(),
            by_client: HashMap::new(),
            pending: HashMap::new(),
            pending_by_client: HashMap::new(),
            ledger,
            reservations: HashMap::new(),
            peer_connections: PeerConnections::default(),
            next_id: (u64::from(shard) << 56) | 1,
            outputs: VecDeque::new(),
            next_timeout: None,
            shutting_down: false,
            metrics: Metrics::default(),
        }
    }

    /// The next output to carry out, until `None`.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// When [`TurnCore::handle_timeout`] should next run (`None`: nothing scheduled).
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.next_timeout
    }

    /// Counters plus the current allocation gauge.
    pub fn metrics(&self) -> Metrics {
        let mut m = self.metrics.clone();
        m.allocations_current = self.allocations.len() as u64;
        m
    }

    /// Whether `client` holds an allocation.
    pub fn has_allocation(&self, client: ClientAddr) -> bool {
        self.by_client.contains_key(&client)
    }

    pub fn allocation_count(&self) -> usize {
        self.allocations.len()
    }

    fn elapsed_secs(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.start).as_secs()
    }

    fn unix_now(&self, now: Instant) -> u64 {
        self.unix_at_start + self.elapsed_secs(now)
    }

    fn schedule(&mut self, at: Instant) {
        self.next_timeout = Some(self.next_timeout.map_or(at, |t| t.min(at)));
    }

    // ----- inputs -------------------------------------------------------------------

    /// A datagram (UDP) or one whole frame (TCP) from a client.
    pub fn handle_client(&mut self, now: Instant, client: ClientAddr, data: &[u8]) {
        if self.shutting_down {
            return;
        }
        match data.first() {
            Some(b) if b & 0xC0 == 0x40 => self.handle_channel_data(now, client, data),
            Some(b) if b & 0xC0 == 0 => match Message::parse(data) {
                Ok(message) if verify_fingerprint(&message) => self.handle_message(now, client, &message),
                _ => self.metrics.refuse(Refusal::Malformed),
            },
            _ => self.metrics.refuse(Refusal::Malformed),
        }
    }

    /// A datagram that arrived on an allocation's relay socket from `peer`.
    pub fn handle_peer(&mut self, now: Instant, allocation: AllocationId, peer: SocketAddr, data: &[u8]) {
        let Some(a) = self.allocations.get_mut(&allocation) else { return };
        // A peer's packet to an allocation the sweep has not removed yet: dropped like one
        // to a closed port, uncounted (the refusal counters are about clients).
        if a.is_expired(now) {
            return;
        }
        if let Admission::Refused(why) = a.admit(Direction::ToClient, peer.ip(), data.len(), now) {
            self.metrics.refuse(why);
            return;
        }
        let client = a.client;
        let mut out = Vec::with_capacity(data.len() + 40);
        if let Some(channel) = a.peer_channel(peer, now) {
            ChannelData::encode(channel, data, client.transport.is_stream(), &mut out);
        } else {
            let mut tid = [0u8; 12];
            tid[..8].copy_from_slice(&self.next_id.to_be_bytes());
            tid[8..].copy_from_slice(&(self.metrics.packets_to_clients as u32).to_be_bytes());
            let mut b = MessageBuilder::new(Method::Data, Class::Indication, tid);
            b.xor_address(attr::XOR_PEER_ADDRESS, peer);
            b.attr(attr::DATA, data);
            out = b.finish();
        }
        self.metrics.bytes_to_clients += data.len() as u64;
        self.metrics.packets_to_clients += 1;
        self.outputs.push_back(Output::ToClient { client, data: out });
    }

    /// The shell's answer to [`Output::OpenRelay`]: the local addresses it bound (none if
    /// it could bind nothing).
    pub fn complete_allocation(&mut self, now: Instant, allocation: AllocationId, bound: &[SocketAddr]) {
        let Some(pending) = self.pending.remove(&allocation) else {
            if !bound.is_empty() {
                self.outputs.push_back(Output::CloseRelay(allocation));
            }
            return;
        };
        self.pending_by_client.remove(&pending.request.client);
        if bound.is_empty() || self.shutting_down {
            self.release_user(&pending.auth.quota_user);
            if !bound.is_empty() {
                self.outputs.push_back(Output::CloseRelay(allocation));
            }
            // The shell may have held the next port before the rest failed.
            if let Some(token) = pending.reserve_next {
                self.outputs.push_back(Output::DropReservation(token));
            }
            self.send_error(&pending.request, 508, Some(&pending.auth.key), |_| {});
            return;
        }
        let mut relayed: Vec<SocketAddr> = bound.iter().map(|local| self.relays.advertised(*local)).collect();
        relayed.sort_by_key(|address| Family::of(address.ip()));
        // A family asked for and not given: not relayed here (440), or no port free (508).
        let refused: Vec<(Family, u16)> = pending
            .families
            .iter()
            .filter(|(family, _)| !relayed.iter().any(|r| Family::of(r.ip()) == *family))
            .map(|(family, relays)| (*family, if *relays { 508 } else { 440 }))
            .collect();
        let request = pending.request;
        let lifetime = pending.lifetime;
        let reserved = pending.reserve_next;
        if let Some(token) = reserved {
            self.reservations.insert(token, now + RESERVATION_LIFETIME);
            self.ledger.reserve(token, now + RESERVATION_LIFETIME);
            self.schedule(now + RESERVATION_LIFETIME);
        }
        let response = self.build_success(&request, &pending.auth.key, |b| {
            for address in &relayed {
                b.xor_address(attr::XOR_RELAYED_ADDRESS, *address);
            }
            for (family, code) in &refused {
                b.attr_with(pending.address_error_attribute, |out| {
                    attr::encode_address_error_code(family.wire(), *code, attr::reason_phrase(*code), out)
                });
            }
            b.u32(attr::LIFETIME, lifetime.as_secs() as u32);
            b.xor_address(attr::XOR_MAPPED_ADDRESS, request.client.remote);
            if let Some(token) = reserved {
                b.attr(attr::RESERVATION_TOKEN, &token);
            }
        });
        let a = Allocation {
            id: allocation,
            client: request.client,
            username: pending.username,
            quota_user: pending.auth.quota_user,
            key: pending.auth.key,
            expires_unix: pending.auth.expires_unix,
            relayed,
            expires: now + lifetime,
            allocate_transaction: request.transaction_id,
            allocate_response: response.clone(),
            permissions: HashMap::new(),
            channels: FastMap::default(),
            peer_channels: HashMap::new(),
            to_peer: TokenBucket::new(self.bandwidth, now),
            to_client: TokenBucket::new(self.bandwidth, now),
            tcp: pending.tcp,
        };
        self.allocations.insert(allocation, a);
        self.by_client.insert(request.client, allocation);
        self.metrics.allocations_created += 1;
        self.schedule(now + lifetime.min(SWEEP_INTERVAL));
        self.outputs.push_back(Output::ToClient { client: request.client, data: response });
    }

    /// Expires allocations, permissions and channels whose time has come.
    pub fn handle_timeout(&mut self, now: Instant) {
        let mut expired = Vec::new();
        let mut next: Option<Instant> = None;
        for (id, a) in &mut self.allocations {
            if a.expires <= now {
                expired.push(*id);
                continue;
            }
            let at = a.expire(now).min(now + SWEEP_INTERVAL);
            next = Some(next.map_or(at, |n| n.min(at)));
        }
        for id in expired {
            self.remove_allocation(id);
        }
        let (outputs, ledger) = (&mut self.outputs, &self.ledger);
        self.reservations.retain(|token, expires| {
            let keep = *expires > now;
            if keep {
                next = Some(next.map_or(*expires, |n| n.min(*expires)));
            } else if ledger.withdraw(token) {
                outputs.push_back(Output::DropReservation(*token));
            }
            keep
        });
        if let Some(at) = self.expire_peer_connections(now) {
            next = Some(next.map_or(at, |n| n.min(at)));
        }
        self.next_timeout = next;
    }

    /// A client's TCP connection closed: its allocation goes with it (RFC 8656 §3.1).
    pub fn handle_client_closed(&mut self, client: ClientAddr) {
        if let Some(id) = self.by_client.get(&client).copied() {
            self.remove_allocation(id);
        }
        if let Some(connection) = self.peer_connections.bound_to(client) {
            self.peer_connections.remove(connection);
            self.outputs.push_back(Output::ClosePeerConnection(connection));
        }
    }

    /// Closes every allocation and refuses new work (graceful shutdown).
    pub fn shutdown(&mut self) {
        self.shutting_down = true;
        let ids: Vec<AllocationId> = self.allocations.keys().copied().collect();
        for id in ids {
            self.remove_allocation(id);
        }
        for (token, _) in self.reservations.drain() {
            if self.ledger.withdraw(&token) {
                self.outputs.push_back(Output::DropReservation(token));
            }
        }
        self.next_timeout = None;
    }

    // ----- client traffic -----------------------------------------------------------

    fn handle_channel_data(&mut self, now: Instant, client: ClientAddr, data: &[u8]) {
        let Some(frame) = ChannelData::parse(data) else {
            self.metrics.refuse(Refusal::Malformed);
            return;
        };
        let Some(id) = self.by_client.get(&client).copied() else {
            self.metrics.refuse(Refusal::NoAllocationOrChannel);
            return;
        };
        let Some(a) = self.allocations.get(&id) else { return };
        let Some(peer) = a.channel_peer(frame.channel, now) else {
            self.metrics.refuse(Refusal::NoAllocationOrChannel);
            return;
        };
        self.relay_to_peer(now, id, peer, frame.data);
    }

    /// Sends a client's data (from ChannelData or a Send indication) to `peer` if the
    /// allocation admits it (which an expired one never does, whether or not the timer has
    /// swept it yet); a refusal is counted and the data dropped.
    fn relay_to_peer(&mut self, now: Instant, id: AllocationId, peer: SocketAddr, data: &[u8]) {
        let Some(a) = self.allocations.get_mut(&id) else { return };
        if let Admission::Refused(why) = a.admit(Direction::ToPeer, peer.ip(), data.len(), now) {
            self.metrics.refuse(why);
            return;
        }
        self.metrics.bytes_to_peers += data.len() as u64;
        self.metrics.packets_to_peers += 1;
        self.outputs.push_back(Output::ToPeer { allocation: id, peer, data: data.to_vec() });
    }

    fn handle_message(&mut self, now: Instant, client: ClientAddr, message: &Message<'_>) {
        let request = Request {
            client,
            method: message.method,
            transaction_id: message.transaction_id,
            len: message.bytes().len(),
            fingerprint: message.fingerprint_offset().is_some(),
        };
        match (message.class, message.method) {
            (Class::Indication, Method::Send) => self.handle_send(now, client, message),
            (Class::Request, Method::Binding) => self.handle_binding(&request, message),
            (
                Class::Request,
                Method::Allocate
                | Method::Refresh
                | Method::CreatePermission
                | Method::ChannelBind
                | Method::Connect
                | Method::ConnectionBind,
            ) => {
                if let Some(bad) = self.unknown_attributes(message) {
                    self.send_error(&request, 420, None, |b| {
                        b.attr(attr::UNKNOWN_ATTRIBUTES, &bad);
                    });
                    return;
                }
                let Some((auth, username)) = self.authenticate(now, &request, message) else { return };
                match message.method {
                    Method::Allocate => self.handle_allocate(now, &request, message, auth, username),
                    Method::Refresh => self.handle_refresh(now, &request, message, &auth.key),
                    Method::CreatePermission => self.handle_create_permission(now, &request, message, &auth.key),
                    Method::Connect => self.handle_connect(now, &request, message, &auth.key),
                    Method::ConnectionBind => self.handle_connection_bind(&request, message, &auth.key, &username),
                    _ => self.handle_channel_bind(now, &request, message, &auth.key),
                }
            }
            (Class::Request, _) => self.send_error(&request, 400, None, |_| {}),
            // Responses and other indications are not for a server.
            _ => {}
        }
    }

    fn unknown_attributes(&self, message: &Message<'_>) -> Option<Vec<u8>> {
        let unknown: Vec<u8> = message.unknown_required().take(8).flat_map(u16::to_be_bytes).collect();
        (!unknown.is_empty()).then_some(unknown)
    }

    fn handle_binding(&mut self, request: &Request, message: &Message<'_>) {
        if let Some(bad) = self.unknown_attributes(message) {
            self.send_error(request, 420, None, |b| {
                b.attr(attr::UNKNOWN_ATTRIBUTES, &bad);
            });
            return;
        }
        // Binding is the public STUN service: no credentials, a fixed-size answer (32 or
        // 44 bytes, plus FINGERPRINT only if the request carried one) and no SOFTWARE.
        let mut b = MessageBuilder::new(Method::Binding, Class::Success, request.transaction_id);
        b.xor_address(attr::XOR_MAPPED_ADDRESS, request.client.remote);
        if request.fingerprint {
            b.fingerprint();
        }
        self.outputs.push_back(Output::ToClient { client: request.client, data: b.finish() });
    }

    fn handle_send(&mut self, now: Instant, client: ClientAddr, message: &Message<'_>) {
        let Some(id) =
            self.by_client.get(&client).copied().filter(|id| !self.allocations.get(id).is_some_and(|a| a.tcp))
        else {
            // No allocation, or a TCP one: its peers are reached over connections.
            self.metrics.refuse(Refusal::NoAllocationOrChannel);
            return;
        };
        let peer =
            message.get(attr::XOR_PEER_ADDRESS).and_then(|v| attr::decode_xor_address(v, &message.transaction_id));
        let (Some(peer), Some(data)) = (peer, message.get(attr::DATA)) else {
            self.metrics.refuse(Refusal::Malformed);
            return;
        };
        if check_peer(peer.ip(), &self.allowed_peers) == PeerVerdict::Refused {
            self.metrics.refuse(Refusal::ForbiddenPeer);
            return;
        }
        self.relay_to_peer(now, id, peer, data);
    }

    // ----- authentication -----------------------------------------------------------

    /// Checks long-term credentials; on failure sends the answer and returns `None`.
    fn authenticate(
        &mut self,
        now: Instant,
        request: &Request,
        message: &Message<'_>,
    ) -> Option<(Authenticated, String)> {
        if message.integrity_offset().is_none() {
            self.send_challenge(now, request, 401);
            return None;
        }
        let username = message.get(attr::USERNAME).and_then(|v| attr::decode_text(v, MAX_USERNAME));
        let realm = message.get(attr::REALM).and_then(|v| attr::decode_text(v, MAX_REALM_OR_NONCE));
        let nonce = message.get(attr::NONCE).filter(|v| v.len() <= MAX_REALM_OR_NONCE);
        let (Some(username), Some(realm), Some(nonce)) = (username, realm, nonce) else {
            self.send_error(request, 400, None, |_| {});
            return None;
        };
        if realm != self.auth.realm() {
            self.metrics.auth_failures += 1;
            self.send_challenge(now, request, 401);
            return None;
        }
        if self.auth.check_nonce(nonce, self.elapsed_secs(now), &request.client) == NonceCheck::Stale {
            self.metrics.stale_nonces += 1;
            self.send_challenge(now, request, 438);
            return None;
        }
        let unix_now = self.unix_now(now);
        // An allocation's own key first: the fast path for Refresh, permissions, channels.
        let existing = self.by_client.get(&request.client).and_then(|id| self.allocations.get(id));
        // An Allocate on a taken 5-tuple under another username authenticates on its own
        // and then gets 437, which tells the client to retry from another port.
        let existing = existing.filter(|a| request.method != Method::Allocate || a.username == username);
        if let Some(a) = existing {
            if a.username != username {
                let key = a.key;
                self.metrics.auth_failures += 1;
                self.send_error(request, 441, Some(&key), |_| {});
                return None;
            }
            let expired = a.expires_unix.is_some_and(|e| e < unix_now);
            if !expired && crate::proto::integrity::verify_integrity(message, &a.key) {
                let auth = Authenticated { key: a.key, quota_user: a.quota_user.clone(), expires_unix: a.expires_unix };
                return Some((auth, username.to_string()));
            }
            self.metrics.auth_failures += 1;
            self.send_challenge(now, request, 401);
            return None;
        }
        match self.auth.authenticate(message, username, unix_now) {
            Ok(auth) => Some((auth, username.to_string())),
            Err(failure) => {
                self.metrics.auth_failures += 1;
                tracing::debug!(client = %request.client.remote, reason = failure.as_str(), "authentication failed");
                self.send_challenge(now, request, 401);
                None
            }
        }
    }

    /// 401 Unauthorized or 438 Stale Nonce with REALM and a fresh NONCE.
    fn send_challenge(&mut self, now: Instant, request: &Request, code: u16) {
        let nonce = self.auth.nonce(self.elapsed_secs(now), &request.client);
        let realm = self.auth.realm().to_string();
        self.send_error(request, code, None, |b| {
            b.attr(attr::REALM, realm.as_bytes());
            b.attr(attr::NONCE, nonce.as_bytes());
        });
    }

    // ----- responses ----------------------------------------------------------------

    fn build_success(&self, request: &Request, key: &LongTermKey, fill: impl FnOnce(&mut MessageBuilder)) -> Vec<u8> {
        let mut b = MessageBuilder::new(request.method, Class::Success, request.transaction_id);
        fill(&mut b);
        if let Some(software) = &self.software {
            b.attr(attr::SOFTWARE, software.as_bytes());
        }
        b.integrity(key);
        if request.fingerprint {
            b.fingerprint();
        }
        b.finish()
    }

    fn send_success(&mut self, request: &Request, key: &LongTermKey, fill: impl FnOnce(&mut MessageBuilder)) {
        let data = self.build_success(request, key, fill);
        self.outputs.push_back(Output::ToClient { client: request.client, data });
    }

    /// An error response. With `key` (an authenticated request) it is signed. Without,
    /// over UDP it is trimmed (reason phrase, then FINGERPRINT) to fit in the request's
    /// size, and dropped if it still does not fit.
    fn send_error(
        &mut self,
        request: &Request,
        code: u16,
        key: Option<&LongTermKey>,
        fill: impl Fn(&mut MessageBuilder),
    ) {
        match code {
            403 => self.metrics.refuse(Refusal::ForbiddenPeer),
            401 | 438 => {}
            486 => {}
            _ => self.metrics.refuse(Refusal::BadRequest),
        }
        let build = |reason: bool, fingerprint: bool| {
            let mut b = MessageBuilder::new(request.method, Class::Error, request.transaction_id);
            b.error_code(code, if reason { attr::reason_phrase(code) } else { "" });
            fill(&mut b);
            if let Some(key) = key {
                b.integrity(key);
            }
            if fingerprint && request.fingerprint {
                b.fingerprint();
            }
            b.finish()
        };
        let data = if key.is_some() || request.client.transport != Transport::Udp {
            build(true, true)
        } else {
            // Never more than the request, except that every request may get the smallest
            // challenge: browsers open with a bare 28-byte Allocate, and without a 401 they
            // could never authenticate over UDP.
            let budget = request.len.max(SMALLEST_CHALLENGE);
            let fits = |d: &Vec<u8>| d.len() <= budget;
            match [build(true, true), build(false, true), build(false, false)].into_iter().find(fits) {
                Some(d) => d,
                None => {
                    self.metrics.refuse(Refusal::Amplification);
                    return;
                }
            }
        };
        self.outputs.push_back(Output::ToClient { client: request.client, data });
    }

    // ----- TURN methods ---------------------------------------------------------------

    fn handle_allocate(
        &mut self,
        now: Instant,
        request: &Request,
        message: &Message<'_>,
        auth: Authenticated,
        username: String,
    ) {
        let key = auth.key;
        if let Some(a) = self.by_client.get(&request.client).and_then(|id| self.allocations.get(id)) {
            if a.allocate_transaction == request.transaction_id {
                let data = a.allocate_response.clone();
                self.outputs.push_back(Output::ToClient { client: request.client, data });
            } else {
                self.send_error(request, 437, Some(&key), |_| {});
            }
            return;
        }
        if self.pending_by_client.contains_key(&request.client) {
            // A retransmission while the relay socket is being bound: the answer follows.
            return;
        }
        let tcp = match message.get(attr::REQUESTED_TRANSPORT).map(attr::decode_requested_transport) {
            None | Some(None) => return self.send_error(request, 400, Some(&key), |_| {}),
            Some(Some(UDP)) => false,
            // RFC 6062 §5.1: over a TCP or TLS connection only, with one family and no
            // DONT-FRAGMENT, EVEN-PORT or RESERVATION-TOKEN.
            Some(Some(tcp_allocations::TCP)) => {
                let plain = [attr::DONT_FRAGMENT, attr::EVEN_PORT, attr::RESERVATION_TOKEN]
                    .into_iter()
                    .chain([attr::ADDITIONAL_ADDRESS_FAMILY, attr::ADDITIONAL_ADDRESS_FAMILY_DRAFT])
                    .all(|kind| message.get(kind).is_none());
                if !request.client.transport.is_stream() || !plain {
                    return self.send_error(request, 400, Some(&key), |_| {});
                }
                true
            }
            Some(Some(_)) => return self.send_error(request, 442, Some(&key), |_| {}),
        };
        let even_port = message.get(attr::EVEN_PORT);
        let Some(families) = self.requested_families(message, even_port) else {
            return self.send_error(request, 400, Some(&key), |_| {});
        };
        let mut ips = families.iter().filter_map(|(family, _)| self.relays.bind_ip(*family));
        let (Some(ip), additional_ip) = (ips.next(), ips.next()) else {
            return self.send_error(request, 440, Some(&key), |_| {});
        };
        let token = match message.get(attr::RESERVATION_TOKEN) {
            None => None,
            Some(_) if even_port.is_some() => return self.send_error(request, 400, Some(&key), |_| {}),
            Some(value) => match ReservationToken::try_from(value) {
                Ok(token) => Some(token),
                Err(_) => return self.send_error(request, 400, Some(&key), |_| {}),
            },
        };
        // Quotas before the reservation is claimed: a refused Allocate leaves it for a later one.
        if let Err(quota) = self.ledger.take(&auth.quota_user, self.max_per_user, self.max_total) {
            self.metrics.refuse(quota);
            return self.send_error(request, 486, Some(&key), |_| {});
        }
        let use_reservation = match token {
            None => None,
            // Unknown or lapsed: the port is gone (RFC 8656 §7.2).
            Some(token) if !self.ledger.claim(&token, now) => {
                self.release_user(&auth.quota_user);
                return self.send_error(request, 508, Some(&key), |_| {});
            }
            Some(token) => {
                self.reservations.remove(&token);
                Some(token)
            }
        };
        let requested = message.get(attr::LIFETIME).and_then(attr::decode_u32).map(|s| Duration::from_secs(s.into()));
        let lifetime = requested.unwrap_or(self.default_lifetime).clamp(self.default_lifetime, self.max_lifetime);
        let id = AllocationId(self.next_id);
        self.next_id += 1;
        let reserve_next =
            even_port.filter(|v| v.first().is_some_and(|b| b & 0x80 != 0)).map(|_| self.auth.token(id.0));
        self.pending_by_client.insert(request.client, id);
        let address_error_attribute = if message.get(attr::ADDITIONAL_ADDRESS_FAMILY_DRAFT).is_some() {
            attr::ADDRESS_ERROR_CODE_DRAFT
        } else {
            attr::ADDRESS_ERROR_CODE
        };
        let pending = Pending {
            request: *request,
            username,
            auth,
            lifetime,
            reserve_next,
            families,
            address_error_attribute,
            tcp,
        };
        self.pending.insert(id, pending);
        self.outputs.push_back(Output::OpenRelay(RelayRequest {
            allocation: id,
            ip,
            additional_ip,
            tcp,
            even_port: even_port.is_some(),
            reserve_next,
            use_reservation,
        }));
    }

    /// The families an Allocate asks for (RFC 8656 §7.2), each with whether this server
    /// relays it; `None` for a malformed or contradictory request, which gets 400: both
    /// family attributes, an IPv4 ADDITIONAL-ADDRESS-FAMILY, a RESERVATION-TOKEN with a
    /// family, or a dual allocation with a reservation either way.
    fn requested_families(&self, message: &Message<'_>, even_port: Option<&[u8]>) -> Option<Vec<(Family, bool)>> {
        let family = |kind| message.get(kind).map(|v| attr::decode_address_family(v).and_then(Family::from_wire));
        let reservation = message.get(attr::RESERVATION_TOKEN).is_some();
        let reserves_next = even_port.is_some_and(|v| v.first().is_some_and(|b| b & 0x80 != 0));
        let additional =
            family(attr::ADDITIONAL_ADDRESS_FAMILY).or_else(|| family(attr::ADDITIONAL_ADDRESS_FAMILY_DRAFT));
        let wanted = match (family(attr::REQUESTED_ADDRESS_FAMILY), additional) {
            (Some(Some(requested)), None) if !reservation => vec![requested],
            (None, Some(Some(Family::V6))) if !reservation && !reserves_next => vec![Family::V4, Family::V6],
            (None, None) => vec![self.relays.default_family()],
            _ => return None,
        };
        Some(wanted.into_iter().map(|family| (family, self.relays.bind_ip(family).is_some())).collect())
    }

    fn handle_refresh(&mut self, now: Instant, request: &Request, message: &Message<'_>, key: &LongTermKey) {
        let Some(id) = self.by_client.get(&request.client).copied() else {
            return self.send_error(request, 437, Some(key), |_| {});
        };
        let requested = message.get(attr::LIFETIME).and_then(attr::decode_u32).map(|s| Duration::from_secs(s.into()));
        let lifetime = requested.unwrap_or(self.default_lifetime).min(self.max_lifetime);
        // A family names one relayed address of the allocation: a dual allocation drops
        // just that one with LIFETIME 0 (RFC 8656 §8); a family it lacks gets 443.
        let family = match message.get(attr::REQUESTED_ADDRESS_FAMILY) {
            None => None,
            Some(value) => match attr::decode_address_family(value).and_then(Family::from_wire) {
                None => return self.send_error(request, 400, Some(key), |_| {}),
                Some(family) => Some(family),
            },
        };
        let families = self.allocations.get(&id).map(Allocation::families).unwrap_or_default();
        if family.is_some_and(|f| !families.contains(&f)) {
            return self.send_error(request, 443, Some(key), |_| {});
        }
        if lifetime.is_zero() {
            match family {
                Some(family) if families.len() > 1 => {
                    if let Some(a) = self.allocations.get_mut(&id) {
                        a.drop_family(family, now);
                    }
                    self.outputs.push_back(Output::CloseRelayFamily { allocation: id, family });
                }
                _ => self.remove_allocation(id),
            }
        } else if let Some(a) = self.allocations.get_mut(&id) {
            a.expires = now + lifetime;
            self.schedule(now + lifetime.min(SWEEP_INTERVAL));
        }
        self.send_success(request, key, |b| {
            b.u32(attr::LIFETIME, lifetime.as_secs() as u32);
        });
    }

    /// Decodes every XOR-PEER-ADDRESS and applies the policy: `Err(code)` to answer. A
    /// peer must be of a family the allocation `id` relays.
    fn checked_peers(&self, message: &Message<'_>, id: AllocationId) -> Result<Vec<SocketAddr>, u16> {
        let mut peers = Vec::new();
        for a in message.attributes().filter(|a| a.kind == attr::XOR_PEER_ADDRESS) {
            let peer = attr::decode_xor_address(a.value, &message.transaction_id).ok_or(400u16)?;
            peers.push(peer);
        }
        if peers.is_empty() {
            return Err(400);
        }
        if peers.iter().any(|p| check_peer(p.ip(), &self.allowed_peers) == PeerVerdict::Refused) {
            return Err(403);
        }
        let families = self.allocations.get(&id).map(Allocation::families).unwrap_or_default();
        if peers.iter().any(|p| !families.contains(&Family::of(p.ip()))) {
            return Err(443);
        }
        Ok(peers)
    }

    fn handle_create_permission(&mut self, now: Instant, request: &Request, message: &Message<'_>, key: &LongTermKey) {
        let Some(id) = self.by_client.get(&request.client).copied() else {
            return self.send_error(request, 437, Some(key), |_| {});
        };
        let peers = match self.checked_peers(message, id) {
            Ok(peers) => peers,
            Err(code) => return self.send_error(request, code, Some(key), |_| {}),
        };
        if let Some(a) = self.allocations.get_mut(&id) {
            for peer in peers {
                a.install_permission(peer.ip(), now);
            }
        }
        self.send_success(request, key, |_| {});
    }

    fn handle_channel_bind(&mut self, now: Instant, request: &Request, message: &Message<'_>, key: &LongTermKey) {
        let Some(id) = self.by_client.get(&request.client).copied() else {
            return self.send_error(request, 437, Some(key), |_| {});
        };
        if self.allocations.get(&id).is_some_and(|a| a.tcp) {
            // RFC 6062 §5.1: a TCP allocation has no channels.
            return self.send_error(request, 400, Some(key), |_| {});
        }
        let channel = message.get(attr::CHANNEL_NUMBER).and_then(attr::decode_channel_number);
        let Some(channel) = channel.filter(|c| (MIN_CHANNEL..=MAX_CHANNEL).contains(c)) else {
            return self.send_error(request, 400, Some(key), |_| {});
        };
        let peer = match self.checked_peers(message, id) {
            Ok(peers) if peers.len() == 1 => peers[0],
            Ok(_) => return self.send_error(request, 400, Some(key), |_| {}),
            Err(code) => return self.send_error(request, code, Some(key), |_| {}),
        };
        let bound = self.allocations.get_mut(&id).map(|a| a.bind_channel(channel, peer, now));
        match bound {
            Some(Ok(())) => self.send_success(request, key, |_| {}),
            _ => self.send_error(request, 400, Some(key), |_| {}),
        }
    }

    // ----- bookkeeping ----------------------------------------------------------------

    fn release_user(&mut self, user: &str) {
        self.ledger.release(user);
    }

    fn remove_allocation(&mut self, id: AllocationId) {
        let Some(a) = self.allocations.remove(&id) else { return };
        self.by_client.remove(&a.client);
        self.release_user(&a.quota_user);
        self.close_peer_connections(id);
        self.outputs.push_back(Output::CloseRelay(id));
    }
}

#[cfg(test)]
mod tests;
