//! JSON control messages of the `/v1/ws` protocol, both directions.
//!
//! Every message is one WebSocket text frame holding one JSON object whose `type` names
//! it. docs/protocol.md documents each with an example; keep the two in step.

use isoplane_world_format::Facing;
use serde::{Deserialize, Serialize};

use super::admin::{AdminCommand, AdminError, AdminReply, ModeratedAction};
use super::chat::{ChatMessage, ChatScope};
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

/// Identifies a knock on a zone within one world.
pub type KnockId = u32;

/// Someone in the world, wherever they are, as `people` lists them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Person {
    pub avatar: AvatarId,
    pub user: String,
    pub name: String,
    /// The ID of the zone they are in.
    pub zone: String,
    pub status: Status,
    pub position: Point,
    /// False while the session waits for its client to come back.
    pub connected: bool,
}

/// Someone following you.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Follower {
    pub avatar: AvatarId,
    pub name: String,
}

/// Why a follow ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FollowEndReason {
    /// You sent `unfollow`.
    Cancelled,
    /// The person you followed left the world.
    Left,
}

/// Where a knock of yours stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KnockState {
    /// The people inside were asked (`knock` says which knock).
    Waiting,
    /// You may walk in as it is (or you are inside already).
    NotNeeded,
    /// Nobody connected is inside to answer.
    NobodyInside,
    /// Too many knocks: try again after `retry_after_ms`.
    TooSoon,
    /// Someone inside let you in: walk in within a minute.
    Admitted,
    /// Someone inside said no.
    Declined,
    /// Nobody answered in time.
    Expired,
}

/// How a knock ended, as those inside hear it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KnockOutcome {
    Admitted,
    Declined,
    /// Nobody answered in time.
    Expired,
    /// The knocker left the world.
    Withdrawn,
}

/// A zone as clients need to know it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ZoneInfo {
    pub id: String,
    pub name: String,
    /// The ZoneType (`open`, `meeting_room`, `stage`, `silent`, `private`).
    #[serde(rename = "type")]
    pub zone_type: String,
    /// The page someone opened for everyone in the zone, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page: Option<SharedPage>,
    /// Media here is encrypted end to end: the key comes in `e2ee_key`.
    #[serde(default, skip_serializing_if = "is_false")]
    pub e2ee: bool,
    /// Recording may be started here (by the world file, or an admin).
    #[serde(default, skip_serializing_if = "is_false")]
    pub recording_allowed: bool,
    /// The zone is being recorded: told on entering, before any media plan for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recording: Option<RecordingInfo>,
    /// A broadcaster's stream live on this stage (WHIP ingest): its tracks come from the
    /// SFU under this avatar ID, which no one in the world has.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingest: Option<IngestInfo>,
}

/// A broadcaster's stream on a stage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IngestInfo {
    pub avatar: AvatarId,
    pub name: String,
}

/// A recording in progress: who started it and when (Unix milliseconds).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordingInfo {
    pub by: String,
    pub since: i64,
}

