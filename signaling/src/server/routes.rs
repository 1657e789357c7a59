//! The HTTP routes: `GET /v1/ws` (the protocol), `GET /v1/worlds/{name}` (a world file),
//! `POST /v1/admin/commands` (moderation, docs/moderation.md), `GET /v1/dev/token`
//! (development tokens, when enabled), `/healthz`, `/readyz`, `/metrics`; with
//! `serve_web`, the browser client at `/` and `/web/…` (web.rs); with the demo world,
//! its images at `/assets/{id}`. Refusals are JSON `{"error": {"code", "message"}}`.

use isoplane_service::http::HttpError;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{ConnectInfo, Path as UrlPath, Query, State, WebSocketUpgrade};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use bytes::Bytes;

use super::{AppState, asset_proxy, connection, moderation, proxy, unix_now, web, whip};
use crate::auth::{JoinClaims, Role};
use crate::protocol::{AdminAnswer, AdminCommand, AdminError, AdminErrorCode};

pub(super) fn router(state: Arc<AppState>) -> Router {
    let mut router = Router::new();
    if state.config.serve_web {
        let frame_policy = web::frame_policy(&state.config.embed_origins);
        let for_files = frame_policy.clone();
        router = router
            .route("/", get(move || web::index(frame_policy.clone())))
            .route("/web/{*path}", get(move |path| web::web_file(path, for_files.clone())));
    }
    if state.config.worlds.demo || state.config.worlds.images_from().is_some() {
        router = router.route("/assets/{id}", get(asset_proxy::image));
    }
    if state.config.worlds.images_from().is_some() {
        let limit = axum::extract::DefaultBodyLimit::max(asset_proxy::MAX_FORWARDED_BYTES);
        router = router
            .route("/v1/assets", post(asset_proxy::api).layer(limit))
            .route("/v1/workspaces/{*rest}", any(asset_proxy::api).layer(limit));
    }
    router
        .route("/v1/ws", get(websocket))
        .route("/v1/worlds/{name}", get(world_file))
        .route("/v1/admin/commands", post(admin_command).layer(axum::extract::DefaultBodyLimit::max(ADMIN_BODY_LIMIT)))
        .route("/v1/dev/token", get(dev_token))
        .route("/v1/whip", post(whip::publish).layer(axum::extract::DefaultBodyLimit::max(whip::MAX_OFFER_BYTES)))
        .route("/v1/whip/{session}", axum::routing::delete(whip::stop).patch(whip::patch))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .route("/metrics", get(metrics_text))
        .with_state(state)
}

/// A JSON error body for HTTP refusals.
fn refusal(status: StatusCode, code: &'static str, message: &str) -> Response {
    HttpError::new(status, code, message).into_response()
}

/// Read buffer of one WebSocket, in bytes.
const SOCKET_BUFFER: usize = 4096;

async fn websocket(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    if state.shutdown.is_cancelled() {
        return refusal(StatusCode::SERVICE_UNAVAILABLE, "shutting_down", "the server is shutting down");
    }
    // Another node forwarding a client vouches for the client's address.
    let forwarded = headers
        .get(proxy::FORWARDED_HEADER)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| proxy::forwarded_ip(&state.token_key, value, unix_now()));
    let origin = connection::Origin { ip: forwarded.unwrap_or(peer.ip()), forwarded: forwarded.is_some() };
    if let Some(origin) = headers.get(header::ORIGIN) {
        let allowed = &state.config.allowed_origins;
        if !allowed.is_empty() && !allowed.iter().any(|a| origin.as_bytes() == a.as_bytes()) {
            state.metrics.refused_connections.inc();
            return refusal(StatusCode::FORBIDDEN, "origin_not_allowed", "this origin may not connect");
        }
    }
    let Some(total) = state.limits.total.acquire(()) else {
        state.metrics.refused_connections.inc();
        return refusal(StatusCode::SERVICE_UNAVAILABLE, "too_many_connections", "the server is full");
    };
    let Some(ip_slot) = state.limits.per_ip.acquire(origin.ip) else {
        state.metrics.refused_connections.inc();
        return refusal(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_connections",
            "too many connections from this address",
        );
    };
    // The protocol limit is enforced on whole messages by the reader, which can then close
    // cleanly with `frame_too_large`; the transport limit only stops absurd sizes.
    let transport_limit = (state.config.limits.max_frame_bytes * 4).max(64 * 1024);
    // Small socket buffers: clients send small messages, and 128 KiB defaults would cost
    // a quarter of a megabyte per idle connection.
    let upgrade = upgrade
        .max_message_size(transport_limit)
        .max_frame_size(transport_limit)
        .read_buffer_size(SOCKET_BUFFER)
        .write_buffer_size(0);
    let tasks = state.tasks.clone();
    upgrade.on_upgrade(move |socket| {
        tasks.track_future(async move {
            connection::run(socket, state, ip_slot, origin).await;
            drop(total);
        })
    })
}

