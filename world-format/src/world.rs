//! [`World`]: a validated world file with the lookup tables servers and clients query.
//!
//! A `World` can only be made by validating a file, so every index it holds is in range
//! and every reference resolves. Per-tile facts (zone, exclusive object, height, walls)
//! sit together in one table so the move check reads one cache line per tile.

use std::collections::HashMap;

use crate::geometry::{Position, SUBTILE};
use crate::model::{ExclusiveObject, Spawn, WorldFile, ZoneKind};
use crate::parse::{self, Unread};
use crate::problem::{Problem, Problems, WorldErrors};
use crate::{limits, validate};

/// A zone's position in [`World::zones`]: 0 is the default zone, `i + 1` is `file.zones[i]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ZoneIndex(pub u16);

impl ZoneIndex {
    pub const DEFAULT: ZoneIndex = ZoneIndex(0);
}

/// An exclusive object's position in `file.objects`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectIndex(pub u16);

/// What the server knows about one tile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TileInfo {
    pub zone: ZoneIndex,
    /// `NO_OBJECT` when no exclusive object covers the tile.
    pub object: u16,
    pub height: u8,
    pub flags: u8,
}

pub(crate) const NO_OBJECT: u16 = u16::MAX;
pub(crate) const TILE_BLOCKED: u8 = 1;
/// A wall runs along the tile's top edge (from its top-left to its top-right corner).
pub(crate) const WALL_NORTH: u8 = 2;
/// A wall runs along the tile's left edge (from its top-left to its bottom-left corner).
pub(crate) const WALL_WEST: u8 = 4;

/// A zone as the server sees it: the default zone or one listed in the file.
#[derive(Debug, Clone, Copy)]
pub struct ZoneRef<'w> {
    pub index: ZoneIndex,
    pub id: &'w str,
    pub name: &'w str,
    pub kind: &'w ZoneKind,
    /// Objects through which alone the zone may be entered (empty: anywhere).
    pub entry_via: &'w [ObjectIndex],
    /// The world file allows recording here.
    pub recording: bool,
    /// Media here is encrypted end to end.
    pub e2ee: bool,
}

/// A validated world.
#[derive(Debug, Clone)]
pub struct World {
    pub(crate) file: WorldFile,
    pub(crate) tiles: Vec<TileInfo>,
    pub(crate) zone_entry: Vec<Vec<ObjectIndex>>,
    pub(crate) object_requires: Vec<Vec<ObjectIndex>>,
    pub(crate) zone_by_id: HashMap<String, ZoneIndex>,
    pub(crate) object_by_id: HashMap<String, ObjectIndex>,
    pub(crate) warnings: Vec<Problem>,
}

impl World {
    /// Parses and validates a world file's JSON, reporting every error found.
    pub fn from_json(text: &str) -> Result<World, WorldErrors> {
        if text.len() > limits::MAX_FILE_BYTES {
            return Err(WorldErrors {
                errors: vec![Problem::new(
                    "$",
                    format!(
                        "the file has {} bytes; world files may have at most {}",
                        text.len(),
                        limits::MAX_FILE_BYTES
                    ),
                )],
            });
        }
        let value: serde_json::Value = serde_json::from_str(text)
            .map_err(|e| WorldErrors { errors: vec![Problem::new("$", format!("not valid JSON: {e}"))] })?;
        let mut problems = Problems::default();
        match parse::read_world_file(&value, &mut problems) {
            Some((file, unread)) => World::build(file, unread, problems),
            None => Err(WorldErrors { errors: problems.errors }),
        }
    }

    /// Validates a world file built in memory (by an importer or a test).
    pub fn from_file(file: WorldFile) -> Result<World, WorldErrors> {
        World::build(file, Unread::default(), Problems::default())
    }

    fn build(file: WorldFile, unread: Unread, mut problems: Problems) -> Result<World, WorldErrors> {
        match validate::validate(&file, unread, &mut problems) {
            Some(index) if problems.errors.is_empty() => Ok(World {
                file,
                tiles: index.tiles,
                zone_entry: index.zone_entry,
                object_requires: index.object_requires,
                zone_by_id: index.zone_by_id,
                object_by_id: index.object_by_id,
                warnings: problems.warnings,
            }),
            _ => Err(WorldErrors { errors: problems.errors }),
        }
    }

    /// The file this world was built from.
    pub fn file(&self) -> &WorldFile {
        &self.file
    }

    /// The canonical JSON of this world (what `docs/world-format.md` describes).
    pub fn to_json_pretty(&self) -> String {
        to_json_pretty(&self.file)
    }

    /// Things worth knowing that do not stop the world from loading.
    pub fn warnings(&self) -> &[Problem] {
        &self.warnings
    }

    pub fn width(&self) -> u32 {
        self.file.grid.width
    }

    pub fn height(&self) -> u32 {
        self.file.grid.height
    }

    pub(crate) fn tile_info(&self, x: i64, y: i64) -> Option<&TileInfo> {
        if x < 0 || y < 0 || x >= i64::from(self.width()) || y >= i64::from(self.height()) {
            return None;
        }
        // In range by the check above, so both casts are lossless.
        self.tiles.get((y as usize) * self.width() as usize + x as usize)
    }

