//! Sends every case on one org-scoped probe request and judges the answer:
//! refused (401/403) passes; accepted (2xx/3xx) or a server error (5xx) is a
//! finding of the case's check with the redacted transcript as evidence.
//! The valid token must be accepted on the same probe first — a target that
//! refuses it cannot be judged, and the suite says so instead of passing.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures::StreamExt;
use serde_json::{json, Value};

use super::catalogue::{
    self, echoes_marker, BuildError, Case, Delivery, Judge, Material, FOREIGN_APP, REFLECT_MARKER,
};
use super::keys::{AttackerKeys, KeyError, RsaKey};
use super::listener::{KeyUrlListener, ListenerError};
use crate::audit::{AuditError, Finding, Report};
use crate::checks::{self, Selection};
use crate::client::{unverified_claims, Client, Reply, Request};
use crate::oracle::CanarySource;
use crate::profile::{Profile, SessionSpec};
use crate::session::{Issued, Placement, Sessions};
use crate::template::RequestTemplate;
use crate::world::{World, WorldSpec};

/// Requests in flight at once.
const CONCURRENCY: usize = 8;

/// What the suite attacks.
#[derive(Debug)]
pub struct TokenTarget {
    /// The client (its registered secrets are redacted from evidence).
    pub client: Client,
    /// Where tokens go.
    pub placement: Placement,
    /// An org-scoped request the valid token is allowed to make.
    pub probe: Request,
    /// A valid session token of the target (org-scoped).
    pub token: String,
    /// The target's public JWKS.
    pub jwks: Value,
    /// The target's signing key, when the harness holds it: enables the
    /// re-signed cases.
    pub signing_key: Option<RsaKey>,
    /// Another org (id, slug) for TOK-023.
    pub foreign_org: Option<(String, String)>,
    /// Tokens the identity service issued that must not work as session
    /// tokens here (Backend API token, another app's token, template token).
    pub issued: Vec<Case>,
    /// Canaries planted in the orgs (canary, org id): named in findings when
    /// an accepted answer carries one.
    pub canaries: Vec<(String, String)>,
}

