//! Reports: one neutral model of a run ([`RunReport`]) that both `tenantry
//! audit` and `tenantry run` fill, and the formats it is rendered in — JSON
//! (`tenantry.report/1`), JUnit XML, SARIF 2.1.0, HTML and Markdown for
//! auditors, and the terminal summary. Waivers ([`waivers`]) and a baseline
//! ([`baseline`]) decide which findings fail the gate ([`gate`]).
//!
//! Every string in the model comes from redacted transcripts; [`redact`]
//! masks anything token-shaped once more when the model is built, so no
//! renderer can print a credential.

pub mod baseline;
pub mod curl;
pub mod fingerprint;
pub mod gate;
pub mod html;
pub mod json;
pub mod junit;
pub mod markdown;
pub mod redact;
pub mod sarif;
pub mod summary;
pub mod waivers;

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::audit;
use crate::checks::{self, Check, Severity};
use crate::scenario::{Outcome, Scenario};

/// The JSON schema name of [`RunReport`].
pub const SCHEMA: &str = "tenantry.report/1";

/// What ran, against what, and what came of each check or scenario.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunReport {
    /// Always [`SCHEMA`].
    pub schema: String,
    /// The tool that wrote it.
    pub tool: Tool,
    /// An audit or a scenario run.
    pub kind: Kind,
    /// The target.
    pub target: Target,
    /// The seed the run used (a string: JSON numbers lose u64 precision).
    pub seed: String,
    /// Wall time in milliseconds.
    pub elapsed_ms: u64,
    /// Requests sent.
    pub requests: u64,
    /// One case per check run (audit) or per scenario (run), in order.
    pub cases: Vec<Case>,
}

/// The tool that wrote a report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tool {
    /// `tenantry`.
    pub name: String,
    /// Its version.
    pub version: String,
}

impl Default for Tool {
    fn default() -> Self {
        Self {
            name: "tenantry".into(),
            version: env!("CARGO_PKG_VERSION").into(),
        }
    }
}

/// What kind of run a report describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// `tenantry audit`: one case per check.
    Audit,
    /// `tenantry run`: one case per scenario.
    Scenarios,
}

impl Kind {
    /// What a case is, in the plural (`checks`, `scenarios`).
    pub fn cases_noun(self) -> &'static str {
        match self {
            Kind::Audit => "checks",
            Kind::Scenarios => "scenarios",
        }
    }
}

/// The target of a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Target {
    /// Its name (from the profile).
    pub name: String,
    /// Its base URL.
    pub base_url: String,
}

/// The verdict on one case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Nothing found.
    Passed,
    /// Findings, not waived.
    Failed,
    /// Findings, waived by a waiver in force.
    Waived,
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Status::Passed => "passed",
            Status::Failed => "failed",
            Status::Waived => "waived",
        })
    }
}

/// One check (audit) or scenario (run) and what came of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Case {
    /// Check id (`ISO-001`) or scenario id.
    pub id: String,
    /// One line for people.
    pub title: String,
    /// Check family code (`ISO`); for a scenario, the family of the first
    /// check its tags name, else `SCN`.
    pub family: String,
    /// Severity of a failure.
    #[serde(with = "severity_name")]
    pub severity: Severity,
    /// CWE number.
    pub cwe: Option<u32>,
    /// Passed, failed or waived.
    pub status: Status,
    /// The waiver in force, when waived.
    pub waiver: Option<WaiverNote>,
    /// How to fix a failure (the catalogue's check and family remediation).
    pub remediation: Option<String>,
    /// What failed.
    pub findings: Vec<FindingRecord>,
}

/// The waiver that waived a case.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WaiverNote {
    /// The waiver's `checks` pattern.
    pub pattern: String,
    /// Why it is waived.
    pub reason: String,
    /// Last day it is in force (`YYYY-MM-DD`), if it expires.
    pub expires: Option<String>,
}

