//! The OpenAPI document, served at `/openapi.json`.

use axum::Json;
use utoipa::OpenApi;

use super::{documents, exports, integrations, projects, search, stats};
use crate::problem::Problem;

/// The API description.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "tenantry reference API",
        description = "The org-scoped SaaS API of the tenantry reference stack."
    ),
    paths(
        projects::list,
        projects::create,
        projects::read,
        projects::update,
        projects::delete,
        projects::list_in_org,
        documents::list,
        documents::create,
        documents::read,
        documents::update,
        documents::delete,
        search::search,
        exports::create,
        exports::read,
        stats::stats,
        integrations::list,
        integrations::connect,
        integrations::callback,
        integrations::disconnect,
    ),
    components(schemas(
        Problem,
        integrations::Integration,
        integrations::ConnectRequest,
        integrations::ConnectResponse,
        projects::Project,
        projects::NewProject,
        projects::ProjectPatch,
        documents::Document,
        documents::NewDocument,
        documents::DocumentPatch,
        search::SearchHit,
        search::SearchResults,
        exports::Export,
        stats::Stats,
        stats::LatestProject,
    ))
)]
pub struct ApiDoc;

/// `GET /openapi.json`
pub async fn serve() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
