//! Ephemeral Postgres and Redis for tests, benches and the CLI.
//!
//! Each service comes from the first source that is available, in this order:
//!
//! 1. a URL in the environment (`TENANTRY_DATABASE_URL` — a superuser or a
//!    role with CREATEDB and CREATEROLE — and `TENANTRY_REDIS_URL`);
//! 2. Docker through testcontainers (cargo feature `docker`, and only when an
//!    engine answers);
//! 3. local server binaries: `initdb`/`postgres` (PATH, `pg_config --bindir`,
//!    Debian's `/usr/lib/postgresql/<major>/bin`) and `redis-server`.
//!
//! Local Postgres is fast because `initdb` runs once per machine and version
//! (the template cluster is cached); each process copies it and starts its own
//! server on a free loopback port, and each test gets a fresh database cloned
//! from a template database (`CREATE DATABASE … TEMPLATE …`). Servers stop and
//! their folders go when the last handle drops, also while a panic unwinds;
//! servers of a process that died without unwinding are reaped by the next
//! process that starts one. This is safe under cargo-nextest, which runs each
//! test in its own process.

mod postgres_local;
mod process;
mod redis_local;

#[cfg(feature = "docker")]
mod docker;

use std::collections::HashSet;
use std::fmt;
use std::future::Future;
use std::path::Path;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use tokio_postgres::NoTls;

/// Why a service could not be provided.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// No source can provide the service on this machine.
    #[error("{service} is not available: {remedy}")]
    NotAvailable {
        /// The service, e.g. "PostgreSQL".
        service: &'static str,
        /// What to install or set.
        remedy: String,
    },
    /// A server was found but did not start.
    #[error("{service} did not start: {detail}")]
    Start {
        /// The service that failed.
        service: &'static str,
        /// The server's own words (log tail).
        detail: String,
    },
    /// A file system operation failed.
    #[error("could not {what} {path}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// On which path.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The environment is unusable as configured.
    #[error("{what}")]
    Setup {
        /// What is wrong and how to fix it.
        what: String,
    },
    /// A SQL statement the services module runs failed.
    #[error("{what}: {source}")]
    Sql {
        /// Which step.
        what: String,
        /// The database's error.
        source: tokio_postgres::Error,
    },
    /// The caller's template initialiser failed.
    #[error("initialising template database `{template}` failed: {detail}")]
    TemplateInit {
        /// The template database.
        template: String,
        /// The initialiser's error.
        detail: String,
    },
}

impl ServiceError {
    pub(crate) fn io(what: &'static str, path: &Path, source: std::io::Error) -> Self {
        Self::Io {
            what,
            path: path.display().to_string(),
            source,
        }
    }

    fn sql(what: impl Into<String>, source: tokio_postgres::Error) -> Self {
        Self::Sql {
            what: what.into(),
            source,
        }
    }
}

/// Where a service came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A URL from the environment.
    Environment,
    /// A Docker container (testcontainers).
    Docker,
    /// A local server binary; `cold` when the template cluster had to be
    /// created by `initdb` first.
    Local {
        /// Whether this start had to run `initdb`.
        cold: bool,
    },
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Environment => f.write_str("from the environment"),
            Source::Docker => f.write_str("in Docker"),
            Source::Local { cold: true } => f.write_str("local binaries, cold start (initdb)"),
            Source::Local { cold: false } => f.write_str("local binaries, cached template cluster"),
        }
    }
}

enum PgBackend {
    External,
    // Its Drop stops the server; stop/restart take it away and back.
    Local(Mutex<postgres_local::LocalPostgres>),
    // Held for its Drop: the container lives as long as the handle.
    #[cfg(feature = "docker")]
    #[allow(dead_code)]
    Docker(docker::DockerPostgres),
}

/// A running Postgres server and superuser credentials for it.
pub struct Postgres {
    host: String,
    port: u16,
    user: String,
    password: Option<String>,
    source: Source,
    version: String,
    started_in: Duration,
    templates: Mutex<HashSet<String>>,
    template_lock: tokio::sync::Mutex<()>,
    backend: PgBackend,
}

