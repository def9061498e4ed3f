//! The reference SaaS's HTTP API: projects, documents nested under
//! projects, search, exports, stats. Every route is declared in [`routes`];
//! every error is a [`Problem`]; a foreign id answers exactly like a missing one.

mod documents;
mod exports;
pub(crate) mod extract;
pub mod openapi;
mod projects;
mod search;
mod stats;

use std::sync::Arc;

use axum::routing::get;
use axum::Router;

pub use extract::{ApiJson, ApiPath, ApiQuery};
pub use stats::Stats;

use crate::cache::OrgCache;
use crate::identity::keys::KeyRing;
use crate::jobs::ExportQueue;
use crate::problem::Problem;
use crate::tenant_db::{Db, DbError};

/// What handlers share.
#[derive(Clone, Debug)]
pub struct AppState {
    /// Tenant data access.
    pub db: Db,
    /// The org-keyed cache behind `/api/stats`.
    pub stats_cache: Arc<OrgCache<Stats>>,
    /// The export job queue.
    pub exports: ExportQueue,
    /// The session-token signing keys (JWKS).
    pub keys: Arc<KeyRing>,
    /// Injected flaws.
    #[cfg(feature = "inject")]
    pub flaws: crate::inject::Flaws,
}

/// The route table, by auth class. `public` routes need no identity.
/// `org-required` routes sit behind `org_required` (the proxy, or the
/// dev-auth stand-in in tests): their handlers take a `Tenant`, which only
/// exists for a verified identity with an active org that passed the org guard.
pub fn routes<L>(state: AppState, org_required: L) -> Router
where
    L: tower::Layer<axum::routing::Route> + Clone + Send + Sync + 'static,
    L::Service: tower::Service<axum::extract::Request> + Clone + Send + Sync + 'static,
    <L::Service as tower::Service<axum::extract::Request>>::Response: axum::response::IntoResponse + 'static,
    <L::Service as tower::Service<axum::extract::Request>>::Error: Into<std::convert::Infallible> + 'static,
    <L::Service as tower::Service<axum::extract::Request>>::Future: Send + 'static,
{
    let public = Router::new()
        .route("/healthz", get(health))
        .route("/openapi.json", get(openapi::serve))
        .route("/.well-known/jwks.json", get(jwks));
    let org = Router::new()
        .route("/api/projects", get(projects::list).post(projects::create))
        .route(
            "/api/projects/{id}",
            get(projects::read)
                .patch(projects::update)
                .delete(projects::delete),
        )
        .route(
            "/api/projects/{id}/documents",
            get(documents::list).post(documents::create),
        )
        .route(
            "/api/documents/{id}",
            get(documents::read)
                .patch(documents::update)
                .delete(documents::delete),
        )
        .route("/api/orgs/{org_id}/projects", get(projects::list_in_org))
        .route("/api/search", get(search::search))
        .route("/api/exports", axum::routing::post(exports::create))
        .route("/api/exports/{id}", get(exports::read))
        .route("/api/stats", get(stats::stats))
        .route_layer(org_required);
    public
        .merge(org)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
}

async fn jwks(axum::extract::State(state): axum::extract::State<AppState>) -> axum::Json<serde_json::Value> {
    axum::Json(state.keys.jwks())
}

async fn health(
    axum::extract::State(state): axum::extract::State<AppState>,
) -> Result<axum::Json<serde_json::Value>, Problem> {
    state.db.ping().await.map_err(db_problem)?;
    Ok(axum::Json(serde_json::json!({ "status": "ok" })))
}

async fn not_found() -> Problem {
    Problem::new(
        http::StatusCode::NOT_FOUND,
        "no_route",
        "Not Found",
        "no such route",
    )
}

async fn method_not_allowed() -> Problem {
    Problem::new(
        http::StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "Method Not Allowed",
        "this route does not accept that method",
    )
}

/// Maps a database error to a problem; details go to the log only.
pub(crate) fn db_problem(error: DbError) -> Problem {
    match error {
        DbError::Unavailable(detail) => {
            tracing::warn!(%detail, "database unavailable");
            Problem::unavailable()
        }
        DbError::Timeout => {
            tracing::warn!("statement timed out");
            Problem::unavailable()
        }
        DbError::Conflict(detail) => {
            tracing::info!(%detail, "conflict");
            Problem::new(
                http::StatusCode::CONFLICT,
                "conflict",
                "Conflict",
                "the resource already exists",
            )
        }
        other => {
            tracing::error!(error = %other, "database error");
            Problem::internal()
        }
    }
}

/// Field length limits.
pub(crate) fn check_text(field: &str, value: &str, min: usize, max: usize) -> Result<(), Problem> {
    let len = value.chars().count();
    if value.trim().chars().count() < min || len > max {
        return Err(Problem::invalid(format!(
            "`{field}` must be {min} to {max} characters"
        )));
    }
    if value.chars().any(|c| c == '\0') {
        return Err(Problem::invalid(format!(
            "`{field}` must not contain NUL characters"
        )));
    }
    Ok(())
}

/// Pagination: `?limit=` (1..=100, default 20) and `?cursor=` (the last id seen).
#[derive(Debug, Default, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// Page size, 1..=100 (default 20).
    pub limit: Option<i64>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

impl PageParams {
    pub(crate) fn limit(&self) -> Result<i64, Problem> {
        match self.limit {
            None => Ok(20),
            Some(n) if (1..=100).contains(&n) => Ok(n),
            Some(_) => Err(Problem::invalid("`limit` must be between 1 and 100")),
        }
    }
}

/// A page of results.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct Page<T> {
    /// The items.
    pub data: Vec<T>,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// Builds a page from `limit + 1` fetched items.
    pub(crate) fn from_overfetch(mut items: Vec<T>, limit: i64, id: impl Fn(&T) -> String) -> Self {
        let more = items.len() as i64 > limit;
        items.truncate(limit as usize);
        let next_cursor = if more { items.last().map(id) } else { None };
        Self {
            data: items,
            next_cursor,
        }
    }
}
