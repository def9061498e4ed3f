//! The mutation operators. A fuzz case is one request shape of the profile
//! (a resource's create/read/update/delete/list/search, an org route, a
//! cached path), written in scenario terms for its actor (`{{ org.b.id }}`,
//! `{{ b_projects }}`: the actor's own org and items), plus a list of
//! mutations applied in order. Every mutation is a rewrite of the template,
//! never of a rendered request, so the mutated request is a scenario step
//! as it stands: the reproduction is the case itself, and shrinking is
//! dropping mutations from the list.

use serde_json::{json, Value};

use crate::profile::Profile;
use crate::template::{rename_placeholders as rename, Body, QueryValue, RequestTemplate};

pub use crate::rng::Rng;

/// What a request shape does (it decides which check a leak falls under).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpKind {
    /// A resource's create.
    Create,
    /// Read by id.
    Read,
    /// Update by id.
    Update,
    /// Delete by id.
    Delete,
    /// List.
    List,
    /// Search.
    Search,
    /// An org route (`/orgs/{{ org }}/…`).
    Route,
    /// A cached endpoint.
    Cached,
}

/// One request shape of the profile.
#[derive(Debug, Clone)]
pub struct Op {
    /// `projects.read`, `org route 1`.
    pub label: String,
    /// What it does.
    pub kind: OpKind,
    /// The resource (index into [`Plan::resources`]).
    pub resource: Option<usize>,
    /// The profile's template (profile placeholders: `{{ id }}`, `{{ org }}`, …).
    pub template: RequestTemplate,
}

/// A resource type as the fuzz world names it.
#[derive(Debug, Clone)]
pub struct ResourceInfo {
    /// Capture-safe name (`projects`).
    pub key: String,
    /// The parent resource (index).
    pub parent: Option<usize>,
    /// The top-level JSON field of the create body that holds a canary, if
    /// any (its value is captured from the answer, for searches).
    pub canary_field: Option<String>,
}

/// Everything the mutator draws from: the profile's request shapes and
/// org places.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Request shapes.
    pub ops: Vec<Op>,
    /// Resource types, in profile order.
    pub resources: Vec<ResourceInfo>,
    /// Query parameters that may name an org.
    pub org_query: Vec<String>,
    /// Headers that may name an org.
    pub org_headers: Vec<String>,
    /// Cookies that may name an org.
    pub org_cookies: Vec<String>,
    /// JSON pointers that may name an org.
    pub org_json: Vec<String>,
    /// Form fields that may name an org.
    pub org_form: Vec<String>,
}

/// A capture-safe version of a resource name.
pub fn capture_key(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect()
}

impl Plan {
    /// The plan for `profile`.
    pub fn new(profile: &Profile) -> Self {
        let resources: Vec<ResourceInfo> = profile
            .resources
            .iter()
            .map(|r| ResourceInfo {
                key: capture_key(&r.name),
                parent: r
                    .parent
                    .as_ref()
                    .and_then(|p| profile.resources.iter().position(|x| &x.name == p)),
                canary_field: match &r.create.body {
                    Some(Body::Json(Value::Object(map))) => map
                        .iter()
                        .find(|(_, v)| v.as_str().is_some_and(|s| s.contains("{{ canary }}")))
                        .map(|(k, _)| k.clone()),
                    _ => None,
                },
            })
            .collect();
        let mut ops = Vec::new();
        for (i, r) in profile.resources.iter().enumerate() {
            let shapes = [
                ("create", OpKind::Create, Some(&r.create)),
                ("read", OpKind::Read, r.read.as_ref()),
                ("update", OpKind::Update, r.update.as_ref()),
                ("delete", OpKind::Delete, r.delete.as_ref()),
                ("list", OpKind::List, r.list.as_ref()),
                ("search", OpKind::Search, r.search.as_ref()),
            ];
            for (name, kind, template) in shapes {
                if let Some(template) = template {
                    ops.push(Op {
                        label: format!("{}.{name}", r.name),
                        kind,
                        resource: Some(i),
                        template: template.clone(),
                    });
                }
            }
        }
        for (i, route) in profile.org.routes.iter().enumerate() {
            ops.push(Op {
                label: format!("org route {}", i + 1),
                kind: OpKind::Route,
                resource: None,
                template: route.clone(),
            });
        }
        for (i, cached) in profile.cached.iter().enumerate() {
            ops.push(Op {
                label: format!("cached endpoint {}", i + 1),
                kind: OpKind::Cached,
                resource: None,
                template: cached.clone(),
            });
        }
        Self {
            ops,
            resources,
            org_query: profile.org.query.clone(),
            org_headers: profile.org.headers.clone(),
            org_cookies: profile.org.cookies.clone(),
            org_json: profile.org.json.clone(),
            org_form: profile.org.form.clone(),
        }
    }
}

