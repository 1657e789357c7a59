//! Isoplane's asset server: immutable, content-addressed assets and versioned world
//! files, with object storage for bytes and SQL for metadata.
//!
//! - Assets are named by the SHA-256 of their bytes (`sha256-…`, see
//!   [`isoplane_world_format::ContentId`]), uploaded by workspace admins, served forever
//!   with `Cache-Control: immutable`, strong ETags and ranges.
//! - World files are published as versions (validated first, every referenced image
//!   present), and each world has a current-version pointer moved only by
//!   compare-and-set, so a stale edit never overwrites a newer one.
//! - Metadata (assets, worlds, workspaces, admins, moderation records) lives in SQL
//!   through the `isoplane-metadata` crate, which the signaling server shares; it is
//!   re-exported here as [`metadata`].
//!
//! The HTTP API, the configuration and the storage layout are in `docs/assets.md`.
//!
//! # Layout
//! - [`rules`]: the HTTP rules of delivery and upload as pure functions (media types,
//!   ranges, entity tags). No I/O.
//! - [`store`]: [`AssetStore`], bytes in object storage (local directory or S3); uploads
//!   stream to a temporary object and become visible under their ID only complete.
//! - [`metadata`]: [`Metadata`] from the `isoplane-metadata` crate (`metadata/` at the
//!   workspace root): the SQL tables on SQLite or PostgreSQL, migrations, optimistic
//!   concurrency of world versions, admins, moderation records.
//! - [`cache`]: the in-memory cache of small, hot assets.
//! - [`recordings`]: the SFU's recordings in the same store: listed, served, deleted.
//! - [`config`]: [`Config`], TOML plus `ISOPLANE_ASSETS_*` overrides, validated whole.
//! - [`server`]: the axum shell: `bind(config)` → [`server::BoundServer`] with
//!   `local_addr()` and `run(shutdown)`; routes in `server/assets.rs` and
//!   `server/worlds.rs`, `server/recordings.rs`; `/healthz`, `/readyz`, `/metrics`.
//! - `main.rs`: the thin `isoplane-assets` binary.
//!
//! # Using the storage from another service
//! ```no_run
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! let config = isoplane_assets::Config { token_secret: "x".repeat(16), ..Default::default() };
//! let (metadata, store) = isoplane_assets::server::open_storage(&config).await?;
//! if let Some((version, json)) = isoplane_assets::load_current_world(&metadata, &store, "default", "lobby").await? {
//!     println!("world version {} is {} bytes", version.version, json.len());
//! }
//! # Ok(()) }
//! ```

pub mod cache;
pub mod config;
pub mod recordings;
pub mod rules;
pub mod server;
pub mod store;

pub use config::{Config, ConfigError};
#[cfg(feature = "testing")]
pub mod testing;
pub use isoplane_metadata as metadata;
pub use metadata::{AssetRecord, AuditEntry, Backend, Ban, Metadata, MetadataError, WorldSummary, WorldVersion};
pub use store::{AssetStore, StoreError};

/// Why a world could not be loaded from storage.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Metadata(#[from] MetadataError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("world file {0} is recorded but missing from the object store")]
    MissingFile(isoplane_world_format::ContentId),
}

/// The current version of a world and its file (canonical JSON, already validated when
/// it was published), or None if the world has no current version.
pub async fn load_current_world(
    metadata: &Metadata,
    store: &AssetStore,
    workspace: &str,
    world: &str,
) -> Result<Option<(WorldVersion, bytes::Bytes)>, LoadError> {
    let Some(version) = metadata.current_version(workspace, world).await? else { return Ok(None) };
    let bytes = store
        .get_bytes(&version.content_id)
        .await?
        .ok_or_else(|| LoadError::MissingFile(version.content_id.clone()))?;
    Ok(Some((version, bytes)))
}
