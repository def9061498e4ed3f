//! Clerk-compatible HTTP APIs over the identity service:
//! - [`backend`]: the Backend API under `/v1`, secret-key auth;
//! - [`frontend`]: the Frontend API under `/v1/client`, device (client)
//!   cookie auth, sign-in and session tokens.
//!
//! Both speak Clerk's JSON (snake_case, Unix-millisecond times, `object`
//! tags) and Clerk's error shape, `{"errors":[{"code","message",
//! "long_message","meta"}]}`; [`resources`] renders the objects.

pub mod backend;
pub mod frontend;
pub mod resources;

use axum::extract::{FromRequest, Request};
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde::de::DeserializeOwned;
use serde_json::{json, Value};

use crate::identity::service::IdentityError;

/// One error in Clerk's shape.
#[derive(Debug, Clone, PartialEq)]
pub struct ClerkError {
    status: StatusCode,
    code: &'static str,
    message: String,
    long_message: String,
    meta: Value,
}

impl ClerkError {
    /// An error with `status`, Clerk `code` and messages.
    pub fn new(
        status: StatusCode,
        code: &'static str,
        message: &str,
        long_message: impl Into<String>,
    ) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            long_message: long_message.into(),
            meta: json!({}),
        }
    }

    /// Names the parameter at fault (`meta.param_name`).
    pub fn param(mut self, name: &str) -> Self {
        self.meta = json!({ "param_name": name });
        self
    }

    /// 401 `authentication_invalid`.
    pub fn unauthorized(long_message: &str) -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "authentication_invalid",
            "Unauthorized request",
            long_message,
        )
    }

    /// 404 `resource_not_found`.
    pub fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "resource_not_found",
            "not found",
            format!("The requested {what} could not be found"),
        )
    }

    /// 422 `form_param_format_invalid` for `param`.
    pub fn invalid(param: &str, long_message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "form_param_format_invalid",
            "is invalid",
            long_message,
        )
        .param(param)
    }

    /// 422 `form_param_missing` for `param`.
    pub fn missing(param: &str) -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "form_param_missing",
            "is missing",
            format!("{param} must be included."),
        )
        .param(param)
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The Clerk code.
    pub fn code(&self) -> &'static str {
        self.code
    }
}

/// 503 in Clerk's error shape while the identity store's circuit is open,
/// with `Retry-After` (for `circuit::Gate`).
pub fn circuit_open(open: crate::circuit::Open) -> Response {
    let mut response = ClerkError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "service_unavailable",
        "Service unavailable",
        "The identity service is temporarily unavailable. Retry shortly.",
    )
    .into_response();
    response.headers_mut().insert(
        http::header::RETRY_AFTER,
        http::HeaderValue::from(open.retry_after_secs()),
    );
    response
}

impl IntoResponse for ClerkError {
    fn into_response(self) -> Response {
        let body = json!({
            "errors": [{
                "code": self.code,
                "message": self.message,
                "long_message": self.long_message,
                "meta": self.meta,
            }],
        });
        let mut response = (self.status, axum::Json(body)).into_response();
        response.headers_mut().insert(
            http::header::CACHE_CONTROL,
            http::HeaderValue::from_static("no-store"),
        );
        response
    }
}

