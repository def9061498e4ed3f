//! The scorecard: per flaw caught or missed (and by which checks), per
//! family the true-positive rate, the false-positive rate on the clean stack,
//! and Youden's J (TPR − FPR) overall and averaged over families, as the
//! OWASP Benchmark scores tools. Rendered as text, JSON and Markdown.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

/// One flaw of the corpus, as the manifest describes it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct FlawInfo {
    /// `--inject` name.
    pub name: String,
    /// The check family meant to catch it.
    pub family: String,
    /// CWE number.
    pub cwe: u32,
    /// One line on the mistake.
    pub description: String,
    /// The checks that must report it.
    pub expected_checks: Vec<String>,
}

/// What one tool did on one run of the stack.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Verdict {
    /// It reported a finding (for a flaw: one of the expected checks, for
    /// tenantry; any finding, for a tool that only answers yes or no).
    pub flagged: bool,
    /// Check ids it reported (tenantry only).
    pub checks: Vec<String>,
    /// Families of the checks it reported (tenantry only).
    pub families: Vec<String>,
    /// Wall time, seconds.
    pub seconds: f64,
    /// Why the run did not complete (counted as not flagged).
    pub error: Option<String>,
    /// On a clean stack: what the false alarms said (the first few).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// One flaw's results.
#[derive(Debug, Clone, Serialize)]
pub struct FlawRow {
    /// The flaw.
    pub flaw: FlawInfo,
    /// By tool name.
    pub results: BTreeMap<String, Verdict>,
}

/// One clean-stack run's results.
#[derive(Debug, Clone, Serialize)]
pub struct CleanRow {
    /// The seed (and the run's label).
    pub seed: u64,
    /// By tool name.
    pub results: BTreeMap<String, Verdict>,
}

/// Rates of one tool, overall or for one family.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct Rates {
    /// Flaws caught.
    pub caught: usize,
    /// Flaws run.
    pub flaws: usize,
    /// Clean runs with a (false) finding.
    pub false_alarms: usize,
    /// Clean runs.
    pub clean_runs: usize,
    /// True-positive rate.
    pub tpr: f64,
    /// False-positive rate.
    pub fpr: f64,
    /// Youden's J = TPR − FPR.
    pub j: f64,
}

impl Rates {
    fn new(caught: usize, flaws: usize, false_alarms: usize, clean_runs: usize) -> Self {
        let tpr = ratio(caught, flaws);
        let fpr = ratio(false_alarms, clean_runs);
        Self {
            caught,
            flaws,
            false_alarms,
            clean_runs,
            tpr,
            fpr,
            j: tpr - fpr,
        }
    }
}

fn ratio(n: usize, d: usize) -> f64 {
    if d == 0 {
        0.0
    } else {
        n as f64 / d as f64
    }
}

/// A tool's summary.
#[derive(Debug, Clone, Serialize)]
pub struct ToolSummary {
    /// Over every flaw and clean run.
    pub overall: Rates,
    /// Per family (FPR per family: clean runs with a finding of that
    /// family; a tool that does not say which checks fired counts every
    /// false alarm in every family).
    pub families: BTreeMap<String, Rates>,
    /// Youden's J averaged over families.
    pub mean_family_j: f64,
    /// Runs that did not complete.
    pub errors: usize,
}

/// The whole scorecard.
#[derive(Debug, Clone, Serialize)]
pub struct Scorecard {
    /// `tenantry.score/1`.
    pub schema: &'static str,
    /// Tools in column order (tenantry first).
    pub tools: Vec<String>,
    /// Fast mode: each flaw audited with its own family's checks only.
    pub fast: bool,
    /// Per flaw.
    pub flaws: Vec<FlawRow>,
    /// Per clean run.
    pub clean: Vec<CleanRow>,
    /// Per tool.
    pub summary: BTreeMap<String, ToolSummary>,
    /// Wall time of the whole score, seconds.
    pub wall_seconds: f64,
}

