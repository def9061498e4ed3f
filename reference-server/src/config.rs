//! Server configuration: a TOML file plus `TENANTRY_<SECTION>_<KEY>`
//! environment overrides, validated at start. Every error names the key
//! (and the file position or environment variable it came from) and says
//! what is expected.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// The whole configuration.
#[derive(Debug, Clone, Deserialize, Default)]
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
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OAuthConfig {
    /// `oauth.state_ttl_secs`: how long a connect flow may take, default 600.
    pub state_ttl_secs: u64,
    /// `oauth.state_store`: `redis` or `memory`; default: redis when
    /// `oauth.redis_url` is set, else memory (one instance only).
    pub state_store: Option<StoreKind>,
    /// `oauth.redis_url`.
    pub redis_url: Option<String>,
    /// `oauth.token_key`: base64 of 32 bytes, the AES-256-GCM key for
    /// provider tokens at rest. Unset: a key for this process only (tokens
    /// stored before a restart can no longer be read).
    pub token_key: Option<String>,
    /// `oauth.return_paths`: relative paths a flow may return to.
    pub return_paths: Vec<String>,
    /// `oauth.providers.<name>`: providers; by default two mock providers
    /// (`shopify`, `quickbooks`) served by this server.
    pub providers: std::collections::BTreeMap<String, ProviderConfig>,
}

/// `oauth.providers.<name>`.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    /// Client id.
    pub client_id: String,
    /// Client secret.
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StoreKind {
    /// Redis at `rate_limit.redis_url`, shared by every instance.
    Redis,
    /// In this process only (not shared across instances).
    Memory,
}

/// `[rate_limit]`: per-organization limits.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitConfig {
    /// `rate_limit.store`: `redis` or `memory`; default: redis when
    /// `rate_limit.redis_url` is set, else memory.
    pub store: Option<StoreKind>,
    /// `rate_limit.redis_url`: `redis://host:port[/db]`.
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
    pub policies: std::collections::BTreeMap<String, PolicyOverride>,
}

/// `rate_limit.policies.<name>`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PolicyOverride {
    /// Requests per window (1..=1 000 000).
    pub limit: Option<u32>,
    /// Window in seconds (1..=86 400).
    pub window_secs: Option<u64>,
    /// `sliding-window` or `fixed-window`.
    pub algorithm: Option<crate::ratelimit::Algorithm>,
    /// `open` or `closed`.
    pub fail: Option<crate::ratelimit::FailMode>,
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

    /// The route table's `default` policy with this config's overrides.
    pub fn policy(&self, default: &crate::ratelimit::Policy) -> crate::ratelimit::Policy {
        let mut policy = default.clone();
        if let Some(o) = self.policies.get(&policy.name) {
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
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IdentityConfig {
    /// `identity.secret_key`: the Backend API secret (`sk_test_…` or
    /// `sk_live_…`, at least 32 characters after the prefix). Empty: the
    /// Backend API refuses every request.
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
#[derive(Debug, Clone, Deserialize)]
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
#[derive(Debug, Clone, Deserialize)]
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
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            request_timeout_ms: 10_000,
            max_body_bytes: 1 << 20,
            public_url: None,
        }
    }
}

/// `[database]`
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    /// `database.url`: a role that may create roles and run migrations
    /// (superuser, or CREATEROLE + owner of the database). Empty: `serve`
    /// starts an ephemeral Postgres.
    pub url: Option<String>,
    /// `database.app_password`: password of the `tenantry_app` role the
    /// server connects as. Required with `database.url`.
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
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
#[derive(Debug, Clone, Deserialize)]
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
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExportsConfig {
    /// `exports.workers`: concurrent export jobs, default 2.
    pub workers: usize,
    /// `exports.queue_capacity`: queued jobs before `POST /api/exports` answers 503, default 1 000.
    pub queue_capacity: usize,
}

impl Default for ExportsConfig {
    fn default() -> Self {
        Self {
            workers: 2,
            queue_capacity: 1_000,
        }
    }
}

