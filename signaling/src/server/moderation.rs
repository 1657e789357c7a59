//! Admin commands, whichever way they came in (a WebSocket `admin` message or
//! `POST /v1/admin/commands`): checked, authorized, recorded, then carried out.
//!
//! The order matters. Arguments are checked first (a malformed command changes nothing
//! and is not audited). Then the actor's admin role is looked up in the database; a
//! refusal is audited with outcome `refused`. Persistent records (bans, mutes, roles,
//! zone settings) are written before the worlds act, so a world that loads later, or a
//! user who rejoins, already sees them. Every action that worked is audited with outcome
//! `done`. Moderation records live in the workspace's database ([`Metadata`]), which
//! signaling shares with the asset server.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use isoplane_metadata::{Ban, Metadata, MetadataError, Mute as MuteRecord, ZoneSetting};
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};

use super::cluster::{Cluster, ClusterReply, ClusterRequest};
use super::limits::RateLimit;
use super::world_task::{WorldCommand, unix_now};
use crate::auth::{JoinClaims, Role};
use crate::engine::{Moderation, ModerationError, Mute};
use crate::protocol::{
    AdminCommand, AdminError, AdminErrorCode, ErrorCode, MAX_AUDIT_PAGE, MAX_NOTICE_CHARS, MAX_REASON_CHARS, PersonInfo,
};

/// Longest user ID a command may name.
const MAX_USER_CHARS: usize = 128;
/// Commands an actor may send per second, and in a burst.
const COMMANDS_PER_SECOND: u32 = 5;
const COMMAND_BURST: u32 = 20;
/// Actors whose rate is tracked before the table is cleared.
const MAX_TRACKED_ACTORS: usize = 10_000;

/// Who sends a command, from their verified token.
#[derive(Debug, Clone)]
pub struct Actor {
    pub user: String,
    pub name: String,
    /// The identity provider made this token an admin one (see `Metadata::admin_status`).
    pub token_says_admin: bool,
}

impl Actor {
    pub fn from_claims(claims: &JoinClaims) -> Actor {
        Actor { user: claims.sub.clone(), name: claims.name.clone(), token_says_admin: claims.role == Role::Admin }
    }
}

/// What a joining user is, as recorded.
#[derive(Debug, Clone, Copy)]
pub struct Standing {
    pub role: Role,
    pub mute: Mute,
}

/// Carries out admin commands for one workspace across this server's worlds.
pub struct Moderator {
    metadata: Metadata,
    workspace: String,
    worlds: HashMap<String, mpsc::Sender<WorldCommand>>,
    /// The other nodes, whose worlds commands must reach too.
    cluster: Option<Arc<Cluster>>,
    rates: Mutex<HashMap<String, RateLimit>>,
}

impl std::fmt::Debug for Moderator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Moderator").field("workspace", &self.workspace).finish()
    }
}

fn internal(error: impl std::fmt::Display) -> AdminError {
    tracing::error!(%error, "an admin command failed");
    AdminError::new(AdminErrorCode::Internal, "the server failed to carry this out; try again")
}

fn invalid(message: impl Into<String>) -> AdminError {
    AdminError::new(AdminErrorCode::InvalidCommand, message)
}

fn from_engine(error: ModerationError) -> AdminError {
    let code = match error {
        ModerationError::UnknownZone => AdminErrorCode::UnknownZone,
        ModerationError::UnknownSpawn => AdminErrorCode::UnknownSpawn,
        ModerationError::SpawnInZone => AdminErrorCode::InvalidCommand,
    };
    AdminError::new(code, error.to_string())
}

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

fn check_reason(reason: &str) -> Result<(), AdminError> {
    if reason.chars().count() > MAX_REASON_CHARS {
        return Err(invalid(format!("the reason is longer than {MAX_REASON_CHARS} characters")));
    }
    Ok(())
}

