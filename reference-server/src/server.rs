//! Wiring: database setup, the app state, the middleware stack, serving.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::response::IntoResponse;
use axum::Router;
use tokio::net::TcpListener;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::TraceLayer;

use axum::routing::{get, post};

use crate::api::{self, AppState};
use crate::app_auth::{self, AppAuth};
use crate::cache::OrgCache;
use crate::circuit::{self, Breaker, Gate};
use crate::clerk_api;
use crate::config::{Config, Isolation};
use crate::db::{self, DbSetupError, PoolSettings};
use crate::identity::keys::KeyRing;
use crate::identity::service::Identity;
use crate::identity::store::Store;
use crate::identity::token::{Verifier, VerifierConfig};
#[cfg(feature = "inject")]
use crate::inject::Flaws;
use crate::jobs::{self, ServicePool};
use crate::metrics::Metrics;
use crate::problem::Problem;
use crate::proxy::{self, Proxy};
use crate::ratelimit::{
    Bypass, Limiter, MemoryStore, PolicyName, RateLimit, RedisStore, Store as LimitStore,
};
use crate::tenant_db::Db;

/// How to assemble the stack.
#[derive(Debug, Clone, Default)]
pub struct StackOptions {
    /// The validated configuration.
    pub config: Config,
    /// Trust `X-Tenantry-Dev-Tenant` (tests and local exploration only).
    pub dev_auth: bool,
    /// The config file, if any: watched for `rate_limit.bypass_orgs` changes.
    pub config_path: Option<std::path::PathBuf>,
    /// Injected flaws.
    #[cfg(feature = "inject")]
    pub flaws: Flaws,
}

impl StackOptions {
    /// Options with no flaws injected.
    pub fn new(config: Config, dev_auth: bool) -> Self {
        Self {
            config,
            dev_auth,
            config_path: None,
            #[cfg(feature = "inject")]
            flaws: Flaws::none(),
        }
    }
}

/// Why the stack could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Database setup failed.
    #[error(transparent)]
    Database(#[from] DbSetupError),
    /// The rate-limit store could not be reached.
    #[error("cannot connect to the rate-limit store (rate_limit.redis_url): {0}")]
    RateLimitStore(String),
    /// The OAuth state store could not be reached (or the token key is bad).
    #[error("cannot set up OAuth (oauth.redis_url / oauth.token_key): {0}")]
    OAuthStore(String),
    /// Signing keys could not be made.
    #[error("cannot create signing keys: {0}")]
    Keys(String),
    /// The listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: String,
        /// The OS error.
        source: std::io::Error,
    },
}

/// Applies migrations, the database side of `database.isolation` (and, with
/// the `inject` feature, the schema flaws).
pub async fn prepare_database(
    admin_url: &str,
    app_password: &str,
    options: &StackOptions,
) -> Result<(), DbSetupError> {
    db::migrate(admin_url, app_password).await?;
    db::apply_isolation(admin_url, options.config.database.isolation).await?;
    #[cfg(feature = "inject")]
    db::inject_schema_flaws(admin_url, app_password, &options.flaws).await?;
    let _ = options;
    Ok(())
}

/// A built application: the router, its background workers, its keys.
pub struct App {
    router: Router,
    workers: jobs::Workers,
    keys: Arc<KeyRing>,
    identity: Arc<Identity>,
    key_refresh: AbortOnDrop,
    bypass_watch: Option<AbortOnDrop>,
    limits: crate::conn::ConnLimits,
}

/// A background task that ends with its owner.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App").finish_non_exhaustive()
    }
}

