//! People across a world over real WebSockets on 127.0.0.1: the list of everyone, following
//! someone from zone to zone, and knocking on a locked room, as each person sees it.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a failed expectation is a failed test

mod common;

use std::time::Duration;

use common::*;
use isoplane_signaling::auth::Role;
use isoplane_signaling::client::{Client, Event};
use isoplane_signaling::protocol::{
    AdminCommand, ClientMessage, CorrectionReason, ErrorCode, FollowEndReason, Follower, KnockOutcome, KnockState,
    Person, Point, ServerMessage, Status, ZoneArgs,
};
use isoplane_signaling::server::unix_now;

async fn join_admin(server: &TestServer, user: &str) -> Client {
    let token = token_with_role(user, "acme", unix_now() + 600, Role::Admin);
    Client::join(&server.url(), &token, "test").await.unwrap()
}

/// Locks the test world's room through the admin command path, as an admin's panel does.
async fn lock_the_room(admin: &mut Client) {
    let command = AdminCommand::LockZone(ZoneArgs::new("test", "room", "board meeting"));
    admin.send(&ClientMessage::Admin { id: 1, command }).await.unwrap();
    expect_event(admin, "the lock's result", |e| {
        matches!(e, Event::Message(ServerMessage::AdminResult { id: 1, ok: true, .. }))
    })
    .await;
}

/// Waits until the client's snapshot says it is in `zone`.
/// Bob walks into the room, then an admin locks it behind him.
async fn bob_in_the_locked_room(server: &TestServer) -> Client {
    let mut admin = join_admin(server, "root").await;
    let mut bob = server.join("bob").await;
    let mut seq = 0;
    walk_into_the_room(&mut bob, &mut seq, 8.5).await;
    arrives_in(&mut bob, "room").await;
    lock_the_room(&mut admin).await;
    bob
}

async fn arrives_in(client: &mut Client, zone: &str) {
    expect_event(
        client,
        &format!("arriving in {zone}"),
        |e| matches!(e, Event::Message(ServerMessage::Snapshot { zone: info, .. }) if info.id == zone),
    )
    .await;
}

/// Reads events until one matches; returns every event read, the match last.
async fn events_until(client: &mut Client, what: &str, mut matches: impl FnMut(&Event) -> bool) -> Vec<Event> {
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let event = client.next_event_within(left).await.unwrap_or_else(|e| panic!("waiting for {what}: {e}"));
        let done = matches(&event);
        seen.push(event);
        if done {
            return seen;
        }
    }
}

/// A `knock_status` as the knocker sees it: state, knock, retry_after_ms, by.
type KnockStatusSeen = (KnockState, Option<u32>, Option<u32>, Option<String>);

fn knock_status(event: &Event) -> Option<KnockStatusSeen> {
    match event {
        Event::Message(ServerMessage::KnockStatus { state, knock, retry_after_ms, by, .. }) => {
            Some((*state, *knock, *retry_after_ms, by.clone()))
        }
        _ => None,
    }
}

async fn next_knock_status(client: &mut Client) -> KnockStatusSeen {
    let event = expect_event(client, "a knock_status", |e| knock_status(e).is_some()).await;
    knock_status(&event).unwrap()
}

fn followers(event: &Event) -> Option<Vec<Follower>> {
    match event {
        Event::Message(ServerMessage::Followers { followers }) => Some(followers.clone()),
        _ => None,
    }
}

async fn next_followers(client: &mut Client) -> Vec<Follower> {
    let event = expect_event(client, "a followers list", |e| followers(e).is_some()).await;
    followers(&event).unwrap()
}

#[tokio::test]
async fn everyone_in_the_world_is_listed_whatever_their_zone_with_status_and_place() {
    let server = TestServer::start(|_| {}).await;
    let mut ada = server.join("ada").await;
    let mut bob = server.join("bob").await;
    let mut cy = server.join("cy").await;
    // Cy goes into the room; bob says he is busy.
    let mut seq = 0;
    walk_into_the_room(&mut cy, &mut seq, 7.5).await;
    arrives_in(&mut cy, "room").await;
    bob.send(&ClientMessage::SetStatus { status: Status::Busy }).await.unwrap();
    expect_event(&mut bob, "bob's own status", |e| matches!(e, Event::Message(ServerMessage::StatusChanged { .. })))
        .await;
    // The last of cy's steps has reached the world by now.
    tokio::time::sleep(Duration::from_millis(300)).await;

    let people = list_people(&mut ada, 7).await;
    let person = |client: &Client, user: &str, zone: &str, status, position| Person {
        avatar: client.avatar(),
        user: user.into(),
        name: user.to_uppercase(),
        zone: zone.into(),
        status,
        position,
        connected: true,
    };
    assert_eq!(
        people,
        vec![
            person(&ada, "ada", "lobby", Status::Available, tiles(3.5, 3.5)),
            person(&bob, "bob", "lobby", Status::Busy, tiles(3.5, 3.5)),
            person(&cy, "cy", "room", Status::Available, tiles(7.5, 2.5)),
        ]
    );
    // Cy, in another zone, gets the same list.
    assert_eq!(list_people(&mut cy, 8).await, people);
}

