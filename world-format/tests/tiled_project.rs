//! The Tiled project shipped for map makers (`tools/tiled/`) against the importer: every
//! class and property it offers is one the importer reads, and the other way round; its
//! defaults are what the importer assumes when a property is absent (Tiled does not write
//! a property left at its default); and the shorthand classes import to the same world as
//! the full ones.

use std::collections::BTreeMap;
use std::path::Path;

use isoplane_world_format::tiled::{ISOPLANE_CLASSES, ImportOptions, import_tiled};
use isoplane_world_format::{Facing, WebsiteTrigger, ZONE_TYPES};
use serde_json::{Value, json};

const TOOLS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tools/tiled");

fn read_json(name: &str) -> Value {
    let text = std::fs::read_to_string(Path::new(TOOLS).join(name)).unwrap_or_else(|e| panic!("reading {name}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name} is not JSON: {e}"))
}

fn text(value: &Value, key: &str) -> String {
    value.get(key).and_then(Value::as_str).unwrap_or_else(|| panic!("no text {key} in {value}")).to_owned()
}

/// A class as Tiled would offer it: its members by name, each with (type, enum, default).
type Members = BTreeMap<String, (String, Option<String>, Value)>;

fn members(list: &Value) -> Members {
    let list = list.as_array().unwrap_or_else(|| panic!("members are not a list: {list}"));
    list.iter()
        .map(|m| {
            let enumeration = m.get("propertytype").and_then(Value::as_str).map(str::to_owned);
            let camel = m.get("propertyType").and_then(Value::as_str).map(str::to_owned);
            assert_eq!(enumeration, camel, "Tiled 1.8 and 1.9+ spellings of the type of {m}");
            (text(m, "name"), (text(m, "type"), enumeration, m["value"].clone()))
        })
        .collect()
}

/// The project's classes and enums.
fn project() -> (BTreeMap<String, Members>, BTreeMap<String, Vec<String>>) {
    let project = read_json("isoplane.tiled-project");
    assert_eq!(text(&project, "objectTypesFile"), "objecttypes.json");
    let mut classes = BTreeMap::new();
    let mut enums = BTreeMap::new();
    for kind in project["propertyTypes"].as_array().unwrap_or_else(|| panic!("no propertyTypes")) {
        match text(kind, "type").as_str() {
            "class" => {
                let uses = kind["useAs"].as_array().unwrap_or_else(|| panic!("no useAs in {kind}"));
                assert!(uses.contains(&json!("object")), "{kind}");
                classes.insert(text(kind, "name"), members(&kind["members"]));
            }
            "enum" => {
                assert_eq!(text(kind, "storageType"), "string", "{kind}");
                let values = kind["values"].as_array().unwrap_or_else(|| panic!("no values in {kind}"));
                enums.insert(text(kind, "name"), values.iter().map(|v| v.as_str().unwrap_or("").to_owned()).collect());
            }
            other => panic!("unexpected property type {other}"),
        }
    }
    (classes, enums)
}

#[test]
fn the_project_offers_exactly_the_classes_and_properties_the_importer_reads() {
    let (classes, enums) = project();
    let offered: BTreeMap<&str, Vec<&str>> =
        classes.iter().map(|(name, m)| (name.as_str(), m.keys().map(String::as_str).collect())).collect();
    let read: BTreeMap<&str, Vec<&str>> = ISOPLANE_CLASSES
        .iter()
        .map(|(name, properties)| {
            let mut properties = properties.to_vec();
            properties.sort_unstable();
            (*name, properties)
        })
        .collect();
    assert_eq!(offered, read);

    let facings: Vec<String> = Facing::ALL.iter().map(|f| f.as_str().to_owned()).collect();
    assert_eq!(enums["ZoneType"], ZONE_TYPES.map(str::to_owned).to_vec());
    assert_eq!(enums["Facing"], facings);
    assert_eq!(enums["SeatFacing"], [vec!["any".to_owned()], facings].concat());
    assert_eq!(enums["WebsiteTrigger"], WebsiteTrigger::ALL.map(|t| t.as_str().to_owned()).to_vec());
    for (class, members) in &classes {
        for (name, (kind, enumeration, default)) in members {
            if let Some(enumeration) = enumeration {
                let values = enums.get(enumeration).unwrap_or_else(|| panic!("{class}.{name}: no enum {enumeration}"));
                assert!(kind == "string" && values.contains(&text(&json!({"v": default}), "v")), "{class}.{name}");
            }
        }
    }
}

