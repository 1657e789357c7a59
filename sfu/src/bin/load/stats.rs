//! What the receivers measured: latency histogram, packets, gaps. Only packets sent
//! inside the measuring window count, so packets in flight at its edges do not skew
//! rates or loss.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use crate::load::media::{Kind, Stamp};

/// Latency buckets of 1 µs up to 2 s; slower packets land in the last one.
const BUCKETS: usize = 2_000_000;

/// The measuring window, in the run clock's nanoseconds (by send time).
#[derive(Debug, Clone, Copy, Default)]
pub struct Window {
    pub start_ns: u64,
    pub end_ns: u64,
}

impl Window {
    pub fn contains(&self, ns: u64) -> bool {
        self.start_ns != 0 && ns >= self.start_ns && ns < self.end_ns
    }
}

#[derive(Debug)]
struct Inner {
    window: Window,
    latency_us: Vec<u64>,
    received: u64,
    lost: u64,
    sent: u64,
    bytes_received: u64,
    /// Packets the tool refused to send off loopback (must stay 0).
    refused_destinations: u64,
}

/// Shared by every peer of a run.
#[derive(Debug)]
pub struct Stats {
    inner: Mutex<Inner>,
}

/// Per receiving peer: the last counter seen on each stream it receives.
#[derive(Debug, Default)]
pub struct StreamTracker {
    last: HashMap<(u32, Kind), u32>,
}

impl StreamTracker {
    /// The number of packets missing between the last one seen on this stream and
    /// this one (0 for the first, late or repeated ones).
    pub fn gap(&mut self, stamp: &Stamp) -> u64 {
        let key = (stamp.publisher, stamp.kind);
        match self.last.get(&key).copied() {
            Some(last) if stamp.counter <= last => 0,
            Some(last) => {
                self.last.insert(key, stamp.counter);
                u64::from(stamp.counter - last - 1)
            }
            None => {
                self.last.insert(key, stamp.counter);
                0
            }
        }
    }
}

/// A summary of one window.
#[derive(Debug, Clone, Copy, Default)]
pub struct Summary {
    pub received: u64,
    pub lost: u64,
    pub sent: u64,
    pub bytes_received: u64,
    pub refused_destinations: u64,
    pub p50_us: Option<f64>,
    pub p99_us: Option<f64>,
    pub max_us: Option<f64>,
}

impl Summary {
    pub fn loss_fraction(&self) -> f64 {
        let expected = self.received + self.lost;
        if expected == 0 { 0.0 } else { self.lost as f64 / expected as f64 }
    }
}

impl Default for Stats {
    fn default() -> Self {
        Stats {
            inner: Mutex::new(Inner {
                window: Window::default(),
                latency_us: vec![0; BUCKETS],
                received: 0,
                lost: 0,
                sent: 0,
                bytes_received: 0,
                refused_destinations: 0,
            }),
        }
    }
}

impl Stats {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn set_window(&self, window: Window) {
        self.lock().window = window;
    }

    /// A publisher wrote a packet stamped `sent_ns`.
    pub fn on_sent(&self, sent_ns: u64) {
        let mut inner = self.lock();
        if inner.window.contains(sent_ns) {
            inner.sent += 1;
        }
    }

    /// A subscriber got a packet; `gap` packets of its stream were missing before it.
    pub fn on_received(&self, stamp: &Stamp, received_ns: u64, bytes: usize, gap: u64) {
        let mut inner = self.lock();
        if !inner.window.contains(stamp.sent_ns) {
            return;
        }
        let micros = received_ns.saturating_sub(stamp.sent_ns) / 1_000;
        let bucket = usize::try_from(micros).unwrap_or(usize::MAX).min(BUCKETS - 1);
        inner.latency_us[bucket] += 1;
        inner.received += 1;
        inner.lost += gap;
        inner.bytes_received += bytes as u64;
    }

    pub fn on_refused_destination(&self) {
        self.lock().refused_destinations += 1;
    }

    pub fn summary(&self) -> Summary {
        let inner = self.lock();
        let total: u64 = inner.latency_us.iter().sum();
        let quantile = |q: f64| -> Option<f64> {
            if total == 0 {
                return None;
            }
            let rank = ((total as f64) * q).ceil().max(1.0) as u64;
            let mut seen = 0;
            for (bucket, count) in inner.latency_us.iter().enumerate() {
                seen += count;
                if seen >= rank {
                    // The bucket's middle: [b, b+1) µs.
                    return Some(bucket as f64 + 0.5);
                }
            }
            None
        };
        let max_us = inner.latency_us.iter().rposition(|count| *count > 0).map(|b| b as f64 + 0.5);
        Summary {
            received: inner.received,
            lost: inner.lost,
            sent: inner.sent,
            bytes_received: inner.bytes_received,
            refused_destinations: inner.refused_destinations,
            p50_us: quantile(0.50),
            p99_us: quantile(0.99),
            max_us,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaps_count_missing_packets_only() {
        let mut tracker = StreamTracker::default();
        let stamp = |counter| Stamp { publisher: 1, kind: Kind::Audio, counter, sent_ns: 0 };
        assert_eq!(tracker.gap(&stamp(10)), 0);
        assert_eq!(tracker.gap(&stamp(11)), 0);
        assert_eq!(tracker.gap(&stamp(14)), 2);
        assert_eq!(tracker.gap(&stamp(12)), 0, "late");
    }

    #[test]
    fn quantiles_and_window() {
        let stats = Stats::default();
        stats.set_window(Window { start_ns: 1_000, end_ns: 1_000_000_000 });
        let stamp = Stamp { publisher: 1, kind: Kind::Video, counter: 0, sent_ns: 1_000 };
        for micros in 1..=100u64 {
            stats.on_received(&stamp, 1_000 + micros * 1_000, 10, 0);
        }
        let outside = Stamp { sent_ns: 10, ..stamp };
        stats.on_received(&outside, 5_000_000, 10, 3);
        let summary = stats.summary();
        assert_eq!(summary.received, 100);
        assert_eq!(summary.lost, 0);
        assert_eq!(summary.p50_us, Some(50.5));
        assert_eq!(summary.p99_us, Some(99.5));
    }
}
