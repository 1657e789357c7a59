//! Each admin command's own work, once the command is checked and its actor authorized:
//! one function per command (or per group of alike commands), each returning the typed
//! reply and the audit entry's detail. [`check`] reads the arguments before anything
//! else happens.

use isoplane_metadata::{Ban, ChatAudience, IngestKey, MetadataError, Mute as MuteRecord, ZoneSetting};

use super::{Actor, Moderator, database, internal, invalid};
use crate::auth::Role;
use crate::engine::{Moderation, Mute};
use crate::protocol::{
    AdminCommand, AdminError, AdminErrorCode, AdminReply, MAX_AUDIT_PAGE, MAX_NOTICE_CHARS, MAX_REASON_CHARS,
    MediaArgs, PersonInfo, UserArgs, ZoneArgs, ZoneSettingInfo,
};
use crate::server::cluster::{ClusterReply, ClusterRequest};

/// Longest user ID a command may name.
const MAX_USER_CHARS: usize = 128;
/// Audit entries one listing returns when the command does not say.
const DEFAULT_AUDIT_PAGE: u32 = 100;

/// What a command did: its reply, and the particulars the audit log keeps.
pub(super) struct Done {
    pub reply: AdminReply,
    pub detail: String,
    /// Who or what it acted on, when only carrying it out told (else the command's own
    /// [`AdminCommand::target`]).
    pub target: Option<String>,
}

impl Done {
    fn new(reply: AdminReply, detail: impl Into<String>) -> Done {
        Done { reply, detail: detail.into(), target: None }
    }

    /// A reply with nothing more to audit.
    fn plain(reply: AdminReply) -> Done {
        Done { reply, detail: String::new(), target: None }
    }
}

/// Characters of a deleted chat message the audit log keeps.
const AUDIT_EXCERPT_CHARS: usize = 200;

/// Longest chat message ID a command may name (IDs the server makes are 28).
const MAX_CHAT_ID_CHARS: usize = 64;

/// The start of `text`, marked when cut.
fn excerpt(text: &str) -> String {
    let mut excerpt: String = text.chars().take(AUDIT_EXCERPT_CHARS).collect();
    if excerpt.len() < text.len() {
        excerpt.push('…');
    }
    excerpt
}

type Outcome = Result<Done, AdminError>;

fn check_user(user: &str) -> Result<(), AdminError> {
    if user.is_empty() || user.chars().count() > MAX_USER_CHARS {
        return Err(invalid(format!("name a user ID of 1 to {MAX_USER_CHARS} characters")));
    }
    Ok(())
}

/// World, zone and spawn IDs follow the world format's rule.
fn check_name(name: &str) -> Result<(), AdminError> {
    if !isoplane_world_format::is_valid_id(name) {
        return Err(invalid(format!(
            "`{}` is not a world, zone or spawn ID",
            name.chars().take(64).collect::<String>()
        )));
    }
    Ok(())
}

/// Checks what can be checked without the database or the worlds: the user, world and
/// zone named, the reason's length, and each command's own fields.
pub(super) fn check(command: &AdminCommand) -> Result<(), AdminError> {
    if let Some(user) = command.user() {
        check_user(user)?;
    }
    if let Some((world, zone)) = command.place() {
        check_name(world)?;
        zone.map_or(Ok(()), check_name)?;
    }
    match command {
        // A notice's text stands in for a reason, with its own limit.
        AdminCommand::Notice { text, .. } => {
            let length = text.trim().chars().count();
            if length == 0 || length > MAX_NOTICE_CHARS {
                return Err(invalid(format!("a notice is 1 to {MAX_NOTICE_CHARS} characters")));
            }
            Ok(())
        }
        AdminCommand::ListAudit { limit: Some(limit), .. } if *limit == 0 || *limit > MAX_AUDIT_PAGE => {
            Err(invalid(format!("limit is 1 to {MAX_AUDIT_PAGE}")))
        }
        _ if command.reason().chars().count() > MAX_REASON_CHARS => {
            Err(invalid(format!("the reason is longer than {MAX_REASON_CHARS} characters")))
        }
        AdminCommand::Mute(MediaArgs { audio: false, video: false, .. })
        | AdminCommand::Unmute(MediaArgs { audio: false, video: false, .. }) => {
            Err(invalid("say which to change: audio, video or both"))
        }
        AdminCommand::DeleteChat { message, .. }
            if message.is_empty() || message.chars().count() > MAX_CHAT_ID_CHARS =>
        {
            Err(invalid(format!("name a chat message ID of 1 to {MAX_CHAT_ID_CHARS} characters")))
        }
        _ => Ok(()),
    }
}

