//! One client's WebSocket: the join handshake, then a reader (this task) and a writer
//! (its own task), each ending the other when it ends.
//!
//! The reader enforces the protocol's limits (frame size, message rate), decodes frames
//! and forwards them to the world task; a malformed message gets an error and changes
//! nothing. The writer drains the connection's bounded queue to the socket. On server
//! shutdown the client is told to reconnect.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use tokio::sync::{mpsc, oneshot};

use super::AppState;
use super::cluster::Route;
use super::limits::{CHAT_BURST, CHAT_PER_SECOND, NoticeThrottle, RateLimit, Slot};
use super::moderation::Actor;
use super::proxy;
use super::world_task::{Kill, Outbound, WorldCommand, unix_ms, unix_now};
use crate::auth::{JoinClaims, TokenError};
use crate::engine::{ConnId, JoinUser};
use crate::protocol::binary::{self, Frame};
use crate::protocol::{AdminAnswer, AdminCommand, ClientMessage, ErrorCode, ServerMessage, parse_client_message};

/// WebSocket close codes: 1000 normal, 1008 policy violation, 1009 too big, 1011
/// server error, 1012 service restart.
fn close_code(code: ErrorCode) -> u16 {
    match code {
        ErrorCode::FrameTooLarge => 1009,
        ErrorCode::Internal => 1011,
        ErrorCode::ShuttingDown => 1012,
        ErrorCode::Replaced => 1000,
        _ => 1008,
    }
}

fn error_message(code: ErrorCode) -> String {
    let message = ServerMessage::Error { code, message: code.text().to_owned() };
    serde_json::to_string(&message).unwrap_or_default()
}

type Sink = SplitSink<WebSocket, Message>;
type Stream = SplitStream<WebSocket>;

/// Sends an error and closes, best effort: the client may already be gone.
async fn refuse(sink: &mut Sink, code: ErrorCode) {
    let _ = sink.send(Message::Text(error_message(code).into())).await;
    let close = CloseFrame { code: close_code(code), reason: Utf8Bytes::from(format!("{code:?}")) };
    let _ = sink.send(Message::Close(Some(close))).await;
}

/// What a successful join leaves behind.
struct Joined {
    world: mpsc::Sender<WorldCommand>,
    outbound: mpsc::Receiver<Outbound>,
    /// The same queue, for answers to admin commands.
    replies: mpsc::Sender<Outbound>,
    actor: Actor,
    kill: Kill,
    _user_slot: Slot<String>,
}

/// Where a connection came from: a client, or another node forwarding one.
#[derive(Debug, Clone, Copy)]
pub struct Origin {
    pub ip: IpAddr,
    pub forwarded: bool,
}

/// What a `join` leads to.
enum Admission {
    Joined(Joined),
    /// Another node serves the world: forward the client there with its `join`.
    Elsewhere {
        url: String,
        join: String,
    },
}

pub async fn run(socket: WebSocket, state: Arc<AppState>, ip_slot: Slot<IpAddr>, origin: Origin) {
    let conn: ConnId = state.next_conn.fetch_add(1, Ordering::Relaxed);
    let (mut sink, mut stream) = socket.split();
    state.metrics.connections_open.inc();
    state.metrics.connections_total.inc();
    match join(&state, conn, &mut stream, origin).await {
        Ok(Admission::Joined(joined)) => serve(state.clone(), conn, sink, stream, joined).await,
        Ok(Admission::Elsewhere { url, join }) => {
            match proxy::connect(&url, join, origin.ip, &state.token_key, unix_now()).await {
                Ok(upstream) => {
                    state.metrics.forwarded_connections.inc();
                    proxy::pipe(sink, stream, upstream).await;
                }
                Err(error) => {
                    // The owner is gone or going: its lease will free the world shortly.
                    tracing::warn!(%error, "cannot forward a client to the node serving its world");
                    refuse(&mut sink, ErrorCode::TryAgain).await;
                }
            }
        }
        Err(code) => {
            refuse(&mut sink, code).await;
            finish_closing(&mut stream).await;
        }
    }
    state.metrics.connections_open.dec();
    drop(ip_slot);
}

