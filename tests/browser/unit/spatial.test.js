// Distance audio's curve under Node: full volume near, a smooth fade to silence at the
// talk radius, and voices placed left or right as on screen.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { distanceGain, NEAR_SHARE, stereoPan } from '../../../web/js/spatial.js';

test('full volume within the near radius, silence from the talk radius on', () => {
  for (const radius of [2, 3, 8]) {
    assert.equal(distanceGain(0, radius), 1);
    assert.equal(distanceGain(radius * NEAR_SHARE, radius), 1);
    assert.equal(distanceGain(radius, radius), 0);
    assert.equal(distanceGain(radius + 1, radius), 0, 'a pair kept a tile beyond the radius stays silent');
  }
});

test('the fade falls steadily and is half way at its middle', () => {
  const radius = 3;
  const near = radius * NEAR_SHARE;
  let previous = 1;
  for (let d = near; d <= radius; d += 0.05) {
    const gain = distanceGain(d, radius);
    assert.ok(gain <= previous + 1e-12, `never louder farther away (${d.toFixed(2)} tiles)`);
    assert.ok(gain >= 0 && gain <= 1);
    previous = gain;
  }
  assert.ok(Math.abs(distanceGain((near + radius) / 2, radius) - 0.5) < 1e-9);
  // The cafe (talk radius 2): loud at half a tile, much quieter at one and a half.
  assert.equal(distanceGain(0.5, 2), 1);
  assert.ok(distanceGain(1.5, 2) < 0.4);
});

test('voices sit left or right as on screen, never fully in one ear', () => {
  assert.equal(stereoPan(0, 3), 0);
  assert.ok(stereoPan(-1, 3) < 0 && stereoPan(1, 3) > 0);
  assert.equal(stereoPan(-10, 3), -0.8);
  assert.equal(stereoPan(10, 3), 0.8);
});
