//! The move check on a small hand-drawn world: what passes, what is refused and why.

use std::time::Duration;

use isoplane_world_format::{MoveRejection, Position, SUBTILE};

mod common;
use common::moves_world as world;

fn at(x: f64, y: f64) -> Position {
    Position::from_tiles(x, y)
}

const SECOND: Duration = Duration::from_secs(1);

#[test]
fn an_ordinary_step_is_accepted_with_its_zone() {
    let w = world();
    let accepted = w.check_move(at(3.5, 3.5), at(3.8, 3.4), Duration::from_millis(66)).unwrap();
    assert_eq!(accepted.tile, (3, 3));
    assert_eq!(w.zone(accepted.zone).id, "default");
    assert_eq!(accepted.object, None);
    assert!(accepted.touched.is_empty());
}

#[test]
fn a_move_into_or_through_a_blocked_tile_is_refused() {
    let w = world();
    assert_eq!(w.check_move(at(1.5, 1.5), at(2.5, 1.5), SECOND), Err(MoveRejection::Blocked { tile: (2, 1) }));
    assert_eq!(w.check_move(at(1.5, 0.5), at(3.5, 1.5), SECOND), Err(MoveRejection::Blocked { tile: (2, 1) }));
}

#[test]
fn squeezing_diagonally_between_two_blocked_corners_is_refused() {
    let w = world();
    // (2,1) and (1,2) touch at corner (2,2): passing exactly through it is through the wall.
    assert_eq!(w.check_move(at(1.5, 1.5), at(2.5, 2.5), SECOND), Err(MoveRejection::Blocked { tile: (2, 1) }));
    assert!(matches!(w.check_move(at(2.5, 2.5), at(1.5, 1.5), SECOND), Err(MoveRejection::Blocked { .. })));
}

#[test]
fn grazing_a_blocked_tile_edge_is_refused_but_passing_beside_it_is_fine() {
    let w = world();
    // Along the top edge of row 2 exactly, next to blocked (1,2).
    assert!(w.check_move(at(0.5, 2.0), at(1.9, 2.0), SECOND).is_err());
    assert!(w.check_move(at(0.5, 1.9), at(1.9, 1.9), SECOND).is_ok());
}

#[test]
fn a_thin_wall_and_its_ends_cannot_be_crossed() {
    let w = world();
    assert_eq!(w.check_move(at(4.5, 2.5), at(5.5, 2.5), SECOND), Err(MoveRejection::Wall { tile: (5, 2) }));
    assert_eq!(w.check_move(at(5.5, 3.5), at(4.5, 3.5), SECOND), Err(MoveRejection::Wall { tile: (5, 3) }));
    // Exactly through the wall's lower end, (5, 4).
    assert!(matches!(w.check_move(at(4.5, 4.5), at(5.5, 3.5), SECOND), Err(MoveRejection::Wall { .. })));
    // Around the end, a little lower: fine.
    assert!(w.check_move(at(4.5, 4.5), at(5.5, 4.2), SECOND).is_ok());
}

#[test]
fn moves_that_leave_the_grid_are_refused() {
    let w = world();
    assert_eq!(w.check_move(at(0.5, 0.5), at(-0.2, 0.5), SECOND), Err(MoveRejection::OffGrid));
    assert_eq!(w.check_move(at(7.5, 6.5), at(8.0, 6.5), SECOND), Err(MoveRejection::OffGrid));
    assert_eq!(w.check_move(at(0.5, 0.5), at(0.0, 0.5), SECOND), Err(MoveRejection::OffGrid));
}

#[test]
fn a_move_longer_than_the_speed_allows_is_refused() {
    let w = world();
    // 4 tiles/s for 100 ms plus 0.5 tile of slack = 0.9 tile.
    let allowed = w.allowed_distance(Duration::from_millis(100));
    assert_eq!(allowed, (0.9 * f64::from(SUBTILE)) as u32);
    assert!(w.check_move(at(3.5, 3.5), at(4.3, 3.5), Duration::from_millis(100)).is_ok());
    assert_eq!(
        w.check_move(at(3.5, 3.5), at(4.5, 3.5), Duration::from_millis(100)),
        Err(MoveRejection::TooFast { distance: SUBTILE as u32, allowed })
    );
    // Without a speed limit (placing an avatar), the same path is fine.
    assert!(w.check_path(at(3.5, 3.5), at(4.5, 3.5)).is_ok());
}