impl Moderator {
    /// Does the command.
    pub(super) async fn carry_out(&self, actor: &Actor, command: &AdminCommand, now: i64) -> Outcome {
        match command {
            AdminCommand::Kick(args) => self.kick(actor, args).await,
            AdminCommand::Mute(args) => self.set_mute(actor, args, true, now).await,
            AdminCommand::Unmute(args) => self.set_mute(actor, args, false, now).await,
            AdminCommand::MuteChat(UserArgs { user, reason }) => {
                self.set_chat_mute(actor, user, reason, true, now).await
            }
            AdminCommand::UnmuteChat(UserArgs { user, reason }) => {
                self.set_chat_mute(actor, user, reason, false, now).await
            }
            AdminCommand::Ban { user, reason, duration_seconds } => {
                self.ban(actor, user, reason, *duration_seconds, now).await
            }
            AdminCommand::Unban(UserArgs { user, .. }) => self.unban(user).await,
            AdminCommand::Promote(UserArgs { user, .. }) => self.set_role(actor, user, Role::Admin, now).await,
            AdminCommand::Demote(UserArgs { user, .. }) => self.set_role(actor, user, Role::Member, now).await,
            AdminCommand::LockZone(ZoneArgs { world, zone, .. }) => {
                self.set_zone(actor, world, zone, Some(true), None, now).await
            }
            AdminCommand::UnlockZone(ZoneArgs { world, zone, .. }) => {
                self.set_zone(actor, world, zone, Some(false), None, now).await
            }
            AdminCommand::SetZoneCapacity { world, zone, capacity, .. } => {
                self.set_zone(actor, world, zone, None, Some(*capacity), now).await
            }
            AdminCommand::AllowRecording { world, zone, allowed, .. } => {
                self.allow_recording(actor, world, zone, *allowed).await
            }
            AdminCommand::CreateIngestKey { world, zone, name, .. } => {
                self.create_ingest_key(actor, world, zone, name, now).await
            }
            AdminCommand::RevokeIngestKey { id, .. } => self.revoke_ingest_key(id, now).await,
            AdminCommand::ListIngestKeys => {
                let ingest_keys = self.metadata.ingest_keys(&self.workspace).await.map_err(database)?;
                Ok(Done::plain(AdminReply::IngestKeys { ingest_keys }))
            }
            AdminCommand::MoveUser { user, world, spawn, reason } => {
                self.move_user(actor, user, world, spawn.clone(), reason).await
            }
            AdminCommand::Notice { world, zone, text } => self.notice(actor, world, zone.clone(), text).await,
            AdminCommand::EndMeeting { world, zone, spawn, reason } => {
                self.end_meeting(actor, world, zone, spawn.clone(), reason).await
            }
            AdminCommand::DeleteChat { world, message, .. } => self.delete_chat(world, message).await,
            AdminCommand::ListPeople => self.list_people().await,
            AdminCommand::ListBans => self.list_bans(now).await,
            AdminCommand::ListMutes => self.list_mutes().await,
            AdminCommand::ListAdmins => self.list_admins().await,
            AdminCommand::ListZones { world } => self.list_zones(world).await,
            AdminCommand::ListAudit { before, limit } => self.list_audit(*before, *limit).await,
        }
    }

    async fn kick(&self, actor: &Actor, args: &UserArgs) -> Outcome {
        let UserArgs { user, reason } = args;
        let (by, banned) = (actor.name.clone(), false);
        let remove = || Moderation::Remove { user: user.clone(), banned, by: by.clone(), reason: reason.clone() };
        let reach = self.everywhere(remove).await?;
        if reach.worlds == 0 && reach.nodes_unanswered == 0 {
            return Err(AdminError::new(AdminErrorCode::UserNotPresent, "this user is in none of the worlds"));
        }
        Ok(Done::plain(AdminReply::Removed(reach)))
    }

    /// Mutes (`muting`) or unmutes the kinds named; the others stay as recorded.
    async fn set_mute(&self, actor: &Actor, args: &MediaArgs, muting: bool, now: i64) -> Outcome {
        let MediaArgs { user, audio, video, reason } = args;
        let workspace = self.workspace.as_str();
        let before = self.metadata.mute_of(workspace, user).await.map_err(database)?;
        let chat = before.as_ref().is_some_and(|m| m.chat);
        let before = before.map_or(Mute::default(), |m| Mute { audio: m.audio, video: m.video });
        let mute = Mute {
            audio: if *audio { muting } else { before.audio },
            video: if *video { muting } else { before.video },
        };
        let record = MuteRecord {
            workspace: workspace.to_owned(),
            user_id: user.clone(),
            audio: mute.audio,
            video: mute.video,
            chat,
            reason: reason.clone(),
            created_by: actor.user.clone(),
            created_at: now,
        };
        self.metadata.set_mute(&record).await.map_err(database)?;
        let by = actor.name.clone();
        let set = || Moderation::SetMute { user: user.clone(), mute, by: by.clone(), reason: reason.clone() };
        let reach = self.everywhere(set).await?;
        let kinds = match (audio, video) {
            (true, true) => "audio and video",
            (true, false) => "audio",
            _ => "video",
        };
        let reply = AdminReply::Muted { audio_muted: mute.audio, video_muted: mute.video, chat_muted: chat, reach };
        Ok(Done::new(reply, kinds))
    }

