//! `isoplane world watch --publish` end to end: the real binary watches a Tiled map while
//! a real asset server (in this process, on 127.0.0.1:0) receives what it publishes.
//! Each save publishes the next version; a save by someone else in between is reported
//! and built upon; a broken edit is reported and publishes nothing.
#![allow(clippy::expect_used, clippy::unwrap_used)] // test helpers: a failed expectation is a failed test

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

use isoplane_signaling::auth::{JoinClaims, Role, TokenKey};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

const BINARY: &str = env!("CARGO_BIN_EXE_isoplane");
const SECRET: &str = "watch-test-secret-0123456789";
const TILES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/world-format/tests/data/tiled/tiles.png");

/// An 8×6 orthogonal office: a floor of tile 1, a meeting room named `room`, a spawn
/// point; `blocked_everywhere` adds a collision layer over every tile (a broken edit:
/// nobody could stand anywhere).
fn map(room: &str, blocked_everywhere: bool) -> String {
    let mut layers = vec![json!({"type": "tilelayer", "name": "floor", "width": 8, "height": 6, "data": vec![1; 48]})];
    if blocked_everywhere {
        layers.push(json!({"type": "tilelayer", "name": "collisions", "width": 8, "height": 6, "data": vec![1; 48]}));
    }
    layers.push(json!({"type": "objectgroup", "name": "areas", "objects": [
        {"id": 1, "name": room, "type": "meeting_room", "x": 0, "y": 0, "width": 96, "height": 96},
        {"id": 2, "name": "Entry", "type": "spawn", "x": 208, "y": 144, "point": true}
    ]}));
    json!({
        "type": "map", "orientation": "orthogonal", "infinite": false,
        "width": 8, "height": 6, "tilewidth": 32, "tileheight": 32,
        "tilesets": [{"firstgid": 1, "name": "office", "image": "tiles.png", "imagewidth": 128, "imageheight": 64,
                      "tilewidth": 32, "tileheight": 32, "columns": 4, "tilecount": 8}],
        "layers": layers
    })
    .to_string()
}

/// Lines the child prints on stdout and stderr, as they come.
fn lines_of(child: &mut Child) -> Receiver<String> {
    let (send, receive) = channel();
    let stdout = child.stdout.take().unwrap();
    let stderr = child.stderr.take().unwrap();
    for stream in [Box::new(stdout) as Box<dyn std::io::Read + Send>, Box::new(stderr)] {
        let send = send.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                if send.send(line).is_err() {
                    break;
                }
            }
        });
    }
    receive
}

/// Waits for a line containing `wanted`; returns every line seen on the way.
fn wait_for(lines: &Receiver<String>, wanted: &str) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen = Vec::new();
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match lines.recv_timeout(left) {
            Ok(line) => {
                let found = line.contains(wanted);
                seen.push(line);
                if found {
                    return seen;
                }
            }
            Err(_) => break,
        }
    }
    panic!("no line with {wanted:?}; saw:\n{}", seen.join("\n"));
}

/// Writes the map as Tiled does: a whole new file in place of the old one.
/// Like [`wait_for`] for two lines, one on stdout and one on stderr: the two streams are
/// read by two threads, so they may arrive in either order.
fn wait_for_both(lines: &Receiver<String>, first: &str, second: &str) -> Vec<String> {
    let mut seen = wait_for(lines, first);
    if !seen.iter().any(|l| l.contains(second)) {
        seen.extend(wait_for(lines, second));
    }
    seen
}

fn save(path: &Path, text: &str) {
    let temporary = path.with_extension("tmp");
    std::fs::write(&temporary, text).unwrap();
    std::fs::rename(&temporary, path).unwrap();
}

