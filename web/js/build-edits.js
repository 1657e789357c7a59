// Build mode's edits of a world file, as data: each edit says what it does in terms that
// still mean something on another version of the world (tiles by coordinates, zones,
// objects and spawn points by ID, tile pictures by their tileset's image and index), so
// the same edits can be replayed on a newer version someone else published (a rebase).
//
// An `EditSession` keeps the version it started from and the edits made since; the
// world being edited is always the base with the edits applied, so undo is "one edit
// fewer" and redo "one more". Nothing here touches the DOM or the network.

/** @typedef {import('./world.js').WorldFile} WorldFile */
/** @typedef {import('./world.js').Rect} Rect */
/** @typedef {import('./world.js').ZoneDef} ZoneDef */
/** @typedef {import('./world.js').ObjectDef} ObjectDef */
/** @typedef {{id: string, x: number, y: number, facing: string}} SpawnDef */
/** @typedef {{id: string, area: Rect[], world: string, spawn?: string}} ExitDef */
/** A tile picture: picture `index` of the tileset whose image is `image`. @typedef {{image: string, index: number}} Picture */
/** A grid line of one tile's edge: the north edge of tile (x, y), or its west edge. @typedef {{x: number, y: number, side: 'north' | 'west'}} Edge */

/**
 * @typedef {{type: 'tile', layer: string, x: number, y: number, picture: Picture | null}
 *   | {type: 'block', x: number, y: number, blocked: boolean}
 *   | {type: 'height', x: number, y: number, level: number}
 *   | {type: 'wall', edge: Edge, on: boolean}
 *   | {type: 'levels', levels: number}
 *   | {type: 'zone', zone: ZoneDef}
 *   | {type: 'remove-zone', id: string}
 *   | {type: 'object', object: ObjectDef}
 *   | {type: 'remove-object', id: string}
 *   | {type: 'spawn', spawn: SpawnDef}
 *   | {type: 'remove-spawn', id: string}
 *   | {type: 'exit', exit: ExitDef}
 *   | {type: 'remove-exit', id: string}
 *   | {type: 'tileset', tileset: import('./world.js').TilesetDef}
 *   | {type: 'group', label: string, edits: Edit[]}} Edit
 */

/** Thrown by an edit that cannot apply to this world (replaying on a newer version). */
export class EditConflict extends Error {}

/** A deep copy of a world file. @param {WorldFile} file @returns {WorldFile} */
export function copyWorld(file) {
  return structuredClone(file);
}

/** Fills in what a world file may leave out, so edits find every part they change. @param {WorldFile} file */
function complete(file) {
  const { width, height } = file.grid;
  file.layers ??= [];
  file.tilesets ??= [];
  file.zones ??= [];
  file.objects ??= [];
  file.exits ??= [];
  file.collision ??= { rows: [], heights: [], walls: [] };
  file.collision.walls ??= [];
  if (!file.collision.rows?.length) file.collision.rows = Array.from({ length: height }, () => '.'.repeat(width));
  if (!file.collision.heights?.length) file.collision.heights = Array.from({ length: height }, () => '0'.repeat(width));
  return file;
}

/** @param {string} row @param {number} x @param {string} c */
function setChar(row, x, c) {
  return row.slice(0, x) + c + row.slice(x + 1);
}

/** @param {WorldFile} file @param {number} x @param {number} y */
function inGrid(file, x, y) {
  return Number.isInteger(x) && Number.isInteger(y) && x >= 0 && y >= 0 && x < file.grid.width && y < file.grid.height;
}

/** The GID of a picture in this world's tilesets. @param {WorldFile} file @param {Picture} picture */
export function gidOf(file, picture) {
  const set = file.tilesets.find((t) => t.image === picture.image);
  if (!set || picture.index < 0 || picture.index >= set.tile_count) throw new EditConflict(`the tileset of image ${picture.image.slice(0, 15)}… is not in this world`);
  return set.first_gid + picture.index;
}

/** The first GID after every tileset's range. @param {WorldFile} file */
export function nextGid(file) {
  return file.tilesets.reduce((next, t) => Math.max(next, t.first_gid + t.tile_count), 1);
}

/** Every unit wall edge of the world, as `x,y,side` keys. @param {WorldFile} file */
function wallEdges(file) {
  /** @type {Set<string>} */
  const edges = new Set();
  for (const { from: [x0, y0], to: [x1, y1] } of file.collision.walls) {
    if (x0 === x1) for (let y = Math.min(y0, y1); y < Math.max(y0, y1); y++) edges.add(`${x0},${y},west`);
    else for (let x = Math.min(x0, x1); x < Math.max(x0, x1); x++) edges.add(`${x},${y0},north`);
  }
  return edges;
}

