//! Per-organization rate limiting.
//!
//! Each org-required route declares a [`PolicyName`] in the route table
//! (`api::routes`); the [`RateLimit`] layer sits behind the proxy, so it
//! keys on the **verified** org of the [`Tenant`] — never on an IP, a user
//! or anything the client chose. Orgs on the bypass list (reloaded from the
//! config file without a restart) make no store call at all. Decisions come
//! from the Redis store (shared by every instance; concurrent decisions are
//! batched, one EVALSHA per batch) or the in-process store (one instance only).
//!
//! Responses carry `RateLimit-Policy: "<name>";q=<limit>;w=<window s>` and
//! `RateLimit: "<name>";r=<remaining>;t=<s>` (IETF httpapi ratelimit-headers,
//! structured fields); a refusal is 429 with an RFC 9457 body,
//! `Retry-After` (seconds, rounded up, >= 1) and `Cache-Control: no-store`.
//! When the store does not answer within `rate_limit.store_timeout_ms`, the
//! policy's [`FailMode`] applies, marked by `RateLimit-Degraded`, a
//! (rate-limited, counted) WARN log and a metric.
//!
//! The Redis store sits behind a circuit breaker ([`crate::circuit`]): after
//! `circuit.failures` consecutive failed decisions it opens, and every
//! decision gets the fail mode at once, without waiting for the store; one
//! probe decision at a time finds out when Redis is back. So the store
//! timeout only has to tell a slow answer from none: it is generous by
//! default (250 ms, far above a healthy Redis's tail on a busy host), and a
//! Redis that is down costs the first few requests their timeout, not every
//! request (busy is not down).

pub mod bypass;
pub mod memory;
pub mod policy;
pub mod redis_store;

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode};

pub use self::bypass::Bypass;
pub use self::memory::MemoryStore;
pub use self::policy::{key, Algorithm, Decision, FailMode, Policy, PolicyName};
pub use self::redis_store::RedisStore;
use crate::circuit::{Breaker, ThrottledWarning};
use crate::metrics::{Metrics, PolicyStats};
use crate::problem::Problem;
use crate::tenant::Tenant;

/// The header marking a decision made without the store.
pub const DEGRADED_HEADER: &str = "ratelimit-degraded";

/// Where counts live.
#[derive(Debug, Clone)]
pub enum Store {
    /// Shared by every instance.
    Redis(RedisStore),
    /// This process only.
    Memory(Arc<MemoryStore>),
}

impl Store {
    /// `redis` or `memory`.
    pub fn name(&self) -> &'static str {
        match self {
            Store::Redis(_) => "redis",
            Store::Memory(_) => "memory",
        }
    }

    async fn decide(&self, key: &str, policy: &Policy) -> Result<Decision, String> {
        match self {
            Store::Redis(redis) => redis.decide(key, policy).await.map_err(|e| e.to_string()),
            Store::Memory(memory) => Ok(memory.decide(key, policy)),
        }
    }
}

/// What the limiter concluded for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The org is on the bypass list; no store call was made.
    Bypassed,
    /// Admitted by the store.
    Allowed(Decision),
    /// Refused by the store.
    Limited(Decision),
    /// The store failed or timed out; the policy fails open.
    FailedOpen,
    /// The store failed or timed out; the policy fails closed.
    FailedClosed,
    /// `ratelimit-fail-open-silent`: admitted with no trace.
    #[cfg(feature = "inject")]
    SilentlyOpen,
}

/// The limiter: store, bypass list, timeout, metrics.
#[derive(Debug)]
pub struct Limiter {
    store: Store,
    bypass: Arc<Bypass>,
    timeout: Duration,
    metrics: Arc<Metrics>,
    breaker: Option<Arc<Breaker>>,
    #[cfg(feature = "inject")]
    flaws: crate::inject::Flaws,
}

impl Limiter {
    /// A limiter over `store`.
    pub fn new(store: Store, bypass: Arc<Bypass>, timeout: Duration, metrics: Arc<Metrics>) -> Self {
        Self {
            store,
            bypass,
            timeout,
            metrics,
            breaker: None,
            #[cfg(feature = "inject")]
            flaws: crate::inject::Flaws::none(),
        }
    }