    /// Whether an avatar may stand on this tile (in the grid and not blocked).
    pub fn is_walkable(&self, x: i64, y: i64) -> bool {
        self.tile_info(x, y).is_some_and(|t| t.flags & TILE_BLOCKED == 0)
    }

    /// The height level of a tile (0 off the grid).
    pub fn height_at(&self, x: i64, y: i64) -> u8 {
        self.tile_info(x, y).map_or(0, |t| t.height)
    }

    /// The zone of a tile, in O(1); tiles off the grid have none.
    pub fn zone_at(&self, x: i64, y: i64) -> Option<ZoneIndex> {
        self.tile_info(x, y).map(|t| t.zone)
    }

    /// The zone of the tile a position stands on.
    pub fn zone_of(&self, position: Position) -> Option<ZoneIndex> {
        let (x, y) = position.tile();
        self.zone_at(i64::from(x), i64::from(y))
    }

    /// The exclusive object on a tile, in O(1).
    pub fn object_at(&self, x: i64, y: i64) -> Option<ObjectIndex> {
        self.tile_info(x, y).and_then(|t| (t.object != NO_OBJECT).then_some(ObjectIndex(t.object)))
    }

    /// Every zone, the default zone first.
    pub fn zones(&self) -> impl ExactSizeIterator<Item = ZoneRef<'_>> {
        (0..self.file.zones.len() + 1).map(|i| {
            // At most MAX_ZONES + 1 zones, so the index fits.
            self.zone(ZoneIndex(i as u16))
        })
    }

    /// A zone by index. Panics on an index this world did not hand out.
    pub fn zone(&self, index: ZoneIndex) -> ZoneRef<'_> {
        let entry_via = &self.zone_entry[usize::from(index.0)];
        match usize::from(index.0).checked_sub(1) {
            None => {
                let zone = &self.file.default_zone;
                let (recording, e2ee) = (false, false);
                ZoneRef { index, id: &zone.id, name: &zone.name, kind: &zone.kind, entry_via, recording, e2ee }
            }
            Some(i) => {
                let zone = &self.file.zones[i];
                let (recording, e2ee) = (zone.recording, zone.e2ee);
                ZoneRef { index, id: &zone.id, name: &zone.name, kind: &zone.kind, entry_via, recording, e2ee }
            }
        }
    }

    pub fn zone_by_id(&self, id: &str) -> Option<ZoneIndex> {
        self.zone_by_id.get(id).copied()
    }

    /// An exclusive object by index. Panics on an index this world did not hand out.
    pub fn object(&self, index: ObjectIndex) -> &ExclusiveObject {
        &self.file.objects[usize::from(index.0)]
    }

    pub fn object_by_id(&self, id: &str) -> Option<ObjectIndex> {
        self.object_by_id.get(id).copied()
    }

    /// The objects one of which an avatar must have held just before taking `index`
    /// (its interaction chain); empty when anyone may take it.
    pub fn object_requires(&self, index: ObjectIndex) -> &[ObjectIndex] {
        &self.object_requires[usize::from(index.0)]
    }

    /// Whether an avatar may take `index` through a move that touched `touched`, given
    /// the object it held before (`previous`): the chain holds if `index` requires
    /// nothing, or if the previous object or one passed on this very move is required.
    pub fn chain_allows(
        &self,
        previous: Option<ObjectIndex>,
        touched: &crate::movement::TouchedObjects,
        index: ObjectIndex,
    ) -> bool {
        let required = self.object_requires(index);
        required.is_empty()
            || previous.is_some_and(|p| required.contains(&p))
            || required.iter().any(|&r| touched.contains(r))
    }

    /// Every tile an exclusive object covers, for servers that track occupancy.
    pub fn object_tiles(&self, index: ObjectIndex) -> impl Iterator<Item = (u32, u32)> + '_ {
        self.object(index).area.iter().flat_map(|rect| rect.tiles())
    }

    /// The default spawn point (the first one listed).
    pub fn default_spawn(&self) -> &Spawn {
        // Validation refuses a world without spawn points.
        &self.file.spawns[0]
    }

    pub fn spawn(&self, id: &str) -> Option<&Spawn> {
        self.file.spawns.iter().find(|s| s.id == id)
    }

    /// Where an avatar arriving at a spawn point stands.
    pub fn spawn_position(spawn: &Spawn) -> Position {
        Position::tile_center(spawn.x, spawn.y)
    }

    /// The exit whose area holds this tile, if any.
    pub fn exit_at(&self, x: u32, y: u32) -> Option<&crate::model::Exit> {
        self.file.exits.iter().find(|exit| exit.area.iter().any(|r| r.contains(x, y)))
    }

    /// The world's websites, in file order.
    pub fn websites(&self) -> &[crate::model::Website] {
        &self.file.websites
    }

    /// Size of the grid in sub-tile units.
    pub fn extent(&self) -> Position {
        // Grid sides are at most MAX_GRID_SIDE, far inside i32 in sub-tile units.
        Position::new(self.width() as i32 * SUBTILE, self.height() as i32 * SUBTILE)
    }
}

/// Pretty JSON of a world file, as Isoplane writes it.
pub fn to_json_pretty(file: &WorldFile) -> String {
    // Plain data with string keys always converts to a JSON value.
    let value = serde_json::to_value(file).unwrap_or_default();
    crate::json_writer::to_pretty_json(&value, file.grid.width as usize)
}
