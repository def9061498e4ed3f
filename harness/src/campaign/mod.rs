//! Campaigns: model-based action sequences against the target. proptest
//! generates sequences of actions ([`model::Action`]: create, read, update,
//! delete, list, search, nested create, export, cached reads, org switch,
//! membership removal, role change, forged org parameters) that respect the
//! model's preconditions; the executor sends each action's requests as the
//! acting user, scans every response with the canary oracle and compares the
//! status with the model's prediction. A failing sequence is shrunk by
//! proptest-state-machine (fewer actions, simpler ones) to a minimal one,
//! which becomes a scenario file that reproduces the finding on its own.
//!
//! Deterministic for a seed (the target's own ids aside). Needs a
//! multi-threaded tokio runtime (proptest drives the sequence synchronously;
//! each action blocks on the runtime).

pub mod model;
mod repro;

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestError, TestRng, TestRunner};
use proptest_state_machine::ReferenceStateMachine;
use serde_json::Value;

use crate::audit::{AuditError, Progress};
use crate::checks::{self, Check};
use crate::client::{Client, Reply, Request};
use crate::oracle::{CanarySource, NeedleKind, Oracle};
use crate::profile::Profile;
use crate::scenario::Scenario;
use crate::session::Sessions;
use crate::world::{OrgSpec, UserSpec, World, WorldSpec};

pub use model::Cast;
use model::{Action, Encoding, Model, Position, ResourceShape, Shape, State};
pub use repro::Repro;

/// How long and how hard a campaign runs.
#[derive(Debug, Clone)]
pub struct CampaignConfig {
    /// Sequences to try.
    pub cases: u32,
    /// Longest sequence.
    pub max_actions: usize,
    /// Stop starting new sequences after this long (shrinking a failure
    /// still completes).
    pub budget: Duration,
    /// Seed.
    pub seed: u64,
    /// Most shrink steps per failure.
    pub max_shrink_iters: u32,
}

impl Default for CampaignConfig {
    fn default() -> Self {
        Self {
            cases: 24,
            max_actions: 24,
            budget: Duration::from_secs(60),
            seed: 0,
            max_shrink_iters: 256,
        }
    }
}

/// A failure found by a campaign, shrunk.
#[derive(Debug, Clone)]
pub struct CampaignFinding {
    /// The check it is reported under.
    pub check: &'static Check,
    /// What went wrong.
    pub message: String,
    /// Redacted transcripts.
    pub evidence: Vec<String>,
    /// The minimal action sequence, for people.
    pub actions: Vec<String>,
    /// The reproduction, as a scenario.
    pub scenario: Scenario,
    /// Whether the minimal sequence failed again when replayed alone.
    pub reproduced: bool,
}

/// What a campaign did.
#[derive(Debug, Default)]
pub struct CampaignReport {
    /// Sequences run (shrink runs included).
    pub sequences: u64,
    /// Actions executed.
    pub actions: u64,
    /// Findings (one per failing search, shrunk).
    pub findings: Vec<CampaignFinding>,
    /// The world the campaign ran in (drawn from the seed).
    pub cast: Cast,
}

/// The campaign's world for `seed`, from [`model::cast_strategy`].
pub fn draw_cast(seed: u64) -> Cast {
    let mut bytes = [0u8; 32];
    bytes[..8].copy_from_slice(&seed.to_le_bytes());
    bytes[8..13].copy_from_slice(b"world");
    let mut runner = TestRunner::new_with_rng(
        Config::default(),
        TestRng::from_seed(RngAlgorithm::ChaCha, &bytes),
    );
    use proptest::strategy::{Strategy, ValueTree};
    model::cast_strategy()
        .new_tree(&mut runner)
        .map(|tree| tree.current())
        .unwrap_or_default()
}

