//! Isoplane's selective forwarding unit: the media plane's top tier, for crowded zones
//! and meeting rooms.
//!
//! Publishers send their audio and video once; the SFU forwards each RTP packet to the
//! subscribers that want it (str0m in RTP mode: no decoding, no mixing). Signaling
//! decides who goes through the SFU and hands each client a room token; the client
//! brings that token to `/v1/sfu` and negotiates one WebRTC session with the SFU there.
//! This crate never depends on `isoplane-signaling`; they share only tokens
//! (`isoplane-auth`) and the protocol in [`protocol`].
//!
//! # Layout
//! - [`protocol`]: the client session and control API messages.
//! - [`room`]: a room as a sans-IO state machine (sessions, forwarding, negotiation,
//!   subscriptions, speakers, limits); [`participant`]: one peer's state;
//!   [`forward`]: simulcast layer switching and RTP rewriting; [`vp8_munger`]: VP8
//!   picture numbers kept continuous across layer switches; [`vp9_svc`]: VP9 spatial
//!   layers per subscriber; [`speakers`]: active
//!   speaker detection; [`demux`]: which worker an ICE-TCP connection belongs to;
//!   [`egress`]: forwarded packets the SFU protects and sends itself (audio), beside
//!   str0m; [`srtp`]: SRTP and SRTCP the SFU protects and reads itself, with the keys
//!   [`srtp_keys`] keeps from each session's DTLS handshake; [`sender_report`]: str0m's
//!   sender reports rewritten for those streams; [`rtcp_feedback`]: what a receiver
//!   reports in RTCP (reports, NACKs, keyframe requests, transport-wide feedback).
//! - [`worker`]: the thread that owns a share of the rooms and a UDP media port of its
//!   own; [`http`]: WebSocket sessions, control API, health and metrics; [`ingest`]:
//!   a broadcaster's stream (WHIP, through signaling) published into a room;
//!   [`recording`]: rooms written to the object store as WebM.
//! - [`config`]: the operator's settings.

pub mod bandwidth;
pub mod config;
pub mod demux;
pub mod egress;
pub mod forward;
pub mod http;
pub mod ingest;
pub mod metrics;
pub mod packet_history;
pub mod participant;
pub mod protocol;
pub mod recording;
pub mod room;
pub mod rtcp_feedback;
pub mod sender_report;
#[cfg(test)]
mod session_pair;
pub mod speakers;
pub mod srtp;
pub mod srtp_keys;
pub mod transport_cc;
pub mod vp8_munger;
pub mod vp9_svc;
pub mod worker;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use isoplane_auth::TokenKey;
use isoplane_service::redis_retry;
use isoplane_service::tasks::Tasks;
use str0m::Candidate;
use str0m::net::TcpType;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

pub use config::{Config, ConfigError, Limits};

use crate::metrics::Metrics;
use crate::participant::Candidates;
use crate::worker::{Command, Shared, Worker};

