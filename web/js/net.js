// The connection to the signaling server: join, messages in and out, and reconnection.
//
// A dropped connection is retried with jittered exponential backoff (backoff.js: a random
// wait up to 0.5 s, or the server's `reconnect.after_ms`, doubling per attempt up to 30 s)
// and joins again with the same token, which resumes the session on the server (same
// avatar and seat, no flap for others). `replaced`, refused joins, and an admin's kick or
// ban are final.
//
// Some messages are requests: `request()` sends one with a fresh id and resolves with the
// server's answer that carries the same id (`admin` → `admin_result`, `list_people` →
// `people`).

import { DEFAULT_BASE_MS, baseFromHint, reconnectDelay } from './backoff.js';
import { decodePresence, encodeMoveIntent } from './protocol.js';

/** Messages that answer a request, by its `id`. */
const ANSWERS = new Set(['admin_result', 'people']);

const FINAL_ERRORS = new Set([
  'replaced', 'invalid_token', 'expired_token', 'unknown_world', 'unknown_spawn', 'too_many_connections',
  'kicked', 'banned',
]);
/**
 * Final only as the answer to our join (a token for another workspace): a request the
 * server refuses once we are in (`set_recording` gets `recording_refused`) never ends
 * the session, so nothing after `welcome` stops reconnecting for good.
 */
const FINAL_BEFORE_WELCOME = new Set(['forbidden']);

/**
 * @typedef {{ok: true, data: any} | {ok: false, error: {code: string, message: string}}} AdminResult
 */

export class Connection extends EventTarget {
  /** @param {string} url @param {string} token @param {string} world */
  constructor(url, token, world) {
    super();
    this.url = url;
    this.token = token;
    this.world = world;
    /** @type {WebSocket | null} */
    this.socket = null;
    /** Reconnection attempts since the last successful join (0: none, or the first connection). */
    this.attempt = 0;
    /** The backoff's base: the server's last `reconnect.after_ms`, until a join succeeds. */
    this.baseMs = DEFAULT_BASE_MS;
    this.stopped = false;
    this.seq = 0;
    this.requestId = 0;
    /** Requests awaiting their answer, by id (null: the connection closed first). @type {Map<number, (answer: any) => void>} */
    this.pending = new Map();
  }

  start() {
    this.stopped = false;
    this.open();
  }

  stop() {
    this.stopped = true;
    this.socket?.close();
  }

  /** @param {string} status @param {string} detail */
  status(status, detail = '') {
    this.dispatchEvent(new CustomEvent('status', { detail: { status, detail } }));
  }

  open() {
    const socket = new WebSocket(this.url);
    socket.binaryType = 'arraybuffer';
    this.socket = socket;
    let welcomed = false;
    if (this.attempt > 0) this.status('reconnecting', `attempt ${this.attempt}`);
    else this.status('connecting');
    socket.onopen = () => {
      socket.send(JSON.stringify({ type: 'join', token: this.token, world: this.world }));
    };
    socket.onmessage = (event) => {
      if (typeof event.data === 'string') {
        const message = JSON.parse(event.data);
        if (message.type === 'welcome') {
          welcomed = true;
          this.attempt = 0;
          this.baseMs = DEFAULT_BASE_MS;
          this.status('connected', message.resumed ? 'resumed' : '');
        }
        if (message.type === 'error' && (FINAL_ERRORS.has(message.code) || (!welcomed && FINAL_BEFORE_WELCOME.has(message.code)))) this.stopped = true;
        // The server closes the connection right after: do not come back by ourselves.
        if (message.type === 'moderated' && (message.action === 'kicked' || message.action === 'banned')) this.stopped = true;
        if (ANSWERS.has(message.type) && typeof message.id === 'number') {
          const resolve = this.pending.get(message.id);
          this.pending.delete(message.id);
          resolve?.(message);
        }
        if (message.type === 'reconnect') this.baseMs = baseFromHint(message.after_ms);
        this.dispatchEvent(new CustomEvent('message', { detail: message }));
      } else {
        const presence = decodePresence(event.data);
        if (presence) this.dispatchEvent(new CustomEvent('presence', { detail: presence }));
      }
    };
    socket.onclose = () => {
      if (this.socket !== socket) return;
      this.socket = null;
      this.failPending();
      if (this.stopped) {
        this.status('disconnected');
        return;
      }
      this.attempt += 1;
      this.status('reconnecting', `attempt ${this.attempt}`);
      setTimeout(() => {
        if (!this.stopped) this.open();
      }, reconnectDelay(this.attempt, this.baseMs));
    };
  }

  /** @param {object} message */
  send(message) {
    if (this.socket?.readyState === WebSocket.OPEN) this.socket.send(JSON.stringify(message));
  }

  /**
   * Sends `message` with a fresh `id` and resolves with the answer carrying it, or null if
   * there is no connection or it closes before the answer.
   * @param {object} message @returns {Promise<any>}
   */
  request(message) {
    if (this.socket?.readyState !== WebSocket.OPEN) return Promise.resolve(null);
    const id = ++this.requestId;
    return new Promise((resolve) => {
      this.pending.set(id, resolve);
      this.send({ ...message, id });
    });
  }

  /**
   * Sends an admin command (docs/moderation.md) and resolves with its result.
   * @param {object} command @returns {Promise<AdminResult>}
   */
  async admin(command) {
    const answer = await this.request({ type: 'admin', command });
    if (!answer) return { ok: false, error: { code: 'disconnected', message: 'not connected to the server, or the connection closed before it answered' } };
    return answer.ok ? { ok: true, data: answer.data ?? {} } : { ok: false, error: answer.error };
  }

  /** The connection closed: requests still waiting will get no answer. */
  failPending() {
    for (const resolve of this.pending.values()) resolve(null);
    this.pending.clear();
  }

  /** @param {number} x @param {number} y @param {string} facing @param {string} state @returns {number} the seq */
  sendMove(x, y, facing, state) {
    this.seq += 1;
    if (this.socket?.readyState === WebSocket.OPEN) this.socket.send(encodeMoveIntent(this.seq, x, y, facing, state));
    return this.seq;
  }
}
