// The client for every person, in headless Chromium against a real Isoplane: a phone
// (touch in Chromium's mobile emulation, 390 × 844), the keyboard alone, an automated
// accessibility audit (axe-core), the map in words for screen readers, and the
// low-bandwidth switch.

import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { test } from 'node:test';
import { openAdaAndBob, openClient, PHONE, screenshot, settledScreenAt, until, useIsoplane } from './harness.js';

const AXE = createRequire(import.meta.url).resolve('axe-core/axe.min.js');

const live = useIsoplane();

/** Waits until the view rests on the avatar (the camera eases after a walk). */
const settled = (page) => until(page, () => {
  const { camera } = window.isoplane.renderer;
  const p = window.isoplane.position;
  return Math.hypot(camera.x - p.x / 256, camera.y - p.y / 256) < 0.002;
});

/** The tile the page's avatar stands on. */
const tileOf = (page) => page.evaluate(() => ({ x: Math.floor(window.isoplane.position.x / 256), y: Math.floor(window.isoplane.position.y / 256) }));

/** Runs axe-core on the page; returns its serious and critical violations, one line each. */
async function audit(page) {
  await page.addScriptTag({ path: AXE });
  const violations = await page.evaluate(async () => (await window.axe.run(document, { resultTypes: ['violations'] })).violations);
  return violations
    .filter((v) => v.impact === 'serious' || v.impact === 'critical')
    .map((v) => `${v.impact} ${v.id}: ${v.help} (${v.nodes.map((n) => n.target.join(' ')).join(', ')})`);
}

/** Touches through Chromium's DevTools protocol: real touch events, as a finger makes them. */
async function touch(page) {
  const cdp = await page.context().newCDPSession(page);
  const send = (type, points) => cdp.send('Input.dispatchTouchEvent', { type, touchPoints: points.map(([x, y], id) => ({ x, y, id })) });
  return {
    /** One finger from `from` to `to` in `steps`. */
    async drag(from, to, steps = 8) {
      await send('touchStart', [from]);
      for (let i = 1; i <= steps; i++) await send('touchMove', [[from[0] + ((to[0] - from[0]) * i) / steps, from[1] + ((to[1] - from[1]) * i) / steps]]);
      await send('touchEnd', []);
    },
    /** Two fingers around (x, y), from `gap` pixels apart to `to` pixels apart. */
    async pinch([x, y], gap, to, steps = 8) {
      await send('touchStart', [[x - gap / 2, y], [x + gap / 2, y]]);
      for (let i = 1; i <= steps; i++) {
        const now = gap + ((to - gap) * i) / steps;
        await send('touchMove', [[x - now / 2, y], [x + now / 2, y]]);
      }
      await send('touchEnd', []);
    },
  };
}

test('on a phone: tap to walk, drag to look around, pinch to zoom, media folded away', async () => {
  const phone = await openClient(live.browser, live.server.url, 'Phone', { device: PHONE });
  assert.deepEqual(await phone.evaluate(() => [innerWidth, innerHeight, navigator.maxTouchPoints > 0]), [390, 844, true]);
  // Narrow: the hint is gone, the video strip is folded behind its button.
  assert.equal(await phone.locator('.hud .hint').isVisible(), false);
  assert.equal(await phone.locator('#tiles').isVisible(), false);
  assert.equal(await phone.locator('#media-toggle').isVisible(), true);
  await phone.tap('#media-toggle');
  assert.equal(await phone.locator('#media-toggle').getAttribute('aria-expanded'), 'true');
  await phone.tap('#media-toggle');

  // Tap two tiles south-east of where we stand: the avatar walks there.
  await settled(phone);
  const start = await tileOf(phone);
  const goal = { x: start.x + 2, y: start.y };
  const point = await settledScreenAt(phone, goal.x + 0.5, goal.y + 0.5);
  await phone.touchscreen.tap(point.x, point.y);
  await until(phone, ([x, y]) => {
    const p = window.isoplane.position;
    return Math.floor(p.x / 256) === x && Math.floor(p.y / 256) === y && window.isoplane.path.length === 0;
  }, [goal.x, goal.y]);
  assert.equal(await phone.evaluate(() => window.isoplane.corrections), 0);

  // A drag moves the view, not the avatar.
  const fingers = await touch(phone);
  const before = await phone.evaluate(() => ({ at: { ...window.isoplane.position }, pan: { ...window.isoplane.renderer.pan } }));
  await fingers.drag([200, 500], [120, 420]);
  const dragged = await phone.evaluate(() => ({ at: { ...window.isoplane.position }, pan: { ...window.isoplane.renderer.pan }, path: window.isoplane.path.length }));
  assert.deepEqual(dragged.at, before.at, 'a drag does not walk');
  assert.equal(dragged.path, 0);
  assert.ok(Math.abs(dragged.pan.x - before.pan.x + 80) <= 10 && Math.abs(dragged.pan.y - before.pan.y + 80) <= 10, `panned by the drag: ${JSON.stringify(dragged.pan)}`);

  // Two fingers spreading zoom in, pinching zoom out; neither walks.
  await fingers.pinch([195, 400], 100, 200);
  const zoomedIn = await phone.evaluate(() => window.isoplane.renderer.zoom);
  assert.ok(zoomedIn > 1.6, `zoomed in to ${zoomedIn}`);
  await fingers.pinch([195, 400], 200, 80);
  const zoomedOut = await phone.evaluate(() => window.isoplane.renderer.zoom);
  assert.ok(zoomedOut < zoomedIn * 0.6, `zoomed out to ${zoomedOut}`);
  assert.deepEqual(await phone.evaluate(() => window.isoplane.position), before.at);

  // A tap after zooming still walks where it lands.
  await settled(phone);
  const next = { x: goal.x, y: goal.y + 1 };
  const there = await settledScreenAt(phone, next.x + 0.5, next.y + 0.5);
  await phone.touchscreen.tap(there.x, there.y);
  await until(phone, ([x, y]) => {
    const p = window.isoplane.position;
    return Math.floor(p.x / 256) === x && Math.floor(p.y / 256) === y && window.isoplane.path.length === 0;
  }, [next.x, next.y]);
  await screenshot(phone, 'phone');
  await phone.tap('#people-toggle');
  await until(phone, () => document.querySelectorAll('#people-panel .places li').length > 0);
  await screenshot(phone, 'phone-people');
  assert.deepEqual(await audit(phone), [], 'no serious or critical accessibility violations on a phone');
  await phone.context().close();
});

