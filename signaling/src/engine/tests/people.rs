//! The list of everyone, following and knocking, on the virtual clock.

use super::*;
use crate::protocol::{FollowEndReason, Follower, KnockId, KnockOutcome, KnockState, Person};

fn lock_the_room(h: &mut Harness) {
    let lock = Moderation::SetZone { zone: "room".into(), locked: true, capacity: None };
    h.engine.moderate(h.now, lock).unwrap();
}

/// Ada (1) in the locked room, bob (2) at the spawn point in the lobby.
fn ada_inside_the_locked_room(h: &mut Harness) -> (AvatarId, AvatarId) {
    let ada = h.join(1, "ada");
    into_the_room(h, 1, 7.5);
    lock_the_room(h);
    let bob = h.join(2, "bob");
    h.advance(100);
    h.outputs();
    (ada, bob)
}

/// A `knock_status` as its recipient sees it: state, knock, retry_after_ms, by.
type KnockStatusSeen = (KnockState, Option<KnockId>, Option<u32>, Option<String>);

fn knock_statuses(outputs: &[Output], conn: ConnId) -> Vec<KnockStatusSeen> {
    messages_to(outputs, conn)
        .into_iter()
        .filter_map(|m| match m {
            ServerMessage::KnockStatus { state, knock, retry_after_ms, by, .. } => {
                Some((*state, *knock, *retry_after_ms, by.clone()))
            }
            _ => None,
        })
        .collect()
}

fn knock_prompts(outputs: &[Output], conn: ConnId) -> Vec<(KnockId, AvatarId, String)> {
    messages_to(outputs, conn)
        .into_iter()
        .filter_map(|m| match m {
            ServerMessage::Knock { knock, avatar, name, zone } if zone == "room" => {
                Some((*knock, *avatar, name.clone()))
            }
            _ => None,
        })
        .collect()
}

fn knocks_closed(outputs: &[Output], conn: ConnId) -> Vec<(KnockId, KnockOutcome, Option<String>)> {
    messages_to(outputs, conn)
        .into_iter()
        .filter_map(|m| match m {
            ServerMessage::KnockClosed { knock, outcome, by } => Some((*knock, *outcome, by.clone())),
            _ => None,
        })
        .collect()
}

fn followee_moves(outputs: &[Output], conn: ConnId) -> Vec<(String, Point)> {
    messages_to(outputs, conn)
        .into_iter()
        .filter_map(|m| match m {
            ServerMessage::FolloweeMoved { zone, position, .. } => Some((zone.clone(), *position)),
            _ => None,
        })
        .collect()
}

fn followers_lists(outputs: &[Output], conn: ConnId) -> Vec<Vec<Follower>> {
    messages_to(outputs, conn)
        .into_iter()
        .filter_map(|m| match m {
            ServerMessage::Followers { followers } => Some(followers.clone()),
            _ => None,
        })
        .collect()
}

fn tile_point(x: f64, y: f64) -> Point {
    let p = Position::from_tiles(x, y);
    Point { x: p.x, y: p.y }
}

/// Sends bob (conn 2) a knock on the room and returns its ID from the `waiting` answer.
fn bob_knocks(h: &mut Harness) -> KnockId {
    h.engine.knock(h.now, 2, "room");
    let out = h.outputs();
    match knock_statuses(&out, 2).as_slice() {
        [(KnockState::Waiting, Some(knock), None, None)] => *knock,
        other => panic!("bob's knock was not sent: {other:?}"),
    }
}

#[test]
fn everyone_in_the_world_is_listed_with_zone_status_and_place_sorted_by_name() {
    let mut h = Harness::new(false);
    let zed = h.join(1, "zed");
    let ada = h.join(2, "ada");
    let bob = h.join(3, "bob");
    into_the_room(&mut h, 1, 8.5);
    h.engine.set_status(h.now, 3, Status::Busy);
    h.engine.disconnect(h.now, 2);
    h.outputs();
    h.engine.list_people(3, 7);
    let out = h.outputs();
    let [ServerMessage::People { id: 7, people }] = messages_to(&out, 3).as_slice() else { panic!("{out:?}") };
    let person = |avatar, user: &str, zone: &str, status, position, connected| Person {
        avatar,
        user: user.into(),
        name: user.to_uppercase(),
        zone: zone.into(),
        status,
        position,
        connected,
    };
    assert_eq!(
        people,
        &vec![
            person(ada, "ada", "lobby", Status::Available, tile_point(3.5, 3.5), false),
            person(bob, "bob", "lobby", Status::Busy, tile_point(3.5, 3.5), true),
            person(zed, "zed", "room", Status::Available, tile_point(8.5, 2.5), true),
        ]
    );
    assert!(messages_to(&out, 1).is_empty(), "only the asker is answered");
}

