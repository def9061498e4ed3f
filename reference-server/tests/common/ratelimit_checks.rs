//! Checks of per-organization rate limiting over real HTTP (dev-auth stack,
//! so any org and user can be named). Each returns `Err(what went wrong)`;
//! all pass on the clean stack and each rate-limit flaw fails one.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::join_all;
use serde_json::Value;
use tenantry_harness::services::Redis;
use tenantry_reference::config::{Config, PolicyOverride, StoreKind};
use tenantry_reference::ratelimit::{Algorithm, FailMode, PolicyName};
use tenantry_reference::server::StackOptions;

use super::checks::Check;
use super::TestStack;

/// `api.read`: 20 per 2 s, sliding window, fails open.
pub const READ_LIMIT: u32 = 20;
pub const READ_WINDOW: Duration = Duration::from_secs(2);
/// `api.search`: 5 per 1 s, fixed window, fails open.
pub const SEARCH_LIMIT: u32 = 5;

pub fn limits(config: &mut Config) {
    let policies = &mut config.rate_limit.policies;
    policies.insert(
        PolicyName::ApiRead,
        PolicyOverride {
            limit: Some(READ_LIMIT),
            window_secs: Some(READ_WINDOW.as_secs()),
            algorithm: Some(Algorithm::SlidingWindow),
            fail: Some(FailMode::Open),
        },
    );
    policies.insert(
        PolicyName::ApiSearch,
        PolicyOverride {
            limit: Some(SEARCH_LIMIT),
            window_secs: Some(1),
            algorithm: Some(Algorithm::FixedWindow),
            fail: Some(FailMode::Open),
        },
    );
    policies.insert(
        PolicyName::ApiExports,
        PolicyOverride {
            limit: Some(1000),
            window_secs: Some(60),
            algorithm: Some(Algorithm::SlidingWindow),
            fail: Some(FailMode::Closed),
        },
    );
    config.rate_limit.store_timeout_ms = 200;
    config.rate_limit.reload_interval_ms = 100;
}

/// A dev-auth stack with the test limits on `store` (Redis is started here
/// and returned, so a test can stop and restart it).
pub async fn stack(
    store: StoreKind,
    options: StackOptions,
    tweak: impl FnOnce(&mut Config),
) -> (TestStack, Option<Arc<Redis>>) {
    let redis = match store {
        StoreKind::Redis => Some(Arc::new(Redis::start().await.expect("a Redis server"))),
        StoreKind::Memory => None,
    };
    let url = redis.as_ref().map(|r| r.url().to_string());
    let stack = TestStack::with_config(
        StackOptions {
            dev_auth: true,
            ..options
        },
        |config| {
            limits(config);
            config.rate_limit.store = Some(store);
            config.rate_limit.redis_url = url;
            tweak(config);
        },
    )
    .await;
    (stack, redis)
}

/// A response's status and the headers the limiter speaks.
#[derive(Debug, Clone)]
pub struct Seen {
    pub status: u16,
    pub policy: Option<String>,
    pub state: Option<String>,
    pub retry_after: Option<String>,
    pub cache_control: Option<String>,
    pub degraded: Option<String>,
    pub body: String,
}

pub async fn call(stack: &TestStack, base: &str, org: &str, user: &str, method: &str, path: &str) -> Seen {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut request = stack
        .http
        .request(method.clone(), format!("{base}{path}"))
        .header("x-tenantry-dev-tenant", format!("{org};{user};org:admin"));
    if method == reqwest::Method::POST {
        request = request.json(&serde_json::json!({ "format": "json", "name": "x" }));
    }
    let response = request.send().await.expect("the server answers");
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(String::from)
    };
    Seen {
        status: response.status().as_u16(),
        policy: header("ratelimit-policy"),
        state: header("ratelimit"),
        retry_after: header("retry-after"),
        cache_control: header("cache-control"),
        degraded: header("ratelimit-degraded"),
        body: response.text().await.unwrap_or_default(),
    }
}

/// `n` concurrent reads by `org` (users `u0..`), split over `bases`.
pub async fn burst(stack: &TestStack, bases: &[&str], org: &str, n: usize) -> Vec<Seen> {
    join_all((0..n).map(|i| {
        let base = bases[i % bases.len()];
        let user = format!("u{i}");
        async move { call(stack, base, org, &user, "GET", "/api/projects").await }
    }))
    .await
}

fn admitted(seen: &[Seen]) -> usize {
    seen.iter().filter(|s| s.status == 200).count()
}

fn unexpected(seen: &[Seen]) -> Option<&Seen> {
    seen.iter().find(|s| s.status != 200 && s.status != 429)
}