/// Builds the app on a prepared database. `admin_url` names the host and
/// database; the app connects as `tenantry_app` with `app_password`.
pub async fn build(admin_url: &str, app_password: &str, options: &StackOptions) -> Result<App, StartError> {
    let config = &options.config;
    let settings = PoolSettings {
        size: config.database.pool_size,
        statement_timeout: Duration::from_millis(config.database.statement_timeout_ms),
    };
    #[cfg(feature = "inject")]
    let role = db::serving_role(&options.flaws);
    #[cfg(not(feature = "inject"))]
    let role = db::serving_role();
    let isolation = config.database.isolation;
    db::check_isolation(admin_url, isolation).await?;
    if isolation != Isolation::Both {
        tracing::warn!(
            isolation = %isolation,
            "database.isolation = {isolation}: one isolation layer only (for measuring the layers; \
             production uses both)"
        );
    }
    let metrics = Arc::new(Metrics::default());
    let db_breaker = Arc::new(Breaker::new("postgres", config.circuit));
    metrics.register_circuit(Arc::clone(&db_breaker));
    let pool = db::pool_behind(admin_url, role, app_password, &settings, db_breaker)?;
    let db = Db::new(pool).with_isolation(isolation);
    #[cfg(feature = "inject")]
    let db = db.with_flaws(options.flaws.clone());
    let cache = OrgCache::new(
        Duration::from_millis(config.cache.stats_ttl_ms),
        config.cache.max_entries,
    );
    #[cfg(feature = "inject")]
    let cache = cache.with_flaws(options.flaws.clone());
    let service: Option<ServicePool> = service_pool(admin_url, app_password, options, &settings)?;
    let (exports, workers) = jobs::start(
        db.clone(),
        jobs::WorkerSettings {
            workers: config.exports.workers,
            capacity: config.exports.queue_capacity,
            lease: Duration::from_millis(config.exports.lease_ms),
            max_attempts: i64::from(config.exports.max_attempts),
            poll_interval: Duration::from_millis(config.exports.poll_interval_ms),
        },
        service,
    );
    // The signing keys live in the identity store, shared by every instance.
    let identity_breaker = Arc::new(Breaker::new("identity-store", config.circuit));
    metrics.register_circuit(Arc::clone(&identity_breaker));
    let identity_store = Store::new(db::identity_pool_behind(
        admin_url,
        app_password,
        config.identity.pool_size,
        Duration::from_millis(config.database.statement_timeout_ms),
        Arc::clone(&identity_breaker),
    )?);
    let keys = Arc::new(
        crate::identity::service::load_key_ring(
            &identity_store,
            Duration::from_millis(config.auth.key_overlap_ms),
        )
        .await
        .map_err(|e| StartError::Keys(format!("cannot load signing keys from the identity store: {e}")))?,
    );
    let oauth = Arc::new(oauth(options).await?);
    let mock_provider = Arc::new(mock_provider(options));
    let state = AppState {
        db,
        stats_cache: Arc::new(cache),
        exports,
        keys: Arc::clone(&keys),
        oauth,
        #[cfg(feature = "inject")]
        flaws: options.flaws.clone(),
    };
    let verifier = Verifier::new(
        Arc::clone(&keys),
        VerifierConfig {
            issuer: config.auth.issuer.clone(),
            authorized_parties: config.auth.authorized_parties.clone(),
            leeway_secs: config.auth.leeway_secs,
        },
    );
    #[cfg(feature = "inject")]
    let verifier = verifier.with_flaws(options.flaws.clone());
    let identity = Arc::new(Identity::new(
        identity_store,
        Arc::clone(&keys),
        config.identity.clone(),
        config.auth.issuer.clone(),
    ));
    let key_refresh = AbortOnDrop(tokio::spawn(refresh_keys(Arc::clone(&identity))));
    let proxy = Proxy::new(verifier, config.server.max_body_bytes).with_key_refresh(Arc::clone(&identity));
    #[cfg(feature = "inject")]
    let proxy = proxy.with_flaws(options.flaws.clone());
    let proxy = Arc::new(proxy);
    let limits = limits(options, Arc::clone(&metrics)).await?;
    let data_api = if options.dev_auth {
        api::routes(state, axum::middleware::from_fn(crate::dev_auth::layer), &limits)
    } else {
        api::routes(
            state,
            axum::middleware::from_fn_with_state(Arc::clone(&proxy), proxy::layer),
            &limits,
        )
    };
    let bypass_watch = options.config_path.clone().map(|path| {
        AbortOnDrop(tokio::spawn(crate::ratelimit::bypass::watch(
            path,
            Arc::clone(limits.limiter.bypass()),
            Duration::from_millis(config.rate_limit.reload_interval_ms),
            crate::config::Config::bypass_orgs_in,
        )))
    });
    let rate_limit_view = Arc::new(clerk_api::backend::RateLimitView {
        limiter: Arc::clone(&limits.limiter),
        policies: PolicyName::ALL
            .into_iter()
            .map(|name| config.rate_limit.policy(name))
            .collect(),
    });
    let app_auth = AppAuth {
        identity: Arc::clone(&identity),
        metrics: Arc::clone(&metrics),
        #[cfg(feature = "inject")]
        flaws: options.flaws.clone(),
    };
    // Signed-in routes always verify real session tokens, dev-auth or not.
    let signed_in = Router::new()
        .route("/auth/token/{template}", get(app_auth::template_token))
        .route_layer(axum::middleware::from_fn_with_state(
            Arc::clone(&proxy),
            proxy::signed_in_layer,
        ));
    // Routes that reach the identity store answer at once while its
    // circuit is open, each in its own error shape.
    let problem_gate = axum::middleware::from_fn_with_state(
        Gate::new(Arc::clone(&identity_breaker), |open| {
            Problem::circuit_open(&open).into_response()
        }),
        circuit::gate,
    );
    let clerk_gate = axum::middleware::from_fn_with_state(
        Gate::new(identity_breaker, clerk_api::circuit_open),
        circuit::gate,
    );
    let app_routes = Router::new()
        .route("/auth/sign-in", post(app_auth::sign_in))
        .route("/auth/sign-in/{id}/code", post(app_auth::submit_code))
        .merge(signed_in)
        .route_layer(problem_gate)
        .route("/metrics", get(app_auth::metrics))
        .with_state(app_auth);
    let clerk_routes = clerk_api::backend::routes(Arc::clone(&identity), Some(rate_limit_view))
        .merge(clerk_api::frontend::routes(Arc::clone(&identity)))
        .route_layer(clerk_gate);
    let router = data_api
        .merge(app_routes)
        .merge(clerk_routes)
        .merge(crate::oauth::mock_provider::routes(mock_provider));
    let request_timeout = config.request_timeout();
    let body_timeout = Duration::from_millis(config.server.body_timeout_ms);
    let max_body = config.server.max_body_bytes;
    let router = router
        .layer(DefaultBodyLimit::max(config.server.max_body_bytes))
        .layer(axum::middleware::from_fn(move |request, next| {
            deadline(request_timeout, request, next)
        }))
        // Outside the deadline: a slow body is the client's fault (408), and
        // the handler's time starts once the body is in.
        .layer(axum::middleware::from_fn(move |request, next| {
            crate::conn::read_body(body_timeout, max_body, request, next)
        }))
        .layer(axum::middleware::map_response(ensure_retry_after))
        .layer(CatchPanicLayer::custom(|_| {
            tracing::error!("a handler panicked");
            Problem::internal().into_response()
        }))
        .layer(TraceLayer::new_for_http());
    Ok(App {
        router,
        workers,
        keys,
        identity,
        key_refresh,
        bypass_watch,
        limits: crate::conn::ConnLimits {
            max_connections: config.server.max_connections,
            header_read: Duration::from_millis(config.server.header_read_timeout_ms),
            idle: Duration::from_millis(config.server.idle_timeout_ms),
        },
    })
}

