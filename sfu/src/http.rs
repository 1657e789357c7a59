//! The SFU's HTTP face: the clients' WebSocket session (`/v1/sfu`), the control API for
//! signaling (`/v1/rooms`, bearer token), and `/healthz`, `/readyz`, `/metrics`.

// Handlers return `Result<_, HttpError>`: every refusal has the same JSON shape.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::Router;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, patch, post, put};
use futures_util::{SinkExt, StreamExt};
use isoplane_auth::{SfuClaims, SfuControlClaims, TokenKey};
use isoplane_service::http::HttpError;
use tokio::sync::{mpsc, oneshot};

use crate::protocol::{
    AvatarId, ClientMessage, ErrorCode, ParticipantUpdate, RecordingStart, RoomSettings, RoomStats, RoomSummary,
    ServerMessage,
};
use crate::recording::session::valid_id;
use crate::room::RecordingRefused;
use crate::room::Who;
use crate::worker::{CLIENT_QUEUE, Command, Shared};

/// A client must say who it is this soon after connecting.
const JOIN_TIMEOUT: Duration = Duration::from_secs(10);
/// Room names are `world/zone`: short, printable.
const MAX_ROOM_NAME: usize = 200;

#[derive(Debug, Clone)]
pub struct AppState {
    pub shared: Arc<Shared>,
    pub key: TokenKey,
    pub signal_bytes: usize,
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/v1/sfu", get(session))
        .route("/v1/rooms", get(list_rooms))
        .route("/v1/rooms/{room}", get(room_stats).put(create_room).delete(close_room))
        .route("/v1/rooms/{room}/participants/{sub}", patch(update_participant).delete(remove_participant))
        .route("/v1/rooms/{room}/avatars/{avatar}", delete(remove_avatar))
        .route("/v1/rooms/{room}/recording", put(start_recording).delete(stop_recording))
        .route("/v1/rooms/{room}/ingest", post(crate::ingest::ingest))
        .route("/v1/rooms/{room}/ingest/{avatar}", put(crate::ingest::renew))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready))
        .route("/metrics", get(metrics))
        .with_state(state)
}

pub(crate) fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

async fn ready(State(state): State<AppState>) -> Response {
    if state.shared.workers.iter().all(|worker| !worker.is_closed()) {
        "ready".into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "a worker stopped").into_response()
    }
}

async fn metrics(State(state): State<AppState>) -> Response {
    isoplane_service::http::metrics_response(state.shared.metrics.render())
}

/// Read buffer of a session's WebSocket, in bytes: its messages are a few kilobytes of
/// SDP at most (a longer one is read in several chunks), and the default 128 KiB per
/// participant would be a quarter of what a participant costs.
const SOCKET_READ_BUFFER: usize = 4096;

async fn session(State(state): State<AppState>, upgrade: WebSocketUpgrade) -> Response {
    let limit = state.signal_bytes;
    upgrade
        .max_message_size(limit)
        .max_frame_size(limit)
        .read_buffer_size(SOCKET_READ_BUFFER)
        .on_upgrade(move |socket| run_session(state, socket))
}

async fn send(socket: &mut WebSocket, message: &ServerMessage) -> bool {
    let Ok(text) = serde_json::to_string(message) else { return false };
    socket.send(Message::Text(text.into())).await.is_ok()
}

fn refusal(code: ErrorCode, message: impl Into<String>) -> ServerMessage {
    ServerMessage::Error { code, message: message.into(), fatal: true }
}

