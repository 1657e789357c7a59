// The world as the client sees it: lookup tables, projection and the move check.
//
// A line-for-line port of world-format's geometry.rs, movement.rs and projection.rs, so
// the client predicts exactly what the server will accept: positions are integers in
// sub-tile units (256 per tile), tiles are closed squares for collision, and a move that
// touches a blocked tile, a wall or a wall's end is refused.

export const SUBTILE = 256;

const BLOCKED = 1;
const WALL_NORTH = 2;
const WALL_WEST = 4;
const NO_OBJECT = 0xffff;

/** @typedef {{x: number, y: number}} Point */
/** @typedef {{x: number, y: number, w: number, h: number}} Rect */
/**
 * @typedef {{id: string, name: string, type: string, area?: Rect[], entry_via?: string[],
 *   podium?: Rect[], [option: string]: unknown}} ZoneDef
 */
/** @typedef {{id: string, kind: string, area: Rect[], capacity: number, facing?: string, requires: string[]}} ObjectDef */
/**
 * @typedef {{name: string, image: string, image_width: number, image_height: number,
 *   tile_width: number, tile_height: number, columns: number, tile_count: number, first_gid: number}} TilesetDef
 */
/** @typedef {{name: string, depth: string, opacity: number, visible: boolean, tiles: number[]}} LayerDef */
/**
 * @typedef {{name: string, grid: {orientation: string, width: number, height: number,
 *   tile_width: number, tile_height: number, levels: number, level_height: number},
 *   movement: {max_speed: number, slack: number}, tilesets: TilesetDef[], layers: LayerDef[],
 *   collision: {rows: string[], heights: string[], walls: {from: number[], to: number[]}[]},
 *   spawns: {id: string, x: number, y: number, facing: string}[], default_zone: ZoneDef,
 *   zones: ZoneDef[], objects: ObjectDef[], exits: {id: string, area: Rect[], world: string, spawn?: string}[],
 *   websites?: import('./websites.js').Website[]}} WorldFile
 */

/** Whether the closed segment a–b touches the closed box lo–hi (a wall when degenerate). */
export function segmentTouchesBox(a, b, lo, hi) {
  if (Math.max(a.x, b.x) < lo.x || Math.min(a.x, b.x) > hi.x) return false;
  if (Math.max(a.y, b.y) < lo.y || Math.min(a.y, b.y) > hi.y) return false;
  const dx = b.x - a.x;
  const dy = b.y - a.y;
  /** @param {number} cx @param {number} cy */
  const side = (cx, cy) => Math.sign(dx * (cy - a.y) - dy * (cx - a.x));
  const sides = [side(lo.x, lo.y), side(hi.x, lo.y), side(lo.x, hi.y), side(hi.x, hi.y)];
  return !(sides.every((s) => s > 0) || sides.every((s) => s < 0));
}

/** @param {number} v */
const firstTile = (v) => Math.floor((v - 1) / SUBTILE);
/** @param {number} v */
const lastTile = (v) => Math.floor(v / SUBTILE);

/**
 * Floor and ceiling of the segment's x at height y (ay !== by).
 * @param {number} ax @param {number} bx @param {number} ay @param {number} by @param {number} y
 */
function boundsOfX(ax, bx, ay, by, y) {
  let num = (bx - ax) * (y - ay);
  let den = by - ay;
  if (den < 0) {
    num = -num;
    den = -den;
  }
  const floor = Math.floor(num / den);
  const ceil = num % den === 0 ? floor : floor + 1;
  return [ax + floor, ax + ceil];
}

/**
 * Calls visit(col, row) for every tile the closed segment touches; stops when it returns true.
 * @param {Point} a @param {Point} b @param {(x: number, y: number) => boolean | void} visit
 * @returns {boolean} whether a visit stopped the walk
 */
