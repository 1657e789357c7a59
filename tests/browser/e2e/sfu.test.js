// The browser client on the SFU, in headless Chromium: a zone above its threshold goes
// to the SFU, each page publishes its fake camera and microphone there, and each page
// decodes the other's video and audio, received from the SFU (no peer connection).

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { test } from 'node:test';
import { openAdaAndBob, openClient, screenshot, sfuMetric, startIsoplane, until, useIsoplane } from './harness.js';

// The lobby (an open zone) goes to the SFU above one person.
const live = useIsoplane({ ISOPLANE_SIGNALING_OPEN_SFU_THRESHOLD: '1' });

test('two people in a zone on the SFU see and hear each other through it', async () => {
  assert.ok(live.server.sfu, 'the all-in-one binary runs an SFU');
  const { ada, bob, adaId, bobId } = await openAdaAndBob(live.browser, live.server.url);

  for (const page of [ada, bob]) {
    await until(page, () => window.isoplane.media.plan?.topology === 'sfu' && window.isoplane.media.sfu?.state === 'connected', null, 20000);
  }
  // Decoded frames and audio samples from the other person, counted by Chromium.
  const receives = (page, from) =>
    until(page, async (avatar) => {
      const stats = (await window.isoplane.media.stats())[avatar];
      return stats && stats.framesDecoded > 30 && stats.audioSamples > 48000 ? stats : null;
    }, from, 30000);
  const adaGets = await receives(ada, bobId);
  const bobGets = await receives(bob, adaId);
  assert.ok(adaGets.framesDecoded > 30 && bobGets.framesDecoded > 30);

  // Through the SFU: no peer-to-peer connection exists, and the SFU forwarded media.
  for (const page of [ada, bob]) {
    assert.equal(await page.evaluate(() => window.isoplane.media.peers.size), 0, 'no mesh connection');
  }
  assert.equal(await sfuMetric(live.server, 'sfu_participants'), 2);
  assert.ok((await sfuMetric(live.server, 'sfu_forwarded_packets_total')) > 100, 'the SFU forwarded the media');

  // The video element shows the other person's tile.
  const tile = await ada.evaluate((avatar) => {
    const video = /** @type {HTMLVideoElement | null} */ (document.querySelector(`video[data-avatar="${avatar}"]`));
    return video && { width: video.videoWidth, height: video.videoHeight };
  }, bobId);
  assert.ok(tile && tile.width > 0 && tile.height > 0, `Bob's video plays at Ada's: ${JSON.stringify(tile)}`);
  await screenshot(ada, 'sfu-ada');

  // A message on Ada's data channel reaches Bob, tagged with her avatar.
  await until(ada, () => window.isoplane.media.sfu.channel.readyState === 'open');
  await ada.evaluate(() => window.isoplane.media.sfu.broadcast('hello from Ada'));
  const message = await until(bob, () => window.isoplane.media.sfu.messages.at(-1));
  assert.deepEqual(message, { from: adaId, data: 'hello from Ada' });

  // Bob leaves: his tile goes from Ada's page and the SFU lets him go.
  await bob.context().close();
  await until(ada, (avatar) => !document.querySelector(`video[data-avatar="${avatar}"]`), bobId, 20000);
  await ada.context().close();
});

/** The video `page` receives from `avatar` through the SFU: size and frames decoded. */
const video = (page, avatar) => page.evaluate((from) => window.isoplane.media.sfu.receivedVideo(from), avatar);

/** Waits until the video from `avatar` satisfies `check`. */
async function untilVideo(page, avatar, check, timeout = 30000) {
  const deadline = Date.now() + timeout;
  let last;
  while (Date.now() < deadline) {
    last = await video(page, avatar);
    if (check(last)) return last;
    await page.waitForTimeout(100);
  }
  throw new Error(`timed out waiting for the video from ${avatar} (last: ${JSON.stringify(last)})`);
}

test('a subscriber that asks for low quality gets the low simulcast layer, and can stop receiving', async () => {
  const ada = await openClient(live.browser, live.server.url, 'Ada');
  const bob = await openClient(live.browser, live.server.url, 'Bob');
  const adaId = await ada.evaluate(() => window.isoplane.self);
  await until(bob, () => window.isoplane.media.sfu?.state === 'connected', null, 20000);
  // Full size first: the camera is 640x360, its low layer half that.
  await untilVideo(bob, adaId, (v) => v.width === 640);
  await bob.evaluate((avatar) => window.isoplane.media.sfu.send({ type: 'subscribe', avatars: [{ avatar, audio: true, video: 'low' }] }), adaId);
  const low = await untilVideo(bob, adaId, (v) => v.width === 320);
  assert.equal(low.height, 180);
  // Frames go on decoding at the low layer.
  await untilVideo(bob, adaId, (v) => v.framesDecoded > low.framesDecoded + 20 && v.width === 320);

  // Video off: no more frames arrive from Ada (audio still does).
  await bob.evaluate((avatar) => window.isoplane.media.sfu.send({ type: 'subscribe', avatars: [{ avatar, audio: true, video: 'off' }] }), adaId);
  await bob.waitForTimeout(1000);
  const stopped = await video(bob, adaId);
  await bob.waitForTimeout(1500);
  const later = await video(bob, adaId);
  assert.ok(later.framesDecoded - stopped.framesDecoded <= 1, `no video after turning it off (${stopped.framesDecoded} → ${later.framesDecoded})`);
  await ada.context().close();
  await bob.context().close();
});

