//! Waivers: a TOML file listing check-id globs (or scenario ids) with the
//! written reason each is accepted for now, as rustls's BoGo config lists its
//! disabled tests. A waived case is reported as waived in every format —
//! never hidden — and does not fail the gate; an expired waiver waives
//! nothing and fails the gate itself.
//!
//! ```toml
//! [[waiver]]
//! checks = "RL-01*"          # check-id glob, a family, or a scenario id
//! reason = "limiter moves to Redis in Q1; tracked in SEC-123"
//! expires = 2027-03-31       # optional: last day it is in force
//! ```

use std::fmt;
use std::path::Path;

use serde::Deserialize;
use toml::Spanned;

use super::{Case, RunReport, Status, WaiverNote};

/// The default waiver file, read from the working directory when present.
pub const DEFAULT_FILE: &str = "tenantry.waivers.toml";

/// A civil date (UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Date {
    /// Year.
    pub year: i32,
    /// Month, 1..=12.
    pub month: u8,
    /// Day, 1..=31.
    pub day: u8,
}

impl Date {
    /// Today's date (UTC) from the system clock.
    pub fn today() -> Self {
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        Self::from_unix_days((secs / 86_400) as i64)
    }

    /// The date `days` after 1970-01-01 (Howard Hinnant's `civil_from_days`).
    pub fn from_unix_days(days: i64) -> Self {
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = (doy - (153 * mp + 2) / 5 + 1) as u8;
        let month = if mp < 10 { mp + 3 } else { mp - 9 } as u8;
        let year = (yoe + era * 400 + i64::from(month <= 2)) as i32;
        Self { year, month, day }
    }
}

impl fmt::Display for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

/// One waiver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Waiver {
    /// Check-id glob (`*`, `?`), family code, or scenario id.
    pub checks: String,
    /// Why it is accepted for now.
    pub reason: String,
    /// Last day it is in force.
    pub expires: Option<Date>,
    /// Where it is written (`file:line`), for messages.
    pub origin: String,
}

impl Waiver {
    /// Whether it covers `case` (by id, glob over the id, or family).
    pub fn covers(&self, case: &Case) -> bool {
        let pattern = self.checks.as_str();
        glob(pattern, &case.id) || pattern.eq_ignore_ascii_case(&case.family)
    }

    /// Whether it has expired by `today` (it is in force through its date).
    pub fn expired(&self, today: Date) -> bool {
        self.expires.is_some_and(|e| e < today)
    }
}

/// A waiver file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Waivers {
    /// The file it was read from.
    pub file: String,
    /// Its waivers, in order.
    pub waivers: Vec<Waiver>,
}

