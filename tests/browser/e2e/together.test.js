// Working together, in headless Chromium against a real Isoplane: voices fade with
// distance in open zones, and a meeting's video fits the window as a grid.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { openAdaAndBob, openClient, screenshot, until, useIsoplane } from './harness.js';

const live = useIsoplane();

/** Walks the page to tile (x, y) and waits until it stands there. */
async function standAt(page, x, y) {
  await page.evaluate(([tx, ty]) => window.isoplane.walkTo(tx, ty), [x, y]);
  await until(page, ([tx, ty]) => {
    const p = window.isoplane.position;
    return Math.floor(p.x / 256) === tx && Math.floor(p.y / 256) === ty && window.isoplane.path.length === 0;
  }, [x, y], 30000);
}

/** The loudest we play `avatar`'s voice over `ms` (the fake microphone beeps now and then). */
const loudest = (page, avatar, ms = 3000) => page.evaluate(([a, span]) => new Promise((resolve) => {
  let peak = 0;
  const end = performance.now() + span;
  const look = () => {
    peak = Math.max(peak, window.isoplane.playedLevel(a) ?? 0);
    if (performance.now() < end) setTimeout(look, 20);
    else resolve(peak);
  };
  look();
}), [avatar, ms]);

test('in the cafe a voice is loud up close, fades with distance, and is flat again with the switch off', async () => {
  const { ada, bob, adaId } = await openAdaAndBob(live.browser, live.server.url);
  // A key press is a gesture: the page's audio context may start.
  for (const page of [ada, bob]) await page.keyboard.press('Shift');
  await standAt(ada, 4, 11);
  await standAt(bob, 4, 11);
  await until(bob, (id) => window.isoplane.media.peers.get(id)?.pc.iceConnectionState === 'connected', adaId, 20000);
  await until(bob, (id) => window.isoplane.playedLevel(id) !== null && window.isoplane.media.audio?.state === 'running', adaId, 20000);
  assert.equal(await bob.evaluate((id) => window.isoplane.media.peers.get(id).video.muted, adaId), true, 'WebAudio plays the voice, not the element');

  const near = await loudest(bob, adaId);
  assert.ok(near > 10, `Ada is heard up close (peak ${near})`);
  // Two tiles apart: the cafe's talk radius, where the fade reaches silence (the pair holds a tile longer).
  await standAt(bob, 6, 11);
  const far = await loudest(bob, adaId);
  assert.ok(await bob.evaluate((id) => window.isoplane.media.plan.peers.some((p) => p.avatar === id), adaId), 'still paired');
  assert.ok(far < near / 4, `quieter at 2 tiles (${far}) than at 0 (${near})`);

  // The switch: flat volume at the same distance.
  await bob.click('#distance-audio');
  const flat = await loudest(bob, adaId);
  assert.ok(flat > near / 2, `with distance audio off, Ada is as loud at 2 tiles (${flat}) as up close (${near})`);
  await ada.context().close();
  await bob.context().close();
});

test('four people in the meeting room: every tile fits the window, the speaker is marked, one can be pinned', async () => {
  const pages = [];
  for (const name of ['Ada', 'Bob', 'Cy', 'Dan']) {
    const page = await openClient(live.browser, live.server.url, name);
    // Through the door one at a time (it holds one person).
    await page.click('#people-toggle');
    await page.getByRole('button', { name: 'Walk to Meeting room', exact: true }).click();
    await page.click('#people-toggle');
    await until(page, () => window.isoplane.zone.id === 'meeting' && window.isoplane.path.length === 0, null, 30000);
    await page.evaluate((spot) => window.isoplane.walkTo(...spot), [[1, 1], [6, 1], [1, 5], [6, 5]][pages.length]);
    pages.push(page);
  }
  const [ada] = pages;
  const others = await Promise.all(pages.slice(1).map((p) => p.evaluate(() => window.isoplane.self)));
  // Every tile has come (three others and the self view) and has video.
  await until(ada, (ids) => ids.every((id) => {
    const video = document.querySelector(`#tiles video[data-avatar="${id}"]`);
    return video && video.videoWidth > 0;
  }), others, 40000);
  await until(ada, () => document.querySelector('.media').classList.contains('grid'));
  await until(ada, () => !document.querySelector('#tiles .tile.self').hidden);
  const boxes = await ada.evaluate(() => [...document.querySelectorAll('#tiles .tile')].filter((t) => !t.hidden).map((t) => {
    const r = t.getBoundingClientRect();
    return { top: r.top, bottom: r.bottom, left: r.left, right: r.right, width: r.width, height: r.height };
  }));
  assert.equal(boxes.length, 4, 'three others and the self view');
  for (const box of boxes) {
    assert.ok(box.top >= 0 && box.left >= 0 && box.bottom <= 700 && box.right <= 1100, `a tile inside the window: ${JSON.stringify(box)}`);
    assert.ok(box.width >= 150 && box.height >= 90, `a tile big enough to see: ${JSON.stringify(box)}`);
  }
  // Someone speaking is marked (the fake microphones beep now and then).
  await until(ada, () => document.querySelector('#tiles .tile.speaking') !== null, null, 20000);
  await screenshot(ada, 'meeting-grid');

  // Pinning Bob: his tile is the biggest; unpinning restores the grid.
  await ada.getByRole('button', { name: 'Pin Bob' }).click();
  const sizes = await ada.evaluate(() => [...document.querySelectorAll('#tiles .tile')].filter((t) => !t.hidden).map((t) => ({
    pinned: t.classList.contains('pinned'), area: t.getBoundingClientRect().width * t.getBoundingClientRect().height,
  })));
  const pinned = sizes.find((t) => t.pinned);
  assert.ok(pinned && sizes.every((t) => t.pinned || t.area < pinned.area), `the pinned tile is the biggest: ${JSON.stringify(sizes)}`);
  await ada.getByRole('button', { name: 'Unpin Bob' }).click();
  assert.equal(await ada.locator('#tiles .tile.pinned').count(), 0);
  for (const page of pages) await page.context().close();
});
