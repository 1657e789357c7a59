//! What the signaling integration tests share: a real server on 127.0.0.1 with the
//! engine tests' world, tokens, and ways to walk and wait.
#![allow(dead_code)] // each test file uses its own part
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a failed expectation is a failed test

use std::net::SocketAddr;
use std::time::Duration;

use isoplane_signaling::auth::{JoinClaims, Role, TokenKey};
use isoplane_signaling::client::{Client, ClientError, Event};
use isoplane_signaling::config::Config;
use isoplane_signaling::protocol::{
    AvatarId, AvatarState, ClientMessage, CorrectionReason, MediaPlan, Person, Point, ServerMessage,
};
use isoplane_signaling::server::{self, unix_now};
use isoplane_world_format::{Facing, Position};
use tokio_util::sync::CancellationToken;

pub const SECRET: &str = "test-secret-0123456789";

/// The engine tests' world (see signaling/src/engine/tests.rs for the drawing): a lobby,
/// a meeting room behind a thin wall (SFU above 2), a one-person booth, a silent zone,
/// a seat at (3, 1).
pub const TEST_WORLD: &str = r#"{
  "format": "isoplane.world", "version": 1, "name": "websocket test",
  "grid": {"orientation": "orthogonal", "width": 12, "height": 8, "tile_width": 32, "tile_height": 32},
  "movement": {"max_speed": 4.0, "slack": 0.5},
  "collision": {
    "rows": ["............", "............", "............", "............",
             "....#.......", "............", "............", "............"],
    "walls": [{"from": [6, 0], "to": [6, 2]}]
  },
  "spawns": [{"id": "main", "x": 3, "y": 3}],
  "default_zone": {"id": "lobby", "name": "Lobby", "type": "open", "talk_radius": 3},
  "zones": [
    {"id": "room", "name": "Room", "type": "meeting_room", "sfu_threshold": 2, "area": [{"x": 6, "y": 0, "w": 6, "h": 4}]},
    {"id": "booth", "name": "Booth", "type": "private", "capacity": 1, "area": [{"x": 0, "y": 5, "w": 3, "h": 3}]},
    {"id": "quiet", "name": "Quiet", "type": "silent", "area": [{"x": 7, "y": 5, "w": 5, "h": 3}]}
  ],
  "objects": [{"id": "seat", "kind": "seat", "area": [{"x": 3, "y": 1}]}]
}"#;

pub const SFU_SECRET: &str = "sfu-secret-0123456789";

/// A real SFU on loopback: the one SFU a [`TestServer`] is configured with, which
/// signaling probes and hands crowded zones to while it answers.
pub struct TestSfu {
    pub http: SocketAddr,
    shutdown: CancellationToken,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl TestSfu {
    /// Starts an SFU whose HTTP side listens on `http` (port 0: any free port).
    pub async fn start(http: SocketAddr) -> TestSfu {
        let config = isoplane_sfu::Config {
            listen_http: http,
            listen_tcp: None,
            workers: 1,
            ..isoplane_sfu::Config::for_loopback(SFU_SECRET)
        };
        let bound = isoplane_sfu::bind(config).await.unwrap();
        let http = bound.http_addr();
        let shutdown = CancellationToken::new();
        let task = Some(tokio::spawn(bound.run(shutdown.clone())));
        TestSfu { http, shutdown, task }
    }

    /// Stops the SFU and waits until its sockets are closed.
    pub async fn stop(&mut self) {
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            task.await.unwrap().unwrap();
        }
    }

    /// Starts the SFU again on the same HTTP address.
    pub async fn restart(&mut self) {
        self.stop().await;
        *self = TestSfu::start(self.http).await;
    }
}

impl Drop for TestSfu {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

pub struct TestServer {
    pub address: SocketAddr,
    pub shutdown: CancellationToken,
    pub task: tokio::task::JoinHandle<std::io::Result<()>>,
    pub sfu: TestSfu,
    _worlds: tempfile::TempDir,
}

impl TestServer {
    pub async fn start(adjust: impl FnOnce(&mut Config)) -> TestServer {
        let worlds = tempfile::tempdir().unwrap();
        std::fs::write(worlds.path().join("test.world.json"), TEST_WORLD).unwrap();
        let mut config = Config {
            listen: "127.0.0.1:0".parse().unwrap(),
            workspace: "acme".into(),
            token_secret: SECRET.into(),
            ..Config::default()
        };
        config.worlds.directory = Some(worlds.path().to_owned());
        config.worlds.demo = true;
        config.policy.hysteresis_hold = Duration::from_secs(1);
        let sfu = TestSfu::start("127.0.0.1:0".parse().unwrap()).await;
        config.media.sfu_url = Some(format!("ws://{}/v1/sfu", sfu.http));
        config.media.sfu_secret = Some(SFU_SECRET.into());
        adjust(&mut config);
        let bound = server::bind(config).await.unwrap();
        let address = bound.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(bound.run(shutdown.clone()));
        TestServer { address, shutdown, task, sfu, _worlds: worlds }
    }

