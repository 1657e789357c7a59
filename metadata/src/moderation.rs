//! Moderation records: bans, mutes, zone settings changed inside Isoplane, and the audit
//! log of who did what.
//!
//! Mutes and zone settings are stored only while they differ from the default: a mute
//! with neither audio nor video, or a zone setting that is unlocked with no capacity of
//! its own, deletes the row, so "no row" always means "as the world file says".

use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use crate::admins::{ensure_workspace, lock_workspace, record_demotion, remove_admin_unless_last};
use crate::{Metadata, MetadataError, Result, flag_from_sql, flag_to_sql};

/// A user barred from a workspace.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Ban {
    pub workspace: String,
    pub user_id: String,
    pub reason: String,
    pub created_by: String,
    pub created_at: i64,
    /// None: until lifted.
    pub expires_at: Option<i64>,
}

/// Media (and chat) a moderator turned off for a user in a workspace.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Mute {
    pub workspace: String,
    pub user_id: String,
    /// The microphone is muted.
    pub audio: bool,
    /// The camera is muted.
    pub video: bool,
    /// Nothing the user writes in the chat is sent.
    #[serde(default)]
    pub chat: bool,
    pub reason: String,
    pub created_by: String,
    pub created_at: i64,
}

/// A user's records as a join reads them ([`Metadata::standing`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct UserStanding {
    pub banned: bool,
    /// In the admins table (promoted, or an identity provider's grant already stored).
    pub listed_admin: bool,
    /// Demoted inside Isoplane: a join token saying `admin` no longer grants it.
    pub demoted: bool,
    pub audio_muted: bool,
    pub video_muted: bool,
    pub chat_muted: bool,
}

/// A zone's settings as changed inside Isoplane, over the world file's own.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ZoneSetting {
    pub workspace: String,
    /// The world's name in the workspace.
    pub world: String,
    /// The zone's ID in the world file.
    pub zone: String,
    pub locked: bool,
    /// None: the capacity the world file gives the zone.
    pub capacity: Option<u32>,
    pub updated_by: String,
    pub updated_at: i64,
}

/// An audit log entry: who did what to whom, when, why, and what came of it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AuditEntry {
    /// Increasing within a database; 0 for an entry not yet recorded.
    pub id: i64,
    pub workspace: String,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub reason: String,
    /// [`AuditEntry::DONE`], [`AuditEntry::REFUSED`] or [`AuditEntry::FAILED`].
    pub outcome: String,
    /// Particulars of the action, such as "audio", "capacity 4" or "world demo"; may be empty.
    pub detail: String,
    pub created_at: i64,
}

impl AuditEntry {
    /// The action took effect.
    pub const DONE: &'static str = "done";
    /// The action was not allowed (rights, limits, the last admin…) and changed nothing.
    pub const REFUSED: &'static str = "refused";
    /// The action was allowed but could not be carried out.
    pub const FAILED: &'static str = "failed";
}

fn ban_from_row(row: &AnyRow) -> Result<Ban> {
    Ok(Ban {
        workspace: row.try_get("workspace")?,
        user_id: row.try_get("user_id")?,
        reason: row.try_get("reason")?,
        created_by: row.try_get("created_by")?,
        created_at: row.try_get("created_at")?,
        expires_at: row.try_get("expires_at")?,
    })
}

fn mute_from_row(row: &AnyRow) -> Result<Mute> {
    Ok(Mute {
        workspace: row.try_get("workspace")?,
        user_id: row.try_get("user_id")?,
        audio: flag_from_sql("mutes", "audio", row.try_get("audio")?)?,
        video: flag_from_sql("mutes", "video", row.try_get("video")?)?,
        chat: flag_from_sql("mutes", "chat", row.try_get("chat")?)?,
        reason: row.try_get("reason")?,
        created_by: row.try_get("created_by")?,
        created_at: row.try_get("created_at")?,
    })
}

