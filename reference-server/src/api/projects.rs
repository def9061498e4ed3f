//! `/api/projects` and `/api/orgs/{org_id}/projects`.

use crate::tenant_db::Row;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};

use super::params::{OrgIdPath, ProjectIdPath, ProjectPageQuery};
use super::rules::{self, schema};
use super::{db_problem, ApiJson, ApiPath, ApiQuery, AppState, Page, PageParams};
use crate::ids::{self, IdKind};
use crate::problem::Problem;
use crate::tenant::Tenant;
use crate::tenant_db::{Direction, Query, PROJECTS};

/// A project.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Project {
    /// `prj_…`
    #[schema(schema_with = schema::project_id)]
    pub id: String,
    /// Name.
    pub name: String,
    /// Description.
    pub description: String,
    /// The user who created it.
    pub created_by: String,
    /// RFC 3339, UTC.
    #[schema(format = DateTime)]
    pub created_at: String,
    /// RFC 3339, UTC.
    #[schema(format = DateTime)]
    pub updated_at: String,
}

impl Project {
    pub(crate) fn from_row(row: &Row) -> Self {
        Self {
            id: row.get("id"),
            name: row.get("name"),
            description: row.get("description"),
            created_by: row.get("created_by"),
            created_at: row.get("created_at"),
            updated_at: row.get("updated_at"),
        }
    }
}

/// Body of `POST /api/projects`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewProject {
    /// The name.
    #[schema(schema_with = schema::project_name)]
    pub name: String,
    /// The description (default empty).
    #[serde(default)]
    #[schema(schema_with = schema::project_description)]
    pub description: String,
}

/// Body of `PATCH /api/projects/{id}`: at least one field; `null` is not a value.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
// "At least one field" (`minProperties`) is stated by `openapi::RouteClasses`.
pub struct ProjectPatch {
    /// New name.
    #[serde(default, deserialize_with = "rules::present")]
    #[schema(schema_with = schema::project_name)]
    pub name: Option<String>,
    /// New description.
    #[serde(default, deserialize_with = "rules::present")]
    #[schema(schema_with = schema::project_description)]
    pub description: Option<String>,
}

pub(crate) fn valid_id(id: &str) -> Result<(), Problem> {
    if ids::is_id(IdKind::Project, id) {
        Ok(())
    } else {
        Err(Problem::not_found("project"))
    }
}

/// List the active org's projects.
#[utoipa::path(get, path = "/api/projects", tag = "projects", params(ProjectPageQuery),
    responses(
        (status = 200, description = "A page of projects, by id.", body = Page<Project>),
        (status = 400, description = "A query string that does not parse, or a `cursor` this API did not issue."),
        (status = 422, description = "`limit` out of range."),
    ))]
pub async fn list(
    State(state): State<AppState>,
    tenant: Tenant,
    ApiQuery(page): ApiQuery<PageParams>,
) -> Result<Json<Page<Project>>, Problem> {
    list_projects(&state, &tenant, &page).await.map(Json)
}

/// List projects of `org_id`, which must be the active org.
#[utoipa::path(get, path = "/api/orgs/{org_id}/projects", tag = "projects", params(OrgIdPath, ProjectPageQuery),
    responses(
        (status = 200, description = "A page of projects, by id.", body = Page<Project>),
        (status = 400, description = "A query string that does not parse, or a `cursor` this API did not issue."),
        (status = 403, description = "`org_id` is not the active organization (`org_mismatch`), or there is none."),
        (status = 404, description = "A path that does not decode."),
        (status = 422, description = "`limit` out of range."),
    ))]
pub async fn list_in_org(
    State(state): State<AppState>,
    tenant: Tenant,
    ApiPath(org_id): ApiPath<String>,
    ApiQuery(page): ApiQuery<PageParams>,
) -> Result<Json<Page<Project>>, Problem> {
    if flaw!(state.flaws, OrgPathUnchecked) {
        // The mistake: serve whatever org the path names.
        let org = crate::tenant::OrgId::new(org_id).ok_or_else(|| Problem::not_found("organization"))?;
        let named = Tenant::new(org, tenant.user_id(), tenant.role().clone(), Vec::new());
        return list_projects(&state, &named, &page).await.map(Json);
    }
    if org_id != tenant.org().as_str() {
        return Err(Problem::org_mismatch());
    }
    list_projects(&state, &tenant, &page).await.map(Json)
}

async fn list_projects(
    state: &AppState,
    tenant: &Tenant,
    page: &PageParams,
) -> Result<Page<Project>, Problem> {
    let limit = page.limit()?;
    let mut query = Query::select(&PROJECTS)
        .order_by("id", Direction::Asc)
        .limit(limit + 1);
    if let Some(cursor) = &page.cursor {
        if !ids::is_id(IdKind::Project, cursor) {
            return Err(Problem::bad_request("`cursor` is not a cursor this API issued"));
        }
        query = query.gt("id", cursor.as_str());
    }
    let rows = state
        .db
        .for_tenant(tenant)
        .read(&query)
        .await
        .map_err(db_problem)?;
    let projects = rows.iter().map(Project::from_row).collect();
    Ok(Page::from_overfetch(projects, limit, |p: &Project| p.id.clone()))
}

