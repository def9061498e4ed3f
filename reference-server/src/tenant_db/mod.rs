//! `TenantDb`: the only way to run SQL against tenant tables.
//!
//! It is obtainable only from a [`Tenant`]. Each request gets one
//! transaction in which `app.org_id` is set transaction-locally; the
//! `BEGIN`, the `set_config` and the first statement go out in one pipeline
//! under one Sync (`wire`), and single-statement reads pipeline their
//! `COMMIT` too, so the tenancy context costs no extra round trip.
//! Statements are built by [`Query`] (`query.rs`), which injects
//! `organization_id = $1` — bound, never interpolated — into reads, updates
//! and deletes (in every isolation mode but `rls-only`, where row-level
//! security alone isolates), and the org value into inserts.
//!
//! A transaction that is dropped before it finished (a cancelled request, a
//! panic) never goes back to the pool: its connection is closed, which makes
//! Postgres roll it back.
//!
//! The pool's connection attempts go through a circuit breaker
//! ([`crate::circuit`]): while Postgres is down a request is refused at once
//! with [`DbError::CircuitOpen`] (503 + `Retry-After`) instead of opening a
//! connection of its own, and a connection that fails with an I/O error
//! takes the pool's idle connections with it (they were opened to the same
//! server), so a restarted server is not met with stale sockets.

mod error;
mod query;

pub use self::error::DbError;
pub use self::query::{
    escape_like, Direction, FuzzInput, Query, Table, UnknownColumn, Value, DOCUMENTS, EXPORTS, EXPORT_JOBS,
    INTEGRATIONS, PROJECTS,
};
pub use crate::wire::Row;
use crate::wire::{Object, Pool, Statement, StatementError, StatementResult, TxStatus, WireError};

use crate::config::Isolation;
#[cfg(feature = "inject")]
use crate::inject::Flaws;
use crate::tenant::{OrgId, Tenant};

/// The app's database: a pool of pipelining `tenantry_app` connections. It
/// offers no way to run SQL without a [`Tenant`].
#[derive(Clone)]
pub struct Db {
    pool: Pool,
    isolation: Isolation,
    #[cfg(feature = "inject")]
    flaws: Flaws,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db")
            .field("pool", &self.pool.status())
            .field("isolation", &self.isolation)
            .finish()
    }
}

impl Db {
    /// Wraps a pool of app-role connections (isolation `both`).
    pub fn new(pool: Pool) -> Self {
        Self {
            pool,
            isolation: Isolation::Both,
            #[cfg(feature = "inject")]
            flaws: Flaws::none(),
        }
    }

    /// Sets the isolation mode (`database.isolation`): in `rls-only`,
    /// statements carry no org predicate. The database side of the mode
    /// (row-level security on or off) is applied by
    /// [`crate::db::apply_isolation`] when the database is prepared.
    pub fn with_isolation(mut self, isolation: Isolation) -> Self {
        self.isolation = isolation;
        self
    }

    /// The isolation mode.
    pub fn isolation(&self) -> Isolation {
        self.isolation
    }

    /// Injects flaws into this handle.
    #[cfg(feature = "inject")]
    pub fn with_flaws(mut self, flaws: Flaws) -> Self {
        self.flaws = flaws;
        self
    }

    /// The tenant-scoped handle: the only door to tenant data.
    pub fn for_tenant<'a>(&'a self, tenant: &'a Tenant) -> TenantDb<'a> {
        TenantDb { db: self, tenant }
    }

    /// Whether a connection can be had and answers (health checks).
    pub async fn ping(&self) -> Result<(), DbError> {
        let mut conn = self.connection().await?;
        let answer = conn.query("SELECT 1", &[]).await;
        self.watch(answer)??;
        Ok(())
    }