export function forEachTouchedTile(a, b, visit) {
  const yMin = Math.min(a.y, b.y);
  const yMax = Math.max(a.y, b.y);
  for (let row = firstTile(yMin); row <= lastTile(yMax); row++) {
    const slabLo = Math.max(row * SUBTILE, yMin);
    const slabHi = Math.min((row + 1) * SUBTILE, yMax);
    let xLo;
    let xHi;
    if (a.y === b.y) {
      xLo = Math.min(a.x, b.x);
      xHi = Math.max(a.x, b.x);
    } else {
      const [f0, c0] = boundsOfX(a.x, b.x, a.y, b.y, slabLo);
      const [f1, c1] = boundsOfX(a.x, b.x, a.y, b.y, slabHi);
      xLo = Math.min(f0, f1);
      xHi = Math.max(c0, c1);
    }
    for (let col = firstTile(xLo); col <= lastTile(xHi); col++) {
      const lo = { x: col * SUBTILE, y: row * SUBTILE };
      const hi = { x: (col + 1) * SUBTILE, y: (row + 1) * SUBTILE };
      if (segmentTouchesBox(a, b, lo, hi) && visit(col, row)) return true;
    }
  }
  return false;
}

export class World {
  /** @param {WorldFile} file */
  constructor(file) {
    this.file = file;
    const { width, height } = file.grid;
    this.width = width;
    this.height = height;
    const cells = width * height;
    this.flags = new Uint8Array(cells);
    this.heights = new Uint8Array(cells);
    this.zoneOf = new Uint16Array(cells);
    this.objectOf = new Uint16Array(cells).fill(NO_OBJECT);
    /** @type {ZoneDef[]} zone 0 is the default zone */
    this.zones = [file.default_zone, ...file.zones];
    file.collision.rows.forEach((row, y) => {
      for (let x = 0; x < width; x++) if (row[x] === '#') this.flags[y * width + x] |= BLOCKED;
    });
    file.collision.heights.forEach((row, y) => {
      for (let x = 0; x < width; x++) this.heights[y * width + x] = row.charCodeAt(x) - 48;
    });
    for (const wall of file.collision.walls) {
      const [x0, y0] = wall.from;
      const [x1, y1] = wall.to;
      if (x0 === x1) {
        for (let y = Math.min(y0, y1); y < Math.max(y0, y1); y++) if (x0 < width) this.flags[y * width + x0] |= WALL_WEST;
      } else {
        for (let x = Math.min(x0, x1); x < Math.max(x0, x1); x++) if (y0 < height) this.flags[y0 * width + x] |= WALL_NORTH;
      }
    }
    file.zones.forEach((zone, i) => {
      for (const r of zone.area ?? []) this.fill(r, (cell) => (this.zoneOf[cell] = i + 1));
    });
    file.objects.forEach((object, i) => {
      for (const r of object.area) this.fill(r, (cell) => (this.objectOf[cell] = i));
    });
    /** @type {Map<string, number>} */
    const objectIndex = new Map(file.objects.map((o, i) => [o.id, i]));
    /** entry objects per zone index */
    this.entries = this.zones.map((z) => (z.entry_via ?? []).map((id) => objectIndex.get(id) ?? -1));
  }

  /** @param {Rect} r @param {(cell: number) => void} each */
  fill(r, each) {
    for (let y = r.y; y < r.y + r.h; y++) for (let x = r.x; x < r.x + r.w; x++) each(y * this.width + x);
  }

  /** @param {number} x @param {number} y */
  inGrid(x, y) {
    return x >= 0 && y >= 0 && x < this.width && y < this.height;
  }

  /** @param {number} x @param {number} y tile */
  isWalkable(x, y) {
    return this.inGrid(x, y) && (this.flags[y * this.width + x] & BLOCKED) === 0;
  }

  /** @param {Point} p */
  tileOf(p) {
    return { x: Math.floor(p.x / SUBTILE), y: Math.floor(p.y / SUBTILE) };
  }

  /** @param {Point} p @returns {ZoneDef | undefined} */
  zoneAt(p) {
    const t = this.tileOf(p);
    return this.inGrid(t.x, t.y) ? this.zones[this.zoneOf[t.y * this.width + t.x]] : undefined;
  }

