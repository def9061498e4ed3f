//! The audit: a world of two orgs (and the users the session checks need) is
//! provisioned through the profile's session source, every resource type of
//! the profile is created in both orgs with canaries in its text fields, and
//! the ISO, ORG and SES probes of the catalogue run against it — every
//! response scanned by the [`Oracle`] for the other org's canaries and ids,
//! every status compared with what a correct tenant system answers.
//!
//! The world: org `a` (alice admin, carol member, dave admin), org `b` (bob
//! admin, alice member). Probes act as `bob@b` against `a`'s data unless
//! they say otherwise.

mod forge;
pub use forge::set_pointer;
mod probes;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::checks::{self, Check, Selection};
use crate::client::{Client, Reply, Request};
use crate::oracle::{CanarySource, NeedleKind, Oracle};
use crate::profile::{Profile, SessionSpec};
use crate::session::{CommandConfig, MintConfig, Placement, SessionError, Sessions};
use crate::template::{RenderError, RequestTemplate};
use crate::world::{Org, World, WorldSpec};

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
    /// A scenario file that reproduces it (campaign findings).
    pub reproduction: Option<String>,
}

/// What an audit found.
#[derive(Debug, Default)]
pub struct Report {
    /// The target's name.
    pub target: String,
    /// The seed the run used.
    pub seed: u64,
    /// Checks run, in order.
    pub checks_run: Vec<&'static str>,
    /// Findings.
    pub findings: Vec<Finding>,
    /// Requests sent.
    pub requests: u64,
    /// Of those, status polls of background jobs: their number depends on
    /// how fast the target works, everything else on the seed alone.
    pub polls: u64,
    /// Wall time.
    pub elapsed: Duration,
}

impl Report {
    /// The report as JSON (schema `tenantry.audit/1`).
    pub fn to_json(&self) -> Value {
        serde_json::json!({
            "schema": "tenantry.audit/1",
            "target": self.target,
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
                "reproduction": f.reproduction,
            })).collect::<Vec<_>>(),
        })
    }
}

impl Report {
    /// Adds the findings and counts of another pass over the same target,
    /// its messages prefixed with `label`.
    pub fn absorb(&mut self, other: Report, label: &str) {
        for id in other.checks_run {
            if !self.checks_run.contains(&id) {
                self.checks_run.push(id);
            }
        }
        for mut f in other.findings {
            f.message = format!("{label}: {}", f.message);
            self.findings.push(f);
        }
        self.requests += other.requests;
        self.polls += other.polls;
        self.elapsed += other.elapsed;
    }

    /// A finding of check `id` (unknown ids are ignored), unless the same
    /// check already reported the same message.
    pub fn add_finding(&mut self, id: &str, message: String, evidence: Vec<String>) {
        let Some(check) = checks::find(id) else {
            return;
        };
        if self
            .findings
            .iter()
            .any(|f| f.check.id == check.id && f.message == message)
        {
            return;
        }
        self.findings.push(Finding {
            check,
            message,
            evidence,
            reproduction: None,
        });
    }
}

/// Why the audit could not run.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// Provisioning the world or getting a token failed.
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
    /// A template could not be filled.
    #[error("profile template: {0}")]
    Template(#[from] RenderError),
    /// The target did not answer at all.
    #[error("the target did not answer: {0}")]
    Unreachable(String),
    /// The token suite could not judge the target.
    #[error("token suite: {0}")]
    Tokens(crate::tokens::SuiteError),
}

// By hand, not `#[from]`: the message already carries the suite's error,
// which as a source too would be printed twice.
impl From<crate::tokens::SuiteError> for AuditError {
    fn from(e: crate::tokens::SuiteError) -> Self {
        AuditError::Tokens(e)
    }
}

/// Where the audit is (for progress bars).
#[derive(Debug, Clone)]
pub struct Progress {
    /// Phases done.
    pub done: u64,
    /// Phases in all.
    pub total: u64,
    /// What it is doing now.
    pub label: String,
}

