//! The signaling server over real WebSockets on 127.0.0.1: what clients see.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a failed expectation is a failed test

use std::time::Duration;

use isoplane_signaling::auth::{JoinClaims, Role, TokenKey};
use isoplane_signaling::client::{Client, ClientError, Event};
use isoplane_signaling::protocol::{
    AvatarState, ClientMessage, CorrectionReason, ErrorCode, ServerMessage, SignalKind, Status, Topology,
};
use isoplane_signaling::server::unix_now;
use isoplane_world_format::Facing;
use tokio_tungstenite::tungstenite::Message;

mod common;

use common::*;

#[tokio::test]
async fn clients_see_each_others_moves_only_inside_their_zone() {
    let server = TestServer::start(|_| {}).await;
    let mut ada = server.join("ada").await;
    let mut bob = server.join("bob").await;
    let mut cy = server.join("cy").await;
    let (mut s1, mut s3) = (0, 0);
    // Cy goes into the quiet zone (silent, x 7-11, y 5-7).
    walk(&mut cy, &mut s3, (3.5, 3.5), (5.5, 3.5)).await;
    walk(&mut cy, &mut s3, (5.5, 3.5), (5.5, 5.5)).await;
    walk(&mut cy, &mut s3, (5.5, 5.5), (8.5, 5.5)).await;
    events_within(&mut cy, Duration::from_millis(300)).await;
    events_within(&mut bob, Duration::from_millis(300)).await;

    walk(&mut ada, &mut s1, (3.5, 3.5), (2.5, 2.5)).await;
    let bob_saw = events_within(&mut bob, Duration::from_millis(500)).await;
    let cy_saw = events_within(&mut cy, Duration::from_millis(500)).await;
    let seen = presence_of(&bob_saw, ada.avatar());
    assert!(!seen.is_empty(), "bob, in the same zone, sees ada move");
    assert_eq!(seen.last().map(|p| (p.x / 4, p.y / 4)), Some((tiles(2.5, 2.5).x / 4, tiles(2.5, 2.5).y / 4)));
    assert!(presence_of(&cy_saw, ada.avatar()).is_empty(), "cy, in another zone, sees nothing of ada");
    // At most one presence frame per recipient per tick: never more than ~15 a second.
    let frames = bob_saw.iter().filter(|e| matches!(e, Event::Presence { .. })).count();
    assert!(frames <= 20, "{frames} frames in ~1 s of walking");
}

#[tokio::test]
async fn a_move_through_a_wall_is_corrected() {
    let server = TestServer::start(|_| {}).await;
    let mut ada = server.join("ada").await;
    let mut seq = 0;
    walk(&mut ada, &mut seq, (3.5, 3.5), (5.5, 1.5)).await;
    // Pause, so the 0.9-tile step is within the speed limit and only the wall is wrong.
    tokio::time::sleep(Duration::from_millis(300)).await;
    ada.send_move(99, tiles(6.4, 1.5), Facing::East, AvatarState::Walking).await.unwrap();
    let event = expect_event(&mut ada, "a correction", |e| correction(e).is_some()).await;
    let Event::Message(ServerMessage::Correction { seq, position, reason, .. }) = event else { unreachable!() };
    assert_eq!((seq, reason), (99, CorrectionReason::Wall));
    assert_eq!(position, tiles(5.5, 1.5), "back to the last accepted position");
}