/// One finding of a case.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FindingRecord {
    /// What went wrong.
    pub message: String,
    /// `METHOD /path?query` of the first exchange, when there is one.
    pub endpoint: Option<String>,
    /// Redacted transcripts of the exchanges involved.
    pub evidence: Vec<String>,
    /// A curl command that sends the first exchange again (the credential
    /// as `$TENANTRY_TOKEN`).
    pub curl: Option<String>,
    /// A scenario file that reproduces it.
    pub reproduction: Option<String>,
    /// How to fix it.
    pub remediation: String,
    /// Stable across runs and seeds: the check (or scenario and step) and the
    /// endpoint with ids and random tokens normalised.
    pub fingerprint: String,
    /// Its fingerprint is in the baseline: it does not fail the gate.
    #[serde(default)]
    pub known: bool,
}

/// `Severity` as its lowercase name.
mod severity_name {
    use serde::{Deserialize, Deserializer, Serializer};

    use crate::checks::Severity;

    pub fn serialize<S: Serializer>(s: &Severity, ser: S) -> Result<S::Ok, S::Error> {
        ser.serialize_str(s.name())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(de: D) -> Result<Severity, D::Error> {
        let name = String::deserialize(de)?;
        Severity::parse(&name).ok_or_else(|| serde::de::Error::custom(format!("unknown severity `{name}`")))
    }
}

/// Run facts a report needs beyond what was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Meta {
    /// The target's name.
    pub target: String,
    /// Its base URL.
    pub base_url: String,
    /// The seed.
    pub seed: u64,
    /// Wall time.
    pub elapsed: Duration,
    /// Requests sent.
    pub requests: u64,
}

/// Severities from the worst, as summary tables show them.
pub const SEVERITIES: [Severity; 5] = [
    Severity::Critical,
    Severity::High,
    Severity::Medium,
    Severity::Low,
    Severity::Info,
];

/// One row of a summary table: the cases of a family (or of every family).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tally {
    /// The family code (`TOTAL` for every case).
    pub family: String,
    /// Cases run.
    pub run: usize,
    /// Cases by status.
    pub passed: usize,
    /// Cases that failed.
    pub failed: usize,
    /// Cases waived.
    pub waived: usize,
    /// Findings of every case.
    pub findings: usize,
    /// Findings of waived cases.
    pub waived_findings: usize,
    /// Findings of failed cases, per severity in [`SEVERITIES`] order.
    pub by_severity: [usize; 5],
}

impl Tally {
    fn of(family: &str, cases: &[&Case]) -> Self {
        let count = |s: Status| cases.iter().filter(|c| c.status == s).count();
        let findings_where = |keep: &dyn Fn(&Case) -> bool| -> usize {
            cases.iter().filter(|c| keep(c)).map(|c| c.findings.len()).sum()
        };
        let mut by_severity = [0; 5];
        for (n, severity) in by_severity.iter_mut().zip(SEVERITIES) {
            *n = findings_where(&|c| c.severity == severity && c.status == Status::Failed);
        }
        Self {
            family: family.to_string(),
            run: cases.len(),
            passed: count(Status::Passed),
            failed: count(Status::Failed),
            waived: count(Status::Waived),
            findings: findings_where(&|_| true),
            waived_findings: findings_where(&|c| c.status == Status::Waived),
            by_severity,
        }
    }
}

impl RunReport {
    /// A row per family, in the order families first appear.
    pub fn tallies(&self) -> Vec<Tally> {
        let mut families: Vec<&str> = Vec::new();
        for case in &self.cases {
            if !families.contains(&case.family.as_str()) {
                families.push(&case.family);
            }
        }
        families
            .into_iter()
            .map(|family| {
                let cases: Vec<&Case> = self.cases.iter().filter(|c| c.family == family).collect();
                Tally::of(family, &cases)
            })
            .collect()
    }

    /// The row of every case.
    pub fn total(&self) -> Tally {
        let cases: Vec<&Case> = self.cases.iter().collect();
        Tally::of("TOTAL", &cases)
    }

