//! A reader for the few parts of Tiled's XML tilesets (`.tsx`) the importer needs,
//! turned into the same JSON shape as a `.tsj` tileset so one code path reads both.
//!
//! Read: the `<tileset>` attributes (name, tile size, tile count, columns, margin,
//! spacing), its `<image>` (source, width, height), `<tileoffset>`, and per `<tile>` its
//! id, `<image>` (image collections), `<animation>`, `<objectgroup>` (collision shapes)
//! and `<properties>`. Everything else (wang sets, terrain, transformations) is skipped.
//! The XML itself is read by [`super::xml`]; the `.tmx` map reader reuses
//! [`tileset_json`] for tilesets embedded in maps.

use serde_json::{Map, Value, json};

use super::xml::{self, Element};

/// The tileset as `.tsj`-shaped JSON, or why the text is not a Tiled tileset.
pub(super) fn tileset_from_tsx(text: &str) -> Result<Value, String> {
    let root = xml::parse(text)?;
    if root.name != "tileset" {
        return Err(format!("the root element is <{}>, not <tileset>", root.name));
    }
    Ok(Value::Object(tileset_json(&root)))
}

/// A `<tileset>` element (a `.tsx` file's root, or embedded in a `.tmx` map) as
/// `.tsj`-shaped JSON.
pub(super) fn tileset_json(element: &Element) -> Map<String, Value> {
    let mut tileset = Map::new();
    copy_attributes(
        element,
        &mut tileset,
        &["tilewidth", "tileheight", "tilecount", "columns", "margin", "spacing"],
        &["name", "class"],
    );
    if let Some(image) = element.child("image") {
        put_text(&mut tileset, "image", image.attribute("source"));
        put_number(&mut tileset, "imagewidth", image.attribute("width"));
        put_number(&mut tileset, "imageheight", image.attribute("height"));
    }
    if let Some(offset) = element.child("tileoffset") {
        let mut json = Map::new();
        put_number(&mut json, "x", offset.attribute("x"));
        put_number(&mut json, "y", offset.attribute("y"));
        tileset.insert("tileoffset".into(), Value::Object(json));
    }
    put_properties(element, &mut tileset);
    let tiles = element.children_named("tile").map(tile_json).collect();
    tileset.insert("tiles".into(), Value::Array(tiles));
    tileset
}

/// One `<tile>`: its id, image (image collections), properties, and markers for an
/// animation or collision shapes, which the importer only reports.
fn tile_json(element: &Element) -> Value {
    let mut tile = Map::new();
    put_number(&mut tile, "id", element.attribute("id"));
    copy_attributes(element, &mut tile, &[], &["type", "class"]);
    if let Some(image) = element.child("image") {
        tile.insert("image".into(), image.attribute("source").unwrap_or("").into());
    }
    if element.child("animation").is_some() {
        tile.insert("animation".into(), json!([{}]));
    }
    if element.child("objectgroup").is_some() {
        tile.insert("objectgroup".into(), json!({"objects": [{}]}));
    }
    put_properties(element, &mut tile);
    Value::Object(tile)
}

/// Copies attributes as numbers (whole when they are, else fractional) and as text.
pub(super) fn copy_attributes(element: &Element, into: &mut Map<String, Value>, numbers: &[&str], texts: &[&str]) {
    for key in numbers {
        put_number(into, key, element.attribute(key));
    }
    for key in texts {
        put_text(into, key, element.attribute(key));
    }
}

/// A number as Tiled's JSON writes it: whole numbers as integers.
pub(super) fn number(text: &str) -> Option<Value> {
    let text = text.trim();
    text.parse::<i64>()
        .map(Value::from)
        .ok()
        .or_else(|| text.parse::<f64>().ok().filter(|n| n.is_finite()).map(Value::from))
}

