//! The crowd (tests/src/crowd) against a real signaling server on loopback: people walk,
//! leave and come back, and signal their peers; a kicked person stays away; and when the
//! server dies and comes back on the same port, everyone reconnects by themselves.
//!
//! The server runs on a runtime of its own so that it can die at once, as a crash would.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed expectation is a failed test

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use isoplane_service::testing::OwnRuntime;
use isoplane_signaling::auth::{JoinClaims, Role, TokenKey};
use isoplane_signaling::client::{Client, Event};
use isoplane_signaling::config::Config;
use isoplane_signaling::protocol::{AdminCommand, ClientMessage, ServerMessage, UserArgs};
use isoplane_signaling::server::{self, unix_now};
use isoplane_tests::crowd::{Churn, Crowd, CrowdSettings, CrowdStats, CrowdWorld, TokenMaker};
use tokio_util::sync::CancellationToken;

const SECRET: &str = "crowd-secret-0123456789";
const WORLD: &str = "crowd";
const SFU_SECRET: &str = "crowd-sfu-secret-0123456789";

fn token(user: &str, role: Role) -> String {
    TokenKey::new(SECRET).sign(&JoinClaims::new(user, user, "default", role, unix_now() + 3600))
}

fn tokens() -> TokenMaker {
    Arc::new(|person| token(&format!("person-{person}"), Role::Member))
}

/// The crowd's world as a signaling world directory.
fn world_directory(world: &CrowdWorld) -> tempfile::TempDir {
    let directory = tempfile::tempdir().unwrap();
    std::fs::write(directory.path().join(format!("{WORLD}.world.json")), &world.json).unwrap();
    directory
}

