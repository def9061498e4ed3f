//! The `Tenant`: who is acting, in which org, with which role. A handler that
//! takes a `Tenant` can reach that org's data (through `TenantDb`); one that
//! does not, cannot.

use axum::extract::FromRequestParts;
use http::request::Parts;

use crate::problem::Problem;

/// An organization id (`org_…`). Never empty.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OrgId(String);

impl OrgId {
    /// Wraps a non-empty org id; `None` for an empty or over-long one.
    pub fn new(id: impl Into<String>) -> Option<Self> {
        let id = id.into();
        (!id.is_empty() && id.len() <= 128 && !id.chars().any(char::is_control)).then_some(Self(id))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The role a member has in the active org.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// `org:admin`
    Admin,
    /// `org:member`
    Member,
    /// Any other `org:<name>` role.
    Custom(String),
}

impl Role {
    /// Parses Clerk's role key (`org:admin`, `org:member`, `org:<custom>`).
    pub fn parse(key: &str) -> Option<Self> {
        match key {
            "org:admin" => Some(Role::Admin),
            "org:member" => Some(Role::Member),
            other => other
                .strip_prefix("org:")
                .filter(|name| !name.is_empty() && !name.contains(':'))
                .map(|_| Role::Custom(other.to_string())),
        }
    }

    /// Clerk's role key.
    pub fn key(&self) -> &str {
        match self {
            Role::Admin => "org:admin",
            Role::Member => "org:member",
            Role::Custom(key) => key,
        }
    }
}

/// Who acts: org, user, role and permissions, as verified by the auth layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tenant {
    org: OrgId,
    user_id: String,
    role: Role,
    permissions: Vec<String>,
    session_id: Option<String>,
}

impl Tenant {
    /// Builds a tenant from verified identity. Only the auth layer (and the
    /// job runner, for the org a job belongs to) should call this.
    pub fn new(org: OrgId, user_id: impl Into<String>, role: Role, permissions: Vec<String>) -> Self {
        Self {
            org,
            user_id: user_id.into(),
            role,
            permissions,
            session_id: None,
        }
    }

    /// The same tenant acting in session `session_id` (from the verified token).
    pub fn in_session(mut self, session_id: impl Into<String>) -> Self {
        self.session_id = Some(session_id.into());
        self
    }

    /// The session the request's token belongs to (none for jobs and dev-auth).
    pub fn session_id(&self) -> Option<&str> {
        self.session_id.as_deref()
    }

    /// A tenant for a background job of `org`, acting as the user who
    /// requested it, with no permissions beyond reading and writing the
    /// job's own data.
    pub fn for_job(org: OrgId, requested_by: impl Into<String>) -> Self {
        Self::new(org, requested_by, Role::Member, Vec::new())
    }

    /// The active org.
    pub fn org(&self) -> &OrgId {
        &self.org
    }

    /// The acting user.
    pub fn user_id(&self) -> &str {
        &self.user_id
    }

    /// The role in the active org.
    pub fn role(&self) -> &Role {
        &self.role
    }

    /// Whether the tenant's role is `key` (`org:admin`, `org:member`,
    /// `org:<custom>`), exactly. Fail-closed: a malformed key matches nothing.
    pub fn has_role(&self, key: &str) -> bool {
        Role::parse(key).is_some_and(|role| role == self.role)
    }

    /// Whether the tenant holds `permission` (`org:<feature>:<perm>`), exactly
    /// as listed in its verified token. Fail-closed: anything not listed is not
    /// held, whatever the role.
    pub fn has_permission(&self, permission: &str) -> bool {
        self.permissions.iter().any(|p| p == permission)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Tenant {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        // The auth layer inserts the Tenant; without it, the route was wired
        // without auth — refuse rather than guess.
        parts
            .extensions
            .get::<Tenant>()
            .cloned()
            .ok_or_else(Problem::unauthenticated)
    }
}

/// A verified session without an org requirement: what signed-in (not
/// org-required) routes may know. Only the proxy's signed-in layer makes one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedIn {
    /// The user.
    pub user_id: String,
    /// The session the token belongs to.
    pub session_id: String,
    /// The authorized party the token was minted for.
    pub azp: Option<String>,
}

impl<S: Send + Sync> FromRequestParts<S> for SignedIn {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<SignedIn>()
            .cloned()
            .ok_or_else(Problem::unauthenticated)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_parse_like_clerk() {
        assert_eq!(Role::parse("org:admin"), Some(Role::Admin));
        assert_eq!(Role::parse("org:member"), Some(Role::Member));
        assert_eq!(
            Role::parse("org:billing"),
            Some(Role::Custom("org:billing".into()))
        );
        assert_eq!(Role::parse("admin"), None);
        assert_eq!(Role::parse("org:"), None);
        assert_eq!(Role::parse("org:a:b"), None);
    }

    #[test]
    fn has_checks_fail_closed() {
        let t = Tenant::new(
            OrgId::new("org_1").unwrap(),
            "user_1",
            Role::Member,
            vec!["org:projects:read".into()],
        );
        assert!(t.has_role("org:member"));
        for other in ["org:admin", "member", "", "org:member ", "ORG:MEMBER"] {
            assert!(!t.has_role(other), "{other}");
        }
        assert!(t.has_permission("org:projects:read"));
        for other in ["org:projects:write", "org:projects:*", "org:projects", ""] {
            assert!(!t.has_permission(other), "{other}");
        }
    }

    #[test]
    fn org_ids_are_never_empty() {
        assert!(OrgId::new("").is_none());
        assert!(OrgId::new("org\n1").is_none());
        assert!(OrgId::new("org_1").is_some());
    }
}
