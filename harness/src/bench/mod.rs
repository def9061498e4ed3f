//! `tenantry bench`: a fixed load against a target — the profile's
//! read-only requests (list, read of the org's own items, search) with real
//! sessions, spread over a world of several orgs — measured as throughput,
//! latency percentiles and errors by class; the 429 accuracy of the
//! profile's rate-limit policies; and, optionally, the harness's own client
//! against `wrk` on one endpoint (the harness must not be the bottleneck).
//!
//! Targets are measured one after another with the same seed, so the same
//! request mix; [`render`] lays the results side by side (table, Markdown,
//! JSON `tenantry.bench/1`, SVG chart of the latency distributions).
//!
//! - [`plan`]: the world, its items and the prepared requests;
//! - [`load`]: the closed-loop workers over a lean client path;
//! - [`histogram`]: log-linear latency histogram;
//! - [`ratelimit`]: the 429 accuracy phase;
//! - [`wrk`]: the wrk baseline.

pub mod histogram;
pub mod load;
pub mod plan;
pub mod ratelimit;
pub mod render;
pub mod wrk;

use std::time::Duration;

use crate::audit::AuditError;
use crate::client::Client;
use crate::profile::Profile;
use crate::session::{SessionError, Sessions};
use crate::template::RenderError;
use load::{Lean, LoadStats, Mix};
use plan::Setup;
use ratelimit::LimitAccuracy;
use wrk::WrkResult;

/// The report's schema tag.
pub const SCHEMA: &str = "tenantry.bench/1";

