//! `/api/projects/{id}/documents` and `/api/documents/{id}`.

use crate::tenant_db::Row;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};

use super::projects::valid_id as valid_project_id;
use super::{check_text, db_problem, ApiJson, ApiPath, ApiQuery, AppState, Page, PageParams};
use crate::ids::{self, IdKind};
use crate::problem::Problem;
use crate::tenant::Tenant;
use crate::tenant_db::{DbError, Direction, Query, DOCUMENTS, PROJECTS};

/// A document (child of a project).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Document {
    /// `doc_…`
    pub id: String,
    /// The parent project.
    pub project_id: String,
    /// Title.
    pub title: String,
    /// Body text.
    pub body: String,
    /// The user who created it.
    pub created_by: String,
    /// RFC 3339, UTC.
    pub created_at: String,
    /// RFC 3339, UTC.
    pub updated_at: String,
}

impl Document {
    pub(crate) fn from_row(row: &Row) -> Self {
        Self {
            id: row.get("id"),
            project_id: row.get("project_id"),
            title: row.get("title"),
            body: row.get("body"),
            created_by: row.get("created_by"),
            created_at: row.get("created_at"),
            updated_at: row.get("updated_at"),
        }
    }
}

/// Body of `POST /api/projects/{id}/documents`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewDocument {
    /// 1..=200 characters.
    pub title: String,
    /// Up to 100 000 characters.
    #[serde(default)]
    pub body: String,
}

/// Body of `PATCH /api/documents/{id}`: at least one field.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DocumentPatch {
    /// New title.
    pub title: Option<String>,
    /// New body.
    pub body: Option<String>,
}

fn valid_id(id: &str) -> Result<(), Problem> {
    if ids::is_id(IdKind::Document, id) {
        Ok(())
    } else {
        Err(Problem::not_found("document"))
    }
}

/// List a project's documents.
#[utoipa::path(get, path = "/api/projects/{id}/documents", tag = "documents", params(("id" = String, Path), PageParams),
    responses((status = 200, description = "A page of documents"), (status = 404, body = Problem)))]
pub async fn list(
    State(state): State<AppState>,
    tenant: Tenant,
    ApiPath(project_id): ApiPath<String>,
    ApiQuery(page): ApiQuery<PageParams>,
) -> Result<Json<Page<Document>>, Problem> {
    valid_project_id(&project_id)?;
    let limit = page.limit()?;
    let mut query = Query::select(&DOCUMENTS)
        .eq("project_id", project_id.as_str())
        .order_by("id", Direction::Asc)
        .limit(limit + 1);
    if let Some(cursor) = &page.cursor {
        if !ids::is_id(IdKind::Document, cursor) {
            return Err(Problem::bad_request("`cursor` is not a cursor this API issued"));
        }
        query = query.gt("id", cursor.as_str());
    }
    let mut tx = state.db.for_tenant(&tenant).begin().await.map_err(db_problem)?;
    let parent = tx
        .query_opt(&Query::count(&PROJECTS).eq("id", project_id.as_str()))
        .await
        .map_err(db_problem)?
        .map(|row| row.get::<_, i64>(0))
        .unwrap_or(0);
    let rows = if parent == 0 {
        None
    } else {
        Some(tx.query(&query).await.map_err(db_problem)?)
    };
    tx.commit().await.map_err(db_problem)?;
    let rows = rows.ok_or_else(|| Problem::not_found("project"))?;
    let documents = rows.iter().map(Document::from_row).collect();
    Ok(Json(Page::from_overfetch(documents, limit, |d: &Document| {
        d.id.clone()
    })))
}

/// Create a document under a project of the active org.
#[utoipa::path(post, path = "/api/projects/{id}/documents", tag = "documents", params(("id" = String, Path)),
    request_body = NewDocument, responses((status = 201, body = Document), (status = 404, body = Problem)))]
