//! Isoplane's STUN/TURN relay (RFC 8489 STUN, RFC 8656 TURN) with TURN REST API
//! credentials minted by signaling.
//!
//! # Layout
//!
//! ```text
//! proto/     the wire format: header, attributes, MESSAGE-INTEGRITY, FINGERPRINT,
//!            ChannelData. Pure bytes, no I/O.
//! core/      the server as a sans-IO state machine: auth (long-term credentials, REST
//!            secrets, stateless nonces), allocations, permissions, channels, quotas,
//!            bandwidth caps, the peer address policy, metrics. Time is an argument.
//! net/       the tokio shell: the UDP, TCP and TLS (TURNS) listeners, one relay socket
//!            per allocation, the HTTP server (/healthz, /readyz, /metrics), shutdown.
//! config.rs  `Config`: what the operator sets (serde, TOML + env overrides).
//! ```
//!
//! # The loop rule
//!
//! The shell feeds [`core::TurnCore`] one input at a time (`handle_client`,
//! `handle_peer`, `handle_timeout`, `complete_allocation`) and after each one drains
//! [`core::TurnCore::poll_output`] until it is empty, carrying out every output
//! (send to a client, send to a peer from a relay socket, open or close a relay socket).
//! The core never touches a socket or a clock, so the tests drive it with a virtual clock.

pub mod config;
pub mod core;
pub mod net;
pub mod proto;

pub use config::{Cidr, Config, ConfigError};
pub use net::{BoundServer, ServeError, serve};
