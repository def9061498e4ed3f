//! The org guard: every organization identifier a request carries — in the
//! path, the query, a header, a cookie, a JSON or form body — must name the
//! active org, or the request is refused before any handler runs.
//!
//! Names count as org identifiers after folding case and dropping everything
//! but letters and digits (`org_id`, `orgId`, `Organization-Id`, `X-Org-Id`,
//! …). Values are compared exactly after one round of the transport's own
//! decoding: a second percent-encoding, other case, whitespace, NUL or a
//! confusable character all fail to match and are refused. Every occurrence
//! counts — repeated query parameters, repeated headers, duplicate JSON keys
//! at any depth — so "first wins" and "last wins" parsers cannot be played
//! against each other.

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};

/// Where a mismatching identifier was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Position {
    /// A path segment after `/orgs/`.
    Path,
    /// A query parameter.
    Query,
    /// A request header.
    Header,
    /// A cookie.
    Cookie,
    /// A JSON body field (at any depth).
    Json,
    /// A form body field.
    Form,
}

impl Position {
    /// A stable name for logs and problem details.
    pub fn name(self) -> &'static str {
        match self {
            Position::Path => "path",
            Position::Query => "query",
            Position::Header => "header",
            Position::Cookie => "cookie",
            Position::Json => "json",
            Position::Form => "form",
        }
    }
}

/// Whether a parameter, header, cookie or field name denotes an org id.
pub fn is_org_key(name: &str) -> bool {
    let folded: String = name
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect();
    matches!(
        folded.as_str(),
        "orgid"
            | "organizationid"
            | "xorgid"
            | "xorganizationid"
            | "activeorgid"
            | "activeorganizationid"
            | "tenantid"
            | "xtenantid"
    )
}

/// The org the request acts in: its id and (optionally) its slug, either of
/// which an org parameter may name.
#[derive(Debug, Clone)]
pub struct ActiveOrg<'a> {
    /// The org id.
    pub id: &'a str,
    /// The org slug, if known.
    pub slug: Option<&'a str>,
}

impl ActiveOrg<'_> {
    fn matches(&self, value: &str) -> bool {
        value == self.id || self.slug.is_some_and(|slug| !slug.is_empty() && value == slug)
    }
}

/// The parts of a request the guard reads.
#[derive(Debug, Default)]
pub struct RequestParts<'a> {
    /// The path, percent-decoded per segment by the caller or raw.
    pub path: &'a str,
    /// The raw query string (without `?`).
    pub query: Option<&'a str>,
    /// Header name/value pairs (every occurrence).
    pub headers: Vec<(&'a str, &'a [u8])>,
    /// Cookie header values (every occurrence).
    pub cookies: Vec<&'a str>,
    /// The body and its content type.
    pub body: Option<(&'a str, &'a [u8])>,
}

fn decode_component(s: &str) -> String {
    let plus_as_space = s.replace('+', " ");
    percent_encoding::percent_decode_str(&plus_as_space)
        .decode_utf8_lossy()
        .into_owned()
}

fn check_pairs<'s>(
    pairs: impl Iterator<Item = (String, String)> + 's,
    active: &ActiveOrg<'_>,
    position: Position,
) -> Result<(), Position> {
    for (name, value) in pairs {
        if is_org_key(&name) && !active.matches(&value) {
            return Err(position);
        }
    }
    Ok(())
}

fn urlencoded(s: &str) -> impl Iterator<Item = (String, String)> + '_ {
    s.split('&').filter(|p| !p.is_empty()).map(|pair| {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        (decode_component(name), decode_component(value))
    })
}

