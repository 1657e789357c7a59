//! What every core of one server must agree on, whichever core a client's packets reach:
//! how many allocations each user and the whole server hold (the quotas), and which
//! relay ports are reserved under a RESERVATION-TOKEN (a client's second Allocate,
//! which claims one, comes from another port and may reach another core).
//!
//! Only Allocate and the end of an allocation touch it, never relayed data, so one lock
//! is no cost on the packet path.
//!
//! Invariant: `total` is the sum of `per_user`, and a user with no allocation has no entry.

use super::ReservationToken;
use super::metrics::Refusal;
use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

/// The quotas and reservations shared by a server's cores.
#[derive(Debug, Default)]
pub struct Ledger {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    per_user: HashMap<String, u32>,
    total: u64,
    /// Reserved ports by token, with when each reservation lapses.
    reservations: HashMap<ReservationToken, Instant>,
}

impl Ledger {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Every update leaves the counts consistent before it can panic; keep serving.
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Counts one more allocation (or Allocate in progress) for `user`, unless the server
    /// or the user is at its limit.
    pub fn take(&self, user: &str, max_per_user: u32, max_total: u32) -> Result<(), Refusal> {
        let mut inner = self.lock();
        if inner.total >= u64::from(max_total) {
            return Err(Refusal::TotalQuota);
        }
        if inner.per_user.get(user).copied().unwrap_or(0) >= max_per_user {
            return Err(Refusal::UserQuota);
        }
        *inner.per_user.entry(user.to_owned()).or_insert(0) += 1;
        inner.total += 1;
        Ok(())
    }

    /// Gives back what [`Ledger::take`] counted.
    pub fn release(&self, user: &str) {
        let mut inner = self.lock();
        let Some(count) = inner.per_user.get_mut(user) else { return };
        *count -= 1;
        if *count == 0 {
            inner.per_user.remove(user);
        }
        inner.total -= 1;
    }

    /// Allocations (and Allocates in progress) the server holds now.
    pub fn total(&self) -> u64 {
        self.lock().total
    }

    pub fn reserve(&self, token: ReservationToken, until: Instant) {
        self.lock().reservations.insert(token, until);
    }

    /// Takes the reservation under `token`: true if it was there and had not lapsed (a
    /// lapsed one stays for its core to withdraw, which lets its port go).
    pub fn claim(&self, token: &ReservationToken, now: Instant) -> bool {
        let mut inner = self.lock();
        let live = inner.reservations.get(token).is_some_and(|until| *until > now);
        if live {
            inner.reservations.remove(token);
        }
        live
    }

    /// Ends a reservation that lapsed or whose core stops: true if it was still there
    /// (nobody claimed it), so its port must be let go.
    pub fn withdraw(&self, token: &ReservationToken) -> bool {
        self.lock().reservations.remove(token).is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn quotas_count_every_core_and_come_back_on_release() {
        let ledger = Ledger::default();
        assert_eq!(ledger.take("ada", 2, 3), Ok(()));
        assert_eq!(ledger.take("ada", 2, 3), Ok(()));
        assert_eq!(ledger.take("ada", 2, 3), Err(Refusal::UserQuota));
        assert_eq!(ledger.take("bob", 2, 3), Ok(()));
        assert_eq!(ledger.take("cyd", 2, 3), Err(Refusal::TotalQuota));
        ledger.release("ada");
        assert_eq!(ledger.total(), 2);
        assert_eq!(ledger.take("cyd", 2, 3), Ok(()));
        // Releasing a user with nothing counted changes nothing.
        ledger.release("nobody");
        assert_eq!(ledger.total(), 3);
    }

    #[test]
    fn a_reservation_is_claimed_once_and_only_before_it_lapses() {
        let ledger = Ledger::default();
        let now = Instant::now();
        ledger.reserve([1; 8], now + Duration::from_secs(30));
        ledger.reserve([2; 8], now + Duration::from_secs(30));
        assert!(ledger.claim(&[1; 8], now));
        assert!(!ledger.claim(&[1; 8], now), "claimed twice");
        assert!(!ledger.withdraw(&[1; 8]), "a claimed port is the claimer's");
        assert!(!ledger.claim(&[2; 8], now + Duration::from_secs(31)), "lapsed");
        assert!(ledger.withdraw(&[2; 8]), "a lapsed port is let go by its core");
        assert!(!ledger.claim(&[3; 8], now), "never reserved");
    }
}
