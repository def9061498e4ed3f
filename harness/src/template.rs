//! Request templates: one request shape shared by target profiles (TOML),
//! scenario files (YAML) and campaign reproductions. Values can go anywhere —
//! path, query (a structured query value is sent JSON-encoded, as tRPC and
//! other RPC-over-HTTP APIs take their input), headers, cookies, JSON or form
//! body — and every string may hold `{{ name }}` placeholders, filled at
//! send time (ids, org ids and slugs, captured values, fresh canaries).

use serde_json::Value;

use crate::client::{form_component, Request};

/// A query parameter's value.
#[derive(Debug, Clone, PartialEq)]
pub enum QueryValue {
    /// Sent as is (percent-encoded).
    Text(String),
    /// Sent JSON-encoded (`?input={"json":{"id":"…"}}`).
    Json(Value),
}

/// A request body.
#[derive(Debug, Clone, PartialEq)]
pub enum Body {
    /// `application/json`.
    Json(Value),
    /// `application/x-www-form-urlencoded`.
    Form(Vec<(String, String)>),
}

/// A request with placeholders.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestTemplate {
    /// Method (upper case).
    pub method: String,
    /// Path (may hold a query string already).
    pub path: String,
    /// Query parameters, in order (repeats allowed).
    pub query: Vec<(String, QueryValue)>,
    /// Headers.
    pub headers: Vec<(String, String)>,
    /// Cookies.
    pub cookies: Vec<(String, String)>,
    /// Body.
    pub body: Option<Body>,
}

impl RequestTemplate {
    /// `method path` with nothing else.
    pub fn new(method: &str, path: &str) -> Self {
        Self {
            method: method.to_ascii_uppercase(),
            path: path.into(),
            query: Vec::new(),
            headers: Vec::new(),
            cookies: Vec::new(),
            body: None,
        }
    }

    /// Every placeholder name used, in order of appearance (repeats kept).
    pub fn placeholders(&self) -> Vec<String> {
        let mut names = Vec::new();
        self.each_string(&mut |s| names.extend(placeholders(s)));
        names
    }

    /// Every unknown filter used.
    pub fn unknown_filters(&self) -> Vec<String> {
        let mut out = Vec::new();
        self.each_string(&mut |s| out.extend(unknown_filters(s)));
        out
    }

    /// Calls `text` on every string of the template (keys included).
    pub fn each_string(&self, text: &mut dyn FnMut(&str)) {
        text(&self.path);
        for (k, v) in &self.query {
            text(k);
            match v {
                QueryValue::Text(s) => text(s),
                QueryValue::Json(v) => walk_strings(v, text),
            }
        }
        for (k, v) in self.headers.iter().chain(&self.cookies) {
            text(k);
            text(v);
        }
        match &self.body {
            Some(Body::Json(v)) => walk_strings(v, text),
            Some(Body::Form(pairs)) => {
                for (k, v) in pairs {
                    text(k);
                    text(v);
                }
            }
            None => {}
        }
    }

    /// The template with every string passed through `f` (to rename
    /// placeholders, e.g. a profile's `{{ id }}` to a scenario's `{{ i3 }}`).
    pub fn map_strings(&self, f: &dyn Fn(&str) -> String) -> RequestTemplate {
        fn json(v: &Value, f: &dyn Fn(&str) -> String) -> Value {
            match v {
                Value::String(s) => Value::String(f(s)),
                Value::Array(items) => Value::Array(items.iter().map(|v| json(v, f)).collect()),
                Value::Object(map) => Value::Object(map.iter().map(|(k, v)| (f(k), json(v, f))).collect()),
                other => other.clone(),
            }
        }
        let pairs = |p: &[(String, String)]| p.iter().map(|(k, v)| (f(k), f(v))).collect();
        RequestTemplate {
            method: self.method.clone(),
            path: f(&self.path),
            query: self
                .query
                .iter()
                .map(|(k, v)| {
                    (
                        f(k),
                        match v {
                            QueryValue::Text(s) => QueryValue::Text(f(s)),
                            QueryValue::Json(v) => QueryValue::Json(json(v, f)),
                        },
                    )
                })
                .collect(),
            headers: pairs(&self.headers),
            cookies: pairs(&self.cookies),
            body: match &self.body {
                Some(Body::Json(v)) => Some(Body::Json(json(v, f))),
                Some(Body::Form(p)) => Some(Body::Form(pairs(p))),
                None => None,
            },
        }
    }

