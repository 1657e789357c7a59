//! Isoplane's selective forwarding unit (not built yet).
//!
//! This crate will receive WebRTC streams from the publishers of a crowded zone or a
//! meeting room and forward them selectively to its subscribers (str0m in RTP mode, no
//! mixing). It must never depend on `isoplane-signaling`: signaling drives it through
//! its control API. Until then, this crate exports nothing.
