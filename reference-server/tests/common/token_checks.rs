//! Checks of the proxy with real tokens: each returns `Err(what got through)`.
//! They pass on the clean stack and fail with the flaw they are meant to catch.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use tenantry_reference::identity::token::{mint, SessionClaims};

use super::checks::Check;
use super::TestStack;

/// The authorized party the test stacks allow.
pub const PARTY: &str = "http://localhost:3000";

pub fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

/// Claims of a session in `org` (or none) for `user`.
pub fn claims(org: Option<&str>, user: &str, role: &str) -> SessionClaims {
    let session = SessionClaims::session(
        "https://clerk.tenantry.local",
        user,
        &format!("sess_{user}"),
        now(),
        60,
    )
    .for_party(PARTY);
    match org {
        Some(id) => session
            .in_org(
                id,
                &format!("slug-{id}"),
                &format!("org:{role}"),
                &["org:projects:read".into()],
            )
            .unwrap(),
        None => session,
    }
}

/// Sends a request; returns status and body text.
pub async fn send(
    stack: &TestStack,
    method: &str,
    path: &str,
    token: Option<&str>,
    headers: &[(&str, &str)],
    body: Option<Value>,
) -> (u16, String) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut request = stack.http.request(method, format!("{}{}", stack.base, path));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    (
        response.status().as_u16(),
        response.text().await.unwrap_or_default(),
    )
}

/// Org A with a project carrying a canary, and a member of org B.
pub struct TokenWorld {
    pub a_token: String,
    pub b_token: String,
    pub canary: String,
}

pub async fn seed(stack: &TestStack) -> TokenWorld {
    let key = stack.keys.active();
    let a_token = mint(&key, &claims(Some("org_ta"), "user_ta", "admin")).unwrap();
    let b_token = mint(&key, &claims(Some("org_tb"), "user_tb", "admin")).unwrap();
    let canary = format!("cnry-tok-{}", now());
    let (status, body) = send(
        stack,
        "POST",
        "/api/projects",
        Some(&a_token),
        &[],
        Some(json!({ "name": canary })),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    TokenWorld {
        a_token,
        b_token,
        canary,
    }
}

fn b64(value: &Value) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).unwrap())
}

/// TOK-003/006/013/018/020: forged tokens for org A's user must all be 401.
pub async fn forged_tokens_refused(stack: &TestStack, world: &TokenWorld) -> Check {
    let key = stack.keys.active();
    let kid = key.kid().to_string();
    let base = claims(Some("org_ta"), "user_ta", "admin");
    let payload = serde_json::to_value(&base).unwrap();

    let alg_none = format!(
        "{}.{}.",
        b64(&json!({ "alg": "none", "typ": "JWT" })),
        b64(&payload)
    );
    let mut hs_header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    hs_header.kid = Some(kid);
    let hs256 = jsonwebtoken::encode(
        &hs_header,
        &base,
        &jsonwebtoken::EncodingKey::from_secret(key.public_pem().as_bytes()),
    )
    .unwrap();
    let mut expired = base.clone();
    expired.exp = now() - 120;
    let mut other_app = base.clone();
    other_app.azp = Some("https://other-app.example".into());
    let mut template = base.clone();
    template.sid = None;

    let forged = [
        ("alg none", alg_none),
        ("HS256 keyed with the public key", hs256),
        ("expired", mint(&key, &expired).unwrap()),
        ("another app's azp", mint(&key, &other_app).unwrap()),
        ("template token (no sid)", mint(&key, &template).unwrap()),
    ];
    let mut violations = Vec::new();
    for (what, token) in forged {
        let (status, body) = send(stack, "GET", "/api/projects", Some(&token), &[], None).await;
        if status != 401 || body.contains(&world.canary) {
            violations.push(format!("{what}: {status} {body}"));
        }
    }
    if violations.is_empty() {
        Ok(())
    } else {
        Err(violations.join("\n"))
    }
}

/// ORG-001/002/003: B's token naming org A in the path, query or a header
/// never gets A's data.
pub async fn org_params_refused(stack: &TestStack, world: &TokenWorld) -> Check {
    let header: &[(&str, &str)] = &[("x-org-id", "org_ta")];
    let attempts = [
        ("path", "/api/orgs/org_ta/projects", &[][..]),
        ("query", "/api/projects?org_id=org_ta", &[][..]),
        ("header", "/api/projects", header),
    ];
    let mut violations = Vec::new();
    for (position, path, headers) in attempts {
        let (status, body) = send(stack, "GET", path, Some(&world.b_token), headers, None).await;
        if status != 403 || body.contains(&world.canary) {
            violations.push(format!("org A in the {position}: {status} {body}"));
        }
    }
    if violations.is_empty() {
        Ok(())
    } else {
        Err(violations.join("\n"))
    }
}
