//! Counters the core keeps as plain integers; the shell copies a snapshot into a
//! metrics registry at scrape time (net/http.rs).
//!
//! Invariant: counters only grow; gauges (current allocations) are read from the state.

/// Why something was refused or dropped (the `reason` label of `turn_refusals_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// CreatePermission/ChannelBind/Send towards a refused address range (403 or drop).
    ForbiddenPeer,
    /// Per-user allocation quota (486).
    UserQuota,
    /// Server-wide allocation quota (486).
    TotalQuota,
    /// Packet over the allocation's bandwidth cap (dropped).
    Bandwidth,
    /// Data to or from a peer without a permission (dropped).
    NoPermission,
    /// ChannelData or a Send indication from a client with no allocation (or one whose
    /// lifetime ran out, even before the sweep removed it), or on a channel that is not
    /// bound (dropped).
    NoAllocationOrChannel,
    /// Bytes that are neither STUN nor ChannelData, or a bad FINGERPRINT (dropped).
    Malformed,
    /// An answer to an unauthenticated request would be larger than the request (dropped).
    Amplification,
    /// Any other 4xx the client's request earned (400, 420, 437, 442, 443…).
    BadRequest,
}

impl Refusal {
    pub const ALL: [Refusal; 9] = [
        Refusal::ForbiddenPeer,
        Refusal::UserQuota,
        Refusal::TotalQuota,
        Refusal::Bandwidth,
        Refusal::NoPermission,
        Refusal::NoAllocationOrChannel,
        Refusal::Malformed,
        Refusal::Amplification,
        Refusal::BadRequest,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::ForbiddenPeer => "forbidden_peer",
            Refusal::UserQuota => "user_quota",
            Refusal::TotalQuota => "total_quota",
            Refusal::Bandwidth => "bandwidth",
            Refusal::NoPermission => "no_permission",
            Refusal::NoAllocationOrChannel => "no_allocation_or_channel",
            Refusal::Malformed => "malformed",
            Refusal::Amplification => "amplification",
            Refusal::BadRequest => "bad_request",
        }
    }
}

/// A snapshot of the core's counters.
#[derive(Debug, Clone, Default)]
pub struct Metrics {
    pub allocations_current: u64,
    pub allocations_created: u64,
    pub bytes_to_peers: u64,
    pub packets_to_peers: u64,
    pub bytes_to_clients: u64,
    pub packets_to_clients: u64,
    /// Bytes piped over RFC 6062 peer connections, each way.
    pub tcp_bytes_to_peers: u64,
    pub tcp_bytes_to_clients: u64,
    /// RFC 6062 peer connections made (dialled out or accepted).
    pub tcp_connections: u64,
    pub auth_failures: u64,
    pub stale_nonces: u64,
    pub refusals: [u64; Refusal::ALL.len()],
}

impl Metrics {
    pub fn refuse(&mut self, reason: Refusal) {
        self.refusals[reason as usize] += 1;
    }

    pub fn refusals(&self, reason: Refusal) -> u64 {
        self.refusals[reason as usize]
    }

    /// Adds another core's counters and gauge to these (a server with several cores).
    pub fn add(&mut self, other: &Metrics) {
        self.allocations_current += other.allocations_current;
        self.allocations_created += other.allocations_created;
        self.bytes_to_peers += other.bytes_to_peers;
        self.packets_to_peers += other.packets_to_peers;
        self.bytes_to_clients += other.bytes_to_clients;
        self.packets_to_clients += other.packets_to_clients;
        self.tcp_bytes_to_peers += other.tcp_bytes_to_peers;
        self.tcp_bytes_to_clients += other.tcp_bytes_to_clients;
        self.tcp_connections += other.tcp_connections;
        self.auth_failures += other.auth_failures;
        self.stale_nonces += other.stale_nonces;
        for (total, count) in self.refusals.iter_mut().zip(other.refusals) {
            *total += count;
        }
    }
}
