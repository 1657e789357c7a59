// The heads-up display: the status and zone lines, the one-line notice, the line saying
// what an admin did to us, admins' notices as toasts, the mute buttons, the lock of an
// end-to-end encrypted zone, the recording indicator and its button, and the dialog of
// a kicked or banned user. It only shows what it is told; the session decides.

/** How long a notice stays on screen, and how many are shown at once. */
const NOTICE_MS = 10000;
const MAX_NOTICES = 4;
const KIND_NAMES = { audio: 'microphone', video: 'camera' };
/** How long the line saying what an admin did to us stays. */
const MODERATION_LINE_MS = 20000;

/** @typedef {'audio' | 'video'} Kind */
/** @typedef {{audio: boolean, video: boolean}} Kinds */
/**
 * @typedef {{action: string, by: string, reason: string}} Moderated
 * @typedef {{text: string, by: string, zone?: string, at: number}} Notice
 * @typedef {{by: string, since: number}} Recording who started it, and when (Unix ms)
 * @typedef {'' | 'on' | 'waiting' | 'unsupported'} Encryption
 */

/** What the lock says, by state. */
const ENCRYPTION_TEXT = {
  on: 'End-to-end encrypted',
  waiting: 'Waiting for the room key',
  unsupported: 'End-to-end encrypted room: this browser cannot encrypt media, so it sends and receives none here',
};
const ENCRYPTION_ICON = { on: '🔒 ', waiting: '🔑 ', unsupported: '⚠ ' };

/** What the dialog says to a kicked or banned user. @param {Moderated} message */
export function endedText(message) {
  const reason = message.reason ? `: ${message.reason}` : '';
  return `${message.by} ${message.action === 'kicked' ? 'removed you from the world' : 'banned you from this workspace'}${reason}`;
}

export const $ = (/** @type {string} */ id) => /** @type {HTMLElement} */ (document.getElementById(id));

export class Hud {
  constructor() {
    /** Every admin notice received, oldest first. @type {Notice[]} */
    this.notices = [];
    /** The last thing an admin did to us. @type {Moderated | null} */
    this.lastModeration = null;
    /** A mute or unmute told, waiting for the plan that says which kinds. @type {{message: Moderated, before: Kinds} | null} */
    this.pendingMute = null;
    /** @type {ReturnType<typeof setTimeout> | undefined} */
    this.moderationTimer = undefined;
  }

  /** The connection's state. @param {string} status @param {string} [detail] */
  status(status, detail) {
    // "reconnecting… (attempt 3)": still trying, and for how long already.
    const label = status === 'reconnecting' ? 'reconnecting…' : status;
    $('status').textContent = detail ? `${label} (${detail})` : label;
    $('status').dataset.status = status;
  }

  /** The one-line notice under the status ('' clears it). @param {string} text */
  say(text) {
    $('notice').textContent = text;
  }

  /** @param {string} name */
  worldName(name) {
    $('world-name').textContent = name;
  }

  /** The zone we joined. @param {{name: string, type: string}} zone */
  zone(zone) {
    $('zone').textContent = `${zone.name} · ${zone.type.replace('_', ' ')}`;
  }

  /** The zone under our feet, by name. @param {string} name */
  standingIn(name) {
    // Called every frame: touching the DOM only on a change keeps a still page still.
    const here = $('here');
    if (here.textContent !== name) here.textContent = name;
  }

  /** @param {string} text */
  topology(text) {
    $('topology').textContent = text;
  }

  /** @param {string} text */
  mediaState(text) {
    $('media-state').textContent = text;
  }

  /** The lock of an end-to-end encrypted zone ('' hides it). @param {Encryption} state */
  encryption(state) {
    const line = $('e2ee');
    if (line.dataset.state === state) return;
    line.dataset.state = state;
    if (!state) {
      line.replaceChildren();
      return;
    }
    const icon = document.createElement('span');
    icon.setAttribute('aria-hidden', 'true');
    icon.textContent = ENCRYPTION_ICON[state];
    line.replaceChildren(icon, ENCRYPTION_TEXT[state]);
  }

  /** Says who records the zone, for everyone in it (null: nobody). @param {Recording | null} recording */
  recording(recording) {
    const line = $('recording');
    if (!recording) {
      line.replaceChildren();
      line.removeAttribute('title');
      return;
    }
    // The dot is the sign people know; the words say it without colour.
    const dot = document.createElement('span');
    dot.className = 'dot-rec';
    dot.setAttribute('aria-hidden', 'true');
    dot.textContent = '● ';
    line.replaceChildren(dot, `Recording — started by ${recording.by}`);
    if (recording.since) line.title = `Recording since ${new Date(recording.since).toLocaleTimeString()}`;
  }

  /** The Record button: there where recording is allowed, Stop while it runs. @param {boolean} allowed @param {boolean} on */
  recordButton(allowed, on) {
    const button = /** @type {HTMLButtonElement} */ ($('record'));
    // Someone may stop a recording an admin has just forbidden further ones of.
    button.hidden = !allowed && !on;
    button.setAttribute('aria-pressed', String(on));
    button.textContent = on ? 'Stop recording' : 'Record';
    button.title = on ? 'Stop recording this room for everyone in it' : 'Record this room: everyone in it is told';
  }

