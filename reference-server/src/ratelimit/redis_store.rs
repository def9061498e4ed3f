//! The Redis store: one Lua script per algorithm, run with EVALSHA (on
//! NOSCRIPT the script is loaded and the call retried, transparently), so a
//! decision is one round trip and atomic. Time comes from Redis `TIME`
//! inside the script: instances with skewed clocks still share one window.
//! Every key gets a TTL of at most one window. A refused request changes
//! nothing. The connection is a `ConnectionManager` (multiplexed, reconnects
//! by itself), so concurrent decisions pipeline on one socket.

use redis::aio::ConnectionManager;
use redis::Script;

use super::policy::{Algorithm, Decision, Policy};

/// Exact sliding window: a sorted set of admission times (µs) per key.
/// Returns {allowed, remaining, reset_ms}.
pub const SLIDING_WINDOW: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2]) * 1000
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local count = redis.call('ZCARD', KEYS[1])
if count < limit then
  redis.call('ZADD', KEYS[1], now, ARGV[3])
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return {1, limit - count - 1, math.ceil((tonumber(oldest[2]) + window - now) / 1000)}
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
local wait = 0
if oldest[2] then wait = tonumber(oldest[2]) + window - now end
if wait < 0 then wait = 0 end
return {0, 0, math.ceil(wait / 1000)}
"#;

/// Fixed window: a hash {w = window index, n = count} per key.
/// Returns {allowed, remaining, reset_ms}.
pub const FIXED_WINDOW: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local index = math.floor(now / window)
local reset = (index + 1) * window - now
local current = redis.call('HMGET', KEYS[1], 'w', 'n')
local n = 0
if current[1] and tonumber(current[1]) == index then n = tonumber(current[2]) end
if n < limit then
  redis.call('HSET', KEYS[1], 'w', index, 'n', n + 1)
  redis.call('PEXPIRE', KEYS[1], reset)
  return {1, limit - n - 1, reset}
end
return {0, 0, reset}
"#;

/// `ratelimit-rejected-consumes`: the sliding window that records refused
/// requests too, so a client that keeps retrying never gets through.
#[cfg(feature = "inject")]
const SLIDING_WINDOW_REJECTED_CONSUMES: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2]) * 1000
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local count = redis.call('ZCARD', KEYS[1])
redis.call('ZADD', KEYS[1], now, ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
if count < limit then
  return {1, limit - count - 1, math.ceil(window / 1000)}
end
return {0, 0, math.ceil(window / 1000)}
"#;

/// `ratelimit-off-by-one`: the sliding window whose admission test is
/// `count <= limit`, so every window admits limit + 1 requests.
#[cfg(feature = "inject")]
fn sliding_window_off_by_one() -> String {
    let script = SLIDING_WINDOW.replacen("if count < limit then", "if count <= limit then", 1);
    debug_assert_ne!(script, SLIDING_WINDOW);
    script
}

/// The Redis store.
#[derive(Clone)]
pub struct RedisStore {
    connection: ConnectionManager,
    sliding: Script,
    fixed: Script,
    #[cfg(feature = "inject")]
    flaws: crate::inject::Flaws,
    #[cfg(feature = "inject")]
    sliding_rejected_consumes: Script,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore").finish_non_exhaustive()
    }
}

