//! The org guard's reference model. Requests are generated as structure
//! (decoded names and values), encoded to the wire the way a client would,
//! and judged by the model on the structure: the guard must refuse exactly
//! when some org-named parameter, header, cookie, JSON or form field — or a
//! path segment after `orgs`/`organizations` — names anything but the active
//! org's id or slug, and report the first such position.

use arbitrary::Arbitrary;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use tenantry_reference::proxy::org_guard::{ActiveOrg, Position, RequestParts};

/// The active org of every request.
pub const ACTIVE: ActiveOrg<'static> = ActiveOrg {
    id: "org_active",
    slug: Some("active"),
};

/// Spellings of org-id names (some are, some are not, org keys).
const ORG_NAMES: &[&str] = &[
    "org_id",
    "orgId",
    "ORG-ID",
    "organization_id",
    "organizationId",
    "X-Org-Id",
    "x-organization-id",
    "active_org_id",
    "activeOrganizationId",
    "tenant_id",
    "X-Tenant-Id",
    "o.r.g_i.d",
    "org\u{0}id",
    "orgéid",
    "org",
    "organization",
    "org_ids",
    "orgs",
    "id",
    "xorgid",
    "x_tenant_id",
    "tenantId ",
];
/// Values: the active id and slug, and near misses.
const VALUES: &[&str] = &[
    "org_active",
    "active",
    "org_other",
    "ORG_ACTIVE",
    "org_active ",
    " org_active",
    "org_active\0",
    "оrg_active",
    "org_activ",
    "",
    "org%5Factive",
    "Active",
    "org_active,org_other",
    "null",
    "42",
];

/// A name: a known spelling or anything.
#[derive(Debug, Arbitrary)]
pub enum Name {
    /// One of [`ORG_NAMES`].
    Known(u8),
    /// Anything.
    Other(String),
}

impl Name {
    fn text(&self) -> &str {
        match self {
            Name::Known(i) => ORG_NAMES[usize::from(*i) % ORG_NAMES.len()],
            Name::Other(s) => s,
        }
    }
}

/// A value: a known one or anything.
#[derive(Debug, Arbitrary)]
pub enum Val {
    /// One of [`VALUES`].
    Known(u8),
    /// Anything.
    Other(String),
}

impl Val {
    fn text(&self) -> &str {
        match self {
            Val::Known(i) => VALUES[usize::from(*i) % VALUES.len()],
            Val::Other(s) => s,
        }
    }
}

/// A path segment (decoded).
#[derive(Debug, Arbitrary)]
pub enum Segment {
    /// `orgs`.
    Orgs,
    /// `organizations`.
    Organizations,
    /// A value.
    Val(Val),
}

/// A JSON value; keys may repeat.
#[derive(Debug, Arbitrary)]
pub enum Json {
    /// `null`.
    Null,
    /// A boolean.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A string.
    Str(Val),
    /// An array.
    Arr(Vec<Json>),
    /// An object (duplicate keys kept).
    Obj(Vec<(Name, Json)>),
}

/// A body.
#[derive(Debug, Arbitrary)]
pub enum Body {
    /// None.
    None,
    /// JSON under one of several JSON media types.
    Json(u8, Json),
    /// A form.
    Form(u8, Vec<(Name, Val)>),
}

/// A request as structure.
#[derive(Debug, Arbitrary)]
pub struct Request {
    /// Percent-encode every byte (else only what must be).
    pub encode_all: bool,
    /// Path segments.
    pub path: Vec<Segment>,
    /// Query parameters (every occurrence).
    pub query: Vec<(Name, Val)>,
    /// Headers.
    pub headers: Vec<(Name, Val)>,
    /// Cookie headers, each with its pairs.
    pub cookies: Vec<Vec<(Name, Val)>>,
    /// The body.
    pub body: Body,
}

/// Arbitrary raw parts, for the never-panics property.
#[derive(Debug, Arbitrary)]
pub struct Raw<'a> {
    /// Path.
    pub path: &'a str,
    /// Query.
    pub query: Option<&'a str>,
    /// Headers.
    pub headers: Vec<(&'a str, &'a [u8])>,
    /// Cookie headers.
    pub cookies: Vec<&'a str>,
    /// Content type.
    pub content_type: &'a str,
    /// Body.
    pub body: &'a [u8],
}

const JSON_TYPES: &[&str] = &[
    "application/json",
    "application/json; charset=utf-8",
    "Application/JSON",
    "application/vnd.api+json",
];
const FORM_TYPES: &[&str] = &[
    "application/x-www-form-urlencoded",
    "Application/X-WWW-Form-Urlencoded; charset=utf-8",
];
/// Unreserved characters stay as they are.
const ENCODE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');
const MAX_DEPTH: usize = 16;

/// The documented rule: fold case, keep ASCII letters and digits.
fn org_name(name: &str) -> bool {
    let folded: String = name
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect();
    [
        "orgid",
        "organizationid",
        "xorgid",
        "xorganizationid",
        "activeorgid",
        "activeorganizationid",
        "tenantid",
        "xtenantid",
    ]
    .contains(&folded.as_str())
}

fn names_active(value: &str) -> bool {
    value == ACTIVE.id || Some(value) == ACTIVE.slug
}

fn cookie_safe(s: &str, is_name: bool) -> String {
    s.chars()
        .filter(|&c| c != ';' && !(is_name && c == '='))
        .collect()
}

impl Request {
    fn encode(&self, s: &str) -> String {
        if self.encode_all {
            s.bytes().map(|b| format!("%{b:02X}")).collect()
        } else {
            utf8_percent_encode(s, ENCODE).to_string()
        }
    }

