// Recording a meeting in headless Chromium against a real Isoplane whose object store is
// an S3 server (s3s-fs, tests/src/bin/test_s3.rs): an admin allows recording in the demo
// world's meeting room, a member starts it, and everyone inside is told who records, from
// the moment it starts; someone who walks in later is told by the zone's snapshot, before
// the media plan that lets their camera and microphone reach the SFU. The SFU writes each
// person's tracks as WebM to the store; the asset server lists them and serves them, and
// ffprobe (Debian's ffmpeg) reads every file with the codecs and duration expected. A
// recording whose SFU is killed is listed as incomplete, and what was written plays.

import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { after, test } from 'node:test';
import { BINARY, devToken, openClient, screenshot, startIsoplane, until, useIsoplane } from './harness.js';

/** The S3 server's settings, as Isoplane's asset server (and so its SFU) reads them. */
const S3 = { bucket: 'isoplane', key: 'recording-test', secret: 'recording-test-secret' };
/** @type {import('node:child_process').ChildProcess | undefined} */
let s3Server;
/** @type {Record<string, string>} */
let storeEnv = {};

/** Starts the S3 server (a binary built beside `isoplane`); resolves to its URL. */
function startS3() {
  return new Promise((resolve, reject) => {
    const folder = mkdtempSync(join(tmpdir(), 'isoplane-s3-'));
    const child = spawn(join(BINARY, '../isoplane-test-s3'), [folder, S3.bucket, S3.key, S3.secret], { stdio: ['ignore', 'pipe', 'inherit'] });
    child.on('error', reject);
    s3Server = child;
    createInterface({ input: /** @type {import('node:stream').Readable} */ (child.stdout) }).on('line', (line) => {
      const url = line.match(/^s3: (http:\/\/\S+)/)?.[1];
      if (url) resolve(url);
    });
  });
}

const live = useIsoplane(async () => {
  const endpoint = await startS3();
  storeEnv = {
    ISOPLANE_ASSETS_STORE: 's3',
    ISOPLANE_ASSETS_S3_ENDPOINT: endpoint,
    ISOPLANE_ASSETS_S3_BUCKET: S3.bucket,
    ISOPLANE_ASSETS_S3_ACCESS_KEY_ID: S3.key,
    ISOPLANE_ASSETS_S3_SECRET_ACCESS_KEY: S3.secret,
  };
  return storeEnv;
});
after(() => s3Server?.kill());

/** The recordings the asset server lists, read with an admin's token. */
async function recordings() {
  const { token, workspace } = await devToken(live.server.url, 'Auditor', { admin: true });
  const response = await fetch(`${live.server.assets}/v1/workspaces/${workspace}/recordings`, { headers: { authorization: `Bearer ${token}` } });
  assert.equal(response.status, 200);
  return { list: await response.json(), token, workspace };
}

