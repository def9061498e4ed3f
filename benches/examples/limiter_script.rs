//! Loads the Redis store's Lua script into a Redis (exactly what
//! `RedisStore::connect` loads) and prints what `redis-benchmark` needs to
//! drive it with EVALSHA, one decision per call — the store's physical
//! ceiling, used by `scripts/bench-compare`:
//!
//! ```text
//! line 1: the script's SHA1
//! line 2: the arguments after `EVALSHA <sha>` for one decision, space-separated
//! ```
//!
//! `--key` may contain redis-benchmark's `__rand_int__` placeholder (spread
//! the decisions over orgs with `-r K`); `--nonce` likewise (the store sends
//! a random nonce per batch; sliding-window members derive from it).
//!
//! `cargo run --release -p tenantry-benches --example limiter_script -- --redis-url URL \
//!  [--algorithm sliding|fixed] [--limit N] [--window-ms W] [--key KEY] [--nonce N]`
#![forbid(unsafe_code)]

use std::process::ExitCode;
use std::time::Duration;

use tenantry_reference::ratelimit::{key, Algorithm, Policy, RedisStore};

const USAGE: &str = "usage: limiter_script --redis-url URL [--algorithm sliding|fixed] [--limit N] \
[--window-ms W] [--key KEY] [--nonce N]";

struct Args {
    redis_url: String,
    algorithm: Algorithm,
    limit: u32,
    window_ms: u64,
    key: String,
    nonce: Option<String>,
}

fn parse_args() -> Result<Args, String> {
    let mut redis_url = None;
    let mut args = Args {
        redis_url: String::new(),
        algorithm: Algorithm::FixedWindow,
        limit: 1_000_000_000,
        window_ms: 60_000,
        key: key("org_bench", "bench"),
        nonce: None,
    };
    let mut raw = std::env::args().skip(1);
    while let Some(flag) = raw.next() {
        if flag == "-h" || flag == "--help" {
            return Err(USAGE.into());
        }
        let value = raw
            .next()
            .ok_or_else(|| format!("{flag} needs a value; {USAGE}"))?;
        let number = |what: &str| -> Result<u64, String> {
            value
                .parse::<u64>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| format!("{what}: expected a positive integer, got `{value}`"))
        };
        match flag.as_str() {
            "--redis-url" => redis_url = Some(value.clone()),
            "--algorithm" => {
                args.algorithm = match value.as_str() {
                    "sliding" | "sliding-window" => Algorithm::SlidingWindow,
                    "fixed" | "fixed-window" => Algorithm::FixedWindow,
                    other => return Err(format!("--algorithm: expected sliding or fixed, got `{other}`")),
                }
            }
            "--limit" => {
                args.limit =
                    u32::try_from(number("--limit")?).map_err(|_| "--limit: too large".to_string())?
            }
            "--window-ms" => args.window_ms = number("--window-ms")?,
            "--key" => args.key = value.clone(),
            "--nonce" => args.nonce = Some(value.clone()),
            other => return Err(format!("unknown argument `{other}`; {USAGE}")),
        }
    }
    args.redis_url = redis_url.ok_or_else(|| format!("--redis-url is required; {USAGE}"))?;
    Ok(args)
}

async fn run(args: Args) -> Result<(), String> {
    let store = RedisStore::connect(&args.redis_url)
        .await
        .map_err(|e| format!("connecting to {} and loading the script: {e}", args.redis_url))?;
    let policy =
        Policy::new("bench", args.limit, Duration::from_millis(args.window_ms)).algorithm(args.algorithm);
    let mut script_args = RedisStore::script_args(&args.key, &policy, 1);
    if let Some(nonce) = args.nonce {
        // numkeys, the one key, then the nonce.
        match script_args.get_mut(2) {
            Some(slot) => *slot = nonce,
            None => return Err("the store's script arguments have no nonce slot".into()),
        }
    }
    println!("{}", store.script_sha());
    println!("{}", script_args.join(" "));
    Ok(())
}

fn main() -> ExitCode {
    let result = parse_args().and_then(|args| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("starting a runtime: {e}"))?
            .block_on(run(args))
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("limiter_script: {message}");
            ExitCode::FAILURE
        }
    }
}