/// A web page someone opened for everyone in their zone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SharedPage {
    pub url: String,
    /// Who opened it, and their display name.
    pub by: AvatarId,
    pub name: String,
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
    /// Who is in the world, in every zone; answered by `people` with the same `id`.
    ListPeople { id: u32 },
    /// Open a page for everyone in your zone (replacing the one open), or close it (`url`
    /// null). Only in zones that are not open space (on a stage, from the podium), and
    /// only pages of the workspace's `embed_origins`.
    SharePage { url: Option<String> },
    /// The connection test asks for an SFU to try: answered by `sfu_probe`.
    ProbeSfu,
    /// Follow this avatar wherever it goes (instead of whoever I followed before).
    Follow { avatar: AvatarId },
    /// Stop following.
    Unfollow,
    /// Ask the people inside a locked or full zone to let me in.
    Knock { zone: String },
    /// Let a knocker in, or not (only from inside the zone knocked on).
    AnswerKnock { knock: KnockId, admit: bool },
    /// A chat message to my zone, the world, or one user (`to`, a user ID, for `direct`
    /// only). Everyone it reaches, me included, gets it as `chat`.
    ChatSend {
        scope: ChatScope,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        to: Option<String>,
        text: String,
    },
    /// Start (`on`) or stop recording my zone: admins, a stage's speakers, the members of
    /// any other zone that allows recording.
    SetRecording { on: bool },
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
    /// This peer may not publish here (a stage's audience): play and show nothing it
    /// sends, camera or screen.
    #[serde(default, skip_serializing_if = "is_false")]
    pub listen_only: bool,
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
    /// The zone is end-to-end encrypted: frames on the SFU are encrypted with its key.
    #[serde(default, skip_serializing_if = "is_false")]
    pub e2ee: bool,
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
        /// Whether you may change the workspace's worlds (an admin or a builder): build
        /// mode publishes through the asset server, which checks the same token.
        #[serde(default)]
        builder: bool,
        /// The origins whose pages the client may embed beside the map (the workspace's
        /// allow-list): a world's websites and shared pages of other origins are refused.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        embed_origins: Vec<String>,
    },
    /// An admin promoted or demoted you.
    RoleChanged { admin: bool },
    /// Everyone in your zone, sent on joining and on each zone change.
    Snapshot { zone: Box<ZoneInfo>, avatars: Vec<AvatarInfo>, you: AvatarInfo },
    /// Someone entered your zone.
    AvatarEntered { avatar: AvatarInfo },
    /// Someone left your zone (or the world).
    AvatarLeft { avatar: AvatarId },
    /// Someone in your zone (or you) set a status.
    StatusChanged { avatar: AvatarId, status: Status },
    /// The answer to `probe_sfu`: a token for a room of your own on the SFU node of your
    /// zone, for the connection test; absent when there is no SFU to test.
    SfuProbe { sfu: Option<SfuAccess> },
    /// The page open for everyone in your zone changed: someone opened one (`page`), or
    /// it was closed (`page` null: someone closed it, or its opener left the zone).
    PageShared { page: Option<SharedPage> },
    /// The world file changed (a new version was published, or an older one restored):
    /// load `world.url` and draw it. A `correction` (reason `world_changed`) follows if
    /// you had to be moved, then a snapshot of your zone as it is now.
    WorldChanged { world: WorldRef },
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
    /// The answer to your `list_people` with this `id`: everyone in the world, sorted by
    /// name, then user.
    People { id: u32, people: Vec<Person> },
    /// You follow this avatar now; it is here.
    Following { avatar: AvatarId, name: String, zone: String, position: Point },
    /// The avatar you follow moved (at most four times a second; the last place always
    /// arrives).
    FolloweeMoved { avatar: AvatarId, zone: String, position: Point },
    /// Everyone following you, sorted by name, whenever that changes (empty when the last
    /// one stops).
    Followers { followers: Vec<Follower> },
    /// You no longer follow this avatar.
    FollowEnded { avatar: AvatarId, reason: FollowEndReason },
    /// Where your knock on `zone` stands.
    KnockStatus {
        zone: String,
        state: KnockState,
        /// The knock's ID, while `waiting`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        knock: Option<KnockId>,
        /// With `too_soon`: when a knock may be accepted again.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        retry_after_ms: Option<u32>,
        /// With `admitted` and `declined`: who answered (their display name).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        by: Option<String>,
    },
    /// Someone knocks on your zone: answer with `answer_knock`.
    Knock { knock: KnockId, avatar: AvatarId, name: String, zone: String },
    /// A knock on your zone is settled: close its prompt.
    KnockClosed {
        knock: KnockId,
        outcome: KnockOutcome,
        /// With `admitted` and `declined`: who answered.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        by: Option<String>,
    },
    /// A chat message for you (yours included: it carries the server's ID and time).
    Chat { message: ChatMessage },
    /// Recent messages of one history, oldest first: your zone's after every `snapshot`;
    /// the world's and your direct messages once after joining (and resuming).
    ChatHistory {
        scope: ChatScope,
        /// The zone's ID, for the `zone` history.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        zone: Option<String>,
        messages: Vec<ChatMessage>,
    },
    /// An admin deleted this message: stop showing it.
    ChatDeleted { id: String },
    /// A broadcaster's stream started or ended on your stage.
    IngestChanged { ingest: Option<IngestInfo> },
    /// Your zone's recording started or stopped, or an admin allowed or forbade it.
    RecordingChanged { allowed: bool, recording: Option<RecordingInfo> },
    /// The media key of your end-to-end encrypted zone (32 bytes, standard base64): on
    /// entering, and a new one (the next `key_id`, wrapping at 256) whenever someone
    /// leaves. Encrypt with the newest; decrypt with any recent one.
    E2eeKey { zone: String, key_id: u8, key: String },
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
    /// The world changed under you (see `world_changed`): where you stood is not a
    /// place to stand any more.
    WorldChanged,
}

