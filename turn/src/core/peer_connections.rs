//! RFC 6062 TCP allocations: the TCP connections between a relayed address and peers.
//!
//! A connection is made by a client's Connect (the server dials out from the relayed
//! address) or by a peer dialling in (the client is told with a ConnectionAttempt). Either
//! way it then waits up to [`BIND_WAIT`] for the client to open a new connection to the
//! server and send ConnectionBind with its CONNECTION-ID; from then on the shell pipes
//! bytes between the two connections until either ends. Pure data with time passed in.

use super::{AllocationId, ClientAddr};
use crate::proto::TransactionId;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// How long a peer connection waits for its ConnectionBind (RFC 6062 §5.2, §5.3).
pub const BIND_WAIT: Duration = Duration::from_secs(30);
/// Peer connections one allocation may have at once, in any stage: each holds a socket
/// (two once bound), so an allocation cannot take the server's file descriptors.
pub const MAX_PER_ALLOCATION: usize = 64;

/// A CONNECTION-ID.
pub type ConnectionId = u32;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// The shell is dialling the peer for the Connect request with this transaction.
    Dialling { transaction_id: TransactionId, fingerprint: bool },
    /// Connected; the client has until then to bind it.
    AwaitingBind { until: Instant },
    /// Piped to this data connection of the client's.
    Bound { data: ClientAddr },
}

#[derive(Debug, Clone, Copy)]
pub struct PeerConnection {
    pub allocation: AllocationId,
    pub peer: SocketAddr,
    pub stage: Stage,
}

/// Every peer connection of the server.
#[derive(Debug, Default)]
pub struct PeerConnections {
    by_id: HashMap<ConnectionId, PeerConnection>,
    /// How many connections each allocation has.
    per_allocation: HashMap<AllocationId, usize>,
    /// The connection piped to each data connection.
    by_data: HashMap<ClientAddr, ConnectionId>,
    next_id: ConnectionId,
}

impl PeerConnections {
    /// A new connection's ID (never 0, never one in use).
    pub fn insert(&mut self, connection: PeerConnection) -> ConnectionId {
        loop {
            self.next_id = self.next_id.wrapping_add(1);
            if self.next_id != 0 && !self.by_id.contains_key(&self.next_id) {
                break;
            }
        }
        self.by_id.insert(self.next_id, connection);
        *self.per_allocation.entry(connection.allocation).or_default() += 1;
        self.next_id
    }

    /// Whether `allocation` may have one more connection.
    pub fn has_room(&self, allocation: AllocationId) -> bool {
        self.per_allocation.get(&allocation).copied().unwrap_or(0) < MAX_PER_ALLOCATION
    }

    /// Pipes connection `id` to the client's data connection `data`.
    pub fn bind(&mut self, id: ConnectionId, data: ClientAddr) {
        if let Some(c) = self.by_id.get_mut(&id) {
            c.stage = Stage::Bound { data };
            self.by_data.insert(data, id);
        }
    }

    pub fn get(&self, id: ConnectionId) -> Option<&PeerConnection> {
        self.by_id.get(&id)
    }

    /// Moves a dialled connection on to waiting for its bind.
    pub fn await_bind(&mut self, id: ConnectionId, until: Instant) {
        if let Some(c) = self.by_id.get_mut(&id) {
            c.stage = Stage::AwaitingBind { until };
        }
    }

    pub fn remove(&mut self, id: ConnectionId) -> Option<PeerConnection> {
        let removed = self.by_id.remove(&id)?;
        if let Some(count) = self.per_allocation.get_mut(&removed.allocation) {
            *count -= 1;
            if *count == 0 {
                self.per_allocation.remove(&removed.allocation);
            }
        }
        if let Stage::Bound { data } = removed.stage {
            self.by_data.remove(&data);
        }
        Some(removed)
    }

    /// Whether `allocation` has a connection to `peer`, in any stage (a scan, bounded by
    /// the Connect requests that reach it: at most one per allocation with room).
    pub fn exists(&self, allocation: AllocationId, peer: SocketAddr) -> bool {
        self.per_allocation.contains_key(&allocation)
            && self.by_id.values().any(|c| c.allocation == allocation && c.peer == peer)
    }

    /// The connection piped to the data connection `data`.
    pub fn bound_to(&self, data: ClientAddr) -> Option<ConnectionId> {
        self.by_data.get(&data).copied()
    }

    /// Removes every connection of `allocation`; returns their IDs.
    pub fn remove_allocation(&mut self, allocation: AllocationId) -> Vec<ConnectionId> {
        if !self.per_allocation.contains_key(&allocation) {
            return Vec::new();
        }
        let ids: Vec<ConnectionId> =
            self.by_id.iter().filter(|(_, c)| c.allocation == allocation).map(|(id, _)| *id).collect();
        for id in &ids {
            self.remove(*id);
        }
        ids
    }

    /// Removes the connections whose bind wait ran out; returns their IDs, and the next
    /// time one runs out.
    pub fn expire(&mut self, now: Instant) -> (Vec<ConnectionId>, Option<Instant>) {
        let mut expired = Vec::new();
        let mut next: Option<Instant> = None;
        for (id, c) in &self.by_id {
            match c.stage {
                Stage::AwaitingBind { until } if until <= now => expired.push(*id),
                Stage::AwaitingBind { until } => next = Some(next.map_or(until, |n| n.min(until))),
                _ => {}
            }
        }
        for id in &expired {
            self.remove(*id);
        }
        (expired, next)
    }
}