#[test]
fn a_follower_hears_where_its_followee_goes_at_most_four_times_a_second_and_always_the_last_place() {
    let mut h = Harness::new(false);
    let ada = h.join(1, "ada");
    h.join(2, "bob");
    into_the_room(&mut h, 1, 6.5);
    h.outputs();
    h.engine.follow(h.now, 2, ada);
    let out = h.outputs();
    assert_eq!(
        messages_to(&out, 2),
        vec![&ServerMessage::Following {
            avatar: ada,
            name: "ADA".into(),
            zone: "room".into(),
            position: tile_point(6.5, 2.5)
        }]
    );
    // Ada walks a tenth of a tile every 70 ms for 2.1 s, from one zone into another.
    let mut heard = Vec::new();
    let mut x = 6.5;
    for _ in 0..30 {
        x -= 0.1;
        // Time runs a millisecond at a time, so each update is seen when it is sent.
        for _ in 0..70 {
            h.advance(1);
            for moved in followee_moves(&h.outputs(), 2) {
                heard.push((h.now, moved));
            }
        }
        h.walk(1, x, 2.5, 0);
    }
    assert!(heard.len() >= 5, "bob heard {} updates in 2 s", heard.len());
    for pair in heard.windows(2) {
        assert!(pair[1].0 - pair[0].0 >= FOLLOW_UPDATE_INTERVAL, "two updates {:?} apart", pair[1].0 - pair[0].0);
    }
    assert!(heard.iter().any(|(_, (zone, _))| zone == "room") && heard.iter().any(|(_, (zone, _))| zone == "lobby"));
    // She stopped: her last place arrives within one interval, and nothing after it.
    h.advance(300);
    let last = followee_moves(&h.outputs(), 2);
    let end = Position::from_tiles(x, 2.5);
    let told = last.last().or(heard.last().map(|(_, moved)| moved)).unwrap();
    assert_eq!(told, &("lobby".to_owned(), Point { x: end.x, y: end.y }));
    h.advance(1_000);
    assert!(followee_moves(&h.outputs(), 2).is_empty());
}

#[test]
fn the_followed_hears_who_follows_them_on_each_change_and_unfollow_or_leaving_ends_a_follow() {
    let mut h = Harness::new(false);
    let ada = h.join(1, "ada");
    let bob = h.join(2, "bob");
    let cy = h.join(3, "cy");
    let dan = h.join(4, "dan");
    h.outputs();
    h.engine.follow(h.now, 3, ada);
    h.engine.follow(h.now, 2, ada);
    let out = h.outputs();
    let follower = |avatar, name: &str| Follower { avatar, name: name.into() };
    assert_eq!(
        followers_lists(&out, 1),
        vec![vec![follower(cy, "CY")], vec![follower(bob, "BOB"), follower(cy, "CY")]]
    );
    // Following the same one again changes nothing for her; switching tells both.
    h.engine.follow(h.now, 2, ada);
    assert!(followers_lists(&h.outputs(), 1).is_empty());
    h.engine.follow(h.now, 2, dan);
    let out = h.outputs();
    assert_eq!(followers_lists(&out, 1), vec![vec![follower(cy, "CY")]]);
    assert_eq!(followers_lists(&out, 4), vec![vec![follower(bob, "BOB")]]);
    // Unfollowing ends it for cy and empties ada's list.
    h.engine.unfollow(3);
    let out = h.outputs();
    assert_eq!(
        messages_to(&out, 3),
        vec![&ServerMessage::FollowEnded { avatar: ada, reason: FollowEndReason::Cancelled }]
    );
    assert_eq!(followers_lists(&out, 1), vec![Vec::<Follower>::new()]);
    h.engine.unfollow(3);
    assert!(h.outputs().is_empty(), "nothing to end");
    // Dan leaves the world: bob's follow ends with `left`.
    h.engine.leave(h.now, 4);
    let out = h.outputs();
    assert!(messages_to(&out, 2).contains(&&ServerMessage::FollowEnded { avatar: dan, reason: FollowEndReason::Left }));
    // Cy follows ada, then cy's session expires: ada's list empties.
    h.engine.follow(h.now, 3, ada);
    h.engine.disconnect(h.now, 3);
    h.outputs();
    h.advance(25_000);
    assert_eq!(followers_lists(&h.outputs(), 1), vec![Vec::<Follower>::new()]);
}

