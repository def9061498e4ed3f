//! Measures how long the services take: a cold Postgres start (initdb into
//! an empty cache), a warm one (cached template cluster), a fresh database
//! from a template, and a Redis start.
//!
//! `cargo run --release -p tenantry-harness --example services_timing`

use std::time::Instant;

use tenantry_harness::services::{Postgres, Redis};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let cache = std::env::temp_dir().join(format!("tenantry-timing-cache-{}", std::process::id()));
    std::env::set_var("TENANTRY_CACHE_DIR", &cache);

    let cold = Postgres::start().await?;
    println!(
        "postgres {} cold start (initdb + start): {:>6} ms",
        cold.version(),
        cold.started_in().as_millis()
    );
    drop(cold);

    let mut warm_ms = Vec::new();
    for _ in 0..5 {
        let warm = Postgres::start().await?;
        warm_ms.push(warm.started_in().as_millis());
    }
    warm_ms.sort();
    println!(
        "postgres warm start (copy template + start), median of 5: {:>6} ms",
        warm_ms[2]
    );

    let pg = std::sync::Arc::new(Postgres::start().await?);
    let template_began = Instant::now();
    let first = pg
        .database_from_template("timing_tpl", |url| async move {
            let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await?;
            let task = tokio::spawn(conn);
            client
                .batch_execute("CREATE TABLE t (id text PRIMARY KEY, body text); CREATE INDEX ON t (body)")
                .await?;
            drop(client);
            let _ = task.await;
            Ok::<(), tokio_postgres::Error>(())
        })
        .await?;
    println!(
        "template database built + first clone: {:>6} ms",
        template_began.elapsed().as_millis()
    );
    drop(first);
    let n = 20;
    let began = Instant::now();
    let mut dbs = Vec::new();
    for _ in 0..n {
        dbs.push(
            pg.database_from_template("timing_tpl", |_| async { Ok::<(), String>(()) })
                .await?,
        );
    }
    println!(
        "per-test database (CREATE DATABASE … TEMPLATE), mean of {n}: {:>6.1} ms",
        began.elapsed().as_secs_f64() * 1000.0 / n as f64
    );
    let began = Instant::now();
    drop(dbs);
    println!(
        "drop database, mean of {n}: {:>6.1} ms",
        began.elapsed().as_secs_f64() * 1000.0 / n as f64
    );

    let began = Instant::now();
    let redis = Redis::start().await?;
    println!(
        "redis start: {:>6} ms ({})",
        began.elapsed().as_millis(),
        redis.url()
    );
    drop(redis);
    drop(pg);
    let _ = std::fs::remove_dir_all(&cache);
    Ok(())
}
