//! The sign-in and template suite (`tenantry_harness::signin`, SES-005..008
//! and TPL-001..003) against the reference stack behind its real proxy and
//! identity service, through the built-in profile's `clerk-api` source, with
//! the app's sign-in handler and template helper declared as a tester would.
//!
//! The clean stack yields no finding; each injected SES/TPL flaw is caught by
//! its check; `mint` and `command` sources run nothing (not a pass).

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::json;

use common::identity::SECRET_KEY;
use common::token_checks::PARTY;
use common::TestStack;
use tenantry_harness::audit::{self, Report};
use tenantry_harness::checks::Selection;
use tenantry_harness::client::Client;
use tenantry_harness::profile::{Profile, SessionSpec};
use tenantry_harness::signin::{self, AppFlows, AppSignIn, AppTemplateHelper, CHECK_IDS};
use tenantry_harness::template::{Body, RequestTemplate};

/// The reference app's own handlers, declared as a profile would.
fn app_flows() -> AppFlows {
    let mut start = RequestTemplate::new("POST", "/auth/sign-in");
    start.body = Some(Body::Json(
        json!({ "identifier": "{{ email }}", "password": "{{ password }}" }),
    ));
    let mut code = RequestTemplate::new("POST", "/auth/sign-in/{{ sign_in }}/code");
    code.body = Some(Body::Json(json!({ "code": "{{ code }}" })));
    AppFlows {
        sign_in: Some(AppSignIn {
            start,
            code,
            status_pointer: "/status".into(),
            complete: "complete".into(),
            session_pointer: "/session_id".into(),
            sign_in_pointer: "/sign_in_id".into(),
        }),
        template_helper: Some(AppTemplateHelper {
            request: RequestTemplate::new("GET", "/auth/token/{{ template }}"),
            jwt_pointer: "/jwt".into(),
        }),
    }
}

async fn suite_on(stack: &TestStack, selection: &Selection, app: &AppFlows) -> Report {
    let profile = Profile::reference(&stack.base, SECRET_KEY, PARTY);
    let client = Client::new(&profile.base_url, 16, Duration::from_secs(20));
    let mut sessions = audit::sessions_for(&profile, &client)
        .await
        .expect("a session source");
    signin::audit_with(
        &profile,
        &client,
        &mut sessions,
        selection,
        audit::random_seed(),
        app,
    )
    .await
    .expect("the sign-in suite runs")
}

#[cfg_attr(not(feature = "inject"), allow(dead_code))]
fn found(report: &Report) -> BTreeSet<&'static str> {
    report.findings.iter().map(|f| f.check.id).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_clean_stack_passes_every_sign_in_and_template_check() {
    let stack = TestStack::with_proxy().await;
    let report = suite_on(&stack, &Selection::default(), &app_flows()).await;
    assert!(
        report.findings.is_empty(),
        "false positives: {:#}",
        report.to_json()["findings"]
    );
    let mut ran = report.checks_run.clone();
    ran.sort_unstable();
    let mut all = CHECK_IDS.to_vec();
    all.sort_unstable();
    assert_eq!(ran, all);
    assert!(report.requests > 50, "{} requests", report.requests);
    assert!(!report.to_json().to_string().contains(SECRET_KEY));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_session_sources_run_nothing_and_a_selection_limits_the_suite() {
    let stack = TestStack::with_proxy().await;
    let mut profile = Profile::reference(&stack.base, SECRET_KEY, PARTY);
    let client = Client::new(&profile.base_url, 16, Duration::from_secs(20));
    let mut sessions = audit::sessions_for(&profile, &client).await.unwrap();
    let only = Selection::parse("SES-007,TPL-002", None).unwrap();
    let report = signin::audit(&profile, &client, &mut sessions, &only, 7)
        .await
        .unwrap();
    assert_eq!(report.checks_run, vec!["SES-007", "TPL-002"]);
    assert!(report.findings.is_empty(), "{:#}", report.to_json());
    let none = Selection::parse("ISO", None).unwrap();
    let report = signin::audit(&profile, &client, &mut sessions, &none, 7)
        .await
        .unwrap();
    assert!(report.checks_run.is_empty() && report.requests == 0);

    profile.session = SessionSpec::Command {
        argv: vec!["true".into()],
        timeout: Duration::from_secs(1),
    };
    assert!(signin::not_run_reason(&profile).is_some());
    let report = signin::audit(&profile, &client, &mut sessions, &Selection::default(), 7)
        .await
        .unwrap();
    assert!(report.checks_run.is_empty() && report.requests == 0);
}

#[cfg(feature = "inject")]
mod flaws {
    use super::*;
    use tenantry_reference::inject::Flaw;

    async fn caught(flaw: Flaw) -> (BTreeSet<&'static str>, Report) {
        let stack = TestStack::with_proxy_and_flaws(&[flaw]).await;
        let report = suite_on(&stack, &Selection::default(), &app_flows()).await;
        (found(&report), report)
    }

    fn expect(flaw: Flaw, got: &BTreeSet<&'static str>, report: &Report, want: &[&str]) {
        let want: BTreeSet<&str> = want.iter().copied().collect();
        assert_eq!(got, &want, "{flaw}: {:#}", report.to_json()["findings"]);
        for f in &report.findings {
            assert!(!f.evidence.is_empty(), "{}", f.message);
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn client_trust_as_complete_is_caught_by_ses_005() {
        let (got, report) = caught(Flaw::ClientTrustAsComplete).await;
        expect(Flaw::ClientTrustAsComplete, &got, &report, &["SES-005"]);
        assert!(report
            .findings
            .iter()
            .any(|f| f.message.contains("app's sign-in handler")));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn client_trust_stuck_is_caught_by_ses_006() {
        let (got, report) = caught(Flaw::ClientTrustStuck).await;
        expect(Flaw::ClientTrustStuck, &got, &report, &["SES-006"]);
        assert!(report
            .findings
            .iter()
            .any(|f| f.message.contains("no email code was sent")));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn template_fallback_500_is_caught_by_tpl_003() {
        let (got, report) = caught(Flaw::TemplateFallback500).await;
        expect(Flaw::TemplateFallback500, &got, &report, &["TPL-003"]);
        assert!(report
            .findings
            .iter()
            .all(|f| f.message.contains("app's template helper answered 500")));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn without_the_app_handlers_declared_the_app_flaws_are_not_seen() {
        // The identity service itself is sound; the flaws live in the app's
        // handlers, which only a declaration lets the suite reach.
        let stack =
            TestStack::with_proxy_and_flaws(&[Flaw::ClientTrustAsComplete, Flaw::TemplateFallback500]).await;
        let report = suite_on(&stack, &Selection::default(), &AppFlows::default()).await;
        assert!(report.findings.is_empty(), "{:#}", report.to_json()["findings"]);
    }
}
