//! The `isoplane world …` commands as a person runs them: real binary, real files,
//! messages that point at the file, line and field, and exit codes scripts can trust.
//! (This file belongs to the root `isoplane` package, which owns the binary.)
#![allow(clippy::expect_used, clippy::unwrap_used)] // test helpers: a failed expectation is a failed test

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BINARY: &str = env!("CARGO_BIN_EXE_isoplane");

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn isoplane(args: &[&str]) -> Output {
    Command::new(BINARY).args(args).current_dir(repo()).output().expect("the isoplane binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("temporary paths are UTF-8")
}

#[test]
fn demo_describes_the_built_in_world() {
    let out = isoplane(&["demo"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("Isoplane demo office"), "{}", text(&out.stdout));
}

#[test]
fn the_demo_world_validates_with_its_assets() {
    let out = isoplane(&["world", "validate", "worlds/demo/world.json", "--assets", "worlds/demo/assets"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("valid world \"Isoplane demo office\", 24×16 isometric tiles, 7 zones"));
}

#[test]
fn errors_name_the_file_line_column_and_path_and_exit_non_zero() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("broken.world.json");
    let demo = std::fs::read_to_string(repo().join("worlds/demo/world.json")).unwrap();
    let broken = demo.replacen("\"type\": \"silent\"", "\"type\": \"quiet\"", 1).replacen(
        "\"x\": 10, \"y\": 7",
        "\"x\": 0, \"y\": 0",
        1,
    );
    std::fs::write(&file, &broken).unwrap();
    let out = isoplane(&["world", "validate", path_str(&file)]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    let quiet_line = broken.lines().position(|l| l.contains("\"quiet\"")).unwrap() + 1;
    let expected = format!("{}:{quiet_line}:", file.display());
    assert!(
        stderr.contains(&expected) && stderr.contains("error: $.zones[2].type: unknown ZoneType \"quiet\""),
        "{stderr}"
    );
    assert!(stderr.contains("$.spawns[0]: tile (0, 0) is blocked"), "{stderr}");
    assert!(stderr.contains("2 errors; the world was not loaded"), "{stderr}");
}

#[test]
fn unreadable_and_non_json_files_get_clear_errors() {
    let out = isoplane(&["world", "validate", "no/such/file.json"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("cannot read no/such/file.json"), "{}", text(&out.stderr));

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("x.json");
    std::fs::write(&file, "{\"format\": \"isoplane.world\",").unwrap();
    let out = isoplane(&["world", "validate", path_str(&file)]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("not valid JSON"), "{}", text(&out.stderr));
}

#[test]
fn a_missing_or_corrupt_asset_fails_validation_with_assets() {
    let dir = tempfile::tempdir().unwrap();
    let assets = dir.path().join("assets");
    std::fs::create_dir(&assets).unwrap();
    let out = isoplane(&["world", "validate", "worlds/demo/world.json", "--assets", path_str(&assets)]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("missing asset sha256-"), "{}", text(&out.stderr));

    for entry in std::fs::read_dir(repo().join("worlds/demo/assets")).unwrap() {
        let entry = entry.unwrap();
        std::fs::write(assets.join(entry.file_name()), b"not the real bytes").unwrap();
    }
    let out = isoplane(&["world", "validate", "worlds/demo/world.json", "--assets", path_str(&assets)]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("do not hash to"), "{}", text(&out.stderr));
}

#[test]
fn fmt_rewrites_to_the_canonical_layout_and_check_reports_it() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("w.json");
    let demo = std::fs::read_to_string(repo().join("worlds/demo/world.json")).unwrap();
    let value: serde_json::Value = serde_json::from_str(&demo).unwrap();
    std::fs::write(&file, serde_json::to_string(&value).unwrap()).unwrap();

    assert_eq!(isoplane(&["world", "fmt", "--check", path_str(&file)]).status.code(), Some(1));
    assert!(isoplane(&["world", "fmt", path_str(&file)]).status.success());
    assert_eq!(std::fs::read_to_string(&file).unwrap(), demo);
    assert!(isoplane(&["world", "fmt", "--check", path_str(&file)]).status.success());
}

/// Imports a map of the repository into `dir` (world file and `assets/`), asserting that
/// the import succeeds and its world validates with its assets; gives the import's output.
fn import_and_validate(map: &str, dir: &Path) -> (Output, PathBuf) {
    let output = dir.join("imported.world.json");
    let assets = dir.join("assets");
    let out = isoplane(&["world", "import-tiled", map, "-o", path_str(&output), "--assets", path_str(&assets)]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let validated = isoplane(&["world", "validate", path_str(&output), "--assets", path_str(&assets)]);
    assert!(validated.status.success(), "{}", text(&validated.stderr));
    (out, assets)
}

#[test]
fn import_tiled_writes_a_valid_world_and_its_assets_named_by_content_id() {
    let dir = tempfile::tempdir().unwrap();
    let (out, assets) = import_and_validate("world-format/tests/data/tiled/office.tmj", dir.path());
    // What was skipped is reported, naming the object; the summary counts what was kept.
    let report = text(&out.stderr);
    assert!(report.contains("note: layer \"floorLayer\", object \"Meeting Room\" (#1): ignored focusable"), "{report}");
    assert!(report.contains("2 spawn points, 1 website"), "{report}");

    for entry in std::fs::read_dir(&assets).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().into_string().unwrap();
        let id: isoplane_world_format::ContentId = name.split('.').next().unwrap().parse().unwrap();
        assert!(id.matches(&std::fs::read(entry.path()).unwrap()), "{name} is not named by its content");
    }
}

#[test]
fn import_tiled_refuses_what_it_cannot_convert() {
    let dir = tempfile::tempdir().unwrap();
    let map = dir.path().join("staggered.tmj");
    std::fs::write(
        &map,
        r#"{"type": "map", "orientation": "staggered", "width": 2, "height": 2, "tilewidth": 32,
            "tileheight": 16, "layers": [], "tilesets": []}"#,
    )
    .unwrap();
    let output = dir.path().join("out.json");
    let out = isoplane(&["world", "import-tiled", path_str(&map), "-o", path_str(&output)]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("staggered"), "{}", text(&out.stderr));
    assert!(!output.exists(), "nothing is written when the import fails");

    // A broken Tiled XML map: the error names the file and what is wrong with it.
    let xml = dir.path().join("office.tmx");
    std::fs::write(&xml, "<?xml version=\"1.0\"?><map orientation=\"orthogonal\"><layer>").unwrap();
    let out = isoplane(&["world", "import-tiled", path_str(&xml), "-o", path_str(&output)]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("office.tmx: error: the map is not readable Tiled XML"), "{stderr}");
    assert!(!output.exists());

    // Neither JSON nor XML by its name: the answer says which files are read.
    let other = dir.path().join("office.txt");
    std::fs::write(&other, "{}").unwrap();
    let out = isoplane(&["world", "import-tiled", path_str(&other), "-o", path_str(&output)]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("(.tmx, .tmj or .json)"), "{}", text(&out.stderr));
}

#[test]
fn import_tiled_reads_tileds_xml_maps() {
    let dir = tempfile::tempdir().unwrap();
    let (out, assets) = import_and_validate("tools/tiled/example/office.tmx", dir.path());
    assert!(text(&out.stdout).contains("1 image asset(s)"), "{}", text(&out.stdout));
    assert_eq!(std::fs::read_dir(&assets).unwrap().count(), 1);
}

/// One HTTP/1.1 request over a raw socket (the binary's tests need no HTTP client).
fn http_request(address: &str, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(address).expect("the server accepts connections");
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}

fn http_get(address: &str, path: &str) -> String {
    http_request(address, "GET", path, &[], b"")
}

/// Starts `isoplane` on ephemeral ports with its data in `data`; returns the child and
/// the signaling and asset server addresses it printed.
fn start_isoplane(data: &Path) -> (std::process::Child, String, String) {
    use std::io::{BufRead, BufReader};
    let mut child = Command::new(BINARY)
        .env("ISOPLANE_SIGNALING_LISTEN", "127.0.0.1:0")
        .env("ISOPLANE_ASSETS_LISTEN", "127.0.0.1:0")
        .env("ISOPLANE_ASSETS_DATA_DIR", data)
        .env("ISOPLANE_TURN_LISTEN_UDP", "127.0.0.1:0")
        .env("ISOPLANE_TURN_LISTEN_TCP", "127.0.0.1:0")
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("isoplane starts");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines().map_while(Result::ok);
    let mut after = |marker: &str| {
        lines
            .find_map(|line| line.split(marker).nth(1).and_then(|r| r.split('/').next()).map(str::to_owned))
            .unwrap_or_else(|| panic!("isoplane prints {marker}"))
    };
    let signaling = after("signaling: ws://");
    let assets = after("assets: http://");
    // Keep reading, as a terminal would.
    std::thread::spawn(move || lines.for_each(drop));
    (child, signaling, assets)
}

#[test]
fn without_arguments_it_runs_signaling_and_assets_with_the_demo_world_and_dev_tokens() {
    let data = tempfile::tempdir().unwrap();
    let (mut child, address, assets) = start_isoplane(data.path());
    let assets_ready = http_get(&assets, "/readyz");
    let health = http_get(&address, "/healthz");
    let token = http_get(&address, "/v1/dev/token?name=Ada");
    let world = http_get(&address, "/v1/worlds/demo");
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    assert!(token.starts_with("HTTP/1.1 200") && token.contains("\"token\":\"ey"), "{token}");
    assert!(world.contains("Isoplane demo office"), "{world}");
    assert!(assets_ready.starts_with("HTTP/1.1 200"), "{assets_ready}");
}

#[test]
fn a_world_published_to_the_asset_server_is_served_after_a_restart() {
    let data = tempfile::tempdir().unwrap();
    let (mut child, signaling, assets) = start_isoplane(data.path());
    let response = http_get(&signaling, "/v1/dev/token?name=Admin&admin=true");
    let body = response.split("\r\n\r\n").nth(1).unwrap();
    let token = serde_json::from_str::<serde_json::Value>(body).unwrap()["token"].as_str().unwrap().to_owned();
    let bearer = format!("Bearer {token}");

    let folder = repo().join("worlds/demo/assets");
    let image = std::fs::read_dir(&folder).unwrap().next().unwrap().unwrap().path();
    let upload = http_request(
        &assets,
        "POST",
        "/v1/assets",
        &[("Authorization", &bearer), ("Content-Type", "image/svg+xml")],
        &std::fs::read(image).unwrap(),
    );
    assert!(upload.starts_with("HTTP/1.1 201"), "{upload}");

    let mut world: serde_json::Value = serde_json::from_str(isoplane_world_format::DEMO_WORLD).unwrap();
    world["name"] = serde_json::json!("Published office");
    let publish = serde_json::json!({"base_version": 0, "world": world}).to_string();
    let published = http_request(
        &assets,
        "POST",
        "/v1/workspaces/default/worlds/office/versions",
        &[("Authorization", &bearer), ("Content-Type", "application/json")],
        publish.as_bytes(),
    );
    assert!(published.starts_with("HTTP/1.1 201"), "{published}");
    child.kill().unwrap();
    child.wait().unwrap();

    let (mut child, signaling, _) = start_isoplane(data.path());
    let served = http_get(&signaling, "/v1/worlds/office");
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(served.starts_with("HTTP/1.1 200") && served.contains("Published office"), "{served}");
}
