//! The audit, first slice: a fixed world (two orgs, a user in both, one in
//! one) provisioned through a Clerk-compatible identity service, resources
//! created with canaries in every text field, then the ISO, ORG and SES
//! probes of the catalogue — every response scanned by the [`Oracle`].
//! Campaigns (random action sequences with shrinking), target profile files
//! and more checks build on this.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::checks::{self, Check, Selection};
use crate::client::{Client, Reply, Request};
use crate::oracle::{new_canary, CanarySource, NeedleKind, Oracle};
use crate::session::{ClerkApi, Session, SessionError};

/// One org-scoped resource type of the target.
#[derive(Debug, Clone)]
pub struct Resource {
    /// Name (`projects`).
    pub name: String,
    /// Create: `POST` here.
    pub create_path: String,
    /// Create body; every `"{canary}"` string becomes a fresh canary.
    pub create_body: Value,
    /// JSON pointer to the id in the create answer.
    pub id_pointer: String,
    /// One item: `{id}` is replaced.
    pub item_path: String,
    /// Update body (PATCH on the item path), with `{canary}` placeholders.
    pub update_body: Value,
    /// The list endpoint.
    pub list_path: String,
    /// The search endpoint; `{q}` is replaced by a canary.
    pub search_path: Option<String>,
    /// Org-in-path variants of the list: `{org}` is replaced.
    pub org_paths: Vec<String>,
}

/// A background job the target runs per org (an export).
#[derive(Debug, Clone)]
pub struct Job {
    /// Start: `POST` here (empty JSON body).
    pub start_path: String,
    /// JSON pointer to the job id in the start answer.
    pub id_pointer: String,
    /// Poll: `{id}` is replaced.
    pub poll_path: String,
    /// JSON pointer to the status while polling.
    pub status_pointer: String,
    /// Statuses that mean the job is over.
    pub final_statuses: Vec<String>,
}

/// The target.
#[derive(Debug, Clone)]
pub struct Target {
    /// Base URL.
    pub base_url: String,
    /// Backend API secret key of its identity service.
    pub secret_key: String,
    /// Origin to request tokens as (their `azp`).
    pub origin: Option<String>,
    /// Resource types.
    pub resources: Vec<Resource>,
    /// Query parameter names the target might take an org from.
    pub org_query_params: Vec<String>,
    /// Header names the target might take an org from.
    pub org_headers: Vec<String>,
    /// Endpoints whose answers the target caches (per org, it should be).
    pub cached_paths: Vec<String>,
    /// Background jobs.
    pub jobs: Vec<Job>,
}

impl Target {
    /// The reference stack's built-in profile.
    pub fn reference(base_url: &str, secret_key: &str, origin: Option<&str>) -> Self {
        let projects = Resource {
            name: "projects".into(),
            create_path: "/api/projects".into(),
            create_body: serde_json::json!({ "name": "{canary}", "description": "{canary}" }),
            id_pointer: "/id".into(),
            item_path: "/api/projects/{id}".into(),
            update_body: serde_json::json!({ "description": "{canary}" }),
            list_path: "/api/projects".into(),
            search_path: Some("/api/search?q={q}".into()),
            org_paths: vec!["/api/orgs/{org}/projects".into()],
        };
        Self {
            base_url: base_url.into(),
            secret_key: secret_key.into(),
            origin: origin.map(String::from),
            resources: vec![projects],
            org_query_params: vec!["org_id".into(), "organization_id".into(), "orgId".into()],
            org_headers: vec!["x-org-id".into(), "organization-id".into()],
            cached_paths: vec!["/api/stats".into()],
            jobs: vec![Job {
                start_path: "/api/exports".into(),
                id_pointer: "/id".into(),
                poll_path: "/api/exports/{id}".into(),
                status_pointer: "/status".into(),
                final_statuses: vec!["done".into(), "failed".into()],
            }],
        }
    }
}

/// A fresh seed (printed by callers so the run can be repeated).
pub fn random_seed() -> u64 {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).expect("the operating system's random number generator failed");
    u64::from_le_bytes(bytes)
}

/// A failed check.
#[derive(Debug, Clone)]
pub struct Finding {
    /// The check.
    pub check: &'static Check,
    /// What went wrong.
    pub message: String,
    /// Redacted transcripts of the exchanges involved.
    pub evidence: Vec<String>,
}

