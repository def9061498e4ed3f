//! Campaigns (model-based action sequences with shrinking) against the
//! reference stack: the clean stack yields nothing for several seeds; a
//! cache keyed without the org and a proxy that trusts org parameters are
//! found, shrunk, and written out as scenarios.

mod common;

use std::time::Duration;

use common::identity::SECRET_KEY;
use common::token_checks::PARTY;
use common::TestStack;
use tenantry_harness::audit;
use tenantry_harness::campaign::{self, CampaignConfig, CampaignReport};
use tenantry_harness::client::Client;
use tenantry_harness::profile::Profile;

async fn campaign(stack: &TestStack, seed: u64, cases: u32) -> CampaignReport {
    let profile = Profile::reference(&stack.base, SECRET_KEY, PARTY);
    let client = Client::new(&profile.base_url, 16, Duration::from_secs(20));
    let mut sessions = audit::sessions_for(&profile, &client).await.unwrap();
    let config = CampaignConfig {
        cases,
        max_actions: 16,
        budget: Duration::from_secs(120),
        seed,
        max_shrink_iters: 128,
    };
    campaign::run(&profile, &client, &mut sessions, &config, &mut |_| {})
        .await
        .expect("the campaign runs")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_clean_stack_survives_campaigns() {
    // Ten seeds: ten worlds drawn by the world strategy (2–3 orgs, 2–5
    // users, random memberships and roles), none of which may yield a
    // finding on the clean stack.
    let stack = TestStack::with_proxy().await;
    let mut worlds = Vec::new();
    for seed in 1..=10 {
        let report = campaign(&stack, seed, 6).await;
        assert!(
            report.findings.is_empty(),
            "seed {seed} in {}: {:#?}",
            report.cast.describe(),
            report
                .findings
                .iter()
                .map(|f| (&f.message, &f.actions))
                .collect::<Vec<_>>()
        );
        assert!(
            report.actions > 20,
            "seed {seed}: only {} actions",
            report.actions
        );
        assert_eq!(report.cast, campaign::draw_cast(seed), "the seed fixes the world");
        worlds.push(report.cast);
    }
    worlds.sort_by_key(|c| c.describe());
    worlds.dedup();
    assert!(worlds.len() >= 5, "only {} distinct worlds", worlds.len());
}

#[cfg(feature = "inject")]
mod with_flaws {
    use tenantry_harness::scenario::{self, Item};
    use tenantry_reference::inject::Flaw;

    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_cache_keyed_without_the_org_is_found() {
        // The cache outlives a sequence, so its minimal sequence may not fail
        // again on replay; the finding stands and says so.
        let stack = TestStack::with_proxy_and_flaws(&[Flaw::CacheKeyWithoutOrg]).await;
        let report = campaign(&stack, 7, 32).await;
        let finding = report
            .findings
            .iter()
            .find(|f| f.check.id == "ISO-009")
            .unwrap_or_else(|| {
                panic!(
                    "{:#?}",
                    report.findings.iter().map(|f| &f.message).collect::<Vec<_>>()
                )
            });
        assert!(
            finding
                .scenario
                .steps
                .iter()
                .any(|s| matches!(s, Item::Send(s) if s.request.path == "/api/stats")),
            "{:#?}",
            finding.scenario.steps
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_proxy_trusting_org_parameters_is_found() {
        let stack = TestStack::with_proxy_and_flaws(&[Flaw::TrustOrgParam]).await;
        let report = campaign(&stack, 5, 32).await;
        let finding = report
            .findings
            .iter()
            .find(|f| f.check.family == "ORG")
            .unwrap_or_else(|| {
                panic!(
                    "{:#?}",
                    report
                        .findings
                        .iter()
                        .map(|f| (&f.message, &f.actions))
                        .collect::<Vec<_>>()
                )
            });
        // Stateless: the shrunk sequence fails again on its own, and it is
        // short (a create in the victim org, the forged request, perhaps a list).
        assert!(finding.reproduced, "{finding:#?}");
        assert!(finding.actions.len() <= 3, "{:#?}", finding.actions);

        // The reproduction, written out and read back, fails on its own
        // against the flawed stack and passes against a clean one.
        let text = scenario::to_yaml(&finding.scenario);
        let read = scenario::parse("repro.yaml", &text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(read, finding.scenario, "{text}");
        let flawed = replay(&stack, &read).await;
        assert!(!flawed.passed(), "{text}\n{flawed:#?}");
        let clean = TestStack::with_proxy().await;
        let outcome = replay(&clean, &read).await;
        assert!(outcome.passed(), "{text}\n{outcome:#?}");
    }

    async fn replay(stack: &TestStack, scenario: &scenario::Scenario) -> scenario::Outcome {
        let profile = Profile::reference(&stack.base, SECRET_KEY, PARTY);
        let client = Client::new(&profile.base_url, 4, Duration::from_secs(20));
        let mut sessions = audit::sessions_for(&profile, &client).await.unwrap();
        scenario::run(scenario, &mut sessions, &client, 11)
            .await
            .expect("the scenario runs")
    }
}
