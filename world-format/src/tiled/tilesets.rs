//! Tiled tilesets → Isoplane tilesets, their images → assets, and the GID lookups that
//! layers and collision need.
//!
//! A tileset is kept when its single image can be read and its geometry fits; otherwise
//! it is dropped (reported) and its GIDs become empty tiles. Either way its tiles'
//! `collides` properties still count for collision, since they do not need the image.
//! Kept tilesets keep Tiled's `firstgid`, so kept GIDs pass through unchanged.

use std::collections::HashSet;

use serde_json::Value;

use super::read::{self, Notes, Properties, count, quoted};
use super::{ImportedAsset, tsx};
use crate::content_id::ContentId;
use crate::limits::{MAX_NAME_CHARS, MAX_TILE_PIXELS};
use crate::model::{GID_MASK, Tileset};

/// A Tiled tileset as the importer sees it.
#[derive(Debug)]
pub(super) struct SourceTileset {
    pub name: String,
    pub first_gid: u32,
    /// The Isoplane tileset, when its image was found and its geometry is usable.
    pub kept: Option<Tileset>,
    /// Local tile IDs whose `collides` property is true.
    pub collides: HashSet<u32>,
}

/// What became of one GID of a layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Mapped {
    Empty,
    /// The GID, flip flags included, as the world keeps it.
    Tile(u32),
    /// A tile of a dropped tileset: left empty.
    Dropped,
    /// A GID no tileset owns: left empty.
    Unknown,
}

#[derive(Debug, Default)]
pub(super) struct Tilesets {
    /// Sorted by `first_gid`, as Tiled's lookup rule needs.
    pub sets: Vec<SourceTileset>,
    pub assets: Vec<ImportedAsset>,
}

impl Tilesets {
    /// The tileset that owns a GID (flip flags ignored) and the tile's local ID: Tiled's
    /// rule, the tileset with the largest `firstgid` not above the GID.
    fn owner(&self, raw: u32) -> Option<(&SourceTileset, u32)> {
        let gid = raw & GID_MASK;
        if gid == 0 {
            return None;
        }
        let after = self.sets.partition_point(|s| s.first_gid <= gid);
        let set = self.sets.get(after.checked_sub(1)?)?;
        Some((set, gid - set.first_gid))
    }

    pub fn map(&self, raw: u32) -> Mapped {
        if raw & GID_MASK == 0 {
            return Mapped::Empty;
        }
        match self.owner(raw) {
            None => Mapped::Unknown,
            Some((set, local)) => match &set.kept {
                None => Mapped::Dropped,
                Some(kept) if local < kept.tile_count => Mapped::Tile(raw),
                Some(_) => Mapped::Unknown,
            },
        }
    }

    /// Whether the tile carries the `collides` property.
    pub fn collides(&self, raw: u32) -> bool {
        self.owner(raw).is_some_and(|(set, local)| set.collides.contains(&local))
    }

    pub fn kept(&self) -> Vec<Tileset> {
        self.sets.iter().filter_map(|s| s.kept.clone()).collect()
    }

    fn add_asset(&mut self, source: &str, bytes: Vec<u8>) -> ContentId {
        let id = ContentId::of_bytes(&bytes);
        if !self.assets.iter().any(|a| a.id == id) {
            self.assets.push(ImportedAsset { id: id.clone(), source: source.to_owned(), bytes });
        }
        id
    }
}

/// Reads every tileset the map lists.
pub(super) fn load(map: &Value, read_file: &dyn Fn(&str) -> Option<Vec<u8>>, notes: &mut Notes) -> Tilesets {
    let mut tilesets = Tilesets::default();
    for (index, entry) in read::array(map, "tilesets").iter().enumerate() {
        let Some(first_gid) = read::unsigned(entry, "firstgid").filter(|g| *g > 0 && *g <= GID_MASK) else {
            notes.add(format!("tileset #{}: no valid `firstgid`; skipped", index + 1));
            continue;
        };
        let source = read::text(entry, "source");
        let set = if source.is_empty() {
            read_tileset(entry, first_gid, "", "", read_file, notes, &mut tilesets)
        } else {
            match external(source, read_file, notes) {
                Ok(definition) => {
                    let stem = read::file_stem(source);
                    read_tileset(&definition, first_gid, read::folder_of(source), stem, read_file, notes, &mut tilesets)
                }
                Err(why) => {
                    notes.add(format!("tileset {}: {why}; its tiles are left empty", quoted(source)));
                    SourceTileset {
                        name: read::file_stem(source).to_owned(),
                        first_gid,
                        kept: None,
                        collides: HashSet::new(),
                    }
                }
            }
        };
        tilesets.sets.push(set);
    }
    tilesets.sets.sort_by_key(|s| s.first_gid);
    fit_gid_ranges(&mut tilesets.sets, notes);
    unique_names(&mut tilesets.sets);
    tilesets
}