  /** @param {Point} p @returns {ObjectDef | undefined} */
  objectAt(p) {
    const t = this.tileOf(p);
    if (!this.inGrid(t.x, t.y)) return undefined;
    const index = this.objectOf[t.y * this.width + t.x];
    return index === NO_OBJECT ? undefined : this.file.objects[index];
  }

  /** @param {Point} p strictly inside the grid */
  isInside(p) {
    return p.x > 0 && p.y > 0 && p.x < this.width * SUBTILE && p.y < this.height * SUBTILE;
  }

  /**
   * The path part of the server's move check: null if allowed, else the reason.
   * @param {Point} from @param {Point} to @returns {string | null}
   */
  checkPath(from, to) {
    if (!this.isInside(from) || !this.isInside(to)) return 'off_grid';
    const start = this.tileOf(from);
    const startZone = this.zoneOf[start.y * this.width + start.x];
    /** @type {Set<number>} */
    const touched = new Set();
    /** @type {Set<number>} */
    const gated = new Set();
    let lowest = 255;
    let highest = 0;
    /** @type {string | null} */
    let reason = null;
    forEachTouchedTile(from, to, (x, y) => {
      if (!this.inGrid(x, y)) return ((reason = 'blocked'), true);
      const cell = y * this.width + x;
      const flags = this.flags[cell];
      if (flags & BLOCKED) return ((reason = 'blocked'), true);
      if (flags & (WALL_NORTH | WALL_WEST)) {
        const left = x * SUBTILE;
        const top = y * SUBTILE;
        const topLeft = { x: left, y: top };
        if (
          ((flags & WALL_NORTH) && segmentTouchesBox(from, to, topLeft, { x: left + SUBTILE, y: top })) ||
          ((flags & WALL_WEST) && segmentTouchesBox(from, to, topLeft, { x: left, y: top + SUBTILE }))
        ) {
          return ((reason = 'wall'), true);
        }
      }
      lowest = Math.min(lowest, this.heights[cell]);
      highest = Math.max(highest, this.heights[cell]);
      if (highest - lowest > 1) return ((reason = 'cliff'), true);
      if (this.objectOf[cell] !== NO_OBJECT) touched.add(this.objectOf[cell]);
      const zone = this.zoneOf[cell];
      if (zone !== startZone && this.entries[zone].length > 0) gated.add(zone);
      return false;
    });
    if (reason) return reason;
    for (const zone of gated) {
      if (!this.entries[zone].some((door) => touched.has(door))) return 'not_through_entry';
    }
    return null;
  }
}

/** Tile ↔ screen projection (docs/world-format.md, "Projection to the screen"). */
export class Projection {
  /** @param {WorldFile['grid']} grid */
  constructor(grid) {
    this.isometric = grid.orientation === 'isometric';
    this.tw = grid.tile_width;
    this.th = grid.tile_height;
    this.lh = grid.level_height;
    this.originX = this.isometric ? (grid.height * this.tw) / 2 : 0;
    this.mapWidth = this.isometric ? ((grid.width + grid.height) * this.tw) / 2 : grid.width * this.tw;
    this.mapHeight = this.isometric ? ((grid.width + grid.height) * this.th) / 2 : grid.height * this.th;
  }

  /** Screen position of tile point (x, y) raised by `level`. @param {number} x @param {number} y @param {number} level */
  toScreen(x, y, level = 0) {
    if (this.isometric) return { x: this.originX + ((x - y) * this.tw) / 2, y: ((x + y) * this.th) / 2 - level * this.lh };
    return { x: x * this.tw, y: y * this.th - level * this.lh };
  }

  /** Tile point under a screen position (level 0). @param {number} sx @param {number} sy */
  toTile(sx, sy) {
    if (this.isometric) {
      const a = (sx - this.originX) / (this.tw / 2);
      const b = sy / (this.th / 2);
      return { x: (a + b) / 2, y: (b - a) / 2 };
    }
    return { x: sx / this.tw, y: sy / this.th };
  }

  /** Drawing order: larger is drawn later. @param {number} x @param {number} y */
  depth(x, y) {
    return this.isometric ? x + y : y;
  }
}
