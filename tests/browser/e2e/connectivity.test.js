// The connection test in headless Chromium against a real Isoplane, its relay and its
// SFU: every transport answers on a clear network; with UDP to the relay, then all UDP,
// dropped by this network namespace's firewall, the test says so and what it means.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { test } from 'node:test';
import { openClient, screenshot, until, useIsoplane } from './harness.js';

const live = useIsoplane();

/** What the page's connection test found, once it has finished: results and advice. */
function finished(page) {
  return until(page, () => {
    const test = window.isoplane.connectionTest;
    if (test.running || !test.results) return null;
    const seen = (/** @type {any[]} */ list) => list.map((r) => [r.transport, r.ok]);
    return { relays: seen(test.results.relays), sfu: test.results.sfu && seen(test.results.sfu), advice: document.querySelector('.connection-advice')?.textContent };
  }, null, 30000);
}

test('the connection test finds the relay and the SFU over UDP and TCP, and says what blocked UDP means', async () => {
  const ada = await openClient(live.browser, live.server.url, 'Ada');
  const servers = await until(ada, () => window.isoplane.media.plan?.ice_servers?.length && window.isoplane.media.plan.ice_servers);
  const udp = servers.flatMap((s) => s.urls).find((u) => u.startsWith('turn:') && u.endsWith('transport=udp'));
  assert.ok(udp, `a UDP relay is offered: ${JSON.stringify(servers)}`);
  const port = udp.match(/:(\d+)\?/)[1];

  // The button opens the panel and runs the test.
  await ada.click('#connection-toggle');
  const clear = await finished(ada);
  assert.deepEqual(clear.relays, [['udp', true], ['tcp', true]]);
  assert.deepEqual(clear.sfu, [['udp', true], ['tcp', true]]);
  assert.match(clear.advice, /Calls work on this network/);
  assert.match(clear.advice, /Crowded rooms work/);

  // UDP to the relay dropped: the relay answers over TCP only, the SFU still over both.
  const relayUdp = ['INPUT', '-p', 'udp', '--dport', port, '-j', 'DROP'];
  execFileSync('iptables', ['-A', ...relayUdp]);
  try {
    await ada.click('#connection-panel .bar button');
    const blocked = await finished(ada);
    assert.deepEqual(blocked.relays, [['udp', false], ['tcp', true]]);
    assert.deepEqual(blocked.sfu, [['udp', true], ['tcp', true]]);
    assert.match(blocked.advice, /blocks UDP to the relay: calls go through it over TCP/);
    await screenshot(ada, 'connection-test-udp-blocked');
  } finally {
    execFileSync('iptables', ['-D', ...relayUdp]);
  }

  // Every UDP datagram dropped: the SFU too answers over TCP only.
  const allUdp = ['INPUT', '-p', 'udp', '-j', 'DROP'];
  execFileSync('iptables', ['-A', ...allUdp]);
  try {
    await ada.click('#connection-panel .bar button');
    const noUdp = await finished(ada);
    assert.deepEqual(noUdp.relays, [['udp', false], ['tcp', true]]);
    assert.deepEqual(noUdp.sfu, [['udp', false], ['tcp', true]]);
    assert.match(noUdp.advice, /UDP to the media server is blocked/);
  } finally {
    execFileSync('iptables', ['-D', ...allUdp]);
  }
  await ada.context().close();
});
