//! Isoplane's STUN/TURN relay (not built yet).
//!
//! This crate will relay media for peers whose NATs block a direct path, with the TURN
//! REST API credentials that signaling mints. Until then, this crate exports nothing.
