// Where the video tiles go. In meeting rooms, private rooms and on stages (media by
// choice) they fill a grid over the map that resizes to the number of people, a page at
// a time with buttons between pages; in open zones they stay a compact strip beside the
// map. A person may pin one tile (shown large above the rest), the people speaking are
// highlighted, and a self view shows our own camera among the others. A shared screen
// turns the strip into the grid and is pinned by itself. While a web page is open beside
// the map (websites.js), the tiles stay a strip so the page is not covered.
//
// media.js and sfu.js add and remove the tiles (`figure.tile` holding a `video` with
// `data-avatar`); this module only arranges what is there, whenever that changes.

import { h } from './dom.js';

/** Tiles on one page of the grid (3 × 3), and on a narrow screen (2 × 2). */
export const GRID_PAGE = 9;
export const NARROW_PAGE = 4;
/** Other tiles shown under a pinned one. */
export const UNDER_PIN = 4;

/**
 * The grid's shape for `count` tiles: as square as it gets, wider than tall.
 * @param {number} count
 */
export function gridShape(count) {
  const columns = Math.max(1, Math.ceil(Math.sqrt(count)));
  return { columns, rows: Math.max(1, Math.ceil(count / columns)) };
}

/**
 * Which tiles one page shows: pages of `size`, the pinned tile (if any) on every page.
 * @template T @param {T[]} tiles in order @param {T | null} pinned @param {number} page @param {number} size
 */
export function pageOf(tiles, pinned, page, size) {
  const rest = tiles.filter((t) => t !== pinned);
  const per = pinned ? UNDER_PIN : size;
  const pages = Math.max(1, Math.ceil(rest.length / per));
  const at = Math.min(Math.max(0, page), pages - 1);
  return { shown: [...(pinned ? [pinned] : []), ...rest.slice(at * per, at * per + per)], page: at, pages };
}

export class TileLayout {
  /**
   * @param {HTMLElement} aside the media panel @param {HTMLElement} tiles where the tiles are
   * @param {(avatar: number) => string} nameOf
   */
  constructor(aside, tiles, nameOf) {
    this.aside = aside;
    this.tiles = tiles;
    this.nameOf = nameOf;
    this.mode = /** @type {'strip' | 'grid'} */ ('strip');
    this.page = 0;
    /** @type {HTMLElement | null} */
    this.pinned = null;
    /** @type {Set<number>} */
    this.speaking = new Set();
    /** Screens the person unpinned: not pinned again by themselves. @type {WeakSet<HTMLElement>} */
    this.unpinned = new WeakSet();
    this.selfVideo = h('video', { autoplay: true, playsInline: true, muted: true, 'data-self': 'true' });
    this.selfTile = h('figure', { class: 'tile self' }, this.selfVideo, h('figcaption', {}, 'You'));
    this.selfTile.hidden = true;
    this.label = h('span', { class: 'page-label', 'aria-live': 'polite' });
    this.previous = h('button', { type: 'button', 'aria-label': 'Previous page of people', onclick: () => this.turn(-1) }, '‹');
    this.next = h('button', { type: 'button', 'aria-label': 'Next page of people', onclick: () => this.turn(1) }, '›');
    this.pager = h('nav', { class: 'pager', 'aria-label': 'Pages of people' }, this.previous, this.label, this.next);
    this.pager.hidden = true;
    tiles.before(this.pager);
    tiles.prepend(this.selfTile);
    /** Whether the self view is worth showing (a live camera, video not turned off). */
    this.selfShowing = false;
    /** A web page is open beside the map: the tiles make way for it, as a strip. */
    this.pageOpen = false;
    // Tiles come and go as media.js and sfu.js see fit (arranging only hides and shows them).
    new MutationObserver(() => this.arrange()).observe(tiles, { childList: true });
    window.addEventListener('resize', () => this.arrange());
  }

  /** Grid where people meet by choice, strip in open zones and with no media. @param {string} zoneType @param {string} topology */
  setZone(zoneType, topology) {
    const mode = topology !== 'none' && zoneType !== 'open' && zoneType !== 'silent' ? 'grid' : 'strip';
    if (mode === this.mode) return;
    this.mode = mode;
    this.page = 0;
    this.arrange();
  }

