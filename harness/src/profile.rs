//! Target profiles (TOML): what tenantry needs to know about a target — its
//! base URL, how to get session tokens, how to provision the world, its
//! org-scoped resources as request templates, where it accepts org
//! identifiers, its cached endpoints and background jobs, and optional
//! sections (rate limits, OAuth, database) for the attack suites.
//!
//! Every error names `file:line:column`. The reference stack's profile is
//! built in ([`Profile::reference`]) and written in this same format
//! (`harness/profiles/reference.toml`). `docs/profiles.md` documents the
//! format with worked REST and tRPC-style profiles.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;
use toml::Spanned;

pub use crate::provision::Provisioning as ProvisionSpec;
use crate::template::{self, Body, QueryValue, RequestTemplate};

/// A profile that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}:{column}: {message}")]
pub struct ProfileError {
    /// The file.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column (in characters).
    pub column: usize,
    /// What is wrong and what was expected.
    pub message: String,
}

/// Where the target's tokens come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionSpec {
    /// A Clerk-compatible identity service (Backend API with the secret key,
    /// Frontend API for sign-in; email codes read from its test outbox).
    ClerkApi {
        /// Its base URL (default: the target's).
        api_url: String,
        /// Backend API secret key.
        secret_key: String,
        /// Origin to request tokens as (their `azp`).
        origin: Option<String>,
    },
    /// The harness signs Clerk v2 tokens itself and serves the JWKS.
    Mint {
        /// `iss` of minted tokens.
        issuer: String,
        /// `azp` of minted tokens.
        azp: Option<String>,
        /// Token lifetime.
        lifetime: Duration,
        /// Loopback address for the JWKS listener (`127.0.0.1:0`: any port).
        listen: String,
        /// Where to write the public key (PEM) for apps configured with it.
        public_pem: Option<String>,
    },
    /// An external command prints a token for user+org.
    Command {
        /// Program and arguments (`{{ user_id }}`, `{{ org_id }}`, … filled).
        argv: Vec<String>,
        /// Time limit per run.
        timeout: Duration,
    },
}

/// An org-scoped resource type of the target.
#[derive(Debug, Clone, PartialEq)]
pub struct Resource {
    /// Name (`projects`).
    pub name: String,
    /// The parent resource type for nested resources (its id is `{{ parent }}`).
    pub parent: Option<String>,
    /// JSON pointer to the id in the create answer.
    pub id_pointer: String,
    /// Create (strings `{{ canary }}` become fresh canaries).
    pub create: RequestTemplate,
    /// Read one (`{{ id }}`).
    pub read: Option<RequestTemplate>,
    /// Update one (`{{ id }}`).
    pub update: Option<RequestTemplate>,
    /// Delete one (`{{ id }}`).
    pub delete: Option<RequestTemplate>,
    /// List.
    pub list: Option<RequestTemplate>,
    /// Search (`{{ q }}`).
    pub search: Option<RequestTemplate>,
    /// Actions only an org admin may take (`update`, `delete`, …): a
    /// demoted admin must lose them (SES-004).
    pub admin_only: Vec<String>,
}

/// Places the target might take an org identifier from, probed with a
/// foreign org (besides every `{{ org }}` in the resource templates).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OrgParams {
    /// Requests with `{{ org }}` in them (org-in-path routes and the like).
    pub routes: Vec<RequestTemplate>,
    /// Query parameter names.
    pub query: Vec<String>,
    /// Header names.
    pub headers: Vec<String>,
    /// Cookie names.
    pub cookies: Vec<String>,
    /// JSON body fields, as JSON pointers (`/organization_id`, `/json/orgId`).
    pub json: Vec<String>,
    /// Form body fields.
    pub form: Vec<String>,
}

/// A background job the target runs per org (an export).
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    /// Name.
    pub name: String,
    /// Start it.
    pub start: RequestTemplate,
    /// JSON pointer to the job id in the start answer.
    pub id_pointer: String,
    /// Poll it (`{{ id }}`).
    pub poll: RequestTemplate,
    /// JSON pointer to the status while polling.
    pub status_pointer: String,
    /// Statuses that mean the job is over.
    pub done: Vec<String>,
}

/// `[database]`: the app role's connection and how the app carries the org
/// (for the database audit; defaults are the reference stack's).
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseSpec {
    /// The app role's URL (a secret: never printed).
    pub url: String,
    /// The setting that carries the org (`app.org_id`).
    pub tenant_setting: Option<String>,
    /// The tenant column (`organization_id`).
    pub tenant_column: Option<String>,
    /// The statement the app sets the context with, `$1` the org id.
    pub context_statement: Option<String>,
}

impl std::fmt::Debug for DatabaseSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatabaseSpec")
            .field("url", &"(redacted)")
            .field("tenant_setting", &self.tenant_setting)
            .field("tenant_column", &self.tenant_column)
            .field("context_statement", &self.context_statement)
            .finish()
    }
}

/// `[oauth]`: how a tester drives the target's org-scoped OAuth connect
/// flow (for the OAU suite).
#[derive(Debug, Clone, PartialEq)]
pub struct OAuthSpec {
    /// Provider names (`{{ provider }}`); the provider-swap check needs two.
    pub providers: Vec<String>,
    /// The request that starts a flow (`{{ provider }}`, `{{ org }}`, `{{ org_slug }}`).
    pub start: RequestTemplate,
    /// JSON pointer to the authorize URL in the start answer.
    pub authorize_url: String,
    /// JSON pointer in the start request's JSON body where a post-connect
    /// return path goes (for the open-redirect check), if the target takes one.
    pub return_to: Option<String>,
    /// The callback path (`{{ provider }}`), as registered with the provider.
    pub callback: String,
    /// Query appended to the authorize URL so the (mock) provider consents
    /// and redirects back (may be empty).
    pub approve: String,
    /// Query appended to the authorize URL so the provider refuses
    /// (`error=access_denied` back), if it can be made to.
    pub deny: Option<String>,
    /// The state TTL the target declares.
    pub state_ttl: Duration,
    /// The request that lists the active org's connections.
    pub connections: RequestTemplate,
    /// JSON pointer to the array of connections in that answer (`""`: the body).
    pub connection_items: String,
}

