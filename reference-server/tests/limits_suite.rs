//! The harness's RL suite (`tenantry_harness::limits`) against the
//! reference stack behind its real proxy and identity service: three
//! instances on one database and one Redis, `api.search` limited to 5 per
//! 2 s (sliding window). The clean stack yields no RL finding; each
//! rate-limit flaw is found by the check meant for it.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::identity::SECRET_KEY;
use common::token_checks::PARTY;
use common::{Peer, TestStack};
use tenantry_harness::audit;
use tenantry_harness::checks::Selection;
use tenantry_harness::client::Client;
use tenantry_harness::limits;
use tenantry_harness::profile::{LimitAlgorithm, Profile, REFERENCE};
use tenantry_harness::services::Redis;
use tenantry_reference::config::{PolicyOverride, StoreKind};
use tenantry_reference::ratelimit::{Algorithm, FailMode, PolicyName};
use tenantry_reference::server::StackOptions;

const LIMIT: u32 = 5;
const WINDOW_SECS: u64 = 2;

struct Limited {
    stack: TestStack,
    peers: Vec<Peer>,
    _redis: Option<Arc<Redis>>,
}

/// A proxy-fronted stack (and two peers) with `api.search` limited, on a
/// shared Redis unless `store` says otherwise.
async fn limited(options: StackOptions, store: StoreKind) -> Limited {
    let redis = match store {
        StoreKind::Redis => Some(Arc::new(Redis::start().await.expect("a Redis server"))),
        StoreKind::Memory => None,
    };
    let url = redis.as_ref().map(|r| r.url().to_string());
    let stack = TestStack::with_config(options, |config| {
        config.rate_limit.store = Some(store);
        config.rate_limit.redis_url = url;
        config.rate_limit.policies.insert(
            PolicyName::ApiSearch,
            PolicyOverride {
                limit: Some(LIMIT),
                window_secs: Some(WINDOW_SECS),
                algorithm: Some(Algorithm::SlidingWindow),
                fail: Some(FailMode::Open),
            },
        );
    })
    .await;
    let peers = vec![stack.peer().await, stack.peer().await];
    Limited {
        stack,
        peers,
        _redis: redis,
    }
}

/// The built-in profile with a `[rate_limit]` section naming every instance.
fn profile(limited: &Limited) -> Profile {
    let mut bases = vec![format!("\"{}\"", limited.stack.base)];
    bases.extend(limited.peers.iter().map(|p| format!("\"{}\"", p.base)));
    let text = format!(
        "{REFERENCE}\n[rate_limit]\nbase_urls = [{}]\n\n[[rate_limit.policies]]\nname = \"api.search\"\n\
         request = {{ path = \"/api/search\", query = {{ q = \"rl\" }} }}\nlimit = {LIMIT}\nwindow_secs = {WINDOW_SECS}\n\
         algorithm = \"sliding-window\"\nheaders = true\n",
        bases.join(", ")
    );
    // The store's URL as an operator would declare it: RL-012 watches it.
    let text = match &limited._redis {
        Some(redis) => format!("{text}\n[rate_limit.hooks]\nstore_url = \"{}\"\n", redis.url()),
        None => text,
    };
    let vars = |name: &str| match name {
        "TENANTRY_BASE_URL" => Some(limited.stack.base.clone()),
        "TENANTRY_SECRET_KEY" => Some(SECRET_KEY.to_string()),
        "TENANTRY_ORIGIN" => Some(PARTY.to_string()),
        _ => None,
    };
    let profile = Profile::parse("limits.toml", &text, &vars).expect("the profile parses");
    let spec = profile.rate_limit.as_ref().expect("a [rate_limit] section");
    assert_eq!(spec.base_urls.len(), 3);
    assert_eq!(spec.policies[0].algorithm, LimitAlgorithm::SlidingWindow);
    profile
}

async fn suite(limited: &Limited, only: Option<&str>) -> limits::Outcome {
    let profile = profile(limited);
    let client = Client::new(&profile.base_url, 16, Duration::from_secs(20));
    let mut sessions = audit::sessions_for(&profile, &client)
        .await
        .expect("a session source");
    let selection = match only {
        Some(id) => Selection::parse(id, None).expect("a selection"),
        None => Selection::default(),
    };
    limits::run(&profile, &client, &mut sessions, &selection, audit::random_seed())
        .await
        .expect("the RL suite runs")
}

