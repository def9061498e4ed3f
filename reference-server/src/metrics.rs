//! A few counters, served at `/metrics` in the Prometheus text format.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Distinct template names counted before the rest fall under `_other`
/// (the name comes from the request path; labels must stay bounded).
pub const MAX_TEMPLATE_LABELS: usize = 100;

/// Upper bounds (µs) of the decision-latency histogram buckets.
pub const LATENCY_BUCKETS_US: [u64; 10] = [
    100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000,
];

/// One rate-limit policy's counters (registered at startup, so labels are
/// bounded by the route table).
#[derive(Debug, Default)]
pub struct PolicyStats {
    name: String,
    allowed: AtomicU64,
    limited: AtomicU64,
    bypassed: AtomicU64,
    failed_open: AtomicU64,
    failed_closed: AtomicU64,
    store_errors: AtomicU64,
    buckets: [AtomicU64; LATENCY_BUCKETS_US.len()],
    latency_count: AtomicU64,
    latency_sum_us: AtomicU64,
}

impl PolicyStats {
    /// Counts an admission.
    pub fn allowed(&self) {
        self.allowed.fetch_add(1, Ordering::Relaxed);
    }
    /// Counts a refusal.
    pub fn limited(&self) {
        self.limited.fetch_add(1, Ordering::Relaxed);
    }
    /// Counts a bypass.
    pub fn bypassed(&self) {
        self.bypassed.fetch_add(1, Ordering::Relaxed);
    }
    /// Counts a fail-open decision.
    pub fn failed_open(&self) {
        self.failed_open.fetch_add(1, Ordering::Relaxed);
    }
    /// Counts a fail-closed decision.
    pub fn failed_closed(&self) {
        self.failed_closed.fetch_add(1, Ordering::Relaxed);
    }
    /// Counts a store error or timeout.
    pub fn store_error(&self) {
        self.store_errors.fetch_add(1, Ordering::Relaxed);
    }
    /// Records one store decision's latency.
    pub fn latency(&self, elapsed: Duration) {
        let us = elapsed.as_micros() as u64;
        for (bound, bucket) in LATENCY_BUCKETS_US.iter().zip(&self.buckets) {
            if us <= *bound {
                bucket.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.latency_count.fetch_add(1, Ordering::Relaxed);
        self.latency_sum_us.fetch_add(us, Ordering::Relaxed);
    }
    /// Counts by outcome: (allowed, limited, bypassed, failed_open, failed_closed, store_errors).
    pub fn counts(&self) -> [u64; 6] {
        [
            self.allowed.load(Ordering::Relaxed),
            self.limited.load(Ordering::Relaxed),
            self.bypassed.load(Ordering::Relaxed),
            self.failed_open.load(Ordering::Relaxed),
            self.failed_closed.load(Ordering::Relaxed),
            self.store_errors.load(Ordering::Relaxed),
        ]
    }
}

/// The process's counters.
#[derive(Debug, Default)]
pub struct Metrics {
    template_fallbacks: Mutex<BTreeMap<String, u64>>,
    policies: Mutex<Vec<Arc<PolicyStats>>>,
    circuits: Mutex<Vec<Arc<crate::circuit::Breaker>>>,
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

    /// The counters of rate-limit policy `name` (created on first use).
    pub fn register_policy(&self, name: &str) -> Arc<PolicyStats> {
        let mut policies = self.policies.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(existing) = policies.iter().find(|p| p.name == name) {
            return Arc::clone(existing);
        }
        let stats = Arc::new(PolicyStats {
            name: name.to_string(),
            ..PolicyStats::default()
        });
        policies.push(Arc::clone(&stats));
        stats
    }

    /// Serves `breaker`'s state and counters.
    pub fn register_circuit(&self, breaker: Arc<crate::circuit::Breaker>) {
        self.circuits
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(breaker);
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
        drop(map);
        let policies = self.policies.lock().unwrap_or_else(|p| p.into_inner());
        out.push_str(
            "# HELP tenantry_ratelimit_decisions_total Rate-limit decisions by policy and outcome.\n\
             # TYPE tenantry_ratelimit_decisions_total counter\n",
        );
        for p in policies.iter() {
            let [allowed, limited, bypassed, open, closed, _] = p.counts();
            for (outcome, n) in [
                ("allowed", allowed),
                ("limited", limited),
                ("bypassed", bypassed),
                ("failed_open", open),
                ("failed_closed", closed),
            ] {
                out.push_str(&format!(
                    "tenantry_ratelimit_decisions_total{{policy=\"{}\",outcome=\"{outcome}\"}} {n}\n",
                    p.name
                ));
            }
        }
        out.push_str(
            "# HELP tenantry_ratelimit_store_errors_total Store calls that failed or timed out.\n\
             # TYPE tenantry_ratelimit_store_errors_total counter\n",
        );
        for p in policies.iter() {
            out.push_str(&format!(
                "tenantry_ratelimit_store_errors_total{{policy=\"{}\"}} {}\n",
                p.name,
                p.counts()[5]
            ));
        }
        out.push_str(
            "# HELP tenantry_ratelimit_decision_seconds Time for one store decision.\n\
             # TYPE tenantry_ratelimit_decision_seconds histogram\n",
        );
        for p in policies.iter() {
            for (bound, bucket) in LATENCY_BUCKETS_US.iter().zip(&p.buckets) {
                out.push_str(&format!(
                    "tenantry_ratelimit_decision_seconds_bucket{{policy=\"{}\",le=\"{}\"}} {}\n",
                    p.name,
                    *bound as f64 / 1e6,
                    bucket.load(Ordering::Relaxed)
                ));
            }
            let count = p.latency_count.load(Ordering::Relaxed);
            out.push_str(&format!(
                "tenantry_ratelimit_decision_seconds_bucket{{policy=\"{}\",le=\"+Inf\"}} {count}\n",
                p.name
            ));
            out.push_str(&format!(
                "tenantry_ratelimit_decision_seconds_sum{{policy=\"{}\"}} {}\n",
                p.name,
                p.latency_sum_us.load(Ordering::Relaxed) as f64 / 1e6
            ));
            out.push_str(&format!(
                "tenantry_ratelimit_decision_seconds_count{{policy=\"{}\"}} {count}\n",
                p.name
            ));
        }
        drop(policies);
        self.render_circuits(&mut out);
        out
    }

    fn render_circuits(&self, out: &mut String) {
        let circuits = self.circuits.lock().unwrap_or_else(|p| p.into_inner());
        out.push_str(
            "# HELP tenantry_circuit_state Circuit breaker state by dependency: 0 closed, 1 open, 2 half-open.\n\
             # TYPE tenantry_circuit_state gauge\n",
        );
        for b in circuits.iter() {
            out.push_str(&format!(
                "tenantry_circuit_state{{dependency=\"{}\"}} {}\n",
                b.dependency(),
                b.state().gauge()
            ));
        }
        let [attempts, failures, refused, opened] = [0, 1, 2, 3];
        for (name, help, index) in [
            (
                "tenantry_circuit_attempts_total",
                "Calls let through to the dependency (connection attempts for pools, decisions for the limiter's store).",
                attempts,
            ),
            ("tenantry_circuit_failures_total", "Calls that failed.", failures),
            (
                "tenantry_circuit_refused_total",
                "Calls answered at once because the circuit was open.",
                refused,
            ),
            ("tenantry_circuit_opened_total", "Times the circuit opened.", opened),
        ] {
            out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} counter\n"));
            for b in circuits.iter() {
                out.push_str(&format!(
                    "{name}{{dependency=\"{}\"}} {}\n",
                    b.dependency(),
                    b.counts()[index]
                ));
            }
        }
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
        let series = text
            .lines()
            .filter(|l| l.starts_with("tenantry_template_fallback_total{"))
            .count();
        assert!(series <= MAX_TEMPLATE_LABELS + 1, "{series}");
    }
}
