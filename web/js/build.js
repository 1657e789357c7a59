// Build mode: admins and builders change the world from the browser and publish it live.
//
// The panel (HUD: Build) edits a copy of the world's current version on the asset server
// (build-edits.js keeps the edits, undo and redo). Tools act on the map: paint floor
// tiles from the world's tilesets, block tiles, draw thin walls on tile edges, raise
// height levels, place and move doors, seats, passages and spawn points, draw zones and
// set their type and options. Every change is checked by the asset server with the same
// rules as publishing (`POST …/check`); each fault is listed and outlined on the map,
// and publishing waits until none is left. Publishing names the version the edits
// started from: if someone else published meanwhile (409), our edits can be replayed on
// theirs (rebase) or dropped. The history lists every version, each with "Roll back".
// Everyone in the world, builders included, gets a published version live
// (`world_changed`).

import { h } from './dom.js';
import { EditSession, describeEdit, freshId, moveArea, rectBetween, rectHas } from './build-edits.js';

/** @typedef {import('./world.js').WorldFile} WorldFile */
/** @typedef {import('./world.js').ZoneDef} ZoneDef */
/** @typedef {import('./world.js').ObjectDef} ObjectDef */
/** @typedef {import('./build-edits.js').Edit} Edit */
/** @typedef {import('./build-edits.js').Picture} Picture */
/** @typedef {import('./render.js').Renderer} Renderer */
/** @typedef {{path: string, message: string}} Problem */
/** @typedef {{x: number, y: number}} TilePoint tile units (fractions within a tile) */

/**
 * What build mode needs of the client.
 * @typedef {{
 *   world: () => string, token: () => string, served: () => WorldFile | null,
 *   show: (file: WorldFile | null) => void, redraw: () => void, renderer: () => Renderer | null,
 *   image: (id: string) => Promise<HTMLImageElement | null>, focus: (x: number, y: number) => void,
 *   announce: (text: string) => void,
 * }} BuildHost
 */

/** How long edits settle before they are checked, in ms. */
export const CHECK_DELAY_MS = 300;

export const TOOLS = /** @type {const} */ (['floor', 'block', 'wall', 'height', 'object', 'zone', 'spawn', 'exit']);
/** @typedef {typeof TOOLS[number]} Tool */
const TOOL_NAMES = { floor: 'Floor', block: 'Block', wall: 'Wall', height: 'Height', object: 'Objects', zone: 'Zones', spawn: 'Spawns', exit: 'Exits' };
const ZONE_TYPES = ['open', 'meeting_room', 'stage', 'silent', 'private'];
const OBJECT_KINDS = ['door', 'seat', 'passage'];
const FACINGS = ['north', 'east', 'south', 'west'];

/** The workspace a join token is for (its payload's `workspace`). @param {string} token */
export function workspaceOf(token) {
  try {
    const payload = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    return String(JSON.parse(atob(payload)).workspace ?? '');
  } catch {
    return '';
  }
}

/**
 * The tiles a problem is about, from its JSONPath and message (`tile (x, y)` in the
 * message, or the area of the zone, object or spawn point its path names).
 * @param {WorldFile} file @param {Problem} problem @returns {{x: number, y: number, w: number, h: number}[]}
 */
export function problemPlaces(file, problem) {
  const tile = problem.message.match(/tile \((\d+), (\d+)\)/);
  if (tile) return [{ x: Number(tile[1]), y: Number(tile[2]), w: 1, h: 1 }];
  const listed = problem.path.match(/^\$\.(zones|objects|spawns|exits|websites)\[(\d+)\]/);
  if (listed) {
    const item = /** @type {any} */ (file)[listed[1]]?.[Number(listed[2])];
    if (item?.area) return item.area.map((/** @type {any} */ r) => ({ x: r.x, y: r.y, w: r.w ?? 1, h: r.h ?? 1 }));
    if (item && Number.isInteger(item.x)) return [{ x: item.x, y: item.y, w: 1, h: 1 }];
  }
  const row = problem.path.match(/^\$\.collision\.(?:rows|heights)\[(\d+)\]/);
  if (row) return [{ x: 0, y: Number(row[1]), w: file.grid.width, h: 1 }];
  return [];
}

/** The grid line nearest a point within its tile. @param {TilePoint} p @returns {import('./build-edits.js').Edge} */
export function nearestEdge(p) {
  const x = Math.floor(p.x);
  const y = Math.floor(p.y);
  const fx = p.x - x;
  const fy = p.y - y;
  const nearest = Math.min(fy, 1 - fy, fx, 1 - fx);
  if (nearest === fy) return { x, y, side: 'north' };
  if (nearest === 1 - fy) return { x, y: y + 1, side: 'north' };
  if (nearest === fx) return { x, y, side: 'west' };
  return { x: x + 1, y, side: 'west' };
}

export class BuildMode {
  /** @param {HTMLElement} panel @param {HTMLButtonElement} toggle @param {BuildHost} host */
  constructor(panel, toggle, host) {
    this.panel = panel;
    this.toggle = toggle;
    this.host = host;
    /** @type {EditSession | null} */
    this.session = null;
    /** @type {Tool} */
    this.tool = 'block';
    /** The picture the floor tool paints (null: clears), and into which layer. @type {Picture | null} */
    this.picture = null;
    this.layer = '';
    this.zoneType = 'meeting_room';
    this.objectKind = 'seat';
    /** What is selected: a zone, an object, a spawn point or an exit, by ID. @type {{kind: 'zone' | 'object' | 'spawn' | 'exit', id: string} | null} */
    this.selected = null;
    /** The stage zone whose podium the next rectangle drawn becomes. @type {string | null} */
    this.podiumFor = null;
    /** The check's last verdict. */
    this.problems = { errors: /** @type {Problem[]} */ ([]), missing: /** @type {string[]} */ ([]), warnings: /** @type {Problem[]} */ ([]) };
    this.checking = false;
    this.checkTimer = /** @type {ReturnType<typeof setTimeout> | undefined} */ (undefined);
    /** The problem shown on the map. @type {Problem | null} */
    this.focused = null;
    /** A drag on the map: a stroke of edits, a rectangle, or a move. */
    this.drag = /** @type {{start: {x: number, y: number}, at: {x: number, y: number}, stroke: Edit[], seen: Set<string>, value: number | boolean | null, moving: {kind: 'object' | 'spawn', id: string} | null} | null} */ (null);
    /** Images this page tried to upload for the asset server (see uploadMissing). @type {Set<string>} */
    this.tried = new Set();
    /** Versions we published ourselves (content IDs), so their `world_changed` is no news. @type {Set<string>} */
    this.ours = new Set();
    /** While a publish waits for its answer, the versions that reached the world meanwhile. @type {string[] | null} */
    this.publishing = null;
    /** A newer version someone else published while we edit. @type {string | null} */
    this.newer = null;
    this.status = '';
    toggle.addEventListener('click', () => (this.active ? this.close() : this.open()));
  }

