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
