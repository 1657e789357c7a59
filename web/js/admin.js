// The admin panel: people, zones, broadcasters' ingest keys, notices and the audit log,
// for workspace admins.
//
// Each button sends one admin command over the connection (docs/moderation.md) and shows
// the server's answer here. The server checks and audits every command, so the panel is
// only a face for the same commands the HTTP API and the CLI send; it is shown to admins
// because others would be refused, not to keep anything secret.

import { h } from './dom.js';
import { Connection } from './net.js';
import { STATUS_LABELS } from './status.js';

// What each command answers (`data` of `admin_result`): the server's `AdminReply`
// (signaling/src/protocol/admin.rs), documented in docs/moderation.md. The panel knows
// which command it sent, so it reads the reply of that command.
/**
 * @typedef {{world: string, avatar: number, user: string, name: string, zone: string,
 *   audio_muted: boolean, video_muted: boolean, chat_muted?: boolean, connected: boolean, status?: string}} Person
 * @typedef {{id: number, workspace: string, actor: string, action: string, target: string, reason: string,
 *   detail: string, outcome: string, created_at: number}} AuditEntry
 * @typedef {{zone: string, locked: boolean, capacity: number | null, updated_by: string, recording_allowed?: boolean}} ZoneSetting
 * @typedef {{worlds: number, nodes_unanswered: number}} Reach `kick`
 * @typedef {Reach & {audio_muted: boolean, video_muted: boolean}} MutedReply `mute`, `unmute`
 * @typedef {Reach & {expires_at: number | null}} BannedReply `ban`
 * @typedef {{lifted: boolean}} LiftedReply `unban`
 * @typedef {{changed: boolean}} RoleChangedReply `promote`, `demote`
 * @typedef {{locked: boolean, capacity: number | null, inside: number}} ZoneSetReply `lock_zone`, `unlock_zone`, `set_zone_capacity`
 * @typedef {{moved: number}} MovedReply `move_user`, `end_meeting`
 * @typedef {{reached: number}} NoticeReply `notice`, `allow_recording`
 * @typedef {{people: Person[]}} PeopleReply `list_people`
 * @typedef {{zones: ZoneSetting[]}} ZonesReply `list_zones`
 * @typedef {{entries: AuditEntry[]}} AuditReply `list_audit`
 * @typedef {{workspace: string, id: string, world: string, zone: string, name: string, created_by: string,
 *   created_at: number, revoked_at: number | null}} IngestKey a WHIP broadcaster's key (docs/ingest.md), without the key itself
 * @typedef {{ingest_keys: IngestKey[]}} IngestKeysReply `list_ingest_keys`: newest first, revoked ones too
 * @typedef {{id: string, key: string}} IngestKeyCreatedReply `create_ingest_key`: the key is in this answer only
 * @typedef {{revoked: string, ended: boolean}} IngestKeyRevokedReply `revoke_ingest_key`
 * @typedef {{locked: boolean, capacity: number | null, inside: number | null, recording?: boolean}} ZoneState
 *   `recording`: whether recording is allowed, when the server said or we set it
 * @typedef {'people' | 'zones' | 'broadcast' | 'notice' | 'audit'} Tab
 * @typedef {{world: import('./world.js').WorldFile | null, worldName: string, user: string}} Context
 */

/** How often the people list is fetched while the panel is open. */
const REFRESH_MS = 3000;
const AUDIT_PAGE = 50;
const BAN_DURATIONS = [['', 'until lifted'], ['3600', '1 hour'], ['86400', '1 day'], ['604800', '1 week'], ['2592000', '30 days']];
const TABS = /** @type {[Tab, string][]} */ ([['people', 'People'], ['zones', 'Zones'], ['broadcast', 'Broadcast'], ['notice', 'Notice'], ['audit', 'Audit log']]);

/** @param {number} seconds since the Unix epoch */
function formatTime(seconds) {
  const date = new Date(seconds * 1000);
  const today = new Date().toDateString() === date.toDateString();
  const time = date.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit' });
  return today ? time : `${date.toLocaleDateString()} ${time}`;
}

