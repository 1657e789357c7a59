//! The tokio shell around [`TurnCore`]: sockets, tasks, timers and shutdown.
//!
//! - [`BoundServer::bind`] checks the config and binds every listener (port 0 works, so
//!   tests learn the real ports from it); [`BoundServer::run`] serves until cancelled.
//! - UDP clients are served by [`udp_shard`]s: threads with a core each, sharing the
//!   listening port, with no lock on their packet path.
//! - Everything else (TCP, TLS, DTLS, the HTTP server) runs here on tokio with a core of
//!   its own: one task per TCP connection, one per relay socket of its allocations, one
//!   timer task, the DTLS task. Each feeds that core under a std `Mutex` held for the
//!   handling only (never across `.await`), then sends what the core returned with
//!   non-blocking `try_send_to` (a full socket buffer drops the datagram, as UDP may).
//! - All cores share one [`Ledger`] (quotas, reserved ports) and one nonce key.
//! - Shutdown: the cancellation token stops every loop; every core closes its allocations
//!   (each relay task ends, each shard's thread), and `run` returns once all have ended.

mod dtls;
mod http;
mod relay;
mod tcp;
mod tcp_relay;
mod tls;
mod tls_share;
mod udp_shard;

use crate::config::{Config, ConfigError};
use crate::core::{AllocationId, ClientAddr, ConnectionId, Family, Ledger, Output, RelayRequest, Transport, TurnCore};
use relay::ReservedPorts;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use thiserror::Error;
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Largest datagram read from a client or a peer; longer ones are cut by the kernel.
const MAX_DATAGRAM: usize = 4096;
/// Kernel buffer asked for each listening UDP socket: one socket carries a shard's UDP
/// clients, and small datagrams cost ~1 KiB of buffer each, so the 208 KiB default
/// overflows (drops) under bursts. Linux caps it at net.core.rmem_max / wmem_max.
const LISTENER_BUFFER: usize = 4 << 20;
/// The same for each relay socket (one peer set per allocation).
pub(super) const RELAY_BUFFER: usize = 1 << 20;
/// The timer task wakes at least this often.
const MAX_TIMER_SLEEP: Duration = Duration::from_secs(1);

/// Why the server could not start or stopped.
#[derive(Debug, Error)]
pub enum ServeError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot bind the {what} socket on {addr}: {source}")]
    Bind { what: &'static str, addr: SocketAddr, source: std::io::Error },
    #[error("{what} failed: {source}")]
    Io { what: &'static str, source: std::io::Error },
    #[error("TLS setup with {path}: {message}")]
    Tls { path: String, message: String },
}

/// A relay socket, its address family and the token that ends its task.
#[derive(Debug, Clone)]
struct RelayHandle {
    socket: Arc<UdpSocket>,
    family: Family,
    cancel: CancellationToken,
}

/// Everything the core's outputs may touch, behind one lock.
#[derive(Debug)]
struct State {
    core: TurnCore,
    /// Each allocation's relay sockets: one, or one per family of a dual allocation.
    relays: HashMap<AllocationId, Vec<RelayHandle>>,
    tcp_clients: HashMap<ClientAddr, mpsc::Sender<Vec<u8>>>,
    /// RFC 6062: each TCP allocation's listener.
    tcp_relays: HashMap<AllocationId, tcp_relay::TcpRelay>,
    /// Peer connections waiting for their ConnectionBind.
    peer_streams: HashMap<ConnectionId, tokio::net::TcpStream>,
    /// Where each TCP or TLS client connection takes a peer connection bound to it.
    data_binds: HashMap<ClientAddr, tokio::sync::oneshot::Sender<tcp_relay::BoundPeer>>,
    /// The piped peer connections, and the token that ends each.
    pipes: HashMap<ConnectionId, CancellationToken>,
    /// TURN over DTLS: a session per client address.
    dtls: Option<dtls::DtlsSessions>,
}

#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    /// Ports held for a RESERVATION-TOKEN (EVEN-PORT with the R bit), for every core.
    reserved: Arc<ReservedPorts>,
    /// The UDP shards, once serving.
    udp_shards: OnceLock<udp_shard::UdpShards>,
    dtls_socket: Option<Arc<UdpSocket>>,
    config: Config,
    tracker: TaskTracker,
    shutdown: CancellationToken,
    ready: AtomicBool,
}

/// A send the core asked for, carried out after the lock is released.
enum Send {
    Relay(Arc<UdpSocket>, SocketAddr, Vec<u8>),
    Open(RelayRequest),
    Dial(AllocationId, ConnectionId, SocketAddr),
    Dtls(SocketAddr, Vec<u8>),
    DropReservation(crate::core::ReservationToken),
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock would be a bug in the core; keep serving with
        // the state as it is rather than poisoning every later packet.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Runs `f` on the core, then carries out every output.
    fn drive(self: &Arc<Self>, f: impl FnOnce(&mut TurnCore, Instant)) {
        self.drive_state(|state, now| f(&mut state.core, now));
    }

