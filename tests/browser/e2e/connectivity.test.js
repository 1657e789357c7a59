// The connection test in headless Chromium against a real Isoplane and its relay: both
// of the relay's transports answer on a clear network; with UDP to the relay dropped by
// this network namespace's firewall, the test says so and that calls go over TCP.

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
    return { results: test.results.map((r) => [r.transport, r.ok]), advice: document.querySelector('.connection-advice')?.textContent };
  }, null, 30000);
}

test('the connection test finds the relay over UDP and TCP, and says what a blocked UDP means', async () => {
  const ada = await openClient(live.browser, live.server.url, 'Ada');
  const servers = await until(ada, () => window.isoplane.media.plan?.ice_servers?.length && window.isoplane.media.plan.ice_servers);
  const udp = servers.flatMap((s) => s.urls).find((u) => u.startsWith('turn:') && u.endsWith('transport=udp'));
  assert.ok(udp, `a UDP relay is offered: ${JSON.stringify(servers)}`);
  const port = udp.match(/:(\d+)\?/)[1];

  // The button opens the panel and runs the test.
  await ada.click('#connection-toggle');
  const clear = await finished(ada);
  assert.deepEqual(clear.results, [['udp', true], ['tcp', true]]);
  assert.match(clear.advice, /Calls work on this network/);

  const rule = ['INPUT', '-p', 'udp', '--dport', port, '-j', 'DROP'];
  execFileSync('iptables', ['-A', ...rule]);
  try {
    await ada.click('#connection-panel .bar button');
    const blocked = await finished(ada);
    assert.deepEqual(blocked.results, [['udp', false], ['tcp', true]]);
    assert.match(blocked.advice, /blocks UDP to the relay: calls go through it over TCP/);
    await screenshot(ada, 'connection-test-udp-blocked');
  } finally {
    execFileSync('iptables', ['-D', ...rule]);
  }
  await ada.context().close();
});
