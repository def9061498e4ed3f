//! The reference stack under faults: Postgres and Redis stopped and started
//! again under requests. Each test owns its servers (it stops them), on
//! loopback, and is bounded in time by counts, not by clocks.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{database_on, TestStack};
use serde_json::json;
use tenantry_harness::services::{Postgres, Redis};
use tenantry_reference::circuit::CircuitConfig;
use tenantry_reference::server::StackOptions;

const ORG: &str = "org_faults";

fn circuit() -> CircuitConfig {
    CircuitConfig {
        failures: 3,
        min_open_ms: 50,
        max_open_ms: 400,
    }
}

/// `name{dependency="dep"} value` from the metrics text.
fn metric(text: &str, name: &str, dependency: &str) -> u64 {
    let prefix = format!("{name}{{dependency=\"{dependency}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no {prefix} in the metrics:\n{text}"))
        .trim()
        .parse()
        .unwrap()
}

async fn stop_postgres(pg: &Arc<Postgres>) {
    let pg = Arc::clone(pg);
    tokio::task::spawn_blocking(move || pg.stop())
        .await
        .unwrap()
        .unwrap();
}

async fn restart_postgres(pg: &Arc<Postgres>) {
    let pg = Arc::clone(pg);
    tokio::task::spawn_blocking(move || pg.restart())
        .await
        .unwrap()
        .expect("postgres starts again on its port");
}

