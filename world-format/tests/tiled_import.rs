//! The Tiled importer against small hand-made maps (in `tests/data/tiled/`): a
//! WorkAdventure-style orthogonal office, an isometric map drawn with Isoplane's own
//! classes, and the cases where a map is refused or partly imported.

use std::path::Path;

use isoplane_world_format::tiled::{ImportError, ImportOptions, Imported, import_tiled};
use isoplane_world_format::{
    ContentId, Facing, GID_FLIP_DIAGONAL, GID_FLIP_HORIZONTAL, GID_FLIP_VERTICAL, LayerDepth, MoveRejection,
    ObjectKind, Orientation, Position, Rect, Website, WebsiteTrigger, World, ZoneKind,
};
use serde_json::json;

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/tiled");

/// Reads files next to the test maps, as the CLI reads them next to the map file.
fn read_data(path: &str) -> Option<Vec<u8>> {
    std::fs::read(Path::new(DATA).join(path)).ok()
}

fn no_files(_: &str) -> Option<Vec<u8>> {
    None
}

fn import_file(name: &str) -> Imported {
    let text = std::fs::read_to_string(Path::new(DATA).join(name)).unwrap_or_else(|e| panic!("reading {name}: {e}"));
    match import_tiled(&text, &ImportOptions::default(), &read_data) {
        Ok(imported) => imported,
        Err(e) => panic!("{name} did not import: {e}"),
    }
}

fn import_json(map: &serde_json::Value, read_file: &dyn Fn(&str) -> Option<Vec<u8>>) -> Result<Imported, ImportError> {
    import_tiled(&map.to_string(), &ImportOptions::default(), read_file)
}

fn report_mentions(imported: &Imported, words: &[&str]) -> bool {
    imported.report.notes.iter().any(|n| words.iter().all(|w| n.contains(w)))
}

fn zone_id(world: &World, x: i64, y: i64) -> &str {
    let zone = world.zone_at(x, y).unwrap_or_else(|| panic!("({x}, {y}) is off the grid"));
    world.zone(zone).id
}

fn tile_at(world: &World, layer: &str, x: usize, y: usize) -> u32 {
    let file = world.file();
    let layer = file.layers.iter().find(|l| l.name == layer).unwrap_or_else(|| panic!("no layer {layer}"));
    layer.tiles[y * file.grid.width as usize + x]
}

/// A small orthogonal map: `layers` on a `width`×`height` grid of 32-pixel tiles, with
/// one embedded tileset whose image is `tiles.png`.
fn small_map(width: u32, height: u32, layers: serde_json::Value) -> serde_json::Value {
    json!({
        "type": "map", "orientation": "orthogonal", "infinite": false,
        "width": width, "height": height, "tilewidth": 32, "tileheight": 32,
        "tilesets": [{"firstgid": 1, "name": "office", "image": "tiles.png", "imagewidth": 128, "imageheight": 64,
                      "tilewidth": 32, "tileheight": 32, "columns": 4, "tilecount": 8}],
        "layers": layers
    })
}

fn filled(width: u32, height: u32, gid: u32) -> Vec<u32> {
    vec![gid; (width * height) as usize]
}

fn area(id: u32, name: &str, (x, y, w, h): (u32, u32, u32, u32), properties: serde_json::Value) -> serde_json::Value {
    json!({"id": id, "name": name, "type": "area", "x": x * 32, "y": y * 32, "width": w * 32, "height": h * 32, "properties": properties})
}

