//! The environment overlay: every configuration key can be set by a
//! `TENANTRY_<SECTION>_<KEY>` variable, over the file and the defaults.
//!
//! The keys are not listed by hand: they are read from the config types' JSON
//! schema (`schemars`, derived beside `serde`'s derives, so it follows the same
//! renames and defaults), walked down to its leaves. A field added to a
//! section can be set from the environment with no further code, and a key
//! the environment names is always one the file accepts.
//!
//! - **Spelling**: `TENANTRY_` then the dotted key's segments, upper-cased, with
//!   every character other than `A-Z` and `0-9` turned into `_`, joined by `_`:
//!   `identity.session_token_lifetime_secs` is
//!   `TENANTRY_IDENTITY_SESSION_TOKEN_LIFETIME_SECS`, and
//!   `rate_limit.policies."api.read".limit` is
//!   `TENANTRY_RATE_LIMIT_POLICIES_API_READ_LIMIT`.
//! - **Maps**: a map with a fixed set of keys (`rate_limit.policies`, keyed by
//!   [`PolicyName`](crate::ratelimit::PolicyName)) has variables for every
//!   entry; a map with free keys (`oauth.providers`) has variables for the
//!   entries the file or the defaults declare (a new provider needs the file).
//! - **Values**: integers and `true`/`false` as written, one of the listed
//!   words for a choice, lists comma-separated; an empty value unsets an
//!   optional key.
//!
//! A `TENANTRY_*` variable that names no key (and is not one of the
//! [`OTHER_VARIABLES`] tenantry reads for something else) is reported as an
//! [`UnknownVariable`] naming the closest key, by edit distance.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;

use serde_json::{Map, Value};

use super::{Config, ConfigError};

/// The prefix of every configuration variable.
pub const PREFIX: &str = "TENANTRY_";

/// `TENANTRY_*` variables tenantry reads for something other than this
/// configuration, so never reported as unknown: the harness's services
/// (`TENANTRY_REDIS_URL`, where tests find Redis; `TENANTRY_PG_USER`,
/// `TENANTRY_PG_BINDIR`, `TENANTRY_REDIS_SERVER`, `TENANTRY_CACHE_DIR`) and
/// the CLI's log filter (`TENANTRY_LOG`). `TENANTRY_DATABASE_URL` is both a
/// key (`database.url`) and the services' server URL.
pub const OTHER_VARIABLES: &[&str] = &[
    "TENANTRY_CACHE_DIR",
    "TENANTRY_LOG",
    "TENANTRY_PG_BINDIR",
    "TENANTRY_PG_USER",
    "TENANTRY_REDIS_SERVER",
    "TENANTRY_REDIS_URL",
];

/// What a key's value is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// A whole number (`7`); the key's type bounds it.
    Integer,
    /// `true` or `false`.
    Boolean,
    /// Text, taken as written (addresses, URLs, secrets).
    Text,
    /// A list of text, comma-separated (`a,b`; empty: no items).
    List,
    /// One of these words.
    OneOf(Vec<String>),
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Kind::Integer => f.write_str("integer"),
            Kind::Boolean => f.write_str("true or false"),
            Kind::Text => f.write_str("text"),
            Kind::List => f.write_str("comma-separated list"),
            Kind::OneOf(words) => f.write_str(&one_of(words)),
        }
    }
}

/// A configuration key and the variable that sets it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvKey {
    /// The key's path (`["rate_limit", "policies", "api.read", "limit"]`).
    pub path: Vec<String>,
    /// The dotted key as TOML writes it (`rate_limit.policies."api.read".limit`).
    pub key: String,
    /// The variable (`TENANTRY_RATE_LIMIT_POLICIES_API_READ_LIMIT`).
    pub variable: String,
    /// What its value is.
    pub kind: Kind,
    /// An empty value unsets it.
    pub optional: bool,
    /// Its value is never repeated in a message.
    pub secret: bool,
}

/// A `TENANTRY_*` variable that sets no key; ignored, with a warning.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("environment variable {variable} is not a configuration key and is ignored; did you mean {closest} (`{key}`)?")]
pub struct UnknownVariable {
    /// The variable.
    pub variable: String,
    /// The configuration variable with the smallest edit distance to it.
    pub closest: String,
    /// That variable's key.
    pub key: String,
}

/// The schema of [`Config`], as JSON.
fn schema() -> &'static Value {
    static SCHEMA: OnceLock<Value> = OnceLock::new();
    SCHEMA.get_or_init(|| schemars::schema_for!(Config).to_value())
}

/// Every key of `config` the environment can set: the schema's leaves, with
/// the entries of free-keyed maps taken from `config` (the file's, or the
/// defaults).
pub fn keys(config: &Config) -> Result<Vec<EnvKey>, ConfigError> {
    let value = to_value(config)?;
    let root = schema();
    let mut out = Vec::new();
    walk(root, root, &value, &mut Vec::new(), &mut out);
    Ok(out)
}

