//! The database: roles, embedded versioned migrations, and the app pool.
//!
//! Three roles, fixed by name because the policies and grants name them:
//! - `tenantry_owner` (NOLOGIN) owns schemas `app` and `identity` and every
//!   table in them;
//! - `tenantry_app` (LOGIN, NOSUPERUSER, NOBYPASSRLS, NOINHERIT, not a member
//!   of the owner) is what the data API connects as; it cannot see `identity`;
//! - `tenantry_identity` (LOGIN, same restrictions) is what the identity store
//!   connects as; it cannot see `app`.
//!
//! Migrations run as the admin URL's role with `SET ROLE tenantry_owner`,
//! each once (recorded with a checksum in `app.schema_migrations`), under an
//! advisory lock, so concurrent starts are safe and re-runs are no-ops.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio_postgres::NoTls;

use crate::circuit::Breaker;

use crate::config::Isolation;
use crate::wire::{Manager, Pool, WireConfig};

#[cfg(feature = "inject")]
use crate::inject::Flaws;

/// The role the server connects as.
pub const APP_ROLE: &str = "tenantry_app";
/// The role the identity store connects as: it reads and writes schema
/// `identity` and nothing else (no tenant data).
pub const IDENTITY_ROLE: &str = "tenantry_identity";
/// The schema holding the identity store.
pub const IDENTITY_SCHEMA: &str = "identity";
/// The role that owns the schema.
pub const OWNER_ROLE: &str = "tenantry_owner";
/// The schema holding tenant tables.
pub const SCHEMA: &str = "app";
/// The tenant tables, each with `organization_id`, FORCE RLS and the org policy.
pub const TENANT_TABLES: &[&str] = &["projects", "documents", "exports", "integrations", "export_jobs"];

/// One embedded migration.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    /// Monotonic version.
    pub version: i32,
    /// Short name.
    pub name: &'static str,
    /// The SQL, run as the owner role in one transaction.
    pub sql: &'static str,
}

/// Every migration, in order.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "tenant_tables",
        sql: include_str!("../migrations/0001_tenant_tables.sql"),
    },
    Migration {
        version: 2,
        name: "identity",
        sql: include_str!("../migrations/0002_identity.sql"),
    },
    Migration {
        version: 3,
        name: "export_queue",
        sql: include_str!("../migrations/0003_export_queue.sql"),
    },
];

/// A database error during setup.
#[derive(Debug, thiserror::Error)]
pub enum DbSetupError {
    /// Connecting failed.
    #[error("cannot connect to the database as {role}: {source}")]
    Connect {
        /// Which role.
        role: String,
        /// Driver error.
        source: tokio_postgres::Error,
    },
    /// A setup statement failed.
    #[error("{step} failed: {source}")]
    Statement {
        /// Which step.
        step: String,
        /// Driver error.
        source: tokio_postgres::Error,
    },
    /// An applied migration differs from the embedded one.
    #[error("migration {version} ({name}) was changed after it was applied (checksum {applied} in the database, {embedded} embedded); add a new migration instead")]
    Drift {
        /// Version.
        version: i32,
        /// Name.
        name: &'static str,
        /// Checksum recorded.
        applied: String,
        /// Checksum embedded.
        embedded: String,
    },
    /// Pool construction failed.
    #[error("cannot build the connection pool: {0}")]
    Pool(String),
    /// The database's row-level security does not match `database.isolation`.
    #[error(
        "config key `database.isolation` is `{isolation}`, but row-level security is {} on {tables}: \
         the database was prepared for another mode; start one instance with the same mode \
         (it prepares the database) or use the mode the other instances use",
        if *rls { "enabled" } else { "disabled" }
    )]
    IsolationMismatch {
        /// The configured mode.
        isolation: Isolation,
        /// The tables whose row-level security differs.
        tables: String,
        /// Whether row-level security is enabled on them.
        rls: bool,
    },
}

