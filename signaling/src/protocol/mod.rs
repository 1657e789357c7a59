//! The client ↔ signaling protocol at `/v1/ws`, shared by the server, the Rust client
//! library and the load tool (docs/protocol.md is its specification).
//!
//! JSON text frames carry control messages ([`ClientMessage`], [`ServerMessage`]);
//! binary frames carry the hot path ([`binary`]: move intents in, presence out).

mod admin;
pub mod binary;
mod chat;
mod control;
mod errors;

pub use admin::*;
pub use chat::*;
pub use control::*;
pub use errors::ErrorCode;

/// The protocol version in `welcome`; it changes only with incompatible changes.
pub const PROTOCOL_VERSION: u32 = 1;

/// Largest text or binary frame the server accepts from a client.
pub const MAX_CLIENT_FRAME_BYTES: usize = 16 * 1024;

/// Reads a client's text frame.
pub fn parse_client_message(text: &str) -> Result<ClientMessage, serde_json::Error> {
    serde_json::from_str(text)
}
