//! Moderation: the commands workspace admins send, over the WebSocket (`admin` messages)
//! and over the HTTP admin API (`POST /v1/admin/commands`), and what they answer.
//!
//! One command type serves both ways in, and one reply type ([`AdminReply`]) answers
//! both, so the browser's admin panel, the HTTP API and the `isoplane admin` CLI cannot
//! drift apart. Every command is authorized and audited by the server;
//! docs/moderation.md describes each command and its reply.

use isoplane_metadata::{AuditEntry, Ban, Mute as MuteRecord};
use serde::{Deserialize, Serialize};

use super::control::{AvatarId, Status};

/// Longest reason an admin may give, in characters.
pub const MAX_REASON_CHARS: usize = 500;
/// Longest notice text, in characters.
pub const MAX_NOTICE_CHARS: usize = 1000;
/// Most audit entries one listing returns.
pub const MAX_AUDIT_PAGE: u32 = 500;

/// What an admin asks for.
///
/// Commands of the same shape share their arguments' type: the fields are read and
/// checked once for all of them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
pub enum AdminCommand {
    /// Removes the user from every world now; they may come back.
    Kick(UserArgs),
    /// Stops the user's audio and/or video for everyone (at the SFU and by P2P peers).
    Mute(MediaArgs),
    /// Lifts a mute of audio and/or video.
    Unmute(MediaArgs),
    /// Stops the user's chat: nothing they write is sent (they are told `chat_muted`).
    /// Recorded with their media mute, so it holds when they come back.
    MuteChat(UserArgs),
    UnmuteChat(UserArgs),
    /// Bars the user from the workspace (for `duration_seconds`, or until lifted) and
    /// removes them from every world now.
    Ban {
        user: String,
        #[serde(default)]
        reason: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        duration_seconds: Option<u64>,
    },
    Unban(UserArgs),
    /// Makes the user an admin of the workspace.
    Promote(UserArgs),
    /// Takes the admin role away (never from the last admin).
    Demote(UserArgs),
    /// Nobody but admins may walk into the zone; those inside stay.
    LockZone(ZoneArgs),
    UnlockZone(ZoneArgs),
    /// At most `capacity` people in the zone (`null`: the world file's own limit).
    SetZoneCapacity {
        world: String,
        zone: String,
        capacity: Option<u32>,
        #[serde(default)]
        reason: String,
    },
    /// Lets the people of a zone record it (`allowed`), or not, whatever the world file
    /// says, until the world is reloaded or moves to another node; forbidding it stops a
    /// recording in progress.
    AllowRecording {
        world: String,
        zone: String,
        allowed: bool,
        #[serde(default)]
        reason: String,
    },
    /// Makes a key a broadcaster (OBS, any WHIP client) publishes to a stage zone with;
    /// the answer shows the key, once.
    CreateIngestKey {
        world: String,
        zone: String,
        /// What listeners see the stream as.
        name: String,
        #[serde(default)]
        reason: String,
    },
    /// Revokes an ingest key for good: a stream live with it ends.
    RevokeIngestKey {
        id: String,
        #[serde(default)]
        reason: String,
    },
    /// Every ingest key of the workspace (not the keys themselves).
    ListIngestKeys,
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
    /// Deletes a chat message from the world's history; everyone connected who could
    /// see it is told to stop showing it.
    DeleteChat {
        world: String,
        /// The message's ID (`c-…`), as `chat` gave it.
        message: String,
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

/// A command on one user: `kick`, `unban`, `promote`, `demote`, `mute_chat`, `unmute_chat`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserArgs {
    pub user: String,
    #[serde(default)]
    pub reason: String,
}

/// A change to one user's media: `mute`, `unmute` (at least one kind).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MediaArgs {
    pub user: String,
    #[serde(default)]
    pub audio: bool,
    #[serde(default)]
    pub video: bool,
    #[serde(default)]
    pub reason: String,
}

/// A command on one zone of a world: `lock_zone`, `unlock_zone`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZoneArgs {
    pub world: String,
    pub zone: String,
    #[serde(default)]
    pub reason: String,
}

impl UserArgs {
    pub fn new(user: impl Into<String>, reason: impl Into<String>) -> UserArgs {
        UserArgs { user: user.into(), reason: reason.into() }
    }
}

impl ZoneArgs {
    pub fn new(world: impl Into<String>, zone: impl Into<String>, reason: impl Into<String>) -> ZoneArgs {
        ZoneArgs { world: world.into(), zone: zone.into(), reason: reason.into() }
    }
}