#[test]
fn each_save_publishes_a_version_and_a_broken_edit_publishes_nothing() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let stop = CancellationToken::new();
    let data = tempfile::tempdir().unwrap();
    let config = isoplane_assets::Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        workspace: "acme".into(),
        token_secret: SECRET.into(),
        data_dir: data.path().to_owned(),
        ..isoplane_assets::Config::default()
    };
    let server = runtime.block_on(isoplane_assets::server::bind(config)).unwrap();
    let url = format!("http://{}", server.local_addr().unwrap());
    runtime.spawn(server.run(stop.clone()));
    let token = TokenKey::new(SECRET).sign(&JoinClaims::new(
        "maker",
        "Map Maker",
        "acme",
        Role::Admin,
        isoplane_signaling::server::unix_now() + 600,
    ));
    let http = reqwest::Client::new();
    let versions_url = format!("{url}/v1/workspaces/acme/worlds/office/versions");
    let get = |url: String| {
        runtime.block_on(async {
            let answer = http.get(url).bearer_auth(&token).send().await.unwrap();
            serde_json::from_str::<Value>(&answer.text().await.unwrap()).unwrap()
        })
    };

    let folder = tempfile::tempdir().unwrap();
    std::fs::copy(TILES, folder.path().join("tiles.png")).unwrap();
    let map_path = folder.path().join("office.tmj");
    save(&map_path, &map("Daily", false));
    let mut child = Command::new(BINARY)
        .args(["world", "watch", map_path.to_str().unwrap(), "--publish", &url, "--workspace", "acme"])
        .args(["--interval-ms", "100"])
        .env("ISOPLANE_ADMIN_TOKEN", &token)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = lines_of(&mut child);

    // The first look publishes version 1 (the world is named after the map file), with
    // the shorthand class reported.
    let seen = wait_for_both(&lines, "published version 1", "read as class \"zone\"");
    assert!(seen.iter().any(|l| l.contains("class \"meeting_room\" read as class \"zone\"")), "{seen:?}");
    let current = get(format!("{url}/v1/workspaces/acme/worlds/office"));
    assert_eq!(current["zones"][0]["id"], "daily", "{current}");

    // A save publishes the next version.
    save(&map_path, &map("Standup", false));
    wait_for(&lines, "published version 2");
    assert_eq!(get(format!("{url}/v1/workspaces/acme/worlds/office"))["zones"][0]["id"], "standup");

    // Someone publishes meanwhile: the next save says so and publishes on top of it.
    let mut theirs = get(format!("{url}/v1/workspaces/acme/worlds/office"));
    theirs["name"] = json!("Theirs");
    let status = runtime.block_on(async {
        let body = json!({"base_version": 2, "world": theirs}).to_string();
        let answer = http.post(&versions_url).bearer_auth(&token).header("content-type", "application/json");
        answer.body(body).send().await.unwrap().status().as_u16()
    });
    assert_eq!(status, 201);
    save(&map_path, &map("Retro", false));
    let seen = wait_for(&lines, "published version 4");
    assert!(seen.last().unwrap().contains("version 3 was published meanwhile"), "{seen:?}");

    // A broken edit is reported and publishes nothing.
    save(&map_path, &map("Retro", true));
    let seen = wait_for_both(&lines, "not published", "error:");
    assert!(seen.iter().any(|l| l.contains("error:")), "{seen:?}");
    assert_eq!(get(versions_url.clone())["current_version"], 4);

    // Fixing it publishes again.
    save(&map_path, &map("Planning", false));
    wait_for(&lines, "published version 5");

    // Saving the same map again changes nothing: no new version.
    save(&map_path, &map("Planning", false));
    wait_for(&lines, "unchanged: version 5 is already this world");
    assert_eq!(get(versions_url.clone())["current_version"], 5);

    child.kill().unwrap();
    child.wait().unwrap();
    stop.cancel();
}

#[test]
fn a_tmx_map_is_watched_and_a_broken_one_is_named_with_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let map_path = dir.path().join("office.tmx");
    std::fs::copy(TILES, dir.path().join("tiles.png")).unwrap();
    let tmx = |floor: &str| {
        format!(
            r#"<?xml version="1.0" encoding="UTF-8"?>
<map version="1.8" orientation="orthogonal" width="2" height="2" tilewidth="32" tileheight="32" infinite="0">
 <tileset firstgid="1" name="office" tilewidth="32" tileheight="32" tilecount="8" columns="4">
  <image source="tiles.png" width="128" height="64"/>
 </tileset>
 <layer id="1" name="floor" width="2" height="2"><data encoding="csv">{floor}</data></layer>
</map>"#
        )
    };
    save(&map_path, &tmx("1,1,1,1"));
    let mut child = Command::new(BINARY)
        .args(["world", "watch", map_path.to_str().unwrap(), "--interval-ms", "50"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = lines_of(&mut child);
    let seen = wait_for(&lines, "valid:");
    assert!(seen.last().unwrap().contains("office.tmx"), "{seen:?}");

    // A broken save names the file and what is wrong with its XML, then a fix is valid again.
    save(&map_path, &tmx("1,1,1,1</layer>"));
    let seen = wait_for_both(&lines, "not published", "error:");
    let error = seen.iter().find(|l| l.contains("error:")).unwrap_or_else(|| panic!("{seen:?}"));
    assert!(error.contains("office.tmx") && error.contains("not readable Tiled XML"), "{error}");
    save(&map_path, &tmx("1,2,2,1"));
    wait_for(&lines, "valid:");

    child.kill().unwrap();
    child.wait().unwrap();
}
