//! World files: publish a version, check one without publishing it, list versions, move
//! the current-version pointer, load the current version.
//!
//! Invariants: a version is recorded only for a world file that validated with
//! `isoplane-world-format` and whose tileset images are all stored assets; the file is
//! stored in its canonical form (so the same world always has the same content ID); a
//! publish or a pointer move against a stale version changes nothing and answers 409.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use isoplane_world_format::{World, is_valid_id};
use serde::Deserialize;

use super::{Access, ApiError, AppState, audit, authorize, check_workspace, internal, refusal, refusal_with, unix_now};
use crate::metadata::{AssetRecord, MetadataError, NewVersion};
use crate::rules;

/// Media type recorded for world files stored as assets.
pub const WORLD_MEDIA_TYPE: &str = "application/json";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PublishRequest {
    /// The version the world was edited from; 0 for a new world.
    base_version: i64,
    world: serde_json::Value,
    #[serde(default)]
    reason: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SetCurrentRequest {
    expected_version: i64,
    version: i64,
    #[serde(default)]
    reason: String,
}

fn json(status: StatusCode, body: serde_json::Value) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
}

fn check_name(name: &str) -> Result<(), ApiError> {
    if is_valid_id(name) {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_world_name",
            "world names are 1 to 64 ASCII letters, digits, `-`, `_` or `.`",
        ))
    }
}

fn conflict(state: &AppState, current: i64) -> Response {
    state.metrics.world_conflicts.inc();
    refusal_with(
        StatusCode::CONFLICT,
        "version_conflict",
        "the world changed since your base version; reload it and apply your change again",
        "current_version",
        current,
    )
}

/// The common start of a write to a world: a valid workspace and world name, an admin
/// caller, and a body that is the JSON request `expected` shows.
async fn admin_request<T: serde::de::DeserializeOwned>(
    state: &AppState,
    workspace: &str,
    name: &str,
    headers: &HeaderMap,
    body: &Bytes,
    expected: &str,
) -> Result<(isoplane_auth::JoinClaims, T), Response> {
    check_workspace(state, workspace).and_then(|()| check_name(name)).map_err(IntoResponse::into_response)?;
    let claims = authorize(state, headers, workspace, Access::Write).await.map_err(IntoResponse::into_response)?;
    let request = serde_json::from_slice(body)
        .map_err(|error| refusal(StatusCode::BAD_REQUEST, "bad_request", &format!("expected {expected}: {error}")))?;
    Ok((claims, request))
}

/// The common start of a read of one world: a valid workspace and world name, and a
/// member of the workspace asking.
async fn member_request(state: &AppState, workspace: &str, name: &str, headers: &HeaderMap) -> Result<(), Response> {
    check_workspace(state, workspace).and_then(|()| check_name(name)).map_err(IntoResponse::into_response)?;
    authorize(state, headers, workspace, Access::Read).await.map_err(IntoResponse::into_response)?;
    Ok(())
}

/// Why a world file may not be published, or what stopped the checking.
enum Verdict {
    /// It has errors (JSONPath and message each).
    Invalid(isoplane_world_format::WorldErrors),
    /// It names tileset images that are not stored.
    MissingAssets(Vec<String>),
    /// The check itself failed (the database).
    Refused(Response),
}

impl Verdict {
    fn refusal(self) -> Response {
        match self {
            Verdict::Invalid(errors) => refusal_with(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_world",
                &errors.to_string(),
                "errors",
                problems(&errors.errors),
            ),
            Verdict::MissingAssets(missing) => refusal_with(
                StatusCode::UNPROCESSABLE_ENTITY,
                "missing_assets",
                "the world references assets that are not uploaded; upload them first",
                "missing",
                serde_json::Value::from(missing),
            ),
            Verdict::Refused(refused) => refused,
        }
    }
}

fn problems(problems: &[isoplane_world_format::Problem]) -> serde_json::Value {
    problems.iter().map(|p| serde_json::json!({"path": p.path, "message": p.message})).collect()
}

