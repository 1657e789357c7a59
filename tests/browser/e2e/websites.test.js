// Web pages beside the map, in headless Chromium against a real Isoplane serving a map
// made for WorkAdventure: a Tiled map with `openWebsite` areas, imported by
// `isoplane world import-tiled`. Two small web servers on loopback stand for the sites:
// one on the workspace's allow-list (`embed_origins`), one not.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { BINARY, openClient, screenshot, standAt, until, useIsoplane } from './harness.js';

const DEMO_TILES = new URL('../../../worlds/demo/assets/sha256-ad1738962a05c7ccad2a02b5dc71a95c2fc4cbdbc4a117490ad4343330f546c3.svg', import.meta.url).pathname;

/**
 * A web server on an ephemeral loopback port that answers every path with a small page
 * naming it, and counts the requests it got by path.
 */
function pageServer() {
  /** @type {Map<string, number>} */
  const requests = new Map();
  const server = createServer((request, response) => {
    const path = new URL(request.url ?? '/', 'http://x').pathname;
    requests.set(path, (requests.get(path) ?? 0) + 1);
    response.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    response.end(`<!doctype html><title>${path}</title><h1 id="page">This is ${path}</h1>`);
  });
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => {
      const { port } = /** @type {import('node:net').AddressInfo} */ (server.address());
      resolve({ origin: `http://127.0.0.1:${port}`, requests, close: () => server.close() });
    });
  });
}

/** A WorkAdventure-style area object, in tiles (isometric maps keep objects in tile-height units). */
function area(id, name, [x, y, w, h], properties) {
  return { id, name, type: 'area', x: x * 32, y: y * 32, width: w * 32, height: h * 32, rotation: 0, visible: true,
    properties: Object.entries(properties).map(([key, value]) => ({ name: key, type: typeof value === 'boolean' ? 'bool' : 'string', value })) };
}

/**
 * The map, 14 × 10 isometric tiles:
 *   Board (1-3, 1-2): opens the allowed site's board on entering.
 *   Elsewhere (10-12, 1-2): a site not on the list.
 *   Meeting (1-5, 5-8): a `jitsiRoom` area, so a meeting room; in it, Pad (2, 6) opens on
 *   request (`openWebsiteTrigger: onaction`).
 *   Spawn at (8, 4).
 */
function officeMap(allowed, other) {
  const floor = { id: 1, name: 'floor', type: 'tilelayer', width: 14, height: 10, x: 0, y: 0, opacity: 1, visible: true, data: new Array(140).fill(1) };
  const objects = [
    area(1, 'Board', [1, 1, 3, 2], { openWebsite: `${allowed}/board.html` }),
    area(2, 'Elsewhere', [10, 1, 3, 2], { openWebsite: `${other}/elsewhere.html` }),
    area(3, 'Meeting', [1, 5, 5, 4], { jitsiRoom: 'Meeting' }),
    area(4, 'Pad', [2, 6, 1, 1], { openWebsite: `${allowed}/pad.html`, openWebsiteTrigger: 'onaction', openWebsiteTriggerMessage: 'Press SPACE to open the pad' }),
    { id: 5, name: 'start', type: 'spawn', x: 8 * 32, y: 4 * 32, width: 32, height: 32, rotation: 0, visible: true },
  ];
  return {
    type: 'map', version: '1.10', tiledversion: '1.10.2', orientation: 'isometric', renderorder: 'right-down', infinite: false,
    width: 14, height: 10, tilewidth: 64, tileheight: 32, nextlayerid: 3, nextobjectid: 6,
    properties: [{ name: 'mapName', type: 'string', value: 'Websites' }],
    tilesets: [{ firstgid: 1, name: 'office', image: 'tiles.svg', imagewidth: 512, imageheight: 128, tilewidth: 64, tileheight: 64,
      columns: 8, tilecount: 16, margin: 0, spacing: 0 }],
    layers: [floor, { id: 2, name: 'floorLayer', type: 'objectgroup', draworder: 'topdown', x: 0, y: 0, opacity: 1, visible: true, objects }],
  };
}

/** Runs `isoplane` with `args`; resolves to its output, fails on a non-zero exit. */
function run(args) {
  return new Promise((resolve, reject) => {
    const child = spawn(BINARY, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (chunk) => { output += chunk; });
    child.stderr.on('data', (chunk) => { output += chunk; });
    child.on('exit', (code) => (code === 0 ? resolve(output) : reject(new Error(`isoplane ${args.join(' ')} exited with ${code}:\n${output}`))));
  });
}

/** @type {{allowed: any, other: any, importNotes: string}} */
const sites = /** @type {any} */ ({});

const live = useIsoplane(async () => {
  sites.allowed = await pageServer();
  sites.other = await pageServer();
  const folder = mkdtempSync(join(tmpdir(), 'isoplane-websites-'));
  copyFileSync(DEMO_TILES, join(folder, 'tiles.svg'));
  writeFileSync(join(folder, 'websites.tmj'), JSON.stringify(officeMap(sites.allowed.origin, sites.other.origin)));
  mkdirSync(join(folder, 'worlds'));
  sites.importNotes = await run(['world', 'import-tiled', join(folder, 'websites.tmj'), '-o', join(folder, 'worlds', 'websites.world.json')]);
  return { ISOPLANE_SIGNALING_WORLDS_DIRECTORY: join(folder, 'worlds'), ISOPLANE_SIGNALING_EMBED_ORIGINS: sites.allowed.origin };
});

after(() => {
  sites.allowed?.close();
  sites.other?.close();
});