fn stmt(step: impl Into<String>) -> impl FnOnce(tokio_postgres::Error) -> DbSetupError {
    let step = step.into();
    move |source| DbSetupError::Statement { step, source }
}

/// FNV-1a 64 of the migration text, hex: detects edits to applied migrations.
pub fn checksum(sql: &str) -> String {
    let mut hash: u64 = 0xcbf29ce484222325;
    for byte in sql.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x100000001b3);
    }
    format!("{hash:016x}")
}

/// A checksum over every migration, for naming template databases.
pub fn schema_fingerprint() -> String {
    let all: String = MIGRATIONS.iter().map(|m| checksum(m.sql)).collect();
    checksum(&all)
}

async fn connect_admin(
    url: &str,
) -> Result<(tokio_postgres::Client, tokio::task::JoinHandle<()>), DbSetupError> {
    let (client, connection) =
        tokio_postgres::connect(url, NoTls)
            .await
            .map_err(|source| DbSetupError::Connect {
                role: "the admin role (database.url)".into(),
                source,
            })?;
    let task = tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %e, "admin connection ended");
        }
    });
    Ok((client, task))
}

/// Creates the roles if missing (roles are cluster-wide: creation tolerates a
/// concurrent creator) and applies pending migrations.
pub async fn migrate(admin_url: &str, app_password: &str) -> Result<(), DbSetupError> {
    let (mut client, task) = connect_admin(admin_url).await?;
    ensure_roles(&client, app_password).await?;
    let tx = client.transaction().await.map_err(stmt("begin migrations"))?;
    tx.batch_execute("SELECT pg_advisory_xact_lock(7307720601)")
        .await
        .map_err(stmt("take the migration lock"))?;
    tx.batch_execute(&format!(
        "CREATE SCHEMA IF NOT EXISTS {SCHEMA} AUTHORIZATION {OWNER_ROLE};
         REVOKE ALL ON SCHEMA public FROM PUBLIC;
         REVOKE ALL ON SCHEMA {SCHEMA} FROM PUBLIC;
         GRANT USAGE ON SCHEMA {SCHEMA} TO {APP_ROLE};
         CREATE SCHEMA IF NOT EXISTS {IDENTITY_SCHEMA} AUTHORIZATION {OWNER_ROLE};
         REVOKE ALL ON SCHEMA {IDENTITY_SCHEMA} FROM PUBLIC;
         GRANT USAGE ON SCHEMA {IDENTITY_SCHEMA} TO {IDENTITY_ROLE};
         SET LOCAL ROLE {OWNER_ROLE};
         CREATE TABLE IF NOT EXISTS {SCHEMA}.schema_migrations (
             version integer PRIMARY KEY,
             name text NOT NULL,
             checksum text NOT NULL,
             applied_at timestamptz NOT NULL DEFAULT now()
         );"
    ))
    .await
    .map_err(stmt("prepare the schema"))?;
    for migration in MIGRATIONS {
        let embedded = checksum(migration.sql);
        let applied = tx
            .query_opt(
                &format!("SELECT checksum FROM {SCHEMA}.schema_migrations WHERE version = $1"),
                &[&migration.version],
            )
            .await
            .map_err(stmt("read applied migrations"))?;
        match applied {
            Some(row) => {
                let applied: String = row.get(0);
                if applied != embedded {
                    return Err(DbSetupError::Drift {
                        version: migration.version,
                        name: migration.name,
                        applied,
                        embedded,
                    });
                }
            }
            None => {
                tx.batch_execute(migration.sql).await.map_err(stmt(format!(
                    "migration {} ({})",
                    migration.version, migration.name
                )))?;
                tx.execute(
                    &format!("INSERT INTO {SCHEMA}.schema_migrations (version, name, checksum) VALUES ($1, $2, $3)"),
                    &[&migration.version, &migration.name, &embedded],
                )
                .await
                .map_err(stmt("record the migration"))?;
                tracing::info!(
                    version = migration.version,
                    name = migration.name,
                    "applied migration"
                );
            }
        }
    }
    tx.commit().await.map_err(stmt("commit migrations"))?;
    drop(client);
    let _ = task.await;
    Ok(())
}