/// Who sends a case, and whose data it goes after.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Who {
    /// bob, admin of org b, after org a.
    Bob,
    /// alice, admin of org a, after org b.
    Alice,
    /// No token, after org b's data (its requests are org a's shapes).
    Anonymous,
}

impl Who {
    /// (user, own org key, victim org key).
    pub fn keys(self) -> (Option<&'static str>, &'static str, &'static str) {
        match self {
            Who::Bob => (Some("bob"), "b", "a"),
            Who::Alice => (Some("alice"), "a", "b"),
            Who::Anonymous => (None, "a", "b"),
        }
    }
}

/// How an org id (or slug) is spelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// As is.
    Plain,
    /// Upper case.
    Upper,
    /// Surrounded by spaces.
    Pad,
    /// Percent-encoded (twice, once the request is encoded).
    Urlencode,
    /// A Cyrillic look-alike letter.
    Confusable,
}

impl Encoding {
    const ALL: [Encoding; 5] = [
        Encoding::Plain,
        Encoding::Upper,
        Encoding::Pad,
        Encoding::Urlencode,
        Encoding::Confusable,
    ];

    fn filter(self) -> &'static str {
        match self {
            Encoding::Plain => "",
            Encoding::Upper => " | upper",
            Encoding::Pad => " | pad",
            Encoding::Urlencode => " | urlencode",
            Encoding::Confusable => " | confusable",
        }
    }
}

/// A foreign org, spelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrgValue {
    /// The slug instead of the id.
    pub slug: bool,
    /// The spelling.
    pub encoding: Encoding,
}

impl OrgValue {
    fn draw(rng: &mut Rng) -> Self {
        Self {
            slug: rng.chance(15),
            encoding: if rng.chance(60) {
                Encoding::Plain
            } else {
                *rng.pick(&Encoding::ALL)
            },
        }
    }

    /// The placeholder for org `key`.
    pub fn placeholder(self, key: &str) -> String {
        format!(
            "{{{{ org.{key}.{}{} }}}}",
            if self.slug { "slug" } else { "id" },
            self.encoding.filter()
        )
    }
}

/// How a forged org query parameter is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueryForm {
    /// `?name=victim`.
    Single,
    /// `?name=own&name=victim`.
    OwnFirst,
    /// `?name=victim&name=own`.
    OwnLast,
    /// `?input={"name":"victim"}` (RPC-style JSON input).
    JsonInput,
}

/// A value that is not what the field expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Odd {
    /// 8 KiB of text.
    Huge,
    /// Empty.
    Empty,
    /// Right-to-left override, combining marks, astral plane, a NUL.
    Unicode,
    /// A number where text was.
    Number,
    /// `null`.
    Null,
    /// An array holding the victim org's id.
    Array,
}

impl Odd {
    const ALL: [Odd; 6] = [
        Odd::Huge,
        Odd::Empty,
        Odd::Unicode,
        Odd::Number,
        Odd::Null,
        Odd::Array,
    ];