/// `[rate_limit]`: the per-org limits a target declares (RL family).
#[derive(Debug, Clone, PartialEq)]
pub struct RateLimitSpec {
    /// Every instance sharing the limiter's store (RL-010 spreads traffic
    /// over them); the first is where single-instance checks go. Default:
    /// just `base_url`.
    pub base_urls: Vec<String>,
    /// The policies, each with a request that spends it.
    pub policies: Vec<LimitPolicy>,
    /// `[rate_limit.hooks]`: how the harness acts on the target beyond
    /// HTTP (RL-005, RL-011, RL-012).
    pub hooks: Option<LimitHooksSpec>,
}

/// `[rate_limit.hooks]`: commands (run without a shell, from the working
/// directory) that do what an operator would, and the store's URL.
#[derive(Clone, PartialEq)]
pub struct LimitHooksSpec {
    /// Puts an org on the bypass list without a restart (RL-005);
    /// `{{ org_id }}` in an argument, and `TENANTRY_ORG_ID`, name it.
    pub add_bypass_org: Option<Vec<String>>,
    /// How soon a bypass edit must apply (default 5 s).
    pub bypass_reload: Duration,
    /// Stops the limiter's store abruptly (RL-011); with `start_store`.
    pub stop_store: Option<Vec<String>>,
    /// Starts it again where it was.
    pub start_store: Option<Vec<String>>,
    /// `redis://…` of the limiter's store (RL-012; may hold a password:
    /// never printed).
    pub store_url: Option<String>,
    /// The longest one command may take (default 60 s).
    pub timeout: Duration,
}

impl std::fmt::Debug for LimitHooksSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LimitHooksSpec")
            .field("add_bypass_org", &self.add_bypass_org)
            .field("bypass_reload", &self.bypass_reload)
            .field("stop_store", &self.stop_store)
            .field("start_store", &self.start_store)
            .field("store_url", &self.store_url.as_ref().map(|_| "[set]"))
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// One declared policy: `limit` requests per `window` per organization.
#[derive(Debug, Clone, PartialEq)]
pub struct LimitPolicy {
    /// The target's name for it (matched against `RateLimit-Policy`).
    pub name: String,
    /// A request that spends one unit (`{{ org }}`, `{{ org_slug }}`).
    pub request: RequestTemplate,
    /// Requests admitted per window.
    pub limit: u32,
    /// The window.
    pub window: Duration,
    /// How the target counts.
    pub algorithm: LimitAlgorithm,
    /// Whether the target sends `RateLimit-Policy` / `RateLimit` (IETF draft).
    pub headers: bool,
}

/// How a target counts, which fixes how many requests it may admit in an
/// arbitrary interval of one window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitAlgorithm {
    /// Aligned windows: up to `2 × limit` in an unaligned interval.
    FixedWindow,
    /// Exact sliding window: `limit` in every interval of one window.
    SlidingWindow,
    /// Bucket of `limit` refilled over one window: up to `2 × limit`.
    TokenBucket,
}

impl LimitAlgorithm {
    /// The most requests admitted in any interval of one window.
    pub fn bound(self, limit: u32) -> u64 {
        match self {
            LimitAlgorithm::SlidingWindow => u64::from(limit),
            LimitAlgorithm::FixedWindow | LimitAlgorithm::TokenBucket => 2 * u64::from(limit),
        }
    }
}

/// The longest state TTL the OAU suite accepts (OAU-008).
pub const MAX_STATE_TTL: Duration = Duration::from_secs(600);

/// A target profile.
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    /// `[database]`: for the database audit (RLS family).
    pub database: Option<DatabaseSpec>,
    /// `[oauth]`: the org-scoped OAuth connect flow (OAU family).
    pub oauth: Option<OAuthSpec>,
    /// Name shown in reports.
    pub name: String,
    /// Base URL.
    pub base_url: String,
    /// Session source.
    pub session: SessionSpec,
    /// Tokens go in the Authorization header (false: the `__session` cookie).
    pub token_in_header: bool,
    /// World provisioning.
    pub provision: ProvisionSpec,
    /// Resource types, parents before children.
    pub resources: Vec<Resource>,
    /// Org identifier positions.
    pub org: OrgParams,
    /// Endpoints whose answers the target caches (each org must see its own).
    pub cached: Vec<RequestTemplate>,
    /// Background jobs.
    pub jobs: Vec<Job>,
    /// `[rate_limit]`: the limits the target declares (RL family).
    pub rate_limit: Option<RateLimitSpec>,
}

/// The reference stack's profile as shipped.
pub const REFERENCE: &str = include_str!("../profiles/reference.toml");

