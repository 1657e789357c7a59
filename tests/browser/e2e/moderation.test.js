// Moderation in the browser client against a real Isoplane, in headless Chromium: an
// admin (Ada) works the admin panel as a user would, and a member (Bob) sees what it does
// to him. The tests run in order and share Ada's and Bob's pages.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { launchBrowser, openClient, screenshot, startIsoplane, until } from './harness.js';

/** @type {{url: string, stop: () => void}} */
let server;
/** @type {import('playwright-core').Browser} */
let browser;
/** @type {import('playwright-core').Page} */
let ada;
/** @type {import('playwright-core').Page} */
let bob;
let adaId = 0;
let bobId = 0;
let adaUser = '';
let bobUser = '';

before(async () => {
  server = await startIsoplane();
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  server?.stop();
});

/** The centre of tile (x, y) in sub-tile units. */
const centre = (x, y) => ({ x: x * 256 + 128, y: y * 256 + 128 });

/** Bob's row in Ada's people list. */
const row = () => ada.locator(`#admin-panel li[data-user="${bobUser}"]`);

/** Media counters of the page's peer connection to `avatar`, from Chromium's getStats. */
const counters = (page, avatar) =>
  page.evaluate(async (id) => {
    const peer = window.isoplane.media.peers.get(id);
    if (!peer) return null;
    const out = { audioIn: 0, audioOut: 0, framesIn: 0 };
    (await peer.pc.getStats()).forEach((s) => {
      if (s.type === 'inbound-rtp' && s.kind === 'audio') out.audioIn += s.packetsReceived ?? 0;
      if (s.type === 'inbound-rtp' && s.kind === 'video') out.framesIn += s.framesDecoded ?? 0;
      if (s.type === 'outbound-rtp' && s.kind === 'audio') out.audioOut += s.packetsSent ?? 0;
    });
    return out;
  }, avatar);

/**
 * Waits until the counter `name` of the link to `avatar` stops (`moving` false) or goes
 * on (`moving` true) growing over a 700 ms window.
 */
async function untilCounter(page, avatar, name, moving) {
  const deadline = Date.now() + 20000;
  let seen = [];
  while (Date.now() < deadline) {
    const first = (await counters(page, avatar))?.[name] ?? 0;
    await page.waitForTimeout(700);
    const second = (await counters(page, avatar))?.[name] ?? 0;
    seen = [first, second];
    if (moving ? second > first && first > 0 : second === first && first > 0) return second;
  }
  throw new Error(`${name} of the link to ${avatar} never ${moving ? 'grew' : 'stopped'} (last: ${seen.join(' → ')})`);
}

/** Waits until the page's avatar stands at the centre of tile (x, y). */
async function arrive(page, x, y) {
  await page.evaluate(([tx, ty]) => window.isoplane.walkTo(tx, ty), [x, y]);
  await until(page, (at) => {
    const p = window.isoplane.position;
    return Math.abs(p.x - at.x) <= 2 && Math.abs(p.y - at.y) <= 2 && window.isoplane.path.length === 0;
  }, centre(x, y), 30000);
}