/// A waiver file that cannot be used: where and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}:{column}: {message}")]
pub struct WaiverError {
    /// The file.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column (in characters).
    pub column: usize,
    /// What is wrong and what is expected.
    pub message: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    waiver: Vec<Spanned<RawWaiver>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWaiver {
    checks: Spanned<String>,
    reason: Option<Spanned<String>>,
    expires: Option<Spanned<toml::value::Datetime>>,
}

impl Waivers {
    /// Reads a waiver file.
    pub fn load(path: &Path) -> Result<Self, WaiverError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| WaiverError {
            file: file.clone(),
            line: 1,
            column: 1,
            message: format!("cannot read the waiver file: {e}"),
        })?;
        Self::parse(&file, &text)
    }

    /// Parses waiver file `text` (named `file` in errors).
    pub fn parse(file: &str, text: &str) -> Result<Self, WaiverError> {
        let at = |span: std::ops::Range<usize>, message: String| {
            let (line, column) = position(text, span.start);
            WaiverError {
                file: file.to_string(),
                line,
                column,
                message,
            }
        };
        // toml's messages name the unknown key and the expected ones.
        let raw: RawFile = toml::from_str(text)
            .map_err(|e| at(e.span().unwrap_or(0..0), e.message().trim_end().to_string()))?;
        let mut waivers = Vec::new();
        for entry in raw.waiver {
            let span = entry.span();
            let w = entry.into_inner();
            let checks = w.checks.get_ref().trim().to_string();
            if checks.is_empty() {
                return Err(at(
                    w.checks.span(),
                    "`checks` is empty; expected a check-id glob (`RL-01*`), a family (`RL`) or a scenario id".into(),
                ));
            }
            let no_reason = || {
                let message = format!(
                    "the waiver of `{checks}` has no `reason`; every waiver must say why it is accepted"
                );
                at(span.clone(), message)
            };
            let reason = match &w.reason {
                None => return Err(no_reason()),
                Some(r) if r.get_ref().trim().is_empty() => {
                    return Err(at(
                        r.span(),
                        format!("the waiver of `{checks}` has an empty `reason`; say why it is accepted"),
                    ))
                }
                Some(r) => r.get_ref().trim().to_string(),
            };
            let expires = match &w.expires {
                None => None,
                Some(d) => match (d.get_ref().date, d.get_ref().time) {
                    (Some(date), None) => Some(Date {
                        year: i32::from(date.year),
                        month: date.month,
                        day: date.day,
                    }),
                    _ => {
                        return Err(at(
                            d.span(),
                            format!(
                                "`expires` must be a date without a time (e.g. 2027-03-31), not `{}`",
                                d.get_ref()
                            ),
                        ))
                    }
                },
            };
            let (line, _) = position(text, w.checks.span().start);
            waivers.push(Waiver {
                checks,
                reason,
                expires,
                origin: format!("{file}:{line}"),
            });
        }
        Ok(Self {
            file: file.to_string(),
            waivers,
        })
    }

    /// Waives every failed case of `report` that a waiver in force covers
    /// (the first such waiver). Returns what it did, including every expired
    /// waiver (which waives nothing).
    pub fn apply(&self, report: &mut RunReport, today: Date) -> Applied {
        let mut applied = Applied::default();
        for w in &self.waivers {
            if w.expired(today) {
                applied.expired.push(w.clone());
            }
        }
        let mut used = vec![false; self.waivers.len()];
        for case in &mut report.cases {
            if case.status != Status::Failed {
                continue;
            }
            let found = self
                .waivers
                .iter()
                .enumerate()
                .find(|(_, w)| !w.expired(today) && w.covers(case));
            if let Some((i, w)) = found {
                used[i] = true;
                case.status = Status::Waived;
                case.waiver = Some(WaiverNote {
                    pattern: w.checks.clone(),
                    reason: w.reason.clone(),
                    expires: w.expires.map(|d| d.to_string()),
                });
                applied.waived += case.findings.len();
            }
        }
        applied.unused = self
            .waivers
            .iter()
            .zip(used)
            .filter(|(w, used)| !used && !w.expired(today))
            .map(|(w, _)| w.clone())
            .collect();
        applied
    }
}

/// What applying waivers did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Applied {
    /// Findings waived.
    pub waived: usize,
    /// Expired waivers: they waive nothing and fail the gate.
    pub expired: Vec<Waiver>,
    /// Waivers in force that matched no failed case (candidates for removal).
    pub unused: Vec<Waiver>,
}

/// `*` (any run) and `?` (any one character) glob, ASCII case-insensitive.
pub fn glob(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().map(|c| c.to_ascii_lowercase()).collect();
    let t: Vec<char> = text.chars().map(|c| c.to_ascii_lowercase()).collect();
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// 1-based (line, column) of byte `offset` in `text`.
fn position(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        assert_eq!(Date::from_unix_days(0).to_string(), "1970-01-01");
        assert_eq!(Date::from_unix_days(19_782).to_string(), "2024-02-29");
        assert_eq!(Date::from_unix_days(20_543).to_string(), "2026-03-31");
        assert_eq!(Date::from_unix_days(-1).to_string(), "1969-12-31");
    }

    #[test]
    fn globs() {
        assert!(glob("RL-01*", "RL-012"));
        assert!(glob("rl-0?2", "RL-012"));
        assert!(glob("*", "anything"));
        assert!(!glob("RL-01*", "RL-002"));
        assert!(glob("iso-001-cross-org-read", "iso-001-cross-org-read"));
    }
}
