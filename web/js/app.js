// The Isoplane browser client's session: joins a world, routes the server's messages to
// the local avatar (prediction.js), everyone else (remote.js), the media plan (media.js),
// the HUD (hud.js) and, for admins, their panel, and runs the frame loop.
//
// With `?debug=1` it also loads debug.js, the view of its state that the browser tests
// (and curious people) read as `window.isoplane`; ordinary pages carry none of it.

import { AdminPanel } from './admin.js';
import { $, endedText, Hud } from './hud.js';
import { Media } from './media.js';
import { Connection } from './net.js';
import { keyDirection, LocalAvatar } from './prediction.js';
import { RemoteAvatars } from './remote.js';
import { Renderer } from './render.js';
import { Availability } from './status.js';
import { SUBTILE, World } from './world.js';

/** @typedef {import('./hud.js').Moderated} Moderated */
/** @typedef {import('./remote.js').AvatarInfo} AvatarInfo */

/**
 * While nothing on screen changes, a frame is drawn this often at most (a few a second,
 * so a still page costs little and anything missed shows soon).
 */
const STILL_FRAME_MS = 250;

/**
 * What a frame would show, as a string: the same string means the same picture (positions
 * to a thousandth of a tile, well under a pixel).
 * @param {import('./render.js').DrawnAvatar[]} drawn @param {{x: number, y: number}} camera
 * @param {{x: number, y: number} | null} target @param {HTMLCanvasElement} canvas
 */
function sceneOf(drawn, camera, target, canvas) {
  const avatars = drawn.map((a) => `${a.avatar}:${a.x.toFixed(3)},${a.y.toFixed(3)},${a.facing},${a.state},${a.status},${a.speaking}`);
  const at = (/** @type {{x: number, y: number} | null} */ p) => (p ? `${p.x.toFixed(3)},${p.y.toFixed(3)}` : '-');
  return `${canvas.width}x${canvas.height}|${at(camera)}|${at(target)}|${avatars.join(';')}`;
}

async function devToken(name) {
  const stored = sessionStorage.getItem('isoplane-token');
  if (stored) return stored;
  const response = await fetch(`/v1/dev/token?name=${encodeURIComponent(name)}`);
  if (!response.ok) throw new Error('this server does not hand out development tokens: open the link your workspace gave you');
  const { token } = await response.json();
  sessionStorage.setItem('isoplane-token', token);
  return token;
}

/** @param {string} src */
function loadImage(src) {
  return new Promise((resolve, reject) => {
    const image = new Image();
    image.onload = () => resolve(image);
    image.onerror = () => reject(new Error(`cannot load ${src}`));
    image.src = src;
  });
}

export class App {
  /** @param {string} token @param {string} worldName */
  constructor(token, worldName) {
    const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
    this.connection = new Connection(`${scheme}://${location.host}/v1/ws`, token, worldName);
    /** @type {World | null} */
    this.world = null;
    /** @type {Renderer | null} */
    this.renderer = null;
    this.self = 0;
    this.name = '';
    this.user = '';
    this.avatar = new LocalAvatar();
    this.others = new RemoteAvatars();
    this.hud = new Hud();
    /** @type {Set<string>} */
    this.keys = new Set();
    this.zone = { id: '', name: '', type: '' };
    /** Set by a snapshot: until then our position is unknown and nothing is sent. */
    this.joined = false;
    this.media = new Media(this.connection, $('tiles'), (avatar) => this.others.name(avatar) ?? `#${avatar}`);
    this.availability = new Availability(
      (status) => this.connection.send({ type: 'set_status', status }),
      /** @type {HTMLSelectElement} */ ($('my-status')),
    );
    /** Whether we are an admin of the workspace. */
    this.admin = false;
    /** Kicked or banned: the page says why and does not reconnect. */
    this.ended = false;
    /** The last frame drawn: what it showed and when (see STILL_FRAME_MS). */
    this.lastFrame = { scene: '', at: 0 };
    this.panel = new AdminPanel(this.connection, $('admin-panel'), /** @type {HTMLButtonElement} */ ($('admin-toggle')), () => ({
      world: this.world?.file ?? null, worldName: this.connection.world, user: this.user,
    }));
    this.connection.addEventListener('message', (e) => this.onMessage(/** @type {CustomEvent} */ (e).detail));
    this.connection.addEventListener('presence', (e) => this.others.applyPresence(/** @type {CustomEvent} */ (e).detail.entries));
    this.connection.addEventListener('status', (e) => {
      const { status, detail } = /** @type {CustomEvent} */ (e).detail;
      this.hud.status(status, detail);
      if (status !== 'connected') this.joined = false;
      if (status === 'disconnected') {
        // For good: nobody is in the world with us any more.
        this.media.stop();
        this.others.clear();
        this.avatar.stop();
        this.panel.setAdmin(false);
        this.hud.topology('none');
      }
    });
    $('rejoin').addEventListener('click', () => {
      this.hud.hideEnded();
      this.ended = false;
      this.connection.start();
    });
  }

