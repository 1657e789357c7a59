// The SFU with Chromium on bad networks: loss and delay on a subscriber's path, a
// subscriber's downlink capped and then freed, a publisher behind loss. The network is
// this test's own namespace's loopback. Loss is dropped by the kernel (iptables'
// `statistic` match on one page's UDP port) and the cap is a kernel HTB class for the
// packets to that port. This machine's kernel has no netem, so the delay comes from
// Chromium's own network emulation (libwebrtc's degraded call, a field trial) in the
// subscriber's browser: 50 ms each way on its RTP and RTCP.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { afterEach, test } from 'node:test';
import { launchBrowser, openClient, sfuMetric, until, useIsoplane } from './harness.js';

// The lobby (an open zone) goes to the SFU above one person.
const live = useIsoplane({ ISOPLANE_SIGNALING_OPEN_SFU_THRESHOLD: '1' });

/** The local UDP port of the page's connection to the SFU (the nominated candidate pair). */
const sfuPort = (page) =>
  until(page, async () => {
    const report = await window.isoplane.media.sfu.pc.getStats();
    let port = 0;
    report.forEach((s) => {
      if (s.type === 'candidate-pair' && s.state === 'succeeded' && s.nominated) {
        const local = report.get(s.localCandidateId);
        if (local?.protocol === 'udp') port = local.port;
      }
    });
    return port;
  }, null, 20000);

const run = (command, ...args) => execFileSync(command, args, { stdio: ['ignore', 'ignore', 'inherit'] });

/** Rules and qdiscs this test added, undone after each test. */
let undo = [];

afterEach(() => {
  for (const step of undo.reverse()) step();
  undo = [];
});

/**
 * Drops a share of the UDP packets to (`to`) or from (`from`) a port, at random.
 * @param {{to?: number, from?: number}} port @param {number} probability
 */
function dropAtRandom({ to, from }, probability) {
  const rule = ['INPUT', '-p', 'udp', to ? '--dport' : '--sport', String(to ?? from), '-m', 'statistic', '--mode', 'random', '--probability', String(probability), '-j', 'DROP'];
  run('iptables', '-A', ...rule);
  undo.push(() => run('iptables', '-D', ...rule));
}

/** Caps the packets to UDP `port` at `rate` (a tc rate, '300kbit'); everything else goes as it is. */
function capTo(port, rate) {
  run('tc', 'qdisc', 'add', 'dev', 'lo', 'root', 'handle', '1:', 'htb', 'default', '10');
  undo.push(() => run('tc', 'qdisc', 'del', 'dev', 'lo', 'root'));
  run('tc', 'class', 'add', 'dev', 'lo', 'parent', '1:', 'classid', '1:10', 'htb', 'rate', '20gbit');
  run('tc', 'class', 'add', 'dev', 'lo', 'parent', '1:', 'classid', '1:20', 'htb', 'rate', rate, 'ceil', rate);
  // A short queue, as a home router's: about a second at 300 kbit/s.
  run('tc', 'qdisc', 'add', 'dev', 'lo', 'parent', '1:20', 'handle', '20:', 'pfifo', 'limit', '30');
  run('tc', 'filter', 'add', 'dev', 'lo', 'parent', '1:', 'protocol', 'ip', 'prio', '1', 'u32',
    'match', 'ip', 'protocol', '17', '0xff', 'match', 'ip', 'dport', String(port), '0xffff', 'flowid', '1:20');
}

/** Lifts the cap `capTo` set. */
const lift = () => run('tc', 'class', 'change', 'dev', 'lo', 'parent', '1:', 'classid', '1:20', 'htb', 'rate', '20gbit');

/** What the page receives of `avatar`'s video through the SFU, from its stats. */
const inbound = (page, avatar) =>
  page.evaluate(async (from) => {
    const sfu = window.isoplane.media.sfu;
    const report = await sfu.pc.getStats();
    let found = null;
    report.forEach((s) => {
      if (s.type === 'inbound-rtp' && s.kind === 'video' && sfu.tracks.get(s.mid)?.avatar === from) {
        found = {
          width: s.frameWidth ?? 0,
          framesDecoded: s.framesDecoded ?? 0,
          nackCount: s.nackCount ?? 0,
          retransmitted: s.retransmittedPacketsReceived ?? 0,
          packetsLost: s.packetsLost ?? 0,
          freezes: s.freezeCount ?? 0,
          freezeSeconds: s.totalFreezesDuration ?? 0,
        };
      }
    });
    return found;
  }, avatar);

/** What the page sends of its camera to the SFU. */
const outbound = (page) =>
  page.evaluate(async () => {
    const report = await window.isoplane.media.sfu.pc.getStats();
    // Frames: of each simulcast layer (they encode the same frames).
    const totals = { nackCount: 0, retransmitted: 0, packetsSent: 0, framesEncoded: 0 };
    report.forEach((s) => {
      if (s.type === 'outbound-rtp' && s.kind === 'video') {
        totals.nackCount += s.nackCount ?? 0;
        totals.retransmitted += s.retransmittedPacketsSent ?? 0;
        totals.packetsSent += s.packetsSent ?? 0;
        totals.framesEncoded = Math.max(totals.framesEncoded, s.framesEncoded ?? 0);
      }
    });
    return totals;
  });

/** Waits until `check` holds for the video `page` receives from `avatar`; how long it took. */
async function untilInbound(page, avatar, check, timeout) {
  const start = Date.now();
  let last;
  while (Date.now() - start < timeout) {
    last = await inbound(page, avatar);
    if (last && check(last)) return { ...last, ms: Date.now() - start };
    await page.waitForTimeout(200);
  }
  throw new Error(`timed out after ${timeout} ms waiting for the video from ${avatar} (last: ${JSON.stringify(last)})`);
}