impl AdminCommand {
    /// The name the audit log records.
    pub fn name(&self) -> &'static str {
        match self {
            AdminCommand::Kick(_) => "kick",
            AdminCommand::Mute(_) => "mute",
            AdminCommand::Unmute(_) => "unmute",
            AdminCommand::MuteChat(_) => "mute_chat",
            AdminCommand::UnmuteChat(_) => "unmute_chat",
            AdminCommand::Ban { .. } => "ban",
            AdminCommand::Unban(_) => "unban",
            AdminCommand::Promote(_) => "promote",
            AdminCommand::Demote(_) => "demote",
            AdminCommand::LockZone(_) => "lock_zone",
            AdminCommand::UnlockZone(_) => "unlock_zone",
            AdminCommand::SetZoneCapacity { .. } => "set_zone_capacity",
            AdminCommand::AllowRecording { .. } => "allow_recording",
            AdminCommand::CreateIngestKey { .. } => "create_ingest_key",
            AdminCommand::RevokeIngestKey { .. } => "revoke_ingest_key",
            AdminCommand::ListIngestKeys => "list_ingest_keys",
            AdminCommand::MoveUser { .. } => "move_user",
            AdminCommand::Notice { .. } => "notice",
            AdminCommand::EndMeeting { .. } => "end_meeting",
            AdminCommand::DeleteChat { .. } => "delete_chat",
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
                | AdminCommand::ListIngestKeys
        )
    }

    /// The user the command acts on, if it acts on one.
    pub fn user(&self) -> Option<&str> {
        match self {
            AdminCommand::Kick(on)
            | AdminCommand::Unban(on)
            | AdminCommand::Promote(on)
            | AdminCommand::Demote(on)
            | AdminCommand::MuteChat(on)
            | AdminCommand::UnmuteChat(on) => Some(&on.user),
            AdminCommand::Mute(media) | AdminCommand::Unmute(media) => Some(&media.user),
            AdminCommand::Ban { user, .. } | AdminCommand::MoveUser { user, .. } => Some(user),
            _ => None,
        }
    }

    /// The world and zone the command acts on or in, if any (`zone` absent: the whole
    /// world, or the world a user is moved in).
    pub fn place(&self) -> Option<(&str, Option<&str>)> {
        match self {
            AdminCommand::LockZone(ZoneArgs { world, zone, .. })
            | AdminCommand::UnlockZone(ZoneArgs { world, zone, .. })
            | AdminCommand::SetZoneCapacity { world, zone, .. }
            | AdminCommand::AllowRecording { world, zone, .. }
            | AdminCommand::CreateIngestKey { world, zone, .. }
            | AdminCommand::EndMeeting { world, zone, .. } => Some((world, Some(zone))),
            AdminCommand::Notice { world, zone, .. } => Some((world, zone.as_deref())),
            AdminCommand::MoveUser { world, .. }
            | AdminCommand::ListZones { world }
            | AdminCommand::DeleteChat { world, .. } => Some((world, None)),
            _ => None,
        }
    }

    /// Who or what the command acts on, as the audit log records it: the user if it
    /// names one, else `world/zone` or the world, else nothing.
    pub fn target(&self) -> String {
        if let AdminCommand::RevokeIngestKey { id, .. } = self {
            return format!("ingest key {id}");
        }
        match (self.user(), self.place()) {
            (Some(user), _) => user.to_owned(),
            (None, Some((world, Some(zone)))) => format!("{world}/{zone}"),
            (None, Some((world, None))) => world.to_owned(),
            (None, None) => String::new(),
        }
    }

    /// Why, as the admin gave it (a notice's text), or nothing for listings.
    pub fn reason(&self) -> &str {
        match self {
            AdminCommand::Kick(on)
            | AdminCommand::Unban(on)
            | AdminCommand::Promote(on)
            | AdminCommand::Demote(on)
            | AdminCommand::MuteChat(on)
            | AdminCommand::UnmuteChat(on) => &on.reason,
            AdminCommand::Mute(media) | AdminCommand::Unmute(media) => &media.reason,
            AdminCommand::LockZone(zone) | AdminCommand::UnlockZone(zone) => &zone.reason,
            AdminCommand::Ban { reason, .. }
            | AdminCommand::SetZoneCapacity { reason, .. }
            | AdminCommand::AllowRecording { reason, .. }
            | AdminCommand::CreateIngestKey { reason, .. }
            | AdminCommand::RevokeIngestKey { reason, .. }
            | AdminCommand::MoveUser { reason, .. }
            | AdminCommand::EndMeeting { reason, .. }
            | AdminCommand::DeleteChat { reason, .. } => reason,
            AdminCommand::Notice { text, .. } => text,
            AdminCommand::ListPeople
            | AdminCommand::ListIngestKeys
            | AdminCommand::ListBans
            | AdminCommand::ListMutes
            | AdminCommand::ListAdmins
            | AdminCommand::ListZones { .. }
            | AdminCommand::ListAudit { .. } => "",
        }
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
    /// The world's chat history has no message with this ID (deleted already, or older
    /// than the history keeps).
    UnknownMessage,
    UnknownWorld,
    UnknownZone,
    UnknownSpawn,
    /// The last admin of a workspace can be neither demoted nor banned.
    LastAdmin,
    /// Too many commands from this admin; try again in a moment.
    RateLimited,
    /// The database does not answer (down or restarting): nothing was changed.
    DatabaseUnavailable,
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
            | AdminErrorCode::UnknownMessage
            | AdminErrorCode::UnknownWorld
            | AdminErrorCode::UnknownZone
            | AdminErrorCode::UnknownSpawn => 404,
            AdminErrorCode::LastAdmin => 409,
            AdminErrorCode::RateLimited => 429,
            AdminErrorCode::DatabaseUnavailable => 503,
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

/// What a command that worked answers: the `data` of an `admin_result` message and of
/// the HTTP admin API's `{"ok": true, "data": …}` (docs/moderation.md lists each).
///
/// On the wire each variant is a plain JSON object, told apart by its fields. Reading
/// one tries the variants in order, so a variant whose fields include another's comes
/// before it (`Muted` and `Banned` before `Removed`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum AdminReply {
    /// `mute`, `unmute`, `mute_chat`, `unmute_chat`: the user's mute as recorded now, and
    /// where it reached them.
    Muted {
        audio_muted: bool,
        video_muted: bool,
        #[serde(default)]
        chat_muted: bool,
        #[serde(flatten)]
        reach: Reach,
    },
    /// `ban`: until when (`null`: until lifted), and where the user was removed.
    Banned {
        #[serde(deserialize_with = "present")]
        expires_at: Option<i64>,
        #[serde(flatten)]
        reach: Reach,
    },
    /// `kick`: where the user was removed.
    Removed(Reach),
    /// `unban`: whether there was a ban to lift.
    Lifted { lifted: bool },
    /// `promote`, `demote`: whether the role changed (false: it already was so).
    RoleChanged { changed: bool },
    /// `lock_zone`, `unlock_zone`, `set_zone_capacity`: the zone's settings now (`capacity`
    /// `null`: the world file's), and how many people are inside.
    ZoneSet {
        locked: bool,
        #[serde(deserialize_with = "present")]
        capacity: Option<u32>,
        inside: usize,
    },
    /// `move_user`, `end_meeting`: how many people were moved.
    Moved { moved: usize },
    /// `delete_chat`: the message deleted (its ID), its author's user ID, and how many
    /// connected people were told to stop showing it. (Before `NoticeShown`, whose field
    /// it has.)
    ChatDeleted { message: String, author: String, reached: usize },
    /// `notice`: how many people it was shown to.
    NoticeShown { reached: usize },
    /// `create_ingest_key`: the key (shown this once) and its ID.
    IngestKeyCreated { id: String, key: String },
    /// `revoke_ingest_key`: the key revoked, and whether a stream live with it ended.
    IngestKeyRevoked { revoked: String, ended: bool },
    /// `list_ingest_keys`: every key, revoked ones too, newest first.
    IngestKeys { ingest_keys: Vec<isoplane_metadata::IngestKey> },
    /// `list_people`: everyone in the workspace's worlds.
    People { people: Vec<PersonInfo> },
    /// `list_bans`: the bans in force, as the workspace's database records them.
    Bans { bans: Vec<Ban> },
    /// `list_mutes`: the mutes in force, as recorded.
    Mutes { mutes: Vec<MuteRecord> },
    /// `list_admins`: the admins' user IDs.
    Admins { admins: Vec<String> },
    /// `list_zones`: the zones with a lock or capacity set.
    Zones { zones: Vec<ZoneSettingInfo> },
    /// `list_audit`: a page of the audit log, newest first.
    Audit { entries: Vec<AuditEntry> },
}