  get active() {
    return this.session !== null;
  }

  /** The world file shown while building. */
  get file() {
    return this.session?.file ?? null;
  }

  /** Whether this user may build (welcome's `builder`). @param {boolean} allowed */
  setAllowed(allowed) {
    this.toggle.hidden = !allowed;
    if (!allowed && this.active) this.close();
  }

  /** The asset API for this world. @param {string} [rest] */
  url(rest = '') {
    const workspace = encodeURIComponent(workspaceOf(this.host.token()));
    return `/v1/workspaces/${workspace}/worlds/${encodeURIComponent(this.host.world())}${rest}`;
  }

  /** @param {string} url @param {RequestInit} [init] */
  async api(url, init = {}) {
    const response = await fetch(url, {
      ...init,
      headers: { authorization: `Bearer ${this.host.token()}`, 'content-type': 'application/json', ...init.headers },
    });
    const body = await response.json().catch(() => ({}));
    return { status: response.status, body };
  }

  /** The current version on the asset server: its number (0: never published there) and file. */
  async current() {
    const versions = await this.api(this.url('/versions'));
    if (versions.status === 404) return { version: 0, file: this.host.served() };
    if (versions.status !== 200) throw new Error(versions.body?.error?.message ?? `the asset server answered ${versions.status}`);
    const file = await this.api(this.url());
    if (file.status !== 200) throw new Error(file.body?.error?.message ?? `the asset server answered ${file.status}`);
    return { version: Number(versions.body.current_version), file: /** @type {WorldFile} */ (file.body) };
  }

  async open() {
    this.toggle.setAttribute('aria-expanded', 'true');
    this.panel.hidden = false;
    this.panel.replaceChildren(h('header', {}, h('h2', { id: 'build-title' }, 'Build'), this.closeButton()), h('p', {}, 'Loading the current version…'));
    try {
      const { version, file } = await this.current();
      if (!file) throw new Error('the world is not loaded yet');
      this.session = new EditSession(file, version);
      this.layer = this.session.file.layers.find((l) => l.depth === 'below')?.name ?? this.session.file.layers[0]?.name ?? 'floor';
      const first = this.session.file.tilesets[0];
      this.picture = first ? { image: first.image, index: 0 } : null;
      this.newer = null;
      this.status = version ? `Editing version ${version}.` : 'This world has not been published to the asset server yet: publishing makes version 1.';
      this.changed();
      this.host.announce('Build mode: the map shows its grid, blocked tiles, walls and zones.');
    } catch (error) {
      this.panel.replaceChildren(h('header', {}, h('h2', { id: 'build-title' }, 'Build'), this.closeButton()), h('p', { role: 'alert' }, `Cannot start building: ${/** @type {Error} */ (error).message}`));
    }
  }

  close() {
    if (this.session?.changed && !confirm('Leave build mode? Your unpublished changes are lost.')) return;
    this.session = null;
    this.selected = null;
    this.drag = null;
    clearTimeout(this.checkTimer);
    this.panel.hidden = true;
    this.toggle.setAttribute('aria-expanded', 'false');
    this.host.show(null);
  }

  closeButton() {
    return h('button', { type: 'button', class: 'close', 'aria-label': 'Close build mode', onclick: () => this.close() }, '×');
  }

  /** The edited world changed: redraw it, check it soon, refresh the panel. */
  changed() {
    // Not publishable until the new state is checked: said before the panel is drawn.
    this.checking = true;
    clearTimeout(this.checkTimer);
    this.checkTimer = setTimeout(() => this.check(), CHECK_DELAY_MS);
    this.host.show(this.file);
    this.render();
  }

  /** @param {Edit} edit */
  apply(edit) {
    if (!this.session) return;
    this.session.apply(edit);
    this.changed();
  }

  async check() {
    const session = this.session;
    if (!session) return;
    const file = session.file;
    const { status, body } = await this.api(this.url('/check'), { method: 'POST', body: JSON.stringify({ world: file }) }).catch((error) => ({ status: 0, body: { error: { message: String(error) } } }));
    if (this.session !== session || session.file !== file) return; // edited again meanwhile: a newer check comes
    this.checking = false;
    if (status === 200 && body.missing?.length && (await this.uploadMissing(body.missing))) {
      this.checking = true;
      return this.check();
    }
    if (status === 200) this.problems = { errors: body.errors ?? [], missing: body.missing ?? [], warnings: body.warnings ?? [] };
    else this.problems = { errors: [{ path: '$', message: body?.error?.message ?? `the check failed (${status})` }], missing: [], warnings: [] };
    this.render();
    this.host.redraw();
  }

  /**
   * Images the asset server lacks but this page can load (the built-in demo's, served by
   * signaling itself) are uploaded, once each: content IDs name the bytes, so they are the
   * same images. Whether any was uploaded.
   * @param {string[]} ids
   */
  async uploadMissing(ids) {
    let uploaded = false;
    for (const id of ids) {
      if (this.tried.has(id)) continue;
      this.tried.add(id);
      const image = await fetch(`/assets/${encodeURIComponent(id)}`).catch(() => null);
      if (!image?.ok) continue;
      const blob = await image.blob();
      const stored = await fetch('/v1/assets', { method: 'POST', headers: { authorization: `Bearer ${this.host.token()}`, 'content-type': blob.type }, body: blob });
      uploaded ||= stored.ok;
    }
    return uploaded;
  }

  get publishable() {
    return Boolean(this.session?.changed) && !this.checking && !this.problems.errors.length && !this.problems.missing.length;
  }