/**
 * Ada publishes, Bob (in `bobsBrowser`) receives her full-size video through the SFU;
 * then `check` runs, and both leave whatever happened.
 * @param {(people: {ada: import('playwright-core').Page, bob: import('playwright-core').Page, adaId: number}) => Promise<void>} check
 */
async function adaToBob(check, bobsBrowser = live.browser) {
  const ada = await openClient(live.browser, live.server.url, 'Ada');
  const bob = await openClient(bobsBrowser, live.server.url, 'Bob');
  try {
    const adaId = await ada.evaluate(() => window.isoplane.self);
    await until(bob, () => window.isoplane.media.sfu?.state === 'connected', null, 20000);
    await untilInbound(bob, adaId, (v) => v.width === 640 && v.framesDecoded > 30, 30000);
    await check({ ada, bob, adaId });
  } finally {
    await ada.context().close();
    await bob.context().close();
  }
}

/** The change of every number in `after` since `before`. */
const since = (before, after) => Object.fromEntries(Object.entries(after).map(([key, value]) => [key, value - (before[key] ?? 0)]));

/** How long the measuring windows last. */
const WINDOW_MS = 20_000;

test('5% loss and 100 ms RTT on the subscriber\'s path: NACK and retransmissions keep the video decoding', async () => {
  const delayed = await launchBrowser([
    '--force-fieldtrials=WebRTC-FakeNetworkSendConfig/queue_delay_ms:50/WebRTC-FakeNetworkReceiveConfig/queue_delay_ms:50/',
  ]);
  try {
    await adaToBob(async ({ ada, bob, adaId }) => {
      dropAtRandom({ to: await sfuPort(bob) }, 0.05);
      const nacksBefore = await sfuMetric(live.server, 'sfu_nacks_received_total');
      await bob.waitForTimeout(3000);
      const [before, sentBefore] = [await inbound(bob, adaId), await outbound(ada)];
      await bob.waitForTimeout(WINDOW_MS);
      const during = since(before, await inbound(bob, adaId));
      const encoded = since(sentBefore, await outbound(ada)).framesEncoded;
      const nacksAtSfu = (await sfuMetric(live.server, 'sfu_nacks_received_total')) - nacksBefore;
      console.log(`5% loss, 100 ms RTT, ${WINDOW_MS / 1000} s: ${JSON.stringify(during)} of ${encoded} frames encoded, NACKs at the SFU ${nacksAtSfu}`);
      assert.ok(during.packetsLost > 0, 'packets were lost on the way');
      assert.ok(during.nackCount > 0 && nacksAtSfu > 0, 'the subscriber asked for what it lost, and the SFU heard');
      assert.ok(during.retransmitted > 0, 'the SFU resent what was asked for');
      // At least nine frames in ten of those encoded decoded, frozen for at most a tenth
      // of the window.
      assert.ok(during.framesDecoded >= encoded * 0.9, `frames decoded: ${during.framesDecoded} of ${encoded}`);
      assert.ok(during.freezeSeconds <= WINDOW_MS / 1000 / 10, `frozen for ${during.freezeSeconds} s`);
    }, delayed);
  } finally {
    await delayed.close();
  }
});

test('a subscriber\'s downlink capped at 300 kbit/s moves to the low layer within seconds, and back up when freed', async () => {
  await adaToBob(async ({ bob, adaId }) => {
    capTo(await sfuPort(bob), '300kbit');
    const low = await untilInbound(bob, adaId, (v) => v.width === 320, 30000);
    const decoding = await untilInbound(bob, adaId, (v) => v.width === 320 && v.framesDecoded > low.framesDecoded + 30, 15000);
    console.log(`capped at 300 kbit/s: the low layer after ${low.ms} ms, decoding (${decoding.framesDecoded - low.framesDecoded} frames in ${decoding.ms} ms)`);
    lift();
    const high = await untilInbound(bob, adaId, (v) => v.width === 640, 60000);
    await untilInbound(bob, adaId, (v) => v.width === 640 && v.framesDecoded > high.framesDecoded + 30, 15000);
    console.log(`cap lifted: full size again after ${high.ms} ms`);
  });
});

test('a publisher behind 10% loss still reaches its subscriber', async () => {
  await adaToBob(async ({ ada, bob, adaId }) => {
    dropAtRandom({ from: await sfuPort(ada) }, 0.1);
    await bob.waitForTimeout(3000);
    const [inBefore, outBefore] = [await inbound(bob, adaId), await outbound(ada)];
    await bob.waitForTimeout(WINDOW_MS);
    const inAfter = await inbound(bob, adaId);
    const received = since(inBefore, inAfter);
    const sent = since(outBefore, await outbound(ada));
    console.log(`publisher behind 10% loss, ${WINDOW_MS / 1000} s: sent ${JSON.stringify(sent)}, received ${JSON.stringify(received)} (width ${inBefore.width} → ${inAfter.width})`);
    assert.ok(sent.nackCount > 0 && sent.retransmitted > 0, 'the SFU asked the publisher for what it lost, and got it');
    assert.ok(received.framesDecoded >= sent.framesEncoded * 0.85, `frames decoded: ${received.framesDecoded} of ${sent.framesEncoded}`);
    assert.ok(received.freezeSeconds <= WINDOW_MS / 1000 / 10, `frozen for ${received.freezeSeconds} s`);
  });
});
