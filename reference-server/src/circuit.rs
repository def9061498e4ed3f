//! Circuit breakers: a dependency that is down is not asked again on every
//! request.
//!
//! Each dependency the stack calls on the request path — the app's Postgres
//! pool, the identity store's pool, the rate limiter's Redis — sits behind a
//! [`Breaker`]. Closed, every call goes through. After
//! `circuit.failures` consecutive failures (connection attempts for the
//! pools, decisions for the limiter) it opens: calls are refused at once,
//! without touching the network, and callers answer with their configured
//! failure (503 + `Retry-After` for the database, the policy's fail mode for
//! the limiter). Once the open period has passed, the breaker is half-open:
//! exactly one call goes through as a probe while the others are still
//! refused; a successful probe closes it, a failed one opens it again for
//! twice as long (up to `circuit.max_open_ms`). Every open period is
//! jittered (between half and all of its length), so the instances of a
//! fleet do not probe a recovering database in lockstep.
//!
//! While a dependency is down this bounds the attempts to about one per open
//! period per breaker, instead of one per request; the cost on the request
//! path of a closed breaker is one atomic load.

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Deserialize;

/// `[circuit]`: when the breakers in front of Postgres and Redis open, and
/// for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct CircuitConfig {
    /// `circuit.failures`: consecutive failures that open a breaker, default 3.
    pub failures: u32,
    /// `circuit.min_open_ms`: the first open period, default 100.
    pub min_open_ms: u64,
    /// `circuit.max_open_ms`: the longest open period (each failed probe
    /// doubles it up to this), default 2 000: it bounds the recovery time
    /// once the dependency is back.
    pub max_open_ms: u64,
}

impl Default for CircuitConfig {
    fn default() -> Self {
        Self {
            failures: 3,
            min_open_ms: 100,
            max_open_ms: 2_000,
        }
    }
}

impl CircuitConfig {
    /// `Err((key, what is expected))` for an out-of-range value.
    pub fn validate(&self) -> Result<(), (&'static str, &'static str)> {
        if !(1..=1_000).contains(&self.failures) {
            return Err(("circuit.failures", "expected 1..=1000"));
        }
        if !(10..=60_000).contains(&self.min_open_ms) {
            return Err(("circuit.min_open_ms", "expected 10..=60000 milliseconds"));
        }
        if !(self.min_open_ms..=600_000).contains(&self.max_open_ms) {
            return Err((
                "circuit.max_open_ms",
                "expected circuit.min_open_ms..=600000 milliseconds",
            ));
        }
        Ok(())
    }
}

/// A breaker's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Calls go through.
    Closed,
    /// Calls are refused at once until the open period ends.
    Open,
    /// One probe call is allowed; the rest are refused.
    HalfOpen,
}

impl State {
    fn from_u8(v: u8) -> Self {
        match v {
            0 => State::Closed,
            1 => State::Open,
            _ => State::HalfOpen,
        }
    }

    /// The metric value: 0 closed, 1 open, 2 half-open.
    pub fn gauge(self) -> u8 {
        match self {
            State::Closed => 0,
            State::Open => 1,
            State::HalfOpen => 2,
        }
    }

    /// `closed`, `open`, `half-open`.
    pub fn name(self) -> &'static str {
        match self {
            State::Closed => "closed",
            State::Open => "open",
            State::HalfOpen => "half-open",
        }
    }
}

/// A call refused because the breaker is open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{dependency} is unavailable (circuit open; next attempt in {} ms)", retry_after.as_millis())]
pub struct Open {
    /// The dependency.
    pub dependency: &'static str,
    /// When the breaker lets a probe through again (at least 1 ms).
    pub retry_after: Duration,
}

impl Open {
    /// `Retry-After` in whole seconds, rounded up, at least 1.
    pub fn retry_after_secs(&self) -> u64 {
        self.retry_after.as_millis().div_ceil(1000).max(1) as u64
    }
}

#[derive(Debug)]
struct Inner {
    consecutive_failures: u32,
    /// Opens since the last success: the exponent of the open period.
    trips: u32,
    open_until: Instant,
    probe_out: bool,
    down_since: Option<Instant>,
    rng: u64,
}

/// A circuit breaker for one dependency.
#[derive(Debug)]
pub struct Breaker {
    dependency: &'static str,
    config: CircuitConfig,
    state: AtomicU8,
    inner: Mutex<Inner>,
    attempts: AtomicU64,
    failures: AtomicU64,
    refused: AtomicU64,
    opened: AtomicU64,
}