#[test]
fn a_step_of_one_level_is_a_stair_and_more_is_a_cliff() {
    let w = world();
    assert!(w.check_move(at(3.5, 4.5), at(3.5, 5.5), SECOND).is_ok());
    assert_eq!(w.check_move(at(3.5, 5.5), at(3.5, 6.5), SECOND), Err(MoveRejection::Cliff { tile: (3, 6) }));
}

#[test]
fn a_door_only_zone_is_entered_through_its_door_only() {
    let w = world();
    let room = w.zone_by_id("room").unwrap();
    let door = w.object_by_id("door").unwrap();
    // Straight in from below, no door: refused.
    assert_eq!(w.check_move(at(6.5, 2.5), at(6.5, 1.5), SECOND), Err(MoveRejection::NotThroughEntry { zone: room }));
    // Onto the door, then into the room: both fine, and the door is reported.
    let onto_door = w.check_move(at(4.5, 0.5), at(5.5, 0.5), SECOND).unwrap();
    assert_eq!(onto_door.object, Some(door));
    let inside = w.check_move(at(5.5, 0.5), at(6.5, 0.5), SECOND).unwrap();
    assert_eq!(inside.zone, room);
    assert!(inside.touched.contains(door));
    // Leaving is free.
    assert!(w.check_move(at(6.5, 1.5), at(6.5, 2.5), SECOND).is_ok());
}

#[test]
fn exclusive_objects_on_the_way_are_reported_and_chains_checked() {
    let w = world();
    let passage = w.object_by_id("passage").unwrap();
    let seat = w.object_by_id("seat").unwrap();
    let door = w.object_by_id("door").unwrap();
    let through = w.check_move(at(0.5, 3.5), at(0.5, 4.5), SECOND).unwrap();
    assert_eq!(through.object, Some(passage));
    assert_eq!(through.touched.iter().collect::<Vec<_>>(), vec![passage]);

    let sit = w.check_move(at(6.5, 1.5), at(7.5, 1.5), SECOND).unwrap();
    assert_eq!(sit.object, Some(seat));
    assert!(w.chain_allows(Some(door), &sit.touched, seat));
    assert!(!w.chain_allows(None, &sit.touched, seat));
    assert!(!w.chain_allows(Some(passage), &sit.touched, seat));
    assert!(w.chain_allows(None, &sit.touched, passage));
}

#[test]
fn a_standing_still_move_is_accepted() {
    let w = world();
    let p = at(3.5, 3.5);
    assert!(w.check_move(p, p, Duration::ZERO).is_ok());
}

#[test]
fn can_stand_refuses_blocked_tiles_walls_and_the_outside() {
    let w = world();
    assert!(w.can_stand(at(3.5, 3.5)));
    assert!(!w.can_stand(at(2.5, 1.5)), "a blocked tile");
    assert!(!w.can_stand(at(5.0, 3.0)), "on the wall's line");
    assert!(!w.can_stand(at(8.5, 3.5)), "off the grid");
    assert!(!w.can_stand(at(0.0, 3.5)), "on the grid's border");
}

#[test]
fn nearest_place_finds_the_closest_standable_tile_the_caller_accepts() {
    let w = world();
    // From the blocked tile (2, 1): its neighbours (1, 1), (3, 1), (2, 0), (2, 2) are one
    // tile away; (2, 0) is found first (rows top to bottom).
    assert_eq!(w.nearest_place(at(2.5, 1.5), |_, _| true), Some(at(2.5, 0.5)));
    // Off-centre, the nearest centre wins even on a farther ring's edge.
    assert_eq!(w.nearest_place(at(2.9, 1.5), |_, _| true), Some(at(3.5, 1.5)));
    // Standing where one may, the own tile's centre.
    assert_eq!(w.nearest_place(at(3.2, 3.7), |_, _| true), Some(at(3.5, 3.5)));
    // The caller's rule (say, a full zone) is honoured.
    assert_eq!(w.nearest_place(at(3.5, 3.5), |x, _| x >= 6), Some(at(6.5, 3.5)));
    // From off the grid, the nearest tile on it.
    assert_eq!(w.nearest_place(Position::new(-SUBTILE * 3, SUBTILE / 2), |_, _| true), Some(at(0.5, 0.5)));
    assert_eq!(w.nearest_place(at(3.5, 3.5), |_, _| false), None);
}