    /// Puts the store behind `breaker`: while it is open, decisions get the
    /// policy's fail mode at once.
    pub fn with_breaker(mut self, breaker: Arc<Breaker>) -> Self {
        self.breaker = Some(breaker);
        self
    }

    /// The store's circuit breaker, if any.
    pub fn breaker(&self) -> Option<&Arc<Breaker>> {
        self.breaker.as_ref()
    }

    /// Injects flaws.
    #[cfg(feature = "inject")]
    pub fn with_flaws(mut self, flaws: crate::inject::Flaws) -> Self {
        self.flaws = flaws;
        self
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The bypass list.
    pub fn bypass(&self) -> &Arc<Bypass> {
        &self.bypass
    }

    /// A layer enforcing `policy` (register each policy once).
    pub fn layer(self: &Arc<Self>, policy: Policy) -> RateLimit {
        let stats = self.metrics.register_policy(&policy.name);
        RateLimit {
            limiter: Arc::clone(self),
            policy: Arc::new((policy, stats)),
        }
    }

    /// Decides for `subject` (the org, unless a flaw says otherwise).
    pub async fn check(&self, policy: &Policy, stats: &PolicyStats, subject: &str, org: &str) -> Outcome {
        if self.bypass.contains(org) && !flaw!(self.flaws, RatelimitBypassIgnored) {
            stats.bypassed();
            return Outcome::Bypassed;
        }
        let attempt = match self.breaker.as_deref().map(Breaker::attempt) {
            Some(Err(open)) => return self.degraded(policy, stats, &open.to_string()),
            Some(Ok(attempt)) => Some(attempt),
            None => None,
        };
        let started = Instant::now();
        let key = key(subject, &policy.name);
        let result = tokio::time::timeout(self.timeout, self.store.decide(&key, policy)).await;
        stats.latency(started.elapsed());
        let error = match result {
            Ok(Ok(decision)) => {
                if let Some(attempt) = attempt {
                    attempt.succeeded();
                }
                if decision.allowed {
                    stats.allowed();
                    return Outcome::Allowed(decision);
                }
                stats.limited();
                return Outcome::Limited(decision);
            }
            Ok(Err(e)) => e,
            Err(_) => format!("no answer within {} ms", self.timeout.as_millis()),
        };
        if let Some(attempt) = attempt {
            attempt.failed(&error);
        }
        self.degraded(policy, stats, &error)
    }

    /// The policy's fail mode, without the store.
    fn degraded(&self, policy: &Policy, stats: &PolicyStats, error: &str) -> Outcome {
        #[cfg(feature = "inject")]
        if self.flaws.has(crate::inject::Flaw::RatelimitFailOpenSilent) {
            return Outcome::SilentlyOpen;
        }
        stats.store_error();
        self.warn(policy, error);
        match policy.fail {
            FailMode::Open => {
                stats.failed_open();
                Outcome::FailedOpen
            }
            FailMode::Closed => {
                stats.failed_closed();
                Outcome::FailedClosed
            }
        }
    }

    /// One WARN per 10 s at most, with the count: a dead store must not
    /// flood the log.
    fn warn(&self, policy: &Policy, error: &str) {
        static UNAVAILABLE: ThrottledWarning = ThrottledWarning::new(10_000);
        if let Some(n) = UNAVAILABLE.note() {
            tracing::warn!(
                policy = %policy.name,
                store = self.store.name(),
                fail = policy.fail.name(),
                %error,
                degraded = n,
                "rate-limit store unavailable; applying the policies' failure modes \
                 ({n} decisions made without the store in the last 10 s)"
            );
        }
    }

    fn subject<'a>(&self, tenant: &'a Tenant, request: &'a Request) -> std::borrow::Cow<'a, str> {
        let _ = request;
        #[cfg(feature = "inject")]
        {
            use crate::inject::Flaw;
            if self.flaws.has(Flaw::RatelimitPerIp) {
                let ip = request
                    .extensions()
                    .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
                    .map(|c| c.0.ip().to_string())
                    .unwrap_or_else(|| "unknown".into());
                return std::borrow::Cow::Owned(ip);
            }
            if self.flaws.has(Flaw::RatelimitPerUser) {
                return std::borrow::Cow::Borrowed(tenant.user_id());
            }
            if self.flaws.has(Flaw::RatelimitGlobalKey) {
                return std::borrow::Cow::Borrowed("global");
            }
        }
        std::borrow::Cow::Borrowed(tenant.org().as_str())
    }
}

/// The tower layer for one policy.
#[derive(Debug, Clone)]
pub struct RateLimit {
    limiter: Arc<Limiter>,
    policy: Arc<(Policy, Arc<PolicyStats>)>,
}

impl<S> tower::Layer<S> for RateLimit {
    type Service = RateLimitService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RateLimitService {
            inner,
            limit: self.clone(),
        }
    }
}

