//! A reference stack per test: a fresh database cloned from a migrated
//! template on the process's shared ephemeral Postgres, the real server on a
//! loopback port, and the dev-auth layer standing in for the proxy.
#![allow(dead_code)]

pub mod checks;
pub mod identity;
pub mod oauth_checks;
pub mod ratelimit_checks;
pub mod token_checks;

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tenantry_harness::services::{Database, Postgres};
use tenantry_reference::config::Config;
use tenantry_reference::db::{self, PoolSettings};
use tenantry_reference::server::{self, StackOptions};
use tenantry_reference::tenant_db::Db;
use tenantry_reference::wire::Pool;
use tokio_postgres::NoTls;

/// Test-only password of the app role. Roles are cluster-wide, so every test
/// on a cluster uses the same one.
pub const APP_PASSWORD: &str = "tenantry-test-app-password";

pub struct TestStack {
    // Fields drop in order: the server stops before its database goes.
    running: Peer,
    pub base: String,
    pub keys: std::sync::Arc<tenantry_reference::identity::keys::KeyRing>,
    pub http: reqwest::Client,
    pub database: Database,
    pub options: StackOptions,
}

/// Builds the app on `database_url` with `options` (its public URL set to
/// the loopback port it gets) and serves it until the handle drops.
async fn launch(
    database_url: &str,
    options: &StackOptions,
) -> (Peer, Arc<tenantry_reference::identity::keys::KeyRing>) {
    let listener = server::bind(([127, 0, 0, 1], 0).into())
        .await
        .expect("a loopback port");
    let base = format!("http://{}", listener.local_addr().unwrap());
    let mut options = options.clone();
    options.config.server.public_url = Some(base.clone());
    let app = server::build(database_url, APP_PASSWORD, &options)
        .await
        .expect("the app");
    let keys = app.key_ring();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        let _ = app
            .serve(listener, async {
                let _ = rx.await;
            })
            .await;
    });
    (
        Peer {
            base,
            server,
            shutdown: Some(tx),
        },
        keys,
    )
}

pub async fn postgres() -> Arc<Postgres> {
    Postgres::shared()
        .await
        .expect("an ephemeral Postgres (see the services module docs)")
}

/// A fresh, migrated database.
pub async fn database() -> Database {
    database_on(&postgres().await).await
}

/// A fresh, migrated database on `pg` (a server of the test's own, e.g. one
/// the test stops and restarts).
pub async fn database_on(pg: &Arc<Postgres>) -> Database {
    let template = format!("tref_{}", db::schema_fingerprint());
    pg.database_from_template(
        &template,
        |url| async move { db::migrate(&url, APP_PASSWORD).await },
    )
    .await
    .expect("a database cloned from the migrated template")
}

impl TestStack {
    pub async fn start() -> Self {
        Self::with_options(StackOptions {
            dev_auth: true,
            ..StackOptions::default()
        })
        .await
    }

    #[cfg(feature = "inject")]
    pub async fn with_flaws(flaws: &[tenantry_reference::inject::Flaw]) -> Self {
        Self::with_options(StackOptions {
            dev_auth: true,
            flaws: tenantry_reference::inject::Flaws::of(flaws),
            ..StackOptions::default()
        })
        .await
    }

    pub async fn with_options(options: StackOptions) -> Self {
        Self::with_config(options, |_| {}).await
    }

    /// A proxy-fronted stack whose test config `tweak` adjusts (e.g. rate limits).
    pub async fn with_proxy_config(tweak: impl FnOnce(&mut Config)) -> Self {
        Self::with_config(StackOptions::default(), tweak).await
    }

    /// `options` with the test config, adjusted by `tweak`.
    pub async fn with_config(options: StackOptions, tweak: impl FnOnce(&mut Config)) -> Self {
        Self::on_database(database().await, options, tweak).await
    }

