//! Property tests: random valid worlds survive a JSON round trip, and the move check
//! never lets a move through a blocked tile or a wall, judged by an independent oracle.

use std::time::Duration;

use isoplane_world_format::*;
use proptest::prelude::*;
use proptest::test_runner::Config;

fn rect_strategy(width: u32, height: u32) -> impl Strategy<Value = Rect> {
    (0..width, 0..height)
        .prop_flat_map(move |(x, y)| (Just(x), Just(y), 1..=width - x, 1..=height - y))
        .prop_map(|(x, y, w, h)| Rect { x, y, w, h })
}

fn facing_strategy() -> impl Strategy<Value = Facing> {
    prop::sample::select(Facing::ALL.to_vec())
}

fn name_strategy() -> impl Strategy<Value = String> {
    "[A-Za-zÀ-ÿ0-9 '\"\\\\/-]{0,20}".prop_map(|s| format!("n{s}"))
}

fn kind_strategy(podium: Rect) -> impl Strategy<Value = ZoneKind> {
    prop_oneof![
        (1..=64u32).prop_map(|talk_radius| ZoneKind::Open { talk_radius }),
        (1..=50u32, prop::option::of(1..=100u32))
            .prop_map(|(sfu_threshold, capacity)| ZoneKind::MeetingRoom { sfu_threshold, capacity }),
        (1..=10u32).prop_map(move |max_speakers| ZoneKind::Stage { podium: vec![podium], max_speakers }),
        Just(ZoneKind::Silent),
        (1..=100u32, any::<bool>()).prop_map(|(capacity, lockable)| ZoneKind::Private { capacity, lockable }),
    ]
}

