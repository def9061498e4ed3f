//! Integrations: org-scoped OAuth connections to providers.
//!
//! `connect` and `disconnect` need `org:integrations:manage`; the callback
//! needs the same signed-in user and active org that started the flow (the
//! state's bindings, checked in [`crate::oauth`]); the connection is written
//! through `TenantDb`, so into that org only, with the tokens sealed.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use http::StatusCode;
use serde::{Deserialize, Serialize};

use super::extract::{ApiPath, ApiQuery};
use super::params::{CallbackQuery, IntegrationIdPath, ProviderPath};
use super::{db_problem, AppState};
use crate::ids::{self, IdKind};
use crate::oauth::{CallbackParams, OAuthError};
use crate::problem::Problem;
use crate::tenant::Tenant;
use crate::tenant_db::{Direction, Query, Row, INTEGRATIONS};

/// A connection (never its tokens).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Integration {
    /// `int_…`
    #[schema(schema_with = super::rules::schema::integration_id)]
    pub id: String,
    /// Provider name.
    pub provider: String,
    /// The provider's account.
    pub external_account: String,
    /// Granted scopes.
    pub scopes: String,
    /// Who connected it.
    pub connected_by: String,
    /// RFC 3339, UTC.
    #[schema(format = DateTime)]
    pub created_at: String,
}

impl Integration {
    fn from_row(row: &Row) -> Self {
        Self {
            id: row.get("id"),
            provider: row.get("provider"),
            external_account: row.get("external_account"),
            scopes: row.get("scopes"),
            connected_by: row.get("connected_by"),
            created_at: row.get("created_at"),
        }
    }
}

/// The connect request.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConnectRequest {
    /// Where to send the browser after the callback: a relative path on
    /// `oauth.return_paths`.
    pub return_to: Option<String>,
}

/// The connect answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ConnectResponse {
    /// Send the browser here.
    pub authorize_url: String,
    /// Seconds the flow stays valid.
    pub expires_in: u64,
}

fn require_manage(tenant: &Tenant) -> Result<(), Problem> {
    if tenant.has_permission("org:integrations:manage") {
        Ok(())
    } else {
        Err(Problem::forbidden(
            "managing integrations requires org:integrations:manage",
        ))
    }
}

fn oauth_problem(e: OAuthError) -> Problem {
    match e {
        OAuthError::UnknownProvider => Problem::not_found("provider"),
        OAuthError::ReturnPathNotAllowed => {
            Problem::invalid("return_to must be a relative path the app allows")
        }
        OAuthError::InvalidState(reason) => {
            tracing::info!(reason, "oauth callback refused");
            Problem::new(
                StatusCode::BAD_REQUEST,
                "invalid_state",
                "Bad Request",
                "this connection attempt is not valid; start again from the integrations page",
            )
        }
        OAuthError::Denied => Problem::new(
            StatusCode::BAD_REQUEST,
            "authorization_denied",
            "Bad Request",
            "the provider did not grant access; start again to retry",
        ),
        OAuthError::MissingCode => Problem::bad_request("the callback carries no authorization code"),
        OAuthError::Exchange(detail) => {
            tracing::warn!(%detail, "oauth token exchange failed");
            Problem::new(
                StatusCode::BAD_GATEWAY,
                "exchange_failed",
                "Bad Gateway",
                "the provider did not accept the authorization; start again",
            )
        }
        OAuthError::Store(detail) => {
            tracing::warn!(%detail, "oauth state store unavailable");
            Problem::unavailable()
        }
    }
}

/// Start connecting `provider`. The body is optional.
#[utoipa::path(post, path = "/api/integrations/{provider}/connect", tag = "integrations",
    params(ProviderPath),
    request_body(content = Option<ConnectRequest>, content_type = "application/json",
        description = "Optional: without a body (or `return_to`), the callback answers 201 instead of a redirect."),
    responses(
        (status = 200, description = "Send the browser to `authorize_url`.", body = ConnectResponse),
        (status = 403, description = "The role lacks `org:integrations:manage`, or the token has no active organization, or the request names another organization."),
        (status = 404, description = "No such provider."),
        (status = 413, description = "A body larger than `server.max_body_bytes`."),
        (status = 422, description = "A body that is not a connect request, or a `return_to` that is not on `oauth.return_paths`."),
    ))]
pub async fn connect(
    State(state): State<AppState>,
    tenant: Tenant,
    ApiPath(provider): ApiPath<String>,
    body: axum::body::Bytes,
) -> Result<Json<ConnectResponse>, Problem> {
    require_manage(&tenant)?;
    // The body is optional: empty means no return path.
    let request: ConnectRequest = if body.iter().all(u8::is_ascii_whitespace) {
        ConnectRequest::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| Problem::invalid(e.to_string()))?
    };
    let start = state
        .oauth
        .connect(&tenant, &provider, request.return_to.as_deref())
        .await
        .map_err(oauth_problem)?;
    Ok(Json(ConnectResponse {
        authorize_url: start.authorize_url,
        expires_in: start.expires_in,
    }))
}

