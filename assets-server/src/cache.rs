//! An in-memory cache of asset metadata and, for small assets, their bytes.
//!
//! Assets never change, so an entry is never stale: it only leaves the cache to make
//! room. Entries are evicted oldest first when the byte budget is full. The cache is a
//! short std `Mutex` section with no `.await` inside; a miss is filled by the caller.
//!
//! Invariants: the bytes held never exceed `max_bytes`; an entry's bytes, when present,
//! are the whole asset (whose SHA-256 is its ID: the store wrote them under that name).

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use axum::http::HeaderValue;
use bytes::Bytes;
use isoplane_world_format::ContentId;

/// What the server needs to answer a request for an asset.
#[derive(Debug, Clone)]
pub struct CachedAsset {
    pub size: u64,
    /// The `Content-Type` and `ETag` answers, ready to send (cheap to clone).
    pub content_type: HeaderValue,
    pub etag: HeaderValue,
    /// The whole content, for assets small enough to keep in memory.
    pub bytes: Option<Bytes>,
}

#[derive(Debug, Default)]
struct Inner {
    entries: HashMap<ContentId, CachedAsset>,
    order: VecDeque<ContentId>,
    bytes: u64,
}

/// The cache.
#[derive(Debug)]
pub struct AssetCache {
    inner: Mutex<Inner>,
    max_bytes: u64,
    max_object_bytes: u64,
    max_entries: usize,
}

impl AssetCache {
    pub fn new(max_bytes: u64, max_object_bytes: u64) -> AssetCache {
        AssetCache { inner: Mutex::new(Inner::default()), max_bytes, max_object_bytes, max_entries: 100_000 }
    }

    /// Whether an asset of this size has its bytes kept.
    pub fn keeps_bytes_of(&self, size: u64) -> bool {
        size <= self.max_object_bytes && size <= self.max_bytes
    }

    pub fn get(&self, id: &ContentId) -> Option<CachedAsset> {
        let inner = self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        inner.entries.get(id).cloned()
    }

    /// Remembers an asset, evicting the oldest entries if needed. Bytes too large to keep
    /// are dropped and only the metadata is remembered.
    pub fn insert(&self, id: ContentId, mut asset: CachedAsset) {
        if asset.bytes.as_ref().is_some_and(|b| !self.keeps_bytes_of(b.len() as u64)) {
            asset.bytes = None;
        }
        let cost = asset.bytes.as_ref().map_or(0, |b| b.len() as u64);
        let mut inner = self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(old) = inner.entries.remove(&id) {
            // Rare (a HEAD, then a GET of a small asset): a linear scan is fine.
            inner.bytes -= old.bytes.as_ref().map_or(0, |b| b.len() as u64);
            inner.order.retain(|key| key != &id);
        }
        while (inner.bytes + cost > self.max_bytes || inner.entries.len() >= self.max_entries)
            && let Some(oldest) = inner.order.pop_front()
        {
            if let Some(old) = inner.entries.remove(&oldest) {
                inner.bytes -= old.bytes.as_ref().map_or(0, |b| b.len() as u64);
            }
        }
        inner.bytes += cost;
        inner.order.push_back(id.clone());
        inner.entries.insert(id, asset);
    }

    /// Bytes of asset content held now.
    pub fn held_bytes(&self) -> u64 {
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn asset(bytes: &'static [u8]) -> CachedAsset {
        CachedAsset {
            size: bytes.len() as u64,
            content_type: HeaderValue::from_static("image/png"),
            etag: HeaderValue::from_static("\"x\""),
            bytes: Some(Bytes::from_static(bytes)),
        }
    }

    #[test]
    fn oldest_entries_make_room_and_the_budget_holds() {
        let cache = AssetCache::new(10, 8);
        let (a, b, c) = (ContentId::of_bytes(b"a"), ContentId::of_bytes(b"b"), ContentId::of_bytes(b"c"));
        cache.insert(a.clone(), asset(b"123456"));
        cache.insert(b.clone(), asset(b"1234"));
        assert_eq!(cache.held_bytes(), 10);
        cache.insert(c.clone(), asset(b"12"));
        assert!(cache.get(&a).is_none(), "the oldest entry left");
        assert!(cache.get(&b).is_some() && cache.get(&c).is_some());
        assert_eq!(cache.held_bytes(), 6);
        // Too large to keep: metadata only.
        cache.insert(a.clone(), asset(b"123456789"));
        assert!(cache.get(&a).is_some_and(|entry| entry.bytes.is_none() && entry.size == 9));
        assert!(cache.held_bytes() <= 10);
    }
}