/// The target's shape as the model sees it.
fn shape(profile: &Profile, cast: Cast) -> Shape {
    let resources = profile
        .resources
        .iter()
        .map(|r| ResourceShape {
            parent: r
                .parent
                .as_ref()
                .and_then(|p| profile.resources.iter().position(|x| &x.name == p)),
            read: r.read.is_some(),
            update: r.update.is_some(),
            delete: r.delete.is_some(),
            list: r.list.is_some(),
            search: r.search.is_some(),
            admin_delete: r.admin_only.iter().any(|a| a == "delete"),
        })
        .collect();
    let org = &profile.org;
    let mut positions = Vec::new();
    positions.extend((0..org.routes.len().min(2)).map(Position::Route));
    positions.extend((0..org.query.len().min(2)).map(Position::Query));
    positions.extend((0..org.headers.len().min(2)).map(Position::Header));
    positions.extend((0..org.cookies.len().min(1)).map(Position::Cookie));
    positions.extend((0..org.json.len().min(2)).map(Position::Json));
    Shape {
        resources,
        jobs: profile.jobs.len(),
        cached: profile.cached.len(),
        positions,
        cast,
    }
}

/// The campaign's world for `cast`.
fn world_spec(cast: &Cast, tag: &str) -> WorldSpec {
    WorldSpec {
        orgs: cast
            .orgs
            .iter()
            .map(|k| OrgSpec {
                key: k.to_string(),
                name: format!("Campaign {} {tag}", k.to_uppercase()),
                slug: format!("campaign-{k}-{tag}"),
            })
            .collect(),
        users: cast
            .users
            .iter()
            .map(|(name, memberships)| UserSpec {
                key: name.to_string(),
                email: format!("{name}-c{tag}@tenantry.invalid"),
                memberships: memberships
                    .iter()
                    .map(|(o, admin)| (cast.orgs[*o].clone(), role_name(*admin).to_string()))
                    .collect(),
            })
            .collect(),
    }
}

fn role_name(admin: bool) -> &'static str {
    if admin {
        "org:admin"
    } else {
        "org:member"
    }
}

/// An item as it exists at the target.
#[derive(Debug, Clone)]
struct RealItem {
    id: String,
    canaries: Vec<String>,
}

/// A disagreement with the model or a leak.
#[derive(Debug, Clone)]
struct Failure {
    check: &'static str,
    message: String,
    evidence: Vec<String>,
}

struct Executor<'a> {
    /// The world's orgs and users.
    cast: Cast,
    profile: &'a Profile,
    client: Client,
    sessions: &'a mut Sessions,
    world: World,
    initial: World,
    oracle: Oracle,
    canaries: CanarySource,
    tokens: HashMap<(usize, usize), String>,
    started: Instant,
    budget: Duration,
    sequences: u64,
    actions: u64,
    /// The steps of the sequence being run, for the reproduction.
    repro: Repro,
}

