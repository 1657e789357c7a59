//! Ingest: a stream published by a broadcaster (OBS, GStreamer, any WHIP client) into a
//! room, on signaling's behalf. Signaling checks the broadcaster's ingest key and speaks
//! WHIP (RFC 9725) with it; it hands the offer to this control call, which makes the
//! broadcaster a participant of the room that publishes under its own avatar ID, and
//! answers the SDP answer. Media then flows straight from the broadcaster to this SFU
//! (ICE-lite, the answer's candidates), like any participant's.
//!
//! `POST /v1/rooms/{room}/ingest` (control token), body [`IngestRequest`]: 201 with
//! [`IngestAnswer`]; 400 for an offer that does not parse, 409 for an avatar already in
//! the room, 503 when the room is full or the SFU is stopping. The session ends like any
//! other: `DELETE /v1/rooms/{room}/avatars/{avatar}`, or its connection lost.
//!
//! Signaling renews the session every 2 s while the stream is on its stage (`PUT
//! /v1/rooms/{room}/ingest/{avatar}`: 204 connected, 409 not connected yet, 404 gone):
//! a session not renewed for 20 s (signaling restarted, or ended the stream and its
//! revocation was lost) ends, as does one that never connected within 20 s.
//!
//! The broadcaster has no message channel (WHIP has none after the answer): what the
//! room would tell it (other people's tracks, speakers) is dropped, and it publishes only.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use isoplane_auth::SfuClaims;
use isoplane_service::http::HttpError;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};

use crate::http::{AppState, room_worker, unix_now};
use crate::protocol::{AvatarId, ClientMessage, ErrorCode, ServerMessage};
use crate::worker::{CLIENT_QUEUE, Command};

/// How long the room may take to answer the offer.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

/// `POST /v1/rooms/{room}/ingest`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngestRequest {
    /// The avatar ID the stream appears under (signaling's, unused by anyone in the world).
    pub avatar: AvatarId,
    /// Whose it is, for the room's stats and moderation (`ingest:{key ID}`).
    pub sub: String,
    /// The broadcaster's SDP offer.
    pub sdp: String,
}

/// The answer to an [`IngestRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IngestAnswer {
    pub sdp: String,
}

pub(crate) async fn ingest(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(room): Path<String>,
    Json(request): Json<IngestRequest>,
) -> Result<(StatusCode, Json<IngestAnswer>), HttpError> {
    let worker = room_worker(&state, &headers, &room)?;
    let refused = |status, code, message: &str| HttpError::new(status, code, message);
    let unavailable = || refused(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "the SFU is shutting down");
    let claims = SfuClaims {
        room,
        sub: request.sub,
        avatar: request.avatar,
        publish: true,
        audio_muted: false,
        video_muted: false,
        e2ee: false,
        exp: unix_now() + 60,
    };
    let to_worker = &state.shared.workers[worker];
    let (link, mut messages) = mpsc::channel(CLIENT_QUEUE);
    let (reply, joined) = oneshot::channel();
    to_worker.send(Command::Join { claims, ingest: true, link, reply }).await.map_err(|_| unavailable())?;
    let participant = match joined.await.map_err(|_| unavailable())? {
        Ok(participant) => participant,
        Err((ErrorCode::NotAllowed, message)) => return Err(refused(StatusCode::CONFLICT, "avatar_taken", &message)),
        Err((_, message)) => return Err(refused(StatusCode::SERVICE_UNAVAILABLE, "room_full", &message)),
    };
    let offer = ClientMessage::Offer { id: 1, sdp: request.sdp, sources: BTreeMap::new() };
    to_worker.send(Command::Signal { participant, message: offer }).await.map_err(|_| unavailable())?;
    let answer = tokio::time::timeout(ANSWER_TIMEOUT, async {
        while let Some(message) = messages.recv().await {
            match message {
                ServerMessage::Answer { id: 1, sdp } => return Ok(sdp),
                ServerMessage::Error { message, .. } | ServerMessage::Removed { reason: message } => {
                    return Err(message);
                }
                _ => {}
            }
        }
        Err("the session ended".to_owned())
    })
    .await;
    match answer {
        Ok(Ok(sdp)) => {
            // Nothing reads what the room tells the broadcaster from now on.
            tokio::spawn(async move { while messages.recv().await.is_some() {} });
            Ok((StatusCode::CREATED, Json(IngestAnswer { sdp })))
        }
        failed => {
            let _ = to_worker.send(Command::Leave { participant }).await;
            let why = match failed {
                Ok(Err(why)) => why,
                _ => "the room did not answer in time".to_owned(),
            };
            Err(refused(StatusCode::BAD_REQUEST, "bad_offer", &format!("the offer was refused: {why}")))
        }
    }
}

/// `PUT /v1/rooms/{room}/ingest/{avatar}`: signaling renews a broadcaster's session.
pub(crate) async fn renew(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((room, avatar)): Path<(String, AvatarId)>,
) -> Result<StatusCode, HttpError> {
    let worker = room_worker(&state, &headers, &room)?;
    let (reply, answer) = oneshot::channel();
    let unavailable = || HttpError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "the SFU is shutting down");
    let command = Command::RenewIngest { room, avatar, reply };
    state.shared.workers[worker].send(command).await.map_err(|_| unavailable())?;
    match answer.await.map_err(|_| unavailable())? {
        Some(true) => Ok(StatusCode::NO_CONTENT),
        Some(false) => {
            Err(HttpError::new(StatusCode::CONFLICT, "not_connected", "the broadcaster has not connected (yet)"))
        }
        None => Err(HttpError::new(StatusCode::NOT_FOUND, "no_stream", "no such broadcaster in that room")),
    }
}
