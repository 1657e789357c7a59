//! Reading a world file's JSON into a [`WorldFile`], field by field.
//!
//! This layer checks shapes and types (and fills in defaults); the rules that relate
//! fields to each other (sizes, overlaps, references, reachability) are in
//! [`crate::validate`]. A file written by a newer Isoplane is refused before anything
//! else is read, since its fields may mean something this version does not know.

use serde_json::Value;

use crate::content_id::ContentId;
use crate::json_reader::{FromJson, ObjectReader, PartialList, describe};
use crate::model::*;
use crate::problem::Problems;

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

/// Which parts of a file could not be read. The readable rest is still validated, so one
/// run reports shape errors and rule errors together; the rules that a missing part could
/// make fail spuriously are skipped.
#[derive(Debug, Default, Clone)]
pub(crate) struct Unread {
    pub name: bool,
    pub movement: bool,
    pub tilesets: bool,
    pub zones: bool,
    pub objects: bool,
    pub spawns: bool,
    /// Where each kept list item stood in the file, by list name, when items before it
    /// were dropped (so error paths still point at the right item).
    positions: Vec<(&'static str, Vec<usize>)>,
}

impl Unread {
    /// The JSONPath of item `index` of a top-level list, as numbered in the file.
    pub fn item_path(&self, list: &'static str, index: usize) -> String {
        let position = self
            .positions
            .iter()
            .find(|(name, _)| *name == list)
            .and_then(|(_, positions)| positions.get(index).copied())
            .unwrap_or(index);
        format!("$.{list}[{position}]")
    }

    fn keep<T>(&mut self, list: &'static str, read: PartialList<T>) -> (Vec<T>, bool) {
        if !read.complete {
            self.positions.push((list, read.positions));
        }
        (read.items, read.complete)
    }
}

/// Reads the whole document. `None` means nothing can be validated (not a world file, a
/// newer version, or no readable grid); errors were recorded.
pub(crate) fn read_world_file(value: &Value, problems: &mut Problems) -> Option<(WorldFile, Unread)> {
    let mut top = ObjectReader::open(value, "$", problems)?;
    let format = top.required::<String>("format", problems);
    let version = top.required::<u32>("version", problems);
    if let Some(format) = &format
        && format != FORMAT_NAME
    {
        problems.error(
            "$.format",
            format!("this is not an Isoplane world file: `format` is \"{format}\", expected \"{FORMAT_NAME}\""),
        );
        return None;
    }
    if let Some(version) = version
        && version > FORMAT_VERSION
    {
        problems.error(
            "$.version",
            format!(
                "this world uses format version {version}, but this Isoplane reads versions up to {FORMAT_VERSION}: upgrade Isoplane to open it"
            ),
        );
        return None;
    }
    if version == Some(0) {
        problems.error("$.version", "format versions start at 1");
    }

    let mut unread = Unread::default();
    let name = top.required::<String>("name", problems);
    let grid = top.required::<Grid>("grid", problems);
    let movement = top.optional("movement", default_movement(), problems);
    let (tilesets, all_tilesets) = unread.keep("tilesets", top.list::<Tileset>("tilesets", false, problems));
    let (layers, _) = unread.keep("layers", top.list::<Layer>("layers", false, problems));
    let collision =
        top.optional("collision", Collision { rows: Vec::new(), heights: Vec::new(), walls: Vec::new() }, problems);
    let (spawns, all_spawns) = unread.keep("spawns", top.list::<Spawn>("spawns", true, problems));
    let default_zone_read = top.optional("default_zone", default_zone(), problems);
    let (zones, all_zones) = unread.keep("zones", top.list::<Zone>("zones", false, problems));
    let (objects, all_objects) = unread.keep("objects", top.list::<ExclusiveObject>("objects", false, problems));
    let (exits, _) = unread.keep("exits", top.list::<Exit>("exits", false, problems));
    top.finish(problems);

    unread.name = name.is_none();
    unread.movement = movement.is_none();
    unread.tilesets = !all_tilesets;
    unread.zones = !all_zones || default_zone_read.is_none();
    unread.objects = !all_objects;
    unread.spawns = !all_spawns;
    let file = WorldFile {
        format: format.unwrap_or_else(|| FORMAT_NAME.into()),
        version: version.unwrap_or(FORMAT_VERSION),
        name: name.unwrap_or_default(),
        grid: grid?,
        movement: movement.unwrap_or_else(default_movement),
        tilesets,
        layers,
        collision: collision.unwrap_or(Collision { rows: Vec::new(), heights: Vec::new(), walls: Vec::new() }),
        spawns,
        default_zone: default_zone_read.unwrap_or_else(default_zone),
        zones,
        objects,
        exits,
    };
    Some((file, unread))
}

fn default_movement() -> Movement {
    Movement { max_speed: defaults::MAX_SPEED, slack: defaults::SLACK }
}

/// The zone of uncovered tiles when a file does not name one.
pub fn default_zone() -> DefaultZone {
    DefaultZone {
        id: defaults::DEFAULT_ZONE_ID.into(),
        name: defaults::DEFAULT_ZONE_NAME.into(),
        kind: ZoneKind::Open { talk_radius: defaults::TALK_RADIUS },
    }
}

/// Reads a string field and maps it through `parse`, listing the accepted names on failure.
fn read_name<T>(
    reader: &mut ObjectReader<'_>,
    key: &'static str,
    accepted: &[&str],
    parse: impl Fn(&str) -> Option<T>,
    problems: &mut Problems,
) -> Option<T> {
    let text = reader.required::<String>(key, problems)?;
    let parsed = parse(&text);
    if parsed.is_none() {
        problems.error(
            reader.field_path(key),
            format!("unknown {key} \"{text}\"; expected one of: {}", accepted.join(", ")),
        );
    }
    parsed
}

impl FromJson for ContentId {
    const EXPECTED: &'static str = "a content ID (`sha256-` and 64 lowercase hex digits)";