impl fmt::Debug for Postgres {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The password stays out of debug output.
        f.debug_struct("Postgres")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

static SHARED_PG: Mutex<Weak<Postgres>> = Mutex::new(Weak::new());
static SHARED_PG_START: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

impl Postgres {
    /// The server shared by this process: started on first use, stopped
    /// when the last handle drops.
    pub async fn shared() -> Result<Arc<Self>, ServiceError> {
        if let Some(pg) = lock(&SHARED_PG).upgrade() {
            return Ok(pg);
        }
        let _starting = SHARED_PG_START.lock().await;
        if let Some(pg) = lock(&SHARED_PG).upgrade() {
            return Ok(pg);
        }
        let pg = Arc::new(Self::start().await?);
        *lock(&SHARED_PG) = Arc::downgrade(&pg);
        Ok(pg)
    }

    /// Starts (or, with `TENANTRY_DATABASE_URL`, attaches to) a server of
    /// one's own.
    pub async fn start() -> Result<Self, ServiceError> {
        let began = Instant::now();
        if let Ok(url) = std::env::var("TENANTRY_DATABASE_URL") {
            return Self::external(&url, began).await;
        }
        Self::start_owned(began).await
    }

    /// Attaches to the server at `url` (a superuser, or a role with CREATEDB
    /// and CREATEROLE), as `TENANTRY_DATABASE_URL` does.
    pub async fn attach(url: &str) -> Result<Self, ServiceError> {
        Self::external(url, Instant::now()).await
    }

    async fn start_owned(began: Instant) -> Result<Self, ServiceError> {
        #[cfg(feature = "docker")]
        if docker::engine_available() {
            match docker::start_postgres(postgres_local::SUPERUSER).await {
                Ok(pg) => {
                    let port = pg.port;
                    let password = pg.password.clone();
                    return Ok(Self::assemble(
                        "127.0.0.1".into(),
                        port,
                        postgres_local::SUPERUSER.into(),
                        Some(password),
                        Source::Docker,
                        "docker".into(),
                        began,
                        PgBackend::Docker(pg),
                    ));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "Docker did not provide Postgres; trying local binaries")
                }
            }
        }
        let local = tokio::task::spawn_blocking(postgres_local::LocalPostgres::start)
            .await
            .map_err(|e| ServiceError::Setup {
                what: format!("the Postgres start task failed: {e}"),
            })??;
        Ok(Self::assemble(
            "127.0.0.1".into(),
            local.port,
            postgres_local::SUPERUSER.into(),
            Some(local.password.clone()),
            Source::Local { cold: local.cold },
            local.version.clone(),
            began,
            PgBackend::Local(Mutex::new(local)),
        ))
    }

    #[allow(clippy::too_many_arguments)]
    fn assemble(
        host: String,
        port: u16,
        user: String,
        password: Option<String>,
        source: Source,
        version: String,
        began: Instant,
        backend: PgBackend,
    ) -> Self {
        Self {
            host,
            port,
            user,
            password,
            source,
            version,
            started_in: began.elapsed(),
            templates: Mutex::new(HashSet::new()),
            template_lock: tokio::sync::Mutex::const_new(()),
            backend,
        }
    }

    async fn external(url: &str, began: Instant) -> Result<Self, ServiceError> {
        let config: tokio_postgres::Config = url.parse().map_err(|e| ServiceError::Setup {
            what: format!("not a valid Postgres URL (TENANTRY_DATABASE_URL): {e}"),
        })?;
        let host = match config.get_hosts().first() {
            Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
            _ => {
                return Err(ServiceError::Setup {
                    what: "TENANTRY_DATABASE_URL must name a TCP host (e.g. postgres://user:pw@127.0.0.1:5432/postgres)"
                        .into(),
                })
            }
        };
        let port = config.get_ports().first().copied().unwrap_or(5432);
        let user = config.get_user().unwrap_or("postgres").to_string();
        let password = config
            .get_password()
            .map(|p| String::from_utf8_lossy(p).into_owned());
        let mut pg = Self::assemble(
            host,
            port,
            user,
            password,
            Source::Environment,
            String::new(),
            began,
            PgBackend::External,
        );
        let (client, _conn) = pg.admin().await?;
        let row = client
            .query_one("SHOW server_version", &[])
            .await
            .map_err(|e| ServiceError::sql("read server_version", e))?;
        let version: String = row.get(0);
        // "15.18 (Debian 15.18-0+deb12u1)" -> "15.18", as the local backend reports it.
        pg.version = version.split_whitespace().next().unwrap_or_default().to_string();
        Ok(pg)
    }