  async publish() {
    const session = this.session;
    if (!session || !this.publishable) return;
    const reason = /** @type {HTMLInputElement | null} */ (this.panel.querySelector('#build-reason'))?.value ?? '';
    const body = JSON.stringify({ base_version: session.baseVersion, world: session.file, reason });
    this.publishing = [];
    const answer = await this.api(this.url('/versions'), { method: 'POST', body });
    const seen = this.publishing;
    this.publishing = null;
    if (answer.status === 201) {
      this.ours.add(answer.body.content_id);
      session.published(answer.body.version);
      this.status = `Published version ${answer.body.version}: everyone in the world has it now.`;
      this.host.announce(this.status);
      // A version that reached the world while we waited, and is not ours, is news.
      for (const version of seen) this.worldChanged(version);
    } else if (answer.status === 409) {
      this.newer = String(answer.body.error?.current_version ?? '');
      this.status = `Version ${this.newer} was published by someone else since you started from version ${session.baseVersion}. Rebase your changes onto it, or discard them.`;
    } else {
      this.status = `Not published: ${answer.body.error?.message ?? answer.status}`;
    }
    this.render();
  }

  /** Replays our edits on the current version. */
  async rebase() {
    const session = this.session;
    if (!session) return;
    const { version, file } = await this.current();
    if (!file) return;
    const skipped = session.rebase(file, version);
    this.newer = null;
    this.status = skipped.length
      ? `Rebased onto version ${version}. These changes no longer apply and were dropped: ${skipped.map((s) => `${describeEdit(s.edit)} (${s.why})`).join('; ')}.`
      : `Rebased onto version ${version}: all your changes kept.`;
    this.changed();
  }

  async discard() {
    const session = this.session;
    if (!session) return;
    const { version, file } = await this.current();
    if (!file) return;
    this.session = new EditSession(file, version);
    this.newer = null;
    this.selected = null;
    this.status = `Your changes were dropped: editing version ${version}.`;
    this.changed();
  }

  /** A new version reached the world (`world_changed`). @param {string} version its content ID */
  worldChanged(version) {
    if (this.publishing) {
      this.publishing.push(version); // ours or not: the answer tells
      return;
    }
    if (!this.session || this.ours.has(version)) return;
    this.newer = 'newer';
    this.status = 'Someone else published a new version of this world. Rebase your changes onto it, or discard them.';
    this.render();
  }

  async history() {
    const list = this.panel.querySelector('#build-history');
    if (!list) return;
    const { status, body } = await this.api(this.url('/versions'));
    if (status !== 200) {
      list.replaceChildren(h('li', {}, status === 404 ? 'No version published yet.' : `Cannot read the versions (${status}).`));
      return;
    }
    const current = Number(body.current_version);
    list.replaceChildren(...[...body.versions].reverse().map((/** @type {any} */ v) => h('li', {},
      `Version ${v.version} · ${v.created_by} · ${new Date(v.created_at * 1000).toLocaleString()}`,
      v.version === current ? h('strong', {}, ' · current') : h('button', { type: 'button', onclick: () => this.rollBack(current, v.version, v.content_id) }, `Roll back to version ${v.version}`),
    )));
  }

  /** @param {number} current @param {number} version @param {string} contentId */
  async rollBack(current, version, contentId) {
    if (this.session?.changed && !confirm('Roll back? Your unpublished changes are dropped.')) return;
    const { status, body } = await this.api(this.url('/current'), { method: 'PUT', body: JSON.stringify({ expected_version: current, version, reason: 'rolled back in build mode' }) });
    if (status !== 200) {
      this.status = `Not rolled back: ${body.error?.message ?? status}`;
      this.render();
      return;
    }
    this.ours.add(contentId);
    this.status = `Rolled back to version ${version}: everyone in the world has it now.`;
    this.host.announce(this.status);
    const { file } = await this.current();
    if (file && this.session) {
      this.session = new EditSession(file, version);
      this.changed();
    }
  }

  /** Uploads a tileset image and adds it to the world. @param {File} image @param {number} tileWidth @param {number} tileHeight */
  async addTileset(image, tileWidth, tileHeight) {
    const session = this.session;
    if (!session) return;
    const response = await fetch('/v1/assets', { method: 'POST', headers: { authorization: `Bearer ${this.host.token()}`, 'content-type': image.type || 'application/octet-stream' }, body: image });
    const body = await response.json().catch(() => ({}));
    if (!response.ok) {
      this.status = `Not uploaded: ${body.error?.message ?? response.status}`;
      this.render();
      return;
    }
    const picture = await this.host.image(body.id);
    if (!picture) return;
    const columns = Math.floor(picture.naturalWidth / tileWidth);
    const rows = Math.floor(picture.naturalHeight / tileHeight);
    if (columns < 1 || rows < 1) {
      this.status = `The image (${picture.naturalWidth} × ${picture.naturalHeight}) is smaller than one tile.`;
      this.render();
      return;
    }
    const name = image.name.replace(/\.[^.]*$/, '') || 'tiles';
    this.apply({ type: 'tileset', tileset: { name, image: body.id, image_width: picture.naturalWidth, image_height: picture.naturalHeight, tile_width: tileWidth, tile_height: tileHeight, columns, tile_count: columns * rows, first_gid: 1 } });
    this.picture = { image: body.id, index: 0 };
    this.render();
  }

  undo() {
    if (this.session?.undo()) this.changed();
  }

  redo() {
    if (this.session?.redo()) this.changed();
  }

  // The map.

  /** A tap on the map while building. @param {TilePoint} p */
  tap(p) {
    const file = this.file;
    if (!file) return;
    const x = Math.floor(p.x);
    const y = Math.floor(p.y);
    const inside = x >= 0 && y >= 0 && x < file.grid.width && y < file.grid.height;
    switch (this.tool) {
      case 'wall': {
        const edge = nearestEdge(p);
        const key = (/** @type {{from: number[], to: number[]}} */ w) => w.from[0] === w.to[0] ? w.from[0] === edge.x && edge.side === 'west' && edge.y >= Math.min(w.from[1], w.to[1]) && edge.y < Math.max(w.from[1], w.to[1]) : w.from[1] === edge.y && edge.side === 'north' && edge.x >= Math.min(w.from[0], w.to[0]) && edge.x < Math.max(w.from[0], w.to[0]);
        this.apply({ type: 'wall', edge, on: !file.collision.walls.some(key) });
        return;
      }
      case 'object':
      case 'zone':
      case 'spawn':
      case 'exit': {
        if (inside && this.podiumFor) return this.drawZone({ x, y, w: 1, h: 1 });
        const found = this.itemAt(x, y);
        if (found && found.kind === this.kindOfTool()) {
          this.selected = found;
          this.render();
          this.host.redraw();
        } else if (inside && this.tool === 'object') {
          this.placeObject(x, y);
        } else if (inside && this.tool === 'spawn') {
          const id = freshId('spawn', file.spawns.map((s) => s.id));
          this.apply({ type: 'spawn', spawn: { id, x, y, facing: 'south' } });
          this.selected = { kind: 'spawn', id };
        } else if (inside && this.tool === 'zone') {
          this.drawZone({ x, y, w: 1, h: 1 });
        } else if (inside && this.tool === 'exit') {
          this.drawExit({ x, y, w: 1, h: 1 });
        } else {
          this.selected = null;
          this.render();
        }
        return;
      }
      default:
        if (inside) this.stroke([{ x, y }], this.strokeValue(x, y));
    }
  }