fn to_value(config: &Config) -> Result<Value, ConfigError> {
    serde_json::to_value(config).map_err(|e| ConfigError::invalid("(the whole configuration)", e.to_string()))
}

fn walk(root: &Value, schema: &Value, value: &Value, path: &mut Vec<String>, out: &mut Vec<EnvKey>) {
    let (schema, optional) = unwrap_optional(root, schema);
    if let Some(properties) = schema.get("properties").and_then(Value::as_object) {
        for (name, sub) in properties {
            path.push(name.clone());
            walk(root, sub, value.get(name).unwrap_or(&Value::Null), path, out);
            path.pop();
        }
        return;
    }
    if let Some(entry) = schema.get("additionalProperties").filter(|s| s.is_object()) {
        for (name, sub_value) in value.as_object().into_iter().flatten() {
            path.push(name.clone());
            walk(root, entry, sub_value, path, out);
            path.pop();
        }
        return;
    }
    out.push(EnvKey {
        key: dotted(path),
        variable: variable(path),
        path: path.clone(),
        kind: kind(root, &schema),
        optional,
        secret: schema.get("x-secret") == Some(&Value::Bool(true)),
    });
}

/// Follows `$ref`s into `$defs`.
fn resolve<'a>(root: &'a Value, mut schema: &'a Value) -> &'a Value {
    while let Some(name) = schema
        .get("$ref")
        .and_then(Value::as_str)
        .and_then(|r| r.strip_prefix("#/$defs/"))
    {
        match root.get("$defs").and_then(|d| d.get(name)) {
            Some(target) => schema = target,
            None => break,
        }
    }
    schema
}

/// `Option<T>`'s schema is `T`'s or `null` (`anyOf`, or a type list); the
/// field's own keywords (`x-secret`, the description) stay with the field.
fn unwrap_optional<'a>(root: &'a Value, schema: &'a Value) -> (std::borrow::Cow<'a, Value>, bool) {
    use std::borrow::Cow;
    let is_null = |s: &Value| s.get("type").and_then(Value::as_str) == Some("null");
    if let Some(members) = schema.get("anyOf").and_then(Value::as_array) {
        if members.len() == 2 && members.iter().any(is_null) {
            if let Some(inner) = members.iter().find(|m| !is_null(m)) {
                let mut merged = resolve(root, inner).clone();
                if let (Some(m), Some(field)) = (merged.as_object_mut(), schema.as_object()) {
                    for (k, v) in field.iter().filter(|(k, _)| k.as_str() != "anyOf") {
                        m.insert(k.clone(), v.clone());
                    }
                }
                return (Cow::Owned(merged), true);
            }
        }
    }
    let schema = resolve(root, schema);
    if let Some(types) = schema.get("type").and_then(Value::as_array) {
        let rest: Vec<&Value> = types.iter().filter(|t| t.as_str() != Some("null")).collect();
        if rest.len() == 1 && types.len() == 2 {
            let mut narrowed = schema.clone();
            narrowed["type"] = rest[0].clone();
            return (Cow::Owned(narrowed), true);
        }
    }
    (Cow::Borrowed(schema), false)
}

fn kind(root: &Value, schema: &Value) -> Kind {
    let schema = resolve(root, schema);
    let words = |values: &[Value]| -> Option<Vec<String>> {
        values
            .iter()
            .map(|v| {
                let v = resolve(root, v);
                v.as_str()
                    .or_else(|| v.get("const").and_then(Value::as_str))
                    .map(str::to_string)
            })
            .collect()
    };
    for alternatives in ["enum", "oneOf", "anyOf"] {
        if let Some(words) = schema
            .get(alternatives)
            .and_then(Value::as_array)
            .and_then(|v| words(v))
        {
            return Kind::OneOf(words);
        }
    }
    if let Some(word) = schema.get("const").and_then(Value::as_str) {
        return Kind::OneOf(vec![word.to_string()]);
    }
    match schema.get("type").and_then(Value::as_str) {
        Some("integer") => Kind::Integer,
        Some("boolean") => Kind::Boolean,
        Some("array") => Kind::List,
        // Strings, and anything else: serde judges the text.
        _ => Kind::Text,
    }
}

/// `rate_limit.policies."api.read".limit`
fn dotted(path: &[String]) -> String {
    let bare = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    };
    path.iter()
        .map(|s| if bare(s) { s.clone() } else { format!("{s:?}") })
        .collect::<Vec<_>>()
        .join(".")
}

