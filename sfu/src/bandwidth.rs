//! A subscriber's bandwidth estimate, from the transport-wide feedback on what the SFU
//! sent it ([`crate::transport_cc`]): the sender side of Google congestion control
//! (draft-ietf-rmcat-gcc-02), as browsers run it.
//!
//! - Delay: packets sent within 5 ms form a group; the growth of each group's one-way
//!   delay over the last is smoothed and its trend over the last 20 groups fitted. A
//!   trend above an adaptive threshold means a queue is building on the path (overuse);
//!   below its negative, one is draining.
//! - Rate: on overuse the estimate drops to 85% of what the receiver got over the last
//!   half second, then holds while the queue drains; otherwise it grows, 8% a second
//!   while far from the rate the last congestion came at, by about a packet per
//!   response time near it, and never past 1.5× what arrived (a path is not assumed to
//!   carry what was never sent on it: padding finds the room, crate::egress).
//! - Loss: over 10% of a second's packets lost cuts the estimate by half the loss
//!   fraction; between 2% and 10% it holds.
//!
//! Sans-IO: the feedback's arrival times are the receiver's clock; `now` is the caller's.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::transport_cc::PacketResult;

/// Where a session starts before any feedback.
pub const INITIAL_BPS: u64 = 1_000_000;
/// Never below: audio always gets through.
const MIN_BPS: f64 = 100_000.0;
const MAX_BPS: f64 = 50_000_000.0;

/// Packets sent within this of a group's first belong to it.
const GROUP_SPAN_US: i64 = 5_000;
/// Groups the trend is fitted over, and the smoothing of the accumulated delay.
const TREND_WINDOW: usize = 20;
const SMOOTHING: f64 = 0.9;
const TREND_GAIN: f64 = 4.0;
/// The overuse threshold's start, bounds and adaptation (per ms) up and down.
const THRESHOLD_START_MS: f64 = 12.5;
const THRESHOLD_RANGE_MS: (f64, f64) = (6.0, 600.0);
const THRESHOLD_UP: f64 = 0.0087;
const THRESHOLD_DOWN: f64 = 0.039;
/// Overuse must last this long (and two groups) before the rate drops.
const OVERUSE_MS: f64 = 10.0;

/// The share of what arrived the estimate drops to on overuse.
const DECREASE_FACTOR: f64 = 0.85;
/// Growth per second far from the last congestion.
const INCREASE_PER_SECOND: f64 = 1.08;
/// The window the received rate is measured over.
const ACKED_WINDOW_US: i64 = 500_000;

