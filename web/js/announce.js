// What the map says in words, for screen readers: a live region announcing zone entries
// and who joins or leaves our conversation, and the canvas's text alternative saying
// where we are and who is near. The text functions are pure (tested under Node).

import { ZONE_TYPES } from './people.js';
import { SUBTILE } from './world.js';

/** @typedef {import('./world.js').Point} Point */
/** @typedef {{avatar: number, name: string, position: Point, status?: string}} Nearby */

/** How many people the description names, nearest first. */
const NAMED_NEARBY = 5;
/** Announcements kept in the live region (older ones are removed). */
const KEPT_ANNOUNCEMENTS = 5;

const DIRECTIONS = ['east', 'south-east', 'south', 'south-west', 'west', 'north-west', 'north', 'north-east'];

/**
 * The direction from `from` to `to` as seen on screen (north is up), in eight steps.
 * @param {Point} from @param {Point} to @param {boolean} isometric
 */
export function directionOnScreen(from, to, isometric) {
  const gx = to.x - from.x;
  const gy = to.y - from.y;
  // An isometric grid's x axis runs down-right on screen and its y axis down-left.
  const sx = isometric ? gx - gy : gx;
  const sy = isometric ? (gx + gy) / 2 : gy;
  const octant = Math.round(Math.atan2(sy, sx) / (Math.PI / 4));
  return DIRECTIONS[(octant + 8) % 8];
}

/**
 * The canvas's text alternative: where we are and who is near.
 * @param {{name: string, type: string} | null} zone @param {Point} me
 * @param {Nearby[]} others in our zone @param {boolean} isometric
 */
export function describeSurroundings(zone, me, others, isometric) {
  if (!zone) return 'Joining the world…';
  const place = `You are in ${zone.name} (${ZONE_TYPES[zone.type] ?? zone.type}).`;
  if (!others.length) return `${place} Nobody else is here.`;
  const near = others
    .map((o) => ({ ...o, tiles: Math.hypot(o.position.x - me.x, o.position.y - me.y) / SUBTILE }))
    .sort((a, b) => a.tiles - b.tiles)
    .slice(0, NAMED_NEARBY)
    .map((o) => {
      const away = Math.round(o.tiles);
      const where = away === 0 ? 'right beside you' : `${away} ${away === 1 ? 'tile' : 'tiles'} ${directionOnScreen(me, o.position, isometric)}`;
      const status = o.status && o.status !== 'available' ? ` (${o.status.replaceAll('_', ' ')})` : '';
      return `${o.name}${status}, ${where}`;
    });
  const count = others.length === 1 ? '1 other person is here' : `${others.length} other people are here`;
  return `${place} ${count}. Nearest: ${near.join('; ')}.`;
}

/**
 * Who joined and who left a conversation, by avatar.
 * @param {Set<number>} before @param {Set<number>} after
 */
export function conversationChanges(before, after) {
  return { joined: [...after].filter((a) => !before.has(a)), left: [...before].filter((a) => !after.has(a)) };
}

export class Announcer {
  /** @param {HTMLElement} region a polite live region @param {HTMLElement} description the canvas's text alternative */
  constructor(region, description) {
    this.region = region;
    this.description = description;
    /** The avatars we talk with, as last announced, and their names. @type {Set<number>} */
    this.conversation = new Set();
    /** @type {Map<number, string>} */
    this.names = new Map();
  }

  /** Says `text` once, politely. @param {string} text */
  say(text) {
    const line = document.createElement('p');
    line.textContent = text;
    this.region.append(line);
    while (this.region.children.length > KEPT_ANNOUNCEMENTS) this.region.firstElementChild?.remove();
  }

  /**
   * Announces who joined or left our conversation. Names are kept from when someone
   * joined: by the time a plan drops them they may have left the zone, and its list.
   * @param {Set<number>} now @param {(avatar: number) => string} nameOf
   */
  conversationIs(now, nameOf) {
    const { joined, left } = conversationChanges(this.conversation, now);
    for (const avatar of joined) this.names.set(avatar, nameOf(avatar));
    const named = (/** @type {number[]} */ avatars) => avatars.map((a) => this.names.get(a) ?? nameOf(a)).join(', ');
    if (joined.length) this.say(`${named(joined)} joined your conversation.`);
    if (left.length) this.say(`${named(left)} left your conversation.`);
    for (const avatar of left) this.names.delete(avatar);
    this.conversation = new Set(now);
  }

  /** Sets the canvas's text alternative (touching the DOM only on a change). @param {string} text */
  describe(text) {
    if (this.description.textContent !== text) this.description.textContent = text;
  }
}
