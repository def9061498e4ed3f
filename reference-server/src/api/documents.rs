//! `/api/projects/{id}/documents` and `/api/documents/{id}`.

use crate::tenant_db::Row;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};

use super::params::{DocumentIdPath, DocumentPageQuery, ProjectIdPath};
use super::projects::valid_id as valid_project_id;
use super::rules::{self, schema};
use super::{db_problem, ApiJson, ApiPath, ApiQuery, AppState, Page, PageParams};
use crate::ids::{self, IdKind};
use crate::problem::Problem;
use crate::tenant::Tenant;
use crate::tenant_db::{DbError, Direction, Query, DOCUMENTS, PROJECTS};

/// A document (child of a project).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Document {
    /// `doc_…`
    #[schema(schema_with = schema::document_id)]
    pub id: String,
    /// The parent project.
    #[schema(schema_with = schema::project_id)]
    pub project_id: String,
    /// Title.
    pub title: String,
    /// Body text.
    pub body: String,
    /// The user who created it.
    pub created_by: String,
    /// RFC 3339, UTC.
    #[schema(format = DateTime)]
    pub created_at: String,
    /// RFC 3339, UTC.
    #[schema(format = DateTime)]
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
    /// The title.
    #[schema(schema_with = schema::document_title)]
    pub title: String,
    /// The text (default empty).
    #[serde(default)]
    #[schema(schema_with = schema::document_body)]
    pub body: String,
}

/// Body of `PATCH /api/documents/{id}`: at least one field; `null` is not a value.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
// "At least one field" (`minProperties`) is stated by `openapi::RouteClasses`.
pub struct DocumentPatch {
    /// New title.
    #[serde(default, deserialize_with = "rules::present")]
    #[schema(schema_with = schema::document_title)]
    pub title: Option<String>,
    /// New body.
    #[serde(default, deserialize_with = "rules::present")]
    #[schema(schema_with = schema::document_body)]
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
#[utoipa::path(get, path = "/api/projects/{id}/documents", tag = "documents", params(ProjectIdPath, DocumentPageQuery),
    responses(
        (status = 200, description = "A page of the project's documents, by id.", body = Page<Document>),
        (status = 400, description = "A query string that does not parse, or a `cursor` this API did not issue."),
        (status = 404, description = "No such project in the active organization."),
        (status = 422, description = "`limit` out of range."),
    ))]
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
#[utoipa::path(post, path = "/api/projects/{id}/documents", tag = "documents", params(ProjectIdPath),
    request_body = NewDocument,
    responses(
        (status = 201, description = "Created.", body = Document,
            headers(("Location" = String, description = "The document's URL."))),
        (status = 400, description = "A body that is not JSON."),
        (status = 404, description = "No such project in the active organization."),
        (status = 413, description = "A body larger than `server.max_body_bytes`."),
        (status = 415, description = "A body that is not `application/json`."),
        (status = 422, description = "A body that breaks the schema's rules."),
    ))]
pub async fn create(
    State(state): State<AppState>,
    tenant: Tenant,
    ApiPath(project_id): ApiPath<String>,
    ApiJson(body): ApiJson<NewDocument>,
) -> Result<Response, Problem> {
    valid_project_id(&project_id)?;
    rules::DOCUMENT_TITLE.check("title", &body.title)?;
    rules::DOCUMENT_BODY.check("body", &body.body)?;
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
#[utoipa::path(get, path = "/api/documents/{id}", tag = "documents", params(DocumentIdPath),
    responses(
        (status = 200, description = "The document.", body = Document),
        (status = 404, description = "No such document in the active organization (missing or another org's: the same answer)."),
    ))]
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
#[utoipa::path(patch, path = "/api/documents/{id}", tag = "documents", params(DocumentIdPath),
    request_body = DocumentPatch,
    responses(
        (status = 200, description = "The updated document.", body = Document),
        (status = 400, description = "A body that is not JSON."),
        (status = 404, description = "No such document in the active organization."),
        (status = 413, description = "A body larger than `server.max_body_bytes`."),
        (status = 415, description = "A body that is not `application/json`."),
        (status = 422, description = "A body that breaks the schema's rules."),
    ))]
pub async fn update(
    State(state): State<AppState>,
    tenant: Tenant,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<DocumentPatch>,
) -> Result<Json<Document>, Problem> {
    valid_id(&id)?;
    let mut values = Vec::new();
    if let Some(title) = body.title {
        rules::DOCUMENT_TITLE.check("title", &title)?;
        values.push(("title", title.into()));
    }
    if let Some(text) = body.body {
        rules::DOCUMENT_BODY.check("body", &text)?;
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
#[utoipa::path(delete, path = "/api/documents/{id}", tag = "documents", params(DocumentIdPath),
    responses(
        (status = 204, description = "Deleted."),
        (status = 404, description = "No such document in the active organization."),
    ))]
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
