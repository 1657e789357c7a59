//! Import of Tiled maps, JSON (`.tmj`) or XML (`.tmx`), into Isoplane worlds.
//!
//! [`import_tiled`] converts a JSON map, [`import_tiled_tmx`] an XML one (read by
//! `tmx.rs` into the JSON map's shape, so everything below applies to both alike; the
//! `.tmx` reader and the `.tsx` one share the small XML reader in `xml.rs`). Either
//! gives a validated [`World`], the tileset images it needs ([`ImportedAsset`]s, named
//! by content ID) and an [`ImportReport`] with one line per thing that was skipped,
//! approximated or changed, each naming the layer or object so the author can act on it.
//! The importer does no I/O: files the map references (external tilesets, tileset
//! images) come from the caller's `read_file`, asked for by path relative to the map's
//! folder.
//!
//! This is the reference for what a map becomes.
//!
//! # Map
//! - `orientation` `orthogonal` or `isometric` → the world's grid (same size and tile
//!   size; one height level, level height = tile height / 2). `staggered` and
//!   `hexagonal` maps are refused ([`ImportError::Unsupported`]).
//! - Infinite maps: the world is the bounding box of every non-empty tile of every tile
//!   layer, moved so its top-left tile is (0, 0); objects move with it and whatever lies
//!   outside is cut (reported). An infinite map without tile chunks is refused.
//! - Grids larger than [`crate::limits::MAX_GRID_SIDE`] are refused by world validation
//!   ([`ImportError::Invalid`]).
//! - The world's name: [`ImportOptions::name`], else the map property `name`, else
//!   `mapName` (WorkAdventure), else "Imported map". Other map properties are reported.
//!
//! # Tilesets
//! - Embedded (in a `.tmx`, read like a `.tsx`), or external by `source`: `.tsj`/`.json`
//!   (JSON) and `.tsx` (Tiled's XML; the image, tile size and count, columns, margin,
//!   spacing, tile offset and tile properties are read).
//! - The tileset image is read from its path relative to the tileset's file (the map's
//!   folder for embedded tilesets); its bytes become an asset with ID
//!   `ContentId::of_bytes`, listed once however many tilesets share it.
//! - A tileset is dropped (reported; its tiles become empty in every layer) when its
//!   image or external file is missing, when it is a collection of separate images, or
//!   when its numbers do not fit its image. Tiled's `firstgid` is kept as the world's
//!   `first_gid`, so kept GIDs, flip flags included, pass through unchanged.
//! - Kept with a warning: margin and spacing (Isoplane packs tiles edge to edge, so such
//!   tiles are drawn misaligned), tile offsets, animations (drawn still) and per-tile
//!   collision shapes (ignored; use the `collides` property).
//! - Tileset properties and tile properties other than `collides` are reported;
//!   `mapCopyright`/`tilesetCopyright` are repeated in the report so the attribution
//!   can travel with the world.
//!
//! # Tile layers
//! Group layers are flattened: names become "group/layer", opacities multiply,
//! visibility is the AND of the group's and the layer's, and a group's `depth` property
//! applies to the layers inside. Data may be a JSON array or base64, uncompressed, zlib
//! or gzip (in a `.tmx` also CSV or `<tile>` elements); zstd layers are skipped
//! (reported). Image layers are skipped (reported). Layer pixel offsets are ignored
//! (reported). A world draws at most [`crate::limits::MAX_LAYERS`] layers; later ones
//! are skipped (reported).
//!
//! - A layer named `collisions` or `collision` (any case) is not drawn: every non-empty
//!   tile of it is blocked.
//! - A layer named `start` (any case) is not drawn: its non-empty tiles make one spawn
//!   point `start`, the default one, at the free start tile nearest their centre. A
//!   layer with the WorkAdventure property `startLayer` = true likewise makes a spawn
//!   point named after the layer.
//! - Every other tile layer is drawn. Its depth is its `depth` property (`below`,
//!   `sorted`, `above`, inherited from groups), else a word of its name starting with
//!   one of those, else `above` when it comes after WorkAdventure's object layer
//!   `floorLayer`, else `below`.
//! - Collision: a tile is blocked when a collision layer has a tile there, when any tile
//!   layer has a tile there whose tileset gives it the property `collides` = true (or
//!   "true"), or when any tile layer with the layer property `collides` = true has a
//!   tile there. Hidden layers count too.
//! - A drawn tile layer with other properties (or a class) is also an area made of its
//!   non-empty tiles, read like an object below: WorkAdventure's older maps mark
//!   meeting rooms and exits this way.
//!
//! # Objects
//! Every object layer is read, hidden or not, in order (`floorLayer` is an ordinary
//! object layer that also splits tile layers into below/above). The layer `configuration` (WorkAdventure
//! variables) is skipped (reported).
//!
//! An object covers the grid tiles whose centres lie inside it (an object smaller than
//! a tile covers the tile under its centre; a point covers the tile it is on; ellipses
//! and polygons are tested exactly). Coordinates: orthogonal maps divide x by the tile
//! width and y by the tile height; isometric maps store objects in a space where one
//! tile is `tileheight` pixels along both axes, so both divide by the tile height.
//! Skipped (reported): rotated objects, tile objects (Isoplane has no free sprites),
//! text, polylines, objects from templates.
//!
//! The class is read from `class` (Tiled 1.9+) or `type`. Isoplane classes
//! ([`ISOPLANE_CLASSES`]; `tools/tiled/isoplane.tiled-project` offers them in Tiled's UI,
//! and docs/maps.md is the map maker's guide):
//!
//! | class | becomes | properties |
//! |---|---|---|
//! | `zone` | a zone | `zoneType` (`open` (default), `meeting_room`, `stage`, `silent`, `private`), `talk_radius`, `sfu_threshold`, `capacity` (0 or absent: none for meeting rooms, 8 for private zones), `max_speakers`, `lockable` (private zones; default true), `entry_via` (comma-separated names of doors or passages), `recording`, `e2ee` (booleans, default false) |
//! | `podium` | the podium of the `stage` zone holding (most of) its tiles; a stage without one becomes a `meeting_room` | |
//! | `door`, `seat` (or `chair`), `passage` | an exclusive object | `capacity` (default 1), `facing` (seats; `any` or absent: none), `requires` (comma-separated object names) |
//! | `exit` | an exit | `world` (required), `spawn` |
//! | `website` | a website named after the object | `url` (a full `http(s)://` URL), `trigger` (`enter` (default) or `action`) |
//! | `spawn`, `start` | a spawn point named after the object | `facing` |
//!
//! Shorthands: an area whose class is a ZoneType name (`open`, `meeting_room`, `stage`,
//! `silent`, `private`) is a `zone` of that type (reported; a `zoneType` property that
//! says otherwise is ignored, reported).
//!
//! A private zone without `capacity` gets capacity 8 (reported). Numbers out of range are
//! clamped (reported). Objects are referenced by their Tiled name (or their Isoplane ID).
//!
//! WorkAdventure areas (any class, usually `area` or none):
//! - `jitsiRoom`, `bbbMeeting` or `livekitRoom` (non-empty text or true) → a
//!   `meeting_room` zone named by the property's text, else by the object.
//! - `silent` = true → a `silent` zone (unless the area already is a meeting room).
//! - `exitUrl` (or `exitSceneUrl`) → an exit to the world named by the target map's
//!   file name ("../Floor1/floor1.tmj#hall" → world `floor1`, spawn point `hall`).
//! - `start` = true, or a name → a spawn point named by the text, else by the object.
//! - `openWebsite` (a full `http(s)://` URL) → a website named by the object; with
//!   `openWebsiteTrigger` `onaction` or `onicon` it opens when asked, else on entering.
//!   Relative URLs are skipped (reported); the page's other options are reported.
//! - Reported as unsupported: `focusable`/`zoomMargin`, `openTab`,
//!   `playAudio*`, meeting options (`jitsiTrigger`, `jitsiConfig`, …), megaphones, and
//!   any other property.
//!
//! # Rules applied so the world is valid
//! - IDs are slugs of Tiled names (lowercase ASCII letters, digits, `.`; runs of spaces,
//!   `-` and `_` become `-`), else `<kind>-<Tiled object id>`, made unique per namespace
//!   with `-2`, `-3`…; the default zone (`open`) keeps the ID `default`.
//! - Zones do not overlap and exclusive objects do not share tiles: the first object in
//!   layer order keeps a contested tile; later ones lose it (reported) and are dropped
//!   when nothing is left.
//! - Exclusive objects stand on walkable tiles: blocked tiles under them are made
//!   walkable (reported), since a chair tile usually carries `collides`.
//! - `entry_via` and `requires` names that do not resolve (or name a seat, or a door
//!   away from the zone) are dropped (reported), and so is the requirement that closes a
//!   loop of requirements (a needs b, b needs a), since nobody could take either.
//! - Spawn points stand on a free tile: the one of their area nearest its centre that is
//!   walkable and not an exclusive object; if none, the spawn point is dropped. Spawn
//!   points that cannot be walked to from the default one are dropped. With no spawn
//!   point at all, `start` is placed on the free tile nearest the map's centre.

