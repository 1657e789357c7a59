// Camera, microphone and peer connections, following the server's media plan.
//
// The server decides the topology; this module only carries it out: one
// RTCPeerConnection per peer in the plan (the initiator offers), relay-only when the link
// says so, and a report to the server when direct connectivity fails so it can hand out
// a relayed path. Zones the server puts on the SFU get one session with it instead
// (sfu.js).
//
// Media comes back after a media server fails. A relayed link whose path is lost (the
// TURN server restarted and its allocations are gone) is started over by its initiator
// with an ICE restart, again and again with a growing jittered wait while it stays down,
// so a new allocation is made soon after TURN answers again. An SFU session that drops
// while the plan still says SFU is made again the same way; when signaling finds the SFU
// gone, the plan moves the zone to peer-to-peer and the session is closed.
//
// An admin's mute arrives in the plan too. Muted here (`audio_muted` / `video_muted` on
// the plan): that kind's senders carry no track until a plan lifts it, whatever the user
// clicks. A peer muted (the flags on its link): its audio is not played and its video not
// shown, though the peer's own client should have stopped sending them anyway. A peer
// that may not publish here (`listen_only`: a stage's audience) has nothing it sends
// played at all, screens included.
//
// An end-to-end encrypted zone (`e2ee` on the plan) has its SFU session's frames sealed
// with the zone's key (e2ee.js); a browser that cannot do that does not join the SFU
// session there at all rather than send media the SFU could read.

import { E2ee } from './e2ee.js';
import { Connection } from './net.js';
import { SfuSession } from './sfu.js';
import { SpatialAudio } from './spatial.js';
import { reconnectDelay } from './backoff.js';

/**
 * @typedef {{urls: string[], username?: string, credential?: string}} IceServer
 * @typedef {{avatar: number, initiator: boolean, relay: boolean, audio_muted?: boolean, video_muted?: boolean, listen_only?: boolean}} PeerLink
 * @typedef {{topology: string, ice_servers: IceServer[], peers: PeerLink[], publish: boolean,
 *   sfu?: {url: string, room: string, token: string}, audio_muted?: boolean, video_muted?: boolean, e2ee?: boolean}} MediaPlan
 * @typedef {'audio' | 'video'} Kind
 */

/** How long a relayed link may stay 'disconnected' before its initiator restarts ICE. */
const RELAY_DISCONNECTED_MS = 3000;
/** The least wait between ICE restarts (gathering a relay candidate takes a moment), and the backoff's base. */
const ICE_RESTART_MS = 1000;

/**
 * Alone this long (no peer and no SFU session to send to), the camera and microphone are
 * stopped; they start again as soon as a plan pairs us with someone.
 */
export const CAPTURE_REST_MS = 10000;

/** @param {RTCIceConnectionState} state */
const iceUp = (state) => state === 'connected' || state === 'completed';

/** A fresh ID for one negotiation session between two peers. */
const newEpoch = () => Math.random().toString(36).slice(2, 10);

