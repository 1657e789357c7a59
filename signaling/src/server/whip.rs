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
//! While the stream is on its stage this node renews its SFU session every
//! [`WATCH_INTERVAL`] (the SFU ends a session not renewed for 20 s, so a stream never
//! outlives the signaling that let it in by long). The stream ends when the SFU dropped
//! it (the broadcaster went away, or never connected), when its key is revoked, when
//! its world ended it (revocation, the stage's SFU node changed, the world moved to
//! another node), or when the SFU cannot be reached for a while. In a cluster, the node
//! that serves (or takes) the stage's world must take the request; another answers 503
//! `try_again`.

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

/// The SFU is given up on after this many failed renewals in a row.
const WATCH_FAILURES: u32 = 5;

/// A stream being published.
#[derive(Debug, Clone)]
struct Session {
    world: String,
    /// The ingest key's ID, and its hash (to see it revoked).
    key: String,
    key_hash: String,
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

    /// Takes the session if it is `key`'s (one lock: no one sees it gone meanwhile).
    fn take_if_key(&self, id: &str, key: &str) -> Option<Session> {
        let mut sessions = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if sessions.get(id).is_some_and(|s| s.key == key) { sessions.remove(id) } else { None }
    }

    fn contains(&self, id: &str) -> bool {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).contains_key(id)
    }
}

fn refusal(status: StatusCode, code: &'static str, message: &str) -> Response {
    HttpError::new(status, code, message).into_response()
}

/// The ingest key in force that `headers` bear.
async fn bearer_key(state: &AppState, headers: &HeaderMap) -> Result<(isoplane_metadata::IngestKey, String), Response> {
    let unauthorized = || refusal(StatusCode::UNAUTHORIZED, "invalid_key", "send Authorization: Bearer <ingest key>");
    let key = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' ').filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer")).map(|(_, k)| k))
        .map(str::trim)
        .filter(|key| key.starts_with(KEY_PREFIX) && key.len() <= 200)
        .ok_or_else(unauthorized)?;
    let hash = key_hash(key);
    match state.metadata.ingest_key_by_hash(&hash).await {
        Ok(Some(found)) if found.workspace == state.config.workspace => Ok((found, hash)),
        Ok(_) => Err(refusal(StatusCode::UNAUTHORIZED, "invalid_key", "this ingest key is unknown or revoked")),
        Err(error) => Err(HttpError::internal("reading ingest keys", &error).into_response()),
    }
}

/// `POST /v1/whip`.
pub(super) async fn publish(State(state): State<Arc<AppState>>, headers: HeaderMap, offer: Bytes) -> Response {
    let (key, hash) = match bearer_key(&state, &headers).await {
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
    if let Some(cluster) = &state.cluster {
        match cluster.route(&key.world).await {
            Ok(super::cluster::Route::Local { acquired }) => {
                if acquired {
                    // Taken over just now: the recorded zone settings apply first.
                    state.metrics.worlds_taken_over.inc();
                    state.moderator.refresh_zones(&key.world).await;
                }
            }
            _ => return refusal(StatusCode::SERVICE_UNAVAILABLE, "try_again", "another node serves this world now"),
        }
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
    // Meanwhile the key may have been revoked, or the same key started again: the world
    // says whether this stream is still the stage's; if not, it never starts.
    if !is_live(&state, &key.world, &key.id, slot.avatar).await {
        sfu.revoke_now(&slot.control_url, &slot.room, slot.avatar).await;
        return refusal(StatusCode::CONFLICT, "stage_unavailable", "the stream was ended while it started");
    }
    let id = format!("{:032x}", rand::random::<u128>());
    let session = Session {
        world: key.world.clone(),
        key: key.id.clone(),
        key_hash: hash,
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
    let (key, _) = match bearer_key(&state, &headers).await {
        Ok(key) => key,
        Err(refused) => return refused,
    };
    match state.sessions.take_if_key(&id, &key.id) {
        Some(session) => {
            end(&state, &session.world, &session.key, session.avatar).await;
            if let Some(sfu) = super::media::sfu_control(&state.config, &state.tasks) {
                sfu.revoke_now(&session.control_url, &session.room, session.avatar).await;
            }
            StatusCode::OK.into_response()
        }
        None => refusal(StatusCode::NOT_FOUND, "no_session", "no stream of this key has this session"),
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

/// Whether the world still has this stream on its stage.
async fn is_live(state: &AppState, world: &str, key: &str, avatar: u32) -> bool {
    let Some(entry) = state.worlds.get(world) else { return false };
    let (reply, answer) = oneshot::channel();
    let ask = WorldCommand::IngestIsLive { key: key.to_owned(), avatar, reply };
    entry.commands.send(ask).await.is_ok() && answer.await.unwrap_or(false)
}

/// Keeps the stream's SFU session renewed while it is on its stage; ends it (at the SFU
/// and in the world) once the SFU dropped it, its key was revoked, the world ended it, or
/// the SFU cannot be reached; stops once the session was ended here (DELETE).
async fn watch(state: Arc<AppState>, id: String, session: Session, sfu: super::sfu_control::SfuControl) {
    let mut every = tokio::time::interval(WATCH_INTERVAL);
    every.tick().await;
    let mut failures = 0;
    loop {
        every.tick().await;
        if !state.sessions.contains(&id) {
            return;
        }
        let revoked = matches!(state.metadata.ingest_key_by_hash(&session.key_hash).await, Ok(None));
        let live = !revoked && is_live(&state, &session.world, &session.key, session.avatar).await;
        let at_sfu =
            if live { sfu.renew_ingest(&session.control_url, &session.room, session.avatar).await } else { Ok(None) };
        let why = match at_sfu {
            Ok(Some(_)) => {
                failures = 0;
                continue;
            }
            Ok(None) if revoked => "its key was revoked",
            Ok(None) if !live => "its world ended it",
            Ok(None) => "the SFU dropped it",
            Err(error) => {
                failures += 1;
                tracing::warn!(%error, room = session.room, "cannot renew a broadcaster's stream");
                if failures < WATCH_FAILURES {
                    continue;
                }
                "the SFU cannot be reached"
            }
        };
        tracing::info!(key = session.key, room = session.room, why, "a broadcaster's stream ended");
        if state.sessions.take(&id).is_some() {
            end(&state, &session.world, &session.key, session.avatar).await;
            sfu.revoke_now(&session.control_url, &session.room, session.avatar).await;
        }
        return;
    }
}
