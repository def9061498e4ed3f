//! HTTP-level fuzzing of a target: the request shapes its profile declares,
//! mutated by a seeded, structure-aware mutator ([`mutate`]) — the other
//! org's ids and slugs in every id and org place, with encodings; duplicate
//! and undeclared parameters; odd values; method swaps; tampered tokens —
//! and judged by two properties: no 5xx, and no other org's canary or id in
//! an answer (unless the request itself carried it). A token the target
//! cannot have signed must also be refused.
//!
//! The world: org `a` (alice, admin) and org `b` (bob, admin), each with one
//! item of every resource type, created through the profile's create
//! requests with canaries. Cases are sent as bob@b (after a's data), alice@a
//! (after b's) and anonymously.
//!
//! Every case is a scenario step (its mutations rewrite the template, never
//! a rendered request), and the fuzzer runs its cases through the scenario
//! runner in batches, one fresh world per batch. So a finding is already a
//! reproduction: it is shrunk ([`shrink`]) by dropping mutations while it
//! still fails the same way, written as a scenario file (replayable with
//! `tenantry run`), then replayed alone from that file and marked
//! reproduced or not — as campaigns do.

pub mod mutate;
pub mod shrink;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::audit::{Finding, Progress, Report};
use crate::checks::{self, Check, Selection};
use crate::client::Client;
use crate::profile::Profile;
use crate::scenario::{
    self, Actor, Capture, Context, Expect, Forge, Given, GivenOrg, GivenUser, Item, Outcome, RunError,
    Scenario, Step, StepOutcome,
};
use crate::session::Sessions;
use crate::template::pointer_to_path;
use mutate::{Case, Mutation, OpKind, Plan, Rng, Who};

/// How long and how hard a fuzz run goes.
#[derive(Debug, Clone)]
pub struct FuzzConfig {
    /// Stop starting new batches after this long (shrinking and replaying
    /// the findings still complete).
    pub budget: Duration,
    /// Seed: the same seed draws the same cases.
    pub seed: u64,
    /// Cases per batch (one world each).
    pub batch: usize,
    /// Most distinct findings shrunk and written (more are counted).
    pub max_findings: usize,
    /// Most shrink rounds per finding.
    pub max_shrink_rounds: usize,
    /// Where reproductions are written.
    pub repro_dir: PathBuf,
}

impl Default for FuzzConfig {
    fn default() -> Self {
        Self {
            budget: Duration::from_secs(60),
            seed: 0,
            batch: 40,
            max_findings: 8,
            max_shrink_rounds: 8,
            repro_dir: PathBuf::from("tenantry-repro"),
        }
    }
}

/// How a case failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The target answered 5xx.
    ServerError(u16),
    /// An answer held another org's canary or id.
    ForeignData,
    /// A tampered token was accepted (this status).
    Accepted(u16),
}

impl Verdict {
    /// The same property broken (any 5xx is the same kind).
    pub fn same_kind(self, other: Verdict) -> bool {
        matches!(
            (self, other),
            (Verdict::ServerError(_), Verdict::ServerError(_))
                | (Verdict::ForeignData, Verdict::ForeignData)
                | (Verdict::Accepted(_), Verdict::Accepted(_))
        )
    }

    fn describe(self) -> String {
        match self {
            Verdict::ServerError(s) => format!("answered {s} (a request must never crash the server)"),
            Verdict::ForeignData => "the answer holds another org's data".into(),
            Verdict::Accepted(s) => format!("a token the target cannot have signed was accepted ({s})"),
        }
    }
}

/// What a fuzz run found.
#[derive(Debug)]
pub struct FuzzOutcome {
    /// The findings (each with its reproduction file), as an audit report.
    pub report: Report,
    /// Cases sent.
    pub cases: u64,
    /// Batches (worlds) used.
    pub batches: u64,
    /// Cases that failed (before deduplication).
    pub failing_cases: u64,
    /// Cases the target did not answer at all (timeouts, resets): not
    /// findings, but said.
    pub unanswered: u64,
    /// When the first failing case was seen (since the start) and the
    /// requests sent by then.
    pub first_finding: Option<(Duration, u64)>,
}

