//! A reader for the few parts of Tiled's XML tilesets (`.tsx`) the importer needs,
//! turned into the same JSON shape as a `.tsj` tileset so one code path reads both.
//!
//! Read: the `<tileset>` attributes (name, tile size, tile count, columns, margin,
//! spacing), its `<image>` (source, width, height), `<tileoffset>`, and per `<tile>` its
//! id, `<image>` (image collections), `<animation>`, `<objectgroup>` (collision shapes)
//! and `<properties>`. Everything else (wang sets, terrain, transformations) is skipped.
//! This is tag scanning, not a general XML parser: it handles comments, processing
//! instructions, CDATA, both quote styles and the standard entities, which is all Tiled
//! writes.

use serde_json::{Map, Value, json};

/// One start or end tag.
struct Tag<'t> {
    name: &'t str,
    attributes: Vec<(&'t str, String)>,
    closing: bool,
    self_closing: bool,
}

impl Tag<'_> {
    fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes.iter().find(|(n, _)| *n == name).map(|(_, v)| v.as_str())
    }
}

/// The tileset as `.tsj`-shaped JSON, or why the text is not a Tiled tileset.
pub(super) fn tileset_from_tsx(text: &str) -> Result<Value, String> {
    let mut open: Vec<&str> = Vec::new();
    let mut tileset = Map::new();
    let mut tiles: Vec<Value> = Vec::new();
    let mut rest = text;
    let mut seen_root = false;
    while let Some(start) = rest.find('<') {
        rest = &rest[start..];
        let (tag, after) = next_tag(rest)?;
        rest = after;
        let Some(tag) = tag else { continue };
        if tag.closing {
            open.pop();
            continue;
        }
        if !seen_root {
            if tag.name != "tileset" {
                return Err(format!("the root element is <{}>, not <tileset>", tag.name));
            }
            seen_root = true;
        }
        let parent = open.last().copied();
        let grandparent = open.len().checked_sub(2).and_then(|i| open.get(i)).copied();
        match (grandparent, parent, tag.name) {
            (_, None, "tileset") => copy_numbers(
                &tag,
                &mut tileset,
                &["tilewidth", "tileheight", "tilecount", "columns", "margin", "spacing"],
                &["name"],
            ),
            (_, Some("tileset"), "image") => {
                put_text(&mut tileset, "image", tag.attribute("source"));
                put_number(&mut tileset, "imagewidth", tag.attribute("width"));
                put_number(&mut tileset, "imageheight", tag.attribute("height"));
            }
            (_, Some("tileset"), "tileoffset") => {
                let mut offset = Map::new();
                put_number(&mut offset, "x", tag.attribute("x"));
                put_number(&mut offset, "y", tag.attribute("y"));
                tileset.insert("tileoffset".into(), Value::Object(offset));
            }
            (_, Some("tileset"), "tile") => {
                let mut tile = Map::new();
                put_number(&mut tile, "id", tag.attribute("id"));
                tiles.push(Value::Object(tile));
            }
            (Some("tileset"), Some("tile"), "image") => {
                set_on_last_tile(&mut tiles, "image", tag.attribute("source").unwrap_or("").into())
            }
            (Some("tileset"), Some("tile"), "animation") => set_on_last_tile(&mut tiles, "animation", json!([{}])),
            (Some("tileset"), Some("tile"), "objectgroup") => {
                set_on_last_tile(&mut tiles, "objectgroup", json!({"objects": [{}]}))
            }
            (Some("tile"), Some("properties"), "property") if open.len() == 3 => push_property(&mut tiles, &tag),
            (Some("tileset"), Some("properties"), "property") if open.len() == 2 => {
                push_to(&mut tileset, "properties", property_json(&tag));
            }
            _ => {}
        }
        if !tag.self_closing {
            open.push(tag.name);
        }
    }
    if !seen_root {
        return Err("no <tileset> element found".into());
    }
    tileset.insert("tiles".into(), Value::Array(tiles));
    Ok(Value::Object(tileset))
}

