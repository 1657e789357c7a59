// The connection test: can this browser reach the workspace's relay (TURN) over UDP, TCP
// and TLS, and its media server (SFU) over UDP and TCP, and what does that mean for
// calls? Run from the HUD's "Network" button; it uses the relay credentials of our
// current media plan and the SFU node of our zone, so it tests what calls would use.
//
// Each relay address is tried on its own: a peer connection allowed only relay
// candidates (`iceTransportPolicy: "relay"`) gathers them, which needs a full TURN
// allocation (credentials checked, a relay port given). A relay candidate within the
// time limit means reachable. The SFU is tried in a room of our own (signaling hands out
// a short token, `probe_sfu`): a session whose answer keeps only the UDP candidates, then
// one with only the TCP ones; a connected session means reachable.

import { h } from './dom.js';

/** How long one relay address may take to answer before it counts as unreachable. */
export const PROBE_TIMEOUT_MS = 6000;

/**
 * @typedef {{urls: string[], username?: string, credential?: string}} IceServer
 * @typedef {'udp' | 'tcp' | 'tls'} Transport
 * @typedef {{url: string, transport: Transport, ok: boolean, ms: number}} RelayResult
 * @typedef {{url: string, room: string, token: string}} SfuAccess
 */

/** The transport a `turn:` / `turns:` URL asks for; null for other URLs (STUN). @param {string} url @returns {Transport | null} */
export function turnTransport(url) {
  const lower = url.toLowerCase();
  if (lower.startsWith('turns:')) return 'tls';
  if (!lower.startsWith('turn:')) return null;
  return /[?&]transport=tcp\b/.test(lower) ? 'tcp' : 'udp';
}

/** Every relay address of the plan's ICE servers, with the credentials it needs. @param {IceServer[]} servers */
export function relayAddresses(servers) {
  return servers.flatMap((server) => server.urls.flatMap((url) => {
    const transport = turnTransport(url);
    return transport ? [{ url, transport, username: server.username, credential: server.credential }] : [];
  }));
}

/**
 * What the results mean for calls, in words, most important first.
 * @param {RelayResult[]} relays @param {RelayResult[] | null} sfu the SFU's results; null when there is no SFU
 */
export function advice(relays, sfu) {
  return [...relayAdvice(relays), ...sfuAdvice(sfu)];
}

/** @param {RelayResult[]} results */
function relayAdvice(results) {
  if (!results.length) {
    return ['This workspace has no relay (TURN) server: calls work only where browsers can reach each other directly.'];
  }
  const works = (/** @type {Transport} */ t) => results.some((r) => r.transport === t && r.ok);
  const offered = (/** @type {Transport} */ t) => results.some((r) => r.transport === t);
  if (works('udp')) return ['Calls work on this network: directly, or through the relay where a direct path fails.'];
  if (works('tcp') || works('tls')) {
    const over = works('tls') && !works('tcp') ? 'TLS' : 'TCP';
    return [`This network blocks UDP to the relay: calls go through it over ${over}, which works but adds some delay.`];
  }
  const lines = ['This network blocks every way to the relay: calls work only with people your browser can reach directly.'];
  if (!offered('tls')) lines.push('Ask your admin to offer the relay over TLS on port 443 (turns:), which passes most firewalls.');
  else lines.push('Even TLS to the relay is blocked: try another network, or ask your admin whether a proxy sits in the way.');
  return lines;
}

/** @param {RelayResult[] | null} results */
function sfuAdvice(results) {
  if (!results) return ['This workspace has no media server (SFU): every room stays peer to peer.'];
  const works = (/** @type {Transport} */ t) => results.some((r) => r.transport === t && r.ok);
  if (works('udp')) return ['Crowded rooms work: the media server answers over UDP.'];
  if (works('tcp')) return ['UDP to the media server is blocked: in crowded rooms media goes to it over TCP, which works with a little more delay.'];
  return ['The media server cannot be reached from this network: in crowded rooms you may not hear or see others. Ask your admin to open its ports (UDP, or at least TCP).'];
}