export class AdminPanel {
  /**
   * @param {Connection} connection @param {HTMLElement} root the panel's element
   * @param {HTMLButtonElement} toggle the button that opens it
   * @param {() => Context} context the world and who we are, as of now
   */
  constructor(connection, root, toggle, context) {
    this.connection = connection;
    this.root = root;
    this.toggle = toggle;
    this.context = context;
    this.admin = false;
    this.open = false;
    /** @type {Tab} */
    this.tab = 'people';
    /** @type {Person[]} */
    this.people = [];
    this.peopleKey = '';
    /** Each zone's lock and capacity, as recorded (list_zones) or last changed here. @type {Map<string, ZoneState>} */
    this.zones = new Map();
    /** @type {AuditEntry[]} */
    this.audit = [];
    this.auditMore = false;
    /** The workspace's ingest keys, as last listed. @type {IngestKey[]} */
    this.ingestKeys = [];
    /** The new key's form, kept across renders. */
    this.ingestDraft = { zone: '', name: '' };
    /** The key just made, shown until dismissed or the panel closes: nobody can read it back. @type {{id: string, key: string, name: string} | null} */
    this.createdKey = null;
    /** The ID of the key whose revocation awaits confirmation. */
    this.revoking = '';
    /** The user whose ban form is open. */
    this.banning = '';
    /** The spawn point picked for each user's move. @type {Map<string, string>} */
    this.spawnFor = new Map();
    /** @type {ReturnType<typeof setInterval> | 0} */
    this.timer = 0;
    /** The outcome of the last command, as shown. */
    this.result = { ok: true, text: '' };

    this.reason = h('input', {
      id: 'admin-reason', type: 'text', maxLength: 500, autocomplete: 'off',
      placeholder: 'Optional: shown to the person and kept in the audit log',
    });
    this.resultLine = h('div', { id: 'admin-result', role: 'status' });
    this.tabs = h('nav', { class: 'tabs', role: 'tablist' },
      ...TABS.map(([id, label]) => h('button', { type: 'button', role: 'tab', 'data-tab': id, onclick: () => this.show(id) }, label)));
    this.body = h('div', { class: 'panel-body' });
    root.replaceChildren(
      h('header', {},
        h('h2', {}, 'Admin'),
        h('button', { type: 'button', class: 'close', title: 'Close the admin panel', 'aria-label': 'Close', onclick: () => this.setOpen(false) }, '×')),
      h('label', { class: 'reason', for: 'admin-reason' }, 'Reason', this.reason),
      this.tabs,
      this.resultLine,
      this.body,
    );
    toggle.addEventListener('click', () => this.setOpen(!this.open));
  }

  /** Shows the panel's button to admins only (from `welcome` and `role_changed`). @param {boolean} admin */
  setAdmin(admin) {
    this.admin = admin;
    this.toggle.hidden = !admin;
    if (!admin) this.setOpen(false);
  }

  /** @param {boolean} open */
  setOpen(open) {
    this.open = open && this.admin;
    this.root.hidden = !this.open;
    this.toggle.setAttribute('aria-expanded', String(this.open));
    clearInterval(this.timer);
    this.timer = 0;
    if (!this.open) {
      // A new key is shown once: it does not outlive the panel.
      this.createdKey = null;
      this.revoking = '';
      if (this.tab === 'broadcast') this.render();
      return;
    }
    this.timer = setInterval(() => this.refreshPeople(), REFRESH_MS);
    this.show(this.tab);
  }

  /** @param {Tab} tab */
  show(tab) {
    this.tab = tab;
    for (const button of this.tabs.querySelectorAll('button')) button.setAttribute('aria-selected', String(button.dataset.tab === tab));
    this.render();
    if (tab === 'people') this.refreshPeople();
    if (tab === 'audit') this.loadAudit(false);
    if (tab === 'zones') this.loadZones();
    if (tab === 'broadcast') this.loadIngestKeys();
  }