/// An external tileset's definition: `.tsj`/`.json` is JSON, `.tsx` (or any file that
/// starts with `<`) is Tiled's XML.
fn external(source: &str, read_file: &dyn Fn(&str) -> Option<Vec<u8>>, notes: &mut Notes) -> Result<Value, String> {
    let bytes = read_file(source).ok_or("the external tileset file was not found")?;
    let text = std::str::from_utf8(&bytes).map_err(|_| "the external tileset file is not UTF-8 text".to_owned())?;
    let text = text.trim_start_matches('\u{feff}').trim_start();
    let definition = if source.to_ascii_lowercase().ends_with(".tsx") || text.starts_with('<') {
        let set = tsx::tileset_from_tsx(text).map_err(|e| format!("not a readable Tiled XML tileset ({e})"))?;
        notes.add(format!(
            "tileset {}: read from Tiled XML (.tsx); only its image, tile size and count, columns, margin, spacing and tile properties were read",
            quoted(source)
        ));
        set
    } else {
        serde_json::from_str(text).map_err(|e| format!("not valid JSON ({e})"))?
    };
    if definition.is_object() { Ok(definition) } else { Err("the external tileset is not a JSON object".into()) }
}

fn read_tileset(
    definition: &Value,
    first_gid: u32,
    folder: &str,
    fallback_name: &str,
    read_file: &dyn Fn(&str) -> Option<Vec<u8>>,
    notes: &mut Notes,
    tilesets: &mut Tilesets,
) -> SourceTileset {
    let name = match read::text(definition, "name").trim() {
        "" if fallback_name.is_empty() => format!("tileset {first_gid}"),
        "" => fallback_name.to_owned(),
        name => name.to_owned(),
    };
    let label = format!("tileset {}", quoted(&name));
    let collides = collides_tiles(definition);
    report_properties(definition, &label, notes);
    report_tile_extras(definition, &label, notes);
    let kept = image_tileset(definition, &name, first_gid, folder, &label, read_file, notes, tilesets);
    SourceTileset { name, first_gid, kept, collides }
}

/// The local IDs of tiles whose `collides` property is true.
fn collides_tiles(definition: &Value) -> HashSet<u32> {
    read::array(definition, "tiles")
        .iter()
        .filter(|tile| Properties::of(tile).is_true("collides"))
        .filter_map(|tile| read::unsigned(tile, "id"))
        .collect()
}

/// Tileset properties, and tile properties other than `collides`, mean nothing to
/// Isoplane; a copyright must travel with the world by other means.
fn report_properties(definition: &Value, label: &str, notes: &mut Notes) {
    let properties = Properties::of(definition);
    for name in properties.names() {
        if name == "tilesetCopyright" {
            let text = properties.text(name).unwrap_or_default();
            notes.add(format!(
                "{label}: tilesetCopyright is not carried into the world; keep this attribution with the world: {text}"
            ));
        } else {
            notes.add(format!("{label}: tileset property {} ignored", quoted(name)));
        }
    }
    let mut tile_properties: Vec<String> = Vec::new();
    for tile in read::array(definition, "tiles") {
        for name in Properties::of(tile).names().filter(|n| *n != "collides") {
            let name = quoted(name);
            if !tile_properties.contains(&name) {
                tile_properties.push(name);
            }
        }
    }
    if !tile_properties.is_empty() {
        notes.add(format!("{label}: tile properties {} ignored; only `collides` is used", tile_properties.join(", ")));
    }
}

