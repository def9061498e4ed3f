//! The reference stack, started for commands run without `--target`:
//! ephemeral Postgres, Redis when `redis-server` is installed (else the
//! in-process rate-limit and OAuth stores — said plainly), and the reference
//! server on a loopback port.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use futures::future::BoxFuture;
use tenantry_harness::dbaudit::{AppPool, DbAuditConfig, Ending};
use tenantry_harness::limits::LimitsHooks;
use tenantry_harness::profile::{LimitAlgorithm, LimitPolicy, Profile, RateLimitSpec};
use tenantry_harness::services::{Database, Postgres, Redis};
use tenantry_harness::signin::{AppFlows, AppSignIn, AppTemplateHelper};
use tenantry_harness::template::{Body, RequestTemplate};
use tenantry_harness::tokens::RsaKey;
use tenantry_reference::config::{Config, Isolation};
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
    /// Instances with real, short limits for the RL suite.
    limited: Vec<Instance>,
    /// The limited instances' config file (they watch it for
    /// `rate_limit.bypass_orgs`), and the bypass list written to it.
    bypass_file: std::path::PathBuf,
    bypass_orgs: std::sync::Mutex<Vec<String>>,
    server: tokio::task::JoinHandle<()>,
    shutdown: tokio::sync::oneshot::Sender<()>,
}

impl Stack {
    /// The built-in profile pointed at this stack.
    pub fn profile(&self) -> Profile {
        let mut profile = Profile::reference(&self.base, &self.secret_key, ORIGIN);
        // The stack's OAuth states live OAUTH_STATE_TTL_SECS: short enough
        // for the OAU suite to wait expiry out (OAU-008).
        if let Some(oauth) = profile.oauth.as_mut() {
            oauth.state_ttl = Duration::from_secs(OAUTH_STATE_TTL_SECS);
        }
        // The RL suite goes to the limited instances (the main one's limits
        // are raised); the other suites never read this section.
        profile.rate_limit = Some(RateLimitSpec {
            base_urls: self.limited.iter().map(|i| i.base.clone()).collect(),
            policies: vec![LimitPolicy {
                name: LIMITED_POLICY.to_string(),
                request: RequestTemplate::new("GET", "/api/search?q=rl"),
                limit: LIMITED_LIMIT,
                window: Duration::from_secs(LIMITED_WINDOW_SECS),
                algorithm: LimitAlgorithm::SlidingWindow,
                headers: true,
            }],
            // The stack is its own hooks (`impl LimitsHooks for Stack`).
            hooks: None,
        });
        profile
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
        for instance in self.limited {
            instance.stop().await;
        }
        let _ = std::fs::remove_file(&self.bypass_file);
        let _ = self.shutdown.send(());
        let _ = tokio::time::timeout(Duration::from_secs(15), self.server).await;
        drop(self.database);
        drop(self.pg);
        drop(self.redis);
    }
}

