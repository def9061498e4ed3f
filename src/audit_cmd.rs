//! `tenantry audit`: run the audit against a target, or against the
//! reference stack started for you.

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tenantry_harness::audit::{self, Report, Target};
use tenantry_harness::checks::{Selection, Severity};
use tenantry_harness::services::Postgres;
use tenantry_reference::config::Config;
use tenantry_reference::server::{self, StackOptions};

#[derive(Debug, clap::Args)]
pub struct AuditArgs {
    /// Base URL of a target whose identity service is Clerk-compatible (Backend API
    /// with the test outbox, Frontend API). Without it, the reference stack is
    /// started for you (ephemeral Postgres, in-process rate-limit and OAuth stores).
    #[arg(long, value_name = "URL")]
    target: Option<String>,
    /// The target's Backend API secret key.
    #[arg(
        long,
        env = "TENANTRY_TARGET_SECRET_KEY",
        value_name = "KEY",
        hide_env_values = true
    )]
    secret_key: Option<String>,
    /// Origin to request session tokens as (their azp).
    #[arg(long, value_name = "ORIGIN")]
    origin: Option<String>,
    /// Only these checks: families, ids or globs, comma-separated (e.g. `ISO,ORG-00*`).
    #[arg(long, value_name = "SELECTORS")]
    checks: Option<String>,
    /// Exit 1 only for findings of at least this severity (default: any finding).
    #[arg(long, value_name = "SEVERITY", value_parser = parse_severity)]
    fail_on: Option<Severity>,
    /// Seed for every name and canary the harness chooses (printed on every run;
    /// pass it back to repeat a run).
    #[arg(long, value_name = "N")]
    seed: Option<u64>,
    /// Write the JSON report here (`-` for standard output).
    #[arg(long, value_name = "FILE")]
    json: Option<String>,
    /// Inject a named flaw into the reference stack (repeatable; reference stack only).
    #[cfg(feature = "inject")]
    #[arg(long = "inject", value_name = "NAME")]
    inject: Vec<String>,
}

fn parse_severity(s: &str) -> Result<Severity, String> {
    Severity::parse(&s.to_ascii_lowercase())
        .ok_or_else(|| format!("`{s}` is not a severity; expected info, low, medium, high or critical"))
}

/// The exit code: 0 clean, 1 findings.
pub async fn run(args: AuditArgs) -> anyhow::Result<u8> {
    let selection = Selection::parse(args.checks.as_deref().unwrap_or(""), None)?;
    let (target, stack) = match &args.target {
        Some(url) => {
            #[cfg(feature = "inject")]
            if !args.inject.is_empty() {
                anyhow::bail!("--inject applies to the reference stack only; drop --target");
            }
            let key = args
                .secret_key
                .clone()
                .context("--secret-key (or TENANTRY_TARGET_SECRET_KEY) is required with --target")?;
            (Target::reference(url, &key, args.origin.as_deref()), None)
        }
        None => {
            let stack = start_reference(&args).await?;
            let target = Target::reference(&stack.base, &stack.secret_key, Some(ORIGIN));
            (target, Some(stack))
        }
    };
    let seed = args.seed.unwrap_or_else(audit::random_seed);
    eprintln!(
        "auditing {} with seed {seed} (repeat with --seed {seed}) ...",
        target.base_url
    );
    let report = audit::run(&target, &selection, seed)
        .await
        .context("the audit could not run");
    if let Some(stack) = stack {
        stack.stop().await;
    }
    let report = report?;
    // With the JSON on standard output, the summary goes to standard error.
    if args.json.as_deref() == Some("-") {
        print_summary(&report, &mut std::io::stderr().lock())?;
    } else {
        print_summary(&report, &mut std::io::stdout().lock())?;
    }
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&report.to_json())?;
        if path == "-" {
            println!("{text}");
        } else {
            std::fs::write(path, text).with_context(|| format!("writing {path}"))?;
        }
    }
    let threshold = args.fail_on.unwrap_or(Severity::Info);
    Ok(u8::from(
        report.findings.iter().any(|f| f.check.severity >= threshold),
    ))
}

const ORIGIN: &str = "http://audit.tenantry.invalid";

struct Stack {
    base: String,
    secret_key: String,
    pg: Arc<Postgres>,
    database: tenantry_harness::services::Database,
    server: tokio::task::JoinHandle<()>,
    shutdown: tokio::sync::oneshot::Sender<()>,
}

impl Stack {
    /// Stops the server (its pools close) before the database and Postgres go.
    async fn stop(self) {
        let _ = self.shutdown.send(());
        let _ = tokio::time::timeout(Duration::from_secs(15), self.server).await;
        drop(self.database);
        drop(self.pg);
    }
}

async fn start_reference(args: &AuditArgs) -> anyhow::Result<Stack> {
    let _ = args;
    eprintln!("no --target: starting the reference stack (ephemeral Postgres; in-process rate-limit and OAuth stores)");
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
    // An ephemeral stack: a per-run key is all it needs.
    config.oauth.token_key = Some({
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(tenantry_reference::ids::random_bytes::<32>())
    });
    #[cfg_attr(not(feature = "inject"), allow(unused_mut))]
    let mut options = StackOptions::new(config, false);
    #[cfg(feature = "inject")]
    for name in &args.inject {
        let flaw: tenantry_reference::inject::Flaw = name.parse().map_err(anyhow::Error::msg)?;
        options.flaws.insert(flaw);
        eprintln!("WARNING: injected flaw {flaw}");
    }
    options.config.validate()?;
    server::prepare_database(&database.url(), &password, &options)
        .await
        .context("preparing the database")?;
    let listener = server::bind(([127, 0, 0, 1], 0).into()).await?;
    let base = format!("http://{}", listener.local_addr()?);
    options.config.server.public_url = Some(base.clone());
    let app = server::build(&database.url(), &password, &options).await?;
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
        server,
        shutdown,
    })
}

fn print_summary(report: &Report, out: &mut impl Write) -> std::io::Result<()> {
    writeln!(out, "{:<8} {:>6} {:>9}", "FAMILY", "CHECKS", "FINDINGS")?;
    for family in ["ISO", "ORG", "SES"] {
        let run = report.checks_run.iter().filter(|c| c.starts_with(family)).count();
        let found = report
            .findings
            .iter()
            .filter(|f| f.check.family == family)
            .count();
        if run > 0 {
            writeln!(out, "{family:<8} {run:>6} {found:>9}")?;
        }
    }
    for f in &report.findings {
        writeln!(
            out,
            "FINDING {} [{}] {}: {}",
            f.check.id, f.check.severity, f.check.title, f.message
        )?;
    }
    let secs = report.elapsed.as_secs_f64();
    writeln!(
        out,
        "{} checks, {} findings, {} requests in {:.1} s ({:.0} requests/s)",
        report.checks_run.len(),
        report.findings.len(),
        report.requests,
        secs,
        report.requests as f64 / secs.max(1e-9)
    )
}
