// The connection test: can this browser reach the workspace's relay (TURN) over UDP, TCP
// and TLS, and what does that mean for calls? Run from the HUD's "Network" button; it uses the relay credentials of our current media plan, so it tests exactly
// what calls would use.
//
// Each relay address is tried on its own: a peer connection allowed only relay
// candidates (`iceTransportPolicy: "relay"`) gathers them, which needs a full TURN
// allocation (credentials checked, a relay port given). A relay candidate within the
// time limit means reachable.

import { h } from './dom.js';

/** How long one relay address may take to answer before it counts as unreachable. */
export const PROBE_TIMEOUT_MS = 6000;

/**
 * @typedef {{urls: string[], username?: string, credential?: string}} IceServer
 * @typedef {'udp' | 'tcp' | 'tls'} Transport
 * @typedef {{url: string, transport: Transport, ok: boolean, ms: number}} RelayResult
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
 * @param {RelayResult[]} results
 */
export function advice(results) {
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

/**
 * Tries one relay address: resolves when it gives a relay candidate, or after the time limit.
 * @param {{url: string, username?: string, credential?: string}} relay
 * @returns {Promise<{ok: boolean, ms: number}>}
 */
export function probeRelay(relay, timeout = PROBE_TIMEOUT_MS) {
  const started = performance.now();
  const pc = new RTCPeerConnection({
    iceServers: [{ urls: [relay.url], username: relay.username, credential: relay.credential }],
    iceTransportPolicy: 'relay',
  });
  pc.createDataChannel('probe');
  return new Promise((resolve) => {
    let done = false;
    const finish = (/** @type {boolean} */ ok) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      pc.close();
      resolve({ ok, ms: Math.round(performance.now() - started) });
    };
    const timer = setTimeout(() => finish(false), timeout);
    pc.onicecandidate = (event) => {
      if (!event.candidate) finish(false);
      else if (event.candidate.type === 'relay') finish(true);
    };
    pc.createOffer().then((offer) => pc.setLocalDescription(offer)).catch(() => finish(false));
  });
}

const TRANSPORT_NAMES = { udp: 'UDP', tcp: 'TCP', tls: 'TLS' };

export class ConnectionTest {
  /**
   * @param {HTMLElement} root the panel @param {HTMLButtonElement} toggle the HUD button that opens it
   * @param {{iceServers: () => IceServer[], sfu: () => string, announce: (text: string) => void}} context
   */
  constructor(root, toggle, context) {
    this.root = root;
    this.toggle = toggle;
    this.context = context;
    this.open = false;
    this.running = false;
    /** The last results, once a test ran. @type {RelayResult[] | null} */
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
    const relays = relayAddresses(this.context.iceServers());
    this.summary.textContent = relays.length ? 'Testing…' : '';
    this.list.replaceChildren(...relays.map((relay) => h('li', { 'data-transport': relay.transport }, `Relay over ${TRANSPORT_NAMES[relay.transport]} (${relay.url}): testing…`)));
    /** @type {RelayResult[]} */
    const results = [];
    // One at a time: each probe is a real allocation, and a burst of them says less.
    for (const [index, relay] of relays.entries()) {
      const { ok, ms } = await probeRelay(relay);
      results.push({ url: relay.url, transport: relay.transport, ok, ms });
      const item = /** @type {HTMLElement} */ (this.list.children[index]);
      item.dataset.ok = String(ok);
      item.textContent = `Relay over ${TRANSPORT_NAMES[relay.transport]} (${relay.url}): ${ok ? `reachable, ${ms} ms` : 'not reachable'}`;
    }
    this.list.append(h('li', { 'data-sfu': 'true' }, `Media server (SFU): ${this.context.sfu()}`));
    this.results = results;
    const words = advice(results);
    this.summary.replaceChildren(...words.map((line) => h('p', {}, line)));
    this.context.announce(words.join(' '));
    this.again.disabled = false;
    this.running = false;
  }
}
