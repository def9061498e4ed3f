//! The Redis store: decisions are **batched opportunistically** into Lua
//! script calls. Queued decisions (up to [`MAX_BATCH`]) go out as ONE
//! `EVALSHA` of the batch script, which decides each key in queue order; up
//! to [`MAX_IN_FLIGHT`] batches travel at once, and decisions arriving while
//! both are out form the next batch. With nothing on the wire a batch is
//! split in two, so Redis runs one half while the client sends the other and
//! answers the first: the two sides overlap instead of taking turns. Nothing
//! waits on a timer: an idle store sends a lone decision at once (a batch of
//! one), a busy one amortises the round trip and the per-command cost over
//! many decisions.
//!
//! What each decision keeps:
//! - atomic per key (the whole batch runs as one script);
//! - time from Redis `TIME` inside the script (one reading per batch), so
//!   instances with skewed clocks still share one window;
//! - every key gets a TTL of at most one window;
//! - a refused request changes nothing;
//! - NOSCRIPT (a `SCRIPT FLUSH`, a restarted Redis): the script is loaded
//!   and the batch retried, transparently;
//! - an error on one key (say `WRONGTYPE` after a policy switched algorithm)
//!   fails that decision only, not the batch it rode in;
//! - a caller that gave up (the limiter's timeout) before its batch left is
//!   dropped from it, so a refusal the caller already reported consumes
//!   nothing.
//!
//! The connection is a `ConnectionManager` (multiplexed, reconnects by
//! itself, connection and response timeouts of 1 s); the limiter's own
//! store timeout and fail mode (`ratelimit/mod.rs`) apply on top.
//!
//! **Redis Cluster**: a batch names many keys in one script call, so every
//! key of a batch must hash to one slot. Keys are `rl:{<org>}:<policy>` —
//! the hash tag pins an org's keys to one slot, different orgs to different
//! slots. A cluster deployment would need one batch queue per slot (group
//! by `CLUSTER KEYSLOT` of the tag); this store targets a single node (or a
//! primary with replicas) and sends batches of mixed orgs.

use std::sync::Arc;

use redis::aio::ConnectionManager;
use redis::Script;
use tokio::sync::{mpsc, oneshot};

use super::policy::{Algorithm, Decision, Policy};

/// The most decisions sent in one round trip.
pub const MAX_BATCH: usize = 256;
/// Batches on the wire at once.
pub const MAX_IN_FLIGHT: usize = 2;

/// Decisions that may wait for a batch before callers wait to enqueue.
const QUEUE: usize = 16 * MAX_BATCH;

/// Exact sliding window: a sorted set of admission times (µs) per key;
/// members are `<batch nonce>:<i>`. Expired entries (score <= now - window)
/// are removed only when the oldest one has expired, so a refusal costs two
/// commands. Returns allowed, remaining, reset_ms.
const SLIDING_WINDOW: &str = r#"
local function sliding(key, limit, window_ms, nonce, i, now)
  local window = window_ms * 1000
  local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
  if oldest[2] and tonumber(oldest[2]) <= now - window then
    redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
    oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
  end
  local count = redis.call('ZCARD', key)
  if count < limit then
    redis.call('ZADD', key, now, nonce .. ':' .. i)
    redis.call('PEXPIRE', key, window_ms)
    local first = now
    if oldest[2] then first = tonumber(oldest[2]) end
    return 1, limit - count - 1, math.ceil((first + window - now) / 1000)
  end
  local wait = 0
  if oldest[2] then wait = tonumber(oldest[2]) + window - now end
  if wait < 0 then wait = 0 end
  return 0, 0, math.ceil(wait / 1000)
end
local memo_refusals = true
"#;

/// Fixed window: a hash {w = window index, n = count} per key.
/// Returns allowed, remaining, reset_ms.
const FIXED_WINDOW: &str = r#"
local function fixed(key, limit, window, now)
  local index = math.floor(now / window)
  local reset = (index + 1) * window - now
  local current = redis.call('HMGET', key, 'w', 'n')
  local n = 0
  if current[1] and tonumber(current[1]) == index then n = tonumber(current[2]) end
  if n < limit then
    redis.call('HSET', key, 'w', index, 'n', n + 1)
    redis.call('PEXPIRE', key, reset)
    return 1, limit - n - 1, reset
  end
  return 0, 0, reset
end
"#;

