//! Workspaces and their admins, and who counts as one.
//!
//! A user is an admin of a workspace when the `admins` table lists them. The identity
//! provider's word (a join token with `role: admin`) is taken once, on first use, and then
//! stored like any other grant ([`Metadata::admin_status`]); a demotion inside Isoplane is
//! stored too (`admin_demotions`) and from then on wins over such tokens, until an admin
//! promotes the user again.
//!
//! Every change to a workspace's admins runs in one transaction that first locks the
//! workspace's row ([`lock_workspace`]), so two changes never interleave: two admins cannot
//! demote each other at once and leave the workspace with none.

use sqlx::{AnyConnection, Row};

use crate::{Metadata, MetadataError, Result};

/// `added_by` of an admin grant that came from a join token saying `role: admin`.
pub const IDENTITY_PROVIDER: &str = "identity-provider";

impl Metadata {
    /// Creates the workspace if it does not exist yet.
    pub async fn ensure_workspace(&self, name: &str, now: i64) -> Result<()> {
        let mut connection = self.pool.acquire().await?;
        ensure_workspace(&mut connection, name, now).await
    }

    pub async fn workspace_exists(&self, name: &str) -> Result<bool> {
        let row = sqlx::query("SELECT 1 FROM workspaces WHERE name = $1").bind(name).fetch_optional(&self.pool).await?;
        Ok(row.is_some())
    }

    /// Lists a user in the workspace's admins table (idempotent). A plain record write:
    /// it neither creates the workspace nor clears a demotion; [`Metadata::promote`] does.
    pub async fn add_admin(&self, workspace: &str, user_id: &str, added_by: &str, now: i64) -> Result<()> {
        let mut connection = self.pool.acquire().await?;
        insert_admin(&mut connection, workspace, user_id, added_by, now).await?;
        Ok(())
    }

