//! Snapshots of what clients read: problem bodies for every error class and
//! the OpenAPI document.

mod common;

use common::TestStack;
use serde_json::json;

fn settings() -> insta::Settings {
    let mut settings = insta::Settings::clone_current();
    settings.set_snapshot_path(concat!(env!("CARGO_MANIFEST_DIR"), "/../snapshots"));
    settings.set_prepend_module_to_snapshot(false);
    settings
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn problem_bodies() {
    let stack = TestStack::start().await;
    let a = stack.as_user("org_fmt_a", "user_a", "org:admin");
    let member = stack.as_user("org_fmt_a", "user_m", "org:member");
    let b = stack.as_user("org_fmt_b", "user_b", "org:admin");
    let project = a.project("formats", "").await;
    let http = reqwest::Client::new();

    let mut cases = Vec::new();
    cases.push((
        "missing project",
        a.get("/api/projects/prj_0000000000000000000000000z").await,
    ));
    cases.push((
        "foreign project",
        b.get(&format!("/api/projects/{project}")).await,
    ));
    cases.push(("malformed id", a.get("/api/projects/not-an-id").await));
    cases.push(("no identity", stack.anonymous().get("/api/projects").await));
    cases.push(("org path mismatch", b.get("/api/orgs/org_fmt_a/projects").await));
    cases.push((
        "member deletes",
        member
            .send("DELETE", &format!("/api/projects/{project}"), None)
            .await,
    ));
    cases.push((
        "empty name",
        a.post("/api/projects", json!({ "name": "  " })).await,
    ));
    cases.push((
        "unknown field",
        a.post(
            "/api/projects",
            json!({ "name": "x", "organization_id": "org_fmt_b" }),
        )
        .await,
    ));
    cases.push(("limit out of range", a.get("/api/projects?limit=0").await));
    cases.push(("search without q", a.get("/api/search").await));
    cases.push(("no route", a.get("/api/nothing").await));
    cases.push(("wrong method", a.send("PUT", "/api/projects", None).await));

    // Foreign and missing ids must be indistinguishable.
    assert_eq!(cases[0].1.text, cases[1].1.text);

    let bad_json = http
        .post(format!("{}/api/projects", stack.base))
        .header("x-tenantry-dev-tenant", "org_fmt_a;user_a;org:admin")
        .header("content-type", "application/json")
        .body("{\"name\": ")
        .send()
        .await
        .unwrap();
    let status = bad_json.status().as_u16();
    let content_type = bad_json.headers()["content-type"].to_str().unwrap().to_string();
    let text = bad_json.text().await.unwrap();
    assert_eq!(content_type, "application/problem+json");

    let mut out = String::new();
    for (name, reply) in &cases {
        out.push_str(&format!("## {name}\n{} {}\n\n", reply.status, reply.text));
    }
    out.push_str(&format!("## truncated json\n{status} {text}\n"));
    settings().bind(|| insta::assert_snapshot!("reference_problem_bodies", out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_document() {
    let stack = TestStack::start().await;
    let doc = stack.anonymous().get("/openapi.json").await;
    assert_eq!(doc.status, 200);
    let paths: Vec<&String> = doc.body["paths"].as_object().unwrap().keys().collect();
    for expected in [
        "/api/projects",
        "/api/projects/{id}",
        "/api/documents/{id}",
        "/api/search",
        "/api/exports",
        "/api/stats",
    ] {
        assert!(
            paths.iter().any(|p| *p == expected),
            "{expected} missing from {paths:?}"
        );
    }
    settings().bind(|| insta::assert_json_snapshot!("reference_openapi", doc.body));
}

/// Ids, times and tokens vary per run; everything else is the format.
fn redact(value: &mut serde_json::Value, key: &str) {
    use serde_json::Value;
    match value {
        Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                redact(v, k);
            }
        }
        Value::Array(items) => {
            for item in items {
                redact(item, key);
            }
        }
        Value::Number(_) if key.ends_with("_at") || ["exp", "iat", "nbf"].contains(&key) => {
            *value = json!("[time]");
        }
        Value::String(s) => {
            if s.starts_with("eyJ") {
                *value = json!("[jwt]");
            } else {
                let segments: Vec<String> = s
                    .split('/')
                    .map(|segment| match segment.split_once('_') {
                        Some((prefix, rest))
                            if rest.len() == 26 && rest.bytes().all(|b| b.is_ascii_alphanumeric()) =>
                        {
                            format!("[{prefix}_id]")
                        }
                        _ => segment.to_string(),
                    })
                    .collect();
                *value = json!(segments.join("/"));
            }
        }
        _ => {}
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identity_formats() {
    use common::identity::{claims_of, Backend, Device, PASSWORD};
    let stack = TestStack::with_proxy().await;
    let backend = Backend::new(&stack);
    let mut out = serde_json::Map::new();
    let mut put = |name: &str, mut value: serde_json::Value| {
        redact(&mut value, "");
        out.insert(name.into(), value);
    };

    let user = backend
        .call(
            "POST",
            "/v1/users",
            Some(json!({
                "email_address": ["formats@example.test"],
                "password": PASSWORD,
                "first_name": "Fran",
                "last_name": "Format",
                "public_metadata": { "plan": "pro" },
                "private_metadata": { "crm": 7 },
            })),
        )
        .await;
    let user_id = user.body["id"].as_str().unwrap().to_string();
    put("backend: user", user.body);
    let org = backend
        .call(
            "POST",
            "/v1/organizations",
            Some(json!({ "name": "Format Org", "created_by": user_id })),
        )
        .await;
    let org_id = org.body["id"].as_str().unwrap().to_string();
    put("backend: organization", org.body);
    let memberships = backend
        .call("GET", &format!("/v1/organizations/{org_id}/memberships"), None)
        .await;
    put("backend: membership list", memberships.body);
    let template = backend
        .call(
            "POST",
            "/v1/jwt_templates",
            Some(json!({ "name": "fmt", "claims": { "org": "{{org.slug}}" } })),
        )
        .await;
    put("backend: jwt template", template.body);
    put(
        "backend: unauthorized",
        stack
            .http
            .get(format!("{}/v1/users", stack.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap(),
    );
    put(
        "backend: missing template",
        backend
            .call("POST", "/v1/sessions/sess_x/tokens/nope", None)
            .await
            .body,
    );
    put(
        "backend: email taken",
        backend
            .call(
                "POST",
                "/v1/users",
                Some(json!({ "email_address": ["formats@example.test"] })),
            )
            .await
            .body,
    );

    let mut device = Device::new(&stack);
    let sign_in = device
        .call(
            "POST",
            "/v1/client/sign_ins",
            Some(json!({ "identifier": "formats@example.test", "password": PASSWORD })),
        )
        .await;
    put("frontend: sign-in needs client trust", sign_in.body);
    let wrong = device
        .call(
            "POST",
            "/v1/client/sign_ins",
            Some(json!({ "identifier": "formats@example.test", "password": "wrong password" })),
        )
        .await;
    put("frontend: wrong password", wrong.body);
    let app_step = device.app_sign_in("formats@example.test", PASSWORD).await;
    put("app: sign-in next step", app_step.body);
    let session = device.sign_in(&backend, "formats@example.test").await.unwrap();
    let touched = device.set_active(&session, Some(&org_id)).await;
    put("frontend: touch", touched.body);
    let token = device.session_token(&session).await;
    put("session token claims", claims_of(&token));
    let metrics_before = stack
        .http
        .get(format!("{}/auth/token/missing", stack.base))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json::<serde_json::Value>()
        .await
        .unwrap();
    put("app: template fallback", metrics_before);
    let metrics = stack.metrics().await;
    let doc = serde_json::Value::Object(out);
    let mut settings = settings();
    // How many connections a pool opened depends on timing.
    settings.add_filter(
        r#"(tenantry_circuit_attempts_total\{dependency="[a-z-]+"\}) \d+"#,
        "$1 [n]",
    );
    settings.bind(|| {
        insta::assert_json_snapshot!("reference_identity_formats", doc);
        insta::assert_snapshot!("reference_metrics", metrics);
    });
}