    /// As text (query values, path segments).
    fn text(self) -> String {
        match self {
            Odd::Huge => "A".repeat(8192),
            Odd::Empty => String::new(),
            Odd::Unicode => "\u{202e}tnr\u{0301}\u{1F4A5}\u{0000}\u{FEFF}x".into(),
            Odd::Number => "-1e309".into(),
            Odd::Null => "null".into(),
            Odd::Array => "[]".into(),
        }
    }

    /// As JSON (body fields).
    fn json(self, victim: &str) -> Value {
        match self {
            Odd::Number => json!(1e300),
            Odd::Null => Value::Null,
            Odd::Array => json!([format!("{{{{ org.{victim}.id }}}}")]),
            other => Value::String(other.text()),
        }
    }
}

/// One mutation of a case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mutation {
    /// The actor's own item ids (`{{ b_projects }}`, parents included)
    /// replaced by the victim's, spelled with `encoding`.
    ForeignId {
        /// The spelling.
        encoding: Encoding,
    },
    /// Every `{{ org.b.* }}` the shape already holds (org routes, org
    /// fields of the profile) replaced by the victim's.
    ForeignOrg(OrgValue),
    /// An org query parameter naming the victim.
    OrgQuery {
        /// Parameter.
        name: String,
        /// Value.
        value: OrgValue,
        /// How it is sent.
        form: QueryForm,
    },
    /// An org header naming the victim.
    OrgHeader {
        /// Header.
        name: String,
        /// Value.
        value: OrgValue,
    },
    /// An org cookie naming the victim.
    OrgCookie {
        /// Cookie.
        name: String,
        /// Value.
        value: OrgValue,
    },
    /// An org JSON field (pointer) naming the victim.
    OrgJson {
        /// JSON pointer.
        pointer: String,
        /// Value.
        value: OrgValue,
    },
    /// An org form field naming the victim.
    OrgForm {
        /// Field.
        name: String,
        /// Value.
        value: OrgValue,
    },
    /// A field the profile does not declare, naming the victim org (in the
    /// JSON body, or the query when there is none).
    UnknownField {
        /// Field name.
        name: String,
    },
    /// A body field or query value replaced by an odd value.
    OddValue {
        /// Field or parameter name (`None`: the first one).
        name: Option<String>,
        /// The value.
        odd: Odd,
    },
    /// The actor's own id in the path replaced by an odd value.
    OddPath(Odd),
    /// Another method.
    Method(String),
    /// The actor's token replaced by an attack token of the TOK catalogue
    /// (a `forge` step: check and variant).
    Token {
        /// TOK check id.
        check: &'static str,
        /// Text of the variant's description.
        variant: &'static str,
    },
}

/// Fields no profile declares, as apps sometimes read them anyway.
const UNKNOWN_FIELDS: &[&str] = &[
    "tenant_id",
    "org",
    "organization",
    "owner_org_id",
    "workspace_id",
    "account_id",
];

/// Lightweight token mutations (the TOK suite runs the whole catalogue):
/// check and the text of the variant.
pub const TOKEN_CASES: &[(&str, &str)] = &[
    ("TOK-001", "last signature byte flipped"),
    ("TOK-001", "signature truncated by one byte"),
    ("TOK-002", "empty signature (h.p.)"),
    ("TOK-003", "alg none, no signature"),
    ("TOK-003", "alg NONE, original signature kept"),
    ("TOK-022", "o.rol ->"),
    ("TOK-023", "o.id -> another org"),
    ("TOK-025", "Authorization valid, __session with o.rol elevated"),
    ("TOK-025", "Authorization valid, __session alg none"),
];

const METHODS: &[&str] = &["GET", "POST", "PUT", "PATCH", "DELETE"];

/// One fuzz case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Case {
    /// Who sends it.
    pub who: Who,
    /// The request shape (index into [`Plan::ops`]).
    pub op: usize,
    /// The mutations, in order.
    pub mutations: Vec<Mutation>,
}

