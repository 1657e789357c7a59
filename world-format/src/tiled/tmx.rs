//! A reader for Tiled's XML maps (`.tmx`), turned into the same JSON shape as a `.tmj`
//! map so one code path imports both.
//!
//! Read: the `<map>` attributes and `<properties>`, `<tileset>`s (external by `source`,
//! or embedded, read like a `.tsx`), and the layers in order: `<layer>` (data as CSV,
//! base64 with its compression passed through for the importer to decode, or `<tile>`
//! elements; `<chunk>`s for infinite maps), `<objectgroup>` with its `<object>`s
//! (ellipse, point, polygon, polyline, text, tile objects, templates), `<imagelayer>`
//! and `<group>`, each with its attributes and properties. What the importer then
//! skips it reports as it does for a `.tmj`.

use serde_json::{Map, Value, json};

use super::tsx::{copy_attributes, number, put_number, put_properties, tileset_json};
use super::xml::{self, Element};

/// The map as `.tmj`-shaped JSON, or why the text is not a readable Tiled map.
pub(super) fn map_from_tmx(text: &str) -> Result<Value, String> {
    let root = xml::parse(text)?;
    if root.name != "map" {
        let hint = if root.name == "tileset" { " (this is a tileset; import the map that uses it)" } else { "" };
        return Err(format!("the root element is <{}>, not <map>{hint}", root.name));
    }
    let mut map = Map::new();
    map.insert("type".into(), "map".into());
    copy_attributes(
        &root,
        &mut map,
        &["width", "height", "tilewidth", "tileheight", "hexsidelength", "nextlayerid", "nextobjectid"],
        &["orientation", "renderorder", "staggeraxis", "staggerindex", "class", "backgroundcolor", "tiledversion"],
    );
    map.insert("infinite".into(), Value::Bool(root.attribute("infinite") == Some("1")));
    put_properties(&root, &mut map);
    let tilesets = root.children_named("tileset").map(tileset).collect();
    map.insert("tilesets".into(), Value::Array(tilesets));
    map.insert("layers".into(), Value::Array(layers(&root)?));
    Ok(Value::Object(map))
}

/// A map's `<tileset>`: a `firstgid` and a `source`, or the whole tileset embedded.
fn tileset(element: &Element) -> Value {
    let mut json = match element.attribute("source") {
        Some(source) => Map::from_iter([("source".to_owned(), Value::from(source))]),
        None => tileset_json(element),
    };
    put_number(&mut json, "firstgid", element.attribute("firstgid"));
    Value::Object(json)
}

/// The layers directly inside a map or group, in document (draw) order.
fn layers(parent: &Element) -> Result<Vec<Value>, String> {
    let mut out = Vec::new();
    for element in &parent.children {
        let kind = match element.name.as_str() {
            "layer" => "tilelayer",
            "objectgroup" => "objectgroup",
            "imagelayer" => "imagelayer",
            "group" => "group",
            _ => continue,
        };
        let mut layer = Map::new();
        layer.insert("type".into(), kind.into());
        copy_attributes(
            element,
            &mut layer,
            &["id", "x", "y", "width", "height", "opacity", "offsetx", "offsety", "parallaxx", "parallaxy"],
            &["name", "class", "tintcolor", "color", "draworder"],
        );
        layer.insert("visible".into(), Value::Bool(element.attribute("visible") != Some("0")));
        put_properties(element, &mut layer);
        let label = element.attribute("name").unwrap_or("");
        match kind {
            "tilelayer" => {
                if let Some(data) = element.child("data") {
                    tile_data(data, &mut layer).map_err(|why| format!("layer \"{label}\": {why}"))?;
                }
            }
            "objectgroup" => {
                let objects = element.children_named("object").map(object).collect();
                layer.insert("objects".into(), Value::Array(objects));
            }
            "imagelayer" => {
                let image = element.child("image").and_then(|i| i.attribute("source")).unwrap_or("");
                layer.insert("image".into(), image.into());
            }
            _ => {
                layer.insert("layers".into(), Value::Array(layers(element)?));
            }
        }
        out.push(Value::Object(layer));
    }
    Ok(out)
}