    /// The same with the whole state, for a step that must also keep something of the
    /// shell's before the outputs go out (a peer connection the client may bind at once).
    fn drive_state(self: &Arc<Self>, f: impl FnOnce(&mut State, Instant)) {
        let mut sends = Vec::new();
        {
            let mut state = self.lock();
            f(&mut state, Instant::now());
            drain(&mut state, &mut sends);
        }
        for send in sends {
            match send {
                Send::Relay(socket, to, data) => {
                    let _ = socket.try_send_to(&data, to);
                }
                Send::Open(request) if request.tcp => tcp_relay::open(self.clone(), request),
                Send::Open(request) => relay::open(self.clone(), request),
                Send::Dial(allocation, connection, peer) => tcp_relay::dial(self.clone(), allocation, connection, peer),
                Send::Dtls(to, data) => {
                    if let Some(socket) = &self.dtls_socket {
                        let _ = socket.try_send_to(&data, to);
                    }
                }
                Send::DropReservation(token) => self.reserved.drop_port(&token),
            }
        }
    }
}

fn drain(state: &mut State, sends: &mut Vec<Send>) {
    while let Some(output) = state.core.poll_output() {
        match output {
            Output::ToClient { client, data } => match client.transport {
                // UDP clients have cores of their own (the shards).
                Transport::Udp => {}
                Transport::Dtls => {
                    if let Some(dtls) = state.dtls.as_mut() {
                        dtls.send(client.remote, &data);
                    }
                }
                Transport::Tcp | Transport::Tls => {
                    if let Some(tx) = state.tcp_clients.get(&client) {
                        // A client that does not read loses frames rather than stalling others.
                        let _ = tx.try_send(data);
                    }
                }
            },
            Output::ToPeer { allocation, peer, data } => {
                let family = Family::of(peer.ip());
                let relays = state.relays.get(&allocation).into_iter().flatten();
                if let Some(relay) = relays.into_iter().find(|relay| relay.family == family) {
                    sends.push(Send::Relay(relay.socket.clone(), peer, data));
                }
            }
            Output::OpenRelay(request) => sends.push(Send::Open(request)),
            Output::CloseRelay(id) => {
                for relay in state.relays.remove(&id).into_iter().flatten() {
                    relay.cancel.cancel();
                }
                if let Some(relay) = state.tcp_relays.remove(&id) {
                    relay.close();
                }
            }
            Output::ConnectPeer { allocation, connection, peer } => {
                sends.push(Send::Dial(allocation, connection, peer))
            }
            Output::BindData { connection, client } => {
                let stream = state.peer_streams.remove(&connection);
                if let (Some(stream), Some(bind)) = (stream, state.data_binds.remove(&client)) {
                    let cancel = CancellationToken::new();
                    state.pipes.insert(connection, cancel.clone());
                    let _ = bind.send(tcp_relay::BoundPeer { connection, stream, cancel });
                }
            }
            Output::ClosePeerConnection(connection) => {
                state.peer_streams.remove(&connection);
                if let Some(pipe) = state.pipes.remove(&connection) {
                    pipe.cancel();
                }
            }
            Output::CloseRelayFamily { allocation, family } => {
                if let Some(relays) = state.relays.get_mut(&allocation) {
                    relays.retain(|relay| {
                        let keep = relay.family != family;
                        if !keep {
                            relay.cancel.cancel();
                        }
                        keep
                    });
                }
            }
            Output::DropReservation(token) => sends.push(Send::DropReservation(token)),
        }
    }
    if let Some(dtls) = state.dtls.as_mut() {
        sends.extend(dtls.take_outgoing().into_iter().map(|(to, record)| Send::Dtls(to, record)));
    }
}

/// A server whose sockets are bound; [`BoundServer::run`] serves.
pub struct BoundServer {
    shared: Arc<Shared>,
    /// The listening UDP sockets, one per shard, sharing `udp_addr`'s port.
    udp_listeners: Vec<std::net::UdpSocket>,
    ledger: Arc<Ledger>,
    nonce_key: [u8; 32],
    tcp: Option<TcpListener>,
    tls: Option<(TcpListener, Arc<tls::Certificates>)>,
    http: Option<TcpListener>,
    udp_addr: SocketAddr,
    dtls_addr: Option<SocketAddr>,
    tcp_addr: Option<SocketAddr>,
    tls_addr: Option<SocketAddr>,
    http_addr: Option<SocketAddr>,
}

impl std::fmt::Debug for BoundServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BoundServer")
            .field("udp", &self.udp_addr)
            .field("tcp", &self.tcp_addr)
            .field("tls", &self.tls_addr)
            .field("dtls", &self.dtls_addr)
            .field("http", &self.http_addr)
            .finish_non_exhaustive()
    }
}