async fn ensure_roles(client: &tokio_postgres::Client, app_password: &str) -> Result<(), DbSetupError> {
    // CREATE ROLE takes no bind parameters; quote the password as a literal.
    let password = quote_literal(app_password);
    let sql = format!(
        "DO $$ BEGIN
             IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{OWNER_ROLE}') THEN
                 BEGIN
                     CREATE ROLE {OWNER_ROLE} NOLOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE;
                 EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
                 END;
             END IF;
             IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{APP_ROLE}') THEN
                 BEGIN
                     CREATE ROLE {APP_ROLE} LOGIN NOSUPERUSER NOBYPASSRLS NOINHERIT NOCREATEDB NOCREATEROLE
                         PASSWORD {password};
                 EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
                 END;
             END IF;
             IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{IDENTITY_ROLE}') THEN
                 BEGIN
                     CREATE ROLE {IDENTITY_ROLE} LOGIN NOSUPERUSER NOBYPASSRLS NOINHERIT NOCREATEDB NOCREATEROLE
                         PASSWORD {password};
                 EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
                 END;
             END IF;
         END $$;"
    );
    let mut last = None;
    // Concurrent starts on one cluster can still collide on the catalog row;
    // the loser retries and then finds the role.
    for _ in 0..5 {
        match client.batch_execute(&sql).await {
            Ok(()) => {
                last = None;
                break;
            }
            Err(e) => {
                last = Some(e);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    if let Some(e) = last {
        return Err(DbSetupError::Statement {
            step: "create the tenantry roles".into(),
            source: e,
        });
    }
    // The admin must be able to SET ROLE to the owner (a CREATEROLE admin on
    // PG 16+ does not inherit membership of roles it creates).
    client
        .batch_execute(&format!(
            "DO $$ BEGIN
                 IF NOT pg_has_role(current_user, '{OWNER_ROLE}', 'MEMBER') THEN
                     EXECUTE format('GRANT {OWNER_ROLE} TO %I', current_user);
                 END IF;
             END $$;"
        ))
        .await
        .map_err(stmt("let the admin act as the owner role"))?;
    Ok(())
}

/// Quotes `s` as a SQL string literal.
pub fn quote_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// Applies the database side of `database.isolation`: row-level security
/// enabled on every tenant table (`both`, `rls-only`) or disabled
/// (`app-filter-only`: no policy is evaluated, the app's org filter alone
/// isolates). Runs after [`migrate`], as the admin acting as the owner, under
/// the migration lock; re-running it with another mode switches the database
/// over. FORCE and the policies themselves are left as the migrations made them.
pub async fn apply_isolation(admin_url: &str, isolation: Isolation) -> Result<(), DbSetupError> {
    let (mut client, task) = connect_admin(admin_url).await?;
    let tx = client
        .transaction()
        .await
        .map_err(stmt("begin isolation setup"))?;
    let switch = if isolation.rls() { "ENABLE" } else { "DISABLE" };
    let mut sql = format!(
        "SELECT pg_advisory_xact_lock(7307720601);
         SET LOCAL ROLE {OWNER_ROLE};"
    );
    for table in TENANT_TABLES {
        sql.push_str(&format!(
            "ALTER TABLE {SCHEMA}.{table} {switch} ROW LEVEL SECURITY;"
        ));
    }
    tx.batch_execute(&sql)
        .await
        .map_err(stmt(format!("apply database.isolation = {isolation}")))?;
    tx.commit().await.map_err(stmt("commit the isolation setup"))?;
    drop(client);
    let _ = task.await;
    Ok(())
}

/// Checks that the database's row-level security matches `isolation`, so an
/// instance never serves in a mode the database was not prepared for (a
/// replica started with another `database.isolation` than the instance that
/// prepared the database).
pub async fn check_isolation(admin_url: &str, isolation: Isolation) -> Result<(), DbSetupError> {
    let (client, task) = connect_admin(admin_url).await?;
    let rows = client
        .query(
            "SELECT c.relname, c.relrowsecurity FROM pg_class c \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = $1 AND c.relname = ANY($2) AND c.relkind = 'r'",
            &[&SCHEMA, &TENANT_TABLES],
        )
        .await
        .map_err(stmt("read the tenant tables' row-level security"))?;
    drop(client);
    let _ = task.await;
    let wrong: Vec<String> = rows
        .iter()
        .filter(|row| row.get::<_, bool>(1) != isolation.rls())
        .map(|row| format!("{SCHEMA}.{}", row.get::<_, String>(0)))
        .collect();
    if wrong.is_empty() {
        return Ok(());
    }
    Err(DbSetupError::IsolationMismatch {
        isolation,
        tables: wrong.join(", "),
        rls: !isolation.rls(),
    })
}

/// Applies the data-plane flaws that live in the schema. Runs after
/// [`migrate`], as the admin.
#[cfg(feature = "inject")]
pub async fn inject_schema_flaws(
    admin_url: &str,
    app_password: &str,
    flaws: &Flaws,
) -> Result<(), DbSetupError> {
    use crate::inject::Flaw;
    let (client, task) = connect_admin(admin_url).await?;
    let password = quote_literal(app_password);
    for table in TENANT_TABLES {
        if flaws.has(Flaw::RlsNotForced) {
            client
                .batch_execute(&format!(
                    "ALTER TABLE {SCHEMA}.{table} NO FORCE ROW LEVEL SECURITY"
                ))
                .await
                .map_err(stmt("inject rls-not-forced"))?;
        }
        if flaws.has(Flaw::NoRls) {
            client
                .batch_execute(&format!(
                    "DROP POLICY IF EXISTS {table}_org_isolation ON {SCHEMA}.{table}"
                ))
                .await
                .map_err(stmt("inject no-rls"))?;
        }
    }
    if flaws.has(Flaw::RlsNotForced) {
        // The realistic shape of this mistake: one database user that owns
        // the tables and serves requests.
        client
            .batch_execute(&format!("ALTER ROLE {OWNER_ROLE} LOGIN PASSWORD {password}"))
            .await
            .map_err(stmt("inject rls-not-forced (owner login)"))?;
    }
    if flaws.has(Flaw::JobWithoutOrg) {
        client
            .batch_execute(&format!(
                "DO $$ BEGIN
                     IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'tenantry_service') THEN
                         CREATE ROLE tenantry_service LOGIN BYPASSRLS;
                     END IF;
                 END $$;
                 ALTER ROLE tenantry_service PASSWORD {password};
                 GRANT USAGE ON SCHEMA {SCHEMA} TO tenantry_service;
                 GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {SCHEMA} TO tenantry_service;"
            ))
            .await
            .map_err(stmt("inject job-without-org (service role)"))?;
    }
    if flaws.has(Flaw::ParentKeyWithoutOrg) {
        // The parent key as many schemas write it: project ids are globally
        // unique anyway, so the reference names the id alone.
        client
            .batch_execute(&format!(
                "SELECT pg_advisory_lock(7307720601);
                 DO $$
                 DECLARE
                     k text;
                 BEGIN
                     FOR k IN SELECT conname FROM pg_constraint
                              WHERE conrelid = '{SCHEMA}.documents'::regclass AND contype = 'f'
                                AND conname <> 'documents_project_id_fkey' LOOP
                         EXECUTE format('ALTER TABLE {SCHEMA}.documents DROP CONSTRAINT %I', k);
                     END LOOP;
                     IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conname = 'projects_id_key'
                                    AND conrelid = '{SCHEMA}.projects'::regclass) THEN
                         ALTER TABLE {SCHEMA}.projects ADD CONSTRAINT projects_id_key UNIQUE (id);
                     END IF;
                     IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conname = 'documents_project_id_fkey'
                                    AND conrelid = '{SCHEMA}.documents'::regclass) THEN
                         ALTER TABLE {SCHEMA}.documents ADD CONSTRAINT documents_project_id_fkey
                             FOREIGN KEY (project_id) REFERENCES {SCHEMA}.projects (id) ON DELETE CASCADE;
                     END IF;
                 END $$;
                 SELECT pg_advisory_unlock(7307720601);"
            ))
            .await
            .map_err(stmt("inject parent-key-without-org"))?;
    }
    if flaws.has(Flaw::GrantAllToAppRole) {
        client
            .batch_execute(&format!(
                "GRANT ALL ON ALL TABLES IN SCHEMA {SCHEMA} TO {APP_ROLE}"
            ))
            .await
            .map_err(stmt("inject grant-all-to-app-role"))?;
    }
    if flaws.has(Flaw::ReportViewNotInvoker) {
        // Run as the admin (a superuser), as a hand-written migration would
        // be: the view reads with its owner's rights.
        client
            .batch_execute(&format!(
                "CREATE OR REPLACE VIEW {SCHEMA}.project_activity AS
                     SELECT p.organization_id, p.id, p.name, count(d.id) AS documents
                     FROM {SCHEMA}.projects p
                     LEFT JOIN {SCHEMA}.documents d
                       ON d.organization_id = p.organization_id AND d.project_id = p.id
                     GROUP BY p.organization_id, p.id, p.name;
                 GRANT SELECT ON {SCHEMA}.project_activity TO {APP_ROLE};"
            ))
            .await
            .map_err(stmt("inject report-view-not-invoker"))?;
    }
    if flaws.has(Flaw::MissingContextMatchesAll) {
        for table in TENANT_TABLES {
            client
                .batch_execute(&format!(
                    "ALTER POLICY {table}_org_isolation ON {SCHEMA}.{table}
                         USING (NULLIF(current_setting('app.org_id', true), '') IS NULL
                                OR organization_id = NULLIF(current_setting('app.org_id', true), ''))
                         WITH CHECK (NULLIF(current_setting('app.org_id', true), '') IS NULL
                                OR organization_id = NULLIF(current_setting('app.org_id', true), ''))"
                ))
                .await
                .map_err(stmt("inject missing-context-matches-all"))?;
        }
    }
    drop(client);
    let _ = task.await;
    Ok(())
}

