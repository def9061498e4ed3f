//! The identity service as the suite drives it: the Backend API with the
//! secret key, and the Frontend API as a browser (a [`Device`] keeps the
//! `__client` cookie the service sets and sends the app's `Origin`). Every
//! call answers the raw [`Reply`], since the checks judge refusals too.

use serde_json::{json, Value};

use crate::client::{form_component, Client, Reply, Request};
use crate::session::SessionError;

/// A browser: its device cookie (`__client=…`, empty before the first
/// answer that sets one).
#[derive(Debug, Clone, Default)]
pub struct Device {
    /// The cookie pair.
    pub cookie: String,
}

/// A Clerk-compatible identity service.
#[derive(Debug, Clone)]
pub struct Idp {
    client: Client,
    secret_key: String,
    origin: Option<String>,
}

fn setup_error(step: &'static str, reply: &Reply) -> SessionError {
    SessionError::new(
        step,
        format!(
            "HTTP {}: {}",
            reply.status,
            String::from_utf8_lossy(&reply.body)
                .chars()
                .take(300)
                .collect::<String>()
        ),
    )
}

/// The `jwt` of a token answer, if it carries one.
pub fn jwt_of(reply: &Reply) -> Option<String> {
    if !(200..300).contains(&reply.status) {
        return None;
    }
    reply.json()["jwt"]
        .as_str()
        .filter(|j| !j.is_empty())
        .map(String::from)
}

impl Idp {
    /// The service behind `client` with its Backend API `secret_key`;
    /// browsers send `Origin: origin`.
    pub fn new(client: Client, secret_key: &str, origin: Option<&str>) -> Self {
        client.register_secret(secret_key);
        Self {
            client,
            secret_key: secret_key.into(),
            origin: origin.map(String::from),
        }
    }

    /// The client (its registered secrets are redacted from transcripts).
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// A Backend API call.
    pub async fn backend(&self, method: &str, path: &str, body: Option<Value>) -> Reply {
        let mut request = Request::new(method, path).bearer(&self.secret_key);
        if let Some(body) = body {
            request = request.json(body);
        }
        self.client.send_patiently(request).await
    }

    /// `request` sent by `device` through `client` (the identity service's
    /// or the app's): with its cookie and origin, keeping the cookie the
    /// answer sets.
    pub async fn browse(&self, client: &Client, device: &mut Device, mut request: Request) -> Reply {
        if !device.cookie.is_empty() {
            request = request.header("cookie", device.cookie.clone());
        }
        if let Some(origin) = &self.origin {
            request = request.header("origin", origin.clone());
        }
        let reply = client.send_patiently(request).await;
        for (name, value) in &reply.headers {
            if !name.eq_ignore_ascii_case("set-cookie") {
                continue;
            }
            if let Some(pair) = value.split(';').next().filter(|p| p.starts_with("__client=")) {
                device.cookie = pair.to_string();
                self.client.register_secret(pair.trim_start_matches("__client="));
                client.register_secret(pair.trim_start_matches("__client="));
            }
        }
        reply
    }

    /// A Frontend API `POST` by `device`.
    pub async fn frontend(&self, device: &mut Device, path: &str, body: Value) -> Reply {
        let client = self.client.clone();
        self.browse(&client, device, Request::new("POST", path).json(body))
            .await
    }

