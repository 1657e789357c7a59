//! RFC 6062 on the core: TCP allocations reach TCP peers. A client's Connect makes the
//! shell dial the peer from the relayed address; a peer with a permission may dial in,
//! and the client is told with a ConnectionAttempt; either connection then waits for the
//! client's ConnectionBind on a new connection to the server, after which the shell pipes
//! the two together. The peer policy and the allocation quotas are the UDP relay's.

use super::peer_connections::{BIND_WAIT, ConnectionId, PeerConnection, Stage};
use super::*;

/// REQUESTED-TRANSPORT's value for TCP.
pub(super) const TCP: u8 = 6;

impl TurnCore {
    /// Connect (RFC 6062 §5.2): dials XOR-PEER-ADDRESS from the relayed address of the
    /// client's TCP allocation; the answer follows [`TurnCore::peer_connected`].
    pub(super) fn handle_connect(&mut self, now: Instant, request: &Request, message: &Message<'_>, key: &LongTermKey) {
        let Some(id) = self.by_client.get(&request.client).copied() else {
            return self.send_error(request, 437, Some(key), |_| {});
        };
        if !self.allocations.get(&id).is_some_and(|a| a.tcp) {
            return self.send_error(request, 400, Some(key), |_| {});
        }
        let peer = match self.checked_peers(message, id) {
            Ok(peers) if peers.len() == 1 => peers[0],
            Ok(_) => return self.send_error(request, 400, Some(key), |_| {}),
            Err(code) => return self.send_error(request, code, Some(key), |_| {}),
        };
        if self.peer_connections.exists(id, peer) {
            return self.send_error(request, 446, Some(key), |_| {});
        }
        if !self.peer_connections.has_room(id) {
            return self.send_error(request, 508, Some(key), |_| {});
        }
        // Naming the peer gives it a permission, as ChannelBind does: it may dial in too.
        if let Some(a) = self.allocations.get_mut(&id) {
            a.install_permission(peer.ip(), now);
        }
        let stage = Stage::Dialling { transaction_id: request.transaction_id, fingerprint: request.fingerprint };
        let connection = self.peer_connections.insert(PeerConnection { allocation: id, peer, stage });
        self.outputs.push_back(Output::ConnectPeer { allocation: id, connection, peer });
    }

    /// The shell's answer to [`Output::ConnectPeer`]: whether the peer accepted in time.
    pub fn peer_connected(&mut self, now: Instant, connection: ConnectionId, connected: bool) {
        let dialling = self.peer_connections.get(connection).and_then(|c| match c.stage {
            Stage::Dialling { transaction_id, fingerprint } => Some((c.allocation, transaction_id, fingerprint)),
            _ => None,
        });
        let Some((allocation, transaction_id, fingerprint)) = dialling else {
            // Its allocation went away meanwhile.
            if connected {
                self.outputs.push_back(Output::ClosePeerConnection(connection));
            }
            return;
        };
        let Some((client, key)) = self.allocations.get(&allocation).map(|a| (a.client, a.key)) else { return };
        let request = Request { client, method: Method::Connect, transaction_id, len: 0, fingerprint };
        if !connected {
            self.peer_connections.remove(connection);
            return self.send_error(&request, 447, Some(&key), |_| {});
        }
        let until = now + BIND_WAIT;
        self.peer_connections.await_bind(connection, until);
        self.metrics.tcp_connections += 1;
        self.schedule(until);
        self.send_success(&request, &key, |b| {
            b.u32(attr::CONNECTION_ID, connection);
        });
    }

    /// A peer connected to the relayed address of TCP allocation `allocation` (RFC 6062
    /// §5.3): the ID to keep its connection under until the client binds it, or `None` to
    /// close it (no permission for its address).
    pub fn handle_peer_connection(
        &mut self,
        now: Instant,
        allocation: AllocationId,
        peer: SocketAddr,
    ) -> Option<ConnectionId> {
        let a = self.allocations.get(&allocation).filter(|a| a.tcp && !a.is_expired(now))?;
        if !a.has_permission(peer.ip(), now) || !self.peer_connections.has_room(allocation) {
            self.metrics.refuse(Refusal::NoPermission);
            return None;
        }
        let client = a.client;
        let until = now + BIND_WAIT;
        let stage = Stage::AwaitingBind { until };
        let connection = self.peer_connections.insert(PeerConnection { allocation, peer, stage });
        self.schedule(until);
        self.metrics.tcp_connections += 1;
        let mut tid = [0u8; 12];
        tid[..8].copy_from_slice(&self.next_id.to_be_bytes());
        tid[8..].copy_from_slice(&connection.to_be_bytes());
        let mut b = MessageBuilder::new(Method::ConnectionAttempt, Class::Indication, tid);
        b.xor_address(attr::XOR_PEER_ADDRESS, peer);
        b.u32(attr::CONNECTION_ID, connection);
        self.outputs.push_back(Output::ToClient { client, data: b.finish() });
        Some(connection)
    }

    /// ConnectionBind (RFC 6062 §5.4), on a new TCP or TLS connection of the client's: the
    /// same user's connection waiting for its bind is piped to this one.
    pub(super) fn handle_connection_bind(
        &mut self,
        request: &Request,
        message: &Message<'_>,
        key: &LongTermKey,
        username: &str,
    ) {
        let connection = message.get(attr::CONNECTION_ID).and_then(attr::decode_u32);
        let waiting = connection.and_then(|id| self.peer_connections.get(id).map(|c| (id, *c)));
        let owner = waiting.and_then(|(_, c)| self.allocations.get(&c.allocation)).map(|a| a.username.as_str());
        let data_connection_free = request.client.transport.is_stream()
            && !self.by_client.contains_key(&request.client)
            && self.peer_connections.bound_to(request.client).is_none();
        match waiting {
            Some((id, c))
                if matches!(c.stage, Stage::AwaitingBind { .. }) && owner == Some(username) && data_connection_free =>
            {
                self.peer_connections.bind(id, request.client);
                self.send_success(request, key, |_| {});
                self.outputs.push_back(Output::BindData { connection: id, client: request.client });
            }
            _ => self.send_error(request, 400, Some(key), |_| {}),
        }
    }

    /// Bytes a pipe carried: to the peer, or to the client.
    pub fn count_piped(&mut self, to_peer: bool, bytes: usize) {
        let counter =
            if to_peer { &mut self.metrics.tcp_bytes_to_peers } else { &mut self.metrics.tcp_bytes_to_clients };
        *counter += bytes as u64;
    }

    /// A piped peer connection ended (either side closed).
    pub fn peer_connection_closed(&mut self, connection: ConnectionId) {
        self.peer_connections.remove(connection);
    }

    /// Closes the peer connections whose bind wait ran out; the next time one will.
    pub(super) fn expire_peer_connections(&mut self, now: Instant) -> Option<Instant> {
        let (expired, next) = self.peer_connections.expire(now);
        for id in expired {
            self.outputs.push_back(Output::ClosePeerConnection(id));
        }
        next
    }

    /// Closes every peer connection of an allocation that ends.
    pub(super) fn close_peer_connections(&mut self, allocation: AllocationId) {
        for id in self.peer_connections.remove_allocation(allocation) {
            self.outputs.push_back(Output::ClosePeerConnection(id));
        }
    }
}
