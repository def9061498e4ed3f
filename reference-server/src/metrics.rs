//! A few counters, served at `/metrics` in the Prometheus text format.

use std::collections::BTreeMap;
use std::sync::Mutex;

/// Distinct template names counted before the rest fall under `_other`
/// (the name comes from the request path; labels must stay bounded).
pub const MAX_TEMPLATE_LABELS: usize = 100;

/// The process's counters.
#[derive(Debug, Default)]
pub struct Metrics {
    template_fallbacks: Mutex<BTreeMap<String, u64>>,
}

impl Metrics {
    /// Counts one template-token fallback for `template`.
    pub fn template_fallback(&self, template: &str) {
        let mut map = self
            .template_fallbacks
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let well_formed = !template.is_empty()
            && template.len() <= 64
            && template
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        let key = if well_formed && (map.contains_key(template) || map.len() < MAX_TEMPLATE_LABELS) {
            template.to_string()
        } else {
            "_other".to_string()
        };
        *map.entry(key).or_default() += 1;
    }

    /// Fallbacks counted for `template`.
    pub fn template_fallbacks(&self, template: &str) -> u64 {
        self.template_fallbacks
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(template)
            .copied()
            .unwrap_or(0)
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let map = self
            .template_fallbacks
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut out = String::from(
            "# HELP tenantry_template_fallback_total Template-token requests answered with the session token instead.\n\
             # TYPE tenantry_template_fallback_total counter\n",
        );
        for (template, count) in map.iter() {
            out.push_str(&format!(
                "tenantry_template_fallback_total{{template=\"{template}\"}} {count}\n"
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_bounded_and_escaped_by_construction() {
        let m = Metrics::default();
        m.template_fallback("api");
        m.template_fallback("api");
        m.template_fallback("bad\"name");
        for i in 0..200 {
            m.template_fallback(&format!("t{i}"));
        }
        assert_eq!(m.template_fallbacks("api"), 2);
        assert!(m.template_fallbacks("_other") >= 100);
        let text = m.render();
        assert!(text.contains("tenantry_template_fallback_total{template=\"api\"} 2\n"));
        assert!(!text.contains("bad\""));
        assert!(text.lines().count() <= MAX_TEMPLATE_LABELS + 3);
    }
}