  /** Every ingest key of the workspace, revoked ones too. */
  async loadIngestKeys() {
    const result = await this.connection.admin({ action: 'list_ingest_keys' });
    if (!result.ok) {
      this.setResult(false, `${result.error.code}: ${result.error.message}`);
      return;
    }
    this.ingestKeys = /** @type {IngestKeysReply} */ (result.data).ingest_keys ?? [];
    if (this.tab === 'broadcast') this.render();
  }

  /** The locks and capacities recorded for this world's zones. */
  async loadZones() {
    const result = await this.connection.admin({ action: 'list_zones', world: this.context().worldName });
    if (!result.ok) {
      this.setResult(false, `${result.error.code}: ${result.error.message}`);
      return;
    }
    const { zones } = /** @type {ZonesReply} */ (result.data);
    for (const zone of zones ?? []) {
      const known = this.zones.get(zone.zone);
      const recording = typeof zone.recording_allowed === 'boolean' ? zone.recording_allowed : known?.recording;
      this.zones.set(zone.zone, { locked: Boolean(zone.locked), capacity: zone.capacity ?? null, inside: known?.inside ?? null, recording });
    }
    if (this.tab === 'zones') this.render();
  }

  /** The reason field's text, if any, as a command field. */
  takeReason() {
    const reason = this.reason.value.trim();
    return reason ? { reason } : {};
  }

  /**
   * Sends a command and shows what came of it; refreshes the people list after.
   * @param {object} command @param {(data: any) => string} describe the success message
   */
  async run(command, describe) {
    this.setResult(true, 'Sending…');
    const result = await this.connection.admin(command);
    if (result.ok) {
      this.reason.value = '';
      this.setResult(true, describe(result.data));
    } else {
      this.setResult(false, `${result.error.code}: ${result.error.message}`);
    }
    if (this.open) await this.refreshPeople();
    return result;
  }

  /** @param {boolean} ok @param {string} text */
  setResult(ok, text) {
    this.result = { ok, text };
    this.resultLine.textContent = text;
    this.resultLine.classList.toggle('error', !ok);
  }

  async refreshPeople() {
    if (!this.open) return;
    const result = await this.connection.admin({ action: 'list_people' });
    if (!result.ok) {
      this.setResult(false, `${result.error.code}: ${result.error.message}`);
      return;
    }
    const people = /** @type {PeopleReply} */ (result.data).people ?? [];
    people.sort((a, b) => a.name.localeCompare(b.name) || a.user.localeCompare(b.user));
    const key = JSON.stringify(people);
    if (key === this.peopleKey) return;
    this.people = people;
    this.peopleKey = key;
    if (this.tab === 'people') this.render();
  }

  /** @param {boolean} older the next page, after what is shown */
  async loadAudit(older) {
    const before = older ? this.audit.at(-1)?.id : undefined;
    const result = await this.connection.admin({ action: 'list_audit', limit: AUDIT_PAGE, ...(before ? { before } : {}) });
    if (!result.ok) {
      this.setResult(false, `${result.error.code}: ${result.error.message}`);
      return;
    }
    const entries = /** @type {AuditReply} */ (result.data).entries ?? [];
    this.audit = older ? [...this.audit, ...entries] : entries;
    this.auditMore = entries.length === AUDIT_PAGE;
    if (this.tab === 'audit') this.render();
  }

  render() {
    const sections = {
      people: () => this.renderPeople(), zones: () => this.renderZones(), broadcast: () => this.renderBroadcast(),
      notice: () => this.renderNotice(), audit: () => this.renderAudit(),
    };
    this.body.replaceChildren(sections[this.tab]());
  }

  /** The name of a user, if they are here; else their ID. @param {string} user */
  nameOf(user) {
    return this.people.find((p) => p.user === user)?.name ?? user;
  }

