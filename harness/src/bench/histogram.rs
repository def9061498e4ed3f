//! A log-linear latency histogram in microseconds: exact below 256 µs,
//! then 128 buckets per power of two (relative error under 0.8 %), so
//! percentiles from a few µs to hours need a fixed 4.5k counters and
//! merging is adding arrays. Recording is one index computation.

use std::time::Duration;

/// Exact values below this (µs).
const LINEAR: u64 = 256;
/// Sub-buckets per power of two above [`LINEAR`].
const SUB: u64 = 128;
/// Powers of two covered above [`LINEAR`] (2^8 .. 2^44 µs: about 200 days).
const OCTAVES: u64 = 36;
const BUCKETS: usize = (LINEAR + OCTAVES * SUB) as usize;

/// Latencies recorded in microseconds.
#[derive(Clone)]
pub struct Histogram {
    counts: Vec<u64>,
    total: u64,
    sum_us: u128,
    max_us: u64,
    min_us: u64,
}

impl std::fmt::Debug for Histogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Histogram")
            .field("total", &self.total)
            .field("max_us", &self.max_us)
            .finish()
    }
}

impl Default for Histogram {
    fn default() -> Self {
        Self::new()
    }
}

fn index(us: u64) -> usize {
    if us < LINEAR {
        return us as usize;
    }
    let exp = 63 - u64::from(us.leading_zeros()); // us in [2^exp, 2^(exp+1)), exp >= 8
    let shift = exp - 7;
    let mantissa = us >> shift; // in [128, 256)
    let i = LINEAR + (exp - 8) * SUB + (mantissa - SUB);
    (i as usize).min(BUCKETS - 1)
}

/// The (lowest, highest) value bucket `i` holds.
fn bounds(i: usize) -> (u64, u64) {
    let i = i as u64;
    if i < LINEAR {
        return (i, i);
    }
    let exp = (i - LINEAR) / SUB + 8;
    let mantissa = (i - LINEAR) % SUB + SUB;
    let shift = exp - 7;
    let low = mantissa << shift;
    (low, low + (1 << shift) - 1)
}

impl Histogram {
    /// An empty histogram.
    pub fn new() -> Self {
        Self {
            counts: vec![0; BUCKETS],
            total: 0,
            sum_us: 0,
            max_us: 0,
            min_us: u64::MAX,
        }
    }

    /// Records one latency.
    pub fn record(&mut self, latency: Duration) {
        self.record_us(u64::try_from(latency.as_micros()).unwrap_or(u64::MAX));
    }

    /// Records one latency of `us` microseconds.
    pub fn record_us(&mut self, us: u64) {
        self.counts[index(us)] += 1;
        self.total += 1;
        self.sum_us += u128::from(us);
        self.max_us = self.max_us.max(us);
        self.min_us = self.min_us.min(us);
    }

    /// Adds `other`'s recordings.
    pub fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.total += other.total;
        self.sum_us += other.sum_us;
        self.max_us = self.max_us.max(other.max_us);
        self.min_us = self.min_us.min(other.min_us);
    }

    /// Recordings.
    pub fn count(&self) -> u64 {
        self.total
    }

    /// The largest value recorded (µs; 0 when empty).
    pub fn max_us(&self) -> u64 {
        self.max_us
    }

    /// The smallest value recorded (µs; 0 when empty).
    pub fn min_us(&self) -> u64 {
        if self.total == 0 {
            0
        } else {
            self.min_us
        }
    }

    /// The mean (µs; 0 when empty).
    pub fn mean_us(&self) -> f64 {
        if self.total == 0 {
            0.0
        } else {
            self.sum_us as f64 / self.total as f64
        }
    }

    /// The value at quantile `q` (0..=1) in µs: the upper end of the bucket
    /// holding the rank-⌈q·n⌉ recording, capped at the maximum (so
    /// `value_at(1.0) == max`). 0 when empty.
    pub fn value_at(&self, q: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return bounds(i).1.min(self.max_us).max(self.min_us());
            }
        }
        self.max_us
    }

    /// The value at quantile `q` in milliseconds.
    pub fn ms_at(&self, q: f64) -> f64 {
        self.value_at(q) as f64 / 1000.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_cover_their_values() {
        for us in [0, 1, 255, 256, 257, 1000, 4095, 65_537, 1_000_000, 123_456_789] {
            let (low, high) = bounds(index(us));
            assert!(low <= us && us <= high, "{us} not in [{low}, {high}]");
            // Relative width under 1 %.
            assert!(
                (high - low) as f64 <= us as f64 / 100.0 + 1.0,
                "{us}: [{low}, {high}]"
            );
        }
    }

    #[test]
    fn percentiles_are_ordered_and_close() {
        let mut h = Histogram::new();
        for us in 1..=10_000u64 {
            h.record_us(us);
        }
        let p50 = h.value_at(0.5);
        let p99 = h.value_at(0.99);
        assert!((4_960..=5_040).contains(&p50), "{p50}");
        assert!((9_850..=9_990).contains(&p99), "{p99}");
        assert_eq!(h.value_at(1.0), 10_000);
        assert_eq!(h.value_at(0.0), 1);
        let mut other = Histogram::new();
        other.record_us(50_000);
        h.merge(&other);
        assert_eq!(h.count(), 10_001);
        assert_eq!(h.max_us(), 50_000);
    }

    #[test]
    fn an_empty_histogram_says_zero() {
        let h = Histogram::new();
        assert_eq!(h.value_at(0.99), 0);
        assert_eq!(h.mean_us(), 0.0);
    }
}