/// Whether `selection` includes any check the audit runs.
pub fn selects_any(selection: &Selection) -> bool {
    checks::CHECKS
        .iter()
        .filter(|c| {
            matches!(c.family, "ISO" | "ORG" | "SES")
                && !matches!(c.id, "SES-005" | "SES-006" | "SES-007" | "SES-008")
        })
        .any(|c| selection.includes(c))
}

/// The session source a profile names, over `client`.
pub async fn sessions_for(profile: &Profile, client: &Client) -> Result<Sessions, AuditError> {
    let placement = if profile.token_in_header {
        Placement::Header
    } else {
        Placement::Cookie
    };
    let sessions = match &profile.session {
        SessionSpec::ClerkApi {
            api_url,
            secret_key,
            origin,
        } => {
            let identity = if api_url == client.base() {
                client.clone()
            } else {
                Client::new(api_url, 16, Duration::from_secs(20))
            };
            Sessions::clerk(identity, secret_key, origin.as_deref())
        }
        SessionSpec::Mint {
            issuer,
            azp,
            lifetime,
            listen,
            public_pem,
        } => {
            let mut config = MintConfig::new(issuer.clone());
            config.azp = azp.clone();
            config.lifetime = *lifetime;
            config.listen = listen.parse().map_err(|_| {
                SessionError::new("session source", format!("listen = `{listen}` is not an address"))
            })?;
            config.public_pem = public_pem.as_ref().map(std::path::PathBuf::from);
            config.provisioning = profile.provision.clone();
            Sessions::mint(config, client.clone()).await?
        }
        SessionSpec::Command { argv, timeout } => Sessions::command(
            CommandConfig {
                argv: argv.clone(),
                timeout: *timeout,
                provisioning: profile.provision.clone(),
            },
            client.clone(),
        )?,
    };
    Ok(sessions.with_placement(placement))
}

/// Who sends a request.
#[derive(Debug, Clone)]
struct Actor {
    /// `user@org` for evidence.
    label: String,
    /// Active org (None: personal account or anonymous).
    org: Option<Org>,
    /// Token (None: anonymous).
    token: Option<String>,
}

impl Actor {
    fn anonymous() -> Self {
        Self {
            label: "anonymous".into(),
            org: None,
            token: None,
        }
    }

    fn org_id(&self) -> &str {
        self.org.as_ref().map_or("(none)", |o| o.id.as_str())
    }
}

/// One created resource.
#[derive(Debug, Clone)]
struct Item {
    id: String,
    canaries: Vec<String>,
    parent: Option<String>,
}

/// Values a template may use besides `org`, `org_slug` and `canary`.
#[derive(Debug, Clone, Default)]
struct Vars<'a> {
    id: Option<&'a str>,
    parent: Option<&'a str>,
    q: Option<&'a str>,
}

struct Run<'a> {
    profile: &'a Profile,
    selection: &'a Selection,
    client: Client,
    placement: Placement,
    oracle: Oracle,
    canaries: CanarySource,
    report: Report,
    progress: &'a mut dyn FnMut(&Progress),
    step: Progress,
    /// Created items by (resource, org key).
    items: HashMap<(String, String), Vec<Item>>,
}

