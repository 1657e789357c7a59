//! The rules a world file must follow beyond its shape, checked all in one pass.
//!
//! Validation also builds the per-tile index ([`Index`]) the [`crate::World`] queries
//! use: filling the zone and object tables is how overlaps are found, so both happen
//! together. Every error names the JSON path of the value to fix.

use std::collections::{HashMap, HashSet, VecDeque};

use crate::limits::*;
use crate::model::*;
use crate::parse::Unread;
use crate::problem::Problems;
use crate::world::{NO_OBJECT, ObjectIndex, TILE_BLOCKED, TileInfo, WALL_NORTH, WALL_WEST, ZoneIndex};

/// The lookup tables of a valid world.
pub(crate) struct Index {
    pub tiles: Vec<TileInfo>,
    pub zone_entry: Vec<Vec<ObjectIndex>>,
    pub object_requires: Vec<Vec<ObjectIndex>>,
    pub zone_by_id: HashMap<String, ZoneIndex>,
    pub object_by_id: HashMap<String, ObjectIndex>,
}

/// Whether `id` may name a zone, object, spawn point or exit: 1 to 64 ASCII letters,
/// digits, `-`, `_` or `.`. IDs travel in the protocol and in URLs, so they stay plain.
pub fn is_valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_ID_CHARS
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

fn check_id(id: &str, path: String, p: &mut Problems) {
    if !is_valid_id(id) {
        p.error(
            path,
            format!("\"{id}\" is not a valid ID: use 1 to {MAX_ID_CHARS} ASCII letters, digits, `-`, `_` or `.`"),
        );
    }
}

fn check_name(name: &str, path: String, p: &mut Problems) {
    if name.trim().is_empty() {
        p.error(path, "the name is empty");
    } else if name.chars().count() > MAX_NAME_CHARS {
        p.error(
            path,
            format!("the name has {} characters; at most {MAX_NAME_CHARS} are allowed", name.chars().count()),
        );
    }
}

fn check_count(len: usize, max: usize, what: &str, path: &str, p: &mut Problems) -> bool {
    if len > max {
        p.error(path, format!("{len} {what}; at most {max} are allowed"));
        return false;
    }
    true
}

/// Checks every rule, skipping those that parts the reader could not read (`unread`)
/// might break spuriously. Returns the index if the grid is usable.
pub(crate) fn validate(file: &WorldFile, unread: Unread, p: &mut Problems) -> Option<Index> {
    if !unread.name {
        check_name(&file.name, "$.name".into(), p);
    }
    if !unread.movement {
        check_movement(&file.movement, p);
    }
    check_tilesets(&file.tilesets, &unread, p);
    if !check_grid(&file.grid, p) {
        return None;
    }
    let mut checker = Checker::new(file, unread);
    checker.check_layers(p);
    checker.read_collision(p);
    checker.read_walls(p);
    checker.read_zones(p);
    checker.read_objects(p);
    checker.resolve_zone_entries(p);
    checker.resolve_chains(p);
    checker.check_spawns(p);
    checker.check_exits(p);
    checker.check_websites(p);
    checker.warn_unreachable(p);
    Some(checker.into_index())
}

fn check_movement(movement: &Movement, p: &mut Problems) {
    if !(movement.max_speed > 0.0 && movement.max_speed <= MAX_SPEED) {
        p.error("$.movement.max_speed", format!("must be more than 0 and at most {MAX_SPEED} tiles per second"));
    }
    if !(0.0..=MAX_SLACK).contains(&movement.slack) {
        p.error("$.movement.slack", format!("must be from 0 to {MAX_SLACK} tiles"));
    }
}

fn check_grid(grid: &Grid, p: &mut Problems) -> bool {
    let errors_before = p.errors.len();
    for (value, field) in [(grid.width, "width"), (grid.height, "height")] {
        if !(1..=MAX_GRID_SIDE).contains(&value) {
            p.error(format!("$.grid.{field}"), format!("{value} tiles; a grid side has 1 to {MAX_GRID_SIDE} tiles"));
        }
    }
    for (value, field) in [(grid.tile_width, "tile_width"), (grid.tile_height, "tile_height")] {
        if !(1..=MAX_TILE_PIXELS).contains(&value) {
            p.error(format!("$.grid.{field}"), format!("{value} pixels; a tile is 1 to {MAX_TILE_PIXELS} pixels"));
        }
    }
    if !(1..=MAX_LEVELS).contains(&grid.levels) {
        p.error("$.grid.levels", format!("{} levels; a world has 1 to {MAX_LEVELS}", grid.levels));
    }
    if grid.level_height > MAX_TILE_PIXELS {
        p.error("$.grid.level_height", format!("at most {MAX_TILE_PIXELS} pixels"));
    }
    p.errors.len() == errors_before
}