/// Waits for `join`, checks its token and world, and enters the world (or says which
/// node serves it).
async fn join(state: &AppState, conn: ConnId, stream: &mut Stream, origin: Origin) -> Result<Admission, ErrorCode> {
    let timeout = Duration::from_secs(state.config.limits.join_timeout_seconds);
    let first = tokio::select! {
        () = state.shutdown.cancelled() => return Err(ErrorCode::ShuttingDown),
        first = tokio::time::timeout(timeout, stream.next()) => first.map_err(|_| ErrorCode::JoinTimeout)?,
    };
    let text = match first {
        Some(Ok(Message::Text(text))) => text,
        Some(Err(_)) => return Err(ErrorCode::FrameTooLarge),
        _ => return Err(ErrorCode::JoinFirst),
    };
    state.metrics.messages_in.inc();
    let Ok(ClientMessage::Join { token, world, spawn }) = parse_client_message(&text) else {
        return Err(ErrorCode::JoinFirst);
    };
    let claims: JoinClaims = state.token_key.verify(&token, unix_now()).map_err(|error| {
        state.metrics.auth_failures.inc();
        match error {
            TokenError::Expired => ErrorCode::ExpiredToken,
            _ => ErrorCode::InvalidToken,
        }
    })?;
    if claims.workspace != state.config.workspace {
        state.metrics.auth_failures.inc();
        return Err(ErrorCode::Forbidden);
    }
    let entry = state.worlds.get(&world).ok_or(ErrorCode::UnknownWorld)?;
    if let Some(cluster) = &state.cluster {
        match cluster.route(&world).await {
            Ok(Route::Local { acquired }) => {
                if acquired {
                    state.metrics.worlds_taken_over.inc();
                    state.moderator.refresh_zones(&world).await;
                    super::chat::refresh(&state.metadata, &state.config.workspace, &world, &entry.commands).await;
                }
            }
            // A forwarded client goes no further: the world moved meanwhile.
            Ok(Route::Remote { url, .. }) if !origin.forwarded => {
                return Ok(Admission::Elsewhere { url, join: text.to_string() });
            }
            Ok(Route::Remote { .. } | Route::Unavailable) => return Err(ErrorCode::TryAgain),
            Err(error) => {
                tracing::error!(%error, "cannot reach the cluster to route a join");
                return Err(ErrorCode::TryAgain);
            }
        }
    }
    let user_slot = state.limits.per_user.acquire(claims.sub.clone()).ok_or(ErrorCode::TooManyConnections)?;
    let standing = state.moderator.standing(&claims).await?;
    let (outbound_tx, outbound) = mpsc::channel(state.config.limits.outbound_queue);
    let kill = Kill::default();
    let (reply, answer) = oneshot::channel();
    let actor = Actor::from_claims(&claims);
    let user = JoinUser {
        id: claims.sub.clone(),
        name: claims.name.clone(),
        role: standing.role,
        mute: standing.mute,
        chat_muted: standing.chat_muted,
        joined_at: unix_ms(),
    };
    let command = WorldCommand::Join { conn, user, spawn, outbound: outbound_tx.clone(), kill: kill.clone(), reply };
    entry.commands.send(command).await.map_err(|_| ErrorCode::ShuttingDown)?;
    answer.await.map_err(|_| ErrorCode::ShuttingDown)??;
    // A ban, mute or role change recorded while this join was on its way must hold: read
    // the records again now that the avatar is in the world, and correct it there.
    state.moderator.recheck(&claims, standing, &world).await?;
    let joined =
        Joined { world: entry.commands.clone(), outbound, replies: outbound_tx, actor, kill, _user_slot: user_slot };
    Ok(Admission::Joined(joined))
}