    /// A superuser URL for `database`.
    pub fn url(&self, database: &str) -> String {
        url(
            &self.host,
            self.port,
            &self.user,
            self.password.as_deref(),
            database,
        )
    }

    /// A URL for `database` as another role.
    pub fn url_as(&self, user: &str, password: &str, database: &str) -> String {
        url(&self.host, self.port, user, Some(password), database)
    }

    /// The URL with the password replaced by `***`, for logs and output.
    pub fn redacted_url(&self, database: &str) -> String {
        url(
            &self.host,
            self.port,
            &self.user,
            self.password.as_ref().map(|_| "***"),
            database,
        )
    }

    /// Where the server came from.
    pub fn source(&self) -> &Source {
        &self.source
    }

    /// The server's version string.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// How long it took to start (or attach to) the server.
    pub fn started_in(&self) -> Duration {
        self.started_in
    }

    /// The TCP port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Stops a locally started server at once (an immediate shutdown: every
    /// client is cut off, as in a crash). Only servers this process started
    /// can be stopped.
    pub fn stop(&self) -> Result<(), ServiceError> {
        match &self.backend {
            PgBackend::Local(local) => {
                lock(local).stop();
                Ok(())
            }
            _ => Err(ServiceError::Setup {
                what: "only a Postgres started from local binaries can be stopped by the harness".into(),
            }),
        }
    }

    /// Starts a stopped local server again, on the same port with the same
    /// data (crash recovery runs first).
    pub fn restart(&self) -> Result<(), ServiceError> {
        match &self.backend {
            PgBackend::Local(local) => lock(local).restart(),
            _ => Err(ServiceError::Setup {
                what: "only a Postgres started from local binaries can be restarted by the harness".into(),
            }),
        }
    }

    /// Whether the server is running (always true for servers we do not own).
    pub fn running(&self) -> bool {
        match &self.backend {
            PgBackend::Local(local) => lock(local).running(),
            _ => true,
        }
    }

    async fn admin(&self) -> Result<(tokio_postgres::Client, ConnectionTask), ServiceError> {
        connect(&self.url("postgres")).await
    }

    /// A fresh, empty database; dropped with the handle.
    pub async fn create_database(self: &Arc<Self>) -> Result<Database, ServiceError> {
        self.clone_database("template0").await
    }

    /// A fresh database cloned from the template database `template`, which
    /// `init` fills the first time (given a superuser URL to it). The template
    /// is created once per server — across processes too, under an advisory
    /// lock — and marked `IS_TEMPLATE` once `init` succeeds. `init` must close
    /// its connections before returning.
    pub async fn database_from_template<F, Fut, E>(
        self: &Arc<Self>,
        template: &str,
        init: F,
    ) -> Result<Database, ServiceError>
    where
        F: FnOnce(String) -> Fut,
        Fut: Future<Output = Result<(), E>>,
        E: fmt::Display,
    {
        if !template
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            || template.len() > 60
        {
            return Err(ServiceError::Setup {
                what: format!("template database name `{template}` must be 1..60 characters of [a-z0-9_]"),
            });
        }
        let known = lock(&self.templates).contains(template);
        if !known {
            let _one_at_a_time = self.template_lock.lock().await;
            if !lock(&self.templates).contains(template) {
                self.ensure_template(template, init).await?;
                lock(&self.templates).insert(template.to_string());
            }
        }
        self.clone_database(template).await
    }