#[tokio::test]
async fn a_follower_hears_where_the_followed_goes_across_zones_until_unfollow_or_leaving() {
    let server = TestServer::start(|_| {}).await;
    let mut ada = server.join("ada").await;
    let mut bob = server.join("bob").await;
    // Following someone who is not there is refused, and the connection stays open.
    ada.send(&ClientMessage::Follow { avatar: 999 }).await.unwrap();
    expect_event(&mut ada, "unknown_avatar", |e| {
        matches!(e, Event::Message(ServerMessage::Error { code: ErrorCode::UnknownAvatar, .. }))
    })
    .await;

    ada.send(&ClientMessage::Follow { avatar: bob.avatar() }).await.unwrap();
    let following =
        expect_event(&mut ada, "following", |e| matches!(e, Event::Message(ServerMessage::Following { .. }))).await;
    let expected = ServerMessage::Following {
        avatar: bob.avatar(),
        name: "BOB".into(),
        zone: "lobby".into(),
        position: tiles(3.5, 3.5),
    };
    assert_eq!(following, Event::Message(expected));
    assert_eq!(next_followers(&mut bob).await, vec![Follower { avatar: ada.avatar(), name: "ADA".into() }]);

    // Bob walks into the room; ada stays in the lobby and is told where he goes.
    let mut seq = 0;
    walk_into_the_room(&mut bob, &mut seq, 8.5).await;
    let bob_avatar = bob.avatar();
    let end = tiles(8.5, 2.5);
    let seen = events_until(
        &mut ada,
        "bob's last place",
        |e| matches!(e, Event::Message(ServerMessage::FolloweeMoved { position, .. }) if *position == end),
    )
    .await;
    let moves: Vec<(String, Point)> = seen
        .iter()
        .filter_map(|e| match e {
            Event::Message(ServerMessage::FolloweeMoved { avatar, zone, position }) => {
                assert_eq!(*avatar, bob_avatar);
                Some((zone.clone(), *position))
            }
            _ => None,
        })
        .collect();
    assert!(moves.iter().any(|(zone, _)| zone == "lobby"), "{moves:?}");
    assert_eq!(moves.last(), Some(&("room".to_owned(), end)));
    assert!(presence_of(&seen, bob_avatar).iter().all(|p| p.x < tiles(6.0, 0.0).x), "no presence from the room");

    // Unfollowing ends it on both sides.
    ada.send(&ClientMessage::Unfollow).await.unwrap();
    let ended =
        expect_event(&mut ada, "follow_ended", |e| matches!(e, Event::Message(ServerMessage::FollowEnded { .. })))
            .await;
    let cancelled = ServerMessage::FollowEnded { avatar: bob_avatar, reason: FollowEndReason::Cancelled };
    assert_eq!(ended, Event::Message(cancelled));
    assert_eq!(next_followers(&mut bob).await, Vec::new());

    // Following again, then bob leaves the world: the follow ends with `left`.
    ada.send(&ClientMessage::Follow { avatar: bob_avatar }).await.unwrap();
    assert_eq!(next_followers(&mut bob).await.len(), 1);
    bob.send(&ClientMessage::Leave).await.unwrap();
    let ended =
        expect_event(&mut ada, "follow_ended", |e| matches!(e, Event::Message(ServerMessage::FollowEnded { .. })))
            .await;
    assert_eq!(ended, Event::Message(ServerMessage::FollowEnded { avatar: bob_avatar, reason: FollowEndReason::Left }));
}

#[tokio::test]
async fn the_followed_sees_a_follower_who_leaves_go_from_the_list() {
    let server = TestServer::start(|_| {}).await;
    let mut ada = server.join("ada").await;
    let mut bob = server.join("bob").await;
    let mut cy = server.join("cy").await;
    bob.send(&ClientMessage::Follow { avatar: ada.avatar() }).await.unwrap();
    assert_eq!(next_followers(&mut ada).await, vec![Follower { avatar: bob.avatar(), name: "BOB".into() }]);
    cy.send(&ClientMessage::Follow { avatar: ada.avatar() }).await.unwrap();
    let both = vec![
        Follower { avatar: bob.avatar(), name: "BOB".into() },
        Follower { avatar: cy.avatar(), name: "CY".into() },
    ];
    assert_eq!(next_followers(&mut ada).await, both);
    cy.send(&ClientMessage::Leave).await.unwrap();
    assert_eq!(next_followers(&mut ada).await, vec![Follower { avatar: bob.avatar(), name: "BOB".into() }]);
}

