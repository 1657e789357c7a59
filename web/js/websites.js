// Web pages beside the map: a whiteboard, a document, a dashboard.
//
// A world's websites (world file, `websites`) open as the avatar steps onto their area
// (`trigger: "enter"`), or are offered there with a button and the Space key
// (`"action"`); they close on stepping off. In a meeting room someone may open a page for
// everyone inside (`share_page` → `page_shared`), and whoever comes in later finds it in
// the room's snapshot. Each person may close any page on their own screen.
//
// Only pages whose origin is on the workspace's allow-list (`embed_origins`, told in
// `welcome`) are loaded, in a sandboxed frame without camera, microphone or our cookies'
// origin; any other page is refused with a message and never loaded. The page served at
// `/` carries the same list as its Content-Security-Policy `frame-src`, so the browser
// refuses other frames even if this check were wrong.

import { h } from './dom.js';

/**
 * @typedef {{id: string, name: string, url: string, area: {x: number, y: number, w?: number, h?: number}[], trigger?: 'enter' | 'action'}} Website
 * @typedef {{url: string, by: number, name: string}} SharedPage
 * @typedef {{url: string, title: string, website?: string, shared?: SharedPage}} OpenPage
 */

/** What an embedded page may do: run, submit forms and open its own links in new tabs. */
export const SANDBOX = 'allow-scripts allow-same-origin allow-forms allow-popups allow-popups-to-escape-sandbox allow-downloads';

/**
 * The origin of an http(s) URL as the browser compares them, or null for a URL that may
 * not be embedded (another scheme, a user name or password in it, not a URL at all).
 * @param {string} url
 */
