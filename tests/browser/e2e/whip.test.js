// A broadcaster publishes to the demo world's stage over WHIP (RFC 9725) with an ingest
// key an admin made: a Rust WHIP client built on webrtc-rs (tests/src/bin/whip_publish.rs)
// sends VP8 encoded by ffmpeg, and two Chromium listeners in the audience decode it,
// shown under the key's name. Revoking the key ends the stream, and the key is refused
// from then on.

import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { test } from 'node:test';
import { BINARY, devToken, openClient, screenshot, until, useIsoplane } from './harness.js';

const live = useIsoplane();

/** Walks the page into zone `zone` as a user would, from the places list. */
async function enter(page, zone) {
  await page.click('#people-toggle');
  await page.click(`#people-panel [data-key="zone-${zone}"]`);
  await page.click('#people-toggle');
  await until(page, (id) => window.isoplane.zone.id === id && window.isoplane.path.length === 0, zone, 30000);
}

/** An admin command through the HTTP admin API; its reply's data. */
async function admin(command) {
  const { token } = await devToken(live.server.url, 'Ada', { admin: true });
  const response = await fetch(`${live.server.url}/v1/admin/commands`, {
    method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify(command),
  });
  const body = await response.json();
  assert.equal(response.status, 200, JSON.stringify(body));
  return body.data;
}

/** Runs the WHIP broadcaster; resolves with its process once it printed a line matching `until`. */
function broadcast(key, ivf, seconds, untilLine) {
  return new Promise((resolve, reject) => {
    const child = spawn(join(BINARY, '../isoplane-whip-publish'), [`${live.server.url}/v1/whip`, key, ivf, String(seconds)], { stdio: ['ignore', 'pipe', 'inherit'] });
    const lines = [];
    child.on('error', reject);
    createInterface({ input: /** @type {import('node:stream').Readable} */ (child.stdout) }).on('line', (line) => {
      lines.push(line);
      if (untilLine.test(line)) resolve({ child, lines });
    });
    child.on('exit', (code) => reject(new Error(`the broadcaster exited with ${code}: ${lines.join(' | ')}`)));
  });
}

test('a WHIP broadcaster with an ingest key is seen on the stage by its audience; a revoked key is refused', async () => {
  // 30 s of a test pattern, VP8 at 30 frames a second, a keyframe each second.
  const ivf = join(mkdtempSync(join(tmpdir(), 'isoplane-whip-')), 'pattern.ivf');
  execFileSync('ffmpeg', ['-v', 'error', '-f', 'lavfi', '-i', 'testsrc=size=640x360:rate=30', '-t', '30', '-c:v', 'libvpx', '-g', '30', '-deadline', 'realtime', '-b:v', '800k', '-f', 'ivf', ivf]);

  // Keys are for stages only.
  const { token } = await devToken(live.server.url, 'Ada', { admin: true });
  const refusedKey = await fetch(`${live.server.url}/v1/admin/commands`, {
    method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify({ action: 'create_ingest_key', world: 'demo', zone: 'meeting', name: 'Nope' }),
  });
  assert.equal(refusedKey.status, 400);
  const { id, key } = await admin({ action: 'create_ingest_key', world: 'demo', zone: 'stage', name: 'Keynote' });
  assert.match(key, /^isoplane-ingest-/);
  const listed = await admin({ action: 'list_ingest_keys' });
  assert.deepEqual(listed.ingest_keys.map((k) => [k.id, k.zone, k.name, k.revoked_at]), [[id, 'stage', 'Keynote', null]]);
  assert.ok(!JSON.stringify(listed).includes(key), 'listings never show the key');

  const ada = await openClient(live.browser, live.server.url, 'Ada');
  const bob = await openClient(live.browser, live.server.url, 'Bob');
  await enter(ada, 'stage');
  await enter(bob, 'stage');

  const { child } = await broadcast(key, ivf, 60, /^connected/);
  const avatar = await until(ada, () => window.isoplane.zone.ingest?.avatar, null, 20000);
  for (const [name, page] of [['Ada', ada], ['Bob', bob]]) {
    const frames = await until(page, async (from) => {
      const got = await window.isoplane.media.sfu?.receivedVideo(from);
      return (got?.framesDecoded ?? 0) > 90 ? got.framesDecoded : null;
    }, avatar, 30000);
    console.log(`${name} decoded ${frames} frames of the broadcast`);
    // The tile is captioned with the key's name (its pin button follows).
    const caption = await page.locator(`video[data-avatar="${avatar}"] + figcaption`).textContent();
    assert.match(caption ?? '', /^Keynote/);
  }
  await screenshot(ada, 'whip-on-stage');

  // Revoked: the stream ends for everyone, and the broadcaster cannot come back with it.
  const revoked = await admin({ action: 'revoke_ingest_key', id });
  assert.deepEqual(revoked, { revoked: id, ended: true });
  for (const page of [ada, bob]) await until(page, () => !window.isoplane.zone.ingest, null, 10000);
  child.kill();
  const again = await broadcast(key, ivf, 5, /^refused/).catch((error) => error);
  assert.match(again.lines?.[0] ?? String(again), /^refused 401/);

  await ada.context().close();
  await bob.context().close();
});
