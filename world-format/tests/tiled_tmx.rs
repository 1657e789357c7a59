//! Tiled's XML maps (`.tmx`), checked against Tiled itself: the example maps Debian's
//! `tiled` package ships (in /usr/share/doc/tiled/examples, or `ISOPLANE_TILED_EXAMPLES`)
//! import and validate, and each imports to the same world, assets and report as the
//! `.tmj` that `tiled --export-map` writes from it during the test. Isoplane's own example
//! office, re-encoded in every layer format Tiled writes (CSV, base64, zlib, gzip, chunks of
//! an infinite map) and saved as `.tmx` by Tiled, does the same.
//!
//! Tiled's files are read where the package installed them, never copied into the
//! repository. Without Tiled every test here fails in one line saying what to install
//! (`./test.sh` installs it).
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed expectation is a failed test

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine;
use isoplane_world_format::tiled::{ImportError, ImportOptions, Imported, import_tiled, import_tiled_tmx};
use serde_json::{Value, json};

/// Tiled's example folder, copied into a fresh folder (gzipped maps unpacked), or the
/// one-line reason the test cannot run.
fn examples() -> tempfile::TempDir {
    let source = std::env::var_os("ISOPLANE_TILED_EXAMPLES")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/share/doc/tiled/examples"));
    assert!(
        source.join("desert.tmx").is_file() && tiled_runs(),
        "Debian's tiled is not installed (its examples in {} and `tiled --export-map`): `apt-get install tiled` (`./test.sh` installs it)",
        source.display()
    );
    let copy = tempfile::tempdir().unwrap();
    copy_unpacked(&source, copy.path());
    copy
}

fn tiled_runs() -> bool {
    Command::new("tiled")
        .arg("--version")
        .env("QT_QPA_PLATFORM", "offscreen")
        .output()
        .is_ok_and(|o| o.status.success())
}

fn copy_unpacked(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().into_owned();
        if entry.file_type().unwrap().is_dir() {
            copy_unpacked(&entry.path(), &to.join(&name));
        } else if let Some(unpacked) = name.strip_suffix(".gz") {
            let mut text = Vec::new();
            flate2::read::GzDecoder::new(std::fs::File::open(entry.path()).unwrap()).read_to_end(&mut text).unwrap();
            std::fs::write(to.join(unpacked), text).unwrap();
        } else {
            std::fs::copy(entry.path(), to.join(&name)).unwrap();
        }
    }
}

