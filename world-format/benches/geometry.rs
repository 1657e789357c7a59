//! Cost of the queries the signaling server runs on every MoveIntent: the move check and
//! the zone lookup, on the demo world and on a large generated one (zone lookup is O(1),
//! so its cost must not grow with the grid). Figures go in docs/benchmarks.md.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use isoplane_world_format::{DEMO_WORLD, Position, World};

/// A 1000×1000 world with 2,500 zones (20×20 each) and a few obstacles.
fn large_world() -> World {
    let side = 1000u32;
    let rows: Vec<String> =
        (0..side).map(|y| (0..side).map(|x| if x % 37 == 5 && y % 41 != 0 { '#' } else { '.' }).collect()).collect();
    let zones: Vec<serde_json::Value> = (0..2500u32)
        .map(|i| {
            serde_json::json!({"id": format!("z{i}"), "name": format!("Zone {i}"), "type": "open",
                "area": [{"x": (i % 50) * 20, "y": (i / 50) * 20, "w": 20, "h": 20}]})
        })
        .collect();
    let value = serde_json::json!({
        "format": "isoplane.world", "version": 1, "name": "large",
        "grid": {"orientation": "isometric", "width": side, "height": side, "tile_width": 64, "tile_height": 32},
        "collision": {"rows": rows},
        "spawns": [{"id": "s", "x": 1, "y": 1}],
        "zones": zones,
    });
    World::from_json(&value.to_string()).unwrap_or_else(|e| panic!("{e}"))
}

fn bench(c: &mut Criterion) {
    let demo = World::from_json(DEMO_WORLD).unwrap_or_else(|e| panic!("{e}"));
    let large = large_world();
    let tick = Duration::from_millis(66);

    // A 15 Hz walking step (0.26 tiles) across open floor.
    let from = Position::from_tiles(10.5, 7.5);
    let step = Position::from_tiles(10.76, 7.55);
    assert!(demo.check_move(from, step, tick).is_ok());
    c.bench_function("move_check/demo/15hz_step", |b| {
        b.iter(|| black_box(&demo).check_move(black_box(from), black_box(step), tick))
    });

    // A long diagonal move (3 tiles in 1 s) across tile corners.
    let far = Position::from_tiles(13.3, 9.6);
    assert!(demo.check_move(from, far, Duration::from_secs(1)).is_ok());
    c.bench_function("move_check/demo/3_tile_diagonal", |b| {
        b.iter(|| black_box(&demo).check_move(black_box(from), black_box(far), Duration::from_secs(1)))
    });

    // A move refused at a thin wall (the booth's west wall).
    let outside = Position::from_tiles(11.5, 11.5);
    let inside = Position::from_tiles(12.5, 11.5);
    assert!(demo.check_move(outside, inside, Duration::from_secs(1)).is_err());
    c.bench_function("move_check/demo/refused_at_wall", |b| {
        b.iter(|| black_box(&demo).check_move(black_box(outside), black_box(inside), Duration::from_secs(1)))
    });

    // Zone lookups spread over the grid, so caches see realistic misses on the large world.
    let positions = |side: f64| -> Vec<Position> {
        (0..1024).map(|i| Position::from_tiles((f64::from(i) * 7.31) % side, (f64::from(i) * 3.77) % side)).collect()
    };
    let demo_positions = positions(15.0);
    let large_positions = positions(999.0);
    c.bench_function("zone_lookup/demo/x1024", |b| {
        b.iter(|| demo_positions.iter().filter_map(|&p| black_box(&demo).zone_of(p)).count())
    });
    c.bench_function("zone_lookup/large_1000x1000/x1024", |b| {
        b.iter(|| large_positions.iter().filter_map(|&p| black_box(&large).zone_of(p)).count())
    });

    let large_from = Position::from_tiles(500.5, 500.5);
    let large_step = Position::from_tiles(500.76, 500.55);
    c.bench_function("move_check/large_1000x1000/15hz_step", |b| {
        b.iter(|| black_box(&large).check_move(black_box(large_from), black_box(large_step), tick))
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = bench
}
criterion_main!(benches);