export function originOf(url) {
  let parsed;
  try {
    parsed = new URL(url);
  } catch {
    return null;
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') return null;
  if (parsed.username || parsed.password) return null;
  return parsed.origin;
}

/**
 * Whether a page may be embedded here, and if not, why (in words for people).
 * @param {string} url @param {string[]} allowed the workspace's origins @param {string} own this page's origin
 */
export function embedVerdict(url, allowed, own) {
  const origin = originOf(url);
  if (!origin) return { ok: false, why: 'This is not a web page address Isoplane can show.' };
  if (origin === own) return { ok: false, why: "Isoplane's own pages cannot be shown beside the map." };
  if (!allowed.includes(origin)) {
    return { ok: false, why: `${origin} is not on this workspace's list of sites that may be shown here. An admin can add it (embed_origins).` };
  }
  return { ok: true, why: '' };
}

/**
 * The websites whose area holds tile (x, y), in world order.
 * @param {Website[]} websites @param {number} x @param {number} y
 */
export function websitesAt(websites, x, y) {
  return websites.filter((site) => site.area.some((r) => x >= r.x && y >= r.y && x < r.x + (r.w ?? 1) && y < r.y + (r.h ?? 1)));
}

export class Websites {
  /**
   * @param {HTMLElement} root the panel the page opens in
   * @param {HTMLElement} offer where a website that opens on request is offered
   * @param {{share: (url: string | null) => void, canShare: () => boolean, announce: (text: string) => void, changed: () => void}} on
   */
  constructor(root, offer, on) {
    this.root = root;
    this.offerLine = offer;
    this.on = on;
    /** @type {string[]} */
    this.allowed = [];
    /** The world's websites, to name a shared page that is one of them. @type {Website[]} */
    this.sites = [];
    this.own = location.origin;
    /** The page shown, if any. @type {OpenPage | null} */
    this.page = null;
    /** The page open for everyone in our zone, if any. @type {SharedPage | null} */
    this.zonePage = null;
    /** IDs of the websites under us, as last seen (a change of tile that changes nothing costs nothing). */
    this.here = '';
    /** Websites under us that open on request. @type {Website[]} */
    this.offered = [];
    /** Websites closed by hand while we still stand on them: not opened again until we step off. @type {Set<string>} */
    this.dismissed = new Set();
    /** The refusal shown for a page, if it was refused. */
    this.refusal = '';
    this.title = h('h2', { id: 'website-title' });
    this.source = h('p', { class: 'website-source' });
    this.shareButton = h('button', { type: 'button', 'data-action': 'share', onclick: () => this.shareShown() }, 'Open for everyone here');
    this.stopButton = h('button', { type: 'button', 'data-action': 'stop', onclick: () => this.on.share(null) }, 'Close for everyone');
    this.body = h('div', { class: 'website-body' });
    root.append(
      h('header', {}, this.title,
        h('button', { type: 'button', class: 'close', 'aria-label': 'Close the page', onclick: () => this.close() }, '×')),
      h('div', { class: 'bar' }, this.source, h('span', { class: 'group' }, this.shareButton, this.stopButton)),
      this.body);
    root.addEventListener('keydown', (e) => {
      if (e.key !== 'Escape') return;
      // Closing the page is all Escape does here.
      e.stopPropagation();
      this.close();
    });
  }

  /** @param {string[]} origins the workspace's allow-list */
  setAllowed(origins) {
    this.allowed = origins;
  }

  /**
   * The websites under our avatar now (called every frame: only a change does work).
   * @param {Website[]} sites
   */
  standingOn(sites) {
    const here = sites.map((s) => s.id).join(' ');
    if (here === this.here) return;
    this.here = here;
    for (const id of this.dismissed) if (!sites.some((s) => s.id === id)) this.dismissed.delete(id);
    // Stepping off a world's website closes it (a page shared with the zone stays).
    if (this.page?.website && !sites.some((s) => s.id === this.page?.website)) this.close(false);
    this.offered = sites.filter((s) => s.trigger === 'action' && !this.dismissed.has(s.id));
    const entered = sites.find((s) => (s.trigger ?? 'enter') === 'enter' && !this.dismissed.has(s.id));
    if (entered && !this.page) this.openWebsite(entered);
    this.showOffer();
  }

  /** Space on the map: open the website offered here, if any. Returns whether it did. */
  action() {
    const site = this.offered[0];
    // Offered only while no page is open: Space never replaces a page on screen.
    if (!site || this.page) return false;
    this.openWebsite(site);
    return true;
  }

  /** @param {Website} site */
  openWebsite(site) {
    this.show({ url: site.url, title: site.name, website: site.id });
  }

  /**
   * The page open for everyone in our zone changed (`page_shared`, or a snapshot on
   * entering a zone).
   * @param {SharedPage | null} page
   */
  shared(page) {
    const before = this.zonePage;
    this.zonePage = page;
    if (page && (before?.url !== page.url || before?.by !== page.by)) {
      const title = this.sites.find((s) => s.url === page.url)?.name ?? originOf(page.url) ?? page.url;
      this.show({ url: page.url, title, shared: page });
      this.on.announce(`${page.name} opened a page for everyone here.`);
    } else if (!page && this.page?.shared) {
      this.close(false);
      // A website we stand on opens again at the next look at where we are.
      this.here = '';
      if (before) this.on.announce('The page opened for everyone here was closed.');
    }
    this.showButtons();
  }

  /** @param {OpenPage} page */
  show(page) {
    const verdict = embedVerdict(page.url, this.allowed, this.own);
    this.page = page;
    this.refusal = verdict.why;
    this.title.textContent = page.title;
    const by = page.shared ? ` · opened for everyone here by ${page.shared.name}` : '';
    this.source.textContent = `${originOf(page.url) ?? page.url}${by}`;
    if (verdict.ok) {
      const frame = h('iframe', {
        src: page.url, title: page.title, sandbox: SANDBOX, referrerPolicy: 'no-referrer', loading: 'eager',
        // No camera, microphone, screen or location for the page: Isoplane owns those.
        allow: "camera 'none'; microphone 'none'; display-capture 'none'; geolocation 'none'",
      });
      frame.setAttribute('sandbox', SANDBOX);
      this.body.replaceChildren(frame);
      this.on.announce(`${page.title} is open beside the map.`);
    } else {
      this.body.replaceChildren(h('p', { class: 'refused', role: 'alert' }, verdict.why));
    }
    this.root.classList.toggle('refused', !verdict.ok);
    this.root.hidden = false;
    this.showButtons();
    this.showOffer();
    this.on.changed();
  }

  /** Closes the page on this screen only. @param {boolean} [byHand] */
  close(byHand = true) {
    if (!this.page) return;
    if (byHand && this.page.website) this.dismissed.add(this.page.website);
    const hadFocus = this.root.contains(document.activeElement);
    this.page = null;
    this.refusal = '';
    this.body.replaceChildren();
    this.root.hidden = true;
    this.showOffer();
    if (hadFocus) /** @type {HTMLElement} */ (document.getElementById('world')).focus();
    this.on.changed();
  }

  /** Opens the page shown for everyone in the zone. */
  shareShown() {
    if (this.page) this.on.share(this.page.url);
  }

  /** The buttons that act for the whole zone, as the zone and the page allow. */
  showButtons() {
    const isZonePage = Boolean(this.page && this.zonePage && this.page.url === this.zonePage.url);
    const may = this.on.canShare();
    this.shareButton.hidden = !may || !this.page || Boolean(this.refusal) || isZonePage;
    this.stopButton.hidden = !may || !isZonePage;
  }

  showOffer() {
    const site = this.page ? null : this.offered[0];
    if (!site) {
      if (this.offerLine.childElementCount) this.offerLine.replaceChildren();
      return;
    }
    this.offerLine.replaceChildren(
      h('span', {}, `${site.name} is here. `),
      h('button', { type: 'button', 'data-website': site.id, onclick: () => this.openWebsite(site) }, `Open ${site.name}`),
      h('span', { class: 'key' }, ' (Space)'));
  }
}
