//! Our session tokens against the real `@clerk/backend` (npm, installed by
//! scripts/test into tests-js/node_modules): its networkless
//! `verifyToken(token, { jwtKey, authorizedParties })` accepts them, reads
//! the v2 claims, and refuses a tampered one.

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
