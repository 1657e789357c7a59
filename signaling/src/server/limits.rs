//! Connection limits (per address, per user, in total), the per-connection message
//! rate limit, and the throttle on the errors a connection is sent about its input.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Counts live connections by key; a [`Slot`] gives its place back when dropped.
#[derive(Debug)]
pub struct Counter<K: Hash + Eq + Clone> {
    counts: Mutex<HashMap<K, usize>>,
    limit: usize,
}

/// A held place in a [`Counter`].
#[derive(Debug)]
pub struct Slot<K: Hash + Eq + Clone> {
    counter: Arc<Counter<K>>,
    key: K,
}

impl<K: Hash + Eq + Clone> Counter<K> {
    pub fn new(limit: usize) -> Arc<Counter<K>> {
        Arc::new(Counter { counts: Mutex::new(HashMap::new()), limit })
    }

    /// Takes a place for `key`, unless `key` already has `limit` of them.
    pub fn acquire(self: &Arc<Counter<K>>, key: K) -> Option<Slot<K>> {
        let mut counts = self.counts.lock().ok()?;
        let count = counts.entry(key.clone()).or_insert(0);
        if *count >= self.limit {
            return None;
        }
        *count += 1;
        Some(Slot { counter: Arc::clone(self), key })
    }
}

impl<K: Hash + Eq + Clone> Drop for Slot<K> {
    fn drop(&mut self) {
        if let Ok(mut counts) = self.counter.counts.lock()
            && let Some(count) = counts.get_mut(&self.key)
        {
            *count -= 1;
            if *count == 0 {
                counts.remove(&self.key);
            }
        }
    }
}

/// The connection counters of one server.
#[derive(Debug)]
pub struct ConnectionLimits {
    /// Keyed by `()`: the total.
    pub total: Arc<Counter<()>>,
    pub per_ip: Arc<Counter<IpAddr>>,
    pub per_user: Arc<Counter<String>>,
}

/// Chat messages one connection may send at once: a few lines typed in quick succession
/// go through. Each chat message reaches a whole zone or world and is stored, so it has
/// a limit of its own, well under the general message rate (which moves share).
pub const CHAT_BURST: u32 = 5;
/// Chat messages per second a connection may keep sending after its burst: faster than
/// people type whole lines, slower than any script flooding a zone.
pub const CHAT_PER_SECOND: u32 = 1;

/// A token bucket: `burst` messages at once, refilled at `rate` per second.
#[derive(Debug)]
pub struct RateLimit {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl RateLimit {
    pub fn new(rate: u32, burst: u32, now: Instant) -> RateLimit {
        RateLimit { rate: f64::from(rate), burst: f64::from(burst.max(1)), tokens: f64::from(burst.max(1)), last: now }
    }

    /// Whether one more message is allowed at `now`.
    pub fn allow(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// At most one error of each kind a second: a client that floods garbage still learns
/// what is wrong, without each bad message costing its world a reply.
#[derive(Debug)]
pub struct NoticeThrottle<K> {
    interval: Duration,
    last: Vec<(K, Instant)>,
}

impl<K: PartialEq> NoticeThrottle<K> {
    pub fn new(interval: Duration) -> NoticeThrottle<K> {
        NoticeThrottle { interval, last: Vec::new() }
    }

    /// Whether to send a notice of kind `key` at `now`.
    pub fn allow(&mut self, key: K, now: Instant) -> bool {
        match self.last.iter_mut().find(|(k, _)| *k == key) {
            Some((_, at)) if now.saturating_duration_since(*at) < self.interval => false,
            Some((_, at)) => {
                *at = now;
                true
            }
            None => {
                self.last.push((key, now));
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_limited_and_given_back() {
        let counter = Counter::new(2);
        let a = counter.acquire("ip");
        let b = counter.acquire("ip");
        assert!(a.is_some() && b.is_some());
        assert!(counter.acquire("ip").is_none());
        assert!(counter.acquire("other").is_some());
        drop(a);
        assert!(counter.acquire("ip").is_some());
    }

    #[test]
    fn the_rate_limit_allows_a_burst_then_the_rate() {
        let t0 = Instant::now();
        let mut limit = RateLimit::new(10, 3, t0);
        assert!((0..3).all(|_| limit.allow(t0)));
        assert!(!limit.allow(t0));
        assert!(limit.allow(t0 + Duration::from_millis(100)));
        assert!(!limit.allow(t0 + Duration::from_millis(100)));
    }

    #[test]
    fn chat_allows_five_lines_at_once_then_one_a_second() {
        let t0 = Instant::now();
        let mut chat = RateLimit::new(CHAT_PER_SECOND, CHAT_BURST, t0);
        assert!((0..5).all(|_| chat.allow(t0)));
        assert!(!chat.allow(t0), "the sixth at once is refused");
        assert!(!chat.allow(t0 + Duration::from_millis(900)));
        assert!(chat.allow(t0 + Duration::from_millis(1000)));
        assert!(!chat.allow(t0 + Duration::from_millis(1500)));
        assert!((0..5).all(|_| chat.allow(t0 + Duration::from_secs(10))), "a pause gives the burst back");
    }

    #[test]
    fn notices_are_one_per_kind_per_interval() {
        let t0 = Instant::now();
        let mut throttle = NoticeThrottle::new(Duration::from_secs(1));
        assert!(throttle.allow("malformed", t0));
        assert!(!throttle.allow("malformed", t0 + Duration::from_millis(999)));
        assert!(throttle.allow("frame", t0 + Duration::from_millis(10)), "another kind is told at once");
        assert!(throttle.allow("malformed", t0 + Duration::from_secs(1)));
        assert!(!throttle.allow("malformed", t0 + Duration::from_millis(1500)));
    }
}