/**
 * Keeps only the ICE candidates of one transport in a session description, to try that
 * transport alone.
 * @param {string} sdp @param {'udp' | 'tcp'} protocol
 */
export function keepCandidates(sdp, protocol) {
  return sdp.split('\r\n').filter((line) => {
    const candidate = line.match(/^a=candidate:\S+ \d+ (\S+) /);
    return !candidate || candidate[1].toLowerCase() === protocol;
  }).join('\r\n');
}

/**
 * Tries the SFU over one transport, in the probe's own room: resolves when the session
 * connects, or after the time limit.
 * @param {SfuAccess} access @param {'udp' | 'tcp'} protocol
 * @returns {Promise<{ok: boolean, ms: number}>}
 */
export function probeSfu(access, protocol, timeout = PROBE_TIMEOUT_MS) {
  const pc = new RTCPeerConnection();
  pc.createDataChannel('probe');
  pc.addTransceiver('audio', { direction: 'recvonly' });
  const ws = new WebSocket(access.url);
  const send = (/** @type {any} */ message) => ws.readyState === WebSocket.OPEN && ws.send(JSON.stringify(message));
  const { finish, settled } = outcome(timeout, () => {
    send({ type: 'leave' });
    ws.close();
    pc.close();
  });
  pc.onconnectionstatechange = () => {
    if (pc.connectionState === 'connected') finish(true);
    if (pc.connectionState === 'failed') finish(false);
  };
  ws.onopen = () => send({ type: 'join', token: access.token });
  ws.onclose = () => finish(false);
  ws.onmessage = async (event) => {
    const message = JSON.parse(event.data);
    try {
      if (message.type === 'joined') {
        await pc.setLocalDescription(await pc.createOffer());
        send({ type: 'offer', id: 1, sdp: pc.localDescription?.sdp, sources: {} });
      } else if (message.type === 'answer' && message.id === 1) {
        await pc.setRemoteDescription({ type: 'answer', sdp: keepCandidates(message.sdp, protocol) });
      } else if (message.type === 'error' && message.fatal) {
        finish(false);
      }
    } catch {
      finish(false);
    }
  };
  return settled;
}

/**
 * Tries one relay address: resolves when it gives a relay candidate, or after the time limit.
 * @param {{url: string, username?: string, credential?: string}} relay
 * @returns {Promise<{ok: boolean, ms: number}>}
 */
export function probeRelay(relay, timeout = PROBE_TIMEOUT_MS) {
  const pc = new RTCPeerConnection({
    iceServers: [{ urls: [relay.url], username: relay.username, credential: relay.credential }],
    iceTransportPolicy: 'relay',
  });
  pc.createDataChannel('probe');
  const { finish, settled } = outcome(timeout, () => pc.close());
  pc.onicecandidate = (event) => {
    if (!event.candidate) finish(false);
    else if (event.candidate.type === 'relay') finish(true);
  };
  pc.createOffer().then((offer) => pc.setLocalDescription(offer)).catch(() => finish(false));
  return settled;
}

/**
 * A probe's outcome, settled once: by `finish(ok)` or, failed, by the time limit; then
 * `cleanup` runs.
 * @param {number} timeout @param {() => void} cleanup
 */
function outcome(timeout, cleanup) {
  const started = performance.now();
  let done = false;
  /** @type {(result: {ok: boolean, ms: number}) => void} */
  let resolve = () => {};
  /** @type {Promise<{ok: boolean, ms: number}>} */
  const settled = new Promise((r) => { resolve = r; });
  const finish = (/** @type {boolean} */ ok) => {
    if (done) return;
    done = true;
    clearTimeout(timer);
    cleanup();
    resolve({ ok, ms: Math.round(performance.now() - started) });
  };
  const timer = setTimeout(() => finish(false), timeout);
  return { finish, settled };
}

