// The local avatar, predicted: it walks at once (keys or a click-to-walk path) wherever
// the world's move check allows, and takes the server's corrections when it disagrees.
//
// Pure: no DOM, no canvas, no clock (time comes in as arguments), so Node's test runner
// can drive it. The only rule it shares with the server is the move check (world.js's
// `checkPath`, a port of world-format's `check_path`); tests/browser/unit replays cases
// generated from the Rust check through `slide`, so the two cannot drift apart.

import { findPath } from './walk.js';
import { SUBTILE, World } from './world.js';

/** @typedef {import('./world.js').Point} Point */
/** @typedef {{x: number, y: number, facing: string, state: string}} Move */

/** Walking speed in tiles per second, under the server's limit. */
export const SPEED = 3.5;
/** Moves are sent at most this often. */
export const SEND_INTERVAL_MS = 1000 / 15;
/** A correction farther than this snaps at once; nearer ones ease in over two frames. */
export const SNAP_DISTANCE = 2 * SUBTILE;
/** Corrections after which a click-to-walk does not go on: trying again would not help. */
const STOPPING_CORRECTIONS = new Set(['occupied', 'zone_full', 'zone_locked', 'moved']);
/** After an admin's move, how long we hold still waiting for its correction (ms). */
const HOLD_MS = 1000;

/** The facing of a grid direction. @param {number} dx @param {number} dy */
export function facingOf(dx, dy) {
  const names = ['east', 'south_east', 'south', 'south_west', 'west', 'north_west', 'north', 'north_east'];
  const octant = Math.round(Math.atan2(dy, dx) / (Math.PI / 4));
  return names[(octant + 8) % 8];
}

/**
 * Where a step from `from` toward `target` ends: the target if the move check allows the
 * move, else sliding along the wall on one axis (x first, then y), else nowhere (null).
 * `slid` says whether the full step was refused.
 * @param {World} world @param {Point} from @param {Point} target
 * @returns {{at: Point, slid: boolean} | null}
 */
export function slide(world, from, target) {
  if (world.checkPath(from, target) === null) return { at: target, slid: false };
  for (const at of [{ x: target.x, y: from.y }, { x: from.x, y: target.y }]) {
    if (world.checkPath(from, at) === null) return { at, slid: true };
  }
  return null;
}

/**
 * The unit grid direction of the pressed keys, or null (screen up is north-west on
 * isometric maps).
 * @param {Set<string>} keys lower-case key names @param {boolean} isometric
 * @returns {Point | null}
 */
export function keyDirection(keys, isometric) {
  let sx = 0;
  let sy = 0;
  if (keys.has('arrowup') || keys.has('w')) sy -= 1;
  if (keys.has('arrowdown') || keys.has('s')) sy += 1;
  if (keys.has('arrowleft') || keys.has('a')) sx -= 1;
  if (keys.has('arrowright') || keys.has('d')) sx += 1;
  if (!sx && !sy) return null;
  const dx = isometric ? sx / 2 + sy : sx;
  const dy = isometric ? sy - sx / 2 : sy;
  const length = Math.hypot(dx, dy);
  return { x: dx / length, y: dy / length };
}

/**
 * Our avatar as we predict it. Positions are integers in sub-tile units; `correction` is
 * the part of a server correction still easing out of what is drawn.
 */
export class LocalAvatar {
  constructor() {
    /** Our position as we predict it. @type {Point} */
    this.position = { x: 0, y: 0 };
    /** What is drawn: the position plus a correction easing out. */
    this.correction = { x: 0, y: 0 };
    this.facing = 'south';
    this.state = 'idle';
    /** Waypoints of a click-to-walk. @type {Point[]} */
    this.path = [];
    /** Where a click-to-walk is on its line, unrounded (the position is this, rounded). @type {Point | null} */
    this.exact = null;
    /** @type {{x: number, y: number} | null} where a click-to-walk is headed */
    this.goal = null;
    /** The last move sent, and when (ms). */
    this.lastSent = { x: 0, y: 0, facing: '', state: '', at: 0 };
    this.corrections = 0;
    /** @type {string} why the server last corrected us */
    this.lastCorrection = '';
    /**
     * An admin is moving us: from the `moderated` message until its correction (a frame
     * later, or more if the page is busy) we neither walk nor send moves, which the
     * server would check from the spawn point. A deadline, should the correction not come.
     */
    this.heldUntil = 0;
  }

  /** Where the server placed us on joining. @param {Move} you */
  place(you) {
    this.position = { x: you.x, y: you.y };
    this.correction = { x: 0, y: 0 };
    this.facing = you.facing;
    this.state = you.state;
    this.lastSent = { ...you, at: 0 };
  }

  /** Forgets any walk. */
  stop() {
    this.path = [];
    this.goal = null;
  }

  /** An admin moves us: stop and hold still until the correction comes. @param {number} now ms */
  hold(now) {
    this.stop();
    this.heldUntil = now + HOLD_MS;
  }

  /** Whether we may walk and send moves at `now`. @param {number} now ms */
  free(now) {
    return now >= this.heldUntil;
  }