  /** @param {string} world @param {string} zone */
  zoneName(world, zone) {
    const file = this.context().world;
    if (!file || world !== this.context().worldName) return zone;
    return [file.default_zone, ...file.zones].find((z) => z.id === zone)?.name ?? zone;
  }

  renderPeople() {
    const { world, worldName, user: self } = this.context();
    const spawns = world?.spawns ?? [];
    const list = h('ul', { class: 'people' });
    for (const person of this.people) {
      const { user, name } = person;
      const you = user === self;
      const spawnSelect = h('select', { 'aria-label': `Spawn point for ${name}`, 'data-field': 'spawn', onchange: () => this.spawnFor.set(user, spawnSelect.value) },
        ...spawns.map((s) => h('option', { value: s.id }, s.id)));
      spawnSelect.value = this.spawnFor.get(user) ?? spawns[0]?.id ?? '';
      const here = person.world === worldName;
      const button = (/** @type {string} */ action, /** @type {string} */ label, /** @type {() => void} */ onclick, extra = {}) =>
        h('button', { type: 'button', 'data-action': action, onclick, ...extra }, label);
      const mute = (/** @type {boolean} */ audio, /** @type {boolean} */ video) =>
        this.run({ action: 'mute', user, audio, video, ...this.takeReason() }, () => `Muted ${name}’s ${audio ? 'audio' : 'video'}`);
      list.append(h('li', { 'data-user': user, class: person.connected ? '' : 'away' },
        h('div', { class: 'who' },
          h('strong', {}, name), you ? h('span', { class: 'tag' }, 'you') : null,
          h('code', { title: 'user ID' }, user),
          h('span', { class: 'where' }, `${person.world} · ${this.zoneName(person.world, person.zone)}`),
          person.status && person.status !== 'available'
            ? h('span', { class: 'tag', 'data-state': person.status }, STATUS_LABELS[/** @type {keyof STATUS_LABELS} */ (person.status)] ?? person.status)
            : null,
          person.audio_muted ? h('span', { class: 'tag warn', 'data-state': 'audio-muted' }, 'mic muted') : null,
          person.video_muted ? h('span', { class: 'tag warn', 'data-state': 'video-muted' }, 'cam muted') : null,
          person.chat_muted ? h('span', { class: 'tag warn', 'data-state': 'chat-muted' }, 'chat muted') : null,
          person.connected ? null : h('span', { class: 'tag' }, 'reconnecting')),
        h('div', { class: 'actions' },
          button('mute-audio', 'Mute audio', () => mute(true, false), { disabled: person.audio_muted }),
          button('mute-video', 'Mute video', () => mute(false, true), { disabled: person.video_muted }),
          button('unmute', 'Unmute', () => this.run(
            { action: 'unmute', user, audio: person.audio_muted, video: person.video_muted, ...this.takeReason() },
            () => `Unmuted ${name}`), { disabled: !person.audio_muted && !person.video_muted }),
          person.chat_muted
            ? button('unmute-chat', 'Unmute chat', () => this.run({ action: 'unmute_chat', user, ...this.takeReason() }, () => `${name} may chat again`))
            : button('mute-chat', 'Mute chat', () => this.run({ action: 'mute_chat', user, ...this.takeReason() }, () => `Muted ${name}’s chat`)),
          h('span', { class: 'group' },
            button('move', 'Move to', () => this.run(
              { action: 'move_user', user, world: person.world, spawn: spawnSelect.value, ...this.takeReason() },
              () => `Moved ${name} to ${spawnSelect.value}`), { disabled: !here || !spawns.length, title: here ? 'Put them on this spawn point' : 'In another world' }),
            spawnSelect),
          button('kick', 'Kick', () => this.run({ action: 'kick', user, ...this.takeReason() }, () => `Removed ${name} from the world`), { class: 'danger' }),
          button('ban', 'Ban…', () => { this.banning = this.banning === user ? '' : user; this.render(); }, { class: 'danger', 'aria-expanded': String(this.banning === user) })),
        this.banning === user ? this.banForm(person) : null,
      ));
    }
    const count = this.people.length === 1 ? '1 person' : `${this.people.length} people`;
    return h('section', { 'data-section': 'people' },
      h('div', { class: 'bar' }, h('span', {}, count), h('button', { type: 'button', onclick: () => this.refreshPeople() }, 'Refresh')),
      this.people.length ? list : h('p', { class: 'empty' }, 'Nobody is in the workspace’s worlds.'));
  }