    fn from_json(value: &Value, path: &str, problems: &mut Problems) -> Option<ContentId> {
        let Some(text) = value.as_str() else {
            problems.error(path, format!("expected {}, found {}", Self::EXPECTED, describe(value)));
            return None;
        };
        match text.parse() {
            Ok(id) => Some(id),
            Err(why) => {
                problems.error(path, format!("malformed asset ID \"{text}\": {why}"));
                None
            }
        }
    }
}

impl FromJson for Grid {
    const EXPECTED: &'static str = "an object";

    fn from_json(value: &Value, path: &str, problems: &mut Problems) -> Option<Grid> {
        let mut r = ObjectReader::open(value, path, problems)?;
        let orientation = read_name(
            &mut r,
            "orientation",
            &["isometric", "orthogonal"],
            |s| match s {
                "isometric" => Some(Orientation::Isometric),
                "orthogonal" => Some(Orientation::Orthogonal),
                _ => None,
            },
            problems,
        );
        let width = r.required("width", problems);
        let height = r.required("height", problems);
        let tile_width = r.required("tile_width", problems);
        let tile_height = r.required::<u32>("tile_height", problems);
        let levels = r.optional("levels", defaults::LEVELS, problems);
        let level_height = r.optional("level_height", tile_height.unwrap_or(0) / 2, problems);
        r.finish(problems);
        Some(Grid {
            orientation: orientation?,
            width: width?,
            height: height?,
            tile_width: tile_width?,
            tile_height: tile_height?,
            levels: levels?,
            level_height: level_height?,
        })
    }
}

impl FromJson for Movement {
    const EXPECTED: &'static str = "an object";

    fn from_json(value: &Value, path: &str, problems: &mut Problems) -> Option<Movement> {
        let mut r = ObjectReader::open(value, path, problems)?;
        let max_speed = r.optional("max_speed", defaults::MAX_SPEED, problems);
        let slack = r.optional("slack", defaults::SLACK, problems);
        r.finish(problems);
        Some(Movement { max_speed: max_speed?, slack: slack? })
    }
}

impl FromJson for Tileset {
    const EXPECTED: &'static str = "an object";

