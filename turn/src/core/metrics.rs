//! Counters the core keeps as plain integers; the shell renders them as Prometheus text.
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
    /// ChannelData or a Send indication from a client with no allocation, or on a
    /// channel that is not bound (dropped).
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

    /// Prometheus text exposition.
    pub fn render(&self) -> String {
        use std::fmt::Write;
        let mut out = String::with_capacity(2048);
        let mut metric = |name: &str, kind: &str, help: &str, value: u64| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}");
        };
        metric("turn_allocations", "gauge", "Allocations alive now.", self.allocations_current);
        metric("turn_allocations_created_total", "counter", "Allocations created.", self.allocations_created);
        metric("turn_relayed_bytes_to_peers_total", "counter", "Payload bytes relayed to peers.", self.bytes_to_peers);
        metric("turn_relayed_packets_to_peers_total", "counter", "Packets relayed to peers.", self.packets_to_peers);
        metric(
            "turn_relayed_bytes_to_clients_total",
            "counter",
            "Payload bytes relayed to clients.",
            self.bytes_to_clients,
        );
        metric(
            "turn_relayed_packets_to_clients_total",
            "counter",
            "Packets relayed to clients.",
            self.packets_to_clients,
        );
        metric(
            "turn_auth_failures_total",
            "counter",
            "Requests with wrong, unknown or expired credentials.",
            self.auth_failures,
        );
        metric("turn_stale_nonces_total", "counter", "Requests answered 438 Stale Nonce.", self.stale_nonces);
        let _ = writeln!(out, "# HELP turn_refusals_total Requests refused and packets dropped, by reason.");
        let _ = writeln!(out, "# TYPE turn_refusals_total counter");
        for reason in Refusal::ALL {
            let _ = writeln!(out, "turn_refusals_total{{reason=\"{}\"}} {}", reason.as_str(), self.refusals(reason));
        }
        out
    }
}