pub(super) fn put_number(into: &mut Map<String, Value>, key: &str, value: Option<&str>) {
    if let Some(n) = value.and_then(number) {
        into.insert(key.into(), n);
    }
}

fn put_text(into: &mut Map<String, Value>, key: &str, value: Option<&str>) {
    if let Some(v) = value {
        into.insert(key.into(), v.into());
    }
}

/// The element's own `<properties>` (not those of its children), as Tiled's JSON array.
pub(super) fn put_properties(element: &Element, into: &mut Map<String, Value>) {
    if let Some(properties) = element.child("properties") {
        let list = properties.children_named("property").map(property_json).collect();
        into.insert("properties".into(), Value::Array(list));
    }
}

/// A `<property>` as Tiled's JSON writes it: the value typed by its `type` attribute;
/// a multi-line value is the element's text, a class value its member properties.
fn property_json(element: &Element) -> Value {
    let kind = element.attribute("type").unwrap_or("string");
    let raw = element.attribute("value").unwrap_or(&element.text);
    let value = match kind {
        "bool" => Value::Bool(raw == "true"),
        "int" | "object" => raw.trim().parse::<i64>().map_or_else(|_| raw.into(), Value::from),
        "float" => number(raw).unwrap_or_else(|| raw.into()),
        "class" => {
            let mut members = Map::new();
            for member in element.child("properties").iter().flat_map(|p| p.children_named("property")) {
                let name = member.attribute("name").unwrap_or("").to_owned();
                members.insert(name, property_json(member)["value"].take());
            }
            Value::Object(members)
        }
        _ => raw.into(),
    };
    let mut json = json!({"name": element.attribute("name").unwrap_or(""), "type": kind, "value": value});
    if let Some(class) = element.attribute("propertytype") {
        json["propertytype"] = class.into();
    }
    json
}

#[cfg(test)]
mod tests {
    use super::*;

    const TSX: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<!-- a > in a comment -->
<tileset version="1.10" name="Office &amp; more" tilewidth="64" tileheight="32" tilecount="8" columns="4" spacing="2">
 <properties><property name="author" value="me"/></properties>
 <image source="office.png" width="262" height="66"/>
 <tile id="3">
  <properties>
   <property name="collides" type="bool" value="true"/>
   <property name="label" value="a &lt;b&gt; &#233;"/>
  </properties>
  <objectgroup draworder="index"><object id="1" x="0" y="0" width="8" height="8">
   <properties><property name="collides" type="bool" value="false"/></properties>
  </object></objectgroup>
 </tile>
 <tile id="5"><animation><frame tileid="5" duration="100"/></animation></tile>
</tileset>"#;

    #[test]
    fn reads_what_the_importer_needs() {
        let set = tileset_from_tsx(TSX).unwrap();
        assert_eq!(set["name"], "Office & more");
        assert_eq!(set["tilewidth"], 64);
        assert_eq!(set["spacing"], 2);
        assert_eq!(set["image"], "office.png");
        assert_eq!(set["imagewidth"], 262);
        assert_eq!(set["properties"][0]["name"], "author");
        let tiles = set["tiles"].as_array().unwrap();
        assert_eq!(tiles.len(), 2);
        assert_eq!(tiles[0]["id"], 3);
        // Only the tile's own properties, not those of its collision shapes.
        assert_eq!(tiles[0]["properties"].as_array().unwrap().len(), 2);
        assert_eq!(tiles[0]["properties"][0]["value"], true);
        assert_eq!(tiles[0]["properties"][1]["value"], "a <b> é");
        assert!(tiles[0].get("objectgroup").is_some());
        assert!(tiles[1].get("animation").is_some());
    }

    #[test]
    fn refuses_what_is_not_a_tileset() {
        assert!(tileset_from_tsx("<map></map>").unwrap_err().contains("<map>"));
        assert!(tileset_from_tsx("no xml").is_err());
        assert!(tileset_from_tsx("<tileset name=\"x").is_err());
    }
}