  /** A web page opened or closed beside the map. @param {boolean} open */
  setPageOpen(open) {
    if (open === this.pageOpen) return;
    this.pageOpen = open;
    this.page = 0;
    this.arrange();
  }

  /** Our own camera, for the self view. @param {MediaStream | null} stream @param {boolean} showing whether it is worth showing */
  self(stream, showing) {
    if (this.selfVideo.srcObject !== stream) this.selfVideo.srcObject = stream;
    this.selfShowing = showing && Boolean(stream?.getVideoTracks().some((t) => t.readyState === 'live'));
    this.arrange();
  }

  /** Highlights the people speaking. @param {Set<number>} avatars */
  speakers(avatars) {
    this.speaking = new Set(avatars);
    for (const tile of this.others()) tile.classList.toggle('speaking', this.speaking.has(this.avatarOf(tile)));
  }

  /** @param {HTMLElement} tile */
  avatarOf(tile) {
    return Number(tile.querySelector('video')?.dataset.avatar ?? NaN);
  }

  /** Everyone else's tiles, in order. */
  others() {
    return /** @type {HTMLElement[]} */ ([...this.tiles.children]).filter((t) => t.classList.contains('tile') && t !== this.selfTile);
  }

  /** @param {number} step */
  turn(step) {
    this.page += step;
    this.arrange();
  }

  /** @param {HTMLElement} tile */
  togglePin(tile) {
    if (this.pinned === tile) this.unpinned.add(tile);
    this.pinned = this.pinned === tile ? null : tile;
    this.page = 0;
    this.arrange();
  }

  /** Shows the tiles of the current page, sized to fit, with pin buttons and the pager. */
  arrange() {
    const others = this.others();
    if (this.pinned && !others.includes(this.pinned)) this.pinned = null;
    // A screen shared is shown large: pinned, unless the person pinned something else
    // (or took the pin off this very screen).
    const screens = others.filter((t) => t.classList.contains('screen'));
    if (!this.pinned && screens.length && !this.unpinned.has(screens[0])) this.pinned = screens[0];
    this.selfTile.hidden = !this.selfShowing || others.length === 0;
    const all = this.selfTile.hidden ? others : [this.selfTile, ...others];
    const narrow = window.innerWidth <= 700;
    const grid = !this.pageOpen && ((this.mode === 'grid' && others.length > 0) || screens.length > 0);
    const size = this.mode === 'grid' && !this.pageOpen ? (narrow ? NARROW_PAGE : GRID_PAGE) : all.length || 1;
    const { shown, page, pages } = pageOf(all, this.pinned, this.page, size);
    this.page = page;
    for (const tile of all) tile.hidden = !shown.includes(tile);
    for (const tile of others) this.pinButton(tile);
    const { columns, rows } = gridShape(this.pinned ? Math.max(1, shown.length - 1) : shown.length);
    this.aside.classList.toggle('grid', grid);
    this.aside.classList.toggle('pinned', Boolean(this.pinned));
    this.tiles.style.setProperty('--columns', String(columns));
    this.tiles.style.setProperty('--rows', String(this.pinned ? rows + 2 : rows));
    this.pager.hidden = pages <= 1;
    this.label.textContent = `${page + 1} / ${pages}`;
    this.previous.disabled = page === 0;
    this.next.disabled = page >= pages - 1;
    for (const tile of others) tile.classList.toggle('speaking', this.speaking.has(this.avatarOf(tile)));
  }

  /** Each tile's pin button, named after its person. @param {HTMLElement} tile */
  pinButton(tile) {
    let button = /** @type {HTMLButtonElement | null} */ (tile.querySelector('button.pin'));
    if (!button) {
      button = h('button', { type: 'button', class: 'pin', onclick: () => this.togglePin(tile) }, 'Pin');
      tile.querySelector('figcaption')?.append(button);
    }
    const pinned = this.pinned === tile;
    const who = this.nameOf(this.avatarOf(tile));
    const action = pinned ? 'Unpin' : 'Pin';
    button.setAttribute('aria-pressed', String(pinned));
    if (button.textContent !== action) button.textContent = action;
    button.setAttribute('aria-label', `${action} ${tile.classList.contains('screen') ? `${who}'s screen` : who}`);
    tile.classList.toggle('pinned', pinned);
  }
}
