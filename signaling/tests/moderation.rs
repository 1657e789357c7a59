//! Moderation over real sockets: admin commands over the WebSocket and the HTTP admin
//! API, seen from the admin's side, the target's and bystanders'; refusals for
//! non-admins; bans, locks and the audit log surviving a restart.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a failed expectation is a failed test

mod common;

use std::time::Duration;

use common::*;
use isoplane_metadata::{AuditEntry, Metadata};
use isoplane_signaling::auth::Role;
use isoplane_signaling::client::{Client, ClientError, Event};
use isoplane_signaling::protocol::{
    AdminCommand, AdminErrorCode, ClientMessage, CorrectionReason, ErrorCode, MediaArgs, ModeratedAction,
    ServerMessage, UserArgs, ZoneArgs,
};
use isoplane_signaling::server::unix_now;
use serde_json::Value;

/// A server whose moderation records live in a SQLite file that outlives it.
async fn start_with_database(database: &tempfile::TempDir) -> TestServer {
    let url = format!("sqlite://{}", database.path().join("isoplane.db").display());
    TestServer::start(move |config| config.database_url = Some(url)).await
}

fn admin_token(user: &str) -> String {
    token_with_role(user, "acme", unix_now() + 600, Role::Admin)
}

async fn join_admin(server: &TestServer, user: &str) -> Client {
    Client::join(&server.url(), &admin_token(user), "test").await.unwrap()
}

/// Sends a command over the WebSocket and waits for its answer: `Ok(data)` or the error.
async fn command(client: &mut Client, id: u32, command: AdminCommand) -> Result<Value, AdminErrorCode> {
    command_seeing(client, id, command).await.0
}

/// Like [`command`], also returning what arrived before the answer (a world acts before
/// the answer is sent, so its effects on the admin's own view come first).
async fn command_seeing(
    client: &mut Client,
    id: u32,
    command: AdminCommand,
) -> (Result<Value, AdminErrorCode>, Vec<Event>) {
    client.send(&ClientMessage::Admin { id, command }).await.unwrap();
    let mut before = Vec::new();
    loop {
        let event =
            client.next_event_within(WAIT).await.unwrap_or_else(|e| panic!("waiting for the admin result: {e}"));
        let Event::Message(ServerMessage::AdminResult { id: answered, ok, error, data }) = &event else {
            before.push(event);
            continue;
        };
        if *answered != id {
            continue;
        }
        let result = match (ok, error, data) {
            (true, None, Some(data)) => Ok(serde_json::to_value(data).unwrap()),
            (false, Some(error), None) => Err(error.code),
            other => panic!("a malformed admin result: {other:?}"),
        };
        return (result, before);
    }
}

/// Sends a command to `POST /v1/admin/commands`; returns the status and the JSON body.
async fn post(server: &TestServer, token: &str, body: &str) -> (u16, Value) {
    let bearer = format!("Bearer {token}");
    let (status, response) =
        http(server.address, "POST", "/v1/admin/commands", &[("Authorization", bearer.as_str())], body).await;
    (status, json_body(&response))
}

fn moderated(event: &Event) -> Option<ModeratedAction> {
    match event {
        Event::Message(ServerMessage::Moderated { action, .. }) => Some(*action),
        _ => None,
    }
}

fn kick(user: &str, reason: &str) -> AdminCommand {
    AdminCommand::Kick(UserArgs::new(user, reason))
}

async fn audit(client: &mut Client, id: u32) -> Vec<Value> {
    let data = command(client, id, AdminCommand::ListAudit { before: None, limit: None }).await.unwrap();
    data["entries"].as_array().unwrap().clone()
}

