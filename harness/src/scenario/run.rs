//! Running a scenario against a target: provision its `given` world through
//! the session source, send each step as its actor, check the expectations,
//! and scan every answer with the canary oracle (every org id, every
//! `{{ canary }}` a step planted and every value captured from an org's own
//! answers belongs to that org).

use std::collections::HashMap;

use serde_json::Value;

use super::{Actor, CaptureSource, Forge, HeaderAssert, Item, JsonAssert, MembershipChange, Scenario, Step};
use crate::audit::request_text;
use crate::client::{Client, Reply, Request};
use crate::oracle::{CanarySource, NeedleKind, Oracle};
use crate::profile::Profile;
use crate::session::{SessionError, Sessions};
use crate::template::{self, RenderError};
use crate::tokens::catalogue::{self, echoes_marker, Material, REFLECT_MARKER};
use crate::tokens::listener::KeyUrlListener;
use crate::tokens::{AttackerKeys, Case, Delivery, Judge, RsaKey};
use crate::world::{OrgSpec, UserSpec, World, WorldSpec};

/// What a run knows of the target beyond its client and sessions.
#[derive(Default)]
pub struct Context {
    /// The target's profile: `{{ target.* }}` placeholders, and where
    /// `forge` steps find the JWKS.
    pub profile: Option<Profile>,
    /// The target's signing key, when the harness holds it: `forge` steps
    /// then also send re-signed cases (expired, no `sid`, foreign `azp`, …).
    pub signing_key: Option<RsaKey>,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("profile", &self.profile.as_ref().map(|p| &p.name))
            .field("signing_key", &self.signing_key.as_ref().map(|_| "[held]"))
            .finish()
    }
}

/// Why a scenario could not be run at all (as opposed to failing).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The world could not be provisioned.
    #[error("scenario {id}: could not set up its world: {source}")]
    Provision {
        /// Scenario id.
        id: String,
        /// Cause.
        source: SessionError,
    },
}

/// What one step did.
#[derive(Debug, Clone)]
pub struct StepOutcome {
    /// `given 1`, `step 3`.
    pub label: String,
    /// The step's name, or `METHOD path as actor`.
    pub title: String,
    /// What did not hold (empty: the step passed).
    pub failures: Vec<String>,
    /// The redacted exchange, when a request was sent.
    pub transcript: Option<String>,
}

/// What a scenario run found.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Scenario id.
    pub id: String,
    /// Every step, in order.
    pub steps: Vec<StepOutcome>,
}

impl Outcome {
    /// Whether every step held.
    pub fn passed(&self) -> bool {
        self.steps.iter().all(|s| s.failures.is_empty())
    }

    /// The steps that failed.
    pub fn failures(&self) -> impl Iterator<Item = &StepOutcome> {
        self.steps.iter().filter(|s| !s.failures.is_empty())
    }
}

/// Runs `scenario` against the target behind `client`, provisioning its
/// world through `sessions`. `seed` fixes the names and canaries the harness
/// chooses.
pub async fn run(
    scenario: &Scenario,
    sessions: &mut Sessions,
    client: &Client,
    seed: u64,
) -> Result<Outcome, RunError> {
    run_with(scenario, sessions, client, seed, &Context::default()).await
}

/// [`run`] with what else the harness knows of the target.
pub async fn run_with(
    scenario: &Scenario,
    sessions: &mut Sessions,
    client: &Client,
    seed: u64,
    context: &Context,
) -> Result<Outcome, RunError> {
    let mut canaries = CanarySource::new(seed ^ 0x7363_656e_6172_696f);
    let tag = canaries.canary()[4..12].to_string();
    let world = sessions
        .provision(&world_spec(scenario, &tag))
        .await
        .map_err(|source| RunError::Provision {
            id: scenario.id.clone(),
            source,
        })?;
    let mut oracle = Oracle::new();
    for org in &world.orgs {
        let _ = oracle.register(&org.id, &org.id, NeedleKind::Id, "organization");
    }
    let mut runner = Runner {
        client,
        sessions,
        world,
        oracle,
        canaries,
        captures: HashMap::new(),
        tokens: HashMap::new(),
        context,
        forgery: None,
    };
    let mut steps = Vec::new();
    for (i, step) in scenario.given.resources.iter().enumerate() {
        steps.push(runner.send(format!("given {}", i + 1), step).await);
    }
    for (i, item) in scenario.steps.iter().enumerate() {
        let label = format!("step {}", i + 1);
        steps.push(match item {
            Item::Send(step) => runner.send(label, step).await,
            Item::Membership(change) => runner.membership(label, change).await,
            Item::Wait(duration) => {
                tokio::time::sleep(*duration).await;
                StepOutcome {
                    label,
                    title: format!("wait {} ms", duration.as_millis()),
                    failures: Vec::new(),
                    transcript: None,
                }
            }
        });
    }
    Ok(Outcome {
        id: scenario.id.clone(),
        steps,
    })
}