  kindOfTool() {
    return this.tool === 'object' || this.tool === 'spawn' || this.tool === 'exit' ? this.tool : 'zone';
  }

  /** The zone, object or spawn point on a tile, of the current tool's kind. @param {number} x @param {number} y */
  itemAt(x, y) {
    const file = this.file;
    if (!file) return null;
    if (this.tool === 'object') {
      const object = file.objects.find((o) => o.area.some((r) => rectHas(r, x, y)));
      return object ? { kind: /** @type {const} */ ('object'), id: object.id } : null;
    }
    if (this.tool === 'spawn') {
      const spawn = file.spawns.find((s) => s.x === x && s.y === y);
      return spawn ? { kind: /** @type {const} */ ('spawn'), id: spawn.id } : null;
    }
    if (this.tool === 'exit') {
      const exit = file.exits.find((e) => e.area.some((r) => rectHas(r, x, y)));
      return exit ? { kind: /** @type {const} */ ('exit'), id: exit.id } : null;
    }
    const zone = file.zones.find((z) => (z.area ?? []).some((r) => rectHas(r, x, y)));
    return zone ? { kind: /** @type {const} */ ('zone'), id: zone.id } : null;
  }

  /** What a stroke starting on (x, y) sets every tile to. @param {number} x @param {number} y */
  strokeValue(x, y) {
    const file = /** @type {WorldFile} */ (this.file);
    if (this.tool === 'block') return file.collision.rows[y]?.[x] !== '#';
    if (this.tool === 'height') {
      const level = Number(file.collision.heights[y]?.[x] ?? 0);
      return Math.min(level + 1, (file.grid.levels ?? 1) - 1) === level ? 0 : level + 1;
    }
    return null;
  }

  /** The edit a stroke makes on one tile. @param {number} x @param {number} y @param {number | boolean | null} value @returns {Edit | null} */
  strokeEdit(x, y, value) {
    if (this.tool === 'block') return { type: 'block', x, y, blocked: Boolean(value) };
    if (this.tool === 'height') return { type: 'height', x, y, level: Number(value) };
    if (this.tool === 'floor') return { type: 'tile', layer: this.layer, x, y, picture: this.picture };
    return null;
  }

  /** Applies a stroke over `tiles` as one edit. @param {{x: number, y: number}[]} tiles @param {number | boolean | null} value */
  stroke(tiles, value) {
    const edits = tiles.map((t) => this.strokeEdit(t.x, t.y, value)).filter((e) => e !== null);
    if (!edits.length) return;
    this.apply(edits.length === 1 ? edits[0] : { type: 'group', label: `${TOOL_NAMES[this.tool].toLowerCase()} ${edits.length} tiles`, edits });
  }

  /** A drag starts on the map: whether build mode takes it (else it pans). @param {TilePoint} p */
  dragStart(p) {
    const file = this.file;
    if (!file || this.tool === 'wall') return false;
    const start = { x: Math.floor(p.x), y: Math.floor(p.y) };
    const item = (this.tool === 'object' || this.tool === 'spawn') && !this.podiumFor ? this.itemAt(start.x, start.y) : null;
    if ((this.tool === 'object' || this.tool === 'spawn') && !item && !this.podiumFor) return false;
    const moving = item && (item.kind === 'object' || item.kind === 'spawn') ? item : null;
    this.drag = { start, at: start, stroke: [], seen: new Set(), value: this.strokeValue(start.x, start.y), moving };
    this.dragMove(p);
    return true;
  }

  /** @param {TilePoint} p */
  dragMove(p) {
    const drag = this.drag;
    const session = this.session;
    if (!drag || !session) return;
    drag.at = { x: Math.floor(p.x), y: Math.floor(p.y) };
    const { x, y } = drag.at;
    const key = `${x},${y}`;
    if ((this.tool === 'floor' || this.tool === 'block' || this.tool === 'height') && !drag.seen.has(key) && x >= 0 && y >= 0 && x < session.file.grid.width && y < session.file.grid.height) {
      drag.seen.add(key);
      const edit = this.strokeEdit(x, y, drag.value);
      if (edit) {
        session.preview(edit);
        drag.stroke.push(edit);
        this.host.show(session.file);
      }
    } else {
      this.host.redraw(); // the rectangle being drawn follows the pointer
    }
  }

  /** @param {TilePoint} p */
  dragEnd(p) {
    const drag = this.drag;
    const session = this.session;
    if (!drag || !session) return;
    this.dragMove(p);
    this.drag = null;
    const { start, at } = drag;
    if (drag.stroke.length) {
      session.record(drag.stroke.length === 1 ? drag.stroke[0] : { type: 'group', label: `${TOOL_NAMES[this.tool].toLowerCase()} ${drag.stroke.length} tiles`, edits: drag.stroke });
      this.changed();
    } else if (drag.moving) {
      this.moveItem(drag.moving, at.x - start.x, at.y - start.y);
    } else if (this.tool === 'zone') {
      this.drawZone(rectBetween(start, at));
    } else if (this.tool === 'exit') {
      this.drawExit(rectBetween(start, at));
    }
  }

  /** @param {{kind: 'object' | 'spawn', id: string}} item @param {number} dx @param {number} dy */
  moveItem(item, dx, dy) {
    const file = /** @type {WorldFile} */ (this.file);
    if (!dx && !dy) return;
    if (item.kind === 'object') {
      const object = file.objects.find((o) => o.id === item.id);
      if (object) this.apply({ type: 'object', object: { ...object, area: moveArea(object.area, dx, dy) } });
    } else {
      const spawn = file.spawns.find((s) => s.id === item.id);
      if (spawn) this.apply({ type: 'spawn', spawn: { ...spawn, x: spawn.x + dx, y: spawn.y + dy } });
    }
    this.selected = item;
  }

