// Draws the world on a canvas: floors once into an offscreen layer, then every frame
// the depth-sorted walls, furniture and avatars, and the layers above them.
//
// Tile pictures sit with their bottom centre on the bottom corner of the tile's diamond
// (isometric) or their bottom-left on the tile's bottom-left (orthogonal), as in Tiled.

import { Projection, SUBTILE, World } from './world.js';

const FLIP_H = 0x80000000;
const FLIP_V = 0x40000000;
const GID_MASK = 0x0fffffff;
const WALL_HEIGHT = 28;
/** How far the map zooms out and in. */
const MIN_ZOOM = 0.5;
const MAX_ZOOM = 2.5;

/**
 * @typedef {{avatar: number, name: string, user: string, x: number, y: number,
 *   facing: string, state: string, status?: string, self: boolean, speaking?: boolean}} DrawnAvatar
 */

/** @param {string} text */
function hue(text) {
  let h = 0;
  for (const c of text) h = (h * 31 + c.charCodeAt(0)) % 360;
  return h;
}

/** The colour of each status's dot beside a name. */
const STATUS_COLOURS = /** @type {Record<string, string>} */ ({
  available: '#3ddc84', busy: '#ff9f43', away: '#ffcc4d', do_not_disturb: '#ff5c5c',
});

/**
 * A status dot centred at (x, y); do-not-disturb carries a bar, so it does not rest on
 * colour alone.
 * @param {CanvasRenderingContext2D} ctx @param {string} status @param {number} x @param {number} y
 */
function drawStatus(ctx, status, x, y) {
  ctx.beginPath();
  ctx.arc(x, y, 4.5, 0, Math.PI * 2);
  ctx.fillStyle = STATUS_COLOURS[status] ?? STATUS_COLOURS.available;
  ctx.fill();
  ctx.strokeStyle = 'rgba(20, 24, 36, 0.9)';
  ctx.stroke();
  if (status === 'do_not_disturb') {
    ctx.fillStyle = '#fff';
    ctx.fillRect(x - 2.5, y - 0.75, 5, 1.5);
  }
}

export class Renderer {
  /**
   * @param {HTMLCanvasElement} canvas @param {World} world
   * @param {Map<string, HTMLImageElement>} images tileset images by content ID
   */
  constructor(canvas, world, images) {
    this.canvas = canvas;
    this.world = world;
    this.projection = new Projection(world.file.grid);
    this.images = images;
    /** @type {CanvasRenderingContext2D} */
    this.ctx = /** @type {CanvasRenderingContext2D} */ (canvas.getContext('2d'));
    this.dpr = 1;
    this.offset = { x: 0, y: 0 };
    this.camera = { x: 0, y: 0 };
    /** Scale of the map (pinch or wheel), and how far the view is dragged off the camera (CSS pixels). */
    this.zoom = 1;
    this.pan = { x: 0, y: 0 };
    /** Where the camera sits off the canvas's centre (CSS pixels): the middle of the part a page beside the map leaves free. */
    this.shift = { x: 0, y: 0 };
    /** Frames drawn so far. */
    this.frames = 0;
    /** Drawn over everything (build mode's grid and outlines). @type {((ctx: CanvasRenderingContext2D, renderer: Renderer, dx: number, dy: number) => void) | null} */
    this.overlay = null;
    this.margin = 96;
    /** Measured label widths: measuring text every frame is costly with a crowd. @type {Map<string, number>} */
    this.nameWidths = new Map();
    this.floor = this.renderStatic('below');
    this.roof = this.renderStatic('above');
    this.sortedTiles = this.collectSorted();
    this.resize();
  }

  /** Takes the view of the renderer this one replaces (a new version of the world). @param {Renderer} before */
  keepView(before) {
    this.overlay = before.overlay;
    this.camera = { ...before.camera };
    this.zoom = before.zoom;
    this.pan = { ...before.pan };
    this.shift = { ...before.shift };
  }

  resize() {
    this.dpr = window.devicePixelRatio || 1;
    const { clientWidth, clientHeight } = this.canvas;
    this.canvas.width = Math.round(clientWidth * this.dpr);
    this.canvas.height = Math.round(clientHeight * this.dpr);
  }

  /** @param {number} gid */
  tileSource(gid) {
    const id = gid & GID_MASK;
    const set = this.world.file.tilesets.find((s) => id >= s.first_gid && id < s.first_gid + s.tile_count);
    if (!set) return null;
    const image = this.images.get(set.image);
    if (!image) return null;
    const index = id - set.first_gid;
    return { image, sx: (index % set.columns) * set.tile_width, sy: Math.floor(index / set.columns) * set.tile_height, set };
  }

