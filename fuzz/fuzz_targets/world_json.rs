//! Any bytes given to the world parser: never a panic; a world that loads must write
//! canonical JSON that loads again to the same world, and every reported path must be
//! something the locator can handle.
#![no_main]

use isoplane_world_format::{World, locate};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    match World::from_json(text) {
        Ok(world) => {
            let canonical = world.to_json_pretty();
            let again = World::from_json(&canonical).expect("canonical JSON of a valid world must load");
            assert_eq!(again.file(), world.file());
        }
        Err(errors) => {
            assert!(!errors.errors.is_empty());
            for problem in &errors.errors {
                let _ = locate(text, &problem.path);
            }
        }
    }
});
