//! The scenario library (`scenarios/`) against the reference stack that
//! `tenantry run` starts: every family's folder passes on the clean stack,
//! and (with the inject feature) every injected flaw makes at least one of
//! the scenarios meant for it fail — except the flaws listed in
//! [`NOT_SCENARIO_MATERIAL`], with the reason no HTTP scenario can show them.

use std::path::Path;
use std::process::Command;

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios");

/// `tenantry run FOLDER… --seed 17 EXTRA…`: exit code, the ids of the
/// scenarios reported failed, and the whole output for messages.
fn run(folders: &[&str], extra: &[&str]) -> (Option<i32>, Vec<String>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_tenantry"))
        .arg("run")
        .args(folders.iter().map(|f| Path::new(ROOT).join(f)))
        .args(["--seed", "17"])
        .args(extra)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let failed = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("FAIL "))
        .map(|l| l.split([' ', ':']).next().unwrap_or_default().to_string())
        .collect();
    (out.status.code(), failed, format!("{stdout}\n{stderr}"))
}

/// Scenario files of a family folder.
fn files(folder: &str) -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir(Path::new(ROOT).join(folder))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    out.sort();
    out
}

#[cfg(not(feature = "inject"))]
fn passes_clean(folder: &str, extra: &[&str]) {
    assert!(!files(folder).is_empty(), "scenarios/{folder} is empty");
    let (code, failed, output) = run(&[folder], extra);
    assert!(
        code == Some(0) && failed.is_empty(),
        "scenarios/{folder} {extra:?} on the clean stack: exit {code:?}, failed {failed:?}\n{output}"
    );
}

#[test]
fn the_library_is_large_and_every_scenario_is_named_after_its_file() {
    let mut total = 0;
    for folder in FAMILIES {
        for stem in files(folder) {
            let text =
                std::fs::read_to_string(Path::new(ROOT).join(folder).join(format!("{stem}.yaml"))).unwrap();
            assert!(
                text.lines().any(|l| l == format!("id: {stem}")),
                "scenarios/{folder}/{stem}.yaml: its id must be its file name"
            );
            assert!(
                stem.starts_with(&format!("{folder}-")),
                "scenarios/{folder}/{stem}.yaml: named after its family"
            );
            total += 1;
        }
    }
    assert!(
        total >= 40,
        "the library has {total} scenarios; issue 8 asks for at least 40"
    );
}

const FAMILIES: &[&str] = &["iso", "org", "tok", "tpl", "ses", "rl", "oau"];

/// Checks of the catalogue no scenario expresses, and why (every other check
/// is named in the `tags` of at least one scenario).
const NOT_EXPRESSIBLE: &[(&str, &str)] = &[
    (
        "ISO-012",
        "id predictability compares values across many answers; a scenario asserts on one answer at a time",
    ),
    (
        "RL-005",
        "the bypass list names orgs by id, and a scenario's orgs get fresh ids each run",
    ),
    (
        "RL-011",
        "the limiter's store must be stopped and restarted under the running stack",
    ),
    ("RL-012", "the store's own commands and keys must be watched"),
    (
        "SES-007",
        "an email code is read from the identity service's test outbox, which needs its secret key",
    ),
    (
        "SES-008",
        "revoking a session needs the identity service's Backend API (its secret key)",
    ),
    (
        "TPL-001",
        "JWT templates are created through the Backend API (its secret key), and their claims decoded",
    ),
    (
        "TPL-002",
        "JWT templates are created through the Backend API (its secret key), and their claims decoded",
    ),
];

#[test]
fn every_check_a_request_can_show_has_a_scenario() {
    let mut tagged = std::collections::BTreeSet::new();
    for folder in FAMILIES {
        for stem in files(folder) {
            let text =
                std::fs::read_to_string(Path::new(ROOT).join(folder).join(format!("{stem}.yaml"))).unwrap();
            let scenario = tenantry_harness::scenario::parse(&stem, &text).unwrap();
            for tag in scenario.tags {
                tagged.insert(tag.trim_start_matches("TEN-").to_string());
            }
        }
    }
    for check in tenantry_harness::checks::CHECKS {
        // The database audit's SQL probes are not HTTP requests.
        if check.family == "RLS" || check.family == "FUZ" {
            continue;
        }
        let excused = NOT_EXPRESSIBLE.iter().any(|(id, _)| *id == check.id);
        assert!(
            tagged.contains(check.id) != excused,
            "{}: must be tagged in a scenario or listed in NOT_EXPRESSIBLE (not both)",
            check.id
        );
    }
}

// The clean runs once, in the build without flaw code.
#[cfg(not(feature = "inject"))]
#[test]
fn iso_and_org_scenarios_pass_on_the_clean_stack() {
    passes_clean("iso", &[]);
    passes_clean("org", &[]);
    // Each layer alone still isolates (the flaw runs rely on that).
    passes_clean("iso", &["--reference-isolation", "app-filter-only"]);
    passes_clean("iso", &["--reference-isolation", "rls-only"]);
}

