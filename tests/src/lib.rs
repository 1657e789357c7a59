//! Cross-service tests for Isoplane.
//!
//! The tests live in `tests/tests/*.rs`; this library will hold the helpers they share
//! (starting servers on ephemeral loopback ports, clients) as the services land.