    async fn ensure_template<F, Fut, E>(&self, template: &str, init: F) -> Result<(), ServiceError>
    where
        F: FnOnce(String) -> Fut,
        Fut: Future<Output = Result<(), E>>,
        E: fmt::Display,
    {
        let (client, _conn) = self.admin().await?;
        // Advisory locks are per database; every process takes this one in
        // `postgres`, so template creation is serialised across processes.
        client
            .execute(
                "SELECT pg_advisory_lock(hashtext('tenantry-template:' || $1))",
                &[&template],
            )
            .await
            .map_err(|e| ServiceError::sql("lock the template", e))?;
        let state = client
            .query_opt(
                "SELECT datistemplate FROM pg_database WHERE datname = $1",
                &[&template],
            )
            .await
            .map_err(|e| ServiceError::sql("look up the template", e))?
            .map(|row| row.get::<_, bool>(0));
        if state == Some(true) {
            return Ok(());
        }
        if state == Some(false) {
            // A creator died half-way; start over.
            client
                .batch_execute(&format!("DROP DATABASE \"{template}\" WITH (FORCE)"))
                .await
                .map_err(|e| ServiceError::sql("drop a half-built template", e))?;
        }
        client
            .batch_execute(&format!("CREATE DATABASE \"{template}\" TEMPLATE template0"))
            .await
            .map_err(|e| ServiceError::sql("create the template database", e))?;
        if let Err(e) = init(self.url(template)).await {
            let _ = client
                .batch_execute(&format!("DROP DATABASE \"{template}\" WITH (FORCE)"))
                .await;
            return Err(ServiceError::TemplateInit {
                template: template.into(),
                detail: e.to_string(),
            });
        }
        client
            .batch_execute(&format!(
                "ALTER DATABASE \"{template}\" IS_TEMPLATE true; ALTER DATABASE \"{template}\" ALLOW_CONNECTIONS false"
            ))
            .await
            .map_err(|e| ServiceError::sql("mark the template", e))?;
        Ok(())
    }

    async fn clone_database(self: &Arc<Self>, template: &str) -> Result<Database, ServiceError> {
        let (client, _conn) = self.admin().await?;
        let name = format!("t_{}", &process::random_hex()[..16]);
        // FILE_COPY avoids WAL-logging every page of the clone; fsync is off
        // on local clusters, so its checkpoint is cheap.
        client
            .batch_execute(&format!(
                "CREATE DATABASE \"{name}\" TEMPLATE \"{template}\" STRATEGY FILE_COPY"
            ))
            .await
            .map_err(|e| ServiceError::sql(format!("create a database from `{template}`"), e))?;
        Ok(Database {
            name,
            server: Arc::clone(self),
        })
    }
}

/// A database of its own for one test (or one audit run). Dropping the
/// handle drops the database.
#[derive(Debug)]
pub struct Database {
    name: String,
    server: Arc<Postgres>,
}

impl Database {
    /// The database name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A superuser URL for this database.
    pub fn url(&self) -> String {
        self.server.url(&self.name)
    }

    /// A URL for this database as another role.
    pub fn url_as(&self, user: &str, password: &str) -> String {
        self.server.url_as(user, password, &self.name)
    }

    /// The server this database lives on.
    pub fn server(&self) -> &Arc<Postgres> {
        &self.server
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        let url = self.server.url("postgres");
        let sql = format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name);
        // Drop runs outside any particular runtime; use a thread of our own
        // so this works from sync code, async code and unwinding alike.
        let dropper = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
                return;
            };
            rt.block_on(async move {
                if let Ok((client, _conn)) = connect(&url).await {
                    let _ = client.batch_execute(&sql).await;
                }
            });
        });
        let _ = dropper.join();
    }
}

/// Aborts the spawned connection task when dropped.
struct ConnectionTask(tokio::task::JoinHandle<()>);

impl Drop for ConnectionTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn connect(url: &str) -> Result<(tokio_postgres::Client, ConnectionTask), ServiceError> {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .map_err(|e| ServiceError::sql("connect as the superuser", e))?;
    let task = tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok((client, ConnectionTask(task)))
}

