//! The proxy: the one place where the tenancy boundary is enforced.
//!
//! In front of every org-required route it
//! 1. takes the session token from `Authorization: Bearer` or the `__session`
//!    cookie — when both are present they must be the same token, otherwise
//!    the request is refused (no precedence game between them);
//! 2. verifies it ([`Verifier`]: RS256 allow-list, known `kid`, time claims,
//!    issuer, authorized party, session kind and status) — a token that
//!    verified before is taken from the [`token_cache`], its time claims and
//!    key checked again;
//! 3. requires an active organization in the token;
//! 4. runs the [`org_guard`] over path, query, headers, cookies and body;
//! 5. only then inserts the [`Tenant`] the handler extracts.
//!
//! Every refusal has a typed reason ([`AuthRejected`]) that is logged; the
//! client sees a problem body that reveals nothing about which check failed.

pub mod org_guard;
pub mod token_cache;

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::header;

use crate::identity::token::{SessionClaims, TokenRejected, Verifier};
use crate::problem::Problem;
use crate::tenant::{OrgId, Role, SignedIn, Tenant};

/// The cookie Clerk's frontend keeps the session token in.
pub const SESSION_COOKIE: &str = "__session";

/// Why the proxy refused a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthRejected {
    /// Neither a bearer token nor a session cookie.
    #[error("no session token")]
    MissingToken,
    /// The `Authorization` header is not a single `Bearer <token>`.
    #[error("malformed Authorization header")]
    MalformedAuthorization,
    /// Header and cookie carry different tokens (or the cookie is repeated).
    #[error("the Authorization header and the __session cookie disagree")]
    ConflictingTokens,
    /// The token failed verification.
    #[error("token refused: {0}")]
    Token(#[from] TokenRejected),
    /// The token has no active organization (personal account).
    #[error("no active organization")]
    NoActiveOrg,
    /// The org claim cannot become a Tenant (empty id, unknown role shape).
    #[error("unusable organization claim")]
    BadOrgClaim,
    /// An org identifier in the request differs from the active org.
    #[error("org identifier in the {0} differs from the active org")]
    OrgMismatch(&'static str),
    /// The body could not be read within the size limit.
    #[error("request body too large or unreadable")]
    BodyUnreadable,
}

impl AuthRejected {
    /// The problem the client sees.
    pub fn problem(&self) -> Problem {
        match self {
            AuthRejected::MissingToken
            | AuthRejected::MalformedAuthorization
            | AuthRejected::ConflictingTokens
            | AuthRejected::Token(_) => Problem::unauthenticated(),
            AuthRejected::NoActiveOrg | AuthRejected::BadOrgClaim => Problem::new(
                http::StatusCode::FORBIDDEN,
                "no_active_organization",
                "Forbidden",
                "this route needs an active organization; choose one and get a new token",
            ),
            AuthRejected::OrgMismatch(_) => Problem::org_mismatch(),
            AuthRejected::BodyUnreadable => Problem::new(
                http::StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                "Content Too Large",
                "the request body is larger than the server accepts",
            ),
        }
    }
}

/// The proxy's state.
#[derive(Debug)]
pub struct Proxy {
    verifier: Verifier,
    verified: token_cache::TokenCache,
    max_body_bytes: usize,
    keys: Option<Arc<crate::identity::service::Identity>>,
    #[cfg(feature = "inject")]
    flaws: crate::inject::Flaws,
}

impl Proxy {
    /// A proxy verifying with `verifier`, buffering bodies up to `max_body_bytes`.
    pub fn new(verifier: Verifier, max_body_bytes: usize) -> Self {
        Self {
            verifier,
            verified: token_cache::TokenCache::default(),
            max_body_bytes,
            keys: None,
            #[cfg(feature = "inject")]
            flaws: crate::inject::Flaws::none(),
        }
    }

    /// Injects flaws.
    #[cfg(feature = "inject")]
    pub fn with_flaws(mut self, flaws: crate::inject::Flaws) -> Self {
        self.flaws = flaws;
        self
    }

    /// On an unknown `kid`, re-read the signing keys from `identity` (at
    /// most once per `identity.key_refresh_interval_ms`)
    /// and verify once more. Keys are never fetched from a URL in a token.
    pub fn with_key_refresh(mut self, identity: Arc<crate::identity::service::Identity>) -> Self {
        self.keys = Some(identity);
        self
    }

    /// Verifies `token`, refreshing the keys once if its `kid` is unknown.
    pub async fn verify(&self, token: &str) -> Result<SessionClaims, AuthRejected> {
        let now = now();
        let verified = self
            .verified
            .verify(&self.verifier, token, now, || self.verifier.verify(token, now));
        match verified {
            Err(TokenRejected::UnknownKey) => {
                let refreshed = match &self.keys {
                    Some(identity) => identity.refresh_keys_if_due().await,
                    None => false,
                };
                if refreshed {
                    let now = self::now();
                    Ok(self
                        .verified
                        .verify(&self.verifier, token, now, || self.verifier.verify(token, now))?)
                } else {
                    Err(TokenRejected::UnknownKey.into())
                }
            }
            other => Ok(other?),
        }
    }
}

/// `trust-org-param`: the org named by `?org_id=` or `X-Org-Id`, if any.
#[cfg(feature = "inject")]
fn org_param(parts: &http::request::Parts) -> Option<String> {
    let from_query = parts.uri.query().and_then(|q| {
        q.split('&').find_map(|pair| {
            let (name, value) = pair.split_once('=')?;
            (name == "org_id").then(|| value.to_string())
        })
    });
    from_query.or_else(|| {
        parts
            .headers
            .get("x-org-id")
            .and_then(|v| v.to_str().ok())
            .map(String::from)
    })
}

/// The session token a request carries, by the one rule: header and cookie
/// may both be present only if they are the same token.
pub fn session_token(headers: &http::HeaderMap) -> Result<String, AuthRejected> {
    let mut bearer = None;
    let mut authorizations = headers.get_all(header::AUTHORIZATION).iter();
    if let Some(value) = authorizations.next() {
        if authorizations.next().is_some() {
            return Err(AuthRejected::MalformedAuthorization);
        }
        let value = value.to_str().map_err(|_| AuthRejected::MalformedAuthorization)?;
        let (scheme, token) = value
            .split_once(' ')
            .ok_or(AuthRejected::MalformedAuthorization)?;
        if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() || token.trim() != token {
            return Err(AuthRejected::MalformedAuthorization);
        }
        bearer = Some(token.to_string());
    }
    let mut cookie = None;
    for value in headers.get_all(header::COOKIE) {
        let Ok(value) = value.to_str() else { continue };
        for pair in value.split(';') {
            let (name, token) = pair.split_once('=').unwrap_or((pair, ""));
            if name.trim() == SESSION_COOKIE {
                if cookie.is_some() {
                    return Err(AuthRejected::ConflictingTokens);
                }
                cookie = Some(token.trim().to_string());
            }
        }
    }
    match (bearer, cookie) {
        (Some(b), Some(c)) if b != c => Err(AuthRejected::ConflictingTokens),
        (Some(b), _) => Ok(b),
        (None, Some(c)) if !c.is_empty() => Ok(c),
        _ => Err(AuthRejected::MissingToken),
    }
}

/// The tenant a verified token stands for.
pub fn tenant_from(claims: &SessionClaims) -> Result<Tenant, AuthRejected> {
    let org = claims.o.as_ref().ok_or(AuthRejected::NoActiveOrg)?;
    let org_id = OrgId::new(org.id.clone()).ok_or(AuthRejected::BadOrgClaim)?;
    let role = Role::parse(&format!("org:{}", org.rol)).ok_or(AuthRejected::BadOrgClaim)?;
    let tenant = Tenant::new(org_id, claims.sub.clone(), role, claims.org_permissions());
    Ok(match &claims.sid {
        Some(sid) => tenant.in_session(sid.clone()),
        None => tenant,
    })
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// `role-from-claim-unsigned`: the Bearer token wins even if the cookie
/// differs, and the role comes from the cookie's payload, unverified.
#[cfg(feature = "inject")]
fn unsigned_cookie_role(headers: &http::HeaderMap) -> Option<Role> {
    use base64::Engine;
    let cookie = crate::clerk_api::frontend::cookie(headers, SESSION_COOKIE)?;
    let payload = cookie.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()?;
    let value: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    let rol = value.get("o")?.get("rol")?.as_str()?;
    Role::parse(&format!("org:{rol}"))
}

fn request_token(proxy: &Proxy, headers: &http::HeaderMap) -> Result<String, AuthRejected> {
    #[cfg(feature = "inject")]
    if proxy.flaws.has(crate::inject::Flaw::RoleFromClaimUnsigned) {
        if let Err(AuthRejected::ConflictingTokens) = session_token(headers) {
            let mut bearer_only = headers.clone();
            bearer_only.remove(header::COOKIE);
            return session_token(&bearer_only);
        }
    }
    let _ = proxy;
    session_token(headers)
}

async fn admit(proxy: &Proxy, request: Request) -> Result<Request, AuthRejected> {
    let token = request_token(proxy, request.headers())?;
    let claims = proxy.verify(&token).await?;
    #[allow(unused_mut)]
    let mut tenant = tenant_from(&claims)?;
    #[cfg(feature = "inject")]
    if proxy.flaws.has(crate::inject::Flaw::RoleFromClaimUnsigned) {
        if let Some(role) = unsigned_cookie_role(request.headers()) {
            tenant = Tenant::new(
                tenant.org().clone(),
                tenant.user_id(),
                role,
                claims.org_permissions(),
            );
        }
    }
    let (mut parts, body) = request.into_parts();
    #[cfg(feature = "inject")]
    if proxy.flaws.has(crate::inject::Flaw::TrustOrgParam) {
        if let Some(org) = org_param(&parts).and_then(OrgId::new) {
            tenant = Tenant::new(org, tenant.user_id(), tenant.role().clone(), Vec::new());
            parts.extensions.insert(tenant);
            return Ok(Request::from_parts(parts, body));
        }
    }
    let bytes = axum::body::to_bytes(body, proxy.max_body_bytes)
        .await
        .map_err(|_| AuthRejected::BodyUnreadable)?;
    let content_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let headers: Vec<(&str, &[u8])> = parts
        .headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_bytes()))
        .collect();
    let cookies: Vec<&str> = parts
        .headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    let guard_parts = org_guard::RequestParts {
        path: if flaw!(proxy.flaws, OrgPathUnchecked) {
            ""
        } else {
            parts.uri.path()
        },
        query: parts.uri.query(),
        headers,
        cookies,
        body: (!bytes.is_empty()).then_some((content_type.as_str(), bytes.as_ref())),
    };
    let active = org_guard::ActiveOrg {
        id: tenant.org().as_str(),
        slug: claims.o.as_ref().map(|o| o.slg.as_str()),
    };
    org_guard::check(&guard_parts, &active).map_err(|position| AuthRejected::OrgMismatch(position.name()))?;
    parts.extensions.insert(tenant);
    Ok(Request::from_parts(parts, Body::from(bytes)))
}

