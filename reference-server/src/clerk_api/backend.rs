//! The Backend API (`/v1`), for servers holding the secret key
//! (`Authorization: Bearer sk_test_…`): users, organizations, memberships,
//! sessions and their tokens, JWT templates, roles, the JWKS, and the test
//! outbox.
//!
//! Where it differs from Clerk's (documented in the crate README): lists of
//! users and JWT templates are plain arrays as in Clerk, organizations and
//! memberships are `{data, total_count}`; `POST /v1/organization_roles`,
//! `POST /v1/instance/signing_keys/rotate` and `GET /v1/testing/outbox` are
//! tenantry extensions; tokens minted here carry
//! no `azp` (no browser origin asked for them).

use std::sync::Arc;

use axum::extract::{Path, Query, RawQuery, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::{resources, Body, ClerkError, Paging};
use crate::identity::service::Identity;
use crate::identity::store::{NewOrganization, NewUser};
use crate::identity::template::Template;

type ApiResult = Result<Json<Value>, ClerkError>;

/// The Backend API's state.
#[derive(Debug, Clone)]
pub struct BackendState {
    identity: Arc<Identity>,
    secret_key: Option<Arc<str>>,
    rate_limit: Option<Arc<RateLimitView>>,
}

/// The Backend API routes (nest at the root; every path starts `/v1/`).
/// What the rate-limit admin endpoint shows.
#[derive(Debug)]
pub struct RateLimitView {
    /// The limiter (its store and live bypass list).
    pub limiter: Arc<crate::ratelimit::Limiter>,
    /// The effective policies.
    pub policies: Vec<crate::ratelimit::Policy>,
}

/// The Backend API routes (every path starts `/v1/`); `rate_limit` adds the
/// admin view `GET /v1/instance/rate_limit`.
pub fn routes(identity: Arc<Identity>, rate_limit: Option<Arc<RateLimitView>>) -> Router {
    let secret_key = identity.config().secret_key.clone().map(Arc::from);
    if secret_key.is_none() {
        tracing::warn!("identity.secret_key is not set: the Backend API refuses every request");
    }
    let state = BackendState {
        identity,
        secret_key,
        rate_limit,
    };
    Router::new()
        .route("/v1/users", get(list_users).post(create_user))
        .route("/v1/users/count", get(count_users))
        .route("/v1/users/{user_id}", get(get_user).delete(delete_user))
        .route("/v1/users/{user_id}/ban", post(ban_user))
        .route("/v1/users/{user_id}/unban", post(unban_user))
        .route(
            "/v1/organizations",
            get(list_organizations).post(create_organization),
        )
        .route(
            "/v1/organizations/{org}",
            get(get_organization).delete(delete_organization),
        )
        .route(
            "/v1/organizations/{org}/memberships",
            get(list_memberships).post(create_membership),
        )
        .route(
            "/v1/organizations/{org}/memberships/{user_id}",
            axum::routing::patch(update_membership).delete(delete_membership),
        )
        .route("/v1/organization_roles", post(put_role))
        .route("/v1/sessions", get(list_sessions).post(create_session))
        .route("/v1/sessions/{sid}", get(get_session))
        .route("/v1/sessions/{sid}/revoke", post(revoke_session))
        .route("/v1/sessions/{sid}/tokens", post(session_token))
        .route("/v1/sessions/{sid}/tokens/{template}", post(template_token))
        .route("/v1/jwt_templates", get(list_templates).post(create_template))
        .route(
            "/v1/jwt_templates/{id}",
            get(get_template).patch(update_template).delete(delete_template),
        )
        .route("/v1/testing/outbox", get(outbox))
        .route("/v1/instance/signing_keys/rotate", post(rotate_keys))
        .route("/v1/instance/rate_limit", get(rate_limit_view))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            secret_key_auth,
        ))
        .route("/v1/jwks", get(jwks))
        .with_state(state)
}

/// Refuses any request without the exact secret key (compared in constant time).
async fn secret_key_auth(State(state): State<BackendState>, request: Request, next: Next) -> Response {
    let presented = request
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let ok = match (&state.secret_key, presented) {
        (Some(key), Some(presented)) => {
            aws_lc_rs::constant_time::verify_slices_are_equal(key.as_bytes(), presented.as_bytes()).is_ok()
        }
        _ => false,
    };
    if !ok {
        tracing::info!(path = %request.uri().path(), "backend API request refused: bad or missing secret key");
        return ClerkError::unauthorized("The secret key in the Authorization header is missing or invalid.")
            .into_response();
    }
    next.run(request).await
}