/// Permission for one call. Report how it went with
/// [`Attempt::succeeded`] or [`Attempt::failed`]; dropping it unreported
/// (a cancelled call) frees a probe slot without judging the dependency.
#[derive(Debug)]
#[must_use = "report the call's outcome"]
pub struct Attempt<'a> {
    breaker: &'a Breaker,
    probe: bool,
    reported: bool,
}

impl Attempt<'_> {
    /// The call worked: the dependency answers.
    pub fn succeeded(mut self) {
        self.reported = true;
        self.breaker.success(self.probe);
    }

    /// The call failed in a way that says the dependency is down.
    pub fn failed(mut self, error: &dyn std::fmt::Display) {
        self.reported = true;
        self.breaker.failure(self.probe, error);
    }
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        if !self.reported && self.probe {
            self.breaker.lock().probe_out = false;
        }
    }
}

impl Breaker {
    /// A closed breaker for `dependency` (a metric label: `postgres`, `identity-store`, `redis`).
    pub fn new(dependency: &'static str, config: CircuitConfig) -> Self {
        let mut seed = [0u8; 8];
        let _ = getrandom::fill(&mut seed);
        Self {
            dependency,
            config,
            state: AtomicU8::new(State::Closed.gauge()),
            inner: Mutex::new(Inner {
                consecutive_failures: 0,
                trips: 0,
                open_until: Instant::now(),
                probe_out: false,
                down_since: None,
                rng: u64::from_le_bytes(seed) | 1,
            }),
            attempts: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            opened: AtomicU64::new(0),
        }
    }

    /// The dependency's name.
    pub fn dependency(&self) -> &'static str {
        self.dependency
    }

    /// The current state.
    pub fn state(&self) -> State {
        State::from_u8(self.state.load(Ordering::Acquire))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn set_state(&self, state: State) {
        self.state.store(state.gauge(), Ordering::Release);
    }

    /// Asks to make one call. Closed: yes. Open: no, until the open period
    /// ends; then the first caller gets the probe and the breaker is
    /// half-open until the probe reports.
    pub fn attempt(&self) -> Result<Attempt<'_>, Open> {
        if self.state() == State::Closed {
            self.attempts.fetch_add(1, Ordering::Relaxed);
            return Ok(Attempt {
                breaker: self,
                probe: false,
                reported: false,
            });
        }
        let now = Instant::now();
        let mut inner = self.lock();
        let state = self.state();
        let probe = match state {
            State::Closed => false,
            State::Open | State::HalfOpen if now >= inner.open_until && !inner.probe_out => {
                inner.probe_out = true;
                self.set_state(State::HalfOpen);
                true
            }
            State::Open | State::HalfOpen => {
                self.refused.fetch_add(1, Ordering::Relaxed);
                // A probe is out: its answer comes within the open period.
                let wait = inner
                    .open_until
                    .saturating_duration_since(now)
                    .max(Duration::from_millis(self.config.min_open_ms));
                return Err(Open {
                    dependency: self.dependency,
                    retry_after: wait,
                });
            }
        };
        drop(inner);
        self.attempts.fetch_add(1, Ordering::Relaxed);
        Ok(Attempt {
            breaker: self,
            probe,
            reported: false,
        })
    }

    /// Whether a call would be refused right now, without taking a probe
    /// slot (a fast check before waiting on a pool).
    pub fn refuses(&self) -> Option<Open> {
        match self.state() {
            State::Closed => None,
            State::Open | State::HalfOpen => {
                let inner = self.lock();
                let now = Instant::now();
                let waiting = now < inner.open_until || inner.probe_out;
                waiting.then(|| {
                    self.refused.fetch_add(1, Ordering::Relaxed);
                    Open {
                        dependency: self.dependency,
                        retry_after: inner
                            .open_until
                            .saturating_duration_since(now)
                            .max(Duration::from_millis(self.config.min_open_ms)),
                    }
                })
            }
        }
    }

    fn success(&self, probe: bool) {
        if self.state() == State::Closed && !probe {
            // The common case: keep the hot path free of the lock unless a
            // failure streak has to be reset.
            let inner = self.lock();
            if inner.consecutive_failures == 0 {
                return;
            }
            drop(inner);
        }
        let mut inner = self.lock();
        inner.consecutive_failures = 0;
        inner.trips = 0;
        inner.probe_out = false;
        if let Some(since) = inner.down_since.take() {
            tracing::info!(
                dependency = self.dependency,
                down_ms = since.elapsed().as_millis() as u64,
                "{} answers again; circuit closed",
                self.dependency
            );
        }
        self.set_state(State::Closed);
    }

    fn failure(&self, probe: bool, error: &dyn std::fmt::Display) {
        self.failures.fetch_add(1, Ordering::Relaxed);
        let mut inner = self.lock();
        inner.consecutive_failures = inner.consecutive_failures.saturating_add(1);
        if probe {
            inner.probe_out = false;
        }
        let trip =
            probe || (self.state() == State::Closed && inner.consecutive_failures >= self.config.failures);
        if !trip {
            return;
        }
        inner.trips = inner.trips.saturating_add(1);
        let base = self
            .config
            .min_open_ms
            .saturating_mul(1u64 << (inner.trips - 1).min(20))
            .min(self.config.max_open_ms);
        // Equal jitter: between half and all of the period.
        inner.rng ^= inner.rng << 13;
        inner.rng ^= inner.rng >> 7;
        inner.rng ^= inner.rng << 17;
        let half = base / 2;
        let open_ms = half + inner.rng % (base - half + 1);
        inner.open_until = Instant::now() + Duration::from_millis(open_ms);
        let first = inner.down_since.is_none();
        inner.down_since.get_or_insert_with(Instant::now);
        drop(inner);
        self.opened.fetch_add(1, Ordering::Relaxed);
        self.set_state(State::Open);
        if first {
            tracing::warn!(
                dependency = self.dependency,
                open_ms,
                %error,
                "{} is unavailable; circuit open: answering at once and probing with backoff",
                self.dependency
            );
        } else {
            tracing::debug!(dependency = self.dependency, open_ms, %error, "probe failed; circuit open again");
        }
    }

    /// Counters: (attempts let through, failures, calls refused while open, times opened).
    pub fn counts(&self) -> [u64; 4] {
        [
            self.attempts.load(Ordering::Relaxed),
            self.failures.load(Ordering::Relaxed),
            self.refused.load(Ordering::Relaxed),
            self.opened.load(Ordering::Relaxed),
        ]
    }
}