/// Why the fuzzer could not run.
#[derive(Debug, thiserror::Error)]
pub enum FuzzError {
    /// The world could not be provisioned.
    #[error(transparent)]
    Run(#[from] RunError),
    /// The profile's create requests did not set up the world.
    #[error("cannot set up the fuzz world: {0}")]
    Setup(String),
    /// The profile declares nothing to fuzz.
    #[error("the profile declares no request to fuzz (no resources, org routes or cached paths)")]
    Empty,
    /// A reproduction could not be written or read back.
    #[error("reproduction {path}: {detail}")]
    Repro {
        /// File.
        path: String,
        /// What went wrong.
        detail: String,
    },
}

/// The check ids the fuzzer reports under.
pub const CHECK_IDS: &[&str] = &[
    "FUZ-001", "ISO-001", "ISO-002", "ISO-003", "ISO-004", "ISO-005", "ISO-006", "ISO-009", "ISO-013",
    "ORG-001", "ORG-002", "ORG-003", "ORG-004", "ORG-005", "ORG-006", "ORG-007", "ORG-008", "TOK-001",
    "TOK-002", "TOK-003", "TOK-022", "TOK-023", "TOK-025",
];

/// The check a failing case falls under: a tampered token accepted, or
/// any failure it needs a token mutation for, is that TOK check; a 5xx
/// without one is FUZ-001; foreign data goes to the org place it was
/// forged in (ORG-001..008) or else to the request's kind (ISO).
pub fn check_for(plan: &Plan, case: &Case, verdict: Verdict) -> &'static Check {
    let id = classify(plan, case, verdict);
    checks::find(id).expect("the fuzzer's check ids are in the catalogue")
}

fn classify(plan: &Plan, case: &Case, verdict: Verdict) -> &'static str {
    if let Some((check, _)) = case.token() {
        return check;
    }
    if let Verdict::ServerError(_) = verdict {
        return "FUZ-001";
    }
    if case.who == Who::Anonymous {
        return "ISO-013";
    }
    let plain = |v: &mutate::OrgValue| v.encoding == mutate::Encoding::Plain;
    for m in &case.mutations {
        let (place, value) = match m {
            Mutation::ForeignOrg(v) => ("ORG-001", Some(v)),
            Mutation::OrgQuery { value, form, .. } => (
                if *form == mutate::QueryForm::Single || *form == mutate::QueryForm::JsonInput {
                    "ORG-002"
                } else {
                    "ORG-007"
                },
                Some(value),
            ),
            Mutation::OrgHeader { value, .. } => ("ORG-003", Some(value)),
            Mutation::OrgJson { value, .. } => ("ORG-004", Some(value)),
            Mutation::UnknownField { .. } => ("ORG-004", None),
            Mutation::OrgForm { value, .. } => ("ORG-005", Some(value)),
            Mutation::OrgCookie { value, .. } => ("ORG-006", Some(value)),
            _ => continue,
        };
        return match value {
            Some(v) if v.slug => "ORG-008",
            Some(v) if !plain(v) => "ORG-007",
            _ => place,
        };
    }
    let op = &plan.ops[case.op];
    let foreign_id = case
        .mutations
        .iter()
        .any(|m| matches!(m, Mutation::ForeignId { .. }));
    match op.kind {
        OpKind::Create if foreign_id => "ISO-006",
        OpKind::Read => "ISO-001",
        OpKind::Update => "ISO-002",
        OpKind::Delete => "ISO-003",
        OpKind::Search => "ISO-005",
        OpKind::Cached => "ISO-009",
        OpKind::Route => "ORG-001",
        OpKind::Create | OpKind::List => "ISO-004",
    }
}

