//! Closed-loop load on the reference server's Redis rate-limit store, for the
//! side-by-side comparison with rate-limiter-flexible
//! (`benches/peers/ratelimit-flexible.mjs` takes the same flags and prints the
//! same line).
//!
//! ```text
//! cargo run --release -p tenantry-benches --example limiter_load -- \
//!     --redis-url redis://127.0.0.1:6390 --concurrency 64 --seconds 5 \
//!     --algorithm sliding --limit 100 --window-ms 1000 --orgs 50
//! ```
//!
//! `--concurrency` callers each loop `decide` until `--seconds` have passed,
//! cycling over `--orgs` orgs (keys unique to the run, so runs on one Redis
//! do not meet). Without `--redis-url` a Redis is started for the run.
//!
//! `--runtime current` (the default) drives the callers from one thread, as
//! Node drives rate-limiter-flexible's: the same client CPU budget on both
//! sides. `--runtime multi` uses a multi-thread runtime with one worker per
//! core, as `tenantry serve` does; with nothing but decisions to run, its
//! workers park and unpark around every batch (eventfd writes, futex and
//! epoll_wait calls: `strace -f -c` shows them), which costs more system
//! time than the decisions themselves. A server busy with requests does not
//! park between batches.
//!
//! It prints ONE JSON line:
//!
//! `{"name":"tenantry-redis-store","algorithm":..,"concurrency":..,"decisions":..,
//! "decisions_per_s":..,"admitted":..,"expected_max_admitted":..,"over_admissions":..,
//! "errors":..,"runtime":..}`
//!
//! **How over-admissions are counted.** Redis decides at its `TIME`; Redis
//! and this process run on one host, so they read the same wall clock and
//! each decision's time `t` lies between the caller's send time `s` and
//! receipt time `r` (both taken with `SystemTime`). From these brackets only
//! provable excess is counted (a lower bound on excess admissions, never a
//! false alarm):
//! - *any span*: for each org, the largest set of admissions that certainly
//!   fell within a span shorter than the window (last `r` − first `s` <
//!   window) may hold at most the algorithm's bound `B` (`limit` for the
//!   sliding log, which counts admissions in `(t − window, t]`; `2 × limit`
//!   for any fixed window, aligned or anchored at the first request);
//!   the measure is `Σ_org max(0, largest − B)`;
//! - *aligned windows* (fixed window only): an admission is placed in window
//!   `⌊t_ms / window⌋` when its `s` and `r` fall in the same window; the
//!   measure is `Σ_(org, window) max(0, count − limit)`;
//! - *whole run*: `expected_max_admitted` is the most the algorithm may admit
//!   over the run's span `T` (first send to last receipt):
//!   `orgs × limit × (⌊T / window⌋ + 1)` for the sliding log,
//!   `orgs × limit × (⌊T / window⌋ + 2)` for fixed windows (a span of `T`
//!   touches at most that many windows).
//!
//! `over_admissions` is the largest of the three measures (the third being
//! `max(0, admitted − expected_max_admitted)`). Pick `--limit`, `--orgs`
//! and `--window-ms` so that every org reaches its limit within a window
//! (e.g. 100 per 1 s over 50 orgs at tens of thousands of decisions/s),
//! otherwise the check has nothing to catch.
#![forbid(unsafe_code)]

use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tenantry_reference::ratelimit::{key, Algorithm, Policy, RedisStore};

const USAGE: &str = "usage: limiter_load [--redis-url URL] [--concurrency N] [--seconds S] \
[--algorithm sliding|fixed] [--limit N] [--window-ms W] [--orgs K] [--runtime current|multi]";

#[derive(Debug)]
struct Args {
    redis_url: Option<String>,
    concurrency: usize,
    seconds: f64,
    algorithm: Algorithm,
    limit: u32,
    window_ms: u64,
    orgs: usize,
    multi_thread: bool,
}

fn parse_args(mut raw: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut args = Args {
        redis_url: None,
        concurrency: 64,
        seconds: 5.0,
        algorithm: Algorithm::SlidingWindow,
        limit: 100,
        window_ms: 1000,
        orgs: 50,
        multi_thread: false,
    };
    while let Some(flag) = raw.next() {
        if flag == "--help" || flag == "-h" {
            return Err(USAGE.into());
        }
        let value = raw
            .next()
            .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))?;
        let bad = |what: &str| format!("{flag} {value}: expected {what}\n{USAGE}");
        match flag.as_str() {
            "--redis-url" => args.redis_url = Some(value),
            "--concurrency" => args.concurrency = value.parse().map_err(|_| bad("a count"))?,
            "--seconds" => args.seconds = value.parse().map_err(|_| bad("seconds"))?,
            "--algorithm" => {
                args.algorithm = match value.as_str() {
                    "sliding" | "sliding-window" => Algorithm::SlidingWindow,
                    "fixed" | "fixed-window" => Algorithm::FixedWindow,
                    _ => return Err(bad("sliding or fixed")),
                }
            }
            "--limit" => args.limit = value.parse().map_err(|_| bad("a count"))?,
            "--window-ms" => args.window_ms = value.parse().map_err(|_| bad("milliseconds"))?,
            "--orgs" => args.orgs = value.parse().map_err(|_| bad("a count"))?,
            "--runtime" => {
                args.multi_thread = match value.as_str() {
                    "current" => false,
                    "multi" => true,
                    _ => return Err(bad("current or multi")),
                }
            }
            _ => return Err(format!("unknown flag {flag}\n{USAGE}")),
        }
    }
    if args.concurrency == 0 || args.orgs == 0 || args.limit == 0 || args.window_ms == 0 {
        return Err(format!(
            "--concurrency, --orgs, --limit and --window-ms must be at least 1\n{USAGE}"
        ));
    }
    if args.seconds.is_nan() || args.seconds <= 0.0 || args.seconds > 600.0 {
        return Err(format!("--seconds must be in (0, 600]\n{USAGE}"));
    }
    Ok(args)
}

