//! The operations HTTP server: `/healthz` (the process answers), `/readyz` (serving,
//! not shutting down) and `/metrics` (Prometheus text from the counters of every core).

use super::Shared;
use crate::core::metrics::{Metrics, Refusal};
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use isoplane_service::metrics::{Counter, EncodeLabelSet, Family, Registry};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use tokio::net::TcpListener;

fn app(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(shared)
}

async fn readyz(State(shared): State<Arc<Shared>>) -> impl IntoResponse {
    if shared.ready.load(Ordering::Acquire) && !shared.shutdown.is_cancelled() {
        (StatusCode::OK, "ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
    }
}

async fn metrics(State(shared): State<Arc<Shared>>) -> impl IntoResponse {
    let mut snapshot = shared.lock().core.metrics();
    let mut udp_threads = 0;
    if let Some(shards) = shared.udp_shards.get() {
        snapshot.add(&shards.metrics().await);
        udp_threads = shards.threads();
    }
    isoplane_service::http::metrics_response(render(&snapshot, udp_threads))
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ReasonLabel {
    reason: &'static str,
}

/// The core's counters as Prometheus text (names kept from before the shared registry:
/// `turn_…`, no `isoplane_` prefix).
fn render(m: &Metrics, udp_threads: usize) -> String {
    let mut registry = Registry::default();
    let threads = i64::try_from(udp_threads).unwrap_or(i64::MAX);
    registry.gauge_at("turn_udp_threads", "Threads serving the UDP shards now.", threads);
    let current = i64::try_from(m.allocations_current).unwrap_or(i64::MAX);
    registry.gauge_at("turn_allocations", "Allocations alive now.", current);
    registry.counter_at("turn_allocations_created", "Allocations created.", m.allocations_created);
    registry.counter_at("turn_relayed_bytes_to_peers", "Payload bytes relayed to peers.", m.bytes_to_peers);
    registry.counter_at("turn_relayed_packets_to_peers", "Packets relayed to peers.", m.packets_to_peers);
    registry.counter_at("turn_relayed_bytes_to_clients", "Payload bytes relayed to clients.", m.bytes_to_clients);
    registry.counter_at("turn_relayed_packets_to_clients", "Packets relayed to clients.", m.packets_to_clients);
    let tcp_help = "Bytes piped to peers over RFC 6062 TCP connections.";
    registry.counter_at("turn_tcp_relayed_bytes_to_peers", tcp_help, m.tcp_bytes_to_peers);
    let tcp_help = "Bytes piped to clients over RFC 6062 TCP connections.";
    registry.counter_at("turn_tcp_relayed_bytes_to_clients", tcp_help, m.tcp_bytes_to_clients);
    let tcp_help = "RFC 6062 peer connections made (dialled out or accepted).";
    registry.counter_at("turn_tcp_peer_connections", tcp_help, m.tcp_connections);
    let auth_help = "Requests with wrong, unknown or expired credentials.";
    registry.counter_at("turn_auth_failures", auth_help, m.auth_failures);
    registry.counter_at("turn_stale_nonces", "Requests answered 438 Stale Nonce.", m.stale_nonces);
    let refusals = registry.register(
        "turn_refusals",
        "Requests refused and packets dropped, by reason.",
        Family::<ReasonLabel, Counter>::default(),
    );
    for reason in Refusal::ALL {
        refusals.get_or_create(&ReasonLabel { reason: reason.as_str() }).inc_by(m.refusals(reason));
    }
    registry.render()
}

pub(super) async fn serve(shared: Arc<Shared>, listener: TcpListener) {
    let shutdown = shared.shutdown.clone();
    if let Err(e) = axum::serve(listener, app(shared)).with_graceful_shutdown(shutdown.cancelled_owned()).await {
        tracing::error!(error = %e, "HTTP server failed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_snapshot_renders_every_counter_and_every_refusal_reason() {
        let mut m = Metrics { allocations_current: 2, allocations_created: 5, ..Metrics::default() };
        m.refuse(Refusal::ForbiddenPeer);
        let text = render(&m, 2);
        assert!(text.contains("turn_allocations 2\n"), "{text}");
        assert!(text.contains("turn_udp_threads 2\n"), "{text}");
        assert!(text.contains("turn_allocations_created_total 5\n"), "{text}");
        assert!(text.contains("turn_refusals_total{reason=\"forbidden_peer\"} 1\n"), "{text}");
        assert!(text.contains("turn_refusals_total{reason=\"bandwidth\"} 0\n"), "{text}");
    }
}
