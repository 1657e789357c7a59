//! The move check's cases for the browser client, generated from this crate's check so the
//! two can never drift apart.
//!
//! The client predicts its own moves with a port of `World::check_path` (web/js/world.js)
//! and, when a step is refused, slides along the wall on one axis (web/js/prediction.js).
//! This test runs a deterministic set of moves on the demo world and on the small
//! hand-drawn world of the movement tests through `check_path`, and writes what it says
//! into `tests/data/move_cases.json`: per world its file, and per case the start, the
//! intended destination, the refusal reason (null when accepted) and where the client's
//! step must end. tests/browser/unit/prediction.test.js replays every case through the
//! JavaScript. The committed file must equal what this test generates; after a change to
//! the check or the worlds, regenerate it with
//! `ISOPLANE_UPDATE_MOVE_CASES=1 cargo test -p isoplane-world-format --test move_cases`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use isoplane_world_format::{DEMO_WORLD, MoveRejection, Position, SUBTILE, World};
use serde_json::{Value, json};

mod common;

/// How many cases of each outcome ("accepted", a refusal reason, "slid").
type Outcomes = BTreeMap<&'static str, usize>;

/// Cases of each kind per world.
const CASES_PER_KIND: usize = 250;

/// The committed cases file.
fn cases_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/move_cases.json")
}

/// A small deterministic generator (xorshift64*): the same cases on every run.
struct Dice(u64);

impl Dice {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in `lo..=hi`.
    fn between(&mut self, lo: i32, hi: i32) -> i32 {
        let span = u64::try_from(i64::from(hi) - i64::from(lo) + 1).unwrap_or(1);
        let offset = i64::try_from(self.next() % span).unwrap_or(0);
        i32::try_from(i64::from(lo) + offset).unwrap_or(lo)
    }
}

/// The reason name the signaling server sends in a `correction` and world.js returns.
fn reason(rejection: MoveRejection) -> &'static str {
    match rejection {
        MoveRejection::OffGrid => "off_grid",
        MoveRejection::TooFast { .. } => "too_fast",
        MoveRejection::Blocked { .. } => "blocked",
        MoveRejection::Wall { .. } => "wall",
        MoveRejection::Cliff { .. } => "cliff",
        MoveRejection::NotThroughEntry { .. } => "not_through_entry",
    }
}

/// Where the client's step from `from` toward `to` ends: `to` if the path is allowed, else
/// the first allowed of its x-only and y-only parts, else `from`.
fn step_end(world: &World, from: Position, to: Position) -> Position {
    [to, Position::new(to.x, from.y), Position::new(from.x, to.y)]
        .into_iter()
        .find(|&at| world.check_path(from, at).is_ok())
        .unwrap_or(from)
}

/// Moves that exercise the check: anywhere, along grid lines, through tile corners, and
/// the keyboard steps of one frame.
fn moves(world: &World, seed: u64) -> Vec<(Position, Position)> {
    let extent = world.extent();
    let mut dice = Dice(seed);
    let mut out = Vec::with_capacity(4 * CASES_PER_KIND);
    let inside = |dice: &mut Dice| Position::new(dice.between(1, extent.x - 1), dice.between(1, extent.y - 1));
    let on_line = |v: i32| v - v.rem_euclid(SUBTILE);
    let reach = 2 * SUBTILE;
    // Anywhere, up to two tiles away (some off the grid).
    for _ in 0..CASES_PER_KIND {
        let from = inside(&mut dice);
        out.push((from, Position::new(from.x + dice.between(-reach, reach), from.y + dice.between(-reach, reach))));
    }
    // Along a grid line, where closed tiles and walls are grazed.
    for i in 0..CASES_PER_KIND {
        let from = inside(&mut dice);
        let along = dice.between(-reach, reach);
        out.push(if i % 2 == 0 {
            let y = on_line(from.y).max(1);
            (Position::new(from.x, y), Position::new(from.x + along, y))
        } else {
            let x = on_line(from.x).max(1);
            (Position::new(x, from.y), Position::new(x, from.y + along))
        });
    }
    // From a tile centre to a nearby centre or corner: diagonals through corners exactly.
    for _ in 0..CASES_PER_KIND {
        let tile = |dice: &mut Dice, side: i32| dice.between(0, side / SUBTILE - 1) * SUBTILE;
        let from = Position::new(tile(&mut dice, extent.x) + SUBTILE / 2, tile(&mut dice, extent.y) + SUBTILE / 2);
        let corner = dice.next().is_multiple_of(2);
        let offset = if corner { 0 } else { SUBTILE / 2 };
        let (dx, dy) = (dice.between(-2, 2) * SUBTILE, dice.between(-2, 2) * SUBTILE);
        out.push((from, Position::new(on_line(from.x + dx) + offset, on_line(from.y + dy) + offset)));
    }
    // One frame of keyboard walking (3.5 tiles a second, 1/60 s to 0.1 s) in one of the
    // eight directions the keys give.
    for _ in 0..CASES_PER_KIND {
        let from = inside(&mut dice);
        let angle = f64::from(dice.between(0, 7)) * std::f64::consts::FRAC_PI_4;
        let step = 3.5 * f64::from(SUBTILE) * f64::from(dice.between(16, 100)) / 1000.0;
        let (dx, dy) = ((angle.cos() * step).round(), (angle.sin() * step).round());
        // Steps are under half a tile: always within i32.
        out.push((from, Position::new(from.x + dx as i32, from.y + dy as i32)));
    }
    out
}

