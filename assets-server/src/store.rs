//! Asset bytes in object storage: a local directory by default, any S3-compatible store
//! in production (both through `object_store`).
//!
//! Layout inside the store (or the bucket):
//! - `assets/sha256-…`: complete assets, named by their content ID, never rewritten.
//! - `uploads/<random>`: uploads in progress.
//!
//! Invariants:
//! - An object appears under `assets/` only complete and only under the ID of its bytes:
//!   an [`Upload`] streams to a temporary object under `uploads/`, hashing and counting
//!   on the way, and is renamed to its content ID once every byte arrived; any failure
//!   (too large, client gone, store error) aborts and deletes the temporary object.
//! - Keys are only ever built from a parsed [`ContentId`] or a random upload name, so no
//!   request can name a key outside these two folders.
//! - Rewriting an asset key is harmless: the same key always holds the same bytes.

use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use isoplane_world_format::ContentId;
use object_store::path::Path;
use object_store::{GetOptions, GetRange, ObjectStore, ObjectStoreExt, PutPayload, WriteMultipart};
use sha2::{Digest, Sha256};

/// Folder of complete assets.
pub const ASSETS_PREFIX: &str = "assets";
/// Folder of uploads in progress.
pub const UPLOADS_PREFIX: &str = "uploads";
/// Bytes buffered before a part is sent to the store (S3's minimum part size).
const PART_BYTES: usize = 5 * 1024 * 1024;
/// Parts in flight per upload; bounds an upload's memory to about 3 parts.
const PARTS_IN_FLIGHT: usize = 2;

/// Why a storage operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Open(#[from] isoplane_service::object_storage::OpenStoreError),
    #[error("object store: {0}")]
    Object(#[from] object_store::Error),
}

/// Why an upload stopped.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    #[error("the upload is larger than {limit} bytes")]
    TooLarge { limit: u64 },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The asset store.
#[derive(Debug, Clone)]
pub struct AssetStore {
    inner: Arc<dyn ObjectStore>,
}

/// A byte range of an asset being read, as a stream.
pub struct ObjectRead {
    /// Bytes of the object this stream yields.
    pub range: Range<u64>,
    /// Size of the whole object.
    pub size: u64,
    pub stream: BoxStream<'static, Result<Bytes, StoreError>>,
}

impl std::fmt::Debug for ObjectRead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectRead").field("range", &self.range).field("size", &self.size).finish()
    }
}

/// The key of a complete asset.
pub fn asset_key(id: &ContentId) -> Path {
    Path::from(format!("{ASSETS_PREFIX}/{id}"))
}

impl AssetStore {
    /// The object store underneath (the SFU's recordings are there too).
    pub fn objects(&self) -> Arc<dyn ObjectStore> {
        Arc::clone(&self.inner)
    }

    /// A store over any `object_store` implementation.
    pub fn from_object_store(inner: Arc<dyn ObjectStore>) -> AssetStore {
        AssetStore { inner }
    }

    /// Starts an upload to a fresh temporary object. It accepts at most `limit` bytes.
    pub async fn begin_upload(&self, limit: u64) -> Result<Upload, StoreError> {
        let temp = Path::from(format!("{UPLOADS_PREFIX}/{:032x}", rand::random::<u128>()));
        let multipart = self.inner.put_multipart(&temp).await?;
        Ok(Upload {
            store: self.inner.clone(),
            writer: WriteMultipart::new_with_chunk_size(multipart, PART_BYTES),
            temp,
            hasher: Sha256::new(),
            size: 0,
            limit,
        })
    }

    /// Stores small bytes in one request (world files) and returns their ID. Visible only
    /// complete: a single put is atomic on both stores.
    pub async fn put_bytes(&self, bytes: Bytes) -> Result<ContentId, StoreError> {
        let id = ContentId::of_bytes(&bytes);
        self.inner.put(&asset_key(&id), PutPayload::from_bytes(bytes)).await?;
        Ok(id)
    }