/// A world valid by construction: zones are disjoint vertical strips, objects sit on
/// distinct walkable tiles and only require earlier objects, the one spawn point is on a
/// free walkable tile.
fn world_strategy() -> impl Strategy<Value = WorldFile> {
    (3..24u32, 3..24u32, any::<bool>(), 1..4u32)
        .prop_flat_map(|(width, height, isometric, levels)| {
            let cells = (width * height) as usize;
            (
                Just((width, height, isometric, levels)),
                name_strategy(),
                prop::collection::vec(prop::bool::weighted(0.2), cells),
                prop::collection::vec(0..levels as u8, cells),
                prop::collection::vec((0..=width, 0..=height, 1..5u32, any::<bool>()), 0..6),
                prop::collection::vec(0..width, 0..4),
                prop::collection::vec(
                    (0..cells, 0..3usize, 1..4u32, prop::option::of(facing_strategy()), any::<bool>()),
                    0..8,
                ),
                (0..cells, facing_strategy()),
                prop::collection::vec((rect_strategy(width, height), "[a-z]{1,8}"), 0..3),
                (1..3usize, prop::collection::vec(any::<u32>(), cells)),
                (1.0f32..10.0, 0.0f32..2.0, 0.0f32..=1.0),
            )
        })
        .prop_flat_map(|(dims, name, blocked, heights, walls, cuts, objects, spawn, exits, layers, numbers)| {
            let (width, height, _, _) = dims;
            let mut cuts = cuts;
            cuts.sort_unstable();
            cuts.dedup();
            let mut strips = Vec::new();
            let mut start = 0;
            for cut in cuts.into_iter().chain([width]) {
                if cut > start {
                    strips.push((start, cut - start));
                    start = cut;
                }
            }
            let kinds: Vec<_> = strips.iter().map(|&(x, w)| kind_strategy(Rect { x, y: 0, w, h: 1 })).collect();
            let _ = height;
            (Just((dims, name, blocked, heights, walls, strips, objects, spawn, exits, layers, numbers)), kinds)
        })
        .prop_map(
            |((dims, name, mut blocked, heights, walls, strips, objects, spawn, exits, layers, numbers), kinds)| {
                let (width, height, isometric, levels) = dims;
                let (max_speed, slack, opacity) = numbers;
                let (spawn_cell, spawn_facing) = spawn;
                blocked[spawn_cell] = false;
                let tile_of = |cell: usize| (cell as u32 % width, cell as u32 / width);

                let mut used = vec![false; blocked.len()];
                used[spawn_cell] = true;
                let mut object_list: Vec<ExclusiveObject> = Vec::new();
                for (cell, kind, capacity, facing, chained) in objects {
                    if used[cell] {
                        continue;
                    }
                    used[cell] = true;
                    blocked[cell] = false;
                    let (x, y) = tile_of(cell);
                    let kind = ObjectKind::ALL[kind];
                    let requires = match object_list.last() {
                        Some(previous) if chained => vec![previous.id.clone()],
                        _ => Vec::new(),
                    };
                    object_list.push(ExclusiveObject {
                        id: format!("obj-{}", object_list.len()),
                        kind,
                        area: vec![Rect::tile(x, y)],
                        capacity,
                        facing: if kind == ObjectKind::Seat { facing } else { None },
                        requires,
                    });
                }

                let zones: Vec<Zone> = strips
                    .iter()
                    .zip(kinds)
                    .enumerate()
                    .map(|(i, (&(x, w), kind))| {
                        // A door-only strip lists the doors and passages inside it.
                        let inside = |o: &&ExclusiveObject| {
                            o.kind != ObjectKind::Seat && o.area[0].x >= x && o.area[0].x < x + w
                        };
                        let entry_via = object_list.iter().filter(inside).take(2).map(|o| o.id.clone()).collect();
                        Zone {
                            id: format!("zone-{i}"),
                            name: format!("Zone {i}"),
                            kind,
                            area: vec![Rect { x, y: 0, w, h: height }],
                            entry_via,
                            recording: false,
                            e2ee: false,
                        }
                    })
                    .collect();

                let (tileset_count, gids) = layers;
                let tilesets: Vec<Tileset> = (0..tileset_count)
                    .map(|i| Tileset {
                        name: format!("set {i}"),
                        image: ContentId::of_bytes(format!("image {i}").as_bytes()),
                        image_width: 256,
                        image_height: 128,
                        tile_width: 64,
                        tile_height: 64,
                        columns: 4,
                        tile_count: 8,
                        first_gid: 1 + 8 * i as u32,
                    })
                    .collect();
                let gid_count = 8 * tileset_count as u32;
                let flags = [0, GID_FLIP_HORIZONTAL, GID_FLIP_VERTICAL | GID_FLIP_DIAGONAL];
                let tiles = gids
                    .iter()
                    .map(|&r| match r % (gid_count + 1) {
                        0 => 0,
                        g => g | flags[(r as usize >> 8) % 3],
                    })
                    .collect();

                let rows = (0..height as usize)
                    .map(|y| {
                        (0..width as usize).map(|x| if blocked[y * width as usize + x] { '#' } else { '.' }).collect()
                    })
                    .collect();
                let height_rows = if levels == 1 {
                    Vec::new()
                } else {
                    (0..height as usize)
                        .map(|y| {
                            (0..width as usize).map(|x| char::from(b'0' + heights[y * width as usize + x])).collect()
                        })
                        .collect()
                };
                let walls = walls
                    .into_iter()
                    .map(|(x, y, len, vertical)| {
                        if vertical {
                            let y = y.min(height - 1);
                            Wall { from: [x, y], to: [x, (y + len).min(height)] }
                        } else {
                            let x = x.min(width - 1);
                            Wall { from: [x, y], to: [(x + len).min(width), y] }
                        }
                    })
                    .collect();
                let (sx, sy) = tile_of(spawn_cell);
                WorldFile {
                    format: FORMAT_NAME.into(),
                    version: FORMAT_VERSION,
                    name,
                    grid: Grid {
                        orientation: if isometric { Orientation::Isometric } else { Orientation::Orthogonal },
                        width,
                        height,
                        tile_width: 64,
                        tile_height: if isometric { 32 } else { 64 },
                        levels,
                        level_height: 16,
                    },
                    movement: Movement { max_speed, slack },
                    tilesets,
                    layers: vec![Layer {
                        name: "floor".into(),
                        depth: LayerDepth::Sorted,
                        opacity,
                        visible: true,
                        tiles,
                    }],
                    collision: Collision { rows, heights: height_rows, walls },
                    spawns: vec![Spawn { id: "spawn".into(), x: sx, y: sy, facing: spawn_facing }],
                    default_zone: default_zone(),
                    zones,
                    objects: object_list,
                    // A website beside each exit, so both kinds of area travel.
                    websites: exits
                        .iter()
                        .enumerate()
                        .map(|(i, (area, _))| Website {
                            id: format!("site-{i}"),
                            name: format!("Site {i}"),
                            url: format!("https://pages{i}.example:8443/board/{i}?view=1#top"),
                            area: vec![*area],
                            trigger: if i % 2 == 0 { WebsiteTrigger::Enter } else { WebsiteTrigger::Action },
                        })
                        .collect(),
                    exits: exits
                        .into_iter()
                        .enumerate()
                        .map(|(i, (area, world))| Exit {
                            id: format!("exit-{i}"),
                            area: vec![area],
                            world,
                            spawn: None,
                        })
                        .collect(),
                }
            },
        )
}

proptest! {
    #![proptest_config(Config { cases: 256, ..Config::default() })]

    #[test]
    fn a_random_valid_world_round_trips_through_json(file in world_strategy()) {
        let world = World::from_file(file.clone()).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let text = world.to_json_pretty();
        let again = World::from_json(&text).map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
        prop_assert_eq!(again.file(), &file);
        prop_assert_eq!(again.to_json_pretty(), text);
    }
}

