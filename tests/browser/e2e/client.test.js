// The browser client against a real Isoplane, in headless Chromium: presence, movement
// correction, peer-to-peer media and what each says of their availability, as two people
// would use it.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { openAdaAndBob, openClient, screenshot, startIsoplane, until, useIsoplane } from './harness.js';

const live = useIsoplane();

const SUBTILE = 256;

/** Waits until the page's avatar stands at the centre of tile (x, y). */
async function arrive(page, x, y) {
  await page.evaluate(([tx, ty]) => window.isoplane.walkTo(tx, ty), [x, y]);
  await until(
    page,
    ([tx, ty]) => {
      const p = window.isoplane.position;
      return Math.abs(p.x - (tx * 256 + 128)) <= 2 && Math.abs(p.y - (ty * 256 + 128)) <= 2 && window.isoplane.path.length === 0;
    },
    [x, y],
    30000,
  );
}

test('two pages join the demo world and each sees the other move', async () => {
  const { ada, bob, adaId, bobId } = await openAdaAndBob(live.browser, live.server.url);
  await until(bob, (id) => window.isoplane.others.has(id), adaId);
  await until(ada, (id) => window.isoplane.others.has(id), bobId);

  // Ada walks by keyboard (down: south-east on the grid, staying in the lobby); Bob sees
  // her arrive where she stopped.
  await ada.keyboard.down('ArrowDown');
  await ada.waitForTimeout(700);
  await ada.keyboard.up('ArrowDown');
  await ada.waitForTimeout(200);
  const adaAt = await ada.evaluate(() => window.isoplane.position);
  assert.ok(adaAt.x > 10 * SUBTILE + 128 && adaAt.y > 7 * SUBTILE + 128, 'Ada moved south-east');
  assert.equal(await ada.evaluate(() => window.isoplane.zone.id), 'lobby');
  const seen = (page, id, at) =>
    until(page, ([avatar, x, y]) => {
      const other = window.isoplane.others.get(avatar);
      return other && Math.abs(other.target.x - x) <= 4 && Math.abs(other.target.y - y) <= 4;
    }, [id, at.x, at.y]);
  await seen(bob, adaId, adaAt);

  // And the other way round, by clicking to walk.
  await arrive(bob, 8, 8);
  const bobAt = await bob.evaluate(() => window.isoplane.position);
  await seen(ada, bobId, bobAt);
  for (const page of [ada, bob]) {
    const { corrections, reason } = await page.evaluate(() => ({ corrections: window.isoplane.corrections, reason: window.isoplane.lastCorrection }));
    assert.equal(corrections, 0, `walking normally is never corrected (last: ${reason})`);
  }
  await screenshot(ada, 'presence-ada');
  await screenshot(bob, 'presence-bob');
  await ada.context().close();
  await bob.context().close();
});

test('a walk through a wall is corrected and the client snaps back', async () => {
  const ada = await openClient(live.browser, live.server.url, 'Walker');
  // Stand north of the booth's thin wall (y = 10, x 12..15).
  await arrive(ada, 13, 9);
  // Until the server has our final position (moves go out at most 15 times a second).
  await until(ada, () => window.isoplane.lastSent.x === window.isoplane.position.x && window.isoplane.lastSent.y === window.isoplane.position.y);
  await ada.waitForTimeout(200);
  const before = await ada.evaluate(() => ({ ...window.isoplane.position, corrections: window.isoplane.corrections }));
  // A client that mispredicts: 0.9 tile south, through the wall.
  await ada.evaluate(() => {
    const p = window.isoplane.position;
    window.isoplane.position = { x: p.x, y: p.y + 230 };
  });
  await until(ada, (n) => window.isoplane.corrections > n, before.corrections);
  const after = await ada.evaluate(() => window.isoplane.position);
  assert.deepEqual(after, { x: before.x, y: before.y }, 'back where the server last accepted');
  await screenshot(ada, 'corrected');
  await ada.context().close();
});