#[tokio::test]
async fn two_avatars_cannot_hold_one_chair() {
    let server = TestServer::start(|_| {}).await;
    let mut ada = server.join("ada").await;
    let mut bob = server.join("bob").await;
    let (mut s1, mut s2) = (0, 0);
    walk(&mut ada, &mut s1, (3.5, 3.5), (3.5, 1.5)).await;
    ada.send_move(100, tiles(3.5, 1.5), Facing::South, AvatarState::Sitting).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let ada_events = events_within(&mut ada, Duration::from_millis(200)).await;
    assert!(ada_events.iter().all(|e| correction(e).is_none()), "ada sits: {ada_events:?}");

    walk(&mut bob, &mut s2, (3.5, 3.5), (3.5, 2.5)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    bob.send_move(50, tiles(3.5, 1.5), Facing::North, AvatarState::Sitting).await.unwrap();
    let event = expect_event(&mut bob, "a correction", |e| correction(e).is_some()).await;
    assert_eq!(correction(&event), Some(CorrectionReason::Occupied));
}

#[tokio::test]
async fn a_zone_change_delivers_leave_enter_and_a_snapshot() {
    let server = TestServer::start(|_| {}).await;
    let mut ada = server.join("ada").await;
    let mut bob = server.join("bob").await;
    let mut cy = server.join("cy").await;
    let (mut s1, mut s3) = (0, 0);
    walk_into_the_room(&mut cy, &mut s3, 8.5).await;
    expect_event(
        &mut cy,
        "cy's room snapshot",
        |e| matches!(e, Event::Message(ServerMessage::Snapshot { zone, .. }) if zone.id == "room"),
    )
    .await;
    events_within(&mut bob, Duration::from_millis(200)).await;

    walk_into_the_room(&mut ada, &mut s1, 6.5).await;
    let a = ada.avatar();
    expect_event(
        &mut bob,
        "ada leaving the lobby",
        |e| matches!(e, Event::Message(ServerMessage::AvatarLeft { avatar }) if *avatar == a),
    )
    .await;
    expect_event(
        &mut cy,
        "ada entering the room",
        |e| matches!(e, Event::Message(ServerMessage::AvatarEntered { avatar }) if avatar.avatar == a),
    )
    .await;
    let snapshot = expect_event(
        &mut ada,
        "the room's snapshot",
        |e| matches!(e, Event::Message(ServerMessage::Snapshot { zone, .. }) if zone.id == "room"),
    )
    .await;
    let Event::Message(ServerMessage::Snapshot { avatars, .. }) = snapshot else { unreachable!() };
    assert_eq!(avatars.iter().map(|x| x.avatar).collect::<Vec<_>>(), vec![cy.avatar()]);
}

#[tokio::test]
async fn the_room_escalates_to_the_sfu_and_comes_back_with_hysteresis() {
    let server = TestServer::start(|_| {}).await;
    let mut clients = Vec::new();
    for user in ["a", "b", "c"] {
        let mut client = server.join(user).await;
        let mut seq = 0;
        walk_into_the_room(&mut client, &mut seq, 7.5).await;
        clients.push((client, seq));
    }
    let plan = expect_event(
        &mut clients[0].0,
        "the SFU plan",
        |e| matches!(e, Event::Message(ServerMessage::Media { plan }) if plan.topology == Topology::Sfu),
    )
    .await;
    let Event::Message(ServerMessage::Media { plan }) = plan else { unreachable!() };
    assert_eq!(plan.sfu.unwrap().room, "test/room");

    // Two walk out: one person left, below the band; back to P2P after the 1 s hold.
    for (client, seq) in clients.iter_mut().skip(1) {
        walk(client, seq, (7.5, 2.5), (7.5, 4.5)).await;
    }
    let started = tokio::time::Instant::now();
    expect_event(
        &mut clients[0].0,
        "the P2P plan",
        |e| matches!(e, Event::Message(ServerMessage::Media { plan }) if plan.topology == Topology::P2p),
    )
    .await;
    assert!(started.elapsed() >= Duration::from_millis(700), "the hold keeps the SFU a while");
}

/// Whether an event tells that `avatar` set `status`.
fn status_changed(event: &Event, avatar: u32, status: Status) -> bool {
    matches!(event, Event::Message(ServerMessage::StatusChanged { avatar: a, status: s }) if (*a, *s) == (avatar, status))
}

#[tokio::test]
async fn a_status_reaches_the_zone_and_do_not_disturb_ends_proximity_talk_in_the_open() {
    let server = TestServer::start(|_| {}).await;
    let mut ada = server.join("ada").await;
    let mut bob = server.join("bob").await;
    let bob_avatar = bob.avatar();
    // Side by side in the open lobby: paired peer to peer.
    let paired_with_bob = |e: &Event| plan(e).is_some_and(|p| p.peers.iter().any(|l| l.avatar == bob_avatar));
    expect_event(&mut ada, "a plan with bob", paired_with_bob).await;

    let set = |status| ClientMessage::SetStatus { status };
    bob.send(&set(Status::Busy)).await.unwrap();
    expect_event(&mut ada, "bob busy", |e| status_changed(e, bob_avatar, Status::Busy)).await;
    expect_event(&mut bob, "bob's own busy", |e| status_changed(e, bob_avatar, Status::Busy)).await;
    // Busy is a label: the pair stands.
    for event in events_within(&mut ada, Duration::from_millis(300)).await {
        assert!(plan(&event).is_none(), "busy changed ada's plan: {event:?}");
    }

    bob.send(&set(Status::DoNotDisturb)).await.unwrap();
    expect_event(&mut ada, "bob not to be disturbed", |e| status_changed(e, bob_avatar, Status::DoNotDisturb)).await;
    expect_event(&mut ada, "a plan without bob", |e| plan(e).is_some_and(|p| p.peers.is_empty())).await;
    expect_event(&mut bob, "no media for bob", |e| {
        plan(e).is_some_and(|p| p.topology == Topology::None && p.peers.is_empty() && !p.publish)
    })
    .await;
    // A newcomer sees the status in its snapshot, and is not paired with bob either.
    let mut cy = server.join("cy").await;
    let seen = cy.others_on_joining().iter().find(|a| a.avatar == bob_avatar).map(|a| a.status);
    assert_eq!(seen, Some(Status::DoNotDisturb));
    let cy_plan = expect_event(&mut cy, "cy's plan", |e| plan(e).is_some()).await;
    let links: Vec<u32> = plan(&cy_plan).unwrap().peers.iter().map(|l| l.avatar).collect();
    assert_eq!(links, [ada.avatar()], "cy talks with ada only");

    // Back to available: paired again.
    bob.send(&set(Status::Available)).await.unwrap();
    expect_event(&mut ada, "a plan with bob again", paired_with_bob).await;
}

#[tokio::test]
async fn forged_expired_and_foreign_tokens_are_refused() {
    let server = TestServer::start(|_| {}).await;
    let refused = |result: Result<Client, ClientError>| match result {
        Err(ClientError::Refused { code, .. }) => code,
        other => panic!("expected a refusal, got {other:?}"),
    };
    let forged = {
        let claims = JoinClaims::new("x", "X", "acme", Role::Admin, unix_now() + 60);
        TokenKey::new("not-the-secret").sign(&claims)
    };
    assert_eq!(refused(Client::join(&server.url(), &forged, "test").await), ErrorCode::InvalidToken);
    let expired = token("ada", "acme", unix_now() - 3600);
    assert_eq!(refused(Client::join(&server.url(), &expired, "test").await), ErrorCode::ExpiredToken);
    let foreign = token("ada", "other-workspace", unix_now() + 600);
    assert_eq!(refused(Client::join(&server.url(), &foreign, "test").await), ErrorCode::Forbidden);
    assert_eq!(refused(Client::join(&server.url(), "garbage", "test").await), ErrorCode::InvalidToken);
    let good = token("ada", "acme", unix_now() + 600);
    assert_eq!(refused(Client::join(&server.url(), &good, "nowhere").await), ErrorCode::UnknownWorld);
    let (_, metrics) = server.get("/metrics").await;
    assert!(metrics.contains("isoplane_signaling_auth_failures_total 4"), "{metrics}");
}

#[tokio::test]
async fn malformed_frames_get_an_error_and_the_connection_and_zone_keep_working() {
    let server = TestServer::start(|_| {}).await;
    let mut ada = server.join("ada").await;
    let mut bob = server.join("bob").await;
    events_within(&mut bob, Duration::from_millis(200)).await;
    ada.send_raw(Message::Text("{not json".into())).await.unwrap();
    let error = expect_event(&mut ada, "an error", |e| matches!(e, Event::Message(ServerMessage::Error { .. }))).await;
    assert!(matches!(error, Event::Message(ServerMessage::Error { code: ErrorCode::MalformedMessage, .. })));
    ada.send_raw(Message::Binary(vec![2, 1, 2].into())).await.unwrap();
    let error = expect_event(&mut ada, "an error", |e| matches!(e, Event::Message(ServerMessage::Error { .. }))).await;
    assert!(matches!(error, Event::Message(ServerMessage::Error { code: ErrorCode::MalformedFrame, .. })));
    ada.send_raw(Message::Text(r#"{"type": "join", "token": "x", "world": "test"}"#.into())).await.unwrap();
    let error = expect_event(&mut ada, "an error", |e| matches!(e, Event::Message(ServerMessage::Error { .. }))).await;
    assert!(matches!(error, Event::Message(ServerMessage::Error { code: ErrorCode::JoinFirst, .. })));

    // Still connected, still moving, and bob still sees it.
    let mut seq = 0;
    walk(&mut ada, &mut seq, (3.5, 3.5), (3.0, 3.0)).await;
    let seen = events_within(&mut bob, Duration::from_millis(400)).await;
    assert!(!presence_of(&seen, ada.avatar()).is_empty());
}

#[tokio::test]
async fn an_oversized_frame_closes_only_that_connection() {
    let server = TestServer::start(|config| config.limits.max_frame_bytes = 1024).await;
    let mut ada = server.join("ada").await;
    let mut bob = server.join("bob").await;
    ada.send_raw(Message::Text("x".repeat(4096).into())).await.unwrap();
    let closed = expect_event(&mut ada, "the close", |e| matches!(e, Event::Closed(_))).await;
    assert_eq!(closed, Event::Closed(Some(1009)));
    // Bob is unaffected.
    let mut seq = 0;
    walk(&mut bob, &mut seq, (3.5, 3.5), (3.0, 3.5)).await;
    assert!(events_within(&mut bob, Duration::from_millis(300)).await.iter().all(|e| correction(e).is_none()));
}

#[tokio::test]
async fn a_flood_is_rate_limited_and_the_connection_survives() {
    let server = TestServer::start(|config| {
        config.limits.messages_per_second = 10;
        config.limits.message_burst = 10;
    })
    .await;
    let mut ada = server.join("ada").await;
    for _ in 0..100 {
        ada.send(&ClientMessage::MediaReport { ice: isoplane_signaling::protocol::IceOutcome::Connected })
            .await
            .unwrap();
    }
    expect_event(&mut ada, "rate_limited", |e| {
        matches!(e, Event::Message(ServerMessage::Error { code: ErrorCode::RateLimited, .. }))
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    // Afterwards the client works normally.
    ada.send_raw(Message::Text("{}".into())).await.unwrap();
    expect_event(&mut ada, "a normal error reply", |e| {
        matches!(e, Event::Message(ServerMessage::Error { code: ErrorCode::MalformedMessage, .. }))
    })
    .await;
    let (_, metrics) = server.get("/metrics").await;
    assert!(!metrics.contains("isoplane_signaling_rate_limited_total 0\n"), "{metrics}");
}

#[tokio::test]
async fn a_resumed_session_causes_no_flap() {
    let server = TestServer::start(|_| {}).await;
    let ada = server.join("ada").await;
    let mut bob = server.join("bob").await;
    let a = ada.avatar();
    events_within(&mut bob, Duration::from_millis(200)).await;
    ada.drop_connection().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let again = server.join("ada").await;
    assert!(again.resumed());
    assert_eq!(again.avatar(), a);
    let seen = events_within(&mut bob, Duration::from_millis(500)).await;
    assert!(
        seen.iter().all(|e| !matches!(
            e,
            Event::Message(ServerMessage::AvatarLeft { .. } | ServerMessage::AvatarEntered { .. })
        )),
        "bob saw a flap: {seen:?}"
    );
}

#[tokio::test]
async fn signals_are_relayed_between_paired_peers() {
    let server = TestServer::start(|_| {}).await;
    let mut ada = server.join("ada").await;
    let mut bob = server.join("bob").await;
    let b = bob.avatar();
    expect_event(
        &mut ada,
        "a P2P plan with bob",
        |e| matches!(e, Event::Message(ServerMessage::Media { plan }) if plan.peers.iter().any(|p| p.avatar == b)),
    )
    .await;
    ada.send(&ClientMessage::Signal { to: b, kind: SignalKind::Offer, data: serde_json::json!({"sdp": "v=0"}) })
        .await
        .unwrap();
    let relayed =
        expect_event(&mut bob, "the offer", |e| matches!(e, Event::Message(ServerMessage::Signal { .. }))).await;
    assert!(
        matches!(relayed, Event::Message(ServerMessage::Signal { from, kind: SignalKind::Offer, .. }) if from == ada.avatar())
    );
}

#[tokio::test]
async fn shutdown_tells_clients_to_reconnect_and_ops_endpoints_answer() {
    let server = TestServer::start(|config| config.allowed_origins = vec!["https://office.example".into()]).await;
    assert_eq!(server.get("/healthz").await.0, 200);
    assert_eq!(server.get("/readyz").await.0, 200);
    let (status, world) = server.get("/v1/worlds/test").await;
    assert_eq!(status, 200);
    let etag = world.lines().find_map(|l| l.strip_prefix("etag: ")).unwrap().trim().to_owned();
    assert_eq!(http_get(server.address, "/v1/worlds/test", &[("If-None-Match", &etag)]).await.0, 304);
    assert_eq!(server.get("/v1/worlds/nope").await.0, 404);
    assert_eq!(server.get("/v1/dev/token").await.0, 404, "the dev issuer is off unless configured");
    let upgrade = [
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade, close"),
        ("Sec-WebSocket-Version", "13"),
        ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
    ];
    let mut evil = upgrade.to_vec();
    evil.push(("Origin", "https://evil.example"));
    assert_eq!(http_get(server.address, "/v1/ws", &evil).await.0, 403);

    let mut ada = server.join("ada").await;
    server.shutdown.cancel();
    let reconnect =
        expect_event(&mut ada, "reconnect", |e| matches!(e, Event::Message(ServerMessage::Reconnect { .. }))).await;
    assert!(matches!(reconnect, Event::Message(ServerMessage::Reconnect { after_ms: 1000, .. })));
    expect_event(&mut ada, "the close", |e| matches!(e, Event::Closed(_))).await;
    tokio::time::timeout(Duration::from_secs(10), server.task).await.unwrap().unwrap().unwrap();
}

#[tokio::test]
async fn connections_per_address_and_per_user_are_limited() {
    let server = TestServer::start(|config| {
        config.limits.connections_per_ip = 3;
        config.limits.connections_per_user = 1;
    })
    .await;
    let _ada = server.join("ada").await;
    // The same user on another connection to another world: over the per-user limit.
    let second = Client::join(&server.url(), &token("ada", "acme", unix_now() + 600), "demo").await;
    assert!(matches!(second, Err(ClientError::Refused { code: ErrorCode::TooManyConnections, .. })), "{second:?}");
    let _bob = server.join("bob").await;
    let _cy = server.join("cy").await;
    // A fourth connection from 127.0.0.1 is refused before the WebSocket upgrade.
    let fourth = tokio_tungstenite::connect_async(server.url()).await;
    match fourth {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => assert_eq!(response.status(), 429),
        other => panic!("expected HTTP 429, got {other:?}"),
    }
}
