//! Text chat over real WebSockets on 127.0.0.1: who each scope reaches, history after a
//! reconnect and after a restart (SQLite file and PostgreSQL), the limits, and an admin's
//! chat mute and deletion, as each person's page sees it.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a failed expectation is a failed test

mod common;

use std::time::Duration;

use common::*;
use isoplane_signaling::auth::Role;
use isoplane_signaling::client::{Client, Event};
use isoplane_signaling::protocol::{
    AdminCommand, AdminReply, ChatMessage, ChatScope, ClientMessage, ErrorCode, ModeratedAction, ServerMessage,
    UserArgs,
};
use isoplane_signaling::server::unix_now;

async fn join_admin(server: &TestServer, user: &str) -> Client {
    let token = token_with_role(user, "acme", unix_now() + 600, Role::Admin);
    Client::join(&server.url(), &token, "test").await.unwrap()
}

/// Waits for the next `chat` message and returns it.
async fn next_chat(client: &mut Client, what: &str) -> ChatMessage {
    let event = expect_event(client, what, |e| matches!(e, Event::Message(ServerMessage::Chat { .. }))).await;
    let Event::Message(ServerMessage::Chat { message }) = event else { unreachable!() };
    message
}

/// Waits (up to 10 s) until the server has written message `id` to the database at `url`.
async fn wait_until_stored(url: &str, id: &str) {
    let records = isoplane_metadata::Metadata::connect(url, 1).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !records.recent_chat("acme", "test", 0, 200).await.unwrap().iter().any(|message| message.id == id) {
        assert!(tokio::time::Instant::now() < deadline, "message {id} was never stored");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits for an error with this code.
async fn error(client: &mut Client, code: ErrorCode) -> String {
    let event = expect_event(
        client,
        &format!("a {code:?} error"),
        |e| matches!(e, Event::Message(ServerMessage::Error { code: c, .. }) if *c == code),
    )
    .await;
    let Event::Message(ServerMessage::Error { message, .. }) = event else { unreachable!() };
    message
}

/// Waits for the `chat_history` of `scope` and returns its texts.
async fn history(client: &mut Client, scope: ChatScope) -> Vec<String> {
    let event = expect_event(
        client,
        &format!("the {scope:?} history"),
        |e| matches!(e, Event::Message(ServerMessage::ChatHistory { scope: s, .. }) if *s == scope),
    )
    .await;
    let Event::Message(ServerMessage::ChatHistory { messages, .. }) = event else { unreachable!() };
    messages.into_iter().map(|m| m.text).collect()
}

/// Sends an admin command over the WebSocket and waits for its result.
async fn admin(client: &mut Client, id: u32, command: AdminCommand) -> AdminReply {
    client.send(&ClientMessage::Admin { id, command }).await.unwrap();
    let event = expect_event(
        client,
        "the admin result",
        |e| matches!(e, Event::Message(ServerMessage::AdminResult { id: answered, .. }) if *answered == id),
    )
    .await;
    let Event::Message(ServerMessage::AdminResult { ok: true, data: Some(data), .. }) = event else {
        panic!("the command failed: {event:?}")
    };
    data
}

#[tokio::test]
async fn zone_chat_reaches_only_the_zone_and_world_chat_everyone() {
    let server = TestServer::start(|_| {}).await;
    let mut ada = server.join("ada").await;
    let mut bob = server.join("bob").await;
    let mut cy = server.join("cy").await;
    let mut seq = 0;
    walk_into_the_room(&mut cy, &mut seq, 8.5).await;
    expect_event(
        &mut cy,
        "arriving in the room",
        |e| matches!(e, Event::Message(ServerMessage::Snapshot { zone, .. }) if zone.id == "room"),
    )
    .await;

    ada.send_chat(ChatScope::Zone, None, "hello lobby").await.unwrap();
    let mine = next_chat(&mut ada, "ada's own message back").await;
    assert_eq!((mine.scope, mine.zone.as_deref(), mine.from.user.as_str()), (ChatScope::Zone, Some("lobby"), "ada"));
    assert!(mine.id.starts_with("c-") && mine.at > 0, "the server's ID and time: {mine:?}");
    assert_eq!(next_chat(&mut bob, "bob, in the lobby too").await, mine);
    ada.send_chat(ChatScope::World, None, "hello world").await.unwrap();
    // Sent after the zone message: had cy got that one, it would come first.
    let first = next_chat(&mut cy, "cy's first chat").await;
    assert_eq!((first.text.as_str(), first.scope), ("hello world", ChatScope::World), "cy, in the room, got only this");
    assert_eq!(next_chat(&mut bob, "bob").await.text, "hello world");
}

#[tokio::test]
async fn a_direct_message_reaches_bob_in_another_zone_and_not_cy() {
    let server = TestServer::start(|_| {}).await;
    let mut ada = server.join("ada").await;
    let mut bob = server.join("bob").await;
    let mut cy = server.join("cy").await;
    let mut seq = 0;
    walk_into_the_room(&mut bob, &mut seq, 8.5).await;
    expect_event(
        &mut bob,
        "arriving in the room",
        |e| matches!(e, Event::Message(ServerMessage::Snapshot { zone, .. }) if zone.id == "room"),
    )
    .await;

    ada.send_chat(ChatScope::Direct, Some("bob"), "psst, bob").await.unwrap();
    let to_bob = next_chat(&mut bob, "the direct message").await;
    assert_eq!(
        (to_bob.scope, to_bob.from.user.as_str(), to_bob.to.as_ref().map(|p| p.name.as_str()), to_bob.text.as_str()),
        (ChatScope::Direct, "ada", Some("BOB"), "psst, bob")
    );
    assert_eq!(next_chat(&mut ada, "ada's copy").await, to_bob);

    ada.send_chat(ChatScope::Direct, Some("zed"), "anyone?").await.unwrap();
    error(&mut ada, ErrorCode::UnknownUser).await;
    ada.send_chat(ChatScope::World, None, "never mind").await.unwrap();
    let first = next_chat(&mut cy, "cy's first chat").await;
    assert_eq!(first.text, "never mind", "cy, beside ada, never got the direct message");
    assert_eq!(next_chat(&mut ada, "ada, still connected after unknown_user").await.text, "never mind");
}

/// Ada and bob chat; ada reloads her page; then signaling restarts on the same database
/// and she comes back: each time she reads what was said.
async fn history_survives_a_reconnect_and_a_restart(database_url: String) {
    let url = database_url.clone();
    let server = TestServer::start(move |config| config.database_url = Some(url)).await;
    let mut ada = server.join("ada").await;
    let mut bob = server.join("bob").await;
    ada.send_chat(ChatScope::Zone, None, "morning, lobby").await.unwrap();
    bob.send_chat(ChatScope::World, None, "stand-up in five").await.unwrap();
    bob.send_chat(ChatScope::Direct, Some("ada"), "coffee after?").await.unwrap();
    for _ in 0..3 {
        next_chat(&mut ada, "the three messages").await;
    }

    ada.drop_connection().await;
    let mut ada = server.join("ada").await;
    assert!(ada.resumed(), "a reload within the grace period resumes");
    assert_eq!(history(&mut ada, ChatScope::Zone).await, ["morning, lobby"]);
    assert_eq!(history(&mut ada, ChatScope::World).await, ["stand-up in five"]);
    assert_eq!(history(&mut ada, ChatScope::Direct).await, ["coffee after?"]);

    server.shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(10), server.task).await.unwrap().unwrap().unwrap();
    drop((ada, bob));
    let url = database_url;
    let server = TestServer::start(move |config| config.database_url = Some(url)).await;
    let mut ada = server.join("ada").await;
    assert!(!ada.resumed(), "a new server: a new session");
    assert_eq!(history(&mut ada, ChatScope::Zone).await, ["morning, lobby"]);
    assert_eq!(history(&mut ada, ChatScope::World).await, ["stand-up in five"]);
    assert_eq!(history(&mut ada, ChatScope::Direct).await, ["coffee after?"]);
    let mut bob = server.join("bob").await;
    assert_eq!(history(&mut bob, ChatScope::Direct).await, ["coffee after?"], "bob sent it: his too");
}

#[tokio::test]
async fn history_survives_a_reconnect_and_a_restart_on_a_sqlite_file() {
    let database = tempfile::tempdir().unwrap();
    history_survives_a_reconnect_and_a_restart(format!("sqlite://{}", database.path().join("isoplane.db").display()))
        .await;
}

#[tokio::test]
async fn history_survives_a_reconnect_and_a_restart_on_postgresql() {
    let schema = isoplane_metadata::testing::TestSchema::create("signaling_chat").await;
    history_survives_a_reconnect_and_a_restart(schema.url.clone()).await;
}

#[tokio::test]
async fn an_overlong_message_and_a_flood_are_refused_and_the_connection_keeps_working() {
    let server = TestServer::start(|_| {}).await;
    let mut ada = server.join("ada").await;
    let mut bob = server.join("bob").await;

    ada.send_chat(ChatScope::Zone, None, &"a".repeat(2001)).await.unwrap();
    let said = error(&mut ada, ErrorCode::ChatInvalid).await;
    assert!(said.contains("2000") && said.contains("2001"), "{said}");
    ada.send_chat(ChatScope::Zone, None, &"a".repeat(2000)).await.unwrap();
    assert_eq!(next_chat(&mut bob, "the 2,000-character message").await.text.len(), 2000);

    // The burst (five, one of them spent above) goes through, the rest is dropped.
    for n in 0..10 {
        ada.send_chat(ChatScope::Zone, None, &format!("flood {n}")).await.unwrap();
    }
    error(&mut ada, ErrorCode::RateLimited).await;
    let mut got = Vec::new();
    ada.send(&ClientMessage::ListPeople { id: 9 }).await.unwrap();
    loop {
        let event = bob.next_event_within(Duration::from_secs(2)).await;
        match event {
            Ok(Event::Message(ServerMessage::Chat { message })) => got.push(message.text),
            Ok(_) => continue,
            Err(_) => break,
        }
    }
    assert!(!got.is_empty() && got.len() < 10, "some of the flood, not all of it: {got:?}");
    expect_event(&mut ada, "the people list: still connected", |e| {
        matches!(e, Event::Message(ServerMessage::People { id: 9, .. }))
    })
    .await;
    // Two seconds later the limit has room again.
    ada.send_chat(ChatScope::Zone, None, "calm again").await.unwrap();
    assert_eq!(next_chat(&mut bob, "a message after the flood").await.text, "calm again");
}

#[tokio::test]
async fn an_admin_mutes_a_chat_and_deletes_a_message_everyone_stops_seeing() {
    let database = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", database.path().join("isoplane.db").display());
    let server_url = url.clone();
    let server = TestServer::start(move |config| config.database_url = Some(server_url)).await;
    let mut zoe = join_admin(&server, "zoe").await;
    let mut ada = server.join("ada").await;
    let mut bob = server.join("bob").await;

    ada.send_chat(ChatScope::Zone, None, "buy cheap watches at example.test").await.unwrap();
    let spam = next_chat(&mut bob, "the spam").await;
    next_chat(&mut zoe, "the spam, on the admin's page").await;
    // Only a stored message's author is known to a deletion (one deleted before its
    // write says so, with no author): let the write land first.
    wait_until_stored(&url, &spam.id).await;
    let reply = admin(
        &mut zoe,
        1,
        AdminCommand::DeleteChat { world: "test".into(), message: spam.id.clone(), reason: "spam".into() },
    )
    .await;
    assert_eq!(reply, AdminReply::ChatDeleted { message: spam.id.clone(), author: "ada".into(), reached: 3 });
    for (page, who) in [(&mut ada, "ada"), (&mut bob, "bob")] {
        expect_event(
            page,
            &format!("{who} told of the deletion"),
            |e| matches!(e, Event::Message(ServerMessage::ChatDeleted { id }) if *id == spam.id),
        )
        .await;
    }
    let mut cy = server.join("cy").await;
    assert!(history(&mut cy, ChatScope::Zone).await.is_empty(), "the history no longer has it");
    let AdminReply::Audit { entries } = admin(&mut zoe, 2, AdminCommand::ListAudit { before: None, limit: None }).await
    else {
        panic!("not an audit page")
    };
    let logged = entries.iter().find(|e| e.action == "delete_chat").expect("the deletion is audited");
    assert_eq!((logged.actor.as_str(), logged.target.as_str(), logged.reason.as_str()), ("zoe", "ada", "spam"));
    assert!(logged.detail.contains(&spam.id) && logged.detail.contains("buy cheap watches"), "{}", logged.detail);

    admin(&mut zoe, 3, AdminCommand::MuteChat(UserArgs::new("ada", "spam"))).await;
    expect_event(&mut ada, "told of the mute", |e| {
        matches!(e, Event::Message(ServerMessage::Moderated { action: ModeratedAction::ChatMuted, .. }))
    })
    .await;
    ada.send_chat(ChatScope::World, None, "more watches").await.unwrap();
    error(&mut ada, ErrorCode::ChatMuted).await;
    // The mute is recorded: coming back does not lift it.
    ada.drop_connection().await;
    let mut ada = server.join("ada").await;
    ada.send_chat(ChatScope::World, None, "still watches").await.unwrap();
    error(&mut ada, ErrorCode::ChatMuted).await;
    bob.send_chat(ChatScope::World, None, "is it quiet now?").await.unwrap();
    let first = next_chat(&mut cy, "cy's first live chat").await;
    assert_eq!(first.text, "is it quiet now?", "nothing of ada's went out");

    admin(&mut zoe, 4, AdminCommand::UnmuteChat(UserArgs::new("ada", ""))).await;
    ada.send_chat(ChatScope::World, None, "sorry, everyone").await.unwrap();
    assert_eq!(next_chat(&mut cy, "ada, unmuted").await.text, "sorry, everyone");
}
