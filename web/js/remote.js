// Everyone else in our zone: where the server last said they are (`target`) and where
// they are drawn (`drawn`), which glides toward the target each frame so presence
// updates at 15 Hz look smooth at any frame rate.
//
// No DOM: positions in sub-tile units in, a list of avatars to draw out.

import { SUBTILE } from './world.js';

/** @typedef {import('./world.js').Point} Point */
/** @typedef {import('./status.js').Status} Status */
/** @typedef {{avatar: number, user: string, name: string, position: Point, facing: string, state: string, status?: Status}} AvatarInfo */
/** @typedef {AvatarInfo & {drawn: Point, target: Point}} Remote */
/** @typedef {import('./render.js').DrawnAvatar} DrawnAvatar */

/** How fast drawn positions close on their targets (per second, as a share of the gap). */
const GLIDE_RATE = 12;

export class RemoteAvatars {
  constructor() {
    /** @type {Map<number, Remote>} */
    this.byAvatar = new Map();
  }

  /** Someone entered (or was there when we joined). @param {AvatarInfo} avatar */
  add(avatar) {
    this.byAvatar.set(avatar.avatar, { ...avatar, drawn: { ...avatar.position }, target: { ...avatar.position } });
  }

  /** @param {number} avatar */
  remove(avatar) {
    this.byAvatar.delete(avatar);
  }

  clear() {
    this.byAvatar.clear();
  }

  /** @param {number} avatar */
  name(avatar) {
    return this.byAvatar.get(avatar)?.name;
  }

  /** @param {number} avatar @param {Status} status */
  setStatus(avatar, status) {
    const other = this.byAvatar.get(avatar);
    if (other) other.status = status;
  }

  /** New targets from a presence update; unknown avatars are ignored. @param {import('./protocol.js').PresenceEntry[]} entries */
  applyPresence(entries) {
    for (const entry of entries) {
      const other = this.byAvatar.get(entry.avatar);
      if (!other) continue;
      other.target = { x: entry.x, y: entry.y };
      other.facing = entry.facing;
      other.state = entry.state;
    }
  }

  /** Moves every drawn position toward its target for a frame of `dt` seconds. @param {number} dt */
  glide(dt) {
    const blend = Math.min(1, dt * GLIDE_RATE);
    for (const other of this.byAvatar.values()) {
      other.drawn.x += (other.target.x - other.drawn.x) * blend;
      other.drawn.y += (other.target.y - other.drawn.y) * blend;
    }
  }

  /** What the renderer draws for them (tile units). @param {Set<number>} speaking @returns {DrawnAvatar[]} */
  toDraw(speaking) {
    return [...this.byAvatar.values()].map((o) => ({
      avatar: o.avatar, name: o.name, user: o.user, x: o.drawn.x / SUBTILE, y: o.drawn.y / SUBTILE,
      facing: o.facing, state: o.state, status: o.status ?? 'available', self: false, speaking: speaking.has(o.avatar),
    }));
  }
}
