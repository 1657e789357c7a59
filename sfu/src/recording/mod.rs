//! Recording: RTP streams written to WebM files without transcoding, piece by piece, to
//! the object store (docs/recording.md).
//!
//! - [`depacketize`], [`webm`], [`track`]: one RTP stream to WebM pieces (sans-IO);
//! - [`session`]: one room's recording: its tracks, their files, the manifest (sans-IO);
//! - [`store`]: the uploader that puts the pieces in the object store.

pub mod depacketize;
pub mod session;
pub mod store;
pub mod track;
pub mod webm;