impl Case {
    /// The token mutation, if any.
    pub fn token(&self) -> Option<(&'static str, &'static str)> {
        self.mutations.iter().find_map(|m| match m {
            Mutation::Token { check, variant } => Some((*check, *variant)),
            _ => None,
        })
    }

    /// The same case with mutation `i` dropped.
    pub fn without(&self, i: usize) -> Case {
        let mut c = self.clone();
        c.mutations.remove(i);
        c
    }
}

/// Draws a case: an actor, a shape and one to four mutations.
pub fn draw(plan: &Plan, rng: &mut Rng) -> Case {
    let who = match rng.below(10) {
        0..=5 => Who::Bob,
        6..=8 => Who::Alice,
        _ => Who::Anonymous,
    };
    // Shapes that name an org in their route weigh most, then those with
    // ids: that is where tenancy is decided.
    let op_weights: Vec<u64> = plan
        .ops
        .iter()
        .map(|o| match o.kind {
            OpKind::Route => 4,
            OpKind::Cached | OpKind::Create | OpKind::List => 1,
            _ => 2,
        })
        .collect();
    let op = weighted(rng, &op_weights);
    let mut mutations = Vec::new();
    let mut tries = 0;
    let n = 1 + rng.below(4);
    // A token mutation must be judged on a request the target routes: no
    // method swap and no odd path with it (a 404 or 405 is no refusal).
    let token = who != Who::Anonymous && rng.chance(20);
    if token {
        let (check, variant) = *rng.pick(TOKEN_CASES);
        mutations.push(Mutation::Token { check, variant });
    }
    // Structure-aware weights: the places the shape has (ids, org
    // segments) draw the mutations that forge them most often.
    let placeholders = plan.ops[op].template.placeholders();
    let has = |name: &str| placeholders.iter().any(|p| p == name);
    let ids = has("id") || has("parent") || has("q");
    let org = has("org") || has("org_slug");
    let weights: [u64; 12] = [
        if ids { 6 } else { 0 },
        0,
        if org { 8 } else { 0 },
        3,
        3,
        1,
        2,
        1,
        2,
        2,
        1,
        1,
    ];
    while mutations.len() < n {
        let value = OrgValue::draw(rng);
        let m = match weighted(rng, &weights) {
            0 | 1 => Mutation::ForeignId {
                encoding: if rng.chance(70) {
                    Encoding::Plain
                } else {
                    *rng.pick(&Encoding::ALL)
                },
            },
            2 => Mutation::ForeignOrg(value),
            3 if !plan.org_query.is_empty() => Mutation::OrgQuery {
                name: rng.pick(&plan.org_query).clone(),
                value,
                form: *rng.pick(&[
                    QueryForm::Single,
                    QueryForm::OwnFirst,
                    QueryForm::OwnLast,
                    QueryForm::JsonInput,
                ]),
            },
            4 if !plan.org_headers.is_empty() => Mutation::OrgHeader {
                name: rng.pick(&plan.org_headers).clone(),
                value,
            },
            5 if !plan.org_cookies.is_empty() => Mutation::OrgCookie {
                name: rng.pick(&plan.org_cookies).clone(),
                value,
            },
            6 if !plan.org_json.is_empty() => Mutation::OrgJson {
                pointer: rng.pick(&plan.org_json).clone(),
                value,
            },
            7 if !plan.org_form.is_empty() => Mutation::OrgForm {
                name: rng.pick(&plan.org_form).clone(),
                value,
            },
            8 => Mutation::UnknownField {
                name: rng.pick(UNKNOWN_FIELDS).to_string(),
            },
            9 => Mutation::OddValue {
                name: None,
                odd: *rng.pick(&Odd::ALL),
            },
            10 if !token => Mutation::OddPath(*rng.pick(&Odd::ALL)),
            11 if !token => Mutation::Method(rng.pick(METHODS).to_string()),
            _ => {
                tries += 1;
                if tries > 64 {
                    break;
                }
                continue;
            }
        };
        // Only mutations that change the request (a shape without ids has
        // nothing for `ForeignId` to replace).
        if mutations.contains(&m) || !changes(plan, who, op, &m) {
            tries += 1;
            if tries > 64 {
                break;
            }
            continue;
        }
        mutations.push(m);
    }
    Case { who, op, mutations }
}

