//! The reference stack, started for commands run without `--target`:
//! ephemeral Postgres, Redis when `redis-server` is installed (else the
//! in-process rate-limit and OAuth stores — said plainly), and the reference
//! server on a loopback port.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use futures::future::BoxFuture;
use tenantry_harness::dbaudit::{AppPool, DbAuditConfig, Ending};
use tenantry_harness::profile::Profile;
use tenantry_harness::services::{Database, Postgres, Redis};
use tenantry_harness::tokens::RsaKey;
use tenantry_reference::config::Config;
use tenantry_reference::pool_probe::PoolProbe;
use tenantry_reference::server::{self, StackOptions};

/// The origin the harness asks for tokens as.
pub const ORIGIN: &str = "http://audit.tenantry.invalid";

/// A running reference stack.
pub struct Stack {
    /// Its base URL.
    pub base: String,
    /// Its Backend API secret key.
    pub secret_key: String,
    pg: Arc<Postgres>,
    database: Database,
    /// The app role's password (per run).
    app_password: String,
    /// What the server was built with (its flaws, for the pool probe).
    options: StackOptions,
    /// The identity service's active signing key (kid, PKCS#8 DER): the
    /// operator's key, which the token suite uses for re-signed cases.
    signing_key: (String, Vec<u8>),
    redis: Option<Redis>,
    server: tokio::task::JoinHandle<()>,
    shutdown: tokio::sync::oneshot::Sender<()>,
}

impl Stack {
    /// The built-in profile pointed at this stack.
    pub fn profile(&self) -> Profile {
        Profile::reference(&self.base, &self.secret_key, ORIGIN)
    }

    /// The database audit of the stack's own database: the app role's
    /// credentials, and the app's own pool and context code for RLS-005.
    pub fn db_audit_config(&self) -> anyhow::Result<DbAuditConfig> {
        let role = PoolProbe::role(&self.options);
        let mut config = DbAuditConfig::new(self.database.url_as(role, &self.app_password));
        let probe = PoolProbe::new(&self.database.url(), &self.app_password, &self.options)
            .context("opening the app's pool for the database audit")?;
        config.app_pool = Some(Arc::new(AppPoolProbe(probe)));
        Ok(config)
    }

    /// The identity service's signing key, for the token suite's re-signed
    /// cases (expired, template-shaped and claim-typed tokens).
    pub fn signing_key(&self) -> anyhow::Result<RsaKey> {
        RsaKey::from_pkcs8(&self.signing_key.0, &self.signing_key.1)
            .map_err(|e| anyhow::anyhow!("the stack's signing key does not load: {e}"))
    }

    /// Layer ablation: switches row-level security off on every table that
    /// has it, so only the application's own org filter stands between orgs.
    /// Returns how many tables were changed.
    pub async fn switch_off_rls(&self) -> anyhow::Result<usize> {
        let (client, connection) = tokio_postgres::connect(&self.database.url(), tokio_postgres::NoTls)
            .await
            .context("connecting to the stack's database as superuser")?;
        let driver = tokio::spawn(connection);
        let tables = client
            .query(
                "SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c \
                 JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE c.relkind = 'r' AND c.relrowsecurity",
                &[],
            )
            .await?;
        for row in &tables {
            let table: String = row.get(0);
            client
                .batch_execute(&format!("ALTER TABLE {table} DISABLE ROW LEVEL SECURITY"))
                .await
                .with_context(|| format!("switching RLS off on {table}"))?;
        }
        drop(client);
        let _ = driver.await;
        Ok(tables.len())
    }

    /// Stops the server (its pools close) before the database and Postgres go.
    pub async fn stop(self) {
        let _ = self.shutdown.send(());
        let _ = tokio::time::timeout(Duration::from_secs(15), self.server).await;
        drop(self.database);
        drop(self.pg);
        drop(self.redis);
    }
}