/// Checks what can be checked without the database or the worlds.
fn check(command: &AdminCommand) -> Result<(), AdminError> {
    match command {
        AdminCommand::Kick { user, reason }
        | AdminCommand::Unban { user, reason }
        | AdminCommand::Promote { user, reason }
        | AdminCommand::Demote { user, reason }
        | AdminCommand::Ban { user, reason, .. } => {
            check_user(user)?;
            check_reason(reason)
        }
        AdminCommand::MoveUser { user, world, reason, .. } => {
            check_user(user)?;
            check_name(world)?;
            check_reason(reason)
        }
        AdminCommand::Mute { user, audio, video, reason } | AdminCommand::Unmute { user, audio, video, reason } => {
            check_user(user)?;
            check_reason(reason)?;
            if !audio && !video {
                return Err(invalid("say which to change: audio, video or both"));
            }
            Ok(())
        }
        AdminCommand::LockZone { world, zone, reason }
        | AdminCommand::UnlockZone { world, zone, reason }
        | AdminCommand::SetZoneCapacity { world, zone, reason, .. }
        | AdminCommand::EndMeeting { world, zone, reason, .. } => {
            check_name(world)?;
            check_name(zone)?;
            check_reason(reason)
        }
        AdminCommand::Notice { world, zone, text } => {
            check_name(world)?;
            if let Some(zone) = zone {
                check_name(zone)?;
            }
            let length = text.trim().chars().count();
            if length == 0 || length > MAX_NOTICE_CHARS {
                return Err(invalid(format!("a notice is 1 to {MAX_NOTICE_CHARS} characters")));
            }
            Ok(())
        }
        AdminCommand::ListAudit { limit, .. } => {
            if limit.is_some_and(|limit| limit == 0 || limit > MAX_AUDIT_PAGE) {
                return Err(invalid(format!("limit is 1 to {MAX_AUDIT_PAGE}")));
            }
            Ok(())
        }
        AdminCommand::ListPeople | AdminCommand::ListBans | AdminCommand::ListMutes | AdminCommand::ListAdmins => {
            Ok(())
        }
        AdminCommand::ListZones { world } => check_name(world),
    }
}

/// Who or what a command acts on, for the audit log.
fn target_of(command: &AdminCommand) -> String {
    match command {
        AdminCommand::Kick { user, .. }
        | AdminCommand::Mute { user, .. }
        | AdminCommand::Unmute { user, .. }
        | AdminCommand::Ban { user, .. }
        | AdminCommand::Unban { user, .. }
        | AdminCommand::Promote { user, .. }
        | AdminCommand::Demote { user, .. }
        | AdminCommand::MoveUser { user, .. } => user.clone(),
        AdminCommand::LockZone { world, zone, .. }
        | AdminCommand::UnlockZone { world, zone, .. }
        | AdminCommand::SetZoneCapacity { world, zone, .. }
        | AdminCommand::EndMeeting { world, zone, .. } => format!("{world}/{zone}"),
        AdminCommand::Notice { world, zone: Some(zone), .. } => format!("{world}/{zone}"),
        AdminCommand::Notice { world, zone: None, .. } => world.clone(),
        AdminCommand::ListPeople
        | AdminCommand::ListBans
        | AdminCommand::ListMutes
        | AdminCommand::ListAdmins
        | AdminCommand::ListAudit { .. } => String::new(),
        AdminCommand::ListZones { world } => world.clone(),
    }
}

fn reason_of(command: &AdminCommand) -> String {
    match command {
        AdminCommand::Kick { reason, .. }
        | AdminCommand::Mute { reason, .. }
        | AdminCommand::Unmute { reason, .. }
        | AdminCommand::Ban { reason, .. }
        | AdminCommand::Unban { reason, .. }
        | AdminCommand::Promote { reason, .. }
        | AdminCommand::Demote { reason, .. }
        | AdminCommand::LockZone { reason, .. }
        | AdminCommand::UnlockZone { reason, .. }
        | AdminCommand::SetZoneCapacity { reason, .. }
        | AdminCommand::MoveUser { reason, .. }
        | AdminCommand::EndMeeting { reason, .. } => reason.clone(),
        AdminCommand::Notice { text, .. } => text.clone(),
        _ => String::new(),
    }
}

impl Moderator {
    pub fn new(
        metadata: Metadata,
        workspace: String,
        worlds: HashMap<String, mpsc::Sender<WorldCommand>>,
        cluster: Option<Arc<Cluster>>,
    ) -> Self {
        Moderator { metadata, workspace, worlds, cluster, rates: Mutex::new(HashMap::new()) }
    }

