//! A new version of the world file while people are in it, on the virtual clock.

use super::*;

/// Serves the test world changed by `edit`, as version `version`.
fn publish(h: &mut Harness, version: &str, edit: impl FnOnce(&mut serde_json::Value)) -> WorldRef {
    let mut file = test_world_json();
    edit(&mut file);
    let world = Arc::new(World::from_json(&file.to_string()).unwrap_or_else(|e| panic!("{e}")));
    let world_ref = WorldRef { name: "test".into(), version: version.into(), url: "/v1/worlds/test".into() };
    h.engine.replace_world(h.now, world, world_ref.clone());
    world_ref
}

/// Blocks column 5 from top to bottom: a wall across the lobby (the spawn point that
/// stood there moves beside it).
fn wall_across_the_lobby(file: &mut serde_json::Value) {
    file["spawns"][1]["x"] = 3.into();
    let rows = file["collision"]["rows"].as_array_mut().unwrap();
    for row in rows {
        let mut text = row.as_str().unwrap().to_owned();
        text.replace_range(5..6, "#");
        *row = text.into();
    }
}

/// The zone a snapshot to `conn` describes, and where it says `conn` stands.
fn last_snapshot(outputs: &[Output], conn: ConnId) -> Option<(String, Point)> {
    messages_to(outputs, conn).into_iter().rev().find_map(|m| match m {
        ServerMessage::Snapshot { zone, you, .. } => Some((zone.id.clone(), you.position)),
        _ => None,
    })
}

fn at(x: f64, y: f64) -> Point {
    let p = Position::from_tiles(x, y);
    Point { x: p.x, y: p.y }
}

#[test]
fn a_new_wall_moves_whoever_stands_on_it_and_stops_walkers_everyone_told_in_order() {
    let mut h = Harness::new(false);
    h.join(1, "ada");
    h.join(2, "bob");
    h.walk_to(1, (3.5, 3.5), (5.5, 3.5));
    h.advance(100);
    h.outputs();

    let version = publish(&mut h, "sha256-v2", wall_across_the_lobby);
    let out = h.outputs();
    // Ada stood on (5, 3), blocked now: the nearest free tile is (4, 3).
    let to_ada: Vec<&ServerMessage> = messages_to(&out, 1);
    assert!(matches!(to_ada.first(), Some(ServerMessage::WorldChanged { world }) if *world == version));
    assert_eq!(corrections(&out, 1), vec![CorrectionReason::WorldChanged]);
    let corrected = to_ada.iter().find_map(|m| match m {
        ServerMessage::Correction { position, state, .. } => Some((*position, *state)),
        _ => None,
    });
    assert_eq!(corrected, Some((at(4.5, 3.5), AvatarState::Idle)));
    assert_eq!(last_snapshot(&out, 1), Some(("lobby".into(), at(4.5, 3.5))));
    // Bob stood where one still may: told, not moved.
    assert!(matches!(messages_to(&out, 2).first(), Some(ServerMessage::WorldChanged { .. })));
    assert_eq!(corrections(&out, 2), vec![]);
    assert_eq!(last_snapshot(&out, 2), Some(("lobby".into(), at(3.5, 3.5))));

    // The move check is the new world's: through the wall is refused, beside it is fine.
    h.walk(2, 4.0, 3.5, 200);
    h.walk(2, 4.4, 3.5, 200);
    assert_eq!(corrections(&h.outputs(), 2), vec![]);
    h.walk_to(1, (4.5, 3.5), (6.5, 3.5));
    assert_eq!(corrections(&h.outputs(), 1).first(), Some(&CorrectionReason::Blocked));

    // Back to the first version: nobody stands anywhere it forbids, nobody moves.
    publish(&mut h, "sha256-x", |_| {});
    let out = h.outputs();
    assert_eq!(corrections(&out, 1), vec![]);
    assert_eq!(corrections(&out, 2), vec![]);
    h.walk_to(1, (4.5, 3.5), (6.5, 3.5));
    assert_eq!(corrections(&h.outputs(), 1), vec![]);
}