test('two people in the meeting room receive each other’s video and audio over P2P', async () => {
  const { ada, bob, adaId, bobId } = await openAdaAndBob(live.browser, live.server.url);
  // Through the meeting room's door one at a time (it is held by one person at once).
  await arrive(ada, 1, 4);
  await arrive(bob, 6, 4);
  for (const [page, peer] of [[ada, bobId], [bob, adaId]]) {
    await until(page, () => window.isoplane.zone.id === 'meeting');
    await until(page, (id) => window.isoplane.media.plan?.topology === 'p2p' && window.isoplane.media.plan.peers.some((p) => p.avatar === id), peer);
  }
  const decoded = async (page, peer) =>
    until(page, async (id) => {
      const stats = (await window.isoplane.media.stats())[id];
      return stats && stats.framesDecoded > 10 && stats.audioSamples > 0 ? stats : false;
    }, peer, 30000);
  const adaStats = await decoded(ada, bobId);
  const bobStats = await decoded(bob, adaId);
  assert.ok(adaStats.framesDecoded > 10 && bobStats.framesDecoded > 10);
  assert.equal(adaStats.relayed, false, 'a direct path, no relay');
  await screenshot(ada, 'meeting-room-p2p');
  await ada.context().close();
  await bob.context().close();
});

test('the client reconnects by itself after a drop and after a server restart, and says so', async () => {
  // A server of its own, with a fixed secret and port, so it can come back as it was.
  const secret = 'restart-test-secret-0123456789';
  const first = await startIsoplane({ ISOPLANE_SIGNALING_TOKEN_SECRET: secret });
  const port = new URL(first.url).port;
  const page = await openClient(live.browser, first.url, 'Phoenix');
  const avatar = await page.evaluate(() => window.isoplane.self);

  // A network drop: the session resumes (same avatar), and the page said it was reconnecting.
  await page.evaluate(() => {
    window.statusLog = [];
    new MutationObserver(() => window.statusLog.push(document.getElementById('status').textContent)).observe(
      document.getElementById('status'), { childList: true, characterData: true, subtree: true });
    window.isoplane.connection.socket.close();
  });
  await until(page, () => document.getElementById('status').textContent === 'connected (resumed)');
  assert.equal(await page.evaluate(() => window.isoplane.self), avatar);
  assert.ok((await page.evaluate(() => window.statusLog)).some((s) => s.startsWith('reconnecting')));

  // A restart: the server tells the page, goes away, comes back on the same port.
  first.stop();
  await until(page, () => document.getElementById('status').dataset.status === 'reconnecting');
  const second = await startIsoplane({ ISOPLANE_SIGNALING_TOKEN_SECRET: secret, ISOPLANE_SIGNALING_LISTEN: `127.0.0.1:${port}` });
  await until(page, () => document.getElementById('status').dataset.status === 'connected' && window.isoplane.joined, undefined, 20000);
  await screenshot(page, 'reconnected');
  await page.context().close();
  second.stop();
});

test('when a client reports that direct connections fail, media comes through Isoplane’s TURN over UDP', async () => {
  // The TURN server Isoplane runs beside signaling, UDP only: browsers open with a
  // 28-byte Allocate, which must still get its challenge.
  const own = await startIsoplane({ ISOPLANE_TURN_LISTEN_TCP: 'off' });
  try {
    const { ada, bob, adaId, bobId } = await openAdaAndBob(live.browser, own.url);
    // Both stand in the lobby within talking range: a P2P pair. Ada's side says ICE failed.
    await until(ada, (id) => window.isoplane.media.plan?.peers.some((p) => p.avatar === id), bobId);
    const servers = await ada.evaluate(() => window.isoplane.media.plan.ice_servers.flatMap((s) => s.urls));
    assert.ok(servers.some((url) => url.startsWith('turn:127.0.0.1:') && url.endsWith('?transport=udp')), servers.join(' '));
    await ada.evaluate(() => window.isoplane.connection.send({ type: 'media_report', ice: 'failed' }));
    for (const [page, peer] of [[ada, bobId], [bob, adaId]]) {
      await until(page, (id) => window.isoplane.media.plan?.topology === 'turn' && window.isoplane.media.plan.peers.some((p) => p.avatar === id && p.relay), peer);
    }
    const relayed = async (page, peer) =>
      until(page, async (id) => {
        const stats = (await window.isoplane.media.stats())[id];
        return stats && stats.relayed && stats.framesDecoded > 10 ? stats : false;
      }, peer, 30000);
    const adaStats = await relayed(ada, bobId);
    const bobStats = await relayed(bob, adaId);
    assert.deepEqual([adaStats.relayProtocol, bobStats.relayProtocol], ['udp', 'udp']);
    await screenshot(ada, 'turn-relayed');
    await ada.context().close();
    await bob.context().close();
  } finally {
    own.stop();
  }
});