const TRANSPORT_NAMES = { udp: 'UDP', tcp: 'TCP', tls: 'TLS' };

export class ConnectionTest {
  /**
   * @param {HTMLElement} root the panel @param {HTMLButtonElement} toggle the HUD button that opens it
   * @param {{iceServers: () => IceServer[], probeSfu: () => Promise<SfuAccess | null>, announce: (text: string) => void}} context
   */
  constructor(root, toggle, context) {
    this.root = root;
    this.toggle = toggle;
    this.context = context;
    this.open = false;
    this.running = false;
    /** The last results, once a test ran: the relay's, and the SFU's (null: no SFU). @type {{relays: RelayResult[], sfu: RelayResult[] | null} | null} */
    this.results = null;
    this.list = h('ul', { class: 'connection-results' });
    this.summary = h('div', { class: 'connection-advice', role: 'status' });
    this.again = h('button', { type: 'button', onclick: () => this.run() }, 'Test again');
    root.append(
      h('header', {}, h('h2', { id: 'connection-title' }, 'Connection test'),
        h('button', { type: 'button', class: 'close', 'aria-label': 'Close the connection test', onclick: () => this.setOpen(false) }, '×')),
      this.summary, this.list, h('div', { class: 'bar' }, this.again));
    toggle.addEventListener('click', () => this.setOpen(!this.open));
    root.addEventListener('keydown', (e) => {
      if (e.key !== 'Escape') return;
      // Closing this panel is all Escape does here.
      e.stopPropagation();
      this.setOpen(false);
    });
  }

  /** @param {boolean} open */
  setOpen(open) {
    const wasOpen = this.open;
    this.open = open;
    this.root.hidden = !open;
    this.toggle.setAttribute('aria-expanded', String(open));
    if (open && !wasOpen) {
      this.again.focus();
      this.run();
    } else if (!open && wasOpen && this.root.contains(document.activeElement)) {
      this.toggle.focus();
    }
  }

  async run() {
    if (this.running) return;
    this.running = true;
    this.again.disabled = true;
    this.summary.textContent = 'Testing…';
    const relays = relayAddresses(this.context.iceServers());
    this.list.replaceChildren();
    /** @type {RelayResult[]} */
    const relayResults = [];
    // One at a time: each probe is a real allocation or session, and a burst says less.
    for (const relay of relays) {
      const item = this.line(`Relay over ${TRANSPORT_NAMES[relay.transport]} (${relay.url})`);
      const { ok, ms } = await probeRelay(relay);
      relayResults.push({ url: relay.url, transport: relay.transport, ok, ms });
      this.settle(item, ok, ms);
    }
    const access = await this.context.probeSfu();
    /** @type {RelayResult[] | null} */
    let sfuResults = null;
    if (access) {
      sfuResults = [];
      for (const protocol of /** @type {const} */ (['udp', 'tcp'])) {
        const item = this.line(`Media server over ${TRANSPORT_NAMES[protocol]} (${access.url})`);
        const { ok, ms } = await probeSfu(access, protocol);
        sfuResults.push({ url: access.url, transport: protocol, ok, ms });
        this.settle(item, ok, ms);
      }
    }
    this.results = { relays: relayResults, sfu: sfuResults };
    const words = advice(relayResults, sfuResults);
    this.summary.replaceChildren(...words.map((line) => h('p', {}, line)));
    this.context.announce(words.join(' '));
    this.again.disabled = false;
    this.running = false;
  }

  /** A line of the list, while its test runs. @param {string} what */
  line(what) {
    const item = h('li', { 'data-what': what }, `${what}: testing…`);
    this.list.append(item);
    return item;
  }

  /** @param {HTMLElement} item @param {boolean} ok @param {number} ms */
  settle(item, ok, ms) {
    item.dataset.ok = String(ok);
    item.textContent = `${item.dataset.what}: ${ok ? `reachable, ${ms} ms` : 'not reachable'}`;
  }
}
