//! WHIP (RFC 9725): a broadcaster (OBS, GStreamer's `whipsink`, any WHIP client)
//! publishes to a stage with an ingest key an admin made (`create_ingest_key`).
//!
//! - `POST /v1/whip` with `Authorization: Bearer <ingest key>`, `Content-Type:
//!   application/sdp` and the SDP offer: the key is checked (its hash, not revoked), the
//!   stage's world gives the stream an avatar ID and its SFU node, the SFU answers the
//!   offer (`POST /v1/rooms/{room}/ingest`), and the answer comes back as `201 Created`
//!   with `Location: /v1/whip/{session}`. Media then goes straight to the SFU.
//! - `DELETE /v1/whip/{session}` with the same key ends the stream.
//! - `PATCH` (trickle ICE) is not supported (405): the SFU is ICE-lite and its answer
//!   carries its candidates; the broadcaster's come with its connectivity checks.
//!
//! The stream ends too when the SFU drops its session (the broadcaster went away: looked
//! at every [`WATCH_INTERVAL`]) and when its key is revoked. In a cluster, the node that
//! serves the stage's world must take the request (another answers 503 `try_again`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use isoplane_service::http::HttpError;
use sha2::{Digest, Sha256};
use tokio::sync::oneshot;

use super::AppState;
use super::world_task::WorldCommand;
use crate::engine::{IngestSlot, Moderation};

/// Every ingest key starts so: a key is told from a join token at a glance.
pub const KEY_PREFIX: &str = "isoplane-ingest-";
/// The largest SDP offer taken.
pub const MAX_OFFER_BYTES: usize = 64 * 1024;
/// How often a stream's SFU session is looked for.
const WATCH_INTERVAL: Duration = Duration::from_secs(2);

/// The hex SHA-256 of an ingest key, as the records keep it.
pub fn key_hash(key: &str) -> String {
    Sha256::digest(key.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// A stream being published.
#[derive(Debug, Clone)]
struct Session {
    world: String,
    /// The ingest key's ID.
    key: String,
    room: String,
    avatar: u32,
    control_url: String,
}

/// The streams this node serves, by session ID (the `Location` they were given).
#[derive(Debug, Default)]
pub(crate) struct Sessions(Mutex<HashMap<String, Session>>);

impl Sessions {
    fn insert(&self, id: String, session: Session) {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(id, session);
    }

    fn take(&self, id: &str) -> Option<Session> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(id)
    }

    fn contains(&self, id: &str) -> bool {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).contains_key(id)
    }
}

fn refusal(status: StatusCode, code: &'static str, message: &str) -> Response {
    HttpError::new(status, code, message).into_response()
}

/// The ingest key in force that `headers` bear.
async fn bearer_key(state: &AppState, headers: &HeaderMap) -> Result<isoplane_metadata::IngestKey, Response> {
    let unauthorized = || refusal(StatusCode::UNAUTHORIZED, "invalid_key", "send Authorization: Bearer <ingest key>");
    let key = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|key| key.starts_with(KEY_PREFIX) && key.len() <= 200)
        .ok_or_else(unauthorized)?;
    match state.metadata.ingest_key_by_hash(&key_hash(key)).await {
        Ok(Some(found)) if found.workspace == state.config.workspace => Ok(found),
        Ok(_) => Err(refusal(StatusCode::UNAUTHORIZED, "invalid_key", "this ingest key is unknown or revoked")),
        Err(error) => Err(HttpError::internal("reading ingest keys", &error).into_response()),
    }
}

