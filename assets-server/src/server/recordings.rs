//! Recordings for admins (builders and members may not): listed, downloaded, deleted
//! (audited), and deleted by age (`recordings.retention_days`, audited as `retention`).
//!
//! - `GET /v1/workspaces/{workspace}/recordings`: every recording, newest first, with its
//!   manifest and status (`recording`, `complete`, `incomplete`).
//! - `GET /v1/workspaces/{workspace}/recordings/{id}`: one.
//! - `GET /v1/workspaces/{workspace}/recordings/{id}/files/{file}.webm`: a track's file.
//! - `DELETE /v1/workspaces/{workspace}/recordings/{id}`: 204, 404, or 409 while it is
//!   still being recorded.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tokio_util::sync::CancellationToken;

use super::{Access, AppState, audit, authorize, check_workspace, internal, refusal};
use crate::recordings::{Recording, Status, valid_name};

/// How often recordings past their retention are looked for.
const SWEEP_INTERVAL: Duration = Duration::from_secs(3600);

fn now_ms() -> i64 {
    super::unix_now().saturating_mul(1000)
}

/// An admin of the workspace asking about a well-formed recording ID.
async fn admin(state: &AppState, headers: &HeaderMap, workspace: &str, id: Option<&str>) -> Result<String, Response> {
    check_workspace(state, workspace).map_err(IntoResponse::into_response)?;
    if id.is_some_and(|id| !valid_name(id)) {
        return Err(refusal(StatusCode::NOT_FOUND, "no_recording", "no recording has this ID"));
    }
    let claims = authorize(state, headers, workspace, Access::Admin).await.map_err(IntoResponse::into_response)?;
    Ok(claims.sub)
}

pub(super) async fn list(
    State(state): State<Arc<AppState>>,
    Path(workspace): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Vec<Recording>>, Response> {
    admin(&state, &headers, &workspace, None).await?;
    let recordings = state.recordings.list(now_ms()).await.map_err(|e| internal("listing recordings", &e))?;
    Ok(Json(recordings))
}

pub(super) async fn get_one(
    State(state): State<Arc<AppState>>,
    Path((workspace, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Json<Recording>, Response> {
    admin(&state, &headers, &workspace, Some(&id)).await?;
    match state.recordings.get(&id, now_ms()).await.map_err(|e| internal("reading a recording", &e))? {
        Some(recording) => Ok(Json(recording)),
        None => Err(refusal(StatusCode::NOT_FOUND, "no_recording", "no recording has this ID")),
    }
}

pub(super) async fn download(
    State(state): State<Arc<AppState>>,
    Path((workspace, id, file)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Result<Response, Response> {
    admin(&state, &headers, &workspace, Some(&id)).await?;
    let not_found = || refusal(StatusCode::NOT_FOUND, "no_file", "this recording has no such file");
    let Some(name) = file.strip_suffix(".webm").filter(|name| valid_name(name)) else { return Err(not_found()) };
    let Some(stream) = state.recordings.file(&id, name).await.map_err(|e| internal("reading a recording", &e))? else {
        return Err(not_found());
    };
    let disposition = format!("attachment; filename=\"{id}-{name}.webm\"");
    let headers = [(header::CONTENT_TYPE, "video/webm".to_owned()), (header::CONTENT_DISPOSITION, disposition)];
    Ok((headers, Body::from_stream(stream)).into_response())
}

pub(super) async fn delete(
    State(state): State<Arc<AppState>>,
    Path((workspace, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<StatusCode, Response> {
    let actor = admin(&state, &headers, &workspace, Some(&id)).await?;
    let live = state.recordings.get(&id, now_ms()).await.map_err(|e| internal("reading a recording", &e))?;
    if live.is_some_and(|r| r.status == Status::Recording) {
        let why =
            "the recording is still going on (stop it in its zone first): deleted now, it would come back in part";
        return Err(refusal(StatusCode::CONFLICT, "still_recording", why));
    }
    let deleted = state.recordings.delete(&id).await.map_err(|e| internal("deleting a recording", &e))?;
    if deleted == 0 {
        return Err(refusal(StatusCode::NOT_FOUND, "no_recording", "no recording has this ID"));
    }
    audit(&state, &workspace, &actor, "recording.delete", id, format!("{deleted} objects")).await;
    Ok(StatusCode::NO_CONTENT)
}

/// Deletes recordings older than the retention, now and every [`SWEEP_INTERVAL`], until
/// `shutdown`. A retention of 0 keeps them all.
pub(super) async fn sweep(state: Arc<AppState>, shutdown: CancellationToken) {
    let days = state.config.recordings.retention_days;
    if days == 0 {
        return;
    }
    let retention_ms = i64::from(days) * 24 * 3600 * 1000;
    let mut every = tokio::time::interval(SWEEP_INTERVAL);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = every.tick() => {}
        }
        let now = now_ms();
        let expired = match state.recordings.expired(now, now - retention_ms).await {
            Ok(expired) => expired,
            Err(error) => {
                tracing::warn!(%error, "cannot look for recordings past their retention");
                continue;
            }
        };
        for id in expired {
            match state.recordings.delete(&id).await {
                Ok(deleted) => {
                    let workspace = state.config.workspace.clone();
                    let reason = format!("older than {days} days ({deleted} objects)");
                    audit(&state, &workspace, "retention", "recording.delete", id, reason).await;
                }
                Err(error) => tracing::warn!(%error, id, "cannot delete a recording past its retention"),
            }
        }
    }
}