fn url(host: &str, port: u16, user: &str, password: Option<&str>, database: &str) -> String {
    let userinfo = match password {
        Some(pw) => format!("{}:{}", encode(user), encode(pw)),
        None => encode(user),
    };
    format!("postgres://{userinfo}@{host}:{port}/{}", encode(database))
}

/// Percent-encodes everything but unreserved characters (RFC 3986).
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'*' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

enum RedisBackend {
    External,
    Local(Mutex<redis_local::LocalRedis>),
    // Held for its Drop: the container lives as long as the handle.
    #[cfg(feature = "docker")]
    #[allow(dead_code)]
    Docker(docker::DockerRedis),
}

/// A running Redis server.
pub struct Redis {
    host: String,
    port: u16,
    url: String,
    source: Source,
    backend: RedisBackend,
}

impl fmt::Debug for Redis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Redis")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

impl Redis {
    /// Starts (or, with `TENANTRY_REDIS_URL`, attaches to) a Redis server.
    pub async fn start() -> Result<Self, ServiceError> {
        if let Ok(url) = std::env::var("TENANTRY_REDIS_URL") {
            let info = redis::IntoConnectionInfo::into_connection_info(url.as_str()).map_err(|e| {
                ServiceError::Setup {
                    what: format!("TENANTRY_REDIS_URL is not a valid Redis URL: {e}"),
                }
            })?;
            let (host, port) = match info.addr() {
                redis::ConnectionAddr::Tcp(h, p) => (h.clone(), *p),
                other => (other.to_string(), 0),
            };
            return Ok(Self {
                host,
                port,
                url,
                source: Source::Environment,
                backend: RedisBackend::External,
            });
        }
        #[cfg(feature = "docker")]
        if docker::engine_available() {
            match docker::start_redis().await {
                Ok(r) => {
                    let port = r.port;
                    return Ok(Self {
                        host: "127.0.0.1".into(),
                        port,
                        url: format!("redis://127.0.0.1:{port}/"),
                        source: Source::Docker,
                        backend: RedisBackend::Docker(r),
                    });
                }
                Err(e) => tracing::warn!(error = %e, "Docker did not provide Redis; trying local binaries"),
            }
        }
        let local = tokio::task::spawn_blocking(redis_local::LocalRedis::start)
            .await
            .map_err(|e| ServiceError::Setup {
                what: format!("the Redis start task failed: {e}"),
            })??;
        let port = local.port;
        Ok(Self {
            host: "127.0.0.1".into(),
            port,
            url: format!("redis://127.0.0.1:{port}/"),
            source: Source::Local { cold: false },
            backend: RedisBackend::Local(Mutex::new(local)),
        })
    }

    /// Whether a local Redis binary (or a URL) is at hand, without starting anything.
    pub fn available() -> bool {
        std::env::var_os("TENANTRY_REDIS_URL").is_some() || redis_local::find_binary().is_ok()
    }

    /// The URL to connect to.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Where the server came from.
    pub fn source(&self) -> &Source {
        &self.source
    }

    /// Stops a locally started server (as abruptly as a crash). Only servers
    /// this process started can be stopped.
    pub fn stop(&self) -> Result<(), ServiceError> {
        match &self.backend {
            RedisBackend::Local(local) => {
                lock(local).stop();
                Ok(())
            }
            _ => Err(ServiceError::Setup {
                what: "only a Redis started from local binaries can be stopped by the harness".into(),
            }),
        }
    }

    /// Starts a stopped local server again on the same port.
    pub fn restart(&self) -> Result<(), ServiceError> {
        match &self.backend {
            RedisBackend::Local(local) => lock(local).restart(),
            _ => Err(ServiceError::Setup {
                what: "only a Redis started from local binaries can be restarted by the harness".into(),
            }),
        }
    }

    /// Whether the server is running (always true for servers we do not own).
    pub fn running(&self) -> bool {
        match &self.backend {
            RedisBackend::Local(local) => lock(local).running(),
            _ => true,
        }
    }
}
