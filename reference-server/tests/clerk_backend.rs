//! The real `@clerk/backend` (npm, installed by scripts/test into
//! tests-js/node_modules) against our stack: its networkless
//! `verifyToken(token, { jwtKey, authorizedParties })` accepts our session
//! tokens, reads the v2 claims, and refuses a tampered one; its Backend API
//! client creates users, organizations and memberships on our server.

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use tenantry_reference::identity::keys::KeyRing;
use tenantry_reference::identity::token::{mint, SessionClaims};

fn js_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../tests-js"))
}

fn verify_with_clerk(token: &str, public_pem: &str, authorized_parties: &[&str]) -> Value {
    let dir = js_dir();
    assert!(
        dir.join("node_modules/@clerk/backend/package.json").exists(),
        "@clerk/backend is not installed: run scripts/test (it runs `npm install` in tests-js/)"
    );
    let input = std::env::temp_dir().join(format!(
        "tenantry-clerk-{}-{}.json",
        std::process::id(),
        &token[token.len() - 12..]
    ));
    std::fs::write(
        &input,
        json!({ "token": token, "public_pem": public_pem, "authorized_parties": authorized_parties })
            .to_string(),
    )
    .unwrap();
    let out = Command::new("node")
        .arg(dir.join("verify-token.mjs"))
        .arg(&input)
        .current_dir(&dir)
        .output();
    let _ = std::fs::remove_file(&input);
    let out = out.expect("node (Node.js) on PATH");
    assert!(
        out.status.success(),
        "node failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

fn claims(now: i64) -> SessionClaims {
    SessionClaims::session("https://clerk.tenantry.test", "user_clerk", "sess_clerk", now, 60)
        .in_org(
            "org_clerk",
            "clerk-test",
            "org:admin",
            &["org:projects:read".into(), "org:projects:write".into()],
        )
        .unwrap()
        .for_party("http://localhost:3000")
}

#[test]
fn clerk_backend_verify_token_accepts_ours_and_refuses_a_tampered_one() {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64;
    let ring = KeyRing::new(Duration::from_secs(60)).unwrap();
    let key = ring.active();
    let token = mint(&key, &claims(now)).unwrap();

    let result = verify_with_clerk(&token, key.public_pem(), &["http://localhost:3000"]);
    assert_eq!(result["accepted"], true, "{result}");
    assert_eq!(result["claims"]["sub"], "user_clerk");
    assert_eq!(result["claims"]["sid"], "sess_clerk");
    assert_eq!(result["claims"]["v"], 2);
    assert_eq!(result["claims"]["o"]["id"], "org_clerk");
    assert_eq!(result["claims"]["o"]["rol"], "admin");
    assert_eq!(result["tampered_error"], "token-invalid-signature", "{result}");

    // Clerk enforces the authorized parties as we do.
    let elsewhere = verify_with_clerk(&token, key.public_pem(), &["https://other.example"]);
    assert_eq!(elsewhere["accepted"], false, "{elsewhere}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clerk_backend_client_manages_users_orgs_and_memberships_on_our_server() {
    let stack = common::TestStack::with_proxy().await;
    let dir = js_dir();
    assert!(
        dir.join("node_modules/@clerk/backend/package.json").exists(),
        "@clerk/backend is not installed: run scripts/test (it runs `npm install` in tests-js/)"
    );
    let out = tokio::process::Command::new("node")
        .arg(dir.join("backend-api.mjs"))
        .current_dir(&dir)
        .env("TENANTRY_API_URL", &stack.base)
        .env("TENANTRY_SECRET_KEY", common::identity::SECRET_KEY)
        .output()
        .await
        .expect("node (Node.js) on PATH");
    assert!(
        out.status.success(),
        "node failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let seen: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
    assert!(seen.get("error").is_none(), "the client failed: {seen}");
    let owner = seen["owner"]["id"].as_str().unwrap();
    assert!(owner.starts_with("user_"), "{seen}");
    assert_eq!(seen["owner"]["email"], "owner@sdk.example");
    assert_eq!(seen["owner"]["firstName"], "Olive");
    assert_eq!(seen["owner"]["plan"], "pro");
    assert_eq!(seen["owner"]["passwordEnabled"], true);
    assert_eq!(seen["fetchedId"], owner);
    assert_eq!(seen["userList"]["ids"], json!([seen["userList"]["memberId"]]));
    assert_eq!(seen["userList"]["totalCount"], 1);
    assert!(seen["org"]["id"].as_str().unwrap().starts_with("org_"));
    assert_eq!(seen["org"]["slug"], "sdk-org");
    assert_eq!(seen["org"]["createdBy"], owner);
    assert_eq!(seen["orgBySlug"], seen["org"]["id"]);
    assert_eq!(seen["membership"]["role"], "org:member");
    assert_eq!(seen["membership"]["orgId"], seen["org"]["id"]);
    assert_eq!(seen["membership"]["userId"], seen["userList"]["memberId"]);
    assert_eq!(seen["membership"]["identifier"], "member@sdk.example");
    assert_eq!(seen["updatedRole"], "org:admin");
    assert_eq!(seen["memberships"]["totalCount"], 2);
    assert_eq!(seen["memberships"]["roles"], json!(["org:admin", "org:admin"]));
    assert_eq!(seen["afterDelete"], 1);
    assert_eq!(seen["missingUser"]["status"], 404, "{seen}");
    assert_eq!(seen["missingUser"]["code"], "resource_not_found");
    assert_eq!(seen["missingGet"]["status"], 404);
    assert_eq!(seen["missingGet"]["code"], "resource_not_found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clerk_backend_verify_token_accepts_a_token_our_frontend_api_issued() {
    use common::identity::{Backend, Device};
    let stack = common::TestStack::with_proxy().await;
    let backend = Backend::new(&stack);
    let user = backend.user("verify@sdk.example", false).await;
    let (org, slug) = backend.org("Verify Org", &user).await;
    let mut device = Device::new(&stack);
    let session = device.sign_in(&backend, "verify@sdk.example").await.unwrap();
    device.set_active(&session, Some(&org)).await;
    let token = device.session_token(&session).await;
    let pem = stack.keys.active().public_pem().to_string();
    let result =
        tokio::task::spawn_blocking(move || verify_with_clerk(&token, &pem, &[common::token_checks::PARTY]))
            .await
            .unwrap();
    assert_eq!(result["accepted"], true, "{result}");
    assert_eq!(result["claims"]["sub"], user.as_str());
    assert_eq!(result["claims"]["sid"], session.as_str());
    assert_eq!(result["claims"]["o"]["id"], org.as_str());
    assert_eq!(result["claims"]["o"]["slg"], slug.as_str());
    assert_eq!(result["claims"]["o"]["rol"], "admin");
    assert_eq!(result["tampered_error"], "token-invalid-signature", "{result}");
}
