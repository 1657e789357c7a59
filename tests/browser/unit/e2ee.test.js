// The web client's end-to-end media encryption (web/js/e2ee.js), under Node's WebCrypto:
// the sealed frame's layout, the clear prefix each codec keeps, frames that must be
// dropped (unknown key, wrong key, tampered, truncated), and key rotation with frames of
// the previous key still under way.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  E2ee, FrameCrypto, IV_BYTES, KEPT_KEYS, KeyRing, OVERHEAD_BYTES, TAG_BYTES, clearPrefixBytes, clearPrefixOf, importRoomKey,
} from '../../../web/js/e2ee.js';

/** A fresh 32-byte room key as signaling sends it (standard base64). */
const freshKey = () => Buffer.from(crypto.getRandomValues(new Uint8Array(32))).toString('base64');

/** A sealer and an opener sharing key `id` (and any others given). */
async function pair(keys) {
  const sender = new FrameCrypto();
  const receiver = new FrameCrypto();
  for (const [id, base64] of keys) {
    sender.addKey(id, await importRoomKey(base64));
    receiver.addKey(id, await importRoomKey(base64));
  }
  return { sender, receiver };
}

/** A frame's bytes: recognisable, `length` long. */
const frameBytes = (length) => Uint8Array.from({ length }, (_, i) => (i * 7 + 3) & 0xff).buffer;

/** A frame as the browser hands it over. */
const encoded = (data, mimeType, type) => ({ data, type, getMetadata: () => ({ mimeType }) });

test('a sealed frame opens to the same bytes, with the clear prefix, tag, IV and key ID where the format puts them', async () => {
  const { sender, receiver } = await pair([[7, freshKey()]]);
  const plain = frameBytes(500);
  const sealed = new Uint8Array(await sender.encrypt(plain, 10));
  assert.equal(sealed.length, 500 + TAG_BYTES + IV_BYTES + 1);
  assert.deepEqual(sealed.subarray(0, 10), new Uint8Array(plain).subarray(0, 10), 'the prefix stays in the clear');
  assert.notDeepEqual(sealed.subarray(10, 500), new Uint8Array(plain).subarray(10), 'the rest is not');
  assert.equal(sealed.at(-1), 7, 'the key ID is the last byte');
  const opened = await receiver.decrypt(sealed.buffer, 10);
  assert.deepEqual(new Uint8Array(opened), new Uint8Array(plain));
  assert.equal(sender.counters.encrypted, 1);
  assert.equal(receiver.counters.decrypted, 1);
});

test('every frame gets its own IV: 4 bytes fixed per sender, then a counter', async () => {
  const { sender } = await pair([[0, freshKey()]]);
  const ivs = [];
  for (let i = 0; i < 5; i++) {
    const sealed = new Uint8Array(await sender.encrypt(frameBytes(40), 3));
    ivs.push(sealed.subarray(sealed.length - 1 - IV_BYTES, sealed.length - 1));
  }
  const hex = ivs.map((iv) => Buffer.from(iv).toString('hex'));
  assert.equal(new Set(hex).size, 5);
  assert.ok(hex.every((h) => h.slice(0, 8) === hex[0].slice(0, 8)), 'one salt per sender');
  const counters = ivs.map((iv) => new DataView(iv.buffer, iv.byteOffset + 4, 8).getBigUint64(0));
  for (let i = 1; i < 5; i++) assert.equal(counters[i], (counters[i - 1] + 1n) & 0xffffffffffffffffn);
  // Two senders sharing the key do not share their IVs.
  const other = new FrameCrypto();
  other.ring = sender.ring;
  const theirs = new Uint8Array(await other.encrypt(frameBytes(40), 3));
  assert.ok(!hex.includes(Buffer.from(theirs.subarray(theirs.length - 1 - IV_BYTES, theirs.length - 1)).toString('hex')));
});

test('the clear prefix: VP8 keeps 10 bytes of a keyframe and 3 of others, Opus its TOC byte, other codecs nothing', () => {
  assert.equal(clearPrefixBytes('video/VP8', 'key'), 10);
  assert.equal(clearPrefixBytes('video/VP8', 'delta'), 3);
  assert.equal(clearPrefixBytes('audio/opus', undefined), 1);
  for (const codec of ['video/VP9', 'video/H264', 'video/AV1']) {
    assert.equal(clearPrefixBytes(codec, 'key'), 0);
    assert.equal(clearPrefixBytes(codec, 'delta'), 0);
  }
  // Read from the frames the browser gives; without metadata, our own codecs.
  assert.equal(clearPrefixOf(encoded(frameBytes(9), 'video/VP8', 'key')), 10);
  assert.equal(clearPrefixOf(encoded(frameBytes(9), 'video/VP9', 'key')), 0);
  assert.equal(clearPrefixOf(encoded(frameBytes(9), 'audio/opus', undefined)), 1);
  assert.equal(clearPrefixOf({ data: frameBytes(9) }), 1);
  assert.equal(clearPrefixOf({ data: frameBytes(9), type: 'delta' }), 3);
});