    /// As [`TestStack::with_config`], on `database`.
    pub async fn on_database(
        database: Database,
        mut options: StackOptions,
        tweak: impl FnOnce(&mut Config),
    ) -> Self {
        options.config = Config {
            cache: tenantry_reference::config::CacheConfig {
                stats_ttl_ms: 60_000,
                max_entries: 100,
            },
            ..Config::default()
        };
        options.config.database.pool_size = 4;
        options.config.auth.authorized_parties = vec![token_checks::PARTY.into()];
        options.config.identity.secret_key = Some(identity::SECRET_KEY.into());
        options.config.identity.key_refresh_interval_ms = 200;
        // Tests other than the rate-limit ones must never be limited.
        for policy in tenantry_reference::ratelimit::PolicyName::ALL {
            options.config.rate_limit.policies.insert(
                policy,
                tenantry_reference::config::PolicyOverride {
                    limit: Some(1_000_000),
                    ..Default::default()
                },
            );
        }
        tweak(&mut options.config);
        options.config.validate().expect("a valid test config");
        server::prepare_database(&database.url(), APP_PASSWORD, &options)
            .await
            .expect("migrations and flaws");
        let (running, keys) = launch(&database.url(), &options).await;
        Self {
            base: running.base.clone(),
            keys,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(20))
                .build()
                .unwrap(),
            database,
            options,
            running,
        }
    }

    /// A stack whose org routes sit behind the real proxy (session tokens).
    pub async fn with_proxy() -> Self {
        Self::with_options(StackOptions::default()).await
    }

    /// A proxy-fronted stack with `flaws` injected.
    #[cfg(feature = "inject")]
    pub async fn with_proxy_and_flaws(flaws: &[tenantry_reference::inject::Flaw]) -> Self {
        Self::with_options(StackOptions {
            flaws: tenantry_reference::inject::Flaws::of(flaws),
            ..StackOptions::default()
        })
        .await
    }

    /// Another server instance on this stack's database with the same
    /// options: a second replica behind a load balancer.
    pub async fn peer(&self) -> Peer {
        launch(&self.database.url(), &self.options).await.0
    }

    /// The `/metrics` text.
    pub async fn metrics(&self) -> String {
        self.http
            .get(format!("{}/metrics", self.base))
            .send()
            .await
            .expect("the server answers")
            .text()
            .await
            .unwrap_or_default()
    }

    /// A superuser connection to this test's database.
    pub async fn superuser(&self) -> tokio_postgres::Client {
        connect(&self.database.url()).await
    }

    /// The role the server connects as (the app role; the owner under `rls-not-forced`).
    pub fn serving_role(&self) -> &'static str {
        #[cfg(feature = "inject")]
        return db::serving_role(&self.options.flaws);
        #[cfg(not(feature = "inject"))]
        db::serving_role()
    }

    /// A raw connection as the serving role.
    pub async fn app_client(&self) -> tokio_postgres::Client {
        connect(&self.database.url_as(self.serving_role(), APP_PASSWORD)).await
    }

    /// A pool of `size` serving-role connections, and a `Db` over the same
    /// pool with this stack's flaws.
    pub fn app_pool(&self, size: usize) -> (Pool, Db) {
        let pool = db::pool_as(
            &self.database.url(),
            self.serving_role(),
            APP_PASSWORD,
            &PoolSettings {
                size,
                statement_timeout: Duration::from_secs(5),
            },
        )
        .unwrap();
        let db = Db::new(pool.clone());
        #[cfg(feature = "inject")]
        let db = db.with_flaws(self.options.flaws.clone());
        (pool, db)
    }

    pub fn as_user(&self, org: &str, user: &str, role: &str) -> Actor {
        Actor {
            base: self.base.clone(),
            http: self.http.clone(),
            header: Some(format!("{org};{user};{role}")),
        }
    }

    pub fn anonymous(&self) -> Actor {
        Actor {
            base: self.base.clone(),
            http: self.http.clone(),
            header: None,
        }
    }
}

/// A running server instance (the stack's own, or a [`TestStack::peer`]).
pub struct Peer {
    pub base: String,
    server: tokio::task::JoinHandle<()>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for Peer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        self.server.abort();
    }
}

pub async fn connect(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await.expect("connect");
    tokio::spawn(async move {
        let _ = connection.await;
    });
    client
}

/// One identity's view of the API.
#[derive(Clone)]
pub struct Actor {
    base: String,
    http: reqwest::Client,
    header: Option<String>,
}

/// A response: status and parsed body (Null when empty or not JSON).
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub body: Value,
    pub text: String,
}

impl Actor {
    pub async fn send(&self, method: &str, path: &str, body: Option<Value>) -> Reply {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut request = self.http.request(method, format!("{}{}", self.base, path));
        if let Some(header) = &self.header {
            request = request.header("x-tenantry-dev-tenant", header);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("the server answers");
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Reply { status, body, text }
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.send("GET", path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Reply {
        self.send("POST", path, Some(body)).await
    }

    /// Creates a project and returns its id.
    pub async fn project(&self, name: &str, description: &str) -> String {
        let reply = self
            .post(
                "/api/projects",
                json!({ "name": name, "description": description }),
            )
            .await;
        assert_eq!(reply.status, 201, "create project: {}", reply.text);
        reply.body["id"].as_str().unwrap().to_string()
    }

    /// Creates a document and returns its id.
    pub async fn document(&self, project: &str, title: &str, body: &str) -> String {
        let reply = self
            .post(
                &format!("/api/projects/{project}/documents"),
                json!({ "title": title, "body": body }),
            )
            .await;
        assert_eq!(reply.status, 201, "create document: {}", reply.text);
        reply.body["id"].as_str().unwrap().to_string()
    }
}
