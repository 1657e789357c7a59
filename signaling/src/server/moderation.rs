//! Admin commands, whichever way they came in (a WebSocket `admin` message or
//! `POST /v1/admin/commands`): checked, authorized, recorded, then carried out.
//!
//! The order matters. Arguments are checked first (a malformed command changes nothing
//! and is not audited). Then the actor's admin role is looked up in the database; a
//! refusal is audited with outcome `refused`. Persistent records (bans, mutes, roles,
//! zone settings) are written before the worlds act, so a world that loads later, or a
//! user who rejoins, already sees them. Every action that worked is audited with outcome
//! `done`. Moderation records live in the workspace's database ([`Metadata`]), which
//! signaling shares with the asset server. Each command's own work is in
//! `moderation/commands.rs`; this file holds the order above and the fan-out to worlds.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use isoplane_metadata::{Metadata, MetadataError};
use tokio::sync::{mpsc, oneshot};

use super::cluster::{Cluster, ClusterReply, ClusterRequest};
use super::limits::RateLimit;
use super::world_task::{WorldCommand, unix_now};
use crate::auth::{JoinClaims, Role};
use crate::engine::{LateKick, Moderation, ModerationError, Mute};
use crate::protocol::{AdminCommand, AdminError, AdminErrorCode, AdminReply, ErrorCode, PersonInfo, Reach};

mod commands;
/// Commands an actor may send per second, and in a burst.
const COMMANDS_PER_SECOND: u32 = 5;
const COMMAND_BURST: u32 = 20;
/// Actors whose rate is tracked before the table is cleared.
const MAX_TRACKED_ACTORS: usize = 10_000;
/// The audit log's name for a kick (as `AdminCommand::name` spells it).
const KICK: &str = "kick";
/// Who late corrections name as their author (the audit log says who it was).
const LATE_AUTHOR: &str = "an admin";

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
    pub chat_muted: bool,
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

/// A moderation record could not be read or written: a database that does not answer
/// is said so (the caller may retry), anything else is internal.
fn database(error: MetadataError) -> AdminError {
    if error.is_unavailable() {
        tracing::warn!(%error, "an admin command failed: the database does not answer");
        return AdminError::new(
            AdminErrorCode::DatabaseUnavailable,
            "the database does not answer: nothing was changed; try again later",
        );
    }
    internal(error)
}

fn invalid(message: impl Into<String>) -> AdminError {
    AdminError::new(AdminErrorCode::InvalidCommand, message)
}