/// The world every fuzz run provisions (per batch): orgs a and b, alice
/// admin of a, bob admin of b, and one item of every resource type in each.
fn given(plan: &Plan, profile: &Profile) -> Given {
    let mut order: Vec<usize> = (0..plan.resources.len())
        .filter(|&r| plan.resources[r].parent.is_none())
        .collect();
    order.extend((0..plan.resources.len()).filter(|&r| plan.resources[r].parent.is_some()));
    let mut resources = Vec::new();
    for (user, org) in [("alice", "a"), ("bob", "b")] {
        for &r in &order {
            let op = mutate::Op {
                label: String::new(),
                kind: OpKind::Create,
                resource: Some(r),
                template: profile.resources[r].create.clone(),
            };
            let capture = mutate::item_capture(plan, org, r);
            let mut captures = vec![(
                capture.clone(),
                Capture::json(&pointer_to_path(&profile.resources[r].id_pointer)),
            )];
            if let Some(field) = &plan.resources[r].canary_field {
                captures.push((
                    format!("{capture}_canary"),
                    Capture::json(&pointer_to_path(&format!("/{field}"))),
                ));
            }
            resources.push(Step {
                name: Some(format!(
                    "{user} creates {} in org {org}",
                    profile.resources[r].name
                )),
                actor: Actor::Member {
                    user: user.into(),
                    org: Some(org.into()),
                },
                request: mutate::retemplate(plan, &op, &op.template, org),
                capture: captures,
                forge: None,
                concurrent: None,
                expect: Expect {
                    status: vec![200, 201],
                    ..Expect::default()
                },
            });
        }
    }
    Given {
        orgs: ["a", "b"]
            .iter()
            .map(|k| GivenOrg {
                key: k.to_string(),
                name: None,
            })
            .collect(),
        users: vec![
            GivenUser {
                key: "alice".into(),
                memberships: vec![("a".into(), "org:admin".into())],
            },
            GivenUser {
                key: "bob".into(),
                memberships: vec![("b".into(), "org:admin".into())],
            },
        ],
        resources,
    }
}

/// The case as a scenario step.
fn step(plan: &Plan, case: &Case) -> Step {
    let op = &plan.ops[case.op];
    let actor = match case.who.keys() {
        (Some(user), org, _) => Actor::Member {
            user: user.into(),
            org: Some(org.into()),
        },
        (None, ..) => Actor::Anonymous,
    };
    let mut name = format!(
        "{} as {}",
        op.label,
        match case.who {
            Who::Bob => "bob@b",
            Who::Alice => "alice@a",
            Who::Anonymous => "anonymous",
        }
    );
    for m in &case.mutations {
        name.push_str("; ");
        name.push_str(&mutate::describe(m));
    }
    let token = case.token();
    Step {
        name: Some(name),
        actor,
        request: mutate::request(plan, case),
        capture: Vec::new(),
        forge: token.map(|(check, variant)| Forge {
            checks: vec![check.to_string()],
            variant: Some(variant.to_string()),
        }),
        concurrent: None,
        expect: Expect {
            // A tampered token must be refused; otherwise any status but a
            // 5xx (no foreign data either way: the default).
            status: if token.is_some() {
                vec![401, 403]
            } else {
                Vec::new()
            },
            ..Expect::default()
        },
    }
}

fn scenario_of(plan: &Plan, profile: &Profile, id: String, title: String, cases: &[Case]) -> Scenario {
    Scenario {
        id,
        title,
        severity: checks::Severity::High,
        cwe: None,
        tags: vec!["fuzz".into()],
        references: Vec::new(),
        given: given(plan, profile),
        steps: cases.iter().map(|c| Item::Send(step(plan, c))).collect(),
    }
}

/// One seed per world: the scenario runner names a world's orgs and users
/// after its seed, so no two worlds of a run may share one.
#[derive(Debug)]
struct Seeds(Rng);

impl Seeds {
    fn next(&mut self) -> u64 {
        self.0.next_u64()
    }
}