/// Checks every org identifier in `parts` against `active`.
pub fn check(parts: &RequestParts<'_>, active: &ActiveOrg<'_>) -> Result<(), Position> {
    let segments: Vec<String> = parts.path.split('/').map(decode_component).collect();
    for pair in segments.windows(2) {
        if matches!(pair[0].as_str(), "orgs" | "organizations") && !active.matches(&pair[1]) {
            return Err(Position::Path);
        }
    }
    if let Some(query) = parts.query {
        check_pairs(urlencoded(query), active, Position::Query)?;
    }
    for (name, value) in &parts.headers {
        if is_org_key(name) {
            // A value that is not even text cannot name the active org.
            let ok = std::str::from_utf8(value).is_ok_and(|v| active.matches(v));
            if !ok {
                return Err(Position::Header);
            }
        }
    }
    for cookie_header in &parts.cookies {
        let pairs = cookie_header.split(';').map(|c| {
            let (name, value) = c.split_once('=').unwrap_or((c, ""));
            (name.trim().to_string(), value.trim().to_string())
        });
        check_pairs(pairs, active, Position::Cookie)?;
    }
    if let Some((content_type, body)) = parts.body {
        let media = content_type
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        if media == "application/x-www-form-urlencoded" {
            let text = String::from_utf8_lossy(body);
            check_pairs(urlencoded(&text), active, Position::Form)?;
        } else if media == "application/json" || media.ends_with("+json") {
            // A body that is not JSON is the handler's to refuse; here only
            // identifiers matter.
            let mut found = Vec::new();
            let mut deserializer = serde_json::Deserializer::from_slice(body);
            let walker = OrgValues {
                found: &mut found,
                under_org_key: false,
            };
            // Even a body that fails to parse half-way has its identifiers
            // so far checked: a truncated document cannot hide one.
            let _ = walker.deserialize(&mut deserializer);
            if found.iter().any(|v| !active.matches(v)) {
                return Err(Position::Json);
            }
        }
    }
    Ok(())
}

/// Walks a JSON document collecting, at any depth and for every duplicate,
/// the values of org-named keys. A non-string value under such a key is
/// recorded as its JSON text (which never matches an org id).
struct OrgValues<'f> {
    found: &'f mut Vec<String>,
    under_org_key: bool,
}

impl OrgValues<'_> {
    fn deserialize<'de, D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for OrgValues<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        if self.under_org_key {
            self.found.push(v.to_string());
        }
        Ok(())
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<(), E> {
        self.record(v.to_string())
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
        self.record(v.to_string())
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
        self.record(v.to_string())
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        self.record(v.to_string())
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.record("null".into())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        // An array under an org key: every element must name the active org.
        let under = self.under_org_key;
        while seq
            .next_element_seed(Seed {
                found: self.found,
                under_org_key: under,
            })?
            .is_some()
        {}
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        if self.under_org_key {
            // An object where an org id belongs never names the active org.
            self.found.push("{object}".into());
        }
        while let Some(key) = map.next_key::<String>()? {
            map.next_value_seed(Seed {
                found: self.found,
                under_org_key: is_org_key(&key),
            })?;
        }
        Ok(())
    }
}

impl OrgValues<'_> {
    fn record<E: de::Error>(self, text: String) -> Result<(), E> {
        if self.under_org_key {
            self.found.push(text);
        }
        Ok(())
    }
}

struct Seed<'f> {
    found: &'f mut Vec<String>,
    under_org_key: bool,
}

