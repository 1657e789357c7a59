// Knocking on a locked or full room, and answering a knock from inside.
//
// Walking into a room the server refuses (`zone_locked`, `zone_full`) offers a "Knock"
// button. The server asks everyone inside (`knock`); the first answer settles it
// (`knock_closed` to all inside, `knock_status` to the knocker). Admitted, we may walk in
// once, so the walk that was refused starts again. docs/protocol.md has the messages.

import { h } from './dom.js';
import { Connection } from './net.js';

/**
 * @typedef {{type: 'knock_status', zone: string, state: string, knock?: number, by?: string, retry_after_ms?: number}} KnockStatus
 * @typedef {{type: 'knock', knock: number, avatar: number, name: string, zone: string}} KnockAsk
 * @typedef {{type: 'knock_closed', knock: number, outcome: string, by?: string}} KnockClosed
 */

/** What the knocker is told, by state. @param {KnockStatus} status @param {string} room */
export function knockStatusText(status, room) {
  switch (status.state) {
    case 'waiting':
      return `You knocked on ${room}. Waiting for someone inside to answer…`;
    case 'admitted':
      return `${status.by ?? 'Someone'} let you into ${room}.`;
    case 'declined':
      return `${status.by ?? 'Someone'} did not let you into ${room}.`;
    case 'nobody_inside':
      return `Nobody is in ${room} to answer.`;
    case 'not_needed':
      return `${room} is open: walk in.`;
    case 'too_soon':
      return `You knocked on ${room} a moment ago: try again in ${Math.ceil((status.retry_after_ms ?? 0) / 1000)} s.`;
    case 'expired':
      return `Nobody answered your knock on ${room}.`;
    default:
      return `Your knock on ${room}: ${status.state}.`;
  }
}

/** What those inside are told when a knock is settled. @param {KnockClosed} closed @param {string} knocker */
export function knockClosedText(closed, knocker) {
  switch (closed.outcome) {
    case 'admitted':
      return `${closed.by ?? 'Someone'} let ${knocker} in.`;
    case 'declined':
      return `${closed.by ?? 'Someone'} did not let ${knocker} in.`;
    case 'withdrawn':
      return `${knocker} stopped knocking.`;
    default:
      return `Nobody answered ${knocker}'s knock.`;
  }
}

export class Knocks {
  /**
   * @param {Connection} connection @param {HTMLElement} prompts where knocks at our door are shown
   * @param {HTMLElement} notice the HUD's notice line, where the knock button goes
   * @param {{zoneName: (id: string) => string, announce: (text: string) => void, admitted: () => void}} on
   */
  constructor(connection, prompts, notice, on) {
    this.connection = connection;
    this.prompts = prompts;
    this.notice = notice;
    this.on = on;
    /** Knocks at our door, by id, with who knocks. @type {Map<number, {element: HTMLElement, name: string}>} */
    this.asking = new Map();
    /** The zone we knocked on and were told about last. @type {KnockStatus | null} */
    this.mine = null;
  }

  /** A move into `zone` was refused: offer to knock. @param {string} zone @param {string} why */
  offer(zone, why) {
    this.notice.replaceChildren(`${why} `, this.knockButton(zone));
  }

  /** @param {string} zone */
  knockButton(zone) {
    return h('button', { type: 'button', class: 'knock', onclick: () => this.knock(zone) }, `Knock on ${this.on.zoneName(zone)}`);
  }

  /** @param {string} zone */
  knock(zone) {
    this.connection.send({ type: 'knock', zone });
  }

  /** The server's word on our knock. @param {KnockStatus} status */
  status(status) {
    this.mine = status;
    const text = knockStatusText(status, this.on.zoneName(status.zone));
    // Still outside: the door may be knocked on again (the server says when it is too soon).
    const again = ['declined', 'expired', 'nobody_inside', 'too_soon'].includes(status.state);
    this.notice.replaceChildren(text, ...(again ? [' ', this.knockButton(status.zone)] : []));
    this.on.announce(text);
    if (status.state === 'admitted' || status.state === 'not_needed') this.on.admitted();
  }

  /** Someone knocks on the room we are in: ask us. @param {KnockAsk} knock */
  ask(knock) {
    const room = this.on.zoneName(knock.zone);
    const titleId = `knock-${knock.knock}-title`;
    const answer = (/** @type {boolean} */ admit) => this.connection.send({ type: 'answer_knock', knock: knock.knock, admit });
    const element = h('div', { class: 'knock-prompt', role: 'group', 'aria-labelledby': titleId, 'data-knock': String(knock.knock) },
      h('p', { id: titleId }, h('strong', {}, knock.name), ` is knocking on ${room}.`),
      h('div', { class: 'actions' },
        h('button', { type: 'button', 'data-answer': 'admit', onclick: () => answer(true) }, 'Let in'),
        h('button', { type: 'button', 'data-answer': 'decline', onclick: () => answer(false) }, 'Decline')));
    element.addEventListener('keydown', (e) => {
      if (e.key === 'Escape') answer(false);
    });
    this.asking.get(knock.knock)?.element.remove();
    this.asking.set(knock.knock, { element, name: knock.name });
    this.prompts.append(element);
    this.on.announce(`${knock.name} is knocking on ${room}.`);
  }

  /** A knock at our door was settled. @param {KnockClosed} closed */
  closed(closed) {
    const asked = this.asking.get(closed.knock);
    if (!asked) return;
    const hadFocus = asked.element.contains(document.activeElement);
    asked.element.remove();
    this.asking.delete(closed.knock);
    this.on.announce(knockClosedText(closed, asked.name));
    if (hadFocus) /** @type {HTMLElement} */ (document.getElementById('world')).focus();
  }

  /** A new session: knocks of the old one mean nothing now. */
  clear() {
    for (const { element } of this.asking.values()) element.remove();
    this.asking.clear();
    this.mine = null;
  }
}
