// The web client's frame encryption (web/js/e2ee.js) in headless Chromium, without a
// server: two peer connections in one page, the sender's frames sealed and the
// receiver's opened by the module's worker, both ways the module can reach frames
// (RTCRtpScriptTransform, and Chromium's older encoded streams). A receiver with the
// right key decodes; one with another key or none gets the packets and decodes nothing.
// (The whole path through the SFU is e2ee.test.js.)

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { after, before, test } from 'node:test';
import { launchBrowser } from './harness.js';

const WEB = new URL('../../../web/', import.meta.url).pathname;

/** @type {import('node:http').Server} */
let server;
/** @type {import('playwright-core').Browser} */
let browser;
let origin = '';

before(async () => {
  // The module (and its worker, the same file) from web/js; a blank page to load it in.
  server = createServer((request, response) => {
    const path = new URL(request.url ?? '/', 'http://x').pathname;
    if (path === '/web/js/e2ee.js') {
      response.setHeader('content-type', 'text/javascript; charset=utf-8');
      response.end(readFileSync(`${WEB}js/e2ee.js`));
    } else {
      response.setHeader('content-type', 'text/html; charset=utf-8');
      response.end('<!doctype html><title>e2ee</title>');
    }
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  origin = `http://127.0.0.1:${/** @type {import('node:net').AddressInfo} */ (server.address()).port}`;
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  server?.close();
});

/** A page with `window.link(mode, senderKeys, receiverKeys)` set up; see below. */
async function openPage() {
  const page = await browser.newPage();
  page.on('pageerror', (error) => console.error(`[page] ${error.message}`));
  await page.goto(`${origin}/`);
  await page.evaluate(async () => {
    const { E2ee } = await import('/web/js/e2ee.js');
    /**
     * Camera and microphone from a sending connection to a receiving one, each with its
     * own E2ee (its own worker) holding `keys` (`[[id, base64], …]`) of zone `room`.
     */
    window.link = async (mode, senderKeys, receiverKeys) => {
      const sending = new E2ee(mode);
      const receiving = new E2ee(mode);
      for (const [id, key] of senderKeys) await sending.addKey('room', id, key);
      for (const [id, key] of receiverKeys) await receiving.addKey('room', id, key);
      const config = mode === 'streams' ? { encodedInsertableStreams: true } : {};
      const a = new RTCPeerConnection(config);
      const b = new RTCPeerConnection(config);
      a.onicecandidate = (e) => e.candidate && b.addIceCandidate(e.candidate);
      b.onicecandidate = (e) => e.candidate && a.addIceCandidate(e.candidate);
      const stream = await navigator.mediaDevices.getUserMedia({ audio: true, video: { width: 640, height: 360 } });
      for (const track of stream.getTracks()) sending.protectSender(a.addTransceiver(track, { direction: 'sendonly' }).sender);
      // Attaching twice must change nothing (the client calls it on every renegotiation).
      for (const t of a.getTransceivers()) sending.protectSender(t.sender);
      b.ontrack = (event) => {
        receiving.protectReceiver(event.receiver);
        receiving.protectReceiver(event.receiver);
        // Chromium counts audio samples only of audio played out.
        if (event.track.kind === 'audio') {
          const audio = new Audio();
          audio.srcObject = new MediaStream([event.track]);
          audio.play().catch(() => {});
        }
      };
      await a.setLocalDescription();
      await b.setRemoteDescription(/** @type {RTCSessionDescription} */ (a.localDescription));
      await b.setLocalDescription();
      await a.setRemoteDescription(/** @type {RTCSessionDescription} */ (b.localDescription));
      const stats = async () => {
        const out = { framesDecoded: 0, videoPackets: 0, audioPackets: 0, audioSamples: 0 };
        (await b.getStats()).forEach((s) => {
          if (s.type !== 'inbound-rtp') return;
          if (s.kind === 'video') {
            out.framesDecoded += s.framesDecoded ?? 0;
            out.videoPackets += s.packetsReceived ?? 0;
          } else {
            out.audioPackets += s.packetsReceived ?? 0;
            out.audioSamples += s.totalSamplesReceived ?? 0;
          }
        });
        return { ...out, sender: sending.state().counters, receiver: receiving.state().counters };
      };
      return { sending, receiving, stats };
    };
    window.links = [];
  });
  return page;
}

/** Opens a link in the page and waits `ms`; its stats then. */
async function linkFor(page, mode, senderKeys, receiverKeys, ms) {
  return page.evaluate(async ([m, s, r, wait]) => {
    const link = await window.link(m, s, r);
    window.links.push(link);
    await new Promise((resolve) => setTimeout(resolve, wait));
    return link.stats();
  }, [mode, senderKeys, receiverKeys, ms]);
}

const key = () => Buffer.from(crypto.getRandomValues(new Uint8Array(32))).toString('base64');

for (const mode of ['script', 'streams']) {
  test(`${mode === 'script' ? 'RTCRtpScriptTransform' : 'encoded streams'}: the right key decodes, another key or none decodes nothing`, async () => {
    const page = await openPage();
    const supported = await page.evaluate(async () => (await import('/web/js/e2ee.js')).e2eeSupport());
    assert.equal(supported, 'script', 'Chromium here has RTCRtpScriptTransform');
    const shared = key();

    const good = await linkFor(page, mode, [[1, shared]], [[1, shared]], 4000);
    assert.ok(good.framesDecoded > 20, `decoded: ${JSON.stringify(good)}`);
    assert.ok(good.audioSamples > 0);
    assert.ok(good.sender.encrypted > 50 && good.receiver.decrypted > 50, JSON.stringify(good));
    assert.equal(good.receiver.droppedBadAuth + good.receiver.droppedNoKey + good.receiver.droppedMalformed, 0);

    // The same key ID with other bytes: every frame fails authentication.
    const wrong = await linkFor(page, mode, [[1, shared]], [[1, key()]], 4000);
    assert.ok(wrong.videoPackets > 50 && wrong.audioPackets > 50, `packets arrive: ${JSON.stringify(wrong)}`);
    assert.equal(wrong.framesDecoded, 0);
    assert.equal(wrong.receiver.decrypted, 0);
    assert.ok(wrong.receiver.droppedBadAuth > 20);

    // No key at all: every frame is dropped for want of one.
    const none = await linkFor(page, mode, [[1, shared]], [], 4000);
    assert.ok(none.videoPackets > 50, JSON.stringify(none));
    assert.equal(none.framesDecoded, 0);
    assert.ok(none.receiver.droppedNoKey > 20);

    // A sender without a key sends nothing at all.
    const mute = await linkFor(page, mode, [], [[1, shared]], 3000);
    assert.equal(mute.sender.encrypted, 0);
    assert.ok(mute.sender.unsentNoKey > 20);
    assert.equal(mute.framesDecoded, 0);
    await page.close();
  });
}

test('a key rotation while frames flow: decoding goes on, nothing is dropped, and the new key is used', async () => {
  const page = await openPage();
  const [first, second] = [key(), key()];
  const before = await linkFor(page, 'script', [[254, first]], [[254, first]], 3000);
  assert.ok(before.framesDecoded > 10, JSON.stringify(before));
  // Everyone gets the next key; the receiver a moment before the sender, as happens
  // when signaling's messages reach people one after the other.
  const after = await page.evaluate(async ([next]) => {
    const link = window.links[0];
    await link.receiving.addKey('room', 255, next);
    await new Promise((resolve) => setTimeout(resolve, 100));
    await link.sending.addKey('room', 255, next);
    const at = await link.stats();
    await new Promise((resolve) => setTimeout(resolve, 3000));
    return { at, later: await link.stats(), keys: link.sending.state().keyIds };
  }, [second]);
  assert.deepEqual(after.keys, [254, 255]);
  assert.ok(after.later.framesDecoded > after.at.framesDecoded + 30, JSON.stringify(after));
  assert.equal(after.later.receiver.droppedNoKey + after.later.receiver.droppedBadAuth, 0, JSON.stringify(after.later));
  await page.close();
});