    /// Applies the zone settings recorded for a world to its engine here (when this node
    /// takes the world over: another node may have changed them meanwhile).
    pub async fn refresh_zones(&self, world: &str) {
        let settings = match self.metadata.zone_settings(&self.workspace, world).await {
            Ok(settings) => settings,
            Err(error) => {
                tracing::error!(%error, world, "cannot read the world's zone settings");
                return;
            }
        };
        // What this node applied when it served the world before may have been lifted since.
        let _ = self.local_in_world(world, Moderation::ClearZones).await;
        for setting in settings {
            let action = Moderation::SetZone { zone: setting.zone, locked: setting.locked, capacity: setting.capacity };
            let _ = self.local_in_world(world, action).await;
        }
    }

    /// Whether the user may enter, and with what role and mute. A ban refuses the join;
    /// so does a database that cannot answer (bans must hold).
    pub async fn standing(&self, claims: &JoinClaims) -> Result<Standing, ErrorCode> {
        let now = unix_now() as i64;
        let database = |error: MetadataError| {
            tracing::error!(%error, "cannot read moderation records for a join");
            ErrorCode::Internal
        };
        if self.metadata.active_ban(&self.workspace, &claims.sub, now).await.map_err(database)?.is_some() {
            return Err(ErrorCode::Banned);
        }
        let admin = self
            .metadata
            .admin_status(&self.workspace, &claims.sub, claims.role == Role::Admin, now)
            .await
            .map_err(database)?;
        let mute = self.metadata.mute_of(&self.workspace, &claims.sub).await.map_err(database)?;
        Ok(Standing {
            role: if admin { Role::Admin } else { Role::Member },
            mute: mute.map_or(Mute::default(), |m| Mute { audio: m.audio, video: m.video }),
        })
    }

    /// Reads a user's records again after their avatar entered `world` and applies what
    /// changed since `before` was read: a ban removes the avatar (and refuses the join).
    pub async fn recheck(&self, claims: &JoinClaims, before: Standing, world: &str) -> Result<(), ErrorCode> {
        let (user, by) = (claims.sub.clone(), "an admin".to_owned());
        let now = match self.standing(claims).await {
            Ok(now) => now,
            Err(code) => {
                let action = Moderation::Remove { user, banned: code == ErrorCode::Banned, by, reason: String::new() };
                let _ = self.local_in_world(world, action).await;
                return Err(code);
            }
        };
        if now.mute != before.mute {
            let action = Moderation::SetMute { user: user.clone(), mute: now.mute, by, reason: String::new() };
            let _ = self.local_in_world(world, action).await;
        }
        if now.role != before.role {
            let _ = self.local_in_world(world, Moderation::SetRole { user, role: now.role }).await;
        }
        Ok(())
    }

    fn rate_allows(&self, actor: &str) -> bool {
        let Ok(mut rates) = self.rates.lock() else { return false };
        if rates.len() >= MAX_TRACKED_ACTORS && !rates.contains_key(actor) {
            rates.clear();
        }
        let now = Instant::now();
        rates
            .entry(actor.to_owned())
            .or_insert_with(|| RateLimit::new(COMMANDS_PER_SECOND, COMMAND_BURST, now))
            .allow(now)
    }

    /// Runs one command for `actor`: its result's data, or why not.
    pub async fn execute(&self, actor: &Actor, command: AdminCommand) -> Result<Value, AdminError> {
        if !self.rate_allows(&actor.user) {
            return Err(AdminError::new(AdminErrorCode::RateLimited, "too many admin commands: slow down"));
        }
        check(&command)?;
        let now = unix_now() as i64;
        // A banned user acts as nobody, whatever their token says.
        let banned = self.metadata.active_ban(&self.workspace, &actor.user, now).await.map_err(internal)?.is_some();
        let admin = !banned
            && self
                .metadata
                .admin_status(&self.workspace, &actor.user, actor.token_says_admin, now)
                .await
                .map_err(internal)?;
        if !admin {
            tracing::warn!(actor = %actor.user, action = command.name(), "refused an admin command from a non-admin");
            self.audit(actor, &command, "refused", String::new(), now).await?;
            return Err(AdminError::new(AdminErrorCode::Forbidden, "only admins of this workspace may do this"));
        }
        let (data, detail) = self.carry_out(actor, &command, now).await?;
        if !command.is_query() {
            self.audit(actor, &command, "done", detail, now).await?;
        }
        Ok(data)
    }