impl BoundServer {
    /// Validates `config` and binds the UDP, TCP and HTTP listeners.
    pub async fn bind(config: Config) -> Result<BoundServer, ServeError> {
        config.validate()?;
        // Certificates are checked before any socket is bound.
        let acceptor = match (&config.listen_tls, &config.tls_cert, &config.tls_key) {
            (Some(_), Some(cert), Some(key)) => Some(tls::Certificates::load(cert, key)?),
            _ => None,
        };
        let shards = config.udp_shards();
        let udp_listeners = udp_shard::bind_listeners(config.listen_udp, shards)
            .map_err(|source| ServeError::Bind { what: "UDP", addr: config.listen_udp, source })?;
        let udp_addr = udp_listeners
            .first()
            .map(std::net::UdpSocket::local_addr)
            .unwrap_or_else(|| Ok(config.listen_udp))
            .map_err(|source| ServeError::Io { what: "local_addr", source })?;
        let dtls = match (config.listen_dtls, &config.tls_cert, &config.tls_key) {
            (Some(addr), Some(cert), Some(key)) => {
                let sessions = dtls::DtlsSessions::load(cert, key)?;
                let socket = bind_udp(addr, LISTENER_BUFFER).map_err(|source| ServeError::Bind {
                    what: "DTLS",
                    addr,
                    source,
                })?;
                Some((sessions, Arc::new(socket)))
            }
            _ => None,
        };
        let dtls_addr = dtls.as_ref().and_then(|(_, socket)| socket.local_addr().ok());
        let (dtls_sessions, dtls_socket) = dtls.unzip();
        let tcp = match config.listen_tcp {
            Some(addr) => {
                Some(TcpListener::bind(addr).await.map_err(|source| ServeError::Bind { what: "TCP", addr, source })?)
            }
            None => None,
        };
        let tls = match (config.listen_tls, acceptor) {
            (Some(addr), Some(acceptor)) => Some((
                TcpListener::bind(addr).await.map_err(|source| ServeError::Bind { what: "TLS", addr, source })?,
                acceptor,
            )),
            _ => None,
        };
        let http = match config.listen_http {
            Some(addr) => {
                Some(TcpListener::bind(addr).await.map_err(|source| ServeError::Bind { what: "HTTP", addr, source })?)
            }
            None => None,
        };
        let tcp_addr = tcp.as_ref().and_then(|l| l.local_addr().ok());
        let http_addr = http.as_ref().and_then(|l| l.local_addr().ok());
        let tls_addr = tls.as_ref().and_then(|(l, _)| l.local_addr().ok());
        let nonce_key: [u8; 32] = rand::random();
        let unix_now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        let ledger = Arc::new(Ledger::default());
        let core = TurnCore::sharded(&config, nonce_key, Instant::now(), unix_now, ledger.clone(), 0);
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                core,
                relays: HashMap::new(),
                tcp_clients: HashMap::new(),
                tcp_relays: HashMap::new(),
                peer_streams: HashMap::new(),
                data_binds: HashMap::new(),
                pipes: HashMap::new(),
                dtls: dtls_sessions,
            }),
            reserved: Arc::new(ReservedPorts::default()),
            udp_shards: OnceLock::new(),
            dtls_socket,
            config,
            tracker: TaskTracker::new(),
            shutdown: CancellationToken::new(),
            ready: AtomicBool::new(false),
        });
        Ok(BoundServer {
            shared,
            udp_listeners,
            ledger,
            nonce_key,
            tcp,
            tls,
            http,
            udp_addr,
            dtls_addr,
            tcp_addr,
            tls_addr,
            http_addr,
        })
    }

    pub fn udp_addr(&self) -> SocketAddr {
        self.udp_addr
    }

    pub fn tcp_addr(&self) -> Option<SocketAddr> {
        self.tcp_addr
    }

    pub fn tls_addr(&self) -> Option<SocketAddr> {
        self.tls_addr
    }

    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http_addr
    }

    pub fn dtls_addr(&self) -> Option<SocketAddr> {
        self.dtls_addr
    }

    /// Serves until `shutdown` is cancelled, then closes every allocation and waits for
    /// every task to finish.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), ServeError> {
        let shared = self.shared;
        tracing::info!(
            udp = %self.udp_addr,
            tcp = ?self.tcp_addr,
            tls = ?self.tls_addr,
            dtls = ?self.dtls_addr,
            http = ?self.http_addr.map(|a| format!("http://{a}/metrics")),
            relay_ip = %shared.config.relay_ip,
            udp_shards = self.udp_listeners.len(),
            "isoplane-turn serving"
        );
        let shards = udp_shard::UdpShards::start(
            &shared.config,
            self.udp_listeners,
            self.nonce_key,
            &self.ledger,
            &shared.reserved,
        )
        .map_err(|source| ServeError::Io { what: "starting the UDP shards", source })?;
        let shards = shared.udp_shards.get_or_init(|| shards);
        shared.tracker.spawn(timer_loop(shared.clone()));
        if let Some(socket) = shared.dtls_socket.clone() {
            shared.tracker.spawn(dtls_loop(shared.clone(), socket));
        }
        if let Some(listener) = self.tcp {
            shared.tracker.spawn(tcp::accept_loop(shared.clone(), listener, None));
        }
        if let Some((listener, acceptor)) = self.tls {
            shared.tracker.spawn(tcp::accept_loop(shared.clone(), listener, Some(acceptor)));
        }
        if let Some(listener) = self.http {
            shared.tracker.spawn(http::serve(shared.clone(), listener));
        }
        shared.ready.store(true, Ordering::Release);
        shutdown.cancelled().await;
        tracing::info!("shutting down: closing allocations");
        shared.ready.store(false, Ordering::Release);
        shared.drive(|core, _| core.shutdown());
        shards.stop();
        shared.shutdown.cancel();
        {
            let mut state = shared.lock();
            for relay in state.relays.drain().flat_map(|(_, relays)| relays) {
                relay.cancel.cancel();
            }
            state.tcp_clients.clear();
            for (_, relay) in state.tcp_relays.drain() {
                relay.close();
            }
            state.peer_streams.clear();
            state.data_binds.clear();
        }
        shared.tracker.close();
        shared.tracker.wait().await;
        shards.join().await;
        shared.reserved.clear();
        tracing::info!("isoplane-turn stopped");
        Ok(())
    }
}