/// `POST /v1/whip`.
pub(super) async fn publish(State(state): State<Arc<AppState>>, headers: HeaderMap, offer: Bytes) -> Response {
    let key = match bearer_key(&state, &headers).await {
        Ok(key) => key,
        Err(refused) => return refused,
    };
    let is_sdp = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(';').next().is_some_and(|t| t.trim().eq_ignore_ascii_case("application/sdp")));
    if !is_sdp {
        return refusal(StatusCode::UNSUPPORTED_MEDIA_TYPE, "not_sdp", "send the offer as application/sdp");
    }
    let Ok(offer) = std::str::from_utf8(&offer) else {
        return refusal(StatusCode::BAD_REQUEST, "bad_offer", "the offer is not UTF-8 text");
    };
    let Some(world) = state.worlds.get(&key.world) else {
        return refusal(StatusCode::NOT_FOUND, "unknown_world", "the key's world is not served here");
    };
    if let Some(cluster) = &state.cluster
        && !matches!(cluster.remote_owner(&key.world).await, Ok(None))
    {
        return refusal(StatusCode::SERVICE_UNAVAILABLE, "try_again", "another node serves this world now");
    }
    let (reply, slot) = oneshot::channel();
    let start =
        WorldCommand::StartIngest { key: key.id.clone(), zone: key.zone.clone(), name: key.name.clone(), reply };
    if world.commands.send(start).await.is_err() {
        return refusal(StatusCode::SERVICE_UNAVAILABLE, "shutting_down", "the server is shutting down");
    }
    let slot: IngestSlot = match slot.await {
        Ok(Ok(slot)) => slot,
        Ok(Err(why)) => return refusal(StatusCode::CONFLICT, "stage_unavailable", &why),
        Err(_) => return refusal(StatusCode::SERVICE_UNAVAILABLE, "shutting_down", "the server is shutting down"),
    };
    let Some(sfu) = super::media::sfu_control(&state.config, &state.tasks) else {
        end(&state, &key.world, &key.id, slot.avatar).await;
        return refusal(StatusCode::SERVICE_UNAVAILABLE, "no_sfu", "no SFU is configured");
    };
    let sub = format!("ingest:{}", key.id);
    let answer = match sfu.ingest(&slot.control_url, &slot.room, slot.avatar, &sub, offer).await {
        Ok(answer) => answer,
        Err(why) => {
            end(&state, &key.world, &key.id, slot.avatar).await;
            return refusal(StatusCode::BAD_REQUEST, "offer_refused", &why);
        }
    };
    let id = format!("{:032x}", rand::random::<u128>());
    let session = Session {
        world: key.world.clone(),
        key: key.id.clone(),
        room: slot.room,
        avatar: slot.avatar,
        control_url: slot.control_url,
    };
    state.sessions.insert(id.clone(), session.clone());
    tracing::info!(key = key.id, room = session.room, avatar = session.avatar, "a broadcaster's stream started");
    state.tasks.spawn_until_shutdown(watch(Arc::clone(&state), id.clone(), session, sfu));
    let location = HeaderValue::from_str(&format!("/v1/whip/{id}")).unwrap_or(HeaderValue::from_static("/v1/whip"));
    let content_type = HeaderValue::from_static("application/sdp");
    (StatusCode::CREATED, [(header::LOCATION, location), (header::CONTENT_TYPE, content_type)], answer).into_response()
}

/// `DELETE /v1/whip/{session}`: the broadcaster stops.
pub(super) async fn stop(State(state): State<Arc<AppState>>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    let key = match bearer_key(&state, &headers).await {
        Ok(key) => key,
        Err(refused) => return refused,
    };
    let not_found = || refusal(StatusCode::NOT_FOUND, "no_session", "no stream of this key has this session");
    match state.sessions.take(&id) {
        Some(session) if session.key == key.id => {
            end(&state, &session.world, &session.key, session.avatar).await;
            StatusCode::OK.into_response()
        }
        Some(session) => {
            // Another key's session: left as it was.
            state.sessions.insert(id, session);
            not_found()
        }
        None => not_found(),
    }
}

/// `PATCH /v1/whip/{session}`: trickle ICE and ICE restarts are not offered.
pub(super) async fn patch() -> Response {
    refusal(StatusCode::METHOD_NOT_ALLOWED, "no_trickle", "this server takes no trickled candidates")
}

/// The stream of key `key` under `avatar` ends in `world` (its SFU session is revoked by
/// the world); a newer stream of the same key goes on.
async fn end(state: &AppState, world: &str, key: &str, avatar: u32) {
    let Some(entry) = state.worlds.get(world) else { return };
    let (reply, done) = oneshot::channel();
    let action = Moderation::EndIngest { key: key.to_owned(), avatar: Some(avatar) };
    if entry.commands.send(WorldCommand::Moderate { action, reply }).await.is_ok() {
        let _ = done.await;
    }
}

/// Ends the stream once the SFU no longer has its session (the broadcaster went away,
/// or the key was revoked); stops watching once the session was ended here.
async fn watch(state: Arc<AppState>, id: String, session: Session, sfu: super::sfu_control::SfuControl) {
    let mut every = tokio::time::interval(WATCH_INTERVAL);
    every.tick().await;
    loop {
        every.tick().await;
        if !state.sessions.contains(&id) {
            return;
        }
        match sfu.has_avatar(&session.control_url, &session.room, session.avatar).await {
            Ok(true) => {}
            Ok(false) => {
                tracing::info!(key = session.key, room = session.room, "a broadcaster's stream ended");
                if state.sessions.take(&id).is_some() {
                    end(&state, &session.world, &session.key, session.avatar).await;
                }
                return;
            }
            Err(error) => tracing::warn!(%error, room = session.room, "cannot look at a broadcaster's stream"),
        }
    }
}
