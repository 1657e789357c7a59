//! Isoplane's control plane: who is in which world and zone, where they stand, what they
//! hold, and how their media flows.
//!
//! The client is optimistic and the server corrective: clients move at once and send
//! `MoveIntent`s; the server checks each against the world (walls, speed, exclusive
//! objects) and answers a bad one with a `PositionCorrection`. Presence is synchronised
//! by zone, never by world. Clients never choose their media topology.
//!
//! # Layout
//! - [`protocol`]: the `/v1/ws` messages (JSON control, binary presence and moves).
//! - [`engine`]: one world's presence, movement correction, occupancy and media plans, as
//!   a sans-IO state machine with time passed in.
//! - [`policy`]: the per-zone media decision (mesh or SFU, with hysteresis).
//! - [`auth`]: HS256 join tokens (algorithm pinned) and SFU tokens.
//! - [`turn_credentials`]: TURN REST API credentials.
//! - [`client`]: a Rust client of the protocol (tests, load tool, scripts).
//! - [`config`]: the server's settings; [`server`]: the tokio/axum shell around the
//!   engines (routes, connections, one task per world).

/// Tokens live in their own crate, shared with the asset server and the SFU.
pub use isoplane_auth as auth;
pub mod client;
pub mod config;
pub mod engine;
pub mod policy;
pub mod protocol;
pub mod server;
pub mod turn_credentials;