/// Runs a campaign against `profile` (the world is provisioned through
/// `sessions`). `progress` hears after every sequence.
pub async fn run(
    profile: &Profile,
    client: &Client,
    sessions: &mut Sessions,
    config: &CampaignConfig,
    progress: &mut dyn FnMut(&Progress),
) -> Result<CampaignReport, AuditError> {
    if tokio::runtime::Handle::current().runtime_flavor() != tokio::runtime::RuntimeFlavor::MultiThread {
        return Err(AuditError::Unreachable(
            "campaigns need a multi-threaded tokio runtime".into(),
        ));
    }
    let mut canaries = CanarySource::new(config.seed ^ 0x6361_6d70_6169_676e);
    let tag = canaries.canary()[4..12].to_string();
    let cast = draw_cast(config.seed);
    let world = sessions.provision(&world_spec(&cast, &tag)).await?;
    let mut oracle = Oracle::new();
    for org in &world.orgs {
        let _ = oracle.register(&org.id, &org.id, NeedleKind::Id, "organization");
    }
    let shape = Arc::new(shape(profile, cast.clone()));
    let executor = RefCell::new(Executor {
        profile,
        client: client.clone(),
        sessions,
        initial: world.clone(),
        world,
        oracle,
        canaries,
        tokens: HashMap::new(),
        started: Instant::now(),
        budget: config.budget,
        sequences: 0,
        actions: 0,
        repro: Repro::new(profile, &cast),
        cast: cast.clone(),
    });
    let handle = tokio::runtime::Handle::current();
    let progress = RefCell::new(progress);
    let mut report = CampaignReport {
        cast: cast.clone(),
        ..CampaignReport::default()
    };
    let mut found: Vec<&'static str> = Vec::new();
    // A few searches: each stops at its first failure; the next one goes on
    // with another seed, ignoring checks already reported.
    for round in 0..3u64 {
        let mut seed = [0u8; 32];
        seed[..8].copy_from_slice(&config.seed.to_le_bytes());
        seed[8..16].copy_from_slice(&round.to_le_bytes());
        let proptest_config = Config {
            cases: config.cases,
            max_shrink_iters: config.max_shrink_iters,
            failure_persistence: None,
            max_global_rejects: 10_000,
            ..Config::default()
        };
        let mut runner =
            TestRunner::new_with_rng(proptest_config, TestRng::from_seed(RngAlgorithm::ChaCha, &seed));
        let strategy = Model::sequential_strategy(1..=config.max_actions.max(1));
        let ignore = found.clone();
        let cases = config.cases as u64;
        let outcome = model::with_shape(shape.clone(), || {
            tokio::task::block_in_place(|| {
                runner
                    .run(&strategy, |(state, actions, seen)| {
                        let mut exec = executor.borrow_mut();
                        if exec.started.elapsed() > exec.budget {
                            return Ok(());
                        }
                        let result = handle.block_on(exec.sequence(&state, &actions, seen.as_ref()));
                        let done = exec.sequences;
                        drop(exec);
                        (progress.borrow_mut())(&Progress {
                            done: done.min(cases * 3),
                            total: cases * 3,
                            label: format!("campaign: {} sequences", done),
                        });
                        match result {
                            Err(f) if !ignore.contains(&f.check) => {
                                Err(TestCaseError::fail(format!("{}: {}", f.check, f.message)))
                            }
                            _ => Ok(()),
                        }
                    })
                    .map_err(Box::new)
            })
        });
        match outcome.map_err(|e| *e) {
            Ok(()) => {}
            Err(TestError::Fail(reason, (state, actions, _))) => {
                // Replay the minimal sequence once more to capture its steps.
                let mut exec = executor.borrow_mut();
                let result = model::with_shape(shape.clone(), || {
                    tokio::task::block_in_place(|| handle.block_on(exec.sequence(&state, &actions, None)))
                });
                let (failure, reproduced) = match result {
                    Err(failure) => (failure, true),
                    // The target kept state between sequences (a warm
                    // cache, say): report what was seen while searching.
                    Ok(()) => (
                        Failure {
                            check: leaked_check(&reason),
                            message: reason.to_string(),
                            evidence: Vec::new(),
                        },
                        false,
                    ),
                };
                found.push(failure.check);
                let check = checks::find(failure.check).unwrap_or(&checks::CHECKS[0]);
                let scenario = exec.repro.scenario(check, config.seed, &failure.message);
                report.findings.push(CampaignFinding {
                    check,
                    message: failure.message,
                    evidence: failure.evidence,
                    actions: actions.iter().map(|a| format!("{a:?}")).collect(),
                    scenario,
                    reproduced,
                });
            }
            Err(TestError::Abort(reason)) => {
                return Err(AuditError::Unreachable(format!("the campaign stopped: {reason}")));
            }
        }
        if executor.borrow().started.elapsed() > config.budget {
            break;
        }
    }
    let exec = executor.into_inner();
    report.sequences = exec.sequences;
    report.actions = exec.actions;
    Ok(report)
}

