// New versions of a world reach the people in it live, in headless Chromium against a
// real Isoplane: versions of the demo world are published to its asset server over the
// asset API (as build mode and `isoplane world watch` do), and the pages already in the
// world take each one without reloading.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { assetApi as api, demoWithItsImages, openClient, screenshot, standAt, until, useIsoplane } from './harness.js';

const live = useIsoplane();

/** The asset API of the all-in-one's own asset server. @param {string} path @param {RequestInit} [init] */
const assetApi = (path, init) => api(live.server.url, live.server.assets, path, init);

/** Publishes `world` as the workspace's `demo`, made from `base`; the answer. */
function publish(world, base) {
  return assetApi('/v1/workspaces/default/worlds/demo/versions', { method: 'POST', body: JSON.stringify({ base_version: base, world }) });
}

/** The demo world with the way to the meeting room's door, tile (3, 7), blocked. */
function doorwayWalledUp(demo) {
  const world = structuredClone(demo);
  const row = world.collision.rows[7];
  world.collision.rows[7] = `${row.slice(0, 3)}#${row.slice(4)}`;
  return world;
}

/** Resolves once every page shows world version `version`; the time it took, in ms. */
async function allShow(pages, version, since) {
  await Promise.all(pages.map((page) => until(page, (v) => window.isoplane.worldVersion === v, version, 2000)));
  return Date.now() - since;
}

test('a published wall and a rollback reach everyone in the world within 2 s, without reloading', async () => {
  const demo = await demoWithItsImages(live.server.url, live.server.assets);

  const ada = await openClient(live.browser, live.server.url, 'Ada');
  const bob = await openClient(live.browser, live.server.url, 'Bob');
  // A page reload would lose this.
  for (const page of [ada, bob]) await page.evaluate(() => { window.sameDocument = true; });
  await standAt(ada, 3, 9);
  await standAt(bob, 3, 7);

  // The demo as published (canonical JSON: another file, the same world): nobody moves.
  const first = await publish(demo, 0);
  let since = Date.now();
  const firstTook = await allShow([ada, bob], first.content_id, since);
  assert.equal(await bob.evaluate(() => window.isoplane.corrections), 0);

  // A wall across the doorway where Bob stands.
  const second = await publish(doorwayWalledUp(demo), first.version);
  since = Date.now();
  const secondTook = await allShow([ada, bob], second.content_id, since);
  await until(bob, () => window.isoplane.lastCorrection === 'world_changed');
  const bobTile = await bob.evaluate(() => [Math.floor(window.isoplane.position.x / 256), Math.floor(window.isoplane.position.y / 256)]);
  assert.notDeepEqual(bobTile, [3, 7], 'Bob was moved off the new wall');
  assert.ok(await bob.evaluate(() => window.isoplane.world.isWalkable(...[Math.floor(window.isoplane.position.x / 256), Math.floor(window.isoplane.position.y / 256)])));
  assert.equal(await ada.evaluate(() => window.isoplane.world.isWalkable(3, 7)), false, 'the page has the new world');
  await screenshot(bob, 'world-versions-walled');

  // Ada's client will not walk through it; a move sent anyway is corrected by the server.
  assert.equal(await ada.evaluate(() => window.isoplane.walkTo(3, 4)), false, 'no way through the wall');
  const corrections = await ada.evaluate(() => window.isoplane.corrections);
  await ada.evaluate(() => window.isoplane.connection.sendMove(3.5 * 256, 7.5 * 256, 'north', 'walking'));
  await until(ada, (n) => window.isoplane.corrections > n, corrections);
  assert.equal(await ada.evaluate(() => window.isoplane.lastCorrection), 'blocked');

  // Rolled back to the first version: the doorway is open again, live.
  await assetApi('/v1/workspaces/default/worlds/demo/current', { method: 'PUT', body: JSON.stringify({ expected_version: second.version, version: first.version }) });
  since = Date.now();
  const rollbackTook = await allShow([ada, bob], first.content_id, since);
  // Bob, moved beside the wall (onto the door, the nearest free tile), steps out of the way.
  await standAt(bob, 8, 9);
  await standAt(ada, 3, 4);
  for (const page of [ada, bob]) assert.equal(await page.evaluate(() => window.sameDocument), true, 'never reloaded');
  console.log(`new versions shown everywhere after ${firstTook} ms, ${secondTook} ms, ${rollbackTook} ms (rollback)`);
});