fn from_engine(error: ModerationError) -> AdminError {
    let code = match error {
        ModerationError::UnknownZone => AdminErrorCode::UnknownZone,
        ModerationError::UnknownSpawn => AdminErrorCode::UnknownSpawn,
        ModerationError::SpawnInZone => AdminErrorCode::InvalidCommand,
        ModerationError::UnknownMessage => AdminErrorCode::UnknownMessage,
    };
    AdminError::new(code, error.to_string())
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
        let records = self.metadata.standing(&self.workspace, &claims.sub, now).await.map_err(database)?;
        if records.banned {
            return Err(ErrorCode::Banned);
        }
        // Only an admin token not yet stored as one needs the longer path, which stores
        // the identity provider's grant.
        let token_says_admin = claims.role == Role::Admin;
        let admin = if records.listed_admin || !token_says_admin || records.demoted {
            records.listed_admin
        } else {
            self.metadata.admin_status(&self.workspace, &claims.sub, true, now).await.map_err(database)?
        };
        Ok(Standing {
            // Building is the token's grant alone: the admins table does not record it.
            role: if admin {
                Role::Admin
            } else if claims.role == Role::Builder {
                Role::Builder
            } else {
                Role::Member
            },
            mute: Mute { audio: records.audio_muted, video: records.video_muted },
            chat_muted: records.chat_muted,
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
            let action =
                Moderation::SetMute { user: user.clone(), mute: now.mute, by: by.clone(), reason: String::new() };
            let _ = self.local_in_world(world, action).await;
        }
        if now.chat_muted != before.chat_muted {
            let action =
                Moderation::SetChatMute { user: user.clone(), muted: now.chat_muted, by, reason: String::new() };
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

    /// Runs one command for `actor`: its reply, or why not.
    pub async fn execute(&self, actor: &Actor, command: AdminCommand) -> Result<AdminReply, AdminError> {
        if !self.rate_allows(&actor.user) {
            return Err(AdminError::new(AdminErrorCode::RateLimited, "too many admin commands: slow down"));
        }
        commands::check(&command)?;
        let now = unix_now() as i64;
        // A banned user acts as nobody, whatever their token says.
        let banned = self.metadata.active_ban(&self.workspace, &actor.user, now).await.map_err(database)?.is_some();
        let admin = !banned
            && self
                .metadata
                .admin_status(&self.workspace, &actor.user, actor.token_says_admin, now)
                .await
                .map_err(database)?;
        if !admin {
            tracing::warn!(actor = %actor.user, action = command.name(), "refused an admin command from a non-admin");
            self.audit(actor, &command, "refused", command.target(), String::new(), now).await?;
            return Err(AdminError::new(AdminErrorCode::Forbidden, "only admins of this workspace may do this"));
        }
        let done = self.carry_out(actor, &command, now).await?;
        if !command.is_query() {
            let target = done.target.unwrap_or_else(|| command.target());
            self.audit(actor, &command, "done", target, done.detail, now).await?;
        }
        Ok(done.reply)
    }

    async fn audit(
        &self,
        actor: &Actor,
        command: &AdminCommand,
        outcome: &str,
        target: String,
        detail: String,
        now: i64,
    ) -> Result<(), AdminError> {
        let entry = isoplane_metadata::AuditEntry {
            id: 0,
            workspace: self.workspace.clone(),
            actor: actor.user.clone(),
            action: command.name().to_owned(),
            target,
            reason: command.reason().to_owned(),
            created_at: now,
            outcome: outcome.to_owned(),
            detail,
        };
        self.metadata.record_audit(&entry).await.map_err(database)?;
        Ok(())
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
        let worlds = self.local_everywhere(action()).await.map_err(from_engine)?;
        let mut reach = Reach { worlds, nodes_unanswered: 0 };
        if let Some(cluster) = &self.cluster {
            let request = ClusterRequest::Moderate { world: None, action: action() };
            let answers = cluster.ask(None, request).await.map_err(internal)?;
            reach.nodes_unanswered = answers.unanswered;
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

    /// Removes from this node's worlds everyone an active ban names; returns how many
    /// avatars it removed. A ban command removes its user at once everywhere it reaches;
    /// this pass, run periodically, catches the nodes it did not reach (cluster messages
    /// are at-most-once) and bans written by another process sharing the database.
    pub async fn enforce_bans(&self) -> Result<usize, MetadataError> {
        let people = self.local_people().await;
        if people.is_empty() {
            return Ok(0);
        }
        let bans = self.metadata.active_bans(&self.workspace, unix_now() as i64).await?;
        let reasons: HashMap<&str, &str> = bans.iter().map(|b| (b.user_id.as_str(), b.reason.as_str())).collect();
        let mut removed = 0;
        for person in people {
            let Some(reason) = reasons.get(person.user.as_str()) else { continue };
            let (by, reason) = (LATE_AUTHOR.to_owned(), (*reason).to_owned());
            let action = Moderation::Remove { user: person.user, banned: true, by, reason };
            removed += self.local_in_world(&person.world, action).await.unwrap_or(0);
        }
        Ok(removed)
    }

    /// Removes from this node's worlds everyone a kick recorded in the audit log names and
    /// whose session joined before that kick; returns how many avatars it removed. Like
    /// [`Moderator::enforce_bans`], it catches the nodes a kick command did not reach.
    /// Audit times are whole seconds: a kick logged at second T counts from T·1000 ms, so
    /// a session that joined earlier within that second is not removed (nor is anyone
    /// who came back after the kick).
    pub async fn enforce_kicks(&self) -> Result<usize, MetadataError> {
        let mut oldest: Option<i64> = None;
        for commands in self.worlds.values() {
            let (reply, answer) = oneshot::channel();
            if commands.send(WorldCommand::OldestJoin { reply }).await.is_ok()
                && let Ok(Some(joined)) = answer.await
            {
                oldest = Some(oldest.map_or(joined, |o| o.min(joined)));
            }
        }
        // Kicks older than every session here concern nobody here.
        let Some(oldest) = oldest else { return Ok(0) };
        let entries = self.metadata.actions_since(&self.workspace, KICK, oldest.div_euclid(1000)).await?;
        if entries.is_empty() {
            return Ok(0);
        }
        // Oldest first: a user's latest kick wins.
        let kicks: HashMap<String, LateKick> = entries
            .into_iter()
            .map(|entry| (entry.target, LateKick { at: entry.created_at.saturating_mul(1000), reason: entry.reason }))
            .collect();
        let kicks = Arc::new(kicks);
        let mut removed = 0;
        for commands in self.worlds.values() {
            let (reply, answer) = oneshot::channel();
            if commands.send(WorldCommand::EnforceKicks { kicks: kicks.clone(), reply }).await.is_ok() {
                removed += answer.await.unwrap_or(0);
            }
        }
        Ok(removed)
    }

    /// Gives everyone in this node's worlds the mute recorded for them, where it differs
    /// (a mute or unmute command that missed this node); returns how many avatars changed.
    pub async fn enforce_mutes(&self) -> Result<usize, MetadataError> {
        let people = self.local_people().await;
        if people.is_empty() {
            return Ok(0);
        }
        let records = self.metadata.mutes(&self.workspace).await?;
        let recorded: HashMap<&str, (Mute, bool, &str)> = records
            .iter()
            .map(|m| (m.user_id.as_str(), (Mute { audio: m.audio, video: m.video }, m.chat, m.reason.as_str())))
            .collect();
        let mut changed = 0;
        for person in people {
            let (mute, chat_muted, reason) = recorded.get(person.user.as_str()).copied().unwrap_or_default();
            if chat_muted != person.chat_muted {
                let (by, reason) = (LATE_AUTHOR.to_owned(), reason.to_owned());
                let action = Moderation::SetChatMute { user: person.user.clone(), muted: chat_muted, by, reason };
                changed += self.local_in_world(&person.world, action).await.unwrap_or(0);
            }
            if mute == (Mute { audio: person.audio_muted, video: person.video_muted }) {
                continue;
            }
            let (by, reason) = (LATE_AUTHOR.to_owned(), reason.to_owned());
            let action = Moderation::SetMute { user: person.user, mute, by, reason };
            changed += self.local_in_world(&person.world, action).await.unwrap_or(0);
        }
        Ok(changed)
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