async fn jwks(State(state): State<BackendState>) -> Json<Value> {
    Json(state.identity.keys().jwks())
}

// --- users ---

#[derive(Debug, Deserialize)]
struct CreateUser {
    #[serde(default)]
    email_address: OneOrMany,
    password: Option<String>,
    first_name: Option<String>,
    last_name: Option<String>,
    public_metadata: Option<Value>,
    private_metadata: Option<Value>,
    unsafe_metadata: Option<Value>,
    /// tenantry extension: require an email-code second factor at sign-in.
    #[serde(default)]
    two_factor_enabled: bool,
}

/// A string or a list of strings (Clerk takes `email_address` as a list).
#[derive(Debug, Default, Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    #[default]
    None,
    One(String),
    Many(Vec<String>),
}

async fn create_user(State(state): State<BackendState>, Body(body): Body<CreateUser>) -> ApiResult {
    let email = match body.email_address {
        OneOrMany::One(e) => e,
        OneOrMany::Many(list) if list.len() == 1 => list.into_iter().next().unwrap_or_default(),
        OneOrMany::Many(list) if list.len() > 1 => {
            return Err(ClerkError::invalid(
                "email_address",
                "this server keeps one email address per user",
            ))
        }
        _ => return Err(ClerkError::missing("email_address")),
    };
    let new = NewUser {
        email,
        first_name: body.first_name,
        last_name: body.last_name,
        public_metadata: body.public_metadata,
        private_metadata: body.private_metadata,
        unsafe_metadata: body.unsafe_metadata,
        two_factor_enabled: body.two_factor_enabled,
        password_hash: None,
    };
    let user = state.identity.create_user(new, body.password).await?;
    tracing::info!(user = %user.id, "user created");
    Ok(Json(resources::user(&user)))
}

/// `limit`, `offset` and repeated `email_address` from a raw query string.
fn user_query(raw: Option<&str>) -> Result<(Paging, Vec<String>), ClerkError> {
    let mut paging = Paging::default();
    let mut emails = Vec::new();
    for pair in raw.unwrap_or_default().split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let v = percent_encoding::percent_decode_str(&v.replace('+', " "))
            .decode_utf8_lossy()
            .into_owned();
        match k {
            "limit" => {
                paging.limit = v
                    .parse()
                    .map_err(|_| ClerkError::invalid("limit", "expected an integer"))?
            }
            "offset" => {
                paging.offset = v
                    .parse()
                    .map_err(|_| ClerkError::invalid("offset", "expected an integer"))?
            }
            "email_address" | "email_address%5B%5D" | "email_address[]" => emails.push(v),
            _ => {}
        }
    }
    Ok((paging.checked()?, emails))
}

async fn list_users(State(state): State<BackendState>, RawQuery(raw): RawQuery) -> ApiResult {
    let (paging, emails) = user_query(raw.as_deref())?;
    let users = state
        .identity
        .store()
        .users(&emails, paging.limit, paging.offset)
        .await?;
    Ok(Json(Value::Array(users.iter().map(resources::user).collect())))
}

async fn count_users(State(state): State<BackendState>, RawQuery(raw): RawQuery) -> ApiResult {
    let (_, emails) = user_query(raw.as_deref())?;
    let n = state.identity.store().count_users(&emails).await?;
    Ok(Json(json!({ "object": "total_count", "total_count": n })))
}

async fn get_user(State(state): State<BackendState>, Path(user_id): Path<String>) -> ApiResult {
    let user = state
        .identity
        .store()
        .user(&user_id)
        .await?
        .ok_or_else(|| ClerkError::not_found("user"))?;
    Ok(Json(resources::user(&user)))
}

async fn delete_user(State(state): State<BackendState>, Path(user_id): Path<String>) -> ApiResult {
    state.identity.store().delete_user(&user_id).await?;
    tracing::info!(user = %user_id, "user deleted");
    Ok(Json(resources::deleted("user", &user_id)))
}

async fn ban_user(State(state): State<BackendState>, Path(user_id): Path<String>) -> ApiResult {
    set_banned(state, user_id, true).await
}

async fn unban_user(State(state): State<BackendState>, Path(user_id): Path<String>) -> ApiResult {
    set_banned(state, user_id, false).await
}

async fn set_banned(state: BackendState, user_id: String, banned: bool) -> ApiResult {
    let user = state.identity.store().set_banned(&user_id, banned).await?;
    tracing::info!(user = %user.id, banned, "user ban changed");
    Ok(Json(resources::user(&user)))
}

