//! Worlds and their versions: each version names a world file stored as an asset, and a
//! world's current-version pointer moves only by compare-and-set (see the crate docs).

use std::str::FromStr;

use isoplane_world_format::ContentId;
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::{Metadata, MetadataError, Result};

/// One version of a world.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct WorldVersion {
    pub version: i64,
    /// Content ID of the world file (its canonical JSON).
    pub content_id: ContentId,
    /// The version this one was made from; 0 for a first version.
    pub parent_version: i64,
    pub created_by: String,
    pub created_at: i64,
}

/// A world of a workspace and where its pointer stands.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct WorldSummary {
    pub name: String,
    /// 0 when no version is current.
    pub current_version: i64,
    pub latest_version: i64,
}

/// A new version to publish.
#[derive(Debug, Clone)]
pub struct NewVersion<'a> {
    pub workspace: &'a str,
    pub world: &'a str,
    /// The version the author started from; must be the world's current one (0 for a new world).
    pub base_version: i64,
    pub content_id: &'a ContentId,
    pub created_by: &'a str,
    pub now: i64,
}

fn content_id(table: &'static str, column: &'static str, text: String) -> Result<ContentId> {
    ContentId::from_str(&text).map_err(|_| MetadataError::Corrupt { table, column, value: text })
}

fn version_from_row(row: &AnyRow) -> Result<WorldVersion> {
    Ok(WorldVersion {
        version: row.try_get("version")?,
        content_id: content_id("world_versions", "content_id", row.try_get("content_id")?)?,
        parent_version: row.try_get("parent_version")?,
        created_by: row.try_get("created_by")?,
        created_at: row.try_get("created_at")?,
    })
}

fn summary_from_row(row: &AnyRow) -> Result<WorldSummary> {
    Ok(WorldSummary {
        name: row.try_get("name")?,
        current_version: row.try_get("current_version")?,
        latest_version: row.try_get("latest_version")?,
    })
}

/// The PostgreSQL channel on which a world's current version moving is announced, with
/// `WORKSPACE/WORLD` as the payload (see [`WorldVersionListener`]).
pub const WORLD_VERSION_CHANNEL: &str = "isoplane_world_versions";

impl Metadata {
    /// On PostgreSQL, announces on [`WORLD_VERSION_CHANNEL`] that `world`'s current
    /// version moved; delivered when (and only if) `transaction` commits. SQLite has no
    /// such thing: its readers poll.
    async fn notify_world_moved(
        &self,
        transaction: &mut sqlx::Transaction<'_, sqlx::Any>,
        workspace: &str,
        world: &str,
    ) -> Result<()> {
        if self.backend == crate::Backend::Postgres {
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind(WORLD_VERSION_CHANNEL)
                .bind(format!("{workspace}/{world}"))
                .execute(&mut **transaction)
                .await?;
        }
        Ok(())
    }

