//! `tenantry audit`: run the audit against a target profile, or against the
//! reference stack started for you.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use tenantry_harness::audit::{self, Finding, Progress, Report};
use tenantry_harness::campaign::{self, CampaignConfig};
use tenantry_harness::checks::{Selection, Severity};
use tenantry_harness::client::Client;
use tenantry_harness::dbaudit::{self, DbAuditConfig};
use tenantry_harness::limits;
use tenantry_harness::oauth_suite;
use tenantry_harness::profile::{DatabaseSpec, Profile};
use tenantry_harness::report::baseline::Baseline;
use tenantry_harness::report::waivers::{self, Date, Waivers};
use tenantry_harness::report::{self, gate, summary, Format, RunReport};
use tenantry_harness::scenario;
use tenantry_harness::signin;
use tenantry_harness::tokens;

use crate::reference_stack;
use crate::target::{SigningKeyArgs, TargetArgs};

#[derive(Debug, clap::Args)]
pub struct AuditArgs {
    #[command(flatten)]
    target: TargetArgs,
    #[command(flatten)]
    signing_key: SigningKeyArgs,
    /// Only these checks: families, ids or globs, comma-separated (e.g. `ISO,ORG-00*`).
    #[arg(long, value_name = "SELECTORS")]
    checks: Option<String>,
    /// Only checks of at least this severity (info, low, medium, high, critical).
    #[arg(long, value_name = "SEVERITY", value_parser = parse_severity)]
    min_severity: Option<Severity>,
    /// Seed for every name and canary the harness chooses (printed on every run;
    /// pass it back to repeat a run).
    #[arg(long, value_name = "N")]
    seed: Option<u64>,
    /// Campaign: how many random action sequences to try after the fixed probes
    /// (0: none).
    #[arg(long, value_name = "N", default_value_t = 16)]
    cases: u32,
    /// Campaign: stop starting new sequences after this many seconds.
    #[arg(long, value_name = "SECS", default_value_t = 60)]
    budget: u64,
    /// Campaign: write each finding's shrunk reproduction (a scenario file) here.
    #[arg(long, value_name = "DIR", default_value = "tenantry-repro")]
    repro_dir: PathBuf,
    /// Write the JSON report (schema tenantry.audit/1) here (`-` for standard output).
    #[arg(long, value_name = "FILE")]
    json: Option<String>,
    #[command(flatten)]
    report: ReportArgs,
}

/// The report and gate options `audit` and `run` share.
#[derive(Debug, clap::Args)]
pub struct ReportArgs {
    /// Exit 1 only for findings of at least this severity (info, low, medium, high,
    /// critical; default: any finding).
    #[arg(long, value_name = "SEVERITY", value_parser = parse_severity)]
    fail_on: Option<Severity>,
    /// Write reports in these formats, comma-separated: json, junit, sarif, html,
    /// markdown (into --out).
    #[arg(long, value_name = "FORMATS", value_parser = parse_formats)]
    report: Option<Formats>,
    /// The folder reports are written to (created if needed).
    #[arg(long, value_name = "DIR", default_value = "tenantry-reports")]
    out: PathBuf,
    /// Waiver file (TOML: check-id globs or scenario ids, each with a reason and an
    /// optional expiry date). Default: tenantry.waivers.toml in the working directory,
    /// if there is one.
    #[arg(long, value_name = "FILE")]
    waivers: Option<PathBuf>,
    /// A previous JSON report (--report json, schema tenantry.report/1): only
    /// findings whose fingerprint is not in it fail.
    #[arg(long, value_name = "REPORT_JSON")]
    baseline: Option<PathBuf>,
}

/// `--report`'s formats.
#[derive(Debug, Clone)]
pub struct Formats(Vec<Format>);

fn parse_formats(s: &str) -> Result<Formats, String> {
    Format::parse_list(s).map(Formats).map_err(|e| e.to_string())
}

/// Waivers and baseline, read (and checked) before anything runs.
pub struct Gate {
    waivers: Option<Waivers>,
    baseline: Option<Baseline>,
}

impl ReportArgs {
    /// Reads the waiver file and the baseline: a bad one is an error (exit 2)
    /// before anything is sent.
    pub fn prepare(&self) -> anyhow::Result<Gate> {
        let waivers = match &self.waivers {
            Some(path) => Some(Waivers::load(path)?),
            None if Path::new(waivers::DEFAULT_FILE).is_file() => {
                Some(Waivers::load(Path::new(waivers::DEFAULT_FILE))?)
            }
            None => None,
        };
        if let Some(w) = &waivers {
            eprintln!("waivers: {} from {}", w.waivers.len(), w.file);
        }
        let baseline = self.baseline.as_deref().map(Baseline::load).transpose()?;
        Ok(Gate { waivers, baseline })
    }

