// Which pages the web client shows beside the map: origins compared as the browser does
// (and as signaling's check and the world format's do), the allow-list enforced, and
// the websites under a tile found.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { embedVerdict, originOf, websitesAt } from '../../../web/js/websites.js';

test('an origin is lower case, without the default port, path or query', () => {
  assert.equal(originOf('https://Board.Example.com/r/abc?x=1#top'), 'https://board.example.com');
  assert.equal(originOf('HTTP://127.0.0.1:80/'), 'http://127.0.0.1');
  assert.equal(originOf('http://127.0.0.1:8080'), 'http://127.0.0.1:8080');
  assert.equal(originOf('https://[::1]:8443/x'), 'https://[::1]:8443');
  assert.equal(originOf('https://docs.example.org:443'), 'https://docs.example.org');
});

test('addresses that are no http(s) page, or carry a user name, have no origin to embed', () => {
  for (const url of ['javascript:alert(1)', 'data:text/html,hi', 'ftp://example.com/', 'https://evil.example@good.example/', 'not a url', '']) {
    assert.equal(originOf(url), null, url);
  }
});

test('only pages of allowed origins, and never our own, may be shown', () => {
  const allowed = ['https://board.example.com', 'http://127.0.0.1:9000'];
  const own = 'http://127.0.0.1:8080';
  assert.equal(embedVerdict('https://board.example.com/r/1', allowed, own).ok, true);
  assert.equal(embedVerdict('http://127.0.0.1:9000/board.html', allowed, own).ok, true);
  const other = embedVerdict('https://board.example.com.evil.example/', allowed, own);
  assert.equal(other.ok, false);
  assert.match(other.why, /board\.example\.com\.evil\.example is not on this workspace's list/);
  assert.equal(embedVerdict('http://board.example.com/', allowed, own).ok, false, 'http is another origin than https');
  assert.match(embedVerdict('http://127.0.0.1:8080/web/index.html', [...allowed, own], own).why, /own pages/);
  assert.match(embedVerdict('javascript:alert(1)', allowed, own).why, /not a web page address/);
});

test('the websites under a tile are those whose area holds it, in world order', () => {
  const sites = [
    { id: 'board', name: 'Board', url: 'https://b.example/', area: [{ x: 2, y: 2, w: 2, h: 1 }] },
    { id: 'pad', name: 'Pad', url: 'https://p.example/', area: [{ x: 0, y: 0, w: 1, h: 1 }, { x: 3, y: 2, w: 1, h: 3 }], trigger: 'action' },
  ];
  assert.deepEqual(websitesAt(sites, 2, 2).map((s) => s.id), ['board']);
  assert.deepEqual(websitesAt(sites, 3, 2).map((s) => s.id), ['board', 'pad']);
  assert.deepEqual(websitesAt(sites, 3, 4).map((s) => s.id), ['pad']);
  assert.deepEqual(websitesAt(sites, 4, 2).map((s) => s.id), []);
  assert.deepEqual(websitesAt(sites, 0, 0).map((s) => s.id), ['pad']);
});
