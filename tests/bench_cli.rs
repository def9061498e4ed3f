//! `tenantry bench` end to end on the real reference stack (Postgres, and
//! Redis when installed): two isolation modes side by side, every output
//! format read back, the wrk comparison, and bad input refused with exit 2.
//! Nothing here judges speed: only that figures exist and are consistent.

use std::path::PathBuf;
use std::process::{Command, Output};

fn tenantry() -> Command {
    Command::new(env!("CARGO_BIN_EXE_tenantry"))
}

fn scratch(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("tenantry-bench-{}-{name}", std::process::id()))
}

fn snapshot_settings() -> insta::Settings {
    let mut settings = insta::Settings::clone_current();
    settings.set_snapshot_path(concat!(env!("CARGO_MANIFEST_DIR"), "/snapshots"));
    settings.set_prepend_module_to_snapshot(false);
    settings
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn number(v: &serde_json::Value, what: &str) -> f64 {
    v.as_f64()
        .unwrap_or_else(|| panic!("{what} is not a number: {v}"))
}

/// Two reference stacks (both layers, RLS only) measured one after the
/// other: two columns in the table, the JSON, the Markdown and the chart.
#[test]
fn two_isolation_modes_are_measured_side_by_side() {
    let (json, chart, markdown) = (scratch("two.json"), scratch("two.svg"), scratch("two.md"));
    let out = tenantry()
        .args([
            "bench",
            "--reference",
            "both",
            "--reference",
            "rls-only",
            "--duration",
            "2s",
            "--warmup",
            "1s",
            "-c",
            "4",
            "--orgs",
            "2",
            "--items",
            "3",
            "--seed",
            "7",
        ])
        .arg("--json")
        .arg(&json)
        .arg("--chart")
        .arg(&chart)
        .arg("--markdown")
        .arg(&markdown)
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(stderr.contains("seed 7"), "{stderr}");

    let report: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(report["schema"], "tenantry.bench/1");
    assert_eq!(report["config"]["concurrency"], 4);
    let targets = report["targets"].as_array().unwrap();
    let names: Vec<&str> = targets.iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["reference (both)", "reference (rls-only)"]);
    for t in targets {
        let name = &t["name"];
        assert!(number(&t["rps"], "rps") > 0.0, "{name}: {t}");
        assert!(t["requests"].as_u64().unwrap() > 0, "{name}: {t}");
        // The clean stack answers every request of the mix.
        assert_eq!(t["error_count"], 0, "{name}: {t}");
        let l = &t["latency_ms"];
        let (p50, p90, p99, max) = (
            number(&l["p50_ms"], "p50"),
            number(&l["p90_ms"], "p90"),
            number(&l["p99_ms"], "p99"),
            number(&l["max_ms"], "max"),
        );
        assert!(p50 > 0.0 && p50 <= p90 && p90 <= p99 && p99 <= max, "{name}: {l}");
        // Every endpoint of the reference profile got traffic.
        let endpoints = t["endpoints"].as_array().unwrap();
        assert_eq!(endpoints.len(), 5, "{name}: {t}");
        assert!(
            endpoints.iter().all(|e| e["requests"].as_u64().unwrap() > 0),
            "{name}: {t}"
        );
        // The limited instances' policy: 5 per 2 s, 3 windows, never exceeded.
        let limits = t["rate_limit"].as_array().unwrap();
        assert_eq!(limits.len(), 1, "{name}: {t}");
        assert_eq!(limits[0]["policy"], "api.search");
        assert_eq!(limits[0]["expected"], 15, "{name}: {t}");
        assert_eq!(limits[0]["over_admissions"], 0, "{name}: {t}");
        assert!(limits[0]["refused"].as_u64().unwrap() > 0, "{name}: {t}");
    }

    // The chart is a standalone SVG that names each target.
    let svg = std::fs::read_to_string(&chart).unwrap();
    let doc = roxmltree::Document::parse(&svg).unwrap_or_else(|e| panic!("{e}\n{svg}"));
    assert_eq!(doc.root_element().tag_name().name(), "svg");
    let lines: Vec<_> = doc.descendants().filter(|n| n.has_tag_name("polyline")).collect();
    assert_eq!(lines.len(), 2, "{svg}");
    for name in names {
        assert!(
            doc.descendants()
                .any(|n| n.has_tag_name("text") && n.text() == Some(name)),
            "{name} not in the legend: {svg}"
        );
        assert!(stdout.contains(name), "{stdout}");
    }

    let md = std::fs::read_to_string(&markdown).unwrap();
    assert!(
        md.contains("| metric | reference (both) | reference (rls-only) |"),
        "{md}"
    );

    // The table's layout, numbers normalised.
    let mut settings = snapshot_settings();
    settings.add_filter(r"([ (/])\d+(\.\d+)?", "${1}N");
    settings.add_filter(r" {2,}", "  ");
    settings.bind(|| insta::assert_snapshot!("bench_table_two_modes", stdout));
    for f in [json, chart, markdown] {
        let _ = std::fs::remove_file(f);
    }
}

