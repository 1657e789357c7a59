// The video grid's arithmetic under Node: its shape for a number of people, and which
// tiles a page shows (with a pinned one on every page).

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { GRID_PAGE, gridShape, pageOf, UNDER_PIN } from '../../../web/js/layout.js';

test('the grid is as square as it gets, never taller than wide', () => {
  assert.deepEqual(gridShape(0), { columns: 1, rows: 1 });
  assert.deepEqual(gridShape(1), { columns: 1, rows: 1 });
  assert.deepEqual(gridShape(2), { columns: 2, rows: 1 });
  assert.deepEqual(gridShape(4), { columns: 2, rows: 2 });
  assert.deepEqual(gridShape(5), { columns: 3, rows: 2 });
  assert.deepEqual(gridShape(9), { columns: 3, rows: 3 });
  for (let n = 1; n <= 30; n++) {
    const { columns, rows } = gridShape(n);
    assert.ok(columns * rows >= n && columns >= rows && columns * (rows - 1) < n, `${n} tiles`);
  }
});

test('pages hold a page each; the last page holds the rest; a page past the end shows the last', () => {
  const tiles = Array.from({ length: 20 }, (_, i) => i);
  assert.deepEqual(pageOf(tiles, null, 0, GRID_PAGE), { shown: [0, 1, 2, 3, 4, 5, 6, 7, 8], page: 0, pages: 3 });
  assert.deepEqual(pageOf(tiles, null, 2, GRID_PAGE).shown, [18, 19]);
  assert.equal(pageOf(tiles, null, 7, GRID_PAGE).page, 2);
  assert.equal(pageOf(tiles, null, -1, GRID_PAGE).page, 0);
  assert.deepEqual(pageOf([], null, 0, GRID_PAGE), { shown: [], page: 0, pages: 1 });
});

test('a pinned tile is on every page, with a few others under it', () => {
  const tiles = Array.from({ length: 10 }, (_, i) => i);
  const first = pageOf(tiles, 7, 0, GRID_PAGE);
  assert.deepEqual(first.shown, [7, 0, 1, 2, 3]);
  assert.equal(first.pages, Math.ceil(9 / UNDER_PIN));
  assert.deepEqual(pageOf(tiles, 7, 2, GRID_PAGE).shown, [7, 9]);
  // Every other tile appears on exactly one page.
  const seen = [];
  for (let page = 0; page < first.pages; page++) seen.push(...pageOf(tiles, 7, page, GRID_PAGE).shown.slice(1));
  assert.deepEqual(seen.sort((a, b) => a - b), [0, 1, 2, 3, 4, 5, 6, 8, 9]);
});
