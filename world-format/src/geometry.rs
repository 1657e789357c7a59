//! Exact movement geometry on the tile grid.
//!
//! Positions are fixed-point: [`SUBTILE`] units per tile, so a position is a pair of
//! integers and every test here is exact integer arithmetic. Server and browser client
//! therefore agree on every edge case (a move that grazes a corner is rejected on both).
//!
//! An avatar is a point. Tile `(i, j)` is the closed square
//! `[i·S, (i+1)·S] × [j·S, (j+1)·S]` for the purpose of collision, so a move that merely
//! touches a blocked tile, a wall or a wall's end is refused; for "which tile am I on"
//! the half-open square is used ([`Position::tile`]).

use std::ops::ControlFlow;

use serde::{Deserialize, Serialize};

/// Fixed-point units per tile. Positions are stored in these units.
pub const SUBTILE: i32 = 256;

/// A point on the grid in sub-tile units (1 tile = [`SUBTILE`] units).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Position {
    pub x: i32,
    pub y: i32,
}

impl Position {
    pub const fn new(x: i32, y: i32) -> Position {
        Position { x, y }
    }

    /// The centre of a tile.
    pub const fn tile_center(tile_x: u32, tile_y: u32) -> Position {
        // Grids are at most `MAX_GRID_SIDE` tiles, so this cannot overflow.
        Position { x: tile_x as i32 * SUBTILE + SUBTILE / 2, y: tile_y as i32 * SUBTILE + SUBTILE / 2 }
    }

    /// From tile coordinates as floats (what a renderer works in); rounds to the nearest unit.
    pub fn from_tiles(x: f64, y: f64) -> Position {
        let scale = f64::from(SUBTILE);
        #[allow(clippy::cast_possible_truncation)] // callers keep positions on the grid
        Position { x: (x * scale).round() as i32, y: (y * scale).round() as i32 }
    }

    /// In tile units, for projection and display.
    pub fn to_tiles(self) -> (f64, f64) {
        (f64::from(self.x) / f64::from(SUBTILE), f64::from(self.y) / f64::from(SUBTILE))
    }

    /// The tile this point stands on (half-open squares: a point on a grid line belongs
    /// to the tile to its right and below).
    pub fn tile(self) -> (i32, i32) {
        (self.x.div_euclid(SUBTILE), self.y.div_euclid(SUBTILE))
    }

    /// Squared distance in sub-tile units.
    pub fn distance_squared(self, other: Position) -> i64 {
        let dx = i64::from(other.x) - i64::from(self.x);
        let dy = i64::from(other.y) - i64::from(self.y);
        dx * dx + dy * dy
    }
}

/// Whether the closed segment `a`–`b` touches the closed axis-aligned box `lo`–`hi`.
/// A degenerate box (zero width or height) is a segment of a grid line: a wall.
pub fn segment_touches_box(a: Position, b: Position, lo: Position, hi: Position) -> bool {
    let (ax, ay, bx, by) = (i64::from(a.x), i64::from(a.y), i64::from(b.x), i64::from(b.y));
    let (lx, ly, hx, hy) = (i64::from(lo.x), i64::from(lo.y), i64::from(hi.x), i64::from(hi.y));
    // Separating axes x and y: the bounding boxes must overlap.
    if ax.max(bx) < lx || ax.min(bx) > hx || ay.max(by) < ly || ay.min(by) > hy {
        return false;
    }
    // Separating axis along the segment's normal: the box must not lie strictly on one side.
    let (dx, dy) = (bx - ax, by - ay);
    let side = |cx: i64, cy: i64| (dx * (cy - ay) - dy * (cx - ax)).signum();
    let sides = [side(lx, ly), side(hx, ly), side(lx, hy), side(hx, hy)];
    !(sides.iter().all(|&s| s > 0) || sides.iter().all(|&s| s < 0))
}

/// The lowest tile index whose closed span touches coordinate `v`.
fn first_tile_touching(v: i64) -> i64 {
    (v - 1).div_euclid(i64::from(SUBTILE))
}

/// The highest tile index whose closed span touches coordinate `v`.
fn last_tile_touching(v: i64) -> i64 {
    v.div_euclid(i64::from(SUBTILE))
}