/// Recording and end-to-end encryption: each only where it means something, never both
/// (the SFU cannot record what it cannot read).
fn check_media_options(zone: &Zone, path: &str, p: &mut Problems) {
    if zone.e2ee && !matches!(zone.kind, ZoneKind::MeetingRoom { .. } | ZoneKind::Private { .. }) {
        p.error(
            format!("{path}.e2ee"),
            format!(
                "end-to-end encryption is for meeting rooms and private zones, not a {} zone",
                zone.kind.type_name()
            ),
        );
    }
    if zone.recording && matches!(zone.kind, ZoneKind::Silent) {
        p.error(format!("{path}.recording"), "a silent zone has no media to record");
    }
    if zone.recording && zone.e2ee {
        p.error(format!("{path}.recording"), "a zone with e2ee cannot be recorded: the SFU cannot read its media");
    }
}

fn check_tilesets(tilesets: &[Tileset], unread: &Unread, p: &mut Problems) {
    if !check_count(tilesets.len(), MAX_TILESETS, "tilesets", "$.tilesets", p) {
        return;
    }
    let mut names = HashSet::new();
    let mut ranges: Vec<(u64, u64, &str)> = Vec::new();
    for (i, set) in tilesets.iter().enumerate() {
        let path = unread.item_path("tilesets", i);
        check_name(&set.name, format!("{path}.name"), p);
        if !names.insert(set.name.as_str()) {
            p.error(format!("{path}.name"), format!("another tileset is already named \"{}\"", set.name));
        }
        for (value, field) in [(set.tile_width, "tile_width"), (set.tile_height, "tile_height")] {
            if !(1..=MAX_TILE_PIXELS).contains(&value) {
                p.error(
                    format!("{path}.{field}"),
                    format!("{value} pixels; a tile picture is 1 to {MAX_TILE_PIXELS} pixels"),
                );
            }
        }
        if set.columns == 0 || set.tile_count == 0 {
            p.error(&path, "a tileset has at least one column and one tile");
            continue;
        }
        if set.first_gid == 0 {
            p.error(format!("{path}.first_gid"), "GID 0 means \"no tile\"; the first GID is at least 1");
            continue;
        }
        let first = u64::from(set.first_gid);
        let end = first + u64::from(set.tile_count);
        if end - 1 > u64::from(GID_MASK) {
            p.error(&path, format!("GIDs up to {} collide with the flip flags; the last GID is {GID_MASK}", end - 1));
        }
        let rows = u64::from(set.tile_count.div_ceil(set.columns));
        if u64::from(set.columns) * u64::from(set.tile_width) > u64::from(set.image_width)
            || rows * u64::from(set.tile_height) > u64::from(set.image_height)
        {
            p.error(
                &path,
                format!(
                    "{} tiles in {} columns of {}×{} pixels do not fit in a {}×{} image",
                    set.tile_count, set.columns, set.tile_width, set.tile_height, set.image_width, set.image_height
                ),
            );
        }
        for &(other_first, other_end, other) in &ranges {
            if first < other_end && other_first < end {
                p.error(
                    format!("{path}.first_gid"),
                    format!(
                        "GIDs {first}..{} overlap those of tileset \"{other}\" ({other_first}..{})",
                        end - 1,
                        other_end - 1
                    ),
                );
            }
        }
        ranges.push((first, end, &set.name));
    }
}

/// Whether `gid` (flip flags masked) is a tile of some tileset.
fn gid_is_known(tilesets: &[Tileset], gid: u32) -> bool {
    tilesets.iter().any(|s| gid >= s.first_gid && u64::from(gid) < u64::from(s.first_gid) + u64::from(s.tile_count))
}

