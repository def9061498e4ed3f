//! A baseline: a previous `tenantry.report/1` JSON report. Findings whose
//! fingerprint it holds are known — reported, marked, but they do not fail
//! the gate — so a team can adopt the gate before fixing every old finding.

use std::collections::BTreeSet;
use std::path::Path;

use super::{RunReport, SCHEMA};

/// The fingerprints of a previous report.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Baseline {
    /// The file it was read from.
    pub file: String,
    /// Fingerprints of every finding in it (any status).
    pub fingerprints: BTreeSet<String>,
}

/// A baseline file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum BaselineError {
    /// It could not be read.
    #[error("{file}: cannot read the baseline: {source}")]
    Read {
        /// The file.
        file: String,
        /// Cause.
        source: std::io::Error,
    },
    /// It is not JSON of schema `tenantry.report/1`.
    #[error("{file}: not a tenantry.report/1 JSON report (write one with --report json): {detail}")]
    Format {
        /// The file.
        file: String,
        /// What is wrong.
        detail: String,
    },
}

impl Baseline {
    /// Reads a baseline report.
    pub fn load(path: &Path) -> Result<Self, BaselineError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| BaselineError::Read {
            file: file.clone(),
            source,
        })?;
        Self::parse(&file, &text)
    }

    /// Parses baseline report `text` (named `file` in errors).
    pub fn parse(file: &str, text: &str) -> Result<Self, BaselineError> {
        let format = |detail: String| BaselineError::Format {
            file: file.to_string(),
            detail,
        };
        let value: serde_json::Value = serde_json::from_str(text)
            .map_err(|e| format(format!("line {} column {}: {e}", e.line(), e.column())))?;
        let schema = value.get("schema").and_then(|s| s.as_str()).unwrap_or("(none)");
        if schema != SCHEMA {
            return Err(format(format!("its schema is `{schema}`")));
        }
        let report: RunReport = serde_json::from_value(value).map_err(|e| format(e.to_string()))?;
        Ok(Self {
            file: file.to_string(),
            fingerprints: report.findings().map(|(_, f)| f.fingerprint.clone()).collect(),
        })
    }

    /// Marks every finding of `report` whose fingerprint is known; returns
    /// how many.
    pub fn apply(&self, report: &mut RunReport) -> usize {
        let mut known = 0;
        for case in &mut report.cases {
            for f in &mut case.findings {
                f.known = self.fingerprints.contains(&f.fingerprint);
                known += usize::from(f.known);
            }
        }
        known
    }
}
