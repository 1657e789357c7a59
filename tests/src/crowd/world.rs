//! The crowd's world: square open zones side by side on open floor, one spawn point in
//! the middle of each, so people can walk in straight lines anywhere, between zones too.

use isoplane_signaling::protocol::Point;
use isoplane_world_format::SUBTILE;

/// Each zone is a square of this many tiles.
pub const ZONE_SIDE: u32 = 16;
/// Tiles per second a person may walk; the crowd walks slower, so honest moves are never
/// corrected for speed.
pub const MAX_SPEED: f64 = 6.0;
/// At most this many zones: each has a spawn point, and a world has at most 256.
pub const MAX_ZONES: u32 = isoplane_world_format::limits::MAX_SPAWNS as u32;

/// A rectangle of tiles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rect {
    pub x: u32,
    pub y: u32,
    pub w: u32,
    pub h: u32,
}

impl Rect {
    /// Whether a position (sub-tile units) lies on one of this rectangle's tiles.
    pub fn contains(&self, point: Point) -> bool {
        let (x, y) = (point.x.div_euclid(SUBTILE), point.y.div_euclid(SUBTILE));
        let (left, top) = (self.x as i32, self.y as i32);
        x >= left && y >= top && x < left + self.w as i32 && y < top + self.h as i32
    }
}

/// One zone of the crowd's world.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrowdZone {
    /// Its ID in the world file (`z0`, `z1`…).
    pub id: String,
    /// The spawn point in its middle (`s0`, `s1`…).
    pub spawn: String,
    pub area: Rect,
}

/// A generated world and where its zones are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrowdWorld {
    /// The world file, valid for isoplane-world-format.
    pub json: String,
    pub zones: Vec<CrowdZone>,
}

impl CrowdWorld {
    /// `zones` open zones of [`ZONE_SIDE`] tiles laid out in a square-ish grid; the cells
    /// of the last row that no zone fills are open floor of the default zone (`hall`).
    ///
    /// # Panics
    /// When `zones` is 0 or above [`MAX_ZONES`].
    pub fn new(zones: u32) -> CrowdWorld {
        assert!((1..=MAX_ZONES).contains(&zones), "a crowd world has 1 to {MAX_ZONES} zones, not {zones}");
        let columns = (f64::from(zones).sqrt().ceil() as u32).max(1);
        let rows = zones.div_ceil(columns);
        let zones: Vec<CrowdZone> = (0..zones)
            .map(|z| CrowdZone {
                id: format!("z{z}"),
                spawn: format!("s{z}"),
                area: Rect { x: (z % columns) * ZONE_SIDE, y: (z / columns) * ZONE_SIDE, w: ZONE_SIDE, h: ZONE_SIDE },
            })
            .collect();
        let zone_list: Vec<serde_json::Value> = zones
            .iter()
            .enumerate()
            .map(|(z, zone)| {
                let Rect { x, y, w, h } = zone.area;
                serde_json::json!({"id": zone.id, "name": format!("Zone {z}"), "type": "open", "talk_radius": 3,
                    "area": [{"x": x, "y": y, "w": w, "h": h}]})
            })
            .collect();
        let spawns: Vec<serde_json::Value> = zones
            .iter()
            .map(|zone| {
                serde_json::json!({"id": zone.spawn, "x": zone.area.x + zone.area.w / 2, "y": zone.area.y + zone.area.h / 2})
            })
            .collect();
        let json = serde_json::json!({
            "format": "isoplane.world", "version": 1, "name": "crowd",
            "grid": {"orientation": "isometric", "width": columns * ZONE_SIDE, "height": rows * ZONE_SIDE,
                     "tile_width": 64, "tile_height": 32},
            "movement": {"max_speed": MAX_SPEED, "slack": 0.5},
            "spawns": spawns,
            "default_zone": {"id": "hall", "name": "Hall", "type": "open", "talk_radius": 3},
            "zones": zone_list,
        })
        .to_string();
        CrowdWorld { json, zones }
    }

    /// The index of the zone a position is in; `None` on the hall's floor.
    pub fn zone_at(&self, point: Point) -> Option<usize> {
        self.zones.iter().position(|zone| zone.area.contains(point))
    }
}

/// The world file of [`CrowdWorld::new`].
pub fn world_json(zones: u32) -> String {
    CrowdWorld::new(zones).json
}

#[cfg(test)]
mod tests {
    use isoplane_world_format::{Position, World};

    use super::*;

    #[test]
    fn the_world_is_valid_and_every_zone_is_where_it_says() {
        for count in [1, 2, 5, 20, MAX_ZONES] {
            let crowd = CrowdWorld::new(count);
            let world = World::from_json(&crowd.json).unwrap_or_else(|e| panic!("{count} zones: {e}"));
            assert_eq!(crowd.zones.len(), count as usize);
            for (index, zone) in crowd.zones.iter().enumerate() {
                let spawn = world.spawn(&zone.spawn).unwrap_or_else(|| panic!("spawn {}", zone.spawn));
                let at = World::spawn_position(spawn);
                let point = Point { x: at.x, y: at.y };
                assert_eq!(crowd.zone_at(point), Some(index));
                let found = world.zone_of(at).map(|z| world.zone(z).id);
                assert_eq!(found, Some(zone.id.as_str()));
            }
        }
    }

    #[test]
    fn people_walk_in_straight_lines_between_any_two_zones() {
        let crowd = CrowdWorld::new(7);
        let world = World::from_json(&crowd.json).unwrap_or_else(|e| panic!("{e}"));
        let centre = |r: Rect| Position::tile_center(r.x + r.w / 2, r.y + r.h / 2);
        for from in &crowd.zones {
            for to in &crowd.zones {
                assert!(world.check_path(centre(from.area), centre(to.area)).is_ok(), "{} → {}", from.id, to.id);
            }
        }
    }

    #[test]
    #[should_panic(expected = "a crowd world has 1 to 256 zones, not 0")]
    fn no_zones_is_refused() {
        CrowdWorld::new(0);
    }
}