mod assemble;
mod convert;
mod layers;
mod names;
mod objects;
mod read;
mod shapes;
mod tilesets;
mod tmx;
mod tsx;
mod xml;

use std::fmt;

use serde_json::Value;

use crate::content_id::ContentId;
use crate::limits::MAX_GRID_SIDE;
use crate::model::default_zone;
use crate::model::{Collision, FORMAT_NAME, FORMAT_VERSION, Facing, Grid, Movement, Spawn, WorldFile};
use crate::problem::WorldErrors;
use crate::world::World;
use read::{Notes, Properties};

pub use objects::ISOPLANE_CLASSES;

/// Choices the caller makes about the import.
#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    /// The world's name; by default the map's `name` property, or "Imported map".
    pub name: Option<String>,
}

/// A file the world needs, to be stored under its content ID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportedAsset {
    pub id: ContentId,
    /// The path it was read from, relative to the map's folder.
    pub source: String,
    pub bytes: Vec<u8>,
}

/// What the import skipped, approximated or changed, one actionable line each, ending
/// with a summary.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportReport {
    pub notes: Vec<String>,
}

impl fmt::Display for ImportReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for note in &self.notes {
            writeln!(f, "- {note}")?;
        }
        Ok(())
    }
}

/// A converted map.
#[derive(Debug, Clone)]
pub struct Imported {
    pub world: World,
    /// Tileset images, each once.
    pub assets: Vec<ImportedAsset>,
    pub report: ImportReport,
}