/// One client's session: `join` with a room token, then signalling relayed to the
/// room's worker and the worker's messages relayed back.
async fn run_session(state: AppState, mut socket: WebSocket) {
    let claims = match tokio::time::timeout(JOIN_TIMEOUT, socket.next()).await {
        Ok(Some(Ok(Message::Text(text)))) => match serde_json::from_str::<ClientMessage>(&text) {
            Ok(ClientMessage::Join { token }) => match state.key.verify::<SfuClaims>(&token, unix_now()) {
                Ok(claims) if !claims.room.is_empty() && claims.room.len() <= MAX_ROOM_NAME => claims,
                Ok(_) => {
                    send(&mut socket, &refusal(ErrorCode::BadToken, "the token names no valid room")).await;
                    return;
                }
                Err(e) => {
                    state.shared.metrics.sessions_refused.inc();
                    send(&mut socket, &refusal(ErrorCode::BadToken, format!("the room token was refused: {e}"))).await;
                    return;
                }
            },
            _ => {
                send(&mut socket, &refusal(ErrorCode::BadMessage, "the first message must be a join")).await;
                return;
            }
        },
        _ => return,
    };
    let worker = state.shared.worker_for_room(&claims.room);
    let (link, mut messages) = mpsc::channel(CLIENT_QUEUE);
    let (reply, joined) = oneshot::channel();
    if state.shared.workers[worker].send(Command::Join { claims, ingest: false, link, reply }).await.is_err() {
        send(&mut socket, &refusal(ErrorCode::Overloaded, "the SFU is shutting down")).await;
        return;
    }
    let participant = match joined.await {
        Ok(Ok(participant)) => participant,
        Ok(Err((code, message))) => {
            state.shared.metrics.sessions_refused.inc();
            send(&mut socket, &refusal(code, message)).await;
            return;
        }
        Err(_) => return,
    };
    let to_worker = &state.shared.workers[worker];
    loop {
        tokio::select! {
            message = messages.recv() => {
                let Some(message) = message else { break };
                let last = matches!(message, ServerMessage::Removed { .. });
                if !send(&mut socket, &message).await || last {
                    break;
                }
            }
            incoming = socket.next() => {
                let text = match incoming {
                    Some(Ok(Message::Text(text))) => text,
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                    _ => break,
                };
                match serde_json::from_str::<ClientMessage>(&text) {
                    Ok(ClientMessage::Join { .. }) => {
                        let error = ServerMessage::Error { code: ErrorCode::BadMessage, message: "already joined".into(), fatal: false };
                        if !send(&mut socket, &error).await { break }
                    }
                    Ok(message) => {
                        let leaving = message == ClientMessage::Leave;
                        if to_worker.send(Command::Signal { participant, message }).await.is_err() || leaving {
                            break;
                        }
                    }
                    Err(e) => {
                        let error = ServerMessage::Error { code: ErrorCode::BadMessage, message: format!("unreadable message: {e}"), fatal: false };
                        if !send(&mut socket, &error).await { break }
                    }
                }
            }
        }
    }
    let _ = to_worker.send(Command::Leave { participant }).await;
    let _ = socket.close().await;
}

/// The control API's guard: a bearer token with the control scope.
fn authorize(state: &AppState, headers: &HeaderMap) -> Result<(), HttpError> {
    let token = headers
        .get("authorization")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "));
    let Some(token) = token else {
        return Err(api_error(StatusCode::UNAUTHORIZED, "unauthorized", "send Authorization: Bearer <control token>"));
    };
    match state.key.verify::<SfuControlClaims>(token, unix_now()) {
        Ok(claims) if claims.scope == SfuControlClaims::SCOPE => Ok(()),
        Ok(_) => Err(api_error(StatusCode::FORBIDDEN, "forbidden", "the token is not a control token")),
        Err(e) => {
            Err(api_error(StatusCode::UNAUTHORIZED, "unauthorized", &format!("the control token was refused: {e}")))
        }
    }
}

fn api_error(status: StatusCode, code: &'static str, message: &str) -> HttpError {
    HttpError::new(status, code, message)
}

/// The opening of every per-room control call: the caller's token, the room's name, and
/// the worker that owns the room.
pub(crate) fn room_worker(state: &AppState, headers: &HeaderMap, room: &str) -> Result<usize, HttpError> {
    authorize(state, headers)?;
    check_room(room)?;
    Ok(state.shared.worker_for_room(room))
}

/// 204 when the participant was there; 404 `no_participant` when not.
fn done_if_found(found: bool, who: &str) -> Result<StatusCode, HttpError> {
    if found {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(api_error(StatusCode::NOT_FOUND, "no_participant", &format!("that {who} is not in that room")))
    }
}

fn check_room(room: &str) -> Result<(), HttpError> {
    if room.is_empty() || room.len() > MAX_ROOM_NAME || room.chars().any(char::is_control) {
        return Err(api_error(StatusCode::BAD_REQUEST, "bad_room", "a room name is 1 to 200 printable characters"));
    }
    Ok(())
}

/// Sends a command to a worker and waits for its reply.
async fn ask<T>(
    state: &AppState,
    worker: usize,
    command: impl FnOnce(oneshot::Sender<T>) -> Command,
) -> Result<T, HttpError> {
    let (reply, answer) = oneshot::channel();
    let unavailable = || api_error(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "the SFU is shutting down");
    state.shared.workers[worker].send(command(reply)).await.map_err(|_| unavailable())?;
    answer.await.map_err(|_| unavailable())
}

async fn list_rooms(State(state): State<AppState>, headers: HeaderMap) -> Result<Json<Vec<RoomSummary>>, HttpError> {
    authorize(&state, &headers)?;
    let mut rooms = Vec::new();
    for worker in 0..state.shared.workers.len() {
        rooms.extend(ask(&state, worker, |reply| Command::ListRooms { reply }).await?);
    }
    rooms.sort_by(|a, b| a.room.cmp(&b.room));
    Ok(Json(rooms))
}

