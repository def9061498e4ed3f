//! `tenantry audit --inject FLAW` end to end: a flaw of each family fails
//! the audit with a check its manifest entry expects, and a campaign's
//! reproduction fails alone on the flaw and passes on a clean stack. The
//! whole corpus is scored by `tenantry score --fast` (scripts/test).
#![cfg(feature = "inject")]

use std::process::Command;

/// `tenantry audit --inject FLAW --checks FAMILY` (only the family meant to
/// catch it runs, which keeps the corpus quick).
fn audit_with(flaw: &str, family: &str) -> (Option<i32>, serde_json::Value, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_tenantry"))
        .args([
            "audit", "--seed", "11", "--cases", "2", "--json", "-", "--inject", flaw, "--checks", family,
        ])
        .arg("--repro-dir")
        .arg(std::env::temp_dir().join(format!("tenantry-repro-{}-{flaw}", std::process::id())))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let report = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{flaw}: {e}\n{stderr}"));
    (out.status.code(), report, stderr)
}

/// One flaw of each family, end to end through the CLI: exit 1, a finding of
/// a check the flaw's manifest entry expects, the injection announced, and no
/// credential in the JSON report. Every flaw of the corpus is scored the same
/// way by `tenantry score --fast` in `scripts/test` (and `tests/score.rs`).
fn expect_caught(flaw: &str) {
    use tenantry_reference::inject::Flaw;
    let entry: Flaw = flaw.parse().unwrap();
    let (code, report, stderr) = audit_with(flaw, entry.family());
    assert_eq!(code, Some(1), "{flaw}: {stderr}");
    assert!(
        stderr.contains(&format!("WARNING: injected flaw {flaw}")),
        "{stderr}"
    );
    let found: Vec<&str> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["check"].as_str().unwrap())
        .collect();
    assert!(
        entry.checks().iter().any(|id| found.contains(id)),
        "{flaw}: none of {:?} in {found:?}",
        entry.checks()
    );
    let text = report.to_string();
    assert!(
        !text.contains("Bearer ey") && !text.contains("sk_test_"),
        "{flaw}: a credential leaked into the report"
    );
}

#[test]
fn one_flaw_of_each_family_fails_the_audit_without_leaking_credentials() {
    // Token forgeries put attacker tokens in the evidence; the sign-in and
    // OAuth flows put codes and states there.
    for flaw in [
        "trust-org-param",
        "jwt-alg-none",
        "client-trust-as-complete",
        "oauth-state-reusable",
    ] {
        expect_caught(flaw);
    }
}

#[test]
fn a_campaign_reproduction_fails_alone_on_the_flaw_and_passes_on_a_clean_stack() {
    let dir = std::env::temp_dir().join(format!("tenantry-repro-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let out = Command::new(env!("CARGO_BIN_EXE_tenantry"))
        .args([
            "audit",
            "--seed",
            "5",
            "--checks",
            "ORG",
            "--cases",
            "32",
            "--inject",
            "trust-org-param",
        ])
        .arg("--repro-dir")
        .arg(&dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    let files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{e}: {stdout}"))
        .map(|e| e.unwrap().path())
        .collect();
    assert!(!files.is_empty(), "{stdout}");
    assert!(
        stdout.contains(&dir.display().to_string()),
        "the finding names its reproduction: {stdout}"
    );
    let run = |inject: Option<&str>| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_tenantry"));
        cmd.arg("run").arg(&dir);
        if let Some(flaw) = inject {
            cmd.args(["--inject", flaw]);
        }
        let out = cmd.output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (code, stdout) = run(Some("trust-org-param"));
    assert_eq!(code, Some(1), "{stdout}");
    assert!(stdout.contains("FAIL campaign-org-"), "{stdout}");
    let (code, stdout) = run(None);
    assert_eq!(code, Some(0), "{stdout}");
    std::fs::remove_dir_all(&dir).unwrap();
}