/// One admission: the org and the wall-clock bracket (µs) of its decision.
#[derive(Debug, Clone, Copy)]
struct Admission {
    org: usize,
    sent_us: u64,
    received_us: u64,
}

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

#[derive(Debug, Default)]
struct Caller {
    decisions: u64,
    errors: u64,
    first_error: Option<String>,
    admissions: Vec<Admission>,
    first_sent_us: u64,
    last_received_us: u64,
}

async fn caller(
    store: RedisStore,
    policy: Arc<Policy>,
    keys: Arc<Vec<String>>,
    next: Arc<AtomicU64>,
    deadline: Instant,
) -> Caller {
    let mut seen = Caller {
        first_sent_us: u64::MAX,
        ..Caller::default()
    };
    while Instant::now() < deadline {
        let org = (next.fetch_add(1, Ordering::Relaxed) % keys.len() as u64) as usize;
        let sent_us = now_us();
        let result = store.decide(&keys[org], &policy).await;
        let received_us = now_us();
        seen.first_sent_us = seen.first_sent_us.min(sent_us);
        seen.last_received_us = seen.last_received_us.max(received_us);
        match result {
            Ok(decision) => {
                seen.decisions += 1;
                if decision.allowed {
                    seen.admissions.push(Admission {
                        org,
                        sent_us,
                        received_us,
                    });
                }
            }
            Err(e) => {
                seen.errors += 1;
                seen.first_error.get_or_insert_with(|| e.to_string());
            }
        }
    }
    seen
}

/// `Σ_org max(0, largest certain-span set − bound)` (see the file's doc).
fn span_excess(admissions: &[Admission], orgs: usize, window_us: u64, bound: u64) -> u64 {
    let mut by_org: Vec<Vec<Admission>> = vec![Vec::new(); orgs];
    for a in admissions {
        by_org[a.org].push(*a);
    }
    let mut excess = 0;
    for list in &mut by_org {
        list.sort_unstable_by_key(|a| a.sent_us);
        let mut worst = 0u64;
        for (i, first) in list.iter().enumerate() {
            let end = first.sent_us + window_us;
            // Sorted by send time: later sends past `end` cannot qualify.
            let certain = list[i..]
                .iter()
                .take_while(|a| a.sent_us < end)
                .filter(|a| a.received_us < end)
                .count() as u64;
            worst = worst.max(certain);
        }
        excess += worst.saturating_sub(bound);
    }
    excess
}

/// `Σ_(org, aligned window) max(0, certain count − limit)`.
fn aligned_excess(admissions: &[Admission], window_ms: u64, limit: u64) -> u64 {
    let mut counts = std::collections::HashMap::<(usize, u64), u64>::new();
    for a in admissions {
        let (first, last) = (a.sent_us / 1000 / window_ms, a.received_us / 1000 / window_ms);
        if first == last {
            *counts.entry((a.org, first)).or_default() += 1;
        }
    }
    counts.values().map(|n| n.saturating_sub(limit)).sum()
}

