// One WebRTC session with the SFU, for zones the server put on it.
//
// The client brings the room token from its media plan to the SFU's WebSocket, offers
// its camera (simulcast: two layers) and microphone, and answers the SFU's offers as
// other people's tracks come and go. When both sides offer at once, the SFU gives way:
// this side ignores the SFU's offer while its own is outstanding, and the SFU offers
// again after answering. docs/protocol.md describes the messages.
//
// In an end-to-end encrypted zone (the plan says `e2ee`) every sender's frames are
// sealed and every receiver's opened with the zone's key (e2ee.js), each sender and
// receiver attached exactly once as tracks come with renegotiation. The camera then goes
// as one layer: the SFU cannot read sealed frames, so it could not switch simulcast
// layers cleanly.

/**
 * @typedef {{mid: string, avatar: number, source: string, muted: boolean}} TrackInfo
 * @typedef {{tile: HTMLElement, video: HTMLVideoElement, stream: MediaStream}} AvatarTile
 */

/** A screen share: one layer, enough bits for text at a low frame rate. */
const SCREEN_LAYER = [{ maxBitrate: 1_500_000, maxFramerate: 15 }];

/** Simulcast layers of the camera, lowest first (the SFU picks one per receiver). */
const CAMERA_LAYERS = [
  { rid: 'q', scaleResolutionDownBy: 2, maxBitrate: 200_000 },
  { rid: 'f', scaleResolutionDownBy: 1, maxBitrate: 900_000 },
];

/**
 * The camera as VP9 with three spatial layers (each half the size of the next) in one
 * stream: the SFU sends each receiver the layers it asked for and has room for. Keyframes
 * alone predict across layers (`_KEY`), so the SFU can drop upper layers at any picture.
 */
const CAMERA_SVC = [{ scalabilityMode: 'L3T3_KEY', maxBitrate: 1_200_000 }];

/** The camera in an end-to-end encrypted zone: one layer for everyone. */
const CAMERA_ONE_LAYER = [{ maxBitrate: 900_000 }];

/** The browser's VP9 codecs (profile 0 first) and their retransmission codec, or null. */
function vp9Codecs() {
  const codecs = globalThis.RTCRtpSender?.getCapabilities?.('video')?.codecs ?? [];
  const vp9 = codecs.filter((c) => c.mimeType.toLowerCase() === 'video/vp9');
  if (vp9.length === 0) return null;
  vp9.sort((a, b) => Number(!(a.sdpFmtpLine ?? '').includes('profile-id=0')) - Number(!(b.sdpFmtpLine ?? '').includes('profile-id=0')));
  return [...vp9, ...codecs.filter((c) => c.mimeType.toLowerCase() === 'video/rtx')];
}

export class SfuSession {
  /**
   * @param {import('./media.js').Media} media
   * @param {import('./media.js').MediaPlan} plan a plan with `sfu` set
   */
  constructor(media, plan) {
    this.media = media;
    const sfu = /** @type {{url: string, room: string, token: string}} */ (plan.sfu);
    this.room = sfu.room;
    /** Which SFU node: a room moves to another node when its node is gone. */
    this.url = sfu.url;
    this.publish = plan.publish;
    this.closed = false;
    /** @type {Map<string, TrackInfo>} the tracks received, by mid */
    this.tracks = new Map();
    /** @type {Map<number, AvatarTile>} */
    this.avatars = new Map();
    /** @type {number[]} */
    this.speakers = [];
    this.offerId = 0;
    /** The id of this side's offer awaiting the SFU's answer. @type {number | null} */
    this.outstanding = null;
    this.state = 'connecting';
    /** Seals what we send and opens what we receive, in an end-to-end encrypted zone. */
    this.e2ee = plan.e2ee ? media.e2ee : null;
    /** @type {RTCConfiguration & {encodedInsertableStreams?: boolean}} */
    const config = { iceServers: plan.ice_servers };
    // Chromium's older way to reach encoded frames must be asked for up front.
    if (this.e2ee?.mode === 'streams') config.encodedInsertableStreams = true;
    this.pc = new RTCPeerConnection(config);
    // Small messages to everyone in the room; the SFU tags each with its sender.
    this.channel = this.pc.createDataChannel('isoplane');
    /** @type {{from: number, data: string}[]} the latest messages received, oldest first */
    this.messages = [];
    this.channel.onmessage = (event) => {
      if (typeof event.data !== 'string') return;
      try {
        const { from, data } = JSON.parse(event.data);
        this.messages.push({ from, data });
        if (this.messages.length > 50) this.messages.shift();
      } catch {
        console.warn('unreadable message on the SFU data channel');
      }
    };
    this.joined = false;
    /** The transceivers that carry (or carried) our screen share. @type {RTCRtpTransceiver[]} */
    this.screenTransceivers = [];
    /** Others' screen shares shown, by avatar. @type {Map<number, AvatarTile>} */
    this.screens = new Map();
    /** Whether we receive others' video (not in low bandwidth). */
    this.videoWanted = !media.lowBandwidth;
    /** The avatars last subscribed to without video, as a key. */
    this.subscribedWithoutVideo = '';
    /** Local tracks changed while an offer was outstanding: offer again after. */
    this.renegotiate = false;
    this.addLocalTracks();
    if (this.publish && media.screen) this.addScreenTracks(media.screen);
    this.pc.ontrack = (event) => this.onTrack(event);
    this.pc.onconnectionstatechange = () => {
      if (this.pc.connectionState === 'connected') this.state = 'connected';
      if (this.pc.connectionState === 'failed') this.state = 'failed';
    };
    this.ws = new WebSocket(sfu.url);
    this.ws.onopen = () => this.send({ type: 'join', token: sfu.token });
    // One message at a time: an offer handled while the answer before it is still
    // being applied would see a stale negotiation state.
    /** @type {Promise<void>} */
    this.queue = Promise.resolve();
    this.ws.onmessage = (event) => this.enqueue(() => this.onMessage(JSON.parse(event.data)));
    this.ws.onclose = () => {
      if (!this.closed) this.state = 'disconnected';
    };
  }

