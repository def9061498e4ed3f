//! The app's own auth handlers — what a product's backend writes on top of
//! the identity provider:
//! - the sign-in handler (`POST /auth/sign-in`, `POST /auth/sign-in/{id}/code`)
//!   handles every sign-in status explicitly: no user is stuck (each
//!   unfinished status answers with the next step, and sends the email code
//!   where one is needed), and none gets a session before the attempt is
//!   `complete`;
//! - the template-token helper (`GET /auth/token/{template}`, signed-in) asks
//!   for a JWT-template token and, if the template is missing or cannot be
//!   rendered, falls back to the session token: logged at WARN with the
//!   template name and counted in `tenantry_template_fallback_total`; the
//!   user never sees an error for it.
//!
//! Both use the same device cookie as the Frontend API.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use http::{HeaderMap, StatusCode};
use serde::Deserialize;
use serde_json::json;

use crate::api::extract::ApiJson;
use crate::clerk_api::frontend::client_or_new;
use crate::identity::service::{status_of, Identity, IdentityError, SignInStatus};
use crate::identity::store::SignIn;
use crate::metrics::Metrics;
use crate::problem::Problem;
use crate::tenant::SignedIn;

/// The handlers' state.
#[derive(Debug, Clone)]
pub struct AppAuth {
    /// The identity service.
    pub identity: Arc<Identity>,
    /// Counters.
    pub metrics: Arc<Metrics>,
    /// Injected flaws.
    #[cfg(feature = "inject")]
    pub flaws: crate::inject::Flaws,
}

/// Maps an identity refusal to the app's problem body.
fn problem(e: IdentityError) -> Problem {
    use IdentityError as E;
    match e {
        E::PasswordIncorrect => Problem::new(
            StatusCode::UNAUTHORIZED,
            "invalid_credentials",
            "Unauthorized",
            "the email address or password is incorrect",
        ),
        E::CodeIncorrect => Problem::new(
            StatusCode::UNAUTHORIZED,
            "invalid_code",
            "Unauthorized",
            "the code is incorrect",
        ),
        E::CodeExpired => Problem::new(
            StatusCode::BAD_REQUEST,
            "code_expired",
            "Bad Request",
            "the code expired or was already used; sign in again to get a new one",
        ),
        E::TooManyAttempts => Problem::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_attempts",
            "Too Many Requests",
            "too many failed attempts; start a new sign-in",
        ),
        E::WrongStatus(_) => Problem::new(
            StatusCode::CONFLICT,
            "sign_in_state",
            "Conflict",
            "this sign-in cannot take this step; start a new sign-in",
        ),
        E::UserLocked => Problem::forbidden("this account is locked"),
        E::NotFound(what) => Problem::not_found(what),
        E::Invalid { message, .. } => Problem::invalid(message),
        E::Taken(what) => Problem::new(
            StatusCode::CONFLICT,
            "taken",
            "Conflict",
            format!("{what} is taken"),
        ),
        E::SessionNotActive => Problem::unauthenticated(),
        E::Unavailable => Problem::unavailable(),
        E::Internal => Problem::internal(),
    }
}

/// The sign-in form.
#[derive(Debug, Deserialize)]
pub struct SignInForm {
    /// Email address.
    pub identifier: Option<String>,
    /// Password.
    pub password: Option<String>,
}

/// `POST /auth/sign-in`: identifier and password.
pub async fn sign_in(
    State(app): State<AppAuth>,
    headers: HeaderMap,
    ApiJson(form): ApiJson<SignInForm>,
) -> Result<Response, Problem> {
    let identifier = form
        .identifier
        .filter(|i| !i.trim().is_empty())
        .ok_or_else(|| Problem::invalid("identifier is required"))?;
    let password = form
        .password
        .filter(|p| !p.is_empty())
        .ok_or_else(|| Problem::invalid("password is required"))?;
    let (client_id, cookie) = client_or_new(&app.identity, &headers)
        .await
        .map_err(|_| Problem::unavailable())?;
    let attempt = app
        .identity
        .start_sign_in(&client_id, Some(&identifier), Some(password))
        .await
        .map_err(problem)?;
    let body = next_step(&app, &client_id, attempt).await?;
    let mut response = Json(body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-store"),
    );
    if let Some(cookie) = cookie.and_then(|c| http::HeaderValue::from_str(&c).ok()) {
        headers.insert(http::header::SET_COOKIE, cookie);
    }
    Ok(response)
}

/// The code form.
#[derive(Debug, Deserialize)]
pub struct CodeForm {
    /// The emailed code.
    pub code: Option<String>,
}