// --- organizations ---

#[derive(Debug, Deserialize)]
struct CreateOrganization {
    name: Option<String>,
    slug: Option<String>,
    created_by: Option<String>,
    public_metadata: Option<Value>,
    private_metadata: Option<Value>,
    max_allowed_memberships: Option<i32>,
}

async fn create_organization(
    State(state): State<BackendState>,
    Body(body): Body<CreateOrganization>,
) -> ApiResult {
    let name = body
        .name
        .map(|n| n.trim().to_string())
        .filter(|n| !n.is_empty())
        .ok_or_else(|| ClerkError::missing("name"))?;
    if name.chars().count() > 256 {
        return Err(ClerkError::invalid("name", "name must be at most 256 characters"));
    }
    for (param, value) in [
        ("public_metadata", &body.public_metadata),
        ("private_metadata", &body.private_metadata),
    ] {
        if value.as_ref().is_some_and(|v| !v.is_object()) {
            return Err(ClerkError::invalid(param, "expected a JSON object"));
        }
    }
    if body.max_allowed_memberships.is_some_and(|m| m < 0) {
        return Err(ClerkError::invalid(
            "max_allowed_memberships",
            "expected 0 (unlimited) or more",
        ));
    }
    let org = state
        .identity
        .store()
        .create_organization(NewOrganization {
            name,
            slug: body.slug,
            created_by: body.created_by,
            public_metadata: body.public_metadata,
            private_metadata: body.private_metadata,
            max_allowed_memberships: body.max_allowed_memberships,
        })
        .await?;
    tracing::info!(org = %org.id, "organization created");
    Ok(Json(resources::organization(&org, true)))
}

async fn list_organizations(State(state): State<BackendState>, Query(paging): Query<Paging>) -> ApiResult {
    let paging = paging.checked()?;
    let (orgs, total) = state
        .identity
        .store()
        .organizations(paging.limit, paging.offset)
        .await?;
    Ok(Json(json!({
        "data": orgs.iter().map(|o| resources::organization(o, true)).collect::<Vec<_>>(),
        "total_count": total,
    })))
}

async fn get_organization(State(state): State<BackendState>, Path(org): Path<String>) -> ApiResult {
    let org = state
        .identity
        .store()
        .organization(&org)
        .await?
        .ok_or_else(|| ClerkError::not_found("organization"))?;
    Ok(Json(resources::organization(&org, true)))
}

async fn delete_organization(State(state): State<BackendState>, Path(org): Path<String>) -> ApiResult {
    state.identity.store().delete_organization(&org).await?;
    tracing::info!(org = %org, "organization deleted");
    Ok(Json(resources::deleted("organization", &org)))
}

// --- memberships ---

#[derive(Debug, Deserialize)]
struct MembershipBody {
    user_id: Option<String>,
    role: Option<String>,
}

async fn create_membership(
    State(state): State<BackendState>,
    Path(org): Path<String>,
    Body(body): Body<MembershipBody>,
) -> ApiResult {
    let user_id = body.user_id.ok_or_else(|| ClerkError::missing("user_id"))?;
    let role = body.role.ok_or_else(|| ClerkError::missing("role"))?;
    let m = state
        .identity
        .store()
        .create_membership(&org, &user_id, &role)
        .await?;
    tracing::info!(org = %m.organization.id, user = %user_id, role = %m.role, "membership created");
    Ok(Json(resources::membership(&m, true)))
}

async fn update_membership(
    State(state): State<BackendState>,
    Path((org, user_id)): Path<(String, String)>,
    Body(body): Body<MembershipBody>,
) -> ApiResult {
    let role = body.role.ok_or_else(|| ClerkError::missing("role"))?;
    let m = state
        .identity
        .store()
        .update_membership_role(&org, &user_id, &role)
        .await?;
    tracing::info!(org = %org, user = %user_id, role = %m.role, "membership role changed");
    Ok(Json(resources::membership(&m, true)))
}

async fn delete_membership(
    State(state): State<BackendState>,
    Path((org, user_id)): Path<(String, String)>,
) -> ApiResult {
    let m = state.identity.store().delete_membership(&org, &user_id).await?;
    tracing::info!(org = %org, user = %user_id, "membership removed");
    Ok(Json(resources::membership(&m, true)))
}

async fn list_memberships(
    State(state): State<BackendState>,
    Path(org): Path<String>,
    Query(paging): Query<Paging>,
) -> ApiResult {
    let paging = paging.checked()?;
    let (list, total) = state
        .identity
        .store()
        .memberships(&org, paging.limit, paging.offset)
        .await?;
    Ok(Json(json!({
        "data": list.iter().map(|m| resources::membership(m, true)).collect::<Vec<_>>(),
        "total_count": total,
    })))
}

