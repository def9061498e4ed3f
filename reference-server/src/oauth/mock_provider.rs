//! A mock OAuth 2.0 authorization server, served on its own routes as an
//! external provider would be (`/mock-oauth/{provider}/…`):
//! - `GET authorize`: checks the client id and the exact registered redirect
//!   URI (never redirects anywhere else), then "the user consents" and is
//!   sent back with a code bound to the client, the redirect URI and the PKCE
//!   challenge — or with `error=access_denied` when `decision=deny`;
//! - `POST token`: client authentication, exact redirect URI, PKCE S256
//!   (required when the code has a challenge; refused when it has none but a
//!   verifier is sent), single-use codes that live 60 s;
//! - `GET stats`: how many token requests it saw (so tests can tell whether
//!   a state was spent once or raced).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use http::StatusCode;
use serde::Deserialize;
use serde_json::json;

use super::with_query;

/// How long a code lives.
pub const CODE_TTL: Duration = Duration::from_secs(60);

/// A client registered with the mock provider.
#[derive(Debug, Clone)]
pub struct RegisteredClient {
    /// Client id.
    pub client_id: String,
    /// Client secret.
    pub client_secret: String,
    /// The one redirect URI allowed.
    pub redirect_uri: String,
}

#[derive(Debug)]
struct Grant {
    provider: String,
    client_id: String,
    redirect_uri: String,
    challenge: Option<String>,
    account: String,
    scope: String,
    expires: Instant,
}

/// The provider's state.
#[derive(Debug, Default)]
pub struct MockProvider {
    clients: HashMap<String, RegisteredClient>,
    codes: Mutex<HashMap<String, Grant>>,
    token_requests: Mutex<HashMap<String, Arc<AtomicU64>>>,
}

impl MockProvider {
    /// A provider knowing `clients` by provider name.
    pub fn new(clients: HashMap<String, RegisteredClient>) -> Self {
        Self {
            clients,
            ..Self::default()
        }
    }

    fn counter(&self, provider: &str) -> Arc<AtomicU64> {
        Arc::clone(
            self.token_requests
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .entry(provider.to_string())
                .or_default(),
        )
    }
}

/// The mock provider's routes.
pub fn routes(provider: Arc<MockProvider>) -> Router {
    Router::new()
        .route("/mock-oauth/{provider}/authorize", get(authorize))
        .route("/mock-oauth/{provider}/token", post(token))
        .route("/mock-oauth/{provider}/stats", get(stats))
        .with_state(provider)
}

/// The authorize request.
#[derive(Debug, Deserialize)]
pub struct AuthorizeQuery {
    response_type: Option<String>,
    client_id: Option<String>,
    redirect_uri: Option<String>,
    state: Option<String>,
    code_challenge: Option<String>,
    code_challenge_method: Option<String>,
    scope: Option<String>,
    /// `deny`: the user refuses.
    decision: Option<String>,
    /// The account the user "logs in" with (default `shop-1`).
    account: Option<String>,
}

fn page(status: StatusCode, message: &str) -> Response {
    (
        status,
        Json(json!({ "error": "invalid_request", "error_description": message })),
    )
        .into_response()
}

