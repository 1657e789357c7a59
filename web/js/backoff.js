// When to try a lost connection again: exponential backoff with full jitter.
//
// Every client of a server that restarts loses its connection at the same instant; if
// each came back after the same delay they would all arrive together again. So the wait
// before attempt n is a random time in [0, base · 2^(n-1)], capped at `CAP_MS`: the
// clients spread over the window, and the window widens while the server stays away.
// `base` is the server's `reconnect.after_ms` when it sent one (a scale, not a moment),
// else `DEFAULT_BASE_MS`; the count starts again after a successful join.
//
// Pure: the random source is an argument, so tests pin it.

/** The base when the server gave none. */
export const DEFAULT_BASE_MS = 500;
/** No wait is ever longer than this. */
export const CAP_MS = 30000;

/**
 * The wait before reconnection attempt `attempt` (1 for the first after a loss).
 * @param {number} attempt @param {number} baseMs @param {() => number} [random] in [0, 1)
 * @returns {number} milliseconds, a whole number in [0, min(CAP_MS, baseMs · 2^(attempt-1))]
 */
export function reconnectDelay(attempt, baseMs, random = Math.random) {
  const exponent = Math.max(0, Math.floor(attempt) - 1);
  // 2^exponent overflows to Infinity for absurd counts; the cap still holds.
  const ceiling = Math.min(CAP_MS, Math.max(0, baseMs) * 2 ** exponent);
  return Math.round(Math.min(1, Math.max(0, random())) * ceiling);
}

/**
 * The base to use after the server's `reconnect` message.
 * @param {unknown} afterMs the message's `after_ms` @returns {number}
 */
export function baseFromHint(afterMs) {
  return typeof afterMs === 'number' && Number.isFinite(afterMs) && afterMs > 0 ? afterMs : DEFAULT_BASE_MS;
}