/// What an audit found.
#[derive(Debug, Default)]
pub struct Report {
    /// The seed the run used.
    pub seed: u64,
    /// Checks run, in order.
    pub checks_run: Vec<&'static str>,
    /// Findings.
    pub findings: Vec<Finding>,
    /// Requests sent.
    pub requests: u64,
    /// Wall time.
    pub elapsed: Duration,
}

impl Report {
    /// The report as JSON (schema version 1).
    pub fn to_json(&self) -> Value {
        serde_json::json!({
            "schema": "tenantry.audit/1",
            "seed": self.seed.to_string(),
            "checks_run": self.checks_run,
            "requests": self.requests,
            "elapsed_ms": self.elapsed.as_millis() as u64,
            "findings": self.findings.iter().map(|f| serde_json::json!({
                "check": f.check.id,
                "family": f.check.family,
                "severity": f.check.severity.name(),
                "cwe": format!("CWE-{}", f.check.cwe),
                "title": f.check.title,
                "message": f.message,
                "evidence": f.evidence,
            })).collect::<Vec<_>>(),
        })
    }
}

/// Why the audit could not run.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// Provisioning the world failed.
    #[error(transparent)]
    Session(#[from] SessionError),
    /// A resource could not be created.
    #[error("cannot create {resource} as org {org}: {detail}")]
    Setup {
        /// Resource type.
        resource: String,
        /// Org.
        org: String,
        /// What came back.
        detail: String,
    },
}

struct Actor {
    org: String,
    token: String,
}

struct Item {
    id: String,
    canaries: Vec<String>,
}

struct Run<'a> {
    canaries: CanarySource,
    client: Client,
    oracle: Oracle,
    selection: &'a Selection,
    report: Report,
}

impl Run<'_> {
    fn selected(&self, id: &str) -> bool {
        checks::find(id).is_some_and(|c| self.selection.includes(c))
    }

    fn finding(&mut self, id: &str, message: String, evidence: Vec<String>) {
        if let Some(check) = checks::find(id) {
            if !self
                .report
                .findings
                .iter()
                .any(|f| f.check.id == id && f.message == message)
            {
                self.report.findings.push(Finding {
                    check,
                    message,
                    evidence,
                });
            }
        }
    }

    /// Sends as `actor` (or anonymously) and scans the answer for foreign needles.
    async fn send(&mut self, check: &str, actor: Option<&Actor>, request: Request) -> Reply {
        let request = match actor {
            Some(a) => request.bearer(&a.token),
            None => request,
        };
        let reply = self.client.send(request).await;
        let active = actor.map(|a| a.org.as_str()).unwrap_or("(none)");
        let leaks = self.oracle.scan(active, &reply.scan_text());
        if let Some(leak) = leaks.first() {
            let message = format!(
                "the response for org {active} contains {} {} of org {} ({})",
                match leak.owner.kind {
                    NeedleKind::Canary => "canary",
                    NeedleKind::Id => "id",
                },
                leak.needle,
                leak.owner.org,
                leak.owner.resource
            );
            self.finding(check, message, vec![reply.transcript.clone()]);
        }
        if reply.status >= 500 {
            self.finding(
                check,
                format!(
                    "the server answered {} (a request must never crash it)",
                    reply.status
                ),
                vec![reply.transcript.clone()],
            );
        }
        reply
    }

    fn ran(&mut self, id: &'static str) -> bool {
        if self.selected(id) {
            if !self.report.checks_run.contains(&id) {
                self.report.checks_run.push(id);
            }
            true
        } else {
            false
        }
    }
}

fn fill(template: &Value, source: &mut CanarySource, canaries: &mut Vec<String>) -> Value {
    match template {
        Value::String(s) if s == "{canary}" => {
            let c = source.canary();
            canaries.push(c.clone());
            Value::String(c)
        }
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), fill(v, source, canaries)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(|v| fill(v, source, canaries)).collect()),
        other => other.clone(),
    }
}

fn refused(status: u16) -> bool {
    matches!(status, 401 | 403 | 404)
}