/// A configuration error, naming where the bad value came from.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The file is not valid TOML or has a wrong key or type.
    #[error("{path}:{line}:{column}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What is wrong.
        message: String,
    },
    /// A value is out of range or inconsistent.
    #[error("config key `{key}`{origin}: {message}")]
    Invalid {
        /// The dotted key.
        key: &'static str,
        /// ` (from ENV_VAR)` or empty.
        origin: String,
        /// What is expected.
        message: String,
    },
}

/// The keys that may be overridden from the environment, with the variable
/// that overrides each.
pub const ENV_KEYS: &[(&str, &str)] = &[
    ("server.listen", "TENANTRY_SERVER_LISTEN"),
    ("server.request_timeout_ms", "TENANTRY_SERVER_REQUEST_TIMEOUT_MS"),
    ("server.max_body_bytes", "TENANTRY_SERVER_MAX_BODY_BYTES"),
    ("database.url", "TENANTRY_DATABASE_URL"),
    ("database.app_password", "TENANTRY_DATABASE_APP_PASSWORD"),
    ("database.pool_size", "TENANTRY_DATABASE_POOL_SIZE"),
    (
        "database.statement_timeout_ms",
        "TENANTRY_DATABASE_STATEMENT_TIMEOUT_MS",
    ),
    ("database.isolation", "TENANTRY_DATABASE_ISOLATION"),
    ("cache.stats_ttl_ms", "TENANTRY_CACHE_STATS_TTL_MS"),
    ("cache.max_entries", "TENANTRY_CACHE_MAX_ENTRIES"),
    ("exports.workers", "TENANTRY_EXPORTS_WORKERS"),
    ("exports.queue_capacity", "TENANTRY_EXPORTS_QUEUE_CAPACITY"),
    ("auth.issuer", "TENANTRY_AUTH_ISSUER"),
    ("auth.authorized_parties", "TENANTRY_AUTH_AUTHORIZED_PARTIES"),
    ("auth.leeway_secs", "TENANTRY_AUTH_LEEWAY_SECS"),
    ("auth.key_overlap_ms", "TENANTRY_AUTH_KEY_OVERLAP_MS"),
    ("identity.secret_key", "TENANTRY_IDENTITY_SECRET_KEY"),
    ("rate_limit.store", "TENANTRY_RATE_LIMIT_STORE"),
    ("rate_limit.redis_url", "TENANTRY_RATE_LIMIT_REDIS_URL"),
    (
        "rate_limit.store_timeout_ms",
        "TENANTRY_RATE_LIMIT_STORE_TIMEOUT_MS",
    ),
    ("identity.client_trust", "TENANTRY_IDENTITY_CLIENT_TRUST"),
    ("identity.test_outbox", "TENANTRY_IDENTITY_TEST_OUTBOX"),
];