/// RL-001: 64 concurrent clients of one org get exactly `limit` admissions
/// per window, burst after burst (across `bases`: RL-010, many instances).
pub async fn exact_under_concurrency(stack: &TestStack, bases: &[&str], org: &str) -> Check {
    for round in 0..3 {
        let seen = burst(stack, bases, org, 64).await;
        if let Some(odd) = unexpected(&seen) {
            return Err(format!("round {round}: unexpected {} {}", odd.status, odd.body));
        }
        let n = admitted(&seen);
        if n != READ_LIMIT as usize {
            return Err(format!(
                "round {round}: {n} of 64 concurrent requests admitted, limit {READ_LIMIT}"
            ));
        }
        tokio::time::sleep(READ_WINDOW + Duration::from_millis(100)).await;
    }
    Ok(())
}

/// RL-001 sustained: 64 clients hammer for 2.5 windows; admissions never
/// exceed `limit` per window started.
pub async fn sustained_never_over(stack: &TestStack, org: &str) -> Check {
    let started = Instant::now();
    let run = READ_WINDOW * 5 / 2;
    let counts = join_all((0..64).map(|i| async move {
        let user = format!("s{i}");
        let mut ok = 0usize;
        while started.elapsed() < run {
            let seen = call(stack, &stack.base, org, &user, "GET", "/api/projects").await;
            match seen.status {
                200 => ok += 1,
                429 => tokio::time::sleep(Duration::from_millis(20)).await,
                other => return Err(format!("unexpected {other}: {}", seen.body)),
            }
        }
        Ok(ok)
    }))
    .await;
    let mut total = 0;
    for c in counts {
        total += c?;
    }
    let windows = started.elapsed().as_secs_f64() / READ_WINDOW.as_secs_f64();
    let bound = READ_LIMIT as usize * windows.ceil() as usize;
    if total > bound {
        return Err(format!("{total} admitted in {windows:.2} windows, bound {bound}"));
    }
    if total < READ_LIMIT as usize * windows.floor() as usize {
        return Err(format!("only {total} admitted in {windows:.2} windows"));
    }
    Ok(())
}

/// RL-002: while org A is limited, org B (even with a hostile id sharing a
/// prefix and separators) gets its full budget.
pub async fn orgs_independent(stack: &TestStack) -> Check {
    let a = "org_rl_a";
    let seen = burst(stack, &[&stack.base], a, 40).await;
    if admitted(&seen) != READ_LIMIT as usize {
        return Err(format!("org A: {} admitted of 40", admitted(&seen)));
    }
    for b in ["org_rl_b", "org_rl_a}:x", "org_rl_a:api.read"] {
        let first = call(stack, &stack.base, b, "ub", "GET", "/api/projects").await;
        let expected = format!("\"api.read\";r={};", READ_LIMIT - 1);
        if first.status != 200 || !first.state.as_deref().unwrap_or("").starts_with(&expected) {
            return Err(format!(
                "org {b:?} while A is limited: {} RateLimit={:?}",
                first.status, first.state
            ));
        }
    }
    Ok(())
}

/// RL-003: the users of one org share its budget.
pub async fn users_share_the_org_budget(stack: &TestStack) -> Check {
    let org = "org_rl_users";
    let mut ok = 0;
    for user in ["alice", "bob", "carol"] {
        for _ in 0..READ_LIMIT {
            if call(stack, &stack.base, org, user, "GET", "/api/projects")
                .await
                .status
                == 200
            {
                ok += 1;
            }
        }
    }
    if ok != READ_LIMIT {
        return Err(format!(
            "three users of one org got {ok} admissions, limit {READ_LIMIT}"
        ));
    }
    Ok(())
}

