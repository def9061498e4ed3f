//! Arbitrary request parts: the org guard never panics, and a request whose
//! query names an org other than the active one is always refused.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use tenantry_reference::proxy::org_guard::{check, ActiveOrg, RequestParts};

#[derive(Debug, Arbitrary)]
struct Input<'a> {
    path: &'a str,
    query: Option<&'a str>,
    headers: Vec<(&'a str, &'a [u8])>,
    cookies: Vec<&'a str>,
    content_type: &'a str,
    body: &'a [u8],
    foreign_org: &'a str,
}

fuzz_target!(|input: Input<'_>| {
    let active = ActiveOrg { id: "org_active", slug: Some("active") };
    let parts = RequestParts {
        path: input.path,
        query: input.query,
        headers: input.headers.clone(),
        cookies: input.cookies.clone(),
        body: Some((input.content_type, input.body)),
    };
    let _ = check(&parts, &active);
    // Appending a foreign org id to any query must be refused.
    let foreign: String = input.foreign_org.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
    if foreign.is_empty() || foreign == "org_active" || foreign == "active" {
        return;
    }
    let query = match input.query {
        Some(q) => format!("{q}&org_id={foreign}"),
        None => format!("org_id={foreign}"),
    };
    let parts = RequestParts { query: Some(&query), ..parts };
    assert!(check(&parts, &active).is_err(), "a foreign org in the query got through: {query}");
});