/// Why the store could not decide.
#[derive(Debug, thiserror::Error)]
#[error("redis: {0}")]
pub struct RedisError(#[from] pub redis::RedisError);

impl RedisStore {
    /// Connects to `url` (the manager reconnects on its own afterwards).
    pub async fn connect(url: &str) -> Result<Self, RedisError> {
        let client = redis::Client::open(url)?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(std::time::Duration::from_secs(1)))
            .set_response_timeout(Some(std::time::Duration::from_secs(1)))
            .set_number_of_retries(1);
        let connection = ConnectionManager::new_with_config(client, config).await?;
        let store = Self {
            connection,
            sliding: Script::new(SLIDING_WINDOW),
            fixed: Script::new(FIXED_WINDOW),
            #[cfg(feature = "inject")]
            flaws: crate::inject::Flaws::none(),
            #[cfg(feature = "inject")]
            sliding_rejected_consumes: Script::new(SLIDING_WINDOW_REJECTED_CONSUMES),
        };
        store.load_scripts().await?;
        Ok(store)
    }

    /// Injects flaws.
    #[cfg(feature = "inject")]
    pub fn with_flaws(mut self, flaws: crate::inject::Flaws) -> Self {
        if flaws.has(crate::inject::Flaw::RatelimitOffByOne) {
            // Loaded on first use (EVALSHA answers NOSCRIPT, the script is sent).
            self.sliding = Script::new(&sliding_window_off_by_one());
        }
        self.flaws = flaws;
        self
    }

    /// Loads the scripts once up front (EVALSHA reloads after a flush anyway).
    pub async fn load_scripts(&self) -> Result<(), RedisError> {
        let mut connection = self.connection.clone();
        self.sliding.prepare_invoke().load_async(&mut connection).await?;
        self.fixed.prepare_invoke().load_async(&mut connection).await?;
        Ok(())
    }

    /// The SHA1 of the script for `algorithm` (for `redis-benchmark EVALSHA`).
    pub fn script_sha(&self, algorithm: Algorithm) -> &str {
        match algorithm {
            Algorithm::SlidingWindow => self.sliding.get_hash(),
            Algorithm::FixedWindow => self.fixed.get_hash(),
        }
    }

    /// Decides for `key` under `policy`: one EVALSHA.
    pub async fn decide(&self, key: &str, policy: &Policy) -> Result<Decision, RedisError> {
        let mut connection = self.connection.clone();
        #[cfg(feature = "inject")]
        if self.flaws.has(crate::inject::Flaw::RatelimitNonatomic) {
            return self.decide_nonatomic(key, policy).await;
        }
        let script = match policy.algorithm {
            Algorithm::SlidingWindow => self.sliding_script(),
            Algorithm::FixedWindow => &self.fixed,
        };
        let nonce = u64::from_be_bytes(crate::ids::random_bytes::<8>());
        let (allowed, remaining, reset_ms): (i64, i64, i64) = script
            .key(key)
            .arg(policy.limit)
            .arg(policy.window_ms())
            .arg(nonce)
            .invoke_async(&mut connection)
            .await?;
        Ok(Decision {
            allowed: allowed == 1,
            remaining: remaining.clamp(0, i64::from(u32::MAX)) as u32,
            reset_ms: reset_ms.max(0) as u64,
        })
    }

    /// `ratelimit-nonatomic`: read the counter, decide in the app, then
    /// INCR and PEXPIRE as separate calls — concurrent requests all read the
    /// same count and all get in.
    #[cfg(feature = "inject")]
    async fn decide_nonatomic(&self, key: &str, policy: &Policy) -> Result<Decision, RedisError> {
        use redis::AsyncCommands;
        let mut connection = self.connection.clone();
        let window = policy.window_ms();
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        let index = now_ms / window;
        let reset_ms = (index + 1) * window - now_ms;
        let key = format!("{key}:{index}");
        let current: Option<u32> = connection.get(&key).await?;
        let current = current.unwrap_or(0);
        if current >= policy.limit {
            return Ok(Decision {
                allowed: false,
                remaining: 0,
                reset_ms,
            });
        }
        let count: u32 = connection.incr(&key, 1).await?;
        let _: () = connection.pexpire(&key, reset_ms as i64).await?;
        Ok(Decision {
            allowed: true,
            remaining: policy.limit.saturating_sub(count),
            reset_ms,
        })
    }

    #[cfg(feature = "inject")]
    fn sliding_script(&self) -> &Script {
        if self.flaws.has(crate::inject::Flaw::RatelimitRejectedConsumes) {
            &self.sliding_rejected_consumes
        } else {
            &self.sliding
        }
    }

    #[cfg(not(feature = "inject"))]
    fn sliding_script(&self) -> &Script {
        &self.sliding
    }

    /// A PING, for health and recovery checks.
    pub async fn ping(&self) -> Result<(), RedisError> {
        let mut connection = self.connection.clone();
        let _: String = redis::cmd("PING").query_async(&mut connection).await?;
        Ok(())
    }
}