#[test]
fn a_resume_keeps_follows_on_both_sides_and_tells_the_new_connection() {
    let mut h = Harness::new(false);
    let ada = h.join(1, "ada");
    let bob = h.join(2, "bob");
    h.engine.follow(h.now, 2, ada);
    h.engine.disconnect(h.now, 1);
    h.engine.disconnect(h.now, 2);
    h.walk(1, 3.5, 3.5, 1_000);
    h.outputs();
    assert_eq!(h.join(11, "ada"), ada);
    let out = h.outputs();
    assert_eq!(followers_lists(&out, 11), vec![vec![Follower { avatar: bob, name: "BOB".into() }]]);
    assert_eq!(h.join(12, "bob"), bob);
    let out = h.outputs();
    assert!(
        messages_to(&out, 12).iter().any(|m| matches!(m, ServerMessage::Following { avatar, .. } if *avatar == ada))
    );
    assert!(
        messages_to(&out, 11).iter().all(|m| !matches!(m, ServerMessage::Followers { .. })),
        "nothing changed for ada"
    );
    h.walk(11, 4.0, 3.5, 300);
    h.advance(300);
    assert_eq!(followee_moves(&h.outputs(), 12), vec![("lobby".to_owned(), tile_point(4.0, 3.5))]);
}

#[test]
fn following_yourself_or_someone_not_in_the_world_is_refused_without_closing() {
    let mut h = Harness::new(false);
    let ada = h.join(1, "ada");
    h.outputs();
    for avatar in [ada, 99] {
        h.engine.follow(h.now, 1, avatar);
        let out = h.outputs();
        assert!(
            matches!(messages_to(&out, 1).as_slice(), [ServerMessage::Error { code: ErrorCode::UnknownAvatar, .. }]),
            "{out:?}"
        );
        assert!(!out.iter().any(|o| matches!(o, Output::Close { .. })));
    }
    assert!(!ErrorCode::UnknownAvatar.closes_connection() && !ErrorCode::UnknownZone.closes_connection());
}

#[test]
fn a_knock_reaches_those_inside_and_an_admission_lets_the_knocker_in_once() {
    let mut h = Harness::new(false);
    let (_, bob) = ada_inside_the_locked_room(&mut h);
    h.join(3, "carol");
    h.outputs();
    h.engine.knock(h.now, 2, "room");
    let out = h.outputs();
    let statuses = knock_statuses(&out, 2);
    let [(KnockState::Waiting, Some(knock), None, None)] = statuses.as_slice() else { panic!("{out:?}") };
    let knock = *knock;
    assert_eq!(knock_prompts(&out, 1), vec![(knock, bob, "BOB".to_owned())]);
    assert!(knock_prompts(&out, 3).is_empty(), "carol is not inside");
    // Carol, outside, cannot answer; ada's admission settles it.
    h.engine.answer_knock(h.now, 3, knock, true);
    assert!(h.outputs().is_empty(), "a foreign answer is ignored");
    h.engine.answer_knock(h.now, 1, knock, true);
    let out = h.outputs();
    assert_eq!(knock_statuses(&out, 2), vec![(KnockState::Admitted, None, None, Some("ADA".into()))]);
    assert_eq!(knocks_closed(&out, 1), vec![(knock, KnockOutcome::Admitted, Some("ADA".into()))]);
    // Bob walks in through the lock; carol, right behind him, is still kept out.
    into_the_room(&mut h, 2, 8.5);
    into_the_room(&mut h, 3, 6.5);
    let out = h.outputs();
    assert!(corrections(&out, 2).is_empty(), "{:?}", corrections(&out, 2));
    assert_eq!(corrections(&out, 3), vec![CorrectionReason::ZoneLocked; 2]);
    assert!(h.engine.people().iter().any(|p| p.user == "bob" && p.zone == "room"));
    // The pass is spent: out and back in again is refused.
    h.walk_to(2, (8.5, 2.5), (5.5, 2.5));
    h.walk(2, 6.5, 2.5, 300);
    assert_eq!(corrections(&h.outputs(), 2), vec![CorrectionReason::ZoneLocked]);
}