/// An index drawn with the given weights (not all zero).
fn weighted(rng: &mut Rng, weights: &[u64]) -> usize {
    let total: u64 = weights.iter().sum();
    let mut x = rng.next_u64() % total.max(1);
    for (i, w) in weights.iter().enumerate() {
        if x < *w {
            return i;
        }
        x -= w;
    }
    weights.len() - 1
}

/// Whether `m` changes shape `op`'s request as `who` sends it.
fn changes(plan: &Plan, who: Who, op: usize, m: &Mutation) -> bool {
    if matches!(m, Mutation::Token { .. }) {
        return true;
    }
    let bare = Case {
        who,
        op,
        mutations: Vec::new(),
    };
    let mutated = Case {
        mutations: vec![m.clone()],
        ..bare.clone()
    };
    request(plan, &bare) != request(plan, &mutated)
}

/// The capture holding org `org`'s item of resource `r` (its id), and its canary.
pub fn item_capture(plan: &Plan, org: &str, r: usize) -> String {
    format!("{org}_{}", plan.resources[r].key)
}

/// `template` (profile placeholders) in scenario terms for org `org`.
pub fn retemplate(plan: &Plan, op: &Op, template: &RequestTemplate, org: &str) -> RequestTemplate {
    let id = op.resource.map(|r| item_capture(plan, org, r));
    let parent = op
        .resource
        .and_then(|r| plan.resources[r].parent)
        .map(|p| item_capture(plan, org, p));
    let canary = op.resource.map(|r| {
        let capture = item_capture(plan, org, r);
        if plan.resources[r].canary_field.is_some() {
            format!("{capture}_canary")
        } else {
            capture
        }
    });
    template.map_strings(&|s| {
        rename(s, &|name| match name {
            "org" => format!("org.{org}.id"),
            "org_slug" => format!("org.{org}.slug"),
            "id" => id.clone().unwrap_or_else(|| "id".into()),
            "parent" => parent.clone().unwrap_or_else(|| "parent".into()),
            "q" => canary.clone().unwrap_or_else(|| "q".into()),
            other => other.to_string(),
        })
    })
}

/// Sets `pointer` in `body` (creating objects on the way).
fn set_pointer(body: &mut Value, pointer: &str, value: Value) {
    crate::audit::set_pointer(body, pointer, value);
}

/// The case's request, in scenario terms.
pub fn request(plan: &Plan, case: &Case) -> RequestTemplate {
    let op = &plan.ops[case.op];
    let (_, own, victim) = case.who.keys();
    let mut t = retemplate(plan, op, &op.template, own);
    for m in &case.mutations {
        apply(plan, op, &mut t, m, own, victim);
    }
    t
}

