// Starts Isoplane and headless Chromium for the end-to-end tests.
//
// Run inside a fresh network namespace (`unshare -n`, see .ci/run): the only interface is
// loopback, so WebRTC's ICE can only ever reach 127.0.0.1.

import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { after, before } from 'node:test';
import { chromium } from 'playwright-core';

const target = process.env.CARGO_TARGET_DIR ?? join(process.env.HOME ?? '', '.cache/isoplane/target');
export const BINARY = process.env.ISOPLANE_BIN ?? join(target, 'debug/isoplane');
export const SCREENSHOTS = new URL('../screenshots/', import.meta.url).pathname;

/** Starts `isoplane` on an ephemeral port; resolves to its base URL and a stop function. */
export function startIsoplane(env = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(BINARY, [], {
      env: {
        ...process.env,
        ISOPLANE_SIGNALING_LISTEN: '127.0.0.1:0',
        ISOPLANE_ASSETS_LISTEN: '127.0.0.1:0',
        ISOPLANE_ASSETS_DATA_DIR: mkdtempSync(join(tmpdir(), 'isoplane-data-')),
        ISOPLANE_TURN_LISTEN_UDP: '127.0.0.1:0',
        ISOPLANE_TURN_LISTEN_TCP: '127.0.0.1:0',
        ISOPLANE_SFU_LISTEN_HTTP: '127.0.0.1:0',
        ISOPLANE_SFU_LISTEN_UDP: '127.0.0.1:0',
        ISOPLANE_SFU_LISTEN_TCP: '127.0.0.1:0',
        RUST_LOG: 'warn',
        // ISOPLANE_E2E_LOG: a log filter for the server, whose log then goes to stderr
        // (to see more while debugging a test).
        ...(process.env.ISOPLANE_E2E_LOG ? { ISOPLANE_LOG: process.env.ISOPLANE_E2E_LOG } : {}),
        ...env,
      },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    child.on('error', reject);
    const lines = createInterface({ input: child.stdout });
    let url = '';
    let sfu = '';
    let assets = '';
    lines.on('line', (line) => {
      if (process.env.ISOPLANE_E2E_LOG) console.error(line);
      url ||= line.match(/open (http:\/\/[^/\s]+)\//)?.[1] ?? '';
      sfu ||= line.match(/sfu: ws:\/\/([^/\s]+)\//)?.[1] ?? '';
      assets ||= line.match(/assets: (http:\/\/[^/\s]+)\//)?.[1] ?? '';
      // The banner ends with this line.
      if (line.startsWith('Press Ctrl-C') && url) {
        resolve({ url, sfu: sfu && `http://${sfu}`, assets, stop: () => child.kill('SIGINT'), child });
      }
    });
    child.on('exit', (code) => reject(new Error(`isoplane exited with ${code} before listening`)));
  });
}

/**
 * One Isoplane (started with `env`, or with what `env()` resolves to when the settings
 * are known only once something else is running) and one Chromium for the tests of a
 * file: started before the first test, stopped after the last. Read them as
 * `live.server` and `live.browser` inside tests.
 * @param {Record<string, string> | (() => Promise<Record<string, string>>)} [env]
 */
export function useIsoplane(env = {}) {
  /** @type {{server: {url: string, sfu: string, assets: string, stop: () => void, child: import('node:child_process').ChildProcess}, browser: import('playwright-core').Browser}} */
  const live = /** @type {any} */ ({});
  before(async () => {
    live.server = await startIsoplane(typeof env === 'function' ? await env() : env);
    live.browser = await launchBrowser();
  });
  after(async () => {
    await live.browser?.close();
    live.server?.stop();
  });
  return live;
}

/**
 * Headless Debian Chromium with fake camera and microphone (Playwright gives it a fresh
 * profile), with `extraArgs` added to its command line.
 * @param {string[]} [extraArgs]
 */
export async function launchBrowser(extraArgs = []) {
  return chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    headless: true,
    args: [
      '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--use-fake-device-for-media-stream',
      '--use-fake-ui-for-media-stream', '--allow-loopback-in-peer-connection', ...extraArgs,
    ],
  });
}

/** A phone, as Chromium's mobile emulation has it: a 390 × 844 touch screen. */
export const PHONE = { viewport: { width: 390, height: 844 }, deviceScaleFactor: 3, isMobile: true, hasTouch: true };

/**
 * Opens the client as `name` and waits until it has joined and drawn the world. With
 * `{admin: true}` (`{builder: true}`) the page joins with an admin's (a builder's) token
 * from the development issuer; with
 * `{device: PHONE}` it is a phone. The page is opened with `debug=1`, which exposes the
 * client's state as `window.isoplane`. With `{beforeMessage}`, every JSON message from
 * signaling goes through that function in the page before the client sees it (false:
 * the client never does); see `watchSignaling`.
 */
export async function openClient(browser, url, name, { admin = false, builder = false, world = 'demo', query = '', device = { viewport: { width: 1100, height: 700 }, deviceScaleFactor: 1 }, beforeMessage = null } = {}) {
  const context = await browser.newContext(device);
  if (beforeMessage) await context.addInitScript({ content: `(${watchSignaling})(${beforeMessage});` });
  const page = await context.newPage();
  page.on('pageerror', (error) => console.error(`[${name}] ${error.message}`));
  const start = `${url}/?debug=1&world=${encodeURIComponent(world)}${query ? `&${query}` : ''}`;
  if (admin || builder) {
    const { token } = await devToken(url, name, { admin, builder });
    await page.goto(`${start}&token=${encodeURIComponent(token)}`);
  } else {
    await page.goto(`${start}&name=${encodeURIComponent(name)}`);
  }
  await page.waitForFunction(() => window.isoplane?.renderer && window.isoplane.joined, null, { timeout: 15000 });
  return page;
}

/**
 * Runs in the page before the client loads: the signaling WebSocket (`/v1/ws`) hands each
 * JSON message to `beforeMessage(message)` first, and drops it when that returns false.
 * (The client reads its sockets with `onmessage`.) Lets a test play a client that never
 * got some message, or look at what the page showed when one came.
 * @param {(message: any) => boolean} beforeMessage
 */
function watchSignaling(beforeMessage) {
  const Native = window.WebSocket;
  window.WebSocket = class extends Native {
    set onmessage(handler) {
      super.onmessage = handler && ((event) => {
        if (typeof event.data === 'string' && new URL(this.url).pathname === '/v1/ws') {
          let message = null;
          try {
            message = JSON.parse(event.data);
          } catch {
            // Not JSON: the client says so itself.
          }
          if (message && beforeMessage(message) === false) return;
        }
        handler.call(this, event);
      });
    }

    get onmessage() {
      return super.onmessage;
    }
  };
}

/** The SFU's metric `name` (without the `isoplane_` prefix) from its /metrics. @param {{sfu: string}} server @param {string} name */
export async function sfuMetric(server, name) {
  const text = await (await fetch(`${server.sfu}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`isoplane_${name} `));
  return Number(line?.split(' ')[1] ?? NaN);
}

/** Ada and Bob, each in a page of their own, with their avatars' IDs. */
export async function openAdaAndBob(browser, url) {
  const ada = await openClient(browser, url, 'Ada');
  const bob = await openClient(browser, url, 'Bob');
  const adaId = await ada.evaluate(() => window.isoplane.self);
  const bobId = await bob.evaluate(() => window.isoplane.self);
  return { ada, bob, adaId, bobId };
}

/** Walks the page to tile (x, y) and waits until it stands there. */
export async function standAt(page, x, y) {
  await page.evaluate(([tx, ty]) => window.isoplane.walkTo(tx, ty), [x, y]);
  await until(page, ([tx, ty]) => {
    const p = window.isoplane.position;
    return Math.floor(p.x / 256) === tx && Math.floor(p.y / 256) === ty && window.isoplane.path.length === 0;
  }, [x, y], 30000);
}

/** A join token from the server's development issuer: `{token, user, workspace}`. */
export async function devToken(url, name, { admin = false, builder = false } = {}) {
  const response = await fetch(`${url}/v1/dev/token?name=${encodeURIComponent(name)}${admin ? '&admin=true' : ''}${builder ? '&builder=true' : ''}`);
  if (!response.ok) throw new Error(`the development token issuer answered ${response.status}`);
  return response.json();
}

/**
 * Evaluates `fn(arg)` in the page every 100 ms until it returns (or resolves to)
 * something truthy, and returns that; fails after `timeout` ms.
 */
export async function until(page, fn, arg, timeout = 15000) {
  const deadline = Date.now() + timeout;
  let last;
  while (Date.now() < deadline) {
    last = await page.evaluate(fn, arg);
    if (last) return last;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`timed out after ${timeout} ms waiting for ${fn.toString().slice(0, 160)} (last value: ${JSON.stringify(last)})`);
}

/**
 * Where tile point (x, y) (tile units) is on the page, once two frames in a row agree on
 * it. A place read between a zoom and the frame that draws it would move under the
 * pointer before it lands.
 */
export async function settledScreenAt(page, x, y) {
  let last = null;
  for (;;) {
    const now = await page.evaluate(async ([tx, ty]) => {
      await new Promise((resolve) => requestAnimationFrame(() => requestAnimationFrame(resolve)));
      return window.isoplane.screenAt(tx, ty);
    }, [x, y]);
    if (last && now.x === last.x && now.y === last.y) return now;
    last = now;
  }
}

/**
 * Calls the asset API at `base` (the asset server, or signaling's origin, which forwards
 * it) with an admin's token from the development issuer of `server`; the JSON answer,
 * which must be a success.
 * @param {string} server @param {string} base @param {string} path @param {RequestInit} [init]
 */
export async function assetApi(server, base, path, init = {}) {
  const { token } = await devToken(server, 'Setup', { admin: true });
  const response = await fetch(`${base}${path}`, {
    ...init,
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', ...init.headers },
  });
  const body = await response.json();
  if (!response.ok) throw new Error(`${path}: ${response.status} ${JSON.stringify(body)}`);
  return body;
}

const DEMO = new URL('../../../worlds/demo/', import.meta.url).pathname;

/** The demo world's file, and its tileset uploaded to the asset API at `base`. @param {string} server @param {string} base */
export async function demoWithItsImages(server, base) {
  const tiles = readdirSync(`${DEMO}assets`)[0];
  await assetApi(server, base, '/v1/assets', { method: 'POST', headers: { 'content-type': 'image/svg+xml' }, body: readFileSync(`${DEMO}assets/${tiles}`) });
  return JSON.parse(readFileSync(`${DEMO}world.json`, 'utf8'));
}

export async function screenshot(page, name) {
  mkdirSync(SCREENSHOTS, { recursive: true });
  await page.screenshot({ path: join(SCREENSHOTS, `${name}.png`) });
}