    /// Size of a stored asset, or None if it is not there.
    pub async fn head(&self, id: &ContentId) -> Result<Option<u64>, StoreError> {
        match self.inner.head(&asset_key(id)).await {
            Ok(meta) => Ok(Some(meta.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(error) => Err(error.into()),
        }
    }

    /// The whole asset in memory, or None if it is not there.
    pub async fn get_bytes(&self, id: &ContentId) -> Result<Option<Bytes>, StoreError> {
        match self.inner.get(&asset_key(id)).await {
            Ok(result) => Ok(Some(result.bytes().await?)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(error) => Err(error.into()),
        }
    }

    /// Streams an asset, or the bytes `range` of it; None if it is not there. The range
    /// must be within the object (the caller checked it against the recorded size).
    pub async fn read(&self, id: &ContentId, range: Option<Range<u64>>) -> Result<Option<ObjectRead>, StoreError> {
        let options = GetOptions { range: range.map(GetRange::Bounded), ..GetOptions::default() };
        match self.inner.get_opts(&asset_key(id), options).await {
            Ok(result) => Ok(Some(ObjectRead {
                range: result.range.clone(),
                size: result.meta.size,
                stream: result.into_stream().map(|chunk| chunk.map_err(StoreError::from)).boxed(),
            })),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(error) => Err(error.into()),
        }
    }

    /// Checks that the store answers (a listing of one level of the assets folder).
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.inner.list_with_delimiter(Some(&Path::from(ASSETS_PREFIX))).await?;
        Ok(())
    }

    /// Deletes temporary uploads last modified before `before_unix` (left by a crash;
    /// live uploads are newer). Returns how many were deleted.
    pub async fn remove_stale_uploads(&self, before_unix: i64) -> Result<usize, StoreError> {
        let mut stale = Vec::new();
        let mut listing = self.inner.list(Some(&Path::from(UPLOADS_PREFIX)));
        while let Some(meta) = listing.next().await {
            let meta = meta?;
            if meta.last_modified.timestamp() < before_unix {
                stale.push(meta.location);
            }
        }
        for key in &stale {
            match self.inner.delete(key).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(error) => return Err(error.into()),
            }
        }
        Ok(stale.len())
    }

    /// Every key in the store, sorted (tests and tools).
    pub async fn list_keys(&self) -> Result<Vec<String>, StoreError> {
        let mut keys = Vec::new();
        let mut listing = self.inner.list(None);
        while let Some(meta) = listing.next().await {
            keys.push(meta?.location.to_string());
        }
        keys.sort();
        Ok(keys)
    }
}

/// An upload in progress: a temporary object, the hash and the size so far.
///
/// Finish it with [`Upload::finish`] or drop it with [`Upload::abort`]; an upload dropped
/// without either leaves a temporary object that [`AssetStore::remove_stale_uploads`]
/// deletes later (and which is never visible as an asset).
#[derive(Debug)]
pub struct Upload {
    store: Arc<dyn ObjectStore>,
    writer: WriteMultipart,
    temp: Path,
    hasher: Sha256,
    size: u64,
    limit: u64,
}

impl Upload {
    /// Appends bytes. Refuses (writing nothing of them) once the total would pass the limit.
    pub async fn write(&mut self, chunk: &[u8]) -> Result<(), UploadError> {
        let size = self.size.saturating_add(chunk.len() as u64);
        if size > self.limit {
            return Err(UploadError::TooLarge { limit: self.limit });
        }
        self.size = size;
        self.hasher.update(chunk);
        self.writer.wait_for_capacity(PARTS_IN_FLIGHT).await.map_err(StoreError::from)?;
        self.writer.write(chunk);
        Ok(())
    }

    /// Bytes written so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The ID of the bytes written so far (the asset's ID once every byte is written).
    pub fn content_id(&self) -> ContentId {
        ContentId::from_digest(self.hasher.clone().finalize().into())
    }

    /// Completes the temporary object and moves it to its content ID. On failure the
    /// temporary object is deleted (best effort) and nothing is visible.
    pub async fn finish(self) -> Result<(ContentId, u64), StoreError> {
        let Upload { store, writer, temp, hasher, size, .. } = self;
        let id = ContentId::from_digest(hasher.finalize().into());
        if let Err(error) = writer.finish().await {
            let _ = store.delete(&temp).await;
            return Err(error.into());
        }
        if let Err(error) = store.rename(&temp, &asset_key(&id)).await {
            let _ = store.delete(&temp).await;
            return Err(error.into());
        }
        Ok((id, size))
    }

    /// Abandons the upload and deletes what was sent so far.
    pub async fn abort(self) {
        let Upload { store, writer, temp, .. } = self;
        let _ = writer.abort().await;
        // A local store may have created the temporary file already.
        let _ = store.delete(&temp).await;
    }
}