/// A non-blocking UDP socket with larger kernel buffers (best effort: the kernel may cap
/// them), registered with tokio. Must be called inside a runtime.
pub(super) fn bind_udp(addr: SocketAddr, buffer: usize) -> std::io::Result<UdpSocket> {
    UdpSocket::from_std(bind_std_udp(addr, buffer, false)?)
}

/// The same, not registered with anything (a UDP shard registers it with its own loop).
/// `share_port` (SO_REUSEPORT) is for the shards' listening sockets only: a relay socket
/// must own its port.
pub(super) fn bind_std_udp(addr: SocketAddr, buffer: usize, share_port: bool) -> std::io::Result<std::net::UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if share_port {
        socket.set_reuse_port(true)?;
    }
    let _ = socket.set_recv_buffer_size(buffer);
    let _ = socket.set_send_buffer_size(buffer);
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    Ok(socket.into())
}

/// Binds and serves until `shutdown` is cancelled.
pub async fn serve(config: Config, shutdown: CancellationToken) -> Result<(), ServeError> {
    BoundServer::bind(config).await?.run(shutdown).await
}

async fn timer_loop(shared: Arc<Shared>) {
    loop {
        let next = shared.lock().core.poll_timeout();
        let now = Instant::now();
        let sleep = next.map_or(MAX_TIMER_SLEEP, |at| at.saturating_duration_since(now).min(MAX_TIMER_SLEEP));
        tokio::select! {
            _ = shared.shutdown.cancelled() => return,
            _ = tokio::time::sleep(sleep) => {}
        }
        shared.drive(|core, now| {
            if core.poll_timeout().is_some_and(|at| at <= now) {
                core.handle_timeout(now);
            }
        });
    }
}

/// TURN over DTLS: datagrams into their sessions and the records' messages into the core;
/// every 50 ms, retransmissions and sessions that timed out (whose allocations end).
async fn dtls_loop(shared: Arc<Shared>, socket: Arc<UdpSocket>) {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    let mut ticker = tokio::time::interval(Duration::from_millis(50));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let client = |remote| ClientAddr { transport: Transport::Dtls, remote };
    loop {
        tokio::select! {
            _ = shared.shutdown.cancelled() => return,
            _ = ticker.tick() => shared.drive_state(|state, now| {
                let core = &state.core;
                let has_allocation = |remote| core.has_allocation(client(remote));
                let ended = state.dtls.as_mut().map(|dtls| dtls.handle_timeouts(now, has_allocation)).unwrap_or_default();
                for remote in ended {
                    state.core.handle_client_closed(client(remote));
                }
            }),
            received = socket.recv_from(&mut buf) => {
                let Ok((len, from)) = received else { continue };
                let data = &buf[..len];
                shared.drive_state(|state, now| {
                    let Some(dtls) = state.dtls.as_mut() else { return };
                    let received = dtls.receive(now, from, data);
                    for record in &received.records {
                        state.core.handle_client(now, client(from), record);
                    }
                    if received.ended {
                        state.core.handle_client_closed(client(from));
                    }
                });
            }
        }
    }
}