#[cfg(test)]
mod tests {
    //! The people messages exactly as docs/protocol.md shows them: clients are written
    //! against these field names.
    #![allow(clippy::unwrap_used)]

    use serde_json::json;

    use super::*;
    use crate::protocol::ChatParty;

    fn server(message: &ServerMessage) -> serde_json::Value {
        serde_json::to_value(message).unwrap()
    }

    #[test]
    fn people_requests_parse_as_documented_and_unknown_fields_are_refused() {
        let parse = |value: serde_json::Value| serde_json::from_value::<ClientMessage>(value);
        assert_eq!(parse(json!({"type": "list_people", "id": 7})).unwrap(), ClientMessage::ListPeople { id: 7 });
        assert_eq!(parse(json!({"type": "follow", "avatar": 3})).unwrap(), ClientMessage::Follow { avatar: 3 });
        assert_eq!(parse(json!({"type": "unfollow"})).unwrap(), ClientMessage::Unfollow);
        assert_eq!(
            parse(json!({"type": "knock", "zone": "meeting-1"})).unwrap(),
            ClientMessage::Knock { zone: "meeting-1".into() }
        );
        assert_eq!(
            parse(json!({"type": "answer_knock", "knock": 12, "admit": true})).unwrap(),
            ClientMessage::AnswerKnock { knock: 12, admit: true }
        );
        assert!(parse(json!({"type": "follow", "avatar": 3, "quietly": true})).is_err());
    }

    #[test]
    fn people_answers_serialize_as_documented() {
        let people = ServerMessage::People {
            id: 7,
            people: vec![Person {
                avatar: 3,
                user: "u-bob".into(),
                name: "Bob".into(),
                zone: "lobby".into(),
                status: Status::Busy,
                position: Point { x: 896, y: 640 },
                connected: true,
            }],
        };
        assert_eq!(
            server(&people),
            json!({"type": "people", "id": 7, "people": [{"avatar": 3, "user": "u-bob", "name": "Bob",
                "zone": "lobby", "status": "busy", "position": {"x": 896, "y": 640}, "connected": true}]})
        );
        let waiting = ServerMessage::KnockStatus {
            zone: "meeting-1".into(),
            state: KnockState::Waiting,
            knock: Some(12),
            retry_after_ms: None,
            by: None,
        };
        assert_eq!(
            server(&waiting),
            json!({"type": "knock_status", "zone": "meeting-1", "state": "waiting", "knock": 12})
        );
        let too_soon = ServerMessage::KnockStatus {
            zone: "meeting-1".into(),
            state: KnockState::TooSoon,
            knock: None,
            retry_after_ms: Some(9500),
            by: None,
        };
        assert_eq!(
            server(&too_soon),
            json!({"type": "knock_status", "zone": "meeting-1", "state": "too_soon", "retry_after_ms": 9500})
        );
        let closed = ServerMessage::KnockClosed { knock: 12, outcome: KnockOutcome::Admitted, by: Some("Bob".into()) };
        assert_eq!(server(&closed), json!({"type": "knock_closed", "knock": 12, "outcome": "admitted", "by": "Bob"}));
        let ended = ServerMessage::FollowEnded { avatar: 3, reason: FollowEndReason::Left };
        assert_eq!(server(&ended), json!({"type": "follow_ended", "avatar": 3, "reason": "left"}));
        let moved = ServerMessage::FolloweeMoved { avatar: 3, zone: "lobby".into(), position: Point { x: 1, y: 2 } };
        assert_eq!(
            server(&moved),
            json!({"type": "followee_moved", "avatar": 3, "zone": "lobby", "position": {"x": 1, "y": 2}})
        );
        let followers = ServerMessage::Followers { followers: vec![Follower { avatar: 5, name: "Ada".into() }] };
        assert_eq!(server(&followers), json!({"type": "followers", "followers": [{"avatar": 5, "name": "Ada"}]}));
        let knock = ServerMessage::Knock { knock: 12, avatar: 7, name: "Ada".into(), zone: "meeting-1".into() };
        assert_eq!(
            server(&knock),
            json!({"type": "knock", "knock": 12, "avatar": 7, "name": "Ada", "zone": "meeting-1"})
        );
    }