/** The text of the page framed beside the map, read from inside the frame. */
async function framedText(page, path) {
  const deadline = Date.now() + 15000;
  while (Date.now() < deadline) {
    const frame = page.frames().find((f) => URL.canParse(f.url()) && new URL(f.url()).pathname === path);
    const text = frame && (await frame.locator('#page').textContent({ timeout: 1000 }).catch(() => null));
    if (text) return text;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`no frame of ${path} showed its page`);
}

test('the import keeps openWebsite areas as websites, and the client page only allows frames of the allow-list', async () => {
  assert.match(sites.importNotes, /3 websites/);
  for (const path of ['/', '/web/index.html', '/web/js/app.js']) {
    const response = await fetch(`${live.server.url}${path}`);
    assert.equal(response.headers.get('content-security-policy'), `frame-src ${sites.allowed.origin}`, path);
  }
  const world = await (await fetch(`${live.server.url}/v1/worlds/websites`)).json();
  assert.deepEqual(world.websites.map((/** @type {any} */ w) => [w.id, w.trigger]), [['board', 'enter'], ['elsewhere', 'enter'], ['pad', 'action']]);
});

test('walking onto a website opens its page in a sandboxed frame; another origin is refused with a message and never loaded', async () => {
  const ada = await openClient(live.browser, live.server.url, 'Ada', { world: 'websites' });
  assert.deepEqual(await ada.evaluate(() => window.isoplane.websites.allowed), [sites.allowed.origin]);

  await standAt(ada, 2, 2);
  assert.equal(await framedText(ada, '/board.html'), 'This is /board.html');
  const frame = await ada.evaluate(() => {
    const element = document.querySelector('#website-panel iframe');
    return element && { sandbox: element.getAttribute('sandbox'), title: document.getElementById('website-title')?.textContent };
  });
  assert.ok(frame?.sandbox?.includes('allow-scripts') && !frame.sandbox.includes('allow-top-navigation'), `sandboxed: ${frame?.sandbox}`);
  assert.equal(frame?.title, 'Board');
  await screenshot(ada, 'website-board');

  // Stepping off closes it; the other site's area shows why it cannot be shown instead.
  await standAt(ada, 11, 2);
  const refusal = await until(ada, () => document.querySelector('#website-panel .refused')?.textContent);
  assert.match(refusal, new RegExp(`${sites.other.origin.replace(/[.]/g, '\\.')} is not on this workspace's list`));
  assert.equal(await ada.evaluate(() => document.querySelectorAll('#website-panel iframe').length), 0);
  await screenshot(ada, 'website-refused');

  // Even a frame made by hand (as a script injected into the client would) is refused by
  // the browser, from the page's Content-Security-Policy.
  const violated = await ada.evaluate((src) => new Promise((resolve) => {
    document.addEventListener('securitypolicyviolation', (e) => resolve(e.effectiveDirective), { once: true });
    const frame = document.createElement('iframe');
    frame.src = src;
    document.body.append(frame);
  }), `${sites.other.origin}/forced.html`);
  assert.equal(violated, 'frame-src');
  await new Promise((resolve) => setTimeout(resolve, 500));
  assert.deepEqual([...sites.other.requests.keys()], [], 'the other site was never asked for anything');

  // Closing by hand keeps it closed while we stand there; walking back opens it again.
  await standAt(ada, 2, 2);
  await until(ada, () => document.querySelector('#website-panel iframe') !== null);
  await ada.click('#website-panel .close');
  assert.equal(await ada.evaluate(() => document.getElementById('website-panel')?.hidden), true);
  await standAt(ada, 3, 1);
  assert.equal(await ada.evaluate(() => document.getElementById('website-panel')?.hidden), true, 'dismissed while still on the area');
  await ada.context().close();
});

test('in the meeting room a page opens on request and for everyone inside, newcomers included, until its opener leaves', async () => {
  const ada = await openClient(live.browser, live.server.url, 'Ada', { world: 'websites' });
  const bob = await openClient(live.browser, live.server.url, 'Bob', { world: 'websites' });
  await standAt(bob, 4, 7);
  await standAt(ada, 2, 6);
  assert.equal(await ada.evaluate(() => window.isoplane.zone.type), 'meeting_room');
  // On request: offered, not opened, until Space on the map.
  const offer = await until(ada, () => document.querySelector('#website-offer button')?.textContent);
  assert.equal(offer, 'Open Pad');
  assert.equal(await ada.evaluate(() => document.getElementById('website-panel')?.hidden), true);
  await ada.focus('#world');
  await ada.keyboard.press('Space');
  assert.equal(await framedText(ada, '/pad.html'), 'This is /pad.html');

  await ada.click('#website-panel [data-action="share"]');
  assert.equal(await framedText(bob, '/pad.html'), 'This is /pad.html');
  const source = await until(bob, () => document.querySelector('#website-panel .website-source')?.textContent);
  assert.match(source, /opened for everyone here by Ada/);
  assert.equal(await bob.evaluate(() => document.getElementById('website-title')?.textContent), 'Pad');
  await screenshot(bob, 'website-shared');

  // Bob steps out (the page closes for him) and comes back: the room's snapshot has it.
  await standAt(bob, 7, 7);
  await until(bob, () => document.getElementById('website-panel')?.hidden);
  await standAt(bob, 4, 7);
  assert.equal(await framedText(bob, '/pad.html'), 'This is /pad.html');

  // Ada walks out: her page closes for everyone.
  await standAt(ada, 7, 4);
  await until(bob, () => document.getElementById('website-panel')?.hidden && window.isoplane.websites.zonePage === null);
  // In the open space there is nothing to open for everyone.
  assert.equal(await ada.evaluate(() => window.isoplane.websites.on.canShare()), false);
  await ada.context().close();
  await bob.context().close();
});
