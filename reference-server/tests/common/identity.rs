//! Driving the identity service over HTTP as its real clients do: a server
//! holding the secret key ([`Backend`]) and a browser holding the device
//! cookie ([`Device`]), plus the checks the identity flaws must fail.

use serde_json::{json, Value};

use super::checks::Check;
use super::token_checks::{send, PARTY};
use super::{Reply, TestStack};

/// The Backend API secret of the test stacks.
pub const SECRET_KEY: &str = "sk_test_tenantryTestSecretKey0123456789abcdef";
/// Every test user's password.
pub const PASSWORD: &str = "correct horse battery staple";

async fn reply(response: reqwest::Response) -> (Reply, Vec<String>) {
    let status = response.status().as_u16();
    let cookies = response
        .headers()
        .get_all(http::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok().map(String::from))
        .collect();
    let text = response.text().await.unwrap_or_default();
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    (Reply { status, body, text }, cookies)
}

/// A server with the secret key.
pub struct Backend<'a> {
    pub stack: &'a TestStack,
}

impl<'a> Backend<'a> {
    pub fn new(stack: &'a TestStack) -> Self {
        Self { stack }
    }

    pub async fn call(&self, method: &str, path: &str, body: Option<Value>) -> Reply {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut request = self
            .stack
            .http
            .request(method, format!("{}{}", self.stack.base, path))
            .bearer_auth(SECRET_KEY);
        if let Some(body) = body {
            request = request.json(&body);
        }
        reply(request.send().await.expect("the server answers")).await.0
    }

    /// A user with the test password; `two_factor` requires an email code at every sign-in.
    pub async fn user(&self, email: &str, two_factor: bool) -> String {
        let r = self
            .call(
                "POST",
                "/v1/users",
                Some(json!({
                    "email_address": [email],
                    "password": PASSWORD,
                    "first_name": "Test",
                    "public_metadata": { "plan": "pro" },
                    "two_factor_enabled": two_factor,
                })),
            )
            .await;
        assert_eq!(r.status, 200, "create user: {}", r.text);
        r.body["id"].as_str().unwrap().to_string()
    }

    /// An org created by `creator` (its first admin); returns (id, slug).
    pub async fn org(&self, name: &str, creator: &str) -> (String, String) {
        let r = self
            .call(
                "POST",
                "/v1/organizations",
                Some(json!({ "name": name, "created_by": creator })),
            )
            .await;
        assert_eq!(r.status, 200, "create org: {}", r.text);
        (
            r.body["id"].as_str().unwrap().to_string(),
            r.body["slug"].as_str().unwrap().to_string(),
        )
    }

    pub async fn add_member(&self, org: &str, user: &str, role: &str) {
        let r = self
            .call(
                "POST",
                &format!("/v1/organizations/{org}/memberships"),
                Some(json!({ "user_id": user, "role": role })),
            )
            .await;
        assert_eq!(r.status, 200, "add member: {}", r.text);
    }

    /// The active sessions of `user`.
    pub async fn active_sessions(&self, user: &str) -> Vec<Value> {
        let r = self
            .call("GET", &format!("/v1/sessions?user_id={user}"), None)
            .await;
        assert_eq!(r.status, 200, "sessions: {}", r.text);
        r.body["data"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["status"] == "active")
            .cloned()
            .collect()
    }

    /// The newest code in the test outbox for `email`, with its sign-in id.
    pub async fn latest_code(&self, email: &str) -> Option<(String, String)> {
        let r = self
            .call("GET", &format!("/v1/testing/outbox?email_address={email}"), None)
            .await;
        assert_eq!(r.status, 200, "outbox: {}", r.text);
        let first = r.body["data"].as_array()?.first()?.clone();
        Some((
            first["code"].as_str()?.to_string(),
            first["sign_in_id"].as_str()?.to_string(),
        ))
    }
}

/// A browser: keeps the `__client` cookie the server sets, sends `Origin`.
pub struct Device<'a> {
    pub stack: &'a TestStack,
    pub client_cookie: Option<String>,
}

impl<'a> Device<'a> {
    pub fn new(stack: &'a TestStack) -> Self {
        Self {
            stack,
            client_cookie: None,
        }
    }

