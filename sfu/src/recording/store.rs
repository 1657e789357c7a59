//! The uploader: writes a worker's recording pieces to the object store, in the order they
//! were handed out, off the worker's thread.
//!
//! Each piece is a whole object put at once (a cluster of a few seconds, a header, a
//! manifest), so nothing is kept open in the store and what was put stays readable if
//! the SFU dies. The queue is bounded: a store too slow to keep up loses pieces (counted
//! in `isoplane_sfu_recording_writes_dropped_total`; the file has a gap there, and its
//! manifest still says what was recorded), never the worker's time or memory.

use std::sync::Arc;
use std::time::Duration;

use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use tokio::sync::mpsc;

use super::session::StoreWrite;
use crate::metrics::Metrics;

/// Pieces waiting for the store, per worker: with clusters of ≤ 5 s and a manifest
/// every 10 s, a minute of a busy room.
const QUEUE: usize = 512;

/// How long a stopping worker waits for its last pieces to reach the store.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(10);

/// Where a worker sends its recordings' pieces.
#[derive(Debug)]
pub struct RecordingStore {
    queue: mpsc::Sender<StoreWrite>,
    metrics: Arc<Metrics>,
    uploader: tokio::task::JoinHandle<()>,
}

impl RecordingStore {
    /// Starts the uploader on the current runtime; it ends when every handle is dropped
    /// and the queue is empty.
    pub fn start(store: Arc<dyn ObjectStore>, metrics: Arc<Metrics>) -> RecordingStore {
        let (queue, mut pieces) = mpsc::channel::<StoreWrite>(QUEUE);
        let counters = Arc::clone(&metrics);
        let uploader = tokio::spawn(async move {
            while let Some(StoreWrite { key, bytes }) = pieces.recv().await {
                match store.put(&Path::from(key.as_str()), PutPayload::from_bytes(bytes)).await {
                    Ok(_) => {
                        counters.recording_writes.inc();
                    }
                    Err(error) => {
                        counters.recording_write_failures.inc();
                        tracing::warn!(%error, key, "cannot write a recording piece to the object store");
                    }
                }
            }
        });
        RecordingStore { queue, metrics, uploader }
    }

    /// Queues the pieces, in order; those that do not fit are dropped and counted.
    pub fn submit(&self, writes: Vec<StoreWrite>) {
        for write in writes {
            if self.queue.try_send(write).is_err() {
                self.metrics.recording_writes_dropped.inc();
            }
        }
    }

    /// Waits (a while) for what was queued to be written: the worker is stopping, and the
    /// final headers and manifests should not be lost with it.
    pub async fn close(self) {
        let RecordingStore { queue, uploader, .. } = self;
        drop(queue);
        if tokio::time::timeout(CLOSE_TIMEOUT, uploader).await.is_err() {
            tracing::warn!("the object store did not take the last recording pieces in time");
        }
    }
}
