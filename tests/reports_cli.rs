//! Reports, waivers, baseline and the gate through the `tenantry` binary:
//! bad input exits 2 before anything runs (naming the file, line and column,
//! or the valid formats); an audit and a scenario run of the reference stack
//! write every format and print where; an expired waiver fails the gate. With
//! the `inject` feature, a flawed stack fails, the same findings found again
//! with another seed are known from the baseline, and a waiver waives them.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn tenantry() -> Command {
    Command::new(env!("CARGO_BIN_EXE_tenantry"))
}

fn tempdir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tenantry-reports-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn run(cmd: &mut Command) -> (i32, String, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = cmd.output().unwrap();
    (
        status.code().unwrap_or(-1),
        String::from_utf8_lossy(&stdout).into_owned(),
        String::from_utf8_lossy(&stderr).into_owned(),
    )
}

/// A quick audit of the reference stack: a few checks, no campaign.
fn quick_audit(dir: &Path) -> Command {
    let mut cmd = tenantry();
    cmd.current_dir(dir).args([
        "audit",
        "--checks",
        "ISO-001,ORG-002",
        "--cases",
        "0",
        "--seed",
        "3",
    ]);
    cmd
}

#[test]
fn an_unknown_report_format_exits_2_naming_the_valid_ones() {
    let (code, _, stderr) = run(tenantry().args(["audit", "--report", "junit,xml"]));
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains(
            "unknown report format `xml`; expected one or more of json, junit, sarif, html, markdown"
        ),
        "{stderr}"
    );
    let (code, _, stderr) = run(tenantry().args(["run", "x.yaml", "--report", "pdf"]));
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("unknown report format `pdf`"), "{stderr}");
}