fn report_tile_extras(definition: &Value, label: &str, notes: &mut Notes) {
    let tiles = read::array(definition, "tiles");
    let shaped = tiles
        .iter()
        .filter(|t| !read::array(t.get("objectgroup").unwrap_or(&Value::Null), "objects").is_empty())
        .count();
    if shaped > 0 {
        notes.add(format!(
            "{label}: collision shapes (Tiled's collision editor) on {} are ignored; give tiles that block the boolean property `collides`",
            count(shaped, "tile")
        ));
    }
    let animated = tiles
        .iter()
        .filter(|t| t.get("animation").is_some_and(|a| a.as_array().is_some_and(|a| !a.is_empty())))
        .count();
    if animated > 0 {
        notes
            .add(format!("{label}: {} drawn still (Isoplane has no tile animation)", count(animated, "animated tile")));
    }
    let offset = definition.get("tileoffset");
    let (dx, dy) =
        offset.map_or((0.0, 0.0), |o| (read::number(o, "x").unwrap_or(0.0), read::number(o, "y").unwrap_or(0.0)));
    if dx != 0.0 || dy != 0.0 {
        notes.add(format!(
            "{label}: its tile offset ({dx}, {dy}) is ignored, so its tiles are drawn at the plain grid position"
        ));
    }
}

/// The Isoplane tileset for a single-image Tiled tileset, with its image read and
/// added to the assets; `None` (reported) when that cannot be done.
#[allow(clippy::too_many_arguments)] // one call site; a struct would only rename them
fn image_tileset(
    definition: &Value,
    name: &str,
    first_gid: u32,
    folder: &str,
    label: &str,
    read_file: &dyn Fn(&str) -> Option<Vec<u8>>,
    notes: &mut Notes,
    tilesets: &mut Tilesets,
) -> Option<Tileset> {
    let image = read::text(definition, "image");
    if image.is_empty() {
        let collection = read::array(definition, "tiles").iter().any(|t| !read::text(t, "image").is_empty());
        notes.add(if collection {
            format!("{label}: a collection of separate images is not supported (Isoplane tilesets are one image); its tiles are left empty — combine the images into one tileset image")
        } else {
            format!("{label}: it has no image; its tiles are left empty")
        });
        return None;
    }
    let geometry = match Geometry::read(definition) {
        Ok(geometry) => geometry,
        Err(why) => {
            notes.add(format!("{label}: {why}; its tiles are left empty"));
            return None;
        }
    };
    let path = read::join_path(folder, image);
    let Some(bytes) = read_file(&path) else {
        notes.add(format!("{label}: its image {} was not found; its tiles are left empty", quoted(&path)));
        return None;
    };
    if geometry.margin != 0 || geometry.spacing != 0 {
        notes.add(format!(
            "{label}: margin {} and spacing {} pixels are not supported (Isoplane reads tiles packed edge to edge), so its tiles will be drawn misaligned; re-export the image without margin and spacing",
            geometry.margin, geometry.spacing
        ));
    }
    let id = tilesets.add_asset(&path, bytes);
    Some(Tileset {
        name: name.to_owned(),
        image: id,
        image_width: geometry.image_width,
        image_height: geometry.image_height,
        tile_width: geometry.tile_width,
        tile_height: geometry.tile_height,
        columns: geometry.columns,
        tile_count: geometry.tile_count,
        first_gid,
    })
}

struct Geometry {
    image_width: u32,
    image_height: u32,
    tile_width: u32,
    tile_height: u32,
    columns: u32,
    tile_count: u32,
    margin: u32,
    spacing: u32,
}

impl Geometry {
    /// The tileset's numbers, refused when the world would refuse them.
    fn read(definition: &Value) -> Result<Geometry, String> {
        let field = |key: &str| read::unsigned(definition, key);
        let (image_width, image_height) = (field("imagewidth").unwrap_or(0), field("imageheight").unwrap_or(0));
        let (tile_width, tile_height) = (field("tilewidth").unwrap_or(0), field("tileheight").unwrap_or(0));
        let (margin, spacing) = (field("margin").unwrap_or(0), field("spacing").unwrap_or(0));
        if !(1..=MAX_TILE_PIXELS).contains(&tile_width) || !(1..=MAX_TILE_PIXELS).contains(&tile_height) {
            return Err(format!(
                "tiles of {tile_width}×{tile_height} pixels; a tile picture is 1 to {MAX_TILE_PIXELS} pixels"
            ));
        }
        if image_width == 0 || image_height == 0 {
            return Err("`imagewidth`/`imageheight` are missing".into());
        }
        // How many tiles fit along a side, as Tiled computes it when a field is absent.
        let fit = |side: u32, tile: u32| {
            (u64::from(side).saturating_sub(2 * u64::from(margin)) + u64::from(spacing))
                / (u64::from(tile) + u64::from(spacing))
        };
        let columns = field("columns").filter(|c| *c > 0).unwrap_or(fit(image_width, tile_width) as u32);
        let rows = fit(image_height, tile_height) as u32;
        let tile_count = field("tilecount").filter(|c| *c > 0).unwrap_or(columns.saturating_mul(rows));
        if columns == 0 || tile_count == 0 {
            return Err("it holds no tiles".into());
        }
        let needed_rows = u64::from(tile_count.div_ceil(columns));
        if u64::from(columns) * u64::from(tile_width) > u64::from(image_width)
            || needed_rows * u64::from(tile_height) > u64::from(image_height)
        {
            return Err(format!(
                "{tile_count} tiles in {columns} columns of {tile_width}×{tile_height} pixels do not fit its {image_width}×{image_height} image"
            ));
        }
        Ok(Geometry { image_width, image_height, tile_width, tile_height, columns, tile_count, margin, spacing })
    }
}

