// Text chat: to everyone in our zone, to the whole world, and direct to one person.
//
// Messages are plain text, always: they are put on the page as text nodes, never as HTML,
// and only http(s) addresses become links (opening in a new tab, with no opener and no
// referrer). The server gives each message its ID and time, and sends the recent history
// of the zone after every snapshot and of the world and our direct messages after
// joining. An admin may delete a message: it disappears here when the server says so.

import { h } from './dom.js';
import { Connection } from './net.js';

/**
 * @typedef {{user: string, name: string}} Who
 * @typedef {{id: string, scope: 'zone' | 'world' | 'direct', zone?: string, from: Who, to?: Who, text: string, at: number}} ChatMessage
 * @typedef {'zone' | 'world' | 'direct'} Scope
 */

/** Messages kept per scope on the page (the server keeps its own history). */
const KEPT = 200;
/** The longest message the server takes (characters). */
export const MAX_CHAT_CHARS = 2000;
const SCOPES = /** @type {[Scope, string][]} */ ([['zone', 'This zone'], ['world', 'Everyone'], ['direct', 'Direct']]);
const LINK = /\bhttps?:\/\/[^\s<>"']+/g;

/**
 * The text in parts: plain text, and http(s) addresses (a sentence's closing mark after
 * an address is not part of it).
 * @param {string} text @returns {{text: string, href?: string}[]}
 */
export function linkParts(text) {
  /** @type {{text: string, href?: string}[]} */
  const parts = [];
  let at = 0;
  for (const match of text.matchAll(LINK)) {
    const address = match[0].replace(/[.,;:!?)\]]+$/, '');
    const start = /** @type {number} */ (match.index);
    if (start > at) parts.push({ text: text.slice(at, start) });
    parts.push({ text: address, href: address });
    at = start + address.length;
  }
  if (at < text.length) parts.push({ text: text.slice(at) });
  return parts;
}

/**
 * The text as nodes: text nodes, and links for addresses (opening in a new tab, with no
 * opener and no referrer). Nothing in it is ever read as HTML.
 * @param {string} text @returns {(Text | HTMLAnchorElement)[]}
 */
export function textWithLinks(text) {
  return linkParts(text).map((part) => {
    if (!part.href) return document.createTextNode(part.text);
    const link = document.createElement('a');
    link.href = part.href;
    link.target = '_blank';
    link.rel = 'noopener noreferrer';
    link.textContent = part.text;
    return link;
  });
}

/** Whom a direct message is with, from our side. @param {ChatMessage} message @param {string} me */
export function partnerOf(message, me) {
  return message.from.user === me ? message.to : message.from;
}

