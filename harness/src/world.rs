//! Worlds: the orgs, users and memberships a run needs. A [`WorldSpec`] is
//! what the harness wants (keyed by short names such as `a`, `alice`); a
//! [`World`] is what exists at the target once it is provisioned (with the
//! ids the identity service assigned, or the harness minted).

/// An org the harness wants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrgSpec {
    /// Short name used by campaigns and scenario files (`a`, `acme`).
    pub key: String,
    /// Display name.
    pub name: String,
    /// Slug.
    pub slug: String,
}

/// A user the harness wants, with the orgs it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserSpec {
    /// Short name (`alice`).
    pub key: String,
    /// Email address.
    pub email: String,
    /// (org key, role) pairs, e.g. `("a", "org:admin")`.
    pub memberships: Vec<(String, String)>,
}

/// Everything the harness wants to exist.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WorldSpec {
    /// Orgs.
    pub orgs: Vec<OrgSpec>,
    /// Users.
    pub users: Vec<UserSpec>,
}

impl WorldSpec {
    /// A world of `orgs` (keys) and `users` (key, [(org key, role)]), named
    /// for one run: orgs `{label} {key} {tag}` with slug `{prefix}-{key}-{tag}`,
    /// users `{prefix}-{key}-{tag}@tenantry.invalid`.
    pub fn tagged(
        label: &str,
        prefix: &str,
        tag: &str,
        orgs: &[&str],
        users: &[(&str, &[(&str, &str)])],
    ) -> Self {
        Self {
            orgs: orgs
                .iter()
                .map(|key| OrgSpec {
                    key: key.to_string(),
                    name: format!("{label} {key} {tag}"),
                    slug: format!("{prefix}-{key}-{tag}"),
                })
                .collect(),
            users: users
                .iter()
                .map(|(key, memberships)| UserSpec {
                    key: key.to_string(),
                    email: format!("{prefix}-{key}-{tag}@tenantry.invalid"),
                    memberships: memberships
                        .iter()
                        .map(|(o, r)| (o.to_string(), r.to_string()))
                        .collect(),
                })
                .collect(),
        }
    }
}

/// An org as it exists at the target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Org {
    /// The spec's key.
    pub key: String,
    /// The id (`org_…`).
    pub id: String,
    /// Slug.
    pub slug: String,
    /// Display name.
    pub name: String,
}

/// A user as it exists at the target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// The spec's key.
    pub key: String,
    /// The id (`user_…`).
    pub id: String,
    /// Email address.
    pub email: String,
    /// (org key, role) pairs, kept current by membership changes.
    pub memberships: Vec<(String, String)>,
}

/// What exists at the target.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct World {
    /// Orgs.
    pub orgs: Vec<Org>,
    /// Users.
    pub users: Vec<User>,
}

impl World {
    /// The org with `key`.
    pub fn org(&self, key: &str) -> Option<&Org> {
        self.orgs.iter().find(|o| o.key == key)
    }

    /// The user with `key`.
    pub fn user(&self, key: &str) -> Option<&User> {
        self.users.iter().find(|u| u.key == key)
    }

    /// `user`'s role in `org` (keys), if a member.
    pub fn role(&self, user: &str, org: &str) -> Option<&str> {
        self.user(user)?
            .memberships
            .iter()
            .find(|(o, _)| o == org)
            .map(|(_, r)| r.as_str())
    }

    pub(crate) fn user_mut(&mut self, key: &str) -> Option<&mut User> {
        self.users.iter_mut().find(|u| u.key == key)
    }
}