/** Unit edges back to walls, runs along one grid line joined. @param {Set<string>} edges */
function wallsOf(edges) {
  const parsed = [...edges].map((key) => { const [x, y, side] = key.split(','); return { x: Number(x), y: Number(y), side }; });
  /** @type {{from: number[], to: number[]}[]} */
  const walls = [];
  const north = parsed.filter((e) => e.side === 'north').sort((a, b) => a.y - b.y || a.x - b.x);
  const west = parsed.filter((e) => e.side === 'west').sort((a, b) => a.x - b.x || a.y - b.y);
  for (const e of north) {
    const last = walls.at(-1);
    if (last && last.from[1] === e.y && last.to[1] === e.y && last.to[0] === e.x) last.to[0] = e.x + 1;
    else walls.push({ from: [e.x, e.y], to: [e.x + 1, e.y] });
  }
  const firstWest = walls.length;
  for (const e of west) {
    const last = walls.length > firstWest ? walls.at(-1) : undefined;
    if (last && last.from[0] === e.x && last.to[0] === e.x && last.to[1] === e.y) last.to[1] = e.y + 1;
    else walls.push({ from: [e.x, e.y], to: [e.x, e.y + 1] });
  }
  return walls;
}

/** @template {{id: string}} T @param {T[]} list @param {T} item */
function putById(list, item) {
  const at = list.findIndex((x) => x.id === item.id);
  if (at >= 0) list[at] = item;
  else list.push(item);
}

/** @template {{id: string}} T @param {T[]} list @param {string} id @param {string} what */
function removeById(list, id, what) {
  const at = list.findIndex((x) => x.id === id);
  if (at < 0) throw new EditConflict(`there is no ${what} "${id}" any more`);
  list.splice(at, 1);
}

/**
 * Applies one edit to `file` in place.
 * @param {WorldFile} file @param {Edit} edit
 */
export function applyEdit(file, edit) {
  complete(file);
  const { width } = file.grid;
  switch (edit.type) {
    case 'tile': {
      if (!inGrid(file, edit.x, edit.y)) throw new EditConflict(`tile (${edit.x}, ${edit.y}) is outside the grid`);
      let layer = file.layers.find((l) => l.name === edit.layer);
      if (!layer) {
        layer = { name: edit.layer, depth: 'below', opacity: 1, visible: true, tiles: new Array(width * file.grid.height).fill(0) };
        file.layers.push(layer);
      }
      layer.tiles[edit.y * width + edit.x] = edit.picture ? gidOf(file, edit.picture) : 0;
      break;
    }
    case 'block': {
      if (!inGrid(file, edit.x, edit.y)) throw new EditConflict(`tile (${edit.x}, ${edit.y}) is outside the grid`);
      const rows = file.collision.rows;
      rows[edit.y] = setChar(rows[edit.y], edit.x, edit.blocked ? '#' : '.');
      break;
    }
    case 'height': {
      if (!inGrid(file, edit.x, edit.y)) throw new EditConflict(`tile (${edit.x}, ${edit.y}) is outside the grid`);
      const heights = file.collision.heights;
      heights[edit.y] = setChar(heights[edit.y], edit.x, String(Math.max(0, Math.min(9, edit.level))));
      break;
    }
    case 'levels':
      file.grid.levels = Math.max(1, Math.min(10, edit.levels));
      break;
    case 'wall': {
      const { x, y, side } = edit.edge;
      const edges = wallEdges(file);
      const key = `${x},${y},${side}`;
      if (edit.on) edges.add(key);
      else edges.delete(key);
      file.collision.walls = wallsOf(edges);
      break;
    }
    case 'zone':
      putById(file.zones, structuredClone(edit.zone));
      break;
    case 'remove-zone':
      removeById(file.zones, edit.id, 'zone');
      break;
    case 'object':
      putById(file.objects, structuredClone(edit.object));
      break;
    case 'remove-object':
      // What named it (a zone's entry_via, a chain's requires) still does: the check
      // names each such fault where it is, rather than a zone silently losing its door.
      removeById(file.objects, edit.id, 'object');
      break;
    case 'spawn':
      putById(file.spawns, structuredClone(edit.spawn));
      break;
    case 'remove-spawn':
      removeById(file.spawns, edit.id, 'spawn point');
      break;
    case 'exit':
      putById(file.exits, structuredClone(edit.exit));
      break;
    case 'remove-exit':
      removeById(file.exits, edit.id, 'exit');
      break;
    case 'tileset': {
      if (file.tilesets.some((t) => t.image === edit.tileset.image)) break;
      let name = edit.tileset.name;
      for (let n = 2; file.tilesets.some((t) => t.name === name); n++) name = `${edit.tileset.name} ${n}`;
      file.tilesets.push({ ...edit.tileset, name, first_gid: nextGid(file) });
      break;
    }
    case 'group':
      for (const inner of edit.edits) applyEdit(file, inner);
      break;
  }
}