impl From<IdentityError> for ClerkError {
    fn from(e: IdentityError) -> Self {
        use IdentityError as E;
        match e {
            E::NotFound(what) => ClerkError::not_found(what),
            E::Taken("email_address") => ClerkError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "form_identifier_exists",
                "That email address is taken. Please try another.",
                "That email address is taken. Please try another.",
            )
            .param("email_address"),
            E::Taken(what) => ClerkError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "form_param_value_taken",
                "is taken",
                format!("That {what} is taken. Please try another."),
            )
            .param(what),
            E::Invalid { param, message } => ClerkError::invalid(param, message),
            E::PasswordIncorrect => ClerkError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "form_password_incorrect",
                "Password is incorrect. Try again, or use another method.",
                "Password is incorrect. Try again, or use another method.",
            )
            .param("password"),
            E::CodeIncorrect => ClerkError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "form_code_incorrect",
                "Incorrect code",
                "Incorrect code",
            )
            .param("code"),
            E::CodeExpired => ClerkError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "verification_expired",
                "Verification expired",
                "This verification has expired or was already used. Request a new code.",
            )
            .param("code"),
            E::TooManyAttempts => ClerkError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_attempts",
                "Too many failed attempts",
                "Too many failed attempts. Start a new sign-in.",
            ),
            E::WrongStatus(status) => ClerkError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "sign_in_status_invalid",
                "This step does not apply",
                format!("The sign-in attempt is {status}; this step does not apply to it."),
            ),
            E::UserLocked => ClerkError::new(
                StatusCode::FORBIDDEN,
                "user_locked",
                "Account locked",
                "This account is locked. Contact support.",
            ),
            E::SessionNotActive => ClerkError::new(
                StatusCode::UNAUTHORIZED,
                "session_not_active",
                "Session is not active",
                "The session was revoked, ended or has expired. Sign in again.",
            ),
            E::Unavailable => ClerkError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "service_unavailable",
                "Service unavailable",
                "The identity service is temporarily unavailable. Retry shortly.",
            ),
            E::Internal => ClerkError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal_clerk_error",
                "Oops, an unexpected error occurred",
                "An unexpected error occurred. It was logged.",
            ),
        }
    }
}

impl From<crate::identity::store::StoreError> for ClerkError {
    fn from(e: crate::identity::store::StoreError) -> Self {
        IdentityError::from(e).into()
    }
}

/// A JSON or form body (Clerk's SDKs send JSON, browsers send forms);
/// malformed bodies answer in Clerk's error shape.
#[derive(Debug)]
pub struct Body<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = ClerkError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let content_type = req
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase();
        if content_type.starts_with("application/x-www-form-urlencoded") {
            let bytes = axum::body::Bytes::from_request(req, state)
                .await
                .map_err(|_| ClerkError::invalid("body", "the request body could not be read"))?;
            let value: T = serde_urlencoded_like(&bytes)?;
            return Ok(Body(value));
        }
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|_| ClerkError::invalid("body", "the request body could not be read"))?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return serde_json::from_value(json!({}))
                .map(Body)
                .map_err(|e| body_error(&e.to_string()));
        }
        serde_json::from_slice(&bytes)
            .map(Body)
            .map_err(|e| body_error(&e.to_string()))
    }
}

fn body_error(detail: &str) -> ClerkError {
    // serde's message names the field and what it expected; it contains no
    // values from the request beyond the field name.
    ClerkError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "form_param_format_invalid",
        "is invalid",
        format!("The request body is invalid: {detail}"),
    )
}

/// Form bodies: `key=value` pairs into a JSON object of strings (repeated
/// keys: the last wins), then into `T`. `true`/`false` and `null` become
/// JSON literals so boolean and optional fields work from forms.
fn serde_urlencoded_like<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ClerkError> {
    let text = std::str::from_utf8(bytes).map_err(|_| body_error("not UTF-8"))?;
    let mut map = serde_json::Map::new();
    for pair in text.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let decode = |s: &str| {
            percent_encoding::percent_decode_str(&s.replace('+', " "))
                .decode_utf8()
                .map(|c| c.into_owned())
                .map_err(|_| body_error("not UTF-8"))
        };
        let (k, v) = (decode(k)?, decode(v)?);
        let value = match v.as_str() {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            "null" => Value::Null,
            _ => Value::String(v),
        };
        map.insert(k, value);
    }
    serde_json::from_value(Value::Object(map)).map_err(|e| body_error(&e.to_string()))
}

/// Clerk's pagination query: `limit` (1..=500, default 10) and `offset`.
#[derive(Debug, Clone, Copy, serde::Deserialize)]
#[serde(default)]
pub struct Paging {
    /// Page size.
    pub limit: i64,
    /// Rows to skip.
    pub offset: i64,
}

impl Default for Paging {
    fn default() -> Self {
        Self { limit: 10, offset: 0 }
    }
}

impl Paging {
    /// Checked bounds.
    pub fn checked(self) -> Result<Self, ClerkError> {
        if !(1..=500).contains(&self.limit) {
            return Err(ClerkError::invalid("limit", "limit must be 1..=500"));
        }
        if self.offset < 0 {
            return Err(ClerkError::invalid("offset", "offset must not be negative"));
        }
        Ok(self)
    }
}
