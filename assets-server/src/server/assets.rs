//! Asset upload (`POST /v1/assets`) and delivery (`GET|HEAD /assets/{id}`).
//!
//! Upload invariants: the media type is checked before a byte is read (415); a declared
//! `Content-Length` over the limit is refused before a byte is read, and an undeclared
//! one the moment the limit is passed (413); the bytes go to a temporary object, and
//! only a complete upload is moved to its content ID and recorded. The streaming runs in
//! a task of its own, so a client that disconnects mid-body (which drops the request
//! future) still has its temporary object deleted.
//!
//! Delivery invariants: the answer depends only on the ID and the request's conditional
//! and range headers, never on who asks, so it is safe to cache in any CDN; an ID is
//! parsed as a content ID before anything else, so a path can never name anything but
//! `assets/sha256-…` in the store.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::StreamExt;
use isoplane_world_format::ContentId;

use super::{Access, AppState, authorize, internal, refusal, refusal_with, unix_now};
use crate::cache::CachedAsset;
use crate::metadata::AssetRecord;
use crate::rules::{self, RangeRequest};
use crate::store::UploadError;

/// A client that sends nothing for this long has its upload dropped.
const BODY_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// `Cache-Control` of every asset: it never changes.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// Assets are data, never a page: an SVG opened directly runs no script and loads nothing.
const ASSET_CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; sandbox";

/// How an upload ended.
enum UploadOutcome {
    Created(AssetRecord),
    Duplicate(AssetRecord),
    TooLarge(u64),
    Interrupted,
    /// The object store or the database did not answer: nothing was recorded, and the
    /// client may try again (503 with `code`; the cause is logged).
    Unavailable {
        code: &'static str,
        message: &'static str,
        cause: String,
    },
    Failed(String),
}

impl UploadOutcome {
    fn store_down(cause: impl std::fmt::Display) -> UploadOutcome {
        let message = "the object store does not answer; nothing was stored, try again later";
        UploadOutcome::Unavailable { code: "store_unavailable", message, cause: cause.to_string() }
    }

    fn database_down(cause: impl std::fmt::Display) -> UploadOutcome {
        let message = "the database does not answer; nothing was stored, try again later";
        UploadOutcome::Unavailable { code: "database_unavailable", message, cause: cause.to_string() }
    }
}

pub(super) async fn upload(State(state): State<Arc<AppState>>, headers: HeaderMap, body: Body) -> Response {
    let workspace = state.config.workspace.clone();
    let claims = match authorize(&state, &headers, &workspace, Access::Write).await {
        Ok(claims) => claims,
        Err(refused) => return refused.into_response(),
    };
    let declared_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let media_type = match rules::media_type_essence(declared_type) {
        Some(essence) if state.config.limits.allowed_media_types.contains(&essence) => essence,
        _ => {
            state.metrics.rejected_media_type.inc();
            let allowed = state.config.limits.allowed_media_types.iter().map(|t| t.as_str().into()).collect();
            return refusal_with(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "declare one of the allowed media types in Content-Type",
                "allowed",
                serde_json::Value::Array(allowed),
            );
        }
    };
    let limit = state.config.limits.max_upload_bytes;
    let declared_length = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared_length.is_some_and(|length| length > limit) {
        return too_large(&state, limit);
    }
    let Ok(slot) = state.upload_slots.clone().try_acquire_owned() else {
        return refusal(StatusCode::SERVICE_UNAVAILABLE, "busy", "too many uploads at once; retry shortly");
    };
    let task_state = state.clone();
    let task = state.tasks.spawn(async move {
        let outcome = receive(&task_state, body, limit, media_type, &workspace, &claims.sub).await;
        drop(slot);
        outcome
    });
    let outcome = match task.await {
        Ok(outcome) => outcome,
        Err(error) => UploadOutcome::Failed(error.to_string()),
    };
    match outcome {
        UploadOutcome::Created(record) => {
            state.metrics.uploads_created.inc();
            state.metrics.upload_bytes.inc_by(record.size);
            uploaded(StatusCode::CREATED, &record)
        }
        UploadOutcome::Duplicate(record) => {
            state.metrics.uploads_duplicate.inc();
            uploaded(StatusCode::OK, &record)
        }
        UploadOutcome::TooLarge(limit) => too_large(&state, limit),
        UploadOutcome::Interrupted => {
            state.metrics.rejected_interrupted.inc();
            refusal(StatusCode::BAD_REQUEST, "upload_interrupted", "the body ended before it was complete")
        }
        UploadOutcome::Unavailable { code, message, cause } => {
            tracing::warn!(%cause, "an upload failed: {code}");
            refusal(StatusCode::SERVICE_UNAVAILABLE, code, message)
        }
        UploadOutcome::Failed(error) => internal("storing an upload", &error),
    }
}

