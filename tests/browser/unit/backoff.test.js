// The web client's reconnection backoff, under Node's test runner: the wait grows
// exponentially from the base, is capped, and is spread over the whole window (full
// jitter) so clients of a restarted server do not come back together.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CAP_MS, DEFAULT_BASE_MS, baseFromHint, reconnectDelay } from '../../../web/js/backoff.js';

/** A random source that always answers `value`. */
const always = (value) => () => value;

test('the window doubles with each attempt from the base', () => {
  const top = always(1);
  assert.deepEqual([1, 2, 3, 4].map((n) => reconnectDelay(n, 500, top)), [500, 1000, 2000, 4000]);
  assert.deepEqual([1, 2, 3].map((n) => reconnectDelay(n, 1000, top)), [1000, 2000, 4000]);
});

test('the window never exceeds the cap, however many attempts', () => {
  for (const attempt of [7, 8, 20, 100, 5000]) assert.equal(reconnectDelay(attempt, 500, always(1)), CAP_MS);
  assert.equal(CAP_MS, 30000);
});

test('the wait is anywhere in the window, from zero (full jitter)', () => {
  assert.equal(reconnectDelay(3, 500, always(0)), 0);
  assert.equal(reconnectDelay(3, 500, always(0.5)), 1000);
  assert.equal(reconnectDelay(3, 500, always(0.25)), 500);
});

test('clients that lose the server together come back spread out', () => {
  // A small seeded generator stands for a thousand browsers' Math.random.
  let state = 42;
  const random = () => {
    state = (state * 1103515245 + 12345) % 2147483648;
    return state / 2147483648;
  };
  const waits = Array.from({ length: 1000 }, () => reconnectDelay(1, 1000, random));
  assert.ok(waits.every((w) => Number.isInteger(w) && w >= 0 && w <= 1000));
  // Ten 100 ms slots, each holding roughly a tenth of the clients.
  const slots = new Array(10).fill(0);
  for (const w of waits) slots[Math.min(9, Math.floor(w / 100))] += 1;
  assert.ok(slots.every((count) => count > 50 && count < 150), `${slots}`);
});

test('the server’s reconnect hint is the base; without a usable one the default is', () => {
  assert.equal(baseFromHint(1000), 1000);
  for (const bad of [undefined, null, 0, -5, Number.NaN, Infinity, '1000']) assert.equal(baseFromHint(bad), DEFAULT_BASE_MS);
  assert.equal(DEFAULT_BASE_MS, 500);
});