    /// Mutes (`muting`) or unmutes the user's chat, recorded beside their media mute.
    async fn set_chat_mute(&self, actor: &Actor, user: &str, reason: &str, muting: bool, now: i64) -> Outcome {
        let workspace = self.workspace.as_str();
        let before = self.metadata.mute_of(workspace, user).await.map_err(database)?;
        let mute = before.as_ref().map_or(Mute::default(), |m| Mute { audio: m.audio, video: m.video });
        let record = MuteRecord {
            workspace: workspace.to_owned(),
            user_id: user.to_owned(),
            audio: mute.audio,
            video: mute.video,
            chat: muting,
            reason: reason.to_owned(),
            created_by: actor.user.clone(),
            created_at: now,
        };
        self.metadata.set_mute(&record).await.map_err(database)?;
        let (user, by, reason) = (user.to_owned(), actor.name.clone(), reason.to_owned());
        let set =
            || Moderation::SetChatMute { user: user.clone(), muted: muting, by: by.clone(), reason: reason.clone() };
        let reach = self.everywhere(set).await?;
        let reply = AdminReply::Muted { audio_muted: mute.audio, video_muted: mute.video, chat_muted: muting, reach };
        Ok(Done::plain(reply))
    }

    /// Deletes a chat message: from the stored history first (which also says whose it
    /// was), then from the world that serves it, which tells those who could read it.
    async fn delete_chat(&self, world: &str, id: &str) -> Outcome {
        if !self.worlds.contains_key(world) {
            return Err(AdminError::new(AdminErrorCode::UnknownWorld, "there is no world with this name"));
        }
        let at = crate::server::world_task::unix_ms();
        let stored = self.metadata.delete_chat(&self.workspace, world, id, at).await.map_err(database)?;
        let reached = match self.in_world(world, Moderation::DeleteChat { id: id.to_owned() }).await {
            Ok(reached) => reached,
            // Stored but no longer in the world's history (it aged out there first): the
            // deletion stands, nobody had it to be told.
            Err(error) if error.code == AdminErrorCode::UnknownMessage && stored.is_some() => 0,
            Err(error) => return Err(error),
        };
        // The world held it but the writer had not stored it yet: the world's deletion,
        // queued after the message's write, removes it from the database too.
        let (author, detail) = match stored {
            Some(message) => {
                let place = match &message.audience {
                    ChatAudience::Zone { zone } => format!("zone {zone}"),
                    ChatAudience::World => "the world".to_owned(),
                    ChatAudience::Direct { user, .. } => format!("a direct message to {user}"),
                };
                let detail = format!("{id} in {world}, {place}: \"{}\"", excerpt(&message.text));
                (message.from_user, detail)
            }
            None => (String::new(), format!("{id} in {world} (not yet stored: author and text unknown)")),
        };
        let reply = AdminReply::ChatDeleted { message: id.to_owned(), author: author.clone(), reached };
        Ok(Done { reply, detail, target: Some(author).filter(|a| !a.is_empty()) })
    }

    async fn ban(&self, actor: &Actor, user: &str, reason: &str, duration_seconds: Option<u64>, now: i64) -> Outcome {
        let expires_at = duration_seconds.map(|seconds| now.saturating_add(i64::try_from(seconds).unwrap_or(i64::MAX)));
        let ban = Ban {
            workspace: self.workspace.clone(),
            user_id: user.to_owned(),
            reason: reason.to_owned(),
            created_by: actor.user.clone(),
            created_at: now,
            expires_at,
        };
        self.metadata.ban_user(&ban).await.map_err(refusing_last_admin)?;
        let (by, banned) = (actor.name.clone(), true);
        let remove = || Moderation::Remove { user: user.to_owned(), banned, by: by.clone(), reason: reason.to_owned() };
        let reach = self.everywhere(remove).await?;
        let detail = duration_seconds.map_or("until lifted".to_owned(), |s| format!("for {s} s"));
        Ok(Done::new(AdminReply::Banned { expires_at, reach }, detail))
    }