fn zone_setting_from_row(row: &AnyRow) -> Result<ZoneSetting> {
    let capacity: Option<i64> = row.try_get("capacity")?;
    let capacity = capacity
        .map(|value| {
            u32::try_from(value).map_err(|_| MetadataError::Corrupt {
                table: "zone_settings",
                column: "capacity",
                value: value.to_string(),
            })
        })
        .transpose()?;
    Ok(ZoneSetting {
        workspace: row.try_get("workspace")?,
        world: row.try_get("world")?,
        zone: row.try_get("zone")?,
        locked: flag_from_sql("zone_settings", "locked", row.try_get("locked")?)?,
        capacity,
        updated_by: row.try_get("updated_by")?,
        updated_at: row.try_get("updated_at")?,
    })
}

fn audit_from_row(row: &AnyRow) -> Result<AuditEntry> {
    Ok(AuditEntry {
        id: row.try_get("id")?,
        workspace: row.try_get("workspace")?,
        actor: row.try_get("actor")?,
        action: row.try_get("action")?,
        target: row.try_get("target")?,
        reason: row.try_get("reason")?,
        outcome: row.try_get("outcome")?,
        detail: row.try_get("detail")?,
        created_at: row.try_get("created_at")?,
    })
}

/// Replaces any earlier ban of the user by this one.
async fn write_ban(connection: &mut AnyConnection, ban: &Ban) -> Result<()> {
    sqlx::query("DELETE FROM bans WHERE workspace = $1 AND user_id = $2")
        .bind(ban.workspace.as_str())
        .bind(ban.user_id.as_str())
        .execute(&mut *connection)
        .await?;
    sqlx::query(
        "INSERT INTO bans (workspace, user_id, reason, created_by, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(ban.workspace.as_str())
    .bind(ban.user_id.as_str())
    .bind(ban.reason.as_str())
    .bind(ban.created_by.as_str())
    .bind(ban.created_at)
    .bind(ban.expires_at)
    .execute(connection)
    .await?;
    Ok(())
}

impl Metadata {
    // ---- bans ----

    /// Records a ban, replacing any earlier ban of that user. A plain record write that
    /// leaves admin rights alone; moderation actions use [`Metadata::ban_user`].
    pub async fn ban(&self, ban: &Ban) -> Result<()> {
        let mut transaction = self.pool.begin().await?;
        write_ban(&mut transaction, ban).await?;
        transaction.commit().await?;
        Ok(())
    }

    /// Bans a user as a moderation action, replacing any earlier ban of that user. A
    /// banned user is also demoted, admin or not (`demoted_by` the ban's author, for good:
    /// lifting the ban does not make them admin again, nor does an admin token). Refuses with [`MetadataError::LastAdmin`],
    /// changing nothing, if the user is the workspace's only admin. The workspace row is
    /// created if needed.
    pub async fn ban_user(&self, ban: &Ban) -> Result<()> {
        let mut transaction = self.pool.begin().await?;
        lock_workspace(&mut transaction, &ban.workspace, ban.created_at).await?;
        remove_admin_unless_last(&mut transaction, &ban.workspace, &ban.user_id).await?;
        // Recorded even for someone not (yet) in `admins`: an admin join token must not make
        // a banned user an admin later.
        record_demotion(&mut transaction, &ban.workspace, &ban.user_id, &ban.created_by, ban.created_at).await?;
        write_ban(&mut transaction, ban).await?;
        transaction.commit().await?;
        Ok(())
    }

    /// Lifts a ban; returns whether there was one.
    pub async fn lift_ban(&self, workspace: &str, user_id: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM bans WHERE workspace = $1 AND user_id = $2")
            .bind(workspace)
            .bind(user_id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// What a join needs to know of a user, in one round trip: banned at `now`, listed
    /// as an admin, demoted inside Isoplane, and what is muted. A reconnect storm after a
    /// restart reads this for everyone at once.
    pub async fn standing(&self, workspace: &str, user_id: &str, now: i64) -> Result<UserStanding> {
        let row = sqlx::query(
            "SELECT \
               (SELECT COUNT(*) FROM bans WHERE workspace = $1 AND user_id = $2 \
                  AND (expires_at IS NULL OR expires_at > $3)) AS bans, \
               (SELECT COUNT(*) FROM admins WHERE workspace = $1 AND user_id = $2) AS admins, \
               (SELECT COUNT(*) FROM admin_demotions WHERE workspace = $1 AND user_id = $2) AS demotions, \
               (SELECT audio FROM mutes WHERE workspace = $1 AND user_id = $2) AS audio, \
               (SELECT video FROM mutes WHERE workspace = $1 AND user_id = $2) AS video, \
               (SELECT chat FROM mutes WHERE workspace = $1 AND user_id = $2) AS chat",
        )
        .bind(workspace)
        .bind(user_id)
        .bind(now)
        .fetch_one(&self.pool)
        .await?;
        let count = |column: &str| row.try_get::<i64, _>(column).map(|n| n > 0);
        let flag = |column: &'static str| -> Result<bool> {
            let value: Option<i64> = row.try_get(column)?;
            value.map_or(Ok(false), |v| flag_from_sql("mutes", column, v))
        };
        Ok(UserStanding {
            banned: count("bans")?,
            listed_admin: count("admins")?,
            demoted: count("demotions")?,
            audio_muted: flag("audio")?,
            video_muted: flag("video")?,
            chat_muted: flag("chat")?,
        })
    }

    /// The ban in force on a user at `now`, if any.
    pub async fn active_ban(&self, workspace: &str, user_id: &str, now: i64) -> Result<Option<Ban>> {
        let row = sqlx::query(
            "SELECT workspace, user_id, reason, created_by, created_at, expires_at FROM bans \
             WHERE workspace = $1 AND user_id = $2 AND (expires_at IS NULL OR expires_at > $3)",
        )
        .bind(workspace)
        .bind(user_id)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| ban_from_row(&row)).transpose()
    }

    /// Every ban in force at `now` in a workspace, by user ID.
    pub async fn active_bans(&self, workspace: &str, now: i64) -> Result<Vec<Ban>> {
        let rows = sqlx::query(
            "SELECT workspace, user_id, reason, created_by, created_at, expires_at FROM bans \
             WHERE workspace = $1 AND (expires_at IS NULL OR expires_at > $2) ORDER BY user_id",
        )
        .bind(workspace)
        .bind(now)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(ban_from_row).collect()
    }

    // ---- mutes ----

    /// Records what is muted for a user, replacing the earlier record; with nothing
    /// muted (audio, video, chat), deletes it. The workspace row is created if needed.
    pub async fn set_mute(&self, mute: &Mute) -> Result<()> {
        if !mute.audio && !mute.video && !mute.chat {
            sqlx::query("DELETE FROM mutes WHERE workspace = $1 AND user_id = $2")
                .bind(mute.workspace.as_str())
                .bind(mute.user_id.as_str())
                .execute(&self.pool)
                .await?;
            return Ok(());
        }
        let mut transaction = self.pool.begin().await?;
        ensure_workspace(&mut transaction, &mute.workspace, mute.created_at).await?;
        sqlx::query(
            "INSERT INTO mutes (workspace, user_id, audio, video, chat, reason, created_by, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
             ON CONFLICT (workspace, user_id) DO UPDATE SET audio = excluded.audio, video = excluded.video, \
             chat = excluded.chat, reason = excluded.reason, created_by = excluded.created_by, created_at = excluded.created_at",
        )
        .bind(mute.workspace.as_str())
        .bind(mute.user_id.as_str())
        .bind(flag_to_sql(mute.audio))
        .bind(flag_to_sql(mute.video))
        .bind(flag_to_sql(mute.chat))
        .bind(mute.reason.as_str())
        .bind(mute.created_by.as_str())
        .bind(mute.created_at)
        .execute(&mut *transaction)
        .await?;
        transaction.commit().await?;
        Ok(())
    }

    /// What is muted for a user, if anything.
    pub async fn mute_of(&self, workspace: &str, user_id: &str) -> Result<Option<Mute>> {
        let row = sqlx::query(
            "SELECT workspace, user_id, audio, video, chat, reason, created_by, created_at FROM mutes \
             WHERE workspace = $1 AND user_id = $2",
        )
        .bind(workspace)
        .bind(user_id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| mute_from_row(&row)).transpose()
    }

    /// Every mute in a workspace, by user ID.
    pub async fn mutes(&self, workspace: &str) -> Result<Vec<Mute>> {
        let rows = sqlx::query(
            "SELECT workspace, user_id, audio, video, chat, reason, created_by, created_at FROM mutes \
             WHERE workspace = $1 ORDER BY user_id",
        )
        .bind(workspace)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(mute_from_row).collect()
    }

    // ---- zone settings ----

    /// Records a zone's settings, replacing the earlier record; unlocked with no
    /// capacity of its own, deletes it (the world file's settings apply again). The
    /// workspace row is created if needed.
    pub async fn set_zone_setting(&self, setting: &ZoneSetting) -> Result<()> {
        if !setting.locked && setting.capacity.is_none() {
            sqlx::query("DELETE FROM zone_settings WHERE workspace = $1 AND world = $2 AND zone = $3")
                .bind(setting.workspace.as_str())
                .bind(setting.world.as_str())
                .bind(setting.zone.as_str())
                .execute(&self.pool)
                .await?;
            return Ok(());
        }
        let mut transaction = self.pool.begin().await?;
        ensure_workspace(&mut transaction, &setting.workspace, setting.updated_at).await?;
        sqlx::query(
            "INSERT INTO zone_settings (workspace, world, zone, locked, capacity, updated_by, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (workspace, world, zone) DO UPDATE SET locked = excluded.locked, \
             capacity = excluded.capacity, updated_by = excluded.updated_by, updated_at = excluded.updated_at",
        )
        .bind(setting.workspace.as_str())
        .bind(setting.world.as_str())
        .bind(setting.zone.as_str())
        .bind(flag_to_sql(setting.locked))
        .bind(setting.capacity.map(i64::from))
        .bind(setting.updated_by.as_str())
        .bind(setting.updated_at)
        .execute(&mut *transaction)
        .await?;
        transaction.commit().await?;
        Ok(())
    }

    /// The changed settings of a world's zones, by zone ID.
    pub async fn zone_settings(&self, workspace: &str, world: &str) -> Result<Vec<ZoneSetting>> {
        let rows = sqlx::query(
            "SELECT workspace, world, zone, locked, capacity, updated_by, updated_at FROM zone_settings \
             WHERE workspace = $1 AND world = $2 ORDER BY zone",
        )
        .bind(workspace)
        .bind(world)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(zone_setting_from_row).collect()
    }

    // ---- audit log ----

    /// Appends an entry to the audit log and returns its ID (the entry's own `id` is
    /// ignored).
    pub async fn record_audit(&self, entry: &AuditEntry) -> Result<i64> {
        let row = sqlx::query(
            "INSERT INTO audit_log (workspace, actor, action, target, reason, outcome, detail, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
        )
        .bind(entry.workspace.as_str())
        .bind(entry.actor.as_str())
        .bind(entry.action.as_str())
        .bind(entry.target.as_str())
        .bind(entry.reason.as_str())
        .bind(entry.outcome.as_str())
        .bind(entry.detail.as_str())
        .bind(entry.created_at)
        .fetch_one(&self.pool)
        .await?;
        Ok(row.try_get("id")?)
    }

    /// The entries of one action that took effect (outcome [`AuditEntry::DONE`]) at or after
    /// `since`, oldest first: signaling re-reads recent kicks with it to re-apply those a
    /// node missed.
    pub async fn actions_since(&self, workspace: &str, action: &str, since: i64) -> Result<Vec<AuditEntry>> {
        let rows = sqlx::query(
            "SELECT id, workspace, actor, action, target, reason, outcome, detail, created_at FROM audit_log \
             WHERE workspace = $1 AND action = $2 AND created_at >= $3 AND outcome = $4 ORDER BY id",
        )
        .bind(workspace)
        .bind(action)
        .bind(since)
        .bind(AuditEntry::DONE)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(audit_from_row).collect()
    }

    /// The newest audit entries of a workspace (at most `limit`), newest first, older
    /// than the entry `before` when given (for paging).
    pub async fn audit_log(&self, workspace: &str, before: Option<i64>, limit: u32) -> Result<Vec<AuditEntry>> {
        let rows = sqlx::query(
            "SELECT id, workspace, actor, action, target, reason, outcome, detail, created_at FROM audit_log \
             WHERE workspace = $1 AND id < $2 ORDER BY id DESC LIMIT $3",
        )
        .bind(workspace)
        .bind(before.unwrap_or(i64::MAX))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(audit_from_row).collect()
    }
}
