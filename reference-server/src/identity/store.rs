//! The identity store: users, organizations, roles, memberships, clients,
//! sign-in attempts, sessions, JWT templates and the test outbox, in schema
//! `identity` (see `migrations/0002_identity.sql`), reached as the
//! `tenantry_identity` role — which cannot see tenant data, as the data API's
//! role cannot see this.
//!
//! The store is plain persistence with the invariants the schema can hold
//! (unique emails and slugs, one membership per user and org, a sign-in
//! completes at most once). The decisions — who may sign in, which token to
//! mint — live in [`super::service`].

use deadpool_postgres::{GenericClient, Pool};
use serde_json::Value;
use tokio_postgres::error::SqlState;
use tokio_postgres::Row;

use super::template::Template;
use crate::ids::{new_id, IdKind};

/// A store failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The named resource does not exist.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// A unique value is taken (`email_address`, `slug`, `membership`, `name`).
    #[error("{0} is already taken")]
    Taken(&'static str),
    /// A value breaks a schema rule (e.g. a slug's shape, an unknown role).
    #[error("{0}")]
    Invalid(String),
    /// The database could not be reached or failed.
    #[error("identity store unavailable: {0}")]
    Unavailable(String),
}

impl From<tokio_postgres::Error> for StoreError {
    fn from(e: tokio_postgres::Error) -> Self {
        let Some(db) = e.as_db_error() else {
            return StoreError::Unavailable(e.to_string());
        };
        let constraint = db.constraint().unwrap_or_default();
        match *db.code() {
            SqlState::UNIQUE_VIOLATION => StoreError::Taken(match constraint {
                "users_email_key" => "email_address",
                "organizations_slug_key" => "slug",
                "memberships_organization_id_user_id_key" => "membership",
                "jwt_templates_name_key" => "name",
                _ => "value",
            }),
            SqlState::FOREIGN_KEY_VIOLATION => match constraint {
                "memberships_role_fkey" => StoreError::Invalid("unknown role".into()),
                "organizations_created_by_fkey" => StoreError::NotFound("user"),
                _ => StoreError::Invalid(format!("reference broken ({constraint})")),
            },
            SqlState::CHECK_VIOLATION => StoreError::Invalid(match constraint {
                "organizations_slug_check" => {
                    "slug must be 1-63 lowercase letters, digits and dashes, not starting with a dash".into()
                }
                "organizations_name_check" => "name must not be empty".into(),
                "users_email_check" => "email address must not be empty".into(),
                other => format!("value refused by rule {other}"),
            }),
            _ => StoreError::Unavailable(db.message().to_string()),
        }
    }
}

impl From<deadpool_postgres::PoolError> for StoreError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        StoreError::Unavailable(e.to_string())
    }
}

type Result<T> = std::result::Result<T, StoreError>;

/// A user.
#[derive(Debug, Clone, PartialEq)]
pub struct User {
    /// `user_…`
    pub id: String,
    /// `idn_…`, the id of the (single, primary) email address.
    pub email_address_id: String,
    /// The email address.
    pub email: String,
    /// Whether a password is set.
    pub password_enabled: bool,
    /// First name.
    pub first_name: Option<String>,
    /// Last name.
    pub last_name: Option<String>,
    /// Readable by the frontend and templates.
    pub public_metadata: Value,
    /// Backend only.
    pub private_metadata: Value,
    /// Writable by the user.
    pub unsafe_metadata: Value,
    /// Whether every sign-in needs an email-code second factor.
    pub two_factor_enabled: bool,
    /// Banned users cannot sign in or get tokens.
    pub banned: bool,
    /// Unix ms.
    pub last_sign_in_at: Option<i64>,
    /// Unix ms.
    pub created_at: i64,
    /// Unix ms.
    pub updated_at: i64,
}

const USER_COLUMNS: &str = "u.id, u.email_address_id, u.email, u.password_hash IS NOT NULL, u.first_name,
    u.last_name, u.public_metadata, u.private_metadata, u.unsafe_metadata, u.two_factor_enabled,
    u.banned, identity.ms(u.last_sign_in_at), identity.ms(u.created_at), identity.ms(u.updated_at)";

fn user(row: &Row) -> User {
    User {
        id: row.get(0),
        email_address_id: row.get(1),
        email: row.get(2),
        password_enabled: row.get(3),
        first_name: row.get(4),
        last_name: row.get(5),
        public_metadata: row.get(6),
        private_metadata: row.get(7),
        unsafe_metadata: row.get(8),
        two_factor_enabled: row.get(9),
        banned: row.get(10),
        last_sign_in_at: row.get(11),
        created_at: row.get(12),
        updated_at: row.get(13),
    }
}

/// What a new user is made of.
#[derive(Debug, Clone, Default)]
pub struct NewUser {
    /// Email address (unique, case-insensitively).
    pub email: String,
    /// A PHC hash from [`super::password::hash`], if the user has a password.
    pub password_hash: Option<String>,
    /// First name.
    pub first_name: Option<String>,
    /// Last name.
    pub last_name: Option<String>,
    /// Public metadata (an object).
    pub public_metadata: Option<Value>,
    /// Private metadata (an object).
    pub private_metadata: Option<Value>,
    /// Unsafe metadata (an object).
    pub unsafe_metadata: Option<Value>,
    /// Email-code second factor at every sign-in.
    pub two_factor_enabled: bool,
}

/// An organization.
#[derive(Debug, Clone, PartialEq)]
pub struct Organization {
    /// `org_…`
    pub id: String,
    /// Unique slug.
    pub slug: String,
    /// Display name.
    pub name: String,
    /// Public metadata.
    pub public_metadata: Value,
    /// Private metadata.
    pub private_metadata: Value,
    /// 0: unlimited.
    pub max_allowed_memberships: i32,
    /// The user who created it.
    pub created_by: Option<String>,
    /// Members, where asked for.
    pub members_count: Option<i64>,
    /// Unix ms.
    pub created_at: i64,
    /// Unix ms.
    pub updated_at: i64,
}

