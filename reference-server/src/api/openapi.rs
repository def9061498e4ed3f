//! The OpenAPI document, served at `/openapi.json`: generated from the
//! handlers' annotations and the request types, then completed with what
//! every route of a class answers (the route table's truth, stated once
//! here): an org-required route sits behind the proxy (401, 403) and a
//! rate-limit policy (429, the `RateLimit` headers) and may find a
//! dependency down (503 with `Retry-After`); every error is an RFC 9457
//! problem (`application/problem+json`). Public routes say `security: []`.
//! The served document also names this deployment's OAuth providers and
//! return paths, so a valid request by the document is a valid request.

use axum::extract::State;
use axum::Json;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::path::Operation;
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{Content, OpenApi as Document, RefOr, Response, ResponseBuilder, Schema};
use utoipa::{Modify, OpenApi};

use super::{documents, exports, integrations, projects, search, stats, AppState};
use crate::problem::Problem;

/// The API description.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "tenantry reference API",
        description = "The org-scoped SaaS API of the tenantry reference stack. Every `/api` route needs a \
                       session token with an active organization (`Authorization: Bearer` or the `__session` \
                       cookie) and answers for that organization only; a foreign id answers exactly like a \
                       missing one (404)."
    ),
    paths(
        super::health,
        serve,
        super::jwks,
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
    )),
    security(("bearer" = []), ("session" = [])),
    modifiers(&RouteClasses)
)]
pub struct ApiDoc;

/// Bodies the handlers refuse without any field (422 "send at least one of").
const AT_LEAST_ONE_FIELD: [&str; 2] = ["ProjectPatch", "DocumentPatch"];

/// The media type of every error body.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// Completes the generated document with what every route of a class answers.
struct RouteClasses;

impl Modify for RouteClasses {
    fn modify(&self, doc: &mut Document) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "A Clerk-compatible session token (RS256, v2 claims) with an active organization.",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                crate::proxy::SESSION_COOKIE,
                "The same session token in Clerk's cookie; with a Bearer token too, both must be the same token.",
            ))),
        );
        // utoipa 5.5 writes `min_properties` as `maxProperties`: stated here.
        for patch in AT_LEAST_ONE_FIELD {
            if let Some(RefOr::T(Schema::Object(schema))) = components.schemas.get_mut(patch) {
                schema.min_properties = Some(1);
            }
        }
        for item in doc.paths.paths.values_mut() {
            for operation in operations(item) {
                optional_body(operation);
                // `security(())` on a handler marks it public.
                let public = operation
                    .security
                    .as_ref()
                    .is_some_and(|s| s.iter().all(|r| *r == Default::default()));
                if public {
                    operation.security = Some(Vec::new());
                } else {
                    org_required(operation);
                }
                problems(operation);
            }
        }
    }
}

/// An optional body (`request_body(content = Option<T>)`) may be left out,
/// but JSON `null` is not one: utoipa writes "`null` or T"; this says "T,
/// not required".
fn optional_body(operation: &mut Operation) {
    let Some(body) = operation.request_body.as_mut() else {
        return;
    };
    if body.required == Some(utoipa::openapi::Required::True) {
        return;
    }
    for content in body.content.values_mut() {
        if let Some(RefOr::T(Schema::OneOf(one_of))) = &content.schema {
            let not_null = one_of.items.iter().find(
                |item| !matches!(item, RefOr::T(Schema::Object(o)) if o.schema_type == Type::Null.into()),
            );
            if let Some(schema) = not_null.cloned() {
                content.schema = Some(schema);
            }
        }
    }
    body.required = Some(utoipa::openapi::Required::False);
}

fn operations(item: &mut utoipa::openapi::PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        item.get.as_mut(),
        item.put.as_mut(),
        item.post.as_mut(),
        item.delete.as_mut(),
        item.options.as_mut(),
        item.head.as_mut(),
        item.patch.as_mut(),
        item.trace.as_mut(),
    ]
    .into_iter()
    .flatten()
}

fn header(description: &str, schema: ObjectBuilder) -> utoipa::openapi::header::Header {
    HeaderBuilder::new()
        .description(Some(description))
        .schema(schema.build())
        .build()
}

fn string() -> ObjectBuilder {
    ObjectBuilder::new().schema_type(Type::String)
}

