//! Isoplane world files: the format every other part of Isoplane reads.
//!
//! A world is a grid of tiles (isometric or orthogonal) with visual layers that name
//! their images by content ID, collision (blocked tiles, thin walls, height levels),
//! zones with a ZoneType, exclusive objects (doors, seats, narrow passages), spawn points
//! and exits. The format is specified in `docs/world-format.md`.
//!
//! This crate is pure logic: no I/O, no clocks. Callers read the bytes and pass elapsed
//! time in.
//!
//! # Layout
//! - [`model`]: the file as plain data ([`WorldFile`] and its parts), each record declared
//!   once with its defaults; that declaration gives both its writer and its reader.
//! - `parse` and `json_reader`: JSON to [`WorldFile`], reporting every error with its path.
//! - `validate`: the rules between fields, and the per-tile index built on the way.
//! - [`World`] (`world`): a validated world and its O(1) queries (zone, object, walkability).
//! - `movement`: the move check servers and clients run on every step.
//! - [`geometry`]: exact fixed-point segment/tile geometry under the move check.
//! - [`projection`]: tile ↔ screen coordinates.
//! - [`content_id`]: `sha256-…` asset IDs.
//! - [`tiled`]: import of Tiled JSON maps.
//! - `json_writer`: the readable JSON that Isoplane writes; [`locate`]: path → line.
//!
//! # Example
//! ```
//! use isoplane_world_format::{World, Position};
//! use std::time::Duration;
//!
//! let world = World::from_json(isoplane_world_format::DEMO_WORLD).expect("the demo world is valid");
//! let spawn = World::spawn_position(world.default_spawn());
//! let step = Position::new(spawn.x + 40, spawn.y);
//! let accepted = world.check_move(spawn, step, Duration::from_millis(66)).expect("a short step is fine");
//! assert_eq!(world.zone(accepted.zone).id, "lobby");
//! ```

pub mod content_id;
pub mod geometry;
mod json_locate;
mod json_reader;
mod json_writer;
pub mod limits;
pub mod model;
mod movement;
mod parse;
mod problem;
pub mod projection;
pub mod tiled;
mod validate;
mod web_origin;
mod world;

pub use content_id::{ContentId, ContentIdError};
pub use geometry::{Position, SUBTILE};
pub use json_locate::locate;
pub use model::*;
pub use movement::{AcceptedMove, MoveRejection, TouchedObjects};
pub use problem::{Problem, WorldErrors};
pub use projection::Projection;
pub use validate::is_valid_id;
pub use web_origin::{is_web_origin, web_origin};
pub use world::{ObjectIndex, World, ZoneIndex, ZoneRef, to_json_pretty};

/// The demo world shipped with Isoplane: every ZoneType and every kind of exclusive object.
pub const DEMO_WORLD: &str = include_str!("../../worlds/demo/world.json");