#[test]
fn a_bad_waiver_file_exits_2_with_its_position() {
    let dir = tempdir("bad-waivers");
    let file = dir.join("w.toml");
    std::fs::write(&file, "[[waiver]]\nchecks = \"RL-01*\"\nreson = \"typo\"\n").unwrap();
    let (code, stdout, stderr) = run(tenantry().args(["audit", "--waivers"]).arg(&file));
    assert_eq!(code, 2, "{stdout}\n{stderr}");
    assert!(
        stderr.contains(&format!("{}:3:1: unknown field `reson`", file.display())),
        "{stderr}"
    );
    assert!(!stderr.contains("auditing"), "nothing runs: {stderr}");

    // The default file in the working directory is read too.
    std::fs::write(
        dir.join("tenantry.waivers.toml"),
        "[[waiver]]\nchecks = \"RL-01*\"\nreason = \"\"\n",
    )
    .unwrap();
    let (code, _, stderr) = run(tenantry().current_dir(&dir).args(["run", "x.yaml"]));
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("tenantry.waivers.toml:3:10: the waiver of `RL-01*` has an empty `reason`"),
        "{stderr}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_baseline_that_is_not_a_report_exits_2() {
    let dir = tempdir("bad-baseline");
    let file = dir.join("old.json");
    std::fs::write(&file, r#"{"schema":"tenantry.audit/1","findings":[]}"#).unwrap();
    let (code, _, stderr) = run(tenantry().args(["audit", "--baseline"]).arg(&file));
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("not a tenantry.report/1 JSON report (write one with --report json): its schema is `tenantry.audit/1`"),
        "{stderr}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_clean_audit_writes_every_format_and_an_expired_waiver_fails_it() {
    let dir = tempdir("clean-audit");
    let (code, stdout, stderr) = run(quick_audit(&dir).args([
        "--report",
        "json,junit,sarif,html,markdown",
        "--out",
        "reports",
        "--fail-on",
        "high",
    ]));
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(
        stdout.contains("FAMILY   CHECKS  FINDINGS CRITICAL  HIGH MEDIUM  LOW INFO WAIVED"),
        "{stdout}"
    );
    assert!(stdout.contains("ISO           1         0"), "{stdout}");
    assert!(
        stdout.contains("gate: pass: 0 findings at or above high; exit 0"),
        "{stdout}"
    );
    for name in [
        "tenantry-report.json",
        "tenantry-junit.xml",
        "tenantry.sarif",
        "tenantry-report.html",
        "tenantry-report.md",
    ] {
        let path = Path::new("reports").join(name);
        assert!(
            stdout.contains(&format!("report written: {}", path.display())),
            "{stdout}"
        );
        let written = std::fs::read_to_string(dir.join(&path)).unwrap();
        assert!(written.contains("ISO-001"), "{name}: {written}");
    }
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("reports/tenantry-report.json")).unwrap())
            .unwrap();
    assert_eq!(json["schema"], "tenantry.report/1");
    assert_eq!(json["kind"], "audit");
    assert_eq!(json["seed"], "3");
    assert_eq!(json["cases"].as_array().unwrap().len(), 2, "{json}");

    // The report is a baseline; a waiver past its date fails the gate.
    std::fs::write(
        dir.join("tenantry.waivers.toml"),
        "[[waiver]]\nchecks = \"RL-01*\"\nreason = \"limiter moves to Redis; SEC-123\"\nexpires = 2020-01-31\n",
    )
    .unwrap();
    let (code, stdout, stderr) = run(quick_audit(&dir).args(["--baseline", "reports/tenantry-report.json"]));
    assert_eq!(code, 1, "{stdout}\n{stderr}");
    assert!(
        stdout.contains("expired waiver: `RL-01*` (tenantry.waivers.toml:2) expired on 2020-01-31"),
        "{stdout}"
    );
    assert!(
        stdout.contains("baseline reports/tenantry-report.json: 0 of 0 findings known, 0 new"),
        "{stdout}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_scenario_run_writes_reports_with_one_case_per_scenario() {
    let dir = tempdir("scenario-run");
    let scenario = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/scenarios/iso/iso-001-cross-org-read-by-id.yaml"
    );
    let (code, stdout, stderr) = run(tenantry()
        .current_dir(&dir)
        .args([
            "run",
            scenario,
            "--seed",
            "9",
            "--fail-on",
            "critical",
            "--report",
            "junit,json",
        ])
        .args(["--out", "out"]));
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(stdout.contains("PASS iso-001-cross-org-read-by-id"), "{stdout}");
    assert!(
        stdout.contains("1 scenarios: 1 passed, 0 failed, 0 waived"),
        "{stdout}"
    );
    assert!(
        stdout.contains("gate: pass: 0 findings at or above critical; exit 0"),
        "{stdout}"
    );
    let junit = std::fs::read_to_string(dir.join("out/tenantry-junit.xml")).unwrap();
    assert!(
        junit.contains("<testcase name=\"iso-001-cross-org-read-by-id "),
        "{junit}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("out/tenantry-report.json")).unwrap())
            .unwrap();
    assert_eq!(json["kind"], "scenarios");
    assert_eq!(json["cases"][0]["family"], "ISO");
    assert_eq!(json["cases"][0]["status"], "passed");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A flawed stack: findings fail the gate; found again with another seed
/// they are known from the baseline (same fingerprints); a waiver waives
/// them in every report.
#[cfg(feature = "inject")]
#[test]
fn baseline_and_waivers_on_a_flawed_stack() {
    let dir = tempdir("flawed");
    let audit = |seed: &str| {
        let mut cmd = tenantry();
        cmd.current_dir(&dir).args([
            "audit",
            "--checks",
            "ORG-002,ORG-003",
            "--cases",
            "0",
            "--inject",
            "trust-org-param",
            "--seed",
            seed,
        ]);
        cmd
    };
    let (code, stdout, stderr) = run(audit("1").args(["--report", "json,sarif", "--out", "first"]));
    assert_eq!(code, 1, "{stdout}\n{stderr}");
    assert!(stdout.contains("FINDING ORG-002 [critical]"), "{stdout}");
    let first: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("first/tenantry-report.json")).unwrap())
            .unwrap();
    let findings = first["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["findings"].as_array().unwrap().len())
        .sum::<usize>();
    assert!(findings > 0, "{first}");

    let (code, stdout, stderr) = run(audit("2").args(["--baseline", "first/tenantry-report.json"]));
    assert_eq!(code, 0, "the same findings, other ids: {stdout}\n{stderr}");
    assert!(
        stdout.contains(&format!(
            "baseline first/tenantry-report.json: {findings} of {findings} findings known, 0 new"
        )),
        "{stdout}"
    );
    assert!(stdout.contains("KNOWN ORG-002"), "{stdout}");

    std::fs::write(
        dir.join("w.toml"),
        "[[waiver]]\nchecks = \"ORG-00?\"\nreason = \"the org guard lands next sprint; SEC-7\"\n",
    )
    .unwrap();
    let (code, stdout, stderr) = run(audit("3").args([
        "--waivers",
        "w.toml",
        "--report",
        "junit,sarif",
        "--out",
        "waived",
    ]));
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(stdout.contains("WAIVED ORG-002"), "{stdout}");
    let junit = std::fs::read_to_string(dir.join("waived/tenantry-junit.xml")).unwrap();
    assert!(
        junit.contains("<skipped message=\"waived: the org guard lands next sprint; SEC-7\""),
        "{junit}"
    );
    let sarif = std::fs::read_to_string(dir.join("waived/tenantry.sarif")).unwrap();
    assert!(
        sarif.contains("\"justification\": \"the org guard lands next sprint; SEC-7"),
        "{sarif}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
