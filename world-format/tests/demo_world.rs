//! The demo world that ships with Isoplane: valid, complete, canonical, and its assets
//! present with the bytes their IDs name.

use std::collections::HashSet;
use std::path::Path;

use isoplane_world_format::{DEMO_WORLD, ObjectKind, World, ZONE_TYPES};

fn demo() -> World {
    World::from_json(DEMO_WORLD).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn demo_world_is_valid_without_warnings() {
    let world = demo();
    assert!(world.warnings().is_empty(), "{:?}", world.warnings());
}

#[test]
fn demo_world_has_every_zone_type_and_object_kind() {
    let world = demo();
    let zone_types: HashSet<&str> = world.zones().map(|z| z.kind.type_name()).collect();
    for zone_type in ZONE_TYPES {
        assert!(zone_types.contains(zone_type), "no {zone_type} zone in the demo world");
    }
    let kinds: HashSet<ObjectKind> = world.file().objects.iter().map(|o| o.kind).collect();
    for kind in ObjectKind::ALL {
        assert!(kinds.contains(&kind), "no {kind:?} in the demo world");
    }
    assert!(world.zones().any(|z| !z.entry_via.is_empty()), "no door-only zone");
    assert!(world.file().objects.iter().any(|o| !o.requires.is_empty()), "no interaction chain");
    assert!(!world.file().collision.walls.is_empty(), "no thin walls");
    assert!(world.file().grid.levels > 1, "no height levels");
    assert!(!world.file().exits.is_empty(), "no exit");
}

#[test]
fn demo_world_file_is_in_canonical_layout() {
    // Not assert_eq: a full diff of the world would bury the message.
    assert!(demo().to_json_pretty() == DEMO_WORLD, "run `cargo run -- world fmt worlds/demo/world.json`");
}

#[test]
fn demo_world_assets_exist_with_matching_content() {
    let folder = Path::new(env!("CARGO_MANIFEST_DIR")).join("../worlds/demo/assets");
    for tileset in &demo().file().tilesets {
        let path = folder.join(format!("{}.svg", tileset.image));
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(tileset.image.matches(&bytes), "{} does not hash to its name", path.display());
    }
}