impl Run<'_> {
    fn tick(&mut self, label: String) {
        self.step.done += 1;
        self.step.label = label;
        (self.progress)(&self.step);
    }

    fn selected(&self, id: &str) -> bool {
        checks::find(id).is_some_and(|c| self.selection.includes(c))
    }

    /// Whether check `id` is selected; records that it ran.
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

    fn finding(&mut self, id: &str, message: String, evidence: Vec<String>) {
        if let Some(check) = checks::find(id) {
            if !self
                .report
                .findings
                .iter()
                .any(|f| f.check.id == check.id && f.message == message)
            {
                self.report.findings.push(Finding {
                    check,
                    message,
                    evidence,
                    reproduction: None,
                });
            }
        }
    }

    /// Fills `template` for `actor` (`org` = the actor's org unless
    /// `org_override`); fresh canaries are registered to the actor's org.
    fn render(
        &mut self,
        template: &RequestTemplate,
        actor: &Actor,
        org_override: Option<(&str, &str)>,
        vars: &Vars<'_>,
        fresh: &mut Vec<String>,
    ) -> Result<Request, AuditError> {
        let (org_id, org_slug) = match (org_override, &actor.org) {
            (Some((id, slug)), _) => (id.to_string(), slug.to_string()),
            (None, Some(o)) => (o.id.clone(), o.slug.clone()),
            (None, None) => (String::new(), String::new()),
        };
        let canaries = &mut self.canaries;
        let request = template.render(&mut |name| match name {
            "org" => Some(org_id.clone()),
            "org_slug" => Some(org_slug.clone()),
            "canary" => {
                let c = canaries.canary();
                fresh.push(c.clone());
                Some(c)
            }
            "id" => vars.id.map(String::from),
            "parent" => vars.parent.map(String::from),
            "q" => vars.q.map(String::from),
            _ => None,
        })?;
        let owner = actor.org_id().to_string();
        for c in fresh.iter() {
            let _ = self.oracle.register(
                c,
                &owner,
                NeedleKind::Canary,
                &format!("written by {}", actor.label),
            );
        }
        Ok(request)
    }

    /// Sends as `actor`, retrying politely on 429, and scans the answer for
    /// foreign needles (those the request itself carried excepted: an echo
    /// of the attacker's own input is not a leak).
    async fn send(&mut self, check: &str, actor: &Actor, request: Request) -> Reply {
        let request = match &actor.token {
            Some(token) => self.placement.apply(request, token),
            None => request,
        };
        let reply = self.client.send_patiently(request.clone()).await;
        let sent = request_text(&request);
        let active = actor.org_id().to_string();
        let leaks: Vec<_> = self
            .oracle
            .scan(&active, &reply.scan_text())
            .into_iter()
            .filter(|l| !sent.contains(l.needle.as_str()))
            .collect();
        if let Some(leak) = leaks.first() {
            let message = format!(
                "the response to {} {} for {} contains {} {} of org {} ({})",
                request.method,
                request.path,
                actor.label,
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
                    "{} {} answered {} (a request must never crash the server)",
                    request.method, request.path, reply.status
                ),
                vec![reply.transcript.clone()],
            );
        }
        reply
    }
}