#[tokio::test]
async fn an_admitted_knocker_walks_into_the_locked_room_while_others_are_still_kept_out() {
    let server = TestServer::start(|_| {}).await;
    let mut bob = bob_in_the_locked_room(&server).await;
    let mut cy = server.join("cy").await;
    let mut dan = server.join("dan").await;

    cy.send(&ClientMessage::Knock { zone: "room".into() }).await.unwrap();
    let (state, knock, _, _) = next_knock_status(&mut cy).await;
    assert_eq!(state, KnockState::Waiting);
    let knock = knock.expect("a waiting knock has an ID");
    let prompt =
        expect_event(&mut bob, "the knock", |e| matches!(e, Event::Message(ServerMessage::Knock { .. }))).await;
    let expected = ServerMessage::Knock { knock, avatar: cy.avatar(), name: "CY".into(), zone: "room".into() };
    assert_eq!(prompt, Event::Message(expected));

    // Dan, outside, cannot answer for those inside: nothing happens.
    dan.send(&ClientMessage::AnswerKnock { knock, admit: true }).await.unwrap();
    // The world takes a connection's messages in order: once dan's list is answered, his
    // answer was handled (and ignored).
    list_people(&mut dan, 2).await;
    bob.send(&ClientMessage::AnswerKnock { knock, admit: true }).await.unwrap();
    assert_eq!(next_knock_status(&mut cy).await, (KnockState::Admitted, None, None, Some("BOB".into())));
    let closed =
        expect_event(&mut bob, "knock_closed", |e| matches!(e, Event::Message(ServerMessage::KnockClosed { .. })))
            .await;
    let expected = ServerMessage::KnockClosed { knock, outcome: KnockOutcome::Admitted, by: Some("BOB".into()) };
    assert_eq!(closed, Event::Message(expected));

    // Cy walks in through the lock; dan, right after, is refused.
    let mut cy_seq = 0;
    walk_into_the_room(&mut cy, &mut cy_seq, 7.5).await;
    let seen = events_until(
        &mut cy,
        "cy in the room",
        |e| matches!(e, Event::Message(ServerMessage::Snapshot { zone, .. }) if zone.id == "room"),
    )
    .await;
    assert!(seen.iter().all(|e| correction(e).is_none()), "{seen:?}");
    let mut dan_seq = 0;
    walk_into_the_room(&mut dan, &mut dan_seq, 6.5).await;
    expect_event(&mut dan, "zone_locked", |e| correction(e) == Some(CorrectionReason::ZoneLocked)).await;
    let people = list_people(&mut dan, 1).await;
    let zone_of = |user: &str| people.iter().find(|p| p.user == user).map(|p| p.zone.clone());
    assert_eq!(
        (zone_of("bob"), zone_of("cy"), zone_of("dan")),
        (Some("room".into()), Some("room".into()), Some("lobby".into()))
    );
}

#[tokio::test]
async fn a_declined_knocker_hears_who_declined_and_may_not_knock_again_at_once() {
    let server = TestServer::start(|_| {}).await;
    let mut bob = bob_in_the_locked_room(&server).await;
    let mut cy = server.join("cy").await;

    // An unknown zone is an error that keeps the connection open.
    cy.send(&ClientMessage::Knock { zone: "attic".into() }).await.unwrap();
    expect_event(&mut cy, "unknown_zone", |e| {
        matches!(e, Event::Message(ServerMessage::Error { code: ErrorCode::UnknownZone, .. }))
    })
    .await;
    // The quiet zone is open: no knock needed.
    cy.send(&ClientMessage::Knock { zone: "quiet".into() }).await.unwrap();
    assert_eq!(next_knock_status(&mut cy).await.0, KnockState::NotNeeded);

    cy.send(&ClientMessage::Knock { zone: "room".into() }).await.unwrap();
    let knock = next_knock_status(&mut cy).await.1.unwrap();
    expect_event(&mut bob, "the knock", |e| matches!(e, Event::Message(ServerMessage::Knock { .. }))).await;
    bob.send(&ClientMessage::AnswerKnock { knock, admit: false }).await.unwrap();
    assert_eq!(next_knock_status(&mut cy).await, (KnockState::Declined, None, None, Some("BOB".into())));
    expect_event(&mut bob, "knock_closed", |e| {
        matches!(e, Event::Message(ServerMessage::KnockClosed { outcome: KnockOutcome::Declined, .. }))
    })
    .await;

    // Again at once: too soon, with how long to wait (until 15 s after the first knock).
    cy.send(&ClientMessage::Knock { zone: "room".into() }).await.unwrap();
    let (state, knock, retry_after_ms, _) = next_knock_status(&mut cy).await;
    assert_eq!((state, knock), (KnockState::TooSoon, None));
    let retry = retry_after_ms.expect("too_soon says when");
    assert!(retry > 0 && retry <= 15_000, "retry after {retry} ms");
    // Bob was not asked again, and cy still cannot walk in.
    let mut cy_seq = 0;
    walk_into_the_room(&mut cy, &mut cy_seq, 6.5).await;
    expect_event(&mut cy, "zone_locked", |e| correction(e) == Some(CorrectionReason::ZoneLocked)).await;
    let bob_saw = events_within(&mut bob, Duration::from_millis(300)).await;
    assert!(!bob_saw.iter().any(|e| matches!(e, Event::Message(ServerMessage::Knock { .. }))), "{bob_saw:?}");
}