  /** @param {number} x @param {number} y */
  placeObject(x, y) {
    const file = /** @type {WorldFile} */ (this.file);
    const id = freshId(this.objectKind, file.objects.map((o) => o.id));
    /** @type {ObjectDef} */
    const object = { id, kind: this.objectKind, area: [{ x, y, w: 1, h: 1 }], capacity: 1, requires: [] };
    if (this.objectKind === 'seat') object.facing = 'south';
    this.apply({ type: 'object', object });
    this.selected = { kind: 'object', id };
    this.render();
  }

  /** An exit over `rect`; the world it leads to is asked in its form. @param {import('./world.js').Rect} rect */
  drawExit(rect) {
    const file = /** @type {WorldFile} */ (this.file);
    const id = freshId('exit', file.exits.map((e) => e.id));
    this.apply({ type: 'exit', exit: { id, area: [rect], world: '' } });
    this.selected = { kind: 'exit', id };
    this.render();
    /** @type {HTMLInputElement | null} */ (this.panel.querySelector('#build-exit-world'))?.focus();
  }

  /**
   * A new zone of the chosen type over `rect`, with its type's options; or, right after
   * "Draw podium", the podium of that stage.
   * @param {import('./world.js').Rect} rect
   */
  drawZone(rect) {
    const file = /** @type {WorldFile} */ (this.file);
    const stage = this.podiumFor && file.zones.find((z) => z.id === this.podiumFor);
    this.podiumFor = null;
    if (stage) {
      this.apply({ type: 'zone', zone: { ...stage, podium: [rect] } });
      this.selected = { kind: 'zone', id: stage.id };
      this.render();
      return;
    }
    const id = freshId('zone', [file.default_zone.id, ...file.zones.map((z) => z.id)]);
    const zone = withTypeOptions({ id, name: `Zone ${id.slice(5)}`, type: this.zoneType, area: [rect] });
    this.apply({ type: 'zone', zone });
    this.selected = { kind: 'zone', id };
    this.render();
  }

  /**
   * Draws the build overlay over the map: the grid, blocked tiles, walls, zones, objects,
   * spawn points, the selection, the faults, and the rectangle being drawn.
   * @param {CanvasRenderingContext2D} ctx @param {Renderer} renderer @param {number} dx @param {number} dy
   */
  drawOverlay(ctx, renderer, dx, dy) {
    const file = this.file;
    if (!file) return;
    const p = renderer.projection;
    const world = renderer.world;
    const level = (/** @type {number} */ x, /** @type {number} */ y) => (world.inGrid(x, y) ? world.heights[y * world.width + x] : 0);
    /** @param {number} x @param {number} y @param {number} w @param {number} hgt */
    const outline = (x, y, w, hgt) => {
      const l = level(x, y);
      const corners = [p.toScreen(x, y, l), p.toScreen(x + w, y, l), p.toScreen(x + w, y + hgt, l), p.toScreen(x, y + hgt, l)];
      ctx.beginPath();
      corners.forEach((c, i) => (i ? ctx.lineTo(c.x + dx, c.y + dy) : ctx.moveTo(c.x + dx, c.y + dy)));
      ctx.closePath();
    };
    ctx.save();
    ctx.lineWidth = 1;
    ctx.strokeStyle = 'rgba(255, 255, 255, 0.18)';
    for (let y = 0; y < file.grid.height; y++) {
      for (let x = 0; x < file.grid.width; x++) {
        outline(x, y, 1, 1);
        if (file.collision.rows[y]?.[x] === '#') {
          ctx.fillStyle = 'rgba(230, 60, 60, 0.35)';
          ctx.fill();
        }
        ctx.stroke();
      }
    }
    file.zones.forEach((zone, i) => {
      const hue = (i * 67) % 360;
      for (const r of zone.area ?? []) {
        outline(r.x, r.y, r.w ?? 1, r.h ?? 1);
        ctx.fillStyle = `hsla(${hue}, 70%, 60%, 0.16)`;
        ctx.fill();
        ctx.strokeStyle = `hsla(${hue}, 80%, 70%, 0.9)`;
        ctx.lineWidth = this.selected?.kind === 'zone' && this.selected.id === zone.id ? 3 : 1.5;
        ctx.stroke();
      }
      const r = zone.area?.[0];
      if (r) {
        const c = p.toScreen(r.x + (r.w ?? 1) / 2, r.y + (r.h ?? 1) / 2, level(r.x, r.y));
        label(ctx, `${zone.name} · ${zone.type.replace('_', ' ')}`, c.x + dx, c.y + dy);
      }
    });
    ctx.lineWidth = 4;
    ctx.strokeStyle = 'rgba(255, 170, 40, 0.95)';
    for (const wall of file.collision.walls) {
      const a = p.toScreen(wall.from[0], wall.from[1], level(wall.from[0], wall.from[1]));
      const b = p.toScreen(wall.to[0], wall.to[1], level(wall.from[0], wall.from[1]));
      ctx.beginPath();
      ctx.moveTo(a.x + dx, a.y + dy);
      ctx.lineTo(b.x + dx, b.y + dy);
      ctx.stroke();
    }
    for (const object of file.objects) {
      for (const r of object.area) {
        outline(r.x, r.y, r.w ?? 1, r.h ?? 1);
        ctx.lineWidth = this.selected?.kind === 'object' && this.selected.id === object.id ? 3 : 2;
        ctx.strokeStyle = 'rgba(255, 230, 90, 0.95)';
        ctx.stroke();
      }
      const r = object.area[0];
      const c = p.toScreen(r.x + 0.5, r.y + 0.5, level(r.x, r.y));
      label(ctx, object.kind, c.x + dx, c.y + dy);
    }
    file.spawns.forEach((spawn, i) => {
      const c = p.toScreen(spawn.x + 0.5, spawn.y + 0.5, level(spawn.x, spawn.y));
      ctx.fillStyle = i === 0 ? '#3ddc84' : '#9be7b8';
      ctx.beginPath();
      ctx.ellipse(c.x + dx, c.y + dy, 8, 4, 0, 0, Math.PI * 2);
      ctx.fill();
      if (this.selected?.kind === 'spawn' && this.selected.id === spawn.id) {
        ctx.strokeStyle = '#fff';
        ctx.lineWidth = 2;
        ctx.stroke();
      }
    });
    for (const exit of file.exits) {
      for (const r of exit.area) {
        outline(r.x, r.y, r.w ?? 1, r.h ?? 1);
        ctx.fillStyle = 'rgba(90, 200, 255, 0.25)';
        ctx.fill();
        ctx.lineWidth = this.selected?.kind === 'exit' && this.selected.id === exit.id ? 3 : 1.5;
        ctx.strokeStyle = 'rgba(90, 200, 255, 0.95)';
        ctx.stroke();
      }
      const r = exit.area[0];
      const c = p.toScreen(r.x + 0.5, r.y + 0.5, level(r.x, r.y));
      label(ctx, `exit → ${exit.world || '?'}`, c.x + dx, c.y + dy);
    }
    for (const zone of file.zones) {
      for (const r of zone.podium ?? []) {
        outline(r.x, r.y, r.w ?? 1, r.h ?? 1);
        ctx.setLineDash([4, 3]);
        ctx.lineWidth = 2;
        ctx.strokeStyle = 'rgba(255, 255, 255, 0.8)';
        ctx.stroke();
        ctx.setLineDash([]);
      }
    }
    ctx.lineWidth = 3;
    ctx.strokeStyle = 'rgba(255, 60, 60, 1)';
    for (const problem of [...this.problems.errors]) {
      for (const r of problemPlaces(file, problem)) {
        outline(r.x, r.y, r.w, r.h);
        ctx.setLineDash(problem === this.focused ? [] : [6, 4]);
        ctx.stroke();
      }
    }
    ctx.setLineDash([]);
    const drag = this.drag;
    if (drag && (this.tool === 'zone' || this.tool === 'exit' || this.podiumFor)) {
      const r = rectBetween(drag.start, drag.at);
      outline(r.x, r.y, r.w, r.h);
      ctx.strokeStyle = '#fff';
      ctx.stroke();
    }
    ctx.restore();
  }