fn too_large(state: &AppState, limit: u64) -> Response {
    state.metrics.rejected_too_large.inc();
    let mut response = refusal_with(
        StatusCode::PAYLOAD_TOO_LARGE,
        "too_large",
        &format!("uploads are at most {limit} bytes"),
        "limit_bytes",
        limit,
    );
    // The rest of the body is not read: the connection cannot be reused.
    response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

fn uploaded(status: StatusCode, record: &AssetRecord) -> Response {
    let url = format!("/assets/{}", record.id);
    let body = serde_json::json!({
        "id": record.id.to_string(),
        "size": record.size,
        "media_type": record.media_type,
        "url": url,
    });
    let location = HeaderValue::from_str(&url).unwrap_or(HeaderValue::from_static("/"));
    (
        status,
        [(header::CONTENT_TYPE, HeaderValue::from_static("application/json")), (header::LOCATION, location)],
        body.to_string(),
    )
        .into_response()
}

/// Streams the body into the store and records the asset. Runs in its own task.
async fn receive(
    state: &AppState,
    body: Body,
    limit: u64,
    media_type: String,
    workspace: &str,
    user: &str,
) -> UploadOutcome {
    let mut upload = match state.store.begin_upload(limit).await {
        Ok(upload) => upload,
        Err(error) => return UploadOutcome::store_down(error),
    };
    let mut stream = body.into_data_stream();
    loop {
        let chunk = match tokio::time::timeout(BODY_IDLE_TIMEOUT, stream.next()).await {
            Ok(Some(Ok(chunk))) => chunk,
            Ok(None) => break,
            Ok(Some(Err(_))) | Err(_) => {
                upload.abort().await;
                return UploadOutcome::Interrupted;
            }
        };
        match upload.write(&chunk).await {
            Ok(()) => {}
            Err(UploadError::TooLarge { limit }) => {
                upload.abort().await;
                return UploadOutcome::TooLarge(limit);
            }
            Err(UploadError::Store(error)) => {
                upload.abort().await;
                return UploadOutcome::store_down(error);
            }
        }
    }
    let id = upload.content_id();
    match state.metadata.asset(&id).await {
        Ok(Some(existing)) => {
            upload.abort().await;
            return UploadOutcome::Duplicate(existing);
        }
        Ok(None) => {}
        Err(error) => {
            upload.abort().await;
            return UploadOutcome::database_down(error);
        }
    }
    let (id, size) = match upload.finish().await {
        Ok(done) => done,
        Err(error) => return UploadOutcome::store_down(error),
    };
    let record = AssetRecord {
        id,
        size,
        media_type,
        workspace: workspace.to_owned(),
        uploaded_by: user.to_owned(),
        created_at: unix_now(),
    };
    // The object is in place before its row: a row always names a complete object. A
    // crash between the two leaves an object without a row, which is never served and
    // is put to use by the next upload of the same bytes.
    match state.metadata.insert_asset(&record).await {
        Ok(true) => UploadOutcome::Created(record),
        // The same bytes finished concurrently: the first record stands.
        Ok(false) => match state.metadata.asset(&record.id).await {
            Ok(Some(existing)) => UploadOutcome::Duplicate(existing),
            Ok(None) => UploadOutcome::Failed("an asset row vanished".into()),
            Err(error) => UploadOutcome::database_down(error),
        },
        Err(error) => UploadOutcome::database_down(error),
    }
}

pub(super) async fn deliver(
    State(state): State<Arc<AppState>>,
    method: Method,
    path: Result<UrlPath<String>, PathRejection>,
    headers: HeaderMap,
) -> Response {
    let Ok(UrlPath(raw)) = path else {
        return refusal(
            StatusCode::BAD_REQUEST,
            "malformed_id",
            "an asset ID is `sha256-` and 64 lowercase hex digits",
        );
    };
    let id: ContentId = match raw.parse() {
        Ok(id) => id,
        Err(error) => return refusal(StatusCode::BAD_REQUEST, "malformed_id", &error.to_string()),
    };
    let asset = match state.cache.get(&id) {
        Some(asset) => {
            state.metrics.cache_hits.inc();
            asset
        }
        None => {
            state.metrics.cache_misses.inc();
            match state.metadata.asset(&id).await {
                Ok(Some(record)) => {
                    let content_type = HeaderValue::from_str(&record.media_type)
                        .unwrap_or(HeaderValue::from_static("application/octet-stream"));
                    let etag = HeaderValue::from_str(&rules::etag(&id)).unwrap_or(HeaderValue::from_static("\"\""));
                    let asset = CachedAsset { size: record.size, content_type, etag, bytes: None };
                    // Small assets enter the cache with their bytes, when a GET reads them.
                    if method == Method::HEAD || !state.cache.keeps_bytes_of(record.size) {
                        state.cache.insert(id.clone(), asset.clone());
                    }
                    asset
                }
                Ok(None) => {
                    // Not cacheable: the asset may be uploaded a moment later.
                    let mut response =
                        refusal(StatusCode::NOT_FOUND, "unknown_asset", "there is no asset with this ID");
                    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
                    return response;
                }
                Err(error) => return internal("reading an asset record", &error),
            }
        }
    };
    let etag = asset.etag.to_str().unwrap_or_default();
    let header_text = |name| headers.get(name).and_then(|v: &HeaderValue| v.to_str().ok());
    let mut response_headers = HeaderMap::with_capacity(10);
    response_headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(IMMUTABLE));
    response_headers.insert(header::ETAG, asset.etag.clone());
    if header_text(header::IF_NONE_MATCH).is_some_and(|value| rules::if_none_match_matches(value, etag)) {
        state.metrics.not_modified.inc();
        return (StatusCode::NOT_MODIFIED, response_headers).into_response();
    }
    response_headers.insert(header::CONTENT_TYPE, asset.content_type.clone());
    response_headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    response_headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    response_headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(ASSET_CSP));
    let size = asset.size;
    let range = if rules::if_range_allows(header_text(header::IF_RANGE), etag) {
        rules::parse_range(header_text(header::RANGE), size)
    } else {
        RangeRequest::Full
    };
    let (status, span) = match range {
        RangeRequest::Full => (StatusCode::OK, 0..size),
        RangeRequest::Partial(span) => (StatusCode::PARTIAL_CONTENT, span),
        RangeRequest::Unsatisfiable => {
            if let Ok(value) = HeaderValue::from_str(&format!("bytes */{size}")) {
                response_headers.insert(header::CONTENT_RANGE, value);
            }
            response_headers.remove(header::CONTENT_TYPE);
            let mut response =
                refusal(StatusCode::RANGE_NOT_SATISFIABLE, "range_not_satisfiable", "the range is outside the asset");
            response.headers_mut().extend(response_headers);
            return response;
        }
    };
    if status == StatusCode::PARTIAL_CONTENT {
        state.metrics.partial_responses.inc();
        let content_range = format!("bytes {}-{}/{size}", span.start, span.end.saturating_sub(1));
        if let Ok(value) = HeaderValue::from_str(&content_range) {
            response_headers.insert(header::CONTENT_RANGE, value);
        }
    }
    let length = span.end - span.start;
    response_headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    if method == Method::HEAD {
        return (status, response_headers).into_response();
    }
    let body = match body_of(&state, &id, &asset, span).await {
        Ok(Some(body)) => body,
        Ok(None) => {
            tracing::error!("asset {id} is recorded but missing from the object store");
            return refusal(StatusCode::NOT_FOUND, "unknown_asset", "there is no asset with this ID");
        }
        Err(response) => return response,
    };
    state.metrics.bytes_served.inc_by(length);
    (status, response_headers, body).into_response()
}