    pub fn url(&self) -> String {
        format!("ws://{}/v1/ws", self.address)
    }

    pub async fn join(&self, user: &str) -> Client {
        Client::join(&self.url(), &token(user, "acme", unix_now() + 600), "test").await.unwrap()
    }

    pub async fn get(&self, path: &str) -> (u16, String) {
        http_get(self.address, path, &[]).await
    }
}

pub fn token(user: &str, workspace: &str, exp: u64) -> String {
    token_with_role(user, workspace, exp, Role::Member)
}

pub fn token_with_role(user: &str, workspace: &str, exp: u64, role: Role) -> String {
    let claims = JoinClaims::new(user, &user.to_uppercase(), workspace, role, exp);
    TokenKey::new(SECRET).sign(&claims)
}

/// A minimal HTTP/1.1 GET over a raw socket (no HTTP client dependency needed).
pub async fn http_get(address: SocketAddr, path: &str, headers: &[(&str, &str)]) -> (u16, String) {
    http(address, "GET", path, headers, "").await
}

/// A minimal HTTP/1.1 request; returns the status and the whole response (head and body).
pub async fn http(
    address: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {address}\r\n");
    if !headers.iter().any(|(name, _)| name.eq_ignore_ascii_case("connection")) {
        request.push_str("Connection: close\r\n");
    }
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    if !body.is_empty() {
        request.push_str(&format!("Content-Type: application/json\r\nContent-Length: {}\r\n", body.len()));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let status = response[9..12].parse().unwrap();
    (status, response)
}

/// The JSON body of a response `http` returned.
pub fn json_body(response: &str) -> serde_json::Value {
    let body = response.split_once("\r\n\r\n").map_or("", |(_, body)| body);
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {response}"))
}

pub fn tiles(x: f64, y: f64) -> Point {
    let p = Position::from_tiles(x, y);
    Point { x: p.x, y: p.y }
}

/// Walks a client in half-tile steps at a walking pace, as a browser would.
pub async fn walk(client: &mut Client, seq: &mut u32, from: (f64, f64), to: (f64, f64)) {
    let steps = ((to.0 - from.0).hypot(to.1 - from.1) / 0.25).ceil().max(1.0) as u32;
    for i in 1..=steps {
        let t = f64::from(i) / f64::from(steps);
        *seq += 1;
        let point = tiles(from.0 + (to.0 - from.0) * t, from.1 + (to.1 - from.1) * t);
        client.send_move(*seq, point, Facing::East, AvatarState::Walking).await.unwrap();
        tokio::time::sleep(Duration::from_millis(70)).await;
    }
}

/// Walks a client from the lobby's spawn through the door into the meeting room, to
/// `(x, 2.5)`; `seq` goes on from where it is.
pub async fn walk_into_the_room(client: &mut Client, seq: &mut u32, x: f64) {
    walk(client, seq, (3.5, 3.5), (5.5, 2.5)).await;
    walk(client, seq, (5.5, 2.5), (x, 2.5)).await;
}

pub const WAIT: Duration = Duration::from_secs(5);

/// The media plan an event carries, if it is one.
pub fn plan(event: &Event) -> Option<&MediaPlan> {
    match event {
        Event::Message(ServerMessage::Media { plan }) => Some(plan),
        _ => None,
    }
}

/// Reads events until one matches, failing after a few seconds.
pub async fn expect_event(client: &mut Client, what: &str, mut matches: impl FnMut(&Event) -> bool) -> Event {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match client.next_event_within(left).await {
            Ok(event) if matches(&event) => return event,
            Ok(_) => continue,
            Err(error) => panic!("waiting for {what}: {error}"),
        }
    }
}

/// Collects every event that arrives within `window`.
pub async fn events_within(client: &mut Client, window: Duration) -> Vec<Event> {
    let deadline = tokio::time::Instant::now() + window;
    let mut events = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match client.next_event_within(left).await {
            Ok(event) => events.push(event),
            Err(ClientError::Timeout) => return events,
            Err(error) => panic!("{error}"),
        }
    }
}

pub fn presence_of(events: &[Event], avatar: AvatarId) -> Vec<Point> {
    events
        .iter()
        .flat_map(|e| match e {
            Event::Presence { entries, .. } => {
                entries.iter().filter(|x| x.avatar == avatar).map(|x| x.position).collect()
            }
            _ => Vec::new(),
        })
        .collect()
}

pub fn correction(event: &Event) -> Option<CorrectionReason> {
    match event {
        Event::Message(ServerMessage::Correction { reason, .. }) => Some(*reason),
        _ => None,
    }
}

/// Asks for the list of everyone and waits for the answer.
pub async fn list_people(client: &mut Client, id: u32) -> Vec<Person> {
    client.send(&ClientMessage::ListPeople { id }).await.unwrap();
    let answer = expect_event(
        client,
        "the people list",
        |e| matches!(e, Event::Message(ServerMessage::People { id: answered, .. }) if *answered == id),
    )
    .await;
    let Event::Message(ServerMessage::People { people, .. }) = answer else { unreachable!() };
    people
}
