//! JUnit XML (for CI test reports): one test suite per check family, one
//! test case per check or scenario; findings are failures whose text carries
//! the evidence, waived cases are skipped with the waiver's reason.

use quick_junit::{NonSuccessKind, Property, TestCase, TestCaseStatus, TestSuite};

use super::{summary, RunReport, Status};

/// The report as JUnit XML.
pub fn render(report: &RunReport) -> String {
    let mut junit = quick_junit::Report::new(format!("tenantry {}", report.kind.cases_noun()));
    junit.set_time(report.elapsed());
    let mut families: Vec<&str> = Vec::new();
    for case in &report.cases {
        if !families.contains(&case.family.as_str()) {
            families.push(&case.family);
        }
    }
    for family in families {
        let mut suite = TestSuite::new(format!("tenantry.{family}"));
        suite.add_properties([
            Property::new("target", report.target.name.as_str()),
            Property::new("base_url", report.target.base_url.as_str()),
            Property::new("seed", report.seed.as_str()),
        ]);
        for case in report.cases.iter().filter(|c| c.family == family) {
            let status = match case.status {
                Status::Passed => TestCaseStatus::success(),
                Status::Failed => {
                    let mut status = TestCaseStatus::non_success(NonSuccessKind::Failure);
                    let first = case.findings.first().map_or("", |f| f.message.as_str());
                    let more = match case.findings.len() {
                        0 | 1 => String::new(),
                        n => format!(" (and {} more)", n - 1),
                    };
                    status
                        .set_message(format!("{first}{more}"))
                        .set_type(case.severity.name())
                        .set_description(details(case));
                    status
                }
                Status::Waived => {
                    let mut status = TestCaseStatus::skipped();
                    let note = case.waiver.as_ref();
                    status
                        .set_message(format!(
                            "waived: {}{}",
                            note.map_or("", |w| w.reason.as_str()),
                            note.and_then(|w| w.expires.as_deref())
                                .map(|d| format!(" (until {d})"))
                                .unwrap_or_default()
                        ))
                        .set_type("waived")
                        .set_description(details(case));
                    status
                }
            };
            let mut test = TestCase::new(format!("{} {}", case.id, case.title), status);
            test.set_classname(format!("tenantry.{family}"));
            suite.add_test_case(test);
        }
        junit.add_test_suite(suite);
    }
    junit.to_string().unwrap_or_else(|e| {
        // XmlString drops characters XML cannot carry, so writing to a
        // String cannot fail.
        unreachable!("JUnit serialisation failed: {e}")
    })
}

/// Every finding of a case as plain text.
fn details(case: &super::Case) -> String {
    case.findings
        .iter()
        .map(|f| summary::finding_text(case, f))
        .collect::<Vec<_>>()
        .join("\n\n")
}