    /// Applies waivers and baseline to `report`, prints the summary (to
    /// `out`) and the gate's verdict, writes the reports asked for, and
    /// returns the exit code. `unit` names what the report's requests count;
    /// `tail` ends the summary's last line.
    pub fn finish(
        &self,
        gate: &Gate,
        mut report: RunReport,
        unit: &str,
        tail: &str,
        out: &mut dyn Write,
    ) -> anyhow::Result<u8> {
        let mut expired = Vec::new();
        if let Some(waivers) = &gate.waivers {
            let applied = waivers.apply(&mut report, Date::today());
            for w in &applied.unused {
                writeln!(
                    out,
                    "note: waiver `{}` ({}) matched no failed {}",
                    w.checks,
                    w.origin,
                    if report.kind == report::Kind::Audit {
                        "check"
                    } else {
                        "scenario"
                    }
                )?;
            }
            expired = applied.expired;
        }
        let known = gate.baseline.as_ref().map(|b| b.apply(&mut report));
        write!(out, "{}", summary::render(&report, unit, tail))?;
        if let (Some(known), Some(baseline)) = (known, &gate.baseline) {
            let total = report.findings().count();
            writeln!(
                out,
                "baseline {}: {known} of {total} findings known, {} new",
                baseline.file,
                total - known
            )?;
        }
        let verdict = gate::decide(&report, self.fail_on.unwrap_or(Severity::Info), &expired);
        for line in verdict.lines() {
            writeln!(out, "{line}")?;
        }
        if let Some(Formats(formats)) = &self.report {
            let written = report::write_all(&report, formats, &self.out)
                .with_context(|| format!("writing the reports to {}", self.out.display()))?;
            for path in written {
                writeln!(out, "report written: {}", path.display())?;
            }
        }
        Ok(verdict.exit_code())
    }
}

fn parse_severity(s: &str) -> Result<Severity, String> {
    Severity::parse(&s.to_ascii_lowercase())
        .ok_or_else(|| format!("`{s}` is not a severity; expected info, low, medium, high or critical"))
}

