//! Three signaling nodes (one workspace, coordinated through this machine's Redis) and an
//! asset server sharing this machine's PostgreSQL (`ISOPLANE_TEST_POSTGRES_URL`): a
//! publish and a rollback reach every node, the one serving the world and the others,
//! through the database's announcement. The nodes poll only once a minute here, so what
//! arrives within seconds came by the announcement.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed expectation is a failed test

use std::net::SocketAddr;
use std::time::Duration;

use isoplane_auth::{JoinClaims, Role, TokenKey};
use isoplane_metadata::testing::TestSchema;
use isoplane_service::testing::OwnRuntime;
use isoplane_signaling::client::{Client, Event};
use isoplane_signaling::config::{ClusterConfig, Config};
use isoplane_signaling::protocol::ServerMessage;
use isoplane_signaling::server::{self, unix_now};
use tokio_util::sync::CancellationToken;

const SECRET: &str = "cluster-versions-secret-0123456789";
/// Much longer than any wait below: only the announcement can be that quick.
const POLL_MS: u64 = 60_000;
const WAIT: Duration = Duration::from_secs(5);

fn redis_url() -> String {
    std::env::var("ISOPLANE_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

fn token(workspace: &str, user: &str, role: Role) -> String {
    TokenKey::new(SECRET).sign(&JoinClaims::new(user, user, workspace, role, unix_now() + 600))
}

/// The ETag (content ID) of the world file `hq` a node serves.
async fn served_version(http: &reqwest::Client, node: SocketAddr) -> String {
    let answer = http.get(format!("http://{node}/v1/worlds/hq")).send().await.unwrap();
    answer.headers()["etag"].to_str().unwrap().trim_matches('"').to_owned()
}

/// Waits until every node serves `version` of world `hq`.
async fn every_node_serves(http: &reqwest::Client, nodes: &[SocketAddr], version: &str) {
    let deadline = tokio::time::Instant::now() + WAIT;
    for &node in nodes {
        loop {
            let served = served_version(http, node).await;
            if served == version {
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "node {node} still serves {served}, not {version}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// The version in the next `world_changed` the client gets.
async fn next_world_changed(client: &mut Client) -> String {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match client.next_event_within(left).await.unwrap() {
            Event::Message(ServerMessage::WorldChanged { world }) => return world.version,
            _ => continue,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publish_and_a_rollback_reach_every_node() {
    let schema = TestSchema::create("world_versions_cluster").await;
    let workspace = format!("versions-{:016x}", rand::random::<u64>());
    let data = tempfile::tempdir().unwrap();
    let assets_config = isoplane_assets::Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        workspace: workspace.clone(),
        token_secret: SECRET.into(),
        data_dir: data.path().to_owned(),
        database_url: Some(schema.url.clone()),
        ..isoplane_assets::Config::default()
    };
    let shutdown = CancellationToken::new();
    let assets = isoplane_assets::server::bind(assets_config).await.unwrap();
    let assets_url = format!("http://{}", assets.local_addr().unwrap());
    tokio::spawn(assets.run(shutdown.clone()));
    let http = reqwest::Client::new();
    let admin = format!("Bearer {}", token(&workspace, "ada", Role::Admin));
    let image_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../worlds/demo/assets");
    let image = std::fs::read(std::fs::read_dir(image_dir).unwrap().next().unwrap().unwrap().path()).unwrap();
    let upload = http.post(format!("{assets_url}/v1/assets")).header("Authorization", &admin);
    assert_eq!(upload.header("Content-Type", "image/svg+xml").body(image).send().await.unwrap().status(), 201);
    let publish = |base: i64, world: serde_json::Value| {
        http.post(format!("{assets_url}/v1/workspaces/{workspace}/worlds/hq/versions"))
            .header("Authorization", &admin)
            .header("Content-Type", "application/json")
            .body(serde_json::json!({"base_version": base, "world": world}).to_string())
            .send()
    };
    let first: serde_json::Value = serde_json::from_str(isoplane_world_format::DEMO_WORLD).unwrap();
    let v1: serde_json::Value =
        serde_json::from_str(&publish(0, first.clone()).await.unwrap().text().await.unwrap()).unwrap();

    let nodes: Vec<OwnRuntime<SocketAddr>> = ["one", "two", "three"]
        .iter()
        .map(|name| {
            let mut config = Config {
                listen: "127.0.0.1:0".parse().unwrap(),
                workspace: workspace.clone(),
                token_secret: SECRET.into(),
                database_url: Some(schema.url.clone()),
                cluster: Some(ClusterConfig {
                    redis_url: redis_url(),
                    node_id: Some((*name).into()),
                    ..ClusterConfig::default()
                }),
                ..Config::default()
            };
            config.worlds.asset_server = Some(assets_url.clone());
            config.worlds.reload_interval_ms = Some(POLL_MS);
            OwnRuntime::start(1, move || async move {
                let bound = server::bind(config).await.unwrap();
                (bound.local_addr().unwrap(), bound.run(CancellationToken::new()))
            })
        })
        .collect();
    let addresses: Vec<SocketAddr> = nodes.iter().map(|node| node.handle).collect();
    every_node_serves(&http, &addresses, v1["content_id"].as_str().unwrap()).await;
    // Ada reaches the world through node one (which takes it), Bob through node three
    // (forwarded to the owner).
    let mut ada = Client::join(&format!("ws://{}/v1/ws", addresses[0]), &token(&workspace, "ada", Role::Member), "hq")
        .await
        .unwrap();
    let mut bob = Client::join(&format!("ws://{}/v1/ws", addresses[2]), &token(&workspace, "bob", Role::Member), "hq")
        .await
        .unwrap();

    let mut second = first.clone();
    second["name"] = "HQ, second edition".into();
    let v2: serde_json::Value = serde_json::from_str(&publish(1, second).await.unwrap().text().await.unwrap()).unwrap();
    let v2_id = v2["content_id"].as_str().unwrap();
    every_node_serves(&http, &addresses, v2_id).await;
    assert_eq!(next_world_changed(&mut ada).await, v2_id);
    assert_eq!(next_world_changed(&mut bob).await, v2_id);

    let rollback = http
        .put(format!("{assets_url}/v1/workspaces/{workspace}/worlds/hq/current"))
        .header("Authorization", &admin)
        .header("Content-Type", "application/json")
        .body(serde_json::json!({"expected_version": 2, "version": 1}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(rollback.status(), 200);
    let v1_id = v1["content_id"].as_str().unwrap();
    every_node_serves(&http, &addresses, v1_id).await;
    assert_eq!(next_world_changed(&mut ada).await, v1_id);
    assert_eq!(next_world_changed(&mut bob).await, v1_id);
    shutdown.cancel();
}
