// Text chat in headless Chromium against a real Isoplane: zone, world and direct
// messages, history after a reload, text never read as HTML, an admin's delete, and
// refusals of an oversized message and of a flood.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { openClient, screenshot, until, useIsoplane } from './harness.js';

const live = useIsoplane();

/** Sends `text` from the chat panel of `page` in `scope` ('zone', 'world' or 'direct' to `to`). */
async function write(page, scope, text, to = '') {
  if (!(await page.locator('#chat-panel').isVisible())) await page.click('#chat-toggle');
  await page.click(`#chat-panel [data-scope="${scope}"]`);
  if (to) {
    await until(page, (name) => [...document.querySelectorAll('#chat-to option')].some((o) => o.text === name), to);
    await page.selectOption('#chat-to', { label: to });
  }
  await page.fill('#chat-input', text);
  await page.press('#chat-input', 'Enter');
}

/** The texts shown in the chat log of `page` for `scope`. */
async function shown(page, scope) {
  if (!(await page.locator('#chat-panel').isVisible())) await page.click('#chat-toggle');
  await page.click(`#chat-panel [data-scope="${scope}"]`);
  return page.evaluate(() => [...document.querySelectorAll('#chat-log li .text')].map((p) => p.textContent));
}

/** Waits until `page`'s log for `scope` shows `text`. */
async function sees(page, scope, text) {
  const deadline = Date.now() + 15000;
  while (Date.now() < deadline) {
    if ((await shown(page, scope)).includes(text)) return;
    await page.waitForTimeout(150);
  }
  throw new Error(`${scope} chat never showed ${JSON.stringify(text)}`);
}

test('zone messages stay in the zone, direct ones find the person anywhere, and both are there after a reload', async () => {
  const ada = await openClient(live.browser, live.server.url, 'Ada', { admin: true });
  const bob = await openClient(live.browser, live.server.url, 'Bob');
  const cy = await openClient(live.browser, live.server.url, 'Cy');
  // Cy goes to the cafe; Ada and Bob stay in the lobby.
  await cy.evaluate(() => window.isoplane.walkTo(3, 11));
  await until(cy, () => window.isoplane.zone.id === 'cafe', null, 30000);

  await write(ada, 'zone', 'Hello lobby');
  await sees(bob, 'zone', 'Hello lobby');
  await sees(ada, 'zone', 'Hello lobby');
  await cy.waitForTimeout(500);
  assert.deepEqual(await shown(cy, 'zone'), [], 'Cy, in the cafe, does not get the lobby');

  await write(ada, 'world', 'Hello everyone');
  await sees(cy, 'world', 'Hello everyone');

  // A direct message to Cy, in another zone; Bob does not get it.
  await cy.click('#chat-toggle');
  await write(ada, 'direct', 'Just for you, Cy', 'Cy');
  await until(cy, () => /Chat \(\d+\)/.test(document.getElementById('chat-toggle').textContent));
  await sees(cy, 'direct', 'Just for you, Cy');
  assert.deepEqual(await shown(bob, 'direct'), []);

  // Markup is text: shown as written, never run.
  const markup = '<img src=x onerror="window.pwned = true"> <b>bold</b> https://example.org/page';
  await write(ada, 'zone', markup);
  await sees(bob, 'zone', markup);
  assert.equal(await bob.evaluate(() => window.pwned), undefined);
  assert.equal(await bob.locator('#chat-log img, #chat-log b').count(), 0);
  const link = bob.locator('#chat-log a[href="https://example.org/page"]');
  assert.equal(await link.getAttribute('rel'), 'noopener noreferrer');
  await screenshot(bob, 'chat');

  // A reload: the lobby's and the world's messages, and Cy's direct one, are there again.
  await bob.reload();
  await bob.waitForFunction(() => window.isoplane?.joined);
  await sees(bob, 'zone', 'Hello lobby');
  await sees(bob, 'world', 'Hello everyone');
  await cy.reload();
  await cy.waitForFunction(() => window.isoplane?.joined);
  await sees(cy, 'direct', 'Just for you, Cy');

  // An admin deletes a message: gone on every page.
  await ada.click('#chat-panel [data-scope="zone"]');
  await ada.locator('#chat-log li', { hasText: 'Hello lobby' }).getByRole('button', { name: "Delete Ada's message" }).click();
  for (const page of [ada, bob]) {
    await until(page, () => ![...document.querySelectorAll('#chat-log li .text')].some((p) => p.textContent === 'Hello lobby'));
  }
  await bob.reload();
  await bob.waitForFunction(() => window.isoplane?.joined);
  await sees(bob, 'zone', markup);
  assert.ok(!(await shown(bob, 'zone')).includes('Hello lobby'), 'and not in the history either');

  // The admin mutes Bob's chat: he is told, and what he writes goes nowhere; then unmutes.
  const bobUser = await bob.evaluate(() => window.isoplane.user);
  await ada.click('#admin-toggle');
  const row = ada.locator(`#admin-panel li[data-user="${bobUser}"]`);
  await row.locator('button[data-action="mute-chat"]').click();
  await until(bob, () => /muted your chat/.test(document.getElementById('moderation').textContent));
  await write(bob, 'zone', 'can anyone hear me');
  await until(bob, () => document.querySelector('.chat-status').textContent !== '');
  await ada.waitForTimeout(500);
  assert.ok(!(await shown(ada, 'zone')).includes('can anyone hear me'), 'a muted message reaches nobody');
  await row.locator('button[data-action="unmute-chat"]').click();
  await until(bob, () => /let you chat again/.test(document.getElementById('moderation').textContent));
  await write(bob, 'zone', 'back again');
  await sees(ada, 'zone', 'back again');
  for (const page of [ada, bob, cy]) await page.context().close();
});

test('an oversized message and a flood are refused with their errors; the page keeps working', async () => {
  const ada = await openClient(live.browser, live.server.url, 'Ada');
  const bob = await openClient(live.browser, live.server.url, 'Bob');
  // The text box stops at 2,000 characters; a message sent around it is refused.
  await ada.evaluate(() => window.isoplane.connection.send({ type: 'chat_send', scope: 'zone', text: 'x'.repeat(2001) }));
  await ada.click('#chat-toggle');
  await until(ada, () => document.querySelector('.chat-status').textContent !== '');
  const refusal = await ada.locator('.chat-status').textContent();
  assert.ok(refusal.length > 0, `refused: ${refusal}`);
  // A flood: some get through, the rest are refused as too fast.
  await ada.evaluate(() => { for (let i = 0; i < 30; i++) window.isoplane.connection.send({ type: 'chat_send', scope: 'zone', text: `flood ${i}` }); });
  await until(ada, () => /too many|rate/i.test(document.querySelector('.chat-status').textContent));
  await bob.waitForTimeout(1500);
  const floodSeen = (await shown(bob, 'zone')).filter((t) => t.startsWith('flood')).length;
  assert.ok(floodSeen > 0 && floodSeen < 30, `${floodSeen} of 30 got through`);
  // Still connected and walking, and chat works again after a pause.
  assert.equal(await ada.evaluate(() => document.getElementById('status').dataset.status), 'connected');
  await ada.waitForTimeout(5000);
  await write(ada, 'zone', 'after the flood');
  await sees(bob, 'zone', 'after the flood');
  await ada.context().close();
  await bob.context().close();
});
