//! The uploader: writes a worker's recording pieces to the object store, in the order they
//! were handed out, on the service's multi-threaded runtime (never on the worker's thread,
//! between its media packets).
//!
//! Each piece is a whole object put at once (a cluster of a few seconds, a header, a
//! manifest), so nothing is kept open in the store and what was put stays readable if
//! the SFU dies. The queue is bounded: a store too slow to keep up loses pieces (counted
//! in `isoplane_sfu_recording_writes_dropped_total`; the file has a gap there, and its
//! manifest still says what was recorded), never the worker's time or memory.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use tokio::runtime::Handle;
use tokio::sync::mpsc;

use super::session::StoreWrite;
use crate::metrics::Metrics;

/// Pieces waiting for the store, per worker: with clusters of ≤ 5 s and a manifest
/// every 10 s, a minute of a busy room.
const QUEUE: usize = 512;
/// Bytes waiting for the store, per worker, at most.
const QUEUE_BYTES: usize = 64 * 1024 * 1024;

/// How long a stopping worker waits for its last pieces to reach the store.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(10);

/// Where a worker sends its recordings' pieces.
#[derive(Debug)]
pub struct RecordingStore {
    queue: mpsc::Sender<StoreWrite>,
    /// Bytes queued and not yet written.
    queued_bytes: Arc<AtomicUsize>,
    metrics: Arc<Metrics>,
    uploader: tokio::task::JoinHandle<()>,
}

impl RecordingStore {
    /// Starts the uploader on `runtime`; it ends when the store is dropped (or closed)
    /// and the queue is empty.
    pub fn start(store: Arc<dyn ObjectStore>, metrics: Arc<Metrics>, runtime: &Handle) -> RecordingStore {
        let (queue, mut pieces) = mpsc::channel::<StoreWrite>(QUEUE);
        let counters = Arc::clone(&metrics);
        let queued_bytes = Arc::new(AtomicUsize::new(0));
        let written_bytes = Arc::clone(&queued_bytes);
        let uploader = runtime.spawn(async move {
            while let Some(StoreWrite { key, bytes }) = pieces.recv().await {
                let length = bytes.len();
                let put = store.put(&Path::from(key.as_str()), PutPayload::from_bytes(bytes)).await;
                written_bytes.fetch_sub(length, Ordering::Relaxed);
                match put {
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
        RecordingStore { queue, queued_bytes, metrics, uploader }
    }

    /// Queues the pieces, in order; those that do not fit are dropped and counted.
    pub fn submit(&self, writes: Vec<StoreWrite>) {
        for write in writes {
            let length = write.bytes.len();
            if self.queued_bytes.load(Ordering::Relaxed) + length > QUEUE_BYTES {
                self.metrics.recording_writes_dropped.inc();
                continue;
            }
            self.queued_bytes.fetch_add(length, Ordering::Relaxed);
            if self.queue.try_send(write).is_err() {
                self.queued_bytes.fetch_sub(length, Ordering::Relaxed);
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