impl Scorecard {
    /// The scorecard of these runs (summaries computed here).
    pub fn new(
        tools: Vec<String>,
        fast: bool,
        flaws: Vec<FlawRow>,
        clean: Vec<CleanRow>,
        wall_seconds: f64,
    ) -> Self {
        let mut summary = BTreeMap::new();
        for tool in &tools {
            summary.insert(tool.clone(), summarize(tool, &flaws, &clean));
        }
        Self {
            schema: "tenantry.score/1",
            tools,
            fast,
            flaws,
            clean,
            summary,
            wall_seconds,
        }
    }

    /// Whether `tool` caught every flaw and raised no false alarm, every
    /// run completing.
    pub fn perfect(&self, tool: &str) -> bool {
        self.summary.get(tool).is_some_and(|s| {
            s.errors == 0 && s.overall.caught == s.overall.flaws && s.overall.false_alarms == 0
        })
    }

    /// The scorecard as text (for the terminal).
    pub fn text(&self) -> String {
        let mut out = String::new();
        let _ = write!(out, "{:<32} {:<6} {:>4}", "FLAW", "FAMILY", "CWE");
        for tool in &self.tools {
            let _ = write!(out, "  {:<28}", tool);
        }
        out.push('\n');
        for row in &self.flaws {
            let _ = write!(
                out,
                "{:<32} {:<6} {:>4}",
                row.flaw.name, row.flaw.family, row.flaw.cwe
            );
            for tool in &self.tools {
                let _ = write!(out, "  {:<28}", cell(row.results.get(tool)));
            }
            out.push('\n');
        }
        out.push('\n');
        for row in &self.clean {
            let _ = write!(
                out,
                "{:<32} {:<6} {:>4}",
                format!("clean stack, seed {}", row.seed),
                "-",
                "-"
            );
            for tool in &self.tools {
                let _ = write!(out, "  {:<28}", clean_cell(row.results.get(tool)));
            }
            out.push('\n');
        }
        out.push('\n');
        let _ = writeln!(
            out,
            "{:<14} {:>8} {:>7} {:>7} {:>6} {:>8} {:>7}",
            "TOOL", "FAMILY", "CAUGHT", "TPR", "FPR", "J", "ERRORS"
        );
        for tool in &self.tools {
            let s = &self.summary[tool];
            for (family, r) in &s.families {
                let _ = writeln!(
                    out,
                    "{:<14} {:>8} {:>7} {:>7} {:>6} {:>8.2} {:>7}",
                    tool,
                    family,
                    format!("{}/{}", r.caught, r.flaws),
                    percent(r.tpr),
                    percent(r.fpr),
                    r.j,
                    ""
                );
            }
            let r = &s.overall;
            let _ = writeln!(
                out,
                "{:<14} {:>8} {:>7} {:>7} {:>6} {:>8.2} {:>7}",
                tool,
                "ALL",
                format!("{}/{}", r.caught, r.flaws),
                percent(r.tpr),
                percent(r.fpr),
                r.j,
                s.errors
            );
            let _ = writeln!(
                out,
                "{tool}: TPR {}, FPR {} ({} of {} clean runs flagged), Youden's J {:.2}, mean J over families {:.2}",
                percent(r.tpr),
                percent(r.fpr),
                r.false_alarms,
                r.clean_runs,
                r.j,
                s.mean_family_j
            );
        }
        let _ = writeln!(
            out,
            "{} flaws, {} clean runs{}, in {:.0} s",
            self.flaws.len(),
            self.clean.len(),
            if self.fast { " (fast mode)" } else { "" },
            self.wall_seconds
        );
        out
    }

