//! The configuration's shape: one struct per `[section]`, their defaults,
//! and the small derived settings (which store, a policy with its
//! overrides). Parsing, the environment overlay and validation live beside
//! this file; the environment keys are derived from these types' schema, so
//! a field added here can be set from the environment without more code.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::ratelimit::{Algorithm, FailMode, Policy, PolicyName};

/// The whole configuration.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// `[server]`
    pub server: ServerConfig,
    /// `[database]`
    pub database: DatabaseConfig,
    /// `[cache]`
    pub cache: CacheConfig,
    /// `[exports]`
    pub exports: ExportsConfig,
    /// `[auth]`
    pub auth: AuthConfig,
    /// `[identity]`
    pub identity: IdentityConfig,
    /// `[rate_limit]`
    pub rate_limit: RateLimitConfig,
    /// `[oauth]`
    pub oauth: OAuthConfig,
    /// `[circuit]`: the breakers in front of Postgres and Redis.
    pub circuit: crate::circuit::CircuitConfig,
}

/// `[oauth]`: org-scoped OAuth connect flows.
#[derive(Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct OAuthConfig {
    /// `oauth.state_ttl_secs`: how long a connect flow may take, default 600.
    pub state_ttl_secs: u64,
    /// `oauth.state_store`: `redis` or `memory`; default: redis when
    /// `oauth.redis_url` is set, else memory (one instance only).
    pub state_store: Option<StoreKind>,
    /// `oauth.redis_url`.
    #[schemars(extend("x-secret" = true))]
    pub redis_url: Option<String>,
    /// `oauth.token_key`: base64 of 32 bytes, the AES-256-GCM key for
    /// provider tokens at rest. Unset: a key for this process only (tokens
    /// stored before a restart can no longer be read).
    #[schemars(extend("x-secret" = true))]
    pub token_key: Option<String>,
    /// `oauth.return_paths`: relative paths a flow may return to.
    pub return_paths: Vec<String>,
    /// `oauth.providers.<name>`: providers; by default two mock providers
    /// (`shopify`, `quickbooks`) served by this server.
    pub providers: BTreeMap<String, ProviderConfig>,
}

/// `oauth.providers.<name>`.
#[derive(Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    /// Client id.
    pub client_id: String,
    /// Client secret.
    #[schemars(extend("x-secret" = true))]
    pub client_secret: String,
    /// Authorize endpoint; unset: this server's mock provider.
    pub authorize_url: Option<String>,
    /// Token endpoint; unset: this server's mock provider.
    pub token_url: Option<String>,
    /// Scopes, space-separated.
    #[serde(default)]
    pub scopes: String,
}

impl std::fmt::Debug for ProviderConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProviderConfig")
            .field("client_id", &self.client_id)
            .field("client_secret", &"<set>")
            .field("authorize_url", &self.authorize_url)
            .field("token_url", &self.token_url)
            .field("scopes", &self.scopes)
            .finish()
    }
}

impl std::fmt::Debug for OAuthConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuthConfig")
            .field("state_ttl_secs", &self.state_ttl_secs)
            .field("state_store", &self.state_store)
            .field("redis_url", &self.redis_url.as_ref().map(|_| "<set>"))
            .field("token_key", &self.token_key.as_ref().map(|_| "<set>"))
            .field("return_paths", &self.return_paths)
            .field("providers", &self.providers)
            .finish()
    }
}

impl Default for OAuthConfig {
    fn default() -> Self {
        let mock = |name: &str, scopes: &str| ProviderConfig {
            client_id: format!("tenantry-{name}"),
            client_secret: format!("mock-{name}-client-secret"),
            authorize_url: None,
            token_url: None,
            scopes: scopes.into(),
        };
        Self {
            state_ttl_secs: 600,
            state_store: None,
            redis_url: None,
            token_key: None,
            return_paths: vec!["/settings/integrations".into()],
            providers: [
                (
                    "shopify".to_string(),
                    mock("shopify", "read_orders read_products"),
                ),
                (
                    "quickbooks".to_string(),
                    mock("quickbooks", "com.intuit.quickbooks.accounting"),
                ),
            ]
            .into_iter()
            .collect(),
        }
    }
}

impl OAuthConfig {
    /// The state store to use.
    pub fn store_kind(&self) -> StoreKind {
        self.state_store.unwrap_or(if self.redis_url.is_some() {
            StoreKind::Redis
        } else {
            StoreKind::Memory
        })
    }