class Peer {
  /**
   * @param {Media} media @param {PeerLink} link @param {MediaPlan} plan
   */
  constructor(media, link, plan) {
    this.media = media;
    this.link = link;
    // Every signal of one session carries its epoch: the initiator picks it, the other
    // side adopts it from the offer, and signals of an older session (a connection the
    // plan already replaced) are dropped instead of corrupting the new one.
    /** @type {string | null} */
    this.epoch = link.initiator ? newEpoch() : null;
    /** @type {RTCIceCandidateInit[]} */
    this.pendingCandidates = [];
    /** ICE restarts since the link was last connected (relayed links, initiator side). */
    this.restarts = 0;
    /** ICE restarts in this link's life, for tests and debugging. */
    this.totalRestarts = 0;
    /** @type {ReturnType<typeof setTimeout> | null} the next ICE restart, when one is due */
    this.restartTimer = null;
    /** The transceivers that carry (or carried) our screen share on this link. @type {Set<RTCRtpTransceiver>} */
    this.screenTransceivers = new Set();
    /** The stream ID of the peer's screen share, as its last offer or answer said. @type {string | null} */
    this.remoteScreen = null;
    /** The tile showing the peer's screen. @type {HTMLElement | null} */
    this.screenTile = null;
    /** The share we last asked the initiator to make room for. @type {string | null} */
    this.askedRoomFor = null;
    this.pc = new RTCPeerConnection({
      iceServers: plan.ice_servers,
      iceTransportPolicy: link.relay ? 'relay' : 'all',
    });
    this.video = document.createElement('video');
    this.video.autoplay = true;
    this.video.playsInline = true;
    this.video.dataset.avatar = String(link.avatar);
    this.tile = document.createElement('figure');
    this.tile.className = 'tile';
    const caption = document.createElement('figcaption');
    caption.textContent = media.nameOf(link.avatar);
    this.badge = document.createElement('span');
    this.badge.className = 'badge';
    caption.append(this.badge);
    this.tile.append(this.video, caption);
    media.tiles.append(this.tile);
    if (plan.publish && media.local) {
      for (const track of media.local.getTracks()) this.pc.addTrack(track, media.local);
      if (media.screen && link.initiator) this.addScreen(media.screen);
    } else if (link.initiator) {
      // The offer needs m-lines to receive on; the answering side gets its transceivers
      // from the offer (ones added here would never be negotiated).
      this.pc.addTransceiver('audio', { direction: 'recvonly' });
      this.pc.addTransceiver('video', { direction: 'recvonly' });
    }
    this.pc.ontrack = (event) => {
      // A stage's audience may not publish: whatever such a peer sends is not played.
      if (this.link.listen_only) return;
      if (event.streams[0] && event.streams[0].id === this.remoteScreen) {
        this.showScreen(event.streams[0]);
        return;
      }
      this.video.srcObject = event.streams[0] ?? new MediaStream([event.track]);
      this.applyMute();
      media.watchSpeaking(link.avatar, /** @type {MediaStream} */ (this.video.srcObject));
      media.spatial.attach(link.avatar, /** @type {MediaStream} */ (this.video.srcObject), this.video);
    };
    this.pc.onicecandidate = (event) => {
      if (event.candidate && this.epoch) media.signal(link.avatar, 'candidate', { epoch: this.epoch, candidate: event.candidate.toJSON() });
    };
    this.pc.oniceconnectionstatechange = () => {
      const state = this.pc.iceConnectionState;
      // A direct link that fails asks the server for a relayed path; a relayed one has
      // nothing better to ask for and is started over instead.
      if (state === 'failed' && !this.link.relay) media.connection.send({ type: 'media_report', ice: 'failed' });
      if (this.link.relay && this.link.initiator) this.watchRelay(state);
    };
    this.applyMute();
    if (media.lowBandwidth) this.setVideoDirection(false);
    if (link.initiator) this.offer();
  }

  /**
   * The initiator of a relayed link restarts ICE when it failed, or stayed disconnected
   * for a few seconds: its TURN allocation may be gone. @param {RTCIceConnectionState} state
   */
  watchRelay(state) {
    if (iceUp(state) || state === 'closed') {
      this.cancelRestart();
      if (iceUp(state)) this.restarts = 0;
    } else if (this.restartTimer === null && (state === 'failed' || state === 'disconnected')) {
      this.scheduleRestart(state === 'failed' ? 0 : RELAY_DISCONNECTED_MS);
    }
  }

  /** @param {number} delay */
  scheduleRestart(delay) {
    this.cancelRestart();
    this.restartTimer = setTimeout(() => {
      this.restartTimer = null;
      if (this.pc.signalingState === 'closed' || iceUp(this.pc.iceConnectionState)) return;
      this.restartIce().catch((error) => console.warn('ICE restart failed', error));
    }, delay);
  }

  cancelRestart() {
    if (this.restartTimer !== null) clearTimeout(this.restartTimer);
    this.restartTimer = null;
  }

  /**
   * New ICE credentials in a new offer of the same session (the epoch stays: the other
   * side keeps its connection and answers). Until the link is up, another restart
   * follows after a growing, jittered wait, so links that a TURN restart cut do not all
   * come back at the same instant.
   */
  async restartIce() {
    this.restarts += 1;
    this.totalRestarts += 1;
    this.scheduleRestart(ICE_RESTART_MS + reconnectDelay(this.restarts, ICE_RESTART_MS));
    this.pc.restartIce();
    await this.offer();
  }

