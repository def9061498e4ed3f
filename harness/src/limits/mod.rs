//! The RL suite: per-organization rate limiting (CWE-770), judged over real
//! HTTP with real sessions against the policies a profile's `[rate_limit]`
//! declares.
//!
//! Every check gets an org of its own (a fresh budget, so no check waits out
//! another's window), provisioned through the profile's session source. The
//! suite sleeps at most a little over one declared window at a time, so a
//! target tested with windows of one or two seconds is judged in seconds.
//!
//! Not run, and said so in [`Outcome::skipped`]: RL-005 and RL-011 unless
//! the caller gives [`LimitsHooks`] (through [`run_with`]) that can put an
//! org on the bypass list and stop/start the store, RL-010 with a single
//! instance, RL-012 unless the hooks give the store's URL (it reads the
//! store's commands with MONITOR, its keys and TTLs), RL-006 when the policy does
//! not declare `headers = true`.
//!
//! RL-011's oracle for "degraded": while the store is down, a request the
//! target admits must say it was admitted without a decision — a response
//! header whose name contains `degraded` (the reference server sends
//! `RateLimit-Degraded: fail-open`); a refusal must be 503 or 429, never
//! another 5xx; every answer must come within [`STORE_DOWN_BOUND`]; and
//! within [`RECOVERY_WITHIN`] of the store's return, answers are decided
//! again (no degraded header).

mod checks;
mod hooks;

pub use hooks::CommandHooks;

use std::time::{Duration, Instant};

use futures::future::BoxFuture;

use crate::audit::{AuditError, Finding, Report};
use crate::checks::{self as catalogue, Selection};
use crate::client::{Client, Reply, Request};
use crate::oracle::CanarySource;
use crate::profile::{LimitPolicy, Profile};
use crate::session::{Placement, Sessions};
use crate::world::{Org, OrgSpec, UserSpec, World, WorldSpec};

/// What the suite did: the report, and the checks it could not run with why.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Checks run and findings.
    pub report: Report,
    /// `(check id, reason)` for each selected check that did not run.
    pub skipped: Vec<(&'static str, String)>,
}

/// Runs the RL suite of `profile` (its `[rate_limit]`) with `sessions` (see
/// [`crate::audit::sessions_for`]). Checks that cannot run are left out of
/// `checks_run`; [`run`] also says why.
pub async fn audit(
    profile: &Profile,
    client: &Client,
    sessions: &mut Sessions,
    selection: &Selection,
    seed: u64,
) -> Result<Report, AuditError> {
    Ok(run(profile, client, sessions, selection, seed).await?.report)
}

/// The orgs the suite provisions, one per check that spends a budget.
const ORGS: &[&str] = &[
    "exact", "exact_2", "exact_3", "iso_a", "iso_b", "users", "spoof", "headers", "retry", "rejected",
    "edge", "multi", "bypass", "down", "cost",
];

/// The longest a request may take while the store is down (RL-011).
pub const STORE_DOWN_BOUND: Duration = Duration::from_secs(3);

/// How soon after the store returns decisions must be made again (RL-011).
pub const RECOVERY_WITHIN: Duration = Duration::from_secs(10);

/// What the caller can do to the target beyond HTTP, for the checks that
/// need it: RL-005 (edit the bypass list) and RL-011 (stop and start the
/// store). A hook that cannot act returns `Err(why)`; the check is then
/// reported as not run with that reason.
pub trait LimitsHooks: Send + Sync {
    /// Puts `org_id` (the org's id as the identity service names it) on the
    /// target's bypass list the way an operator would (e.g. its config file),
    /// without restarting anything.
    fn add_bypass_org<'a>(&'a self, org_id: &'a str) -> BoxFuture<'a, Result<(), String>>;

    /// How soon an edit of the bypass list must take effect (RL-005).
    fn bypass_reload_within(&self) -> Duration {
        Duration::from_secs(5)
    }

    /// Stops the rate-limit store abruptly (as a crash would).
    fn stop_store(&self) -> BoxFuture<'_, Result<(), String>>;

    /// Starts the store again where it was.
    fn start_store(&self) -> BoxFuture<'_, Result<(), String>>;

    /// The store's URL (`redis://…`), for the cost checks (RL-012).
    fn store_url(&self) -> Option<String> {
        None
    }
}

/// Users of org `users` besides `owner` (RL-003).
const MEMBERS: &[&str] = &["m1", "m2", "m3"];

/// Runs the suite, reporting skipped checks with their reasons. The hooks
/// are the profile's `[rate_limit.hooks]`; without them RL-005, RL-011 and
/// RL-012 are not run.
pub async fn run(
    profile: &Profile,
    client: &Client,
    sessions: &mut Sessions,
    selection: &Selection,
    seed: u64,
) -> Result<Outcome, AuditError> {
    run_with(profile, client, sessions, selection, seed, None).await
}

