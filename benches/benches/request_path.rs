//! The full request path in-process against a bare handler doing the same
//! query on the same kind of pool, both driven with `tower::ServiceExt::oneshot`
//! on an axum `Router` (no sockets on either side), at 1 and 16 requests in
//! flight, reading the whole response body.
//!
//! `GET /api/projects` (first page: 21 rows fetched, 20 returned, of 1 000
//! in the org; a neighbour org has as many) through:
//! - `full`: the reference server's router as `server::build` makes it —
//!   tower-http layers (trace, timeout, catch-panic, body limit), the proxy
//!   (RS256 token verification with the key cached, org guard over path,
//!   query, headers, cookies and body), the limiter (`api.read`, sliding
//!   window, in-process store), `TenantDb` (BEGIN READ ONLY + context +
//!   SELECT + COMMIT pipelined in one round trip), the list handler;
//! - `full_redis`: the same with the limiter on the Redis store (one EVALSHA
//!   per request; skipped when no Redis can be started);
//! - `no_limiter`: the same router with the org in `rate_limit.bypass_orgs`
//!   (the limiter's bypass path: no store call);
//! - `no_proxy`: the router with the dev-auth stand-in instead of the proxy
//!   (a header parsed into the Tenant: no token, no org guard);
//! - `no_proxy_no_limiter`: both of the above removed;
//! - `bare_tenant_db_layers`: the bare router with the same tower-http layers
//!   and the query through `TenantDb` (what `no_proxy_no_limiter` should cost);
//! - `bare_tenant_db`: the bare handler with the query through `TenantDb`;
//! - `bare_layers`: the bare handler under the same tower-http layers;
//! - `bare` (the baseline): a one-route axum router whose handler runs the
//!   same statement on a pipelining pool of the same size whose connections
//!   carry the org from their startup parameters (no transaction, no
//!   context, no token, no limiter), and serialises the same page.
//!
//! Every variant must answer 200 with the same 20 projects of org A.
//! After criterion's groups, an interleaved A/B measurement (25 rounds, each
//! running 320 requests of every variant back to back) gives each variant's
//! median per-round ratio to `bare`, robust to load changes on a shared
//! machine, and the bench process's CPU time per request (what the
//! in-process layers cost, whatever else runs on the machine), in
//! `request_path_c<N>/interleaved.json`. `scripts/bench-ratios
//! request_path` prints both; the acceptance is `full` >= 0.7x.
//!
//! `cargo bench -p tenantry-benches --bench request_path`

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::extract::{DefaultBodyLimit, State};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use http::{header, Request, StatusCode};
use serde::Serialize;
use tenantry_benches::{bare_pool, interleave, seed_projects, write_interleaved, APP_PASSWORD, ORG_A, ORG_B};
use tenantry_harness::services::{Database, Postgres, Redis};
use tenantry_reference::config::{Config, PolicyOverride};
use tenantry_reference::db::{self, PoolSettings, APP_ROLE};
use tenantry_reference::identity::token::{mint, SessionClaims};
use tenantry_reference::problem::Problem;
use tenantry_reference::server::{self, App, StackOptions};
use tenantry_reference::tenant::{OrgId, Role, Tenant};
use tenantry_reference::tenant_db::{Db, Direction, Query, Row, PROJECTS};
use tenantry_reference::wire::{self, Value};
use tower::ServiceExt;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

const ROWS_PER_ORG: i64 = 1000;
const PAGE: i64 = 20;
const POOL: usize = 16;
const PARTY: &str = "http://localhost:3000";
const PATH: &str = "/api/projects";
const DEV_TENANT: &str = "org_bench_a;user_bench;org:admin;org:projects:read";

/// What the list endpoint returns per project (the reference's `Project`).
#[derive(Debug, Serialize)]
struct Project {
    id: String,
    name: String,
    description: String,
    created_by: String,
    created_at: String,
    updated_at: String,
}

impl Project {
    fn from_row(row: &Row) -> Self {
        Self {
            id: row.get("id"),
            name: row.get("name"),
            description: row.get("description"),
            created_by: row.get("created_by"),
            created_at: row.get("created_at"),
            updated_at: row.get("updated_at"),
        }
    }
}