/// Create a project in the active org.
#[utoipa::path(post, path = "/api/projects", tag = "projects", request_body = NewProject,
    responses(
        (status = 201, description = "Created.", body = Project,
            headers(("Location" = String, description = "The project's URL."))),
        (status = 400, description = "A body that is not JSON."),
        (status = 413, description = "A body larger than `server.max_body_bytes`."),
        (status = 415, description = "A body that is not `application/json`."),
        (status = 422, description = "A body that breaks the schema's rules."),
    ))]
pub async fn create(
    State(state): State<AppState>,
    tenant: Tenant,
    ApiJson(body): ApiJson<NewProject>,
) -> Result<Response, Problem> {
    rules::PROJECT_NAME.check("name", &body.name)?;
    rules::PROJECT_DESCRIPTION.check("description", &body.description)?;
    let id = ids::new_id(IdKind::Project);
    let query = Query::insert(
        &PROJECTS,
        vec![
            ("id", id.as_str().into()),
            ("name", body.name.into()),
            ("description", body.description.into()),
            ("created_by", tenant.user_id().into()),
        ],
    );
    let mut tx = state.db.for_tenant(&tenant).begin().await.map_err(db_problem)?;
    let row = tx
        .query_opt(&query)
        .await
        .map_err(db_problem)?
        .ok_or_else(Problem::internal)?;
    tx.commit().await.map_err(db_problem)?;
    state.stats_cache.invalidate(tenant.org());
    let project = Project::from_row(&row);
    let location = format!("/api/projects/{}", project.id);
    Ok((StatusCode::CREATED, [(header::LOCATION, location)], Json(project)).into_response())
}

/// Read one project.
#[utoipa::path(get, path = "/api/projects/{id}", tag = "projects", params(ProjectIdPath),
    responses(
        (status = 200, description = "The project.", body = Project),
        (status = 404, description = "No such project in the active organization (missing or another org's: the same answer)."),
    ))]
pub async fn read(
    State(state): State<AppState>,
    tenant: Tenant,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Project>, Problem> {
    valid_id(&id)?;
    let row = state
        .db
        .for_tenant(&tenant)
        .read_opt(&Query::select(&PROJECTS).eq("id", id.as_str()))
        .await
        .map_err(db_problem)?
        .ok_or_else(|| Problem::not_found("project"))?;
    Ok(Json(Project::from_row(&row)))
}

/// Update a project.
#[utoipa::path(patch, path = "/api/projects/{id}", tag = "projects", params(ProjectIdPath), request_body = ProjectPatch,
    responses(
        (status = 200, description = "The updated project.", body = Project),
        (status = 400, description = "A body that is not JSON."),
        (status = 404, description = "No such project in the active organization."),
        (status = 413, description = "A body larger than `server.max_body_bytes`."),
        (status = 415, description = "A body that is not `application/json`."),
        (status = 422, description = "A body that breaks the schema's rules."),
    ))]
pub async fn update(
    State(state): State<AppState>,
    tenant: Tenant,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<ProjectPatch>,
) -> Result<Json<Project>, Problem> {
    valid_id(&id)?;
    let mut values = Vec::new();
    if let Some(name) = body.name {
        rules::PROJECT_NAME.check("name", &name)?;
        values.push(("name", name.into()));
    }
    if let Some(description) = body.description {
        rules::PROJECT_DESCRIPTION.check("description", &description)?;
        values.push(("description", description.into()));
    }
    if values.is_empty() {
        return Err(Problem::invalid("send at least one of `name`, `description`"));
    }
    let mut tx = state.db.for_tenant(&tenant).begin().await.map_err(db_problem)?;
    let row = tx
        .query_opt(&Query::update(&PROJECTS, values).eq("id", id.as_str()))
        .await
        .map_err(db_problem)?;
    tx.commit().await.map_err(db_problem)?;
    let row = row.ok_or_else(|| Problem::not_found("project"))?;
    state.stats_cache.invalidate(tenant.org());
    Ok(Json(Project::from_row(&row)))
}

/// Delete a project and its documents (admins only).
#[utoipa::path(delete, path = "/api/projects/{id}", tag = "projects", params(ProjectIdPath),
    responses(
        (status = 204, description = "Deleted."),
        (status = 403, description = "The role is not `org:admin`, or the token has no active organization, or the request names another organization."),
        (status = 404, description = "No such project in the active organization."),
    ))]
pub async fn delete(
    State(state): State<AppState>,
    tenant: Tenant,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, Problem> {
    valid_id(&id)?;
    if !tenant.has_role("org:admin") {
        return Err(Problem::forbidden(
            "deleting a project requires the org:admin role",
        ));
    }
    let mut tx = state.db.for_tenant(&tenant).begin().await.map_err(db_problem)?;
    let deleted = tx
        .execute(&Query::delete(&PROJECTS).eq("id", id.as_str()))
        .await
        .map_err(db_problem)?;
    tx.commit().await.map_err(db_problem)?;
    if deleted == 0 {
        return Err(Problem::not_found("project"));
    }
    state.stats_cache.invalidate(tenant.org());
    Ok(StatusCode::NO_CONTENT)
}
