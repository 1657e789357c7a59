// End-to-end encryption of media frames on the SFU, for zones that require it.
//
// Signaling gives each member of an end-to-end encrypted zone the zone's media key
// (`e2ee_key`: 32 random bytes and a key ID) and a new one whenever someone leaves; the
// SFU never has it. Each encoded frame is sealed before the browser packetizes it and
// opened after the receiving browser reassembles it, so the SFU forwards bytes it cannot
// read. Peer-to-peer links need none of this: DTLS-SRTP between two browsers is already
// end to end.
//
// A sealed frame (SFrame-like, as Jitsi does it for Chromium):
//
//   clear prefix | AES-256-GCM(rest of the frame, additional data = clear prefix) + 16-byte tag | IV (12) | key ID (1)
//
// The clear prefix is what the receiving browser's depacketizer and jitter buffer read
// of the codec's own header: VP8's frame tag and, on keyframes, its size (10 bytes on
// keyframes, 3 on others), Opus's TOC byte (1); nothing for other codecs (VP9 and H.264
// carry what the receiver needs in the RTP payload descriptor). It is authenticated, not
// hidden. The IV is 4 random bytes per sender plus a 64-bit counter starting at a random
// value: unique per frame however many people share the key.
//
// Invariants:
// - Nothing is sent in the clear: without a key a frame is not sent at all.
// - Nothing unauthenticated reaches a decoder: a frame whose key ID is unknown, whose tag
//   does not verify or that is too short to be sealed is dropped, and counted.
// - Frames are sealed with the newest key; the few keys before it still open frames that
//   were under way when it changed.
//
// The sealing runs in a worker, off the thread that draws the map: attached with
// RTCRtpScriptTransform where the browser has it, else with Chromium's older encoded
// streams (`encodedInsertableStreams`), which are handed to the same worker. This module
// is that worker too (see the end of the file): it imports nothing, so it loads in a
// worker, and under Node for the unit tests.

/** Bytes of the IV, of the key ID after it, and of the GCM tag. */
export const IV_BYTES = 12;
export const KEY_ID_BYTES = 1;
export const TAG_BYTES = 16;
/** The least a sealed frame adds to the frame it seals. */
export const OVERHEAD_BYTES = TAG_BYTES + IV_BYTES + KEY_ID_BYTES;
/** Keys kept: the newest and the ones before it, for frames still under way. */
export const KEPT_KEYS = 4;
/** How often, at most, the worker reports its counters to the page. */
const COUNTERS_EVERY_MS = 200;

/**
 * @typedef {{encrypted: number, decrypted: number, droppedNoKey: number, droppedBadAuth: number,
 *   droppedMalformed: number, unsentNoKey: number}} Counters
 *   `unsentNoKey`: frames of ours not sent because no key had come yet.
 * @typedef {'send' | 'receive'} Side
 * @typedef {{type?: string, data: ArrayBuffer, getMetadata?: () => {mimeType?: string}}} EncodedFrame
 *   an RTCEncodedVideoFrame (with `type`) or RTCEncodedAudioFrame (without)
 * @typedef {'script' | 'streams'} Mode how frames reach the worker
 */

/** @returns {Counters} */
export const zeroCounters = () => ({ encrypted: 0, decrypted: 0, droppedNoKey: 0, droppedBadAuth: 0, droppedMalformed: 0, unsentNoKey: 0 });

/**
 * How many bytes at the start of a frame stay in the clear.
 * @param {string} mimeType the frame's codec, as `getMetadata().mimeType` says (`video/VP8`)
 * @param {string | undefined} frameType `key` or `delta` for video, undefined for audio
 */
export function clearPrefixBytes(mimeType, frameType) {
  switch (mimeType.toLowerCase()) {
    case 'video/vp8':
      return frameType === 'key' ? 10 : 3;
    case 'audio/opus':
      return 1;
    default:
      return 0;
  }
}

/** The clear prefix of an encoded frame from the browser. @param {EncodedFrame} frame */
export function clearPrefixOf(frame) {
  const audio = frame.type === undefined;
  // Chromium names the codec in every frame's metadata; if a browser did not, these are
  // the codecs our camera and microphone send.
  const mimeType = frame.getMetadata?.().mimeType ?? (audio ? 'audio/opus' : 'video/vp8');
  return clearPrefixBytes(mimeType, frame.type);
}

