// Real browser pages for the Rust fault tests (tests/tests/faults.rs): opens one headless
// Chromium page per person on a running Isoplane, then every 500 ms prints one JSON line
// with what each page sees (joined, reconnect attempts, zone, media topology, decoded
// frames per peer). Commands arrive one per line on stdin:
//   walk NAME X Y        the page walks to tile (X, Y) by its path finder
//   eval NAME CODE       runs CODE in the page (a test probe; its result is printed)
// It exits when stdin closes.
//
// Usage: ISOPLANE_PAGES='[{"name": "ada", "token": "…"}]' node pages.mjs http://127.0.0.1:PORT
// Run it where WebRTC can only reach loopback (`unshare -n`, as ./test.sh does).

import { createInterface } from 'node:readline';
import { launchBrowser } from './e2e/harness.js';

const url = process.argv[2];
const people = JSON.parse(process.env.ISOPLANE_PAGES ?? '[]');
if (!url || people.length === 0) {
  console.error('usage: ISOPLANE_PAGES=\'[{"name": …, "token": …}]\' node pages.mjs URL');
  process.exit(2);
}

const browser = await launchBrowser();
/** @type {Map<string, import('playwright-core').Page>} */
const pages = new Map();
for (const { name, token } of people) {
  const context = await browser.newContext({ viewport: { width: 1000, height: 640 }, deviceScaleFactor: 1 });
  const page = await context.newPage();
  page.on('pageerror', (error) => console.error(`[${name}] ${error.message}`));
  await page.goto(`${url}/?debug=1&token=${encodeURIComponent(token)}`);
  await page.waitForFunction(() => window.isoplane?.renderer && window.isoplane.joined, null, { timeout: 30000 });
  pages.set(name, page);
}

/** What one page sees now. */
async function observe(page) {
  return page.evaluate(async () => {
    const app = window.isoplane;
    const plan = app.media.plan;
    let stats = {};
    try {
      stats = await app.media.stats();
    } catch {
      // A connection closing under getStats: next sample.
    }
    return {
      joined: Boolean(app.joined),
      attempt: app.connection.attempt,
      self: app.self,
      zone: app.zone?.id ?? null,
      topology: plan?.topology ?? null,
      peers: Object.fromEntries(Object.entries(stats).map(([avatar, s]) => [avatar, { frames: s.framesDecoded, relayed: s.relayed }])),
    };
  });
}

let stopped = false;
const lines = createInterface({ input: process.stdin });
lines.on('line', async (line) => {
  const [command, name, ...rest] = line.trim().split(' ');
  const page = pages.get(name);
  if (!page) return console.error(`no page ${name}`);
  try {
    if (command === 'walk') {
      await page.evaluate(([x, y]) => window.isoplane.walkTo(x, y), rest.map(Number));
    } else if (command === 'eval') {
      const result = await page.evaluate(rest.join(' '));
      console.log(JSON.stringify({ eval: name, result }));
    }
  } catch (error) {
    console.error(`[${name}] ${command}: ${error.message}`);
  }
});
lines.on('close', async () => {
  stopped = true;
  await browser.close();
  process.exit(0);
});

console.log(JSON.stringify({ ready: [...pages.keys()] }));
while (!stopped) {
  const sample = { t: Date.now() };
  for (const [name, page] of pages) {
    try {
      sample[name] = await observe(page);
    } catch (error) {
      sample[name] = { error: error.message };
    }
  }
  if (!stopped) console.log(JSON.stringify(sample));
  await new Promise((resolve) => setTimeout(resolve, 500));
}