/// A small world for the move-check properties: random blocked tiles and thin walls.
fn obstacle_world_strategy() -> impl Strategy<Value = World> {
    (
        prop::collection::vec(prop::bool::weighted(0.25), 64),
        prop::collection::vec((0..=8u32, 0..=8u32, 1..4u32, any::<bool>()), 0..8),
    )
        .prop_map(|(blocked, walls)| {
            let mut blocked = blocked;
            blocked[0] = false;
            let rows = (0..8).map(|y| (0..8).map(|x| if blocked[y * 8 + x] { '#' } else { '.' }).collect()).collect();
            let walls = walls
                .into_iter()
                .map(|(x, y, len, vertical)| {
                    if vertical {
                        Wall { from: [x, y.min(7)], to: [x, (y.min(7) + len).min(8)] }
                    } else {
                        Wall { from: [x.min(7), y], to: [(x.min(7) + len).min(8), y] }
                    }
                })
                .collect();
            let file = WorldFile {
                format: FORMAT_NAME.into(),
                version: FORMAT_VERSION,
                name: "obstacles".into(),
                grid: Grid {
                    orientation: Orientation::Orthogonal,
                    width: 8,
                    height: 8,
                    tile_width: 32,
                    tile_height: 32,
                    levels: 1,
                    level_height: 0,
                },
                movement: Movement { max_speed: 4.0, slack: 0.5 },
                tilesets: Vec::new(),
                layers: Vec::new(),
                collision: Collision { rows, heights: Vec::new(), walls },
                spawns: vec![Spawn { id: "s".into(), x: 0, y: 0, facing: Facing::South }],
                default_zone: default_zone(),
                zones: Vec::new(),
                objects: Vec::new(),
                exits: Vec::new(),
                websites: Vec::new(),
            };
            World::from_file(file).unwrap_or_else(|e| panic!("{e}"))
        })
}

fn position_strategy() -> impl Strategy<Value = Position> {
    // Quarter-tile steps hit grid lines and corners often; the rest are arbitrary.
    prop_oneof![
        (1..32i32, 1..32i32).prop_map(|(x, y)| Position::new(x * SUBTILE / 4, y * SUBTILE / 4)),
        (1..8 * SUBTILE, 1..8 * SUBTILE).prop_map(|(x, y)| Position::new(x, y)),
    ]
}

/// Independent oracle: walk the segment in tiny steps (exact rationals) and report
/// whether any sample point lies in a blocked tile (closed square) or two consecutive
/// samples lie on different sides of a wall, or a sample lies on a wall.
fn oracle_finds_collision(world: &World, a: Position, b: Position) -> bool {
    const STEPS: i64 = 4096;
    let s = i64::from(SUBTILE);
    let wall_list = &world.file().collision.walls;
    let span = s * STEPS;
    // The tiles whose closed squares hold the point: two per axis on a grid line.
    let blocked = |x: i64, y: i64| {
        let xs = [(x - 1).div_euclid(span), x.div_euclid(span)];
        let ys = [(y - 1).div_euclid(span), y.div_euclid(span)];
        xs.iter().any(|&tx| ys.iter().any(|&ty| !world.is_walkable(tx, ty)))
    };
    // Coordinates scaled by STEPS so every sample is an integer.
    let sample =
        |i: i64| (i64::from(a.x) * (STEPS - i) + i64::from(b.x) * i, i64::from(a.y) * (STEPS - i) + i64::from(b.y) * i);
    let mut previous: Option<(i64, i64)> = None;
    for i in 0..=STEPS {
        let (x, y) = sample(i);
        if blocked(x, y) {
            return true;
        }
        for wall in wall_list {
            let (x0, y0) = (i64::from(wall.from[0]) * s * STEPS, i64::from(wall.from[1]) * s * STEPS);
            let (x1, y1) = (i64::from(wall.to[0]) * s * STEPS, i64::from(wall.to[1]) * s * STEPS);
            let (lo_x, hi_x, lo_y, hi_y) = (x0.min(x1), x0.max(x1), y0.min(y1), y0.max(y1));
            let on_wall = |(px, py): (i64, i64)| px >= lo_x && px <= hi_x && py >= lo_y && py <= hi_y;
            if on_wall((x, y)) {
                return true;
            }
            if let Some((px, py)) = previous {
                let crossed = if x0 == x1 {
                    (px - x0).signum() * (x - x0).signum() < 0 && py.min(y) <= hi_y && py.max(y) >= lo_y
                } else {
                    (py - y0).signum() * (y - y0).signum() < 0 && px.min(x) <= hi_x && px.max(x) >= lo_x
                };
                if crossed {
                    return true;
                }
            }
        }
        previous = Some((x, y));
    }
    false
}

proptest! {
    #![proptest_config(Config { cases: 2048, ..Config::default() })]

    #[test]
    fn the_move_check_never_accepts_a_move_through_a_wall(
        world in obstacle_world_strategy(),
        a in position_strategy(),
        b in position_strategy(),
    ) {
        if world.check_move(a, b, Duration::from_secs(10)).is_ok() {
            prop_assert!(!oracle_finds_collision(&world, a, b), "accepted a move through a wall: {:?} -> {:?}", a, b);
        }
    }

    #[test]
    fn without_doors_a_path_is_allowed_both_ways_or_neither(
        world in obstacle_world_strategy(),
        a in position_strategy(),
        b in position_strategy(),
    ) {
        prop_assert_eq!(world.check_path(a, b).is_ok(), world.check_path(b, a).is_ok());
    }
}
