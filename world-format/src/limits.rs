//! Every size and count a world file may have. Files beyond these are refused, so a
//! hostile or broken file cannot make a server allocate without bound.

/// Largest grid side, in tiles. Positions stay far from `i32` overflow in sub-tile units.
pub const MAX_GRID_SIDE: u32 = 1024;
/// Largest tile footprint or tile picture, in pixels.
pub const MAX_TILE_PIXELS: u32 = 4096;
/// Height levels are written as one digit per tile.
pub const MAX_LEVELS: u32 = 10;
pub const MAX_TILESETS: usize = 256;
pub const MAX_LAYERS: usize = 64;
pub const MAX_WALLS: usize = 65_536;
pub const MAX_ZONES: usize = 4_096;
pub const MAX_OBJECTS: usize = 16_384;
pub const MAX_SPAWNS: usize = 256;
pub const MAX_EXITS: usize = 256;
pub const MAX_WEBSITES: usize = 256;
/// Bytes in a website's URL.
pub const MAX_URL_CHARS: usize = 2_048;
/// Rectangles in one area (a zone, an object, an exit or a podium).
pub const MAX_RECTS_PER_AREA: usize = 1_024;
pub const MAX_REFERENCES: usize = 64;
pub const MAX_NAME_CHARS: usize = 200;
pub const MAX_ID_CHARS: usize = 64;
pub const MAX_CAPACITY: u32 = 10_000;
pub const MAX_TALK_RADIUS: u32 = 64;
/// Tiles per second.
pub const MAX_SPEED: f32 = 64.0;
/// Tiles.
pub const MAX_SLACK: f32 = 8.0;
/// Bytes of JSON a world file may have; readers check this before parsing.
pub const MAX_FILE_BYTES: usize = 64 * 1024 * 1024;
/// Errors reported per layer before the rest are summarised, so a wrong tileset does not
/// bury every other problem under a million lines.
pub const MAX_ERRORS_PER_LAYER: usize = 5;
