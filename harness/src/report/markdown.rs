//! Markdown (for pull requests, tickets and wikis): the summary by family and
//! severity, every case, and per finding its evidence in code blocks, the
//! curl command and the remediation. Text outside code blocks is escaped so
//! a response body cannot inject markup.

use std::fmt::Write;

use super::{Case, FindingRecord, Kind, RunReport, Status, SEVERITIES};

/// The report as Markdown.
pub fn render(report: &RunReport) -> String {
    let mut out = String::new();
    let kind = match report.kind {
        Kind::Audit => "audit",
        Kind::Scenarios => "scenario run",
    };
    let (passed, failed, waived) = report.counts();
    let _ = writeln!(out, "# tenantry {kind} report: {}\n", esc(&report.target.name));
    let _ = writeln!(
        out,
        "- Target: {} (`{}`)",
        esc(&report.target.name),
        tick(&report.target.base_url)
    );
    let _ = writeln!(
        out,
        "- {}: {} — {passed} passed, {failed} failed, {waived} waived",
        capitalise(report.kind.cases_noun()),
        report.cases.len()
    );
    let _ = writeln!(out, "- Findings: {}", report.findings().count());
    let _ = writeln!(
        out,
        "- Seed: `{}` (repeat with `--seed {}`)",
        tick(&report.seed),
        tick(&report.seed)
    );
    let _ = writeln!(
        out,
        "- Requests: {} in {:.1} s",
        report.requests,
        report.elapsed_ms as f64 / 1000.0
    );
    let _ = writeln!(
        out,
        "- Tool: {} {}\n",
        esc(&report.tool.name),
        esc(&report.tool.version)
    );

    out.push_str("## Summary by family and severity\n\n| Family | Run | Passed | Failed | Waived |");
    for s in SEVERITIES {
        let _ = write!(out, " {} |", s.name());
    }
    out.push_str("\n|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n");
    for t in report.tallies() {
        let _ = write!(
            out,
            "| {} | {} | {} | {} | {} |",
            esc(&t.family),
            t.run,
            t.passed,
            t.failed,
            t.waived
        );
        for count in t.by_severity {
            let _ = write!(out, " {count} |");
        }
        out.push('\n');
    }

    let _ = writeln!(
        out,
        "\n## {}\n\n| Id | Title | Severity | CWE | Status | Findings |\n|---|---|---|---|---|--:|",
        capitalise(report.kind.cases_noun())
    );
    for case in &report.cases {
        let _ = writeln!(
            out,
            "| `{}` | {} | {} | {} | {} | {} |",
            tick(&case.id),
            esc(&case.title),
            case.severity,
            case.cwe.map_or("—".to_string(), |n| format!("CWE-{n}")),
            case.status,
            case.findings.len()
        );
    }

    out.push_str("\n## Findings\n");
    if report.findings().next().is_none() {
        out.push_str("\nNone.\n");
    }
    for (case, f) in report.findings() {
        finding(&mut out, case, f);
    }
    out.push_str("\n---\nCredentials are redacted in this report; the curl commands read your token from `$TENANTRY_TOKEN`.\n");
    out
}

fn finding(out: &mut String, case: &Case, f: &FindingRecord) {
    let status = match (case.status, f.known) {
        (Status::Waived, _) => "waived",
        (_, true) => "known from the baseline",
        _ => "failed",
    };
    let _ = writeln!(
        out,
        "\n### `{}` {} — {} ({status})\n\n{}\n",
        tick(&case.id),
        esc(&case.title),
        case.severity,
        esc(&f.message)
    );
    if let Some(endpoint) = &f.endpoint {
        let _ = writeln!(out, "- Endpoint: `{}`", tick(endpoint));
    }
    if let Some(cwe) = case.cwe {
        let _ = writeln!(
            out,
            "- CWE: [CWE-{cwe}](https://cwe.mitre.org/data/definitions/{cwe}.html)"
        );
    }
    let _ = writeln!(out, "- Fingerprint: `{}`", tick(&f.fingerprint));
    if let (Status::Waived, Some(w)) = (case.status, &case.waiver) {
        let until = w
            .expires
            .as_deref()
            .map(|d| format!(", until {d}"))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "- Waived: {} (waiver `{}`{until})",
            esc(&w.reason),
            tick(&w.pattern)
        );
    }
    if let Some(repro) = &f.reproduction {
        let _ = writeln!(out, "- Reproduction: `{}`", tick(repro));
    }
    for (i, e) in f.evidence.iter().enumerate() {
        let _ = writeln!(out, "\nEvidence {}:\n\n{}", i + 1, fenced("http", e.trim_end()));
    }
    if let Some(curl) = &f.curl {
        let _ = writeln!(
            out,
            "\nReproduce (set `TENANTRY_TOKEN` first):\n\n{}",
            fenced("sh", curl)
        );
    }
    let _ = writeln!(out, "\nRemediation: {}", esc(&f.remediation));
}

/// A fenced code block whose fence is longer than any backtick run inside.
fn fenced(lang: &str, text: &str) -> String {
    let longest = text.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    let fence = "`".repeat(longest.max(2) + 1);
    format!("{fence}{lang}\n{text}\n{fence}")
}

/// Inline text: markup characters escaped, newlines flattened.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' | '`' | '*' | '_' | '[' | ']' | '|' | '#' | '!' => {
                out.push('\\');
                out.push(c);
            }
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '\n' | '\r' => out.push(' '),
            _ => out.push(c),
        }
    }
    out
}

/// Text inside an inline code span: no backticks (they would end it) and no
/// newlines; `|` escaped for tables.
fn tick(s: &str) -> String {
    s.replace('`', "'").replace(['\n', '\r'], " ").replace('|', "\\|")
}

fn capitalise(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}