impl Config {
    /// Loads `path` (if given), applies environment overrides, validates.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        Self::load_with_env(path, |name| std::env::var(name).ok())
    }

    /// As [`Config::load`], with the environment supplied by `env` (tests).
    pub fn load_with_env(
        path: Option<&Path>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let mut config = match path {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.to_path_buf(),
                    source,
                })?;
                Self::parse(&text, path)?
            }
            None => Config::default(),
        };
        config.apply_env(env)?;
        config.validate()?;
        Ok(config)
    }

    /// Parses TOML text; `path` is used in error messages.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        toml::from_str(text).map_err(|e| {
            let (line, column) = e
                .span()
                .map(|span| line_column(text, span.start))
                .unwrap_or((1, 1));
            ConfigError::Parse {
                path: path.to_path_buf(),
                line,
                column,
                message: e.message().to_string(),
            }
        })
    }

    fn apply_env(&mut self, env: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        for &(key, var) in ENV_KEYS {
            let Some(value) = env(var) else { continue };
            let bad = |expected: &str| ConfigError::Invalid {
                key,
                origin: format!(" (from {var})"),
                message: format!("expected {expected}, got `{value}`"),
            };
            match key {
                "server.listen" => {
                    self.server.listen = value.parse().map_err(|_| bad("an address like 127.0.0.1:8080"))?
                }
                "server.request_timeout_ms" => {
                    self.server.request_timeout_ms = value.parse().map_err(|_| bad("milliseconds"))?
                }
                "server.max_body_bytes" => {
                    self.server.max_body_bytes = value.parse().map_err(|_| bad("a byte count"))?
                }
                "database.url" => self.database.url = Some(value.clone()).filter(|v| !v.is_empty()),
                "database.app_password" => {
                    self.database.app_password = Some(value.clone()).filter(|v| !v.is_empty())
                }
                "database.pool_size" => {
                    self.database.pool_size = value.parse().map_err(|_| bad("an integer"))?
                }
                "database.statement_timeout_ms" => {
                    self.database.statement_timeout_ms = value.parse().map_err(|_| bad("milliseconds"))?
                }
                "database.isolation" => {
                    self.database.isolation = value
                        .parse()
                        .map_err(|_| bad("both, app-filter-only or rls-only"))?
                }
                "cache.stats_ttl_ms" => {
                    self.cache.stats_ttl_ms = value.parse().map_err(|_| bad("milliseconds"))?
                }
                "cache.max_entries" => {
                    self.cache.max_entries = value.parse().map_err(|_| bad("an integer"))?
                }
                "rate_limit.store" => {
                    self.rate_limit.store = Some(match value.as_str() {
                        "redis" => StoreKind::Redis,
                        "memory" => StoreKind::Memory,
                        _ => return Err(bad("redis or memory")),
                    })
                }
                "rate_limit.redis_url" => {
                    self.rate_limit.redis_url = Some(value.clone()).filter(|v| !v.is_empty())
                }
                "rate_limit.store_timeout_ms" => {
                    self.rate_limit.store_timeout_ms = value.parse().map_err(|_| bad("milliseconds"))?
                }
                "identity.secret_key" => {
                    self.identity.secret_key = Some(value.clone()).filter(|v| !v.is_empty())
                }
                "identity.client_trust" => {
                    self.identity.client_trust = value.parse().map_err(|_| bad("true or false"))?
                }
                "identity.test_outbox" => {
                    self.identity.test_outbox = value.parse().map_err(|_| bad("true or false"))?
                }
                "exports.workers" => self.exports.workers = value.parse().map_err(|_| bad("an integer"))?,
                "exports.queue_capacity" => {
                    self.exports.queue_capacity = value.parse().map_err(|_| bad("an integer"))?
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Checks ranges and consistency.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key: &'static str, message: &str| ConfigError::Invalid {
            key,
            origin: String::new(),
            message: message.into(),
        };
        if !(1..=1000).contains(&self.database.pool_size) {
            return Err(invalid("database.pool_size", "expected 1..=1000"));
        }
        if !(100..=600_000).contains(&self.database.statement_timeout_ms) {
            return Err(invalid(
                "database.statement_timeout_ms",
                "expected 100..=600000 milliseconds",
            ));
        }
        if !(100..=3_600_000).contains(&self.server.request_timeout_ms) {
            return Err(invalid(
                "server.request_timeout_ms",
                "expected 100..=3600000 milliseconds",
            ));
        }
        if !(1024..=(64 << 20)).contains(&self.server.max_body_bytes) {
            return Err(invalid("server.max_body_bytes", "expected 1024..=67108864 bytes"));
        }
        if self.cache.stats_ttl_ms > 3_600_000 {
            return Err(invalid(
                "cache.stats_ttl_ms",
                "expected at most 3600000 milliseconds",
            ));
        }
        if !(1..=1_000_000).contains(&self.cache.max_entries) {
            return Err(invalid("cache.max_entries", "expected 1..=1000000"));
        }
        if !(1..=64).contains(&self.exports.workers) {
            return Err(invalid("exports.workers", "expected 1..=64"));
        }
        if !(1..=1_000_000).contains(&self.exports.queue_capacity) {
            return Err(invalid("exports.queue_capacity", "expected 1..=1000000"));
        }
        if self.auth.issuer.trim().is_empty() {
            return Err(invalid(
                "auth.issuer",
                "expected the issuer URL of session tokens",
            ));
        }
        if !(0..=crate::identity::token::MAX_LEEWAY_SECS).contains(&self.auth.leeway_secs) {
            return Err(invalid("auth.leeway_secs", "expected 0..=5 seconds"));
        }
        if self.auth.authorized_parties.iter().any(|p| p.trim().is_empty()) {
            return Err(invalid(
                "auth.authorized_parties",
                "expected origins like https://app.example.com",
            ));
        }
        if !(60_000..=86_400_000).contains(&self.auth.key_overlap_ms) {
            return Err(invalid(
                "auth.key_overlap_ms",
                "expected 60000..=86400000 milliseconds",
            ));
        }
        if let Some(key) = &self.identity.secret_key {
            let rest = key
                .strip_prefix("sk_test_")
                .or_else(|| key.strip_prefix("sk_live_"));
            let ok = rest.is_some_and(|r| r.len() >= 32 && r.bytes().all(|b| b.is_ascii_alphanumeric()));
            if !ok {
                return Err(invalid(
                    "identity.secret_key",
                    "expected sk_test_ or sk_live_ followed by at least 32 letters and digits",
                ));
            }
        }
        if !(30..=3600).contains(&self.identity.session_token_lifetime_secs) {
            return Err(invalid(
                "identity.session_token_lifetime_secs",
                "expected 30..=3600 seconds",
            ));
        }
        if !(300..=31_536_000).contains(&self.identity.session_lifetime_secs) {
            return Err(invalid(
                "identity.session_lifetime_secs",
                "expected 300..=31536000 seconds",
            ));
        }
        if !(60..=3600).contains(&self.identity.code_ttl_secs) {
            return Err(invalid("identity.code_ttl_secs", "expected 60..=3600 seconds"));
        }
        if !(100..=600_000).contains(&self.identity.key_refresh_interval_ms) {
            return Err(invalid(
                "identity.key_refresh_interval_ms",
                "expected 100..=600000 milliseconds",
            ));
        }
        if !(1..=256).contains(&self.identity.pool_size) {
            return Err(invalid("identity.pool_size", "expected 1..=256"));
        }
        if self.identity.client_trust && !self.identity.test_outbox {
            return Err(invalid(
                "identity.client_trust",
                "needs a way to deliver email codes, and this server has no mailer: \
                 set identity.test_outbox = true (test deployments) or identity.client_trust = false",
            ));
        }
        self.validate_rate_limit()?;
        self.validate_oauth()?;
        self.circuit
            .validate()
            .map_err(|(key, message)| invalid(key, message))?;
        if let Some(url) = &self.database.url {
            if url.parse::<tokio_postgres::Config>().is_err() {
                return Err(invalid(
                    "database.url",
                    "expected a Postgres URL like postgres://admin:pw@127.0.0.1:5432/app",
                ));
            }
            match &self.database.app_password {
                None => {
                    return Err(invalid(
                        "database.app_password",
                        "required when database.url is set: the password of the tenantry_app role",
                    ))
                }
                Some(pw) if pw.len() < 12 => {
                    return Err(invalid(
                        "database.app_password",
                        "expected at least 12 characters",
                    ))
                }
                Some(_) => {}
            }
        }
        Ok(())
    }

    fn validate_oauth(&self) -> Result<(), ConfigError> {
        let invalid = |key: &'static str, message: String| ConfigError::Invalid {
            key,
            origin: String::new(),
            message,
        };
        let o = &self.oauth;
        if !(1..=3600).contains(&o.state_ttl_secs) {
            return Err(invalid(
                "oauth.state_ttl_secs",
                "expected 1..=3600 seconds".into(),
            ));
        }
        if o.store_kind() == StoreKind::Redis
            && redis::parse_redis_url(o.redis_url.as_deref().unwrap_or_default()).is_none()
        {
            return Err(invalid(
                "oauth.redis_url",
                "expected a Redis URL like redis://127.0.0.1:6379 (required with oauth.state_store = \"redis\")".into(),
            ));
        }
        if o.token_key.is_some() && o.token_key_bytes().is_none() {
            return Err(invalid(
                "oauth.token_key",
                "expected base64 of exactly 32 bytes (e.g. `head -c 32 /dev/urandom | base64`)".into(),
            ));
        }
        if let Some(bad) = o
            .return_paths
            .iter()
            .find(|p| !p.starts_with('/') || p.starts_with("//") || p.contains(['?', '#', '\\']))
        {
            return Err(invalid(
                "oauth.return_paths",
                format!("`{bad}`: expected relative paths like /settings/integrations"),
            ));
        }
        for (name, p) in &o.providers {
            let name_ok = !name.is_empty()
                && name.len() <= 32
                && name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
            if !name_ok || p.client_id.is_empty() || p.client_secret.is_empty() {
                return Err(invalid(
                    "oauth.providers",
                    format!("provider `{name}`: expected a lowercase name, client_id and client_secret"),
                ));
            }
            if p.authorize_url.is_some() != p.token_url.is_some() {
                return Err(invalid(
                    "oauth.providers",
                    format!("provider `{name}`: set both authorize_url and token_url, or neither (the mock)"),
                ));
            }
        }
        if let Some(url) = &self.server.public_url {
            if !(url.starts_with("http://") || url.starts_with("https://")) || url.ends_with('/') {
                return Err(invalid(
                    "server.public_url",
                    "expected an origin like https://app.example.com (no trailing slash)".into(),
                ));
            }
        }
        Ok(())
    }

    fn validate_rate_limit(&self) -> Result<(), ConfigError> {
        let invalid = |key: &'static str, message: String| ConfigError::Invalid {
            key,
            origin: String::new(),
            message,
        };
        let rl = &self.rate_limit;
        if rl.store_kind() == StoreKind::Redis {
            let url = rl.redis_url.as_deref().unwrap_or_default();
            if redis::parse_redis_url(url).is_none() {
                return Err(invalid(
                    "rate_limit.redis_url",
                    "expected a Redis URL like redis://127.0.0.1:6379 (required with rate_limit.store = \"redis\")"
                        .into(),
                ));
            }
        }
        if !(1..=10_000).contains(&rl.store_timeout_ms) {
            return Err(invalid(
                "rate_limit.store_timeout_ms",
                "expected 1..=10000 milliseconds".into(),
            ));
        }
        if !(100..=3_600_000).contains(&rl.reload_interval_ms) {
            return Err(invalid(
                "rate_limit.reload_interval_ms",
                "expected 100..=3600000 milliseconds".into(),
            ));
        }
        if rl
            .bypass_orgs
            .iter()
            .any(|o| o.trim().is_empty() || o.len() > 256)
        {
            return Err(invalid(
                "rate_limit.bypass_orgs",
                "expected organization ids like org_… (non-empty, at most 256 bytes)".into(),
            ));
        }
        let known: Vec<&str> = crate::api::POLICIES.iter().map(|p| p.name).collect();
        for (name, o) in &rl.policies {
            if !known.contains(&name.as_str()) {
                return Err(invalid(
                    "rate_limit.policies",
                    format!(
                        "unknown policy `{name}`; the route table declares {}",
                        known.join(", ")
                    ),
                ));
            }
            if o.limit.is_some_and(|l| !(1..=1_000_000).contains(&l)) {
                return Err(invalid(
                    "rate_limit.policies.<name>.limit",
                    format!("policy `{name}`: expected 1..=1000000 requests"),
                ));
            }
            if o.window_secs.is_some_and(|w| !(1..=86_400).contains(&w)) {
                return Err(invalid(
                    "rate_limit.policies.<name>.window_secs",
                    format!("policy `{name}`: expected 1..=86400 seconds"),
                ));
            }
        }
        Ok(())
    }

    /// The request deadline.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.server.request_timeout_ms)
    }
}

fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map(|l| l.chars().count()).unwrap_or(0) + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        let config = Config::parse(text, Path::new("tenantry.toml"))?;
        config.validate()?;
        Ok(config)
    }

    #[test]
    fn defaults_are_valid() {
        let config = parse("").unwrap();
        assert_eq!(config.database.pool_size, 16);
        assert_eq!(config.server.listen.port(), 8080);
    }

    #[test]
    fn unknown_key_names_file_line_and_column() {
        let err = parse("[database]\npool_size = 4\npoolsize = 5\n")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("tenantry.toml:3:1:"), "{err}");
        assert!(err.contains("unknown field `poolsize`"), "{err}");
    }

    #[test]
    fn wrong_type_names_position() {
        let err = parse("[database]\npool_size = \"many\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("tenantry.toml:2:13:"), "{err}");
    }

    #[test]
    fn out_of_range_names_the_key() {
        let err = parse("[database]\npool_size = 0\n").unwrap_err().to_string();
        assert_eq!(err, "config key `database.pool_size`: expected 1..=1000");
    }

    #[test]
    fn url_requires_app_password() {
        let err = parse("[database]\nurl = \"postgres://a@127.0.0.1/db\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("database.app_password"), "{err}");
    }

    #[test]
    fn isolation_defaults_to_both_and_takes_each_mode() {
        assert_eq!(parse("").unwrap().database.isolation, Isolation::Both);
        for mode in Isolation::ALL {
            let config = parse(&format!("[database]\nisolation = \"{mode}\"\n")).unwrap();
            assert_eq!(config.database.isolation, mode);
            assert_eq!(mode.name().parse::<Isolation>(), Ok(mode));
        }
        assert!(Isolation::Both.app_filter() && Isolation::Both.rls());
        assert!(Isolation::AppFilterOnly.app_filter() && !Isolation::AppFilterOnly.rls());
        assert!(!Isolation::RlsOnly.app_filter() && Isolation::RlsOnly.rls());
    }

    #[test]
    fn a_bad_isolation_mode_names_the_position_and_the_modes() {
        let err = parse("[database]\nisolation = \"rls\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("tenantry.toml:2:13:"), "{err}");
        assert!(
            err.contains("both") && err.contains("app-filter-only") && err.contains("rls-only"),
            "{err}"
        );
        let err = Config::load_with_env(None, |v| {
            (v == "TENANTRY_DATABASE_ISOLATION").then(|| "none".into())
        })
        .unwrap_err()
        .to_string();
        assert_eq!(
            err,
            "config key `database.isolation` (from TENANTRY_DATABASE_ISOLATION): expected both, app-filter-only or rls-only, got `none`"
        );
        let config = Config::load_with_env(None, |v| {
            (v == "TENANTRY_DATABASE_ISOLATION").then(|| "rls-only".into())
        })
        .unwrap();
        assert_eq!(config.database.isolation, Isolation::RlsOnly);
    }

    #[test]
    fn env_overrides_and_names_variable_on_error() {
        let config =
            Config::load_with_env(None, |v| (v == "TENANTRY_DATABASE_POOL_SIZE").then(|| "7".into()))
                .unwrap();
        assert_eq!(config.database.pool_size, 7);
        let err = Config::load_with_env(None, |v| (v == "TENANTRY_SERVER_LISTEN").then(|| "nope".into()))
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "config key `server.listen` (from TENANTRY_SERVER_LISTEN): expected an address like 127.0.0.1:8080, got `nope`"
        );
    }
}