    fn from_json(value: &Value, path: &str, problems: &mut Problems) -> Option<Tileset> {
        let mut r = ObjectReader::open(value, path, problems)?;
        let name = r.required("name", problems);
        let image = r.required("image", problems);
        let image_width = r.required("image_width", problems);
        let image_height = r.required("image_height", problems);
        let tile_width = r.required("tile_width", problems);
        let tile_height = r.required("tile_height", problems);
        let columns = r.required("columns", problems);
        let tile_count = r.required("tile_count", problems);
        let first_gid = r.required("first_gid", problems);
        r.finish(problems);
        Some(Tileset {
            name: name?,
            image: image?,
            image_width: image_width?,
            image_height: image_height?,
            tile_width: tile_width?,
            tile_height: tile_height?,
            columns: columns?,
            tile_count: tile_count?,
            first_gid: first_gid?,
        })
    }
}

impl FromJson for Layer {
    const EXPECTED: &'static str = "an object";

    fn from_json(value: &Value, path: &str, problems: &mut Problems) -> Option<Layer> {
        let mut r = ObjectReader::open(value, path, problems)?;
        let name = r.required("name", problems);
        let depth = match r.raw("depth") {
            None => Some(LayerDepth::Below),
            Some(_) => read_name(
                &mut r,
                "depth",
                &["below", "sorted", "above"],
                |s| match s {
                    "below" => Some(LayerDepth::Below),
                    "sorted" => Some(LayerDepth::Sorted),
                    "above" => Some(LayerDepth::Above),
                    _ => None,
                },
                problems,
            ),
        };
        let opacity = r.optional("opacity", 1.0, problems);
        let visible = r.optional("visible", true, problems);
        let tiles = r.required("tiles", problems);
        r.finish(problems);
        Some(Layer { name: name?, depth: depth?, opacity: opacity?, visible: visible?, tiles: tiles? })
    }
}

impl FromJson for Collision {
    const EXPECTED: &'static str = "an object";

    fn from_json(value: &Value, path: &str, problems: &mut Problems) -> Option<Collision> {
        let mut r = ObjectReader::open(value, path, problems)?;
        let rows = r.optional("rows", Vec::new(), problems);
        let heights = r.optional("heights", Vec::new(), problems);
        let walls = r.optional("walls", Vec::new(), problems);
        r.finish(problems);
        Some(Collision { rows: rows?, heights: heights?, walls: walls? })
    }
}

impl FromJson for Wall {
    const EXPECTED: &'static str = "an object";

    fn from_json(value: &Value, path: &str, problems: &mut Problems) -> Option<Wall> {
        let mut r = ObjectReader::open(value, path, problems)?;
        let from = r.required("from", problems);
        let to = r.required("to", problems);
        r.finish(problems);
        Some(Wall { from: from?, to: to? })
    }
}

impl FromJson for Rect {
    const EXPECTED: &'static str = "a rectangle {\"x\", \"y\", \"w\", \"h\"}";

    fn from_json(value: &Value, path: &str, problems: &mut Problems) -> Option<Rect> {
        let mut r = ObjectReader::open(value, path, problems)?;
        let x = r.required("x", problems);
        let y = r.required("y", problems);
        let w = r.optional("w", 1, problems);
        let h = r.optional("h", 1, problems);
        r.finish(problems);
        Some(Rect { x: x?, y: y?, w: w?, h: h? })
    }
}

impl FromJson for Facing {
    const EXPECTED: &'static str =
        "a direction (north, north_east, east, south_east, south, south_west, west, north_west)";

    fn from_json(value: &Value, path: &str, problems: &mut Problems) -> Option<Facing> {
        let parsed = value.as_str().and_then(Facing::parse);
        if parsed.is_none() {
            problems.error(path, format!("expected {}, found {}", Self::EXPECTED, describe(value)));
        }
        parsed
    }
}

impl FromJson for Spawn {
    const EXPECTED: &'static str = "an object";

