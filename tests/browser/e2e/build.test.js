// Build mode in headless Chromium against a real Isoplane: an admin walls a corridor up
// from the browser and publishes; a page already in the world takes the new version live
// (without reloading), and the person standing where the wall went is moved; a rollback
// from the history opens it again. Two builders publishing from the same version: one
// wins, the other rebases, nothing is lost. A fault cannot be published and is named.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { assetApi, demoWithItsImages, openClient, screenshot, settledScreenAt, standAt, until, useIsoplane } from './harness.js';

const WIDE = { viewport: { width: 1500, height: 900 }, deviceScaleFactor: 1 };
const live = useIsoplane();

/** The served demo world, as a page in it would fetch it. */
async function servedDemo() {
  return (await fetch(`${live.server.url}/v1/worlds/demo`)).json();
}

/** Clicks tile point (x, y) of the map (tile units), brought into view first. */
async function clickMap(page, x, y) {
  await page.evaluate(([tx, ty]) => window.isoplane.lookAt(tx, ty), [x, y]);
  const at = await settledScreenAt(page, x, y);
  const hit = await page.evaluate(([px, py]) => document.elementFromPoint(px, py)?.id, [at.x, at.y]);
  assert.equal(hit, 'world', `the map is under (${x}, ${y})`);
  await page.mouse.click(at.x, at.y);
}

/** Opens build mode and waits for the first check. */
async function openBuild(page) {
  await page.click('#build-toggle');
  await until(page, () => document.querySelector('#build-verdict')?.textContent === 'No faults.');
}

/** Publishes and waits for the panel to say how it went; that text. */
async function publish(page) {
  await until(page, () => document.querySelector('#build-verdict')?.textContent === 'No faults.' && !document.querySelector('#build-publish').disabled);
  const before = await page.evaluate(() => document.querySelector('.build-status').textContent);
  await page.click('#build-publish');
  return until(page, (b) => { const now = document.querySelector('.build-status').textContent; return now !== b && now; }, before);
}

test('the demo is published once, as the version to roll back to', async () => {
  // Through signaling's origin, which forwards the asset API to the all-in-one's asset server.
  const demo = await demoWithItsImages(live.server.url, live.server.url);
  const first = await assetApi(live.server.url, live.server.url, '/v1/workspaces/default/worlds/demo/versions', { method: 'POST', body: JSON.stringify({ base_version: 0, world: demo }) });
  assert.equal(first.version, 1);
});

test('an admin walls up a corridor in build mode; a page in the world gets it live, its person moved; a rollback opens it again', async () => {
  const ada = await openClient(live.browser, live.server.url, 'Ada', { admin: true, device: WIDE });
  const bob = await openClient(live.browser, live.server.url, 'Bob');
  await bob.evaluate(() => { window.sameDocument = true; });
  await until(bob, () => window.isoplane.world.isWalkable(3, 7));
  await standAt(bob, 3, 7);

  await openBuild(ada);
  await ada.click('[data-tool="block"]');
  await clickMap(ada, 3.5, 7.5);
  await ada.click('[data-tool="wall"]');
  // Near the north edge of (3, 7): between it and the meeting room's door.
  await clickMap(ada, 3.5, 7.08);
  const edited = await ada.evaluate(() => window.isoplane.build.file);
  assert.equal(edited.collision.rows[7][3], '#');
  assert.ok(edited.collision.walls.some((w) => w.from[0] === 3 && w.from[1] === 7 && w.to[0] === 4 && w.to[1] === 7), JSON.stringify(edited.collision.walls));
  await screenshot(ada, 'build-walled');
  const published = await publish(ada);
  const since = Date.now();
  assert.match(published, /Published version 2/);

  // Bob's page, already in the world, has the new version within 2 s, without reloading.
  await until(bob, () => !window.isoplane.world.isWalkable(3, 7), undefined, 2000);
  console.log(`the published wall reached the other page after ${Date.now() - since} ms`);
  await until(bob, () => window.isoplane.lastCorrection === 'world_changed');
  const bobTile = await bob.evaluate(() => [Math.floor(window.isoplane.position.x / 256), Math.floor(window.isoplane.position.y / 256)]);
  assert.notDeepEqual(bobTile, [3, 7], 'Bob was moved off the wall');
  // Walking through the new wall anyway is corrected.
  const corrections = await bob.evaluate(() => window.isoplane.corrections);
  await bob.evaluate(() => window.isoplane.connection.sendMove(3.5 * 256, 8.5 * 256, 'south', 'walking'));
  await until(bob, (n) => window.isoplane.corrections > n, corrections);
  assert.match(await bob.evaluate(() => window.isoplane.lastCorrection), /^(blocked|wall)$/);
  assert.equal(await bob.evaluate(() => window.sameDocument), true);

  // Rolled back from the history: the corridor is open again, live.
  await ada.click('#build-panel summary');
  await ada.click('text=Roll back to version 1');
  await until(bob, () => window.isoplane.world.isWalkable(3, 7), undefined, 2000);
  const served = await servedDemo();
  assert.ok(!served.collision.walls.some((w) => w.from[0] === 3 && w.from[1] === 7 && w.to[1] === 7), 'the thin wall is gone too');
  await until(ada, () => /Rolled back to version 1/.test(document.querySelector('.build-status').textContent));
  await ada.close();
  await bob.close();
});

