//! Tiled object shapes → the grid tiles they cover → a short list of rectangles.
//!
//! A tile belongs to a shape when the tile's centre lies inside the shape (rectangles
//! half-open: left/top edges in, right/bottom edges out; polygons by the even-odd rule;
//! ellipses with their border). A shape that holds no tile centre at all (smaller than
//! a tile) covers the tile under its centre; a point covers the tile it lies on.

use std::collections::HashMap;

use crate::model::Rect;

/// A grid tile, (x, y).
pub(super) type Tile = (u32, u32);

/// Tiled object coordinates → world tile coordinates.
///
/// Orthogonal maps store object positions in pixels, so x divides by the tile width
/// and y by the tile height. Isometric maps store them in a projected space where one
/// tile is `tileheight` pixels along both axes, so both divide by the tile height.
/// `origin` is the Tiled tile that became world tile (0, 0) (non-zero for infinite maps).
#[derive(Debug, Clone, Copy)]
pub(super) struct ObjectSpace {
    pub unit_x: f64,
    pub unit_y: f64,
    pub origin: (f64, f64),
    pub width: u32,
    pub height: u32,
}

impl ObjectSpace {
    pub fn to_tiles(self, (px, py): (f64, f64)) -> (f64, f64) {
        (px / self.unit_x - self.origin.0, py / self.unit_y - self.origin.1)
    }
}

/// A shape in world tile coordinates.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Shape {
    Box { x0: f64, y0: f64, x1: f64, y1: f64 },
    Ellipse { x0: f64, y0: f64, x1: f64, y1: f64 },
    Polygon(Vec<(f64, f64)>),
    Point(f64, f64),
}

/// The grid tiles of a shape, in row-major order.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Footprint {
    pub tiles: Vec<(u32, u32)>,
    /// The shape reaches outside the grid; what lay outside was cut.
    pub cut: bool,
    /// The centre of the shape's bounding box, in tile coordinates.
    pub centre: (f64, f64),
}

impl Shape {
    fn bounds(&self) -> (f64, f64, f64, f64) {
        match self {
            Shape::Box { x0, y0, x1, y1 } | Shape::Ellipse { x0, y0, x1, y1 } => (*x0, *y0, *x1, *y1),
            Shape::Point(x, y) => (*x, *y, *x, *y),
            Shape::Polygon(points) => points
                .iter()
                .fold((f64::INFINITY, f64::INFINITY, f64::NEG_INFINITY, f64::NEG_INFINITY), |(a, b, c, d), &(x, y)| {
                    (a.min(x), b.min(y), c.max(x), d.max(y))
                }),
        }
    }

    fn holds(&self, x: f64, y: f64) -> bool {
        match self {
            Shape::Box { x0, y0, x1, y1 } => *x0 <= x && x < *x1 && *y0 <= y && y < *y1,
            Shape::Ellipse { x0, y0, x1, y1 } => {
                let (rx, ry) = ((x1 - x0) / 2.0, (y1 - y0) / 2.0);
                if rx <= 0.0 || ry <= 0.0 {
                    return false;
                }
                let (dx, dy) = ((x - (x0 + rx)) / rx, (y - (y0 + ry)) / ry);
                dx * dx + dy * dy <= 1.0
            }
            Shape::Polygon(points) => polygon_holds(points, x, y),
            Shape::Point(..) => false,
        }
    }
}

/// Even-odd rule: a ray to the right crosses the border an odd number of times.
fn polygon_holds(points: &[(f64, f64)], x: f64, y: f64) -> bool {
    let mut inside = false;
    let mut previous = match points.last() {
        Some(&p) => p,
        None => return false,
    };
    for &(px, py) in points {
        let (qx, qy) = previous;
        if (py > y) != (qy > y) && x < px + (y - py) * (qx - px) / (qy - py) {
            inside = !inside;
        }
        previous = (px, py);
    }
    inside
}

/// The tiles of `shape` on a `width`×`height` grid.
pub(super) fn footprint(shape: &Shape, width: u32, height: u32) -> Footprint {
    let (x0, y0, x1, y1) = shape.bounds();
    let centre = ((x0 + x1) / 2.0, (y0 + y1) / 2.0);
    let (w, h) = (f64::from(width), f64::from(height));
    let finite = [x0, y0, x1, y1].iter().all(|v| v.is_finite());
    let cut = !finite || x0 < 0.0 || y0 < 0.0 || x1 > w || y1 > h;
    if !finite {
        return Footprint { tiles: Vec::new(), cut, centre };
    }
    let mut tiles = Vec::new();
    if !matches!(shape, Shape::Point(..)) {
        // Only tiles whose centre can be inside the bounds, clipped to the grid.
        let first = |lo: f64| (lo - 0.5).ceil().max(0.0);
        let last = |hi: f64, side: f64| (hi - 0.5).floor().min(side - 1.0);
        let (tx0, tx1) = (first(x0), last(x1, w));
        let (ty0, ty1) = (first(y0), last(y1, h));
        if tx0 <= tx1 && ty0 <= ty1 {
            // Clipped to the grid above, so these are small non-negative whole numbers.
            for ty in ty0 as u32..=ty1 as u32 {
                for tx in tx0 as u32..=tx1 as u32 {
                    if shape.holds(f64::from(tx) + 0.5, f64::from(ty) + 0.5) {
                        tiles.push((tx, ty));
                    }
                }
            }
        }
    }
    if tiles.is_empty() {
        let (cx, cy) = (centre.0.floor(), centre.1.floor());
        if (0.0..w).contains(&cx) && (0.0..h).contains(&cy) {
            tiles.push((cx as u32, cy as u32));
        }
    }
    Footprint { tiles, cut, centre }
}