fn apply(plan: &Plan, op: &Op, t: &mut RequestTemplate, m: &Mutation, own: &str, victim: &str) {
    match m {
        Mutation::ForeignId { encoding } => {
            let mut pairs = Vec::new();
            for r in &plan.resources {
                let own_capture = format!("{{{{ {own}_{} }}}}", r.key);
                let foreign = format!("{{{{ {victim}_{}{} }}}}", r.key, encoding.filter());
                pairs.push((own_capture, foreign));
            }
            *t = t.map_strings(&|s| {
                let mut s = s.to_string();
                for (from, to) in &pairs {
                    s = s.replace(from, to);
                }
                s
            });
        }
        Mutation::ForeignOrg(value) => {
            let id = format!("{{{{ org.{own}.id }}}}");
            let slug = format!("{{{{ org.{own}.slug }}}}");
            let to = value.placeholder(victim);
            *t = t.map_strings(&|s| s.replace(&id, &to).replace(&slug, &to));
        }
        Mutation::OrgQuery { name, value, form } => {
            let foreign = QueryValue::Text(value.placeholder(victim));
            let mine = QueryValue::Text(format!("{{{{ org.{own}.id }}}}"));
            match form {
                QueryForm::Single => t.query.push((name.clone(), foreign)),
                QueryForm::OwnFirst => {
                    t.query.push((name.clone(), mine));
                    t.query.push((name.clone(), foreign));
                }
                QueryForm::OwnLast => {
                    t.query.push((name.clone(), foreign));
                    t.query.push((name.clone(), mine));
                }
                QueryForm::JsonInput => t.query.push((
                    "input".into(),
                    QueryValue::Json(json!({ name.clone(): value.placeholder(victim) })),
                )),
            }
        }
        Mutation::OrgHeader { name, value } => {
            // A header value cannot carry the padding's surrounding spaces
            // (they are trimmed on the wire): pad becomes plain.
            let value = value.placeholder(victim).replace(" | pad", "");
            t.headers.push((name.clone(), value));
        }
        Mutation::OrgCookie { name, value } => {
            let value = value.placeholder(victim).replace(" | pad", "");
            t.cookies.push((name.clone(), value));
        }
        Mutation::OrgJson { pointer, value } => {
            let value = Value::String(value.placeholder(victim));
            match &mut t.body {
                Some(Body::Json(body)) => set_pointer(body, pointer, value),
                Some(Body::Form(_)) => {}
                None => {
                    let mut body = json!({});
                    set_pointer(&mut body, pointer, value);
                    t.body = Some(Body::Json(body));
                }
            }
        }
        Mutation::OrgForm { name, value } => {
            let value = value.placeholder(victim);
            match &mut t.body {
                Some(Body::Form(pairs)) => pairs.push((name.clone(), value)),
                Some(Body::Json(_)) => {}
                None => t.body = Some(Body::Form(vec![(name.clone(), value)])),
            }
        }
        Mutation::UnknownField { name } => {
            let value = format!("{{{{ org.{victim}.id }}}}");
            match &mut t.body {
                Some(Body::Json(Value::Object(map))) => {
                    map.insert(name.clone(), Value::String(value));
                }
                Some(Body::Form(pairs)) => pairs.push((name.clone(), value)),
                _ => t.query.push((name.clone(), QueryValue::Text(value))),
            }
        }
        Mutation::OddValue { name, odd } => match &mut t.body {
            Some(Body::Json(Value::Object(map))) if !map.is_empty() => {
                let key = name
                    .clone()
                    .filter(|n| map.contains_key(n))
                    .or_else(|| map.keys().next().cloned());
                if let Some(key) = key {
                    map.insert(key, odd.json(victim));
                }
            }
            Some(Body::Form(pairs)) if !pairs.is_empty() => pairs[0].1 = odd.text(),
            _ => match t.query.first_mut() {
                Some((_, v)) => *v = QueryValue::Text(odd.text()),
                None => t.query.push(("q".into(), QueryValue::Text(odd.text()))),
            },
        },
        Mutation::OddPath(odd) => {
            let text = match odd {
                // An empty segment changes the route, not the value.
                Odd::Empty => "%20".to_string(),
                // Path segments are sent as written: encode what must be.
                other => crate::client::form_component(&other.text()),
            };
            if let Some(r) = op.resource {
                let own_capture = format!("{{{{ {} }}}}", item_capture(plan, own, r));
                if t.path.contains(&own_capture) {
                    t.path = t.path.replace(&own_capture, &text);
                    return;
                }
            }
            t.path.push_str(&format!("/{text}"));
        }
        Mutation::Method(method) => t.method = method.clone(),
        Mutation::Token { .. } => {}
    }
}

