//! Scenario files to YAML text. Campaigns write their shrunk reproductions
//! with this; [`super::parse`] reads the text back to the same [`Scenario`].
//!
//! Every string is written plain when it is a simple word, path or key that
//! reads back as the same string, double-quoted otherwise (so no text is
//! ever re-typed as a number, a boolean or null, and no character needs a
//! block scalar); JSON
//! values are written in flow style, which YAML reads as it is. Query
//! parameters are written as a list of one-entry mappings, the form that
//! keeps a repeated name; headers and cookies too when a name repeats.

use std::fmt::Write as _;

use serde_json::Value;

use super::{Actor, CaptureSource, Expect, HeaderAssert, Item, JsonAssert, Scenario, Step};
use crate::template::{Body, QueryValue, RequestTemplate};

/// `scenario` as a scenario file.
pub fn to_yaml(scenario: &Scenario) -> String {
    let mut out = String::new();
    line(&mut out, 0, &format!("id: {}", scalar(&scenario.id)));
    line(&mut out, 0, &format!("title: {}", scalar(&scenario.title)));
    line(&mut out, 0, &format!("severity: {}", scenario.severity.name()));
    if let Some(cwe) = scenario.cwe {
        line(&mut out, 0, &format!("cwe: {cwe}"));
    }
    if !scenario.tags.is_empty() {
        line(&mut out, 0, &format!("tags: {}", flow_strings(&scenario.tags)));
    }
    if !scenario.references.is_empty() {
        line(
            &mut out,
            0,
            &format!("references: {}", flow_strings(&scenario.references)),
        );
    }
    let given = &scenario.given;
    if !given.orgs.is_empty() || !given.users.is_empty() || !given.resources.is_empty() {
        line(&mut out, 0, "given:");
        if !given.orgs.is_empty() {
            line(&mut out, 1, "orgs:");
            for org in &given.orgs {
                let body = match &org.name {
                    Some(name) => format!("{{name: {}}}", scalar(name)),
                    None => "{}".to_string(),
                };
                line(&mut out, 2, &format!("{}: {body}", scalar(&org.key)));
            }
        }
        if !given.users.is_empty() {
            line(&mut out, 1, "users:");
            for user in &given.users {
                let memberships: Vec<String> = user
                    .memberships
                    .iter()
                    .map(|(o, r)| format!("{}: {}", scalar(o), scalar(r)))
                    .collect();
                line(
                    &mut out,
                    2,
                    &format!("{}: {{{}}}", scalar(&user.key), memberships.join(", ")),
                );
            }
        }
        if !given.resources.is_empty() {
            line(&mut out, 1, "resources:");
            for step in &given.resources {
                write_step(&mut out, 2, step);
            }
        }
    }
    line(&mut out, 0, "steps:");
    for item in &scenario.steps {
        match item {
            Item::Send(step) => write_step(&mut out, 1, step),
            Item::Wait(d) => line(&mut out, 1, &format!("- wait: {}ms", d.as_millis())),
            Item::Membership(m) => {
                let change = match &m.role {
                    Some(role) => format!("role: {}", scalar(role)),
                    None => "removed: true".to_string(),
                };
                let membership = format!(
                    "membership: {{user: {}, org: {}, {change}}}",
                    scalar(&m.user),
                    scalar(&m.org)
                );
                match &m.name {
                    Some(name) => {
                        line(&mut out, 1, &format!("- name: {}", scalar(name)));
                        line(&mut out, 2, &membership);
                    }
                    None => line(&mut out, 1, &format!("- {membership}")),
                }
            }
        }
    }
    out
}

/// Two spaces per level.
fn line(out: &mut String, level: usize, text: &str) {
    for _ in 0..level {
        out.push_str("  ");
    }
    out.push_str(text);
    out.push('\n');
}

/// A step as a list entry at `level`.
fn write_step(out: &mut String, level: usize, step: &Step) {
    let actor = match &step.actor {
        Actor::Anonymous => "anonymous".to_string(),
        Actor::Member { user, org: Some(org) } => format!("{user}@{org}"),
        Actor::Member { user, org: None } => user.clone(),
    };
    let inner = level + 1;
    match &step.name {
        Some(name) => {
            line(out, level, &format!("- name: {}", scalar(name)));
            line(out, inner, &format!("as: {}", scalar(&actor)));
        }
        None => line(out, level, &format!("- as: {}", scalar(&actor))),
    }
    line(out, inner, "request:");
    write_request(out, inner + 1, &step.request);
    if let Some(forge) = &step.forge {
        let checks = flow_strings(&forge.checks);
        match &forge.variant {
            Some(v) => line(
                out,
                inner,
                &format!("forge: {{checks: {checks}, variant: {}}}", scalar(v)),
            ),
            None => line(out, inner, &format!("forge: {checks}")),
        }
    }
    if let Some(n) = step.concurrent {
        line(out, inner, &format!("concurrent: {n}"));
    }
    if !step.capture.is_empty() {
        line(out, inner, "capture:");
        for (name, capture) in &step.capture {
            let source = match &capture.source {
                CaptureSource::Json(path) if capture.query.is_none() => scalar(path),
                CaptureSource::Json(path) => format!("{{json: {}", scalar(path)),
                CaptureSource::Header(header) => format!("{{header: {}", scalar(header)),
            };
            let source = match (&capture.source, &capture.query) {
                (CaptureSource::Json(_), None) => source,
                (_, Some(q)) => format!("{source}, query: {}}}", scalar(q)),
                (_, None) => format!("{source}}}"),
            };
            line(out, inner + 1, &format!("{}: {source}", scalar(name)));
        }
    }
    if step.expect != Expect::default() {
        line(out, inner, "expect:");
        write_expect(out, inner + 1, &step.expect);
    }
}