/// The world `given` asks for; `tag` keeps names unique per run.
fn world_spec(scenario: &Scenario, tag: &str) -> WorldSpec {
    WorldSpec {
        orgs: scenario
            .given
            .orgs
            .iter()
            .map(|o| OrgSpec {
                key: o.key.clone(),
                name: o
                    .name
                    .clone()
                    .unwrap_or_else(|| format!("Scenario {} {tag}", o.key)),
                slug: format!("scn-{}-{tag}", o.key.to_ascii_lowercase().replace('_', "-")),
            })
            .collect(),
        users: scenario
            .given
            .users
            .iter()
            .map(|u| UserSpec {
                key: u.key.clone(),
                email: format!("{}-s{tag}@tenantry.invalid", u.key.to_ascii_lowercase()),
                memberships: u.memberships.clone(),
            })
            .collect(),
    }
}

struct Runner<'a> {
    client: &'a Client,
    sessions: &'a mut Sessions,
    world: World,
    oracle: Oracle,
    canaries: CanarySource,
    captures: HashMap<String, String>,
    /// Tokens by (user, org), dropped when the user's memberships change.
    tokens: HashMap<(String, Option<String>), String>,
    context: &'a Context,
    /// What `forge` steps build attack tokens from (made on first use).
    forgery: Option<Forgery>,
}

/// The attacker's side of `forge` steps: the target's JWKS, the attacker's
/// keys, and the listener that sees jku/x5u fetches.
struct Forgery {
    jwks: Value,
    attacker: AttackerKeys,
    listener: Option<KeyUrlListener>,
}

/// The org (or, for a personal account, the user) whose data a step may see.
fn owner_of(world: &World, actor: &Actor) -> String {
    match actor {
        Actor::Anonymous => "(anonymous)".into(),
        Actor::Member { org: Some(org), .. } => world.org(org).map_or_else(|| org.clone(), |o| o.id.clone()),
        Actor::Member { user, org: None } => world.user(user).map_or_else(|| user.clone(), |u| u.id.clone()),
    }
}

pub(super) fn actor_label(actor: &Actor) -> String {
    match actor {
        Actor::Anonymous => "anonymous".into(),
        Actor::Member { user, org: Some(org) } => format!("{user}@{org}"),
        Actor::Member { user, org: None } => user.clone(),
    }
}