/// Sends `rounds` rounds of `width` concurrent reads; returns every status
/// with whether a 503 carried `Retry-After` and a problem body.
async fn load(stack: &TestStack, rounds: usize, width: usize) -> Vec<(u16, bool)> {
    let mut seen = Vec::new();
    for _ in 0..rounds {
        let calls = (0..width).map(|_| {
            let http = stack.http.clone();
            let url = format!("{}/api/projects", stack.base);
            async move {
                let response = http
                    .get(url)
                    .header("x-tenantry-dev-tenant", format!("{ORG};user_1;org:admin"))
                    .send()
                    .await
                    .expect("the server answers");
                let status = response.status().as_u16();
                let retry = response.headers().contains_key("retry-after");
                let problem = response
                    .headers()
                    .get("content-type")
                    .is_some_and(|v| v == "application/problem+json");
                (status, status != 503 || (retry && problem))
            }
        });
        seen.extend(futures::future::join_all(calls).await);
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_circuit_opens_while_postgres_is_down_and_closes_when_it_returns() {
    let pg = Arc::new(Postgres::start().await.expect("a Postgres of this test's own"));
    let database = database_on(&pg).await;
    let options = StackOptions {
        dev_auth: true,
        ..StackOptions::default()
    };
    let stack = TestStack::on_database(database, options, |config| config.circuit = circuit()).await;
    let admin = stack.as_user(ORG, "user_1", "org:admin");
    admin.project("kept", "made before the outage").await;

    for round in 0..3 {
        // The test cluster runs with synchronous_commit off: flush what was
        // acknowledged before the crash-like stop.
        stack.superuser().await.batch_execute("CHECKPOINT").await.unwrap();
        let before = stack.metrics().await;
        stop_postgres(&pg).await;
        let answers = load(&stack, 40, 10).await;
        let after = stack.metrics().await;
        assert!(
            answers.iter().all(|(status, _)| *status == 503 || *status == 200),
            "round {round}: only 200 (a request that won the race) or 503 while down: {answers:?}"
        );
        assert!(
            answers.iter().all(|(_, ok)| *ok),
            "round {round}: every 503 is problem+json with Retry-After"
        );
        let refused = answers.iter().filter(|(s, _)| *s == 503).count();
        assert!(refused >= 390, "round {round}: {refused} of 400 refused");
        let attempts = metric(&after, "tenantry_circuit_attempts_total", "postgres")
            - metric(&before, "tenantry_circuit_attempts_total", "postgres");
        // 400 requests, a handful of connection attempts: the breaker's
        // threshold and one probe per (growing) open period.
        assert!(
            attempts <= 40,
            "round {round}: {attempts} connection attempts for {refused} refused requests"
        );
        assert!(metric(&after, "tenantry_circuit_refused_total", "postgres") > 0);
        assert_ne!(
            metric(&after, "tenantry_circuit_state", "postgres"),
            0,
            "open or half-open"
        );

        restart_postgres(&pg).await;
        let mut recovered = false;
        for _ in 0..400 {
            let reply = admin.get("/api/projects").await;
            assert!(
                reply.status == 200 || reply.status == 503,
                "round {round}: while recovering: {} {}",
                reply.status,
                reply.text
            );
            if reply.status == 200 {
                assert_eq!(reply.body["data"][0]["name"], "kept");
                recovered = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        assert!(
            recovered,
            "round {round}: the stack serves again after Postgres returns"
        );
        assert_eq!(
            metric(&stack.metrics().await, "tenantry_circuit_state", "postgres"),
            0
        );
    }
    let reply = admin
        .post("/api/projects", json!({ "name": "after", "description": "" }))
        .await;
    assert_eq!(reply.status, 201, "{}", reply.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_limiter_circuit_applies_the_fail_mode_at_once_while_redis_is_down() {
    let redis = Arc::new(
        Redis::start()
            .await
            .expect("redis-server (scripts/test installs it)"),
    );
    let url = redis.url().to_string();
    let stack = TestStack::with_config(
        StackOptions {
            dev_auth: true,
            ..StackOptions::default()
        },
        move |config| {
            config.rate_limit.redis_url = Some(url);
            config.circuit = circuit();
        },
    )
    .await;
    let admin = stack.as_user(ORG, "user_1", "org:admin");
    assert_eq!(admin.get("/api/projects").await.status, 200);

    for round in 0..2 {
        let before = stack.metrics().await;
        let r = Arc::clone(&redis);
        tokio::task::spawn_blocking(move || r.stop())
            .await
            .unwrap()
            .unwrap();
        let mut open_reads = 0;
        for _ in 0..100 {
            // api.read fails open, api.exports fails closed.
            let response = stack
                .http
                .get(format!("{}/api/projects", stack.base))
                .header("x-tenantry-dev-tenant", format!("{ORG};user_1;org:admin"))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200, "round {round}: reads fail open");
            if response
                .headers()
                .get("ratelimit-degraded")
                .is_some_and(|v| v == "fail-open")
            {
                open_reads += 1;
            }
        }
        assert_eq!(open_reads, 100, "round {round}: every read is marked degraded");
        let export = stack
            .http
            .post(format!("{}/api/exports", stack.base))
            .header("x-tenantry-dev-tenant", format!("{ORG};user_1;org:admin"))
            .send()
            .await
            .unwrap();
        assert_eq!(export.status(), 503, "round {round}: exports fail closed");
        assert!(export.headers().contains_key("retry-after"));
        let after = stack.metrics().await;
        let attempts = metric(&after, "tenantry_circuit_attempts_total", "redis")
            - metric(&before, "tenantry_circuit_attempts_total", "redis");
        assert!(
            attempts <= 30,
            "round {round}: {attempts} store calls for 101 decisions while Redis was down"
        );
        assert!(metric(&after, "tenantry_circuit_refused_total", "redis") > 0);

        let r = Arc::clone(&redis);
        tokio::task::spawn_blocking(move || r.restart())
            .await
            .unwrap()
            .unwrap();
        let mut recovered = false;
        for _ in 0..400 {
            let response = stack
                .http
                .get(format!("{}/api/projects", stack.base))
                .header("x-tenantry-dev-tenant", format!("{ORG};user_1;org:admin"))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200);
            if response.headers().contains_key("ratelimit") {
                recovered = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        assert!(recovered, "round {round}: decisions come from Redis again");
        assert_eq!(
            metric(&stack.metrics().await, "tenantry_circuit_state", "redis"),
            0
        );
    }
}