/// A tile layer's `<data>`: its encoding and compression as the JSON map writes them,
/// and its tiles as `data`, or as `chunks` when the map is infinite.
fn tile_data(data: &Element, layer: &mut Map<String, Value>) -> Result<(), String> {
    let encoding = data.attribute("encoding").unwrap_or("");
    if encoding == "base64" {
        layer.insert("encoding".into(), "base64".into());
    }
    if let Some(compression) = data.attribute("compression") {
        layer.insert("compression".into(), compression.into());
    }
    let mut chunks = Vec::new();
    for chunk in data.children_named("chunk") {
        let mut json = Map::new();
        copy_attributes(chunk, &mut json, &["x", "y", "width", "height"], &[]);
        json.insert("data".into(), tiles(chunk, encoding)?);
        chunks.push(Value::Object(json));
    }
    if chunks.is_empty() {
        layer.insert("data".into(), tiles(data, encoding)?);
    } else {
        layer.insert("chunks".into(), Value::Array(chunks));
    }
    Ok(())
}

/// The tiles of a `<data>` or `<chunk>`: base64 stays text for the importer to decode;
/// CSV and `<tile gid>` elements become the JSON array of GIDs.
fn tiles(holder: &Element, encoding: &str) -> Result<Value, String> {
    match encoding {
        "base64" => Ok(holder.text.split_ascii_whitespace().collect::<String>().into()),
        "csv" => holder
            .text
            .split(',')
            .map(str::trim)
            .filter(|cell| !cell.is_empty())
            .map(|cell| {
                cell.parse::<u32>().map(Value::from).map_err(|_| format!("`{cell}` in its CSV data is not a tile"))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Value::Array),
        "" => holder
            .children_named("tile")
            .map(|tile| match tile.attribute("gid") {
                None => Ok(Value::from(0)),
                Some(gid) => gid.trim().parse::<u32>().map(Value::from).map_err(|_| format!("`{gid}` is not a tile")),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Value::Array),
        other => Err(format!("its data has the unknown encoding \"{other}\"")),
    }
}

/// One `<object>` as the JSON map writes it: position and size (0 when absent), its
/// shape as a flag or point list, and its text, tile, template and properties.
fn object(element: &Element) -> Value {
    let mut object = Map::new();
    for key in ["x", "y", "width", "height", "rotation"] {
        object.insert(key.into(), element.attribute(key).and_then(number).unwrap_or_else(|| 0.into()));
    }
    copy_attributes(element, &mut object, &["id", "gid"], &["name", "type", "class", "template"]);
    object.insert("visible".into(), Value::Bool(element.attribute("visible") != Some("0")));
    for flag in ["ellipse", "point"] {
        if element.child(flag).is_some() {
            object.insert(flag.into(), Value::Bool(true));
        }
    }
    for line in ["polygon", "polyline"] {
        if let Some(shape) = element.child(line) {
            object.insert(line.into(), Value::Array(points(shape.attribute("points").unwrap_or(""))));
        }
    }
    if let Some(text) = element.child("text") {
        let mut json = Map::new();
        json.insert("text".into(), text.text.clone().into());
        copy_attributes(text, &mut json, &["pixelsize"], &["fontfamily", "color", "halign", "valign"]);
        object.insert("text".into(), Value::Object(json));
    }
    put_properties(element, &mut object);
    Value::Object(object)
}

/// Tiled's `points="x,y x,y …"`; a pair that does not parse is left out.
fn points(text: &str) -> Vec<Value> {
    text.split_ascii_whitespace()
        .filter_map(|pair| {
            let (x, y) = pair.split_once(',')?;
            Some(json!({"x": number(x)?, "y": number(y)?}))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const TMX: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<map version="1.8" orientation="isometric" renderorder="right-down" width="2" height="2" tilewidth="64" tileheight="32" infinite="0" nextobjectid="4">
 <properties>
  <property name="name" value="Office"/>
  <property name="notes">line one
line two</property>
 </properties>
 <tileset firstgid="1" source="office.tsx"/>
 <tileset firstgid="9" name="inline" tilewidth="64" tileheight="32" tilecount="4" columns="2">
  <image source="inline.png" width="128" height="64"/>
 </tileset>
 <layer id="1" name="floor" width="2" height="2" opacity="0.5" offsetx="3">
  <data encoding="csv">
1,2,
3,4
</data>
 </layer>
 <group id="2" name="walls" visible="0">
  <layer id="3" name="xml" width="2" height="2"><data><tile gid="9"/><tile/><tile/><tile gid="10"/></data></layer>
  <layer id="4" name="packed" width="2" height="2"><data encoding="base64" compression="zstd">
   KLUv/QBY
  </data></layer>
 </group>
 <objectgroup id="5" name="zones">
  <object id="1" name="Lobby" type="zone" x="0" y="0" width="64" height="32"><ellipse/></object>
  <object id="2" class="spawn" x="10.5" y="4"><point/></object>
  <object id="3" x="0" y="0" rotation="45"><polygon points="0,0 32,0 32,16.5"/><text>Hello</text></object>
 </objectgroup>
 <imagelayer id="6" name="sky"><image source="sky.png"/></imagelayer>
</map>"#;

    #[test]
    fn reads_a_map_into_the_json_shape() {
        let map = map_from_tmx(TMX).unwrap();
        assert_eq!(map["orientation"], "isometric");
        assert_eq!(map["tilewidth"], 64);
        assert_eq!(map["infinite"], false);
        assert_eq!(map["properties"][1]["value"], "line one\nline two");
        assert_eq!(map["tilesets"][0], json!({"firstgid": 1, "source": "office.tsx"}));
        assert_eq!(map["tilesets"][1]["image"], "inline.png");
        assert_eq!(map["tilesets"][1]["firstgid"], 9);
        let layers = map["layers"].as_array().unwrap();
        assert_eq!(layers.len(), 4);
        assert_eq!(layers[0]["data"], json!([1, 2, 3, 4]));
        assert_eq!(layers[0]["opacity"], 0.5);
        assert_eq!(layers[0]["offsetx"], 3);
        assert_eq!(layers[1]["type"], "group");
        assert_eq!(layers[1]["visible"], false);
        assert_eq!(layers[1]["layers"][0]["data"], json!([9, 0, 0, 10]));
        assert_eq!(layers[1]["layers"][1]["data"], "KLUv/QBY");
        assert_eq!(layers[1]["layers"][1]["compression"], "zstd");
        let objects = layers[2]["objects"].as_array().unwrap();
        assert_eq!(objects[0]["ellipse"], true);
        assert_eq!(objects[0]["type"], "zone");
        assert_eq!(objects[1]["class"], "spawn");
        assert_eq!(objects[1]["x"], 10.5);
        assert_eq!(objects[1]["point"], true);
        assert_eq!(objects[2]["polygon"][2], json!({"x": 32, "y": 16.5}));
        assert_eq!(objects[2]["text"]["text"], "Hello");
        assert_eq!(objects[2]["rotation"], 45);
        assert_eq!(layers[3]["image"], "sky.png");
    }

    #[test]
    fn reads_chunks_of_infinite_maps() {
        let map = map_from_tmx(
            r#"<map orientation="orthogonal" width="30" height="20" tilewidth="16" tileheight="16" infinite="1">
            <layer id="1" name="a"><data encoding="csv"><chunk x="-16" y="0" width="2" height="1">5,0</chunk><chunk x="0" y="16" width="1" height="1">7</chunk></data></layer></map>"#,
        )
        .unwrap();
        assert_eq!(map["infinite"], true);
        let chunks = &map["layers"][0]["chunks"];
        assert_eq!(chunks[0], json!({"x": -16, "y": 0, "width": 2, "height": 1, "data": [5, 0]}));
        assert_eq!(chunks[1]["data"], json!([7]));
    }

    #[test]
    fn refuses_what_is_not_a_readable_map() {
        assert!(map_from_tmx("<tileset/>").unwrap_err().contains("tileset"));
        assert!(map_from_tmx("<map><layer name=\"x\"").is_err());
        let bad_csv = "<map><layer name=\"ground\"><data encoding=\"csv\">1,x</data></layer></map>";
        let why = map_from_tmx(bad_csv).unwrap_err();
        assert!(why.contains("ground") && why.contains("`x`"), "{why}");
    }
}