/**
 * Decodes a key from `e2ee_key` (standard base64 of 32 bytes) into an AES-GCM key that
 * can only encrypt and decrypt; rejects anything else.
 * @param {string} base64 @returns {Promise<CryptoKey>}
 */
export async function importRoomKey(base64) {
  let raw;
  try {
    raw = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
  } catch {
    throw new Error('the room key is not base64');
  }
  if (raw.length !== 32) throw new Error(`the room key has ${raw.length} bytes, not 32`);
  return crypto.subtle.importKey('raw', raw, { name: 'AES-GCM' }, false, ['encrypt', 'decrypt']);
}

/** The keys of one zone by key ID, the newest last; at most KEPT_KEYS. */
export class KeyRing {
  constructor() {
    /** @type {Map<number, CryptoKey>} insertion order is arrival order */
    this.keys = new Map();
  }

  /** The newest key's ID, or null. */
  get newest() {
    let last = null;
    for (const id of this.keys.keys()) last = id;
    return last;
  }

  /** Adds a key as the newest (a key ID seen before, after wrapping at 256, replaces it). @param {number} id @param {CryptoKey} key */
  add(id, key) {
    this.keys.delete(id);
    this.keys.set(id, key);
    while (this.keys.size > KEPT_KEYS) this.keys.delete(/** @type {number} */ (this.keys.keys().next().value));
  }

  clear() {
    this.keys.clear();
  }

  /** The keys, oldest first, as posted to the worker. @returns {[number, CryptoKey][]} */
  entries() {
    return [...this.keys];
  }
}

/** A fresh IV source: 4 random bytes, then a 64-bit counter from a random start. */
function ivSource() {
  const salt = crypto.getRandomValues(new Uint8Array(4));
  const start = crypto.getRandomValues(new Uint32Array(2));
  let counter = (BigInt(start[0]) << 32n) | BigInt(start[1]);
  return () => {
    const iv = new Uint8Array(IV_BYTES);
    iv.set(salt, 0);
    new DataView(iv.buffer).setBigUint64(4, counter);
    counter = (counter + 1n) & 0xffff_ffff_ffff_ffffn;
    return iv;
  };
}

/**
 * Seals and opens frames with a key ring, counting what it does. Pure WebCrypto: runs in
 * the worker, and under Node in the unit tests.
 */
export class FrameCrypto {
  constructor() {
    this.ring = new KeyRing();
    this.counters = zeroCounters();
    this.nextIv = ivSource();
    /** Called after any counter changed. */
    this.onCount = () => {};
  }

  /** @param {number} id @param {CryptoKey} key */
  addKey(id, key) {
    this.ring.add(id, key);
  }

  /** Replaces every key (the page's ring, oldest first). @param {[number, CryptoKey][]} entries */
  setKeys(entries) {
    this.ring.clear();
    for (const [id, key] of entries) this.ring.add(id, key);
  }

  /** @param {keyof Counters} name */
  count(name) {
    this.counters[name] += 1;
    this.onCount();
  }

  /**
   * Seals `data` with the newest key, leaving its first `clear` bytes in the clear; null
   * (send nothing) without a key.
   * @param {ArrayBuffer} data @param {number} clear @returns {Promise<ArrayBuffer | null>}
   */
  async encrypt(data, clear) {
    const id = this.ring.newest;
    if (id === null) {
      this.count('unsentNoKey');
      return null;
    }
    const key = /** @type {CryptoKey} */ (this.ring.keys.get(id));
    const bytes = new Uint8Array(data);
    const prefix = bytes.subarray(0, Math.min(clear, bytes.length));
    const iv = this.nextIv();
    const sealed = new Uint8Array(await crypto.subtle.encrypt(
      { name: 'AES-GCM', iv, additionalData: prefix, tagLength: TAG_BYTES * 8 }, key, bytes.subarray(prefix.length)));
    const out = new Uint8Array(prefix.length + sealed.length + IV_BYTES + KEY_ID_BYTES);
    out.set(prefix, 0);
    out.set(sealed, prefix.length);
    out.set(iv, prefix.length + sealed.length);
    out[out.length - 1] = id;
    this.count('encrypted');
    return out.buffer;
  }