  /** Runs `step` after every step queued before it. @param {() => Promise<void>} step */
  enqueue(step) {
    this.queue = this.queue.then(step).catch((error) => console.warn('SFU negotiation step failed', error));
    return this.queue;
  }

  /** @param {any} message */
  send(message) {
    if (this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(message));
  }

  /** @param {any} message */
  async onMessage(message) {
    switch (message.type) {
      case 'joined':
        this.joined = true;
        if (!this.videoWanted) this.sendSubscription();
        await this.offer();
        break;
      case 'answer':
        if (message.id !== this.outstanding) return;
        await this.pc.setRemoteDescription({ type: 'answer', sdp: message.sdp });
        this.outstanding = null;
        if (this.renegotiate) await this.offer();
        break;
      case 'offer':
        // Ours is outstanding: the SFU rolls its offer back and offers again later.
        if (this.outstanding !== null) return;
        this.setTracks(message.tracks);
        await this.pc.setRemoteDescription({ type: 'offer', sdp: message.sdp });
        this.protect();
        await this.pc.setLocalDescription(await this.pc.createAnswer());
        this.send({ type: 'answer', id: message.id, sdp: this.pc.localDescription?.sdp });
        this.dropEndedTracks();
        break;
      case 'tracks':
        this.setTracks(message.tracks);
        break;
      case 'speakers':
        this.speakers = message.avatars;
        break;
      case 'error':
        console.warn(`SFU: ${message.code}: ${message.message}`);
        if (message.fatal) this.state = 'refused';
        break;
      case 'removed':
        this.state = 'removed';
        this.close();
        break;
    }
  }

  /** Sends the camera and microphone, if this client may publish and has them. */
  addLocalTracks() {
    const local = this.media.local;
    if (!this.publish || !local) return false;
    // A sender an admin's mute emptied still holds its kind's place.
    const sending = new Set(this.pc.getSenders().map((sender) => sender.track?.kind ?? this.media.mutedSenders.get(sender)));
    let added = false;
    for (const track of local.getTracks()) {
      if (sending.has(track.kind)) continue;
      if (track.kind === 'video' && this.media.cameraCodec === 'vp9' && !this.e2ee && this.addSvcCamera(track, local)) {
        added = true;
        continue;
      }
      const sendEncodings = track.kind === 'video' ? (this.e2ee ? CAMERA_ONE_LAYER : CAMERA_LAYERS) : undefined;
      this.pc.addTransceiver(track, { direction: 'sendonly', streams: [local], sendEncodings });
      added = true;
    }
    this.protect();
    return added;
  }