/// Everything a request carries, as text (path, headers, body).
pub(crate) fn request_text(request: &Request) -> String {
    let mut text = request.path.clone();
    for (k, v) in &request.headers {
        text.push_str(&format!("\n{k}: {v}"));
    }
    if let Some(json) = &request.json {
        text.push_str(&json.to_string());
    }
    if let Some(form) = &request.form {
        for (k, v) in form {
            text.push_str(&format!("\n{k}={v}"));
        }
    }
    if let Some((_, raw)) = &request.raw {
        text.push_str(&String::from_utf8_lossy(raw));
    }
    // Percent-decoded too, so an encoded echo counts as an echo.
    let decoded = percent_decode(&text);
    text.push('\n');
    text.push_str(&decoded);
    text
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() && s.is_char_boundary(i + 3) {
            if let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(if bytes[i] == b'+' { b' ' } else { bytes[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The world every audit provisions. `tag` keeps names unique per run.
fn world_spec(tag: &str) -> WorldSpec {
    WorldSpec::tagged(
        "Audit",
        "audit",
        tag,
        &["a", "b"],
        &[
            ("alice", &[("a", "org:admin"), ("b", "org:member")]),
            ("bob", &[("b", "org:admin")]),
            ("carol", &[("a", "org:member")]),
            ("dave", &[("a", "org:admin")]),
        ],
    )
}

async fn actor(
    sessions: &mut Sessions,
    world: &World,
    user: &str,
    org: Option<&str>,
) -> Result<Actor, AuditError> {
    let token = sessions.token(world, user, org).await?;
    Ok(Actor {
        label: match org {
            Some(o) => format!("{user}@{o}"),
            None => format!("{user} (personal account)"),
        },
        org: org.and_then(|o| world.org(o)).cloned(),
        token: Some(token),
    })
}

/// Runs the audit of `profile` with `sessions` (see [`sessions_for`]).
/// `seed` fixes every name and canary the harness chooses (the target's own
/// ids still vary). `progress` hears about each phase.
pub async fn run(
    profile: &Profile,
    client: &Client,
    sessions: &mut Sessions,
    selection: &Selection,
    seed: u64,
    progress: &mut dyn FnMut(&Progress),
) -> Result<Report, AuditError> {
    let started = Instant::now();
    let sent_before = client.requests_sent();
    let mut canaries = CanarySource::new(seed);
    let tag_canary = canaries.canary();
    let tag = tag_canary[4..14].to_string();
    let health = client.send(Request::new("GET", "/")).await;
    if health.status == 0 {
        return Err(AuditError::Unreachable(
            String::from_utf8_lossy(&health.body).into_owned(),
        ));
    }
    let mut world = sessions.provision(&world_spec(&tag)).await?;
    let mut oracle = Oracle::new();
    for org in &world.orgs {
        let _ = oracle.register(&org.id, &org.id, NeedleKind::Id, "organization");
    }
    let per_resource = probes::PHASES;
    let total = 2 + profile.resources.len() as u64 * per_resource + forge::PHASES + 4;
    let mut run = Run {
        profile,
        selection,
        client: client.clone(),
        placement: sessions.placement(),
        oracle,
        canaries,
        report: Report {
            target: profile.name.clone(),
            seed,
            ..Report::default()
        },
        progress,
        step: Progress {
            done: 0,
            total,
            label: String::new(),
        },
        items: HashMap::new(),
    };
    run.tick("world provisioned".into());
    let a = actor(sessions, &world, "alice", Some("a")).await?;
    let b = actor(sessions, &world, "bob", Some("b")).await?;
    let personal = actor(sessions, &world, "alice", None).await?;

    // Every resource type in both orgs (children under their org's parent).
    for resource in &profile.resources {
        for actor in [&a, &b] {
            let item = probes::create(&mut run, resource, actor).await?;
            let key = (
                resource.name.clone(),
                actor.org.as_ref().map(|o| o.key.clone()).unwrap_or_default(),
            );
            run.items.entry(key).or_default().push(item);
        }
    }
    run.tick("resources created in both orgs".into());

    for resource in &profile.resources {
        probes::resource(&mut run, resource, &a, &b, &personal).await?;
    }
    forge::run(&mut run, &a, &b).await?;
    probes::cached(&mut run, &a, &b).await;
    probes::jobs(&mut run, &a, &b).await;
    probes::org_switch(&mut run, sessions, &world, &a).await?;
    probes::membership_changes(&mut run, sessions, &mut world).await?;
    for resource in &profile.resources {
        probes::destructive(&mut run, resource, &a, &b).await?;
    }
    run.report.requests = client.requests_sent() - sent_before;
    run.report.elapsed = started.elapsed();
    Ok(run.report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echoes_are_recognised_encoded_or_not() {
        let request = Request::new("GET", "/x?org_id=%6Frg_1%20").header("x-org-id", "org_2");
        let text = request_text(&request);
        assert!(text.contains("org_1 "));
        assert!(text.contains("org_2"));
        assert_eq!(percent_decode("a%2"), "a%2");
        assert_eq!(percent_decode("%e2%82%ac+"), "€ ");
    }
}
