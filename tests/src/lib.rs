//! Cross-service tests for Isoplane.
//!
//! The tests live in `tests/tests/*.rs` and start the services in-process on ephemeral
//! loopback ports, talking to each other over HTTP and WebSocket as deployed. The browser
//! end-to-end tests are in `tests/browser/` (Node.js + Debian's Chromium), and the
//! `isoplane` binary's own tests in `tests/cli.rs` (they belong to the root package).

pub mod crowd;