#[tokio::test]
async fn only_admins_may_act_and_every_refusal_is_audited() {
    let database = tempfile::tempdir().unwrap();
    let server = start_with_database(&database).await;
    let mut ada = join_admin(&server, "ada").await;
    let mut bob = server.join("bob").await;

    // Over the WebSocket: refused, and nothing happens to ada.
    assert_eq!(command(&mut bob, 1, kick("ada", "mutiny")).await, Err(AdminErrorCode::Forbidden));
    assert_eq!(
        command(&mut bob, 2, AdminCommand::ListAudit { before: None, limit: None }).await,
        Err(AdminErrorCode::Forbidden)
    );
    // Over HTTP: a member token is refused too; no token or a forged one is not even read.
    let body = r#"{"action": "kick", "user": "ada", "reason": "mutiny"}"#;
    let (status, answer) = post(&server, &token("bob", "acme", unix_now() + 600), body).await;
    assert_eq!((status, answer["error"]["code"].as_str()), (403, Some("forbidden")));
    let (status, _) = post(&server, "not.a.token", body).await;
    assert_eq!(status, 401);
    let forged = isoplane_signaling::auth::TokenKey::new("someone-elses-secret")
        .sign(&isoplane_signaling::auth::JoinClaims::new("bob", "Bob", "acme", Role::Admin, unix_now() + 600));
    assert_eq!(post(&server, &forged, body).await.0, 401);
    let (status, answer) =
        post(&server, &token_with_role("eve", "elsewhere", unix_now() + 600, Role::Admin), body).await;
    assert_eq!((status, answer["error"]["code"].as_str()), (403, Some("forbidden")));
    // Bad bodies: a clear 400, nothing done.
    let (status, answer) = post(&server, &admin_token("ada"), r#"{"action": "explode"}"#).await;
    assert_eq!((status, answer["error"]["code"].as_str()), (400, Some("invalid_command")));
    let (status, answer) = post(&server, &admin_token("ada"), r#"{"action": "mute", "user": "bob"}"#).await;
    assert_eq!((status, answer["error"]["code"].as_str()), (400, Some("invalid_command")), "nothing to mute");
    let long = format!(r#"{{"action": "notice", "world": "test", "text": "{}"}}"#, "x".repeat(1001));
    assert_eq!(post(&server, &admin_token("ada"), &long).await.0, 400);
    let huge = format!(r#"{{"action": "kick", "user": "bob", "reason": "{}"}}"#, "x".repeat(20_000));
    let bearer = format!("Bearer {}", admin_token("ada"));
    let (status, _) = http(server.address, "POST", "/v1/admin/commands", &[("Authorization", &bearer)], &huge).await;
    assert_eq!(status, 413, "bodies over 16 KiB are refused unread");
    // A malformed admin message on the WebSocket is a malformed message; the session goes on.
    bob.send_raw(tokio_tungstenite::tungstenite::Message::Text(
        r#"{"type":"admin","id":3,"command":{"action":"nuke"}}"#.into(),
    ))
    .await
    .unwrap();
    expect_event(&mut bob, "malformed_message", |e| {
        matches!(e, Event::Message(ServerMessage::Error { code: ErrorCode::MalformedMessage, .. }))
    })
    .await;

    // Ada is still here, and the log says who tried what.
    let people = command(&mut ada, 4, AdminCommand::ListPeople).await.unwrap();
    assert_eq!(people["people"].as_array().unwrap().len(), 2);
    let entries = audit(&mut ada, 5).await;
    let refused: Vec<(&str, &str, &str)> = entries
        .iter()
        .filter(|e| e["outcome"] == "refused")
        .map(|e| (e["actor"].as_str().unwrap(), e["action"].as_str().unwrap(), e["target"].as_str().unwrap()))
        .collect();
    assert_eq!(refused, vec![("bob", "kick", "ada"), ("bob", "list_audit", ""), ("bob", "kick", "ada")]);
}

#[tokio::test]
async fn a_kick_removes_the_user_everywhere_tells_them_why_and_bystanders_see_them_go() {
    let server = TestServer::start(|_| {}).await;
    let mut carol = server.join("carol").await;
    let mut bob = server.join("bob").await;
    let bob_avatar = bob.avatar();
    expect_event(&mut carol, "bob entering", |e| matches!(e, Event::Message(ServerMessage::AvatarEntered { .. })))
        .await;

    let (status, answer) =
        post(&server, &admin_token("ada"), r#"{"action": "kick", "user": "bob", "reason": "spam"}"#).await;
    assert_eq!((status, answer["ok"].as_bool()), (200, Some(true)), "{answer}");
    let told = expect_event(&mut bob, "moderated", |e| moderated(e).is_some()).await;
    let Event::Message(ServerMessage::Moderated { action, by, reason }) = told else { unreachable!() };
    assert_eq!((action, by.as_str(), reason.as_str()), (ModeratedAction::Kicked, "ADA", "spam"));
    expect_event(&mut bob, "the kicked error", |e| {
        matches!(e, Event::Message(ServerMessage::Error { code: ErrorCode::Kicked, .. }))
    })
    .await;
    expect_event(&mut bob, "the close", |e| matches!(e, Event::Closed(_))).await;
    expect_event(
        &mut carol,
        "bob leaving",
        |e| matches!(e, Event::Message(ServerMessage::AvatarLeft { avatar }) if *avatar == bob_avatar),
    )
    .await;
    // Someone who is nowhere cannot be kicked; a kicked user may come back.
    let (status, answer) = post(&server, &admin_token("ada"), r#"{"action": "kick", "user": "bob"}"#).await;
    assert_eq!((status, answer["error"]["code"].as_str()), (404, Some("user_not_present")));
    let bob_again = server.join("bob").await;
    assert_ne!(bob_again.avatar(), bob_avatar);
}

#[tokio::test]
async fn a_ban_no_command_announced_removes_the_connected_user_within_the_recheck_interval() {
    let database = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", database.path().join("isoplane.db").display());
    let server_url = url.clone();
    let server = TestServer::start(move |config| {
        config.database_url = Some(server_url);
        config.moderation.recheck_seconds = 1;
    })
    .await;
    let mut carol = server.join("carol").await;
    let mut bob = server.join("bob").await;
    let bob_avatar = bob.avatar();
    expect_event(&mut carol, "bob entering", |e| matches!(e, Event::Message(ServerMessage::AvatarEntered { .. })))
        .await;

    // Written straight to the shared database, as another process would, or as a node
    // sees it when the ban command's cluster message never reached it.
    let records = isoplane_metadata::Metadata::connect(&url, 1).await.unwrap();
    let ban = isoplane_metadata::Ban {
        workspace: "acme".into(),
        user_id: "bob".into(),
        reason: "abuse".into(),
        created_by: "ada".into(),
        created_at: unix_now() as i64,
        expires_at: None,
    };
    let written = std::time::Instant::now();
    records.ban_user(&ban).await.unwrap();

    let told = expect_event(&mut bob, "moderated", |e| moderated(e).is_some()).await;
    let Event::Message(ServerMessage::Moderated { action, reason, .. }) = told else { unreachable!() };
    assert_eq!((action, reason.as_str()), (ModeratedAction::Banned, "abuse"));
    expect_event(&mut bob, "the banned error", |e| {
        matches!(e, Event::Message(ServerMessage::Error { code: ErrorCode::Banned, .. }))
    })
    .await;
    // One interval, plus a margin for a loaded machine.
    assert!(written.elapsed() < Duration::from_secs(3), "removed after {:?}", written.elapsed());
    expect_event(
        &mut carol,
        "bob leaving",
        |e| matches!(e, Event::Message(ServerMessage::AvatarLeft { avatar }) if *avatar == bob_avatar),
    )
    .await;
    // Bob alone was removed: carol, not banned, stays.
    assert_metric(&server, "isoplane_signaling_bans_enforced_late_total", 1).await;
}

/// A server keeping its moderation records in a PostgreSQL schema of its own, re-checking
/// them every second, and a second connection to those records (another node's view).
async fn start_with_postgres(schema: &isoplane_metadata::testing::TestSchema) -> (TestServer, Metadata) {
    let url = schema.url.clone();
    let server = TestServer::start(move |config| {
        config.database_url = Some(url);
        config.moderation.recheck_seconds = 1;
    })
    .await;
    let records = Metadata::connect(&schema.url, 1).await.unwrap();
    (server, records)
}

/// A kick as the audit log keeps it once a kick command has been carried out.
fn logged_kick(user: &str, reason: &str, at: u64) -> AuditEntry {
    AuditEntry {
        id: 0,
        workspace: "acme".into(),
        actor: "ada".into(),
        action: "kick".into(),
        target: user.into(),
        reason: reason.into(),
        outcome: AuditEntry::DONE.into(),
        detail: String::new(),
        created_at: at as i64,
    }
}

/// Fails if, within `window`, the client is told of any moderation or its connection ends.
async fn stays_unmoderated(client: &mut Client, who: &str, window: Duration) {
    for event in events_within(client, window).await {
        assert!(moderated(&event).is_none() && !matches!(event, Event::Closed(_)), "{who} got {event:?}");
    }
}

/// Bob joins again after a kick and stays through the re-checks that follow (a kick is
/// not a ban).
async fn back_after_the_kick(server: &TestServer) -> Client {
    let mut bob = server.join("bob").await;
    stays_unmoderated(&mut bob, "bob, back after the kick", Duration::from_millis(2500)).await;
    bob
}

/// Asserts that `/metrics` has the line `name value`.
async fn assert_metric(server: &TestServer, name: &str, value: u64) {
    let (_, metrics) = http(server.address, "GET", "/metrics", &[], "").await;
    assert!(metrics.contains(&format!("{name} {value}\n")), "want {name} {value}: {metrics}");
}

#[tokio::test]
async fn a_kick_no_node_announced_removes_whoever_joined_before_it_within_the_recheck_interval() {
    let schema = isoplane_metadata::testing::TestSchema::create("signaling_late_kick").await;
    let (server, records) = start_with_postgres(&schema).await;
    let mut carol = server.join("carol").await;
    let mut bob = server.join("bob").await;
    let bob_avatar = bob.avatar();
    expect_event(&mut carol, "bob entering", |e| matches!(e, Event::Message(ServerMessage::AvatarEntered { .. })))
        .await;
    // The log keeps whole seconds: let the second bob joined in end, so his join is
    // surely before the kick.
    let joined = unix_now();
    while unix_now() <= joined {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Logged as a kick command logs it, with no message to this node: as a node sees a
    // kick whose cluster message never reached it.
    let written = std::time::Instant::now();
    records.record_audit(&logged_kick("bob", "spam", unix_now())).await.unwrap();
    let told = expect_event(&mut bob, "moderated", |e| moderated(e).is_some()).await;
    let Event::Message(ServerMessage::Moderated { action, by, reason }) = told else { unreachable!() };
    assert_eq!((action, by.as_str(), reason.as_str()), (ModeratedAction::Kicked, "an admin", "spam"));
    expect_event(&mut bob, "the kicked error", |e| {
        matches!(e, Event::Message(ServerMessage::Error { code: ErrorCode::Kicked, .. }))
    })
    .await;
    expect_event(&mut bob, "the close", |e| matches!(e, Event::Closed(_))).await;
    // One interval, plus a margin for a loaded machine.
    assert!(written.elapsed() < Duration::from_secs(3), "removed after {:?}", written.elapsed());
    expect_event(
        &mut carol,
        "bob leaving",
        |e| matches!(e, Event::Message(ServerMessage::AvatarLeft { avatar }) if *avatar == bob_avatar),
    )
    .await;

    // A kick is not a ban: bob, back after it, stays through later re-checks, as does
    // carol, whom it does not name.
    let bob_again = back_after_the_kick(&server).await;
    assert_ne!(bob_again.avatar(), bob_avatar);
    stays_unmoderated(&mut carol, "carol", Duration::ZERO).await;
    assert_metric(&server, "isoplane_signaling_kicks_enforced_late_total", 1).await;
}

#[tokio::test]
async fn a_live_kick_still_acts_at_once_and_the_recheck_spares_the_user_who_comes_back() {
    let schema = isoplane_metadata::testing::TestSchema::create("signaling_live_kick").await;
    let (server, records) = start_with_postgres(&schema).await;
    let mut bob = server.join("bob").await;

    let (status, answer) =
        post(&server, &admin_token("ada"), r#"{"action": "kick", "user": "bob", "reason": "spam"}"#).await;
    assert_eq!((status, answer["ok"].as_bool()), (200, Some(true)), "{answer}");
    let told = expect_event(&mut bob, "moderated", |e| moderated(e).is_some()).await;
    let Event::Message(ServerMessage::Moderated { action, by, .. }) = told else { unreachable!() };
    assert_eq!((action, by.as_str()), (ModeratedAction::Kicked, "ADA"));
    expect_event(&mut bob, "the close", |e| matches!(e, Event::Closed(_))).await;
    // The command logged the kick the re-check reads...
    let since = unix_now() as i64 - 60;
    let logged = records.actions_since("acme", "kick", since).await.unwrap();
    assert_eq!(logged.iter().map(|e| e.target.as_str()).collect::<Vec<_>>(), ["bob"]);
    // ...and bob, back at once (within the kick's second, most likely), stays.
    back_after_the_kick(&server).await;
    assert_metric(&server, "isoplane_signaling_kicks_enforced_late_total", 0).await;
}

#[tokio::test]
async fn a_mute_no_node_announced_reaches_the_connected_user_within_the_recheck_interval() {
    let schema = isoplane_metadata::testing::TestSchema::create("signaling_late_mute").await;
    let (server, records) = start_with_postgres(&schema).await;
    let mut bob = server.join("bob").await;

    let mute = isoplane_metadata::Mute {
        workspace: "acme".into(),
        user_id: "bob".into(),
        audio: true,
        video: false,
        chat: false,
        reason: "echo".into(),
        created_by: "ada".into(),
        created_at: unix_now() as i64,
    };
    records.set_mute(&mute).await.unwrap();
    let told = expect_event(&mut bob, "muted", |e| moderated(e).is_some()).await;
    let Event::Message(ServerMessage::Moderated { action, reason, .. }) = told else { unreachable!() };
    assert_eq!((action, reason.as_str()), (ModeratedAction::Muted, "echo"));
    // Lifted the same way, it is lifted here too.
    records.set_mute(&isoplane_metadata::Mute { audio: false, ..mute }).await.unwrap();
    let told = expect_event(&mut bob, "unmuted", |e| moderated(e).is_some()).await;
    assert_eq!(moderated(&told), Some(ModeratedAction::Unmuted));
    assert_metric(&server, "isoplane_signaling_mutes_enforced_late_total", 2).await;
}

#[tokio::test]
async fn a_mute_reaches_the_target_and_every_peer_and_holds_across_a_reconnect() {
    let server = TestServer::start(|_| {}).await;
    let mut ada = join_admin(&server, "ada").await;
    let mut bob = server.join("bob").await;
    // Side by side in the open lobby: paired peer to peer.
    expect_event(&mut ada, "a plan with bob", |e| {
        plan(e).is_some_and(|p| p.peers.iter().any(|l| l.avatar == bob.avatar()))
    })
    .await;
    let mute = AdminCommand::Mute(MediaArgs { user: "bob".into(), audio: true, video: false, reason: "echo".into() });
    let data = command(&mut ada, 1, mute).await.unwrap();
    assert_eq!((data["audio_muted"].as_bool(), data["video_muted"].as_bool()), (Some(true), Some(false)));
    let bob_avatar = bob.avatar();
    // Ada, the peer, is told to drop bob's audio (and only that).
    let peer_plan = expect_event(&mut ada, "a plan muting bob", |e| {
        plan(e).is_some_and(|p| p.peers.iter().any(|l| l.avatar == bob_avatar && l.audio_muted))
    })
    .await;
    assert!(plan(&peer_plan).unwrap().peers.iter().all(|l| !l.video_muted));
    // Bob hears of it, and his own plan says so.
    assert_eq!(
        moderated(&expect_event(&mut bob, "moderated", |e| moderated(e).is_some()).await),
        Some(ModeratedAction::Muted)
    );
    expect_event(&mut bob, "a muted plan", |e| plan(e).is_some_and(|p| p.audio_muted && !p.video_muted)).await;

    // A new connection (even a fresh session after leaving) does not shake it off.
    bob.send(&ClientMessage::Leave).await.unwrap();
    let mut bob = server.join("bob").await;
    expect_event(&mut bob, "a muted plan after rejoining", |e| plan(e).is_some_and(|p| p.audio_muted)).await;
    let bob_avatar = bob.avatar();
    expect_event(&mut ada, "the new bob still muted", |e| {
        plan(e).is_some_and(|p| p.peers.iter().any(|l| l.avatar == bob_avatar && l.audio_muted))
    })
    .await;
    let listed = command(&mut ada, 2, AdminCommand::ListMutes).await.unwrap();
    assert_eq!(listed["mutes"][0]["user_id"], "bob");

    let unmute =
        AdminCommand::Unmute(MediaArgs { user: "bob".into(), audio: true, video: false, reason: String::new() });
    command(&mut ada, 3, unmute).await.unwrap();
    expect_event(&mut bob, "unmuted", |e| moderated(e) == Some(ModeratedAction::Unmuted)).await;
    expect_event(&mut ada, "bob audible again", |e| {
        plan(e).is_some_and(|p| p.peers.iter().any(|l| l.avatar == bob_avatar && !l.audio_muted))
    })
    .await;
    assert_eq!(command(&mut ada, 4, AdminCommand::ListMutes).await.unwrap()["mutes"], serde_json::json!([]));
}

#[tokio::test]
async fn bans_locks_roles_and_the_audit_log_survive_a_restart() {
    let database = tempfile::tempdir().unwrap();
    let server = start_with_database(&database).await;
    let mut ada = join_admin(&server, "ada").await;
    let mut bob = server.join("bob").await;
    let bob_avatar = bob.avatar();
    let ban = AdminCommand::Ban { user: "bob".into(), reason: "abuse".into(), duration_seconds: None };
    let (result, seen) = command_seeing(&mut ada, 1, ban).await;
    assert_eq!(result.unwrap()["worlds"], 1);
    let left = |e: &Event| matches!(e, Event::Message(ServerMessage::AvatarLeft { avatar }) if *avatar == bob_avatar);
    assert!(seen.iter().any(left), "ada, a bystander, saw bob leave: {seen:?}");
    assert_eq!(
        moderated(&expect_event(&mut bob, "moderated", |e| moderated(e).is_some()).await),
        Some(ModeratedAction::Banned)
    );
    expect_event(&mut bob, "the banned error", |e| {
        matches!(e, Event::Message(ServerMessage::Error { code: ErrorCode::Banned, .. }))
    })
    .await;
    let lock = AdminCommand::LockZone(ZoneArgs::new("test", "room", "board meeting"));
    command(&mut ada, 2, lock).await.unwrap();
    let promote = AdminCommand::Promote(UserArgs::new("carol", ""));
    command(&mut ada, 3, promote).await.unwrap();
    let refused = Client::join(&server.url(), &token("bob", "acme", unix_now() + 600), "test").await;
    assert!(matches!(refused, Err(ClientError::Refused { code: ErrorCode::Banned, .. })), "{refused:?}");

    // Restart on the same database.
    server.shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(10), server.task).await.unwrap().unwrap().unwrap();
    let server = start_with_database(&database).await;
    let refused = Client::join(&server.url(), &token("bob", "acme", unix_now() + 600), "test").await;
    assert!(matches!(refused, Err(ClientError::Refused { code: ErrorCode::Banned, .. })), "{refused:?}");
    // The lock holds: a member walking in is corrected.
    let mut dan = server.join("dan").await;
    let mut seq = 0;
    walk_into_the_room(&mut dan, &mut seq, 6.5).await;
    expect_event(&mut dan, "a zone_locked correction", |e| correction(e) == Some(CorrectionReason::ZoneLocked)).await;
    // Carol, promoted before the restart, acts with a member token; the log is all there.
    let mut carol = server.join("carol").await;
    let bans = command(&mut carol, 1, AdminCommand::ListBans).await.unwrap();
    assert_eq!((bans["bans"][0]["user_id"].as_str(), bans["bans"][0]["reason"].as_str()), (Some("bob"), Some("abuse")));
    let done: Vec<(String, String)> = audit(&mut carol, 2)
        .await
        .iter()
        .map(|e| (e["action"].as_str().unwrap().to_owned(), e["target"].as_str().unwrap().to_owned()))
        .collect();
    assert_eq!(
        done,
        [("promote", "carol"), ("lock_zone", "test/room"), ("ban", "bob")].map(|(a, t)| (a.to_owned(), t.to_owned()))
    );
    let zones = command(&mut carol, 4, AdminCommand::ListZones { world: "test".into() }).await.unwrap();
    assert_eq!(
        zones["zones"],
        serde_json::json!([{"zone": "room", "locked": true, "capacity": null, "updated_by": "ada"}])
    );
    // Lifted: bob is back.
    let unban = AdminCommand::Unban(UserArgs::new("bob", "apologised"));
    assert_eq!(command(&mut carol, 3, unban).await.unwrap()["lifted"], true);
    server.join("bob").await;
}

#[tokio::test]
async fn the_last_admin_stays_and_a_demotion_sticks_against_admin_tokens() {
    let database = tempfile::tempdir().unwrap();
    let server = start_with_database(&database).await;
    let mut ada = join_admin(&server, "ada").await;
    let demote_ada = AdminCommand::Demote(UserArgs::new("ada", ""));
    assert_eq!(command(&mut ada, 1, demote_ada.clone()).await, Err(AdminErrorCode::LastAdmin));
    let ban_ada = AdminCommand::Ban { user: "ada".into(), reason: String::new(), duration_seconds: None };
    let (status, answer) = post(&server, &admin_token("ada"), &serde_json::to_string(&ban_ada).unwrap()).await;
    assert_eq!((status, answer["error"]["code"].as_str()), (409, Some("last_admin")));
    // Zoe's token says admin: she is one from her first use of it.
    let mut zoe = join_admin(&server, "zoe").await;
    assert!(command(&mut zoe, 1, AdminCommand::ListAdmins).await.is_ok());
    let demote_zoe = AdminCommand::Demote(UserArgs::new("zoe", "left the team"));
    command(&mut ada, 2, demote_zoe).await.unwrap();
    expect_event(&mut zoe, "role_changed", |e| {
        matches!(e, Event::Message(ServerMessage::RoleChanged { admin: false }))
    })
    .await;
    // Her admin token no longer makes her one, on this connection or a new one.
    assert_eq!(command(&mut zoe, 2, AdminCommand::ListAdmins).await, Err(AdminErrorCode::Forbidden));
    let (status, _) = post(&server, &admin_token("zoe"), r#"{"action": "list_admins"}"#).await;
    assert_eq!(status, 403);
    assert_eq!(command(&mut ada, 3, AdminCommand::ListAdmins).await.unwrap()["admins"], serde_json::json!(["ada"]));
    // A banned user whose token says admin, who never used it before the ban, cannot
    // act either (to lift their own ban, say).
    let ban_zed = AdminCommand::Ban { user: "zed".into(), reason: "rogue".into(), duration_seconds: None };
    command(&mut ada, 30, ban_zed).await.unwrap();
    let (status, answer) = post(&server, &admin_token("zed"), r#"{"action": "unban", "user": "zed"}"#).await;
    assert_eq!((status, answer["error"]["code"].as_str()), (403, Some("forbidden")));
    let bans = command(&mut ada, 31, AdminCommand::ListBans).await.unwrap();
    assert_eq!(bans["bans"][0]["user_id"], "zed", "still banned");
    // With a second admin, the first may step down.
    command(&mut ada, 4, AdminCommand::Promote(UserArgs::new("zoe", ""))).await.unwrap();
    command(&mut ada, 5, demote_ada).await.unwrap();
    assert_eq!(command(&mut ada, 6, AdminCommand::ListAdmins).await, Err(AdminErrorCode::Forbidden));
}

#[tokio::test]
async fn locks_capacity_moves_notices_and_ending_a_meeting_as_people_see_them() {
    let server = TestServer::start(|_| {}).await;
    let mut ada = join_admin(&server, "ada").await;
    // Bob and carol meet in the room.
    let mut bob = server.join("bob").await;
    let mut carol = server.join("carol").await;
    let (mut bob_seq, mut carol_seq) = (0, 0);
    walk_into_the_room(&mut bob, &mut bob_seq, 7.5).await;
    walk_into_the_room(&mut carol, &mut carol_seq, 8.5).await;
    let people = command(&mut ada, 1, AdminCommand::ListPeople).await.unwrap();
    let in_room = people["people"].as_array().unwrap().iter().filter(|p| p["zone"] == "room").count();
    assert_eq!(in_room, 2);

    // A capacity of 2: dan is one too many.
    let capacity = AdminCommand::SetZoneCapacity {
        world: "test".into(),
        zone: "room".into(),
        capacity: Some(2),
        reason: String::new(),
    };
    assert_eq!(command(&mut ada, 2, capacity).await.unwrap()["inside"], 2);
    let mut dan = server.join("dan").await;
    let mut dan_seq = 0;
    walk_into_the_room(&mut dan, &mut dan_seq, 6.5).await;
    expect_event(&mut dan, "zone_full", |e| correction(e) == Some(CorrectionReason::ZoneFull)).await;
    let unknown = AdminCommand::LockZone(ZoneArgs::new("test", "attic", ""));
    assert_eq!(command(&mut ada, 3, unknown).await, Err(AdminErrorCode::UnknownZone));
    let unknown = AdminCommand::LockZone(ZoneArgs::new("nowhere", "room", ""));
    assert_eq!(command(&mut ada, 4, unknown).await, Err(AdminErrorCode::UnknownWorld));

    // A notice to the room reaches bob and carol, not dan in the lobby.
    let notice =
        AdminCommand::Notice { world: "test".into(), zone: Some("room".into()), text: "Five minutes left".into() };
    assert_eq!(command(&mut ada, 5, notice).await.unwrap()["reached"], 2);
    for client in [&mut bob, &mut carol] {
        expect_event(client, "the notice", |e| {
            matches!(e, Event::Message(ServerMessage::Notice { text, by, zone: Some(zone) }) if text == "Five minutes left" && by == "ADA" && zone == "room")
        })
        .await;
    }
    let to_dan = events_within(&mut dan, Duration::from_millis(300)).await;
    assert!(!to_dan.iter().any(|e| matches!(e, Event::Message(ServerMessage::Notice { .. }))), "{to_dan:?}");

    // Moving dan puts him on the spawn point; carol sees nothing of it (other zone).
    let spawn = tiles(3.5, 3.5);
    let moved = AdminCommand::MoveUser {
        user: "dan".into(),
        world: "test".into(),
        spawn: Some("main".into()),
        reason: "stuck".into(),
    };
    command(&mut ada, 6, moved).await.unwrap();
    assert_eq!(
        moderated(&expect_event(&mut dan, "moderated", |e| moderated(e).is_some()).await),
        Some(ModeratedAction::Moved)
    );
    let corrected =
        expect_event(&mut dan, "the moved correction", |e| correction(e) == Some(CorrectionReason::Moved)).await;
    assert!(matches!(corrected, Event::Message(ServerMessage::Correction { position, .. }) if position == spawn));
    // Ada, in the lobby with him, sees him at the spawn point.
    let dan_avatar = dan.avatar();
    expect_event(&mut ada, "dan's presence at the spawn point", |e| {
        presence_of(std::slice::from_ref(e), dan_avatar).contains(&spawn)
    })
    .await;
    let nowhere = AdminCommand::MoveUser {
        user: "dan".into(),
        world: "test".into(),
        spawn: Some("roof".into()),
        reason: String::new(),
    };
    assert_eq!(command(&mut ada, 7, nowhere).await, Err(AdminErrorCode::UnknownSpawn));

    // Ending the meeting sends both out to the spawn point, into the lobby.
    let end =
        AdminCommand::EndMeeting { world: "test".into(), zone: "room".into(), spawn: None, reason: "time".into() };
    let (result, seen) = command_seeing(&mut ada, 8, end).await;
    assert_eq!(result.unwrap()["moved"], 2);
    for avatar in [bob.avatar(), carol.avatar()] {
        let entered = |e: &Event| matches!(e, Event::Message(ServerMessage::AvatarEntered { avatar: info }) if info.avatar == avatar);
        assert!(seen.iter().any(entered), "ada, in the lobby, saw {avatar} come out: {seen:?}");
    }
    for client in [&mut bob, &mut carol] {
        assert_eq!(
            moderated(&expect_event(client, "moderated", |e| moderated(e).is_some()).await),
            Some(ModeratedAction::MeetingEnded)
        );
        expect_event(
            client,
            "the lobby snapshot",
            |e| matches!(e, Event::Message(ServerMessage::Snapshot { zone, .. }) if zone.id == "lobby"),
        )
        .await;
    }
    let people = command(&mut ada, 9, AdminCommand::ListPeople).await.unwrap();
    assert!(people["people"].as_array().unwrap().iter().all(|p| p["zone"] == "lobby"), "{people}");
}

#[tokio::test]
async fn a_flood_of_admin_commands_is_rate_limited_and_the_admin_keeps_working() {
    let server = TestServer::start(|config| config.limits.messages_per_second = 1000).await;
    let mut ada = join_admin(&server, "ada").await;
    let mut limited = 0;
    for id in 0..40 {
        if command(&mut ada, id, AdminCommand::ListPeople).await == Err(AdminErrorCode::RateLimited) {
            limited += 1;
        }
    }
    assert!(limited >= 10, "only {limited} of 40 back-to-back commands were limited");
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert!(command(&mut ada, 100, AdminCommand::ListPeople).await.is_ok(), "the limit refills");
}
