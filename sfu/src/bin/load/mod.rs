//! The SFU load tool's parts: synthetic media ([`media`]), one WebRTC peer ([`peer`]),
//! what receivers measure ([`stats`]), the server seen through /proc ([`server`]), and
//! one module per target: [`isoplane`], [`janus`], and [`direct`] (no SFU: the
//! baseline).

pub mod direct;
pub mod isoplane;
pub mod janus;
pub mod media;
pub mod peer;
pub mod run;
pub mod server;
pub mod stats;