/// The provider's redirect back: the browser of the user who started the flow.
#[utoipa::path(get, path = "/api/integrations/{provider}/callback", tag = "integrations",
    params(ProviderPath, CallbackQuery),
    responses(
        (status = 201, description = "Connected (the flow had no `return_to`).", body = Integration),
        (status = 303, description = "Connected: on to the flow's `return_to`, with `connected=<provider>`.",
            headers(("Location" = String, description = "The return path."))),
        (status = 400, description = "A state that is missing, unknown, spent, expired or bound to another org, user, session or provider (`invalid_state`), a refusal (`authorization_denied`), no code, or a query string that does not parse."),
        (status = 404, description = "No such provider."),
        (status = 502, description = "The provider refused the code exchange (`exchange_failed`)."),
    ))]
pub async fn callback(
    State(state): State<AppState>,
    tenant: Tenant,
    ApiPath(provider): ApiPath<String>,
    ApiQuery(params): ApiQuery<CallbackParams>,
) -> Result<Response, Problem> {
    let connected = state
        .oauth
        .callback(&tenant, &provider, &params)
        .await
        .map_err(oauth_problem)?;
    let org = tenant.org().as_str();
    let sealer = state.oauth.sealer();
    let access = sealer
        .seal(org, &connected.provider, connected.access_token.as_bytes())
        .map_err(|_| Problem::internal())?;
    let refresh = match &connected.refresh_token {
        Some(t) => Some(
            sealer
                .seal(org, &connected.provider, t.as_bytes())
                .map_err(|_| Problem::internal())?,
        ),
        None => None,
    };
    let id = ids::new_id(IdKind::Integration);
    let mut tx = state.db.for_tenant(&tenant).begin().await.map_err(db_problem)?;
    // One connection per provider and org: a reconnect replaces it.
    tx.execute(&Query::delete(&INTEGRATIONS).eq("provider", connected.provider.as_str()))
        .await
        .map_err(db_problem)?;
    let row = tx
        .query_opt(&Query::insert(
            &INTEGRATIONS,
            vec![
                ("id", id.as_str().into()),
                ("provider", connected.provider.as_str().into()),
                ("external_account", connected.external_account.as_str().into()),
                ("access_token_enc", crate::tenant_db::Value::Bytes(access)),
                (
                    "refresh_token_enc",
                    refresh
                        .map(crate::tenant_db::Value::Bytes)
                        .unwrap_or(crate::tenant_db::Value::Null),
                ),
                ("scopes", connected.scopes.as_str().into()),
                ("connected_by", tenant.user_id().into()),
            ],
        ))
        .await
        .map_err(db_problem)?
        .ok_or_else(Problem::internal)?;
    tx.commit().await.map_err(db_problem)?;
    tracing::info!(provider = %connected.provider, org = %org, "integration connected");
    let integration = Integration::from_row(&row);
    match connected.return_to {
        Some(path) => {
            let sep = if path.contains('?') { '&' } else { '?' };
            let location = format!("{path}{sep}connected={}", connected.provider);
            Ok((
                StatusCode::SEE_OTHER,
                [(http::header::LOCATION, location)],
                [(http::header::CACHE_CONTROL, "no-store")],
            )
                .into_response())
        }
        None => Ok((StatusCode::CREATED, Json(integration)).into_response()),
    }
}

/// The org's connections.
#[utoipa::path(get, path = "/api/integrations", tag = "integrations",
    responses((status = 200, description = "The connections, by provider (never their tokens).", body = Vec<Integration>)))]
pub async fn list(State(state): State<AppState>, tenant: Tenant) -> Result<Json<Vec<Integration>>, Problem> {
    let rows = state
        .db
        .for_tenant(&tenant)
        .read(&Query::select(&INTEGRATIONS).order_by("provider", Direction::Asc))
        .await
        .map_err(db_problem)?;
    Ok(Json(rows.iter().map(Integration::from_row).collect()))
}

/// Disconnect.
#[utoipa::path(delete, path = "/api/integrations/{id}", tag = "integrations", params(IntegrationIdPath),
    responses(
        (status = 204, description = "Disconnected (its tokens deleted)."),
        (status = 403, description = "The role lacks `org:integrations:manage`, or the token has no active organization, or the request names another organization."),
        (status = 404, description = "No such connection in the active organization."),
    ))]
pub async fn disconnect(
    State(state): State<AppState>,
    tenant: Tenant,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, Problem> {
    require_manage(&tenant)?;
    if !ids::is_id(IdKind::Integration, &id) {
        return Err(Problem::not_found("integration"));
    }
    let mut tx = state.db.for_tenant(&tenant).begin().await.map_err(db_problem)?;
    let deleted = tx
        .execute(&Query::delete(&INTEGRATIONS).eq("id", id.as_str()))
        .await
        .map_err(db_problem)?;
    tx.commit().await.map_err(db_problem)?;
    if deleted == 0 {
        return Err(Problem::not_found("integration"));
    }
    Ok(StatusCode::NO_CONTENT)
}