    /// The token key's bytes, if configured and valid.
    pub fn token_key_bytes(&self) -> Option<Vec<u8>> {
        use base64::Engine;
        let key = self.token_key.as_deref()?;
        base64::engine::general_purpose::STANDARD
            .decode(key.trim())
            .ok()
            .filter(|k| k.len() == 32)
    }
}

/// Which store counts requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum StoreKind {
    /// Redis at `rate_limit.redis_url`, shared by every instance.
    Redis,
    /// In this process only (not shared across instances).
    Memory,
}

/// `[rate_limit]`: per-organization limits.
#[derive(Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitConfig {
    /// `rate_limit.store`: `redis` or `memory`; default: redis when
    /// `rate_limit.redis_url` is set, else memory.
    pub store: Option<StoreKind>,
    /// `rate_limit.redis_url`: `redis://host:port[/db]`.
    #[schemars(extend("x-secret" = true))]
    pub redis_url: Option<String>,
    /// `rate_limit.store_timeout_ms`: the store's deadline per decision,
    /// default 250 (a store that is down is the circuit breaker's job, see
    /// `[circuit]`; this only tells a slow answer from none).
    pub store_timeout_ms: u64,
    /// `rate_limit.bypass_orgs`: orgs never limited; reloaded from the file
    /// without a restart.
    pub bypass_orgs: Vec<String>,
    /// `rate_limit.reload_interval_ms`: how often the file is checked, default 1 000.
    pub reload_interval_ms: u64,
    /// `rate_limit.policies.<name>`: overrides of the route table's policies.
    pub policies: BTreeMap<PolicyName, PolicyOverride>,
}

/// `rate_limit.policies.<name>`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct PolicyOverride {
    /// Requests per window (1..=1 000 000).
    pub limit: Option<u32>,
    /// Window in seconds (1..=86 400).
    pub window_secs: Option<u64>,
    /// `sliding-window` or `fixed-window`.
    pub algorithm: Option<Algorithm>,
    /// `open` or `closed`.
    pub fail: Option<FailMode>,
}

impl std::fmt::Debug for RateLimitConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimitConfig")
            .field("store", &self.store)
            .field("redis_url", &self.redis_url.as_ref().map(|_| "<set>"))
            .field("store_timeout_ms", &self.store_timeout_ms)
            .field("bypass_orgs", &self.bypass_orgs)
            .field("reload_interval_ms", &self.reload_interval_ms)
            .field("policies", &self.policies)
            .finish()
    }
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self {
            store: None,
            redis_url: None,
            store_timeout_ms: 250,
            bypass_orgs: Vec::new(),
            reload_interval_ms: 1_000,
            policies: Default::default(),
        }
    }
}

impl RateLimitConfig {
    /// The store to use.
    pub fn store_kind(&self) -> StoreKind {
        self.store.unwrap_or(if self.redis_url.is_some() {
            StoreKind::Redis
        } else {
            StoreKind::Memory
        })
    }

    /// `redis (shared by instances)` or `in-process (this instance only)`.
    pub fn store_kind_name(&self) -> &'static str {
        match self.store_kind() {
            StoreKind::Redis => "redis (shared by every instance)",
            StoreKind::Memory => "in-process (this instance only; set rate_limit.redis_url to share)",
        }
    }

    /// Policy `name`: the route table's default with this config's overrides.
    pub fn policy(&self, name: PolicyName) -> Policy {
        let mut policy = name.default_policy();
        if let Some(o) = self.policies.get(&name) {
            if let Some(limit) = o.limit {
                policy.limit = limit;
            }
            if let Some(secs) = o.window_secs {
                policy.window = Duration::from_secs(secs);
            }
            if let Some(algorithm) = o.algorithm {
                policy.algorithm = algorithm;
            }
            if let Some(fail) = o.fail {
                policy.fail = fail;
            }
        }
        policy
    }
}

