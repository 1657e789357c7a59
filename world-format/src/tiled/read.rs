//! Lenient reading of Tiled's JSON: custom properties, typed field access with
//! fallbacks, the report under construction and the path helpers for files a map
//! references.
//!
//! Tiled writes many optional fields and has changed their shape over the years (old
//! maps keep properties in an object, new ones in an array of `{name, type, value}`), so
//! every accessor here accepts the shapes Tiled has written and never fails on a missing
//! field: the caller decides what a missing value means.

use serde_json::Value;

/// The notes collected while importing, in the order things were found.
#[derive(Debug, Default)]
pub(super) struct Notes {
    pub lines: Vec<String>,
}

impl Notes {
    pub fn add(&mut self, line: impl Into<String>) {
        self.lines.push(line.into());
    }
}

pub(super) fn text<'a>(value: &'a Value, key: &str) -> &'a str {
    value.get(key).and_then(Value::as_str).unwrap_or("")
}

pub(super) fn number(value: &Value, key: &str) -> Option<f64> {
    value.get(key).and_then(Value::as_f64).filter(|n| n.is_finite())
}

/// A whole number; integral floats count (Tiled writes `2.0` at times), saturating at
/// the ends of `i64` so absurd values stay absurd instead of turning into 0.
pub(super) fn whole(value: &Value, key: &str) -> Option<i64> {
    let n = value.get(key)?;
    n.as_i64().or_else(|| n.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64))
}

pub(super) fn unsigned(value: &Value, key: &str) -> Option<u32> {
    whole(value, key).and_then(|n| u32::try_from(n).ok())
}

pub(super) fn flag(value: &Value, key: &str, default: bool) -> bool {
    value.get(key).and_then(Value::as_bool).unwrap_or(default)
}

pub(super) fn array<'a>(value: &'a Value, key: &str) -> &'a [Value] {
    value.get(key).and_then(Value::as_array).map_or(&[], Vec::as_slice)
}

/// A Tiled object's or layer's class: `class` since Tiled 1.9, `type` before.
pub(super) fn class_of(value: &Value) -> String {
    let class = text(value, "class");
    if class.is_empty() { text(value, "type").to_owned() } else { class.to_owned() }
}

/// "1 tile", "3 tiles": a count for a report line.
pub(super) fn count(n: usize, thing: &str) -> String {
    if n == 1 { format!("1 {thing}") } else { format!("{n} {thing}s") }
}

/// Quotes a name for a report line, so empty and odd names stay visible.
pub(super) fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "'"))
}

/// Custom properties of a map, layer, object or tile, in the order Tiled wrote them.
#[derive(Debug, Clone, Default)]
pub(super) struct Properties {
    entries: Vec<(String, Value)>,
}

impl Properties {
    /// Reads `owner.properties`: an array of `{name, type, value}` (Tiled 1.2 and later)
    /// or an object of name → value (older Tiled).
    pub fn of(owner: &Value) -> Properties {
        let entries = match owner.get("properties") {
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(|item| {
                    let name = item.get("name")?.as_str()?;
                    Some((name.to_owned(), property_value(item)))
                })
                .collect(),
            Some(Value::Object(map)) => map.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            _ => Vec::new(),
        };
        Properties { entries }
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|(name, _)| name.as_str())
    }

    pub fn get(&self, name: &str) -> Option<&Value> {
        self.entries.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }

    pub fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// `true` for the boolean `true` and for the string "true" (any case), which maps
    /// edited by hand often carry.
    pub fn is_true(&self, name: &str) -> bool {
        self.get(name).is_some_and(value_is_true)
    }

    /// A non-empty text value; numbers are written out, booleans are not text.
    pub fn text(&self, name: &str) -> Option<String> {
        match self.get(name)? {
            Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_owned()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        }
    }

    /// A whole number, written as a number or as a string of digits. `Err` carries the
    /// value as written, for the report.
    pub fn whole(&self, name: &str) -> Option<Result<i64, String>> {
        let value = self.get(name)?;
        let parsed = match value {
            Value::Number(n) => n.as_i64().or_else(|| n.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64)),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        };
        Some(parsed.ok_or_else(|| value.to_string()))
    }

    /// A comma-separated list of names, trimmed, empty items dropped.
    pub fn list(&self, name: &str) -> Vec<String> {
        self.text(name)
            .map(|t| t.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect())
            .unwrap_or_default()
    }
}

