//! Tiled's layer tree flattened into draw order, with tile data decoded.
//!
//! Group layers disappear here: their names prefix their children's ("group/layer"),
//! their opacity multiplies and their visibility combines with AND, and a `depth`
//! property on a group is inherited by the layers inside it. Tile data is decoded from
//! a JSON array or from base64 (uncompressed, zlib or gzip) into chunks, one per finite
//! layer or one per chunk of an infinite map, placed on the grid later once the map's
//! extent is known.

use std::io::Read;

use base64::Engine;
use serde_json::Value;

use super::read::{self, Notes, Properties, quoted};
use crate::limits::MAX_GRID_SIDE;

/// A rectangle of decoded GIDs, in Tiled's tile coordinates (negative in infinite maps).
#[derive(Debug)]
pub(super) struct Chunk {
    pub x: i64,
    pub y: i64,
    pub width: u32,
    pub height: u32,
    pub gids: Vec<u32>,
}

#[derive(Debug)]
pub(super) enum Content<'m> {
    Tiles(Vec<Chunk>),
    Objects(&'m [Value]),
}

/// One tile or object layer, after its groups were folded in.
#[derive(Debug)]
pub(super) struct FlatLayer<'m> {
    /// The full name with its groups, "group/layer", for people.
    pub path: String,
    /// The layer's own name, which the special names (`collisions`, `start`…) match.
    pub name: String,
    pub class: String,
    pub id: Option<i64>,
    pub visible: bool,
    pub opacity: f32,
    pub properties: Properties,
    /// The nearest `depth` property, the layer's own or its group's.
    pub depth: Option<String>,
    pub content: Content<'m>,
}

impl FlatLayer<'_> {
    pub fn label(&self) -> String {
        format!("layer {}", quoted(&self.path))
    }
}

/// What a group passes down to the layers inside it.
struct Inherited {
    prefix: String,
    visible: bool,
    opacity: f64,
    depth: Option<String>,
}

/// The map's layers in draw order (bottom first), skipping image layers and the layers
/// whose data cannot be read (each reported).
pub(super) fn flatten<'m>(map: &'m Value, map_size: (u32, u32), notes: &mut Notes) -> Vec<FlatLayer<'m>> {
    let mut out = Vec::new();
    let top = Inherited { prefix: String::new(), visible: true, opacity: 1.0, depth: None };
    walk(read::array(map, "layers"), &top, map_size, notes, &mut out);
    out
}

fn walk<'m>(
    layers: &'m [Value],
    parent: &Inherited,
    map_size: (u32, u32),
    notes: &mut Notes,
    out: &mut Vec<FlatLayer<'m>>,
) {
    for layer in layers {
        let id = read::whole(layer, "id");
        let own_name = match read::text(layer, "name").trim() {
            "" => format!("layer {}", id.unwrap_or(out.len() as i64 + 1)),
            name => name.to_owned(),
        };
        let path = format!("{}{own_name}", parent.prefix);
        let properties = Properties::of(layer);
        let depth = properties.text("depth").or_else(|| parent.depth.clone());
        let visible = parent.visible && read::flag(layer, "visible", true);
        let opacity = parent.opacity * read::number(layer, "opacity").unwrap_or(1.0).clamp(0.0, 1.0);
        let label = format!("layer {}", quoted(&path));
        report_offset(layer, &label, notes);
        let content = match read::text(layer, "type") {
            "group" => {
                let inner = Inherited { prefix: format!("{path}/"), visible, opacity, depth };
                walk(read::array(layer, "layers"), &inner, map_size, notes, out);
                report_group_properties(&properties, &label, notes);
                continue;
            }
            "tilelayer" => match decode_tile_layer(layer, map_size) {
                Ok(chunks) => Content::Tiles(chunks),
                Err(why) => {
                    notes.add(format!("{label}: skipped, {why}"));
                    continue;
                }
            },
            "objectgroup" => Content::Objects(read::array(layer, "objects")),
            "imagelayer" => {
                notes.add(format!("{label}: image layers are not supported (Isoplane draws tiles only); skipped"));
                continue;
            }
            other => {
                notes.add(format!("{label}: unknown layer type {}; skipped", quoted(other)));
                continue;
            }
        };
        out.push(FlatLayer {
            path,
            name: own_name,
            // A layer's `type` is its kind, so only `class` is its class.
            class: read::text(layer, "class").to_owned(),
            id,
            visible,
            // Opacity is within 0..=1 by the clamp above, so f32 holds it.
            opacity: opacity as f32,
            properties,
            depth,
            content,
        });
    }
}

