//! Measures what half-sent requests cost the server: resident memory and
//! file handles of this process (server and clients share it) before,
//! while N connections each hold an unfinished request head, and after the
//! server's header-read timeout has cut them.
//!
//! `cargo run --release -p tenantry-reference --example slow_clients -- [N] [unbounded]`
//!
//! `unbounded` serves with the timeouts and the connection limit out of the
//! way (one hour, a million), as the server did before it had them.

use std::time::Duration;

use tenantry_harness::services::Postgres;
use tenantry_reference::config::Config;
use tenantry_reference::db;
use tenantry_reference::server::{self, StackOptions};
use tokio::io::AsyncWriteExt;

const APP_PASSWORD: &str = "tenantry-example-app-password";

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map(|d| d.count()).unwrap_or(0)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let n: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(5_000);
    let unbounded = args.iter().any(|a| a == "unbounded");
    let pg = Postgres::shared().await?;
    let database = pg
        .database_from_template(&format!("tref_{}", db::schema_fingerprint()), |url| async move {
            db::migrate(&url, APP_PASSWORD).await
        })
        .await?;
    let mut config = Config::default();
    config.server.header_read_timeout_ms = 5_000;
    if unbounded {
        config.server.header_read_timeout_ms = 3_600_000;
        config.server.idle_timeout_ms = 3_600_000;
        config.server.max_connections = 1_000_000;
    }
    let options = StackOptions::new(config.clone(), true);
    server::prepare_database(&database.url(), APP_PASSWORD, &options).await?;
    let app = server::build(&database.url(), APP_PASSWORD, &options).await?;
    let listener = server::bind(([127, 0, 0, 1], 0).into()).await?;
    let addr = listener.local_addr()?;
    tokio::spawn(app.serve(listener, std::future::pending()));
    // Warm the server once so its one-time allocations are in the baseline.
    let mut warm = tokio::net::TcpStream::connect(addr).await?;
    warm.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    drop(warm);

    let (rss0, fds0) = (rss_kib(), open_fds());
    let mut held = Vec::with_capacity(n);
    for _ in 0..n {
        let mut stream = tokio::net::TcpStream::connect(addr).await?;
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: 1")
            .await?;
        held.push(stream);
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (rss1, fds1) = (rss_kib(), open_fds());
    // Past the header-read timeout (5 s here): the server has cut them.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let (rss2, fds2) = (rss_kib(), open_fds());
    drop(held);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (rss3, fds3) = (rss_kib(), open_fds());
    let per = |rss: u64| (rss.saturating_sub(rss0) * 1024) as f64 / n as f64;
    println!(
        "mode: {}; {n} half-sent requests",
        if unbounded {
            "unbounded (no timeouts)"
        } else {
            "limits (header_read 5 s)"
        }
    );
    println!("baseline:              RSS {rss0} KiB, {fds0} fds");
    println!(
        "all connected (+2 s):  RSS {rss1} KiB, {fds1} fds, {:.0} bytes/connection",
        per(rss1)
    );
    println!(
        "+8 s:                  RSS {rss2} KiB, {fds2} fds, {:.0} bytes/connection still held",
        per(rss2)
    );
    println!("clients closed:        RSS {rss3} KiB, {fds3} fds");
    Ok(())
}
