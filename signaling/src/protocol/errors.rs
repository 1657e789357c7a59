//! Every error the server can send: a stable code for programs, a text for people.

use serde::{Deserialize, Serialize};

/// Error codes of the `/v1/ws` protocol. Codes are stable; texts may improve.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// A frame was not valid JSON or not a known message. The connection stays open.
    MalformedMessage,
    /// A binary frame could not be decoded. The connection stays open.
    MalformedFrame,
    /// A frame was larger than the limit. The connection is closed.
    FrameTooLarge,
    /// The first message was not `join`, or `join` came twice.
    JoinFirst,
    /// The join token is missing, malformed, forged or of the wrong algorithm.
    InvalidToken,
    /// The join token has expired.
    ExpiredToken,
    /// The token is for another workspace, or the user may not enter this world.
    Forbidden,
    /// No such world.
    UnknownWorld,
    /// No such spawn point in this world.
    UnknownSpawn,
    /// The client sends faster than allowed; excess messages are dropped.
    RateLimited,
    /// Too many connections for this user or address.
    TooManyConnections,
    /// A signaling message for someone you are not paired with.
    NotPaired,
    /// `follow` named an avatar that is not in the world, or yourself. The connection
    /// stays open.
    UnknownAvatar,
    /// `knock` named a zone this world does not have. The connection stays open.
    UnknownZone,
    /// A `chat_send` was empty, too long or badly addressed; nothing was sent. The
    /// connection stays open.
    ChatInvalid,
    /// An admin muted your chat: nothing you write is sent. The connection stays open.
    ChatMuted,
    /// A direct message named a user who is not in this world. The connection stays open.
    UnknownUser,
    /// `share_page` named a URL whose origin is not on the workspace's `embed_origins`
    /// list, or no http(s) URL at all. The connection stays open.
    PageRefused,
    /// `share_page` where pages are not opened for everyone: in open space, or from a
    /// stage's audience. The connection stays open.
    PageNotHere,
    /// `set_recording` was refused: the zone does not allow recording, is end-to-end
    /// encrypted, has no SFU to record on, or the sender may not start it there. The
    /// connection stays open.
    RecordingRefused,
    /// The client did not read its messages for too long.
    TooSlow,
    /// The join did not arrive in time.
    JoinTimeout,
    /// The same user joined from another connection, which took over this session.
    Replaced,
    /// The server is shutting down.
    ShuttingDown,
    /// An admin removed you from the world (a `moderated` message says why).
    Kicked,
    /// You are banned from this workspace.
    Banned,
    /// The world is moving to another server: reconnect in a moment.
    TryAgain,
    /// Something failed inside the server; nothing the client sent is at fault.
    Internal,
}

impl ErrorCode {
    /// The human-readable text sent with the code.
    pub fn text(self) -> &'static str {
        match self {
            ErrorCode::MalformedMessage => "the message is not valid JSON or not a known message type",
            ErrorCode::MalformedFrame => "the binary frame could not be decoded",
            ErrorCode::FrameTooLarge => "the frame is larger than the server accepts",
            ErrorCode::JoinFirst => "send `join` first, and only once",
            ErrorCode::InvalidToken => "the join token is not valid",
            ErrorCode::ExpiredToken => "the join token has expired: get a new one",
            ErrorCode::Forbidden => "this token does not allow entering this world",
            ErrorCode::UnknownWorld => "there is no world with this name",
            ErrorCode::UnknownSpawn => "this world has no spawn point with this ID",
            ErrorCode::RateLimited => "too many messages: some were dropped",
            ErrorCode::TooManyConnections => "too many connections from this user or address",
            ErrorCode::NotPaired => "you are not connected to this avatar",
            ErrorCode::UnknownAvatar => "no one else in this world has this avatar number",
            ErrorCode::UnknownZone => "this world has no zone with this ID",
            ErrorCode::ChatInvalid => {
                "a chat message is 1 to 2000 characters of text, and `to` is for direct messages only"
            }
            ErrorCode::ChatMuted => "an admin muted your chat: your message was not sent",
            ErrorCode::UnknownUser => "no user with this ID is in this world",
            ErrorCode::PageRefused => "this page's origin is not on the workspace's list of pages that may be embedded",
            ErrorCode::RecordingRefused => "recording cannot be started or stopped here",
            ErrorCode::PageNotHere => {
                "pages are opened for everyone in meeting, private and silent rooms, and on a stage from its podium"
            }
            ErrorCode::TooSlow => "the connection did not keep up with its messages",
            ErrorCode::JoinTimeout => "no join arrived in time",
            ErrorCode::Replaced => "this session was taken over by a newer connection",
            ErrorCode::ShuttingDown => "the server is shutting down",
            ErrorCode::Kicked => "an admin removed you from the world",
            ErrorCode::Banned => "you are banned from this workspace",
            ErrorCode::TryAgain => "this world is moving to another server: reconnect in a moment",
            ErrorCode::Internal => "the server failed to handle this; try again",
        }
    }

    /// Whether the server closes the connection after sending this error.
    pub fn closes_connection(self) -> bool {
        !matches!(
            self,
            ErrorCode::MalformedMessage
                | ErrorCode::MalformedFrame
                | ErrorCode::RateLimited
                | ErrorCode::NotPaired
                | ErrorCode::UnknownAvatar
                | ErrorCode::UnknownZone
                | ErrorCode::ChatInvalid
                | ErrorCode::ChatMuted
                | ErrorCode::UnknownUser
                | ErrorCode::PageRefused
                | ErrorCode::PageNotHere
                | ErrorCode::RecordingRefused
        )
    }
}
