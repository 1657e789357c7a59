// Finding people, in headless Chromium against a real Isoplane: the people list of the
// whole world, locating someone and walking to them, following them across zones, and
// knocking on a full room to be let in (or not).

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { openAdaAndBob, openClient, screenshot, until, useIsoplane } from './harness.js';

const live = useIsoplane();

/** Walks the page into a zone with the places list, as a person would, and waits until it is there. */
async function walkInto(page, zoneName, zoneId) {
  if (!(await page.locator('#people-panel').isVisible())) await page.click('#people-toggle');
  await page.getByRole('button', { name: `Walk to ${zoneName}`, exact: true }).click();
  await until(page, (id) => window.isoplane.zone.id === id && window.isoplane.path.length === 0, zoneId, 30000);
  await page.click('#people-toggle');
}

/** Tiles between the page's avatar and a point (sub-tile units). */
const tilesFrom = (page, at) => page.evaluate((p) => Math.hypot(window.isoplane.position.x - p.x, window.isoplane.position.y - p.y) / 256, at);

test('the people list shows everyone in the world; locate draws the way; walk to walks there', async () => {
  const { ada, bob, bobId } = await openAdaAndBob(live.browser, live.server.url);
  await walkInto(bob, 'Cafe', 'cafe');
  await bob.selectOption('#my-status', 'busy');

  await ada.click('#people-toggle');
  // Bob is in another zone: only the people list knows him.
  assert.equal(await ada.evaluate((id) => window.isoplane.others.has(id), bobId), false);
  const bobItem = ada.locator(`#people-panel li[data-avatar="${bobId}"]`);
  await until(ada, (id) => /Busy · Cafe/.test(document.querySelector(`#people-panel li[data-avatar="${id}"]`)?.textContent ?? ''), bobId);
  assert.match(await ada.locator('#people-panel .people').textContent(), /Ada \(you\)/);
  // The search narrows the list.
  await ada.fill('#people-search', 'cafe busy');
  await until(ada, () => document.querySelectorAll('#people-panel .people li').length === 1);
  await ada.fill('#people-search', '');

  await bobItem.getByRole('button', { name: 'Locate Bob' }).click();
  const located = await until(ada, () => window.isoplane.located);
  const bobAt = await bob.evaluate(() => ({ ...window.isoplane.position }));
  const end = located.route.at(-1);
  assert.ok(Math.floor(end.x) === Math.floor(bobAt.x / 256) && Math.floor(end.y) === Math.floor(bobAt.y / 256), 'the way ends on Bob');
  const adaAt = await ada.evaluate(() => ({ ...window.isoplane.position }));
  assert.ok(Math.hypot(located.route[0].x - adaAt.x / 256, located.route[0].y - adaAt.y / 256) < 0.01, 'the way starts at Ada');
  assert.match(await ada.locator('#notice').textContent(), /Bob is in Cafe/);
  await screenshot(ada, 'locate');

  await bobItem.getByRole('button', { name: 'Walk to Bob' }).click();
  await until(ada, () => window.isoplane.zone.id === 'cafe' && window.isoplane.path.length === 0, null, 30000);
  assert.ok(await tilesFrom(ada, bobAt) < 1.5, 'Ada stands by Bob');
  assert.equal(await ada.evaluate(() => window.isoplane.located), null, 'walking ends the drawn way');
  await ada.context().close();
  await bob.context().close();
});