impl Executor<'_> {
    /// Puts memberships back as the world began and forgets tokens.
    async fn reset(&mut self) -> Result<(), AuditError> {
        let initial = self.initial.clone();
        for user in &initial.users {
            let now: Vec<(String, String)> = self
                .world
                .user(&user.key)
                .map(|u| u.memberships.clone())
                .unwrap_or_default();
            for (org, role) in &user.memberships {
                match now.iter().find(|(o, _)| o == org) {
                    None => {
                        self.sessions
                            .add_member(&mut self.world, &user.key, org, role)
                            .await?
                    }
                    Some((_, r)) if r != role => {
                        self.sessions
                            .set_role(&mut self.world, &user.key, org, role)
                            .await?
                    }
                    _ => {}
                }
            }
        }
        self.tokens.clear();
        Ok(())
    }

    async fn token(&mut self, user: usize, org: usize) -> Result<String, AuditError> {
        if let Some(t) = self.tokens.get(&(user, org)) {
            return Ok(t.clone());
        }
        let t = self
            .sessions
            .token(&self.world, self.cast.user(user), Some(self.cast.org(org)))
            .await?;
        self.tokens.insert((user, org), t.clone());
        Ok(t)
    }

    fn org_id(&self, org: usize) -> (String, String) {
        self.world
            .org(self.cast.org(org))
            .map(|o| (o.id.clone(), o.slug.clone()))
            .unwrap_or_default()
    }

    /// Runs one sequence from a fresh membership state.
    async fn sequence(
        &mut self,
        init: &State,
        actions: &[Action],
        seen: Option<&Arc<AtomicUsize>>,
    ) -> Result<(), Failure> {
        self.sequences += 1;
        self.repro.clear();
        // Each sequence sees only its own data: what earlier sequences left
        // behind (in lists, caches) is not evidence about this one, so a
        // shrunk sequence stands on its own.
        self.oracle = Oracle::new();
        for org in &self.world.orgs {
            let _ = self
                .oracle
                .register(&org.id, &org.id, NeedleKind::Id, "organization");
        }
        if let Err(e) = self.reset().await {
            return Err(Failure {
                check: "SES-003",
                message: format!("could not restore the campaign world: {e}"),
                evidence: Vec::new(),
            });
        }
        let mut state = init.clone();
        let mut items: Vec<Option<RealItem>> = Vec::new();
        for action in actions {
            if let Some(seen) = seen {
                seen.fetch_add(1, Ordering::SeqCst);
            }
            if !Model::preconditions(&state, action) {
                continue;
            }
            self.actions += 1;
            self.act(&state, action, &mut items).await?;
            state = Model::apply(state, action);
        }
        Ok(())
    }

    /// Sends `request` as `user` in `org` and scans the answer.
    async fn exchange(
        &mut self,
        check: &'static str,
        user: usize,
        org: usize,
        request: Request,
    ) -> Result<Reply, Failure> {
        let token = self.token(user, org).await.map_err(|e| Failure {
            check,
            message: format!(
                "no token for {}@{}: {e}",
                self.cast.user(user),
                self.cast.org(org)
            ),
            evidence: Vec::new(),
        })?;
        let request = self.sessions.placement().apply(request, &token);
        let reply = self.client.send_patiently(request.clone()).await;
        let actor = format!("{}@{}", self.cast.user(user), self.cast.org(org));
        if reply.status >= 500 || reply.status == 0 {
            return Err(Failure {
                check,
                message: format!(
                    "{} {} as {actor} answered {}",
                    request.method, request.path, reply.status
                ),
                evidence: vec![reply.transcript],
            });
        }
        let (own, _) = self.org_id(org);
        let sent = crate::audit::request_text(&request);
        if let Some(leak) = self
            .oracle
            .scan(&own, &reply.scan_text())
            .into_iter()
            .find(|l| !sent.contains(l.needle.as_str()))
        {
            let check = leak
                .owner
                .resource
                .strip_prefix("forged ")
                .and_then(|rest| checks::find(rest.split(' ').next().unwrap_or_default()))
                .map_or(check, |c| c.id);
            return Err(Failure {
                check,
                message: format!(
                    "the response to {} {} for {actor} contains {} {} of org {} ({})",
                    request.method,
                    request.path,
                    match leak.owner.kind {
                        NeedleKind::Canary => "canary",
                        NeedleKind::Id => "id",
                    },
                    leak.needle,
                    leak.owner.org,
                    leak.owner.resource
                ),
                evidence: vec![reply.transcript],
            });
        }
        Ok(reply)
    }

    /// Fails unless `reply.status` is one of `allowed`.
    fn expect(&self, check: &'static str, what: &str, reply: &Reply, allowed: &[u16]) -> Result<(), Failure> {
        if allowed.contains(&reply.status) {
            Ok(())
        } else {
            Err(Failure {
                check,
                message: format!(
                    "{what}: answered {}, the model expects {:?}",
                    reply.status, allowed
                ),
                evidence: vec![reply.transcript.clone()],
            })
        }
    }

    /// Fills a profile template for `org`.
    fn render(
        &mut self,
        template: &crate::template::RequestTemplate,
        org: usize,
        org_override: Option<(String, String)>,
        (id, parent, q): (Option<&str>, Option<&str>, Option<&str>),
        written: &mut Vec<String>,
    ) -> Result<Request, Failure> {
        let (org_id, org_slug) = org_override.unwrap_or_else(|| self.org_id(org));
        let canaries = &mut self.canaries;
        template
            .render(&mut |name| match name {
                "org" => Some(org_id.clone()),
                "org_slug" => Some(org_slug.clone()),
                "canary" => {
                    let c = canaries.canary();
                    written.push(c.clone());
                    Some(c)
                }
                "id" => id.map(String::from),
                "parent" => parent.map(String::from),
                "q" => q.map(String::from),
                _ => None,
            })
            .map_err(|e| Failure {
                check: "ISO-004",
                message: format!("profile template: {e}"),
                evidence: Vec::new(),
            })
    }

    async fn act(
        &mut self,
        state: &State,
        action: &Action,
        items: &mut Vec<Option<RealItem>>,
    ) -> Result<(), Failure> {
        let check = action.check();
        let profile = self.profile;
        match *action {
            Action::Create {
                user,
                resource,
                parent,
            } => {
                let Some(org) = state.acting_org(user) else {
                    return Ok(());
                };
                let r = &profile.resources[resource];
                let parent_real = parent.and_then(|p| items.get(p).cloned().flatten());
                if parent.is_some() && parent_real.is_none() {
                    // The parent was never created at the target: the model
                    // still counts an item, which stays unknown.
                    if parent.is_some_and(|p| state.items[p].org == org && !state.items[p].gone) {
                        items.push(None);
                    }
                    return Ok(());
                }
                let mut written = Vec::new();
                let request = self.render(
                    &r.create,
                    org,
                    None,
                    (None, parent_real.as_ref().map(|p| p.id.as_str()), None),
                    &mut written,
                )?;
                let ok = parent.is_none_or(|p| state.items[p].org == org && !state.items[p].gone);
                self.repro.create(user, org, resource, parent, items.len(), ok);
                let reply = self.exchange(check, user, org, request).await?;
                let (own, _) = self.org_id(org);
                if ok {
                    self.expect(
                        check,
                        &format!(
                            "create {} as {}@{}",
                            r.name,
                            self.cast.user(user),
                            self.cast.org(org)
                        ),
                        &reply,
                        &[200, 201],
                    )?;
                    let body = reply.json();
                    let id = body.pointer(&r.id_pointer).and_then(|v| match v {
                        Value::String(s) => Some(s.clone()),
                        Value::Number(n) => Some(n.to_string()),
                        _ => None,
                    });
                    let Some(id) = id else {
                        return Err(Failure {
                            check,
                            message: format!("create {} answered without an id at {}", r.name, r.id_pointer),
                            evidence: vec![reply.transcript],
                        });
                    };
                    for c in &written {
                        let _ =
                            self.oracle
                                .register(c, &own, NeedleKind::Canary, &format!("{} {id}", r.name));
                    }
                    let _ = self
                        .oracle
                        .register(&id, &own, NeedleKind::Id, &format!("{} {id}", r.name));
                    let canary_path = written.first().and_then(|c| repro::json_path_to(&body, c));
                    self.repro.created(items.len(), canary_path);
                    items.push(Some(RealItem {
                        id,
                        canaries: written,
                    }));
                } else {
                    // Under a foreign or deleted parent: refused; anything it
                    // wrote belongs to the actor's org.
                    for c in &written {
                        let _ = self.oracle.register(
                            c,
                            &own,
                            NeedleKind::Canary,
                            &format!("written by {}", self.cast.user(user)),
                        );
                    }
                    self.expect(
                        check,
                        &format!("create {} under another org's or a deleted parent", r.name),
                        &reply,
                        &[403, 404],
                    )?;
                }
            }
            Action::Read { user, item }
            | Action::Update { user, item }
            | Action::Delete { user, item }
            | Action::Search { user, item } => {
                let Some(org) = state.acting_org(user) else {
                    return Ok(());
                };
                let Some(real) = items.get(item).cloned().flatten() else {
                    return Ok(());
                };
                let model_item = &state.items[item];
                let r = &profile.resources[model_item.resource];
                let own = model_item.org == org;
                let live = !model_item.gone;
                let who = format!("{}@{}", self.cast.user(user), self.cast.org(org));
                let parent_id = model_item
                    .parent
                    .and_then(|p| items.get(p).cloned().flatten())
                    .map(|p| p.id);
                let mut written = Vec::new();
                let (template, allowed, what): (_, Vec<u16>, String) = match action {
                    Action::Read { .. } => (
                        r.read.clone(),
                        if own && live {
                            vec![200]
                        } else if own {
                            vec![404]
                        } else {
                            vec![403, 404]
                        },
                        format!("read {} {} as {who}", r.name, real.id),
                    ),
                    Action::Update { .. } => (
                        r.update.clone(),
                        if own && live {
                            vec![200]
                        } else if own {
                            vec![404]
                        } else {
                            vec![403, 404]
                        },
                        format!("update {} {} as {who}", r.name, real.id),
                    ),
                    Action::Delete { .. } => {
                        let admin = state.role(user, org) == Some(true);
                        let admin_only = r.admin_only.iter().any(|a| a == "delete");
                        // A role check may come before or after the lookup.
                        let allowed = if !own || (!live && admin_only && !admin) {
                            vec![403, 404]
                        } else if !live {
                            vec![404]
                        } else if admin_only && !admin {
                            vec![403]
                        } else {
                            vec![200, 204]
                        };
                        (
                            r.delete.clone(),
                            allowed,
                            format!("delete {} {} as {who}", r.name, real.id),
                        )
                    }
                    _ => (
                        r.search.clone(),
                        vec![200],
                        format!("search {}'s canary as {who}", real.id),
                    ),
                };
                let Some(template) = template else { return Ok(()) };
                let q = real.canaries.first().cloned();
                let request = self.render(
                    &template,
                    org,
                    None,
                    (Some(&real.id), parent_id.as_deref(), q.as_deref()),
                    &mut written,
                )?;
                let (own_org, _) = self.org_id(org);
                for c in &written {
                    let _ = self.oracle.register(
                        c,
                        &own_org,
                        NeedleKind::Canary,
                        &format!("written by {}", self.cast.user(user)),
                    );
                }
                let contains: Vec<String> = match action {
                    Action::Read { .. } if own && live => real.canaries.clone(),
                    Action::Search { .. } if own && live => vec![real.id.clone()],
                    _ => Vec::new(),
                };
                self.repro.item_action(
                    action,
                    org,
                    model_item.resource,
                    item,
                    model_item.parent,
                    &allowed,
                    !contains.is_empty(),
                );
                let reply = self.exchange(check, user, org, request).await?;
                self.expect(check, &what, &reply, &allowed)?;
                let text = String::from_utf8_lossy(&reply.body);
                if let Some(missing) = contains.iter().find(|c| !text.contains(c.as_str())) {
                    return Err(Failure {
                        check,
                        message: format!("{what}: the answer lacks {missing}, which the model expects"),
                        evidence: vec![reply.transcript],
                    });
                }
                if matches!(action, Action::Update { .. }) && own && live {
                    // The item now carries what the update wrote and what it
                    // did not overwrite, as far as the answer shows.
                    let body = reply.json();
                    let text = body.to_string();
                    let mut now: Vec<String> = real
                        .canaries
                        .iter()
                        .chain(&written)
                        .filter(|c| text.contains(c.as_str()))
                        .cloned()
                        .collect();
                    if now.is_empty() {
                        now = written.clone();
                    }
                    let path = now.first().and_then(|c| repro::json_path_to(&body, c));
                    self.repro.recapture(item, path);
                    if let Some(Some(slot)) = items.get_mut(item) {
                        slot.canaries = now;
                    }
                }
            }
            Action::List {
                user,
                resource,
                parent,
            } => {
                let Some(org) = state.acting_org(user) else {
                    return Ok(());
                };
                let r = &profile.resources[resource];
                let Some(list) = r.list.clone() else { return Ok(()) };
                let parent_real = parent.and_then(|p| items.get(p).cloned().flatten());
                if parent.is_some() && parent_real.is_none() {
                    return Ok(());
                }
                let allowed = match parent {
                    None => vec![200],
                    Some(p) if state.items[p].org == org && !state.items[p].gone => vec![200],
                    Some(p) if state.items[p].org == org => vec![404],
                    Some(_) => vec![403, 404],
                };
                let mut written = Vec::new();
                let request = self.render(
                    &list,
                    org,
                    None,
                    (None, parent_real.as_ref().map(|p| p.id.as_str()), None),
                    &mut written,
                )?;
                self.repro.list(user, org, resource, parent, &allowed);
                let reply = self.exchange(check, user, org, request).await?;
                self.expect(
                    check,
                    &format!(
                        "list {} as {}@{}",
                        r.name,
                        self.cast.user(user),
                        self.cast.org(org)
                    ),
                    &reply,
                    &allowed,
                )?;
            }
            Action::Export { user, job } => {
                let Some(org) = state.acting_org(user) else {
                    return Ok(());
                };
                let job = profile.jobs[job].clone();
                let mut written = Vec::new();
                let request = self.render(&job.start, org, None, (None, None, None), &mut written)?;
                let started = self.exchange(check, user, org, request).await?;
                self.expect(check, &format!("start {}", job.name), &started, &[200, 201, 202])?;
                let Some(id) = started
                    .json()
                    .pointer(&job.id_pointer)
                    .and_then(|v| v.as_str().map(String::from))
                else {
                    return Err(Failure {
                        check,
                        message: format!("starting {} answered without a job id", job.name),
                        evidence: vec![started.transcript],
                    });
                };
                let deadline = Instant::now() + Duration::from_secs(10);
                loop {
                    let request = self.render(&job.poll, org, None, (Some(&id), None, None), &mut written)?;
                    let polled = self.exchange(check, user, org, request).await?;
                    let status = polled
                        .json()
                        .pointer(&job.status_pointer)
                        .and_then(Value::as_str)
                        .map(String::from);
                    if status.is_some_and(|s| job.done.contains(&s)) || Instant::now() > deadline {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                self.repro.export(user, org, &job);
            }
            Action::Cached { user, endpoint } => {
                let Some(org) = state.acting_org(user) else {
                    return Ok(());
                };
                let template = profile.cached[endpoint].clone();
                let mut written = Vec::new();
                let request = self.render(&template, org, None, (None, None, None), &mut written)?;
                self.repro.plain(user, org, &template, &[200]);
                let reply = self.exchange(check, user, org, request).await?;
                self.expect(check, "cached endpoint", &reply, &[200])?;
            }
            Action::Switch { .. } => {}
            Action::RemoveMember { user, org } => {
                let user_key = self.cast.user(user);
                self.sessions
                    .remove_member(&mut self.world, user_key, self.cast.org(org))
                    .await
                    .map_err(|e| Failure {
                        check,
                        message: format!("could not remove {user_key} from {}: {e}", self.cast.org(org)),
                        evidence: Vec::new(),
                    })?;
                self.tokens.remove(&(user, org));
                self.repro.remove_member(user, org);
                // The identity service must refuse a token for the old org.
                if let Ok(token) = self
                    .sessions
                    .token(&self.world, user_key, Some(self.cast.org(org)))
                    .await
                {
                    let (org_id, _) = self.org_id(org);
                    if token_org(&token).is_some_and(|o| o == org_id) {
                        return Err(Failure {
                            check,
                            message: format!(
                                "after {user_key} was removed from org {}, a token for it was still issued",
                                self.cast.org(org)
                            ),
                            evidence: Vec::new(),
                        });
                    }
                }
            }
            Action::ChangeRole { user, org, admin } => {
                let user_key = self.cast.user(user);
                self.sessions
                    .set_role(&mut self.world, user_key, self.cast.org(org), role_name(admin))
                    .await
                    .map_err(|e| Failure {
                        check,
                        message: format!(
                            "could not change {user_key}'s role in {}: {e}",
                            self.cast.org(org)
                        ),
                        evidence: Vec::new(),
                    })?;
                self.tokens.remove(&(user, org));
                self.repro.set_role(user, org, admin);
            }
            Action::Forge {
                user,
                victim,
                resource,
                write,
                position,
                encoding,
            } => {
                let Some(org) = state.acting_org(user) else {
                    return Ok(());
                };
                self.forge(
                    state, user, org, victim, resource, write, position, encoding, items,
                )
                .await?;
            }
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    async fn forge(
        &mut self,
        state: &State,
        user: usize,
        org: usize,
        victim: usize,
        resource: usize,
        write: bool,
        position: Position,
        encoding: Encoding,
        items: &[Option<RealItem>],
    ) -> Result<(), Failure> {
        let _ = items;
        let profile = self.profile;
        let check = Action::Forge {
            user,
            victim,
            resource,
            write,
            position,
            encoding,
        }
        .check();
        let r = &profile.resources[resource];
        let (victim_id, victim_slug) = self.org_id(victim);
        let (own_id, _) = self.org_id(org);
        let value = match encoding {
            Encoding::Plain | Encoding::DuplicateOwnFirst | Encoding::DuplicateOwnLast => victim_id.clone(),
            Encoding::Upper => victim_id.to_uppercase(),
            Encoding::Padded => format!(" {victim_id} "),
            Encoding::Slug => victim_slug.clone(),
            Encoding::Confusable => {
                crate::template::apply_filter("confusable", &victim_id).unwrap_or_default()
            }
        };
        let template = match position {
            Position::Route(i) => profile.org.routes[i].clone(),
            _ if write => r.create.clone(),
            _ => match &r.list {
                Some(l) => l.clone(),
                None => return Ok(()),
            },
        };
        let mut written = Vec::new();
        let override_org =
            matches!(position, Position::Route(_)).then(|| (value.clone(), victim_slug.clone()));
        let mut request = self.render(&template, org, override_org, (None, None, None), &mut written)?;
        let sep = |p: &str| if p.contains('?') { '&' } else { '?' };
        let q = crate::client::form_component;
        match position {
            Position::Route(_) => {}
            Position::Query(i) => {
                let name = &profile.org.query[i];
                let pairs = match encoding {
                    Encoding::DuplicateOwnFirst => vec![own_id.clone(), value.clone()],
                    Encoding::DuplicateOwnLast => vec![value.clone(), own_id.clone()],
                    _ => vec![value.clone()],
                };
                for v in pairs {
                    let s = sep(&request.path);
                    request.path.push_str(&format!("{s}{}={}", q(name), q(&v)));
                }
            }
            Position::Header(i) => {
                request = request.header(&profile.org.headers[i], value.trim().to_string());
            }
            Position::Cookie(i) => {
                request = request.header("cookie", format!("{}={}", profile.org.cookies[i], value.trim()));
            }
            Position::Json(i) => {
                if let Some(body) = request.json.as_mut() {
                    crate::audit::set_pointer(body, &profile.org.json[i], Value::String(value.clone()));
                }
            }
        }
        self.repro
            .forge(user, org, victim, resource, write, position, encoding);
        // Anything written here is the actor's; seen in the victim's org it
        // is a forged write that landed.
        for c in &written {
            let _ = self.oracle.register(
                c,
                &own_id,
                NeedleKind::Canary,
                &format!("forged {check} by {}", self.cast.user(user)),
            );
        }
        let reply = self.exchange(check, user, org, request).await?;
        if write && reply.status < 300 {
            // Where did it land? A member of the victim org lists.
            let Some(list) = r.list.clone() else { return Ok(()) };
            let Some(member) = (0..self.cast.users.len()).find(|&u| state.role(u, victim).is_some()) else {
                return Ok(());
            };
            let mut scratch = Vec::new();
            let request = self.render(&list, victim, None, (None, None, None), &mut scratch)?;
            self.repro.list(member, victim, resource, None, &[200]);
            self.exchange(check, member, victim, request).await?;
        }
        Ok(())
    }
}

/// The check id at the start of a failure reason (`ISO-009: …`).
fn leaked_check(reason: &impl std::fmt::Display) -> &'static str {
    let text = reason.to_string();
    checks::find(text.split(':').next().unwrap_or_default()).map_or("ISO-004", |c| c.id)
}

/// The active org of a Clerk token (v2 `o.id`, v1 `org_id`), unverified.
pub(crate) fn token_org(token: &str) -> Option<String> {
    let claims = crate::client::unverified_claims(token)?;
    claims["o"]["id"]
        .as_str()
        .or(claims["org_id"].as_str())
        .map(String::from)
}
