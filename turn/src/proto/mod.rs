//! The STUN/TURN wire format (RFC 8489, RFC 8656): pure bytes in, bytes out.
//!
//! Nothing here does I/O or reads a clock. Parsing never panics and never allocates
//! except where a typed attribute needs an owned value; every length read from the wire
//! is checked against the buffer first (the `stun_message` fuzz target holds us to it).
//!
//! - [`message`]: the 20-byte header and a zero-copy view of a message's attributes.
//! - [`attr`]: attribute numbers and typed decoders/encoders (XOR addresses, error codes…).
//! - [`builder`]: writes a message, then MESSAGE-INTEGRITY and FINGERPRINT.
//! - [`integrity`]: HMAC-SHA1 MESSAGE-INTEGRITY, the CRC-32 FINGERPRINT, long-term keys.
//! - [`channel_data`]: the 4-byte-header ChannelData frame and stream framing.

pub mod attr;
pub mod builder;
pub mod channel_data;
pub mod integrity;
pub mod message;

pub use builder::MessageBuilder;
pub use channel_data::{ChannelData, FrameKind, frame_length};
pub use message::{Class, Message, Method, ParseError, TransactionId};

/// The fixed value in bytes 4..8 of every STUN message.
pub const MAGIC_COOKIE: u32 = 0x2112_A442;
/// Size of the STUN header.
pub const HEADER_LEN: usize = 20;

#[cfg(test)]
mod rfc5769_tests;