/// Trims tile counts that would run into the next tileset's GIDs or the flip flags, which
/// only broken maps have.
fn fit_gid_ranges(sets: &mut [SourceTileset], notes: &mut Notes) {
    let limits: Vec<u64> =
        sets.iter().skip(1).map(|s| u64::from(s.first_gid)).chain([u64::from(GID_MASK) + 1]).collect();
    for (set, limit) in sets.iter_mut().zip(limits) {
        let first = u64::from(set.first_gid);
        if let Some(kept) = &mut set.kept
            && first + u64::from(kept.tile_count) > limit
        {
            // limit > first: first GIDs are distinct after sorting unless two share one.
            let room = limit.saturating_sub(first);
            notes.add(format!(
                "tileset {}: its {} tiles run into the next tileset's GIDs; only the first {room} are used",
                quoted(&set.name),
                kept.tile_count
            ));
            if room == 0 {
                set.kept = None;
            } else {
                kept.tile_count = room as u32;
            }
        }
    }
}

/// Isoplane tileset names are unique and at most MAX_NAME_CHARS long; Tiled's need not be.
fn unique_names(sets: &mut [SourceTileset]) {
    let mut used = HashSet::new();
    for set in sets.iter_mut() {
        let Some(kept) = &mut set.kept else { continue };
        let base: String = kept.name.chars().take(MAX_NAME_CHARS - 8).collect();
        let mut name = base.clone();
        let mut n = 2;
        while !used.insert(name.clone()) {
            name = format!("{base} ({n})");
            n += 1;
        }
        kept.name = name;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn set(first_gid: u32, count: Option<u32>) -> SourceTileset {
        let kept = count.map(|tile_count| Tileset {
            name: "t".into(),
            image: ContentId::of_bytes(b"x"),
            image_width: 32,
            image_height: 32,
            tile_width: 16,
            tile_height: 16,
            columns: 2,
            tile_count,
            first_gid,
        });
        SourceTileset { name: "t".into(), first_gid, kept, collides: HashSet::from([1]) }
    }

    #[test]
    fn gids_map_by_tileds_rule_with_flags_kept() {
        let tilesets = Tilesets { sets: vec![set(1, Some(4)), set(10, None)], assets: Vec::new() };
        assert_eq!(tilesets.map(0), Mapped::Empty);
        assert_eq!(tilesets.map(0x8000_0000), Mapped::Empty);
        assert_eq!(tilesets.map(0x8000_0002), Mapped::Tile(0x8000_0002));
        assert_eq!(tilesets.map(6), Mapped::Unknown, "past the tile count, before the next tileset");
        assert_eq!(tilesets.map(12), Mapped::Dropped);
        assert!(tilesets.collides(2) && tilesets.collides(0x4000_0002) && tilesets.collides(11));
        assert!(!tilesets.collides(1));
    }

    #[test]
    fn geometry_is_derived_when_counts_are_missing() {
        let g = Geometry::read(&json!({"imagewidth": 100, "imageheight": 50, "tilewidth": 32, "tileheight": 16, "margin": 1, "spacing": 2})).unwrap();
        assert_eq!((g.columns, g.tile_count), (2, 4)); // (100 - 2·1 + 2) / (32 + 2) and (50 - 2 + 2) / (16 + 2)
        assert!(Geometry::read(&json!({"imagewidth": 32, "imageheight": 32, "tilewidth": 32, "tileheight": 32, "columns": 2, "tilecount": 2})).is_err());
    }
}