/// RL-006: sequential traffic: admitted + remaining = limit on every
/// response; a refusal is a 429 problem with whole-second Retry-After >= 1,
/// no-store and both headers.
pub async fn headers_consistent(stack: &TestStack) -> Check {
    let org = "org_rl_headers";
    for i in 1..=READ_LIMIT {
        let seen = call(stack, &stack.base, org, "u", "GET", "/api/projects").await;
        let policy = format!("\"api.read\";q={READ_LIMIT};w={}", READ_WINDOW.as_secs());
        if seen.status != 200 || seen.policy.as_deref() != Some(policy.as_str()) {
            return Err(format!("request {i}: {} policy {:?}", seen.status, seen.policy));
        }
        let state = seen.state.unwrap_or_default();
        let r: u32 = state
            .split(';')
            .find_map(|p| p.strip_prefix("r="))
            .and_then(|r| r.parse().ok())
            .ok_or_else(|| format!("request {i}: RateLimit {state:?}"))?;
        if i + r != READ_LIMIT {
            return Err(format!(
                "request {i}: remaining {r}, admitted + remaining != {READ_LIMIT}"
            ));
        }
    }
    let refused = call(stack, &stack.base, org, "u", "GET", "/api/projects").await;
    let retry: Option<u64> = refused.retry_after.as_deref().and_then(|r| r.parse().ok());
    let body: Value = serde_json::from_str(&refused.body).unwrap_or(Value::Null);
    let problems = [
        (refused.status == 429, "status 429"),
        (
            retry.is_some_and(|r| (1..=READ_WINDOW.as_secs()).contains(&r)),
            "Retry-After in whole seconds within the window",
        ),
        (
            refused.cache_control.as_deref() == Some("no-store"),
            "Cache-Control: no-store",
        ),
        (refused.policy.is_some(), "RateLimit-Policy on the 429"),
        (
            refused
                .state
                .as_deref()
                .is_some_and(|s| s.starts_with("\"api.read\";r=0;t=")),
            "RateLimit r=0 on the 429",
        ),
        (
            body["code"] == "rate_limited" && body["status"] == 429,
            "an RFC 9457 body",
        ),
    ];
    let failed: Vec<&str> = problems
        .iter()
        .filter(|(ok, _)| !ok)
        .map(|(_, what)| *what)
        .collect();
    if failed.is_empty() {
        Ok(())
    } else {
        Err(format!("429 lacks: {} (saw {refused:?})", failed.join(", ")))
    }
}

/// RL-008: refused requests do not consume: a client that keeps retrying
/// while limited gets in once the window has moved past its admissions.
pub async fn rejected_do_not_consume(stack: &TestStack) -> Check {
    let org = "org_rl_retry";
    let started = Instant::now();
    for _ in 0..READ_LIMIT {
        call(stack, &stack.base, org, "u", "GET", "/api/projects").await;
    }
    while started.elapsed() < READ_WINDOW - Duration::from_millis(300) {
        let seen = call(stack, &stack.base, org, "u", "GET", "/api/projects").await;
        if seen.status == 200 {
            return Err("admitted over the limit inside the window".into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep((READ_WINDOW + Duration::from_millis(300)).saturating_sub(started.elapsed())).await;
    let seen = call(stack, &stack.base, org, "u", "GET", "/api/projects").await;
    if seen.status != 200 {
        return Err(format!(
            "still refused after the window passed ({} {:?}): refusals were counted",
            seen.status, seen.state
        ));
    }
    Ok(())
}

/// RL-005: orgs on the bypass list are never limited and get no RateLimit
/// headers (no store call).
pub async fn bypass_applies(stack: &TestStack, org: &str) -> Check {
    let seen = burst(stack, &[&stack.base], org, 3 * READ_LIMIT as usize).await;
    if admitted(&seen) != seen.len() {
        return Err(format!(
            "bypass org {org}: {} of {} admitted",
            admitted(&seen),
            seen.len()
        ));
    }
    if seen.iter().any(|s| s.state.is_some()) {
        return Err("bypass org got RateLimit headers (a store decision was made)".into());
    }
    Ok(())
}

/// RL-011: with the store down, fail-open policies admit marked as such and
/// fail-closed policies answer 503; never a 500; both recover when the store
/// returns.
pub async fn store_down_then_recovery(stack: &TestStack, redis: &Redis) -> Check {
    let org = "org_rl_down";
    let before = call(stack, &stack.base, org, "u", "GET", "/api/projects").await;
    if before.state.is_none() {
        return Err("no RateLimit header before the outage".into());
    }
    redis.stop().map_err(|e| e.to_string())?;
    let open = call(stack, &stack.base, org, "u", "GET", "/api/projects").await;
    let closed = call(stack, &stack.base, org, "u", "POST", "/api/exports").await;
    let mut problems = Vec::new();
    if open.status != 200 || open.degraded.as_deref() != Some("fail-open") {
        problems.push(format!(
            "fail-open read: {} degraded={:?}",
            open.status, open.degraded
        ));
    }
    if closed.status != 503
        || closed.degraded.as_deref() != Some("fail-closed")
        || closed.retry_after.as_deref() != Some("1")
    {
        problems.push(format!(
            "fail-closed export: {} degraded={:?} retry-after={:?}",
            closed.status, closed.degraded, closed.retry_after
        ));
    }
    let metrics = stack.metrics().await;
    if metrics.contains("tenantry_ratelimit_store_errors_total{policy=\"api.read\"} 0") {
        problems.push("store errors not counted".into());
    }
    redis.restart().map_err(|e| e.to_string())?;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let seen = call(stack, &stack.base, org, "u", "GET", "/api/projects").await;
        if seen.status == 200 && seen.state.is_some() && seen.degraded.is_none() {
            break;
        }
        if Instant::now() > deadline {
            problems.push(format!("no recovery within 10 s of the restart: {seen:?}"));
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("\n"))
    }
}