/// A middleware that answers at once while its breaker refuses, for
/// routes whose dependency is reached through a pool that cannot refuse by
/// itself (the identity store's): no request waits on a server that is down.
#[derive(Clone)]
pub struct Gate {
    breaker: std::sync::Arc<Breaker>,
    respond: fn(Open) -> axum::response::Response,
}

impl std::fmt::Debug for Gate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gate")
            .field("dependency", &self.breaker.dependency())
            .finish_non_exhaustive()
    }
}

impl Gate {
    /// A gate on `breaker` that answers with `respond` (the route family's
    /// error shape, with `Retry-After`).
    pub fn new(breaker: std::sync::Arc<Breaker>, respond: fn(Open) -> axum::response::Response) -> Self {
        Self { breaker, respond }
    }
}

/// The middleware function of a [`Gate`] (`axum::middleware::from_fn_with_state`).
pub async fn gate(
    axum::extract::State(gate): axum::extract::State<Gate>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    if let Some(open) = gate.breaker.refuses() {
        unavailable_warning(open.dependency);
        return (gate.respond)(open);
    }
    next.run(request).await
}

/// Logs "`dependency` unavailable (N requests refused in the last 10 s)" at
/// most once per 10 s per dependency kind.
pub fn unavailable_warning(dependency: &'static str) {
    static DATABASE: ThrottledWarning = ThrottledWarning::new(10_000);
    static OTHER: ThrottledWarning = ThrottledWarning::new(10_000);
    let warning = if dependency == "postgres" {
        &DATABASE
    } else {
        &OTHER
    };
    if let Some(n) = warning.note() {
        tracing::warn!(
            dependency,
            refused = n,
            "{} unavailable ({n} requests refused in the last {} s)",
            if dependency == "postgres" {
                "database"
            } else {
                dependency
            },
            warning.interval_secs()
        );
    }
}

/// A warning logged at most once per interval, with how many times it
/// happened since the last line: a dependency that is down for 10 s makes
/// one line per interval, not one per request.
#[derive(Debug)]
pub struct ThrottledWarning {
    interval_ms: u64,
    count: AtomicU64,
    last_ms: AtomicU64,
}