  async start() {
    this.connection.start();
    this.bindInput();
    this.availability.watch();
    this.media.start().then((ok) => {
      this.hud.mediaState(ok ? '' : 'no camera or microphone: you can still see and hear others');
      this.listDevices();
    });
    let last = performance.now();
    const frame = (/** @type {number} */ now) => {
      this.tick(Math.min(0.1, (now - last) / 1000), now);
      last = now;
      requestAnimationFrame(frame);
    };
    requestAnimationFrame(frame);
  }

  /** @param {any} message */
  async onMessage(message) {
    switch (message.type) {
      case 'welcome':
        // A new session (not a resumed one) numbers avatars anew: connections and SFU
        // sessions made under the old numbers mean nothing now; the next plan makes them again.
        if (!message.resumed) this.media.stop();
        this.self = message.avatar;
        this.ended = false;
        this.setAdmin(Boolean(message.admin));
        if (!this.world) await this.loadWorld(message.world.url);
        break;
      case 'role_changed':
        this.setAdmin(Boolean(message.admin));
        this.hud.moderationLine(message.admin ? 'You are now an admin of this workspace.' : 'You are no longer an admin of this workspace.');
        break;
      case 'notice': {
        const zone = message.zone && (this.world?.zones.find((z) => z.id === message.zone)?.name ?? message.zone);
        this.hud.showNotice(message, zone);
        break;
      }
      case 'moderated':
        this.onModerated(message);
        break;
      case 'snapshot': {
        const you = message.you;
        this.joined = true;
        this.name = you.name;
        this.user = you.user;
        this.avatar.place({ x: you.position.x, y: you.position.y, facing: you.facing, state: you.state });
        this.availability.confirmed(you.status ?? 'available');
        this.zone = message.zone;
        this.others.clear();
        for (const avatar of message.avatars) this.addOther(avatar);
        this.hud.zone(message.zone);
        break;
      }
      case 'avatar_entered':
        this.addOther(message.avatar);
        break;
      case 'avatar_left':
        this.others.remove(message.avatar);
        break;
      case 'status_changed':
        this.others.setStatus(message.avatar, message.status);
        break;
      case 'correction': {
        // Walk on from where the server says we are (once).
        const goal = this.avatar.correct(message, performance.now());
        if (goal) this.walkTo(goal.x, goal.y);
        if (message.reason === 'zone_locked') this.hud.say('This room is locked.');
        if (message.reason === 'zone_full') this.hud.say('This room is full.');
        break;
      }
      case 'media':
        this.media.applyPlan(message.plan);
        this.hud.muteButtons(this.media.adminMuted, this.media.userOff);
        this.hud.describeMute(this.media.adminMuted);
        this.hud.topology(message.plan.topology === 'sfu' ? (message.plan.sfu ? 'SFU' : 'SFU (this server has none)') : message.plan.topology);
        break;
      case 'signal':
        await this.media.onSignal(message.from, message.kind, message.data);
        break;
      case 'error':
        if (message.code === 'kicked' || message.code === 'banned') {
          // Said already if a `moderated` came first; a refused join (banned) says it here.
          if (!this.ended) this.end(message.code, message.message);
        } else {
          this.hud.say(message.message);
        }
        break;
      case 'reconnect':
        this.hud.say('The server is restarting; reconnecting…');
        break;
    }
  }

  /** @param {boolean} admin */
  setAdmin(admin) {
    this.admin = admin;
    this.panel.setAdmin(admin);
  }

  /** @param {Moderated} message */
  onModerated(message) {
    this.hud.moderated(message, this.media.adminMuted);
    switch (message.action) {
      case 'kicked':
      case 'banned':
        this.end(message.action, endedText(message));
        break;
      case 'moved':
      case 'meeting_ended':
        this.avatar.hold(performance.now());
        break;
    }
  }

  /** Kicked or banned: the connection is closing for good. @param {string} code @param {string} text */
  end(code, text) {
    this.ended = true;
    this.hud.showEnded(code, text);
  }

  /** @param {AvatarInfo} avatar */
  addOther(avatar) {
    if (avatar.avatar !== this.self) this.others.add(avatar);
  }

  /** @param {string} url */
  async loadWorld(url) {
    const file = await (await fetch(url)).json();
    this.world = new World(file);
    /** @type {Map<string, HTMLImageElement>} */
    const images = new Map();
    for (const set of file.tilesets) {
      try {
        images.set(set.image, /** @type {HTMLImageElement} */ (await loadImage(`/assets/${set.image}`)));
      } catch (error) {
        console.warn(error);
      }
    }
    this.renderer = new Renderer(/** @type {HTMLCanvasElement} */ ($('world')), this.world, images);
    this.hud.worldName(file.name);
  }