/// `[identity]`: the Clerk-compatible identity service.
#[derive(Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct IdentityConfig {
    /// `identity.secret_key`: the Backend API secret (`sk_test_…` or
    /// `sk_live_…`, at least 32 characters after the prefix). Empty: the
    /// Backend API refuses every request.
    #[schemars(extend("x-secret" = true))]
    pub secret_key: Option<String>,
    /// `identity.session_token_lifetime_secs`: session token lifetime, default 60.
    pub session_token_lifetime_secs: i64,
    /// `identity.session_lifetime_secs`: how long a session lives, default 7 days.
    pub session_lifetime_secs: i64,
    /// `identity.client_trust`: password-only sign-ins from a device the user
    /// never completed a sign-in on need an email code first (default true).
    pub client_trust: bool,
    /// `identity.test_outbox`: keep email codes in an outbox readable at
    /// `/v1/testing/outbox` instead of sending mail. For test deployments
    /// (this reference server has no mailer); default true.
    pub test_outbox: bool,
    /// `identity.code_ttl_secs`: email codes expire after this, default 600.
    pub code_ttl_secs: i64,
    /// `identity.pool_size`: identity store connections, default 8.
    pub pool_size: usize,
    /// `identity.key_refresh_interval_ms`: a token with an unknown `kid`
    /// makes the proxy re-read the signing keys at most this often, default 5 000.
    pub key_refresh_interval_ms: u64,
}

impl std::fmt::Debug for IdentityConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdentityConfig")
            .field("secret_key", &self.secret_key.as_ref().map(|_| "<set>"))
            .field("session_token_lifetime_secs", &self.session_token_lifetime_secs)
            .field("session_lifetime_secs", &self.session_lifetime_secs)
            .field("client_trust", &self.client_trust)
            .field("test_outbox", &self.test_outbox)
            .field("code_ttl_secs", &self.code_ttl_secs)
            .field("pool_size", &self.pool_size)
            .field("key_refresh_interval_ms", &self.key_refresh_interval_ms)
            .finish()
    }
}

impl Default for IdentityConfig {
    fn default() -> Self {
        Self {
            secret_key: None,
            session_token_lifetime_secs: 60,
            session_lifetime_secs: 7 * 24 * 3600,
            client_trust: true,
            test_outbox: true,
            code_ttl_secs: 600,
            pool_size: 8,
            key_refresh_interval_ms: 5_000,
        }
    }
}

/// `[auth]`: how the proxy verifies session tokens.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// `auth.issuer`: the exact `iss` of session tokens.
    pub issuer: String,
    /// `auth.authorized_parties`: allowed `azp` values (origins); empty = not checked.
    pub authorized_parties: Vec<String>,
    /// `auth.leeway_secs`: leeway on exp/nbf/iat, 0..=5.
    pub leeway_secs: i64,
    /// `auth.key_overlap_ms`: how long a rotated-out signing key still verifies.
    pub key_overlap_ms: u64,
}

impl AuthConfig {
    /// The most leeway `auth.leeway_secs` may grant on exp/nbf/iat.
    pub const MAX_LEEWAY_SECS: i64 = 5;
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            issuer: "https://clerk.tenantry.local".into(),
            authorized_parties: Vec::new(),
            leeway_secs: 5,
            key_overlap_ms: 600_000,
        }
    }
}

/// `[server]`
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// `server.listen`: address to bind, default `127.0.0.1:8080`.
    pub listen: SocketAddr,
    /// `server.request_timeout_ms`: per-request deadline, default 10 000.
    pub request_timeout_ms: u64,
    /// `server.max_body_bytes`: request body limit, default 1 MiB.
    pub max_body_bytes: usize,
    /// `server.public_url`: the URL browsers and providers reach this server
    /// at (OAuth redirect URIs); default `http://<listen address>`.
    pub public_url: Option<String>,
    /// `server.max_connections`: connections served at once, default 4 096.
    pub max_connections: usize,
    /// `server.header_read_timeout_ms`: a request head must arrive within
    /// this (also the keep-alive idle limit), default 10 000.
    pub header_read_timeout_ms: u64,
    /// `server.idle_timeout_ms`: no byte either way for this long closes a
    /// connection, default 60 000.
    pub idle_timeout_ms: u64,
    /// `server.body_timeout_ms`: a request body must arrive within this,
    /// else 408, default 10 000.
    pub body_timeout_ms: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            request_timeout_ms: 10_000,
            max_body_bytes: 1 << 20,
            public_url: None,
            max_connections: 4_096,
            header_read_timeout_ms: 10_000,
            idle_timeout_ms: 60_000,
            body_timeout_ms: 10_000,
        }
    }
}

