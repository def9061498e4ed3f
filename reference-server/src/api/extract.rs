//! Extractors whose rejections are problem details, not axum's plain text.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts};

use crate::problem::Problem;

/// JSON body; a malformed one is a 400/415/422 problem.
#[derive(Debug, FromRequest)]
#[from_request(via(axum::Json), rejection(Problem))]
pub struct ApiJson<T>(pub T);

/// Query string; a malformed one is a 400 problem.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(Problem))]
pub struct ApiQuery<T>(pub T);

/// Path parameters; a malformed one is a 404 problem (no such resource).
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(Problem))]
pub struct ApiPath<T>(pub T);

impl From<JsonRejection> for Problem {
    fn from(rejection: JsonRejection) -> Self {
        match rejection {
            JsonRejection::MissingJsonContentType(_) => Problem::new(
                http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "Unsupported Media Type",
                "send the body as application/json",
            ),
            JsonRejection::JsonDataError(e) => Problem::invalid(e.body_text()),
            other if other.status() == http::StatusCode::PAYLOAD_TOO_LARGE => Problem::new(
                http::StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                "Content Too Large",
                "the request body is larger than the server accepts",
            ),
            other => Problem::bad_request(other.body_text()),
        }
    }
}

impl From<QueryRejection> for Problem {
    fn from(rejection: QueryRejection) -> Self {
        Problem::bad_request(rejection.body_text())
    }
}

impl From<PathRejection> for Problem {
    fn from(_: PathRejection) -> Self {
        Problem::new(
            http::StatusCode::NOT_FOUND,
            "no_route",
            "Not Found",
            "no such route",
        )
    }
}