/// The batch driver: `KEYS[i]` is decision i's key; `ARGV[1]` a nonce
/// unique to the batch (sliding-window members are `<nonce>:<i>`, unique
/// across batches and instances); decision i's `ARGV[3i-1..=3i+1]` are the
/// algorithm (`s` or `f`), the limit and the window in ms. Returns three
/// integers per decision: allowed (1, 0, or -1 when Redis refused a command
/// on that key), remaining, reset_ms.
///
/// One `TIME` serves the whole batch, so once a key is refused under a
/// policy, every later decision for it in the batch is the same refusal
/// (a refusal changes nothing): it is answered from a memo without touching
/// the key again. An admission on the key drops its memo.
const DRIVER: &str = r#"
local t = redis.call('TIME')
local now_us = tonumber(t[1]) * 1000000 + tonumber(t[2])
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local nonce = ARGV[1]
local out = {}
local memo = {}
for i = 1, #KEYS do
  local key = KEYS[i]
  local a = 1 + (i - 1) * 3
  local kind, limit, window_ms = ARGV[a + 1], ARGV[a + 2], ARGV[a + 3]
  local m = memo[key]
  local allowed, remaining, reset
  if m and m[1] == kind and m[2] == limit and m[3] == window_ms then
    allowed, remaining, reset = 0, 0, m[4]
  else
    local ok
    if kind == 's' then
      ok, allowed, remaining, reset = pcall(sliding, key, tonumber(limit), tonumber(window_ms), nonce, i, now_us)
    else
      ok, allowed, remaining, reset = pcall(fixed, key, tonumber(limit), tonumber(window_ms), now_ms)
    end
    if not ok then
      allowed, remaining, reset = -1, 0, 0
    elseif allowed == 0 and memo_refusals then
      memo[key] = {kind, limit, window_ms, reset}
    else
      memo[key] = nil
    end
  end
  out[a] = allowed
  out[a + 1] = remaining
  out[a + 2] = reset
end
return out
"#;

/// `ratelimit-rejected-consumes`: the sliding window that records refused
/// requests too, so a client that keeps retrying never gets through (every
/// refusal writes, so none is answered from the memo).
#[cfg(feature = "inject")]
const SLIDING_WINDOW_REJECTED_CONSUMES: &str = r#"
local function sliding(key, limit, window_ms, nonce, i, now)
  local window = window_ms * 1000
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
  local count = redis.call('ZCARD', key)
  redis.call('ZADD', key, now, nonce .. ':' .. i)
  redis.call('PEXPIRE', key, window_ms)
  if count < limit then
    return 1, limit - count - 1, math.ceil(window / 1000)
  end
  return 0, 0, math.ceil(window / 1000)
end
local memo_refusals = false
"#;

/// The batch script with `sliding` as the sliding-window function.
fn batch_script(sliding: &str) -> String {
    format!("{sliding}{FIXED_WINDOW}{DRIVER}")
}

/// The batch script of a store with `flaws`.
#[cfg(feature = "inject")]
fn flawed_script(flaws: &crate::inject::Flaws) -> String {
    use crate::inject::Flaw;
    if flaws.has(Flaw::RatelimitRejectedConsumes) {
        return batch_script(SLIDING_WINDOW_REJECTED_CONSUMES);
    }
    if flaws.has(Flaw::RatelimitOffByOne) {
        // `ratelimit-off-by-one`: the admission test is `count <= limit`,
        // so every window admits limit + 1 requests.
        let sliding = SLIDING_WINDOW.replacen("if count < limit then", "if count <= limit then", 1);
        debug_assert_ne!(sliding, SLIDING_WINDOW);
        return batch_script(&sliding);
    }
    batch_script(SLIDING_WINDOW)
}

/// One queued decision.
struct Pending {
    key: String,
    algorithm: Algorithm,
    limit: u32,
    window_ms: u64,
    reply: oneshot::Sender<Result<Decision, RedisError>>,
}

/// The Redis store.
#[derive(Clone)]
pub struct RedisStore {
    connection: ConnectionManager,
    script: Arc<Script>,
    queue: mpsc::Sender<Pending>,
    #[cfg(feature = "inject")]
    flaws: crate::inject::Flaws,
    #[cfg(feature = "inject")]
    runtime: tokio::runtime::Handle,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore").finish_non_exhaustive()
    }
}