#[test]
fn workadventure_office_imports_with_collision_zones_exits_and_spawns() {
    let imported = import_file("office.tmj");
    let world = &imported.world;
    let file = world.file();

    assert_eq!(file.name, "Test Office", "the mapName property names the world");
    assert_eq!(
        (file.grid.orientation, file.grid.width, file.grid.height, file.grid.tile_width, file.grid.tile_height),
        (Orientation::Orthogonal, 20, 15, 32, 32)
    );
    assert_eq!((file.grid.levels, file.grid.level_height), (1, 16));

    // The tileset keeps Tiled's firstgid and names its image by content ID.
    let png = std::fs::read(Path::new(DATA).join("tiles.png")).unwrap();
    assert_eq!(imported.assets.len(), 1);
    assert_eq!(imported.assets[0].id, ContentId::of_bytes(&png));
    assert_eq!(imported.assets[0].source, "tiles.png");
    let tileset = &file.tilesets[0];
    assert_eq!(
        (tileset.first_gid, tileset.columns, tileset.tile_count, tileset.image.clone()),
        (1, 4, 8, ContentId::of_bytes(&png))
    );

    // `collisions` and `start` are not drawn; the group's name and opacity fold in; the
    // layer after floorLayer is drawn above avatars.
    let layers: Vec<(&str, LayerDepth)> = file.layers.iter().map(|l| (l.name.as_str(), l.depth)).collect();
    assert_eq!(
        layers,
        vec![
            ("floor", LayerDepth::Below),
            ("walls", LayerDepth::Below),
            ("furniture/tables", LayerDepth::Below),
            ("roof", LayerDepth::Above)
        ]
    );
    assert!((file.layers[2].opacity - 0.4).abs() < 1e-6);

    // Flip flags survive the import.
    assert_eq!(tile_at(world, "furniture/tables", 3, 3), GID_FLIP_HORIZONTAL | 4);
    assert_eq!(tile_at(world, "furniture/tables", 4, 3), GID_FLIP_VERTICAL | 4);
    assert_eq!(tile_at(world, "furniture/tables", 5, 3), GID_FLIP_DIAGONAL | GID_FLIP_HORIZONTAL | 4);

    // Walls carry `collides`, the tables carry it as the string "true", the hidden
    // collisions layer blocks on its own; the gap in the middle wall stays open.
    for (x, y) in [(0, 0), (19, 14), (10, 3), (6, 5), (7, 5), (15, 10), (16, 10)] {
        assert!(!world.is_walkable(x, y), "({x}, {y}) should be blocked");
    }
    for (x, y) in [(10, 7), (5, 5), (3, 3), (1, 1)] {
        assert!(world.is_walkable(x, y), "({x}, {y}) should be walkable");
    }

    // Areas become zones with the right type and tiles.
    let meeting = world.zone(world.zone_at(12, 2).unwrap());
    assert_eq!((meeting.id, meeting.name), ("meeting-room", "Daily Standup"));
    assert!(matches!(meeting.kind, ZoneKind::MeetingRoom { .. }));
    assert_eq!(file.zones[0].area, vec![Rect { x: 11, y: 1, w: 8, h: 5 }]);
    let library = world.zone(world.zone_at(11, 9).unwrap());
    assert_eq!(library.id, "library");
    assert_eq!(library.kind, &ZoneKind::Silent);
    assert_eq!(file.zones[1].area, vec![Rect { x: 11, y: 9, w: 6, h: 4 }]);
    assert_eq!(zone_id(world, 17, 12), "default");
    assert_eq!(zone_id(world, 10, 7), "default");

    // exitUrl leads to the world named after the target map file, at its fragment.
    let exit = world.exit_at(2, 13).unwrap();
    assert_eq!((exit.id.as_str(), exit.world.as_str(), exit.spawn.as_deref()), ("to-floor-1", "floor1", Some("lobby")));
    assert_eq!(exit.area, vec![Rect { x: 1, y: 13, w: 2, h: 1 }]);

    // The start layer's middle tile is the default spawn; the `start` area is another.
    let spawn = world.default_spawn();
    assert_eq!((spawn.id.as_str(), spawn.x, spawn.y, spawn.facing), ("start", 3, 7, Facing::South));
    let lounge = world.spawn("lounge").unwrap();
    assert!(Rect { x: 5, y: 10, w: 2, h: 2 }.contains(lounge.x, lounge.y));
    assert_eq!(file.spawns.len(), 2);
    assert!(file.objects.is_empty());

    // openWebsite with an `onaction` trigger: a website offered on request.
    let website = Website {
        id: "website".into(),
        name: "Website".into(),
        url: "https://example.org".into(),
        area: vec![Rect { x: 2, y: 2, w: 1, h: 1 }],
        trigger: WebsiteTrigger::Action,
    };
    assert_eq!(world.websites(), [website]);

    // What was left out is in the report, by name.
    assert!(report_mentions(&imported, &["\"Meeting Room\"", "focusable", "camera"]), "{:#?}", imported.report.notes);
    assert!(report_mentions(&imported, &["configuration", "variables", "\"doorOpen\""]));
    assert!(report_mentions(&imported, &["mapCopyright", "CC-BY-SA 3.0"]));
    assert!(report_mentions(&imported, &["script"]));
    assert!(report_mentions(&imported, &["3 start tiles", "(3, 7)"]));
    let summary = imported.report.notes.iter().rev().find(|n| n.starts_with("imported")).unwrap();
    assert_eq!(
        summary,
        "imported 6 tile layers (4 drawn), 2 zones, 0 exclusive objects, 1 exit, 2 spawn points, 1 website"
    );

    // The converted world is a normal world: it survives a JSON round trip.
    let reread = World::from_json(&world.to_json_pretty()).unwrap();
    assert_eq!(reread.file(), file);
}

