// The Isoplane browser client's session: joins a world, routes the server's messages to
// the local avatar (prediction.js), everyone else (remote.js), the media plan (media.js),
// the HUD (hud.js) and, for admins, their panel, and runs the frame loop.
//
// With `?debug=1` it also loads debug.js, the view of its state that the browser tests
// (and curious people) read as `window.isoplane`; ordinary pages carry none of it.

import { AdminPanel } from './admin.js';
import { BuildMode } from './build.js';
import { Announcer, describeSurroundings } from './announce.js';
import { Chat } from './chat.js';
import { ConnectionTest } from './connectivity.js';
import { Follow } from './follow.js';
import { Gestures } from './gestures.js';
import { $, endedText, Hud } from './hud.js';
import { Knocks } from './knock.js';
import { TileLayout } from './layout.js';
import { Media } from './media.js';
import { Connection } from './net.js';
import { PeoplePanel } from './people.js';
import { keyDirection, LocalAvatar } from './prediction.js';
import { RemoteAvatars } from './remote.js';
import { Renderer } from './render.js';
import { Availability } from './status.js';
import { findPath, zoneGoals } from './walk.js';
import { Websites, websitesAt } from './websites.js';
import { SUBTILE, World } from './world.js';

/** @typedef {import('./hud.js').Moderated} Moderated */
/** @typedef {import('./remote.js').AvatarInfo} AvatarInfo */
/** @typedef {import('./people.js').Person} Person */
/** @typedef {import('./world.js').ZoneDef} ZoneDef */
/** @typedef {import('./hud.js').Recording} Recording */
/**
 * The zone we are in, as the server's snapshot says (docs/protocol.md, `snapshot`).
 * `ingest`: a broadcaster's stream live on this stage, under an avatar ID nobody in the
 * world has.
 * @typedef {{id: string, name: string, type: string, page?: any, e2ee?: boolean,
 *   recording_allowed?: boolean, recording?: Recording, ingest?: {avatar: number, name: string} | null}} ZoneInfo
 */

/**
 * Frames are drawn only while something moves (the display's rate then); a still page
 * draws nothing and looks again this often, in case something changed unannounced.
 */
const STILL_CHECK_MS = 1000;
/** While only others move, frames are drawn at most this often (about 30 a second). */
const OTHERS_FRAME_MS = 30;
/** The text alternative of the map is brought up to date at most this often. */
const DESCRIBE_MS = 1000;
/** Errors that refuse a chat message: the chat panel says them too. */
/** How long the connection test waits for signaling's SFU probe token. */
const SFU_PROBE_ANSWER_MS = 5000;
/** The narrowest part of the map worth centring our avatar in beside an open page (CSS pixels). */
const MIN_FREE_MAP_PX = 200;
const CHAT_ERRORS = new Set(['chat_invalid', 'chat_muted', 'unknown_user', 'rate_limited']);
/** An open zone's talk radius when its file gives none (as in world-format). */
const DEFAULT_TALK_RADIUS = 3;
/** How long a located person's way stays drawn. */
const LOCATE_MS = 20000;

/**
 * What a frame would show, as a string: the same string means the same picture (positions
 * to a thousandth of a tile, well under a pixel).
 * @param {import('./render.js').DrawnAvatar[]} drawn @param {{x: number, y: number}} camera
 * @param {{x: number, y: number} | null} target @param {HTMLCanvasElement} canvas
 * @param {{zoom: number, pan: {x: number, y: number}, shift: {x: number, y: number}}} view @param {number} route which located way is drawn (0: none)
 */