/// Calls `visit` with every tile whose closed square the closed segment `a`–`b` touches,
/// row by row, stopping early if `visit` breaks. Tiles may lie off the grid (negative
/// indices or beyond its size): the caller decides what those mean.
///
/// Cost is proportional to the number of tiles near the segment, not to its bounding box.
pub fn for_each_touched_tile<B>(
    a: Position,
    b: Position,
    mut visit: impl FnMut(i64, i64) -> ControlFlow<B>,
) -> ControlFlow<B> {
    let s = i64::from(SUBTILE);
    let (ax, ay, bx, by) = (i64::from(a.x), i64::from(a.y), i64::from(b.x), i64::from(b.y));
    let (y_min, y_max) = (ay.min(by), ay.max(by));
    for row in first_tile_touching(y_min)..=last_tile_touching(y_max) {
        // The part of the segment inside this row's closed slab, as an x range widened
        // to whole units (the exact test below removes the extra candidates).
        let slab_lo = (row * s).max(y_min);
        let slab_hi = ((row + 1) * s).min(y_max);
        let (x_lo, x_hi) = if ay == by {
            (ax.min(bx), ax.max(bx))
        } else {
            let (f0, c0) = bounds_of_x(ax, bx, ay, by, slab_lo);
            let (f1, c1) = bounds_of_x(ax, bx, ay, by, slab_hi);
            (f0.min(f1), c0.max(c1))
        };
        for col in first_tile_touching(x_lo)..=last_tile_touching(x_hi) {
            let lo = Position::new((col * s) as i32, (row * s) as i32);
            let hi = Position::new(((col + 1) * s) as i32, ((row + 1) * s) as i32);
            if segment_touches_box(a, b, lo, hi) {
                visit(col, row)?;
            }
        }
    }
    ControlFlow::Continue(())
}

/// Floor and ceiling of the segment's x at height `y` (with `ay != by`).
fn bounds_of_x(ax: i64, bx: i64, ay: i64, by: i64, y: i64) -> (i64, i64) {
    let num = (bx - ax) * (y - ay);
    let den = by - ay;
    // Normalise the sign so the denominator is positive, then floor and ceil exactly.
    let (num, den) = if den < 0 { (-num, -den) } else { (num, den) };
    let floor = num.div_euclid(den);
    let ceil = if num.rem_euclid(den) == 0 { floor } else { floor + 1 };
    (ax + floor, ax + ceil)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touched(a: Position, b: Position) -> Vec<(i64, i64)> {
        let mut tiles = Vec::new();
        let _ = for_each_touched_tile::<()>(a, b, |x, y| {
            tiles.push((x, y));
            ControlFlow::Continue(())
        });
        tiles.sort_unstable();
        tiles
    }

    /// Brute force: every tile of a generous box, tested exactly.
    fn touched_brute(a: Position, b: Position) -> Vec<(i64, i64)> {
        let s = i64::from(SUBTILE);
        let mut tiles = Vec::new();
        for row in -3..12 {
            for col in -3..12 {
                let lo = Position::new((col * s) as i32, (row * s) as i32);
                let hi = Position::new(((col + 1) * s) as i32, ((row + 1) * s) as i32);
                if segment_touches_box(a, b, lo, hi) {
                    tiles.push((col, row));
                }
            }
        }
        tiles.sort_unstable();
        tiles
    }

    #[test]
    fn a_point_inside_a_tile_touches_only_that_tile() {
        let p = Position::tile_center(2, 3);
        assert_eq!(touched(p, p), vec![(2, 3)]);
    }

    #[test]
    fn a_point_on_a_corner_touches_all_four_tiles() {
        let p = Position::new(SUBTILE, SUBTILE);
        assert_eq!(touched(p, p), vec![(0, 0), (0, 1), (1, 0), (1, 1)]);
    }

    #[test]
    fn a_diagonal_through_a_corner_touches_the_side_tiles_too() {
        let a = Position::tile_center(0, 0);
        let b = Position::tile_center(1, 1);
        assert_eq!(touched(a, b), vec![(0, 0), (0, 1), (1, 0), (1, 1)]);
    }

    #[test]
    fn a_slanted_move_touches_what_brute_force_finds() {
        let cases = [
            (Position::new(10, 10), Position::new(900, 300)),
            (Position::new(900, 300), Position::new(10, 10)),
            (Position::new(700, 20), Position::new(30, 1000)),
            (Position::new(256, 100), Position::new(256, 900)),
            (Position::new(100, 512), Position::new(1000, 512)),
            (Position::new(5, 5), Position::new(2000, 1999)),
        ];
        for (a, b) in cases {
            assert_eq!(touched(a, b), touched_brute(a, b), "{a:?} -> {b:?}");
        }
    }

    #[test]
    fn wall_segments_are_touched_at_their_ends() {
        let wall_lo = Position::new(SUBTILE, 0);
        let wall_hi = Position::new(SUBTILE, SUBTILE);
        // Crosses the wall.
        assert!(segment_touches_box(Position::new(100, 100), Position::new(400, 100), wall_lo, wall_hi));
        // Passes exactly through the wall's end point.
        assert!(segment_touches_box(Position::new(200, 312), Position::new(312, 200), wall_lo, wall_hi));
        // Passes just below its end.
        assert!(!segment_touches_box(Position::new(100, 300), Position::new(400, 300), wall_lo, wall_hi));
    }
}
