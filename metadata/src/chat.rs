//! Chat history: the messages signaling delivered in the last day, kept so that a client
//! that joins (or a signaling node that restarts) reads what was said.
//!
//! Signaling owns the live history in memory and writes each message here after
//! delivering it; this store is what survives a restart. Times here are milliseconds
//! since the Unix epoch (a chat's `at`), unlike the seconds of the moderation records.
//!
//! Invariants:
//! - A message is written once: writing it again (a retry) changes nothing, and a message
//!   an admin deleted stays deleted even if its first write comes after the deletion's.
//! - Reads never return deleted messages, nor more than `limit` per history (a zone's,
//!   the world's, one user's direct messages), nor messages older than `since`.

use sqlx::Row;
use sqlx::any::AnyRow;

use crate::{Metadata, MetadataError, Result};

/// Who a chat message was for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChatAudience {
    /// Everyone in the zone with this ID.
    Zone { zone: String },
    /// Everyone in the world.
    World,
    /// One user (and the author).
    Direct { user: String, name: String },
}

/// One chat message as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatRecord {
    pub workspace: String,
    pub world: String,
    /// Unique within the world (signaling makes it).
    pub id: String,
    pub audience: ChatAudience,
    pub from_user: String,
    pub from_name: String,
    /// Verbatim.
    pub text: String,
    /// Milliseconds since the Unix epoch.
    pub sent_at: i64,
}

const COLUMNS: &str = "workspace, world, id, scope, zone, from_user, from_name, to_user, to_name, text, sent_at";

fn chat_from_row(row: &AnyRow) -> Result<ChatRecord> {
    let scope: String = row.try_get("scope")?;
    let zone: Option<String> = row.try_get("zone")?;
    let to_user: Option<String> = row.try_get("to_user")?;
    let to_name: Option<String> = row.try_get("to_name")?;
    let corrupt =
        |column: &'static str, value: String| MetadataError::Corrupt { table: "chat_messages", column, value };
    let audience = match (scope.as_str(), zone, to_user) {
        ("zone", Some(zone), _) => ChatAudience::Zone { zone },
        ("world", _, _) => ChatAudience::World,
        ("direct", _, Some(user)) => ChatAudience::Direct { user, name: to_name.unwrap_or_default() },
        ("zone", None, _) => return Err(corrupt("zone", "NULL".into())),
        ("direct", _, None) => return Err(corrupt("to_user", "NULL".into())),
        _ => return Err(corrupt("scope", scope)),
    };
    Ok(ChatRecord {
        workspace: row.try_get("workspace")?,
        world: row.try_get("world")?,
        id: row.try_get("id")?,
        audience,
        from_user: row.try_get("from_user")?,
        from_name: row.try_get("from_name")?,
        text: row.try_get("text")?,
        sent_at: row.try_get("sent_at")?,
    })
}

impl Metadata {
    /// Writes messages, in one transaction; a message already written (by ID) is left as
    /// it is, deleted or not.
    pub async fn store_chat(&self, messages: &[ChatRecord]) -> Result<()> {
        let mut transaction = self.pool.begin().await?;
        for message in messages {
            let (scope, zone, to_user, to_name) = match &message.audience {
                ChatAudience::Zone { zone } => ("zone", Some(zone.as_str()), None, None),
                ChatAudience::World => ("world", None, None, None),
                ChatAudience::Direct { user, name } => ("direct", None, Some(user.as_str()), Some(name.as_str())),
            };
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "INSERT INTO chat_messages ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
                 ON CONFLICT (workspace, world, id) DO NOTHING"
            )))
            .bind(message.workspace.as_str())
            .bind(message.world.as_str())
            .bind(message.id.as_str())
            .bind(scope)
            .bind(zone)
            .bind(message.from_user.as_str())
            .bind(message.from_name.as_str())
            .bind(to_user)
            .bind(to_name)
            .bind(message.text.as_str())
            .bind(message.sent_at)
            .execute(&mut *transaction)
            .await?;
        }
        transaction.commit().await?;
        Ok(())
    }

    /// Marks a message deleted at `at` (ms); returns it if it was stored and not deleted
    /// before. The row stays (until it ages out) so that a late first write of the same
    /// message cannot bring it back.
    pub async fn delete_chat(&self, workspace: &str, world: &str, id: &str, at: i64) -> Result<Option<ChatRecord>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE chat_messages SET deleted_at = $4 \
             WHERE workspace = $1 AND world = $2 AND id = $3 AND deleted_at IS NULL RETURNING {COLUMNS}"
        )))
        .bind(workspace)
        .bind(world)
        .bind(id)
        .bind(at)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| chat_from_row(&row)).transpose()
    }

    /// A world's recent history, oldest first: of each zone's messages, of the world's, and
    /// of each user's direct messages (sent or received), the last `limit` sent at or after
    /// `since` (ms) and not deleted. A direct message is in both its parties' histories,
    /// and returned once.
    pub async fn recent_chat(&self, workspace: &str, world: &str, since: i64, limit: u32) -> Result<Vec<ChatRecord>> {
        let shared = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM (\
               SELECT {COLUMNS}, ROW_NUMBER() OVER (PARTITION BY scope, zone ORDER BY sent_at DESC, id DESC) AS n \
               FROM chat_messages WHERE workspace = $1 AND world = $2 AND sent_at >= $3 \
                 AND deleted_at IS NULL AND scope IN ('zone', 'world')\
             ) AS recent WHERE n <= $4"
        )))
        .bind(workspace)
        .bind(world)
        .bind(since)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        let direct = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM (\
               SELECT {COLUMNS}, ROW_NUMBER() OVER (PARTITION BY party ORDER BY sent_at DESC, id DESC) AS n FROM (\
                 SELECT {COLUMNS}, from_user AS party FROM chat_messages \
                 WHERE workspace = $1 AND world = $2 AND sent_at >= $3 AND deleted_at IS NULL AND scope = 'direct' \
                 UNION ALL \
                 SELECT {COLUMNS}, to_user AS party FROM chat_messages \
                 WHERE workspace = $1 AND world = $2 AND sent_at >= $3 AND deleted_at IS NULL AND scope = 'direct' \
                   AND to_user <> from_user\
               ) AS parties\
             ) AS recent WHERE n <= $4"
        )))
        .bind(workspace)
        .bind(world)
        .bind(since)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        let mut messages = shared.iter().chain(&direct).map(chat_from_row).collect::<Result<Vec<_>>>()?;
        messages.sort_by(|a, b| (a.sent_at, &a.id).cmp(&(b.sent_at, &b.id)));
        messages.dedup_by(|a, b| a.id == b.id);
        Ok(messages)
    }

    /// Deletes every message sent before `before` (ms), deleted or not, in every
    /// workspace; returns how many went.
    pub async fn prune_chat(&self, before: i64) -> Result<u64> {
        let done = sqlx::query("DELETE FROM chat_messages WHERE sent_at < $1").bind(before).execute(&self.pool).await?;
        Ok(done.rows_affected())
    }
}