#[derive(Debug, Deserialize)]
struct RoleBody {
    key: Option<String>,
    name: Option<String>,
    #[serde(default)]
    permissions: Vec<String>,
}

async fn put_role(State(state): State<BackendState>, Body(body): Body<RoleBody>) -> ApiResult {
    let key = body.key.ok_or_else(|| ClerkError::missing("key"))?;
    if crate::tenant::Role::parse(&key).is_none() {
        return Err(ClerkError::invalid("key", "role keys look like org:<name>"));
    }
    if let Err(e) = crate::identity::permissions::encode(&body.permissions) {
        return Err(ClerkError::invalid("permissions", e.to_string()));
    }
    let name = body.name.unwrap_or_else(|| key.clone());
    state
        .identity
        .store()
        .put_role(&key, &name, &body.permissions)
        .await?;
    Ok(Json(json!({
        "object": "role", "key": key, "name": name, "permissions": body.permissions,
    })))
}

// --- sessions ---

#[derive(Debug, Deserialize)]
struct SessionQuery {
    user_id: Option<String>,
}

async fn list_sessions(State(state): State<BackendState>, Query(q): Query<SessionQuery>) -> ApiResult {
    let user_id = q.user_id.ok_or_else(|| ClerkError::missing("user_id"))?;
    let sessions = state.identity.store().user_sessions(&user_id).await?;
    Ok(Json(json!({
        "data": sessions.iter().map(resources::session).collect::<Vec<_>>(),
        "total_count": sessions.len(),
    })))
}

#[derive(Debug, Deserialize)]
struct CreateSession {
    user_id: Option<String>,
}

/// Clerk's testing endpoint: a session for a user without a sign-in, on a
/// fresh client.
async fn create_session(State(state): State<BackendState>, Body(body): Body<CreateSession>) -> ApiResult {
    let user_id = body.user_id.ok_or_else(|| ClerkError::missing("user_id"))?;
    let (client_id, _) = state.identity.new_client().await?;
    let session = state
        .identity
        .store()
        .create_session(
            &client_id,
            &user_id,
            state.identity.config().session_lifetime_secs,
        )
        .await?;
    tracing::info!(user = %user_id, session = %session.id, "session created by the backend API");
    Ok(Json(resources::session(&session)))
}

async fn get_session(State(state): State<BackendState>, Path(sid): Path<String>) -> ApiResult {
    let session = state
        .identity
        .store()
        .session(&sid)
        .await?
        .ok_or_else(|| ClerkError::not_found("session"))?;
    Ok(Json(resources::session(&session)))
}

async fn revoke_session(State(state): State<BackendState>, Path(sid): Path<String>) -> ApiResult {
    let session = state.identity.store().end_session(&sid, "revoked").await?;
    tracing::info!(session = %sid, "session revoked");
    Ok(Json(resources::session(&session)))
}

async fn session_token(State(state): State<BackendState>, Path(sid): Path<String>) -> ApiResult {
    let token = state.identity.session_token(&sid, None, None).await?;
    Ok(Json(resources::token(&token.jwt)))
}

async fn template_token(
    State(state): State<BackendState>,
    Path((sid, template)): Path<(String, String)>,
) -> ApiResult {
    let token = state.identity.template_token(&sid, None, None, &template).await?;
    Ok(Json(resources::token(&token.jwt)))
}

// --- JWT templates ---

#[derive(Debug, Deserialize)]
struct TemplateBody {
    name: Option<String>,
    claims: Option<Map<String, Value>>,
    lifetime: Option<i64>,
    allowed_clock_skew: Option<i64>,
    #[serde(default)]
    custom_signing_key: bool,
}