/// `POST /auth/sign-in/{id}/code`: the email code of a second-factor or
/// client-trust step.
pub async fn submit_code(
    State(app): State<AppAuth>,
    headers: HeaderMap,
    Path(id): Path<String>,
    ApiJson(form): ApiJson<CodeForm>,
) -> Result<Response, Problem> {
    let code = form
        .code
        .filter(|c| !c.trim().is_empty())
        .ok_or_else(|| Problem::invalid("code is required"))?;
    let client_id = crate::clerk_api::frontend::current_client(&app.identity, &headers)
        .await
        .map_err(|_| Problem::unavailable())?
        .ok_or_else(|| Problem::not_found("sign in"))?;
    let attempt = app.identity.attempt(&id, &client_id).await.map_err(problem)?;
    if flaw!(app.flaws, ClientTrustStuck) && status_of(&attempt) == SignInStatus::NeedsClientTrust {
        return Err(problem(IdentityError::WrongStatus("needs_client_trust")));
    }
    let attempt = app
        .identity
        .attempt_email_code(&id, &client_id, &code)
        .await
        .map_err(problem)?;
    let body = next_step(&app, &client_id, attempt).await?;
    Ok(([(http::header::CACHE_CONTROL, "no-store")], Json(body)).into_response())
}

/// What the client does next, for every status. A session id appears only
/// for a `complete` attempt.
async fn next_step(app: &AppAuth, client_id: &str, attempt: SignIn) -> Result<serde_json::Value, Problem> {
    let status = status_of(&attempt);
    match status {
        SignInStatus::Complete => {
            let session_id = attempt.created_session_id.ok_or_else(|| {
                tracing::error!(sign_in = %attempt.id, "complete sign-in without a session");
                Problem::internal()
            })?;
            Ok(json!({ "status": "complete", "session_id": session_id }))
        }
        SignInStatus::NeedsClientTrust if flaw!(app.flaws, ClientTrustAsComplete) => {
            // The mistake: "the password was right, so the user is in".
            let user_id = attempt.user_id.clone().ok_or_else(Problem::internal)?;
            let session = app
                .identity
                .store()
                .create_session(client_id, &user_id, app.identity.config().session_lifetime_secs)
                .await
                .map_err(|e| problem(e.into()))?;
            Ok(json!({ "status": "complete", "session_id": session.id }))
        }
        SignInStatus::NeedsClientTrust if flaw!(app.flaws, ClientTrustStuck) => {
            // The mistake: no branch for this status; nothing is sent.
            Ok(json!({ "status": "needs_client_trust", "sign_in_id": attempt.id }))
        }
        SignInStatus::NeedsSecondFactor | SignInStatus::NeedsClientTrust => {
            let attempt = app
                .identity
                .prepare_email_code(&attempt.id, client_id)
                .await
                .map_err(problem)?;
            Ok(json!({
                "status": status.as_str(),
                "sign_in_id": attempt.id,
                "next": "email_code",
                "code_endpoint": format!("/auth/sign-in/{}/code", attempt.id),
            }))
        }
        SignInStatus::NeedsFirstFactor | SignInStatus::NeedsIdentifier => {
            // This handler always sends identifier and password, so these
            // mean the attempt could not use them.
            Err(Problem::invalid("identifier and password are required"))
        }
        SignInStatus::Abandoned => Err(problem(IdentityError::TooManyAttempts)),
    }
}

/// `GET /auth/token/{template}` (signed-in): a template token for the
/// caller's session, or the session token if the template is unusable.
pub async fn template_token(
    State(app): State<AppAuth>,
    session: SignedIn,
    Path(template): Path<String>,
) -> Result<Response, Problem> {
    let azp = session.azp.as_deref();
    let result = app
        .identity
        .template_token(&session.session_id, None, azp, &template)
        .await;
    let (jwt, fallback) = match result {
        Ok(token) => (token.jwt, false),
        Err(e @ (IdentityError::NotFound("jwt template") | IdentityError::Invalid { .. })) => {
            if flaw!(app.flaws, TemplateFallback500) {
                tracing::error!(template = %template, error = %e, "template token failed");
                return Err(Problem::internal());
            }
            tracing::warn!(template = %template, reason = %e, "template token unavailable; falling back to the session token");
            app.metrics.template_fallback(&template);
            let token = app
                .identity
                .session_token(&session.session_id, None, azp)
                .await
                .map_err(problem)?;
            (token.jwt, true)
        }
        Err(e) => return Err(problem(e)),
    };
    Ok((
        [(http::header::CACHE_CONTROL, "no-store")],
        Json(json!({ "jwt": jwt, "template": template, "fallback": fallback })),
    )
        .into_response())
}

/// `GET /metrics`.
pub async fn metrics(State(app): State<AppAuth>) -> Response {
    (
        [(http::header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        app.metrics.render(),
    )
        .into_response()
}
