//! Session source `clerk-api`: the harness gets real session tokens from a
//! Clerk-compatible identity service (such as the reference server's) the
//! way an app's users do — users, orgs and memberships through the Backend
//! API with the secret key; sign-in through the Frontend API with a device
//! cookie, completing an email-code step through the test outbox
//! (`GET /v1/testing/outbox`) when the service asks for one; setActive; tokens.

use serde_json::{json, Value};

use crate::client::{Client, Reply, Request};

use super::SessionError;

fn fail(step: &'static str, reply: &Reply) -> SessionError {
    SessionError {
        step,
        detail: format!(
            "HTTP {}: {}",
            reply.status,
            String::from_utf8_lossy(&reply.body)
                .chars()
                .take(300)
                .collect::<String>()
        ),
    }
}

/// A signed-in device.
#[derive(Debug, Clone)]
pub struct Session {
    /// The user.
    pub user_id: String,
    /// The session.
    pub session_id: String,
    /// The `__client=…` cookie pair of the device.
    pub client_cookie: String,
}

/// A Clerk-compatible identity service.
#[derive(Debug, Clone)]
pub struct ClerkApi {
    client: Client,
    secret_key: String,
    origin: Option<String>,
}

impl ClerkApi {
    /// The service behind `client`, with its Backend API `secret_key`; tokens
    /// are requested with `Origin: origin` (their `azp`).
    pub fn new(client: Client, secret_key: &str, origin: Option<&str>) -> Self {
        client.register_secret(secret_key);
        Self {
            client,
            secret_key: secret_key.into(),
            origin: origin.map(String::from),
        }
    }

    async fn backend(
        &self,
        step: &'static str,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, SessionError> {
        let mut request = Request::new(method, path).bearer(&self.secret_key);
        if let Some(body) = body {
            request = request.json(body);
        }
        let reply = self.client.send(request).await;
        if reply.status != 200 {
            return Err(fail(step, &reply));
        }
        Ok(reply.json())
    }

    async fn frontend(
        &self,
        step: &'static str,
        cookie: &mut String,
        path: &str,
        body: Value,
    ) -> Result<Value, SessionError> {
        let origin = self.origin.clone();
        self.frontend_as(step, cookie, path, body, origin.as_deref())
            .await
    }

    /// A Frontend API call from a browser at `origin`.
    async fn frontend_as(
        &self,
        step: &'static str,
        cookie: &mut String,
        path: &str,
        body: Value,
        origin: Option<&str>,
    ) -> Result<Value, SessionError> {
        let mut request = Request::new("POST", path).json(body);
        if !cookie.is_empty() {
            request = request.header("cookie", cookie.clone());
        }
        if let Some(origin) = origin {
            request = request.header("origin", origin);
        }
        let reply = self.client.send(request).await;
        if let Some(set) = reply.header("set-cookie") {
            if let Some(pair) = set.split(';').next().filter(|p| p.starts_with("__client=")) {
                *cookie = pair.to_string();
                self.client.register_secret(pair.trim_start_matches("__client="));
            }
        }
        if reply.status != 200 {
            return Err(fail(step, &reply));
        }
        Ok(reply.json())
    }

    /// Creates a user with a password; returns its id.
    pub async fn create_user(&self, email: &str, password: &str) -> Result<String, SessionError> {
        let user = self
            .backend(
                "create user",
                "POST",
                "/v1/users",
                Some(json!({ "email_address": [email], "password": password })),
            )
            .await?;
        user["id"].as_str().map(String::from).ok_or(SessionError {
            step: "create user",
            detail: "no id in the answer".into(),
        })
    }

    /// Creates an org (its creator becomes admin); returns (id, slug).
    pub async fn create_org(&self, name: &str, creator: &str) -> Result<(String, String), SessionError> {
        let org = self
            .backend(
                "create organization",
                "POST",
                "/v1/organizations",
                Some(json!({ "name": name, "created_by": creator })),
            )
            .await?;
        match (org["id"].as_str(), org["slug"].as_str()) {
            (Some(id), Some(slug)) => Ok((id.into(), slug.into())),
            _ => Err(SessionError {
                step: "create organization",
                detail: "no id or slug in the answer".into(),
            }),
        }
    }

    /// Adds `user` to `org` with `role`.
    pub async fn add_member(&self, org: &str, user: &str, role: &str) -> Result<(), SessionError> {
        self.backend(
            "add member",
            "POST",
            &format!("/v1/organizations/{org}/memberships"),
            Some(json!({ "user_id": user, "role": role })),
        )
        .await
        .map(|_| ())
    }

    /// Changes `user`'s role in `org`.
    pub async fn set_role(&self, org: &str, user: &str, role: &str) -> Result<(), SessionError> {
        self.backend(
            "change role",
            "PATCH",
            &format!("/v1/organizations/{org}/memberships/{user}"),
            Some(json!({ "role": role })),
        )
        .await
        .map(|_| ())
    }

    /// Removes `user` from `org`.
    pub async fn remove_member(&self, org: &str, user: &str) -> Result<(), SessionError> {
        self.backend(
            "remove member",
            "DELETE",
            &format!("/v1/organizations/{org}/memberships/{user}"),
            None,
        )
        .await
        .map(|_| ())
    }

