//! Running a scenario against a target: provision its `given` world through
//! the session source, send each step as its actor, check the expectations,
//! and scan every answer with the canary oracle (every org id, every
//! `{{ canary }}` a step planted and every value captured from an org's own
//! answers belongs to that org).

use std::collections::HashMap;

use serde_json::Value;

use super::{Actor, HeaderAssert, Item, JsonAssert, MembershipChange, Scenario, Step};
use crate::audit::request_text;
use crate::client::{Client, Reply};
use crate::oracle::{CanarySource, NeedleKind, Oracle};
use crate::session::{SessionError, Sessions};
use crate::template::{self, RenderError};
use crate::world::{OrgSpec, UserSpec, World, WorldSpec};

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
}

/// The org (or, for a personal account, the user) whose data a step may see.
fn owner_of(world: &World, actor: &Actor) -> String {
    match actor {
        Actor::Anonymous => "(anonymous)".into(),
        Actor::Member { org: Some(org), .. } => world.org(org).map_or_else(|| org.clone(), |o| o.id.clone()),
        Actor::Member { user, org: None } => world.user(user).map_or_else(|| user.clone(), |u| u.id.clone()),
    }
}

fn actor_label(actor: &Actor) -> String {
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
        let request = match &token {
            Some(token) => self.sessions.placement().apply(request, token),
            None => request,
        };
        let sent = request_text(&request);
        let reply = self.client.send_patiently(request).await;
        outcome.transcript = Some(reply.transcript.clone());
        // Captures first: the step's own expectations may use them.
        self.capture(step, &owner, &reply, &mut outcome.failures);
        self.check(step, &owner, &sent, &reply, &mut outcome.failures);
        outcome
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
        for (name, path) in &step.capture {
            let node = serde_json_path::JsonPath::parse(path)
                .ok()
                .and_then(|p| p.query(&json).first().cloned());
            let value = match node {
                Some(Value::String(s)) => s,
                Some(Value::Null) | None => {
                    failures.push(format!("capture `{name}`: `{path}` selects nothing"));
                    continue;
                }
                Some(other) => other.to_string(),
            };
            if (200..300).contains(&reply.status) && matches!(step.actor, Actor::Member { .. }) {
                let _ = self
                    .oracle
                    .register(&value, owner, NeedleKind::Id, &format!("captured as {name}"));
            }
            self.captures.insert(name.clone(), value);
        }
    }
}
