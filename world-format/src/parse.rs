//! Reading a world file's JSON into a [`WorldFile`].
//!
//! The records read themselves (their fields and defaults are declared once, in
//! [`crate::model`]); this file reads the top level, which refuses a file written by a
//! newer Isoplane before anything else is read (its fields may mean something this
//! version does not know) and keeps the readable items of lists whose other items are
//! not, and the few values that read in their own way: content IDs, facings and a zone's
//! `type` with its options. This layer checks shapes and types (and fills in defaults);
//! the rules that relate fields to each other (sizes, overlaps, references,
//! reachability) are in [`crate::validate`].

use serde_json::Value;

use crate::content_id::ContentId;
use crate::json_reader::{FromJson, FromJsonFields, ObjectReader, PartialList, describe, scalar_from_json};
use crate::model::*;
use crate::problem::Problems;

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
    let movement = top.optional("movement", Movement::default(), problems);
    let (tilesets, all_tilesets) = unread.keep("tilesets", top.list::<Tileset>("tilesets", false, problems));
    let (layers, _) = unread.keep("layers", top.list::<Layer>("layers", false, problems));
    let collision = top.optional("collision", Collision::default(), problems);
    let (spawns, all_spawns) = unread.keep("spawns", top.list::<Spawn>("spawns", true, problems));
    let default_zone_read = top.optional("default_zone", default_zone(), problems);
    let (zones, all_zones) = unread.keep("zones", top.list::<Zone>("zones", false, problems));
    let (objects, all_objects) = unread.keep("objects", top.list::<ExclusiveObject>("objects", false, problems));
    let (exits, _) = unread.keep("exits", top.list::<Exit>("exits", false, problems));
    let (websites, _) = unread.keep("websites", top.list::<Website>("websites", false, problems));
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
        movement: movement.unwrap_or_default(),
        tilesets,
        layers,
        collision: collision.unwrap_or_default(),
        spawns,
        default_zone: default_zone_read.unwrap_or_else(default_zone),
        zones,
        objects,
        exits,
        websites,
    };
    Some((file, unread))
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

scalar_from_json! {
    Facing => "a direction (north, north_east, east, south_east, south, south_west, west, north_west)",
        |v| v.as_str().and_then(Facing::parse);
}

/// A zone's `type` and the options that go with it, which sit in the zone's own object.
impl FromJsonFields for ZoneKind {
    fn from_fields(r: &mut ObjectReader<'_>, problems: &mut Problems) -> Option<ZoneKind> {
        let type_name = r.required::<String>("type", problems)?;
        match type_name.as_str() {
            "open" => {
                let talk_radius = r.optional("talk_radius", defaults::TALK_RADIUS, problems);
                Some(ZoneKind::Open { talk_radius: talk_radius? })
            }
            "meeting_room" => {
                let sfu_threshold = r.optional("sfu_threshold", defaults::SFU_THRESHOLD, problems);
                let capacity = r.optional("capacity", None, problems);
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
}
