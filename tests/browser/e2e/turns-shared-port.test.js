// TURNS on a port shared with HTTPS, as on a network that opens only 443: Chromium loads
// its page over HTTPS from that port (passed through by isoplane-turn to the HTTPS server
// behind it) and then sends video between two peer connections relayed through the same
// port, with relay-only ICE and nothing but a `turns:` URL offered. The video must decode.

import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { X509Certificate, createHash, createHmac } from 'node:crypto';
import { mkdtempSync, readFileSync } from 'node:fs';
import { createServer as createHttpsServer } from 'node:https';
import { createServer as createTcpServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { BINARY, launchBrowser, until } from './harness.js';

const TURN_BINARY = process.env.ISOPLANE_TURN_BIN ?? join(BINARY, '..', 'isoplane-turn');
const SECRET = 'turns-shared-port-test';
const PAGE = '<!doctype html><title>through the shared port</title><p id="served">served over HTTPS behind the TURN port</p>';

/** A port free on 127.0.0.1 a moment ago. */
function freePort() {
  return new Promise((resolve) => {
    const probe = createTcpServer().listen(0, '127.0.0.1', () => {
      const { port } = /** @type {import('node:net').AddressInfo} */ (probe.address());
      probe.close(() => resolve(port));
    });
  });
}

/** A certificate for localhost and 127.0.0.1, made by the openssl CLI. */
function certificate(dir) {
  const [cert, key] = [join(dir, 'cert.pem'), join(dir, 'key.pem')];
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=localhost',
    '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1', '-keyout', key, '-out', cert], { stdio: 'ignore' });
  return { cert, key };
}

/** The base64 SHA-256 of a certificate's public key, as Chromium's SPKI allow-list takes it. */
function spkiHash(cert) {
  const der = new X509Certificate(readFileSync(cert)).publicKey.export({ type: 'spki', format: 'der' });
  return createHash('sha256').update(der).digest('base64');
}

/** Starts isoplane-turn with `env` and resolves once it says it is serving. */
function startTurn(env) {
  return new Promise((resolve, reject) => {
    const child = spawn(TURN_BINARY, [], { env: { ...process.env, RUST_LOG: 'info', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    const seen = (/** @type {Buffer} */ chunk) => {
      output += chunk;
      if (output.includes('isoplane-turn serving')) resolve(child);
    };
    child.stdout.on('data', seen);
    child.stderr.on('data', seen);
    child.on('error', reject);
    child.on('exit', (code) => reject(new Error(`isoplane-turn exited with ${code}:\n${output}`)));
  });
}

/** TURN REST credentials for `user`, valid for an hour. */
function credentials(user) {
  const username = `${Math.floor(Date.now() / 1000) + 3600}:${user}`;
  return { username, credential: createHmac('sha1', SECRET).update(username).digest('base64') };
}

const live = /** @type {{turn: import('node:child_process').ChildProcess, https: import('node:https').Server, browser: import('playwright-core').Browser, port: number}} */ ({});

before(async () => {
  const dir = mkdtempSync(join(tmpdir(), 'isoplane-turns-'));
  const backend = certificate(dir);
  live.https = createHttpsServer({ key: readFileSync(backend.key), cert: readFileSync(backend.cert), ALPNProtocols: ['http/1.1'] }, (_, response) => {
    response.setHeader('content-type', 'text/html');
    response.end(PAGE);
  });
  await new Promise((resolve) => live.https.listen(0, '127.0.0.1', () => resolve(undefined)));
  const backendPort = /** @type {import('node:net').AddressInfo} */ (live.https.address()).port;
  const turnCert = certificate(mkdtempSync(join(dir, 'turn-')));
  live.port = await freePort();
  live.turn = await startTurn({
    ISOPLANE_TURN_LISTEN_UDP: '127.0.0.1:0',
    ISOPLANE_TURN_LISTEN_TCP: 'off',
    ISOPLANE_TURN_LISTEN_HTTP: 'off',
    ISOPLANE_TURN_LISTEN_TLS: `127.0.0.1:${live.port}`,
    ISOPLANE_TURN_TLS_CERT: turnCert.cert,
    ISOPLANE_TURN_TLS_KEY: turnCert.key,
    ISOPLANE_TURN_TLS_HTTPS_BACKEND: `127.0.0.1:${backendPort}`,
    ISOPLANE_TURN_AUTH_SECRETS: SECRET,
    ISOPLANE_TURN_ALLOWED_PEERS: '127.0.0.1/32',
  });
  // Chromium checks a `turns:` server's certificate as it checks a site's: this one is
  // trusted by its key alone, so TURNS works only if the relay answers with its own
  // certificate (the page's, from the HTTPS server, is let through by the context).
  live.browser = await launchBrowser([`--ignore-certificate-errors-spki-list=${spkiHash(turnCert.cert)}`]);
});

after(async () => {
  await live.browser?.close();
  live.turn?.kill('SIGINT');
  live.https?.close();
});

test('one TLS port serves the page over HTTPS and relays video over TURNS, relay-only', async () => {
  const page = await (await live.browser.newContext({ ignoreHTTPSErrors: true })).newPage();
  const response = await page.goto(`https://127.0.0.1:${live.port}/`);
  assert.equal(response?.status(), 200);
  assert.match(await page.textContent('#served') ?? '', /served over HTTPS behind the TURN port/);

  const iceServers = [{ urls: `turns:127.0.0.1:${live.port}?transport=tcp`, ...credentials('chromium') }];
  await page.evaluate(async (servers) => {
    const config = { iceServers: servers, iceTransportPolicy: /** @type {RTCIceTransportPolicy} */ ('relay') };
    const [sender, receiver] = [new RTCPeerConnection(config), new RTCPeerConnection(config)];
    sender.onicecandidate = (e) => e.candidate && receiver.addIceCandidate(e.candidate);
    receiver.onicecandidate = (e) => e.candidate && sender.addIceCandidate(e.candidate);
    const video = document.createElement('video');
    video.muted = true;
    receiver.ontrack = (e) => {
      video.srcObject = e.streams[0];
      video.play();
    };
    const camera = await navigator.mediaDevices.getUserMedia({ video: { width: 320, height: 240 } });
    for (const track of camera.getTracks()) sender.addTrack(track, camera);
    await sender.setLocalDescription();
    await receiver.setRemoteDescription(/** @type {RTCSessionDescriptionInit} */ (sender.localDescription));
    await receiver.setLocalDescription();
    await sender.setRemoteDescription(/** @type {RTCSessionDescriptionInit} */ (receiver.localDescription));
    Object.assign(window, { relayTest: { sender, receiver, video } });
  }, iceServers);

  const seen = await until(page, async () => {
    const { receiver, video } = /** @type {any} */ (window).relayTest;
    const stats = [...(await receiver.getStats()).values()];
    const inbound = stats.find((s) => s.type === 'inbound-rtp' && s.kind === 'video');
    const pair = stats.find((s) => s.type === 'candidate-pair' && s.state === 'succeeded' && s.nominated);
    const local = pair && stats.find((s) => s.id === pair.localCandidateId);
    if (!inbound || inbound.framesDecoded < 30 || !local) return null;
    return { framesDecoded: inbound.framesDecoded, width: video.videoWidth, type: local.candidateType, relayProtocol: local.relayProtocol };
  }, undefined, 30000);
  assert.equal(seen.type, 'relay');
  assert.equal(seen.relayProtocol, 'tls', 'the relayed candidate reached TURN over TLS');
  assert.equal(seen.width, 320, 'the video decodes at the size sent');
  console.log(`video through turns: on the shared port: ${seen.framesDecoded} frames decoded`);
});