async fn authorize(
    State(mock): State<Arc<MockProvider>>,
    Path(provider): Path<String>,
    Query(q): Query<AuthorizeQuery>,
) -> Response {
    let Some(client) = mock.clients.get(&provider) else {
        return page(StatusCode::NOT_FOUND, "unknown provider");
    };
    if q.client_id.as_deref() != Some(&client.client_id) {
        return page(StatusCode::BAD_REQUEST, "unknown client_id");
    }
    // Exact match, or no redirect at all: the error page stays here.
    let Some(redirect_uri) = q.redirect_uri.filter(|r| *r == client.redirect_uri) else {
        return page(
            StatusCode::BAD_REQUEST,
            "redirect_uri is not registered for this client",
        );
    };
    let state = q.state.unwrap_or_default();
    if q.response_type.as_deref() != Some("code") {
        return Redirect::to(&with_query(
            &redirect_uri,
            &[("error", "unsupported_response_type"), ("state", &state)],
        ))
        .into_response();
    }
    if q.decision.as_deref() == Some("deny") {
        return Redirect::to(&with_query(
            &redirect_uri,
            &[("error", "access_denied"), ("state", &state)],
        ))
        .into_response();
    }
    let challenge = match (q.code_challenge, q.code_challenge_method.as_deref()) {
        (Some(c), Some("S256")) if c.len() == 43 => Some(c),
        (Some(_), _) => {
            return Redirect::to(&with_query(
                &redirect_uri,
                &[("error", "invalid_request"), ("state", &state)],
            ))
            .into_response()
        }
        (None, _) => None,
    };
    let code = super::state::new_state();
    mock.codes.lock().unwrap_or_else(|p| p.into_inner()).insert(
        code.clone(),
        Grant {
            provider: provider.clone(),
            client_id: client.client_id.clone(),
            redirect_uri: redirect_uri.clone(),
            challenge,
            account: q.account.unwrap_or_else(|| "shop-1".into()),
            scope: q.scope.unwrap_or_default(),
            expires: Instant::now() + CODE_TTL,
        },
    );
    Redirect::to(&with_query(&redirect_uri, &[("code", &code), ("state", &state)])).into_response()
}

/// The token request (form-encoded, RFC 6749 §4.1.3).
#[derive(Debug, Deserialize)]
pub struct TokenForm {
    grant_type: Option<String>,
    code: Option<String>,
    redirect_uri: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
    code_verifier: Option<String>,
}

fn oauth_error(status: StatusCode, error: &str) -> Response {
    (status, Json(json!({ "error": error }))).into_response()
}

/// BASE64URL(SHA256(verifier)), RFC 7636 S256.
pub fn s256(verifier: &str) -> String {
    use base64::Engine;
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, verifier.as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest.as_ref())
}

async fn token(
    State(mock): State<Arc<MockProvider>>,
    Path(provider): Path<String>,
    Form(form): Form<TokenForm>,
) -> Response {
    mock.counter(&provider).fetch_add(1, Ordering::Relaxed);
    let Some(client) = mock.clients.get(&provider) else {
        return oauth_error(StatusCode::NOT_FOUND, "invalid_request");
    };
    if form.client_id.as_deref() != Some(&client.client_id)
        || form.client_secret.as_deref() != Some(&client.client_secret)
    {
        return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client");
    }
    if form.grant_type.as_deref() != Some("authorization_code") {
        return oauth_error(StatusCode::BAD_REQUEST, "unsupported_grant_type");
    }
    // Single use: the code is gone whatever happens next.
    let grant = form
        .code
        .as_deref()
        .and_then(|code| mock.codes.lock().unwrap_or_else(|p| p.into_inner()).remove(code));
    let Some(grant) = grant else {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant");
    };
    let pkce_ok = match (&grant.challenge, &form.code_verifier) {
        (Some(challenge), Some(verifier)) => s256(verifier) == *challenge,
        (None, None) => true,
        _ => false,
    };
    if grant.provider != provider
        || grant.client_id != client.client_id
        || form.redirect_uri.as_deref() != Some(grant.redirect_uri.as_str())
        || grant.expires <= Instant::now()
        || !pkce_ok
    {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant");
    }
    let token = super::state::new_state();
    Json(json!({
        "access_token": format!("at_{token}"),
        "refresh_token": format!("rt_{}", super::state::new_state()),
        "token_type": "bearer",
        "expires_in": 3600,
        "scope": grant.scope,
        "account": grant.account,
    }))
    .into_response()
}

async fn stats(
    State(mock): State<Arc<MockProvider>>,
    Path(provider): Path<String>,
) -> Json<serde_json::Value> {
    Json(json!({ "token_requests": mock.counter(&provider).load(Ordering::Relaxed) }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s256_is_base64url_sha256_without_padding() {
        // Computed independently: python3 -c "import hashlib,base64;
        // print(base64.urlsafe_b64encode(hashlib.sha256(b'...').digest()).rstrip(b'='))"
        assert_eq!(
            s256("dBjftJeZ4CVP-mJ92K9bZe7qMWZeoU3aQ8DAVbZZoF0"),
            "DkM-YsIr_wZIhWcl7DbAkTE1lyUDLlkybHVQrmBrrHY"
        );
        assert_eq!(s256("").len(), 43);
    }
}
