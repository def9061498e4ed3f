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