    fn urlencoded(&self, pairs: &[(Name, Val)]) -> String {
        let pairs: Vec<String> = pairs
            .iter()
            .map(|(n, v)| format!("{}={}", self.encode(n.text()), self.encode(v.text())))
            .collect();
        pairs.join("&")
    }

    /// The wire form: (path, query, headers, cookie headers, body).
    pub fn wire(&self) -> Wire {
        let mut path = String::new();
        for segment in &self.path {
            path.push('/');
            path.push_str(&self.encode(match segment {
                Segment::Orgs => "orgs",
                Segment::Organizations => "organizations",
                Segment::Val(v) => v.text(),
            }));
        }
        let cookies = self
            .cookies
            .iter()
            .map(|pairs| {
                let pairs: Vec<String> = pairs
                    .iter()
                    .map(|(n, v)| format!("{}={}", cookie_safe(n.text(), true), cookie_safe(v.text(), false)))
                    .collect();
                pairs.join("; ")
            })
            .collect();
        let body = match &self.body {
            Body::None => None,
            Body::Json(t, json) => {
                let mut text = String::new();
                write_json(json, 0, &mut text);
                Some((
                    JSON_TYPES[usize::from(*t) % JSON_TYPES.len()].to_string(),
                    text.into_bytes(),
                ))
            }
            Body::Form(t, pairs) => Some((
                FORM_TYPES[usize::from(*t) % FORM_TYPES.len()].to_string(),
                self.urlencoded(pairs).into_bytes(),
            )),
        };
        Wire {
            path,
            query: (!self.query.is_empty()).then(|| self.urlencoded(&self.query)),
            headers: self
                .headers
                .iter()
                .map(|(n, v)| (n.text().to_string(), v.text().as_bytes().to_vec()))
                .collect(),
            cookies,
            body,
        }
    }

    /// The model's verdict: the first position naming another org.
    pub fn verdict(&self) -> Result<(), Position> {
        let mut segments = vec![String::new()];
        segments.extend(self.path.iter().map(|s| match s {
            Segment::Orgs => "orgs".to_string(),
            Segment::Organizations => "organizations".to_string(),
            Segment::Val(v) => v.text().to_string(),
        }));
        if segments
            .windows(2)
            .any(|w| (w[0] == "orgs" || w[0] == "organizations") && !names_active(&w[1]))
        {
            return Err(Position::Path);
        }
        let foreign = |(n, v): &(Name, Val)| org_name(n.text()) && !names_active(v.text());
        if self.query.iter().any(foreign) {
            return Err(Position::Query);
        }
        if self.headers.iter().any(foreign) {
            return Err(Position::Header);
        }
        let foreign_cookie = |(n, v): &(Name, Val)| {
            org_name(cookie_safe(n.text(), true).trim()) && !names_active(cookie_safe(v.text(), false).trim())
        };
        if self.cookies.iter().flatten().any(foreign_cookie) {
            return Err(Position::Cookie);
        }
        match &self.body {
            Body::Json(_, json) if json_foreign(json, 0, false) => Err(Position::Json),
            Body::Form(_, pairs) if pairs.iter().any(foreign) => Err(Position::Form),
            _ => Ok(()),
        }
    }
}

/// A request on the wire.
#[derive(Debug)]
pub struct Wire {
    /// Path.
    pub path: String,
    /// Query.
    pub query: Option<String>,
    /// Headers.
    pub headers: Vec<(String, Vec<u8>)>,
    /// Cookie headers.
    pub cookies: Vec<String>,
    /// Content type and body.
    pub body: Option<(String, Vec<u8>)>,
}

impl Wire {
    /// The guard's view.
    pub fn parts(&self) -> RequestParts<'_> {
        RequestParts {
            path: &self.path,
            query: self.query.as_deref(),
            headers: self
                .headers
                .iter()
                .map(|(n, v)| (n.as_str(), v.as_slice()))
                .collect(),
            cookies: self.cookies.iter().map(String::as_str).collect(),
            body: self.body.as_ref().map(|(t, b)| (t.as_str(), b.as_slice())),
        }
    }
}

fn write_json(json: &Json, depth: usize, out: &mut String) {
    let quote = |s: &str| serde_json::Value::String(s.to_string()).to_string();
    match json {
        _ if depth >= MAX_DEPTH => out.push_str("null"),
        Json::Null => out.push_str("null"),
        Json::Bool(b) => out.push_str(&b.to_string()),
        Json::Int(i) => out.push_str(&i.to_string()),
        Json::Str(v) => out.push_str(&quote(v.text())),
        Json::Arr(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_json(item, depth + 1, out);
            }
            out.push(']');
        }
        Json::Obj(fields) => {
            out.push('{');
            for (i, (name, value)) in fields.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&quote(name.text()));
                out.push(':');
                write_json(value, depth + 1, out);
            }
            out.push('}');
        }
    }
}

/// Whether a value under an org key (`under`), or anything inside, names
/// another org: a string must name the active org; any other value cannot.
fn json_foreign(json: &Json, depth: usize, under: bool) -> bool {
    match json {
        _ if depth >= MAX_DEPTH => under,
        Json::Str(v) => under && !names_active(v.text()),
        Json::Null | Json::Bool(_) | Json::Int(_) => under,
        Json::Arr(items) => items.iter().any(|item| json_foreign(item, depth + 1, under)),
        Json::Obj(fields) => {
            under
                || fields
                    .iter()
                    .any(|(name, value)| json_foreign(value, depth + 1, org_name(name.text())))
        }
    }
}