/// The service [`RateLimit`] makes.
#[derive(Debug, Clone)]
pub struct RateLimitService<S> {
    inner: S,
    limit: RateLimit,
}

impl<S> tower::Service<Request> for RateLimitService<S>
where
    S: tower::Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        // The clone is the one that is not ready yet; run the ready one.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let limit = self.limit.clone();
        Box::pin(async move {
            let (policy, stats) = &*limit.policy;
            let Some(tenant) = request.extensions().get::<Tenant>().cloned() else {
                // Wired without the proxy in front: refuse rather than guess.
                tracing::error!(policy = %policy.name, "rate-limited route reached without a tenant");
                return Ok(Problem::unauthenticated().into_response());
            };
            let subject = limit.limiter.subject(&tenant, &request).into_owned();
            let outcome = limit
                .limiter
                .check(policy, stats, &subject, tenant.org().as_str())
                .await;
            let headers_wrong = flaw!(limit.limiter.flaws, RatelimitHeadersWrong);
            match outcome {
                Outcome::Limited(decision) => Ok(limited(policy, decision, headers_wrong)),
                Outcome::FailedClosed => Ok(unavailable()),
                other => {
                    let mut response = inner.call(request).await?;
                    let headers = response.headers_mut();
                    match other {
                        Outcome::Allowed(decision) => {
                            set_headers(headers, policy, decision, headers_wrong);
                        }
                        Outcome::FailedOpen => {
                            headers.insert(DEGRADED_HEADER, HeaderValue::from_static("fail-open"));
                        }
                        _ => {}
                    }
                    Ok(response)
                }
            }
        })
    }
}

/// `RateLimit-Policy` and `RateLimit` for `decision`.
pub fn set_headers(headers: &mut http::HeaderMap, policy: &Policy, decision: Decision, wrong: bool) {
    let window_secs = policy.window_ms().div_ceil(1000);
    let remaining = if wrong {
        decision.remaining.saturating_add(1)
    } else {
        decision.remaining
    };
    let policy_value = format!("\"{}\";q={};w={}", policy.name, policy.limit, window_secs);
    let state_value = format!("\"{}\";r={};t={}", policy.name, remaining, decision.reset_secs());
    if let (Ok(p), Ok(s)) = (
        HeaderValue::from_str(&policy_value),
        HeaderValue::from_str(&state_value),
    ) {
        headers.insert("ratelimit-policy", p);
        headers.insert("ratelimit", s);
    }
}

fn limited(policy: &Policy, decision: Decision, wrong: bool) -> Response {
    let retry = decision.reset_secs();
    let problem = Problem::new(
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
        "Too Many Requests",
        format!(
            "this organization used its {} requests per {} s of policy {}; retry in {} s",
            policy.limit,
            policy.window_ms().div_ceil(1000),
            policy.name,
            retry
        ),
    );
    let mut response = problem.into_response();
    let headers = response.headers_mut();
    set_headers(headers, policy, decision, wrong);
    let retry_after = if wrong { decision.reset_ms.max(1) } else { retry };
    headers.insert(http::header::RETRY_AFTER, HeaderValue::from(retry_after));
    headers.insert(http::header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn unavailable() -> Response {
    let problem = Problem::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "rate_limit_unavailable",
        "Service Unavailable",
        "the rate limiter cannot decide right now and this route fails closed; retry shortly",
    );
    let mut response = problem.into_response();
    let headers = response.headers_mut();
    headers.insert(http::header::RETRY_AFTER, HeaderValue::from(1u64));
    headers.insert(http::header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(DEGRADED_HEADER, HeaderValue::from_static("fail-closed"));
    response
}