/// Starts the stack with `flaws` injected (names; reference builds with the
/// `inject` feature only).
pub async fn start(flaws: &[String]) -> anyhow::Result<Stack> {
    let redis = if Redis::available() {
        Some(Redis::start().await.context("starting Redis")?)
    } else {
        None
    };
    eprintln!(
        "no --target: starting the reference stack (ephemeral Postgres; {})",
        if redis.is_some() {
            "ephemeral Redis for rate limits and OAuth state; limits raised so the audit is not throttled"
        } else {
            "redis-server is not installed, so rate limits and OAuth state use the in-process stores; limits raised so the audit is not throttled"
        }
    );
    let pg = Arc::new(Postgres::start().await.context("starting Postgres")?);
    let database = pg.create_database().await.context("creating the database")?;
    let password = tenantry_reference::ids::new_id(tenantry_reference::ids::IdKind::Project);
    let secret_key = format!(
        "sk_test_{}",
        tenantry_reference::ids::new_id(tenantry_reference::ids::IdKind::User).replace('_', "")
            + &tenantry_reference::ids::new_id(tenantry_reference::ids::IdKind::User).replace('_', "")
    );
    let mut config = Config::default();
    config.identity.secret_key = Some(secret_key.clone());
    config.auth.authorized_parties = vec![ORIGIN.into()];
    if let Some(redis) = &redis {
        config.rate_limit.redis_url = Some(redis.url().to_string());
        config.oauth.redis_url = Some(redis.url().to_string());
    }
    // An ephemeral stack: a per-run key is all it needs.
    config.oauth.token_key = Some({
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(tenantry_reference::ids::random_bytes::<32>())
    });
    // The audit's probes and campaigns must not be throttled: every policy's
    // limit is raised (the RL suite tests the limiter on its own terms).
    for policy in tenantry_reference::api::POLICIES {
        config.rate_limit.policies.insert(
            policy.name.into(),
            tenantry_reference::config::PolicyOverride {
                limit: Some(1_000_000),
                ..Default::default()
            },
        );
    }
    #[cfg_attr(not(feature = "inject"), allow(unused_mut))]
    let mut options = StackOptions::new(config, false);
    #[cfg(feature = "inject")]
    for name in flaws {
        let flaw: tenantry_reference::inject::Flaw = name.parse().map_err(anyhow::Error::msg)?;
        options.flaws.insert(flaw);
        eprintln!("WARNING: injected flaw {flaw}");
    }
    #[cfg(not(feature = "inject"))]
    if !flaws.is_empty() {
        anyhow::bail!("this build has no injectable flaws (build with --features inject)");
    }
    options.config.validate()?;
    server::prepare_database(&database.url(), &password, &options)
        .await
        .context("preparing the database")?;
    let listener = server::bind(([127, 0, 0, 1], 0).into()).await?;
    let base = format!("http://{}", listener.local_addr()?);
    options.config.server.public_url = Some(base.clone());
    let app = server::build(&database.url(), &password, &options).await?;
    let built = options.clone();
    let active = app.key_ring().active();
    let signing_key = (active.kid().to_string(), active.pkcs8_der().to_vec());
    let (shutdown, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        let _ = app
            .serve(listener, async {
                let _ = stopped.await;
            })
            .await;
    });
    // The listener is bound already; wait until the app answers.
    let http = reqwest::Client::new();
    for _ in 0..50 {
        if http
            .get(format!("{base}/healthz"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(Stack {
        base,
        secret_key,
        pg,
        database,
        app_password: password,
        options: built,
        signing_key,
        redis,
        server,
        shutdown,
    })
}

/// The reference app's pool probe as the database audit sees it.
struct AppPoolProbe(PoolProbe);

impl AppPool for AppPoolProbe {
    fn serve<'a>(&'a self, org: &'a str, ending: Ending) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(self.0.serve(org, matches!(ending, Ending::Rollback)))
    }

    fn next_connection<'a>(
        &'a self,
        sql: &'a str,
    ) -> BoxFuture<'a, Result<Vec<Vec<Option<String>>>, String>> {
        Box::pin(self.0.next_connection(sql))
    }
}