test('by keyboard alone: reach the map, walk, open the places list, walk there, unmute', async () => {
  const page = await openClient(live.browser, live.server.url, 'Keys');
  /** Presses Tab until the element with `id` has the focus (or gives up). */
  const tabTo = async (id) => {
    for (let i = 0; i < 40; i++) {
      if (await page.evaluate(() => document.activeElement?.id) === id) return;
      await page.keyboard.press('Tab');
    }
    throw new Error(`Tab never reached #${id}`);
  };
  await tabTo('world');
  // Focus is visible where it is.
  const outline = await page.evaluate(() => getComputedStyle(document.activeElement).outlineStyle);
  assert.notEqual(outline, 'none', 'the focused map shows its focus');
  const before = await page.evaluate(() => ({ ...window.isoplane.position }));
  await page.keyboard.down('ArrowDown');
  await page.waitForTimeout(600);
  await page.keyboard.up('ArrowDown');
  const after = await page.evaluate(() => ({ ...window.isoplane.position }));
  assert.ok(after.x > before.x && after.y > before.y, 'arrow keys walk with the map focused');

  // The places list: a real list of buttons; Enter on "Walk to Cafe" walks into the cafe.
  await tabTo('people-toggle');
  await page.keyboard.press('Enter');
  assert.equal(await page.evaluate(() => document.activeElement?.id), 'people-search', 'opening the panel puts the focus in its search box');
  const cafe = page.getByRole('button', { name: 'Walk to Cafe' });
  await cafe.focus();
  await page.keyboard.press('Enter');
  await until(page, () => window.isoplane.zone.id === 'cafe', null, 20000);
  await until(page, () => document.getElementById('announcer').textContent.includes('You are in Cafe'));
  await until(page, () => document.getElementById('where').textContent.startsWith('You are in Cafe'));
  // Escape closes the panel and gives the focus back to its button.
  await page.keyboard.press('Escape');
  assert.equal(await page.locator('#people-panel').isVisible(), false);
  assert.equal(await page.evaluate(() => document.activeElement?.id), 'people-toggle');

  // The microphone, by keyboard: Enter mutes, Enter again unmutes.
  await tabTo('mute-audio');
  const micLive = () => page.evaluate(() => window.isoplane.media.local?.getAudioTracks().every((t) => t.enabled));
  assert.equal(await micLive(), true);
  await page.keyboard.press('Enter');
  assert.equal(await page.locator('#mute-audio').getAttribute('aria-pressed'), 'true');
  assert.equal(await micLive(), false);
  await page.keyboard.press('Enter');
  assert.equal(await page.locator('#mute-audio').getAttribute('aria-pressed'), 'false');
  assert.equal(await micLive(), true);
  await page.context().close();
});

