//! Any bytes given to the Tiled importer, as a JSON map and as an XML (`.tmx`) map (with
//! an external tileset file that is fuzzed too): never a panic, and an import that succeeds yields a world that validates again.
#![no_main]

use isoplane_world_format::World;
use isoplane_world_format::tiled::{ImportOptions, import_tiled, import_tiled_tmx};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Before the first NUL byte is the map; after it, the bytes of any file the map
    // refers to (without a NUL, referenced files are missing).
    let (map, file) = match data.iter().position(|&b| b == 0) {
        Some(split) => (&data[..split], Some(&data[split + 1..])),
        None => (data, None),
    };
    let Ok(map) = std::str::from_utf8(map) else { return };
    let read_file = |_: &str| file.map(<[u8]>::to_vec);
    let options = ImportOptions { name: None };
    let imports = [import_tiled(map, &options, &read_file), import_tiled_tmx(map, &options, &read_file)];
    for imported in imports.into_iter().flatten() {
        World::from_json(&imported.world.to_json_pretty()).expect("an imported world must load again");
    }
});
