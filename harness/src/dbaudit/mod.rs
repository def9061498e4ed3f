//! The database audit (RLS-001..010): connects with the credentials the
//! application uses (the *app role*), reads the catalog, seeds one row per
//! tenant table for two fresh orgs A and B, and probes row-level security
//! with raw SQL the way a bug in the application would reach it.
//!
//! What it needs to know about the application:
//! - the app role's URL ([`DbAuditConfig::database_url`]);
//! - the setting the app carries the org in ([`DbAuditConfig::tenant_setting`],
//!   `app.org_id` by default) and the statement it sets it with
//!   ([`DbAuditConfig::context_statement`], by default the transaction-local
//!   `set_config(setting, $1, true)`);
//! - the tenant column (`organization_id` by default).
//!
//! Tenant tables are the tables with the tenant column that the app role can
//! reach (it owns them, or has a privilege on them and usage of their
//! schema); tables it cannot reach are no risk through the app.
//!
//! Seed rows are inserted as the app role with org context set, through the
//! tables' own columns: every NOT NULL column without a default gets a value
//! generated from its type (text, numbers, uuid, booleans, times, json,
//! bytea, arrays, enums), and a required column of a foreign key to another
//! tenant table gets the parent's seeded value. A table whose row cannot be
//! built that way (an unsupported type, a CHECK the generated value fails, a
//! required reference to a non-tenant table) is left out of the data probes
//! and logged; the catalog checks still cover it. Every write probe runs in
//! a transaction that is rolled back, and the seed rows are deleted at the
//! end (the org ids are fresh, so only the audit's own rows match).
//!
//! Session-scoped context (a plain `SET`) is a property of the app's code,
//! not of the database: the SQL probes see it only through the statement
//! they are told the app uses. To test the app's real code path, hand the
//! audit an [`AppPool`]: the app's own pool and context code, observed
//! after each request from the connection the pool hands out next.

mod catalog;
mod probes;
mod seed;

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use tokio_postgres::{Client, NoTls, Row};

use crate::audit::Report;
use crate::checks::{self, Selection};

/// The setting the reference stack carries the org in.
pub const DEFAULT_TENANT_SETTING: &str = "app.org_id";
/// The tenant column of the reference stack.
pub const DEFAULT_TENANT_COLUMN: &str = "organization_id";
/// The checks this audit runs.
pub const CHECK_IDS: &[&str] = &[
    "RLS-001", "RLS-002", "RLS-003", "RLS-004", "RLS-005", "RLS-006", "RLS-007", "RLS-008", "RLS-009",
    "RLS-010",
];

/// How a request's transaction ended before its connection went back to the
/// app's pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// It committed.
    Commit,
    /// It rolled back.
    Rollback,
}

impl fmt::Display for Ending {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Ending::Commit => "a commit",
            Ending::Rollback => "a rollback",
        })
    }
}

/// The application's own pool and context code, for RLS-005 on the app's
/// real code path. Implementations should use a pool of one connection, so
/// that the connection inspected is the one the request used.
pub trait AppPool: Send + Sync {
    /// Serves one tenant-scoped read as `org` through the app's own code
    /// (which sets the context its own way), ending the transaction as
    /// `ending` says, and returns the connection to the pool.
    fn serve<'a>(&'a self, org: &'a str, ending: Ending) -> BoxFuture<'a, Result<(), String>>;

    /// Runs `sql` (one statement, no parameters) on the connection the pool
    /// hands out next, without setting any context, and returns its rows,
    /// each value as text (`None` for NULL).
    fn next_connection<'a>(&'a self, sql: &'a str)
        -> BoxFuture<'a, Result<Vec<Vec<Option<String>>>, String>>;
}

/// What the audit connects to and how the app passes the tenant context.
#[derive(Clone)]
pub struct DbAuditConfig {
    /// The app role's PostgreSQL URL (or key=value connection string).
    pub database_url: String,
    /// The setting the app carries the org in (`app.org_id`).
    pub tenant_setting: String,
    /// The tenant column (`organization_id`).
    pub tenant_column: String,
    /// The statement the app sets the context with, `$1` the org id
    /// (`None`: `SELECT set_config('<setting>', $1, true)`).
    pub context_statement: Option<String>,
    /// The two org ids to seed (`None`: fresh ids matching the column type).
    pub orgs: Option<(String, String)>,
    /// The app's own pool, to test its context code path (RLS-005).
    pub app_pool: Option<Arc<dyn AppPool>>,
}

