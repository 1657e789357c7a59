//! `isoplane admin …` as an operator runs it: the real binary against a real signaling
//! server on 127.0.0.1, a real client on the receiving end, and exit codes scripts can
//! trust. (This file belongs to the root `isoplane` package, which owns the binary.)
#![allow(clippy::expect_used, clippy::unwrap_used)] // test helpers: a failed expectation is a failed test

use std::net::SocketAddr;
use std::process::{Command, Output};
use std::time::Duration;

use isoplane_signaling::auth::{JoinClaims, Role, TokenKey};
use isoplane_signaling::client::{Client, Event};
use isoplane_signaling::config::Config;
use isoplane_signaling::protocol::{ErrorCode, ModeratedAction, ServerMessage};
use isoplane_signaling::server::{self, unix_now};
use tokio_util::sync::CancellationToken;

const BINARY: &str = env!("CARGO_BIN_EXE_isoplane");
const SECRET: &str = "cli-test-secret-0123456789";

fn token(user: &str, role: Role) -> String {
    TokenKey::new(SECRET).sign(&JoinClaims::new(user, &user.to_uppercase(), "default", role, unix_now() + 600))
}

/// Runs `isoplane admin ARGS` with `token` in the environment, off the async runtime.
async fn admin(address: SocketAddr, token: String, args: &[&str]) -> Output {
    let mut command = Command::new(BINARY);
    command.arg("admin").arg("--server").arg(format!("http://{address}")).args(args);
    command.env("ISOPLANE_ADMIN_TOKEN", token);
    tokio::task::spawn_blocking(move || command.output().expect("the isoplane binary runs")).await.unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

async fn next_moderated(client: &mut Client) -> (ModeratedAction, String) {
    loop {
        match tokio::time::timeout(Duration::from_secs(5), client.next_event()).await.unwrap().unwrap() {
            Event::Message(ServerMessage::Moderated { action, reason, .. }) => return (action, reason),
            Event::Closed(_) => panic!("closed before a moderated message"),
            _ => continue,
        }
    }
}

#[tokio::test]
async fn an_admin_moderates_from_the_command_line_and_a_member_is_refused() {
    let database = tempfile::tempdir().unwrap();
    let mut config =
        Config { listen: "127.0.0.1:0".parse().unwrap(), token_secret: SECRET.into(), ..Config::default() };
    config.worlds.demo = true;
    config.database_url = Some(format!("sqlite://{}", database.path().join("isoplane.db").display()));
    let bound = server::bind(config).await.unwrap();
    let address = bound.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(bound.run(shutdown.clone()));
    let url = format!("ws://{address}/v1/ws");
    let mut bob = Client::join(&url, &token("bob", Role::Member), "demo").await.unwrap();

    let people = admin(address, token("ada", Role::Admin), &["people"]).await;
    assert!(people.status.success(), "{}", text(&people.stderr));
    let listing = text(&people.stdout);
    assert!(
        listing.starts_with("WORLD") && listing.lines().any(|l| l.contains("demo") && l.contains("bob")),
        "{listing}"
    );

    let muted = admin(address, token("ada", Role::Admin), &["mute", "bob", "--audio", "--reason", "echo"]).await;
    assert!(muted.status.success(), "{}", text(&muted.stderr));
    assert_eq!(next_moderated(&mut bob).await, (ModeratedAction::Muted, "echo".to_owned()));

    let refused = admin(address, token("mallory", Role::Member), &["kick", "bob"]).await;
    assert_eq!(refused.status.code(), Some(1));
    assert!(text(&refused.stderr).contains("forbidden"), "{}", text(&refused.stderr));

    let kicked = admin(address, token("ada", Role::Admin), &["kick", "bob", "--reason", "spam"]).await;
    assert!(kicked.status.success(), "{}", text(&kicked.stderr));
    assert_eq!(next_moderated(&mut bob).await, (ModeratedAction::Kicked, "spam".to_owned()));
    let gone = Client::join(&url, &token("bob", Role::Member), "demo").await;
    assert!(gone.is_ok(), "a kick is not a ban: {gone:?}");

    let audit = admin(address, token("ada", Role::Admin), &["audit"]).await;
    assert!(audit.status.success(), "{}", text(&audit.stderr));
    let log = text(&audit.stdout);
    let actions: Vec<(&str, &str)> = log
        .lines()
        .skip(1)
        .map(|l| {
            let columns: Vec<&str> = l.split_whitespace().collect();
            (columns[3], columns[5])
        })
        .collect();
    assert_eq!(actions, [("kick", "done"), ("kick", "refused"), ("mute", "done")], "{log}");

    let json = admin(address, token("ada", Role::Admin), &["--json", "mutes"]).await;
    let answer: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(answer["data"]["mutes"][0]["user_id"], "bob");

    let bad = admin(address, token("ada", Role::Admin), &["capacity", "demo", "lobby", "lots"]).await;
    assert_eq!(bad.status.code(), Some(1));
    assert!(text(&bad.stderr).contains("a number or `none`"), "{}", text(&bad.stderr));
    let unreachable = {
        let mut command = Command::new(BINARY);
        command.args(["admin", "--server", "http://127.0.0.1:9", "--token", "x", "people"]);
        tokio::task::spawn_blocking(move || command.output().unwrap()).await.unwrap()
    };
    assert_eq!(unreachable.status.code(), Some(1));
    assert!(text(&unreachable.stderr).contains("cannot reach"), "{}", text(&unreachable.stderr));

    let banned = admin(address, token("ada", Role::Admin), &["ban", "bob", "--for", "3600"]).await;
    assert!(banned.status.success(), "{}", text(&banned.stderr));
    let refused = Client::join(&url, &token("bob", Role::Member), "demo").await;
    assert!(
        matches!(refused, Err(isoplane_signaling::client::ClientError::Refused { code: ErrorCode::Banned, .. })),
        "{refused:?}"
    );
    shutdown.cancel();
    task.await.unwrap().unwrap();
}
