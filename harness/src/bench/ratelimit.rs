//! 429 accuracy: one org of its own (never loaded otherwise, so its budget
//! is whole) sends a policy's request as fast as a few workers can, for
//! whole windows, and the admissions are compared with what the policy
//! admits in that time.
//!
//! Over `W` whole windows of overload a policy of `limit` per window
//! admits `limit × W` (exact sliding window); fixed windows (the phase
//! straddles one more aligned window) and token buckets (a full bucket at
//! the start) may admit one window's worth more. So admissions are right
//! when in `[limit × W, limit × (W − 1) + bound]`, `bound` the algorithm's
//! most admitted in one window ([`LimitAlgorithm::bound`]). Accuracy is
//! 100 % inside that range and falls by the distance outside it, relative
//! to `limit × W`; admissions above the range are over-admissions.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::load::{Lean, Outcome};
use super::plan::{self, Plan, Tokens};
use super::BenchError;
use crate::client::Client;
use crate::profile::{LimitAlgorithm, LimitPolicy};
use crate::session::Sessions;
use crate::world::World;

/// Workers driving the limited org.
pub const WORKERS: usize = 4;

/// The pace of the phase (requests per second, all workers): ten times the
/// policy's rate, between 50 and 1000 — well over the limit, without
/// turning the phase into a stress test of the limiter's store (a store
/// that times out makes a fail-open limiter admit without a decision).
pub fn pace(policy: &LimitPolicy) -> f64 {
    let rate = f64::from(policy.limit) / policy.window.as_secs_f64().max(0.001);
    (10.0 * rate).clamp(50.0, 1000.0)
}

/// One policy's accuracy.
#[derive(Debug, Clone)]
pub struct LimitAccuracy {
    /// Policy name.
    pub policy: String,
    /// Its algorithm (`sliding-window`, …).
    pub algorithm: &'static str,
    /// Admissions per window.
    pub limit: u32,
    /// The window.
    pub window: Duration,
    /// Whole windows driven.
    pub windows: u32,
    /// `limit × windows`.
    pub expected: u64,
    /// The most a correct limiter may admit in the phase.
    pub allowed_max: u64,
    /// Admitted (2xx/3xx) by a decision of the limiter.
    pub admitted: u64,
    /// Admitted without a decision (marked degraded: the limiter's store
    /// did not answer and it failed open). Not counted in `admitted`.
    pub degraded: u64,
    /// Refused with 429.
    pub refused: u64,
    /// Any other answer or none.
    pub other: u64,
    /// 0..=100.
    pub accuracy_pct: f64,
    /// Admissions above `allowed_max`.
    pub over_admissions: u64,
}

/// The name the profile format uses for `algorithm`.
pub fn algorithm_name(a: LimitAlgorithm) -> &'static str {
    match a {
        LimitAlgorithm::FixedWindow => "fixed-window",
        LimitAlgorithm::SlidingWindow => "sliding-window",
        LimitAlgorithm::TokenBucket => "token-bucket",
    }
}

/// (expected, allowed_max, accuracy %, over-admissions) for `admitted`.
pub fn judge(policy: &LimitPolicy, windows: u32, admitted: u64) -> (u64, u64, f64, u64) {
    let limit = u64::from(policy.limit);
    let expected = limit * u64::from(windows);
    let allowed_max = limit * u64::from(windows.saturating_sub(1)) + policy.algorithm.bound(policy.limit);
    let distance = if admitted < expected {
        expected - admitted
    } else {
        admitted.saturating_sub(allowed_max)
    };
    let accuracy = if expected == 0 {
        0.0
    } else {
        (100.0 * (1.0 - distance as f64 / expected as f64)).max(0.0)
    };
    (
        expected,
        allowed_max,
        accuracy,
        admitted.saturating_sub(allowed_max),
    )
}

/// How long the phase of `policy` takes with `windows` windows.
pub fn phase_length(policy: &LimitPolicy, windows: u32) -> Duration {
    policy.window * windows
}