    async fn audit(
        &self,
        actor: &Actor,
        command: &AdminCommand,
        outcome: &str,
        detail: String,
        now: i64,
    ) -> Result<(), AdminError> {
        let entry = isoplane_metadata::AuditEntry {
            id: 0,
            workspace: self.workspace.clone(),
            actor: actor.user.clone(),
            action: command.name().to_owned(),
            target: target_of(command),
            reason: reason_of(command),
            created_at: now,
            outcome: outcome.to_owned(),
            detail,
        };
        self.metadata.record_audit(&entry).await.map_err(internal)?;
        Ok(())
    }

    /// Does the command; returns its data and the audit entry's detail.
    async fn carry_out(&self, actor: &Actor, command: &AdminCommand, now: i64) -> Result<(Value, String), AdminError> {
        let workspace = self.workspace.as_str();
        let by = actor.name.clone();
        match command.clone() {
            AdminCommand::Kick { user, reason } => {
                let reached = self
                    .everywhere(|| Moderation::Remove {
                        user: user.clone(),
                        banned: false,
                        by: by.clone(),
                        reason: reason.clone(),
                    })
                    .await?;
                if reached.worlds == 0 && reached.unanswered == 0 {
                    return Err(AdminError::new(AdminErrorCode::UserNotPresent, "this user is in none of the worlds"));
                }
                Ok((json!({ "worlds": reached.worlds, "nodes_unanswered": reached.unanswered }), String::new()))
            }
            AdminCommand::Mute { user, audio, video, reason } | AdminCommand::Unmute { user, audio, video, reason } => {
                let muting = matches!(command, AdminCommand::Mute { .. });
                let before = self.metadata.mute_of(workspace, &user).await.map_err(internal)?;
                let before = before.map_or(Mute::default(), |m| Mute { audio: m.audio, video: m.video });
                let mute = Mute {
                    audio: if audio { muting } else { before.audio },
                    video: if video { muting } else { before.video },
                };
                let record = MuteRecord {
                    workspace: workspace.to_owned(),
                    user_id: user.clone(),
                    audio: mute.audio,
                    video: mute.video,
                    reason: reason.clone(),
                    created_by: actor.user.clone(),
                    created_at: now,
                };
                self.metadata.set_mute(&record).await.map_err(internal)?;
                let reached = self
                    .everywhere(|| Moderation::SetMute {
                        user: user.clone(),
                        mute,
                        by: by.clone(),
                        reason: reason.clone(),
                    })
                    .await?;
                let kinds = match (audio, video) {
                    (true, true) => "audio and video",
                    (true, false) => "audio",
                    _ => "video",
                };
                Ok((
                    json!({
                        "audio_muted": mute.audio,
                        "video_muted": mute.video,
                        "worlds": reached.worlds,
                        "nodes_unanswered": reached.unanswered,
                    }),
                    kinds.to_owned(),
                ))
            }
            AdminCommand::Ban { user, reason, duration_seconds } => {
                let expires_at =
                    duration_seconds.map(|seconds| now.saturating_add(i64::try_from(seconds).unwrap_or(i64::MAX)));
                let ban = Ban {
                    workspace: workspace.to_owned(),
                    user_id: user.clone(),
                    reason: reason.clone(),
                    created_by: actor.user.clone(),
                    created_at: now,
                    expires_at,
                };
                self.metadata.ban_user(&ban).await.map_err(|error| match error {
                    MetadataError::LastAdmin => last_admin(),
                    other => internal(other),
                })?;
                let reached = self
                    .everywhere(|| Moderation::Remove {
                        user: user.clone(),
                        banned: true,
                        by: by.clone(),
                        reason: reason.clone(),
                    })
                    .await?;
                let detail = duration_seconds.map_or("until lifted".to_owned(), |s| format!("for {s} s"));
                let data = json!({
                    "expires_at": expires_at,
                    "worlds": reached.worlds,
                    "nodes_unanswered": reached.unanswered,
                });
                Ok((data, detail))
            }
            AdminCommand::Unban { user, .. } => {
                let lifted = self.metadata.lift_ban(workspace, &user).await.map_err(internal)?;
                Ok((json!({ "lifted": lifted }), if lifted { String::new() } else { "was not banned".to_owned() }))
            }
            AdminCommand::Promote { user, .. } => {
                let promoted = self.metadata.promote(workspace, &user, &actor.user, now).await.map_err(internal)?;
                self.everywhere(|| Moderation::SetRole { user: user.clone(), role: Role::Admin }).await?;
                Ok((json!({ "changed": promoted }), String::new()))
            }
            AdminCommand::Demote { user, .. } => {
                let demoted =
                    self.metadata.demote(workspace, &user, &actor.user, now).await.map_err(|error| match error {
                        MetadataError::LastAdmin => last_admin(),
                        other => internal(other),
                    })?;
                self.everywhere(|| Moderation::SetRole { user: user.clone(), role: Role::Member }).await?;
                Ok((json!({ "changed": demoted }), String::new()))
            }
            AdminCommand::LockZone { world, zone, .. } => {
                self.set_zone(actor, &world, &zone, Some(true), None, now).await
            }
            AdminCommand::UnlockZone { world, zone, .. } => {
                self.set_zone(actor, &world, &zone, Some(false), None, now).await
            }
            AdminCommand::SetZoneCapacity { world, zone, capacity, .. } => {
                self.set_zone(actor, &world, &zone, None, Some(capacity), now).await
            }
            AdminCommand::MoveUser { user, world, spawn, reason } => {
                let detail = format!("to {}", spawn.as_deref().unwrap_or("the default spawn point"));
                let reached = self.in_world(&world, Moderation::MoveToSpawn { user, spawn, by, reason }).await?;
                if reached == 0 {
                    return Err(AdminError::new(AdminErrorCode::UserNotPresent, "this user is not in that world"));
                }
                Ok((json!({ "moved": reached }), detail))
            }
            AdminCommand::Notice { world, zone, text } => {
                let reached = self.in_world(&world, Moderation::Notice { zone, text, by }).await?;
                Ok((json!({ "reached": reached }), format!("{reached} people")))
            }
            AdminCommand::EndMeeting { world, zone, spawn, reason } => {
                let except = Some(actor.user.clone());
                let reached = self.in_world(&world, Moderation::EndMeeting { zone, spawn, except, by, reason }).await?;
                Ok((json!({ "moved": reached }), format!("{reached} people")))
            }
            AdminCommand::ListPeople => {
                let mut people = self.local_people().await;
                if let Some(cluster) = &self.cluster {
                    for reply in cluster.ask(None, ClusterRequest::People).await.map_err(internal)?.replies {
                        if let ClusterReply::People(found) = reply {
                            people.extend(found);
                        }
                    }
                }
                people.sort_by(|a: &PersonInfo, b| (&a.world, a.avatar).cmp(&(&b.world, b.avatar)));
                Ok((json!({ "people": people }), String::new()))
            }
            AdminCommand::ListBans => {
                let bans = self.metadata.active_bans(workspace, now).await.map_err(internal)?;
                Ok((json!({ "bans": bans }), String::new()))
            }
            AdminCommand::ListMutes => {
                let mutes = self.metadata.mutes(workspace).await.map_err(internal)?;
                Ok((json!({ "mutes": mutes }), String::new()))
            }
            AdminCommand::ListAdmins => {
                let admins = self.metadata.admins(workspace).await.map_err(internal)?;
                Ok((json!({ "admins": admins }), String::new()))
            }
            AdminCommand::ListZones { world } => {
                if !self.worlds.contains_key(&world) {
                    return Err(AdminError::new(AdminErrorCode::UnknownWorld, "there is no world with this name"));
                }
                let settings = self.metadata.zone_settings(workspace, &world).await.map_err(internal)?;
                let zones: Vec<Value> = settings
                    .iter()
                    .map(|s| json!({"zone": s.zone, "locked": s.locked, "capacity": s.capacity, "updated_by": s.updated_by}))
                    .collect();
                Ok((json!({ "zones": zones }), String::new()))
            }
            AdminCommand::ListAudit { before, limit } => {
                let limit = limit.unwrap_or(100);
                let entries = self.metadata.audit_log(workspace, before, limit).await.map_err(internal)?;
                Ok((json!({ "entries": entries }), String::new()))
            }
        }
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
    ) -> Result<(Value, String), AdminError> {
        let recorded = self.metadata.zone_settings(&self.workspace, world).await.map_err(internal)?;
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
        self.metadata.set_zone_setting(&setting).await.map_err(internal)?;
        let detail = format!(
            "{}, capacity {}",
            if locked { "locked" } else { "unlocked" },
            capacity.map_or("from the world file".to_owned(), |c| c.to_string())
        );
        Ok((json!({ "locked": locked, "capacity": capacity, "inside": inside }), detail))
    }