/// The exit code: 0 clean, 1 findings.
pub async fn run(args: AuditArgs) -> anyhow::Result<u8> {
    let selection = Selection::parse(args.checks.as_deref().unwrap_or(""), args.min_severity)?;
    let gate = args.report.prepare()?;
    let operator_key = args.signing_key.load()?;
    let (profile, stack) = args.target.open().await?;
    let seed = args.seed.unwrap_or_else(audit::random_seed);
    eprintln!(
        "auditing {} ({}) with seed {seed} (repeat with --seed {seed}) ...",
        profile.name, profile.base_url
    );
    let client = Client::new(&profile.base_url, 16, Duration::from_secs(20));
    let outcome = async {
        // An operator's key is checked against the target's JWKS before the
        // audit starts: a wrong one fails the run at once.
        let signing_key = SigningKeyArgs::resolve(operator_key, stack.as_ref(), &profile, &client).await?;
        let mut report = pass(&profile, &client, &selection, seed).await?;
        if args.cases > 0 {
            let config = CampaignConfig {
                cases: args.cases,
                budget: Duration::from_secs(args.budget),
                seed,
                ..CampaignConfig::default()
            };
            let found = run_campaign(&profile, &client, &config, &selection, &args.repro_dir).await?;
            report.absorb(found, "campaign");
        }
        // The token suite (TOK family): with the operator's signing key on
        // the reference stack (or the mint source's own), its re-signed cases
        // run too.
        let tok_selection = selection.clone().and(Selection::parse("TOK", None)?);
        if tok_selection.includes_family("TOK") {
            let mut sessions = audit::sessions_for(&profile, &client).await?;
            let found = tokens::audit_with(
                &profile,
                &client,
                &mut sessions,
                &tok_selection,
                seed,
                tokens::AuditOptions { signing_key },
            )
            .await?;
            report.absorb(found, "tokens");
        }
        // Sign-in and JWT templates (SES-005..008, TPL): the identity
        // service's own flows, and the app's handlers where they are known.
        if signin::selects_any(&selection) {
            match signin::not_run_reason(&profile) {
                Some(reason) => eprintln!("sign-in and template checks not run: {reason}"),
                None => {
                    let flows = if stack.is_some() {
                        reference_stack::app_flows()
                    } else {
                        signin::AppFlows::default()
                    };
                    let mut sessions = audit::sessions_for(&profile, &client).await?;
                    let found =
                        signin::audit_with(&profile, &client, &mut sessions, &selection, seed, &flows).await?;
                    report.absorb(found, "sign-in");
                }
            }
        }
        // OAuth connect state (OAU): the profile's [oauth] flow, replayed by
        // colleagues, other orgs, twice at once, late, tampered.
        let oau_selection = selection.clone().and(Selection::parse("OAU", None)?);
        if oau_selection.includes_family("OAU") {
            if profile.oauth.is_some() {
                let mut sessions = audit::sessions_for(&profile, &client).await?;
                let found = oauth_suite::audit(&profile, &client, &mut sessions, &oau_selection, seed).await?;
                report.absorb(found, "oauth");
            } else {
                eprintln!("OAuth checks not run: the profile has no [oauth] section");
            }
        }
        // Rate limits (RL): the profile's declared policies, with real
        // sessions of several orgs and users (on the reference stack, its
        // replicas with short real limits).
        let rl_selection = selection.clone().and(Selection::parse("RL", None)?);
        if rl_selection.includes_family("RL") {
            if profile.rate_limit.is_some() {
                let mut sessions = audit::sessions_for(&profile, &client).await?;
                let hooks = stack.as_ref().map(|s| s as &dyn limits::LimitsHooks);
                let outcome =
                    limits::run_with(&profile, &client, &mut sessions, &rl_selection, seed, hooks).await?;
                for (id, reason) in &outcome.skipped {
                    eprintln!("{id} {reason}");
                }
                report.absorb(outcome.report, "rate limits");
            } else {
                eprintln!("rate-limit checks not run: the profile has no [rate_limit] section");
            }
        }
        // The database audit (RLS family): the reference stack's own
        // database (through the app's own pool too), or the profile's
        // `[database]`. It runs before the ablation switches RLS off.
        let db_selection = selection.clone().and(Selection::parse("RLS", None)?);
        if db_selection.includes_family("RLS") {
            let config = match (&stack, &profile.database) {
                (Some(stack), _) => Some(stack.db_audit_config()?),
                (None, Some(spec)) => Some(db_audit_config(spec)),
                (None, None) => None,
            };
            match config {
                Some(config) => {
                    eprintln!("database audit: {}", dbaudit::redact_url(&config.database_url));
                    let mut found = dbaudit::audit(&config, &db_selection)
                        .await
                        .context("the database audit could not run")?;
                    // Its "requests" are SQL statements: kept out of the HTTP rate.
                    eprintln!("database audit: {} SQL statements", found.requests);
                    found.requests = 0;
                    report.absorb(found, "database");
                }
                None => eprintln!(
                    "database audit skipped: the profile has no [database] section (the RLS checks need the app role's URL)"
                ),
            }
        }
        // Layer ablation, where the harness owns the database: with RLS off,
        // the app's own org filter must isolate alone.
        let ablated = selection.clone().and(Selection::parse(ABLATION_CHECKS, None)?);
        if let Some(stack) = &stack {
            if audit::selects_any(&ablated) {
                let tables = stack.switch_off_rls().await?;
                eprintln!(
                    "layer ablation: row-level security switched off on {tables} tables; the app filter alone must isolate"
                );
                let second = pass(&profile, &client, &ablated, seed.wrapping_add(1)).await?;
                report.absorb(second, "with RLS off (the app filter alone)");
            }
        }
        anyhow::Ok(report)
    }
    .await
    .context("the audit could not run");
    if let Some(stack) = stack {
        stack.stop().await;
    }
    let report = outcome?;
    let tail = format!("seed {}", report.seed);
    let run_report = RunReport::from_audit(&report, &profile.base_url);
    let code = if args.json.as_deref() == Some("-") {
        args.report.finish(
            &gate,
            run_report,
            "requests",
            &tail,
            &mut std::io::stderr().lock(),
        )?
    } else {
        args.report.finish(
            &gate,
            run_report,
            "requests",
            &tail,
            &mut std::io::stdout().lock(),
        )?
    };
    if let Some(path) = args.json.as_deref() {
        write_json(&report, path)?;
    }
    Ok(code)
}