test('following someone walks behind them across zones until stopped; they see who follows', async () => {
  const { ada, bob, bobId } = await openAdaAndBob(live.browser, live.server.url);
  await ada.click('#people-toggle');
  await ada.locator(`#people-panel li[data-avatar="${bobId}"]`).getByRole('button', { name: 'Follow Bob' }).click();
  await until(ada, () => window.isoplane.follow?.name === 'Bob');
  await until(bob, () => document.getElementById('followers').textContent === 'Ada is following you.');
  assert.match(await ada.locator('#following').textContent(), /Following Bob/);
  await ada.click('#people-toggle');

  // Bob walks into the cafe (another zone); Ada comes after and stops close behind.
  await walkInto(bob, 'Cafe', 'cafe');
  const bobAt = await bob.evaluate(() => ({ ...window.isoplane.position }));
  await until(ada, () => window.isoplane.zone.id === 'cafe', null, 30000);
  await until(ada, (p) => Math.hypot(window.isoplane.position.x - p.x, window.isoplane.position.y - p.y) / 256 <= 2.6 && window.isoplane.path.length === 0, bobAt, 30000);
  assert.equal(await ada.evaluate(() => window.isoplane.corrections), 0, 'following never walks into a refused move');

  // And on to the library, past the lobby.
  await walkInto(bob, 'Library', 'library');
  await until(ada, () => window.isoplane.zone.id === 'library', null, 30000);
  await screenshot(bob, 'followed');

  // Stopping: Ada's line goes, and Bob is told nobody follows.
  await ada.click('#following button');
  await until(bob, () => document.getElementById('followers').textContent === '');
  assert.equal(await ada.evaluate(() => window.isoplane.follow), null);
  const adaAt = await ada.evaluate(() => ({ ...window.isoplane.position }));
  await walkInto(bob, 'Cafe', 'cafe');
  assert.deepEqual(await ada.evaluate(() => ({ ...window.isoplane.position })), adaAt, 'no longer following: Ada stays');

  // Following again, then Bob leaves the world: the follow ends by itself.
  await ada.click('#people-toggle');
  await ada.locator(`#people-panel li[data-avatar="${bobId}"]`).getByRole('button', { name: 'Follow Bob' }).click();
  await until(ada, () => window.isoplane.follow !== null);
  await bob.evaluate(() => window.isoplane.connection.send({ type: 'leave' }));
  await until(ada, () => window.isoplane.follow === null, null, 10000);
  assert.match(await ada.locator('#notice').textContent(), /Bob left the world/);
  await ada.context().close();
  await bob.context().close();
});

test('knocking on a full room: someone inside lets one in, or declines; knocking again at once is refused', async () => {
  const { ada, bob } = await openAdaAndBob(live.browser, live.server.url);
  const cy = await openClient(live.browser, live.server.url, 'Cy');
  const dan = await openClient(live.browser, live.server.url, 'Dan');
  // The phone booth holds two.
  await walkInto(bob, 'Phone booth', 'booth');
  await walkInto(cy, 'Phone booth', 'booth');

  // Ada walks to the booth: refused (full), offered to knock.
  await ada.click('#people-toggle');
  await ada.getByRole('button', { name: 'Walk to Phone booth', exact: true }).click();
  await ada.click('#people-toggle');
  const knock = ada.getByRole('button', { name: 'Knock on Phone booth' });
  await knock.waitFor({ timeout: 30000 });
  assert.equal(await ada.evaluate(() => window.isoplane.lastCorrection), 'zone_full');
  await knock.click();
  await until(ada, () => /Waiting for someone inside/.test(document.getElementById('notice').textContent));

  // Both inside are asked; Bob lets Ada in and Cy's prompt goes away.
  for (const page of [bob, cy]) await until(page, () => /Ada is knocking on Phone booth/.test(document.getElementById('knocks').textContent));
  await screenshot(bob, 'knock-prompt');
  await bob.getByRole('button', { name: 'Let in' }).click();
  await until(cy, () => document.querySelectorAll('#knocks .knock-prompt').length === 0);
  await until(cy, () => /Bob let Ada in/.test(document.getElementById('announcer').textContent));
  await until(ada, () => window.isoplane.zone.id === 'booth', null, 30000);
  assert.match(await ada.locator('#notice').textContent(), /Bob let you into Phone booth/);

  // Dan knocks too (now three inside); Cy declines; Dan stays out.
  await dan.click('#people-toggle');
  await dan.getByRole('button', { name: 'Walk to Phone booth', exact: true }).click();
  await dan.click('#people-toggle');
  await dan.getByRole('button', { name: 'Knock on Phone booth' }).click({ timeout: 30000 });
  await until(cy, () => /Dan is knocking/.test(document.getElementById('knocks').textContent));
  await cy.getByRole('button', { name: 'Decline' }).click();
  await until(dan, () => /Cy did not let you into Phone booth/.test(document.getElementById('notice').textContent));
  assert.notEqual(await dan.evaluate(() => window.isoplane.zone.id), 'booth');

  // Knocking again at once: too soon, and nobody inside is asked.
  await dan.getByRole('button', { name: 'Knock on Phone booth' }).click();
  await until(dan, () => /a moment ago: try again in \d+ s/.test(document.getElementById('notice').textContent));
  await ada.waitForTimeout(500);
  assert.equal(await ada.evaluate(() => document.querySelectorAll('#knocks .knock-prompt').length), 0);
  for (const page of [ada, bob, cy, dan]) await page.context().close();
});