  /** Plays and shows only what no admin muted on this link. */
  applyMute() {
    const audioMuted = Boolean(this.link.audio_muted);
    const videoMuted = Boolean(this.link.video_muted);
    for (const receiver of this.pc.getReceivers()) {
      if (receiver.track.kind === 'audio') receiver.track.enabled = !audioMuted;
      if (receiver.track.kind === 'video') receiver.track.enabled = !videoMuted;
    }
    // WebAudio plays the voice when distance audio routes it; the element then stays silent.
    this.video.dataset.adminMuted = String(audioMuted);
    this.video.muted = audioMuted || this.video.dataset.spatial === 'true';
    this.tile.classList.toggle('audio-muted', audioMuted);
    this.tile.classList.toggle('video-muted', videoMuted);
    const muted = [audioMuted && 'audio', videoMuted && 'video'].filter(Boolean).join(' and ');
    this.badge.textContent = muted ? `${muted} muted by an admin` : '';
  }

  async offer() {
    const offer = await this.pc.createOffer();
    await this.pc.setLocalDescription(offer);
    this.media.signal(this.link.avatar, 'offer', { epoch: this.epoch, description: this.pc.localDescription?.toJSON(), screen: this.sharing() });
  }

  /** @param {string} kind @param {any} data */
  async receive(kind, data) {
    if (kind === 'offer') {
      this.epoch = data.epoch;
      this.peerScreen(data.screen);
      await this.pc.setRemoteDescription(data.description);
      await this.attachLocal();
      const screenWaits = !(await this.attachScreen());
      if (this.media.lowBandwidth) this.setVideoDirection(false);
      const answer = await this.pc.createAnswer();
      await this.pc.setLocalDescription(answer);
      this.media.signal(this.link.avatar, 'answer', { epoch: this.epoch, description: this.pc.localDescription?.toJSON(), screen: this.sharing() });
      await this.flushCandidates();
      // Our screen found no place in this offer: ask for one.
      if (screenWaits) this.askForScreenRoom();
    } else if (data.epoch !== this.epoch) {
      // An answer or candidate of an older session: not for this connection.
    } else if (kind === 'answer') {
      this.peerScreen(data.screen);
      await this.pc.setRemoteDescription(data.description);
      await this.flushCandidates();
    } else if (kind === 'candidate') {
      if (this.pc.remoteDescription) await this.pc.addIceCandidate(data.candidate);
      else this.pendingCandidates.push(data.candidate);
    } else if (kind === 'renegotiate' && this.link.initiator) {
      // The other side has tracks to add; only the initiator offers, with room for a
      // screen share when it asks (transceivers that only receive, for it to send on).
      for (const [trackKind, count] of Object.entries(data.room ?? {})) {
        for (let i = 0; i < Math.min(2, Number(count) || 0); i++) this.pc.addTransceiver(trackKind, { direction: 'recvonly' });
      }
      await this.offer();
    }
  }

  /** The stream ID of the screen we share on this link, or null. */
  sharing() {
    return this.media.plan?.publish && this.media.screen ? this.media.screen.id : null;
  }

  /** The peer says which of its streams is a screen share (or none): a share that ended goes. @param {string | null | undefined} id */
  peerScreen(id) {
    const screen = id ?? null;
    if (screen === this.remoteScreen) return;
    this.remoteScreen = screen;
    this.screenTile?.remove();
    this.screenTile = null;
  }

  /** The peer's screen share, in a tile of its own. @param {MediaStream} stream */
  showScreen(stream) {
    if (!this.screenTile) {
      const video = document.createElement('video');
      video.autoplay = true;
      video.playsInline = true;
      video.dataset.avatar = String(this.link.avatar);
      video.dataset.screen = 'true';
      const caption = document.createElement('figcaption');
      caption.textContent = `${this.media.nameOf(this.link.avatar)}'s screen`;
      this.screenTile = document.createElement('figure');
      this.screenTile.className = 'tile screen';
      this.screenTile.append(video, caption);
      this.media.tiles.append(this.screenTile);
    }
    const video = /** @type {HTMLVideoElement} */ (this.screenTile.querySelector('video'));
    if (video.srcObject !== stream) video.srcObject = stream;
  }