    /// Publishes a new version made from `base_version` and makes it current, if
    /// `base_version` is still the world's current version; otherwise changes nothing and
    /// returns [`MetadataError::Conflict`]. The world is created by its first publish
    /// (with base 0). The world file must already be recorded as an asset.
    pub async fn publish_version(&self, new: &NewVersion<'_>) -> Result<WorldVersion> {
        sqlx::query(
            "INSERT INTO worlds (workspace, name, current_version, latest_version, created_at) \
             VALUES ($1, $2, 0, 0, $3) ON CONFLICT (workspace, name) DO NOTHING",
        )
        .bind(new.workspace)
        .bind(new.world)
        .bind(new.now)
        .execute(&self.pool)
        .await?;
        let mut transaction = self.pool.begin().await?;
        // The compare-and-set: the first statement of the transaction is a write, so
        // SQLite takes its write lock before reading, and PostgreSQL re-checks the WHERE
        // clause on the row a concurrent winner just committed.
        let moved = sqlx::query(
            "UPDATE worlds SET latest_version = latest_version + 1, current_version = latest_version + 1 \
             WHERE workspace = $1 AND name = $2 AND current_version = $3 RETURNING current_version",
        )
        .bind(new.workspace)
        .bind(new.world)
        .bind(new.base_version)
        .fetch_optional(&mut *transaction)
        .await?;
        let Some(row) = moved else {
            transaction.rollback().await?;
            let current = self.world(new.workspace, new.world).await?.map_or(0, |w| w.current_version);
            return Err(MetadataError::Conflict { current });
        };
        let version: i64 = row.try_get("current_version")?;
        sqlx::query(
            "INSERT INTO world_versions (workspace, world, version, content_id, parent_version, created_by, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(new.workspace)
        .bind(new.world)
        .bind(version)
        .bind(new.content_id.to_string())
        .bind(new.base_version)
        .bind(new.created_by)
        .bind(new.now)
        .execute(&mut *transaction)
        .await?;
        self.notify_world_moved(&mut transaction, new.workspace, new.world).await?;
        transaction.commit().await?;
        Ok(WorldVersion {
            version,
            content_id: new.content_id.clone(),
            parent_version: new.base_version,
            created_by: new.created_by.to_owned(),
            created_at: new.now,
        })
    }

    /// Points the world at an existing version, if its current version is still
    /// `expected`; otherwise [`MetadataError::Conflict`] (or `UnknownWorld` /
    /// `UnknownVersion`), and nothing changes.
    pub async fn set_current_version(&self, workspace: &str, world: &str, expected: i64, version: i64) -> Result<()> {
        let mut transaction = self.pool.begin().await?;
        let done = sqlx::query(
            "UPDATE worlds SET current_version = $4 WHERE workspace = $1 AND name = $2 AND current_version = $3 \
             AND EXISTS (SELECT 1 FROM world_versions WHERE workspace = $1 AND world = $2 AND version = $4)",
        )
        .bind(workspace)
        .bind(world)
        .bind(expected)
        .bind(version)
        .execute(&mut *transaction)
        .await?;
        if done.rows_affected() == 1 {
            self.notify_world_moved(&mut transaction, workspace, world).await?;
            transaction.commit().await?;
            return Ok(());
        }
        transaction.rollback().await?;
        let Some(summary) = self.world(workspace, world).await? else {
            return Err(MetadataError::UnknownWorld);
        };
        if self.version(workspace, world, version).await?.is_none() {
            return Err(MetadataError::UnknownVersion(version));
        }
        Err(MetadataError::Conflict { current: summary.current_version })
    }

    pub async fn world(&self, workspace: &str, world: &str) -> Result<Option<WorldSummary>> {
        let row =
            sqlx::query("SELECT name, current_version, latest_version FROM worlds WHERE workspace = $1 AND name = $2")
                .bind(workspace)
                .bind(world)
                .fetch_optional(&self.pool)
                .await?;
        row.map(|row| summary_from_row(&row)).transpose()
    }

    /// The worlds of a workspace, by name.
    pub async fn worlds(&self, workspace: &str) -> Result<Vec<WorldSummary>> {
        let rows =
            sqlx::query("SELECT name, current_version, latest_version FROM worlds WHERE workspace = $1 ORDER BY name")
                .bind(workspace)
                .fetch_all(&self.pool)
                .await?;
        rows.iter().map(summary_from_row).collect()
    }

    /// Every version of a world, oldest first.
    pub async fn versions(&self, workspace: &str, world: &str) -> Result<Vec<WorldVersion>> {
        let rows = sqlx::query(
            "SELECT version, content_id, parent_version, created_by, created_at FROM world_versions \
             WHERE workspace = $1 AND world = $2 ORDER BY version",
        )
        .bind(workspace)
        .bind(world)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(version_from_row).collect()
    }

    pub async fn version(&self, workspace: &str, world: &str, version: i64) -> Result<Option<WorldVersion>> {
        let row = sqlx::query(
            "SELECT version, content_id, parent_version, created_by, created_at FROM world_versions \
             WHERE workspace = $1 AND world = $2 AND version = $3",
        )
        .bind(workspace)
        .bind(world)
        .bind(version)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| version_from_row(&row)).transpose()
    }

    /// The version a world points at, if it has one.
    pub async fn current_version(&self, workspace: &str, world: &str) -> Result<Option<WorldVersion>> {
        let row = sqlx::query(
            "SELECT v.version, v.content_id, v.parent_version, v.created_by, v.created_at \
             FROM worlds w JOIN world_versions v \
             ON v.workspace = w.workspace AND v.world = w.name AND v.version = w.current_version \
             WHERE w.workspace = $1 AND w.name = $2",
        )
        .bind(workspace)
        .bind(world)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| version_from_row(&row)).transpose()
    }
}

/// Hears, from PostgreSQL, that a world's current version moved (a publish or a
/// rollback by any asset server sharing the database): signaling nodes take the new
/// version at once instead of at their next poll. Notifications are at-most-once (a
/// dropped connection loses those sent meanwhile), so they speed polling up, never
/// replace it.
pub struct WorldVersionListener {
    listener: sqlx::postgres::PgListener,
}

impl std::fmt::Debug for WorldVersionListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorldVersionListener").finish_non_exhaustive()
    }
}

impl WorldVersionListener {
    /// Listens on the PostgreSQL database at `url`; `None` for other databases.
    pub async fn connect(url: &str) -> Result<Option<WorldVersionListener>> {
        if crate::Backend::of_url(url) != Some(crate::Backend::Postgres) {
            return Ok(None);
        }
        let mut listener = sqlx::postgres::PgListener::connect(url).await.map_err(MetadataError::Connect)?;
        listener.listen(WORLD_VERSION_CHANNEL).await?;
        Ok(Some(WorldVersionListener { listener }))
    }

    /// The next world whose version moved, as (workspace, world). After a lost
    /// connection it reconnects (and listens again) by itself.
    pub async fn next(&mut self) -> Result<(String, String)> {
        loop {
            let notification = self.listener.recv().await?;
            if let Some((workspace, world)) = notification.payload().split_once('/') {
                return Ok((workspace.to_owned(), world.to_owned()));
            }
        }
    }
}