#[test]
fn a_pass_runs_out_after_its_time_and_opens_only_its_own_zone() {
    let mut h = Harness::new(false);
    ada_inside_the_locked_room(&mut h);
    // Cy takes the one-person booth.
    h.join(3, "cy");
    h.walk_to(3, (3.5, 3.5), (3.5, 5.5));
    h.walk(3, 2.5, 5.5, 300);
    let knock = bob_knocks(&mut h);
    h.engine.answer_knock(h.now, 1, knock, true);
    h.outputs();
    // A pass into the room does not open the full booth.
    h.walk_to(2, (3.5, 3.5), (3.5, 6.5));
    h.walk(2, 2.5, 6.5, 300);
    assert_eq!(corrections(&h.outputs(), 2), vec![CorrectionReason::ZoneFull]);
    // Nor the room once a minute has gone by.
    h.walk_to(2, (3.5, 6.5), (3.5, 3.5));
    h.walk_to(2, (3.5, 3.5), (5.5, 2.5));
    h.advance(PASS_TTL.as_millis() as u64);
    h.walk(2, 6.5, 2.5, 300);
    assert_eq!(corrections(&h.outputs(), 2), vec![CorrectionReason::ZoneLocked]);
}

#[test]
fn a_pass_lets_one_more_into_a_full_zone() {
    let mut h = Harness::new(false);
    h.join(1, "ada");
    into_the_room(&mut h, 1, 7.5);
    let limit = Moderation::SetZone { zone: "room".into(), locked: false, capacity: Some(1) };
    h.engine.moderate(h.now, limit).unwrap();
    h.join(2, "bob");
    h.join(3, "cy");
    h.outputs();
    let knock = bob_knocks(&mut h);
    h.engine.answer_knock(h.now, 1, knock, true);
    into_the_room(&mut h, 2, 8.5);
    into_the_room(&mut h, 3, 6.5);
    let out = h.outputs();
    assert!(corrections(&out, 2).is_empty());
    assert_eq!(corrections(&out, 3), vec![CorrectionReason::ZoneFull; 2]);
    assert_eq!(h.engine.people().iter().filter(|p| p.zone == "room").count(), 2);
}

#[test]
fn the_first_answer_settles_a_knock_and_later_ones_are_ignored() {
    let mut h = Harness::new(false);
    let (_, _) = ada_inside_the_locked_room(&mut h);
    h.engine.moderate(h.now, Moderation::SetZone { zone: "room".into(), locked: false, capacity: None }).unwrap();
    h.join(3, "cy");
    into_the_room(&mut h, 3, 9.5);
    lock_the_room(&mut h);
    h.outputs();
    let knock = bob_knocks(&mut h);
    h.engine.answer_knock(h.now, 3, knock, false);
    h.engine.answer_knock(h.now, 1, knock, true);
    let out = h.outputs();
    assert_eq!(knock_statuses(&out, 2), vec![(KnockState::Declined, None, None, Some("CY".into()))]);
    for conn in [1, 3] {
        assert_eq!(knocks_closed(&out, conn), vec![(knock, KnockOutcome::Declined, Some("CY".into()))]);
    }
    into_the_room(&mut h, 2, 6.5);
    assert_eq!(corrections(&h.outputs(), 2), vec![CorrectionReason::ZoneLocked; 2], "declined: no pass");
}

#[test]
fn an_unanswered_knock_expires_after_a_minute_on_both_sides() {
    let mut h = Harness::new(false);
    ada_inside_the_locked_room(&mut h);
    let knock = bob_knocks(&mut h);
    h.advance(KNOCK_TIMEOUT.as_millis() as u64 - 1);
    assert!(h.outputs().is_empty());
    h.advance(1);
    let out = h.outputs();
    assert_eq!(knock_statuses(&out, 2), vec![(KnockState::Expired, None, None, None)]);
    assert_eq!(knocks_closed(&out, 1), vec![(knock, KnockOutcome::Expired, None)]);
    h.engine.answer_knock(h.now, 1, knock, true);
    assert!(h.outputs().is_empty(), "a late answer is ignored");
}