test('two builders publish from the same version: the second rebases and both changes stand', async () => {
  const ann = await openClient(live.browser, live.server.url, 'Ann', { builder: true, device: WIDE });
  const ada = await openClient(live.browser, live.server.url, 'Ada', { admin: true, device: WIDE });
  assert.equal(await ann.evaluate(() => window.isoplane.admin), false, 'a builder is no admin');
  await openBuild(ann);
  await openBuild(ada);
  await ann.click('[data-tool="block"]');
  await clickMap(ann, 12.5, 9.5);
  await ada.click('[data-tool="block"]');
  await clickMap(ada, 14.5, 9.5);
  assert.match(await publish(ann), /Published version 3/);
  // Ada is told as soon as Ann's version reaches the world, and again when she publishes.
  await until(ada, () => /Someone else published a new version/.test(document.querySelector('.build-status').textContent));
  assert.match(await publish(ada), /Version 3 was published by someone else since you started from version 1/);
  await screenshot(ada, 'build-conflict');
  await ada.click('#build-rebase');
  await until(ada, () => /Rebased onto version 3: all your changes kept/.test(document.querySelector('.build-status').textContent));
  assert.match(await publish(ada), /Published version 4/);
  // Signaling serves version 4 once it has taken it (within a second or so): both changes.
  const deadline = Date.now() + 5000;
  let served = await servedDemo();
  while (served.collision.rows[9][14] !== '#' && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 100));
    served = await servedDemo();
  }
  assert.equal(served.collision.rows[9][14], '#', "Ada's change");
  assert.equal(served.collision.rows[9][12], '#', "Ann's change");
  await ann.close();
  await ada.close();
});

test('a door-only room whose door is deleted cannot be published; the fault is named and shown', async () => {
  const ada = await openClient(live.browser, live.server.url, 'Ada', { admin: true, device: WIDE });
  await openBuild(ada);
  await ada.click('[data-tool="object"]');
  await clickMap(ada, 3.5, 6.5);
  await until(ada, () => document.querySelector('.build-selection legend')?.textContent === 'door meeting-door');
  await ada.click('.build-selection >> text=Delete');
  await until(ada, () => /1 fault to fix/.test(document.querySelector('#build-verdict').textContent));
  const fault = await ada.evaluate(() => document.querySelector('.build-problems')?.textContent ?? '');
  assert.match(fault, /meeting-door/);
  assert.match(fault, /\$\.zones\[0\]\.entry_via\[0\]/);
  assert.equal(await ada.evaluate(() => document.querySelector('#build-publish').disabled), true);
  await ada.click('.build-problems button.problem');
  await screenshot(ada, 'build-fault');
  await ada.click('#build-undo');
  await until(ada, () => document.querySelector('#build-verdict').textContent === 'No faults.');
  await ada.close();
});

/** Drags on the map from tile point `from` to `to` (tile units), both brought into view. */
async function dragMap(page, from, to) {
  await page.evaluate(([x, y]) => window.isoplane.lookAt(x, y), [(from[0] + to[0]) / 2, (from[1] + to[1]) / 2]);
  const a = await settledScreenAt(page, ...from);
  const b = await settledScreenAt(page, ...to);
  await page.mouse.move(a.x, a.y);
  await page.mouse.down();
  await page.mouse.move(b.x, b.y, { steps: 8 });
  await page.mouse.up();
}

test('a tileset uploaded from build mode paints the floor; an exit is drawn and pointed at a world; both are published', async () => {
  const ada = await openClient(live.browser, live.server.url, 'Ada', { admin: true, device: WIDE });
  await openBuild(ada);
  await ada.click('[data-tool="floor"]');
  // Two 64 × 64 tile pictures side by side.
  const svg = '<svg xmlns="http://www.w3.org/2000/svg" width="128" height="64"><rect width="64" height="64" fill="#2a9d8f"/><rect x="64" width="64" height="64" fill="#e9c46a"/></svg>';
  await ada.setInputFiles('.build-upload input[type="file"]', { name: 'garden.svg', mimeType: 'image/svg+xml', buffer: Buffer.from(svg) });
  await ada.click('.build-upload button[type="submit"]');
  await ada.getByRole('button', { name: 'garden tile 2' }).click();
  await clickMap(ada, 5.5, 9.5);
  const painted = await ada.evaluate(() => {
    const file = window.isoplane.build.file;
    const set = file.tilesets.find((t) => t.name === 'garden');
    return { gid: file.layers.find((l) => l.depth === 'below').tiles[9 * file.grid.width + 5], expected: set.first_gid + 1, columns: set.columns, count: set.tile_count };
  });
  assert.deepEqual(painted, { gid: painted.expected, expected: painted.expected, columns: 2, count: 2 });

  await ada.click('[data-tool="exit"]');
  await dragMap(ada, [20.5, 12.5], [21.5, 13.5]);
  await until(ada, () => /fault/.test(document.querySelector('#build-verdict').textContent) && /exits\[1\]\.world/.test(document.querySelector('.build-problems')?.textContent ?? ''));
  // The demo has one exit already; this one is the second.
  const exit = await ada.evaluate(() => window.isoplane.build.file.exits[1]);
  assert.deepEqual(exit, { id: 'exit-1', area: [{ x: 20, y: 12, w: 2, h: 2 }], world: '' });
  await ada.fill('#build-exit-world', 'garden');
  await ada.press('#build-exit-world', 'Tab');
  await screenshot(ada, 'build-floor-and-exit');
  assert.match(await publish(ada), /Published version 5/);
  await ada.close();
});