fn write_request(out: &mut String, level: usize, request: &RequestTemplate) {
    line(out, level, &format!("method: {}", request.method));
    line(out, level, &format!("path: {}", scalar(&request.path)));
    if !request.query.is_empty() {
        line(out, level, "query:");
        for (name, value) in &request.query {
            let value = match value {
                QueryValue::Text(text) => scalar(text),
                QueryValue::Json(json @ (Value::Array(_) | Value::Object(_))) => flow_json(json),
                QueryValue::Json(json) => format!("!json {}", flow_json(json)),
            };
            line(out, level + 1, &format!("- {}: {value}", scalar(name)));
        }
    }
    for (key, pairs) in [("headers", &request.headers), ("cookies", &request.cookies)] {
        if pairs.is_empty() {
            continue;
        }
        line(out, level, &format!("{key}:"));
        let repeats = pairs
            .iter()
            .enumerate()
            .any(|(i, (n, _))| pairs[..i].iter().any(|(m, _)| m.eq_ignore_ascii_case(n)));
        let dash = if repeats { "- " } else { "" };
        for (name, value) in pairs {
            line(
                out,
                level + 1,
                &format!("{dash}{}: {}", scalar(name), scalar(value)),
            );
        }
    }
    match &request.body {
        Some(Body::Json(json)) => line(out, level, &format!("json: {}", flow_json(json))),
        Some(Body::Form(pairs)) => {
            line(out, level, "form:");
            for (name, value) in pairs {
                line(out, level + 1, &format!("- {}: {}", scalar(name), scalar(value)));
            }
        }
        None => {}
    }
}

fn write_expect(out: &mut String, level: usize, expect: &Expect) {
    match expect.status.as_slice() {
        [] => {}
        [one] => line(out, level, &format!("status: {one}")),
        many => {
            let codes: Vec<String> = many.iter().map(u16::to_string).collect();
            line(out, level, &format!("status: [{}]", codes.join(", ")));
        }
    }
    if !expect.json.is_empty() {
        line(out, level, "json:");
        for (path, assertion) in &expect.json {
            let assertion = match assertion {
                JsonAssert::Equals(v) => format!("{{equals: {}}}", flow_json(v)),
                JsonAssert::Exists(b) => format!("{{exists: {b}}}"),
                JsonAssert::Length(n) => format!("{{length: {n}}}"),
            };
            line(out, level + 1, &format!("{}: {assertion}", scalar(path)));
        }
    }
    if !expect.headers.is_empty() {
        line(out, level, "headers:");
        for (name, assertion) in &expect.headers {
            let assertion = match assertion {
                HeaderAssert::Present(b) => format!("{{present: {b}}}"),
                HeaderAssert::Equals(v) => format!("{{equals: {}}}", scalar(v)),
            };
            line(out, level + 1, &format!("{}: {assertion}", scalar(name)));
        }
    }
    if !expect.no_foreign_data {
        line(out, level, "no_foreign_data: false");
    }
    if !expect.count.is_empty() {
        line(out, level, "count:");
        for c in &expect.count {
            let bound = if c.min == c.max {
                c.min.to_string()
            } else {
                format!("{{min: {}, max: {}}}", c.min, c.max)
            };
            line(out, level + 1, &format!("\"{}\": {bound}", c.status));
        }
    }
    for (key, items) in [
        ("body_not_contains", &expect.body_not_contains),
        ("body_contains", &expect.body_contains),
    ] {
        if !items.is_empty() {
            line(out, level, &format!("{key}: {}", flow_strings(items)));
        }
    }
}

fn flow_strings(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| scalar(s)).collect();
    format!("[{}]", quoted.join(", "))
}

/// A JSON value in YAML flow style (strings through [`quote`]).
fn flow_json(value: &Value) -> String {
    match value {
        Value::String(s) => scalar(s),
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(flow_json).collect();
            format!("[{}]", items.join(", "))
        }
        Value::Object(map) => {
            let entries: Vec<String> = map
                .iter()
                .map(|(k, v)| format!("{}: {}", scalar(k), flow_json(v)))
                .collect();
            format!("{{{}}}", entries.join(", "))
        }
        // null, booleans and numbers are the same in JSON and YAML 1.2.
        other => other.to_string(),
    }
}

/// `text` plain when that reads back as the same string (a simple word,
/// path or key such as `alice@a`, `org:admin`, `/api/projects`, `$.id`),
/// double-quoted otherwise.
fn scalar(text: &str) -> String {
    let mut chars = text.chars();
    let simple = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == '/' || c == '$')
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.@/:$-".contains(c))
        && !text.ends_with(':')
        && !text.contains("::")
        && super::yaml::resolve(text) == super::yaml::Typed::Str;
    if simple {
        text.to_string()
    } else {
        quote(text)
    }
}

/// `text` as a YAML double-quoted scalar: every character outside YAML's
/// printable set (and `"`, `\`) escaped.
pub(crate) fn quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if printable(c) => out.push(c),
            c if (c as u32) <= 0xFFFF => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c => {
                let _ = write!(out, "\\U{:08X}", c as u32);
            }
        }
    }
    out.push('"');
    out
}

/// YAML 1.2's `c-printable` minus the byte-order mark.
fn printable(c: char) -> bool {
    matches!(c as u32,
        0x20..=0x7E | 0x85 | 0xA0..=0xD7FF | 0xE000..=0xFFFD | 0x10000..=0x10FFFF)
        && c != '\u{FEFF}'
}