describe('moderation from the admin panel', () => {
  test('an admin has a panel listing everyone; a member has none', async () => {
    ada = await openClient(browser, server.url, 'Ada', { admin: true });
    bob = await openClient(browser, server.url, 'Bob');
    ({ self: adaId, user: adaUser } = await ada.evaluate(() => ({ self: window.isoplane.self, user: window.isoplane.user })));
    ({ self: bobId, user: bobUser } = await bob.evaluate(() => ({ self: window.isoplane.self, user: window.isoplane.user })));
    // Both stand on the entrance spawn in the lobby: a peer-to-peer pair.
    await until(ada, (id) => window.isoplane.media.plan?.topology === 'p2p' && window.isoplane.media.peers.has(id), bobId);
    await until(bob, (id) => window.isoplane.media.plan?.topology === 'p2p' && window.isoplane.media.peers.has(id), adaId);

    assert.equal(await ada.evaluate(() => window.isoplane.admin), true);
    assert.equal(await bob.evaluate(() => window.isoplane.admin), false);
    assert.equal(await bob.locator('#admin-toggle').isVisible(), false, 'no admin button for a member');
    assert.equal(await bob.locator('#admin-panel').isVisible(), false);

    await ada.locator('#admin-toggle').click();
    await ada.locator('#admin-panel').waitFor({ state: 'visible' });
    for (const [user, name] of [[adaUser, 'Ada'], [bobUser, 'Bob']]) {
      const person = ada.locator(`#admin-panel li[data-user="${user}"]`);
      await person.waitFor();
      const text = await person.textContent();
      assert.ok(text.includes(name) && text.includes(user) && text.includes('demo · Lobby'), text);
    }
  });

  test('muting Bob’s audio stops it at both ends; unmuting brings it back', async () => {
    // Before: Bob's audio reaches Ada.
    await untilCounter(ada, bobId, 'audioIn', true);
    await ada.locator('#admin-reason').fill('echo');
    await row().locator('button[data-action="mute-audio"]').click();

    // Bob is told, his button says so, and he sends no audio to anyone.
    await until(bob, () => document.getElementById('moderation').textContent === 'Ada muted your microphone: echo');
    await until(bob, () => {
      const button = /** @type {HTMLButtonElement} */ (document.getElementById('mute-audio'));
      return button.disabled && button.textContent === 'Mic muted by an admin' && window.isoplane.selfMuted('audio');
    });
    const sending = () => bob.evaluate(() => ({
      localEnabled: window.isoplane.media.local.getAudioTracks().every((t) => t.enabled),
      senders: [...window.isoplane.media.peers.values()].flatMap((p) => p.pc.getSenders())
        .filter((s) => s.track?.kind === 'audio').length,
    }));
    await until(bob, () => [...window.isoplane.media.peers.values()].every((p) => !p.pc.getSenders().some((s) => s.track?.kind === 'audio')));
    assert.deepEqual(await sending(), { localEnabled: false, senders: 0 });
    await untilCounter(bob, adaId, 'audioOut', false);
    // Clicking his own button cannot undo it.
    await bob.evaluate(() => window.isoplane.toggle(/** @type {HTMLButtonElement} */ (document.getElementById('mute-audio')), 'audio'));
    assert.deepEqual(await sending(), { localEnabled: false, senders: 0 });

    // Ada's plan marks the link, and her page plays none of Bob's audio: the received
    // track is off, the element muted, and no audio packets arrive; video still does.
    await until(ada, (id) => window.isoplane.media.plan.peers.find((p) => p.avatar === id)?.audio_muted === true, bobId);
    await until(ada, (id) => window.isoplane.peerAudioMuted(id) === true, bobId);
    assert.equal(await ada.evaluate((id) => document.querySelector(`video[data-avatar="${id}"]`).muted, bobId), true);
    assert.equal(await ada.evaluate((id) => window.isoplane.peerVideoHidden(id), bobId), false, 'video is not muted');
    await untilCounter(ada, bobId, 'audioIn', false);
    await untilCounter(ada, bobId, 'framesIn', true);
    await row().locator('[data-state="audio-muted"]').waitFor();
    await screenshot(ada, 'admin-panel');

    // Unmute: Bob sends again and Ada plays it.
    await row().locator('button[data-action="unmute"]').click();
    await until(bob, () => document.getElementById('moderation').textContent === 'Ada unmuted your microphone');
    await until(bob, () => {
      const button = /** @type {HTMLButtonElement} */ (document.getElementById('mute-audio'));
      return !button.disabled && button.textContent === 'Mic' && !window.isoplane.selfMuted('audio');
    });
    await until(bob, () => [...window.isoplane.media.peers.values()].every((p) => p.pc.getSenders().some((s) => s.track?.kind === 'audio')));
    assert.equal((await sending()).localEnabled, true);
    await until(ada, (id) => window.isoplane.peerAudioMuted(id) === false, bobId);
    // Played again: by the element, or by distance audio (which then keeps the element silent).
    assert.equal(await ada.evaluate((id) => {
      const video = document.querySelector(`video[data-avatar="${id}"]`);
      return video.muted === (video.dataset.spatial === 'true');
    }, bobId), true);
    await untilCounter(ada, bobId, 'audioIn', true);
    await row().locator('[data-state="audio-muted"]').waitFor({ state: 'detached' });
  });

  test('a world notice shows on Bob’s page with Ada’s name', async () => {
    await ada.locator('#admin-panel button[data-tab="notice"]').click();
    await ada.locator('#admin-notice-text').fill('Fire drill at 15:00');
    await ada.locator('#admin-panel button[data-action="send-notice"]').click();
    const toast = bob.locator('#toasts .toast', { hasText: 'Fire drill at 15:00' });
    await toast.waitFor();
    assert.equal(await toast.locator('.from').textContent(), 'Notice from Ada');
    assert.deepEqual(await bob.evaluate(() => window.isoplane.notices.map((n) => [n.by, n.text])), [['Ada', 'Fire drill at 15:00']]);
    await until(ada, () => document.getElementById('admin-result').textContent === 'Notice shown to 2 people');
  });

  test('moving Bob to a spawn point puts him there on both pages and stops his walk', async () => {
    await ada.locator('#admin-panel button[data-tab="people"]').click();
    // Bob goes to the cafe's far corner and sets off on a walk across it; Ada sends him to
    // the entrance on the way. (Every step of that walk is farther from the entrance than
    // anyone may walk in a second, so a step sent before Bob heard of the move cannot be
    // taken from the entrance either.)
    await arrive(bob, 7, 13);
    await until(bob, () => window.isoplane.zone.id === 'cafe');
    await until(ada, (id) => !window.isoplane.others.has(id), bobId);
    await bob.evaluate(() => window.isoplane.connection.addEventListener('message', (event) => {
      if (/** @type {CustomEvent} */ (event).detail.type === 'moderated') window.whereWhenMoved = { ...window.isoplane.position };
    }));
    assert.equal(await bob.evaluate(() => window.isoplane.walkTo(1, 9)), true);
    await row().locator('select[data-field="spawn"]').selectOption('entrance');
    await row().locator('button[data-action="move"]').click();
    const entrance = centre(10, 7);
    await until(bob, (at) => {
      const app = window.isoplane;
      return app.lastModeration?.action === 'moved' && app.position.x === at.x && app.position.y === at.y && app.path.length === 0 && app.goal === null;
    }, entrance);
    const whereWhenMoved = await bob.evaluate(() => window.whereWhenMoved);
    assert.ok(whereWhenMoved && (whereWhenMoved.x !== centre(1, 9).x || whereWhenMoved.y !== centre(1, 9).y), 'Bob was still on his way');
    assert.equal(await bob.locator('#moderation').textContent(), 'Ada moved you');
    await until(bob, () => window.isoplane.zone.id === 'lobby');
    // Ada sees him arrive there (the lobby is her zone).
    await until(ada, ([id, at]) => {
      const other = window.isoplane.others.get(id);
      return other && other.target.x === at.x && other.target.y === at.y;
    }, [bobId, entrance]);
    assert.deepEqual(await bob.evaluate(() => window.isoplane.position), entrance);
  });

  test('a locked room stops Bob at its door and the page says so', async () => {
    await ada.locator('#admin-panel button[data-tab="zones"]').click();
    await ada.locator('#admin-panel tr[data-zone="meeting"] button[data-action="lock"]').click();
    await until(ada, () => document.getElementById('admin-result').textContent === 'Locked Meeting room');
    await ada.locator('#admin-panel tr[data-zone="meeting"] [data-state="locked"]').waitFor();

    assert.equal(await bob.evaluate(() => window.isoplane.walkTo(3, 2)), true);
    await until(bob, () => window.isoplane.lastCorrection === 'zone_locked' && window.isoplane.path.length === 0, null, 30000);
    assert.equal(await bob.locator('#notice').textContent(), 'Meeting room is locked. Knock on Meeting room');
    // Nobody is inside to let him in.
    await bob.getByRole('button', { name: 'Knock on Meeting room' }).click();
    await until(bob, () => document.getElementById('notice').textContent.startsWith('Nobody is in Meeting room to answer.'));
    assert.equal(await bob.evaluate(() => window.isoplane.zone.id), 'lobby');

    // Another admin opening the panel later sees the lock, as the server recorded it.
    const zoe = await openClient(browser, server.url, 'Zoe', { admin: true });
    await zoe.locator('#admin-toggle').click();
    await zoe.locator('#admin-panel button[data-tab="zones"]').click();
    await zoe.locator('#admin-panel tr[data-zone="meeting"] [data-state="locked"]').waitFor();
    await zoe.close();

    await ada.locator('#admin-panel tr[data-zone="meeting"] button[data-action="unlock"]').click();
    await until(ada, () => document.getElementById('admin-result').textContent === 'Unlocked Meeting room');
    await ada.locator('#admin-panel button[data-tab="people"]').click();
  });

  test('a member sending an admin command by hand is refused and the attempt is audited', async () => {
    const result = await bob.evaluate((target) => new Promise((resolve) => {
      const connection = window.isoplane.connection;
      connection.addEventListener('message', (event) => {
        const message = /** @type {CustomEvent} */ (event).detail;
        if (message.type === 'admin_result' && message.id === 4242) resolve(message);
      });
      connection.socket.send(JSON.stringify({ type: 'admin', id: 4242, command: { action: 'kick', user: target, reason: 'coup' } }));
    }), adaUser);
    assert.equal(result.ok, false);
    assert.equal(result.error.code, 'forbidden');
    // Nothing happened to Ada, and Bob is still connected.
    assert.equal(await ada.evaluate(() => window.isoplane.joined), true);
    assert.equal(await bob.evaluate(() => document.getElementById('status').dataset.status), 'connected');

    // Ada's audit log shows the refused attempt, newest first, with the earlier actions.
    await ada.locator('#admin-panel button[data-tab="audit"]').click();
    const refused = ada.locator('#admin-panel table.audit tbody tr').first();
    await until(ada, () => document.querySelector('#admin-panel table.audit tbody tr')?.classList.contains('refused'));
    const cells = await refused.locator('td').allTextContents();
    assert.deepEqual(cells.slice(1), ['Bob', 'kick', 'Ada', 'coup', '', 'refused']);
    const actions = await ada.locator('#admin-panel table.audit tbody td.action').evaluateAll((cells) => cells.map((td) => td.dataset.action));
    for (const action of ['mute', 'unmute', 'notice', 'move_user', 'lock_zone', 'unlock_zone']) {
      assert.ok(actions.includes(action), `${action} in ${actions.join(', ')}`);
    }
    await ada.locator('#admin-panel button[data-tab="people"]').click();
  });

  test('promoting Bob gives him the admin panel; demoting takes it away', async () => {
    // Through the HTTP admin API, with Ada's token (the one her page joined with).
    const token = new URL(ada.url()).searchParams.get('token');
    const command = async (body) => {
      const response = await fetch(`${server.url}/v1/admin/commands`, {
        method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify(body),
      });
      assert.equal(response.status, 200, await response.clone().text());
      return response.json();
    };
    await command({ action: 'promote', user: bobUser });
    await bob.locator('#admin-toggle').waitFor({ state: 'visible' });
    assert.equal(await bob.locator('#moderation').textContent(), 'You are now an admin of this workspace.');
    await command({ action: 'demote', user: bobUser });
    await bob.locator('#admin-toggle').waitFor({ state: 'hidden' });
    assert.equal(await bob.evaluate(() => window.isoplane.admin), false);
  });

  test('kicking Bob shows him why and he stays out until he chooses to come back; Ada no longer sees him', async () => {
    // Count Bob's page's connection attempts from here on.
    await bob.evaluate(() => {
      window.sockets = 0;
      const Original = window.WebSocket;
      window.WebSocket = class extends Original {
        constructor(...args) {
          super(...args);
          window.sockets += 1;
        }
      };
    });
    await ada.locator('#admin-reason').fill('spam');
    await row().locator('button[data-action="kick"]').click();

    await bob.locator('#ended').waitFor({ state: 'visible' });
    assert.equal(await bob.locator('#ended-text').textContent(), 'Ada removed you from the world: spam');
    assert.deepEqual(await bob.evaluate(() => window.isoplane.lastModeration), { action: 'kicked', by: 'Ada', reason: 'spam' });
    await until(bob, () => document.getElementById('status').dataset.status === 'disconnected');
    // Reconnecting would start within half a second; several seconds later, still out.
    await bob.waitForTimeout(4000);
    assert.deepEqual(await bob.evaluate(() => ({
      sockets: window.sockets, socket: window.isoplane.connection.socket, status: document.getElementById('status').dataset.status,
      peers: window.isoplane.media.peers.size, others: window.isoplane.others.size,
    })), { sockets: 0, socket: null, status: 'disconnected', peers: 0, others: 0 });
    await screenshot(bob, 'moderated');

    await until(ada, (id) => !window.isoplane.others.has(id) && !window.isoplane.media.peers.has(id)
      && !document.querySelector(`video[data-avatar="${id}"]`), bobId);
    await row().waitFor({ state: 'detached' });
    await ada.locator(`#admin-panel li[data-user="${adaUser}"]`).waitFor();
    assert.equal(await ada.locator('#admin-result').textContent(), 'Removed Bob from the world');

    // A kick is not a ban: Bob may come back when he chooses to.
    await bob.locator('#rejoin').click();
    await until(bob, () => window.isoplane.joined && document.getElementById('status').dataset.status === 'connected');
    assert.equal(await bob.locator('#ended').isVisible(), false);
    await row().waitFor();
    await ada.context().close();
    await bob.context().close();
  });
});