test('an accessibility audit of the desktop page, with the people panel open, finds nothing serious', async () => {
  const { ada, bob, bobId } = await openAdaAndBob(live.browser, live.server.url);
  await until(ada, (id) => window.isoplane.others.has(id), bobId);
  assert.deepEqual(await audit(ada), [], 'the page as it opens');
  await ada.click('#people-toggle');
  await until(ada, () => document.querySelectorAll('#people-panel .people li').length >= 2);
  assert.deepEqual(await audit(ada), [], 'with the people panel open');
  // The map's text alternative names who is near, and the canvas points at it.
  assert.equal(await ada.getAttribute('#world', 'aria-describedby'), 'where');
  await until(ada, () => /Bob/.test(document.getElementById('where').textContent));
  await screenshot(ada, 'desktop-people');
  // The live region says who joins and leaves the conversation (a peer link in the lobby).
  await until(ada, () => document.getElementById('announcer').textContent.includes('Bob joined your conversation.'), null, 20000);
  await bob.evaluate(() => window.isoplane.connection.send({ type: 'leave' }));
  await until(ada, () => document.getElementById('announcer').textContent.includes('Bob left your conversation.'));
  await bob.context().close();
  await ada.context().close();
});

test('reduced motion: the view jumps to the avatar instead of gliding', async () => {
  const context = await live.browser.newContext({ viewport: { width: 1100, height: 700 }, reducedMotion: 'reduce' });
  const page = await context.newPage();
  await page.goto(`${live.server.url}/?debug=1&name=Still`);
  await page.waitForFunction(() => window.isoplane?.renderer && window.isoplane.joined);
  await page.evaluate(() => window.isoplane.walkTo(14, 8));
  // Every frame, the camera is exactly on the avatar.
  const gaps = await page.evaluate(() => new Promise((resolve) => {
    const seen = [];
    const look = () => {
      const camera = window.isoplane.renderer.camera;
      const p = window.isoplane.position;
      seen.push(Math.hypot(camera.x - p.x / 256, camera.y - p.y / 256));
      if (seen.length < 30) requestAnimationFrame(look);
      else resolve(seen);
    };
    requestAnimationFrame(look);
  }));
  assert.ok(Math.max(...gaps) < 0.3, `the camera stays on the avatar (largest gap ${Math.max(...gaps).toFixed(2)} tiles)`);
  await context.close();
});

test('low bandwidth: audio only both ways on a peer link, and video again after', async () => {
  const { ada, bob, adaId, bobId } = await openAdaAndBob(live.browser, live.server.url);
  // Both in the lobby (open) near the entrance: a peer-to-peer link.
  await until(ada, (id) => window.isoplane.media.peers.get(id)?.pc.iceConnectionState === 'connected', bobId, 20000);
  const framesFrom = (page, id) => page.evaluate(async (avatar) => (await window.isoplane.media.stats())[avatar]?.framesDecoded ?? 0, id);
  const samplesFrom = (page, id) => page.evaluate(async (avatar) => (await window.isoplane.media.stats())[avatar]?.audioSamples ?? 0, id);
  const growing = async (read) => {
    const first = await read();
    await new Promise((resolve) => setTimeout(resolve, 1500));
    return (await read()) - first;
  };
  await until(bob, (id) => window.isoplane.media.stats().then((s) => (s[id]?.framesDecoded ?? 0) > 10), adaId, 20000);

  await bob.click('#low-bandwidth');
  assert.equal(await bob.locator('#low-bandwidth').getAttribute('aria-pressed'), 'true');
  // Once the link has renegotiated its video as inactive, no video flows either way; audio does.
  const videoInactive = (page, id) => until(page, (avatar) => window.isoplane.media.peers.get(avatar)?.pc.getTransceivers()
    .some((t) => t.receiver.track.kind === 'video' && t.currentDirection === 'inactive'), id);
  await videoInactive(bob, adaId);
  await videoInactive(ada, bobId);
  // Frames already on their way are decoded still.
  await bob.waitForTimeout(500);
  assert.equal(await growing(() => framesFrom(bob, adaId)), 0, 'Bob decodes no video from Ada');
  assert.equal(await growing(() => framesFrom(ada, bobId)), 0, 'Ada decodes no video from Bob');
  assert.ok(await growing(() => samplesFrom(bob, adaId)) > 0, 'Bob still hears Ada');
  assert.ok(await growing(() => samplesFrom(ada, bobId)) > 0, 'Ada still hears Bob');
  assert.equal(await bob.locator('#tiles video').first().isVisible(), false, 'tiles show names only');

  await bob.click('#low-bandwidth');
  await until(bob, (id) => window.isoplane.media.stats().then((s) => s[id]?.framesDecoded ?? 0), adaId);
  const back = async (page, id) => {
    const first = await framesFrom(page, id);
    await until(page, ([avatar, was]) => window.isoplane.media.stats().then((s) => (s[avatar]?.framesDecoded ?? 0) > was + 10), [id, first], 20000);
  };
  await back(bob, adaId);
  await back(ada, bobId);
  await ada.context().close();
  await bob.context().close();
});