  bindInput() {
    const canvas = /** @type {HTMLCanvasElement} */ ($('world'));
    window.addEventListener('resize', () => this.renderer?.resize());
    window.addEventListener('keydown', (e) => {
      if (e.target instanceof HTMLInputElement || e.target instanceof HTMLSelectElement || e.target instanceof HTMLTextAreaElement) return;
      this.keys.add(e.key.toLowerCase());
      if (e.key.toLowerCase() === 'e' && this.world) this.avatar.toggleSit(this.world);
    });
    window.addEventListener('keyup', (e) => this.keys.delete(e.key.toLowerCase()));
    canvas.addEventListener('click', (e) => {
      if (!this.renderer || !this.world) return;
      const rect = canvas.getBoundingClientRect();
      const point = this.renderer.pick(e.clientX - rect.left, e.clientY - rect.top);
      this.walkTo(Math.floor(point.x), Math.floor(point.y));
    });
    $('mute-audio').addEventListener('click', (e) => this.toggle(/** @type {HTMLButtonElement} */ (e.target), 'audio'));
    $('mute-video').addEventListener('click', (e) => this.toggle(/** @type {HTMLButtonElement} */ (e.target), 'video'));
    for (const id of ['audio-device', 'video-device']) {
      $(id).addEventListener('change', () =>
        this.media.start(/** @type {HTMLSelectElement} */ ($('audio-device')).value, /** @type {HTMLSelectElement} */ ($('video-device')).value),
      );
    }
  }

  /** Walks to tile (x, y) around walls; false if there is no way. @param {number} x @param {number} y */
  walkTo(x, y) {
    if (!this.world || !this.joined) return false;
    const found = this.avatar.walkTo(this.world, x, y);
    this.hud.say(found ? '' : 'There is no way there.');
    return found;
  }

  /** @param {HTMLButtonElement} button @param {'audio' | 'video'} kind */
  toggle(button, kind) {
    // Only a plan lifts an admin's mute.
    if (this.media.adminMuted[kind]) return;
    const off = !this.media.userOff[kind];
    button.setAttribute('aria-pressed', String(off));
    this.media.setEnabled(kind, !off);
  }

  async listDevices() {
    const devices = await navigator.mediaDevices.enumerateDevices().catch(() => []);
    for (const [kind, id] of [['audioinput', 'audio-device'], ['videoinput', 'video-device']]) {
      const select = /** @type {HTMLSelectElement} */ ($(id));
      select.replaceChildren(
        ...devices.filter((d) => d.kind === kind).map((d, i) => new Option(d.label || `${kind} ${i + 1}`, d.deviceId)),
      );
    }
  }

  /** @param {number} dt seconds @param {number} now */
  tick(dt, now) {
    if (!this.world || !this.renderer) return;
    const avatar = this.avatar;
    if (this.joined && avatar.free(now)) {
      avatar.walk(this.world, keyDirection(this.keys, this.world.file.grid.orientation === 'isometric'), dt);
      const move = avatar.takeMove(now);
      if (move) this.connection.sendMove(move.x, move.y, move.facing, move.state);
    }
    // Corrections ease out within two frames; remote avatars glide toward their targets.
    avatar.settle();
    this.others.glide(dt);
    const drawnAt = avatar.drawn();
    const me = { x: drawnAt.x / SUBTILE, y: drawnAt.y / SUBTILE };
    const camera = this.renderer.camera;
    camera.x += (me.x - camera.x) * Math.min(1, dt * 8 + (camera.x ? 0 : 1));
    camera.y += (me.y - camera.y) * Math.min(1, dt * 8 + (camera.y ? 0 : 1));
    const drawn = this.others.toDraw(this.media.speaking);
    drawn.push({
      avatar: this.self, name: this.name, user: this.user, x: me.x, y: me.y, facing: avatar.facing, state: avatar.state,
      status: this.availability.status, self: true, speaking: false,
    });
    const path = avatar.path;
    const target = path.length ? { x: path[path.length - 1].x / SUBTILE, y: path[path.length - 1].y / SUBTILE } : null;
    // The browser stops frames in a hidden tab by itself; a visible page where nothing
    // moves is drawn a few times a second instead of at the display's rate.
    const scene = sceneOf(drawn, camera, target, this.renderer.canvas);
    if (scene !== this.lastFrame.scene || now - this.lastFrame.at >= STILL_FRAME_MS) {
      this.renderer.draw(drawn, target);
      this.lastFrame = { scene, at: now };
    }
    const zone = this.world.zoneAt(avatar.position);
    this.hud.standingIn(zone ? `${zone.name}` : '');
  }
}

async function main() {
  const params = new URLSearchParams(location.search);
  const world = params.get('world') ?? 'demo';
  const name = params.get('name') ?? localStorage.getItem('isoplane-name') ?? `Guest ${Math.floor(Math.random() * 1000)}`;
  const token = params.get('token') ?? (await devToken(name));
  const app = new App(token, world);
  // Tests and curious people look inside with ?debug=1; nobody else loads the hook.
  if (params.get('debug') === '1') (await import('./debug.js')).expose(app);
  await app.start();
}

main().catch((error) => {
  $('notice').textContent = String(error.message ?? error);
});