  /**
   * Opens a sealed frame whose codec leaves `clear` bytes in the clear; null (drop it)
   * when it cannot be opened.
   * @param {ArrayBuffer} data @param {number} clear @returns {Promise<ArrayBuffer | null>}
   */
  async decrypt(data, clear) {
    const bytes = new Uint8Array(data);
    if (bytes.length < OVERHEAD_BYTES) {
      this.count('droppedMalformed');
      return null;
    }
    const key = this.ring.keys.get(bytes[bytes.length - 1]);
    if (!key) {
      this.count('droppedNoKey');
      return null;
    }
    // The sender left fewer bytes in the clear when the whole frame was shorter.
    const prefix = bytes.subarray(0, Math.min(clear, bytes.length - OVERHEAD_BYTES));
    const ivAt = bytes.length - KEY_ID_BYTES - IV_BYTES;
    const iv = bytes.subarray(ivAt, ivAt + IV_BYTES);
    let opened;
    try {
      opened = new Uint8Array(await crypto.subtle.decrypt(
        { name: 'AES-GCM', iv, additionalData: prefix, tagLength: TAG_BYTES * 8 }, key, bytes.subarray(prefix.length, ivAt)));
    } catch {
      this.count('droppedBadAuth');
      return null;
    }
    const out = new Uint8Array(prefix.length + opened.length);
    out.set(prefix, 0);
    out.set(opened, prefix.length);
    this.count('decrypted');
    return out.buffer;
  }

  /**
   * Seals or opens one encoded frame from the browser in place; false: drop it. An empty
   * frame has nothing to hide and goes as it is.
   * @param {EncodedFrame} frame @param {Side} side
   */
  async transform(frame, side) {
    if (frame.data.byteLength === 0) return true;
    const clear = clearPrefixOf(frame);
    const data = side === 'send' ? await this.encrypt(frame.data, clear) : await this.decrypt(frame.data, clear);
    if (!data) return false;
    frame.data = data;
    return true;
  }

  /**
   * Runs the frames of one sender or receiver through `transform`, in order.
   * @param {ReadableStream} readable @param {WritableStream} writable @param {Side} side
   */
  pipe(readable, writable, side) {
    readable
      .pipeThrough(new TransformStream({
        transform: async (frame, controller) => {
          if (await this.transform(frame, side)) controller.enqueue(frame);
        },
      }))
      .pipeTo(writable)
      .catch(() => {
        // The sender or receiver went away with its connection: nothing more to do.
      });
  }
}

/** How this browser can hand encoded frames to a worker, or null if it cannot. @returns {Mode | null} */
export function e2eeSupport() {
  if ('RTCRtpScriptTransform' in globalThis) return 'script';
  if (globalThis.RTCRtpSender && 'createEncodedStreams' in RTCRtpSender.prototype) return 'streams';
  return null;
}

/**
 * The page's side: the current zone's keys, the worker that seals and opens frames, and
 * its counters. One per page; SFU sessions of encrypted zones attach their senders and
 * receivers to it.
 */
export class E2ee {
  /** @param {Mode | null} [mode] how frames reach the worker (the browser's best by default) */
  constructor(mode = e2eeSupport()) {
    this.mode = mode;
    /** The zone whose keys the ring holds. */
    this.zone = '';
    this.ring = new KeyRing();
    /** The worker's counters, as last reported. */
    this.counters = zeroCounters();
    /** @type {Worker | null} started with the first sender or receiver to protect */
    this.worker = null;
    /** Senders and receivers attached already: each exactly once. @type {WeakSet<RTCRtpSender | RTCRtpReceiver>} */
    this.attached = new WeakSet();
    /** Key changes, one at a time and in the order they came. @type {Promise<void>} */
    this.changes = Promise.resolve();
    /** Called when the keys change (the lock shows whether one has come). */
    this.onChange = () => {};
  }

  /** Whether a key of `zone` is here. @param {string} zone */
  hasKey(zone) {
    return this.zone === zone && this.ring.keys.size > 0;
  }