test('a camera sent as VP9 with spatial layers: a subscriber asking low gets a lower layer, then full size again', async () => {
  const ada = await openClient(live.browser, live.server.url, 'Ada', { query: 'camera=vp9' });
  const bob = await openClient(live.browser, live.server.url, 'Bob');
  const adaId = await ada.evaluate(() => window.isoplane.self);
  await until(bob, () => window.isoplane.media.sfu?.state === 'connected', null, 20000);
  // Ada's camera goes out as one VP9 stream with spatial layers (three asked for; the
  // encoder starts with fewer, and smaller, while the bandwidth estimate is low: it is
  // given the time to reach full size).
  const sent = await until(ada, async () => {
    const report = await window.isoplane.media.sfu.pc.getStats();
    let found = null;
    report.forEach((s) => {
      if (s.type === 'outbound-rtp' && s.kind === 'video' && s.framesEncoded > 0) {
        found = { codec: report.get(s.codecId)?.mimeType, mode: s.scalabilityMode, rid: s.rid ?? null, width: s.frameWidth };
      }
    });
    return found?.width === 640 ? found : null;
  }, null, 20000);
  assert.equal(sent.codec, 'video/VP9');
  assert.match(sent.mode, /^L[23]T3_KEY$/);
  assert.deepEqual([sent.rid, sent.width], [null, 640]);
  // Bob gets every layer: the full 640x360.
  const full = await untilVideo(bob, adaId, (v) => v.width === 640 && v.framesDecoded > 10);
  assert.equal(full.height, 360);
  const codec = await bob.evaluate(async () => {
    const report = await window.isoplane.media.sfu.pc.getStats();
    let mime = null;
    report.forEach((s) => {
      if (s.type === 'inbound-rtp' && s.kind === 'video') mime = report.get(s.codecId)?.mimeType ?? mime;
    });
    return mime;
  });
  assert.equal(codec, 'video/VP9');

  // Low: the lowest spatial layer alone (a quarter of the width with three layers, half
  // with two), and it goes on decoding.
  await bob.evaluate((avatar) => window.isoplane.media.sfu.send({ type: 'subscribe', avatars: [{ avatar, audio: true, video: 'low' }] }), adaId);
  const low = await untilVideo(bob, adaId, (v) => v.width > 0 && v.width < 640);
  assert.ok([160, 320].includes(low.width) && low.height * 16 === low.width * 9, `the low layer: ${JSON.stringify(low)}`);
  await untilVideo(bob, adaId, (v) => v.framesDecoded > low.framesDecoded + 20 && v.width === low.width);
  // High again: back to full size at the next keyframe.
  await bob.evaluate((avatar) => window.isoplane.media.sfu.send({ type: 'subscribe', avatars: [{ avatar, audio: true, video: 'high' }] }), adaId);
  const again = await untilVideo(bob, adaId, (v) => v.width === 640);
  await untilVideo(bob, adaId, (v) => v.framesDecoded > again.framesDecoded + 20 && v.width === 640);
  await ada.context().close();
  await bob.context().close();
});

