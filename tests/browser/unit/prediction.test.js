// The web client's prediction of its own avatar, under Node's test runner (no browser).
//
// The move cases come from the Rust move check (world-format/tests/move_cases.rs writes
// them; it fails if the committed file is stale), so the client's check and slide are
// held to exactly what the server accepts.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { LocalAvatar, SEND_INTERVAL_MS, SNAP_DISTANCE, SPEED, facingOf, keyDirection, slide } from '../../../web/js/prediction.js';
import { World } from '../../../web/js/world.js';

const cases = JSON.parse(readFileSync(new URL('../../../world-format/tests/data/move_cases.json', import.meta.url), 'utf8'));

/** The hand-drawn world of the Rust movement tests (orthogonal, 8 × 7). */
const moves = () => new World(cases.worlds.find((w) => w.name === 'moves').world);
const centre = (x, y) => ({ x: x * 256 + 128, y: y * 256 + 128 });

test('the generated cases cover both worlds', () => {
  assert.deepEqual(cases.worlds.map((w) => w.name), ['demo', 'moves']);
  for (const { cases: list } of cases.worlds) assert.ok(list.length >= 500);
});

for (const { name, world: file, cases: list } of cases.worlds) {
  test(`the client's move check says what the server's says on the ${name} world`, () => {
    const world = new World(file);
    for (const [fx, fy, tx, ty, reason] of list) {
      assert.equal(world.checkPath({ x: fx, y: fy }, { x: tx, y: ty }), reason, `(${fx}, ${fy}) → (${tx}, ${ty})`);
    }
  });

  test(`a predicted step ends where the server's check allows on the ${name} world`, () => {
    const world = new World(file);
    for (const [fx, fy, tx, ty, , ex, ey] of list) {
      const from = { x: fx, y: fy };
      const result = slide(world, from, { x: tx, y: ty });
      assert.deepEqual(result?.at ?? from, { x: ex, y: ey }, `(${fx}, ${fy}) → (${tx}, ${ty})`);
    }
  });

  test(`the client walks under the ${name} world's speed limit`, () => {
    assert.ok(SPEED < file.movement.max_speed);
  });
}

test('the keys give unit grid directions, turned on isometric maps', () => {
  assert.equal(keyDirection(new Set(), false), null);
  assert.deepEqual(keyDirection(new Set(['arrowright']), false), { x: 1, y: 0 });
  const down = /** @type {{x: number, y: number}} */ (keyDirection(new Set(['s']), true));
  assert.ok(Math.abs(down.x - down.y) < 1e-9 && Math.abs(Math.hypot(down.x, down.y) - 1) < 1e-9, 'screen down is south-east');
  assert.equal(facingOf(down.x, down.y), 'south_east');
  assert.equal(facingOf(0, -1), 'north');
});

test('walking into a wall slides along it and stops a walk', () => {
  const world = moves();
  const avatar = new LocalAvatar();
  // West of the thin wall on x = 5, heading north-east: east is walled, north is free.
  avatar.place({ ...centre(4, 3), facing: 'south', state: 'idle' });
  avatar.goal = { x: 0, y: 0 };
  const direction = { x: Math.SQRT1_2, y: -Math.SQRT1_2 };
  for (let i = 0; i < 10; i++) avatar.walk(world, direction, 0.05);
  assert.equal(avatar.state, 'walking');
  assert.equal(avatar.facing, 'north_east');
  assert.equal(avatar.goal, null, 'a refused step ends a click-to-walk');
  const at = avatar.position;
  assert.ok(at.x < 5 * 256 && at.x > centre(4, 3).x && at.y < centre(4, 3).y - 200, `slid north along the wall: ${JSON.stringify(at)}`);
  // Letting go of the keys: idle where we stand.
  avatar.walk(world, null, 0.05);
  assert.equal(avatar.state, 'idle');
});

test('a click-to-walk follows its path to the goal and stops there', () => {
  const world = moves();
  const avatar = new LocalAvatar();
  avatar.place({ ...centre(0, 0), facing: 'south', state: 'idle' });
  assert.equal(avatar.walkTo(world, 3, 3), true);
  for (let i = 0; i < 200 && avatar.path.length; i++) avatar.walk(world, null, 1 / 60);
  assert.deepEqual(avatar.position, centre(3, 3));
  assert.equal(avatar.goal, null);
  assert.equal(avatar.walkTo(world, 2, 1), false, 'a blocked tile cannot be walked to');
});