  /** The initiator adds the screen's tracks as new transceivers. @param {MediaStream} stream */
  addScreen(stream) {
    for (const track of stream.getTracks()) {
      const sender = this.pc.addTrack(track, stream);
      const transceiver = this.pc.getTransceivers().find((t) => t.sender === sender);
      if (transceiver) this.screenTransceivers.add(transceiver);
    }
  }

  /**
   * The answering side puts the screen's tracks on free transceivers of the offer.
   * Returns false if some track found none (it must ask for room).
   */
  async attachScreen() {
    const stream = this.media.plan?.publish ? this.media.screen : null;
    if (!stream) return true;
    let placed = true;
    for (const track of stream.getTracks()) {
      if (this.pc.getSenders().some((s) => s.track === track)) continue;
      const transceiver = this.pc
        .getTransceivers()
        .find((t) => t.mid !== null && t.currentDirection !== 'stopped' && !t.sender.track && t.receiver.track.kind === track.kind
          && (this.screenTransceivers.has(t) || !this.cameraTransceiver(t)));
      if (!transceiver) {
        placed = false;
        continue;
      }
      await transceiver.sender.replaceTrack(track);
      transceiver.sender.setStreams(stream);
      transceiver.direction = 'sendrecv';
      this.screenTransceivers.add(transceiver);
    }
    return placed;
  }

  /** Whether a transceiver is the camera's or microphone's: the first of its kind. @param {RTCRtpTransceiver} transceiver */
  cameraTransceiver(transceiver) {
    const kind = transceiver.receiver.track.kind;
    return this.pc.getTransceivers().find((t) => t.receiver.track.kind === kind && !this.screenTransceivers.has(t)) === transceiver;
  }

  askForScreenRoom() {
    const stream = this.media.screen;
    // Once per share: a peer that cannot make room is not asked again and again.
    if (!stream || !this.epoch || this.askedRoomFor === stream.id) return;
    this.askedRoomFor = stream.id;
    const room = { video: stream.getVideoTracks().length, audio: stream.getAudioTracks().length };
    this.media.signal(this.link.avatar, 'renegotiate', { epoch: this.epoch, room });
  }

  /** Our screen share started or stopped: this link carries it, or no more, and renegotiates. */
  async sendScreen() {
    const stream = this.media.plan?.publish ? this.media.screen : null;
    for (const transceiver of this.screenTransceivers) {
      const track = transceiver.sender.track;
      if (!track || (stream && stream.getTracks().includes(track))) continue;
      await transceiver.sender.replaceTrack(null);
      transceiver.direction = 'recvonly';
    }
    if (!this.epoch) return;
    if (this.link.initiator) {
      if (stream) this.addScreen(stream);
      await this.offer();
    } else if (!(await this.attachScreen())) {
      this.askForScreenRoom();
    } else {
      this.media.signal(this.link.avatar, 'renegotiate', { epoch: this.epoch });
    }
  }

  /**
   * Puts local tracks on negotiated transceivers that only receive (the connection was
   * made before the camera and microphone were ready). Returns whether any was added.
   */
  async attachLocal() {
    const local = this.media.local;
    if (!local || !this.media.plan?.publish) return false;
    let added = false;
    for (const track of local.getTracks()) {
      // A withheld kind gets its sender when the mute (or low bandwidth) is lifted.
      if (this.media.withheld(/** @type {Kind} */ (track.kind))) continue;
      if (this.pc.getSenders().some((s) => s.track === track)) continue;
      const transceiver = this.pc
        .getTransceivers()
        .find((t) => t.mid !== null && t.currentDirection !== 'stopped' && !t.sender.track && t.receiver.track.kind === track.kind
          && !this.screenTransceivers.has(t));
      if (!transceiver) continue;
      await transceiver.sender.replaceTrack(track);
      transceiver.sender.setStreams(local);
      transceiver.direction = 'sendrecv';
      added = true;
    }
    return added;
  }

  /** The camera and microphone became ready: send them, and renegotiate. */
  async sendLocal() {
    if (!this.epoch || !(await this.attachLocal())) return;
    if (this.link.initiator) await this.offer();
    else this.media.signal(this.link.avatar, 'renegotiate', { epoch: this.epoch });
  }

