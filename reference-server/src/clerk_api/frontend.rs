//! The Frontend API (`/v1/client`), what a browser's Clerk SDK talks to. The
//! device is the client, named by the `__client` cookie (HttpOnly; its value
//! is stored only hashed); every sign-in attempt and session belongs to one
//! client, and another client's ids are "not found".
//!
//! Responses are `{"response": …, "client": …}` as in Clerk. Session tokens
//! carry `azp` = the request's `Origin`, if it sent one.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use http::HeaderMap;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{resources, Body, ClerkError};
use crate::identity::service::Identity;
use crate::identity::store::SignIn;

/// The cookie naming the client (device).
pub const CLIENT_COOKIE: &str = "__client";

/// The Frontend API routes (every path starts `/v1/client`).
pub fn routes(identity: Arc<Identity>) -> Router {
    Router::new()
        .route("/v1/client", get(get_client).post(create_client))
        .route("/v1/client/sign_ins", post(create_sign_in))
        .route("/v1/client/sign_ins/{id}", get(get_sign_in).patch(update_sign_in))
        .route(
            "/v1/client/sign_ins/{id}/attempt_first_factor",
            post(attempt_first_factor),
        )
        .route(
            "/v1/client/sign_ins/{id}/prepare_second_factor",
            post(prepare_second_factor),
        )
        .route(
            "/v1/client/sign_ins/{id}/attempt_second_factor",
            post(attempt_second_factor),
        )
        .route("/v1/client/sessions/{sid}/touch", post(touch))
        .route("/v1/client/sessions/{sid}/tokens", post(session_token))
        .route(
            "/v1/client/sessions/{sid}/tokens/{template}",
            post(template_token),
        )
        .route("/v1/client/sessions/{sid}/end", post(end_session))
        .with_state(identity)
}

/// The value of cookie `name`, if sent exactly once.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    let mut found = None;
    for value in headers.get_all(http::header::COOKIE) {
        let Ok(value) = value.to_str() else { continue };
        for pair in value.split(';') {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            if k.trim() == name {
                if found.is_some() {
                    return None;
                }
                found = Some(v.trim().to_string());
            }
        }
    }
    found
}

/// The device a request comes from, if its `__client` cookie names one.
pub async fn current_client(identity: &Identity, headers: &HeaderMap) -> Result<Option<String>, ClerkError> {
    match cookie(headers, CLIENT_COOKIE) {
        Some(token) => Ok(identity.client_for_token(&token).await?),
        None => Ok(None),
    }
}

/// The device a request comes from, creating one (and the cookie to set) if
/// it has none.
pub async fn client_or_new(
    identity: &Identity,
    headers: &HeaderMap,
) -> Result<(String, Option<String>), ClerkError> {
    if let Some(id) = current_client(identity, headers).await? {
        return Ok((id, None));
    }
    let (id, token) = identity.new_client().await?;
    let cookie = format!("{CLIENT_COOKIE}={token}; Path=/; HttpOnly; SameSite=Lax; Max-Age=31536000");
    Ok((id, Some(cookie)))
}

async fn require_client(identity: &Identity, headers: &HeaderMap) -> Result<String, ClerkError> {
    current_client(identity, headers).await?.ok_or_else(|| {
        ClerkError::unauthorized("No client: this device has no __client cookie, or an unknown one.")
    })
}