/// Reads a field that must be there, though it may be `null` (serde's default for an
/// `Option` field is to take a missing one for `None`, which would blur two replies).
fn present<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(deserializer: D) -> Result<Option<T>, D::Error> {
    Option::deserialize(deserializer)
}

/// Where an action on a user went, across the nodes of a cluster.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reach {
    /// Worlds where the user was reached.
    pub worlds: usize,
    /// Nodes that did not answer in time: the user may be there, and gets the recorded
    /// ban or mute when they next join.
    pub nodes_unanswered: usize,
}

/// A zone's lock and capacity as admins set them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ZoneSettingInfo {
    pub zone: String,
    pub locked: bool,
    /// `None`: the world file's capacity.
    pub capacity: Option<u32>,
    pub updated_by: String,
}

/// The HTTP admin API's body: `{"ok": true, "data": …}` or `{"ok": false, "error": …}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminAnswer {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<AdminReply>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<AdminError>,
}

impl AdminAnswer {
    pub fn of(outcome: Result<AdminReply, AdminError>) -> AdminAnswer {
        match outcome {
            Ok(data) => AdminAnswer { ok: true, data: Some(data), error: None },
            Err(error) => AdminAnswer { ok: false, data: None, error: Some(error) },
        }
    }

    /// The outcome it carries; a body with neither `data` nor `error` reads as an error.
    pub fn into_result(self) -> Result<AdminReply, AdminError> {
        match (self.ok, self.data, self.error) {
            (true, Some(data), _) => Ok(data),
            (_, _, Some(error)) => Err(error),
            _ => Err(AdminError::new(AdminErrorCode::Internal, "the answer carries neither data nor an error")),
        }
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
    #[serde(default)]
    pub chat_muted: bool,
    /// False while the avatar waits for its client to come back.
    pub connected: bool,
    #[serde(default)]
    pub status: Status,
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
    /// Your chat was muted: what you write is not sent (`chat_muted` errors say so).
    ChatMuted,
    ChatUnmuted,
    /// You were put on a spawn point.
    Moved,
    /// The meeting you were in was ended: you were put on a spawn point.
    MeetingEnded,
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// Serialises `reply`, checks the JSON is `wire`, and reads it back as the same reply.
    fn round_trip(reply: AdminReply, wire: serde_json::Value) {
        assert_eq!(serde_json::to_value(&reply).unwrap(), wire);
        assert_eq!(serde_json::from_value::<AdminReply>(wire).unwrap(), reply);
    }

    #[test]
    fn each_reply_keeps_its_wire_shape_and_reads_back_as_itself() {
        let reach = Reach { worlds: 1, nodes_unanswered: 0 };
        round_trip(AdminReply::Removed(reach), json!({"worlds": 1, "nodes_unanswered": 0}));
        round_trip(
            AdminReply::Muted { audio_muted: true, video_muted: false, chat_muted: false, reach },
            json!({"audio_muted": true, "video_muted": false, "chat_muted": false, "worlds": 1, "nodes_unanswered": 0}),
        );
        round_trip(
            AdminReply::Banned { expires_at: None, reach },
            json!({"expires_at": null, "worlds": 1, "nodes_unanswered": 0}),
        );
        round_trip(
            AdminReply::Banned { expires_at: Some(7200), reach },
            json!({"expires_at": 7200, "worlds": 1, "nodes_unanswered": 0}),
        );
        round_trip(AdminReply::Lifted { lifted: false }, json!({"lifted": false}));
        round_trip(AdminReply::RoleChanged { changed: true }, json!({"changed": true}));
        round_trip(
            AdminReply::ZoneSet { locked: true, capacity: None, inside: 2 },
            json!({"locked": true, "capacity": null, "inside": 2}),
        );
        round_trip(AdminReply::Moved { moved: 3 }, json!({"moved": 3}));
        round_trip(AdminReply::NoticeShown { reached: 4 }, json!({"reached": 4}));
        round_trip(
            AdminReply::ChatDeleted { message: "c-1".into(), author: "ada".into(), reached: 2 },
            json!({"message": "c-1", "author": "ada", "reached": 2}),
        );
        round_trip(AdminReply::Admins { admins: vec!["ada".into()] }, json!({"admins": ["ada"]}));
        round_trip(AdminReply::People { people: Vec::new() }, json!({"people": []}));
        let zone = ZoneSettingInfo { zone: "lobby".into(), locked: false, capacity: Some(4), updated_by: "ada".into() };
        round_trip(
            AdminReply::Zones { zones: vec![zone] },
            json!({"zones": [{"zone": "lobby", "locked": false, "capacity": 4, "updated_by": "ada"}]}),
        );
    }

    #[test]
    fn answers_say_ok_with_data_or_not_ok_with_an_error() {
        let done = AdminAnswer::of(Ok(AdminReply::Moved { moved: 1 }));
        assert_eq!(serde_json::to_value(&done).unwrap(), json!({"ok": true, "data": {"moved": 1}}));
        let refused = AdminAnswer::of(Err(AdminError::new(AdminErrorCode::Forbidden, "no")));
        let wire = json!({"ok": false, "error": {"code": "forbidden", "message": "no"}});
        assert_eq!(serde_json::to_value(&refused).unwrap(), wire);
        let read: AdminAnswer = serde_json::from_value(wire).unwrap();
        assert_eq!(read.into_result().unwrap_err().code, AdminErrorCode::Forbidden);
        let empty: AdminAnswer = serde_json::from_value(json!({"ok": true})).unwrap();
        assert_eq!(empty.into_result().unwrap_err().code, AdminErrorCode::Internal);
    }

    #[test]
    fn commands_with_shared_arguments_keep_their_flat_wire_shape() {
        let kick = AdminCommand::Kick(UserArgs::new("bob", "spam"));
        let wire = json!({"action": "kick", "user": "bob", "reason": "spam"});
        assert_eq!(serde_json::to_value(&kick).unwrap(), wire);
        assert_eq!(serde_json::from_value::<AdminCommand>(wire).unwrap(), kick);
        let mute: AdminCommand =
            serde_json::from_value(json!({"action": "mute", "user": "bob", "audio": true})).unwrap();
        assert_eq!(
            mute,
            AdminCommand::Mute(MediaArgs { user: "bob".into(), audio: true, video: false, reason: "".into() })
        );
        let lock = json!({"action": "lock_zone", "world": "demo", "zone": "meeting", "reason": ""});
        assert_eq!(
            serde_json::from_value::<AdminCommand>(lock.clone()).unwrap(),
            AdminCommand::LockZone(ZoneArgs::new("demo", "meeting", ""))
        );
        let delete = json!({"action": "delete_chat", "world": "demo", "message": "c-1", "reason": "spam"});
        assert_eq!(
            serde_json::from_value::<AdminCommand>(delete).unwrap(),
            AdminCommand::DeleteChat { world: "demo".into(), message: "c-1".into(), reason: "spam".into() }
        );
        let mute_chat = json!({"action": "mute_chat", "user": "bob"});
        assert_eq!(
            serde_json::from_value::<AdminCommand>(mute_chat).unwrap(),
            AdminCommand::MuteChat(UserArgs::new("bob", ""))
        );
        // Unknown fields are refused, as before the arguments were shared.
        let typo = json!({"action": "kick", "user": "bob", "resaon": "spam"});
        assert!(serde_json::from_value::<AdminCommand>(typo).is_err());
        let typo = json!({"action": "mute", "user": "bob", "audio": true, "vidoe": true});
        assert!(serde_json::from_value::<AdminCommand>(typo).is_err());
    }

    #[test]
    fn target_and_reason_are_what_the_audit_log_records() {
        let ban = AdminCommand::Ban { user: "bob".into(), reason: "abuse".into(), duration_seconds: None };
        assert_eq!((ban.target(), ban.reason()), ("bob".to_owned(), "abuse"));
        let move_user =
            AdminCommand::MoveUser { user: "bob".into(), world: "demo".into(), spawn: None, reason: "lost".into() };
        assert_eq!((move_user.target(), move_user.reason()), ("bob".to_owned(), "lost"));
        let lock = AdminCommand::LockZone(ZoneArgs::new("demo", "meeting", "private"));
        assert_eq!((lock.target(), lock.reason()), ("demo/meeting".to_owned(), "private"));
        let notice = AdminCommand::Notice { world: "demo".into(), zone: None, text: "Fire drill".into() };
        assert_eq!((notice.target(), notice.reason()), ("demo".to_owned(), "Fire drill"));
        let zones = AdminCommand::ListZones { world: "demo".into() };
        assert_eq!((zones.target(), zones.reason()), ("demo".to_owned(), ""));
        assert_eq!((AdminCommand::ListPeople.target(), AdminCommand::ListPeople.reason()), (String::new(), ""));
    }
}