  /**
   * Points the video transceivers at receiving video, or not (low bandwidth: the peer
   * then sends none). Returns whether a direction changed.
   * @param {boolean} wanted
   */
  setVideoDirection(wanted) {
    let changed = false;
    for (const transceiver of this.pc.getTransceivers()) {
      if (transceiver.currentDirection === 'stopped' || transceiver.receiver.track.kind !== 'video') continue;
      const sending = Boolean(transceiver.sender.track) && !this.media.withheld('video');
      const direction = wanted ? (sending ? 'sendrecv' : 'recvonly') : sending ? 'sendonly' : 'inactive';
      if (transceiver.direction === direction) continue;
      transceiver.direction = direction;
      changed = true;
    }
    return changed;
  }

  /** Receives video from this peer again, or no more; the link renegotiates. @param {boolean} wanted */
  async receiveVideo(wanted) {
    if (!this.setVideoDirection(wanted) || !this.epoch) return;
    if (this.link.initiator) await this.offer();
    else this.media.signal(this.link.avatar, 'renegotiate', { epoch: this.epoch });
  }

  async flushCandidates() {
    for (const candidate of this.pendingCandidates.splice(0)) await this.pc.addIceCandidate(candidate);
  }

  close() {
    this.cancelRestart();
    this.pc.close();
    this.tile.remove();
    this.screenTile?.remove();
    this.media.spatial.detach(this.link.avatar);
  }
}

export class Media {
  /**
   * @param {Connection} connection @param {HTMLElement} tiles where video tiles go
   * @param {(avatar: number) => string} nameOf
   */
  constructor(connection, tiles, nameOf) {
    this.connection = connection;
    this.tiles = tiles;
    this.nameOf = nameOf;
    /** @type {MediaStream | null} */
    this.local = null;
    /** @type {Map<number, Peer>} */
    this.peers = new Map();
    /** @type {MediaPlan | null} */
    this.plan = null;
    /** @type {SfuSession | null} */
    this.sfu = null;
    /** The keys of an end-to-end encrypted zone and the worker sealing its frames. */
    this.e2ee = new E2ee();
    /** How the camera goes to the SFU: 'vp8' (simulcast) or 'vp9' (spatial layers, `?camera=vp9`). */
    this.cameraCodec = 'vp8';
    /** @type {Set<number>} avatars heard speaking */
    this.speaking = new Set();
    /** @type {AudioContext | null} */
    this.audio = null;
    /** Voices by distance in open zones. */
    this.spatial = new SpatialAudio(() => (this.audio ??= new AudioContext()));
    this.status = 'none';
    /** Kinds the user turned off with the buttons. */
    this.userOff = { audio: false, video: false };
    /** Kinds an admin muted (the plan says so). */
    this.adminMuted = { audio: false, video: false };
    /** Senders emptied because of an admin's mute, with the kind they sent. @type {Map<RTCRtpSender, Kind>} */
    this.mutedSenders = new Map();
    /** The kinds withheld from every connection (admin mutes and low bandwidth) last carried out. */
    this.applied = { audio: false, video: false };
    /** Audio only: we send no video and ask for none (peers renegotiate, the SFU is told). */
    this.lowBandwidth = false;
    /** Called when what is drawn of media changes (someone starts or stops speaking). */
    this.onChange = () => {};
    /** The devices picked last (empty: the browser's default). */
    this.devices = { audio: '', video: '' };
    /** Camera and microphone stopped because nobody would receive them. */
    this.resting = false;
    /** Called when they stop or start again for that reason. @type {(resting: boolean) => void} */
    this.onRest = () => {};
    /** Called when our own camera's stream changes (started, changed device, at rest). */
    this.onLocal = () => {};
    /** Our screen share, if any. @type {MediaStream | null} */
    this.screen = null;
    /** Called when our screen share starts or ends. */
    this.onScreen = () => {};
    /** @type {ReturnType<typeof setTimeout> | undefined} */
    this.restTimer = undefined;
    /** Starting and stopping devices, one at a time. @type {Promise<unknown>} */
    this.capture = Promise.resolve();
  }

  /** Whether anyone may receive what we capture: a peer, or the SFU. */
  captureWanted() {
    const plan = this.plan;
    return Boolean(plan && plan.publish && (plan.peers.length > 0 || this.sfuUsable(plan)));
  }

  /**
   * Whether `plan` puts us on the SFU and we can join it: where the zone wants its media
   * sealed, only if this browser can seal it. @param {MediaPlan} plan
   */
  sfuUsable(plan) {
    return Boolean(plan.topology === 'sfu' && plan.sfu && (!plan.e2ee || this.e2ee.mode !== null));
  }