/// Why a benchmark could not run.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// The session source failed (provisioning or tokens).
    #[error(transparent)]
    Session(#[from] SessionError),
    /// The session source could not be set up.
    #[error(transparent)]
    Audit(#[from] AuditError),
    /// A profile template could not be filled.
    #[error("profile template: {0}")]
    Template(#[from] RenderError),
    /// The target did not answer.
    #[error("the target at {base} did not answer: {detail}")]
    Unreachable {
        /// Its base URL.
        base: String,
        /// The transport error.
        detail: String,
    },
    /// The world could not be set up.
    #[error("cannot set up the benchmark world: {0}")]
    Setup(String),
    /// An `--endpoints` selector matches nothing.
    #[error("--endpoints: `{selector}` matches no endpoint; the profile declares: {available}")]
    NoEndpoint {
        /// The selector.
        selector: String,
        /// The endpoints there are.
        available: String,
    },
    /// The profile declares nothing to load.
    #[error("the profile declares no read-only request to load (no resource with list, read or search)")]
    Empty,
    /// wrk failed.
    #[error("wrk: {0}")]
    Wrk(String),
}

/// Whether to measure 429 accuracy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateLimitCheck {
    /// When the profile declares policies and each phase takes at most
    /// [`AUTO_LIMIT_PHASE`].
    Auto,
    /// Whenever the profile declares policies, however long.
    On,
    /// Never.
    Off,
}

/// The longest 429 phase per policy run without `--rate-limit-check on`.
pub const AUTO_LIMIT_PHASE: Duration = Duration::from_secs(30);

/// The load profile: the same for every target of a run.
#[derive(Debug, Clone)]
pub struct BenchConfig {
    /// Workers (requests in flight).
    pub concurrency: usize,
    /// Measured time.
    pub duration: Duration,
    /// Unmeasured time before it.
    pub warmup: Duration,
    /// Seed of the request mix.
    pub seed: u64,
    /// `--endpoints` selectors (comma-separated globs; empty: all).
    pub endpoints: String,
    /// Orgs the load is spread over.
    pub orgs: usize,
    /// Items created per resource type and org.
    pub items: usize,
    /// 429 accuracy.
    pub rate_limit: RateLimitCheck,
    /// Whole windows per 429 phase.
    pub rate_limit_windows: u32,
    /// Per-request timeout.
    pub timeout: Duration,
}

impl Default for BenchConfig {
    fn default() -> Self {
        Self {
            concurrency: 16,
            duration: Duration::from_secs(10),
            warmup: Duration::from_secs(2),
            seed: 0,
            endpoints: String::new(),
            orgs: 4,
            items: 5,
            rate_limit: RateLimitCheck::Auto,
            rate_limit_windows: 3,
            timeout: Duration::from_secs(10),
        }
    }
}

/// The wrk comparison on one endpoint.
#[derive(Debug, Clone)]
pub struct WrkComparison {
    /// `GET /path`.
    pub endpoint: String,
    /// Connections / workers.
    pub concurrency: usize,
    /// Each side's duration (in two halves, wrk–harness–harness–wrk, when
    /// at least 2 s).
    pub duration: Duration,
    /// wrk's figures (rps and p50: the mean of its runs; p99: the worst).
    pub wrk: WrkResult,
    /// The harness's figures on the same request.
    pub harness: LoadStats,
}

impl WrkComparison {
    /// Harness rps / wrk rps.
    pub fn ratio(&self) -> f64 {
        if self.wrk.rps > 0.0 {
            self.harness.rps() / self.wrk.rps
        } else {
            0.0
        }
    }
}

/// The harness's goal against wrk (issue 11): at least this ratio.
pub const WRK_GOAL: f64 = 0.8;

/// One target's figures.
#[derive(Debug, Clone)]
pub struct TargetResult {
    /// Column label.
    pub name: String,
    /// Base URL.
    pub base_url: String,
    /// The measured load.
    pub load: LoadStats,
    /// 429 accuracy per policy.
    pub rate_limit: Vec<LimitAccuracy>,
    /// Why 429 accuracy was not measured, when it was not.
    pub rate_limit_note: Option<String>,
    /// The wrk comparison, when run on this target.
    pub wrk: Option<WrkComparison>,
}

/// A whole run.
#[derive(Debug, Clone)]
pub struct BenchReport {
    /// The load profile.
    pub config: BenchConfig,
    /// Targets in the order measured.
    pub targets: Vec<TargetResult>,
}

/// Where a target's run is.
#[derive(Debug, Clone)]
pub struct Progress {
    /// The target's label.
    pub target: String,
    /// `setup`, `warm-up`, `load`, `429 accuracy`, `wrk`, `harness (wrk endpoint)`.
    pub phase: &'static str,
    /// Time into the phase.
    pub elapsed: Duration,
    /// The phase's length (zero: unknown).
    pub total: Duration,
    /// Requests so far in the phase.
    pub requests: u64,
}

/// Benchmarks `profile` as column `name`: set up the world, warm up,
/// measure, then 429 accuracy, then (with `wrk`) the wrk comparison.
pub async fn run_target(
    name: &str,
    profile: &Profile,
    config: &BenchConfig,
    wrk: Option<&std::path::Path>,
    progress: &mut dyn FnMut(&Progress),
) -> Result<TargetResult, BenchError> {
    let names = plan::endpoint_names(profile);
    if names.is_empty() {
        return Err(BenchError::Empty);
    }
    let endpoints = plan::select(&names, &config.endpoints)?;
    let note = |phase, total| Progress {
        target: name.to_string(),
        phase,
        elapsed: Duration::ZERO,
        total,
        requests: 0,
    };
    progress(&note("setup", Duration::ZERO));
    let client = Client::new(&profile.base_url, 16, Duration::from_secs(20));
    let mut sessions = crate::audit::sessions_for(profile, &client).await?;
    let policies = match (&profile.rate_limit, config.rate_limit) {
        (Some(spec), RateLimitCheck::Auto | RateLimitCheck::On) if !spec.policies.is_empty() => Some(spec),
        _ => None,
    };
    let setup = plan::prepare(
        profile,
        &client,
        &mut sessions,
        &endpoints,
        config.orgs.max(1),
        config.items.max(1),
        policies.is_some(),
        config.seed,
    )
    .await?;
    let lean = Lean::new(config.concurrency, config.timeout);
    let mut timed = Timed {
        name,
        setup: &setup,
        sessions: &mut sessions,
        client: &client,
        lean: &lean,
        progress,
    };
    if !config.warmup.is_zero() {
        timed
            .run(
                "warm-up",
                Mix::Profile,
                config.concurrency,
                config.warmup,
                config.seed,
            )
            .await?;
    }
    let load = timed
        .run(
            "load",
            Mix::Profile,
            config.concurrency,
            config.duration,
            config.seed,
        )
        .await?;
    let mut rate_limit = Vec::new();
    let mut rate_limit_note = None;
    match (&profile.rate_limit, policies) {
        (_, Some(spec)) => {
            let base = spec
                .base_urls
                .first()
                .cloned()
                .unwrap_or_else(|| profile.base_url.clone());
            for policy in &spec.policies {
                let length = ratelimit::phase_length(policy, config.rate_limit_windows);
                if config.rate_limit == RateLimitCheck::Auto && length > AUTO_LIMIT_PHASE {
                    rate_limit_note = Some(format!(
                        "policy {} needs {} s for {} windows; pass --rate-limit-check on to measure it",
                        policy.name,
                        length.as_secs(),
                        config.rate_limit_windows
                    ));
                    continue;
                }
                (timed.progress)(&note("429 accuracy", length));
                rate_limit.push(
                    ratelimit::measure(
                        policy,
                        &base,
                        config.rate_limit_windows,
                        timed.sessions,
                        &client,
                        &setup.world,
                        &lean,
                    )
                    .await?,
                );
            }
        }
        (None, _) => rate_limit_note = Some("the profile declares no rate-limit policy".into()),
        (Some(_), None) => rate_limit_note = Some("not measured (--rate-limit-check off)".into()),
    }
    let wrk = match wrk {
        Some(path) => Some(timed.against_wrk(path, config).await?),
        None => None,
    };
    Ok(TargetResult {
        name: name.to_string(),
        base_url: profile.base_url.clone(),
        load,
        rate_limit,
        rate_limit_note,
        wrk,
    })
}

/// Timed phases over one set-up target.
struct Timed<'a, 'p> {
    name: &'a str,
    setup: &'a Setup,
    sessions: &'a mut Sessions,
    client: &'a Client,
    lean: &'a Lean,
    progress: &'a mut (dyn FnMut(&Progress) + 'p),
}