  /** @param {Person} person */
  banForm(person) {
    const duration = h('select', { 'aria-label': 'Ban for', 'data-field': 'ban-duration' }, ...BAN_DURATIONS.map(([value, label]) => h('option', { value }, label)));
    return h('div', { class: 'confirm' },
      `Ban ${person.name} for `, duration,
      h('button', {
        type: 'button', class: 'danger', 'data-action': 'confirm-ban',
        onclick: () => {
          this.banning = '';
          const seconds = duration.value ? { duration_seconds: Number(duration.value) } : {};
          this.run({ action: 'ban', user: person.user, ...seconds, ...this.takeReason() },
            () => `Banned ${person.name} ${duration.value ? `for ${duration.selectedOptions[0].text}` : 'until lifted'}`);
        },
      }, 'Ban'),
      h('button', { type: 'button', onclick: () => { this.banning = ''; this.render(); } }, 'Cancel'));
  }

  renderZones() {
    const { world, worldName } = this.context();
    if (!world) return h('p', { class: 'empty' }, 'The world is still loading.');
    const spawn = h('select', { 'aria-label': 'End meeting: send people to', 'data-field': 'end-spawn' },
      ...world.spawns.map((s) => h('option', { value: s.id }, s.id)));
    const rows = [world.default_zone, ...world.zones].map((zone) => {
      const known = this.zones.get(zone.id);
      const own = typeof zone.capacity === 'number' ? zone.capacity : null;
      const limit = known ? known.capacity ?? own : own;
      const facts = [zone.id, zone.type.replace('_', ' '), limit === null ? 'no limit' : `max ${limit}`];
      if (known && known.inside !== null) facts.push(`${known.inside} inside`);
      const capacity = h('input', { type: 'number', min: 0, max: 10000, placeholder: own === null ? 'none' : String(own), 'aria-label': `Capacity of ${zone.name}`, 'data-field': 'capacity' });
      const where = { world: worldName, zone: zone.id };
      const remember = (/** @type {ZoneSetReply} */ data) => {
        this.zones.set(zone.id, { locked: Boolean(data.locked), capacity: data.capacity ?? null, inside: data.inside ?? 0, recording: known?.recording });
        if (this.tab === 'zones') this.render();
      };
      // Recording: as an admin set it here, else as the world file says (never in an
      // end-to-end encrypted zone: the SFU cannot read its media).
      // Encrypted zones cannot be recorded (the SFU cannot read them), silent ones have no media.
      const recordable = !zone.e2ee && zone.type !== 'silent';
      const recording = recordable && (known?.recording ?? zone.recording === true);
      const allowRecording = (/** @type {boolean} */ allowed) => this.run(
        { action: 'allow_recording', ...where, allowed, reason: this.reason.value.trim() },
        () => {
          const now = this.zones.get(zone.id) ?? { locked: false, capacity: null, inside: null };
          this.zones.set(zone.id, { ...now, recording: allowed });
          if (this.tab === 'zones') this.render();
          return allowed ? `Recording allowed in ${zone.name}` : `Recording forbidden in ${zone.name}`;
        });
      return h('tr', { 'data-zone': zone.id },
        h('td', {},
          h('strong', {}, zone.name), ' ',
          known ? h('span', { class: known.locked ? 'tag warn' : 'tag', 'data-state': known.locked ? 'locked' : 'open' }, known.locked ? 'locked' : 'open') : null, ' ',
          zone.e2ee ? h('span', { class: 'tag', 'data-state': 'e2ee' }, 'end-to-end encrypted') : null, ' ',
          recording ? h('span', { class: 'tag warn', 'data-state': 'recording-allowed' }, 'recording allowed') : null,
          h('div', { class: 'sub' }, facts.join(' · '))),
        h('td', { class: 'actions' },
          h('button', { type: 'button', 'data-action': 'lock', onclick: () => this.run({ action: 'lock_zone', ...where, ...this.takeReason() }, (d) => (remember(d), `Locked ${zone.name}`)) }, 'Lock'),
          h('button', { type: 'button', 'data-action': 'unlock', onclick: () => this.run({ action: 'unlock_zone', ...where, ...this.takeReason() }, (d) => (remember(d), `Unlocked ${zone.name}`)) }, 'Unlock'),

          h('label', { class: 'group', title: 'At most this many people; empty: the world file’s own capacity' }, 'Max', capacity,
            h('button', {
              type: 'button', 'data-action': 'capacity', title: 'Empty: the world file’s own capacity',
              onclick: () => {
                const value = capacity.value.trim() === '' ? null : Math.max(0, Math.floor(Number(capacity.value)));
                this.run({ action: 'set_zone_capacity', ...where, capacity: value, ...this.takeReason() },
                  (d) => (remember(d), value === null ? `${zone.name}: the world file’s capacity again` : `${zone.name}: at most ${value}`));
              },
            }, 'Set')),
          h('button', {
            type: 'button', class: 'danger', 'data-action': 'end-meeting',
            onclick: () => this.run({ action: 'end_meeting', ...where, spawn: spawn.value, ...this.takeReason() },
              (/** @type {MovedReply} */ d) => `Ended the meeting in ${zone.name}: ${d.moved ?? 0} moved to ${spawn.value}`),
          }, 'End meeting'),
          // A line of its own: who may start a recording here.
          recordable
            ? h('div', { class: 'line' },
              h('button', { type: 'button', 'data-action': 'allow-recording', title: 'People inside may start a recording (everyone inside is told)', onclick: () => allowRecording(true) }, 'Allow recording'),
              h('button', { type: 'button', 'data-action': 'forbid-recording', title: 'Nobody inside may start a recording; one in progress stops', onclick: () => allowRecording(false) }, 'Forbid recording'))
            : null));
    });
    return h('section', { 'data-section': 'zones' },
      h('div', { class: 'bar' }, h('span', {}, `Zones of ${world.name}`), h('label', {}, 'End meeting sends people to ', spawn)),
      h('table', {}, h('tbody', {}, ...rows)));
  }