/// Reads the tag at the start of `text` (which starts with `<`). Comments, declarations
/// and CDATA give `None`.
fn next_tag(text: &str) -> Result<(Option<Tag<'_>>, &str), String> {
    for (opening, closing) in [("<!--", "-->"), ("<![CDATA[", "]]>"), ("<?", "?>"), ("<!", ">")] {
        if text.starts_with(opening) {
            let end = text.find(closing).ok_or_else(|| format!("unterminated {opening}"))?;
            return Ok((None, &text[end + closing.len()..]));
        }
    }
    let end = tag_end(text).ok_or("an unterminated tag")?;
    let inner = &text[1..end];
    let after = &text[end + 1..];
    if let Some(name) = inner.strip_prefix('/') {
        return Ok((
            Some(Tag { name: name.trim(), attributes: Vec::new(), closing: true, self_closing: false }),
            after,
        ));
    }
    let self_closing = inner.ends_with('/');
    let inner = inner.strip_suffix('/').unwrap_or(inner);
    let name_end = inner.find(|c: char| c.is_ascii_whitespace()).unwrap_or(inner.len());
    let tag =
        Tag { name: &inner[..name_end], attributes: attributes(&inner[name_end..])?, closing: false, self_closing };
    Ok((Some(tag), after))
}

/// The index of the `>` that ends the tag, skipping any `>` inside quoted values.
fn tag_end(text: &str) -> Option<usize> {
    let mut quote = None;
    for (i, c) in text.char_indices() {
        match (quote, c) {
            (None, '"' | '\'') => quote = Some(c),
            (Some(q), _) if c == q => quote = None,
            (None, '>') => return Some(i),
            _ => {}
        }
    }
    None
}

fn attributes(mut text: &str) -> Result<Vec<(&str, String)>, String> {
    let mut out = Vec::new();
    loop {
        text = text.trim_start();
        if text.is_empty() {
            return Ok(out);
        }
        let eq = text.find('=').ok_or_else(|| format!("attribute without a value near `{}`", head(text)))?;
        let name = text[..eq].trim();
        let value_text = text[eq + 1..].trim_start();
        let quote = value_text
            .chars()
            .next()
            .filter(|c| *c == '"' || *c == '\'')
            .ok_or_else(|| format!("unquoted attribute `{name}`"))?;
        let close = value_text[1..].find(quote).ok_or_else(|| format!("unterminated attribute `{name}`"))?;
        out.push((name, unescape(&value_text[1..=close])));
        text = &value_text[close + 2..];
    }
}

fn head(text: &str) -> String {
    text.chars().take(20).collect()
}

/// Replaces XML's entities and character references.
fn unescape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        rest = &rest[amp..];
        let Some(semi) = rest.find(';') else { break };
        let entity = &rest[1..semi];
        let decoded = match entity {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            _ => entity
                .strip_prefix("#x")
                .map(|hex| u32::from_str_radix(hex, 16).ok())
                .unwrap_or_else(|| entity.strip_prefix('#').and_then(|dec| dec.parse().ok()))
                .and_then(char::from_u32),
        };
        match decoded {
            Some(c) => {
                out.push(c);
                rest = &rest[semi + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

fn copy_numbers(tag: &Tag<'_>, into: &mut Map<String, Value>, numbers: &[&str], texts: &[&str]) {
    for key in numbers {
        put_number(into, key, tag.attribute(key));
    }
    for key in texts {
        put_text(into, key, tag.attribute(key));
    }
}

fn put_number(into: &mut Map<String, Value>, key: &str, value: Option<&str>) {
    if let Some(n) = value.and_then(|v| v.trim().parse::<i64>().ok()) {
        into.insert(key.into(), n.into());
    }
}

fn put_text(into: &mut Map<String, Value>, key: &str, value: Option<&str>) {
    if let Some(v) = value {
        into.insert(key.into(), v.into());
    }
}

fn set_on_last_tile(tiles: &mut [Value], key: &str, value: Value) {
    if let Some(Value::Object(tile)) = tiles.last_mut() {
        tile.insert(key.into(), value);
    }
}

fn push_to(into: &mut Map<String, Value>, key: &str, item: Value) {
    if let Value::Array(list) = into.entry(key).or_insert_with(|| Value::Array(Vec::new())) {
        list.push(item);
    }
}

fn push_property(tiles: &mut [Value], tag: &Tag<'_>) {
    if let Some(Value::Object(tile)) = tiles.last_mut() {
        push_to(tile, "properties", property_json(tag));
    }
}

/// A `<property>` as Tiled's JSON writes it: the value typed by its `type` attribute.
fn property_json(tag: &Tag<'_>) -> Value {
    let kind = tag.attribute("type").unwrap_or("string");
    let raw = tag.attribute("value").unwrap_or("");
    let value = match kind {
        "bool" => Value::Bool(raw == "true"),
        "int" => raw.parse::<i64>().map_or_else(|_| raw.into(), Value::from),
        "float" => raw.parse::<f64>().map_or_else(|_| raw.into(), Value::from),
        _ => raw.into(),
    };
    json!({"name": tag.attribute("name").unwrap_or(""), "type": kind, "value": value})
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
