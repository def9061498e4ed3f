//! The `tenantry` command: thin wiring over tenantry-harness and
//! tenantry-reference.
#![forbid(unsafe_code)]

mod audit_cmd;
mod bench_cmd;
mod checks_cmd;
mod db_audit_cmd;
mod fuzz_cmd;
mod reference_stack;
mod run_cmd;
mod score;
mod serve;
mod target;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Tenancy conformance and fuzz test harness for multi-tenant SaaS back ends.
#[derive(Debug, Parser)]
#[command(name = "tenantry", version, about, long_about = None, max_term_width = 100)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the reference stack: Postgres (started for you unless configured),
    /// migrations, and the reference server.
    Serve(serve::ServeArgs),
    /// The check catalogue: list checks, or explain one.
    Checks(checks_cmd::ChecksArgs),
    /// Audit a target (or the reference stack, started for you) for tenant-isolation bugs.
    /// Exit 0: no findings at or above --fail-on (after waivers and baseline); 1: findings,
    /// or an expired waiver; 2: could not run, or invalid input.
    Audit(audit_cmd::AuditArgs),
    /// Audit a database's row-level security (RLS-001..010) with the app role's
    /// credentials. Exit 0: no findings; 1: findings; 2: could not run.
    DbAudit(db_audit_cmd::DbAuditArgs),
    /// Run scenario files (by hand, or a campaign's reproductions) against a target
    /// (or the reference stack). Exit 0: no failure at or above --fail-on (after waivers
    /// and baseline); 1: failures, or an expired waiver; 2: bad input or could not run.
    Run(run_cmd::RunArgs),
    /// Fuzz a target (or the reference stack) over HTTP: the profile's requests mutated
    /// (other org's ids and slugs in every place, encodings, odd values, tampered tokens)
    /// within a time budget; no 5xx and no other org's data may come back. Findings are
    /// shrunk and written as scenario files. Exit 0: no finding; 1: findings; 2: could
    /// not run.
    Fuzz(fuzz_cmd::FuzzArgs),
    /// Score tenantry (and any --tool) on the reference stack's corpus of injected flaws:
    /// per flaw caught or missed, TPR per family, FPR on the clean stack, Youden's J.
    /// Exit 0: tenantry caught every flaw with no false alarm; 1: it did not; 2: could
    /// not run. Needs a build with the `inject` feature.
    Score(score::ScoreArgs),
    /// Benchmark targets side by side: the same load (the profile's read-only requests with
    /// real sessions over several orgs) against each target (profiles, or reference stacks
    /// per --reference isolation mode), one after another; throughput, p50/p90/p99
    /// latency, errors, 429 accuracy; table, JSON, Markdown, SVG chart. Exit 0: measured;
    /// 2: bad input or could not run.
    Bench(bench_cmd::BenchArgs),
}

/// The log filter of commands that start the reference stack: it keeps quiet
/// (its refusals are what the harness provokes); TENANTRY_LOG opens it up.
const QUIET_STACK: &str = "warn,tenantry=info,tenantry_reference=off,tower_http=off";

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        // No runtime, no logging: a pure lookup.
        Command::Checks(args) => {
            checks_cmd::run(args, &mut std::io::stdout().lock()).map(|()| ExitCode::SUCCESS)
        }
        Command::Serve(args) => with_runtime("warn,tenantry=info,tenantry_reference=info", serve::run(args))
            .map(|()| ExitCode::SUCCESS),
        // The commands with their own exit codes (0/1/2 as documented).
        Command::Audit(args) => with_runtime(QUIET_STACK, audit_cmd::run(args)).map(ExitCode::from),
        Command::DbAudit(args) => {
            with_runtime("warn,tenantry=info", db_audit_cmd::run(args)).map(ExitCode::from)
        }
        Command::Score(args) => with_runtime(QUIET_STACK, score::run(args)).map(ExitCode::from),
        Command::Fuzz(args) => with_runtime(QUIET_STACK, fuzz_cmd::run(args)).map(ExitCode::from),
        Command::Bench(args) => with_runtime(QUIET_STACK, bench_cmd::run(args)).map(ExitCode::from),
        Command::Run(args) => with_runtime(QUIET_STACK, run_cmd::run(args)).map(ExitCode::from),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// Logging to stderr (`TENANTRY_LOG` filters) and a multi-threaded runtime for `work`.
fn with_runtime<T>(
    default_filter: &str,
    work: impl std::future::Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<T> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("TENANTRY_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter)),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| anyhow::anyhow!("cannot start the async runtime: {e}"))?;
    runtime.block_on(work)
}