  renderBroadcast() {
    const { world, worldName } = this.context();
    const stages = world ? [world.default_zone, ...world.zones].filter((z) => z.type === 'stage') : [];
    if (!stages.some((z) => z.id === this.ingestDraft.zone)) this.ingestDraft.zone = stages[0]?.id ?? '';
    let form;
    if (!world) {
      form = h('p', { class: 'empty' }, 'The world is still loading.');
    } else if (!stages.length) {
      form = h('p', { class: 'empty' }, `${world.name} has no stage: ingest keys are for stage zones only.`);
    } else {
      const stage = h('select', { id: 'admin-ingest-stage', onchange: () => { this.ingestDraft.zone = stage.value; } },
        ...stages.map((z) => h('option', { value: z.id }, z.name)));
      stage.value = this.ingestDraft.zone;
      const name = h('input', {
        id: 'admin-ingest-name', type: 'text', maxLength: 100, autocomplete: 'off', placeholder: 'Keynote', value: this.ingestDraft.name,
        oninput: () => { this.ingestDraft.name = name.value; },
      });
      const create = () => {
        const label = name.value.trim();
        if (!label) return this.setResult(false, 'Name the stream first: listeners see it under that name.');
        const zone = stages.find((z) => z.id === stage.value);
        if (!zone) return;
        this.run({ action: 'create_ingest_key', world: worldName, zone: zone.id, name: label, ...this.takeReason() },
          (/** @type {IngestKeyCreatedReply} */ d) => {
            this.createdKey = { id: d.id, key: d.key, name: label };
            this.ingestDraft.name = '';
            this.revoking = '';
            this.loadIngestKeys();
            if (this.tab === 'broadcast') this.render();
            return `Made a key for ${label} on ${zone.name}: copy it now`;
          });
      };
      form = h('div', { class: 'bar ingest-form' },
        h('label', { for: 'admin-ingest-stage' }, 'Stage ', stage),
        h('label', { for: 'admin-ingest-name', title: 'What listeners see the stream as' }, 'Name ', name),
        h('button', { type: 'button', 'data-action': 'create-ingest-key', onclick: create }, 'Make key'));
    }
    return h('section', { 'data-section': 'broadcast' },
      h('div', { class: 'bar' }, h('span', {}, 'Ingest keys let a WHIP broadcaster (OBS) stream to a stage.'),
        h('button', { type: 'button', onclick: () => this.loadIngestKeys() }, 'Refresh')),
      form,
      this.createdKey ? this.renderCreatedKey(this.createdKey) : null,
      this.renderIngestKeys());
  }