#[cfg(feature = "inject")]
fn service_pool(
    admin_url: &str,
    app_password: &str,
    options: &StackOptions,
    settings: &PoolSettings,
) -> Result<Option<ServicePool>, StartError> {
    if options.flaws.has(crate::inject::Flaw::JobWithoutOrg) {
        let pool = db::pool_as(admin_url, "tenantry_service", app_password, settings)?;
        return Ok(Some(ServicePool(pool)));
    }
    Ok(None)
}

#[cfg(not(feature = "inject"))]
fn service_pool(
    _admin_url: &str,
    _app_password: &str,
    _options: &StackOptions,
    _settings: &PoolSettings,
) -> Result<Option<ServicePool>, StartError> {
    Ok(None)
}

impl App {
    /// The session-token signing keys (the identity service signs with them).
    pub fn key_ring(&self) -> Arc<KeyRing> {
        Arc::clone(&self.keys)
    }

    /// The identity service.
    pub fn identity(&self) -> Arc<Identity> {
        Arc::clone(&self.identity)
    }

    /// The router (for in-process use, e.g. benches).
    pub fn router(&self) -> Router {
        self.router.clone()
    }

    /// Serves on `listener` within the connection limits (`conn`) until
    /// `shutdown` resolves, then lets the export jobs in hand finish (up to
    /// 10 s; queued jobs stay in the database for the next start).
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let App {
            router,
            workers,
            key_refresh,
            bypass_watch,
            limits,
            ..
        } = self;
        crate::conn::serve(listener, router, limits, shutdown).await?;
        // Jobs in hand finish; queued ones stay queued for the next start.
        workers.stop(Duration::from_secs(10)).await;
        drop(key_refresh);
        drop(bypass_watch);
        Ok(())
    }
}