  /** We are in `zone` now: keys of any other zone are forgotten. @param {string} zone */
  enterZone(zone) {
    this.changes = this.changes.then(() => {
      if (zone === this.zone) return;
      this.zone = zone;
      this.ring.clear();
      this.keysChanged();
    });
    return this.changes;
  }

  /**
   * A key from `e2ee_key`; false when it was unusable (and is ignored).
   * @param {string} zone @param {number} keyId @param {string} base64
   * @returns {Promise<boolean>}
   */
  addKey(zone, keyId, base64) {
    /** @type {Promise<boolean>} */
    const added = this.changes.then(async () => {
      if (!Number.isInteger(keyId) || keyId < 0 || keyId > 255) throw new Error(`the key ID ${keyId} is not a byte`);
      const key = await importRoomKey(base64);
      // A key for another zone than ours: we are entering it (its snapshot comes first,
      // but a key is never worth losing over the order).
      if (zone !== this.zone) {
        this.zone = zone;
        this.ring.clear();
      }
      this.ring.add(keyId, key);
      this.keysChanged();
      return true;
    }).catch((error) => {
      console.warn(`room key ${keyId} of ${zone} ignored: ${error.message}`);
      return false;
    });
    this.changes = added.then(() => {});
    return added;
  }

  keysChanged() {
    this.worker?.postMessage({ type: 'keys', keys: this.ring.entries() });
    this.onChange();
  }

  /** The worker, started on first use with the keys known so far. */
  startWorker() {
    if (this.worker) return this.worker;
    const worker = new Worker(new URL(import.meta.url), { type: 'module', name: 'isoplane-e2ee' });
    worker.onmessage = (event) => {
      if (event.data?.type === 'counters') this.counters = event.data.counters;
    };
    worker.onerror = (event) => console.warn('the media encryption worker failed', event.message);
    worker.postMessage({ type: 'keys', keys: this.ring.entries() });
    this.worker = worker;
    return worker;
  }

  /** Seals what `sender` sends, from now on (once per sender). @param {RTCRtpSender} sender */
  protectSender(sender) {
    this.attach(sender, 'send');
  }

  /** Opens what `receiver` receives, from now on (once per receiver). @param {RTCRtpReceiver} receiver */
  protectReceiver(receiver) {
    this.attach(receiver, 'receive');
  }

  /** @param {RTCRtpSender | RTCRtpReceiver} end @param {Side} side */
  attach(end, side) {
    if (!this.mode || this.attached.has(end)) return;
    this.attached.add(end);
    const worker = this.startWorker();
    try {
      if (this.mode === 'script') {
        /** @type {any} */ (end).transform = new /** @type {any} */ (globalThis).RTCRtpScriptTransform(worker, { side });
      } else {
        const { readable, writable } = /** @type {any} */ (end).createEncodedStreams();
        worker.postMessage({ type: 'streams', side, readable, writable }, [readable, writable]);
      }
    } catch (error) {
      console.warn(`cannot encrypt the media of a ${side === 'send' ? 'sender' : 'receiver'}`, error);
    }
  }

  /** What the tests and the debug view read. */
  state() {
    return { mode: this.mode, zone: this.zone, keyIds: [...this.ring.keys.keys()], newestKeyId: this.ring.newest, counters: { ...this.counters } };
  }
}

/** In the worker: frames come from the page's senders and receivers, keys from the page. */
function runWorker() {
  const scope = /** @type {any} */ (globalThis);
  const frames = new FrameCrypto();
  let reportDue = false;
  frames.onCount = () => {
    if (reportDue) return;
    reportDue = true;
    setTimeout(() => {
      reportDue = false;
      scope.postMessage({ type: 'counters', counters: frames.counters });
    }, COUNTERS_EVERY_MS);
  };
  scope.onrtctransform = (/** @type {any} */ event) => {
    const transformer = event.transformer;
    frames.pipe(transformer.readable, transformer.writable, transformer.options.side);
  };
  scope.onmessage = (/** @type {MessageEvent} */ event) => {
    const message = event.data;
    if (message.type === 'keys') frames.setKeys(message.keys);
    if (message.type === 'streams') frames.pipe(message.readable, message.writable, message.side);
  };
}

const workerScope = /** @type {any} */ (globalThis).WorkerGlobalScope;
if (workerScope && globalThis instanceof workerScope) runWorker();
