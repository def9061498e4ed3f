//! The run side by side: a table for the terminal (targets as columns),
//! the same as Markdown, the `tenantry.bench/1` JSON, and an SVG chart of
//! each target's latency by percentile (a standalone file, no script).

use std::collections::BTreeSet;
use std::fmt::Write as _;

use serde_json::{json, Value};

use super::histogram::Histogram;
use super::{BenchReport, TargetResult, SCHEMA, WRK_GOAL};

/// Percentiles reported, as (label, quantile).
pub const PERCENTILES: &[(&str, f64)] = &[("p50", 0.5), ("p90", 0.9), ("p99", 0.99)];

impl BenchReport {
    /// Rows of (metric, value per target).
    fn rows(&self) -> Vec<(String, Vec<String>)> {
        let t = &self.targets;
        let col = |f: &dyn Fn(&TargetResult) -> String| t.iter().map(f).collect::<Vec<_>>();
        let mut rows = vec![
            ("requests".to_string(), col(&|r| r.load.requests.to_string())),
            ("rps".to_string(), col(&|r| format!("{:.1}", r.load.rps()))),
        ];
        for (label, q) in PERCENTILES {
            rows.push((format!("{label} ms"), col(&|r| ms(r.load.latency.ms_at(*q)))));
        }
        rows.push((
            "max ms".into(),
            col(&|r| ms(r.load.latency.max_us() as f64 / 1000.0)),
        ));
        rows.push(("errors".into(), col(&|r| r.load.error_count().to_string())));
        let classes: BTreeSet<&String> = t.iter().flat_map(|r| r.load.errors.keys()).collect();
        for class in classes {
            rows.push((
                format!("  {class}"),
                col(&|r| r.load.errors.get(class).copied().unwrap_or(0).to_string()),
            ));
        }
        let mut policies: Vec<&String> = Vec::new();
        for r in t {
            for a in &r.rate_limit {
                if !policies.contains(&&a.policy) {
                    policies.push(&a.policy);
                }
            }
        }
        if policies.is_empty() {
            rows.push(("429 accuracy".into(), col(&|_| "-".into())));
        }
        for policy in policies {
            rows.push((
                format!("429 accuracy {policy}"),
                col(&|r| match r.rate_limit.iter().find(|a| &a.policy == policy) {
                    Some(a) if a.degraded > 0 => format!(
                        "{:.1}% ({}/{}, {} degraded)",
                        a.accuracy_pct, a.admitted, a.expected, a.degraded
                    ),
                    Some(a) => format!("{:.1}% ({}/{})", a.accuracy_pct, a.admitted, a.expected),
                    None => "-".into(),
                }),
            ));
        }
        rows
    }

    /// Lines after the table: notes and the wrk comparison.
    fn notes(&self) -> Vec<String> {
        let mut out = Vec::new();
        for r in &self.targets {
            if let Some(note) = &r.rate_limit_note {
                out.push(format!("{}: 429 accuracy: {note}", r.name));
            }
            if let Some(w) = &r.wrk {
                out.push(format!(
                    "harness vs wrk on {} of {} (c={}, {} s each): wrk {:.1} rps (p50 {} ms), harness {:.1} rps (p50 {} ms); ratio {:.2} (goal >= {WRK_GOAL:.2}{})",
                    w.endpoint,
                    r.name,
                    w.concurrency,
                    w.duration.as_secs(),
                    w.wrk.rps,
                    ms(w.wrk.p50_ms),
                    w.harness.rps(),
                    ms(w.harness.latency.ms_at(0.5)),
                    w.ratio(),
                    if w.ratio() >= WRK_GOAL { ", met" } else { ", MISSED" }
                ));
            }
        }
        out
    }

