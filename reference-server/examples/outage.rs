//! Measures the server through a Postgres outage: connection attempts per
//! second while Postgres is down (from the circuit's metrics), what the
//! clients got, and the time from Postgres accepting connections again to
//! the first 200.
//!
//! `cargo run --release -p tenantry-reference --example outage -- [seconds down] [clients]`

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tenantry_harness::services::Postgres;
use tenantry_reference::config::Config;
use tenantry_reference::db;
use tenantry_reference::server::{self, StackOptions};

const APP_PASSWORD: &str = "tenantry-example-app-password";

fn metric(text: &str, name: &str) -> u64 {
    let prefix = format!("{name}{{dependency=\"postgres\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let down_secs: u64 = args.first().and_then(|a| a.parse().ok()).unwrap_or(10);
    let clients: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(32);
    let pg = Arc::new(Postgres::start().await?);
    let database = pg
        .database_from_template(&format!("tref_{}", db::schema_fingerprint()), |url| async move {
            db::migrate(&url, APP_PASSWORD).await
        })
        .await?;
    let mut config = Config::default();
    // Measure the database path, not the rate limiter.
    for policy in tenantry_reference::ratelimit::PolicyName::ALL {
        config.rate_limit.policies.insert(
            policy,
            tenantry_reference::config::PolicyOverride {
                limit: Some(1_000_000),
                ..Default::default()
            },
        );
    }
    let options = StackOptions::new(config, true);
    server::prepare_database(&database.url(), APP_PASSWORD, &options).await?;
    let app = server::build(&database.url(), APP_PASSWORD, &options).await?;
    let listener = server::bind(([127, 0, 0, 1], 0).into()).await?;
    let base = format!("http://{}", listener.local_addr()?);
    tokio::spawn(app.serve(listener, std::future::pending()));
    let http = reqwest::Client::new();
    let get = |http: reqwest::Client, base: String| async move {
        http.get(format!("{base}/api/projects"))
            .header("x-tenantry-dev-tenant", "org_outage;user_1;org:admin")
            .send()
            .await
            .map(|r| r.status().as_u16())
            .unwrap_or(0)
    };
    assert_eq!(get(http.clone(), base.clone()).await, 200);
    let metrics = || async {
        http.get(format!("{base}/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    };

    let before = metrics().await;
    let p = Arc::clone(&pg);
    tokio::task::spawn_blocking(move || p.stop()).await??;
    let started = Instant::now();
    let counts: Arc<[AtomicU64; 4]> = Arc::new(Default::default());
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (http, base, counts) = (http.clone(), base.clone(), Arc::clone(&counts));
        tasks.push(tokio::spawn(async move {
            while started.elapsed() < Duration::from_secs(down_secs) {
                let slot = match get(http.clone(), base.clone()).await {
                    200 => 0,
                    503 => 1,
                    500..=599 => 2,
                    _ => 3,
                };
                counts[slot].fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for task in tasks {
        task.await?;
    }
    let down = started.elapsed().as_secs_f64();
    let after = metrics().await;
    let attempts = metric(&after, "tenantry_circuit_attempts_total")
        - metric(&before, "tenantry_circuit_attempts_total");
    let [ok, unavailable, other5xx, other] = [0, 1, 2, 3].map(|i| counts[i].load(Ordering::Relaxed));
    println!("Postgres down {down:.1} s, {clients} clients:");
    println!(
        "  requests: {} ({:.0}/s): {unavailable} x 503, {other5xx} other 5xx, {ok} x 200, {other} other",
        ok + unavailable + other5xx + other,
        (ok + unavailable + other5xx + other) as f64 / down
    );
    println!(
        "  connection attempts: {attempts} ({:.2}/s); circuit opened {} times",
        attempts as f64 / down,
        metric(&after, "tenantry_circuit_opened_total") - metric(&before, "tenantry_circuit_opened_total")
    );
    let p = Arc::clone(&pg);
    tokio::task::spawn_blocking(move || p.restart()).await??;
    let back = Instant::now();
    let mut polls = 0;
    while get(http.clone(), base.clone()).await != 200 {
        polls += 1;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    println!(
        "  recovery: first 200 {:.0} ms after Postgres was ready again ({polls} refused polls)",
        back.elapsed().as_secs_f64() * 1000.0
    );
    Ok(())
}
