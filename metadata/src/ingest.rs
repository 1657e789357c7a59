//! Ingest keys: what a broadcaster (OBS, any WHIP client) publishes to a stage with. An
//! admin makes one for a stage zone and sees the key once; only its SHA-256 is stored,
//! and a revoked key is refused from then on.
//!
//! Invariants:
//! - A key is found by its hash only while it is not revoked; revoking is for good.

use sqlx::Row;
use sqlx::any::AnyRow;

use crate::admins::ensure_workspace;
use crate::{Metadata, Result};

/// An ingest key as stored (without the key).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct IngestKey {
    pub workspace: String,
    pub id: String,
    pub world: String,
    pub zone: String,
    /// What listeners see the stream as.
    pub name: String,
    pub created_by: String,
    /// Seconds since the Unix epoch.
    pub created_at: i64,
    pub revoked_at: Option<i64>,
}

const COLUMNS: &str = "workspace, id, world, zone, name, created_by, created_at, revoked_at";

fn key_from_row(row: &AnyRow) -> Result<IngestKey> {
    Ok(IngestKey {
        workspace: row.try_get("workspace")?,
        id: row.try_get("id")?,
        world: row.try_get("world")?,
        zone: row.try_get("zone")?,
        name: row.try_get("name")?,
        created_by: row.try_get("created_by")?,
        created_at: row.try_get("created_at")?,
        revoked_at: row.try_get("revoked_at")?,
    })
}

impl Metadata {
    /// Stores a new key under its hash (hex SHA-256).
    pub async fn create_ingest_key(&self, key: &IngestKey, key_hash: &str) -> Result<()> {
        let mut transaction = self.pool.begin().await?;
        ensure_workspace(&mut transaction, &key.workspace, key.created_at).await?;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO ingest_keys ({COLUMNS}, key_hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
        )))
        .bind(key.workspace.as_str())
        .bind(key.id.as_str())
        .bind(key.world.as_str())
        .bind(key.zone.as_str())
        .bind(key.name.as_str())
        .bind(key.created_by.as_str())
        .bind(key.created_at)
        .bind(key.revoked_at)
        .bind(key_hash)
        .execute(&mut *transaction)
        .await?;
        transaction.commit().await?;
        Ok(())
    }

    /// The key in force with this hash, if any.
    pub async fn ingest_key_by_hash(&self, key_hash: &str) -> Result<Option<IngestKey>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM ingest_keys WHERE key_hash = $1 AND revoked_at IS NULL"
        )))
        .bind(key_hash)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(key_from_row).transpose()
    }

    /// Revokes a key; returns it if it was in force.
    pub async fn revoke_ingest_key(&self, workspace: &str, id: &str, now: i64) -> Result<Option<IngestKey>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE ingest_keys SET revoked_at = $3 WHERE workspace = $1 AND id = $2 AND revoked_at IS NULL \
             RETURNING {COLUMNS}"
        )))
        .bind(workspace)
        .bind(id)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(key_from_row).transpose()
    }

    /// Every key of the workspace, revoked ones too, newest first.
    pub async fn ingest_keys(&self, workspace: &str) -> Result<Vec<IngestKey>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM ingest_keys WHERE workspace = $1 ORDER BY created_at DESC, id"
        )))
        .bind(workspace)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(key_from_row).collect()
    }
}
