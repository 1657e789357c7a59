// The Isoplane browser client: joins a world, walks the local avatar optimistically,
// reconciles server corrections, interpolates everyone else, and follows the media plan.
// It also shows what admins do (notices, mutes, moves, kicks) and, to admins, their panel.

import { AdminPanel } from './admin.js';
import { Media } from './media.js';
import { Connection } from './net.js';
import { Renderer } from './render.js';
import { findPath } from './walk.js';
import { SUBTILE, World } from './world.js';

/** @typedef {import('./world.js').Point} Point */
/** @typedef {{avatar: number, user: string, name: string, position: Point, facing: string, state: string}} AvatarInfo */

/** Walking speed in tiles per second, under the server's limit. */
const SPEED = 3.5;
/** Moves are sent at most this often. */
const SEND_INTERVAL_MS = 1000 / 15;
/** A correction farther than this snaps at once; nearer ones ease in over two frames. */
const SNAP_DISTANCE = 2 * SUBTILE;
/** Corrections after which a click-to-walk does not go on: trying again would not help. */
const STOPPING_CORRECTIONS = new Set(['occupied', 'zone_full', 'zone_locked', 'moved']);
/** How long a notice stays on screen, and how many are shown at once. */
const NOTICE_MS = 10000;
const MAX_NOTICES = 4;
const KIND_NAMES = { audio: 'microphone', video: 'camera' };
/** How long the line saying what an admin did to us stays. */
const MODERATION_LINE_MS = 20000;

const $ = (/** @type {string} */ id) => /** @type {HTMLElement} */ (document.getElementById(id));

/**
 * @typedef {{action: string, by: string, reason: string}} Moderated
 * @typedef {{text: string, by: string, zone?: string, at: number}} Notice
 */

