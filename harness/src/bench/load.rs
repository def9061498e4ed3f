//! The load generator: `concurrency` closed-loop workers, each sending one
//! prepared request at a time until the deadline, over a lean path of the
//! harness's HTTP client — the same reqwest stack (one pool, no redirects,
//! a timeout) without the transcript the evidence path keeps: the body is
//! read chunk by chunk and dropped, the latency (first byte sent to last
//! byte read) goes to a per-worker histogram, merged at the end.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE, COOKIE};

use super::histogram::Histogram;
use super::plan::{Plan, Prepared, Tokens};
use crate::session::Placement;

/// The lean sender: a reqwest client set up as the harness client is,
/// whose workers run on threads of their own (as wrk's do), so the load
/// generator neither takes its CPU from an in-process target's runtime nor
/// shares its scheduling with it.
#[derive(Debug, Clone)]
pub struct Lean {
    http: reqwest::Client,
    runtime: Arc<LoadRuntime>,
}

/// The workers' runtime; shut down in the background when the last
/// [`Lean`] goes (dropping a runtime inside another would panic).
#[derive(Debug)]
struct LoadRuntime(Option<tokio::runtime::Runtime>);

impl Drop for LoadRuntime {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

/// Threads of the load generator's runtime (wrk's `-t 2` likewise).
pub const THREADS: usize = 2;

/// How one request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// An answer with this status.
    Status(u16),
    /// No answer within the timeout.
    Timeout,
    /// Connection refused or reset, or a broken body.
    Transport,
}

impl Lean {
    /// A sender keeping up to `connections` idle connections per host,
    /// with [`THREADS`] threads of its own (none if they cannot be had:
    /// the caller's runtime then runs the workers).
    pub fn new(connections: usize, timeout: Duration) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(THREADS)
            .thread_name("tenantry-load")
            .enable_all()
            .build()
            .ok();
        Self {
            http: reqwest::Client::builder()
                .timeout(timeout)
                .redirect(reqwest::redirect::Policy::none())
                .pool_max_idle_per_host(connections.max(1))
                .tcp_nodelay(true)
                .build()
                .unwrap_or_default(),
            runtime: Arc::new(LoadRuntime(runtime)),
        }
    }

    /// Runs `work` on the load generator's threads.
    pub fn spawn<F>(&self, work: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: std::future::Future + Send + 'static,
        F::Output: Send + 'static,
    {
        match &self.runtime.0 {
            Some(runtime) => runtime.spawn(work),
            None => tokio::spawn(work),
        }
    }

    /// Sends `p` with `token` (an Authorization or session-cookie value per
    /// `placement`); the body is read and dropped.
    pub async fn send(&self, p: &Prepared, token: &HeaderValue, placement: Placement) -> Outcome {
        self.send_marked(p, token, placement).await.0
    }

    /// As [`Lean::send`], also saying whether the answer was marked
    /// degraded (a response header whose name contains `degraded`, as a
    /// limiter that admitted without a decision marks it).
    pub async fn send_marked(
        &self,
        p: &Prepared,
        token: &HeaderValue,
        placement: Placement,
    ) -> (Outcome, bool) {
        let mut builder = self.http.request(p.method.clone(), p.url.clone());
        for (k, v) in &p.headers {
            builder = builder.header(k, v);
        }
        builder = match (placement, &p.cookie) {
            (Placement::Header, None) => builder.header(AUTHORIZATION, token.clone()),
            (Placement::Header, Some(c)) => builder
                .header(AUTHORIZATION, token.clone())
                .header(COOKIE, c.as_str()),
            (Placement::Cookie, None) => builder.header(COOKIE, token.clone()),
            (Placement::Cookie, Some(c)) => {
                builder.header(COOKIE, format!("{c}; {}", token.to_str().unwrap_or_default()))
            }
        };
        if let Some((content_type, bytes)) = &p.body {
            builder = builder
                .header(CONTENT_TYPE, content_type.clone())
                .body(bytes.clone());
        }
        match builder.send().await {
            Ok(mut response) => {
                let status = response.status().as_u16();
                let degraded = response.headers().keys().any(|k| k.as_str().contains("degraded"));
                let outcome = loop {
                    match response.chunk().await {
                        Ok(Some(_)) => {}
                        Ok(None) => break Outcome::Status(status),
                        Err(e) if e.is_timeout() => break Outcome::Timeout,
                        Err(_) => break Outcome::Transport,
                    }
                };
                (outcome, degraded)
            }
            Err(e) if e.is_timeout() => (Outcome::Timeout, false),
            Err(_) => (Outcome::Transport, false),
        }
    }
}

/// The error class of an outcome (`None`: a success, 2xx or 3xx).
pub fn error_class(outcome: Outcome) -> Option<&'static str> {
    match outcome {
        Outcome::Status(s) if (200..400).contains(&s) => None,
        Outcome::Status(429) => Some("rate_limited"),
        Outcome::Status(s) if (400..500).contains(&s) => Some("http_4xx"),
        Outcome::Status(_) => Some("http_5xx"),
        Outcome::Timeout => Some("timeout"),
        Outcome::Transport => Some("transport"),
    }
}

/// Per-endpoint figures.
#[derive(Debug, Clone, Default)]
pub struct EndpointStats {
    /// Name.
    pub name: String,
    /// Latencies of answered requests.
    pub latency: Histogram,
    /// Requests that failed (any error class).
    pub errors: u64,
}

