//! Cross-service tests for Isoplane.
//!
//! The tests live in `tests/tests/*.rs` and start the services in-process on ephemeral
//! loopback ports, talking to each other over HTTP and WebSocket as deployed. The browser
//! end-to-end tests are in `tests/browser/` (Node.js + Debian's Chromium), and the
//! `isoplane` binary's own tests in `tests/cli.rs` (they belong to the root package).
//!
//! Support code shared by those tests: [`stack`] runs docker-compose.yml's services
//! natively (each one a process a test may kill and restart), [`compose`] reads the
//! compose file as Compose would, [`postgres`] gives a test a PostgreSQL server of its own,
//! [`crowd`] simulates people, [`pages`] drives real browser pages (Chromium) from a Rust test.

pub mod compose;
pub mod crowd;
pub mod pages;
pub mod postgres;
pub mod stack;