  /**
   * Capture follows the plan: a camera that nobody receives costs the machine (and its
   * light says it watches), so after a while alone it stops; a plan that pairs us with
   * someone starts it again at once, and its tracks replace the stopped ones on every
   * sender (as after a device change).
   */
  followCapture() {
    clearTimeout(this.restTimer);
    if (this.captureWanted()) {
      if (this.resting) this.capture = this.capture.then(() => this.wakeCapture());
      return;
    }
    if (!this.resting && this.local) this.restTimer = setTimeout(() => (this.capture = this.capture.then(() => this.restCapture())), CAPTURE_REST_MS);
  }

  async restCapture() {
    if (this.resting || this.captureWanted() || !this.local) return;
    this.resting = true;
    this.local.getTracks().forEach((t) => t.stop());
    this.onRest(true);
    this.onLocal();
  }

  async wakeCapture() {
    if (!this.resting) return;
    this.resting = false;
    await this.start(this.devices.audio, this.devices.video);
    this.onRest(false);
  }

  /** Whether `kind` is sent to nobody: an admin muted it, or low bandwidth leaves out video. @param {Kind} kind */
  withheld(kind) {
    return this.adminMuted[kind] || (kind === 'video' && this.lowBandwidth);
  }

  /**
   * Audio only, or back to video: our camera stops going out and others' video stops
   * coming in (P2P links renegotiate their video as inactive; the SFU is subscribed with
   * video off), so the link carries audio alone.
   * @param {boolean} on
   */
  async setLowBandwidth(on) {
    this.lowBandwidth = on;
    this.tiles.classList.toggle('low-bandwidth', on);
    this.onLocal();
    await this.applySelfMute();
    for (const peer of this.peers.values()) await peer.receiveVideo(!on);
    this.sfu?.wantVideo(!on);
  }

  /** Starts camera and microphone; without them this client still receives. */
  async start(audioDevice = '', videoDevice = '') {
    this.devices = { audio: audioDevice, video: videoDevice };
    this.resting = false;
    try {
      this.local?.getTracks().forEach((t) => t.stop());
      this.local = await navigator.mediaDevices.getUserMedia({
        audio: audioDevice ? { deviceId: { exact: audioDevice } } : true,
        // 640x360 leaves room for two simulcast layers on the SFU.
        video: videoDevice ? { deviceId: { exact: videoDevice }, width: 640, height: 360 } : { width: 640, height: 360 },
      });
      await this.sfu?.publishLocal();
      const connections = [...this.peers.values()].map((peer) => peer.pc);
      if (this.sfu) connections.push(this.sfu.pc);
      // A device change: the new tracks replace the old ones, no renegotiation.
      for (const pc of connections) {
        for (const sender of pc.getSenders()) {
          const track = this.local.getTracks().find((t) => t.kind === sender.track?.kind);
          if (track) await sender.replaceTrack(track);
        }
      }
      // Connections made before the camera was ready start sending now.
      for (const peer of this.peers.values()) await peer.sendLocal();
      await this.applySelfMute();
      this.followCapture();
      this.onLocal();
      return true;
    } catch (error) {
      console.warn('no camera or microphone', error);
      return false;
    }
  }

  /** Whether we may share a screen now: allowed to publish, video not muted by an admin. */
  canShareScreen() {
    return Boolean(this.plan?.publish) && !this.adminMuted.video;
  }

  /**
   * Shares a screen, a window or a tab (the browser asks which), with its sound where the
   * browser offers it, on every link: peers renegotiate, the SFU gets tracks of source
   * `screen`. The browser's own "stop sharing" ends it everywhere. Resolves to an error
   * text, or '' when sharing.
   */
  async shareScreen() {
    if (!this.canShareScreen()) return 'You may not share here: only people who may speak can share, and not while an admin muted your video.';
    let stream;
    try {
      // Text stays sharp: full resolution at a low frame rate.
      stream = await navigator.mediaDevices.getDisplayMedia({ video: { frameRate: { ideal: 15, max: 15 } }, audio: true });
    } catch (error) {
      return `Not sharing: ${/** @type {Error} */ (error).message}`;
    }
    this.stopScreen();
    for (const track of stream.getVideoTracks()) {
      track.contentHint = 'detail';
      track.addEventListener('ended', () => this.screen === stream && this.stopScreen());
    }
    this.screen = stream;
    this.onScreen();
    for (const peer of this.peers.values()) await peer.sendScreen();
    await this.sfu?.shareScreen(stream);
    return '';
  }

