// The binary frames of the /v1/ws protocol (docs/protocol.md): move intents out,
// presence in. Little-endian throughout.

export const FACINGS = ['north', 'north_east', 'east', 'south_east', 'south', 'south_west', 'west', 'north_west'];
export const STATES = ['idle', 'walking', 'sitting'];

/** @typedef {{avatar: number, x: number, y: number, facing: string, state: string}} PresenceEntry */

/** @param {string} facing @param {string} state */
function pose(facing, state) {
  return Math.max(0, FACINGS.indexOf(facing)) | (Math.max(0, STATES.indexOf(state)) << 3);
}

/**
 * @param {number} seq @param {number} x @param {number} y sub-tile units
 * @param {string} facing @param {string} state
 */
export function encodeMoveIntent(seq, x, y, facing, state) {
  const buffer = new ArrayBuffer(14);
  const view = new DataView(buffer);
  view.setUint8(0, 0x02);
  view.setUint32(1, seq >>> 0, true);
  view.setInt32(5, x, true);
  view.setInt32(9, y, true);
  view.setUint8(13, pose(facing, state));
  return buffer;
}

/**
 * Decodes a presence frame; null for anything else.
 * @param {ArrayBuffer} buffer @returns {{tick: number, entries: PresenceEntry[]} | null}
 */
export function decodePresence(buffer) {
  const view = new DataView(buffer);
  if (view.byteLength < 7 || view.getUint8(0) !== 0x01) return null;
  const tick = view.getUint32(1, true);
  const count = view.getUint16(5, true);
  if (view.byteLength !== 7 + count * 9) return null;
  /** @type {PresenceEntry[]} */
  const entries = [];
  for (let i = 0; i < count; i++) {
    const at = 7 + i * 9;
    const byte = view.getUint8(at + 8);
    entries.push({
      avatar: view.getUint32(at, true),
      x: view.getUint16(at + 4, true) * 4,
      y: view.getUint16(at + 6, true) * 4,
      facing: FACINGS[byte & 7],
      state: STATES[byte >> 3] ?? 'idle',
    });
  }
  return { tick, entries };
}