test('on the SFU, a muted member stops sending that kind until unmuted', async () => {
  // The lobby goes to the SFU above one person.
  const own = await startIsoplane({ ISOPLANE_SIGNALING_OPEN_SFU_THRESHOLD: '1' });
  try {
    const admin = await openClient(browser, own.url, 'Ada', { admin: true });
    const member = await openClient(browser, own.url, 'Bob');
    const { self: memberId, user: memberUser } = await member.evaluate(() => ({ self: window.isoplane.self, user: window.isoplane.user }));
    for (const page of [admin, member]) await until(page, () => window.isoplane.media.sfu?.state === 'connected', null, 20000);
    const frames = () => admin.evaluate((id) => window.isoplane.media.sfu.receivedVideo(id).then((v) => v.framesDecoded), memberId);
    /** Waits until the video from Bob goes on (or stops) arriving over a 700 ms window. */
    const untilVideo = async (moving) => {
      const deadline = Date.now() + 20000;
      while (Date.now() < deadline) {
        const first = await frames();
        await admin.waitForTimeout(700);
        const second = await frames();
        if (first > 0 && (moving ? second > first : second === first)) return;
      }
      throw new Error(`Bob's video never ${moving ? 'flowed' : 'stopped'}`);
    };
    const videoSenders = () => member.evaluate(() => window.isoplane.media.sfu.pc.getTransceivers()
      .filter((t) => t.direction === 'sendonly' && t.receiver.track.kind === 'video').map((t) => Boolean(t.sender.track)));
    await untilVideo(true);
    assert.deepEqual(await videoSenders(), [true]);

    await admin.locator('#admin-toggle').click();
    const person = admin.locator(`#admin-panel li[data-user="${memberUser}"]`);
    await person.locator('button[data-action="mute-video"]').click();
    await until(member, () => document.getElementById('mute-video').textContent === 'Cam muted by an admin');
    await until(member, () => window.isoplane.media.sfu.pc.getTransceivers()
      .some((t) => t.direction === 'sendonly' && t.receiver.track.kind === 'video' && !t.sender.track));
    assert.deepEqual(await videoSenders(), [false], 'the camera is not sent');
    await untilVideo(false);

    await person.locator('button[data-action="unmute"]').click();
    await until(member, () => document.getElementById('mute-video').textContent === 'Cam');
    assert.deepEqual(await videoSenders(), [true]);
    await untilVideo(true);
    await admin.context().close();
    await member.context().close();
  } finally {
    own.stop();
  }
});