/// The checks that need the grid and the tables under construction.
struct Checker<'f> {
    file: &'f WorldFile,
    unread: Unread,
    width: usize,
    height: usize,
    tiles: Vec<TileInfo>,
    zone_entry: Vec<Vec<ObjectIndex>>,
    object_requires: Vec<Vec<ObjectIndex>>,
    zone_by_id: HashMap<String, ZoneIndex>,
    object_by_id: HashMap<String, ObjectIndex>,
    /// Tiles reachable from the default spawn point, filled by `check_spawns`.
    reachable: Vec<bool>,
}

impl<'f> Checker<'f> {
    fn new(file: &'f WorldFile, unread: Unread) -> Checker<'f> {
        let (width, height) = (file.grid.width as usize, file.grid.height as usize);
        let blank = TileInfo { zone: ZoneIndex::DEFAULT, object: NO_OBJECT, height: 0, flags: 0 };
        Checker {
            file,
            unread,
            width,
            height,
            tiles: vec![blank; width * height],
            zone_entry: vec![Vec::new(); file.zones.len() + 1],
            object_requires: vec![Vec::new(); file.objects.len()],
            zone_by_id: HashMap::new(),
            object_by_id: HashMap::new(),
            reachable: Vec::new(),
        }
    }

    fn into_index(self) -> Index {
        Index {
            tiles: self.tiles,
            zone_entry: self.zone_entry,
            object_requires: self.object_requires,
            zone_by_id: self.zone_by_id,
            object_by_id: self.object_by_id,
        }
    }

    fn tile_mut(&mut self, x: u32, y: u32) -> &mut TileInfo {
        &mut self.tiles[y as usize * self.width + x as usize]
    }

    fn tile(&self, x: u32, y: u32) -> &TileInfo {
        &self.tiles[y as usize * self.width + x as usize]
    }

    fn in_grid(&self, x: i64, y: i64) -> bool {
        x >= 0 && y >= 0 && (x as usize) < self.width && (y as usize) < self.height
    }

    fn check_layers(&self, p: &mut Problems) {
        let layers = &self.file.layers;
        if !check_count(layers.len(), MAX_LAYERS, "layers", "$.layers", p) {
            return;
        }
        if layers.is_empty() {
            p.warning("$.layers", "the world has no visual layers: clients will draw nothing");
        }
        let expected = self.width * self.height;
        for (i, layer) in layers.iter().enumerate() {
            let path = self.unread.item_path("layers", i);
            check_name(&layer.name, format!("{path}.name"), p);
            if !(0.0..=1.0).contains(&layer.opacity) {
                p.error(format!("{path}.opacity"), "opacity goes from 0 to 1");
            }
            if layer.tiles.len() != expected {
                p.error(
                    format!("{path}.tiles"),
                    format!(
                        "{} GIDs; a {}×{} grid needs exactly {expected}",
                        layer.tiles.len(),
                        self.width,
                        self.height
                    ),
                );
                continue;
            }
            if self.unread.tilesets {
                continue; // a GID may belong to the tileset that could not be read
            }
            let mut unknown = layer.tiles.iter().enumerate().filter(|&(_, &raw)| {
                let gid = raw & GID_MASK;
                gid != 0 && !gid_is_known(&self.file.tilesets, gid)
            });
            for (index, &raw) in unknown.by_ref().take(MAX_ERRORS_PER_LAYER) {
                p.error(
                    format!("{path}.tiles[{index}]"),
                    format!(
                        "GID {} (tile {}, {}) belongs to no tileset",
                        raw & GID_MASK,
                        index % self.width,
                        index / self.width
                    ),
                );
            }
            let more = unknown.count();
            if more > 0 {
                p.error(format!("{path}.tiles"), format!("and {more} more GIDs that belong to no tileset"));
            }
        }
    }

    fn read_collision(&mut self, p: &mut Problems) {
        let collision = &self.file.collision;
        self.read_tile_rows(&collision.rows, "rows", p, |tile, x, y, c| match c {
            b'.' => Ok(()),
            b'#' => {
                tile.flags |= TILE_BLOCKED;
                Ok(())
            }
            _ => Err(format!("character {} at tile ({x}, {y}) is neither `.` (walkable) nor `#` (blocked)", x + 1)),
        });
        let levels = self.file.grid.levels;
        self.read_tile_rows(&collision.heights, "heights", p, |tile, x, y, c| {
            let level = c.wrapping_sub(b'0');
            if c.is_ascii_digit() && u32::from(level) < levels {
                tile.height = level;
                Ok(())
            } else {
                Err(format!("tile ({x}, {y}): `{}` is not a height level from 0 to {}", char::from(c), levels - 1))
            }
        });
    }

    /// Reads one character per tile from `rows` (absent = nothing to read), reporting
    /// rows of the wrong count or length and each character `read` refuses.
    fn read_tile_rows(
        &mut self,
        rows: &[String],
        field: &str,
        p: &mut Problems,
        mut read: impl FnMut(&mut TileInfo, usize, usize, u8) -> Result<(), String>,
    ) {
        if rows.is_empty() {
            return;
        }
        let (width, height) = (self.width, self.height);
        if rows.len() != height {
            p.error(format!("$.collision.{field}"), format!("{} rows; the grid has {height}", rows.len()));
        }
        for (y, row) in rows.iter().enumerate().take(height) {
            let path = format!("$.collision.{field}[{y}]");
            if row.len() != width {
                p.error(path, format!("{} characters; the grid is {width} tiles wide", row.chars().count()));
                continue;
            }
            for (x, c) in row.bytes().enumerate() {
                if let Err(message) = read(&mut self.tiles[y * width + x], x, y, c) {
                    p.error(&path, message);
                }
            }
        }
    }

    fn read_walls(&mut self, p: &mut Problems) {
        let walls = &self.file.collision.walls;
        if !check_count(walls.len(), MAX_WALLS, "walls", "$.collision.walls", p) {
            return;
        }
        let (width, height) = (self.file.grid.width, self.file.grid.height);
        for (i, wall) in walls.iter().enumerate() {
            let path = format!("$.collision.walls[{i}]");
            let [x0, y0] = wall.from;
            let [x1, y1] = wall.to;
            if x0 > width || x1 > width || y0 > height || y1 > height {
                p.error(path, format!("corners go from (0, 0) to ({width}, {height}); this wall leaves the grid"));
                continue;
            }
            if x0 == x1 && y0 != y1 {
                // Vertical: the west edge of the tiles in column x0 (the grid's east border
                // needs no wall, since nothing can leave the grid).
                for y in y0.min(y1)..y0.max(y1) {
                    if x0 < width {
                        self.tile_mut(x0, y).flags |= WALL_WEST;
                    }
                }
            } else if y0 == y1 && x0 != x1 {
                for x in x0.min(x1)..x0.max(x1) {
                    if y0 < height {
                        self.tile_mut(x, y0).flags |= WALL_NORTH;
                    }
                }
            } else if x0 == x1 {
                p.error(path, "the wall has no length: `from` and `to` are the same corner");
            } else {
                p.error(path, "walls run along grid lines: `from` and `to` must share x or y");
            }
        }
    }

    /// Checks an area's rectangles against the grid; `false` if any is unusable.
    fn check_area(&self, area: &[Rect], path: &str, p: &mut Problems) -> bool {
        if area.is_empty() {
            p.error(path, "the area is empty: give at least one rectangle {\"x\", \"y\", \"w\", \"h\"}");
            return false;
        }
        if !check_count(area.len(), MAX_RECTS_PER_AREA, "rectangles", path, p) {
            return false;
        }
        let mut ok = true;
        for (i, rect) in area.iter().enumerate() {
            if rect.w == 0 || rect.h == 0 {
                p.error(format!("{path}[{i}]"), "a rectangle is at least 1 tile wide and high");
                ok = false;
            } else if u64::from(rect.x) + u64::from(rect.w) > self.width as u64
                || u64::from(rect.y) + u64::from(rect.h) > self.height as u64
            {
                p.error(
                    format!("{path}[{i}]"),
                    format!(
                        "tiles ({}, {}) to ({}, {}) reach outside the {}×{} grid",
                        rect.x,
                        rect.y,
                        u64::from(rect.x) + u64::from(rect.w) - 1,
                        u64::from(rect.y) + u64::from(rect.h) - 1,
                        self.width,
                        self.height
                    ),
                );
                ok = false;
            }
        }
        ok
    }

    fn read_zones(&mut self, p: &mut Problems) {
        let file = self.file;
        if !check_count(file.zones.len(), MAX_ZONES, "zones", "$.zones", p) {
            return;
        }
        check_id(&file.default_zone.id, "$.default_zone.id".into(), p);
        check_name(&file.default_zone.name, "$.default_zone.name".into(), p);
        self.zone_by_id.insert(file.default_zone.id.clone(), ZoneIndex::DEFAULT);
        for (i, zone) in file.zones.iter().enumerate() {
            let path = self.unread.item_path("zones", i);
            // Zone i is index i + 1; MAX_ZONES keeps it within u16.
            let index = ZoneIndex((i + 1) as u16);
            check_id(&zone.id, format!("{path}.id"), p);
            check_name(&zone.name, format!("{path}.name"), p);
            if self.zone_by_id.insert(zone.id.clone(), index).is_some() {
                p.error(format!("{path}.id"), format!("another zone already has the ID \"{}\"", zone.id));
            }
            if !self.check_area(&zone.area, &format!("{path}.area"), p) {
                continue;
            }
            let mut overlapping = HashSet::new();
            for (x, y) in zone.area.iter().flat_map(Rect::tiles) {
                let previous = self.tile(x, y).zone;
                if previous != ZoneIndex::DEFAULT && previous != index {
                    if overlapping.insert(previous) {
                        let other = &file.zones[usize::from(previous.0) - 1].id;
                        p.error(
                            format!("{path}.area"),
                            format!(
                                "zone \"{}\" overlaps zone \"{other}\" at tile ({x}, {y}); a tile belongs to one zone",
                                zone.id
                            ),
                        );
                    }
                    continue;
                }
                self.tile_mut(x, y).zone = index;
            }
        }
        // Options are checked once the zone table is complete, so a podium can be
        // checked against its own zone's tiles.
        self.check_zone_kind(&file.default_zone.kind, ZoneIndex::DEFAULT, "$.default_zone", p);
        for (i, zone) in file.zones.iter().enumerate() {
            let path = self.unread.item_path("zones", i);
            self.check_zone_kind(&zone.kind, ZoneIndex((i + 1) as u16), &path, p);
            check_media_options(zone, &path, p);
        }
    }

    fn check_zone_kind(&self, kind: &ZoneKind, index: ZoneIndex, path: &str, p: &mut Problems) {
        let positive = |value: u32, max: u32, field: &str, p: &mut Problems| {
            if !(1..=max).contains(&value) {
                p.error(format!("{path}.{field}"), format!("{value}; must be from 1 to {max}"));
            }
        };
        match kind {
            ZoneKind::Open { talk_radius } => positive(*talk_radius, MAX_TALK_RADIUS, "talk_radius", p),
            ZoneKind::MeetingRoom { sfu_threshold, capacity } => {
                positive(*sfu_threshold, MAX_CAPACITY, "sfu_threshold", p);
                if let Some(capacity) = capacity {
                    positive(*capacity, MAX_CAPACITY, "capacity", p);
                }
            }
            ZoneKind::Stage { podium, max_speakers } => {
                positive(*max_speakers, MAX_CAPACITY, "max_speakers", p);
                let podium_path = format!("{path}.podium");
                if self.check_area(podium, &podium_path, p)
                    && let Some((x, y)) =
                        podium.iter().flat_map(Rect::tiles).find(|&(x, y)| self.tile(x, y).zone != index)
                {
                    p.error(podium_path, format!("podium tile ({x}, {y}) is outside its stage zone"));
                }
            }
            ZoneKind::Silent => {}
            ZoneKind::Private { capacity, .. } => positive(*capacity, MAX_CAPACITY, "capacity", p),
        }
    }

    fn read_objects(&mut self, p: &mut Problems) {
        let file = self.file;
        if !check_count(file.objects.len(), MAX_OBJECTS, "objects", "$.objects", p) {
            return;
        }
        for (i, object) in file.objects.iter().enumerate() {
            let path = self.unread.item_path("objects", i);
            // MAX_OBJECTS keeps the index below NO_OBJECT.
            let index = i as u16;
            check_id(&object.id, format!("{path}.id"), p);
            if self.object_by_id.insert(object.id.clone(), ObjectIndex(index)).is_some() {
                p.error(format!("{path}.id"), format!("another object already has the ID \"{}\"", object.id));
            }
            if !(1..=MAX_CAPACITY).contains(&object.capacity) {
                p.error(format!("{path}.capacity"), format!("{}; must be from 1 to {MAX_CAPACITY}", object.capacity));
            }
            if object.facing.is_some() && object.kind != ObjectKind::Seat {
                p.warning(
                    format!("{path}.facing"),
                    format!("only seats use `facing`; this {} ignores it", object.kind.as_str()),
                );
            }
            if !self.check_area(&object.area, &format!("{path}.area"), p) {
                continue;
            }
            let mut reported = false;
            for (x, y) in object.area.iter().flat_map(Rect::tiles) {
                let tile = *self.tile(x, y);
                if tile.flags & TILE_BLOCKED != 0 {
                    p.error(
                        format!("{path}.area"),
                        format!("tile ({x}, {y}) is blocked; an avatar could never hold \"{}\"", object.id),
                    );
                }
                if tile.object != NO_OBJECT && tile.object != index {
                    if !reported {
                        let other = &file.objects[usize::from(tile.object)].id;
                        p.error(
                            format!("{path}.area"),
                            format!("\"{}\" and \"{other}\" both cover tile ({x}, {y})", object.id),
                        );
                        reported = true;
                    }
                    continue;
                }
                self.tile_mut(x, y).object = index;
            }
        }
    }

    /// Resolves a list of object IDs, reporting the ones that do not exist.
    fn resolve_objects(&self, ids: &[String], path: &str, p: &mut Problems) -> Vec<ObjectIndex> {
        if !check_count(ids.len(), MAX_REFERENCES, "references", path, p) {
            return Vec::new();
        }
        ids.iter()
            .enumerate()
            .filter_map(|(i, id)| {
                let found = self.object_by_id.get(id).copied();
                if found.is_none() && !self.unread.objects {
                    p.error(format!("{path}[{i}]"), format!("no exclusive object has the ID \"{id}\""));
                }
                found
            })
            .collect()
    }

    fn resolve_zone_entries(&mut self, p: &mut Problems) {
        let file = self.file;
        for (i, zone) in file.zones.iter().enumerate() {
            let path = format!("{}.entry_via", self.unread.item_path("zones", i));
            let index = ZoneIndex((i + 1) as u16);
            let entries = self.resolve_objects(&zone.entry_via, &path, p);
            for (&entry, id) in entries.iter().zip(&zone.entry_via) {
                let object = &file.objects[usize::from(entry.0)];
                if object.kind == ObjectKind::Seat {
                    p.error(&path, format!("\"{id}\" is a seat; a zone is entered through a door or a passage"));
                } else if !self.object_touches_zone(object, index) {
                    p.error(
                        &path,
                        format!("\"{id}\" is neither inside zone \"{}\" nor next to it, so it cannot lead in", zone.id),
                    );
                }
            }
            self.zone_entry[index.0 as usize] = entries;
        }
    }

    fn object_touches_zone(&self, object: &ExclusiveObject, zone: ZoneIndex) -> bool {
        object.area.iter().flat_map(Rect::tiles).any(|(x, y)| {
            let (x, y) = (i64::from(x), i64::from(y));
            [(0, 0), (1, 0), (-1, 0), (0, 1), (0, -1)].iter().any(|&(dx, dy)| {
                let (nx, ny) = (x + dx, y + dy);
                self.in_grid(nx, ny) && self.tiles[ny as usize * self.width + nx as usize].zone == zone
            })
        })
    }

    fn resolve_chains(&mut self, p: &mut Problems) {
        let file = self.file;
        for (i, object) in file.objects.iter().enumerate() {
            let path = format!("{}.requires", self.unread.item_path("objects", i));
            let required = self.resolve_objects(&object.requires, &path, p);
            if required.iter().any(|r| usize::from(r.0) == i) {
                p.error(&path, format!("\"{}\" requires itself, so nobody could ever take it", object.id));
            }
            self.object_requires[i] = required;
        }
        // A cycle of requirements (a needs b, b needs a) can never be entered.
        let mut state = vec![0u8; file.objects.len()]; // 0 new, 1 on the stack, 2 done
        for start in 0..file.objects.len() {
            let mut stack = vec![(start, 0usize)];
            let mut trail = vec![start];
            if state[start] != 0 {
                continue;
            }
            state[start] = 1;
            while let Some((node, next)) = stack.last_mut() {
                let node = *node;
                if let Some(&ObjectIndex(child)) = self.object_requires[node].get(*next) {
                    *next += 1;
                    let child = usize::from(child);
                    if child == node {
                        continue; // reported above
                    }
                    match state[child] {
                        0 => {
                            state[child] = 1;
                            stack.push((child, 0));
                            trail.push(child);
                        }
                        1 => {
                            let from = trail.iter().position(|&n| n == child).unwrap_or(0);
                            let cycle: Vec<&str> =
                                trail[from..].iter().chain([&child]).map(|&n| file.objects[n].id.as_str()).collect();
                            p.error(
                                format!("{}.requires", self.unread.item_path("objects", child)),
                                format!(
                                    "the interaction chain loops ({}), so none of them could ever be taken",
                                    cycle.join(" → ")
                                ),
                            );
                        }
                        _ => {}
                    }
                } else {
                    state[node] = 2;
                    stack.pop();
                    trail.pop();
                }
            }
        }
    }

    fn check_spawns(&mut self, p: &mut Problems) {
        let spawns = &self.file.spawns;
        if spawns.is_empty() {
            if !self.unread.spawns {
                p.error("$.spawns", "a world needs at least one spawn point");
            }
            return;
        }
        if !check_count(spawns.len(), MAX_SPAWNS, "spawn points", "$.spawns", p) {
            return;
        }
        let mut ids = HashSet::new();
        let mut usable = vec![false; spawns.len()];
        for (i, spawn) in spawns.iter().enumerate() {
            let path = self.unread.item_path("spawns", i);
            check_id(&spawn.id, format!("{path}.id"), p);
            if !ids.insert(spawn.id.as_str()) {
                p.error(format!("{path}.id"), format!("another spawn point already has the ID \"{}\"", spawn.id));
            }
            if !self.in_grid(i64::from(spawn.x), i64::from(spawn.y)) {
                p.error(
                    &path,
                    format!("tile ({}, {}) is outside the {}×{} grid", spawn.x, spawn.y, self.width, self.height),
                );
                continue;
            }
            let tile = *self.tile(spawn.x, spawn.y);
            if tile.flags & TILE_BLOCKED != 0 {
                p.error(
                    &path,
                    format!("tile ({}, {}) is blocked; a spawn point stands on a walkable tile", spawn.x, spawn.y),
                );
            } else if tile.object != NO_OBJECT {
                let object = &self.file.objects[usize::from(tile.object)].id;
                p.error(
                    &path,
                    format!(
                        "tile ({}, {}) belongs to exclusive object \"{object}\"; spawn points stay off them",
                        spawn.x, spawn.y
                    ),
                );
            } else {
                usable[i] = true;
            }
        }
        // Unread spawn points, doors or zones change what is the default and what is
        // reachable: judge reachability only on a fully read file.
        if !usable[0] || self.unread.spawns || self.unread.objects || self.unread.zones {
            return;
        }
        self.reachable = self.flood_from(spawns[0].x, spawns[0].y);
        for (i, spawn) in spawns.iter().enumerate().skip(1) {
            if usable[i] && !self.reachable[spawn.y as usize * self.width + spawn.x as usize] {
                p.error(
                    self.unread.item_path("spawns", i),
                    format!(
                        "spawn point \"{}\" at ({}, {}) is unreachable from the default spawn point \"{}\": blocked tiles, walls, cliffs or a door-only zone cut it off",
                        spawn.id, spawn.x, spawn.y, spawns[0].id
                    ),
                );
            }
        }
    }

    /// Whether an avatar can step from tile `a` to its 4-neighbour `b` (the same rules as
    /// the move check applies to a move between their centres).
    fn can_step(&self, (ax, ay): (usize, usize), (bx, by): (usize, usize)) -> bool {
        let a = &self.tiles[ay * self.width + ax];
        let b = &self.tiles[by * self.width + bx];
        if b.flags & TILE_BLOCKED != 0 || a.height.abs_diff(b.height) > 1 {
            return false;
        }
        let wall = match (bx.cmp(&ax), by.cmp(&ay)) {
            (std::cmp::Ordering::Greater, _) => b.flags & WALL_WEST,
            (std::cmp::Ordering::Less, _) => a.flags & WALL_WEST,
            (_, std::cmp::Ordering::Greater) => b.flags & WALL_NORTH,
            _ => a.flags & WALL_NORTH,
        };
        if wall != 0 {
            return false;
        }
        if a.zone != b.zone {
            let entries = &self.zone_entry[usize::from(b.zone.0)];
            if !entries.is_empty() && !entries.iter().any(|e| e.0 == a.object || e.0 == b.object) {
                return false;
            }
        }
        true
    }

    fn flood_from(&self, x: u32, y: u32) -> Vec<bool> {
        let mut seen = vec![false; self.tiles.len()];
        let mut queue = VecDeque::from([(x as usize, y as usize)]);
        seen[y as usize * self.width + x as usize] = true;
        while let Some((x, y)) = queue.pop_front() {
            let neighbours = [(x.wrapping_sub(1), y), (x + 1, y), (x, y.wrapping_sub(1)), (x, y + 1)];
            for (nx, ny) in neighbours {
                if nx < self.width && ny < self.height && !seen[ny * self.width + nx] && self.can_step((x, y), (nx, ny))
                {
                    seen[ny * self.width + nx] = true;
                    queue.push_back((nx, ny));
                }
            }
        }
        seen
    }

    fn check_exits(&self, p: &mut Problems) {
        let exits = &self.file.exits;
        if !check_count(exits.len(), MAX_EXITS, "exits", "$.exits", p) {
            return;
        }
        let mut ids = HashSet::new();
        for (i, exit) in exits.iter().enumerate() {
            let path = self.unread.item_path("exits", i);
            check_id(&exit.id, format!("{path}.id"), p);
            if !ids.insert(exit.id.as_str()) {
                p.error(format!("{path}.id"), format!("another exit already has the ID \"{}\"", exit.id));
            }
            check_id(&exit.world, format!("{path}.world"), p);
            if let Some(spawn) = &exit.spawn {
                check_id(spawn, format!("{path}.spawn"), p);
            }
            self.check_area(&exit.area, &format!("{path}.area"), p);
        }
    }

    fn check_websites(&self, p: &mut Problems) {
        let websites = &self.file.websites;
        if !check_count(websites.len(), MAX_WEBSITES, "websites", "$.websites", p) {
            return;
        }
        let mut ids = HashSet::new();
        for (i, website) in websites.iter().enumerate() {
            let path = self.unread.item_path("websites", i);
            check_id(&website.id, format!("{path}.id"), p);
            if !ids.insert(website.id.as_str()) {
                p.error(format!("{path}.id"), format!("another website already has the ID \"{}\"", website.id));
            }
            check_name(&website.name, format!("{path}.name"), p);
            if let Err(why) = crate::web_origin(&website.url) {
                p.error(format!("{path}.url"), why);
            }
            self.check_area(&website.area, &format!("{path}.area"), p);
        }
    }

    /// Warnings for places nobody can get to from the default spawn point.
    fn warn_unreachable(&self, p: &mut Problems) {
        if self.reachable.is_empty() {
            return; // the spawn points already have errors
        }
        let reachable = |area: &[Rect]| {
            area.iter().flat_map(Rect::tiles).any(|(x, y)| {
                self.in_grid(i64::from(x), i64::from(y)) && self.reachable[y as usize * self.width + x as usize]
            })
        };
        for (i, zone) in self.file.zones.iter().enumerate() {
            if !reachable(&zone.area) {
                p.warning(
                    self.unread.item_path("zones", i),
                    format!("nobody can reach zone \"{}\" from the default spawn point", zone.id),
                );
            }
        }
        for (i, object) in self.file.objects.iter().enumerate() {
            if !reachable(&object.area) {
                p.warning(
                    self.unread.item_path("objects", i),
                    format!("nobody can reach \"{}\" from the default spawn point", object.id),
                );
            }
        }
        for (i, exit) in self.file.exits.iter().enumerate() {
            if !reachable(&exit.area) {
                p.warning(
                    self.unread.item_path("exits", i),
                    format!("nobody can reach exit \"{}\" from the default spawn point", exit.id),
                );
            }
        }
        for (i, website) in self.file.websites.iter().enumerate() {
            if !reachable(&website.area) {
                p.warning(
                    self.unread.item_path("websites", i),
                    format!("nobody can reach website \"{}\" from the default spawn point", website.id),
                );
            }
        }
    }
}