/// The reference's page shape: `limit + 1` fetched, `limit` returned.
#[derive(Debug, Serialize)]
struct Page {
    data: Vec<Project>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_cursor: Option<String>,
}

impl Page {
    fn from_rows(rows: &[Row]) -> Self {
        let mut data: Vec<Project> = rows.iter().map(Project::from_row).collect();
        let more = data.len() as i64 > PAGE;
        data.truncate(PAGE as usize);
        let next_cursor = if more {
            data.last().map(|p| p.id.clone())
        } else {
            None
        };
        Self { data, next_cursor }
    }
}

fn list_query() -> Query {
    Query::select(&PROJECTS)
        .order_by("id", Direction::Asc)
        .limit(PAGE + 1)
}

#[derive(Clone)]
struct Bare {
    pool: wire::Pool,
    sql: Arc<str>,
}

/// The baseline handler: one statement, org from the connection's startup
/// parameters (RLS still applies) and the same org predicate as `TenantDb`'s.
async fn bare_list(State(bare): State<Bare>) -> Result<Json<Page>, Problem> {
    let mut conn = bare.pool.get().await.map_err(|_| Problem::unavailable())?;
    let params = [Value::Text(ORG_A.into()), Value::Int(PAGE + 1)];
    let rows = conn
        .query(&bare.sql, &params)
        .await
        .map_err(|_| Problem::unavailable())?
        .map_err(|_| Problem::internal())?;
    Ok(Json(Page::from_rows(&rows)))
}

#[derive(Clone)]
struct WithTenantDb {
    db: Db,
    tenant: Arc<Tenant>,
}

/// The bare handler with the query through `TenantDb` (a fixed tenant).
async fn tenant_db_list(State(state): State<WithTenantDb>) -> Result<Json<Page>, Problem> {
    let rows = state
        .db
        .for_tenant(&state.tenant)
        .read(&list_query())
        .await
        .map_err(|_| Problem::unavailable())?;
    Ok(Json(Page::from_rows(&rows)))
}

/// The tower-http layers `server::build` puts around every route.
fn server_layers(router: Router, config: &Config) -> Router {
    router
        .layer(DefaultBodyLimit::max(config.server.max_body_bytes))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            config.request_timeout(),
        ))
        .layer(CatchPanicLayer::custom(|_| Problem::internal().into_response()))
        .layer(TraceLayer::new_for_http())
}

fn config(bypass: bool, redis_url: Option<&str>) -> Config {
    let mut config = Config::default();
    config.database.pool_size = POOL;
    config.auth.authorized_parties = vec![PARTY.into()];
    // The highest limit config accepts, per 1 s window: far above what the
    // bench sends, so every decision is made and admits.
    for policy in tenantry_reference::ratelimit::PolicyName::ALL {
        config.rate_limit.policies.insert(
            policy,
            PolicyOverride {
                limit: Some(1_000_000),
                window_secs: Some(1),
                ..Default::default()
            },
        );
    }
    if bypass {
        config.rate_limit.bypass_orgs = vec![ORG_A.into()];
    }
    if let Some(url) = redis_url {
        config.rate_limit.redis_url = Some(url.into());
    }
    config
}

/// One way of serving the request.
struct Variant {
    name: &'static str,
    router: Router,
    /// `(header, value)` the request carries.
    auth: (header::HeaderName, String),
    _app: Option<App>,
}

async fn build_app(database: &Database, options: StackOptions) -> Result<App, String> {
    options.config.validate().map_err(|e| e.to_string())?;
    server::build(&database.url(), APP_PASSWORD, &options)
        .await
        .map_err(|e| e.to_string())
}

fn bearer(app: &App, issuer: &str) -> Result<String, String> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(|e| e.to_string())?
        .as_secs() as i64;
    let claims = SessionClaims::session(issuer, "user_bench", "sess_bench", now, 3600)
        .in_org(ORG_A, "bench-a", "org:admin", &["org:projects:read".into()])
        .map_err(|e| e.to_string())?
        .for_party(PARTY);
    let token = mint(&app.key_ring().active(), &claims).map_err(|e| e.to_string())?;
    Ok(format!("Bearer {token}"))
}