/// `TENANTRY_RATE_LIMIT_POLICIES_API_READ_LIMIT`
fn variable(path: &[String]) -> String {
    let mut out = PREFIX.to_string();
    for (i, segment) in path.iter().enumerate() {
        if i > 0 {
            out.push('_');
        }
        out.extend(segment.chars().map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        }));
    }
    out
}

fn one_of(words: &[String]) -> String {
    match words {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}

/// The variables of `env` that `config`'s keys name, applied over it. Returns
/// the merged configuration and which variable set which key.
pub(super) fn overlay(
    config: Config,
    keys: &[EnvKey],
    env: &BTreeMap<String, String>,
) -> Result<(Config, BTreeMap<String, String>), ConfigError> {
    let mut set = BTreeMap::new();
    if !keys.iter().any(|key| env.contains_key(&key.variable)) {
        return Ok((config, set));
    }
    let mut value = to_value(&config)?;
    let mut merged = config;
    for key in keys {
        let Some(raw) = env.get(&key.variable) else {
            continue;
        };
        let bad = |message: String| ConfigError::Invalid {
            key: key.key.clone(),
            origin: format!(" (from {})", key.variable),
            message,
        };
        let got = |raw: &str| {
            if key.secret {
                String::new()
            } else {
                format!(", got `{raw}`")
            }
        };
        insert(
            &mut value,
            &key.path,
            parse(key, raw).map_err(|e| bad(format!("{e}{}", got(raw))))?,
        );
        // One variable at a time, so a value the key's type refuses (a
        // negative count, a malformed address) names its variable.
        merged = serde_json::from_value(value.clone()).map_err(|e| bad(format!("{e}{}", got(raw))))?;
        set.insert(key.key.clone(), key.variable.clone());
    }
    Ok((merged, set))
}

/// The text of a variable as the value its key takes.
fn parse(key: &EnvKey, raw: &str) -> Result<Value, String> {
    let text = raw.trim();
    if text.is_empty() && key.optional {
        return Ok(Value::Null);
    }
    match &key.kind {
        Kind::Integer => text
            .parse::<i64>()
            .map(Value::from)
            .or_else(|_| text.parse::<u64>().map(Value::from))
            .map_err(|_| "expected an integer".to_string()),
        Kind::Boolean => text
            .parse::<bool>()
            .map(Value::Bool)
            .map_err(|_| "expected true or false".to_string()),
        Kind::OneOf(words) if words.iter().any(|w| w == text) => Ok(Value::String(text.into())),
        Kind::OneOf(words) => Err(format!("expected {}", one_of(words))),
        Kind::List => Ok(Value::Array(
            text.split(',')
                .map(str::trim)
                .filter(|item| !item.is_empty())
                .map(|item| Value::String(item.into()))
                .collect(),
        )),
        // Text is taken as written: spaces may be part of a secret.
        Kind::Text => Ok(Value::String(raw.into())),
    }
}

/// Sets `path` in `value`, making the tables on the way (a map entry the
/// file did not declare).
fn insert(value: &mut Value, path: &[String], leaf: Value) {
    let mut at = value;
    for segment in path {
        if !at.is_object() {
            *at = Value::Object(Map::new());
        }
        let Value::Object(table) = at else { return };
        at = table.entry(segment.clone()).or_insert(Value::Null);
    }
    *at = leaf;
}

/// The `TENANTRY_*` variables of `env` that set no key of `keys`.
pub(super) fn unknown(keys: &[EnvKey], env: &BTreeMap<String, String>) -> Vec<UnknownVariable> {
    let known: BTreeSet<&str> = keys.iter().map(|k| k.variable.as_str()).collect();
    env.keys()
        .filter(|name| name.starts_with(PREFIX))
        .filter(|name| !known.contains(name.as_str()) && !OTHER_VARIABLES.contains(&name.as_str()))
        .filter_map(|name| {
            let closest = keys
                .iter()
                .min_by_key(|k| (strsim::levenshtein(name, &k.variable), k.variable.clone()))?;
            Some(UnknownVariable {
                variable: name.clone(),
                closest: closest.variable.clone(),
                key: closest.key.clone(),
            })
        })
        .collect()
}

/// This process's `TENANTRY_*` variables. A value that is not UTF-8 is an
/// error naming its variable.
pub(super) fn process() -> Result<BTreeMap<String, String>, ConfigError> {
    let mut out = BTreeMap::new();
    for (name, value) in std::env::vars_os() {
        let Some(name) = name.to_str().filter(|n| n.starts_with(PREFIX)) else {
            continue;
        };
        let value = value.into_string().map_err(|_| ConfigError::Invalid {
            key: "(environment)".into(),
            origin: format!(" (from {name})"),
            message: "the value is not valid UTF-8".into(),
        })?;
        out.insert(name.to_string(), value);
    }
    Ok(out)
}