async fn run(args: Args) -> Result<String, String> {
    // Keep a started Redis alive for the whole run.
    let mut started = None;
    let url = match &args.redis_url {
        Some(url) => url.clone(),
        None => {
            let redis = tenantry_harness::services::Redis::start()
                .await
                .map_err(|e| format!("no --redis-url and no Redis could be started: {e}"))?;
            let url = redis.url().to_string();
            started = Some(redis);
            url
        }
    };
    let store = RedisStore::connect(&url)
        .await
        .map_err(|e| format!("cannot use the Redis at --redis-url: {e}"))?;
    let policy = Arc::new(
        Policy::new("load", args.limit, Duration::from_millis(args.window_ms)).algorithm(args.algorithm),
    );
    let run_id = format!("{:x}-{}", now_us(), std::process::id());
    let keys: Arc<Vec<String>> = Arc::new(
        (0..args.orgs)
            .map(|k| key(&format!("org_load_{run_id}_{k}"), &policy.name))
            .collect(),
    );
    let next = Arc::new(AtomicU64::new(0));
    let started_at = Instant::now();
    let deadline = started_at + Duration::from_secs_f64(args.seconds);
    let callers: Vec<_> = (0..args.concurrency)
        .map(|_| {
            tokio::spawn(caller(
                store.clone(),
                Arc::clone(&policy),
                Arc::clone(&keys),
                Arc::clone(&next),
                deadline,
            ))
        })
        .collect();
    let mut total = Caller {
        first_sent_us: u64::MAX,
        ..Caller::default()
    };
    for handle in callers {
        let seen = handle.await.map_err(|e| format!("a caller failed: {e}"))?;
        total.decisions += seen.decisions;
        total.errors += seen.errors;
        if total.first_error.is_none() {
            total.first_error = seen.first_error;
        }
        total.admissions.extend(seen.admissions);
        total.first_sent_us = total.first_sent_us.min(seen.first_sent_us);
        total.last_received_us = total.last_received_us.max(seen.last_received_us);
    }
    let elapsed = started_at.elapsed().as_secs_f64();
    drop(started);
    if let Some(error) = &total.first_error {
        eprintln!(
            "limiter_load: {} decisions failed; the first: {error}",
            total.errors
        );
    }

    let limit = u64::from(args.limit);
    let window_us = args.window_ms * 1000;
    let span_us = total.last_received_us.saturating_sub(total.first_sent_us);
    let windows = span_us / window_us
        + match args.algorithm {
            Algorithm::SlidingWindow => 1,
            Algorithm::FixedWindow => 2,
        };
    let expected_max = args.orgs as u64 * limit * windows;
    let admitted = total.admissions.len() as u64;
    let mut over = span_excess(
        &total.admissions,
        args.orgs,
        window_us,
        args.algorithm.admission_bound(args.limit),
    );
    if args.algorithm == Algorithm::FixedWindow {
        over = over.max(aligned_excess(&total.admissions, args.window_ms, limit));
    }
    over = over.max(admitted.saturating_sub(expected_max));
    let runtime = if args.multi_thread {
        "tokio-multi-thread"
    } else {
        "tokio-current-thread"
    };
    let algorithm = match args.algorithm {
        Algorithm::SlidingWindow => "sliding",
        Algorithm::FixedWindow => "fixed",
    };
    Ok(format!(
        "{{\"name\":\"tenantry-redis-store\",\"algorithm\":\"{algorithm}\",\"concurrency\":{},\
\"decisions\":{},\"decisions_per_s\":{:.1},\"admitted\":{admitted},\"expected_max_admitted\":{expected_max},\
\"over_admissions\":{over},\"errors\":{},\"runtime\":\"{runtime}\"}}",
        args.concurrency,
        total.decisions,
        total.decisions as f64 / elapsed,
        total.errors,
    ))
}

fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    let runtime = if args.multi_thread {
        tokio::runtime::Runtime::new()
    } else {
        tokio::runtime::Builder::new_current_thread().enable_all().build()
    };
    let runtime = match runtime {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("limiter_load: cannot start the Tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("limiter_load: {message}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(org: usize, sent_us: u64, latency_us: u64) -> Admission {
        Admission {
            org,
            sent_us,
            received_us: sent_us + latency_us,
        }
    }

    #[test]
    fn a_span_shorter_than_the_window_holding_more_than_the_bound_is_counted() {
        let window_us = 1_000_000;
        // 101 admissions for org 0 within 0.5 s, 100 for org 1 within 0.5 s.
        let mut admissions: Vec<_> = (0..101).map(|i| at(0, 10_000_000 + i * 5_000, 200)).collect();
        admissions.extend((0..100).map(|i| at(1, 10_000_000 + i * 5_000, 200)));
        assert_eq!(span_excess(&admissions, 2, window_us, 100), 1);
        assert_eq!(span_excess(&admissions, 2, window_us, 200), 0);
    }

    #[test]
    fn admissions_a_window_apart_or_of_uncertain_time_are_not_counted() {
        let window_us = 1_000_000;
        // 100 now and 100 one window later: the sliding bound holds.
        let mut admissions: Vec<_> = (0..100).map(|i| at(0, 5_000_000 + i, 10)).collect();
        admissions.extend((0..100).map(|i| at(0, 6_000_200 + i, 10)));
        assert_eq!(span_excess(&admissions, 1, window_us, 100), 0);
        // A slow answer (received a window later) proves nothing.
        admissions.push(at(0, 5_000_500, 2_000_000));
        assert_eq!(span_excess(&admissions, 1, window_us, 100), 0);
    }

    #[test]
    fn aligned_windows_count_only_admissions_certainly_inside() {
        // Window 1000 ms: [5 s, 6 s) holds 101 certain admissions.
        let mut admissions: Vec<_> = (0..101).map(|i| at(0, 5_000_000 + i * 1_000, 100)).collect();
        assert_eq!(aligned_excess(&admissions, 1000, 100), 1);
        // One straddling the boundary is not placed in either window.
        admissions.truncate(100);
        admissions.push(at(0, 5_999_950, 100));
        assert_eq!(aligned_excess(&admissions, 1000, 100), 0);
    }
}
