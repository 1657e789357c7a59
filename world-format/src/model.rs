//! The world file as plain data: what a `.world.json` file holds, field for field.
//!
//! These types carry no invariants of their own; [`crate::World`] is the validated form
//! that the rest of Isoplane uses. Serialising a [`WorldFile`] writes the canonical JSON
//! described in `docs/world-format.md`, which [`crate::World::from_json`] reads back.
//!
//! Each record is declared once, with `record!`: its fields, in file order, with the
//! defaults the format fills in. That one declaration gives the struct, its serde
//! `Serialize` (the writer) and its reader (`json_reader`), which reports every error in
//! a file at once with its JSON path. There is no serde `Deserialize` for the model: a
//! derived one stops at the first bad field and cannot keep reading, nor keep the
//! readable items of a list for validation, so reading has exactly one definition.
//! (`Facing` keeps serde's `Deserialize` for the signaling protocol, which sends it.)

use serde::{Deserialize, Serialize};

use crate::content_id::ContentId;
use crate::json_reader::{Named, record};

/// Defaults the format fills in for fields a file leaves out.
pub mod defaults {
    pub const LEVELS: u32 = 1;
    pub const MAX_SPEED: f32 = 4.0;
    pub const SLACK: f32 = 0.5;
    pub const TALK_RADIUS: u32 = 3;
    pub const SFU_THRESHOLD: u32 = 4;
    pub const MAX_SPEAKERS: u32 = 4;
    pub const OBJECT_CAPACITY: u32 = 1;
    pub const DEFAULT_ZONE_ID: &str = "default";
    pub const DEFAULT_ZONE_NAME: &str = "Open space";
}

/// The value of the top-level `format` field of every world file.
pub const FORMAT_NAME: &str = "isoplane.world";
/// The newest format version this crate reads and the one it writes.
pub const FORMAT_VERSION: u32 = 1;

/// Bit flags that Tiled-style GIDs carry in their top bits.
pub const GID_FLIP_HORIZONTAL: u32 = 0x8000_0000;
pub const GID_FLIP_VERTICAL: u32 = 0x4000_0000;
pub const GID_FLIP_DIAGONAL: u32 = 0x2000_0000;
/// Hexagonal maps' 120° rotation flag; world files never set it, masked all the same.
pub const GID_ROTATE_120: u32 = 0x1000_0000;
/// Mask that keeps a GID's tile number and drops its flip flags.
pub const GID_MASK: u32 = !(GID_FLIP_HORIZONTAL | GID_FLIP_VERTICAL | GID_FLIP_DIAGONAL | GID_ROTATE_120);

/// A whole world file.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WorldFile {
    /// Always [`FORMAT_NAME`].
    pub format: String,
    /// The format version; see [`FORMAT_VERSION`].
    pub version: u32,
    /// The name people see.
    pub name: String,
    pub grid: Grid,
    pub movement: Movement,
    pub tilesets: Vec<Tileset>,
    pub layers: Vec<Layer>,
    pub collision: Collision,
    /// Where avatars appear. The first one is the default spawn point.
    pub spawns: Vec<Spawn>,
    /// The zone every tile outside the listed zones belongs to.
    pub default_zone: DefaultZone,
    pub zones: Vec<Zone>,
    pub objects: Vec<ExclusiveObject>,
    pub exits: Vec<Exit>,
    /// Web pages that open beside the map (left out of the file when there are none).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub websites: Vec<Website>,
}

/// How tiles map to the screen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Orientation {
    /// Diamond tiles, as Tiled's `isometric` orientation.
    Isometric,
    /// Square top-down tiles, as Tiled's `orthogonal` orientation.
    Orthogonal,
}

impl Orientation {
    pub fn as_str(self) -> &'static str {
        match self {
            Orientation::Isometric => "isometric",
            Orientation::Orthogonal => "orthogonal",
        }
    }
}

impl Named for Orientation {
    const NOUN: &'static str = "orientation";
    const ALL: &'static [Orientation] = &[Orientation::Isometric, Orientation::Orthogonal];

    fn name(self) -> &'static str {
        self.as_str()
    }
}