/** The first recording listed that `wanted` accepts, looked for every second until `timeout` ms. */
async function listed(wanted, what, timeout = 15000) {
  const deadline = Date.now() + timeout;
  for (;;) {
    const found = (await recordings()).list.find(wanted);
    if (found) return found;
    assert.ok(Date.now() < deadline, what);
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
}

/** A video file's frame widths in order, each change once (a simulcast layer switch shows as one). */
function frameWidths(path) {
  const json = execFileSync('ffprobe', ['-v', 'error', '-show_entries', 'frame=width', '-of', 'json', path], { encoding: 'utf8' });
  const widths = JSON.parse(json).frames.map((frame) => frame.width);
  return widths.filter((width, index) => width !== widths[index - 1]);
}

/** Downloads a track's file and asks ffprobe what it holds. */
async function probe(id, file) {
  const { token, workspace } = await devToken(live.server.url, 'Auditor', { admin: true });
  const response = await fetch(`${live.server.assets}/v1/workspaces/${workspace}/recordings/${id}/files/${file}.webm`, { headers: { authorization: `Bearer ${token}` } });
  assert.equal(response.status, 200, `${file}: ${response.status}`);
  const path = join(mkdtempSync(join(tmpdir(), 'isoplane-recording-')), `${file}.webm`);
  writeFileSync(path, Buffer.from(await response.arrayBuffer()));
  const json = execFileSync('ffprobe', ['-v', 'error', '-count_frames', '-show_entries', 'stream=codec_name,nb_read_frames:format=start_time,duration', '-of', 'json', path], { encoding: 'utf8' });
  const info = JSON.parse(json);
  const format = info.format ?? {};
  return { codec: info.streams[0]?.codec_name, frames: Number(info.streams[0]?.nb_read_frames ?? 0), start: Number(format.start_time ?? NaN), duration: Number(format.duration ?? NaN), path };
}

const ROOM = 'meeting';

/** Walks the page into zone `zone` as a user would, from the places list. */
async function enter(page, zone) {
  await page.click('#people-toggle');
  await page.click(`#people-panel [data-key="zone-${zone}"]`);
  await page.click('#people-toggle');
  await until(page, (id) => window.isoplane.zone.id === id && window.isoplane.path.length === 0, zone, 30000);
}

/** What the recording indicator says ('' when hidden). */
const indicator = (page) => page.evaluate(() => document.getElementById('recording').textContent);

test('a member starts recording where an admin allowed it: everyone inside sees who records, a newcomer before any media flows', async () => {
  const ada = await openClient(live.browser, live.server.url, 'Ada', { admin: true });
  const bob = await openClient(live.browser, live.server.url, 'Bob');
  await enter(ada, ROOM);
  await enter(bob, ROOM);
  assert.equal(await indicator(bob), '', 'nobody records yet');

  // Ada allows recording in the meeting room from the admin panel.
  await ada.click('#admin-toggle');
  await ada.getByRole('tab', { name: 'Zones' }).click();
  await ada.locator(`#admin-panel tr[data-zone="${ROOM}"] button[data-action="allow-recording"]`).click();
  await until(ada, () => /Recording allowed/.test(document.getElementById('admin-result').textContent ?? ''));
  await ada.click('#admin-toggle');

  // Bob may start it: his Record button is there.
  const record = bob.getByRole('button', { name: 'Record', exact: true });
  await record.waitFor({ state: 'visible' });
  await record.click();
  for (const page of [ada, bob]) {
    await until(page, () => /Recording — started by Bob/.test(document.getElementById('recording').textContent ?? ''));
    const region = await page.evaluate(() => document.getElementById('recording').getAttribute('role'));
    assert.equal(region, 'status', 'said to screen readers too');
  }
  assert.equal(await bob.getByRole('button', { name: 'Stop recording' }).getAttribute('aria-pressed'), 'true');
  assert.deepEqual(await bob.evaluate(() => window.isoplane.recording.current?.by), 'Bob');
  await screenshot(bob, 'recording');

  // Cy walks in later: her page says who records before the room's first media plan
  // reaches her client (looked at as that plan arrives, before the client handles it).
  const cy = await openClient(live.browser, live.server.url, 'Cy', {
    beforeMessage: (message) => {
      if (message.type === 'media' && window.isoplane?.zone.id === 'meeting' && window.shownAtFirstPlan === undefined) {
        window.shownAtFirstPlan = document.getElementById('recording').textContent;
      }
      return true;
    },
  });
  assert.equal(await indicator(cy), '', 'nothing is recorded in the lobby');
  await enter(cy, ROOM);
  await until(cy, () => window.shownAtFirstPlan !== undefined);
  assert.match(await cy.evaluate(() => window.shownAtFirstPlan), /Recording — started by Bob/);
  assert.match(await indicator(cy), /Recording — started by Bob/);

  // Ada's encoder stops its full-size layer, as one short of CPU or bandwidth does: her
  // camera's file goes on in the layer still sent (checked with the files below).
  await ada.evaluate(async () => {
    const sender = window.isoplane.media.sfu.pc.getSenders().find((s) => s.track?.kind === 'video');
    const parameters = sender.getParameters();
    for (const encoding of parameters.encodings) encoding.active = encoding.rid !== 'f';
    await sender.setParameters(parameters);
  });

  // Let it record a while, then Bob stops it: every indicator goes.
  await bob.waitForTimeout(8000);
  await bob.getByRole('button', { name: 'Stop recording' }).click();
  for (const page of [ada, bob, cy]) await until(page, () => (document.getElementById('recording').textContent ?? '') === '');

  // The asset server lists it, complete (once the SFU's last pieces are stored), with
  // everyone's microphone and camera.
  const recording = await listed((r) => r.status === 'complete', 'the stopped recording is listed as complete');
  assert.equal(recording.started_by, 'Bob');
  assert.equal(recording.room, 'demo/meeting');
  const seconds = (recording.stopped_at - recording.started_at) / 1000;
  assert.ok(seconds > 10, `recorded for ${seconds} s`);
  const ids = await Promise.all([ada, bob, cy].map((page) => page.evaluate(() => window.isoplane.self)));
  for (const avatar of ids) {
    const kinds = recording.tracks.filter((t) => t.avatar === avatar).map((t) => `${t.kind}/${t.codec}`).sort();
    assert.deepEqual(kinds, ['audio/opus', 'video/vp8'], `avatar ${avatar}: ${JSON.stringify(recording.tracks)}`);
  }
  // Each file plays: its codec, and its frames on the recording's timeline (the files of
  // one recording line up): from when its track started (Cy's later: its offset) to the
  // recording's end.
  for (const track of recording.tracks) {
    const found = await probe(recording.id, track.file);
    const [start, end] = [track.offset_ms / 1000, seconds];
    console.log(`${track.file}: ${found.codec}, ${found.start.toFixed(2)}–${found.duration.toFixed(2)} s (expected ${start.toFixed(2)}–${end.toFixed(2)} s), ${found.frames} frames${track.kind === 'video' ? `, widths ${frameWidths(found.path).join(' → ')}` : ''}`);
    assert.equal(found.codec, track.codec);
    assert.ok(Math.abs(found.start - start) < 1, `${track.file} starts at ${found.start} s, expected about ${start} s`);
    // A video file may end up to 3 s early: with the CPU short (three pages encoding on
    // two cores, as in CI) files were seen to end 1.3-1.5 s early with no loss and no
    // layer switch in the recorder, the encoders' last frames not yet sent at the stop.
    // A file the SFU stops writing ends far earlier (the layer it recorded stopped: 8 s).
    const slack = track.kind === 'video' ? 3 : 1.5;
    assert.ok(found.duration > end - slack && found.duration < end + 1.5, `${track.file} ends at ${found.duration} s, expected about ${end} s`);
    // 20 ms audio frames; the fake camera's video at well over 10 frames a second.
    const length = found.duration - found.start;
    const least = track.kind === 'audio' ? 40 * length : 10 * length;
    assert.ok(found.frames >= least, `${track.file}: ${found.frames} frames in ${length} s`);
  }

  // Recorded again, and the SFU dies mid-recording (the whole all-in-one, SIGKILL).
  await bob.getByRole('button', { name: 'Record', exact: true }).click();
  await until(bob, () => /Recording — started by Bob/.test(document.getElementById('recording').textContent ?? ''));
  await bob.waitForTimeout(7000);
  live.server.child.kill('SIGKILL');
  for (const page of [ada, bob, cy]) await page.context().close();

  // Isoplane again on the same store: the recording is listed as incomplete once its
  // manifest is no longer rewritten, and what was written plays.
  live.server = await startIsoplane(storeEnv);
  const crashed = await listed((r) => r.id !== recording.id && r.status === 'incomplete', 'the killed recording is listed as incomplete', 60000);
  assert.equal(crashed.stopped_at, null);
  const camera = crashed.tracks.find((t) => t.kind === 'video');
  const partial = await probe(crashed.id, camera.file);
  console.log(`killed mid-recording: ${camera.file}: ${partial.codec}, ${partial.duration} s, ${partial.frames} frames`);
  assert.equal(partial.codec, 'vp8');
  assert.ok(partial.frames > 30, `${partial.frames} frames`);
});
