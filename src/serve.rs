//! `tenantry serve`.

use std::path::PathBuf;

use anyhow::Context;
use tenantry_harness::services::{Database, Postgres};
use tenantry_reference::config::Config;
use tenantry_reference::server::{self, StackOptions};

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Configuration file (TOML). Environment variables TENANTRY_<SECTION>_<KEY> override it.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Address to listen on (overrides server.listen).
    #[arg(long, value_name = "ADDR")]
    listen: Option<std::net::SocketAddr>,
    /// Replace the auth proxy on /api routes with the X-Tenantry-Dev-Tenant header as
    /// identity. For local exploration only: anyone can claim any org with it.
    #[arg(long)]
    dev_auth: bool,
    /// Inject a named flaw (repeatable). See `--inject help`.
    #[cfg(feature = "inject")]
    #[arg(long = "inject", value_name = "NAME")]
    inject: Vec<String>,
}

pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let mut config = Config::load(args.config.as_deref())?;
    if let Some(listen) = args.listen {
        config.server.listen = listen;
    }
    #[cfg_attr(not(feature = "inject"), allow(unused_mut))]
    let mut options = StackOptions::new(config.clone(), args.dev_auth);
    // Watched for rate_limit.bypass_orgs edits (and re-read on SIGHUP).
    options.config_path = args.config.clone();
    #[cfg(feature = "inject")]
    for name in &args.inject {
        use tenantry_reference::inject::Flaw;
        if name == "help" {
            for flaw in Flaw::ALL {
                println!("{:<26} [{}] {}", flaw.name(), flaw.family(), flaw.description());
            }
            return Ok(());
        }
        let flaw: Flaw = name.parse().map_err(anyhow::Error::msg)?;
        options.flaws.insert(flaw);
    }

    // Either the configured database or an ephemeral one that lives as long
    // as this process.
    let mut _ephemeral: Option<(std::sync::Arc<Postgres>, Database)> = None;
    let (admin_url, app_password) = match (&config.database.url, &config.database.app_password) {
        (Some(url), Some(password)) => (url.clone(), password.clone()),
        _ => {
            eprintln!("starting an ephemeral Postgres (set database.url to use your own)...");
            let pg = std::sync::Arc::new(Postgres::start().await.context("starting Postgres")?);
            let database = pg.create_database().await.context("creating the database")?;
            eprintln!(
                "postgres {} ({}) ready in {} ms: {}",
                pg.version(),
                pg.source(),
                pg.started_in().as_millis(),
                pg.redacted_url(database.name())
            );
            let url = database.url();
            let password = tenantry_reference::ids::new_id(tenantry_reference::ids::IdKind::Project);
            _ephemeral = Some((pg, database));
            (url, password)
        }
    };
    server::prepare_database(&admin_url, &app_password, &options)
        .await
        .context("preparing the database")?;
    let listener = server::bind(config.server.listen).await?;
    let addr = listener.local_addr().context("reading the bound address")?;
    if options.config.server.public_url.is_none() {
        options.config.server.public_url = Some(format!("http://{addr}"));
    }
    let app = server::build(&admin_url, &app_password, &options).await?;
    if options.dev_auth {
        eprintln!("WARNING: --dev-auth trusts the X-Tenantry-Dev-Tenant header; never expose this server");
        eprintln!(
            "  try: curl -H 'X-Tenantry-Dev-Tenant: org_demo;user_demo;org:admin' http://{addr}/api/projects"
        );
    } else {
        eprintln!(
            "/api routes need a Clerk v2 session token from this server's Frontend API \
             (http://{addr}/v1/client; sign in at http://{addr}/auth/sign-in)"
        );
    }
    if config.identity.secret_key.is_some() {
        eprintln!("Backend API: http://{addr}/v1 (Authorization: Bearer <identity.secret_key>)");
    } else {
        eprintln!(
            "Backend API: disabled until identity.secret_key is set \
             (e.g. TENANTRY_IDENTITY_SECRET_KEY=sk_test_<32+ letters and digits>)"
        );
    }
    #[cfg(feature = "inject")]
    if !options.flaws.is_empty() {
        let names: Vec<&str> = options.flaws.iter().map(|f| f.name()).collect();
        eprintln!("WARNING: injected flaws: {}", names.join(", "));
    }
    eprintln!(
        "rate limits: {} store{}",
        config.rate_limit.store_kind_name(),
        if args.config.is_some() {
            "; bypass list reloads when the config file changes or on SIGHUP"
        } else {
            ""
        }
    );
    println!("tenantry reference server listening on http://{addr}");
    app.serve(listener, shutdown_signal()).await?;
    eprintln!("stopped");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
