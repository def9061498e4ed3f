//! The harness's audit against the reference stack behind its real proxy and
//! identity service, through the built-in profile: the clean stack yields no
//! finding (20 seeds); the data-plane and org-parameter flaws are found by
//! the right checks.

mod common;

use common::identity::SECRET_KEY;
use common::token_checks::PARTY;
use common::TestStack;
use std::time::Duration;

use tenantry_harness::audit;
use tenantry_harness::checks::Selection;
use tenantry_harness::client::Client;
use tenantry_harness::profile::Profile;

async fn audit_with(stack: &TestStack, selection: &Selection, seed: u64) -> audit::Report {
    let profile = Profile::reference(&stack.base, SECRET_KEY, PARTY);
    let client = Client::new(&profile.base_url, 16, Duration::from_secs(20));
    let mut sessions = audit::sessions_for(&profile, &client)
        .await
        .expect("a session source");
    let mut phases = 0;
    let report = audit::run(&profile, &client, &mut sessions, selection, seed, &mut |p| {
        assert!(p.done <= p.total, "{p:?}");
        phases += 1;
    })
    .await
    .expect("the audit runs");
    assert!(phases >= 10, "progress reported {phases} times");
    report
}

async fn audit(stack: &TestStack) -> audit::Report {
    audit_with(stack, &Selection::default(), audit::random_seed()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_clean_reference_stack_has_no_findings() {
    let stack = TestStack::with_proxy().await;
    for _ in 0..2 {
        let report = audit(&stack).await;
        assert!(
            report.findings.is_empty(),
            "false positives: {:#?}",
            report.to_json()["findings"]
        );
        // Every ISO, ORG and SES-001..004 check runs against the reference.
        for c in tenantry_harness::checks::CHECKS {
            if c.family == "ISO"
                || c.family == "ORG"
                || ["SES-001", "SES-002", "SES-003", "SES-004"].contains(&c.id)
            {
                assert!(report.checks_run.contains(&c.id), "{} did not run", c.id);
            }
        }
        assert!(report.requests > 30, "{}", report.requests);
        // Evidence never carries credentials.
        let json = report.to_json().to_string();
        assert!(!json.contains(SECRET_KEY));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_seeds_on_the_clean_stack_yield_no_finding() {
    for seed in 0..20u64 {
        // A fresh stack per seed: a seed's names and canaries repeat by design.
        let stack = TestStack::with_proxy().await;
        let report = audit_with(&stack, &Selection::default(), seed).await;
        assert!(report.findings.is_empty(), "seed {seed}: {:#}", report.to_json());
        assert_eq!(report.seed, seed);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_profile_file_with_cookie_tokens_audits_the_same() {
    // The shipped profile, read from a file, with tokens in the `__session`
    // cookie instead of the Authorization header.
    let stack = TestStack::with_proxy().await;
    let text = tenantry_harness::profile::REFERENCE.replace("token_in = \"header\"", "token_in = \"cookie\"");
    assert!(text.contains("token_in = \"cookie\""));
    let dir = std::env::temp_dir().join(format!("tenantry-profile-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("reference.toml");
    std::fs::write(&path, text).unwrap();
    std::env::set_var("TENANTRY_BASE_URL", &stack.base);
    std::env::set_var("TENANTRY_SECRET_KEY", SECRET_KEY);
    std::env::set_var("TENANTRY_ORIGIN", PARTY);
    let profile = Profile::load(&path).unwrap();
    assert!(!profile.token_in_header);
    let client = Client::new(&profile.base_url, 16, Duration::from_secs(20));
    let mut sessions = audit::sessions_for(&profile, &client).await.unwrap();
    let report = audit::run(
        &profile,
        &client,
        &mut sessions,
        &Selection::default(),
        3,
        &mut |_| {},
    )
    .await
    .unwrap();
    assert!(report.findings.is_empty(), "{:#}", report.to_json());
    assert!(report.requests > 150, "{}", report.requests);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seed_repeats_the_run() {
    // Two fresh stacks, one seed: the same probes in the same order.
    let first = audit_with(&TestStack::with_proxy().await, &Selection::default(), 42).await;
    let second = audit_with(&TestStack::with_proxy().await, &Selection::default(), 42).await;
    assert_eq!(first.checks_run, second.checks_run);
    // Every request but the job status polls (as many as the job takes).
    assert!(first.polls > 0 && second.polls > 0);
    assert_eq!(first.requests - first.polls, second.requests - second.polls);
    assert_eq!(first.seed, 42);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_selection_runs_only_the_chosen_checks() {
    let stack = TestStack::with_proxy().await;
    let selection = Selection::parse("ISO-001,ORG", None).unwrap();
    let report = audit_with(&stack, &selection, 1).await;
    let mut run = report.checks_run.clone();
    run.sort();
    assert_eq!(
        run,
        [
            "ISO-001", "ORG-001", "ORG-002", "ORG-003", "ORG-004", "ORG-005", "ORG-006", "ORG-007",
            "ORG-008", "ORG-009"
        ]
    );
}

#[cfg(feature = "inject")]
mod with_flaws {
    use tenantry_reference::inject::Flaw;

    use super::*;

    async fn findings_with_all(flaws: &[Flaw]) -> Vec<&'static str> {
        let stack = TestStack::with_proxy_and_flaws(flaws).await;
        let report = audit(&stack).await;
        for f in &report.findings {
            // Evidence is redacted.
            assert!(
                f.evidence.iter().all(|e| !e.contains("Bearer ey")),
                "{:?}",
                f.evidence
            );
        }
        report.findings.iter().map(|f| f.check.id).collect()
    }

    async fn findings_with(flaw: Flaw) -> Vec<&'static str> {
        findings_with_all(&[flaw]).await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_open_data_plane_is_found_by_iso_checks() {
        // Either layer alone still isolates (defence in depth); both gone, the
        // HTTP audit sees every class of cross-org access.
        let ids = findings_with_all(&[Flaw::NoAppFilter, Flaw::NoRls]).await;
        for id in [
            "ISO-001", "ISO-002", "ISO-003", "ISO-004", "ISO-005", "ISO-010", "SES-001",
        ] {
            assert!(ids.contains(&id), "{id} missing from {ids:?}");
        }
        assert!(findings_with(Flaw::NoAppFilter).await.is_empty());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn cache_and_job_flaws_are_found_by_iso_008_and_009() {
        let ids = findings_with(Flaw::CacheKeyWithoutOrg).await;
        assert!(ids.contains(&"ISO-009"), "{ids:?}");
        let ids = findings_with(Flaw::JobWithoutOrg).await;
        assert!(ids.contains(&"ISO-008"), "{ids:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn trust_org_param_is_found_by_org_checks() {
        let ids = findings_with(Flaw::TrustOrgParam).await;
        for id in ["ORG-002", "ORG-003", "ORG-007"] {
            assert!(ids.contains(&id), "{id} missing from {ids:?}");
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn org_path_unchecked_is_found_by_org_001() {
        let ids = findings_with(Flaw::OrgPathUnchecked).await;
        for id in ["ORG-001", "ORG-007", "SES-002"] {
            assert!(ids.contains(&id), "{id} missing from {ids:?}");
        }
    }
}
