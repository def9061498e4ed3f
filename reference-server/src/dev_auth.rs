//! A stand-in for the auth proxy, for tests and `serve --dev-auth` only.
//!
//! It trusts the header `X-Tenantry-Dev-Tenant: <org_id>;<user_id>;<role>[;<perm>,<perm>…]`
//! and turns it into a [`Tenant`]. That is exactly the "trust a client-supplied
//! org" mistake the harness hunts for, which is why it is off unless asked
//! for by name and why `serve` prints a warning when it is on. Without it,
//! org routes sit behind [`crate::proxy`] (verified Clerk session tokens and
//! the org guard).

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::problem::Problem;
use crate::tenant::{OrgId, Role, Tenant};

/// The header the dev layer trusts.
pub const HEADER: &str = "x-tenantry-dev-tenant";

/// Parses the header value.
pub fn parse(value: &str) -> Option<Tenant> {
    let mut parts = value.split(';');
    let org = OrgId::new(parts.next()?.trim())?;
    let user = parts.next()?.trim();
    if user.is_empty() {
        return None;
    }
    let role = Role::parse(parts.next()?.trim())?;
    let permissions = parts
        .next()
        .map(|p| {
            p.split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default();
    if parts.next().is_some() {
        return None;
    }
    Some(Tenant::new(org, user, role, permissions))
}

/// The middleware: a present but malformed header is refused; an absent one
/// leaves the request without a `Tenant` (tenant routes then answer 401).
pub async fn layer(mut request: Request, next: Next) -> Response {
    // A client must never smuggle in a Tenant of its own making.
    request.extensions_mut().remove::<Tenant>();
    if let Some(value) = request.headers().get(HEADER) {
        match value.to_str().ok().and_then(parse) {
            Some(tenant) => {
                request.extensions_mut().insert(tenant);
            }
            None => return Problem::unauthenticated().into_response(),
        }
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_refuses() {
        let t = parse("org_a;user_1;org:admin;org:projects:write").unwrap();
        assert_eq!(t.org().as_str(), "org_a");
        assert!(t.has_permission("org:projects:write"));
        assert!(parse("org_a;user_1").is_none());
        assert!(parse(";user_1;org:admin").is_none());
        assert!(parse("org_a;user_1;admin").is_none());
        assert!(parse("org_a;user_1;org:admin;p;extra").is_none());
    }
}