/** @param {number} dx @param {number} dy grid direction */
function facingOf(dx, dy) {
  const names = ['east', 'south_east', 'south', 'south_west', 'west', 'north_west', 'north', 'north_east'];
  const octant = Math.round(Math.atan2(dy, dx) / (Math.PI / 4));
  return names[(octant + 8) % 8];
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

class App {
  /** @param {string} token @param {string} worldName */
  constructor(token, worldName) {
    const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
    this.connection = new Connection(`${scheme}://${location.host}/v1/ws`, token, worldName);
    /** @type {World | null} */
    this.world = null;
    /** @type {Renderer | null} */
    this.renderer = null;
    this.self = 0;
    /** Our position as we predict it (sub-tile units). @type {Point} */
    this.position = { x: 0, y: 0 };
    /** What is drawn: the position plus a correction easing out. */
    this.correction = { x: 0, y: 0 };
    this.facing = 'south';
    this.state = 'idle';
    this.name = '';
    this.user = '';
    /** @type {Map<number, AvatarInfo & {drawn: Point, target: Point}>} */
    this.others = new Map();
    /** @type {Point[]} */
    this.path = [];
    /** @type {Set<string>} */
    this.keys = new Set();
    this.lastSent = { x: 0, y: 0, facing: '', state: '', at: 0 };
    this.zone = { id: '', name: '', type: '' };
    this.corrections = 0;
    /** Set by a snapshot: until then our position is unknown and nothing is sent. */
    this.joined = false;
    /** @type {{x: number, y: number} | null} where a click-to-walk is headed */
    this.goal = null;
    /** @type {string} why the server last corrected us */
    this.lastCorrection = '';
    this.media = new Media(this.connection, $('tiles'), (avatar) => this.others.get(avatar)?.name ?? `#${avatar}`);
    /** Whether we are an admin of the workspace. */
    this.admin = false;
    /** Every admin notice received, oldest first. @type {Notice[]} */
    this.notices = [];
    /** The last thing an admin did to us. @type {Moderated | null} */
    this.lastModeration = null;
    /** A mute or unmute told, waiting for the plan that says which kinds. @type {{message: Moderated, before: {audio: boolean, video: boolean}} | null} */
    this.pendingMute = null;
    /** Kicked or banned: the page says why and does not reconnect. */
    this.ended = false;
    /** @type {ReturnType<typeof setTimeout> | undefined} */
    this.moderationTimer = undefined;
    /**
     * An admin is moving us: from the `moderated` message until its correction (a frame
     * later, or more if the page is busy) we neither walk nor send moves, which the
     * server would check from the spawn point. A deadline, should the correction not come.
     */
    this.heldUntil = 0;
    this.panel = new AdminPanel(this.connection, $('admin-panel'), /** @type {HTMLButtonElement} */ ($('admin-toggle')), () => ({
      world: this.world?.file ?? null, worldName: this.connection.world, user: this.user,
    }));
    this.connection.addEventListener('message', (e) => this.onMessage(/** @type {CustomEvent} */ (e).detail));
    this.connection.addEventListener('presence', (e) => this.onPresence(/** @type {CustomEvent} */ (e).detail));
    this.connection.addEventListener('status', (e) => {
      const { status, detail } = /** @type {CustomEvent} */ (e).detail;
      $('status').textContent = detail ? `${status} (${detail})` : status;
      if (status !== 'connected') this.joined = false;
      $('status').dataset.status = status;
      if (status === 'disconnected') {
        // For good: nobody is in the world with us any more.
        this.media.stop();
        this.others.clear();
        this.path = [];
        this.goal = null;
        this.panel.setAdmin(false);
        $('topology').textContent = 'none';
      }
    });
    $('rejoin').addEventListener('click', () => {
      $('ended').hidden = true;
      this.ended = false;
      this.connection.start();
    });
  }

  async start() {
    this.connection.start();
    this.bindInput();
    this.media.start().then((ok) => {
      $('media-state').textContent = ok ? '' : 'no camera or microphone: you can still see and hear others';
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
        this.self = message.avatar;
        this.ended = false;
        this.setAdmin(Boolean(message.admin));
        if (!this.world) await this.loadWorld(message.world.url);
        break;
      case 'role_changed':
        this.setAdmin(Boolean(message.admin));
        this.showModerationLine(message.admin ? 'You are now an admin of this workspace.' : 'You are no longer an admin of this workspace.');
        break;
      case 'notice':
        this.showNotice(message);
        break;
      case 'moderated':
        this.onModerated(message);
        break;
      case 'snapshot': {
        const you = message.you;
        this.joined = true;
        this.name = you.name;
        this.user = you.user;
        this.position = { ...you.position };
        this.correction = { x: 0, y: 0 };
        this.facing = you.facing;
        this.state = you.state;
        this.lastSent = { x: you.position.x, y: you.position.y, facing: you.facing, state: you.state, at: 0 };
        this.zone = message.zone;
        this.others.clear();
        for (const avatar of message.avatars) this.addOther(avatar);
        $('zone').textContent = `${message.zone.name} · ${message.zone.type.replace('_', ' ')}`;
        break;
      }
      case 'avatar_entered':
        this.addOther(message.avatar);
        break;
      case 'avatar_left':
        this.others.delete(message.avatar);
        break;
      case 'correction': {
        this.corrections += 1;
        this.lastCorrection = message.reason;
        if (message.reason === 'moved') this.heldUntil = 0;
        const target = message.position;
        const drawn = { x: this.position.x + this.correction.x, y: this.position.y + this.correction.y };
        // An admin's move is a jump, not a drift to ease out.
        const far = message.reason === 'moved' || Math.hypot(target.x - drawn.x, target.y - drawn.y) > SNAP_DISTANCE;
        this.correction = far ? { x: 0, y: 0 } : { x: drawn.x - target.x, y: drawn.y - target.y };
        this.position = { ...target };
        this.facing = message.facing;
        this.state = message.state;
        // Walk on from where the server says we are (once; a full door or seat, a locked
        // or full room, or an admin's move stops us).
        const goal = this.goal;
        this.path = [];
        this.goal = null;
        if (goal && !STOPPING_CORRECTIONS.has(message.reason)) this.walkTo(goal.x, goal.y);
        if (message.reason === 'zone_locked') $('notice').textContent = 'This room is locked.';
        if (message.reason === 'zone_full') $('notice').textContent = 'This room is full.';
        this.lastSent = { x: target.x, y: target.y, facing: message.facing, state: message.state, at: performance.now() };
        break;
      }
      case 'media':
        this.media.applyPlan(message.plan);
        this.updateMuteButtons();
        this.describeMute();
        $('topology').textContent =
          message.plan.topology === 'sfu' ? (message.plan.sfu ? 'SFU' : 'SFU (this server has none)') : message.plan.topology;
        break;
      case 'signal':
        await this.media.onSignal(message.from, message.kind, message.data);
        break;
      case 'error':
        if (message.code === 'kicked' || message.code === 'banned') {
          // Said already if a `moderated` came first; a refused join (banned) says it here.
          if (!this.ended) this.showEnded(message.code, message.message);
        } else {
          $('notice').textContent = message.message;
        }
        break;
      case 'reconnect':
        $('notice').textContent = 'The server is restarting; reconnecting…';
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
    const { action, by } = message;
    this.lastModeration = { action, by, reason: message.reason ?? '' };
    const reason = message.reason ? `: ${message.reason}` : '';
    switch (action) {
      case 'kicked':
      case 'banned':
        this.showEnded(action, `${by} ${action === 'kicked' ? 'removed you from the world' : 'banned you from this workspace'}${reason}`);
        break;
      case 'muted':
      case 'unmuted':
        // The next plan says which kinds; until then, say what we know.
        this.pendingMute = { message, before: { ...this.media.adminMuted } };
        this.showModerationLine(`${by} ${action} you${reason}`);
        break;
      case 'moved':
      case 'meeting_ended':
        this.path = [];
        this.goal = null;
        this.heldUntil = performance.now() + 1000;
        this.showModerationLine(action === 'moved' ? `${by} moved you${reason}` : `${by} ended the meeting${reason}`);
        break;
      default:
        this.showModerationLine(`${by}: ${action}${reason}`);
    }
  }

  /** Names the kinds a mute or unmute changed, once the plan saying so has come. */
  describeMute() {
    const pending = this.pendingMute;
    if (!pending) return;
    const now = this.media.adminMuted;
    const kinds = /** @type {('audio' | 'video')[]} */ (['audio', 'video']).filter((k) => pending.before[k] !== now[k]);
    if (!kinds.length) return;
    this.pendingMute = null;
    const { action, by, reason } = pending.message;
    const what = kinds.map((k) => KIND_NAMES[k]).join(' and ');
    this.showModerationLine(`${by} ${action} your ${what}${reason ? `: ${reason}` : ''}`);
  }

  /** @param {string} text */
  showModerationLine(text) {
    const line = $('moderation');
    line.textContent = text;
    clearTimeout(this.moderationTimer);
    this.moderationTimer = setTimeout(() => (line.textContent = ''), MODERATION_LINE_MS);
    // Let the line catch the eye again even if the text is the same.
    line.classList.remove('flash');
    void line.offsetWidth;
    line.classList.add('flash');
  }

  /** Kicked or banned: the connection is closing for good; say why. @param {string} code @param {string} text */
  showEnded(code, text) {
    this.ended = true;
    // The dialog says it all; older lines would only confuse.
    $('notice').textContent = '';
    $('moderation').textContent = '';
    $('ended-title').textContent = code === 'banned' ? 'You are banned from this workspace' : 'You were removed from the world';
    $('ended-text').textContent = text;
    // A kicked user may come back; a banned one would be refused.
    $('rejoin').hidden = code === 'banned';
    $('ended').hidden = false;
    $('ended').dataset.code = code;
  }

  /** @param {{text: string, by: string, zone?: string}} message */
  showNotice(message) {
    this.notices.push({ text: message.text, by: message.by, zone: message.zone, at: Date.now() });
    const zone = message.zone && (this.world?.zones.find((z) => z.id === message.zone)?.name ?? message.zone);
    const toast = document.createElement('div');
    toast.className = 'toast';
    toast.setAttribute('role', 'status');
    const from = document.createElement('div');
    from.className = 'from';
    from.textContent = zone ? `Notice from ${message.by} · ${zone}` : `Notice from ${message.by}`;
    const text = document.createElement('div');
    text.className = 'text';
    text.textContent = message.text;
    const close = document.createElement('button');
    close.type = 'button';
    close.className = 'close';
    close.setAttribute('aria-label', 'Dismiss');
    close.textContent = '×';
    close.addEventListener('click', () => toast.remove());
    toast.append(close, from, text);
    const toasts = $('toasts');
    toasts.append(toast);
    while (toasts.children.length > MAX_NOTICES) toasts.firstElementChild?.remove();
    setTimeout(() => {
      toast.classList.add('leaving');
      setTimeout(() => toast.remove(), 400);
    }, NOTICE_MS);
  }

  /** The mute buttons say when an admin muted us, and cannot undo it. */
  updateMuteButtons() {
    for (const [kind, id, label] of /** @type {['audio' | 'video', string, string][]} */ ([['audio', 'mute-audio', 'Mic'], ['video', 'mute-video', 'Cam']])) {
      const button = /** @type {HTMLButtonElement} */ ($(id));
      const forced = this.media.adminMuted[kind];
      button.disabled = forced;
      button.classList.toggle('forced', forced);
      button.setAttribute('aria-pressed', String(forced || this.media.userOff[kind]));
      button.textContent = forced ? `${label} muted by an admin` : label;
      button.title = forced ? `An admin muted your ${KIND_NAMES[kind]}` : kind === 'audio' ? 'Mute microphone' : 'Stop camera';
    }
  }

  /** Whether an admin muted our `kind` (we send none of it). @param {'audio' | 'video'} kind */
  selfMuted(kind = 'audio') {
    return this.media.adminMuted[kind];
  }

  /** Whether we play none of `avatar`'s audio: every received audio track off and its element muted. @param {number} avatar */
  peerAudioMuted(avatar) {
    const peer = this.media.peers.get(avatar);
    if (!peer) return null;
    const tracks = peer.pc.getReceivers().map((r) => r.track).filter((t) => t.kind === 'audio');
    return tracks.length > 0 && tracks.every((t) => !t.enabled) && peer.video.muted;
  }

  /** Whether we show none of `avatar`'s video. @param {number} avatar */
  peerVideoHidden(avatar) {
    const peer = this.media.peers.get(avatar);
    if (!peer) return null;
    const tracks = peer.pc.getReceivers().map((r) => r.track).filter((t) => t.kind === 'video');
    return tracks.length > 0 && tracks.every((t) => !t.enabled) && peer.tile.classList.contains('video-muted');
  }

  /** @param {AvatarInfo} avatar */
  addOther(avatar) {
    if (avatar.avatar === this.self) return;
    this.others.set(avatar.avatar, { ...avatar, drawn: { ...avatar.position }, target: { ...avatar.position } });
  }

  /** @param {{entries: import('./protocol.js').PresenceEntry[]}} presence */
  onPresence(presence) {
    for (const entry of presence.entries) {
      const other = this.others.get(entry.avatar);
      if (!other) continue;
      other.target = { x: entry.x, y: entry.y };
      other.facing = entry.facing;
      other.state = entry.state;
    }
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
    $('world-name').textContent = file.name;
  }

  bindInput() {
    const canvas = /** @type {HTMLCanvasElement} */ ($('world'));
    window.addEventListener('resize', () => this.renderer?.resize());
    window.addEventListener('keydown', (e) => {
      if (e.target instanceof HTMLInputElement || e.target instanceof HTMLSelectElement || e.target instanceof HTMLTextAreaElement) return;
      this.keys.add(e.key.toLowerCase());
      if (e.key.toLowerCase() === 'e') this.toggleSit();
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

  /**
   * Adds `count` simulated people walking circles around us, fed through the same
   * presence path as real ones, to measure rendering under a crowd. Returns a function
   * that counts frames drawn.
   * @param {number} count
   */
  simulateCrowd(count) {
    const centre = { ...this.position };
    for (let i = 0; i < count; i++) {
      const avatar = 1_000_000 + i;
      this.addOther({ avatar, user: `crowd-${i}`, name: `Guest ${i}`, position: { ...centre }, facing: 'south', state: 'walking' });
    }
    let phase = 0;
    const step = () => {
      phase += 0.05;
      const entries = [];
      for (let i = 0; i < count; i++) {
        const ring = 1 + (i % 5) * 0.9;
        const angle = phase + (i * 2 * Math.PI) / count;
        entries.push({ avatar: 1_000_000 + i, x: Math.round(centre.x + Math.cos(angle) * ring * SUBTILE), y: Math.round(centre.y + Math.sin(angle) * ring * SUBTILE), facing: 'east', state: 'walking' });
      }
      this.onPresence({ entries });
    };
    setInterval(step, SEND_INTERVAL_MS);
  }

  /** Walks to tile (x, y) around walls; false if there is no way. @param {number} x @param {number} y */
  walkTo(x, y) {
    if (!this.world || !this.joined) return false;
    this.path = findPath(this.world, this.position, { x, y }) ?? [];
    this.goal = this.path.length ? { x, y } : null;
    $('notice').textContent = this.path.length ? '' : 'There is no way there.';
    return this.path.length > 0;
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

  toggleSit() {
    if (!this.world) return;
    const object = this.world.objectAt(this.position);
    this.state = this.state === 'sitting' ? 'idle' : object?.kind === 'seat' ? 'sitting' : 'idle';
    if (this.state === 'sitting' && object?.facing) this.facing = object.facing;
  }

  /** Keyboard direction in grid axes (screen up is north-west on isometric maps). */
  keyDirection() {
    let sx = 0;
    let sy = 0;
    if (this.keys.has('arrowup') || this.keys.has('w')) sy -= 1;
    if (this.keys.has('arrowdown') || this.keys.has('s')) sy += 1;
    if (this.keys.has('arrowleft') || this.keys.has('a')) sx -= 1;
    if (this.keys.has('arrowright') || this.keys.has('d')) sx += 1;
    if (!sx && !sy) return null;
    const isometric = this.world?.file.grid.orientation === 'isometric';
    const dx = isometric ? sx / 2 + sy : sx;
    const dy = isometric ? sy - sx / 2 : sy;
    const length = Math.hypot(dx, dy);
    return { x: dx / length, y: dy / length };
  }

  /** @param {number} dt seconds @param {number} now */
  tick(dt, now) {
    if (!this.world || !this.renderer) return;
    if (this.joined && now >= this.heldUntil) {
      this.walk(dt);
      this.sendIfChanged(now);
    }
    // Corrections ease out within two frames; remote avatars glide toward their targets.
    this.correction = { x: Math.trunc(this.correction.x * 0.35), y: Math.trunc(this.correction.y * 0.35) };
    const blend = Math.min(1, dt * 12);
    for (const other of this.others.values()) {
      other.drawn.x += (other.target.x - other.drawn.x) * blend;
      other.drawn.y += (other.target.y - other.drawn.y) * blend;
    }
    const me = { x: (this.position.x + this.correction.x) / SUBTILE, y: (this.position.y + this.correction.y) / SUBTILE };
    this.renderer.camera.x += (me.x - this.renderer.camera.x) * Math.min(1, dt * 8 + (this.renderer.camera.x ? 0 : 1));
    this.renderer.camera.y += (me.y - this.renderer.camera.y) * Math.min(1, dt * 8 + (this.renderer.camera.y ? 0 : 1));
    const drawn = [...this.others.values()].map((o) => ({
      avatar: o.avatar, name: o.name, user: o.user, x: o.drawn.x / SUBTILE, y: o.drawn.y / SUBTILE,
      facing: o.facing, state: o.state, self: false, speaking: this.media.speaking.has(o.avatar),
    }));
    drawn.push({ avatar: this.self, name: this.name, user: this.user, x: me.x, y: me.y, facing: this.facing, state: this.state, self: true, speaking: false });
    const target = this.path.length ? { x: this.path[this.path.length - 1].x / SUBTILE, y: this.path[this.path.length - 1].y / SUBTILE } : null;
    this.renderer.draw(drawn, target);
    const zone = this.world.zoneAt(this.position);
    $('here').textContent = zone ? `${zone.name}` : '';
  }

  /** Moves the local avatar at once (optimistic), along keys or the click-to-walk path. @param {number} dt */
  walk(dt) {
    const world = /** @type {World} */ (this.world);
    const keys = this.keyDirection();
    if (keys) this.path = [];
    let direction = keys;
    if (!direction && this.path.length) {
      const next = this.path[0];
      const dx = next.x - this.position.x;
      const dy = next.y - this.position.y;
      const distance = Math.hypot(dx, dy);
      if (distance < 2) {
        this.path.shift();
        if (!this.path.length) this.goal = null;
        direction = null;
      } else {
        direction = { x: dx / distance, y: dy / distance };
        const step = Math.min(distance, SPEED * SUBTILE * dt);
        return this.tryStep({ x: Math.round(this.position.x + direction.x * step), y: Math.round(this.position.y + direction.y * step) }, direction);
      }
    }
    if (!direction) {
      if (this.state === 'walking') this.state = 'idle';
      return;
    }
    const step = SPEED * SUBTILE * dt;
    const target = { x: Math.round(this.position.x + direction.x * step), y: Math.round(this.position.y + direction.y * step) };
    if (this.tryStep(target, direction)) return;
    // Slide along walls: try each axis alone.
    if (this.tryStep({ x: target.x, y: this.position.y }, direction)) return;
    this.tryStep({ x: this.position.x, y: target.y }, direction);
    void world;
  }

  /** @param {Point} target @param {Point} direction @returns {boolean} */
  tryStep(target, direction) {
    const world = /** @type {World} */ (this.world);
    if (world.checkPath(this.position, target) !== null) {
      this.path = [];
      this.goal = null;
      return false;
    }
    this.position = target;
    this.facing = facingOf(direction.x, direction.y);
    this.state = 'walking';
    return true;
  }

  /** @param {number} now */
  sendIfChanged(now) {
    const s = this.lastSent;
    const changed = s.x !== this.position.x || s.y !== this.position.y || s.facing !== this.facing || s.state !== this.state;
    if (!changed || now - s.at < SEND_INTERVAL_MS) return;
    this.connection.sendMove(this.position.x, this.position.y, this.facing, this.state);
    this.lastSent = { x: this.position.x, y: this.position.y, facing: this.facing, state: this.state, at: now };
  }
}

async function main() {
  const params = new URLSearchParams(location.search);
  const world = params.get('world') ?? 'demo';
  const name = params.get('name') ?? localStorage.getItem('isoplane-name') ?? `Guest ${Math.floor(Math.random() * 1000)}`;
  const token = params.get('token') ?? (await devToken(name));
  const app = new App(token, world);
  // Tests and curious people can look inside.
  Object.assign(window, { isoplane: app });
  await app.start();
}

main().catch((error) => {
  $('notice').textContent = String(error.message ?? error);
});