  /**
   * Draws one tile picture for tile (x, y) on ctx, in map pixels.
   * @param {CanvasRenderingContext2D} ctx @param {number} gid @param {number} x @param {number} y @param {number} dx @param {number} dy
   */
  drawTile(ctx, gid, x, y, dx, dy) {
    const source = this.tileSource(gid);
    if (!source) return;
    const { image, sx, sy, set } = source;
    const level = this.world.heights[y * this.world.width + x];
    const p = this.projection;
    const anchor = p.isometric ? p.toScreen(x + 1, y + 1, level) : p.toScreen(x, y + 1, level);
    const left = (p.isometric ? anchor.x - set.tile_width / 2 : anchor.x) + dx;
    const top = anchor.y - set.tile_height + dy;
    if (gid & (FLIP_H | FLIP_V)) {
      ctx.save();
      ctx.translate(left + set.tile_width / 2, top + set.tile_height / 2);
      ctx.scale(gid & FLIP_H ? -1 : 1, gid & FLIP_V ? -1 : 1);
      ctx.drawImage(image, sx, sy, set.tile_width, set.tile_height, -set.tile_width / 2, -set.tile_height / 2, set.tile_width, set.tile_height);
      ctx.restore();
    } else {
      ctx.drawImage(image, sx, sy, set.tile_width, set.tile_height, left, top, set.tile_width, set.tile_height);
    }
  }

  /** Pre-renders the layers of one depth into an offscreen canvas. @param {string} depth */
  renderStatic(depth) {
    const layers = this.world.file.layers.filter((l) => l.visible && l.depth === depth);
    if (layers.length === 0) return null;
    const canvas = document.createElement('canvas');
    const scale = Math.min(2, window.devicePixelRatio || 1);
    canvas.width = Math.ceil((this.projection.mapWidth + 2 * this.margin) * scale);
    canvas.height = Math.ceil((this.projection.mapHeight + 2 * this.margin) * scale);
    const ctx = /** @type {CanvasRenderingContext2D} */ (canvas.getContext('2d'));
    ctx.scale(scale, scale);
    const { width } = this.world;
    for (const layer of layers) {
      ctx.globalAlpha = layer.opacity;
      for (const [x, y] of this.drawingOrder()) {
        const gid = layer.tiles[y * width + x];
        if (gid) this.drawTile(ctx, gid, x, y, this.margin, this.margin);
      }
    }
    return { canvas, scale };
  }