/// The `Origin` header, as the token's authorized party.
pub fn origin(headers: &HeaderMap) -> Option<String> {
    headers
        .get(http::header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .filter(|o| !o.is_empty() && *o != "null" && o.len() <= 512)
        .map(String::from)
}

/// `{"response": …, "client": …}`, with a `Set-Cookie` for a new client.
async fn envelope(
    identity: &Identity,
    client_id: &str,
    response: Value,
    sign_in: Option<&SignIn>,
    set_cookie: Option<String>,
) -> Result<Response, ClerkError> {
    let sessions = identity.store().client_sessions(client_id).await?;
    let body = json!({
        "response": response,
        "client": resources::client(client_id, &sessions, sign_in),
    });
    let mut response = Json(body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-store"),
    );
    if let Some(cookie) = set_cookie.and_then(|c| http::HeaderValue::from_str(&c).ok()) {
        headers.insert(http::header::SET_COOKIE, cookie);
    }
    Ok(response)
}

/// The envelope of a sign-in step: the attempt as the response, and in the client.
async fn sign_in_envelope(
    identity: &Identity,
    client_id: &str,
    attempt: &SignIn,
    set_cookie: Option<String>,
) -> Result<Response, ClerkError> {
    envelope(
        identity,
        client_id,
        resources::sign_in(attempt),
        Some(attempt),
        set_cookie,
    )
    .await
}

async fn get_client(
    State(identity): State<Arc<Identity>>,
    headers: HeaderMap,
) -> Result<Response, ClerkError> {
    match current_client(&identity, &headers).await? {
        Some(id) => {
            let sessions = identity.store().client_sessions(&id).await?;
            let client = resources::client(&id, &sessions, None);
            Ok(Json(json!({ "response": client, "client": client })).into_response())
        }
        None => Ok(Json(json!({ "response": null, "client": null })).into_response()),
    }
}

async fn create_client(
    State(identity): State<Arc<Identity>>,
    headers: HeaderMap,
) -> Result<Response, ClerkError> {
    let (id, cookie) = client_or_new(&identity, &headers).await?;
    let sessions = identity.store().client_sessions(&id).await?;
    let client = resources::client(&id, &sessions, None);
    envelope(&identity, &id, client, None, cookie).await
}

#[derive(Debug, Deserialize)]
struct SignInBody {
    identifier: Option<String>,
    password: Option<String>,
    strategy: Option<String>,
}

async fn create_sign_in(
    State(identity): State<Arc<Identity>>,
    headers: HeaderMap,
    Body(body): Body<SignInBody>,
) -> Result<Response, ClerkError> {
    if let Some(strategy) = body.strategy.as_deref().filter(|s| *s != "password") {
        return Err(ClerkError::invalid(
            "strategy",
            format!("strategy `{strategy}` is not supported; use password"),
        ));
    }
    let (client_id, cookie) = client_or_new(&identity, &headers).await?;
    let attempt = identity
        .start_sign_in(&client_id, body.identifier.as_deref(), body.password)
        .await?;
    sign_in_envelope(&identity, &client_id, &attempt, cookie).await
}

async fn get_sign_in(
    State(identity): State<Arc<Identity>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ClerkError> {
    let client_id = require_client(&identity, &headers).await?;
    let attempt = identity.attempt(&id, &client_id).await?;
    sign_in_envelope(&identity, &client_id, &attempt, None).await
}

#[derive(Debug, Deserialize)]
struct IdentifierBody {
    identifier: Option<String>,
}

async fn update_sign_in(
    State(identity): State<Arc<Identity>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Body(body): Body<IdentifierBody>,
) -> Result<Response, ClerkError> {
    let client_id = require_client(&identity, &headers).await?;
    let identifier = body.identifier.ok_or_else(|| ClerkError::missing("identifier"))?;
    let attempt = identity.identify(&id, &client_id, &identifier).await?;
    sign_in_envelope(&identity, &client_id, &attempt, None).await
}

#[derive(Debug, Deserialize)]
struct FactorBody {
    strategy: Option<String>,
    password: Option<String>,
    code: Option<String>,
}

async fn attempt_first_factor(
    State(identity): State<Arc<Identity>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Body(body): Body<FactorBody>,
) -> Result<Response, ClerkError> {
    let client_id = require_client(&identity, &headers).await?;
    match body.strategy.as_deref() {
        Some("password") => {}
        Some(_) => {
            return Err(ClerkError::invalid(
                "strategy",
                "only the password strategy is supported",
            ))
        }
        None => return Err(ClerkError::missing("strategy")),
    }
    let password = body.password.ok_or_else(|| ClerkError::missing("password"))?;
    let attempt = identity.attempt_password(&id, &client_id, password).await?;
    sign_in_envelope(&identity, &client_id, &attempt, None).await
}

fn email_code_strategy(strategy: Option<&str>) -> Result<(), ClerkError> {
    match strategy {
        Some("email_code") => Ok(()),
        Some(_) => Err(ClerkError::invalid(
            "strategy",
            "only the email_code strategy is supported",
        )),
        None => Err(ClerkError::missing("strategy")),
    }
}

async fn prepare_second_factor(
    State(identity): State<Arc<Identity>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Body(body): Body<FactorBody>,
) -> Result<Response, ClerkError> {
    let client_id = require_client(&identity, &headers).await?;
    email_code_strategy(body.strategy.as_deref())?;
    let attempt = identity.prepare_email_code(&id, &client_id).await?;
    sign_in_envelope(&identity, &client_id, &attempt, None).await
}

async fn attempt_second_factor(
    State(identity): State<Arc<Identity>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Body(body): Body<FactorBody>,
) -> Result<Response, ClerkError> {
    let client_id = require_client(&identity, &headers).await?;
    email_code_strategy(body.strategy.as_deref())?;
    let code = body.code.ok_or_else(|| ClerkError::missing("code"))?;
    let attempt = identity.attempt_email_code(&id, &client_id, &code).await?;
    sign_in_envelope(&identity, &client_id, &attempt, None).await
}

/// setActive. `active_organization_id`: absent leaves it, null or `""`
/// clears it (personal account), an id or slug must be an org of the user.
async fn touch(
    State(identity): State<Arc<Identity>>,
    headers: HeaderMap,
    Path(sid): Path<String>,
    Body(body): Body<serde_json::Map<String, Value>>,
) -> Result<Response, ClerkError> {
    let client_id = require_client(&identity, &headers).await?;
    let session = match body.get("active_organization_id") {
        None => identity.active_session(&sid, Some(&client_id)).await?,
        Some(Value::Null) => {
            identity
                .set_active_organization(&sid, Some(&client_id), None)
                .await?
        }
        Some(Value::String(s)) if s.is_empty() => {
            identity
                .set_active_organization(&sid, Some(&client_id), None)
                .await?
        }
        Some(Value::String(org)) => {
            identity
                .set_active_organization(&sid, Some(&client_id), Some(org))
                .await?
        }
        Some(_) => {
            return Err(ClerkError::invalid(
                "active_organization_id",
                "expected an organization id, or null for the personal account",
            ))
        }
    };
    envelope(&identity, &client_id, resources::session(&session), None, None).await
}

async fn session_token(
    State(identity): State<Arc<Identity>>,
    headers: HeaderMap,
    Path(sid): Path<String>,
) -> Result<Response, ClerkError> {
    let client_id = require_client(&identity, &headers).await?;
    let token = identity
        .session_token(&sid, Some(&client_id), origin(&headers).as_deref())
        .await?;
    Ok(no_store(Json(resources::token(&token.jwt))))
}

async fn template_token(
    State(identity): State<Arc<Identity>>,
    headers: HeaderMap,
    Path((sid, template)): Path<(String, String)>,
) -> Result<Response, ClerkError> {
    let client_id = require_client(&identity, &headers).await?;
    let token = identity
        .template_token(&sid, Some(&client_id), origin(&headers).as_deref(), &template)
        .await?;
    Ok(no_store(Json(resources::token(&token.jwt))))
}

async fn end_session(
    State(identity): State<Arc<Identity>>,
    headers: HeaderMap,
    Path(sid): Path<String>,
) -> Result<Response, ClerkError> {
    let client_id = require_client(&identity, &headers).await?;
    let session = identity.active_session(&sid, Some(&client_id)).await?;
    let session = identity.store().end_session(&session.id, "ended").await?;
    envelope(&identity, &client_id, resources::session(&session), None, None).await
}

fn no_store(body: impl IntoResponse) -> Response {
    let mut response = body.into_response();
    response.headers_mut().insert(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-store"),
    );
    response
}
