// An end-to-end encrypted meeting room on the SFU, in headless Chromium against a real
// Isoplane: the pages in the room seal their frames with the room's key and decode each
// other's video through the SFU, which forwards what it cannot read. A page that never
// got the key (its `e2ee_key` messages are dropped before the client sees them) receives
// the packets and decodes nothing, and says it waits for the key. When someone leaves,
// the others get a new key and go on seeing each other.
//
// The room is the demo world's `e2ee-room` (a meeting room with `"e2ee": true`), published
// here with `sfu_threshold` 1 so that two people inside already meet on the SFU.

import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { test } from 'node:test';
import { assetApi, demoWithItsImages, openClient, screenshot, sfuMetric, until, useIsoplane } from './harness.js';

/** Shared by the all-in-one's signaling and SFU: the test reads the SFU's room stats. */
const SFU_SECRET = 'e2ee-test-sfu-secret-0123456789';
const live = useIsoplane({ ISOPLANE_SFU_SECRET: SFU_SECRET });

/** The SFU's own stats of a room, through its control API (an HS256 control token). */
async function sfuRoomStats(room) {
  const encode = (part) => Buffer.from(JSON.stringify(part)).toString('base64url');
  const unsigned = `${encode({ alg: 'HS256', typ: 'JWT' })}.${encode({ scope: 'control', exp: Math.floor(Date.now() / 1000) + 60 })}`;
  const signature = createHmac('sha256', SFU_SECRET).update(unsigned).digest('base64url');
  const response = await fetch(`${live.server.sfu}/v1/rooms/${encodeURIComponent(room)}`, { headers: { authorization: `Bearer ${unsigned}.${signature}` } });
  assert.equal(response.status, 200, await response.clone().text());
  return response.json();
}

const ROOM = 'e2ee-room';

/** Walks the page into zone `zone` as a user would, from the places list. */
async function enter(page, zone) {
  await page.click('#people-toggle');
  await page.click(`#people-panel [data-key="zone-${zone}"]`);
  await page.click('#people-toggle');
  await until(page, (id) => window.isoplane.zone.id === id && window.isoplane.path.length === 0, zone, 30000);
}

/** Waits until the page is on the room's SFU session with sealed media. */
const onSealedSfu = (page) =>
  until(page, () => {
    const { media } = window.isoplane;
    return media.plan?.topology === 'sfu' && media.plan.e2ee === true && media.sfu?.e2ee && media.sfu.state === 'connected';
  }, null, 30000);

/** What the page received of video on its SFU session: packets and decoded frames. */
const videoIn = (page) =>
  page.evaluate(async () => {
    const out = { packets: 0, frames: 0 };
    (await window.isoplane.media.sfu.pc.getStats()).forEach((s) => {
      if (s.type === 'inbound-rtp' && s.kind === 'video') {
        out.packets += s.packetsReceived ?? 0;
        out.frames += s.framesDecoded ?? 0;
      }
    });
    return out;
  });

/** Waits until the page has decoded more than `more` frames of `avatar`'s video. */
const decodes = (page, avatar, more = 30) =>
  until(page, async ([from, least]) => {
    const video = await window.isoplane.media.sfu.receivedVideo(from);
    return video.framesDecoded > least ? video : null;
  }, [avatar, more], 30000);

/** The lock's state and words. */
const lock = (page) => page.evaluate(() => ({ state: document.getElementById('e2ee').dataset.state, text: document.getElementById('e2ee').textContent }));

