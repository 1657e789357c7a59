// The web client's people features under Node: following (when to set off, when to stop),
// the map in words for screen readers, knock texts, the people search and walking to a
// zone of the demo world.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { conversationChanges, describeSurroundings, directionOnScreen } from '../../../web/js/announce.js';
import { CLOSE_ENOUGH, Follow, TOO_FAR } from '../../../web/js/follow.js';
import { knockClosedText, knockStatusText } from '../../../web/js/knock.js';
import { matches } from '../../../web/js/people.js';
import { findPath, zoneGoals } from '../../../web/js/walk.js';
import { World } from '../../../web/js/world.js';

const demo = () => new World(JSON.parse(readFileSync(new URL('../../../worlds/demo/world.json', import.meta.url), 'utf8')));
const at = (x, y) => ({ x: x * 256 + 128, y: y * 256 + 128 });

test('a follower sets off when the followed is too far, once per tile they reach, and stops when close', () => {
  const follow = new Follow(7, 'Bob');
  assert.equal(follow.next(at(2, 2), false), null, 'nowhere to go before their position is known');
  follow.moved(at(3, 2));
  assert.equal(follow.next(at(2, 2), false), null, 'one tile away: close enough');
  follow.moved(at(2 + TOO_FAR - 0.25, 2));
  assert.equal(follow.next(at(2, 2), false), null, 'standing still and within reach: stay');
  follow.moved(at(8, 2));
  assert.deepEqual(follow.next(at(2, 2), false), { x: 8, y: 2 }, 'too far: set off for their tile');
  assert.equal(follow.next(at(3, 2), true), null, 'already headed there');
  follow.moved({ x: 8 * 256 + 200, y: 2 * 256 + 128 });
  assert.equal(follow.next(at(4, 2), true), null, 'they moved within the same tile: the walk goes on');
  follow.moved(at(10, 3));
  assert.deepEqual(follow.next(at(5, 2), true), { x: 10, y: 3 }, 'they moved on: a new goal');
  assert.equal(follow.caughtUp(at(9, 3)), CLOSE_ENOUGH >= 1, 'one tile behind is close enough');
  assert.equal(follow.caughtUp(at(6, 3)), false);
  assert.equal(follow.next(at(6, 3), false), null, 'a goal tried (and found no way to) is not tried again until they move');
});

test('directions are said as on screen, north up', () => {
  const me = { x: 0, y: 0 };
  // Orthogonal: the grid is the screen.
  assert.equal(directionOnScreen(me, { x: 0, y: -5 }, false), 'north');
  assert.equal(directionOnScreen(me, { x: 5, y: 5 }, false), 'south-east');
  // Isometric: +x runs down-right, +y down-left, so -x-y is straight up and +x-y right.
  assert.equal(directionOnScreen(me, { x: -3, y: -3 }, true), 'north');
  assert.equal(directionOnScreen(me, { x: 3, y: -3 }, true), 'east');
  assert.equal(directionOnScreen(me, { x: 3, y: 0 }, true), 'south-east');
  assert.equal(directionOnScreen(me, { x: 0, y: 3 }, true), 'south-west');
});

test('the map in words names the place and the nearest people, nearest first', () => {
  const cafe = { name: 'Cafe', type: 'open' };
  assert.equal(describeSurroundings(null, at(0, 0), [], true), 'Joining the world…');
  assert.equal(describeSurroundings(cafe, at(2, 2), [], false), 'You are in Cafe (open area). Nobody else is here.');
  const text = describeSurroundings(cafe, at(2, 2), [
    { avatar: 1, name: 'Far', position: at(2, 9) },
    { avatar: 2, name: 'Near', position: at(4, 2), status: 'do_not_disturb' },
    { avatar: 3, name: 'Beside', position: at(2, 2) },
  ], false);
  assert.equal(text, 'You are in Cafe (open area). 3 other people are here. Nearest: Beside, right beside you; Near (do not disturb), 2 tiles east; Far, 7 tiles south.');
  const many = Array.from({ length: 9 }, (_, i) => ({ avatar: i, name: `P${i}`, position: at(3 + i, 2) }));
  assert.equal(describeSurroundings(cafe, at(2, 2), many, false).split(';').length, 5, 'five people named at most');
});