/// Pool settings.
#[derive(Debug, Clone)]
pub struct PoolSettings {
    /// Max connections.
    pub size: usize,
    /// `statement_timeout` for every app connection.
    pub statement_timeout: Duration,
}

/// Builds a pool of pipelining connections for `user`/`password` on the
/// admin URL's host and database.
pub fn pool_as(
    admin_url: &str,
    user: &str,
    password: &str,
    settings: &PoolSettings,
) -> Result<Pool, DbSetupError> {
    let breaker = Breaker::new("postgres", crate::circuit::CircuitConfig::default());
    pool_behind(admin_url, user, password, settings, Arc::new(breaker))
}

/// As [`pool_as`], with the connection attempts gated by `breaker`.
pub fn pool_behind(
    admin_url: &str,
    user: &str,
    password: &str,
    settings: &PoolSettings,
    breaker: Arc<Breaker>,
) -> Result<Pool, DbSetupError> {
    let config = WireConfig::from_url(admin_url, user, password)
        .map_err(|e| DbSetupError::Pool(e.to_string()))?
        .parameter("application_name", "tenantry-reference")
        .parameter(
            "statement_timeout",
            &settings.statement_timeout.as_millis().to_string(),
        );
    // A connection goes back to the pool only when its last pipeline ran to
    // completion and no transaction is open (the org context is
    // transaction-local); anything else is discarded.
    Pool::builder(Manager::new(config, breaker))
        .max_size(settings.size)
        .runtime(deadpool::Runtime::Tokio1)
        .wait_timeout(Some(Duration::from_secs(5)))
        .create_timeout(Some(Duration::from_secs(5)))
        .build()
        .map_err(|e| DbSetupError::Pool(e.to_string()))
}

