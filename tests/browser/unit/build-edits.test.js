import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { EditSession, applyEdit, copyWorld, freshId, gidOf, rectBetween } from '../../../web/js/build-edits.js';

const demo = JSON.parse(readFileSync(new URL('../../../worlds/demo/world.json', import.meta.url), 'utf8'));
const tiles = demo.tilesets[0].image;

test('blocking, heights and tiles change only their tile', () => {
  const file = copyWorld(demo);
  applyEdit(file, { type: 'block', x: 3, y: 7, blocked: true });
  assert.equal(file.collision.rows[7][3], '#');
  assert.equal(file.collision.rows[7].length, demo.grid.width);
  assert.deepEqual(file.collision.rows.filter((r, y) => r !== demo.collision.rows[y]).length, 1);
  applyEdit(file, { type: 'height', x: 5, y: 9, level: 1 });
  assert.equal(file.collision.heights[9][5], '1');
  applyEdit(file, { type: 'tile', layer: demo.layers[0].name, x: 2, y: 2, picture: { image: tiles, index: 3 } });
  assert.equal(file.layers[0].tiles[2 * demo.grid.width + 2], demo.tilesets[0].first_gid + 3);
  applyEdit(file, { type: 'tile', layer: demo.layers[0].name, x: 2, y: 2, picture: null });
  assert.equal(file.layers[0].tiles[2 * demo.grid.width + 2], 0);
  assert.throws(() => applyEdit(file, { type: 'block', x: 99, y: 0, blocked: true }), /outside the grid/);
});

test('walls are kept as runs along grid lines, whatever order their edges come in', () => {
  const file = copyWorld(demo);
  file.collision.walls = [];
  for (const x of [4, 2, 3]) applyEdit(file, { type: 'wall', edge: { x, y: 5, side: 'north' }, on: true });
  applyEdit(file, { type: 'wall', edge: { x: 7, y: 1, side: 'west' }, on: true });
  applyEdit(file, { type: 'wall', edge: { x: 7, y: 2, side: 'west' }, on: true });
  assert.deepEqual(file.collision.walls, [{ from: [2, 5], to: [5, 5] }, { from: [7, 1], to: [7, 3] }]);
  // Taking the middle edge out splits the run.
  applyEdit(file, { type: 'wall', edge: { x: 3, y: 5, side: 'north' }, on: false });
  assert.deepEqual(file.collision.walls, [{ from: [2, 5], to: [3, 5] }, { from: [4, 5], to: [5, 5] }, { from: [7, 1], to: [7, 3] }]);
});

test('zones, objects and spawn points are put and removed by ID; a removed door is still named where it was', () => {
  const file = copyWorld(demo);
  const door = file.objects.find((o) => o.kind === 'door');
  const zone = file.zones.find((z) => (z.entry_via ?? []).includes(door.id));
  assert.ok(zone, 'the demo has a door-only zone');
  applyEdit(file, { type: 'remove-object', id: door.id });
  assert.ok(!file.objects.some((o) => o.id === door.id));
  // The zone still names it: the check reports that, rather than the zone losing its door.
  assert.deepEqual(file.zones.find((z) => z.id === zone.id).entry_via, [door.id]);
  applyEdit(file, { type: 'zone', zone: { id: 'nook', name: 'Nook', type: 'silent', area: [rectBetween({ x: 9, y: 12 }, { x: 8, y: 11 })] } });
  assert.deepEqual(file.zones.at(-1).area, [{ x: 8, y: 11, w: 2, h: 2 }]);
  applyEdit(file, { type: 'zone', zone: { id: 'nook', name: 'Quiet nook', type: 'silent', area: [{ x: 8, y: 11, w: 1, h: 1 }] } });
  assert.equal(file.zones.filter((z) => z.id === 'nook').length, 1);
  assert.equal(file.zones.at(-1).name, 'Quiet nook');
  assert.throws(() => applyEdit(file, { type: 'remove-zone', id: 'nowhere' }), /no zone "nowhere"/);
  assert.equal(freshId('zone', ['zone-1', 'zone-3']), 'zone-2');
});

test('a new tileset takes the next free GIDs and a unique name; pictures resolve through it', () => {
  const file = copyWorld(demo);
  const set = { name: demo.tilesets[0].name, image: `sha256-${'ab'.repeat(32)}`, image_width: 128, image_height: 64, tile_width: 64, tile_height: 64, columns: 2, tile_count: 2, first_gid: 1 };
  applyEdit(file, { type: 'tileset', tileset: set });
  const added = file.tilesets.at(-1);
  assert.equal(added.first_gid, demo.tilesets[0].first_gid + demo.tilesets[0].tile_count);
  assert.notEqual(added.name, demo.tilesets[0].name);
  assert.equal(gidOf(file, { image: set.image, index: 1 }), added.first_gid + 1);
});

test('undo and redo step through the edits; a new edit forgets what was undone', () => {
  const session = new EditSession(demo, 4);
  session.apply({ type: 'block', x: 3, y: 7, blocked: true });
  session.apply({ type: 'block', x: 4, y: 7, blocked: true });
  assert.equal(session.file.collision.rows[7].slice(3, 5), '##');
  session.undo();
  assert.equal(session.file.collision.rows[7].slice(3, 5), '#.');
  session.undo();
  assert.equal(session.file.collision.rows[7], demo.collision.rows[7]);
  assert.equal(session.undo(), null);
  session.redo();
  assert.equal(session.file.collision.rows[7][3], '#');
  session.apply({ type: 'height', x: 1, y: 1, level: 1 });
  assert.equal(session.redo(), null);
  assert.equal(session.base.collision.rows[7], demo.collision.rows[7], 'the base is never changed');
});

test('a rebase replays our edits on the newer version and reports those that no longer apply', () => {
  const session = new EditSession(demo, 4);
  session.apply({ type: 'block', x: 3, y: 7, blocked: true });
  session.apply({ type: 'remove-zone', id: 'cafe' });
  // Meanwhile someone else removed the cafe and painted a tile.
  const theirs = copyWorld(demo);
  theirs.zones = theirs.zones.filter((z) => z.id !== 'cafe');
  theirs.collision.rows[9] = `#${theirs.collision.rows[9].slice(1)}`;
  const skipped = session.rebase(theirs, 5);
  assert.equal(session.baseVersion, 5);
  assert.deepEqual(skipped.map((s) => s.edit.type), ['remove-zone']);
  assert.match(skipped[0].why, /no zone "cafe"/);
  assert.equal(session.file.collision.rows[7][3], '#', 'ours');
  assert.equal(session.file.collision.rows[9][0], '#', 'theirs');
  assert.equal(session.edits.length, 1);
  session.published(6);
  assert.equal(session.changed, false);
  assert.equal(session.base.collision.rows[7][3], '#');
});
