//! Relay sockets: binding one per allocation and family (in the configured port range,
//! even when asked, with the next port held for a RESERVATION-TOKEN when EVEN-PORT's R bit
//! asks), and the tasks that read peers' datagrams into the core until closed.

use super::{MAX_DATAGRAM, RELAY_BUFFER, RelayHandle, Shared};
use crate::core::{AllocationId, Family, RelayRequest};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;

/// How many binds we try for an even port or a free port in the range.
const BIND_ATTEMPTS: usize = 64;

/// The ports to try binding, in order: the OS's choice, or the configured range from a
/// random place in it.
pub(super) fn candidate_ports(shared: &Shared) -> Vec<u16> {
    match shared.config.relay_port_range {
        None => vec![0; BIND_ATTEMPTS],
        Some((low, high)) => {
            let span = u32::from(high - low) + 1;
            let start: u32 = rand::random::<u32>() % span;
            (0..span.min(BIND_ATTEMPTS as u32)).map(|i| low + ((start + i) % span) as u16).collect()
        }
    }
}

async fn bind(shared: &Shared, request: RelayRequest) -> Option<UdpSocket> {
    for port in candidate_ports(shared) {
        if request.even_port && port % 2 == 1 {
            continue;
        }
        let Ok(socket) = super::bind_udp(SocketAddr::new(request.ip, port), RELAY_BUFFER) else { continue };
        let Ok(local) = socket.local_addr() else { continue };
        if request.even_port && local.port() % 2 == 1 {
            continue;
        }
        return Some(socket);
    }
    None
}

/// Binds an even port and the port after it (EVEN-PORT with the R bit).
async fn bind_pair(shared: &Shared, request: RelayRequest) -> Option<(UdpSocket, UdpSocket)> {
    for _ in 0..BIND_ATTEMPTS {
        let even = bind(shared, RelayRequest { reserve_next: None, ..request }).await?;
        let Ok(local) = even.local_addr() else { continue };
        let Some(next_port) = local.port().checked_add(1) else { continue };
        if let Some((_, high)) = shared.config.relay_port_range
            && next_port > high
        {
            continue;
        }
        if let Ok(next) = super::bind_udp(SocketAddr::new(request.ip, next_port), RELAY_BUFFER) {
            return Some((even, next));
        }
    }
    None
}

/// Binds the relay sockets for `request` (in a task), reports them to the core, then
/// reads each one in a task of its own until its allocation (or family) is closed.
pub(super) fn open(shared: Arc<Shared>, request: RelayRequest) {
    let tracker = shared.tracker.clone();
    tracker.spawn(async move {
        let primary = if let Some(token) = request.use_reservation {
            shared.lock().reserved.remove(&token)
        } else if let Some(token) = request.reserve_next {
            bind_pair(&shared, request).await.map(|(even, next)| {
                shared.lock().reserved.insert(token, next);
                even
            })
        } else {
            bind(&shared, request).await
        };
        let additional = match request.additional_ip {
            Some(ip) => {
                let plain = RelayRequest { ip, even_port: false, reserve_next: None, use_reservation: None, ..request };
                bind(&shared, plain).await
            }
            None => None,
        };
        let mut bound = Vec::new();
        let mut relays = Vec::new();
        for socket in [primary, additional].into_iter().flatten() {
            let Ok(local) = socket.local_addr() else { continue };
            bound.push(local);
            let family = Family::of(local.ip());
            relays.push(RelayHandle { socket: Arc::new(socket), family, cancel: CancellationToken::new() });
        }
        if bound.len() < 1 + usize::from(request.additional_ip.is_some()) {
            tracing::warn!(ip = %request.ip, additional = ?request.additional_ip, "no relay port available");
        }
        if !relays.is_empty() {
            shared.lock().relays.insert(request.allocation, relays.clone());
        }
        shared.drive(|core, now| core.complete_allocation(now, request.allocation, &bound));
        for relay in relays {
            shared.tracker.spawn(read_peers(shared.clone(), request.allocation, relay));
        }
    });
}

/// Feeds the core every datagram peers send to one relay socket.
async fn read_peers(shared: Arc<Shared>, allocation: AllocationId, relay: RelayHandle) {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        let received = tokio::select! {
            _ = relay.cancel.cancelled() => return,
            _ = shared.shutdown.cancelled() => return,
            r = relay.socket.recv_from(&mut buf) => r,
        };
        match received {
            Ok((len, from)) => {
                let data = &buf[..len];
                shared.drive(|core, now| core.handle_peer(now, allocation, from, data));
            }
            Err(e) => tracing::trace!(error = %e, "relay receive error"),
        }
    }
}
