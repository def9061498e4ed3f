//! The sign-in and template suite: SES-005..008 and TPL-001..003.
//!
//! These checks drive the identity service's own flows — sign-in on a new
//! device (`needs_client_trust`), email codes, sign-out, JWT templates — so
//! they run only with the `clerk-api` session source: a Clerk-compatible
//! Frontend API (device cookie) and Backend API (secret key, test outbox for
//! email codes). With `mint` or `command` nothing of the kind exists to
//! drive: [`not_run_reason`] says why, and the report lists no check as run
//! (not run is not a pass).
//!
//! The app's own handlers on top of the identity service are where most
//! mistakes live (a sign-in handler that treats `needs_client_trust` as
//! signed in, a template helper that answers 500). They are not part of the
//! Clerk API, so the caller declares them in [`AppFlows`]; each check then
//! judges both the identity service and the app's handler.
//!
//! Every check provisions its own users (names fixed by the seed), never
//! sleeps, and needs no token to expire: SES-008 judges "refresh refused at
//! once" and the bound on the old token's exposure (its `exp`).

mod flows;
mod idp;
mod templates;

use std::time::Instant;

use serde_json::Value;

use crate::audit::{AuditError, Report};
use crate::checks::{self, Selection};
use crate::client::{Client, Reply, Request};
use crate::oracle::CanarySource;
use crate::profile::{Profile, SessionSpec};
use crate::session::Sessions;
use crate::template::RequestTemplate;

pub use idp::{jwt_of, Device, Idp};

/// The checks of this suite, in catalogue order.
pub const CHECK_IDS: &[&str] = &[
    "TPL-001", "TPL-002", "TPL-003", "SES-005", "SES-006", "SES-007", "SES-008",
];

/// The app's sign-in handler: what a product's backend puts in front of the
/// identity service's sign-in (its answers are read through JSON pointers).
#[derive(Debug, Clone)]
pub struct AppSignIn {
    /// Starts a sign-in; placeholders `{{ email }}` and `{{ password }}`.
    pub start: RequestTemplate,
    /// Submits an email code; placeholders `{{ sign_in }}` and `{{ code }}`.
    pub code: RequestTemplate,
    /// Where the answer says the attempt's status.
    pub status_pointer: String,
    /// The status that means signed in.
    pub complete: String,
    /// Where the answer names the created session.
    pub session_pointer: String,
    /// Where the answer names the sign-in attempt (for the code step).
    pub sign_in_pointer: String,
}

/// The app's template-token helper: asks for a JWT-template token for the
/// caller's session (the session token goes on it per the profile).
#[derive(Debug, Clone)]
pub struct AppTemplateHelper {
    /// The request; placeholder `{{ template }}`.
    pub request: RequestTemplate,
    /// Where the answer carries the token.
    pub jwt_pointer: String,
}

/// The app's handlers around the identity service, when it has them.
#[derive(Debug, Clone, Default)]
pub struct AppFlows {
    /// The sign-in handler (SES-005..007 drive it besides the Frontend API).
    pub sign_in: Option<AppSignIn>,
    /// The template-token helper (TPL-003 asks it for missing templates).
    pub template_helper: Option<AppTemplateHelper>,
}

/// Why the suite cannot run against `profile`, if it cannot.
pub fn not_run_reason(profile: &Profile) -> Option<&'static str> {
    match profile.session {
        SessionSpec::ClerkApi { .. } => None,
        _ => Some(
            "the sign-in and template checks drive the identity service's own flows; \
             they need the `clerk-api` session source",
        ),
    }
}

/// Whether `selection` includes any check of this suite.
pub fn selects_any(selection: &Selection) -> bool {
    CHECK_IDS
        .iter()
        .filter_map(|id| checks::find(id))
        .any(|c| selection.includes(c))
}

/// Runs the selected checks against the identity service of `profile` (and
/// an org-scoped request of its first listable resource as the probe a
/// fresh token must pass). No app handlers: see [`audit_with`].
pub async fn audit(
    profile: &Profile,
    client: &Client,
    sessions: &mut Sessions,
    selection: &Selection,
    seed: u64,
) -> Result<Report, AuditError> {
    audit_with(profile, client, sessions, selection, seed, &AppFlows::default()).await
}

