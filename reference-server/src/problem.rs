//! RFC 9457 problem details. Every error the API returns is one of these;
//! a foreign id and a missing id produce the same problem, byte for byte.

use axum::response::{IntoResponse, Response};
use http::{header, HeaderValue, StatusCode};
use serde::Serialize;

/// A problem details body plus its status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Problem {
    /// A URI naming the problem type.
    #[serde(rename = "type")]
    pub kind: String,
    /// A short, fixed summary of the type.
    pub title: String,
    /// The HTTP status.
    pub status: u16,
    /// A human-readable explanation that reveals nothing about other orgs.
    pub detail: String,
    /// A stable machine-readable code.
    pub code: String,
    /// `Retry-After` in seconds, for a 503 (default 1).
    #[serde(skip)]
    retry_after: Option<u64>,
}

impl Problem {
    /// Builds a problem of `status` with a stable `code`.
    pub fn new(status: StatusCode, code: &str, title: &str, detail: impl Into<String>) -> Self {
        Self {
            kind: format!("https://tenantry.dev/problems/{code}"),
            title: title.into(),
            status: status.as_u16(),
            detail: detail.into(),
            code: code.into(),
            retry_after: None,
        }
    }

    /// The same problem with `Retry-After: secs`.
    pub fn retry_after(mut self, secs: u64) -> Self {
        self.retry_after = Some(secs.max(1));
        self
    }

    /// 503 while a dependency's circuit is open: answered at once, with the
    /// time until the next probe as `Retry-After`.
    pub fn circuit_open(open: &crate::circuit::Open) -> Self {
        Self::unavailable().retry_after(open.retry_after_secs())
    }

    /// 404 for a resource that is missing *or belongs to another org*.
    pub fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "Not Found",
            format!("{what} not found"),
        )
    }

    /// 401: no verified identity.
    pub fn unauthenticated() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "Unauthorized",
            "a valid session token is required",
        )
    }

    /// 403: an org identifier in the request is not the active org.
    pub fn org_mismatch() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "org_mismatch",
            "Forbidden",
            "the organization in the request is not the active organization",
        )
    }

    /// 403: the role lacks a permission.
    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", "Forbidden", detail)
    }

    /// 400: the request is malformed.
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", "Bad Request", detail)
    }

    /// 422: the request is well-formed but a value is invalid.
    pub fn invalid(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
            "Unprocessable Content",
            detail,
        )
    }

    /// 503: a dependency is unavailable; details go to the log, not the client.
    pub fn unavailable() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "Service Unavailable",
            "the service is temporarily unavailable; retry later",
        )
    }

    /// 500 without details (they are logged).
    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "Internal Server Error",
            "the request could not be completed",
        )
    }

    /// The status as a `StatusCode`.
    pub fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = self.status_code();
        let retry_after = self.retry_after.unwrap_or(1);
        let mut response = (status, axum::Json(self)).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if status == StatusCode::SERVICE_UNAVAILABLE {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
        }
        response
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.status, self.code, self.detail)
    }
}
