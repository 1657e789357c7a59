//! Counters and gauges for `/metrics` (isoplane-service's registry).
//!
//! Atomics: connection tasks and world tasks bump them without locks, and a scrape reads
//! whatever values they have at that moment.

use isoplane_service::metrics::{Counter, Gauge};

isoplane_service::service_metrics! {
    /// Every metric the signaling server exports.
    pub struct Metrics("isoplane_signaling") {
        pub connections_open: Gauge = "connections", "WebSocket connections open";
        pub connections_total: Counter = "connections", "WebSocket connections accepted";
        pub avatars: Gauge = "avatars", "avatars in all worlds, including those waiting for a resume";
        pub zones_occupied: Gauge = "zones_occupied", "zones with at least one avatar";
        pub messages_in: Counter = "messages_in", "WebSocket messages received";
        pub messages_out: Counter = "messages_out", "WebSocket messages sent";
        pub bytes_in: Counter = "bytes_in", "payload bytes received";
        pub bytes_out: Counter = "bytes_out", "payload bytes sent";
        pub moves_accepted: Counter = "moves_accepted", "move intents accepted";
        pub corrections: Counter = "corrections", "move intents answered with a correction";
        pub presence_frames: Counter = "presence_frames", "presence frames built (one per zone per tick)";
        pub presence_deliveries: Counter = "presence_deliveries", "presence frames delivered to clients";
        pub presence_ticks_missed: Counter = "presence_ticks_missed",
            "presence ticks a zone with moves did not get because its world's task ran over a tick interval late";
        pub zone_changes: Counter = "zone_changes", "avatars that changed zone";
        pub resumes: Counter = "resumes", "sessions taken back after a drop";
        pub signals_relayed: Counter = "signals_relayed", "WebRTC signaling messages relayed";
        pub queue_drops: Counter = "queue_drops", "messages dropped because a client's queue was full";
        pub slow_disconnects: Counter = "slow_disconnects", "clients disconnected for not keeping up";
        pub rate_limited: Counter = "rate_limited", "client messages dropped by the rate limit";
        pub malformed: Counter = "malformed", "malformed client messages";
        pub auth_failures: Counter = "auth_failures", "joins refused for their token";
        pub refused_connections: Counter = "refused_connections", "connections refused by limits or origin";
        pub forwarded_connections: Counter =
            "forwarded_connections", "clients forwarded to the node serving their world";
        pub worlds_taken_over: Counter = "worlds_taken_over", "worlds this node started serving (cluster)";
        pub sfu_nodes_up: Gauge = "sfu_nodes_up",
            "SFU nodes that may take rooms: the configured SFU while it answers its health check, or the pool's live nodes";
        pub bans_enforced_late: Counter =
            "bans_enforced_late", "banned users removed by the periodic re-check, not by the ban command";
        pub kicks_enforced_late: Counter =
            "kicks_enforced_late", "kicked users removed by the periodic re-check, not by the kick command";
        pub chat_messages: Counter = "chat_messages", "chat messages sent (each once, however many it reached)";
        pub chat_writes_dropped: Counter =
            "chat_writes_dropped", "chat history writes dropped because the database's queue was full";
        pub chat_write_failures: Counter =
            "chat_write_failures", "chat history writes the database refused or did not answer";
        pub world_reloads: Counter =
            "world_reloads", "new versions of world files taken while serving (publishes and rollbacks)";
        pub world_reload_failures: Counter =
            "world_reload_failures", "new world versions that could not be read or parsed (the old one stays)";
        pub mutes_enforced_late: Counter =
            "mutes_enforced_late", "mutes and unmutes applied by the periodic re-check, not by their command";
    }
}