/// Runs the audit's first slice against `target`. `seed` fixes every name
/// and canary the harness chooses (the target's own ids still vary).
pub async fn run(target: &Target, selection: &Selection, seed: u64) -> Result<Report, AuditError> {
    let started = Instant::now();
    let mut source = CanarySource::new(seed);
    let client = Client::new(&target.base_url, 16, Duration::from_secs(20));
    let identity = ClerkApi::new(client.clone(), &target.secret_key, target.origin.as_deref());
    let tag_canary = source.canary();
    let tag = &tag_canary[4..14];
    let password = format!("{}-{}", new_canary(), new_canary());
    client.register_secret(&password);
    let alice_email = format!("alice-{tag}@tenantry.invalid");
    let bob_email = format!("bob-{tag}@tenantry.invalid");
    let alice = identity.create_user(&alice_email, &password).await?;
    let bob = identity.create_user(&bob_email, &password).await?;
    let (org_a, _) = identity.create_org(&format!("Audit A {tag}"), &alice).await?;
    let (org_b, _) = identity.create_org(&format!("Audit B {tag}"), &bob).await?;
    identity.add_member(&org_b, &alice, "org:member").await?;
    let alice_session: Session = identity.sign_in(&alice_email, &password).await?;
    let bob_session = identity.sign_in(&bob_email, &password).await?;
    identity.set_active(&alice_session, None).await?;
    let personal = Actor {
        org: "(personal)".into(),
        token: identity.token(&alice_session).await?,
    };
    identity.set_active(&alice_session, Some(&org_a)).await?;
    identity.set_active(&bob_session, Some(&org_b)).await?;
    let a = Actor {
        org: org_a.clone(),
        token: identity.token(&alice_session).await?,
    };
    let b = Actor {
        org: org_b.clone(),
        token: identity.token(&bob_session).await?,
    };
    let mut oracle = Oracle::new();
    for id in [&org_a, &org_b] {
        let _ = oracle.register(id, id, NeedleKind::Id, "organization");
    }
    let mut run = Run {
        canaries: source,
        client: client.clone(),
        oracle,
        selection,
        report: Report {
            seed,
            ..Report::default()
        },
    };

    for resource in &target.resources {
        let mut items = Vec::new();
        for actor in [&a, &b] {
            let mut canaries = Vec::new();
            let body = fill(&resource.create_body, &mut run.canaries, &mut canaries);
            let reply = run
                .send(
                    "ISO-004",
                    Some(actor),
                    Request::new("POST", resource.create_path.clone()).json(body),
                )
                .await;
            let id = reply
                .json()
                .pointer(&resource.id_pointer)
                .and_then(Value::as_str)
                .map(String::from)
                .ok_or_else(|| AuditError::Setup {
                    resource: resource.name.clone(),
                    org: actor.org.clone(),
                    detail: format!("HTTP {}: {}", reply.status, String::from_utf8_lossy(&reply.body)),
                })?;
            for c in &canaries {
                let _ = run.oracle.register(
                    c,
                    &actor.org,
                    NeedleKind::Canary,
                    &format!("{} {id}", resource.name),
                );
            }
            let _ = run.oracle.register(
                &id,
                &actor.org,
                NeedleKind::Id,
                &format!("{} {id}", resource.name),
            );
            items.push(Item { id, canaries });
        }
        let (item_a, item_b) = (&items[0], &items[1]);
        let item_path = |id: &str| resource.item_path.replace("{id}", id);

        if run.ran("ISO-013") {
            for path in [resource.list_path.clone(), item_path(&item_a.id)] {
                let reply = run.send("ISO-013", None, Request::new("GET", path.clone())).await;
                if reply.status != 401 {
                    run.finding(
                        "ISO-013",
                        format!("GET {path} without a token answered {}", reply.status),
                        vec![reply.transcript],
                    );
                }
            }
        }
        if run.ran("ISO-001") {
            let reply = run
                .send("ISO-001", Some(&b), Request::new("GET", item_path(&item_a.id)))
                .await;
            if !refused(reply.status) {
                run.finding(
                    "ISO-001",
                    format!(
                        "org B read org A's {} {}: {}",
                        resource.name, item_a.id, reply.status
                    ),
                    vec![reply.transcript],
                );
            }
            // Own item readable, with its canary.
            let own = run
                .send("ISO-001", Some(&a), Request::new("GET", item_path(&item_a.id)))
                .await;
            if own.status != 200
                || !item_a
                    .canaries
                    .iter()
                    .all(|c| String::from_utf8_lossy(&own.body).contains(c.as_str()))
            {
                run.finding(
                    "ISO-001",
                    format!("org A cannot read its own {} {}", resource.name, item_a.id),
                    vec![own.transcript],
                );
            }
        }
        if run.ran("ISO-010") {
            let foreign = run
                .send("ISO-010", Some(&b), Request::new("GET", item_path(&item_a.id)))
                .await;
            let mut missing_id = item_a.id.clone();
            let last = if missing_id.ends_with('0') { '1' } else { '0' };
            missing_id.pop();
            missing_id.push(last);
            let missing = run
                .send("ISO-010", Some(&b), Request::new("GET", item_path(&missing_id)))
                .await;
            let normalise = |r: &Reply, id: &str| String::from_utf8_lossy(&r.body).replace(id, "{id}");
            if foreign.status != missing.status
                || normalise(&foreign, &item_a.id) != normalise(&missing, &missing_id)
            {
                run.finding(
                    "ISO-010",
                    format!(
                        "a foreign id ({}) and a missing id ({}) answer differently",
                        foreign.status, missing.status
                    ),
                    vec![foreign.transcript, missing.transcript],
                );
            }
        }
        if run.ran("ISO-002") {
            let mut ignored = Vec::new();
            let body = fill(&resource.update_body, &mut run.canaries, &mut ignored);
            let reply = run
                .send(
                    "ISO-002",
                    Some(&b),
                    Request::new("PATCH", item_path(&item_a.id)).json(body),
                )
                .await;
            let check = run
                .send("ISO-002", Some(&a), Request::new("GET", item_path(&item_a.id)))
                .await;
            let text = String::from_utf8_lossy(&check.body).into_owned();
            if !refused(reply.status) || ignored.iter().any(|c| text.contains(c.as_str())) {
                run.finding(
                    "ISO-002",
                    format!(
                        "org B updated org A's {} {}: {}",
                        resource.name, item_a.id, reply.status
                    ),
                    vec![reply.transcript, check.transcript],
                );
            }
        }
        if run.ran("ISO-004") {
            run.send(
                "ISO-004",
                Some(&b),
                Request::new("GET", resource.list_path.clone()),
            )
            .await;
            run.send(
                "ISO-004",
                Some(&a),
                Request::new("GET", resource.list_path.clone()),
            )
            .await;
        }
        if let Some(search) = &resource.search_path {
            if run.ran("ISO-005") {
                for c in &item_a.canaries {
                    run.send("ISO-005", Some(&b), Request::new("GET", search.replace("{q}", c)))
                        .await;
                }
            }
        }
        if run.ran("ORG-001") {
            for template in &resource.org_paths {
                let path = template.replace("{org}", &org_a);
                let reply = run
                    .send("ORG-001", Some(&b), Request::new("GET", path.clone()))
                    .await;
                if reply.status == 200
                    && !String::from_utf8_lossy(&reply.body).contains(item_b.canaries[0].as_str())
                {
                    // 200 is fine only if it is B's own data (the org in the path ignored).
                    run.finding(
                        "ORG-001",
                        format!("GET {path} with org B's token answered 200 without B's data"),
                        vec![reply.transcript],
                    );
                }
            }
        }
        if run.ran("ORG-002") {
            for name in &target.org_query_params {
                let sep = if resource.list_path.contains('?') {
                    '&'
                } else {
                    '?'
                };
                let path = format!("{}{sep}{name}={org_a}", resource.list_path);
                run.send("ORG-002", Some(&b), Request::new("GET", path)).await;
                let mut ignored = Vec::new();
                let body = fill(&resource.create_body, &mut run.canaries, &mut ignored);
                let path = format!("{}{sep}{name}={org_a}", resource.create_path);
                let created = run
                    .send("ORG-002", Some(&b), Request::new("POST", path.clone()).json(body))
                    .await;
                if created.status < 300 {
                    let seen = run
                        .send(
                            "ORG-002",
                            Some(&a),
                            Request::new("GET", resource.list_path.clone()),
                        )
                        .await;
                    if ignored
                        .iter()
                        .any(|c| String::from_utf8_lossy(&seen.body).contains(c.as_str()))
                    {
                        run.finding(
                            "ORG-002",
                            format!("POST {path} as org B wrote into org A"),
                            vec![created.transcript, seen.transcript],
                        );
                    }
                }
            }
        }
        if run.ran("ORG-003") {
            for header in &target.org_headers {
                run.send(
                    "ORG-003",
                    Some(&b),
                    Request::new("GET", resource.list_path.clone()).header(header, org_a.clone()),
                )
                .await;
            }
        }
        if run.ran("ORG-009") {
            let reply = run
                .send(
                    "ORG-009",
                    Some(&personal),
                    Request::new("GET", resource.list_path.clone()),
                )
                .await;
            if reply.status != 403 {
                run.finding(
                    "ORG-009",
                    format!(
                        "a token without an active org got {} on {}",
                        reply.status, resource.list_path
                    ),
                    vec![reply.transcript],
                );
            }
        }
        let ses_001 = run.ran("SES-001");
        let ses_002 = run.ran("SES-002");
        if ses_001 || ses_002 {
            identity.set_active(&alice_session, Some(&org_b)).await?;
            let switched = Actor {
                org: org_b.clone(),
                token: identity.token(&alice_session).await?,
            };
            run.send(
                "SES-001",
                Some(&switched),
                Request::new("GET", resource.list_path.clone()),
            )
            .await;
            let reply = run
                .send(
                    "SES-001",
                    Some(&switched),
                    Request::new("GET", item_path(&item_a.id)),
                )
                .await;
            if !refused(reply.status) {
                run.finding(
                    "SES-001",
                    format!(
                        "after switching to org B, org A's {} {} answered {}",
                        resource.name, item_a.id, reply.status
                    ),
                    vec![reply.transcript],
                );
            }
            for template in &resource.org_paths {
                let path = template.replace("{org}", &org_b);
                let stale = run
                    .send("SES-002", Some(&a), Request::new("GET", path.clone()))
                    .await;
                if stale.status == 200
                    && String::from_utf8_lossy(&stale.body).contains(item_b.canaries[0].as_str())
                {
                    run.finding(
                        "SES-002",
                        format!("org A's token read org B's data at {path}"),
                        vec![stale.transcript],
                    );
                }
            }
            identity.set_active(&alice_session, Some(&org_a)).await?;
        }
        if run.ran("ISO-003") {
            let reply = run
                .send("ISO-003", Some(&b), Request::new("DELETE", item_path(&item_a.id)))
                .await;
            let still = run
                .send("ISO-003", Some(&a), Request::new("GET", item_path(&item_a.id)))
                .await;
            if !refused(reply.status) || still.status != 200 {
                run.finding(
                    "ISO-003",
                    format!(
                        "org B deleted org A's {} {}: {}",
                        resource.name, item_a.id, reply.status
                    ),
                    vec![reply.transcript, still.transcript],
                );
            }
        }
        if run.ran("ISO-007") {
            let reply = run
                .send("ISO-007", Some(&b), Request::new("DELETE", item_path(&item_b.id)))
                .await;
            let after = run
                .send("ISO-007", Some(&b), Request::new("GET", item_path(&item_b.id)))
                .await;
            if reply.status >= 300 || after.status != 404 {
                run.finding(
                    "ISO-007",
                    format!(
                        "after DELETE ({}) the {} answered {}",
                        reply.status, resource.name, after.status
                    ),
                    vec![reply.transcript, after.transcript],
                );
            }
        }
    }
    if run.ran("ISO-009") {
        // Alternate A and B on every cached endpoint: each must only ever see its own.
        for path in &target.cached_paths {
            for _ in 0..2 {
                for actor in [&a, &b] {
                    run.send("ISO-009", Some(actor), Request::new("GET", path.clone()))
                        .await;
                }
            }
        }
    }
    if run.ran("ISO-008") {
        for job in &target.jobs {
            let started = run
                .send(
                    "ISO-008",
                    Some(&b),
                    Request::new("POST", job.start_path.clone()).json(serde_json::json!({})),
                )
                .await;
            let Some(id) = started
                .json()
                .pointer(&job.id_pointer)
                .and_then(Value::as_str)
                .map(String::from)
            else {
                run.finding(
                    "ISO-008",
                    format!(
                        "POST {} answered {} without a job id",
                        job.start_path, started.status
                    ),
                    vec![started.transcript],
                );
                continue;
            };
            let path = job.poll_path.replace("{id}", &id);
            let deadline = Instant::now() + Duration::from_secs(15);
            loop {
                let polled = run
                    .send("ISO-008", Some(&b), Request::new("GET", path.clone()))
                    .await;
                let status = polled
                    .json()
                    .pointer(&job.status_pointer)
                    .and_then(Value::as_str)
                    .map(String::from);
                if status.is_some_and(|s| job.final_statuses.contains(&s)) || Instant::now() > deadline {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let foreign = run
                .send("ISO-008", Some(&a), Request::new("GET", path.clone()))
                .await;
            if !refused(foreign.status) {
                run.finding(
                    "ISO-008",
                    format!("org A read org B's job {id}: {}", foreign.status),
                    vec![foreign.transcript],
                );
            }
        }
    }
    run.report.requests = client.requests_sent();
    run.report.elapsed = started.elapsed();
    Ok(run.report)
}