#[cfg(not(feature = "inject"))]
#[test]
fn token_scenarios_pass_on_the_clean_stack() {
    passes_clean("tok", &[]);
}

#[cfg(not(feature = "inject"))]
#[test]
fn session_and_template_scenarios_pass_on_the_clean_stack() {
    passes_clean("ses", &[]);
    passes_clean("tpl", &[]);
}

#[cfg(not(feature = "inject"))]
#[test]
fn oauth_scenarios_pass_on_the_clean_stack() {
    passes_clean("oau", &[]);
}

#[cfg(not(feature = "inject"))]
#[test]
fn rate_limit_scenarios_pass_on_the_clean_stack() {
    passes_clean("rl", &[]);
}

#[cfg(feature = "inject")]
mod flaws {
    use super::*;

    /// For each flaw: the folder to run, options for the reference stack
    /// (an isolation mode where the flaw hides behind a second layer), and
    /// scenarios of which at least one must fail.
    pub const CAUGHT: &[(&str, &str, &[&str], &[&str])] = &[
        // Layer-hidden flaws: the stack relies on the layer the flaw breaks.
        (
            "no-app-filter",
            "iso",
            &["--reference-isolation", "app-filter-only"],
            &["iso-001-cross-org-read-by-id", "iso-004-list-only-own-org"],
        ),
        (
            "no-rls",
            "iso",
            &["--reference-isolation", "rls-only"],
            &["iso-001-cross-org-read-by-id", "iso-004-list-only-own-org"],
        ),
        (
            "rls-not-forced",
            "iso",
            &["--reference-isolation", "rls-only"],
            &["iso-001-cross-org-read-by-id", "iso-004-list-only-own-org"],
        ),
        (
            "cache-key-without-org",
            "iso",
            &[],
            &["iso-009-stats-cache-keyed-by-org"],
        ),
        ("job-without-org", "iso", &[], &["iso-008-export-only-own-org"]),
        (
            "search-without-org-filter",
            "iso",
            &["--reference-isolation", "app-filter-only"],
            &["iso-005-search-foreign-canary"],
        ),
        (
            "update-without-org-filter",
            "iso",
            &["--reference-isolation", "app-filter-only"],
            &["iso-002-cross-org-update-by-id"],
        ),
        (
            "parent-key-without-org",
            "iso",
            &[],
            &["iso-006-child-under-foreign-parent"],
        ),
        (
            "trust-org-param",
            "org",
            &[],
            &[
                "org-002-forged-org-query-parameter",
                "org-002b-forged-org-every-position",
            ],
        ),
        ("org-path-unchecked", "org", &[], &["org-001-forged-org-in-path"]),
        (
            "client-trust-as-complete",
            "ses",
            &[],
            &["ses-005-new-device-needs-client-trust"],
        ),
        (
            "client-trust-stuck",
            "ses",
            &[],
            &["ses-005-new-device-needs-client-trust"],
        ),
        (
            "template-fallback-500",
            "tpl",
            &[],
            &["tpl-003-missing-template-falls-back"],
        ),
        ("jwt-alg-none", "tok", &[], &["tok-003-alg-none"]),
        (
            "jwt-hs256-confusion",
            "tok",
            &[],
            &["tok-006-rs-hs-key-confusion"],
        ),
        ("jwt-skip-exp", "tok", &[], &["tok-013-expired-and-future-tokens"]),
        ("jwt-ignore-azp", "tok", &[], &["tok-020-authorized-party"]),
        (
            "template-token-as-session",
            "tok",
            &[],
            &["tok-018-template-token-as-session"],
        ),
        (
            "role-from-claim-unsigned",
            "tok",
            &[],
            &["tok-025-cookie-and-header-disagree"],
        ),
        ("oauth-state-no-ttl", "oau", &[], &["oau-008-state-expiry"]),
        ("oauth-state-reusable", "oau", &[], &["oau-005-state-reuse"]),
        (
            "oauth-state-not-user-bound",
            "oau",
            &[],
            &["oau-009-state-of-a-colleague-or-another-org"],
        ),
        (
            "oauth-state-not-org-bound",
            "oau",
            &[],
            &["oau-009-state-of-a-colleague-or-another-org"],
        ),
        (
            "oauth-state-not-provider-bound",
            "oau",
            &[],
            &["oau-013-provider-mix-up"],
        ),
        (
            "oauth-state-race",
            "oau",
            &[],
            &["oau-007-concurrent-double-redeem"],
        ),
        ("oauth-no-pkce", "oau", &[], &["oau-014-pkce-code-injection"]),
        ("oauth-open-redirect", "oau", &[], &["oau-015-open-redirect"]),
        ("ratelimit-per-ip", "rl", &[], &["rl-002-org-isolation"]),
        ("ratelimit-per-user", "rl", &[], &["rl-003-per-org-not-per-user"]),
        ("ratelimit-global-key", "rl", &[], &["rl-002-org-isolation"]),
        (
            "ratelimit-nonatomic",
            "rl",
            &[],
            &["rl-001-concurrent-burst-exact-limit"],
        ),
        (
            "ratelimit-rejected-consumes",
            "rl",
            &[],
            &["rl-008-rejected-requests-do-not-consume"],
        ),
        (
            "ratelimit-headers-wrong",
            "rl",
            &[],
            &["rl-006-ratelimit-headers-and-retry-after"],
        ),
        (
            "ratelimit-off-by-one",
            "rl",
            &[],
            &["rl-001-concurrent-burst-exact-limit"],
        ),
    ];