  /**
   * Records what an admin did to us and says it in the moderation line; a mute or unmute
   * is said again with its kinds once the plan saying which has come (`describeMute`). A
   * kick or ban is not said here: the session ends with `showEnded(…, endedText(message))`.
   * @param {Moderated} message @param {Kinds} mutedBefore what an admin had muted before
   */
  moderated(message, mutedBefore) {
    const { action, by } = message;
    this.lastModeration = { action, by, reason: message.reason ?? '' };
    const reason = message.reason ? `: ${message.reason}` : '';
    switch (action) {
      case 'kicked':
      case 'banned':
        break;
      case 'muted':
      case 'unmuted':
        // The next plan says which kinds; until then, say what we know.
        this.pendingMute = { message, before: { ...mutedBefore } };
        this.moderationLine(`${by} ${action} you${reason}`);
        break;
      case 'moved':
        this.moderationLine(`${by} moved you${reason}`);
        break;
      case 'meeting_ended':
        this.moderationLine(`${by} ended the meeting${reason}`);
        break;
      case 'chat_muted':
        this.moderationLine(`${by} muted your chat: what you write is not sent${reason}`);
        break;
      case 'chat_unmuted':
        this.moderationLine(`${by} let you chat again${reason}`);
        break;
      default:
        this.moderationLine(`${by}: ${action}${reason}`);
    }
  }

  /** Names the kinds a mute or unmute changed, once the plan saying so has come. @param {Kinds} now */
  describeMute(now) {
    const pending = this.pendingMute;
    if (!pending) return;
    const kinds = /** @type {Kind[]} */ (['audio', 'video']).filter((k) => pending.before[k] !== now[k]);
    if (!kinds.length) return;
    this.pendingMute = null;
    const { action, by, reason } = pending.message;
    const what = kinds.map((k) => KIND_NAMES[k]).join(' and ');
    this.moderationLine(`${by} ${action} your ${what}${reason ? `: ${reason}` : ''}`);
  }

  /** @param {string} text */
  moderationLine(text) {
    const line = $('moderation');
    line.textContent = text;
    clearTimeout(this.moderationTimer);
    this.moderationTimer = setTimeout(() => (line.textContent = ''), MODERATION_LINE_MS);
    // Let the line catch the eye again even if the text is the same.
    line.classList.remove('flash');
    void line.offsetWidth;
    line.classList.add('flash');
  }

  /** Kicked or banned: the connection is closing for good; say why. @param {string} code @param {string} text */
  showEnded(code, text) {
    // The dialog says it all; older lines would only confuse.
    $('notice').textContent = '';
    $('moderation').textContent = '';
    $('ended-title').textContent = code === 'banned' ? 'You are banned from this workspace' : 'You were removed from the world';
    $('ended-text').textContent = text;
    // A kicked user may come back; a banned one would be refused.
    $('rejoin').hidden = code === 'banned';
    $('ended').hidden = false;
    $('ended').dataset.code = code;
  }

  hideEnded() {
    $('ended').hidden = true;
  }

  /** An admin's notice, as a toast. @param {{text: string, by: string, zone?: string}} message @param {string} [zoneName] */
  showNotice(message, zoneName) {
    this.notices.push({ text: message.text, by: message.by, zone: message.zone, at: Date.now() });
    const toast = document.createElement('div');
    toast.className = 'toast';
    toast.setAttribute('role', 'status');
    const from = document.createElement('div');
    from.className = 'from';
    from.textContent = zoneName ? `Notice from ${message.by} · ${zoneName}` : `Notice from ${message.by}`;
    const text = document.createElement('div');
    text.className = 'text';
    text.textContent = message.text;
    const close = document.createElement('button');
    close.type = 'button';
    close.className = 'close';
    close.setAttribute('aria-label', 'Dismiss');
    close.textContent = '×';
    close.addEventListener('click', () => toast.remove());
    toast.append(close, from, text);
    const toasts = $('toasts');
    toasts.append(toast);
    while (toasts.children.length > MAX_NOTICES) toasts.firstElementChild?.remove();
    setTimeout(() => {
      toast.classList.add('leaving');
      setTimeout(() => toast.remove(), 400);
    }, NOTICE_MS);
  }

  /** The mute buttons say when an admin muted us, and cannot undo it. @param {Kinds} adminMuted @param {Kinds} userOff */
  muteButtons(adminMuted, userOff) {
    for (const [kind, id, label] of /** @type {[Kind, string, string][]} */ ([['audio', 'mute-audio', 'Mic'], ['video', 'mute-video', 'Cam']])) {
      const button = /** @type {HTMLButtonElement} */ ($(id));
      const forced = adminMuted[kind];
      button.disabled = forced;
      button.classList.toggle('forced', forced);
      button.setAttribute('aria-pressed', String(forced || userOff[kind]));
      button.textContent = forced ? `${label} muted by an admin` : label;
      button.title = forced ? `An admin muted your ${KIND_NAMES[kind]}` : kind === 'audio' ? 'Mute microphone' : 'Stop camera';
    }
  }
}
