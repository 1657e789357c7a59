//! RFC 6062 in the shell: a TCP allocation's listener on its relayed address, dialling
//! peers from that same address, and piping a bound peer connection to the client's data
//! connection. What may connect and when is the core's (core/tcp_allocations.rs).

use super::{Shared, relay};
use crate::core::{AllocationId, ConnectionId, RelayRequest};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// How long dialling a peer may take before the Connect gets 447 (RFC 6062 §5.2).
const DIAL_TIMEOUT: Duration = Duration::from_secs(30);

/// A peer connection handed to the client connection that bound it, with the token the
/// core's ClosePeerConnection cancels (registered before the hand-over, so an allocation
/// that ends meanwhile still ends the pipe).
#[derive(Debug)]
pub(super) struct BoundPeer {
    pub connection: ConnectionId,
    pub stream: TcpStream,
    pub cancel: CancellationToken,
}

/// A TCP allocation's relayed address and the token that ends its listener.
#[derive(Debug)]
pub(super) struct TcpRelay {
    local: SocketAddr,
    cancel: CancellationToken,
}

impl TcpRelay {
    pub(super) fn close(&self) {
        self.cancel.cancel();
    }
}

/// A TCP socket that may share its address with the listener (dialling out from the
/// relayed address needs it).
fn shared_address_socket(address: SocketAddr) -> std::io::Result<TcpSocket> {
    let socket = if address.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
    socket.set_reuseaddr(true)?;
    socket.set_reuseport(true)?;
    socket.bind(address)?;
    Ok(socket)
}

/// Binds the listener and registers it in one step under the lock: with SO_REUSEPORT the
/// kernel would let a second listener share a port, so ports our TCP allocations hold are
/// skipped (two allocations must never have the same relayed address).
fn listen(shared: &Shared, request: RelayRequest, cancel: &CancellationToken) -> Option<(TcpListener, SocketAddr)> {
    let mut state = shared.lock();
    let taken: Vec<u16> = state.tcp_relays.values().map(|relay| relay.local.port()).collect();
    let free = relay::candidate_ports(&shared.config).into_iter().filter(|port| *port == 0 || !taken.contains(port));
    let (listener, local) = free.into_iter().find_map(|port| {
        let listener = shared_address_socket(SocketAddr::new(request.ip, port)).ok()?.listen(128).ok()?;
        let local = listener.local_addr().ok()?;
        (!taken.contains(&local.port())).then_some((listener, local))
    })?;
    state.tcp_relays.insert(request.allocation, TcpRelay { local, cancel: cancel.clone() });
    Some((listener, local))
}

/// Opens a TCP allocation's listener, reports it to the core, then accepts peers until the
/// allocation is closed.
pub(super) fn open(shared: Arc<Shared>, request: RelayRequest) {
    let tracker = shared.tracker.clone();
    tracker.spawn(async move {
        let cancel = CancellationToken::new();
        let listening = listen(&shared, request, &cancel);
        if listening.is_none() {
            tracing::warn!(ip = %request.ip, "no TCP relay port available");
        }
        let bound: Vec<SocketAddr> = listening.iter().map(|(_, local)| *local).collect();
        shared.drive(|core, now| core.complete_allocation(now, request.allocation, &bound));
        let Some((listener, _)) = listening else { return };
        loop {
            let accepted = tokio::select! {
                _ = cancel.cancelled() => return,
                _ = shared.shutdown.cancelled() => return,
                r = listener.accept() => r,
            };
            let (stream, peer) = match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors, say: wait rather than spin.
                    tracing::debug!(%error, "TCP relay accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            // The core decides (a permission for the peer) and tells the client in the
            // same step that keeps the connection for its ConnectionBind.
            shared.drive_state(|state, now| {
                if let Some(connection) = state.core.handle_peer_connection(now, request.allocation, peer) {
                    state.peer_streams.insert(connection, stream);
                }
            });
        }
    });
}

/// Dials `peer` from the TCP allocation's relayed address and reports to the core.
pub(super) fn dial(shared: Arc<Shared>, allocation: AllocationId, connection: ConnectionId, peer: SocketAddr) {
    let tracker = shared.tracker.clone();
    tracker.spawn(async move {
        let local = shared.lock().tcp_relays.get(&allocation).map(|relay| relay.local);
        let dialled = async {
            let socket = shared_address_socket(local?).ok()?;
            tokio::time::timeout(DIAL_TIMEOUT, socket.connect(peer)).await.ok()?.ok()
        };
        let stream = tokio::select! {
            _ = shared.shutdown.cancelled() => return,
            stream = dialled => stream,
        };
        let connected = stream.is_some();
        shared.drive_state(|state, now| {
            if let Some(stream) = stream {
                state.peer_streams.insert(connection, stream);
            }
            state.core.peer_connected(now, connection, connected);
        });
    });
}

/// Pipes a bound peer connection and the client's data connection (whose reading half is
/// `client`, and whose writer takes `to_client`) until either side ends or the core
/// closes the connection. `already_read` is what the client sent after its ConnectionBind.
pub(super) async fn pipe<R: AsyncRead + Unpin>(
    shared: &Arc<Shared>,
    bound: BoundPeer,
    client: &mut R,
    to_client: mpsc::Sender<Vec<u8>>,
    already_read: Vec<u8>,
) {
    let BoundPeer { connection, stream: peer, cancel } = bound;
    let _ = peer.set_nodelay(true);
    let (mut peer_read, mut peer_write) = peer.into_split();
    let from_client = async {
        if peer_write.write_all(&already_read).await.is_err() {
            return;
        }
        let mut chunk = vec![0u8; 16384];
        while let Ok(n @ 1..) = client.read(&mut chunk).await {
            if peer_write.write_all(&chunk[..n]).await.is_err() {
                return;
            }
            shared.drive(|core, _| core.count_piped(true, n));
        }
    };
    let from_peer = async {
        let mut chunk = vec![0u8; 16384];
        while let Ok(n @ 1..) = peer_read.read(&mut chunk).await {
            if to_client.send(chunk[..n].to_vec()).await.is_err() {
                return;
            }
            shared.drive(|core, _| core.count_piped(false, n));
        }
    };
    tokio::select! {
        () = from_client => {}
        () = from_peer => {}
        _ = cancel.cancelled() => {}
        _ = shared.shutdown.cancelled() => {}
    }
    shared.lock().pipes.remove(&connection);
    shared.drive(|core, _| core.peer_connection_closed(connection));
}