pub async fn create(
    State(state): State<AppState>,
    tenant: Tenant,
    ApiPath(project_id): ApiPath<String>,
    ApiJson(body): ApiJson<NewDocument>,
) -> Result<Response, Problem> {
    valid_project_id(&project_id)?;
    check_text("title", &body.title, 1, 200)?;
    check_text("body", &body.body, 0, 100_000)?;
    let id = ids::new_id(IdKind::Document);
    let query = Query::insert(
        &DOCUMENTS,
        vec![
            ("id", id.as_str().into()),
            ("project_id", project_id.as_str().into()),
            ("title", body.title.into()),
            ("body", body.body.into()),
            ("created_by", tenant.user_id().into()),
        ],
    );
    let mut tx = state.db.for_tenant(&tenant).begin().await.map_err(db_problem)?;
    // The composite foreign key (organization_id, project_id) makes a parent
    // in another org indistinguishable from a missing one.
    let row = match tx.query_opt(&query).await {
        Ok(row) => row.ok_or_else(Problem::internal)?,
        Err(DbError::MissingReference(_)) => return Err(Problem::not_found("project")),
        Err(e) => return Err(db_problem(e)),
    };
    tx.commit().await.map_err(db_problem)?;
    state.stats_cache.invalidate(tenant.org());
    let document = Document::from_row(&row);
    let location = format!("/api/documents/{}", document.id);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(document),
    )
        .into_response())
}

/// Read one document.
#[utoipa::path(get, path = "/api/documents/{id}", tag = "documents", params(("id" = String, Path)),
    responses((status = 200, body = Document), (status = 404, body = Problem)))]
pub async fn read(
    State(state): State<AppState>,
    tenant: Tenant,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Document>, Problem> {
    valid_id(&id)?;
    let row = state
        .db
        .for_tenant(&tenant)
        .read_opt(&Query::select(&DOCUMENTS).eq("id", id.as_str()))
        .await
        .map_err(db_problem)?
        .ok_or_else(|| Problem::not_found("document"))?;
    Ok(Json(Document::from_row(&row)))
}

/// Update a document.
#[utoipa::path(patch, path = "/api/documents/{id}", tag = "documents", params(("id" = String, Path)),
    request_body = DocumentPatch, responses((status = 200, body = Document), (status = 404, body = Problem)))]
pub async fn update(
    State(state): State<AppState>,
    tenant: Tenant,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<DocumentPatch>,
) -> Result<Json<Document>, Problem> {
    valid_id(&id)?;
    let mut values = Vec::new();
    if let Some(title) = body.title {
        check_text("title", &title, 1, 200)?;
        values.push(("title", title.into()));
    }
    if let Some(text) = body.body {
        check_text("body", &text, 0, 100_000)?;
        values.push(("body", text.into()));
    }
    if values.is_empty() {
        return Err(Problem::invalid("send at least one of `title`, `body`"));
    }
    let update = Query::update(&DOCUMENTS, values).eq("id", id.as_str());
    // The mistake: the update names the id alone.
    #[cfg(feature = "inject")]
    let update = if flaw!(state.flaws, UpdateWithoutOrgFilter) {
        update.without_org_filter()
    } else {
        update
    };
    let mut tx = state.db.for_tenant(&tenant).begin().await.map_err(db_problem)?;
    let row = tx.query_opt(&update).await.map_err(db_problem)?;
    tx.commit().await.map_err(db_problem)?;
    let row = row.ok_or_else(|| Problem::not_found("document"))?;
    state.stats_cache.invalidate(tenant.org());
    Ok(Json(Document::from_row(&row)))
}

/// Delete a document.
#[utoipa::path(delete, path = "/api/documents/{id}", tag = "documents", params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = Problem)))]
pub async fn delete(
    State(state): State<AppState>,
    tenant: Tenant,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, Problem> {
    valid_id(&id)?;
    let mut tx = state.db.for_tenant(&tenant).begin().await.map_err(db_problem)?;
    let deleted = tx
        .execute(&Query::delete(&DOCUMENTS).eq("id", id.as_str()))
        .await
        .map_err(db_problem)?;
    tx.commit().await.map_err(db_problem)?;
    if deleted == 0 {
        return Err(Problem::not_found("document"));
    }
    state.stats_cache.invalidate(tenant.org());
    Ok(StatusCode::NO_CONTENT)
}