test('low bandwidth on the SFU: the page stops sending its camera and asks for audio only, and a newcomer is heard, not seen', async () => {
  const { ada, bob, adaId, bobId } = await openAdaAndBob(live.browser, live.server.url);
  for (const page of [ada, bob]) await until(page, () => window.isoplane.media.sfu?.state === 'connected', null, 20000);
  await untilVideo(bob, adaId, (v) => v.framesDecoded > 10);
  await untilVideo(ada, bobId, (v) => v.framesDecoded > 10);

  await bob.click('#low-bandwidth');
  // Frames already under way are decoded still; then none come, either way.
  await bob.waitForTimeout(1500);
  const framesOf = async () => [(await video(bob, adaId)).framesDecoded, (await video(ada, bobId)).framesDecoded];
  const [bobGot, adaGot] = await framesOf();
  await bob.waitForTimeout(2000);
  const [bobLater, adaLater] = await framesOf();
  assert.ok(bobLater - bobGot <= 1, `Bob receives no video (${bobGot} → ${bobLater})`);
  assert.ok(adaLater - adaGot <= 1, `Bob sends no video (Ada decodes ${adaGot} → ${adaLater})`);
  const audioFrom = (page, avatar) => page.evaluate(async (a) => (await window.isoplane.media.stats())[a]?.audioSamples ?? 0, avatar);
  const heard = await audioFrom(bob, adaId);
  await until(bob, ([a, was]) => window.isoplane.media.stats().then((s) => (s[a]?.audioSamples ?? 0) > was + 24000), [adaId, heard]);

  // Someone new arrives: Bob hears them, sees nothing.
  const cy = await openClient(live.browser, live.server.url, 'Cy');
  const cyId = await cy.evaluate(() => window.isoplane.self);
  await until(bob, (a) => window.isoplane.media.stats().then((s) => (s[a]?.audioSamples ?? 0) > 24000), cyId, 30000);
  assert.equal((await video(bob, cyId)).framesDecoded, 0, 'no video from the newcomer');

  // Video again: both ways.
  await bob.click('#low-bandwidth');
  await untilVideo(bob, adaId, (v) => v.framesDecoded > bobLater + 10);
  await untilVideo(ada, bobId, (v) => v.framesDecoded > adaLater + 10);
  for (const page of [ada, bob, cy]) await page.context().close();
});

test('a zone that fills up moves from peer-to-peer to the SFU without anyone doing anything', async () => {
  const own = await startIsoplane({ ISOPLANE_SIGNALING_OPEN_SFU_THRESHOLD: '2' });
  try {
    const ada = await openClient(live.browser, own.url, 'Ada');
    const bob = await openClient(live.browser, own.url, 'Bob');
    const bobId = await bob.evaluate(() => window.isoplane.self);
    // Two people: peer to peer, and Ada decodes Bob's video over that connection.
    await until(ada, (avatar) => window.isoplane.media.plan?.topology === 'p2p' && window.isoplane.media.peers.has(avatar), bobId);
    await until(ada, async (avatar) => ((await window.isoplane.media.stats())[avatar]?.framesDecoded ?? 0) > 10, bobId, 30000);

    // A third person arrives: the zone goes to the SFU, the peer connection closes, and
    // Bob's video now reaches Ada through the SFU.
    const cy = await openClient(live.browser, own.url, 'Cy');
    await until(ada, () => window.isoplane.media.plan?.topology === 'sfu' && window.isoplane.media.peers.size === 0, null, 20000);
    await untilVideo(ada, bobId, (v) => v.framesDecoded > 10);
    for (const page of [ada, bob, cy]) await page.context().close();
  } finally {
    own.stop();
  }
});

/** The transport protocol of the SFU session's selected candidate pair, once selected. */
const sfuTransport = (page) =>
  until(page, async () => {
    const report = await window.isoplane.media.sfu.pc.getStats();
    let protocol = '';
    report.forEach((s) => {
      if (s.type === 'candidate-pair' && s.state === 'succeeded' && s.nominated) protocol = report.get(s.localCandidateId)?.protocol;
    });
    return protocol;
  }, null, 20000);

test('where UDP is blocked, the SFU session runs over ICE-TCP', async () => {
  // This test's own SFU, on UDP ports (one per worker) the firewall of this network
  // namespace drops.
  const udpPort = 20000 + Math.floor(Math.random() * 20000);
  const workers = 2;
  const rule = ['INPUT', '-p', 'udp', '--dport', `${udpPort}:${udpPort + workers - 1}`, '-j', 'DROP'];
  execFileSync('iptables', ['-A', ...rule]);
  const own = await startIsoplane({
    ISOPLANE_SIGNALING_OPEN_SFU_THRESHOLD: '1',
    ISOPLANE_SFU_LISTEN_UDP: `127.0.0.1:${udpPort}`,
    ISOPLANE_SFU_WORKERS: String(workers),
  });
  try {
    const ada = await openClient(live.browser, own.url, 'Ada');
    const bob = await openClient(live.browser, own.url, 'Bob');
    const bobId = await bob.evaluate(() => window.isoplane.self);
    await until(ada, () => window.isoplane.media.sfu?.state === 'connected', null, 30000);
    assert.equal(await sfuTransport(ada), 'tcp');
    await until(ada, async (avatar) => {
      const stats = (await window.isoplane.media.stats())[avatar];
      return stats && stats.framesDecoded > 10 && stats.audioSamples > 48000;
    }, bobId, 30000);
    await ada.context().close();
    await bob.context().close();
  } finally {
    own.stop();
    execFileSync('iptables', ['-D', ...rule]);
  }
});
