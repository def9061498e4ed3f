//! The harness's audit (first slice) against the reference stack behind its
//! real proxy and identity service: the clean stack yields no finding; the
//! org-parameter flaws are found by the right checks.

mod common;

use common::identity::SECRET_KEY;
use common::token_checks::PARTY;
use common::TestStack;
use tenantry_harness::audit::{self, Target};
use tenantry_harness::checks::Selection;

async fn audit(stack: &TestStack) -> audit::Report {
    let target = Target::reference(&stack.base, SECRET_KEY, Some(PARTY));
    audit::run(&target, &Selection::default(), audit::random_seed())
        .await
        .expect("the audit runs")
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
        for id in [
            "ISO-001", "ISO-002", "ISO-003", "ISO-004", "ISO-005", "ISO-007", "ISO-010", "ISO-013",
            "ORG-001", "ORG-002", "ORG-003", "ORG-009", "SES-001", "SES-002",
        ] {
            assert!(report.checks_run.contains(&id), "{id} did not run");
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
        let target = Target::reference(&stack.base, SECRET_KEY, Some(PARTY));
        let report = audit::run(&target, &Selection::default(), seed).await.unwrap();
        assert!(report.findings.is_empty(), "seed {seed}: {:#}", report.to_json());
        assert_eq!(report.seed, seed);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_selection_runs_only_the_chosen_checks() {
    let stack = TestStack::with_proxy().await;
    let target = Target::reference(&stack.base, SECRET_KEY, Some(PARTY));
    let selection = Selection::parse("ISO-001,ORG", None).unwrap();
    let report = audit::run(&target, &selection, 1).await.unwrap();
    assert_eq!(
        report.checks_run,
        ["ISO-001", "ORG-001", "ORG-002", "ORG-003", "ORG-009"]
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
        assert!(ids.contains(&"ORG-002") && ids.contains(&"ORG-003"), "{ids:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn org_path_unchecked_is_found_by_org_001() {
        let ids = findings_with(Flaw::OrgPathUnchecked).await;
        assert!(ids.contains(&"ORG-001"), "{ids:?}");
    }
}
