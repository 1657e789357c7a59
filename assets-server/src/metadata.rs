//! Metadata in SQL: assets, workspaces and their admins, worlds and their versions, and
//! moderation records (bans, audit log).
//!
//! One [`Metadata`] works on SQLite (`sqlite://…`, the embedded default) and PostgreSQL
//! (`postgres://…`) through sqlx's `Any` driver, with the same queries on both: numbered
//! binds (`$1`), `ON CONFLICT … DO NOTHING` and `RETURNING`, which both engines speak.
//! Each engine has its own migration folder (`migrations/sqlite`, `migrations/postgres`)
//! because column types are spelled differently; the tables and their meanings are the
//! same. Migrations run in [`Metadata::connect`].
//!
//! Invariants:
//! - Callers pass the time (`now`, seconds since the Unix epoch); nothing here reads a clock.
//! - A world's `current_version` only moves with a compare-and-set on its previous value
//!   (`UPDATE … WHERE current_version = $expected`), so two writers that started from the
//!   same version cannot both win: the loser gets [`MetadataError::Conflict`].
//! - A world version row and the pointer to it are written in one transaction.
//! - Version 0 means "no version": a new world's pointer is 0, and first versions have
//!   parent 0.

use std::str::FromStr;
use std::time::Duration;

use isoplane_world_format::ContentId;
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Row};

/// The SQL engine behind a [`Metadata`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// The engine a database URL names, if it is one this crate supports.
    pub fn of_url(url: &str) -> Option<Backend> {
        if url.starts_with("sqlite:") {
            Some(Backend::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Some(Backend::Postgres)
        } else {
            None
        }
    }
}

/// Why a metadata operation failed.
#[derive(Debug, thiserror::Error)]
pub enum MetadataError {
    #[error("the database URL must start with sqlite: or postgres://")]
    UnsupportedUrl,
    #[error("cannot open the database: {0}")]
    Connect(#[source] sqlx::Error),
    #[error("cannot migrate the database: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("the database holds a malformed value in {table}.{column}: {value}")]
    Corrupt { table: &'static str, column: &'static str, value: String },
    /// The world's current version is not the one the caller expected.
    #[error("the world's current version is {current}, not the expected one")]
    Conflict { current: i64 },
    #[error("the world has no version {0}")]
    UnknownVersion(i64),
    #[error("there is no such world")]
    UnknownWorld,
}

type Result<T> = std::result::Result<T, MetadataError>;

/// One stored asset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssetRecord {
    pub id: ContentId,
    pub size: u64,
    pub media_type: String,
    /// Workspace of the first upload of these bytes.
    pub workspace: String,
    pub uploaded_by: String,
    pub created_at: i64,
}

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

/// A user barred from a workspace.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Ban {
    pub workspace: String,
    pub user_id: String,
    pub reason: String,
    pub created_by: String,
    pub created_at: i64,
    /// None: until lifted.
    pub expires_at: Option<i64>,
}

/// An audit log entry: who did what to whom, when and why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AuditEntry {
    /// Increasing within a database; 0 for an entry not yet recorded.
    pub id: i64,
    pub workspace: String,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub reason: String,
    pub created_at: i64,
}

/// The metadata database.
#[derive(Debug, Clone)]
pub struct Metadata {
    pool: AnyPool,
    backend: Backend,
}

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

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

/// Sizes are stored as signed 64-bit integers, which both engines have.
fn size_to_sql(size: u64) -> i64 {
    i64::try_from(size).unwrap_or(i64::MAX)
}