/// Signaling serving the worlds of `directory` at `listen`; binding again until the port
/// is free (a server that just died may still hold it for a moment).
fn start_signaling(
    listen: SocketAddr,
    directory: &tempfile::TempDir,
    adjust: impl FnOnce(&mut Config),
) -> OwnRuntime<SocketAddr> {
    let mut config = Config { listen, token_secret: SECRET.into(), ..Config::default() };
    config.worlds.directory = Some(directory.path().to_owned());
    // Every person comes from 127.0.0.1.
    config.limits.connections_per_ip = 10_000;
    adjust(&mut config);
    OwnRuntime::start(1, move || async move {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        let bound = loop {
            match server::bind(config.clone()).await {
                Ok(bound) => break bound,
                Err(error @ server::StartError::Bind { .. }) if tokio::time::Instant::now() < deadline => {
                    eprintln!("binding again: {error}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(error) => panic!("starting signaling: {error}"),
            }
        };
        (bound.local_addr().unwrap(), bound.run(CancellationToken::new()))
    })
}

fn url(address: SocketAddr) -> String {
    format!("ws://{address}/v1/ws")
}

fn print(what: &str, stats: &CrowdStats) {
    eprintln!("{what}: {stats:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_people_walk_leave_come_back_and_signal_their_peers() {
    let world = CrowdWorld::new(2);
    let directory = world_directory(&world);
    let server = start_signaling("127.0.0.1:0".parse().unwrap(), &directory, |_| {});
    let mut settings = CrowdSettings::new(&url(server.handle), WORLD, world, 50, tokens());
    settings.ramp_up = Duration::from_secs(2);
    settings.churn = Some(Churn { mean_stay: Duration::from_secs(6), mean_pause: Duration::from_secs(1) });
    settings.signals = true;
    let crowd = Crowd::start(settings);
    tokio::time::sleep(Duration::from_secs(15)).await;
    let during = crowd.stats();
    let stats = crowd.stop().await;
    print("after 15 s", &stats);

    assert!(during.connected > 25, "most people are in at any time: {during:#?}");
    assert!(stats.leaves > 10 && stats.joins >= 50 + stats.leaves / 2, "people left and came back: {stats:#?}");
    assert_eq!(stats.connected, 0, "everyone left at the stop");
    assert_eq!(stats.join_failures + stats.unexpected_closes + stats.gave_up + stats.moderated, 0, "{stats:#?}");
    assert_eq!(stats.reconnects, 0, "nobody lost a connection: {stats:#?}");
    assert!(stats.moves_sent > 50 * 10 * 10, "people walked: {stats:#?}");
    assert_eq!(stats.corrections, 0, "an honest walk is never corrected: {stats:#?}");
    assert!(stats.latency.samples > 1000 && stats.latency.p50 > Duration::ZERO, "{stats:#?}");
    assert!(stats.latency.p50 <= stats.latency.p99 && stats.latency.p99 <= stats.latency.max, "{stats:#?}");
    assert!(stats.signals_received > 0 && stats.signals_received <= stats.signals_sent, "{stats:#?}");
    // A signal may cross its peer's leave or a plan change; nothing else may go wrong.
    let not_paired = stats.errors_with("not_paired");
    assert_eq!(stats.errors.values().sum::<u64>(), not_paired, "{:?}", stats.errors);
    assert!(stats.signals_received + not_paired <= stats.signals_sent, "{stats:#?}");
    // Each person has at most one join in flight when the crowd stops.
    assert!(stats.joins <= stats.attempts && stats.attempts <= stats.joins + 50, "{stats:#?}");
    assert_eq!(stats.attempts_per_second.iter().sum::<u64>(), stats.attempts);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kicked_person_does_not_come_back() {
    let world = CrowdWorld::new(1);
    let directory = world_directory(&world);
    let server = start_signaling("127.0.0.1:0".parse().unwrap(), &directory, |_| {});
    let mut settings = CrowdSettings::new(&url(server.handle), WORLD, world, 5, tokens());
    settings.ramp_up = Duration::from_millis(500);
    let crowd = Crowd::start(settings);
    crowd.wait_all_connected(Duration::from_secs(20)).await.unwrap();

    let mut admin = Client::join(&url(server.handle), &token("admin", Role::Admin), WORLD).await.unwrap();
    let kick = AdminCommand::Kick(UserArgs { user: "person-3".into(), reason: "test".into() });
    admin.send(&ClientMessage::Admin { id: 1, command: kick }).await.unwrap();
    loop {
        match admin.next_event_within(Duration::from_secs(10)).await.unwrap() {
            Event::Message(ServerMessage::AdminResult { id: 1, ok, error, .. }) => break assert!(ok, "{error:?}"),
            Event::Closed(code) => panic!("the admin's connection closed: {code:?}"),
            _ => continue,
        }
    }
    let kicked = crowd.wait_for(Duration::from_secs(10), |s| s.moderated == 1).await.unwrap();
    // A reconnection would come within the first backoff window (0.5 s); wait longer.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let stats = crowd.stop().await;
    print("after the kick", &stats);
    assert_eq!((kicked.connected, stats.joins, stats.attempts), (4, 5, 5), "{stats:#?}");
    assert_eq!((stats.unexpected_closes, stats.reconnects, stats.gave_up), (0, 0, 0), "{stats:#?}");
    assert_eq!(stats.errors_with("kicked"), 1, "{:?}", stats.errors);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn everyone_reconnects_when_the_server_dies_and_comes_back_on_the_same_port() {
    let world = CrowdWorld::new(2);
    let directory = world_directory(&world);
    let mut server = start_signaling("127.0.0.1:0".parse().unwrap(), &directory, |_| {});
    let address = server.handle;
    let mut settings = CrowdSettings::new(&url(address), WORLD, world, 50, tokens());
    settings.ramp_up = Duration::from_secs(1);
    settings.signals = true;
    let crowd = Crowd::start(settings);
    crowd.wait_all_connected(Duration::from_secs(20)).await.unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;

    // A crash: every connection drops at once, and nobody can get back in for 2 s.
    server.kill();
    let dropped = crowd.wait_for(Duration::from_secs(10), |s| s.connected == 0).await.unwrap();
    let killed_at = dropped.attempts_per_second.len();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let while_down = crowd.stats();
    assert_eq!(while_down.unexpected_closes, 50, "{while_down:#?}");
    assert!(while_down.join_failures > 0, "people tried while it was down: {while_down:#?}");
    assert_eq!(while_down.gave_up, 0, "a lost connection is never final: {while_down:#?}");

    let _restarted = start_signaling(address, &directory, |_| {});
    let back = crowd.wait_all_connected(Duration::from_secs(60)).await.unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let stats = crowd.stop().await;
    print("after the restart", &stats);
    eprintln!("attempts per second from the crash on: {:?}", &stats.attempts_per_second[killed_at.saturating_sub(1)..]);
    assert_eq!((back.reconnects, back.joins), (50, 100), "{back:#?}");
    assert_eq!(stats.resumed, 0, "a new server has no sessions to resume");
    assert_eq!(stats.attempts, stats.joins + stats.join_failures, "{stats:#?}");
    assert_eq!((stats.unexpected_closes, stats.gave_up, stats.moderated), (50, 0, 0), "{stats:#?}");
    assert!(stats.latency.samples > 0, "{stats:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn people_open_an_sfu_session_when_their_crowded_zone_goes_to_the_sfu() {
    let sfu = isoplane_sfu::bind(isoplane_sfu::Config::for_loopback(SFU_SECRET)).await.unwrap();
    let sfu_http = sfu.http_addr();
    let sfu_stop = CancellationToken::new();
    tokio::spawn(sfu.run(sfu_stop.clone()));
    let world = CrowdWorld::new(1);
    let directory = world_directory(&world);
    let server = start_signaling("127.0.0.1:0".parse().unwrap(), &directory, move |config| {
        config.media.sfu_url = Some(format!("ws://{sfu_http}/v1/sfu"));
        config.media.sfu_control_url = Some(format!("http://{sfu_http}"));
        config.media.sfu_secret = Some(SFU_SECRET.into());
        config.policy.open_sfu_threshold = 4;
    });
    let mut settings = CrowdSettings::new(&url(server.handle), WORLD, world, 8, tokens());
    settings.ramp_up = Duration::from_secs(1);
    settings.sfu_sessions = true;
    let crowd = Crowd::start(settings);
    // More than 4 people in the zone: everyone's plan says SFU, and everyone gets in.
    let joined = crowd.wait_for(Duration::from_secs(30), |s| s.sfu_joined >= 8).await;
    let stats = crowd.stop().await;
    print("with an SFU", &stats);
    assert!(joined.is_ok(), "everyone joined the SFU: {stats:#?}");
    assert_eq!((stats.sfu_refused, stats.sfu_failed), (0, 0), "{stats:#?}");
    assert!(stats.errors.is_empty(), "{:?}", stats.errors);
    assert_eq!((stats.unexpected_closes, stats.join_failures), (0, 0), "{stats:#?}");
    sfu_stop.cancel();
}