export class Chat {
  /**
   * @param {Connection} connection @param {HTMLElement} root @param {HTMLButtonElement} toggle
   * @param {{me: () => string, admin: () => boolean, world: () => string, zoneName: (id: string) => string,
   *   people: () => Promise<Who[]>, announce: (text: string) => void}} context
   */
  constructor(connection, root, toggle, context) {
    this.connection = connection;
    this.root = root;
    this.toggle = toggle;
    this.context = context;
    this.open = false;
    /** @type {Scope} */
    this.scope = 'zone';
    /** Messages by scope, oldest first. @type {Record<Scope, ChatMessage[]>} */
    this.messages = { zone: [], world: [], direct: [] };
    /** Messages not yet seen, by scope. */
    this.unread = { zone: 0, world: 0, direct: 0 };
    /** Whom the direct tab writes to. @type {Who | null} */
    this.partner = null;
    this.tabs = h('div', { class: 'tabs', role: 'tablist', 'aria-label': 'Chat scope' },
      ...SCOPES.map(([scope, label]) => h('button', {
        type: 'button', role: 'tab', 'data-scope': scope, 'aria-controls': 'chat-log', onclick: () => this.show(scope),
      }, label, h('span', { class: 'unread' }))));
    this.log = h('ol', { id: 'chat-log', class: 'chat-log', 'aria-label': 'Messages' });
    this.to = h('select', { id: 'chat-to', 'aria-label': 'Write to', onchange: () => this.pickPartner() });
    this.input = h('textarea', {
      id: 'chat-input', rows: 2, maxLength: MAX_CHAT_CHARS, placeholder: 'Write a message', 'aria-label': 'Message',
      onkeydown: (/** @type {KeyboardEvent} */ e) => {
        if (e.key === 'Enter' && !e.shiftKey) {
          e.preventDefault();
          this.send();
        }
      },
    });
    this.status = h('p', { class: 'chat-status', role: 'status' });
    this.form = h('form', { class: 'chat-form', onsubmit: (/** @type {Event} */ e) => { e.preventDefault(); this.send(); } },
      this.to, this.input, h('button', { type: 'submit' }, 'Send'));
    root.replaceChildren(
      h('header', {},
        h('h2', { id: 'chat-title' }, 'Chat'),
        h('button', { type: 'button', class: 'close', 'aria-label': 'Close the chat', onclick: () => this.setOpen(false) }, '×')),
      this.tabs, this.log, this.status, this.form);
    toggle.addEventListener('click', () => this.setOpen(!this.open));
    root.addEventListener('keydown', (e) => {
      if (e.key === 'Escape') this.setOpen(false);
    });
    document.addEventListener('visibilitychange', () => {
      if (!document.hidden && this.open) this.markSeen();
    });
    this.show('zone');
  }

  /** @param {boolean} open */
  setOpen(open) {
    const wasOpen = this.open;
    this.open = open;
    this.root.hidden = !open;
    this.toggle.setAttribute('aria-expanded', String(open));
    if (open) {
      this.markSeen();
      if (!wasOpen) this.input.focus();
      // Opening the chat is a gesture: the one moment a page may ask to notify.
      if ('Notification' in window && Notification.permission === 'default') Notification.requestPermission().catch(() => {});
    } else if (wasOpen && this.root.contains(document.activeElement)) {
      this.toggle.focus();
    }
    this.showUnread();
  }

  /** @param {Scope} scope */
  show(scope) {
    this.scope = scope;
    for (const tab of this.tabs.querySelectorAll('button')) tab.setAttribute('aria-selected', String(tab.dataset.scope === scope));
    this.to.hidden = scope !== 'direct';
    if (scope === 'direct') this.fillPartners();
    this.render();
    if (this.open) this.markSeen();
  }

  /** The people we may write to: everyone in the world but us. */
  async fillPartners() {
    const me = this.context.me();
    const people = (await this.context.people()).filter((p) => p.user !== me);
    const chosen = this.partner?.user ?? '';
    this.to.replaceChildren(new Option('Write to…', ''), ...people.map((p) => new Option(p.name, p.user)));
    if (chosen && !people.some((p) => p.user === chosen) && this.partner) this.to.append(new Option(this.partner.name, chosen));
    this.to.value = chosen;
  }

  pickPartner() {
    const option = this.to.selectedOptions[0];
    this.partner = option && option.value ? { user: option.value, name: option.text } : null;
    this.render();
  }

  /** Writes to someone directly (from the people list, say). @param {Who} who */
  writeTo(who) {
    this.partner = who;
    this.setOpen(true);
    this.show('direct');
    this.input.focus();
  }

  send() {
    const text = this.input.value;
    if (!text.trim()) return;
    if (this.scope === 'direct' && !this.partner) {
      this.status.textContent = 'Choose whom to write to.';
      return;
    }
    this.connection.send({ type: 'chat_send', scope: this.scope, text, ...(this.scope === 'direct' ? { to: this.partner?.user } : {}) });
    this.input.value = '';
    this.status.textContent = '';
  }