/// The identity store's pool: `tenantry_identity` on the admin URL's host
/// and database. Plain tokio-postgres connections (the store's statements
/// are ordinary transactions; no org context is involved).
pub fn identity_pool(
    admin_url: &str,
    password: &str,
    size: usize,
    statement_timeout: Duration,
) -> Result<deadpool_postgres::Pool, DbSetupError> {
    let breaker = crate::circuit::Breaker::new("identity-store", crate::circuit::CircuitConfig::default());
    identity_pool_behind(admin_url, password, size, statement_timeout, Arc::new(breaker))
}

/// As [`identity_pool`], with the connection attempts gated by `breaker`.
pub fn identity_pool_behind(
    admin_url: &str,
    password: &str,
    size: usize,
    statement_timeout: Duration,
    breaker: Arc<Breaker>,
) -> Result<deadpool_postgres::Pool, DbSetupError> {
    let mut config: tokio_postgres::Config = admin_url
        .parse()
        .map_err(|e: tokio_postgres::Error| DbSetupError::Pool(e.to_string()))?;
    config
        .user(IDENTITY_ROLE)
        .password(password)
        .application_name("tenantry-identity")
        .options(format!("-c statement_timeout={}", statement_timeout.as_millis()));
    let manager = deadpool_postgres::Manager::from_connect(
        config,
        BreakerConnect { breaker },
        deadpool_postgres::ManagerConfig {
            recycling_method: deadpool_postgres::RecyclingMethod::Fast,
        },
    );
    deadpool_postgres::Pool::builder(manager)
        .max_size(size)
        .runtime(deadpool_postgres::Runtime::Tokio1)
        .wait_timeout(Some(Duration::from_secs(5)))
        .create_timeout(Some(Duration::from_secs(5)))
        .build()
        .map_err(|e| DbSetupError::Pool(e.to_string()))
}