test('frames of each codec go through the browser-facing transform and back', async () => {
  const { sender, receiver } = await pair([[1, freshKey()]]);
  for (const [mimeType, type, clear] of [['video/VP8', 'key', 10], ['video/VP8', 'delta', 3], ['audio/opus', undefined, 1], ['video/VP9', 'key', 0], ['video/H264', 'delta', 0]]) {
    const plain = frameBytes(120);
    const frame = encoded(plain, mimeType, type);
    assert.equal(await sender.transform(frame, 'send'), true);
    const sealed = new Uint8Array(frame.data);
    assert.deepEqual(sealed.subarray(0, clear), new Uint8Array(plain).subarray(0, clear), `${mimeType} ${type}: the prefix`);
    assert.notDeepEqual(sealed.subarray(clear, clear + 16), new Uint8Array(plain).subarray(clear, clear + 16), `${mimeType} ${type}: the body is sealed`);
    assert.equal(await receiver.transform(frame, 'receive'), true);
    assert.deepEqual(new Uint8Array(frame.data), new Uint8Array(plain), `${mimeType} ${type}: opened`);
  }
  // An empty frame has nothing to hide: it goes as it is, uncounted.
  const empty = encoded(new ArrayBuffer(0), 'video/VP8', 'empty');
  assert.equal(await sender.transform(empty, 'send'), true);
  assert.equal(empty.data.byteLength, 0);
});

test('frames shorter than the clear prefix are sealed whole and still open', async () => {
  const { sender, receiver } = await pair([[2, freshKey()]]);
  for (const length of [1, 2, 5, 9]) {
    const plain = frameBytes(length);
    const sealed = await sender.encrypt(plain, 10);
    assert.equal(sealed.byteLength, length + OVERHEAD_BYTES);
    assert.deepEqual(new Uint8Array(await receiver.decrypt(sealed, 10)), new Uint8Array(plain));
  }
});

test('without a key nothing is sent, and an unknown key ID is dropped and counted', async () => {
  const lonely = new FrameCrypto();
  assert.equal(await lonely.encrypt(frameBytes(100), 3), null);
  assert.equal(lonely.counters.unsentNoKey, 1);
  assert.equal(lonely.counters.encrypted, 0);

  const { sender } = await pair([[9, freshKey()]]);
  const sealed = await sender.encrypt(frameBytes(100), 3);
  const stranger = new FrameCrypto();
  stranger.addKey(8, await importRoomKey(freshKey()));
  assert.equal(await stranger.decrypt(sealed, 3), null);
  assert.deepEqual([stranger.counters.droppedNoKey, stranger.counters.decrypted], [1, 0]);
  const frame = encoded(sealed, 'video/VP8', 'delta');
  assert.equal(await stranger.transform(frame, 'receive'), false, 'the transform drops it');
  assert.equal(stranger.counters.droppedNoKey, 2);
});

test('a frame sealed with another key under the same ID, or tampered with, fails authentication and is dropped', async () => {
  const { sender } = await pair([[3, freshKey()]]);
  const impostor = new FrameCrypto();
  impostor.addKey(3, await importRoomKey(freshKey()));
  const sealed = await sender.encrypt(frameBytes(200), 10);
  assert.equal(await impostor.decrypt(sealed, 10), null);
  assert.equal(impostor.counters.droppedBadAuth, 1);

  const receiver = new FrameCrypto();
  receiver.ring = sender.ring;
  const bytes = new Uint8Array(sealed);
  // A flipped bit in the clear prefix (authenticated data), in the body, in the tag.
  for (const at of [0, 50, bytes.length - 1 - IV_BYTES - 1]) {
    const tampered = bytes.slice();
    tampered[at] ^= 1;
    assert.equal(await receiver.decrypt(tampered.buffer, 10), null, `bit flipped at ${at}`);
  }
  // Opened with the wrong clear prefix (another codec's idea of it): refused too.
  assert.equal(await receiver.decrypt(sealed, 3), null);
  assert.equal(receiver.counters.droppedBadAuth, 4);
  // Too short to have been sealed at all.
  assert.equal(await receiver.decrypt(new Uint8Array(OVERHEAD_BYTES - 1).buffer, 0), null);
  assert.equal(receiver.counters.droppedMalformed, 1);
  assert.equal(receiver.counters.decrypted, 0);
});