/// As [`run`], with `hooks` for the checks that act on the target beyond
/// HTTP (RL-005, RL-011, RL-012); without them, the profile's
/// `[rate_limit.hooks]` if it has some.
pub async fn run_with(
    profile: &Profile,
    client: &Client,
    sessions: &mut Sessions,
    selection: &Selection,
    seed: u64,
    hooks: Option<&dyn LimitsHooks>,
) -> Result<Outcome, AuditError> {
    let started = Instant::now();
    let sent_before = client.requests_sent();
    let mut outcome = Outcome {
        report: Report {
            target: profile.name.clone(),
            seed,
            ..Report::default()
        },
        skipped: Vec::new(),
    };
    let selected: Vec<&'static str> = catalogue::CHECKS
        .iter()
        .filter(|c| c.family == "RL" && selection.includes(c))
        .map(|c| c.id)
        .collect();
    let Some(spec) = &profile.rate_limit else {
        for id in selected {
            outcome
                .skipped
                .push((id, "the profile has no [rate_limit] section".into()));
        }
        return Ok(outcome);
    };
    if selected.is_empty() {
        return Ok(outcome);
    }
    let declared = spec.hooks.clone().map(CommandHooks::new);
    let hooks = hooks.or(declared.as_ref().map(|h| h as &dyn LimitsHooks));
    let mut canaries = CanarySource::new(seed);
    let tag = canaries.canary()[4..14].to_string();
    let mut world = sessions.provision(&world_spec(&tag)).await?;
    // RL-002's hostile org: `:`, `{`, `}` in what the harness may choose
    // (the name and slug; the id is the identity service's).
    let hostile = match sessions.provision(&hostile_spec(&tag, true)).await {
        Ok(w) => Some((w, true)),
        Err(_) => sessions
            .provision(&hostile_spec(&format!("{tag}p"), false))
            .await
            .ok()
            .map(|w| (w, false)),
    };
    if let Some((w, _)) = &hostile {
        world.orgs.extend(w.orgs.iter().cloned());
        world.users.extend(w.users.iter().cloned());
    }
    let mut tokens = Vec::new();
    for org in ORGS {
        tokens.push((org.to_string(), "owner".to_string()));
    }
    tokens.push(("iso_b".into(), "other".into()));
    for member in MEMBERS {
        tokens.push(("users".into(), member.to_string()));
    }
    if hostile.is_some() {
        tokens.push(("hostile".into(), "hostile_owner".into()));
    }
    let first = actors(sessions, client, &world, &tokens).await?;
    let mut suite = Suite {
        client: client.clone(),
        placement: sessions.placement(),
        bases: spec.base_urls.clone(),
        actors: first,
        selected,
        outcome,
        hostile_named: hostile.as_ref().map(|(_, named)| *named),
    };
    for (i, policy) in spec.policies.iter().enumerate() {
        if i > 0 {
            // Session tokens are short-lived; a policy with long windows
            // outlasts them.
            suite.actors = actors(sessions, client, &world, &tokens).await?;
        }
        checks::all(&mut suite, policy, hooks).await?;
    }
    let mut outcome = suite.outcome;
    outcome.report.requests = client.requests_sent() - sent_before;
    outcome.report.elapsed = started.elapsed();
    Ok(outcome)
}

/// Fresh tokens for `(org, user)` pairs (keys).
async fn actors(
    sessions: &mut Sessions,
    client: &Client,
    world: &World,
    pairs: &[(String, String)],
) -> Result<Vec<Actor>, AuditError> {
    let mut actors = Vec::new();
    for (org, user) in pairs {
        let token = sessions.token(world, user, Some(org)).await?;
        client.register_secret(&token);
        let org = world.org(org).cloned().ok_or_else(|| AuditError::Setup {
            resource: "rate_limit".into(),
            org: org.clone(),
            detail: "the provisioned world lacks this org".into(),
        })?;
        actors.push(Actor {
            label: format!("{user}@{}", org.key),
            org,
            token,
        });
    }
    Ok(actors)
}

fn world_spec(tag: &str) -> WorldSpec {
    let orgs = ORGS
        .iter()
        .map(|key| OrgSpec {
            key: (*key).into(),
            name: format!("RL {key} {tag}"),
            slug: format!("rl-{}-{tag}", key.replace('_', "-")),
        })
        .collect();
    let mut users = vec![UserSpec {
        key: "owner".into(),
        email: format!("rl-owner-{tag}@tenantry.invalid"),
        memberships: ORGS
            .iter()
            .map(|o| (o.to_string(), "org:admin".to_string()))
            .collect(),
    }];
    // RL-002's second org has its own admin: a limiter keyed on the user
    // must not pass for one keyed on the org there.
    users.push(UserSpec {
        key: "other".into(),
        email: format!("rl-other-{tag}@tenantry.invalid"),
        memberships: vec![("iso_b".into(), "org:admin".into())],
    });
    for m in MEMBERS {
        users.push(UserSpec {
            key: (*m).into(),
            email: format!("rl-{m}-{tag}@tenantry.invalid"),
            memberships: vec![("users".into(), "org:member".into())],
        });
    }
    WorldSpec { orgs, users }
}