    async fn unban(&self, user: &str) -> Outcome {
        let lifted = self.metadata.lift_ban(&self.workspace, user).await.map_err(database)?;
        Ok(Done::new(AdminReply::Lifted { lifted }, if lifted { "" } else { "was not banned" }))
    }

    /// Promotes or demotes (never the last admin), then tells the worlds.
    async fn set_role(&self, actor: &Actor, user: &str, role: Role, now: i64) -> Outcome {
        let (workspace, by) = (self.workspace.as_str(), actor.user.as_str());
        let changed = match role {
            Role::Admin => self.metadata.promote(workspace, user, by, now).await.map_err(database)?,
            Role::Member | Role::Builder => {
                self.metadata.demote(workspace, user, by, now).await.map_err(refusing_last_admin)?
            }
        };
        self.everywhere(|| Moderation::SetRole { user: user.to_owned(), role }).await?;
        Ok(Done::plain(AdminReply::RoleChanged { changed }))
    }

    /// Locks, unlocks or limits a zone: the world checks the zone and applies it, then it
    /// is recorded so a restart keeps it.
    async fn set_zone(
        &self,
        actor: &Actor,
        world: &str,
        zone: &str,
        locked: Option<bool>,
        capacity: Option<Option<u32>>,
        now: i64,
    ) -> Outcome {
        let recorded = self.metadata.zone_settings(&self.workspace, world).await.map_err(database)?;
        let current = recorded.iter().find(|s| s.zone == zone);
        let locked = locked.unwrap_or(current.is_some_and(|s| s.locked));
        let capacity = capacity.unwrap_or(current.and_then(|s| s.capacity));
        if capacity == Some(0) {
            return Err(invalid("a capacity is at least 1 (lock the zone to keep everyone out)"));
        }
        let action = Moderation::SetZone { zone: zone.to_owned(), locked, capacity };
        let inside = self.in_world(world, action).await?;
        let setting = ZoneSetting {
            workspace: self.workspace.clone(),
            world: world.to_owned(),
            zone: zone.to_owned(),
            locked,
            capacity,
            updated_by: actor.user.clone(),
            updated_at: now,
        };
        self.metadata.set_zone_setting(&setting).await.map_err(database)?;
        let detail = format!(
            "{}, capacity {}",
            if locked { "locked" } else { "unlocked" },
            capacity.map_or("from the world file".to_owned(), |c| c.to_string())
        );
        Ok(Done::new(AdminReply::ZoneSet { locked, capacity, inside }, detail))
    }

    async fn move_user(&self, actor: &Actor, user: &str, world: &str, spawn: Option<String>, reason: &str) -> Outcome {
        let detail = format!("to {}", spawn.as_deref().unwrap_or("the default spawn point"));
        let (user, by, reason) = (user.to_owned(), actor.name.clone(), reason.to_owned());
        let moved = self.in_world(world, Moderation::MoveToSpawn { user, spawn, by, reason }).await?;
        if moved == 0 {
            return Err(AdminError::new(AdminErrorCode::UserNotPresent, "this user is not in that world"));
        }
        Ok(Done::new(AdminReply::Moved { moved }, detail))
    }

    async fn notice(&self, actor: &Actor, world: &str, zone: Option<String>, text: &str) -> Outcome {
        let (text, by) = (text.to_owned(), actor.name.clone());
        let reached = self.in_world(world, Moderation::Notice { zone, text, by }).await?;
        Ok(Done::new(AdminReply::NoticeShown { reached }, format!("{reached} people")))
    }

    /// Allows or forbids recording in a zone; everyone inside is told.
    async fn allow_recording(&self, actor: &Actor, world: &str, zone: &str, allowed: bool) -> Outcome {
        let (zone, by) = (zone.to_owned(), actor.name.clone());
        let reached = self.in_world(world, Moderation::AllowRecording { zone, allowed, by }).await?;
        let what = if allowed { "allowed" } else { "forbidden" };
        Ok(Done::new(AdminReply::NoticeShown { reached }, format!("recording {what}, {reached} people told")))
    }

