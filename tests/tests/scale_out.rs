//! Scale-out across services, with this machine's Redis (`ISOPLANE_TEST_REDIS_URL`, by
//! default redis://127.0.0.1:6379) as the coordinator:
//! - several SFU nodes behind signaling, found through the SFU directory: a crowded
//!   zone's room goes to a node that reported itself, moves to the other node when its
//!   node dies, and falls back to peer to peer when no node is left; each time the
//!   clients are told with a new plan whose token the new node accepts;
//! - three signaling nodes and two SFU nodes together, losing one of each.
//!
//! Nodes that must die at once run on runtimes of their own, dropped as a crash would.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed expectation is a failed test

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use isoplane_auth::{JoinClaims, Role, TokenKey};
use isoplane_service::testing::OwnRuntime;
use isoplane_sfu::protocol::{ClientMessage as SfuClientMessage, ServerMessage as SfuServerMessage};
use isoplane_signaling::client::{Client, Event};
use isoplane_signaling::config::{Config, SfuPoolSettings};
use isoplane_signaling::protocol::{MediaPlan, ServerMessage, Topology};
use isoplane_signaling::server::{self, unix_now};
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

const JOIN_SECRET: &str = "join-secret-0123456789";
const SFU_SECRET: &str = "sfu-secret-0123456789";
const WAIT: Duration = Duration::from_secs(15);