/// Drives `policy` for `windows` windows as org [`plan::LIMIT_ORG`] of
/// `world`, at `base` (the first instance sharing the limiter's store).
#[allow(clippy::too_many_arguments)]
pub async fn measure(
    policy: &LimitPolicy,
    base: &str,
    windows: u32,
    sessions: &mut Sessions,
    client: &Client,
    world: &World,
    lean: &Lean,
) -> Result<LimitAccuracy, BenchError> {
    let org = world
        .org(plan::LIMIT_ORG)
        .ok_or_else(|| BenchError::Setup("the world lacks the rate-limit org".into()))?
        .clone();
    let request = policy.request.render(&mut |name| match name {
        "org" => Some(org.id.clone()),
        "org_slug" => Some(org.slug.clone()),
        _ => None,
    })?;
    let prepared = plan::prepared(base, 0, 0, request)?;
    let plan = Arc::new(Plan {
        endpoints: vec![policy.name.clone()],
        requests: vec![prepared],
        by_endpoint: vec![vec![0]],
    });
    let tokens = Arc::new(
        Tokens::issue(
            sessions,
            client,
            world,
            vec![(plan::user_of(plan::LIMIT_ORG), plan::LIMIT_ORG.to_string())],
        )
        .await?,
    );
    // Stop a little before the last window ends: requests still in flight
    // then would be decided in the next window.
    let margin = (policy.window / 20).min(Duration::from_millis(50));
    let gap = Duration::from_secs_f64(WORKERS as f64 / pace(policy));
    let start = Instant::now();
    let (mut admitted, mut degraded, mut refused, mut other) = (0u64, 0u64, 0u64, 0u64);
    for w in 1..=windows {
        if tokens.fresh_for().is_zero() {
            tokens.refresh(sessions, client, world).await?;
        }
        let end = start + policy.window * w - if w == windows { margin } else { Duration::ZERO };
        let mut workers = Vec::new();
        for i in 0..WORKERS {
            let (plan, tokens, lean) = (plan.clone(), tokens.clone(), lean.clone());
            // Workers staggered over one gap, each sending once per gap.
            let mut next = tokio::time::Instant::now() + gap.mul_f64(i as f64 / WORKERS as f64);
            let spawner = lean.clone();
            workers.push(spawner.spawn(async move {
                let (mut a, mut d, mut r, mut o) = (0u64, 0u64, 0u64, 0u64);
                loop {
                    tokio::time::sleep_until(next).await;
                    next += gap;
                    if Instant::now() >= end {
                        break;
                    }
                    match lean
                        .send_marked(&plan.requests[0], &tokens.get(0), tokens.placement())
                        .await
                    {
                        (Outcome::Status(s), true) if (200..400).contains(&s) => d += 1,
                        (Outcome::Status(s), false) if (200..400).contains(&s) => a += 1,
                        (Outcome::Status(429), _) => r += 1,
                        _ => o += 1,
                    }
                }
                (a, d, r, o)
            }));
        }
        for w in workers {
            if let Ok((a, d, r, o)) = w.await {
                admitted += a;
                degraded += d;
                refused += r;
                other += o;
            }
        }
    }
    let (expected, allowed_max, accuracy_pct, over_admissions) = judge(policy, windows, admitted);
    Ok(LimitAccuracy {
        policy: policy.name.clone(),
        algorithm: algorithm_name(policy.algorithm),
        limit: policy.limit,
        window: policy.window,
        windows,
        expected,
        allowed_max,
        admitted,
        degraded,
        refused,
        other,
        accuracy_pct,
        over_admissions,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::template::RequestTemplate;

    fn policy(algorithm: LimitAlgorithm) -> LimitPolicy {
        LimitPolicy {
            name: "p".into(),
            request: RequestTemplate::new("GET", "/"),
            limit: 5,
            window: Duration::from_secs(2),
            algorithm,
            headers: false,
        }
    }

    #[test]
    fn admissions_are_judged_against_the_algorithms_range() {
        let sliding = policy(LimitAlgorithm::SlidingWindow);
        assert_eq!(judge(&sliding, 3, 15), (15, 15, 100.0, 0));
        assert_eq!(judge(&sliding, 3, 18), (15, 15, 80.0, 3));
        assert_eq!(judge(&sliding, 3, 12), (15, 15, 80.0, 0));
        let fixed = policy(LimitAlgorithm::FixedWindow);
        assert_eq!(judge(&fixed, 3, 20), (15, 20, 100.0, 0));
        assert_eq!(judge(&fixed, 3, 21), (15, 20, 100.0 * (1.0 - 1.0 / 15.0), 1));
        assert_eq!(judge(&fixed, 3, 100).2, 0.0);
    }
}