    /// A new ingest key for a stage zone; the answer carries the key, the records only its
    /// hash.
    async fn create_ingest_key(&self, actor: &Actor, world: &str, zone: &str, name: &str, now: i64) -> Outcome {
        if !(1..=64).contains(&name.chars().count()) {
            return Err(invalid("name the stream in 1 to 64 characters: listeners see it"));
        }
        let stage = self.in_world(world, Moderation::CheckStage { zone: zone.to_owned() }).await?;
        if stage == 0 {
            return Err(invalid("ingest keys are for stage zones: the stream appears to its audience"));
        }
        let id = format!("{:016x}", rand::random::<u64>());
        // 256 random bits after the ID.
        let secret = format!("{:032x}{:032x}", rand::random::<u128>(), rand::random::<u128>());
        let key = format!("{}{id}.{secret}", crate::server::whip::KEY_PREFIX);
        let record = IngestKey {
            workspace: self.workspace.clone(),
            id: id.clone(),
            world: world.to_owned(),
            zone: zone.to_owned(),
            name: name.to_owned(),
            created_by: actor.user.clone(),
            created_at: now,
            revoked_at: None,
        };
        self.metadata.create_ingest_key(&record, &crate::server::whip::key_hash(&key)).await.map_err(database)?;
        let detail = format!("key {id} for {world}/{zone}");
        Ok(Done::new(AdminReply::IngestKeyCreated { id, key }, detail))
    }

    /// Revokes a key; a stream live with it ends.
    async fn revoke_ingest_key(&self, id: &str, now: i64) -> Outcome {
        let Some(key) = self.metadata.revoke_ingest_key(&self.workspace, id, now).await.map_err(database)? else {
            return Err(invalid("no ingest key in force has this ID"));
        };
        let ended =
            self.in_world(&key.world, Moderation::EndIngest { key: key.id.clone(), avatar: None }).await.unwrap_or(0)
                > 0;
        Ok(Done::plain(AdminReply::IngestKeyRevoked { revoked: key.id, ended }))
    }

    /// Moves everyone in the zone but the admin acting.
    async fn end_meeting(
        &self,
        actor: &Actor,
        world: &str,
        zone: &str,
        spawn: Option<String>,
        reason: &str,
    ) -> Outcome {
        let (zone, except) = (zone.to_owned(), Some(actor.user.clone()));
        let (by, reason) = (actor.name.clone(), reason.to_owned());
        let moved = self.in_world(world, Moderation::EndMeeting { zone, spawn, except, by, reason }).await?;
        Ok(Done::new(AdminReply::Moved { moved }, format!("{moved} people")))
    }

    /// Everyone here and, in a cluster, on the other nodes.
    async fn list_people(&self) -> Outcome {
        let mut people = self.local_people().await;
        if let Some(cluster) = &self.cluster {
            for reply in cluster.ask(None, ClusterRequest::People).await.map_err(internal)?.replies {
                if let ClusterReply::People(found) = reply {
                    people.extend(found);
                }
            }
        }
        people.sort_by(|a: &PersonInfo, b| (&a.world, a.avatar).cmp(&(&b.world, b.avatar)));
        Ok(Done::plain(AdminReply::People { people }))
    }

    async fn list_bans(&self, now: i64) -> Outcome {
        let bans = self.metadata.active_bans(&self.workspace, now).await.map_err(database)?;
        Ok(Done::plain(AdminReply::Bans { bans }))
    }

    async fn list_mutes(&self) -> Outcome {
        let mutes = self.metadata.mutes(&self.workspace).await.map_err(database)?;
        Ok(Done::plain(AdminReply::Mutes { mutes }))
    }

    async fn list_admins(&self) -> Outcome {
        let admins = self.metadata.admins(&self.workspace).await.map_err(database)?;
        Ok(Done::plain(AdminReply::Admins { admins }))
    }

    async fn list_zones(&self, world: &str) -> Outcome {
        if !self.worlds.contains_key(world) {
            return Err(AdminError::new(AdminErrorCode::UnknownWorld, "there is no world with this name"));
        }
        let settings = self.metadata.zone_settings(&self.workspace, world).await.map_err(database)?;
        let zones = settings
            .into_iter()
            .map(|s| ZoneSettingInfo { zone: s.zone, locked: s.locked, capacity: s.capacity, updated_by: s.updated_by })
            .collect();
        Ok(Done::plain(AdminReply::Zones { zones }))
    }

    async fn list_audit(&self, before: Option<i64>, limit: Option<u32>) -> Outcome {
        let limit = limit.unwrap_or(DEFAULT_AUDIT_PAGE);
        let entries = self.metadata.audit_log(&self.workspace, before, limit).await.map_err(database)?;
        Ok(Done::plain(AdminReply::Audit { entries }))
    }
}

/// The database's refusal to leave a workspace without admins, as an admin error.
fn refusing_last_admin(error: MetadataError) -> AdminError {
    match error {
        MetadataError::LastAdmin => AdminError::new(
            AdminErrorCode::LastAdmin,
            "the last admin of a workspace can be neither demoted nor banned",
        ),
        other => database(other),
    }
}
