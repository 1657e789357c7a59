//! Isoplane's control plane (not built yet).
//!
//! This crate will hold the signaling server: join tokens, world join/leave, presence by
//! zone, `MoveIntent` validation answered by `PositionCorrection`, exclusive occupancy,
//! the WebRTC signaling relay and the media policy (P2P, then TURN, then SFU). Movement
//! rules come from `isoplane-world-format`, which already provides the move check and
//! the zone and object lookups the server needs. Until the server lands, this crate
//! exports nothing.
