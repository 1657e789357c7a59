//! Three signaling nodes on loopback coordinated through this machine's Redis
//! (`ISOPLANE_TEST_REDIS_URL`, by default redis://127.0.0.1:6379): clients on different
//! nodes in one world see each other, killing the node that serves a world moves it and
//! its clients recover, an admin command on one node reaches a user on another, the
//! people list and follows span the nodes, and so do direct chat messages.
//!
//! Each node runs on its own thread with its own runtime, so killing one drops every
//! socket and task it had at once, as a crash would. Each test has a workspace of its
//! own, so its keys in Redis never meet another run's.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a failed expectation is a failed test

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::*;
use isoplane_service::testing::OwnRuntime;
use isoplane_signaling::auth::Role;
use isoplane_signaling::client::{Client, ClientError, Event};
use isoplane_signaling::config::{ClusterConfig, Config};
use isoplane_signaling::protocol::{ChatScope, ClientMessage, ErrorCode, Follower, ModeratedAction, ServerMessage};
use isoplane_signaling::server::{self, unix_now};

fn redis_url() -> String {
    std::env::var("ISOPLANE_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// One signaling node on its own runtime, so killing it is a crash.
struct Node(OwnRuntime<SocketAddr>);

impl Node {
    fn start(workspace: &str, name: &str, worlds: &std::path::Path, database: &std::path::Path) -> Node {
        let mut config = Config {
            listen: "127.0.0.1:0".parse().unwrap(),
            workspace: workspace.into(),
            token_secret: SECRET.into(),
            database_url: Some(format!("sqlite://{}", database.display())),
            cluster: Some(ClusterConfig {
                redis_url: redis_url(),
                node_id: Some(name.into()),
                ..ClusterConfig::default()
            }),
            ..Config::default()
        };
        config.worlds.directory = Some(worlds.to_owned());
        let name = name.to_owned();
        Node(OwnRuntime::start(2, move || async move {
            let bound = server::bind(config)
                .await
                .unwrap_or_else(|e| panic!("node {name} starts (is Redis at {} up?): {e}", redis_url()));
            (bound.local_addr().unwrap(), bound.run(tokio_util::sync::CancellationToken::new()))
        }))
    }

    fn url(&self) -> String {
        format!("ws://{}/v1/ws", self.0.handle)
    }

    /// Stops the node as a crash would: every task and socket gone at once, nothing
    /// handed over.
    fn kill(&mut self) {
        self.0.kill();
    }
}

/// Three nodes of a fresh workspace, sharing the test world and a database.
struct Cluster {
    workspace: String,
    nodes: Vec<Node>,
    _files: tempfile::TempDir,
}

impl Cluster {
    fn start() -> Cluster {
        let files = tempfile::tempdir().unwrap();
        let worlds = files.path().join("worlds");
        std::fs::create_dir(&worlds).unwrap();
        std::fs::write(worlds.join("test.world.json"), TEST_WORLD).unwrap();
        let database = files.path().join("isoplane.db");
        let workspace = format!("cluster-test-{:016x}", rand_u64());
        let nodes =
            ["one", "two", "three"].iter().map(|name| Node::start(&workspace, name, &worlds, &database)).collect();
        Cluster { workspace, nodes, _files: files }
    }

    fn token(&self, user: &str, role: Role) -> String {
        token_with_role(user, &self.workspace, unix_now() + 600, role)
    }

    async fn join(&self, node: usize, user: &str) -> Client {
        Client::join(&self.nodes[node].url(), &self.token(user, Role::Member), "test").await.unwrap()
    }
}

/// A counter's value in a Prometheus text response.
fn metric(response: &str, name: &str) -> u64 {
    response
        .lines()
        .find_map(|line| line.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in {response}"))
}

fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(std::process::id()) ^ unix_now()
}

/// Reads events until `avatar` is seen entering or in a snapshot.
async fn sees(client: &mut Client, avatar: u32, what: &str) {
    expect_event(client, what, |e| match e {
        Event::Message(ServerMessage::AvatarEntered { avatar: info }) => info.avatar == avatar,
        Event::Message(ServerMessage::Snapshot { avatars, .. }) => avatars.iter().any(|a| a.avatar == avatar),
        _ => false,
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_on_different_nodes_in_one_world_see_each_other_move() {
    let cluster = Cluster::start();
    let mut ada = cluster.join(0, "ada").await;
    let mut bob = cluster.join(1, "bob").await;
    let mut cy = cluster.join(2, "cy").await;
    sees(&mut ada, bob.avatar(), "bob, who joined through node two").await;
    sees(&mut ada, cy.avatar(), "cy, who joined through node three").await;
    let mut seq = 0;
    walk(&mut bob, &mut seq, (3.5, 3.5), (4.5, 3.5)).await;
    let (bob_avatar, target) = (bob.avatar(), tiles(4.5, 3.5));
    for (client, who) in [(&mut ada, "ada"), (&mut cy, "cy")] {
        expect_event(client, &format!("{who} seeing bob arrive"), |e| {
            presence_of(std::slice::from_ref(e), bob_avatar).contains(&target)
        })
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_node_serving_a_world_moves_it_and_its_clients_come_back() {
    let mut cluster = Cluster::start();
    // Node one serves the world: ada reached it first. Bob and cy come through two and three.
    let mut admin = Client::join(&cluster.nodes[0].url(), &cluster.token("ada", Role::Admin), "test").await.unwrap();
    let bob = cluster.join(1, "bob").await;
    let mut cy = cluster.join(2, "cy").await;
    sees(&mut admin, bob.avatar(), "bob").await;
    // A ban recorded before the crash must hold after it.
    admin
        .send(&isoplane_signaling::protocol::ClientMessage::Admin {
            id: 1,
            command: isoplane_signaling::protocol::AdminCommand::Ban {
                user: "mallory".into(),
                reason: "spam".into(),
                duration_seconds: None,
            },
        })
        .await
        .unwrap();
    expect_event(&mut admin, "the ban recorded", |e| {
        matches!(e, Event::Message(ServerMessage::AdminResult { id: 1, ok: true, .. }))
    })
    .await;

    cluster.nodes[0].kill();
    let killed = Instant::now();
    expect_event(&mut cy, "cy's connection ending with node one", |e| matches!(e, Event::Closed(_))).await;
    drop(bob);

    // As the browser does: reconnect (to its own node) until welcomed again.
    let rejoin = |node: usize, user: &'static str| {
        let (url, token) = (cluster.nodes[node].url(), cluster.token(user, Role::Member));
        async move {
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                match Client::join(&url, &token, "test").await {
                    Ok(client) => return client,
                    Err(ClientError::Refused { code: ErrorCode::TryAgain, .. }) if Instant::now() < deadline => {
                        tokio::time::sleep(Duration::from_millis(250)).await;
                    }
                    Err(error) => panic!("{user} rejoining: {error}"),
                }
            }
        }
    };
    let mut bob = rejoin(1, "bob").await;
    let mut cy = rejoin(2, "cy").await;
    println!("the world was served again {:?} after its node died", killed.elapsed());
    sees(&mut bob, cy.avatar(), "cy, after the move").await;
    // Cy came in second (bob was in its snapshot): it sees him walk.
    let mut seq = 0;
    walk(&mut bob, &mut seq, (3.5, 3.5), (4.5, 3.5)).await;
    let (bob_avatar, target) = (bob.avatar(), tiles(4.5, 3.5));
    expect_event(&mut cy, "bob walking, after the move", |e| {
        presence_of(std::slice::from_ref(e), bob_avatar).contains(&target)
    })
    .await;
    // One of the surviving nodes took the world over, and says so in its metrics.
    let mut taken_over = 0;
    for node in &cluster.nodes[1..] {
        let (_, metrics) = http_get(node.0.handle, "/metrics", &[]).await;
        taken_over += metric(&metrics, "isoplane_signaling_worlds_taken_over_total");
    }
    assert_eq!(taken_over, 1, "exactly one node serves the world now");
    // Persistent records survived: the ban still holds, through any node.
    let refused = Client::join(&cluster.nodes[2].url(), &cluster.token("mallory", Role::Member), "test").await;
    assert!(matches!(refused, Err(ClientError::Refused { code: ErrorCode::Banned, .. })), "{refused:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_command_on_one_node_reaches_a_user_on_another() {
    let cluster = Cluster::start();
    // The world is served by node one; bob comes in through node two.
    let mut ada = cluster.join(0, "ada").await;
    let mut bob = cluster.join(1, "bob").await;
    sees(&mut ada, bob.avatar(), "bob").await;
    let admin_token = cluster.token("root", Role::Admin);
    let post = |body: &'static str| {
        let bearer = format!("Bearer {admin_token}");
        let address = cluster.nodes[2].0.handle;
        async move {
            let (status, response) =
                http(address, "POST", "/v1/admin/commands", &[("Authorization", bearer.as_str())], body).await;
            (status, json_body(&response))
        }
    };
    // Node three lists everyone, wherever they are served.
    let (status, people) = post(r#"{"action": "list_people"}"#).await;
    assert_eq!(status, 200, "{people}");
    let mut users: Vec<&str> =
        people["data"]["people"].as_array().unwrap().iter().map(|p| p["user"].as_str().unwrap()).collect();
    users.sort_unstable();
    assert_eq!(users, ["ada", "bob"]);
    // A notice for the world reaches its node.
    let (status, notice) = post(r#"{"action": "notice", "world": "test", "text": "Hello from node three"}"#).await;
    assert_eq!((status, notice["data"]["reached"].as_u64()), (200, Some(2)), "{notice}");
    expect_event(&mut bob, "the notice", |e| matches!(e, Event::Message(ServerMessage::Notice { .. }))).await;
    // The kick, sent to node three, reaches bob, served by node one through node two.
    let (status, kicked) = post(r#"{"action": "kick", "user": "bob", "reason": "from afar"}"#).await;
    assert_eq!(status, 200, "{kicked}");
    let told =
        expect_event(&mut bob, "the kick", |e| matches!(e, Event::Message(ServerMessage::Moderated { .. }))).await;
    assert!(matches!(told, Event::Message(ServerMessage::Moderated { action: ModeratedAction::Kicked, .. })));
    expect_event(&mut bob, "the close", |e| matches!(e, Event::Closed(_))).await;
    let bob_avatar = bob.avatar();
    expect_event(
        &mut ada,
        "bob leaving",
        |e| matches!(e, Event::Message(ServerMessage::AvatarLeft { avatar }) if *avatar == bob_avatar),
    )
    .await;
    let (status, missing) = post(r#"{"action": "kick", "user": "bob"}"#).await;
    assert_eq!((status, missing["error"]["code"].as_str()), (404, Some("user_not_present")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn people_on_two_nodes_list_each_other_and_one_follows_the_other_through_the_proxy() {
    let cluster = Cluster::start();
    // Node one serves the world (ada reached it first); bob's node forwards him there.
    let mut ada = cluster.join(0, "ada").await;
    let mut bob = cluster.join(1, "bob").await;
    sees(&mut ada, bob.avatar(), "bob, who joined through node two").await;
    for (client, id) in [(&mut ada, 1), (&mut bob, 2)] {
        let people = list_people(client, id).await;
        let users: Vec<&str> = people.iter().map(|p| p.user.as_str()).collect();
        assert_eq!(users, ["ada", "bob"], "as seen through node {id}");
    }

    // Bob, forwarded, follows ada: what the owner tells him crosses the proxy.
    bob.send(&ClientMessage::Follow { avatar: ada.avatar() }).await.unwrap();
    expect_event(&mut bob, "following", |e| matches!(e, Event::Message(ServerMessage::Following { .. }))).await;
    let told =
        expect_event(&mut ada, "followers", |e| matches!(e, Event::Message(ServerMessage::Followers { .. }))).await;
    let expected = vec![Follower { avatar: bob.avatar(), name: "BOB".into() }];
    assert_eq!(told, Event::Message(ServerMessage::Followers { followers: expected }));
    let mut seq = 0;
    walk_into_the_room(&mut ada, &mut seq, 8.5).await;
    let end = tiles(8.5, 2.5);
    expect_event(&mut bob, "ada's last place, through the proxy", |e| {
        matches!(e, Event::Message(ServerMessage::FolloweeMoved { zone, position, .. }) if zone == "room" && *position == end)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_direct_message_from_a_client_on_one_node_reaches_a_client_on_another() {
    let cluster = Cluster::start();
    let mut ada = cluster.join(0, "ada").await;
    let mut bob = cluster.join(1, "bob").await;
    sees(&mut ada, bob.avatar(), "bob, who joined through node two").await;
    let chat = |e: &Event| matches!(e, Event::Message(ServerMessage::Chat { .. }));

    ada.send_chat(ChatScope::Direct, Some("bob"), "hello from node one").await.unwrap();
    let Event::Message(ServerMessage::Chat { message }) = expect_event(&mut bob, "ada's message", chat).await else {
        unreachable!()
    };
    assert_eq!(
        (message.scope, message.from.user.as_str(), message.text.as_str()),
        (ChatScope::Direct, "ada", "hello from node one")
    );
    bob.send_chat(ChatScope::Direct, Some("ada"), "and back from node two").await.unwrap();
    let texts = |e: &Event| match e {
        Event::Message(ServerMessage::Chat { message }) => Some(message.text.clone()),
        _ => None,
    };
    let mut seen = Vec::new();
    while seen.len() < 2 {
        let event = expect_event(&mut ada, "both messages on ada's side", chat).await;
        seen.extend(texts(&event));
    }
    assert_eq!(seen, ["hello from node one", "and back from node two"]);
}