/// An org whose name (and slug, when `hostile_slug`) holds `:`, `{`, `}`:
/// a limiter that builds keys by concatenation must still keep it apart.
fn hostile_spec(tag: &str, hostile_slug: bool) -> WorldSpec {
    WorldSpec {
        orgs: vec![OrgSpec {
            key: "hostile".into(),
            name: format!("rl:{{iso_a}}:{tag}"),
            slug: if hostile_slug {
                format!("rl:{{{tag}}}")
            } else {
                format!("rl-hostile-{tag}")
            },
        }],
        users: vec![UserSpec {
            key: "hostile_owner".into(),
            email: format!("rl-hostile-{tag}@tenantry.invalid"),
            memberships: vec![("hostile".into(), "org:admin".into())],
        }],
    }
}

/// A user with an org active.
#[derive(Debug, Clone)]
struct Actor {
    label: String,
    org: Org,
    token: String,
}

/// One exchange as the suite sees it.
#[derive(Debug, Clone)]
struct Sent {
    /// When it was sent, from the suite's start of the burst.
    at: Duration,
    reply: Reply,
}

impl Sent {
    fn admitted(&self) -> bool {
        (200..400).contains(&self.reply.status)
    }

    fn limited(&self) -> bool {
        self.reply.status == 429
    }
}

struct Suite {
    client: Client,
    placement: Placement,
    bases: Vec<String>,
    actors: Vec<Actor>,
    selected: Vec<&'static str>,
    outcome: Outcome,
    /// Whether the hostile org got its hostile slug (None: not provisioned).
    hostile_named: Option<bool>,
}

impl Suite {
    /// Whether `id` is selected; records that it ran.
    fn ran(&mut self, id: &'static str) -> bool {
        if !self.selected.contains(&id) {
            return false;
        }
        if !self.outcome.report.checks_run.contains(&id) {
            self.outcome.report.checks_run.push(id);
        }
        true
    }

    fn skip(&mut self, id: &'static str, reason: String) {
        if self.selected.contains(&id) && !self.outcome.skipped.iter().any(|(i, _)| *i == id) {
            self.outcome.skipped.push((id, reason));
        }
    }

    fn finding(&mut self, id: &str, policy: &LimitPolicy, message: String, evidence: Vec<String>) {
        if let Some(check) = catalogue::find(id) {
            self.outcome.report.findings.push(Finding {
                check,
                message: format!("policy {}: {message}", policy.name),
                evidence: evidence.into_iter().take(3).collect(),
                reproduction: None,
            });
        }
    }

    fn actor(&self, org: &str, user: &str) -> Option<Actor> {
        self.actors
            .iter()
            .find(|a| a.org.key == org && a.label.starts_with(&format!("{user}@")))
            .cloned()
    }

    /// `policy`'s request for `actor`, to instance `base` (an index into the
    /// profile's `base_urls`).
    fn request(&self, policy: &LimitPolicy, actor: &Actor, base: usize) -> Result<Request, AuditError> {
        let mut request = policy.request.render(&mut |name| match name {
            "org" => Some(actor.org.id.clone()),
            "org_slug" => Some(actor.org.slug.clone()),
            _ => None,
        })?;
        request.path = format!("{}{}", self.bases[base % self.bases.len()], request.path);
        Ok(self.placement.apply(request, &actor.token))
    }

    /// Sends `requests` all at once: last-byte synchronised, so they
    /// reach the target's handlers at one instant (over TLS, as
    /// concurrently as the client allows).
    async fn burst(&self, requests: Vec<Request>) -> Vec<Sent> {
        let replies = self.client.send_synchronized(requests).await;
        replies
            .into_iter()
            .map(|reply| Sent {
                at: Duration::ZERO,
                reply,
            })
            .collect()
    }

    /// Sends `request`, one at a time.
    async fn one(&self, request: Request) -> Reply {
        self.client.send(request).await
    }
}

/// The first exchange in `sent` that no limiter answers with — anything but
/// admitted or 429 — as a setup error (4xx: the profile's request is wrong)
/// or, for 5xx, returned for a finding.
fn odd(sent: &[Sent]) -> Option<&Sent> {
    sent.iter().find(|s| !s.admitted() && !s.limited())
}

fn admitted(sent: &[Sent]) -> usize {
    sent.iter().filter(|s| s.admitted()).count()
}

/// Waits `d`, which the suite keeps to about one declared window.
async fn sleep(d: Duration) {
    tokio::time::sleep(d).await;
}
