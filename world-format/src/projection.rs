//! Tile ↔ screen projection, shared by the server (for tools and imports) and mirrored
//! line for line by the browser client (`web/`), so both place things identically.
//!
//! Isometric grids follow Tiled's convention: tile `(0, 0)` is the top diamond, x runs
//! down-right and y down-left, and the map's left edge is at screen x = 0. A tile point
//! `(x, y)` in tile units (fractions allowed) at height `level` maps to:
//!
//! ```text
//! isometric:  sx = (x - y) · tw/2 + height_in_tiles · tw/2      sy = (x + y) · th/2 - level · lh
//! orthogonal: sx = x · tw                                      sy = y · th - level · lh
//! ```
//! where `tw`/`th` are the tile footprint and `lh` the level height, all in pixels.

use crate::model::{Grid, Orientation};

/// Projects tile coordinates to screen pixels and back for one grid.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Projection {
    orientation: Orientation,
    half_width: f64,
    half_height: f64,
    tile_width: f64,
    tile_height: f64,
    level_height: f64,
    origin_x: f64,
    map_width: f64,
    map_height: f64,
}

impl Projection {
    pub fn new(grid: &Grid) -> Projection {
        let (tw, th) = (f64::from(grid.tile_width), f64::from(grid.tile_height));
        let (w, h) = (f64::from(grid.width), f64::from(grid.height));
        let (origin_x, map_width, map_height) = match grid.orientation {
            Orientation::Isometric => (h * tw / 2.0, (w + h) * tw / 2.0, (w + h) * th / 2.0),
            Orientation::Orthogonal => (0.0, w * tw, h * th),
        };
        Projection {
            orientation: grid.orientation,
            half_width: tw / 2.0,
            half_height: th / 2.0,
            tile_width: tw,
            tile_height: th,
            level_height: f64::from(grid.level_height),
            origin_x,
            map_width,
            map_height,
        }
    }

    /// Screen position of tile point `(x, y)` raised by `level` height levels.
    pub fn to_screen(&self, x: f64, y: f64, level: f64) -> (f64, f64) {
        let lift = level * self.level_height;
        match self.orientation {
            Orientation::Isometric => (self.origin_x + (x - y) * self.half_width, (x + y) * self.half_height - lift),
            Orientation::Orthogonal => (x * self.tile_width, y * self.tile_height - lift),
        }
    }

    /// Tile point under a screen position, assuming level 0.
    pub fn to_tile(&self, screen_x: f64, screen_y: f64) -> (f64, f64) {
        match self.orientation {
            Orientation::Isometric => {
                let a = (screen_x - self.origin_x) / self.half_width; // x - y
                let b = screen_y / self.half_height; // x + y
                ((a + b) / 2.0, (b - a) / 2.0)
            }
            Orientation::Orthogonal => (screen_x / self.tile_width, screen_y / self.tile_height),
        }
    }

    /// Size of the whole map on screen, in pixels (without height levels).
    pub fn map_size(&self) -> (f64, f64) {
        (self.map_width, self.map_height)
    }

    /// Depth key for drawing order: things with a larger key are drawn later (in front).
    /// Isometric and orthogonal alike, what is further down the screen is in front.
    pub fn depth(&self, x: f64, y: f64) -> f64 {
        match self.orientation {
            Orientation::Isometric => x + y,
            Orientation::Orthogonal => y,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grid(orientation: Orientation) -> Grid {
        Grid { orientation, width: 10, height: 8, tile_width: 64, tile_height: 32, levels: 3, level_height: 16 }
    }

    #[test]
    fn isometric_corners_match_tileds_layout() {
        let p = Projection::new(&grid(Orientation::Isometric));
        // Top corner of tile (0, 0) sits at the origin, 8 half-widths from the left.
        assert_eq!(p.to_screen(0.0, 0.0, 0.0), (256.0, 0.0));
        // The right corner of the map is the far end of the x axis.
        assert_eq!(p.to_screen(10.0, 0.0, 0.0), (576.0, 160.0));
        // The left corner is the far end of the y axis, at screen x = 0.
        assert_eq!(p.to_screen(0.0, 8.0, 0.0), (0.0, 128.0));
        assert_eq!(p.map_size(), (576.0, 288.0));
        // One level up lifts by the level height.
        assert_eq!(p.to_screen(0.0, 0.0, 1.0), (256.0, -16.0));
    }

    #[test]
    fn screen_to_tile_inverts_tile_to_screen() {
        for orientation in [Orientation::Isometric, Orientation::Orthogonal] {
            let p = Projection::new(&grid(orientation));
            for &(x, y) in &[(0.0, 0.0), (3.25, 7.5), (9.99, 0.01), (5.0, 5.0)] {
                let (sx, sy) = p.to_screen(x, y, 0.0);
                let (bx, by) = p.to_tile(sx, sy);
                assert!((bx - x).abs() < 1e-9 && (by - y).abs() < 1e-9, "{orientation:?} {x},{y} -> {bx},{by}");
            }
        }
    }

    #[test]
    fn orthogonal_is_plain_scaling() {
        let p = Projection::new(&grid(Orientation::Orthogonal));
        assert_eq!(p.to_screen(2.0, 3.0, 0.0), (128.0, 96.0));
        assert_eq!(p.map_size(), (640.0, 256.0));
    }
}