fn property_value(item: &Value) -> Value {
    let value = item.get("value").cloned().unwrap_or(Value::Null);
    // Tiled's XML-converted maps sometimes write booleans as strings with type "bool".
    match (text(item, "type"), &value) {
        ("bool", Value::String(s)) => Value::Bool(s.eq_ignore_ascii_case("true")),
        _ => value,
    }
}

pub(super) fn value_is_true(value: &Value) -> bool {
    match value {
        Value::Bool(b) => *b,
        Value::String(s) => s.trim().eq_ignore_ascii_case("true"),
        _ => false,
    }
}

/// The folder part of a path as written in a map ("" for a file next to the map).
pub(super) fn folder_of(path: &str) -> &str {
    path.rfind('/').map_or("", |i| &path[..=i])
}

/// `relative` (as written in a file inside `folder`) as a path relative to the map's
/// folder, with `.` and `dir/..` steps resolved so the same file always has one name.
/// Absolute paths and URLs are passed on as written.
pub(super) fn join_path(folder: &str, relative: &str) -> String {
    let relative = relative.replace('\\', "/");
    if relative.starts_with('/') || relative.contains("://") || folder.is_empty() {
        return normalise(&relative);
    }
    normalise(&format!("{folder}{relative}"))
}

fn normalise(path: &str) -> String {
    if path.contains("://") {
        return path.to_owned();
    }
    let absolute = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." if parts.last().is_some_and(|last| *last != "..") => {
                parts.pop();
            }
            ".." if absolute => {}
            _ => parts.push(part),
        }
    }
    let joined = parts.join("/");
    if absolute { format!("/{joined}") } else { joined }
}

/// A file name without its folder and extension ("../a/floor1.tmj" → "floor1").
pub(super) fn file_stem(path: &str) -> &str {
    let name = path.rsplit('/').next().unwrap_or(path);
    match name.rfind('.') {
        Some(dot) if dot > 0 => &name[..dot],
        _ => name,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_resolve_relative_to_the_referencing_file() {
        assert_eq!(join_path("", "tiles.png"), "tiles.png");
        assert_eq!(join_path("../sets/", "img/a.png"), "../sets/img/a.png");
        assert_eq!(join_path("sets/", "../a.png"), "a.png");
        assert_eq!(join_path("sets/", "./a.png"), "sets/a.png");
        assert_eq!(join_path("../../", "../x.png"), "../../../x.png");
        assert_eq!(join_path("sets/", "/abs/x.png"), "/abs/x.png");
        assert_eq!(folder_of("../sets/a.tsj"), "../sets/");
        assert_eq!(file_stem("../Floor1/floor1.tmj"), "floor1");
        assert_eq!(file_stem(".hidden"), ".hidden");
    }

    #[test]
    fn properties_read_both_shapes() {
        let new: Value = serde_json::json!({"properties": [
            {"name": "silent", "type": "bool", "value": true},
            {"name": "collides", "type": "bool", "value": "true"},
            {"name": "capacity", "type": "string", "value": " 12 "},
            {"name": "requires", "type": "string", "value": "door a, ,door b"}
        ]});
        let p = Properties::of(&new);
        assert!(p.is_true("silent") && p.is_true("collides"));
        assert_eq!(p.whole("capacity"), Some(Ok(12)));
        assert_eq!(p.list("requires"), vec!["door a", "door b"]);
        let old: Value = serde_json::json!({"properties": {"jitsiRoom": "Lobby"}});
        assert_eq!(Properties::of(&old).text("jitsiRoom").as_deref(), Some("Lobby"));
    }
}
