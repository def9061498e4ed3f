//! The HTML report for auditors: one self-contained file (inline CSS, no
//! scripts, nothing fetched — its Content-Security-Policy forbids it), with a
//! summary by family and severity, every case, and per finding the evidence
//! (request and response excerpts), a curl command and the remediation.
//! Every string from the run is HTML-escaped.

use std::fmt::Write;

use super::{Case, FindingRecord, RunReport, Status, SEVERITIES};
use crate::checks::Severity;

const STYLE: &str = "
:root { color-scheme: light; --fg: #1d2330; --muted: #5b6475; --line: #d9dee7; --bg: #f6f7f9;
  --critical: #8b1020; --high: #c2410c; --medium: #a16207; --low: #1d4ed8; --info: #4b5563;
  --passed: #15803d; --failed: #b91c1c; --waived: #6b21a8; }
* { box-sizing: border-box; }
body { font: 15px/1.5 system-ui, -apple-system, 'Segoe UI', sans-serif; color: var(--fg); margin: 0; background: #fff; }
header { background: var(--fg); color: #fff; padding: 1.5rem 2rem; }
header h1 { margin: 0 0 .25rem; font-size: 1.5rem; }
header p { margin: 0; color: #cbd2df; }
main { padding: 1.5rem 2rem; max-width: 80rem; }
h2 { border-bottom: 2px solid var(--line); padding-bottom: .25rem; margin-top: 2rem; }
table { border-collapse: collapse; width: 100%; margin: .5rem 0 1rem; }
th, td { border: 1px solid var(--line); padding: .35rem .6rem; text-align: left; vertical-align: top; }
th { background: var(--bg); font-weight: 600; }
td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: .2rem 1rem; margin: 0; }
dl.facts dt { color: var(--muted); }
dl.facts dd { margin: 0; }
.badge { display: inline-block; padding: 0 .5rem; border-radius: 999px; font-size: .8rem; font-weight: 600; color: #fff; }
.sev-critical { background: var(--critical); } .sev-high { background: var(--high); }
.sev-medium { background: var(--medium); } .sev-low { background: var(--low); } .sev-info { background: var(--info); }
.st-passed { background: var(--passed); } .st-failed { background: var(--failed); } .st-waived { background: var(--waived); }
.verdict { font-size: 1.1rem; font-weight: 600; }
section.finding { border: 1px solid var(--line); border-left: 6px solid var(--failed); border-radius: 6px; padding: .75rem 1rem; margin: 1rem 0; }
section.finding.waived { border-left-color: var(--waived); }
section.finding.known { border-left-color: var(--muted); }
section.finding h3 { margin: 0 0 .5rem; font-size: 1.05rem; }
pre { background: var(--bg); border: 1px solid var(--line); border-radius: 4px; padding: .6rem; overflow-x: auto;
  white-space: pre-wrap; word-break: break-all; font: 12.5px/1.45 ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; margin: .25rem 0 .75rem; }
.exchange { display: grid; grid-template-columns: 1fr 1fr; gap: 1rem; }
.exchange h4 { margin: .25rem 0; font-size: .85rem; color: var(--muted); text-transform: uppercase; letter-spacing: .04em; }
code { font: 13px ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
.muted { color: var(--muted); }
footer { padding: 1rem 2rem 2rem; color: var(--muted); font-size: .85rem; }
@media (max-width: 60rem) { .exchange { grid-template-columns: 1fr; } }
";

/// `s` with `& < > " '` escaped.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// The report as one self-contained HTML page.
pub fn render(report: &RunReport) -> String {
    let e = escape;
    let mut out = String::new();
    let kind = match report.kind {
        super::Kind::Audit => "audit",
        super::Kind::Scenarios => "scenario run",
    };
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">\n\
         <title>tenantry {kind}: {}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n",
        e(&report.target.name)
    );
    let (passed, failed, waived) = report.counts();
    let findings = report.findings().count();
    let _ = write!(
        out,
        "<header>\n<h1>tenantry {kind} report</h1>\n<p>{} — <code>{}</code></p>\n</header>\n<main>\n",
        e(&report.target.name),
        e(&report.target.base_url)
    );
    let verdict = if failed == 0 {
        "No unwaived findings.".to_string()
    } else {
        format!("{failed} {} failed.", report.kind.cases_noun())
    };
    let _ = write!(
        out,
        "<p class=\"verdict\">{}</p>\n<dl class=\"facts\">\n\
         <dt>Target</dt><dd>{} (<code>{}</code>)</dd>\n\
         <dt>{}</dt><dd>{} — {passed} passed, {failed} failed, {waived} waived</dd>\n\
         <dt>Findings</dt><dd>{findings}</dd>\n\
         <dt>Seed</dt><dd><code>{}</code> (repeat with <code>--seed {}</code>)</dd>\n\
         <dt>Requests</dt><dd>{} in {:.1} s</dd>\n\
         <dt>Tool</dt><dd>{} {}</dd>\n</dl>\n",
        e(&verdict),
        e(&report.target.name),
        e(&report.target.base_url),
        capitalise(report.kind.cases_noun()),
        report.cases.len(),
        e(&report.seed),
        e(&report.seed),
        report.requests,
        report.elapsed_ms as f64 / 1000.0,
        e(&report.tool.name),
        e(&report.tool.version),
    );

    // Summary by family and severity.
    out.push_str("<h2>Summary by family and severity</h2>\n<table>\n<thead><tr><th>Family</th>");
    out.push_str("<th class=\"n\">Run</th><th class=\"n\">Passed</th><th class=\"n\">Failed</th><th class=\"n\">Waived</th>");
    for s in SEVERITIES {
        let _ = write!(out, "<th class=\"n\">{}</th>", capitalise(s.name()));
    }
    out.push_str("</tr></thead>\n<tbody>\n");
    for t in report.tallies() {
        let _ = write!(
            out,
            "<tr><td>{}{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td>",
            e(&t.family),
            family_title(&t.family).map(|t| format!(" <span class=\"muted\">{}</span>", e(t))).unwrap_or_default(),
            t.run,
            t.passed,
            t.failed,
            t.waived
        );
        for count in t.by_severity {
            let _ = write!(out, "<td class=\"n\">{count}</td>");
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</tbody>\n</table>\n<p class=\"muted\">Severity columns count unwaived findings.</p>\n");

    // Every case.
    let _ = write!(
        out,
        "<h2>{}</h2>\n<table>\n<thead><tr><th>Id</th><th>Title</th><th>Family</th><th>Severity</th><th>CWE</th><th>Status</th><th class=\"n\">Findings</th></tr></thead>\n<tbody>\n",
        capitalise(report.kind.cases_noun())
    );
    for case in &report.cases {
        let id = if case.findings.is_empty() {
            format!("<code>{}</code>", e(&case.id))
        } else {
            format!(
                "<a href=\"#case-{}\"><code>{}</code></a>",
                anchor(&case.id),
                e(&case.id)
            )
        };
        let _ = writeln!(
            out,
            "<tr><td>{id}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"n\">{}</td></tr>",
            e(&case.title),
            e(&case.family),
            severity_badge(case.severity),
            cwe_link(case.cwe),
            status_badge(case.status),
            case.findings.len()
        );
    }
    out.push_str("</tbody>\n</table>\n");

    // Findings with their evidence.
    out.push_str("<h2>Findings</h2>\n");
    if findings == 0 {
        out.push_str("<p>None.</p>\n");
    }
    let mut anchored: Vec<&str> = Vec::new();
    for (case, f) in report.findings() {
        let id_attr = if anchored.contains(&case.id.as_str()) {
            String::new()
        } else {
            anchored.push(&case.id);
            format!(" id=\"case-{}\"", anchor(&case.id))
        };
        finding(&mut out, &id_attr, case, f);
    }
    out.push_str("</main>\n<footer>Credentials are redacted in this report; the curl commands read your token from <code>$TENANTRY_TOKEN</code>.</footer>\n</body>\n</html>\n");
    out
}

fn finding(out: &mut String, id_attr: &str, case: &Case, f: &FindingRecord) {
    let e = escape;
    let class = match (case.status, f.known) {
        (Status::Waived, _) => "finding waived",
        (_, true) => "finding known",
        _ => "finding",
    };
    let _ = write!(
        out,
        "<section class=\"{class}\"{id_attr}>\n<h3><code>{}</code> {} {} {}</h3>\n<p>{}</p>\n<dl class=\"facts\">\n",
        e(&case.id),
        e(&case.title),
        severity_badge(case.severity),
        status_badge(case.status),
        e(&f.message)
    );
    if let Some(endpoint) = &f.endpoint {
        let _ = writeln!(out, "<dt>Endpoint</dt><dd><code>{}</code></dd>", e(endpoint));
    }
    let _ = writeln!(out, "<dt>CWE</dt><dd>{}</dd>", cwe_link(case.cwe));
    let _ = writeln!(
        out,
        "<dt>Fingerprint</dt><dd><code>{}</code></dd>",
        e(&f.fingerprint)
    );
    if f.known {
        out.push_str("<dt>Baseline</dt><dd>known from the baseline (does not fail the gate)</dd>\n");
    }
    if let (Status::Waived, Some(w)) = (case.status, &case.waiver) {
        let until = w
            .expires
            .as_deref()
            .map(|d| format!(", until {}", e(d)))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "<dt>Waived</dt><dd>{} <span class=\"muted\">(waiver <code>{}</code>{until})</span></dd>",
            e(&w.reason),
            e(&w.pattern)
        );
    }
    if let Some(repro) = &f.reproduction {
        let _ = writeln!(out, "<dt>Reproduction</dt><dd><code>{}</code></dd>", e(repro));
    }
    out.push_str("</dl>\n");
    for (i, transcript) in f.evidence.iter().enumerate() {
        let (request, response) = match transcript.split_once("\n--> ") {
            Some((req, resp)) => (req.to_string(), format!("--> {resp}")),
            None => (transcript.clone(), String::new()),
        };
        let _ = write!(
            out,
            "<details{}>\n<summary>Evidence {}</summary>\n<div class=\"exchange\">\n<div><h4>Request</h4><pre>{}</pre></div>\n<div><h4>Response (excerpt)</h4><pre>{}</pre></div>\n</div>\n</details>\n",
            if i == 0 { " open" } else { "" },
            i + 1,
            e(request.trim_end()),
            e(response.trim_end())
        );
    }
    if let Some(curl) = &f.curl {
        let _ = write!(
            out,
            "<h4>Reproduce</h4>\n<pre>export TENANTRY_TOKEN=…   # a session token of the acting user\n{}</pre>\n",
            e(curl)
        );
    }
    let _ = write!(
        out,
        "<h4>Remediation</h4>\n<p>{}</p>\n</section>\n",
        e(&f.remediation)
    );
}

fn severity_badge(s: Severity) -> String {
    format!("<span class=\"badge sev-{0}\">{0}</span>", s.name())
}

fn status_badge(s: Status) -> String {
    format!("<span class=\"badge st-{s}\">{s}</span>")
}

fn cwe_link(cwe: Option<u32>) -> String {
    match cwe {
        Some(n) => format!("<a href=\"https://cwe.mitre.org/data/definitions/{n}.html\">CWE-{n}</a>"),
        None => "—".into(),
    }
}

fn family_title(code: &str) -> Option<&'static str> {
    crate::checks::FAMILIES
        .iter()
        .find(|f| f.code == code)
        .map(|f| f.title)
}

/// An id usable in an `id` attribute and a fragment.
fn anchor(id: &str) -> String {
    id.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn capitalise(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}
