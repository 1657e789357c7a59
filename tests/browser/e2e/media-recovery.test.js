// Media comes back after a media server fails, in headless Chromium against a real
// Isoplane, with the firewall of this network namespace standing in for the failure:
// - a link relayed through TURN loses its path (everything sent to the TURN port is
//   dropped), ICE notices, the initiating side restarts ICE while the path stays lost,
//   and once TURN answers again media flows on a new ICE session of the same connection;
// - the SFU stops answering (its HTTP port refuses): signaling moves the crowded zone to
//   peer to peer and media flows there; once it answers again, the zone and its media go
//   back to the SFU.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { after, before, test } from 'node:test';
import { launchBrowser, openAdaAndBob, startIsoplane, until } from './harness.js';

/** @type {import('playwright-core').Browser} */
let browser;

before(async () => {
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
});

/** The ICE username fragment of the page's connection to `peer`: a new one per ICE session. */
const ufrag = (page, peer) =>
  page.evaluate((id) => window.isoplane.media.peers.get(id)?.pc.localDescription?.sdp.match(/a=ice-ufrag:(\S+)/)?.[1], peer);

/** Waits until the page decodes more than `frames` video frames from `peer`, over a relay. */
const relayedFrames = (page, peer, frames) =>
  until(page, async ([id, least]) => {
    const stats = (await window.isoplane.media.stats())[id];
    return stats && stats.relayed && stats.framesDecoded > least ? stats : false;
  }, [peer, frames], 30000);

test('a relayed link that loses its TURN path restarts ICE and media flows again once TURN answers', async () => {
  const turnPort = 20000 + Math.floor(Math.random() * 20000);
  const own = await startIsoplane({ ISOPLANE_TURN_LISTEN_UDP: `127.0.0.1:${turnPort}`, ISOPLANE_TURN_LISTEN_TCP: 'off' });
  const rule = ['INPUT', '-p', 'udp', '--dport', String(turnPort), '-j', 'DROP'];
  let blocked = false;
  try {
    const { ada, bob, adaId, bobId } = await openAdaAndBob(browser, own.url);
    // A P2P pair in the lobby; Ada's side says direct ICE failed: the link is relayed.
    await until(ada, (id) => window.isoplane.media.plan?.peers.some((p) => p.avatar === id), bobId);
    await ada.evaluate(() => window.isoplane.connection.send({ type: 'media_report', ice: 'failed' }));
    const pages = /** @type {const} */ ([[ada, bobId], [bob, adaId]]);
    for (const [page, peer] of pages) {
      await until(page, (id) => window.isoplane.media.plan?.peers.some((p) => p.avatar === id && p.relay), peer);
      await relayedFrames(page, peer, 10);
    }
    const initiatorIsAda = await ada.evaluate((id) => window.isoplane.media.peers.get(id).link.initiator, bobId);
    const [initiator, other] = initiatorIsAda ? [ada, bobId] : [bob, adaId];
    const before = await ufrag(initiator, other);
    // The same connection must come back, not one the plan rebuilt.
    for (const [page, peer] of pages) await page.evaluate((id) => { window.recoveredPc = window.isoplane.media.peers.get(id).pc; }, peer);

    // TURN is unreachable: both sides lose the path, and the initiator starts ICE over
    // (and again, as long as the path stays lost).
    execFileSync('iptables', ['-A', ...rule]);
    blocked = true;
    for (const [page, peer] of pages) {
      await until(page, (id) => ['disconnected', 'failed'].includes(window.isoplane.media.peers.get(id)?.pc.iceConnectionState), peer, 30000);
    }
    await until(initiator, (id) => window.isoplane.media.peers.get(id)?.totalRestarts >= 1, other, 30000);
    execFileSync('iptables', ['-D', ...rule]);
    blocked = false;

    // TURN answers again: video is decoded again on both sides, relayed, on a new ICE
    // session of the same connection.
    for (const [page, peer] of pages) {
      const frozen = await page.evaluate(async (id) => (await window.isoplane.media.stats())[id]?.framesDecoded ?? 0, peer);
      await relayedFrames(page, peer, frozen + 10);
      await until(page, (id) => ['connected', 'completed'].includes(window.isoplane.media.peers.get(id)?.pc.iceConnectionState), peer);
      assert.ok(await page.evaluate((id) => window.isoplane.media.peers.get(id).pc === window.recoveredPc, peer), 'the same connection');
    }
    const after = await ufrag(initiator, other);
    assert.ok(before && after && after !== before, `a new ICE session (${before} → ${after})`);
    await ada.context().close();
    await bob.context().close();
  } finally {
    if (blocked) execFileSync('iptables', ['-D', ...rule]);
    own.stop();
  }
});

test('when the SFU stops answering, a crowded zone goes peer to peer, and back to the SFU once it answers', async () => {
  // The lobby goes to the SFU above one person.
  const own = await startIsoplane({ ISOPLANE_SIGNALING_OPEN_SFU_THRESHOLD: '1' });
  const sfuPort = new URL(own.sfu).port;
  // Signaling's health probe and the pages' SFU WebSockets both use this port.
  const rule = ['INPUT', '-p', 'tcp', '--dport', sfuPort, '-j', 'REJECT', '--reject-with', 'tcp-reset'];
  let blocked = false;
  try {
    const { ada, bob, adaId, bobId } = await openAdaAndBob(browser, own.url);
    const pages = /** @type {const} */ ([[ada, bobId], [bob, adaId]]);
    /** Frames decoded from `peer` on the SFU session (`sfu`) or a peer connection. */
    const frames = (page, peer, sfu, least) =>
      until(page, async ([id, onSfu, more]) => {
        const media = window.isoplane.media;
        if (onSfu ? !(media.plan?.topology === 'sfu' && media.sfu?.state === 'connected') : !media.peers.has(id)) return false;
        const stats = (await media.stats())[id];
        return stats && stats.framesDecoded > more ? stats : false;
      }, [peer, sfu, least], 30000);
    for (const [page, peer] of pages) await frames(page, peer, true, 10);

    execFileSync('iptables', ['-A', ...rule]);
    blocked = true;
    for (const [page, peer] of pages) {
      await until(page, (id) => {
        const media = window.isoplane.media;
        return ['p2p', 'turn'].includes(media.plan?.topology) && media.plan.peers.some((p) => p.avatar === id) && media.sfu === null;
      }, peer, 15000);
      await frames(page, peer, false, 10);
    }

    execFileSync('iptables', ['-D', ...rule]);
    blocked = false;
    for (const [page, peer] of pages) {
      await frames(page, peer, true, 10);
      assert.equal(await page.evaluate(() => window.isoplane.media.peers.size), 0, 'no peer connection left');
    }
    await ada.context().close();
    await bob.context().close();
  } finally {
    if (blocked) execFileSync('iptables', ['-D', ...rule]);
    own.stop();
  }
});