    /// Creates a user; `extra` adds Backend API fields (names, metadata).
    pub async fn create_user(
        &self,
        email: &str,
        password: &str,
        extra: Value,
    ) -> Result<String, SessionError> {
        let mut body = json!({ "email_address": [email], "password": password });
        if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
            for (k, v) in extra {
                body.insert(k.clone(), v.clone());
            }
        }
        let reply = self.backend("POST", "/v1/users", Some(body)).await;
        match reply.json()["id"].as_str() {
            Some(id) if reply.status == 200 => Ok(id.to_string()),
            _ => Err(setup_error("create user", &reply)),
        }
    }

    /// Creates an org whose first admin is `creator`; returns (id, slug).
    pub async fn create_org(&self, name: &str, creator: &str) -> Result<(String, String), SessionError> {
        let reply = self
            .backend(
                "POST",
                "/v1/organizations",
                Some(json!({ "name": name, "created_by": creator })),
            )
            .await;
        let body = reply.json();
        match (body["id"].as_str(), body["slug"].as_str()) {
            (Some(id), Some(slug)) if reply.status == 200 => Ok((id.into(), slug.into())),
            _ => Err(setup_error("create organization", &reply)),
        }
    }

    /// The user's sessions whose status is `active`, with the exchange.
    pub async fn active_sessions(&self, user: &str) -> Result<(Vec<Value>, Reply), SessionError> {
        let reply = self
            .backend(
                "GET",
                &format!("/v1/sessions?user_id={}", form_component(user)),
                None,
            )
            .await;
        if reply.status != 200 {
            return Err(setup_error("list sessions", &reply));
        }
        let body = reply.json();
        let list = body
            .as_array()
            .or_else(|| body["data"].as_array())
            .cloned()
            .unwrap_or_default();
        let active = list.into_iter().filter(|s| s["status"] == "active").collect();
        Ok((active, reply))
    }

    /// The code the test outbox holds for sign-in `sign_in` of `email`.
    pub async fn code_for(&self, email: &str, sign_in: &str) -> Result<Option<String>, SessionError> {
        let reply = self
            .backend(
                "GET",
                &format!("/v1/testing/outbox?email_address={}", form_component(email)),
                None,
            )
            .await;
        if reply.status != 200 {
            return Err(setup_error("read the test outbox", &reply));
        }
        let code = reply.json()["data"]
            .as_array()
            .and_then(|d| d.iter().find(|m| m["sign_in_id"] == sign_in))
            .and_then(|m| m["code"].as_str())
            .map(String::from);
        if let Some(code) = &code {
            self.client.register_secret(code);
        }
        Ok(code)
    }

    /// Starts a password sign-in on `device`; the attempt is `response`.
    pub async fn start_sign_in(&self, device: &mut Device, email: &str, password: &str) -> Reply {
        self.frontend(
            device,
            "/v1/client/sign_ins",
            json!({ "identifier": email, "password": password }),
        )
        .await
    }

    /// Asks for an email code for attempt `sign_in`.
    pub async fn prepare_code(&self, device: &mut Device, sign_in: &str) -> Reply {
        self.frontend(
            device,
            &format!("/v1/client/sign_ins/{sign_in}/prepare_second_factor"),
            json!({ "strategy": "email_code" }),
        )
        .await
    }

    /// Enters `code` on attempt `sign_in`.
    pub async fn attempt_code(&self, device: &mut Device, sign_in: &str, code: &str) -> Reply {
        self.frontend(
            device,
            &format!("/v1/client/sign_ins/{sign_in}/attempt_second_factor"),
            json!({ "strategy": "email_code", "code": code }),
        )
        .await
    }

    /// Signs in on `device` through the Frontend API, completing an email
    /// code step from the outbox; the session id, or why not.
    pub async fn sign_in(&self, device: &mut Device, email: &str, password: &str) -> Result<String, String> {
        let reply = self.start_sign_in(device, email, password).await;
        let mut attempt = reply.json()["response"].clone();
        if reply.status != 200 {
            return Err(format!(
                "sign-in answered {}:\n{}",
                reply.status, reply.transcript
            ));
        }
        if attempt["status"] != "complete" {
            let id = attempt["id"].as_str().unwrap_or_default().to_string();
            let prepared = self.prepare_code(device, &id).await;
            if prepared.status != 200 {
                return Err(format!(
                    "preparing the email code answered {}:\n{}",
                    prepared.status, prepared.transcript
                ));
            }
            let code = self
                .code_for(email, &id)
                .await
                .map_err(|e| e.to_string())?
                .ok_or_else(|| format!("no email code was sent for sign-in {id}"))?;
            let reply = self.attempt_code(device, &id, &code).await;
            if reply.status != 200 {
                return Err(format!(
                    "the email code answered {}:\n{}",
                    reply.status, reply.transcript
                ));
            }
            attempt = reply.json()["response"].clone();
        }
        match attempt["created_session_id"].as_str() {
            Some(sid) if attempt["status"] == "complete" => Ok(sid.to_string()),
            _ => Err(format!("sign-in stopped at {}", attempt["status"])),
        }
    }

    /// setActive on session `sid` (`org` None: the personal account).
    pub async fn touch(&self, device: &mut Device, sid: &str, org: Option<&str>) -> Reply {
        self.frontend(
            device,
            &format!("/v1/client/sessions/{sid}/touch"),
            json!({ "active_organization_id": org }),
        )
        .await
    }

    /// A session token for `sid` from the Frontend API.
    pub async fn token(&self, device: &mut Device, sid: &str) -> Reply {
        let reply = self
            .frontend(device, &format!("/v1/client/sessions/{sid}/tokens"), json!({}))
            .await;
        if let Some(jwt) = jwt_of(&reply) {
            self.client.register_secret(&jwt);
        }
        reply
    }

    /// A template token for `sid` from the Frontend API.
    pub async fn template_token(&self, device: &mut Device, sid: &str, name: &str) -> Reply {
        let reply = self
            .frontend(
                device,
                &format!("/v1/client/sessions/{sid}/tokens/{name}"),
                json!({}),
            )
            .await;
        if let Some(jwt) = jwt_of(&reply) {
            self.client.register_secret(&jwt);
        }
        reply
    }
}