/// Why the SFU could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot bind {what} on {address}: {source}")]
    Bind { what: &'static str, address: SocketAddr, source: std::io::Error },
    #[error("cannot make the DTLS certificate")]
    Certificate,
    #[error("bad ICE candidate address {0}")]
    Candidate(SocketAddr),
    #[error("recording store: {0}")]
    RecordingStore(#[from] isoplane_service::object_storage::OpenStoreError),
}

/// The SFU with its sockets bound, not yet serving.
#[derive(Debug)]
pub struct BoundSfu {
    config: Config,
    http: TcpListener,
    udp: Vec<std::net::UdpSocket>,
    tcp: Option<TcpListener>,
    shared: Arc<Shared>,
    receivers: Vec<mpsc::Receiver<Command>>,
}

/// Binds every socket (so the ports are known and errors come early).
pub async fn bind(config: Config) -> Result<BoundSfu, StartError> {
    config.validate()?;
    str0m::crypto::from_feature_flags().install_process_default();
    let workers = config.worker_count();
    let http = TcpListener::bind(config.listen_http).await.map_err(|source| StartError::Bind {
        what: "HTTP",
        address: config.listen_http,
        source,
    })?;
    let udp = bind_udp(config.listen_udp, workers)?;
    let tcp = match config.listen_tcp {
        Some(address) => Some(TcpListener::bind(address).await.map_err(|source| StartError::Bind {
            what: "ICE-TCP",
            address,
            source,
        })?),
        None => None,
    };
    let ip = config.candidate_ip();
    let mut udp_candidates = Vec::with_capacity(udp.len());
    for socket in &udp {
        let port = socket
            .local_addr()
            .map_err(|source| StartError::Bind { what: "UDP", address: config.listen_udp, source })?
            .port();
        let address = SocketAddr::new(ip, port);
        udp_candidates.push(Candidate::host(address, "udp").map_err(|_| StartError::Candidate(address))?);
    }
    let tcp_candidate = match &tcp {
        Some(listener) => {
            let port = listener
                .local_addr()
                .map_err(|source| StartError::Bind { what: "ICE-TCP", address: SocketAddr::new(ip, 0), source })?
                .port();
            let address = SocketAddr::new(ip, port);
            Some(
                Candidate::builder()
                    .tcp()
                    .host(address)
                    .tcptype(TcpType::Passive)
                    .build()
                    .map_err(|_| StartError::Candidate(address))?,
            )
        }
        None => None,
    };
    let recording_store = match &config.recording {
        recording if recording.enabled => {
            Some(recording.store.open(std::path::Path::new(config::RecordingConfig::DEFAULT_DIRECTORY))?)
        }
        _ => None,
    };
    let certificate =
        str0m::crypto::from_feature_flags().dtls_provider.generate_certificate().ok_or(StartError::Certificate)?;
    let (senders, receivers): (Vec<_>, Vec<_>) = (0..workers).map(|_| mpsc::channel(worker::COMMAND_QUEUE)).unzip();
    let shared = Arc::new(Shared {
        workers: senders,
        metrics: Arc::new(Metrics::default()),
        limits: Arc::new(config.limits.clone()),
        candidates: Candidates { udp: udp_candidates, tcp: tcp_candidate },
        certificate,
        next_participant: AtomicU64::new(1),
        recording_store,
        uploads: tokio::runtime::Handle::current(),
    });
    Ok(BoundSfu { config, http, udp, tcp, shared, receivers })
}

/// A socket per worker, each on a port of its own: `address`'s port for the first worker,
/// the next ports for the others (each an ephemeral port when `address`'s is 0). Each
/// worker puts its own port in its sessions' ICE candidates, so every peer's datagrams
/// reach the worker that owns its session, with no handoff between threads.
fn bind_udp(address: SocketAddr, count: usize) -> Result<Vec<std::net::UdpSocket>, StartError> {
    use socket2::{Domain, Protocol, Socket, Type};
    let mut sockets = Vec::with_capacity(count);
    for worker in 0..count {
        let mut bound = address;
        if address.port() != 0 {
            // Config::validate keeps the last port within range.
            bound.set_port(address.port().saturating_add(u16::try_from(worker).unwrap_or(u16::MAX)));
        }
        let error = |source| StartError::Bind { what: "UDP", address: bound, source };
        let socket = Socket::new(Domain::for_address(bound), Type::DGRAM, Some(Protocol::UDP)).map_err(error)?;
        socket.set_nonblocking(true).map_err(error)?;
        // Room for bursts (a keyframe to many subscribers) before the kernel drops.
        let _ = socket.set_recv_buffer_size(4 << 20);
        let _ = socket.set_send_buffer_size(4 << 20);
        socket.bind(&bound.into()).map_err(error)?;
        sockets.push(socket.into());
    }
    Ok(sockets)
}

impl BoundSfu {
    pub fn http_addr(&self) -> SocketAddr {
        self.http.local_addr().unwrap_or(self.config.listen_http)
    }

    /// Each worker's media port's address as clients see it in candidates, by worker.
    pub fn udp_addrs(&self) -> Vec<SocketAddr> {
        self.shared.candidates.udp.iter().map(Candidate::addr).collect()
    }

    pub fn tcp_addr(&self) -> Option<SocketAddr> {
        self.tcp.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// Serves until `shutdown` is cancelled; then ends every session and returns.
    pub async fn run(self, shutdown: CancellationToken) -> std::io::Result<()> {
        let BoundSfu { config, http, udp, tcp, shared, receivers } = self;
        let mut threads = Vec::new();
        for (index, (socket, commands)) in udp.into_iter().zip(receivers).enumerate() {
            let (shared, stop) = (shared.clone(), shutdown.clone());
            let thread = std::thread::Builder::new().name(format!("sfu-worker-{index}")).spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
                runtime.block_on(async move {
                    Worker::new(index, shared, socket)?.run(commands, stop).await;
                    Ok::<(), std::io::Error>(())
                })
            })?;
            threads.push(thread);
        }
        let tasks = Tasks::new(shutdown.clone());
        if let Some(listener) = tcp {
            tasks.spawn(accept_ice_tcp(listener, shared.clone(), tasks.clone()));
        }
        if let Some(directory) = config.directory.clone() {
            let address = http.local_addr().unwrap_or(config.listen_http);
            tasks.spawn(report_to_directory(directory, address, shared.metrics.clone(), shutdown.clone()));
        }
        tracing::info!(
            http = %http.local_addr()?,
            udp = ?shared.candidates.udp.iter().map(|c| c.addr().port()).collect::<Vec<_>>(),
            workers = threads.len(),
            "SFU serving: /v1/sfu (clients), /v1/rooms (control), /metrics"
        );
        let state = http::AppState {
            shared: shared.clone(),
            key: TokenKey::new(config.secret.as_bytes()),
            signal_bytes: config.limits.signal_bytes,
        };
        let stop = shutdown.clone();
        let result =
            axum::serve(http, http::router(state)).with_graceful_shutdown(async move { stop.cancelled().await }).await;
        tasks.stop(SHUTDOWN_GRACE).await;
        for thread in threads {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
        result
    }
}

/// How long a stopping SFU waits for its background tasks (directory withdrawal, ICE-TCP
/// handshakes).
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// How often this node reports to the SFU directory; a report lasts three times that.
const REPORT_INTERVAL: Duration = Duration::from_secs(1);

/// Keeps this node and its load in the SFU directory until shutdown, then withdraws it.
async fn report_to_directory(
    directory: config::DirectoryConfig,
    http: SocketAddr,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) {
    let id = directory.node_id.clone().unwrap_or_else(|| format!("sfu-{:016x}", rand::random::<u64>()));
    let mut node = isoplane_service::sfu_directory::SfuNode {
        id: id.clone(),
        url: directory.public_url.clone().unwrap_or_else(|| format!("ws://{http}/v1/sfu")),
        control_url: directory.control_url.clone().unwrap_or_else(|| format!("http://{http}")),
        participants: 0,
        capacity: directory.capacity,
    };
    let reach = "reach the SFU directory's Redis";
    let connected = redis_retry::connection_manager(&directory.redis_url, reach, REPORT_INTERVAL, &shutdown).await;
    let Some(mut redis) = connected else { return };
    tracing::info!(node = %id, pool = %directory.pool, url = %node.url, "reporting to the SFU directory");
    let mut ticker = tokio::time::interval(REPORT_INTERVAL);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            _ = ticker.tick() => {}
        }
        node.participants = u64::try_from(metrics.participants.get()).unwrap_or(0);
        let reported = isoplane_service::sfu_directory::report(&mut redis, &directory.pool, &node, REPORT_INTERVAL * 3);
        if let Err(error) = reported.await {
            tracing::warn!(%error, "cannot report to the SFU directory");
        }
    }
    if let Err(error) = isoplane_service::sfu_directory::withdraw(&mut redis, &directory.pool, &id).await {
        tracing::warn!(%error, "cannot withdraw from the SFU directory");
    }
}

/// ICE-TCP: each connection's first frame is a STUN request naming its worker, which
/// takes the connection over.
async fn accept_ice_tcp(listener: TcpListener, shared: Arc<Shared>, tasks: Tasks) {
    loop {
        let accepted = tokio::select! {
            _ = tasks.shutdown().cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let Ok((mut stream, _)) = accepted else { continue };
        let shared = shared.clone();
        tasks.spawn(async move {
            let first = tokio::time::timeout(Duration::from_secs(5), worker::read_frame(&mut stream)).await;
            let Ok(Ok(first_frame)) = first else { return };
            let Some(owner) = demux::stun_worker(&first_frame).filter(|w| *w < shared.workers.len()) else { return };
            let Ok(stream) = stream.into_std() else { return };
            // Waits for room: a connection is as precious as a join (an error means the
            // worker is gone and the connection is closed with it).
            let _ = shared.workers[owner].send(Command::TcpConnection { stream, first_frame }).await;
        });
    }
}