  /** The key just made, to copy; the server never shows it again. @param {{id: string, key: string, name: string}} created */
  renderCreatedKey(created) {
    const server = `${location.origin}/v1/whip`;
    const field = h('input', {
      id: 'admin-ingest-key', type: 'text', readOnly: true, value: created.key, spellcheck: false, autocomplete: 'off',
      'aria-describedby': 'admin-ingest-note', onfocus: () => field.select(),
    });
    const copy = async () => {
      field.focus();
      field.select();
      try {
        await navigator.clipboard.writeText(created.key);
        this.setResult(true, 'Copied the key');
      } catch {
        // No clipboard here (a page not served over HTTPS, or permission refused).
        this.setResult(false, 'Cannot copy here: the key is selected, copy it with Ctrl+C');
      }
    };
    return h('div', { class: 'created-key', 'data-key-id': created.id },
      h('label', { for: 'admin-ingest-key' }, `Key for ${created.name}`),
      h('div', { class: 'group' }, field,
        h('button', { type: 'button', 'data-action': 'copy-ingest-key', onclick: copy }, 'Copy'),
        h('button', { type: 'button', 'data-action': 'dismiss-ingest-key', title: 'Hide the key: it cannot be shown again', onclick: () => { this.createdKey = null; this.render(); } }, 'Done')),
      h('p', { id: 'admin-ingest-note', class: 'note' },
        'Shown once: paste it into OBS (Service: WHIP, Server: ', h('code', {}, server), ', Bearer token: the key)'));
  }

