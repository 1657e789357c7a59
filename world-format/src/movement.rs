//! The move check: may an avatar go from its last accepted position to a new one?
//!
//! This is what the signaling server runs on every `MoveIntent` and what the browser
//! client runs before it moves, so both agree. A move is refused when it leaves the grid,
//! is longer than the world's speed allows for the time elapsed, touches a blocked tile,
//! a wall (ends included) or a cliff (a height step of more than one level), or enters a
//! door-only zone without passing its door. Exclusive objects along the way are reported
//! so the caller can enforce occupancy; the world itself holds no per-avatar state.

use std::ops::ControlFlow;
use std::time::Duration;

use crate::geometry::{Position, SUBTILE, for_each_touched_tile, segment_touches_box};
use crate::world::{NO_OBJECT, ObjectIndex, TILE_BLOCKED, WALL_NORTH, WALL_WEST, World, ZoneIndex};

/// Why a move was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MoveRejection {
    /// The destination (or the start) is not strictly inside the grid.
    OffGrid,
    /// Longer than the world's speed allows for the elapsed time (distances in sub-tile units).
    TooFast { distance: u32, allowed: u32 },
    /// Touches a blocked tile, or the outside of the grid.
    Blocked { tile: (i64, i64) },
    /// Touches a wall along this tile's north or west edge.
    Wall { tile: (i64, i64) },
    /// Steps more than one height level at once.
    Cliff { tile: (i64, i64) },
    /// Enters a zone that may only be entered through one of its doors.
    NotThroughEntry { zone: ZoneIndex },
}

/// Up to this many exclusive objects are kept inline; more spill to the heap.
const INLINE_OBJECTS: usize = 6;

/// The exclusive objects a move touches, in the order first met. Allocation-free for
/// any ordinary move.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TouchedObjects {
    inline: [Option<ObjectIndex>; INLINE_OBJECTS],
    spilled: Vec<ObjectIndex>,
}

impl TouchedObjects {
    fn insert(&mut self, object: ObjectIndex) {
        if self.contains(object) {
            return;
        }
        match self.inline.iter_mut().find(|slot| slot.is_none()) {
            Some(slot) => *slot = Some(object),
            None => self.spilled.push(object),
        }
    }

    pub fn contains(&self, object: ObjectIndex) -> bool {
        self.inline.contains(&Some(object)) || self.spilled.contains(&object)
    }

    pub fn iter(&self) -> impl Iterator<Item = ObjectIndex> + '_ {
        self.inline.iter().flatten().copied().chain(self.spilled.iter().copied())
    }

    pub fn is_empty(&self) -> bool {
        self.inline[0].is_none()
    }
}

/// What an accepted move leads to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcceptedMove {
    /// The tile and zone of the destination.
    pub tile: (i32, i32),
    pub zone: ZoneIndex,
    /// The exclusive object at the destination, which the avatar now wants to hold.
    pub object: Option<ObjectIndex>,
    /// Every exclusive object the move touches, the destination's included: the caller
    /// refuses the move if one of them is held to capacity by others.
    pub touched: TouchedObjects,
}

/// Door-only zones entered along a move; a move enters at most a handful.
#[derive(Default)]
struct GatedZones {
    zones: [Option<ZoneIndex>; 4],
    overflow: bool,
}

impl GatedZones {
    fn insert(&mut self, zone: ZoneIndex) {
        if self.zones.contains(&Some(zone)) {
            return;
        }
        match self.zones.iter_mut().find(|slot| slot.is_none()) {
            Some(slot) => *slot = Some(zone),
            None => self.overflow = true,
        }
    }
}

impl World {
    /// The longest move allowed after `elapsed`, in sub-tile units.
    pub fn allowed_distance(&self, elapsed: Duration) -> u32 {
        let movement = &self.file.movement;
        let tiles = f64::from(movement.max_speed) * elapsed.as_secs_f64() + f64::from(movement.slack);
        // Saturates for absurd durations: the grid bounds the move anyway.
        (tiles * f64::from(SUBTILE)).min(f64::from(u32::MAX)) as u32
    }

    /// Whether `position` is strictly inside the grid (a point on its border touches the outside).
    pub fn is_inside(&self, position: Position) -> bool {
        let extent = self.extent();
        position.x > 0 && position.y > 0 && position.x < extent.x && position.y < extent.y
    }

    /// Checks a move that took `elapsed` (time since the last accepted move): at most
    /// `max_speed · elapsed + slack` tiles.
    pub fn check_move(&self, from: Position, to: Position, elapsed: Duration) -> Result<AcceptedMove, MoveRejection> {
        self.check_move_within(from, to, self.allowed_distance(elapsed))
    }

    /// Checks a move against a distance allowance the caller keeps (sub-tile units), for
    /// servers that budget distance over time rather than per move.
    pub fn check_move_within(&self, from: Position, to: Position, allowed: u32) -> Result<AcceptedMove, MoveRejection> {
        if !self.is_inside(from) || !self.is_inside(to) {
            return Err(MoveRejection::OffGrid);
        }
        let distance_squared = from.distance_squared(to);
        if distance_squared > i64::from(allowed) * i64::from(allowed) {
            // Both points are on the grid, so the distance fits in u32.
            let distance = (distance_squared as f64).sqrt() as u32;
            return Err(MoveRejection::TooFast { distance, allowed });
        }
        self.check_path(from, to)
    }