impl Runner<'_> {
    /// A placeholder's value; `canary` plants a fresh one owned by `owner`.
    fn value(&mut self, name: &str, owner: Option<&str>) -> Option<String> {
        if name == "canary" {
            let owner = owner?;
            let canary = self.canaries.canary();
            let _ = self
                .oracle
                .register(&canary, owner, NeedleKind::Canary, "planted by a scenario step");
            return Some(canary);
        }
        let parts: Vec<&str> = name.split('.').collect();
        match parts.as_slice() {
            ["org", key, "id"] => self.world.org(key).map(|o| o.id.clone()),
            ["org", key, "slug"] => self.world.org(key).map(|o| o.slug.clone()),
            ["org", key, "name"] => self.world.org(key).map(|o| o.name.clone()),
            ["user", key, "id"] => self.world.user(key).map(|u| u.id.clone()),
            ["user", key, "email"] => self.world.user(key).map(|u| u.email.clone()),
            ["user", key, "password"] => self
                .world
                .user(key)
                .and(self.sessions.password())
                .map(String::from),
            ["target", "base_url"] => Some(self.client.base().to_string()),
            ["target", "instance", n] => {
                let n: usize = n.parse().ok()?;
                let profile = self.context.profile.as_ref();
                match profile.and_then(|p| p.rate_limit.as_ref()) {
                    Some(limits) => limits.base_urls.get(n).cloned(),
                    None if n == 0 => Some(self.client.base().to_string()),
                    None => None,
                }
            }
            _ => self.captures.get(name).cloned(),
        }
    }

    /// `text` with its placeholders filled (no canaries: expectations).
    fn fill(&mut self, text: &str) -> Result<String, RenderError> {
        template::fill(text, &mut |name| self.value(name, None))
    }

    async fn membership(&mut self, label: String, change: &MembershipChange) -> StepOutcome {
        let title = change.name.clone().unwrap_or_else(|| match &change.role {
            Some(role) => format!("{} becomes {role} in {}", change.user, change.org),
            None => format!("{} is removed from {}", change.user, change.org),
        });
        let member = self.world.role(&change.user, &change.org).is_some();
        let done = match (&change.role, member) {
            (None, _) => {
                self.sessions
                    .remove_member(&mut self.world, &change.user, &change.org)
                    .await
            }
            (Some(role), true) => {
                self.sessions
                    .set_role(&mut self.world, &change.user, &change.org, role)
                    .await
            }
            (Some(role), false) => {
                self.sessions
                    .add_member(&mut self.world, &change.user, &change.org, role)
                    .await
            }
        };
        self.tokens.retain(|(user, _), _| *user != change.user);
        StepOutcome {
            label,
            title,
            failures: done
                .err()
                .map(|e| vec![format!("the identity service refused the change: {e}")])
                .unwrap_or_default(),
            transcript: None,
        }
    }

    async fn token(&mut self, user: &str, org: Option<&str>) -> Result<String, SessionError> {
        let key = (user.to_string(), org.map(String::from));
        if let Some(token) = self.tokens.get(&key) {
            return Ok(token.clone());
        }
        let token = self.sessions.token(&self.world, user, org).await?;
        self.client.register_secret(&token);
        self.tokens.insert(key, token.clone());
        Ok(token)
    }

    async fn send(&mut self, label: String, step: &Step) -> StepOutcome {
        let actor = actor_label(&step.actor);
        let title = step
            .name
            .clone()
            .unwrap_or_else(|| format!("{} {} as {actor}", step.request.method, step.request.path));
        let mut outcome = StepOutcome {
            label,
            title,
            failures: Vec::new(),
            transcript: None,
        };
        let owner = owner_of(&self.world, &step.actor);
        let token = match &step.actor {
            Actor::Anonymous => None,
            Actor::Member { user, org } => match self.token(user, org.as_deref()).await {
                Ok(token) => Some(token),
                Err(e) => {
                    // A session the identity service will not issue (say, for
                    // an org the user was removed from) is a refusal.
                    let refusal_expected = step.expect.status.is_empty()
                        || step.expect.status.iter().any(|s| [401, 403, 404].contains(s));
                    if !refusal_expected {
                        outcome.failures.push(format!("no session for {actor}: {e}"));
                    }
                    return outcome;
                }
            },
        };
        let request = match step.request.render(&mut |name| self.value(name, Some(&owner))) {
            Ok(request) => request,
            Err(e) => {
                outcome.failures.push(format!(
                    "cannot build the request: {e} (did an earlier step fail to capture it?)"
                ));
                return outcome;
            }
        };
        if let (Some(forge), Some(token)) = (&step.forge, &token) {
            self.send_forged(step, forge, token, &owner, request, &mut outcome)
                .await;
            return outcome;
        }
        let request = match &token {
            Some(token) => self.sessions.placement().apply(request, token),
            None => request,
        };
        let sent = request_text(&request);
        let copies = step.concurrent.unwrap_or(1) as usize;
        let replies: Vec<Reply> = if copies > 1 {
            // Last-byte synchronised: the copies reach the target at one instant.
            self.client.send_synchronized(vec![request; copies]).await
        } else if step.expect.status.contains(&429) {
            // The step means to see the refusal: no waiting it out.
            vec![self.client.send(request).await]
        } else {
            vec![self.client.send_patiently(request).await]
        };
        // Captures first (from the first success, else the first answer):
        // the step's own expectations may use them.
        let first = replies
            .iter()
            .find(|r| (200..300).contains(&r.status))
            .unwrap_or(&replies[0]);
        outcome.transcript = Some(first.transcript.clone());
        self.capture(step, &owner, first, &mut outcome.failures);
        for (i, reply) in replies.iter().enumerate() {
            let mut failures = Vec::new();
            self.check(step, &owner, &sent, reply, &mut failures);
            if copies > 1 && !failures.is_empty() && outcome.failures.is_empty() {
                outcome.transcript = Some(reply.transcript.clone());
            }
            outcome.failures.extend(failures.into_iter().map(|f| {
                if copies > 1 {
                    format!("copy {} of {copies}: {f}", i + 1)
                } else {
                    f
                }
            }));
        }
        for count in &step.expect.count {
            let n = replies.iter().filter(|r| count.status.matches(r.status)).count() as u32;
            if n < count.min || n > count.max {
                let wanted = if count.min == count.max {
                    format!("{}", count.min)
                } else if count.max == u32::MAX {
                    format!("at least {}", count.min)
                } else {
                    format!("{}..={}", count.min, count.max)
                };
                let mut seen: Vec<(u16, usize)> = Vec::new();
                for r in &replies {
                    match seen.iter_mut().find(|(s, _)| *s == r.status) {
                        Some((_, n)) => *n += 1,
                        None => seen.push((r.status, 1)),
                    }
                }
                seen.sort();
                let seen: Vec<String> = seen.iter().map(|(s, n)| format!("{n}× {s}")).collect();
                outcome.failures.push(format!(
                    "{n} of {copies} answers are {}, expected {wanted} (answers: {})",
                    count.status,
                    seen.join(", ")
                ));
            }
        }
        outcome
    }

    /// A `forge` step: the request once per attack token built from the
    /// actor's own token; each answer must meet the expectations.
    async fn send_forged(
        &mut self,
        step: &Step,
        forge: &Forge,
        token: &str,
        owner: &str,
        request: Request,
        outcome: &mut StepOutcome,
    ) {
        let cases = match self.forged_cases(step, forge, token).await {
            Ok(cases) if cases.is_empty() => {
                outcome.failures.push(format!(
                    "`forge: {}`{} built no attack token (cases that need the target's signing key are built only when the harness holds it)",
                    forge.checks.join(", "),
                    forge.variant.as_ref().map(|v| format!(" (variant `{v}`)")).unwrap_or_default()
                ));
                return;
            }
            Ok(cases) => cases,
            Err(e) => {
                outcome.failures.push(format!("cannot forge tokens: {e}"));
                return;
            }
        };
        let mut any_transcript = None;
        for case in &cases {
            for t in case.tokens() {
                self.client.register_secret(t);
            }
            let request = match &case.delivery {
                Delivery::Token(t) => self.sessions.placement().apply(request.clone(), t),
                Delivery::Headers(headers) => headers
                    .iter()
                    .fold(request.clone(), |r, (k, v)| r.header(k, v.clone())),
            };
            let sent = request_text(&request);
            let reply = self.client.send_patiently(request).await;
            let mut failures = Vec::new();
            match case.judge {
                Judge::MustRefuse => self.check(step, owner, &sent, &reply, &mut failures),
                Judge::MustRefuseUnechoed => {
                    self.check(step, owner, &sent, &reply, &mut failures);
                    if echoes_marker(&reply) {
                        failures.push(format!(
                            "the answer echoes a claim of a token whose signature does not verify (`{REFLECT_MARKER}…`): claims are processed before the signature is checked"
                        ));
                    }
                }
                // Type fuzz over validly signed claims may be accepted; it
                // must never crash the server.
                Judge::NoServerError if reply.status >= 500 || reply.status == 0 => failures.push(format!(
                    "status {} (a token must never crash the server)",
                    reply.status
                )),
                Judge::NoServerError => {}
            }
            if !failures.is_empty() && outcome.transcript.is_none() {
                outcome.transcript = Some(reply.transcript.clone());
            }
            any_transcript.get_or_insert(reply.transcript);
            outcome.failures.extend(
                failures
                    .into_iter()
                    .map(|f| format!("{} ({}): {f}", case.check, case.variant)),
            );
        }
        if let Some(hits) = self
            .forgery
            .as_ref()
            .and_then(|f| f.listener.as_ref())
            .map(|l| l.hits())
        {
            if !hits.is_empty() {
                outcome.failures.push(format!(
                    "the target fetched the attacker's key URL(s): {}",
                    hits.join(", ")
                ));
            }
        }
        if outcome.transcript.is_none() {
            outcome.transcript = any_transcript;
        }
        outcome.title = format!(
            "{} ({} forged token{})",
            outcome.title,
            cases.len(),
            if cases.len() == 1 { "" } else { "s" }
        );
    }

    /// The attack tokens of `forge`'s checks for `token`.
    async fn forged_cases(&mut self, step: &Step, forge: &Forge, token: &str) -> Result<Vec<Case>, String> {
        if self.forgery.is_none() {
            let profile = self
                .context
                .profile
                .as_ref()
                .ok_or("the run was not given the target's profile (needed to find its JWKS)")?;
            let jwks = crate::tokens::jwks(profile, self.client, self.sessions)
                .await
                .map_err(|e| e.to_string())?;
            let attacker = tokio::task::spawn_blocking(AttackerKeys::generate)
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| e.to_string())?;
            let kid = crate::tokens::jwt::Jwt::parse(token)
                .map_err(|e| format!("the actor's session token: {e}"))?
                .kid()
                .unwrap_or_default()
                .to_string();
            let listener = KeyUrlListener::start(attacker.jwks_as(&kid), attacker.certificate_pem())
                .await
                .ok();
            self.forgery = Some(Forgery {
                jwks,
                attacker,
                listener,
            });
        }
        let forgery = self.forgery.as_ref().expect("made above");
        // TOK-023 moves the token to another org of the world.
        let own = match &step.actor {
            Actor::Member { org: Some(org), .. } => Some(org.as_str()),
            _ => None,
        };
        let foreign = self
            .world
            .orgs
            .iter()
            .find(|o| Some(o.key.as_str()) != own)
            .map(|o| (o.id.as_str(), o.slug.as_str()));
        let material = Material {
            token,
            jwks: &forgery.jwks,
            attacker: &forgery.attacker,
            signing_key: self.context.signing_key.as_ref(),
            key_urls: forgery.listener.as_ref(),
            foreign_org: foreign,
            now: crate::tokens::now_secs(),
        };
        let mut cases = catalogue::build(&material).map_err(|e| e.to_string())?;
        cases.retain(|case| {
            forge.checks.iter().any(|selector| {
                crate::checks::matching(selector)
                    .iter()
                    .any(|c| c.id == case.check)
            }) && forge
                .variant
                .as_ref()
                .is_none_or(|v| case.variant.contains(v.as_str()))
        });
        Ok(cases)
    }

    fn check(&mut self, step: &Step, owner: &str, sent: &str, reply: &Reply, failures: &mut Vec<String>) {
        let expect = &step.expect;
        if reply.status == 0 {
            failures.push("the target did not answer".into());
            return;
        }
        if !expect.status.is_empty() && !expect.status.contains(&reply.status) {
            let wanted: Vec<String> = expect.status.iter().map(u16::to_string).collect();
            failures.push(format!(
                "status {}, expected {}",
                reply.status,
                wanted.join(" or ")
            ));
        } else if expect.status.is_empty() && reply.status >= 500 {
            failures.push(format!(
                "status {} (a request must never crash the server)",
                reply.status
            ));
        }
        if expect.no_foreign_data {
            for leak in self
                .oracle
                .scan(owner, &reply.scan_text())
                .into_iter()
                .filter(|l| !sent.contains(l.needle.as_str()))
            {
                failures.push(format!(
                    "the answer holds {} {} of another org ({}, {}): …{}…",
                    match leak.owner.kind {
                        NeedleKind::Canary => "canary",
                        NeedleKind::Id => "id",
                    },
                    leak.needle,
                    leak.owner.org,
                    leak.owner.resource,
                    leak.excerpt
                ));
            }
        }
        let body = String::from_utf8_lossy(&reply.body).into_owned();
        for (needle, wanted) in expect
            .body_contains
            .iter()
            .map(|n| (n, true))
            .chain(expect.body_not_contains.iter().map(|n| (n, false)))
        {
            match self.fill(needle) {
                Ok(text) if body.contains(&text) != wanted => failures.push(format!(
                    "the body {} `{needle}` ({text})",
                    if wanted { "does not contain" } else { "contains" }
                )),
                Ok(_) => {}
                Err(e) => failures.push(format!("cannot check `{needle}`: {e}")),
            }
        }
        let json = reply.json();
        for (path, assertion) in &expect.json {
            let Ok(compiled) = serde_json_path::JsonPath::parse(path) else {
                failures.push(format!("invalid JSON path `{path}`"));
                continue;
            };
            let nodes: Vec<&Value> = compiled.query(&json).all();
            match assertion {
                JsonAssert::Exists(wanted) => {
                    if nodes.is_empty() == *wanted {
                        failures.push(format!(
                            "`{path}` {}",
                            if *wanted {
                                "selects nothing"
                            } else {
                                "selects something"
                            }
                        ));
                    }
                }
                JsonAssert::Length(n) => match nodes.as_slice() {
                    [Value::Array(items)] if items.len() == *n => {}
                    [Value::Array(items)] => {
                        failures.push(format!("`{path}` has {} entries, expected {n}", items.len()))
                    }
                    _ => failures.push(format!("`{path}` does not select one array")),
                },
                JsonAssert::Equals(expected) => {
                    let expected = match template::fill_json(expected, &mut |name| self.value(name, None)) {
                        Ok(v) => v,
                        Err(e) => {
                            failures.push(format!("cannot check `{path}`: {e}"));
                            continue;
                        }
                    };
                    let found = match nodes.as_slice() {
                        [one] => (*one).clone(),
                        many => Value::Array(many.iter().map(|v| (*v).clone()).collect()),
                    };
                    if found != expected {
                        failures.push(format!("`{path}` is {found}, expected {expected}"));
                    }
                }
            }
        }
        for (name, assertion) in &expect.headers {
            let value = reply.header(name);
            match assertion {
                HeaderAssert::Present(wanted) => {
                    if value.is_some() != *wanted {
                        failures.push(format!(
                            "header `{name}` is {}",
                            if *wanted { "missing" } else { "present" }
                        ));
                    }
                }
                HeaderAssert::Equals(expected) => match self.fill(expected) {
                    Ok(expected) if value == Some(expected.as_str()) => {}
                    Ok(expected) => failures.push(format!(
                        "header `{name}` is {}, expected `{expected}`",
                        value.map_or_else(|| "missing".to_string(), |v| format!("`{v}`"))
                    )),
                    Err(e) => failures.push(format!("cannot check header `{name}`: {e}")),
                },
            }
        }
    }

    /// Captures from the answer; values from a successful answer are the
    /// actor's org's own (so the oracle knows them).
    fn capture(&mut self, step: &Step, owner: &str, reply: &Reply, failures: &mut Vec<String>) {
        if step.capture.is_empty() {
            return;
        }
        let json = reply.json();
        for (name, capture) in &step.capture {
            let found = match &capture.source {
                CaptureSource::Json(path) => serde_json_path::JsonPath::parse(path)
                    .ok()
                    .and_then(|p| p.query(&json).first().cloned())
                    .and_then(|node| match node {
                        Value::String(s) => Some(s),
                        Value::Null => None,
                        other => Some(other.to_string()),
                    }),
                CaptureSource::Header(header) => reply.header(header).map(String::from),
            };
            let where_ = match &capture.source {
                CaptureSource::Json(path) => format!("`{path}`"),
                CaptureSource::Header(header) => format!("header `{header}`"),
            };
            let Some(mut value) = found else {
                failures.push(format!("capture `{name}`: {where_} selects nothing"));
                continue;
            };
            if let Some(param) = &capture.query {
                match query_param(&value, param) {
                    Some(v) => value = v,
                    None => {
                        failures.push(format!(
                            "capture `{name}`: the URL in {where_} has no query parameter `{param}`"
                        ));
                        continue;
                    }
                }
            }
            if (200..400).contains(&reply.status) && matches!(step.actor, Actor::Member { .. }) {
                let _ = self
                    .oracle
                    .register(&value, owner, NeedleKind::Id, &format!("captured as {name}"));
            }
            self.captures.insert(name.clone(), value);
        }
    }
}

/// The first value of query parameter `name` in `url` (percent-decoded).
fn query_param(url: &str, name: &str) -> Option<String> {
    let query = url.split_once('?')?.1;
    let query = query.split('#').next().unwrap_or_default();
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (decode_component(k) == name).then(|| decode_component(v))
    })
}

/// A form-encoded component: `+` is a space, `%XX` a byte.
fn decode_component(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() && text.is_char_boundary(i + 3) => {
                match u8::from_str_radix(&text[i + 1..i + 3], 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