  renderIngestKeys() {
    if (!this.ingestKeys.length) return h('p', { class: 'empty' }, 'No ingest keys yet.');
    const rows = this.ingestKeys.map((k) => {
      const revoked = k.revoked_at !== null && k.revoked_at !== undefined;
      const confirming = !revoked && this.revoking === k.id;
      const revoke = () => {
        this.revoking = '';
        this.run({ action: 'revoke_ingest_key', id: k.id, ...this.takeReason() }, (/** @type {IngestKeyRevokedReply} */ d) => {
          if (this.createdKey?.id === k.id) this.createdKey = null;
          this.loadIngestKeys();
          return d.ended ? `Revoked the key for ${k.name}: its stream ended` : `Revoked the key for ${k.name}`;
        });
      };
      return h('tr', { 'data-ingest-key': k.id, class: revoked ? 'revoked' : '' },
        h('td', {},
          h('strong', {}, k.name), ' ',
          revoked
            ? h('span', { class: 'tag', 'data-state': 'revoked' }, 'revoked')
            : h('span', { class: 'tag', 'data-state': 'in-force' }, 'in force'),
          h('div', { class: 'sub' }, h('code', { title: 'key ID' }, k.id))),
        h('td', {}, `${k.world} · ${this.zoneName(k.world, k.zone)}`),
        h('td', { class: 'time' },
          formatTime(k.created_at), h('div', { class: 'sub', title: k.created_by }, `by ${this.nameOf(k.created_by)}`),
          revoked ? h('div', { class: 'sub' }, `revoked ${formatTime(/** @type {number} */ (k.revoked_at))}`) : null),
        h('td', { class: 'actions' },
          revoked ? null : h('button', {
            type: 'button', class: 'danger', 'data-action': 'revoke-ingest-key', 'aria-label': `Revoke the key for ${k.name}…`,
            'aria-expanded': String(confirming), title: 'Ends its stream, if live; the key is refused from then on',
            onclick: () => { this.revoking = confirming ? '' : k.id; this.render(); },
          }, 'Revoke…'),
          confirming
            ? h('div', { class: 'line' },
              h('button', { type: 'button', class: 'danger', 'data-action': 'confirm-revoke', 'aria-label': `Revoke the key for ${k.name} for good`, onclick: revoke }, 'Revoke'),
              h('button', { type: 'button', onclick: () => { this.revoking = ''; this.render(); } }, 'Cancel'))
            : null));
    });
    return h('table', { class: 'ingest-keys' },
      h('thead', {}, h('tr', {}, ...['Key', 'Stage', 'Made', 'Actions'].map((t) => h('th', {}, t)))),
      h('tbody', {}, ...rows));
  }

  renderNotice() {
    const { world, worldName } = this.context();
    const text = h('textarea', { id: 'admin-notice-text', rows: 3, maxLength: 1000, placeholder: 'Fire drill at 15:00' });
    const target = h('select', { 'aria-label': 'Send to', 'data-field': 'notice-zone' },
      h('option', { value: '' }, `Everyone in ${world?.name ?? worldName}`),
      ...(world ? [world.default_zone, ...world.zones] : []).map((z) => h('option', { value: z.id }, `Only ${z.name}`)));
    const send = () => {
      const message = text.value.trim();
      if (!message) return this.setResult(false, 'Write the notice first.');
      this.run({ action: 'notice', world: worldName, text: message, ...(target.value ? { zone: target.value } : {}) }, (/** @type {NoticeReply} */ d) => {
        text.value = '';
        return `Notice shown to ${d.reached === 1 ? '1 person' : `${d.reached ?? 0} people`}`;
      });
    };
    return h('section', { 'data-section': 'notice' },
      h('label', { for: 'admin-notice-text' }, 'Notice'), text,
      h('div', { class: 'bar' }, target, h('button', { type: 'button', 'data-action': 'send-notice', onclick: send }, 'Send notice')));
  }

  renderAudit() {
    const rows = this.audit.map((e) => h('tr', { 'data-entry': e.id, class: e.outcome === 'done' ? '' : 'refused' },
      h('td', { class: 'time' }, formatTime(e.created_at)),
      h('td', { title: e.actor }, this.nameOf(e.actor)),
      h('td', { class: 'action', 'data-action': e.action }, e.action.replaceAll('_', ' ')),
      h('td', { title: e.target }, this.nameOf(e.target)),
      h('td', { class: 'wrap' }, e.reason),
      h('td', { class: 'wrap' }, e.detail),
      h('td', { class: 'outcome' }, e.outcome)));
    return h('section', { 'data-section': 'audit' },
      h('div', { class: 'bar' }, h('span', {}, `${this.audit.length} entries, newest first`),
        h('button', { type: 'button', onclick: () => this.loadAudit(false) }, 'Refresh')),
      h('div', { class: 'scroll' }, h('table', { class: 'audit' },
        h('thead', {}, h('tr', {}, ...['Time', 'Actor', 'Action', 'Target', 'Reason', 'Detail', 'Outcome'].map((t) => h('th', {}, t)))),
        h('tbody', {}, ...rows))),
      this.auditMore ? h('button', { type: 'button', 'data-action': 'older', onclick: () => this.loadAudit(true) }, 'Older entries') : null);
  }
}