impl fmt::Debug for DbAuditConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DbAuditConfig")
            .field("database_url", &redact_url(&self.database_url))
            .field("tenant_setting", &self.tenant_setting)
            .field("tenant_column", &self.tenant_column)
            .field("context_statement", &self.context_statement)
            .field("orgs", &self.orgs)
            .field("app_pool", &self.app_pool.is_some())
            .finish()
    }
}

impl DbAuditConfig {
    /// The reference stack's conventions on `database_url`.
    pub fn new(database_url: impl Into<String>) -> Self {
        Self {
            database_url: database_url.into(),
            tenant_setting: DEFAULT_TENANT_SETTING.into(),
            tenant_column: DEFAULT_TENANT_COLUMN.into(),
            context_statement: None,
            orgs: None,
            app_pool: None,
        }
    }

    /// The statement that sets the context (`$1` the org id).
    pub fn context_sql(&self) -> String {
        self.context_statement.clone().unwrap_or_else(|| {
            format!(
                "SELECT set_config({}, $1, true)",
                quote_literal(&self.tenant_setting)
            )
        })
    }
}

/// Why the database audit could not run.
#[derive(Debug, thiserror::Error)]
pub enum DbAuditError {
    /// The URL does not parse.
    #[error("the database URL is not a valid PostgreSQL connection string ({detail}); expected postgres://USER:PASSWORD@HOST:PORT/DATABASE")]
    BadUrl {
        /// The driver's words.
        detail: String,
    },
    /// The tenant setting is not a custom setting name.
    #[error("the tenant setting `{0}` is not a custom setting name like `app.org_id` (letters, digits, `_`, one or more dots)")]
    BadSetting(String),
    /// Connecting failed.
    #[error("cannot connect to {target}: {detail}")]
    Connect {
        /// The redacted URL.
        target: String,
        /// The driver's words.
        detail: String,
    },
    /// A statement the audit needs failed.
    #[error("{step} failed: {detail}")]
    Sql {
        /// Which step.
        step: String,
        /// The server's words.
        detail: String,
    },
    /// No tenant table is reachable by the role.
    #[error("role {role} can reach no table with a `{column}` column: is this the app role's URL, and is the tenant column right?")]
    NoTenantTables {
        /// The connected role.
        role: String,
        /// The tenant column.
        column: String,
    },
    /// No tenant table could be seeded, so the data probes cannot run.
    #[error("no tenant table could be seeded as role {role}, so RLS-003..006 cannot run: {reasons}")]
    NoSeed {
        /// The connected role.
        role: String,
        /// Why each table failed.
        reasons: String,
    },
    /// The app pool hook failed.
    #[error("the app's pool failed: {0}")]
    App(String),
}

/// The server's words for a driver error: SQLSTATE and message when the
/// server answered.
pub(crate) fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => e.to_string(),
    }
}

/// The SQLSTATE of a server error.
pub(crate) fn sqlstate(e: &tokio_postgres::Error) -> Option<&str> {
    e.as_db_error().map(|db| db.code().code())
}

