//! Scenario files from YAML text: every error names `file:line:column` and
//! what was expected there — unknown keys, wrong types, actors naming an
//! undeclared user or org (or a user outside that org), placeholders naming
//! an undeclared org or user or a capture no earlier step defines, invalid
//! JSON paths, statuses out of range, two bodies. The format is documented
//! in `scenarios/README.md`.

use std::fmt;
use std::path::Path;

use serde_json::{Map, Value};

use super::yaml::{self, resolve, Kind, Node, Pos, Typed};
use super::{
    Actor, Capture, CaptureSource, CountAssert, Expect, Forge, Given, GivenOrg, GivenUser, HeaderAssert,
    Item, JsonAssert, MembershipChange, Scenario, StatusMatch, Step,
};
use crate::checks::Severity;
use crate::template::{apply_filter, Body, QueryValue, RequestTemplate};

/// Why a scenario file was refused, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScenarioError {
    /// The file name as given to [`parse`] (or the path given to [`load`]).
    pub file: String,
    /// Line, 1-based (0: the file could not be read at all).
    pub line: usize,
    /// Column, 1-based, in characters (0 with line 0).
    pub column: usize,
    /// What is wrong and what was expected.
    pub message: String,
}

impl fmt::Display for ScenarioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file, self.message)
        } else {
            write!(f, "{}:{}:{}: {}", self.file, self.line, self.column, self.message)
        }
    }
}

impl std::error::Error for ScenarioError {}

const SCENARIO_KEYS: &[&str] = &[
    "id",
    "title",
    "severity",
    "cwe",
    "tags",
    "references",
    "given",
    "steps",
];
const GIVEN_KEYS: &[&str] = &["orgs", "users", "resources"];
const ORG_KEYS: &[&str] = &["name"];
const STEP_KEYS: &[&str] = &[
    "name",
    "as",
    "matrix",
    "request",
    "place",
    "forge",
    "concurrent",
    "capture",
    "expect",
];
/// `given.resources` set the world up: one plain request each.
const RESOURCE_KEYS: &[&str] = &["name", "as", "request", "place", "capture", "expect"];
const WAIT_STEP_KEYS: &[&str] = &["name", "wait"];
const CAPTURE_KEYS: &[&str] = &["json", "header", "query"];
const FORGE_KEYS: &[&str] = &["checks", "variant"];
const COUNT_KEYS: &[&str] = &["min", "max"];
/// Expansions of one `matrix` step, and copies of one `concurrent` step.
const MAX_EXPANSIONS: usize = 256;
const MAX_CONCURRENT: u64 = 256;
/// Longest `wait`.
const MAX_WAIT: std::time::Duration = std::time::Duration::from_secs(120);
const MEMBERSHIP_STEP_KEYS: &[&str] = &["name", "membership"];
const MEMBERSHIP_KEYS: &[&str] = &["user", "org", "role", "removed"];
const REQUEST_KEYS: &[&str] = &["method", "path", "query", "headers", "cookies", "json", "form"];
const EXPECT_KEYS: &[&str] = &[
    "status",
    "json",
    "headers",
    "no_foreign_data",
    "body_not_contains",
    "body_contains",
    "count",
];
const JSON_ASSERT_KEYS: &[&str] = &["equals", "exists", "length"];
const HEADER_ASSERT_KEYS: &[&str] = &["present", "equals"];

/// Longest JSON path accepted, and deepest bracket nesting in one (the path
/// parser recurses).
const MAX_PATH_LEN: usize = 1024;
const MAX_PATH_DEPTH: usize = 32;

/// Reads and parses the scenario file at `path`.
pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
    let file = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(text) => parse(&file, &text),
        Err(e) => Err(ScenarioError {
            file,
            line: 0,
            column: 0,
            message: format!("cannot read the scenario file: {e}"),
        }),
    }
}

/// Parses scenario `text`; `file` names it in errors.
pub fn parse(file: &str, text: &str) -> Result<Scenario, ScenarioError> {
    let root = yaml::load(text).map_err(|e| ScenarioError {
        file: file.to_string(),
        line: e.pos.line,
        column: e.pos.column,
        message: e.message,
    })?;
    let mut decoder = Decoder {
        file,
        orgs: Vec::new(),
        users: Vec::new(),
        captures: Vec::new(),
    };
    let scenario = match root {
        Some(root) => decoder.scenario(&root),
        None => Err(decoder.err(
            Pos { line: 1, column: 1 },
            format!(
                "the file is empty; expected a scenario mapping with keys: {}",
                SCENARIO_KEYS.join(", ")
            ),
        )),
    };
    // Nodes the parser makes up at the end of input (the empty document of
    // a lone `---`) sit past the last line; errors name a place in the file.
    scenario.map_err(|e| {
        let pos = yaml::inside(
            text,
            Pos {
                line: e.line,
                column: e.column,
            },
        );
        ScenarioError {
            line: pos.line,
            column: pos.column,
            ..e
        }
    })
}

/// Where a templated string is: requests may plant fresh canaries,
/// expectations may also use the step's own captures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scope {
    Request,
    Expect,
}

type R<T> = Result<T, ScenarioError>;

/// A mapping's entries by key, checked against the keys allowed.
struct Fields<'n> {
    pos: Pos,
    entries: Vec<(&'n str, &'n Node, &'n Node)>,
}

impl<'n> Fields<'n> {
    fn get(&self, key: &str) -> Option<&'n Node> {
        self.entries
            .iter()
            .find(|(k, _, _)| *k == key)
            .map(|(_, _, v)| *v)
    }
}

struct Decoder<'f> {
    file: &'f str,
    /// Declared org keys.
    orgs: Vec<String>,
    /// Declared users: key and the org keys they belong to.
    users: Vec<(String, Vec<String>)>,
    /// Captures defined so far.
    captures: Vec<String>,
}

fn describe(node: &Node) -> &'static str {
    match &node.kind {
        Kind::Seq(_) => "a sequence",
        Kind::Map(_) => "a mapping",
        Kind::Scalar { plain: false, .. } => "a quoted string",
        Kind::Scalar {
            text, plain: true, ..
        } => match resolve(text) {
            Typed::Null => "nothing (null)",
            Typed::Bool(_) => "a boolean",
            Typed::Int(_) | Typed::BigInt | Typed::Float(_) | Typed::NonFinite => "a number",
            Typed::Str => "a string",
        },
    }
}

fn is_null(node: &Node) -> bool {
    matches!(&node.kind, Kind::Scalar { text, plain: true, json_tag: false } if resolve(text) == Typed::Null)
}