/// The campaign as a report pass: each finding's reproduction is written to
/// `repro_dir` and named in the finding.
async fn run_campaign(
    profile: &Profile,
    client: &Client,
    config: &CampaignConfig,
    selection: &Selection,
    repro_dir: &std::path::Path,
) -> anyhow::Result<Report> {
    let sent = client.requests_sent();
    let started = std::time::Instant::now();
    let mut sessions = audit::sessions_for(profile, client).await?;
    let mut bar = ProgressOutput::new();
    let found = campaign::run(profile, client, &mut sessions, config, &mut |p| bar.update(p)).await;
    bar.finish();
    let found = found?;
    let mut report = Report {
        target: profile.name.clone(),
        seed: config.seed,
        requests: client.requests_sent() - sent,
        elapsed: started.elapsed(),
        ..Report::default()
    };
    for f in found.findings {
        if !selection.includes(f.check) {
            continue;
        }
        std::fs::create_dir_all(repro_dir).with_context(|| format!("creating {}", repro_dir.display()))?;
        let path = repro_dir.join(format!("{}.yaml", f.scenario.id));
        std::fs::write(&path, scenario::to_yaml(&f.scenario))
            .with_context(|| format!("writing {}", path.display()))?;
        let note = if f.reproduced {
            "it fails again on its own"
        } else {
            "it did not fail again on replay: the target keeps state between requests (a cache?)"
        };
        report.findings.push(Finding {
            check: f.check,
            message: format!(
                "{} (shrunk to {} actions; reproduction {}: {note})",
                f.message,
                f.actions.len(),
                path.display()
            ),
            evidence: f.evidence,
            reproduction: Some(path.display().to_string()),
        });
    }
    eprintln!(
        "campaign: {} sequences, {} actions, seed {}; world: {}",
        found.sequences,
        found.actions,
        config.seed,
        found.cast.describe()
    );
    Ok(report)
}

/// The database audit's configuration from a profile's `[database]`.
fn db_audit_config(spec: &DatabaseSpec) -> DbAuditConfig {
    let mut config = DbAuditConfig::new(spec.url.clone());
    if let Some(setting) = &spec.tenant_setting {
        config.tenant_setting = setting.clone();
    }
    if let Some(column) = &spec.tenant_column {
        config.tenant_column = column.clone();
    }
    config.context_statement = spec.context_statement.clone();
    config
}

/// Checks re-run with row-level security off (the reference stack only).
const ABLATION_CHECKS: &str = "ISO-001,ISO-002,ISO-003,ISO-004,ISO-005,ISO-006,ISO-008";

async fn pass(
    profile: &Profile,
    client: &Client,
    selection: &Selection,
    seed: u64,
) -> anyhow::Result<Report> {
    let mut sessions = audit::sessions_for(profile, client).await?;
    if let Some(base) = sessions.issuer_base() {
        eprintln!(
            "session source mint: the harness signs the session tokens; JWKS at {base}/.well-known/jwks.json and {base}/v1/jwks (point the app's CLERK_API_URL at {base})"
        );
    }
    let mut bar = ProgressOutput::new();
    let report = audit::run(profile, client, &mut sessions, selection, seed, &mut |p| {
        bar.update(p)
    })
    .await;
    bar.finish();
    Ok(report?)
}

/// A progress bar on a terminal, plain lines otherwise (CI logs).
pub struct ProgressOutput {
    bar: Option<indicatif::ProgressBar>,
}

impl ProgressOutput {
    pub fn new() -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = indicatif::ProgressBar::new(0);
            bar.set_style(
                indicatif::ProgressStyle::with_template("{elapsed:>4} [{bar:30}] {pos}/{len} {msg}")
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                    .progress_chars("=> "),
            );
            bar
        });
        Self { bar }
    }

    pub fn update(&mut self, p: &Progress) {
        match &self.bar {
            Some(bar) => {
                bar.set_length(p.total);
                bar.set_position(p.done);
                bar.set_message(p.label.clone());
            }
            None => eprintln!("[{}/{}] {}", p.done, p.total, p.label),
        }
    }

    pub fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

/// The summary (on standard error when the JSON goes to standard output)
/// and the JSON report (`-`: standard output). `unit` names what
/// `report.requests` counts; `tail` ends the last line.
pub fn emit(report: &Report, json: Option<&str>, unit: &str, tail: &str) -> anyhow::Result<()> {
    let summary = summary::render(&RunReport::from_audit(report, ""), unit, tail);
    if json == Some("-") {
        eprint!("{summary}");
    } else {
        print!("{summary}");
    }
    if let Some(path) = json {
        write_json(report, path)?;
    }
    Ok(())
}

/// The `tenantry.audit/1` JSON report (`-`: standard output).
fn write_json(report: &Report, path: &str) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(&report.to_json())?;
    if path == "-" {
        println!("{text}");
    } else {
        std::fs::write(path, text).with_context(|| format!("writing {path}"))?;
    }
    Ok(())
}
