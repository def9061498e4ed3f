//! The TOK suite (`tenantry_harness::tokens`) against the reference stack
//! behind its real proxy and identity service, through the built-in
//! profile's `clerk-api` source.
//!
//! Two modes, as a tester has them:
//! - black box: only the Backend API secret key — the suite attacks with
//!   unsigned, attacker-signed and identity-issued tokens;
//! - operator: the stack's signing key is handed over as well (as an
//!   operator of a self-hosted identity service can), which adds the
//!   re-signed cases that probe each claim check with a valid signature.
//!
//! The clean stack yields no TOK finding in either mode; each injected TOK
//! flaw is caught by its check, in black-box mode wherever that is possible.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::identity::SECRET_KEY;
use common::token_checks::PARTY;
use common::TestStack;
use tenantry_harness::audit::{self, Report};
use tenantry_harness::checks::{Selection, CHECKS};
use tenantry_harness::client::Client;
use tenantry_harness::profile::Profile;
use tenantry_harness::session::Sessions;
use tenantry_harness::tokens::{self, AuditOptions, RsaKey};

/// The stack's active signing key, as its operator would hand it over: a
/// PEM file, without its `kid` (the suite finds it in the JWKS).
fn operator_key(stack: &TestStack) -> RsaKey {
    let key = stack.keys.active();
    let pem = tokens::keys::pem("PRIVATE KEY", key.pkcs8_der());
    RsaKey::from_pem("", &pem).expect("the stack's key loads")
}

/// The built-in profile for `stack`, a client and its sessions.
async fn connect(stack: &TestStack) -> (Profile, Client, Sessions) {
    let profile = Profile::reference(&stack.base, SECRET_KEY, PARTY);
    let client = Client::new(&profile.base_url, 16, Duration::from_secs(20));
    let sessions = audit::sessions_for(&profile, &client)
        .await
        .expect("a session source");
    (profile, client, sessions)
}

async fn suite(stack: &TestStack, signing_key: Option<RsaKey>) -> Report {
    let (profile, client, mut sessions) = connect(stack).await;
    tokens::audit_with(
        &profile,
        &client,
        &mut sessions,
        &Selection::default(),
        audit::random_seed(),
        AuditOptions { signing_key },
    )
    .await
    .expect("the token suite runs")
}