record! {
    /// The tile grid: its size and the screen footprint of one tile.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
    pub struct Grid {
        pub orientation: Orientation,
        /// Width in tiles (the x axis).
        pub width: u32,
        /// Height in tiles (the y axis).
        pub height: u32,
        /// Footprint of one tile on screen, in pixels.
        pub tile_width: u32,
        pub tile_height: u32,
        /// Number of height levels (1 = flat). Tile heights go from 0 to `levels - 1`.
        pub levels: u32 = defaults::LEVELS,
        /// Screen pixels one height level lifts a tile by; half a tile's height by default.
        pub level_height: u32 = tile_height.map_or(0, |h| h / 2),
    }
}

record! {
    /// How fast avatars may move, which the server's move check enforces.
    #[derive(Debug, Clone, Copy, PartialEq, Serialize)]
    pub struct Movement {
        /// Top walking speed, in tiles per second.
        pub max_speed: f32 = defaults::MAX_SPEED,
        /// Extra distance, in tiles, allowed on any single move to absorb network jitter.
        pub slack: f32 = defaults::SLACK,
    }
}

/// The movement of a file that has no `movement`.
impl Default for Movement {
    fn default() -> Movement {
        Movement { max_speed: defaults::MAX_SPEED, slack: defaults::SLACK }
    }
}

record! {
    /// One tileset image: a grid of equally sized tile pictures in one asset.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize)]
    pub struct Tileset {
        pub name: String,
        /// Content ID of the image.
        pub image: ContentId,
        pub image_width: u32,
        pub image_height: u32,
        /// Size of one tile picture; may be taller than the grid tile (walls, furniture).
        pub tile_width: u32,
        pub tile_height: u32,
        pub columns: u32,
        pub tile_count: u32,
        /// GID of the first tile; the tileset owns GIDs `first_gid .. first_gid + tile_count`.
        pub first_gid: u32,
    }
}

/// Where a layer is drawn relative to avatars.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LayerDepth {
    /// Floors: drawn under everything that stands on the grid.
    Below,
    /// Walls and furniture: each tile depth-sorted together with avatars.
    Sorted,
    /// Roofs, tree tops: drawn over avatars.
    Above,
}

impl LayerDepth {
    pub fn as_str(self) -> &'static str {
        match self {
            LayerDepth::Below => "below",
            LayerDepth::Sorted => "sorted",
            LayerDepth::Above => "above",
        }
    }
}

/// A layer's `depth` may be left out (`below`), but `null` is refused: it is not a name.
impl Named for LayerDepth {
    const NOUN: &'static str = "depth";
    const ALL: &'static [LayerDepth] = &[LayerDepth::Below, LayerDepth::Sorted, LayerDepth::Above];

    fn name(self) -> &'static str {
        self.as_str()
    }
}

record! {
    /// A visual tile layer. `tiles` has `width * height` GIDs in row-major order; 0 is empty.
    #[derive(Debug, Clone, PartialEq, Serialize)]
    pub struct Layer {
        pub name: String,
        pub depth: LayerDepth = LayerDepth::Below,
        pub opacity: f32 = 1.0,
        pub visible: bool = true,
        pub tiles: Vec<u32>,
    }
}

record! {
    /// Which tiles can be walked on and where thin walls stand.
    #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
    pub struct Collision {
        /// One string per row, one character per tile: `.` walkable, `#` blocked.
        pub rows: Vec<String> = Vec::new(),
        /// One string per row of digits `0`-`9`: the height level of each tile. Empty = flat.
        pub heights: Vec<String> = Vec::new(),
        /// Thin walls along grid lines, between tiles.
        pub walls: Vec<Wall> = Vec::new(),
    }
}

record! {
    /// A thin wall along a grid line, from one tile corner to another (horizontal or vertical).
    /// Corner `(x, y)` is the top-left corner of tile `(x, y)`.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
    pub struct Wall {
        pub from: [u32; 2],
        pub to: [u32; 2],
    }
}

record! {
    /// A rectangle of tiles.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
    pub struct Rect {
        pub x: u32,
        pub y: u32,
        pub w: u32 = 1,
        pub h: u32 = 1,
    }
}

impl Rect {
    pub fn tile(x: u32, y: u32) -> Rect {
        Rect { x, y, w: 1, h: 1 }
    }