/// The middleware for signed-in routes: a verified session token, no org
/// required, no org data reachable (the handler gets a [`SignedIn`], never
/// a [`Tenant`]).
pub async fn signed_in_layer(State(proxy): State<Arc<Proxy>>, mut request: Request, next: Next) -> Response {
    request.extensions_mut().remove::<Tenant>();
    request.extensions_mut().remove::<SignedIn>();
    let verified = match session_token(request.headers()) {
        Ok(token) => proxy.verify(&token).await,
        Err(e) => Err(e),
    };
    match verified {
        Ok(claims) => {
            let Some(session_id) = claims.sid.clone() else {
                // The verifier refuses tokens without sid; stay closed if a flaw let one through.
                tracing::info!("request refused by the proxy: token without a session");
                return Problem::unauthenticated().into_response();
            };
            request.extensions_mut().insert(SignedIn {
                user_id: claims.sub,
                session_id,
                azp: claims.azp,
            });
            next.run(request).await
        }
        Err(rejection) => {
            tracing::info!(reason = %rejection, "request refused by the proxy");
            rejection.problem().into_response()
        }
    }
}

/// The middleware for org-required routes.
pub async fn layer(State(proxy): State<Arc<Proxy>>, mut request: Request, next: Next) -> Response {
    // Only the proxy makes Tenants.
    request.extensions_mut().remove::<Tenant>();
    request.extensions_mut().remove::<SignedIn>();
    match admit(&proxy, request).await {
        Ok(request) => next.run(request).await,
        Err(rejection) => {
            tracing::info!(reason = %rejection, "request refused by the proxy");
            rejection.problem().into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> http::HeaderMap {
        let mut map = http::HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, http::HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn token_sources_and_their_one_rule() {
        assert_eq!(
            session_token(&headers(&[("authorization", "Bearer t1")])),
            Ok("t1".into())
        );
        assert_eq!(
            session_token(&headers(&[("authorization", "bearer t1")])),
            Ok("t1".into())
        );
        assert_eq!(
            session_token(&headers(&[("cookie", "a=b; __session=t2")])),
            Ok("t2".into())
        );
        assert_eq!(
            session_token(&headers(&[
                ("authorization", "Bearer t1"),
                ("cookie", "__session=t1")
            ])),
            Ok("t1".into())
        );
        assert_eq!(
            session_token(&headers(&[
                ("authorization", "Bearer t1"),
                ("cookie", "__session=t2")
            ])),
            Err(AuthRejected::ConflictingTokens)
        );
        assert_eq!(
            session_token(&headers(&[
                ("cookie", "__session=t1"),
                ("cookie", "__session=t2")
            ])),
            Err(AuthRejected::ConflictingTokens)
        );
        assert_eq!(
            session_token(&headers(&[
                ("authorization", "Bearer t1"),
                ("authorization", "Bearer t1")
            ])),
            Err(AuthRejected::MalformedAuthorization)
        );
        assert_eq!(
            session_token(&headers(&[("authorization", "Basic dTpw")])),
            Err(AuthRejected::MalformedAuthorization)
        );
        assert_eq!(
            session_token(&headers(&[("authorization", "Bearer ")])),
            Err(AuthRejected::MalformedAuthorization)
        );
        assert_eq!(session_token(&headers(&[])), Err(AuthRejected::MissingToken));
        assert_eq!(
            session_token(&headers(&[("cookie", "__session=")])),
            Err(AuthRejected::MissingToken)
        );
    }

    #[test]
    fn every_401_looks_the_same() {
        let bodies: Vec<Problem> = [
            AuthRejected::MissingToken,
            AuthRejected::ConflictingTokens,
            AuthRejected::Token(TokenRejected::Expired),
            AuthRejected::Token(TokenRejected::AlgorithmNotAllowed("none".into())),
        ]
        .iter()
        .map(AuthRejected::problem)
        .collect();
        assert!(bodies.windows(2).all(|w| w[0] == w[1]));
    }
}
