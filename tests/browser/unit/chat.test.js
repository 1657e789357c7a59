// Chat text under Node: addresses become links, everything else stays text.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { linkParts, partnerOf } from '../../../web/js/chat.js';

test('http(s) addresses become links; markup stays text', () => {
  assert.deepEqual(linkParts('plain'), [{ text: 'plain' }]);
  assert.deepEqual(linkParts('see https://example.org/a?b=1.'), [
    { text: 'see ' }, { text: 'https://example.org/a?b=1', href: 'https://example.org/a?b=1' }, { text: '.' },
  ]);
  assert.deepEqual(linkParts('<img src=x onerror=alert(1)>'), [{ text: '<img src=x onerror=alert(1)>' }]);
  assert.deepEqual(linkParts('javascript:alert(1) and (http://a.b)'), [
    { text: 'javascript:alert(1) and (' }, { text: 'http://a.b', href: 'http://a.b' }, { text: ')' },
  ]);
  assert.equal(linkParts('x https://a.b y http://c.d').filter((p) => p.href).length, 2);
});

test('a direct message is with whoever is not us', () => {
  const message = { id: 'c-1', scope: 'direct', from: { user: 'ada', name: 'Ada' }, to: { user: 'bob', name: 'Bob' }, text: 'hi', at: 0 };
  assert.equal(partnerOf(message, 'ada').user, 'bob');
  assert.equal(partnerOf(message, 'bob').user, 'ada');
});