impl TemplateBody {
    fn into_template(self, base: Option<Template>) -> Result<Template, ClerkError> {
        if self.custom_signing_key {
            return Err(ClerkError::invalid(
                "custom_signing_key",
                "templates are signed with the instance keys; custom signing keys are not supported",
            ));
        }
        let template = match base {
            Some(base) => Template {
                name: self.name.unwrap_or(base.name),
                claims: self.claims.unwrap_or(base.claims),
                lifetime: self.lifetime.unwrap_or(base.lifetime),
                allowed_clock_skew: self.allowed_clock_skew.unwrap_or(base.allowed_clock_skew),
            },
            None => Template {
                name: self.name.ok_or_else(|| ClerkError::missing("name"))?,
                claims: self.claims.ok_or_else(|| ClerkError::missing("claims"))?,
                lifetime: self.lifetime.unwrap_or(60),
                allowed_clock_skew: self.allowed_clock_skew.unwrap_or(5),
            },
        };
        template.validate().map_err(|e| {
            let param = match e {
                crate::identity::template::TemplateError::BadName => "name",
                crate::identity::template::TemplateError::OutOfRange(m) if m.starts_with("lifetime") => {
                    "lifetime"
                }
                crate::identity::template::TemplateError::OutOfRange(_) => "allowed_clock_skew",
                _ => "claims",
            };
            ClerkError::invalid(param, e.to_string())
        })?;
        Ok(template)
    }
}

async fn create_template(State(state): State<BackendState>, Body(body): Body<TemplateBody>) -> ApiResult {
    let template = body.into_template(None)?;
    let stored = state.identity.store().create_template(&template).await?;
    tracing::info!(template = %stored.template.name, "jwt template created");
    Ok(Json(resources::jwt_template(&stored)))
}

async fn list_templates(State(state): State<BackendState>) -> ApiResult {
    let list = state.identity.store().templates().await?;
    Ok(Json(Value::Array(
        list.iter().map(resources::jwt_template).collect(),
    )))
}

async fn find_template(
    state: &BackendState,
    id: &str,
) -> Result<crate::identity::store::StoredTemplate, ClerkError> {
    state
        .identity
        .store()
        .template(id)
        .await?
        .ok_or_else(|| ClerkError::not_found("jwt template"))
}

async fn get_template(State(state): State<BackendState>, Path(id): Path<String>) -> ApiResult {
    Ok(Json(resources::jwt_template(&find_template(&state, &id).await?)))
}

async fn update_template(
    State(state): State<BackendState>,
    Path(id): Path<String>,
    Body(body): Body<TemplateBody>,
) -> ApiResult {
    let existing = find_template(&state, &id).await?;
    let template = body.into_template(Some(existing.template))?;
    let stored = state
        .identity
        .store()
        .update_template(&existing.id, &template)
        .await?;
    Ok(Json(resources::jwt_template(&stored)))
}

async fn delete_template(State(state): State<BackendState>, Path(id): Path<String>) -> ApiResult {
    let existing = find_template(&state, &id).await?;
    state.identity.store().delete_template(&existing.id).await?;
    Ok(Json(resources::deleted("jwt_template", &existing.id)))
}

// --- signing keys ---

/// tenantry extension: rotate the session-token signing key now. The new
/// key signs at once on every instance that re-reads the keys; the old one
/// verifies for the overlap.
async fn rotate_keys(State(state): State<BackendState>) -> ApiResult {
    let kid = state.identity.rotate_keys().await?;
    Ok(Json(
        json!({ "object": "signing_key", "kid": kid, "jwks": state.identity.keys().jwks() }),
    ))
}

// --- rate limiting ---

/// tenantry extension: the effective rate-limit settings, including the
/// bypass list as currently loaded.
async fn rate_limit_view(State(state): State<BackendState>) -> ApiResult {
    let view = state
        .rate_limit
        .as_ref()
        .ok_or_else(|| ClerkError::not_found("rate limit configuration"))?;
    Ok(Json(json!({
        "object": "rate_limit",
        "store": view.limiter.store().name(),
        "bypass_orgs": view.limiter.bypass().list(),
        "policies": view.policies.iter().map(|p| json!({
            "name": p.name,
            "limit": p.limit,
            "window_secs": p.window_ms().div_ceil(1000),
            "algorithm": p.algorithm.name(),
            "admission_bound": p.algorithm.admission_bound(p.limit),
            "fail": p.fail.name(),
        })).collect::<Vec<_>>(),
    })))
}

// --- test outbox ---

#[derive(Debug, Deserialize)]
struct OutboxQuery {
    email_address: Option<String>,
}

async fn outbox(State(state): State<BackendState>, Query(q): Query<OutboxQuery>) -> ApiResult {
    let email = q
        .email_address
        .ok_or_else(|| ClerkError::missing("email_address"))?;
    let messages = state.identity.outbox(&email).await?;
    Ok(Json(json!({
        "data": messages.iter().map(|m| json!({
            "object": "email",
            "email_address": m.email,
            "sign_in_id": m.sign_in_id,
            "code": m.code,
            "created_at": m.created_at,
        })).collect::<Vec<_>>(),
        "total_count": messages.len(),
    })))
}