impl Metadata {
    /// Opens the database (creating a SQLite file if needed) and runs the migrations.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Metadata> {
        let backend = Backend::of_url(url).ok_or(MetadataError::UnsupportedUrl)?;
        sqlx::any::install_default_drivers();
        let url = match backend {
            // Create the file on first start.
            Backend::Sqlite if !url.contains("mode=") => {
                format!("{url}{}mode=rwc", if url.contains('?') { '&' } else { '?' })
            }
            _ => url.to_owned(),
        };
        let pool = AnyPoolOptions::new()
            .max_connections(max_connections.max(1))
            .acquire_timeout(Duration::from_secs(10))
            .connect(&url)
            .await
            .map_err(MetadataError::Connect)?;
        if backend == Backend::Sqlite {
            // Readers never wait for the writer; persistent in the file.
            sqlx::query("PRAGMA journal_mode = WAL").execute(&pool).await?;
        }
        match backend {
            Backend::Sqlite => SQLITE_MIGRATIONS.run(&pool).await?,
            Backend::Postgres => POSTGRES_MIGRATIONS.run(&pool).await?,
        }
        Ok(Metadata { pool, backend })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Closes every connection; later calls fail.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Checks that the database answers.
    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").fetch_one(&self.pool).await?;
        Ok(())
    }

    // ---- assets ----

    /// Records an asset. Returns false (and changes nothing) if its ID is already known.
    pub async fn insert_asset(&self, asset: &AssetRecord) -> Result<bool> {
        let done = sqlx::query(
            "INSERT INTO assets (id, size, media_type, workspace, uploaded_by, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO NOTHING",
        )
        .bind(asset.id.to_string())
        .bind(size_to_sql(asset.size))
        .bind(asset.media_type.as_str())
        .bind(asset.workspace.as_str())
        .bind(asset.uploaded_by.as_str())
        .bind(asset.created_at)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn asset(&self, id: &ContentId) -> Result<Option<AssetRecord>> {
        let row = sqlx::query("SELECT size, media_type, workspace, uploaded_by, created_at FROM assets WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?;
        let Some(row) = row else { return Ok(None) };
        let size: i64 = row.try_get("size")?;
        Ok(Some(AssetRecord {
            id: id.clone(),
            size: u64::try_from(size).map_err(|_| MetadataError::Corrupt {
                table: "assets",
                column: "size",
                value: size.to_string(),
            })?,
            media_type: row.try_get("media_type")?,
            workspace: row.try_get("workspace")?,
            uploaded_by: row.try_get("uploaded_by")?,
            created_at: row.try_get("created_at")?,
        }))
    }

    /// The IDs among `ids` that name no stored asset, in the order given, without repeats.
    pub async fn missing_assets(&self, ids: &[ContentId]) -> Result<Vec<ContentId>> {
        let mut missing: Vec<ContentId> = Vec::new();
        for id in ids {
            if missing.contains(id) {
                continue;
            }
            let found = sqlx::query("SELECT 1 FROM assets WHERE id = $1")
                .bind(id.to_string())
                .fetch_optional(&self.pool)
                .await?;
            if found.is_none() {
                missing.push(id.clone());
            }
        }
        Ok(missing)
    }

    /// How many assets are recorded.
    pub async fn asset_count(&self) -> Result<u64> {
        let count: i64 = sqlx::query("SELECT COUNT(*) AS n FROM assets").fetch_one(&self.pool).await?.try_get("n")?;
        Ok(u64::try_from(count).unwrap_or(0))
    }

    // ---- workspaces and admins ----

    /// Creates the workspace if it does not exist yet.
    pub async fn ensure_workspace(&self, name: &str, now: i64) -> Result<()> {
        sqlx::query("INSERT INTO workspaces (name, created_at) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING")
            .bind(name)
            .bind(now)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn workspace_exists(&self, name: &str) -> Result<bool> {
        let row = sqlx::query("SELECT 1 FROM workspaces WHERE name = $1").bind(name).fetch_optional(&self.pool).await?;
        Ok(row.is_some())
    }

    /// Makes a user an admin of a workspace (idempotent).
    pub async fn add_admin(&self, workspace: &str, user_id: &str, added_by: &str, now: i64) -> Result<()> {
        sqlx::query(
            "INSERT INTO admins (workspace, user_id, added_by, added_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (workspace, user_id) DO NOTHING",
        )
        .bind(workspace)
        .bind(user_id)
        .bind(added_by)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Removes an admin; returns whether the user was one.
    pub async fn remove_admin(&self, workspace: &str, user_id: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM admins WHERE workspace = $1 AND user_id = $2")
            .bind(workspace)
            .bind(user_id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    pub async fn is_admin(&self, workspace: &str, user_id: &str) -> Result<bool> {
        let row = sqlx::query("SELECT 1 FROM admins WHERE workspace = $1 AND user_id = $2")
            .bind(workspace)
            .bind(user_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.is_some())
    }

    /// The admins of a workspace, by user ID.
    pub async fn admins(&self, workspace: &str) -> Result<Vec<String>> {
        let rows = sqlx::query("SELECT user_id FROM admins WHERE workspace = $1 ORDER BY user_id")
            .bind(workspace)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|row| row.try_get("user_id").map_err(MetadataError::from)).collect()
    }

    // ---- worlds ----

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
        let done = sqlx::query(
            "UPDATE worlds SET current_version = $4 WHERE workspace = $1 AND name = $2 AND current_version = $3 \
             AND EXISTS (SELECT 1 FROM world_versions WHERE workspace = $1 AND world = $2 AND version = $4)",
        )
        .bind(workspace)
        .bind(world)
        .bind(expected)
        .bind(version)
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 1 {
            return Ok(());
        }
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

    // ---- moderation ----

    /// Bans a user from a workspace, replacing any earlier ban of that user.
    pub async fn ban(&self, ban: &Ban) -> Result<()> {
        let mut transaction = self.pool.begin().await?;
        sqlx::query("DELETE FROM bans WHERE workspace = $1 AND user_id = $2")
            .bind(ban.workspace.as_str())
            .bind(ban.user_id.as_str())
            .execute(&mut *transaction)
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
        .execute(&mut *transaction)
        .await?;
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

    /// Appends an entry to the audit log and returns its ID.
    pub async fn record_audit(&self, entry: &AuditEntry) -> Result<i64> {
        let row = sqlx::query(
            "INSERT INTO audit_log (workspace, actor, action, target, reason, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
        )
        .bind(entry.workspace.as_str())
        .bind(entry.actor.as_str())
        .bind(entry.action.as_str())
        .bind(entry.target.as_str())
        .bind(entry.reason.as_str())
        .bind(entry.created_at)
        .fetch_one(&self.pool)
        .await?;
        Ok(row.try_get("id")?)
    }

    /// The newest audit entries of a workspace (at most `limit`), newest first, older
    /// than the entry `before` when given (for paging).
    pub async fn audit_log(&self, workspace: &str, before: Option<i64>, limit: u32) -> Result<Vec<AuditEntry>> {
        let rows = sqlx::query(
            "SELECT id, workspace, actor, action, target, reason, created_at FROM audit_log \
             WHERE workspace = $1 AND id < $2 ORDER BY id DESC LIMIT $3",
        )
        .bind(workspace)
        .bind(before.unwrap_or(i64::MAX))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(AuditEntry {
                    id: row.try_get("id")?,
                    workspace: row.try_get("workspace")?,
                    actor: row.try_get("actor")?,
                    action: row.try_get("action")?,
                    target: row.try_get("target")?,
                    reason: row.try_get("reason")?,
                    created_at: row.try_get("created_at")?,
                })
            })
            .collect()
    }
}

fn summary_from_row(row: &AnyRow) -> Result<WorldSummary> {
    Ok(WorldSummary {
        name: row.try_get("name")?,
        current_version: row.try_get("current_version")?,
        latest_version: row.try_get("latest_version")?,
    })
}
