//! Process-wide metrics, added to by every worker without locks (once per batch), and
//! rendered as Prometheus text at `/metrics` (isoplane-service's registry).

use isoplane_service::metrics::{Counter, Gauge};

isoplane_service::service_metrics! {
    pub struct Metrics("isoplane_sfu") {
        pub rooms: Gauge = "rooms", "Rooms open.";
        pub participants: Gauge = "participants", "Participants in rooms.";
        pub packets_in: Counter = "packets_in", "Datagrams received.";
        pub bytes_in: Counter = "bytes_in", "Bytes received.";
        pub packets_out: Counter = "packets_out", "Datagrams sent.";
        pub bytes_out: Counter = "bytes_out", "Bytes sent.";
        /// RTP packets written towards subscribers.
        pub forwarded: Counter = "forwarded_packets", "RTP packets forwarded to subscribers.";
        /// Packets sent again on subscribers' NACKs, from the publishers' histories.
        pub retransmitted: Counter = "retransmitted_packets", "Packets sent again to subscribers that NACKed them.";
        /// Padding sent so a subscriber's bandwidth estimate can find room for a better layer.
        pub padding: Counter = "padding_packets", "Padding packets sent to probe subscribers' bandwidth.";
        /// Keyframe requests (PLI) sent to publishers.
        pub keyframe_requests: Counter = "keyframe_requests", "Keyframe requests sent to publishers.";
        pub nacks_received: Counter = "nacks_received", "NACKs received from subscribers.";
        pub plis_received: Counter = "plis_received", "Keyframe requests received from subscribers.";
        /// Publishers' packets lost before reaching the SFU (estimated).
        pub packets_lost_in: Counter = "packets_lost_in", "Publishers' packets lost on the way in (estimated).";
        /// Datagrams from addresses no session knows.
        pub dropped_unknown: Counter = "dropped_unknown", "Datagrams from unknown addresses.";
        /// Datagrams the kernel refused to send (a full socket buffer): lost, as on a
        /// congested network.
        pub send_dropped: Counter = "send_dropped", "Datagrams dropped because the socket's send buffer was full.";
        pub sessions_refused: Counter = "sessions_refused", "Sessions refused (token, room full).";
        pub recordings: Gauge = "recordings", "Rooms being recorded.";
        pub recording_writes: Counter = "recording_writes", "Recording pieces written to the object store.";
        pub recording_write_failures: Counter = "recording_write_failures", "Recording pieces the object store refused.";
        /// Pieces dropped because the store did not keep up.
        pub recording_writes_dropped: Counter = "recording_writes_dropped", "Recording pieces dropped: the object store did not keep up.";
    }
}
