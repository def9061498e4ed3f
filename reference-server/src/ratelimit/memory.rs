//! The in-process store: the same algorithms and answers as the Redis store,
//! for single-instance deployments and as the default when no Redis is
//! configured. **Not shared across instances**: behind a load balancer with
//! N instances an org gets up to N × limit.
//!
//! State is sharded by key (one mutex per shard); idle keys are swept when a
//! shard grows, so memory follows the active orgs.

use std::collections::hash_map::DefaultHasher;
use std::collections::{HashMap, VecDeque};
use std::hash::{Hash, Hasher};
use std::sync::Mutex;
use std::time::Instant;

use super::policy::{Algorithm, Decision, Policy};

const SHARDS: usize = 32;
/// A shard sweeps idle keys once it holds this many.
const SWEEP_AT: usize = 4096;

#[derive(Debug)]
enum Counts {
    Log(VecDeque<u64>),
    Fixed { window: u64, count: u32 },
}

/// A key's state; after one `window_us` without requests it carries no
/// information (every logged admission expired, or the fixed window passed).
#[derive(Debug)]
struct State {
    touched_us: u64,
    window_us: u64,
    counts: Counts,
}

#[derive(Debug, Default)]
struct Shard {
    map: HashMap<String, State>,
    sweep_at: usize,
}

/// The in-process store.
#[derive(Debug)]
pub struct MemoryStore {
    epoch: Instant,
    shards: Vec<Mutex<Shard>>,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self {
            epoch: Instant::now(),
            shards: (0..SHARDS)
                .map(|_| {
                    Mutex::new(Shard {
                        map: HashMap::new(),
                        sweep_at: SWEEP_AT,
                    })
                })
                .collect(),
        }
    }

    /// Decides for `key` under `policy` now.
    pub fn decide(&self, key: &str, policy: &Policy) -> Decision {
        let now_us = self.epoch.elapsed().as_micros() as u64;
        self.decide_at(key, policy, now_us)
    }

    /// Decides at `now_us` (microseconds on this store's clock; must not go
    /// backwards per key). Exposed for model tests and fuzzing.
    pub fn decide_at(&self, key: &str, policy: &Policy, now_us: u64) -> Decision {
        let mut hasher = DefaultHasher::new();
        key.hash(&mut hasher);
        let shard = &self.shards[(hasher.finish() as usize) % SHARDS];
        let mut shard = shard.lock().unwrap_or_else(|p| p.into_inner());
        if shard.map.len() >= shard.sweep_at {
            sweep(&mut shard, now_us);
        }
        let window_us = policy.window_ms() * 1000;
        let limit = policy.limit;
        let fresh = || match policy.algorithm {
            Algorithm::SlidingWindow => Counts::Log(VecDeque::new()),
            Algorithm::FixedWindow => Counts::Fixed { window: 0, count: 0 },
        };
        let state = shard.map.entry(key.to_string()).or_insert_with(|| State {
            touched_us: now_us,
            window_us,
            counts: fresh(),
        });
        state.touched_us = now_us;
        state.window_us = window_us;
        match (policy.algorithm, &state.counts) {
            (Algorithm::SlidingWindow, Counts::Log(_)) | (Algorithm::FixedWindow, Counts::Fixed { .. }) => {}
            // The policy's algorithm changed (a config reload): start over.
            _ => state.counts = fresh(),
        }
        match &mut state.counts {
            Counts::Log(log) => {
                while log.front().is_some_and(|&t| t + window_us <= now_us) {
                    log.pop_front();
                }
                let count = log.len() as u32;
                if count < limit {
                    log.push_back(now_us);
                    let oldest = log.front().copied().unwrap_or(now_us);
                    Decision {
                        allowed: true,
                        remaining: limit - count - 1,
                        reset_ms: (oldest + window_us - now_us).div_ceil(1000),
                    }
                } else {
                    let oldest = log.front().copied().unwrap_or(now_us);
                    Decision {
                        allowed: false,
                        remaining: 0,
                        reset_ms: (oldest + window_us).saturating_sub(now_us).div_ceil(1000),
                    }
                }
            }
            Counts::Fixed { window, count } => {
                let index = now_us / window_us;
                let reset_ms = ((index + 1) * window_us - now_us).div_ceil(1000);
                if *window != index {
                    *window = index;
                    *count = 0;
                }
                if *count < limit {
                    *count += 1;
                    Decision {
                        allowed: true,
                        remaining: limit - *count,
                        reset_ms,
                    }
                } else {
                    Decision {
                        allowed: false,
                        remaining: 0,
                        reset_ms,
                    }
                }
            }
        }
    }

    /// Keys held (for tests of the sweep).
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|p| p.into_inner()).map.len())
            .sum()
    }

    /// Whether no keys are held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Drops keys idle for more than their window (they carry no information);
/// if the shard is still large, sweeps less often (the live set is big).
fn sweep(shard: &mut Shard, now_us: u64) {
    shard
        .map
        .retain(|_, state| state.touched_us + state.window_us > now_us);
    shard.sweep_at = (shard.map.len() * 2).max(SWEEP_AT);
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn policy(algorithm: Algorithm) -> Policy {
        Policy::new("t", 3, Duration::from_secs(1)).algorithm(algorithm)
    }

    #[test]
    fn sliding_window_is_exact_and_rejections_do_not_consume() {
        let store = MemoryStore::new();
        let p = policy(Algorithm::SlidingWindow);
        let at = |t_ms: u64| store.decide_at("k", &p, t_ms * 1000);
        assert_eq!(at(0).remaining, 2);
        assert_eq!(at(100).remaining, 1);
        assert_eq!(at(200).remaining, 0);
        let refused = at(300);
        assert!(!refused.allowed);
        assert_eq!(refused.reset_ms, 700);
        for t in 301..999 {
            assert!(!at(t).allowed, "{t}");
        }
        // The first admission leaves the window at 1000: one slot, not more.
        assert!(at(1000).allowed);
        assert!(!at(1001).allowed);
        assert!(at(1100).allowed);
        assert!(at(1200).allowed);
        assert!(!at(1250).allowed);
    }

    #[test]
    fn fixed_window_resets_at_the_boundary() {
        let store = MemoryStore::new();
        let p = policy(Algorithm::FixedWindow);
        let at = |t_ms: u64| store.decide_at("k", &p, t_ms * 1000);
        assert!(at(900).allowed);
        assert!(at(950).allowed);
        let last = at(999);
        assert!(last.allowed);
        assert_eq!((last.remaining, last.reset_ms), (0, 1));
        assert!(!at(999).allowed);
        // 2 × limit within 200 ms across the boundary: the documented bound.
        assert!(at(1000).allowed && at(1001).allowed && at(1002).allowed);
        assert!(!at(1003).allowed);
    }

    #[test]
    fn keys_are_independent_and_idle_keys_are_swept() {
        let store = MemoryStore::new();
        let p = policy(Algorithm::SlidingWindow);
        for i in 0..3 {
            assert!(store.decide_at("a", &p, i).allowed);
        }
        assert!(!store.decide_at("a", &p, 10).allowed);
        assert!(store.decide_at("b", &p, 10).allowed);
        for i in 0..(SHARDS * SWEEP_AT) as u64 {
            store.decide_at(&format!("k{i}"), &p, 0);
        }
        // A window later the old keys are swept as shards fill again.
        let later = 2_000_000;
        for i in 0..(SHARDS * SWEEP_AT) as u64 {
            store.decide_at(&format!("n{i}"), &p, later);
        }
        assert!(store.len() < 2 * SHARDS * SWEEP_AT, "{}", store.len());
    }
}