  /** A message from the server (ours included). @param {ChatMessage} message */
  received(message) {
    const list = this.messages[message.scope];
    if (!list || list.some((m) => m.id === message.id)) return;
    list.push(message);
    if (list.length > KEPT) list.shift();
    const mine = message.from.user === this.context.me();
    const seen = this.open && this.scope === message.scope && !document.hidden;
    if (!mine && !seen) this.unread[message.scope] += 1;
    if (!mine && message.scope === 'direct') this.tellOfDirect(message);
    if (this.scope === message.scope) this.render();
    this.showUnread();
  }

  /** A direct message: said to screen readers, and a notification while the tab is hidden. @param {ChatMessage} message */
  tellOfDirect(message) {
    this.context.announce(`Message from ${message.from.name}: ${message.text}`);
    if (document.hidden && 'Notification' in window && Notification.permission === 'granted') {
      new Notification(`Message from ${message.from.name}`, { body: message.text, tag: `isoplane-${message.id}` });
    }
  }

  /** The server's recent history of a scope (after a snapshot, or after joining). @param {Scope} scope @param {ChatMessage[]} messages */
  history(scope, messages) {
    if (!this.messages[scope]) return;
    this.messages[scope] = messages.slice(-KEPT);
    if (this.scope === scope) this.render();
  }

  /** The server refused what we wrote (too long, too fast, muted). @param {string} text */
  refused(text) {
    this.status.textContent = text;
  }

  /** An admin deleted a message: it goes. @param {string} id */
  deleted(id) {
    for (const scope of /** @type {Scope[]} */ (Object.keys(this.messages))) {
      this.messages[scope] = this.messages[scope].filter((m) => m.id !== id);
    }
    this.log.querySelector(`[data-id="${CSS.escape(id)}"]`)?.remove();
  }

  markSeen() {
    this.unread[this.scope] = 0;
    this.showUnread();
  }

  /** Unread counts on the tabs, on the chat button, and in the page's title. */
  showUnread() {
    for (const tab of this.tabs.querySelectorAll('button')) {
      const count = this.unread[/** @type {Scope} */ (tab.dataset.scope)];
      /** @type {HTMLElement} */ (tab.querySelector('.unread')).textContent = count ? ` ${count}` : '';
    }
    const total = this.unread.zone + this.unread.world + this.unread.direct;
    this.toggle.textContent = total ? `Chat (${total})` : 'Chat';
    this.toggle.setAttribute('aria-label', total ? `Chat, ${total} unread` : 'Chat');
    const title = document.title.replace(/^\(\d+\) /, '');
    document.title = this.unread.direct ? `(${this.unread.direct}) ${title}` : title;
  }

  /** The current scope's messages (direct: those with the chosen person, or all). */
  render() {
    const me = this.context.me();
    let list = this.messages[this.scope];
    if (this.scope === 'direct' && this.partner) list = list.filter((m) => partnerOf(m, me)?.user === this.partner?.user);
    this.log.replaceChildren(...list.map((m) => this.item(m, me)));
    this.log.scrollTop = this.log.scrollHeight;
  }

  /** @param {ChatMessage} message @param {string} me */
  item(message, me) {
    const time = new Date(message.at);
    const to = message.scope === 'direct' && message.to ? ` → ${message.to.user === me ? 'you' : message.to.name}` : '';
    const remove = this.context.admin()
      ? h('button', {
        type: 'button', class: 'delete', 'aria-label': `Delete ${message.from.name}'s message`,
        onclick: () => this.connection.admin({ action: 'delete_chat', world: this.context.world(), message: message.id }).then((result) => {
          this.status.textContent = result.ok ? 'Deleted.' : `${result.error.code}: ${result.error.message}`;
        }),
      }, 'Delete')
      : null;
    return h('li', { 'data-id': message.id, class: message.from.user === me ? 'mine' : '' },
      h('div', { class: 'meta' },
        h('strong', {}, message.from.user === me ? 'You' : message.from.name), to, ' ',
        h('time', { dateTime: time.toISOString() }, time.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' })), remove),
      h('p', { class: 'text' }, ...textWithLinks(message.text)));
  }
}
