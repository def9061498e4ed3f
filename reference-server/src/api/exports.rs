//! `/api/exports`: export the active org's data in a background job.

use crate::tenant_db::Row;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

use super::params::ExportIdPath;
use super::{db_problem, ApiPath, AppState};
use crate::ids::{self, IdKind};
use crate::jobs::EnqueueError;
use crate::problem::Problem;
use crate::tenant::Tenant;
use crate::tenant_db::{Query, EXPORTS};

/// An export job and, once done, its result.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Export {
    /// `exp_…`
    #[schema(schema_with = super::rules::schema::export_id)]
    pub id: String,
    /// `pending`, `running`, `done` or `failed`.
    pub status: String,
    /// Who asked for it.
    pub requested_by: String,
    /// The exported projects and documents, when done.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<serde_json::Value>,
    /// Why it failed, when failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// RFC 3339, UTC.
    #[schema(format = DateTime)]
    pub created_at: String,
    /// RFC 3339, UTC, when finished.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime)]
    pub finished_at: Option<String>,
}

impl Export {
    fn from_row(row: &Row) -> Self {
        Self {
            id: row.get("id"),
            status: row.get("status"),
            requested_by: row.get("requested_by"),
            result: row.get("result"),
            error: row.get("error"),
            created_at: row.get("created_at"),
            finished_at: row.get("finished_at"),
        }
    }
}

/// Start an export of the active org.
#[utoipa::path(post, path = "/api/exports", tag = "exports",
    responses(
        (status = 202, description = "Queued.", body = Export,
            headers(("Location" = String, description = "The export's URL, to poll."))),
        (status = 503, description = "The export queue is full (nothing is created), a dependency is down, or the limiter cannot count (`api.exports` fails closed)."),
    ))]
pub async fn create(State(state): State<AppState>, tenant: Tenant) -> Result<Response, Problem> {
    let id = ids::new_id(IdKind::Export);
    let mut tx = state.db.for_tenant(&tenant).begin().await.map_err(db_problem)?;
    let row = tx
        .query_opt(&Query::insert(
            &EXPORTS,
            vec![
                ("id", id.as_str().into()),
                ("requested_by", tenant.user_id().into()),
            ],
        ))
        .await
        .map_err(db_problem)?
        .ok_or_else(Problem::internal)?;
    // The queue row commits with the export: a crash after the commit
    // leaves a job that a worker (of any instance) finishes.
    match state.exports.enqueue(&mut tx, &id).await {
        Ok(()) => {}
        Err(EnqueueError::Full) => {
            let _ = tx.rollback().await;
            return Err(Problem::unavailable());
        }
        Err(EnqueueError::Db(e)) => return Err(db_problem(e)),
    }
    tx.commit().await.map_err(db_problem)?;
    state.exports.wake();
    let location = format!("/api/exports/{id}");
    Ok((
        StatusCode::ACCEPTED,
        [(header::LOCATION, location)],
        Json(Export::from_row(&row)),
    )
        .into_response())
}

/// Read an export (and its result once done).
#[utoipa::path(get, path = "/api/exports/{id}", tag = "exports", params(ExportIdPath),
    responses(
        (status = 200, description = "The export.", body = Export),
        (status = 404, description = "No such export in the active organization."),
    ))]
pub async fn read(
    State(state): State<AppState>,
    tenant: Tenant,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Export>, Problem> {
    if !ids::is_id(IdKind::Export, &id) {
        return Err(Problem::not_found("export"));
    }
    let row = state
        .db
        .for_tenant(&tenant)
        .read_opt(&Query::select(&EXPORTS).eq("id", id.as_str()))
        .await
        .map_err(db_problem)?
        .ok_or_else(|| Problem::not_found("export"))?;
    Ok(Json(Export::from_row(&row)))
}
