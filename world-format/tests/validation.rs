//! Parsing and validation: valid worlds load, and a broken one reports every error at
//! once, each with the JSON path of the value to fix.

use isoplane_world_format::{ContentId, World, WorldErrors};
use serde_json::{Value, json};

fn tileset_id() -> String {
    ContentId::of_bytes(b"tileset image").to_string()
}

/// A small valid world: 8×6, one blocked tile, a meeting room behind a door.
fn base() -> Value {
    json!({
        "format": "isoplane.world",
        "version": 1,
        "name": "Test world",
        "grid": {"orientation": "isometric", "width": 8, "height": 6, "tile_width": 64, "tile_height": 32},
        "tilesets": [{"name": "t", "image": tileset_id(), "image_width": 128, "image_height": 64,
                      "tile_width": 64, "tile_height": 64, "columns": 2, "tile_count": 2, "first_gid": 1}],
        "layers": [{"name": "floor", "tiles": vec![1; 48]}],
        "collision": {"rows": ["........", "........", "...#....", "........", "........", "........"]},
        "spawns": [{"id": "main", "x": 0, "y": 0}],
        "zones": [{"id": "room", "name": "Room", "type": "meeting_room", "area": [{"x": 5, "y": 0, "w": 3, "h": 3}],
                   "entry_via": ["door"]}],
        "objects": [{"id": "door", "kind": "door", "area": [{"x": 4, "y": 1}]}],
    })
}

fn load(value: &Value) -> Result<World, WorldErrors> {
    World::from_json(&value.to_string())
}

fn errors_of(value: &Value) -> Vec<(String, String)> {
    match load(value) {
        Ok(_) => panic!("expected errors, the world loaded"),
        Err(errors) => errors.errors.into_iter().map(|p| (p.path, p.message)).collect(),
    }
}

fn has_error(errors: &[(String, String)], path: &str, words: &str) -> bool {
    errors.iter().any(|(p, m)| p == path && m.contains(words))
}

