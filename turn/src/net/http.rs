//! The operations HTTP server: `/healthz` (the process answers), `/readyz` (serving,
//! not shutting down) and `/metrics` (Prometheus text from the core's counters).

use super::Shared;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
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
    let text = shared.lock().core.metrics().render();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text)
}

pub(super) async fn serve(shared: Arc<Shared>, listener: TcpListener) {
    let shutdown = shared.shutdown.clone();
    if let Err(e) = axum::serve(listener, app(shared)).with_graceful_shutdown(shutdown.cancelled_owned()).await {
        tracing::error!(error = %e, "HTTP server failed");
    }
}
