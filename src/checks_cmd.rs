//! `tenantry checks list|explain`.

use std::io::Write;

use tenantry_harness::checks::{self, Selection, Severity};

#[derive(Debug, clap::Args)]
pub struct ChecksArgs {
    #[command(subcommand)]
    command: ChecksCommand,
}

#[derive(Debug, clap::Subcommand)]
enum ChecksCommand {
    /// List checks: id, severity, CWE, title.
    List {
        /// Only these families, ids or id globs, comma-separated (e.g. `ISO,ORG-00*`).
        #[arg(long, value_name = "SELECTORS")]
        checks: Option<String>,
        /// Only checks of at least this severity (info, low, medium, high, critical).
        #[arg(long, value_name = "SEVERITY", value_parser = parse_severity)]
        min_severity: Option<Severity>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Explain one check: what it sends, the safe outcome, how to fix a failure.
    Explain {
        /// The check id, e.g. ISO-001 (TEN-ISO-001 works too).
        id: String,
    },
}

fn parse_severity(s: &str) -> Result<Severity, String> {
    Severity::parse(&s.to_ascii_lowercase())
        .ok_or_else(|| format!("`{s}` is not a severity; expected info, low, medium, high or critical"))
}

pub fn run(args: ChecksArgs, out: &mut impl Write) -> anyhow::Result<()> {
    match args.command {
        ChecksCommand::List {
            checks: selectors,
            min_severity,
            json,
        } => {
            let selection = Selection::parse(selectors.as_deref().unwrap_or(""), min_severity)?;
            let chosen: Vec<&checks::Check> =
                checks::CHECKS.iter().filter(|c| selection.includes(c)).collect();
            if json {
                let items: Vec<serde_json::Value> = chosen
                    .iter()
                    .map(|c| {
                        serde_json::json!({
                            "id": c.id, "family": c.family, "title": c.title, "severity": c.severity.name(),
                            "cwe": format!("CWE-{}", c.cwe), "sends": c.sends, "safe": c.safe,
                            "remediation": c.remediation,
                        })
                    })
                    .collect();
                writeln!(out, "{}", serde_json::to_string_pretty(&items)?)?;
                return Ok(());
            }
            writeln!(out, "{:<8} {:<8} {:<8} TITLE", "ID", "SEVERITY", "CWE")?;
            for c in &chosen {
                writeln!(
                    out,
                    "{:<8} {:<8} {:<8} {}",
                    c.id,
                    c.severity.name(),
                    format!("CWE-{}", c.cwe),
                    c.title
                )?;
            }
            writeln!(out, "{} checks", chosen.len())?;
            Ok(())
        }
        ChecksCommand::Explain { id } => {
            let Some(c) = checks::find(&id) else {
                anyhow::bail!("no check `{id}`; `tenantry checks list` shows every id");
            };
            let family = c.family();
            writeln!(out, "{} — {} ({})", c.id, c.title, family.title)?;
            writeln!(out, "severity: {}   CWE-{}", c.severity.name(), c.cwe)?;
            writeln!(out, "sends:    {}", c.sends)?;
            writeln!(out, "safe:     {}", c.safe)?;
            writeln!(out, "fix:      {}", c.remediation)?;
            writeln!(out, "          {}", family.remediation)?;
            Ok(())
        }
    }
}
