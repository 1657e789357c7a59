//! Isoplane's metadata in SQL: assets, worlds and their versions, workspaces and their
//! admins, moderation records (bans, demotions, mutes, zone settings, the audit log) and
//! the chat history.
//! The asset server and the signaling server share it, so both read the same admins and
//! the same moderation decisions; neither depends on the other for it.
//!
//! One [`Metadata`] works on SQLite (`sqlite://…`, the embedded default) and PostgreSQL
//! (`postgres://…`) through sqlx's `Any` driver, with the same queries on both: numbered
//! binds (`$1`), `ON CONFLICT … DO NOTHING` / `DO UPDATE` and `RETURNING`, which both
//! engines speak. Each engine has its own migration folder (`migrations/sqlite`,
//! `migrations/postgres`) because column types are spelled differently; the tables and
//! their meanings are the same. Migrations run in [`Metadata::connect`].
//!
//! # Layout
//! - this file: [`Metadata`] (connect, migrate, close), [`Backend`], [`MetadataError`].
//! - `assets.rs`: [`AssetRecord`], the content-addressed assets.
//! - `worlds.rs`: [`WorldVersion`], [`WorldSummary`], [`NewVersion`]; publishing and the
//!   current-version pointer.
//! - `admins.rs`: workspaces, admins, and who counts as one: [`Metadata::admin_status`],
//!   [`Metadata::promote`], [`Metadata::demote`].
//! - `moderation.rs`: [`Ban`], [`Mute`], [`ZoneSetting`], [`AuditEntry`].
//! - `chat.rs`: [`ChatRecord`], the chat history of the last day (times in milliseconds).
//!
//! # Invariants
//! - Callers pass the time (`now`, seconds since the Unix epoch); nothing here reads a clock.
//! - A world's `current_version` only moves with a compare-and-set on its previous value
//!   (`UPDATE … WHERE current_version = $expected`), so two writers that started from the
//!   same version cannot both win: the loser gets [`MetadataError::Conflict`].
//! - A world version row and the pointer to it are written in one transaction.
//! - Version 0 means "no version": a new world's pointer is 0, and first versions have
//!   parent 0.
//! - A workspace that has admins keeps at least one: [`Metadata::demote`] and
//!   [`Metadata::ban_user`] refuse with [`MetadataError::LastAdmin`]. Changes to a
//!   workspace's admins lock its `workspaces` row first, so they happen one at a time.
//! - A join token's `role: admin` makes its user an admin only until an admin demotes
//!   them inside Isoplane; the demotion is stored and wins over later tokens.
//! - Flags are stored as 0/1 integers; any other value read back is
//!   [`MetadataError::Corrupt`], as is a number that does not fit its Rust type.

mod admins;
mod assets;
mod chat;
mod ingest;
mod moderation;
mod worlds;

#[cfg(feature = "testing")]
pub mod testing;

use std::time::Duration;

use sqlx::AnyPool;
use sqlx::any::AnyPoolOptions;

pub use admins::IDENTITY_PROVIDER;
pub use assets::AssetRecord;
pub use chat::{ChatAudience, ChatRecord};
pub use ingest::IngestKey;
pub use moderation::{AuditEntry, Ban, Mute, UserStanding, ZoneSetting};
pub use worlds::{NewVersion, WORLD_VERSION_CHANNEL, WorldSummary, WorldVersion, WorldVersionListener};

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
    /// The user is the only admin of the workspace, who cannot be demoted or banned.
    #[error("the user is the workspace's only admin; make someone else an admin first")]
    LastAdmin,
}

impl MetadataError {
    /// Whether the database could not be reached (down, restarting, out of connections),
    /// as opposed to refusing or failing the request itself: the caller may try again.
    pub fn is_unavailable(&self) -> bool {
        match self {
            MetadataError::Connect(_) => true,
            MetadataError::Database(error) => matches!(
                error,
                sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) | sqlx::Error::Tls(_)
            ),
            _ => false,
        }
    }
}

type Result<T> = std::result::Result<T, MetadataError>;

/// The metadata database.
#[derive(Debug, Clone)]
pub struct Metadata {
    pool: AnyPool,
    backend: Backend,
}

/// How long a call waits for a connection: while the database is down, calls fail after
/// this with an error the services answer as "unavailable", rather than hanging.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(4);

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

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
            .acquire_timeout(ACQUIRE_TIMEOUT)
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

    /// A fresh SQLite database in memory, migrated, for a service run without a
    /// configured database: everything in it is lost when the last clone of this handle
    /// is closed or dropped. It has one connection, kept open for the handle's life (an
    /// in-memory database disappears with its last connection), so calls take turns.
    pub async fn connect_in_memory() -> Result<Metadata> {
        sqlx::any::install_default_drivers();
        let pool = AnyPoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .acquire_timeout(Duration::from_secs(10))
            .connect("sqlite::memory:")
            .await
            .map_err(MetadataError::Connect)?;
        SQLITE_MIGRATIONS.run(&pool).await?;
        Ok(Metadata { pool, backend: Backend::Sqlite })
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
}

/// A flag as stored: 0 or 1.
fn flag_to_sql(flag: bool) -> i64 {
    i64::from(flag)
}

fn flag_from_sql(table: &'static str, column: &'static str, value: i64) -> Result<bool> {
    match value {
        0 => Ok(false),
        1 => Ok(true),
        _ => Err(MetadataError::Corrupt { table, column, value: value.to_string() }),
    }
}