/// Why a map could not be imported.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ImportError {
    #[error("the map is not valid JSON: {0}")]
    NotJson(String),
    /// A `.tmx` map whose XML cannot be read.
    #[error("the map is not readable Tiled XML: {0}")]
    NotXml(String),
    #[error("this is not a Tiled map: {0}")]
    NotAMap(String),
    #[error("this map cannot be imported: {0}")]
    Unsupported(String),
    /// The converted world breaks a rule of the world format; the report says what the
    /// importer did on the way.
    #[error("{errors}\nwhile importing:\n{report}")]
    Invalid { errors: WorldErrors, report: ImportReport },
}

/// Converts a Tiled JSON map (`.tmj`) into a world.
///
/// `read_file` returns the bytes of a file the map references, by its path relative to
/// the map's folder (as written in the map, joined with the folder of the external
/// tileset that references it), or `None` when there is no such file.
pub fn import_tiled(
    map_json: &str,
    options: &ImportOptions,
    read_file: &dyn Fn(&str) -> Option<Vec<u8>>,
) -> Result<Imported, ImportError> {
    let map: Value = serde_json::from_str(map_json).map_err(|e| ImportError::NotJson(e.to_string()))?;
    import_map(&map, options, read_file)
}

/// Converts a Tiled XML map (`.tmx`) into a world: the same import as
/// [`import_tiled`], from the map read into the JSON map's shape.
pub fn import_tiled_tmx(
    map_xml: &str,
    options: &ImportOptions,
    read_file: &dyn Fn(&str) -> Option<Vec<u8>>,
) -> Result<Imported, ImportError> {
    let map = tmx::map_from_tmx(map_xml).map_err(ImportError::NotXml)?;
    import_map(&map, options, read_file)
}