#[test]
fn isometric_map_with_isoplane_classes_external_tileset_and_compressed_layer() {
    let imported = import_file("iso_campus.tmj");
    let world = &imported.world;
    let file = world.file();
    assert_eq!((file.grid.orientation, file.grid.width, file.grid.height), (Orientation::Isometric, 12, 10));
    assert_eq!((file.grid.tile_width, file.grid.tile_height), (64, 32));

    // The external tileset's image is found next to the tileset file.
    let png = std::fs::read(Path::new(DATA).join("sets/iso.png")).unwrap();
    assert_eq!(imported.assets[0].source, "sets/iso.png");
    assert_eq!(file.tilesets[0].image, ContentId::of_bytes(&png));
    assert_eq!(file.tilesets[0].name, "iso blocks");

    // The base64 + zlib floor decodes; depth comes from the name and the property.
    assert!(file.layers[0].tiles.iter().all(|&gid| gid == 1));
    let depths: Vec<LayerDepth> = file.layers.iter().map(|l| l.depth).collect();
    assert_eq!(depths, vec![LayerDepth::Below, LayerDepth::Sorted, LayerDepth::Sorted]);

    // Object positions divide by the tile height on both axes in isometric maps.
    let meeting = world.zone_by_id("meeting-room").unwrap();
    let meeting_zone = &file.zones[usize::from(meeting.0) - 1];
    assert_eq!(meeting_zone.area, vec![Rect { x: 6, y: 0, w: 6, h: 5 }]);
    assert_eq!(meeting_zone.kind, ZoneKind::MeetingRoom { sfu_threshold: 4, capacity: Some(6) });
    assert_eq!(meeting_zone.entry_via, vec!["front-door".to_string()]);
    assert_eq!(world.zone_at(8, 2), Some(meeting));
    assert_eq!(world.zone_at(4, 2).map(|z| world.zone(z).id), Some("stage"));
    assert_eq!(world.zone_at(5, 2).map(|z| world.zone(z).id), Some("default"));

    let stage = world.zone(world.zone_by_id("stage").unwrap());
    assert_eq!(stage.kind, &ZoneKind::Stage { podium: vec![Rect { x: 1, y: 0, w: 3, h: 1 }], max_speakers: 2 });
    let booth = world.zone(world.zone_by_id("booth").unwrap());
    assert_eq!(booth.kind, &ZoneKind::Private { capacity: 2, lockable: true });
    assert_eq!(world.zone_at(10, 8), Some(booth.index));

    // Exclusive objects, with the seat's blocked chair tile made walkable.
    let door = world.object_at(8, 5).unwrap();
    assert_eq!((world.object(door).id.as_str(), world.object(door).kind), ("front-door", ObjectKind::Door));
    let chair = world.object_at(7, 2).unwrap();
    let seat = world.object(chair);
    assert_eq!((seat.id.as_str(), seat.kind, seat.facing), ("chair-1", ObjectKind::Seat, Some(Facing::SouthEast)));
    assert_eq!(seat.requires, vec!["front-door".to_string()]);
    assert_eq!(world.object_requires(chair), &[door]);
    assert!(world.is_walkable(7, 2));
    assert!(report_mentions(&imported, &["\"Chair 1\"", "made walkable", "(7, 2)"]), "{:#?}", imported.report.notes);
    let corridor = world.object_by_id("corridor").unwrap();
    assert_eq!(world.object(corridor).kind, ObjectKind::Passage);
    assert_eq!(world.object(corridor).area, vec![Rect { x: 2, y: 7, w: 3, h: 1 }]);

    let exit = world.exit_at(0, 9).unwrap();
    assert_eq!(
        (exit.id.as_str(), exit.world.as_str(), exit.spawn.as_deref()),
        ("elevator", "lobby-world", Some("main"))
    );
    let spawn = world.default_spawn();
    assert_eq!((spawn.id.as_str(), spawn.x, spawn.y), ("entrance", 6, 8));

    // Walking in through the door is allowed; the wall beside it blocks.
    let through_door = world.check_path(Position::tile_center(8, 7), Position::tile_center(8, 3)).unwrap();
    assert_eq!(through_door.zone, meeting);
    assert!(through_door.touched.contains(door));
    assert!(matches!(
        world.check_path(Position::tile_center(7, 7), Position::tile_center(7, 3)),
        Err(MoveRejection::Blocked { tile: (7, 5) })
    ));
}