    /// Runs an action in one world, wherever it is served.
    async fn in_world(&self, world: &str, action: Moderation) -> Result<usize, AdminError> {
        if !self.worlds.contains_key(world) {
            return Err(AdminError::new(AdminErrorCode::UnknownWorld, "there is no world with this name"));
        }
        if let Some(cluster) = &self.cluster
            && let Some(owner) = cluster.remote_owner(world).await.map_err(internal)?
        {
            let request = ClusterRequest::Moderate { world: Some(world.to_owned()), action };
            return match cluster.ask(Some(&owner), request).await.map_err(internal)?.replies.pop() {
                Some(ClusterReply::Moderated(result)) => result.map_err(from_engine),
                _ => Err(internal(format!("node {owner}, which serves {world}, did not answer"))),
            };
        }
        self.local_in_world(world, action).await.map_err(from_engine)
    }

    /// Runs an action in every world of every node; returns in how many it reached someone,
    /// and how many nodes did not answer.
    async fn everywhere(&self, action: impl Fn() -> Moderation) -> Result<Reach, AdminError> {
        let mut reach = Reach { worlds: self.local_everywhere(action()).await.map_err(from_engine)?, unanswered: 0 };
        if let Some(cluster) = &self.cluster {
            let request = ClusterRequest::Moderate { world: None, action: action() };
            let answers = cluster.ask(None, request).await.map_err(internal)?;
            reach.unanswered = answers.unanswered;
            for reply in answers.replies {
                if let ClusterReply::Moderated(result) = reply {
                    reach.worlds += result.map_err(from_engine)?;
                }
            }
        }
        Ok(reach)
    }