test('conversation changes say who joined and who left', () => {
  assert.deepEqual(conversationChanges(new Set([1, 2]), new Set([2, 3, 4])), { joined: [3, 4], left: [1] });
  assert.deepEqual(conversationChanges(new Set(), new Set()), { joined: [], left: [] });
});

test('knock texts say what happened and who did it', () => {
  assert.match(knockStatusText({ type: 'knock_status', zone: 'booth', state: 'waiting', knock: 1 }, 'Phone booth'), /knocked on Phone booth/);
  assert.equal(knockStatusText({ type: 'knock_status', zone: 'booth', state: 'admitted', by: 'Bob' }, 'Phone booth'), 'Bob let you into Phone booth.');
  assert.equal(knockStatusText({ type: 'knock_status', zone: 'booth', state: 'too_soon', retry_after_ms: 12001 }, 'Phone booth'),
    'You knocked on Phone booth a moment ago: try again in 13 s.');
  assert.equal(knockClosedText({ type: 'knock_closed', knock: 1, outcome: 'declined', by: 'Cy' }, 'Ada'), 'Cy did not let Ada in.');
  assert.equal(knockClosedText({ type: 'knock_closed', knock: 1, outcome: 'expired' }, 'Ada'), "Nobody answered Ada's knock.");
});

test('the people search matches every word against name, user, place and status', () => {
  const bob = { avatar: 1, user: 'u-bob', name: 'Bob Stone', zone: 'cafe', status: 'busy', position: at(1, 1), connected: true };
  assert.ok(matches(bob, '', 'Cafe'));
  assert.ok(matches(bob, 'bob', 'Cafe'));
  assert.ok(matches(bob, 'stone cafe', 'Cafe'));
  assert.ok(matches(bob, 'BUSY', 'Cafe'));
  assert.ok(!matches(bob, 'bob library', 'Cafe'));
  assert.ok(!matches(bob, 'ada', 'Cafe'));
});

test('walking to a zone goes to a walkable tile inside it, reachable from the lobby', () => {
  const world = demo();
  for (const zone of world.zones) {
    const goals = zoneGoals(world, zone);
    assert.ok(goals.length > 0, `${zone.id} has tiles to walk to`);
    for (const tile of goals) {
      assert.ok(world.isWalkable(tile.x, tile.y));
      if (zone.area) assert.equal(world.zoneAt(at(tile.x, tile.y)), zone, `${zone.id}: (${tile.x}, ${tile.y}) is inside`);
    }
    const reachable = goals.slice(0, 12).some((tile) => findPath(world, at(10, 7), tile) !== null);
    assert.ok(reachable, `a way from the entrance into ${zone.id}`);
  }
  const meeting = world.zones.find((z) => z.id === 'meeting');
  // Its middle row is the table (blocked): the nearest free tile beside it comes first.
  assert.deepEqual(zoneGoals(world, meeting)[0], { x: 3, y: 2 }, 'the meeting room: nearest its middle first');
});

test('walks planned from just off a tile centre, past blocked corners, are walked to the end at any frame rate', async () => {
  const { LocalAvatar } = await import('../../../web/js/prediction.js');
  const world = demo();
  let walks = 0;
  // Around the library's shelves ((21, 3) and (21, 4) are blocked) and the meeting room's table.
  for (const [sx, sy] of [[21, 2], [20, 2], [22, 5], [3, 2], [6, 4]]) {
    for (let off = -6; off <= 6; off++) {
      for (const dt of [1 / 60, 1 / 30, 1 / 24, 0.05, 0.1]) {
        for (const goal of [{ x: 15, y: 11 }, { x: 3, y: 11 }, { x: 21, y: 5 }, { x: 2, y: 5 }]) {
          const avatar = new LocalAvatar();
          avatar.place({ x: sx * 256 + 128 + off, y: sy * 256 + 128 - off, facing: 'south', state: 'idle' });
          if (!avatar.walkTo(world, goal.x, goal.y)) continue;
          walks++;
          for (let frame = 0; frame < 5000 && avatar.path.length; frame++) {
            const before = { ...avatar.position };
            avatar.walk(world, null, dt);
            assert.equal(world.checkPath(before, avatar.position), null, 'every step passes the move check');
          }
          assert.deepEqual(world.tileOf(avatar.position), goal, `from (${sx}, ${sy}) ${off} units off, ${dt} s frames: arrived`);
        }
      }
    }
  }
  assert.ok(walks > 1000, `${walks} walks`);
});