/// Largest admin command body, in bytes.
const ADMIN_BODY_LIMIT: usize = 16 * 1024;

/// `POST /v1/admin/commands`: one admin command (the JSON of a WebSocket `admin`
/// message's `command`), authorized by the bearer's join token.
async fn admin_command(State(state): State<Arc<AppState>>, headers: HeaderMap, body: Bytes) -> Response {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    let claims: JoinClaims = match state.token_key.verify(token, unix_now()) {
        Ok(claims) => claims,
        Err(error) => {
            state.metrics.auth_failures.inc();
            let message = format!("send `Authorization: Bearer <join token>`: {error}");
            return refusal(StatusCode::UNAUTHORIZED, "invalid_token", &message);
        }
    };
    if claims.workspace != state.config.workspace {
        return refusal(StatusCode::FORBIDDEN, "forbidden", "this token is for another workspace");
    }
    let command: AdminCommand = match serde_json::from_slice(&body) {
        Ok(command) => command,
        Err(error) => {
            return refusal(StatusCode::BAD_REQUEST, "invalid_command", &format!("not an admin command: {error}"));
        }
    };
    // Carried out to the end even if the caller hangs up: records and fan-out go together.
    let actor = moderation::Actor::from_claims(&claims);
    let running = state.clone();
    let outcome = state.tasks.spawn(async move { running.moderator.execute(&actor, command).await }).await;
    let outcome = outcome.unwrap_or_else(|_| {
        Err(AdminError::new(AdminErrorCode::Internal, "the server failed to carry this out; try again"))
    });
    let status = match &outcome {
        Ok(_) => StatusCode::OK,
        Err(error) => StatusCode::from_u16(error.code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
    };
    let body = serde_json::to_string(&AdminAnswer::of(outcome)).unwrap_or_default();
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

async fn world_file(
    State(state): State<Arc<AppState>>,
    UrlPath(name): UrlPath<String>,
    headers: HeaderMap,
) -> Response {
    let Some(entry) = state.worlds.get(&name) else {
        return refusal(StatusCode::NOT_FOUND, "unknown_world", "there is no world with this name");
    };
    let file = entry.served();
    let etag = format!("\"{}\"", file.version);
    if headers.get(header::IF_NONE_MATCH).is_some_and(|v| v.as_bytes() == etag.as_bytes()) {
        return (StatusCode::NOT_MODIFIED, [(header::ETAG, etag)]).into_response();
    }
    let headers = [
        (header::CONTENT_TYPE, HeaderValue::from_static("application/json")),
        (header::ETAG, HeaderValue::from_str(&etag).unwrap_or(HeaderValue::from_static("\"\""))),
        (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
    ];
    (headers, file.json).into_response()
}

#[derive(serde::Deserialize)]
struct DevTokenQuery {
    name: Option<String>,
    admin: Option<bool>,
    builder: Option<bool>,
}

/// Hands out a member token for a fresh user (development only).
async fn dev_token(State(state): State<Arc<AppState>>, Query(query): Query<DevTokenQuery>) -> Response {
    if !state.config.dev_issuer {
        return refusal(StatusCode::NOT_FOUND, "not_found", "the development token issuer is disabled");
    }
    let user = format!("dev-{:016x}", rand::random::<u64>());
    let name: String = query.name.unwrap_or_else(|| "Guest".into()).chars().take(40).collect();
    let claims = JoinClaims {
        sub: user.clone(),
        name,
        workspace: state.config.workspace.clone(),
        role: match (query.admin, query.builder) {
            (Some(true), _) => Role::Admin,
            (_, Some(true)) => Role::Builder,
            _ => Role::Member,
        },
        exp: unix_now() + 12 * 3600,
        iat: Some(unix_now()),
        nbf: None,
    };
    let body = serde_json::json!({"token": state.token_key.sign(&claims), "user": user, "workspace": claims.workspace});
    ([(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
}

async fn ready(State(state): State<Arc<AppState>>) -> Response {
    if state.shutdown.is_cancelled() {
        return refusal(StatusCode::SERVICE_UNAVAILABLE, "shutting_down", "the server is shutting down");
    }
    ([(header::CONTENT_TYPE, "application/json")], format!("{{\"ready\":true,\"worlds\":{}}}", state.worlds.len()))
        .into_response()
}

async fn metrics_text(State(state): State<Arc<AppState>>) -> Response {
    isoplane_service::http::metrics_response(state.metrics.render())
}
