//! `/assets/{id}` on signaling's own origin: the demo world's built-in images, and, when
//! `worlds.images_from` names an asset server, every other image fetched from it. The
//! all-in-one `isoplane` has no proxy in front, so without this a world published to its
//! asset server would be served with no images (the browser asks signaling's origin). In
//! the compose stack Caddy sends `/assets/*` to the asset server before it reaches here.
//!
//! Only content IDs (`sha256-` and 64 hex digits) are forwarded, so the path cannot reach
//! anything else on the asset server; answers are immutable and cached by browsers.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use isoplane_service::http::HttpError;
use isoplane_world_format::ContentId;

use super::{AppState, web};

/// Largest image forwarded, in bytes (the asset server's default upload limit).
const MAX_IMAGE_BYTES: usize = 32 * 1024 * 1024;

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
    if answer.content_length().is_some_and(|length| length > MAX_IMAGE_BYTES as u64) {
        return Err(too_large());
    }
    let body = answer.bytes().await.map_err(|e| unavailable(&e))?;
    if body.len() > MAX_IMAGE_BYTES {
        return Err(too_large());
    }
    Ok((status, kept, body).into_response())
}