    /// The request, placeholders filled by `vars` (called once per
    /// occurrence, so `canary` can be fresh each time).
    pub fn render(&self, vars: &mut dyn FnMut(&str) -> Option<String>) -> Result<Request, RenderError> {
        let mut path = fill(&self.path, vars)?;
        if !self.query.is_empty() {
            let mut pairs = Vec::new();
            for (k, v) in &self.query {
                let value = match v {
                    QueryValue::Text(s) => fill(s, vars)?,
                    QueryValue::Json(v) => fill_json(v, vars)?.to_string(),
                };
                pairs.push(format!(
                    "{}={}",
                    form_component(&fill(k, vars)?),
                    form_component(&value)
                ));
            }
            path.push(if path.contains('?') { '&' } else { '?' });
            path.push_str(&pairs.join("&"));
        }
        let mut request = Request::new(&self.method, path);
        for (k, v) in &self.headers {
            request = request.header(&fill(k, vars)?, fill(v, vars)?);
        }
        if !self.cookies.is_empty() {
            let mut pairs = Vec::new();
            for (k, v) in &self.cookies {
                pairs.push(format!("{}={}", fill(k, vars)?, fill(v, vars)?));
            }
            request = request.header("cookie", pairs.join("; "));
        }
        match &self.body {
            Some(Body::Json(v)) => request = request.json(fill_json(v, vars)?),
            Some(Body::Form(pairs)) => {
                let mut out = Vec::new();
                for (k, v) in pairs {
                    out.push((fill(k, vars)?, fill(v, vars)?));
                }
                request = request.form(out);
            }
            None => {}
        }
        Ok(request)
    }
}

/// A placeholder with no value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    /// `{{ name }}` has no value here.
    #[error("no value for `{{{{ {0} }}}}`")]
    Unknown(String),
    /// `{{ name | filter }}` with an unknown filter.
    #[error("unknown filter `{0}`; expected one of: {FILTERS}")]
    Filter(String),
    /// `{{` without `}}`.
    #[error("unclosed `{{{{` in `{0}`")]
    Unclosed(String),
}

/// The filters a placeholder may apply: `{{ org.a.id | upper }}`.
pub const FILTERS: &str = "upper, lower, pad, confusable, urlencode, base64, json";

/// `value` through `filter`.
pub fn apply_filter(filter: &str, value: &str) -> Result<String, RenderError> {
    Ok(match filter {
        "upper" => value.to_uppercase(),
        "lower" => value.to_lowercase(),
        // Surrounded by spaces: a trimming comparison lets it through.
        "pad" => format!(" {value} "),
        // The first Latin letter with a Cyrillic look-alike swapped for it.
        "confusable" => {
            let mut out = String::with_capacity(value.len() + 1);
            let mut swapped = false;
            for c in value.chars() {
                let look_alike = match c {
                    'o' => Some('\u{043E}'),
                    'a' => Some('\u{0430}'),
                    'e' => Some('\u{0435}'),
                    'c' => Some('\u{0441}'),
                    _ => None,
                };
                match look_alike {
                    Some(l) if !swapped => {
                        out.push(l);
                        swapped = true;
                    }
                    _ => out.push(c),
                }
            }
            out
        }
        "urlencode" => form_component(value),
        "base64" => {
            use base64::Engine;
            base64::engine::general_purpose::STANDARD.encode(value)
        }
        // A JSON string literal, quotes included (`"org_…"`).
        "json" => Value::String(value.to_string()).to_string(),
        other => return Err(RenderError::Filter(other.to_string())),
    })
}

/// `{{ name | f | g }}` -> (`name`, [`f`, `g`]).
fn split_filters(inner: &str) -> (&str, Vec<&str>) {
    let mut parts = inner.split('|').map(str::trim);
    let name = parts.next().unwrap_or_default();
    (name, parts.collect())
}

/// The placeholder names in `text` (without their filters).
pub fn placeholders(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        match after.find("}}") {
            Some(end) => {
                out.push(split_filters(&after[..end]).0.to_string());
                rest = &after[end + 2..];
            }
            None => break,
        }
    }
    out
}

/// Every filter used in `text` that is not known.
pub fn unknown_filters(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else { break };
        for f in split_filters(&after[..end]).1 {
            if apply_filter(f, "").is_err() {
                out.push(f.to_string());
            }
        }
        rest = &after[end + 2..];
    }
    out
}

/// `text` with every `{{ name }}` replaced by `vars(name)`.
pub fn fill(text: &str, vars: &mut dyn FnMut(&str) -> Option<String>) -> Result<String, RenderError> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find("}}")
            .ok_or_else(|| RenderError::Unclosed(text.to_string()))?;
        let (name, filters) = split_filters(&after[..end]);
        let mut value = vars(name).ok_or_else(|| RenderError::Unknown(name.to_string()))?;
        for f in filters {
            value = apply_filter(f, &value)?;
        }
        out.push_str(&value);
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

/// `value` with placeholders filled in every string (keys included).
pub fn fill_json(value: &Value, vars: &mut dyn FnMut(&str) -> Option<String>) -> Result<Value, RenderError> {
    Ok(match value {
        Value::String(s) => Value::String(fill(s, vars)?),
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|v| fill_json(v, vars))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(map) => {
            let mut out = serde_json::Map::new();
            for (k, v) in map {
                out.insert(fill(k, vars)?, fill_json(v, vars)?);
            }
            Value::Object(out)
        }
        other => other.clone(),
    })
}