/// Why the suite could not judge the target.
#[derive(Debug, thiserror::Error)]
pub enum SuiteError {
    /// The valid token was not accepted on the probe.
    #[error("the valid session token was not accepted on the probe ({status}), so no attack can be judged:\n{transcript}")]
    BaselineRefused {
        /// Its status.
        status: u16,
        /// The redacted exchange.
        transcript: String,
    },
    /// The JWKS could not be read.
    #[error("the target's JWKS: {0}")]
    Jwks(String),
    /// The operator's signing key is not one the target publishes.
    #[error("the signing key given is not in the target's JWKS (kids: {0}); the re-signed cases would prove nothing with it")]
    ForeignKey(String),
    /// The cases could not be built.
    #[error(transparent)]
    Build(#[from] BuildError),
    /// A key could not be made.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// TOK-010's listener did not start.
    #[error(transparent)]
    Listener(#[from] ListenerError),
}

/// What happened to one case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// 401 or 403.
    Refused,
    /// Another 4xx: refused, though not with the expected status.
    RefusedOtherStatus,
    /// 2xx or 3xx.
    Accepted,
    /// 5xx.
    ServerError,
    /// No answer (transport failure).
    NoAnswer,
}

impl Outcome {
    fn of(status: u16) -> Self {
        match status {
            0 => Outcome::NoAnswer,
            401 | 403 => Outcome::Refused,
            400..=499 => Outcome::RefusedOtherStatus,
            500.. => Outcome::ServerError,
            _ => Outcome::Accepted,
        }
    }
}

/// The verdict of one case (Autobahn-style: every case has one).
#[derive(Debug, Clone)]
pub struct Verdict {
    /// Check id.
    pub check: &'static str,
    /// Variant.
    pub variant: String,
    /// Re-signed with the target's key.
    pub resigned: bool,
    /// Status answered.
    pub status: u16,
    /// Outcome.
    pub outcome: Outcome,
}

/// What the suite found.
#[derive(Debug, Default)]
pub struct SuiteReport {
    /// Checks that ran (had at least one case), in catalogue order.
    pub checks_run: Vec<&'static str>,
    /// Findings.
    pub findings: Vec<Finding>,
    /// Every case's verdict.
    pub verdicts: Vec<Verdict>,
    /// Key-URL fetches the target made (TOK-010).
    pub fetched: Vec<String>,
}

pub(crate) fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn request_for(target: &TokenTarget, case: &Case) -> Request {
    match &case.delivery {
        Delivery::Token(token) => target.placement.apply(target.probe.clone(), token),
        Delivery::Headers(headers) => {
            let mut request = target.probe.clone();
            for (k, v) in headers {
                request = request.header(k, v.clone());
            }
            request
        }
    }
}

fn finding(id: &str, message: String, evidence: Vec<String>) -> Option<Finding> {
    checks::find(id).map(|check| Finding {
        check,
        message,
        evidence,
        reproduction: None,
    })
}

/// Runs every selected case against `target`.
pub async fn run(target: &TokenTarget, selection: &Selection) -> Result<SuiteReport, SuiteError> {
    target.client.register_secret(&target.token);
    let baseline = target
        .client
        .send_patiently(target.placement.apply(target.probe.clone(), &target.token))
        .await;
    if !(200..300).contains(&baseline.status) {
        return Err(SuiteError::BaselineRefused {
            status: baseline.status,
            transcript: baseline.transcript,
        });
    }
    let attacker = tokio::task::spawn_blocking(AttackerKeys::generate)
        .await
        .map_err(|e| KeyError::Crypto(e.to_string()))??;
    let kid = crate::tokens::jwt::Jwt::parse(&target.token)
        .map_err(BuildError::from)?
        .kid()
        .unwrap_or_default()
        .to_string();
    let listener = KeyUrlListener::start(attacker.jwks_as(&kid), attacker.certificate_pem()).await?;
    let material = Material {
        token: &target.token,
        jwks: &target.jwks,
        attacker: &attacker,
        signing_key: target.signing_key.as_ref(),
        key_urls: Some(&listener),
        foreign_org: target
            .foreign_org
            .as_ref()
            .map(|(id, slug)| (id.as_str(), slug.as_str())),
        now: now_secs(),
    };
    let mut cases = catalogue::build(&material)?;
    cases.extend(target.issued.iter().cloned());
    cases.retain(|c| checks::find(c.check).is_some_and(|check| selection.includes(check)));
    cases.sort_by_key(|c| c.check);
    for case in cases.iter().filter(|c| c.resigned) {
        // Validly signed with the target's key: credentials.
        for token in case.tokens() {
            target.client.register_secret(token);
        }
    }

    let replies: Vec<Reply> = futures::stream::iter(cases.iter().map(|case| {
        let request = request_for(target, case);
        let client = target.client.clone();
        async move { client.send_patiently(request).await }
    }))
    .buffered(CONCURRENCY)
    .collect()
    .await;

    let mut report = SuiteReport::default();
    for check in checks::CHECKS.iter().filter(|c| c.family == "TOK") {
        if cases.iter().any(|c| c.check == check.id) {
            report.checks_run.push(check.id);
        }
    }
    let probe = format!("{} {}", target.probe.method, target.probe.path);
    for (case, reply) in cases.iter().zip(replies) {
        let outcome = Outcome::of(reply.status);
        report.verdicts.push(Verdict {
            check: case.check,
            variant: case.variant.clone(),
            resigned: case.resigned,
            status: reply.status,
            outcome,
        });
        let message = match (outcome, case.judge) {
            (Outcome::ServerError, _) => Some(format!(
                "{}: {probe} answered {} (a token must never crash the server)",
                case.variant, reply.status
            )),
            _ if case.judge == Judge::MustRefuseUnechoed && echoes_marker(&reply) => Some(format!(
                "{}: {probe} answered {} echoing a claim of a token whose signature does not verify (`{REFLECT_MARKER}…`): claims are processed before the signature is checked",
                case.variant, reply.status
            )),
            (Outcome::Accepted, Judge::MustRefuse | Judge::MustRefuseUnechoed) => {
                let body = String::from_utf8_lossy(&reply.body);
                let leaked: Vec<&str> = target
                    .canaries
                    .iter()
                    .filter(|(canary, _)| body.contains(canary.as_str()))
                    .map(|(_, org)| org.as_str())
                    .collect();
                let leak = if leaked.is_empty() {
                    String::new()
                } else {
                    format!("; the answer carries canaries of org {}", leaked.join(", "))
                };
                Some(format!(
                    "{}: {probe} answered {} (expected 401/403){leak}",
                    case.variant, reply.status
                ))
            }
            _ => None,
        };
        if let Some(message) = message {
            report
                .findings
                .extend(finding(case.check, message, vec![reply.transcript]));
        }
    }
    if report.checks_run.contains(&"TOK-010") {
        // A fetch may happen after the answer (background key refresh).
        tokio::time::sleep(Duration::from_millis(200)).await;
        report.fetched = listener.hits();
        for path in &report.fetched {
            report.findings.extend(finding(
                "TOK-010",
                format!("the target fetched {path} from the suite's listener, a key URL named by a token header (an outbound fetch chosen by the token)"),
                Vec::new(),
            ));
        }
    }
    Ok(report)
}

/// Options of [`audit_with`].
#[derive(Debug, Default)]
pub struct AuditOptions {
    /// The target's signing key, when the operator hands it over; its
    /// `kid` is taken from the target's JWKS, and a key the JWKS lacks is an
    /// error. The `mint` source's own key is used without it.
    pub signing_key: Option<RsaKey>,
}

/// The TOK suite as an audit pass: provisions a small world, plants
/// canaries, gets a valid token and the JWKS, and runs every selected case.
pub async fn audit(
    profile: &Profile,
    client: &Client,
    sessions: &mut Sessions,
    selection: &Selection,
    seed: u64,
) -> Result<Report, AuditError> {
    audit_with(
        profile,
        client,
        sessions,
        selection,
        seed,
        AuditOptions::default(),
    )
    .await
}

/// Whether `selection` includes a TOK check.
pub fn selects_any(selection: &Selection) -> bool {
    selection.includes_family("TOK")
}

fn world_spec(tag: &str) -> WorldSpec {
    WorldSpec::tagged(
        "Tokens",
        "tok",
        tag,
        &["a", "b"],
        &[
            ("alice", &[("a", "org:admin")]),
            ("bob", &[("b", "org:admin")]),
            ("carol", &[("a", "org:member")]),
        ],
    )
}

fn render(
    template: &RequestTemplate,
    world: &World,
    org: &str,
    canary: Option<&str>,
    id: Option<&str>,
) -> Result<Request, AuditError> {
    let (org_id, org_slug) = world
        .org(org)
        .map(|o| (o.id.clone(), o.slug.clone()))
        .unwrap_or_default();
    Ok(template.render(&mut |name| match name {
        "org" => Some(org_id.clone()),
        "org_slug" => Some(org_slug.clone()),
        "canary" => canary.map(String::from),
        "id" => id.map(String::from),
        _ => None,
    })?)
}

pub(crate) async fn jwks(
    profile: &Profile,
    client: &Client,
    sessions: &Sessions,
) -> Result<Value, AuditError> {
    let mut urls = Vec::new();
    urls.extend(sessions.jwks_url());
    urls.push("/.well-known/jwks.json".to_string());
    if let SessionSpec::ClerkApi { api_url, .. } = &profile.session {
        urls.push(format!("{}/v1/jwks", api_url.trim_end_matches('/')));
    }
    let mut tried = Vec::new();
    for url in urls {
        let reply = client.send(Request::new("GET", url.clone())).await;
        let body = reply.json();
        if reply.status == 200 && body.get("keys").is_some_and(Value::is_array) {
            return Ok(body);
        }
        tried.push(format!("{url}: {}", reply.status));
    }
    Err(SuiteError::Jwks(format!("no JWKS found (tried {})", tried.join(", "))).into())
}

/// `key` named as the target's JWKS names it. The operator's key counts
/// only if the target publishes it: re-signed cases with another key would
/// prove nothing, so a key the JWKS lacks is an error.
fn adopt(mut key: RsaKey, jwks: &Value) -> Result<RsaKey, SuiteError> {
    match key.kid_in(jwks) {
        Some(kid) => {
            key.kid = kid;
            Ok(key)
        }
        None => {
            let kids: Vec<&str> = jwks
                .get("keys")
                .and_then(Value::as_array)
                .map(|keys| {
                    keys.iter()
                        .map(|k| k.get("kid").and_then(Value::as_str).unwrap_or("?"))
                        .collect()
                })
                .unwrap_or_default();
            Err(SuiteError::ForeignKey(kids.join(", ")))
        }
    }
}

/// The operator's signing `key` checked against the target's JWKS and
/// named by it, for the scenario runner and the fuzzer (the audit's token
/// suite does the same with the JWKS it reads anyway).
pub async fn adopt_signing_key(
    profile: &Profile,
    client: &Client,
    key: RsaKey,
) -> Result<RsaKey, AuditError> {
    let sessions = crate::audit::sessions_for(profile, client).await?;
    let jwks = jwks(profile, client, &sessions).await?;
    Ok(adopt(key, &jwks)?)
}

/// [`audit`] with options.
pub async fn audit_with(
    profile: &Profile,
    client: &Client,
    sessions: &mut Sessions,
    selection: &Selection,
    seed: u64,
    options: AuditOptions,
) -> Result<Report, AuditError> {
    let started = Instant::now();
    let sent_before = client.requests_sent();
    let mut report = Report {
        target: profile.name.clone(),
        seed,
        ..Report::default()
    };
    if !selects_any(selection) {
        return Ok(report);
    }
    let mut canaries = CanarySource::new(seed);
    let tag = canaries.canary()[4..14].to_string();
    let health = client.send(Request::new("GET", "/")).await;
    if health.status == 0 {
        return Err(AuditError::Unreachable(
            String::from_utf8_lossy(&health.body).into_owned(),
        ));
    }
    let world = sessions.provision(&world_spec(&tag)).await?;
    let placement = sessions.placement();

    // A canary item in each org, and the probe: org a's list (or the item).
    let resource = profile
        .resources
        .iter()
        .find(|r| r.parent.is_none())
        .ok_or_else(|| AuditError::Setup {
            resource: "(none)".into(),
            org: "a".into(),
            detail: "the profile has no top-level resource to probe with".into(),
        })?;
    let mut planted = Vec::new();
    let mut item_a = None;
    for (user, org) in [("alice", "a"), ("bob", "b")] {
        let token = sessions.token(&world, user, Some(org)).await?;
        let canary = canaries.canary();
        client.register_secret(&token);
        let request = render(&resource.create, &world, org, Some(&canary), None)?;
        let reply = client.send_patiently(placement.apply(request, &token)).await;
        if !(200..300).contains(&reply.status) {
            return Err(AuditError::Setup {
                resource: resource.name.clone(),
                org: org.into(),
                detail: format!("HTTP {}", reply.status),
            });
        }
        let org_id = world.org(org).map(|o| o.id.clone()).unwrap_or_default();
        planted.push((canary, org_id));
        if org == "a" {
            item_a = reply.json().pointer(&resource.id_pointer).and_then(|v| match v {
                Value::String(s) => Some(s.clone()),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            });
        }
    }
    let probe = match (&resource.list, &resource.read, &item_a) {
        (Some(list), _, _) => render(list, &world, "a", None, None)?,
        (None, Some(read), Some(id)) => render(read, &world, "a", None, Some(id))?,
        _ => {
            return Err(AuditError::Setup {
                resource: resource.name.clone(),
                org: "a".into(),
                detail: "the resource has neither a list nor a readable id to probe with".into(),
            })
        }
    };

    let token = sessions.token(&world, "carol", Some("a")).await?;
    let jwks = jwks(profile, client, sessions).await?;
    let signing_key = match options.signing_key {
        Some(key) => Some(adopt(key, &jwks)?),
        None => match sessions.signing_key_pkcs8()? {
            Some((kid, der)) => Some(RsaKey::from_pkcs8(&kid, &der).map_err(SuiteError::from)?),
            None => None,
        },
    };

    // Tokens the identity service itself issues that are not this app's
    // session tokens: the legitimate way to probe azp and sid checks without
    // the signing key.
    let mut issued = Vec::new();
    let selected = |id: &str| checks::find(id).is_some_and(|c| selection.includes(c));
    let has_azp = unverified_claims(&token).is_some_and(|c| c.get("azp").is_some_and(Value::is_string));
    let mut wanted: Vec<(&'static str, String, Issued<'_>)> = Vec::new();
    if selected("TOK-020") && has_azp {
        wanted.push((
            "TOK-020",
            "a Backend API token of the session (no azp)".into(),
            Issued::BackendApi,
        ));
    }
    if selected("TOK-024") {
        wanted.push((
            "TOK-024",
            format!("a session token the identity service issued to another app ({FOREIGN_APP})"),
            Issued::ForOrigin(FOREIGN_APP),
        ));
    }
    let template = format!("tenantry-tok-{tag}");
    if selected("TOK-018") {
        let claims = json!({
            "o": { "id": "{{org.id}}", "slg": "{{org.slug}}", "rol": "{{org.role}}" },
            "sts": "active",
        });
        match sessions.create_template(&template, claims).await {
            Ok(true) => wanted.push((
                "TOK-018",
                "a JWT-template token of the session shaped like a session token (o, sts; no sid)".into(),
                Issued::Template(&template),
            )),
            Ok(false) => {}
            Err(e) => {
                tracing::info!(error = %e, "no JWT template: TOK-018 runs without an issued template token")
            }
        }
    }
    for (check, variant, kind) in wanted {
        match sessions.issued_token(&world, "carol", Some("a"), kind).await {
            Ok(Some(token)) => issued.push(Case::refuse(check, variant, token)),
            Ok(None) => {}
            // An identity service that will not issue it has nothing to test.
            Err(e) => tracing::info!(check, error = %e, "the identity service did not issue the token"),
        }
    }

    let foreign_org = world.org("b").map(|o| (o.id.clone(), o.slug.clone()));
    let target = TokenTarget {
        client: client.clone(),
        placement,
        probe,
        token,
        jwks,
        signing_key,
        foreign_org,
        issued,
        canaries: planted,
    };
    let suite = run(&target, selection).await?;
    report.checks_run = suite.checks_run;
    report.findings = suite.findings;
    report.requests = client.requests_sent() - sent_before;
    report.elapsed = started.elapsed();
    Ok(report)
}
