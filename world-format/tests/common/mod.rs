//! The small hand-drawn world that the move check's tests share.

use isoplane_world_format::World;
use serde_json::json;

/// ```text
///      x: 0 1 2 3 4 5 6 7
///   y 0:  . . . . . . . .
///   y 1:  . . # . . . . .      (2,1) blocked
///   y 2:  . # . . . | . .      (1,2) blocked; thin wall on x=5 from y=2 to y=4
///   y 3:  . . . . . | . .
///   y 4:  . . . . . . . .      heights: row 5 is level 1, row 6 level 3 (a cliff)
///   y 5:  . . . . . . . .
///   y 6:  . . . . . . . .
/// ```
/// A private room x 6..7, y 0..1 is entered only through the door at (5, 0); a seat at
/// (7, 1) requires the door; a passage covers (0, 4)..(0, 5).
pub fn moves_world() -> World {
    let value = json!({
        "format": "isoplane.world", "version": 1, "name": "Moves",
        "grid": {"orientation": "orthogonal", "width": 8, "height": 7, "tile_width": 32, "tile_height": 32,
                 "levels": 4},
        "movement": {"max_speed": 4.0, "slack": 0.5},
        "collision": {
            "rows": ["........", "..#.....", ".#......", "........", "........", "........", "........"],
            "heights": ["00000000", "00000000", "00000000", "00000000", "00000000", "11111111", "33333333"],
            "walls": [{"from": [5, 2], "to": [5, 4]}],
        },
        "spawns": [{"id": "main", "x": 3, "y": 3}],
        "zones": [{"id": "room", "name": "Room", "type": "private", "capacity": 2,
                   "area": [{"x": 6, "y": 0, "w": 2, "h": 2}], "entry_via": ["door"]}],
        "objects": [
            {"id": "door", "kind": "door", "area": [{"x": 5, "y": 0}]},
            {"id": "seat", "kind": "seat", "area": [{"x": 7, "y": 1}], "facing": "west", "requires": ["door"]},
            {"id": "passage", "kind": "passage", "area": [{"x": 0, "y": 4, "w": 1, "h": 2}]},
        ],
    });
    World::from_json(&value.to_string()).unwrap_or_else(|e| panic!("{e}"))
}