async fn app_variant(
    name: &'static str,
    database: &Database,
    dev_auth: bool,
    bypass: bool,
    redis_url: Option<&str>,
) -> Result<Variant, String> {
    let config = config(bypass, redis_url);
    let issuer = config.auth.issuer.clone();
    let app = build_app(database, StackOptions::new(config, dev_auth)).await?;
    let auth = if dev_auth {
        (
            header::HeaderName::from_static(tenantry_reference::dev_auth::HEADER),
            DEV_TENANT.to_string(),
        )
    } else {
        (header::AUTHORIZATION, bearer(&app, &issuer)?)
    };
    Ok(Variant {
        name,
        router: app.router(),
        auth,
        _app: Some(app),
    })
}

fn bare_variant(name: &'static str, router: Router) -> Variant {
    Variant {
        name,
        router,
        // Carried but unused, so both sides build the same request.
        auth: (header::AUTHORIZATION, "Bearer unused".into()),
        _app: None,
    }
}

/// Sends one request; the status and the body.
async fn send(router: &Router, auth: &(header::HeaderName, String)) -> (StatusCode, axum::body::Bytes) {
    let request = Request::get(PATH)
        .header(&auth.0, &auth.1)
        .body(Body::empty())
        .expect("a valid request");
    let response = router
        .clone()
        .oneshot(request)
        .await
        .unwrap_or_else(|never| match never {});
    let status = response.status();
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap_or_default();
    (status, body)
}

