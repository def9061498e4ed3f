//! tenantry-benches: criterion benches (in `benches/`) and peer comparisons.
//! This library holds what several benches share: seeding the projects the
//! list query reads, and the bare pool the baselines run on. See
//! `benches/README.md`.
#![forbid(unsafe_code)]

use tenantry_reference::db::APP_ROLE;
use tenantry_reference::wire::{self, WireConfig, WireError};
use tokio_postgres::NoTls;

/// Bench-only password of the app role (roles are cluster-wide; each bench
/// starts its own ephemeral cluster).
pub const APP_PASSWORD: &str = "tenantry-bench-app-password";

/// The org whose projects the benches list.
pub const ORG_A: &str = "org_bench_a";

/// Its neighbour, with as many rows, which must never show up.
pub const ORG_B: &str = "org_bench_b";

/// Why seeding failed.
#[derive(Debug)]
pub struct SeedError(pub String);

impl std::fmt::Display for SeedError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "cannot seed the bench database: {}", self.0)
    }
}

impl std::error::Error for SeedError {}

/// Inserts `rows_per_org` projects for each of [`ORG_A`] and [`ORG_B`]
/// (as the admin at `admin_url`, bypassing RLS) and runs ANALYZE.
pub async fn seed_projects(admin_url: &str, rows_per_org: i64) -> Result<(), SeedError> {
    let (client, conn) = tokio_postgres::connect(admin_url, NoTls)
        .await
        .map_err(|e| SeedError(e.to_string()))?;
    let task = tokio::spawn(conn);
    client
        .execute(
            "INSERT INTO app.projects (organization_id, id, name, description, created_by)
             SELECT org, 'prj_' || lpad(org || i::text, 26, '0'), 'project ' || i, 'description ' || i, 'user'
             FROM unnest(ARRAY[$1::text, $2::text]) AS org, generate_series(1, $3::bigint) AS i",
            &[&ORG_A, &ORG_B, &rows_per_org],
        )
        .await
        .map_err(|e| SeedError(e.to_string()))?;
    client
        .batch_execute("ANALYZE")
        .await
        .map_err(|e| SeedError(e.to_string()))?;
    drop(client);
    let _ = task.await;
    Ok(())
}

/// A pipelining pool of `size` app-role connections whose connections carry
/// `org`'s context from their startup parameters: statements on it need no
/// transaction and no `set_config` (the baselines).
pub fn bare_pool(admin_url: &str, org: &str, size: usize) -> Result<wire::Pool, WireError> {
    let config = WireConfig::from_url(admin_url, APP_ROLE, APP_PASSWORD)?.parameter("app.org_id", org);
    let breaker = tenantry_reference::circuit::Breaker::new(
        "postgres",
        tenantry_reference::circuit::CircuitConfig::default(),
    );
    wire::Pool::builder(wire::Manager::new(config, std::sync::Arc::new(breaker)))
        .max_size(size)
        .runtime(deadpool::Runtime::Tokio1)
        .build()
        .map_err(|e| WireError::Config(e.to_string()))
}

/// One variant's result in an [`interleave`]d run.
#[derive(Debug, Clone)]
pub struct Interleaved {
    /// The variant.
    pub name: String,
    /// Median over rounds of (baseline's batch time / this variant's).
    pub median_ratio: f64,
    /// Median operations per second over rounds.
    pub median_rate: f64,
    /// This process's CPU time (all threads) per operation, in µs.
    pub cpu_us_per_op: f64,
}

/// The interleaved A/B measurement. Criterion measures one variant after the
/// other, so on a shared machine a load change between two variants moves
/// their ratio. Here each of `rounds` rounds runs one batch of every variant
/// back to back (the first variant rotating), the ratio to the baseline is
/// taken within the round, and the median over rounds is kept. Each batch
/// closure performs `ops_per_batch` operations. The CPU time is this
/// process's only (not Postgres's or Redis's).
pub fn interleave(
    rounds: usize,
    ops_per_batch: usize,
    baseline: usize,
    variants: &mut [(&str, &mut dyn FnMut())],
) -> Vec<Interleaved> {
    let n = variants.len();
    let mut times = vec![Vec::with_capacity(rounds); n];
    let mut ticks = vec![0u64; n];
    for round in 0..rounds {
        for k in 0..n {
            let i = (k + round) % n;
            let cpu = process_cpu_ticks();
            let started = std::time::Instant::now();
            (variants[i].1)();
            times[i].push(started.elapsed().as_secs_f64());
            ticks[i] += process_cpu_ticks().saturating_sub(cpu);
        }
    }
    let median = |mut xs: Vec<f64>| {
        xs.sort_by(f64::total_cmp);
        xs.get(xs.len() / 2).copied().unwrap_or(f64::NAN)
    };
    let tick_us = 1e6 / clock_ticks_per_sec();
    let ops = ops_per_batch as f64;
    variants
        .iter()
        .enumerate()
        .map(|(i, (name, _))| Interleaved {
            name: name.to_string(),
            median_ratio: median((0..rounds).map(|r| times[baseline][r] / times[i][r]).collect()),
            median_rate: median(times[i].iter().map(|t| ops / t).collect()),
            cpu_us_per_op: ticks[i] as f64 * tick_us / (ops * rounds as f64),
        })
        .collect()
}

/// Writes `results` as `target/criterion/<group>/interleaved.json`, which
/// `scripts/bench-ratios` prints.
pub fn write_interleaved(
    group: &str,
    baseline: &str,
    rounds: usize,
    ops_per_batch: usize,
    results: &[Interleaved],
) {
    let variants: Vec<String> = results
        .iter()
        .map(|r| {
            format!(
                "\"{}\":{{\"median_ratio_vs_baseline\":{:.4},\"median_per_sec\":{:.1},\"bench_process_cpu_us_per_op\":{:.2}}}",
                r.name, r.median_ratio, r.median_rate, r.cpu_us_per_op
            )
        })
        .collect();
    let json = format!(
        "{{\"baseline\":\"{baseline}\",\"rounds\":{rounds},\"ops_per_batch\":{ops_per_batch},\"variants\":{{{}}}}}",
        variants.join(",")
    );
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../target/criterion/{group}"));
    let written =
        std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(dir.join("interleaved.json"), json));
    if let Err(e) = written {
        eprintln!("cannot write the interleaved results of {group}: {e}");
    }
}

/// This process's user + system CPU time so far, in clock ticks (all
/// threads; from /proc/self/stat, 0 where there is none).
fn process_cpu_ticks() -> u64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0;
    };
    // The fields after `(comm)`, which may contain spaces, start at field 3;
    // utime is field 14, stime field 15.
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return 0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| fields.get(n - 3).and_then(|f| f.parse::<u64>().ok()).unwrap_or(0);
    field(14) + field(15)
}

fn clock_ticks_per_sec() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|t| *t > 0.0)
        .unwrap_or(100.0)
}