/// wrk and the harness client on the same endpoint: both measured, the
/// ratio reported, the token never printed.
#[test]
fn the_harness_client_is_compared_with_wrk() {
    let args = [
        "bench",
        "--compare-wrk",
        "--duration",
        "1s",
        "--warmup",
        "0s",
        "-c",
        "4",
        "--orgs",
        "1",
        "--items",
        "1",
        "--rate-limit-check",
        "off",
        "--endpoints",
        "projects.list",
        "--json",
        "-",
    ];
    // Without wrk on PATH: a clear error, exit 2, before anything starts.
    let empty = scratch("empty-path");
    std::fs::create_dir_all(&empty).unwrap();
    let out = tenantry().args(args).env("PATH", &empty).output().unwrap();
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr
            .contains("--compare-wrk needs wrk, which is not on PATH; install it with `apt-get install wrk`"),
        "{stderr}"
    );
    let _ = std::fs::remove_dir(&empty);
    if Command::new("sh")
        .args(["-c", "command -v wrk"])
        .output()
        .map_or(true, |o| !o.status.success())
    {
        eprintln!("wrk is not installed (apt-get install wrk): the comparison itself is not run");
        return;
    }
    let out = tenantry().args(args).output().unwrap();
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    let w = &report["compare_wrk"];
    assert_eq!(w["endpoint"], "GET /api/projects", "{w}");
    assert!(number(&w["wrk"]["rps"], "wrk rps") > 0.0, "{w}");
    assert!(number(&w["wrk"]["p50_ms"], "wrk p50") > 0.0, "{w}");
    assert_eq!(w["wrk"]["non_2xx"], 0, "wrk was refused: {w}");
    assert!(number(&w["harness"]["rps"], "harness rps") > 0.0, "{w}");
    assert_eq!(w["harness"]["errors"], 0, "{w}");
    let ratio = number(&w["ratio"], "ratio");
    let expected = number(&w["harness"]["rps"], "") / number(&w["wrk"]["rps"], "");
    assert!((ratio - expected).abs() < 1e-9, "{w}");
    assert!(stderr.contains("harness vs wrk on GET /api/projects"), "{stderr}");
    for out in [&stdout, &stderr] {
        assert!(!out.contains("Bearer ey"), "a token was printed: {out}");
    }
}

#[test]
fn bad_input_exits_2_with_a_precise_message() {
    let missing = scratch("missing.toml");
    let cases: Vec<(Vec<String>, String)> = vec![
        (
            vec!["--reference".into(), "fastest".into()],
            "invalid value 'fastest' for '--reference <MODE>'".into(),
        ),
        (
            vec!["--duration".into(), "soon".into()],
            "`soon` is not a duration; expected whole milliseconds, seconds or minutes, e.g. 500ms, 10s, 1m"
                .into(),
        ),
        (
            vec!["--duration".into(), "0s".into()],
            "`0s`: expected more than zero".into(),
        ),
        (
            vec!["--target".into(), missing.display().to_string()],
            format!("{}:1:1: cannot read the profile", missing.display()),
        ),
        (
            vec!["--target".into(), "http://127.0.0.1:9".into()],
            "--secret-key (or TENANTRY_TARGET_SECRET_KEY) is required with a URL --target".into(),
        ),
        (
            vec!["-c".into(), "0".into()],
            "invalid value '0' for '--concurrency <N>'".into(),
        ),
    ];
    for (args, message) in cases {
        let out = tenantry()
            .arg("bench")
            .args(&args)
            .env_remove("TENANTRY_TARGET_SECRET_KEY")
            .output()
            .unwrap();
        let (_, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains(&message),
            "{args:?}: expected {message:?} in {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
}

#[test]
fn help_text() {
    let out = tenantry().args(["bench", "--help"]).output().unwrap();
    assert!(out.status.success());
    // No `--inject` here: the same text in every build.
    snapshot_settings().bind(|| insta::assert_snapshot!("bench_help", String::from_utf8_lossy(&out.stdout)));
}