    fn empty(kind: Kind, meta: &Meta) -> Self {
        Self {
            schema: SCHEMA.into(),
            tool: Tool::default(),
            kind,
            target: Target {
                name: meta.target.clone(),
                base_url: meta.base_url.clone(),
            },
            seed: meta.seed.to_string(),
            elapsed_ms: meta.elapsed.as_millis() as u64,
            requests: meta.requests,
            cases: Vec::new(),
        }
    }

    /// The report of an audit of the target at `base_url`: one case per
    /// check run (and per check that found something without being listed
    /// as run).
    pub fn from_audit(report: &audit::Report, base_url: &str) -> Self {
        let meta = Meta {
            target: report.target.clone(),
            base_url: base_url.to_string(),
            seed: report.seed,
            elapsed: report.elapsed,
            requests: report.requests,
        };
        let mut out = Self::empty(Kind::Audit, &meta);
        let mut ids: Vec<&str> = report.checks_run.clone();
        for f in &report.findings {
            if !ids.contains(&f.check.id) {
                ids.push(f.check.id);
            }
        }
        for id in ids {
            let Some(check) = checks::find(id) else {
                continue;
            };
            let findings: Vec<FindingRecord> = report
                .findings
                .iter()
                .filter(|f| f.check.id == check.id)
                .map(|f| {
                    finding(
                        check.id,
                        &f.message,
                        &f.evidence,
                        f.reproduction.clone(),
                        &remediation(check),
                    )
                })
                .collect();
            out.cases.push(Case {
                id: check.id.into(),
                title: check.title.into(),
                family: check.family.into(),
                severity: check.severity,
                cwe: Some(check.cwe),
                status: if findings.is_empty() {
                    Status::Passed
                } else {
                    Status::Failed
                },
                waiver: None,
                remediation: Some(remediation(check)),
                findings,
            });
        }
        out
    }

    /// The report of a scenario run: one case per scenario, one finding per
    /// failed step. `outcomes` pairs with `scenarios` by position.
    pub fn from_scenarios(meta: &Meta, scenarios: &[Scenario], outcomes: &[Outcome]) -> Self {
        let mut out = Self::empty(Kind::Scenarios, meta);
        for (scenario, outcome) in scenarios.iter().zip(outcomes) {
            let check = scenario_check(scenario);
            let fix = check.map(remediation);
            let findings: Vec<FindingRecord> = outcome
                .failures()
                .map(|step| {
                    let evidence: Vec<String> = step.transcript.iter().cloned().collect();
                    finding(
                        &format!("{} {}", scenario.id, step.label),
                        &format!("{} {}: {}", step.label, step.title, step.failures.join("; ")),
                        &evidence,
                        None,
                        fix.as_deref().unwrap_or("See the scenario's references."),
                    )
                })
                .collect();
            out.cases.push(Case {
                id: scenario.id.clone(),
                title: redact::redact(&scenario.title),
                family: check.map_or("SCN", |c| c.family).into(),
                severity: scenario.severity,
                cwe: scenario.cwe.or(check.map(|c| c.cwe)),
                status: if findings.is_empty() {
                    Status::Passed
                } else {
                    Status::Failed
                },
                waiver: None,
                remediation: fix,
                findings,
            });
        }
        out
    }

    /// Names `sources[i]` as the reproduction of every finding of case `i`
    /// (a scenario file reproduces its own failures).
    pub fn set_reproductions(&mut self, sources: &[PathBuf]) {
        for (case, source) in self.cases.iter_mut().zip(sources) {
            for f in &mut case.findings {
                f.reproduction.get_or_insert_with(|| source.display().to_string());
            }
        }
    }

    /// Every finding with its case.
    pub fn findings(&self) -> impl Iterator<Item = (&Case, &FindingRecord)> {
        self.cases
            .iter()
            .flat_map(|c| c.findings.iter().map(move |f| (c, f)))
    }

    /// Wall time.
    pub fn elapsed(&self) -> Duration {
        Duration::from_millis(self.elapsed_ms)
    }