/// How long a connection the server closes waits for the client's close frame.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// The end of the closing handshake: reads (and drops) what the client still sends until
/// its close frame, its end, or `CLOSE_GRACE`. A socket closed with unread data in it
/// answers with a reset, and a reset can discard our last messages (the error saying why)
/// before the client has read them.
async fn finish_closing(stream: &mut Stream) {
    let drained = async {
        while let Some(Ok(message)) = stream.next().await {
            if matches!(message, Message::Close(_)) {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(CLOSE_GRACE, drained).await;
}

/// Runs a joined connection until either side ends it.
async fn serve(state: Arc<AppState>, conn: ConnId, sink: Sink, mut stream: Stream, joined: Joined) {
    let Joined { world, outbound, replies, actor, kill, _user_slot } = joined;
    let writer = tokio::spawn(write(state.clone(), sink, outbound, kill.clone()));
    let left = read(&state, conn, &mut stream, &world, &kill, &Admin { actor, replies }).await;
    // Whatever ended the reader, the writer stops and closes.
    if state.shutdown.is_cancelled() {
        kill.kill(ErrorCode::ShuttingDown);
    } else {
        kill.stop();
    }
    let _ = writer.await;
    let command = if left { WorldCommand::Leave { conn } } else { WorldCommand::Disconnect { conn } };
    let _ = world.send(command).await;
    finish_closing(&mut stream).await;
}

/// Reads client messages until the socket closes; returns whether the client left.
async fn read(
    state: &Arc<AppState>,
    conn: ConnId,
    stream: &mut Stream,
    world: &mpsc::Sender<WorldCommand>,
    kill: &Kill,
    admin: &Admin,
) -> bool {
    let limits = &state.config.limits;
    let mut rate = RateLimit::new(limits.messages_per_second, limits.message_burst, Instant::now());
    let mut chat_rate = RateLimit::new(CHAT_PER_SECOND, CHAT_BURST, Instant::now());
    // Malformed input and the rate limit are answered once a second per error code: the
    // answers go through the world (in order with its replies), which must not spend its
    // time telling a flooding client the same thing.
    let mut notices = NoticeThrottle::new(Duration::from_secs(1));
    loop {
        let message = tokio::select! {
            () = kill.killed() => return false,
            () = state.shutdown.cancelled() => return false,
            message = stream.next() => message,
        };
        // One message a turn: a client that floods (its frames already buffered) must not
        // keep a runtime thread from the world tasks and the other connections.
        tokio::task::yield_now().await;
        let message = match message {
            Some(Ok(message)) => message,
            Some(Err(_)) => {
                // Oversized frames and broken framing end the connection.
                kill.kill(ErrorCode::FrameTooLarge);
                return false;
            }
            None => return false,
        };
        let bytes = match &message {
            Message::Text(text) => text.len(),
            Message::Binary(data) => data.len(),
            Message::Close(_) => return false,
            Message::Ping(_) | Message::Pong(_) => continue,
        };
        state.metrics.messages_in.inc();
        state.metrics.bytes_in.inc_by(bytes as u64);
        if bytes > limits.max_frame_bytes {
            kill.kill(ErrorCode::FrameTooLarge);
            return false;
        }
        let now = Instant::now();
        if !rate.allow(now) {
            state.metrics.rate_limited.inc();
            if notices.allow(ErrorCode::RateLimited, now) {
                let _ = world.send(WorldCommand::Notify { conn, code: ErrorCode::RateLimited }).await;
            }
            continue;
        }
        let command = match decode(conn, message) {
            // Chat and pages opened for a zone reach many people, and an SFU probe another
            // server: they have a rate of their own, and a message over it is dropped, like
            // any over the rate.
            Ok(Incoming::World(
                WorldCommand::ChatSend { .. }
                | WorldCommand::SharePage { .. }
                | WorldCommand::ProbeSfu { .. }
                | WorldCommand::SetRecording { .. },
            )) if !chat_rate.allow(now) => {
                state.metrics.rate_limited.inc();
                if notices.allow(ErrorCode::RateLimited, now) {
                    let _ = world.send(WorldCommand::Notify { conn, code: ErrorCode::RateLimited }).await;
                }
                continue;
            }
            Ok(Incoming::World(command)) => command,
            Ok(Incoming::Admin { id, command }) => {
                // In a task of its own: moves keep flowing while it waits on the database or
                // other nodes, and it finishes even if the connection ends.
                state.tasks.spawn(admin.clone().answer(state.clone(), id, command));
                continue;
            }
            Ok(Incoming::Leave) => return true,
            Err(code) => {
                state.metrics.malformed.inc();
                if !notices.allow(code, now) {
                    continue;
                }
                WorldCommand::Notify { conn, code }
            }
        };
        if world.send(command).await.is_err() {
            return false;
        }
    }
}

/// A decoded client message, by where it goes.
enum Incoming {
    World(WorldCommand),
    Admin { id: u32, command: AdminCommand },
    Leave,
}

/// Admin commands from this connection: who sends them, and where answers go (the
/// connection's own queue; answers are matched to commands by `id`).
#[derive(Clone)]
struct Admin {
    actor: Actor,
    replies: mpsc::Sender<Outbound>,
}

impl Admin {
    async fn answer(self, state: Arc<AppState>, id: u32, command: AdminCommand) {
        let AdminAnswer { ok, data, error } = AdminAnswer::of(state.moderator.execute(&self.actor, command).await);
        let message = ServerMessage::AdminResult { id, ok, error, data };
        let text = serde_json::to_string(&message).unwrap_or_default();
        // A closed queue means the connection is ending.
        let _ = self.replies.send(Outbound::Text(text.into())).await;
    }
}

/// Turns one client message into where it goes.
fn decode(conn: ConnId, message: Message) -> Result<Incoming, ErrorCode> {
    match message {
        Message::Binary(data) => match binary::decode(&data) {
            Ok(Frame::MoveIntent(intent)) => {
                Ok(Incoming::World(WorldCommand::Move { conn, intent, received: Instant::now() }))
            }
            Ok(Frame::Presence { .. }) | Err(_) => Err(ErrorCode::MalformedFrame),
        },
        Message::Text(text) => match parse_client_message(&text) {
            Ok(ClientMessage::Signal { to, kind, data }) => {
                Ok(Incoming::World(WorldCommand::Signal { conn, to, kind, data }))
            }
            Ok(ClientMessage::MediaReport { ice }) => Ok(Incoming::World(WorldCommand::MediaReport { conn, ice })),
            Ok(ClientMessage::SetStatus { status }) => Ok(Incoming::World(WorldCommand::SetStatus { conn, status })),
            Ok(ClientMessage::ListPeople { id }) => Ok(Incoming::World(WorldCommand::ListPeople { conn, id })),
            Ok(ClientMessage::SharePage { url }) => Ok(Incoming::World(WorldCommand::SharePage { conn, url })),
            Ok(ClientMessage::ProbeSfu) => Ok(Incoming::World(WorldCommand::ProbeSfu { conn })),
            Ok(ClientMessage::SetRecording { on }) => Ok(Incoming::World(WorldCommand::SetRecording { conn, on })),
            Ok(ClientMessage::Follow { avatar }) => Ok(Incoming::World(WorldCommand::Follow { conn, avatar })),
            Ok(ClientMessage::Unfollow) => Ok(Incoming::World(WorldCommand::Unfollow { conn })),
            Ok(ClientMessage::Knock { zone }) => Ok(Incoming::World(WorldCommand::Knock { conn, zone })),
            Ok(ClientMessage::AnswerKnock { knock, admit }) => {
                Ok(Incoming::World(WorldCommand::AnswerKnock { conn, knock, admit }))
            }
            Ok(ClientMessage::ChatSend { scope, to, text }) => {
                Ok(Incoming::World(WorldCommand::ChatSend { conn, at: unix_ms(), scope, to, text }))
            }
            Ok(ClientMessage::Admin { id, command }) => Ok(Incoming::Admin { id, command }),
            Ok(ClientMessage::Leave) => Ok(Incoming::Leave),
            Ok(ClientMessage::Join { .. }) => Err(ErrorCode::JoinFirst),
            Err(_) => Err(ErrorCode::MalformedMessage),
        },
        Message::Ping(_) | Message::Pong(_) | Message::Close(_) => Err(ErrorCode::MalformedMessage),
    }
}

/// How long one write may take before the client counts as stuck.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// The most queued messages written with one flush.
const WRITE_BATCH: usize = 64;

/// Drains the connection's queue to the socket; on kill or shutdown, says why and closes.
async fn write(state: Arc<AppState>, mut sink: Sink, mut outbound: mpsc::Receiver<Outbound>, kill: Kill) {
    let mut batch = Vec::with_capacity(WRITE_BATCH);
    loop {
        let next = tokio::select! {
            biased;
            () = kill.killed() => break,
            () = state.shutdown.cancelled() => break,
            next = outbound.recv() => next,
        };
        let Some(first) = next else { break };
        // Whatever else is queued by now goes out with it in one flush: a zone's burst of
        // presence and control messages costs one write to the socket, not one each.
        batch.push(first);
        while batch.len() < WRITE_BATCH && !matches!(batch.last(), Some(Outbound::Close(_))) {
            let Ok(more) = outbound.try_recv() else { break };
            batch.push(more);
        }
        let (mut messages, mut bytes, mut close) = (0, 0, None);
        let written = async {
            for item in batch.drain(..) {
                let message = match item {
                    Outbound::Text(text) => Message::Text(text),
                    Outbound::Binary(frame) => Message::Binary(frame),
                    Outbound::Close(code) => {
                        close = Some(code);
                        Message::Text(error_message(code).into())
                    }
                };
                bytes += match &message {
                    Message::Text(text) => text.len(),
                    Message::Binary(data) => data.len(),
                    _ => 0,
                };
                messages += 1;
                sink.feed(message).await?;
            }
            sink.flush().await
        };
        match tokio::time::timeout(WRITE_TIMEOUT, written).await {
            Ok(Ok(())) => {
                state.metrics.messages_out.inc_by(messages);
                state.metrics.bytes_out.inc_by(bytes as u64);
            }
            _ => {
                kill.kill(ErrorCode::TooSlow);
                return;
            }
        }
        if let Some(code) = close {
            kill.kill(code);
            let frame = CloseFrame { code: close_code(code), reason: Utf8Bytes::from(format!("{code:?}")) };
            let _ = tokio::time::timeout(WRITE_TIMEOUT, sink.send(Message::Close(Some(frame)))).await;
            return;
        }
    }
    let code = if state.shutdown.is_cancelled() { Some(ErrorCode::ShuttingDown) } else { kill.reason() };
    let goodbye = async {
        if code == Some(ErrorCode::ShuttingDown) {
            let reconnect = ServerMessage::Reconnect { after_ms: 1000, reason: "the server is restarting".into() };
            let _ = sink.send(Message::Text(serde_json::to_string(&reconnect).unwrap_or_default().into())).await;
        } else if let Some(code) = code {
            let _ = sink.send(Message::Text(error_message(code).into())).await;
        }
        let frame =
            code.map(|code| CloseFrame { code: close_code(code), reason: Utf8Bytes::from(format!("{code:?}")) });
        let _ = sink.send(Message::Close(frame)).await;
    };
    let _ = tokio::time::timeout(Duration::from_secs(2), goodbye).await;
}