  /** Ends our screen share everywhere. */
  stopScreen() {
    const stream = this.screen;
    if (!stream) return;
    this.screen = null;
    stream.getTracks().forEach((t) => t.stop());
    this.onScreen();
    for (const peer of this.peers.values()) peer.sendScreen().catch((error) => console.warn('cannot stop sharing on a link', error));
    this.sfu?.shareScreen(null);
  }

  /** The user's own mute button. @param {Kind} kind @param {boolean} enabled */
  setEnabled(kind, enabled) {
    this.userOff[kind] = !enabled;
    this.applySelfMute();
  }

  /** Every connection this client sends on. */
  connections() {
    const connections = [...this.peers.values()].map((peer) => peer.pc);
    if (this.sfu) connections.push(this.sfu.pc);
    return connections.filter((pc) => pc.signalingState !== 'closed');
  }

  /**
   * Carries out the user's and the admins' mutes: a track is live only if neither turned
   * it off, and a withheld kind (an admin's mute, video in low bandwidth) is not sent at
   * all (its senders carry no track).
   */
  async applySelfMute() {
    for (const track of this.local?.getTracks() ?? []) {
      const kind = /** @type {Kind} */ (track.kind);
      track.enabled = !this.userOff[kind] && !this.adminMuted[kind];
    }
    for (const pc of this.connections()) {
      for (const sender of pc.getSenders()) {
        const kind = /** @type {Kind | undefined} */ (sender.track?.kind);
        if (!kind || !this.withheld(kind)) continue;
        this.mutedSenders.set(sender, kind);
        await sender.replaceTrack(null).catch((error) => console.warn('cannot stop a sender', error));
      }
    }
    for (const [sender, kind] of this.mutedSenders) {
      if (this.withheld(kind)) continue;
      this.mutedSenders.delete(sender);
      const track = this.local?.getTracks().find((t) => t.kind === kind);
      if (track && sender.transport?.state !== 'closed') {
        await sender.replaceTrack(track).catch((error) => console.warn('cannot restart a sender', error));
      }
    }
    const lifted = (this.applied.audio && !this.withheld('audio')) || (this.applied.video && !this.withheld('video'));
    this.applied = { audio: this.withheld('audio'), video: this.withheld('video') };
    // Links made while muted have that kind still to attach (and to negotiate).
    if (lifted) for (const peer of this.peers.values()) await peer.sendLocal();
  }

  /** Whether this client is sending `kind` to nobody because an admin muted it. @param {Kind} kind */
  selfMuted(kind) {
    return this.adminMuted[kind];
  }

  /** Ends every connection (the server closed ours for good). */
  stop() {
    clearTimeout(this.restTimer);
    for (const peer of this.peers.values()) peer.close();
    this.peers.clear();
    this.sfu?.close();
    this.sfu = null;
    // With every link gone, this only ends the capture.
    this.stopScreen();
    this.plan = null;
    this.status = 'none';
    this.mutedSenders.clear();
  }

  /** @param {number} to @param {string} kind @param {any} data */
  signal(to, kind, data) {
    this.connection.send({ type: 'signal', to, kind, data });
  }

