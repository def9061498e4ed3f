//! Rate-limit decisions: the Redis store (one EVALSHA per decision on a
//! multiplexed connection) at 1, 16 and 64 concurrent callers, next to
//! `redis-benchmark` driving the same script with EVALSHA at the same
//! concurrency against the same Redis in the same run — the store's
//! physical ceiling without pipelining. Plus the in-process store.
//!
//! The comparison uses the fixed-window script with a limit no caller
//! reaches, so both sides run the same path (HMGET, HSET, PEXPIRE) on the
//! same key. `redis_benchmark_c<N>.json` next to criterion's output holds
//! redis-benchmark's rate; `scripts/bench-ratios ratelimit` prints the ratios.
//!
//! `cargo bench -p tenantry-benches --bench ratelimit`

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use tenantry_harness::services::Redis;
use tenantry_reference::ratelimit::{key as store_key, Algorithm, MemoryStore, Policy, RedisStore};

const CONCURRENCY: [usize; 3] = [1, 16, 64];

fn comparison_policy() -> Policy {
    Policy::new("bench", 1_000_000_000, Duration::from_secs(60)).algorithm(Algorithm::FixedWindow)
}

/// Runs redis-benchmark with EVALSHA of our script; returns requests/s.
fn redis_benchmark(port: u16, clients: usize, sha: &str, key: &str, policy: &Policy) -> Option<f64> {
    let requests = (20_000 * clients.min(16)).to_string();
    let output = Command::new("redis-benchmark")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-c",
            &clients.to_string(),
        ])
        .args(["-n", &requests, "--csv", "EVALSHA", sha, "1", key])
        .arg(policy.limit.to_string())
        .arg(policy.window_ms().to_string())
        .arg("1")
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&output.stdout);
    let line = text.lines().find(|l| l.starts_with("\"EVALSHA"))?;
    line.split(',').nth(1)?.trim_matches('"').parse().ok()
}

/// `iters` decisions spread over `clients` concurrent callers (caller `w`'s
/// decision `i` is for `key_of(policy, w, i)`); the time, scaled to `iters`.
async fn drive(
    store: Arc<RedisStore>,
    policy: Arc<Policy>,
    clients: usize,
    iters: u64,
    key_of: fn(&Policy, usize, u64) -> String,
) -> Duration {
    let per_client = iters.div_ceil(clients as u64);
    let started = Instant::now();
    let workers: Vec<_> = (0..clients)
        .map(|w| {
            let (store, policy) = (Arc::clone(&store), Arc::clone(&policy));
            tokio::spawn(async move {
                for i in 0..per_client {
                    store
                        .decide(&key_of(&policy, w, i), &policy)
                        .await
                        .expect("a decision");
                }
            })
        })
        .collect();
    for w in workers {
        w.await.expect("a bench caller");
    }
    started
        .elapsed()
        .mul_f64(iters as f64 / (per_client * clients as u64) as f64)
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (redis, store) = rt.block_on(async {
        let redis = Redis::start().await.expect("redis-server for the bench");
        let store = RedisStore::connect(redis.url()).await.expect("connect");
        (redis, Arc::new(store))
    });
    let port: u16 = redis
        .url()
        .rsplit(':')
        .next()
        .and_then(|p| p.trim_end_matches('/').parse().ok())
        .expect("a port in the Redis URL");
    let policy = Arc::new(comparison_policy());
    let key = store_key("org_bench", &policy.name);
    let sha = store.script_sha(Algorithm::FixedWindow).to_string();
    let out_dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/criterion/ratelimit_redis");
    let _ = std::fs::create_dir_all(&out_dir);

    let mut group = c.benchmark_group("ratelimit_redis");
    group.throughput(Throughput::Elements(1));
    for clients in CONCURRENCY {
        group.bench_with_input(
            BenchmarkId::new("store_fixed_window", clients),
            &clients,
            |b, &clients| {
                // One key: the path redis-benchmark drives too.
                b.to_async(&rt).iter_custom(|iters| {
                    drive(
                        Arc::clone(&store),
                        Arc::clone(&policy),
                        clients,
                        iters,
                        |p, _, _| store_key("org_bench", &p.name),
                    )
                });
            },
        );
        let sliding = Arc::new(Policy::new("bench-sliding", 100, Duration::from_secs(60)));
        group.bench_with_input(
            BenchmarkId::new("store_sliding_window", clients),
            &clients,
            |b, &clients| {
                // 1000 orgs, so admissions and refusals both occur.
                b.to_async(&rt).iter_custom(|iters| {
                    drive(
                        Arc::clone(&store),
                        Arc::clone(&sliding),
                        clients,
                        iters,
                        |p, w, i| store_key(&format!("org_{}", (i as usize * 31 + w) % 1000), &p.name),
                    )
                });
            },
        );
        if let Some(rps) = redis_benchmark(port, clients, &sha, &key, &policy) {
            println!("redis-benchmark EVALSHA -c {clients}: {rps:.0} requests/s");
            let _ = std::fs::write(
                out_dir.join(format!("redis_benchmark_c{clients}.json")),
                format!("{{\"clients\":{clients},\"rps\":{rps}}}"),
            );
        } else {
            println!("redis-benchmark not available: no ceiling measured at -c {clients}");
        }
    }
    group.finish();

    let memory = MemoryStore::new();
    let keys: Vec<String> = (0..1000)
        .map(|i| store_key(&format!("org_{i}"), "api.read"))
        .collect();
    let mut group = c.benchmark_group("ratelimit_memory");
    group.throughput(Throughput::Elements(1));
    for algorithm in [Algorithm::SlidingWindow, Algorithm::FixedWindow] {
        let policy = Policy::new("api.read", 100, Duration::from_secs(60)).algorithm(algorithm);
        let mut i = 0usize;
        group.bench_function(algorithm.name(), |b| {
            b.iter(|| {
                i = (i + 1) % keys.len();
                memory.decide(&keys[i], &policy)
            })
        });
    }
    group.finish();
    drop(redis);
}

criterion_group!(benches, bench);
criterion_main!(benches);