    /// Flaws no HTTP scenario can show, with the reason (the audit's own
    /// checks catch them: tests/audit_flaws.rs).
    pub const NOT_SCENARIO_MATERIAL: &[(&str, &str)] = &[
        (
            "session-scoped-context",
            "the org context outlives a request only on a pooled connection no request path uses without setting it first: the database audit's pool probe shows it (RLS-005)",
        ),
        (
            "ratelimit-bypass-ignored",
            "the bypass list names orgs by id, and a scenario's orgs get fresh ids each run: the harness must edit the replicas' watched config (RL-005)",
        ),
        (
            "ratelimit-fail-open-silent",
            "the limiter's store must be stopped and restarted under the running stack (RL-011)",
        ),
        (
            "grant-all-to-app-role",
            "a privilege of the app role that no request path uses (TRUNCATE): the database audit's catalog shows it (RLS-009)",
        ),
        (
            "report-view-not-invoker",
            "no request path reads the reporting view: the database audit's catalog shows it (RLS-008)",
        ),
        (
            "missing-context-matches-all",
            "every request path sets the org context before its first statement, so no request runs without one: the database audit's raw SQL without a context shows it (RLS-004)",
        ),
    ];

    fn expect_caught(flaw: &str) {
        let (_, folder, options, scenarios) = CAUGHT
            .iter()
            .find(|(name, ..)| *name == flaw)
            .unwrap_or_else(|| panic!("{flaw} is not in CAUGHT"));
        let mut extra = vec!["--inject", flaw];
        extra.extend_from_slice(options);
        let (code, failed, output) = run(&[folder], &extra);
        assert_eq!(code, Some(1), "{flaw}: scenarios/{folder} must fail\n{output}");
        assert!(
            output.contains(&format!("WARNING: injected flaw {flaw}")),
            "{output}"
        );
        assert!(
            scenarios.iter().any(|s| failed.iter().any(|f| f == s)),
            "{flaw}: none of {scenarios:?} failed (failed: {failed:?})\n{output}"
        );
        assert!(
            !output.contains("Bearer ey"),
            "{flaw}: a token leaked into the output"
        );
    }

    fn family(prefix: &str) {
        let flaws: Vec<&str> = CAUGHT
            .iter()
            .filter(|(_, folder, ..)| *folder == prefix)
            .map(|(name, ..)| *name)
            .collect();
        for flaw in flaws {
            expect_caught(flaw);
        }
    }

    #[test]
    fn every_flaw_fails_a_scenario_or_says_why_it_cannot() {
        use tenantry_reference::inject::Flaw;
        for flaw in Flaw::ALL {
            let caught = CAUGHT.iter().any(|(name, ..)| *name == flaw.name());
            let excused = NOT_SCENARIO_MATERIAL.iter().any(|(name, _)| *name == flaw.name());
            assert!(
                caught != excused,
                "{flaw}: must be in exactly one of CAUGHT (a scenario fails with it) and NOT_SCENARIO_MATERIAL"
            );
        }
        for (name, folder, _, scenarios) in CAUGHT {
            assert!(
                Flaw::ALL.iter().any(|f| f.name() == *name),
                "{name} is not a flaw"
            );
            for s in *scenarios {
                assert!(
                    files(folder).iter().any(|f| f == s),
                    "{name}: scenarios/{folder}/{s}.yaml does not exist"
                );
            }
        }
    }

    #[test]
    fn data_plane_and_proxy_flaws_fail_a_scenario() {
        family("iso");
        family("org");
    }

    #[test]
    fn token_flaws_fail_a_scenario() {
        family("tok");
    }

    #[test]
    fn sign_in_and_template_flaws_fail_a_scenario() {
        family("ses");
        family("tpl");
    }

    #[test]
    fn oauth_flaws_fail_a_scenario() {
        family("oau");
    }

    #[test]
    fn rate_limit_flaws_fail_a_scenario() {
        family("rl");
    }
}
