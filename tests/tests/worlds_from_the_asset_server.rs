//! Signaling and the asset server as separate services (as deployed): a world published
//! to the asset server is what signaling serves and lets people join, and a later
//! publish or rollback reaches the people in it live.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a failed expectation is a failed test

use std::time::Duration;

use isoplane_signaling::auth::{JoinClaims, Role, TokenKey};
use isoplane_signaling::client::{Client, Event};
use isoplane_signaling::protocol::{AvatarState, CorrectionReason, Point, ServerMessage};
use isoplane_signaling::server::unix_now;
use isoplane_world_format::Facing;
use tokio_util::sync::CancellationToken;

const SECRET: &str = "cross-service-secret-0123456789";

fn token(role: Role) -> String {
    TokenKey::new(SECRET).sign(&JoinClaims::new(&format!("user-{role:?}"), "Ada", "acme", role, unix_now() + 600))
}

/// An asset server for workspace acme on its own data folder (kept while the returned
/// folder lives), serving until `shutdown`; its base URL.
async fn start_asset_server(shutdown: &CancellationToken) -> (String, tempfile::TempDir) {
    let data = tempfile::tempdir().unwrap();
    let assets_config = isoplane_assets::Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        workspace: "acme".into(),
        token_secret: SECRET.into(),
        data_dir: data.path().to_owned(),
        ..isoplane_assets::Config::default()
    };
    let assets = isoplane_assets::server::bind(assets_config).await.unwrap();
    let assets_url = format!("http://{}", assets.local_addr().unwrap());
    tokio::spawn(assets.run(shutdown.clone()));
    (assets_url, data)
}

/// Uploads the demo world's tileset image, as an admin.
async fn upload_demo_tileset(http: &reqwest::Client, assets_url: &str) {
    let image_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../worlds/demo/assets");
    let image = std::fs::read(std::fs::read_dir(image_dir).unwrap().next().unwrap().unwrap().path()).unwrap();
    let upload = http
        .post(format!("{assets_url}/v1/assets"))
        .header("Authorization", format!("Bearer {}", token(Role::Admin)))
        .header("Content-Type", "image/svg+xml")
        .body(image)
        .send()
        .await
        .unwrap();
    assert_eq!(upload.status(), 201);
}

