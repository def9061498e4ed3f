//! `tenantry fuzz` end to end on the real reference stack: the clean stack
//! yields no finding; each proxy flaw is found within a 12 s budget, under a
//! check its manifest entry expects, and its shrunk reproduction fails
//! again with `tenantry run FILE --inject FLAW` and passes on the clean
//! stack.

use std::path::PathBuf;
use std::process::Command;

fn tenantry() -> Command {
    Command::new(env!("CARGO_BIN_EXE_tenantry"))
}

fn repro_dir(label: &str) -> PathBuf {
    std::env::temp_dir().join(format!("tenantry-fuzz-{}-{label}", std::process::id()))
}

/// `tenantry fuzz ARGS --json -`: the exit code, the report, stderr.
fn fuzz(args: &[&str], repro: &PathBuf) -> (Option<i32>, serde_json::Value, String) {
    let out = tenantry()
        .arg("fuzz")
        .args(args)
        .args(["--json", "-", "--repro-dir"])
        .arg(repro)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let report = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{args:?}: {e}\n{stderr}"));
    (out.status.code(), report, stderr)
}

// Once, in the build without flaw code.
#[cfg(not(feature = "inject"))]
#[test]
fn the_clean_stack_yields_no_finding() {
    let repro = repro_dir("clean");
    let (code, report, stderr) = fuzz(&["--budget", "20", "--seed", "1"], &repro);
    assert_eq!(code, Some(0), "{report}\n{stderr}");
    assert_eq!(report["schema"], "tenantry.audit/1");
    assert_eq!(report["findings"], serde_json::json!([]), "{stderr}");
    assert!(report["checks_run"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c == "FUZ-001"));
    // It did fuzz: hundreds of cases, every one judged.
    let cases: u64 = stderr
        .split("fuzz: ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no case count in {stderr}"));
    assert!(cases >= 100, "{stderr}");
    assert!(!repro.exists(), "no finding, no reproduction");
}

/// The flaw is found under a check its manifest expects, and that
/// finding's reproduction fails on the flaw and passes on the clean stack.
#[cfg(feature = "inject")]
fn expect_found(flaw: &str) {
    use tenantry_reference::inject::Flaw;
    let entry: Flaw = flaw.parse().unwrap();
    let repro = repro_dir(flaw);
    let (code, report, stderr) = fuzz(&["--budget", "12", "--seed", "1", "--inject", flaw], &repro);
    assert_eq!(code, Some(1), "{flaw}: {report}\n{stderr}");
    let findings = report["findings"].as_array().unwrap();
    let finding = findings
        .iter()
        .find(|f| {
            entry.checks().contains(&f["check"].as_str().unwrap())
                && f["message"]
                    .as_str()
                    .unwrap()
                    .contains("it fails again on its own")
        })
        .unwrap_or_else(|| {
            panic!(
                "{flaw}: no reproduced finding of {:?} in {report:#}",
                entry.checks()
            )
        });
    let text = report.to_string();
    assert!(
        !text.contains("Bearer ey") && !text.contains("sk_test_"),
        "{flaw}: a credential leaked into the report"
    );
    let file = finding["reproduction"].as_str().unwrap();
    let run = |inject: bool| {
        let mut command = tenantry();
        command.args(["run", file, "--seed", "5"]);
        if inject {
            command.args(["--inject", flaw]);
        }
        let out = command.output().unwrap();
        (
            out.status.code(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    };
    let (code, output) = run(true);
    assert_eq!(
        code,
        Some(1),
        "{flaw}: {file} passed on the flawed stack:\n{output}"
    );
    let (code, output) = run(false);
    assert_eq!(
        code,
        Some(0),
        "{flaw}: {file} failed on the clean stack:\n{output}"
    );
    let _ = std::fs::remove_dir_all(&repro);
}

#[cfg(feature = "inject")]
#[test]
fn trust_org_param_is_found_and_reproduced() {
    expect_found("trust-org-param");
}

#[cfg(feature = "inject")]
#[test]
fn org_path_unchecked_is_found_and_reproduced() {
    expect_found("org-path-unchecked");
}

#[cfg(feature = "inject")]
#[test]
fn role_from_claim_unsigned_is_found_and_reproduced() {
    expect_found("role-from-claim-unsigned");
}

#[cfg(feature = "inject")]
#[test]
fn jwt_alg_none_is_found_and_reproduced() {
    expect_found("jwt-alg-none");
}