#[test]
fn staggered_and_hexagonal_maps_are_refused() {
    for orientation in ["staggered", "hexagonal"] {
        let mut map = small_map(4, 4, json!([]));
        map["orientation"] = json!(orientation);
        match import_json(&map, &no_files) {
            Err(ImportError::Unsupported(why)) => {
                assert!(why.contains(orientation) && why.contains("isometric"), "{why}")
            }
            other => panic!("{orientation}: {other:?}"),
        }
    }
}

#[test]
fn text_that_is_not_a_map_is_refused() {
    assert!(matches!(
        import_tiled("{\"layers\": [", &ImportOptions::default(), &no_files),
        Err(ImportError::NotJson(_))
    ));
    assert!(matches!(import_tiled("[1, 2]", &ImportOptions::default(), &no_files), Err(ImportError::NotAMap(_))));
    let tileset = std::fs::read_to_string(Path::new(DATA).join("sets/iso.tsj")).unwrap();
    match import_tiled(&tileset, &ImportOptions::default(), &no_files) {
        Err(ImportError::NotAMap(why)) => assert!(why.contains("tileset"), "{why}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_missing_tileset_image_leaves_its_tiles_empty_and_says_so() {
    let map = small_map(
        3,
        3,
        json!([{"type": "tilelayer", "name": "floor", "width": 3, "height": 3, "data": filled(3, 3, 2)}]),
    );
    let imported = import_json(&map, &no_files).unwrap();
    let file = imported.world.file();
    assert!(file.tilesets.is_empty() && imported.assets.is_empty());
    assert_eq!(file.layers[0].tiles, vec![0; 9]);
    assert!(
        report_mentions(&imported, &["tileset \"office\"", "tiles.png", "not found"]),
        "{:#?}",
        imported.report.notes
    );
    assert!(report_mentions(&imported, &["layer \"floor\"", "9 tiles from tilesets that could not be imported"]));
    // With nothing to mark a start, the spawn point is the centre tile.
    assert_eq!((imported.world.default_spawn().x, imported.world.default_spawn().y), (1, 1));
    assert!(report_mentions(&imported, &["no start layer", "(1, 1)"]));
}

#[test]
fn overlapping_areas_keep_the_first_and_report_the_rest() {
    let objects = json!([
        area(1, "Quiet", (0, 0, 4, 4), json!([{"name": "silent", "type": "bool", "value": true}])),
        area(2, "Call", (2, 2, 4, 4), json!([{"name": "jitsiRoom", "type": "string", "value": "call"}])),
        area(3, "Inside Quiet", (1, 1, 2, 2), json!([{"name": "silent", "type": "bool", "value": true}])),
    ]);
    let map = small_map(8, 8, json!([{"type": "objectgroup", "name": "floorLayer", "objects": objects}]));
    let imported = import_json(&map, &read_data).unwrap();
    let world = &imported.world;
    assert_eq!(zone_id(world, 3, 3), "quiet", "the first area keeps the shared tiles");
    assert_eq!(zone_id(world, 4, 4), "call");
    assert_eq!(zone_id(world, 2, 5), "call");
    assert_eq!(world.file().zones.len(), 2, "an area left without tiles is dropped");
    assert!(
        report_mentions(&imported, &["\"Call\"", "4 tiles overlap zone \"quiet\"", "(2, 2)"]),
        "{:#?}",
        imported.report.notes
    );
    assert!(report_mentions(&imported, &["\"Inside Quiet\"", "no tile left"]));
}

#[test]
fn polygon_areas_cover_the_tiles_whose_centres_are_inside() {
    // A right triangle from (0, 0) to (4.5, 0) to (0, 4.5) tiles, placed at tile (2, 1).
    let polygon = json!({"id": 1, "name": "Corner", "class": "zone", "x": 64, "y": 32, "width": 0, "height": 0,
        "polygon": [{"x": 0, "y": 0}, {"x": 144, "y": 0}, {"x": 0, "y": 144}],
        "properties": [{"name": "zoneType", "type": "string", "value": "silent"}]});
    let map = small_map(10, 10, json!([{"type": "objectgroup", "name": "zones", "objects": [polygon]}]));
    let imported = import_json(&map, &read_data).unwrap();
    let world = &imported.world;
    let inside: Vec<(u32, u32)> = (0..10u32)
        .flat_map(|y| (0..10u32).map(move |x| (x, y)))
        .filter(|&(x, y)| world.zone_at(i64::from(x), i64::from(y)) != world.zone_by_id("default"))
        .collect();
    // Centre (x + .5, y + .5) relative to the corner is inside when x + y + 1 < 4.5.
    let expected: Vec<(u32, u32)> = (0..4u32).flat_map(|y| (0..4 - y).map(move |x| (x + 2, y + 1))).collect();
    assert_eq!(inside, expected);
    // Runs along rows, not one rectangle per tile.
    assert_eq!(world.file().zones[0].area.len(), 4);
}

#[test]
fn an_infinite_map_is_cut_to_its_tiles_and_objects_move_with_it() {
    let chunk = |x: i32, y: i32, data: Vec<u32>| json!({"x": x, "y": y, "width": 2, "height": 2, "data": data});
    let mut map = small_map(
        0,
        0,
        json!([
            {"type": "tilelayer", "name": "floor", "chunks": [chunk(-4, -2, vec![0, 0, 0, 1]), chunk(0, 0, vec![1, 0, 0, 1])]},
            {"type": "objectgroup", "name": "floorLayer", "objects": [
                area(1, "Quiet", (0, 0, 1, 1), json!([{"name": "silent", "type": "bool", "value": true}]))
            ]}
        ]),
    );
    map["infinite"] = json!(true);
    let imported = import_json(&map, &read_data).unwrap();
    let world = &imported.world;
    // Tiles go from (-3, -1) to (1, 1): a 5×3 world whose (0, 0) was Tiled's (-3, -1).
    assert_eq!((world.width(), world.height()), (5, 3));
    assert_eq!(tile_at(world, "floor", 0, 0), 1);
    assert_eq!(tile_at(world, "floor", 3, 1), 1);
    assert_eq!(tile_at(world, "floor", 4, 2), 1);
    assert_eq!(zone_id(world, 3, 1), "quiet", "the area at Tiled's (0, 0) moved to (3, 1)");
    assert!(report_mentions(&imported, &["infinite", "(-3, -1)"]), "{:#?}", imported.report.notes);
}

#[test]
fn a_tsx_tileset_is_read_and_its_collides_tiles_block() {
    let tsx = r#"<?xml version="1.0" encoding="UTF-8"?>
<tileset version="1.10" name="walls" tilewidth="32" tileheight="32" tilecount="4" columns="2">
 <image source="../tiles.png" width="64" height="64"/>
 <tile id="1"><properties><property name="collides" type="bool" value="true"/></properties></tile>
</tileset>"#;
    let read = |path: &str| match path {
        "sets/walls.tsx" => Some(tsx.as_bytes().to_vec()),
        other => read_data(other),
    };
    let mut map =
        small_map(3, 1, json!([{"type": "tilelayer", "name": "walls", "width": 3, "height": 1, "data": [1, 2, 0]}]));
    map["tilesets"] = json!([{"firstgid": 1, "source": "sets/walls.tsx"}]);
    let imported = import_json(&map, &read).unwrap();
    let world = &imported.world;
    assert_eq!(world.file().tilesets[0].name, "walls");
    assert_eq!(imported.assets[0].source, "tiles.png", "the image path is relative to the tileset's folder");
    assert!(world.is_walkable(0, 0) && !world.is_walkable(1, 0));
    assert!(report_mentions(&imported, &["sets/walls.tsx", "XML"]));
}

#[test]
fn layers_that_cannot_be_read_are_skipped_and_reported() {
    let map = small_map(
        2,
        2,
        json!([
            {"type": "tilelayer", "name": "floor", "width": 2, "height": 2, "data": [1, 1, 1, 1]},
            {"type": "tilelayer", "name": "packed", "width": 2, "height": 2, "encoding": "base64", "compression": "zstd", "data": "KLUv/SAQgQAAAQAAAAEAAAABAAAAAQAAAA=="},
            {"type": "imagelayer", "name": "backdrop", "image": "sky.png"},
        ]),
    );
    let imported = import_json(&map, &read_data).unwrap();
    assert_eq!(imported.world.file().layers.len(), 1);
    assert!(report_mentions(&imported, &["layer \"packed\"", "zstd"]));
    assert!(report_mentions(&imported, &["layer \"backdrop\"", "image layers"]));
}

#[test]
fn a_grid_beyond_the_limit_is_refused_by_validation() {
    let map = small_map(5000, 10, json!([]));
    match import_json(&map, &no_files) {
        Err(ImportError::Invalid { errors, .. }) => {
            assert!(errors.errors.iter().any(|p| p.path == "$.grid.width"), "{errors}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn spawns_on_blocked_or_unreachable_tiles_are_moved_or_dropped() {
    // A wall column at x = 3 cuts the map in two; the `start` layer is on the left.
    let mut collisions = filled(6, 4, 0);
    for y in 0..4 {
        collisions[y * 6 + 3] = 1;
    }
    let mut start = filled(6, 4, 0);
    start[6 + 1] = 1;
    let map = small_map(
        6,
        4,
        json!([
            {"type": "tilelayer", "name": "collisions", "width": 6, "height": 4, "data": collisions},
            {"type": "tilelayer", "name": "start", "width": 6, "height": 4, "data": start},
            {"type": "objectgroup", "name": "floorLayer", "objects": [
                area(1, "Far", (4, 1, 1, 1), json!([{"name": "start", "type": "bool", "value": true}])),
                area(2, "Wall Side", (2, 0, 2, 1), json!([{"name": "start", "type": "bool", "value": true}])),
            ]}
        ]),
    );
    let imported = import_json(&map, &read_data).unwrap();
    let world = &imported.world;
    assert_eq!(world.default_spawn().id, "start");
    assert!(world.spawn("far").is_none());
    assert!(report_mentions(&imported, &["\"far\"", "cannot be reached"]), "{:#?}", imported.report.notes);
    // Its area's centre lies on the wall; the free tile of the area is used instead.
    let wall_side = world.spawn("wall-side").unwrap();
    assert_eq!((wall_side.x, wall_side.y), (2, 0));
}

#[test]
fn the_world_name_comes_from_the_options_first() {
    let map = small_map(2, 2, json!([]));
    let options = ImportOptions { name: Some("Head Office".into()) };
    let imported = import_tiled(&map.to_string(), &options, &no_files).unwrap();
    assert_eq!(imported.world.file().name, "Head Office");
    assert_eq!(import_json(&map, &no_files).unwrap().world.file().name, "Imported map");
}

#[test]
fn requirement_loops_and_bad_references_are_dropped_with_a_note() {
    let object = |id: u32, name: &str, class: &str, x: u32, properties: serde_json::Value| json!({"id": id, "name": name, "class": class, "x": x * 32, "y": 0, "width": 32, "height": 32, "properties": properties});
    let requires = |names: &str| json!([{"name": "requires", "type": "string", "value": names}]);
    let objects = json!([
        object(1, "Gate", "door", 0, requires("Bench")),
        object(2, "Bench", "seat", 1, requires("Gate, Ghost")),
        object(3, "Stool", "chair", 2, requires("Stool")),
    ]);
    let map = small_map(4, 2, json!([{"type": "objectgroup", "name": "things", "objects": objects}]));
    let imported = import_json(&map, &read_data).unwrap();
    let file = imported.world.file();
    let requires: Vec<(&str, Vec<String>)> = file.objects.iter().map(|o| (o.id.as_str(), o.requires.clone())).collect();
    assert_eq!(requires, vec![("gate", vec!["bench".into()]), ("bench", vec![]), ("stool", vec![])]);
    assert!(
        report_mentions(&imported, &["object \"Bench\" (#2)", "\"gate\" closes a loop"]),
        "{:#?}",
        imported.report.notes
    );
    assert!(report_mentions(&imported, &["object \"Bench\" (#2)", "\"Ghost\""]));
    assert!(report_mentions(&imported, &["object \"Stool\" (#3)", "requires itself"]));
}

#[test]
fn malformed_maps_are_refused_or_imported_but_never_panic() {
    let huge = json!(9.0e18);
    let cases = [
        json!({"type": "map", "orientation": "orthogonal", "infinite": true, "tilewidth": 32, "tileheight": 32,
               "layers": [{"type": "tilelayer", "name": "far", "chunks": [
                   {"x": huge, "y": -9.0e18, "width": 2, "height": 2, "data": [1, 1, 1, 1]},
                   {"x": 0, "y": 0, "width": 2, "height": 2, "data": [1, 1, 1, 1]}]}]}),
        small_map(3, 3, json!([{"type": "tilelayer", "name": "short", "data": [1, 2]}])),
        small_map(3, 3, json!([{"type": "tilelayer", "name": "bad", "data": [1, -2, "x", 1, 1, 1, 1, 1, 1]}])),
        small_map(
            3,
            3,
            json!([{"type": "tilelayer", "name": "b64", "encoding": "base64", "compression": "gzip", "data": "not base64!"}]),
        ),
        small_map(
            3,
            3,
            json!([{"type": "objectgroup", "name": "o", "properties": "x", "objects": [
                {"id": 1, "name": "far", "type": "area", "x": 1.0e308, "y": -1.0e308, "width": 1.0e308, "height": 5,
                 "properties": [{"name": "silent", "type": "bool", "value": true}]},
                {"id": 2, "name": "empty polygon", "class": "zone", "x": 0, "y": 0, "polygon": []},
                {"id": 3, "name": "a", "class": "door", "x": 0, "y": 0, "width": 32, "height": 32,
                 "properties": [{"name": "requires", "value": "b"}]},
                {"id": 4, "name": "b", "class": "door", "x": 32, "y": 0, "width": 32, "height": 32,
                 "properties": [{"name": "requires", "value": "a"}, {"name": "capacity", "value": "-4"}]},
                {"id": 5, "name": "c", "class": "zone", "x": 0, "y": 64, "width": 96, "height": 32,
                 "properties": [{"name": "zoneType", "value": "stage"}, {"name": "entry_via", "value": "a, nothing"}]},
                "not an object",
            ]}]),
        ),
        json!({"type": "map", "orientation": "isometric", "width": 2, "height": 2, "tilewidth": 64, "tileheight": 32,
               "tilesets": [{"firstgid": 0, "image": "tiles.png"}, {"firstgid": 4294967295u32, "image": "tiles.png",
                              "imagewidth": 4294967295u32, "imageheight": 1, "tilewidth": 1, "tileheight": 1},
                            {"firstgid": 1, "source": "missing.tsj"}, {"firstgid": 1, "image": "tiles.png"}],
               "layers": {"not": "an array"}}),
        json!({"type": "map", "orientation": "orthogonal", "width": -3, "height": 2, "tilewidth": 32, "tileheight": 32}),
        json!({"type": "map", "orientation": "orthogonal", "width": 2, "height": 2, "tilewidth": 0, "tileheight": 32}),
    ];
    for (i, map) in cases.iter().enumerate() {
        match import_json(map, &read_data) {
            Ok(imported) => {
                World::from_json(&imported.world.to_json_pretty()).unwrap_or_else(|e| panic!("case {i}: {e}"));
            }
            Err(error) => assert!(!error.to_string().is_empty(), "case {i}"),
        }
    }
}