    pub async fn call(&mut self, method: &str, path: &str, body: Option<Value>) -> Reply {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut request = self
            .stack
            .http
            .request(method, format!("{}{}", self.stack.base, path))
            .header("origin", PARTY);
        if let Some(cookie) = &self.client_cookie {
            request = request.header("cookie", cookie.as_str());
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let (reply, cookies) = reply(request.send().await.expect("the server answers")).await;
        for cookie in cookies {
            if let Some(pair) = cookie.split(';').next().filter(|p| p.starts_with("__client=")) {
                self.client_cookie = Some(pair.to_string());
            }
        }
        reply
    }

    /// The app's sign-in handler.
    pub async fn app_sign_in(&mut self, email: &str, password: &str) -> Reply {
        self.call(
            "POST",
            "/auth/sign-in",
            Some(json!({ "identifier": email, "password": password })),
        )
        .await
    }

    /// Signs in through the app's handler, following whatever step it
    /// names (reading codes from the outbox); returns the session id.
    pub async fn sign_in(&mut self, backend: &Backend<'_>, email: &str) -> Result<String, String> {
        let r = self.app_sign_in(email, PASSWORD).await;
        if r.status != 200 {
            return Err(format!("sign-in: {} {}", r.status, r.text));
        }
        if r.body["status"] == "complete" {
            return r.body["session_id"]
                .as_str()
                .map(String::from)
                .ok_or_else(|| format!("complete without a session id: {}", r.text));
        }
        if r.body["next"] != "email_code" {
            return Err(format!(
                "sign-in stopped at {} with no next step: {}",
                r.body["status"], r.text
            ));
        }
        let sign_in_id = r.body["sign_in_id"].as_str().unwrap().to_string();
        let Some((code, for_sign_in)) = backend.latest_code(email).await else {
            return Err(format!(
                "the handler asked for an email code but none was sent ({})",
                r.text
            ));
        };
        if for_sign_in != sign_in_id {
            return Err("the newest code is for another sign-in".into());
        }
        let r = self
            .call(
                "POST",
                &format!("/auth/sign-in/{sign_in_id}/code"),
                Some(json!({ "code": code })),
            )
            .await;
        if r.status != 200 || r.body["status"] != "complete" {
            return Err(format!("code step: {} {}", r.status, r.text));
        }
        Ok(r.body["session_id"].as_str().unwrap().to_string())
    }

    /// setActive.
    pub async fn set_active(&mut self, session: &str, org: Option<&str>) -> Reply {
        self.call(
            "POST",
            &format!("/v1/client/sessions/{session}/touch"),
            Some(json!({ "active_organization_id": org })),
        )
        .await
    }

    /// A session token from the Frontend API.
    pub async fn token(&mut self, session: &str) -> Reply {
        self.call("POST", &format!("/v1/client/sessions/{session}/tokens"), None)
            .await
    }

    /// A session token; panics if refused.
    pub async fn session_token(&mut self, session: &str) -> String {
        let r = self.token(session).await;
        assert_eq!(r.status, 200, "token: {}", r.text);
        r.body["jwt"].as_str().unwrap().to_string()
    }
}

/// The claims of a JWT, unverified (for assertions on what we minted).
pub fn claims_of(jwt: &str) -> Value {
    use base64::Engine;
    let payload = jwt.split('.').nth(1).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}@example.test",
        &tenantry_reference::ids::new_id(tenantry_reference::ids::IdKind::User)[5..15]
    )
}

/// SES-005: after a valid password on an unknown device, no session exists
/// until the email code is entered.
pub async fn client_trust_safety(stack: &TestStack) -> Check {
    let backend = Backend::new(stack);
    let email = unique("trust-safety");
    let user = backend.user(&email, false).await;
    let mut device = Device::new(stack);
    let r = device.app_sign_in(&email, PASSWORD).await;
    let mut violations = Vec::new();
    if r.body["status"] == "complete" || !r.body["session_id"].is_null() {
        violations.push(format!(
            "the handler signed in before the second step: {}",
            r.text
        ));
    }
    let sessions = backend.active_sessions(&user).await;
    if !sessions.is_empty() {
        violations.push(format!(
            "{} session(s) exist before the code was entered",
            sessions.len()
        ));
    }
    if violations.is_empty() {
        Ok(())
    } else {
        Err(violations.join("\n"))
    }
}

