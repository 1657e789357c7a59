//! The asset server on signaling's own origin, for setups with no proxy in front (the
//! all-in-one `isoplane`): in the compose stack Caddy sends these paths to the asset
//! server before they reach here.
//!
//! - `/assets/{id}`: the demo world's built-in images, and, when `worlds.images_from`
//!   names an asset server, every other image fetched from it (else a world published
//!   there would draw with no images: the browser asks signaling's origin). Only content
//!   IDs (`sha256-` and 64 hex digits) are forwarded; answers are immutable and cached.
//! - `/v1/assets` and `/v1/workspaces/…`: the asset API (uploads, world versions,
//!   rollbacks), which build mode calls from the page. Forwarded as they are, with the
//!   caller's token; the asset server decides, and its answer comes back unchanged.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use isoplane_service::http::HttpError;
use isoplane_world_format::ContentId;

use super::{AppState, web};

/// Largest image or API body forwarded either way, in bytes (the asset server's default
/// upload limit).
pub(super) const MAX_FORWARDED_BYTES: usize = 32 * 1024 * 1024;

/// What the asset API needs of a request, and what a caller needs of its answer.
const REQUEST_HEADERS: [HeaderName; 4] =
    [header::AUTHORIZATION, header::CONTENT_TYPE, header::IF_NONE_MATCH, header::IF_MATCH];
const ANSWER_HEADERS: [&str; 5] = ["content-type", "cache-control", "etag", "location", "x-isoplane-world-version"];

fn client() -> Option<&'static reqwest::Client> {
    static CLIENT: OnceLock<Option<reqwest::Client>> = OnceLock::new();
    CLIENT.get_or_init(|| reqwest::Client::builder().timeout(Duration::from_secs(20)).build().ok()).as_ref()
}

pub(super) async fn image(State(state): State<Arc<AppState>>, Path(id): Path<String>, headers: HeaderMap) -> Response {
    if let Some(built_in) = web::demo_image(&id) {
        return built_in;
    }
    let Some(base) = state.config.worlds.images_from() else { return web::not_found() };
    if id.parse::<ContentId>().is_err() {
        return web::not_found();
    }
    match forward(base, &id, &headers).await {
        Ok(response) => response,
        Err(error) => error.into_response(),
    }
}

async fn forward(base: &str, id: &str, headers: &HeaderMap) -> Result<Response, HttpError> {
    let unavailable = |cause: &dyn std::fmt::Display| {
        tracing::warn!(%cause, "cannot fetch an image from the asset server");
        HttpError::new(StatusCode::BAD_GATEWAY, "asset_server_unavailable", "the asset server does not answer")
    };
    let too_large = || HttpError::new(StatusCode::BAD_GATEWAY, "asset_too_large", "this image is too large to forward");
    let client = client().ok_or_else(|| unavailable(&"no HTTP client"))?;
    let mut request = client.get(format!("{}/assets/{id}", base.trim_end_matches('/')));
    if let Some(tag) = headers.get(header::IF_NONE_MATCH) {
        request = request.header(header::IF_NONE_MATCH, tag.clone());
    }
    let answer = request.send().await.map_err(|e| unavailable(&e))?;
    let status = StatusCode::from_u16(answer.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    if status == StatusCode::NOT_FOUND {
        return Ok(web::not_found());
    }
    let mut kept = HeaderMap::new();
    for name in [header::CONTENT_TYPE, header::CACHE_CONTROL, header::ETAG] {
        if let Some(value) =
            answer.headers().get(name.as_str()).and_then(|v| HeaderValue::from_bytes(v.as_bytes()).ok())
        {
            kept.insert(name, value);
        }
    }
    // The declared length refuses early; the body is checked too, since a length may be absent.
    if answer.content_length().is_some_and(|length| length > MAX_FORWARDED_BYTES as u64) {
        return Err(too_large());
    }
    let body = answer.bytes().await.map_err(|e| unavailable(&e))?;
    if body.len() > MAX_FORWARDED_BYTES {
        return Err(too_large());
    }
    Ok((status, kept, body).into_response())
}

/// `/v1/assets` and `/v1/workspaces/…`: the asset API, forwarded to the asset server.
pub(super) async fn api(
    State(state): State<Arc<AppState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(base) = state.config.worlds.images_from() else { return web::not_found() };
    let unavailable = |cause: &dyn std::fmt::Display| {
        tracing::warn!(%cause, "cannot reach the asset server's API");
        HttpError::new(StatusCode::BAD_GATEWAY, "asset_server_unavailable", "the asset server does not answer")
            .into_response()
    };
    let Some(client) = client() else { return unavailable(&"no HTTP client") };
    let path = uri.path_and_query().map_or(uri.path(), |p| p.as_str());
    let Ok(method) = reqwest::Method::from_bytes(method.as_str().as_bytes()) else { return web::not_found() };
    let mut request = client.request(method, format!("{}{path}", base.trim_end_matches('/'))).body(body);
    for name in REQUEST_HEADERS {
        if let Some(value) = headers.get(&name) {
            request = request.header(name.as_str(), value.as_bytes());
        }
    }
    let answer = match request.send().await {
        Ok(answer) => answer,
        Err(error) => return unavailable(&error),
    };
    let status = StatusCode::from_u16(answer.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    let mut kept = HeaderMap::new();
    for name in ANSWER_HEADERS {
        if let Some(value) = answer.headers().get(name).and_then(|v| HeaderValue::from_bytes(v.as_bytes()).ok()) {
            kept.insert(HeaderName::from_static(name), value);
        }
    }
    if answer.content_length().is_some_and(|length| length > MAX_FORWARDED_BYTES as u64) {
        return unavailable(&"an answer over the forwarding limit");
    }
    match answer.bytes().await {
        Ok(body) if body.len() <= MAX_FORWARDED_BYTES => (status, kept, body).into_response(),
        Ok(_) => unavailable(&"an answer over the forwarding limit"),
        Err(error) => unavailable(&error),
    }
}