#[test]
fn a_knocker_who_leaves_withdraws_the_knock() {
    let mut h = Harness::new(false);
    ada_inside_the_locked_room(&mut h);
    let knock = bob_knocks(&mut h);
    h.engine.leave(h.now, 2);
    assert_eq!(knocks_closed(&h.outputs(), 1), vec![(knock, KnockOutcome::Withdrawn, None)]);
    h.advance(KNOCK_TIMEOUT.as_millis() as u64);
    assert!(knocks_closed(&h.outputs(), 1).is_empty(), "nothing left to expire");
}

#[test]
fn knocks_are_limited_to_one_pending_per_person_one_per_zone_per_15_s_and_five_per_zone() {
    let mut h = Harness::new(false);
    ada_inside_the_locked_room(&mut h);
    let first = bob_knocks(&mut h);
    // One pending knock at a time: retry when it expires.
    h.advance(10_000);
    h.engine.knock(h.now, 2, "room");
    assert_eq!(knock_statuses(&h.outputs(), 2), vec![(KnockState::TooSoon, None, Some(50_000), None)]);
    // Declined after 10 s: the same room again only 15 s after the first knock.
    h.engine.answer_knock(h.now, 1, first, false);
    h.outputs();
    h.engine.knock(h.now, 2, "room");
    assert_eq!(knock_statuses(&h.outputs(), 2), vec![(KnockState::TooSoon, None, Some(5_000), None)]);
    h.advance(5_000);
    bob_knocks(&mut h);
    // Four more knockers fill the room's queue; the sixth waits for the earliest to end.
    h.advance(1_000);
    for conn in 3..=6 {
        h.join(conn, &format!("user{conn}"));
        h.engine.knock(h.now, conn, "room");
        h.advance(100);
    }
    let out = h.outputs();
    for conn in 3..=6 {
        assert!(matches!(knock_statuses(&out, conn).as_slice(), [(KnockState::Waiting, Some(_), None, None)]));
    }
    assert_eq!(knock_prompts(&out, 1).len(), 4);
    h.join(7, "eve");
    h.engine.knock(h.now, 7, "room");
    let waited = KNOCK_TIMEOUT - Duration::from_millis(1_400);
    assert_eq!(
        knock_statuses(&h.outputs(), 7),
        vec![(KnockState::TooSoon, None, Some(waited.as_millis() as u32), None)]
    );
    assert_eq!(MAX_PENDING_KNOCKS_PER_ZONE, 5);
}

#[test]
fn a_knock_is_not_needed_where_the_way_is_open_and_an_unknown_zone_is_an_error() {
    let mut h = Harness::new(false);
    h.join_admin(3, "zoe", "Zoe");
    h.join(1, "ada");
    h.outputs();
    // Open room, and the lobby ada stands in.
    for zone in ["room", "lobby"] {
        h.engine.knock(h.now, 1, zone);
        assert_eq!(knock_statuses(&h.outputs(), 1), vec![(KnockState::NotNeeded, None, None, None)], "{zone}");
    }
    // Locked with nobody inside: nobody to answer; an admin walks in anyway.
    lock_the_room(&mut h);
    h.engine.knock(h.now, 1, "room");
    assert_eq!(knock_statuses(&h.outputs(), 1), vec![(KnockState::NobodyInside, None, None, None)]);
    h.engine.knock(h.now, 3, "room");
    assert_eq!(knock_statuses(&h.outputs(), 3), vec![(KnockState::NotNeeded, None, None, None)]);
    h.engine.knock(h.now, 1, "attic");
    let out = h.outputs();
    assert!(matches!(messages_to(&out, 1).as_slice(), [ServerMessage::Error { code: ErrorCode::UnknownZone, .. }]));
}

#[test]
fn someone_entering_a_zone_is_shown_the_knocks_waiting_there_and_may_answer() {
    let mut h = Harness::new(false);
    ada_inside_the_locked_room(&mut h);
    h.join_admin(3, "zoe", "Zoe");
    let knock = bob_knocks(&mut h);
    into_the_room(&mut h, 3, 9.5);
    let out = h.outputs();
    assert_eq!(knock_prompts(&out, 3), vec![(knock, 2, "BOB".to_owned())]);
    h.engine.answer_knock(h.now, 3, knock, true);
    assert_eq!(knock_statuses(&h.outputs(), 2), vec![(KnockState::Admitted, None, None, Some("Zoe".into()))]);
}