  /**
   * Sends the camera as VP9 SVC; false (nothing added) where the browser cannot, and the
   * camera then goes as VP8 simulcast.
   * @param {MediaStreamTrack} track @param {MediaStream} local
   */
  addSvcCamera(track, local) {
    const codecs = vp9Codecs();
    if (!codecs) return false;
    let transceiver;
    try {
      transceiver = this.pc.addTransceiver(track, { direction: 'sendonly', streams: [local], sendEncodings: CAMERA_SVC });
    } catch {
      return false;
    }
    // Offering VP9 alone makes the SFU's answer choose it.
    transceiver.setCodecPreferences(codecs);
    return true;
  }

  /** Camera or microphone came after the session started: publish them now. */
  publishLocal() {
    return this.enqueue(async () => {
      if (!this.addLocalTracks() || !this.joined) return;
      if (this.outstanding !== null) this.renegotiate = true;
      else await this.offer();
    });
  }

  /** @param {MediaStream} stream */
  addScreenTracks(stream) {
    for (const track of stream.getTracks()) {
      const sendEncodings = track.kind === 'video' ? SCREEN_LAYER : undefined;
      this.screenTransceivers.push(this.pc.addTransceiver(track, { direction: 'sendonly', streams: [stream], sendEncodings }));
    }
    this.protect();
  }

  /**
   * In an end-to-end encrypted zone, attaches the encryption to every sender and
   * receiver not attached yet (tracks come with our own offers and with the SFU's).
   */
  protect() {
    if (!this.e2ee) return;
    for (const transceiver of this.pc.getTransceivers()) {
      if (transceiver.currentDirection === 'stopped') continue;
      this.e2ee.protectSender(transceiver.sender);
      this.e2ee.protectReceiver(transceiver.receiver);
    }
  }

  /** Our screen share starts (a stream) or ends (null): its tracks come or go, and we offer again. @param {MediaStream | null} stream */
  shareScreen(stream) {
    return this.enqueue(async () => {
      for (const transceiver of this.screenTransceivers) {
        if (!transceiver.sender.track) continue;
        await transceiver.sender.replaceTrack(null);
        transceiver.direction = 'inactive';
      }
      if (stream && this.publish) this.addScreenTracks(stream);
      if (!this.joined) return;
      if (this.outstanding !== null) this.renegotiate = true;
      else await this.offer();
    });
  }

  async offer() {
    this.renegotiate = false;
    this.outstanding = ++this.offerId;
    await this.pc.setLocalDescription(await this.pc.createOffer());
    // What our screen's sending sections carry; the rest are camera and microphone.
    /** @type {Record<string, string>} */
    const sources = {};
    for (const transceiver of this.screenTransceivers) {
      const track = transceiver.sender.track;
      if (track && transceiver.mid !== null) sources[transceiver.mid] = track.kind === 'video' ? 'screen' : 'screen_audio';
    }
    this.send({ type: 'offer', id: this.outstanding, sdp: this.pc.localDescription?.sdp, sources });
  }

  /** @param {TrackInfo[]} tracks */
  setTracks(tracks) {
    this.tracks = new Map(tracks.map((t) => [t.mid, t]));
    if (!this.videoWanted) this.sendSubscription();
    // A share whose track the SFU no longer lists (or lists as muted) has ended.
    const sharing = new Set([...this.tracks.values()].filter((t) => t.source === 'screen' && !t.muted).map((t) => t.avatar));
    for (const [avatar, shown] of this.screens) {
      if (sharing.has(avatar)) continue;
      shown.tile.remove();
      this.screens.delete(avatar);
    }
    for (const [avatar, shown] of this.avatars) {
      const muted = tracks.filter((t) => t.avatar === avatar).every((t) => t.muted);
      shown.tile.classList.toggle('muted', muted);
    }
  }

  /** @param {RTCTrackEvent} event */
  onTrack(event) {
    this.protect();
    const mid = event.transceiver.mid ?? '';
    const fromStream = Number(event.streams[0]?.id.replace(/^a/, ''));
    const avatar = this.tracks.get(mid)?.avatar ?? fromStream;
    if (!Number.isFinite(avatar)) return;
    const source = this.tracks.get(mid)?.source ?? '';
    if (source === 'screen' || source === 'screen_audio') {
      this.showScreen(avatar, event.track);
      return;
    }
    let shown = this.avatars.get(avatar);
    if (!shown) {
      const video = document.createElement('video');
      video.autoplay = true;
      video.playsInline = true;
      video.dataset.avatar = String(avatar);
      const tile = document.createElement('figure');
      tile.className = 'tile';
      const caption = document.createElement('figcaption');
      caption.textContent = this.media.nameOf(avatar);
      tile.append(video, caption);
      this.media.tiles.append(tile);
      const stream = new MediaStream();
      video.srcObject = stream;
      shown = { tile, video, stream };
      this.avatars.set(avatar, shown);
    }
    shown.stream.addTrack(event.track);
    if (event.track.kind === 'audio') {
      this.media.watchSpeaking(avatar, shown.stream);
      this.media.spatial.attach(avatar, shown.stream, shown.video);
    }
  }