    #[test]
    fn chat_messages_parse_and_serialize_as_documented() {
        let parse = |value: serde_json::Value| serde_json::from_value::<ClientMessage>(value);
        assert_eq!(
            parse(json!({"type": "chat_send", "scope": "zone", "text": "hello"})).unwrap(),
            ClientMessage::ChatSend { scope: ChatScope::Zone, to: None, text: "hello".into() }
        );
        assert_eq!(
            parse(json!({"type": "chat_send", "scope": "direct", "to": "u-bob", "text": "hello"})).unwrap(),
            ClientMessage::ChatSend { scope: ChatScope::Direct, to: Some("u-bob".into()), text: "hello".into() }
        );
        assert!(parse(json!({"type": "chat_send", "scope": "room", "text": "hello"})).is_err());
        assert!(parse(json!({"type": "chat_send", "scope": "zone", "text": "hi", "html": true})).is_err());

        let ada = ChatParty { user: "u-ada".into(), name: "Ada".into() };
        let in_cafe = ChatMessage {
            id: "c-1764770000123-0000000a0001".into(),
            scope: ChatScope::Zone,
            zone: Some("cafe".into()),
            from: ada.clone(),
            to: None,
            text: "hello".into(),
            at: 1_764_770_000_123,
        };
        let wire = json!({"id": "c-1764770000123-0000000a0001", "scope": "zone", "zone": "cafe",
            "from": {"user": "u-ada", "name": "Ada"}, "text": "hello", "at": 1_764_770_000_123_i64});
        assert_eq!(server(&ServerMessage::Chat { message: in_cafe.clone() }), json!({"type": "chat", "message": wire}));
        let direct = ChatMessage {
            scope: ChatScope::Direct,
            zone: None,
            to: Some(ChatParty { user: "u-bob".into(), name: "Bob".into() }),
            ..in_cafe.clone()
        };
        assert_eq!(
            server(&ServerMessage::Chat { message: direct })["message"],
            json!({"id": "c-1764770000123-0000000a0001", "scope": "direct", "from": {"user": "u-ada", "name": "Ada"},
                "to": {"user": "u-bob", "name": "Bob"}, "text": "hello", "at": 1_764_770_000_123_i64})
        );
        let history =
            ServerMessage::ChatHistory { scope: ChatScope::Zone, zone: Some("cafe".into()), messages: vec![in_cafe] };
        assert_eq!(
            server(&history),
            json!({"type": "chat_history", "scope": "zone", "zone": "cafe", "messages": [wire]})
        );
        let world = ServerMessage::ChatHistory { scope: ChatScope::World, zone: None, messages: Vec::new() };
        assert_eq!(server(&world), json!({"type": "chat_history", "scope": "world", "messages": []}));
        let deleted = ServerMessage::ChatDeleted { id: "c-1".into() };
        assert_eq!(server(&deleted), json!({"type": "chat_deleted", "id": "c-1"}));
    }
}