/// The proxy's, the limiter's and the dependencies' answers.
fn org_required(operation: &mut Operation) {
    let answers = &mut operation.responses.responses;
    let mut add = |status: &str, description: &str| {
        answers
            .entry(status.to_string())
            .or_insert_with(|| RefOr::T(ResponseBuilder::new().description(description).build()));
    };
    add(
        "401",
        "No valid session token (missing, malformed, expired, forged, or header and cookie disagree).",
    );
    add(
        "403",
        "The token has no active organization, or the request names another organization (`org_mismatch`).",
    );
    add(
        "429",
        "The organization spent this route's rate-limit policy (`RateLimit-Policy`); retry after `Retry-After` seconds.",
    );
    add(
        "503",
        "A dependency is unavailable or the request ran past its deadline; retry after `Retry-After` seconds.",
    );
    for (status, answer) in answers.iter_mut() {
        let RefOr::T(answer) = answer else { continue };
        if status.starts_with('2') || status == "429" {
            rate_limit_headers(answer);
        }
    }
}

fn rate_limit_headers(answer: &mut Response) {
    answer.headers.insert(
        "RateLimit-Policy".into(),
        header(
            "The route's policy: `\"<name>\";q=<limit>;w=<window seconds>` (IETF RateLimit headers); \
             absent for an organization on the bypass list.",
            string(),
        ),
    );
    answer.headers.insert(
        "RateLimit".into(),
        header(
            "What is left of it: `\"<name>\";r=<remaining>;t=<seconds to reset>`.",
            string(),
        ),
    );
}

/// Every error is a problem; 429 and 503 say when to come back.
fn problems(operation: &mut Operation) {
    for (status, answer) in operation.responses.responses.iter_mut() {
        let RefOr::T(answer) = answer else { continue };
        if !(status.starts_with('4') || status.starts_with('5')) {
            continue;
        }
        answer.content.clear();
        answer.content.insert(
            PROBLEM_JSON.into(),
            Content::new(Some(RefOr::<Schema>::Ref(
                utoipa::openapi::Ref::from_schema_name("Problem"),
            ))),
        );
        if status == "429" || status == "503" {
            answer.headers.insert(
                "Retry-After".into(),
                header(
                    "Seconds to wait before retrying (at least 1).",
                    ObjectBuilder::new().schema_type(Type::Integer).minimum(Some(1.0)),
                ),
            );
        }
    }
}

/// Response headers sent with every response that declares them (utoipa's
/// header type cannot say `required`, so [`document`] adds it).
const ALWAYS_SENT: [&str; 2] = ["Location", "Retry-After"];

/// The document for a server with these OAuth `providers` and
/// `return_paths` (a provider outside the list answers 404 and a return
/// path outside it 422, so the document names them), as JSON.
pub fn document(providers: &[String], return_paths: &[String]) -> serde_json::Value {
    let mut doc = serde_json::to_value(deployment(providers, return_paths)).unwrap_or_default();
    let answers = doc
        .get_mut("paths")
        .and_then(serde_json::Value::as_object_mut)
        .into_iter()
        .flat_map(|paths| paths.values_mut())
        .filter_map(serde_json::Value::as_object_mut)
        .flat_map(|item| item.values_mut())
        .filter_map(|operation| operation.get_mut("responses"))
        .filter_map(serde_json::Value::as_object_mut)
        .flat_map(|responses| responses.values_mut());
    for answer in answers {
        for name in ALWAYS_SENT {
            if let Some(header) = answer.pointer_mut(&format!("/headers/{name}")) {
                header["required"] = serde_json::Value::Bool(true);
            }
        }
    }
    doc
}

fn deployment(providers: &[String], return_paths: &[String]) -> Document {
    let mut doc = ApiDoc::openapi();
    for item in doc.paths.paths.values_mut() {
        for operation in operations(item) {
            for parameter in operation.parameters.iter_mut().flatten() {
                if parameter.name == "provider" {
                    *parameter = super::params::provider_path(providers);
                }
            }
        }
    }
    let return_to = crate::oauth::return_path_pattern(return_paths);
    if let Some(components) = doc.components.as_mut() {
        if let Some(RefOr::T(Schema::Object(connect))) = components.schemas.get_mut("ConnectRequest") {
            if let Some(RefOr::T(Schema::Object(field))) = connect.properties.get_mut("return_to") {
                field.pattern = Some(return_to);
            }
        }
    }
    doc
}

/// The API description itself.
#[utoipa::path(get, path = "/openapi.json", tag = "meta", security(()),
    responses((status = 200, description = "This document (OpenAPI 3.1).", content_type = "application/json")))]
pub async fn serve(State(state): State<AppState>) -> Json<serde_json::Value> {
    Json(document(
        &state.oauth.provider_names(),
        state.oauth.return_paths(),
    ))
}
