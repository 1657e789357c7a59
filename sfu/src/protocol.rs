//! What crosses the SFU's boundaries: the client's WebSocket session (`/v1/sfu`) and the
//! control API that signaling drives (`/v1/rooms`). docs/protocol.md describes both; the
//! browser client, the tests and the load tool use these types, never copies of them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// An avatar's ID in its world, as signaling numbers them.
pub type AvatarId = u32;

/// What a published track carries. Audio is the microphone unless said otherwise; video
/// is the camera unless the offer names it a screen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    Microphone,
    Camera,
    Screen,
    ScreenAudio,
}

impl Source {
    pub fn is_audio(self) -> bool {
        matches!(self, Source::Microphone | Source::ScreenAudio)
    }
}

/// The video quality a subscriber asks for; the SFU sends the best simulcast layer at or
/// below it that the subscriber's bandwidth allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Quality {
    Off,
    Low,
    Medium,
    #[default]
    High,
}

/// One avatar a subscriber wants to hear and see.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Wanted {
    pub avatar: AvatarId,
    #[serde(default = "yes")]
    pub audio: bool,
    /// The camera.
    #[serde(default)]
    pub video: Quality,
    /// A screen share (its picture, and its sound unless `off`).
    #[serde(default)]
    pub screen: Quality,
}

fn yes() -> bool {
    true
}

/// Client → SFU, JSON text frames.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientMessage {
    /// First message: the token signaling put in the media plan.
    Join {
        token: String,
    },
    /// The client's offer (its first, and whenever it adds or removes a track). `sources`
    /// names what each sending `mid` carries when that is not the default.
    Offer {
        id: u32,
        sdp: String,
        #[serde(default)]
        sources: BTreeMap<String, Source>,
    },
    /// The answer to the SFU's offer `id`.
    Answer {
        id: u32,
        sdp: String,
    },
    /// Which avatars to receive. `None`: everyone in the room, video at high quality.
    Subscribe {
        avatars: Option<Vec<Wanted>>,
    },
    Leave,
}

/// A track the SFU sends to this client, by the client's `mid`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrackInfo {
    pub mid: String,
    pub avatar: AvatarId,
    pub source: Source,
    /// Muted by its publisher's moderator: nothing flows until unmuted.
    pub muted: bool,
}

/// SFU → client, JSON text frames.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage {
    Joined {
        room: String,
        avatar: AvatarId,
        /// Whether this client may send audio and video.
        publish: bool,
    },
    /// The answer to the client's offer `id`.
    Answer { id: u32, sdp: String },
    /// The SFU's offer: tracks to receive came or went. `tracks` is every track the
    /// client receives once it accepts.
    Offer { id: u32, sdp: String, tracks: Vec<TrackInfo> },
    /// Tracks changed without a new offer (a mute, say).
    Tracks { tracks: Vec<TrackInfo> },
    /// Who is speaking now, loudest first.
    Speakers { avatars: Vec<AvatarId> },
    /// The request was refused; the session goes on unless `fatal`.
    Error { code: ErrorCode, message: String, fatal: bool },
    /// The SFU ended this session (room closed, removed by a moderator, misbehaving peer).
    Removed { reason: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    BadMessage,
    BadToken,
    RoomFull,
    TooManyTracks,
    NotAllowed,
    BadSdp,
    Overloaded,
}

/// `PUT /v1/rooms/{room}`: create a room (or change its settings).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoomSettings {
    /// At most this many participants; never more than the server's limit.
    #[serde(default)]
    pub max_participants: Option<u32>,
}

/// What a participant may do. A room token with `publish` allows every source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Permissions {
    pub publish_audio: bool,
    pub publish_video: bool,
    pub publish_screen: bool,
    pub subscribe: bool,
}

impl Permissions {
    pub fn from_token(publish: bool) -> Permissions {
        Permissions { publish_audio: publish, publish_video: publish, publish_screen: publish, subscribe: true }
    }

    pub fn allows(&self, source: Source) -> bool {
        match source {
            Source::Microphone => self.publish_audio,
            Source::Camera => self.publish_video,
            Source::Screen | Source::ScreenAudio => self.publish_screen,
        }
    }
}

/// `PATCH /v1/rooms/{room}/participants/{sub}`: fields left out stay as they are.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParticipantUpdate {
    pub publish_audio: Option<bool>,
    pub publish_video: Option<bool>,
    pub publish_screen: Option<bool>,
    pub subscribe: Option<bool>,
    /// Stops forwarding the participant's audio (a moderator's mute).
    pub audio_muted: Option<bool>,
    pub video_muted: Option<bool>,
}

/// One participant in `GET /v1/rooms/{room}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ParticipantStats {
    pub sub: String,
    pub avatar: AvatarId,
    pub connected: bool,
    pub permissions: Permissions,
    pub audio_muted: bool,
    pub video_muted: bool,
    pub published_tracks: u32,
    pub received_tracks: u32,
    pub packets_in: u64,
    pub packets_out: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub nacks_received: u64,
    pub plis_received: u64,
    /// Fraction of the participant's incoming packets lost on the way to the SFU.
    pub loss: f32,
    /// The bandwidth estimate towards the participant, bits per second.
    pub estimate_bps: Option<u64>,
}

/// `GET /v1/rooms/{room}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoomStats {
    pub room: String,
    pub max_participants: u32,
    pub participants: Vec<ParticipantStats>,
}

/// `GET /v1/rooms`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomSummary {
    pub room: String,
    pub participants: u32,
}

/// The JSON body of every control API error (the same shape signaling's HTTP errors have).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiError {
    pub error: ApiErrorDetail,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiErrorDetail {
    pub code: String,
    pub message: String,
}

/// `PUT /v1/rooms/{room}/recording`: record the room as `id` (it names the recording's
/// folder in the object store), started by `started_by` (a display name, for the
/// manifest).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordingStart {
    pub id: String,
    pub started_by: String,
    /// Only renew the lease of recording `id`: never start it (it may have ended here,
    /// and starting it again would write over its files): 404 when it is not going on.
    #[serde(default)]
    pub renew: bool,
}