    fn from_json(value: &Value, path: &str, problems: &mut Problems) -> Option<Spawn> {
        let mut r = ObjectReader::open(value, path, problems)?;
        let id = r.required("id", problems);
        let x = r.required("x", problems);
        let y = r.required("y", problems);
        let facing = r.optional("facing", Facing::South, problems);
        r.finish(problems);
        Some(Spawn { id: id?, x: x?, y: y?, facing: facing? })
    }
}

/// Reads `type` and the options that go with it from a zone's object.
fn read_zone_kind(r: &mut ObjectReader<'_>, problems: &mut Problems) -> Option<ZoneKind> {
    let type_name = r.required::<String>("type", problems)?;
    match type_name.as_str() {
        "open" => {
            let talk_radius = r.optional("talk_radius", defaults::TALK_RADIUS, problems);
            Some(ZoneKind::Open { talk_radius: talk_radius? })
        }
        "meeting_room" => {
            let sfu_threshold = r.optional("sfu_threshold", defaults::SFU_THRESHOLD, problems);
            let capacity = r.maybe("capacity", problems);
            Some(ZoneKind::MeetingRoom { sfu_threshold: sfu_threshold?, capacity: capacity? })
        }
        "stage" => {
            let podium = r.required("podium", problems);
            let max_speakers = r.optional("max_speakers", defaults::MAX_SPEAKERS, problems);
            Some(ZoneKind::Stage { podium: podium?, max_speakers: max_speakers? })
        }
        "silent" => Some(ZoneKind::Silent),
        "private" => {
            let capacity = r.required("capacity", problems);
            let lockable = r.optional("lockable", true, problems);
            Some(ZoneKind::Private { capacity: capacity?, lockable: lockable? })
        }
        other => {
            problems.error(
                r.field_path("type"),
                format!("unknown ZoneType \"{other}\"; expected one of: {}", ZONE_TYPES.join(", ")),
            );
            None
        }
    }
}

impl FromJson for DefaultZone {
    const EXPECTED: &'static str = "an object";

    fn from_json(value: &Value, path: &str, problems: &mut Problems) -> Option<DefaultZone> {
        let mut r = ObjectReader::open(value, path, problems)?;
        let id = r.optional("id", defaults::DEFAULT_ZONE_ID.to_owned(), problems);
        let name = r.optional("name", defaults::DEFAULT_ZONE_NAME.to_owned(), problems);
        let kind = read_zone_kind(&mut r, problems);
        r.finish(problems);
        Some(DefaultZone { id: id?, name: name?, kind: kind? })
    }
}

impl FromJson for Zone {
    const EXPECTED: &'static str = "an object";

    fn from_json(value: &Value, path: &str, problems: &mut Problems) -> Option<Zone> {
        let mut r = ObjectReader::open(value, path, problems)?;
        let id = r.required("id", problems);
        let name = r.required("name", problems);
        let kind = read_zone_kind(&mut r, problems);
        let area = r.required("area", problems);
        let entry_via = r.optional("entry_via", Vec::new(), problems);
        r.finish(problems);
        Some(Zone { id: id?, name: name?, kind: kind?, area: area?, entry_via: entry_via? })
    }
}

impl FromJson for ExclusiveObject {
    const EXPECTED: &'static str = "an object";

    fn from_json(value: &Value, path: &str, problems: &mut Problems) -> Option<ExclusiveObject> {
        let mut r = ObjectReader::open(value, path, problems)?;
        let id = r.required("id", problems);
        let kind = read_name(&mut r, "kind", &["door", "seat", "passage"], ObjectKind::parse, problems);
        let area = r.required("area", problems);
        let capacity = r.optional("capacity", defaults::OBJECT_CAPACITY, problems);
        let facing = r.maybe("facing", problems);
        let requires = r.optional("requires", Vec::new(), problems);
        r.finish(problems);
        Some(ExclusiveObject {
            id: id?,
            kind: kind?,
            area: area?,
            capacity: capacity?,
            facing: facing?,
            requires: requires?,
        })
    }
}

impl FromJson for Exit {
    const EXPECTED: &'static str = "an object";

    fn from_json(value: &Value, path: &str, problems: &mut Problems) -> Option<Exit> {
        let mut r = ObjectReader::open(value, path, problems)?;
        let id = r.required("id", problems);
        let area = r.required("area", problems);
        let world = r.required("world", problems);
        let spawn = r.maybe("spawn", problems);
        r.finish(problems);
        Some(Exit { id: id?, area: area?, world: world?, spawn: spawn? })
    }
}
