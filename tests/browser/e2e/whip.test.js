// A broadcaster publishes to the demo world's stage over WHIP (RFC 9725) with an ingest
// key an admin made in the admin panel's Broadcast tab: a Rust WHIP client built on
// webrtc-rs (tests/src/bin/whip_publish.rs) sends VP8 encoded by ffmpeg, and two Chromium
// listeners in the audience decode it, shown under the key's name. Revoking the key in
// the panel ends the stream, and the key is refused from then on.

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

  // Ada, an admin, makes the key in the panel: only the world's stages are offered.
  const ada = await openClient(live.browser, live.server.url, 'Ada', { admin: true });
  const bob = await openClient(live.browser, live.server.url, 'Bob');
  const panel = ada.locator('#admin-panel');
  await ada.locator('#admin-toggle').click();
  await panel.locator('button[data-tab="broadcast"]').click();
  await panel.locator('[data-section="broadcast"] p.empty', { hasText: 'No ingest keys yet.' }).waitFor();
  assert.deepEqual(await ada.locator('#admin-ingest-stage option').evaluateAll((options) => options.map((o) => o.value)), ['stage']);
  await ada.getByLabel('Name', { exact: true }).fill('Keynote');
  await panel.locator('button[data-action="create-ingest-key"]').click();
  await until(ada, () => document.getElementById('admin-result').textContent === 'Made a key for Keynote on Stage: copy it now');
  const field = ada.getByLabel('Key for Keynote', { exact: true });
  assert.equal(await field.getAttribute('readonly'), '');
  const key = await field.inputValue();
  const id = await panel.locator('.created-key').getAttribute('data-key-id');
  assert.ok(id && key.startsWith(`isoplane-ingest-${id}.`), key);
  assert.equal(await ada.locator('#admin-ingest-note').textContent(),
    `Shown once: paste it into OBS (Service: WHIP, Server: ${live.server.url}/v1/whip, Bearer token: the key)`);
  await ada.context().grantPermissions(['clipboard-read', 'clipboard-write'], { origin: live.server.url });
  await panel.locator('button[data-action="copy-ingest-key"]').click();
  await until(ada, () => document.getElementById('admin-result').textContent === 'Copied the key');
  assert.equal(await ada.evaluate(() => navigator.clipboard.readText()), key);
  await screenshot(ada, 'whip-ingest-key');

  // Listed in the panel (and by the server) without the key itself.
  const row = panel.locator(`tr[data-ingest-key="${id}"]`);
  await row.locator('[data-state="in-force"]').waitFor();
  assert.match(await row.textContent() ?? '', /^Keynote.*demo · Stage/);
  const listed = await admin({ action: 'list_ingest_keys' });
  assert.deepEqual(listed.ingest_keys.map((k) => [k.id, k.zone, k.name, k.revoked_at]), [[id, 'stage', 'Keynote', null]]);
  assert.ok(!JSON.stringify(listed).includes(key), 'listings never show the key');
  assert.equal(await panel.locator('table.ingest-keys').textContent().then((text) => text?.includes(key)), false);

  // Shown once: closed and opened again, the panel has the key no more.
  await ada.locator('#admin-toggle').click();
  await ada.locator('#admin-toggle').click();
  await row.waitFor();
  assert.equal(await ada.locator('#admin-ingest-key').count(), 0);
  await ada.locator('#admin-toggle').click();

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

  // Revoked in the panel: the stream ends for everyone, and the broadcaster cannot come
  // back with it.
  await ada.locator('#admin-toggle').click();
  await row.locator('button[data-action="revoke-ingest-key"]').click();
  await row.locator('button[data-action="confirm-revoke"]').click();
  await until(ada, () => document.getElementById('admin-result').textContent === 'Revoked the key for Keynote: its stream ended');
  await row.locator('[data-state="revoked"]').waitFor();
  assert.equal(await row.locator('button[data-action="revoke-ingest-key"]').count(), 0);
  await screenshot(ada, 'whip-ingest-revoked');
  await ada.locator('#admin-toggle').click();
  for (const page of [ada, bob]) await until(page, () => !window.isoplane.zone.ingest, null, 10000);
  child.kill();
  const again = await broadcast(key, ivf, 5, /^refused/).catch((error) => error);
  assert.match(again.lines?.[0] ?? String(again), /^refused 401/);

  await ada.context().close();
  await bob.context().close();
});
