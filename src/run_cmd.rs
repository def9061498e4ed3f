//! `tenantry run`: run scenario files (written by hand, or by a campaign as
//! a finding's reproduction) against a target.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use tenantry_harness::audit;
use tenantry_harness::client::Client;
use tenantry_harness::report::{Meta, RunReport};
use tenantry_harness::scenario::{self, Outcome, Scenario};

use crate::audit_cmd::ReportArgs;
use crate::target::{SigningKeyArgs, TargetArgs};

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Scenario files, or folders to search for `*.yaml` / `*.yml` (recursively).
    #[arg(value_name = "PATH", required = true)]
    paths: Vec<PathBuf>,
    #[command(flatten)]
    target: TargetArgs,
    #[command(flatten)]
    signing_key: SigningKeyArgs,
    /// Seed for the names and canaries the harness chooses (printed on every run).
    #[arg(long, value_name = "N")]
    seed: Option<u64>,
    #[command(flatten)]
    report: ReportArgs,
}

/// Every scenario file under `paths`, sorted within each folder.
fn collect(paths: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> anyhow::Result<()> {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
            .with_context(|| format!("cannot read the folder {}", dir.display()))?
            .map(|e| e.map(|e| e.path()))
            .collect::<Result<_, _>>()
            .with_context(|| format!("cannot read the folder {}", dir.display()))?;
        entries.sort();
        for path in entries {
            if path.is_dir() {
                walk(&path, out)?;
            } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
                out.push(path);
            }
        }
        Ok(())
    }
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            walk(path, &mut files)?;
        } else {
            files.push(path.clone());
        }
    }
    anyhow::ensure!(
        !files.is_empty(),
        "no scenario files (*.yaml, *.yml) under the paths given"
    );
    Ok(files)
}

/// The exit code: 0 no failed scenario at or above --fail-on (after waivers
/// and baseline), 1 some failed (errors: 2).
pub async fn run(args: RunArgs) -> anyhow::Result<u8> {
    // Every file is read and checked before anything is sent.
    let gate = args.report.prepare()?;
    let files = collect(&args.paths)?;
    let mut scenarios: Vec<Scenario> = Vec::new();
    let mut errors = Vec::new();
    for file in &files {
        match scenario::load(file) {
            Ok(s) => scenarios.push(s),
            Err(e) => errors.push(e.to_string()),
        }
    }
    if !errors.is_empty() {
        anyhow::bail!(
            "{} of {} scenario files are invalid:\n{}",
            errors.len(),
            files.len(),
            errors.join("\n")
        );
    }
    let operator_key = args.signing_key.load()?;
    let (profile, stack) = args.target.open().await?;
    let seed = args.seed.unwrap_or_else(audit::random_seed);
    eprintln!(
        "running {} scenarios against {} ({}) with seed {seed} (repeat with --seed {seed}) ...",
        scenarios.len(),
        profile.name,
        profile.base_url
    );
    let client = Client::new(&profile.base_url, 16, Duration::from_secs(20));
    let started = Instant::now();
    let outcome = async {
        // `forge` steps find the JWKS through the profile; with the signing
        // key (the operator's, or the reference stack's own) re-signed cases
        // run too.
        let context = scenario::Context {
            profile: Some(profile.clone()),
            signing_key: SigningKeyArgs::resolve(operator_key, stack.as_ref(), &profile, &client).await?,
        };
        let mut sessions = audit::sessions_for(&profile, &client).await?;
        let mut outcomes = Vec::new();
        for (i, s) in scenarios.iter().enumerate() {
            let outcome =
                scenario::run_with(s, &mut sessions, &client, seed.wrapping_add(i as u64), &context).await?;
            print_outcome(s, &outcome, &mut std::io::stdout().lock())?;
            outcomes.push(outcome);
        }
        anyhow::Ok(outcomes)
    }
    .await
    .context("the scenarios could not run");
    if let Some(stack) = stack {
        stack.stop().await;
    }
    let outcomes = outcome?;
    let meta = Meta {
        target: profile.name.clone(),
        base_url: profile.base_url.clone(),
        seed,
        elapsed: started.elapsed(),
        requests: client.requests_sent(),
    };
    let mut report = RunReport::from_scenarios(&meta, &scenarios, &outcomes);
    report.set_reproductions(&files);
    args.report.finish(
        &gate,
        report,
        "requests",
        &format!("seed {seed}"),
        &mut std::io::stdout().lock(),
    )
}

fn print_outcome(s: &Scenario, outcome: &Outcome, out: &mut impl Write) -> std::io::Result<()> {
    if outcome.passed() {
        return writeln!(out, "PASS {} ({} steps): {}", s.id, outcome.steps.len(), s.title);
    }
    writeln!(out, "FAIL {} [{}]: {}", s.id, s.severity, s.title)?;
    for step in outcome.failures() {
        writeln!(out, "  {} {}", step.label, step.title)?;
        for failure in &step.failures {
            writeln!(out, "    - {failure}")?;
        }
        if let Some(transcript) = &step.transcript {
            for line in transcript.lines().take(24) {
                writeln!(out, "      | {line}")?;
            }
        }
    }
    Ok(())
}
