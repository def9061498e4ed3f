//! SARIF 2.1.0 (for code scanning): the checks (or scenarios) run are the
//! rules, with remediation as help and CWE tags; each finding is a result at
//! its endpoint (the path, repository-relative as code scanning requires),
//! its level from the severity, its fingerprint in
//! `partialFingerprints`; waived results carry a suppression with the
//! waiver's reason.

use std::collections::BTreeMap;

use serde_json::json;
use serde_sarif::sarif::{
    ArtifactLocation, Location, LogicalLocation, Message, MultiformatMessageString, PhysicalLocation,
    PropertyBag, ReportingConfiguration, ReportingDescriptor, Result as SarifResult, ResultLevel, Run, Sarif,
    Suppression, Tool, ToolComponent,
};

use super::{fingerprint, Case, FindingRecord, RunReport, Status};
use crate::checks::{self, Severity};

/// The `partialFingerprints` key of tenantry's fingerprint.
pub const FINGERPRINT_KEY: &str = "tenantry/v1";

/// The report as SARIF 2.1.0 JSON.
pub fn render(report: &RunReport) -> String {
    let rules: Vec<ReportingDescriptor> = report.cases.iter().map(rule).collect();
    let mut results = Vec::new();
    for (index, case) in report.cases.iter().enumerate() {
        for f in &case.findings {
            let mut text = f.message.clone();
            if let Some(endpoint) = &f.endpoint {
                text = format!("{text} ({endpoint})");
            }
            let mut properties = BTreeMap::new();
            properties.insert("severity".to_string(), json!(case.severity.name()));
            if let Some(endpoint) = &f.endpoint {
                properties.insert("endpoint".to_string(), json!(endpoint));
            }
            if let Some(curl) = &f.curl {
                properties.insert("curl".to_string(), json!(curl));
            }
            if let Some(repro) = &f.reproduction {
                properties.insert("reproduction".to_string(), json!(repro));
            }
            properties.insert("evidence".to_string(), json!(f.evidence));
            properties.insert("remediation".to_string(), json!(f.remediation));
            properties.insert("knownFromBaseline".to_string(), json!(f.known));
            let mut partial = BTreeMap::new();
            partial.insert(FINGERPRINT_KEY.to_string(), f.fingerprint.clone());
            let locations = vec![location(case, f)];
            let result = SarifResult::builder()
                .rule_id(case.id.as_str())
                .rule_index(index as i64)
                .level(level(case.severity))
                .message(Message::builder().text(text).build())
                .partial_fingerprints(partial)
                .properties(PropertyBag::builder().additional_properties(properties).build());
            let result = match (locations.is_empty(), case.status == Status::Waived) {
                (true, false) => result.build(),
                (false, false) => result.locations(locations).build(),
                (true, true) => result.suppressions(suppressions(case)).build(),
                (false, true) => result
                    .locations(locations)
                    .suppressions(suppressions(case))
                    .build(),
            };
            results.push(result);
        }
    }
    let mut run_properties = BTreeMap::new();
    run_properties.insert("kind".to_string(), json!(report.kind));
    run_properties.insert("target".to_string(), json!(report.target.name));
    run_properties.insert("baseUrl".to_string(), json!(report.target.base_url));
    run_properties.insert("seed".to_string(), json!(report.seed));
    run_properties.insert("elapsedMs".to_string(), json!(report.elapsed_ms));
    run_properties.insert("requests".to_string(), json!(report.requests));
    let driver = ToolComponent::builder()
        .name(report.tool.name.as_str())
        .version(report.tool.version.as_str())
        .semantic_version(report.tool.version.as_str())
        .information_uri("https://example.invalid/tenantry")
        .rules(rules)
        .build();
    let run = Run::builder()
        .tool(Tool::builder().driver(driver).build())
        .results(results)
        .properties(
            PropertyBag::builder()
                .additional_properties(run_properties)
                .build(),
        )
        .build();
    let sarif = Sarif::builder()
        .schema(serde_sarif::sarif::SCHEMA_URL)
        .version(json!("2.1.0"))
        .runs(vec![run])
        .build();
    let mut text = serde_json::to_string_pretty(&sarif)
        .unwrap_or_else(|e| unreachable!("a SARIF log always serialises: {e}"));
    text.push('\n');
    text
}