/// `[database]`
#[derive(Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    /// `database.url`: a role that may create roles and run migrations
    /// (superuser, or CREATEROLE + owner of the database). Empty: `serve`
    /// starts an ephemeral Postgres.
    #[schemars(extend("x-secret" = true))]
    pub url: Option<String>,
    /// `database.app_password`: password of the `tenantry_app` role the
    /// server connects as. Required with `database.url`.
    #[schemars(extend("x-secret" = true))]
    pub app_password: Option<String>,
    /// `database.pool_size`: app connections, default 16.
    pub pool_size: usize,
    /// `database.statement_timeout_ms`: default 5 000.
    pub statement_timeout_ms: u64,
    /// `database.isolation`: which layers keep organizations apart —
    /// `both` (default), `app-filter-only` or `rls-only`; see [`Isolation`].
    pub isolation: Isolation,
}

/// `database.isolation`: which of the two isolation layers the server relies
/// on. `both` is the production setting (defence in depth); the single-layer
/// modes exist to measure each layer (benchmarks) and to show a flaw that the
/// other layer would hide.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Isolation {
    /// `TenantDb` puts `organization_id = $org` into every statement, and
    /// row-level security is enabled (and forced) on every tenant table.
    #[default]
    Both,
    /// Only `TenantDb`'s org predicate: row-level security is disabled on the
    /// tenant tables when the database is prepared (`ALTER TABLE … DISABLE
    /// ROW LEVEL SECURITY`, as the owner), so no policy is evaluated. The
    /// setting is a property of the database: every instance sharing one
    /// database must use the same mode (the server refuses to start otherwise).
    AppFilterOnly,
    /// Only row-level security: `TenantDb` statements carry no org predicate
    /// (inserts still write the org), and the policies on the transaction's
    /// `app.org_id` keep orgs apart.
    RlsOnly,
}

impl Isolation {
    /// Every mode, in the order the docs list them.
    pub const ALL: [Isolation; 3] = [Isolation::Both, Isolation::AppFilterOnly, Isolation::RlsOnly];

    /// The config spelling.
    pub fn name(self) -> &'static str {
        match self {
            Isolation::Both => "both",
            Isolation::AppFilterOnly => "app-filter-only",
            Isolation::RlsOnly => "rls-only",
        }
    }

    /// Whether `TenantDb` adds the org predicate to its statements.
    pub fn app_filter(self) -> bool {
        !matches!(self, Isolation::RlsOnly)
    }

    /// Whether row-level security is enabled on the tenant tables.
    pub fn rls(self) -> bool {
        !matches!(self, Isolation::AppFilterOnly)
    }
}

impl std::fmt::Display for Isolation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Isolation {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Isolation::ALL
            .into_iter()
            .find(|m| m.name() == s)
            .ok_or_else(|| format!("expected both, app-filter-only or rls-only, got `{s}`"))
    }
}

impl std::fmt::Debug for DatabaseConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatabaseConfig")
            .field("url", &self.url.as_ref().map(|_| "<set>"))
            .field("app_password", &self.app_password.as_ref().map(|_| "<set>"))
            .field("pool_size", &self.pool_size)
            .field("statement_timeout_ms", &self.statement_timeout_ms)
            .field("isolation", &self.isolation)
            .finish()
    }
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            url: None,
            app_password: None,
            pool_size: 16,
            statement_timeout_ms: 5_000,
            isolation: Isolation::Both,
        }
    }
}

/// `[cache]`
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct CacheConfig {
    /// `cache.stats_ttl_ms`: how long `/api/stats` answers from cache, default 30 000.
    pub stats_ttl_ms: u64,
    /// `cache.max_entries`: entries kept at most, default 10 000.
    pub max_entries: usize,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            stats_ttl_ms: 30_000,
            max_entries: 10_000,
        }
    }
}

/// `[exports]`
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct ExportsConfig {
    /// `exports.workers`: concurrent export jobs, default 2.
    pub workers: usize,
    /// `exports.queue_capacity`: pending exports per org before `POST
    /// /api/exports` answers 503, default 1 000.
    pub queue_capacity: usize,
    /// `exports.lease_ms`: how long a claimed job is its worker's; a job
    /// whose worker died or failed is claimed again after this, default 60 000.
    pub lease_ms: u64,
    /// `exports.max_attempts`: attempts before an export is marked failed, default 5.
    pub max_attempts: u32,
    /// `exports.poll_interval_ms`: how often idle workers look for jobs
    /// queued by other instances, default 1 000.
    pub poll_interval_ms: u64,
}

impl Default for ExportsConfig {
    fn default() -> Self {
        Self {
            workers: 2,
            queue_capacity: 1_000,
            lease_ms: 60_000,
            max_attempts: 5,
            poll_interval_ms: 1_000,
        }
    }
}

impl Config {
    /// The request deadline.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.server.request_timeout_ms)
    }
}