    /// Every tile of the rectangle, row by row.
    pub fn tiles(&self) -> impl Iterator<Item = (u32, u32)> + '_ {
        (self.y..self.y.saturating_add(self.h))
            .flat_map(move |y| (self.x..self.x.saturating_add(self.w)).map(move |x| (x, y)))
    }

    pub fn contains(&self, x: u32, y: u32) -> bool {
        x >= self.x
            && y >= self.y
            && u64::from(x) < u64::from(self.x) + u64::from(self.w)
            && u64::from(y) < u64::from(self.y) + u64::from(self.h)
    }
}

/// One of the eight directions an avatar can face, in grid axes (north is -y).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Facing {
    North,
    NorthEast,
    East,
    SouthEast,
    South,
    SouthWest,
    West,
    NorthWest,
}

impl Facing {
    pub const ALL: [Facing; 8] = [
        Facing::North,
        Facing::NorthEast,
        Facing::East,
        Facing::SouthEast,
        Facing::South,
        Facing::SouthWest,
        Facing::West,
        Facing::NorthWest,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Facing::North => "north",
            Facing::NorthEast => "north_east",
            Facing::East => "east",
            Facing::SouthEast => "south_east",
            Facing::South => "south",
            Facing::SouthWest => "south_west",
            Facing::West => "west",
            Facing::NorthWest => "north_west",
        }
    }

    pub fn parse(text: &str) -> Option<Facing> {
        Facing::ALL.into_iter().find(|f| f.as_str() == text)
    }
}

record! {
    /// A place where avatars appear when they join or arrive through an exit.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize)]
    pub struct Spawn {
        pub id: String,
        pub x: u32,
        pub y: u32,
        pub facing: Facing = Facing::South,
    }
}

record! {
    /// The zone of tiles that no listed zone covers.
    #[derive(Debug, Clone, PartialEq, Serialize)]
    pub struct DefaultZone {
        pub id: String = defaults::DEFAULT_ZONE_ID.to_owned(),
        pub name: String = defaults::DEFAULT_ZONE_NAME.to_owned(),
        #[serde(flatten)]
        pub kind: ZoneKind as flattened,
    }
}

record! {
    /// A named area of tiles with a ZoneType that decides how people talk there.
    #[derive(Debug, Clone, PartialEq, Serialize)]
    pub struct Zone {
        pub id: String,
        pub name: String,
        #[serde(flatten)]
        pub kind: ZoneKind as flattened,
        /// The tiles of the zone, as a union of rectangles.
        pub area: Vec<Rect>,
        /// If not empty, the zone may only be entered through one of these exclusive objects
        /// (a door): a move that enters it must start on or pass over one of them.
        pub entry_via: Vec<String> = Vec::new(),
        /// People inside may record the zone's media (an admin or a speaker starts it;
        /// everyone inside is told). Not in zones with `e2ee`.
        #[serde(skip_serializing_if = "is_false")]
        pub recording: bool = false,
        /// Media on the SFU is encrypted end to end, frame by frame, with a key only the
        /// zone's members get (meeting rooms and private zones).
        #[serde(skip_serializing_if = "is_false")]
        pub e2ee: bool = false,
    }
}

fn is_false(value: &bool) -> bool {
    !*value
}

/// A ZoneType and its options.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ZoneKind {
    /// Proximity talk: people hear those within `talk_radius` tiles.
    Open { talk_radius: u32 },
    /// Everyone inside talks together; the SFU takes over above `sfu_threshold` people.
    MeetingRoom {
        sfu_threshold: u32,
        #[serde(skip_serializing_if = "Option::is_none")]
        capacity: Option<u32>,
    },
    /// A few speak from the podium, everyone else listens.
    Stage { podium: Vec<Rect>, max_speakers: u32 },
    /// No media at all.
    Silent,
    /// A room with a head count that admins can lock.
    Private { capacity: u32, lockable: bool },
}

/// The zone of uncovered tiles when a file does not name one.
pub fn default_zone() -> DefaultZone {
    DefaultZone {
        id: defaults::DEFAULT_ZONE_ID.into(),
        name: defaults::DEFAULT_ZONE_NAME.into(),
        kind: ZoneKind::Open { talk_radius: defaults::TALK_RADIUS },
    }
}