#[tokio::test]
async fn signaling_serves_and_lets_people_join_a_world_published_to_the_asset_server() {
    let shutdown = CancellationToken::new();
    let (assets_url, _data) = start_asset_server(&shutdown).await;

    // An admin uploads the tileset and publishes a world made from the demo.
    let http = reqwest::Client::new();
    let admin = format!("Bearer {}", token(Role::Admin));
    upload_demo_tileset(&http, &assets_url).await;
    let mut world: serde_json::Value = serde_json::from_str(isoplane_world_format::DEMO_WORLD).unwrap();
    world["name"] = serde_json::json!("Acme HQ");
    let publish = http
        .post(format!("{assets_url}/v1/workspaces/acme/worlds/hq/versions"))
        .header("Authorization", &admin)
        .header("Content-Type", "application/json")
        .body(serde_json::json!({"base_version": 0, "world": world}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(publish.status(), 201, "{}", publish.text().await.unwrap());

    // Signaling, configured with the asset server only, serves it and lets people in.
    let mut config = isoplane_signaling::config::Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        workspace: "acme".into(),
        token_secret: SECRET.into(),
        ..isoplane_signaling::config::Config::default()
    };
    config.worlds.asset_server = Some(assets_url.clone());
    let signaling = isoplane_signaling::server::bind(config).await.unwrap();
    let address = signaling.local_addr().unwrap();
    tokio::spawn(signaling.run(shutdown.clone()));
    let served = http.get(format!("http://{address}/v1/worlds/hq")).send().await.unwrap().text().await.unwrap();
    assert!(served.contains("Acme HQ"), "{served}");
    let client = tokio::time::timeout(
        Duration::from_secs(5),
        Client::join(&format!("ws://{address}/v1/ws"), &token(Role::Member), "hq"),
    )
    .await
    .unwrap()
    .unwrap();
    assert!(client.avatar() > 0);
    assert_eq!(
        http.get(format!("http://{address}/v1/worlds/demo")).send().await.unwrap().status(),
        404,
        "only what the asset server holds is served"
    );

    // Images reach the browser through signaling's own origin too (no proxy in front).
    let picture = br#"<svg xmlns="http://www.w3.org/2000/svg" width="2" height="1"><rect width="2" height="1" fill="green"/></svg>"#;
    let uploaded = http
        .post(format!("{assets_url}/v1/assets"))
        .header("Authorization", &admin)
        .header("Content-Type", "image/svg+xml")
        .body(picture.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(uploaded.status(), 201);
    let id = isoplane_world_format::ContentId::of_bytes(picture).to_string();
    let through_signaling = http.get(format!("http://{address}/assets/{id}")).send().await.unwrap();
    assert_eq!(through_signaling.status(), 200);
    assert_eq!(through_signaling.headers()["content-type"], "image/svg+xml");
    let etag = through_signaling.headers()["etag"].clone();
    assert_eq!(&through_signaling.bytes().await.unwrap()[..], picture);
    let again = http.get(format!("http://{address}/assets/{id}")).header("If-None-Match", etag).send().await.unwrap();
    assert_eq!(again.status(), 304, "the browser's cached copy is still good");
    let unknown = isoplane_world_format::ContentId::of_bytes(b"never uploaded").to_string();
    assert_eq!(http.get(format!("http://{address}/assets/{unknown}")).send().await.unwrap().status(), 404);
    let sneaky =
        http.get(format!("http://{address}/assets/..%2Fv1%2Fworkspaces%2Facme%2Fworlds")).send().await.unwrap();
    assert_eq!(sneaky.status(), 404, "only content IDs are fetched");
    shutdown.cancel();
}

#[tokio::test]
async fn an_image_from_an_asset_server_that_does_not_answer_is_a_clear_bad_gateway() {
    let shutdown = CancellationToken::new();
    let mut config = isoplane_signaling::config::Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        workspace: "acme".into(),
        token_secret: SECRET.into(),
        ..isoplane_signaling::config::Config::default()
    };
    config.worlds.demo = true;
    // A port nothing listens on (bound and released at once).
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    config.worlds.images_from = Some(format!("http://127.0.0.1:{port}"));
    let signaling = isoplane_signaling::server::bind(config).await.unwrap();
    let address = signaling.local_addr().unwrap();
    tokio::spawn(signaling.run(shutdown.clone()));
    let id = isoplane_world_format::ContentId::of_bytes(b"elsewhere").to_string();
    let answer = reqwest::get(format!("http://{address}/assets/{id}")).await.unwrap();
    assert_eq!(answer.status(), 502);
    let body: serde_json::Value = serde_json::from_str(&answer.text().await.unwrap()).unwrap();
    assert_eq!(body["error"]["code"], "asset_server_unavailable");
    shutdown.cancel();
}

#[tokio::test]
async fn signaling_refuses_to_start_when_the_asset_server_is_unreachable() {
    let mut config = isoplane_signaling::config::Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        workspace: "acme".into(),
        token_secret: SECRET.into(),
        ..isoplane_signaling::config::Config::default()
    };
    // A port nothing listens on (bound and released at once).
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    config.worlds.asset_server = Some(format!("http://127.0.0.1:{port}"));
    let error = isoplane_signaling::server::bind(config).await.unwrap_err().to_string();
    assert!(error.contains("cannot reach the asset server"), "{error}");
}

