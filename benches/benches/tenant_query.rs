//! A tenant list query (org A's first page: 21 of 1 000 rows, a neighbour
//! org with as many) at 1 and 16 in flight.
//!
//! `tenant_list_c<N>`: the round trips. Through `TenantDb` (BEGIN + context +
//! SELECT + COMMIT pipelined in one round trip) against the bare single
//! statement on the same kind of pool (the baseline), against the context in
//! a round trip of its own (`BEGIN` + `set_config`, then SELECT + COMMIT: two
//! round trips), and against the naive four-round-trip transaction. The bare
//! variants' connections carry `app.org_id` from their startup parameters,
//! so they pay nothing per query for the context. `bare_single_statement`
//! uses the same pipelining driver and pool type as `TenantDb`;
//! `bare_tokio_postgres` is the same statement through tokio-postgres, for
//! reference.
//!
//! `tenant_isolation_c<N>`: the isolation layers, through `TenantDb` in each
//! `database.isolation` mode, each on a database prepared for it
//! (`db::apply_isolation`): `both` (the org predicate in the statement and
//! row-level security; the production setting and the baseline),
//! `app_filter_only` (predicate, RLS disabled on the tenant tables) and
//! `rls_only` (no predicate, RLS policies on the transaction's context).
//!
//! All return the same rows of org A. After each group, the same variants run
//! interleaved (25 rounds of 320 queries of every variant back to back; see
//! `tenantry_benches::interleave`) for ratios robust to load changes on a
//! shared machine. `scripts/bench-ratios tenant_query` prints each variant as
//! a throughput ratio of its group's baseline, both ways.
//!
//! `cargo bench -p tenantry-benches --bench tenant_query`

use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use deadpool_postgres::{ManagerConfig, RecyclingMethod, Runtime};
use futures::future::{BoxFuture, FutureExt};
use tenantry_benches::{
    bare_pool, interleave, seed_projects, write_interleaved, APP_PASSWORD as PASSWORD, ORG_A, ORG_B,
};
use tenantry_harness::services::{Database, Postgres};
use tenantry_reference::config::Isolation;
use tenantry_reference::db::{self, PoolSettings, APP_ROLE};
use tenantry_reference::tenant::{OrgId, Role, Tenant};
use tenantry_reference::tenant_db::{Db, Direction, Query, PROJECTS};
use tenantry_reference::wire::{self, Statement, Value};
use tokio_postgres::NoTls;

const ROWS_PER_ORG: i64 = 1000;
const PAGE: i64 = 21;
const POOL: usize = 16;
/// Rounds of the interleaved measurement, and queries per variant per round.
const ROUNDS: usize = 25;
const QUERIES_PER_BATCH: usize = 320;

struct Setup {
    _pg: Arc<Postgres>,
    database: Database,
    /// One database per isolation mode, prepared for it.
    isolated: Vec<(Isolation, Database)>,
}

/// A fresh database prepared for `isolation`, seeded.
async fn prepared(pg: &Arc<Postgres>, isolation: Isolation) -> Database {
    let database = pg.create_database().await.expect("a bench database");
    db::migrate(&database.url(), PASSWORD).await.expect("migrations");
    db::apply_isolation(&database.url(), isolation)
        .await
        .expect("database.isolation applied");
    seed_projects(&database.url(), ROWS_PER_ORG)
        .await
        .expect("seeded projects");
    database
}