async fn room_stats(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(room): Path<String>,
) -> Result<Json<RoomStats>, HttpError> {
    let worker = room_worker(&state, &headers, &room)?;
    match ask(&state, worker, |reply| Command::Stats { room, reply }).await? {
        Some(stats) => Ok(Json(stats)),
        None => Err(api_error(StatusCode::NOT_FOUND, "no_room", "no such room is open")),
    }
}

async fn create_room(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(room): Path<String>,
    body: Option<Json<RoomSettings>>,
) -> Result<StatusCode, HttpError> {
    let worker = room_worker(&state, &headers, &room)?;
    let settings = body.map(|Json(settings)| settings).unwrap_or_default();
    ask(&state, worker, |reply| Command::CreateRoom { room, settings, reply }).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn close_room(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(room): Path<String>,
) -> Result<StatusCode, HttpError> {
    let worker = room_worker(&state, &headers, &room)?;
    ask(&state, worker, |reply| Command::CloseRoom { room, reply }).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn update_participant(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((room, sub)): Path<(String, String)>,
    Json(update): Json<ParticipantUpdate>,
) -> Result<StatusCode, HttpError> {
    let worker = room_worker(&state, &headers, &room)?;
    let found = ask(&state, worker, |reply| Command::Update { room, sub, update, reply }).await?;
    done_if_found(found, "user")
}

async fn remove_participant(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((room, sub)): Path<(String, String)>,
) -> Result<StatusCode, HttpError> {
    remove(&state, &headers, room, Who::User(sub), "removed by a moderator").await
}

/// Signaling takes an avatar out of a room its plan no longer includes (it walked out
/// of the zone, or the zone left the SFU): the client's own goodwill is not enough.
async fn remove_avatar(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((room, avatar)): Path<(String, AvatarId)>,
) -> Result<StatusCode, HttpError> {
    remove(&state, &headers, room, Who::Avatar(avatar), "no longer in this room").await
}

/// Ends `who`'s session in `room`, telling its client `reason`.
async fn remove(
    state: &AppState,
    headers: &HeaderMap,
    room: String,
    who: Who,
    reason: &'static str,
) -> Result<StatusCode, HttpError> {
    let worker = room_worker(state, headers, &room)?;
    let kind = if matches!(who, Who::Avatar(_)) { "avatar" } else { "user" };
    let found = ask(state, worker, |reply| Command::Remove { room, who, reason, reply }).await?;
    done_if_found(found, kind)
}

/// Starts recording a room (opened if nobody joined yet): 204; 400 for an ID that is not
/// 1 to 64 letters, digits, `-` or `_`; 409 for an end-to-end encrypted room; 503 when
/// recording is not enabled on this node.
async fn start_recording(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(room): Path<String>,
    Json(start): Json<RecordingStart>,
) -> Result<StatusCode, HttpError> {
    let worker = room_worker(&state, &headers, &room)?;
    if state.shared.recording_store.is_none() {
        let why = "recording is not enabled on this SFU (recording.enabled, and a store)";
        return Err(api_error(StatusCode::SERVICE_UNAVAILABLE, "recording_disabled", why));
    }
    if !valid_id(&start.id) {
        let why = "a recording ID is 1 to 64 ASCII letters, digits, `-` or `_`";
        return Err(api_error(StatusCode::BAD_REQUEST, "bad_recording_id", why));
    }
    let unix_ms =
        i64::try_from(SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_millis()).unwrap_or(i64::MAX);
    let RecordingStart { id, started_by, renew } = start;
    let command = |reply| Command::StartRecording { room, id, started_by, renew, unix_ms, reply };
    match ask(&state, worker, command).await? {
        Ok(()) => Ok(StatusCode::NO_CONTENT),
        Err(RecordingRefused::NotRecording) => {
            Err(api_error(StatusCode::NOT_FOUND, "not_recording", "that recording is not going on here"))
        }
        Err(refused) => Err(api_error(StatusCode::CONFLICT, "recording_refused", &refused.to_string())),
    }
}

/// `?id=`: stop only that recording (and never start it later).
#[derive(Debug, serde::Deserialize)]
struct StopQuery {
    id: Option<String>,
}

/// Stops recording a room (`?id=`: that recording only): 204, or 404 when it was not
/// being recorded.
async fn stop_recording(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(room): Path<String>,
    axum::extract::Query(StopQuery { id }): axum::extract::Query<StopQuery>,
) -> Result<StatusCode, HttpError> {
    let worker = room_worker(&state, &headers, &room)?;
    if ask(&state, worker, |reply| Command::StopRecording { room, id, reply }).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(api_error(StatusCode::NOT_FOUND, "not_recording", "that room is not being recorded"))
    }
}
