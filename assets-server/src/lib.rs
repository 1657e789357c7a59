//! Isoplane's asset server (not built yet).
//!
//! This crate will store immutable, content-addressed assets and versioned world files
//! (object storage for bytes, SQL for metadata) and serve them with immutable caching.
//! Content IDs and world validation already live in `isoplane-world-format`. Until then,
//! this crate exports nothing.