async fn setup() -> Setup {
    let pg = Arc::new(Postgres::start().await.expect("Postgres for the bench"));
    let database = prepared(&pg, Isolation::Both).await;
    let mut isolated = Vec::new();
    for mode in Isolation::ALL {
        isolated.push((mode, prepared(&pg, mode).await));
    }
    Setup {
        _pg: pg,
        database,
        isolated,
    }
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

/// BEGIN + set_config in one round trip, then SELECT + COMMIT in another:
/// the context in a round trip of its own.
async fn context_separate(pool: &wire::Pool, sql: &str) -> usize {
    let mut conn = pool.get().await.unwrap();
    let org = [Value::Text(ORG_A.into())];
    let params = params();
    let begun = conn
        .pipeline(&[
            Statement::plain("BEGIN READ ONLY"),
            Statement {
                sql: "SELECT set_config('app.org_id', $1, true)",
                params: &org,
            },
        ])
        .await
        .unwrap();
    assert!(begun.into_iter().all(|r| r.is_ok()));
    let mut done = conn
        .pipeline(&[Statement { sql, params: &params }, Statement::plain("COMMIT")])
        .await
        .unwrap()
        .into_iter();
    let n = done.next().unwrap().unwrap().len();
    done.next().unwrap().unwrap();
    n
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

/// `batch` times `concurrency` calls of `f` in flight; every call must return
/// the page.
fn repeat<'a>(
    rt: &tokio::runtime::Runtime,
    batch: usize,
    concurrency: usize,
    f: &dyn Fn() -> BoxFuture<'a, usize>,
) {
    rt.block_on(async {
        for _ in 0..batch {
            let counts = futures::future::join_all((0..concurrency).map(|_| f())).await;
            assert!(counts.iter().all(|&n| n == PAGE as usize));
        }
    })
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let setup = rt.block_on(setup());
    let bare_pool = bare_pool(&setup.database.url(), ORG_A, POOL).unwrap();
    let tokio_pool = tokio_pool(&setup.database);
    let naive_pool = tenant_pool(&setup.database);
    let separate_pool = tenant_pool(&setup.database);
    let db = Db::new(tenant_pool(&setup.database));
    let tenant = Tenant::new(OrgId::new(ORG_A).unwrap(), "user", Role::Member, vec![]);
    let (sql, _) = list_query().build(tenant.org(), true).unwrap();

    // Every variant must return the same page of org A, or the comparison is void.
    rt.block_on(async {
        assert_eq!(bare(&bare_pool, &sql).await, PAGE as usize);
        assert_eq!(bare_tokio(&tokio_pool, &sql).await, PAGE as usize);
        assert_eq!(through_tenant_db(&db, &tenant).await, PAGE as usize);
        assert_eq!(naive(&naive_pool, &sql).await, PAGE as usize);
        assert_eq!(context_separate(&separate_pool, &sql).await, PAGE as usize);
    });

    for concurrency in [1usize, 16] {
        let mut group = c.benchmark_group(format!("tenant_list_c{concurrency}"));
        group.throughput(Throughput::Elements(concurrency as u64));
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
        group.bench_function(BenchmarkId::from_parameter("context_separate_round_trip"), |b| {
            b.to_async(&rt).iter(|| async {
                futures::future::join_all((0..concurrency).map(|_| context_separate(&separate_pool, &sql)))
                    .await
            })
        });
        group.bench_function(BenchmarkId::from_parameter("naive_four_round_trips"), |b| {
            b.to_async(&rt).iter(|| async {
                futures::future::join_all((0..concurrency).map(|_| naive(&naive_pool, &sql))).await
            })
        });
        group.finish();

        // The same variants interleaved (see `tenantry_benches::interleave`).
        let batch = (QUERIES_PER_BATCH / concurrency).max(1);
        let mut v_bare = || repeat(&rt, batch, concurrency, &|| bare(&bare_pool, &sql).boxed());
        let mut v_tokio = || repeat(&rt, batch, concurrency, &|| bare_tokio(&tokio_pool, &sql).boxed());
        let mut v_tenant_db = || {
            repeat(&rt, batch, concurrency, &|| {
                through_tenant_db(&db, &tenant).boxed()
            })
        };
        let mut v_separate = || {
            repeat(&rt, batch, concurrency, &|| {
                context_separate(&separate_pool, &sql).boxed()
            })
        };
        let mut v_naive = || repeat(&rt, batch, concurrency, &|| naive(&naive_pool, &sql).boxed());
        let mut named: Vec<(&str, &mut dyn FnMut())> = vec![
            ("bare_single_statement", &mut v_bare),
            ("bare_tokio_postgres", &mut v_tokio),
            ("tenant_db", &mut v_tenant_db),
            ("context_separate_round_trip", &mut v_separate),
            ("naive_four_round_trips", &mut v_naive),
        ];
        let results = interleave(ROUNDS, batch * concurrency, 0, &mut named);
        write_interleaved(
            &format!("tenant_list_c{concurrency}"),
            "bare_single_statement",
            ROUNDS,
            batch * concurrency,
            &results,
        );
    }

    // The isolation modes, each on its own prepared database.
    let modes: Vec<(Isolation, Db)> = setup
        .isolated
        .iter()
        .map(|(mode, database)| (*mode, Db::new(tenant_pool(database)).with_isolation(*mode)))
        .collect();
    rt.block_on(async {
        for (mode, db) in &modes {
            let rows = db.for_tenant(&tenant).read(&list_query()).await.unwrap();
            assert_eq!(rows.len(), PAGE as usize, "{mode}");
            assert!(
                rows.iter().all(|r| {
                    let id: String = r.get("id");
                    id.contains(ORG_A) && !id.contains(ORG_B)
                }),
                "{mode}: only org A's rows"
            );
        }
    });
    for concurrency in [1usize, 16] {
        let mut group = c.benchmark_group(format!("tenant_isolation_c{concurrency}"));
        group.throughput(Throughput::Elements(concurrency as u64));
        for (mode, db) in &modes {
            let name = mode.name().replace('-', "_");
            group.bench_function(BenchmarkId::from_parameter(name), |b| {
                b.to_async(&rt).iter(|| async {
                    futures::future::join_all((0..concurrency).map(|_| through_tenant_db(db, &tenant))).await
                })
            });
        }
        group.finish();

        let batch = (QUERIES_PER_BATCH / concurrency).max(1);
        let tenant = &tenant;
        let rt = &rt;
        let mut runs: Vec<Box<dyn FnMut() + '_>> = modes
            .iter()
            .map(|(_, db)| {
                Box::new(move || {
                    rt.block_on(async {
                        for _ in 0..batch {
                            let counts = futures::future::join_all(
                                (0..concurrency).map(|_| through_tenant_db(db, tenant)),
                            )
                            .await;
                            assert!(counts.iter().all(|&n| n == PAGE as usize));
                        }
                    })
                }) as Box<dyn FnMut()>
            })
            .collect();
        let names: Vec<String> = modes.iter().map(|(m, _)| m.name().replace('-', "_")).collect();
        let mut named: Vec<(&str, &mut dyn FnMut())> = names
            .iter()
            .zip(runs.iter_mut())
            .map(|(name, run)| (name.as_str(), &mut **run as &mut dyn FnMut()))
            .collect();
        let both = modes.iter().position(|(m, _)| *m == Isolation::Both).unwrap_or(0);
        let results = interleave(ROUNDS, batch * concurrency, both, &mut named);
        write_interleaved(
            &format!("tenant_isolation_c{concurrency}"),
            "both",
            ROUNDS,
            batch * concurrency,
            &results,
        );
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