    /// Cases by status: (passed, failed, waived).
    pub fn counts(&self) -> (usize, usize, usize) {
        let n = |s: Status| self.cases.iter().filter(|c| c.status == s).count();
        (n(Status::Passed), n(Status::Failed), n(Status::Waived))
    }
}

/// The check a scenario's tags name (`TEN-ISO-001` or `ISO-001`), if any.
fn scenario_check(scenario: &Scenario) -> Option<&'static Check> {
    scenario
        .tags
        .iter()
        .find_map(|t| checks::find(t.strip_prefix("TEN-").unwrap_or(t)))
}

/// The check's own fix, then the family's general one.
fn remediation(check: &Check) -> String {
    format!("{} {}", check.remediation, check.family().remediation)
}

/// A finding record, every string passed through [`redact::redact`].
fn finding(
    key: &str,
    message: &str,
    evidence: &[String],
    reproduction: Option<String>,
    fix: &str,
) -> FindingRecord {
    let evidence: Vec<String> = evidence.iter().map(|e| redact::redact(e)).collect();
    let endpoint = evidence.first().and_then(|t| fingerprint::endpoint(t));
    let message = redact::redact(message);
    FindingRecord {
        fingerprint: fingerprint::fingerprint(key, endpoint.as_deref(), &message),
        curl: evidence.first().and_then(|t| curl::from_transcript(t)),
        endpoint,
        message,
        evidence,
        reproduction,
        remediation: fix.to_string(),
        known: false,
    }
}

/// A report format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `tenantry.report/1` JSON.
    Json,
    /// JUnit XML.
    Junit,
    /// SARIF 2.1.0.
    Sarif,
    /// One self-contained HTML file.
    Html,
    /// Markdown.
    Markdown,
}

/// The format names `--report` accepts.
pub const FORMAT_NAMES: &[&str] = &["json", "junit", "sarif", "html", "markdown"];

/// `--report` named a format tenantry does not write.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown report format `{0}`; expected one or more of json, junit, sarif, html, markdown (comma-separated)")]
pub struct UnknownFormat(pub String);

impl Format {
    /// Parses one name (`md` is accepted for markdown).
    pub fn parse(name: &str) -> Result<Self, UnknownFormat> {
        Ok(match name.trim().to_ascii_lowercase().as_str() {
            "json" => Format::Json,
            "junit" => Format::Junit,
            "sarif" => Format::Sarif,
            "html" => Format::Html,
            "markdown" | "md" => Format::Markdown,
            _ => return Err(UnknownFormat(name.trim().to_string())),
        })
    }

    /// Parses a comma-separated list, without duplicates.
    pub fn parse_list(list: &str) -> Result<Vec<Self>, UnknownFormat> {
        let mut out = Vec::new();
        for name in list.split(',').filter(|n| !n.trim().is_empty()) {
            let f = Self::parse(name)?;
            if !out.contains(&f) {
                out.push(f);
            }
        }
        if out.is_empty() {
            return Err(UnknownFormat(list.to_string()));
        }
        Ok(out)
    }

    /// The file it is written to in the output folder.
    pub fn file_name(self) -> &'static str {
        match self {
            Format::Json => "tenantry-report.json",
            Format::Junit => "tenantry-junit.xml",
            Format::Sarif => "tenantry.sarif",
            Format::Html => "tenantry-report.html",
            Format::Markdown => "tenantry-report.md",
        }
    }

    /// The report in this format.
    pub fn render(self, report: &RunReport) -> String {
        match self {
            Format::Json => json::render(report),
            Format::Junit => junit::render(report),
            Format::Sarif => sarif::render(report),
            Format::Html => html::render(report),
            Format::Markdown => markdown::render(report),
        }
    }
}

/// Writes `report` in every format of `formats` into `dir` (created if
/// needed); returns the paths written.
pub fn write_all(report: &RunReport, formats: &[Format], dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let mut written = Vec::new();
    for format in formats {
        let path = dir.join(format.file_name());
        std::fs::write(&path, format.render(report))?;
        written.push(path);
    }
    Ok(written)
}