#[test]
fn tiled_1_8s_object_types_are_the_projects_classes() {
    let (classes, _) = project();
    let types = read_json("objecttypes.json");
    let types: BTreeMap<String, Members> = types
        .as_array()
        .unwrap_or_else(|| panic!("objecttypes.json is not a list"))
        .iter()
        .map(|t| {
            let properties = t["properties"].as_array().unwrap_or_else(|| panic!("no properties in {t}"));
            // Object types spell the enum only the 1.8 way.
            let spelled: Vec<Value> = properties
                .iter()
                .map(|p| {
                    let mut p = p.clone();
                    if let Some(e) = p.get("propertytype").cloned() {
                        p["propertyType"] = e;
                    }
                    p
                })
                .collect();
            (text(t, "name"), members(&Value::Array(spelled)))
        })
        .collect();
    assert_eq!(types, classes);
}

/// A 6×6 orthogonal map with no tiles and one object of `class` on the tile (2, 2), and
/// a spawn point far from it.
fn map_with(class: &str, properties: &Value) -> String {
    let properties: Vec<Value> = properties
        .as_object()
        .map(|p| p.iter().map(|(name, value)| json!({"name": name, "type": "string", "value": value})).collect())
        .unwrap_or_default();
    json!({
        "type": "map", "orientation": "orthogonal", "infinite": false,
        "width": 6, "height": 6, "tilewidth": 32, "tileheight": 32, "tilesets": [],
        "layers": [
            {"type": "tilelayer", "name": "floor", "width": 6, "height": 6, "data": vec![0; 36]},
            {"type": "objectgroup", "name": "objects", "objects": [
                {"id": 1, "name": "Thing", "type": class, "x": 64, "y": 64, "width": 64, "height": 64,
                 "properties": properties},
                {"id": 2, "name": "Entry", "type": "spawn", "x": 176, "y": 176, "point": true}
            ]}
        ]
    })
    .to_string()
}

fn world_of(map: &str) -> String {
    match import_tiled(map, &ImportOptions::default(), &|_| None) {
        Ok(imported) => imported.world.to_json_pretty(),
        Err(e) => panic!("the map did not import: {e}"),
    }
}

#[test]
fn properties_left_at_the_projects_defaults_change_nothing() {
    let (classes, _) = project();
    for (class, members) in &classes {
        let zone_types: Vec<Option<&str>> =
            if class == "zone" { ZONE_TYPES.iter().copied().map(Some).collect() } else { vec![None] };
        for zone_type in zone_types {
            // What a map maker must set: the zone's type, an exit's target world, a website's URL.
            let mut chosen = serde_json::Map::new();
            if let Some(zone_type) = zone_type {
                chosen.insert("zoneType".into(), json!(zone_type));
            }
            if class == "exit" {
                chosen.insert("world".into(), json!("elsewhere"));
            }
            if class == "website" {
                chosen.insert("url".into(), json!("https://board.example.com/"));
            }
            let mut defaults = chosen.clone();
            for (name, (_, _, default)) in members {
                defaults.entry(name.clone()).or_insert_with(|| default.clone());
            }
            let absent = world_of(&map_with(class, &Value::Object(chosen)));
            let present = world_of(&map_with(class, &Value::Object(defaults)));
            assert_eq!(absent, present, "class {class} {zone_type:?}");
        }
    }
}

#[test]
fn shorthand_classes_import_to_the_same_world_as_the_full_ones() {
    for zone_type in ZONE_TYPES {
        let shorthand = world_of(&map_with(zone_type, &json!({"capacity": 5})));
        let full = world_of(&map_with("zone", &json!({"zoneType": zone_type, "capacity": 5})));
        assert_eq!(shorthand, full, "{zone_type}");
        // (A stage without a podium is imported as a meeting room, both ways.)
        assert!(shorthand.contains("\"id\": \"thing\""), "the area is a zone: {shorthand}");
    }
    let start = world_of(&map_with("start", &json!({"facing": "east"})));
    let spawn = world_of(&map_with("spawn", &json!({"facing": "east"})));
    assert_eq!(start, spawn);
}

#[test]
fn the_example_map_of_the_guide_imports_with_nothing_ignored() {
    let folder = Path::new(TOOLS).join("example");
    let text =
        std::fs::read_to_string(folder.join("office.tmj")).unwrap_or_else(|e| panic!("reading the example: {e}"));
    let read_file = |path: &str| std::fs::read(folder.join(path)).ok();
    let imported = import_tiled(&text, &ImportOptions::default(), &read_file)
        .unwrap_or_else(|e| panic!("the example did not import: {e}"));
    let notes = &imported.report.notes;
    assert_eq!(notes.len(), 2, "{notes:?}");
    assert!(notes[0].contains("\"Quiet corner\" (#5): class \"silent\" read as class \"zone\""), "{notes:?}");
    assert!(notes[1].contains("2 zones, 3 exclusive objects, 1 exit, 1 spawn point"), "{notes:?}");
    assert_eq!(imported.world.file().name, "Example office");
    assert_eq!(imported.assets.len(), 1);
}