/// Publishes `world` as world `name` of workspace acme, made from `base`, through the
/// asset API at `api` with a token of `role`; its version.
async fn publish(
    http: &reqwest::Client,
    api: &str,
    role: Role,
    name: &str,
    base: i64,
    world: &serde_json::Value,
) -> i64 {
    let answer = http
        .post(format!("{api}/v1/workspaces/acme/worlds/{name}/versions"))
        .header("Authorization", format!("Bearer {}", token(role)))
        .header("Content-Type", "application/json")
        .body(serde_json::json!({"base_version": base, "world": world}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 201);
    let body: serde_json::Value = serde_json::from_str(&answer.text().await.unwrap()).unwrap();
    body["version"].as_i64().unwrap()
}

/// The server messages `client` receives until one `done` accepts (which is included).
async fn messages_until(client: &mut Client, done: impl Fn(&ServerMessage) -> bool) -> Vec<ServerMessage> {
    let mut seen = Vec::new();
    loop {
        match client.next_event_within(Duration::from_secs(5)).await {
            Ok(Event::Message(message)) => {
                let last = done(&message);
                seen.push(message);
                if last {
                    return seen;
                }
            }
            Ok(_) => {}
            Err(error) => panic!("{error} after {seen:?}"),
        }
    }
}

#[tokio::test]
async fn a_publish_and_a_rollback_reach_the_people_in_the_world_without_a_restart() {
    let shutdown = CancellationToken::new();
    let (assets_url, _data) = start_asset_server(&shutdown).await;
    let http = reqwest::Client::new();
    upload_demo_tileset(&http, &assets_url).await;
    let first: serde_json::Value = serde_json::from_str(isoplane_world_format::DEMO_WORLD).unwrap();
    let v1 = publish(&http, &assets_url, Role::Admin, "hq", 0, &first).await;

    let mut config = isoplane_signaling::config::Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        workspace: "acme".into(),
        token_secret: SECRET.into(),
        ..isoplane_signaling::config::Config::default()
    };
    config.worlds.asset_server = Some(assets_url.clone());
    config.worlds.reload_interval_ms = Some(100);
    let signaling = isoplane_signaling::server::bind(config).await.unwrap();
    let address = signaling.local_addr().unwrap();
    tokio::spawn(signaling.run(shutdown.clone()));
    let ws = format!("ws://{address}/v1/ws");
    // Ada stands on the entrance, (10, 7).
    let mut ada = Client::join_at(&ws, &token(Role::Member), "hq", Some("entrance")).await.unwrap();
    let served_before = http.get(format!("http://{address}/v1/worlds/hq")).send().await.unwrap();
    let etag_before = served_before.headers()["etag"].to_str().unwrap().to_owned();

    // A builder blocks the entrance tile (and moves the spawn point beside it), publishing
    // from the page's origin: signaling forwards the asset API when no proxy does.
    let mut second = first.clone();
    let row = second["collision"]["rows"][7].as_str().unwrap().to_owned();
    second["collision"]["rows"][7] = format!("{}#{}", &row[..10], &row[11..]).into();
    second["spawns"][0]["y"] = 8.into();
    publish(&http, &format!("http://{address}"), Role::Builder, "hq", v1, &second).await;
    // What came on joining first, then the change, in order: the new version, where she
    // was moved, her zone as it is now.
    let seen = messages_until(&mut ada, |m| matches!(m, ServerMessage::Snapshot { .. })).await;
    let changed = seen.iter().position(|m| matches!(m, ServerMessage::WorldChanged { .. })).expect("world_changed");
    let seen = &seen[changed..];
    let Some(ServerMessage::WorldChanged { world }) = seen.first() else { panic!("{seen:?}") };
    assert!(matches!(seen[1], ServerMessage::Correction { .. }) && seen.len() == 3, "{seen:?}");
    assert_eq!(world.url, "/v1/worlds/hq");
    let served = http.get(format!("http://{address}/v1/worlds/hq")).send().await.unwrap();
    assert_eq!(served.headers()["etag"].to_str().unwrap(), format!("\"{}\"", world.version));
    assert_ne!(served.headers()["etag"].to_str().unwrap(), etag_before);
    let served: serde_json::Value = serde_json::from_str(&served.text().await.unwrap()).unwrap();
    assert_eq!(served["collision"]["rows"][7], second["collision"]["rows"][7]);
    // She stood on the new wall: moved to the nearest free tile, (10, 6) (rows top first).
    let moved_to = seen.iter().find_map(|m| match m {
        ServerMessage::Correction { position, reason: CorrectionReason::WorldChanged, .. } => Some(*position),
        _ => None,
    });
    assert_eq!(moved_to, Some(Point { x: 10 * 256 + 128, y: 6 * 256 + 128 }), "{seen:?}");

    // Walking back onto the wall is refused by the new world's rules.
    ada.send_move(1, Point { x: 10 * 256 + 128, y: 7 * 256 + 64 }, Facing::South, AvatarState::Walking).await.unwrap();
    let seen = messages_until(&mut ada, |m| matches!(m, ServerMessage::Correction { .. })).await;
    assert!(matches!(seen.last(), Some(ServerMessage::Correction { reason: CorrectionReason::Blocked, .. })));

    // Rolled back: the first version is served again, and the way is open.
    let rollback = http
        .put(format!("http://{address}/v1/workspaces/acme/worlds/hq/current"))
        .header("Authorization", format!("Bearer {}", token(Role::Admin)))
        .header("Content-Type", "application/json")
        .body(serde_json::json!({"expected_version": v1 + 1, "version": v1}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(rollback.status(), 200);
    let seen = messages_until(&mut ada, |m| matches!(m, ServerMessage::Snapshot { .. })).await;
    assert!(
        matches!(seen.first(), Some(ServerMessage::WorldChanged { world }) if format!("\"{}\"", world.version) == etag_before)
    );
    assert!(!seen.iter().any(|m| matches!(m, ServerMessage::Correction { .. })), "nobody stands on a wall now");
    ada.send_move(2, Point { x: 10 * 256 + 128, y: 7 * 256 + 64 }, Facing::South, AvatarState::Walking).await.unwrap();
    let quiet_until = tokio::time::Instant::now() + Duration::from_millis(500);
    while let Ok(Ok(event)) = tokio::time::timeout_at(quiet_until, ada.next_event()).await {
        assert!(
            !matches!(event, Event::Message(ServerMessage::Correction { .. })),
            "the entrance is walkable again: {event:?}"
        );
    }
    shutdown.cancel();
}