    /// Checks the path of a move without a speed limit (for placing an avatar, or for a
    /// client planning a walk).
    pub fn check_path(&self, from: Position, to: Position) -> Result<AcceptedMove, MoveRejection> {
        if !self.is_inside(from) || !self.is_inside(to) {
            return Err(MoveRejection::OffGrid);
        }
        let (from_x, from_y) = from.tile();
        let start_zone = self.zone_at(i64::from(from_x), i64::from(from_y)).unwrap_or(ZoneIndex::DEFAULT);
        let mut touched = TouchedObjects::default();
        let mut gated = GatedZones::default();
        let mut lowest = u8::MAX;
        let mut highest = u8::MIN;

        let walk = for_each_touched_tile(from, to, |x, y| {
            let Some(tile) = self.tile_info(x, y) else {
                return ControlFlow::Break(MoveRejection::Blocked { tile: (x, y) });
            };
            if tile.flags & TILE_BLOCKED != 0 {
                return ControlFlow::Break(MoveRejection::Blocked { tile: (x, y) });
            }
            if tile.flags & (WALL_NORTH | WALL_WEST) != 0 && touches_wall_of(from, to, x, y, tile.flags) {
                return ControlFlow::Break(MoveRejection::Wall { tile: (x, y) });
            }
            lowest = lowest.min(tile.height);
            highest = highest.max(tile.height);
            if highest - lowest > 1 {
                return ControlFlow::Break(MoveRejection::Cliff { tile: (x, y) });
            }
            if tile.object != NO_OBJECT {
                touched.insert(ObjectIndex(tile.object));
            }
            if tile.zone != start_zone && !self.zone_entry[usize::from(tile.zone.0)].is_empty() {
                gated.insert(tile.zone);
            }
            ControlFlow::Continue(())
        });
        if let ControlFlow::Break(rejection) = walk {
            return Err(rejection);
        }
        if gated.overflow {
            // Only an absurdly long move crosses five door-only zones; refuse rather than guess.
            return Err(MoveRejection::NotThroughEntry { zone: gated.zones[0].unwrap_or(ZoneIndex::DEFAULT) });
        }
        for zone in gated.zones.into_iter().flatten() {
            if !self.zone_entry[usize::from(zone.0)].iter().any(|&door| touched.contains(door)) {
                return Err(MoveRejection::NotThroughEntry { zone });
            }
        }
        let tile = to.tile();
        let (tx, ty) = (i64::from(tile.0), i64::from(tile.1));
        Ok(AcceptedMove {
            tile,
            zone: self.zone_at(tx, ty).unwrap_or(ZoneIndex::DEFAULT),
            object: self.object_at(tx, ty),
            touched,
        })
    }
}

impl World {
    /// Whether an avatar may stand at `position`: on the grid, on a walkable tile, not on a
    /// wall (what a server checks of a place it did not choose, such as one a changed
    /// world file left someone on).
    pub fn can_stand(&self, position: Position) -> bool {
        self.check_path(position, position).is_ok()
    }

    /// The tile centre nearest to `from` where an avatar may stand and `accept` agrees
    /// (given the tile), searching outwards ring by ring; `None` when no tile qualifies.
    /// Ties go to the tile found first (rows top to bottom).
    pub fn nearest_place(&self, from: Position, mut accept: impl FnMut(u32, u32) -> bool) -> Option<Position> {
        let (width, height) = (i64::from(self.width()), i64::from(self.height()));
        let (from_x, from_y) = from.tile();
        let (from_x, from_y) = (i64::from(from_x).clamp(0, width - 1), i64::from(from_y).clamp(0, height - 1));
        let mut best: Option<(i64, Position)> = None;
        for ring in 0..width.max(height) {
            // Every tile of a later ring is at least (ring - 1/2) tiles away.
            let nearest_possible = (ring * i64::from(SUBTILE) - i64::from(SUBTILE) / 2).max(0);
            if best.is_some_and(|(distance, _)| distance < nearest_possible * nearest_possible) {
                break;
            }
            for y in (from_y - ring)..=(from_y + ring) {
                for x in (from_x - ring)..=(from_x + ring) {
                    let on_ring = (y - from_y).abs() == ring || (x - from_x).abs() == ring;
                    if !on_ring || x < 0 || y < 0 || x >= width || y >= height {
                        continue;
                    }
                    // On the grid, so both fit in u32.
                    let (tx, ty) = (x as u32, y as u32);
                    let centre = Position::tile_center(tx, ty);
                    let distance = centre.distance_squared(from);
                    if best.is_some_and(|(d, _)| d <= distance) || !self.can_stand(centre) || !accept(tx, ty) {
                        continue;
                    }
                    best = Some((distance, centre));
                }
            }
        }
        best.map(|(_, place)| place)
    }
}

/// Whether the segment touches a wall on tile `(x, y)`'s north or west edge.
fn touches_wall_of(from: Position, to: Position, x: i64, y: i64, flags: u8) -> bool {
    // Tiles reached here are on the grid, so their corners fit in i32.
    let (left, top) = ((x * i64::from(SUBTILE)) as i32, (y * i64::from(SUBTILE)) as i32);
    let top_left = Position::new(left, top);
    (flags & WALL_NORTH != 0 && segment_touches_box(from, to, top_left, Position::new(left + SUBTILE, top)))
        || (flags & WALL_WEST != 0 && segment_touches_box(from, to, top_left, Position::new(left, top + SUBTILE)))
}
