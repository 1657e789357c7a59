// The web client's availability (status.js), under Node's test runner with a clock of the
// test's own: "away" comes by itself after idling or a hidden tab, only over "available",
// and goes by itself; a status the person chose stays; a new session gets it again.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Availability, HIDDEN_AWAY_MS, IDLE_AWAY_MS } from '../../../web/js/status.js';

// The one DOM piece the class builds: the menu's options.
globalThis.Option ??= class {
  /** @param {string} text @param {string} value */
  constructor(text, value) {
    Object.assign(this, { text, value });
  }
};

/** An availability with a fake menu and clock; `sent` lists what went to the server. */
function make() {
  const clock = { now: 0 };
  const sent = [];
  const menu = { value: '', options: [], replaceChildren(...options) { this.options = options; }, addEventListener() {} };
  const availability = new Availability((status) => sent.push(status), /** @type {any} */ (menu), () => clock.now);
  return { availability, clock, sent, menu };
}

test('the menu offers the four statuses and starts at available', () => {
  const { menu } = make();
  assert.deepEqual(menu.options.map((o) => o.value), ['available', 'busy', 'away', 'do_not_disturb']);
  assert.equal(menu.value, 'available');
});

test('idle long enough: away by itself, and available again on the next input', () => {
  const { availability, clock, sent, menu } = make();
  clock.now = IDLE_AWAY_MS - 1;
  availability.check();
  assert.deepEqual(sent, [], 'not yet');
  clock.now = IDLE_AWAY_MS;
  availability.check();
  assert.deepEqual(sent, ['away']);
  assert.equal(menu.value, 'away');
  availability.check();
  assert.deepEqual(sent, ['away'], 'said once');
  availability.active();
  assert.deepEqual(sent, ['away', 'available']);
  assert.equal(availability.status, 'available');
});

test('a hidden tab: away after a minute, available when shown', () => {
  const { availability, clock, sent } = make();
  availability.lastInput = clock.now = 10_000;
  availability.hiddenSince = clock.now;
  clock.now += HIDDEN_AWAY_MS - 1;
  availability.check();
  assert.deepEqual(sent, []);
  clock.now += 1;
  availability.check();
  assert.deepEqual(sent, ['away']);
  availability.active();
  assert.deepEqual(sent, ['away', 'available']);
});

test('a chosen status is neither replaced by the automatic away nor lifted by input', () => {
  const { availability, clock, sent } = make();
  availability.choose('busy');
  clock.now = IDLE_AWAY_MS * 3;
  availability.check();
  availability.active();
  assert.deepEqual(sent, ['busy']);
  availability.choose('away');
  availability.active();
  assert.deepEqual(sent, ['busy', 'away'], 'an away one chose stays through input');
});

test('a new session, which the server starts as available, gets the chosen status again', () => {
  const { availability, sent } = make();
  availability.choose('do_not_disturb');
  availability.confirmed('do_not_disturb');
  assert.deepEqual(sent, ['do_not_disturb'], 'a resumed session kept it');
  availability.confirmed('available');
  assert.deepEqual(sent, ['do_not_disturb', 'do_not_disturb']);
});