const ORG_COLUMNS: &str = "o.id, o.slug, o.name, o.public_metadata, o.private_metadata,
    o.max_allowed_memberships, o.created_by, identity.ms(o.created_at), identity.ms(o.updated_at)";

fn organization(row: &Row, offset: usize) -> Organization {
    Organization {
        id: row.get(offset),
        slug: row.get(offset + 1),
        name: row.get(offset + 2),
        public_metadata: row.get(offset + 3),
        private_metadata: row.get(offset + 4),
        max_allowed_memberships: row.get(offset + 5),
        created_by: row.get(offset + 6),
        members_count: None,
        created_at: row.get(offset + 7),
        updated_at: row.get(offset + 8),
    }
}

/// What a new organization is made of.
#[derive(Debug, Clone, Default)]
pub struct NewOrganization {
    /// Display name.
    pub name: String,
    /// Slug; derived from the name when absent.
    pub slug: Option<String>,
    /// The creator, who becomes its first admin.
    pub created_by: Option<String>,
    /// Public metadata.
    pub public_metadata: Option<Value>,
    /// Private metadata.
    pub private_metadata: Option<Value>,
    /// 0: unlimited.
    pub max_allowed_memberships: Option<i32>,
}

/// A membership, with the org and the member's public data.
#[derive(Debug, Clone, PartialEq)]
pub struct Membership {
    /// `orgmem_…`
    pub id: String,
    /// Role key (`org:admin`).
    pub role: String,
    /// The role's display name.
    pub role_name: String,
    /// The role's permissions (`org:<feature>:<perm>`).
    pub permissions: Vec<String>,
    /// Public metadata.
    pub public_metadata: Value,
    /// Private metadata.
    pub private_metadata: Value,
    /// The organization.
    pub organization: Organization,
    /// The member.
    pub user: MemberData,
    /// Unix ms.
    pub created_at: i64,
    /// Unix ms.
    pub updated_at: i64,
}

/// What a membership shows of its user.
#[derive(Debug, Clone, PartialEq)]
pub struct MemberData {
    /// `user_…`
    pub user_id: String,
    /// The email address.
    pub identifier: String,
    /// First name.
    pub first_name: Option<String>,
    /// Last name.
    pub last_name: Option<String>,
}

const MEMBERSHIP_SELECT: &str = "SELECT m.id, m.role, r.name, r.permissions, m.public_metadata,
        m.private_metadata, identity.ms(m.created_at), identity.ms(m.updated_at),
        u.id, u.email, u.first_name, u.last_name,
        o.id, o.slug, o.name, o.public_metadata, o.private_metadata,
        o.max_allowed_memberships, o.created_by, identity.ms(o.created_at), identity.ms(o.updated_at)
    FROM identity.memberships m
    JOIN identity.roles r ON r.key = m.role
    JOIN identity.users u ON u.id = m.user_id
    JOIN identity.organizations o ON o.id = m.organization_id";

fn membership(row: &Row) -> Membership {
    Membership {
        id: row.get(0),
        role: row.get(1),
        role_name: row.get(2),
        permissions: row.get(3),
        public_metadata: row.get(4),
        private_metadata: row.get(5),
        created_at: row.get(6),
        updated_at: row.get(7),
        user: MemberData {
            user_id: row.get(8),
            identifier: row.get(9),
            first_name: row.get(10),
            last_name: row.get(11),
        },
        organization: organization(row, 12),
    }
}

/// A session.
#[derive(Debug, Clone, PartialEq)]
pub struct Session {
    /// `sess_…`
    pub id: String,
    /// The device.
    pub client_id: String,
    /// The user.
    pub user_id: String,
    /// `active`, `revoked`, `ended`, `removed`, `expired`.
    pub status: String,
    /// The active org (null: personal account).
    pub last_active_organization_id: Option<String>,
    /// Unix ms of the first-factor verification.
    pub first_factor_at: i64,
    /// Unix ms of the second-factor verification, if any.
    pub second_factor_at: Option<i64>,
    /// Unix ms.
    pub last_active_at: i64,
    /// Unix ms.
    pub expire_at: i64,
    /// Unix ms.
    pub created_at: i64,
    /// Unix ms.
    pub updated_at: i64,
}

const SESSION_COLUMNS: &str = "s.id, s.client_id, s.user_id,
    CASE WHEN s.status = 'active' AND s.expire_at <= now() THEN 'expired' ELSE s.status END,
    s.last_active_organization_id, identity.ms(s.first_factor_at), identity.ms(s.second_factor_at),
    identity.ms(s.last_active_at), identity.ms(s.expire_at), identity.ms(s.created_at),
    identity.ms(s.updated_at)";

fn session(row: &Row) -> Session {
    Session {
        id: row.get(0),
        client_id: row.get(1),
        user_id: row.get(2),
        status: row.get(3),
        last_active_organization_id: row.get(4),
        first_factor_at: row.get(5),
        second_factor_at: row.get(6),
        last_active_at: row.get(7),
        expire_at: row.get(8),
        created_at: row.get(9),
        updated_at: row.get(10),
    }
}

/// A sign-in attempt.
#[derive(Debug, Clone, PartialEq)]
pub struct SignIn {
    /// `sia_…`
    pub id: String,
    /// The device it runs on (only that device may drive it).
    pub client_id: String,
    /// What the user typed.
    pub identifier: Option<String>,
    /// The user, once the identifier names one.
    pub user_id: Option<String>,
    /// The status (see [`super::service::SignInStatus`]).
    pub status: String,
    /// Unix ms of the first-factor verification.
    pub first_factor_at: Option<i64>,
    /// Whether an email code is pending.
    pub code_pending: bool,
    /// Unix ms.
    pub code_expires_at: Option<i64>,
    /// Failed code attempts.
    pub code_attempts: i32,
    /// Failed password attempts.
    pub password_attempts: i32,
    /// The session it created.
    pub created_session_id: Option<String>,
    /// Unix ms.
    pub created_at: i64,
    /// Unix ms.
    pub expire_at: i64,
}