/// Row-major tiles → rectangles: runs along each row, then runs of the same span in
/// consecutive rows merged, which keeps the list short for the shapes people draw.
pub(super) fn to_rects(tiles: &[(u32, u32)]) -> Vec<Rect> {
    let mut sorted: Vec<(u32, u32)> = tiles.to_vec();
    sorted.sort_unstable_by_key(|&(x, y)| (y, x));
    sorted.dedup();
    let mut rects: Vec<Rect> = Vec::new();
    // Rectangles that end on the row above, by (x, w), ready to grow downwards.
    let mut open: HashMap<(u32, u32), usize> = HashMap::new();
    let mut next_open = HashMap::new();
    let mut row = None;
    let mut i = 0;
    while i < sorted.len() {
        let (x, y) = sorted[i];
        let mut w = 1;
        while sorted.get(i + w as usize) == Some(&(x + w, y)) {
            w += 1;
        }
        i += w as usize;
        if row != Some(y) {
            open = if row == Some(y.wrapping_sub(1)) { std::mem::take(&mut next_open) } else { HashMap::new() };
            next_open.clear();
            row = Some(y);
        }
        let index = match open.get(&(x, w)) {
            Some(&index) => {
                rects[index].h += 1;
                index
            }
            None => {
                rects.push(Rect { x, y, w, h: 1 });
                rects.len() - 1
            }
        };
        next_open.insert((x, w), index);
    }
    rects
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_box_covers_the_tiles_whose_centres_it_holds() {
        let f = footprint(&Shape::Box { x0: 1.0, y0: 1.0, x1: 3.0, y1: 2.0 }, 10, 10);
        assert_eq!(f.tiles, vec![(1, 1), (2, 1)]);
        assert!(!f.cut);
        // Half a tile each way: only the centres inside count.
        let f = footprint(&Shape::Box { x0: 0.6, y0: 0.0, x1: 2.4, y1: 1.0 }, 10, 10);
        assert_eq!(f.tiles, vec![(1, 0)]);
    }

    #[test]
    fn a_small_shape_takes_the_tile_under_its_centre_and_edges_are_cut() {
        let f = footprint(&Shape::Box { x0: 2.1, y0: 3.1, x1: 2.4, y1: 3.3 }, 10, 10);
        assert_eq!(f.tiles, vec![(2, 3)]);
        let f = footprint(&Shape::Box { x0: -2.0, y0: 8.0, x1: 1.0, y1: 12.0 }, 10, 10);
        assert_eq!(f.tiles, vec![(0, 8), (0, 9)]);
        assert!(f.cut);
        assert_eq!(footprint(&Shape::Point(4.9, 0.1), 10, 10).tiles, vec![(4, 0)]);
        assert!(footprint(&Shape::Point(-1.0, 0.0), 10, 10).tiles.is_empty());
    }

    #[test]
    fn polygons_and_ellipses_hold_centres() {
        // A right triangle with its right angle at the top left; its long side passes
        // between tile centres, so no centre sits on the border.
        let triangle = Shape::Polygon(vec![(0.0, 0.0), (4.2, 0.0), (0.0, 4.2)]);
        assert_eq!(
            footprint(&triangle, 10, 10).tiles,
            vec![(0, 0), (1, 0), (2, 0), (3, 0), (0, 1), (1, 1), (2, 1), (0, 2), (1, 2), (0, 3)]
        );
        // Radius 1.2 around (2.5, 2.5): the four neighbours' centres are 1 away, the corners' 1.41.
        let circle = Shape::Ellipse { x0: 1.3, y0: 1.3, x1: 3.7, y1: 3.7 };
        assert_eq!(footprint(&circle, 10, 10).tiles, vec![(2, 1), (1, 2), (2, 2), (3, 2), (2, 3)]);
    }

    #[test]
    fn rects_merge_rows_and_columns() {
        let square: Vec<(u32, u32)> = (0..3).flat_map(|y| (2..5).map(move |x| (x, y))).collect();
        assert_eq!(to_rects(&square), vec![Rect { x: 2, y: 0, w: 3, h: 3 }]);
        let staircase = [(0, 0), (0, 1), (1, 1), (0, 3)];
        assert_eq!(
            to_rects(&staircase),
            vec![Rect { x: 0, y: 0, w: 1, h: 1 }, Rect { x: 0, y: 1, w: 2, h: 1 }, Rect { x: 0, y: 3, w: 1, h: 1 }]
        );
        let tiles: Vec<(u32, u32)> = to_rects(&staircase).iter().flat_map(|r| r.tiles().collect::<Vec<_>>()).collect();
        assert_eq!(tiles.len(), 4);
    }
}