fn report_offset(layer: &Value, label: &str, notes: &mut Notes) {
    let dx = read::number(layer, "offsetx").unwrap_or(0.0);
    let dy = read::number(layer, "offsety").unwrap_or(0.0);
    if dx != 0.0 || dy != 0.0 {
        notes.add(format!(
            "{label}: its pixel offset ({dx}, {dy}) is ignored, so it is drawn (and its objects placed) on the plain grid"
        ));
    }
}

fn report_group_properties(properties: &Properties, label: &str, notes: &mut Notes) {
    let ignored: Vec<String> = properties.names().filter(|n| *n != "depth").map(quoted).collect();
    if !ignored.is_empty() {
        notes.add(format!(
            "{label} (group): properties {} ignored; only `depth` is inherited by the layers inside a group",
            ignored.join(", ")
        ));
    }
}

/// Tile coordinates beyond this are clamped: far past any grid the world accepts, and
/// far from overflowing when chunk sizes are added.
const COORDINATE_LIMIT: i64 = 1 << 40;

fn coordinate(holder: &Value, key: &str) -> i64 {
    read::whole(holder, key).unwrap_or(0).clamp(-COORDINATE_LIMIT, COORDINATE_LIMIT)
}

/// The chunks of a tile layer: its `chunks` (infinite maps) or its `data`.
fn decode_tile_layer(layer: &Value, map_size: (u32, u32)) -> Result<Vec<Chunk>, String> {
    let encoding = read::text(layer, "encoding");
    let compression = read::text(layer, "compression");
    if let Some(chunks) = layer.get("chunks").and_then(Value::as_array) {
        return chunks
            .iter()
            .map(|chunk| {
                decode_chunk(chunk, coordinate(chunk, "x"), coordinate(chunk, "y"), (0, 0), encoding, compression)
            })
            .collect();
    }
    Ok(vec![decode_chunk(layer, coordinate(layer, "x"), coordinate(layer, "y"), map_size, encoding, compression)?])
}

fn decode_chunk(
    holder: &Value,
    x: i64,
    y: i64,
    default_size: (u32, u32),
    encoding: &str,
    compression: &str,
) -> Result<Chunk, String> {
    let width = read::unsigned(holder, "width").unwrap_or(default_size.0);
    let height = read::unsigned(holder, "height").unwrap_or(default_size.1);
    // A map is at most MAX_GRID_SIDE square; a bigger block of data cannot be imported
    // and would only cost memory.
    if width > MAX_GRID_SIDE || height > MAX_GRID_SIDE {
        return Err(format!("its data is {width}×{height} tiles, more than a world's {MAX_GRID_SIDE}×{MAX_GRID_SIDE}"));
    }
    let cells = width as usize * height as usize;
    let gids = match holder.get("data") {
        Some(Value::Array(items)) => gids_from_array(items)?,
        Some(Value::String(text)) if encoding == "base64" => gids_from_base64(text, compression, cells)?,
        Some(Value::String(_)) => {
            return Err(format!("its data is a string in the unknown encoding {}", quoted(encoding)));
        }
        _ => return Err("it has no `data`".into()),
    };
    if gids.len() != cells {
        return Err(format!("it has {} tiles of data for {width}×{height} = {cells} cells", gids.len()));
    }
    Ok(Chunk { x, y, width, height, gids })
}

fn gids_from_array(items: &[Value]) -> Result<Vec<u32>, String> {
    items
        .iter()
        .map(|item| {
            item.as_u64().and_then(|n| u32::try_from(n).ok()).ok_or_else(|| format!("{item} is not a tile GID"))
        })
        .collect()
}

fn gids_from_base64(text: &str, compression: &str, cells: usize) -> Result<Vec<u32>, String> {
    let cleaned: String = text.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    let raw = base64::engine::general_purpose::STANDARD
        .decode(cleaned)
        .map_err(|e| format!("its base64 data does not decode: {e}"))?;
    let expected = cells * 4;
    let bytes = match compression {
        "" => raw,
        "zlib" => inflate(flate2::read::ZlibDecoder::new(raw.as_slice()), expected)?,
        "gzip" => inflate(flate2::read::GzDecoder::new(raw.as_slice()), expected)?,
        "zstd" => return Err("it is zstd-compressed, which this importer does not read: save the map with zlib, gzip or CSV layer format".into()),
        other => return Err(format!("it uses the unknown compression {}", quoted(other))),
    };
    if bytes.len() != expected {
        return Err(format!("its data holds {} bytes, {cells} cells need {expected}", bytes.len()));
    }
    Ok(bytes.chunks_exact(4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect())
}

/// Decompresses at most one byte more than expected, so a compression bomb costs nothing.
fn inflate(decoder: impl Read, expected: usize) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(expected);
    decoder
        .take(expected as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| format!("its compressed data is corrupt: {e}"))?;
    Ok(out)
}

