//! The map header, the world's extent, and flattened layers → visual layers, collision
//! and the sources (objects and area layers) whose meanings the assembler places.

use serde_json::Value;

use super::ImportError;
use super::layers::{self, Content, Extent, FlatLayer};
use super::names::{depth, depth_in_name};
use super::objects::{LAYER_PROPERTIES, Meaning, Source, interpret, object_source};
use super::read::{self, Notes, Properties, count, quoted};
use super::shapes::{Footprint, ObjectSpace};
use super::tilesets::{Mapped, Tilesets};
use crate::limits::{MAX_LAYERS, MAX_NAME_CHARS};
use crate::model::{Facing, GID_MASK, Layer, LayerDepth, Orientation};

/// What the importer needs from the map's top level.
#[derive(Debug, Clone, Copy)]
pub(super) struct Header {
    pub orientation: Orientation,
    pub width: u32,
    pub height: u32,
    pub tile_width: u32,
    pub tile_height: u32,
    pub infinite: bool,
}

impl Header {
    pub fn read(map: &Value) -> Result<Header, ImportError> {
        let not_a_map = |why: &str| Err(ImportError::NotAMap(why.to_owned()));
        if !map.is_object() {
            return not_a_map("the JSON is not an object");
        }
        match read::text(map, "type") {
            "" | "map" => {}
            "tileset" => return not_a_map("this is a Tiled tileset; import the map (.tmj) that uses it"),
            other => return not_a_map(&format!("its `type` is {}, not \"map\"", quoted(other))),
        }
        let orientation = match read::text(map, "orientation") {
            "orthogonal" => Orientation::Orthogonal,
            "isometric" => Orientation::Isometric,
            "" => return not_a_map("it has no `orientation`; is it a Tiled map?"),
            kind @ ("staggered" | "hexagonal") => {
                return Err(ImportError::Unsupported(format!(
                    "{kind} maps cannot be imported: Isoplane grids are orthogonal or isometric (diamond); redraw the map on an isometric or orthogonal grid"
                )));
            }
            other => return Err(ImportError::Unsupported(format!("the orientation {} is unknown", quoted(other)))),
        };
        let infinite = read::flag(map, "infinite", false);
        let size = |key: &str| read::unsigned(map, key);
        let (Some(tile_width), Some(tile_height)) =
            (size("tilewidth").filter(|n| *n > 0), size("tileheight").filter(|n| *n > 0))
        else {
            return not_a_map("it has no positive `tilewidth` and `tileheight`");
        };
        let (width, height) = match (size("width"), size("height")) {
            (Some(w), Some(h)) => (w, h),
            _ if infinite => (0, 0),
            _ => return not_a_map("it has no valid `width` and `height`"),
        };
        Ok(Header { orientation, width, height, tile_width, tile_height, infinite })
    }
}

/// The part of Tiled's tile space that becomes the world: the whole map, or for an
/// infinite map the box around its tiles.
pub(super) fn extent(header: &Header, layers: &[FlatLayer<'_>], notes: &mut Notes) -> Result<Extent, ImportError> {
    if !header.infinite {
        return Ok(Extent { origin: (0, 0), width: i64::from(header.width), height: i64::from(header.height) });
    }
    let extent = layers::infinite_extent(layers).ok_or_else(|| {
        ImportError::Unsupported("the map is infinite and has no tile chunks, so its size is unknown; draw some tiles or make the map finite".into())
    })?;
    let (x0, y0) = extent.origin;
    let moved = if (x0, y0) == (0, 0) {
        String::new()
    } else {
        format!(", moved so that ({x0}, {y0}) is (0, 0) (objects moved with them)")
    };
    notes.add(format!(
        "the map is infinite: the world is the {}×{} tiles from ({x0}, {y0}) to ({}, {}) that hold its tiles{moved}; whatever lies outside is cut",
        extent.width,
        extent.height,
        x0 + extent.width - 1,
        y0 + extent.height - 1
    ));
    Ok(extent)
}

/// Layers and sources ready for the assembler.
#[derive(Debug, Default)]
pub(super) struct Converted {
    pub layers: Vec<Layer>,
    pub blocked: Vec<bool>,
    pub sources: Vec<Source>,
    pub meanings: Vec<(usize, Meaning)>,
    pub tile_layers: usize,
}

/// What a tile layer is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// `collisions`: every non-empty tile blocks.
    Collision,
    /// `start`, or a WorkAdventure `startLayer`: an entry point, not drawn.
    Entry {
        main: bool,
    },
    Visual,
}