impl ThrottledWarning {
    /// A warning logged at most once per `interval_ms`.
    pub const fn new(interval_ms: u64) -> Self {
        Self {
            interval_ms,
            count: AtomicU64::new(0),
            last_ms: AtomicU64::new(0),
        }
    }

    /// Counts one occurrence; `Some(n)` when this one should be logged,
    /// with `n` occurrences since the last line (this one included).
    pub fn note(&self) -> Option<u64> {
        self.count.fetch_add(1, Ordering::Relaxed);
        let now = clock_ms();
        let last = self.last_ms.load(Ordering::Relaxed);
        if last != 0 && now.saturating_sub(last) < self.interval_ms {
            return None;
        }
        self.last_ms
            .compare_exchange(last, now, Ordering::AcqRel, Ordering::Relaxed)
            .ok()?;
        Some(self.count.swap(0, Ordering::AcqRel))
    }

    /// The interval, in whole seconds (for the log line).
    pub fn interval_secs(&self) -> u64 {
        self.interval_ms.div_ceil(1000)
    }
}

/// Milliseconds on a monotonic clock, starting at 1.
fn clock_ms() -> u64 {
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_millis() as u64 + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> CircuitConfig {
        CircuitConfig {
            failures: 2,
            min_open_ms: 40,
            max_open_ms: 160,
        }
    }

    #[test]
    fn opens_after_consecutive_failures_and_refuses_at_once() {
        let b = Breaker::new("db", config());
        b.attempt().unwrap().failed(&"refused");
        b.attempt().unwrap().succeeded();
        b.attempt().unwrap().failed(&"refused");
        assert_eq!(b.state(), State::Closed, "a success resets the streak");
        b.attempt().unwrap().failed(&"refused");
        assert_eq!(b.state(), State::Open);
        let open = b.attempt().unwrap_err();
        assert_eq!(open.dependency, "db");
        assert!(open.retry_after <= Duration::from_millis(40));
        assert_eq!(open.retry_after_secs(), 1);
        assert!(b.refuses().is_some());
        assert_eq!(b.counts()[3], 1);
    }

    #[test]
    fn half_open_lets_one_probe_through() {
        let b = Breaker::new("db", config());
        for _ in 0..2 {
            b.attempt().unwrap().failed(&"down");
        }
        std::thread::sleep(Duration::from_millis(45));
        let probe = b.attempt().expect("the probe");
        assert_eq!(b.state(), State::HalfOpen);
        assert!(b.attempt().is_err(), "a second caller waits for the probe");
        assert!(b.refuses().is_some());
        probe.succeeded();
        assert_eq!(b.state(), State::Closed);
        assert!(b.refuses().is_none());
        b.attempt().unwrap().succeeded();
    }

    #[test]
    fn failed_probes_back_off_up_to_the_maximum() {
        let b = Breaker::new("db", config());
        for _ in 0..2 {
            b.attempt().unwrap().failed(&"down");
        }
        let mut longest = Duration::ZERO;
        for _ in 0..5 {
            let wait = b.attempt().unwrap_err().retry_after;
            assert!(wait <= Duration::from_millis(160), "{wait:?}");
            longest = longest.max(wait);
            std::thread::sleep(wait + Duration::from_millis(2));
            b.attempt()
                .expect("a probe after the open period")
                .failed(&"still down");
        }
        // Equal jitter never goes below half the capped period.
        assert!(longest >= Duration::from_millis(80), "{longest:?}");
    }

    #[test]
    fn a_cancelled_probe_frees_the_slot() {
        let b = Breaker::new("db", config());
        for _ in 0..2 {
            b.attempt().unwrap().failed(&"down");
        }
        std::thread::sleep(Duration::from_millis(45));
        drop(b.attempt().expect("the probe"));
        assert!(b.attempt().is_ok(), "the slot is free again");
    }

    #[test]
    fn throttled_warnings_count_what_they_swallow() {
        let w = ThrottledWarning::new(60_000);
        assert_eq!(w.note(), Some(1));
        for _ in 0..9 {
            assert_eq!(w.note(), None);
        }
        assert_eq!(w.count.load(Ordering::Relaxed), 9);
        let quick = ThrottledWarning::new(1);
        assert_eq!(quick.note(), Some(1));
        std::thread::sleep(Duration::from_millis(3));
        quick.note();
        std::thread::sleep(Duration::from_millis(3));
        assert_eq!(quick.note(), Some(1));
    }
}