  /** @param {MediaPlan} plan */
  applyPlan(plan) {
    const previous = this.plan;
    this.plan = plan;
    this.status = plan.topology;
    // Media the SFU could read is never sent where the zone wants it sealed.
    const onSfu = this.sfuUsable(plan);
    const moved = this.sfu && (this.sfu.room !== plan.sfu?.room || this.sfu.url !== plan.sfu?.url);
    // Whether frames are sealed is settled when the session's connection is made.
    const sealing = this.sfu && Boolean(this.sfu.e2ee) !== Boolean(plan.e2ee);
    if (this.sfu && (!onSfu || moved || sealing || previous?.publish !== plan.publish)) {
      this.sfu.close();
      this.sfu = null;
    }
    if (onSfu && !this.sfu) this.openSfu(plan);
    const wanted = new Map(plan.peers.map((p) => [p.avatar, p]));
    for (const [avatar, peer] of this.peers) {
      const link = wanted.get(avatar);
      // A link whose relay flag or either side's publish right changed is rebuilt.
      if (!link || link.relay !== peer.link.relay || previous?.publish !== plan.publish || Boolean(link.listen_only) !== Boolean(peer.link.listen_only)) {
        peer.close();
        this.peers.delete(avatar);
      } else {
        // The same connection; an admin may have muted or unmuted that peer.
        peer.link = { ...peer.link, audio_muted: link.audio_muted, video_muted: link.video_muted };
        peer.applyMute();
      }
    }
    this.adminMuted = { audio: Boolean(plan.audio_muted), video: Boolean(plan.video_muted) };
    for (const link of plan.peers) {
      if (!this.peers.has(link.avatar)) this.peers.set(link.avatar, new Peer(this, link, plan));
    }
    this.followCapture();
    // A stage listener, or an admin's mute of video, ends a share (the SFU would refuse it).
    if (this.screen && !this.canShareScreen()) this.stopScreen();
    return this.applySelfMute();
  }

  /** @param {MediaPlan} plan a plan with `sfu` set */
  openSfu(plan) {
    this.sfu = new SfuSession(this, plan);
  }

  /** @param {number} from @param {string} kind @param {any} data */
  async onSignal(from, kind, data) {
    let peer = this.peers.get(from);
    if (!peer || !this.plan) return;
    // A new offer for a connection that already had one: the other side started over.
    if (kind === 'offer' && peer.epoch && peer.epoch !== data?.epoch && !peer.link.initiator) {
      peer.close();
      peer = new Peer(this, peer.link, this.plan);
      this.peers.set(from, peer);
    }
    try {
      await peer.receive(kind, data);
    } catch (error) {
      console.warn(`signal ${kind} from ${from} failed`, error);
    }
  }

  /** Marks an avatar as speaking while its audio is loud enough. @param {number} avatar @param {MediaStream} stream */
  watchSpeaking(avatar, stream) {
    if (!stream.getAudioTracks().length) return;
    this.audio ??= new AudioContext();
    const source = this.audio.createMediaStreamSource(stream);
    const analyser = this.audio.createAnalyser();
    analyser.fftSize = 512;
    source.connect(analyser);
    const samples = new Uint8Array(analyser.fftSize);
    const poll = () => {
      if (!this.peers.has(avatar) && !this.sfu?.avatars.has(avatar)) return;
      analyser.getByteTimeDomainData(samples);
      let peak = 0;
      for (const s of samples) peak = Math.max(peak, Math.abs(s - 128));
      const was = this.speaking.has(avatar);
      if (peak > 12) this.speaking.add(avatar);
      else this.speaking.delete(avatar);
      if (was !== this.speaking.has(avatar)) this.onChange();
      setTimeout(poll, 100);
    };
    poll();
  }

  /** Decoded video frames and audio samples per peer, from getStats. */
  async stats() {
    /** @type {Record<number, {framesDecoded: number, audioSamples: number, relayed: boolean, relayProtocol: string}>} */
    const out = {};
    for (const [avatar, peer] of this.peers) {
      let framesDecoded = 0;
      let audioSamples = 0;
      let relayed = false;
      let relayProtocol = '';
      const report = await peer.pc.getStats();
      report.forEach((s) => {
        if (s.type === 'inbound-rtp' && s.kind === 'video') framesDecoded += s.framesDecoded ?? 0;
        if (s.type === 'inbound-rtp' && s.kind === 'audio') audioSamples += s.totalSamplesReceived ?? 0;
        if (s.type === 'candidate-pair' && s.state === 'succeeded' && s.nominated) {
          const local = report.get(s.localCandidateId);
          if (local?.candidateType === 'relay') {
            relayed = true;
            relayProtocol = local.relayProtocol ?? '';
          }
        }
      });
      out[avatar] = { framesDecoded, audioSamples, relayed, relayProtocol };
    }
    for (const [avatar, received] of Object.entries((await this.sfu?.stats()) ?? {})) {
      out[Number(avatar)] = { ...received, relayed: false, relayProtocol: '' };
    }
    return out;
  }
}
