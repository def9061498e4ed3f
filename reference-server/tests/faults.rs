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

/// Reads until the server closes the connection (or 5 s pass); what it sent.
async fn until_closed(stream: &mut tokio::net::TcpStream) -> Option<String> {
    use tokio::io::AsyncReadExt;
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return Some(String::from_utf8_lossy(&seen).into_owned()),
            Ok(Ok(n)) => seen.extend_from_slice(&buf[..n]),
            Err(_) => return None,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_are_cut_off_and_slow_bodies_get_408() {
    use tokio::io::AsyncWriteExt;
    let stack = TestStack::with_config(
        StackOptions {
            dev_auth: true,
            ..StackOptions::default()
        },
        |config| {
            config.server.header_read_timeout_ms = 300;
            config.server.body_timeout_ms = 300;
            config.server.idle_timeout_ms = 1_000;
            config.server.max_connections = 16;
        },
    )
    .await;
    let addr = stack.base.trim_start_matches("http://").to_string();

    // Slowloris: heads that never end, more than the connection limit.
    let mut loris = Vec::new();
    for _ in 0..24 {
        let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: 1")
            .await
            .unwrap();
        loris.push(stream);
    }
    // A well-behaved client still gets through once the slow ones are cut.
    assert_eq!(stack.anonymous().get("/healthz").await.status, 200);
    for (i, stream) in loris.iter_mut().enumerate() {
        let said = until_closed(stream)
            .await
            .unwrap_or_else(|| panic!("slow client {i} was not cut off"));
        assert!(!said.contains("200 OK"), "slow client {i} was served: {said}");
    }

    // A body that stops half-way: 408 problem+json, not 503, and the
    // connection closes.
    let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
    stream
        .write_all(
            format!(
                "POST /api/projects HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
                 X-Tenantry-Dev-Tenant: {ORG};user_1;org:admin\r\nContent-Length: 100\r\n\r\n{{\"name\":"
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    let said = until_closed(&mut stream).await.expect("the slow body is cut off");
    assert!(said.starts_with("HTTP/1.1 408"), "{said}");
    assert!(said.contains("application/problem+json"), "{said}");
    assert!(said.contains("\"request_timeout\""), "{said}");

    // An idle kept-alive connection is closed too.
    let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let said = until_closed(&mut stream)
        .await
        .expect("the idle connection is closed");
    assert!(said.starts_with("HTTP/1.1 200"), "{said}");

    // Whole bodies on time are served as before.
    let reply = stack
        .as_user(ORG, "user_1", "org:admin")
        .post("/api/projects", json!({ "name": "on time", "description": "" }))
        .await;
    assert_eq!(reply.status, 201, "{}", reply.text);
}