/// Saves `from` as `to` with Tiled itself (the format follows `to`'s extension).
fn tiled_export(from: &Path, to: &Path) {
    let out = Command::new("tiled")
        .arg("--export-map")
        .arg(from)
        .arg(to)
        .env("QT_QPA_PLATFORM", "offscreen")
        .env("XDG_RUNTIME_DIR", std::env::temp_dir())
        .output()
        .unwrap();
    assert!(
        out.status.success() && to.is_file(),
        "tiled --export-map {}: {}",
        from.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Imports `path` by its extension, with the files named in `missing` hidden.
fn import(path: &Path, missing: &[&str]) -> Result<Imported, ImportError> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let folder = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let read_file = |relative: &str| {
        let file = folder.join(relative);
        if missing.iter().any(|m| file.ends_with(m)) { None } else { std::fs::read(file).ok() }
    };
    if path.extension().is_some_and(|e| e == "tmx") {
        import_tiled_tmx(&text, &ImportOptions::default(), &read_file)
    } else {
        import_tiled(&text, &ImportOptions::default(), &read_file)
    }
}

fn imported(path: &Path) -> Imported {
    import(path, &[]).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The `.tmx` and the `.tmj` Tiled wrote from it import to the same world, assets and report.
fn same_as_tileds_export(tmx: &Path, tmj: &Path) -> Imported {
    let xml = imported(tmx);
    let json = imported(tmj);
    let name = tmx.display();
    assert_eq!(xml.world.to_json_pretty(), json.world.to_json_pretty(), "{name}");
    assert_eq!(xml.assets, json.assets, "{name}");
    assert_eq!(xml.report, json.report, "{name}");
    xml
}

/// Tiled's examples that Isoplane imports (orthogonal and isometric).
const EXAMPLES: &[&str] =
    &["desert", "isometric_grass_and_water", "perspective_walls", "sewers", "orthogonal-outside", "rpg/island"];

#[test]
fn each_of_tileds_examples_imports_to_the_same_world_as_tileds_own_json_export() {
    let dir = examples();
    for map in EXAMPLES {
        let tmx = dir.path().join(format!("{map}.tmx"));
        let tmj = dir.path().join(format!("{map}.tmj"));
        tiled_export(&tmx, &tmj);
        let xml = same_as_tileds_export(&tmx, &tmj);
        if *map == "perspective_walls" {
            // Its old .tsx gives neither tile count nor image size: reported, no tiles.
            let report = xml.report.to_string();
            assert!(report.contains("\"perspective_walls\": `imagewidth`/`imageheight` are missing"), "{report}");
            continue;
        }
        assert!(!xml.assets.is_empty(), "{map}: its tileset image is read");
        assert!(
            xml.world.file().layers.iter().any(|layer| layer.tiles.iter().any(|gid| *gid != 0)),
            "{map}: it draws tiles"
        );
    }
}

#[test]
fn tileds_examples_import_with_what_they_cannot_keep_reported() {
    let dir = examples();
    let island = imported(&dir.path().join("rpg/island.tmx"));
    let file = island.world.file();
    assert_eq!((file.grid.width, file.grid.height), (58, 47));
    assert!(file.spawns.iter().any(|s| s.id == "starting-point"), "{:?}", file.spawns);
    assert!(island.report.to_string().contains("\"Exit\""), "{}", island.report);

    let desert = imported(&dir.path().join("desert.tmx")).report.to_string();
    assert!(desert.contains("read from Tiled XML (.tsx)"), "{desert}");
    assert!(desert.contains("margin") || desert.contains("spacing"), "{desert}");

    let outside = imported(&dir.path().join("orthogonal-outside.tmx")).report.to_string();
    assert!(outside.contains("enemyTint"), "{outside}");
    assert!(outside.contains("tile object"), "{outside}");

    let iso = imported(&dir.path().join("isometric_grass_and_water.tmx"));
    assert_eq!(format!("{:?}", iso.world.file().grid.orientation), "Isometric");

    let sewers = import(&dir.path().join("sewers.tmx"), &["sewer_tileset.png"]).unwrap_or_else(|e| panic!("{e}"));
    assert!(sewers.assets.is_empty());
    assert!(sewers.report.to_string().contains("sewer_tileset.png"), "{}", sewers.report);
}

#[test]
fn tileds_hexagonal_and_staggered_examples_are_refused_as_unsupported() {
    let dir = examples();
    for map in ["hexagonal-mini.tmx", "isometric_staggered_grass_and_water.tmx"] {
        match import(&dir.path().join(map), &[]) {
            Err(ImportError::Unsupported(why)) => {
                assert!(why.contains("hexagonal") || why.contains("staggered"), "{map}: {why}")
            }
            other => panic!("{map}: {:?}", other.map(|i| i.report)),
        }
    }
}

/// The office's layers with their tiles in `kind`'s encoding, as Tiled's JSON writes them.
fn reencoded(map: &Value, kind: &str) -> Value {
    let mut map = map.clone();
    let (width, height) = (map["width"].as_u64().unwrap(), map["height"].as_u64().unwrap());
    if kind == "infinite" {
        map["infinite"] = json!(true);
    }
    for layer in map["layers"].as_array_mut().unwrap() {
        if layer["type"] != "tilelayer" {
            continue;
        }
        let gids: Vec<u32> = layer["data"].as_array().unwrap().iter().map(|g| g.as_u64().unwrap() as u32).collect();
        let packed = |compress: &dyn Fn(&[u8]) -> Vec<u8>| {
            let raw: Vec<u8> = gids.iter().flat_map(|g| g.to_le_bytes()).collect();
            json!(base64::engine::general_purpose::STANDARD.encode(compress(&raw)))
        };
        let object = layer.as_object_mut().unwrap();
        match kind {
            "base64" => {
                object.insert("encoding".into(), json!("base64"));
                object.insert("data".into(), packed(&|raw| raw.to_vec()));
            }
            "zlib" | "gzip" => {
                object.insert("encoding".into(), json!("base64"));
                object.insert("compression".into(), json!(kind));
                object.insert(
                    "data".into(),
                    packed(&|raw| {
                        let mut out = Vec::new();
                        if kind == "zlib" {
                            let mut e = flate2::write::ZlibEncoder::new(&mut out, flate2::Compression::default());
                            e.write_all(raw).unwrap();
                            e.finish().unwrap();
                        } else {
                            let mut e = flate2::write::GzEncoder::new(&mut out, flate2::Compression::default());
                            e.write_all(raw).unwrap();
                            e.finish().unwrap();
                        }
                        out
                    }),
                );
            }
            "infinite" => {
                let (w, h) = (width as usize, height as usize);
                let mut chunks = Vec::new();
                for cy in (0..h).step_by(16) {
                    for cx in (0..w).step_by(16) {
                        let cells: Vec<u32> = (cy..cy + 16)
                            .flat_map(|y| (cx..cx + 16).map(move |x| (x, y)))
                            .map(|(x, y)| if x < w && y < h { gids[y * w + x] } else { 0 })
                            .collect();
                        if cells.iter().any(|g| *g != 0) {
                            chunks.push(json!({"x": cx, "y": cy, "width": 16, "height": 16, "data": cells}));
                        }
                    }
                }
                object.remove("data");
                object.insert("chunks".into(), json!(chunks));
                object.insert("startx".into(), json!(0));
                object.insert("starty".into(), json!(0));
            }
            _ => {}
        }
    }
    map
}

#[test]
fn every_layer_format_tiled_writes_reads_the_same_from_xml_as_from_json() {
    // Tiled must be here, as for its examples.
    drop(examples());
    let dir = tempfile::tempdir().unwrap();
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tools/tiled/example");
    std::fs::copy(example.join("office-tiles.png"), dir.path().join("office-tiles.png")).unwrap();
    let office: Value = serde_json::from_str(&std::fs::read_to_string(example.join("office.tmj")).unwrap()).unwrap();
    let plain = imported(&example.join("office.tmj"));
    for kind in ["csv", "base64", "zlib", "gzip", "infinite"] {
        let tmj = dir.path().join(format!("office-{kind}.tmj"));
        let tmx = dir.path().join(format!("office-{kind}.tmx"));
        std::fs::write(&tmj, serde_json::to_string(&reencoded(&office, kind)).unwrap()).unwrap();
        tiled_export(&tmj, &tmx);
        let xml = same_as_tileds_export(&tmx, &tmj);
        if kind != "infinite" {
            assert_eq!(
                xml.world.to_json_pretty(),
                plain.world.to_json_pretty(),
                "{kind}: the same world as the plain map"
            );
        }
    }
}

#[test]
fn a_broken_tmx_says_what_is_wrong_with_its_xml() {
    let no_files = |_: &str| None;
    let cut = "<map orientation=\"orthogonal\" width=\"2\" height=\"2\" tilewidth=\"8\" tileheight=\"8\"><layer";
    match import_tiled_tmx(cut, &ImportOptions::default(), &no_files) {
        Err(error @ ImportError::NotXml(_)) => assert!(error.to_string().contains("unterminated"), "{error}"),
        other => panic!("{:?}", other.map(|i| i.report)),
    }
    match import_tiled_tmx("{\"type\": \"map\"}", &ImportOptions::default(), &no_files) {
        Err(ImportError::NotXml(_)) => {}
        other => panic!("{:?}", other.map(|i| i.report)),
    }
}