const SIGN_IN_COLUMNS: &str = "id, client_id, identifier, user_id,
    CASE WHEN status NOT IN ('complete', 'abandoned') AND expire_at <= now() THEN 'abandoned' ELSE status END,
    identity.ms(first_factor_at), code_sha256 IS NOT NULL, identity.ms(code_expires_at),
    code_attempts, password_attempts, created_session_id, identity.ms(created_at), identity.ms(expire_at)";

fn sign_in(row: &Row) -> SignIn {
    SignIn {
        id: row.get(0),
        client_id: row.get(1),
        identifier: row.get(2),
        user_id: row.get(3),
        status: row.get(4),
        first_factor_at: row.get(5),
        code_pending: row.get(6),
        code_expires_at: row.get(7),
        code_attempts: row.get(8),
        password_attempts: row.get(9),
        created_session_id: row.get(10),
        created_at: row.get(11),
        expire_at: row.get(12),
    }
}

/// A stored JWT template.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredTemplate {
    /// `jtmp_…`
    pub id: String,
    /// The template.
    pub template: Template,
    /// Unix ms.
    pub created_at: i64,
    /// Unix ms.
    pub updated_at: i64,
}

const TEMPLATE_COLUMNS: &str =
    "id, name, claims, lifetime, allowed_clock_skew, identity.ms(created_at), identity.ms(updated_at)";

fn stored_template(row: &Row) -> Result<StoredTemplate> {
    let claims: Value = row.get(2);
    let Value::Object(claims) = claims else {
        return Err(StoreError::Invalid(
            "stored template claims are not an object".into(),
        ));
    };
    Ok(StoredTemplate {
        id: row.get(0),
        template: Template {
            name: row.get(1),
            claims,
            lifetime: i64::from(row.get::<_, i32>(3)),
            allowed_clock_skew: i64::from(row.get::<_, i32>(4)),
        },
        created_at: row.get(5),
        updated_at: row.get(6),
    })
}

/// Makes a fresh signing key: its `kid` and PKCS#8 DER (`None` on failure).
pub type KeyMaker = dyn Fn() -> Option<(String, Vec<u8>)> + Sync;

/// A stored signing key. `Debug` omits the private key.
#[derive(Clone)]
pub struct StoredKey {
    /// The key id.
    pub kid: String,
    /// PKCS#8 DER (secret).
    pub pkcs8: Vec<u8>,
    /// Milliseconds since it was retired; `None` for the active key.
    pub retired_ms_ago: Option<i64>,
}

impl std::fmt::Debug for StoredKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredKey")
            .field("kid", &self.kid)
            .field("retired_ms_ago", &self.retired_ms_ago)
            .finish_non_exhaustive()
    }
}

/// A code in the test outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxMessage {
    /// The recipient.
    pub email: String,
    /// The sign-in the code completes.
    pub sign_in_id: String,
    /// The code.
    pub code: String,
    /// Unix ms.
    pub created_at: i64,
}

/// The store.
#[derive(Clone)]
pub struct Store {
    pool: Pool,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").finish_non_exhaustive()
    }
}

/// A slug from a display name: lowercase ASCII letters and digits, other
/// runs become one dash, at most 48 characters (a suffix is added on conflict).
pub fn slugify(name: &str) -> String {
    let mut slug = String::new();
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            slug.push(c.to_ascii_lowercase());
        } else if !slug.is_empty() && !slug.ends_with('-') {
            slug.push('-');
        }
        if slug.len() >= 48 {
            break;
        }
    }
    let slug = slug.trim_end_matches('-').to_string();
    if slug.is_empty() {
        "org".into()
    } else {
        slug
    }
}

impl Store {
    /// A store over `pool` (connected as `tenantry_identity`).
    pub fn new(pool: Pool) -> Self {
        Self { pool }
    }

    async fn client(&self) -> Result<deadpool_postgres::Object> {
        Ok(self.pool.get().await?)
    }

    // --- users ---

