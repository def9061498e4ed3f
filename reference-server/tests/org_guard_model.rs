//! The org guard against a simple model, on generated requests: org
//! identifiers in random positions, spellings, encodings and repetitions,
//! mixed with unrelated parameters. The guard must refuse exactly when some
//! org identifier differs from the active org.

use proptest::prelude::*;
use tenantry_reference::proxy::org_guard::{check, ActiveOrg, RequestParts};

const ACTIVE: &str = "org_a";

/// What a generated org value decodes to, and how it is written on the wire.
#[derive(Debug, Clone)]
struct OrgValue {
    decoded: String,
    encoded: String,
}

fn org_value() -> impl Strategy<Value = OrgValue> {
    prop_oneof![
        Just(("org_a", "org_a")),
        Just(("org_b", "org_b")),
        Just(("ORG_A", "ORG_A")),
        Just(("org_a", "org%5Fa")),
        Just(("org_b", "org%5Fb")),
        Just(("org%61", "org%2561")),
        Just((" org_a", "%20org_a")),
        Just(("org_a\0", "org_a%00")),
        Just(("", "")),
    ]
    .prop_map(|(decoded, encoded)| OrgValue {
        decoded: decoded.to_string(),
        encoded: encoded.to_string(),
    })
}

fn org_name() -> impl Strategy<Value = &'static str> {
    prop_oneof![
        Just("org_id"),
        Just("orgId"),
        Just("organization_id"),
        Just("OrganizationId"),
        Just("tenant_id")
    ]
}

fn other_name() -> impl Strategy<Value = &'static str> {
    prop_oneof![
        Just("limit"),
        Just("q"),
        Just("cursor"),
        Just("organization"),
        Just("project_id")
    ]
}

#[derive(Debug, Clone)]
enum Item {
    Query(&'static str, OrgValue),
    Other(&'static str, String),
    Header(&'static str, OrgValue),
    Json(&'static str, OrgValue, bool),
}

fn item() -> impl Strategy<Value = Item> {
    prop_oneof![
        (org_name(), org_value()).prop_map(|(n, v)| Item::Query(n, v)),
        (other_name(), "[a-z0-9_]{0,8}").prop_map(|(n, v)| Item::Other(n, v)),
        (
            prop_oneof![Just("x-org-id"), Just("organization-id")],
            org_value()
        )
            .prop_map(|(n, v)| Item::Header(n, v)),
        (org_name(), org_value(), any::<bool>()).prop_map(|(n, v, nested)| Item::Json(n, v, nested)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn refuses_exactly_when_some_org_identifier_differs(items in prop::collection::vec(item(), 0..8)) {
        let mut query = Vec::new();
        let mut headers: Vec<(&str, Vec<u8>)> = Vec::new();
        let mut json_fields = Vec::new();
        let mut model_refuses = false;
        for item in &items {
            match item {
                Item::Query(name, value) => {
                    query.push(format!("{name}={}", value.encoded));
                    model_refuses |= value.decoded != ACTIVE;
                }
                Item::Other(name, value) => query.push(format!("{name}={value}")),
                Item::Header(name, value) => {
                    // Headers carry the value as is (no percent-decoding).
                    headers.push((name, value.encoded.clone().into_bytes()));
                    model_refuses |= value.encoded != ACTIVE;
                }
                Item::Json(name, value, nested) => {
                    let field = serde_json::json!({ *name: value.decoded });
                    json_fields.push(if *nested { serde_json::json!({ "input": field }) } else { field });
                    model_refuses |= value.decoded != ACTIVE;
                }
            }
        }
        let query = query.join("&");
        let body = serde_json::to_vec(&json_fields).unwrap();
        let parts = RequestParts {
            path: "/api/projects",
            query: (!query.is_empty()).then_some(query.as_str()),
            headers: headers.iter().map(|(n, v)| (*n, v.as_slice())).collect(),
            cookies: Vec::new(),
            body: Some(("application/json", body.as_slice())),
        };
        let guard_refuses = check(&parts, &ActiveOrg { id: ACTIVE, slug: None }).is_err();
        prop_assert_eq!(guard_refuses, model_refuses, "items: {:?}", items);
    }
}