/// `s` as a SQL string literal.
pub fn quote_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// `s` as a SQL identifier.
pub fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// The URL with any password replaced by `***` (URL and key=value forms).
pub fn redact_url(url: &str) -> String {
    if let Some((scheme, rest)) = url.split_once("://") {
        // The userinfo ends at the last `@` before the path.
        let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(authority_end);
        let mut out = format!("{scheme}://");
        match authority.rsplit_once('@') {
            Some((userinfo, host)) => match userinfo.split_once(':') {
                Some((user, _)) => out.push_str(&format!("{user}:***@{host}")),
                None => out.push_str(&format!("{userinfo}@{host}")),
            },
            None => out.push_str(authority),
        }
        // A password can also ride in the query string.
        let tail = match tail.split_once('?') {
            Some((path, query)) => {
                let query: Vec<String> = query
                    .split('&')
                    .map(|kv| match kv.split_once('=') {
                        Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
                        _ => kv.to_string(),
                    })
                    .collect();
                format!("{path}?{}", query.join("&"))
            }
            None => tail.to_string(),
        };
        out.push_str(&tail);
        return out;
    }
    // key=value form: redact the value after `password=` (quoted or not).
    let mut out = String::new();
    let mut rest = url;
    while let Some(at) = find_ci(rest, "password") {
        let after = &rest[at + "password".len()..];
        let trimmed = after.trim_start();
        let Some(value) = trimmed.strip_prefix('=') else {
            out.push_str(&rest[..at + "password".len()]);
            rest = after;
            continue;
        };
        let value = value.trim_start();
        let end = if let Some(quoted) = value.strip_prefix('\'') {
            let mut escaped = false;
            let mut end = quoted.len();
            for (i, c) in quoted.char_indices() {
                match c {
                    '\\' if !escaped => escaped = true,
                    '\'' if !escaped => {
                        end = i + 1;
                        break;
                    }
                    _ => escaped = false,
                }
            }
            1 + end.min(quoted.len())
        } else {
            value.find(char::is_whitespace).unwrap_or(value.len())
        };
        out.push_str(&rest[..at]);
        out.push_str("password=***");
        rest = &value[end..];
    }
    out.push_str(rest);
    out
}

fn find_ci(haystack: &str, needle: &str) -> Option<usize> {
    haystack.to_ascii_lowercase().find(needle)
}

/// A connection of the app role that counts its statements.
pub(crate) struct Conn {
    client: Client,
    _driver: tokio::task::JoinHandle<()>,
}

/// The audit's state.
pub(crate) struct Run<'a> {
    pub config: &'a DbAuditConfig,
    pub selection: &'a Selection,
    pub report: Report,
    pub statements: u64,
    pub context_sql: String,
    /// The connected role.
    pub role: String,
}

impl Run<'_> {
    /// Whether `id` is selected; records that it ran.
    pub fn ran(&mut self, id: &'static str) -> bool {
        match checks::find(id) {
            Some(check) if self.selection.includes(check) => {
                if !self.report.checks_run.contains(&check.id) {
                    self.report.checks_run.push(check.id);
                }
                true
            }
            _ => false,
        }
    }

    /// Whether `id` is selected, without recording it.
    pub fn selected(&self, id: &str) -> bool {
        checks::find(id).is_some_and(|c| self.selection.includes(c))
    }

    pub fn finding(&mut self, id: &str, message: String, evidence: Vec<String>) {
        self.report.add_finding(id, message, evidence);
    }

    pub async fn connect(&self) -> Result<Conn, DbAuditError> {
        let config: tokio_postgres::Config =
            self.config
                .database_url
                .parse()
                .map_err(|e: tokio_postgres::Error| DbAuditError::BadUrl {
                    detail: e.to_string(),
                })?;
        let (client, connection) = config.connect(NoTls).await.map_err(|e| DbAuditError::Connect {
            target: redact_url(&self.config.database_url),
            detail: describe(&e),
        })?;
        let driver = tokio::spawn(async move {
            let _ = connection.await;
        });
        // A probe must never hang on a lock the app holds, nor run long.
        client
            .batch_execute("SET lock_timeout = '5s'; SET statement_timeout = '30s'")
            .await
            .map_err(|e| DbAuditError::Sql {
                step: "set timeouts".into(),
                detail: describe(&e),
            })?;
        Ok(Conn {
            client,
            _driver: driver,
        })
    }

    /// Runs a statement; counts it.
    pub async fn exec(&mut self, conn: &Conn, sql: &str) -> Result<u64, tokio_postgres::Error> {
        self.statements += 1;
        conn.client.execute(sql, &[]).await
    }

    /// Runs a query; counts it.
    pub async fn rows(&mut self, conn: &Conn, sql: &str) -> Result<Vec<Row>, tokio_postgres::Error> {
        self.statements += 1;
        conn.client.query(sql, &[]).await
    }

    /// Runs a query with parameters; counts it.
    pub async fn rows_with(
        &mut self,
        conn: &Conn,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Vec<Row>, tokio_postgres::Error> {
        self.statements += 1;
        conn.client.query(sql, params).await
    }

    /// Sets the org context with the app's statement.
    pub async fn set_context(&mut self, conn: &Conn, org: &str) -> Result<(), tokio_postgres::Error> {
        self.statements += 1;
        let sql = self.context_sql.clone();
        conn.client.query(&sql, &[&org]).await.map(drop)
    }

    /// A query the audit cannot do without.
    pub async fn must(&mut self, conn: &Conn, step: &str, sql: &str) -> Result<Vec<Row>, DbAuditError> {
        self.rows(conn, sql).await.map_err(|e| DbAuditError::Sql {
            step: step.into(),
            detail: describe(&e),
        })
    }
}