/// Starts the stack with `flaws` injected (names; reference builds with the
/// `inject` feature only) and its `database.isolation` set to `isolation`.
pub async fn start(flaws: &[String], isolation: Isolation) -> anyhow::Result<Stack> {
    let redis = if Redis::available() {
        Some(Redis::start().await.context("starting Redis")?)
    } else {
        None
    };
    eprintln!(
        "starting the reference stack ({} isolation; ephemeral Postgres; {}; limits raised so the harness's own traffic is not throttled)",
        isolation,
        if redis.is_some() {
            "ephemeral Redis for rate limits and OAuth state"
        } else {
            "redis-server is not installed, so rate limits and OAuth state use the in-process stores"
        }
    );
    let pg = Arc::new(Postgres::start().await.context("starting Postgres")?);
    let database = pg.create_database().await.context("creating the database")?;
    // Roles are cluster-wide: stacks sharing a cluster (TENANTRY_DATABASE_URL,
    // as `tenantry score` runs them, several at once) must agree on the app
    // role's password; a cluster of the stack's own gets a fresh one.
    let password = match std::env::var("TENANTRY_DATABASE_URL") {
        Ok(url) => {
            use std::hash::{Hash, Hasher};
            let mut h = std::collections::hash_map::DefaultHasher::new();
            url.hash(&mut h);
            format!("tenantry-stack-{:016x}", h.finish())
        }
        Err(_) => tenantry_reference::ids::new_id(tenantry_reference::ids::IdKind::Project),
    };
    let secret_key = format!(
        "sk_test_{}",
        tenantry_reference::ids::new_id(tenantry_reference::ids::IdKind::User).replace('_', "")
            + &tenantry_reference::ids::new_id(tenantry_reference::ids::IdKind::User).replace('_', "")
    );
    let mut config = Config::default();
    config.database.isolation = isolation;
    if isolation != Isolation::Both {
        eprintln!(
            "the reference stack relies on one isolation layer: database.isolation = {isolation} ({})",
            match isolation {
                Isolation::AppFilterOnly => "row-level security is off; the app's org filter alone isolates",
                _ => "the app's statements carry no org filter; row-level security alone isolates",
            }
        );
    }
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
    // Short-lived OAuth states, so the OAU suite can test expiry in seconds.
    config.oauth.state_ttl_secs = OAUTH_STATE_TTL_SECS;
    // The audit's probes and campaigns must not be throttled: every policy's
    // limit is raised (the RL suite tests the limiter on its own terms).
    for policy in tenantry_reference::ratelimit::PolicyName::ALL {
        config.rate_limit.policies.insert(
            policy,
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
    // Two instances sharing the store (one without Redis: the in-process
    // store is not shared) with `api.search` really limited.
    // They watch a config file of their own for the bypass list (RL-005).
    let bypass_file = std::env::temp_dir().join(format!(
        "tenantry-rl-{}-{}.toml",
        std::process::id(),
        tenantry_reference::ids::new_id(tenantry_reference::ids::IdKind::Project)
    ));
    write_bypass_file(&bypass_file, &[]).context("writing the limited instances' config file")?;
    let mut limited = Vec::new();
    for _ in 0..if redis.is_some() { 2 } else { 1 } {
        limited.push(Instance::start(&database.url(), &password, &options, &bypass_file).await?);
    }
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
        limited,
        bypass_file,
        bypass_orgs: std::sync::Mutex::new(Vec::new()),
        server,
        shutdown,
    })
}

/// How often the limited instances check their config file.
const RELOAD_INTERVAL_MS: u64 = 100;

/// Writes the limited instances' config file: only `rate_limit.bypass_orgs`
/// (the watcher reads nothing else). Written beside and renamed, so the
/// watcher never reads half a file.
fn write_bypass_file(path: &std::path::Path, orgs: &[String]) -> std::io::Result<()> {
    let list: Vec<String> = orgs
        .iter()
        .map(|o| serde_json::Value::String(o.clone()).to_string())
        .collect();
    let text = format!("[rate_limit]\nbypass_orgs = [{}]\n", list.join(", "));
    let partial = path.with_extension("toml.partial");
    std::fs::write(&partial, text)?;
    std::fs::rename(&partial, path)
}

/// The RL suite's hooks on the stack: the limited instances' bypass list
/// (their watched config file) and the stack's own Redis (stopped and
/// started on the same port).
impl LimitsHooks for Stack {
    fn add_bypass_org<'a>(&'a self, org_id: &'a str) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            let mut orgs = self.bypass_orgs.lock().unwrap_or_else(|p| p.into_inner());
            if !orgs.iter().any(|o| o == org_id) {
                orgs.push(org_id.to_string());
            }
            write_bypass_file(&self.bypass_file, &orgs)
                .map_err(|e| format!("writing {}: {e}", self.bypass_file.display()))
        })
    }

    fn bypass_reload_within(&self) -> Duration {
        // The instances poll every RELOAD_INTERVAL_MS; generous for a busy CI.
        Duration::from_secs(3)
    }

    fn stop_store(&self) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async move {
            match &self.redis {
                Some(redis) => redis.stop().map_err(|e| e.to_string()),
                None => Err("the stack has no Redis (redis-server is not installed): the in-process store cannot be stopped".into()),
            }
        })
    }

    fn start_store(&self) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async move {
            match &self.redis {
                Some(redis) => redis.restart().map_err(|e| e.to_string()),
                None => Err("the stack has no Redis".into()),
            }
        })
    }

    fn store_url(&self) -> Option<String> {
        self.redis.as_ref().map(|r| r.url().to_string())
    }
}

/// How long the stack's OAuth connect states live.
const OAUTH_STATE_TTL_SECS: u64 = 5;

/// The policy the limited instances really limit, and its limits: short,
/// so the RL suite judges them in seconds.
const LIMITED_POLICY: tenantry_reference::ratelimit::PolicyName =
    tenantry_reference::ratelimit::PolicyName::ApiSearch;
const LIMITED_LIMIT: u32 = 5;
const LIMITED_WINDOW_SECS: u64 = 2;

/// One more server on the stack's database (and Redis) with `api.search`
/// limited to [`LIMITED_LIMIT`] per [`LIMITED_WINDOW_SECS`].
struct Instance {
    base: String,
    server: tokio::task::JoinHandle<()>,
    shutdown: tokio::sync::oneshot::Sender<()>,
}