test('after a key rotation frames are sealed with the new key, and frames of the previous one still open', async () => {
  const first = freshKey();
  const second = freshKey();
  const { sender, receiver } = await pair([[41, first]]);
  const inFlight = await sender.encrypt(frameBytes(300), 10);
  // Someone left: everyone gets key 42; the receiver has it before the old frame arrives.
  const next = await importRoomKey(second);
  sender.addKey(42, next);
  receiver.addKey(42, await importRoomKey(second));
  const fresh = new Uint8Array(await sender.encrypt(frameBytes(300), 10));
  assert.equal(fresh.at(-1), 42, 'sealed with the newest key');
  assert.ok(await receiver.decrypt(inFlight, 10), 'the frame under way with key 41 still opens');
  assert.ok(await receiver.decrypt(fresh.buffer, 10));
  // Whoever did not get key 42 (the one who left) cannot open what follows.
  const leaver = new FrameCrypto();
  leaver.addKey(41, await importRoomKey(first));
  assert.equal(await leaver.decrypt(fresh.buffer, 10), null);
  assert.equal(leaver.counters.droppedNoKey, 1);
});

test('the key ring keeps the newest few keys; a key ID met again after wrapping replaces the old key', async () => {
  const ring = new KeyRing();
  const keys = await Promise.all(Array.from({ length: KEPT_KEYS + 2 }, () => importRoomKey(freshKey())));
  keys.forEach((key, i) => ring.add(254 + i > 255 ? 254 + i - 256 : 254 + i, key));
  assert.equal(ring.keys.size, KEPT_KEYS);
  assert.deepEqual([...ring.keys.keys()], [0, 1, 2, 3]);
  assert.equal(ring.newest, 3);
  const again = await importRoomKey(freshKey());
  ring.add(1, again);
  assert.equal(ring.newest, 1);
  assert.equal(ring.keys.get(1), again);
  assert.deepEqual([...ring.keys.keys()], [0, 2, 3, 1]);
});

test('a room key must be base64 of exactly 32 bytes', async () => {
  await assert.rejects(importRoomKey(Buffer.alloc(16).toString('base64')), /16 bytes, not 32/);
  await assert.rejects(importRoomKey('not base64 at all!'), /not base64/);
  const key = await importRoomKey(freshKey());
  assert.equal(key.algorithm.name, 'AES-GCM');
  assert.equal(key.extractable, false);
});

test('the page keeps the keys of the zone it is in, newest last, and forgets them on leaving it', async () => {
  const page = new E2ee(null);
  let changes = 0;
  page.onChange = () => (changes += 1);
  await page.enterZone('e2ee-room');
  assert.equal(page.hasKey('e2ee-room'), false);
  assert.equal(await page.addKey('e2ee-room', 5, freshKey()), true);
  assert.equal(await page.addKey('e2ee-room', 6, freshKey()), true);
  assert.equal(page.hasKey('e2ee-room'), true);
  assert.deepEqual(page.state().keyIds, [5, 6]);
  assert.equal(page.state().newestKeyId, 6);
  // Bad keys are ignored, and change nothing.
  assert.equal(await page.addKey('e2ee-room', 7, 'AAAA'), false);
  assert.equal(await page.addKey('e2ee-room', 300, freshKey()), false);
  assert.deepEqual(page.state().keyIds, [5, 6]);
  // Entering the same zone again (a fresh snapshot) keeps them; another zone drops them.
  await page.enterZone('e2ee-room');
  assert.equal(page.hasKey('e2ee-room'), true);
  await page.enterZone('lobby');
  assert.equal(page.hasKey('e2ee-room'), false);
  assert.deepEqual(page.state().keyIds, []);
  assert.ok(changes >= 4);
});

test('keys and zone changes are applied in the order they came, whatever the time each key takes to import', async () => {
  const page = new E2ee(null);
  // Key 1 of the room, then we leave for the lobby before it is imported.
  const added = page.addKey('e2ee-room', 1, freshKey());
  const left = page.enterZone('lobby');
  await Promise.all([added, left]);
  assert.equal(page.zone, 'lobby');
  assert.equal(page.hasKey('e2ee-room'), false);
});