/// Sends one request; the status and the number of projects in the body.
async fn call(router: &Router, auth: &(header::HeaderName, String)) -> (StatusCode, usize) {
    let (status, body) = send(router, auth).await;
    // Counting ids is cheap next to a parse, and the same on both sides.
    (status, count_occurrences(&body, br#""id":"prj_"#))
}

fn count_occurrences(haystack: &[u8], needle: &[u8]) -> usize {
    haystack.windows(needle.len()).filter(|w| *w == needle).count()
}

/// Checks a variant answers as the baseline does: 200 and org A's page.
async fn check(variant: &Variant) -> Result<(), String> {
    let (status, body) = send(&variant.router, &variant.auth).await;
    let json: serde_json::Value = serde_json::from_slice(&body).map_err(|e| format!("{e}: {body:?}"))?;
    let data = json["data"].as_array().cloned().unwrap_or_default();
    if status != StatusCode::OK
        || data.len() != PAGE as usize
        || json["next_cursor"].as_str().is_none()
        || !data.iter().all(|p| {
            p["id"]
                .as_str()
                .is_some_and(|id| id.contains(ORG_A) && !id.contains(ORG_B))
        })
    {
        return Err(format!("{}: {status} {json}", variant.name));
    }
    Ok(())
}

/// Fields drop in order: the apps before the services they use.
struct Setup {
    variants: Vec<Variant>,
    _database: Database,
    _redis: Option<Redis>,
    _pg: Arc<Postgres>,
}

async fn setup() -> Result<Setup, String> {
    let pg = Arc::new(
        Postgres::start()
            .await
            .map_err(|e| format!("Postgres for the bench: {e}"))?,
    );
    let database = pg.create_database().await.map_err(|e| e.to_string())?;
    let url = database.url();
    server::prepare_database(&url, APP_PASSWORD, &StackOptions::new(config(false, None), false))
        .await
        .map_err(|e| e.to_string())?;
    seed_projects(&url, ROWS_PER_ORG)
        .await
        .map_err(|e| e.to_string())?;

    let redis = match Redis::start().await {
        Ok(redis) => Some(redis),
        Err(e) => {
            eprintln!("request_path: no Redis ({e}); skipping full_redis");
            None
        }
    };

    let mut variants = vec![app_variant("full", &database, false, false, None).await?];
    if let Some(redis) = &redis {
        variants.push(app_variant("full_redis", &database, false, false, Some(redis.url())).await?);
    }
    variants.push(app_variant("no_limiter", &database, false, true, None).await?);
    variants.push(app_variant("no_proxy", &database, true, false, None).await?);
    variants.push(app_variant("no_proxy_no_limiter", &database, true, true, None).await?);

    let layers_config = config(false, None);
    let tenant_db = WithTenantDb {
        db: Db::new(
            db::pool_as(
                &url,
                APP_ROLE,
                APP_PASSWORD,
                &PoolSettings {
                    size: POOL,
                    statement_timeout: Duration::from_millis(layers_config.database.statement_timeout_ms),
                },
            )
            .map_err(|e| e.to_string())?,
        ),
        tenant: Arc::new(Tenant::new(
            OrgId::new(ORG_A).ok_or("org id")?,
            "user_bench",
            Role::Admin,
            vec!["org:projects:read".into()],
        )),
    };
    let tenant_db_router = Router::new()
        .route(PATH, get(tenant_db_list))
        .with_state(tenant_db);
    variants.push(bare_variant(
        "bare_tenant_db_layers",
        server_layers(tenant_db_router.clone(), &layers_config),
    ));
    variants.push(bare_variant("bare_tenant_db", tenant_db_router));

    let org = OrgId::new(ORG_A).ok_or("org id")?;
    let (sql, _) = list_query().build(&org, true).map_err(|e| e.to_string())?;
    let bare = Bare {
        pool: bare_pool(&url, ORG_A, POOL).map_err(|e| e.to_string())?,
        sql: sql.into(),
    };
    let bare_router = Router::new().route(PATH, get(bare_list)).with_state(bare);
    variants.push(bare_variant(
        "bare_layers",
        server_layers(bare_router.clone(), &layers_config),
    ));
    variants.push(bare_variant("bare", bare_router));

    for variant in &variants {
        check(variant).await?;
    }
    Ok(Setup {
        _pg: pg,
        _redis: redis,
        _database: database,
        variants,
    })
}

/// Rounds of the interleaved measurement, and requests per variant per round.
const ROUNDS: usize = 25;
const REQUESTS_PER_BATCH: usize = 320;

/// The interleaved A/B run (see [`tenantry_benches::interleave`]).
fn interleaved(rt: &tokio::runtime::Runtime, variants: &[Variant], concurrency: usize) {
    let Some(bare) = variants.iter().position(|v| v.name == "bare") else {
        return;
    };
    let batch = (REQUESTS_PER_BATCH / concurrency).max(1);
    let mut runs: Vec<Box<dyn FnMut() + '_>> = variants
        .iter()
        .map(|variant| {
            Box::new(move || {
                rt.block_on(async {
                    for _ in 0..batch {
                        call_all(variant, concurrency).await;
                    }
                })
            }) as Box<dyn FnMut()>
        })
        .collect();
    let mut named: Vec<(&str, &mut dyn FnMut())> = variants
        .iter()
        .zip(runs.iter_mut())
        .map(|(v, run)| (v.name, &mut **run as &mut dyn FnMut()))
        .collect();
    let results = interleave(ROUNDS, batch * concurrency, bare, &mut named);
    write_interleaved(
        &format!("request_path_c{concurrency}"),
        "bare",
        ROUNDS,
        batch * concurrency,
        &results,
    );
}

/// `concurrency` requests of `variant` at once; a refused or short answer
/// voids the comparison.
async fn call_all(variant: &Variant, concurrency: usize) {
    let answers =
        futures::future::join_all((0..concurrency).map(|_| call(&variant.router, &variant.auth))).await;
    assert!(
        answers
            .iter()
            .all(|&(s, n)| s == StatusCode::OK && n == PAGE as usize),
        "{}: {answers:?}",
        variant.name
    );
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let setup = match rt.block_on(setup()) {
        Ok(setup) => setup,
        Err(e) => {
            eprintln!("request_path: setup failed: {e}");
            std::process::exit(1);
        }
    };

    for concurrency in [1usize, 16] {
        let mut group = c.benchmark_group(format!("request_path_c{concurrency}"));
        group.throughput(Throughput::Elements(concurrency as u64));
        for variant in &setup.variants {
            group.bench_function(BenchmarkId::from_parameter(variant.name), |b| {
                b.to_async(&rt).iter(|| call_all(variant, concurrency))
            });
        }
        group.finish();
    }
    for concurrency in [1usize, 16] {
        interleaved(&rt, &setup.variants, concurrency);
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