/// Where browsers and providers reach this server.
fn public_url(config: &Config) -> String {
    config
        .server
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{}", config.server.listen))
}

/// The configured providers; those without URLs are this server's mock.
fn providers(config: &Config) -> Vec<crate::oauth::Provider> {
    let base = public_url(config);
    config
        .oauth
        .providers
        .iter()
        .map(|(name, p)| crate::oauth::Provider {
            name: name.clone(),
            client_id: p.client_id.clone(),
            client_secret: p.client_secret.clone(),
            authorize_url: p
                .authorize_url
                .clone()
                .unwrap_or_else(|| format!("{base}/mock-oauth/{name}/authorize")),
            token_url: p
                .token_url
                .clone()
                .unwrap_or_else(|| format!("{base}/mock-oauth/{name}/token")),
            redirect_uri: format!("{base}/api/integrations/{name}/callback"),
            scopes: p.scopes.clone(),
        })
        .collect()
}

fn mock_provider(options: &StackOptions) -> crate::oauth::mock_provider::MockProvider {
    let clients = providers(&options.config)
        .into_iter()
        .filter(|p| {
            options
                .config
                .oauth
                .providers
                .get(&p.name)
                .is_some_and(|c| c.authorize_url.is_none())
        })
        .map(|p| {
            (
                p.name.clone(),
                crate::oauth::mock_provider::RegisteredClient {
                    client_id: p.client_id,
                    client_secret: p.client_secret,
                    redirect_uri: p.redirect_uri,
                },
            )
        })
        .collect();
    crate::oauth::mock_provider::MockProvider::new(clients)
}

async fn oauth(options: &StackOptions) -> Result<crate::oauth::OAuth, StartError> {
    let config = &options.config.oauth;
    let store = match config.store_kind() {
        crate::config::StoreKind::Memory => crate::oauth::state::StateStore::memory(),
        crate::config::StoreKind::Redis => {
            crate::oauth::state::StateStore::redis(config.redis_url.as_deref().unwrap_or_default())
                .await
                .map_err(|e| StartError::OAuthStore(e.to_string()))?
        }
    };
    let key = match config.token_key_bytes() {
        Some(key) => key,
        None => {
            tracing::warn!(
                "oauth.token_key is not set: integration tokens are sealed with a key for this process only \
                 and cannot be read after a restart"
            );
            crate::ids::random_bytes::<32>().to_vec()
        }
    };
    let sealer = crate::oauth::seal::Sealer::new(&key).map_err(|e| StartError::OAuthStore(e.to_string()))?;
    let service = crate::oauth::OAuth::new(
        providers(&options.config),
        store,
        Duration::from_secs(config.state_ttl_secs),
        sealer,
        config.return_paths.clone(),
    );
    #[cfg(feature = "inject")]
    let service = service.with_flaws(options.flaws.clone());
    Ok(service)
}

