//! When a person tries a lost connection again: the browser's formula (web/js/backoff.js),
//! so a crowd arrives after a restart as real browsers would.
//!
//! The wait before attempt n is a random time in [0, min(30 s, base · 2^(n-1))]; `base` is
//! the server's `reconnect.after_ms` when it sent one, else 500 ms, and both the count and
//! the base start again after a successful join.

use std::time::Duration;

/// The base when the server gave none.
pub const DEFAULT_BASE_MS: u32 = 500;
/// No wait is ever longer than this.
pub const CAP_MS: u32 = 30_000;

/// The wait before reconnection attempt `attempt` (1 for the first after a loss);
/// `random` is in [0, 1].
pub fn reconnect_delay(attempt: u32, base_ms: u32, random: f64) -> Duration {
    let exponent = attempt.saturating_sub(1).min(64) as i32;
    let ceiling = (f64::from(base_ms) * 2f64.powi(exponent)).min(f64::from(CAP_MS));
    Duration::from_millis((random.clamp(0.0, 1.0) * ceiling).round() as u64)
}

/// The base to use after the server's `reconnect` message.
pub fn base_from_hint(after_ms: u32) -> u32 {
    if after_ms > 0 { after_ms } else { DEFAULT_BASE_MS }
}

/// One person's place in the backoff.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Attempts since the last successful join.
    pub attempt: u32,
    pub base_ms: u32,
}

impl Default for Backoff {
    fn default() -> Backoff {
        Backoff { attempt: 0, base_ms: DEFAULT_BASE_MS }
    }
}

impl Backoff {
    /// A join worked: the next loss starts from the first attempt and the default base.
    pub fn joined(&mut self) {
        *self = Backoff::default();
    }

    /// The connection closed or a join failed: the wait before trying again.
    pub fn next_delay(&mut self, random: f64) -> Duration {
        self.attempt += 1;
        reconnect_delay(self.attempt, self.base_ms, random)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(value: u64) -> Duration {
        Duration::from_millis(value)
    }

    #[test]
    fn the_window_doubles_per_attempt_up_to_the_cap() {
        assert_eq!(reconnect_delay(1, 500, 1.0), ms(500));
        assert_eq!(reconnect_delay(2, 500, 1.0), ms(1000));
        assert_eq!(reconnect_delay(4, 500, 1.0), ms(4000));
        assert_eq!(reconnect_delay(7, 500, 1.0), ms(30_000));
        assert_eq!(reconnect_delay(1_000_000, 500, 1.0), ms(30_000));
        assert_eq!(reconnect_delay(3, 500, 0.5), ms(1000));
        assert_eq!(reconnect_delay(3, 500, 0.0), ms(0));
        // Attempt 0 counts as the first, as in the browser.
        assert_eq!(reconnect_delay(0, 500, 1.0), ms(500));
        assert_eq!(reconnect_delay(2, 500, 7.0), ms(1000), "random is clamped to [0, 1]");
    }

    #[test]
    fn the_server_hint_sets_the_base_until_a_join_works() {
        assert_eq!(base_from_hint(1000), 1000);
        assert_eq!(base_from_hint(0), DEFAULT_BASE_MS);
        let mut backoff = Backoff { base_ms: base_from_hint(1000), ..Backoff::default() };
        assert_eq!(backoff.next_delay(1.0), ms(1000));
        assert_eq!(backoff.next_delay(1.0), ms(2000));
        backoff.joined();
        assert_eq!(backoff.next_delay(1.0), ms(500));
    }
}