impl<'de> de::DeserializeSeed<'de> for Seed<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(OrgValues {
            found: self.found,
            under_org_key: self.under_org_key,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: ActiveOrg<'static> = ActiveOrg {
        id: "org_a",
        slug: Some("acme"),
    };

    fn path(p: &str) -> Result<(), Position> {
        check(
            &RequestParts {
                path: p,
                ..Default::default()
            },
            &A,
        )
    }

    fn query(q: &str) -> Result<(), Position> {
        check(
            &RequestParts {
                path: "/api/projects",
                query: Some(q),
                ..Default::default()
            },
            &A,
        )
    }

    fn json(body: &str) -> Result<(), Position> {
        check(
            &RequestParts {
                path: "/api/projects",
                body: Some(("application/json; charset=utf-8", body.as_bytes())),
                ..Default::default()
            },
            &A,
        )
    }

    #[test]
    fn names_that_denote_an_org() {
        for name in [
            "org_id",
            "orgId",
            "ORGANIZATION_ID",
            "Organization-Id",
            "X-Org-Id",
            "x-organization-id",
            "tenant_id",
        ] {
            assert!(is_org_key(name), "{name}");
        }
        for name in ["organization", "id", "org", "project_id", "orgs"] {
            assert!(!is_org_key(name), "{name}");
        }
    }

    #[test]
    fn path_segments_after_orgs() {
        assert_eq!(path("/api/orgs/org_a/projects"), Ok(()));
        assert_eq!(path("/api/orgs/acme/projects"), Ok(()), "the active slug is fine");
        assert_eq!(path("/api/orgs/org_b/projects"), Err(Position::Path));
        assert_eq!(path("/api/orgs/ORG_A/projects"), Err(Position::Path));
        assert_eq!(path("/api/orgs/org%5Fb/projects"), Err(Position::Path));
        assert_eq!(path("/api/orgs/org_a%00/projects"), Err(Position::Path));
    }

    #[test]
    fn query_in_every_spelling_encoding_and_repetition() {
        assert_eq!(query("org_id=org_a&limit=5"), Ok(()));
        assert_eq!(query("org_id=org_b"), Err(Position::Query));
        assert_eq!(query("orgId=org_b"), Err(Position::Query));
        assert_eq!(query("organization_id=org%5Fb"), Err(Position::Query));
        assert_eq!(
            query("org_id=org_a&org_id=org_b"),
            Err(Position::Query),
            "last-wins parsers"
        );
        assert_eq!(
            query("org_id=org_b&org_id=org_a"),
            Err(Position::Query),
            "first-wins parsers"
        );
        assert_eq!(query("org_id=org%2561"), Err(Position::Query), "double encoding");
        assert_eq!(query("org_id=+org_a"), Err(Position::Query), "whitespace");
        assert_eq!(query("org%5Fid=org_b"), Err(Position::Query), "an encoded name");
        assert_eq!(query("org_id=оrg_a"), Err(Position::Query), "a Cyrillic o");
    }

    #[test]
    fn headers_and_cookies() {
        let parts = |headers: Vec<(&'static str, &'static [u8])>, cookies: Vec<&'static str>| RequestParts {
            path: "/api/projects",
            headers,
            cookies,
            ..Default::default()
        };
        assert_eq!(check(&parts(vec![("x-org-id", b"org_a")], vec![]), &A), Ok(()));
        assert_eq!(
            check(&parts(vec![("x-org-id", b"org_b")], vec![]), &A),
            Err(Position::Header)
        );
        assert_eq!(
            check(
                &parts(
                    vec![("organization-id", b"org_a"), ("organization-id", b"org_b")],
                    vec![]
                ),
                &A
            ),
            Err(Position::Header)
        );
        assert_eq!(
            check(&parts(vec![("x-org-id", b"\xff")], vec![]), &A),
            Err(Position::Header)
        );
        assert_eq!(
            check(&parts(vec![], vec!["theme=dark; org_id=org_b"]), &A),
            Err(Position::Cookie)
        );
        assert_eq!(check(&parts(vec![], vec!["org_id=org_a"]), &A), Ok(()));
    }

    #[test]
    fn json_at_any_depth_with_duplicates_and_odd_types() {
        assert_eq!(json(r#"{"name":"x","org_id":"org_a"}"#), Ok(()));
        assert_eq!(json(r#"{"name":"x","org_id":"org_b"}"#), Err(Position::Json));
        assert_eq!(
            json(r#"{"org_id":"org_a","org_id":"org_b"}"#),
            Err(Position::Json),
            "duplicate keys"
        );
        assert_eq!(
            json(r#"{"org_id":"org_b","org_id":"org_a"}"#),
            Err(Position::Json),
            "duplicate keys"
        );
        assert_eq!(
            json(r#"{"input":{"json":{"orgId":"org_b"}}}"#),
            Err(Position::Json),
            "tRPC-style nesting"
        );
        assert_eq!(json(r#"[{"organizationId":"org_b"}]"#), Err(Position::Json));
        assert_eq!(json(r#"{"org_id":["org_a","org_b"]}"#), Err(Position::Json));
        assert_eq!(json(r#"{"org_id":{"id":"org_a"}}"#), Err(Position::Json));
        assert_eq!(json(r#"{"org_id":null}"#), Err(Position::Json));
        assert_eq!(json(r#"{"org_id":42}"#), Err(Position::Json));
        assert_eq!(
            json(r#"{"org_id":"org\u005fb"}"#),
            Err(Position::Json),
            "JSON escapes are decoded"
        );
        assert_eq!(json(r#"{"org_id":"org\u005fa"}"#), Ok(()));
        assert_eq!(
            json("not json"),
            Ok(()),
            "malformed bodies are the handler's to refuse"
        );
    }

    #[test]
    fn form_bodies() {
        let form = |body: &'static str| {
            check(
                &RequestParts {
                    path: "/api/projects",
                    body: Some(("application/x-www-form-urlencoded", body.as_bytes())),
                    ..Default::default()
                },
                &A,
            )
        };
        assert_eq!(form("name=x&org_id=org_a"), Ok(()));
        assert_eq!(form("name=x&org_id=org_b"), Err(Position::Form));
        assert_eq!(form("organization_id=org%5Fb"), Err(Position::Form));
    }
}