/// The world `value` describes, if it may be published: valid, its images all stored.
async fn checked_world(state: &AppState, value: &serde_json::Value) -> Result<World, Verdict> {
    let world = World::from_json(&value.to_string()).map_err(Verdict::Invalid)?;
    let images: Vec<_> = world.file().tilesets.iter().map(|tileset| tileset.image.clone()).collect();
    match state.metadata.missing_assets(&images).await {
        Ok(missing) if missing.is_empty() => Ok(world),
        Ok(missing) => Err(Verdict::MissingAssets(missing.iter().map(ToString::to_string).collect())),
        Err(error) => Err(Verdict::Refused(internal("checking a world's assets", &error))),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CheckRequest {
    world: serde_json::Value,
}

/// `POST …/worlds/{name}/check`: what publishing this world file would say of it, without
/// publishing (build mode checks every edit): `{"errors", "missing", "warnings"}`, each a
/// list, all empty for a file that may be published.
pub(super) async fn check(
    State(state): State<Arc<AppState>>,
    UrlPath((workspace, name)): UrlPath<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (_, request): (_, CheckRequest) =
        match admin_request(&state, &workspace, &name, &headers, &body, "{\"world\": {…}}").await {
            Ok(parsed) => parsed,
            Err(refused) => return refused,
        };
    let (errors, missing, warnings) = match checked_world(&state, &request.world).await {
        Ok(world) => (Vec::new(), Vec::new(), problems(world.warnings())),
        Err(Verdict::Invalid(errors)) => (errors.errors, Vec::new(), serde_json::json!([])),
        Err(Verdict::MissingAssets(missing)) => (Vec::new(), missing, serde_json::json!([])),
        Err(Verdict::Refused(refused)) => return refused,
    };
    json(StatusCode::OK, serde_json::json!({"errors": problems(&errors), "missing": missing, "warnings": warnings}))
}

pub(super) async fn publish(
    State(state): State<Arc<AppState>>,
    UrlPath((workspace, name)): UrlPath<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (claims, request): (_, PublishRequest) =
        match admin_request(&state, &workspace, &name, &headers, &body, "{\"base_version\": N, \"world\": {…}}").await
        {
            Ok(parsed) => parsed,
            Err(refused) => return refused,
        };
    let world = match checked_world(&state, &request.world).await {
        Ok(world) => world,
        Err(Verdict::Refused(refused)) => return refused,
        Err(verdict) => {
            state.metrics.world_rejections.inc();
            return verdict.refusal();
        }
    };
    let canonical = Bytes::from(world.to_json_pretty());
    let size = canonical.len() as u64;
    let content_id = match state.store.put_bytes(canonical).await {
        Ok(id) => id,
        Err(error) => return internal("storing a world file", &error),
    };
    let now = unix_now();
    let record = AssetRecord {
        id: content_id.clone(),
        size,
        media_type: WORLD_MEDIA_TYPE.into(),
        workspace: workspace.clone(),
        uploaded_by: claims.sub.clone(),
        created_at: now,
    };
    if let Err(error) = state.metadata.insert_asset(&record).await {
        return internal("recording a world file", &error);
    }
    let new = NewVersion {
        workspace: &workspace,
        world: &name,
        base_version: request.base_version,
        content_id: &content_id,
        created_by: &claims.sub,
        now,
    };
    match state.metadata.publish_version(&new).await {
        Ok(version) => {
            state.metrics.world_publishes.inc();
            let target = format!("world:{name}@{}", version.version);
            audit(&state, &workspace, &claims.sub, "world.publish", target, request.reason).await;
            json(
                StatusCode::CREATED,
                serde_json::json!({
                    "world": name,
                    "version": version.version,
                    "parent_version": version.parent_version,
                    "content_id": version.content_id,
                    "url": format!("/assets/{}", version.content_id),
                }),
            )
        }
        Err(MetadataError::Conflict { current }) => conflict(&state, current),
        Err(error) => internal("publishing a world version", &error),
    }
}

pub(super) async fn set_current(
    State(state): State<Arc<AppState>>,
    UrlPath((workspace, name)): UrlPath<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (claims, request): (_, SetCurrentRequest) =
        match admin_request(&state, &workspace, &name, &headers, &body, "{\"expected_version\": N, \"version\": M}")
            .await
        {
            Ok(parsed) => parsed,
            Err(refused) => return refused,
        };
    match state.metadata.set_current_version(&workspace, &name, request.expected_version, request.version).await {
        Ok(()) => {
            let target = format!("world:{name}@{}", request.version);
            audit(&state, &workspace, &claims.sub, "world.set_current", target, request.reason).await;
            json(StatusCode::OK, serde_json::json!({"world": name, "current_version": request.version}))
        }
        Err(MetadataError::Conflict { current }) => conflict(&state, current),
        Err(MetadataError::UnknownWorld) => {
            refusal(StatusCode::NOT_FOUND, "unknown_world", "there is no world with this name")
        }
        Err(MetadataError::UnknownVersion(_)) => {
            refusal(StatusCode::NOT_FOUND, "unknown_version", "the world has no such version")
        }
        Err(error) => internal("moving a world's current version", &error),
    }
}

pub(super) async fn list_worlds(
    State(state): State<Arc<AppState>>,
    UrlPath(workspace): UrlPath<String>,
    headers: HeaderMap,
) -> Response {
    if let Err(refused) = check_workspace(&state, &workspace) {
        return refused.into_response();
    }
    if let Err(refused) = authorize(&state, &headers, &workspace, Access::Read).await {
        return refused.into_response();
    }
    match state.metadata.worlds(&workspace).await {
        Ok(worlds) => json(StatusCode::OK, serde_json::json!({ "worlds": worlds })),
        Err(error) => internal("listing worlds", &error),
    }
}

pub(super) async fn list_versions(
    State(state): State<Arc<AppState>>,
    UrlPath((workspace, name)): UrlPath<(String, String)>,
    headers: HeaderMap,
) -> Response {
    if let Err(refused) = member_request(&state, &workspace, &name, &headers).await {
        return refused;
    }
    let summary = match state.metadata.world(&workspace, &name).await {
        Ok(Some(summary)) => summary,
        Ok(None) => return refusal(StatusCode::NOT_FOUND, "unknown_world", "there is no world with this name"),
        Err(error) => return internal("reading a world", &error),
    };
    match state.metadata.versions(&workspace, &name).await {
        Ok(versions) => json(
            StatusCode::OK,
            serde_json::json!({"world": name, "current_version": summary.current_version, "versions": versions}),
        ),
        Err(error) => internal("listing world versions", &error),
    }
}

pub(super) async fn load_current(
    State(state): State<Arc<AppState>>,
    UrlPath((workspace, name)): UrlPath<(String, String)>,
    headers: HeaderMap,
) -> Response {
    if let Err(refused) = member_request(&state, &workspace, &name, &headers).await {
        return refused;
    }
    let version = match state.metadata.current_version(&workspace, &name).await {
        Ok(Some(version)) => version,
        Ok(None) => return refusal(StatusCode::NOT_FOUND, "unknown_world", "the world has no current version"),
        Err(error) => return internal("reading a world's current version", &error),
    };
    let etag = rules::etag(&version.content_id);
    let mut response_headers = HeaderMap::new();
    response_headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("private, no-cache"));
    response_headers.insert("x-isoplane-world-version", HeaderValue::from(version.version));
    if let Ok(value) = HeaderValue::from_str(&etag) {
        response_headers.insert(header::ETAG, value);
    }
    let if_none_match = headers.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok());
    if if_none_match.is_some_and(|value| rules::if_none_match_matches(value, &etag)) {
        return (StatusCode::NOT_MODIFIED, response_headers).into_response();
    }
    match state.store.get_bytes(&version.content_id).await {
        Ok(Some(bytes)) => {
            response_headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(WORLD_MEDIA_TYPE));
            (StatusCode::OK, response_headers, bytes).into_response()
        }
        Ok(None) => internal("loading a world file", &format!("{} is recorded but not stored", version.content_id)),
        Err(error) => internal("loading a world file", &error),
    }
}
