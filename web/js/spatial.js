// Distance audio in open zones: each person's voice is as loud as they are near, and
// comes from their side of the screen, so conversations overlap as they do in a room.
//
// The curve (docs/architecture.md, "Distance audio"): full volume within the near radius
// (40% of the zone's talk radius), then a cosine fade to silence at the talk radius.
// The server pairs people within the talk radius and keeps a pair until one tile beyond
// it, so someone fading out stays silent, not cut off, while the link still stands.
// Meeting rooms, private rooms, stages and quiet zones stay flat (everyone at full volume).
//
// The gains are pure functions (tested under Node); `SpatialAudio` routes each received
// stream through WebAudio (source → gain → stereo panner → speakers) while the audio
// context runs, and leaves the media element to play it as it is when it cannot.

/** The share of the talk radius heard at full volume. */
export const NEAR_SHARE = 0.4;
/** How far to one side a voice may sit (1 would be one ear only). */
const MAX_PAN = 0.8;
/** How quickly a gain follows a move (seconds): fast, without clicks. */
const GAIN_SMOOTHING_S = 0.08;

/**
 * The volume (0–1) of someone `distance` tiles away in an open zone.
 * @param {number} distance @param {number} talkRadius
 */
export function distanceGain(distance, talkRadius) {
  const near = talkRadius * NEAR_SHARE;
  if (distance <= near) return 1;
  if (distance >= talkRadius) return 0;
  const fade = (distance - near) / (talkRadius - near);
  return Math.cos((fade * Math.PI) / 2) ** 2;
}

/**
 * Left (−) or right (+) of us on screen, from the horizontal screen offset in tiles.
 * @param {number} screenDx @param {number} talkRadius
 */
export function stereoPan(screenDx, talkRadius) {
  return Math.max(-MAX_PAN, Math.min(MAX_PAN, (screenDx / talkRadius) * MAX_PAN));
}

/** @typedef {{source: MediaStreamAudioSourceNode, gain: GainNode, panner: StereoPannerNode, level: AnalyserNode, element: HTMLMediaElement}} Voice */

export class SpatialAudio {
  /** @param {() => AudioContext} context the page's audio context, made on first use */
  constructor(context) {
    this.context = context;
    /** @type {Map<number, Voice>} */
    this.voices = new Map();
    /** Whether the person wants distance audio (the switch). */
    this.enabled = true;
  }

  /**
   * Plays `avatar`'s audio through WebAudio, leaving `element` to play nothing; while the
   * context cannot run (no gesture yet), the element keeps playing it flat.
   * @param {number} avatar @param {MediaStream} stream @param {HTMLMediaElement} element
   */
  attach(avatar, stream, element) {
    if (!stream.getAudioTracks().length || this.voices.has(avatar)) return;
    const context = this.context();
    const source = context.createMediaStreamSource(stream);
    const gain = context.createGain();
    const panner = context.createStereoPanner();
    const level = context.createAnalyser();
    level.fftSize = 512;
    source.connect(gain).connect(panner).connect(context.destination);
    panner.connect(level);
    const voice = { source, gain, panner, level, element };
    this.voices.set(avatar, voice);
    this.route(voice);
    context.addEventListener('statechange', () => this.voices.get(avatar) === voice && this.route(voice));
  }

  /** WebAudio plays the voice while the context runs; otherwise the element does. @param {Voice} voice */
  route(voice) {
    const running = voice.gain.context.state === 'running';
    voice.element.dataset.spatial = String(running);
    // An element an admin's mute silenced stays silent whatever happens here.
    voice.element.muted = running || voice.element.dataset.adminMuted === 'true';
  }

  /** @param {number} avatar */
  detach(avatar) {
    const voice = this.voices.get(avatar);
    if (!voice) return;
    voice.source.disconnect();
    voice.panner.disconnect();
    this.voices.delete(avatar);
  }

  /**
   * Sets each voice from where its person is: `place(avatar)` gives their distance and
   * horizontal screen offset in tiles, or null (not in our zone: full volume); `radius`
   * is the open zone's talk radius, or null where audio is flat.
   * @param {(avatar: number) => {distance: number, screenDx: number} | null} place @param {number | null} radius
   */
  update(place, radius) {
    for (const [avatar, voice] of this.voices) {
      const where = this.enabled && radius ? place(avatar) : null;
      const gain = where && radius ? distanceGain(where.distance, radius) : 1;
      const pan = where && radius ? stereoPan(where.screenDx, radius) : 0;
      const now = voice.gain.context.currentTime;
      voice.gain.gain.setTargetAtTime(gain, now, GAIN_SMOOTHING_S);
      voice.panner.pan.setTargetAtTime(pan, now, GAIN_SMOOTHING_S);
    }
  }

  /** What we play of `avatar` now, as a peak level (0–128), for tests and meters. @param {number} avatar */
  playedLevel(avatar) {
    const voice = this.voices.get(avatar);
    if (!voice) return null;
    const samples = new Uint8Array(voice.level.fftSize);
    voice.level.getByteTimeDomainData(samples);
    let peak = 0;
    for (const s of samples) peak = Math.max(peak, Math.abs(s - 128));
    return peak;
  }
}