const HIGH_LOSS: f64 = 0.10;
const LOW_LOSS: f64 = 0.02;
/// A loss fraction is measured over a second and at least this many packets (fewer
/// would take a few random losses for a loss rate).
const LOSS_SAMPLE: u32 = 20;
const LOSS_SAMPLE_TIME: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Usage {
    Normal,
    Over,
    Under,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RateState {
    Hold,
    Increase,
    Decrease,
}

/// A group of packets sent together: its first send time, and its last packet's send
/// and arrival times (µs, each on its own clock).
#[derive(Debug, Clone, Copy)]
struct Group {
    first_sent_us: i64,
    last_sent_us: i64,
    last_arrival_us: i64,
}

#[derive(Debug)]
pub struct Estimator {
    estimate_bps: f64,
    /// Send times are counted from here, in µs.
    epoch: Instant,
    current: Option<Group>,
    previous: Option<Group>,
    /// Trend fitting: the accumulated and smoothed delay, and (arrival ms, smoothed) points.
    accumulated_ms: f64,
    smoothed_ms: f64,
    first_arrival_us: Option<i64>,
    points: VecDeque<(f64, f64)>,
    deltas: u32,
    /// Overuse detection.
    threshold_ms: f64,
    time_over_ms: f64,
    overuse_count: u32,
    previous_trend: f64,
    last_threshold_update_us: Option<i64>,
    usage: Usage,
    /// Rate control.
    state: RateState,
    last_update: Option<Instant>,
    /// The received rate when congestion last came (a running mean and variance, kbps).
    congestion_kbps: Option<(f64, f64)>,
    /// Received packets over the last window of arrival time: (arrival µs, bytes).
    acked: VecDeque<(i64, usize)>,
    acked_bytes: usize,
    /// Loss over the packets since the last loss sample.
    lost: u32,
    reported: u32,
    loss_sample_start: Option<Instant>,
    high_loss: bool,
    moderate_loss: bool,
}

impl Estimator {
    pub fn new(now: Instant) -> Estimator {
        Estimator {
            estimate_bps: INITIAL_BPS as f64,
            epoch: now,
            current: None,
            previous: None,
            accumulated_ms: 0.0,
            smoothed_ms: 0.0,
            first_arrival_us: None,
            points: VecDeque::with_capacity(TREND_WINDOW),
            deltas: 0,
            threshold_ms: THRESHOLD_START_MS,
            time_over_ms: -1.0,
            overuse_count: 0,
            previous_trend: 0.0,
            last_threshold_update_us: None,
            usage: Usage::Normal,
            state: RateState::Hold,
            last_update: None,
            congestion_kbps: None,
            acked: VecDeque::new(),
            acked_bytes: 0,
            lost: 0,
            reported: 0,
            loss_sample_start: None,
            high_loss: false,
            moderate_loss: false,
        }
    }

    pub fn estimate_bps(&self) -> u64 {
        self.estimate_bps as u64
    }

    /// Whether any feedback came.
    pub fn has_feedback(&self) -> bool {
        self.last_update.is_some()
    }

    /// What arrived over the last half second of arrival time, if enough did to say.
    pub fn acked_bps(&self) -> Option<u64> {
        let (first, _) = self.acked.front()?;
        let (last, _) = self.acked.back()?;
        let span_us = (last - first).max(ACKED_WINDOW_US / 4);
        (self.acked.len() >= 5).then(|| (self.acked_bytes as i64 * 8 * 1_000_000 / span_us) as u64)
    }

    /// One feedback packet's results, in sequence order.
    pub fn on_feedback(&mut self, now: Instant, results: &[PacketResult]) {
        for result in results {
            self.reported += 1;
            let Some(arrival_us) = result.arrival_us else {
                self.lost += 1;
                continue;
            };
            self.on_arrival(result, arrival_us);
        }
        self.sample_loss(now);
        self.update_rate(now);
    }

    fn on_arrival(&mut self, result: &PacketResult, arrival_us: i64) {
        self.acked.push_back((arrival_us, result.size));
        self.acked_bytes += result.size;
        while let Some(&(oldest, size)) = self.acked.front()
            && arrival_us - oldest > ACKED_WINDOW_US
        {
            self.acked.pop_front();
            self.acked_bytes -= size;
        }
        let sent_us = result.sent.saturating_duration_since(self.epoch).as_micros() as i64;
        let Some(group) = self.current.as_mut() else {
            self.current = Some(Group { first_sent_us: sent_us, last_sent_us: sent_us, last_arrival_us: arrival_us });
            return;
        };
        if sent_us < group.last_sent_us || arrival_us < group.last_arrival_us {
            // Reordered on the way: its timing says nothing of the queue.
            return;
        }
        if sent_us - group.first_sent_us <= GROUP_SPAN_US {
            group.last_sent_us = sent_us;
            group.last_arrival_us = arrival_us;
            return;
        }
        let finished = *group;
        self.current = Some(Group { first_sent_us: sent_us, last_sent_us: sent_us, last_arrival_us: arrival_us });
        if let Some(previous) = self.previous.replace(finished) {
            let send_delta_ms = (finished.last_sent_us - previous.last_sent_us) as f64 / 1000.0;
            let arrival_delta_ms = (finished.last_arrival_us - previous.last_arrival_us) as f64 / 1000.0;
            self.on_delay_delta(arrival_delta_ms - send_delta_ms, send_delta_ms, finished.last_arrival_us);
        }
    }

    /// A group's one-way delay grew by `delta_ms` over the last (which went out
    /// `send_delta_ms` before it).
    fn on_delay_delta(&mut self, delta_ms: f64, send_delta_ms: f64, arrival_us: i64) {
        self.deltas = self.deltas.saturating_add(1);
        self.accumulated_ms += delta_ms;
        self.smoothed_ms = SMOOTHING * self.smoothed_ms + (1.0 - SMOOTHING) * self.accumulated_ms;
        let first = *self.first_arrival_us.get_or_insert(arrival_us);
        if self.points.len() == TREND_WINDOW {
            self.points.pop_front();
        }
        self.points.push_back(((arrival_us - first) as f64 / 1000.0, self.smoothed_ms));
        let Some(trend) = (self.points.len() == TREND_WINDOW).then(|| slope(&self.points)).flatten() else {
            return;
        };
        let modified = f64::from(self.deltas.min(60)) * trend * TREND_GAIN;
        self.detect(modified, trend, send_delta_ms, arrival_us);
    }

    fn detect(&mut self, modified: f64, trend: f64, send_delta_ms: f64, arrival_us: i64) {
        if modified > self.threshold_ms {
            self.time_over_ms =
                if self.time_over_ms < 0.0 { send_delta_ms / 2.0 } else { self.time_over_ms + send_delta_ms };
            self.overuse_count += 1;
            if self.time_over_ms > OVERUSE_MS && self.overuse_count > 1 && trend >= self.previous_trend {
                self.time_over_ms = 0.0;
                self.overuse_count = 0;
                self.usage = Usage::Over;
            }
        } else if modified < -self.threshold_ms {
            self.time_over_ms = -1.0;
            self.overuse_count = 0;
            self.usage = Usage::Under;
        } else {
            self.time_over_ms = -1.0;
            self.overuse_count = 0;
            self.usage = Usage::Normal;
        }
        self.previous_trend = trend;
        // The threshold follows the trend, slowly up and faster down, so a path's
        // ordinary jitter is not taken for a queue; a spike far past it is not learnt.
        let elapsed_ms =
            self.last_threshold_update_us.map_or(0.0, |last| ((arrival_us - last) as f64 / 1000.0).min(100.0));
        self.last_threshold_update_us = Some(arrival_us);
        if modified.abs() > self.threshold_ms + 15.0 {
            return;
        }
        let k = if modified.abs() < self.threshold_ms { THRESHOLD_DOWN } else { THRESHOLD_UP };
        self.threshold_ms += k * (modified.abs() - self.threshold_ms) * elapsed_ms;
        self.threshold_ms = self.threshold_ms.clamp(THRESHOLD_RANGE_MS.0, THRESHOLD_RANGE_MS.1);
    }

    fn sample_loss(&mut self, now: Instant) {
        let start = *self.loss_sample_start.get_or_insert(now);
        if self.reported < LOSS_SAMPLE || now.saturating_duration_since(start) < LOSS_SAMPLE_TIME {
            return;
        }
        self.loss_sample_start = Some(now);
        let loss = f64::from(self.lost) / f64::from(self.reported);
        (self.lost, self.reported) = (0, 0);
        self.high_loss = loss > HIGH_LOSS;
        self.moderate_loss = !self.high_loss && loss >= LOW_LOSS;
        if self.high_loss {
            self.estimate_bps = (self.estimate_bps * (1.0 - 0.5 * loss)).max(MIN_BPS);
        }
    }

    fn update_rate(&mut self, now: Instant) {
        let elapsed = self.last_update.map_or(Duration::ZERO, |at| now.saturating_duration_since(at));
        self.last_update = Some(now);
        let acked = self.acked_bps().map(|bps| bps as f64);
        self.state = match (self.usage, self.state) {
            (Usage::Over, _) => RateState::Decrease,
            (Usage::Under, _) => RateState::Hold,
            (Usage::Normal, RateState::Hold | RateState::Increase) => RateState::Increase,
            (Usage::Normal, RateState::Decrease) => RateState::Hold,
        };
        match self.state {
            RateState::Decrease => {
                let base = acked.unwrap_or(self.estimate_bps);
                let lower = (base * DECREASE_FACTOR).max(MIN_BPS);
                if lower < self.estimate_bps {
                    self.estimate_bps = lower;
                }
                if let Some(acked) = acked {
                    self.note_congestion(acked / 1000.0);
                }
                // One drop per overuse: the next feedback holds while the queue drains.
                self.usage = Usage::Normal;
                self.state = RateState::Hold;
            }
            RateState::Increase if !self.high_loss && !self.moderate_loss => {
                let seconds = elapsed.as_secs_f64().min(1.0);
                let near_congestion = match (self.congestion_kbps, acked) {
                    (Some((mean, variance)), Some(acked)) => {
                        let deviation = (variance * mean).sqrt();
                        let kbps = acked / 1000.0;
                        if kbps > mean + 3.0 * deviation {
                            // Far past the old congestion: that path changed.
                            self.congestion_kbps = None;
                        }
                        (kbps - mean).abs() <= 3.0 * deviation
                    }
                    _ => false,
                };
                let grown = if near_congestion {
                    // About a 1,200-byte packet per response time (a round trip and 100 ms).
                    self.estimate_bps + 1200.0 * 8.0 / 0.2 * seconds
                } else {
                    self.estimate_bps * INCREASE_PER_SECOND.powf(seconds)
                };
                let ceiling = acked.map_or(f64::MAX, |acked| 1.5 * acked + 10_000.0);
                self.estimate_bps = grown.min(ceiling.max(self.estimate_bps));
            }
            _ => {}
        }
        self.estimate_bps = self.estimate_bps.clamp(MIN_BPS, MAX_BPS);
    }

    fn note_congestion(&mut self, kbps: f64) {
        let (mean, variance) = match self.congestion_kbps {
            None => (kbps, 0.4),
            Some((mean, variance)) => {
                let mean = 0.95 * mean + 0.05 * kbps;
                // Normalised by the mean, as the rate's own scale.
                let error = (mean - kbps).powi(2) / mean.max(1.0);
                (mean, (0.95 * variance + 0.05 * error).clamp(0.4, 2.5))
            }
        };
        self.congestion_kbps = Some((mean, variance));
    }
}

/// The least-squares slope of `points`.
fn slope(points: &VecDeque<(f64, f64)>) -> Option<f64> {
    let n = points.len() as f64;
    let (sum_x, sum_y) = points.iter().fold((0.0, 0.0), |(x, y), (px, py)| (x + px, y + py));
    let (mean_x, mean_y) = (sum_x / n, sum_y / n);
    let (mut numerator, mut denominator) = (0.0, 0.0);
    for (x, y) in points {
        numerator += (x - mean_x) * (y - mean_y);
        denominator += (x - mean_x) * (x - mean_x);
    }
    (denominator != 0.0).then(|| numerator / denominator)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A path with a bottleneck: a rate, a queue of `queue_ms` at that rate (what does
    /// not fit is dropped), a one-way delay and random loss.
    struct Path {
        rate_bps: f64,
        queue_ms: f64,
        delay_us: i64,
        loss: f64,
        /// When the bottleneck is free again, µs.
        free_at_us: i64,
        random: u64,
    }

    impl Path {
        fn new(rate_bps: f64) -> Path {
            Path { rate_bps, queue_ms: 1000.0, delay_us: 20_000, loss: 0.0, free_at_us: 0, random: 7 }
        }

        /// When a packet sent at `sent_us` arrives, if it does.
        fn carry(&mut self, sent_us: i64, size: usize) -> Option<i64> {
            self.random ^= self.random << 13;
            self.random ^= self.random >> 7;
            self.random ^= self.random << 17;
            if (self.random % 10_000) as f64 / 10_000.0 < self.loss {
                return None;
            }
            let start = self.free_at_us.max(sent_us);
            if (start - sent_us) as f64 / 1000.0 > self.queue_ms {
                return None;
            }
            self.free_at_us = start + (size as f64 * 8.0 / self.rate_bps * 1e6) as i64;
            Some(self.free_at_us + self.delay_us)
        }
    }

    /// Sends at the estimate (media and padding) for `seconds`, in 1,000-byte packets,
    /// with feedback every 50 ms; returns the estimate after each second.
    fn run(estimator: &mut Estimator, path: &mut Path, start: Instant, from_s: u64, seconds: u64) -> Vec<u64> {
        let mut estimates = Vec::new();
        let mut pending = Vec::new();
        let mut sent_us: i64 = (from_s * 1_000_000) as i64;
        let mut seq = sent_us as u64;
        let end_us = ((from_s + seconds) * 1_000_000) as i64;
        let mut next_feedback_us = sent_us + 50_000;
        let mut next_second_us = sent_us + 1_000_000;
        while sent_us < end_us {
            let size = 1000;
            let sent = start + Duration::from_micros(sent_us as u64);
            pending.push(PacketResult { seq, sent, size, arrival_us: path.carry(sent_us, size), padding: false });
            seq += 1;
            sent_us += (size as f64 * 8.0 / estimator.estimate_bps() as f64 * 1e6) as i64;
            if sent_us >= next_feedback_us {
                // Feedback covers what left by now, a one-way delay later.
                let now = start + Duration::from_micros((next_feedback_us + path.delay_us) as u64);
                estimator.on_feedback(now, &pending);
                pending.clear();
                next_feedback_us += 50_000;
            }
            if sent_us >= next_second_us {
                estimates.push(estimator.estimate_bps());
                next_second_us += 1_000_000;
            }
        }
        estimates
    }

    #[test]
    fn the_estimate_falls_to_a_narrow_path_and_grows_back_when_it_widens() {
        let start = Instant::now();
        let mut estimator = Estimator::new(start);
        let mut path = Path::new(300_000.0);
        let narrow = run(&mut estimator, &mut path, start, 0, 15);
        let settled = &narrow[5..];
        assert!(settled.iter().all(|&bps| (150_000..=360_000).contains(&bps)), "at 300 kbit/s: {narrow:?}");
        // Lifted: it finds 2 Mbit/s within 30 s, never far past it.
        path.rate_bps = 2_000_000.0;
        let wide = run(&mut estimator, &mut path, start, 15, 30);
        assert!(wide.iter().any(|&bps| bps >= 1_400_000), "at 2 Mbit/s: {wide:?}");
        assert!(wide.iter().all(|&bps| bps <= 2_600_000), "at 2 Mbit/s: {wide:?}");
    }

    #[test]
    fn random_loss_of_five_percent_does_not_bring_it_down() {
        let start = Instant::now();
        let mut estimator = Estimator::new(start);
        let mut path = Path::new(10_000_000.0);
        path.loss = 0.05;
        let estimates = run(&mut estimator, &mut path, start, 0, 20);
        assert!(estimates.iter().all(|&bps| bps >= INITIAL_BPS * 9 / 10), "{estimates:?}");
    }

    #[test]
    fn heavy_loss_halves_it_by_the_loss_fraction() {
        let start = Instant::now();
        let mut estimator = Estimator::new(start);
        let mut path = Path::new(10_000_000.0);
        path.loss = 0.3;
        let estimates = run(&mut estimator, &mut path, start, 0, 6);
        // 15% less each second.
        assert!(estimates.windows(2).skip(1).all(|pair| pair[1] < pair[0] * 9 / 10), "{estimates:?}");
        assert!(estimates[5] < INITIAL_BPS / 2, "{estimates:?}");
        assert!(estimates.iter().all(|&bps| bps as f64 >= MIN_BPS), "{estimates:?}");
    }
}