impl Profile {
    /// Reads a profile file. `${NAME}` in string values reads environment
    /// variable NAME (for secrets); a missing variable is an error.
    pub fn load(path: &Path) -> Result<Self, ProfileError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ProfileError {
            file: file.clone(),
            line: 1,
            column: 1,
            message: format!("cannot read the profile: {e}"),
        })?;
        Self::parse(&file, &text, &|name| std::env::var(name).ok())
    }

    /// The built-in reference-stack profile, pointed at `base_url` with the
    /// identity service's `secret_key` and `origin`.
    pub fn reference(base_url: &str, secret_key: &str, origin: &str) -> Self {
        let vars = |name: &str| match name {
            "TENANTRY_BASE_URL" => Some(base_url.to_string()),
            "TENANTRY_SECRET_KEY" => Some(secret_key.to_string()),
            "TENANTRY_ORIGIN" => Some(origin.to_string()),
            _ => None,
        };
        match Self::parse("<built-in reference profile>", REFERENCE, &vars) {
            Ok(profile) => profile,
            // Tested in this module: the shipped file parses.
            Err(e) => panic!("the built-in reference profile is invalid: {e}"),
        }
    }

    /// Parses profile `text` (named `file` in errors); `env` resolves `${NAME}`.
    pub fn parse(file: &str, text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Self, ProfileError> {
        let at = |span: std::ops::Range<usize>, message: String| {
            let (line, column) = position(text, span.start);
            ProfileError {
                file: file.to_string(),
                line,
                column,
                message,
            }
        };
        let raw: RawProfile = toml::from_str(text).map_err(|e| {
            let span = e.span().unwrap_or(0..0);
            at(span, e.message().trim_end().to_string())
        })?;
        Builder { env, at: &at }.build(raw)
    }
}

