// The people and places panel, for everyone: who is in this world (name, zone, status;
// from the server's `list_people`), searchable, each with "locate", "walk to" and
// "follow"; and the world's zones, each with "walk to". Real HTML lists and buttons, so
// keyboards and screen readers reach everything the map shows.

import { h } from './dom.js';
import { Connection } from './net.js';
import { STATUS_LABELS } from './status.js';

/**
 * @typedef {import('./world.js').Point} Point
 * @typedef {import('./world.js').ZoneDef} ZoneDef
 * @typedef {import('./status.js').Status} Status
 * @typedef {{avatar: number, user: string, name: string, zone: string, status: Status, position: Point, connected: boolean}} Person
 * @typedef {{
 *   self: () => number, following: () => number | null, zones: () => ZoneDef[],
 *   locate: (person: Person) => void, walkToPerson: (person: Person) => void,
 *   follow: (person: Person) => void, unfollow: () => void, walkToZone: (zone: ZoneDef) => void,
 *   message: (person: Person) => void,
 * }} PeopleActions
 */

/** How often the list is asked for again while the panel is open. */
const REFRESH_MS = 3000;

/** What the zone types are called on screen. */
export const ZONE_TYPES = /** @type {Record<string, string>} */ ({
  open: 'open area', meeting_room: 'meeting room', stage: 'stage', silent: 'quiet zone', private: 'private room',
});

/** Whether `person` matches what was typed in the search box. @param {Person} person @param {string} query @param {string} zoneName */
export function matches(person, query, zoneName) {
  const words = query.toLowerCase().split(/\s+/).filter(Boolean);
  const text = `${person.name} ${person.user} ${zoneName} ${STATUS_LABELS[person.status] ?? ''}`.toLowerCase();
  return words.every((word) => text.includes(word));
}

export class PeoplePanel {
  /**
   * @param {Connection} connection @param {HTMLElement} root @param {HTMLButtonElement} toggle
   * @param {PeopleActions} actions
   */
  constructor(connection, root, toggle, actions) {
    this.connection = connection;
    this.root = root;
    this.toggle = toggle;
    this.actions = actions;
    this.open = false;
    /** @type {Person[]} */
    this.people = [];
    /** What the lists last showed, to redraw only on a change. */
    this.shown = '';
    /** @type {ReturnType<typeof setInterval> | 0} */
    this.timer = 0;
    this.search = h('input', { id: 'people-search', type: 'search', autocomplete: 'off', placeholder: 'Name, place or status', oninput: () => this.render() });
    this.count = h('p', { class: 'count', role: 'status' });
    this.peopleList = h('ul', { class: 'people', 'aria-labelledby': 'people-heading' });
    this.placeList = h('ul', { class: 'places', 'aria-labelledby': 'places-heading' });
    root.replaceChildren(
      h('header', {},
        h('h2', { id: 'people-title' }, 'People and places'),
        h('button', { type: 'button', class: 'close', 'aria-label': 'Close people and places', onclick: () => this.setOpen(false) }, '×')),
      h('div', { class: 'panel-body' },
        h('label', { class: 'search', for: 'people-search' }, 'Find', this.search),
        h('h3', { id: 'people-heading' }, 'People'), this.count, this.peopleList,
        h('h3', { id: 'places-heading' }, 'Places'), this.placeList),
    );
    toggle.addEventListener('click', () => this.setOpen(!this.open));
    root.addEventListener('keydown', (e) => {
      if (e.key === 'Escape') this.setOpen(false);
    });
  }

  /** @param {boolean} open */
  setOpen(open) {
    const wasOpen = this.open;
    this.open = open;
    this.root.hidden = !open;
    this.toggle.setAttribute('aria-expanded', String(open));
    clearInterval(this.timer);
    this.timer = 0;
    if (open) {
      this.timer = setInterval(() => this.refresh(), REFRESH_MS);
      this.refresh();
      this.render();
      if (!wasOpen) this.search.focus();
    } else if (wasOpen && this.root.contains(document.activeElement)) {
      // Back where the person came from, not lost at the top of the page.
      this.toggle.focus();
    }
  }

  /** Asks the server who is in the world. */
  async refresh() {
    const answer = await this.connection.request({ type: 'list_people' });
    if (!answer || !this.open) return;
    this.people = answer.people ?? [];
    this.render();
  }

  /** @param {string} id */
  zoneName(id) {
    return this.actions.zones().find((z) => z.id === id)?.name ?? id;
  }

  /** Redraws the lists if what they show changed; keeps the focused button focused. */
  render() {
    if (!this.open) return;
    const query = this.search.value;
    const self = this.actions.self();
    const following = this.actions.following();
    const people = this.people.filter((p) => matches(p, query, this.zoneName(p.zone)));
    const zones = this.actions.zones();
    const key = JSON.stringify([people, zones.map((z) => z.id), self, following]);
    if (key === this.shown) return;
    this.shown = key;
    const focused = /** @type {HTMLElement | null} */ (document.activeElement)?.dataset?.key;
    const total = this.people.length;
    this.count.textContent = query ? `${people.length} of ${total} found` : total === 1 ? 'Only you are here.' : `${total} people in this world`;
    this.peopleList.replaceChildren(...people.map((person) => this.personItem(person, person.avatar === self, person.avatar === following)));
    this.placeList.replaceChildren(...zones.map((zone) => h('li', {},
      h('span', { class: 'who' }, h('strong', {}, zone.name), ' ', h('span', { class: 'sub' }, ZONE_TYPES[zone.type] ?? zone.type)),
      h('span', { class: 'actions' },
        h('button', { type: 'button', 'data-key': `zone-${zone.id}`, 'aria-label': `Walk to ${zone.name}`, onclick: () => this.actions.walkToZone(zone) }, 'Walk to')))));
    if (focused) /** @type {HTMLElement | null} */ (this.root.querySelector(`[data-key="${CSS.escape(focused)}"]`))?.focus();
  }

  /** @param {Person} person @param {boolean} self @param {boolean} followed */
  personItem(person, self, followed) {
    const status = STATUS_LABELS[person.status] ?? person.status;
    const button = (/** @type {string} */ label, /** @type {string} */ action, /** @type {() => void} */ run) =>
      h('button', { type: 'button', 'data-key': `${action}-${person.avatar}`, 'aria-label': `${label} ${person.name}`, onclick: run }, label);
    return h('li', { class: `person ${person.status}`, 'data-avatar': String(person.avatar) },
      h('span', { class: 'who' },
        h('span', { class: `dot ${person.status}`, 'aria-hidden': 'true' }),
        h('strong', {}, self ? `${person.name} (you)` : person.name), ' ',
        h('span', { class: 'sub' }, `${status} · ${this.zoneName(person.zone)}${person.connected ? '' : ' · reconnecting'}`)),
      self ? null : h('span', { class: 'actions' },
        button('Locate', 'locate', () => this.actions.locate(person)),
        button('Walk to', 'walk', () => this.actions.walkToPerson(person)),
        followed ? button('Stop following', 'unfollow', () => this.actions.unfollow()) : button('Follow', 'follow', () => this.actions.follow(person)),
        button('Message', 'message', () => this.actions.message(person))));
  }
}