/// What a load run measured.
#[derive(Debug, Clone, Default)]
pub struct LoadStats {
    /// Wall time of the measured run.
    pub elapsed: Duration,
    /// Requests sent (answered or not).
    pub requests: u64,
    /// Latencies of every answered request.
    pub latency: Histogram,
    /// Per endpoint.
    pub endpoints: Vec<EndpointStats>,
    /// Answers by status.
    pub statuses: BTreeMap<u16, u64>,
    /// Failures by class (see [`error_class`]).
    pub errors: BTreeMap<String, u64>,
}

impl LoadStats {
    /// Requests per second.
    pub fn rps(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.requests as f64 / secs
        } else {
            0.0
        }
    }

    /// Failed requests, all classes.
    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }

    /// Adds `other` (a later slice of the same run).
    pub fn merge(&mut self, other: &LoadStats) {
        self.elapsed += other.elapsed;
        self.requests += other.requests;
        self.latency.merge(&other.latency);
        if self.endpoints.is_empty() {
            self.endpoints = other
                .endpoints
                .iter()
                .map(|e| EndpointStats {
                    name: e.name.clone(),
                    ..EndpointStats::default()
                })
                .collect();
        }
        for (a, b) in self.endpoints.iter_mut().zip(&other.endpoints) {
            a.latency.merge(&b.latency);
            a.errors += b.errors;
        }
        for (k, v) in &other.statuses {
            *self.statuses.entry(*k).or_default() += v;
        }
        for (k, v) in &other.errors {
            *self.errors.entry(k.clone()).or_default() += v;
        }
    }
}

/// Which requests the workers draw.
#[derive(Debug, Clone, Copy)]
pub enum Mix {
    /// An endpoint uniformly, then one of its prepared requests uniformly
    /// (so an endpoint's share does not depend on how many items it has).
    Profile,
    /// Always this prepared request (the `wrk` comparison).
    Single(usize),
}

pub use crate::rng::Rng;

/// Runs `concurrency` workers for `duration` over `plan`; `tick` hears the
/// requests done so far about every 200 ms.
#[allow(clippy::too_many_arguments)]
pub async fn drive(
    plan: Arc<Plan>,
    tokens: Arc<Tokens>,
    lean: &Lean,
    mix: Mix,
    concurrency: usize,
    duration: Duration,
    seed: u64,
    tick: &mut dyn FnMut(u64),
) -> LoadStats {
    let done = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let deadline = start + duration;
    let mut workers = Vec::with_capacity(concurrency);
    for w in 0..concurrency {
        let plan = plan.clone();
        let tokens = tokens.clone();
        let lean = lean.clone();
        let done = done.clone();
        let mut rng = Rng::new(seed ^ (w as u64).wrapping_mul(0xA24B_AED4_963E_E407));
        workers.push(lean.clone().spawn(async move {
            let mut stats = LoadStats {
                endpoints: plan
                    .endpoints
                    .iter()
                    .map(|n| EndpointStats {
                        name: n.clone(),
                        ..EndpointStats::default()
                    })
                    .collect(),
                ..LoadStats::default()
            };
            let placement = tokens.placement();
            while Instant::now() < deadline {
                let index = match mix {
                    Mix::Single(i) => i,
                    Mix::Profile => {
                        let pool = &plan.by_endpoint[rng.below(plan.by_endpoint.len())];
                        pool[rng.below(pool.len())]
                    }
                };
                let p = &plan.requests[index];
                let token = tokens.get(p.org);
                let sent = Instant::now();
                let outcome = lean.send(p, &token, placement).await;
                let took = sent.elapsed();
                stats.requests += 1;
                let endpoint = &mut stats.endpoints[p.endpoint];
                if let Outcome::Status(s) = outcome {
                    stats.latency.record(took);
                    endpoint.latency.record(took);
                    *stats.statuses.entry(s).or_default() += 1;
                }
                if let Some(class) = error_class(outcome) {
                    endpoint.errors += 1;
                    *stats.errors.entry(class.to_string()).or_default() += 1;
                }
                done.fetch_add(1, Ordering::Relaxed);
            }
            stats
        }));
    }
    let mut ticker = tokio::time::interval(Duration::from_millis(200));
    while Instant::now() < deadline {
        ticker.tick().await;
        tick(done.load(Ordering::Relaxed));
    }
    let mut total = LoadStats::default();
    for w in workers {
        if let Ok(stats) = w.await {
            total.merge(&stats);
        }
    }
    // The run lasts until the last worker's last answer.
    total.elapsed = start.elapsed();
    tick(done.load(Ordering::Relaxed));
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_fall_in_classes() {
        assert_eq!(error_class(Outcome::Status(200)), None);
        assert_eq!(error_class(Outcome::Status(304)), None);
        assert_eq!(error_class(Outcome::Status(429)), Some("rate_limited"));
        assert_eq!(error_class(Outcome::Status(404)), Some("http_4xx"));
        assert_eq!(error_class(Outcome::Status(503)), Some("http_5xx"));
        assert_eq!(error_class(Outcome::Transport), Some("transport"));
    }

    #[test]
    fn the_generator_is_uniform_enough_and_repeatable() {
        let mut a = Rng::new(7);
        let mut b = Rng::new(7);
        let mut counts = [0u32; 4];
        for _ in 0..4000 {
            let x = a.below(4);
            assert_eq!(x, b.below(4));
            counts[x] += 1;
        }
        assert!(counts.iter().all(|&c| (900..1100).contains(&c)), "{counts:?}");
    }
}
