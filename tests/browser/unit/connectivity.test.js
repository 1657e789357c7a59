// The connection test's reading of relay addresses and its advice in words.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { advice, keepCandidates, relayAddresses, turnTransport } from '../../../web/js/connectivity.js';

test('a TURN URL says its transport; STUN URLs are no relay', () => {
  assert.equal(turnTransport('turn:relay.example:3478?transport=udp'), 'udp');
  assert.equal(turnTransport('turn:relay.example:3478'), 'udp');
  assert.equal(turnTransport('TURN:relay.example:3478?transport=tcp'), 'tcp');
  assert.equal(turnTransport('turns:relay.example:443?transport=tcp'), 'tls');
  assert.equal(turnTransport('stun:relay.example:3478'), null);
});

test('every relay address of the plan is tried, with its credentials', () => {
  const servers = [
    { urls: ['stun:127.0.0.1:3478'] },
    { urls: ['turn:127.0.0.1:3478?transport=udp', 'turn:127.0.0.1:3478?transport=tcp'], username: '1700000000:ada', credential: 'c2VjcmV0' },
  ];
  assert.deepEqual(relayAddresses(servers).map((r) => [r.transport, r.username]), [['udp', '1700000000:ada'], ['tcp', '1700000000:ada']]);
});

test('the advice follows what was reachable', () => {
  const result = (transport, ok) => ({ url: `turn:x?transport=${transport}`, transport, ok, ms: 10 });
  const sfuFine = [result('udp', true), result('tcp', true)];
  assert.match(advice([result('udp', true), result('tcp', true)], sfuFine)[0], /^Calls work on this network/);
  assert.match(advice([result('udp', true)], sfuFine)[1], /^Crowded rooms work/);
  assert.match(advice([result('udp', false), result('tcp', true)], sfuFine)[0], /blocks UDP to the relay: calls go through it over TCP/);
  assert.match(advice([result('udp', false), result('tls', true)], sfuFine)[0], /over TLS/);
  const blocked = advice([result('udp', false), result('tcp', false)], sfuFine);
  assert.match(blocked[0], /blocks every way to the relay/);
  assert.match(blocked[1], /over TLS on port 443/);
  assert.match(advice([result('tls', false)], sfuFine)[1], /Even TLS to the relay is blocked/);
  assert.match(advice([], sfuFine)[0], /no relay \(TURN\) server/);
  assert.match(advice([], [result('udp', false), result('tcp', true)])[1], /UDP to the media server is blocked/);
  assert.match(advice([], [result('udp', false), result('tcp', false)])[1], /media server cannot be reached/);
  assert.match(advice([], null)[1], /no media server/);
});

test('a session description keeps only the candidates of one transport', () => {
  const sdp = [
    'v=0', 'm=audio 9 UDP/TLS/RTP/SAVPF 111',
    'a=candidate:1 1 udp 2130706431 127.0.0.1 7882 typ host',
    'a=candidate:2 1 TCP 1518280447 127.0.0.1 7881 typ host tcptype passive',
    'a=end-of-candidates', '',
  ].join('\r\n');
  assert.deepEqual(keepCandidates(sdp, 'tcp').split('\r\n').filter((l) => l.startsWith('a=candidate')), ['a=candidate:2 1 TCP 1518280447 127.0.0.1 7881 typ host tcptype passive']);
  assert.deepEqual(keepCandidates(sdp, 'udp').split('\r\n').filter((l) => l.startsWith('a=candidate')), ['a=candidate:1 1 udp 2130706431 127.0.0.1 7882 typ host']);
  assert.ok(keepCandidates(sdp, 'udp').includes('a=end-of-candidates'));
});