/// The part of Tiled's tile space the world covers: `origin` is Tiled's tile that
/// becomes tile (0, 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Extent {
    pub origin: (i64, i64),
    pub width: i64,
    pub height: i64,
}

/// The bounding box of every non-empty tile of every tile layer, for infinite maps whose
/// `width`/`height` mean nothing. Falls back to the chunks' own box when all are empty.
pub(super) fn infinite_extent(layers: &[FlatLayer<'_>]) -> Option<Extent> {
    let chunks = || {
        layers.iter().flat_map(|l| match &l.content {
            Content::Tiles(chunks) => chunks.as_slice(),
            Content::Objects(_) => &[],
        })
    };
    let mut tiles = BoundingBox::default();
    let mut blocks = BoundingBox::default();
    for chunk in chunks() {
        if chunk.width == 0 || chunk.height == 0 {
            continue;
        }
        blocks.add(chunk.x, chunk.y);
        blocks.add(chunk.x + i64::from(chunk.width) - 1, chunk.y + i64::from(chunk.height) - 1);
        for (i, &gid) in chunk.gids.iter().enumerate() {
            if gid != 0 {
                let w = chunk.width as usize;
                tiles.add(chunk.x + (i % w) as i64, chunk.y + (i / w) as i64);
            }
        }
    }
    tiles.extent().or_else(|| blocks.extent())
}

#[derive(Default)]
struct BoundingBox {
    /// The smallest and largest (x, y) seen.
    corners: Option<((i64, i64), (i64, i64))>,
}

impl BoundingBox {
    fn add(&mut self, x: i64, y: i64) {
        self.corners = Some(match self.corners {
            None => ((x, y), (x, y)),
            Some(((x0, y0), (x1, y1))) => ((x0.min(x), y0.min(y)), (x1.max(x), y1.max(y))),
        });
    }

    fn extent(&self) -> Option<Extent> {
        let ((x0, y0), (x1, y1)) = self.corners?;
        Some(Extent { origin: (x0, y0), width: x1 - x0 + 1, height: y1 - y0 + 1 })
    }
}

/// A layer's chunks painted onto the world's grid; cells outside the extent are cut.
pub(super) fn paint(chunks: &[Chunk], extent: Extent) -> Vec<u32> {
    let (width, height) = (extent.width as usize, extent.height as usize);
    let mut grid = vec![0; width * height];
    for chunk in chunks {
        let w = chunk.width as usize;
        for (i, &gid) in chunk.gids.iter().enumerate() {
            if gid == 0 {
                continue;
            }
            let x = chunk.x + (i % w) as i64 - extent.origin.0;
            let y = chunk.y + (i / w) as i64 - extent.origin.1;
            if (0..extent.width).contains(&x) && (0..extent.height).contains(&y) {
                grid[y as usize * width + x as usize] = gid;
            }
        }
    }
    grid
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn zlib(bytes: &[u8]) -> Vec<u8> {
        let mut encoder = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        encoder.write_all(bytes).unwrap();
        encoder.finish().unwrap()
    }

    #[test]
    fn base64_zlib_data_decodes_with_flip_flags() {
        let gids = [1u32, 0x8000_0002, 0, 3];
        let raw: Vec<u8> = gids.iter().flat_map(|g| g.to_le_bytes()).collect();
        let text = base64::engine::general_purpose::STANDARD.encode(zlib(&raw));
        assert_eq!(gids_from_base64(&text, "zlib", 4).unwrap(), gids);
        assert!(gids_from_base64(&text, "zlib", 2).is_err(), "too much data is refused");
        assert!(gids_from_base64(&text, "zstd", 4).unwrap_err().contains("zstd"));
    }

    #[test]
    fn a_compression_bomb_stops_at_the_expected_size() {
        let text = base64::engine::general_purpose::STANDARD.encode(zlib(&vec![0u8; 10_000_000]));
        let err = gids_from_base64(&text, "zlib", 16).unwrap_err();
        assert!(err.contains("65 bytes"), "{err}");
    }

    #[test]
    fn bounding_box_covers_every_point() {
        let mut b = BoundingBox::default();
        b.add(-3, 5);
        b.add(4, -2);
        b.add(0, 0);
        assert_eq!(b.extent(), Some(Extent { origin: (-3, -2), width: 8, height: 8 }));
        let mut single = BoundingBox::default();
        single.add(7, 9);
        assert_eq!(single.extent(), Some(Extent { origin: (7, 9), width: 1, height: 1 }));
    }
}