test('a page opened as people open it (no debug hook) joins, walks and is seen walking', async () => {
  // Every other test reads the client through `?debug=1`; this one checks the page that
  // everyone else gets: no hook, no page errors, and it works.
  const context = await live.browser.newContext({ viewport: { width: 1100, height: 700 } });
  const plain = await context.newPage();
  const errors = [];
  plain.on('pageerror', (error) => errors.push(error.message));
  await plain.goto(`${live.server.url}/?name=Plain`);
  await plain.waitForFunction(() => document.getElementById('status')?.dataset.status === 'connected', null, { timeout: 15000 });
  assert.equal(await plain.evaluate(() => typeof window.isoplane), 'undefined', 'the debug hook stays out of normal pages');

  const watcher = await openClient(live.browser, live.server.url, 'Watcher');
  const plainId = await until(watcher, () => [...window.isoplane.others.values()].find((o) => o.name === 'Plain')?.avatar);
  const start = await watcher.evaluate((id) => ({ ...window.isoplane.others.get(id).target }), plainId);
  await plain.keyboard.down('ArrowDown');
  await plain.waitForTimeout(700);
  await plain.keyboard.up('ArrowDown');
  await until(watcher, ([id, x, y]) => {
    const other = window.isoplane.others.get(id);
    return other && other.target.x > x + 128 && other.target.y > y + 128;
  }, [plainId, start.x, start.y]);
  assert.deepEqual(errors, []);
  await context.close();
  await watcher.context().close();
});

/** Waits until `page` sees `avatar` with `status`. */
const seesStatus = (page, avatar, status) =>
  until(page, ([id, want]) => window.isoplane.others.get(id)?.status === want, [avatar, status]);

/** Waits until `page` decodes more than `least` video frames from `peer` over a peer connection. */
const framesFrom = (page, peer, least) =>
  until(page, async ([id, more]) => {
    const stats = (await window.isoplane.media.stats())[id];
    return stats && stats.framesDecoded > more ? stats : false;
  }, [peer, least], 20000);

test('a status shows on the other page, and do-not-disturb ends proximity talk in the open until it is lifted', async () => {
  const { ada, bob, adaId, bobId } = await openAdaAndBob(live.browser, live.server.url);
  // Side by side in the lobby: a peer-to-peer pair, with video.
  await framesFrom(ada, bobId, 5);

  // Busy is a label: the other page shows it, the call goes on.
  await bob.selectOption('#my-status', 'busy');
  await seesStatus(ada, bobId, 'busy');
  const decoded = (await framesFrom(ada, bobId, 0)).framesDecoded;
  await framesFrom(ada, bobId, decoded + 10);

  // Do not disturb: neither side keeps a connection, and Bob's page sends nothing.
  await bob.selectOption('#my-status', 'do_not_disturb');
  await seesStatus(ada, bobId, 'do_not_disturb');
  await until(ada, (id) => !window.isoplane.media.peers.has(id) && !window.isoplane.media.plan?.peers.some((p) => p.avatar === id), bobId);
  await until(bob, () => window.isoplane.media.plan?.topology === 'none' && window.isoplane.media.peers.size === 0);
  assert.equal(await bob.evaluate(() => window.isoplane.availability.status), 'do_not_disturb');
  assert.equal(await bob.textContent('#topology'), 'none');
  await screenshot(bob, 'status-do-not-disturb');

  // Available again: paired again, and video flows.
  await bob.selectOption('#my-status', 'available');
  await seesStatus(ada, bobId, 'available');
  await until(ada, (id) => window.isoplane.media.peers.has(id), bobId, 20000);
  await framesFrom(ada, bobId, 5);
  await framesFrom(bob, adaId, 5);
  await ada.context().close();
  await bob.context().close();
});
