//! The terminal summary: a plain-text table by family and severity, one
//! line per finding (`FINDING`, `KNOWN` from the baseline, `WAIVED`), and a
//! totals line.

use std::fmt::Write;

use super::{Case, FindingRecord, Kind, RunReport, Status, Tally};

/// The summary. `unit` names what `report.requests` counts (`requests`,
/// `statements`); `tail` ends the last line (`seed 42`).
pub fn render(report: &RunReport, unit: &str, tail: &str) -> String {
    let mut out = String::new();
    let cases_header = match report.kind {
        Kind::Audit => "CHECKS",
        Kind::Scenarios => "RUN",
    };
    let _ = writeln!(
        out,
        "{:<8} {:>6} {:>9} {:>8} {:>5} {:>6} {:>4} {:>4} {:>6}",
        "FAMILY", cases_header, "FINDINGS", "CRITICAL", "HIGH", "MEDIUM", "LOW", "INFO", "WAIVED"
    );
    let row = |out: &mut String, t: &Tally| {
        let _ = write!(out, "{:<8} {:>6} {:>9}", t.family, t.run, t.findings);
        for (n, width) in t.by_severity.iter().zip([8, 5, 6, 4, 4]) {
            let _ = write!(out, " {n:>width$}");
        }
        let _ = writeln!(out, " {:>6}", t.waived_findings);
    };
    let tallies = report.tallies();
    for t in &tallies {
        row(&mut out, t);
    }
    if tallies.len() > 1 {
        row(&mut out, &report.total());
    }
    for (case, f) in report.findings() {
        let tag = match (case.status, f.known) {
            (Status::Waived, _) => "WAIVED",
            (_, true) => "KNOWN",
            _ => "FINDING",
        };
        let _ = write!(
            out,
            "{tag} {} [{}] {}: {}",
            case.id, case.severity, case.title, f.message
        );
        if let Some(w) = case.waiver.as_ref().filter(|_| case.status == Status::Waived) {
            let until = w
                .expires
                .as_deref()
                .map(|d| format!(", until {d}"))
                .unwrap_or_default();
            let _ = write!(out, " (waived: {}{until})", w.reason);
        }
        if f.known {
            let _ = write!(out, " (known from the baseline)");
        }
        out.push('\n');
    }
    let (passed, failed, waived) = report.counts();
    let findings = report.findings().count();
    let secs = report.elapsed_ms as f64 / 1000.0;
    let rate = report.requests as f64 / secs.max(1e-9);
    let _ = match report.kind {
        Kind::Audit => writeln!(
            out,
            "{} checks, {findings} findings, {} {unit} in {secs:.1} s ({rate:.0} {unit}/s); {tail}",
            report.cases.len(),
            report.requests,
        ),
        Kind::Scenarios => writeln!(
            out,
            "{} scenarios: {passed} passed, {failed} failed, {waived} waived; {} {unit} in {secs:.1} s; {tail}",
            report.cases.len(),
            report.requests,
        ),
    };
    out
}

/// One finding as plain text: what, where, evidence, curl, fix.
pub fn finding_text(case: &Case, f: &FindingRecord) -> String {
    let mut out = format!("{} [{}] {}\n", case.id, case.severity, f.message);
    if let Some(endpoint) = &f.endpoint {
        let _ = writeln!(out, "endpoint: {endpoint}");
    }
    let _ = writeln!(out, "fingerprint: {}", f.fingerprint);
    if f.known {
        let _ = writeln!(out, "known from the baseline");
    }
    if let Some(repro) = &f.reproduction {
        let _ = writeln!(out, "reproduction: {repro}");
    }
    for (i, e) in f.evidence.iter().enumerate() {
        let _ = writeln!(out, "--- evidence {} ---\n{}", i + 1, e.trim_end());
    }
    if let Some(curl) = &f.curl {
        let _ = writeln!(out, "--- reproduce (export TENANTRY_TOKEN first) ---\n{curl}");
    }
    let _ = write!(out, "remediation: {}", f.remediation);
    out
}
