//! The reference SaaS's HTTP API: projects, documents nested under
//! projects, search, exports, stats. Every route is declared in [`routes`];
//! every error is a [`Problem`]; a foreign id answers exactly like a missing one.

mod documents;
mod exports;
pub(crate) mod extract;
mod integrations;
pub mod openapi;
mod params;
mod projects;
pub(crate) mod rules;
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
use crate::ratelimit::PolicyName;
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
    /// OAuth connect flows.
    pub oauth: Arc<crate::oauth::OAuth>,
    /// Injected flaws.
    #[cfg(feature = "inject")]
    pub flaws: crate::inject::Flaws,
}

/// One layer per [`PolicyName`], built by the server from config.
pub trait Limits {
    /// The layer enforcing policy `name`.
    fn policy(&self, name: PolicyName) -> crate::ratelimit::RateLimit;
}

/// The route table, by auth class. `public` routes need no identity.
/// `org-required` routes sit behind `org_required` (the proxy, or the
/// dev-auth stand-in in tests): their handlers take a `Tenant`, which only
/// exists for a verified identity with an active org that passed the org
/// guard. Each org-required handler declares its rate-limit policy here; the
/// limiter runs after the proxy, on the verified org.
pub fn routes<L>(state: AppState, org_required: L, limits: &dyn Limits) -> Router
where
    L: tower::Layer<axum::routing::Route> + Clone + Send + Sync + 'static,
    L::Service: tower::Service<axum::extract::Request> + Clone + Send + Sync + 'static,
    <L::Service as tower::Service<axum::extract::Request>>::Response: axum::response::IntoResponse + 'static,
    <L::Service as tower::Service<axum::extract::Request>>::Error: Into<std::convert::Infallible> + 'static,
    <L::Service as tower::Service<axum::extract::Request>>::Future: Send + 'static,
{
    use axum::handler::Handler;
    use axum::routing::{delete, patch, post};
    let read = limits.policy(PolicyName::ApiRead);
    let write = limits.policy(PolicyName::ApiWrite);
    let search = limits.policy(PolicyName::ApiSearch);
    let exports = limits.policy(PolicyName::ApiExports);
    let public = Router::new()
        .route("/healthz", get(health))
        .route("/openapi.json", get(openapi::serve))
        .route("/.well-known/jwks.json", get(jwks));
    let org = Router::new()
        .route(
            "/api/projects",
            get(projects::list.layer(read.clone())).merge(post(projects::create.layer(write.clone()))),
        )
        .route(
            "/api/projects/{id}",
            get(projects::read.layer(read.clone()))
                .merge(patch(projects::update.layer(write.clone())))
                .merge(delete(projects::delete.layer(write.clone()))),
        )
        .route(
            "/api/projects/{id}/documents",
            get(documents::list.layer(read.clone())).merge(post(documents::create.layer(write.clone()))),
        )
        .route(
            "/api/documents/{id}",
            get(documents::read.layer(read.clone()))
                .merge(patch(documents::update.layer(write.clone())))
                .merge(delete(documents::delete.layer(write.clone()))),
        )
        .route(
            "/api/orgs/{org_id}/projects",
            get(projects::list_in_org.layer(read.clone())),
        )
        .route("/api/search", get(search::search.layer(search)))
        .route("/api/exports", post(exports::create.layer(exports)))
        .route("/api/exports/{id}", get(exports::read.layer(read.clone())))
        .route("/api/stats", get(stats::stats.layer(read.clone())))
        .route("/api/integrations", get(integrations::list.layer(read)))
        .route(
            "/api/integrations/{provider}/connect",
            post(integrations::connect.layer(write.clone())),
        )
        .route(
            "/api/integrations/{provider}/callback",
            get(integrations::callback.layer(write.clone())),
        )
        .route(
            "/api/integrations/{id}",
            delete(integrations::disconnect.layer(write)),
        )
        .route_layer(org_required);
    public
        .merge(org)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
}

/// The keys session tokens are signed with (JWKS), for verifiers.
#[utoipa::path(get, path = "/.well-known/jwks.json", tag = "meta", security(()),
    responses((status = 200, description = "`{\"keys\": [RSA public keys]}`.", body = Object, content_type = "application/json")))]
async fn jwks(axum::extract::State(state): axum::extract::State<AppState>) -> axum::Json<serde_json::Value> {
    axum::Json(state.keys.jwks())
}

/// Liveness and the database's reachability.
#[utoipa::path(get, path = "/healthz", tag = "meta", security(()),
    responses(
        (status = 200, description = "`{\"status\": \"ok\"}`.", body = Object, content_type = "application/json"),
        (status = 503, description = "The database is unreachable."),
    ))]
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
        DbError::CircuitOpen(open) => {
            crate::circuit::unavailable_warning(open.dependency);
            Problem::circuit_open(&open)
        }
        DbError::Unavailable(detail) => {
            static UNAVAILABLE: crate::circuit::ThrottledWarning =
                crate::circuit::ThrottledWarning::new(10_000);
            if let Some(n) = UNAVAILABLE.note() {
                tracing::warn!(%detail, failed = n, "database unavailable ({n} requests failed in the last 10 s)");
            }
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

/// Pagination as the handlers read it: `?limit=` ([`rules::PAGE_LIMIT`])
/// and `?cursor=` (the last id seen). The document's parameters:
/// [`params::ProjectPageQuery`], [`params::DocumentPageQuery`].
#[derive(Debug, Default, serde::Deserialize)]
pub struct PageParams {
    /// Page size.
    pub limit: Option<i64>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

impl PageParams {
    pub(crate) fn limit(&self) -> Result<i64, Problem> {
        rules::PAGE_LIMIT.check(self.limit)
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