/// Why the store could not decide.
#[derive(Debug, Clone, thiserror::Error)]
#[error("redis: {0}")]
pub struct RedisError(#[from] pub redis::RedisError);

impl RedisError {
    fn stopped() -> Self {
        Self(redis::RedisError::from((
            redis::ErrorKind::Client,
            "the rate-limit batching task stopped (its runtime shut down)",
        )))
    }
}

impl RedisStore {
    /// Connects to `url` (the manager reconnects on its own afterwards) and
    /// starts the batching task on the current Tokio runtime.
    pub async fn connect(url: &str) -> Result<Self, RedisError> {
        let client = redis::Client::open(url)?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(std::time::Duration::from_secs(1)))
            .set_response_timeout(Some(std::time::Duration::from_secs(1)))
            .set_number_of_retries(1);
        let connection = ConnectionManager::new_with_config(client, config).await?;
        let script = Arc::new(Script::new(&batch_script(SLIDING_WINDOW)));
        let runtime = tokio::runtime::Handle::current();
        let queue = spawn_batcher(&runtime, connection.clone(), Arc::clone(&script));
        let store = Self {
            connection,
            script,
            queue,
            #[cfg(feature = "inject")]
            flaws: crate::inject::Flaws::none(),
            #[cfg(feature = "inject")]
            runtime,
        };
        store.load_scripts().await?;
        Ok(store)
    }

    /// Injects flaws (a fresh batching task runs the flawed script; it is
    /// loaded on first use: EVALSHA answers NOSCRIPT, the script is sent).
    #[cfg(feature = "inject")]
    pub fn with_flaws(mut self, flaws: crate::inject::Flaws) -> Self {
        self.script = Arc::new(Script::new(&flawed_script(&flaws)));
        self.queue = spawn_batcher(&self.runtime, self.connection.clone(), Arc::clone(&self.script));
        self.flaws = flaws;
        self
    }

    /// Loads the script once up front (EVALSHA reloads after a flush anyway).
    pub async fn load_scripts(&self) -> Result<(), RedisError> {
        let mut connection = self.connection.clone();
        self.script.prepare_invoke().load_async(&mut connection).await?;
        Ok(())
    }

    /// The SHA1 of the batch script (for `redis-benchmark EVALSHA`; see
    /// [`RedisStore::script_args`]).
    pub fn script_sha(&self) -> &str {
        self.script.get_hash()
    }

    /// The arguments after `EVALSHA <sha>` of a batch of `copies` decisions
    /// for `key` under `policy` (numkeys, keys, nonce, per-decision args):
    /// what the store sends, for driving the script from `redis-benchmark`.
    pub fn script_args(key: &str, policy: &Policy, copies: usize) -> Vec<String> {
        let mut args = vec![copies.to_string()];
        args.extend((0..copies).map(|_| key.to_string()));
        args.push("1".into());
        for _ in 0..copies {
            args.push(algorithm_code(policy.algorithm).into());
            args.push(policy.limit.to_string());
            args.push(policy.window_ms().to_string());
        }
        args
    }

    /// Decides for `key` under `policy`: queued, and sent with whatever else
    /// is queued as one EVALSHA.
    pub async fn decide(&self, key: &str, policy: &Policy) -> Result<Decision, RedisError> {
        #[cfg(feature = "inject")]
        if self.flaws.has(crate::inject::Flaw::RatelimitNonatomic) {
            return self.decide_nonatomic(key, policy).await;
        }
        let (reply, answer) = oneshot::channel();
        let pending = Pending {
            key: key.to_owned(),
            algorithm: policy.algorithm,
            limit: policy.limit,
            window_ms: policy.window_ms(),
            reply,
        };
        self.queue
            .send(pending)
            .await
            .map_err(|_| RedisError::stopped())?;
        answer.await.map_err(|_| RedisError::stopped())?
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

    /// A PING, for health and recovery checks.
    pub async fn ping(&self) -> Result<(), RedisError> {
        let mut connection = self.connection.clone();
        let _: String = redis::cmd("PING").query_async(&mut connection).await?;
        Ok(())
    }
}

fn algorithm_code(algorithm: Algorithm) -> &'static str {
    match algorithm {
        Algorithm::SlidingWindow => "s",
        Algorithm::FixedWindow => "f",
    }
}

/// Starts the task that owns the queue; it ends when every store clone
/// (every sender) is gone.
fn spawn_batcher(
    runtime: &tokio::runtime::Handle,
    connection: ConnectionManager,
    script: Arc<Script>,
) -> mpsc::Sender<Pending> {
    let (queue, receiver) = mpsc::channel(QUEUE);
    runtime.spawn(batcher(receiver, connection, script));
    queue
}