fn ids(outcome: &limits::Outcome) -> Vec<&'static str> {
    outcome.report.findings.iter().map(|f| f.check.id).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_clean_stack_has_no_rl_finding() {
    let limited = limited(StackOptions::default(), StoreKind::Redis).await;
    let outcome = suite(&limited, None).await;
    assert!(
        outcome.report.findings.is_empty(),
        "false positives: {:#}",
        outcome.report.to_json()["findings"]
    );
    for id in [
        "RL-001", "RL-002", "RL-003", "RL-004", "RL-006", "RL-007", "RL-008", "RL-009", "RL-010",
    ] {
        assert!(outcome.report.checks_run.contains(&id), "{id} did not run");
    }
    let skipped: Vec<_> = outcome.skipped.iter().map(|(id, _)| *id).collect();
    // Without commands in [rate_limit.hooks], the checks that need them
    // say so; with its store_url, RL-012 runs.
    for id in ["RL-005", "RL-011"] {
        let reason = outcome
            .skipped
            .iter()
            .find(|(s, _)| *s == id)
            .map(|(_, r)| r.as_str());
        assert!(
            reason.is_some_and(|r| r.contains("[rate_limit.hooks]")),
            "{id} not reported as skipped with the way to run it: {skipped:?}"
        );
        assert!(!outcome.report.checks_run.contains(&id));
    }
    assert!(outcome.report.checks_run.contains(&"RL-012"), "{skipped:?}");
    assert!(outcome.report.requests > 100, "{}", outcome.report.requests);
    assert!(!outcome.report.to_json().to_string().contains(SECRET_KEY));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_that_count_alone_fail_rl_010() {
    // Each instance's in-process store: every one admits the whole limit.
    let limited = limited(StackOptions::default(), StoreKind::Memory).await;
    let outcome = suite(&limited, Some("RL-010")).await;
    assert_eq!(ids(&outcome), ["RL-010"], "{:#}", outcome.report.to_json());
}

#[cfg(feature = "inject")]
mod flaws {
    use super::*;
    use tenantry_reference::inject::{Flaw, Flaws};

    async fn caught_by(flaw: Flaw, check: &str) -> limits::Outcome {
        let limited = limited(
            StackOptions {
                flaws: Flaws::of(&[flaw]),
                ..StackOptions::default()
            },
            StoreKind::Redis,
        )
        .await;
        let outcome = suite(&limited, Some(check)).await;
        assert!(
            ids(&outcome).contains(&check),
            "{flaw} not caught by {check}: {:#}",
            outcome.report.to_json()
        );
        outcome
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn per_ip_keys_are_caught_by_rl_002() {
        // Every client of the harness shares one address: the orgs share a budget.
        caught_by(Flaw::RatelimitPerIp, "RL-002").await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn per_user_keys_are_caught_by_rl_003() {
        caught_by(Flaw::RatelimitPerUser, "RL-003").await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_global_key_is_caught_by_rl_002() {
        caught_by(Flaw::RatelimitGlobalKey, "RL-002").await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_nonatomic_decision_is_caught_by_rl_001() {
        caught_by(Flaw::RatelimitNonatomic, "RL-001").await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_nonatomic_decision_is_caught_by_rl_012_through_the_profiles_store_url() {
        caught_by(Flaw::RatelimitNonatomic, "RL-012").await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn rejected_requests_that_consume_are_caught_by_rl_008() {
        caught_by(Flaw::RatelimitRejectedConsumes, "RL-008").await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn wrong_headers_are_caught_by_rl_006() {
        let outcome = caught_by(Flaw::RatelimitHeadersWrong, "RL-006").await;
        // Both faults: remaining off by one, Retry-After in milliseconds.
        let messages: Vec<_> = outcome
            .report
            .findings
            .iter()
            .map(|f| f.message.as_str())
            .collect();
        assert!(
            messages.iter().any(|m| m.contains("admitted + r must equal")),
            "{messages:#?}"
        );
        assert!(
            messages.iter().any(|m| m.contains("Retry-After")),
            "{messages:#?}"
        );
    }
}
