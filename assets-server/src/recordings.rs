//! Recordings in the object store, as the SFU writes them (its `recording::session`
//! module has the layout): listed from their manifests, served as whole WebM files
//! (a track's header then its clusters, streamed one object at a time), deleted whole.
//!
//! A manifest without `stopped_at` is a recording in progress while the SFU keeps
//! rewriting it; once it is older than [`STALE_AFTER_MS`] its SFU stopped without
//! finishing it (a crash): the recording is `incomplete`, and what was written plays.

use std::sync::Arc;

use bytes::Bytes;
use futures_util::stream::{self, BoxStream};
use futures_util::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use serde::{Deserialize, Serialize};

/// Folder of every recording in the store.
pub const PREFIX: &str = "recordings";
/// The SFU rewrites a live recording's manifest every 10 s: three missed rewrites and
/// the recording is taken for dead.
pub const STALE_AFTER_MS: i64 = 30_000;

/// What a manifest says (the fields the asset server uses; others are kept as they are).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub id: String,
    pub room: String,
    pub started_by: String,
    pub started_at: i64,
    pub stopped_at: Option<i64>,
    pub updated_at: i64,
    pub tracks: Vec<serde_json::Map<String, serde_json::Value>>,
}

/// Where a recording stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Recording,
    Complete,
    /// Its SFU stopped without finishing it: what was written is readable.
    Incomplete,
}

/// A recording as listed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Recording {
    #[serde(flatten)]
    pub manifest: Manifest,
    pub status: Status,
}

impl Manifest {
    pub fn status(&self, now_ms: i64) -> Status {
        match self.stopped_at {
            Some(_) => Status::Complete,
            None if now_ms - self.updated_at > STALE_AFTER_MS => Status::Incomplete,
            None => Status::Recording,
        }
    }

    /// When it last changed: its end, or its last sign of life.
    pub fn last_activity(&self) -> i64 {
        self.stopped_at.unwrap_or(self.updated_at)
    }
}

/// Whether `name` may be a recording ID or a track's file name: they become object keys.
pub fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Why a recording could not be read or removed.
#[derive(Debug, thiserror::Error)]
pub enum RecordingError {
    #[error("object store: {0}")]
    Store(#[from] object_store::Error),
    #[error("the manifest of recording {id} is not readable: {source}")]
    Manifest { id: String, source: serde_json::Error },
}

/// The recordings in a store.
#[derive(Debug, Clone)]
pub struct Recordings {
    store: Arc<dyn ObjectStore>,
}

impl Recordings {
    pub fn new(store: Arc<dyn ObjectStore>) -> Recordings {
        Recordings { store }
    }

    /// Every recording with a manifest, newest first. A manifest that cannot be read is
    /// logged and left out: one broken recording does not hide the others.
    pub async fn list(&self, now_ms: i64) -> Result<Vec<Recording>, RecordingError> {
        let listing = self.store.list_with_delimiter(Some(&Path::from(PREFIX))).await?;
        let mut recordings = Vec::new();
        for folder in listing.common_prefixes {
            let Some(id) = folder.filename() else { continue };
            match self.get(id, now_ms).await {
                Ok(Some(recording)) => recordings.push(recording),
                Ok(None) => {}
                Err(error) => tracing::warn!(%error, id, "a recording left out of the listing"),
            }
        }
        recordings.sort_by_key(|r| std::cmp::Reverse(r.manifest.started_at));
        Ok(recordings)
    }

    /// One recording, if it has a manifest.
    pub async fn get(&self, id: &str, now_ms: i64) -> Result<Option<Recording>, RecordingError> {
        let key = Path::from(format!("{PREFIX}/{id}/manifest.json"));
        let bytes = match self.store.get(&key).await {
            Ok(found) => found.bytes().await?,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(error) => return Err(error.into()),
        };
        let manifest: Manifest =
            serde_json::from_slice(&bytes).map_err(|source| RecordingError::Manifest { id: id.to_owned(), source })?;
        let status = manifest.status(now_ms);
        Ok(Some(Recording { manifest, status }))
    }

