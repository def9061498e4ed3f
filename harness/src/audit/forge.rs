//! ORG-001..008: org b's token with org a's identifier in every place the
//! target might take one — its org routes, every `{{ org }}` of its
//! templates, the query parameters, headers, cookies, JSON fields and form
//! fields the profile names — as the id, as the slug, and in every encoding
//! that a careless comparison lets through. Safe: refused, or the parameter
//! ignored; never org a's data (the oracle), never a write into org a.

use std::collections::HashMap;

use serde_json::Value;

use super::{Actor, AuditError, Run, Vars};
use crate::client::{form_component, Request};
use crate::profile::Resource;
use crate::template::{Body, QueryValue, RequestTemplate};

/// Progress ticks.
pub(super) const PHASES: u64 = 2;

/// One way of writing org a's id.
struct Variant {
    /// Already percent-encoded for a query string.
    query: String,
    /// As a header value, if it can be one.
    header: Option<String>,
}

/// The encodings of ORG-007.
fn encodings(id: &str) -> Vec<Variant> {
    let all_encoded: String = id.bytes().map(|b| format!("%{b:02X}")).collect();
    let double: String = id.bytes().map(|b| format!("%25{b:02X}")).collect();
    let mut out = vec![
        Variant {
            query: form_component(&id.to_ascii_uppercase()),
            header: Some(id.to_ascii_uppercase()),
        },
        Variant {
            query: all_encoded.clone(),
            header: Some(all_encoded),
        },
        Variant {
            query: double,
            header: None,
        },
        Variant {
            query: format!("%20{}%20", form_component(id)),
            header: None,
        },
        Variant {
            query: format!("{}%09", form_component(id)),
            header: None,
        },
        Variant {
            query: format!("{}%00", form_component(id)),
            header: None,
        },
    ];
    if id.to_ascii_lowercase() != id {
        out.push(Variant {
            query: form_component(&id.to_ascii_lowercase()),
            header: Some(id.to_ascii_lowercase()),
        });
    }
    // A Cyrillic confusable for the first Latin letter that has one.
    for (latin, cyrillic) in [
        ('o', "\u{043E}"),
        ('a', "\u{0430}"),
        ('e', "\u{0435}"),
        ('c', "\u{0441}"),
    ] {
        if let Some(pos) = id.find(latin) {
            let confusable = format!("{}{cyrillic}{}", &id[..pos], &id[pos + 1..]);
            out.push(Variant {
                query: form_component(&confusable),
                header: None,
            });
            break;
        }
    }
    out
}

fn with_query(request: &Request, pairs: &[(String, String)]) -> Request {
    let mut r = request.clone();
    for (k, v) in pairs {
        r.path.push(if r.path.contains('?') { '&' } else { '?' });
        r.path.push_str(&format!("{}={v}", form_component(k)));
    }
    r
}

fn with_cookie(request: &Request, name: &str, value: &str) -> Request {
    let mut r = request.clone();
    match r
        .headers
        .iter_mut()
        .find(|(k, _)| k.eq_ignore_ascii_case("cookie"))
    {
        Some((_, v)) => v.push_str(&format!("; {name}={value}")),
        None => r.headers.push(("cookie".into(), format!("{name}={value}"))),
    }
    r
}

/// `value` with `pointer` set to `to`, objects created along the way.
pub fn set_pointer(value: &mut Value, pointer: &str, to: Value) {
    if pointer.is_empty() {
        *value = to;
        return;
    }
    let mut current = value;
    let parts: Vec<String> = pointer
        .trim_start_matches('/')
        .split('/')
        .map(|p| p.replace("~1", "/").replace("~0", "~"))
        .collect();
    for (i, part) in parts.iter().enumerate() {
        if !current.is_object() {
            *current = Value::Object(serde_json::Map::new());
        }
        let Value::Object(map) = current else { return };
        if i + 1 == parts.len() {
            map.insert(part.clone(), to);
            return;
        }
        current = map
            .entry(part.clone())
            .or_insert_with(|| Value::Object(serde_json::Map::new()));
    }
}

