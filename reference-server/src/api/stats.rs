//! `/api/stats`: per-org counts, served from the org-keyed cache.

use axum::extract::State;
use axum::Json;
use serde::Serialize;

use super::{db_problem, AppState};
use crate::problem::Problem;
use crate::tenant::Tenant;
use crate::tenant_db::{Direction, Query, DOCUMENTS, PROJECTS};

/// The newest project, by creation time.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct LatestProject {
    /// Its id.
    #[schema(schema_with = super::rules::schema::project_id)]
    pub id: String,
    /// Its name.
    pub name: String,
}

/// Counts for the active org.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Stats {
    /// Projects in the org.
    pub projects: i64,
    /// Documents in the org.
    pub documents: i64,
    /// The newest project, if any.
    pub latest_project: Option<LatestProject>,
}

/// Counts for the active org (cached per org; writes invalidate).
#[utoipa::path(get, path = "/api/stats", tag = "stats",
    responses((status = 200, description = "The counts (cached per organization; writes invalidate).", body = Stats)))]
pub async fn stats(State(state): State<AppState>, tenant: Tenant) -> Result<Json<Stats>, Problem> {
    let key = state.stats_cache.key(tenant.org(), "stats");
    if let Some(cached) = state.stats_cache.get(&key) {
        return Ok(Json(cached));
    }
    let mut tx = state.db.for_tenant(&tenant).begin().await.map_err(db_problem)?;
    let projects: i64 = tx
        .query_opt(&Query::count(&PROJECTS))
        .await
        .map_err(db_problem)?
        .map(|r| r.get(0))
        .unwrap_or(0);
    let documents: i64 = tx
        .query_opt(&Query::count(&DOCUMENTS))
        .await
        .map_err(db_problem)?
        .map(|r| r.get(0))
        .unwrap_or(0);
    let latest = tx
        .query_opt(
            &Query::select(&PROJECTS)
                .order_by("created_at", Direction::Desc)
                .limit(1),
        )
        .await
        .map_err(db_problem)?
        .map(|r| LatestProject {
            id: r.get("id"),
            name: r.get("name"),
        });
    tx.commit().await.map_err(db_problem)?;
    let stats = Stats {
        projects,
        documents,
        latest_project: latest,
    };
    state.stats_cache.put(key, stats.clone());
    Ok(Json(stats))
}