    /// The side-by-side table for a terminal.
    pub fn table(&self) -> String {
        let rows = self.rows();
        let names: Vec<&str> = self.targets.iter().map(|t| t.name.as_str()).collect();
        let first = rows.iter().map(|(l, _)| l.chars().count()).max().unwrap_or(0);
        let widths: Vec<usize> = names
            .iter()
            .enumerate()
            .map(|(i, n)| {
                rows.iter()
                    .map(|(_, v)| v[i].chars().count())
                    .chain([n.chars().count()])
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let mut out = String::new();
        let _ = write!(out, "{:first$}", "");
        for (n, w) in names.iter().zip(&widths) {
            let _ = write!(out, "  {n:>w$}");
        }
        out.push('\n');
        for (label, values) in &rows {
            let _ = write!(out, "{label:first$}");
            for (v, w) in values.iter().zip(&widths) {
                let _ = write!(out, "  {v:>w$}");
            }
            out.push('\n');
        }
        for note in self.notes() {
            out.push_str(&note);
            out.push('\n');
        }
        out
    }

    /// The same as a Markdown table.
    pub fn markdown(&self) -> String {
        let c = &self.config;
        let mut out = format!(
            "# tenantry bench\n\n{} workers, {} s measured after {} s warm-up, seed {}.\n\n| metric |",
            c.concurrency,
            secs(c.duration),
            secs(c.warmup),
            c.seed
        );
        for t in &self.targets {
            let _ = write!(out, " {} |", t.name.replace('|', "\\|"));
        }
        out.push_str("\n|---|");
        for _ in &self.targets {
            out.push_str("---:|");
        }
        out.push('\n');
        for (label, values) in self.rows() {
            let _ = write!(out, "| {} |", label.trim());
            for v in values {
                let _ = write!(out, " {v} |");
            }
            out.push('\n');
        }
        let notes = self.notes();
        if !notes.is_empty() {
            out.push('\n');
            for n in notes {
                let _ = writeln!(out, "- {n}");
            }
        }
        out
    }

    /// The `tenantry.bench/1` report.
    pub fn to_json(&self) -> Value {
        let c = &self.config;
        let targets: Vec<Value> = self.targets.iter().map(target_json).collect();
        let mut report = json!({
            "schema": SCHEMA,
            "config": {
                "concurrency": c.concurrency,
                "duration_s": secs(c.duration),
                "warmup_s": secs(c.warmup),
                "seed": c.seed,
                "endpoints": c.endpoints,
                "orgs": c.orgs,
                "items": c.items,
                "rate_limit_windows": c.rate_limit_windows,
            },
            "targets": targets,
        });
        if let Some((t, w)) = self.targets.iter().find_map(|t| t.wrk.as_ref().map(|w| (t, w))) {
            report["compare_wrk"] = json!({
                "target": t.name,
                "endpoint": w.endpoint,
                "concurrency": w.concurrency,
                "duration_s": w.duration.as_secs(),
                "wrk": {
                    "rps": w.wrk.rps,
                    "p50_ms": w.wrk.p50_ms,
                    "p99_ms": w.wrk.p99_ms,
                    "requests": w.wrk.requests,
                    "non_2xx": w.wrk.non_2xx,
                },
                "harness": {
                    "rps": w.harness.rps(),
                    "p50_ms": w.harness.latency.ms_at(0.5),
                    "p99_ms": w.harness.latency.ms_at(0.99),
                    "requests": w.harness.requests,
                    "errors": w.harness.error_count(),
                },
                "ratio": w.ratio(),
                "goal": WRK_GOAL,
            });
        }
        report
    }

    /// Latency by percentile per target, on a log percentile axis.
    pub fn svg(&self) -> String {
        const W: f64 = 820.0;
        const H: f64 = 440.0;
        const LEFT: f64 = 70.0;
        const RIGHT: f64 = 560.0;
        const TOP: f64 = 50.0;
        const BOTTOM: f64 = 370.0;
        // x = log10(1 / (1 - q)): 0 at p0, 1 at p90, 2 at p99, 3 at p99.9.
        const DECADES: f64 = 3.0;
        const STEPS: usize = 90;
        let curve = |h: &Histogram| -> Vec<(f64, f64)> {
            (0..=STEPS)
                .map(|i| {
                    let x = DECADES * i as f64 / STEPS as f64;
                    (x, h.ms_at(1.0 - 10f64.powf(-x)))
                })
                .collect()
        };
        let curves: Vec<Vec<(f64, f64)>> = self.targets.iter().map(|t| curve(&t.load.latency)).collect();
        let top = nice_ceiling(
            curves
                .iter()
                .flat_map(|c| c.iter().map(|p| p.1))
                .fold(0.0f64, f64::max),
        );
        let px = |x: f64| LEFT + (RIGHT - LEFT) * x / DECADES;
        let py = |y: f64| BOTTOM - (BOTTOM - TOP) * y / top;
        let c = &self.config;
        let mut out = String::new();
        let _ = writeln!(out, r#"<?xml version="1.0" encoding="UTF-8"?>"#);
        let _ = writeln!(
            out,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">"#
        );
        let _ = writeln!(out, "<title>tenantry bench: latency by percentile</title>");
        let _ = writeln!(out, r#"<rect width="{W}" height="{H}" fill="white"/>"#);
        let _ = writeln!(
            out,
            r#"<text x="{LEFT}" y="28" font-size="15">Latency by percentile ({} workers, {} s, seed {})</text>"#,
            c.concurrency,
            secs(c.duration),
            c.seed
        );
        // Grid and axes.
        for i in 0..=5 {
            let v = top * i as f64 / 5.0;
            let y = py(v);
            let _ = writeln!(
                out,
                r##"<line x1="{LEFT}" y1="{y:.1}" x2="{RIGHT}" y2="{y:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
                LEFT - 6.0,
                y + 4.0,
                trim_number(v)
            );
        }
        for (x, label) in [(0.0, "p0"), (1.0, "p90"), (2.0, "p99"), (3.0, "p99.9")] {
            let xp = px(x);
            let _ = writeln!(
                out,
                r##"<line x1="{xp:.1}" y1="{TOP}" x2="{xp:.1}" y2="{BOTTOM}" stroke="#ddd"/><text x="{xp:.1}" y="{:.1}" text-anchor="middle">{label}</text>"##,
                BOTTOM + 18.0
            );
        }
        let _ = writeln!(
            out,
            r##"<line x1="{LEFT}" y1="{BOTTOM}" x2="{RIGHT}" y2="{BOTTOM}" stroke="#333"/><line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{BOTTOM}" stroke="#333"/>"##
        );
        let _ = writeln!(
            out,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">percentile (log scale)</text>"#,
            (LEFT + RIGHT) / 2.0,
            BOTTOM + 40.0
        );
        let _ = writeln!(
            out,
            r#"<text x="18" y="{:.1}" text-anchor="middle" transform="rotate(-90 18 {:.1})">latency (ms)</text>"#,
            (TOP + BOTTOM) / 2.0,
            (TOP + BOTTOM) / 2.0
        );
        for (i, (t, points)) in self.targets.iter().zip(&curves).enumerate() {
            let color = COLORS[i % COLORS.len()];
            let name = escape(&t.name);
            let list: Vec<String> = points
                .iter()
                .map(|(x, y)| format!("{:.1},{:.1}", px(*x), py(*y)))
                .collect();
            let _ = writeln!(
                out,
                r#"<polyline fill="none" stroke="{color}" stroke-width="2" points="{}"><title>{name}</title></polyline>"#,
                list.join(" ")
            );
            let ly = TOP + 10.0 + 62.0 * i as f64;
            let _ = writeln!(
                out,
                r#"<rect x="{:.1}" y="{:.1}" width="14" height="4" fill="{color}"/><text x="{:.1}" y="{:.1}">{name}</text>"#,
                RIGHT + 20.0,
                ly - 4.0,
                RIGHT + 40.0,
                ly
            );
            let _ = writeln!(
                out,
                r##"<text x="{:.1}" y="{:.1}" fill="#555">{:.1} rps</text><text x="{:.1}" y="{:.1}" fill="#555">p50 {} ms, p99 {} ms</text>"##,
                RIGHT + 40.0,
                ly + 16.0,
                t.load.rps(),
                RIGHT + 40.0,
                ly + 32.0,
                ms(t.load.latency.ms_at(0.5)),
                ms(t.load.latency.ms_at(0.99))
            );
        }
        out.push_str("</svg>\n");
        out
    }
}

const COLORS: &[&str] = &["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b"];

fn target_json(t: &TargetResult) -> Value {
    let l = &t.load;
    let mut latency = json!({
        "max_ms": l.latency.max_us() as f64 / 1000.0,
        "mean_ms": l.latency.mean_us() / 1000.0,
        "p99_9_ms": l.latency.ms_at(0.999),
    });
    for (label, q) in PERCENTILES {
        latency[format!("{label}_ms")] = json!(l.latency.ms_at(*q));
    }
    let endpoints: Vec<Value> = l
        .endpoints
        .iter()
        .map(|e| {
            json!({
                "name": e.name,
                "requests": e.latency.count() + e.errors,
                "errors": e.errors,
                "p50_ms": e.latency.ms_at(0.5),
                "p99_ms": e.latency.ms_at(0.99),
            })
        })
        .collect();
    let rate_limit: Vec<Value> = t
        .rate_limit
        .iter()
        .map(|a| {
            json!({
                "policy": a.policy,
                "algorithm": a.algorithm,
                "limit": a.limit,
                "window_s": secs(a.window),
                "windows": a.windows,
                "expected": a.expected,
                "allowed_max": a.allowed_max,
                "admitted": a.admitted,
                "degraded": a.degraded,
                "refused": a.refused,
                "other": a.other,
                "accuracy_pct": a.accuracy_pct,
                "over_admissions": a.over_admissions,
            })
        })
        .collect();
    // The distribution the chart draws, for other plotting tools.
    let curve: Vec<Value> = [0.0, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.995, 0.999, 0.9999, 1.0]
        .iter()
        .map(|q| json!([q, l.latency.ms_at(*q)]))
        .collect();
    json!({
        "name": t.name,
        "base_url": t.base_url,
        "requests": l.requests,
        "elapsed_s": l.elapsed.as_secs_f64(),
        "rps": l.rps(),
        "latency_ms": latency,
        "percentile_curve": curve,
        "errors": l.errors,
        "error_count": l.error_count(),
        "statuses": l.statuses.iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<serde_json::Map<_, _>>(),
        "endpoints": endpoints,
        "rate_limit": rate_limit,
        "rate_limit_note": t.rate_limit_note,
    })
}

fn secs(d: std::time::Duration) -> f64 {
    d.as_secs_f64()
}

/// Milliseconds with two decimals.
fn ms(v: f64) -> String {
    format!("{v:.2}")
}

fn trim_number(v: f64) -> String {
    let s = format!("{v:.2}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// The smallest 1, 2 or 5 × 10^k at or above `v` (1 for nothing).
fn nice_ceiling(v: f64) -> f64 {
    if v.is_nan() || v <= 0.0 {
        return 1.0;
    }
    let magnitude = 10f64.powf(v.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * magnitude)
        .find(|c| *c >= v)
        .unwrap_or(10.0 * magnitude)
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axes_end_on_round_numbers() {
        assert_eq!(nice_ceiling(0.0), 1.0);
        assert_eq!(nice_ceiling(3.2), 5.0);
        assert_eq!(nice_ceiling(12.0), 20.0);
        assert_eq!(nice_ceiling(0.7), 1.0);
        assert_eq!(escape("a<b & \"c\""), "a&lt;b &amp; &quot;c&quot;");
    }
}