/// The status of a step's answer, from its transcript (`--> 200`).
fn status_of(step: &StepOutcome) -> Option<u16> {
    let transcript = step.transcript.as_deref()?;
    let at = transcript.find("--> ")?;
    transcript[at + 4..]
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

/// How a case's step failed (`None`: it held, or it says nothing — a
/// request that could not be built, or no answer at all).
fn verdict(case: &Case, outcome: &StepOutcome) -> Option<Verdict> {
    if outcome.failures.is_empty() || outcome.failures.iter().any(|f| f.starts_with("cannot ")) {
        return None;
    }
    let status = status_of(outcome)?;
    if status == 0 {
        return None;
    }
    if status >= 500 {
        return Some(Verdict::ServerError(status));
    }
    if outcome.failures.iter().any(|f| f.contains("of another org")) {
        return Some(Verdict::ForeignData);
    }
    // A tampered token refused with some other 4xx (a body the route does
    // not take, say) is still refused.
    if case.token().is_some() && status < 400 {
        return Some(Verdict::Accepted(status));
    }
    None
}

/// Runs `cases` in one world; the outcome of each case's step (given
/// steps checked: the world must be set up).
async fn run_cases(
    plan: &Plan,
    profile: &Profile,
    sessions: &mut Sessions,
    client: &Client,
    context: &Context,
    seed: u64,
    cases: &[Case],
) -> Result<Vec<StepOutcome>, FuzzError> {
    let s = scenario_of(
        plan,
        profile,
        format!("fuzz-batch-{seed}"),
        "fuzz batch".into(),
        cases,
    );
    let outcome = scenario::run_with(&s, sessions, client, seed, context).await?;
    let given = s.given.resources.len();
    check_given(&outcome, given)?;
    Ok(outcome.steps.into_iter().skip(given).collect())
}

fn check_given(outcome: &Outcome, given: usize) -> Result<(), FuzzError> {
    if let Some(step) = outcome.steps.iter().take(given).find(|s| !s.failures.is_empty()) {
        return Err(FuzzError::Setup(format!(
            "{}: {}{}",
            step.title,
            step.failures.join("; "),
            step.transcript
                .as_deref()
                .map(|t| format!("\n{}", t.lines().take(12).collect::<Vec<_>>().join("\n")))
                .unwrap_or_default()
        )));
    }
    Ok(())
}

/// Fuzzes the target behind `client` (its `profile`) within
/// `config.budget`; `sessions` from [`crate::audit::sessions_for`];
/// `context` as for [`scenario::run_with`] (the profile, and the signing
/// key when the harness holds it). Findings outside `selection` are
/// dropped. `progress` hears about every batch.
pub async fn run(
    profile: &Profile,
    client: &Client,
    sessions: &mut Sessions,
    context: &Context,
    selection: &Selection,
    config: &FuzzConfig,
    progress: &mut dyn FnMut(&Progress),
) -> Result<FuzzOutcome, FuzzError> {
    let plan = Plan::new(profile);
    if plan.ops.is_empty() {
        return Err(FuzzError::Empty);
    }
    let started = Instant::now();
    let sent_before = client.requests_sent();
    let mut rng = Rng::new(config.seed);
    let mut seeds = Seeds(Rng::new(config.seed.rotate_left(17) ^ 0x776f_726c_6473));
    let mut out = FuzzOutcome {
        report: Report {
            target: profile.name.clone(),
            seed: config.seed,
            checks_run: CHECK_IDS
                .iter()
                .copied()
                .filter(|id| checks::find(id).is_some_and(|c| selection.includes(c)))
                .collect(),
            ..Report::default()
        },
        cases: 0,
        batches: 0,
        failing_cases: 0,
        unanswered: 0,
        first_finding: None,
    };
    // Failing cases to shrink: one per check (the first seen), in order.
    let mut failing: Vec<(Case, Verdict, &'static Check, StepOutcome)> = Vec::new();
    let budget_secs = config.budget.as_secs().max(1);
    while started.elapsed() < config.budget {
        let cases: Vec<Case> = (0..config.batch.max(1))
            .map(|_| mutate::draw(&plan, &mut rng))
            .collect();
        let batch_seed = seeds.next();
        let outcomes = run_cases(&plan, profile, sessions, client, context, batch_seed, &cases).await?;
        out.batches += 1;
        out.cases += cases.len() as u64;
        for (case, outcome) in cases.into_iter().zip(outcomes) {
            if status_of(&outcome) == Some(0) {
                out.unanswered += 1;
            }
            let Some(v) = verdict(&case, &outcome) else {
                continue;
            };
            let check = check_for(&plan, &case, v);
            if !selection.includes(check) {
                continue;
            }
            out.failing_cases += 1;
            out.first_finding
                .get_or_insert_with(|| (started.elapsed(), client.requests_sent() - sent_before));
            if failing.len() < config.max_findings && !failing.iter().any(|(_, _, c, _)| c.id == check.id) {
                failing.push((case, v, check, outcome));
            }
        }
        progress(&Progress {
            done: started.elapsed().as_secs().min(budget_secs),
            total: budget_secs,
            label: format!(
                "{} cases, {} failing ({} checks)",
                out.cases,
                out.failing_cases,
                failing.len()
            ),
        });
    }
    let mut written: Vec<(String, Vec<String>)> = Vec::new();
    for (n, (case, v, _, original)) in failing.into_iter().enumerate() {
        progress(&Progress {
            done: budget_secs,
            total: budget_secs,
            label: format!("shrinking finding {}", n + 1),
        });
        let before = case.mutations.len();
        let mut shrinker = shrink::Shrinker::new(case, v, config.max_shrink_rounds);
        while let Some(candidates) = shrinker.candidates() {
            let seed = seeds.next();
            let verdicts: Vec<Option<Verdict>> =
                match run_cases(&plan, profile, sessions, client, context, seed, &candidates).await {
                    Ok(outcomes) => candidates
                        .iter()
                        .zip(&outcomes)
                        .map(|(c, o)| verdict(c, o))
                        .collect(),
                    Err(_) => vec![None; candidates.len()],
                };
            shrinker.feed(candidates, &verdicts);
        }
        let small = shrinker.case().clone();
        let check = check_for(&plan, &small, v);
        let signature: Vec<String> = small.mutations.iter().map(mutate::describe).collect();
        if written
            .iter()
            .any(|(id, sig)| id == check.id && *sig == signature)
        {
            continue;
        }
        written.push((check.id.to_string(), signature));
        let finding = reproduce(
            &plan,
            profile,
            client,
            sessions,
            context,
            config,
            seeds.next(),
            &small,
            v,
            check,
            before,
            &original,
            n,
        )
        .await?;
        out.report.findings.push(finding);
    }
    out.report.requests = client.requests_sent() - sent_before;
    out.report.elapsed = started.elapsed();
    Ok(out)
}

/// Writes the shrunk case as a scenario file, replays the file alone, and
/// makes the finding.
#[allow(clippy::too_many_arguments)]
async fn reproduce(
    plan: &Plan,
    profile: &Profile,
    client: &Client,
    sessions: &mut Sessions,
    context: &Context,
    config: &FuzzConfig,
    seed: u64,
    case: &Case,
    v: Verdict,
    check: &'static Check,
    before: usize,
    original: &StepOutcome,
    n: usize,
) -> Result<Finding, FuzzError> {
    let id = format!("fuzz-{}-{}-{}", check.id.to_ascii_lowercase(), config.seed, n + 1);
    let op = &plan.ops[case.op];
    let mut s = scenario_of(
        plan,
        profile,
        id.clone(),
        format!("{} ({}): {}: {}", check.title, check.id, op.label, v.describe()),
        std::slice::from_ref(case),
    );
    s.severity = check.severity;
    s.cwe = Some(check.cwe);
    s.tags = vec![
        format!("TEN-{}", check.id),
        "fuzz".into(),
        format!("seed-{}", config.seed),
    ];
    let path = config.repro_dir.join(format!("{id}.yaml"));
    let shown = path.display().to_string();
    let err = |detail: String| FuzzError::Repro {
        path: shown.clone(),
        detail,
    };
    std::fs::create_dir_all(&config.repro_dir).map_err(|e| err(e.to_string()))?;
    std::fs::write(&path, scenario::to_yaml(&s)).map_err(|e| err(e.to_string()))?;
    let loaded = scenario::load(&path).map_err(|e| err(e.to_string()))?;
    let replay = scenario::run_with(&loaded, sessions, client, seed, context).await?;
    let given = loaded.given.resources.len();
    let last = replay.steps.get(given);
    let reproduced = last.and_then(|o| verdict(case, o)).is_some();
    let evidence = match (reproduced, last.and_then(|o| o.transcript.clone())) {
        (true, Some(t)) => vec![t],
        _ => original.transcript.clone().into_iter().collect(),
    };
    let mutations: Vec<String> = case.mutations.iter().map(mutate::describe).collect();
    let note = if reproduced {
        "it fails again on its own"
    } else {
        "it did not fail again on replay: the target keeps state between requests, or the failure needed other requests of its batch"
    };
    Ok(Finding {
        check,
        message: format!(
            "{} as {}: {} (mutations: {}; shrunk from {before} to {}; reproduction {shown}: {note})",
            op.label,
            match case.who {
                Who::Bob => "bob@b",
                Who::Alice => "alice@a",
                Who::Anonymous => "anonymous",
            },
            v.describe(),
            if mutations.is_empty() {
                "none".to_string()
            } else {
                mutations.join("; ")
            },
            case.mutations.len()
        ),
        evidence,
        reproduction: Some(shown),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan_and_profile() -> (Plan, Profile) {
        let profile = Profile::reference("http://127.0.0.1:1", "sk_test_x", "http://localhost");
        (Plan::new(&profile), profile)
    }

    #[test]
    fn reproductions_are_valid_scenario_files() {
        let (plan, profile) = plan_and_profile();
        let mut rng = Rng::new(3);
        let cases: Vec<Case> = (0..200).map(|_| mutate::draw(&plan, &mut rng)).collect();
        let s = scenario_of(&plan, &profile, "fuzz-x".into(), "t".into(), &cases);
        let text = scenario::to_yaml(&s);
        let parsed = scenario::parse("fuzz-x.yaml", &text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(parsed.steps.len(), 200);
        assert_eq!(parsed, s);
    }

    #[test]
    fn findings_fall_under_the_closest_check() {
        let (plan, _) = plan_and_profile();
        let op = |label: &str| plan.ops.iter().position(|o| o.label == label).unwrap();
        let case = |op: usize, mutations: Vec<Mutation>| Case {
            who: Who::Bob,
            op,
            mutations,
        };
        let id = |c: &Case, v| check_for(&plan, c, v).id;
        let plain = mutate::OrgValue {
            slug: false,
            encoding: mutate::Encoding::Plain,
        };
        let route = case(op("org route 1"), vec![Mutation::ForeignOrg(plain)]);
        assert_eq!(id(&route, Verdict::ForeignData), "ORG-001");
        let query = case(
            op("projects.list"),
            vec![Mutation::OrgQuery {
                name: "org_id".into(),
                value: plain,
                form: mutate::QueryForm::Single,
            }],
        );
        assert_eq!(id(&query, Verdict::ForeignData), "ORG-002");
        assert_eq!(id(&query, Verdict::ServerError(500)), "FUZ-001");
        let read = case(
            op("projects.read"),
            vec![Mutation::ForeignId {
                encoding: mutate::Encoding::Plain,
            }],
        );
        assert_eq!(id(&read, Verdict::ForeignData), "ISO-001");
        let token = case(
            op("projects.list"),
            vec![Mutation::Token {
                check: "TOK-003",
                variant: "alg none, no signature",
            }],
        );
        assert_eq!(id(&token, Verdict::Accepted(200)), "TOK-003");
        for id in CHECK_IDS {
            assert!(checks::find(id).is_some(), "{id}");
        }
    }

    #[test]
    fn statuses_come_from_transcripts() {
        let step = StepOutcome {
            label: "step 1".into(),
            title: "t".into(),
            failures: vec!["status 502 (a request must never crash the server)".into()],
            transcript: Some("GET http://x/api\n\n--> 502\ncontent-type: text/plain\n".into()),
        };
        assert_eq!(status_of(&step), Some(502));
        let case = Case {
            who: Who::Bob,
            op: 0,
            mutations: Vec::new(),
        };
        assert_eq!(verdict(&case, &step), Some(Verdict::ServerError(502)));
    }
}
