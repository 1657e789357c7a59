// Recording a meeting in headless Chromium against a real Isoplane: an admin allows it in
// the demo world's meeting room (`meeting`, `"recording": true` in the world file), a
// member starts it, and everyone inside is told who records, from the moment it starts;
// someone who walks in later is told by the zone's snapshot, before the media plan that
// lets their camera and microphone reach the SFU.
//
// The client's side is here. Still to add with the server's side: what the SFU writes
// (the recording's files in the object store, its metrics), and stopping it.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { openClient, screenshot, until, useIsoplane } from './harness.js';

const live = useIsoplane();

const ROOM = 'meeting';

/** Walks the page into zone `zone` as a user would, from the places list. */
async function enter(page, zone) {
  await page.click('#people-toggle');
  await page.click(`#people-panel [data-key="zone-${zone}"]`);
  await page.click('#people-toggle');
  await until(page, (id) => window.isoplane.zone.id === id && window.isoplane.path.length === 0, zone, 30000);
}

/** What the recording indicator says ('' when hidden). */
const indicator = (page) => page.evaluate(() => document.getElementById('recording').textContent);

test('a member starts recording where an admin allowed it: everyone inside sees who records, a newcomer before any media flows', async () => {
  const ada = await openClient(live.browser, live.server.url, 'Ada', { admin: true });
  const bob = await openClient(live.browser, live.server.url, 'Bob');
  await enter(ada, ROOM);
  await enter(bob, ROOM);
  assert.equal(await indicator(bob), '', 'nobody records yet');

  // Ada allows recording in the meeting room from the admin panel.
  await ada.click('#admin-toggle');
  await ada.getByRole('tab', { name: 'Zones' }).click();
  await ada.locator(`#admin-panel tr[data-zone="${ROOM}"] button[data-action="allow-recording"]`).click();
  await until(ada, () => /Recording allowed/.test(document.getElementById('admin-result').textContent ?? ''));
  await ada.click('#admin-toggle');

  // Bob may start it: his Record button is there.
  const record = bob.getByRole('button', { name: 'Record', exact: true });
  await record.waitFor({ state: 'visible' });
  await record.click();
  for (const page of [ada, bob]) {
    await until(page, () => /Recording — started by Bob/.test(document.getElementById('recording').textContent ?? ''));
    const region = await page.evaluate(() => document.getElementById('recording').getAttribute('role'));
    assert.equal(region, 'status', 'said to screen readers too');
  }
  assert.equal(await bob.getByRole('button', { name: 'Stop recording' }).getAttribute('aria-pressed'), 'true');
  assert.deepEqual(await bob.evaluate(() => window.isoplane.recording.current?.by), 'Bob');
  await screenshot(bob, 'recording');

  // Cy walks in later: her page says who records before the room's first media plan
  // reaches her client (looked at as that plan arrives, before the client handles it).
  const cy = await openClient(live.browser, live.server.url, 'Cy', {
    beforeMessage: (message) => {
      if (message.type === 'media' && window.isoplane?.zone.id === 'meeting' && window.shownAtFirstPlan === undefined) {
        window.shownAtFirstPlan = document.getElementById('recording').textContent;
      }
      return true;
    },
  });
  assert.equal(await indicator(cy), '', 'nothing is recorded in the lobby');
  await enter(cy, ROOM);
  await until(cy, () => window.shownAtFirstPlan !== undefined);
  assert.match(await cy.evaluate(() => window.shownAtFirstPlan), /Recording — started by Bob/);
  assert.match(await indicator(cy), /Recording — started by Bob/);

  // TODO (with the server's side): the SFU records the room (its files, its metrics);
  // Bob stops it and every indicator goes; a forbidding admin stops it too.
  for (const page of [ada, bob, cy]) await page.context().close();
});
