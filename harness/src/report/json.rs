//! The JSON format: [`RunReport`] as is (schema `tenantry.report/1`). It is
//! also what `--baseline` reads back.

use super::RunReport;

/// The report as pretty-printed JSON, ending with a newline.
pub fn render(report: &RunReport) -> String {
    let mut text = serde_json::to_string_pretty(report).unwrap_or_else(|e| {
        // Only maps with non-string keys fail to serialise; the model has none.
        unreachable!("a report always serialises: {e}")
    });
    text.push('\n');
    text
}