  /**
   * Takes the server's correction. Returns the goal of a click-to-walk to plan again from
   * the corrected position, or null (a full door or seat, a locked or full room, or an
   * admin's move stops us).
   * @param {{reason: string, position: Point, facing: string, state: string}} message @param {number} now ms
   * @returns {{x: number, y: number} | null}
   */
  correct(message, now) {
    this.corrections += 1;
    this.lastCorrection = message.reason;
    if (message.reason === 'moved') this.heldUntil = 0;
    const target = message.position;
    const drawn = this.drawn();
    // An admin's move is a jump, not a drift to ease out.
    const far = message.reason === 'moved' || Math.hypot(target.x - drawn.x, target.y - drawn.y) > SNAP_DISTANCE;
    this.correction = far ? { x: 0, y: 0 } : { x: drawn.x - target.x, y: drawn.y - target.y };
    this.position = { ...target };
    this.facing = message.facing;
    this.state = message.state;
    this.lastSent = { x: target.x, y: target.y, facing: message.facing, state: message.state, at: now };
    const goal = this.goal;
    this.stop();
    return goal && !STOPPING_CORRECTIONS.has(message.reason) ? goal : null;
  }

  /** Plans a walk to tile (x, y) around walls; false if there is no way. @param {World} world @param {number} x @param {number} y */
  walkTo(world, x, y) {
    this.path = findPath(world, this.position, { x, y }) ?? [];
    this.goal = this.path.length ? { x, y } : null;
    return this.path.length > 0;
  }

  /**
   * Moves at once (optimistic) for `dt` seconds, along `keys` (a unit grid direction,
   * which cancels a click-to-walk) or the click-to-walk path.
   * @param {World} world @param {Point | null} keys @param {number} dt
   */
  walk(world, keys, dt) {
    if (keys) this.path = [];
    if (!keys && this.path.length) {
      const next = this.path[0];
      const dx = next.x - this.position.x;
      const dy = next.y - this.position.y;
      const distance = Math.hypot(dx, dy);
      if (distance >= 2) {
        // Walk the exact line and round each point, so rounding never adds up: steps of the
        // same size rounded the same way would drift off the line the path was checked on.
        const exact = this.exact && Math.round(this.exact.x) === this.position.x && Math.round(this.exact.y) === this.position.y ? this.exact : this.position;
        const ex = next.x - exact.x;
        const ey = next.y - exact.y;
        const length = Math.hypot(ex, ey);
        const direction = { x: ex / length, y: ey / length };
        const step = Math.min(length, SPEED * SUBTILE * dt);
        const along = { x: exact.x + direction.x * step, y: exact.y + direction.y * step };
        const target = { x: Math.round(along.x), y: Math.round(along.y) };
        // A path was planned with the move check: a refused step means the world changed.
        if (world.checkPath(this.position, target) === null) {
          this.stepTo(target, direction);
          this.exact = along;
        } else {
          this.stop();
        }
        return;
      }
      // The last unit or two onto the waypoint itself, where the next leg was checked from.
      if (distance > 0 && world.checkPath(this.position, next) === null) this.position = { ...next };
      this.path.shift();
      if (!this.path.length) this.goal = null;
    }
    if (!keys) {
      if (this.state === 'walking') this.state = 'idle';
      return;
    }
    const step = SPEED * SUBTILE * dt;
    const target = { x: Math.round(this.position.x + keys.x * step), y: Math.round(this.position.y + keys.y * step) };
    const result = slide(world, this.position, target);
    if (!result || result.slid) this.stop();
    if (result) this.stepTo(result.at, keys);
  }

  /** @param {Point} at @param {Point} direction */
  stepTo(at, direction) {
    this.position = at;
    this.facing = facingOf(direction.x, direction.y);
    this.state = 'walking';
  }

  /** Sits down on a seat, or stands up. @param {World} world */
  toggleSit(world) {
    const object = world.objectAt(this.position);
    this.state = this.state === 'sitting' ? 'idle' : object?.kind === 'seat' ? 'sitting' : 'idle';
    if (this.state === 'sitting' && object?.facing) this.facing = object.facing;
  }

  /** Eases a correction out of what is drawn: gone within two frames. */
  settle() {
    this.correction = { x: Math.trunc(this.correction.x * 0.35), y: Math.trunc(this.correction.y * 0.35) };
  }

  /** Where we are drawn (sub-tile units). @returns {Point} */
  drawn() {
    return { x: this.position.x + this.correction.x, y: this.position.y + this.correction.y };
  }

  /**
   * The move to send at `now`, if we changed since the last one sent and the last was
   * long enough ago; it counts as sent.
   * @param {number} now ms @returns {Move | null}
   */
  takeMove(now) {
    const s = this.lastSent;
    const changed = s.x !== this.position.x || s.y !== this.position.y || s.facing !== this.facing || s.state !== this.state;
    if (!changed || now - s.at < SEND_INTERVAL_MS) return null;
    this.lastSent = { x: this.position.x, y: this.position.y, facing: this.facing, state: this.state, at: now };
    return { x: this.position.x, y: this.position.y, facing: this.facing, state: this.state };
  }
}