pub(super) fn convert(
    header: &Header,
    layers: &[FlatLayer<'_>],
    extent: Extent,
    tilesets: &Tilesets,
    notes: &mut Notes,
) -> Converted {
    // Extents reaching here passed the grid-size check, so they fit in u32.
    let (width, height) = (extent.width as u32, extent.height as u32);
    let tile_height = f64::from(header.tile_height);
    let unit_x = match header.orientation {
        Orientation::Orthogonal => f64::from(header.tile_width),
        Orientation::Isometric => tile_height,
    };
    let space = ObjectSpace {
        unit_x,
        unit_y: tile_height,
        origin: (extent.origin.0 as f64, extent.origin.1 as f64),
        width,
        height,
    };
    let floor = layers
        .iter()
        .position(|l| matches!(l.content, Content::Objects(_)) && l.name.eq_ignore_ascii_case("floorLayer"));
    let mut out = Converted { blocked: vec![false; width as usize * height as usize], ..Converted::default() };
    for (index, layer) in layers.iter().enumerate() {
        match &layer.content {
            Content::Tiles(chunks) => {
                out.tile_layers += 1;
                let gids = layers::paint(chunks, extent);
                let depth = layer_depth(layer, floor.map(|f| index > f), notes);
                out.tile_layer(layer, &gids, depth, (width, height), tilesets, notes);
            }
            Content::Objects(objects) => out.object_layer(layer, objects, &space, notes),
        }
    }
    out
}

fn role_of(layer: &FlatLayer<'_>) -> Role {
    let name = layer.name.to_ascii_lowercase();
    if name == "collisions" || name == "collision" {
        Role::Collision
    } else if name == "start" {
        Role::Entry { main: true }
    } else if layer.properties.is_true("startLayer") {
        Role::Entry { main: false }
    } else {
        Role::Visual
    }
}

/// The `depth` property, else a depth word in the name, else the side of WorkAdventure's
/// `floorLayer` the layer is on (`above_floor`), else below.
fn layer_depth(layer: &FlatLayer<'_>, above_floor: Option<bool>, notes: &mut Notes) -> LayerDepth {
    if let Some(text) = &layer.depth {
        match depth(text) {
            Some(d) => return d,
            None => {
                notes.add(format!("{}: depth {} is not below, sorted or above; ignored", layer.label(), quoted(text)))
            }
        }
    }
    depth_in_name(&layer.name).unwrap_or(if above_floor == Some(true) { LayerDepth::Above } else { LayerDepth::Below })
}

impl Converted {
    fn tile_layer(
        &mut self,
        layer: &FlatLayer<'_>,
        gids: &[u32],
        depth: LayerDepth,
        size: (u32, u32),
        tilesets: &Tilesets,
        notes: &mut Notes,
    ) {
        let role = role_of(layer);
        let whole_layer_blocks = layer.properties.is_true("collides");
        for (cell, &gid) in gids.iter().enumerate() {
            let filled = gid & GID_MASK != 0;
            if filled && (role == Role::Collision || whole_layer_blocks || tilesets.collides(gid)) {
                self.blocked[cell] = true;
            }
        }
        match role {
            Role::Collision => {}
            Role::Entry { main } => {
                let name = if main { "start".to_owned() } else { layer.name.clone() };
                self.layer_area(
                    layer,
                    gids,
                    size,
                    Some(Meaning::Spawn { name, facing: Facing::South, first: main }),
                    notes,
                );
            }
            Role::Visual => {
                self.visual_layer(layer, gids, depth, tilesets, notes);
                let is_area =
                    !layer.class.is_empty() || layer.properties.names().any(|n| !LAYER_PROPERTIES.contains(&n));
                if is_area {
                    self.layer_area(layer, gids, size, None, notes);
                }
            }
        }
    }

    fn visual_layer(
        &mut self,
        layer: &FlatLayer<'_>,
        gids: &[u32],
        depth: LayerDepth,
        tilesets: &Tilesets,
        notes: &mut Notes,
    ) {
        let label = layer.label();
        if self.layers.len() >= MAX_LAYERS {
            notes.add(format!("{label}: a world draws at most {MAX_LAYERS} layers; skipped (merge layers in Tiled)"));
            return;
        }
        let (mut dropped, mut unknown) = (0usize, 0usize);
        let tiles = gids
            .iter()
            .map(|&gid| match tilesets.map(gid) {
                Mapped::Empty => 0,
                Mapped::Tile(gid) => gid,
                Mapped::Dropped => {
                    dropped += 1;
                    0
                }
                Mapped::Unknown => {
                    unknown += 1;
                    0
                }
            })
            .collect();
        if dropped > 0 {
            notes.add(format!(
                "{label}: {} from tilesets that could not be imported left empty",
                count(dropped, "tile")
            ));
        }
        if unknown > 0 {
            notes.add(format!("{label}: {} with GIDs no tileset owns left empty", count(unknown, "tile")));
        }
        self.layers.push(Layer {
            name: layer.path.chars().take(MAX_NAME_CHARS).collect(),
            depth,
            opacity: layer.opacity,
            visible: layer.visible,
            tiles,
        });
    }

    /// A tile layer's non-empty tiles as an area: an entry point (`meaning`), or the
    /// WorkAdventure areas its properties describe.
    fn layer_area(
        &mut self,
        layer: &FlatLayer<'_>,
        gids: &[u32],
        (width, _): (u32, u32),
        meaning: Option<Meaning>,
        notes: &mut Notes,
    ) {
        let tiles: Vec<(u32, u32)> = gids
            .iter()
            .enumerate()
            .filter(|(_, gid)| **gid & GID_MASK != 0)
            .map(|(cell, _)| ((cell % width as usize) as u32, (cell / width as usize) as u32))
            .collect();
        if tiles.is_empty() {
            notes.add(format!("{}: it has no tiles, so its meaning is lost", layer.label()));
            return;
        }
        let count = tiles.len() as f64;
        let centre = (
            tiles.iter().map(|t| f64::from(t.0) + 0.5).sum::<f64>() / count,
            tiles.iter().map(|t| f64::from(t.1) + 0.5).sum::<f64>() / count,
        );
        let source = Source {
            label: layer.label(),
            name: layer.name.clone(),
            class: layer.class.clone(),
            tiled_id: layer.id,
            footprint: Footprint { tiles, cut: false, centre },
            properties: if meaning.is_some() { Properties::default() } else { layer.properties.clone() },
        };
        let meanings = match meaning {
            Some(meaning) => vec![meaning],
            None => interpret(&source, notes).0,
        };
        self.add_source(source, meanings);
    }

    fn add_source(&mut self, source: Source, meanings: Vec<Meaning>) {
        if meanings.is_empty() {
            return;
        }
        let index = self.sources.len();
        self.sources.push(source);
        self.meanings.extend(meanings.into_iter().map(|m| (index, m)));
    }

    fn object_layer(&mut self, layer: &FlatLayer<'_>, objects: &[Value], space: &ObjectSpace, notes: &mut Notes) {
        let label = layer.label();
        if layer.name.eq_ignore_ascii_case("configuration") {
            let names: Vec<String> = objects.iter().map(|o| quoted(read::text(o, "name"))).collect();
            notes.add(format!(
                "{label}: WorkAdventure variables are not supported; skipped {} ({})",
                count(objects.len(), "object"),
                names.join(", ")
            ));
            return;
        }
        let ignored: Vec<String> = layer.properties.names().map(quoted).collect();
        if !ignored.is_empty() {
            notes.add(format!("{label}: object layer properties {} ignored", ignored.join(", ")));
        }
        let mut without_meaning = Vec::new();
        // Tiled writes only objects here; anything else is not worth a report line.
        for object in objects.iter().filter(|o| o.is_object()) {
            let Some(source) = object_source(object, &label, space, notes) else { continue };
            let (meanings, meaningless) = interpret(&source, notes);
            if meaningless {
                without_meaning.push(format!("{} (#{})", quoted(&source.name), source.tiled_id.unwrap_or(0)));
            }
            self.add_source(source, meanings);
        }
        if !without_meaning.is_empty() {
            notes.add(format!(
                "{label}: skipped {} with no class or properties (or a bare area): {}",
                count(without_meaning.len(), "object"),
                without_meaning.join(", ")
            ));
        }
    }
}

/// The collision rows of the world file.
pub(super) fn collision_rows(blocked: &[bool], width: u32) -> Vec<String> {
    blocked.chunks(width.max(1) as usize).map(|row| row.iter().map(|&b| if b { '#' } else { '.' }).collect()).collect()
}
