//! The OAU suite (`tenantry_harness::oauth_suite`) against the reference
//! stack behind its real proxy and identity service, through the built-in
//! profile's `[oauth]` section and its `clerk-api` session source.
//!
//! The stacks here declare a one-second state TTL (and the profile says
//! so), so OAU-008 waits it out instead of minutes. The clean stack yields
//! no OAU finding; each injected OAuth flaw is caught by its check.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::identity::SECRET_KEY;
use common::token_checks::PARTY;
use common::TestStack;
use tenantry_harness::audit::{self, Report};
use tenantry_harness::checks::{Selection, CHECKS};
use tenantry_harness::client::Client;
use tenantry_harness::oauth_suite;
use tenantry_harness::profile::Profile;

const TTL: Duration = Duration::from_secs(1);

/// The built-in profile for `stack`, declaring `ttl`.
fn profile(stack: &TestStack, ttl: Duration) -> Profile {
    let mut profile = Profile::reference(&stack.base, SECRET_KEY, PARTY);
    profile
        .oauth
        .as_mut()
        .expect("the built-in profile has [oauth]")
        .state_ttl = ttl;
    profile
}

async fn suite(profile: &Profile, selection: &Selection) -> Report {
    let client = Client::new(&profile.base_url, 16, Duration::from_secs(20));
    let mut sessions = audit::sessions_for(profile, &client)
        .await
        .expect("a session source");
    oauth_suite::audit(profile, &client, &mut sessions, selection, audit::random_seed())
        .await
        .expect("the OAU suite runs")
}

fn found(report: &Report) -> BTreeSet<&'static str> {
    report.findings.iter().map(|f| f.check.id).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_clean_stack_refuses_every_forged_callback() {
    let stack = TestStack::with_proxy_config(|c| c.oauth.state_ttl_secs = TTL.as_secs()).await;
    let report = suite(&profile(&stack, TTL), &Selection::default()).await;
    assert!(
        report.findings.is_empty(),
        "false positives: {:#}",
        report.to_json()["findings"]
    );
    for check in CHECKS.iter().filter(|c| c.family == "OAU") {
        assert!(report.checks_run.contains(&check.id), "{} did not run", check.id);
    }
    // Credentials never reach the report.
    assert!(!report.to_json().to_string().contains(SECRET_KEY));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ttls_are_only_waited_out_when_short_and_a_profile_without_oauth_runs_nothing() {
    let stack = TestStack::with_proxy().await;
    let oau8 = Selection::parse("OAU-008,OAU-016", None).unwrap();
    // The stack's default TTL (600 s, as the built-in profile declares): not waited out.
    let default = suite(&Profile::reference(&stack.base, SECRET_KEY, PARTY), &oau8).await;
    assert_eq!(default.checks_run, ["OAU-016"]);
    assert!(default.findings.is_empty(), "{:#}", default.to_json());
    // A declared TTL over ten minutes is a finding by itself.
    let long = suite(&profile(&stack, Duration::from_secs(3600)), &oau8).await;
    assert_eq!(found(&long), BTreeSet::from(["OAU-008"]), "{:#}", long.to_json());
    // No [oauth]: nothing is sent.
    let mut without = Profile::reference(&stack.base, SECRET_KEY, PARTY);
    without.oauth = None;
    let empty = suite(&without, &Selection::default()).await;
    assert!(
        empty.checks_run.is_empty() && empty.requests == 0,
        "{:#}",
        empty.to_json()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_in_the_cookie_drive_the_flow_too() {
    let stack = TestStack::with_proxy().await;
    let mut profile = Profile::reference(&stack.base, SECRET_KEY, PARTY);
    profile.token_in_header = false;
    let selection = Selection::parse("OAU-005,OAU-009,OAU-016", None).unwrap();
    let report = suite(&profile, &selection).await;
    assert_eq!(report.checks_run, ["OAU-005", "OAU-009", "OAU-016"]);
    assert!(report.findings.is_empty(), "{:#}", report.to_json());
}

#[cfg(feature = "inject")]
mod flaws {
    use super::*;
    use tenantry_reference::inject::{Flaw, Flaws};
    use tenantry_reference::server::StackOptions;

    async fn findings(flaw: Flaw) -> (BTreeSet<&'static str>, Report) {
        let options = StackOptions {
            flaws: Flaws::of(&[flaw]),
            ..StackOptions::default()
        };
        let stack = TestStack::with_config(options, |c| c.oauth.state_ttl_secs = TTL.as_secs()).await;
        let report = suite(&profile(&stack, TTL), &Selection::default()).await;
        (found(&report), report)
    }

    /// `flaw` is caught by exactly the checks `by`: the intended one (and
    /// those the same defect necessarily trips), no other.
    async fn caught(flaw: Flaw, by: &[&'static str]) {
        let (found, report) = findings(flaw).await;
        assert_eq!(
            found,
            by.iter().copied().collect::<BTreeSet<_>>(),
            "{flaw:?}: {:#}",
            report.to_json()["findings"]
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_state_without_ttl_is_caught_by_oau_008() {
        caught(Flaw::OauthStateNoTtl, &["OAU-008"]).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_reusable_state_is_caught_by_oau_005_006_and_007() {
        // A state that survives its use also lets concurrent callbacks all win.
        caught(Flaw::OauthStateReusable, &["OAU-005", "OAU-006", "OAU-007"]).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_state_not_bound_to_the_user_is_caught_by_oau_009() {
        caught(Flaw::OauthStateNotUserBound, &["OAU-009"]).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_state_not_bound_to_the_org_is_caught_by_oau_010_and_the_connection_oracle() {
        caught(Flaw::OauthStateNotOrgBound, &["OAU-010", "OAU-016"]).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_state_not_bound_to_the_provider_is_caught_by_oau_013() {
        caught(Flaw::OauthStateNotProviderBound, &["OAU-013"]).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_check_then_delete_race_is_caught_by_oau_007() {
        caught(Flaw::OauthStateRace, &["OAU-007"]).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_flow_without_pkce_is_caught_by_oau_014() {
        caught(Flaw::OauthNoPkce, &["OAU-014"]).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_open_return_path_is_caught_by_oau_015() {
        caught(Flaw::OauthOpenRedirect, &["OAU-015"]).await;
    }
}
