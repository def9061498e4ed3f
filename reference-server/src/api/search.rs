//! `/api/search?q=`: across the active org's projects and documents.

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};

use super::{db_problem, ApiQuery, AppState};
use crate::problem::Problem;
use crate::tenant::Tenant;
use crate::tenant_db::{Direction, Query, DOCUMENTS, PROJECTS};

/// Query string of `/api/search`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SearchParams {
    /// Text to find (1..=200 characters), matched case-insensitively and literally.
    pub q: Option<String>,
}

/// One hit.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SearchHit {
    /// `project` or `document`.
    pub kind: &'static str,
    /// The resource id.
    pub id: String,
    /// Project name or document title.
    pub title: String,
    /// For documents, the parent project.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub project_id: Option<String>,
}

/// Search results.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SearchResults {
    /// Up to 50 projects then up to 50 documents.
    pub data: Vec<SearchHit>,
}

/// Most hits per kind.
const HITS_PER_KIND: i64 = 50;

/// Search the active org.
#[utoipa::path(get, path = "/api/search", tag = "search", params(SearchParams),
    responses((status = 200, body = SearchResults), (status = 422, body = Problem)))]
pub async fn search(
    State(state): State<AppState>,
    tenant: Tenant,
    ApiQuery(params): ApiQuery<SearchParams>,
) -> Result<Json<SearchResults>, Problem> {
    let q = params.q.unwrap_or_default();
    let len = q.chars().count();
    if !(1..=200).contains(&len) || q.contains('\0') {
        return Err(Problem::invalid("`q` must be 1 to 200 characters"));
    }
    let projects = Query::select(&PROJECTS)
        .search(&["name", "description"], &q)
        .order_by("id", Direction::Asc)
        .limit(HITS_PER_KIND);
    let documents = Query::select(&DOCUMENTS)
        .search(&["title", "body"], &q)
        .order_by("id", Direction::Asc)
        .limit(HITS_PER_KIND);
    // The mistake: the search statements forget the org predicate.
    #[cfg(feature = "inject")]
    let (projects, documents) = if flaw!(state.flaws, SearchWithoutOrgFilter) {
        (projects.without_org_filter(), documents.without_org_filter())
    } else {
        (projects, documents)
    };
    let mut tx = state.db.for_tenant(&tenant).begin().await.map_err(db_problem)?;
    let projects = tx.query(&projects).await.map_err(db_problem)?;
    let documents = tx.query(&documents).await.map_err(db_problem)?;
    tx.commit().await.map_err(db_problem)?;
    let mut data: Vec<SearchHit> = projects
        .iter()
        .map(|r| SearchHit {
            kind: "project",
            id: r.get("id"),
            title: r.get("name"),
            project_id: None,
        })
        .collect();
    data.extend(documents.iter().map(|r| SearchHit {
        kind: "document",
        id: r.get("id"),
        title: r.get("title"),
        project_id: Some(r.get("project_id")),
    }));
    Ok(Json(SearchResults { data }))
}
