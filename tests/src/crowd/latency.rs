//! Move → peer latencies in a fixed histogram of atomics: a soak test records millions of
//! samples, so none is kept, and recording takes no lock.
//!
//! Buckets are exact below 32 µs, then 32 per power of two (within about 3 %).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

const SUB_BUCKETS: u64 = 32;
const SUB_BITS: u32 = 5;
const BUCKETS: usize = 64 * SUB_BUCKETS as usize;

/// Latencies recorded so far.
#[derive(Debug)]
pub struct Histogram {
    buckets: Box<[AtomicU64]>,
}

/// Percentiles of a histogram.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LatencySummary {
    pub samples: u64,
    pub p50: Duration,
    pub p99: Duration,
    pub max: Duration,
}

fn bucket_of(micros: u64) -> usize {
    if micros < SUB_BUCKETS {
        return micros as usize;
    }
    let power = 63 - micros.leading_zeros(); // ≥ SUB_BITS
    let shift = power - SUB_BITS;
    let sub = (micros >> shift) - SUB_BUCKETS;
    ((u64::from(shift) + 1) * SUB_BUCKETS + sub) as usize
}

/// The middle of a bucket, in microseconds.
fn value_of(bucket: usize) -> u64 {
    let bucket = bucket as u64;
    if bucket < SUB_BUCKETS {
        return bucket;
    }
    let shift = bucket / SUB_BUCKETS - 1;
    let low = (bucket % SUB_BUCKETS + SUB_BUCKETS) << shift;
    low + (1 << shift) / 2
}

impl Default for Histogram {
    fn default() -> Histogram {
        Histogram { buckets: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect() }
    }
}

impl Histogram {
    pub fn record(&self, latency: Duration) {
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.buckets[bucket_of(micros).min(BUCKETS - 1)].fetch_add(1, Ordering::Relaxed);
    }

    pub fn reset(&self) {
        for bucket in self.buckets.iter() {
            bucket.store(0, Ordering::Relaxed);
        }
    }

    pub fn summary(&self) -> LatencySummary {
        let counts: Vec<u64> = self.buckets.iter().map(|b| b.load(Ordering::Relaxed)).collect();
        let samples: u64 = counts.iter().sum();
        if samples == 0 {
            return LatencySummary::default();
        }
        let at_rank = |rank: u64| {
            let mut seen = 0;
            for (bucket, count) in counts.iter().enumerate() {
                seen += count;
                if seen >= rank {
                    return Duration::from_micros(value_of(bucket));
                }
            }
            Duration::ZERO
        };
        let rank = |q: f64| ((samples as f64 * q).ceil() as u64).clamp(1, samples);
        LatencySummary { samples, p50: at_rank(rank(0.5)), p99: at_rank(rank(0.99)), max: at_rank(samples) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_exact_low_and_within_three_percent_above() {
        for micros in [0, 1, 31, 32, 33, 63, 64, 100, 1_000, 12_345, 999_999, 3_600_000_000] {
            let back = value_of(bucket_of(micros));
            let error = back.abs_diff(micros) as f64 / (micros.max(1)) as f64;
            assert!(error <= 0.03, "{micros} µs comes back as {back}");
            if micros < 32 {
                assert_eq!(back, micros);
            }
        }
        assert!(bucket_of(u64::MAX) < BUCKETS);
    }

    #[test]
    fn percentiles_come_from_the_recorded_samples() {
        let histogram = Histogram::default();
        assert_eq!(histogram.summary(), LatencySummary::default());
        for ms in 1..=100 {
            histogram.record(Duration::from_millis(ms));
        }
        let summary = histogram.summary();
        assert_eq!(summary.samples, 100);
        let near = |d: Duration, ms: f64| (d.as_secs_f64() * 1000.0 - ms).abs() <= ms * 0.03;
        assert!(near(summary.p50, 50.0), "{summary:?}");
        assert!(near(summary.p99, 99.0), "{summary:?}");
        assert!(near(summary.max, 100.0), "{summary:?}");
        histogram.reset();
        assert_eq!(histogram.summary().samples, 0);
    }
}
