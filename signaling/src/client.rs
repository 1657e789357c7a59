//! A Rust client for the `/v1/ws` protocol, used by the integration tests and the load
//! tool (and by anyone scripting Isoplane).
//!
//! ```no_run
//! # async fn example() -> Result<(), isoplane_signaling::client::ClientError> {
//! use isoplane_signaling::client::{Client, Event};
//! let mut client = Client::join("ws://127.0.0.1:8080/v1/ws", "TOKEN", "demo").await?;
//! client.send_move(1, client.position(), isoplane_world_format::Facing::East, isoplane_signaling::protocol::AvatarState::Walking).await?;
//! while let Ok(event) = client.next_event().await {
//!     if let Event::Presence { entries, .. } = event { println!("{entries:?}"); }
//! }
//! # Ok(()) }
//! ```

use std::time::Duration;

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use isoplane_world_format::Facing;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::protocol::binary::{self, Frame, MoveIntent, Pose, PresenceEntry};
use crate::protocol::{AvatarId, AvatarInfo, AvatarState, ChatScope, ClientMessage, ErrorCode, Point, ServerMessage};

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Something the server sent.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Message(ServerMessage),
    Presence {
        tick: u32,
        entries: Vec<PresenceEntry>,
    },
    /// The server closed the connection (with its close code, if any).
    Closed(Option<u16>),
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("WebSocket: {0}")]
    Socket(#[from] tokio_tungstenite::tungstenite::Error),
    #[error("the server refused the join: {code:?} ({message})")]
    Refused { code: ErrorCode, message: String },
    #[error("the server sent something unexpected: {0}")]
    Unexpected(String),
    #[error("timed out")]
    Timeout,
    #[error("the connection is closed")]
    Closed,
}

/// A joined client.
#[derive(Debug)]
pub struct Client {
    writer: ClientWriter,
    reader: ClientReader,
    avatar: AvatarId,
    you: AvatarInfo,
    /// Everyone else in the zone when the client joined.
    others: Vec<AvatarInfo>,
    resumed: bool,
}

/// The sending half of a client.
#[derive(Debug)]
pub struct ClientWriter {
    sink: SplitSink<Socket, Message>,
}

/// The receiving half of a client.
#[derive(Debug)]
pub struct ClientReader {
    stream: SplitStream<Socket>,
}

impl Client {
    /// Connects and joins `world` with a join token; returns once the server welcomed
    /// the client and sent its snapshot.
    pub async fn join(url: &str, token: &str, world: &str) -> Result<Client, ClientError> {
        Client::join_at(url, token, world, None).await
    }

    /// Like [`Client::join`], at a given spawn point.
    pub async fn join_at(url: &str, token: &str, world: &str, spawn: Option<&str>) -> Result<Client, ClientError> {
        let (socket, _) = tokio_tungstenite::connect_async(url).await?;
        let (sink, stream) = socket.split();
        let (mut writer, mut reader) = (ClientWriter { sink }, ClientReader { stream });
        let join = ClientMessage::Join { token: token.into(), world: world.into(), spawn: spawn.map(Into::into) };
        writer.send(&join).await?;
        let (avatar, resumed) = match reader.next_message().await? {
            ServerMessage::Welcome { avatar, resumed, .. } => (avatar, resumed),
            ServerMessage::Error { code, message } => return Err(ClientError::Refused { code, message }),
            other => return Err(ClientError::Unexpected(format!("{other:?}"))),
        };
        let (you, others) = match reader.next_message().await? {
            ServerMessage::Snapshot { you, avatars, .. } => (you, avatars),
            other => return Err(ClientError::Unexpected(format!("{other:?}"))),
        };
        Ok(Client { writer, reader, avatar, you, others, resumed })
    }

    pub fn avatar(&self) -> AvatarId {
        self.avatar
    }

    pub fn resumed(&self) -> bool {
        self.resumed
    }

    /// Where the server placed this avatar on joining.
    pub fn position(&self) -> Point {
        self.you.position
    }