  /** Every tile, back to front, so taller pictures overlap correctly. */
  drawingOrder() {
    const { width, height } = this.world;
    /** @type {[number, number][]} */
    const order = [];
    if (this.projection.isometric) {
      for (let sum = 0; sum < width + height - 1; sum++) {
        for (let x = Math.max(0, sum - height + 1); x <= Math.min(sum, width - 1); x++) order.push([x, sum - x]);
      }
    } else {
      for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) order.push([x, y]);
    }
    return order;
  }

  /** Tiles of sorted layers and thin walls, each with its depth key. */
  collectSorted() {
    const { width } = this.world;
    /** @type {{depth: number, draw: (ctx: CanvasRenderingContext2D, dx: number, dy: number) => void}[]} */
    const items = [];
    for (const layer of this.world.file.layers.filter((l) => l.visible && l.depth === 'sorted')) {
      layer.tiles.forEach((gid, index) => {
        if (!gid) return;
        const x = index % width;
        const y = Math.floor(index / width);
        items.push({ depth: this.projection.depth(x + 1, y + 1) - 0.01, draw: (ctx, dx, dy) => this.drawTile(ctx, gid, x, y, dx, dy) });
      });
    }
    for (const wall of this.world.file.collision.walls) {
      const [x0, y0] = wall.from;
      const [x1, y1] = wall.to;
      const steps = Math.max(Math.abs(x1 - x0), Math.abs(y1 - y0));
      for (let i = 0; i < steps; i++) {
        const a = { x: x0 + Math.sign(x1 - x0) * i, y: y0 + Math.sign(y1 - y0) * i };
        const b = { x: a.x + Math.sign(x1 - x0), y: a.y + Math.sign(y1 - y0) };
        items.push({ depth: this.projection.depth((a.x + b.x) / 2, (a.y + b.y) / 2), draw: (ctx, dx, dy) => this.drawWall(ctx, a, b, dx, dy) });
      }
    }
    return items;
  }

  /** @param {CanvasRenderingContext2D} ctx @param {{x: number, y: number}} a @param {{x: number, y: number}} b @param {number} dx @param {number} dy */
  drawWall(ctx, a, b, dx, dy) {
    const p = this.projection;
    const sa = p.toScreen(a.x, a.y);
    const sb = p.toScreen(b.x, b.y);
    ctx.beginPath();
    ctx.moveTo(sa.x + dx, sa.y + dy);
    ctx.lineTo(sb.x + dx, sb.y + dy);
    ctx.lineTo(sb.x + dx, sb.y + dy - WALL_HEIGHT);
    ctx.lineTo(sa.x + dx, sa.y + dy - WALL_HEIGHT);
    ctx.closePath();
    ctx.fillStyle = 'rgba(120, 130, 150, 0.85)';
    ctx.fill();
    ctx.strokeStyle = 'rgba(60, 64, 80, 0.9)';
    ctx.stroke();
  }

  /** @param {CanvasRenderingContext2D} ctx @param {DrawnAvatar} avatar @param {number} dx @param {number} dy */
  drawAvatar(ctx, avatar, dx, dy) {
    const tile = { x: Math.floor(avatar.x), y: Math.floor(avatar.y) };
    const level = this.world.inGrid(tile.x, tile.y) ? this.world.heights[tile.y * this.world.width + tile.x] : 0;
    const s = this.projection.toScreen(avatar.x, avatar.y, level);
    const x = s.x + dx;
    const y = s.y + dy;
    const sitting = avatar.state === 'sitting';
    const body = sitting ? 14 : 22;
    const colour = `hsl(${hue(avatar.user)}, 60%, 55%)`;
    ctx.fillStyle = 'rgba(0, 0, 0, 0.25)';
    ctx.beginPath();
    ctx.ellipse(x, y, 12, 6, 0, 0, Math.PI * 2);
    ctx.fill();
    ctx.fillStyle = colour;
    ctx.beginPath();
    ctx.roundRect(x - 9, y - body, 18, body, 6);
    ctx.fill();
    ctx.beginPath();
    ctx.arc(x, y - body - 8, 9, 0, Math.PI * 2);
    ctx.fillStyle = '#f1d3b3';
    ctx.fill();
    if (avatar.self || avatar.speaking) {
      ctx.strokeStyle = avatar.speaking ? '#3ddc84' : '#ffffff';
      ctx.lineWidth = 2;
      ctx.stroke();
      ctx.lineWidth = 1;
    }
    ctx.font = '12px system-ui, sans-serif';
    let width = this.nameWidths.get(avatar.name);
    if (width === undefined) {
      width = ctx.measureText(avatar.name).width + 10;
      this.nameWidths.set(avatar.name, width);
    }
    ctx.fillStyle = 'rgba(20, 24, 36, 0.75)';
    ctx.beginPath();
    ctx.roundRect(x - width / 2, y - body - 36, width, 17, 8);
    ctx.fill();
    ctx.fillStyle = '#fff';
    ctx.textAlign = 'center';
    ctx.fillText(avatar.name, x, y - body - 23.5);
    drawStatus(ctx, avatar.status ?? 'available', x - width / 2 - 5, y - body - 27.5);
  }

  /**
   * Zooms by `factor` keeping the map point under (x, y) (CSS pixels) where it is.
   * @param {number} factor @param {number} x @param {number} y
   */
  zoomAt(factor, x, y) {
    const zoom = Math.min(MAX_ZOOM, Math.max(MIN_ZOOM, this.zoom * factor));
    const applied = zoom / this.zoom;
    // Where the camera is drawn: the canvas's centre, moved aside for a page beside the map.
    const cx = this.canvas.clientWidth / 2 + this.shift.x;
    const cy = this.canvas.clientHeight / 2 + this.shift.y;
    this.pan = { x: x - cx - applied * (x - cx - this.pan.x), y: y - cy - applied * (y - cy - this.pan.y) };
    this.zoom = zoom;
  }

  /** @param {number} dx @param {number} dy CSS pixels */
  panBy(dx, dy) {
    this.pan = { x: this.pan.x + dx, y: this.pan.y + dy };
  }

  /**
   * Ends a drag: the view's centre becomes the camera's position (tile units), from where
   * the camera eases back onto our avatar.
   */
  recentre() {
    if (!this.pan.x && !this.pan.y) return;
    const origin = this.projection.toTile(0, 0);
    const moved = this.projection.toTile(-this.pan.x / this.zoom, -this.pan.y / this.zoom);
    this.camera = { x: this.camera.x + moved.x - origin.x, y: this.camera.y + moved.y - origin.y };
    this.pan = { x: 0, y: 0 };
  }

  /**
   * Draws a frame centred on the camera (tile coordinates), zoomed and panned.
   * @param {DrawnAvatar[]} avatars @param {{x: number, y: number} | null} target where a click-to-walk goes
   * @param {{x: number, y: number}[]} [route] a way to show (tile units), e.g. to a person located
   */
  draw(avatars, target, route = []) {
    this.frames += 1;
    const ctx = this.ctx;
    const scale = this.dpr * this.zoom;
    const width = this.canvas.width / scale;
    const height = this.canvas.height / scale;
    ctx.setTransform(scale, 0, 0, scale, 0, 0);
    ctx.fillStyle = '#1b1f2a';
    ctx.fillRect(0, 0, width, height);
    const centre = this.projection.toScreen(this.camera.x, this.camera.y);
    // Whole device pixels keep tiles crisp.
    const dx = Math.round((width / 2 - centre.x + (this.pan.x + this.shift.x) / this.zoom) * scale) / scale;
    const dy = Math.round((height / 2 - centre.y + (this.pan.y + this.shift.y) / this.zoom) * scale) / scale;
    this.offset = { x: dx, y: dy };
    if (this.floor) {
      const { canvas, scale: floorScale } = this.floor;
      ctx.drawImage(canvas, dx - this.margin, dy - this.margin, canvas.width / floorScale, canvas.height / floorScale);
    }
    if (route.length > 1) this.drawRoute(ctx, route, dx, dy);
    if (target) {
      const t = this.projection.toScreen(target.x, target.y);
      ctx.strokeStyle = 'rgba(255, 255, 255, 0.7)';
      ctx.beginPath();
      ctx.ellipse(t.x + dx, t.y + dy, 10, 5, 0, 0, Math.PI * 2);
      ctx.stroke();
    }
    const items = this.sortedTiles.slice();
    for (const avatar of avatars) {
      items.push({ depth: this.projection.depth(avatar.x, avatar.y), draw: (c, x, y) => this.drawAvatar(c, avatar, x, y) });
    }
    items.sort((a, b) => a.depth - b.depth);
    for (const item of items) item.draw(ctx, dx, dy);
    if (this.roof) {
      ctx.drawImage(this.roof.canvas, dx - this.margin, dy - this.margin, this.roof.canvas.width / this.roof.scale, this.roof.canvas.height / this.roof.scale);
    }
    this.overlay?.(ctx, this, dx, dy);
  }

  /** Pans the view so that tile point (x, y) is in its middle (the camera stays on us). @param {number} x @param {number} y */
  lookAt(x, y) {
    const camera = this.projection.toScreen(this.camera.x, this.camera.y);
    const point = this.projection.toScreen(x, y);
    this.pan = { x: (camera.x - point.x) * this.zoom, y: (camera.y - point.y) * this.zoom };
  }

  /**
   * A dashed line on the floor along `route`, ending in a ring.
   * @param {CanvasRenderingContext2D} ctx @param {{x: number, y: number}[]} route @param {number} dx @param {number} dy
   */
  drawRoute(ctx, route, dx, dy) {
    ctx.save();
    ctx.strokeStyle = 'rgba(108, 140, 255, 0.9)';
    ctx.lineWidth = 3;
    ctx.setLineDash([8, 6]);
    ctx.beginPath();
    route.forEach((point, i) => {
      const s = this.projection.toScreen(point.x, point.y);
      if (i === 0) ctx.moveTo(s.x + dx, s.y + dy);
      else ctx.lineTo(s.x + dx, s.y + dy);
    });
    ctx.stroke();
    const end = this.projection.toScreen(route[route.length - 1].x, route[route.length - 1].y);
    ctx.setLineDash([]);
    ctx.beginPath();
    ctx.ellipse(end.x + dx, end.y + dy, 14, 7, 0, 0, Math.PI * 2);
    ctx.stroke();
    ctx.restore();
  }

  /** The tile point under a point of the canvas (CSS pixels). @param {number} cx @param {number} cy */
  pick(cx, cy) {
    return this.projection.toTile(cx / this.zoom - this.offset.x, cy / this.zoom - this.offset.y);
  }
}

/** Sub-tile units to tile units. @param {number} v */
export const tiles = (v) => v / SUBTILE;
