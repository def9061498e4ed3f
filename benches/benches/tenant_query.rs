//! A tenant list query through `TenantDb` (BEGIN + context + SELECT + COMMIT
//! pipelined in one round trip) against the bare single statement on the same
//! kind of pool, and against the naive four-round-trip transaction.
//!
//! All return the same rows under the same RLS policies. The bare variants'
//! connections carry `app.org_id` from their startup parameters, so they pay
//! nothing per query for the context. `bare_single_statement` uses the same
//! pipelining driver and pool type as `TenantDb` (the baseline of the ratio);
//! `bare_tokio_postgres` is the same statement through tokio-postgres, for
//! reference.
//!
//! `cargo bench -p tenantry-benches --bench tenant_query`

use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use deadpool_postgres::{ManagerConfig, RecyclingMethod, Runtime};
use tenantry_harness::services::{Database, Postgres};
use tenantry_reference::db::{self, PoolSettings, APP_ROLE};
use tenantry_reference::tenant::{OrgId, Role, Tenant};
use tenantry_reference::tenant_db::{Db, Direction, Query, PROJECTS};
use tenantry_reference::wire::{self, Statement, Value, WireConfig};
use tokio_postgres::NoTls;

const PASSWORD: &str = "tenantry-bench-app-password";
const ORG_A: &str = "org_bench_a";
const ROWS_PER_ORG: i64 = 1000;
const PAGE: i64 = 21;
const POOL: usize = 16;

struct Setup {
    _pg: Arc<Postgres>,
    database: Database,
}

async fn setup() -> Setup {
    let pg = Arc::new(Postgres::start().await.expect("Postgres for the bench"));
    let database = pg.create_database().await.unwrap();
    db::migrate(&database.url(), PASSWORD).await.unwrap();
    let (client, conn) = tokio_postgres::connect(&database.url(), NoTls).await.unwrap();
    tokio::spawn(conn);
    client
        .execute(
            "INSERT INTO app.projects (organization_id, id, name, description, created_by)
             SELECT org, 'prj_' || lpad(org || i::text, 26, '0'), 'project ' || i, 'description ' || i, 'user'
             FROM unnest(ARRAY['org_bench_a', 'org_bench_b']) AS org, generate_series(1, $1::bigint) AS i",
            &[&ROWS_PER_ORG],
        )
        .await
        .unwrap();
    client.batch_execute("ANALYZE").await.unwrap();
    Setup { _pg: pg, database }
}

/// A pipelining pool whose connections carry org A's context from their
/// startup parameters.
fn bare_pool(database: &Database) -> wire::Pool {
    let config = WireConfig::from_url(&database.url(), APP_ROLE, PASSWORD)
        .unwrap()
        .parameter("app.org_id", ORG_A);
    wire::Pool::builder(wire::Manager::new(config))
        .max_size(POOL)
        .runtime(deadpool::Runtime::Tokio1)
        .build()
        .unwrap()
}

/// The same, through tokio-postgres.
fn tokio_pool(database: &Database) -> deadpool_postgres::Pool {
    let mut config: tokio_postgres::Config = database.url_as(APP_ROLE, PASSWORD).parse().unwrap();
    config.options(format!("-c app.org_id={ORG_A}"));
    let manager = deadpool_postgres::Manager::from_config(
        config,
        NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    deadpool_postgres::Pool::builder(manager)
        .max_size(POOL)
        .runtime(Runtime::Tokio1)
        .build()
        .unwrap()
}

fn tenant_pool(database: &Database) -> wire::Pool {
    db::pool_as(
        &database.url(),
        APP_ROLE,
        PASSWORD,
        &PoolSettings {
            size: POOL,
            statement_timeout: Duration::from_secs(5),
        },
    )
    .unwrap()
}

fn list_query() -> Query {
    Query::select(&PROJECTS)
        .order_by("id", Direction::Asc)
        .limit(PAGE)
}

fn params() -> [Value; 2] {
    [Value::Text(ORG_A.into()), Value::Int(PAGE)]
}

async fn bare(pool: &wire::Pool, sql: &str) -> usize {
    let mut conn = pool.get().await.unwrap();
    conn.query(sql, &params()).await.unwrap().unwrap().len()
}

async fn bare_tokio(pool: &deadpool_postgres::Pool, sql: &str) -> usize {
    let conn = pool.get().await.unwrap();
    let statement = conn.prepare_cached(sql).await.unwrap();
    conn.query(&statement, &[&ORG_A, &PAGE]).await.unwrap().len()
}

async fn through_tenant_db(db: &Db, tenant: &Tenant) -> usize {
    db.for_tenant(tenant).read(&list_query()).await.unwrap().len()
}

/// BEGIN; set_config; SELECT; COMMIT — each waiting for the previous answer.
async fn naive(pool: &wire::Pool, sql: &str) -> usize {
    let mut conn = pool.get().await.unwrap();
    let org = [Value::Text(ORG_A.into())];
    conn.query("BEGIN", &[]).await.unwrap().unwrap();
    conn.pipeline(&[Statement {
        sql: "SELECT set_config('app.org_id', $1, true)",
        params: &org,
    }])
    .await
    .unwrap();
    let n = conn.query(sql, &params()).await.unwrap().unwrap().len();
    conn.query("COMMIT", &[]).await.unwrap().unwrap();
    n
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let setup = rt.block_on(setup());
    let bare_pool = bare_pool(&setup.database);
    let tokio_pool = tokio_pool(&setup.database);
    let naive_pool = tenant_pool(&setup.database);
    let db = Db::new(tenant_pool(&setup.database));
    let tenant = Tenant::new(OrgId::new(ORG_A).unwrap(), "user", Role::Member, vec![]);
    let (sql, _) = list_query().build(tenant.org(), true).unwrap();

    // Every variant must return the same page of org A, or the comparison is void.
    rt.block_on(async {
        assert_eq!(bare(&bare_pool, &sql).await, PAGE as usize);
        assert_eq!(bare_tokio(&tokio_pool, &sql).await, PAGE as usize);
        assert_eq!(through_tenant_db(&db, &tenant).await, PAGE as usize);
        assert_eq!(naive(&naive_pool, &sql).await, PAGE as usize);
    });

    for concurrency in [1usize, 16] {
        let mut group = c.benchmark_group(format!("tenant_list_c{concurrency}"));
        group.throughput(Throughput::Elements(concurrency as u64));
        group.measurement_time(Duration::from_secs(8));
        group.bench_function(BenchmarkId::from_parameter("bare_single_statement"), |b| {
            b.to_async(&rt).iter(|| async {
                futures::future::join_all((0..concurrency).map(|_| bare(&bare_pool, &sql))).await
            })
        });
        group.bench_function(BenchmarkId::from_parameter("bare_tokio_postgres"), |b| {
            b.to_async(&rt).iter(|| async {
                futures::future::join_all((0..concurrency).map(|_| bare_tokio(&tokio_pool, &sql))).await
            })
        });
        group.bench_function(BenchmarkId::from_parameter("tenant_db"), |b| {
            b.to_async(&rt).iter(|| async {
                futures::future::join_all((0..concurrency).map(|_| through_tenant_db(&db, &tenant))).await
            })
        });
        group.bench_function(BenchmarkId::from_parameter("naive_four_round_trips"), |b| {
            b.to_async(&rt).iter(|| async {
                futures::future::join_all((0..concurrency).map(|_| naive(&naive_pool, &sql))).await
            })
        });
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