/// The body for `span` of an asset: from memory, filling the cache for small assets, or
/// streamed from the store for large ones.
async fn body_of(
    state: &AppState,
    id: &ContentId,
    asset: &CachedAsset,
    span: std::ops::Range<u64>,
) -> Result<Option<Body>, Response> {
    let slice = |bytes: &Bytes| {
        let (start, end) = (usize::try_from(span.start).unwrap_or(0), usize::try_from(span.end).unwrap_or(0));
        Body::from(bytes.slice(start.min(bytes.len())..end.min(bytes.len())))
    };
    if let Some(bytes) = &asset.bytes {
        return Ok(Some(slice(bytes)));
    }
    if state.cache.keeps_bytes_of(asset.size) {
        return match state.store.get_bytes(id).await {
            Ok(Some(bytes)) => {
                let body = slice(&bytes);
                let cached = CachedAsset { bytes: Some(bytes), ..asset.clone() };
                state.cache.insert(id.clone(), cached);
                Ok(Some(body))
            }
            Ok(None) => Ok(None),
            Err(error) => Err(internal("reading an asset", &error)),
        };
    }
    if span.is_empty() {
        return Ok(Some(Body::empty()));
    }
    match state.store.read(id, Some(span)).await {
        Ok(Some(read)) => Ok(Some(Body::from_stream(read.stream))),
        Ok(None) => Ok(None),
        Err(error) => Err(internal("reading an asset", &error)),
    }
}