/// One world's cases as JSON lines, and how many of each outcome they hold.
fn world_cases(world: &World, seed: u64) -> (Vec<String>, Outcomes) {
    let mut counts = BTreeMap::new();
    let lines = moves(world, seed)
        .into_iter()
        .map(|(from, to)| {
            let verdict = world.check_path(from, to).err().map(reason);
            let end = step_end(world, from, to);
            *counts.entry(verdict.unwrap_or("accepted")).or_insert(0) += 1;
            if verdict.is_some() && end != from {
                *counts.entry("slid").or_insert(0) += 1;
            }
            json!([from.x, from.y, to.x, to.y, verdict, end.x, end.y]).to_string()
        })
        .collect();
    (lines, counts)
}

/// The whole file, one case per line so a change reads as a diff of cases.
fn generate() -> (String, Vec<(&'static str, Outcomes)>) {
    let demo = World::from_json(DEMO_WORLD).unwrap_or_else(|e| panic!("the demo world: {e}"));
    let moves_world = common::moves_world();
    // The demo as the server serves it; the hand-drawn world with its defaults filled in,
    // as the client needs every field.
    let demo_file: Value = serde_json::from_str(DEMO_WORLD).unwrap_or_else(|e| panic!("the demo world: {e}"));
    let moves_file = serde_json::to_value(moves_world.file()).unwrap_or_else(|e| panic!("the moves world: {e}"));
    let mut text = String::from("{\n");
    text.push_str(
        "  \"about\": \"Generated by world-format/tests/move_cases.rs from the Rust move check; do not edit. Case: [from x, from y, to x, to y, refusal reason or null, where the client's step ends x, y]. Regenerate: ISOPLANE_UPDATE_MOVE_CASES=1 cargo test -p isoplane-world-format --test move_cases\",\n",
    );
    text.push_str("  \"worlds\": [\n");
    let mut counts = Vec::new();
    let worlds = [("demo", &demo, demo_file, 1), ("moves", &moves_world, moves_file, 2)];
    let last = worlds.len() - 1;
    for (i, (name, world, file, seed)) in worlds.into_iter().enumerate() {
        let (lines, world_counts) = world_cases(world, 0x1505_1a4e_0000_0000 | seed);
        counts.push((name, world_counts));
        text.push_str(&format!("    {{\n      \"name\": \"{name}\",\n      \"world\": {file},\n      \"cases\": [\n"));
        text.push_str(&lines.iter().map(|l| format!("        {l}")).collect::<Vec<_>>().join(",\n"));
        text.push_str(&format!("\n      ]\n    }}{}\n", if i == last { "" } else { "," }));
    }
    text.push_str("  ]\n}\n");
    (text, counts)
}

#[test]
fn the_cases_cover_every_outcome_of_the_check() {
    let (_, counts) = generate();
    for (name, world_counts) in &counts {
        for outcome in ["accepted", "off_grid", "blocked", "slid"] {
            assert!(world_counts.get(outcome).is_some_and(|&n| n > 0), "no {outcome} case on {name}: {world_counts:?}");
        }
    }
    let (_, moves) = &counts[1];
    for outcome in ["wall", "cliff", "not_through_entry"] {
        assert!(moves.get(outcome).is_some_and(|&n| n > 0), "no {outcome} case on the moves world: {moves:?}");
    }
}

#[test]
fn the_committed_cases_are_what_the_check_says() {
    let (generated, _) = generate();
    let path = cases_path();
    if std::env::var_os("ISOPLANE_UPDATE_MOVE_CASES").is_some() {
        std::fs::write(&path, &generated).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "{} is out of date with the move check: regenerate it with \
         `ISOPLANE_UPDATE_MOVE_CASES=1 cargo test -p isoplane-world-format --test move_cases` and commit it",
        path.display()
    );
}