/// [`audit`], also judging the app's handlers declared in `app`.
///
/// `sessions` is not drawn on: these flows need users whose passwords the
/// suite knows and devices it controls, so every check provisions its own
/// through the Backend API named by the profile's `clerk-api` source.
pub async fn audit_with(
    profile: &Profile,
    client: &Client,
    _sessions: &mut Sessions,
    selection: &Selection,
    seed: u64,
    app: &AppFlows,
) -> Result<Report, AuditError> {
    let started = Instant::now();
    let report = Report {
        target: profile.name.clone(),
        seed,
        ..Report::default()
    };
    let SessionSpec::ClerkApi {
        api_url,
        secret_key,
        origin,
    } = &profile.session
    else {
        return Ok(report);
    };
    if !selects_any(selection) {
        return Ok(report);
    }
    let identity = if api_url == client.base() {
        client.clone()
    } else {
        Client::new(api_url, 8, std::time::Duration::from_secs(20))
    };
    let sent_before = client.requests_sent();
    let mut canaries = CanarySource::new(seed);
    let tag = canaries.canary()[4..14].to_string();
    let mut run = Run {
        idp: Idp::new(identity.clone(), secret_key, origin.as_deref()),
        app_client: client.clone(),
        placement_header: profile.token_in_header,
        probe: probe(profile),
        app: app.clone(),
        selection,
        canaries,
        tag,
        report,
    };
    if run.ran("SES-005") {
        flows::client_trust_safety(&mut run).await?;
    }
    if run.ran("SES-006") {
        flows::client_trust_liveness(&mut run).await?;
    }
    if run.ran("SES-007") {
        flows::code_replay(&mut run).await?;
    }
    if run.ran("SES-008") {
        flows::signed_out(&mut run).await?;
    }
    if run.ran("TPL-001") {
        templates::claims(&mut run).await?;
    }
    if run.ran("TPL-002") {
        templates::lifetime(&mut run).await?;
    }
    if run.ran("TPL-003") {
        templates::fallback(&mut run).await?;
    }
    let mut report = run.report;
    report.requests = client.requests_sent() - sent_before + identity_requests(client, &identity);
    report.elapsed = started.elapsed();
    Ok(report)
}

/// Requests sent through the identity service's own client, when it is not
/// the app's.
fn identity_requests(app: &Client, identity: &Client) -> u64 {
    if app.base() == identity.base() {
        0
    } else {
        identity.requests_sent()
    }
}

/// The first resource's list request with no parent: an org-scoped request
/// any member's token may make.
fn probe(profile: &Profile) -> Option<RequestTemplate> {
    profile
        .resources
        .iter()
        .filter(|r| r.parent.is_none())
        .find_map(|r| r.list.clone())
}

/// One run of the suite.
pub(crate) struct Run<'a> {
    pub(crate) idp: Idp,
    pub(crate) app_client: Client,
    pub(crate) placement_header: bool,
    pub(crate) probe: Option<RequestTemplate>,
    pub(crate) app: AppFlows,
    pub(crate) selection: &'a Selection,
    pub(crate) canaries: CanarySource,
    pub(crate) tag: String,
    pub(crate) report: Report,
}

impl Run<'_> {
    /// Whether check `id` is selected; records that it ran.
    fn ran(&mut self, id: &'static str) -> bool {
        let selected = checks::find(id).is_some_and(|c| self.selection.includes(c));
        if selected && !self.report.checks_run.contains(&id) {
            self.report.checks_run.push(id);
        }
        selected
    }

    /// Records a finding of check `id`.
    pub(crate) fn finding(&mut self, id: &str, message: String, evidence: Vec<String>) {
        self.report.add_finding(id, message, evidence);
    }

    /// A fresh unique email address for `purpose`.
    pub(crate) fn email(&mut self, purpose: &str) -> String {
        let n = &self.canaries.canary()[4..12];
        format!("{purpose}-{}-{n}@tenantry.invalid", self.tag)
    }

    /// A fresh password (registered for redaction).
    pub(crate) fn password(&mut self) -> String {
        let password = format!("{}-{}", self.canaries.canary(), self.canaries.canary());
        self.idp.client().register_secret(&password);
        password
    }

    /// A fresh canary.
    pub(crate) fn canary(&mut self) -> String {
        self.canaries.canary()
    }

    /// `request` with `token` placed as the profile says.
    pub(crate) fn with_token(&self, request: Request, token: &str) -> Request {
        if self.placement_header {
            request.bearer(token)
        } else {
            request.header("cookie", format!("__session={token}"))
        }
    }

    /// The probe request for org (`id`, `slug`) with `token`; `None` when
    /// the profile has no listable top-level resource.
    pub(crate) async fn probe(&self, org: (&str, &str), token: &str) -> Option<Reply> {
        let template = self.probe.as_ref()?;
        let (id, slug) = (org.0.to_string(), org.1.to_string());
        let request = template
            .render(&mut |name| match name {
                "org" => Some(id.clone()),
                "org_slug" => Some(slug.clone()),
                _ => None,
            })
            .ok()?;
        Some(
            self.app_client
                .send_patiently(self.with_token(request, token))
                .await,
        )
    }
}

/// The value at `pointer` as text (strings as is, others as JSON), if set.
pub(crate) fn text_at(value: &Value, pointer: &str) -> Option<String> {
    match value.pointer(pointer)? {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}