    /// The scorecard as Markdown.
    pub fn markdown(&self) -> String {
        let mut out = String::from("# tenantry scorecard\n\n");
        let _ = writeln!(
            out,
            "{} flaws of the reference stack's corpus, {} clean-stack runs{}; wall time {:.0} s.\n",
            self.flaws.len(),
            self.clean.len(),
            if self.fast {
                " (fast mode: each flaw audited with its family's checks)"
            } else {
                ""
            },
            self.wall_seconds
        );
        out.push_str(
            "| tool | TPR | FPR | Youden's J | mean J over families | errors |\n|---|---|---|---|---|---|\n",
        );
        for tool in &self.tools {
            let s = &self.summary[tool];
            let _ = writeln!(
                out,
                "| {tool} | {} ({}/{}) | {} ({}/{}) | {:.2} | {:.2} | {} |",
                percent(s.overall.tpr),
                s.overall.caught,
                s.overall.flaws,
                percent(s.overall.fpr),
                s.overall.false_alarms,
                s.overall.clean_runs,
                s.overall.j,
                s.mean_family_j,
                s.errors
            );
        }
        out.push_str("\n## Per family\n\n| family |");
        for tool in &self.tools {
            let _ = write!(out, " {tool} TPR | {tool} FPR |");
        }
        out.push_str("\n|---|");
        for _ in &self.tools {
            out.push_str("---|---|");
        }
        out.push('\n');
        let families: Vec<&String> = self.summary[&self.tools[0]].families.keys().collect();
        for family in families {
            let _ = write!(out, "| {family} |");
            for tool in &self.tools {
                let r = &self.summary[tool].families[family];
                let _ = write!(
                    out,
                    " {} ({}/{}) | {} |",
                    percent(r.tpr),
                    r.caught,
                    r.flaws,
                    percent(r.fpr)
                );
            }
            out.push('\n');
        }
        out.push_str("\n## Per flaw\n\n| flaw | family | CWE |");
        for tool in &self.tools {
            let _ = write!(out, " {tool} |");
        }
        out.push_str("\n|---|---|---|");
        for _ in &self.tools {
            out.push_str("---|");
        }
        out.push('\n');
        for row in &self.flaws {
            let _ = write!(
                out,
                "| `{}` | {} | {} |",
                row.flaw.name, row.flaw.family, row.flaw.cwe
            );
            for tool in &self.tools {
                let _ = write!(out, " {} |", cell(row.results.get(tool)));
            }
            out.push('\n');
        }
        out.push_str("\n## Clean stack\n\n| run |");
        for tool in &self.tools {
            let _ = write!(out, " {tool} |");
        }
        out.push_str("\n|---|");
        for _ in &self.tools {
            out.push_str("---|");
        }
        out.push('\n');
        for row in &self.clean {
            let _ = write!(out, "| seed {} |", row.seed);
            for tool in &self.tools {
                let _ = write!(out, " {} |", clean_cell(row.results.get(tool)));
            }
            out.push('\n');
        }
        out
    }
}

fn percent(x: f64) -> String {
    format!("{:.0}%", x * 100.0)
}

fn cell(v: Option<&Verdict>) -> String {
    match v {
        None => "-".into(),
        Some(v) if v.error.is_some() => "error".into(),
        Some(v) if v.flagged && v.checks.is_empty() => "caught".into(),
        Some(v) if v.flagged => format!("caught ({})", v.checks.join(", ")),
        Some(_) => "MISSED".into(),
    }
}

fn clean_cell(v: Option<&Verdict>) -> String {
    match v {
        None => "-".into(),
        Some(v) if v.error.is_some() => "error".into(),
        Some(v) if v.flagged && v.checks.is_empty() => "FALSE ALARM".into(),
        Some(v) if v.flagged => format!("FALSE ALARM ({})", v.checks.join(", ")),
        Some(_) => "clean".into(),
    }
}

