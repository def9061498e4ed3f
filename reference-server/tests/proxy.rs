//! The proxy over HTTP with session tokens signed by the stack's own keys:
//! the auth boundary is the tenancy boundary.

mod common;

use common::TestStack;
use serde_json::{json, Value};
use tenantry_reference::identity::token::mint;

use common::token_checks::{self, claims, now};

/// Extra request headers.
type Headers<'a> = Vec<(&'a str, &'a str)>;

/// The shared request helper, with the body parsed as JSON.
struct Client<'s> {
    stack: &'s TestStack,
}

impl Client<'_> {
    async fn send(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        extra: &[(&str, &str)],
        body: Option<Value>,
    ) -> (u16, Value) {
        let (status, text) = token_checks::send(self.stack, method, path, token, extra, body).await;
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }
}

fn client(stack: &TestStack) -> Client<'_> {
    Client { stack }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_verified_token_is_the_tenant_and_the_org_guard_runs_first() {
    let stack = TestStack::with_proxy().await;
    let c = client(&stack);
    let key = stack.keys.active();
    let a = mint(&key, &claims(Some("org_pa"), "user_a", "admin")).unwrap();
    let b = mint(&key, &claims(Some("org_pb"), "user_b", "admin")).unwrap();

    let (status, created) = c
        .send(
            "POST",
            "/api/projects",
            Some(&a),
            &[],
            Some(json!({ "name": "A's canary-77" })),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["created_by"], "user_a", "the user comes from the token");
    let id = created["id"].as_str().unwrap().to_string();

    // B's verified token cannot see A's project.
    let (status, _) = c
        .send("GET", &format!("/api/projects/{id}"), Some(&b), &[], None)
        .await;
    assert_eq!(status, 404);
    let (_, list) = c.send("GET", "/api/projects", Some(&b), &[], None).await;
    assert!(!list.to_string().contains("canary-77"));

    // Forged org parameters are refused before any handler runs.
    let forged: Vec<(&str, String, Headers, Option<Value>)> = vec![
        ("GET", "/api/projects?org_id=org_pa".into(), vec![], None),
        (
            "GET",
            "/api/projects?orgId=org_pa&orgId=org_pb".into(),
            vec![],
            None,
        ),
        ("GET", "/api/orgs/org_pa/projects".into(), vec![], None),
        ("GET", "/api/projects".into(), vec![("x-org-id", "org_pa")], None),
        (
            "GET",
            "/api/projects".into(),
            vec![("cookie", "organization_id=org_pa")],
            None,
        ),
        (
            "POST",
            "/api/projects".into(),
            vec![],
            Some(json!({ "name": "x", "organization_id": "org_pa" })),
        ),
        (
            "POST",
            "/api/projects".into(),
            vec![],
            Some(json!({ "input": { "orgId": "org_pa" } })),
        ),
    ];
    for (method, path, headers, body) in forged {
        let (status, problem) = c.send(method, &path, Some(&b), &headers, body).await;
        assert_eq!(
            (status, problem["code"].as_str()),
            (403, Some("org_mismatch")),
            "{method} {path} {headers:?}"
        );
    }
    // The active org (or its slug) in a parameter is fine.
    let (status, _) = c
        .send("GET", "/api/projects?org_id=org_pb", Some(&b), &[], None)
        .await;
    assert_eq!(status, 200);
    let (status, _) = c
        .send("GET", "/api/orgs/slug-org_pb/projects", Some(&b), &[], None)
        .await;
    assert_eq!(
        status, 403,
        "the handler itself compares the path org with the id, not the slug"
    );
    let (status, _) = c
        .send("GET", "/api/orgs/org_pb/projects", Some(&b), &[], None)
        .await;
    assert_eq!(status, 200);
    // No write reached A: its project is unchanged and alone.
    let (_, list) = c.send("GET", "/api/projects", Some(&a), &[], None).await;
    assert_eq!(list["data"].as_array().unwrap().len(), 1, "{list}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_tokens_are_401_with_one_body_and_no_org_is_403() {
    let stack = TestStack::with_proxy().await;
    let c = client(&stack);
    let key = stack.keys.active();
    let good = mint(&key, &claims(Some("org_px"), "user_x", "member")).unwrap();

    let (status, _) = c.send("GET", "/api/projects", Some(&good), &[], None).await;
    assert_eq!(status, 200);
    let cookie = format!("__session={good}");
    let (status, _) = c
        .send("GET", "/api/projects", None, &[("cookie", cookie.as_str())], None)
        .await;
    assert_eq!(status, 200, "the __session cookie works alone");

    let mut expired = claims(Some("org_px"), "user_x", "member");
    expired.exp = now() - 30;
    let mut template = claims(Some("org_px"), "user_x", "member");
    template.sid = None;
    let mut pending = claims(Some("org_px"), "user_x", "member");
    pending.sts = "pending".into();
    let mut foreign = claims(Some("org_px"), "user_x", "member");
    foreign.iss = "https://evil.example".into();
    let other = mint(&key, &claims(Some("org_py"), "user_y", "member")).unwrap();
    let parts: Vec<&str> = good.split('.').collect();
    let alg_none = format!("eyJhbGciOiJub25lIn0.{}.", parts[1]);
    let conflict = format!("__session={other}");

    let mut bodies = Vec::new();
    let cases: Vec<(Option<String>, Headers)> = vec![
        (None, vec![]),
        (Some(mint(&key, &expired).unwrap()), vec![]),
        (Some(mint(&key, &template).unwrap()), vec![]),
        (Some(mint(&key, &pending).unwrap()), vec![]),
        (Some(mint(&key, &foreign).unwrap()), vec![]),
        (Some(alg_none), vec![]),
        (Some(good.clone()), vec![("cookie", conflict.as_str())]),
    ];
    for (token, headers) in cases {
        let (status, body) = c
            .send("GET", "/api/projects", token.as_deref(), &headers, None)
            .await;
        assert_eq!(status, 401, "{body}");
        bodies.push(body);
    }
    assert!(
        bodies.windows(2).all(|w| w[0] == w[1]),
        "401 bodies differ: {bodies:?}"
    );

    let personal = mint(&key, &claims(None, "user_x", "member")).unwrap();
    let (status, body) = c.send("GET", "/api/projects", Some(&personal), &[], None).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("no_active_organization"))
    );

    // Public routes need no token; the JWKS names the active key.
    let (status, jwks) = c.send("GET", "/.well-known/jwks.json", None, &[], None).await;
    assert_eq!(status, 200);
    assert_eq!(jwks["keys"][0]["kid"], key.kid());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_tokens_and_forged_org_parameters_get_nothing() {
    let stack = TestStack::with_proxy().await;
    let world = token_checks::seed(&stack).await;
    token_checks::forged_tokens_refused(&stack, &world).await.unwrap();
    token_checks::org_params_refused(&stack, &world).await.unwrap();
}