  /** Someone's screen share, in a tile of its own. @param {number} avatar @param {MediaStreamTrack} track */
  showScreen(avatar, track) {
    let shown = this.screens.get(avatar);
    if (!shown) {
      const video = document.createElement('video');
      video.autoplay = true;
      video.playsInline = true;
      video.dataset.avatar = String(avatar);
      video.dataset.screen = 'true';
      const tile = document.createElement('figure');
      tile.className = 'tile screen';
      const caption = document.createElement('figcaption');
      caption.textContent = `${this.media.nameOf(avatar)}'s screen`;
      tile.append(video, caption);
      this.media.tiles.append(tile);
      const stream = new MediaStream();
      video.srcObject = stream;
      shown = { tile, video, stream };
      this.screens.set(avatar, shown);
    }
    shown.stream.addTrack(track);
  }

  /** Takes away tiles whose tracks the SFU stopped sending. */
  dropEndedTracks() {
    const present = new Set([...this.tracks.values()].map((t) => t.avatar));
    for (const [avatar, shown] of this.avatars) {
      if (present.has(avatar)) continue;
      shown.tile.remove();
      this.avatars.delete(avatar);
      this.media.spatial.detach(avatar);
    }
  }

  /** Sends a small text message to everyone in the room. @param {string} text */
  broadcast(text) {
    if (this.channel.readyState === 'open') this.channel.send(text);
  }

  /** Receives others' video, or only their audio (low bandwidth). @param {boolean} wanted */
  wantVideo(wanted) {
    this.videoWanted = wanted;
    this.subscribedWithoutVideo = '';
    if (wanted) this.subscribe(null);
    else this.sendSubscription();
  }

  /**
   * Without video: everyone whose tracks the SFU lists, audio only. Sent again when that
   * list of people changes (a newcomer is not received until then).
   */
  sendSubscription() {
    const avatars = [...new Set([...this.tracks.values()].map((t) => t.avatar))].sort((a, b) => a - b);
    const key = avatars.join(',');
    if (key === this.subscribedWithoutVideo && key) return;
    this.subscribedWithoutVideo = key;
    this.send({ type: 'subscribe', avatars: avatars.map((avatar) => ({ avatar, audio: true, video: 'off' })) });
  }

  /** Only these avatars are wanted (null: everyone). @param {number[] | null} avatars */
  subscribe(avatars) {
    this.send({ type: 'subscribe', avatars: avatars && avatars.map((avatar) => ({ avatar, audio: true, video: 'high' })) });
  }

  /** Decoded frames and audio samples per avatar, from getStats. */
  async stats() {
    /** @type {Record<number, {framesDecoded: number, audioSamples: number}>} */
    const out = {};
    const report = await this.pc.getStats();
    report.forEach((s) => {
      if (s.type !== 'inbound-rtp') return;
      const avatar = this.tracks.get(s.mid)?.avatar;
      if (avatar === undefined) return;
      out[avatar] ??= { framesDecoded: 0, audioSamples: 0 };
      if (s.kind === 'video') out[avatar].framesDecoded += s.framesDecoded ?? 0;
      if (s.kind === 'audio') out[avatar].audioSamples += s.totalSamplesReceived ?? 0;
    });
    return out;
  }

  /** The video received from `avatar`: frame size and frames decoded so far. @param {number} avatar */
  async receivedVideo(avatar) {
    const report = await this.pc.getStats();
    let video = { width: 0, height: 0, framesDecoded: 0 };
    report.forEach((s) => {
      if (s.type === 'inbound-rtp' && s.kind === 'video' && this.tracks.get(s.mid)?.avatar === avatar) {
        video = { width: s.frameWidth ?? 0, height: s.frameHeight ?? 0, framesDecoded: s.framesDecoded ?? 0 };
      }
    });
    return video;
  }

  close() {
    this.closed = true;
    this.send({ type: 'leave' });
    this.ws.close();
    this.pc.close();
    for (const [avatar, shown] of this.avatars) {
      shown.tile.remove();
      this.media.spatial.detach(avatar);
    }
    this.avatars.clear();
    for (const shown of this.screens.values()) shown.tile.remove();
    this.screens.clear();
  }
}