/// SES-006: a user who hits `needs_client_trust` can finish signing in, and
/// gets a working token.
pub async fn client_trust_liveness(stack: &TestStack) -> Check {
    let backend = Backend::new(stack);
    let email = unique("trust-liveness");
    let user = backend.user(&email, false).await;
    backend.org("Liveness Org", &user).await;
    let mut device = Device::new(stack);
    let session = device.sign_in(&backend, &email).await?;
    let r = device.token(&session).await;
    if r.status != 200 {
        return Err(format!("signed in but no token: {} {}", r.status, r.text));
    }
    Ok(())
}

/// TPL-003: a missing template still yields a token (the session token),
/// counted in the fallback metric — never a 500.
pub async fn template_fallback(stack: &TestStack) -> Check {
    let backend = Backend::new(stack);
    let email = unique("fallback");
    let user = backend.user(&email, false).await;
    let mut device = Device::new(stack);
    let session = device.sign_in(&backend, &email).await?;
    let token = device.session_token(&session).await;
    let _ = user;
    let (status, body) = send(
        stack,
        "GET",
        "/auth/token/no-such-template",
        Some(&token),
        &[],
        None,
    )
    .await;
    if status != 200 {
        return Err(format!("template helper answered {status}: {body}"));
    }
    let body: Value = serde_json::from_str(&body).map_err(|e| e.to_string())?;
    if body["fallback"] != true {
        return Err(format!("no fallback reported: {body}"));
    }
    let jwt = body["jwt"].as_str().unwrap_or_default();
    if claims_of(jwt)["sid"] != session.as_str() {
        return Err("the fallback token is not the caller's session token".into());
    }
    let metrics = stack.metrics().await;
    if !metrics.contains("tenantry_template_fallback_total{template=\"no-such-template\"} 1") {
        return Err(format!("fallback not counted:\n{metrics}"));
    }
    Ok(())
}

/// TOK (role tamper): a member's verified Bearer token plus a `__session`
/// cookie whose payload claims `admin` must not unlock admin actions.
pub async fn role_from_verified_token_only(stack: &TestStack) -> Check {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let backend = Backend::new(stack);
    let admin_email = unique("role-admin");
    let member_email = unique("role-member");
    let admin = backend.user(&admin_email, false).await;
    let member = backend.user(&member_email, false).await;
    let (org, _) = backend.org("Role Org", &admin).await;
    backend.add_member(&org, &member, "org:member").await;

    let mut admin_device = Device::new(stack);
    let admin_session = admin_device.sign_in(&backend, &admin_email).await?;
    admin_device.set_active(&admin_session, Some(&org)).await;
    let admin_token = admin_device.session_token(&admin_session).await;
    let (status, body) = send(
        stack,
        "POST",
        "/api/projects",
        Some(&admin_token),
        &[],
        Some(json!({ "name": "keep me" })),
    )
    .await;
    if status != 201 {
        return Err(format!("admin could not create a project: {status} {body}"));
    }
    let project: Value = serde_json::from_str(&body).unwrap();
    let project = project["id"].as_str().unwrap().to_string();

    let mut member_device = Device::new(stack);
    let member_session = member_device.sign_in(&backend, &member_email).await?;
    member_device.set_active(&member_session, Some(&org)).await;
    let member_token = member_device.session_token(&member_session).await;
    let mut parts: Vec<String> = member_token.split('.').map(String::from).collect();
    let mut payload = claims_of(&member_token);
    payload["o"]["rol"] = json!("admin");
    parts[1] = b64.encode(serde_json::to_vec(&payload).unwrap());
    let forged = parts.join(".");
    let cookie = format!("__session={forged}");
    let (status, body) = send(
        stack,
        "DELETE",
        &format!("/api/projects/{project}"),
        Some(&member_token),
        &[("cookie", cookie.as_str())],
        None,
    )
    .await;
    if status == 204 {
        return Err(format!(
            "a member deleted a project with a forged role in the unverified cookie ({status} {body})"
        ));
    }
    let (status, _) = send(
        stack,
        "GET",
        &format!("/api/projects/{project}"),
        Some(&admin_token),
        &[],
        None,
    )
    .await;
    if status != 200 {
        return Err("the project is gone".into());
    }
    Ok(())
}