fn import_map(
    map: &Value,
    options: &ImportOptions,
    read_file: &dyn Fn(&str) -> Option<Vec<u8>>,
) -> Result<Imported, ImportError> {
    let header = convert::Header::read(map)?;
    let mut notes = Notes::default();
    let name = world_name(map, options, &mut notes);
    let tilesets = tilesets::load(map, read_file, &mut notes);
    let layers = layers::flatten(map, (header.width, header.height), &mut notes);
    let extent = convert::extent(&header, &layers, &mut notes)?;
    let side = |n: i64| u32::try_from(n).unwrap_or(u32::MAX);
    let grid = Grid {
        orientation: header.orientation,
        width: side(extent.width),
        height: side(extent.height),
        tile_width: header.tile_width,
        tile_height: header.tile_height,
        levels: 1,
        level_height: header.tile_height / 2,
    };
    if !(1..=MAX_GRID_SIDE).contains(&grid.width) || !(1..=MAX_GRID_SIDE).contains(&grid.height) {
        return Err(refuse_grid(grid, name, notes));
    }
    let converted = convert::convert(&header, &layers, extent, &tilesets, &mut notes);
    let placed = assemble::assemble(
        (grid.width, grid.height),
        converted.blocked,
        &converted.sources,
        &converted.meanings,
        &mut notes,
    );
    notes.add(format!(
        "imported {} ({} drawn), {}, {}, {}, {}, {}",
        read::count(converted.tile_layers, "tile layer"),
        converted.layers.len(),
        read::count(placed.zones.len(), "zone"),
        read::count(placed.objects.len(), "exclusive object"),
        read::count(placed.exits.len(), "exit"),
        read::count(placed.spawns.len(), "spawn point"),
        read::count(placed.websites.len(), "website")
    ));
    let origins = placed.origins;
    let file = WorldFile {
        tilesets: tilesets.kept(),
        layers: converted.layers,
        collision: Collision {
            rows: convert::collision_rows(&placed.blocked, grid.width),
            heights: Vec::new(),
            walls: Vec::new(),
        },
        spawns: placed.spawns,
        zones: placed.zones,
        objects: placed.objects,
        exits: placed.exits,
        websites: placed.websites,
        ..skeleton(name, grid)
    };
    match World::from_file(file) {
        Ok(world) => {
            notes.lines.extend(world.warnings().iter().map(|w| format!("world check: {w}")));
            Ok(Imported { world, assets: tilesets.assets, report: ImportReport { notes: notes.lines } })
        }
        Err(errors) => Err(ImportError::Invalid {
            errors: placed_in_map(errors, &origins),
            report: ImportReport { notes: notes.lines },
        }),
    }
}

/// Each world error about a zone, object or exit also names where it is in the map.
fn placed_in_map(mut errors: WorldErrors, origins: &assemble::Origins) -> WorldErrors {
    for problem in &mut errors.errors {
        if let Some(origin) = origins.of_path(&problem.path) {
            problem.message = format!("{} (in Tiled: {origin})", problem.message);
        }
    }
    errors
}

/// The world name, and a report line for each map property the importer does not use.
fn world_name(map: &Value, options: &ImportOptions, notes: &mut Notes) -> String {
    let properties = Properties::of(map);
    for name in properties.names() {
        match name {
            "name" | "mapName" => {}
            "mapCopyright" | "tilesetCopyright" => notes.add(format!(
                "map property {name} is not carried into the world; keep this attribution with the world: {}",
                properties.text(name).unwrap_or_default()
            )),
            "script" => notes.add("map property script ignored: Isoplane does not run map scripts"),
            other => {
                notes.add(format!("map property {} ignored: not a property Isoplane understands", read::quoted(other)))
            }
        }
    }
    let chosen = options.name.clone().or_else(|| properties.text("name")).or_else(|| properties.text("mapName"));
    let name = chosen.map(|n| n.trim().to_owned()).filter(|n| !n.is_empty()).unwrap_or_else(|| "Imported map".into());
    name.chars().take(crate::limits::MAX_NAME_CHARS).collect()
}

/// A world with nothing in it but its name and grid, and the format's defaults.
fn skeleton(name: String, grid: Grid) -> WorldFile {
    WorldFile {
        format: FORMAT_NAME.into(),
        version: FORMAT_VERSION,
        name,
        grid,
        movement: Movement::default(),
        tilesets: Vec::new(),
        layers: Vec::new(),
        collision: Collision::default(),
        spawns: Vec::new(),
        default_zone: default_zone(),
        zones: Vec::new(),
        objects: Vec::new(),
        exits: Vec::new(),
        websites: Vec::new(),
    }
}

/// The validation error for a grid too large (or empty) to build, found without
/// allocating it: validation checks the grid before it looks at any tile.
fn refuse_grid(grid: Grid, name: String, notes: Notes) -> ImportError {
    let file = WorldFile {
        spawns: vec![Spawn { id: "start".into(), x: 0, y: 0, facing: Facing::South }],
        ..skeleton(name, grid)
    };
    let report = ImportReport { notes: notes.lines };
    match World::from_file(file) {
        Err(errors) => ImportError::Invalid { errors, report },
        Ok(_) => ImportError::Unsupported(format!("a {}×{} grid cannot be imported", grid.width, grid.height)),
    }
}
