// Click-to-walk: a path of waypoints around walls, found with A* over tiles and then
// straightened where a direct line is allowed. Every step is one the move check accepts.

import { SUBTILE, World } from './world.js';

/** @typedef {import('./world.js').Point} Point */

/** @param {number} x @param {number} y tile */
const centre = (x, y) => ({ x: x * SUBTILE + SUBTILE / 2, y: y * SUBTILE + SUBTILE / 2 });

const NEIGHBOURS = [
  [1, 0], [-1, 0], [0, 1], [0, -1],
  [1, 1], [1, -1], [-1, 1], [-1, -1],
];

/** One sub-tile unit each way: the steps of a walk are rounded to whole units. */
const SHIFTS = [[0, 0], [1, 0], [-1, 0], [0, 1], [0, -1]];

/**
 * Whether a straight walk from `a` to `b` passes the move check even with its steps
 * rounded to whole units: the line itself and the line shifted one unit each way are
 * clear. A line that grazes a wall's end or a blocked corner by less than a unit would
 * pass as a line and then be refused step by step.
 * @param {World} world @param {Point} a @param {Point} b
 */
function clearLine(world, a, b) {
  return SHIFTS.every(([dx, dy]) => world.checkPath({ x: a.x + dx, y: a.y + dy }, { x: b.x + dx, y: b.y + dy }) === null);
}

/**
 * Waypoints (sub-tile units) from `from` to the centre of tile `goal`, or null.
 * @param {World} world @param {Point} from @param {{x: number, y: number}} goal
 * @returns {Point[] | null}
 */
export function findPath(world, from, goal) {
  if (!world.isWalkable(goal.x, goal.y)) return null;
  const start = world.tileOf(from);
  const width = world.width;
  const key = (/** @type {number} */ x, /** @type {number} */ y) => y * width + x;
  const cost = new Map([[key(start.x, start.y), 0]]);
  /** @type {Map<number, number>} */
  const cameFrom = new Map();
  /** @type {[number, number, number][]} f, x, y */
  let open = [[0, start.x, start.y]];
  const goalKey = key(goal.x, goal.y);
  let explored = 0;
  while (open.length > 0 && explored < 40000) {
    explored++;
    // A small binary heap would be faster; maps here are small enough for a sorted list.
    open.sort((a, b) => a[0] - b[0]);
    const [, x, y] = /** @type {[number, number, number]} */ (open.shift());
    const here = key(x, y);
    if (here === goalKey) break;
    const hereCost = cost.get(here) ?? 0;
    for (const [dx, dy] of NEIGHBOURS) {
      const nx = x + dx;
      const ny = y + dy;
      if (!world.isWalkable(nx, ny)) continue;
      if (world.checkPath(centre(x, y), centre(nx, ny)) !== null) continue;
      const next = key(nx, ny);
      const nextCost = hereCost + (dx && dy ? Math.SQRT2 : 1);
      if (nextCost < (cost.get(next) ?? Infinity)) {
        cost.set(next, nextCost);
        cameFrom.set(next, here);
        const h = Math.hypot(goal.x - nx, goal.y - ny);
        open = open.filter((o) => key(o[1], o[2]) !== next);
        open.push([nextCost + h, nx, ny]);
      }
    }
  }
  if (!cost.has(goalKey)) return null;
  /** @type {Point[]} */
  const tilesBack = [];
  for (let at = goalKey; at !== key(start.x, start.y); at = /** @type {number} */ (cameFrom.get(at))) {
    tilesBack.push(centre(at % width, Math.floor(at / width)));
  }
  const path = tilesBack.reverse();
  // Straighten: from each point, jump to the farthest waypoint reachable in a line.
  /** @type {Point[]} */
  const straight = [];
  let current = from;
  let i = 0;
  while (i < path.length) {
    let j = path.length - 1;
    while (j > i && !clearLine(world, current, path[j])) j--;
    straight.push(path[j]);
    current = path[j];
    i = j + 1;
  }
  return straight;
}

/**
 * Walkable tiles of a zone to walk to, nearest its middle first (a zone without an area,
 * the default one, has the world's first spawn point).
 * @param {World} world @param {import('./world.js').ZoneDef} zone
 * @returns {{x: number, y: number}[]}
 */
export function zoneGoals(world, zone) {
  const area = zone.area ?? [];
  if (!area.length) {
    const spawn = world.file.spawns[0];
    return spawn ? [{ x: spawn.x, y: spawn.y }] : [];
  }
  const zoneIndex = world.zones.indexOf(zone);
  const middle = area[0];
  const cx = middle.x + middle.w / 2 - 0.5;
  const cy = middle.y + middle.h / 2 - 0.5;
  /** @type {{x: number, y: number}[]} */
  const tiles = [];
  for (const rect of area) {
    for (let y = rect.y; y < rect.y + rect.h; y++) {
      for (let x = rect.x; x < rect.x + rect.w; x++) {
        if (world.isWalkable(x, y) && world.zoneOf[y * world.width + x] === zoneIndex) tiles.push({ x, y });
      }
    }
  }
  return tiles.sort((a, b) => Math.hypot(a.x - cx, a.y - cy) - Math.hypot(b.x - cx, b.y - cy));
}