  // The panel.

  render() {
    const session = this.session;
    if (!session) return;
    const file = session.file;
    const tools = h('div', { class: 'build-tools', role: 'toolbar', 'aria-label': 'Tools' },
      ...TOOLS.map((tool) => h('button', { type: 'button', 'aria-pressed': String(this.tool === tool), 'data-tool': tool, onclick: () => { this.tool = tool; this.selected = null; this.render(); this.host.redraw(); } }, TOOL_NAMES[tool])));
    const problems = this.problems;
    const faults = [
      ...problems.errors.map((p) => h('li', {}, h('button', { type: 'button', class: 'problem', onclick: () => this.showProblem(p) }, p.message), h('small', {}, ` ${p.path}`))),
      ...problems.missing.map((id) => h('li', {}, `The image ${id} is not uploaded.`)),
    ];
    const verdict = this.checking
      ? 'Checking…'
      : faults.length ? `${faults.length} ${faults.length === 1 ? 'fault' : 'faults'} to fix before publishing:` : 'No faults.';
    /** @type {(Node | null)[]} */
    const parts = [
      h('header', {}, h('h2', { id: 'build-title' }, 'Build'), this.closeButton()),
      h('p', { class: 'build-status', role: 'status' }, this.status),
      this.newer ? h('p', { class: 'build-conflict' },
        h('button', { type: 'button', id: 'build-rebase', onclick: () => this.rebase() }, 'Rebase my changes'), ' ',
        h('button', { type: 'button', onclick: () => this.discard() }, 'Discard my changes')) : null,
      tools,
      this.toolOptions(file),
      this.selectionForm(file),
      h('div', { class: 'build-actions' },
        h('button', { type: 'button', id: 'build-undo', disabled: !session.edits.length, onclick: () => this.undo(), title: session.edits.length ? `Undo ${describeEdit(/** @type {Edit} */ (session.edits.at(-1)))}` : 'Nothing to undo' }, 'Undo'),
        h('button', { type: 'button', id: 'build-redo', disabled: !session.undone.length, onclick: () => this.redo() }, 'Redo'),
        h('input', { id: 'build-reason', type: 'text', placeholder: 'What changed (for the history)', 'aria-label': 'What changed' }),
        h('button', { type: 'button', id: 'build-publish', disabled: !this.publishable, onclick: () => this.publish() }, 'Publish')),
      h('p', { id: 'build-verdict', 'aria-live': 'polite' }, verdict),
      faults.length ? h('ul', { class: 'build-problems' }, ...faults) : null,
      h('details', { ontoggle: (/** @type {Event} */ e) => { if (/** @type {HTMLDetailsElement} */ (e.target).open) this.history(); } },
        h('summary', {}, 'Versions'), h('ul', { id: 'build-history' })),
    ];
    this.panel.replaceChildren(...parts.filter(/** @returns {n is Node} */ (n) => n !== null));
  }

  /** @param {Problem} problem */
  showProblem(problem) {
    this.focused = problem;
    const place = this.file && problemPlaces(this.file, problem)[0];
    if (place) this.host.focus(place.x + place.w / 2, place.y + place.h / 2);
    this.host.redraw();
  }

