//! Tiled names → Isoplane IDs, and the few name-shaped values the importer parses
//! (exit URLs, facings, layer depths).

use std::collections::HashSet;

use super::read;
use crate::limits::MAX_ID_CHARS;
use crate::model::{Facing, LayerDepth};

/// An ID made of a name: ASCII letters and digits lowercased, runs of spaces, `-`
/// and `_` become one `-`, everything else is dropped. Empty when nothing is left.
pub(super) fn slug(name: &str) -> String {
    let mut out = String::new();
    let mut pending_dash = false;
    for c in name.chars() {
        if c.is_ascii_alphanumeric() || c == '.' {
            if pending_dash && !out.is_empty() {
                out.push('-');
            }
            pending_dash = false;
            out.push(c.to_ascii_lowercase());
        } else if c.is_whitespace() || c == '-' || c == '_' {
            pending_dash = true;
        }
    }
    // Room for a "-NNN" suffix that makes it unique.
    out.truncate(MAX_ID_CHARS - 6);
    out.trim_matches(['-', '.']).to_owned()
}

/// The IDs already taken in one namespace (zones, objects, spawn points or exits).
#[derive(Debug, Default)]
pub(super) struct IdSpace {
    used: HashSet<String>,
}

impl IdSpace {
    pub fn reserve(&mut self, id: &str) {
        self.used.insert(id.to_owned());
    }

    /// A fresh ID from the slug of `name`, or `fallback` when the name has no usable
    /// characters; `-2`, `-3`… are appended until it is unique.
    pub fn claim(&mut self, name: &str, fallback: &str) -> String {
        let base = match slug(name) {
            s if s.is_empty() => slug(fallback),
            s => s,
        };
        let base = if base.is_empty() { "id".to_owned() } else { base };
        let mut id = base.clone();
        let mut n = 2;
        while self.used.contains(&id) {
            id = format!("{base}-{n}");
            n += 1;
        }
        self.used.insert(id.clone());
        id
    }
}

/// The world and spawn point a WorkAdventure `exitUrl` leads to: the target map's file
/// name without extension, and the `#fragment` if any, both as slugs.
/// "../Floor1/floor1.tmj#start" → ("floor1", Some("start")).
pub(super) fn exit_target(url: &str) -> Option<(String, Option<String>)> {
    let (path, fragment) = url.split_once('#').unwrap_or((url, ""));
    let path = path.split_once('?').map_or(path, |(p, _)| p).trim_end_matches('/');
    let world = slug(read::file_stem(&percent_decoded(path)));
    let spawn = Some(slug(&percent_decoded(fragment))).filter(|s| !s.is_empty());
    (!world.is_empty()).then_some((world, spawn))
}

/// URLs write spaces and other characters as `%XX`; names should not keep the digits.
fn percent_decoded(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A facing as people write it: "south", "north_east", "north-east", "NorthEast"…
pub(super) fn facing(text: &str) -> Option<Facing> {
    let compact: String = text.chars().filter(char::is_ascii_alphabetic).map(|c| c.to_ascii_lowercase()).collect();
    Facing::ALL.into_iter().find(|f| f.as_str().replace('_', "") == compact)
}

pub(super) fn depth(text: &str) -> Option<LayerDepth> {
    match text.trim().to_ascii_lowercase().as_str() {
        "below" => Some(LayerDepth::Below),
        "sorted" => Some(LayerDepth::Sorted),
        "above" => Some(LayerDepth::Above),
        _ => None,
    }
}

/// The depth a layer's name asks for: a word of the name (split at anything but
/// letters and digits) that starts with "below", "sorted" or "above".
pub(super) fn depth_in_name(name: &str) -> Option<LayerDepth> {
    name.split(|c: char| !c.is_alphanumeric()).find_map(|word| {
        let word = word.to_ascii_lowercase();
        ["below", "sorted", "above"].iter().find(|d| word.starts_with(*d)).and_then(|d| depth(d))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_keep_plain_characters() {
        assert_eq!(slug("Meeting Room  #2"), "meeting-room-2");
        assert_eq!(slug("  __Café--Bar__ "), "caf-bar");
        assert_eq!(slug("v1.2"), "v1.2");
        assert_eq!(slug("日本"), "");
        assert!(slug(&"x".repeat(200)).len() <= MAX_ID_CHARS - 6);
    }

    #[test]
    fn ids_are_unique_per_space() {
        let mut ids = IdSpace::default();
        ids.reserve("default");
        assert_eq!(ids.claim("Default", "zone-1"), "default-2");
        assert_eq!(ids.claim("Lounge", "zone-2"), "lounge");
        assert_eq!(ids.claim("lounge", "zone-3"), "lounge-2");
        assert_eq!(ids.claim("", "zone-4"), "zone-4");
        assert_eq!(ids.claim("☕", "seat 5"), "seat-5");
    }

    #[test]
    fn exit_urls_name_a_world_and_a_spawn() {
        assert_eq!(exit_target("../Floor1/floor1.tmj#start"), Some(("floor1".into(), Some("start".into()))));
        assert_eq!(exit_target("/@/org/world/map.tmj#x"), Some(("map".into(), Some("x".into()))));
        assert_eq!(exit_target("other.json"), Some(("other".into(), None)));
        assert_eq!(
            exit_target("https://example.org/maps/Big%20Hall.tmj?x=1#Stage Door"),
            Some(("big-hall".into(), Some("stage-door".into())))
        );
        assert_eq!(exit_target("#only-a-fragment"), None);
    }

    #[test]
    fn facings_and_depths_parse_loosely() {
        assert_eq!(facing("North-East"), Some(Facing::NorthEast));
        assert_eq!(facing("south_west"), Some(Facing::SouthWest));
        assert_eq!(facing("up"), None);
        assert_eq!(depth_in_name("Furniture (sorted)"), Some(LayerDepth::Sorted));
        assert_eq!(depth_in_name("above1"), Some(LayerDepth::Above));
        assert_eq!(depth_in_name("floor"), None);
    }
}