test('a near correction eases out of the drawn position; a far one or an admin move snaps', () => {
  const avatar = new LocalAvatar();
  avatar.place({ ...centre(3, 3), facing: 'south', state: 'idle' });
  avatar.position = { x: avatar.position.x + 100, y: avatar.position.y };
  avatar.correct({ reason: 'wall', position: centre(3, 3), facing: 'east', state: 'idle' }, 1000);
  assert.deepEqual(avatar.position, centre(3, 3));
  assert.deepEqual(avatar.drawn(), { x: centre(3, 3).x + 100, y: centre(3, 3).y });
  avatar.settle();
  avatar.settle();
  assert.ok(Math.abs(avatar.drawn().x - centre(3, 3).x) < 15, 'eased within two frames');
  assert.equal(avatar.corrections, 1);
  assert.equal(avatar.lastCorrection, 'wall');

  avatar.correct({ reason: 'blocked', position: { x: 256 * 6, y: 256 * 6 }, facing: 'east', state: 'idle' }, 2000);
  assert.ok(Math.hypot(256 * 6 - centre(3, 3).x, 256 * 6 - centre(3, 3).y) > SNAP_DISTANCE);
  assert.deepEqual(avatar.drawn(), { x: 256 * 6, y: 256 * 6 });
  avatar.position = { x: avatar.position.x + 10, y: avatar.position.y };
  avatar.correct({ reason: 'moved', position: centre(1, 1), facing: 'east', state: 'idle' }, 3000);
  assert.deepEqual(avatar.drawn(), centre(1, 1));
});

test('a correction resumes a click-to-walk unless it says trying again would not help', () => {
  const world = moves();
  const avatar = new LocalAvatar();
  avatar.place({ ...centre(0, 0), facing: 'south', state: 'idle' });
  avatar.walkTo(world, 3, 3);
  assert.deepEqual(avatar.correct({ reason: 'too_fast', position: centre(0, 0), facing: 'south', state: 'idle' }, 0), { x: 3, y: 3 });
  assert.deepEqual(avatar.path, []);
  avatar.walkTo(world, 3, 3);
  assert.equal(avatar.correct({ reason: 'zone_locked', position: centre(0, 0), facing: 'south', state: 'idle' }, 0), null);
  assert.equal(avatar.goal, null);
});

test('an admin move holds the avatar still until its correction or a deadline', () => {
  const avatar = new LocalAvatar();
  avatar.place({ ...centre(3, 3), facing: 'south', state: 'idle' });
  avatar.hold(5000);
  assert.equal(avatar.free(5500), false);
  assert.equal(avatar.free(6000), true, 'the deadline');
  avatar.hold(7000);
  avatar.correct({ reason: 'moved', position: centre(1, 1), facing: 'south', state: 'idle' }, 7100);
  assert.equal(avatar.free(7100), true, 'the correction');
});

test('moves are sent when something changed, at most fifteen times a second', () => {
  const avatar = new LocalAvatar();
  avatar.place({ ...centre(3, 3), facing: 'south', state: 'idle' });
  assert.equal(avatar.takeMove(1000), null, 'nothing changed');
  avatar.position = { x: avatar.position.x + 20, y: avatar.position.y };
  assert.deepEqual(avatar.takeMove(1000), { x: centre(3, 3).x + 20, y: centre(3, 3).y, facing: 'south', state: 'idle' });
  avatar.state = 'walking';
  assert.equal(avatar.takeMove(1000 + SEND_INTERVAL_MS - 1), null, 'too soon');
  assert.equal(avatar.takeMove(1000 + SEND_INTERVAL_MS)?.state, 'walking');
});

test('sitting needs a seat; pressing again stands up', () => {
  const world = moves();
  const avatar = new LocalAvatar();
  avatar.place({ ...centre(3, 3), facing: 'south', state: 'idle' });
  avatar.toggleSit(world);
  assert.equal(avatar.state, 'idle', 'no seat here');
  avatar.place({ ...centre(7, 1), facing: 'south', state: 'idle' });
  avatar.toggleSit(world);
  assert.deepEqual([avatar.state, avatar.facing], ['sitting', 'west']);
  avatar.toggleSit(world);
  assert.equal(avatar.state, 'idle');
});