#[test]
fn the_base_world_loads_and_fills_defaults() {
    let world = load(&base()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(world.file().movement.max_speed, 4.0);
    assert_eq!(world.file().default_zone.id, "default");
    assert_eq!(world.zone(world.zone_at(6, 1).unwrap()).id, "room");
    assert_eq!(world.zone_at(0, 0), Some(isoplane_world_format::ZoneIndex::DEFAULT));
    assert!(!world.is_walkable(3, 2));
    assert!(world.is_walkable(2, 2));
    assert_eq!(world.object_at(4, 1), world.object_by_id("door"));
    assert_eq!(world.zone_at(8, 0), None);
}

#[test]
fn every_error_is_reported_at_once_with_its_path() {
    let mut world = base();
    world["grid"]["tile_widht"] = json!(64);
    world["tilesets"][0]["image"] = json!("sha256-NOT-HEX");
    world["layers"][0]["tiles"] = json!(vec![1; 47]);
    world["zones"] = json!([
        {"id": "room", "name": "Room", "type": "ballroom", "area": [{"x": 5, "y": 0, "w": 3, "h": 3}]},
        {"id": "big", "name": "Big", "type": "open", "area": [{"x": 6, "y": 4, "w": 5, "h": 1}]},
        {"id": "a", "name": "A", "type": "silent", "area": [{"x": 0, "y": 3, "w": 3, "h": 2}]},
        {"id": "b", "name": "B", "type": "private", "capacity": 0, "area": [{"x": 2, "y": 4, "w": 2, "h": 2}]},
    ]);
    world["spawns"] = json!([{"id": "main", "x": 0, "y": 0}, {"id": "main", "x": 3, "y": 2, "facing": "up"}]);
    world["objects"] = json!([
        {"id": "x", "kind": "seat", "area": [{"x": 1, "y": 1}], "requires": ["y"]},
        {"id": "y", "kind": "seat", "area": [{"x": 1, "y": 2}], "requires": ["x", "ghost"]},
        {"id": "z", "kind": "throne", "area": [{"x": 2, "y": 1}]},
    ]);
    let errors = errors_of(&world);
    // Shape errors...
    assert!(has_error(&errors, "$.grid.tile_widht", "unknown field"), "{errors:#?}");
    assert!(has_error(&errors, "$.tilesets[0].image", "malformed asset ID"), "{errors:#?}");
    assert!(has_error(&errors, "$.zones[0].type", "unknown ZoneType \"ballroom\""), "{errors:#?}");
    assert!(has_error(&errors, "$.spawns[1].facing", "expected a direction"), "{errors:#?}");
    assert!(has_error(&errors, "$.objects[2].kind", "unknown kind \"throne\""), "{errors:#?}");
    // ...and, in the same report, the rules between the parts that could be read.
    assert!(has_error(&errors, "$.layers[0].tiles", "47 GIDs"), "{errors:#?}");
    assert!(has_error(&errors, "$.zones[1].area[0]", "reach outside the 8×6 grid"), "{errors:#?}");
    assert!(has_error(&errors, "$.zones[3].area", "overlaps zone \"a\" at tile (2, 4)"), "{errors:#?}");
    assert!(has_error(&errors, "$.zones[3].capacity", "must be from 1"), "{errors:#?}");
    assert!(errors.iter().any(|(p, m)| p.ends_with(".requires") && m.contains("loops (x → y → x)")), "{errors:#?}");
    // Rules an unreadable part could break spuriously are held back: "ghost" might have
    // been the unreadable object.
    assert!(!errors.iter().any(|(_, m)| m.contains("ghost")), "{errors:#?}");
    assert_eq!(errors.len(), 10, "{errors:#?}");

    // With the shapes fixed, the rules between fields are all reported together.
    world["grid"].as_object_mut().unwrap().remove("tile_widht");
    world["tilesets"][0]["image"] = json!(tileset_id());
    world["zones"][0]["type"] = json!("meeting_room");
    world["spawns"][1]["facing"] = json!("north");
    world["objects"][2]["kind"] = json!("seat");
    let errors = errors_of(&world);
    assert!(has_error(&errors, "$.layers[0].tiles", "47 GIDs"), "{errors:#?}");
    assert!(has_error(&errors, "$.spawns[1].id", "already has the ID \"main\""), "{errors:#?}");
    assert!(has_error(&errors, "$.spawns[1]", "tile (3, 2) is blocked"), "{errors:#?}");
    assert!(has_error(&errors, "$.objects[1].requires[1]", "no exclusive object has the ID \"ghost\""), "{errors:#?}");
    assert!(errors.iter().any(|(p, m)| p.ends_with(".requires") && m.contains("loops (x → y → x)")), "{errors:#?}");
}

#[test]
fn a_newer_format_version_is_refused_clearly() {
    let mut world = base();
    world["version"] = json!(2);
    world["some_future_field"] = json!({"x": 1});
    let errors = errors_of(&world);
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert!(has_error(&errors, "$.version", "reads versions up to 1: upgrade Isoplane"), "{errors:#?}");
}

#[test]
fn a_file_that_is_not_a_world_is_refused() {
    assert!(has_error(&errors_of(&json!({"format": "tiled", "version": 1})), "$.format", "not an Isoplane world"));
    assert!(has_error(&errors_of(&json!([1, 2])), "$", "expected an object"));
    let errors = World::from_json("{\"format\": ").unwrap_err().errors;
    assert!(errors[0].message.contains("not valid JSON"), "{errors:?}");
}

#[test]
fn an_unreachable_spawn_point_is_an_error() {
    let mut world = base();
    // Tile (7, 5) walled in by blocked tiles.
    world["collision"]["rows"] = json!(["........", "........", "...#....", "........", "......##", "......#."]);
    world["spawns"] = json!([{"id": "main", "x": 0, "y": 0}, {"id": "corner", "x": 7, "y": 5}]);
    let errors = errors_of(&world);
    assert!(has_error(&errors, "$.spawns[1]", "unreachable from the default spawn point \"main\""), "{errors:#?}");
}

#[test]
fn thin_walls_and_cliffs_can_cut_off_a_spawn_point() {
    let mut world = base();
    world["spawns"] = json!([{"id": "main", "x": 0, "y": 0}, {"id": "far", "x": 1, "y": 5}]);
    world["collision"]["walls"] = json!([{"from": [0, 5], "to": [8, 5]}]);
    assert!(has_error(&errors_of(&world), "$.spawns[1]", "unreachable"));

    world["collision"]["walls"] = json!([]);
    world["grid"]["levels"] = json!(3);
    world["collision"]["heights"] = json!(["00000000", "00000000", "00000000", "00000000", "00000000", "22222222"]);
    assert!(has_error(&errors_of(&world), "$.spawns[1]", "unreachable"));

    // A step of one level is a stair, not a cliff.
    world["collision"]["heights"] = json!(["00000000", "00000000", "00000000", "00000000", "11111111", "22222222"]);
    assert!(load(&world).is_ok());
}

#[test]
fn a_door_only_zone_is_reachable_only_through_its_door() {
    let mut world = base();
    world["spawns"] = json!([{"id": "main", "x": 0, "y": 0}, {"id": "inside", "x": 6, "y": 1}]);
    assert!(load(&world).is_ok());
    // Block the door tile's approach: the room can no longer be reached.
    world["collision"]["rows"] = json!(["....#...", "...#....", "...##...", "....#...", "........", "........"]);
    assert!(has_error(&errors_of(&world), "$.spawns[1]", "unreachable"));
}

#[test]
fn malformed_walls_rects_and_ids_are_refused() {
    let mut world = base();
    world["collision"]["walls"] = json!([
        {"from": [0, 0], "to": [3, 3]},
        {"from": [2, 2], "to": [2, 2]},
        {"from": [0, 0], "to": [9, 0]},
    ]);
    world["zones"][0]["id"] = json!("has spaces");
    world["zones"][0]["area"] = json!([{"x": 5, "y": 0, "w": 0, "h": 3}]);
    world["collision"]["rows"][1] = json!("...x....");
    let errors = errors_of(&world);
    assert!(has_error(&errors, "$.collision.walls[0]", "share x or y"), "{errors:#?}");
    assert!(has_error(&errors, "$.collision.walls[1]", "no length"), "{errors:#?}");
    assert!(has_error(&errors, "$.collision.walls[2]", "leaves the grid"), "{errors:#?}");
    assert!(has_error(&errors, "$.zones[0].id", "not a valid ID"), "{errors:#?}");
    assert!(has_error(&errors, "$.zones[0].area[0]", "at least 1 tile"), "{errors:#?}");
    assert!(has_error(&errors, "$.collision.rows[1]", "neither `.`"), "{errors:#?}");
}

#[test]
fn tile_gids_must_belong_to_a_tileset_and_flip_flags_are_masked() {
    let mut world = base();
    let mut tiles = vec![1u32; 48];
    tiles[3] = 2 | 0x8000_0000 | 0x2000_0000; // flipped tile 2: fine
    tiles[5] = 3; // no tileset has GID 3
    world["layers"][0]["tiles"] = json!(tiles);
    let errors = errors_of(&world);
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert!(has_error(&errors, "$.layers[0].tiles[5]", "GID 3 (tile 5, 0) belongs to no tileset"), "{errors:#?}");
}

#[test]
fn oversized_grids_and_counts_are_refused_before_allocating() {
    let mut world = base();
    world["grid"]["width"] = json!(1_000_000);
    world["grid"]["height"] = json!(1_000_000);
    let errors = errors_of(&world);
    assert!(has_error(&errors, "$.grid.width", "1 to 1024"), "{errors:#?}");
    assert!(has_error(&errors, "$.grid.height", "1 to 1024"), "{errors:#?}");
}

#[test]
fn a_stage_podium_must_lie_inside_its_stage() {
    let mut world = base();
    world["zones"][0] = json!({"id": "stage", "name": "Stage", "type": "stage",
        "area": [{"x": 5, "y": 0, "w": 3, "h": 3}], "podium": [{"x": 4, "y": 0, "w": 2, "h": 1}]});
    assert!(has_error(&errors_of(&world), "$.zones[0].podium", "podium tile (4, 0) is outside"));
}

#[test]
fn warnings_do_not_stop_a_world_from_loading() {
    let mut world = base();
    // A zone fully enclosed by blocked tiles is legal but unreachable.
    world["collision"]["rows"] = json!(["........", "........", "...#....", "........", "#####...", ".#......"]);
    world["zones"][0]["area"] = json!([{"x": 0, "y": 5}]);
    world["zones"][0]["entry_via"] = json!([]);
    let loaded = load(&world).unwrap_or_else(|e| panic!("{e}"));
    assert!(loaded.warnings().iter().any(|w| w.path == "$.zones[0]" && w.message.contains("nobody can reach")));
}