    /// Leases the next export job of any org for `lease_ms`: the one
    /// statement that reaches across orgs, a call of the SECURITY DEFINER
    /// function `app.claim_export_job` (migration 0003), which hands back
    /// nothing but the job's org, export id and attempt number. The job
    /// itself then runs as that org's tenant ([`Tenant::for_job`]).
    pub async fn claim_export_job(&self, lease_ms: i64) -> Result<Option<ClaimedJob>, DbError> {
        let mut conn = self.connection().await?;
        let answer = conn
            .query(
                "SELECT organization_id, export_id, attempts::int8 FROM app.claim_export_job($1::int8::int4)",
                &[Value::Int(lease_ms)],
            )
            .await;
        let rows = self.watch(answer)??;
        let Some(row) = rows.first() else {
            return Ok(None);
        };
        let org: String = row.try_get(0).map_err(DbError::Other)?;
        Ok(Some(ClaimedJob {
            org: OrgId::new(org).ok_or_else(|| DbError::Other("a queued job without an org".into()))?,
            export_id: row.try_get(1).map_err(DbError::Other)?,
            attempt: row.try_get(2).map_err(DbError::Other)?,
        }))
    }

    /// The circuit breaker in front of the pool's connection attempts.
    pub fn breaker(&self) -> &std::sync::Arc<crate::circuit::Breaker> {
        self.pool.manager().breaker()
    }

    /// A pooled connection, or at once [`DbError::CircuitOpen`] while the
    /// breaker is open (no waiting on the pool for a server that is down).
    async fn connection(&self) -> Result<Object, DbError> {
        if let Some(open) = self.breaker().refuses() {
            return Err(DbError::CircuitOpen(open));
        }
        Ok(self.pool.get().await?)
    }

    /// Passes `result` through; an I/O error means the server went away (or
    /// restarted), so the idle connections to it are dropped as well.
    fn watch<T>(&self, result: Result<T, WireError>) -> Result<T, WireError> {
        if let Err(WireError::Io(_)) = &result {
            drop_idle(&self.pool);
        }
        result
    }

    fn org_filter(&self) -> bool {
        self.isolation.app_filter() && !flaw!(self.flaws, NoAppFilter)
    }

    fn context_sql(&self) -> &'static str {
        if flaw!(self.flaws, SessionScopedContext) {
            "SELECT set_config('app.org_id', $1, false)"
        } else {
            "SELECT set_config('app.org_id', $1, true)"
        }
    }
}

/// A leased export job: which org it belongs to, nothing of its data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedJob {
    /// The org the job runs in.
    pub org: OrgId,
    /// The export.
    pub export_id: String,
    /// This attempt's number (1 for the first).
    pub attempt: i64,
}

/// Tenant data access for one [`Tenant`].
#[derive(Debug)]
pub struct TenantDb<'a> {
    db: &'a Db,
    tenant: &'a Tenant,
}

impl TenantDb<'_> {
    /// Runs one read statement in a read-only transaction of its own:
    /// `BEGIN`, the org context, the statement and `COMMIT` in one pipeline
    /// under one Sync — one round trip, one server cycle.
    pub async fn read(&self, query: &Query) -> Result<Vec<Row>, DbError> {
        let mut tx = self.begin_with("BEGIN READ ONLY").await?;
        tx.first_statement(query, true).await
    }

    /// Runs one read statement that yields at most one row.
    pub async fn read_opt(&self, query: &Query) -> Result<Option<Row>, DbError> {
        Ok(self.read(query).await?.into_iter().next())
    }

    /// Opens the request's transaction. Nothing is sent until the first
    /// statement, which carries `BEGIN` and the org context with it.
    pub async fn begin(&self) -> Result<TenantTx, DbError> {
        self.begin_with("BEGIN").await
    }

    async fn begin_with(&self, begin: &'static str) -> Result<TenantTx, DbError> {
        let conn = self.db.connection().await?;
        Ok(TenantTx {
            conn: Some(conn),
            org: Value::Text(self.tenant.org().as_str().to_string()),
            org_id: self.tenant.org().clone(),
            begin,
            started: false,
            finished: false,
            org_filter: self.db.org_filter(),
            context_sql: self.db.context_sql(),
        })
    }
}

/// The request's transaction on one pooled connection.
pub struct TenantTx {
    conn: Option<Object>,
    org: Value,
    org_id: OrgId,
    begin: &'static str,
    started: bool,
    finished: bool,
    org_filter: bool,
    context_sql: &'static str,
}

impl std::fmt::Debug for TenantTx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TenantTx")
            .field("org", &self.org_id)
            .field("started", &self.started)
            .field("finished", &self.finished)
            .finish()
    }
}