/// The ZoneType names, in the order docs list them.
pub const ZONE_TYPES: [&str; 5] = ["open", "meeting_room", "stage", "silent", "private"];

impl ZoneKind {
    pub fn type_name(&self) -> &'static str {
        match self {
            ZoneKind::Open { .. } => "open",
            ZoneKind::MeetingRoom { .. } => "meeting_room",
            ZoneKind::Stage { .. } => "stage",
            ZoneKind::Silent => "silent",
            ZoneKind::Private { .. } => "private",
        }
    }

    /// The most people the zone admits at once, if it has a limit.
    pub fn capacity(&self) -> Option<u32> {
        match self {
            ZoneKind::MeetingRoom { capacity, .. } => *capacity,
            ZoneKind::Private { capacity, .. } => Some(*capacity),
            _ => None,
        }
    }
}

/// What an exclusive object is, which decides how clients show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ObjectKind {
    /// Passed through; held while standing on it.
    Door,
    /// Sat on; the avatar's state becomes `sitting`.
    Seat,
    /// A narrow corridor: held while anywhere on its tiles.
    Passage,
}

impl ObjectKind {
    pub const ALL: [ObjectKind; 3] = [ObjectKind::Door, ObjectKind::Seat, ObjectKind::Passage];

    pub fn as_str(self) -> &'static str {
        match self {
            ObjectKind::Door => "door",
            ObjectKind::Seat => "seat",
            ObjectKind::Passage => "passage",
        }
    }

    pub fn parse(text: &str) -> Option<ObjectKind> {
        ObjectKind::ALL.into_iter().find(|k| k.as_str() == text)
    }
}

impl Named for ObjectKind {
    const NOUN: &'static str = "kind";
    const ALL: &'static [ObjectKind] = &ObjectKind::ALL;

    fn name(self) -> &'static str {
        self.as_str()
    }
}

record! {
    /// A door, seat or narrow passage that at most `capacity` avatars may hold at once.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize)]
    pub struct ExclusiveObject {
        pub id: String,
        pub kind: ObjectKind,
        pub area: Vec<Rect>,
        pub capacity: u32 = defaults::OBJECT_CAPACITY,
        /// Direction a seated avatar faces (seats only).
        #[serde(skip_serializing_if = "Option::is_none")]
        pub facing: Option<Facing> = None,
        /// Interaction chain: if not empty, the object may only be taken by an avatar whose
        /// previous object was one of these (e.g. a seat behind a door).
        pub requires: Vec<String> = Vec::new(),
    }
}

record! {
    /// A way out of this world into another one.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize)]
    pub struct Exit {
        pub id: String,
        pub area: Vec<Rect>,
        /// The target world's name within the workspace.
        pub world: String,
        /// A spawn point of the target world; its default spawn when absent.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub spawn: Option<String> = None,
    }
}

/// When a website's page opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WebsiteTrigger {
    /// As soon as someone steps onto its area.
    Enter,
    /// When someone on its area asks for it (a key or a button), as for a shared board
    /// that should not pop up on everyone walking past.
    Action,
}

impl WebsiteTrigger {
    pub const ALL: [WebsiteTrigger; 2] = [WebsiteTrigger::Enter, WebsiteTrigger::Action];

    pub fn as_str(self) -> &'static str {
        match self {
            WebsiteTrigger::Enter => "enter",
            WebsiteTrigger::Action => "action",
        }
    }
}

impl Named for WebsiteTrigger {
    const NOUN: &'static str = "trigger";
    const ALL: &'static [WebsiteTrigger] = &WebsiteTrigger::ALL;

    fn name(self) -> &'static str {
        self.as_str()
    }
}

record! {
    /// A web page (a whiteboard, a document, a dashboard) that opens beside the map for
    /// whoever stands on its area. Clients embed it only if its origin is on the
    /// workspace's allow-list (docs/world-format.md, Websites).
    #[derive(Debug, Clone, PartialEq, Eq, Serialize)]
    pub struct Website {
        pub id: String,
        /// What people see on the button and above the page.
        pub name: String,
        /// An `http:` or `https:` URL.
        pub url: String,
        pub area: Vec<Rect>,
        pub trigger: WebsiteTrigger = WebsiteTrigger::Enter,
    }
}
