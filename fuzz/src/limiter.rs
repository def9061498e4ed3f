//! The rate limiter's reference model: per (org, policy), the exact sliding
//! window (admit when fewer than `limit` admissions lie in the last window)
//! or the aligned fixed window (at most `limit` per multiple of `window`).

use std::collections::{HashMap, VecDeque};

use arbitrary::Arbitrary;
use tenantry_reference::ratelimit::{Algorithm, Decision, Policy};

/// A policy as fuzz input.
#[derive(Debug, Arbitrary)]
pub struct PolicySpec {
    /// Requests per window (0..=15).
    pub limit: u8,
    /// Window in ms (1..=4096).
    pub window_ms: u16,
    /// Fixed window (else sliding).
    pub fixed: bool,
}

impl PolicySpec {
    /// The library policy named `name`.
    pub fn policy(&self, name: &str) -> Policy {
        let algorithm = if self.fixed {
            Algorithm::FixedWindow
        } else {
            Algorithm::SlidingWindow
        };
        let window = std::time::Duration::from_millis(u64::from(self.window_ms % 4096) + 1);
        Policy::new(name, u32::from(self.limit % 16), window).algorithm(algorithm)
    }
}

/// How far the clock moves before a request.
#[derive(Debug, Arbitrary)]
pub enum Advance {
    /// Not at all (a burst).
    None,
    /// Microseconds.
    Micros(u16),
    /// Milliseconds.
    Millis(u16),
    /// Whole seconds.
    Secs(u8),
}

impl Advance {
    /// In microseconds.
    pub fn micros(&self) -> u64 {
        match self {
            Advance::None => 0,
            Advance::Micros(n) => u64::from(*n),
            Advance::Millis(n) => u64::from(*n) * 1000,
            Advance::Secs(n) => u64::from(*n) * 1_000_000,
        }
    }
}

/// One request: which org, which policy, after how long.
#[derive(Debug, Arbitrary)]
pub struct Step {
    /// Index into the org pool.
    pub org: u8,
    /// The second policy (else the first).
    pub second: bool,
    /// Clock advance before it.
    pub advance: Advance,
}

/// A fuzz run: two policies, a pool of org ids (hostile ones included, and
/// possibly equal), and a request sequence.
#[derive(Debug, Arbitrary)]
pub struct Run {
    /// The two policies.
    pub policies: [PolicySpec; 2],
    /// Org ids.
    pub orgs: Vec<String>,
    /// Requests.
    pub steps: Vec<Step>,
}

#[derive(Debug, Default)]
struct Counter {
    /// Sliding: admission times in the window. Fixed: (window index, count).
    log: VecDeque<u64>,
    fixed: (u64, u32),
    /// Every admission (for the bound).
    admitted: Vec<u64>,
}

/// The model: counters per (org, policy name).
#[derive(Debug, Default)]
pub struct Model {
    counters: HashMap<(String, String), Counter>,
}

impl Model {
    /// The model's decision for `org` under `policy` at `now_us`.
    pub fn decide(&mut self, org: &str, policy: &Policy, now_us: u64) -> Decision {
        let counter = self
            .counters
            .entry((org.to_string(), policy.name.clone()))
            .or_default();
        let window = policy.window_ms() * 1000;
        let limit = policy.limit;
        let ms = |us: u64| us.div_ceil(1000);
        let decision = match policy.algorithm {
            Algorithm::SlidingWindow => {
                counter.log.retain(|&t| t + window > now_us);
                let used = counter.log.len() as u32;
                let allowed = used < limit;
                if allowed {
                    counter.log.push_back(now_us);
                }
                let oldest = counter.log.front().copied().unwrap_or(now_us);
                Decision {
                    allowed,
                    remaining: if allowed { limit - used - 1 } else { 0 },
                    reset_ms: ms((oldest + window).saturating_sub(now_us)),
                }
            }
            Algorithm::FixedWindow => {
                let index = now_us / window;
                if counter.fixed.0 != index {
                    counter.fixed = (index, 0);
                }
                let allowed = counter.fixed.1 < limit;
                if allowed {
                    counter.fixed.1 += 1;
                }
                Decision {
                    allowed,
                    remaining: if allowed { limit - counter.fixed.1 } else { 0 },
                    reset_ms: ms((index + 1) * window - now_us),
                }
            }
        };
        if decision.allowed {
            counter.admitted.push(now_us);
        }
        decision
    }

    /// The most admissions for `org` under `policy` in any window-long
    /// interval ending at `now_us`.
    pub fn admitted_in_window(&self, org: &str, policy: &Policy, now_us: u64) -> u64 {
        let window = policy.window_ms() * 1000;
        self.counters
            .get(&(org.to_string(), policy.name.clone()))
            .map_or(0, |c| {
                c.admitted.iter().filter(|&&t| t + window > now_us).count() as u64
            })
    }
}