/// tokio-postgres connections for deadpool-postgres, each attempt through a
/// circuit breaker. While the breaker is open no attempt is made: the
/// caller waits for the next probe slot, bounded by the pool's create
/// timeout (the HTTP layer answers 503 at once before it gets here, see
/// `circuit::gate`).
struct BreakerConnect {
    breaker: Arc<Breaker>,
}

type Connected = (tokio_postgres::Client, tokio::task::JoinHandle<()>);

impl deadpool_postgres::Connect for BreakerConnect {
    fn connect(
        &self,
        pg_config: &tokio_postgres::Config,
    ) -> Pin<Box<dyn Future<Output = Result<Connected, tokio_postgres::Error>> + Send + '_>> {
        let pg_config = pg_config.clone();
        Box::pin(async move {
            loop {
                match self.breaker.attempt() {
                    Ok(attempt) => {
                        return match pg_config.connect(NoTls).await {
                            Ok((client, connection)) => {
                                attempt.succeeded();
                                let task = tokio::spawn(async move {
                                    if let Err(e) = connection.await {
                                        tracing::debug!(error = %e, "identity store connection ended");
                                    }
                                });
                                Ok((client, task))
                            }
                            Err(e) => {
                                attempt.failed(&e);
                                Err(e)
                            }
                        };
                    }
                    Err(open) => tokio::time::sleep(open.retry_after).await,
                }
            }
        })
    }
}

/// The role the server connects as, given the injected flaws.
pub fn serving_role(#[cfg(feature = "inject")] flaws: &Flaws) -> &'static str {
    #[cfg(feature = "inject")]
    if flaws.has(crate::inject::Flaw::RlsNotForced) {
        return OWNER_ROLE;
    }
    APP_ROLE
}