function sceneOf(drawn, camera, target, canvas, view, route) {
  const avatars = drawn.map((a) => `${a.avatar}:${a.x.toFixed(3)},${a.y.toFixed(3)},${a.facing},${a.state},${a.status},${a.speaking}`);
  const at = (/** @type {{x: number, y: number} | null} */ p) => (p ? `${p.x.toFixed(3)},${p.y.toFixed(3)}` : '-');
  const zoom = `${view.zoom.toFixed(3)}@${at(view.pan)}+${at(view.shift)}`;
  return `${canvas.width}x${canvas.height}|${zoom}|${at(camera)}|${at(target)}|${route}|${avatars.join(';')}`;
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
    /** The version of the world file loaded (its content ID), or being loaded. */
    this.worldVersion = '';
    /** Tileset images by content ID, kept across versions of the world (assets never change). @type {Map<string, HTMLImageElement>} */
    this.images = new Map();
    /** What the map shows (see showWorld). @type {import('./world.js').WorldFile | null} */
    this.shownFile = null;
    this.showPending = false;
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
    /** @type {ZoneInfo} */
    this.zone = { id: '', name: '', type: '' };
    /** Whether the zone may be recorded now, and the recording in progress, if any. @type {{allowed: boolean, current: Recording | null}} */
    this.recording = { allowed: false, current: null };
    /** Set by a snapshot: until then our position is unknown and nothing is sent. */
    this.joined = false;
    this.media = new Media(this.connection, $('tiles'), (avatar) => this.nameOf(avatar));
    this.layout = new TileLayout(/** @type {HTMLElement} */ (document.querySelector('.media')), $('tiles'), (avatar) => this.nameOf(avatar));
    this.media.onChange = () => {
      this.layout.speakers(this.media.speaking);
      this.wake();
    };
    this.media.onScreen = () => {
      const button = $('share-screen');
      button.setAttribute('aria-pressed', String(Boolean(this.media.screen)));
      button.textContent = this.media.screen ? 'Stop sharing' : 'Share screen';
      this.announcer.say(this.media.screen ? 'You are sharing your screen.' : 'You stopped sharing your screen.');
    };
    this.media.onLocal = () => this.layout.self(this.media.local, !this.media.lowBandwidth && !this.media.resting && !this.media.userOff.video);
    this.media.onRest = (resting) => this.hud.mediaState(resting ? 'Camera and microphone are off while nobody is near.' : '');
    this.media.e2ee.onChange = () => this.showEncryption();
    this.availability = new Availability(
      (status) => this.connection.send({ type: 'set_status', status }),
      /** @type {HTMLSelectElement} */ ($('my-status')),
    );
    /** Whether we are an admin of the workspace. */
    this.admin = false;
    /** Kicked or banned: the page says why and does not reconnect. */
    this.ended = false;
    /** The frame loop: whether a frame is asked for, the last one's time and what it showed. */
    this.frame = { requested: false, at: 0, scene: '', running: false, drawnAt: 0 };
    /** @type {ReturnType<typeof setTimeout> | undefined} */
    this.stillTimer = undefined;
    this.describedAt = -Infinity;
    this.reducedMotion = window.matchMedia('(prefers-reduced-motion: reduce)');
    /** Whom we follow, if anyone. @type {Follow | null} */
    this.follow = null;
    /** A located person's way, drawn on the map until it expires (tile units). @type {{route: {x: number, y: number}[], until: number} | null} */
    this.located = null;
    /** Who waits for the answer to our `probe_sfu`, if anyone. @type {((access: import('./connectivity.js').SfuAccess | null) => void) | null} */
    this.sfuProbe = null;
    /** Where a refused walk was headed: walked again once we are let in. @type {{x: number, y: number} | null} */
    this.refusedGoal = null;
    this.announcer = new Announcer($('announcer'), $('where'));
    this.panel = new AdminPanel(this.connection, $('admin-panel'), /** @type {HTMLButtonElement} */ ($('admin-toggle')), () => ({
      world: this.world?.file ?? null, worldName: this.connection.world, user: this.user,
    }));
    this.people = new PeoplePanel(this.connection, $('people-panel'), /** @type {HTMLButtonElement} */ ($('people-toggle')), {
      self: () => this.self,
      following: () => this.follow?.avatar ?? null,
      zones: () => this.world?.zones ?? [],
      locate: (person) => this.locate(person),
      walkToPerson: (person) => this.walkToPerson(person),
      follow: (person) => this.connection.send({ type: 'follow', avatar: person.avatar }),
      unfollow: () => this.unfollow(),
      walkToZone: (zone) => this.walkToZone(zone),
      message: (person) => this.chat.writeTo({ user: person.user, name: person.name }),
    });
    this.chat = new Chat(this.connection, $('chat-panel'), /** @type {HTMLButtonElement} */ ($('chat-toggle')), {
      me: () => this.user,
      admin: () => this.admin,
      world: () => this.connection.world,
      zoneName: (id) => this.zoneName(id),
      people: async () => ((await this.connection.request({ type: 'list_people' }))?.people ?? []).map((/** @type {Person} */ p) => ({ user: p.user, name: p.name })),
      announce: (text) => this.announcer.say(text),
    });
    this.knocks = new Knocks(this.connection, $('knocks'), $('notice'), {
      zoneName: (id) => this.zoneName(id),
      announce: (text) => this.announcer.say(text),
      admitted: () => {
        const goal = this.refusedGoal;
        this.refusedGoal = null;
        // The notice says who let us in: walk without clearing it.
        if (goal && this.world && this.joined) this.avatar.walkTo(this.world, goal.x, goal.y);
        this.wake();
      },
    });
    this.connectionTest = new ConnectionTest($('connection-panel'), /** @type {HTMLButtonElement} */ ($('connection-toggle')), {
      iceServers: () => this.media.plan?.ice_servers ?? [],
      probeSfu: () => this.probeSfu(),
      announce: (text) => this.announcer.say(text),
    });
    /** Whether our token lets us build (welcome's `builder`), apart from being an admin. */
    this.builder = false;
    this.build = new BuildMode($('build-panel'), /** @type {HTMLButtonElement} */ ($('build-toggle')), {
      world: () => this.connection.world,
      token: () => this.connection.token,
      served: () => this.world?.file ?? null,
      show: (file) => this.showWorld(file),
      redraw: () => {
        this.frame.scene = '';
        this.wake();
      },
      renderer: () => this.renderer,
      image: (id) => this.image(id),
      focus: (x, y) => {
        this.renderer?.lookAt(x, y);
        this.wake();
      },
      announce: (text) => this.announcer.say(text),
    });
    this.websites = new Websites($('website-panel'), $('website-offer'), {
      share: (url) => this.connection.send({ type: 'share_page', url }),
      canShare: () => this.zone.type !== 'open' && this.zone.type !== '' && (this.zone.type !== 'stage' || Boolean(this.media.plan?.publish)),
      announce: (text) => this.announcer.say(text),
      changed: () => {
        this.layout.setPageOpen(Boolean(this.websites.page));
        this.centreBesidePage();
        this.wake();
      },
    });
    this.connection.addEventListener('message', (e) => {
      this.onMessage(/** @type {CustomEvent} */ (e).detail);
      this.wake();
    });
    this.connection.addEventListener('presence', (e) => {
      const entries = /** @type {CustomEvent} */ (e).detail.entries;
      this.others.applyPresence(entries);
      const followed = this.follow && entries.find((/** @type {{avatar: number}} */ p) => p.avatar === this.follow?.avatar);
      if (followed) this.follow?.moved(followed);
      this.wake();
    });
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
        this.setRecording(false, null);
        this.hud.encryption('');
      }
      this.wake();
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
    this.wake();
  }

  /**
   * Asks for a frame, unless one is asked for already. Anything that may change the
   * picture calls this: input, messages, presence, media. Hidden tabs get no frames.
   */
  wake() {
    if (this.frame.requested) return;
    this.frame.requested = true;
    requestAnimationFrame((now) => {
      this.frame.requested = false;
      // A frame straight after another walks for the time between them; the first after
      // a rest walks one display frame, not the whole rest.
      const dt = this.frame.running ? Math.min(0.1, (now - this.frame.at) / 1000) : 1 / 60;
      this.frame.at = now;
      this.frame.running = this.tick(dt, now);
      clearTimeout(this.stillTimer);
      if (this.frame.running) this.wake();
      else this.stillTimer = setTimeout(() => this.wake(), STILL_CHECK_MS);
    });
  }

  /** @param {any} message */
  async onMessage(message) {
    switch (message.type) {
      case 'welcome':
        // A new session (not a resumed one) numbers avatars anew: connections and SFU
        // sessions made under the old numbers mean nothing now; the next plan makes them again.
        if (!message.resumed) {
          this.media.stop();
          this.endFollow('');
          this.knocks.clear();
          this.showFollowers([]);
        }
        this.self = message.avatar;
        this.ended = false;
        this.setAdmin(Boolean(message.admin));
        this.builder = Boolean(message.builder);
        this.build.setAllowed(this.builder);
        this.websites.setAllowed(message.embed_origins ?? []);
        // A version published while we were away is loaded on resuming.
        if (!this.world || this.worldVersion !== message.world.version) await this.loadWorld(message.world);
        break;
      case 'world_changed':
        this.build.worldChanged(message.world.version);
        if (this.worldVersion !== message.world.version) {
          await this.loadWorld(message.world);
          this.announcer.say('The map was changed.');
        }
        break;
      case 'role_changed':
        this.setAdmin(Boolean(message.admin));
        // A builder's token still lets them build; an admin always may.
        this.build.setAllowed(Boolean(message.admin) || this.builder);
        this.hud.moderationLine(message.admin ? 'You are now an admin of this workspace.' : 'You are no longer an admin of this workspace.');
        break;
      case 'notice':
        this.hud.showNotice(message, message.zone && this.zoneName(message.zone));
        break;
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
        if (message.zone.id !== this.zone.id) this.announcer.say(`You are in ${message.zone.name}.`);
        this.zone = message.zone;
        this.media.e2ee.enterZone(message.zone.id);
        this.showEncryption();
        // Said before any media plan of the zone comes: nobody is recorded unaware.
        this.setRecording(Boolean(message.zone.recording_allowed), message.zone.recording ?? null);
        this.others.clear();
        for (const avatar of message.avatars) this.addOther(avatar);
        this.hud.zone(message.zone);
        this.layout.setZone(message.zone.type, this.media.plan?.topology ?? 'none');
        this.websites.shared(message.zone.page ?? null);
        this.conversationChanged();
        break;
      }
      case 'page_shared':
        this.websites.shared(message.page);
        break;
      case 'ingest_changed':
        this.zone = { ...this.zone, ingest: message.ingest ?? null };
        if (message.ingest) this.announcer.say(`${message.ingest.name} is live on the stage.`);
        break;
      case 'recording_changed':
        this.setRecording(Boolean(message.allowed), message.recording ?? null);
        break;
      case 'e2ee_key':
        // The lock follows once the key is ready (e2ee.onChange).
        this.media.e2ee.addKey(message.zone, message.key_id, message.key);
        break;
      case 'sfu_probe':
        this.sfuProbe?.(message.sfu ?? null);
        this.sfuProbe = null;
        break;
      case 'avatar_entered':
        this.addOther(message.avatar);
        this.conversationChanged();
        break;
      case 'avatar_left':
        this.others.remove(message.avatar);
        this.conversationChanged();
        break;
      case 'status_changed':
        this.others.setStatus(message.avatar, message.status);
        break;
      case 'correction': {
        // Where the refused move was going: a locked or full room may be knocked on.
        const refused = this.world?.zoneAt(this.avatar.position);
        const walkingTo = this.avatar.goal;
        // Walk on from where the server says we are (once).
        const goal = this.avatar.correct(message, performance.now());
        if (goal) this.walkTo(goal.x, goal.y);
        if (message.reason === 'world_changed') this.hud.say('The map changed where you stood: you were moved to the nearest free place.');
        if ((message.reason === 'zone_locked' || message.reason === 'zone_full') && refused) {
          this.refusedGoal = walkingTo;
          this.knocks.offer(refused.id, message.reason === 'zone_locked' ? `${refused.name} is locked.` : `${refused.name} is full.`);
        }
        break;
      }
      case 'media':
        this.media.applyPlan(message.plan);
        this.hud.muteButtons(this.media.adminMuted, this.media.userOff);
        this.hud.describeMute(this.media.adminMuted);
        this.hud.topology(message.plan.topology === 'sfu' ? (message.plan.sfu ? 'SFU' : 'SFU (this server has none)') : message.plan.topology);
        this.layout.setZone(this.zone.type, message.plan.topology);
        this.showEncryption();
        /** @type {HTMLButtonElement} */ ($('share-screen')).disabled = !this.media.canShareScreen() && !this.media.screen;
        this.websites.showButtons();
        this.conversationChanged();
        break;
      case 'signal':
        await this.media.onSignal(message.from, message.kind, message.data);
        break;
      case 'following':
        this.follow = new Follow(message.avatar, message.name);
        this.follow.moved(message.position, message.zone);
        this.showFollowing();
        this.announcer.say(`You are following ${message.name}.`);
        break;
      case 'followee_moved': {
        const follow = this.follow;
        if (follow && follow.avatar === message.avatar) follow.moved(message.position, message.zone);
        break;
      }
      case 'follow_ended': {
        const follow = this.follow;
        if (follow && follow.avatar === message.avatar) this.endFollow(message.reason === 'left' ? `${follow.name} left the world: you stopped following.` : '');
        break;
      }
      case 'followers':
        this.showFollowers(message.followers);
        break;
      case 'knock':
        this.knocks.ask(message);
        break;
      case 'knock_status':
        this.knocks.status(message);
        break;
      case 'knock_closed':
        this.knocks.closed(message);
        break;
      case 'chat':
        this.chat.received(message.message);
        break;
      case 'chat_history':
        this.chat.history(message.scope, message.messages);
        break;
      case 'chat_deleted':
        this.chat.deleted(message.id);
        break;
      case 'error':
        if (CHAT_ERRORS.has(message.code)) this.chat.refused(message.message);
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

  /**
   * The lock: shown in an end-to-end encrypted zone; it waits while the plan wants
   * sealed media and no key of the zone has come.
   */
  showEncryption() {
    const plan = this.media.plan;
    if (!this.zone.e2ee && !plan?.e2ee) return this.hud.encryption('');
    if (plan?.e2ee && plan.topology === 'sfu' && this.media.e2ee.mode === null) return this.hud.encryption('unsupported');
    this.hud.encryption(plan?.e2ee && !this.media.e2ee.hasKey(this.zone.id) ? 'waiting' : 'on');
  }

  /**
   * Whether the zone may be recorded and who records it now: the indicator and the
   * Record button say so.
   * @param {boolean} allowed @param {Recording | null} current
   */
  setRecording(allowed, current) {
    this.recording = { allowed, current };
    this.hud.recording(current);
    this.hud.recordButton(allowed, current !== null);
  }

  /** @param {string} id */
  zoneName(id) {
    return this.world?.zones.find((z) => z.id === id)?.name ?? id;
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

  /** Whom we talk with now: our peers, or everyone in the zone when it is on the SFU. */
  conversationChanged() {
    const plan = this.media.plan;
    const now = !plan ? [] : plan.topology === 'sfu' ? [...this.others.byAvatar.keys()] : plan.peers.map((p) => p.avatar);
    this.announcer.conversationIs(new Set(now), (avatar) => this.others.name(avatar) ?? `someone (#${avatar})`);
  }

  /**
   * Loads a version of the world file and draws it; the view (zoom, pan, a page beside
   * the map) stays as it was when a new version replaces the one shown.
   * @param {{url: string, version: string}} ref
   */
  async loadWorld(ref) {
    this.worldVersion = ref.version;
    const file = await (await fetch(ref.url)).json();
    const world = new World(file);
    for (const set of file.tilesets) await this.image(set.image);
    this.world = world;
    // While building, the map shows the world being edited; we walk in the one served.
    this.showWorld(this.build.file);
    this.websites.sites = file.websites ?? [];
    this.hud.worldName(file.name);
    this.people.render();
    this.wake();
  }

  /**
   * Draws `file` (build mode's world being edited), or the world served when null; the
   * view stays where it was. Several calls within a frame draw once.
   * @param {import('./world.js').WorldFile | null} file
   */
  showWorld(file) {
    this.shownFile = file;
    if (this.showPending) return;
    this.showPending = true;
    requestAnimationFrame(() => {
      this.showPending = false;
      const shown = this.shownFile ? new World(this.shownFile) : this.world;
      if (!shown) return;
      const before = this.renderer;
      this.renderer = new Renderer(/** @type {HTMLCanvasElement} */ ($('world')), shown, this.images);
      if (before) this.renderer.keepView(before);
      this.renderer.overlay = this.build.active ? (ctx, renderer, dx, dy) => this.build.drawOverlay(ctx, renderer, dx, dy) : null;
      this.centreBesidePage();
      this.frame.scene = '';
      this.wake();
    });
  }

  /** A tileset image by content ID, loaded once. @param {string} id */
  async image(id) {
    const known = this.images.get(id);
    if (known) return known;
    try {
      const image = /** @type {HTMLImageElement} */ (await loadImage(`/assets/${id}`));
      this.images.set(id, image);
      return image;
    } catch (error) {
      console.warn(error);
      return null;
    }
  }

  bindInput() {
    const canvas = /** @type {HTMLCanvasElement} */ ($('world'));
    window.addEventListener('resize', () => {
      this.renderer?.resize();
      this.centreBesidePage();
      this.wake();
    });
    document.addEventListener('visibilitychange', () => this.wake());
    window.addEventListener('keydown', (e) => {
      if (e.key === 'Escape') this.escape();
      const target = e.target;
      if (target instanceof HTMLInputElement || target instanceof HTMLSelectElement || target instanceof HTMLTextAreaElement) return;
      if (this.build.active && (e.ctrlKey || e.metaKey) && e.key.toLowerCase() === 'z') {
        e.preventDefault();
        if (e.shiftKey) this.build.redo();
        else this.build.undo();
        return;
      }
      if (this.build.active && (e.ctrlKey || e.metaKey) && e.key.toLowerCase() === 'y') {
        e.preventDefault();
        this.build.redo();
        return;
      }
      // Arrow keys scroll a focused list or press nothing else; on the map or the page they walk.
      if (target instanceof HTMLElement && target !== canvas && target !== document.body && target.closest('.panel')) return;
      const key = e.key.toLowerCase();
      if (keyDirection(new Set([key]), false)) {
        e.preventDefault();
        this.walkedByHand();
      }
      this.keys.add(key);
      if (key === 'e' && this.world) this.avatar.toggleSit(this.world);
      // Space on a focused button presses it; on the map it opens the page offered here.
      if (key === ' ' && (target === canvas || target === document.body) && this.websites.action()) e.preventDefault();
      this.wake();
    });
    window.addEventListener('keyup', (e) => {
      this.keys.delete(e.key.toLowerCase());
      this.wake();
    });
    // A lost focus (another window) releases every key: none stays held down.
    window.addEventListener('blur', () => this.keys.clear());
    new Gestures(canvas, {
      tap: (x, y) => {
        if (!this.renderer || !this.world) return;
        const point = this.renderer.pick(x, y);
        if (this.build.active) return this.build.tap(point);
        this.walkedByHand();
        this.walkTo(Math.floor(point.x), Math.floor(point.y));
      },
      pan: (dx, dy) => {
        this.renderer?.panBy(dx, dy);
        this.wake();
      },
      // Build mode's tools take drags (shift-drag still pans).
      dragStart: (x, y, e) => Boolean(this.build.active && this.renderer && !e.shiftKey && this.build.dragStart(this.renderer.pick(x, y))),
      drag: (x, y) => this.renderer && this.build.dragMove(this.renderer.pick(x, y)),
      dragEnd: (x, y) => this.renderer && this.build.dragEnd(this.renderer.pick(x, y)),
      zoom: (factor, x, y) => {
        this.renderer?.zoomAt(factor, x, y);
        this.wake();
      },
    });
    $('mute-audio').addEventListener('click', (e) => this.toggle(/** @type {HTMLButtonElement} */ (e.target), 'audio'));
    $('mute-video').addEventListener('click', (e) => this.toggle(/** @type {HTMLButtonElement} */ (e.target), 'video'));
    // The server says whether we may; a refusal comes back as an error and is shown.
    $('record').addEventListener('click', () => this.connection.send({ type: 'set_recording', on: !this.recording.current }));
    $('share-screen').addEventListener('click', async () => {
      if (this.media.screen) this.media.stopScreen();
      else this.hud.say(await this.media.shareScreen());
    });
    $('low-bandwidth').addEventListener('click', (e) => {
      const button = /** @type {HTMLButtonElement} */ (e.target);
      const on = button.getAttribute('aria-pressed') !== 'true';
      button.setAttribute('aria-pressed', String(on));
      this.media.setLowBandwidth(on);
      this.announcer.say(on ? 'Low bandwidth: audio only.' : 'Video is back on.');
    });
    $('distance-audio').addEventListener('click', (e) => {
      const button = /** @type {HTMLButtonElement} */ (e.target);
      const on = button.getAttribute('aria-pressed') !== 'true';
      button.setAttribute('aria-pressed', String(on));
      this.media.spatial.enabled = on;
      this.wake();
    });
    // Browsers start audio contexts only after a gesture: the first tap or key lets
    // distance audio take over from the media elements.
    for (const event of ['pointerdown', 'keydown']) window.addEventListener(event, () => this.media.audio?.resume(), { capture: true });
    $('media-toggle').addEventListener('click', (e) => {
      const button = /** @type {HTMLButtonElement} */ (e.target);
      const open = button.getAttribute('aria-expanded') !== 'true';
      button.setAttribute('aria-expanded', String(open));
      document.querySelector('.media')?.classList.toggle('open', open);
    });
    for (const id of ['audio-device', 'video-device']) {
      $(id).addEventListener('change', () =>
        this.media.start(/** @type {HTMLSelectElement} */ ($('audio-device')).value, /** @type {HTMLSelectElement} */ ($('video-device')).value),
      );
    }
  }

  /** Escape: closes what is open, or stops following and forgets a located way. */
  escape() {
    if (this.chat.open) this.chat.setOpen(false);
    else if (this.people.open) this.people.setOpen(false);
    else if (this.panel.open) this.panel.setOpen(false);
    else if (this.connectionTest.open) this.connectionTest.setOpen(false);
    else if (this.websites.page) this.websites.close();
    else {
      this.unfollow();
      this.located = null;
    }
    this.wake();
  }

  /** We walk by hand (keys or a tap): a follow ends and the view comes back to us. */
  walkedByHand() {
    if (this.follow) this.unfollow();
    this.located = null;
    this.renderer?.recentre();
  }

  /** Walks to tile (x, y) around walls; false if there is no way. @param {number} x @param {number} y */
  walkTo(x, y) {
    if (!this.world || !this.joined) return false;
    const found = this.avatar.walkTo(this.world, x, y);
    this.hud.say(found ? '' : 'There is no way there.');
    this.wake();
    return found;
  }

  /** @param {Person} person */
  walkToPerson(person) {
    this.walkedByHand();
    const tile = { x: Math.floor(person.position.x / SUBTILE), y: Math.floor(person.position.y / SUBTILE) };
    if (this.walkTo(tile.x, tile.y)) this.announcer.say(`Walking to ${person.name}.`);
  }

  /** @param {ZoneDef} zone */
  walkToZone(zone) {
    if (!this.world || !this.joined) return;
    this.walkedByHand();
    // The nearest-the-middle tiles first; a few tries find a way in through the door.
    const goal = zoneGoals(this.world, zone).slice(0, 12).find((tile) => this.avatar.walkTo(/** @type {World} */ (this.world), tile.x, tile.y));
    this.hud.say(goal ? '' : `There is no way to ${zone.name} from here.`);
    if (goal) this.announcer.say(`Walking to ${zone.name}.`);
    this.wake();
  }

  /** Draws the way to `person` and turns the view toward them. @param {Person} person */
  locate(person) {
    if (!this.world || !this.renderer) return;
    const me = this.avatar.position;
    const tile = { x: Math.floor(person.position.x / SUBTILE), y: Math.floor(person.position.y / SUBTILE) };
    const path = findPath(this.world, me, tile);
    const points = path ? [me, ...path] : [me, person.position];
    this.located = { route: points.map((p) => ({ x: p.x / SUBTILE, y: p.y / SUBTILE })), until: performance.now() + LOCATE_MS };
    // The view's middle between us and them, so both are on screen where the map allows.
    const renderer = this.renderer;
    renderer.recentre();
    const mine = renderer.projection.toScreen(me.x / SUBTILE, me.y / SUBTILE);
    const theirs = renderer.projection.toScreen(person.position.x / SUBTILE, person.position.y / SUBTILE);
    renderer.pan = { x: ((mine.x - theirs.x) / 2) * renderer.zoom, y: ((mine.y - theirs.y) / 2) * renderer.zoom };
    const where = this.zoneName(person.zone);
    const text = path ? `${person.name} is in ${where}: the way is drawn on the map.` : `${person.name} is in ${where}; there is no way there from here.`;
    this.hud.say(text);
    this.announcer.say(text);
    this.wake();
  }

  unfollow() {
    if (!this.follow) return;
    this.connection.send({ type: 'unfollow' });
    this.endFollow('');
  }

  /** @param {string} why said when not empty */
  endFollow(why) {
    if (!this.follow) return;
    this.follow = null;
    this.avatar.stop();
    this.showFollowing();
    if (why) {
      this.hud.say(why);
      this.announcer.say(why);
    }
    this.people.render();
  }

  showFollowing() {
    const line = $('following');
    line.hidden = !this.follow;
    if (!this.follow) return;
    const stop = document.createElement('button');
    stop.type = 'button';
    stop.textContent = 'Stop following';
    stop.addEventListener('click', () => this.unfollow());
    line.replaceChildren(`Following ${this.follow.name} `, stop);
    this.people.render();
  }

  /** Who follows us. @param {{avatar: number, name: string}[]} followers */
  showFollowers(followers) {
    const names = followers.map((f) => f.name);
    const text = !names.length ? '' : names.length === 1 ? `${names[0]} is following you.` : `${names.slice(0, -1).join(', ')} and ${names.at(-1)} are following you.`;
    const line = $('followers');
    if (line.textContent !== text) line.textContent = text;
  }

  /** @param {HTMLButtonElement} button @param {'audio' | 'video'} kind */
  toggle(button, kind) {
    // Only a plan lifts an admin's mute.
    if (this.media.adminMuted[kind]) return;
    const off = !this.media.userOff[kind];
    button.setAttribute('aria-pressed', String(off));
    this.media.setEnabled(kind, !off);
    this.media.onLocal();
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

  /**
   * One frame: walk, send our move, draw if the picture changed. Returns whether
   * something is still moving (another frame is needed at once).
   * @param {number} dt seconds @param {number} now
   */
  tick(dt, now) {
    if (!this.world || !this.renderer) return false;
    const avatar = this.avatar;
    if (this.joined && avatar.free(now)) {
      this.followOn();
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
    const ease = this.reducedMotion.matches ? 1 : Math.min(1, dt * 8 + (camera.x ? 0 : 1));
    camera.x += (me.x - camera.x) * ease;
    camera.y += (me.y - camera.y) * ease;
    const drawn = this.others.toDraw(this.media.speaking);
    drawn.push({
      avatar: this.self, name: this.name, user: this.user, x: me.x, y: me.y, facing: avatar.facing, state: avatar.state,
      status: this.availability.status, self: true, speaking: false,
    });
    const path = avatar.path;
    const target = path.length ? { x: path[path.length - 1].x / SUBTILE, y: path[path.length - 1].y / SUBTILE } : null;
    if (this.located && now > this.located.until) this.located = null;
    const route = this.located?.route ?? [];
    const renderer = this.renderer;
    const scene = sceneOf(drawn, camera, target, renderer.canvas, renderer, this.located?.until ?? 0);
    const changed = scene !== this.frame.scene;
    // Our own walk and the view get every display frame; others glide between updates that
    // come 15 times a second, which half a display's rate shows smoothly for half the work.
    const ownMotion = this.keys.size > 0 || path.length > 0 || Math.hypot(me.x - camera.x, me.y - camera.y) > 0.001;
    if (changed && (ownMotion || now - this.frame.drawnAt >= OTHERS_FRAME_MS)) {
      renderer.draw(drawn, target, route);
      this.frame.scene = scene;
      this.frame.drawnAt = now;
    }
    this.placeVoices(me);
    const zone = this.world.zoneAt(avatar.position);
    this.hud.standingIn(zone ? `${zone.name}` : '');
    const tile = this.world.tileOf(avatar.position);
    this.websites.standingOn(websitesAt(this.websites.sites, tile.x, tile.y));
    if (now - this.describedAt >= DESCRIBE_MS) {
      this.describedAt = now;
      this.announcer.describe(this.describe());
    }
    // A move not sent yet (they go out at most 15 times a second) needs another frame.
    const sent = avatar.lastSent;
    const unsent = sent.x !== avatar.position.x || sent.y !== avatar.position.y || sent.state !== avatar.state || sent.facing !== avatar.facing;
    return changed || unsent || this.keys.size > 0 || path.length > 0;
  }

  /**
   * Distance audio: each voice as loud as its person is near, from their side of the
   * screen, in open zones (elsewhere flat).
   * @param {{x: number, y: number}} me where we are drawn (tile units)
   */
  placeVoices(me) {
    if (!this.media.spatial.voices.size || !this.renderer || !this.world) return;
    const zone = this.world.zones.find((z) => z.id === this.zone.id);
    const radius = zone?.type === 'open' ? Number(zone.talk_radius ?? DEFAULT_TALK_RADIUS) : null;
    const projection = this.renderer.projection;
    const mine = projection.toScreen(me.x, me.y);
    this.media.spatial.update((avatar) => {
      const other = this.others.byAvatar.get(avatar);
      if (!other) return null;
      const at = { x: other.drawn.x / SUBTILE, y: other.drawn.y / SUBTILE };
      const theirs = projection.toScreen(at.x, at.y);
      return { distance: Math.hypot(at.x - me.x, at.y - me.y), screenDx: (theirs.x - mine.x) / projection.tw };
    }, radius);
  }

  /**
   * Who an avatar ID is: someone in the zone, or the broadcaster live on this stage.
   * @param {number} avatar
   */
  nameOf(avatar) {
    const ingest = this.zone.ingest;
    return this.others.name(avatar) ?? (ingest?.avatar === avatar ? ingest.name : `#${avatar}`);
  }

  /**
   * A token for the connection test's SFU probe, or null when there is no SFU (or no
   * answer within a few seconds).
   * @returns {Promise<import('./connectivity.js').SfuAccess | null>}
   */
  probeSfu() {
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(null), SFU_PROBE_ANSWER_MS);
      this.sfuProbe = (/** @type {import('./connectivity.js').SfuAccess | null} */ access) => {
        clearTimeout(timer);
        resolve(access);
      };
      this.connection.send({ type: 'probe_sfu' });
    });
  }

  /**
   * Keeps our avatar in view beside an open page: the camera moves to the middle of the
   * map's part the page leaves free (between the page and the video column), when that
   * part is wide enough to be worth it.
   */
  centreBesidePage() {
    if (!this.renderer) return;
    // A page beside the map, or else the build panel, covers the left of the map.
    const page = $('website-panel');
    const panel = this.websites.page && !page.hidden ? page : this.build.active ? $('build-panel') : null;
    const media = document.querySelector('.media');
    let shift = 0;
    if (panel) {
      const covered = panel.getBoundingClientRect().right;
      const mediaLeft = media ? media.getBoundingClientRect().left : window.innerWidth;
      const right = mediaLeft > covered + MIN_FREE_MAP_PX ? mediaLeft : window.innerWidth;
      if (right - covered >= MIN_FREE_MAP_PX) shift = (covered + right) / 2 - window.innerWidth / 2;
    }
    this.renderer.shift = { x: shift, y: 0 };
  }

  /** Following someone: set off toward them when they are too far, stop once close. */
  followOn() {
    const follow = this.follow;
    if (!follow || !this.world) return;
    const walking = this.avatar.path.length > 0;
    if (walking && follow.caughtUp(this.avatar.position)) {
      this.avatar.stop();
      return;
    }
    const goal = follow.next(this.avatar.position, walking);
    if (goal && !this.avatar.walkTo(this.world, goal.x, goal.y)) this.hud.say(`There is no way to ${follow.name} from here.`);
  }

  /** The map in words: where we are and who is near. */
  describe() {
    if (!this.joined || !this.world) return 'Joining the world…';
    const others = [...this.others.byAvatar.values()].map((o) => ({ avatar: o.avatar, name: o.name, position: o.target, status: o.status }));
    return describeSurroundings(this.zone.id ? this.zone : null, this.avatar.position, others, this.world.file.grid.orientation === 'isometric');
  }
}

async function main() {
  const params = new URLSearchParams(location.search);
  const world = params.get('world') ?? 'demo';
  const name = params.get('name') ?? localStorage.getItem('isoplane-name') ?? `Guest ${Math.floor(Math.random() * 1000)}`;
  const token = params.get('token') ?? (await devToken(name));
  const app = new App(token, world);
  if (params.get('camera') === 'vp9') app.media.cameraCodec = 'vp9';
  // Tests and curious people look inside with ?debug=1; nobody else loads the hook.
  if (params.get('debug') === '1') (await import('./debug.js')).expose(app);
  await app.start();
}

main().catch((error) => {
  $('notice').textContent = String(error.message ?? error);
});