#[test]
fn zones_keep_their_locks_pages_and_sfu_room_by_id_and_a_removed_zone_lets_its_people_out() {
    let mut h = Harness::new(true);
    let ids = three_in_the_room(&mut h);
    h.engine.share_page(1, Some(format!("{BOARD_ORIGIN}/board")));
    h.engine.moderate(h.now, Moderation::SetZone { zone: "room".into(), locked: true, capacity: None }).unwrap();
    h.join(4, "dan");
    h.advance(500);
    let before = last_plan(&h.outputs(), 1).unwrap();
    assert_eq!(before.topology, Topology::Sfu);

    // The zones listed in another order (the room's index moves) and renamed: same IDs.
    publish(&mut h, "sha256-v2", |file| {
        let zones = file["zones"].as_array_mut().unwrap();
        zones.reverse();
        zones[2]["name"] = "Big room".into();
    });
    h.advance(500);
    let out = h.outputs();
    assert_eq!(last_snapshot(&out, 1).map(|(zone, _)| zone), Some("room".into()));
    let page = messages_to(&out, 2).into_iter().rev().find_map(|m| match m {
        ServerMessage::Snapshot { zone, .. } => Some(zone.page.clone()),
        _ => None,
    });
    assert!(page.flatten().is_some_and(|p| p.url.ends_with("/board")), "the shared page stays open");
    assert!(last_plan(&out, 1).is_none(), "same room, same SFU: no new plan");
    assert!(!out.iter().any(|o| matches!(o, Output::SfuRevoke { .. })));
    // Still locked: Dan is stopped at the door.
    into_the_room(&mut h, 4, 7.5);
    assert!(corrections(&h.outputs(), 4).contains(&CorrectionReason::ZoneLocked));

    // The room is gone: its people are in the lobby, each told; their SFU sessions end.
    publish(&mut h, "sha256-v3", |file| {
        file["zones"].as_array_mut().unwrap().retain(|zone| zone["id"] != "room");
    });
    h.advance(500);
    let out = h.outputs();
    for (conn, id) in (1..=3).zip(&ids) {
        assert_eq!(last_snapshot(&out, conn).map(|(zone, _)| zone), Some("lobby".into()));
        let plan = last_plan(&out, conn).unwrap();
        assert_ne!(plan.topology, Topology::Sfu, "the lobby is peer to peer");
        assert!(
            out.iter()
                .any(|o| matches!(o, Output::SfuRevoke { room, avatar, .. } if room == "test/room" && avatar == id))
        );
    }
}

#[test]
fn a_seat_that_now_covers_two_people_keeps_the_first_and_moves_the_second() {
    let mut h = Harness::new(false);
    h.join(1, "ada");
    h.join(2, "bob");
    h.walk_to(1, (3.5, 3.5), (3.5, 2.5));
    h.walk_to(2, (3.5, 3.5), (2.5, 2.5));
    h.advance(100);
    h.outputs();
    // The seat grows over both of them, still for one.
    publish(&mut h, "sha256-v2", |file| {
        file["objects"][0]["area"] = serde_json::json!([{"x": 2, "y": 1, "w": 2, "h": 2}]);
    });
    let out = h.outputs();
    assert_eq!(corrections(&out, 1), vec![]);
    assert_eq!(corrections(&out, 2), vec![CorrectionReason::WorldChanged]);
    let seat = h.engine.world().object_by_id("seat").unwrap();
    let ada = h.engine.by_conn[&1];
    assert_eq!(h.engine.holders_of(seat), &[ada]);
    let bob = &h.engine.avatars[&h.engine.by_conn[&2]];
    assert!(h.engine.world().object_at(i64::from(bob.position.tile().0), i64::from(bob.position.tile().1)).is_none());
}

#[test]
fn a_zone_whose_file_capacity_shrinks_keeps_the_first_inside_and_lets_the_rest_out() {
    let mut h = Harness::new(false);
    three_in_the_room(&mut h);
    h.outputs();
    publish(&mut h, "sha256-v2", |file| {
        let room = file["zones"][0].as_object_mut().unwrap();
        room.remove("sfu_threshold");
        room.insert("type".into(), "private".into());
        room.insert("capacity".into(), 2.into());
    });
    let out = h.outputs();
    let zones: Vec<String> = (1..=3).filter_map(|conn| last_snapshot(&out, conn).map(|(zone, _)| zone)).collect();
    assert_eq!(zones, vec!["room", "room", "lobby"]);
    assert_eq!(corrections(&out, 3), vec![CorrectionReason::WorldChanged]);
}

#[test]
fn a_knock_on_a_zone_that_is_gone_expires_and_knockers_are_told() {
    let mut h = Harness::new(false);
    h.join(1, "ada");
    into_the_room(&mut h, 1, 8.5);
    h.engine.moderate(h.now, Moderation::SetZone { zone: "room".into(), locked: true, capacity: None }).unwrap();
    h.join(2, "bob");
    h.engine.knock(h.now, 2, "room");
    h.outputs();
    publish(&mut h, "sha256-v2", |file| {
        file["zones"].as_array_mut().unwrap().retain(|zone| zone["id"] != "room");
    });
    let out = h.outputs();
    let expired = messages_to(&out, 2).into_iter().any(|m| {
        matches!(m, ServerMessage::KnockStatus { zone, state: crate::protocol::KnockState::Expired, .. } if zone == "room")
    });
    assert!(expired, "{out:?}");
    h.advance(60_000);
    h.outputs();
    h.engine.people_invariants().unwrap();
}