test('in an end-to-end encrypted room people see each other through the SFU; without the key one gets packets and no picture', async () => {
  const demo = await demoWithItsImages(live.server.url, live.server.assets);
  const room = demo.zones.find((z) => z.id === ROOM);
  assert.ok(room && room.e2ee === true, `the demo world has an end-to-end encrypted room ${ROOM}`);
  room.sfu_threshold = 1;
  await assetApi(live.server.url, live.server.assets, '/v1/workspaces/default/worlds/demo/versions', {
    method: 'POST', body: JSON.stringify({ base_version: 0, world: demo }),
  });

  const ada = await openClient(live.browser, live.server.url, 'Ada');
  const bob = await openClient(live.browser, live.server.url, 'Bob');
  const adaId = await ada.evaluate(() => window.isoplane.self);
  const bobId = await bob.evaluate(() => window.isoplane.self);
  // One at a time through the door.
  await enter(ada, ROOM);
  await enter(bob, ROOM);
  for (const page of [ada, bob]) {
    await onSealedSfu(page);
    await until(page, () => document.getElementById('e2ee').dataset.state === 'on');
    assert.match((await lock(page)).text, /End-to-end encrypted/);
    assert.equal(await page.evaluate(() => window.isoplane.media.peers.size), 0, 'no peer-to-peer link');
  }
  // Each decodes the other's video, every frame opened with the room's key.
  await decodes(ada, bobId);
  await decodes(bob, adaId);
  for (const page of [ada, bob]) {
    const { counters, keyIds } = await until(page, () => {
      const e2ee = window.isoplane.e2ee;
      return e2ee.counters.encrypted > 30 && e2ee.counters.decrypted > 30 ? e2ee : null;
    });
    assert.equal(keyIds.length, 1);
    assert.equal(counters.droppedBadAuth + counters.droppedMalformed, 0, JSON.stringify(counters));
  }
  await screenshot(ada, 'e2ee-room');

  // Cy comes in, but her client never sees the room's key.
  const cy = await openClient(live.browser, live.server.url, 'Cy', {
    beforeMessage: (message) => {
      if (message.type !== 'e2ee_key') return true;
      window.keysWithheld = (window.keysWithheld ?? 0) + 1;
      return false;
    },
  });
  await enter(cy, ROOM);
  await onSealedSfu(cy);
  await until(cy, () => document.getElementById('e2ee').dataset.state === 'waiting');
  assert.match((await lock(cy)).text, /Waiting for the room key/);
  assert.ok(await cy.evaluate(() => window.keysWithheld) >= 1, 'the room key was sent to Cy, and withheld from her client');
  // The SFU forwards Ada's and Bob's packets to her (she has no other connection) …
  const cyGets = await until(cy, async () => {
    let packets = 0;
    (await window.isoplane.media.sfu.pc.getStats()).forEach((s) => {
      if (s.type === 'inbound-rtp' && s.kind === 'video') packets += s.packetsReceived ?? 0;
    });
    return packets > 200 ? packets : null;
  }, null, 30000);
  assert.ok(cyGets > 200);
  assert.equal(await sfuMetric(live.server, 'sfu_participants'), 3);
  assert.equal(await cy.evaluate(() => window.isoplane.media.peers.size), 0);
  // The SFU's own stats say so too: it sent Cy packets it could not read either.
  const cyId = await cy.evaluate(() => window.isoplane.self);
  const before = (await sfuRoomStats(`demo/${ROOM}`)).participants.find((p) => p.avatar === cyId);
  // … and not one frame reaches her decoder: each is dropped for want of its key.
  await cy.waitForTimeout(2000);
  const after = (await sfuRoomStats(`demo/${ROOM}`)).participants.find((p) => p.avatar === cyId);
  console.log(`the SFU forwarded Cy ${after.packets_out} packets (${after.packets_out - before.packets_out} in 2 s), ${after.received_tracks} tracks`);
  assert.ok(after.packets_out - before.packets_out > 100, JSON.stringify({ before, after }));
  const seen = await videoIn(cy);
  assert.ok(seen.packets > cyGets, 'packets keep coming');
  assert.equal(seen.frames, 0, 'no frame decoded without the key');
  const cyCounters = (await cy.evaluate(() => window.isoplane.e2ee)).counters;
  assert.ok(cyCounters.droppedNoKey > 30, JSON.stringify(cyCounters));
  assert.equal(cyCounters.decrypted, 0);
  // Nor does she send anything (without a key nothing is sent at all).
  assert.equal(cyCounters.encrypted, 0);
  assert.ok(cyCounters.unsentNoKey > 0);
  await screenshot(cy, 'e2ee-room-without-key');

  // Ada and Bob see each other as before.
  const adaBefore = (await ada.evaluate((from) => window.isoplane.media.sfu.receivedVideo(from), bobId)).framesDecoded;
  await decodes(ada, bobId, adaBefore + 30);

  // Cy walks out: the room gets a new key (she could not read what follows even had she
  // kept the old one), and Ada and Bob go on seeing each other. (A dropped connection
  // counts as leaving once its grace for a resume is over.)
  const keyBefore = await ada.evaluate(() => window.isoplane.e2ee.newestKeyId);
  await enter(cy, 'cafe');
  await cy.context().close();
  for (const page of [ada, bob]) {
    await until(page, (before) => {
      const newest = window.isoplane.e2ee.newestKeyId;
      return newest !== null && newest !== before;
    }, keyBefore, 20000);
  }
  const newKey = await ada.evaluate(() => window.isoplane.e2ee.newestKeyId);
  assert.equal(newKey, (keyBefore + 1) % 256, 'the next key ID');
  const adaAt = (await ada.evaluate((from) => window.isoplane.media.sfu.receivedVideo(from), bobId)).framesDecoded;
  const bobAt = (await bob.evaluate((from) => window.isoplane.media.sfu.receivedVideo(from), adaId)).framesDecoded;
  await decodes(ada, bobId, adaAt + 30);
  await decodes(bob, adaId, bobAt + 30);
  for (const page of [ada, bob]) {
    const { counters } = await page.evaluate(() => window.isoplane.e2ee);
    assert.equal(counters.droppedBadAuth + counters.droppedMalformed, 0, JSON.stringify(counters));
  }
  await ada.context().close();
  await bob.context().close();
});