impl Instance {
    async fn start(
        database_url: &str,
        password: &str,
        options: &StackOptions,
        config_path: &std::path::Path,
    ) -> anyhow::Result<Self> {
        let mut options = options.clone();
        options.config_path = Some(config_path.to_path_buf());
        options.config.rate_limit.reload_interval_ms = RELOAD_INTERVAL_MS;
        options.config.rate_limit.policies.insert(
            LIMITED_POLICY,
            tenantry_reference::config::PolicyOverride {
                limit: Some(LIMITED_LIMIT),
                window_secs: Some(LIMITED_WINDOW_SECS),
                algorithm: Some(tenantry_reference::ratelimit::Algorithm::SlidingWindow),
                fail: Some(tenantry_reference::ratelimit::FailMode::Open),
            },
        );
        let listener = server::bind(([127, 0, 0, 1], 0).into()).await?;
        let base = format!("http://{}", listener.local_addr()?);
        // A replica: same public URL (the tokens' issuer) as the main one.
        let app = server::build(database_url, password, &options)
            .await
            .context("starting a rate-limited instance")?;
        let (shutdown, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            let _ = app
                .serve(listener, async {
                    let _ = stopped.await;
                })
                .await;
        });
        Ok(Self {
            base,
            server,
            shutdown,
        })
    }

    async fn stop(self) {
        let _ = self.shutdown.send(());
        let _ = tokio::time::timeout(Duration::from_secs(15), self.server).await;
    }
}

/// The reference app's own sign-in and template-token handlers, for the
/// sign-in suite (SES-005..007, TPL-003) besides the identity service.
pub fn app_flows() -> AppFlows {
    let mut start = RequestTemplate::new("POST", "/auth/sign-in");
    start.body = Some(Body::Json(
        serde_json::json!({ "identifier": "{{ email }}", "password": "{{ password }}" }),
    ));
    let mut code = RequestTemplate::new("POST", "/auth/sign-in/{{ sign_in }}/code");
    code.body = Some(Body::Json(serde_json::json!({ "code": "{{ code }}" })));
    AppFlows {
        sign_in: Some(AppSignIn {
            start,
            code,
            status_pointer: "/status".into(),
            complete: "complete".into(),
            session_pointer: "/session_id".into(),
            sign_in_pointer: "/sign_in_id".into(),
        }),
        template_helper: Some(AppTemplateHelper {
            request: RequestTemplate::new("GET", "/auth/token/{{ template }}"),
            jwt_pointer: "/jwt".into(),
        }),
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use tenantry_harness::audit::sessions_for;
    use tenantry_harness::checks::Selection;
    use tenantry_harness::client::Client;

    /// The stack's own profile points the RL suite at its limited instances,
    /// which it finds clean. With the stack's hooks, RL-005 (an org added
    /// to the watched bypass list is never limited, without a restart) runs
    /// always, and with Redis RL-011 (Redis stopped: admitted and marked
    /// degraded, no 5xx, recovery after the restart), RL-012 (one store
    /// command per decision, few keys, all with a TTL) and RL-010 run too.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_rl_suite_runs_clean_on_the_limited_instances() {
        let stack = start(&[], Isolation::Both).await.expect("the reference stack");
        let profile = stack.profile();
        let client = Client::new(&profile.base_url, 16, Duration::from_secs(20));
        let mut sessions = sessions_for(&profile, &client).await.expect("a session source");
        let outcome = tenantry_harness::limits::run_with(
            &profile,
            &client,
            &mut sessions,
            &Selection::default(),
            7,
            Some(&stack),
        )
        .await
        .expect("the RL suite runs");
        assert!(
            outcome.report.findings.is_empty(),
            "{:#}",
            outcome.report.to_json()
        );
        for id in [
            "RL-001", "RL-002", "RL-003", "RL-005", "RL-006", "RL-007", "RL-008", "RL-009",
        ] {
            assert!(outcome.report.checks_run.contains(&id), "{id} did not run");
        }
        assert_eq!(
            outcome.report.checks_run.contains(&"RL-010"),
            Redis::available(),
            "RL-010 runs exactly when the instances share Redis"
        );
        for id in ["RL-011", "RL-012"] {
            assert_eq!(
                outcome.report.checks_run.contains(&id),
                Redis::available(),
                "{id} runs exactly when the stack owns Redis: {:?}",
                outcome.skipped
            );
        }
        stack.stop().await;
    }
}