fn redis_url() -> String {
    std::env::var("ISOPLANE_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// An SFU node reporting to the pool, on a runtime of its own so it can die at once.
struct SfuNode {
    url: String,
    server: OwnRuntime<String>,
    stop: CancellationToken,
}

impl SfuNode {
    fn start(pool: &str, id: &str) -> SfuNode {
        let mut config = isoplane_sfu::Config::for_loopback(SFU_SECRET);
        config.directory = Some(isoplane_sfu::config::DirectoryConfig {
            redis_url: redis_url(),
            pool: pool.into(),
            node_id: Some(id.into()),
            capacity: 100,
            ..Default::default()
        });
        let stop = CancellationToken::new();
        let serving = stop.clone();
        let server = OwnRuntime::start(1, move || async move {
            let bound = isoplane_sfu::bind(config).await.unwrap();
            (format!("ws://{}/v1/sfu", bound.http_addr()), bound.run(serving))
        });
        SfuNode { url: server.handle.clone(), server, stop }
    }

    /// As a crash: its reports stop and its HTTP side is gone; the directory forgets it
    /// when its last report expires.
    fn kill(&mut self) {
        self.server.kill();
    }
}

impl Drop for SfuNode {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

fn join_token(user: &str) -> String {
    TokenKey::new(JOIN_SECRET).sign(&JoinClaims::new(user, user, "default", Role::Member, unix_now() + 600))
}

/// The client's next plan that satisfies `wanted`.
async fn plan_where(client: &mut Client, what: &str, wanted: impl Fn(&MediaPlan) -> bool) -> MediaPlan {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match client.next_event_within(left).await {
            Ok(Event::Message(ServerMessage::Media { plan })) if wanted(&plan) => return plan,
            Ok(Event::Closed(_)) => panic!("signaling closed while waiting for {what}"),
            Ok(_) => continue,
            Err(error) => panic!("waiting for {what}: {error}"),
        }
    }
}

/// Joins the SFU session a plan points at; the node must accept the plan's token.
async fn sfu_session_accepts(plan: &MediaPlan) {
    let access = plan.sfu.as_ref().expect("an SFU plan");
    let (mut session, _) = tokio_tungstenite::connect_async(access.url.as_str()).await.unwrap();
    let join = SfuClientMessage::Join { token: access.token.clone() };
    session.send(Message::text(serde_json::to_string(&join).unwrap())).await.unwrap();
    let answer = tokio::time::timeout(WAIT, session.next()).await.unwrap().unwrap().unwrap();
    let answer: SfuServerMessage = serde_json::from_str(answer.to_text().unwrap()).unwrap();
    assert!(matches!(answer, SfuServerMessage::Joined { .. }), "the node refused the plan's token: {answer:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rooms_go_to_a_reporting_sfu_node_move_when_it_dies_and_fall_back_to_p2p() {
    let pool = format!("test-{:x}", rand_u64());
    let mut first = SfuNode::start(&pool, "a");
    let mut second = SfuNode::start(&pool, "b");

    let mut config =
        Config { listen: "127.0.0.1:0".parse().unwrap(), token_secret: JOIN_SECRET.into(), ..Config::default() };
    config.worlds.demo = true;
    config.policy.open_sfu_threshold = 1;
    config.policy.hysteresis_hold = Duration::from_secs(1);
    config.media.sfu_secret = Some(SFU_SECRET.into());
    config.media.sfu_pool = Some(SfuPoolSettings { redis_url: redis_url(), pool: pool.clone() });
    let bound = server::bind(config).await.unwrap();
    let url = format!("ws://{}/v1/ws", bound.local_addr().unwrap());
    let shutdown = CancellationToken::new();
    tokio::spawn(bound.run(shutdown.clone()));

    let mut ada = Client::join(&url, &join_token("ada"), "demo").await.unwrap();
    let mut bob = Client::join(&url, &join_token("bob"), "demo").await.unwrap();
    // Two people in the lobby (threshold 1): the room goes to a node; both were empty.
    let plan = plan_where(&mut ada, "an SFU plan", |p| p.topology == Topology::Sfu).await;
    let placed = plan.sfu.as_ref().unwrap().url.clone();
    assert!([&first.url, &second.url].contains(&&placed), "{placed} is one of the pool's nodes");
    sfu_session_accepts(&plan).await;
    plan_where(&mut bob, "bob's SFU plan", |p| p.sfu.as_ref().is_some_and(|s| s.url == placed)).await;

    // Its node dies: both are told to move to the other node, which takes their tokens.
    let (dying, other) =
        if placed == first.url { (&mut first, second.url.clone()) } else { (&mut second, first.url.clone()) };
    dying.kill();
    let moved =
        plan_where(&mut ada, "a plan on the other node", |p| p.sfu.as_ref().is_some_and(|s| s.url == other)).await;
    sfu_session_accepts(&moved).await;
    plan_where(&mut bob, "bob's plan on the other node", |p| p.sfu.as_ref().is_some_and(|s| s.url == other)).await;

    // The last node stops too: the lobby goes back to peer to peer, and they are told.
    drop(first);
    drop(second);
    let fallback = plan_where(&mut ada, "a peer-to-peer plan", |p| p.topology == Topology::P2p).await;
    assert!(fallback.sfu.is_none() && fallback.peers.iter().any(|l| l.avatar == bob.avatar()), "{fallback:?}");
    shutdown.cancel();
}

fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(std::process::id()) ^ unix_now()
}

/// A signaling node of a cluster with an SFU pool, on a runtime of its own so it can die
/// at once.
struct SignalingNode {
    url: String,
    server: OwnRuntime<String>,
}

impl SignalingNode {
    fn start(workspace: &str, name: &str, pool: &str, database: &std::path::Path) -> SignalingNode {
        let mut config = Config {
            listen: "127.0.0.1:0".parse().unwrap(),
            workspace: workspace.into(),
            token_secret: JOIN_SECRET.into(),
            database_url: Some(format!("sqlite://{}", database.display())),
            cluster: Some(isoplane_signaling::config::ClusterConfig {
                redis_url: redis_url(),
                node_id: Some(name.into()),
                ..Default::default()
            }),
            ..Config::default()
        };
        config.worlds.demo = true;
        config.policy.open_sfu_threshold = 1;
        config.media.sfu_secret = Some(SFU_SECRET.into());
        config.media.sfu_pool = Some(SfuPoolSettings { redis_url: redis_url(), pool: pool.into() });
        let node = OwnRuntime::start(1, move || async move {
            let bound = server::bind(config).await.unwrap();
            (format!("ws://{}/v1/ws", bound.local_addr().unwrap()), bound.run(CancellationToken::new()))
        });
        SignalingNode { url: node.handle.clone(), server: node }
    }

    fn kill(&mut self) {
        self.server.kill();
    }
}

/// Joins through `url` until the cluster serves the world again (`try_again` meanwhile).
async fn join_when_served(url: &str, token: &str) -> Client {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        match Client::join(url, token, "demo").await {
            Ok(client) => return client,
            Err(isoplane_signaling::client::ClientError::Refused { .. }) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            Err(error) => panic!("joining through {url}: {error}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_signaling_nodes_and_two_sfu_nodes_come_through_losing_one_of_each() {
    let suffix = format!("{:x}", rand_u64());
    let (workspace, pool) = (format!("scale-{suffix}"), format!("scale-{suffix}"));
    let files = tempfile::tempdir().unwrap();
    let database = files.path().join("isoplane.db");
    let mut sfus = [SfuNode::start(&pool, "a"), SfuNode::start(&pool, "b")];
    let mut nodes: Vec<SignalingNode> =
        ["one", "two", "three"].iter().map(|name| SignalingNode::start(&workspace, name, &pool, &database)).collect();
    let token = |user: &str| {
        let claims = JoinClaims::new(user, user, &workspace, Role::Member, unix_now() + 600);
        TokenKey::new(JOIN_SECRET).sign(&claims)
    };
    // Node one serves the demo world (ada came first); bob comes through node two.
    let mut ada = join_when_served(&nodes[0].url, &token("ada")).await;
    let mut bob = join_when_served(&nodes[1].url, &token("bob")).await;
    let plan = plan_where(&mut ada, "ada's SFU plan", |p| p.topology == Topology::Sfu).await;
    let room_node = plan.sfu.as_ref().unwrap().url.clone();
    plan_where(&mut bob, "bob's plan on the same SFU node", |p| p.sfu.as_ref().is_some_and(|s| s.url == room_node))
        .await;
    sfu_session_accepts(&plan).await;

    // The signaling node serving the world dies: both come back through the others and
    // get SFU plans again from the node that took the world over.
    nodes[0].kill();
    drop((ada, bob));
    let mut ada = join_when_served(&nodes[2].url, &token("ada")).await;
    let mut bob = join_when_served(&nodes[1].url, &token("bob")).await;
    let plan = plan_where(&mut ada, "ada's SFU plan after the move", |p| p.topology == Topology::Sfu).await;
    sfu_session_accepts(&plan).await;
    let room_node = plan.sfu.as_ref().unwrap().url.clone();
    plan_where(&mut bob, "bob's SFU plan after the move", |p| p.sfu.as_ref().is_some_and(|s| s.url == room_node)).await;

    // The SFU node serving the room dies: both are moved to the other one.
    let dying = sfus.iter().position(|s| s.url == room_node).unwrap();
    sfus[dying].kill();
    let other = sfus[1 - dying].url.clone();
    let moved =
        plan_where(&mut ada, "ada moved to the other SFU node", |p| p.sfu.as_ref().is_some_and(|s| s.url == other))
            .await;
    sfu_session_accepts(&moved).await;
    plan_where(&mut bob, "bob moved to the other SFU node", |p| p.sfu.as_ref().is_some_and(|s| s.url == other)).await;
}
