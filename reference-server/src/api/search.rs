//! `/api/search?q=`: across the active org's projects and documents.

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};

use super::params::SearchQuery;
use super::rules::{self, schema};
use super::{db_problem, ApiQuery, AppState};
use crate::problem::Problem;
use crate::tenant::Tenant;
use crate::tenant_db::{Direction, Query, DOCUMENTS, PROJECTS};

/// Query string of `/api/search` (the document's: [`SearchQuery`]).
#[derive(Debug, Deserialize)]
pub struct SearchParams {
    /// Text to find, matched case-insensitively and literally; missing is a
    /// 422 that says what `q` must be.
    pub q: Option<String>,
}

/// One hit.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SearchHit {
    /// `project` or `document`.
    pub kind: &'static str,
    /// The resource id (`prj_…` or `doc_…`).
    pub id: String,
    /// Project name or document title.
    pub title: String,
    /// For documents, the parent project.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = schema::project_id)]
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
#[utoipa::path(get, path = "/api/search", tag = "search", params(SearchQuery),
    responses(
        (status = 200, description = "Up to 50 projects, then up to 50 documents.", body = SearchResults),
        (status = 400, description = "A query string that does not parse."),
        (status = 422, description = "`q` missing or breaking its rules."),
    ))]
pub async fn search(
    State(state): State<AppState>,
    tenant: Tenant,
    ApiQuery(params): ApiQuery<SearchParams>,
) -> Result<Json<SearchResults>, Problem> {
    let q = params.q.unwrap_or_default();
    rules::SEARCH_QUERY.check("q", &q)?;
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
