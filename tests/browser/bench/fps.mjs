// Frames per second of the browser client with a crowd on screen.
//
//   node bench/fps.mjs [avatars=200] [seconds=10]
//
// Starts Isoplane, opens the client in headless Chromium (software rendering: no GPU
// here), adds simulated people walking around the local avatar through the client's own
// presence path, and counts the frames drawn. Run it inside `unshare -n` like the tests.
import { launchBrowser, openClient, screenshot, startIsoplane } from '../e2e/harness.js';

const count = Number(process.argv[2] ?? 200);
const seconds = Number(process.argv[3] ?? 10);
const server = await startIsoplane();
const browser = await launchBrowser();
try {
  const page = await openClient(browser, server.url, 'Viewer');
  const measure = () =>
    page.evaluate(async (ms) => {
      let frames = 0;
      const worst = [];
      let last = performance.now();
      await new Promise((done) => {
        const end = last + ms;
        const frame = (now) => {
          frames += 1;
          worst.push(now - last);
          last = now;
          if (now < end) requestAnimationFrame(frame);
          else done(null);
        };
        requestAnimationFrame(frame);
      });
      worst.sort((a, b) => a - b);
      return { fps: (frames * 1000) / ms, p99FrameMs: worst[Math.floor(worst.length * 0.99)] };
    }, seconds * 1000);
  const alone = await measure();
  await page.evaluate((n) => window.isoplane.simulateCrowd(n), count);
  await page.waitForTimeout(1000);
  const crowd = await measure();
  const drawn = await page.evaluate(() => window.isoplane.others.size + 1);
  await screenshot(page, `crowd-${count}`);
  console.log(`viewport 1100x700, headless Chromium (software rendering)`);
  console.log(`alone:            ${alone.fps.toFixed(1)} fps, p99 frame ${alone.p99FrameMs.toFixed(1)} ms`);
  console.log(`${drawn} avatars:      ${crowd.fps.toFixed(1)} fps, p99 frame ${crowd.p99FrameMs.toFixed(1)} ms`);
} finally {
  await browser.close();
  server.stop();
}