/// 1-based (line, column) of byte `offset` in `text`.
fn position(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

// --- raw (as written) ---

type S<T> = Spanned<T>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProfile {
    name: Option<String>,
    base_url: S<String>,
    session: S<RawSession>,
    #[serde(default)]
    provision: Option<S<RawProvision>>,
    #[serde(default)]
    resources: Vec<S<RawResource>>,
    #[serde(default)]
    org: Option<RawOrg>,
    #[serde(default)]
    cached: Vec<S<RawTemplate>>,
    #[serde(default)]
    jobs: Vec<S<RawJob>>,
    #[serde(default)]
    rate_limit: Option<S<RawRateLimit>>,
    #[serde(default)]
    oauth: Option<S<RawOAuth>>,
    #[serde(default)]
    database: Option<S<RawDatabase>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOAuth {
    providers: S<Vec<String>>,
    start: S<RawTemplate>,
    authorize_url: S<String>,
    return_to: Option<S<String>>,
    callback: S<String>,
    #[serde(default)]
    approve: Option<S<String>>,
    deny: Option<S<String>>,
    state_ttl_secs: S<u64>,
    connections: S<RawTemplate>,
    connection_items: Option<S<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRateLimit {
    base_urls: Option<S<Vec<S<String>>>>,
    #[serde(default)]
    policies: Vec<S<RawLimitPolicy>>,
    hooks: Option<S<RawLimitHooks>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLimitHooks {
    add_bypass_org: Option<S<Vec<S<String>>>>,
    bypass_reload_secs: Option<S<u64>>,
    stop_store: Option<S<Vec<S<String>>>>,
    start_store: Option<S<Vec<S<String>>>>,
    store_url: Option<S<String>>,
    timeout_secs: Option<S<u64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLimitPolicy {
    name: S<String>,
    request: S<RawTemplate>,
    limit: S<u32>,
    window_secs: S<u64>,
    algorithm: Option<S<String>>,
    #[serde(default)]
    headers: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDatabase {
    url: S<String>,
    tenant_setting: Option<S<String>>,
    tenant_column: Option<S<String>>,
    context_statement: Option<S<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSession {
    source: S<String>,
    #[serde(default)]
    token_in: Option<S<String>>,
    // clerk-api
    api_url: Option<S<String>>,
    secret_key: Option<S<String>>,
    origin: Option<S<String>>,
    // mint
    issuer: Option<S<String>>,
    azp: Option<S<String>>,
    lifetime_secs: Option<S<u64>>,
    listen: Option<S<String>>,
    public_pem: Option<S<String>>,
    // command
    command: Option<S<Vec<String>>>,
    timeout_secs: Option<S<u64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProvision {
    via: S<String>,
    url: Option<S<String>>,
    secret: Option<S<String>>,
    command: Option<S<Vec<String>>>,
    timeout_secs: Option<S<u64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawResource {
    name: S<String>,
    parent: Option<S<String>>,
    #[serde(default = "default_id")]
    id: S<String>,
    create: S<RawTemplate>,
    read: Option<S<RawTemplate>>,
    update: Option<S<RawTemplate>>,
    delete: Option<S<RawTemplate>>,
    list: Option<S<RawTemplate>>,
    search: Option<S<RawTemplate>>,
    #[serde(default)]
    admin_only: Vec<S<String>>,
}

fn default_id() -> S<String> {
    Spanned::new(0..0, "/id".to_string())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOrg {
    #[serde(default)]
    routes: Vec<S<RawTemplate>>,
    #[serde(default)]
    query: Vec<String>,
    #[serde(default)]
    headers: Vec<String>,
    #[serde(default)]
    cookies: Vec<String>,
    #[serde(default)]
    json: Vec<S<String>>,
    #[serde(default)]
    form: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawJob {
    name: Option<String>,
    start: S<RawTemplate>,
    #[serde(default = "default_id")]
    id: S<String>,
    poll: S<RawTemplate>,
    status: S<String>,
    done: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTemplate {
    method: Option<S<String>>,
    path: S<String>,
    #[serde(default)]
    query: BTreeMap<String, toml::Value>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    #[serde(default)]
    cookies: BTreeMap<String, String>,
    json: Option<toml::Value>,
    form: Option<BTreeMap<String, String>>,
}

// --- building (semantic checks, with positions) ---

struct Builder<'a> {
    env: &'a dyn Fn(&str) -> Option<String>,
    at: &'a dyn Fn(std::ops::Range<usize>, String) -> ProfileError,
}

/// Names a template may use, by where it is.
const RESOURCE_VARS: &[&str] = &["org", "org_slug", "canary", "parent"];

impl Builder<'_> {
    fn err<T>(&self, span: std::ops::Range<usize>, message: impl fmt::Display) -> Result<T, ProfileError> {
        Err((self.at)(span, message.to_string()))
    }

    /// `[database]`: the app role's URL and how the app carries the org.
    fn database(&self, raw: &S<RawDatabase>) -> Result<DatabaseSpec, ProfileError> {
        let d = raw.get_ref();
        let url = self.expand(&d.url)?;
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://") || url.contains('=')) {
            return self.err(
                d.url.span(),
                "database.url must be a postgres:// URL (or key=value connection string) with the app role's credentials",
            );
        }
        let tenant_setting = match &d.tenant_setting {
            Some(t) => {
                let name = self.expand(t)?;
                let valid = name.split_once('.').is_some_and(|(a, b)| {
                    !a.is_empty()
                        && !b.is_empty()
                        && name
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
                });
                if !valid {
                    return self.err(
                        t.span(),
                        format!("tenant_setting `{name}` must be a custom setting name such as `app.org_id`"),
                    );
                }
                Some(name)
            }
            None => None,
        };
        let tenant_column = match &d.tenant_column {
            Some(c) => Some(self.expand(c)?),
            None => None,
        };
        let context_statement = match &d.context_statement {
            Some(c) => {
                let sql = self.expand(c)?;
                if !sql.contains("$1") {
                    return self.err(
                        c.span(),
                        "context_statement must take the org id as `$1` (e.g. `SELECT set_config('app.org_id', $1, true)`)",
                    );
                }
                Some(sql)
            }
            None => None,
        };
        Ok(DatabaseSpec {
            url,
            tenant_setting,
            tenant_column,
            context_statement,
        })
    }

    /// `[rate_limit]`: the instances and the policies the target declares.
    fn rate_limit(&self, raw: &S<RawRateLimit>, base_url: &str) -> Result<RateLimitSpec, ProfileError> {
        let r = raw.get_ref();
        let mut base_urls = Vec::new();
        match &r.base_urls {
            Some(list) if list.get_ref().is_empty() => {
                return self.err(
                    list.span(),
                    "`base_urls` is empty; list every instance sharing the limiter's store (or leave it out for just base_url)",
                )
            }
            Some(list) => {
                for url in list.get_ref() {
                    let expanded = self.expand(url)?;
                    if !(expanded.starts_with("http://") || expanded.starts_with("https://")) {
                        return self.err(
                            url.span(),
                            format!("rate_limit.base_urls entry `{expanded}` is not an http:// or https:// URL"),
                        );
                    }
                    base_urls.push(expanded.trim_end_matches('/').to_string());
                }
            }
            None => base_urls.push(base_url.to_string()),
        }
        if r.policies.is_empty() {
            return self.err(
                raw.span(),
                "[rate_limit] declares no policy; add a [[rate_limit.policies]] with name, request, limit and window_secs",
            );
        }
        let mut policies: Vec<LimitPolicy> = Vec::new();
        for p in &r.policies {
            let q = p.get_ref();
            let name = q.name.get_ref().clone();
            if policies.iter().any(|other| other.name == name) {
                return self.err(q.name.span(), format!("policy `{name}` is declared twice"));
            }
            let limit = *q.limit.get_ref();
            if limit == 0 {
                return self.err(q.limit.span(), "limit must be at least 1 (requests per window)");
            }
            let window_secs = *q.window_secs.get_ref();
            if !(1..=86_400).contains(&window_secs) {
                return self.err(
                    q.window_secs.span(),
                    "window_secs must be between 1 and 86400 (the RL suite waits out windows: short ones keep it fast)",
                );
            }
            let algorithm = match &q.algorithm {
                None => LimitAlgorithm::SlidingWindow,
                Some(a) => match a.get_ref().as_str() {
                    "sliding-window" => LimitAlgorithm::SlidingWindow,
                    "fixed-window" => LimitAlgorithm::FixedWindow,
                    "token-bucket" => LimitAlgorithm::TokenBucket,
                    other => {
                        return self.err(
                            a.span(),
                            format!("unknown algorithm `{other}`; expected `fixed-window`, `sliding-window` or `token-bucket`"),
                        )
                    }
                },
            };
            policies.push(LimitPolicy {
                name,
                request: self.template(&q.request, "GET", &["org", "org_slug"])?,
                limit,
                window: Duration::from_secs(window_secs),
                algorithm,
                headers: q.headers,
            });
        }
        let hooks = r.hooks.as_ref().map(|h| self.limit_hooks(h)).transpose()?;
        Ok(RateLimitSpec {
            base_urls,
            policies,
            hooks,
        })
    }

    /// `[rate_limit.hooks]`.
    fn limit_hooks(&self, raw: &S<RawLimitHooks>) -> Result<LimitHooksSpec, ProfileError> {
        let h = raw.get_ref();
        let argv = |key: &str,
                    value: &Option<S<Vec<S<String>>>>,
                    known: &[&str]|
         -> Result<Option<Vec<String>>, ProfileError> {
            let Some(list) = value else { return Ok(None) };
            if list.get_ref().is_empty() {
                return self.err(
                    list.span(),
                    format!("`{key}` is empty; expected [\"program\", \"arg\", …] (run without a shell)"),
                );
            }
            let mut out = Vec::new();
            for arg in list.get_ref() {
                let expanded = self.expand(arg)?;
                let mut probe = |name: &str| known.contains(&name).then(String::new);
                if let Err(e) = template::fill(&expanded, &mut probe) {
                    let known = if known.is_empty() {
                        "none".to_string()
                    } else {
                        known.join(", ")
                    };
                    return self.err(
                        arg.span(),
                        format!("`{key}` argument `{expanded}`: {e}; known: {known}"),
                    );
                }
                out.push(expanded);
            }
            Ok(Some(out))
        };
        let add_bypass_org = argv("add_bypass_org", &h.add_bypass_org, &["org_id"])?;
        let stop_store = argv("stop_store", &h.stop_store, &[])?;
        let start_store = argv("start_store", &h.start_store, &[])?;
        if stop_store.is_some() != start_store.is_some() {
            return self.err(
                raw.span(),
                "[rate_limit.hooks] needs both `stop_store` and `start_store` (RL-011 starts the store it stopped), or neither",
            );
        }
        let store_url = match &h.store_url {
            Some(url) => {
                let expanded = self.expand(url)?;
                if !(expanded.starts_with("redis://") || expanded.starts_with("rediss://")) {
                    return self.err(
                        url.span(),
                        "`store_url` must be a redis:// or rediss:// URL (RL-012 reads the store's command statistics)",
                    );
                }
                Some(expanded)
            }
            None => None,
        };
        let secs =
            |key: &str, value: &Option<S<u64>>, default: u64, max: u64| -> Result<Duration, ProfileError> {
                match value {
                    None => Ok(Duration::from_secs(default)),
                    Some(v) if (1..=max).contains(v.get_ref()) => Ok(Duration::from_secs(*v.get_ref())),
                    Some(v) => self.err(v.span(), format!("`{key}` must be between 1 and {max}")),
                }
            };
        Ok(LimitHooksSpec {
            add_bypass_org,
            bypass_reload: secs("bypass_reload_secs", &h.bypass_reload_secs, 5, 300)?,
            stop_store,
            start_store,
            store_url,
            timeout: secs("timeout_secs", &h.timeout_secs, 60, 600)?,
        })
    }

    /// `[oauth]`: the connect flow.
    fn oauth(&self, raw: &S<RawOAuth>) -> Result<OAuthSpec, ProfileError> {
        let o = raw.get_ref();
        if o.providers.get_ref().is_empty() {
            return self.err(
                o.providers.span(),
                "`oauth.providers` is empty; list the provider names the connect flow takes, e.g. [\"shopify\"]",
            );
        }
        let start = self.template(&o.start, "POST", &["provider", "org", "org_slug"])?;
        if !start.placeholders().iter().any(|p| p == "provider") {
            return self.err(
                o.start.span(),
                "`oauth.start` never uses `{{ provider }}`; it starts a flow with one provider",
            );
        }
        self.pointer(&o.authorize_url)?;
        if let Some(r) = &o.return_to {
            self.pointer(r)?;
            if !matches!(start.body, Some(Body::Json(_))) {
                return self.err(
                    r.span(),
                    "`oauth.return_to` is a JSON pointer into the start request's body; give `oauth.start` a `json` body",
                );
            }
        }
        let callback = o.callback.get_ref();
        if !callback.starts_with('/') || !template::placeholders(callback).iter().all(|p| p == "provider") {
            return self.err(
                o.callback.span(),
                format!("`oauth.callback` = `{callback}` must be a path starting with `/`; it may use only `{{{{ provider }}}}`"),
            );
        }
        let query = |key: &str, q: &Option<S<String>>| -> Result<Option<String>, ProfileError> {
            match q {
                Some(q) if q.get_ref().starts_with(['?', '&']) => self.err(
                    q.span(),
                    format!("write `oauth.{key}` without a leading `?` or `&` (e.g. `decision=deny`)"),
                ),
                Some(q) => Ok(Some(q.get_ref().clone())),
                None => Ok(None),
            }
        };
        let ttl = *o.state_ttl_secs.get_ref();
        if ttl == 0 {
            return self.err(
                o.state_ttl_secs.span(),
                "`oauth.state_ttl_secs` must be at least 1 (the TTL the target declares for a connect flow)",
            );
        }
        let connection_items = match &o.connection_items {
            Some(p) => {
                self.pointer(p)?;
                p.get_ref().clone()
            }
            None => String::new(),
        };
        Ok(OAuthSpec {
            providers: o.providers.get_ref().clone(),
            start,
            authorize_url: o.authorize_url.get_ref().clone(),
            return_to: o.return_to.as_ref().map(|r| r.get_ref().clone()),
            callback: callback.clone(),
            approve: query("approve", &o.approve)?.unwrap_or_default(),
            deny: query("deny", &o.deny)?,
            state_ttl: Duration::from_secs(ttl),
            connections: self.template(&o.connections, "GET", &["org", "org_slug"])?,
            connection_items,
        })
    }

    /// `${NAME}` -> the environment variable.
    fn expand(&self, value: &S<String>) -> Result<String, ProfileError> {
        let text = value.get_ref();
        let mut out = String::new();
        let mut rest = text.as_str();
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let Some(end) = after.find('}') else {
                return self.err(
                    value.span(),
                    "unclosed `${`; write `${NAME}` to read environment variable NAME",
                );
            };
            let name = &after[..end];
            match (self.env)(name) {
                Some(v) => out.push_str(&v),
                None => return self.err(value.span(), format!("environment variable `{name}` is not set")),
            }
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }

    fn build(&self, raw: RawProfile) -> Result<Profile, ProfileError> {
        let base_url = self.expand(&raw.base_url)?;
        if !(base_url.starts_with("http://") || base_url.starts_with("https://")) {
            return self.err(
                raw.base_url.span(),
                format!("base_url `{base_url}` is not an http:// or https:// URL"),
            );
        }
        let base_url = base_url.trim_end_matches('/').to_string();
        let (session, token_in_header) = self.session(&raw.session, &base_url)?;
        let provision = match &raw.provision {
            Some(p) => self.provision(p)?,
            None => ProvisionSpec::None,
        };
        let mut resources: Vec<Resource> = Vec::new();
        for r in &raw.resources {
            let resource = self.resource(r, &resources)?;
            resources.push(resource);
        }
        let org = match &raw.org {
            Some(o) => self.org(o)?,
            None => OrgParams::default(),
        };
        let cached = raw
            .cached
            .iter()
            .map(|t| self.template(t, "GET", &["org", "org_slug"]))
            .collect::<Result<_, _>>()?;
        let jobs = raw
            .jobs
            .iter()
            .enumerate()
            .map(|(i, j)| self.job(i, j))
            .collect::<Result<_, _>>()?;
        let oauth = match &raw.oauth {
            Some(o) => Some(self.oauth(o)?),
            None => None,
        };
        let rate_limit = match &raw.rate_limit {
            Some(r) => Some(self.rate_limit(r, &base_url)?),
            None => None,
        };
        let database = match &raw.database {
            Some(d) => Some(self.database(d)?),
            None => None,
        };
        Ok(Profile {
            database,
            oauth,
            name: raw.name.unwrap_or_else(|| base_url.clone()),
            base_url,
            session,
            token_in_header,
            provision,
            resources,
            org,
            cached,
            jobs,
            rate_limit,
        })
    }

    fn session(&self, raw: &S<RawSession>, base_url: &str) -> Result<(SessionSpec, bool), ProfileError> {
        let s = raw.get_ref();
        let token_in_header = match s.token_in.as_ref() {
            None => true,
            Some(t) => match t.get_ref().as_str() {
                "header" => true,
                "cookie" => false,
                other => {
                    return self.err(
                        t.span(),
                        format!("token_in = `{other}`; expected `header` (Authorization: Bearer) or `cookie` (__session)"),
                    )
                }
            },
        };
        let source = s.source.get_ref().as_str();
        let allowed: &[&str] = match source {
            "clerk-api" => &["api_url", "secret_key", "origin"],
            "mint" => &["issuer", "azp", "lifetime_secs", "listen", "public_pem"],
            "command" => &["command", "timeout_secs"],
            other => {
                return self.err(
                    s.source.span(),
                    format!("unknown session source `{other}`; expected `clerk-api`, `mint` or `command`"),
                )
            }
        };
        let present: [(&str, Option<std::ops::Range<usize>>); 10] = [
            ("api_url", s.api_url.as_ref().map(|v| v.span())),
            ("secret_key", s.secret_key.as_ref().map(|v| v.span())),
            ("origin", s.origin.as_ref().map(|v| v.span())),
            ("issuer", s.issuer.as_ref().map(|v| v.span())),
            ("azp", s.azp.as_ref().map(|v| v.span())),
            ("lifetime_secs", s.lifetime_secs.as_ref().map(|v| v.span())),
            ("listen", s.listen.as_ref().map(|v| v.span())),
            ("public_pem", s.public_pem.as_ref().map(|v| v.span())),
            ("command", s.command.as_ref().map(|v| v.span())),
            ("timeout_secs", s.timeout_secs.as_ref().map(|v| v.span())),
        ];
        for (key, span) in present {
            if let Some(span) = span {
                if !allowed.contains(&key) {
                    return self.err(
                        span,
                        format!(
                            "`{key}` does not apply to session source `{source}`; expected one of: {}",
                            allowed.join(", ")
                        ),
                    );
                }
            }
        }
        let opt = |v: &Option<S<String>>| v.as_ref().map(|v| self.expand(v)).transpose();
        let spec = match source {
            "clerk-api" => SessionSpec::ClerkApi {
                api_url: opt(&s.api_url)?.unwrap_or_else(|| base_url.to_string()),
                secret_key: match &s.secret_key {
                    Some(k) => self.expand(k)?,
                    None => {
                        return self.err(
                            raw.span(),
                            "session source `clerk-api` needs `secret_key` (write `secret_key = \"${CLERK_SECRET_KEY}\"` to read it from the environment)",
                        )
                    }
                },
                origin: opt(&s.origin)?,
            },
            "mint" => {
                let listen = opt(&s.listen)?.unwrap_or_else(|| "127.0.0.1:0".into());
                if let Some(l) = &s.listen {
                    match listen.parse::<std::net::SocketAddr>() {
                        Ok(addr) if addr.ip().is_loopback() => {}
                        _ => {
                            return self.err(
                                l.span(),
                                format!("listen = `{listen}`; expected a loopback address such as 127.0.0.1:0"),
                            )
                        }
                    }
                }
                SessionSpec::Mint {
                    issuer: match &s.issuer {
                        Some(i) => self.expand(i)?,
                        None => {
                            return self.err(
                                raw.span(),
                                "session source `mint` needs `issuer` (the `iss` your app expects)",
                            )
                        }
                    },
                    azp: opt(&s.azp)?,
                    lifetime: Duration::from_secs(s.lifetime_secs.as_ref().map_or(60, |v| *v.get_ref())),
                    listen,
                    public_pem: opt(&s.public_pem)?,
                }
            }
            _ => {
                let Some(argv) = &s.command else {
                    return self.err(
                        raw.span(),
                        "session source `command` needs `command = [\"program\", \"arg\", …]`",
                    );
                };
                if argv.get_ref().is_empty() {
                    return self.err(argv.span(), "`command` is empty; expected [\"program\", \"arg\", …]");
                }
                SessionSpec::Command {
                    argv: argv.get_ref().clone(),
                    timeout: Duration::from_secs(s.timeout_secs.as_ref().map_or(30, |v| *v.get_ref())),
                }
            }
        };
        Ok((spec, token_in_header))
    }

    fn provision(&self, raw: &S<RawProvision>) -> Result<ProvisionSpec, ProfileError> {
        let p = raw.get_ref();
        match p.via.get_ref().as_str() {
            "none" => Ok(ProvisionSpec::None),
            "webhooks" => {
                let (Some(url), Some(secret)) = (&p.url, &p.secret) else {
                    return self.err(
                        raw.span(),
                        "provisioning by `webhooks` needs `url` (the target's webhook route) and `secret` (whsec_…)",
                    );
                };
                let secret_value = self.expand(secret)?;
                if !secret_value.starts_with("whsec_") {
                    return self.err(
                        secret.span(),
                        "the webhook `secret` must be a Svix signing secret (`whsec_…`)",
                    );
                }
                Ok(ProvisionSpec::Webhooks {
                    url: self.expand(url)?,
                    secret: secret_value,
                })
            }
            "command" => match &p.command {
                Some(argv) if !argv.get_ref().is_empty() => Ok(ProvisionSpec::Command {
                    argv: argv.get_ref().clone(),
                    timeout: Duration::from_secs(p.timeout_secs.as_ref().map_or(60, |v| *v.get_ref())),
                }),
                _ => self.err(
                    raw.span(),
                    "provisioning by `command` needs `command = [\"program\", \"arg\", …]`",
                ),
            },
            other => self.err(
                p.via.span(),
                format!("unknown provisioning `{other}`; expected `none`, `webhooks` or `command`"),
            ),
        }
    }

    fn resource(&self, raw: &S<RawResource>, earlier: &[Resource]) -> Result<Resource, ProfileError> {
        let r = raw.get_ref();
        let name = r.name.get_ref().clone();
        if earlier.iter().any(|e| e.name == name) {
            return self.err(r.name.span(), format!("resource `{name}` is declared twice"));
        }
        if let Some(parent) = &r.parent {
            if !earlier.iter().any(|e| &e.name == parent.get_ref()) {
                return self.err(
                    parent.span(),
                    format!(
                        "parent `{}` is not a resource declared before `{name}`; declared so far: {}",
                        parent.get_ref(),
                        list_or_none(earlier.iter().map(|e| e.name.as_str()))
                    ),
                );
            }
        }
        self.pointer(&r.id)?;
        let mut vars: Vec<&str> = RESOURCE_VARS.to_vec();
        if r.parent.is_none() {
            vars.retain(|v| *v != "parent");
        }
        let create = self.template(&r.create, "POST", &vars)?;
        let mut with_id = vars.clone();
        with_id.push("id");
        let one =
            |t: &Option<S<RawTemplate>>, method: &str| -> Result<Option<RequestTemplate>, ProfileError> {
                let Some(t) = t else { return Ok(None) };
                let built = self.template(t, method, &with_id)?;
                if !built.placeholders().iter().any(|p| p == "id") {
                    return self.err(
                        t.span(),
                        "this request never uses `{{ id }}`; where does the id go?",
                    );
                }
                Ok(Some(built))
            };
        let mut search_vars = vars.clone();
        search_vars.push("q");
        let search = match &r.search {
            Some(t) => {
                let built = self.template(t, "GET", &search_vars)?;
                if !built.placeholders().iter().any(|p| p == "q") {
                    return self.err(
                        t.span(),
                        "the search request never uses `{{ q }}`; where does the query go?",
                    );
                }
                Some(built)
            }
            None => None,
        };
        for action in &r.admin_only {
            let declared = match action.get_ref().as_str() {
                "create" => true,
                "read" => r.read.is_some(),
                "update" => r.update.is_some(),
                "delete" => r.delete.is_some(),
                "list" => r.list.is_some(),
                "search" => r.search.is_some(),
                other => {
                    return self.err(
                        action.span(),
                        format!(
                            "unknown action `{other}`; expected create, read, update, delete, list or search"
                        ),
                    )
                }
            };
            if !declared {
                return self.err(
                    action.span(),
                    format!(
                        "`{}` is admin-only but the resource declares no such request",
                        action.get_ref()
                    ),
                );
            }
        }
        Ok(Resource {
            name,
            admin_only: r.admin_only.iter().map(|a| a.get_ref().clone()).collect(),
            parent: r.parent.as_ref().map(|p| p.get_ref().clone()),
            id_pointer: r.id.get_ref().clone(),
            create,
            read: one(&r.read, "GET")?,
            update: one(&r.update, "PATCH")?,
            delete: one(&r.delete, "DELETE")?,
            list: r
                .list
                .as_ref()
                .map(|t| self.template(t, "GET", &vars))
                .transpose()?,
            search,
        })
    }

    fn org(&self, raw: &RawOrg) -> Result<OrgParams, ProfileError> {
        let mut routes = Vec::new();
        for t in &raw.routes {
            let built = self.template(t, "GET", &["org", "org_slug"])?;
            if !built.placeholders().iter().any(|p| p == "org" || p == "org_slug") {
                return self.err(t.span(), "an org route must use `{{ org }}` or `{{ org_slug }}`");
            }
            routes.push(built);
        }
        for p in &raw.json {
            self.pointer(p)?;
        }
        Ok(OrgParams {
            routes,
            query: raw.query.clone(),
            headers: raw.headers.clone(),
            cookies: raw.cookies.clone(),
            json: raw.json.iter().map(|p| p.get_ref().clone()).collect(),
            form: raw.form.clone(),
        })
    }

    fn job(&self, index: usize, raw: &S<RawJob>) -> Result<Job, ProfileError> {
        let j = raw.get_ref();
        self.pointer(&j.id)?;
        self.pointer(&j.status)?;
        if j.done.is_empty() {
            return self.err(
                raw.span(),
                "`done` lists no final status; expected e.g. [\"done\", \"failed\"]",
            );
        }
        let poll = self.template(&j.poll, "GET", &["id", "org", "org_slug"])?;
        if !poll.placeholders().iter().any(|p| p == "id") {
            return self.err(j.poll.span(), "the poll request never uses `{{ id }}`");
        }
        Ok(Job {
            name: j.name.clone().unwrap_or_else(|| format!("job {}", index + 1)),
            start: self.template(&j.start, "POST", &["org", "org_slug", "canary"])?,
            id_pointer: j.id.get_ref().clone(),
            poll,
            status_pointer: j.status.get_ref().clone(),
            done: j.done.clone(),
        })
    }

    fn pointer(&self, p: &S<String>) -> Result<(), ProfileError> {
        let text = p.get_ref();
        if !(text.is_empty() || text.starts_with('/')) {
            return self.err(
                p.span(),
                format!("`{text}` is not a JSON pointer; expected e.g. `/id` or `/result/data/json/id`"),
            );
        }
        Ok(())
    }

    fn template(
        &self,
        raw: &S<RawTemplate>,
        default_method: &str,
        vars: &[&str],
    ) -> Result<RequestTemplate, ProfileError> {
        let t = raw.get_ref();
        let method = match &t.method {
            Some(m) => {
                let upper = m.get_ref().to_ascii_uppercase();
                if !["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"].contains(&upper.as_str()) {
                    return self.err(
                        m.span(),
                        format!(
                            "unknown method `{}`; expected GET, POST, PUT, PATCH, DELETE, HEAD or OPTIONS",
                            m.get_ref()
                        ),
                    );
                }
                upper
            }
            None => default_method.to_string(),
        };
        if !t.path.get_ref().starts_with('/') {
            return self.err(
                t.path.span(),
                format!(
                    "path `{}` must start with `/` (it is joined to base_url)",
                    t.path.get_ref()
                ),
            );
        }
        if t.json.is_some() && t.form.is_some() {
            return self.err(raw.span(), "a request has one body: `json` or `form`, not both");
        }
        let mut built = RequestTemplate::new(&method, t.path.get_ref());
        for (k, v) in &t.query {
            let value = match v {
                toml::Value::String(s) => QueryValue::Text(s.clone()),
                toml::Value::Table(_) | toml::Value::Array(_) => QueryValue::Json(to_json(v)),
                other => QueryValue::Text(to_json(other).to_string()),
            };
            built.query.push((k.clone(), value));
        }
        built.headers = t.headers.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        built.cookies = t.cookies.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        built.body = match (&t.json, &t.form) {
            (Some(v), _) => Some(Body::Json(to_json(v))),
            (None, Some(f)) => Some(Body::Form(
                f.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            )),
            (None, None) => None,
        };
        for name in built.placeholders() {
            if !vars.contains(&name.as_str()) {
                return self.err(
                    raw.span(),
                    format!(
                        "`{{{{ {name} }}}}` has no value here; expected one of: {}",
                        vars.iter()
                            .map(|v| format!("{{{{ {v} }}}}"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                );
            }
        }
        if let Some(f) = built.unknown_filters().first() {
            return self.err(
                raw.span(),
                format!("unknown filter `{f}`; expected one of: {}", template::FILTERS),
            );
        }
        // Placeholders must be closed.
        if let Err(e) = template::fill(&built.path, &mut |_| Some(String::new())) {
            return self.err(t.path.span(), e);
        }
        Ok(built)
    }
}

fn list_or_none<'a>(names: impl Iterator<Item = &'a str>) -> String {
    let names: Vec<_> = names.map(|n| format!("`{n}`")).collect();
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}

fn to_json(value: &toml::Value) -> Value {
    match value {
        toml::Value::String(s) => Value::String(s.clone()),
        toml::Value::Integer(i) => Value::from(*i),
        toml::Value::Float(f) => Value::from(*f),
        toml::Value::Boolean(b) => Value::Bool(*b),
        toml::Value::Datetime(d) => Value::String(d.to_string()),
        toml::Value::Array(items) => Value::Array(items.iter().map(to_json).collect()),
        toml::Value::Table(t) => Value::Object(t.iter().map(|(k, v)| (k.clone(), to_json(v))).collect()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Profile, ProfileError> {
        Profile::parse("p.toml", text, &|name| {
            (name == "KEY").then(|| "sk_test_1".to_string())
        })
    }

    #[test]
    fn the_reference_profile_parses() {
        let p = Profile::reference("http://127.0.0.1:1", "sk_test_x", "http://o.invalid");
        assert_eq!(p.base_url, "http://127.0.0.1:1");
        assert_eq!(p.resources[0].name, "projects");
        assert_eq!(p.resources[1].parent.as_deref(), Some("projects"));
        assert!(matches!(&p.session, SessionSpec::ClerkApi { secret_key, .. } if secret_key == "sk_test_x"));
    }

    #[test]
    fn positions_are_exact() {
        let e =
            parse("base_url = \"http://x\"\n[session]\nsource = \"clerk-api\"\nsecret_key = \"${NOPE}\"\n")
                .unwrap_err();
        assert_eq!(
            e.to_string(),
            "p.toml:4:14: environment variable `NOPE` is not set"
        );
        assert_eq!(position("ab\ncdé\nf", 8), (3, 1));
    }
}