/// The route table's policies, with the config's overrides, on one limiter.
struct ConfiguredLimits {
    limiter: Arc<Limiter>,
    config: crate::config::RateLimitConfig,
}

impl api::Limits for ConfiguredLimits {
    fn policy(&self, name: PolicyName) -> RateLimit {
        self.limiter.layer(self.config.policy(name))
    }
}

async fn limits(options: &StackOptions, metrics: Arc<Metrics>) -> Result<ConfiguredLimits, StartError> {
    let config = &options.config.rate_limit;
    let store = match config.store_kind() {
        crate::config::StoreKind::Memory => LimitStore::Memory(Arc::new(MemoryStore::new())),
        crate::config::StoreKind::Redis => {
            let url = config.redis_url.as_deref().unwrap_or_default();
            let redis = RedisStore::connect(url)
                .await
                .map_err(|e| StartError::RateLimitStore(e.to_string()))?;
            #[cfg(feature = "inject")]
            let redis = redis.with_flaws(options.flaws.clone());
            LimitStore::Redis(redis)
        }
    };
    let breaker = matches!(store, LimitStore::Redis(_)).then(|| {
        let breaker = Arc::new(Breaker::new("redis", options.config.circuit));
        metrics.register_circuit(Arc::clone(&breaker));
        breaker
    });
    let limiter = Limiter::new(
        store,
        Arc::new(Bypass::new(config.bypass_orgs.iter().cloned())),
        Duration::from_millis(config.store_timeout_ms),
        metrics,
    );
    let limiter = match breaker {
        Some(breaker) => limiter.with_breaker(breaker),
        None => limiter,
    };
    #[cfg(feature = "inject")]
    let limiter = limiter.with_flaws(options.flaws.clone());
    Ok(ConfiguredLimits {
        limiter: Arc::new(limiter),
        config: config.clone(),
    })
}

/// Re-reads the signing keys every 30 s, so an instance picks up a rotation
/// done by another well within the overlap (at least 60 s).
async fn refresh_keys(identity: Arc<Identity>) {
    let mut tick = tokio::time::interval(Duration::from_secs(30));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        identity.refresh_keys_if_due().await;
    }
}

/// The per-request deadline (`server.request_timeout_ms`): a handler that
/// has not answered by then is abandoned with 503 + `Retry-After`, logged
/// at WARN (the client may retry; it is not a server error).
async fn deadline(
    limit: Duration,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let path = request.uri().path().to_string();
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            tracing::warn!(%path, limit_ms = limit.as_millis() as u64, "request timed out");
            Problem::new(
                http::StatusCode::SERVICE_UNAVAILABLE,
                "timeout",
                "Service Unavailable",
                "the request took too long; retry later",
            )
            .into_response()
        }
    }
}

/// Every 503 tells the client when to come back: one that a layer made
/// without `Retry-After` gets `Retry-After: 1`.
async fn ensure_retry_after(mut response: axum::response::Response) -> axum::response::Response {
    if response.status() == http::StatusCode::SERVICE_UNAVAILABLE
        && !response.headers().contains_key(http::header::RETRY_AFTER)
    {
        response
            .headers_mut()
            .insert(http::header::RETRY_AFTER, http::HeaderValue::from(1u64));
    }
    response
}

/// Binds `addr` (use port 0 for any free port).
pub async fn bind(addr: std::net::SocketAddr) -> Result<TcpListener, StartError> {
    TcpListener::bind(addr).await.map_err(|source| StartError::Bind {
        addr: addr.to_string(),
        source,
    })
}