    /// Removes an admin; returns whether the user was one. A plain record write: it
    /// neither keeps the last admin nor records a demotion; [`Metadata::demote`] does.
    pub async fn remove_admin(&self, workspace: &str, user_id: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM admins WHERE workspace = $1 AND user_id = $2")
            .bind(workspace)
            .bind(user_id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Whether the admins table lists the user. Services deciding what a request may do
    /// ask [`Metadata::admin_status`], which also weighs the join token.
    pub async fn is_admin(&self, workspace: &str, user_id: &str) -> Result<bool> {
        let mut connection = self.pool.acquire().await?;
        is_listed_admin(&mut connection, workspace, user_id).await
    }

    /// The admins of a workspace, by user ID.
    pub async fn admins(&self, workspace: &str) -> Result<Vec<String>> {
        let rows = sqlx::query("SELECT user_id FROM admins WHERE workspace = $1 ORDER BY user_id")
            .bind(workspace)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|row| row.try_get("user_id").map_err(MetadataError::from)).collect()
    }

    /// Whether the user is an admin of the workspace, given what their join token says.
    ///
    /// True if the admins table lists them. Otherwise, if `token_says_admin` and no admin
    /// demoted them inside Isoplane, the identity provider's grant is stored (the
    /// workspace row created if needed, `added_by` [`IDENTITY_PROVIDER`]) and the answer
    /// is true; else false. Both services ask this, so they agree on who is an admin.
    pub async fn admin_status(&self, workspace: &str, user_id: &str, token_says_admin: bool, now: i64) -> Result<bool> {
        let mut connection = self.pool.acquire().await?;
        if is_listed_admin(&mut connection, workspace, user_id).await? {
            return Ok(true);
        }
        if !token_says_admin || is_demoted(&mut connection, workspace, user_id).await? {
            return Ok(false);
        }
        drop(connection);
        let mut transaction = self.pool.begin().await?;
        lock_workspace(&mut transaction, workspace, now).await?;
        // Checked again under the lock: a demotion may have landed since.
        if is_demoted(&mut transaction, workspace, user_id).await? {
            transaction.rollback().await?;
            return Ok(false);
        }
        insert_admin(&mut transaction, workspace, user_id, IDENTITY_PROVIDER, now).await?;
        transaction.commit().await?;
        Ok(true)
    }

    /// Makes a user an admin of the workspace (creating the workspace row if needed) and
    /// forgets any earlier demotion. Returns true if they were not an admin before.
    pub async fn promote(&self, workspace: &str, user_id: &str, by: &str, now: i64) -> Result<bool> {
        let mut transaction = self.pool.begin().await?;
        lock_workspace(&mut transaction, workspace, now).await?;
        sqlx::query("DELETE FROM admin_demotions WHERE workspace = $1 AND user_id = $2")
            .bind(workspace)
            .bind(user_id)
            .execute(&mut *transaction)
            .await?;
        let added = insert_admin(&mut transaction, workspace, user_id, by, now).await?;
        transaction.commit().await?;
        Ok(added)
    }

    /// Takes admin rights from a user and records the demotion, so a join token saying
    /// `role: admin` no longer grants them; recorded also for a user who is not an admin
    /// (yet). Returns true if they were an admin. Refuses with
    /// [`MetadataError::LastAdmin`], changing nothing, if they are the only admin.
    pub async fn demote(&self, workspace: &str, user_id: &str, by: &str, now: i64) -> Result<bool> {
        let mut transaction = self.pool.begin().await?;
        lock_workspace(&mut transaction, workspace, now).await?;
        let was_admin = remove_admin_unless_last(&mut transaction, workspace, user_id).await?;
        record_demotion(&mut transaction, workspace, user_id, by, now).await?;
        transaction.commit().await?;
        Ok(was_admin)
    }
}

pub(crate) async fn ensure_workspace(connection: &mut AnyConnection, name: &str, now: i64) -> Result<()> {
    sqlx::query("INSERT INTO workspaces (name, created_at) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING")
        .bind(name)
        .bind(now)
        .execute(connection)
        .await?;
    Ok(())
}

/// Creates the workspace row if needed and holds it until the transaction ends. Must be
/// the transaction's first statement: it writes, so on SQLite it takes the database's
/// write lock before anything is read, and on PostgreSQL it holds the row's lock, which
/// every other change to the workspace's admins waits for.
pub(crate) async fn lock_workspace(connection: &mut AnyConnection, workspace: &str, now: i64) -> Result<()> {
    sqlx::query(
        "INSERT INTO workspaces (name, created_at) VALUES ($1, $2) \
         ON CONFLICT (name) DO UPDATE SET created_at = workspaces.created_at",
    )
    .bind(workspace)
    .bind(now)
    .execute(connection)
    .await?;
    Ok(())
}

/// Returns true if the row is new.
async fn insert_admin(
    connection: &mut AnyConnection,
    workspace: &str,
    user_id: &str,
    added_by: &str,
    now: i64,
) -> Result<bool> {
    let done = sqlx::query(
        "INSERT INTO admins (workspace, user_id, added_by, added_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (workspace, user_id) DO NOTHING",
    )
    .bind(workspace)
    .bind(user_id)
    .bind(added_by)
    .bind(now)
    .execute(connection)
    .await?;
    Ok(done.rows_affected() == 1)
}

async fn is_listed_admin(connection: &mut AnyConnection, workspace: &str, user_id: &str) -> Result<bool> {
    let row = sqlx::query("SELECT 1 FROM admins WHERE workspace = $1 AND user_id = $2")
        .bind(workspace)
        .bind(user_id)
        .fetch_optional(connection)
        .await?;
    Ok(row.is_some())
}

async fn is_demoted(connection: &mut AnyConnection, workspace: &str, user_id: &str) -> Result<bool> {
    let row = sqlx::query("SELECT 1 FROM admin_demotions WHERE workspace = $1 AND user_id = $2")
        .bind(workspace)
        .bind(user_id)
        .fetch_optional(connection)
        .await?;
    Ok(row.is_some())
}

/// Removes the user from the admins if they are one and not the only one; returns
/// whether they were one. Run after [`lock_workspace`] in the same transaction.
pub(crate) async fn remove_admin_unless_last(
    connection: &mut AnyConnection,
    workspace: &str,
    user_id: &str,
) -> Result<bool> {
    if !is_listed_admin(connection, workspace, user_id).await? {
        return Ok(false);
    }
    let admins: i64 = sqlx::query("SELECT COUNT(*) AS n FROM admins WHERE workspace = $1")
        .bind(workspace)
        .fetch_one(&mut *connection)
        .await?
        .try_get("n")?;
    if admins <= 1 {
        return Err(MetadataError::LastAdmin);
    }
    sqlx::query("DELETE FROM admins WHERE workspace = $1 AND user_id = $2")
        .bind(workspace)
        .bind(user_id)
        .execute(connection)
        .await?;
    Ok(true)
}

/// Records (or renews) a demotion. Run after [`lock_workspace`] in the same transaction.
pub(crate) async fn record_demotion(
    connection: &mut AnyConnection,
    workspace: &str,
    user_id: &str,
    by: &str,
    now: i64,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO admin_demotions (workspace, user_id, demoted_by, demoted_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (workspace, user_id) DO UPDATE SET demoted_by = excluded.demoted_by, demoted_at = excluded.demoted_at",
    )
    .bind(workspace)
    .bind(user_id)
    .bind(by)
    .bind(now)
    .execute(connection)
    .await?;
    Ok(())
}