    /// A track's whole file: its header, then its clusters in order, streamed one object
    /// at a time; `None` when the track has no header (nothing was written).
    pub async fn file(
        &self,
        id: &str,
        file: &str,
    ) -> Result<Option<BoxStream<'static, Result<Bytes, object_store::Error>>>, RecordingError> {
        let folder = Path::from(format!("{PREFIX}/{id}/{file}"));
        let mut parts: Vec<Path> = self.store.list(Some(&folder)).map_ok(|meta| meta.location).try_collect().await?;
        let header = Path::from(format!("{PREFIX}/{id}/{file}/header.webm"));
        if !parts.contains(&header) {
            return Ok(None);
        }
        parts.retain(|part| *part != header);
        // Clusters are numbered with leading zeros: their names sort in order.
        parts.sort();
        parts.insert(0, header);
        let store = Arc::clone(&self.store);
        let stream = stream::iter(parts)
            .then(move |part| {
                let store = Arc::clone(&store);
                async move { store.get(&part).await.map(|found| found.into_stream()) }
            })
            .try_flatten();
        Ok(Some(stream.boxed()))
    }

    /// Deletes every object of a recording; returns how many there were.
    pub async fn delete(&self, id: &str) -> Result<usize, RecordingError> {
        let folder = Path::from(format!("{PREFIX}/{id}"));
        let objects: Vec<Path> = self.store.list(Some(&folder)).map_ok(|meta| meta.location).try_collect().await?;
        for object in &objects {
            match self.store.delete(object).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(error) => return Err(error.into()),
            }
        }
        Ok(objects.len())
    }

    /// The IDs of the recordings whose last activity is before `cutoff_ms` and that are
    /// not in progress.
    pub async fn expired(&self, now_ms: i64, cutoff_ms: i64) -> Result<Vec<String>, RecordingError> {
        Ok(self
            .list(now_ms)
            .await?
            .into_iter()
            .filter(|r| r.status != Status::Recording && r.manifest.last_activity() < cutoff_ms)
            .map(|r| r.manifest.id)
            .collect())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use object_store::PutPayload;
    use object_store::memory::InMemory;

    use super::*;

    async fn put(store: &Arc<dyn ObjectStore>, key: &str, bytes: &[u8]) {
        store.put(&Path::from(key), PutPayload::from(bytes.to_vec())).await.unwrap();
    }

    fn manifest(id: &str, started_at: i64, stopped_at: Option<i64>, updated_at: i64) -> Vec<u8> {
        let manifest = serde_json::json!({
            "id": id, "room": "demo/meeting", "started_by": "Ada", "started_at": started_at,
            "stopped_at": stopped_at, "updated_at": updated_at,
            "tracks": [{"file": "a1-camera", "kind": "video", "codec": "vp8"}],
        });
        serde_json::to_vec(&manifest).unwrap()
    }

    #[tokio::test]
    async fn recordings_are_listed_with_their_status_and_files_served_whole_in_order() {
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        put(&store, "recordings/done/manifest.json", &manifest("done", 1_000, Some(9_000), 9_000)).await;
        put(&store, "recordings/live/manifest.json", &manifest("live", 2_000, None, 95_000)).await;
        put(&store, "recordings/dead/manifest.json", &manifest("dead", 3_000, None, 10_000)).await;
        put(&store, "recordings/broken/manifest.json", b"{").await;
        put(&store, "recordings/done/a1-camera/000002.webm", b"C2").await;
        put(&store, "recordings/done/a1-camera/header.webm", b"H").await;
        put(&store, "recordings/done/a1-camera/000001.webm", b"C1").await;
        let recordings = Recordings::new(store);

        let listed = recordings.list(100_000).await.unwrap();
        let summary: Vec<(&str, Status)> = listed.iter().map(|r| (r.manifest.id.as_str(), r.status)).collect();
        assert_eq!(summary, [("dead", Status::Incomplete), ("live", Status::Recording), ("done", Status::Complete)]);

        let file = recordings.file("done", "a1-camera").await.unwrap().unwrap();
        let bytes: Vec<Bytes> = file.try_collect().await.unwrap();
        assert_eq!(bytes.concat(), b"HC1C2");
        assert!(recordings.file("done", "a2-camera").await.unwrap().is_none());

        assert_eq!(recordings.expired(100_000, 50_000).await.unwrap(), ["dead", "done"]);
        assert_eq!(recordings.delete("done").await.unwrap(), 4);
        assert!(recordings.get("done", 100_000).await.unwrap().is_none());
    }

    #[test]
    fn names_that_could_leave_a_recording_are_refused() {
        assert!(valid_name("a12-camera"));
        assert!(!valid_name("../x"));
        assert!(!valid_name(""));
        assert!(!valid_name("a b"));
    }
}