    /// Everyone else in the zone on joining, as the snapshot gave them.
    pub fn others_on_joining(&self) -> &[AvatarInfo] {
        &self.others
    }

    pub async fn send(&mut self, message: &ClientMessage) -> Result<(), ClientError> {
        self.writer.send(message).await
    }

    pub async fn send_move(
        &mut self,
        seq: u32,
        position: Point,
        facing: Facing,
        state: AvatarState,
    ) -> Result<(), ClientError> {
        self.writer.send_move(seq, position, facing, state).await
    }

    /// Sends a chat message to the zone, the world, or (`to`, a user ID) one user.
    pub async fn send_chat(&mut self, scope: ChatScope, to: Option<&str>, text: &str) -> Result<(), ClientError> {
        self.writer.send_chat(scope, to, text).await
    }

    /// Sends raw bytes or text, for tests of malformed input.
    pub async fn send_raw(&mut self, message: Message) -> Result<(), ClientError> {
        self.writer.sink.send(message).await.map_err(Into::into)
    }

    pub async fn next_event(&mut self) -> Result<Event, ClientError> {
        self.reader.next_event().await
    }

    /// The next event, or `Timeout` after `limit`.
    pub async fn next_event_within(&mut self, limit: Duration) -> Result<Event, ClientError> {
        tokio::time::timeout(limit, self.reader.next_event()).await.map_err(|_| ClientError::Timeout)?
    }

    /// Closes the connection without saying `leave` (as a network drop would).
    pub async fn drop_connection(mut self) {
        let _ = self.writer.sink.close().await;
    }

    pub fn split(self) -> (ClientWriter, ClientReader) {
        (self.writer, self.reader)
    }
}

impl ClientWriter {
    pub async fn send(&mut self, message: &ClientMessage) -> Result<(), ClientError> {
        let text = serde_json::to_string(message).map_err(|e| ClientError::Unexpected(e.to_string()))?;
        self.sink.send(Message::Text(text.into())).await.map_err(Into::into)
    }

    pub async fn send_move(
        &mut self,
        seq: u32,
        position: Point,
        facing: Facing,
        state: AvatarState,
    ) -> Result<(), ClientError> {
        let frame = binary::encode_move_intent(&MoveIntent { seq, position, pose: Pose { facing, state } });
        self.sink.send(Message::Binary(frame.into())).await.map_err(Into::into)
    }

    pub async fn send_chat(&mut self, scope: ChatScope, to: Option<&str>, text: &str) -> Result<(), ClientError> {
        self.send(&ClientMessage::ChatSend { scope, to: to.map(Into::into), text: text.into() }).await
    }

    pub async fn close(&mut self) {
        let _ = self.sink.close().await;
    }
}

impl ClientReader {
    pub async fn next_event(&mut self) -> Result<Event, ClientError> {
        loop {
            let message = match self.stream.next().await {
                Some(message) => message?,
                None => return Ok(Event::Closed(None)),
            };
            return match message {
                Message::Text(text) => serde_json::from_str(&text)
                    .map(Event::Message)
                    .map_err(|e| ClientError::Unexpected(format!("{e}: {text}"))),
                Message::Binary(bytes) => match binary::decode(&bytes) {
                    Ok(Frame::Presence { tick, entries }) => Ok(Event::Presence { tick, entries }),
                    other => Err(ClientError::Unexpected(format!("{other:?}"))),
                },
                Message::Close(frame) => Ok(Event::Closed(frame.map(|f: CloseFrame| f.code.into()))),
                Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => continue,
            };
        }
    }

    /// The next JSON message, skipping presence frames.
    pub async fn next_message(&mut self) -> Result<ServerMessage, ClientError> {
        loop {
            match self.next_event().await? {
                Event::Message(message) => return Ok(message),
                Event::Presence { .. } => continue,
                Event::Closed(_) => return Err(ClientError::Closed),
            }
        }
    }
}