impl Timed<'_, '_> {
    /// Runs `mix` for `duration`, in slices no longer than the tokens stay
    /// fresh (they are renewed between slices; connections stay pooled).
    async fn run(
        &mut self,
        phase: &'static str,
        mix: Mix,
        concurrency: usize,
        duration: Duration,
        seed: u64,
    ) -> Result<LoadStats, BenchError> {
        let mut total = LoadStats::default();
        let mut left = duration;
        let mut slice_no = 0u64;
        while !left.is_zero() {
            if self.setup.tokens.fresh_for() < Duration::from_secs(1) {
                self.setup
                    .tokens
                    .refresh(self.sessions, self.client, &self.setup.world)
                    .await?;
            }
            let slice = left.min(self.setup.tokens.fresh_for().max(Duration::from_secs(1)));
            let (before, done_time) = (total.requests, duration - left);
            let name = self.name;
            let progress = &mut *self.progress;
            let stats = load::drive(
                self.setup.plan.clone(),
                self.setup.tokens.clone(),
                self.lean,
                mix,
                concurrency,
                slice,
                seed.wrapping_add(slice_no),
                &mut |n| {
                    progress(&Progress {
                        target: name.to_string(),
                        phase,
                        elapsed: done_time,
                        total: duration,
                        requests: before + n,
                    })
                },
            )
            .await;
            total.merge(&stats);
            left = left.saturating_sub(slice);
            slice_no += 1;
        }
        Ok(total)
    }

    /// wrk, then the harness, on the first GET endpoint of the plan.
    async fn against_wrk(
        &mut self,
        wrk: &std::path::Path,
        config: &BenchConfig,
    ) -> Result<WrkComparison, BenchError> {
        let index = self
            .setup
            .plan
            .single_get(None)
            .ok_or_else(|| BenchError::Wrk("no GET endpoint without a body to compare on".into()))?;
        let request = self.setup.plan.requests[index].clone();
        if !request.headers.is_empty() || request.cookie.is_some() {
            return Err(BenchError::Wrk(format!(
                "{} {} carries headers of its own; the comparison needs a plain GET",
                request.method,
                request.url.path()
            )));
        }
        if self.setup.tokens.fresh_for() < config.duration + Duration::from_secs(2) {
            self.setup
                .tokens
                .refresh(self.sessions, self.client, &self.setup.world)
                .await?;
        }
        let token = self.setup.tokens.get(request.org);
        let header = match self.setup.tokens.placement() {
            crate::session::Placement::Header => "Authorization",
            crate::session::Placement::Cookie => "Cookie",
        };
        let token_text = token
            .to_str()
            .map_err(|_| BenchError::Wrk("the token is not text".into()))?
            .to_string();
        // A B B A (wrk, harness, harness, wrk) in halves of the duration:
        // a drift of the shared machine's load hits both sides alike.
        let half = Duration::from_secs((config.duration.as_secs() / 2).max(1));
        let rounds: &[bool] = if config.duration.as_secs() >= 2 {
            &[true, false, false, true]
        } else {
            &[true, false]
        };
        let mut wrk_runs = Vec::new();
        let mut harness = LoadStats::default();
        for (round, &is_wrk) in rounds.iter().enumerate() {
            if is_wrk {
                (self.progress)(&Progress {
                    target: self.name.to_string(),
                    phase: "wrk",
                    elapsed: Duration::ZERO,
                    total: half,
                    requests: 0,
                });
                wrk_runs.push(
                    wrk::run(
                        wrk,
                        request.url.as_str(),
                        Some((header, &token_text)),
                        config.concurrency,
                        load::THREADS,
                        half,
                    )
                    .await
                    .map_err(BenchError::Wrk)?,
                );
            } else {
                let stats = self
                    .run(
                        "harness (wrk endpoint)",
                        Mix::Single(index),
                        config.concurrency,
                        half,
                        config.seed.wrapping_add(round as u64),
                    )
                    .await?;
                harness.merge(&stats);
            }
        }
        let n = wrk_runs.len() as f64;
        let wrk_result = WrkResult {
            rps: wrk_runs.iter().map(|r| r.rps).sum::<f64>() / n,
            p50_ms: wrk_runs.iter().map(|r| r.p50_ms).sum::<f64>() / n,
            p99_ms: wrk_runs.iter().map(|r| r.p99_ms).fold(0.0, f64::max),
            requests: wrk_runs.iter().map(|r| r.requests).sum(),
            non_2xx: wrk_runs.iter().map(|r| r.non_2xx).sum(),
        };
        let path = match request.url.query() {
            Some(q) => format!("{}?{q}", request.url.path()),
            None => request.url.path().to_string(),
        };
        Ok(WrkComparison {
            endpoint: format!("{} {path}", request.method),
            concurrency: config.concurrency,
            duration: half * (rounds.len() as u32 / 2),
            wrk: wrk_result,
            harness,
        })
    }
}
