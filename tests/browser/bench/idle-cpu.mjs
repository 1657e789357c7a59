// CPU time of the browser client in headless Chromium: a page where nothing moves, and
// one in a busy zone.
//
//   node bench/idle-cpu.mjs [seconds=20] [walkers=30]
//
// Starts Isoplane, opens the client (software rendering: no GPU here), and sums the user
// and system time of every Chromium process (the bench's own: run it with no other
// Chromium on the machine) over `seconds`: first alone and still (once the camera and
// microphone have come to rest, as they do when nobody is near), then with `walkers`
// simulated people walking circles around the viewer through the client's own presence
// path. Run it inside `unshare -n` like the tests.
//
// A hidden tab cannot be measured here: headless Chromium shows every page. The client
// does no frame work at all while hidden (it draws from requestAnimationFrame, which
// hidden pages do not get), so a hidden page costs at most what the still one does.
import { readFileSync, readdirSync } from 'node:fs';
import { launchBrowser, openClient, startIsoplane } from '../e2e/harness.js';

const seconds = Number(process.argv[2] ?? 20);
const walkers = Number(process.argv[3] ?? 30);
/** Clock ticks a second, as /proc counts them on Linux. */
const TICKS = 100;

/** User plus system CPU seconds of every Chromium process now. */
function chromiumSeconds() {
  let ticks = 0;
  for (const pid of readdirSync('/proc').filter((name) => /^\d+$/.test(name))) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const command = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      if (!/^(chromium|chrome)/.test(command)) continue;
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      ticks += Number(fields[11]) + Number(fields[12]);
    } catch {
      // The process ended meanwhile.
    }
  }
  return ticks / TICKS;
}

/** Share of one core the Chromium processes use over `seconds`. */
async function measure() {
  const start = chromiumSeconds();
  await new Promise((done) => setTimeout(done, seconds * 1000));
  return ((chromiumSeconds() - start) / seconds) * 100;
}

const server = await startIsoplane();
const browser = await launchBrowser();
try {
  const page = await openClient(browser, server.url, 'Viewer');
  // Let the page settle: the camera eases onto the avatar; alone, capture comes to rest.
  await page.waitForFunction(() => window.isoplane.media.resting, null, { timeout: 30000 });
  await page.waitForTimeout(1000);
  const framesBefore = await page.evaluate(() => window.isoplane.framesDrawn);
  const still = await measure();
  const stillFrames = (await page.evaluate(() => window.isoplane.framesDrawn)) - framesBefore;
  await page.evaluate((n) => window.isoplane.simulateCrowd(n), walkers);
  await page.waitForTimeout(1000);
  const busyBefore = await page.evaluate(() => window.isoplane.framesDrawn);
  const busy = await measure();
  const busyFrames = (await page.evaluate(() => window.isoplane.framesDrawn)) - busyBefore;
  console.log(`headless Chromium (software rendering), viewport 1100x700, ${seconds} s each`);
  console.log(`nothing moves:        ${still.toFixed(1)}% of a core, ${(stillFrames / seconds).toFixed(1)} frames drawn a second`);
  console.log(`${walkers} people walking: ${busy.toFixed(1)}% of a core, ${(busyFrames / seconds).toFixed(1)} frames drawn a second`);
} finally {
  await browser.close();
  server.stop();
}
