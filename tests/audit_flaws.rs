//! `tenantry audit --inject FLAW` end to end, for every data-plane, proxy,
//! token and database flaw (ISO, ORG, TOK and RLS families): exit 1 with a
//! finding of the check meant to catch it (and the JSON report says so).
//! Sign-in and template (SES, TPL), OAuth state (OAU) and rate-limit (RL)
//! flaws too; flaws no check catches yet would be listed in [`PENDING`].
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

/// Every flaw the audit catches, with the checks that must report it.
const CAUGHT: &[(&str, &[&str])] = &[
    // Only visible with RLS off: the audit's layer ablation pass.
    ("no-app-filter", &["ISO-001", "ISO-002", "ISO-004", "ISO-005"]),
    ("cache-key-without-org", &["ISO-009"]),
    ("job-without-org", &["ISO-008"]),
    ("trust-org-param", &["ORG-002", "ORG-003", "ORG-007"]),
    ("org-path-unchecked", &["ORG-001", "ORG-007"]),
    // The token suite (the operator's signing key is at hand on the
    // reference stack, so re-signed expired and sid-less tokens run too).
    ("jwt-alg-none", &["TOK-003"]),
    ("jwt-hs256-confusion", &["TOK-006"]),
    ("jwt-skip-exp", &["TOK-013"]),
    ("jwt-ignore-azp", &["TOK-020", "TOK-024"]),
    ("template-token-as-session", &["TOK-018"]),
    ("role-from-claim-unsigned", &["TOK-025"]),
    // The sign-in suite, through the app's own handlers.
    ("client-trust-as-complete", &["SES-005"]),
    ("client-trust-stuck", &["SES-006"]),
    ("template-fallback-500", &["TPL-003"]),
    // The OAuth suite (the reference stack started by the audit declares a
    // short state TTL, so expiry is tested too).
    ("oauth-state-no-ttl", &["OAU-008"]),
    ("oauth-state-reusable", &["OAU-005", "OAU-006"]),
    ("oauth-state-not-user-bound", &["OAU-009"]),
    ("oauth-state-not-org-bound", &["OAU-010", "OAU-016"]),
    ("oauth-state-not-provider-bound", &["OAU-013"]),
    ("oauth-state-race", &["OAU-007"]),
    ("oauth-no-pkce", &["OAU-014"]),
    ("oauth-open-redirect", &["OAU-015"]),
    // The rate-limit suite, on the stack's replicas with short real limits.
    ("ratelimit-per-ip", &["RL-002"]),
    ("ratelimit-per-user", &["RL-003"]),
    ("ratelimit-global-key", &["RL-002"]),
    ("ratelimit-nonatomic", &["RL-001", "RL-012"]),
    ("ratelimit-rejected-consumes", &["RL-008"]),
    ("ratelimit-headers-wrong", &["RL-006"]),
    // Through the stack's hooks: its limited instances' watched config file
    // (RL-005) and its own Redis, stopped and restarted (RL-011; the stack
    // needs redis-server for this one, as the reference server's tests do).
    ("ratelimit-bypass-ignored", &["RL-005"]),
    ("ratelimit-fail-open-silent", &["RL-011"]),
    // The database audit, on the stack's own database.
    ("rls-not-forced", &["RLS-001", "RLS-002"]),
    ("no-rls", &["RLS-002", "RLS-010"]),
    // Only through the app's own pool: the next request's connection
    // still carries the previous org.
    ("session-scoped-context", &["RLS-005"]),
];

/// Flaws no check of `tenantry audit` catches yet (none since RL-005 and
/// RL-011 run through the reference stack's hooks, issue 7).
const PENDING: &[&str] = &[];

fn expect_caught(flaw: &str) {
    let expected = CAUGHT
        .iter()
        .find(|(name, _)| *name == flaw)
        .map(|(_, ids)| *ids)
        .unwrap_or_else(|| panic!("{flaw} is not in CAUGHT"));
    let family = expected[0].split('-').next().unwrap();
    let (code, report, stderr) = audit_with(flaw, family);
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
    for id in expected {
        assert!(found.contains(id), "{flaw}: {id} missing from {found:?}");
    }
    assert!(
        !report.to_string().contains("Bearer ey"),
        "{flaw}: a token leaked into the report"
    );
}

#[test]
fn every_flaw_of_the_corpus_is_caught_by_the_audit_or_pending() {
    use tenantry_reference::inject::Flaw;
    for flaw in Flaw::ALL {
        let listed = CAUGHT.iter().any(|(name, _)| *name == flaw.name());
        assert!(
            listed != PENDING.contains(&flaw.name()),
            "{flaw}: must be in exactly one of CAUGHT (a check of `tenantry audit` catches it) and PENDING"
        );
    }
    for (name, _) in CAUGHT {
        assert!(
            Flaw::ALL.iter().any(|f| f.name() == *name),
            "{name} is not a flaw"
        );
    }
}

#[test]
fn data_plane_and_proxy_flaws_fail_the_audit_with_the_right_check() {
    for flaw in [
        "no-app-filter",
        "cache-key-without-org",
        "job-without-org",
        "trust-org-param",
        "org-path-unchecked",
    ] {
        expect_caught(flaw);
    }
}

#[test]
fn token_flaws_fail_the_audit_with_the_right_check() {
    for (flaw, _) in CAUGHT.iter().filter(|(_, ids)| ids[0].starts_with("TOK")) {
        expect_caught(flaw);
    }
}

#[test]
fn sign_in_flaws_fail_the_audit_with_the_right_check() {
    for (flaw, _) in CAUGHT
        .iter()
        .filter(|(_, ids)| ids[0].starts_with("SES") || ids[0].starts_with("TPL"))
    {
        expect_caught(flaw);
    }
}

#[test]
fn oauth_flaws_fail_the_audit_with_the_right_check() {
    for (flaw, _) in CAUGHT.iter().filter(|(_, ids)| ids[0].starts_with("OAU")) {
        expect_caught(flaw);
    }
}

#[test]
fn rate_limit_flaws_fail_the_audit_with_the_right_check() {
    for (flaw, _) in CAUGHT.iter().filter(|(_, ids)| ids[0].starts_with("RL-")) {
        expect_caught(flaw);
    }
}

#[test]
fn database_flaws_fail_the_audit_with_the_right_check() {
    for (flaw, _) in CAUGHT.iter().filter(|(_, ids)| ids[0].starts_with("RLS")) {
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