/// Where a finding is. Code scanning wants one location per result, with a
/// repository-relative URI: the endpoint's path without its leading `/`
/// (the whole `METHOD /path?query` as the logical location), else the
/// reproduction (a scenario file), else `tenantry/<case id>` (findings such
/// as the database audit's have no endpoint).
fn location(case: &Case, f: &FindingRecord) -> Location {
    let uri = match (&f.endpoint, &f.reproduction) {
        (Some(endpoint), _) => {
            let target = endpoint.split_once(' ').map_or(endpoint.as_str(), |(_, t)| t);
            let path = fingerprint::path_of(target).split('?').next().unwrap_or("");
            match path.trim_start_matches('/') {
                "" => ".".to_string(),
                relative => relative.to_string(),
            }
        }
        (None, Some(repro)) => repro.clone(),
        (None, None) => format!("tenantry/{}", case.id),
    };
    let physical = PhysicalLocation::builder()
        .artifact_location(ArtifactLocation::builder().uri(uri).build())
        .build();
    match &f.endpoint {
        Some(endpoint) => Location::builder()
            .physical_location(physical)
            .logical_locations(vec![LogicalLocation::builder()
                .name(endpoint.as_str())
                .kind("endpoint")
                .build()])
            .build(),
        None => Location::builder().physical_location(physical).build(),
    }
}

/// A rule per case: the check (or scenario), its help and CWE.
fn rule(case: &Case) -> ReportingDescriptor {
    let check = checks::find(&case.id);
    let full = match check {
        Some(c) => format!(
            "Sends: {}. Safe outcome: {}.",
            c.sends.trim_end_matches('.'),
            c.safe.trim_end_matches('.')
        ),
        None => case.title.clone(),
    };
    let help = case
        .remediation
        .clone()
        .unwrap_or_else(|| "See the scenario's references.".to_string());
    let mut tags = vec!["security".to_string(), "tenancy".to_string(), case.family.clone()];
    let mut properties = BTreeMap::new();
    if let Some(cwe) = case.cwe {
        tags.push(format!("external/cwe/cwe-{cwe}"));
        tags.push(format!("CWE-{cwe}"));
        properties.insert("cwe".to_string(), json!(format!("CWE-{cwe}")));
    }
    properties.insert(
        "security-severity".to_string(),
        json!(security_severity(case.severity)),
    );
    properties.insert("severity".to_string(), json!(case.severity.name()));
    properties.insert("precision".to_string(), json!("high"));
    let rule = ReportingDescriptor::builder()
        .id(case.id.as_str())
        .name(case.title.as_str())
        .short_description(
            MultiformatMessageString::builder()
                .text(case.title.as_str())
                .build(),
        )
        .full_description(MultiformatMessageString::builder().text(full).build())
        .help(
            MultiformatMessageString::builder()
                .text(help.as_str())
                .markdown(format!("**Remediation.** {help}"))
                .build(),
        )
        .default_configuration(
            ReportingConfiguration::builder()
                .level(json!(level_name(case.severity)))
                .build(),
        )
        .properties(
            PropertyBag::builder()
                .tags(tags)
                .additional_properties(properties)
                .build(),
        );
    match case.cwe {
        Some(cwe) => rule
            .help_uri(format!("https://cwe.mitre.org/data/definitions/{cwe}.html"))
            .build(),
        None => rule.build(),
    }
}

fn suppressions(case: &Case) -> Vec<Suppression> {
    let justification = case
        .waiver
        .as_ref()
        .map_or_else(String::new, |w| match &w.expires {
            Some(d) => format!("{} (waiver `{}`, until {d})", w.reason, w.pattern),
            None => format!("{} (waiver `{}`)", w.reason, w.pattern),
        });
    vec![Suppression::builder()
        .kind(json!("external"))
        .status(json!("accepted"))
        .justification(justification)
        .build()]
}

fn level(severity: Severity) -> ResultLevel {
    match severity {
        Severity::Critical | Severity::High => ResultLevel::Error,
        Severity::Medium => ResultLevel::Warning,
        Severity::Low | Severity::Info => ResultLevel::Note,
    }
}

fn level_name(severity: Severity) -> &'static str {
    match level(severity) {
        ResultLevel::Error => "error",
        ResultLevel::Warning => "warning",
        ResultLevel::Note => "note",
        ResultLevel::None => "none",
    }
}

/// GitHub code scanning's numeric severity (critical >= 9.0, high >= 7.0,
/// medium >= 4.0, low > 0).
fn security_severity(severity: Severity) -> &'static str {
    match severity {
        Severity::Critical => "9.5",
        Severity::High => "8.0",
        Severity::Medium => "5.5",
        Severity::Low => "3.0",
        Severity::Info => "0.0",
    }
}
