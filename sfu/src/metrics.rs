//! Process-wide counters, added to by every worker without locks, and rendered as
//! Prometheus text at `/metrics`.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, Default)]
pub struct Metrics {
    pub rooms: AtomicU64,
    pub participants: AtomicU64,
    pub packets_in: AtomicU64,
    pub bytes_in: AtomicU64,
    pub packets_out: AtomicU64,
    pub bytes_out: AtomicU64,
    /// RTP packets written towards subscribers.
    pub forwarded: AtomicU64,
    /// Keyframe requests (PLI) sent to publishers.
    pub keyframe_requests: AtomicU64,
    pub nacks_received: AtomicU64,
    pub plis_received: AtomicU64,
    /// Publishers' packets lost before reaching the SFU (estimated).
    pub packets_lost_in: AtomicU64,
    /// Datagrams from addresses no session knows.
    pub dropped_unknown: AtomicU64,
    pub sessions_refused: AtomicU64,
}

impl Metrics {
    pub fn render(&self) -> String {
        let read = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        let rows: [(&str, &str, &str, u64); 13] = [
            ("sfu_rooms", "gauge", "Rooms open.", read(&self.rooms)),
            ("sfu_participants", "gauge", "Participants in rooms.", read(&self.participants)),
            ("sfu_packets_in_total", "counter", "Datagrams received.", read(&self.packets_in)),
            ("sfu_bytes_in_total", "counter", "Bytes received.", read(&self.bytes_in)),
            ("sfu_packets_out_total", "counter", "Datagrams sent.", read(&self.packets_out)),
            ("sfu_bytes_out_total", "counter", "Bytes sent.", read(&self.bytes_out)),
            ("sfu_forwarded_packets_total", "counter", "RTP packets forwarded to subscribers.", read(&self.forwarded)),
            (
                "sfu_keyframe_requests_total",
                "counter",
                "Keyframe requests sent to publishers.",
                read(&self.keyframe_requests),
            ),
            ("sfu_nacks_received_total", "counter", "NACKs received from subscribers.", read(&self.nacks_received)),
            (
                "sfu_plis_received_total",
                "counter",
                "Keyframe requests received from subscribers.",
                read(&self.plis_received),
            ),
            (
                "sfu_packets_lost_in_total",
                "counter",
                "Publishers' packets lost on the way in (estimated).",
                read(&self.packets_lost_in),
            ),
            ("sfu_dropped_unknown_total", "counter", "Datagrams from unknown addresses.", read(&self.dropped_unknown)),
            (
                "sfu_sessions_refused_total",
                "counter",
                "Sessions refused (token, room full).",
                read(&self.sessions_refused),
            ),
        ];
        let mut text = String::new();
        for (name, kind, help, value) in rows {
            let _ =
                writeln!(text, "# HELP isoplane_{name} {help}\n# TYPE isoplane_{name} {kind}\nisoplane_{name} {value}");
        }
        text
    }
}