fn walk_strings(value: &Value, f: &mut dyn FnMut(&str)) {
    match value {
        Value::String(s) => f(s),
        Value::Array(items) => items.iter().for_each(|v| walk_strings(v, f)),
        Value::Object(map) => {
            for (k, v) in map {
                f(k);
                walk_strings(v, f);
            }
        }
        _ => {}
    }
}

/// `{{ name | f }}` with `name` renamed by `f`, filters kept.
pub fn rename_placeholders(text: &str, f: &dyn Fn(&str) -> String) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            out.push_str(&rest[start..]);
            return out;
        };
        let inner = &after[..end];
        let mut parts = inner.split('|').map(str::trim);
        let name = parts.next().unwrap_or_default();
        let filters: String = parts.map(|filter| format!(" | {filter}")).collect();
        out.push_str(&format!("{{{{ {}{filters} }}}}", f(name)));
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    out
}

/// A JSON pointer (`/result/data/0/id`) as a JSON path (`$.result.data[0].id`).
pub fn pointer_to_path(pointer: &str) -> String {
    let mut path = String::from("$");
    if pointer.is_empty() {
        return path;
    }
    for part in pointer.trim_start_matches('/').split('/') {
        let part = part.replace("~1", "/").replace("~0", "~");
        if !part.is_empty() && part.chars().all(|c| c.is_ascii_digit()) {
            path.push_str(&format!("[{part}]"));
        } else if !part.is_empty() && part.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            path.push('.');
            path.push_str(&part);
        } else {
            path.push_str(&format!(
                "['{}']",
                part.replace('\\', "\\\\").replace('\'', "\\'")
            ));
        }
    }
    path
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn vars(name: &str) -> Option<String> {
        match name {
            "id" => Some("prj_1".into()),
            "org" => Some("org_A".into()),
            _ => None,
        }
    }

    #[test]
    fn trpc_style_query_is_json_encoded() {
        let mut t = RequestTemplate::new("get", "/api/trpc/project.byId");
        t.query.push((
            "input".into(),
            QueryValue::Json(json!({ "json": { "id": "{{ id }}", "orgId": "{{org}}" } })),
        ));
        let r = t.render(&mut vars).unwrap();
        assert_eq!(r.method, "GET");
        assert_eq!(
            r.path,
            "/api/trpc/project.byId?input=%7B%22json%22%3A%7B%22id%22%3A%22prj_1%22%2C%22orgId%22%3A%22org_A%22%7D%7D"
        );
    }

    #[test]
    fn values_go_everywhere() {
        let mut t = RequestTemplate::new("POST", "/api/orgs/{{ org }}/projects?x=1");
        t.query
            .push(("org_id".into(), QueryValue::Text("{{ org }}".into())));
        t.headers.push(("x-org-id".into(), "{{ org }}".into()));
        t.cookies.push(("org".into(), "{{ org }}".into()));
        t.body = Some(Body::Form(vec![("organization_id".into(), "{{ org }}".into())]));
        let r = t.render(&mut vars).unwrap();
        assert_eq!(r.path, "/api/orgs/org_A/projects?x=1&org_id=org_A");
        assert_eq!(
            r.headers,
            vec![
                ("x-org-id".to_string(), "org_A".to_string()),
                ("cookie".to_string(), "org=org_A".to_string())
            ]
        );
        assert_eq!(r.form, Some(vec![("organization_id".into(), "org_A".into())]));
        assert_eq!(t.placeholders(), vec!["org"; 5]);
    }

    #[test]
    fn filters_transform_values() {
        let t = RequestTemplate::new(
            "GET",
            "/o/{{ org | upper }}/{{ org|lower|pad }}/{{ org | confusable }}",
        );
        let r = t.render(&mut vars).unwrap();
        assert_eq!(r.path, "/o/ORG_A/ org_a /\u{043E}rg_A");
        assert_eq!(t.placeholders(), vec!["org"; 3]);
        let t = RequestTemplate::new("GET", "/{{ org | shout }}");
        assert_eq!(
            t.render(&mut vars).unwrap_err(),
            RenderError::Filter("shout".into())
        );
        assert_eq!(unknown_filters("{{ a | upper }} {{ b | shout }}"), vec!["shout"]);
    }

    #[test]
    fn unknown_and_unclosed_placeholders_are_errors() {
        let t = RequestTemplate::new("GET", "/api/{{ nope }}");
        assert_eq!(
            t.render(&mut vars).unwrap_err(),
            RenderError::Unknown("nope".into())
        );
        let t = RequestTemplate::new("GET", "/api/{{ id");
        assert!(matches!(
            t.render(&mut vars).unwrap_err(),
            RenderError::Unclosed(_)
        ));
    }
}
