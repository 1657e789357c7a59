//! Relay sockets: binding one per allocation and family (in the configured port range,
//! even when asked, with the next port held for a RESERVATION-TOKEN when EVEN-PORT's R bit
//! asks), for the UDP shards and the stream shell alike; and the stream shell's tasks that
//! read peers' datagrams into its core until closed.

use super::{MAX_DATAGRAM, RELAY_BUFFER, RelayHandle, Shared};
use crate::config::Config;
use crate::core::{AllocationId, Family, RelayRequest, ReservationToken};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;

/// How many binds we try for an even port or a free port in the range.
const BIND_ATTEMPTS: usize = 64;

/// Ports held for a RESERVATION-TOKEN (EVEN-PORT with the R bit) until an Allocate
/// claims them, shared by the server's shells: the claim may reach another one.
#[derive(Debug, Default)]
pub(super) struct ReservedPorts(Mutex<HashMap<ReservationToken, std::net::UdpSocket>>);

impl ReservedPorts {
    fn lock(&self) -> MutexGuard<'_, HashMap<ReservationToken, std::net::UdpSocket>> {
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn hold(&self, token: ReservationToken, socket: std::net::UdpSocket) {
        self.lock().insert(token, socket);
    }

    fn take(&self, token: &ReservationToken) -> Option<std::net::UdpSocket> {
        self.lock().remove(token)
    }

    /// Closes the port kept under `token` (its reservation lapsed).
    pub(super) fn drop_port(&self, token: &ReservationToken) {
        self.take(token);
    }

    pub(super) fn clear(&self) {
        self.lock().clear();
    }
}

/// The ports to try binding, in order: the OS's choice, or the configured range from a
/// random place in it.
pub(super) fn candidate_ports(config: &Config) -> Vec<u16> {
    match config.relay_port_range {
        None => vec![0; BIND_ATTEMPTS],
        Some((low, high)) => {
            let span = u32::from(high - low) + 1;
            let start: u32 = rand::random::<u32>() % span;
            (0..span.min(BIND_ATTEMPTS as u32)).map(|i| low + ((start + i) % span) as u16).collect()
        }
    }
}

fn bind(config: &Config, request: RelayRequest) -> Option<std::net::UdpSocket> {
    for port in candidate_ports(config) {
        if request.even_port && port % 2 == 1 {
            continue;
        }
        let Ok(socket) = super::bind_std_udp(SocketAddr::new(request.ip, port), RELAY_BUFFER, false) else { continue };
        let Ok(local) = socket.local_addr() else { continue };
        if request.even_port && local.port() % 2 == 1 {
            continue;
        }
        return Some(socket);
    }
    None
}

/// Binds an even port and the port after it (EVEN-PORT with the R bit).
fn bind_pair(config: &Config, request: RelayRequest) -> Option<(std::net::UdpSocket, std::net::UdpSocket)> {
    for _ in 0..BIND_ATTEMPTS {
        let even = bind(config, RelayRequest { reserve_next: None, ..request })?;
        let Ok(local) = even.local_addr() else { continue };
        let Some(next_port) = local.port().checked_add(1) else { continue };
        if let Some((_, high)) = config.relay_port_range
            && next_port > high
        {
            continue;
        }
        if let Ok(next) = super::bind_std_udp(SocketAddr::new(request.ip, next_port), RELAY_BUFFER, false) {
            return Some((even, next));
        }
    }
    None
}

/// Binds the relay sockets `request` asks for (non-blocking): its reserved port, or a
/// fresh one (with the port after it held under its token if asked), then one of the
/// second family for a dual allocation. Fewer than asked when ports ran out.
pub(super) fn bind_relays(
    config: &Config,
    request: RelayRequest,
    reserved: &ReservedPorts,
) -> Vec<std::net::UdpSocket> {
    let primary = if let Some(token) = request.use_reservation {
        reserved.take(&token)
    } else if let Some(token) = request.reserve_next {
        bind_pair(config, request).map(|(even, next)| {
            reserved.hold(token, next);
            even
        })
    } else {
        bind(config, request)
    };
    let additional = request.additional_ip.and_then(|ip| {
        bind(config, RelayRequest { ip, even_port: false, reserve_next: None, use_reservation: None, ..request })
    });
    let sockets: Vec<std::net::UdpSocket> = [primary, additional].into_iter().flatten().collect();
    if sockets.len() < 1 + usize::from(request.additional_ip.is_some()) {
        tracing::warn!(ip = %request.ip, additional = ?request.additional_ip, "no relay port available");
    }
    sockets
}

/// Binds the relay sockets for `request` (in a task), reports them to the core, then
/// reads each one in a task of its own until its allocation (or family) is closed.
pub(super) fn open(shared: Arc<Shared>, request: RelayRequest) {
    let tracker = shared.tracker.clone();
    tracker.spawn(async move {
        let mut bound = Vec::new();
        let mut relays = Vec::new();
        for socket in bind_relays(&shared.config, request, &shared.reserved) {
            let (Ok(local), Ok(socket)) = (socket.local_addr(), UdpSocket::from_std(socket)) else { continue };
            bound.push(local);
            let family = Family::of(local.ip());
            relays.push(RelayHandle { socket: Arc::new(socket), family, cancel: CancellationToken::new() });
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