  /** The current tool's settings. @param {WorldFile} file */
  toolOptions(file) {
    switch (this.tool) {
      case 'floor': {
        const set = file.tilesets.find((t) => t.image === this.picture?.image) ?? file.tilesets[0];
        const palette = h('div', { class: 'build-palette', role: 'group', 'aria-label': 'Tiles' },
          h('button', { type: 'button', 'aria-pressed': String(this.picture === null), onclick: () => { this.picture = null; this.render(); } }, 'Eraser'),
          ...(set ? Array.from({ length: Math.min(set.tile_count, 256) }, (_, index) => this.tileButton(set, index)) : []));
        return h('div', { class: 'build-options' },
          h('label', {}, 'Layer ', h('select', { onchange: (/** @type {Event} */ e) => { this.layer = /** @type {HTMLSelectElement} */ (e.target).value; } },
            ...file.layers.map((l) => h('option', { value: l.name, selected: l.name === this.layer }, `${l.name} (${l.depth})`)))),
          ' ',
          h('label', {}, 'Tileset ', h('select', { onchange: (/** @type {Event} */ e) => { this.picture = { image: /** @type {HTMLSelectElement} */ (e.target).value, index: 0 }; this.render(); } },
            ...file.tilesets.map((t) => h('option', { value: t.image, selected: t === set }, t.name)))),
          palette,
          this.uploadForm(file));
      }
      case 'block': return h('p', { class: 'build-options' }, 'Click or drag over tiles to block them (drag from a blocked tile to clear). Shift-drag pans.');
      case 'wall': return h('p', { class: 'build-options' }, 'Click next to a tile edge to put a thin wall on it, or take it away.');
      case 'height': return h('div', { class: 'build-options' },
        h('label', {}, 'Height levels ', h('input', { type: 'number', min: 1, max: 10, value: file.grid.levels ?? 1, onchange: (/** @type {Event} */ e) => this.apply({ type: 'levels', levels: Number(/** @type {HTMLInputElement} */ (e.target).value) }) })),
        ' Click or drag to raise tiles one level (from the top level, back to 0).');
      case 'object': return h('div', { class: 'build-options' },
        h('label', {}, 'Place ', h('select', { onchange: (/** @type {Event} */ e) => { this.objectKind = /** @type {HTMLSelectElement} */ (e.target).value; } },
          ...OBJECT_KINDS.map((k) => h('option', { value: k, selected: k === this.objectKind }, k)))),
        ' Click a free tile to place one, click one to edit it, drag one to move it.');
      case 'zone': return h('div', { class: 'build-options' },
        h('label', {}, 'New zones are ', h('select', { onchange: (/** @type {Event} */ e) => { this.zoneType = /** @type {HTMLSelectElement} */ (e.target).value; } },
          ...ZONE_TYPES.map((t) => h('option', { value: t, selected: t === this.zoneType }, t.replace('_', ' '))))),
        ' Drag a rectangle to draw a zone, click one to edit it.');
      case 'spawn': return h('p', { class: 'build-options' }, 'Click a free tile to add a spawn point (the first one is where people arrive), drag one to move it.');
      case 'exit': return h('p', { class: 'build-options' }, 'Drag a rectangle to make an exit into another world of this workspace, click one to edit it.');
    }
  }

  /** @param {import('./world.js').TilesetDef} set @param {number} index */
  tileButton(set, index) {
    const canvas = h('canvas', { width: 32, height: 32 });
    this.host.image(set.image).then((image) => {
      if (!image) return;
      const ctx = canvas.getContext('2d');
      const sx = (index % set.columns) * set.tile_width;
      const sy = Math.floor(index / set.columns) * set.tile_height;
      const scale = 32 / Math.max(set.tile_width, set.tile_height);
      ctx?.drawImage(image, sx, sy, set.tile_width, set.tile_height, (32 - set.tile_width * scale) / 2, 32 - set.tile_height * scale, set.tile_width * scale, set.tile_height * scale);
    });
    const chosen = this.picture?.image === set.image && this.picture.index === index;
    return h('button', { type: 'button', class: 'tile', 'aria-pressed': String(chosen), 'aria-label': `${set.name} tile ${index + 1}`, onclick: () => { this.picture = { image: set.image, index }; this.render(); } }, canvas);
  }

  /** @param {WorldFile} file */
  uploadForm(file) {
    const input = h('input', { type: 'file', accept: 'image/png,image/webp,image/svg+xml', 'aria-label': 'Tileset image' });
    const width = h('input', { type: 'number', min: 1, value: file.grid.tile_width, 'aria-label': 'Tile width' });
    const height = h('input', { type: 'number', min: 1, value: file.grid.orientation === 'isometric' ? file.grid.tile_width : file.grid.tile_height, 'aria-label': 'Tile height' });
    return h('form', { class: 'build-upload', onsubmit: (/** @type {Event} */ e) => {
      e.preventDefault();
      const image = input.files?.[0];
      if (image) this.addTileset(image, Number(width.value), Number(height.value));
    } }, 'New tileset: ', input, ' tiles ', width, ' × ', height, ' ', h('button', { type: 'submit' }, 'Upload'));
  }

  /** The form of the selected zone, object or spawn point. @param {WorldFile} file */
  selectionForm(file) {
    const selected = this.selected;
    if (!selected) return null;
    if (selected.kind === 'zone') {
      const zone = file.zones.find((z) => z.id === selected.id);
      return zone ? this.zoneForm(file, zone) : null;
    }
    if (selected.kind === 'object') {
      const object = file.objects.find((o) => o.id === selected.id);
      if (!object) return null;
      const put = (/** @type {Partial<ObjectDef>} */ change) => this.apply({ type: 'object', object: { ...object, ...change } });
      return h('fieldset', { class: 'build-selection' }, h('legend', {}, `${object.kind} ${object.id}`),
        h('label', {}, 'Kind ', h('select', { onchange: (/** @type {Event} */ e) => put({ kind: /** @type {HTMLSelectElement} */ (e.target).value }) }, ...OBJECT_KINDS.map((k) => h('option', { value: k, selected: k === object.kind }, k)))),
        ' ', h('label', {}, 'Capacity ', h('input', { type: 'number', min: 1, value: object.capacity ?? 1, onchange: (/** @type {Event} */ e) => put({ capacity: Number(/** @type {HTMLInputElement} */ (e.target).value) }) })),
        object.kind === 'seat' ? h('label', {}, ' Facing ', h('select', { onchange: (/** @type {Event} */ e) => put({ facing: /** @type {HTMLSelectElement} */ (e.target).value }) }, ...FACINGS.map((f) => h('option', { value: f, selected: f === object.facing }, f)))) : null,
        h('div', {}, 'Taken only right after: ',
          ...file.objects.filter((o) => o.id !== object.id).map((o) => h('label', {}, h('input', { type: 'checkbox', checked: (object.requires ?? []).includes(o.id), onchange: (/** @type {Event} */ e) => {
            const on = /** @type {HTMLInputElement} */ (e.target).checked;
            const rest = (object.requires ?? []).filter((id) => id !== o.id);
            put({ requires: on ? [...rest, o.id] : rest });
          } }), ` ${o.id} `))),
        ' ', h('button', { type: 'button', onclick: () => { this.selected = null; this.apply({ type: 'remove-object', id: object.id }); } }, 'Delete'));
    }
    if (selected.kind === 'exit') {
      const exit = file.exits.find((e) => e.id === selected.id);
      if (!exit) return null;
      const put = (/** @type {Partial<import('./build-edits.js').ExitDef>} */ change) => {
        const next = { ...exit, ...change };
        if (!next.spawn) delete next.spawn;
        this.apply({ type: 'exit', exit: next });
      };
      return h('fieldset', { class: 'build-selection' }, h('legend', {}, `Exit ${exit.id}`),
        h('label', {}, 'Into world ', h('input', { id: 'build-exit-world', type: 'text', value: exit.world, placeholder: 'its name', onchange: (/** @type {Event} */ e) => put({ world: /** @type {HTMLInputElement} */ (e.target).value.trim() }) })),
        ' ', h('label', {}, 'at spawn point ', h('input', { type: 'text', value: exit.spawn ?? '', placeholder: 'its default', onchange: (/** @type {Event} */ e) => put({ spawn: /** @type {HTMLInputElement} */ (e.target).value.trim() }) })),
        ' ', h('button', { type: 'button', onclick: () => { this.selected = null; this.apply({ type: 'remove-exit', id: exit.id }); } }, 'Delete'));
    }
    const spawn = file.spawns.find((s) => s.id === selected.id);
    if (!spawn) return null;
    return h('fieldset', { class: 'build-selection' }, h('legend', {}, `Spawn point ${spawn.id}`),
      h('label', {}, 'Facing ', h('select', { onchange: (/** @type {Event} */ e) => this.apply({ type: 'spawn', spawn: { ...spawn, facing: /** @type {HTMLSelectElement} */ (e.target).value } }) }, ...FACINGS.map((f) => h('option', { value: f, selected: f === spawn.facing }, f)))),
      ' ', h('button', { type: 'button', onclick: () => { this.selected = null; this.apply({ type: 'remove-spawn', id: spawn.id }); } }, 'Delete'));
  }

