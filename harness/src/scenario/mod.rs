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
pub use run::{run, Outcome, RunError, StepOutcome};
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
    /// Captures: name -> JSON path into the response body.
    pub capture: Vec<(String, String)>,
    /// Expectations.
    pub expect: Expect,
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
