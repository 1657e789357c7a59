//! Moderation: the commands workspace admins send, over the WebSocket (`admin` messages)
//! and over the HTTP admin API (`POST /v1/admin/commands`), and what they answer.
//!
//! One command type serves both ways in, so the browser's admin panel, the HTTP API and
//! the `isoplane admin` CLI cannot drift apart. Every command is authorized and audited
//! by the server; docs/moderation.md describes each.

use serde::{Deserialize, Serialize};

use super::control::AvatarId;

/// Longest reason an admin may give, in characters.
pub const MAX_REASON_CHARS: usize = 500;
/// Longest notice text, in characters.
pub const MAX_NOTICE_CHARS: usize = 1000;
/// Most audit entries one listing returns.
pub const MAX_AUDIT_PAGE: u32 = 500;

/// What an admin asks for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
pub enum AdminCommand {
    /// Removes the user from every world now; they may come back.
    Kick {
        user: String,
        #[serde(default)]
        reason: String,
    },
    /// Stops the user's audio and/or video for everyone (at the SFU and by P2P peers).
    Mute {
        user: String,
        #[serde(default)]
        audio: bool,
        #[serde(default)]
        video: bool,
        #[serde(default)]
        reason: String,
    },
    /// Lifts a mute of audio and/or video.
    Unmute {
        user: String,
        #[serde(default)]
        audio: bool,
        #[serde(default)]
        video: bool,
        #[serde(default)]
        reason: String,
    },
    /// Bars the user from the workspace (for `duration_seconds`, or until lifted) and
    /// removes them from every world now.
    Ban {
        user: String,
        #[serde(default)]
        reason: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        duration_seconds: Option<u64>,
    },
    Unban {
        user: String,
        #[serde(default)]
        reason: String,
    },
    /// Makes the user an admin of the workspace.
    Promote {
        user: String,
        #[serde(default)]
        reason: String,
    },
    /// Takes the admin role away (never from the last admin).
    Demote {
        user: String,
        #[serde(default)]
        reason: String,
    },
    /// Nobody but admins may walk into the zone; those inside stay.
    LockZone {
        world: String,
        zone: String,
        #[serde(default)]
        reason: String,
    },
    UnlockZone {
        world: String,
        zone: String,
        #[serde(default)]
        reason: String,
    },
    /// At most `capacity` people in the zone (`null`: the world file's own limit).
    SetZoneCapacity {
        world: String,
        zone: String,
        capacity: Option<u32>,
        #[serde(default)]
        reason: String,
    },
    /// Puts the user on a spawn point (the world's default one when absent).
    MoveUser {
        user: String,
        world: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        spawn: Option<String>,
        #[serde(default)]
        reason: String,
    },
    /// A message shown to everyone in a world, or in one zone of it.
    Notice {
        world: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        zone: Option<String>,
        text: String,
    },
    /// Sends everyone in the zone to a spawn point (the world's default one when absent).
    EndMeeting {
        world: String,
        zone: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        spawn: Option<String>,
        #[serde(default)]
        reason: String,
    },
    /// Who is in the workspace's worlds now.
    ListPeople,
    ListBans,
    ListMutes,
    ListAdmins,
    /// The locks and capacities admins set on a world's zones (zones with neither are
    /// left out).
    ListZones {
        world: String,
    },
    /// The newest audit entries, older than the entry `before` when given.
    ListAudit {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        before: Option<i64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        limit: Option<u32>,
    },
}

impl AdminCommand {
    /// The name the audit log records.
    pub fn name(&self) -> &'static str {
        match self {
            AdminCommand::Kick { .. } => "kick",
            AdminCommand::Mute { .. } => "mute",
            AdminCommand::Unmute { .. } => "unmute",
            AdminCommand::Ban { .. } => "ban",
            AdminCommand::Unban { .. } => "unban",
            AdminCommand::Promote { .. } => "promote",
            AdminCommand::Demote { .. } => "demote",
            AdminCommand::LockZone { .. } => "lock_zone",
            AdminCommand::UnlockZone { .. } => "unlock_zone",
            AdminCommand::SetZoneCapacity { .. } => "set_zone_capacity",
            AdminCommand::MoveUser { .. } => "move_user",
            AdminCommand::Notice { .. } => "notice",
            AdminCommand::EndMeeting { .. } => "end_meeting",
            AdminCommand::ListPeople => "list_people",
            AdminCommand::ListBans => "list_bans",
            AdminCommand::ListMutes => "list_mutes",
            AdminCommand::ListAdmins => "list_admins",
            AdminCommand::ListZones { .. } => "list_zones",
            AdminCommand::ListAudit { .. } => "list_audit",
        }
    }

    /// Whether the command only reads (listings are not audited).
    pub fn is_query(&self) -> bool {
        matches!(
            self,
            AdminCommand::ListPeople
                | AdminCommand::ListBans
                | AdminCommand::ListMutes
                | AdminCommand::ListAdmins
                | AdminCommand::ListZones { .. }
                | AdminCommand::ListAudit { .. }
        )
    }
}

/// Why an admin command failed. Codes are stable; texts may improve.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AdminErrorCode {
    /// The caller is not an admin of this workspace (the attempt is audited).
    Forbidden,
    /// The arguments are wrong (empty user, nothing to mute, text too long…).
    InvalidCommand,
    /// The user is in none of the workspace's worlds.
    UserNotPresent,
    UnknownWorld,
    UnknownZone,
    UnknownSpawn,
    /// The last admin of a workspace can be neither demoted nor banned.
    LastAdmin,
    /// Too many commands from this admin; try again in a moment.
    RateLimited,
    /// Something failed inside the server (the database, a world's task).
    Internal,
}

impl AdminErrorCode {
    /// The HTTP status of this refusal on the admin API.
    pub fn http_status(self) -> u16 {
        match self {
            AdminErrorCode::Forbidden => 403,
            AdminErrorCode::InvalidCommand => 400,
            AdminErrorCode::UserNotPresent
            | AdminErrorCode::UnknownWorld
            | AdminErrorCode::UnknownZone
            | AdminErrorCode::UnknownSpawn => 404,
            AdminErrorCode::LastAdmin => 409,
            AdminErrorCode::RateLimited => 429,
            AdminErrorCode::Internal => 500,
        }
    }
}

/// A failed admin command: a code for programs, a text for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminError {
    pub code: AdminErrorCode,
    pub message: String,
}

impl AdminError {
    pub fn new(code: AdminErrorCode, message: impl Into<String>) -> AdminError {
        AdminError { code, message: message.into() }
    }
}

/// Someone in a world, as the admin panel lists them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersonInfo {
    pub world: String,
    pub avatar: AvatarId,
    pub user: String,
    pub name: String,
    /// The zone's ID.
    pub zone: String,
    pub audio_muted: bool,
    pub video_muted: bool,
    /// False while the avatar waits for its client to come back.
    pub connected: bool,
}

/// What happened to you, told by the server before it acts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModeratedAction {
    /// You were removed from the world (the connection closes with `kicked`).
    Kicked,
    /// You were banned (the connection closes with `banned`).
    Banned,
    /// Your audio and/or video were muted; the media plan says which.
    Muted,
    Unmuted,
    /// You were put on a spawn point.
    Moved,
    /// The meeting you were in was ended: you were put on a spawn point.
    MeetingEnded,
}
