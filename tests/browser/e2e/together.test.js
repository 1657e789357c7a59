// Working together, in headless Chromium against a real Isoplane: sharing screens (peer to
// peer and through the SFU), voices that fade with distance in open zones, and a
// meeting's video that fits the window as a grid.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { openAdaAndBob, openClient, screenshot, standAt, startIsoplane, until, useIsoplane } from './harness.js';

const live = useIsoplane();

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

/** The screen `page` shows of `avatar`: size, caption and frames so far, or null. */
const screenOf = (page, avatar) => page.evaluate((a) => {
  const video = document.querySelector(`#tiles video[data-screen="true"][data-avatar="${a}"]`);
  if (!video) return null;
  return {
    width: video.videoWidth, height: video.videoHeight, frames: video.getVideoPlaybackQuality().totalVideoFrames,
    caption: video.closest('figure').querySelector('figcaption').firstChild.textContent, pinned: video.closest('figure').classList.contains('pinned'),
  };
}, avatar);

/** Waits until `page` shows `avatar`'s screen at full size with frames coming. */
async function seesScreen(page, avatar) {
  const first = await until(page, (a) => {
    const video = document.querySelector(`#tiles video[data-screen="true"][data-avatar="${a}"]`);
    return video && video.videoWidth > 640 && video.getVideoPlaybackQuality().totalVideoFrames > 0;
  }, avatar, 30000).then(() => screenOf(page, avatar));
  await until(page, ([a, was]) => {
    const video = document.querySelector(`#tiles video[data-screen="true"][data-avatar="${a}"]`);
    return video && video.getVideoPlaybackQuality().totalVideoFrames > was + 5;
  }, [avatar, first.frames], 20000);
  return first;
}

test('sharing a screen peer to peer: both ways at once, shown large with whose it is, gone everywhere when stopped', async () => {
  const { ada, bob, adaId, bobId } = await openAdaAndBob(live.browser, live.server.url);
  await until(ada, (id) => window.isoplane.media.peers.get(id)?.pc.iceConnectionState === 'connected', bobId, 20000);
  await ada.click('#share-screen');
  await until(ada, () => document.getElementById('share-screen').textContent === 'Stop sharing');
  const seen = await seesScreen(bob, adaId);
  // The fake screen is 1280 × 720: its own resolution, not the camera's 640 × 360.
  assert.ok(seen.width > 640 && Math.abs(seen.width / seen.height - 16 / 9) < 0.05, `Ada's screen at ${seen.width} × ${seen.height}`);
  assert.equal(seen.caption, "Ada's screen");
  assert.equal(seen.pinned, true, 'a shared screen is shown large');
  assert.equal(await bob.getByRole('button', { name: "Unpin Ada's screen" }).textContent(), 'Unpin');
  // Bob's camera tile of Ada is still there beside it.
  assert.ok(await bob.evaluate((a) => document.querySelector(`#tiles video[data-avatar="${a}"]:not([data-screen])`) !== null, adaId));

  // Bob shares too: two shares at once, listed on both pages.
  await bob.click('#share-screen');
  await seesScreen(ada, bobId);
  assert.ok(await screenOf(bob, adaId), "Bob still sees Ada's share");
  await screenshot(bob, 'screen-share');

  // Ada ends hers from the browser's own bar (its track ends): gone on Bob's page; Bob's stays.
  await ada.evaluate(() => window.isoplane.media.screen.getVideoTracks()[0].dispatchEvent(new Event('ended')));
  await until(bob, (a) => !document.querySelector(`#tiles video[data-screen="true"][data-avatar="${a}"]`), adaId, 20000);
  assert.equal(await ada.locator('#share-screen').textContent(), 'Share screen');
  await seesScreen(ada, bobId);
  // And Bob stops his with the button.
  await bob.click('#share-screen');
  await until(ada, (a) => !document.querySelector(`#tiles video[data-screen="true"][data-avatar="${a}"]`), bobId, 20000);
  await ada.context().close();
  await bob.context().close();
});

test('sharing a screen through the SFU, and not from a stage listener', async () => {
  const own = await startIsoplane({ ISOPLANE_SIGNALING_OPEN_SFU_THRESHOLD: '1' });
  try {
    const { ada, bob, adaId } = await openAdaAndBob(live.browser, own.url);
    for (const page of [ada, bob]) await until(page, () => window.isoplane.media.sfu?.state === 'connected', null, 20000);
    await ada.click('#share-screen');
    const seen = await seesScreen(bob, adaId);
    assert.ok(seen.width > 640, `through the SFU at ${seen.width} × ${seen.height}`);
    assert.equal(seen.caption, "Ada's screen");
    assert.ok(await bob.evaluate(() => [...window.isoplane.media.sfu.tracks.values()].some((t) => t.source === 'screen')), 'the SFU lists it as a screen');
    await ada.click('#share-screen');
    await until(bob, (a) => !document.querySelector(`#tiles video[data-screen="true"][data-avatar="${a}"]`), adaId, 20000);

    // On the stage, away from the podium, Ada only listens: she may not share.
    await ada.evaluate(() => window.isoplane.walkTo(10, 4));
    await until(ada, () => window.isoplane.zone.id === 'stage' && window.isoplane.media.plan?.publish === false, null, 30000);
    assert.equal(await ada.locator('#share-screen').isDisabled(), true);
    const refusal = await ada.evaluate(() => window.isoplane.media.shareScreen());
    assert.match(refusal, /may not share/);
    assert.equal(await ada.evaluate(() => window.isoplane.media.screen), null);
    await ada.context().close();
    await bob.context().close();
  } finally {
    own.stop();
  }
});