/// A short description of a mutation, for messages.
pub fn describe(m: &Mutation) -> String {
    let org = |v: &OrgValue| {
        format!(
            "{}{}",
            if v.slug { "slug" } else { "id" },
            match v.encoding {
                Encoding::Plain => "",
                Encoding::Upper => ", upper case",
                Encoding::Pad => ", padded",
                Encoding::Urlencode => ", URL-encoded",
                Encoding::Confusable => ", confusable",
            }
        )
    };
    match m {
        Mutation::ForeignId { encoding } => format!("the other org's item ids ({encoding:?})"),
        Mutation::ForeignOrg(v) => format!("the other org in the shape's org places ({})", org(v)),
        Mutation::OrgQuery { name, value, form } => {
            format!("query `{name}` names the other org ({}, {form:?})", org(value))
        }
        Mutation::OrgHeader { name, value } => {
            format!("header `{name}` names the other org ({})", org(value))
        }
        Mutation::OrgCookie { name, value } => {
            format!("cookie `{name}` names the other org ({})", org(value))
        }
        Mutation::OrgJson { pointer, value } => {
            format!("JSON `{pointer}` names the other org ({})", org(value))
        }
        Mutation::OrgForm { name, value } => {
            format!("form field `{name}` names the other org ({})", org(value))
        }
        Mutation::UnknownField { name } => format!("undeclared field `{name}` names the other org"),
        Mutation::OddValue { odd, .. } => format!("a value replaced by {odd:?}"),
        Mutation::OddPath(odd) => format!("the path id replaced by {odd:?}"),
        Mutation::Method(m) => format!("method {m}"),
        Mutation::Token { check, variant } => format!("token: {check} ({variant})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> Plan {
        Plan::new(&Profile::reference(
            "http://127.0.0.1:1",
            "sk_test_x",
            "http://localhost",
        ))
    }

    #[test]
    fn shapes_are_in_scenario_terms_and_mutations_rewrite_them() {
        let plan = plan();
        let read = plan.ops.iter().position(|o| o.label == "documents.read").unwrap();
        let case = Case {
            who: Who::Bob,
            op: read,
            mutations: vec![],
        };
        assert_eq!(request(&plan, &case).path, "/api/documents/{{ b_documents }}");
        let case = Case {
            mutations: vec![
                Mutation::ForeignId {
                    encoding: Encoding::Upper,
                },
                Mutation::OrgQuery {
                    name: "org_id".into(),
                    value: OrgValue {
                        slug: false,
                        encoding: Encoding::Plain,
                    },
                    form: QueryForm::OwnFirst,
                },
            ],
            ..case
        };
        let t = request(&plan, &case);
        assert_eq!(t.path, "/api/documents/{{ a_documents | upper }}");
        assert_eq!(
            t.query,
            vec![
                ("org_id".into(), QueryValue::Text("{{ org.b.id }}".into())),
                ("org_id".into(), QueryValue::Text("{{ org.a.id }}".into())),
            ]
        );
        let route = plan.ops.iter().position(|o| o.kind == OpKind::Route).unwrap();
        let t = request(
            &plan,
            &Case {
                who: Who::Bob,
                op: route,
                mutations: vec![Mutation::ForeignOrg(OrgValue {
                    slug: true,
                    encoding: Encoding::Plain,
                })],
            },
        );
        assert_eq!(t.path, "/api/orgs/{{ org.a.slug }}/projects");
        assert_eq!(plan.resources[0].canary_field.as_deref(), Some("description"));
    }

    #[test]
    fn draws_are_seeded() {
        let plan = plan();
        let a: Vec<Case> = {
            let mut rng = Rng::new(7);
            (0..50).map(|_| draw(&plan, &mut rng)).collect()
        };
        let mut rng = Rng::new(7);
        let b: Vec<Case> = (0..50).map(|_| draw(&plan, &mut rng)).collect();
        assert_eq!(a, b);
        for c in &a {
            assert!(!c.mutations.is_empty() && c.mutations.len() <= 4);
            if c.token().is_some() {
                assert!(!c
                    .mutations
                    .iter()
                    .any(|m| matches!(m, Mutation::Method(_) | Mutation::OddPath(_))));
            }
        }
    }
}