    /// Runs an action in one of this node's worlds (none reached if it is not here).
    pub async fn local_in_world(&self, world: &str, action: Moderation) -> Result<usize, ModerationError> {
        let Some(commands) = self.worlds.get(world) else { return Ok(0) };
        let (reply, answer) = oneshot::channel();
        if commands.send(WorldCommand::Moderate { action, reply }).await.is_err() {
            return Ok(0);
        }
        answer.await.unwrap_or(Ok(0))
    }

    /// Runs an action in every world of this node; returns in how many it reached someone.
    pub async fn local_everywhere(&self, action: Moderation) -> Result<usize, ModerationError> {
        let mut reached = 0;
        for world in self.worlds.keys() {
            if self.local_in_world(world, action.clone()).await? > 0 {
                reached += 1;
            }
        }
        Ok(reached)
    }

    /// Everyone in this node's worlds.
    pub async fn local_people(&self) -> Vec<PersonInfo> {
        let mut people = Vec::new();
        for commands in self.worlds.values() {
            let (reply, answer) = oneshot::channel();
            if commands.send(WorldCommand::People { reply }).await.is_ok()
                && let Ok(found) = answer.await
            {
                people.extend(found);
            }
        }
        people
    }
}

/// Where an action on a user went.
#[derive(Debug, Clone, Copy)]
struct Reach {
    /// Worlds where the user was reached.
    worlds: usize,
    /// Nodes that did not answer in time: the user may be there, and gets the recorded
    /// ban or mute when they next join.
    unanswered: usize,
}

fn last_admin() -> AdminError {
    AdminError::new(AdminErrorCode::LastAdmin, "the last admin of a workspace can be neither demoted nor banned")
}
