//! Rate-limit decisions, side by side in one run:
//!
//! - `ratelimit_redis`: the Redis store (decisions queued and sent in
//!   opportunistic batches, one EVALSHA per batch) for each algorithm at 1,
//!   16 and 64 concurrent callers on a multi-thread runtime (as `tenantry
//!   serve` runs), and at 64 callers on a current-thread runtime (one client
//!   thread, the budget Node gives rate-limiter-flexible); next to
//!   `redis-benchmark` driving the same script on the same Redis: one
//!   decision per EVALSHA unpipelined at the same concurrency
//!   (`redis_benchmark_c<N>.json`), pipelined 16 deep at 64 clients
//!   (`redis_benchmark_c64_P16.json`), and batches of 64 decisions per
//!   EVALSHA from one client (`redis_benchmark_batch64.json`, decisions/s):
//!   the ceilings without and with batching.
//! - `ratelimit_limiter`: the whole `Limiter::check` (bypass lookup, store,
//!   metrics) for an org on the bypass list — no store call at all — and for
//!   an ordinary org on the in-process and on the Redis store.
//! - `ratelimit_memory`: the in-process store alone.
//!
//! The fixed-window comparison uses a limit no caller reaches on one key, so
//! the store and redis-benchmark run the same admitting path (HMGET, HSET,
//! PEXPIRE); the sliding window spreads callers over 1 000 orgs with a limit
//! of 100 per minute, so admissions and refusals both occur.
//! `scripts/bench-ratios ratelimit` prints the ratios.
//!
//! `cargo bench -p tenantry-benches --bench ratelimit`

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use tenantry_harness::services::Redis;
use tenantry_reference::metrics::Metrics;
use tenantry_reference::ratelimit::{
    key as store_key, Algorithm, Bypass, Limiter, MemoryStore, Outcome, Policy, RedisStore, Store,
};

const CONCURRENCY: [usize; 3] = [1, 16, 64];

fn comparison_policy() -> Policy {
    Policy::new("bench", 1_000_000_000, Duration::from_secs(60)).algorithm(Algorithm::FixedWindow)
}

fn sliding_policy() -> Policy {
    Policy::new("bench-sliding", 100, Duration::from_secs(60))
}

/// Runs redis-benchmark with EVALSHA of the store's script, `copies`
/// decisions per call; returns calls/s.
fn redis_benchmark(
    port: u16,
    clients: usize,
    pipeline: usize,
    copies: usize,
    sha: &str,
    key: &str,
) -> Option<f64> {
    let requests = (20_000 * clients.min(16) * pipeline / copies)
        .max(2_000)
        .to_string();
    let output = Command::new("redis-benchmark")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(["-c", &clients.to_string(), "-P", &pipeline.to_string()])
        .args(["-n", &requests, "--csv", "EVALSHA", sha])
        .args(RedisStore::script_args(key, &comparison_policy(), copies))
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&output.stdout);
    let line = text.lines().find(|l| l.starts_with("\"EVALSHA"))?;
    line.split(',').nth(1)?.trim_matches('"').parse().ok()
}

