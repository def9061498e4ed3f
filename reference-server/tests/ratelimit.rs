//! Per-organization rate limiting against a real Redis (and the in-process
//! store): exact admissions under concurrency, org isolation, a budget shared
//! by an org's users and by two server instances, headers, refusals that do
//! not consume, bypass edits without a restart, the store going down and
//! coming back.

mod common;

use std::time::Duration;

use common::ratelimit_checks::{self as rl, stack};
use serde_json::Value;
use tenantry_reference::config::StoreKind;
use tenantry_reference::server::StackOptions;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_admits_exactly_the_limit_to_64_concurrent_clients() {
    let (stack, _redis) = stack(StoreKind::Redis, StackOptions::default(), |_| {}).await;
    rl::exact_under_concurrency(&stack, &[&stack.base], "org_rl_exact")
        .await
        .unwrap();
    rl::sustained_never_over(&stack, "org_rl_sustained")
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_store_admits_exactly_the_limit_to_64_concurrent_clients() {
    let (stack, _) = stack(StoreKind::Memory, StackOptions::default(), |_| {}).await;
    rl::exact_under_concurrency(&stack, &[&stack.base], "org_rl_exact")
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_sharing_redis_hold_the_limit_together() {
    let (stack, _redis) = stack(StoreKind::Redis, StackOptions::default(), |_| {}).await;
    let peer = stack.peer().await;
    rl::exact_under_concurrency(&stack, &[&stack.base, &peer.base], "org_rl_shared")
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orgs_users_headers_and_refusals_behave_on_both_stores() {
    for store in [StoreKind::Redis, StoreKind::Memory] {
        let (stack, _redis) = stack(store, StackOptions::default(), |_| {}).await;
        rl::orgs_independent(&stack).await.unwrap();
        rl::users_share_the_org_budget(&stack).await.unwrap();
        rl::headers_consistent(&stack).await.unwrap();
        rl::rejected_do_not_consume(&stack).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fixed_window_policy_resets_at_window_boundaries() {
    let (stack, _redis) = stack(StoreKind::Redis, StackOptions::default(), |_| {}).await;
    let org = "org_rl_fixed";
    let mut ok = 0;
    for _ in 0..(2 * rl::SEARCH_LIMIT) {
        if rl::call(&stack, &stack.base, org, "u", "GET", "/api/search?q=x")
            .await
            .status
            == 200
        {
            ok += 1;
        }
    }
    // Two aligned windows can be touched by a quick loop: between limit and 2 x limit.
    assert!((rl::SEARCH_LIMIT..=2 * rl::SEARCH_LIMIT).contains(&ok), "{ok}");
    let seen = rl::call(&stack, &stack.base, org, "u", "GET", "/api/search?q=x").await;
    assert_eq!(seen.policy.as_deref(), Some("\"api.search\";q=5;w=1"), "{seen:?}");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let seen = rl::call(&stack, &stack.base, org, "u", "GET", "/api/search?q=x").await;
    assert_eq!(seen.status, 200, "a new window: {seen:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bypass_list_edits_apply_without_a_restart() {
    let dir = std::env::temp_dir().join(format!("tenantry-rl-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("tenantry.toml");
    let write = |orgs: &str| {
        std::fs::write(&file, format!("[rate_limit]\nbypass_orgs = [{orgs}]\n")).unwrap();
    };
    write("\"org_rl_vip\"");
    let options = StackOptions {
        config_path: Some(file.clone()),
        ..StackOptions::default()
    };
    let (stack, _redis) = stack(StoreKind::Redis, options, |c| {
        c.rate_limit.bypass_orgs = vec!["org_rl_vip".into()];
    })
    .await;
    rl::bypass_applies(&stack, "org_rl_vip").await.unwrap();
    assert!(rl::bypass_applies(&stack, "org_rl_new").await.is_err());

    // The admin view shows the live list; it needs the secret key.
    let view = |key: Option<&'static str>| {
        let http = stack.http.clone();
        let url = format!("{}/v1/instance/rate_limit", stack.base);
        async move {
            let mut request = http.get(url);
            if let Some(key) = key {
                request = request.bearer_auth(key);
            }
            let response = request.send().await.unwrap();
            (
                response.status().as_u16(),
                response.json::<Value>().await.unwrap_or(Value::Null),
            )
        }
    };
    assert_eq!(view(None).await.0, 401);
    let (status, body) = view(Some(common::identity::SECRET_KEY)).await;
    assert_eq!(status, 200);
    assert_eq!(body["bypass_orgs"], serde_json::json!(["org_rl_vip"]));
    assert_eq!(body["store"], "redis");

    // A broken edit keeps the old list (and says why in the log).
    std::fs::write(&file, "[rate_limit\nbypass_orgs = [").unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        view(Some(common::identity::SECRET_KEY)).await.1["bypass_orgs"],
        serde_json::json!(["org_rl_vip"])
    );

    write("\"org_rl_other\", \"org_rl_vip2\"");
    tokio::time::sleep(Duration::from_millis(400)).await;
    let (_, body) = view(Some(common::identity::SECRET_KEY)).await;
    assert_eq!(
        body["bypass_orgs"],
        serde_json::json!(["org_rl_other", "org_rl_vip2"])
    );
    rl::bypass_applies(&stack, "org_rl_vip2").await.unwrap();
    let seen = rl::burst(&stack, &[&stack.base], "org_rl_vip", 3 * rl::READ_LIMIT as usize).await;
    assert!(
        seen.iter().any(|s| s.status == 429),
        "org_rl_vip left the list and is limited again"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_applies_each_policys_fail_mode_then_recovers() {
    let (stack, redis) = stack(StoreKind::Redis, StackOptions::default(), |_| {}).await;
    rl::store_down_then_recovery(&stack, redis.as_ref().unwrap())
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limited_response_format() {
    let (stack, _) = stack(StoreKind::Memory, StackOptions::default(), |_| {}).await;
    let org = "org_rl_format";
    let mut last_admitted = None;
    for _ in 0..rl::READ_LIMIT {
        last_admitted = Some(rl::call(&stack, &stack.base, org, "u", "GET", "/api/projects").await);
    }
    let refused = rl::call(&stack, &stack.base, org, "u", "GET", "/api/projects").await;
    // `t` and Retry-After depend on timing: whole seconds in 1..=window.
    let redact_t = |s: Option<String>| {
        s.map(|s| match s.split_once(";t=") {
            Some((head, t)) => {
                assert!((1..=2).contains(&t.parse::<u64>().unwrap()), "{s}");
                format!("{head};t=[1..=2]")
            }
            None => s,
        })
    };
    let admitted = last_admitted.unwrap();
    let mut body: Value = serde_json::from_str(&refused.body).unwrap();
    let detail = body["detail"].as_str().unwrap().to_string();
    let (head, _) = detail.rsplit_once("retry in ").unwrap();
    body["detail"] = Value::String(format!("{head}retry in [1..=2] s"));
    let doc = serde_json::json!({
        "admitted": {
            "status": admitted.status,
            "ratelimit-policy": admitted.policy,
            "ratelimit": redact_t(admitted.state),
        },
        "refused": {
            "status": refused.status,
            "ratelimit-policy": refused.policy,
            "ratelimit": redact_t(refused.state),
            "retry-after": refused.retry_after.map(|r| {
                assert!((1..=2).contains(&r.parse::<u64>().unwrap()));
                "[1..=2]"
            }),
            "cache-control": refused.cache_control,
            "body": body,
        },
    });
    let mut settings = insta::Settings::clone_current();
    settings.set_snapshot_path(concat!(env!("CARGO_MANIFEST_DIR"), "/../snapshots"));
    settings.set_prepend_module_to_snapshot(false);
    settings.bind(|| insta::assert_json_snapshot!("reference_rate_limited", doc));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flushed_script_cache_is_reloaded_transparently() {
    let (stack, redis) = stack(StoreKind::Redis, StackOptions::default(), |_| {}).await;
    let redis = redis.unwrap();
    let org = "org_rl_noscript";
    let first = rl::call(&stack, &stack.base, org, "u", "GET", "/api/projects").await;
    assert_eq!(first.status, 200);
    let client = redis::Client::open(redis.url()).unwrap();
    let mut connection = client.get_multiplexed_async_connection().await.unwrap();
    let _: () = redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query_async(&mut connection)
        .await
        .unwrap();
    let second = rl::call(&stack, &stack.base, org, "u", "GET", "/api/projects").await;
    assert_eq!(second.status, 200, "{second:?}");
    let expected = format!("\"api.read\";r={};", rl::READ_LIMIT - 2);
    assert!(
        second.state.as_deref().unwrap().starts_with(&expected),
        "{second:?}"
    );
    assert!(second.degraded.is_none());
    // Keys carry a TTL of at most one window.
    let key = tenantry_reference::ratelimit::key(org, "api.read");
    let ttl: i64 = redis::cmd("PTTL")
        .arg(&key)
        .query_async(&mut connection)
        .await
        .unwrap();
    assert!(ttl > 0 && ttl <= rl::READ_WINDOW.as_millis() as i64, "{ttl}");
}

/// `INFO` field `field` of `section` (0 when absent).
async fn info_count(connection: &mut redis::aio::MultiplexedConnection, section: &str, field: &str) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg(section)
        .query_async(connection)
        .await
        .unwrap();
    info.lines()
        .find_map(|line| line.strip_prefix(field))
        .and_then(|rest| rest.split(',').next())
        .and_then(|calls| calls.split('=').nth(1))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

/// Per org: the `remaining` of every admission, sorted (exact admissions
/// in queue order make it 0, 1, …, limit - 1).
fn remaining_by_org(
    decisions: &[(usize, tenantry_reference::ratelimit::Decision)],
    orgs: usize,
) -> Vec<Vec<u32>> {
    let mut by_org = vec![Vec::new(); orgs];
    for (org, decision) in decisions {
        if decision.allowed {
            by_org[*org].push(decision.remaining);
        }
    }
    for remaining in &mut by_org {
        remaining.sort_unstable();
    }
    by_org
}

/// A Redis of its own, the limiter's store on it, and a connection to
/// watch it with (keep the Redis alive while they are used).
async fn store_and_admin() -> (
    tenantry_harness::services::Redis,
    tenantry_reference::ratelimit::RedisStore,
    redis::aio::MultiplexedConnection,
) {
    let redis = tenantry_harness::services::Redis::start().await.unwrap();
    let store = tenantry_reference::ratelimit::RedisStore::connect(redis.url())
        .await
        .unwrap();
    let client = redis::Client::open(redis.url()).unwrap();
    let admin = client.get_multiplexed_async_connection().await.unwrap();
    (redis, store, admin)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batched_decisions_for_many_orgs_admit_exactly_each_orgs_limit() {
    use tenantry_reference::ratelimit::{key, Algorithm, Policy};
    let (_redis, store, mut admin) = store_and_admin().await;
    const ORGS: usize = 7;
    const PER_ORG: usize = 300;
    const LIMIT: u32 = 37;
    // Windows long enough that no boundary falls inside the test (the
    // fixed window's aligned boundary would otherwise allow 2 x limit).
    for algorithm in [Algorithm::SlidingWindow, Algorithm::FixedWindow] {
        let policy =
            Policy::new(algorithm.name(), LIMIT, Duration::from_secs(24 * 3600)).algorithm(algorithm);
        let calls_before = info_count(&mut admin, "commandstats", "cmdstat_evalsha:").await;
        let tasks: Vec<_> = (0..ORGS * PER_ORG)
            .map(|i| {
                let (store, policy) = (store.clone(), policy.clone());
                let org = i % ORGS;
                tokio::spawn(async move {
                    let decision = store
                        .decide(&key(&format!("org_batch_{org}"), &policy.name), &policy)
                        .await;
                    (org, decision)
                })
            })
            .collect();
        let mut decisions = Vec::new();
        for task in futures::future::join_all(tasks).await {
            let (org, decision) = task.unwrap();
            decisions.push((org, decision.expect("a decision")));
        }
        let expected: Vec<u32> = (0..LIMIT).collect();
        for (org, remaining) in remaining_by_org(&decisions, ORGS).iter().enumerate() {
            assert_eq!(remaining, &expected, "{} org {org}", algorithm.name());
        }
        let calls = info_count(&mut admin, "commandstats", "cmdstat_evalsha:").await - calls_before;
        assert!(
            calls * 4 <= (ORGS * PER_ORG) as u64,
            "{}: {calls} EVALSHA calls for {} decisions: not batched",
            algorithm.name(),
            ORGS * PER_ORG
        );
        // Each key carries a TTL of at most one window.
        let ttl: i64 = redis::cmd("PTTL")
            .arg(key("org_batch_0", &policy.name))
            .query_async(&mut admin)
            .await
            .unwrap();
        assert!(ttl > 0 && ttl <= policy.window_ms() as i64, "{ttl}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_script_flush_in_the_middle_of_batched_load_is_recovered() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use tenantry_reference::ratelimit::{key, Policy};
    let (_redis, store, mut admin) = store_and_admin().await;
    const ORGS: usize = 5;
    const CALLERS: usize = 64;
    const EACH: usize = 60;
    const LIMIT: u32 = 500;
    let policy = Policy::new("noscript", LIMIT, Duration::from_secs(24 * 3600));
    let done = Arc::new(AtomicUsize::new(0));
    let noscript_before = info_count(&mut admin, "errorstats", "errorstat_NOSCRIPT:").await;
    let callers: Vec<_> = (0..CALLERS)
        .map(|c| {
            let (store, policy, done) = (store.clone(), policy.clone(), Arc::clone(&done));
            tokio::spawn(async move {
                let mut seen = Vec::new();
                for i in 0..EACH {
                    let org = (c + i) % ORGS;
                    let decision = store
                        .decide(&key(&format!("org_flush_{org}"), &policy.name), &policy)
                        .await;
                    done.fetch_add(1, Ordering::Relaxed);
                    seen.push((org, decision));
                }
                seen
            })
        })
        .collect();
    // Flush once a third of the decisions are made, while callers keep going.
    while done.load(Ordering::Relaxed) < CALLERS * EACH / 3 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let _: () = redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query_async(&mut admin)
        .await
        .unwrap();
    let flushed_at = done.load(Ordering::Relaxed);
    let mut decisions = Vec::new();
    for caller in futures::future::join_all(callers).await {
        for (org, decision) in caller.unwrap() {
            decisions.push((org, decision.expect("no decision lost to the flush")));
        }
    }
    assert!(flushed_at < CALLERS * EACH, "the flush came after the load");
    let noscript = info_count(&mut admin, "errorstats", "errorstat_NOSCRIPT:").await - noscript_before;
    assert!(noscript >= 1, "the flush never made a batch meet NOSCRIPT");
    // 3840 decisions over 5 orgs, 500 each at most: exact admissions.
    let expected: Vec<u32> = (0..LIMIT).collect();
    for (org, remaining) in remaining_by_org(&decisions, ORGS).iter().enumerate() {
        assert_eq!(remaining, &expected, "org {org}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sliding_window_entries_expire_one_window_after_their_admission() {
    use tenantry_reference::ratelimit::{key, Policy, RedisStore};
    let redis = tenantry_harness::services::Redis::start().await.unwrap();
    let store = RedisStore::connect(redis.url()).await.unwrap();
    let policy = Policy::new("expiry", 3, Duration::from_secs(1));
    let key = key("org_expiry", &policy.name);
    let mut remaining = Vec::new();
    for _ in 0..3 {
        let decision = store.decide(&key, &policy).await.unwrap();
        assert!(decision.allowed, "{decision:?}");
        assert!((1..=1000).contains(&decision.reset_ms), "{decision:?}");
        remaining.push(decision.remaining);
    }
    assert_eq!(remaining, [2, 1, 0]);
    let refused = store.decide(&key, &policy).await.unwrap();
    assert!(!refused.allowed && refused.remaining == 0, "{refused:?}");
    assert!((1..=1000).contains(&refused.reset_ms), "{refused:?}");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    // Every entry left the window: the full limit again, counted from zero.
    for expected in [2, 1, 0] {
        let decision = store.decide(&key, &policy).await.unwrap();
        assert!(decision.allowed && decision.remaining == expected, "{decision:?}");
    }
    assert!(!store.decide(&key, &policy).await.unwrap().allowed);
    let client = redis::Client::open(redis.url()).unwrap();
    let mut admin = client.get_multiplexed_async_connection().await.unwrap();
    let members: i64 = redis::cmd("ZCARD")
        .arg(&key)
        .query_async(&mut admin)
        .await
        .unwrap();
    assert_eq!(
        members, 3,
        "expired entries were removed and refusals recorded nothing"
    );
}