fn summarize(tool: &str, flaws: &[FlawRow], clean: &[CleanRow]) -> ToolSummary {
    let verdicts_of = |row: &FlawRow| row.results.get(tool).cloned();
    let caught = flaws
        .iter()
        .filter(|r| verdicts_of(r).is_some_and(|v| v.flagged && v.error.is_none()))
        .count();
    let clean_verdicts: Vec<Verdict> = clean
        .iter()
        .filter_map(|r| r.results.get(tool).cloned())
        .collect();
    let false_alarms = clean_verdicts.iter().filter(|v| v.flagged).count();
    let errors = flaws
        .iter()
        .filter_map(verdicts_of)
        .chain(clean_verdicts.iter().cloned())
        .filter(|v| v.error.is_some())
        .count();
    let mut families: BTreeMap<String, Rates> = BTreeMap::new();
    let mut names: Vec<&str> = flaws.iter().map(|r| r.flaw.family.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    for family in names {
        let rows: Vec<&FlawRow> = flaws.iter().filter(|r| r.flaw.family == family).collect();
        let caught = rows
            .iter()
            .filter(|r| verdicts_of(r).is_some_and(|v| v.flagged && v.error.is_none()))
            .count();
        let alarms = clean_verdicts
            .iter()
            .filter(|v| v.flagged && (v.families.is_empty() || v.families.iter().any(|f| f == family)))
            .count();
        families.insert(
            family.to_string(),
            Rates::new(caught, rows.len(), alarms, clean_verdicts.len()),
        );
    }
    let mean_family_j = if families.is_empty() {
        0.0
    } else {
        families.values().map(|r| r.j).sum::<f64>() / families.len() as f64
    };
    ToolSummary {
        overall: Rates::new(caught, flaws.len(), false_alarms, clean_verdicts.len()),
        families,
        mean_family_j,
        errors,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flaw(name: &str, family: &str) -> FlawInfo {
        FlawInfo {
            name: name.into(),
            family: family.into(),
            cwe: 639,
            description: "d".into(),
            expected_checks: vec![format!("{family}-001")],
        }
    }

    fn verdict(flagged: bool, families: &[&str]) -> Verdict {
        Verdict {
            flagged,
            checks: Vec::new(),
            families: families.iter().map(|f| f.to_string()).collect(),
            seconds: 1.0,
            error: None,
            notes: Vec::new(),
        }
    }

    #[test]
    fn rates_and_youden_j() {
        let rows = vec![
            FlawRow {
                flaw: flaw("a", "ISO"),
                results: [("t".to_string(), verdict(true, &["ISO"]))].into(),
            },
            FlawRow {
                flaw: flaw("b", "ISO"),
                results: [("t".to_string(), verdict(false, &[]))].into(),
            },
            FlawRow {
                flaw: flaw("c", "TOK"),
                results: [("t".to_string(), verdict(true, &["TOK"]))].into(),
            },
        ];
        let clean = vec![
            CleanRow {
                seed: 1,
                results: [("t".to_string(), verdict(true, &["TOK"]))].into(),
            },
            CleanRow {
                seed: 2,
                results: [("t".to_string(), verdict(false, &[]))].into(),
            },
        ];
        let card = Scorecard::new(vec!["t".into()], false, rows, clean, 1.0);
        let s = &card.summary["t"];
        assert_eq!((s.overall.caught, s.overall.flaws), (2, 3));
        assert!((s.overall.tpr - 2.0 / 3.0).abs() < 1e-9);
        assert!((s.overall.fpr - 0.5).abs() < 1e-9);
        assert!((s.overall.j - (2.0 / 3.0 - 0.5)).abs() < 1e-9);
        // The false alarm was a TOK finding: ISO's FPR is 0.
        assert_eq!(s.families["ISO"].false_alarms, 0);
        assert_eq!(s.families["TOK"].false_alarms, 1);
        assert!((s.families["ISO"].j - 0.5).abs() < 1e-9);
        assert!((s.families["TOK"].j - 0.5).abs() < 1e-9);
        assert!((s.mean_family_j - 0.5).abs() < 1e-9);
        assert!(!card.perfect("t"));
        assert!(card.text().contains("MISSED"), "{}", card.text());
        assert!(
            card.markdown().contains("| t | 67% (2/3) | 50% (1/2) | 0.17 |"),
            "{}",
            card.markdown()
        );
    }
}