/// Waits for one decision, takes whatever else is queued (up to
/// [`MAX_BATCH`]), sends it as one round trip and answers when it returns.
/// Up to [`MAX_IN_FLIGHT`] batches travel at once on the multiplexed
/// connection, so the client builds and answers one batch while Redis runs
/// the other (one at a time, the two sides took turns idling); requests
/// arriving meanwhile form the next batch. Redis runs each batch's script
/// atomically, in the order the batches arrive.
async fn batcher(mut receiver: mpsc::Receiver<Pending>, connection: ConnectionManager, script: Arc<Script>) {
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_IN_FLIGHT));
    let mut batch: Vec<Pending> = Vec::with_capacity(MAX_BATCH);
    // Batch nonces: a random prefix per task and a counter, unique across
    // batches and instances without a getrandom call per batch.
    let prefix = u64::from_be_bytes(crate::ids::random_bytes::<8>());
    let mut sent = 0u64;
    loop {
        if batch.is_empty() && receiver.recv_many(&mut batch, MAX_BATCH).await == 0 {
            break;
        }
        // A free slot (both taken: whatever arrives meanwhile joins).
        let Ok(slot) = Arc::clone(&slots).acquire_owned().await else {
            break;
        };
        // Let callers already woken on this runtime enqueue first: one
        // scheduler pass, no timer (a lone caller waits for nothing else).
        while batch.len() < MAX_BATCH {
            tokio::task::yield_now().await;
            let before = batch.len();
            while batch.len() < MAX_BATCH {
                match receiver.try_recv() {
                    Ok(pending) => batch.push(pending),
                    Err(_) => break,
                }
            }
            if batch.len() == before {
                break;
            }
        }
        // Callers that timed out already answered their request: deciding
        // for them now would consume budget for nothing.
        batch.retain(|p| !p.reply.is_closed());
        if batch.is_empty() {
            continue;
        }
        // With nothing else on the wire, send half now and half right after:
        // Redis runs the first while the client sends the second, and when
        // the first returns its callers queue again while Redis runs the
        // second, so the two sides overlap instead of taking turns.
        let idle = slots.available_permits() == MAX_IN_FLIGHT - 1;
        let take = if idle {
            batch.len().div_ceil(MAX_IN_FLIGHT)
        } else {
            batch.len()
        };
        let rest = batch.split_off(take);
        let pending = std::mem::replace(&mut batch, rest);
        sent += 1;
        let nonce = format!("{prefix:x}.{sent:x}");
        let (script, mut connection) = (Arc::clone(&script), connection.clone());
        tokio::spawn(async move {
            let answers = run_batch(&script, &mut connection, &nonce, &pending).await;
            for (pending, answer) in pending.into_iter().zip(answers) {
                let _ = pending.reply.send(answer);
            }
            drop(slot);
        });
    }
}

/// One EVALSHA for `batch` (NOSCRIPT: load, retry); one answer per decision.
async fn run_batch(
    script: &Script,
    connection: &mut ConnectionManager,
    nonce: &str,
    batch: &[Pending],
) -> Vec<Result<Decision, RedisError>> {
    let mut invocation = script.prepare_invoke();
    for pending in batch {
        invocation.key(pending.key.as_str());
    }
    invocation.arg(nonce);
    for pending in batch {
        invocation
            .arg(algorithm_code(pending.algorithm))
            .arg(pending.limit)
            .arg(pending.window_ms);
    }
    let reply: Vec<i64> = match invocation.invoke_async(connection).await {
        Ok(reply) => reply,
        Err(e) => return vec![Err(RedisError(e)); batch.len()],
    };
    if reply.len() != 3 * batch.len() {
        let error = RedisError(redis::RedisError::from((
            redis::ErrorKind::UnexpectedReturnType,
            "the batch script answered the wrong number of values",
            format!("{} for {} decisions", reply.len(), batch.len()),
        )));
        return vec![Err(error); batch.len()];
    }
    reply
        .chunks_exact(3)
        .map(|answer| {
            let (allowed, remaining, reset_ms) = (answer[0], answer[1], answer[2]);
            if allowed == -1 {
                return Err(RedisError(redis::RedisError::from((
                    redis::ErrorKind::Server(redis::ServerErrorKind::ResponseError),
                    "Redis refused a command on this rate-limit key (a key of another type?)",
                ))));
            }
            Ok(Decision {
                allowed: allowed == 1,
                remaining: remaining.clamp(0, i64::from(u32::MAX)) as u32,
                reset_ms: reset_ms.max(0) as u64,
            })
        })
        .collect()
}
