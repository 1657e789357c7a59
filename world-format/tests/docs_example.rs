//! The complete example in docs/world-format.md is a real, valid, canonical world file.

use std::path::Path;

use isoplane_world_format::World;

fn read(relative: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn the_documented_example_is_the_tested_file_and_is_valid() {
    let example = read("tests/data/example.world.json");
    let doc = read("../docs/world-format.md");
    let section = doc.split("## A complete example").nth(1).expect("the doc has an example section");
    let block = section.split("```json\n").nth(1).and_then(|rest| rest.split("```").next()).expect("a json block");
    assert_eq!(block, example, "docs/world-format.md's example differs from tests/data/example.world.json");

    let world = World::from_json(&example).unwrap_or_else(|e| panic!("{e}"));
    assert!(world.warnings().is_empty(), "{:?}", world.warnings());
    assert!(world.to_json_pretty() == example, "the example is not in the canonical layout");
}
