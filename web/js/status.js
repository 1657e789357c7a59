// How available we say we are (available, busy, away, do not disturb): the choice in the
// HUD, sent to the server, which tells our zone and, for do-not-disturb, leaves us out of
// proximity talk in open zones. "Away" is also set by itself after a while without input
// or with the tab hidden, and lifted by itself when we are back (a status we chose stays).

/** @typedef {'available' | 'busy' | 'away' | 'do_not_disturb'} Status */

/** What each status is called on screen, in the menu's order. */
export const STATUS_LABELS = /** @type {const} */ ({
  available: 'Available',
  busy: 'Busy',
  away: 'Away',
  do_not_disturb: 'Do not disturb',
});

/** Minutes without a key, click or touch before we count as away. */
export const IDLE_AWAY_MS = 5 * 60 * 1000;
/** How long the tab may stay hidden before we count as away. */
export const HIDDEN_AWAY_MS = 60 * 1000;
/** How often the idle time is looked at. */
const CHECK_MS = 5000;

export class Availability {
  /**
   * @param {(status: Status) => void} send tells the server
   * @param {HTMLSelectElement} menu the HUD's choice
   * @param {() => number} [clock]
   */
  constructor(send, menu, clock = () => performance.now()) {
    this.send = send;
    this.menu = menu;
    this.clock = clock;
    /** @type {Status} what we last said */
    this.status = 'available';
    /** Whether "away" was set by itself (and is lifted by itself). */
    this.auto = false;
    this.lastInput = clock();
    /** @type {number | null} since when the tab is hidden */
    this.hiddenSince = null;
    menu.replaceChildren(...Object.entries(STATUS_LABELS).map(([value, label]) => new Option(label, value)));
    menu.value = this.status;
    menu.addEventListener('change', () => this.choose(/** @type {Status} */ (menu.value)));
  }

  /** Watches input and the tab's visibility for the automatic "away". */
  watch() {
    for (const event of ['keydown', 'pointerdown', 'touchstart', 'wheel']) {
      window.addEventListener(event, () => this.active(), { passive: true, capture: true });
    }
    document.addEventListener('visibilitychange', () => {
      if (document.hidden) this.hiddenSince ??= this.clock();
      else this.active();
    });
    setInterval(() => this.check(), CHECK_MS);
  }

  /** The person picked a status. @param {Status} status */
  choose(status) {
    this.auto = false;
    this.set(status);
  }

  /** Input, or the tab shown again: an automatic "away" ends. */
  active() {
    this.lastInput = this.clock();
    this.hiddenSince = null;
    if (this.auto) {
      this.auto = false;
      this.set('available');
    }
  }

  /** Sets "away" by itself when idle or hidden long enough, and only over "available". */
  check() {
    const now = this.clock();
    const idle = now - this.lastInput >= IDLE_AWAY_MS;
    const hidden = this.hiddenSince !== null && now - this.hiddenSince >= HIDDEN_AWAY_MS;
    if ((idle || hidden) && this.status === 'available') {
      this.auto = true;
      this.set('away');
    }
  }

  /**
   * What the server says we are (on joining, or as it confirms a change). A new session
   * starts as available: our choice is sent again.
   * @param {Status} status
   */
  confirmed(status) {
    if (status !== this.status) this.send(this.status);
  }

  /** @param {Status} status */
  set(status) {
    this.status = status;
    this.menu.value = status;
    this.send(status);
  }
}