fn valid_setting(name: &str) -> bool {
    let parts: Vec<&str> = name.split('.').collect();
    parts.len() >= 2
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && !p.starts_with(|c: char| c.is_ascii_digit())
        })
}

/// Runs the selected RLS-001..010 checks against the database.
pub async fn audit(config: &DbAuditConfig, selection: &Selection) -> Result<Report, DbAuditError> {
    let started = Instant::now();
    if !valid_setting(&config.tenant_setting) {
        return Err(DbAuditError::BadSetting(config.tenant_setting.clone()));
    }
    let seed = crate::audit::random_seed();
    let mut run = Run {
        config,
        selection,
        report: Report {
            target: redact_url(&config.database_url),
            seed,
            ..Report::default()
        },
        statements: 0,
        context_sql: config.context_sql(),
        role: String::new(),
    };
    // A connection nothing has touched yet: what a fresh pooled connection
    // carries before the app sets anything.
    let fresh = run.connect().await?;
    let conn = run.connect().await?;
    let row = run
        .must(&conn, "read the connected role", "SELECT current_user::text")
        .await?;
    run.role = row[0].get(0);
    let tables = catalog::tenant_tables(&mut run, &conn).await?;
    if tables.is_empty() {
        return Err(DbAuditError::NoTenantTables {
            role: run.role.clone(),
            column: config.tenant_column.clone(),
        });
    }
    catalog::run(&mut run, &conn, &tables).await?;

    let data_checks = ["RLS-003", "RLS-004", "RLS-005", "RLS-006", "RLS-009"];
    if data_checks.iter().any(|id| run.selected(id)) {
        let orgs = match &config.orgs {
            Some((a, b)) => (a.clone(), b.clone()),
            None => seed::fresh_orgs(&tables, seed),
        };
        let mut seeded = seed::Seeded::new(orgs.0.clone(), orgs.1.clone());
        let outcome = async {
            seed::insert(&mut run, &conn, &tables, &mut seeded).await?;
            if seeded.tables.is_empty() {
                return Err(DbAuditError::NoSeed {
                    role: run.role.clone(),
                    reasons: seeded.skipped.join("; "),
                });
            }
            probes::run(&mut run, &fresh, &conn, &tables, &seeded).await
        }
        .await;
        // Clean up whatever happened; a failure here is logged, never hidden.
        seed::remove(&mut run, &conn, &tables, &seeded).await;
        outcome?;
    }
    // Catalogue order, whatever order the phases ran in.
    run.report.checks_run.sort_unstable();
    run.report.requests = run.statements;
    run.report.elapsed = started.elapsed();
    Ok(run.report)
}

/// A timeout for the app hook's calls.
pub(crate) const APP_TIMEOUT: Duration = Duration::from_secs(20);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_survive_redaction() {
        assert_eq!(
            redact_url("postgres://app:s3cr%40t@db.example:5432/prod?sslmode=disable"),
            "postgres://app:***@db.example:5432/prod?sslmode=disable"
        );
        assert_eq!(
            redact_url("postgresql://app@db/prod?password=hunter2&x=1"),
            "postgresql://app@db/prod?password=***&x=1"
        );
        assert_eq!(
            redact_url("host=db user=app password='it\\'s secret' dbname=prod"),
            "host=db user=app password=*** dbname=prod"
        );
        assert_eq!(
            redact_url("host=db PASSWORD = hunter2 dbname=prod"),
            "host=db password=*** dbname=prod"
        );
        assert_eq!(redact_url("postgres://db/prod"), "postgres://db/prod");
    }

    #[test]
    fn setting_names_are_custom_settings() {
        assert!(valid_setting("app.org_id"));
        assert!(valid_setting("request.jwt.claims"));
        assert!(!valid_setting("org_id"));
        assert!(!valid_setting("app.org'id"));
        assert!(!valid_setting("app."));
    }
}