/// The check for an `{{ org }}` in `template`, by where it sits.
fn org_position(template: &RequestTemplate) -> &'static str {
    let has = |s: &str| s.contains("{{ org }}") || s.contains("{{org}}") || s.contains("{{ org_slug }}");
    if has(&template.path) {
        "ORG-001"
    } else if template.query.iter().any(|(k, v)| {
        has(k)
            || match v {
                QueryValue::Text(s) => has(s),
                QueryValue::Json(v) => has(&v.to_string()),
            }
    }) {
        "ORG-002"
    } else if template.headers.iter().any(|(_, v)| has(v)) {
        "ORG-003"
    } else if template.cookies.iter().any(|(_, v)| has(v)) {
        "ORG-006"
    } else if matches!(&template.body, Some(Body::Form(_))) {
        "ORG-005"
    } else {
        "ORG-004"
    }
}

/// A forged write whose canaries must never show up in org a.
struct Write {
    check: &'static str,
    what: String,
    transcript: String,
}

pub(super) async fn run(run: &mut Run<'_>, a: &Actor, b: &Actor) -> Result<(), AuditError> {
    let Some(victim) = a.org.clone() else {
        return Ok(());
    };
    let mut scratch = Vec::new();
    let org = run.profile.org.clone();

    // Org routes: the id, the slug, the encodings.
    if run.ran("ORG-001") {
        for route in &org.routes {
            let request = run.render(
                route,
                b,
                Some((&victim.id, &victim.slug)),
                &Vars::default(),
                &mut scratch,
            )?;
            run.send("ORG-001", b, request).await;
        }
    }
    if run.ran("ORG-008") {
        for route in &org.routes {
            // Slug where the id goes, id where the slug goes.
            let request = run.render(
                route,
                b,
                Some((&victim.slug, &victim.id)),
                &Vars::default(),
                &mut scratch,
            )?;
            run.send("ORG-008", b, request).await;
        }
    }
    if run.ran("ORG-007") {
        for route in &org.routes {
            for variant in encodings(&victim.id) {
                let request = run.render(
                    route,
                    b,
                    Some((&variant.query, &victim.slug)),
                    &Vars::default(),
                    &mut scratch,
                )?;
                run.send("ORG-007", b, request).await;
            }
        }
    }
    run.tick("forged org: routes".into());

    let resources = run.profile.resources.clone();
    let mut writes: HashMap<String, Write> = HashMap::new();
    for resource in &resources {
        forge_resource(run, resource, a, b, &mut writes).await?;
    }

    // Did any forged write land in org a? a lists everything it has.
    if !writes.is_empty() {
        for resource in &resources {
            let (Some(list), Some(item_a)) = (resource.list.clone(), run.item(&resource.name, "a")) else {
                continue;
            };
            let vars = Vars {
                parent: item_a.parent.as_deref(),
                ..Vars::default()
            };
            let request = run.render(&list, a, None, &vars, &mut scratch)?;
            let request = match &a.token {
                Some(t) => run.placement.apply(request, t),
                None => request,
            };
            let reply = run.client.send(request).await;
            let text = String::from_utf8_lossy(&reply.body).into_owned();
            let mut landed: Vec<(&'static str, String, String)> = writes
                .iter()
                .filter(|(canary, _)| text.contains(canary.as_str()))
                .map(|(_, w)| (w.check, w.what.clone(), w.transcript.clone()))
                .collect();
            landed.sort();
            landed.dedup();
            for (check, what, transcript) in landed {
                run.finding(
                    check,
                    format!(
                        "{what} as {} wrote into org a (seen in {}'s {} list)",
                        b.label, a.label, resource.name
                    ),
                    vec![transcript, reply.transcript.clone()],
                );
            }
        }
    }
    run.tick("forged org: parameters".into());
    Ok(())
}

async fn forge_resource(
    run: &mut Run<'_>,
    resource: &Resource,
    a: &Actor,
    b: &Actor,
    writes: &mut HashMap<String, Write>,
) -> Result<(), AuditError> {
    let Some(victim) = a.org.clone() else {
        return Ok(());
    };
    let Some(item_b) = run.item(&resource.name, "b") else {
        return Ok(());
    };
    let org = run.profile.org.clone();
    let mut scratch = Vec::new();
    let own = Vars {
        id: Some(&item_b.id),
        parent: item_b.parent.as_deref(),
        ..Vars::default()
    };
    let id = victim.id.clone();

    // Reads: b's own list (or item) with org a named somewhere.
    let read_template = resource.list.clone().or_else(|| resource.read.clone());
    if let Some(read) = &read_template {
        let base = run.render(read, b, None, &own, &mut scratch)?;
        let mut probes: Vec<(&'static str, Request)> = Vec::new();
        for name in &org.query {
            probes.push((
                "ORG-002",
                with_query(&base, &[(name.clone(), form_component(&id))]),
            ));
            probes.push((
                "ORG-008",
                with_query(&base, &[(name.clone(), form_component(&victim.slug))]),
            ));
        }
        for name in &org.headers {
            probes.push(("ORG-003", base.clone().header(name, id.clone())));
            probes.push(("ORG-008", base.clone().header(name, victim.slug.clone())));
        }
        for name in &org.cookies {
            probes.push(("ORG-006", with_cookie(&base, name, &id)));
        }
        if let Some(name) = org.query.first() {
            for v in encodings(&id) {
                probes.push(("ORG-007", with_query(&base, &[(name.clone(), v.query.clone())])));
            }
            let own_id = b.org.as_ref().map(|o| o.id.clone()).unwrap_or_default();
            probes.push((
                "ORG-007",
                with_query(
                    &base,
                    &[
                        (name.clone(), form_component(&own_id)),
                        (name.clone(), form_component(&id)),
                    ],
                ),
            ));
            probes.push((
                "ORG-007",
                with_query(
                    &base,
                    &[
                        (name.clone(), form_component(&id)),
                        (name.clone(), form_component(&own_id)),
                    ],
                ),
            ));
        }
        if let Some(name) = org.headers.first() {
            for v in encodings(&id) {
                if let Some(h) = v.header {
                    probes.push(("ORG-007", base.clone().header(name, h)));
                }
            }
        }
        // Every `{{ org }}` of the template itself, filled with org a.
        if read.placeholders().iter().any(|p| p == "org" || p == "org_slug") {
            let check = org_position(read);
            probes.push((
                check,
                run.render(read, b, Some((&victim.id, &victim.slug)), &own, &mut scratch)?,
            ));
        }
        for (check, request) in probes {
            if run.ran(check) {
                run.send(check, b, request).await;
            }
        }
    }

    // Writes: b creates with org a named somewhere; the canaries it writes
    // must never appear in org a.
    let create = resource.create.clone();
    let mut attempts: Vec<(&'static str, String, Request, Vec<String>)> = Vec::new();
    let fresh = |run: &mut Run<'_>,
                 org_override: Option<(&str, &str)>|
     -> Result<(Request, Vec<String>), AuditError> {
        let mut written = Vec::new();
        let request = run.render(&create, b, org_override, &own, &mut written)?;
        Ok((request, written))
    };
    for name in &org.query {
        let (r, w) = fresh(run, None)?;
        attempts.push((
            "ORG-002",
            format!("create {} with ?{name}=<org a>", resource.name),
            with_query(&r, &[(name.clone(), form_component(&id))]),
            w,
        ));
    }
    for name in &org.headers {
        let (r, w) = fresh(run, None)?;
        attempts.push((
            "ORG-003",
            format!("create {} with {name}: <org a>", resource.name),
            r.header(name, id.clone()),
            w,
        ));
    }
    for name in &org.cookies {
        let (r, w) = fresh(run, None)?;
        attempts.push((
            "ORG-006",
            format!("create {} with cookie {name}=<org a>", resource.name),
            with_cookie(&r, name, &id),
            w,
        ));
    }
    for pointer in &org.json {
        let (mut r, w) = fresh(run, None)?;
        if let Some(body) = r.json.as_mut() {
            set_pointer(body, pointer, Value::String(id.clone()));
            attempts.push((
                "ORG-004",
                format!("create {} with JSON {pointer} = <org a>", resource.name),
                r,
                w,
            ));
        }
    }
    if let Some(pointer) = org.json.first() {
        // Duplicate keys: the guard and the handler may read different ones.
        let key = pointer.trim_start_matches('/');
        if !key.contains('/') {
            let own_id = b.org.as_ref().map(|o| o.id.clone()).unwrap_or_default();
            for (first, second) in [(&own_id, &id), (&id, &own_id)] {
                let (mut r, w) = fresh(run, None)?;
                if let Some(Value::Object(map)) = r.json.take() {
                    let mut text = Value::Object(map).to_string();
                    text.pop();
                    let sep = if text.len() > 1 { "," } else { "" };
                    text.push_str(&format!(
                        "{sep}{k}:{v1},{k}:{v2}}}",
                        k = Value::String(key.into()),
                        v1 = Value::String(first.clone()),
                        v2 = Value::String(second.clone())
                    ));
                    attempts.push((
                        "ORG-007",
                        format!("create {} with JSON key {key} given twice", resource.name),
                        r.raw("application/json", text),
                        w,
                    ));
                }
            }
        }
    }
    for name in &org.form {
        let (r, w) = fresh(run, None)?;
        let mut pairs: Vec<(String, String)> = match &r.json {
            Some(Value::Object(map)) => map
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().map_or_else(|| v.to_string(), String::from)))
                .collect(),
            _ => Vec::new(),
        };
        pairs.push((name.clone(), id.clone()));
        let mut r = r;
        r.json = None;
        attempts.push((
            "ORG-005",
            format!("create {} as a form with {name}=<org a>", resource.name),
            r.form(pairs),
            w,
        ));
    }
    if create
        .placeholders()
        .iter()
        .any(|p| p == "org" || p == "org_slug")
    {
        let (r, w) = fresh(run, Some((&victim.id, &victim.slug)))?;
        attempts.push((
            org_position(&create),
            format!("create {} with the template's org set to org a", resource.name),
            r,
            w,
        ));
    }
    for (check, what, request, written) in attempts {
        if !run.ran(check) {
            continue;
        }
        let reply = run.send(check, b, request).await;
        if reply.status < 300 {
            for canary in written {
                writes.insert(
                    canary,
                    Write {
                        check,
                        what: what.clone(),
                        transcript: reply.transcript.clone(),
                    },
                );
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pointers_are_set_creating_objects() {
        let mut v = json!({ "json": { "name": "x" } });
        set_pointer(&mut v, "/json/orgId", json!("org_A"));
        set_pointer(&mut v, "/organization_id", json!("org_A"));
        assert_eq!(
            v,
            json!({ "json": { "name": "x", "orgId": "org_A" }, "organization_id": "org_A" })
        );
    }

    #[test]
    fn encodings_cover_the_catalogue() {
        let queries: Vec<_> = encodings("org_abc").into_iter().map(|v| v.query).collect();
        assert_eq!(
            queries,
            [
                "ORG_ABC",
                "%6F%72%67%5F%61%62%63",
                "%256F%2572%2567%255F%2561%2562%2563",
                "%20org_abc%20",
                "org_abc%09",
                "org_abc%00",
                "%D0%BErg_abc",
            ]
        );
    }

    #[test]
    fn org_positions_name_their_check() {
        let mut t = RequestTemplate::new("GET", "/x");
        t.query
            .push(("input".into(), QueryValue::Json(json!({ "orgId": "{{ org }}" }))));
        assert_eq!(org_position(&t), "ORG-002");
        assert_eq!(
            org_position(&RequestTemplate::new("GET", "/o/{{ org }}/x")),
            "ORG-001"
        );
    }
}
