//! Assets: one row per content ID, written once the bytes are stored and never changed.

use isoplane_world_format::ContentId;
use sqlx::Row;

use crate::{Metadata, MetadataError, Result};

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

/// Sizes are stored as signed 64-bit integers, which both engines have.
fn size_to_sql(size: u64) -> i64 {
    i64::try_from(size).unwrap_or(i64::MAX)
}

impl Metadata {
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
}