    /// Creates a user.
    pub async fn create_user(&self, new: NewUser) -> Result<User> {
        let c = self.client().await?;
        let row = c
            .query_one(
                &format!(
                    "INSERT INTO identity.users AS u (id, email_address_id, email, password_hash, first_name,
                         last_name, public_metadata, private_metadata, unsafe_metadata, two_factor_enabled)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
                     RETURNING {USER_COLUMNS}"
                ),
                &[
                    &new_id(IdKind::User),
                    &new_id(IdKind::EmailAddress),
                    &new.email,
                    &new.password_hash,
                    &new.first_name,
                    &new.last_name,
                    &new.public_metadata
                        .unwrap_or_else(|| Value::Object(Default::default())),
                    &new.private_metadata
                        .unwrap_or_else(|| Value::Object(Default::default())),
                    &new.unsafe_metadata
                        .unwrap_or_else(|| Value::Object(Default::default())),
                    &new.two_factor_enabled,
                ],
            )
            .await?;
        Ok(user(&row))
    }

    /// A user by id.
    pub async fn user(&self, id: &str) -> Result<Option<User>> {
        let c = self.client().await?;
        let row = c
            .query_opt(
                &format!("SELECT {USER_COLUMNS} FROM identity.users u WHERE u.id = $1"),
                &[&id],
            )
            .await?;
        Ok(row.as_ref().map(user))
    }

    /// A user and their password hash, by email (case-insensitive).
    pub async fn user_by_email(&self, email: &str) -> Result<Option<(User, Option<String>)>> {
        let c = self.client().await?;
        let row = c
            .query_opt(
                &format!(
                    "SELECT {USER_COLUMNS}, u.password_hash FROM identity.users u WHERE lower(u.email) = lower($1)"
                ),
                &[&email],
            )
            .await?;
        Ok(row.map(|r| (user(&r), r.get(14))))
    }

    /// Users, newest first, optionally only those with one of `emails`.
    pub async fn users(&self, emails: &[String], limit: i64, offset: i64) -> Result<Vec<User>> {
        let c = self.client().await?;
        let lower: Vec<String> = emails.iter().map(|e| e.to_lowercase()).collect();
        let rows = c
            .query(
                &format!(
                    "SELECT {USER_COLUMNS} FROM identity.users u
                     WHERE cardinality($1::text[]) = 0 OR lower(u.email) = ANY($1)
                     ORDER BY u.created_at DESC, u.id LIMIT $2 OFFSET $3"
                ),
                &[&lower, &limit, &offset],
            )
            .await?;
        Ok(rows.iter().map(user).collect())
    }

    /// How many users there are (with one of `emails`, if given).
    pub async fn count_users(&self, emails: &[String]) -> Result<i64> {
        let c = self.client().await?;
        let lower: Vec<String> = emails.iter().map(|e| e.to_lowercase()).collect();
        let row = c
            .query_one(
                "SELECT count(*) FROM identity.users u
                 WHERE cardinality($1::text[]) = 0 OR lower(u.email) = ANY($1)",
                &[&lower],
            )
            .await?;
        Ok(row.get(0))
    }

    /// Deletes a user (their memberships and sessions go with them).
    pub async fn delete_user(&self, id: &str) -> Result<()> {
        let c = self.client().await?;
        let n = c
            .execute("DELETE FROM identity.users WHERE id = $1", &[&id])
            .await?;
        if n == 0 {
            return Err(StoreError::NotFound("user"));
        }
        Ok(())
    }

    /// Bans or unbans a user. A ban also revokes every active session.
    pub async fn set_banned(&self, id: &str, banned: bool) -> Result<User> {
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        let row = tx
            .query_opt(
                &format!(
                    "UPDATE identity.users u SET banned = $2, updated_at = now() WHERE u.id = $1
                     RETURNING {USER_COLUMNS}"
                ),
                &[&id, &banned],
            )
            .await?
            .ok_or(StoreError::NotFound("user"))?;
        if banned {
            tx.execute(
                "UPDATE identity.sessions SET status = 'revoked', updated_at = now()
                 WHERE user_id = $1 AND status = 'active'",
                &[&id],
            )
            .await?;
        }
        tx.commit().await?;
        Ok(user(&row))
    }

    // --- organizations ---

    /// Creates an organization; its creator (if any) becomes `org:admin`.
    /// Without a slug, one is derived from the name (with a random suffix if taken).
    pub async fn create_organization(&self, new: NewOrganization) -> Result<Organization> {
        let explicit = new.slug.is_some();
        let base = new.slug.clone().unwrap_or_else(|| slugify(&new.name));
        for attempt in 0..4 {
            let slug = if attempt == 0 || explicit {
                base.clone()
            } else {
                let suffix = &new_id(IdKind::Organization)[4..10];
                format!("{base}-{suffix}")
            };
            match self.insert_organization(&new, &slug).await {
                Err(StoreError::Taken("slug")) if !explicit => continue,
                other => return other,
            }
        }
        Err(StoreError::Taken("slug"))
    }

    async fn insert_organization(&self, new: &NewOrganization, slug: &str) -> Result<Organization> {
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        let row = tx
            .query_one(
                &format!(
                    "INSERT INTO identity.organizations AS o (id, slug, name, public_metadata,
                         private_metadata, max_allowed_memberships, created_by)
                     VALUES ($1, $2, $3, $4, $5, $6, $7)
                     RETURNING {ORG_COLUMNS}"
                ),
                &[
                    &new_id(IdKind::Organization),
                    &slug,
                    &new.name,
                    &new.public_metadata
                        .clone()
                        .unwrap_or_else(|| Value::Object(Default::default())),
                    &new.private_metadata
                        .clone()
                        .unwrap_or_else(|| Value::Object(Default::default())),
                    &new.max_allowed_memberships.unwrap_or(0),
                    &new.created_by,
                ],
            )
            .await?;
        let mut org = organization(&row, 0);
        if let Some(creator) = &new.created_by {
            tx.execute(
                "INSERT INTO identity.memberships (id, organization_id, user_id, role)
                 VALUES ($1, $2, $3, 'org:admin')",
                &[&new_id(IdKind::Membership), &org.id, creator],
            )
            .await?;
        }
        tx.commit().await?;
        org.members_count = Some(i64::from(new.created_by.is_some()));
        Ok(org)
    }

    /// An organization by id or slug, with its member count.
    pub async fn organization(&self, id_or_slug: &str) -> Result<Option<Organization>> {
        let c = self.client().await?;
        let row = c
            .query_opt(
                &format!(
                    "SELECT {ORG_COLUMNS},
                         (SELECT count(*) FROM identity.memberships m WHERE m.organization_id = o.id)
                     FROM identity.organizations o WHERE o.id = $1 OR o.slug = $1"
                ),
                &[&id_or_slug],
            )
            .await?;
        Ok(row.map(|r| {
            let mut org = organization(&r, 0);
            org.members_count = Some(r.get(9));
            org
        }))
    }

    /// Organizations, newest first, and the total.
    pub async fn organizations(&self, limit: i64, offset: i64) -> Result<(Vec<Organization>, i64)> {
        let c = self.client().await?;
        let rows = c
            .query(
                &format!(
                    "SELECT {ORG_COLUMNS}, count(*) OVER () FROM identity.organizations o
                     ORDER BY o.created_at DESC, o.id LIMIT $1 OFFSET $2"
                ),
                &[&limit, &offset],
            )
            .await?;
        let total = match rows.first() {
            Some(r) => r.get(9),
            None => c
                .query_one("SELECT count(*) FROM identity.organizations", &[])
                .await?
                .get(0),
        };
        Ok((rows.iter().map(|r| organization(r, 0)).collect(), total))
    }

    /// Deletes an organization (memberships go with it; sessions lose it as
    /// their active org).
    pub async fn delete_organization(&self, id: &str) -> Result<()> {
        let c = self.client().await?;
        let n = c
            .execute("DELETE FROM identity.organizations WHERE id = $1", &[&id])
            .await?;
        if n == 0 {
            return Err(StoreError::NotFound("organization"));
        }
        Ok(())
    }

    // --- memberships ---

    /// Adds `user_id` to `org_id` with `role`, honouring the org's member cap.
    pub async fn create_membership(&self, org_id: &str, user_id: &str, role: &str) -> Result<Membership> {
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        // Lock the org row so concurrent adds cannot both pass the cap check.
        let cap = tx
            .query_opt(
                "SELECT max_allowed_memberships FROM identity.organizations WHERE id = $1 FOR UPDATE",
                &[&org_id],
            )
            .await?
            .ok_or(StoreError::NotFound("organization"))?;
        let cap: i32 = cap.get(0);
        if tx
            .query_opt("SELECT 1 FROM identity.users WHERE id = $1", &[&user_id])
            .await?
            .is_none()
        {
            return Err(StoreError::NotFound("user"));
        }
        if cap > 0 {
            let count: i64 = tx
                .query_one(
                    "SELECT count(*) FROM identity.memberships WHERE organization_id = $1",
                    &[&org_id],
                )
                .await?
                .get(0);
            if count >= i64::from(cap) {
                return Err(StoreError::Invalid(
                    "the organization has reached its maximum number of members".into(),
                ));
            }
        }
        let id = new_id(IdKind::Membership);
        tx.execute(
            "INSERT INTO identity.memberships (id, organization_id, user_id, role) VALUES ($1, $2, $3, $4)",
            &[&id, &org_id, &user_id, &role],
        )
        .await?;
        let row = tx
            .query_one(&format!("{MEMBERSHIP_SELECT} WHERE m.id = $1"), &[&id])
            .await?;
        tx.commit().await?;
        Ok(membership(&row))
    }

    /// The membership of `user_id` in `org_id` (by org id or slug).
    pub async fn membership(&self, org: &str, user_id: &str) -> Result<Option<Membership>> {
        let c = self.client().await?;
        let row = c
            .query_opt(
                &format!("{MEMBERSHIP_SELECT} WHERE (o.id = $1 OR o.slug = $1) AND m.user_id = $2"),
                &[&org, &user_id],
            )
            .await?;
        Ok(row.as_ref().map(membership))
    }

    /// Changes a member's role.
    pub async fn update_membership_role(
        &self,
        org_id: &str,
        user_id: &str,
        role: &str,
    ) -> Result<Membership> {
        let c = self.client().await?;
        let n = c
            .execute(
                "UPDATE identity.memberships SET role = $3, updated_at = now()
                 WHERE organization_id = $1 AND user_id = $2",
                &[&org_id, &user_id, &role],
            )
            .await?;
        if n == 0 {
            return Err(StoreError::NotFound("membership"));
        }
        self.membership(org_id, user_id)
            .await?
            .ok_or(StoreError::NotFound("membership"))
    }

    /// Removes a member; returns the membership as it was. Sessions that had
    /// this org active lose it at once (their next token has no org).
    pub async fn delete_membership(&self, org_id: &str, user_id: &str) -> Result<Membership> {
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        let row = tx
            .query_opt(
                &format!("{MEMBERSHIP_SELECT} WHERE o.id = $1 AND m.user_id = $2 FOR UPDATE OF m"),
                &[&org_id, &user_id],
            )
            .await?
            .ok_or(StoreError::NotFound("membership"))?;
        tx.execute(
            "DELETE FROM identity.memberships WHERE organization_id = $1 AND user_id = $2",
            &[&org_id, &user_id],
        )
        .await?;
        tx.execute(
            "UPDATE identity.sessions SET last_active_organization_id = NULL, updated_at = now()
             WHERE user_id = $2 AND last_active_organization_id = $1",
            &[&org_id, &user_id],
        )
        .await?;
        tx.commit().await?;
        Ok(membership(&row))
    }

    /// An org's memberships, oldest first, and the total.
    pub async fn memberships(&self, org_id: &str, limit: i64, offset: i64) -> Result<(Vec<Membership>, i64)> {
        let c = self.client().await?;
        let rows = c
            .query(
                &format!(
                    "{MEMBERSHIP_SELECT} WHERE o.id = $1 ORDER BY m.created_at, m.id LIMIT $2 OFFSET $3"
                ),
                &[&org_id, &limit, &offset],
            )
            .await?;
        let total: i64 = c
            .query_one(
                "SELECT count(*) FROM identity.memberships WHERE organization_id = $1",
                &[&org_id],
            )
            .await?
            .get(0);
        Ok((rows.iter().map(membership).collect(), total))
    }

    /// Defines (or redefines) a role.
    pub async fn put_role(&self, key: &str, name: &str, permissions: &[String]) -> Result<()> {
        let c = self.client().await?;
        c.execute(
            "INSERT INTO identity.roles (key, name, permissions) VALUES ($1, $2, $3)
             ON CONFLICT (key) DO UPDATE SET name = EXCLUDED.name, permissions = EXCLUDED.permissions",
            &[&key, &name, &permissions],
        )
        .await?;
        Ok(())
    }

    // --- clients ---

    /// The client whose cookie hashes to `token_sha256`.
    pub async fn client_by_token(&self, token_sha256: &[u8]) -> Result<Option<String>> {
        let c = self.client().await?;
        let row = c
            .query_opt(
                "UPDATE identity.clients SET last_active_at = now() WHERE token_sha256 = $1 RETURNING id",
                &[&token_sha256],
            )
            .await?;
        Ok(row.map(|r| r.get(0)))
    }

    /// Registers a new client.
    pub async fn create_client(&self, token_sha256: &[u8]) -> Result<String> {
        let c = self.client().await?;
        let id = new_id(IdKind::Client);
        c.execute(
            "INSERT INTO identity.clients (id, token_sha256) VALUES ($1, $2)",
            &[&id, &token_sha256],
        )
        .await?;
        Ok(id)
    }

    /// Whether `user_id` completed a sign-in on `client_id` before.
    pub async fn is_trusted(&self, client_id: &str, user_id: &str) -> Result<bool> {
        let c = self.client().await?;
        Ok(c.query_opt(
            "SELECT 1 FROM identity.trusted_clients WHERE client_id = $1 AND user_id = $2",
            &[&client_id, &user_id],
        )
        .await?
        .is_some())
    }

    // --- sign-ins ---

    /// Starts a sign-in attempt.
    pub async fn create_sign_in(
        &self,
        client_id: &str,
        identifier: Option<&str>,
        user_id: Option<&str>,
        status: &str,
        ttl_secs: i64,
    ) -> Result<SignIn> {
        let c = self.client().await?;
        let row = c
            .query_one(
                &format!(
                    "INSERT INTO identity.sign_ins (id, client_id, identifier, user_id, status, expire_at)
                     VALUES ($1, $2, $3, $4, $5, now() + make_interval(secs => $6))
                     RETURNING {SIGN_IN_COLUMNS}"
                ),
                &[
                    &new_id(IdKind::SignIn),
                    &client_id,
                    &identifier,
                    &user_id,
                    &status,
                    &(ttl_secs as f64),
                ],
            )
            .await?;
        Ok(sign_in(&row))
    }

    /// A sign-in attempt of `client_id` (another device's attempt is not found).
    pub async fn sign_in(&self, id: &str, client_id: &str) -> Result<Option<SignIn>> {
        let c = self.client().await?;
        let row = c
            .query_opt(
                &format!("SELECT {SIGN_IN_COLUMNS} FROM identity.sign_ins WHERE id = $1 AND client_id = $2"),
                &[&id, &client_id],
            )
            .await?;
        Ok(row.as_ref().map(sign_in))
    }

    /// Sets identifier and user of an attempt that needed them.
    pub async fn identify_sign_in(
        &self,
        id: &str,
        identifier: &str,
        user_id: Option<&str>,
    ) -> Result<SignIn> {
        self.update_sign_in(
            "identifier = $2, user_id = $3, status = 'needs_first_factor'",
            "status = 'needs_identifier'",
            &[&id, &identifier, &user_id],
        )
        .await
    }

    /// Counts a wrong password; `abandon` ends the attempt.
    pub async fn password_failed(&self, id: &str, abandon: bool) -> Result<SignIn> {
        self.update_sign_in(
            "password_attempts = password_attempts + 1,
             status = CASE WHEN $2 THEN 'abandoned' ELSE status END",
            "status = 'needs_first_factor'",
            &[&id, &abandon],
        )
        .await
    }

    /// Records the first factor and moves to `status` (a second-factor status).
    pub async fn first_factor_passed(&self, id: &str, status: &str) -> Result<SignIn> {
        self.update_sign_in(
            "first_factor_at = now(), status = $2",
            "status = 'needs_first_factor'",
            &[&id, &status],
        )
        .await
    }

    /// Stores a fresh pending email code (its hash) for a second-factor status.
    pub async fn set_code(&self, id: &str, code_sha256: &[u8], ttl_secs: i64) -> Result<SignIn> {
        self.update_sign_in(
            "code_sha256 = $2, code_expires_at = now() + make_interval(secs => $3), code_attempts = 0",
            "status IN ('needs_second_factor', 'needs_client_trust')",
            &[&id, &code_sha256, &(ttl_secs as f64)],
        )
        .await
    }

    /// Counts a wrong code; `abandon` ends the attempt.
    pub async fn code_failed(&self, id: &str, abandon: bool) -> Result<SignIn> {
        self.update_sign_in(
            "code_attempts = code_attempts + 1,
             status = CASE WHEN $2 THEN 'abandoned' ELSE status END",
            "status IN ('needs_second_factor', 'needs_client_trust')",
            &[&id, &abandon],
        )
        .await
    }

    /// The stored hash of the pending code, if one is pending and unexpired.
    pub async fn pending_code(&self, id: &str) -> Result<Option<Vec<u8>>> {
        let c = self.client().await?;
        let row = c
            .query_opt(
                "SELECT code_sha256 FROM identity.sign_ins
                 WHERE id = $1 AND code_sha256 IS NOT NULL AND code_expires_at > now()
                   AND status IN ('needs_second_factor', 'needs_client_trust') AND expire_at > now()",
                &[&id],
            )
            .await?;
        Ok(row.map(|r| r.get(0)))
    }

    async fn update_sign_in(
        &self,
        set: &str,
        guard: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<SignIn> {
        let c = self.client().await?;
        let row = c
            .query_opt(
                &format!(
                    "UPDATE identity.sign_ins SET {set}
                     WHERE id = $1 AND {guard} AND expire_at > now()
                     RETURNING {SIGN_IN_COLUMNS}"
                ),
                params,
            )
            .await?;
        row.as_ref().map(sign_in).ok_or(StoreError::Invalid(
            "the sign-in attempt is not in a state that allows this".into(),
        ))
    }

    /// Completes a sign-in exactly once: the attempt must still be in
    /// `from_status` (and, when `code_sha256` is given, still hold that
    /// code), the code is consumed, a session is created, the device becomes
    /// trusted for the user. Returns `None` if another request completed or
    /// changed the attempt first.
    pub async fn complete_sign_in(
        &self,
        id: &str,
        from_status: &str,
        code_sha256: Option<&[u8]>,
        second_factor: bool,
        session_lifetime_secs: i64,
    ) -> Result<Option<(SignIn, Session)>> {
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        let session_id = new_id(IdKind::Session);
        let done = tx
            .query_opt(
                "UPDATE identity.sign_ins
                 SET status = 'complete', code_sha256 = NULL, created_session_id = $2,
                     second_factor_at = CASE WHEN $5 THEN now() END
                 WHERE id = $1 AND status = $3 AND expire_at > now()
                   AND ($4::bytea IS NULL OR code_sha256 = $4)
                 RETURNING client_id, user_id, first_factor_at",
                &[&id, &session_id, &from_status, &code_sha256, &second_factor],
            )
            .await?;
        let Some(done) = done else {
            return Ok(None);
        };
        let client_id: String = done.get(0);
        let user_id: Option<String> = done.get(1);
        let user_id = user_id.ok_or(StoreError::Invalid("sign-in without a user".into()))?;
        let first_factor_at: Option<std::time::SystemTime> = done.get(2);
        let session = Self::insert_session(
            &tx,
            &session_id,
            &client_id,
            &user_id,
            first_factor_at,
            second_factor,
            session_lifetime_secs,
        )
        .await?;
        tx.execute(
            "INSERT INTO identity.trusted_clients (client_id, user_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            &[&client_id, &user_id],
        )
        .await?;
        tx.execute(
            "UPDATE identity.users SET last_sign_in_at = now() WHERE id = $1",
            &[&user_id],
        )
        .await?;
        let row = tx
            .query_one(
                &format!("SELECT {SIGN_IN_COLUMNS} FROM identity.sign_ins WHERE id = $1"),
                &[&id],
            )
            .await?;
        tx.commit().await?;
        Ok(Some((sign_in(&row), session)))
    }

    async fn insert_session(
        tx: &impl GenericClient,
        id: &str,
        client_id: &str,
        user_id: &str,
        first_factor_at: Option<std::time::SystemTime>,
        second_factor: bool,
        lifetime_secs: i64,
    ) -> Result<Session> {
        let row = tx
            .query_one(
                &format!(
                    "INSERT INTO identity.sessions AS s (id, client_id, user_id, status, first_factor_at,
                         second_factor_at, expire_at)
                     VALUES ($1, $2, $3, 'active', coalesce($4, now()), CASE WHEN $5 THEN now() END,
                         now() + make_interval(secs => $6))
                     RETURNING {SESSION_COLUMNS}"
                ),
                &[
                    &id,
                    &client_id,
                    &user_id,
                    &first_factor_at,
                    &second_factor,
                    &(lifetime_secs as f64),
                ],
            )
            .await?;
        Ok(session(&row))
    }

    // --- sessions ---

    /// Creates an active session for `user_id` on `client_id` directly
    /// (the Backend API's testing endpoint; no sign-in attempt).
    pub async fn create_session(
        &self,
        client_id: &str,
        user_id: &str,
        lifetime_secs: i64,
    ) -> Result<Session> {
        let c = self.client().await?;
        if c.query_opt("SELECT 1 FROM identity.users WHERE id = $1", &[&user_id])
            .await?
            .is_none()
        {
            return Err(StoreError::NotFound("user"));
        }
        Self::insert_session(
            &c,
            &new_id(IdKind::Session),
            client_id,
            user_id,
            None,
            false,
            lifetime_secs,
        )
        .await
    }

    /// A session by id.
    pub async fn session(&self, id: &str) -> Result<Option<Session>> {
        let c = self.client().await?;
        let row = c
            .query_opt(
                &format!("SELECT {SESSION_COLUMNS} FROM identity.sessions s WHERE s.id = $1"),
                &[&id],
            )
            .await?;
        Ok(row.as_ref().map(session))
    }

    /// The sessions of a client, newest first.
    pub async fn client_sessions(&self, client_id: &str) -> Result<Vec<Session>> {
        let c = self.client().await?;
        let rows = c
            .query(
                &format!(
                    "SELECT {SESSION_COLUMNS} FROM identity.sessions s WHERE s.client_id = $1
                     ORDER BY s.created_at DESC, s.id"
                ),
                &[&client_id],
            )
            .await?;
        Ok(rows.iter().map(session).collect())
    }

    /// Sessions of a user, newest first.
    pub async fn user_sessions(&self, user_id: &str) -> Result<Vec<Session>> {
        let c = self.client().await?;
        let rows = c
            .query(
                &format!(
                    "SELECT {SESSION_COLUMNS} FROM identity.sessions s WHERE s.user_id = $1
                     ORDER BY s.created_at DESC, s.id"
                ),
                &[&user_id],
            )
            .await?;
        Ok(rows.iter().map(session).collect())
    }

    /// Sets the active org of an active session (`None`: personal account)
    /// and marks it active now.
    pub async fn set_active_organization(&self, id: &str, org_id: Option<&str>) -> Result<Session> {
        let c = self.client().await?;
        let row = c
            .query_opt(
                &format!(
                    "UPDATE identity.sessions s
                     SET last_active_organization_id = $2, last_active_at = now(), updated_at = now()
                     WHERE s.id = $1 AND s.status = 'active' AND s.expire_at > now()
                     RETURNING {SESSION_COLUMNS}"
                ),
                &[&id, &org_id],
            )
            .await?;
        row.as_ref().map(session).ok_or(StoreError::NotFound("session"))
    }

    /// Moves an active session to `status` (`revoked` by the backend,
    /// `ended` by sign-out, `removed`).
    pub async fn end_session(&self, id: &str, status: &str) -> Result<Session> {
        let c = self.client().await?;
        let row = c
            .query_opt(
                &format!(
                    "UPDATE identity.sessions s SET status = $2, updated_at = now()
                     WHERE s.id = $1 AND s.status = 'active'
                     RETURNING {SESSION_COLUMNS}"
                ),
                &[&id, &status],
            )
            .await?;
        row.as_ref().map(session).ok_or(StoreError::NotFound("session"))
    }

    // --- templates ---

    /// Stores a new template (validated by the caller).
    pub async fn create_template(&self, template: &Template) -> Result<StoredTemplate> {
        let c = self.client().await?;
        let row = c
            .query_one(
                &format!(
                    "INSERT INTO identity.jwt_templates (id, name, claims, lifetime, allowed_clock_skew)
                     VALUES ($1, $2, $3, $4, $5) RETURNING {TEMPLATE_COLUMNS}"
                ),
                &[
                    &new_id(IdKind::JwtTemplate),
                    &template.name,
                    &Value::Object(template.claims.clone()),
                    &(template.lifetime as i32),
                    &(template.allowed_clock_skew as i32),
                ],
            )
            .await?;
        stored_template(&row)
    }

    /// A template by id or name.
    pub async fn template(&self, id_or_name: &str) -> Result<Option<StoredTemplate>> {
        let c = self.client().await?;
        let row = c
            .query_opt(
                &format!("SELECT {TEMPLATE_COLUMNS} FROM identity.jwt_templates WHERE id = $1 OR name = $1"),
                &[&id_or_name],
            )
            .await?;
        row.as_ref().map(stored_template).transpose()
    }

    /// Every template, by name.
    pub async fn templates(&self) -> Result<Vec<StoredTemplate>> {
        let c = self.client().await?;
        let rows = c
            .query(
                &format!("SELECT {TEMPLATE_COLUMNS} FROM identity.jwt_templates ORDER BY name"),
                &[],
            )
            .await?;
        rows.iter().map(stored_template).collect()
    }

    /// Replaces a template's definition (validated by the caller).
    pub async fn update_template(&self, id: &str, template: &Template) -> Result<StoredTemplate> {
        let c = self.client().await?;
        let row = c
            .query_opt(
                &format!(
                    "UPDATE identity.jwt_templates
                     SET name = $2, claims = $3, lifetime = $4, allowed_clock_skew = $5, updated_at = now()
                     WHERE id = $1 RETURNING {TEMPLATE_COLUMNS}"
                ),
                &[
                    &id,
                    &template.name,
                    &Value::Object(template.claims.clone()),
                    &(template.lifetime as i32),
                    &(template.allowed_clock_skew as i32),
                ],
            )
            .await?
            .ok_or(StoreError::NotFound("jwt template"))?;
        stored_template(&row)
    }

    /// Deletes a template.
    pub async fn delete_template(&self, id: &str) -> Result<()> {
        let c = self.client().await?;
        let n = c
            .execute("DELETE FROM identity.jwt_templates WHERE id = $1", &[&id])
            .await?;
        if n == 0 {
            return Err(StoreError::NotFound("jwt template"));
        }
        Ok(())
    }

    // --- signing keys ---

    /// The active key and the keys retired less than `overlap_secs` ago
    /// (with how many milliseconds ago), newest first. With `create`, an
    /// empty store first gets the key `create` makes (under a lock, so
    /// concurrent starts agree on one).
    pub async fn signing_keys(&self, overlap_secs: i64, create: Option<&KeyMaker>) -> Result<Vec<StoredKey>> {
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        if let Some(create) = create {
            tx.execute("SELECT pg_advisory_xact_lock(7307720602)", &[])
                .await?;
            let active = tx
                .query_opt(
                    "SELECT 1 FROM identity.signing_keys WHERE retired_at IS NULL",
                    &[],
                )
                .await?;
            if active.is_none() {
                let (kid, der) =
                    create().ok_or_else(|| StoreError::Invalid("signing key generation failed".into()))?;
                tx.execute(
                    "INSERT INTO identity.signing_keys (kid, private_pkcs8) VALUES ($1, $2)",
                    &[&kid, &der],
                )
                .await?;
                tracing::info!(kid = %kid, "created the first signing key");
            }
        }
        let rows = tx
            .query(
                "SELECT kid, private_pkcs8, identity.ms(now()) - identity.ms(retired_at)
                 FROM identity.signing_keys
                 WHERE retired_at IS NULL OR retired_at > now() - make_interval(secs => $1)
                 ORDER BY retired_at DESC NULLS FIRST",
                &[&(overlap_secs as f64)],
            )
            .await?;
        tx.commit().await?;
        Ok(rows
            .iter()
            .map(|r| StoredKey {
                kid: r.get(0),
                pkcs8: r.get(1),
                retired_ms_ago: r.get(2),
            })
            .collect())
    }

    /// Retires the active key and makes `kid` the active one.
    pub async fn rotate_signing_key(&self, kid: &str, pkcs8: &[u8]) -> Result<()> {
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        tx.execute("SELECT pg_advisory_xact_lock(7307720602)", &[])
            .await?;
        tx.execute(
            "UPDATE identity.signing_keys SET retired_at = now() WHERE retired_at IS NULL",
            &[],
        )
        .await?;
        tx.execute(
            "INSERT INTO identity.signing_keys (kid, private_pkcs8) VALUES ($1, $2)",
            &[&kid, &pkcs8],
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    // --- outbox ---

    /// Puts a code in the test outbox.
    pub async fn push_outbox(&self, email: &str, sign_in_id: &str, code: &str) -> Result<()> {
        let c = self.client().await?;
        c.execute(
            "INSERT INTO identity.outbox (email, sign_in_id, code) VALUES ($1, $2, $3)",
            &[&email, &sign_in_id, &code],
        )
        .await?;
        Ok(())
    }

    /// The codes sent to `email`, newest first (at most 20).
    pub async fn outbox(&self, email: &str) -> Result<Vec<OutboxMessage>> {
        let c = self.client().await?;
        let rows = c
            .query(
                "SELECT email, sign_in_id, code, identity.ms(created_at) FROM identity.outbox
                 WHERE lower(email) = lower($1) ORDER BY id DESC LIMIT 20",
                &[&email],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| OutboxMessage {
                email: r.get(0),
                sign_in_id: r.get(1),
                code: r.get(2),
                created_at: r.get(3),
            })
            .collect())
    }

    /// Checks the connection.
    pub async fn ping(&self) -> Result<()> {
        let c = self.client().await?;
        c.query_one("SELECT 1", &[]).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::slugify;

    #[test]
    fn slugs() {
        assert_eq!(slugify("Acme Corp."), "acme-corp");
        assert_eq!(slugify("  Ünïcode — Org  "), "n-code-org");
        assert_eq!(slugify("!!!"), "org");
        assert!(slugify(&"x".repeat(100)).len() <= 48);
    }
}
