//! The gate: the exit code of a run from its report. Exit 1 when a finding
//! at or above the threshold is neither waived nor known from the baseline,
//! or when a waiver has expired; else 0. (Exit 2, could not run, is decided
//! before there is a report.)

use super::waivers::Waiver;
use super::{RunReport, Status};
use crate::checks::Severity;

/// What the gate decided, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// The threshold.
    pub fail_on: Severity,
    /// Findings that fail the gate: at or above the threshold, not waived,
    /// not in the baseline.
    pub failing: usize,
    /// Findings below the threshold (not waived, not known).
    pub below: usize,
    /// Findings known from the baseline.
    pub known: usize,
    /// Findings waived.
    pub waived: usize,
    /// Expired waivers (each fails the gate).
    pub expired: Vec<Waiver>,
}

impl Verdict {
    /// 0 pass, 1 fail.
    pub fn exit_code(&self) -> u8 {
        u8::from(self.failing > 0 || !self.expired.is_empty())
    }

    /// One line per reason the gate fails, then the verdict.
    pub fn lines(&self) -> Vec<String> {
        let mut out = Vec::new();
        for w in &self.expired {
            out.push(format!(
                "expired waiver: `{}` ({}) expired on {}; it waives nothing and fails the gate (reason was: {})",
                w.checks,
                w.origin,
                w.expires.map(|d| d.to_string()).unwrap_or_default(),
                w.reason
            ));
        }
        let mut notes = Vec::new();
        if self.waived > 0 {
            notes.push(format!("{} waived", self.waived));
        }
        if self.known > 0 {
            notes.push(format!("{} known from the baseline", self.known));
        }
        if self.below > 0 {
            notes.push(format!("{} below {}", self.below, self.fail_on));
        }
        let notes = if notes.is_empty() {
            String::new()
        } else {
            format!(" ({})", notes.join(", "))
        };
        let verdict = if self.exit_code() == 0 { "pass" } else { "FAIL" };
        out.push(format!(
            "gate: {verdict}: {} findings at or above {}{notes}; exit {}",
            self.failing,
            self.fail_on,
            self.exit_code()
        ));
        out
    }
}

/// The verdict on `report` (waivers and baseline already applied) at
/// threshold `fail_on`, with the `expired` waivers.
pub fn decide(report: &RunReport, fail_on: Severity, expired: &[Waiver]) -> Verdict {
    let mut v = Verdict {
        fail_on,
        failing: 0,
        below: 0,
        known: 0,
        waived: 0,
        expired: expired.to_vec(),
    };
    for (case, f) in report.findings() {
        if case.status == Status::Waived {
            v.waived += 1;
        } else if f.known {
            v.known += 1;
        } else if case.severity >= fail_on {
            v.failing += 1;
        } else {
            v.below += 1;
        }
    }
    v
}