/// `iters` decisions spread over `clients` concurrent callers (caller `w`'s
/// decision `i` is for `key_of(policy, w, i)`); the time, scaled to `iters`.
async fn drive(
    store: RedisStore,
    policy: Arc<Policy>,
    clients: usize,
    iters: u64,
    key_of: fn(&Policy, usize, u64) -> String,
) -> Duration {
    let per_client = iters.div_ceil(clients as u64);
    let started = Instant::now();
    let workers: Vec<_> = (0..clients)
        .map(|w| {
            let (store, policy) = (store.clone(), Arc::clone(&policy));
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

fn one_key(p: &Policy, _: usize, _: u64) -> String {
    store_key("org_bench", &p.name)
}

fn thousand_orgs(p: &Policy, w: usize, i: u64) -> String {
    store_key(&format!("org_{}", (i as usize * 31 + w) % 1000), &p.name)
}

fn write_rate(out_dir: &std::path::Path, name: &str, json: String) {
    let _ = std::fs::write(out_dir.join(format!("{name}.json")), json);
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().expect("a Tokio runtime");
    let one_thread = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current-thread Tokio runtime");
    let redis = rt.block_on(Redis::start()).expect("redis-server for the bench");
    // A store per runtime: its batching task runs where it was connected.
    let store = rt.block_on(RedisStore::connect(redis.url())).expect("connect");
    let store_one_thread = one_thread
        .block_on(RedisStore::connect(redis.url()))
        .expect("connect");
    let port: u16 = redis
        .url()
        .rsplit(':')
        .next()
        .and_then(|p| p.trim_end_matches('/').parse().ok())
        .expect("a port in the Redis URL");
    let fixed = Arc::new(comparison_policy());
    let sliding = Arc::new(sliding_policy());
    let key = store_key("org_bench", &fixed.name);
    let sha = store.script_sha().to_string();
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
                b.to_async(&rt)
                    .iter_custom(|iters| drive(store.clone(), Arc::clone(&fixed), clients, iters, one_key));
            },
        );
        group.bench_with_input(
            BenchmarkId::new("store_sliding_window", clients),
            &clients,
            |b, &clients| {
                b.to_async(&rt).iter_custom(|iters| {
                    drive(store.clone(), Arc::clone(&sliding), clients, iters, thousand_orgs)
                });
            },
        );
        match redis_benchmark(port, clients, 1, 1, &sha, &key) {
            Some(rps) => {
                println!("redis-benchmark EVALSHA -c {clients}: {rps:.0} decisions/s");
                write_rate(
                    &out_dir,
                    &format!("redis_benchmark_c{clients}"),
                    format!("{{\"clients\":{clients},\"rps\":{rps}}}"),
                );
            }
            None => println!("redis-benchmark not available: no ceiling measured at -c {clients}"),
        }
    }
    for (name, policy, key_of) in [
        (
            "store_fixed_window_one_thread",
            &fixed,
            one_key as fn(&Policy, usize, u64) -> String,
        ),
        ("store_sliding_window_one_thread", &sliding, thousand_orgs),
    ] {
        group.bench_with_input(BenchmarkId::new(name, 64), &64, |b, &clients| {
            b.to_async(&one_thread).iter_custom(|iters| {
                drive(
                    store_one_thread.clone(),
                    Arc::clone(policy),
                    clients,
                    iters,
                    key_of,
                )
            });
        });
    }
    if let Some(rps) = redis_benchmark(port, 64, 16, 1, &sha, &key) {
        println!("redis-benchmark EVALSHA -c 64 -P 16: {rps:.0} decisions/s");
        write_rate(
            &out_dir,
            "redis_benchmark_c64_P16",
            format!("{{\"clients\":64,\"pipeline\":16,\"rps\":{rps}}}"),
        );
    }
    if let Some(calls) = redis_benchmark(port, 1, 1, 64, &sha, &key) {
        let rps = calls * 64.0;
        println!("redis-benchmark EVALSHA of 64-decision batches -c 1: {rps:.0} decisions/s");
        write_rate(
            &out_dir,
            "redis_benchmark_batch64",
            format!("{{\"clients\":1,\"batch\":64,\"rps\":{rps}}}"),
        );
    }
    group.finish();

    // The limiter's check: a bypassed org never reaches the store.
    let metrics = Arc::new(Metrics::default());
    let bypass = Arc::new(Bypass::new(["org_vip".to_string()]));
    let read =
        Policy::new("api.read", 1_000_000_000, Duration::from_secs(60)).algorithm(Algorithm::FixedWindow);
    let timeout = Duration::from_secs(1);
    let on_memory = Limiter::new(
        Store::Memory(Arc::new(MemoryStore::new())),
        Arc::clone(&bypass),
        timeout,
        Arc::clone(&metrics),
    );
    let on_redis = Limiter::new(
        Store::Redis(store.clone()),
        Arc::clone(&bypass),
        timeout,
        Arc::clone(&metrics),
    );
    let stats = metrics.register_policy(&read.name);
    let mut group = c.benchmark_group("ratelimit_limiter");
    group.throughput(Throughput::Elements(1));
    let cases = [
        ("bypassed_org", &on_redis, "org_vip"),
        ("memory_store", &on_memory, "org_plain"),
        ("redis_store", &on_redis, "org_plain"),
    ];
    for (name, limiter, org) in cases {
        group.bench_function(name, |b| {
            b.to_async(&rt).iter(|| async {
                let outcome = limiter.check(&read, &stats, org, org).await;
                assert!(
                    matches!(outcome, Outcome::Bypassed | Outcome::Allowed(_)),
                    "{name}: {outcome:?}"
                );
                outcome
            })
        });
    }
    group.finish();
    let [_, _, bypassed, failed_open, failed_closed, store_errors] = stats.counts();
    assert!(bypassed > 0, "the bypass case never took the bypass path");
    assert_eq!(
        (failed_open, failed_closed, store_errors),
        (0, 0, 0),
        "the store failed"
    );

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
    drop((store, store_one_thread));
    drop(redis);
}

criterion_group!(benches, bench);
criterion_main!(benches);