#[cfg_attr(not(feature = "inject"), allow(dead_code))]
fn found(report: &Report) -> BTreeSet<&'static str> {
    report.findings.iter().map(|f| f.check.id).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_clean_stack_refuses_every_attack_token() {
    let stack = TestStack::with_proxy().await;
    for signing_key in [None, Some(operator_key(&stack))] {
        let operator = signing_key.is_some();
        let report = suite(&stack, signing_key).await;
        assert!(
            report.findings.is_empty(),
            "operator mode {operator}: false positives: {:#}",
            report.to_json()["findings"]
        );
        for check in CHECKS.iter().filter(|c| c.family == "TOK") {
            assert!(report.checks_run.contains(&check.id), "{} did not run", check.id);
        }
        assert!(report.requests > 200, "{} requests", report.requests);
        // Credentials never reach the report.
        assert!(!report.to_json().to_string().contains(SECRET_KEY));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_selection_limits_the_suite_and_an_empty_one_sends_nothing() {
    let stack = TestStack::with_proxy().await;
    let (profile, client, mut sessions) = connect(&stack).await;
    let only = Selection::parse("TOK-003,TOK-025", None).unwrap();
    let report = tokens::audit(&profile, &client, &mut sessions, &only, 7)
        .await
        .unwrap();
    assert_eq!(report.checks_run, vec!["TOK-003", "TOK-025"]);
    assert!(report.findings.is_empty());
    let none = Selection::parse("ISO", None).unwrap();
    let report = tokens::audit(&profile, &client, &mut sessions, &none, 7)
        .await
        .unwrap();
    assert!(report.checks_run.is_empty() && report.requests == 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signing_key_the_target_does_not_publish_is_refused() {
    let stack = TestStack::with_proxy().await;
    let (profile, client, mut sessions) = connect(&stack).await;
    let stranger = RsaKey::generate("not-theirs").unwrap();
    let only = Selection::parse("TOK-013", None).unwrap();
    let options = AuditOptions {
        signing_key: Some(stranger),
    };
    let error = tokens::audit_with(&profile, &client, &mut sessions, &only, 7, options)
        .await
        .unwrap_err()
        .to_string();
    let kid = stack.keys.active().kid().to_string();
    assert!(
        error.contains("not in the target's JWKS") && error.contains(&kid),
        "{error}"
    );
    // The stack's own key is adopted under the JWKS's name for it.
    let adopted = tokens::adopt_signing_key(&profile, &client, operator_key(&stack))
        .await
        .unwrap();
    assert_eq!(adopted.kid, kid);
}

#[cfg(feature = "inject")]
mod flaws {
    use super::*;
    use tenantry_reference::inject::Flaw;

    /// Runs the suite on a stack with `flaw` and returns the checks with findings.
    async fn caught(flaw: Flaw, operator: bool) -> (BTreeSet<&'static str>, Report) {
        let stack = TestStack::with_proxy_and_flaws(&[flaw]).await;
        let key = operator.then(|| operator_key(&stack));
        let report = suite(&stack, key).await;
        (found(&report), report)
    }

    fn expect(flaw: Flaw, got: &BTreeSet<&'static str>, report: &Report, want: &[&str]) {
        let want: BTreeSet<&str> = want.iter().copied().collect();
        assert_eq!(got, &want, "{flaw}: {:#}", report.to_json()["findings"]);
        for f in &report.findings {
            assert!(!f.evidence.is_empty() || f.check.id == "TOK-010", "{}", f.message);
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn jwt_alg_none_is_caught_by_tok_003_in_black_box() {
        let (got, report) = caught(Flaw::JwtAlgNone, false).await;
        expect(Flaw::JwtAlgNone, &got, &report, &["TOK-003"]);
        // Every case-insensitive spelling of none, with and without a signature.
        let variants = report.findings.iter().filter(|f| f.check.id == "TOK-003").count();
        assert_eq!(variants, 8, "{:#}", report.to_json()["findings"]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn jwt_hs256_confusion_is_caught_by_tok_006_in_black_box() {
        let (got, report) = caught(Flaw::JwtHs256Confusion, false).await;
        expect(Flaw::JwtHs256Confusion, &got, &report, &["TOK-006"]);
        assert!(report
            .findings
            .iter()
            .any(|f| f.message.contains("SPKI PEM with trailing newline")));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn jwt_ignore_azp_is_caught_by_tok_020_and_024_in_black_box() {
        // The identity service's own tokens: a Backend API token (no azp)
        // and a token issued to another origin.
        let (got, report) = caught(Flaw::JwtIgnoreAzp, false).await;
        expect(Flaw::JwtIgnoreAzp, &got, &report, &["TOK-020", "TOK-024"]);
        // With the operator's key, the re-signed azp cases find it too.
        let (got, report) = caught(Flaw::JwtIgnoreAzp, true).await;
        expect(Flaw::JwtIgnoreAzp, &got, &report, &["TOK-020", "TOK-024"]);
        assert!(report.findings.iter().any(|f| f.message.contains("azp removed")));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn role_from_claim_unsigned_is_caught_by_tok_025_in_black_box() {
        let (got, report) = caught(Flaw::RoleFromClaimUnsigned, false).await;
        expect(Flaw::RoleFromClaimUnsigned, &got, &report, &["TOK-025"]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn jwt_skip_exp_is_caught_by_tok_013_with_the_operator_key() {
        // Without the key an expired, validly signed token cannot be had
        // without waiting out the token lifetime (>= 30 s on this stack):
        // black box, the flaw is invisible.
        let (got, _) = caught(Flaw::JwtSkipExp, false).await;
        assert!(got.is_empty(), "{got:?}");
        let (got, report) = caught(Flaw::JwtSkipExp, true).await;
        expect(Flaw::JwtSkipExp, &got, &report, &["TOK-013"]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn template_token_as_session_is_caught_by_tok_018_with_the_operator_key() {
        // A real template token still lacks `v` (a reserved claim templates
        // cannot set), which this verifier checks after `sid`: black box,
        // the flaw is invisible.
        let (got, _) = caught(Flaw::TemplateTokenAsSession, false).await;
        assert!(got.is_empty(), "{got:?}");
        let (got, report) = caught(Flaw::TemplateTokenAsSession, true).await;
        expect(Flaw::TemplateTokenAsSession, &got, &report, &["TOK-018"]);
    }
}