fn rows(result: Option<StatementResult>) -> Result<Vec<Row>, DbError> {
    result
        .unwrap_or(Err(StatementError::Skipped))
        .map_err(DbError::from)
}

impl TenantTx {
    fn conn(&mut self) -> Result<&mut Object, DbError> {
        self.conn
            .as_mut()
            .ok_or_else(|| DbError::Unavailable("the transaction's connection is gone".into()))
    }

    /// `BEGIN`, the context and the statement (and `COMMIT` when `commit`)
    /// in one pipeline.
    async fn first_statement(&mut self, query: &Query, commit: bool) -> Result<Vec<Row>, DbError> {
        let (sql, params) = query.build(&self.org_id, self.org_filter)?;
        let org = [self.org.clone()];
        let mut pipeline = vec![
            Statement::plain(self.begin),
            Statement {
                sql: self.context_sql,
                params: &org,
            },
            Statement {
                sql: &sql,
                params: &params,
            },
        ];
        if commit {
            pipeline.push(Statement::plain("COMMIT"));
        }
        self.started = true;
        let sent = self.conn()?.pipeline(&pipeline).await;
        let mut results = self.watch(sent)?.into_iter();
        rows(results.next())?;
        rows(results.next())?;
        let outcome = rows(results.next());
        if commit {
            let committed = rows(results.next());
            if outcome.is_ok() {
                committed?;
            }
            self.settle().await;
        }
        outcome
    }

    /// After a pipeline meant to end the transaction: if the server still
    /// reports one (a statement failed and COMMIT was skipped), roll it back;
    /// if that fails, the connection is not reused.
    async fn settle(&mut self) {
        self.finished = true;
        if let Ok(conn) = self.conn() {
            if conn.status() != TxStatus::Idle {
                let _ = conn.pipeline(&[Statement::plain("ROLLBACK")]).await;
            }
        }
    }

    /// Runs a statement in the transaction and returns its rows.
    pub async fn query(&mut self, query: &Query) -> Result<Vec<Row>, DbError> {
        if self.finished {
            return Err(DbError::Other("the transaction has already finished".into()));
        }
        if !self.started {
            return self.first_statement(query, false).await;
        }
        let (sql, params) = query.build(&self.org_id, self.org_filter)?;
        let sent = self.conn()?.query(&sql, &params).await;
        Ok(self.watch(sent)??)
    }

    fn watch<T>(&mut self, result: Result<T, WireError>) -> Result<T, WireError> {
        if let (Err(WireError::Io(_)), Some(conn)) = (&result, &self.conn) {
            if let Some(pool) = Object::pool(conn) {
                drop_idle(&pool);
            }
        }
        result
    }

    /// Runs a statement that yields at most one row.
    pub async fn query_opt(&mut self, query: &Query) -> Result<Option<Row>, DbError> {
        Ok(self.query(query).await?.into_iter().next())
    }

    /// Runs a statement and returns how many rows it returned or touched.
    pub async fn execute(&mut self, query: &Query) -> Result<u64, DbError> {
        Ok(self.query(query).await?.len() as u64)
    }

    /// Commits. Nothing to do if no statement ran.
    pub async fn commit(mut self) -> Result<(), DbError> {
        self.end("COMMIT").await
    }

    /// Rolls back.
    pub async fn rollback(mut self) -> Result<(), DbError> {
        self.end("ROLLBACK").await
    }

    async fn end(&mut self, sql: &str) -> Result<(), DbError> {
        if self.started && !self.finished {
            let sent = self.conn()?.query(sql, &[]).await;
            let result = self.watch(sent);
            self.settle().await;
            result??;
        }
        self.finished = true;
        Ok(())
    }
}

impl Drop for TenantTx {
    fn drop(&mut self) {
        if self.started && !self.finished {
            if let Some(conn) = self.conn.take() {
                // Never back to the pool: dropping the connection closes it
                // and Postgres rolls the transaction back.
                drop(Object::take(conn));
                tracing::debug!("discarded a connection whose transaction did not finish");
            }
        }
    }
}

/// Drops every idle connection of `pool`: they were opened to a server that
/// just failed one of them.
fn drop_idle(pool: &Pool) {
    pool.retain(|_, _| false);
}
