//! Scenario files (YAML): the format auditors read and write, and the one
//! campaigns write their shrunk reproductions in. This module holds the
//! format's core types; parsing (with file:line:column errors), writing and
//! running live in its submodules. The format is documented in
//! `scenarios/README.md`.

mod parse;
mod run;
mod write;
mod yaml;

pub use parse::{load, parse, ScenarioError};
pub use run::{run, run_with, Context, Outcome, RunError, StepOutcome};
pub use write::to_yaml;

use serde_json::Value;

use crate::checks::Severity;
use crate::template::RequestTemplate;

/// A scenario file.
#[derive(Debug, Clone, PartialEq)]
pub struct Scenario {
    /// Stable id (`iso-001-cross-org-read`).
    pub id: String,
    /// One line for people.
    pub title: String,
    /// Severity when it fails.
    pub severity: Severity,
    /// CWE number.
    pub cwe: Option<u32>,
    /// Check ids and free tags (`TEN-ISO-001`, `campaign`).
    pub tags: Vec<String>,
    /// Links.
    pub references: Vec<String>,
    /// The world it needs.
    pub given: Given,
    /// What it does, in order.
    pub steps: Vec<Item>,
}

/// One entry of `steps`: a request, or a membership change at the identity
/// service (to test what a removed member or a demoted admin can still do).
// A scenario holds tens of items, not millions: boxing the request would
// only make them harder to build and match.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    /// A request and its expectations.
    Send(Step),
    /// A membership change.
    Membership(MembershipChange),
    /// A pause (`wait: 6s`), e.g. to outlive a TTL the target declares.
    Wait(std::time::Duration),
}

/// A membership change (`membership: {user: bob, org: a, role: org:admin}`,
/// or `removed: true` instead of a role).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MembershipChange {
    /// Optional name for reports.
    pub name: Option<String>,
    /// User key.
    pub user: String,
    /// Org key.
    pub org: String,
    /// The role after the change; `None`: removed from the org.
    pub role: Option<String>,
}

/// The world a scenario needs: orgs and users by key, and seed requests.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Given {
    /// Org keys (`a`, `acme`) with an optional display name.
    pub orgs: Vec<GivenOrg>,
    /// Users with their memberships.
    pub users: Vec<GivenUser>,
    /// Seed requests run before the steps (their captures are visible to steps).
    pub resources: Vec<Step>,
}

/// An org of `given`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GivenOrg {
    /// Key.
    pub key: String,
    /// Display name (default: derived from the key).
    pub name: Option<String>,
}

/// A user of `given`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GivenUser {
    /// Key.
    pub key: String,
    /// (org key, role) pairs.
    pub memberships: Vec<(String, String)>,
}

/// Who sends a step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// No token at all.
    Anonymous,
    /// `user@org`, or `user` alone for the personal account (no active org).
    Member {
        /// User key.
        user: String,
        /// Org key; `None`: personal account.
        org: Option<String>,
    },
}

/// One request and what must hold of its answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// Optional name for reports.
    pub name: Option<String>,
    /// Who sends it.
    pub actor: Actor,
    /// The request (placeholders: `{{ org.KEY.id }}`, `{{ org.KEY.slug }}`,
    /// `{{ user.KEY.id }}`, `{{ canary }}`, captured names).
    pub request: RequestTemplate,
    /// Captures: name -> where in the answer.
    pub capture: Vec<(String, Capture)>,
    /// Send it once per attack token of these TOK checks instead of the
    /// actor's own token (`forge: TOK-003`).
    pub forge: Option<Forge>,
    /// Send this many copies at once (`concurrent: 16`): races.
    pub concurrent: Option<u32>,
    /// Expectations.
    pub expect: Expect,
}

/// Where a captured value comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capture {
    /// The value the capture starts from.
    pub source: CaptureSource,
    /// Then: this query parameter of the URL that value holds.
    pub query: Option<String>,
}

impl Capture {
    /// A JSON path into the body (`name: $.id`).
    pub fn json(path: &str) -> Self {
        Self {
            source: CaptureSource::Json(path.to_string()),
            query: None,
        }
    }
}

/// The part of an answer a capture reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CaptureSource {
    /// A JSON path into the body.
    Json(String),
    /// A response header (name as written).
    Header(String),
}

/// Token forgery for a step: which TOK checks' attack tokens to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forge {
    /// Check ids or globs (`TOK-003`, `TOK-00*`).
    pub checks: Vec<String>,
    /// Only variants whose description contains this text.
    pub variant: Option<String>,
}

/// What must hold of a step's answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Expect {
    /// Allowed statuses (empty: any).
    pub status: Vec<u16>,
    /// JSON path assertions on the body.
    pub json: Vec<(String, JsonAssert)>,
    /// Header assertions.
    pub headers: Vec<(String, HeaderAssert)>,
    /// No canary or id of an org other than the actor's (default true).
    pub no_foreign_data: bool,
    /// Strings the body must not contain (templated).
    pub body_not_contains: Vec<String>,
    /// Strings the body must contain (templated).
    pub body_contains: Vec<String>,
    /// Counts across the answers of a concurrent step.
    pub count: Vec<CountAssert>,
}

/// `count: {"2xx": 1, 429: {min: 3}}`: how many answers of a concurrent
/// step have a status (or class).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CountAssert {
    /// The statuses counted.
    pub status: StatusMatch,
    /// At least this many.
    pub min: u32,
    /// At most this many.
    pub max: u32,
}

/// A status or a class of statuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusMatch {
    /// Exactly this code.
    Code(u16),
    /// `2xx`: the hundreds digit.
    Class(u16),
}

impl StatusMatch {
    /// Whether `status` is counted.
    pub fn matches(self, status: u16) -> bool {
        match self {
            StatusMatch::Code(c) => status == c,
            StatusMatch::Class(c) => status / 100 == c,
        }
    }
}

impl std::fmt::Display for StatusMatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StatusMatch::Code(c) => write!(f, "{c}"),
            StatusMatch::Class(c) => write!(f, "{c}xx"),
        }
    }
}

impl Default for Expect {
    fn default() -> Self {
        Self {
            status: Vec::new(),
            json: Vec::new(),
            headers: Vec::new(),
            no_foreign_data: true,
            body_not_contains: Vec::new(),
            body_contains: Vec::new(),
            count: Vec::new(),
        }
    }
}

/// A JSON path assertion.
#[derive(Debug, Clone, PartialEq)]
pub enum JsonAssert {
    /// The path selects exactly this value (strings templated).
    Equals(Value),
    /// The path selects something (true) or nothing (false).
    Exists(bool),
    /// The path selects an array of this length.
    Length(usize),
}

/// A header assertion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderAssert {
    /// Present (true) or absent (false).
    Present(bool),
    /// Equal to (templated).
    Equals(String),
}
