// Following someone: walk behind them until we cancel or they leave. The server tells us
// where they are (`followee_moved`, wherever they are in the world); this decides when to
// plan a new walk. No DOM and no clock: positions in sub-tile units in, goals out.

import { SUBTILE } from './world.js';

/** @typedef {import('./world.js').Point} Point */

/** Closer than this (tiles) we stop: behind them, not on top of them. */
export const CLOSE_ENOUGH = 1.5;
/** Farther than this (tiles) we set off again. */
export const TOO_FAR = 2.5;

export class Follow {
  /** @param {number} avatar @param {string} name */
  constructor(avatar, name) {
    this.avatar = avatar;
    this.name = name;
    /** Where they are, as last told. @type {Point | null} */
    this.at = null;
    /** The zone they are in. */
    this.zone = '';
    /** The tile our current walk heads for. @type {{x: number, y: number} | null} */
    this.heading = null;
  }

  /** Where they are now. @param {Point} position @param {string} [zone] */
  moved(position, zone) {
    this.at = { ...position };
    if (zone) this.zone = zone;
  }

  /** Tiles between us and them. @param {Point} me */
  distance(me) {
    return this.at ? Math.hypot(this.at.x - me.x, this.at.y - me.y) / SUBTILE : 0;
  }

  /**
   * The tile to walk to now, or null: their tile when they are too far and have moved
   * off the tile we last set off for.
   * @param {Point} me @param {boolean} walking whether a walk is under way
   */
  next(me, walking) {
    if (!this.at) return null;
    const distance = this.distance(me);
    if (distance <= CLOSE_ENOUGH || (!walking && distance <= TOO_FAR)) return null;
    const tile = { x: Math.floor(this.at.x / SUBTILE), y: Math.floor(this.at.y / SUBTILE) };
    // Headed there already, or tried and found no way: wait until they move on.
    if (this.heading && this.heading.x === tile.x && this.heading.y === tile.y) return null;
    this.heading = tile;
    return tile;
  }

  /** Whether a walk should end here: we caught up. @param {Point} me */
  caughtUp(me) {
    return this.at !== null && this.distance(me) <= CLOSE_ENOUGH;
  }
}