/** What an edit is, in a few words (undo and redo buttons, the rebase report). @param {Edit} edit @returns {string} */
export function describeEdit(edit) {
  switch (edit.type) {
    case 'tile': return edit.picture ? `paint (${edit.x}, ${edit.y})` : `clear (${edit.x}, ${edit.y})`;
    case 'block': return `${edit.blocked ? 'block' : 'unblock'} (${edit.x}, ${edit.y})`;
    case 'height': return `height ${edit.level} at (${edit.x}, ${edit.y})`;
    case 'levels': return `${edit.levels} height levels`;
    case 'wall': return `${edit.on ? 'wall' : 'no wall'} at (${edit.edge.x}, ${edit.edge.y})`;
    case 'zone': return `zone ${edit.zone.id}`;
    case 'remove-zone': return `remove zone ${edit.id}`;
    case 'object': return `${edit.object.kind} ${edit.object.id}`;
    case 'remove-object': return `remove ${edit.id}`;
    case 'spawn': return `spawn point ${edit.spawn.id}`;
    case 'remove-spawn': return `remove spawn point ${edit.id}`;
    case 'exit': return `exit ${edit.exit.id}`;
    case 'remove-exit': return `remove exit ${edit.id}`;
    case 'tileset': return `tileset ${edit.tileset.name}`;
    case 'group': return edit.label;
  }
}

/** An ID of the form `prefix-N` that `taken` does not hold. @param {string} prefix @param {Iterable<string>} taken */
export function freshId(prefix, taken) {
  const used = new Set(taken);
  for (let n = 1; ; n++) if (!used.has(`${prefix}-${n}`)) return `${prefix}-${n}`;
}

/** The rectangle spanned by two tiles (either corner first). @param {{x: number, y: number}} a @param {{x: number, y: number}} b @returns {Rect} */
export function rectBetween(a, b) {
  return { x: Math.min(a.x, b.x), y: Math.min(a.y, b.y), w: Math.abs(a.x - b.x) + 1, h: Math.abs(a.y - b.y) + 1 };
}

/** @param {Rect} r @param {number} x @param {number} y */
export function rectHas(r, x, y) {
  return x >= r.x && y >= r.y && x < r.x + (r.w ?? 1) && y < r.y + (r.h ?? 1);
}

/** Rectangles moved by (dx, dy). @param {Rect[]} area @param {number} dx @param {number} dy */
export function moveArea(area, dx, dy) {
  return area.map((r) => ({ ...r, x: r.x + dx, y: r.y + dy }));
}

/** A world file being edited from version `baseVersion` (0: never published). */
export class EditSession {
  /** @param {WorldFile} base @param {number} baseVersion */
  constructor(base, baseVersion) {
    this.base = complete(copyWorld(base));
    this.baseVersion = baseVersion;
    /** @type {Edit[]} */
    this.edits = [];
    /** @type {Edit[]} undone edits, the next to redo last */
    this.undone = [];
    this.file = copyWorld(this.base);
  }

  /** Applies and records an edit; a new edit forgets what was undone. @param {Edit} edit */
  apply(edit) {
    applyEdit(this.file, edit);
    this.record(edit);
  }

  /** Shows an edit without recording it (a stroke being drawn; `record` ends it). @param {Edit} edit */
  preview(edit) {
    applyEdit(this.file, edit);
  }

  /** Records an edit already shown with `preview`. @param {Edit} edit */
  record(edit) {
    this.edits.push(edit);
    this.undone = [];
  }

  get changed() {
    return this.edits.length > 0;
  }

  undo() {
    const edit = this.edits.pop();
    if (!edit) return null;
    this.undone.push(edit);
    this.file = this.replay(this.base, this.edits).file;
    return edit;
  }

  redo() {
    const edit = this.undone.pop();
    if (!edit) return null;
    applyEdit(this.file, edit);
    this.edits.push(edit);
    return edit;
  }

  /**
   * `edits` applied to a copy of `base`, skipping those that no longer apply.
   * @param {WorldFile} base @param {Edit[]} edits
   */
  replay(base, edits) {
    const file = complete(copyWorld(base));
    /** @type {{edit: Edit, why: string}[]} */
    const skipped = [];
    /** @type {Edit[]} */
    const kept = [];
    for (const edit of edits) {
      const before = copyWorld(file);
      try {
        applyEdit(file, edit);
        kept.push(edit);
      } catch (error) {
        if (!(error instanceof EditConflict)) throw error;
        // An edit that failed halfway (a group) leaves nothing behind.
        Object.assign(file, before);
        skipped.push({ edit, why: error.message });
      }
    }
    return { file, kept, skipped };
  }

  /**
   * Our edits on top of a newer version (someone else published meanwhile): the base
   * becomes that version; edits that no longer apply are dropped and returned.
   * @param {WorldFile} base @param {number} baseVersion
   */
  rebase(base, baseVersion) {
    const { file, kept, skipped } = this.replay(base, this.edits);
    this.base = complete(copyWorld(base));
    this.baseVersion = baseVersion;
    this.edits = kept;
    this.undone = [];
    this.file = file;
    return skipped;
  }

  /** The edits were published as version `version`: they are the base now. @param {number} version */
  published(version) {
    this.base = copyWorld(this.file);
    this.baseVersion = version;
    this.edits = [];
    this.undone = [];
  }
}