/// Org and user keys: letters, digits, `_` and `-`, not starting with `-`.
fn valid_key(key: &str) -> bool {
    !key.is_empty()
        && !key.starts_with('-')
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// Capture names: a letter or `_`, then letters, digits, `_` and `-`.
fn valid_capture(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// An HTTP token (method or header name), placeholders aside.
fn valid_token(text: &str) -> bool {
    let mut rest = text;
    let mut literal = String::new();
    while let Some(start) = rest.find("{{") {
        literal.push_str(&rest[..start]);
        match rest[start..].find("}}") {
            Some(end) => rest = &rest[start + end + 2..],
            None => return false,
        }
    }
    literal.push_str(rest);
    !text.is_empty()
        && literal
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

fn list(names: &[String]) -> String {
    if names.is_empty() {
        "none".to_string()
    } else {
        names.join(", ")
    }
}

/// Why a JSON path is refused, if it is.
pub(crate) fn check_json_path(path: &str) -> Result<serde_json_path::JsonPath, String> {
    if path.len() > MAX_PATH_LEN {
        return Err(format!("longer than {MAX_PATH_LEN} bytes"));
    }
    let mut depth = 0usize;
    for b in path.bytes() {
        match b {
            b'(' | b'[' => {
                depth += 1;
                if depth > MAX_PATH_DEPTH {
                    return Err(format!("nested more than {MAX_PATH_DEPTH} levels deep"));
                }
            }
            b')' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    serde_json_path::JsonPath::parse(path).map_err(|e| e.to_string())
}

impl Decoder<'_> {
    fn err(&self, pos: Pos, message: impl Into<String>) -> ScenarioError {
        ScenarioError {
            file: self.file.to_string(),
            line: pos.line,
            column: pos.column,
            message: message.into(),
        }
    }

    /// `node` as a mapping whose keys are all in `allowed` (null counts as
    /// an empty mapping).
    fn fields<'n>(&self, node: &'n Node, what: &str, allowed: &[&str]) -> R<Fields<'n>> {
        let entries = match &node.kind {
            Kind::Map(entries) => entries,
            _ if is_null(node) => {
                return Ok(Fields {
                    pos: node.pos,
                    entries: Vec::new(),
                })
            }
            _ => {
                return Err(self.err(
                    node.pos,
                    format!(
                        "expected a mapping for {what} (keys: {}), found {}",
                        allowed.join(", "),
                        describe(node)
                    ),
                ))
            }
        };
        let mut out = Vec::with_capacity(entries.len());
        for (k, v) in entries {
            let key = yaml::scalar_text(k).unwrap_or_default();
            if !allowed.contains(&key) {
                return Err(self.err(
                    k.pos,
                    format!(
                        "unknown key `{key}` in {what}; expected one of: {}",
                        allowed.join(", ")
                    ),
                ));
            }
            out.push((key, k, v));
        }
        Ok(Fields {
            pos: node.pos,
            entries: out,
        })
    }

    fn required<'n>(&self, fields: &Fields<'n>, key: &str, what: &str) -> R<&'n Node> {
        fields
            .get(key)
            .ok_or_else(|| self.err(fields.pos, format!("missing key `{key}` in {what}")))
    }

    /// Entries of a mapping, or of a sequence of one-entry mappings (the
    /// form that allows a name twice, e.g. a repeated query parameter).
    fn pairs<'n>(&self, node: &'n Node, what: &str) -> R<Vec<(&'n Node, &'n Node)>> {
        match &node.kind {
            Kind::Map(entries) => Ok(entries.iter().map(|(k, v)| (k, v)).collect()),
            Kind::Seq(items) => items
                .iter()
                .map(|item| match &item.kind {
                    Kind::Map(entries) if entries.len() == 1 => Ok((&entries[0].0, &entries[0].1)),
                    _ => Err(self.err(
                        item.pos,
                        format!(
                            "expected a one-entry mapping (`name: value`) in the list of {what}, found {}",
                            if matches!(item.kind, Kind::Map(_)) {
                                "a mapping with more or fewer entries"
                            } else {
                                describe(item)
                            }
                        ),
                    )),
                })
                .collect(),
            _ if is_null(node) => Ok(Vec::new()),
            _ => Err(self.err(
                node.pos,
                format!(
                    "expected a mapping (or a list of one-entry mappings) for {what}, found {}",
                    describe(node)
                ),
            )),
        }
    }

    fn seq<'n>(&self, node: &'n Node, what: &str) -> R<&'n [Node]> {
        match &node.kind {
            Kind::Seq(items) => Ok(items),
            _ if is_null(node) => Ok(&[]),
            _ => Err(self.err(
                node.pos,
                format!("expected a list for {what}, found {}", describe(node)),
            )),
        }
    }

    /// Text. Plain numbers and booleans are taken as their text; null,
    /// sequences and mappings are refused.
    fn string(&self, node: &Node, what: &str) -> R<String> {
        match &node.kind {
            Kind::Scalar { json_tag: true, .. } => Err(self.err(
                node.pos,
                format!("`!json` is only accepted on a query value, not on {what}"),
            )),
            Kind::Scalar { text, .. } if !is_null(node) => Ok(text.clone()),
            _ => Err(self.err(
                node.pos,
                format!("expected text for {what}, found {}", describe(node)),
            )),
        }
    }

    /// Text whose placeholders must be known in `scope`.
    fn template(&self, node: &Node, what: &str, scope: Scope) -> R<String> {
        let text = self.string(node, what)?;
        self.placeholders(node.pos, &text, scope)?;
        Ok(text)
    }

    fn bool(&self, node: &Node, what: &str) -> R<bool> {
        match &node.kind {
            Kind::Scalar {
                text,
                plain: true,
                json_tag: false,
            } => match resolve(text) {
                Typed::Bool(b) => Ok(b),
                _ => Err(self.err(
                    node.pos,
                    format!("expected true or false for {what}, found {}", describe(node)),
                )),
            },
            _ => Err(self.err(
                node.pos,
                format!("expected true or false for {what}, found {}", describe(node)),
            )),
        }
    }

    /// A non-negative integer.
    fn uint(&self, node: &Node, what: &str) -> R<u64> {
        if let Kind::Scalar {
            text,
            plain: true,
            json_tag: false,
        } = &node.kind
        {
            if let Typed::Int(n) = resolve(text) {
                if let Some(n) = n.as_u64() {
                    return Ok(n);
                }
            }
        }
        Err(self.err(
            node.pos,
            format!(
                "expected a whole number (0 or more) for {what}, found {}",
                describe(node)
            ),
        ))
    }

    fn scenario(&mut self, root: &Node) -> R<Scenario> {
        if !matches!(root.kind, Kind::Map(_)) {
            return Err(self.err(
                root.pos,
                format!(
                    "expected a scenario mapping at the top of the file (keys: {}), found {}",
                    SCENARIO_KEYS.join(", "),
                    describe(root)
                ),
            ));
        }
        let f = self.fields(root, "the scenario", SCENARIO_KEYS)?;
        let id_node = self.required(&f, "id", "the scenario")?;
        let id = self.string(id_node, "`id`")?;
        if id.is_empty()
            || !id
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err(self.err(
                id_node.pos,
                format!(
                    "id `{id}` must be lower-case letters, digits and `-` (e.g. `iso-001-cross-org-read`)"
                ),
            ));
        }
        let title = self.string(self.required(&f, "title", "the scenario")?, "`title`")?;
        let severity_node = self.required(&f, "severity", "the scenario")?;
        let severity_text = self.string(severity_node, "`severity`")?;
        let severity = Severity::parse(&severity_text).ok_or_else(|| {
            self.err(
                severity_node.pos,
                format!(
                    "unknown severity `{severity_text}`; expected one of: info, low, medium, high, critical"
                ),
            )
        })?;
        let cwe = match f.get("cwe") {
            None => None,
            Some(node) => {
                let n = self.uint(node, "`cwe` (a CWE number such as 639)")?;
                match u32::try_from(n) {
                    Ok(n) if n > 0 => Some(n),
                    _ => return Err(self.err(node.pos, format!("CWE {n} is out of range"))),
                }
            }
        };
        let strings = |key: &str| -> R<Vec<String>> {
            match f.get(key) {
                None => Ok(Vec::new()),
                Some(node) => self
                    .seq(node, &format!("`{key}`"))?
                    .iter()
                    .map(|n| self.string(n, &format!("an entry of `{key}`")))
                    .collect(),
            }
        };
        let tags = strings("tags")?;
        let references = strings("references")?;
        let given = match f.get("given") {
            Some(node) => self.given(node)?,
            None => Given::default(),
        };
        let steps_node = self.required(&f, "steps", "the scenario")?;
        let items = self.seq(steps_node, "`steps`")?;
        if items.is_empty() {
            return Err(self.err(steps_node.pos, "a scenario needs at least one step in `steps`"));
        }
        let mut steps = Vec::new();
        for node in items {
            steps.extend(self.item(node)?);
        }
        Ok(Scenario {
            id,
            title,
            severity,
            cwe,
            tags,
            references,
            given,
            steps,
        })
    }

    fn given(&mut self, node: &Node) -> R<Given> {
        let f = self.fields(node, "given", GIVEN_KEYS)?;
        let mut orgs = Vec::new();
        let mut org_pos = Vec::new();
        if let Some(node) = f.get("orgs") {
            for (k, v) in self.pairs(node, "given.orgs")? {
                let key = self.string(k, "an org key")?;
                if !valid_key(&key) {
                    return Err(self.err(
                        k.pos,
                        format!("org key `{key}` must be letters, digits, `_` and `-`"),
                    ));
                }
                let of = self.fields(v, &format!("org `{key}`"), ORG_KEYS)?;
                let name = match of.get("name") {
                    Some(n) => Some(self.string(n, "an org's `name`")?),
                    None => None,
                };
                self.orgs.push(key.clone());
                org_pos.push(k.pos);
                orgs.push(GivenOrg { key, name });
            }
        }
        let mut users = Vec::new();
        if let Some(node) = f.get("users") {
            for (k, v) in self.pairs(node, "given.users")? {
                let key = self.string(k, "a user key")?;
                if !valid_key(&key) || key == "anonymous" {
                    return Err(self.err(
                        k.pos,
                        format!(
                            "user key `{key}` must be letters, digits, `_` and `-` (and not `anonymous`)"
                        ),
                    ));
                }
                let mut memberships = Vec::new();
                for (ok, role) in self.pairs(v, &format!("user `{key}`'s memberships (org key: role)"))? {
                    let org = self.string(ok, "an org key")?;
                    if !self.orgs.contains(&org) {
                        return Err(self.err(
                            ok.pos,
                            format!(
                                "user `{key}` is a member of org `{org}`, which given.orgs does not declare (declared: {})",
                                list(&self.orgs)
                            ),
                        ));
                    }
                    if memberships.iter().any(|(o, _): &(String, String)| *o == org) {
                        return Err(
                            self.err(ok.pos, format!("user `{key}` is given a role in `{org}` twice"))
                        );
                    }
                    let role = self.string(role, &format!("`{key}`'s role in `{org}` (e.g. org:admin)"))?;
                    memberships.push((org, role));
                }
                self.users
                    .push((key.clone(), memberships.iter().map(|(o, _)| o.clone()).collect()));
                users.push(GivenUser { key, memberships });
            }
        }
        for (org, pos) in orgs.iter().zip(org_pos) {
            if !users
                .iter()
                .any(|u| u.memberships.iter().any(|(o, _)| *o == org.key))
            {
                return Err(self.err(
                    pos,
                    format!(
                        "org `{}` has no members; give a user of given.users a role in it (the identity service needs a member to create it)",
                        org.key
                    ),
                ));
            }
        }
        let mut resources = Vec::new();
        if let Some(node) = f.get("resources") {
            for item in self.seq(node, "given.resources")? {
                resources.push(self.step(item, RESOURCE_KEYS, "a resource of given.resources")?);
            }
        }
        Ok(Given {
            orgs,
            users,
            resources,
        })
    }

    /// An entry of `steps`: a membership change when it has a `membership`
    /// key, a pause when it has `wait`, a request otherwise (several when it
    /// has a `matrix`).
    fn item(&mut self, node: &Node) -> R<Vec<Item>> {
        let has = |key: &str| match &node.kind {
            Kind::Map(entries) => entries.iter().any(|(k, _)| yaml::scalar_text(k) == Some(key)),
            _ => false,
        };
        if has("wait") {
            let f = self.fields(node, "a wait step", WAIT_STEP_KEYS)?;
            return Ok(vec![Item::Wait(self.duration(self.required(
                &f,
                "wait",
                "a wait step",
            )?)?)]);
        }
        if has("matrix") {
            return Ok(self.matrix(node)?.into_iter().map(Item::Send).collect());
        }
        if !has("membership") {
            return Ok(vec![Item::Send(self.step(node, STEP_KEYS, "a step")?)]);
        }
        let f = self.fields(node, "a membership step", MEMBERSHIP_STEP_KEYS)?;
        let body = self.required(&f, "membership", "a membership step")?;
        let m = self.fields(body, "`membership`", MEMBERSHIP_KEYS)?;
        let user_node = self.required(&m, "user", "`membership`")?;
        let user = self.string(user_node, "`user` (a key of given.users)")?;
        let org_node = self.required(&m, "org", "`membership`")?;
        let org = self.string(org_node, "`org` (a key of given.orgs)")?;
        let Some(index) = self.users.iter().position(|(u, _)| *u == user) else {
            let declared: Vec<String> = self.users.iter().map(|(u, _)| u.clone()).collect();
            return Err(self.err(
                user_node.pos,
                format!("no user `{user}` in given.users (declared: {})", list(&declared)),
            ));
        };
        if !self.orgs.contains(&org) {
            return Err(self.err(
                org_node.pos,
                format!("no org `{org}` in given.orgs (declared: {})", list(&self.orgs)),
            ));
        }
        let role = match (m.get("role"), m.get("removed")) {
            (Some(r), None) => Some(self.string(r, "`role` (e.g. org:admin)")?),
            (None, Some(r)) => {
                if !self.bool(r, "`removed`")? {
                    return Err(self.err(
                        r.pos,
                        "`removed: false` changes nothing; give the new `role` instead",
                    ));
                }
                None
            }
            _ => {
                return Err(self.err(
                    m.pos,
                    "`membership` needs exactly one of `role: ROLE` (add or change) and `removed: true`",
                ))
            }
        };
        // A user who was ever a member may act in the org afterwards (the
        // point of removing one is to see what it can still do).
        if role.is_some() && !self.users[index].1.contains(&org) {
            self.users[index].1.push(org.clone());
        }
        let name = match f.get("name") {
            Some(n) => Some(self.string(n, "a step's `name`")?),
            None => None,
        };
        Ok(vec![Item::Membership(MembershipChange {
            name,
            user,
            org,
            role,
        })])
    }

    /// `wait: 6s` / `wait: 500ms`.
    fn duration(&self, node: &Node) -> R<std::time::Duration> {
        let text = self.string(node, "`wait` (e.g. 6s or 500ms)")?;
        let parsed = match text.strip_suffix("ms") {
            Some(ms) => ms
                .trim()
                .parse::<u64>()
                .ok()
                .map(std::time::Duration::from_millis),
            None => text
                .strip_suffix('s')
                .and_then(|s| s.trim().parse::<u64>().ok())
                .map(std::time::Duration::from_secs),
        };
        match parsed {
            Some(d) if d <= MAX_WAIT && !d.is_zero() => Ok(d),
            Some(_) => Err(self.err(
                node.pos,
                format!("`wait: {text}` is out of range; expected more than 0 and at most 120s"),
            )),
            None => Err(self.err(
                node.pos,
                format!("`wait: {text}` is not a duration; expected whole seconds or milliseconds, e.g. 6s or 500ms"),
            )),
        }
    }

    /// A step with a `matrix`: one step per combination of the variables'
    /// values (first variable outermost), each with `{{ NAME }}` replaced
    /// by the value's text before the step is read.
    fn matrix(&mut self, node: &Node) -> R<Vec<Step>> {
        let Kind::Map(entries) = &node.kind else {
            unreachable!("item() looks for the key in a mapping");
        };
        let (matrix_key, matrix_node) = entries
            .iter()
            .find(|(k, _)| yaml::scalar_text(k) == Some("matrix"))
            .map(|(k, v)| (k, v))
            .expect("item() found the key");
        let mut vars: Vec<(String, Vec<String>)> = Vec::new();
        for (k, v) in self.pairs(matrix_node, "`matrix` (name: list of values)")? {
            let name = self.string(k, "a matrix variable name")?;
            if !valid_capture(&name)
                || ["canary", "org", "user", "target"].contains(&name.as_str())
                || self.captures.contains(&name)
            {
                return Err(self.err(
                    k.pos,
                    format!(
                        "matrix variable `{name}` must start with a letter or `_`, hold letters, digits, `_` and `-`, and not be `canary`, `org`, `user`, `target` or a capture"
                    ),
                ));
            }
            let items = self.seq(v, &format!("matrix variable `{name}` (a list of values)"))?;
            if items.is_empty() {
                return Err(self.err(v.pos, format!("matrix variable `{name}` has no values")));
            }
            let values = items
                .iter()
                .map(|n| self.string(n, &format!("a value of matrix variable `{name}`")))
                .collect::<R<Vec<_>>>()?;
            vars.push((name, values));
        }
        if vars.is_empty() {
            return Err(self.err(matrix_node.pos, "`matrix` needs at least one variable"));
        }
        let total = vars.iter().try_fold(1usize, |n, (_, v)| n.checked_mul(v.len()));
        if total.is_none_or(|t| t > MAX_EXPANSIONS) {
            return Err(self.err(
                matrix_key.pos,
                format!("`matrix` expands to more than {MAX_EXPANSIONS} requests; split the step"),
            ));
        }
        if entries
            .iter()
            .any(|(k, _)| yaml::scalar_text(k) == Some("capture"))
        {
            return Err(self.err(
                matrix_key.pos,
                "a `matrix` step cannot `capture` (each expansion would define the same name); capture in a step of its own",
            ));
        }
        let rest = Node {
            kind: Kind::Map(
                entries
                    .iter()
                    .filter(|(k, _)| yaml::scalar_text(k) != Some("matrix"))
                    .cloned()
                    .collect(),
            ),
            pos: node.pos,
        };
        let mut steps = Vec::new();
        let mut index = vec![0usize; vars.len()];
        loop {
            let bindings: Vec<(&str, &str)> = vars
                .iter()
                .zip(&index)
                .map(|((name, values), &i)| (name.as_str(), values[i].as_str()))
                .collect();
            let expanded = self.substitute(&rest, &bindings)?;
            let mut step = self.step(&expanded, STEP_KEYS, "a step")?;
            let label: Vec<String> = bindings.iter().map(|(k, v)| format!("{k}={v}")).collect();
            let base = step.name.clone().unwrap_or_else(|| {
                format!(
                    "{} {} as {}",
                    step.request.method,
                    step.request.path,
                    super::run::actor_label(&step.actor)
                )
            });
            step.name = Some(format!("{base} [{}]", label.join(" ")));
            steps.push(step);
            // The next combination, last variable fastest.
            let mut i = vars.len();
            loop {
                if i == 0 {
                    return Ok(steps);
                }
                i -= 1;
                index[i] += 1;
                if index[i] < vars[i].1.len() {
                    break;
                }
                index[i] = 0;
            }
        }
    }

    /// `node` with every `{{ NAME }}` of a bound matrix variable replaced
    /// by its value (filters applied; a value that is itself a template
    /// takes no filter here: put the filter inside the value).
    fn substitute(&self, node: &Node, bindings: &[(&str, &str)]) -> R<Node> {
        let kind = match &node.kind {
            Kind::Scalar {
                text,
                plain,
                json_tag,
            } => Kind::Scalar {
                text: self.substitute_text(node.pos, text, bindings)?,
                plain: *plain,
                json_tag: *json_tag,
            },
            Kind::Seq(items) => Kind::Seq(
                items
                    .iter()
                    .map(|n| self.substitute(n, bindings))
                    .collect::<R<_>>()?,
            ),
            Kind::Map(entries) => Kind::Map(
                entries
                    .iter()
                    .map(|(k, v)| Ok((self.substitute(k, bindings)?, self.substitute(v, bindings)?)))
                    .collect::<R<_>>()?,
            ),
        };
        Ok(Node { kind, pos: node.pos })
    }

    fn substitute_text(&self, pos: Pos, text: &str, bindings: &[(&str, &str)]) -> R<String> {
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(start) = rest.find("{{") {
            let after = &rest[start + 2..];
            let Some(end) = after.find("}}") else {
                break;
            };
            let inner = &after[..end];
            let mut parts = inner.split('|').map(str::trim);
            let name = parts.next().unwrap_or_default();
            out.push_str(&rest[..start]);
            match bindings.iter().find(|(k, _)| *k == name) {
                Some((_, value)) => {
                    let filters: Vec<&str> = parts.collect();
                    if !filters.is_empty() && value.contains("{{") {
                        return Err(self.err(
                            pos,
                            format!(
                                "`{{{{{inner}}}}}`: the value `{value}` of matrix variable `{name}` is a template; apply the filter inside the value instead"
                            ),
                        ));
                    }
                    let mut value = value.to_string();
                    for filter in filters {
                        value = apply_filter(filter, &value).map_err(|e| self.err(pos, e.to_string()))?;
                    }
                    out.push_str(&value);
                }
                None => out.push_str(&rest[start..start + 2 + end + 2]),
            }
            rest = &after[end + 2..];
        }
        out.push_str(rest);
        Ok(out)
    }

    fn step(&mut self, node: &Node, keys: &[&str], what: &str) -> R<Step> {
        let f = self.fields(node, what, keys)?;
        let name = match f.get("name") {
            Some(n) => Some(self.string(n, "a step's `name`")?),
            None => None,
        };
        let actor =
            self.actor(self.required(&f, "as", "a step (who sends it: user@org, user or anonymous)")?)?;
        let mut request = self.request(self.required(&f, "request", what)?)?;
        if let Some(node) = f.get("place") {
            self.place(node, &mut request)?;
        }
        let forge = match f.get("forge") {
            Some(node) => {
                if actor == Actor::Anonymous {
                    return Err(self.err(
                        node.pos,
                        "`forge` mutates the actor's own session token; give a member in `as`, not anonymous",
                    ));
                }
                Some(self.forge(node)?)
            }
            None => None,
        };
        let concurrent = match f.get("concurrent") {
            Some(node) => {
                let n = self.uint(node, "`concurrent` (how many copies at once, 2..=256)")?;
                if !(2..=MAX_CONCURRENT).contains(&n) {
                    return Err(self.err(
                        node.pos,
                        format!("`concurrent: {n}` is out of range; expected 2..=256 copies"),
                    ));
                }
                if forge.is_some() {
                    return Err(self.err(node.pos, "a step is either `forge` or `concurrent`, not both"));
                }
                Some(n as u32)
            }
            None => None,
        };
        let mut capture = Vec::new();
        if let Some(node) = f.get("capture") {
            for (k, v) in self.pairs(node, "`capture` (name: JSON path, or {json|header, query})")? {
                let name = self.string(k, "a capture name")?;
                if !valid_capture(&name) || ["canary", "org", "user"].contains(&name.as_str()) {
                    return Err(self.err(
                        k.pos,
                        format!(
                            "capture name `{name}` must start with a letter or `_` and hold letters, digits, `_` and `-` (`canary`, `org` and `user` are taken)"
                        ),
                    ));
                }
                if self.captures.contains(&name) {
                    return Err(self.err(
                        k.pos,
                        format!("capture `{name}` is already defined by an earlier step"),
                    ));
                }
                let source = self.capture(v)?;
                self.captures.push(name.clone());
                capture.push((name, source));
            }
        }
        let expect = match f.get("expect") {
            Some(node) => {
                let expect = self.expect(node)?;
                if !expect.count.is_empty() && concurrent.is_none() {
                    let at = self
                        .fields(node, "expect", EXPECT_KEYS)?
                        .get("count")
                        .map_or(node.pos, |n| n.pos);
                    return Err(self.err(
                        at,
                        "`count` counts the answers of a `concurrent` step; add `concurrent: N` or check `status`",
                    ));
                }
                expect
            }
            None => Expect::default(),
        };
        Ok(Step {
            name,
            actor,
            request,
            capture,
            forge,
            concurrent,
            expect,
        })
    }

    /// A capture: a JSON path, or `{json: PATH | header: NAME, query: PARAM}`.
    fn capture(&self, node: &Node) -> R<Capture> {
        if matches!(node.kind, Kind::Scalar { .. }) {
            return Ok(Capture::json(&self.json_path(node)?));
        }
        let f = self.fields(node, "a capture", CAPTURE_KEYS)?;
        let source = match (f.get("json"), f.get("header")) {
            (Some(path), None) => CaptureSource::Json(self.json_path(path)?),
            (None, Some(name)) => {
                let name = self.string(name, "a header name")?;
                if !valid_token(&name) {
                    return Err(self.err(f.pos, format!("`{name}` is not a valid header name")));
                }
                CaptureSource::Header(name)
            }
            _ => {
                return Err(self.err(
                    f.pos,
                    "a capture reads exactly one of `json: PATH` and `header: NAME` (then, optionally, `query: PARAM` of the URL found there)",
                ))
            }
        };
        let query = match f.get("query") {
            Some(q) => {
                let q = self.string(q, "`query` (a query parameter name)")?;
                if q.is_empty() {
                    return Err(self.err(f.pos, "`query` names no parameter"));
                }
                Some(q)
            }
            None => None,
        };
        Ok(Capture { source, query })
    }

    /// `forge: TOK-003`, a list of ids and globs, or `{checks, variant}`.
    fn forge(&self, node: &Node) -> R<Forge> {
        let (checks_node, variant) = match &node.kind {
            Kind::Map(_) => {
                let f = self.fields(node, "`forge`", FORGE_KEYS)?;
                let variant = match f.get("variant") {
                    Some(v) => Some(self.string(v, "`variant` (text in the variant's description)")?),
                    None => None,
                };
                (self.required(&f, "checks", "`forge`")?, variant)
            }
            _ => (node, None),
        };
        let items: Vec<&Node> = match &checks_node.kind {
            Kind::Seq(items) => items.iter().collect(),
            _ => vec![checks_node],
        };
        let mut checks = Vec::new();
        for item in items {
            let selector = self.string(item, "a TOK check id or glob (e.g. TOK-003, TOK-00*)")?;
            let found = crate::checks::matching(&selector);
            if found.is_empty() || found.iter().any(|c| c.family != "TOK") {
                return Err(self.err(
                    item.pos,
                    format!(
                        "`{selector}` names no token check; expected TOK check ids or globs (TOK-001 … TOK-025, TOK-00*); see `tenantry checks list`"
                    ),
                ));
            }
            checks.push(selector);
        }
        if checks.is_empty() {
            return Err(self.err(checks_node.pos, "`forge` names no checks"));
        }
        Ok(Forge { checks, variant })
    }

    /// `place: {"query:org_id": VALUE, …}`: values put at positions of the
    /// request (the positions usually come from a matrix).
    fn place(&self, node: &Node, request: &mut RequestTemplate) -> R<()> {
        for (k, v) in self.pairs(node, "`place` (position: value)")? {
            let position = self.string(
                k,
                "a position (query:NAME, header:NAME, cookie:NAME, json:/POINTER, form:NAME)",
            )?;
            let value = self.template(v, &format!("the value placed at `{position}`"), Scope::Request)?;
            let bad = |why: &str| {
                self.err(
                    k.pos,
                    format!(
                        "position `{position}` {why}; expected query:NAME, header:NAME, cookie:NAME, json:/POINTER or form:NAME"
                    ),
                )
            };
            let Some((kind, name)) = position.split_once(':') else {
                return Err(bad("has no kind"));
            };
            if name.is_empty() {
                return Err(bad("names nothing"));
            }
            match kind {
                "query" => request.query.push((name.to_string(), QueryValue::Text(value))),
                "header" | "cookie" => {
                    if kind == "header" && !valid_token(name) {
                        return Err(bad("is not a valid header name"));
                    }
                    if value.contains(['\r', '\n', '\0']) {
                        return Err(self.err(
                            v.pos,
                            "the value holds a line break or NUL, which HTTP cannot carry",
                        ));
                    }
                    let list = if kind == "header" {
                        &mut request.headers
                    } else {
                        &mut request.cookies
                    };
                    list.push((name.to_string(), value));
                }
                "json" => {
                    if !name.starts_with('/') {
                        return Err(bad("needs a JSON pointer starting with `/`"));
                    }
                    match &mut request.body {
                        None => {
                            let mut body = Value::Object(Map::new());
                            crate::audit::set_pointer(&mut body, name, Value::String(value));
                            request.body = Some(Body::Json(body));
                        }
                        Some(Body::Json(body)) => crate::audit::set_pointer(body, name, Value::String(value)),
                        Some(Body::Form(_)) => return Err(bad("puts JSON into a form body")),
                    }
                }
                "form" => match &mut request.body {
                    None => request.body = Some(Body::Form(vec![(name.to_string(), value)])),
                    Some(Body::Form(pairs)) => pairs.push((name.to_string(), value)),
                    Some(Body::Json(_)) => return Err(bad("puts a form field into a JSON body")),
                },
                _ => return Err(bad(&format!("has an unknown kind `{kind}`"))),
            }
        }
        Ok(())
    }

    fn actor(&self, node: &Node) -> R<Actor> {
        let text = self.string(node, "`as` (user@org, user or anonymous)")?;
        if text == "anonymous" {
            return Ok(Actor::Anonymous);
        }
        let (user, org) = match text.split_once('@') {
            Some((u, o)) => (u, Some(o)),
            None => (text.as_str(), None),
        };
        if user.is_empty() || org.is_some_and(|o| o.is_empty() || o.contains('@')) {
            return Err(self.err(
                node.pos,
                format!("`as: {text}`: expected `user@org`, `user` (personal account) or `anonymous`"),
            ));
        }
        let Some((_, member_of)) = self.users.iter().find(|(u, _)| u == user) else {
            let declared: Vec<String> = self.users.iter().map(|(u, _)| u.clone()).collect();
            return Err(self.err(
                node.pos,
                format!(
                    "`as: {text}`: no user `{user}` in given.users (declared: {})",
                    list(&declared)
                ),
            ));
        };
        if let Some(org) = org {
            if !self.orgs.iter().any(|o| o == org) {
                return Err(self.err(
                    node.pos,
                    format!(
                        "`as: {text}`: no org `{org}` in given.orgs (declared: {})",
                        list(&self.orgs)
                    ),
                ));
            }
            if !member_of.iter().any(|o| o == org) {
                return Err(self.err(
                    node.pos,
                    format!(
                        "`as: {text}`: user `{user}` is not a member of org `{org}` (member of: {})",
                        list(member_of)
                    ),
                ));
            }
        }
        Ok(Actor::Member {
            user: user.to_string(),
            org: org.map(String::from),
        })
    }

    fn request(&self, node: &Node) -> R<RequestTemplate> {
        let f = self.fields(node, "request", REQUEST_KEYS)?;
        let method_node = self.required(&f, "method", "request")?;
        let method = self.string(method_node, "`method`")?;
        if method.len() > 32 || !valid_token(&method) || method.contains("{{") {
            return Err(self.err(
                method_node.pos,
                format!("method `{method}` is not an HTTP method (e.g. GET, POST, PATCH, DELETE)"),
            ));
        }
        let path_node = self.required(&f, "path", "request")?;
        let path = self.template(path_node, "`path`", Scope::Request)?;
        if !(path.starts_with('/')
            || path.starts_with("http://")
            || path.starts_with("https://")
            || path.starts_with("{{"))
        {
            return Err(self.err(
                path_node.pos,
                format!("path `{path}` must start with `/` (or be an absolute http(s) URL)"),
            ));
        }
        let mut request = RequestTemplate::new(&method, &path);
        if let Some(node) = f.get("query") {
            for (k, v) in self.pairs(node, "`query`")? {
                let name = self.template(k, "a query parameter name", Scope::Request)?;
                let value = match &v.kind {
                    Kind::Scalar {
                        text,
                        plain,
                        json_tag: true,
                    } => QueryValue::Json(self.json_scalar(v, text, *plain, Scope::Request)?),
                    Kind::Scalar { .. } => QueryValue::Text(self.template(
                        v,
                        &format!("query parameter `{name}`"),
                        Scope::Request,
                    )?),
                    Kind::Seq(_) | Kind::Map(_) => QueryValue::Json(self.json(v, Scope::Request)?),
                };
                request.query.push((name, value));
            }
        }
        for (key, out) in [
            ("headers", &mut request.headers),
            ("cookies", &mut request.cookies),
        ] {
            if let Some(node) = f.get(key) {
                for (k, v) in self.pairs(node, &format!("`{key}`"))? {
                    let name = self.template(k, &format!("a name in `{key}`"), Scope::Request)?;
                    if key == "headers" && !valid_token(&name) {
                        return Err(self.err(k.pos, format!("`{name}` is not a valid header name")));
                    }
                    let value = self.template(v, &format!("`{name}`"), Scope::Request)?;
                    if value.contains(['\r', '\n', '\0']) {
                        return Err(self.err(
                            v.pos,
                            format!(
                                "the value of `{name}` holds a line break or NUL, which HTTP cannot carry"
                            ),
                        ));
                    }
                    out.push((name, value));
                }
            }
        }
        let json = f.entries.iter().find(|(k, _, _)| *k == "json");
        let form = f.entries.iter().find(|(k, _, _)| *k == "form");
        match (json, form) {
            (Some((_, jk, _)), Some((_, fk, _))) => {
                let second = if (jk.pos.line, jk.pos.column) > (fk.pos.line, fk.pos.column) {
                    jk
                } else {
                    fk
                };
                return Err(self.err(
                    second.pos,
                    "a request has at most one body: `json` or `form`, not both",
                ));
            }
            (Some((_, _, v)), None) => request.body = Some(Body::Json(self.json(v, Scope::Request)?)),
            (None, Some((_, _, v))) => {
                let mut pairs = Vec::new();
                for (k, v) in self.pairs(v, "`form`")? {
                    let name = self.template(k, "a form field name", Scope::Request)?;
                    let value = self.template(v, &format!("form field `{name}`"), Scope::Request)?;
                    pairs.push((name, value));
                }
                request.body = Some(Body::Form(pairs));
            }
            (None, None) => {}
        }
        Ok(request)
    }

    fn json_path(&self, node: &Node) -> R<String> {
        let path = self.string(node, "a JSON path (e.g. `$.id`)")?;
        check_json_path(&path).map_err(|e| self.err(node.pos, format!("invalid JSON path `{path}`: {e}")))?;
        Ok(path)
    }

    fn expect(&self, node: &Node) -> R<Expect> {
        let f = self.fields(node, "expect", EXPECT_KEYS)?;
        let mut expect = Expect::default();
        if let Some(node) = f.get("status") {
            let items: Vec<&Node> = match &node.kind {
                Kind::Seq(items) => items.iter().collect(),
                _ => vec![node],
            };
            for item in items {
                let what = "`status` (a code in 100..=599, or a list of them)";
                let code = self.uint(item, what).map_err(|_| {
                    self.err(
                        item.pos,
                        format!(
                            "expected a status code (100..=599) for `status`, found {}",
                            describe(item)
                        ),
                    )
                })?;
                if !(100..=599).contains(&code) {
                    return Err(self.err(
                        item.pos,
                        format!("status {code} is out of range; expected 100..=599"),
                    ));
                }
                expect.status.push(code as u16);
            }
        }
        if let Some(node) = f.get("json") {
            for (k, v) in self.pairs(node, "`json` (JSON path: assertion)")? {
                let path = self.json_path(k)?;
                let af = self.fields(v, &format!("the assertion on `{path}`"), JSON_ASSERT_KEYS)?;
                let assertion = match af.entries.as_slice() {
                    [("equals", _, v)] => JsonAssert::Equals(self.json(v, Scope::Expect)?),
                    [("exists", _, v)] => JsonAssert::Exists(self.bool(v, "`exists`")?),
                    [("length", _, v)] => {
                        let n = self.uint(v, "`length`")?;
                        JsonAssert::Length(
                            usize::try_from(n).map_err(|_| self.err(v.pos, "length too large"))?,
                        )
                    }
                    _ => {
                        return Err(self.err(
                            af.pos,
                            format!(
                                "the assertion on `{path}` needs exactly one of: {}",
                                JSON_ASSERT_KEYS.join(", ")
                            ),
                        ))
                    }
                };
                expect.json.push((path, assertion));
            }
        }
        if let Some(node) = f.get("headers") {
            for (k, v) in self.pairs(node, "`headers` (name: assertion)")? {
                let name = self.string(k, "a header name")?;
                if !valid_token(&name) || name.contains("{{") {
                    return Err(self.err(k.pos, format!("`{name}` is not a valid header name")));
                }
                let af = self.fields(
                    v,
                    &format!("the assertion on header `{name}`"),
                    HEADER_ASSERT_KEYS,
                )?;
                let assertion = match af.entries.as_slice() {
                    [("present", _, v)] => HeaderAssert::Present(self.bool(v, "`present`")?),
                    [("equals", _, v)] => {
                        HeaderAssert::Equals(self.template(v, "`equals`", Scope::Expect)?)
                    }
                    _ => {
                        return Err(self.err(
                            af.pos,
                            format!(
                                "the assertion on header `{name}` needs exactly one of: {}",
                                HEADER_ASSERT_KEYS.join(", ")
                            ),
                        ))
                    }
                };
                expect.headers.push((name, assertion));
            }
        }
        if let Some(node) = f.get("no_foreign_data") {
            expect.no_foreign_data = self.bool(node, "`no_foreign_data`")?;
        }
        if let Some(node) = f.get("count") {
            for (k, v) in self.pairs(node, "`count` (status or class: n or {min, max})")? {
                let key = self.string(k, "a status (200) or class (2xx)")?;
                let status = match key.strip_suffix("xx") {
                    Some(d) => d
                        .parse::<u16>()
                        .ok()
                        .filter(|d| (1..=5).contains(d))
                        .map(StatusMatch::Class),
                    None => key
                        .parse::<u16>()
                        .ok()
                        .filter(|c| (100..=599).contains(c))
                        .map(StatusMatch::Code),
                }
                .ok_or_else(|| {
                    self.err(
                        k.pos,
                        format!("`{key}` is not a status (100..=599) or a class (1xx … 5xx)"),
                    )
                })?;
                let (min, max) = if matches!(v.kind, Kind::Map(_)) {
                    let cf = self.fields(v, &format!("the count of `{key}`"), COUNT_KEYS)?;
                    let bound = |key: &str, default: u64| -> R<u32> {
                        match cf.get(key) {
                            Some(n) => Ok(self
                                .uint(n, &format!("`{key}` (a number of answers)"))?
                                .min(u64::from(u32::MAX)) as u32),
                            None => Ok(default as u32),
                        }
                    };
                    if cf.entries.is_empty() {
                        return Err(self.err(v.pos, "a count range needs `min`, `max` or both"));
                    }
                    (bound("min", 0)?, bound("max", u64::from(u32::MAX))?)
                } else {
                    let n = self
                        .uint(v, "a number of answers, or {min, max}")?
                        .min(u64::from(u32::MAX)) as u32;
                    (n, n)
                };
                if min > max {
                    return Err(self.err(
                        v.pos,
                        format!("the count of `{key}` has min {min} above max {max}"),
                    ));
                }
                expect.count.push(CountAssert { status, min, max });
            }
        }
        for (key, out) in [
            ("body_not_contains", &mut expect.body_not_contains),
            ("body_contains", &mut expect.body_contains),
        ] {
            if let Some(node) = f.get(key) {
                for item in self.seq(node, &format!("`{key}`"))? {
                    let text = self.template(item, &format!("an entry of `{key}`"), Scope::Expect)?;
                    if text.is_empty() {
                        return Err(self.err(item.pos, format!("an entry of `{key}` is empty")));
                    }
                    out.push(text);
                }
            }
        }
        Ok(expect)
    }

    /// Any YAML value as JSON (strings templated).
    fn json(&self, node: &Node, scope: Scope) -> R<Value> {
        Ok(match &node.kind {
            Kind::Scalar {
                text,
                plain,
                json_tag: false,
            } => self.json_scalar(node, text, *plain, scope)?,
            Kind::Scalar { json_tag: true, .. } => {
                return Err(self.err(node.pos, "`!json` is only accepted on a query value"));
            }
            Kind::Seq(items) => {
                Value::Array(items.iter().map(|n| self.json(n, scope)).collect::<R<Vec<_>>>()?)
            }
            Kind::Map(entries) => {
                let mut map = Map::new();
                for (k, v) in entries {
                    let key = yaml::scalar_text(k).unwrap_or_default().to_string();
                    self.placeholders(k.pos, &key, scope)?;
                    map.insert(key, self.json(v, scope)?);
                }
                Value::Object(map)
            }
        })
    }

    fn json_scalar(&self, node: &Node, text: &str, plain: bool, scope: Scope) -> R<Value> {
        if !plain {
            self.placeholders(node.pos, text, scope)?;
            return Ok(Value::String(text.to_string()));
        }
        Ok(match resolve(text) {
            Typed::Null => Value::Null,
            Typed::Bool(b) => Value::Bool(b),
            Typed::Int(n) => Value::Number(n),
            Typed::Float(f) => serde_json::Number::from_f64(f)
                .map(Value::Number)
                .unwrap_or(Value::Null),
            Typed::BigInt => {
                return Err(self.err(
                    node.pos,
                    format!("the number `{text}` does not fit in 64 bits; quote it to send a string"),
                ))
            }
            Typed::NonFinite => {
                return Err(self.err(
                    node.pos,
                    format!("`{text}` is not a JSON number; quote it to send a string"),
                ))
            }
            Typed::Str => {
                self.placeholders(node.pos, text, scope)?;
                Value::String(text.to_string())
            }
        })
    }

    /// Every `{{ name | filter }}` in `text` must be known here.
    fn placeholders(&self, pos: Pos, text: &str, scope: Scope) -> R<()> {
        let mut rest = text;
        while let Some(start) = rest.find("{{") {
            let after = &rest[start + 2..];
            let Some(end) = after.find("}}") else {
                return Err(self.err(
                    pos,
                    format!("unclosed `{{{{` in `{text}`; a placeholder is written `{{{{ name }}}}`"),
                ));
            };
            let inner = &after[..end];
            let mut parts = inner.split('|').map(str::trim);
            let name = parts.next().unwrap_or_default();
            self.placeholder(pos, name, scope)?;
            for filter in parts {
                if apply_filter(filter, "").is_err() {
                    return Err(self.err(
                        pos,
                        format!(
                            "unknown filter `{filter}` in `{{{{{inner}}}}}`; expected one of: {}",
                            crate::template::FILTERS
                        ),
                    ));
                }
            }
            rest = &after[end + 2..];
        }
        Ok(())
    }

    fn placeholder(&self, pos: Pos, name: &str, scope: Scope) -> R<()> {
        let shown = format!("{{{{ {name} }}}}");
        if name == "canary" {
            return match scope {
                Scope::Request => Ok(()),
                Scope::Expect => Err(self.err(
                    pos,
                    format!("`{shown}` plants a fresh canary, so it belongs in a request; capture the value to compare with it"),
                )),
            };
        }
        let parts: Vec<&str> = name.split('.').collect();
        match parts.as_slice() {
            ["org", key, field] => {
                if !self.orgs.iter().any(|o| o == key) {
                    return Err(self.err(
                        pos,
                        format!(
                            "placeholder `{shown}` names org `{key}`, which given.orgs does not declare (declared: {})",
                            list(&self.orgs)
                        ),
                    ));
                }
                if !["id", "slug", "name"].contains(field) {
                    return Err(self.err(
                        pos,
                        format!("placeholder `{shown}`: an org has `id`, `slug` and `name`"),
                    ));
                }
                Ok(())
            }
            ["user", key, field] => {
                if !self.users.iter().any(|(u, _)| u == key) {
                    let declared: Vec<String> = self.users.iter().map(|(u, _)| u.clone()).collect();
                    return Err(self.err(
                        pos,
                        format!(
                            "placeholder `{shown}` names user `{key}`, which given.users does not declare (declared: {})",
                            list(&declared)
                        ),
                    ));
                }
                if !["id", "email", "password"].contains(field) {
                    return Err(self.err(
                        pos,
                        format!("placeholder `{shown}`: a user has `id`, `email` and `password`"),
                    ));
                }
                Ok(())
            }
            ["target", "base_url"] => Ok(()),
            ["target", "instance", n] if n.parse::<usize>().is_ok() => Ok(()),
            _ if self.captures.iter().any(|c| c == name) => Ok(()),
            _ => Err(self.err(
                pos,
                format!(
                    "unknown placeholder `{shown}`; expected `canary`, `org.KEY.id|slug|name`, `user.KEY.id|email|password`, `target.base_url`, `target.instance.N` or a capture of an earlier step (captured so far: {})",
                    list(&self.captures)
                ),
            )),
        }
    }
}