    /// Signs `email` in on a fresh device, completing an email-code step
    /// from the test outbox if asked.
    pub async fn sign_in(&self, email: &str, password: &str) -> Result<Session, SessionError> {
        let mut cookie = String::new();
        let answer = self
            .frontend(
                "sign in",
                &mut cookie,
                "/v1/client/sign_ins",
                json!({ "identifier": email, "password": password }),
            )
            .await?;
        let mut attempt = answer["response"].clone();
        let id = attempt["id"].as_str().unwrap_or_default().to_string();
        if matches!(
            attempt["status"].as_str(),
            Some("needs_client_trust" | "needs_second_factor")
        ) {
            self.frontend(
                "prepare email code",
                &mut cookie,
                &format!("/v1/client/sign_ins/{id}/prepare_second_factor"),
                json!({ "strategy": "email_code" }),
            )
            .await?;
            let outbox = self
                .backend(
                    "read the test outbox",
                    "GET",
                    &format!("/v1/testing/outbox?email_address={email}"),
                    None,
                )
                .await?;
            let code = outbox["data"]
                .as_array()
                .and_then(|d| d.iter().find(|m| m["sign_in_id"] == id.as_str()))
                .and_then(|m| m["code"].as_str())
                .ok_or(SessionError {
                    step: "read the test outbox",
                    detail: "no code for this sign-in".into(),
                })?
                .to_string();
            let answer = self
                .frontend(
                    "email code",
                    &mut cookie,
                    &format!("/v1/client/sign_ins/{id}/attempt_second_factor"),
                    json!({ "strategy": "email_code", "code": code }),
                )
                .await?;
            attempt = answer["response"].clone();
        }
        if attempt["status"] != "complete" {
            return Err(SessionError {
                step: "sign in",
                detail: format!("stopped at {}", attempt["status"]),
            });
        }
        let session_id = attempt["created_session_id"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let user = self
            .backend("read session", "GET", &format!("/v1/sessions/{session_id}"), None)
            .await?;
        Ok(Session {
            user_id: user["user_id"].as_str().unwrap_or_default().to_string(),
            session_id,
            client_cookie: cookie,
        })
    }

    /// setActive: `org` (None: the personal account).
    pub async fn set_active(&self, session: &Session, org: Option<&str>) -> Result<(), SessionError> {
        let mut cookie = session.client_cookie.clone();
        self.frontend(
            "set active organization",
            &mut cookie,
            &format!("/v1/client/sessions/{}/touch", session.session_id),
            json!({ "active_organization_id": org }),
        )
        .await
        .map(|_| ())
    }

    /// A fresh session token.
    pub async fn token(&self, session: &Session) -> Result<String, SessionError> {
        let mut cookie = session.client_cookie.clone();
        let answer = self
            .frontend(
                "session token",
                &mut cookie,
                &format!("/v1/client/sessions/{}/tokens", session.session_id),
                json!({}),
            )
            .await?;
        let jwt = answer["jwt"].as_str().unwrap_or_default().to_string();
        self.client.register_secret(&jwt);
        Ok(jwt)
    }

    /// A session token from the Backend API (secret key): it carries no
    /// `azp`, since no browser origin asked for it.
    pub async fn backend_token(&self, session: &Session) -> Result<String, SessionError> {
        let answer = self
            .backend(
                "backend session token",
                "POST",
                &format!("/v1/sessions/{}/tokens", session.session_id),
                Some(json!({})),
            )
            .await?;
        self.issued(answer)
    }

    /// A session token requested by a browser at `origin` (its `azp`).
    pub async fn token_for_origin(&self, session: &Session, origin: &str) -> Result<String, SessionError> {
        let mut cookie = session.client_cookie.clone();
        let answer = self
            .frontend_as(
                "session token for another origin",
                &mut cookie,
                &format!("/v1/client/sessions/{}/tokens", session.session_id),
                json!({}),
                Some(origin),
            )
            .await?;
        self.issued(answer)
    }

    /// A token from JWT template `name` (Frontend API, as the app's origin).
    pub async fn template_token(&self, session: &Session, name: &str) -> Result<String, SessionError> {
        let mut cookie = session.client_cookie.clone();
        let answer = self
            .frontend(
                "template token",
                &mut cookie,
                &format!("/v1/client/sessions/{}/tokens/{name}", session.session_id),
                json!({}),
            )
            .await?;
        self.issued(answer)
    }

    /// Creates JWT template `name` with `claims` (Backend API).
    pub async fn create_template(&self, name: &str, claims: Value) -> Result<(), SessionError> {
        self.backend(
            "create jwt template",
            "POST",
            "/v1/jwt_templates",
            Some(json!({ "name": name, "claims": claims })),
        )
        .await
        .map(|_| ())
    }

    fn issued(&self, answer: Value) -> Result<String, SessionError> {
        let jwt = answer["jwt"].as_str().unwrap_or_default().to_string();
        if jwt.is_empty() {
            return Err(SessionError::new("token", "no jwt in the answer"));
        }
        self.client.register_secret(&jwt);
        Ok(jwt)
    }
}
