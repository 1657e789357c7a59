//! Counters and gauges for `/metrics`, in Prometheus' text format.
//!
//! Plain atomics: connection tasks and world tasks bump them without locks, and a scrape
//! reads whatever values they have at that moment.

use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

/// Every metric the signaling server exports.
#[derive(Debug, Default)]
pub struct Metrics {
    pub connections_open: AtomicI64,
    pub connections_total: AtomicU64,
    pub avatars: AtomicI64,
    pub zones_occupied: AtomicI64,
    pub messages_in: AtomicU64,
    pub messages_out: AtomicU64,
    pub bytes_in: AtomicU64,
    pub bytes_out: AtomicU64,
    pub moves_accepted: AtomicU64,
    pub corrections: AtomicU64,
    pub presence_frames: AtomicU64,
    pub presence_deliveries: AtomicU64,
    pub zone_changes: AtomicU64,
    pub resumes: AtomicU64,
    pub signals_relayed: AtomicU64,
    pub queue_drops: AtomicU64,
    pub slow_disconnects: AtomicU64,
    pub rate_limited: AtomicU64,
    pub malformed: AtomicU64,
    pub auth_failures: AtomicU64,
    pub refused_connections: AtomicU64,
    pub forwarded_connections: AtomicU64,
    pub worlds_taken_over: AtomicU64,
}

impl Metrics {
    pub fn add(counter: &AtomicU64, value: u64) {
        counter.fetch_add(value, Ordering::Relaxed);
    }

    pub fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// The Prometheus exposition of every metric.
    pub fn render(&self) -> String {
        let counters: [(&str, &str, &AtomicU64); 20] = [
            ("connections_total", "WebSocket connections accepted", &self.connections_total),
            ("messages_in_total", "WebSocket messages received", &self.messages_in),
            ("messages_out_total", "WebSocket messages sent", &self.messages_out),
            ("bytes_in_total", "payload bytes received", &self.bytes_in),
            ("bytes_out_total", "payload bytes sent", &self.bytes_out),
            ("moves_accepted_total", "move intents accepted", &self.moves_accepted),
            ("corrections_total", "move intents answered with a correction", &self.corrections),
            ("presence_frames_total", "presence frames built (one per zone per tick)", &self.presence_frames),
            ("presence_deliveries_total", "presence frames delivered to clients", &self.presence_deliveries),
            ("zone_changes_total", "avatars that changed zone", &self.zone_changes),
            ("resumes_total", "sessions taken back after a drop", &self.resumes),
            ("signals_relayed_total", "WebRTC signaling messages relayed", &self.signals_relayed),
            ("queue_drops_total", "messages dropped because a client's queue was full", &self.queue_drops),
            ("slow_disconnects_total", "clients disconnected for not keeping up", &self.slow_disconnects),
            ("rate_limited_total", "client messages dropped by the rate limit", &self.rate_limited),
            ("malformed_total", "malformed client messages", &self.malformed),
            ("auth_failures_total", "joins refused for their token", &self.auth_failures),
            ("refused_connections_total", "connections refused by limits or origin", &self.refused_connections),
            (
                "forwarded_connections_total",
                "clients forwarded to the node serving their world",
                &self.forwarded_connections,
            ),
            ("worlds_taken_over_total", "worlds this node started serving (cluster)", &self.worlds_taken_over),
        ];
        let gauges: [(&str, &str, &AtomicI64); 3] = [
            ("connections", "WebSocket connections open", &self.connections_open),
            ("avatars", "avatars in all worlds, including those waiting for a resume", &self.avatars),
            ("zones_occupied", "zones with at least one avatar", &self.zones_occupied),
        ];
        let mut out = String::new();
        for (name, help, value) in counters {
            let _ = writeln!(out, "# HELP isoplane_signaling_{name} {help}");
            let _ = writeln!(out, "# TYPE isoplane_signaling_{name} counter");
            let _ = writeln!(out, "isoplane_signaling_{name} {}", value.load(Ordering::Relaxed));
        }
        for (name, help, value) in gauges {
            let _ = writeln!(out, "# HELP isoplane_signaling_{name} {help}");
            let _ = writeln!(out, "# TYPE isoplane_signaling_{name} gauge");
            let _ = writeln!(out, "isoplane_signaling_{name} {}", value.load(Ordering::Relaxed));
        }
        out
    }
}
