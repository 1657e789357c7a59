//! JSON control messages of the `/v1/ws` protocol, both directions.
//!
//! Every message is one WebSocket text frame holding one JSON object whose `type` names
//! it. docs/protocol.md documents each with an example; keep the two in step.

use isoplane_world_format::Facing;
use serde::{Deserialize, Serialize};

use super::admin::{AdminCommand, AdminError, AdminReply, ModeratedAction};
use super::errors::ErrorCode;

/// Identifies an avatar within one world for the life of its session (resumes keep it).
/// Small integers keep presence frames compact.
pub type AvatarId = u32;

/// What an avatar is doing, as clients draw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AvatarState {
    Idle,
    Walking,
    Sitting,
}

impl AvatarState {
    pub const ALL: [AvatarState; 3] = [AvatarState::Idle, AvatarState::Walking, AvatarState::Sitting];
}

/// How available someone says they are. Do-not-disturb is more than a label: in open
/// zones the server pairs nobody with them (meeting rooms, private rooms and stages are
/// entered on purpose and are unchanged).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    #[default]
    Available,
    Busy,
    Away,
    DoNotDisturb,
}

/// A position in sub-tile units (256 per tile), as in the world format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Point {
    pub x: i32,
    pub y: i32,
}

/// An avatar as others see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AvatarInfo {
    pub avatar: AvatarId,
    pub user: String,
    pub name: String,
    pub position: Point,
    pub facing: Facing,
    pub state: AvatarState,
    #[serde(default)]
    pub status: Status,
}

/// A zone as clients need to know it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ZoneInfo {
    pub id: String,
    pub name: String,
    /// The ZoneType (`open`, `meeting_room`, `stage`, `silent`, `private`).
    #[serde(rename = "type")]
    pub zone_type: String,
}

/// Messages a client sends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientMessage {
    /// The first message on a connection: who I am and which world I enter.
    Join {
        token: String,
        world: String,
        /// A spawn point of the world; its default one when absent. Ignored when the
        /// user's session is resumed (it keeps its position).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        spawn: Option<String>,
    },
    /// A WebRTC signaling payload for a peer the server paired me with.
    Signal { to: AvatarId, kind: SignalKind, data: serde_json::Value },
    /// Media connectivity as the client sees it.
    MediaReport { ice: IceOutcome },
    /// Leave the world (the server closes the connection after).
    Leave,
    /// A moderation command (admins only); answered by `admin_result` with the same `id`.
    Admin { id: u32, command: AdminCommand },
    /// How available I am; my zone (me included) hears `status_changed`.
    SetStatus { status: Status },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SignalKind {
    Offer,
    Answer,
    Candidate,
    /// The answering side got tracks to send: it asks the initiator for a new offer.
    Renegotiate,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IceOutcome {
    /// Direct connections work.
    Connected,
    /// Direct connections failed: the client needs a relayed path.
    Failed,
}

/// How the media of a zone flows, decided by the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Topology {
    /// No media in this zone.
    None,
    /// Direct peer-to-peer connections.
    P2p,
    /// Peer-to-peer connections relayed through TURN.
    Turn,
    /// Everyone sends to and receives from the SFU.
    Sfu,
}

/// A STUN or TURN server the client may use, in the shape of WebRTC's `RTCIceServer`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IceServer {
    pub urls: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
}

/// One peer to connect to directly (P2P or TURN topologies).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerLink {
    pub avatar: AvatarId,
    /// Exactly one side of a pair makes the offer.
    pub initiator: bool,
    /// Use relay candidates only (`iceTransportPolicy: "relay"`).
    pub relay: bool,
    /// An admin muted this peer's audio: play none of it.
    #[serde(default, skip_serializing_if = "is_false")]
    pub audio_muted: bool,
    /// An admin muted this peer's video: show none of it.
    #[serde(default, skip_serializing_if = "is_false")]
    pub video_muted: bool,
}

fn is_false(value: &bool) -> bool {
    !*value
}

/// Where and how to reach the SFU.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SfuAccess {
    pub url: String,
    pub room: String,
    /// Scoped, short-lived token the SFU verifies.
    pub token: String,
}

/// The media plan for one client, sent whenever it changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MediaPlan {
    pub topology: Topology,
    pub ice_servers: Vec<IceServer>,
    pub peers: Vec<PeerLink>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sfu: Option<SfuAccess>,
    /// Whether this client may send audio and video here (stage listeners may not).
    pub publish: bool,
    /// An admin muted your audio: the SFU and your peers drop it, so do not send it.
    #[serde(default, skip_serializing_if = "is_false")]
    pub audio_muted: bool,
    /// An admin muted your video.
    #[serde(default, skip_serializing_if = "is_false")]
    pub video_muted: bool,
}

/// Messages the server sends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage {
    /// The join worked: this is you. Joining again as the same user within the grace
    /// period after a drop resumes the session (same avatar, position and claims).
    Welcome {
        protocol: u32,
        avatar: AvatarId,
        world: WorldRef,
        /// Whether this is an earlier session taken back.
        resumed: bool,
        /// Whether you are an admin of the workspace (and may send `admin` messages).
        #[serde(default)]
        admin: bool,
    },
    /// An admin promoted or demoted you.
    RoleChanged { admin: bool },
    /// Everyone in your zone, sent on joining and on each zone change.
    Snapshot { zone: ZoneInfo, avatars: Vec<AvatarInfo>, you: AvatarInfo },
    /// Someone entered your zone.
    AvatarEntered { avatar: AvatarInfo },
    /// Someone left your zone (or the world).
    AvatarLeft { avatar: AvatarId },
    /// Someone in your zone (or you) set a status.
    StatusChanged { avatar: AvatarId, status: Status },
    /// Your last move was refused: go back here.
    Correction { seq: u32, position: Point, facing: Facing, state: AvatarState, reason: CorrectionReason },
    /// Your media plan changed.
    Media { plan: MediaPlan },
    /// A signaling payload from a paired peer.
    Signal { from: AvatarId, kind: SignalKind, data: serde_json::Value },
    /// Something you sent was wrong; the connection stays open unless said otherwise.
    Error { code: ErrorCode, message: String },
    /// The server is going away: reconnect (and resume) after the delay.
    Reconnect { after_ms: u32, reason: String },
    /// The answer to your `admin` message with this `id`: `data` when it worked,
    /// `error` when not.
    AdminResult {
        id: u32,
        ok: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<AdminError>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        data: Option<AdminReply>,
    },
    /// An admin's notice to the world (`zone` absent) or to your zone.
    Notice {
        text: String,
        /// The admin's display name.
        by: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        zone: Option<String>,
    },
    /// An admin acted on you.
    Moderated { action: ModeratedAction, by: String, reason: String },
}

/// Which world a client joined, and where to fetch its file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorldRef {
    pub name: String,
    /// Content ID of the world file.
    pub version: String,
    /// URL path of the world file on this server.
    pub url: String,
}

/// Why a move was corrected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CorrectionReason {
    OffGrid,
    TooFast,
    Blocked,
    Wall,
    Cliff,
    /// The zone may only be entered through its door.
    NotThroughEntry,
    /// An exclusive object on the way is held by someone else.
    Occupied,
    /// An object's interaction chain was not followed (e.g. the door was not passed).
    ChainBroken,
    /// The zone is full.
    ZoneFull,
    /// An admin locked the zone.
    ZoneLocked,
    /// An admin put you somewhere else (see the `moderated` message before this).
    Moved,
}
