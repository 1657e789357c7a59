// The window into a running client for the browser tests, benchmarks and curious people:
// `window.isoplane`, loaded only when the page is opened with `?debug=1` (the test harness
// adds it). It reads the session's live state and adds a few probes that only tests need
// (what we play of a peer's media, a simulated crowd); the client itself never calls them.

import { SEND_INTERVAL_MS } from './prediction.js';
import { SUBTILE } from './world.js';

/** @typedef {import('./app.js').App} App */
/** @typedef {import('./world.js').Point} Point */

/** First avatar number of a simulated crowd, far above any the server hands out in a test. */
const CROWD_BASE = 1_000_000;

/** A live view of `app`: reading a property always reads the session's current state. */
class DebugView {
  /** @param {App} app */
  constructor(app) {
    this.app = app;
  }

  get self() { return this.app.self; }
  get user() { return this.app.user; }
  get joined() { return this.app.joined; }
  get admin() { return this.app.admin; }
  get zone() { return this.app.zone; }
  get renderer() { return this.app.renderer; }
  /** The world as loaded (world.js), and its version (the file's content ID). */
  get world() { return this.app.world; }
  get worldVersion() { return this.app.worldVersion; }
  get connection() { return this.app.connection; }
  get media() { return this.app.media; }
  /**
   * End-to-end encryption: `{mode, zone, keyIds, newestKeyId, counters}`, the counters
   * (`encrypted`, `decrypted`, `droppedNoKey`, `droppedBadAuth`, `droppedMalformed`,
   * `unsentNoKey`) as the worker last reported them (every 200 ms while frames flow).
   */
  get e2ee() { return this.app.media.e2ee.state(); }
  /** The zone's recording: `{allowed, current: {by, since} | null}`. */
  get recording() { return this.app.recording; }
  /** Everyone else, by avatar number. */
  get others() { return this.app.others.byAvatar; }
  get notices() { return this.app.hud.notices; }
  /** What we say we are, and whether "away" was set by itself. */
  get availability() { return this.app.availability; }
  get lastModeration() { return this.app.hud.lastModeration; }
  /** Whom we follow (`{avatar, name, at}`), if anyone. */
  get follow() { return this.app.follow; }
  /** The way to a located person, while it is drawn. */
  get located() { return this.app.located; }
  get knocks() { return this.app.knocks; }
  /** The connection test (connectivity.js). */
  get connectionTest() { return this.app.connectionTest; }
  /** Pages beside the map (websites.js). */
  get websites() { return this.app.websites; }
  /** How many frames have been drawn (the frame loop draws only what changed). */
  get framesDrawn() { return this.app.renderer?.frames ?? 0; }
  /** Our predicted position; a test may set it to mispredict on purpose. */
  get position() { return this.app.avatar.position; }
  set position(/** @type {Point} */ at) { this.app.avatar.position = at; }
  get path() { return this.app.avatar.path; }
  get goal() { return this.app.avatar.goal; }
  get lastSent() { return this.app.avatar.lastSent; }
  get corrections() { return this.app.avatar.corrections; }
  get lastCorrection() { return this.app.avatar.lastCorrection; }

  /** Where the middle of tile (x, y) is on the page (CSS pixels). @param {number} x @param {number} y */
  screenOf(x, y) {
    return this.screenAt(x + 0.5, y + 0.5);
  }

  /** Where tile point (x, y) (tile units) is on the page (CSS pixels). @param {number} x @param {number} y */
  screenAt(x, y) {
    const renderer = /** @type {import('./render.js').Renderer} */ (this.app.renderer);
    const s = renderer.projection.toScreen(x, y);
    const rect = renderer.canvas.getBoundingClientRect();
    return { x: rect.left + (s.x + renderer.offset.x) * renderer.zoom, y: rect.top + (s.y + renderer.offset.y) * renderer.zoom };
  }

  /** Pans the view to tile point (x, y) and draws it (the next frame places it). @param {number} x @param {number} y */
  lookAt(x, y) {
    this.app.renderer?.lookAt(x, y);
    this.app.frame.scene = '';
    this.app.wake();
  }

  /** Build mode (build.js). */
  get build() { return this.app.build; }

  /** Click-to-walk to tile (x, y), as a click there would. @param {number} x @param {number} y */
  walkTo(x, y) {
    return this.app.walkTo(x, y);
  }

  /** Presses a mute button. @param {HTMLButtonElement} button @param {'audio' | 'video'} kind */
  toggle(button, kind) {
    this.app.toggle(button, kind);
  }

  /** Whether an admin muted our `kind` (we send none of it). @param {'audio' | 'video'} kind */
  selfMuted(kind = 'audio') {
    return this.app.media.adminMuted[kind];
  }

  /** Whether we play none of `avatar`'s audio: every received audio track off and its element muted. @param {number} avatar */
  peerAudioMuted(avatar) {
    const peer = this.app.media.peers.get(avatar);
    if (!peer) return null;
    const tracks = peer.pc.getReceivers().map((r) => r.track).filter((t) => t.kind === 'audio');
    return tracks.length > 0 && tracks.every((t) => !t.enabled) && peer.video.muted;
  }

  /** The peak level we play of `avatar`'s voice now, after distance audio (0–128), or null. @param {number} avatar */
  playedLevel(avatar) {
    return this.app.media.spatial.playedLevel(avatar);
  }

  /** Whether we show none of `avatar`'s video. @param {number} avatar */
  peerVideoHidden(avatar) {
    const peer = this.app.media.peers.get(avatar);
    if (!peer) return null;
    const tracks = peer.pc.getReceivers().map((r) => r.track).filter((t) => t.kind === 'video');
    return tracks.length > 0 && tracks.every((t) => !t.enabled) && peer.tile.classList.contains('video-muted');
  }

  /**
   * Adds `count` simulated people walking circles around us, fed through the same
   * presence path as real ones, to measure rendering under a crowd.
   * @param {number} count
   */
  simulateCrowd(count) {
    const others = this.app.others;
    const centre = { ...this.app.avatar.position };
    for (let i = 0; i < count; i++) {
      const avatar = CROWD_BASE + i;
      others.add({ avatar, user: `crowd-${i}`, name: `Guest ${i}`, position: { ...centre }, facing: 'south', state: 'walking' });
    }
    let phase = 0;
    const step = () => {
      phase += 0.05;
      const entries = [];
      for (let i = 0; i < count; i++) {
        const ring = 1 + (i % 5) * 0.9;
        const angle = phase + (i * 2 * Math.PI) / count;
        entries.push({ avatar: CROWD_BASE + i, x: Math.round(centre.x + Math.cos(angle) * ring * SUBTILE), y: Math.round(centre.y + Math.sin(angle) * ring * SUBTILE), facing: 'east', state: 'walking' });
      }
      others.applyPresence(entries);
      this.app.wake();
    };
    setInterval(step, SEND_INTERVAL_MS);
  }
}

/** Puts the view of `app` at `window.isoplane`. @param {App} app */
export function expose(app) {
  Object.assign(window, { isoplane: new DebugView(app) });
}