  /** @param {WorldFile} file @param {ZoneDef} zone */
  zoneForm(file, zone) {
    const put = (/** @type {Partial<ZoneDef>} */ change) => this.apply({ type: 'zone', zone: /** @type {ZoneDef} */ ({ ...zone, ...change }) });
    const number = (/** @type {string} */ key, /** @type {string} */ text, /** @type {boolean} */ optional) => h('label', {}, ` ${text} `, h('input', {
      type: 'number', min: 1, value: zone[key] ?? '', placeholder: optional ? 'none' : '',
      onchange: (/** @type {Event} */ e) => {
        const value = /** @type {HTMLInputElement} */ (e.target).value;
        const next = /** @type {ZoneDef} */ ({ ...zone });
        if (value === '' && optional) delete next[key];
        else next[key] = Number(value);
        this.apply({ type: 'zone', zone: next });
      },
    }));
    const options = {
      open: [number('talk_radius', 'Talk radius', false)],
      meeting_room: [number('sfu_threshold', 'SFU above', false), number('capacity', 'Capacity', true)],
      stage: [number('max_speakers', 'Speakers at most', false), ' ', h('button', { type: 'button', 'aria-pressed': String(this.podiumFor === zone.id), onclick: () => { this.podiumFor = zone.id; this.status = `Drag the podium of ${zone.name} on the map.`; this.render(); } }, 'Draw podium')],
      silent: [],
      private: [number('capacity', 'Capacity', false), h('label', {}, ' ', h('input', { type: 'checkbox', checked: zone.lockable !== false, onchange: (/** @type {Event} */ e) => put({ lockable: /** @type {HTMLInputElement} */ (e.target).checked }) }), ' Lockable')],
    }[zone.type] ?? [];
    const entries = file.objects.filter((o) => o.kind === 'door' || o.kind === 'passage');
    const via = new Set(zone.entry_via ?? []);
    return h('fieldset', { class: 'build-selection' }, h('legend', {}, `Zone ${zone.id}`),
      h('label', {}, 'Name ', h('input', { type: 'text', value: zone.name, onchange: (/** @type {Event} */ e) => put({ name: /** @type {HTMLInputElement} */ (e.target).value }) })),
      ' ', h('label', {}, 'Type ', h('select', { onchange: (/** @type {Event} */ e) => this.apply({ type: 'zone', zone: withTypeOptions({ id: zone.id, name: zone.name, type: /** @type {HTMLSelectElement} */ (e.target).value, area: zone.area, entry_via: zone.entry_via }) }) },
        ...ZONE_TYPES.map((t) => h('option', { value: t, selected: t === zone.type }, t.replace('_', ' '))))),
      ...options,
      h('div', {}, 'Entered only through: ',
        ...[...new Set([...entries.map((o) => o.id), ...via])].map((id) => h('label', {}, h('input', { type: 'checkbox', checked: via.has(id), onchange: (/** @type {Event} */ e) => {
          const on = /** @type {HTMLInputElement} */ (e.target).checked;
          const next = [...via].filter((v) => v !== id);
          put({ entry_via: on ? [...next, id] : next });
        } }), ` ${id}${entries.some((o) => o.id === id) ? '' : ' (missing)'} `)),
        entries.length || via.size ? null : 'no doors or passages yet'),
      h('button', { type: 'button', onclick: () => { this.selected = null; this.apply({ type: 'remove-zone', id: zone.id }); } }, 'Delete zone'));
  }
}

/** A zone with the options its type needs, at their defaults. @param {ZoneDef} zone @returns {ZoneDef} */
export function withTypeOptions(zone) {
  const area = zone.area ?? [];
  const base = { id: zone.id, name: zone.name, type: zone.type, area, ...(zone.entry_via?.length ? { entry_via: zone.entry_via } : {}) };
  switch (zone.type) {
    case 'open': return { ...base, talk_radius: 3 };
    case 'meeting_room': return { ...base, sfu_threshold: 4 };
    // The podium starts as the zone's first row; the options say how many speak.
    case 'stage': return { ...base, podium: area[0] ? [{ x: area[0].x, y: area[0].y, w: area[0].w ?? 1, h: 1 }] : [], max_speakers: 4 };
    case 'private': return { ...base, capacity: 4, lockable: true };
    default: return base;
  }
}

/** A small label on the map. @param {CanvasRenderingContext2D} ctx @param {string} text @param {number} x @param {number} y */
function label(ctx, text, x, y) {
  ctx.font = '11px system-ui, sans-serif';
  const width = ctx.measureText(text).width + 8;
  ctx.fillStyle = 'rgba(15, 18, 28, 0.8)';
  ctx.fillRect(x - width / 2, y - 8, width, 15);
  ctx.fillStyle = '#fff';
  ctx.textAlign = 'center';
  ctx.fillText(text, x, y + 3);
}
