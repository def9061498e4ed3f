//! `tenantry fuzz`: HTTP-level fuzzing of a target (or the reference stack
//! started for you) within a time budget; findings are shrunk and written
//! as scenario files.

use std::path::PathBuf;
use std::time::Duration;

use tenantry_harness::audit;
use tenantry_harness::checks::Selection;
use tenantry_harness::client::Client;
use tenantry_harness::fuzz::{self, FuzzConfig};
use tenantry_harness::scenario;

use crate::audit_cmd::{emit, ProgressOutput};
use crate::target::{SigningKeyArgs, TargetArgs};

#[derive(Debug, clap::Args)]
pub struct FuzzArgs {
    #[command(flatten)]
    target: TargetArgs,
    #[command(flatten)]
    signing_key: SigningKeyArgs,
    /// Stop starting new batches of cases after this many seconds (shrinking and
    /// replaying the findings still complete).
    #[arg(long, value_name = "SECS", default_value_t = 60)]
    budget: u64,
    /// Seed for the cases, names and canaries (printed on every run; pass it back to
    /// repeat a run).
    #[arg(long, value_name = "N")]
    seed: Option<u64>,
    /// Write each finding's shrunk reproduction (a scenario file) here.
    #[arg(long, value_name = "DIR", default_value = "tenantry-repro")]
    repro_dir: PathBuf,
    /// Write the JSON report (schema tenantry.audit/1) here (`-` for standard output).
    #[arg(long, value_name = "FILE")]
    json: Option<String>,
    /// Only report findings of these checks: families, ids or globs, comma-separated
    /// (e.g. `ORG,FUZ-001`).
    #[arg(long, value_name = "SELECTORS")]
    checks: Option<String>,
}

/// The exit code: 0 no finding, 1 findings (errors: 2).
pub async fn run(args: FuzzArgs) -> anyhow::Result<u8> {
    let selection = Selection::parse(args.checks.as_deref().unwrap_or(""), None)?;
    let operator_key = args.signing_key.load()?;
    let (profile, stack) = args.target.open().await?;
    let seed = args.seed.unwrap_or_else(audit::random_seed);
    eprintln!(
        "fuzzing {} ({}) for {} s with seed {seed} (repeat with --seed {seed}) ...",
        profile.name, profile.base_url, args.budget
    );
    let client = Client::new(&profile.base_url, 16, Duration::from_secs(20));
    let config = FuzzConfig {
        budget: Duration::from_secs(args.budget),
        seed,
        repro_dir: args.repro_dir.clone(),
        ..FuzzConfig::default()
    };
    let outcome = async {
        // `forge` steps find the JWKS through the profile; with the signing
        // key (the operator's, or the reference stack's own) re-signed cases
        // run too.
        let context = scenario::Context {
            profile: Some(profile.clone()),
            signing_key: SigningKeyArgs::resolve(operator_key, stack.as_ref(), &profile, &client).await?,
        };
        let mut sessions = audit::sessions_for(&profile, &client).await?;
        let mut bar = ProgressOutput::new();
        let found = fuzz::run(
            &profile,
            &client,
            &mut sessions,
            &context,
            &selection,
            &config,
            &mut |p| bar.update(p),
        )
        .await;
        bar.finish();
        anyhow::Ok(found?)
    }
    .await;
    if let Some(stack) = stack {
        stack.stop().await;
    }
    let outcome = outcome?;
    let first = match outcome.first_finding {
        Some((after, requests)) => format!(
            "first failing case after {:.1} s ({requests} requests)",
            after.as_secs_f64()
        ),
        None => "no failing case".into(),
    };
    eprintln!(
        "fuzz: {} cases in {} worlds, {} failing, {} unanswered; {first}; seed {seed}",
        outcome.cases, outcome.batches, outcome.failing_cases, outcome.unanswered
    );
    let tail = format!("seed {seed}, {} cases", outcome.cases);
    emit(&outcome.report, args.json.as_deref(), "requests", &tail)?;
    Ok(if outcome.report.findings.is_empty() { 0 } else { 1 })
}
